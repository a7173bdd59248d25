/**
 * The data types of the Raft core: entries, hard state, configuration state, snapshots and
 * messages. These are plain values; the core never performs I/O on them. Other rooms (storage,
 * transport, node) persist and carry them.
 *
 * Terms and indexes are safe integers (checked where they cross a boundary). Node ids are opaque
 * strings to the core; the node layer uses 16 lowercase hex digits (the original's printed form).
 */

/** A node's identity inside the core. {@link NONE} means "no node". */
export type NodeId = string;

/** No node: no vote cast, no leader known. */
export const NONE: NodeId = "";

/**
 * The kind of a log entry.
 * - `normal`: application data (possibly empty: a new leader's no-op entry).
 * - `conf-change`: an encoded {@link ConfChange} (see `encodeConfChange`).
 */
export type EntryType = "normal" | "conf-change";

/** One log entry. Invariant: index >= 1, term >= 1 for every entry stored in a log. */
export interface Entry {
  readonly term: number;
  readonly index: number;
  readonly type: EntryType;
  readonly data: Uint8Array;
}

/** What a node must persist before it answers anyone: Raft §5.1, Figure 2 "persistent state". */
export interface HardState {
  readonly term: number;
  readonly vote: NodeId;
  readonly commit: number;
}

/**
 * The membership configuration. In a joint configuration (thesis §4.3) `votersOutgoing` is the
 * old voter set; `learnersNext` are nodes that become learners when the joint state is left
 * (they are voters in the outgoing configuration).
 */
export interface ConfState {
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
  readonly votersOutgoing: readonly NodeId[];
  readonly learnersNext: readonly NodeId[];
  /** Leave the joint configuration automatically once it is committed. */
  readonly autoLeave: boolean;
}

/** The type of a single membership change. */
export type ConfChangeType = "add-node" | "add-learner" | "remove-node";

/** One membership change of one node. */
export interface ConfChangeSingle {
  readonly type: ConfChangeType;
  readonly nodeId: NodeId;
}

/**
 * How several changes are made.
 * - `auto`: one change uses the simple protocol; several use joint consensus and leave it
 *   automatically.
 * - `implicit`: joint consensus, left automatically once committed.
 * - `explicit`: joint consensus, left only by an explicit empty ConfChange.
 */
export type ConfChangeTransition = "auto" | "implicit" | "explicit";

/**
 * A membership change proposal. An empty `changes` list means "leave the joint configuration".
 * `context` is opaque to the core (the node layer puts the new member's URL in it).
 */
export interface ConfChange {
  readonly transition: ConfChangeTransition;
  readonly changes: readonly ConfChangeSingle[];
  readonly context: Uint8Array;
}

/** What a snapshot covers. */
export interface SnapshotMetadata {
  readonly index: number;
  readonly term: number;
  readonly confState: ConfState;
}

/**
 * A snapshot. `data` is opaque to the core: the node layer may put the store's backup in it or
 * a small handle that names a snapshot file streamed separately.
 */
export interface Snapshot {
  readonly metadata: SnapshotMetadata;
  readonly data: Uint8Array;
}

/**
 * The type of a message. `hup`, `beat`, `prop`, `unreachable`, `snap-status` and
 * `check-quorum` are local (never sent over the network by a correct node).
 */
export type MessageType =
  | "hup"
  | "beat"
  | "prop"
  | "app"
  | "app-resp"
  | "vote"
  | "vote-resp"
  | "pre-vote"
  | "pre-vote-resp"
  | "snap"
  | "heartbeat"
  | "heartbeat-resp"
  | "unreachable"
  | "snap-status"
  | "check-quorum"
  | "transfer-leader"
  | "timeout-now"
  | "read-index"
  | "read-index-resp";

/**
 * A Raft message. Every field is present (with a zero value when unused) so that messages are
 * uniform for codecs and for `describeMessage`.
 */
export interface Message {
  readonly type: MessageType;
  readonly to: NodeId;
  readonly from: NodeId;
  readonly term: number;
  /** The term of the entry at `index` (app), or of the candidate's last entry (vote). */
  readonly logTerm: number;
  readonly index: number;
  readonly entries: readonly Entry[];
  /**
   * The commit index this node may advance to (app, heartbeat). On a heartbeat the leader clamps
   * it to what it knows the follower holds: min(match, committed).
   */
  readonly commit: number;
  /**
   * The leader's own commit index, never clamped (app, heartbeat); absent when unknown (other
   * message types, or a peer that predates the field). A follower never advances its commit
   * index by it: it only says how far the leader is (Raft.leaderCommitHeard).
   */
  readonly leaderCommit?: number | undefined;
  /**
   * With `leaderCommit`: how long ago (ms) the leader last heard from a majority of its voters,
   * set by the runtime as the message leaves (the core never sets or reads it); absent: 0. A
   * follower counts the hearing as that much older (src/node/leader-freshness.ts).
   */
  readonly leaderQuorumAgeMs?: number | undefined;
  readonly snapshot: Snapshot | undefined;
  readonly reject: boolean;
  readonly rejectHint: number;
  /** Opaque context: read request ids, the campaign-transfer marker, heartbeat read contexts. */
  readonly context: Uint8Array;
}

/**
 * The latest commit index a follower heard from the leader of its current term (app or
 * heartbeat), for reads with a staleness bound. The core keeps no clock: the runtime stamps the
 * time at which `count` changed.
 */
export interface LeaderCommitHeard {
  /** The term of the leader heard. */
  readonly term: number;
  /** The leader heard. */
  readonly lead: NodeId;
  /**
   * The highest commit index that leader sent in this term, and never below this node's own
   * commit index (a lower value, from a buggy or hostile peer, is raised to it).
   */
  readonly leaderCommit: number;
  /** Grows by one with every message that carried it (across terms): a new one is a new hearing. */
  readonly count: number;
}

/** The role of a node. */
export type StateType = "follower" | "pre-candidate" | "candidate" | "leader";

/** Volatile state that is useful to log or show but never persisted. */
export interface SoftState {
  readonly lead: NodeId;
  readonly raftState: StateType;
}

/**
 * The answer to a read request: once the state machine has applied `index`, a read for
 * `requestCtx` may be served from it (thesis §6.4).
 */
export interface ReadState {
  readonly index: number;
  readonly requestCtx: Uint8Array;
}

/** An empty byte array, shared (never mutated). */
export const EMPTY_BYTES: Uint8Array = new Uint8Array(0);

/** Builds a message with zero values for every field not given. */
export function createMessage(fields: Partial<Message> & Pick<Message, "type">): Message {
  return {
    to: NONE,
    from: NONE,
    term: 0,
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    snapshot: undefined,
    reject: false,
    rejectHint: 0,
    context: EMPTY_BYTES,
    ...fields,
  };
}

/** The empty hard state. */
export const EMPTY_HARD_STATE: HardState = Object.freeze({ term: 0, vote: NONE, commit: 0 });

/** The empty configuration. */
export const EMPTY_CONF_STATE: ConfState = Object.freeze({
  voters: [],
  learners: [],
  votersOutgoing: [],
  learnersNext: [],
  autoLeave: false,
});

/** Whether two hard states are equal. */
export function isHardStateEqual(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

/** Whether a hard state is the empty one. */
export function isEmptyHardState(h: HardState): boolean {
  return isHardStateEqual(h, EMPTY_HARD_STATE);
}

/** Whether a snapshot is empty (index 0). */
export function isEmptySnapshot(s: Snapshot | undefined): boolean {
  return s === undefined || s.metadata.index === 0;
}

/** Whether a message type is a response to another message. */
export function isResponseMessage(t: MessageType): boolean {
  return (
    t === "app-resp" ||
    t === "vote-resp" ||
    t === "pre-vote-resp" ||
    t === "heartbeat-resp" ||
    t === "read-index-resp" ||
    t === "unreachable"
  );
}

/** Whether a message type is generated locally and never crosses the network. */
export function isLocalMessage(t: MessageType): boolean {
  return (
    t === "hup" ||
    t === "beat" ||
    t === "unreachable" ||
    t === "snap-status" ||
    t === "check-quorum"
  );
}

/** Sum of the data sizes of entries, the measure of `maxSizePerMsg` and friends. */
export function entriesSize(ents: readonly Entry[]): number {
  let n = 0;
  for (const e of ents) n += e.data.byteLength;
  return n;
}
