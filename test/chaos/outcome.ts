/**
 * What a client error says about an operation's fate: `failed` only when the error proves the
 * request had no effect, `unknown` otherwise. Calling a write `failed` when it may have been
 * applied would make the checker report violations that are not there; calling too much
 * `unknown` only weakens the check, so whenever in doubt the answer is `unknown`.
 *
 * The table, by the NexusError code the client (src/api/client.ts) throws:
 *
 * | code                 | outcome | why                                                              |
 * | -------------------- | ------- | ---------------------------------------------------------------- |
 * | UNREACHABLE          | failed  | the client could not open a connection (ECONNREFUSED,            |
 * |                      |         | EHOSTUNREACH, ...): nothing was sent. For a save the client      |
 * |                      |         | turns every other transport failure into UNKNOWN_OUTCOME.        |
 * | NOT_SERVING          | failed  | the node refused up front (its store is down): nothing proposed  |
 * | TOO_STALE            | failed  | (reads only) a bounded read refused by a node too far behind     |
 * | PROPOSAL_DROPPED     | failed  | the core refused the proposal, or the transport reports that the |
 * |                      |         | forwarded proposal never reached the leader                      |
 * | NO_LEADER            | failed  | refused before proposing (no leader known), retried by the node  |
 * |                      |         | until its deadline; for reads: the read index never reached one  |
 * | NOT_LEADER           | failed  | the node could not forward the request: nothing proposed         |
 * | STORE_ERROR          | failed  | the statement ran and failed on every replica alike (savepoint   |
 * |                      |         | rolled back): committed, but without effect on the register      |
 * | INVALID_ARGUMENT,    | failed  | refused while validating the request                             |
 * | TOO_LARGE, BAD_CONFIG|         |                                                                  |
 * | MEMBERSHIP_REFUSED   | failed  | (membership calls only) nothing changed                          |
 * | UNAUTHENTICATED,     | failed  | refused before the call ran: credentials are checked first       |
 * | PERMISSION_DENIED    |         |                                                                  |
 * | UNKNOWN_OUTCOME      | unknown | proposed (or sent) and no answer: it may still be applied        |
 * | TIMEOUT              | unknown | no answer in time                                                |
 * | STOPPED              | unknown | thrown both before proposing and to proposals pending when the   |
 * |                      |         | node stops: the code alone cannot tell which                     |
 * | WAL_FAILED, INTERNAL,| unknown | the node failed somewhere on the way                             |
 * | CORRUPTED,           |         |                                                                  |
 * | STORE_UNAVAILABLE    |         |                                                                  |
 * | anything else        | unknown | not a NexusError: nothing is proven                              |
 *
 * A successful save whose result cannot be parsed is `unknown` too (it may have been applied).
 * For reads the distinction does not matter to the checker (failed and unknown reads are both
 * ignored); the same table is used so that the report counts them the same way.
 */
import { isNexusError } from "../../src/errors/index.js";
import type { NexusErrorCode } from "../../src/errors/index.js";
import type { OpOutcome } from "./history.js";

/** Codes that prove the request had no effect on any register. */
export const FAILED_CODES: ReadonlySet<NexusErrorCode> = new Set<NexusErrorCode>([
  "UNREACHABLE",
  "NOT_SERVING",
  "TOO_STALE",
  "PROPOSAL_DROPPED",
  "NO_LEADER",
  "NOT_LEADER",
  "STORE_ERROR",
  "INVALID_ARGUMENT",
  "TOO_LARGE",
  "BAD_CONFIG",
  "MEMBERSHIP_REFUSED",
  "UNAUTHENTICATED",
  "PERMISSION_DENIED",
]);

/** The outcome an error proves, and a short message for the history ("CODE: message"). */
export function outcomeOfError(err: unknown): { outcome: Exclude<OpOutcome, "ok">; error: string } {
  if (isNexusError(err)) {
    return {
      outcome: FAILED_CODES.has(err.code) ? "failed" : "unknown",
      error: `${err.code}: ${firstLine(err.message)}`,
    };
  }
  const msg = err instanceof Error ? err.message : String(err);
  return { outcome: "unknown", error: `not a NexusError: ${firstLine(msg)}` };
}

function firstLine(s: string): string {
  const line = s.split("\n", 1)[0] ?? "";
  return line.length > 200 ? `${line.slice(0, 200)}...` : line;
}
