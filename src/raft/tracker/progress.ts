/**
 * What the leader knows of one follower's log (Raft §5.3 nextIndex/matchIndex) and how it sends
 * to it (flow control):
 * - `probe`: the leader does not know where the follower's log ends; it sends one append per
 *   heartbeat interval and waits for the answer.
 * - `replicate`: the follower is in sync; appends are pipelined, bounded by the in-flight window.
 * - `snapshot`: the follower needs a snapshot; nothing is sent until it reports back.
 */
import type { Inflights } from "./inflights.js";

/** The state of a follower's progress. */
export type ProgressState = "probe" | "replicate" | "snapshot";

export class Progress {
  /** Invariant: match < next. */
  match: number;
  next: number;
  state: ProgressState = "probe";
  /** In `snapshot` state: the index of the snapshot being sent. */
  pendingSnapshot = 0;
  /** Heard from recently (reset each election timeout by check-quorum). */
  recentActive = false;
  /** Sending appends is paused (probe: one is in flight; replicate: the window is full). */
  msgAppFlowPaused = false;
  readonly inflights: Inflights;
  isLearner: boolean;

  constructor(next: number, inflights: Inflights, isLearner: boolean, match = 0) {
    this.match = match;
    this.next = next;
    this.inflights = inflights;
    this.isLearner = isLearner;
  }

  private resetState(state: ProgressState): void {
    this.msgAppFlowPaused = false;
    this.pendingSnapshot = 0;
    this.state = state;
    this.inflights.reset();
  }

  /** Go back to probing, e.g. after a rejection, an unreachable report, or a snapshot. */
  becomeProbe(): void {
    if (this.state === "snapshot") {
      const pending = this.pendingSnapshot;
      this.resetState("probe");
      this.next = Math.max(this.match + 1, pending + 1);
    } else {
      this.resetState("probe");
      this.next = this.match + 1;
    }
  }

  /** Start pipelining appends. */
  becomeReplicate(): void {
    this.resetState("replicate");
    this.next = this.match + 1;
  }

  /** Stop appends until the snapshot at `snapshotIndex` is reported applied or failed. */
  becomeSnapshot(snapshotIndex: number): void {
    this.resetState("snapshot");
    this.pendingSnapshot = snapshotIndex;
  }

  /**
   * Records that an append with `entries` entries ending at `lastIndex` and `bytes` of data was
   * sent, optimistically advancing `next` in replicate state.
   */
  sentEntries(entries: number, lastIndex: number, bytes: number): void {
    if (this.state === "replicate") {
      if (entries > 0) {
        this.next = lastIndex + 1;
        this.inflights.add(lastIndex, bytes);
      }
      this.msgAppFlowPaused = this.inflights.full();
    } else if (this.state === "probe") {
      if (entries > 0) this.msgAppFlowPaused = true;
    } else {
      throw new Error(`sending append in unhandled state ${this.state}`);
    }
  }

  /**
   * Called on an accepted append response for index n. Returns false if n is old (a reordered
   * or duplicated response).
   */
  maybeUpdate(n: number): boolean {
    let updated = false;
    if (this.match < n) {
      this.match = n;
      updated = true;
      this.msgAppFlowPaused = false;
    }
    this.next = Math.max(this.next, n + 1);
    return updated;
  }

  /**
   * Called on a rejected append of index `rejected`; `matchHint` is the follower's estimate of
   * the last index where the logs may agree (fast backtracking, Raft §5.3 end). Returns false if
   * the rejection is stale.
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === "replicate") {
      // A rejection of something already matched is stale.
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    // Probe: only the rejection of the probe we sent (next - 1) counts.
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1, 1);
    this.msgAppFlowPaused = false;
    return true;
  }

  /** Whether appends to this follower are currently held back. */
  isPaused(): boolean {
    if (this.state === "snapshot") return true;
    if (this.state === "replicate" && this.inflights.full()) return true;
    return this.msgAppFlowPaused;
  }

  clone(): Progress {
    const p = new Progress(this.next, this.inflights.clone(), this.isLearner, this.match);
    p.state = this.state;
    p.pendingSnapshot = this.pendingSnapshot;
    p.recentActive = this.recentActive;
    p.msgAppFlowPaused = this.msgAppFlowPaused;
    return p;
  }

  describe(): string {
    let s = `${this.state} match=${this.match} next=${this.next}`;
    if (this.isLearner) s += " learner";
    if (this.isPaused()) s += " paused";
    if (this.pendingSnapshot > 0) s += ` pendingSnap=${this.pendingSnapshot}`;
    if (!this.recentActive) s += " inactive";
    if (this.inflights.count() > 0) s += ` inflight=${this.inflights.count()}`;
    if (this.inflights.full()) s += "[full]";
    return s;
  }
}
