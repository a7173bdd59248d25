/**
 * RawNode: the core's public face. The caller drives it with tick(), step() and the propose/read
 * calls, and collects every side effect as a Ready:
 *
 * 1. `rd = node.ready()` (when `hasReady()`)
 * 2. persist `rd.hardState`, `rd.entries` and `rd.snapshot` (fsync if `rd.mustSync`), and
 *    meanwhile send `rd.messages` (they do not depend on what is being persisted);
 * 3. once durable, append the entries to the Storage and send `rd.persistedMessages`;
 * 4. apply `rd.snapshot` and `rd.committedEntries` in order, calling applyConfChange() for
 *    conf-change entries; serve `rd.readStates` once their index is applied;
 * 5. `node.advance(rd)`.
 *
 * Only one Ready is outstanding at a time: ready() may not be called again before advance().
 * Between the two, tick(), step() and proposals are allowed (so a leader keeps serving while its
 * fsync runs; what they produce goes into the next Ready: group commit).
 */
import { encodeConfChange } from "./confchange/codec.js";
import { invariant } from "./invariant.js";
import { Raft, RaftError } from "./raft.js";
import type { RaftConfig } from "./raft.js";
import type { Progress } from "./tracker/progress.js";
import { confStateOf } from "./tracker/progress-tracker.js";
import type {
  ConfChange,
  ConfState,
  Entry,
  HardState,
  LeaderCommitHeard,
  Message,
  NodeId,
  ReadState,
  Snapshot,
  SoftState,
  StateType,
} from "./types.js";
import {
  createMessage,
  isEmptyHardState,
  isHardStateEqual,
  isLocalMessage,
  isResponseMessage,
} from "./types.js";

/** Everything the caller must do after a batch of inputs. See the module comment for the order. */
export interface Ready {
  /** Set when the leader or role changed. Not persisted. */
  readonly softState: SoftState | undefined;
  /** Set when term, vote or commit changed: persist before sending `persistedMessages`. */
  readonly hardState: HardState | undefined;
  /** Answers to ReadIndex requests: serve each once `index` is applied. */
  readonly readStates: readonly ReadState[];
  /** Entries to persist (appending; a lower first index truncates the stored tail). */
  readonly entries: readonly Entry[];
  /** A snapshot to persist and apply to the state machine. */
  readonly snapshot: Snapshot | undefined;
  /** Entries to apply, in order. They are persisted by the time this Ready's persist step ends. */
  readonly committedEntries: readonly Entry[];
  /** Messages to send now, even before persisting. */
  readonly messages: readonly Message[];
  /** Messages to send only after hard state, entries and snapshot are durable. */
  readonly persistedMessages: readonly Message[];
  /** Whether the hard state or entries must be synced to disk (not just written). */
  readonly mustSync: boolean;
}

/** A snapshot of a node's state for inspection. */
export interface Status {
  readonly id: NodeId;
  readonly hardState: HardState;
  readonly softState: SoftState;
  readonly applied: number;
  readonly lastIndex: number;
  readonly config: ConfState;
  /** Progress of every member; only on the leader. */
  readonly progress: ReadonlyMap<NodeId, Readonly<Progress>> | undefined;
  readonly leadTransferee: NodeId;
}

/** The part of Status that is cheap to read on every request (no progress copies). */
export interface BasicStatus {
  readonly term: number;
  readonly state: StateType;
  readonly lead: NodeId;
  readonly commit: number;
  /** The node leadership is being handed to, or NONE. */
  readonly leadTransferee: NodeId;
}

/** The outcome of sending a snapshot, reported by the caller. */
export type SnapshotStatus = "finish" | "failure";

interface PendingReady {
  readonly rd: Ready;
  readonly selfMessages: readonly Message[];
  readonly committedSize: number;
}

export class RawNode {
  /** The state machine. Exposed for tests and status; do not mutate from outside. */
  readonly raft: Raft;
  private prevSoftState: SoftState;
  private prevHardState: HardState;
  private outstanding: PendingReady | undefined = undefined;

  constructor(config: RaftConfig) {
    this.raft = new Raft(config);
    this.prevSoftState = this.raft.softState();
    this.prevHardState = this.raft.hardState();
  }

  /** Advances logical time by one tick (elections, heartbeats, check-quorum). */
  tick(): void {
    this.raft.tick();
  }

  /** Starts an election now (tests and manual operations). */
  campaign(): void {
    this.raft.step(createMessage({ type: "hup", from: this.raft.id }));
  }

  /**
   * Proposes data to be appended to the log. On a follower the proposal is forwarded to the
   * leader. Throws RaftError "no-leader" when no leader is known, "proposal-dropped" when it
   * cannot be accepted now for another reason.
   * Acceptance is not commitment: the caller learns of the commit when the entry is applied.
   */
  propose(data: Uint8Array): void {
    this.raft.step(
      createMessage({
        type: "prop",
        from: this.raft.id,
        entries: [{ term: 0, index: 0, type: "normal", data }],
      }),
    );
  }

  /**
   * Proposes a membership change. Throws RaftError "conf-change-refused" if another change is
   * pending, or joint state forbids it, on the leader; "no-leader" and "proposal-dropped" as
   * propose() does.
   */
  proposeConfChange(cc: ConfChange): void {
    this.raft.step(
      createMessage({
        type: "prop",
        from: this.raft.id,
        entries: [{ term: 0, index: 0, type: "conf-change", data: encodeConfChange(cc) }],
      }),
    );
  }

  /**
   * Feeds a message received from a peer. Local-only message types and responses from nodes not
   * in the configuration are refused with a RaftError.
   */
  step(m: Message): void {
    if (isLocalMessage(m.type)) {
      throw new RaftError("step-local-msg", `cannot step a local message of type ${m.type}`);
    }
    if (isResponseMessage(m.type) && !this.raft.trk.progress.has(m.from)) {
      throw new RaftError("step-peer-not-found", `response from unknown peer ${m.from}`);
    }
    this.raft.step(m);
  }

  /**
   * Requests a linearizable read point (thesis §6.4). `ctx` identifies the request and must be
   * unique (also across restarts); the answer arrives as a ReadState with the same ctx.
   */
  readIndex(ctx: Uint8Array): void {
    this.raft.step(createMessage({ type: "read-index", context: ctx }));
  }

  /** Asks the leader to hand leadership to `to` (thesis §3.10). */
  transferLeadership(to: NodeId): void {
    this.raft.step(createMessage({ type: "transfer-leader", from: to }));
  }

  /**
   * Applies a committed configuration change (call it when the conf-change entry is applied) and
   * returns the new configuration.
   */
  applyConfChange(cc: ConfChange): ConfState {
    return this.raft.applyConfChange(cc);
  }

  /** Reports that the last append to `id` probably did not arrive. */
  reportUnreachable(id: NodeId): void {
    this.raft.step(createMessage({ type: "unreachable", from: id }));
  }

  /** Reports whether sending a snapshot to `id` succeeded. */
  reportSnapshot(id: NodeId, status: SnapshotStatus): void {
    this.raft.step(createMessage({ type: "snap-status", from: id, reject: status === "failure" }));
  }

  /** Whether there is something to do (a Ready would not be empty). */
  hasReady(): boolean {
    if (this.outstanding !== undefined) return false;
    const r = this.raft;
    if (r.pendingBcastAppend) return true;
    const ss = r.softState();
    if (ss.lead !== this.prevSoftState.lead || ss.raftState !== this.prevSoftState.raftState) {
      return true;
    }
    const hs = r.hardState();
    if (!isEmptyHardState(hs) && !isHardStateEqual(hs, this.prevHardState)) return true;
    if (r.raftLog.hasPendingSnapshot()) return true;
    if (r.msgs.length > 0 || r.msgsAfterAppend.length > 0) return true;
    if (r.raftLog.unstableEntries().length > 0) return true;
    if (r.raftLog.hasNextCommittedEnts()) return true;
    return r.readStates.length > 0;
  }

  /** Collects the pending side effects. Call advance() when they are done. */
  ready(): Ready {
    invariant(this.outstanding === undefined, "ready() called again before advance()");
    const r = this.raft;
    r.flushProposals();
    const ss = r.softState();
    const hs = r.hardState();
    const softChanged =
      ss.lead !== this.prevSoftState.lead || ss.raftState !== this.prevSoftState.raftState;
    const hardChanged = !isEmptyHardState(hs) && !isHardStateEqual(hs, this.prevHardState);
    const entries = r.raftLog.unstableEntries().slice();
    const snapshot = r.raftLog.unstable.snapshot;
    const committedEntries = r.raftLog.nextCommittedEnts();
    const selfMessages: Message[] = [];
    const persistedMessages: Message[] = [];
    for (const m of r.msgsAfterAppend) {
      if (m.to === r.id) selfMessages.push(m);
      else persistedMessages.push(m);
    }
    const rd: Ready = {
      softState: softChanged ? ss : undefined,
      hardState: hardChanged ? hs : undefined,
      readStates: r.readStates,
      entries,
      snapshot,
      committedEntries,
      messages: r.msgs,
      persistedMessages,
      // A snapshot is acknowledged (persistedMessages) as soon as it is persisted: it must be
      // durable by then, like entries.
      mustSync:
        entries.length > 0 ||
        snapshot !== undefined ||
        (hardChanged &&
          (hs.term !== this.prevHardState.term || hs.vote !== this.prevHardState.vote)),
    };
    let committedSize = 0;
    for (const e of committedEntries) committedSize += e.data.byteLength;
    r.msgs = [];
    r.msgsAfterAppend = [];
    r.readStates = [];
    if (softChanged) this.prevSoftState = ss;
    if (hardChanged) this.prevHardState = hs;
    this.outstanding = { rd, selfMessages, committedSize };
    return rd;
  }

  /**
   * Tells the core that a Ready was handled: its entries and hard state are durable and its
   * committed entries were handed to the application. Delivers the node's own acknowledgements
   * (its vote, its durable log) that had to wait for persistence.
   */
  advance(rd: Ready): void {
    const p = this.outstanding;
    invariant(p !== undefined && p.rd === rd, "advance() called with a Ready not from ready()");
    this.outstanding = undefined;
    const r = this.raft;
    const last = rd.entries[rd.entries.length - 1];
    if (last !== undefined) r.raftLog.stableTo(last.index, last.term);
    if (rd.snapshot !== undefined) {
      r.raftLog.stableSnapTo(rd.snapshot.metadata.index);
      r.appliedTo(rd.snapshot.metadata.index, 0);
    }
    const lastCommitted = rd.committedEntries[rd.committedEntries.length - 1];
    if (lastCommitted !== undefined) r.appliedTo(lastCommitted.index, p.committedSize);
    for (const m of p.selfMessages) r.step(m);
  }

  /** Term, role, leader, commit index and transfer target, without copying anything large. */
  basicStatus(): BasicStatus {
    const r = this.raft;
    return {
      term: r.term,
      state: r.state,
      lead: r.lead,
      commit: r.raftLog.committed,
      leadTransferee: r.leadTransferee,
    };
  }

  /**
   * The latest commit index heard from the leader of the current term (app or heartbeat), or
   * undefined (none yet in this term, or this node leads). Cheap: read it after every step; a new
   * `count` is a new hearing, for the runtime to stamp with its clock.
   */
  leaderCommitHeard(): LeaderCommitHeard | undefined {
    return this.raft.leaderCommitHeard;
  }

  /** The current state, for status pages and tests. */
  status(): Status {
    const r = this.raft;
    let progress: Map<NodeId, Progress> | undefined;
    if (r.state === "leader") {
      progress = new Map();
      for (const id of r.trk.sortedIds()) progress.set(id, r.trk.progress.get(id)!.clone());
    }
    return {
      id: r.id,
      hardState: r.hardState(),
      softState: r.softState(),
      applied: r.raftLog.applied,
      lastIndex: r.raftLog.lastIndex(),
      config: confStateOf(r.trk.config),
      progress,
      leadTransferee: r.leadTransferee,
    };
  }

  /** The leader this node knows of, or NONE. */
  leader(): NodeId {
    return this.raft.lead;
  }
}
