/**
 * The library API: createReplicator(options) gives a Replicator that replicates writes onto the
 * given Store across the cluster and reads from it.
 *
 * ```ts
 * const r = createReplicator({ nodeUrl, clusterUrls, store: new MemoryStore(), logDir, snapDir });
 * await r.start();
 * await r.save("set x 1");
 * const v = await r.load("get x"); // linearizable by default (bytes; TextDecoder gives text)
 * await r.stop();
 * ```
 */
import { mkdir } from "node:fs/promises";
import type { Readable } from "node:stream";
import { NexusError, StoreError, isNexusError } from "../errors/index.js";
import type { Message, NodeId } from "../raft/types.js";
import { Http2Transport } from "../transport/http2-transport.js";
import { PeerTls } from "../transport/peer-tls.js";
import { PeerAdmission, checkMemberScheme } from "./peer-admission.js";
import { RaftNode } from "./raft-node.js";
import { nodeIdOf, parseNodeUrl } from "./node-id.js";
import { probeUrl } from "./probe-url.js";
import { decodeMemberProgress, encodeMemberProgress } from "./member-progress.js";
import { SnapshotTransfers } from "./node-metrics.js";
import type { NormalizedOptions, ReplicatorOptions } from "./options.js";
import { normalizeOptions } from "./options.js";

/** How a read is served. */
export type ReadConsistency = "linearizable" | "lease" | "local";

export interface SaveOptions {
  /** Request arguments passed to the store (e.g. `db.index` for Redis, `params` for SQL). */
  readonly args?: Readonly<Record<string, string>>;
}

export interface LoadOptions extends SaveOptions {
  /** Default "linearizable" (or "lease" when the replicator was started with leaseBasedReads). */
  readonly consistency?: ReadConsistency;
}

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
   * when the leader's view was had (`fromLeader`); undefined otherwise.
   */
  readonly progress?: { readonly reachable: boolean; readonly match: number; readonly lag: number };
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

/** How a member is added. */
export interface AddMemberOptions {
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
  /**
   * Reads from the store; linearizable unless asked otherwise. `data`, like save()'s, is bytes or
   * a string (sent as UTF-8); the result is the store's bytes (`new TextDecoder().decode(r)`).
   */
  load(data: Uint8Array | string, opts?: LoadOptions): Promise<Uint8Array>;
  /**
   * The current members with their roles, and the leader's id ("" if unknown). During a joint
   * change (`joint`), members of the outgoing configuration are listed until it is left.
   */
  listMembers(): { leader: NodeId; members: MemberInfo[]; joint: boolean };
  /**
   * listMembers() with every member's progress, which only the leader tracks: on the leader, its
   * own; on another node, the leader's answer over the peer connection (`fromLeader` true). When
   * no leader is known or it does not answer within `timeoutMs` (default 1000), this node's own
   * view without progress (`fromLeader` false, `lastIndex` -1).
   */
  listMembersWithProgress(opts?: { timeoutMs?: number }): Promise<MembersWithProgress>;
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
  removeMember(url: string): Promise<void>;
  /**
   * Makes a learner a voter. Only the leader knows how far the learner is behind: elsewhere this
   * fails with NOT_LEADER naming the leader. Refused (MEMBERSHIP_REFUSED) for a non-learner,
   * while the learner does not answer the leader, or while it lags more than `maxLagEntries`
   * (default 1000) behind the leader's last index.
   */
  promoteLearner(url: string, opts?: { maxLagEntries?: number }): Promise<void>;
  /**
   * Several changes at once through joint consensus (Raft thesis §4.3), e.g. moving a replica
   * between data centres (add the new one, remove the old one) without ever passing through a
   * weaker quorum: every decision needs a quorum of the old voters and one of the new until the
   * joint configuration is left, which the leader does automatically (a new leader finishes it if
   * the old one fails). Resolves once the final configuration is applied on this node.
   */
  changeMembers(changes: MembershipChanges): Promise<void>;
  /**
   * Hands leadership to `url`, or to the most up-to-date voter that answers when omitted (then
   * only on the leader). Resolves with the new leader's id once it leads; TIMEOUT if it did not
   * happen within two election timeouts. Refused (MEMBERSHIP_REFUSED) for a learner, a
   * non-member, or (on the leader) a voter that does not answer.
   */
  transferLeadership(url?: string): Promise<NodeId>;
  /**
   * Runs a consistency check now: proposes a CHECK entry, then waits (at most `timeoutMs`,
   * default 10 s) until every member reported the digest of its store at that entry's index.
   * NO_LEADER when no leader takes the check (nothing proposed).
   */
  checkConsistency(opts?: { timeoutMs?: number }): Promise<ConsistencyCheckResult>;
  /**
   * Reads the peer TLS files again (the node also does when they change): new peer connections use
   * them, established ones are re-made. Returns whether anything changed. BAD_CONFIG, keeping the
   * certificates in use, when the files are unusable or the node has no peer TLS.
   */
  reloadPeerTls(): boolean;
}

const utf8 = new TextEncoder();

/** A request's data as bytes: a string is sent as UTF-8. INVALID_ARGUMENT for anything else. */
function bytesOf(data: unknown, call: string): Uint8Array {
  if (typeof data === "string") return utf8.encode(data);
  if (data instanceof Uint8Array) return data;
  throw new NexusError(
    "INVALID_ARGUMENT",
    `${call}() takes a string or a Uint8Array, got ${data === null ? "null" : typeof data}`,
  );
}

class ReplicatorImpl implements Replicator {
  private readonly o: NormalizedOptions;
  private node: RaftNode | undefined;
  private transport: Http2Transport | undefined;

  constructor(options: ReplicatorOptions) {
    this.o = normalizeOptions(options);
  }

  async start(): Promise<void> {
    if (this.node !== undefined)
      throw new NexusError("INVALID_ARGUMENT", "the replicator is already started");
    const o = this.o;
    await mkdir(o.snapDir, { recursive: true });
    await mkdir(o.logDir.replace(/\/[^/]+$/, ""), { recursive: true });
    const holder: { node?: RaftNode } = {};
    const pending: Message[][] = [];
    const admission = new PeerAdmission(o.nodeId, () => holder.node);
    const transfers = new SnapshotTransfers(() => o.metrics, o.snapDir, o.logger);
    const transport = new Http2Transport({
      id: o.nodeId,
      clusterName: o.clusterName,
      selfUrl: o.nodeUrl.url,
      idOfUrl: (url) => nodeIdOf(url),
      ...(o.peerTls === undefined ? {} : { tls: PeerTls.load(o.peerTls, o.nodeUrl.url) }),
      maxSnapshotBytes: o.maxSnapshotBytes,
      // Room for the largest entry a request can make, and for batches of small ones.
      maxFrameBytes: Math.max(64 * 1024 * 1024, 2 * o.maxRequestBytes + 1024 * 1024),
      listenHost: o.nodeUrl.hostname,
      listenPort: o.nodeUrl.port,
      handler: {
        onMessages: (msgs) =>
          holder.node === undefined ? pending.push(msgs) : holder.node.step(msgs),
        onUnreachable: (peer) => holder.node?.reportUnreachable(peer),
        onDropped: (msgs) => holder.node?.reportDropped(msgs),
        onSnapshot: async (m: Message, body: Readable) => {
          if (holder.node === undefined) {
            body.destroy();
            throw new NexusError("STOPPED", "the node is starting; retry");
          }
          await holder.node.receiveSnapshot(m, transfers.track("receive", m, body));
        },
        onSnapshotStatus: (peer, status) => holder.node?.reportSnapshot(peer, status),
        onProgressRequest: () => (holder.node === undefined ? undefined : this.progressView()),
        admitsSender: (from) => admission.admitsSender(from),
        checkSnapshot: (m) => admission.checkSnapshot(m),
      },
      openSnapshot: (m) => {
        if (holder.node === undefined) throw new NexusError("STOPPED", "the node is not running");
        return transfers.track("send", m, holder.node.openSnapshot(m));
      },
      // Dead peer connections are found within about two election timeouts.
      connectTimeoutMs: Math.max(2000, o.electionTickMs),
      pingIntervalMs: Math.max(500, Math.round(o.electionTickMs / 2)),
      pingTimeoutMs: Math.max(2000, 2 * o.electionTickMs),
      logger: o.logger,
    });
    await transport.start();
    this.transport = transport;
    const node = await RaftNode.open({
      id: o.nodeId,
      bootstrap: o.initialMember ? o.clusterUrls.map((u) => ({ id: nodeIdOf(u), url: u.url })) : [],
      walDir: o.logDir,
      walOptions: { maxWals: o.maxWals, onSync: (ms, bytes) => o.metrics.walSynced(ms, bytes) },
      snapDir: o.snapDir,
      snapshotCount: o.snapshotCount,
      snapshotCatchUpEntries: o.snapshotCatchUpEntries,
      maxSnapshots: o.maxSnapshots,
      store: o.store,
      transport,
      heartbeatTickMs: o.heartbeatTickMs,
      electionTick: o.electionTick,
      replTimeoutMs: o.replTimeoutMs,
      leaseBasedReads: o.leaseBasedReads,
      leaseDriftMargin: o.leaseDriftMargin,
      consistencyCheckIntervalMs: o.consistencyCheckIntervalMs,
      onDivergence: o.onDivergence,
      logger: o.logger,
      ...(o.crash === undefined ? {} : { crash: o.crash }),
      onFatal: (err) => {
        o.logger.error({ error: err.message }, "replicator stopped");
        o.onFatal?.(err);
      },
    });
    // Peers of the initial cluster are known before the log is applied.
    for (const u of o.clusterUrls) {
      const id = nodeIdOf(u);
      if (id !== o.nodeId) transport.addPeer(id, u.url);
    }
    this.node = node;
    holder.node = node;
    const view = { peers: () => transport.stats(), latestCheck: () => node.latestCheck() };
    o.metrics.attach({ ...view, transfers: () => transfers.list() });
    for (const m of pending) node.step(m);
    node.start();
  }

  private running(): RaftNode {
    if (this.node === undefined)
      throw new NexusError("STOPPED", "the replicator is not started; call start()");
    return this.node;
  }

  private checkSize(data: Uint8Array, args: Readonly<Record<string, string>>): void {
    let n = data.byteLength;
    for (const [k, v] of Object.entries(args)) n += k.length + v.length;
    if (n > this.o.maxRequestBytes) {
      throw new NexusError(
        "TOO_LARGE",
        `request of ${n} bytes exceeds the limit of ${this.o.maxRequestBytes} bytes (maxRequestBytes)`,
      );
    }
  }

  /** Refuses a request up front when this node's store is down: it could not answer it. */
  private checkStore(): void {
    const div = this.node?.divergence();
    if (div !== undefined) {
      throw new NexusError(
        "NOT_SERVING",
        `this replica diverged from the others (consistency check at index ${div.index}: ${div.reason}); ` +
          "nothing was done: send the request to another node, and rebuild this replica",
      );
    }
    const err = this.node?.storeError();
    if (err !== undefined) {
      throw new NexusError(
        "NOT_SERVING",
        `this node's store is unavailable (${err.message}); nothing was written: send the request to another node`,
      );
    }
  }

  async save(input: Uint8Array | string, opts: SaveOptions = {}): Promise<Uint8Array> {
    const data = bytesOf(input, "save");
    const args = opts.args ?? {};
    this.checkSize(data, args);
    this.checkStore();
    // A proposal refused for want of a leader wrote nothing: ride out a short election.
    const deadline = Date.now() + this.o.replTimeoutMs;
    for (;;) {
      try {
        const r = await this.running().propose(data, args);
        if (!r.ok) throw new StoreError(r.error);
        return r.data;
      } catch (err) {
        const retriable = isNexusError(err, "NO_LEADER") || isNexusError(err, "PROPOSAL_DROPPED");
        if (!retriable || Date.now() >= deadline) throw err;
        await new Promise((r) => setTimeout(r, Math.min(50, this.o.heartbeatTickMs)));
      }
    }
  }

  async load(input: Uint8Array | string, opts: LoadOptions = {}): Promise<Uint8Array> {
    const data = bytesOf(input, "load");
    const args = opts.args ?? {};
    this.checkSize(data, args);
    const node = this.running();
    this.checkStore();
    const consistency = opts.consistency ?? (this.o.leaseBasedReads ? "lease" : "linearizable");
    if (consistency === "lease") {
      // On the leader, within its lease: no round trip. Anywhere else, or without a valid lease
      // (just elected, paused past it, transferring leadership): the ReadIndex path below.
      const at = node.leaseReadIndex();
      if (at !== undefined) {
        await node.waitApplied(at, this.o.replTimeoutMs);
        return this.o.store.load({ data, args });
      }
    }
    if (consistency !== "local") {
      const deadline = Date.now() + this.o.replTimeoutMs;
      // A read request that never reached a leader, or went to one that lost its leadership, is
      // retried until the deadline (nothing was written).
      for (;;) {
        // Without a known leader a read request would be dropped: wait for one first.
        while (node.leader() === "" && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, Math.min(20, this.o.heartbeatTickMs)));
        }
        try {
          await node.readBarrier(Math.max(1, deadline - Date.now()));
          break;
        } catch (err) {
          if (!isNexusError(err, "NO_LEADER") || Date.now() >= deadline) throw err;
          await new Promise((r) => setTimeout(r, Math.min(10, this.o.heartbeatTickMs)));
        }
      }
    }
    return this.o.store.load({ data, args });
  }

  listMembers(): { leader: NodeId; members: MemberInfo[]; joint: boolean } {
    const node = this.running();
    const st = node.status();
    const joint = st.config.votersOutgoing.length > 0;
    const learners = new Set(st.config.learners);
    const ids = [
      ...new Set([...st.config.voters, ...st.config.learners, ...st.config.votersOutgoing]),
    ].sort();
    return {
      leader: st.softState.lead,
      joint,
      members: ids.map((id) => {
        const pr = st.progress?.get(id);
        const self = id === this.o.nodeId;
        return {
          id,
          url: node.members.get(id) ?? "",
          role: learners.has(id) ? "learner" : id === st.softState.lead ? "leader" : "follower",
          ...(pr === undefined
            ? {}
            : {
                progress: {
                  reachable: self || node.heardRecently(id),
                  match: self ? st.lastIndex : pr.match,
                  lag: self ? 0 : Math.max(0, st.lastIndex - pr.match),
                },
              }),
        };
      }),
    };
  }

  /** This node's member list with progress, encoded for a peer; undefined unless it leads. */
  private progressView(): Uint8Array | undefined {
    const st = this.running().status();
    if (st.progress === undefined || st.softState.lead !== this.o.nodeId) return undefined;
    const { members, joint } = this.listMembers();
    return encodeMemberProgress({
      leader: this.o.nodeId,
      term: st.hardState.term,
      lastIndex: st.lastIndex,
      joint,
      members,
    });
  }

  async listMembersWithProgress(opts: { timeoutMs?: number } = {}): Promise<MembersWithProgress> {
    const local = this.listMembers();
    const st = this.running().status();
    if (st.progress !== undefined && local.leader === this.o.nodeId) {
      return { ...local, fromLeader: true, lastIndex: st.lastIndex };
    }
    const own = { ...local, fromLeader: false, lastIndex: -1 };
    const transport = this.transport;
    if (local.leader === "" || transport === undefined) return own;
    try {
      const view = decodeMemberProgress(
        await transport.requestProgress(local.leader, opts.timeoutMs ?? 1000),
      );
      // Only an answer from the leader this node follows, in its term or later, is used.
      if (view.leader !== local.leader || view.term < st.hardState.term) return own;
      return {
        leader: view.leader,
        members: view.members,
        joint: view.joint,
        fromLeader: true,
        lastIndex: view.lastIndex,
      };
    } catch (err) {
      this.o.logger?.warn(
        {
          leader: local.leader,
          error: (err as Error).message,
        },
        "could not get the members' progress from the leader",
      );
      return own;
    }
  }

  /** The leader's URL as this node knows it, for NOT_LEADER messages. */
  private leaderHint(): string {
    const node = this.running();
    const lead = node.status().softState.lead;
    return lead === ""
      ? "no leader is known now"
      : `the leader is ${node.members.get(lead) ?? lead}`;
  }

  private describeMember(id: NodeId): string {
    const url = this.running().members.get(id);
    return url === undefined ? id : `${url} (${id})`;
  }

  /**
   * Refuses a change after which the voters that answer would not form a quorum: the cluster
   * could then commit nothing, not even the change back. On the leader "answers" means it heard
   * from the voter within the last election timeout; elsewhere, where no progress is known, each
   * voter's URL is probed. This node, the leader it follows, and `fresh` (new members whose URL
   * was just probed) count as answering. MEMBERSHIP_REFUSED names the silent voters.
   */
  private async checkQuorumAfter(
    voters: ReadonlySet<NodeId>,
    fresh: ReadonlySet<NodeId>,
  ): Promise<void> {
    const node = this.running();
    const st = node.status();
    const answers = async (id: NodeId): Promise<boolean> => {
      if (id === this.o.nodeId || fresh.has(id)) return true;
      if (st.progress !== undefined) return st.progress.has(id) && node.heardRecently(id);
      if (id === st.softState.lead) return true;
      const url = node.members.get(id);
      if (url === undefined) return false;
      return probeUrl(url, 1000).then(
        () => true,
        () => false,
      );
    };
    const ids = [...voters];
    const ok = await Promise.all(ids.map(answers));
    const silent = ids.filter((_, i) => !ok[i]);
    const reachable = ids.length - silent.length;
    const need = Math.floor(ids.length / 2) + 1;
    if (reachable < need) {
      throw new NexusError(
        "MEMBERSHIP_REFUSED",
        `after this change only ${reachable} of ${ids.length} voters would answer, fewer than the ${need} a quorum needs ` +
          `(not answering: ${silent.map((id) => this.describeMember(id)).join(", ")}); ` +
          "the cluster could not commit anything after it; bring members back first. Nothing changed",
      );
    }
  }

  /** Refuses a change while a joint configuration or another change is not finished. */
  private checkNoChangeInProgress(): void {
    const cfg = this.running().status().config;
    if (cfg.votersOutgoing.length > 0) {
      throw new NexusError(
        "MEMBERSHIP_REFUSED",
        "a joint membership change is in progress (it is left automatically once committed); " +
          "retry when listNodes shows it finished. Nothing changed",
      );
    }
  }

  /** Refuses to promote a learner that the leader does not hear from or that lags too far. */
  private checkCaughtUp(id: NodeId, url: string, maxLagEntries: number | undefined): void {
    const st = this.running().status();
    if (st.progress === undefined) {
      throw new NexusError(
        "NOT_LEADER",
        `only the leader knows whether ${url} has caught up; send the promotion to the leader (${this.leaderHint()})`,
      );
    }
    const pr = st.progress.get(id);
    const max = maxLagEntries ?? 1000;
    if (!Number.isSafeInteger(max) || max < 0) {
      throw new NexusError("INVALID_ARGUMENT", `maxLagEntries must be an integer >= 0, got ${max}`);
    }
    const lag = pr === undefined ? Number.POSITIVE_INFINITY : Math.max(0, st.lastIndex - pr.match);
    const silent = pr === undefined || !this.running().heardRecently(id);
    if (silent || lag > max) {
      throw new NexusError(
        "MEMBERSHIP_REFUSED",
        `${url} ${silent ? "does not answer the leader and " : ""}is ${Number.isFinite(lag) ? `${lag} entries` : "too far"} ` +
          `behind the leader (at most ${max} allowed); wait for it to catch up (listNodes shows its lag), then promote it. Nothing changed`,
      );
    }
  }

  async promoteLearner(url: string, opts: { maxLagEntries?: number } = {}): Promise<void> {
    const node = this.running();
    const u = parseNodeUrl(url);
    const id = nodeIdOf(u);
    const st = node.status();
    if (!st.config.learners.includes(id)) {
      throw new NexusError(
        "MEMBERSHIP_REFUSED",
        `${u.url} (${id}) is not a learner` +
          (st.config.voters.includes(id) ? " (it is already a voter)" : " (it is not a member)") +
          "; nothing changed",
      );
    }
    this.checkNoChangeInProgress();
    this.checkCaughtUp(id, u.url, opts.maxLagEntries);
    await this.checkQuorumAfter(new Set([...st.config.voters, id]), new Set());
    await this.retryNoLeader(() => node.changeMember("add-node", id, u.url));
  }

  async changeMembers(changes: MembershipChanges): Promise<void> {
    const node = this.running();
    const st = node.status();
    const members = new Set([...st.config.voters, ...st.config.learners]);
    const list: { type: "add-node" | "remove-node"; nodeId: NodeId; url: string }[] = [];
    const seen = new Set<NodeId>();
    for (const raw of changes.add ?? []) {
      const u = parseNodeUrl(raw);
      checkMemberScheme(this.o.nodeUrl, u);
      const id = nodeIdOf(u);
      if (st.config.voters.includes(id)) {
        throw new NexusError(
          "MEMBERSHIP_REFUSED",
          `${u.url} (${id}) is already a voter; nothing changed`,
        );
      }
      if (seen.has(id)) throw new NexusError("INVALID_ARGUMENT", `${u.url} is named twice`);
      seen.add(id);
      list.push({ type: "add-node", nodeId: id, url: u.url });
    }
    for (const raw of changes.remove ?? []) {
      const u = parseNodeUrl(raw);
      const id = nodeIdOf(u);
      if (!members.has(id)) {
        throw new NexusError(
          "MEMBERSHIP_REFUSED",
          `${u.url} (${id}) is not a member; nothing changed`,
        );
      }
      if (seen.has(id)) throw new NexusError("INVALID_ARGUMENT", `${u.url} is named twice`);
      seen.add(id);
      list.push({ type: "remove-node", nodeId: id, url: u.url });
    }
    if (list.length === 0) throw new NexusError("INVALID_ARGUMENT", "no membership change given");
    this.checkNoChangeInProgress();
    const voters = new Set(st.config.voters);
    for (const c of list) {
      if (c.type === "add-node") voters.add(c.nodeId);
      else voters.delete(c.nodeId);
    }
    if (voters.size === 0) {
      throw new NexusError(
        "MEMBERSHIP_REFUSED",
        "the change would leave no voter; nothing changed",
      );
    }
    const fresh = new Set<NodeId>();
    for (const c of list) {
      if (c.type !== "add-node") continue;
      if (st.config.learners.includes(c.nodeId)) {
        // A learner that has caught up, promoted as part of the change.
        this.checkCaughtUp(c.nodeId, c.url, changes.maxLagEntries);
      } else if (changes.probe !== false) {
        await probeUrl(c.url);
        fresh.add(c.nodeId);
      }
    }
    // Until the joint configuration is left, decisions need a quorum of the old voters and one
    // of the new.
    await this.checkQuorumAfter(new Set(st.config.voters), fresh);
    await this.checkQuorumAfter(voters, fresh);
    for (const c of list) if (c.type === "add-node") this.transport?.addPeer(c.nodeId, c.url);
    await this.retryNoLeader(() => node.changeMembers(list));
  }

  async transferLeadership(url?: string): Promise<NodeId> {
    const node = this.running();
    const st = node.status();
    let target: NodeId;
    if (url === undefined || url.trim() === "") {
      if (st.progress === undefined) {
        throw new NexusError(
          "NOT_LEADER",
          `choosing the most up-to-date voter needs the leader; ask the leader or name a node (${this.leaderHint()})`,
        );
      }
      let best: { id: NodeId; match: number } | undefined;
      for (const id of [...st.config.voters].sort()) {
        const pr = st.progress.get(id);
        if (id === this.o.nodeId || pr === undefined || !node.heardRecently(id)) continue;
        if (best === undefined || pr.match > best.match) best = { id, match: pr.match };
      }
      if (best === undefined) {
        throw new NexusError(
          "MEMBERSHIP_REFUSED",
          "there is no other voter that answers to hand leadership to; nothing changed",
        );
      }
      target = best.id;
    } else {
      const u = parseNodeUrl(url);
      target = nodeIdOf(u);
      if (!st.config.voters.includes(target)) {
        throw new NexusError(
          "MEMBERSHIP_REFUSED",
          `${u.url} (${target}) ` +
            (st.config.learners.includes(target)
              ? "is a learner; only a voter can lead (promote it first)"
              : "is not a member; only a voter can lead") +
            "; nothing changed",
        );
      }
      const pr = st.progress?.get(target);
      if (target !== this.o.nodeId && pr !== undefined && !node.heardRecently(target)) {
        throw new NexusError(
          "MEMBERSHIP_REFUSED",
          `${u.url} (${target}) does not answer the leader; it cannot take over now. Nothing changed`,
        );
      }
    }
    if (st.softState.lead === target) return target;
    if (st.softState.lead === "")
      throw new NexusError("NO_LEADER", "no leader is known now; retry");
    node.transferLeadership(target);
    const deadline = Date.now() + 2 * this.o.electionTickMs + this.o.replTimeoutMs;
    for (;;) {
      const lead = node.status().softState.lead;
      if (lead === target) return target;
      if (Date.now() > deadline) {
        throw new NexusError(
          "TIMEOUT",
          `leadership did not move to ${node.members.get(target) ?? target} in time (the leader is ${lead === "" ? "unknown" : (node.members.get(lead) ?? lead)}); it may be behind or unreachable`,
        );
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async addMember(url: string, opts: AddMemberOptions = {}): Promise<void> {
    const node = this.running();
    const u = parseNodeUrl(url);
    checkMemberScheme(this.o.nodeUrl, u);
    const id = nodeIdOf(u);
    const st = node.status();
    if (st.config.voters.includes(id) || st.config.votersOutgoing.includes(id)) {
      throw new NexusError(
        "MEMBERSHIP_REFUSED",
        `${u.url} (${id}) is already a member; nothing changed`,
      );
    }
    if (st.config.learners.includes(id)) {
      throw new NexusError(
        "MEMBERSHIP_REFUSED",
        `${u.url} (${id}) is already a member (a learner` +
          (opts.learner === true ? ")" : "; make it a voter with promoteNode)") +
          "; nothing changed",
      );
    }
    this.checkNoChangeInProgress();
    if (opts.probe !== false) await probeUrl(u.url);
    if (opts.learner !== true) {
      await this.checkQuorumAfter(
        new Set([...st.config.voters, id]),
        new Set(opts.probe !== false ? [id] : []),
      );
    }
    this.transport?.addPeer(id, u.url);
    await this.retryNoLeader(() =>
      node.changeMember(opts.learner === true ? "add-learner" : "add-node", id, u.url),
    );
  }

  async removeMember(url: string): Promise<void> {
    const node = this.running();
    const u = parseNodeUrl(url);
    const id = nodeIdOf(u);
    const st = node.status();
    if (![...st.config.voters, ...st.config.learners].includes(id)) {
      throw new NexusError(
        "MEMBERSHIP_REFUSED",
        `${u.url} (${id}) is not a member; nothing changed`,
      );
    }
    if (st.config.voters.length === 1 && st.config.voters[0] === id) {
      throw new NexusError("MEMBERSHIP_REFUSED", "cannot remove the last voter; nothing changed");
    }
    this.checkNoChangeInProgress();
    if (st.config.voters.includes(id)) {
      await this.checkQuorumAfter(new Set(st.config.voters.filter((v) => v !== id)), new Set());
    }
    await this.retryNoLeader(() => node.changeMember("remove-node", id, u.url));
  }

  private async retryNoLeader<T>(f: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + this.o.replTimeoutMs;
    for (;;) {
      try {
        return await f();
      } catch (err) {
        if (!isNexusError(err, "NO_LEADER") || Date.now() >= deadline) throw err;
        await new Promise((r) => setTimeout(r, Math.min(50, this.o.heartbeatTickMs)));
      }
    }
  }

  status(): ReplicatorStatus {
    const node = this.running();
    const st = node.status();
    return {
      id: this.o.nodeId,
      url: this.o.nodeUrl.url,
      role: st.softState.raftState,
      term: st.hardState.term,
      leader: st.softState.lead,
      commit: st.hardState.commit,
      lastIndex: st.lastIndex,
      applied: node.appliedIndex(),
      serving:
        st.softState.lead !== "" &&
        node.storeError() === undefined &&
        node.divergence() === undefined,
      notServingReason:
        node.divergence() !== undefined
          ? `this replica DIVERGED from the others at the consistency check of index ${node.divergence()!.index}: ${node.divergence()!.reason}`
          : node.storeError() !== undefined
            ? `the store is unavailable: ${node.storeError()!.message}`
            : st.softState.lead === ""
              ? "no leader is known (an election is in progress or there is no quorum)"
              : "",
      diverged: node.divergence(),
    };
  }

  async checkConsistency(opts: { timeoutMs?: number } = {}): Promise<ConsistencyCheckResult> {
    const node = this.running();
    const timeoutMs = opts.timeoutMs ?? 10_000;
    const deadline = Date.now() + timeoutMs;
    let index: number;
    for (;;) {
      try {
        index = await node.proposeCheck();
        break;
      } catch (err) {
        const retriable = isNexusError(err, "NO_LEADER") || isNexusError(err, "PROPOSAL_DROPPED");
        if (!retriable || Date.now() >= deadline) throw err;
        await new Promise((r) => setTimeout(r, Math.min(50, this.o.heartbeatTickMs)));
      }
    }
    const round = await node.waitCheck(index, Math.max(1, deadline - Date.now()));
    if (round === undefined) {
      throw new NexusError("INTERNAL", `the consistency check at index ${index} is not known here`);
    }
    return {
      index,
      complete: round.complete,
      members: round.members.map((m) => ({
        id: m.id,
        url: m.url,
        verdict: m.verdict,
        digest: m.report?.digest ?? "",
        reason: m.reason,
      })),
    };
  }

  reloadPeerTls(): boolean {
    if (this.transport === undefined)
      throw new NexusError("STOPPED", "the replicator is not started; call start()");
    return this.transport.reloadTls();
  }

  async stop(): Promise<void> {
    const node = this.node;
    this.node = undefined;
    await node?.stop();
    await this.transport?.stop();
    this.transport = undefined;
  }
}

/** Creates a replicator; validates the options at once (NexusError BAD_CONFIG). */
export function createReplicator(options: ReplicatorOptions): Replicator {
  return new ReplicatorImpl(options);
}
