/**
 * Majority quorums: the commit index a majority has acknowledged, and the outcome of a vote.
 * A MajorityConfig is a set of voter ids; the empty config commits everything and wins every vote
 * (so that a joint config with an empty half behaves as its other half).
 */
import type { NodeId } from "../types.js";

/** The outcome of a vote: won, lost, or still pending. */
export type VoteResult = "pending" | "lost" | "won";

/** Returns the acknowledged index of a voter, or undefined when unknown. */
export type AckedIndexer = (id: NodeId) => number | undefined;

/** A set of voters deciding by simple majority. */
export class MajorityConfig {
  readonly ids: ReadonlySet<NodeId>;

  constructor(ids: Iterable<NodeId> = []) {
    this.ids = new Set(ids);
  }

  get size(): number {
    return this.ids.size;
  }

  has(id: NodeId): boolean {
    return this.ids.has(id);
  }

  /** Voter ids in sorted order (deterministic iteration for describe and tests). */
  sorted(): NodeId[] {
    return [...this.ids].sort();
  }

  /**
   * The largest index acknowledged by a majority (Raft §5.3). Unknown voters count as 0. The empty
   * config returns +Infinity so that joint configs take the other half's answer.
   */
  committedIndex(acked: AckedIndexer): number {
    const n = this.ids.size;
    if (n === 0) return Number.POSITIVE_INFINITY;
    const idxs: number[] = [];
    for (const id of this.ids) idxs.push(acked(id) ?? 0);
    idxs.sort((a, b) => b - a);
    // The (n/2+1)-th largest index is held by a majority.
    return idxs[Math.floor(n / 2)]!;
  }

  /** The result of a vote given the votes cast so far (true: granted, false: rejected). */
  voteResult(votes: ReadonlyMap<NodeId, boolean>): VoteResult {
    if (this.ids.size === 0) return "won";
    let granted = 0;
    let missing = 0;
    for (const id of this.ids) {
      const v = votes.get(id);
      if (v === undefined) missing++;
      else if (v) granted++;
    }
    const q = Math.floor(this.ids.size / 2) + 1;
    if (granted >= q) return "won";
    if (granted + missing >= q) return "pending";
    return "lost";
  }

  describe(): string {
    return `(${this.sorted().join(" ")})`;
  }
}
