/**
 * How fresh this node's view of the leader is, for reads with a staleness bound (bounded-read.ts):
 * the highest commit index a leader has told this node of, and when a leader was last heard
 * (monotonic ms). Pure: the RaftNode feeds it what the core noted after each message it stepped
 * (RawNode.leaderCommitHeard); it does no I/O and reads no clock.
 *
 * What counts as hearing the leader: an append or a heartbeat from the leader of this node's
 * current term, which carries the leader's own commit index (`leaderCommit`, apart from the
 * heartbeat's `commit` that the leader clamps to what it knows this follower holds). The core
 * checks it (term and sender are the current leader's, raised to this node's own commit index), so
 * a deposed leader's message, of an older term, does not count. A follower held in snapshot or
 * probe state hears the real commit index and so knows how far behind it is; an idle cluster's
 * heartbeats keep a follower fresh. A heartbeat from a peer that predates the field carries no
 * leader commit and counts for nothing (its clamped commit would make a lagging follower look
 * caught up). A snapshot's index is committed, so it raises the commit index seen, but says
 * nothing of how far the leader is beyond it (the data may have taken seconds to arrive): it does
 * not count as hearing the leader. Commit indexes never go back across terms (Raft §5.4, leader
 * completeness), so the highest seen from any leader is kept.
 *
 * A hearing counts as old as the leader's last contact with a majority of its voters (the
 * message's `leaderQuorumAgeMs`, set by the leader's runtime): a leader partitioned from the
 * majority keeps sending heartbeats until check-quorum deposes it, while a new leader may commit
 * on the other side. A new leader that has not committed an entry of its term yet sends its last
 * index as its commit (an upper bound of what its predecessors committed).
 *
 * Invariant: leaderCommit never decreases.
 */
import type { LeaderCommitHeard, Message } from "../raft/types.js";

/** A node's staleness now: entries behind the leader's commit it knows of, ms since it heard one. */
export interface Staleness {
  /** The highest leader commit index seen minus this node's applied index (0 when not behind). */
  readonly lagEntries: number;
  /** Ms since a leader was last heard from; undefined when none has been since start. */
  readonly sinceLeaderMs: number | undefined;
}

export class LeaderFreshness {
  private leaderCommit = 0;
  private heardAtMs: number | undefined;
  /** The core's count of the last hearing taken (LeaderCommitHeard.count). */
  private heardCount: number | undefined;

  /**
   * Notes what the core made of a message it accepted: `heard` is RawNode.leaderCommitHeard()
   * after stepping it, `currentTerm` the node's term then. A new hearing (a new count) of the
   * current term's leader refreshes when the leader was heard; a snapshot raises the commit index
   * seen.
   */
  observe(
    m: Pick<Message, "type" | "term" | "snapshot" | "leaderQuorumAgeMs">,
    heard: LeaderCommitHeard | undefined,
    currentTerm: number,
    nowMs: number,
  ): void {
    if (heard !== undefined && heard.term === currentTerm && heard.count !== this.heardCount) {
      this.heardCount = heard.count;
      // As old as the leader's last contact with a majority: a leader cut off from it may have
      // been replaced, and what its successor committed since is not in its commit index.
      this.heardLeader(heard.leaderCommit, nowMs - (m.leaderQuorumAgeMs ?? 0));
    }
    if (m.type === "snap" && m.term === currentTerm && m.snapshot !== undefined) {
      this.leaderCommit = Math.max(this.leaderCommit, m.snapshot.metadata.index);
    }
  }

  /** Notes a leader heard at `nowMs` with commit index `commit` (also the leader noting itself). */
  heardLeader(commit: number, nowMs: number): void {
    if (commit > this.leaderCommit) this.leaderCommit = commit;
    if (this.heardAtMs === undefined || nowMs > this.heardAtMs) this.heardAtMs = nowMs;
  }

  /** The highest commit index a leader told this node of (0 before any). */
  highestLeaderCommit(): number {
    return this.leaderCommit;
  }

  /** The staleness of a node that has applied `applied`, at `nowMs`. */
  staleness(applied: number, nowMs: number): Staleness {
    return {
      lagEntries: Math.max(0, this.leaderCommit - applied),
      sinceLeaderMs: this.heardAtMs === undefined ? undefined : Math.max(0, nowMs - this.heardAtMs),
    };
  }
}

/**
 * When a majority of `voters` was last heard from, as a leader sees it (itself heard at `nowMs`):
 * the majority-th most recent time. Undefined when fewer than a majority were ever heard. In a
 * joint configuration pass both halves and take the older (both majorities count, Raft §6).
 */
export function majorityHeardAtMs(
  voters: Iterable<string>,
  self: string,
  lastHeard: (id: string) => number | undefined,
  nowMs: number,
): number | undefined {
  const times: number[] = [];
  let n = 0;
  for (const id of voters) {
    n++;
    const at = id === self ? nowMs : lastHeard(id);
    if (at !== undefined) times.push(at);
  }
  if (n === 0) return nowMs;
  const majority = Math.floor(n / 2) + 1;
  if (times.length < majority) return undefined;
  times.sort((a, b) => b - a);
  return times[majority - 1];
}
