/**
 * WAL records. Each record is a 12-byte header followed by its payload:
 *
 *   u32 LE payload length | u8 type | u8 flags | u16 LE batch | u32 LE CRC-32C(header 0..7, payload)
 *
 * The checksum covers the length, type, flags and batch, so a flipped bit anywhere in a record is
 * detected. Type 0 never occurs: the zeros of a preallocated segment read as "no record".
 * `batch` tags every record of one write-and-fdatasync (1..65535, wrapping; 0 = untagged, as
 * written before tags existed) and the flag `BATCH_END` marks the last record of each batch, so
 * that recovery can tell the records of the last, unsynced batch from synced ones (see wal.ts).
 * Integers in payloads are little-endian u64 written as two u32 halves (values < 2^53).
 */
import type { Entry, HardState } from "../raft/types.js";
import { crc32c } from "./crc32c.js";

export const HEADER_BYTES = 12;

/** Record types. */
export const RecordType = {
  /** The first record of every segment: its sequence number and first entry index. */
  segment: 1,
  /** A log entry. Appending index i drops any entry >= i already in the log (a new leader's). */
  entry: 2,
  /** Term, vote and commit. */
  hardState: 3,
  /** A snapshot was saved at (index, term): the log before it may be dropped. */
  snapshot: 4,
} as const;

export type RecordTypeCode = (typeof RecordType)[keyof typeof RecordType];

/** Header flag: this record is the last of its write batch (the batch's fdatasync follows it). */
export const BATCH_END = 1;

/**
 * Header flag of a snapshot record: the snapshot replaced the log (one received from a leader,
 * beyond the log or disagreeing with it). Entries written before it, after its index, are void.
 * A snapshot record without it agrees with the log (a snapshot taken locally).
 */
export const RESTARTS_LOG = 2;

const KNOWN_FLAGS = BATCH_END | RESTARTS_LOG;

/** How a record is tagged: its write batch (1..65535, 0 = untagged) and flags. */
export interface RecordTag {
  readonly batch: number;
  readonly flags: number;
}

/** No batch, no flags (the form written before batch tags existed). */
export const UNTAGGED: RecordTag = { batch: 0, flags: 0 };

/** The batch tag after `t`: 1..65535, wrapping, never 0. */
export function nextBatch(t: number): number {
  return (t % 65535) + 1;
}

const VALID_TYPES = new Set<number>(Object.values(RecordType));
const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: true });

/** Largest payload accepted on read: a corrupted length must not allocate gigabytes. */
export const MAX_PAYLOAD_BYTES = 512 * 1024 * 1024;

export function isValidType(t: number): boolean {
  return VALID_TYPES.has(t);
}

function putU64(dv: DataView, off: number, v: number): void {
  dv.setUint32(off, v >>> 0, true);
  dv.setUint32(off + 4, Math.floor(v / 0x100000000), true);
}

/** Reads a u64 that must be a safe integer; returns -1 if it is not. */
export function getU64(dv: DataView, off: number): number {
  const lo = dv.getUint32(off, true);
  const hi = dv.getUint32(off + 4, true);
  if (hi > 0x1fffff) return -1;
  return hi * 0x100000000 + lo;
}

/** Size of an entry record. */
export function entryRecordSize(e: Entry): number {
  return HEADER_BYTES + 17 + e.data.byteLength;
}

function finish(
  buf: Uint8Array,
  dv: DataView,
  off: number,
  type: number,
  payloadLen: number,
  tag: RecordTag,
): number {
  dv.setUint32(off, payloadLen, true);
  buf[off + 4] = type;
  buf[off + 5] = tag.flags;
  dv.setUint16(off + 6, tag.batch, true);
  let c = crc32c(buf, 0, off, off + 8);
  c = crc32c(buf, c, off + HEADER_BYTES, off + HEADER_BYTES + payloadLen);
  dv.setUint32(off + 8, c, true);
  return off + HEADER_BYTES + payloadLen;
}

/** Writes an entry record at off; returns the offset after it. */
export function writeEntryRecord(
  buf: Uint8Array,
  dv: DataView,
  off: number,
  e: Entry,
  tag: RecordTag = UNTAGGED,
): number {
  const p = off + HEADER_BYTES;
  buf[p] = e.type === "conf-change" ? 1 : 0;
  putU64(dv, p + 1, e.term);
  putU64(dv, p + 9, e.index);
  buf.set(e.data, p + 17);
  return finish(buf, dv, off, RecordType.entry, 17 + e.data.byteLength, tag);
}

/** A hard-state record. */
export function hardStateRecord(hs: HardState, tag: RecordTag = UNTAGGED): Uint8Array {
  const vote = enc.encode(hs.vote);
  const buf = new Uint8Array(HEADER_BYTES + 18 + vote.byteLength);
  const dv = new DataView(buf.buffer);
  const p = HEADER_BYTES;
  putU64(dv, p, hs.term);
  putU64(dv, p + 8, hs.commit);
  dv.setUint16(p + 16, vote.byteLength, true);
  buf.set(vote, p + 18);
  finish(buf, dv, 0, RecordType.hardState, 18 + vote.byteLength, tag);
  return buf;
}

/** A snapshot-marker record. */
export function snapshotRecord(index: number, term: number, tag: RecordTag = UNTAGGED): Uint8Array {
  const buf = new Uint8Array(HEADER_BYTES + 16);
  const dv = new DataView(buf.buffer);
  putU64(dv, HEADER_BYTES, index);
  putU64(dv, HEADER_BYTES + 8, term);
  finish(buf, dv, 0, RecordType.snapshot, 16, tag);
  return buf;
}

/** A segment-header record. */
export function segmentRecord(
  seq: number,
  firstIndex: number,
  tag: RecordTag = UNTAGGED,
): Uint8Array {
  const buf = new Uint8Array(HEADER_BYTES + 16);
  const dv = new DataView(buf.buffer);
  putU64(dv, HEADER_BYTES, seq);
  putU64(dv, HEADER_BYTES + 8, firstIndex);
  finish(buf, dv, 0, RecordType.segment, 16, tag);
  return buf;
}

/** A record read back: its type, tag and payload bounds within the buffer it was read from. */
export interface RawRecord {
  readonly type: number;
  readonly offset: number;
  /** The write batch it belongs to (0 = untagged). */
  readonly batch: number;
  /** Whether it is the last record of its batch. */
  readonly batchEnd: boolean;
  /** A snapshot record that replaced the log (RESTARTS_LOG). */
  readonly restartsLog: boolean;
  readonly payloadOffset: number;
  readonly payloadLength: number;
}

/** Why a record could not be read at an offset. */
export type RecordProblem = "end" | "truncated" | "bad-type" | "bad-length" | "bad-checksum";

/**
 * Reads the record at off in buf[0..limit). Returns the record, or the problem: "end" when the
 * header is all zeros (preallocated space) or there is no room for a header.
 */
export function readRecord(
  buf: Uint8Array,
  dv: DataView,
  off: number,
  limit: number,
): RawRecord | RecordProblem {
  if (off + HEADER_BYTES > limit) {
    for (let i = off; i < limit; i++) if (buf[i] !== 0) return "truncated";
    return "end";
  }
  const len = dv.getUint32(off, true);
  const type = buf[off + 4]!;
  const flags = buf[off + 5]!;
  if (
    len === 0 &&
    type === 0 &&
    flags === 0 &&
    dv.getUint16(off + 6) === 0 &&
    dv.getUint32(off + 8, true) === 0
  ) {
    return "end";
  }
  if (!isValidType(type) || (flags & ~KNOWN_FLAGS) !== 0) return "bad-type";
  if (len > MAX_PAYLOAD_BYTES) return "bad-length";
  if (off + HEADER_BYTES + len > limit) return "truncated";
  let c = crc32c(buf, 0, off, off + 8);
  c = crc32c(buf, c, off + HEADER_BYTES, off + HEADER_BYTES + len);
  if (c !== dv.getUint32(off + 8, true)) return "bad-checksum";
  return {
    type,
    offset: off,
    batch: dv.getUint16(off + 6, true),
    batchEnd: (flags & BATCH_END) !== 0,
    restartsLog: (flags & RESTARTS_LOG) !== 0,
    payloadOffset: off + HEADER_BYTES,
    payloadLength: len,
  };
}

/** Decodes an entry record's payload. Returns undefined if malformed. */
export function decodeEntry(
  buf: Uint8Array,
  dv: DataView,
  r: RawRecord,
  copy: boolean,
): Entry | undefined {
  if (r.payloadLength < 17) return undefined;
  const p = r.payloadOffset;
  const t = buf[p];
  if (t !== 0 && t !== 1) return undefined;
  const term = getU64(dv, p + 1);
  const index = getU64(dv, p + 9);
  if (term < 1 || index < 1) return undefined;
  const start = p + 17;
  const end = p + r.payloadLength;
  const data = copy ? buf.slice(start, end) : buf.subarray(start, end);
  return { term, index, type: t === 1 ? "conf-change" : "normal", data };
}

/** Decodes the (term, index) of an entry record without touching its data. */
export function entryPosition(
  buf: Uint8Array,
  dv: DataView,
  r: RawRecord,
): { term: number; index: number } | undefined {
  if (r.payloadLength < 17) return undefined;
  const p = r.payloadOffset;
  if (buf[p] !== 0 && buf[p] !== 1) return undefined;
  const term = getU64(dv, p + 1);
  const index = getU64(dv, p + 9);
  if (term < 1 || index < 1) return undefined;
  return { term, index };
}

export function decodeHardState(
  buf: Uint8Array,
  dv: DataView,
  r: RawRecord,
): HardState | undefined {
  if (r.payloadLength < 18) return undefined;
  const p = r.payloadOffset;
  const term = getU64(dv, p);
  const commit = getU64(dv, p + 8);
  const vl = dv.getUint16(p + 16, true);
  if (term < 0 || commit < 0 || 18 + vl !== r.payloadLength) return undefined;
  try {
    return { term, commit, vote: dec.decode(buf.subarray(p + 18, p + 18 + vl)) };
  } catch {
    return undefined;
  }
}

export function decodePair(dv: DataView, r: RawRecord): [number, number] | undefined {
  if (r.payloadLength !== 16) return undefined;
  const a = getU64(dv, r.payloadOffset);
  const b = getU64(dv, r.payloadOffset + 8);
  if (a < 0 || b < 0) return undefined;
  return [a, b];
}
