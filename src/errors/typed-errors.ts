/**
 * Typed subclasses of NexusError for the failures callers most often branch on. Each fixes its
 * code; `instanceof` and `err.code` agree.
 */
import { NexusError } from "./nexus-error.js";

/** This node is not the leader and the request could not be forwarded. `leaderUrl` if known. */
export class NotLeaderError extends NexusError {
  readonly leaderUrl: string | undefined;
  constructor(message: string, leaderUrl?: string, options?: { cause?: unknown }) {
    super("NOT_LEADER", message, options);
    this.name = "NotLeaderError";
    this.leaderUrl = leaderUrl;
  }
}

/** The request timed out. For saves see UnknownOutcomeError. */
export class TimeoutError extends NexusError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("TIMEOUT", message, options);
    this.name = "TimeoutError";
  }
}

/**
 * A save was proposed but did not complete in time: it may or may not have been applied.
 * Do not retry blindly; read the state first or make the write idempotent.
 */
export class UnknownOutcomeError extends NexusError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("UNKNOWN_OUTCOME", message, options);
    this.name = "UnknownOutcomeError";
  }
}

/** The replicator is stopped or stopping. */
export class StoppedError extends NexusError {
  constructor(message = "the node is stopped; start it again to serve requests") {
    super("STOPPED", message);
    this.name = "StoppedError";
  }
}

/** The user's statement failed on the store; every replica got the same error. */
export class StoreError extends NexusError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("STORE_ERROR", message, options);
    this.name = "StoreError";
  }
}

/** The store is unreachable; the node keeps retrying and reports NOT_SERVING meanwhile. */
export class StoreUnavailableError extends NexusError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("STORE_UNAVAILABLE", message, options);
    this.name = "StoreUnavailableError";
  }
}
