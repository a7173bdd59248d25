/**
 * How fresh this node's view of the leader is, for reads with a staleness bound (bounded-read.ts):
 * the highest commit index a leader has told this node of, and when a leader was last heard
 * (monotonic ms). Pure: the RaftNode feeds it every message the core accepted; it does no I/O and
 * reads no clock.
 *
 * What counts: an append from a leader of this node's current term (after the core stepped it, so
 * a deposed leader's message, of an older term, does not): it carries the leader's own commit
 * index, and only it refreshes when a leader was heard. A snapshot's index is committed, so it
 * raises the commit index seen, but says nothing of how far the leader is beyond it: it does not
 * count as hearing the leader. A heartbeat counts for nothing: its commit is clamped to what the
 * leader knows this follower holds, so a follower held in snapshot or probe state (after a
 * restart, or far behind) would look caught up while it is arbitrarily stale. An idle cluster
 * sends no appends: a bounded read then finds no fresh leader and is refused (or falls back to
 * ReadIndex). Commit indexes never go back across terms (Raft §5.4, leader completeness), so the
 * highest seen from any leader is kept.
 *
 * Invariant: leaderCommit never decreases.
 */
import type { Message } from "../raft/types.js";

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

  /**
   * Notes a message the core accepted. `currentTerm` is the node's term after stepping it: only a
   * message of that term comes from the current leader.
   */
  observe(
    m: Pick<Message, "type" | "term" | "commit" | "snapshot">,
    currentTerm: number,
    nowMs: number,
  ): void {
    if (m.term !== currentTerm) return;
    if (m.type === "app") this.heardLeader(m.commit, nowMs);
    else if (m.type === "snap" && m.snapshot !== undefined) {
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
