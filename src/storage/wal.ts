/**
 * The segmented write-ahead log. See DESIGN.md in this folder for the on-disk format.
 *
 * - Records are appended to the current segment; a batch of saves is one write and one
 *   fdatasync (group commit: saves made while a sync is in flight go into the next one). Each
 *   save is written as [snapshot marker][entries][hard state], so any prefix of a batch that
 *   reaches the disk is a state a node can open: a hard state never precedes the entries it
 *   commits.
 * - Segments have a fixed, preallocated size and are named `<seq>-<firstIndex>.wal` (16 hex
 *   digits each); the next segment is prepared in the background.
 * - Each segment starts with a segment record, the durable hard state and the latest snapshot
 *   marker, so older segments can be deleted without losing what recovery needs.
 * - A snapshot marker that replaces the log (a snapshot received from a leader, beyond the log or
 *   disagreeing with it) is flagged RESTARTS_LOG when written: replay then voids the entries
 *   before it, whether or not the segments that held the log it replaced still exist.
 * - Recovery reads every segment. Damage at the end of the last segment that only the last,
 *   unsynced write batch can explain (a torn write, possibly with holes) is cut off; any other
 *   damage refuses to open with an error naming the file and offset (segment-scan.ts). A commit
 *   beyond the last entry recovered is never trusted.
 * - On real files a batch's write and fdatasync are done in one hop by a dedicated writer thread
 *   (wal-writer.ts); with an fs layer without descriptors, through the layer.
 * - A write or sync error fails the WAL for good: every pending and later save rejects.
 * - Crash points (WAL_CRASH_POINTS) name every instant around a write, fsync, rename and unlink.
 */
import { dirname, join } from "node:path";
import { NexusError } from "../errors/index.js";
import type { Entry, HardState } from "../raft/types.js";
import { EMPTY_HARD_STATE, isEmptyHardState } from "../raft/types.js";
import type { CrashHook, CrashPoint } from "./crash-points.js";
import type { FsFile, FsLayer } from "./fs-layer.js";
import { createNodeFs } from "./fs-layer.js";
import { LogPositions } from "./log-positions.js";
import { WalWriter } from "./wal-writer.js";
import {
  BATCH_END,
  HEADER_BYTES,
  RESTARTS_LOG,
  RecordType,
  decodeEntry,
  decodeHardState,
  decodePair,
  entryPosition,
  entryRecordSize,
  hardStateRecord,
  nextBatch,
  readRecord,
  segmentRecord,
  snapshotRecord,
  writeEntryRecord,
} from "./record.js";
import type { RawRecord, RecordTag } from "./record.js";
import {
  lastNonZero,
  readSegmentRecords,
  recordsAfter,
  whyNotUnsyncedTail,
} from "./segment-scan.js";

/**
 * The WAL's crash points, in the order a WAL's life reaches them. Each doc line says what is on
 * disk at that instant. A hook given in `WalOptions.crash` is called with the name at each one.
 */
export const WAL_CRASH_POINTS = [
  {
    name: "wal.create-after-segment-sync",
    doc: "a new WAL's first segment is written and synced under <dir>.tmp; <dir> does not exist yet",
  },
  {
    name: "wal.create-after-rename",
    doc: "<dir>.tmp was renamed to <dir>; the parent directory is not synced (a power loss may undo the rename)",
  },
  {
    name: "wal.create-after-dir-sync",
    doc: "the new WAL directory is durable; nothing else was written",
  },
  {
    name: "wal.open-after-tmp-unlink",
    doc: "recovery removed a leftover next.tmp (not yet a segment); the directory is not synced",
  },
  {
    name: "wal.open-after-tail-cut-write",
    doc: "recovery zeroed a torn tail of the last segment; the zeros are not synced (any part may be lost)",
  },
  {
    name: "wal.open-after-tail-cut-sync",
    doc: "the torn tail is durably zeroed; the seal (if any) is not written yet",
  },
  {
    name: "wal.open-after-seal-write",
    doc: "recovery appended a hard-state record closing an incomplete last batch; not synced",
  },
  {
    name: "wal.open-after-seal-sync",
    doc: "the seal is durable: the recovered log ends with a complete write batch",
  },
  {
    name: "wal.batch-before-write",
    doc: "a batch of saves is encoded; none of it is on disk (everything before it is synced)",
  },
  {
    name: "wal.batch-after-write",
    doc: "a batch is written but not synced: a power loss keeps any subset of its pages",
  },
  {
    name: "wal.batch-after-sync",
    doc: "a batch is durable; its saves are not yet resolved (nothing acknowledged)",
  },
  {
    name: "wal.prepare-after-write",
    doc: "next.tmp is preallocated (zeros) but not synced; it is not a segment",
  },
  {
    name: "wal.prepare-after-sync",
    doc: "next.tmp's zeros are durable; its name may not be (directory not synced)",
  },
  {
    name: "wal.roll-before-rename",
    doc: "the current segment is full and synced; next.tmp is ready; the waiting batch is not written",
  },
  {
    name: "wal.roll-after-rename",
    doc: "next.tmp was renamed to the new segment's name; the directory is not synced",
  },
  {
    name: "wal.roll-after-dir-sync",
    doc: "the new, still empty segment is durable under its name; no preamble yet",
  },
  {
    name: "wal.preamble-after-write",
    doc: "a new segment's preamble (segment record, durable hard state, marker) is written, not synced",
  },
  {
    name: "wal.preamble-after-sync",
    doc: "the new segment's preamble is durable; no batch has been written to it",
  },
  {
    name: "wal.release-before-retention",
    doc: "compaction: releaseTo() was called after the snapshot marker became durable; no segment removed yet",
  },
  {
    name: "wal.retention-before-unlink",
    doc: "the oldest segment is about to be removed; the log view no longer serves its entries",
  },
  {
    name: "wal.retention-after-unlink",
    doc: "the oldest segment is unlinked; the directory is not synced (a power loss may bring it back)",
  },
  {
    name: "wal.retention-after-dir-sync",
    doc: "the segment's removal is durable",
  },
] as const satisfies readonly CrashPoint[];

/** The name of one of the WAL's crash points. */
export type WalCrashPoint = (typeof WAL_CRASH_POINTS)[number]["name"];

/** Options of a WAL. */
export interface WalOptions {
  /** File-system layer (tests inject faults). Default: node:fs. */
  readonly fs?: FsLayer;
  /** Size of a segment in bytes (preallocated). Default 64 MiB. */
  readonly segmentBytes?: number;
  /**
   * Keep at most this many segment files (0 = unlimited). Default 5. A hard bound on disk use
   * that wins over the catch-up window: segments holding only entries at or below the newest
   * snapshot marker are removed, and the log view stops serving their entries first (a
   * follower that needs them gets the snapshot). Entries after the snapshot are never removed,
   * so the bound holds as long as snapshots are taken.
   */
  readonly maxWals?: number;
  /** Told after each batch write and its fdatasync: how long it took (ms) and its bytes. */
  readonly onSync?: (ms: number, bytes: number) => void;
  /** Where warnings go, called as pino is: `(fields, msg)` (a NexusLogger fits). */
  readonly logger?: { warn(fields: Readonly<Record<string, unknown>>, msg: string): void };
  /** Called at each crash point (WAL_CRASH_POINTS), for crash tests. Default: none. */
  readonly crash?: CrashHook;
  /**
   * How write batches reach the disk. "worker" (default): a dedicated thread writes and
   * fdatasyncs each batch with synchronous calls, one hop (wal-writer.ts); used only when the fs
   * layer gives real descriptors (node:fs), otherwise "thread-pool". "thread-pool": an
   * asynchronous write then an asynchronous fdatasync through the fs layer.
   */
  readonly writer?: "worker" | "thread-pool";
}

/** A snapshot marker: the log before (index, term) may be dropped. */
export interface SnapshotMarker {
  readonly index: number;
  readonly term: number;
}

/** What recovery found. */
export interface WalState {
  /**
   * The hard state, its commit clamped into [snapshot.index, lastIndex] (a warning is logged
   * when it had to be: a commit beyond the entries recovered is never trusted).
   */
  readonly hardState: HardState;
  /** The newest snapshot marker (0/0 if none). */
  readonly snapshot: SnapshotMarker;
  /**
   * Index of the first entry the WAL holds (it may be at or below the snapshot marker: the part
   * of the catch-up window the segments still hold), and the last (the marker's index when the
   * WAL holds no entry after it).
   */
  readonly firstIndex: number;
  readonly lastIndex: number;
  /** Bytes cut off a torn tail of the last segment, if any (and where it began). */
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

/** A record that makes no sense where it is (thrown while reading a segment). */
class BadRecord extends Error {
  constructor(
    readonly offset: number,
    what: string,
  ) {
    super(what);
  }
}

function badRecord(r: RawRecord, what: string): never {
  throw new BadRecord(r.offset, what);
}

interface Segment {
  seq: number;
  firstIndex: number;
  name: string;
  file: FsFile | undefined;
}

interface PendingSave {
  readonly entries: readonly Entry[];
  readonly marker: SnapshotMarker | undefined;
  readonly hardState: HardState | undefined;
  /** A local snapshot's marker: the batch also records the latest hard state with its commit
   * raised to the marker (resolveCommits). */
  readonly raiseCommit?: boolean;
  resolve(): void;
  reject(e: Error): void;
}

const MARKER_RECORD_BYTES = HEADER_BYTES + 16;

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

/** What recovery learned from the segments, before anything is written. */
interface Recovered {
  readonly positions: LogPositions;
  hardState: HardState;
  marker: SnapshotMarker;
  /** Where the last segment's records end. */
  writeOffset: number;
  /** The last good record of the last segment (after any cut). */
  lastRecord: RawRecord | undefined;
  tornTail: WalState["tornTail"];
}

/** A write-ahead log directory, opened with Wal.open() (see the module comment). */
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
  /** The batch tag of the last batch written (0 = none yet). */
  private batchTag: number;
  private queue: PendingSave[] = [];
  private flushing = false;
  private failure: NexusError | undefined;
  private closed = false;
  private nextSegment: Promise<FsFile> | undefined;
  private readonly logger: WalOptions["logger"];
  private readonly crash: CrashHook | undefined;
  private readonly onSync: ((ms: number, bytes: number) => void) | undefined;
  private releaseIndex = 0;
  private readonly readHandles = new Map<number, FsFile>();
  /** The batch writer thread, when batches go through it (WalOptions.writer). */
  private writer: WalWriter | undefined;
  /**
   * The newest entry no longer readable from the WAL (its segment was removed, or a snapshot
   * marker replaced the log), with its term; 0/0 if none. The log view compacts up to it.
   * Invariant: gone.index <= marker.index.
   */
  private goneTo: SnapshotMarker = { index: 0, term: 0 };

  private constructor(
    dir: string,
    fs: FsLayer,
    opts: WalOptions,
    segments: Segment[],
    rec: Recovered,
  ) {
    this.dir = dir;
    this.fs = fs;
    this.segmentBytes = opts.segmentBytes ?? 64 * 1024 * 1024;
    this.maxWals = opts.maxWals ?? 5;
    this.segments = segments;
    this.positions = rec.positions;
    this.writeOffset = rec.writeOffset;
    this.hardState = rec.hardState;
    this.marker = rec.marker;
    this.batchTag = rec.lastRecord?.batch ?? 0;
    this.logger = opts.logger;
    this.crash = opts.crash;
    this.onSync = opts.onSync;
    // Entries at or below the marker that the segments no longer hold are below any snapshot
    // the log view may start from (DiskStorage checks); only a log that starts right after the
    // marker makes the marker itself the newest entry gone.
    const p = rec.positions;
    if (p.count === 0 || p.first > rec.marker.index) this.goneTo = rec.marker;
  }

  /**
   * Opens the WAL in dir, creating it (atomically) if absent, and recovers its state. Throws
   * NexusError CORRUPTED naming the file and offset if anything but a torn tail is damaged.
   */
  static async open(dir: string, opts: WalOptions = {}): Promise<{ wal: Wal; state: WalState }> {
    const fs = opts.fs ?? createNodeFs();
    const segmentBytes = opts.segmentBytes ?? 64 * 1024 * 1024;
    if (!(await fs.exists(dir))) await Wal.create(fs, dir, segmentBytes, opts.crash);
    let removedTmp = false;
    for (const name of await fs.readdir(dir)) {
      if (name.endsWith(".tmp")) {
        await fs.unlink(join(dir, name));
        removedTmp = true;
      }
    }
    if (removedTmp) opts.crash?.("wal.open-after-tmp-unlink");
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
        throw new WalCorruptedError(
          dir,
          segments[i]!.name,
          0,
          `segment ${segments[i - 1]!.seq + 1} is missing between ${segments[i - 1]!.name} and ${segments[i]!.name}`,
        );
      }
    }

    const rec = await Wal.recover(fs, dir, segments, opts);
    const lastIndex = rec.positions.count > 0 ? rec.positions.last : rec.marker.index;
    rec.hardState = clampCommit(rec.hardState, rec.marker.index, lastIndex, (msg, fields) =>
      opts.logger?.warn({ dir, ...fields }, msg),
    );

    const last = segments[segments.length - 1]!;
    last.file = await fs.open(join(dir, last.name), "r+");
    const wal = new Wal(dir, fs, opts, segments, rec);
    for (const s of segments) {
      if (s !== last) wal.readHandles.set(s.seq, await fs.open(join(dir, s.name), "r"));
    }
    if (rec.writeOffset === 0) {
      // The last segment lost its preamble in a crash right after it was created: rewrite it.
      await wal.writeSegmentPreamble(last);
    } else if (rec.lastRecord !== undefined && !rec.lastRecord.batchEnd) {
      await wal.seal(last);
    }
    if ((opts.writer ?? "worker") === "worker" && last.file.fd !== undefined) {
      wal.writer = WalWriter.start();
    }
    return {
      wal,
      state: {
        hardState: rec.hardState,
        snapshot: rec.marker,
        firstIndex: rec.positions.count > 0 ? rec.positions.first : rec.marker.index + 1,
        lastIndex,
        tornTail: rec.tornTail,
      },
    };
  }

  /** Reads every segment in order (see the module comment); cuts a torn tail off the last. */
  private static async recover(
    fs: FsLayer,
    dir: string,
    segments: readonly Segment[],
    opts: WalOptions,
  ): Promise<Recovered> {
    const positions = new LogPositions();
    const rec: Recovered = {
      positions,
      hardState: EMPTY_HARD_STATE,
      marker: { index: 0, term: 0 },
      writeOffset: 0,
      lastRecord: undefined,
      tornTail: undefined,
    };
    for (let si = 0; si < segments.length; si++) {
      const seg = segments[si]!;
      const isLast = si === segments.length - 1;
      const buf = await readWhole(fs, join(dir, seg.name));
      const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
      let first = true;
      let stop;
      try {
        stop = readSegmentRecords(buf, dv, (r) => {
          if (first) {
            first = false;
            const p = r.type === RecordType.segment ? decodePair(dv, r) : undefined;
            if (p === undefined || p[0] !== seg.seq || p[1] !== seg.firstIndex) {
              badRecord(r, "the segment header does not match the file name");
            }
            if (si > 0 && positions.count > 0 && seg.firstIndex > positions.last + 1) {
              badRecord(
                r,
                `segment starts at index ${seg.firstIndex} but the log ends at ${positions.last}`,
              );
            }
            if (si === 0 || positions.count === 0) positions.clear(seg.firstIndex);
            return;
          }
          switch (r.type) {
            case RecordType.entry: {
              const pos = entryPosition(buf, dv, r) ?? badRecord(r, "malformed entry record");
              const expected = positions.count > 0 ? positions.last + 1 : positions.first;
              // The oldest segment kept may start after its name's index: the entries before its
              // first one went with older segments (a snapshot must cover them: checked at the end).
              const oldest = si === 0 && positions.count === 0;
              if (pos.index > expected && pos.index !== rec.marker.index + 1 && !oldest) {
                badRecord(
                  r,
                  `entry ${pos.index} follows entry ${expected - 1}: records are missing`,
                );
              }
              if (pos.index <= rec.marker.index) {
                badRecord(r, `entry ${pos.index} is at or before snapshot ${rec.marker.index}`);
              }
              positions.put(pos.index, pos.term, seg.seq, r.offset, HEADER_BYTES + r.payloadLength);
              return;
            }
            case RecordType.hardState:
              rec.hardState =
                decodeHardState(buf, dv, r) ?? badRecord(r, "malformed hard-state record");
              return;
            case RecordType.snapshot: {
              const p = decodePair(dv, r) ?? badRecord(r, "malformed snapshot record");
              // Every segment repeats the newest marker: only a newer one changes anything.
              if (p[0] > rec.marker.index) {
                rec.marker = { index: p[0], term: p[1] };
                const how = r.restartsLog ? "restart" : r.batch === 0 ? "compare" : "agree";
                const why = markPositions(positions, rec.marker, how);
                if (typeof why === "string") badRecord(r, why);
              }
              return;
            }
            case RecordType.segment:
              badRecord(r, "a segment record in the middle of a segment");
              return;
            default:
              badRecord(r, `unknown record type ${r.type}`);
          }
        });
      } catch (err) {
        // A record that reads back whole but makes no sense is never a torn write.
        if (err instanceof BadRecord)
          throw new WalCorruptedError(dir, seg.name, err.offset, err.message);
        throw err;
      }
      if (first && stop.problem === "end" && !isLast) {
        throw new WalCorruptedError(dir, seg.name, 0, "the segment is empty");
      }
      const garbageAt = lastNonZero(buf, stop.offset);
      if (garbageAt >= 0) {
        // Something follows the good records: a torn write, or corruption.
        const after = recordsAfter(buf, dv, stop.offset);
        const damage =
          stop.problem === "end" ? "zeroed bytes" : `a damaged record (${stop.problem})`;
        if (!isLast) {
          const detail =
            after.length > 0 ? `; a good record follows at offset ${after[0]!.offset}` : "";
          throw new WalCorruptedError(
            dir,
            seg.name,
            stop.offset,
            `${damage} in a sealed segment${detail}`,
          );
        }
        const why = whyNotUnsyncedTail(buf, stop.offset, stop.lastGood, after);
        if (why !== undefined) {
          throw new WalCorruptedError(
            dir,
            seg.name,
            stop.offset,
            `${damage} followed by a good record at offset ${after[0]!.offset}: ${why}`,
          );
        }
        // Only the last, never synced batch reached this far: cut it off (zeroed, so that no
        // stale byte of it can be read as a record later) and continue from the last good one.
        const bytes = garbageAt - stop.offset + 1;
        rec.tornTail = { file: seg.name, offset: stop.offset, bytes };
        opts.logger?.warn(
          { dir, ...rec.tornTail, recordsAfterHole: after.length },
          after.length > 0
            ? "cut off a torn write at the end of the write-ahead log: records of the last, " +
                "unsynced batch reached the disk without the ones before them (never acknowledged)"
            : "cut off a torn record at the end of the write-ahead log (never acknowledged)",
        );
        const f = await fs.open(join(dir, seg.name), "r+");
        try {
          await f.write(new Uint8Array(bytes), stop.offset);
          opts.crash?.("wal.open-after-tail-cut-write");
          await f.datasync();
          opts.crash?.("wal.open-after-tail-cut-sync");
        } finally {
          await f.close();
        }
      }
      if (isLast) {
        rec.writeOffset = stop.offset;
        rec.lastRecord = stop.lastGood;
      }
    }
    if (positions.count > 0 && positions.first > rec.marker.index + 1) {
      // The oldest segments were removed only once a snapshot covered them; no such snapshot.
      throw new WalCorruptedError(
        dir,
        segments[0]!.name,
        0,
        `entries ${rec.marker.index + 1} to ${positions.first - 1} are missing and no snapshot covers them`,
      );
    }
    return rec;
  }

  /** Creates a new WAL directory atomically: build it under a temporary name, then rename. */
  private static async create(
    fs: FsLayer,
    dir: string,
    segmentBytes: number,
    crash: CrashHook | undefined,
  ): Promise<void> {
    const tmp = `${dir}.tmp`;
    await fs.rmrf(tmp);
    await fs.mkdirp(tmp);
    const name = segmentName(0, 1);
    const f = await fs.open(join(tmp, name), "w");
    try {
      await preallocate(f, segmentBytes);
      await f.write(segmentRecord(0, 1, { batch: 1, flags: BATCH_END }), 0);
      await f.datasync();
    } finally {
      await f.close();
    }
    await fs.syncDir(tmp);
    crash?.("wal.create-after-segment-sync");
    await fs.rename(tmp, dir);
    crash?.("wal.create-after-rename");
    await fs.syncDir(dirname(dir));
    crash?.("wal.create-after-dir-sync");
  }

  /** Writes a segment's preamble (a write batch of its own, synced) at its start. */
  private async writeSegmentPreamble(seg: Segment): Promise<void> {
    const tag = nextBatch(this.batchTag);
    const buf = concat([
      segmentRecord(seg.seq, seg.firstIndex, { batch: tag, flags: 0 }),
      hardStateRecord(this.hardState, { batch: tag, flags: 0 }),
      snapshotRecord(this.marker.index, this.marker.term, { batch: tag, flags: BATCH_END }),
    ]);
    await seg.file!.write(buf, 0);
    this.crash?.("wal.preamble-after-write");
    await seg.file!.datasync();
    this.crash?.("wal.preamble-after-sync");
    this.batchTag = tag;
    this.writeOffset = buf.byteLength;
  }

  /**
   * Closes an incomplete last write batch left by a crash (its end was cut off or never
   * written) with a batch of its own: the recovered hard state, flagged BATCH_END. Without it, a
   * later torn batch that starts right after could not be told from lost synced records.
   */
  private async seal(seg: Segment): Promise<void> {
    const tag = nextBatch(this.batchTag);
    const buf = hardStateRecord(this.hardState, { batch: tag, flags: BATCH_END });
    if (this.writeOffset + buf.byteLength > this.segmentBytes) {
      // No room left: make the next batch start a new segment, whatever its size.
      this.writeOffset = this.segmentBytes;
      return;
    }
    await seg.file!.write(buf, this.writeOffset);
    this.crash?.("wal.open-after-seal-write");
    await seg.file!.datasync();
    this.crash?.("wal.open-after-seal-sync");
    this.batchTag = tag;
    this.writeOffset += buf.byteLength;
  }

  /** The hard state as of the last save. */
  lastHardState(): HardState {
    return this.hardState;
  }

  /** The newest snapshot marker. */
  snapshotMarker(): SnapshotMarker {
    return this.marker;
  }

  /**
   * The newest entry (index and term) the WAL can no longer serve: below the oldest segment
   * kept, or replaced by a snapshot marker. 0/0 if none. The log view never serves entries at or
   * below it. Invariant: at or below the snapshot marker.
   */
  gone(): SnapshotMarker {
    return this.goneTo;
  }

  /** The error that failed the WAL, if any. */
  failed(): NexusError | undefined {
    return this.failure;
  }

  /**
   * Appends entries (and the hard state, if given) durably, after a snapshot marker if given
   * (whose snapshot file must already be durable). Written as [marker][entries][hard state].
   * Resolves once they are fsynced; saves are written in call order. Appending index i replaces
   * any entries >= i. Rejects with NexusError WAL_FAILED (for good) if a write or sync fails.
   */
  save(
    hardState: HardState | undefined,
    entries: readonly Entry[],
    snapshot?: SnapshotMarker,
  ): Promise<void> {
    return this.enqueue(hardState, entries, snapshot);
  }

  /**
   * Records durably that a snapshot at (index, term) exists: recovery starts the log after it.
   * Save the snapshot file itself first.
   */
  saveSnapshotMarker(marker: SnapshotMarker): Promise<void> {
    return this.enqueue(undefined, [], marker, true);
  }

  private enqueue(
    hardState: HardState | undefined,
    entries: readonly Entry[],
    marker: SnapshotMarker | undefined,
    raiseCommit = false,
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
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ entries, marker, hardState, raiseCommit, resolve, reject });
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

  /**
   * A local snapshot is taken of applied, hence committed, entries, but the runtime writes a
   * commit-only hard state only with its next save: without this, a restart right after the
   * snapshot would find the durable commit below the marker (recovery raises it, with a warning
   * on every such restart). So a local marker carries the hard state last written before it in
   * queue order (never an older term or vote), its commit raised to the marker.
   */
  private resolveCommits(batch: readonly PendingSave[]): readonly PendingSave[] {
    if (!batch.some((p) => p.raiseCommit === true)) return batch;
    let hs = this.hardState;
    return batch.map((p) => {
      if (p.hardState !== undefined) hs = p.hardState;
      if (p.raiseCommit !== true || p.marker === undefined || isEmptyHardState(hs)) return p;
      if (hs.commit >= p.marker.index) return p;
      hs = { ...hs, commit: p.marker.index };
      return { ...p, hardState: hs };
    });
  }

  private async writeBatch(queued: readonly PendingSave[]): Promise<void> {
    const batch = this.resolveCommits(queued);
    let size = 0;
    let records = 0;
    // Which markers replace the log, judged on the log as the records before them leave it.
    const log = new BatchLog(this.positions);
    let newest = this.marker.index;
    const restarts: boolean[] = [];
    for (const p of batch) {
      let restart = false;
      if (p.marker !== undefined) {
        size += MARKER_RECORD_BYTES;
        records++;
        if (p.marker.index > newest) {
          newest = p.marker.index;
          restart = log.replacedBy(p.marker);
          if (restart) log.restart(p.marker.index);
        }
      }
      restarts.push(restart);
      for (const e of p.entries) {
        size += entryRecordSize(e);
        log.append(e);
      }
      records += p.entries.length;
      if (p.hardState !== undefined) {
        size += hardStateRecord(p.hardState).byteLength;
        records++;
      }
    }
    if (records === 0) return;
    if (this.writeOffset + size > this.segmentBytes && this.writeOffset > this.preambleSize()) {
      await this.roll(batch);
    }
    const seg = this.segments[this.segments.length - 1]!;
    const batchTag = nextBatch(this.batchTag);
    const mid: RecordTag = { batch: batchTag, flags: 0 };
    const end: RecordTag = { batch: batchTag, flags: BATCH_END };
    let n = 0;
    const tagOf = (extra = 0): RecordTag => {
      const t = ++n === records ? end : mid;
      return extra === 0 ? t : { batch: t.batch, flags: t.flags | extra };
    };
    // Through the writer thread, the batch is encoded straight into the buffer it shares.
    const writer = seg.file!.fd !== undefined ? this.writer : undefined;
    const buf = writer?.buffer(size) ?? new Uint8Array(size);
    const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    let off = 0;
    const placed: { e: Entry; off: number; len: number }[] = [];
    // Per save: the marker (its snapshot file is durable already), then the entries, then the
    // hard state that may commit them. Any prefix of the batch is a state recovery can open.
    for (const [k, p] of batch.entries()) {
      if (p.marker !== undefined) {
        const flags = restarts[k] === true ? RESTARTS_LOG : 0;
        const r = snapshotRecord(p.marker.index, p.marker.term, tagOf(flags));
        buf.set(r, off);
        off += r.byteLength;
      }
      for (const e of p.entries) {
        const start = off;
        off = writeEntryRecord(buf, dv, off, e, tagOf());
        placed.push({ e, off: this.writeOffset + start, len: off - start });
      }
      if (p.hardState !== undefined) {
        const r = hardStateRecord(p.hardState, tagOf());
        buf.set(r, off);
        off += r.byteLength;
      }
    }
    this.crash?.("wal.batch-before-write");
    const startedAt = performance.now();
    if (writer === undefined) {
      await seg.file!.write(buf, this.writeOffset);
      this.crash?.("wal.batch-after-write");
      await seg.file!.datasync();
    } else if (this.crash === undefined) {
      // One hop: write and fdatasync in the writer thread.
      await writer.run(seg.file!.fd!, size, this.writeOffset, true, true);
    } else {
      // Two, so that a crash test can stop between the write and the sync.
      await writer.run(seg.file!.fd!, size, this.writeOffset, true, false);
      this.crash("wal.batch-after-write");
      await writer.run(seg.file!.fd!, 0, 0, false, true);
    }
    this.onSync?.(performance.now() - startedAt, size);
    this.crash?.("wal.batch-after-sync");
    this.batchTag = batchTag;
    this.writeOffset += size;
    // Update the in-memory view only once durable.
    let i = 0;
    for (const [k, p] of batch.entries()) {
      if (p.marker !== undefined) this.applyMarker(p.marker, restarts[k] === true);
      for (let k = 0; k < p.entries.length; k++, i++) {
        const pl = placed[i]!;
        this.positions.put(pl.e.index, pl.e.term, seg.seq, pl.off, pl.len);
      }
      if (p.hardState !== undefined) this.hardState = p.hardState;
    }
  }

  private preambleSize(): number {
    return 2 * (HEADER_BYTES + 16) + hardStateRecord(this.hardState).byteLength;
  }

  private applyMarker(m: SnapshotMarker, restartsLog: boolean): void {
    if (m.index <= this.marker.index) return;
    this.marker = m;
    // While running, entries up to the snapshot stay readable (the catch-up window) until
    // releaseTo(); only a snapshot that replaces the log (received from the leader) resets it.
    if (restartsLog) {
      markPositions(this.positions, m, "restart");
      this.markGone(m.index, m.term);
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
    this.crash?.("wal.roll-before-rename");
    await this.fs.rename(join(this.dir, "next.tmp"), join(this.dir, name));
    this.crash?.("wal.roll-after-rename");
    await this.fs.syncDir(this.dir);
    this.crash?.("wal.roll-after-dir-sync");
    // The sealed segment stays open for reads of old entries.
    this.readHandles.set(cur.seq, cur.file!);
    cur.file = undefined;
    const seg: Segment = { seq, firstIndex, name, file: tmpFile };
    this.segments.push(seg);
    // The durable hard state and marker, so that this segment alone suffices for recovery. Not
    // the batch's: its hard state may commit entries that are not written yet.
    await this.writeSegmentPreamble(seg);
    // Prepare the following segment in the background.
    this.nextSegment = this.prepareSegment();
    this.nextSegment.catch(() => undefined);
    await this.applyRetention();
  }

  private async prepareSegment(): Promise<FsFile> {
    const f = await this.fs.open(join(this.dir, "next.tmp"), "w");
    await preallocate(f, this.segmentBytes);
    this.crash?.("wal.prepare-after-write");
    await f.datasync();
    this.crash?.("wal.prepare-after-sync");
    return f;
  }

  /**
   * Allows segments wholly before `index` to be removed (entries older than the kept catch-up
   * window). Recovery never needs them: every segment repeats the hard state and snapshot marker.
   * Call it after the snapshot's marker is durable and the log view is compacted.
   */
  async releaseTo(index: number): Promise<void> {
    this.releaseIndex = Math.max(this.releaseIndex, index);
    const p = this.positions;
    if (index <= this.marker.index + 1 && p.count > 0 && index > p.first) {
      const last = Math.min(index - 1, p.last);
      this.markGone(last, p.term(last));
      p.dropBefore(index);
    }
    this.crash?.("wal.release-before-retention");
    await this.applyRetention();
  }

  private markGone(index: number, term: number): void {
    if (index > this.goneTo.index) this.goneTo = { index, term };
  }

  /**
   * Removes the oldest segments that are no longer needed: those whose entries still in the log
   * are all at or below the snapshot marker, and either below the released index or over
   * `maxWals`. Their entries leave the log view before their file goes.
   */
  private async applyRetention(): Promise<void> {
    while (this.segments.length > 1) {
      const old = this.segments[0]!;
      const p = this.positions;
      // The newest entry the log still takes from `old`: an entry's segment never decreases
      // with its index, so they are a prefix of the positions.
      let i = p.first;
      if (p.count > 0) while (i <= p.last && p.seq(i) <= old.seq) i++;
      const holdsLive = p.count > 0 && i > p.first;
      const lastLive = i - 1;
      if (holdsLive && lastLive > this.marker.index) break;
      const released = !holdsLive || lastLive < this.releaseIndex;
      const overLimit = this.maxWals > 0 && this.segments.length > this.maxWals;
      if (!released && !overLimit) break;
      if (holdsLive) {
        this.markGone(lastLive, p.term(lastLive));
        p.dropBefore(lastLive + 1);
      }
      this.segments.shift();
      await this.readHandles.get(old.seq)?.close();
      this.readHandles.delete(old.seq);
      this.crash?.("wal.retention-before-unlink");
      await this.fs.unlink(join(this.dir, old.name));
      this.crash?.("wal.retention-after-unlink");
      await this.fs.syncDir(this.dir);
      this.crash?.("wal.retention-after-dir-sync");
    }
  }

  /** Segment file names, oldest first (for tests and status). */
  segmentNames(): string[] {
    return this.segments.map((s) => s.name);
  }

  /** Whether entry `index` can be read back (it is in the log and its segment is kept). */
  hasEntry(index: number): boolean {
    return this.positions.has(index) && this.positions.seq(index) >= (this.segments[0]?.seq ?? 0);
  }

  /**
   * Reads entry `index` back from its segment (synchronously: used for old entries only).
   * Throws NexusError INTERNAL if the WAL no longer has it (check hasEntry() first).
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
      throw new WalCorruptedError(
        this.dir,
        seg.name,
        this.positions.offset(index),
        `entry ${index} reads back damaged`,
      );
    }
    return e;
  }

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
    await this.writer?.stop();
    this.writer = undefined;
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
 * A recovered hard state whose commit lies in [floor, last]: a commit beyond the last entry
 * recovered (the hard state reached the disk but not every entry it commits, or they were cut
 * off as a torn tail) is lowered to it, and a commit below the snapshot (a received snapshot's
 * marker reached the disk before the hard state) is raised to it: a snapshot holds only
 * committed entries. Says what it did through `warn`.
 */
export function clampCommit(
  hs: HardState,
  floor: number,
  last: number,
  warn: (msg: string, fields: Record<string, unknown>) => void,
): HardState {
  if (hs.commit > last) {
    warn(
      `the hard state's commit ${hs.commit} is beyond the last entry ${last} recovered from the ` +
        `write-ahead log (those entries never became durable here); using commit ${last}: ` +
        `the leader sends the missing entries again`,
      { commit: hs.commit, lastIndex: last },
    );
    return { ...hs, commit: last };
  }
  if (hs.commit < floor && !isEmptyHardState(hs)) {
    warn(
      `the hard state's commit ${hs.commit} is below the snapshot at ${floor} (the snapshot was ` +
        `recorded before the hard state); using commit ${floor}: a snapshot holds only committed entries`,
      { commit: hs.commit, snapshotIndex: floor },
    );
    return { ...hs, commit: floor };
  }
  return hs;
}

/**
 * Applies a newer snapshot marker to the entry positions (at recovery and while running):
 *
 * - "restart": the snapshot replaced the log (RESTARTS_LOG): the log restarts after it, and the
 *   entries written before it (after its index) are void;
 * - "agree": a snapshot taken locally, which agrees with the log: the entries up to it stay (the
 *   catch-up window still on disk); one that disagrees with the entry held at its index is
 *   corruption (returned as a reason);
 * - "compare": a marker written before markers said which they were: it restarts the log if it
 *   is beyond the log or disagrees with the entry at its index.
 *
 * Returns true if the log restarted, false if not, or why the marker cannot be right.
 */
function markPositions(
  positions: LogPositions,
  m: SnapshotMarker,
  how: "restart" | "agree" | "compare",
): boolean | string {
  const held = positions.count > 0 && m.index >= positions.first && m.index <= positions.last;
  if (how === "agree" && held && positions.term(m.index) !== m.term) {
    return `snapshot marker ${m.index}/${m.term} disagrees with entry ${m.index} of term ${positions.term(m.index)}`;
  }
  const restart =
    how === "restart" ||
    (positions.count === 0 ? m.index + 1 > positions.first : m.index > positions.last) ||
    (how === "compare" && held && positions.term(m.index) !== m.term);
  if (restart) positions.clear(m.index + 1);
  return restart;
}

/**
 * The log as the records of one batch leave it, over the durable positions: enough to tell
 * whether a snapshot marker in the batch agrees with the log or replaces it.
 */
class BatchLog {
  /** Entries from `from` on are the batch's (`terms`); below it, the durable ones if `durable`. */
  private from = Number.POSITIVE_INFINITY;
  private terms: number[] = [];
  private durable = true;
  /** The newest index known to be gone below the log (the last restart's snapshot). */
  private floor: number;

  constructor(private readonly positions: LogPositions) {
    this.floor = positions.first - 1;
  }

  private last(): number {
    if (this.from !== Number.POSITIVE_INFINITY) return this.from + this.terms.length - 1;
    return this.positions.count > 0 ? this.positions.last : this.floor;
  }

  private term(i: number): number | undefined {
    if (i >= this.from) return this.terms[i - this.from];
    return this.durable && this.positions.has(i) ? this.positions.term(i) : undefined;
  }

  append(e: Entry): void {
    if (e.index < this.from) {
      this.from = e.index;
      this.terms = [e.term];
    } else {
      this.terms.length = e.index - this.from;
      this.terms.push(e.term);
    }
  }

  /** Whether a (newer) snapshot marker replaces the log rather than agrees with it. */
  replacedBy(m: SnapshotMarker): boolean {
    if (m.index > this.last()) return true;
    const t = this.term(m.index);
    return t !== undefined && t !== m.term;
  }

  restart(index: number): void {
    this.from = index + 1;
    this.terms = [];
    this.durable = false;
    this.floor = index;
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
