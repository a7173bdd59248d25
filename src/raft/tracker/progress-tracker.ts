/**
 * The leader's view of the cluster: the active configuration (voters, learners, joint state),
 * each member's Progress, and the votes of the current election.
 */
import type { ConfState, NodeId } from "../types.js";
import { JointConfig } from "../quorum/joint.js";
import { MajorityConfig } from "../quorum/majority.js";
import type { VoteResult } from "../quorum/majority.js";
import type { Progress } from "./progress.js";

/** The active membership configuration. */
export interface TrackerConfig {
  readonly voters: JointConfig;
  /** Learners. Invariant: disjoint from both voter halves. */
  readonly learners: ReadonlySet<NodeId>;
  /**
   * Learners to be added when the joint state is left: nodes demoted from voter to learner by a
   * joint change. Invariant: each is in voters.outgoing and not in learners.
   */
  readonly learnersNext: ReadonlySet<NodeId>;
  readonly autoLeave: boolean;
}

/** The empty configuration. */
export function emptyTrackerConfig(): TrackerConfig {
  return {
    voters: new JointConfig(),
    learners: new Set(),
    learnersNext: new Set(),
    autoLeave: false,
  };
}

/** The ConfState of a configuration, sorted for determinism. */
export function confStateOf(c: TrackerConfig): ConfState {
  return {
    voters: c.voters.incoming.sorted(),
    votersOutgoing: c.voters.outgoing.sorted(),
    learners: [...c.learners].sort(),
    learnersNext: [...c.learnersNext].sort(),
    autoLeave: c.autoLeave,
  };
}

/** Whether two ConfStates describe the same configuration (order-insensitive). */
export function confStatesEquivalent(a: ConfState, b: ConfState): boolean {
  const eq = (x: readonly NodeId[], y: readonly NodeId[]): boolean => {
    if (x.length !== y.length) return false;
    const sx = [...x].sort();
    const sy = [...y].sort();
    return sx.every((v, i) => v === sy[i]);
  };
  return (
    eq(a.voters, b.voters) &&
    eq(a.learners, b.learners) &&
    eq(a.votersOutgoing, b.votersOutgoing) &&
    eq(a.learnersNext, b.learnersNext) &&
    a.autoLeave === b.autoLeave
  );
}

/** Describes a configuration, e.g. `voters=(1 2 3)&&(1 2) learners=(4)`. */
export function describeTrackerConfig(c: TrackerConfig): string {
  let s = `voters=${c.voters.describe()}`;
  if (c.learners.size > 0) s += ` learners=(${[...c.learners].sort().join(" ")})`;
  if (c.learnersNext.size > 0) s += ` learners_next=(${[...c.learnersNext].sort().join(" ")})`;
  if (c.autoLeave) s += " autoleave";
  return s;
}

/** Progress of every member, keyed by id. */
export type ProgressMap = Map<NodeId, Progress>;

export class ProgressTracker {
  config: TrackerConfig = emptyTrackerConfig();
  progress: ProgressMap = new Map();
  votes = new Map<NodeId, boolean>();
  readonly maxInflight: number;
  readonly maxInflightBytes: number;

  constructor(maxInflight: number, maxInflightBytes: number) {
    this.maxInflight = maxInflight;
    this.maxInflightBytes = maxInflightBytes;
  }

  /** Whether the given id is a voter of the active configuration. */
  isVoter(id: NodeId): boolean {
    return this.config.voters.has(id);
  }

  /** The largest index committed by a quorum of voters (Raft §5.3, thesis §4.3). */
  committed(): number {
    return this.config.voters.committedIndex((id) => this.progress.get(id)?.match);
  }

  /** Whether the configuration is a single voter (the given one). */
  isSingleton(): boolean {
    return this.config.voters.incoming.size === 1 && !this.config.voters.isJoint;
  }

  /** Sorted ids of every tracked member (voters and learners). */
  sortedIds(): NodeId[] {
    return [...this.progress.keys()].sort();
  }

  /** Whether a quorum of voters was recently active (check-quorum). */
  quorumActive(): boolean {
    const votes = new Map<NodeId, boolean>();
    for (const [id, pr] of this.progress) {
      if (pr.isLearner) continue;
      votes.set(id, pr.recentActive);
    }
    return this.config.voters.voteResult(votes) === "won";
  }

  resetVotes(): void {
    this.votes = new Map();
  }

  /** Records a vote; the first vote of a voter counts, later ones are ignored. */
  recordVote(id: NodeId, granted: boolean): void {
    if (!this.votes.has(id)) this.votes.set(id, granted);
  }

  /** Granted and rejected counts and the election's result. */
  tallyVotes(): { granted: number; rejected: number; result: VoteResult } {
    let granted = 0;
    let rejected = 0;
    for (const [id, pr] of this.progress) {
      if (pr.isLearner) continue;
      const v = this.votes.get(id);
      if (v === undefined) continue;
      if (v) granted++;
      else rejected++;
    }
    return { granted, rejected, result: this.config.voters.voteResult(this.votes) };
  }
}

/** A majority config built from ids. */
export function majorityOf(ids: Iterable<NodeId>): MajorityConfig {
  return new MajorityConfig(ids);
}
