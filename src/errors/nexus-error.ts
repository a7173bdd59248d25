/**
 * The one error class of Nexus. Every expected failure a user can see is a NexusError with a
 * stable `code` and a message that says what happened and what to do. Foreign errors are wrapped
 * with `{ cause }`. Codes map to gRPC status in src/api/errors.ts and to CLI exit codes in
 * src/cli/exit-codes.ts; nowhere else. Programs decide by `code` (or class), never by `message`,
 * which is human text and may be reworded.
 */

/** The fixed set of error codes. */
export type NexusErrorCode =
  /** The request was malformed or a value was out of range. */
  | "INVALID_ARGUMENT"
  /** The request is larger than the configured limit. */
  | "TOO_LARGE"
  /** This node is not the leader and could not forward the request. */
  | "NOT_LEADER"
  /** No leader is known (election in progress or no quorum). */
  | "NO_LEADER"
  /** The request did not complete in time; for a save the outcome is unknown (see UNKNOWN_OUTCOME). */
  | "TIMEOUT"
  /** A save was proposed but its outcome is unknown: it may or may not have been applied. */
  | "UNKNOWN_OUTCOME"
  /** The core refused the proposal (leadership transfer, limits); nothing was written. */
  | "PROPOSAL_DROPPED"
  /** A membership change was refused; nothing changed. */
  | "MEMBERSHIP_REFUSED"
  /** The node is stopped or stopping. */
  | "STOPPED"
  /** The user's statement failed (bad SQL, Lua error): the same result on every replica. */
  | "STORE_ERROR"
  /** The store itself is unreachable or failing; the node retries and reports NOT_SERVING. */
  | "STORE_UNAVAILABLE"
  /** The node cannot serve now (no leader, store down, diverged). */
  | "NOT_SERVING"
  /**
   * A read with a staleness bound (consistency "bounded") found this node further behind its
   * leader than the bound allows; nothing was read. Read from another node or without the bound.
   */
  | "TOO_STALE"
  /** A write or sync of the write-ahead log failed; the node must stop. */
  | "WAL_FAILED"
  /** The write-ahead log or a snapshot on disk is corrupted; the node refuses to start. */
  | "CORRUPTED"
  /** A configuration option or flag is invalid. */
  | "BAD_CONFIG"
  /** A peer or address could not be reached. */
  | "UNREACHABLE"
  /** The call carried no valid credentials (gRPC UNAUTHENTICATED); nothing was done. */
  | "UNAUTHENTICATED"
  /** The credentials do not allow this call (gRPC PERMISSION_DENIED); nothing was done. */
  | "PERMISSION_DENIED"
  /** A bug: an internal invariant did not hold. */
  | "INTERNAL";

/** Every code, for validation and tables. */
export const NEXUS_ERROR_CODES: readonly NexusErrorCode[] = [
  "INVALID_ARGUMENT",
  "TOO_LARGE",
  "NOT_LEADER",
  "NO_LEADER",
  "TIMEOUT",
  "UNKNOWN_OUTCOME",
  "PROPOSAL_DROPPED",
  "MEMBERSHIP_REFUSED",
  "STOPPED",
  "STORE_ERROR",
  "STORE_UNAVAILABLE",
  "NOT_SERVING",
  "TOO_STALE",
  "WAL_FAILED",
  "CORRUPTED",
  "BAD_CONFIG",
  "UNREACHABLE",
  "UNAUTHENTICATED",
  "PERMISSION_DENIED",
  "INTERNAL",
];

/** An expected failure with a stable code. */
export class NexusError extends Error {
  readonly code: NexusErrorCode;

  constructor(code: NexusErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "NexusError";
    this.code = code;
  }
}

/** Whether err is a NexusError, optionally with the given code. */
export function isNexusError(err: unknown, code?: NexusErrorCode): err is NexusError {
  return err instanceof NexusError && (code === undefined || err.code === code);
}
