/**
 * The one table of exit codes of the programs, by outcome, and the one mapping from a Nexus error
 * code to an exit code. Programs return these, never bare numbers.
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
  /** A node was told to stop twice (SIGINT or SIGTERM again) and exits at once: 128 + SIGINT. */
  INTERRUPTED: 130,
} as const;

/**
 * The exit code for a failure with a Nexus error code: UNREACHABLE 3, UNKNOWN_OUTCOME 4,
 * BAD_CONFIG 2, any other 1.
 */
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
