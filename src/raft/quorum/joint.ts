/**
 * Joint quorums (thesis §4.3): during a joint configuration a decision needs a majority of the
 * incoming voters AND a majority of the outgoing voters.
 */
import type { NodeId } from "../types.js";
import type { AckedIndexer, VoteResult } from "./majority.js";
import { MajorityConfig } from "./majority.js";

/** Two majority configs: [incoming, outgoing]. The outgoing one is empty when not joint. */
export class JointConfig {
  readonly incoming: MajorityConfig;
  readonly outgoing: MajorityConfig;

  constructor(incoming: MajorityConfig = new MajorityConfig(), outgoing = new MajorityConfig()) {
    this.incoming = incoming;
    this.outgoing = outgoing;
  }

  /** Whether the configuration is joint (the outgoing half is non-empty). */
  get isJoint(): boolean {
    return this.outgoing.size > 0;
  }

  /** Every voter of either half. */
  ids(): Set<NodeId> {
    const s = new Set<NodeId>(this.incoming.ids);
    for (const id of this.outgoing.ids) s.add(id);
    return s;
  }

  has(id: NodeId): boolean {
    return this.incoming.has(id) || this.outgoing.has(id);
  }

  /** The largest index committed by both halves. */
  committedIndex(acked: AckedIndexer): number {
    return Math.min(this.incoming.committedIndex(acked), this.outgoing.committedIndex(acked));
  }

  /** Won only when both halves win; lost when either loses. */
  voteResult(votes: ReadonlyMap<NodeId, boolean>): VoteResult {
    const r1 = this.incoming.voteResult(votes);
    const r2 = this.outgoing.voteResult(votes);
    if (r1 === r2) return r1;
    if (r1 === "lost" || r2 === "lost") return "lost";
    return "pending";
  }

  describe(): string {
    return this.isJoint
      ? `${this.incoming.describe()}&&${this.outgoing.describe()}`
      : this.incoming.describe();
  }
}
