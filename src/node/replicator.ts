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
import { randomBytes, randomUUID } from "node:crypto";
import { mkdir, open, rm } from "node:fs/promises";
import { join } from "node:path";
import { NexusError, StoreError } from "../errors/index.js";
import type { NodeId } from "../raft/types.js";
import type { Http2Transport } from "../transport/http2-transport.js";
import { checkMemberScheme } from "./peer-admission.js";
import type { RaftNode } from "./raft-node.js";
import { nodeIdOf, parseNodeUrl } from "./node-id.js";
import { probeUrl } from "./probe-url.js";
import { memberListOf, membersWithProgress, progressViewOf } from "./member-progress.js";
import type { SnapshotTransfers } from "./node-metrics.js";
import type { NormalizedOptions, ReplicatorOptions } from "./options.js";
import { normalizeOptions } from "./options.js";
import {
  checkAddable,
  checkCaughtUp,
  checkPromotable,
  checkQuorumAfter,
  checkRemovable,
  checkTransferTarget,
  chooseTransferTarget,
  planChanges,
} from "./membership-policy.js";
import type { MembershipView } from "./membership-policy.js";
import { abortable, retryUnwritten } from "./retry.js";
import { NodeEvents } from "./node-events.js";
import type { TestHooks } from "./test-hooks.js";

export type {
  ReadConsistency,
  StalenessBound,
  CallOptions,
  ReplicatorEvents,
  SaveOptions,
  SaveResult,
  Session,
  RequestOutcome,
  LoadOptions,
  NodeRole,
  MemberRole,
  MemberInfo,
  MemberSnapshotProgress,
  MembersWithProgress,
  MembershipChanges,
  MemberList,
  ListMembersOptions,
  CheckConsistencyOptions,
  PromoteLearnerOptions,
  AddMemberOptions,
  ReplicatorStatus,
  MemberConsistency,
  ConsistencyCheckResult,
  ReplicatedBackup,
  RestoreOptions,
  RestoreResult,
  Replicator,
} from "./replicator-api.js";
import type {
  CallOptions,
  ReplicatorEvents,
  SaveOptions,
  SaveResult,
  Session,
  RequestOutcome,
  LoadOptions,
  MembersWithProgress,
  MembershipChanges,
  MemberList,
  ListMembersOptions,
  CheckConsistencyOptions,
  PromoteLearnerOptions,
  AddMemberOptions,
  ReplicatorStatus,
  ConsistencyCheckResult,
  ReplicatedBackup,
  Replicator,
  RestoreOptions,
  RestoreResult,
} from "./replicator-api.js";
import { restoreIntoCluster } from "./cluster-restore.js";
import { saveWithRequestId } from "./request-save.js";
import { servesWithinBound } from "./bounded-read.js";
import { createSession } from "./session.js";
import { validateRequestId } from "../store/request-records.js";
import { hasRequestRecords } from "../store/store.js";
import { startNode } from "./node-startup.js";
import type { StartedNode } from "./node-startup.js";

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
  /** Validated options; at start, the timing measured when it was "auto". */
  private o: NormalizedOptions;
  private node: RaftNode | undefined;
  private transport: Http2Transport | undefined;
  /** The running node's wiring (its timers stop with it). */
  private started: StartedNode | undefined;
  /** Snapshot streams in flight (set at start). */
  private transfers: SnapshotTransfers | undefined;
  private readonly events: NodeEvents<ReplicatorEvents>;
  private readonly testHooks: TestHooks | undefined;

  constructor(options: ReplicatorOptions, testHooks: TestHooks | undefined) {
    this.o = normalizeOptions(options);
    this.testHooks = testHooks;
    this.events = new NodeEvents<ReplicatorEvents>(this.o.logger);
  }

  on<K extends keyof ReplicatorEvents>(
    event: K,
    listener: (e: ReplicatorEvents[K]) => void,
  ): () => void {
    return this.events.on(event, listener);
  }

  off<K extends keyof ReplicatorEvents>(
    event: K,
    listener: (e: ReplicatorEvents[K]) => void,
  ): void {
    this.events.off(event, listener);
  }

  async start(): Promise<void> {
    if (this.node !== undefined)
      throw new NexusError("INVALID_ARGUMENT", "the replicator is already started");
    const started = await startNode(this.o, {
      testHooks: this.testHooks,
      events: this.events,
      progressView: () => this.progressView(),
      members: () => this.listMembers().members,
    });
    this.o = started.options;
    this.started = started;
    this.transport = started.transport;
    this.transfers = started.transfers;
    this.node = started.node;
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
    return (await this.saveWithIndex(input, opts)).data;
  }

  session(): Session {
    return createSession(this);
  }

  async requestOutcome(id: string, opts: CallOptions = {}): Promise<RequestOutcome> {
    opts.signal?.throwIfAborted();
    validateRequestId(id);
    const store = this.o.store;
    if (!hasRequestRecords(store)) {
      throw new NexusError(
        "BAD_CONFIG",
        `the ${store.kind} store keeps no request records: it cannot tell a request's outcome`,
      );
    }
    const node = this.running();
    this.checkStore();
    await this.readBarrier(node, opts.signal);
    const at = node.appliedIndex();
    const rec = await abortable(store.requestRecord(id), opts.signal);
    if (rec === undefined) return { committed: false, at };
    return { committed: true, index: rec.index, result: rec.result, at };
  }

  async saveWithIndex(input: Uint8Array | string, opts: SaveOptions = {}): Promise<SaveResult> {
    opts.signal?.throwIfAborted();
    const data = bytesOf(input, "save");
    const args = opts.args ?? {};
    this.checkSize(data, args);
    const id = opts.requestId ?? (opts.idempotent === true ? randomUUID() : undefined);
    if (id !== undefined) return this.saveOnce(data, args, id, opts);
    this.checkStore();
    // A proposal refused for want of a leader wrote nothing: ride out a short election.
    return this.retryUnwritten(async () => {
      const r = await this.running().propose(data, args);
      if (!r.ok) throw new StoreError(r.error);
      return { data: r.data, index: r.index };
    }, opts.signal);
  }

  /** A save with a request id: applied at most once, retried with it (request-save.ts). */
  private saveOnce(
    data: Uint8Array,
    args: Readonly<Record<string, string>>,
    id: string,
    opts: SaveOptions,
  ): Promise<SaveResult> {
    return saveWithRequestId(id, opts, {
      heartbeatTickMs: this.o.heartbeatTickMs,
      attempt: (request) => {
        this.checkStore();
        return this.running().propose(data, args, "command", undefined, request);
      },
    });
  }

  async load(input: Uint8Array | string, opts: LoadOptions = {}): Promise<Uint8Array> {
    const signal = opts.signal;
    signal?.throwIfAborted();
    const data = bytesOf(input, "load");
    const args = opts.args ?? {};
    this.checkSize(data, args);
    const node = this.running();
    this.checkStore();
    if (opts.minIndex !== undefined) {
      await this.waitMinIndex(node, opts.minIndex, signal);
      if (opts.consistency === undefined)
        return abortable(this.o.store.load({ data, args }), signal);
    }
    const consistency = opts.consistency ?? (this.o.leaseBasedReads ? "lease" : "linearizable");
    if (consistency === "lease") {
      // On the leader, within its lease: no round trip. Anywhere else, or without a valid lease
      // (just elected, paused past it, transferring leadership): the ReadIndex path below, in a
      // lease round that a leader holding its lease answers without a heartbeat round.
      const at = node.leaseReadIndex();
      if (at !== undefined) {
        await abortable(node.waitApplied(at, this.o.replTimeoutMs), signal);
        return abortable(this.o.store.load({ data, args }), signal);
      }
    }
    // Within the caller's staleness bound: this store as it is; beyond it, refused or ReadIndex.
    if (
      consistency === "bounded" &&
      servesWithinBound(opts.staleness, node.staleness(), this.o.electionTickMs)
    ) {
      return abortable(this.o.store.load({ data, args }), signal);
    }
    if (consistency !== "local") await this.readBarrier(node, signal, consistency === "lease");
    return abortable(this.o.store.load({ data, args }), signal);
  }

  /**
   * A read-your-writes point (LoadOptions.minIndex): waits until this node's store has applied
   * `minIndex`, with no round trip to the leader. TIMEOUT after replTimeoutMs.
   */
  private async waitMinIndex(
    node: RaftNode,
    minIndex: number,
    signal?: AbortSignal,
  ): Promise<void> {
    if (!Number.isSafeInteger(minIndex) || minIndex < 0) {
      throw new NexusError(
        "INVALID_ARGUMENT",
        `minIndex must be a log index (an integer >= 0), got ${String(minIndex)}`,
      );
    }
    await abortable(node.waitApplied(minIndex, this.o.replTimeoutMs), signal);
  }

  /**
   * Waits until this node has applied everything committed when it was called (ReadIndex). A read
   * request that never reached a leader, or went to one that lost its leadership, is retried until
   * the replication timeout (nothing was written). Without a known leader a read request would be
   * dropped: wait for one first. With `lease` (a lease read on a node holding no valid lease), a
   * leader holding its lease confirms the read without a heartbeat round.
   */
  private async readBarrier(node: RaftNode, signal?: AbortSignal, lease = false): Promise<void> {
    await retryUnwritten(
      async (remainingMs) => {
        await node.events.waitFor("leader-change", () => node.leader() !== "", {
          timeoutMs: remainingMs,
          onTimeout: () =>
            new NexusError("NO_LEADER", "no leader is known to confirm the read; retry"),
          signal,
        });
        await node.readBarrier(remainingMs, lease);
      },
      {
        deadline: Date.now() + this.o.replTimeoutMs,
        intervalMs: Math.min(10, this.o.heartbeatTickMs),
        signal,
      },
    );
  }

  async backup(opts: { consistency?: "linearizable" | "local" } = {}): Promise<ReplicatedBackup> {
    const node = this.running();
    this.checkStore();
    if ((opts.consistency ?? "linearizable") !== "local") await this.readBarrier(node);
    const b = await node.backup();
    const cs = b.confState;
    const members: { id: NodeId; url: string; role: "voter" | "learner" }[] = [];
    const voters = new Set([...cs.voters, ...cs.votersOutgoing]);
    for (const id of [...voters].sort())
      members.push({ id, url: b.members[id] ?? "", role: "voter" });
    for (const id of [...new Set([...cs.learners, ...cs.learnersNext])].sort()) {
      if (!voters.has(id)) members.push({ id, url: b.members[id] ?? "", role: "learner" });
    }
    return {
      storeKind: this.o.store.kind,
      clusterName: this.o.clusterName,
      index: b.position.index,
      term: b.position.term,
      members,
      stream: b.stream,
    };
  }

  async restore(
    source: string | AsyncIterable<Uint8Array>,
    opts: RestoreOptions = {},
  ): Promise<RestoreResult> {
    opts.signal?.throwIfAborted();
    const node = this.running();
    this.checkStore();
    // Room for the chunk's args in a request of at most maxRequestBytes.
    const maxChunk = this.o.maxRequestBytes - 1024;
    if (typeof source === "string") {
      return restoreIntoCluster(
        node,
        this.o.store.kind,
        source,
        maxChunk,
        this.o.logger,
        opts,
        this.o.replTimeoutMs,
      );
    }
    // A stream (the gRPC call): kept in a file first, checked whole before anything is proposed.
    const dir = join(this.o.snapDir, "restore-incoming");
    await mkdir(dir, { recursive: true });
    const file = join(dir, `${randomBytes(8).toString("hex")}.nexusbak`);
    try {
      const fh = await open(file, "w");
      try {
        for await (const chunk of source) {
          opts.signal?.throwIfAborted();
          let at = 0;
          while (at < chunk.byteLength) {
            const { bytesWritten } = await fh.write(chunk, at, chunk.byteLength - at);
            at += bytesWritten;
          }
        }
      } finally {
        await fh.close();
      }
      return await restoreIntoCluster(
        node,
        this.o.store.kind,
        file,
        maxChunk,
        this.o.logger,
        opts,
        this.o.replTimeoutMs,
      );
    } finally {
      await rm(file, { force: true });
    }
  }

  listMembers(): MemberList {
    return memberListOf(this.running(), this.o.nodeId, this.transfers?.list() ?? []);
  }

  /** This node's member list with progress, encoded for a peer; undefined unless it leads. */
  private progressView(): Uint8Array | undefined {
    return progressViewOf(this.running(), this.o.nodeId, this.listMembers());
  }

  async listMembersWithProgress(opts: ListMembersOptions = {}): Promise<MembersWithProgress> {
    opts.signal?.throwIfAborted();
    return membersWithProgress(
      this.listMembers(),
      this.running().status(),
      this.o.nodeId,
      this.transport,
      opts,
      this.o.logger,
    );
  }

  /** What this node knows about the membership now, for the membership policy. */
  private membershipView(): MembershipView {
    const node = this.running();
    const st = node.status();
    return {
      self: this.o.nodeId,
      leader: st.softState.lead,
      leaderUrl: st.softState.lead === "" ? "" : (node.members.get(st.softState.lead) ?? ""),
      lastIndex: st.lastIndex,
      config: st.config,
      progress: st.progress,
      heardRecently: (id) => node.heardRecently(id),
      describe: (id) => {
        const url = node.members.get(id);
        return url === undefined ? id : `${url} (${id})`;
      },
    };
  }

  /** checkQuorumAfter with this node's view; off the leader a voter's URL is probed. */
  private async checkQuorumAfter(
    voters: ReadonlySet<NodeId>,
    fresh: ReadonlySet<NodeId>,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    const node = this.running();
    const check = checkQuorumAfter(this.membershipView(), voters, fresh, async (id) => {
      const url = node.members.get(id);
      if (url === undefined) return false;
      return probeUrl(url, 1000).then(
        () => true,
        () => false,
      );
    });
    await abortable(check, signal);
  }

  async promoteLearner(url: string, opts: PromoteLearnerOptions = {}): Promise<void> {
    opts.signal?.throwIfAborted();
    const node = this.running();
    const u = parseNodeUrl(url);
    const id = nodeIdOf(u);
    const view = this.membershipView();
    checkPromotable(view, id, u.url);
    checkCaughtUp(view, id, u.url, opts.maxLagEntries);
    await this.checkQuorumAfter(new Set([...view.config.voters, id]), new Set(), opts.signal);
    await this.retryUnwritten(() => node.changeMember("add-node", id, u.url), opts.signal);
  }

  async changeMembers(changes: MembershipChanges, opts: CallOptions = {}): Promise<void> {
    const signal = opts.signal;
    signal?.throwIfAborted();
    const node = this.running();
    const view = this.membershipView();
    const add = (changes.add ?? []).map((raw) => {
      const u = parseNodeUrl(raw);
      checkMemberScheme(this.o.nodeUrl, u);
      return { id: nodeIdOf(u), url: u.url };
    });
    const remove = (changes.remove ?? []).map((raw) => {
      const u = parseNodeUrl(raw);
      return { id: nodeIdOf(u), url: u.url };
    });
    const plan = planChanges(view, add, remove);
    const fresh = new Set<NodeId>();
    for (const c of plan.changes) {
      if (c.type !== "add-node") continue;
      if (view.config.learners.includes(c.nodeId)) {
        // A learner that has caught up, promoted as part of the change.
        checkCaughtUp(view, c.nodeId, c.url, changes.maxLagEntries);
      } else if (changes.probe !== false) {
        await abortable(probeUrl(c.url), signal);
        fresh.add(c.nodeId);
      }
    }
    // Until the joint configuration is left, decisions need a quorum of the old voters and one
    // of the new.
    await this.checkQuorumAfter(new Set(view.config.voters), fresh, signal);
    await this.checkQuorumAfter(plan.votersAfter, fresh, signal);
    for (const c of plan.changes) {
      if (c.type === "add-node") this.transport?.addPeer(c.nodeId, c.url);
    }
    await this.retryUnwritten(() => node.changeMembers(plan.changes), signal);
  }

  async transferLeadership(url?: string, opts: CallOptions = {}): Promise<NodeId> {
    opts.signal?.throwIfAborted();
    const node = this.running();
    const view = this.membershipView();
    let target: NodeId;
    if (url === undefined || url.trim() === "") {
      target = chooseTransferTarget(view);
    } else {
      const u = parseNodeUrl(url);
      target = nodeIdOf(u);
      checkTransferTarget(view, target, u.url);
    }
    if (view.leader === target) return target;
    if (view.leader === "") throw new NexusError("NO_LEADER", "no leader is known now; retry");
    node.transferLeadership(target);
    await node.events.waitFor("leader-change", () => node.leader() === target, {
      timeoutMs: 2 * this.o.electionTickMs + this.o.replTimeoutMs,
      onTimeout: () => {
        const lead = node.leader();
        return new NexusError(
          "TIMEOUT",
          `leadership did not move to ${node.members.get(target) ?? target} in time (the leader is ${lead === "" ? "unknown" : (node.members.get(lead) ?? lead)}); it may be behind or unreachable`,
        );
      },
      signal: opts.signal,
    });
    return target;
  }

  async addMember(url: string, opts: AddMemberOptions = {}): Promise<void> {
    opts.signal?.throwIfAborted();
    const node = this.running();
    const u = parseNodeUrl(url);
    checkMemberScheme(this.o.nodeUrl, u);
    const id = nodeIdOf(u);
    const view = this.membershipView();
    checkAddable(view, id, u.url, opts.learner === true);
    if (opts.probe !== false) await abortable(probeUrl(u.url), opts.signal);
    if (opts.learner !== true) {
      await this.checkQuorumAfter(
        new Set([...view.config.voters, id]),
        new Set(opts.probe !== false ? [id] : []),
        opts.signal,
      );
    }
    this.transport?.addPeer(id, u.url);
    await this.retryUnwritten(
      () => node.changeMember(opts.learner === true ? "add-learner" : "add-node", id, u.url),
      opts.signal,
    );
  }

  async removeMember(url: string, opts: CallOptions = {}): Promise<void> {
    opts.signal?.throwIfAborted();
    const node = this.running();
    const u = parseNodeUrl(url);
    const id = nodeIdOf(u);
    const view = this.membershipView();
    checkRemovable(view, id, u.url);
    if (view.config.voters.includes(id)) {
      const after = new Set(view.config.voters.filter((v) => v !== id));
      await this.checkQuorumAfter(after, new Set(), opts.signal);
    }
    await this.retryUnwritten(() => node.changeMember("remove-node", id, u.url), opts.signal);
  }

  /**
   * Runs `attempt` again while it fails with a refusal that wrote nothing (NO_LEADER,
   * PROPOSAL_DROPPED), until `timeoutMs` (default replTimeoutMs) passes or `signal` aborts.
   */
  private retryUnwritten<T>(
    attempt: (remainingMs: number) => Promise<T>,
    signal: AbortSignal | undefined,
    timeoutMs = this.o.replTimeoutMs,
  ): Promise<T> {
    return retryUnwritten(attempt, {
      deadline: Date.now() + timeoutMs,
      intervalMs: Math.min(50, this.o.heartbeatTickMs),
      signal,
    });
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

  async checkConsistency(opts: CheckConsistencyOptions = {}): Promise<ConsistencyCheckResult> {
    opts.signal?.throwIfAborted();
    const node = this.running();
    const timeoutMs = opts.timeoutMs ?? 10_000;
    const deadline = Date.now() + timeoutMs;
    const index = await this.retryUnwritten(() => node.proposeCheck(), opts.signal, timeoutMs);
    const round = await abortable(
      node.waitCheck(index, Math.max(1, deadline - Date.now())),
      opts.signal,
    );
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
    this.started?.stopTimers();
    this.started = undefined;
    await node?.stop();
    await this.transport?.stop();
    this.transport = undefined;
  }
}

/**
 * Creates a replicator; validates the options at once (NexusError BAD_CONFIG). `internal` is for
 * the project's own programs and tests (test hooks), not part of the library API.
 */
export function createReplicator(
  options: ReplicatorOptions,
  internal: { readonly testHooks?: TestHooks } = {},
): Replicator {
  return new ReplicatorImpl(options, internal.testHooks);
}
