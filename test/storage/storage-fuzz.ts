/**
 * Fuzzing of what a node reads back from its own disk, seeded and replayable (the disk may be
 * damaged, or written by someone else):
 * - `records`: WAL records (src/storage/record.ts): valid record sequences of every type, then
 *   mutated (bit flips, bytes overwritten, length fields changed, cuts, random bytes spliced in,
 *   zeroed stretches) or replaced by random bytes, read back with readRecord and the payload
 *   decoders. A record must be accepted only when its CRC-32C (checked here by a plain bitwise
 *   reference implementation) matches; every record before the first changed byte must read back
 *   exactly as written; nothing may throw.
 * - `snapshots`: snapshot files (src/storage/snapshotter.ts `validate`), written by the
 *   Snapshotter on an in-memory file system, then mutated (in the header, the metadata, the data,
 *   the trailer, lengths, cuts, extensions, random bytes, and metadata that is well checksummed
 *   but wrong: missing fields, wrong types, a file name that does not match). validate must agree
 *   with a reference parse written here: accept exactly the valid files (with the same metadata
 *   and data bounds) and refuse the rest with CORRUPTED.
 *
 * Input i of a run with seed s draws from its own generator, so one input replays alone:
 *   node --import tsx test/storage/storage-fuzz.ts [--inputs N] [--seed S] [--target records|snapshots] [--only I]
 * prints one JSON line per target with inputs/s and findings, and exits 1 if there is any finding.
 */
import { posix } from "node:path";
import {
  BATCH_END,
  HEADER_BYTES,
  RESTARTS_LOG,
  RecordType,
  decodeEntry,
  decodeHardState,
  decodePair,
  entryRecordSize,
  hardStateRecord,
  readRecord,
  segmentRecord,
  snapshotRecord,
  writeEntryRecord,
} from "../../src/storage/record.js";
import { Snapshotter, snapshotName } from "../../src/storage/snapshotter.js";
import type { SnapshotMeta } from "../../src/storage/snapshotter.js";
import type { FsFile, FsLayer } from "../../src/storage/fs-layer.js";
import { isNexusError } from "../../src/errors/index.js";
import type { RandomSource } from "../../src/raft/random.js";
import { bytes, fuzzMain, fuzzSeed, runInputs } from "../fuzz-runner.js";
import type { FuzzReport as RunReport } from "../fuzz-runner.js";

export type StorageTarget = "records" | "snapshots";

/** One input that broke a rule. */
export type Finding = FuzzReport["findings"][number];

/**
 * The outcome of fuzzing one target. accepted: inputs with at least one record accepted
 * (records) or a file accepted (snapshots); refused: inputs refused somewhere (a damaged record,
 * a refused file).
 */
export type FuzzReport = RunReport<StorageTarget>;

const SLOW_MS = 1000;

/** CRC-32C, bit by bit: the reference the table-driven implementation must agree with. */
function refCrc(parts: readonly Uint8Array[]): number {
  let c = 0xffffffff;
  for (const p of parts) {
    for (const b of p) {
      c ^= b;
      for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    }
  }
  return (c ^ 0xffffffff) >>> 0;
}

/**
 * Mutates a copy of `b`; returns it and the offset of the first byte that may differ from `b`
 * (b.length when nothing changed before the end of `b`).
 */
function mutate(
  rnd: RandomSource,
  b: Uint8Array,
  hot?: { from: number; to: number },
): { out: Uint8Array; first: number } {
  let out = b.slice();
  let first = out.byteLength;
  const at = (): number =>
    hot !== undefined && rnd(2) === 0 && hot.to > hot.from
      ? hot.from + rnd(hot.to - hot.from)
      : rnd(Math.max(1, out.byteLength));
  for (let n = 1 + rnd(3); n > 0; n--) {
    if (out.byteLength === 0) break;
    switch (rnd(7)) {
      case 0: {
        const i = at();
        out[i] = out[i]! ^ (1 << rnd(8));
        first = Math.min(first, i);
        break;
      }
      case 1: {
        const i = at();
        out[i] = rnd(256);
        first = Math.min(first, i);
        break;
      }
      case 2: {
        // A 32-bit little-endian field set to a random, small or huge value.
        if (out.byteLength < 4) break;
        const i = Math.min(at(), out.byteLength - 4);
        const v = [0, 1, 0xffffffff, 0x7fffffff, rnd(1 << 16), rnd(0x7fffffff)][rnd(6)]!;
        new DataView(out.buffer, out.byteOffset).setUint32(i, v >>> 0, true);
        first = Math.min(first, i);
        break;
      }
      case 3: {
        const cut = rnd(out.byteLength + 1);
        out = out.slice(0, cut);
        first = Math.min(first, cut);
        break;
      }
      case 4: {
        const i = at();
        const extra = bytes(rnd, 1 + rnd(32));
        out = new Uint8Array(Buffer.concat([out.subarray(0, i), extra, out.subarray(i)]));
        first = Math.min(first, i);
        break;
      }
      case 5: {
        const i = at();
        const n2 = 1 + rnd(64);
        out.fill(0, i, i + n2);
        first = Math.min(first, i);
        break;
      }
      default: {
        const extra = bytes(rnd, 1 + rnd(64));
        first = Math.min(first, out.byteLength);
        out = new Uint8Array(Buffer.concat([out, extra]));
      }
    }
  }
  return { out, first };
}

// ---- records ----

interface Written {
  readonly off: number;
  readonly len: number;
  readonly type: number;
  readonly value: unknown;
}

function u53(rnd: RandomSource): number {
  switch (rnd(4)) {
    case 0:
      return 1 + rnd(100);
    case 1:
      return rnd(0x7fffffff) * 0x200000 + rnd(0x200000);
    case 2:
      return Number.MAX_SAFE_INTEGER - rnd(3);
    default:
      return 1 + rnd(1 << 30);
  }
}

function validRecords(rnd: RandomSource): { buf: Uint8Array; written: Written[] } {
  const parts: Uint8Array[] = [];
  const written: Written[] = [];
  let off = 0;
  for (let n = 1 + rnd(6); n > 0; n--) {
    const tag = { batch: rnd(65536), flags: rnd(2) === 0 ? BATCH_END : 0 };
    let rec: Uint8Array;
    let type: number;
    let value: unknown;
    switch (rnd(4)) {
      case 0: {
        const v: [number, number] = [u53(rnd), u53(rnd)];
        rec = segmentRecord(v[0], v[1], tag);
        type = RecordType.segment;
        value = v;
        break;
      }
      case 1: {
        const v: [number, number] = [u53(rnd), u53(rnd)];
        rec = snapshotRecord(v[0], v[1], {
          ...tag,
          flags: tag.flags | (rnd(2) === 0 ? RESTARTS_LOG : 0),
        });
        type = RecordType.snapshot;
        value = v;
        break;
      }
      case 2: {
        const hs = {
          term: u53(rnd) - 1,
          commit: u53(rnd) - 1,
          vote: Buffer.from(bytes(rnd, rnd(20))).toString("hex"),
        };
        rec = hardStateRecord(hs, tag);
        type = RecordType.hardState;
        value = hs;
        break;
      }
      default: {
        const e = {
          term: u53(rnd),
          index: u53(rnd),
          type: rnd(2) === 0 ? ("normal" as const) : ("conf-change" as const),
          data: bytes(rnd, rnd(4) === 0 ? rnd(2000) : rnd(40)),
        };
        rec = new Uint8Array(entryRecordSize(e));
        writeEntryRecord(rec, new DataView(rec.buffer), 0, e, tag);
        type = RecordType.entry;
        value = { ...e, data: Buffer.from(e.data).toString("hex") };
      }
    }
    parts.push(rec);
    written.push({ off, len: rec.byteLength, type, value });
    off += rec.byteLength;
  }
  // Preallocated space after the records, as a segment has.
  if (rnd(2) === 0) parts.push(new Uint8Array(rnd(64)));
  return { buf: new Uint8Array(Buffer.concat(parts)), written };
}

function recordInput(rnd: RandomSource): {
  input: Uint8Array;
  problem: string;
  accepted: boolean;
  refused: boolean;
} {
  const { buf: valid, written } = validRecords(rnd);
  const mode = rnd(8);
  let input: Uint8Array;
  let first: number;
  if (mode === 0) {
    input = bytes(rnd, rnd(200));
    first = 0;
  } else if (mode === 1) {
    input = valid;
    first = valid.byteLength;
  } else {
    const hot =
      written.length > 0
        ? {
            from: written[0]!.off,
            to: Math.min(valid.byteLength, written[0]!.off + HEADER_BYTES * 2),
          }
        : undefined;
    ({ out: input, first } = mutate(rnd, valid, rnd(2) === 0 ? hot : undefined));
  }
  const dv = new DataView(input.buffer, input.byteOffset, input.byteLength);
  let off = 0;
  let accepted = false;
  let refused = false;
  for (let steps = 0; steps < 100_000; steps++) {
    let r: ReturnType<typeof readRecord>;
    try {
      r = readRecord(input, dv, off, input.byteLength);
    } catch (err) {
      return { input, problem: `readRecord threw: ${String(err)}`, accepted, refused };
    }
    const original = written.find((w) => w.off === off);
    const intact = original !== undefined && off + original.len <= first;
    if (typeof r === "string") {
      if (intact)
        return {
          input,
          problem: `an intact record at ${off} was refused: ${r}`,
          accepted,
          refused,
        };
      if (r !== "end") refused = true;
      return { input, problem: "", accepted, refused };
    }
    const end = r.payloadOffset + r.payloadLength;
    if (r.offset !== off || r.payloadOffset !== off + HEADER_BYTES || end > input.byteLength) {
      return { input, problem: `record bounds wrong at ${off}`, accepted, refused };
    }
    const crc = refCrc([input.subarray(off, off + 8), input.subarray(r.payloadOffset, end)]);
    if (crc !== dv.getUint32(off + 8, true)) {
      return {
        input,
        problem: `a record at ${off} was accepted without a matching CRC`,
        accepted,
        refused,
      };
    }
    accepted = true;
    let value: unknown;
    try {
      if (r.type === RecordType.entry) {
        const e = decodeEntry(input, dv, r, true);
        if (e !== undefined) {
          if (!(
            Number.isSafeInteger(e.term) &&
            e.term >= 1 &&
            Number.isSafeInteger(e.index) &&
            e.index >= 1
          )) {
            return {
              input,
              problem: "an entry decoded with an invalid term or index",
              accepted,
              refused,
            };
          }
          if (e.data.byteLength !== r.payloadLength - 17) {
            return {
              input,
              problem: "an entry's data length does not match its record",
              accepted,
              refused,
            };
          }
          value = { ...e, data: Buffer.from(e.data).toString("hex") };
        }
      } else if (r.type === RecordType.hardState) {
        const hs = decodeHardState(input, dv, r);
        if (
          hs !== undefined &&
          !(
            Number.isSafeInteger(hs.term) &&
            hs.term >= 0 &&
            Number.isSafeInteger(hs.commit) &&
            hs.commit >= 0
          )
        ) {
          return { input, problem: "a hard state decoded out of range", accepted, refused };
        }
        value = hs;
      } else {
        const p = decodePair(dv, r);
        if (p !== undefined && !p.every((v) => Number.isSafeInteger(v) && v >= 0)) {
          return { input, problem: "a pair decoded out of range", accepted, refused };
        }
        value = p;
      }
    } catch (err) {
      return { input, problem: `a decoder threw: ${String(err)}`, accepted, refused };
    }
    if (
      intact &&
      (r.type !== original.type || JSON.stringify(value) !== JSON.stringify(original.value))
    ) {
      return {
        input,
        problem: `an intact record at ${off} decoded differently`,
        accepted,
        refused,
      };
    }
    off = end;
  }
  return { input, problem: "the walk did not end", accepted, refused };
}

// ---- snapshots ----

/** An in-memory file system: enough of FsLayer for the Snapshotter. */
class MemFs implements FsLayer {
  readonly files = new Map<string, Uint8Array>();
  async open(path: string, mode: "r" | "r+" | "w"): Promise<FsFile> {
    if (mode === "w") this.files.set(path, new Uint8Array(0));
    else if (!this.files.has(path))
      throw Object.assign(new Error(`ENOENT ${path}`), { code: "ENOENT" });
    const files = this.files;
    const get = (): Uint8Array => files.get(path) ?? new Uint8Array(0);
    return {
      async write(buf, position) {
        let cur = get();
        if (cur.byteLength < position + buf.byteLength) {
          const grown = new Uint8Array(position + buf.byteLength);
          grown.set(cur);
          cur = grown;
        }
        cur.set(buf, position);
        files.set(path, cur);
      },
      async datasync() {},
      async read(buf, position) {
        const cur = get();
        const n = Math.max(0, Math.min(buf.byteLength, cur.byteLength - position));
        buf.set(cur.subarray(position, position + n));
        return n;
      },
      readSync(buf, position) {
        const cur = get();
        const n = Math.max(0, Math.min(buf.byteLength, cur.byteLength - position));
        buf.set(cur.subarray(position, position + n));
        return n;
      },
      async truncate(length) {
        files.set(path, get().slice(0, length));
      },
      async size() {
        return get().byteLength;
      },
      async close() {},
    };
  }
  async readdir(dir: string): Promise<string[]> {
    return [...this.files.keys()]
      .filter((p) => posix.dirname(p) === dir)
      .map((p) => posix.basename(p));
  }
  async mkdirp(): Promise<void> {}
  async rename(from: string, to: string): Promise<void> {
    const f = this.files.get(from);
    if (f === undefined) throw new Error(`ENOENT ${from}`);
    this.files.delete(from);
    this.files.set(to, f);
  }
  async unlink(path: string): Promise<void> {
    this.files.delete(path);
  }
  async rmrf(path: string): Promise<void> {
    for (const k of [...this.files.keys()])
      if (k === path || k.startsWith(`${path}/`)) this.files.delete(k);
  }
  async syncDir(): Promise<void> {}
  async exists(path: string): Promise<boolean> {
    return this.files.has(path) || [...this.files.keys()].some((k) => k.startsWith(`${path}/`));
  }
}

const MAGIC = Buffer.from("NEXUSNAP");
const END = Buffer.from("NEXUSEND");
const TRAILER = 20;

/** The reference parse of a snapshot file: its metadata and data bounds, or undefined. */
function referenceSnapshot(
  f: Uint8Array,
  name: string,
): { meta: unknown; dataOffset: number; dataLength: number } | undefined {
  const b = Buffer.from(f.buffer, f.byteOffset, f.byteLength);
  if (b.length < 16 || !b.subarray(0, 8).equals(MAGIC) || b.readUInt32LE(8) !== 1) return undefined;
  const metaLen = b.readUInt32LE(12);
  if (16 + metaLen + 4 + TRAILER > b.length) return undefined;
  const metaBytes = b.subarray(16, 16 + metaLen);
  if (refCrc([metaBytes]) !== b.readUInt32LE(16 + metaLen)) return undefined;
  let meta: Record<string, unknown>;
  try {
    meta = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(metaBytes)) as Record<
      string,
      unknown
    >;
  } catch {
    return undefined;
  }
  if (typeof meta !== "object" || meta === null) return undefined;
  const cs = meta["confState"] as Record<string, unknown> | null | undefined;
  const ids = (x: unknown): boolean => Array.isArray(x) && x.every((s) => typeof s === "string");
  if (
    !Number.isSafeInteger(meta["index"]) ||
    !Number.isSafeInteger(meta["term"]) ||
    typeof cs !== "object" ||
    cs === null ||
    !ids(cs["voters"]) ||
    !ids(cs["learners"]) ||
    !ids(cs["votersOutgoing"]) ||
    !ids(cs["learnersNext"]) ||
    typeof cs["autoLeave"] !== "boolean" ||
    typeof meta["members"] !== "object" ||
    meta["members"] === null
  ) {
    return undefined;
  }
  const m = /^([0-9a-f]{16})-([0-9a-f]{16})\.snap$/.exec(name);
  if (m === null || parseInt(m[1]!, 16) !== meta["term"] || parseInt(m[2]!, 16) !== meta["index"]) {
    return undefined;
  }
  const tail = b.subarray(b.length - TRAILER);
  if (!tail.subarray(12).equals(END)) return undefined;
  const dataLength = tail.readUInt32LE(0) + tail.readUInt32LE(4) * 0x100000000;
  const dataOffset = 16 + metaLen + 4;
  if (dataOffset + dataLength + TRAILER !== b.length) return undefined;
  if (refCrc([b.subarray(dataOffset, dataOffset + dataLength)]) !== tail.readUInt32LE(8))
    return undefined;
  return { meta, dataOffset, dataLength };
}

function randomMeta(rnd: RandomSource): SnapshotMeta {
  const id = (): string => Buffer.from(bytes(rnd, 8)).toString("hex");
  const voters = Array.from({ length: 1 + rnd(5) }, id);
  return {
    index: u53(rnd),
    term: u53(rnd),
    confState: {
      voters,
      learners: rnd(3) === 0 ? [id()] : [],
      votersOutgoing: rnd(4) === 0 ? voters.slice(1) : [],
      learnersNext: [],
      autoLeave: rnd(2) === 0,
    },
    members: Object.fromEntries(voters.map((v, i) => [v, `http://10.0.0.${i}:9021`])),
  };
}

/** A metadata JSON that is checksummed correctly but wrong in some way (or right). */
function hostileMeta(rnd: RandomSource, meta: SnapshotMeta): unknown {
  const m = JSON.parse(JSON.stringify(meta)) as Record<string, unknown>;
  const cs = m["confState"] as Record<string, unknown>;
  switch (rnd(10)) {
    case 0:
      delete m["confState"];
      break;
    case 1:
      m["index"] = "12";
      break;
    case 2:
      m["term"] = 2 ** 60;
      break;
    case 3:
      cs["voters"] = [1, 2];
      break;
    case 4:
      cs["autoLeave"] = "yes";
      break;
    case 5:
      m["members"] = null;
      break;
    case 6:
      return [1, 2, 3];
    case 7:
      return null;
    case 8:
      m["index"] = (meta.index + 1) % Number.MAX_SAFE_INTEGER; // name mismatch
      break;
    default:
      m["extra"] = { nested: [1, { deep: "x" }] };
  }
  return m;
}

/** The bytes of a snapshot file with the given metadata JSON text and data (as save() writes). */
function fileWith(metaJson: string, data: Uint8Array): Uint8Array {
  const metaBytes = Buffer.from(metaJson, "utf8");
  const head = Buffer.alloc(16);
  MAGIC.copy(head, 0);
  head.writeUInt32LE(1, 8);
  head.writeUInt32LE(metaBytes.length, 12);
  const crc = Buffer.alloc(4);
  crc.writeUInt32LE(refCrc([metaBytes]), 0);
  const tail = Buffer.alloc(TRAILER);
  tail.writeUInt32LE(data.byteLength, 0);
  tail.writeUInt32LE(refCrc([data]), 8);
  END.copy(tail, 12);
  return new Uint8Array(Buffer.concat([head, metaBytes, crc, data, tail]));
}

async function snapshotInput(
  rnd: RandomSource,
): Promise<{ input: Uint8Array; problem: string; accepted: boolean }> {
  const fs = new MemFs();
  const snap = new Snapshotter("/snap", { fs, maxSnapshots: 0 });
  const meta = randomMeta(rnd);
  const data = bytes(rnd, rnd(4) === 0 ? rnd(5000) : rnd(64));
  const saved = await snap.save(
    meta,
    (async function* () {
      yield data;
    })(),
  );
  const valid = fs.files.get(saved.path)!;
  let name = saved.name;
  let input: Uint8Array;
  switch (rnd(6)) {
    case 0:
      input = valid;
      break;
    case 1:
      input = bytes(rnd, rnd(300));
      break;
    case 2:
      input = fileWith(JSON.stringify(hostileMeta(rnd, meta)), data);
      break;
    case 3:
      // A valid file under the name of another snapshot.
      input = valid;
      name = snapshotName(
        meta.term,
        (meta.index % 1000) + 1 === meta.index ? meta.index + 1 : (meta.index % 1000) + 1,
      );
      break;
    default: {
      const headerEnd = saved.dataOffset;
      const hot =
        rnd(2) === 0
          ? { from: 0, to: headerEnd }
          : { from: valid.byteLength - TRAILER, to: valid.byteLength };
      input = mutate(rnd, valid, hot).out;
    }
  }
  fs.files.delete(saved.path);
  fs.files.set(`/snap/${name}`, input);
  const want = referenceSnapshot(input, name);
  let got: Awaited<ReturnType<Snapshotter["validate"]>> | undefined;
  try {
    got = await snap.validate(name);
  } catch (err) {
    if (!isNexusError(err, "CORRUPTED")) {
      return {
        input,
        problem: `validate threw something else than CORRUPTED: ${String(err)}`,
        accepted: false,
      };
    }
    if (want !== undefined)
      return { input, problem: `a valid file was refused: ${err.message}`, accepted: false };
    return { input, problem: "", accepted: false };
  }
  if (want === undefined) return { input, problem: "a damaged file was accepted", accepted: true };
  if (
    JSON.stringify(got.meta) !== JSON.stringify(want.meta) ||
    got.dataOffset !== want.dataOffset ||
    got.dataLength !== want.dataLength
  ) {
    return {
      input,
      problem: "validate and the reference disagree on the file's contents",
      accepted: true,
    };
  }
  return { input, problem: "", accepted: true };
}

/** Fuzzes one target with `inputs` inputs from `seed` (or only input `only`). */
export function fuzzStorage(
  target: StorageTarget,
  seed: number,
  inputs: number,
  only?: number,
): Promise<FuzzReport> {
  return runInputs({ target, seed, inputs, only, slowMs: SLOW_MS }, async (rnd) => {
    if (target === "records") return recordInput(rnd);
    const r = await snapshotInput(rnd);
    return { ...r, refused: !r.accepted };
  });
}

export { fuzzSeed };

if (import.meta.url === `file://${process.argv[1]}`) {
  await fuzzMain(process.argv.slice(2), {
    targets: ["records", "snapshots"] as const,
    run: fuzzStorage,
  });
}
