/**
 * The library API's contract: the Replicator interface, the options its calls take, what they
 * return, and the events it emits. createReplicator() (replicator.ts) implements it.
 */
import type { NodeId } from "../raft/types.js";
import type { NodeEventMap } from "./node-events.js";
import type { RestoreOptions, RestoreResult } from "./cluster-restore.js";
import type { StalenessBound } from "./bounded-read.js";

export type { RestoreOptions, RestoreResult } from "./cluster-restore.js";
export type { StalenessBound } from "./bounded-read.js";

/**
 * How a read is served: "linearizable" (ReadIndex), "lease" (the leader's lease), "local" (this
 * store as it is), "bounded" (this store when within `LoadOptions.staleness`, bounded-read.ts).
 */
export type ReadConsistency = "linearizable" | "lease" | "local" | "bounded";

/**
 * What every call takes. `signal` ends the call's waiting: it rejects with the signal's reason
 * (an AbortError unless another reason was given). Aborted before the call, nothing is done. A
 * save or membership change aborted after it was proposed may still take effect, as after a
 * timeout: read or list the members before retrying. A leadership transfer already asked for
 * may still happen.
 */
export interface CallOptions {
  readonly signal?: AbortSignal | undefined;
}

/** Events a Replicator emits (see Replicator.on). */
export type ReplicatorEvents = NodeEventMap;

export interface SaveOptions extends CallOptions {
  /** Request arguments passed to the store (e.g. `db.index` for Redis, `params` for SQL). */
  readonly args?: Readonly<Record<string, string>>;
  /**
   * A request id of the client's (1 to 128 printable ASCII characters, e.g. a UUID): the save
   * applies at most once per id, and a save repeating a recorded id gets the first result (from
   * any node, after restarts and restores) instead of applying again; the same id with another
   * payload is refused. Ids are remembered for the store's request window (default 10 minutes);
   * a retry issued longer ago than that is refused. With an id, save() retries by itself on
   * UNKNOWN_OUTCOME and lost leaders, with the same id, for `retryForMs`.
   */
  readonly requestId?: string;
  /**
   * When the request was first issued, in ms since the epoch (default: now). Give the same value
   * on every retry of one request: the request window counts from it.
   */
  readonly issuedAtMs?: number;
  /** Picks a random request id (unless `requestId` is given) and retries as it says. */
  readonly idempotent?: boolean;
  /** How long a save with a request id keeps retrying, in ms from `issuedAtMs`. Default 60 000. */
  readonly retryForMs?: number;
}

/** What saveWithIndex() returns. */
export interface SaveResult {
  /** The store's result (what save() returns). */
  readonly data: Uint8Array;
  /**
   * The log index the save committed at; for a repeat of a recorded request id, the index of the
   * entry that first applied it. A load with `{ minIndex: index }` on any node sees the save.
   */
  readonly index: number;
}

export interface LoadOptions extends CallOptions {
  /** Request arguments passed to the store (e.g. `db.index` for Redis, `params` for SQL). */
  readonly args?: Readonly<Record<string, string>>;
  /** Default "linearizable" (or "lease" when the replicator was started with leaseBasedReads). */
  readonly consistency?: ReadConsistency;
  /**
   * With consistency "bounded" (required then, INVALID_ARGUMENT without a limit): how far behind
   * the leader this node may be to serve the load from its own store, with no round trip.
   * Beyond it: TOO_STALE, or ReadIndex with `onStale: "linearizable"`.
   */
  readonly staleness?: StalenessBound;
  /**
   * Read-your-writes without a round trip to the leader: wait until this node has applied this
   * log index (a SaveResult's `index`), then read its store as it is. Without `consistency`,
   * that is the whole read; with it, that read mode follows the wait. TIMEOUT when the node does
   * not reach the index within replTimeoutMs (nothing was read: retry, or read elsewhere);
   * INVALID_ARGUMENT unless a safe integer >= 0.
   */
  readonly minIndex?: number;
}

/**
 * A client's session on a Replicator (Replicator.session()): it remembers the highest log index
 * its saves committed at, and its loads wait for that index on this node (LoadOptions.minIndex),
 * so a load always sees the session's own saves, with no round trip to the leader.
 */
export interface Session {
  /** The highest index this session saw (0 before its first save). */
  readonly lastIndex: number;
  /** Replicator.save(), remembering the index it committed at. */
  save(data: Uint8Array | string, opts?: SaveOptions): Promise<Uint8Array>;
  /**
   * Replicator.load() with `minIndex` at least the session's `lastIndex`: without `consistency`,
   * a read of this node's store once it holds the session's saves.
   */
  load(data: Uint8Array | string, opts?: LoadOptions): Promise<Uint8Array>;
  /** Takes an index seen elsewhere (e.g. another session's save) into account. */
  observe(index: number): void;
}

/**
 * Whether a request id committed (Replicator.requestOutcome), read from the store's request
 * records after a read barrier: `at` is the index this node had applied when it looked.
 */
export type RequestOutcome =
  | {
      readonly committed: true;
      /** The index of the entry that applied the request. */
      readonly index: number;
      /** Its result: the store's answer, or the statement's error (the same on every replica). */
      readonly result:
        | { readonly ok: true; readonly data: Uint8Array }
        | { readonly ok: false; readonly error: string };
      readonly at: number;
    }
  | {
      /**
       * No record: the id did not commit up to `at` (a save still in flight may commit later),
       * or its record outlived the request window and was purged.
       */
      readonly committed: false;
      readonly at: number;
    };

/** This node's Raft role (Raft §5.1; a pre-candidate runs a pre-vote first, thesis §9.6). */
export type NodeRole = "follower" | "pre-candidate" | "candidate" | "leader";

/** A member's role as listMembers() reports it: a learner receives entries but never votes. */
export type MemberRole = "leader" | "follower" | "learner";

/** A member as listMembers() reports it. */
export interface MemberInfo {
  readonly id: NodeId;
  readonly url: string;
  readonly role: MemberRole;
  /**
   * Progress, which only the leader tracks: whether the member answered the leader within the
   * last election timeout, the last index known replicated to it, and how far it lags the
   * leader's last index. Set by listMembers() on the leader, and by listMembersWithProgress()
   * when the leader's view was had (`fromLeader`); undefined otherwise. `snapshot` is set while
   * the leader sends the member a snapshot (it is too far behind for entries).
   */
  readonly progress?: {
    readonly reachable: boolean;
    readonly match: number;
    readonly lag: number;
    readonly snapshot?: MemberSnapshotProgress;
  };
}

/**
 * A snapshot the leader is sending to a member, as listMembers() reports it: the snapshot's log
 * index and the bytes streamed so far. `totalBytes` (the snapshot file's size) is undefined until
 * the leader has read it, and `bytes` 0 until the stream has started.
 */
export interface MemberSnapshotProgress {
  readonly index: number;
  readonly bytes: number;
  readonly totalBytes?: number;
}

/** What listMembersWithProgress() returns. */
export interface MembersWithProgress {
  readonly leader: NodeId;
  readonly members: readonly MemberInfo[];
  readonly joint: boolean;
  /** Whether `members` carry the leader's progress (false: no leader answered). */
  readonly fromLeader: boolean;
  /** The leader's last index when `fromLeader`, else -1. */
  readonly lastIndex: number;
}

/** Several membership changes made at once through joint consensus. */
export interface MembershipChanges {
  /**
   * Voters to add. A new member's URL must answer (unless `probe` is false); a learner named here
   * is promoted, which needs the leader and is refused while it lags (see promoteLearner).
   */
  readonly add?: readonly string[];
  /** Members to remove. */
  readonly remove?: readonly string[];
  /** Check that each new member's URL answers first. Default true. */
  readonly probe?: boolean;
  /** For a learner promoted here: the largest lag allowed, in entries. Default 1000. */
  readonly maxLagEntries?: number;
}

/** What listMembers() returns. */
export interface MemberList {
  /** The leader's id ("" if unknown). */
  readonly leader: NodeId;
  readonly members: MemberInfo[];
  /** A joint configuration is in effect. */
  readonly joint: boolean;
}

/** Options of listMembersWithProgress(). */
export interface ListMembersOptions extends CallOptions {
  /** How long to wait for the leader's answer, in ms. Default 1000. */
  readonly timeoutMs?: number;
}

/** Options of checkConsistency(). */
export interface CheckConsistencyOptions extends CallOptions {
  /** How long to wait for every member's report, in ms. Default 10 000. */
  readonly timeoutMs?: number;
}

/** Options of promoteLearner() and of a learner promoted through changeMembers(). */
export interface PromoteLearnerOptions extends CallOptions {
  /** The largest lag allowed, in entries. Default 1000. */
  readonly maxLagEntries?: number;
}

/** How a member is added. */
export interface AddMemberOptions extends CallOptions {
  /** Add a learner: it receives every entry but never votes and never counts toward a commit. */
  readonly learner?: boolean;
  /**
   * Check first that something answers at the URL (a TCP connection within 2 s). Default true.
   * False adds a node that is not running yet (launch it afterwards); until it answers it
   * counts as unreachable, so a voter is refused when the voters that answer would then be
   * fewer than a quorum.
   */
  readonly probe?: boolean;
}

export interface ReplicatorStatus {
  readonly id: NodeId;
  readonly url: string;
  readonly role: NodeRole;
  readonly term: number;
  readonly leader: NodeId;
  readonly commit: number;
  /** The last index in this node's log. */
  readonly lastIndex: number;
  readonly applied: number;
  /** Whether this node can serve requests now: a leader is known and the store is healthy. */
  readonly serving: boolean;
  /** Why it cannot serve, when it cannot. */
  readonly notServingReason: string;
  /** Set when a consistency check found that this replica diverged from the majority. */
  readonly diverged: { readonly index: number; readonly reason: string } | undefined;
}

/** One member's standing in a consistency check. */
export interface MemberConsistency {
  readonly id: NodeId;
  readonly url: string;
  /**
   * ok: agrees with the majority; diverged: differs from it; pending: no report (yet);
   * undecided: reported, but no value has a majority.
   */
  readonly verdict: "ok" | "diverged" | "pending" | "undecided";
  /** The store digest it reported ("" when none). */
  readonly digest: string;
  /** Why it diverged ("" otherwise). */
  readonly reason: string;
}

/** The result of a consistency check. */
export interface ConsistencyCheckResult {
  /** The log index at which every replica digested its store. */
  readonly index: number;
  /** Every member reported. */
  readonly complete: boolean;
  readonly members: readonly MemberConsistency[];
}

/** A backup being streamed from a node (Replicator.backup). */
export interface ReplicatedBackup {
  readonly storeKind: string;
  readonly clusterName: string;
  /** The index and term of the last entry the data includes. */
  readonly index: number;
  readonly term: number;
  /** The members at that index. */
  readonly members: readonly { id: NodeId; url: string; role: "voter" | "learner" }[];
  /** The store's backup data. */
  readonly stream: AsyncIterable<Uint8Array>;
}

export interface Replicator {
  /** Opens the WAL and the store, starts listening for peers and joins the cluster. */
  start(): Promise<void>;
  /** Stops taking requests, fails pending ones with STOPPED, closes everything. */
  stop(): Promise<void>;
  /**
   * Replicates a write and resolves with the store's result once it is applied on this node.
   * `data` is bytes or a string (sent as UTF-8), e.g. an SQL statement for SqliteStore.
   * Throws StoreError when the statement failed (on every replica alike), UnknownOutcomeError
   * after replTimeoutMs (the write may still be applied), NO_LEADER, STOPPED, TOO_LARGE.
   */
  save(data: Uint8Array | string, opts?: SaveOptions): Promise<Uint8Array>;
  /** save(), also giving the log index the save committed at (see SaveResult). */
  saveWithIndex(data: Uint8Array | string, opts?: SaveOptions): Promise<SaveResult>;
  /** A new session for read-your-writes on this node (see Session). */
  session(): Session;
  /**
   * Whether a save with request id `id` committed, and with what result (see RequestOutcome).
   * Linearizable (a read barrier first): it covers every save acknowledged before the call.
   * INVALID_ARGUMENT for a malformed id, BAD_CONFIG when the store keeps no request records.
   */
  requestOutcome(id: string, opts?: CallOptions): Promise<RequestOutcome>;
  /**
   * Reads from the store; linearizable unless asked otherwise. `data`, like save()'s, is bytes or
   * a string (sent as UTF-8); the result is the store's bytes (`new TextDecoder().decode(r)`).
   */
  load(data: Uint8Array | string, opts?: LoadOptions): Promise<Uint8Array>;
  /**
   * The current members with their roles, and the leader's id ("" if unknown). During a joint
   * change (`joint`), members of the outgoing configuration are listed until it is left.
   */
  listMembers(): MemberList;
  /**
   * listMembers() with every member's progress, which only the leader tracks: on the leader, its
   * own; on another node, the leader's answer over the peer connection (`fromLeader` true). When
   * no leader is known or it does not answer within `timeoutMs` (default 1000), this node's own
   * view without progress (`fromLeader` false, `lastIndex` -1).
   */
  listMembersWithProgress(opts?: ListMembersOptions): Promise<MembersWithProgress>;
  status(): ReplicatorStatus;
  /**
   * Adds a member: a voter, or a learner with `{ learner: true }`. Its URL must answer unless
   * `probe` is false. Resolves once the change is applied on this node. MEMBERSHIP_REFUSED, with
   * nothing changed: the URL is already a member, it does not answer, another change is in
   * progress, or the voters that answer would be fewer than a quorum afterwards. UNKNOWN_OUTCOME
   * when it was proposed but not applied in time (list the members before retrying).
   */
  addMember(url: string, opts?: AddMemberOptions): Promise<void>;
  /**
   * Removes a member. Removing the leader works: it commits the change, steps down, and the
   * others elect a leader (the removed node then hears from no one: stop it). Refused
   * (MEMBERSHIP_REFUSED, nothing changed) for an unknown URL, the last voter, while another
   * change is in progress, or when the voters that answer would be fewer than a quorum.
   */
  removeMember(url: string, opts?: CallOptions): Promise<void>;
  /**
   * Makes a learner a voter. Only the leader knows how far the learner is behind: elsewhere this
   * fails with NOT_LEADER naming the leader. Refused (MEMBERSHIP_REFUSED) for a non-learner,
   * while the learner does not answer the leader, or while it lags more than `maxLagEntries`
   * (default 1000) behind the leader's last index.
   */
  promoteLearner(url: string, opts?: PromoteLearnerOptions): Promise<void>;
  /**
   * Several changes at once through joint consensus (Raft thesis §4.3), e.g. moving a replica
   * between data centres (add the new one, remove the old one) without ever passing through a
   * weaker quorum: every decision needs a quorum of the old voters and one of the new until the
   * joint configuration is left, which the leader does automatically (a new leader finishes it if
   * the old one fails). Resolves once the final configuration is applied on this node.
   */
  changeMembers(changes: MembershipChanges, opts?: CallOptions): Promise<void>;
  /**
   * Hands leadership to `url`, or to the most up-to-date voter that answers when omitted (then
   * only on the leader). Resolves with the new leader's id once it leads; TIMEOUT if it did not
   * happen within two election timeouts. Refused (MEMBERSHIP_REFUSED) for a learner, a
   * non-member, or (on the leader) a voter that does not answer.
   */
  transferLeadership(url?: string, opts?: CallOptions): Promise<NodeId>;
  /**
   * Runs a consistency check now: proposes a CHECK entry, then waits (at most `timeoutMs`,
   * default 10 s) until every member reported the digest of its store at that entry's index.
   * NO_LEADER when no leader takes the check (nothing proposed).
   */
  checkConsistency(opts?: CheckConsistencyOptions): Promise<ConsistencyCheckResult>;
  /**
   * A consistent copy of the replicated state at one log index, streamed: by default after a
   * read barrier (linearizable: it holds every save acknowledged before the call); "local" backs
   * up this node's store as it is. Consume `stream` fully or call `return()` on its iterator.
   */
  backup(opts?: { consistency?: "linearizable" | "local" }): Promise<ReplicatedBackup>;
  /**
   * Replaces the replicated state with a backup (a file written by `nexus backup`, or its bytes
   * as a stream), on every replica at one log index: the commit entry's, returned. Saves
   * committed before that index are replaced; saves after it apply to the restored state. The
   * file is checked here first; then it is replicated in chunks (each staged on every replica)
   * and committed. Refused with nothing changed on any replica: CORRUPTED (damaged file),
   * INVALID_ARGUMENT (another store kind, a newer format), PROPOSAL_DROPPED or NO_LEADER (the
   * chunk stream was interrupted: run it again). UNKNOWN_OUTCOME when the commit was proposed but
   * not applied here within replTimeoutMs plus 1 s per MiB of backup (it may still take effect:
   * look before running again).
   */
  restore(
    source: string | AsyncIterable<Uint8Array>,
    opts?: RestoreOptions,
  ): Promise<RestoreResult>;
  /**
   * Reads the peer TLS files again (the node also does when they change): new peer connections use
   * them, established ones are re-made. Returns whether anything changed. BAD_CONFIG, keeping the
   * certificates in use, when the files are unusable or the node has no peer TLS.
   */
  reloadPeerTls(): boolean;
  /**
   * Calls `listener` on every `event` this node sees, until the returned function is called;
   * listeners stay across stop() and start(). "leader-change": the leader this node follows
   * changed ("" while none is known); "membership-change": a configuration took effect here;
   * "divergence": a consistency check found this replica diverged (see status().diverged).
   * Listeners run in the node's event loop turn: keep them short; one that throws is logged.
   */
  on<K extends keyof ReplicatorEvents>(
    event: K,
    listener: (e: ReplicatorEvents[K]) => void,
  ): () => void;
  /** Stops calling `listener`. */
  off<K extends keyof ReplicatorEvents>(event: K, listener: (e: ReplicatorEvents[K]) => void): void;
}
