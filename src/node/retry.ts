/**
 * Retrying a request that certainly wrote nothing: a proposal or read that no leader took
 * (NO_LEADER) or that the core dropped (PROPOSAL_DROPPED) is tried again until the deadline, so a
 * caller rides out a short election. Which errors retry is decided by code (NexusError code,
 * RaftError code), never by message; every other error, and any error at the deadline, goes to
 * the caller as it is. An AbortSignal ends the waiting at once with its reason.
 */
import { isNexusError } from "../errors/index.js";
import type { NexusErrorCode } from "../errors/index.js";
import { RaftError } from "../raft/raft.js";
import { nexusCodeOfRaft } from "./raft-errors.js";

/** The codes of refusals that leave nothing written and may pass once a leader is known. */
const RETRYABLE: ReadonlySet<NexusErrorCode> = new Set<NexusErrorCode>([
  "NO_LEADER",
  "PROPOSAL_DROPPED",
]);

/**
 * Whether `err` says the request was not written and may be retried: NexusError NO_LEADER or
 * PROPOSAL_DROPPED, or the core's RaftError with the codes that map to them. Not TIMEOUT or
 * UNKNOWN_OUTCOME (the write may have happened), not MEMBERSHIP_REFUSED, STOPPED or anything else.
 */
export function isRetryableUnwritten(err: unknown): boolean {
  if (err instanceof RaftError) return RETRYABLE.has(nexusCodeOfRaft(err.code));
  for (const code of RETRYABLE) if (isNexusError(err, code)) return true;
  return false;
}

/** Rejects with the signal's reason once it aborts (never settles otherwise); `off` detaches. */
function abortPromise(signal: AbortSignal): { promise: Promise<never>; off: () => void } {
  let off = (): void => undefined;
  const promise = new Promise<never>((_, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    off = () => signal.removeEventListener("abort", onAbort);
  });
  // The caller may never await it (the work settled first).
  promise.catch(() => undefined);
  return { promise, off };
}

/**
 * `work` unless `signal` aborts first, then the signal's reason (work keeps running; its result
 * is dropped). Throws the reason at once when the signal already aborted.
 */
export async function abortable<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return work;
  if (signal.aborted) {
    work.catch(() => undefined);
    throw signal.reason;
  }
  const aborted = abortPromise(signal);
  try {
    return await Promise.race([work, aborted.promise]);
  } finally {
    aborted.off();
  }
}

/** Waits `ms`, or rejects with the signal's reason when it aborts first. */
export function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return abortable(new Promise<void>((r) => setTimeout(r, ms)), signal);
}

export interface RetryOptions {
  /** Epoch ms after which the last error is thrown. */
  readonly deadline: number;
  /** Ms between attempts. */
  readonly intervalMs: number;
  readonly signal?: AbortSignal | undefined;
  /**
   * Waits before the next attempt (default: `pause(intervalMs)`), e.g. until a leader is known.
   * Gets the ms left until the deadline.
   */
  readonly beforeRetry?: (remainingMs: number, signal: AbortSignal | undefined) => Promise<void>;
  /** Which errors retry. Default isRetryableUnwritten. */
  readonly retryable?: (err: unknown) => boolean;
}

/**
 * Runs `attempt` (given the ms left until the deadline, at least 1) until it succeeds, throws an
 * error that does not retry, or the deadline passes (then its last error). Aborting `signal`
 * rejects with its reason, at once, also while an attempt runs.
 */
export async function retryUnwritten<T>(
  attempt: (remainingMs: number) => Promise<T>,
  o: RetryOptions,
): Promise<T> {
  const retryable = o.retryable ?? isRetryableUnwritten;
  for (;;) {
    o.signal?.throwIfAborted();
    try {
      return await abortable(attempt(Math.max(1, o.deadline - Date.now())), o.signal);
    } catch (err) {
      if (o.signal?.aborted === true || !retryable(err) || Date.now() >= o.deadline) throw err;
    }
    const remaining = Math.max(1, o.deadline - Date.now());
    if (o.beforeRetry !== undefined) await o.beforeRetry(remaining, o.signal);
    else await pause(Math.min(o.intervalMs, remaining), o.signal);
  }
}
