/**
 * The segmented write-ahead log. See DESIGN.md in this folder for the on-disk format.
 *
 * - Records are appended to the current segment; a batch of saves is one write and one
 *   fdatasync (group commit: saves made while a sync is in flight go into the next one).
 * - Segments have a fixed, preallocated size and are named `<seq>-<firstIndex>.wal` (16 hex
 *   digits each); the next segment is prepared in the background.
 * - Each segment starts with a segment record, the current hard state and the latest snapshot
 *   marker, so older segments can be deleted without losing what recovery needs.
 * - Recovery reads every segment. A damaged record at the very end of the last segment (a torn
 *   write) is cut off; any other damage refuses to open with an error naming the file and offset.
 * - A write or sync error fails the WAL for good: every pending and later save rejects.
 */
import { dirname, join } from "node:path";
import { NexusError } from "../errors/index.js";
import type { Entry, HardState } from "../raft/types.js";
import { EMPTY_HARD_STATE } from "../raft/types.js";
import type { FsFile, FsLayer } from "./fs-layer.js";
import { createNodeFs } from "./fs-layer.js";
import { LogPositions } from "./log-positions.js";
import {
  HEADER_BYTES,
  RecordType,
  decodeEntry,
  decodeHardState,
  decodePair,
  entryPosition,
  entryRecordSize,
  hardStateRecord,
  readRecord,
  segmentRecord,
  snapshotRecord,
  writeEntryRecord,
} from "./record.js";
import type { RawRecord } from "./record.js";

/** Options of a WAL. */
export interface WalOptions {
  /** File-system layer (tests inject faults). Default: node:fs. */
  readonly fs?: FsLayer;
  /** Size of a segment in bytes (preallocated). Default 64 MiB. */
  readonly segmentBytes?: number;
  /** Keep at most this many segments (0 = unlimited), never removing what recovery needs. */
  readonly maxWals?: number;
  /** Where warnings go, called as pino is: `(fields, msg)` (a NexusLogger fits). */
  readonly logger?: { warn(fields: Readonly<Record<string, unknown>>, msg: string): void };
}

/** A snapshot marker: the log before (index, term) may be dropped. */
export interface SnapshotMarker {
  readonly index: number;
  readonly term: number;
}

/** What recovery found. */
export interface WalState {
  readonly hardState: HardState;
  /** The newest snapshot marker (0/0 if none). */
  readonly snapshot: SnapshotMarker;
  /** Index of the first entry after the snapshot held by the WAL, and the last. */
  readonly firstIndex: number;
  readonly lastIndex: number;
  /** Bytes cut off a torn last record, if any (and where). */
  readonly tornTail: { file: string; offset: number; bytes: number } | undefined;
}

const SEGMENT_RE = /^([0-9a-f]{16})-([0-9a-f]{16})\.wal$/;

/** A segment file's name. */
export function segmentName(seq: number, firstIndex: number): string {
  return `${seq.toString(16).padStart(16, "0")}-${firstIndex.toString(16).padStart(16, "0")}.wal`;
}

/** The WAL on disk is corrupted at a file and offset (code CORRUPTED). */
export class WalCorruptedError extends NexusError {
  readonly dir: string;
  readonly file: string;
  readonly offset: number;
  constructor(dir: string, file: string, offset: number, what: string) {
    super(
      "CORRUPTED",
      `write-ahead log corrupted: ${join(dir, file)} at offset ${offset}: ${what}. ` +
        `Nothing was changed. Run \`nexus wal repair ${dir}\` to keep everything up to the last ` +
        `good record (the damaged tail is moved aside), or restore this node from a peer.`,
    );
    this.name = "WalCorruptedError";
    this.dir = dir;
    this.file = file;
    this.offset = offset;
  }
}

function corruptedError(
  dir: string,
  file: string,
  offset: number,
  what: string,
): WalCorruptedError {
  return new WalCorruptedError(dir, file, offset, what);
}

interface Segment {
  seq: number;
  firstIndex: number;
  name: string;
  file: FsFile | undefined;
}

interface PendingSave {
  readonly records: Uint8Array[];
  readonly entries: readonly Entry[];
  readonly marker: SnapshotMarker | undefined;
  readonly hardState: HardState | undefined;
  resolve(): void;
  reject(e: Error): void;
}

/** A problem found while scanning a segment. */
interface ScanProblem {
  readonly offset: number;
  readonly what: string;
}

/** Scans segment bytes; calls onRecord for each good record; returns where it stopped. */
function scanSegment(
  buf: Uint8Array,
  onRecord: (r: RawRecord) => string | undefined,
): { end: number; problem: ScanProblem | undefined } {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let off = 0;
  for (;;) {
    const r = readRecord(buf, dv, off, buf.byteLength);
    if (r === "end") return { end: off, problem: undefined };
    if (typeof r === "string") return { end: off, problem: { offset: off, what: `record ${r}` } };
    const bad = onRecord(r);
    if (bad !== undefined) return { end: off, problem: { offset: off, what: bad } };
    off = r.payloadOffset + r.payloadLength;
  }
}

/** Whether any good record starts after offset `from` (so damage there is not a torn tail). */
function goodRecordAfter(buf: Uint8Array, from: number): number | undefined {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  for (let off = from + 1; off + HEADER_BYTES <= buf.byteLength; off++) {
    const t = buf[off + 4]!;
    if (t < 1 || t > 4 || buf[off + 5] !== 0 || buf[off + 6] !== 0 || buf[off + 7] !== 0) continue;
    const r = readRecord(buf, dv, off, buf.byteLength);
    if (typeof r !== "string") return off;
  }
  return undefined;
}

async function readWhole(fs: FsLayer, path: string): Promise<Uint8Array> {
  const f = await fs.open(path, "r");
  try {
    const size = await f.size();
    const buf = new Uint8Array(size);
    let off = 0;
    while (off < size) {
      const n = await f.read(buf.subarray(off, Math.min(size, off + 8 * 1024 * 1024)), off);
      if (n <= 0) break;
      off += n;
    }
    return off === size ? buf : buf.subarray(0, off);
  } finally {
    await f.close();
  }
}

export class Wal {
  readonly dir: string;
  private readonly fs: FsLayer;
  private readonly segmentBytes: number;
  private readonly maxWals: number;
  private readonly segments: Segment[];
  /** Where entries live, for reads of entries no longer cached. */
  readonly positions: LogPositions;
  private writeOffset: number;
  private hardState: HardState;
  private marker: SnapshotMarker;
  private queue: PendingSave[] = [];
  private flushing = false;
  private failure: NexusError | undefined;
  private closed = false;
  private nextSegment: Promise<FsFile> | undefined;
  private readonly logger: WalOptions["logger"];

  private constructor(
    dir: string,
    fs: FsLayer,
    opts: WalOptions,
    segments: Segment[],
    positions: LogPositions,
    writeOffset: number,
    hardState: HardState,
    marker: SnapshotMarker,
  ) {
    this.dir = dir;
    this.fs = fs;
    this.segmentBytes = opts.segmentBytes ?? 64 * 1024 * 1024;
    this.maxWals = opts.maxWals ?? 5;
    this.segments = segments;
    this.positions = positions;
    this.writeOffset = writeOffset;
    this.hardState = hardState;
    this.marker = marker;
    this.logger = opts.logger;
  }

  /**
   * Opens the WAL in dir, creating it (atomically) if absent, and recovers its state. Throws
   * NexusError CORRUPTED naming the file and offset if anything but a torn tail is damaged.
   */
  static async open(dir: string, opts: WalOptions = {}): Promise<{ wal: Wal; state: WalState }> {
    const fs = opts.fs ?? createNodeFs();
    const segmentBytes = opts.segmentBytes ?? 64 * 1024 * 1024;
    if (!(await fs.exists(dir))) await Wal.create(fs, dir, segmentBytes);
    for (const name of await fs.readdir(dir)) {
      if (name.endsWith(".tmp")) await fs.unlink(join(dir, name));
    }
    const names = (await fs.readdir(dir)).filter((n) => SEGMENT_RE.test(n)).sort();
    if (names.length === 0) {
      throw new NexusError(
        "CORRUPTED",
        `write-ahead log ${dir} has no segment files; it is not a WAL or it was emptied. ` +
          `Move the directory away to start this node empty and let it catch up from its peers.`,
      );
    }
    const segments: Segment[] = names.map((name) => {
      const m = SEGMENT_RE.exec(name)!;
      return { seq: parseInt(m[1]!, 16), firstIndex: parseInt(m[2]!, 16), name, file: undefined };
    });
    for (let i = 1; i < segments.length; i++) {
      if (segments[i]!.seq !== segments[i - 1]!.seq + 1) {
        throw corruptedError(
          dir,
          segments[i]!.name,
          0,
          `segment ${segments[i - 1]!.seq + 1} is missing between ${segments[i - 1]!.name} and ${segments[i]!.name}`,
        );
      }
    }

    const positions = new LogPositions();
    let hardState: HardState = EMPTY_HARD_STATE;
    let marker: SnapshotMarker = { index: 0, term: 0 };
    let writeOffset = 0;
    let tornTail: WalState["tornTail"];
    for (let si = 0; si < segments.length; si++) {
      const seg = segments[si]!;
      const isLast = si === segments.length - 1;
      const buf = await readWhole(fs, join(dir, seg.name));
      const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
      let first = true;
      const { end, problem } = scanSegment(buf, (r) => {
        if (first) {
          first = false;
          const p = r.type === RecordType.segment ? decodePair(dv, r) : undefined;
          if (p === undefined || p[0] !== seg.seq || p[1] !== seg.firstIndex) {
            return "the segment header does not match the file name";
          }
          if (si > 0 && positions.count > 0 && seg.firstIndex > positions.last + 1) {
            return `segment starts at index ${seg.firstIndex} but the log ends at ${positions.last}`;
          }
          if (si === 0 || positions.count === 0) positions.clear(seg.firstIndex);
          return undefined;
        }
        switch (r.type) {
          case RecordType.entry: {
            const pos = entryPosition(buf, dv, r);
            if (pos === undefined) return "malformed entry record";
            const expected = positions.count > 0 ? positions.last + 1 : positions.first;
            if (pos.index > expected && pos.index !== marker.index + 1) {
              return `entry ${pos.index} follows entry ${expected - 1}: records are missing`;
            }
            if (pos.index <= marker.index)
              return `entry ${pos.index} is at or before snapshot ${marker.index}`;
            positions.put(pos.index, pos.term, seg.seq, r.offset, HEADER_BYTES + r.payloadLength);
            return undefined;
          }
          case RecordType.hardState: {
            const hs = decodeHardState(buf, dv, r);
            if (hs === undefined) return "malformed hard-state record";
            hardState = hs;
            return undefined;
          }
          case RecordType.snapshot: {
            const p = decodePair(dv, r);
            if (p === undefined) return "malformed snapshot record";
            // Every segment repeats the newest marker: only a newer one changes anything.
            if (p[0] > marker.index) {
              marker = { index: p[0], term: p[1] };
              markPositions(positions, marker);
            }
            return undefined;
          }
          case RecordType.segment:
            return "a segment record in the middle of a segment";
          default:
            return `unknown record type ${r.type}`;
        }
      });
      if (first && problem === undefined) {
        // A segment with no header at all: only a crash right after creating the last one.
        if (!isLast) throw corruptedError(dir, seg.name, 0, "the segment is empty");
      }
      if (problem !== undefined) {
        const later = goodRecordAfter(buf, problem.offset);
        if (!isLast || later !== undefined) {
          const detail = later !== undefined ? ` (a good record follows at offset ${later})` : "";
          throw corruptedError(dir, seg.name, problem.offset, problem.what + detail);
        }
        // A torn write at the very end: cut it off (zero it so no stale bytes remain).
        let lastNonZero = buf.byteLength - 1;
        while (lastNonZero >= problem.offset && buf[lastNonZero] === 0) lastNonZero--;
        const bytes = lastNonZero - problem.offset + 1;
        tornTail = { file: seg.name, offset: problem.offset, bytes };
        opts.logger?.warn(tornTail, "cut off a torn record at the end of the write-ahead log");
        const f = await fs.open(join(dir, seg.name), "r+");
        try {
          await f.write(new Uint8Array(bytes), problem.offset);
          await f.datasync();
        } finally {
          await f.close();
        }
      }
      if (isLast) writeOffset = end;
    }
    if (positions.count > 0 && positions.first > marker.index + 1) {
      // The oldest segments were removed only once a snapshot covered them; no such snapshot.
      throw corruptedError(
        dir,
        segments[0]!.name,
        0,
        `entries ${marker.index + 1} to ${positions.first - 1} are missing and no snapshot covers them`,
      );
    }
    const last = segments[segments.length - 1]!;
    last.file = await fs.open(join(dir, last.name), "r+");
    const wal = new Wal(dir, fs, opts, segments, positions, writeOffset, hardState, marker);
    for (const s of segments) {
      if (s !== last) wal.readHandles.set(s.seq, await fs.open(join(dir, s.name), "r"));
    }
    if (writeOffset === 0) {
      // The last segment lost its header in a crash right after creation: rewrite it.
      await wal.writeSegmentPreamble(last);
    }
    const firstIndex = positions.count > 0 ? positions.first : marker.index + 1;
    return {
      wal,
      state: {
        hardState,
        snapshot: marker,
        firstIndex,
        lastIndex: positions.count > 0 ? positions.last : marker.index,
        tornTail,
      },
    };
  }

  /** Creates a new WAL directory atomically: build it under a temporary name, then rename. */
  private static async create(fs: FsLayer, dir: string, segmentBytes: number): Promise<void> {
    const tmp = `${dir}.tmp`;
    await fs.rmrf(tmp);
    await fs.mkdirp(tmp);
    const name = segmentName(0, 1);
    const f = await fs.open(join(tmp, name), "w");
    try {
      await preallocate(f, segmentBytes);
      const hdr = segmentRecord(0, 1);
      await f.write(hdr, 0);
      await f.datasync();
    } finally {
      await f.close();
    }
    await fs.syncDir(tmp);
    await fs.rename(tmp, dir);
    await fs.syncDir(dirname(dir));
  }

  private async writeSegmentPreamble(seg: Segment): Promise<void> {
    const parts = [
      segmentRecord(seg.seq, seg.firstIndex),
      hardStateRecord(this.hardState),
      snapshotRecord(this.marker.index, this.marker.term),
    ];
    const buf = concat(parts);
    await seg.file!.write(buf, 0);
    await seg.file!.datasync();
    this.writeOffset = buf.byteLength;
  }

  /** The hard state as of the last save. */
  lastHardState(): HardState {
    return this.hardState;
  }

  /** The newest snapshot marker. */
  snapshotMarker(): SnapshotMarker {
    return this.marker;
  }

  /** The error that failed the WAL, if any. */
  failed(): NexusError | undefined {
    return this.failure;
  }

  /**
   * Appends entries (and the hard state, if given) durably. Resolves once they are fsynced;
   * saves are written in call order. Appending index i replaces any entries >= i.
   * Rejects with NexusError WAL_FAILED (for good) if a write or sync fails.
   */
  save(hardState: HardState | undefined, entries: readonly Entry[]): Promise<void> {
    return this.enqueue(hardState, entries, undefined);
  }

  /**
   * Records durably that a snapshot at (index, term) exists: recovery starts the log after it.
   * Save the snapshot file itself first.
   */
  saveSnapshotMarker(marker: SnapshotMarker): Promise<void> {
    return this.enqueue(undefined, [], marker);
  }

  private enqueue(
    hardState: HardState | undefined,
    entries: readonly Entry[],
    marker: SnapshotMarker | undefined,
  ): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.closed)
      return Promise.reject(new NexusError("STOPPED", "the write-ahead log is closed"));
    for (const e of entries) {
      if (
        !Number.isSafeInteger(e.index) ||
        e.index < 1 ||
        !Number.isSafeInteger(e.term) ||
        e.term < 1
      ) {
        return Promise.reject(new NexusError("INTERNAL", `invalid entry ${e.index}/${e.term}`));
      }
    }
    const records: Uint8Array[] = [];
    if (marker !== undefined) records.push(snapshotRecord(marker.index, marker.term));
    if (hardState !== undefined) records.push(hardStateRecord(hardState));
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ records, entries, marker, hardState, resolve, reject });
      if (!this.flushing) void this.flush();
    });
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    try {
      while (this.queue.length > 0 && this.failure === undefined) {
        const batch = this.queue;
        this.queue = [];
        try {
          await this.writeBatch(batch);
          for (const p of batch) p.resolve();
        } catch (err) {
          this.failure = new NexusError(
            "WAL_FAILED",
            `write-ahead log write or sync failed in ${this.dir}: ${(err as Error).message}. ` +
              "The node must stop: nothing written since the last successful sync can be trusted. " +
              "Fix the disk, then restart the node.",
            { cause: err },
          );
          this.logger?.warn({ error: (err as Error).message }, "write-ahead log failed");
          for (const p of batch) p.reject(this.failure);
        }
      }
      if (this.failure !== undefined) {
        const rest = this.queue;
        this.queue = [];
        for (const p of rest) p.reject(this.failure);
      }
    } finally {
      this.flushing = false;
    }
  }

  private async writeBatch(batch: readonly PendingSave[]): Promise<void> {
    let size = 0;
    for (const p of batch) {
      for (const r of p.records) size += r.byteLength;
      for (const e of p.entries) size += entryRecordSize(e);
    }
    if (this.writeOffset + size > this.segmentBytes && this.writeOffset > this.preambleSize()) {
      await this.roll(batch);
    }
    const seg = this.segments[this.segments.length - 1]!;
    const buf = new Uint8Array(size);
    const dv = new DataView(buf.buffer);
    let off = 0;
    const placed: { e: Entry; off: number; len: number }[] = [];
    for (const p of batch) {
      for (const r of p.records) {
        buf.set(r, off);
        off += r.byteLength;
      }
      for (const e of p.entries) {
        const start = off;
        off = writeEntryRecord(buf, dv, off, e);
        placed.push({ e, off: this.writeOffset + start, len: off - start });
      }
    }
    await seg.file!.write(buf, this.writeOffset);
    await seg.file!.datasync();
    this.writeOffset += size;
    // Update the in-memory view only once durable.
    let i = 0;
    for (const p of batch) {
      if (p.marker !== undefined) this.applyMarker(p.marker);
      if (p.hardState !== undefined) this.hardState = p.hardState;
      for (let k = 0; k < p.entries.length; k++, i++) {
        const pl = placed[i]!;
        this.positions.put(pl.e.index, pl.e.term, seg.seq, pl.off, pl.len);
      }
    }
  }

  private preambleSize(): number {
    return 2 * (HEADER_BYTES + 16) + hardStateRecord(this.hardState).byteLength;
  }

  private applyMarker(m: SnapshotMarker): void {
    if (m.index <= this.marker.index) return;
    this.marker = m;
    // While running, entries up to the snapshot stay readable (the catch-up window) until
    // releaseTo(); only a snapshot that replaces the log (received from the leader) resets it.
    const p = this.positions;
    if (p.count === 0 || m.index > p.last || (m.index >= p.first && p.term(m.index) !== m.term)) {
      p.clear(m.index + 1);
    }
  }

  /** Starts a new segment for a batch that does not fit in the current one. */
  private async roll(batch: readonly PendingSave[]): Promise<void> {
    const cur = this.segments[this.segments.length - 1]!;
    // The first entry index of the new segment: the next index after the log (or the batch's).
    let firstIndex = this.positions.count > 0 ? this.positions.last + 1 : this.marker.index + 1;
    const firstBatchEntry = batch.find((p) => p.entries.length > 0)?.entries[0];
    if (firstBatchEntry !== undefined && firstBatchEntry.index < firstIndex) {
      // The batch starts by replacing a suffix: the new segment begins at its first entry.
      firstIndex = firstBatchEntry.index;
    }
    const seq = cur.seq + 1;
    const name = segmentName(seq, firstIndex);
    const tmpFile = await (this.nextSegment ?? this.prepareSegment());
    this.nextSegment = undefined;
    await this.fs.rename(join(this.dir, "next.tmp"), join(this.dir, name));
    await this.fs.syncDir(this.dir);
    // The sealed segment stays open for reads of old entries.
    this.readHandles.set(cur.seq, cur.file!);
    cur.file = undefined;
    const seg: Segment = { seq, firstIndex, name, file: tmpFile };
    this.segments.push(seg);
    // Hard state and marker as of now, so this segment alone suffices for recovery.
    let hs = this.hardState;
    let marker = this.marker;
    for (const p of batch) {
      if (p.marker !== undefined && p.marker.index >= marker.index) marker = p.marker;
      if (p.hardState !== undefined) hs = p.hardState;
    }
    const buf = concat([
      segmentRecord(seq, firstIndex),
      hardStateRecord(hs),
      snapshotRecord(marker.index, marker.term),
    ]);
    await tmpFile.write(buf, 0);
    // The preamble is durable before any record follows it.
    await tmpFile.datasync();
    this.writeOffset = buf.byteLength;
    // Prepare the following segment in the background.
    this.nextSegment = this.prepareSegment();
    this.nextSegment.catch(() => undefined);
    await this.applyRetention();
  }

  private async prepareSegment(): Promise<FsFile> {
    const f = await this.fs.open(join(this.dir, "next.tmp"), "w");
    await preallocate(f, this.segmentBytes);
    await f.datasync();
    return f;
  }

  /**
   * Allows segments wholly before `index` to be removed (entries older than the kept catch-up
   * window). Recovery never needs them: every segment repeats the hard state and snapshot marker.
   */
  async releaseTo(index: number): Promise<void> {
    this.releaseIndex = Math.max(this.releaseIndex, index);
    if (index <= this.marker.index + 1) this.positions.dropBefore(index);
    await this.applyRetention();
  }

  private releaseIndex = 0;

  private async applyRetention(): Promise<void> {
    // Never remove the last segment, nor anything holding entries after the snapshot.
    while (this.segments.length > 1) {
      const next = this.segments[1]!;
      const wholly = next.firstIndex <= this.releaseIndex;
      const overLimit = this.maxWals > 0 && this.segments.length > this.maxWals;
      const notNeeded = next.firstIndex <= this.marker.index + 1;
      if (!(wholly && notNeeded) && !(overLimit && notNeeded)) break;
      const old = this.segments.shift()!;
      await this.readHandles.get(old.seq)?.close();
      this.readHandles.delete(old.seq);
      await this.fs.unlink(join(this.dir, old.name));
      await this.fs.syncDir(this.dir);
    }
  }

  /** Segment file names, oldest first (for tests and status). */
  segmentNames(): string[] {
    return this.segments.map((s) => s.name);
  }

  /**
   * Reads entry `index` back from its segment (synchronously: used for old entries only).
   * Throws if the WAL no longer has it.
   */
  readEntrySync(index: number): Entry {
    if (!this.positions.has(index)) {
      throw new NexusError("INTERNAL", `entry ${index} is not in the write-ahead log`);
    }
    const seq = this.positions.seq(index);
    const seg = this.segments.find((s) => s.seq === seq);
    if (seg === undefined)
      throw new NexusError("INTERNAL", `segment ${seq} of entry ${index} is gone`);
    const len = this.positions.length(index);
    const buf = new Uint8Array(len);
    const fd = seg.file ?? this.readHandle(seg);
    const n = fd.readSync(buf, this.positions.offset(index));
    const dv = new DataView(buf.buffer);
    const r = n === len ? readRecord(buf, dv, 0, len) : "truncated";
    const e = typeof r === "string" ? undefined : decodeEntry(buf, dv, r, false);
    if (e === undefined || e.index !== index) {
      throw corruptedError(
        this.dir,
        seg.name,
        this.positions.offset(index),
        `entry ${index} reads back damaged`,
      );
    }
    return e;
  }

  private readonly readHandles = new Map<number, FsFile>();

  private readHandle(seg: Segment): FsFile {
    const h = this.readHandles.get(seg.seq);
    if (h === undefined) throw new NexusError("INTERNAL", `segment ${seg.name} is not open`);
    return h;
  }

  /** Waits for pending saves, then closes every file. */
  async close(): Promise<void> {
    if (this.closed) return;
    while (this.flushing || this.queue.length > 0) await new Promise((r) => setTimeout(r, 1));
    this.closed = true;
    for (const s of this.segments) {
      await s.file?.close().catch(() => undefined);
      s.file = undefined;
    }
    for (const h of this.readHandles.values()) await h.close().catch(() => undefined);
    this.readHandles.clear();
    if (this.nextSegment !== undefined) {
      const f = await this.nextSegment.catch(() => undefined);
      await f?.close().catch(() => undefined);
      this.nextSegment = undefined;
    }
  }
}

/**
 * Applies a snapshot marker to the entry positions: entries up to the snapshot are dropped; a
 * snapshot beyond the log, or one that disagrees with the entry at its index (a follower that
 * received the leader's snapshot), restarts the log after it. A marker older than the first
 * entry held changes nothing.
 */
function markPositions(positions: LogPositions, m: SnapshotMarker): void {
  if (positions.count === 0) {
    if (m.index + 1 > positions.first) positions.clear(m.index + 1);
    return;
  }
  if (m.index < positions.first) return;
  if (m.index <= positions.last && positions.term(m.index) === m.term) {
    positions.dropBefore(m.index + 1);
  } else {
    positions.clear(m.index + 1);
  }
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.byteLength;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.byteLength;
  }
  return out;
}

/** Fills a new file with zeros so later writes do not allocate blocks or change its size. */
async function preallocate(f: FsFile, bytes: number): Promise<void> {
  const chunk = new Uint8Array(Math.min(bytes, 1024 * 1024));
  for (let off = 0; off < bytes; off += chunk.byteLength) {
    await f.write(chunk.subarray(0, Math.min(chunk.byteLength, bytes - off)), off);
  }
}
