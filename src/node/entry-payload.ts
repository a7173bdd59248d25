/**
 * The payload of a `normal` log entry written by the Replicator: the user's command plus what
 * every replica needs to apply it identically (the proposer's timestamp and a seed) and the
 * request id that lets the proposing node answer its caller.
 *
 * Binary layout (little-endian), version 1:
 *   u8 version (1) | u8 kind (1 = command, 2 = consistency check, 3 = check report,
 *   4 = restore chunk, 5 = restore commit, 6 = restore abort) |
 *   16 B request id |
 *   f64 timestampMs | f64 seed | u32 data length | data | u16 arg count |
 *   per arg: u16 key length | key (UTF-8) | u32 value length | value (UTF-8)
 * An empty entry (a new leader's no-op) has no payload at all.
 */
import { NexusError } from "../errors/index.js";

/**
 * What a payload asks the replicas to do: apply a user's command, digest the store (a
 * consistency check), record one replica's digest for a check (its report), or take part in a
 * restore into the running cluster (restore-staging.ts): stage a chunk of a backup file, replace
 * the store with the staged file, or drop the staged file.
 */
export type PayloadKind =
  "command" | "check" | "check-report" | "restore-chunk" | "restore-commit" | "restore-abort";

/** A decoded entry payload. */
export interface EntryPayload {
  readonly kind: PayloadKind;
  /** 16 random bytes chosen by the proposing node. */
  readonly requestId: Uint8Array;
  readonly timestampMs: number;
  /** 0 <= seed < 2^53. */
  readonly seed: number;
  readonly data: Uint8Array;
  readonly args: Readonly<Record<string, string>>;
}

const VERSION = 1;
const KIND_CODES: Record<PayloadKind, number> = {
  command: 1,
  check: 2,
  "check-report": 3,
  "restore-chunk": 4,
  "restore-commit": 5,
  "restore-abort": 6,
};
const KINDS: readonly (PayloadKind | undefined)[] = [
  undefined,
  "command",
  "check",
  "check-report",
  "restore-chunk",
  "restore-commit",
  "restore-abort",
];
const REQUEST_ID_BYTES = 16;
const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: true });

/** Encodes a payload into one buffer. */
export function encodeEntryPayload(p: EntryPayload): Uint8Array {
  if (p.requestId.byteLength !== REQUEST_ID_BYTES) {
    throw new NexusError("INTERNAL", `request id must be ${REQUEST_ID_BYTES} bytes`);
  }
  const args = Object.entries(p.args).map(([k, v]) => [enc.encode(k), enc.encode(v)] as const);
  if (args.length > 0xffff) throw new NexusError("INVALID_ARGUMENT", "too many request args");
  let size = 2 + REQUEST_ID_BYTES + 8 + 8 + 4 + p.data.byteLength + 2;
  for (const [k, v] of args) {
    if (k.byteLength > 0xffff)
      throw new NexusError("INVALID_ARGUMENT", "request arg name too long");
    size += 2 + k.byteLength + 4 + v.byteLength;
  }
  const out = new Uint8Array(size);
  const dv = new DataView(out.buffer);
  let o = 0;
  out[o++] = VERSION;
  out[o++] = KIND_CODES[p.kind];
  out.set(p.requestId, o);
  o += REQUEST_ID_BYTES;
  dv.setFloat64(o, p.timestampMs, true);
  o += 8;
  dv.setFloat64(o, p.seed, true);
  o += 8;
  dv.setUint32(o, p.data.byteLength, true);
  o += 4;
  out.set(p.data, o);
  o += p.data.byteLength;
  dv.setUint16(o, args.length, true);
  o += 2;
  for (const [k, v] of args) {
    dv.setUint16(o, k.byteLength, true);
    o += 2;
    out.set(k, o);
    o += k.byteLength;
    dv.setUint32(o, v.byteLength, true);
    o += 4;
    out.set(v, o);
    o += v.byteLength;
  }
  return out;
}

function corrupt(what: string): NexusError {
  return new NexusError("CORRUPTED", `malformed entry payload: ${what}`);
}

/** Decodes a payload. Throws CORRUPTED naming what is wrong. */
export function decodeEntryPayload(b: Uint8Array): EntryPayload {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let o = 0;
  const need = (n: number, what: string): void => {
    if (o + n > b.byteLength) throw corrupt(`truncated ${what}`);
  };
  need(2 + REQUEST_ID_BYTES + 8 + 8 + 4, "header");
  const version = b[o++]!;
  if (version !== VERSION) throw corrupt(`unknown version ${version}`);
  const kindCode = b[o++]!;
  const kind = KINDS[kindCode];
  if (kind === undefined) throw corrupt(`unknown kind ${kindCode}`);
  const requestId = b.slice(o, o + REQUEST_ID_BYTES);
  o += REQUEST_ID_BYTES;
  const timestampMs = dv.getFloat64(o, true);
  o += 8;
  const seed = dv.getFloat64(o, true);
  o += 8;
  if (!Number.isSafeInteger(timestampMs) || timestampMs < 0) throw corrupt("bad timestamp");
  if (!Number.isSafeInteger(seed) || seed < 0) throw corrupt("bad seed");
  const dataLen = dv.getUint32(o, true);
  o += 4;
  need(dataLen, "data");
  const data = b.subarray(o, o + dataLen);
  o += dataLen;
  need(2, "arg count");
  const argc = dv.getUint16(o, true);
  o += 2;
  const args: Record<string, string> = {};
  for (let i = 0; i < argc; i++) {
    need(2, "arg name length");
    const kl = dv.getUint16(o, true);
    o += 2;
    need(kl, "arg name");
    const k = dec.decode(b.subarray(o, o + kl));
    o += kl;
    need(4, "arg value length");
    const vl = dv.getUint32(o, true);
    o += 4;
    need(vl, "arg value");
    args[k] = dec.decode(b.subarray(o, o + vl));
    o += vl;
  }
  if (o !== b.byteLength) throw corrupt(`${b.byteLength - o} trailing bytes`);
  return { kind, requestId, timestampMs, seed, data, args };
}

/** Lowercase hex of a request id, for maps. */
export function requestKey(id: Uint8Array): string {
  return Buffer.from(id.buffer, id.byteOffset, id.byteLength).toString("hex");
}
