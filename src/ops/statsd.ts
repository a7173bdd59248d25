/**
 * StatsD over UDP, as the original pushed it: the prefix `nexus.`, a `nexusNode:<host:port>` tag
 * (DogStatsD `|#` syntax), and the original's names where it had them (`save.latency.ms`,
 * `load.latency.ms`, `raft.propose.error`, `save.timeout.error`, `load.timeout.error`,
 * `raft.read.index.error`), plus ours for what it did not measure. Timings and counters leave as
 * they happen; gauges (term, indexes, lag, leader) every `gaugeEveryMs`. Lines are batched into
 * datagrams of at most 1400 bytes, flushed every 100 ms. A StatsD server that is down loses
 * figures, never slows the node (UDP, errors ignored).
 */
import dgram from "node:dgram";
import { isIP } from "node:net";
import type { SnapshotTransfer } from "../node/node-metrics.js";
import type { ReadConsistency, ReplicatorStatus } from "../node/replicator.js";
import type { LoadOutcome, MetricsListener, SaveOutcome } from "./metrics.js";
import { NexusError } from "../errors/index.js";

const PREFIX = "nexus.";
const MAX_DATAGRAM = 1400;

/** Parses `host:port` (`[v6]:port` too). BAD_CONFIG naming -statsd-addr when it is not one. */
export function parseStatsdAddr(addr: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(addr.trim());
  const port = m === null ? NaN : Number(m[3]);
  if (m === null || !(port >= 1 && port <= 65535)) {
    throw new NexusError(
      "BAD_CONFIG",
      `-statsd-addr must be host:port, e.g. 127.0.0.1:8125, got "${addr}"`,
    );
  }
  return { host: m[1] ?? m[2]!, port };
}

export class StatsdPush implements MetricsListener {
  private readonly socket: dgram.Socket;
  private lines: string[] = [];
  private bytes = 0;
  private flusher: NodeJS.Timeout | undefined;
  private gauges: NodeJS.Timeout | undefined;
  private readonly tags: string;
  private closed = false;

  private constructor(
    private readonly host: string,
    private readonly port: number,
    node: string,
    private readonly gaugeEveryMs: number,
  ) {
    this.socket = dgram.createSocket(isIP(host) === 6 ? "udp6" : "udp4");
    this.socket.on("error", () => undefined);
    this.socket.unref();
    this.tags = node === "" ? "" : `|#nexusNode:${node}`;
  }

  static create(addr: string, o: { node: string; gaugeEveryMs?: number }): StatsdPush {
    const { host, port } = parseStatsdAddr(addr);
    return new StatsdPush(host, port, o.node, o.gaugeEveryMs ?? 10_000);
  }

  /** Starts pushing gauges read from `status` (undefined while stopped). */
  start(status: () => ReplicatorStatus | undefined): void {
    this.flusher ??= setInterval(() => this.flush(), 100);
    this.flusher.unref();
    const push = (): void => {
      const s = status();
      if (s === undefined) return;
      this.gauge("raft.term", s.term);
      this.gauge("raft.commit.index", s.commit);
      this.gauge("raft.applied.index", s.applied);
      this.gauge("raft.apply.lag", Math.max(0, s.commit - s.applied));
      this.gauge("raft.is.leader", s.role === "leader" ? 1 : 0);
      this.gauge("raft.has.leader", s.leader === "" ? 0 : 1);
    };
    push();
    this.gauges ??= setInterval(push, this.gaugeEveryMs);
    this.gauges.unref();
  }

  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    clearInterval(this.flusher);
    clearInterval(this.gauges);
    this.socket.close();
  }

  private line(name: string, value: number, type: "ms" | "c" | "g"): void {
    if (this.closed) return;
    const v = type === "ms" ? Math.round(value * 1000) / 1000 : Math.round(value);
    const l = `${PREFIX}${name}:${v}|${type}${this.tags}`;
    if (this.bytes + l.length + 1 > MAX_DATAGRAM) this.flush();
    this.lines.push(l);
    this.bytes += l.length + 1;
  }

  private timing(name: string, ms: number): void {
    this.line(name, ms, "ms");
  }

  private incr(name: string, n = 1): void {
    this.line(name, n, "c");
  }

  private gauge(name: string, v: number): void {
    this.line(name, v, "g");
  }

  /** Sends what is batched now. */
  flush(): void {
    if (this.lines.length === 0 || this.closed) return;
    const buf = Buffer.from(this.lines.join("\n"));
    this.lines = [];
    this.bytes = 0;
    this.socket.send(buf, this.port, this.host, () => undefined);
  }

  saved(ms: number, outcome: SaveOutcome): void {
    this.timing("save.latency.ms", ms);
    if (outcome === "dropped" || outcome === "no_leader") this.incr("raft.propose.error");
    else if (outcome === "unknown_outcome") this.incr("save.timeout.error");
    else if (outcome !== "ok") this.incr(`save.${outcome.replace("_", ".")}`);
  }

  loaded(ms: number, outcome: LoadOutcome, mode: ReadConsistency): void {
    this.timing("load.latency.ms", ms);
    this.timing(`load.${mode}.latency.ms`, ms);
    if (outcome === "timeout") this.incr("load.timeout.error");
    else if (outcome === "no_leader") this.incr("raft.read.index.error");
    else if (outcome !== "ok") this.incr(`load.${outcome.replace("_", ".")}`);
  }

  applied(ms: number, entries: number): void {
    this.timing("store.apply.latency.ms", ms);
    this.incr("store.applied.entries", entries);
  }

  walSynced(ms: number, bytes: number): void {
    this.timing("wal.fsync.latency.ms", ms);
    this.incr("wal.written.bytes", bytes);
  }

  snapshotTaken(ms: number, bytes: number): void {
    this.incr("snapshot.taken");
    this.timing("snapshot.take.latency.ms", ms);
    this.incr("snapshot.taken.bytes", bytes);
  }

  snapshotTransferred(t: SnapshotTransfer, ms: number, ok: boolean): void {
    const d = t.direction === "send" ? "sent" : "received";
    this.incr(ok ? `snapshot.${d}` : `snapshot.${d}.error`);
    this.incr(`snapshot.${d}.bytes`, t.bytes);
    if (ok) this.timing(`snapshot.${d}.latency.ms`, ms);
  }

  leaderChanged(): void {
    this.incr("raft.leader.changes");
  }
}
