/**
 * Snapshot files: metadata (index, term, membership) plus the store's backup data, streamed in
 * and out so a snapshot of any size is never held in memory.
 *
 * File `<term>-<index>.snap` (16 hex digits each):
 *   "NEXUSNAP" | u32 LE version (1) | u32 LE metadata length | metadata (UTF-8 JSON) |
 *   u32 LE CRC-32C(metadata) | data ... | u64 LE data length | u32 LE CRC-32C(data) | "NEXUSEND"
 *
 * Written to `<name>.tmp`, fsynced, renamed, directory fsynced: a crash leaves either the whole
 * new snapshot or none of it. A snapshot file is used only once the WAL records it (its marker):
 * on load the newest file that validates and that the WAL's marker covers wins; damaged ones are
 * skipped with a warning (and kept for inspection). Retention never removes the covered one.
 */
import { join } from "node:path";
import { NexusError } from "../errors/index.js";
import type { ConfState } from "../raft/types.js";
import type { CrashHook, CrashPoint } from "./crash-points.js";
import { crc32c } from "./crc32c.js";
import type { FsLayer } from "./fs-layer.js";
import { createNodeFs } from "./fs-layer.js";

/**
 * The snapshotter's crash points. Each doc line says what is on disk at that instant. A hook given
 * in `SnapshotterOptions.crash` is called with the name at each one.
 */
export const SNAPSHOT_CRASH_POINTS = [
  {
    name: "snap.save-after-write",
    doc: "a local snapshot is fully written to <name>.tmp but not synced (any part may be lost)",
  },
  {
    name: "snap.save-after-sync",
    doc: "<name>.tmp is durable but not renamed: it is not a snapshot (removed at the next load)",
  },
  {
    name: "snap.save-after-rename",
    doc: "renamed to <name>; the directory is not synced (a power loss may undo the rename)",
  },
  {
    name: "snap.save-after-dir-sync",
    doc: "the snapshot file is durable; the WAL does not record it yet (no marker), so it is not used",
  },
  {
    name: "snap.receive-after-write",
    doc: "a snapshot from the leader is fully written to <name>.tmp but not synced",
  },
  {
    name: "snap.receive-after-sync",
    doc: "the received <name>.tmp is durable and validated, not renamed",
  },
  {
    name: "snap.receive-after-rename",
    doc: "the received snapshot is renamed to <name>; the directory is not synced",
  },
  {
    name: "snap.receive-after-dir-sync",
    doc: "the received snapshot file is durable; the WAL does not record it yet, so it is not used",
  },
  {
    name: "snap.retain-before-unlink",
    doc: "an old snapshot file (not the one the WAL's marker covers) is about to be removed",
  },
  {
    name: "snap.retain-after-unlink",
    doc: "an old snapshot file is unlinked; the directory is not synced (it may come back)",
  },
  {
    name: "snap.retain-after-dir-sync",
    doc: "the removal of old snapshot files is durable",
  },
  {
    name: "snap.load-after-tmp-unlink",
    doc: "loading removed a leftover <name>.tmp; the directory is not synced",
  },
] as const satisfies readonly CrashPoint[];

/** The name of one of the snapshotter's crash points. */
export type SnapshotCrashPoint = (typeof SNAPSHOT_CRASH_POINTS)[number]["name"];

/** A WAL snapshot marker as the snapshotter needs it: which snapshot the WAL records. */
export interface CoveringMarker {
  readonly index: number;
  readonly term: number;
}

/** What a snapshot covers. */
export interface SnapshotMeta {
  readonly index: number;
  readonly term: number;
  readonly confState: ConfState;
  /** Member URLs by node id, so a restored node can reach its peers. */
  readonly members: Readonly<Record<string, string>>;
}

/** A snapshot file on disk. */
export interface SnapshotFile {
  readonly name: string;
  readonly path: string;
  readonly meta: SnapshotMeta;
  readonly dataOffset: number;
  readonly dataLength: number;
}

const MAGIC = new TextEncoder().encode("NEXUSNAP");
const END = new TextEncoder().encode("NEXUSEND");
const NAME_RE = /^([0-9a-f]{16})-([0-9a-f]{16})\.snap$/;
const TRAILER = 8 + 4 + 8;

/** The file name of a snapshot. */
export function snapshotName(term: number, index: number): string {
  return `${term.toString(16).padStart(16, "0")}-${index.toString(16).padStart(16, "0")}.snap`;
}

function u64(v: number): Uint8Array {
  const b = new Uint8Array(8);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, v >>> 0, true);
  dv.setUint32(4, Math.floor(v / 0x100000000), true);
  return b;
}

function validMeta(v: unknown): v is SnapshotMeta {
  if (typeof v !== "object" || v === null) return false;
  const o = v as Record<string, unknown>;
  const ids = (x: unknown): boolean => Array.isArray(x) && x.every((s) => typeof s === "string");
  const cs = o["confState"] as Record<string, unknown> | undefined;
  return (
    Number.isSafeInteger(o["index"]) &&
    Number.isSafeInteger(o["term"]) &&
    typeof cs === "object" &&
    cs !== null &&
    ids(cs["voters"]) &&
    ids(cs["learners"]) &&
    ids(cs["votersOutgoing"]) &&
    ids(cs["learnersNext"]) &&
    typeof cs["autoLeave"] === "boolean" &&
    typeof o["members"] === "object" &&
    o["members"] !== null
  );
}

export interface SnapshotterOptions {
  readonly fs?: FsLayer;
  /**
   * Snapshot files kept (0 = unlimited). Default 5. Never removed: the newest file, and the one
   * the WAL's marker covers (see covered()), which may be older than files not yet recorded.
   */
  readonly maxSnapshots?: number;
  /** Where warnings go, called as pino is: `(fields, msg)` (a NexusLogger fits). */
  readonly logger?: { warn(fields: Readonly<Record<string, unknown>>, msg: string): void };
  /** Called at each crash point (SNAPSHOT_CRASH_POINTS), for crash tests. Default: none. */
  readonly crash?: CrashHook;
}

/** The snapshot files of one directory (see the module comment). */
export class Snapshotter {
  readonly dir: string;
  private readonly fs: FsLayer;
  private readonly maxSnapshots: number;
  private readonly logger: SnapshotterOptions["logger"];
  private readonly crash: CrashHook | undefined;
  /** The index of the snapshot the WAL records (kept by retention), once known. */
  private coveredBy: CoveringMarker | undefined;

  constructor(dir: string, opts: SnapshotterOptions = {}) {
    this.dir = dir;
    this.fs = opts.fs ?? createNodeFs();
    this.maxSnapshots = opts.maxSnapshots ?? 5;
    this.logger = opts.logger;
    this.crash = opts.crash;
  }

  /**
   * Tells the snapshotter which snapshot the WAL now records: call it once the marker written
   * after save() or saveRaw() is durable. Retention keeps that file; older ones may go.
   */
  covered(marker: CoveringMarker): void {
    if (this.coveredBy === undefined || marker.index > this.coveredBy.index) {
      this.coveredBy = { index: marker.index, term: marker.term };
    }
  }

  /**
   * Writes a snapshot durably from a stream of data and returns it. The file appears under its
   * final name only once complete and synced.
   */
  async save(meta: SnapshotMeta, data: AsyncIterable<Uint8Array>): Promise<SnapshotFile> {
    await this.fs.mkdirp(this.dir);
    const name = snapshotName(meta.term, meta.index);
    const tmp = join(this.dir, `${name}.tmp`);
    const f = await this.fs.open(tmp, "w");
    let dataLength = 0;
    let dataOffset = 0;
    try {
      const metaBytes = new TextEncoder().encode(JSON.stringify(meta));
      const head = new Uint8Array(8 + 4 + 4 + metaBytes.byteLength + 4);
      const dv = new DataView(head.buffer);
      head.set(MAGIC, 0);
      dv.setUint32(8, 1, true);
      dv.setUint32(12, metaBytes.byteLength, true);
      head.set(metaBytes, 16);
      dv.setUint32(16 + metaBytes.byteLength, crc32c(metaBytes), true);
      await f.write(head, 0);
      dataOffset = head.byteLength;
      let crc = 0;
      let pos = dataOffset;
      for await (const chunk of data) {
        if (chunk.byteLength === 0) continue;
        crc = crc32c(chunk, crc);
        await f.write(chunk, pos);
        pos += chunk.byteLength;
        dataLength += chunk.byteLength;
      }
      const tail = new Uint8Array(TRAILER);
      tail.set(u64(dataLength), 0);
      new DataView(tail.buffer).setUint32(8, crc, true);
      tail.set(END, 12);
      await f.write(tail, pos);
      this.crash?.("snap.save-after-write");
      await f.datasync();
      this.crash?.("snap.save-after-sync");
    } catch (err) {
      await f.close().catch(() => undefined);
      await this.fs.unlink(tmp).catch(() => undefined);
      throw err;
    }
    await f.close();
    await this.fs.rename(tmp, join(this.dir, name));
    this.crash?.("snap.save-after-rename");
    await this.fs.syncDir(this.dir);
    this.crash?.("snap.save-after-dir-sync");
    await this.retain(name);
    return { name, path: join(this.dir, name), meta, dataOffset, dataLength };
  }

  /**
   * Stores a whole snapshot file received from a peer (header, data and trailer, as written by
   * save()): written to a temporary name, synced, validated, then renamed into place. Throws
   * CORRUPTED, leaving nothing behind, if it does not validate or its name does not match.
   */
  async saveRaw(name: string, file: AsyncIterable<Uint8Array>): Promise<SnapshotFile> {
    if (!NAME_RE.test(name))
      throw new NexusError("INVALID_ARGUMENT", `bad snapshot file name ${name}`);
    await this.fs.mkdirp(this.dir);
    const tmp = `${name}.tmp`;
    const f = await this.fs.open(join(this.dir, tmp), "w");
    try {
      let pos = 0;
      for await (const chunk of file) {
        await f.write(chunk, pos);
        pos += chunk.byteLength;
      }
      this.crash?.("snap.receive-after-write");
      await f.datasync();
    } finally {
      await f.close();
    }
    let checked: SnapshotFile;
    try {
      const v = await this.validate(tmp, name);
      checked = { ...v, name, path: join(this.dir, name) };
    } catch (err) {
      await this.fs.unlink(join(this.dir, tmp));
      throw err;
    }
    this.crash?.("snap.receive-after-sync");
    await this.fs.rename(join(this.dir, tmp), join(this.dir, name));
    this.crash?.("snap.receive-after-rename");
    await this.fs.syncDir(this.dir);
    this.crash?.("snap.receive-after-dir-sync");
    await this.retain(name);
    return checked;
  }

  /** Streams a whole snapshot file (to send it to a peer). */
  async *openFile(s: SnapshotFile, chunkBytes = 256 * 1024): AsyncIterable<Uint8Array> {
    const f = await this.fs.open(s.path, "r");
    try {
      const size = await f.size();
      for (let off = 0; off < size;) {
        const buf = new Uint8Array(Math.min(chunkBytes, size - off));
        const n = await f.read(buf, off);
        if (n <= 0) throw new NexusError("CORRUPTED", `snapshot ${s.path} ended early`);
        off += n;
        yield n === buf.byteLength ? buf : buf.subarray(0, n);
      }
    } finally {
      await f.close();
    }
  }

  /** Snapshot file names, oldest first. */
  async list(): Promise<string[]> {
    if (!(await this.fs.exists(this.dir))) return [];
    const names = (await this.fs.readdir(this.dir)).filter((n) => NAME_RE.test(n));
    const idx = (n: string): number => parseInt(NAME_RE.exec(n)![2]!, 16);
    return names.sort((a, b) => idx(a) - idx(b) || (a < b ? -1 : 1));
  }

  /**
   * The newest snapshot that validates (header, metadata checksum, trailer, data checksum), or
   * undefined. Leftover temporary files from a crash are removed. With `coveredBy` (the WAL's
   * newest snapshot marker), only a snapshot the WAL records is used: files newer than the
   * marker (written, but the crash came before their marker) are skipped with a warning and
   * kept, and a file at the marker's index must have its term. Retention keeps the file
   * returned.
   */
  async loadNewest(coveredBy?: CoveringMarker): Promise<SnapshotFile | undefined> {
    if (!(await this.fs.exists(this.dir))) return undefined;
    let removedTmp = false;
    for (const n of await this.fs.readdir(this.dir)) {
      if (n.endsWith(".snap.tmp")) {
        await this.fs.unlink(join(this.dir, n));
        removedTmp = true;
      }
    }
    if (removedTmp) this.crash?.("snap.load-after-tmp-unlink");
    const names = await this.list();
    for (let i = names.length - 1; i >= 0; i--) {
      const name = names[i]!;
      const m = NAME_RE.exec(name)!;
      const term = parseInt(m[1]!, 16);
      const index = parseInt(m[2]!, 16);
      if (
        coveredBy !== undefined &&
        (index > coveredBy.index || (index === coveredBy.index && term !== coveredBy.term))
      ) {
        this.logger?.warn(
          {
            file: join(this.dir, name),
            walSnapshotIndex: coveredBy.index,
            walSnapshotTerm: coveredBy.term,
          },
          "skipping a snapshot file the write-ahead log does not record",
        );
        continue;
      }
      try {
        const file = await this.validate(name);
        this.covered(file.meta);
        return file;
      } catch (err) {
        this.logger?.warn(
          { file: join(this.dir, name), error: (err as Error).message },
          "skipping a damaged snapshot file",
        );
      }
    }
    return undefined;
  }

  /** Reads and checks one snapshot file. Throws CORRUPTED saying what is wrong. */
  async validate(name: string, expectedName = name): Promise<SnapshotFile> {
    const path = join(this.dir, name);
    const bad = (what: string): NexusError =>
      new NexusError("CORRUPTED", `snapshot ${path} is damaged: ${what}`);
    const f = await this.fs.open(path, "r");
    try {
      const size = await f.size();
      const head = new Uint8Array(16);
      if ((await f.read(head, 0)) !== 16) throw bad("too short");
      if (!head.subarray(0, 8).every((b, i) => b === MAGIC[i])) throw bad("not a snapshot file");
      const dv = new DataView(head.buffer);
      if (dv.getUint32(8, true) !== 1) throw bad(`unknown version ${dv.getUint32(8, true)}`);
      const metaLen = dv.getUint32(12, true);
      if (16 + metaLen + 4 + TRAILER > size) throw bad("metadata runs past the end");
      const metaBuf = new Uint8Array(metaLen + 4);
      await f.read(metaBuf, 16);
      const mdv = new DataView(metaBuf.buffer);
      if (crc32c(metaBuf, 0, 0, metaLen) !== mdv.getUint32(metaLen, true)) {
        throw bad("metadata checksum mismatch");
      }
      let meta: unknown;
      try {
        meta = JSON.parse(
          new TextDecoder("utf-8", { fatal: true }).decode(metaBuf.subarray(0, metaLen)),
        );
      } catch {
        throw bad("metadata is not valid JSON");
      }
      if (!validMeta(meta)) throw bad("metadata is incomplete");
      const m = NAME_RE.exec(expectedName);
      if (m === null || parseInt(m[1]!, 16) !== meta.term || parseInt(m[2]!, 16) !== meta.index) {
        throw bad("file name does not match its metadata");
      }
      const tail = new Uint8Array(TRAILER);
      await f.read(tail, size - TRAILER);
      if (!tail.subarray(12).every((b, i) => b === END[i])) throw bad("incomplete (no trailer)");
      const tdv = new DataView(tail.buffer);
      const dataLength = tdv.getUint32(0, true) + tdv.getUint32(4, true) * 0x100000000;
      const dataOffset = 16 + metaLen + 4;
      if (dataOffset + dataLength + TRAILER !== size) throw bad("data length does not match");
      let crc = 0;
      const chunk = new Uint8Array(1024 * 1024);
      for (let off = 0; off < dataLength;) {
        const want = Math.min(chunk.byteLength, dataLength - off);
        const n = await f.read(chunk.subarray(0, want), dataOffset + off);
        if (n <= 0) throw bad("short read");
        crc = crc32c(chunk, crc, 0, n);
        off += n;
      }
      if (crc !== tdv.getUint32(8, true)) throw bad("data checksum mismatch");
      return { name, path, meta, dataOffset, dataLength };
    } finally {
      await f.close();
    }
  }

  /** Streams a snapshot's data in chunks of at most chunkBytes. */
  async *openData(s: SnapshotFile, chunkBytes = 256 * 1024): AsyncIterable<Uint8Array> {
    const f = await this.fs.open(s.path, "r");
    try {
      for (let off = 0; off < s.dataLength;) {
        const buf = new Uint8Array(Math.min(chunkBytes, s.dataLength - off));
        const n = await f.read(buf, s.dataOffset + off);
        if (n <= 0) throw new NexusError("CORRUPTED", `snapshot ${s.path} ended early`);
        off += n;
        yield n === buf.byteLength ? buf : buf.subarray(0, n);
      }
    } finally {
      await f.close();
    }
  }

  /**
   * Removes the oldest snapshot files beyond maxSnapshots. Never removed: the newest, the one the
   * WAL records (the covered marker's own file, or else the newest older one, see covered();
   * until that is known, the newest before `justWritten`), and `justWritten` (its marker is not
   * written yet). Files left by a crash between a snapshot and its marker may have any index,
   * so "the newest" alone would protect neither.
   */
  async retain(justWritten?: string): Promise<void> {
    if (this.maxSnapshots <= 0) return;
    const names = await this.list();
    const limit = Math.max(1, this.maxSnapshots);
    if (names.length <= limit) return;
    const idx = (n: string): number => parseInt(NAME_RE.exec(n)![2]!, 16);
    const keep = new Set<string>([names[names.length - 1]!]);
    if (justWritten !== undefined) keep.add(justWritten);
    const m = this.coveredBy;
    if (m === undefined) {
      // Until it is known, the newest file before the one just written.
      const before = names.filter((n) => n !== justWritten);
      if (before.length > 0) keep.add(before[before.length - 1]!);
    } else {
      // The file loadNewest(marker) returns: the marker's own, or else the newest older one.
      const exact = snapshotName(m.term, m.index);
      const older = names.filter((n) => idx(n) < m.index);
      if (names.includes(exact)) keep.add(exact);
      else if (older.length > 0) keep.add(older[older.length - 1]!);
    }
    let count = names.length;
    let removed = 0;
    for (const name of names) {
      if (count <= limit) break;
      if (keep.has(name)) continue;
      this.crash?.("snap.retain-before-unlink");
      await this.fs.unlink(join(this.dir, name));
      this.crash?.("snap.retain-after-unlink");
      count--;
      removed++;
    }
    if (removed > 0) {
      await this.fs.syncDir(this.dir);
      this.crash?.("snap.retain-after-dir-sync");
    }
  }
}
