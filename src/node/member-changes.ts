/**
 * Membership proposals: proposes conf changes (one member, or several through joint consensus)
 * and settles the caller once the change is applied here; refuses at once, on a follower, while
 * an earlier change in its log is not applied (the leader would drop it unseen).
 */
import { NexusError, UnknownOutcomeError } from "../errors/index.js";
import type { RawNode } from "../raft/raw-node.js";
import { RaftError } from "../raft/raft.js";
import type { ConfChange, ConfState, NodeId } from "../raft/types.js";
import type { DiskStorage } from "../storage/disk-storage.js";
import { confChangeContext } from "./member-directory.js";
import type { NodeEvents } from "./node-events.js";
import { nexusErrorOfRaft } from "./raft-errors.js";
import { Waiters } from "./waiters.js";

/** One membership change asked for. */
export interface MemberChange {
  readonly type: "add-node" | "add-learner" | "remove-node";
  readonly nodeId: NodeId;
  readonly url: string;
}

export interface MemberChangesOptions {
  readonly raw: Pick<RawNode, "status" | "proposeConfChange">;
  readonly storage: Pick<DiskStorage, "firstIndex" | "lastIndex" | "entries">;
  readonly events: NodeEvents;
  readonly replTimeoutMs: number;
  /** Asks the Ready loop to run. */
  readonly schedule: () => void;
}

/** The waiter key of a conf change: its changes, in order. */
function keyOf(changes: readonly { type: string; nodeId: NodeId }[]): string {
  return changes.map((c) => `${c.type}:${c.nodeId}`).join(",");
}

export class MemberChanges {
  private readonly o: MemberChangesOptions;
  /** Membership changes waiting to be applied, by the node id they change. */
  private readonly confWaiters = new Waiters<ConfState>();

  constructor(o: MemberChangesOptions) {
    this.o = o;
  }

  /**
   * Proposes several membership changes at once. One change uses the simple protocol; several go
   * through joint consensus (Raft thesis §4.3) and the joint configuration is left automatically:
   * the promise resolves once the final configuration is applied here. Refusals (another change
   * pending, would remove the last voter) reject with MEMBERSHIP_REFUSED and change nothing; a
   * timeout rejects with UNKNOWN_OUTCOME (the change may still happen: list the members before
   * retrying).
   */
  async propose(changes: readonly MemberChange[]): Promise<ConfState> {
    const { raw, replTimeoutMs } = this.o;
    if (changes.length === 0)
      throw new NexusError("INVALID_ARGUMENT", "no membership change given");
    const pending = this.pendingConfChangeIndex();
    if (pending !== 0) {
      // The leader would refuse it, and a refused proposal forwarded by a follower is lost.
      throw new NexusError(
        "MEMBERSHIP_REFUSED",
        `another membership change (index ${pending}) is not applied yet; retry when listNodes shows it. Nothing changed`,
      );
    }
    const key = keyOf(changes);
    const deadline = Date.now() + replTimeoutMs;
    const done = this.confWaiters.wait(
      key,
      replTimeoutMs,
      () =>
        new UnknownOutcomeError(
          `the membership change was proposed but not applied within ${replTimeoutMs} ms; ` +
            "list the members before retrying",
        ),
    );
    try {
      raw.proposeConfChange({
        transition: "auto",
        changes: changes.map((c) => ({ type: c.type, nodeId: c.nodeId })),
        context: confChangeContext(changes),
      });
    } catch (err) {
      this.confWaiters.reject(
        key,
        err instanceof RaftError ? nexusErrorOfRaft(err) : (err as Error),
      );
    }
    this.o.schedule();
    const cs = await done;
    if (changes.length === 1) return cs;
    // Joint consensus: wait until the leader has proposed, and this node applied, the leave.
    await this.o.events.waitFor(
      "membership-change",
      () => raw.status().config.votersOutgoing.length === 0,
      {
        timeoutMs: Math.max(1, deadline - Date.now()),
        onTimeout: () =>
          new UnknownOutcomeError(
            "the joint configuration was entered but not yet left; it will be left automatically once the leader commits it; list the members",
          ),
      },
    );
    return raw.status().config;
  }

  /** A conf change was applied here, giving `cs`: settles whoever proposed it on this node. */
  applied(cc: ConfChange, cs: ConfState): void {
    if (cc.changes.length > 0) this.confWaiters.resolve(keyOf(cc.changes), cs);
  }

  /** Rejects every pending change (the node stops). */
  rejectAll(make: () => Error): void {
    this.confWaiters.rejectAll(make);
  }

  /**
   * On a follower, the index of a conf change in this node's log that is not applied yet (0 if
   * none): the leader refuses a new change until it is, and a refusal of a forwarded proposal
   * never comes back. (The leader's core refuses such a proposal itself, at once.)
   */
  private pendingConfChangeIndex(): number {
    const { raw, storage } = this.o;
    const st = raw.status();
    if (st.softState.raftState === "leader") return 0;
    const lo = Math.max(st.applied + 1, storage.firstIndex());
    const hi = storage.lastIndex();
    // Far behind (catching up): not worth reading the backlog; the leader decides.
    if (lo > hi || hi - lo > 10_000) return 0;
    try {
      for (const e of storage.entries(lo, hi + 1, Number.MAX_SAFE_INTEGER)) {
        if (e.type === "conf-change") return e.index;
      }
    } catch {
      // Compacted or not yet stable meanwhile: let the leader decide.
    }
    return 0;
  }
}
