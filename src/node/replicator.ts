/**
 * The library API: createReplicator(options) gives a Replicator that replicates writes onto the
 * given Store across the cluster and reads from it.
 *
 * ```ts
 * const r = createReplicator({ nodeUrl, clusterUrls, store: new MemoryStore(), logDir, snapDir });
 * await r.start();
 * await r.save(new TextEncoder().encode("set x 1"));
 * const v = await r.load(new TextEncoder().encode("get x")); // linearizable by default
 * await r.stop();
 * ```
 */
import { mkdir } from "node:fs/promises";
import type { Readable } from "node:stream";
import { NexusError, StoreError, isNexusError } from "../errors/index.js";
import type { Message, NodeId } from "../raft/types.js";
import { Http2Transport } from "../transport/http2-transport.js";
import { RaftNode } from "./raft-node.js";
import { nodeIdOf, parseNodeUrl } from "./node-id.js";
import { probeUrl } from "./probe-url.js";
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

/** A member as listMembers() reports it. */
export interface MemberInfo {
  readonly id: NodeId;
  readonly url: string;
  readonly role: "leader" | "follower" | "learner";
  /**
   * Progress, known only when this node is the leader: whether the member answered within the
   * last election timeout, the last index known replicated to it, and how far it lags the
   * leader's last index. Undefined elsewhere.
   */
  readonly progress?: { readonly reachable: boolean; readonly match: number; readonly lag: number };
}

/** Several membership changes made at once through joint consensus. */
export interface MembershipChanges {
  /** Voters to add (their URLs must answer). */
  readonly add?: readonly string[];
  /** Members to remove. */
  readonly remove?: readonly string[];
}

export interface ReplicatorStatus {
  readonly id: NodeId;
  readonly url: string;
  readonly role: string;
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
}

export interface Replicator {
  /** Opens the WAL and the store, starts listening for peers and joins the cluster. */
  start(): Promise<void>;
  /** Stops taking requests, fails pending ones with STOPPED, closes everything. */
  stop(): Promise<void>;
  /**
   * Replicates a write and resolves with the store's result once it is applied on this node.
   * Throws StoreError when the statement failed (on every replica alike), UnknownOutcomeError
   * after replTimeoutMs (the write may still be applied), NO_LEADER, STOPPED, TOO_LARGE.
   */
  save(data: Uint8Array, opts?: SaveOptions): Promise<Uint8Array>;
  /** Reads from the store; linearizable unless asked otherwise. */
  load(data: Uint8Array, opts?: LoadOptions): Promise<Uint8Array>;
  /** The current members with their roles, and the leader's id ("" if unknown). */
  listMembers(): { leader: NodeId; members: MemberInfo[] };
  status(): ReplicatorStatus;
  /**
   * Adds a member (a voter, or a learner with `{ learner: true }`). Its URL must answer; adding a
   * URL already present is refused. Resolves once the change is applied on this node.
   */
  addMember(url: string, opts?: { learner?: boolean }): Promise<void>;
  /** Removes a member; removing the leader works (it steps down). Unknown URLs are refused. */
  removeMember(url: string): Promise<void>;
  /**
   * Makes a learner a voter. Only the leader knows how far the learner is behind: elsewhere this
   * fails with NOT_LEADER naming the leader. Refused (MEMBERSHIP_REFUSED) while the learner lags
   * more than `maxLagEntries` (default 1000) behind the leader's last index.
   */
  promoteLearner(url: string, opts?: { maxLagEntries?: number }): Promise<void>;
  /**
   * Several changes at once through joint consensus, e.g. moving a replica between data centres
   * (add the new one, remove the old one) without ever passing through a weaker quorum.
   */
  changeMembers(changes: MembershipChanges): Promise<void>;
  /**
   * Hands leadership to `url`, or to the most up-to-date voter when omitted (then only on the
   * leader). Resolves with the new leader's id once it leads; TIMEOUT if it did not happen within
   * two election timeouts.
   */
  transferLeadership(url?: string): Promise<NodeId>;
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
    const transport = new Http2Transport({
      id: o.nodeId,
      clusterName: o.clusterName,
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
          await holder.node.receiveSnapshot(m, body);
        },
        onSnapshotStatus: (peer, status) => holder.node?.reportSnapshot(peer, status),
      },
      openSnapshot: (m) => {
        if (holder.node === undefined) throw new NexusError("STOPPED", "the node is not running");
        return holder.node.openSnapshot(m);
      },
      logger: o.logger,
    });
    await transport.start();
    this.transport = transport;
    const node = await RaftNode.open({
      id: o.nodeId,
      bootstrap: o.initialMember ? o.clusterUrls.map((u) => ({ id: nodeIdOf(u), url: u.url })) : [],
      walDir: o.logDir,
      walOptions: { maxWals: o.maxWals },
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
      logger: o.logger,
      onFatal: (err) => {
        o.logger.error("replicator stopped", { error: err.message });
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
    const err = this.node?.storeError();
    if (err !== undefined) {
      throw new NexusError(
        "NOT_SERVING",
        `this node's store is unavailable (${err.message}); nothing was written: send the request to another node`,
      );
    }
  }

  async save(data: Uint8Array, opts: SaveOptions = {}): Promise<Uint8Array> {
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

  async load(data: Uint8Array, opts: LoadOptions = {}): Promise<Uint8Array> {
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
      // Without a known leader a read request would be dropped: wait for one first.
      const deadline = Date.now() + this.o.replTimeoutMs;
      while (node.status().softState.lead === "" && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, Math.min(50, this.o.heartbeatTickMs)));
      }
      // A read request that never reached the leader is retried until the deadline.
      for (;;) {
        try {
          await node.readBarrier(Math.max(1, deadline - Date.now()));
          break;
        } catch (err) {
          if (!isNexusError(err, "NO_LEADER") || Date.now() >= deadline) throw err;
          await new Promise((r) => setTimeout(r, Math.min(50, this.o.heartbeatTickMs)));
        }
      }
    }
    return this.o.store.load({ data, args });
  }

  listMembers(): { leader: NodeId; members: MemberInfo[] } {
    const node = this.running();
    const st = node.status();
    const learners = new Set(st.config.learners);
    const ids = [
      ...new Set([...st.config.voters, ...st.config.learners, ...st.config.votersOutgoing]),
    ].sort();
    return {
      leader: st.softState.lead,
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
                  reachable: self || pr.recentActive,
                  match: self ? st.lastIndex : pr.match,
                  lag: self ? 0 : Math.max(0, st.lastIndex - pr.match),
                },
              }),
        };
      }),
    };
  }

  /** The leader's URL as this node knows it, for NOT_LEADER messages. */
  private leaderHint(): string {
    const node = this.running();
    const lead = node.status().softState.lead;
    return lead === ""
      ? "no leader is known now"
      : `the leader is ${node.members.get(lead) ?? lead}`;
  }

  /**
   * Refuses a change after which the reachable voters would not form a quorum (checked where the
   * progress is known, on the leader). `added` voters were just probed and count as reachable.
   */
  private checkQuorumAfter(voters: ReadonlySet<NodeId>, added: ReadonlySet<NodeId>): void {
    const st = this.running().status();
    if (st.progress === undefined) return;
    let reachable = 0;
    for (const id of voters) {
      if (id === this.o.nodeId || added.has(id) || st.progress.get(id)?.recentActive === true) {
        reachable++;
      }
    }
    const need = Math.floor(voters.size / 2) + 1;
    if (reachable < need) {
      throw new NexusError(
        "MEMBERSHIP_REFUSED",
        `after this change only ${reachable} of ${voters.size} voters would be reachable, fewer than the ${need} a quorum needs; ` +
          "bring members back first; nothing changed",
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
        `${u.url} (${id}) is not a learner${st.config.voters.includes(id) ? " (it already votes)" : ""}; nothing changed`,
      );
    }
    if (st.progress === undefined) {
      throw new NexusError(
        "NOT_LEADER",
        `only the leader knows whether ${u.url} has caught up; send promoteNode to the leader (${this.leaderHint()})`,
      );
    }
    const pr = st.progress.get(id);
    const lag = pr === undefined ? Infinity : st.lastIndex - pr.match;
    const max = opts.maxLagEntries ?? 1000;
    if (lag > max) {
      throw new NexusError(
        "MEMBERSHIP_REFUSED",
        `${u.url} is ${Number.isFinite(lag) ? `${lag} entries` : "too far"} behind the leader (at most ${max} allowed); wait for it to catch up, then promote it; nothing changed`,
      );
    }
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
    const added = new Set(list.filter((c) => c.type === "add-node").map((c) => c.nodeId));
    for (const c of list) if (c.type === "add-node") await probeUrl(c.url);
    // Joint consensus needs a quorum of the old voters and one of the new.
    this.checkQuorumAfter(new Set(st.config.voters), added);
    this.checkQuorumAfter(voters, added);
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
      for (const id of st.config.voters) {
        if (id === this.o.nodeId) continue;
        const m = st.progress.get(id)?.match ?? 0;
        if (best === undefined || m > best.match) best = { id, match: m };
      }
      if (best === undefined) {
        throw new NexusError("MEMBERSHIP_REFUSED", "there is no other voter to hand leadership to");
      }
      target = best.id;
    } else {
      const u = parseNodeUrl(url);
      target = nodeIdOf(u);
      if (!st.config.voters.includes(target)) {
        throw new NexusError(
          "MEMBERSHIP_REFUSED",
          `${u.url} (${target}) is not a voter; only a voter can lead`,
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

  async addMember(url: string, opts: { learner?: boolean } = {}): Promise<void> {
    const node = this.running();
    const u = parseNodeUrl(url);
    const id = nodeIdOf(u);
    const st = node.status();
    const present = [...st.config.voters, ...st.config.learners].includes(id);
    if (present && !(opts.learner !== true && st.config.learners.includes(id))) {
      throw new NexusError(
        "MEMBERSHIP_REFUSED",
        `${u.url} (${id}) is already a member; nothing changed`,
      );
    }
    await probeUrl(u.url);
    if (opts.learner !== true) {
      this.checkQuorumAfter(new Set([...st.config.voters, id]), new Set([id]));
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
    if (st.config.voters.includes(id)) {
      this.checkQuorumAfter(new Set(st.config.voters.filter((v) => v !== id)), new Set());
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
      serving: st.softState.lead !== "" && node.storeError() === undefined,
      notServingReason:
        node.storeError() !== undefined
          ? `the store is unavailable: ${node.storeError()!.message}`
          : st.softState.lead === ""
            ? "no leader is known (an election is in progress or there is no quorum)"
            : "",
    };
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
