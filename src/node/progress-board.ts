/**
 * Long work a person waits for, besides snapshot streams (node-metrics.ts): restoring a snapshot
 * into the store, and a consistency digest of the store. Each logs its progress at most every
 * `everyMs` (bytes, percent, rate and time left when the size is known; the seconds so far for a
 * digest, whose size the Store contract does not tell), and is listed for /status and the
 * metrics while it runs. The Store is wrapped (storeWithProgress), so the Ready loop and the
 * applier need no hook.
 */
import { stat } from "node:fs/promises";
import { join } from "node:path";
import type { AppliedPosition, PendingDigest, Store } from "../store/store.js";
import { snapshotName } from "../storage/snapshotter.js";
import type { NexusLogger } from "./options.js";

/** What long work is under way. */
export type LongTaskKind = "snapshot-restore" | "consistency-digest";

/** One piece of long work in progress. */
export interface LongTask {
  readonly kind: LongTaskKind;
  /** The log index it is at (the snapshot's, or the checked state's). */
  readonly index: number;
  /** Bytes done so far; undefined when not counted (a digest). */
  readonly bytes: number | undefined;
  /** Bytes in all; undefined while unknown. */
  readonly totalBytes: number | undefined;
  /** When it started, ms since the epoch. */
  readonly startedAt: number;
}

/** The fields of a progress log line for `t` at `now`. */
export function longTaskFields(t: LongTask, now: number): Record<string, unknown> {
  const seconds = Math.max(0.001, (now - t.startedAt) / 1000);
  const out: Record<string, unknown> = { index: t.index, seconds: Math.round(seconds * 10) / 10 };
  if (t.bytes === undefined) return out;
  const rate = t.bytes / seconds;
  out["bytes"] = t.bytes;
  out["bytesPerSecond"] = Math.round(rate);
  if (t.totalBytes !== undefined) {
    out["totalBytes"] = t.totalBytes;
    out["percent"] = Math.min(100, Math.floor((100 * t.bytes) / Math.max(1, t.totalBytes)));
    out["secondsLeft"] = rate > 0 ? Math.max(0, Math.round((t.totalBytes - t.bytes) / rate)) : null;
  }
  return out;
}

interface Live {
  kind: LongTaskKind;
  index: number;
  bytes: number | undefined;
  totalBytes: number | undefined;
  startedAt: number;
}

/** The long work of one node, in progress now. */
export class ProgressBoard {
  private readonly live = new Set<Live>();

  constructor(
    private readonly logger: NexusLogger,
    private readonly everyMs = 5000,
  ) {}

  list(): LongTask[] {
    return [...this.live].map((l) => ({ ...l }));
  }

  /**
   * `body`, the stream of the snapshot at `position` being restored, counted as the store reads
   * it; `totalBytes` resolves with its size when known.
   */
  restoring(
    position: AppliedPosition,
    body: AsyncIterable<Uint8Array>,
    totalBytes: Promise<number | undefined>,
  ): AsyncIterable<Uint8Array> {
    const live = this.live;
    const logger = this.logger;
    const every = this.everyMs;
    return (async function* () {
      const t: Live = {
        kind: "snapshot-restore",
        index: position.index,
        bytes: 0,
        totalBytes: undefined,
        startedAt: Date.now(),
      };
      void totalBytes.then((n) => (t.totalBytes = n));
      live.add(t);
      let loggedAt = t.startedAt;
      try {
        for await (const chunk of body) {
          t.bytes = (t.bytes ?? 0) + chunk.byteLength;
          const now = Date.now();
          if (now - loggedAt >= every) {
            loggedAt = now;
            logger.info(longTaskFields(t, now), "snapshot restoring");
          }
          yield chunk;
        }
      } finally {
        live.delete(t);
      }
    })();
  }

  /**
   * Watches the digest `pending`: logs that it still runs every `everyMs`, and its end when it
   * took that long. Returns `pending` as it is.
   */
  digesting(pending: PendingDigest): PendingDigest {
    const t: Live = {
      kind: "consistency-digest",
      index: pending.position.index,
      bytes: undefined,
      totalBytes: undefined,
      startedAt: Date.now(),
    };
    this.live.add(t);
    const timer = setInterval(
      () => this.logger.info(longTaskFields(t, Date.now()), "consistency digest running"),
      this.everyMs,
    );
    timer.unref();
    const end = (): void => {
      clearInterval(timer);
      this.live.delete(t);
      const now = Date.now();
      if (now - t.startedAt >= this.everyMs) {
        this.logger.info(longTaskFields(t, now), "consistency digest done");
      }
    };
    pending.digest.then(end, end);
    return pending;
  }
}

/**
 * `store` with its snapshot restores and digests on `board`. The size of a snapshot restored is
 * its file's in `snapDir` (a snapshot is restored from the file this node holds).
 */
export function storeWithProgress(store: Store, board: ProgressBoard, snapDir: string): Store {
  const restore = (position: AppliedPosition, stream: AsyncIterable<Uint8Array>): Promise<void> => {
    const size = stat(join(snapDir, snapshotName(position.term, position.index))).then(
      (s) => s.size,
      () => undefined,
    );
    return store.restore(position, board.restoring(position, stream, size));
  };
  const digest = async (): Promise<PendingDigest> => board.digesting(await store.digest());
  return new Proxy(store, {
    get(target, key) {
      if (key === "restore") return restore;
      if (key === "digest") return digest;
      const v: unknown = Reflect.get(target, key, target);
      return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}
