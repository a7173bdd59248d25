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
 * Version 2 is version 1 followed by the client's request record key (src/store/request-records.ts):
 *   u8 request id length (1..128) | request id (printable ASCII) | f64 issuedAtMs
 * It is written only for a payload with a client request id; every other payload stays version 1,
 * and both versions decode.
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
  /**
   * The client's request id and when it first issued the request (a save that must apply
   * exactly once: src/store/request-records.ts). Absent in version-1 payloads.
   */
  readonly clientRequest?: ClientRequest;
}

/** A client's request id and issue time, carried by a version-2 payload. */
export interface ClientRequest {
  /** 1 to 128 printable ASCII characters. */
  readonly id: string;
  /** ms since the epoch, the client's clock. */
  readonly issuedAtMs: number;
}

const VERSION = 1;
/** The version of a payload that carries a ClientRequest. */
const VERSION_WITH_REQUEST = 2;
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
  const cr = p.clientRequest;
  const crId = cr === undefined ? undefined : Buffer.from(cr.id, "latin1");
  if (cr !== undefined && (crId!.byteLength < 1 || crId!.byteLength > 128)) {
    throw new NexusError("INVALID_ARGUMENT", "request id must be 1 to 128 characters");
  }
  let size = 2 + REQUEST_ID_BYTES + 8 + 8 + 4 + p.data.byteLength + 2;
  if (crId !== undefined) size += 1 + crId.byteLength + 8;
  for (const [k, v] of args) {
    if (k.byteLength > 0xffff)
      throw new NexusError("INVALID_ARGUMENT", "request arg name too long");
    size += 2 + k.byteLength + 4 + v.byteLength;
  }
  const out = new Uint8Array(size);
  const dv = new DataView(out.buffer);
  let o = 0;
  out[o++] = cr === undefined ? VERSION : VERSION_WITH_REQUEST;
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
  if (cr !== undefined && crId !== undefined) {
    out[o++] = crId.byteLength;
    out.set(crId, o);
    o += crId.byteLength;
    dv.setFloat64(o, cr.issuedAtMs, true);
    o += 8;
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
  if (version !== VERSION && version !== VERSION_WITH_REQUEST) {
    throw corrupt(`unknown version ${version}`);
  }
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
  let clientRequest: ClientRequest | undefined;
  if (version === VERSION_WITH_REQUEST) {
    need(1, "client request id length");
    const il = b[o++]!;
    need(il + 8, "client request");
    const id = Buffer.from(b.subarray(o, o + il)).toString("latin1");
    o += il;
    const issuedAtMs = dv.getFloat64(o, true);
    o += 8;
    if (!/^[\x21-\x7e]{1,128}$/.test(id)) throw corrupt("bad client request id");
    if (!Number.isSafeInteger(issuedAtMs) || issuedAtMs < 0) throw corrupt("bad issued-at time");
    clientRequest = { id, issuedAtMs };
  }
  if (o !== b.byteLength) throw corrupt(`${b.byteLength - o} trailing bytes`);
  return clientRequest === undefined
    ? { kind, requestId, timestampMs, seed, data, args }
    : { kind, requestId, timestampMs, seed, data, args, clientRequest };
}

/** Lowercase hex of a request id, for maps. */
export function requestKey(id: Uint8Array): string {
  return Buffer.from(id.buffer, id.byteOffset, id.byteLength).toString("hex");
}
