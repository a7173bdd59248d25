/**
 * The one place where the raft core's refusals (RaftError codes) become Nexus error codes. The
 * runtime decides by the core's code, never by its message, which is human text.
 */
import { NexusError } from "../errors/index.js";
import type { NexusErrorCode } from "../errors/index.js";
import type { RaftError, RaftErrorCode } from "../raft/raft.js";

/** Core code -> Nexus code. Every core refusal leaves nothing written. */
const NEXUS_CODE_OF: Readonly<Record<RaftErrorCode, NexusErrorCode>> = {
  "no-leader": "NO_LEADER",
  "proposal-dropped": "PROPOSAL_DROPPED",
  "conf-change-refused": "MEMBERSHIP_REFUSED",
  // The runtime steps only remote messages from configured peers: a refusal here is a bug.
  "step-local-msg": "INTERNAL",
  "step-peer-not-found": "INTERNAL",
};

/** The Nexus code for a core refusal code. */
export function nexusCodeOfRaft(code: RaftErrorCode): NexusErrorCode {
  return NEXUS_CODE_OF[code];
}

/**
 * A core refusal as a NexusError (NO_LEADER, PROPOSAL_DROPPED, MEMBERSHIP_REFUSED or INTERNAL),
 * keeping the core's message after `what` (e.g. "the write was not accepted") when given, and
 * the RaftError as its cause.
 */
export function nexusErrorOfRaft(err: RaftError, what?: string): NexusError {
  const message = what === undefined ? err.message : `${what}: ${err.message}`;
  return new NexusError(NEXUS_CODE_OF[err.code], message, { cause: err });
}
