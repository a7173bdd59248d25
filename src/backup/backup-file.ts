/**
 * The backup file: a header naming what was backed up, then the store's backup data in framed,
 * checksummed chunks, then a trailer with the data's length and SHA-256. Written and read
 * streaming (memory bounded by one frame, whatever the data size).
 *
 *   "NEXUSBAK" | u32 LE format version (1) | u32 LE header length | header (UTF-8 JSON) |
 *   u32 LE CRC-32C(header) |
 *   frames: u32 LE n (1..MAX_FRAME_BYTES) | n data bytes | u32 LE CRC-32C(data) |
 *   end:    u32 LE 0 | u64 LE total data bytes | 32 bytes SHA-256(all data) | "NEXUSEND"
 *
 * A file is written to `<file>.tmp`, fsynced, renamed and its folder fsynced: a backup cut short
 * never has the final name. A reader refuses, with a `BackupFileError` whose `reason` says why:
 * a file that is not a backup (magic), one from a newer format version, a damaged header, frame
 * or trailer (CRC, SHA-256, length), a truncated file, and bytes after the end.
 */
import { createHash } from "node:crypto";
import type { Hash } from "node:crypto";
import { open, rename, rm } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { dirname } from "node:path";
import { NexusError } from "../errors/index.js";
import type { NexusErrorCode } from "../errors/index.js";
import { crc32c } from "../storage/crc32c.js";

/** The format version this code writes, and the newest it reads. */
export const BACKUP_FORMAT_VERSION = 1;
/** The largest data frame written and accepted. */
export const MAX_FRAME_BYTES = 4 * 1024 * 1024;
/** Small writes are gathered into frames of about this size. */
const COALESCE_BYTES = 1024 * 1024;
/** The largest header accepted. */
export const MAX_HEADER_BYTES = 1024 * 1024;

const MAGIC = Buffer.from("NEXUSBAK", "latin1");
const END = Buffer.from("NEXUSEND", "latin1");
const TRAILER_BYTES = 4 + 8 + 32 + END.length;

/** One member of the cluster at the backup's index. */
export interface BackupMember {
  /** 16 hex digits. */
  readonly id: string;
  readonly url: string;
  readonly role: "voter" | "learner";
}

/** What a backup holds, written at the start of the file. */
export interface BackupHeader {
  /** The store kind the data is a backup of ("sqlite", "redis", "mysql", "memory"). */
  readonly storeKind: string;
  readonly clusterName: string;
  /** The log index and term of the last entry the data includes. */
  readonly index: number;
  readonly term: number;
  /** The membership at `index`. */
  readonly members: readonly BackupMember[];
  /** The version of nexus-raft on the node that took the backup. */
  readonly nexusVersion: string;
  /** When the backup was taken (ISO 8601, the client's clock). */
  readonly createdAt: string;
  /** The node it was taken from (its gRPC address as given). */
  readonly source: string;
}

/** Why a file was refused. */
export type BackupFileProblem =
  "not-a-backup" | "newer-version" | "damaged" | "truncated" | "trailing-bytes";

/** A backup file refused: `reason` says why, the message says where and what to do. */
export class BackupFileError extends NexusError {
  readonly reason: BackupFileProblem;
  readonly file: string;
  constructor(file: string, reason: BackupFileProblem, what: string) {
    const code: NexusErrorCode = reason === "newer-version" ? "INVALID_ARGUMENT" : "CORRUPTED";
    const advice =
      reason === "newer-version"
        ? "read it with the version of nexus-raft that wrote it, or a newer one"
        : "this file cannot be used: take a new backup, or use another copy of this one";
    super(code, `${file}: ${what}; ${advice}`);
    this.name = "BackupFileError";
    this.reason = reason;
    this.file = file;
  }
}

function checkHeader(h: unknown): h is BackupHeader {
  if (typeof h !== "object" || h === null) return false;
  const r = h as Record<string, unknown>;
  const safe = (v: unknown): boolean => Number.isSafeInteger(v) && (v as number) >= 0;
  return (
    typeof r.storeKind === "string" &&
    typeof r.clusterName === "string" &&
    safe(r.index) &&
    safe(r.term) &&
    typeof r.nexusVersion === "string" &&
    typeof r.createdAt === "string" &&
    typeof r.source === "string" &&
    Array.isArray(r.members) &&
    r.members.every(
      (m: unknown) =>
        typeof m === "object" &&
        m !== null &&
        typeof (m as Record<string, unknown>).id === "string" &&
        typeof (m as Record<string, unknown>).url === "string" &&
        ((m as Record<string, unknown>).role === "voter" ||
          (m as Record<string, unknown>).role === "learner"),
    )
  );
}

/** The header's bytes as they start a file. */
function encodeStart(header: BackupHeader): Buffer {
  const json = Buffer.from(JSON.stringify(header), "utf8");
  const out = Buffer.alloc(MAGIC.length + 8 + json.length + 4);
  MAGIC.copy(out, 0);
  out.writeUInt32LE(BACKUP_FORMAT_VERSION, 8);
  out.writeUInt32LE(json.length, 12);
  json.copy(out, 16);
  out.writeUInt32LE(crc32c(json), 16 + json.length);
  return out;
}

/**
 * Writes a backup file: `create()` opens `<path>.tmp` and writes the header, `write()` appends
 * data, `finish()` writes the trailer, fsyncs and renames to `path`; `abort()` removes the tmp.
 */
export class BackupWriter {
  private readonly hash: Hash = createHash("sha256");
  private bytes = 0;
  private done = false;
  /** Small writes not yet in a frame (copies), at most COALESCE_BYTES in all. */
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  private constructor(
    private readonly path: string,
    private readonly fh: FileHandle,
  ) {}

  /** The temporary name a backup is written under. */
  static tmpPathOf(path: string): string {
    return `${path}.tmp`;
  }

  static async create(path: string, header: BackupHeader): Promise<BackupWriter> {
    const fh = await open(BackupWriter.tmpPathOf(path), "w");
    const w = new BackupWriter(path, fh);
    try {
      await w.writeAll(encodeStart(header));
    } catch (err) {
      await w.abort();
      throw err;
    }
    return w;
  }

  /** Data bytes written so far. */
  get dataBytes(): number {
    return this.bytes;
  }

  private async writeAll(buf: Uint8Array): Promise<void> {
    let at = 0;
    while (at < buf.length) {
      const { bytesWritten } = await this.fh.write(buf, at, buf.length - at);
      at += bytesWritten;
    }
  }

  /**
   * Appends data. Small writes (a store that streams a key or a row at a time) are gathered into
   * frames of about COALESCE_BYTES, so a frame's 8 bytes and a write call are paid per MiB, not
   * per key; larger ones are cut into frames of at most MAX_FRAME_BYTES. The caller may reuse
   * `chunk` once the call resolves.
   */
  async write(chunk: Uint8Array): Promise<void> {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    if (this.pendingBytes === 0 && chunk.length >= COALESCE_BYTES) return this.writeFrames(chunk);
    this.pending.push(Buffer.from(chunk));
    this.pendingBytes += chunk.length;
    if (this.pendingBytes >= COALESCE_BYTES) await this.flush();
  }

  private async flush(): Promise<void> {
    if (this.pendingBytes === 0) return;
    const all = Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    await this.writeFrames(all);
  }

  private async writeFrames(chunk: Uint8Array): Promise<void> {
    for (let at = 0; at < chunk.length; at += MAX_FRAME_BYTES) {
      const part = chunk.subarray(at, Math.min(chunk.length, at + MAX_FRAME_BYTES));
      const head = Buffer.alloc(4);
      head.writeUInt32LE(part.length, 0);
      const tail = Buffer.alloc(4);
      tail.writeUInt32LE(crc32c(part), 0);
      await this.fh.writev([head, part, tail]);
    }
  }

  /** Writes the trailer, fsyncs, renames `<path>.tmp` to `path` and fsyncs the folder. */
  async finish(): Promise<{ dataBytes: number; sha256: string }> {
    await this.flush();
    const sha = this.hash.digest();
    const end = Buffer.alloc(TRAILER_BYTES);
    end.writeUInt32LE(0, 0);
    end.writeBigUInt64LE(BigInt(this.bytes), 4);
    sha.copy(end, 12);
    END.copy(end, 44);
    await this.writeAll(end);
    await this.fh.sync();
    await this.fh.close();
    this.done = true;
    await rename(BackupWriter.tmpPathOf(this.path), this.path);
    const dir = await open(dirname(this.path), "r");
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
    return { dataBytes: this.bytes, sha256: sha.toString("hex") };
  }

  /** Closes and removes the temporary file (a cut backup leaves nothing behind). */
  async abort(): Promise<void> {
    if (!this.done) {
      this.done = true;
      await this.fh.close().catch(() => undefined);
    }
    await rm(BackupWriter.tmpPathOf(this.path), { force: true });
  }
}

/** Reads a file sequentially in large chunks; `take(n)` returns exactly n bytes or undefined. */
class ChunkReader {
  private buf: Buffer = Buffer.alloc(0);
  private eof = false;
  offset = 0;

  constructor(private readonly fh: FileHandle) {}

  async take(n: number): Promise<Buffer | undefined> {
    while (this.buf.length < n && !this.eof) {
      const chunk = Buffer.allocUnsafe(Math.max(1024 * 1024, n - this.buf.length));
      const { bytesRead } = await this.fh.read(chunk, 0, chunk.length, null);
      if (bytesRead === 0) this.eof = true;
      else this.buf = Buffer.concat([this.buf, chunk.subarray(0, bytesRead)]);
    }
    if (this.buf.length < n) return undefined;
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    this.offset += n;
    return out;
  }

  async atEnd(): Promise<boolean> {
    if (this.buf.length > 0) return false;
    const probe = await this.take(1);
    return probe === undefined;
  }
}

/** An open backup file: its header, and its data as a verified stream. */
export interface OpenedBackup {
  readonly header: BackupHeader;
  readonly formatVersion: number;
  /**
   * The data, each frame checked as it is read; rejects with BackupFileError at the first
   * damage, at a truncation, or at the end when the length or SHA-256 disagrees. Closes the file
   * when done or abandoned. Can be iterated once.
   */
  readonly data: AsyncIterable<Uint8Array>;
  /** Closes the file (when `data` is not consumed). */
  close(): Promise<void>;
}

/** Opens a backup file and checks its header. Throws BackupFileError for a bad start. */
export async function openBackupFile(path: string): Promise<OpenedBackup> {
  const fh = await open(path, "r");
  let handed = false;
  try {
    const r = new ChunkReader(fh);
    const start = await r.take(16);
    if (start === undefined || !start.subarray(0, 8).equals(MAGIC)) {
      throw new BackupFileError(
        path,
        start === undefined && (await fh.stat()).size > 0 && startsLikeBackup(await readHead(fh))
          ? "truncated"
          : "not-a-backup",
        start === undefined
          ? "too short to be a Nexus backup"
          : "not a Nexus backup (no NEXUSBAK at its start)",
      );
    }
    const version = start.readUInt32LE(8);
    if (version > BACKUP_FORMAT_VERSION) {
      throw new BackupFileError(
        path,
        "newer-version",
        `written in backup format version ${version}; this nexus-raft reads up to version ${BACKUP_FORMAT_VERSION}`,
      );
    }
    if (version < 1)
      throw new BackupFileError(path, "damaged", `format version ${version} is invalid`);
    const len = start.readUInt32LE(12);
    if (len > MAX_HEADER_BYTES) {
      throw new BackupFileError(
        path,
        "damaged",
        `header length ${len} is over ${MAX_HEADER_BYTES} bytes`,
      );
    }
    const body = await r.take(len + 4);
    if (body === undefined)
      throw new BackupFileError(path, "truncated", "the file ends inside its header");
    const json = body.subarray(0, len);
    if (crc32c(json) !== body.readUInt32LE(len)) {
      throw new BackupFileError(
        path,
        "damaged",
        "the header's checksum does not match (damaged header)",
      );
    }
    let header: unknown;
    try {
      header = JSON.parse(json.toString("utf8"));
    } catch {
      throw new BackupFileError(path, "damaged", "the header is not valid JSON");
    }
    if (!checkHeader(header))
      throw new BackupFileError(path, "damaged", "the header lacks required fields");
    handed = true;
    return {
      header,
      formatVersion: version,
      data: frames(path, fh, r),
      close: () => fh.close().catch(() => undefined),
    };
  } finally {
    if (!handed) await fh.close();
  }
}

function startsLikeBackup(head: Buffer): boolean {
  return head.length > 0 && MAGIC.subarray(0, Math.min(8, head.length)).equals(head.subarray(0, 8));
}

async function readHead(fh: FileHandle): Promise<Buffer> {
  const b = Buffer.alloc(8);
  const { bytesRead } = await fh.read(b, 0, 8, 0);
  return b.subarray(0, bytesRead);
}

async function* frames(path: string, fh: FileHandle, r: ChunkReader): AsyncIterable<Uint8Array> {
  const hash = createHash("sha256");
  let total = 0;
  try {
    for (;;) {
      const at = r.offset;
      const head = await r.take(4);
      if (head === undefined) {
        throw new BackupFileError(
          path,
          "truncated",
          `the file ends at byte ${at}, before its end marker (a cut backup)`,
        );
      }
      const n = head.readUInt32LE(0);
      if (n === 0) break;
      if (n > MAX_FRAME_BYTES) {
        throw new BackupFileError(
          path,
          "damaged",
          `the frame at byte ${at} claims ${n} bytes (over ${MAX_FRAME_BYTES})`,
        );
      }
      const body = await r.take(n + 4);
      if (body === undefined) {
        throw new BackupFileError(
          path,
          "truncated",
          `the file ends inside the frame at byte ${at} (a cut backup)`,
        );
      }
      const data = body.subarray(0, n);
      if (crc32c(data) !== body.readUInt32LE(n)) {
        throw new BackupFileError(path, "damaged", `the frame at byte ${at} fails its checksum`);
      }
      hash.update(data);
      total += n;
      // A copy: the reader's buffer is reused.
      yield Buffer.from(data);
    }
    const end = await r.take(TRAILER_BYTES - 4);
    if (end === undefined)
      throw new BackupFileError(path, "truncated", "the file ends inside its trailer");
    if (!end.subarray(40).equals(END)) {
      throw new BackupFileError(path, "damaged", "the end marker NEXUSEND is missing or damaged");
    }
    const claimed = end.readBigUInt64LE(0);
    if (claimed !== BigInt(total)) {
      throw new BackupFileError(
        path,
        "damaged",
        `the trailer says ${claimed} data bytes, the frames hold ${total}`,
      );
    }
    if (!hash.digest().equals(end.subarray(8, 40))) {
      throw new BackupFileError(path, "damaged", "the data's SHA-256 does not match the trailer");
    }
    if (!(await r.atEnd())) {
      throw new BackupFileError(
        path,
        "trailing-bytes",
        `bytes follow the end marker at byte ${r.offset}`,
      );
    }
  } finally {
    await fh.close().catch(() => undefined);
  }
}

/** What a full check of a backup file found. */
export interface VerifiedBackup {
  readonly header: BackupHeader;
  readonly formatVersion: number;
  readonly dataBytes: number;
}

/** Reads the whole file and checks every frame, the trailer and the end. Throws BackupFileError. */
export async function verifyBackupFile(path: string): Promise<VerifiedBackup> {
  const b = await openBackupFile(path);
  let dataBytes = 0;
  for await (const chunk of b.data) dataBytes += chunk.length;
  return { header: b.header, formatVersion: b.formatVersion, dataBytes };
}
