/**
 * The one table of exit codes of the programs, by outcome.
 */
import type { NexusErrorCode } from "../errors/index.js";

export const EXIT = {
  /** Done. */
  OK: 0,
  /** The request failed; nothing was changed by it (or it was the store's error result). */
  FAILED: 1,
  /** Bad flags, arguments or usage. */
  USAGE: 2,
  /** The address given does not answer. */
  UNREACHABLE: 3,
  /** A save or membership change whose outcome is unknown: it may or may not have been applied. */
  UNKNOWN_OUTCOME: 4,
} as const;

/** The exit code for a failed request with a Nexus error code. */
export function exitCodeOf(code: NexusErrorCode): number {
  switch (code) {
    case "UNREACHABLE":
      return EXIT.UNREACHABLE;
    case "UNKNOWN_OUTCOME":
      return EXIT.UNKNOWN_OUTCOME;
    case "BAD_CONFIG":
      return EXIT.USAGE;
    default:
      return EXIT.FAILED;
  }
}
