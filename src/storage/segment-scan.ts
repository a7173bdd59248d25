/**
 * Reading a WAL segment's bytes at recovery: the records in order up to the first one that does
 * not read back, what lies after that point, and the rule that decides whether damage at the end
 * of the last segment is a torn write (cut it off) or corruption (refuse to open).
 *
 * The rule rests on how the WAL writes: every batch of records is one write followed by one
 * fdatasync, and the next batch is written only after that sync returned. So everything before
 * the last batch is synced, and only the last batch can be partly on disk, in any order of its
 * pages (a preallocated file, pages flushed out of order before a power loss). Records carry the
 * tag of their batch and the last record of each batch carries the BATCH_END flag (record.ts).
 * Damage is a torn tail when every good record after it belongs to the batch the damage is in:
 *
 * - the last good record before the damage is of batch T without BATCH_END (the damage is inside
 *   batch T) and every good record after it is of batch T; or
 * - the last good record before the damage ends batch T (BATCH_END) and every good record after
 *   it is of batch T+1, which therefore started exactly where the damage starts;
 *
 * and no record after the damage but the very last ends a batch (two batches after the damage
 * would mean the first was synced); and the damaged stretch shows a lost sector: a 512-byte
 * sector of the file whose bytes from the damage on are all zeros (pages that never reached the
 * disk read as the preallocated zeros; a flipped bit leaves no such sector). Anything else
 * (records of another batch after the damage, untagged records, damage without a lost sector,
 * damage in a sealed segment) is corruption. What cannot be proved from the bytes alone is
 * whether the very last batch was synced before its pages were damaged: like etcd, damage in
 * the last batch that shows a lost sector is taken as a torn write, and so is a damaged record
 * with nothing at all after it (as before batch tags existed).
 */
import { Buffer } from "node:buffer";
import {
  BATCH_END,
  HEADER_BYTES,
  RESTARTS_LOG,
  isValidType,
  nextBatch,
  readRecord,
} from "./record.js";
import type { RawRecord, RecordProblem } from "./record.js";

const ZERO_CHUNK = new Uint8Array(64 * 1024);

/** The smallest unit a disk writes atomically; a page lost in a power loss is whole sectors. */
export const SECTOR_BYTES = 512;

/** The offset of the first non-zero byte at or after `from`, or -1 (zero runs are compared natively). */
export function firstNonZero(buf: Uint8Array, from: number): number {
  let off = from;
  while (off < buf.byteLength) {
    if (buf[off] !== 0) return off;
    const end = Math.min(buf.byteLength, off + ZERO_CHUNK.byteLength);
    if (Buffer.compare(buf.subarray(off, end), ZERO_CHUNK.subarray(0, end - off)) === 0) {
      off = end;
      continue;
    }
    while (buf[off] === 0) off++;
    return off;
  }
  return -1;
}

/** The offset of the last non-zero byte at or after `from`, or -1. */
export function lastNonZero(buf: Uint8Array, from: number): number {
  let end = buf.byteLength;
  while (end > from) {
    const start = Math.max(from, end - ZERO_CHUNK.byteLength);
    if (Buffer.compare(buf.subarray(start, end), ZERO_CHUNK.subarray(0, end - start)) === 0) {
      end = start;
      continue;
    }
    let i = end - 1;
    while (buf[i] === 0) i--;
    return i;
  }
  return -1;
}

/**
 * Whether [from, to) overlaps a sector whose bytes from `from` on (to the sector's end, or the
 * buffer's) are all zeros: the mark of a page that never reached the disk.
 */
export function hasLostSector(buf: Uint8Array, from: number, to: number): boolean {
  for (let c = from - (from % SECTOR_BYTES); c < to; c += SECTOR_BYTES) {
    const a = Math.max(c, from);
    const b = Math.min(c + SECTOR_BYTES, buf.byteLength);
    if (a < b && firstNonZero(buf.subarray(a, b), 0) < 0) return true;
  }
  return false;
}

/** The first record at or after `from` that reads back whole (checksum and all), if any. */
export function nextGoodRecord(buf: Uint8Array, dv: DataView, from: number): RawRecord | undefined {
  let off = from;
  while (off + HEADER_BYTES <= buf.byteLength) {
    const nz = firstNonZero(buf, off);
    if (nz < 0) return undefined;
    // A record's type byte (offset 4) is never zero: a record starts at most 4 bytes before.
    if (nz - 4 > off) off = nz - 4;
    if (isValidType(buf[off + 4]!) && buf[off + 5]! <= (BATCH_END | RESTARTS_LOG)) {
      const r = readRecord(buf, dv, off, buf.byteLength);
      if (typeof r !== "string") return r;
    }
    off++;
  }
  return undefined;
}

/** Where the in-order reading of a segment stopped. */
export interface SegmentStop {
  /** The offset of the first record that did not read back (the end of the good records). */
  readonly offset: number;
  /** "end": zeros (preallocated space); otherwise why the record there is damaged. */
  readonly problem: RecordProblem;
  /** The last good record before it, if any. */
  readonly lastGood: RawRecord | undefined;
}

/**
 * Reads the records of a segment in order, handing each to `onRecord` (which returns a reason if
 * the record makes no sense there: that is corruption, thrown by the caller). Stops at the first
 * record that does not read back.
 */
export function readSegmentRecords(
  buf: Uint8Array,
  dv: DataView,
  onRecord: (r: RawRecord) => void,
): SegmentStop {
  let off = 0;
  let lastGood: RawRecord | undefined;
  for (;;) {
    const r = readRecord(buf, dv, off, buf.byteLength);
    if (typeof r === "string") return { offset: off, problem: r, lastGood };
    onRecord(r);
    lastGood = r;
    off = r.payloadOffset + r.payloadLength;
  }
}

/** Every good record after `stop` (skipping damaged or zeroed stretches between them). */
export function recordsAfter(buf: Uint8Array, dv: DataView, stop: number): RawRecord[] {
  const out: RawRecord[] = [];
  let off = stop + 1;
  for (;;) {
    const r = nextGoodRecord(buf, dv, off);
    if (r === undefined) return out;
    out.push(r);
    off = r.payloadOffset + r.payloadLength;
    for (;;) {
      const n = readRecord(buf, dv, off, buf.byteLength);
      if (typeof n === "string") break;
      out.push(n);
      off = n.payloadOffset + n.payloadLength;
    }
  }
}

/**
 * Whether the good records `after` the damage can only belong to the last, never synced write
 * batch, given the last good record before the damage (see the module comment). Returns
 * undefined if so, or why not.
 */
export function whyNotUnsyncedTail(
  buf: Uint8Array,
  damageAt: number,
  before: RawRecord | undefined,
  after: readonly RawRecord[],
): string | undefined {
  const first = after[0];
  if (first === undefined) return undefined;
  if (before === undefined) return "no record precedes the damage";
  if (!hasLostSector(buf, damageAt, first.offset)) {
    return "no sector of the damaged stretch reads as zeros, so its bytes were written: not a torn write";
  }
  if (before.batch === 0 || first.batch === 0) {
    return "the records carry no write-batch tag, so the synced part cannot be told apart";
  }
  for (let i = 0; i < after.length; i++) {
    const r = after[i]!;
    if (r.batch !== first.batch) {
      return `records of two write batches follow it (at offsets ${first.offset} and ${r.offset}), so the first was synced`;
    }
    if (r.batchEnd && i < after.length - 1) {
      return `a complete write batch follows it (ending at offset ${r.offset}), so it was synced`;
    }
  }
  if (!before.batchEnd && first.batch === before.batch) return undefined;
  if (before.batchEnd && first.batch === nextBatch(before.batch)) return undefined;
  return (
    `the good record at offset ${first.offset} (write batch ${first.batch}) cannot follow ` +
    `${before.batchEnd ? "the complete" : "the incomplete"} batch ${before.batch} before the ` +
    `damage unless a synced batch was damaged`
  );
}
