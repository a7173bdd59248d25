/**
 * Lease upkeep: keeps the leader's read lease (leader-lease.ts) renewed while lease reads are
 * wanted, voids it on a leadership transfer, answers whether a lease read may be served now, and
 * holds off votes for an election timeout after start (this node may have acknowledged a leader's
 * lease before it went down).
 */
import { randomBytes } from "node:crypto";
import type { RawNode } from "../raft/raw-node.js";
import type { Message } from "../raft/types.js";
import { requestKey } from "./entry-payload.js";
import { LeaderLease, leaseDurationMs } from "./leader-lease.js";
import type { MonotonicClock } from "./leader-lease.js";

/** A lease is kept renewed this long after the last lease read (when not always on). */
const LEASE_WANTED_MS = 10_000;

export interface LeaseUpkeepOptions {
  readonly heartbeatTickMs: number;
  /** Election timeout in ticks. */
  readonly electionTick: number;
  /** Keep the lease renewed all the time, not only while lease reads are asked for. */
  readonly leaseBasedReads?: boolean | undefined;
  /** Share of the lease given up for clock-rate drift between members. Default 0.1. */
  readonly leaseDriftMargin?: number | undefined;
  readonly clock: MonotonicClock;
  /** The core, to read its role and to start a renewal round (a ReadIndex). */
  readonly raw: Pick<RawNode, "basicStatus" | "readIndex">;
  /** Asks the Ready loop to run. */
  readonly schedule: () => void;
  /**
   * The longest safe lease now, ms: the shortest vote hold-off among the voters, which announce
   * their timings (auto-timing.ts leaseBoundMs). Default: this node's own timing alone.
   */
  readonly leaseBoundMs?: (() => number) | undefined;
}

export class LeaseUpkeep {
  private readonly o: LeaseUpkeepOptions;
  /** The leader's read lease, on the monotonic clock. */
  private readonly lease: LeaderLease;
  /** Vote requests are ignored until then (monotonic ms): see start(). */
  private voteHoldUntil = Number.POSITIVE_INFINITY;
  /** When a lease read was last asked for (monotonic ms). */
  private leaseWantedAt = Number.NEGATIVE_INFINITY;
  /** When the last lease renewal round was started (monotonic ms). */
  private leaseRenewedAt = Number.NEGATIVE_INFINITY;

  constructor(o: LeaseUpkeepOptions) {
    this.o = o;
    this.lease = new LeaderLease({
      durationMs: Math.max(
        1,
        leaseDurationMs(o.heartbeatTickMs, o.electionTick, o.leaseDriftMargin ?? 0.1),
      ),
      now: o.clock,
    });
  }

  /** The node starts: vote requests are ignored for one election timeout from now. */
  start(): void {
    this.voteHoldUntil = this.o.clock() + this.o.heartbeatTickMs * this.o.electionTick;
  }

  /** Whether `m` is a vote request to ignore (the node just started). */
  ignoresVote(m: Message): boolean {
    return (m.type === "vote" || m.type === "pre-vote") && this.o.clock() < this.voteHoldUntil;
  }

  /** A leadership transfer voids the lease for the rest of the term (the transferee campaigns
   * past the voters' vote leases). Called after every input that can start one. */
  noteTransfer(): void {
    const bs = this.o.raw.basicStatus();
    if (bs.leadTransferee !== "") this.lease.revoke(bs.term);
  }

  /** Starts a lease renewal round when this node leads and lease reads are wanted. */
  maybeRenew(): void {
    const now = this.o.clock();
    if (this.o.leaseBasedReads !== true && now - this.leaseWantedAt > LEASE_WANTED_MS) return;
    if (now - this.leaseRenewedAt < this.o.heartbeatTickMs / 2) return;
    const bs = this.o.raw.basicStatus();
    if (bs.state !== "leader" || bs.leadTransferee !== "") return;
    const ctx = new Uint8Array(randomBytes(16));
    this.leaseRenewedAt = now;
    const bound = this.o.leaseBoundMs?.();
    this.lease.renewalSent(requestKey(ctx), bs.term, ...(bound === undefined ? [] : [bound]));
    this.o.raw.readIndex(ctx);
    this.o.schedule();
  }

  /**
   * The index a lease read may be served at: this leader's commit index while its lease is
   * valid, or undefined (not the leader, no valid lease). Asking keeps the lease renewed for a
   * while.
   */
  readIndex(): number | undefined {
    this.leaseWantedAt = this.o.clock();
    this.noteTransfer();
    const bs = this.o.raw.basicStatus();
    if (bs.state === "leader" && this.lease.valid(bs.term)) return bs.commit;
    this.maybeRenew();
    return undefined;
  }

  /**
   * Whether a read state answers one of this upkeep's renewal rounds (it then renews the lease
   * and is nobody's read).
   */
  confirmed(key: string, term: number, isLeader: boolean): boolean {
    return this.lease.confirmed(key, term, isLeader);
  }
}
