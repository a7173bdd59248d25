/**
 * ReadIndex rounds (thesis §6.4, batched as §6.4 suggests): one read-index request to the leader
 * confirms every linearizable read that arrived before it was issued, so concurrent reads cost
 * one heartbeat round, not one each.
 *
 * A read that arrives while a round is in flight waits for the next round: the index a round
 * returns is the leader's commit index when it received the request, which may miss a write
 * acknowledged after the round was issued but before the read arrived. Serving such a read from
 * that round would not be linearizable.
 *
 * Lease rounds (`lease: true`) carry a marked context (`isLeaseReadContext`): a leader holding a
 * valid read lease answers them at once with its commit index instead of a heartbeat round
 * (RaftNode.step), as it serves its own lease reads; linearizable rounds are never answered so.
 *
 * Invariant: at most one round is in flight; a read belongs to exactly one round or the queue.
 */
import { randomBytes } from "node:crypto";
import { NexusError } from "../errors/index.js";
import type { RawNode } from "../raft/raw-node.js";
import { requestKey } from "./entry-payload.js";

export interface ReadRoundsOptions {
  readonly raw: Pick<RawNode, "readIndex" | "basicStatus">;
  /** Asks the Ready loop to run. */
  readonly schedule: () => void;
  /**
   * A round unanswered for this long (ms) is issued again, with a new context and the reads
   * queued behind it (its request or answer was lost without the transport noticing).
   */
  readonly retryMs: number;
  /** Lease rounds: their contexts are marked so a leader with a valid lease may answer at once. */
  readonly lease?: boolean;
}

/** The first byte of a lease round's context (17 bytes: the mark, then 16 random bytes). */
const LEASE_READ_MARK = 0x4c;

/**
 * Whether a read-index context is a lease round's: a leader holding a valid read lease may
 * answer it with its commit index without a heartbeat round. Other contexts (linearizable
 * rounds, lease renewals: 16 bytes) never match.
 */
export function isLeaseReadContext(ctx: Uint8Array): boolean {
  return ctx.byteLength === 17 && ctx[0] === LEASE_READ_MARK;
}

interface PendingRead {
  resolve(index: number): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout | undefined;
  /** Settled (answered, refused or timed out): skipped by the round it is still listed in. */
  done: boolean;
}

interface Round {
  readonly key: string;
  readonly reads: PendingRead[];
  readonly retry: NodeJS.Timeout;
}

export class ReadRounds {
  private current: Round | undefined;
  /** Reads that arrived while `current` was in flight: the next round's. */
  private queued: PendingRead[] = [];

  constructor(private readonly o: ReadRoundsOptions) {}

  /**
   * Resolves with an index a leader confirmed after this call (every write acknowledged before
   * the call is at or below it). Rejects with onTimeout() after timeoutMs, NO_LEADER when the
   * round's request could not reach a leader (dropped, failed) or no leader is known.
   */
  wait(timeoutMs: number, onTimeout: () => Error): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      const read: PendingRead = { resolve, reject, timer: undefined, done: false };
      read.timer = setTimeout(() => {
        read.done = true;
        reject(onTimeout());
      }, timeoutMs);
      if (this.current === undefined) this.start([read]);
      else this.queued.push(read);
    });
  }

  /**
   * A ReadState for `key`: settles its round's reads with `index` and issues the next round.
   * Returns whether `key` was the round in flight (a late answer to a reissued round is not).
   */
  confirmed(key: string, index: number): boolean {
    const round = this.current;
    if (round?.key !== key) return false;
    this.finish(round, (r) => r.resolve(index));
    return true;
  }

  /**
   * The round `key`'s request never reached a leader (the transport dropped it): its reads fail
   * with `e` (nothing was written: the caller retries) and the queued reads go in a new round.
   */
  failed(key: string, e: Error): void {
    const round = this.current;
    if (round?.key !== key) return;
    this.finish(round, (r) => r.reject(e));
  }

  /** Rejects every read, in flight or queued (the leader changed, the node stops). */
  rejectAll(make: () => Error): void {
    const round = this.current;
    this.current = undefined;
    const reads = this.queued;
    this.queued = [];
    if (round !== undefined) {
      clearTimeout(round.retry);
      settle(round.reads, (r) => r.reject(make()));
    }
    settle(reads, (r) => r.reject(make()));
  }

  /** Reads waiting, in flight or queued (settled ones may be counted until their round ends). */
  get size(): number {
    return (this.current?.reads.length ?? 0) + this.queued.length;
  }

  private finish(round: Round, how: (r: PendingRead) => void): void {
    clearTimeout(round.retry);
    this.current = undefined;
    settle(round.reads, how);
    this.startQueued([]);
  }

  /** Issues a round for `reads` and whatever queued (all arrived before this call). */
  private startQueued(reads: PendingRead[]): void {
    const all = reads.concat(this.queued).filter((r) => !r.done);
    this.queued = [];
    if (all.length > 0) this.start(all);
  }

  private start(reads: PendingRead[]): void {
    // The core drops a read request when it knows no leader: say so now, not at the timeout.
    if (this.o.raw.basicStatus().lead === "") {
      settle(reads, (r) =>
        r.reject(new NexusError("NO_LEADER", "no leader is known to confirm the read; retry")),
      );
      return;
    }
    const ctx = new Uint8Array(randomBytes(this.o.lease === true ? 17 : 16));
    if (this.o.lease === true) ctx[0] = LEASE_READ_MARK;
    const round: Round = {
      key: requestKey(ctx),
      reads,
      retry: setTimeout(() => this.reissue(round), this.o.retryMs),
    };
    this.current = round;
    this.o.raw.readIndex(ctx);
    this.o.schedule();
  }

  private reissue(round: Round): void {
    if (this.current !== round) return;
    this.current = undefined;
    this.startQueued(round.reads);
  }
}

function settle(reads: readonly PendingRead[], how: (r: PendingRead) => void): void {
  for (const r of reads) {
    if (r.done) continue;
    r.done = true;
    clearTimeout(r.timer);
    how(r);
  }
}
