/**
 * Request records: what makes a save with a client-chosen request id apply exactly once
 * (src/store/DESIGN.md, "Request records"). Every backend keeps its records in its own database,
 * in the same transaction as the entry's effect and applied index, and decides with the pure
 * functions here, so that every replica gives every entry the same result whatever its batch
 * boundaries, restarts or how far it has purged old records.
 */
import { createHash } from "node:crypto";
import { NexusError } from "../errors/index.js";
import type { ApplyEntry, ApplyResult, StoreCommand } from "./store.js";

/** How long a request id is remembered by default: 10 minutes of the leaders' clocks. */
export const DEFAULT_REQUEST_WINDOW_MS = 10 * 60_000;
/** Records purged at most per applied batch (the rest go in later batches). */
export const REQUEST_PURGE_BATCH = 1000;
/** The longest request id, in bytes. */
export const MAX_REQUEST_ID_BYTES = 128;

/** The request record key an entry may carry: who asked, for what, and when. */
export interface RequestKey {
  /** The client's id for the request: 1 to 128 printable ASCII characters (0x21..0x7e). */
  readonly id: string;
  /** `requestHash()` of the entry's command: a retry must carry the same payload. */
  readonly hash: string;
  /** When the client first issued the request, in ms since the epoch (its own clock). */
  readonly issuedAtMs: number;
}

/** One stored record: the first result of a request id. */
export interface RequestRecord {
  readonly id: string;
  readonly hash: string;
  readonly result: ApplyResult;
  /** The index of the entry that applied it. */
  readonly index: number;
  /**
   * max(entry timestampMs, issuedAtMs): the record is live while an entry's timestamp minus the
   * window is at most this (see `isLive`).
   */
  readonly keptFromMs: number;
}

/** Throws INVALID_ARGUMENT unless `id` is 1 to 128 printable ASCII characters. */
export function validateRequestId(id: string): void {
  if (id.length < 1 || id.length > MAX_REQUEST_ID_BYTES || !/^[\x21-\x7e]+$/.test(id)) {
    throw new NexusError(
      "INVALID_ARGUMENT",
      `request id ${JSON.stringify(id.slice(0, 200))} is invalid: use 1 to ${MAX_REQUEST_ID_BYTES} ` +
        "printable ASCII characters (no spaces), e.g. a UUID",
    );
  }
}

/** Throws INVALID_ARGUMENT unless `ms` is a time in ms since the epoch (a safe integer >= 0). */
export function validateIssuedAt(ms: number): void {
  if (!Number.isSafeInteger(ms) || ms < 0) {
    throw new NexusError(
      "INVALID_ARGUMENT",
      `request issued-at ${String(ms)} is invalid: give the ms since the epoch when the request was first sent`,
    );
  }
}

/** Throws INVALID_ARGUMENT unless `ms` is a usable request window (a safe integer >= 1000). */
export function validateRequestWindow(ms: number, name = "requestWindowMs"): number {
  if (!Number.isSafeInteger(ms) || ms < 1000) {
    throw new NexusError(
      "INVALID_ARGUMENT",
      `${name} must be an integer number of ms >= 1000, got ${String(ms)}; the default is ${DEFAULT_REQUEST_WINDOW_MS}`,
    );
  }
  return ms;
}

/** sha256 hex of a command: its data and its args (sorted by name), each length-framed. */
export function requestHash(cmd: StoreCommand): string {
  const h = createHash("sha256");
  const frame = (b: Uint8Array | string): void => {
    const bytes = typeof b === "string" ? Buffer.from(b, "utf8") : b;
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(bytes.byteLength));
    h.update(len);
    h.update(bytes);
  };
  frame(cmd.data);
  const keys = Object.keys(cmd.args).sort();
  frame(String(keys.length));
  for (const k of keys) {
    frame(k);
    frame(cmd.args[k]!);
  }
  return h.digest("hex");
}

/** The key of a request for `cmd` (validated): what an ApplyEntry's `request` carries. */
export function requestKeyOf(cmd: StoreCommand, id: string, issuedAtMs: number): RequestKey {
  validateRequestId(id);
  validateIssuedAt(issuedAtMs);
  return { id, hash: requestHash(cmd), issuedAtMs };
}

/** Whether `rec` still counts for an entry at `timestampMs` (a pure function of both). */
export function isLive(
  rec: { keptFromMs: number },
  timestampMs: number,
  windowMs: number,
): boolean {
  return rec.keptFromMs >= timestampMs - windowMs;
}

/** Records whose `keptFromMs` is below this are dead for an entry at `timestampMs`. */
export function purgeBefore(timestampMs: number, windowMs: number): number {
  return timestampMs - windowMs;
}

/**
 * What to do with an entry carrying a request key, before looking at the store: refuse it
 * (expired, or issued impossibly far in the future), or look up its record.
 */
export function refusal(e: ApplyEntry, key: RequestKey, windowMs: number): ApplyResult | undefined {
  if (e.timestampMs - key.issuedAtMs > windowMs) {
    return {
      ok: false,
      error:
        `request id ${key.id} expired: retried after the ${windowMs} ms window; ` +
        "read to find out whether it was applied",
    };
  }
  if (key.issuedAtMs - e.timestampMs > windowMs) {
    return {
      ok: false,
      error:
        `request id ${key.id} was issued ${key.issuedAtMs - e.timestampMs} ms in the future of the ` +
        `leader's clock (more than the ${windowMs} ms window): fix the client's clock`,
    };
  }
  return undefined;
}

/**
 * The decision for an entry with a request key and the record found for its id (if any):
 * `{ result }` (not applied: the recorded result, with `firstIndex` the index of the entry that
 * recorded it, or a refusing result), or `{ apply: true }`.
 */
export function decide(
  e: ApplyEntry,
  key: RequestKey,
  found: RequestRecord | undefined,
  windowMs: number,
): { readonly result: ApplyResult } | { readonly apply: true } {
  const refused = refusal(e, key, windowMs);
  if (refused !== undefined) return { result: refused };
  if (found !== undefined && isLive(found, e.timestampMs, windowMs)) {
    if (found.hash !== key.hash) {
      return {
        result: { ok: false, error: `request id ${key.id} was used for a different request` },
      };
    }
    // Records written before the index was kept read back as 0: the caller then has none.
    return {
      result: found.index > 0 ? { ...found.result, firstIndex: found.index } : found.result,
    };
  }
  return { apply: true };
}

/** The record to write after applying `e` (with key `key`) gave `result`. */
export function recordOf(e: ApplyEntry, key: RequestKey, result: ApplyResult): RequestRecord {
  return {
    id: key.id,
    hash: key.hash,
    result,
    index: e.index,
    keptFromMs: Math.max(e.timestampMs, key.issuedAtMs),
  };
}
