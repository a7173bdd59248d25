/**
 * Opt-in timestamps along the write path, for the benchmark's latency breakdown
 * (`npm run bench -- vs-etcd`). Off unless the environment variable NEXUS_TRACE_WRITES names a
 * file when the process loads this module; when off, `writeTrace` is undefined and every hook is
 * one `?.` on undefined. When on, each node appends JSON lines to that file (synchronously: for
 * measurements at low load, not for production):
 *
 * - `{"kind":"write","index",...}` for each entry applied here: `proposedAt` (only on the node
 *   that took the request), `walStartAt`/`walDoneAt` (this node's WAL write + fdatasync of the
 *   batch holding the entry), `committedAt` (this node learned it is committed), `appliedAt`
 *   (the store applied it);
 * - `{"kind":"grpc","receivedAt","answeredAt"}` for each Save the gRPC service answered.
 *
 * Times are epoch milliseconds with sub-millisecond precision (`performance.timeOrigin +
 * performance.now()`), comparable across the processes of one machine.
 */
import { appendFileSync } from "node:fs";
import type { Entry } from "../raft/types.js";

interface IndexMarks {
  walStartAt?: number;
  walDoneAt?: number;
  committedAt?: number;
}

/** Entries tracked at once at most; older marks are dropped (e.g. entries that are not writes). */
const MAX_TRACKED = 10_000;

/** The recorder: one per process, writing to one file. */
export class WriteTrace {
  private readonly proposed = new Map<string, number>();
  private readonly marks = new Map<number, IndexMarks>();

  constructor(private readonly file: string) {}

  /** Now, in epoch milliseconds with sub-millisecond precision. */
  now(): number {
    return performance.timeOrigin + performance.now();
  }

  private at(index: number): IndexMarks {
    let m = this.marks.get(index);
    if (m === undefined) {
      if (this.marks.size >= MAX_TRACKED) this.marks.clear();
      m = {};
      this.marks.set(index, m);
    }
    return m;
  }

  /** A write with request key `key` was proposed here. */
  proposedWrite(key: string): void {
    if (this.proposed.size >= MAX_TRACKED) this.proposed.clear();
    this.proposed.set(key, this.now());
  }

  /** `entries` go to this node's WAL now. */
  walStart(entries: readonly Entry[]): void {
    const t = this.now();
    for (const e of entries) this.at(e.index).walStartAt = t;
  }

  /** `entries` are durable in this node's WAL. */
  walDone(entries: readonly Entry[]): void {
    const t = this.now();
    for (const e of entries) this.at(e.index).walDoneAt = t;
  }

  /** This node learned that `entries` are committed. */
  committed(entries: readonly Entry[]): void {
    const t = this.now();
    for (const e of entries) this.at(e.index).committedAt = t;
  }

  /** The store applied the write with request key `key` at `index`: its line is written. */
  applied(key: string, index: number): void {
    const appliedAt = this.now();
    const proposedAt = this.proposed.get(key);
    this.proposed.delete(key);
    const m = this.marks.get(index) ?? {};
    this.marks.delete(index);
    this.line({ kind: "write", index, proposedAt, ...m, appliedAt });
  }

  /** The gRPC service answered a Save it received at `receivedAt`. */
  answered(receivedAt: number): void {
    this.line({ kind: "grpc", receivedAt, answeredAt: this.now() });
  }

  private line(o: Record<string, unknown>): void {
    appendFileSync(this.file, JSON.stringify(o) + "\n");
  }
}

const file = process.env["NEXUS_TRACE_WRITES"];

/** The process's recorder when NEXUS_TRACE_WRITES names a file, else undefined (tracing off). */
export const writeTrace: WriteTrace | undefined =
  file === undefined || file === "" ? undefined : new WriteTrace(file);
