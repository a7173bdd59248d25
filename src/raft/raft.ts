/**
 * The Raft state machine (Raft paper §5, thesis §3–§6). Pure and deterministic: it changes only
 * through tick() and step(), draws randomness from an injected source, and leaves every side
 * effect (messages, entries to persist, entries to apply) in fields that RawNode collects into a
 * Ready.
 *
 * Each role has its own step function (stepLeader, stepCandidate, stepFollower); step() first
 * handles what is common to all roles: terms and votes.
 */
import { Changer, ConfChangeError, restoreConfState } from "./confchange/changer.js";
import type { ConfChangeResult } from "./confchange/changer.js";
import {
  enterJointOf,
  decodeConfChange,
  encodeConfChange,
  leaveJointOf,
} from "./confchange/codec.js";
import { invariant } from "./invariant.js";
import type { RandomSource } from "./random.js";
import { RaftLog } from "./raft-log.js";
import { ReadOnly, ctxKey } from "./read-only.js";
import type { ReadOnlyOption } from "./read-only.js";
import type { Storage } from "./storage.js";
import { isStorageError } from "./storage.js";
import { Inflights } from "./tracker/inflights.js";
import { Progress } from "./tracker/progress.js";
import { ProgressTracker, confStateOf, confStatesEquivalent } from "./tracker/progress-tracker.js";
import type {
  ConfChange,
  ConfState,
  Entry,
  HardState,
  LeaderCommitHeard,
  Message,
  MessageType,
  NodeId,
  ReadState,
  Snapshot,
  SoftState,
  StateType,
} from "./types.js";
import { EMPTY_BYTES, NONE, createMessage, isEmptyHardState } from "./types.js";

/** Marks a campaign started by leadership transfer: voters skip the leader-lease check. */
export const CAMPAIGN_TRANSFER: Uint8Array = new TextEncoder().encode("CampaignTransfer");

/**
 * Why the core refused an input. Callers decide by this code, never by the message, which is
 * human text that may be reworded.
 */
export type RaftErrorCode =
  /**
   * The proposal was not accepted (transfer in progress, limits, removed, forwarding disabled).
   * Nothing was appended.
   */
  | "proposal-dropped"
  /**
   * The proposal was not accepted because no leader is known (an election is in progress or this
   * follower has not heard from a leader yet). Nothing was appended; retrying shortly may succeed.
   */
  | "no-leader"
  /** A local-only message was stepped from outside. */
  | "step-local-msg"
  /** A response came from a node not in the configuration. */
  | "step-peer-not-found"
  /** A configuration change that cannot be applied now. */
  | "conf-change-refused";

/** An expected refusal by the core. The message says why. */
export class RaftError extends Error {
  readonly code: RaftErrorCode;
  constructor(code: RaftErrorCode, message: string) {
    super(message);
    this.name = "RaftError";
    this.code = code;
  }
}

/** Optional logging from the core. Every method may be a no-op. */
export interface RaftLogger {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
}

/** A logger that discards everything. */
export const SILENT_LOGGER: RaftLogger = { debug() {}, info() {}, warn() {} };

/** Configuration of one Raft node. Units are ticks and bytes. */
export interface RaftConfig {
  /** This node's id. Must not be NONE. */
  readonly id: NodeId;
  /**
   * Ticks without hearing from a leader before a follower campaigns. The actual timeout is
   * randomized in [electionTick, 2 * electionTick) (Raft §5.2). Must exceed heartbeatTick;
   * 10 * heartbeatTick is the usual choice.
   */
  readonly electionTick: number;
  /** Ticks between leader heartbeats. */
  readonly heartbeatTick: number;
  /** The stable log. */
  readonly storage: Storage;
  /** The last index already applied to the state machine (on restart). Default 0. */
  readonly applied?: number;
  /** Maximum bytes of entry data in one append message. Default 1 MiB. */
  readonly maxSizePerMsg?: number;
  /** Maximum bytes of committed entries in one Ready. Default 64 MiB. */
  readonly maxCommittedSizePerReady?: number;
  /** Maximum bytes of uncommitted entries on the leader (0 = no limit). Default 0. */
  readonly maxUncommittedEntriesSize?: number;
  /** Maximum in-flight append messages per follower in replicate state. Default 256. */
  readonly maxInflightMsgs?: number;
  /** Maximum in-flight bytes per follower (0 = no limit). Default 0. */
  readonly maxInflightBytes?: number;
  /** A leader that hears from no quorum for an election timeout steps down. Default true. */
  readonly checkQuorum?: boolean;
  /** Run a pre-vote before incrementing the term (thesis §9.6). Default true. */
  readonly preVote?: boolean;
  /** How ReadIndex is answered. `lease-based` requires checkQuorum. Default "safe". */
  readonly readOnlyOption?: ReadOnlyOption;
  /** Followers drop proposals instead of forwarding them to the leader. Default false. */
  readonly disableProposalForwarding?: boolean;
  /** Randomness for election timeouts. */
  readonly random: RandomSource;
  readonly logger?: RaftLogger;
}

/** A RaftConfig after validateRaftConfig(): every default filled in (randomness and logger apart). */
export interface NormalizedConfig {
  readonly id: NodeId;
  readonly electionTick: number;
  readonly heartbeatTick: number;
  readonly applied: number;
  readonly maxSizePerMsg: number;
  readonly maxCommittedSizePerReady: number;
  readonly maxUncommittedEntriesSize: number;
  readonly maxInflightMsgs: number;
  readonly maxInflightBytes: number;
  readonly checkQuorum: boolean;
  readonly preVote: boolean;
  readonly readOnlyOption: ReadOnlyOption;
  readonly disableProposalForwarding: boolean;
}

/** Validates a configuration and fills in defaults. Throws an Error naming the bad field. */
export function validateRaftConfig(c: RaftConfig): NormalizedConfig {
  const positiveInt = (name: string, v: number): void => {
    if (!Number.isSafeInteger(v) || v <= 0) {
      throw new Error(`raft config: ${name} must be a positive integer, got ${v}`);
    }
  };
  if (c.id === NONE) throw new Error("raft config: id must not be empty");
  positiveInt("heartbeatTick", c.heartbeatTick);
  positiveInt("electionTick", c.electionTick);
  if (c.electionTick <= c.heartbeatTick) {
    throw new Error(
      `raft config: electionTick (${c.electionTick}) must be greater than heartbeatTick (${c.heartbeatTick})`,
    );
  }
  const n: NormalizedConfig = {
    id: c.id,
    electionTick: c.electionTick,
    heartbeatTick: c.heartbeatTick,
    applied: c.applied ?? 0,
    maxSizePerMsg: c.maxSizePerMsg ?? 1024 * 1024,
    maxCommittedSizePerReady: c.maxCommittedSizePerReady ?? 64 * 1024 * 1024,
    maxUncommittedEntriesSize: c.maxUncommittedEntriesSize ?? 0,
    maxInflightMsgs: c.maxInflightMsgs ?? 256,
    maxInflightBytes: c.maxInflightBytes ?? 0,
    checkQuorum: c.checkQuorum ?? true,
    preVote: c.preVote ?? true,
    readOnlyOption: c.readOnlyOption ?? "safe",
    disableProposalForwarding: c.disableProposalForwarding ?? false,
  };
  positiveInt("maxInflightMsgs", n.maxInflightMsgs);
  positiveInt("maxSizePerMsg", n.maxSizePerMsg);
  positiveInt("maxCommittedSizePerReady", n.maxCommittedSizePerReady);
  if (n.readOnlyOption === "lease-based" && !n.checkQuorum) {
    throw new Error("raft config: readOnlyOption lease-based requires checkQuorum");
  }
  if (!Number.isSafeInteger(n.applied) || n.applied < 0) {
    throw new Error(`raft config: applied must be a non-negative integer, got ${n.applied}`);
  }
  return Object.freeze(n);
}

type StepFn = (r: Raft, m: Message) => void;

/** The sizes of entries' payloads, for the uncommitted-size limit. */
function payloadsSize(ents: readonly Entry[]): number {
  let s = 0;
  for (const e of ents) s += e.data.byteLength;
  return s;
}

function voteRespType(t: MessageType): MessageType {
  if (t === "vote") return "vote-resp";
  if (t === "pre-vote") return "pre-vote-resp";
  throw new Error(`not a vote message: ${t}`);
}

export class Raft {
  readonly id: NodeId;
  readonly cfg: NormalizedConfig;
  readonly raftLog: RaftLog;
  readonly trk: ProgressTracker;
  readonly logger: RaftLogger;
  private readonly random: RandomSource;

  /** Invariant: term never decreases. */
  term = 0;
  /** Whom this node voted for in `term` (NONE if nobody). */
  vote: NodeId = NONE;
  state: StateType = "follower";
  /** Whether this node is a learner in its configuration. */
  isLearner = false;
  /** The leader of `term` as far as this node knows. */
  lead: NodeId = NONE;
  /** Leadership transfer target, if one is in progress (leader only). */
  leadTransferee: NodeId = NONE;
  /**
   * Index of the latest conf change appended by this leader; a new one may only be proposed once
   * the applied index passes it (at most one pending change).
   */
  pendingConfIndex = 0;
  /** Bytes of uncommitted entry payloads appended by this leader. */
  uncommittedSize = 0;

  readOnly: ReadOnly;
  /** ReadIndex requests held until this leader commits an entry of its term (thesis §6.4). */
  pendingReadIndexMessages: Message[] = [];
  /** Contexts of ReadIndex requests forwarded to the leader and not yet answered. */
  pendingForwardedReads = new Set<string>();
  /**
   * The latest leader commit index heard from the leader of this term (followers and learners);
   * undefined before one in this term. Never moves this node's own commit index.
   * Invariant: leaderCommitHeard.term === term, and its leaderCommit >= raftLog.committed when set.
   */
  leaderCommitHeard: LeaderCommitHeard | undefined = undefined;
  /** Messages that carried a leader commit index, over the life of this Raft (never reset). */
  private leaderCommitHeardCount = 0;

  /** Proposals were appended and not yet broadcast (flushed when the Ready is collected). */
  pendingBcastAppend = false;
  /** Messages that may be sent at once. */
  msgs: Message[] = [];
  /** Messages to send only after the current unstable entries and hard state are persisted. */
  msgsAfterAppend: Message[] = [];
  readStates: ReadState[] = [];

  electionElapsed = 0;
  heartbeatElapsed = 0;
  randomizedElectionTimeout = 0;
  readonly heartbeatTimeout: number;
  readonly electionTimeout: number;

  private stepFn: StepFn = stepFollower;
  private tickFn: () => void = () => this.tickElection();

  constructor(config: RaftConfig) {
    this.cfg = validateRaftConfig(config);
    this.id = this.cfg.id;
    this.random = config.random;
    this.logger = config.logger ?? SILENT_LOGGER;
    this.raftLog = new RaftLog(config.storage, this.cfg.maxCommittedSizePerReady);
    this.trk = new ProgressTracker(this.cfg.maxInflightMsgs, this.cfg.maxInflightBytes);
    this.readOnly = new ReadOnly(this.cfg.readOnlyOption);
    this.heartbeatTimeout = this.cfg.heartbeatTick;
    this.electionTimeout = this.cfg.electionTick;

    const { hardState, confState } = config.storage.initialState();
    const restored = restoreConfState(
      confState,
      this.raftLog.lastIndex(),
      this.cfg.maxInflightMsgs,
      this.cfg.maxInflightBytes,
    );
    const cs = this.switchToConfig(restored);
    invariant(confStatesEquivalent(cs, confState), "restored configuration differs from storage");

    if (!isEmptyHardState(hardState)) this.loadState(hardState);
    if (this.cfg.applied > 0) this.raftLog.appliedTo(this.cfg.applied);
    this.becomeFollower(this.term, NONE);
    this.logger.info(
      `newRaft ${this.id} [peers: ${this.trk.sortedIds().join(",")}, term: ${this.term}, ` +
        `commit: ${this.raftLog.committed}, applied: ${this.raftLog.applied}, ` +
        `lastindex: ${this.raftLog.lastIndex()}, lastterm: ${this.raftLog.lastTerm()}]`,
    );
  }

  // ---- state snapshots ----

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.raftLog.committed };
  }

  softState(): SoftState {
    return { lead: this.lead, raftState: this.state };
  }

  private loadState(hs: HardState): void {
    const last = this.raftLog.lastIndex();
    invariant(
      hs.commit >= this.raftLog.committed && hs.commit <= last,
      `${this.id} state.commit ${hs.commit} is out of range [${this.raftLog.committed}, ${last}]`,
    );
    this.raftLog.committed = hs.commit;
    this.term = hs.term;
    this.vote = hs.vote;
  }

  // ---- sending ----

  /**
   * Queues a message. Responses that reflect persisted state (append and vote responses) wait
   * until the unstable entries and hard state are durable; messages to self are delivered by
   * RawNode after persistence.
   */
  send(fields: Partial<Message> & Pick<Message, "type">): void {
    const m = createMessage({ from: this.id, ...fields });
    let term = m.term;
    if (
      m.type === "vote" ||
      m.type === "vote-resp" ||
      m.type === "pre-vote" ||
      m.type === "pre-vote-resp"
    ) {
      // Vote messages carry their own term: the candidate's term, or the term being voted in.
      invariant(m.term !== 0, `term should be set when sending ${m.type}`);
    } else {
      invariant(m.term === 0, `term should not be set when sending ${m.type} (was ${m.term})`);
      // "prop" and "read-index" are forwarded to the leader with term 0 (local-ish messages).
      if (m.type !== "prop" && m.type !== "read-index") term = this.term;
    }
    const out = term === m.term ? m : { ...m, term };
    if (out.type === "app-resp" || out.type === "vote-resp" || out.to === this.id) {
      this.msgsAfterAppend.push(out);
    } else {
      this.msgs.push(out);
    }
  }

  /**
   * Sends an append (or a snapshot if the needed entries are compacted) to `to` unless flow
   * control holds it back. With sendIfEmpty false, nothing is sent when there are no new entries.
   * Returns whether a message was sent.
   */
  maybeSendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    if (to === this.id) return false;
    const pr = this.trk.progress.get(to);
    if (pr === undefined || pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    let prevTerm: number;
    let ents: Entry[];
    try {
      prevTerm = this.raftLog.term(prevIndex);
      ents = this.raftLog.entries(pr.next, this.cfg.maxSizePerMsg);
    } catch (err) {
      if (isStorageError(err, "compacted") || isStorageError(err, "unavailable")) {
        return this.maybeSendSnapshot(to, pr);
      }
      throw err;
    }
    if (ents.length === 0 && !sendIfEmpty) return false;
    const last = ents.length > 0 ? ents[ents.length - 1]!.index : prevIndex;
    this.send({
      type: "app",
      to,
      index: prevIndex,
      logTerm: prevTerm,
      entries: ents,
      commit: this.raftLog.committed,
      leaderCommit: this.leaderCommitToSend(),
    });
    pr.sentEntries(ents.length, last, payloadsSize(ents));
    return true;
  }

  sendAppend(to: NodeId): void {
    this.maybeSendAppend(to, true);
  }

  private maybeSendSnapshot(to: NodeId, pr: Progress): boolean {
    if (!pr.recentActive) {
      this.logger.debug(`${this.id} ignores sending snapshot to ${to}: not recently active`);
      return false;
    }
    let snap;
    try {
      snap = this.raftLog.snapshot();
    } catch (err) {
      if (isStorageError(err, "snapshot-temporarily-unavailable")) {
        this.logger.debug(`${this.id} failed to send snapshot to ${to}: temporarily unavailable`);
        return false;
      }
      throw err;
    }
    invariant(snap.metadata.index > 0, "need non-empty snapshot");
    const cs = snap.metadata.confState;
    if (![cs.voters, cs.learners, cs.votersOutgoing].some((ids) => ids.includes(to))) {
      // The follower would refuse a snapshot whose configuration does not contain it (it was
      // added after the snapshot was taken): wait for a newer snapshot (see Storage.snapshot).
      this.logger.debug(`${this.id} snapshot at ${snap.metadata.index} predates ${to}; waiting`);
      return false;
    }
    this.logger.info(
      `${this.id} [firstindex: ${this.raftLog.firstIndex()}, commit: ${this.raftLog.committed}] ` +
        `sent snapshot[index: ${snap.metadata.index}, term: ${snap.metadata.term}] to ${to}`,
    );
    pr.becomeSnapshot(snap.metadata.index);
    this.send({ type: "snap", to, snapshot: snap });
    return true;
  }

  /**
   * The commit index a leader tells followers for bounded reads: its own, once it committed an
   * entry of its term; before that its last index, an upper bound of what any earlier leader may
   * have committed (leader completeness) that its own commit index may be below.
   */
  private leaderCommitToSend(): number {
    return this.committedEntryInCurrentTerm() ? this.raftLog.committed : this.raftLog.lastIndex();
  }

  private sendHeartbeat(to: NodeId, ctx: Uint8Array): void {
    // Never let the follower commit past what it is known to have: it might not have it.
    const pr = this.trk.progress.get(to)!;
    const commit = Math.min(pr.match, this.raftLog.committed);
    // The real one travels apart, for reads with a staleness bound on the follower.
    this.send({
      type: "heartbeat",
      to,
      commit,
      leaderCommit: this.leaderCommitToSend(),
      context: ctx,
    });
  }

  /** Broadcasts proposals appended since the last Ready, if any (leader only). */
  flushProposals(): void {
    if (!this.pendingBcastAppend) return;
    this.pendingBcastAppend = false;
    if (this.state === "leader") this.bcastAppend();
  }

  /** Sends appends to every member that flow control allows. */
  bcastAppend(): void {
    this.pendingBcastAppend = false;
    for (const id of this.trk.sortedIds()) {
      if (id !== this.id) this.sendAppend(id);
    }
  }

  bcastHeartbeat(): void {
    const ctx = this.readOnly.lastPendingRequestCtx();
    this.bcastHeartbeatWithCtx(ctx ?? EMPTY_BYTES);
  }

  private bcastHeartbeatWithCtx(ctx: Uint8Array): void {
    for (const id of this.trk.sortedIds()) {
      if (id !== this.id) this.sendHeartbeat(id, ctx);
    }
  }

  // ---- commit and append ----

  /** Advances the commit index to what a quorum of the current term acknowledged. */
  maybeCommit(): boolean {
    return this.raftLog.maybeCommit(this.trk.committed(), this.term);
  }

  /**
   * Appends entries as leader. The leader's own acknowledgement is a message to itself, delivered
   * only after the entries are persisted, so the leader counts toward the quorum only once its
   * copy is durable.
   */
  appendEntry(es: Entry[], bypassSizeLimit = false): boolean {
    let li = this.raftLog.lastIndex();
    const stamped: Entry[] = es.map((e, i) => ({
      term: this.term,
      index: li + 1 + i,
      type: e.type,
      data: e.data,
    }));
    if (!this.increaseUncommittedSize(stamped, bypassSizeLimit)) {
      this.logger.warn(`${this.id} appending new entries would exceed the uncommitted size limit`);
      return false;
    }
    li = this.raftLog.append(stamped);
    this.send({ type: "app-resp", to: this.id, index: li });
    return true;
  }

  private increaseUncommittedSize(ents: readonly Entry[], bypassLimit: boolean): boolean {
    const s = payloadsSize(ents);
    const max = this.cfg.maxUncommittedEntriesSize;
    if (
      !bypassLimit &&
      max > 0 &&
      this.uncommittedSize > 0 &&
      s > 0 &&
      this.uncommittedSize + s > max
    ) {
      return false;
    }
    this.uncommittedSize += s;
    return true;
  }

  /** Called when entries are handed to the application: they no longer count as uncommitted. */
  reduceUncommittedSize(size: number): void {
    this.uncommittedSize = Math.max(0, this.uncommittedSize - size);
  }

  // ---- ticks ----

  tick(): void {
    this.tickFn();
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.pastElectionTimeout()) {
      this.electionElapsed = 0;
      this.step(createMessage({ type: "hup", from: this.id }));
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.electionTimeout) {
      this.electionElapsed = 0;
      if (this.cfg.checkQuorum) {
        this.step(createMessage({ type: "check-quorum", from: this.id }));
      }
      // A transfer that did not finish within an election timeout is abandoned.
      if (this.state === "leader" && this.leadTransferee !== NONE) this.abortLeaderTransfer();
    }
    if (this.state !== "leader") return;
    if (this.heartbeatElapsed >= this.heartbeatTimeout) {
      this.heartbeatElapsed = 0;
      this.step(createMessage({ type: "beat", from: this.id }));
    }
  }

  /** Whether the election timeout has passed (randomized, Raft §5.2). */
  pastElectionTimeout(): boolean {
    return this.electionElapsed >= this.randomizedElectionTimeout;
  }

  private resetRandomizedElectionTimeout(): void {
    this.randomizedElectionTimeout = this.electionTimeout + this.random(this.electionTimeout);
  }

  // ---- role changes ----

  private reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = NONE;
      this.pendingForwardedReads.clear();
      this.leaderCommitHeard = undefined;
    }
    this.lead = NONE;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetRandomizedElectionTimeout();
    this.abortLeaderTransfer();
    this.trk.resetVotes();
    const last = this.raftLog.lastIndex();
    const stableLast = this.raftLog.stableLastIndex();
    const old = this.trk.progress;
    this.trk.progress = new Map();
    for (const [id, pr] of old) {
      const np = new Progress(
        last + 1,
        new Inflights(this.cfg.maxInflightMsgs, this.cfg.maxInflightBytes),
        pr.isLearner,
        // Only what is persisted counts for this node itself.
        id === this.id ? stableLast : 0,
      );
      this.trk.progress.set(id, np);
    }
    this.pendingConfIndex = 0;
    this.uncommittedSize = 0;
    this.pendingBcastAppend = false;
    this.readOnly = new ReadOnly(this.cfg.readOnlyOption);
    this.pendingReadIndexMessages = [];
  }

  becomeFollower(term: number, lead: NodeId): void {
    this.stepFn = stepFollower;
    this.reset(term);
    this.tickFn = () => this.tickElection();
    this.lead = lead;
    this.state = "follower";
    this.logger.info(`${this.id} became follower at term ${this.term}`);
  }

  becomeCandidate(): void {
    invariant(this.state !== "leader", "invalid transition [leader -> candidate]");
    this.stepFn = stepCandidate;
    this.reset(this.term + 1);
    this.tickFn = () => this.tickElection();
    this.vote = this.id;
    this.state = "candidate";
    this.logger.info(`${this.id} became candidate at term ${this.term}`);
  }

  becomePreCandidate(): void {
    invariant(this.state !== "leader", "invalid transition [leader -> pre-candidate]");
    // A pre-candidate changes neither its term nor its vote (thesis §9.6).
    this.stepFn = stepCandidate;
    this.trk.resetVotes();
    this.tickFn = () => this.tickElection();
    this.lead = NONE;
    this.state = "pre-candidate";
    this.logger.info(`${this.id} became pre-candidate at term ${this.term}`);
  }

  becomeLeader(): void {
    invariant(this.state !== "follower", "invalid transition [follower -> leader]");
    this.stepFn = stepLeader;
    this.reset(this.term);
    this.tickFn = () => this.tickHeartbeat();
    this.lead = this.id;
    this.state = "leader";
    const self = this.trk.progress.get(this.id);
    if (self !== undefined) {
      // The leader's own progress is always replicate; it is active by definition.
      self.becomeReplicate();
      self.match = this.raftLog.stableLastIndex();
      self.next = this.raftLog.lastIndex() + 1;
      self.recentActive = true;
    }
    // Conservatively treat every entry up to the last as a possible pending conf change.
    this.pendingConfIndex = this.raftLog.lastIndex();
    // The no-op entry of the new term (Raft §5.4.2, thesis §6.4: needed for ReadIndex too).
    const ok = this.appendEntry([{ term: 0, index: 0, type: "normal", data: EMPTY_BYTES }]);
    invariant(ok, "empty entry was dropped");
    this.logger.info(`${this.id} became leader at term ${this.term}`);
  }

  /** Whether this node may become leader: it is a voter and has no snapshot to apply. */
  promotable(): boolean {
    const pr = this.trk.progress.get(this.id);
    return pr !== undefined && !pr.isLearner && !this.raftLog.hasPendingSnapshot();
  }

  /** Starts an election if allowed; `transfer` skips pre-vote and the voters' lease check. */
  hup(transfer: boolean): void {
    if (this.state === "leader") {
      this.logger.debug(`${this.id} ignoring hup: already leader`);
      return;
    }
    if (!this.promotable()) {
      this.logger.warn(`${this.id} is unpromotable and can not campaign`);
      return;
    }
    if (this.hasUnappliedConfChanges()) {
      this.logger.warn(`${this.id} cannot campaign at term ${this.term}: unapplied conf changes`);
      return;
    }
    this.logger.info(`${this.id} is starting a new election at term ${this.term}`);
    this.campaign(transfer ? "transfer" : this.cfg.preVote ? "pre-election" : "election");
  }

  private hasUnappliedConfChanges(): boolean {
    if (this.raftLog.applied >= this.raftLog.committed) return false;
    const lo = this.raftLog.applied + 1;
    const hi = this.raftLog.committed + 1;
    let ents: Entry[];
    try {
      ents = this.raftLog.slice(lo, hi, Number.MAX_SAFE_INTEGER);
    } catch (err) {
      if (isStorageError(err, "compacted")) return false;
      throw err;
    }
    return ents.some((e) => e.type === "conf-change");
  }

  /** Starts an election (Raft §5.2) or a pre-election (thesis §9.6). */
  campaign(kind: "pre-election" | "election" | "transfer"): void {
    if (!this.promotable()) {
      this.logger.warn(`${this.id} is unpromotable; campaign() should have been called`);
      return;
    }
    let voteMsg: MessageType;
    let term: number;
    if (kind === "pre-election") {
      this.becomePreCandidate();
      voteMsg = "pre-vote";
      // Pre-votes are requested for the next term without incrementing ours.
      term = this.term + 1;
    } else {
      this.becomeCandidate();
      voteMsg = "vote";
      term = this.term;
    }
    const ids = [...this.trk.config.voters.ids()].sort();
    for (const id of ids) {
      if (id === this.id) {
        if (voteMsg === "pre-vote") {
          // A pre-vote binds nothing, so it counts at once.
          this.trk.recordVote(this.id, true);
        } else {
          // Our own vote counts only once it is persisted (delivered after the Ready).
          this.send({ type: "vote-resp", to: this.id, term, reject: false });
        }
        continue;
      }
      this.logger.info(
        `${this.id} [logterm: ${this.raftLog.lastTerm()}, index: ${this.raftLog.lastIndex()}] ` +
          `sent ${voteMsg} request to ${id} at term ${this.term}`,
      );
      this.send({
        type: voteMsg,
        to: id,
        term,
        index: this.raftLog.lastIndex(),
        logTerm: this.raftLog.lastTerm(),
        context: kind === "transfer" ? CAMPAIGN_TRANSFER : EMPTY_BYTES,
      });
    }
    if (voteMsg === "pre-vote" && this.trk.tallyVotes().result === "won") {
      this.campaign("election");
    }
  }

  /** Records a vote and returns the tally. */
  poll(
    id: NodeId,
    t: MessageType,
    granted: boolean,
  ): { granted: number; rejected: number; result: "pending" | "lost" | "won" } {
    this.logger.info(
      `${this.id} received ${t} ${granted ? "" : "rejection "}from ${id} at term ${this.term}`,
    );
    this.trk.recordVote(id, granted);
    return this.trk.tallyVotes();
  }

  // ---- the step function ----

  /** Processes one message. Throws RaftError for refused proposals. */
  step(m: Message): void {
    if (m.term === 0) {
      // Local message (or a forwarded proposal / read request).
    } else if (m.term > this.term) {
      if (m.type === "vote" || m.type === "pre-vote") {
        const force = bytesEqual(m.context, CAMPAIGN_TRANSFER);
        const inLease =
          this.cfg.checkQuorum && this.lead !== NONE && this.electionElapsed < this.electionTimeout;
        if (!force && inLease) {
          // We heard from a leader within the minimum election timeout: do not let a
          // disrupting node raise the term (thesis §4.2.3).
          this.logger.info(
            `${this.id} [term: ${this.term}] ignored ${m.type} from ${m.from} at term ${m.term}: lease is not expired`,
          );
          return;
        }
      }
      if (m.type === "pre-vote") {
        // Never change our term in response to a pre-vote.
      } else if (m.type === "pre-vote-resp" && !m.reject) {
        // The term in a granted pre-vote response is the future term of our own election.
      } else {
        this.logger.info(
          `${this.id} [term: ${this.term}] received a ${m.type} message with higher term from ${m.from} [term: ${m.term}]`,
        );
        if (m.type === "app" || m.type === "heartbeat" || m.type === "snap") {
          this.becomeFollower(m.term, m.from);
        } else {
          this.becomeFollower(m.term, NONE);
        }
      }
    } else if (m.term < this.term) {
      if (
        (this.cfg.checkQuorum || this.cfg.preVote) &&
        (m.type === "heartbeat" || m.type === "app")
      ) {
        // A stale leader (e.g. one that was partitioned) learns of the newer term this way; with
        // check-quorum or pre-vote its followers would otherwise never raise its term.
        this.send({ type: "app-resp", to: m.from });
      } else if (m.type === "pre-vote") {
        this.send({ type: "pre-vote-resp", to: m.from, term: this.term, reject: true });
      } else {
        this.logger.debug(
          `${this.id} [term: ${this.term}] ignored a ${m.type} message with lower term from ${m.from} [term: ${m.term}]`,
        );
      }
      return;
    }

    switch (m.type) {
      case "hup":
        this.hup(false);
        return;
      case "vote":
      case "pre-vote": {
        // We can vote if this is a repeat of a vote we cast, or we have not voted and know of no
        // leader in this term, or this is a pre-vote for a future term.
        const canVote =
          this.vote === m.from ||
          (this.vote === NONE && this.lead === NONE) ||
          (m.type === "pre-vote" && m.term > this.term);
        if (canVote && this.raftLog.isUpToDate(m.index, m.logTerm)) {
          this.logger.info(
            `${this.id} cast ${m.type} for ${m.from} [logterm: ${m.logTerm}, index: ${m.index}] at term ${this.term}`,
          );
          this.send({ type: voteRespType(m.type), to: m.from, term: m.term, reject: false });
          if (m.type === "vote") {
            this.electionElapsed = 0;
            this.vote = m.from;
          }
        } else {
          this.logger.info(
            `${this.id} rejected ${m.type} from ${m.from} [logterm: ${m.logTerm}, index: ${m.index}] at term ${this.term}`,
          );
          this.send({ type: voteRespType(m.type), to: m.from, term: this.term, reject: true });
        }
        return;
      }
      default:
        this.stepFn(this, m);
    }
  }

  // ---- handlers shared by followers and candidates ----

  handleAppendEntries(m: Message): void {
    if (m.index < this.raftLog.committed) {
      this.send({ type: "app-resp", to: m.from, index: this.raftLog.committed });
      return;
    }
    const lastNew = this.raftLog.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (lastNew !== undefined) {
      this.send({ type: "app-resp", to: m.from, index: lastNew });
      return;
    }
    // Fast backtracking: hint the largest index whose term is <= the leader's term at m.index,
    // so the leader skips every entry of a conflicting term in one round trip.
    const hintIndex = Math.min(m.index, this.raftLog.lastIndex());
    const hint = this.raftLog.findConflictByTerm(hintIndex, m.logTerm);
    this.logger.debug(
      `${this.id} rejected app [logterm: ${m.logTerm}, index: ${m.index}] from ${m.from}; hint ${hint.index}/${hint.term}`,
    );
    this.send({
      type: "app-resp",
      to: m.from,
      index: m.index,
      reject: true,
      rejectHint: hint.index,
      logTerm: hint.term,
    });
  }

  handleHeartbeat(m: Message): void {
    // The leader sends min(match, committed), so a commit beyond our last index means this node
    // lost entries it had acknowledged (a repaired or torn log). What it still holds is a prefix
    // of what matched, so commit = min(leaderCommit, lastIndex) (Raft §5.3, "index of last new
    // entry"); the leader sends the rest once it learns our log is shorter.
    const last = this.raftLog.lastIndex();
    if (m.commit > last) {
      this.logger.warn(
        `${this.id} heartbeat from ${m.from} commits ${m.commit} beyond the last index ${last}: entries were lost here; committing up to ${last}`,
      );
    }
    this.raftLog.commitTo(Math.min(m.commit, last));
    this.send({ type: "heartbeat-resp", to: m.from, context: m.context });
  }

  /**
   * Notes the leader's commit index that an append or heartbeat of the current leader carries
   * (after the handler: this node's commit index may have moved). A missing `leaderCommit` is
   * unknown, except on an append, whose `commit` is the leader's unclamped (a peer predating the
   * field). A value below this node's commit index (only a buggy or hostile peer sends one) is
   * raised to it; within a term the highest is kept. A message of another term or sender (which
   * the step functions never pass here) is ignored.
   */
  noteLeaderCommit(m: Message): void {
    if (m.term !== this.term || m.from !== this.lead || this.lead === NONE) return;
    const sent = m.leaderCommit ?? (m.type === "app" ? m.commit : undefined);
    if (sent === undefined) return;
    const prev = this.leaderCommitHeard;
    let leaderCommit = Math.max(sent, this.raftLog.committed);
    if (prev !== undefined && prev.term === this.term) {
      leaderCommit = Math.max(leaderCommit, prev.leaderCommit);
    }
    this.leaderCommitHeard = {
      term: this.term,
      lead: this.lead,
      leaderCommit,
      count: ++this.leaderCommitHeardCount,
    };
  }

  handleSnapshot(m: Message): void {
    const s = m.snapshot;
    invariant(s !== undefined, "snap message without a snapshot");
    if (this.restore(s)) {
      this.logger.info(
        `${this.id} [commit: ${this.raftLog.committed}] restored snapshot [index: ${s.metadata.index}, term: ${s.metadata.term}]`,
      );
      this.send({ type: "app-resp", to: m.from, index: this.raftLog.lastIndex() });
    } else {
      this.logger.info(
        `${this.id} [commit: ${this.raftLog.committed}] ignored snapshot [index: ${s.metadata.index}, term: ${s.metadata.term}]`,
      );
      this.send({ type: "app-resp", to: m.from, index: this.raftLog.committed });
    }
  }

  /** Restores the log and configuration from a snapshot. Returns false if it was not used. */
  restore(s: Snapshot): boolean {
    if (s.metadata.index <= this.raftLog.committed) return false;
    if (this.state !== "follower") {
      // Defensive: only followers receive snapshots; a stray one makes us a follower.
      this.logger.warn(
        `${this.id} attempted to restore snapshot as ${this.state}; becoming follower`,
      );
      this.becomeFollower(this.term + 1, NONE);
      return false;
    }
    const cs = s.metadata.confState;
    const inConfig = [cs.voters, cs.learners, cs.votersOutgoing].some((set) =>
      set.includes(this.id),
    );
    if (!inConfig) {
      this.logger.warn(`${this.id} attempted to restore snapshot but it is not in the ConfState`);
      return false;
    }
    if (this.raftLog.matchTerm(s.metadata.index, s.metadata.term)) {
      // We already have the snapshot's last entry: just fast-forward the commit index.
      this.raftLog.commitTo(s.metadata.index);
      return false;
    }
    this.raftLog.restore(s);
    const restored = restoreConfState(
      cs,
      this.raftLog.lastIndex(),
      this.cfg.maxInflightMsgs,
      this.cfg.maxInflightBytes,
    );
    const got = this.switchToConfig(restored);
    invariant(confStatesEquivalent(got, cs), "snapshot configuration was not applied faithfully");
    const pr = this.trk.progress.get(this.id)!;
    pr.maybeUpdate(pr.next - 1);
    return true;
  }

  // ---- membership ----

  /**
   * Why a conf change cannot be applied to the current configuration, or "" if it can. With at
   * most one change pending, the configuration at apply time is the current one, so a change
   * accepted here always applies cleanly.
   */
  validateConfChange(cc: ConfChange): string {
    try {
      this.computeConfChange(cc);
      return "";
    } catch (err) {
      if (err instanceof ConfChangeError) return err.message;
      throw err;
    }
  }

  private computeConfChange(cc: ConfChange): ConfChangeResult {
    const changer = new Changer(
      this.trk.config,
      this.trk.progress,
      this.raftLog.lastIndex(),
      this.cfg.maxInflightMsgs,
      this.cfg.maxInflightBytes,
    );
    if (leaveJointOf(cc)) return changer.leaveJoint();
    const { joint, autoLeave } = enterJointOf(cc);
    return joint ? changer.enterJoint(autoLeave, cc.changes) : changer.simple(cc.changes);
  }

  /** Applies a committed configuration change and returns the new configuration. */
  applyConfChange(cc: ConfChange): ConfState {
    return this.switchToConfig(this.computeConfChange(cc));
  }

  private switchToConfig(res: ConfChangeResult): ConfState {
    this.trk.config = res.config;
    this.trk.progress = res.progress;
    const cs = confStateOf(res.config);
    const pr = this.trk.progress.get(this.id);
    this.isLearner = pr !== undefined && pr.isLearner;
    if ((pr === undefined || this.isLearner) && this.state === "leader") {
      // A leader removed or demoted steps down once the change is applied (thesis §4.2.2).
      this.logger.info(`${this.id} was removed or demoted; stepping down`);
      this.becomeFollower(this.term, NONE);
      return cs;
    }
    if (this.state !== "leader" || cs.voters.length === 0) return cs;
    if (this.maybeCommit()) {
      // The configuration shrank and the commit index advanced: tell everyone.
      this.bcastAppend();
    } else {
      for (const id of this.trk.sortedIds()) {
        if (id !== this.id) this.maybeSendAppend(id, false);
      }
    }
    if (this.leadTransferee !== NONE && !this.trk.config.voters.has(this.leadTransferee)) {
      this.abortLeaderTransfer();
    }
    return cs;
  }

  /**
   * Records that entries up to `applied` were handed to the application. A leader in a joint
   * configuration with autoLeave proposes leaving it once the joint entry is applied.
   */
  appliedTo(applied: number, size: number): void {
    const old = this.raftLog.applied;
    this.raftLog.appliedTo(Math.max(old, applied));
    if (this.state === "leader") this.reduceUncommittedSize(size);
    if (
      this.trk.config.autoLeave &&
      this.raftLog.applied >= this.pendingConfIndex &&
      this.state === "leader"
    ) {
      const data = encodeConfChange({ transition: "auto", changes: [], context: EMPTY_BYTES });
      // Leaving must not be refused: the encoded change is not an empty payload, so it would
      // otherwise count against maxUncommittedEntriesSize.
      const ok = this.appendEntry([{ term: 0, index: 0, type: "conf-change", data }], true);
      invariant(ok, "refused to append the auto-leave conf change");
      this.pendingConfIndex = this.raftLog.lastIndex();
      this.bcastAppend();
      this.logger.info(`${this.id} initiating automatic transition out of joint configuration`);
    }
  }

  // ---- leadership transfer ----

  abortLeaderTransfer(): void {
    this.leadTransferee = NONE;
  }

  sendTimeoutNow(to: NodeId): void {
    this.send({ type: "timeout-now", to });
  }

  // ---- reads ----

  /** Whether this leader has committed an entry of its own term (thesis §6.4). */
  committedEntryInCurrentTerm(): boolean {
    return this.raftLog.termOrUndefined(this.raftLog.committed) === this.term;
  }

  /** Answers a ReadIndex request at `index`: locally, or to the follower that asked. */
  responseToReadIndexReq(req: Message, index: number): void {
    if (req.from === NONE || req.from === this.id) {
      this.readStates.push({ index, requestCtx: req.context });
      return;
    }
    this.send({ type: "read-index-resp", to: req.from, index, context: req.context });
  }

  sendMsgReadIndexResponse(m: Message): void {
    if (this.readOnly.option === "lease-based") {
      this.responseToReadIndexReq(m, this.raftLog.committed);
      return;
    }
    // Safe: the read waits for a heartbeat round, started now, acknowledged by a quorum.
    this.readOnly.addRequest(this.raftLog.committed, m);
    this.readOnly.recvAck(this.id, m.context);
    if (this.trk.config.voters.voteResult(new Map([[this.id, true]])) === "won") {
      // A single voter confirms itself.
      for (const rs of this.readOnly.advance(m.context)) {
        this.responseToReadIndexReq(rs.req, rs.index);
      }
      return;
    }
    this.bcastHeartbeatWithCtx(m.context);
  }

  releasePendingReadIndexMessages(): void {
    if (this.pendingReadIndexMessages.length === 0) return;
    if (!this.committedEntryInCurrentTerm()) return;
    const msgs = this.pendingReadIndexMessages;
    this.pendingReadIndexMessages = [];
    for (const m of msgs) this.sendMsgReadIndexResponse(m);
  }

  /** Internal: used by stepFollower to remember forwarded read contexts. */
  rememberForwardedRead(ctx: Uint8Array): void {
    this.pendingForwardedReads.add(ctxKey(ctx));
  }
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

// ---- per-role step functions ----

function stepLeader(r: Raft, m: Message): void {
  // Messages that do not need a progress entry of the sender.
  switch (m.type) {
    case "beat":
      r.bcastHeartbeat();
      return;
    case "check-quorum": {
      if (!r.trk.quorumActive()) {
        r.logger.warn(`${r.id} stepped down to follower since quorum is not active`);
        r.becomeFollower(r.term, NONE);
      }
      // Mark everyone but ourselves inactive until we hear from them again.
      for (const [id, pr] of r.trk.progress) {
        if (id !== r.id) pr.recentActive = false;
      }
      return;
    }
    case "prop": {
      invariant(m.entries.length > 0, `${r.id} stepped empty prop`);
      if (!r.trk.progress.has(r.id)) {
        throw new RaftError("proposal-dropped", "this node was removed from the configuration");
      }
      if (r.leadTransferee !== NONE) {
        throw new RaftError(
          "proposal-dropped",
          `leadership is being transferred to ${r.leadTransferee}; retry on the new leader`,
        );
      }
      const entries = m.entries.slice();
      // Recorded only once the entries are appended: a refused proposal leaves nothing pending.
      let pendingConfIndex = r.pendingConfIndex;
      for (let i = 0; i < entries.length; i++) {
        const e = entries[i]!;
        if (e.type !== "conf-change") continue;
        const cc = decodeConfChange(e.data);
        const alreadyPending = pendingConfIndex > r.raftLog.applied;
        const alreadyJoint = r.trk.config.voters.isJoint;
        const wantsLeaveJoint = leaveJointOf(cc);
        let refused = "";
        if (alreadyPending) {
          refused = `another membership change (index ${pendingConfIndex}) is not yet applied (applied ${r.raftLog.applied})`;
        } else if (alreadyJoint && !wantsLeaveJoint) {
          refused = "must leave the joint configuration first";
        } else if (!alreadyJoint && wantsLeaveJoint) {
          refused = "not in a joint configuration";
        }
        if (refused === "") refused = r.validateConfChange(cc);
        if (refused !== "") {
          throw new RaftError("conf-change-refused", `membership change refused: ${refused}`);
        }
        pendingConfIndex = r.raftLog.lastIndex() + i + 1;
      }
      if (!r.appendEntry(entries)) {
        throw new RaftError("proposal-dropped", "too many uncommitted entries; retry later");
      }
      r.pendingConfIndex = pendingConfIndex;
      // Batching: proposals stepped before the next Ready go out in one append per follower.
      r.pendingBcastAppend = true;
      return;
    }
    case "read-index": {
      // A new leader does not know the commit index until it commits an entry of its term.
      if (!r.committedEntryInCurrentTerm()) {
        r.pendingReadIndexMessages.push(m);
        return;
      }
      r.sendMsgReadIndexResponse(m);
      return;
    }
    default:
      break;
  }

  const pr = r.trk.progress.get(m.from);
  if (pr === undefined) {
    r.logger.debug(`${r.id} no progress available for ${m.from}`);
    return;
  }
  switch (m.type) {
    case "app-resp": {
      pr.recentActive = true;
      if (m.from === r.id) {
        // Our own entries are durable up to m.index.
        if (pr.maybeUpdate(m.index) && r.maybeCommit()) {
          r.releasePendingReadIndexMessages();
          r.bcastAppend();
        }
        return;
      }
      if (m.reject) {
        if (m.index === pr.match && m.rejectHint < pr.match && pr.state !== "snapshot") {
          // The follower refuses an entry it acknowledged and says its log ends before it: it
          // lost acknowledged entries (a repaired or torn log). Without this it would be probed
          // at its old match forever. Start again from what it holds (a stale rejection only
          // costs a resend: match grows back on the next acknowledgement).
          r.logger.warn(
            `${r.id} ${m.from} lost entries it had acknowledged (match ${pr.match}, its log ends at ${m.rejectHint}); resending from ${m.rejectHint + 1}`,
          );
          pr.match = m.rejectHint;
          pr.becomeProbe();
          r.sendAppend(m.from);
          return;
        }
        let nextProbeIdx = m.rejectHint;
        if (m.logTerm > 0) {
          // Skip every entry of a term the follower cannot have at that index.
          nextProbeIdx = r.raftLog.findConflictByTerm(m.rejectHint, m.logTerm).index;
        }
        if (pr.maybeDecrTo(m.index, nextProbeIdx)) {
          r.logger.debug(`${r.id} decreased progress of ${m.from} to [${pr.describe()}]`);
          if (pr.state === "replicate") pr.becomeProbe();
          r.sendAppend(m.from);
        }
        return;
      }
      const oldPaused = pr.isPaused();
      if (pr.maybeUpdate(m.index) || (pr.match === m.index && pr.state === "probe")) {
        if (pr.state === "probe") {
          pr.becomeReplicate();
        } else if (pr.state === "snapshot" && pr.match + 1 >= r.raftLog.firstIndex()) {
          // The follower caught up past the snapshot: resume normal replication.
          r.logger.debug(`${r.id} recovered from needing snapshot, resumed sending to ${m.from}`);
          pr.becomeProbe();
          pr.becomeReplicate();
        } else if (pr.state === "replicate") {
          pr.inflights.freeLE(m.index);
        }
        if (r.maybeCommit()) {
          r.releasePendingReadIndexMessages();
          r.bcastAppend();
        } else if (oldPaused) {
          r.sendAppend(m.from);
        }
        // Pipeline: send as much as the in-flight window allows.
        while (r.maybeSendAppend(m.from, false)) {
          /* keep sending */
        }
        if (m.from === r.leadTransferee && pr.match === r.raftLog.lastIndex()) {
          r.logger.info(`${r.id} sent timeout-now to ${m.from} after its log caught up`);
          r.sendTimeoutNow(m.from);
        }
      }
      return;
    }
    case "heartbeat-resp": {
      pr.recentActive = true;
      pr.msgAppFlowPaused = false;
      if (pr.state === "replicate" && pr.inflights.full()) pr.inflights.freeFirstOne();
      if (pr.match < r.raftLog.lastIndex() || pr.state === "probe") r.sendAppend(m.from);
      if (r.readOnly.option !== "safe" || m.context.byteLength === 0) return;
      const acks = r.readOnly.recvAck(m.from, m.context);
      if (acks === undefined) return;
      if (r.trk.config.voters.voteResult(acks) !== "won") return;
      for (const rs of r.readOnly.advance(m.context)) {
        r.responseToReadIndexReq(rs.req, rs.index);
      }
      return;
    }
    case "snap-status": {
      if (pr.state !== "snapshot") return;
      if (!m.reject) {
        pr.becomeProbe();
        r.logger.debug(`${r.id} snapshot succeeded, resumed sending to ${m.from}`);
      } else {
        pr.pendingSnapshot = 0;
        pr.becomeProbe();
        r.logger.debug(`${r.id} snapshot failed, resumed sending to ${m.from}`);
      }
      // Wait for a heartbeat response before sending again (the follower may be busy).
      pr.msgAppFlowPaused = true;
      return;
    }
    case "unreachable":
      // An append was probably lost: stop optimistic pipelining.
      if (pr.state === "replicate") pr.becomeProbe();
      return;
    case "transfer-leader": {
      if (pr.isLearner) {
        r.logger.info(`${r.id} ignored transferring leadership to learner ${m.from}`);
        return;
      }
      const transferee = m.from;
      const last = r.leadTransferee;
      if (last !== NONE) {
        if (last === transferee) return;
        r.abortLeaderTransfer();
      }
      if (transferee === r.id) return;
      // The transfer must finish within one election timeout.
      r.electionElapsed = 0;
      r.leadTransferee = transferee;
      if (pr.match === r.raftLog.lastIndex()) {
        r.sendTimeoutNow(transferee);
      } else {
        r.sendAppend(transferee);
      }
      return;
    }
    default:
      return;
  }
}

/** Shared by candidates and pre-candidates. */
function stepCandidate(r: Raft, m: Message): void {
  const myVoteResp: MessageType = r.state === "pre-candidate" ? "pre-vote-resp" : "vote-resp";
  switch (m.type) {
    case "prop":
      throw new RaftError("no-leader", "no leader: an election is in progress; retry shortly");
    case "app":
      r.becomeFollower(m.term, m.from);
      r.handleAppendEntries(m);
      r.noteLeaderCommit(m);
      return;
    case "heartbeat":
      r.becomeFollower(m.term, m.from);
      r.handleHeartbeat(m);
      r.noteLeaderCommit(m);
      return;
    case "snap":
      r.becomeFollower(m.term, m.from);
      r.handleSnapshot(m);
      return;
    case "timeout-now":
      r.logger.debug(`${r.id} ignored timeout-now from ${m.from}: not a follower`);
      return;
    case "read-index":
      r.logger.debug(`${r.id} dropped read-index: no leader`);
      return;
    default:
      break;
  }
  if (m.type !== myVoteResp) return;
  const { granted, rejected, result } = r.poll(m.from, m.type, !m.reject);
  r.logger.info(`${r.id} has received ${granted} ${m.type} votes and ${rejected} rejections`);
  if (result === "won") {
    if (r.state === "pre-candidate") {
      r.campaign("election");
    } else {
      r.becomeLeader();
      r.bcastAppend();
    }
  } else if (result === "lost") {
    // A rejection carries the rejecter's term (possibly ours): go back to following.
    r.becomeFollower(r.term, NONE);
  }
}

function stepFollower(r: Raft, m: Message): void {
  switch (m.type) {
    case "prop":
      if (r.lead === NONE) {
        throw new RaftError("no-leader", "no leader is known; retry shortly");
      }
      if (r.cfg.disableProposalForwarding) {
        throw new RaftError(
          "proposal-dropped",
          "proposal forwarding is disabled; send to the leader",
        );
      }
      r.send({ ...m, term: 0, to: r.lead, from: r.id });
      return;
    case "app":
      r.electionElapsed = 0;
      r.lead = m.from;
      r.handleAppendEntries(m);
      r.noteLeaderCommit(m);
      return;
    case "heartbeat":
      r.electionElapsed = 0;
      r.lead = m.from;
      r.handleHeartbeat(m);
      r.noteLeaderCommit(m);
      return;
    case "snap":
      r.electionElapsed = 0;
      r.lead = m.from;
      r.handleSnapshot(m);
      return;
    case "transfer-leader":
      if (r.lead === NONE) {
        r.logger.info(`${r.id} no leader at term ${r.term}; dropping leader transfer msg`);
        return;
      }
      r.send({ ...m, term: 0, to: r.lead });
      return;
    case "timeout-now":
      r.logger.info(`${r.id} received timeout-now from ${m.from}; starting election at once`);
      // Leadership transfer: campaign now, without pre-vote, and past the voters' leases.
      r.hup(true);
      return;
    case "read-index":
      if (r.lead === NONE) {
        r.logger.info(`${r.id} no leader at term ${r.term}; dropping read-index`);
        return;
      }
      if (m.from === NONE || m.from === r.id) {
        // Our own request: remember it so that only the leader's answer to it counts.
        r.rememberForwardedRead(m.context);
        r.send({ ...m, term: 0, to: r.lead, from: r.id });
      } else {
        // Someone else's request that reached us: pass it on; the leader answers them directly.
        r.send({ ...m, term: 0, to: r.lead });
      }
      return;
    case "read-index-resp": {
      const key = ctxKey(m.context);
      // Only an answer to a request we forwarded and that is still pending counts; duplicated,
      // delayed or pre-restart answers are dropped.
      if (!r.pendingForwardedReads.has(key)) {
        r.logger.debug(`${r.id} dropped unexpected read-index-resp from ${m.from}`);
        return;
      }
      r.pendingForwardedReads.delete(key);
      r.readStates.push({ index: m.index, requestCtx: m.context });
      return;
    }
    default:
      return;
  }
}
