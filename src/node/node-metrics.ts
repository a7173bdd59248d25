/**
 * The metrics sink the runtime reports to: a few events that only the runtime sees (a WAL fsync, a
 * snapshot sent or received) and, once started, a view of what it tracks itself (peer
 * counters, the newest consistency check). The operations room (src/ops) implements it with
 * Prometheus and StatsD; the default does nothing. No global registry: each replicator gets its
 * own sink through `ReplicatorOptions.metrics`.
 */
import { stat } from "node:fs/promises";
import { basename, join } from "node:path";
import type { Message, NodeId } from "../raft/types.js";
import type { NexusLogger } from "./options.js";
import type { CheckRound } from "./consistency.js";
import type { LongTask } from "./progress-board.js";

/** One peer's transport counters, as the transport keeps them. */
export interface PeerCounters {
  readonly messagesSent: number;
  readonly bytesSent: number;
  readonly dropped: number;
  readonly reconnects: number;
  readonly deadConnections: number;
  /** Messages waiting to be sent. */
  readonly queued: number;
  /** Round-trip time of the last answered HTTP/2 PING, ms; -1 before one is answered. */
  readonly rttMs: number;
}

/** A snapshot stream in flight, for progress. */
export interface SnapshotTransfer {
  readonly direction: "send" | "receive";
  readonly peer: NodeId;
  /** The snapshot's log index. */
  readonly index: number;
  readonly bytes: number;
  /** Bytes in all, when known (sending); undefined when not. */
  readonly totalBytes: number | undefined;
  readonly startedAt: number;
}

/** What a running node lets a sink read. */
export interface NodeMetricsView {
  peers(): Record<NodeId, PeerCounters>;
  latestCheck(): CheckRound | undefined;
  /** Snapshot streams in flight now. */
  transfers(): readonly SnapshotTransfer[];
  /** Snapshot restores and consistency digests running now (progress-board.ts). */
  longTasks(): readonly LongTask[];
  /** The heartbeat and election timeout the node runs with (measured with auto timing), ms. */
  timing?(): { readonly heartbeatTickMs: number; readonly electionTickMs: number };
}

export interface NodeMetrics {
  /** The node started; `view` stays valid until it stops. */
  attach(view: NodeMetricsView): void;
  /** A WAL batch was written and fdatasync'ed. */
  walSynced(ms: number, bytes: number): void;
  /** A snapshot stream ended, whole (`ok`) or cut short. */
  snapshotTransferred(t: SnapshotTransfer, ms: number, ok: boolean): void;
}

/** The default sink: does nothing. */
export const NOOP_NODE_METRICS: NodeMetrics = Object.freeze({
  attach: () => undefined,
  walSynced: () => undefined,
  snapshotTransferred: () => undefined,
});

/** The fields of a progress log line: bytes, percent, rate and time left when known. */
function progressFields(t: SnapshotTransfer, now: number): Record<string, unknown> {
  const seconds = Math.max(0.001, (now - t.startedAt) / 1000);
  const rate = t.bytes / seconds;
  const total = t.totalBytes;
  return {
    peer: t.peer,
    index: t.index,
    bytes: t.bytes,
    ...(total === undefined
      ? {}
      : {
          totalBytes: total,
          percent: Math.round((100 * t.bytes) / Math.max(1, total)),
          secondsLeft: rate > 0 ? Math.round((total - t.bytes) / rate) : null,
        }),
    bytesPerSecond: Math.round(rate),
    seconds: Math.round(seconds * 10) / 10,
  };
}

/**
 * Snapshot streams in flight, counted as their chunks pass. `track` wraps a stream; the sink
 * hears of it when it ends. With a logger, a stream logs its progress at most every
 * `progressEveryMs`, and a warning when it is cut (the transport logs a whole one).
 */
export class SnapshotTransfers {
  private readonly live = new Set<{ t: SnapshotTransfer; bytes: number; total?: number }>();

  /** `snapDir`: where the files of snapshots this node sends are, for their size. */
  constructor(
    private readonly sink: () => NodeMetrics,
    private readonly snapDir: string,
    private readonly logger?: NexusLogger,
    private readonly progressEveryMs = 5000,
  ) {}

  list(): SnapshotTransfer[] {
    return [...this.live].map((l) => ({ ...l.t, bytes: l.bytes, totalBytes: l.total }));
  }

  /** Wraps the stream of the snapshot that `m` carries, sent to or received from its peer. */
  track(
    direction: "send" | "receive",
    m: Message,
    body: AsyncIterable<Uint8Array>,
  ): AsyncIterable<Uint8Array> {
    const t = {
      direction,
      peer: direction === "send" ? m.to : m.from,
      index: m.snapshot?.metadata.index ?? 0,
      totalBytes: undefined,
    };
    const live = this.live;
    const sink = this.sink;
    const logger = this.logger;
    const every = this.progressEveryMs;
    // A snapshot sent is a whole file here: its size is the total (the name is the leader's own).
    const file =
      direction === "send" && m.snapshot !== undefined
        ? join(this.snapDir, basename(new TextDecoder().decode(m.snapshot.data)))
        : undefined;
    return (async function* () {
      const entry: { t: SnapshotTransfer; bytes: number; total?: number } = {
        t: { ...t, bytes: 0, startedAt: Date.now() },
        bytes: 0,
      };
      if (file !== undefined) {
        void stat(file).then(
          (s) => (entry.total = s.size),
          () => undefined,
        );
      }
      live.add(entry);
      const now = (): SnapshotTransfer => ({
        ...entry.t,
        bytes: entry.bytes,
        totalBytes: entry.total,
      });
      const verb = direction === "send" ? "sending" : "receiving";
      let loggedAt = entry.t.startedAt;
      let ok = false;
      try {
        for await (const chunk of body) {
          entry.bytes += chunk.byteLength;
          if (logger !== undefined && Date.now() - loggedAt >= every) {
            loggedAt = Date.now();
            logger.info(progressFields(now(), loggedAt), `snapshot ${verb}`);
          }
          yield chunk;
        }
        ok = true;
      } finally {
        live.delete(entry);
        const ms = Date.now() - entry.t.startedAt;
        sink().snapshotTransferred(now(), ms, ok);
        // A whole stream is logged once, by the transport ("snapshot sent" once the peer took
        // it, "snapshot received" once it is stored); a cut one here, with how far it got.
        if (!ok) logger?.warn(progressFields(now(), Date.now()), `snapshot ${verb} cut short`);
      }
    })();
  }
}
