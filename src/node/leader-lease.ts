/**
 * The leader's read lease, measured on a monotonic clock (thesis §6.4.1).
 *
 * The core counts time in ticks, and ticks lie: a leader that was paused (SIGSTOP, a long GC
 * pause, a stalled VM) and resumed sees one late tick, not the seconds that passed, so a lease
 * kept in ticks would still look valid while the rest of the cluster has already elected another
 * leader. Here the lease is kept in milliseconds of `performance.now()` (CLOCK_MONOTONIC):
 *
 * - To renew, the leader sends a heartbeat round (a ReadIndex request with a context of its own)
 *   and notes the monotonic time *before* it is sent.
 * - When a quorum has acknowledged that round, every voter of that quorum received it after the
 *   noted time, and a voter that heard from its leader refuses votes for an election timeout
 *   (check-quorum's vote lease, thesis §4.2.3; a restarted node refuses votes for an election
 *   timeout too, see RaftNode). No other leader can therefore be elected before
 *   `sentAt + durationMs`, where `durationMs` is the voters' guaranteed vote-refusal time minus a
 *   safety margin for clock-rate drift.
 * - The lease belongs to one term, and is revoked for the rest of a term in which a leadership
 *   transfer started: the transferee campaigns past the voters' vote leases.
 *
 * What a lease read still assumes: no member's clock runs faster than this leader's by more than
 * the safety margin (default 10%) over one election timeout, and a node's timers never fire early.
 * Monotonic clocks do not jump; a pause of the leader only makes its lease expire (safe).
 *
 * The duration may differ per round (`renewalSent`'s `durationMs`): with timings measured per
 * node (auto-timing.ts) it is the shortest hold-off among the voters when the round is sent.
 *
 * Invariant: valid(term) implies a quorum acknowledged a heartbeat of `term` sent less than
 * that round's durationMs ago.
 */

/** A monotonic clock in milliseconds. */
export type MonotonicClock = () => number;

export interface LeaderLeaseOptions {
  /** How long a confirmed round keeps the lease by default, ms (already reduced by the safety margin). */
  readonly durationMs: number;
  readonly now: MonotonicClock;
}

/** Renewals older than this many lease durations are forgotten (their answers come too late). */
const PENDING_LIFETIME_DURATIONS = 4;

export class LeaderLease {
  private readonly durationMs: number;
  private readonly now: MonotonicClock;
  /** Renewal rounds in flight: context key -> term, monotonic send time and lease duration. */
  private readonly pending = new Map<
    string,
    { term: number; sentAt: number; durationMs: number }
  >();
  private term = 0;
  /** When the lease of the rounds a quorum confirmed for `term` ends (monotonic ms). */
  private confirmedUntil = Number.NEGATIVE_INFINITY;
  /** The term in which a leadership transfer was seen: no lease for it. */
  private revokedTerm = 0;

  constructor(o: LeaderLeaseOptions) {
    if (!(o.durationMs > 0)) throw new Error("lease duration must be positive");
    this.durationMs = o.durationMs;
    this.now = o.now;
  }

  /**
   * Records a renewal round about to be sent in `term` under context `key`, whose confirmation
   * keeps the lease `durationMs` from now (default: the lease's duration; never longer).
   */
  renewalSent(key: string, term: number, durationMs = this.durationMs): void {
    const now = this.now();
    this.pending.set(key, { term, sentAt: now, durationMs: Math.min(durationMs, this.durationMs) });
    if (this.pending.size > 64) {
      const horizon = now - PENDING_LIFETIME_DURATIONS * this.durationMs;
      for (const [k, p] of this.pending) if (p.sentAt < horizon) this.pending.delete(k);
    }
  }

  /** Whether `key` is one of this lease's renewal contexts (its ReadState is not a user read). */
  owns(key: string): boolean {
    return this.pending.has(key);
  }

  /**
   * A quorum acknowledged the round `key`. Extends the lease if the node still leads in the
   * round's term. Returns whether `key` was a renewal round.
   */
  confirmed(key: string, currentTerm: number, isLeader: boolean): boolean {
    const p = this.pending.get(key);
    if (p === undefined) return false;
    this.pending.delete(key);
    if (!isLeader || p.term !== currentTerm || p.term === this.revokedTerm) return true;
    if (p.term !== this.term) {
      this.term = p.term;
      this.confirmedUntil = Number.NEGATIVE_INFINITY;
    }
    const until = p.sentAt + p.durationMs;
    if (until > this.confirmedUntil) this.confirmedUntil = until;
    return true;
  }

  /** A leadership transfer started in `term`: no lease for the rest of it. */
  revoke(term: number): void {
    this.revokedTerm = term;
    if (this.term === term) this.confirmedUntil = Number.NEGATIVE_INFINITY;
  }

  /** Whether a lease read may be served now by a leader of `term`. */
  valid(term: number): boolean {
    return term === this.term && term !== this.revokedTerm && this.now() < this.confirmedUntil;
  }

  /** Milliseconds of lease left for `term` (0 when not valid). */
  remainingMs(term: number): number {
    if (!this.valid(term)) return 0;
    return this.confirmedUntil - this.now();
  }
}

/**
 * The lease duration for a cluster's timing: voters refuse votes for `electionTick - 1` full
 * ticks after hearing from the leader (the tick in progress when the heartbeat arrived may end at
 * once), reduced by the drift margin.
 */
export function leaseDurationMs(
  heartbeatTickMs: number,
  electionTick: number,
  driftMargin = 0.1,
): number {
  return Math.max(0, (electionTick - 1) * heartbeatTickMs * (1 - driftMargin));
}
