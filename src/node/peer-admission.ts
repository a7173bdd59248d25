/**
 * Who may talk to this node over the peer transport, and which snapshots it takes before writing
 * a byte of them: the runtime's side of the transport's `admitsSender` and `checkSnapshot`
 * (src/transport/DESIGN.md describes the checks the transport itself makes, and what a network
 * neighbour can still do without TLS).
 */
import { NexusError } from "../errors/index.js";
import type { ConfState, Message, NodeId } from "../raft/types.js";
import type { NodeUrl } from "./node-id.js";

/** What admission reads from the running node (RaftNode satisfies it). */
export interface AdmissionNode {
  /** Member URLs by id, from the applied configuration and snapshots. */
  readonly members: ReadonlyMap<NodeId, string>;
  /** Whether a conf change in the log, not applied yet, names `id` (log-members.ts). */
  namedByLog(id: NodeId): boolean;
  status(): {
    readonly hardState: { readonly term: number; readonly commit: number };
    readonly lastIndex: number;
    readonly config: ConfState;
  };
}

function names(cs: ConfState, id: NodeId): boolean {
  return (
    cs.voters.includes(id) ||
    cs.learners.includes(id) ||
    cs.votersOutgoing.includes(id) ||
    cs.learnersNext.includes(id)
  );
}

function isEmptyConf(cs: ConfState): boolean {
  return (
    cs.voters.length === 0 &&
    cs.learners.length === 0 &&
    cs.votersOutgoing.length === 0 &&
    cs.learnersNext.length === 0
  );
}

/**
 * Admission of peers by membership.
 *
 * A sender is admitted when it is a member this node knows: named by its configuration (voter,
 * learner, either half of a joint configuration), by its member list, or by a conf change in its
 * log that it has not applied yet (it may lead before this node learns that entry is committed). A node that has not
 * joined a cluster yet (an empty log and no configuration: started with nodeState new) admits
 * any sender, since it cannot know who leads the cluster it is being added to; it joins whoever
 * reaches it first with a valid log (with TLS: a holder of a certificate from the cluster's CA).
 * While the node is not open, nobody is admitted (Raft retries).
 */
export class PeerAdmission {
  private readonly id: NodeId;
  private readonly node: () => AdmissionNode | undefined;

  /** `node`: the running node, or undefined while it is starting or stopped. */
  constructor(id: NodeId, node: () => AdmissionNode | undefined) {
    this.id = id;
    this.node = node;
  }

  /** Whether `from` may send to this node now (see the class comment). Cheap for members. */
  admitsSender(from: NodeId): boolean {
    const n = this.node();
    if (n === undefined || from === this.id) return false;
    if (n.members.has(from) || n.namedByLog(from)) return true;
    const st = n.status();
    if (names(st.config, from)) return true;
    return st.lastIndex === 0 && isEmptyConf(st.config);
  }

  /**
   * Refuses, before any of its data is written, a snapshot this node would not use: from a term
   * older than its own, not newer than what it has committed, or for a configuration that does not
   * include it (the core would drop each of them after the data was on disk). Throws
   * INVALID_ARGUMENT saying which.
   */
  checkSnapshot(m: Message): void {
    const n = this.node();
    if (n === undefined) throw new NexusError("STOPPED", "the node is not running; retry");
    const s = m.snapshot;
    if (m.type !== "snap" || s === undefined) {
      throw new NexusError("INVALID_ARGUMENT", "not a snap message with a snapshot");
    }
    const st = n.status();
    if (m.term < st.hardState.term) {
      throw new NexusError(
        "INVALID_ARGUMENT",
        `snapshot message of term ${m.term}, older than this node's term ${st.hardState.term}`,
      );
    }
    if (s.metadata.index <= st.hardState.commit) {
      throw new NexusError(
        "INVALID_ARGUMENT",
        `snapshot at index ${s.metadata.index}, not newer than this node's commit index ${st.hardState.commit}`,
      );
    }
    if (!names(s.metadata.confState, this.id)) {
      throw new NexusError(
        "INVALID_ARGUMENT",
        `snapshot at index ${s.metadata.index} is for a configuration that does not include this node (${this.id})`,
      );
    }
  }
}

/**
 * Refuses a member URL whose scheme differs from this node's: a node that speaks TLS to its peers
 * cannot reach a plaintext one, nor the other way round. Throws MEMBERSHIP_REFUSED.
 */
export function checkMemberScheme(self: NodeUrl, member: NodeUrl): void {
  if (member.protocol === self.protocol) return;
  throw new NexusError(
    "MEMBERSHIP_REFUSED",
    `${member.url} uses ${member.protocol.slice(0, -1)} but this cluster's nodes use ` +
      `${self.protocol.slice(0, -1)} (${self.url}): every member must be ` +
      (self.protocol === "https:" ? "https://, with peer TLS" : "http://") +
      "; nothing changed",
  );
}
