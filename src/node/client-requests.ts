/**
 * Client requests in flight on this node: writes waiting for their entry to be applied here,
 * reads waiting for a leader to confirm a read index (ReadIndex, thesis §6.4), and reads waiting
 * for the store to reach an index. Each is settled exactly once: by its result, a refusal, its
 * timeout, or stop.
 */
import type { ClientRequest } from "./entry-payload.js";
import { randomBytes } from "node:crypto";
import { NexusError, UnknownOutcomeError } from "../errors/index.js";
import type { RawNode } from "../raft/raw-node.js";
import { RaftError } from "../raft/raft.js";
import type { Message } from "../raft/types.js";
import type { ApplyResult } from "../store/store.js";
import type { Applier } from "./applier.js";
import { decodeEntryPayload, encodeEntryPayload, requestKey } from "./entry-payload.js";
import { writeTrace } from "./write-trace.js";
import type { PayloadKind } from "./entry-payload.js";
import { nexusErrorOfRaft } from "./raft-errors.js";
import { ReadRounds } from "./read-rounds.js";
import { IndexWaiters, Waiters } from "./waiters.js";

export interface ClientRequestsOptions {
  readonly raw: Pick<RawNode, "propose" | "readIndex" | "basicStatus">;
  readonly replTimeoutMs: number;
  /** The heartbeat interval (ms) and the election timeout in heartbeats: a read round's retry. */
  readonly heartbeatTickMs: number;
  readonly electionTick: number;
  /** The apply pipeline: the store's applied index, and the store failure that stalls it. */
  readonly applier: Pick<Applier, "position" | "storeError">;
  /** Asks the Ready loop to run. */
  readonly schedule: () => void;
}

/**
 * A write's result as this node applied it: the store's result and the log index it committed at
 * (for a repeat of a recorded request id, the index of the entry that first applied it). A read
 * with `minIndex` of that index sees the write on any node.
 */
export type SavedResult = ApplyResult & { readonly index: number };

/** What a caller may propose: a user's write, or the steps of a restore into the running cluster. */
export type ProposalKind = "command" | "restore-chunk" | "restore-commit" | "restore-abort";

/** Random bytes drawn ahead, handed out once each (one system call per 256 proposals). */
const RANDOM_POOL_BYTES = 22 * 256;
let randomPool = randomBytes(RANDOM_POOL_BYTES);
let randomUsed = 0;

/**
 * `n` fresh random bytes (n <= RANDOM_POOL_BYTES), a view of the pool: each byte is handed out
 * once, and a used pool is replaced by a new buffer, never refilled under an earlier view.
 */
function drawRandom(n: number): Buffer {
  if (randomUsed + n > randomPool.length) {
    randomPool = randomBytes(RANDOM_POOL_BYTES);
    randomUsed = 0;
  }
  const out = randomPool.subarray(randomUsed, randomUsed + n);
  randomUsed += n;
  return out;
}

export class ClientRequests {
  private readonly o: ClientRequestsOptions;
  private readonly saves = new Waiters<SavedResult>();
  /** Linearizable reads, batched into ReadIndex rounds. */
  private readonly reads: ReadRounds;
  /**
   * Lease reads on a node without a valid lease of its own (a follower), batched the same way;
   * a leader holding its lease answers their rounds without a heartbeat round.
   */
  private readonly leaseReads: ReadRounds;
  /** Reads waiting for the store to apply an index. */
  private readonly appliedWaiters = new IndexWaiters();

  /** `running` throws the reason when the node stopped. */
  constructor(
    o: ClientRequestsOptions,
    private readonly running: () => void,
  ) {
    this.o = o;
    this.reads = new ReadRounds({
      raw: o.raw,
      schedule: o.schedule,
      retryMs: o.heartbeatTickMs * o.electionTick,
    });
    this.leaseReads = new ReadRounds({
      raw: o.raw,
      schedule: o.schedule,
      retryMs: o.heartbeatTickMs * o.electionTick,
      lease: true,
    });
  }

  /**
   * Proposes a write and resolves with the store's result and its index once it is applied on
   * this node.
   * Rejects with UNKNOWN_OUTCOME if it does not complete within replTimeoutMs (it may still be
   * applied), NO_LEADER / PROPOSAL_DROPPED if the core refused it (nothing was written), or
   * STOPPED.
   */
  async propose(
    data: Uint8Array,
    args: Readonly<Record<string, string>>,
    kind: ProposalKind = "command",
    replTimeoutMs: number = this.o.replTimeoutMs,
    clientRequest?: ClientRequest,
  ): Promise<SavedResult> {
    this.running();
    // The request id (16 random bytes) and the entry's seed (6), from a pool of random bytes.
    const random = drawRandom(22);
    const requestId = new Uint8Array(random.buffer, random.byteOffset, 16);
    const key = requestKey(requestId);
    const payload = encodeEntryPayload({
      kind,
      requestId,
      timestampMs: Date.now(),
      seed: random.readUIntLE(16, 6),
      data,
      args,
      ...(clientRequest === undefined ? {} : { clientRequest }),
    });
    const result = this.saves.wait(
      key,
      replTimeoutMs,
      () =>
        new UnknownOutcomeError(
          `the write was proposed but not applied within ${replTimeoutMs} ms: ` +
            "it may or may not take effect; read before retrying",
        ),
    );
    writeTrace?.proposedWrite(key);
    try {
      this.o.raw.propose(payload);
    } catch (err) {
      const e =
        err instanceof RaftError
          ? nexusErrorOfRaft(err, "the write was not accepted")
          : (err as Error);
      this.saves.reject(key, e);
    }
    this.o.schedule();
    return result;
  }

  /** Proposes an entry of the runtime's own (no caller waits on its result). */
  proposeInternal(kind: PayloadKind, data: Uint8Array, requestId: Uint8Array): void {
    this.running();
    const payload = encodeEntryPayload({
      kind,
      requestId,
      timestampMs: Date.now(),
      seed: 0,
      data,
      args: {},
    });
    try {
      this.o.raw.propose(payload);
    } catch (err) {
      if (!(err instanceof RaftError)) throw err;
      throw nexusErrorOfRaft(err, "not proposed");
    }
    this.o.schedule();
  }

  /** The write with this request id was applied here, as entry `index`, with `result`. */
  saved(requestId: Uint8Array, index: number, result: ApplyResult): void {
    this.saves.resolve(requestKey(requestId), { ...result, index: result.firstIndex ?? index });
  }

  /**
   * A linearizable read point (ReadIndex, thesis §6.4): resolves once this node has applied
   * everything committed before the call, so a read of the local store is linearizable.
   * Concurrent reads share one ReadIndex round (read-rounds.ts). Rejects with TIMEOUT when no
   * leader confirms it in time, NO_LEADER when none is known or it could not be reached (safe
   * to retry: nothing was written). With `lease`, the round may be answered by a leader's valid
   * read lease instead of a heartbeat round (a lease read on a node that holds no lease).
   */
  async readBarrier(timeoutMs: number, lease = false): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    this.running();
    const at = await (lease ? this.leaseReads : this.reads).wait(
      timeoutMs,
      () => new NexusError("TIMEOUT", `no leader confirmed the read within ${timeoutMs} ms; retry`),
    );
    await this.waitApplied(at, Math.max(1, deadline - Date.now()));
  }

  /** A leader confirmed the read round `key` at `index` (ReadRounds.confirmed). */
  readConfirmed(key: string, index: number): void {
    if (!this.reads.confirmed(key, index)) this.leaseReads.confirmed(key, index);
  }

  /**
   * The leader changed: reads still pending went to a leader that no longer leads and its answer
   * may never come. Nothing was written, so they fail as NO_LEADER and the caller asks the new
   * leader now rather than at its timeout. (A late answer from the old leader finds no waiter.)
   */
  leaderLost(): void {
    const lost = (): Error =>
      new NexusError("NO_LEADER", "the leader changed while confirming the read; retry");
    this.reads.rejectAll(lost);
    this.leaseReads.rejectAll(lost);
  }

  /** Resolves once the store has applied `index` (or rejects when the node stops). */
  async waitApplied(index: number, timeoutMs: number): Promise<void> {
    if (this.o.applier.position().index >= index) return;
    this.running();
    await this.appliedWaiters.wait(index, timeoutMs, () => {
      const why = this.o.applier.storeError();
      return new NexusError(
        "TIMEOUT",
        `this node's store did not reach index ${index} within ${timeoutMs} ms` +
          (why === undefined ? "" : ` (${why.message})`) +
          "; retry, or read from another node",
      );
    });
  }

  /** Wakes reads waiting for the store to reach an index. */
  applied(index: number): void {
    this.appliedWaiters.reached(index);
  }

  /**
   * Messages the transport never delivered. A proposal or read request this node forwarded to a
   * leader it cannot reach (it died, an election is under way) fails at once as not written,
   * PROPOSAL_DROPPED / NO_LEADER, so the caller may retry it, instead of waiting for its timeout
   * and an unknown outcome.
   */
  dropped(msgs: readonly Message[]): void {
    for (const m of msgs) {
      if (m.type === "prop") {
        for (const e of m.entries) {
          if (e.type !== "normal" || e.data.byteLength === 0) continue;
          let requestId: Uint8Array;
          try {
            const p = decodeEntryPayload(e.data);
            if (p.kind === "check" || p.kind === "check-report") continue;
            requestId = p.requestId;
          } catch {
            continue;
          }
          this.saves.reject(
            requestKey(requestId),
            new NexusError(
              "PROPOSAL_DROPPED",
              "the leader could not be reached to propose the write; nothing was written",
            ),
          );
        }
      } else if (m.type === "read-index") {
        // The core carries a read request's context in `context` (raft.ts, stepFollower).
        const ctx = m.context;
        if (ctx.byteLength > 0) {
          const e = new NexusError(
            "NO_LEADER",
            "the leader could not be reached to confirm the read; retry",
          );
          this.reads.failed(requestKey(ctx), e);
          this.leaseReads.failed(requestKey(ctx), e);
        }
      }
    }
  }

  /**
   * Rejects every waiting request (the node stops): reads with STOPPED, writes with `writeError`
   * (WAL_FAILED when a fatal error stopped the node).
   */
  rejectAll(stopped: () => Error, writeError: () => Error): void {
    this.reads.rejectAll(stopped);
    this.leaseReads.rejectAll(stopped);
    this.appliedWaiters.rejectAll(stopped);
    this.saves.rejectAll(writeError);
  }
}
