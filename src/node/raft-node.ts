/**
 * RaftNode: the runtime that drives the Raft core on real disks. It owns the tick timer and the
 * Ready loop, which handles every Ready in the fixed order of src/raft/DESIGN.md:
 *
 *   send rd.messages (the leader replicates while its own fsync runs) -> persist hard state,
 *   entries and snapshot marker to the WAL (fdatasync) -> update the log view -> send
 *   rd.persistedMessages -> apply conf changes and hand committed entries to the apply pipeline
 *   -> settle read states -> advance.
 *
 * A WAL failure is fatal: the node stops, rejects every pending request and reports the error.
 * Proposals are resolved when the entry is applied on this node, with the store's result.
 */
import { randomBytes } from "node:crypto";
import { NexusError, StoppedError, UnknownOutcomeError } from "../errors/index.js";
import { RawNode } from "../raft/raw-node.js";
import type { Ready } from "../raft/raw-node.js";
import { RaftError } from "../raft/raft.js";
import { nexusErrorOfRaft } from "./raft-errors.js";
import { bootstrapEntries } from "../raft/bootstrap.js";
import { decodeConfChange } from "../raft/confchange/codec.js";
import type { ConfState, Entry, Message, NodeId, Snapshot } from "../raft/types.js";
import { createSeededRandom } from "../raft/random.js";
import { DiskStorage } from "../storage/disk-storage.js";
import { Wal } from "../storage/wal.js";
import { Snapshotter, snapshotName } from "../storage/snapshotter.js";
import type { WalOptions } from "../storage/wal.js";
import type { CrashHook } from "../storage/crash-points.js";
import type { ApplyResult, Store } from "../store/store.js";
import { Applier } from "./applier.js";
import { decodeEntryPayload, encodeEntryPayload, requestKey } from "./entry-payload.js";
import type { ClientRequest } from "./entry-payload.js";
import type { NexusLogger } from "./options.js";
import { SILENT } from "./options.js";
import { IndexWaiters, Waiters } from "./waiters.js";
import { LeaderLease, leaseDurationMs } from "./leader-lease.js";
import type { MonotonicClock } from "./leader-lease.js";
import { ConsistencyChecker } from "./consistency-checker.js";
import type { DivergenceAction, Divergence } from "./consistency-checker.js";
import type { CheckRound } from "./consistency.js";
import type { PayloadKind } from "./entry-payload.js";
import { NodeEvents, membershipChangeOf } from "./node-events.js";
import { mostUpToDateVoter } from "./membership-policy.js";
import type { TestHooks } from "./test-hooks.js";

/** What the runtime needs from a peer transport (src/transport implements it). */
export interface PeerTransport {
  /** Sends messages to their `to` peers; never blocks; may drop (Raft tolerates loss). */
  send(msgs: readonly Message[]): void;
  addPeer(id: NodeId, url: string): void;
  removePeer(id: NodeId): void;
}

export interface RaftNodeOptions {
  readonly id: NodeId;
  /** Initial members (id and URL) when this node bootstraps a new cluster; empty to join. */
  readonly bootstrap: readonly { id: NodeId; url: string }[];
  readonly walDir: string;
  readonly walOptions?: WalOptions;
  readonly store: Store;
  readonly transport: PeerTransport;
  readonly heartbeatTickMs: number;
  /** Election timeout in ticks. */
  readonly electionTick: number;
  readonly replTimeoutMs: number;
  /** Snapshot files live here. */
  readonly snapDir: string;
  /** Applied entries between snapshots. */
  readonly snapshotCount: number;
  /** Entries kept after a snapshot for slow followers. */
  readonly snapshotCatchUpEntries: number;
  readonly maxSnapshots?: number;
  /**
   * Keep the leader's read lease renewed all the time (reads default to lease reads). Without it a
   * lease is renewed only while lease reads are asked for. The lease is measured on a monotonic
   * clock, see leader-lease.ts.
   */
  readonly leaseBasedReads?: boolean;
  /** Share of the lease given up for clock-rate drift between members. Default 0.1. */
  readonly leaseDriftMargin?: number;
  /** The monotonic clock (ms). Default `performance.now`; tests inject their own. */
  readonly clock?: MonotonicClock;
  /** Milliseconds between the leader's consistency checks; 0 (the default here) for none. */
  readonly consistencyCheckIntervalMs?: number;
  /** What a replica does when a check finds it diverged. Default "report". */
  readonly onDivergence?: DivergenceAction;
  readonly logger?: NexusLogger;
  /** Called once when the node stops because of an error it cannot recover from. */
  readonly onFatal?: (err: Error) => void;
  /**
   * Called at every crash point (RUNTIME_CRASH_POINTS, and the WAL's and snapshotter's), for crash
   * tests. Default: none (a point then costs one property test).
   */
  readonly crash?: CrashHook;
  /** Test hooks (test-hooks.ts); none by default. */
  readonly testHooks?: TestHooks;
}

const URL_CONTEXT = new TextEncoder();

/**
 * The URLs a conf change's context names: one URL for a single change (the original's form), or
 * a JSON object of id to URL for several.
 */
function urlsOf(context: Uint8Array, changes: readonly { nodeId: NodeId }[]): Map<NodeId, string> {
  const text = new TextDecoder().decode(context);
  const out = new Map<NodeId, string>();
  if (text === "") return out;
  if (text.startsWith("{")) {
    try {
      for (const [id, url] of Object.entries(JSON.parse(text) as Record<string, unknown>)) {
        if (typeof url === "string") out.set(id, url);
      }
    } catch {
      // Not ours: no URLs.
    }
    return out;
  }
  if (changes.length === 1) out.set(changes[0]!.nodeId, text);
  return out;
}
const enc = new TextEncoder();

/** Whether an entry is the (empty) conf change that leaves a joint configuration. */
function isLeaveJoint(e: Entry): boolean {
  return e.type === "conf-change" && decodeConfChange(e.data).changes.length === 0;
}

/** A lease is kept renewed this long after the last lease read (when not always on). */
const LEASE_WANTED_MS = 10_000;

export class RaftNode {
  readonly id: NodeId;
  private readonly raw: RawNode;
  private readonly wal: Wal;
  private readonly storage: DiskStorage;
  private readonly applier: Applier;
  private readonly opts: RaftNodeOptions;
  private readonly logger: NexusLogger;
  private readonly saves = new Waiters<ApplyResult>();
  private readonly reads = new Waiters<number>();
  /** Reads waiting for the store to apply an index. */
  private readonly appliedWaiters = new IndexWaiters();
  /** Membership changes waiting to be applied, by the node id they change. */
  private readonly confWaiters = new Waiters<ConfState>();
  /** What the Ready loop reports: leader change, membership change, divergence. */
  readonly events: NodeEvents;
  private timer: NodeJS.Timeout | undefined;
  private processing = false;
  private scheduled = false;
  private stopped = false;
  private fatal: Error | undefined;
  /** When each peer was last heard from (monotonic ms): reachability for listMembers. */
  private readonly heardAt = new Map<NodeId, number>();
  /** Member URLs by id, from applied conf changes. */
  readonly members = new Map<NodeId, string>();
  /** Configurations and member URLs by the index where they took effect (for snapshots). */
  private confHistory: { index: number; cs: ConfState; members: Record<NodeId, string> }[] = [];
  private snapshotter!: Snapshotter;
  private lastSnapshotIndex = 0;
  private snapshotting = false;
  /** A member was added after the newest snapshot: take one as soon as the store catches up. */
  private snapshotWantedAt = 0;
  private readonly clock: MonotonicClock;
  /** Consistency checks: this node's reports and verdicts. */
  private readonly checker: ConsistencyChecker;
  /** The leader's read lease, on the monotonic clock. */
  private readonly lease: LeaderLease;
  /** Vote requests are ignored until then (monotonic ms): see start(). */
  private voteHoldUntil = Number.POSITIVE_INFINITY;
  /** When a lease read was last asked for (monotonic ms). */
  private leaseWantedAt = Number.NEGATIVE_INFINITY;
  /** The leader as of the last Ready that said ("" for none). */
  private knownLead: NodeId = "";
  /** Ticks since start. */
  private ticks = 0;
  /** When the last lease renewal round was started (monotonic ms). */
  private leaseRenewedAt = Number.NEGATIVE_INFINITY;

  private constructor(
    opts: RaftNodeOptions,
    raw: RawNode,
    wal: Wal,
    storage: DiskStorage,
    applier: Applier,
  ) {
    this.opts = opts;
    this.id = opts.id;
    this.raw = raw;
    this.wal = wal;
    this.storage = storage;
    this.applier = applier;
    this.logger = opts.logger ?? SILENT;
    this.events = new NodeEvents(this.logger);
    this.clock = opts.clock ?? (() => performance.now());
    this.lease = new LeaderLease({
      durationMs: Math.max(
        1,
        leaseDurationMs(opts.heartbeatTickMs, opts.electionTick, opts.leaseDriftMargin ?? 0.1),
      ),
      now: this.clock,
    });
    this.checker = new ConsistencyChecker({
      id: opts.id,
      store: opts.store,
      logger: this.logger,
      markerDir: opts.snapDir,
      intervalMs: opts.consistencyCheckIntervalMs ?? 0,
      onDivergence: opts.onDivergence ?? "report",
      members: () => this.members,
      isLeader: () => this.raw.basicStatus().state === "leader",
      propose: (kind, data, requestId) => this.proposeInternal(kind, data, requestId),
      halt: (reason) => this.applier.halt(reason),
      stepAside: () => this.stepAside(),
      onDiverged: (div) => this.events.emit("divergence", div),
    });
  }

  /** Proposes an entry of the runtime's own (no caller waits on its result). */
  private proposeInternal(kind: PayloadKind, data: Uint8Array, requestId: Uint8Array): void {
    if (this.stopped) throw this.fatal ?? new StoppedError();
    const payload = encodeEntryPayload({
      kind,
      requestId,
      timestampMs: Date.now(),
      seed: 0,
      data,
      args: {},
    });
    try {
      this.raw.propose(payload);
    } catch (err) {
      if (!(err instanceof RaftError)) throw err;
      throw nexusErrorOfRaft(err, "not proposed");
    }
    this.schedule();
  }

  /** Hands leadership to the most up-to-date other voter, if this node leads. */
  private stepAside(): void {
    if (this.stopped || this.raw.basicStatus().leadTransferee !== "") return;
    const st = this.raw.status();
    const best = mostUpToDateVoter({ self: this.id, config: st.config, progress: st.progress });
    if (best !== undefined) this.transferLeadership(best);
  }

  /**
   * Proposes a consistency check now and resolves with its index once it is applied here.
   * NO_LEADER / PROPOSAL_DROPPED when refused (nothing proposed), TIMEOUT after replTimeoutMs.
   */
  proposeCheck(): Promise<number> {
    return this.checker.proposeCheck(this.opts.replTimeoutMs);
  }

  /** The judged consistency check at `index` once every member reported, or at the timeout. */
  waitCheck(index: number, timeoutMs: number): Promise<CheckRound | undefined> {
    return this.checker.waitRound(index, timeoutMs);
  }

  /** The newest consistency check this node knows of. */
  latestCheck(): CheckRound | undefined {
    return this.checker.round();
  }

  /** This replica's divergence, if a consistency check found one. */
  divergence(): Divergence | undefined {
    return this.checker.divergence();
  }

  /** Why applying is halted (a diverged replica in stop mode), if it is. */
  applyHalted(): string | undefined {
    return this.applier.halted();
  }

  /**
   * Opens (or creates) the node's WAL, bootstraps a new cluster's membership into it when the
   * WAL is new and this node is an initial member, opens the store, and builds the core. Entries
   * after the store's applied index are re-applied; none twice.
   */
  static async open(opts: RaftNodeOptions): Promise<RaftNode> {
    const logger = opts.logger ?? SILENT;
    const crash = opts.crash;
    const { wal, state } = await Wal.open(opts.walDir, {
      ...opts.walOptions,
      logger,
      ...(crash === undefined ? {} : { crash }),
    });
    const snapshotter = new Snapshotter(opts.snapDir, {
      maxSnapshots: opts.maxSnapshots ?? 5,
      logger,
      ...(crash === undefined ? {} : { crash }),
    });
    // Only a snapshot the WAL records: a file written (received or taken) whose marker never
    // became durable, or one the core ignored, is newer than the marker and is skipped (kept).
    const newest = await snapshotter.loadNewest(wal.snapshotMarker());
    const snap: Snapshot | undefined =
      newest === undefined
        ? undefined
        : {
            metadata: {
              index: newest.meta.index,
              term: newest.meta.term,
              confState: newest.meta.confState,
            },
            data: enc.encode(newest.name),
          };
    let storage: DiskStorage;
    try {
      storage = new DiskStorage(wal, state, snap, { logger });
    } catch (err) {
      await wal.close().catch(() => undefined);
      throw err;
    }
    const walEmpty = state.lastIndex === 0 && state.snapshot.index === 0;
    let position = await opts.store.open();
    if (walEmpty && position.index > 0) {
      // The log was lost (its directory emptied or replaced) but the store was not: bootstrapping
      // a fresh log at term 1 with no vote could vote twice in a term and forget entries a
      // majority relied on. Refuse.
      await wal.close().catch(() => undefined);
      await opts.store.close().catch(() => undefined);
      throw new NexusError(
        "BAD_CONFIG",
        `the write-ahead log in ${opts.walDir} is empty but the store has applied entries up to ` +
          `index ${position.index}: this node's log was lost, and it must not rejoin with a fresh ` +
          "one (it could vote twice in a term and forget entries the cluster relies on). To " +
          "bring it back safely, remove it from the cluster (nexus repl <a running member>, then " +
          "removeNode <its URL>) and add it again (addNode) with an empty data directory (both " +
          "the log and the store), or start it as a new member with a new node URL and a new " +
          "data directory.",
      );
    }
    if (state.lastIndex === 0 && opts.bootstrap.length > 0) {
      const boot = bootstrapEntries(
        opts.bootstrap.map((p) => ({ id: p.id, context: URL_CONTEXT.encode(p.url) })),
      );
      await wal.save(boot.hardState, boot.entries);
      storage.append(boot.entries);
      storage.setHardState(boot.hardState);
    }
    if (newest !== undefined && position.index < newest.meta.index) {
      // The store is behind the newest snapshot (it was received but not yet restored).
      await opts.store.restore(
        { index: newest.meta.index, term: newest.meta.term },
        snapshotter.openData(newest),
      );
      position = { index: newest.meta.index, term: newest.meta.term };
    }
    const raw = new RawNode({
      id: opts.id,
      electionTick: opts.electionTick,
      heartbeatTick: 1,
      storage,
      // Conf changes after the snapshot are replayed into the core; the store skips what it has.
      applied: storage.snapshot().metadata.index,
      random: createSeededRandom(randomBytes(4).readUInt32LE(0)),
      // Leases are kept here on a monotonic clock; the core's tick-based lease is not used.
      readOnlyOption: "safe",
      // The core's warnings (a heartbeat committing past a repaired log, a follower that lost
      // entries) say what recovery did; its info lines are debug here.
      logger: {
        debug: () => undefined,
        info: (msg) => logger.debug({ from: "raft" }, msg),
        warn: (msg) => logger.warn({ from: "raft" }, msg),
      },
    });
    const holder: { node?: RaftNode } = {};
    const applier = new Applier(
      opts.store,
      {
        onResult: (payload, _index, result) => {
          if (payload.kind === "check-report") holder.node?.checker.onReport(payload);
          else holder.node?.saves.resolve(requestKey(payload.requestId), result);
        },
        onCheck: async (payload, index, outcomes) =>
          holder.node?.checker.onCheck(payload, index, outcomes),
        onApplied: (pos) => {
          holder.node?.notifyApplied(pos.index);
          holder.node?.maybeSnapshot(pos.index);
        },
        // The applier logs the store going down and coming back, once each.
        onStoreHealth: () => undefined,
      },
      logger,
      position,
    );
    applier.crash = crash;
    const node = new RaftNode(opts, raw, wal, storage, applier);
    node.snapshotter = snapshotter;
    if (newest !== undefined) {
      node.lastSnapshotIndex = newest.meta.index;
      for (const [id, url] of Object.entries(newest.meta.members)) node.members.set(id, url);
      node.confHistory = [
        {
          index: newest.meta.index,
          cs: newest.meta.confState,
          members: { ...newest.meta.members },
        },
      ];
      for (const [id, url] of node.members) if (id !== opts.id) opts.transport.addPeer(id, url);
    }
    await node.checker.open();
    holder.node = node;
    return node;
  }

  /**
   * Starts ticking and applying. For one election timeout after start the node ignores vote
   * requests: before it went down it may have acknowledged a leader's heartbeat, and that leader
   * may be serving lease reads counting on this node not to vote for anyone else meanwhile.
   */
  start(): void {
    this.voteHoldUntil = this.clock() + this.opts.heartbeatTickMs * this.opts.electionTick;
    this.applier.start();
    this.checker.start();
    this.timer = setInterval(() => {
      if (this.stopped) return;
      this.raw.tick();
      this.noteTransfer();
      this.maybeRenewLease();
      if (++this.ticks % this.opts.electionTick === 0 && this.checker.divergence() !== undefined) {
        // A diverged replica refuses requests: it should not lead (it may win an election).
        this.stepAside();
      }
      this.schedule();
    }, this.opts.heartbeatTickMs);
    this.schedule();
  }

  /** Feeds messages received from peers. */
  step(msgs: readonly Message[]): void {
    if (this.stopped) return;
    for (const m of msgs) {
      if ((m.type === "vote" || m.type === "pre-vote") && this.clock() < this.voteHoldUntil) {
        // Just started: this node may have acknowledged a leader's lease before it went down.
        continue;
      }
      this.heardAt.set(m.from, this.clock());
      if (m.type === "app" && this.divergesFromLeader(m)) return;
      try {
        this.raw.step(m);
      } catch (err) {
        if (err instanceof RaftError) continue;
        // Not a refusal: a bug (a tripped invariant) or a storage failure inside the core, which
        // may have left it half-updated. It is not the sender's fault (the transport would report
        // a malformed frame) and the core must not take another message: stop the node.
        const e = err instanceof Error ? err : new Error(String(err));
        this.fail(
          new NexusError(
            "INTERNAL",
            `the raft core failed on a ${m.type} message from ${m.from}: ${e.message}`,
            { cause: e },
          ),
        );
        return;
      }
    }
    this.noteTransfer();
    this.schedule();
  }

  /**
   * Whether a message from `peer` arrived within the last election timeout. On the leader every
   * live member answers each heartbeat, so this says whether it is reachable now (the core's
   * recentActive is reset at every check-quorum round and would say no for a moment).
   */
  heardRecently(peer: NodeId): boolean {
    const at = this.heardAt.get(peer);
    return (
      at !== undefined && this.clock() - at <= this.opts.heartbeatTickMs * this.opts.electionTick
    );
  }

  /**
   * Whether an append from a current leader contradicts an entry this node has committed; if so
   * the node stops with a clear error (BAD_CONFIG). In a sound cluster that never happens (a
   * leader holds every committed entry, Raft §5.4); it does when this node bootstrapped a cluster
   * of its own: typically a node joining an existing cluster that was started with its own URL in
   * -nexus-cluster-url and without -nexus-node-state new. Without this check it would loop behind
   * the leader forever, never catching up. Stale messages (an older term) are left to the core.
   */
  private divergesFromLeader(m: Message): boolean {
    const hs = this.storage.initialState().hardState;
    if (m.term < hs.term) return false;
    const conflicts = (index: number, term: number): boolean => {
      if (index < 1 || index > hs.commit || index < this.storage.firstIndex()) return false;
      if (index > this.storage.lastIndex()) return false;
      return this.storage.term(index) !== term;
    };
    let at = conflicts(m.index, m.logTerm) ? m.index : 0;
    for (const e of m.entries) {
      if (at !== 0 || e.index > hs.commit) break;
      if (conflicts(e.index, e.term)) at = e.index;
    }
    if (at === 0) return false;
    this.fail(
      new NexusError(
        "BAD_CONFIG",
        `this node's log disagrees with the leader's (${m.from}) at index ${at}, an entry this node ` +
          "had committed: it bootstrapped a cluster of its own (was its own URL in " +
          "-nexus-cluster-url?). A node joining an existing cluster must start empty, with " +
          "-nexus-node-state new or without its own URL in -nexus-cluster-url: delete its WAL " +
          `(${this.opts.walDir}), snapshots (${this.opts.snapDir}) and store data, then start it ` +
          "again that way",
      ),
    );
    return true;
  }

  /** A leadership transfer voids the lease for the rest of the term (the transferee campaigns
   * past the voters' vote leases). Called after every input that can start one. */
  private noteTransfer(): void {
    const bs = this.raw.basicStatus();
    if (bs.leadTransferee !== "") this.lease.revoke(bs.term);
  }

  /** Starts a lease renewal round when this node leads and lease reads are wanted. */
  private maybeRenewLease(): void {
    const now = this.clock();
    if (this.opts.leaseBasedReads !== true && now - this.leaseWantedAt > LEASE_WANTED_MS) return;
    if (now - this.leaseRenewedAt < this.opts.heartbeatTickMs / 2) return;
    const bs = this.raw.basicStatus();
    if (bs.state !== "leader" || bs.leadTransferee !== "") return;
    const ctx = new Uint8Array(randomBytes(16));
    this.leaseRenewedAt = now;
    this.lease.renewalSent(requestKey(ctx), bs.term);
    this.raw.readIndex(ctx);
    this.schedule();
  }

  /**
   * The index a lease read may be served at: this leader's commit index while its lease is
   * valid, or undefined (not the leader, no valid lease: use readBarrier). Asking keeps the lease
   * renewed for a while.
   */
  leaseReadIndex(): number | undefined {
    if (this.stopped) throw this.fatal ?? new StoppedError();
    this.leaseWantedAt = this.clock();
    this.noteTransfer();
    const bs = this.raw.basicStatus();
    if (bs.state === "leader" && this.lease.valid(bs.term)) return bs.commit;
    this.maybeRenewLease();
    return undefined;
  }

  /** Resolves once the store has applied `index` (or rejects when the node stops). */
  async waitApplied(index: number, timeoutMs: number): Promise<void> {
    if (this.applier.position().index >= index) return;
    if (this.stopped) throw this.fatal ?? new StoppedError();
    await this.appliedWaiters.wait(index, timeoutMs, () => {
      const why = this.applier.storeError();
      return new NexusError(
        "TIMEOUT",
        `this node's store did not reach index ${index} within ${timeoutMs} ms` +
          (why === undefined ? "" : ` (${why.message})`) +
          "; retry, or read from another node",
      );
    });
  }

  /** The transport could not deliver to a peer: the core stops pipelining to it. */
  reportUnreachable(peer: NodeId): void {
    if (this.stopped) return;
    this.raw.reportUnreachable(peer);
    this.schedule();
  }

  /**
   * Messages the transport never delivered. A proposal or read request this node forwarded to a
   * leader it cannot reach (it died, an election is under way) fails at once as not written,
   * PROPOSAL_DROPPED / NO_LEADER, so the caller may retry it, instead of waiting for its timeout
   * and an unknown outcome.
   */
  reportDropped(msgs: readonly Message[]): void {
    if (this.stopped) return;
    for (const m of msgs) {
      if (m.type === "prop") {
        for (const e of m.entries) {
          if (e.type !== "normal" || e.data.byteLength === 0) continue;
          let requestId: Uint8Array;
          try {
            const p = decodeEntryPayload(e.data);
            if (p.kind !== "command") continue;
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
        const ctx = m.entries[0]?.data;
        if (ctx !== undefined) {
          this.reads.reject(
            requestKey(ctx),
            new NexusError(
              "NO_LEADER",
              "the leader could not be reached to confirm the read; retry",
            ),
          );
        }
      }
    }
  }

  /** Whether a snapshot sent to a peer arrived. */
  reportSnapshot(peer: NodeId, status: "finish" | "failure"): void {
    if (this.stopped) return;
    this.raw.reportSnapshot(peer, status);
    this.schedule();
  }

  /** Campaigns now (tests, operations). */
  campaign(): void {
    this.raw.campaign();
    this.schedule();
  }

  /** The core's view: role, term, leader, applied. */
  status(): ReturnType<RawNode["status"]> {
    return this.raw.status();
  }

  /** The leader this node knows of ("" for none). Cheap: for polling. */
  leader(): NodeId {
    return this.raw.basicStatus().lead;
  }

  /** The store's applied index. */
  appliedIndex(): number {
    return this.applier.position().index;
  }

  /** The store failure that stalls applying, if any (the node reports NOT_SERVING meanwhile). */
  storeError(): Error | undefined {
    return this.applier.storeError();
  }

  /** The error that stopped the node, if any. */
  fatalError(): Error | undefined {
    return this.fatal;
  }

  /**
   * Proposes a write and resolves with the store's result once it is applied on this node.
   * Rejects with UNKNOWN_OUTCOME if it does not complete within replTimeoutMs (it may still be
   * applied), NO_LEADER / PROPOSAL_DROPPED if the core refused it (nothing was written), or
   * STOPPED.
   */
  async propose(
    data: Uint8Array,
    args: Readonly<Record<string, string>> = {},
    clientRequest?: ClientRequest,
  ): Promise<ApplyResult> {
    if (this.stopped) throw this.fatal ?? new StoppedError();
    const requestId = new Uint8Array(randomBytes(16));
    const key = requestKey(requestId);
    const payload = encodeEntryPayload({
      kind: "command",
      requestId,
      timestampMs: Date.now(),
      seed: randomBytes(6).readUIntLE(0, 6),
      data,
      args,
      ...(clientRequest === undefined ? {} : { clientRequest }),
    });
    const result = this.saves.wait(
      key,
      this.opts.replTimeoutMs,
      () =>
        new UnknownOutcomeError(
          `the write was proposed but not applied within ${this.opts.replTimeoutMs} ms: ` +
            "it may or may not take effect; read before retrying",
        ),
    );
    try {
      this.raw.propose(payload);
    } catch (err) {
      const e =
        err instanceof RaftError
          ? nexusErrorOfRaft(err, "the write was not accepted")
          : (err as Error);
      this.saves.reject(key, e);
    }
    this.schedule();
    return result;
  }

  /**
   * A linearizable read point (ReadIndex, thesis §6.4): resolves once this node has applied
   * everything committed before the call, so a read of the local store is linearizable.
   * Rejects with TIMEOUT when no leader confirms it in time (safe to retry: nothing was written).
   */
  async readBarrier(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    if (this.stopped) throw this.fatal ?? new StoppedError();
    // The core drops a read request when it knows no leader: say so now, not at the timeout.
    if (this.raw.basicStatus().lead === "") {
      throw new NexusError("NO_LEADER", "no leader is known to confirm the read; retry");
    }
    const ctx = new Uint8Array(randomBytes(16));
    const key = requestKey(ctx);
    const index = this.reads.wait(
      key,
      timeoutMs,
      () => new NexusError("TIMEOUT", `no leader confirmed the read within ${timeoutMs} ms; retry`),
    );
    this.raw.readIndex(ctx);
    this.schedule();
    const at = await index;
    await this.waitApplied(at, Math.max(1, deadline - Date.now()));
  }

  /**
   * Takes a snapshot when snapshotCount entries were applied since the last one, or when a member
   * was added after it (a new member can only be sent a snapshot that contains it).
   */
  private maybeSnapshot(applied: number): void {
    if (this.snapshotting || this.stopped) return;
    const due = applied - this.lastSnapshotIndex >= this.opts.snapshotCount;
    const wanted =
      this.snapshotWantedAt > this.lastSnapshotIndex && applied >= this.snapshotWantedAt;
    if (!due && !wanted) return;
    this.snapshotting = true;
    void this.takeSnapshot()
      .catch((err: unknown) =>
        this.logger.warn({ error: (err as Error).message }, "snapshot failed"),
      )
      .finally(() => {
        this.snapshotting = false;
      });
  }

  private async takeSnapshot(): Promise<void> {
    const started = Date.now();
    const backup = await this.opts.store.backup();
    const p = backup.position;
    if (p.index <= this.lastSnapshotIndex || p.index > this.storage.lastIndex()) {
      // Nothing new to snapshot: abandon the backup stream.
      await backup.stream[Symbol.asyncIterator]().return?.();
      return;
    }
    let conf = this.confHistory[0];
    for (const c of this.confHistory) if (c.index <= p.index) conf = c;
    if (conf === undefined) return;
    const file = await this.snapshotter.save(
      { index: p.index, term: p.term, confState: conf.cs, members: conf.members },
      backup.stream,
    );
    this.opts.crash?.("node.snapshot-after-file");
    if (this.stopped) return;
    this.storage.createSnapshot(p.index, conf.cs, enc.encode(file.name));
    await this.wal.saveSnapshotMarker({ index: p.index, term: p.term });
    this.opts.crash?.("node.snapshot-after-marker");
    this.snapshotter.covered({ index: p.index, term: p.term });
    this.lastSnapshotIndex = p.index;
    this.confHistory = this.confHistory.filter((c) => c.index >= p.index || c === conf);
    const compactTo = p.index - this.opts.snapshotCatchUpEntries;
    if (compactTo > this.storage.firstIndex()) {
      this.storage.compact(compactTo);
      await this.wal.releaseTo(compactTo);
      this.opts.crash?.("node.snapshot-after-compact");
    }
    this.logger.info(
      {
        index: p.index,
        bytes: file.dataLength,
        ms: Date.now() - started,
        ...(compactTo > 0 ? { compactedTo: compactTo } : {}),
      },
      "snapshot taken",
    );
  }

  /**
   * A consistent copy of the store at its applied position, with the configuration and member
   * URLs in effect at that index (for `nexus backup`). Taken as a snapshot's is, without writing
   * a snapshot file. NOT_SERVING when the configuration at that index is not known here (the
   * store is still restoring a snapshot it received): retry.
   */
  async backup(): Promise<{
    position: { index: number; term: number };
    confState: ConfState;
    members: Record<NodeId, string>;
    stream: AsyncIterable<Uint8Array>;
  }> {
    const backup = await this.opts.store.backup();
    const p = backup.position;
    let conf: (typeof this.confHistory)[number] | undefined;
    for (const c of this.confHistory) if (c.index <= p.index) conf = c;
    if (conf === undefined) {
      await backup.stream[Symbol.asyncIterator]().return?.();
      throw new NexusError(
        "NOT_SERVING",
        `the membership at applied index ${p.index} is not known on this node yet (it is restoring a snapshot); retry`,
      );
    }
    return { position: p, confState: conf.cs, members: { ...conf.members }, stream: backup.stream };
  }

  /** The whole snapshot file named by a `snap` message, to stream to a follower. */
  openSnapshot(m: Message): AsyncIterable<Uint8Array> {
    const name = new TextDecoder().decode(m.snapshot?.data ?? new Uint8Array(0));
    const snapshotter = this.snapshotter;
    return (async function* () {
      const file = await snapshotter.validate(name);
      yield* snapshotter.openFile(file);
    })();
  }

  /**
   * Stores a snapshot file streamed by the leader, then hands its message to the core, which
   * restores from it in the next Ready. Rejects (the leader retries) if it does not validate.
   */
  async receiveSnapshot(m: Message, body: AsyncIterable<Uint8Array>): Promise<void> {
    if (m.snapshot === undefined)
      throw new NexusError("INVALID_ARGUMENT", "snap message without a snapshot");
    const name = snapshotName(m.snapshot.metadata.term, m.snapshot.metadata.index);
    await this.snapshotter.saveRaw(name, body);
    // The file is durable and not recorded by the WAL: a restart now skips it (open()).
    this.opts.crash?.("node.receive-after-snapshot-file");
    this.step([{ ...m, snapshot: { ...m.snapshot, data: enc.encode(name) } }]);
  }

  /**
   * Proposes adding (as a voter or learner) or removing one member and resolves with the new
   * configuration once the change is applied here. Refusals (another change pending, would remove
   * the last voter) reject with MEMBERSHIP_REFUSED and change nothing; a timeout rejects with
   * UNKNOWN_OUTCOME (the change may still happen: list the members before retrying).
   */
  changeMember(
    type: "add-node" | "add-learner" | "remove-node",
    nodeId: NodeId,
    url: string,
  ): Promise<ConfState> {
    return this.changeMembers([{ type, nodeId, url }]);
  }

  /**
   * Proposes several membership changes at once. One change uses the simple protocol; several go
   * through joint consensus (Raft thesis §4.3) and the joint configuration is left automatically:
   * the promise resolves once the final configuration is applied here. Errors as changeMember.
   */
  async changeMembers(
    changes: readonly {
      type: "add-node" | "add-learner" | "remove-node";
      nodeId: NodeId;
      url: string;
    }[],
  ): Promise<ConfState> {
    if (this.stopped) throw this.fatal ?? new StoppedError();
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
    const key = changes.map((c) => `${c.type}:${c.nodeId}`).join(",");
    const deadline = Date.now() + this.opts.replTimeoutMs;
    const done = this.confWaiters.wait(
      key,
      this.opts.replTimeoutMs,
      () =>
        new UnknownOutcomeError(
          `the membership change was proposed but not applied within ${this.opts.replTimeoutMs} ms; ` +
            "list the members before retrying",
        ),
    );
    // One URL as the context (the original's form); a JSON map of id to URL for several.
    const adds = changes.filter((c) => c.type !== "remove-node");
    const context =
      changes.length === 1
        ? URL_CONTEXT.encode(changes[0]!.url)
        : URL_CONTEXT.encode(
            JSON.stringify(Object.fromEntries(adds.map((c) => [c.nodeId, c.url]))),
          );
    try {
      this.raw.proposeConfChange({
        transition: "auto",
        changes: changes.map((c) => ({ type: c.type, nodeId: c.nodeId })),
        context,
      });
    } catch (err) {
      this.confWaiters.reject(
        key,
        err instanceof RaftError ? nexusErrorOfRaft(err) : (err as Error),
      );
    }
    this.schedule();
    const cs = await done;
    if (changes.length === 1) return cs;
    // Joint consensus: wait until the leader has proposed, and this node applied, the leave.
    await this.events.waitFor(
      "membership-change",
      () => this.raw.status().config.votersOutgoing.length === 0,
      {
        timeoutMs: Math.max(1, deadline - Date.now()),
        onTimeout: () =>
          new UnknownOutcomeError(
            "the joint configuration was entered but not yet left; it will be left automatically once the leader commits it; list the members",
          ),
      },
    );
    return this.raw.status().config;
  }

  /**
   * On a follower, the index of a conf change in this node's log that is not applied yet (0 if
   * none): the leader refuses a new change until it is, and a refusal of a forwarded proposal
   * never comes back. (The leader's core refuses such a proposal itself, at once.)
   */
  private pendingConfChangeIndex(): number {
    const st = this.raw.status();
    if (st.softState.raftState === "leader") return 0;
    const lo = Math.max(st.applied + 1, this.storage.firstIndex());
    const hi = this.storage.lastIndex();
    // Far behind (catching up): not worth reading the backlog; the leader decides.
    if (lo > hi || hi - lo > 10_000) return 0;
    try {
      for (const e of this.storage.entries(lo, hi + 1, Number.MAX_SAFE_INTEGER)) {
        if (e.type === "conf-change") return e.index;
      }
    } catch {
      // Compacted or not yet stable meanwhile: let the leader decide.
    }
    return 0;
  }

  /** Asks the core to hand leadership to `to` (Raft thesis §3.10). Resolves at once. */
  transferLeadership(to: NodeId): void {
    if (this.stopped) throw this.fatal ?? new StoppedError();
    this.raw.transferLeadership(to);
    this.noteTransfer();
    this.schedule();
  }

  /** Wakes reads waiting for the store to reach an index. */
  private notifyApplied(index: number): void {
    this.appliedWaiters.reached(index);
  }

  private schedule(): void {
    if (this.scheduled || this.processing || this.stopped) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.process();
    });
  }

  private async process(): Promise<void> {
    if (this.processing || this.stopped) return;
    this.processing = true;
    try {
      while (!this.stopped && this.raw.hasReady()) {
        await this.handleReady(this.raw.ready());
      }
    } catch (err) {
      this.fail(err instanceof Error ? err : new Error(String(err)));
    } finally {
      this.processing = false;
    }
    if (!this.stopped && this.raw.hasReady()) this.schedule();
  }

  private async handleReady(rd: Ready): Promise<void> {
    if (rd.softState !== undefined) {
      const { raftState: state, lead } = rd.softState;
      const term = rd.hardState?.term ?? this.raw.status().hardState.term;
      const fields = { state, leader: lead, term };
      if (state === "leader") this.logger.info(fields, "became leader");
      else if (state === "follower") {
        this.logger.info(
          fields,
          lead === "" ? "became follower; no leader known yet" : "became follower",
        );
      } else this.logger.debug(fields, "campaigning");
    }
    if (rd.entries.some(isLeaveJoint) && (await this.pausedForTest())) return;
    // The leader's appends go out while its own fsync runs.
    this.opts.transport.send(rd.messages);
    // A received snapshot's file is durable already (receiveSnapshot); its marker goes in the same
    // write batch as the entries and hard state after it ([marker][entries][hard state]): a crash
    // before that batch leaves a file the WAL does not record, which open() skips.
    const marker =
      rd.snapshot === undefined
        ? undefined
        : { index: rd.snapshot.metadata.index, term: rd.snapshot.metadata.term };
    if (rd.hardState !== undefined || rd.entries.length > 0 || marker !== undefined) {
      await this.wal.save(rd.hardState, rd.entries, marker);
      this.opts.crash?.(
        marker === undefined ? "node.ready-after-wal-save" : "node.receive-after-snapshot-marker",
      );
    }
    if (rd.snapshot !== undefined && marker !== undefined) {
      this.snapshotter.covered(marker);
      this.storage.applySnapshot(rd.snapshot);
    }
    this.storage.append(rd.entries);
    if (rd.hardState !== undefined) this.storage.setHardState(rd.hardState);
    // Followers acknowledge only what is durable.
    this.opts.transport.send(rd.persistedMessages);
    for (const e of rd.committedEntries) {
      if (e.type !== "conf-change") continue;
      const cc = decodeConfChange(e.data);
      const cs: ConfState = this.raw.applyConfChange(cc);
      const urls = urlsOf(cc.context, cc.changes);
      for (const ch of cc.changes) {
        if (ch.type === "remove-node") continue;
        const url = urls.get(ch.nodeId);
        if (url === undefined) continue;
        this.members.set(ch.nodeId, url);
        if (ch.nodeId !== this.id) this.opts.transport.addPeer(ch.nodeId, url);
      }
      // A member leaves when no configuration names it any more: a voter removed by a joint
      // change still votes in the outgoing half until the joint configuration is left.
      const named = new Set([
        ...cs.voters,
        ...cs.learners,
        ...cs.votersOutgoing,
        ...cs.learnersNext,
      ]);
      for (const id of [...this.members.keys()]) {
        if (named.has(id)) continue;
        this.members.delete(id);
        if (id !== this.id) this.opts.transport.removePeer(id);
      }
      this.confHistory.push({ index: e.index, cs, members: Object.fromEntries(this.members) });
      this.events.emit("membership-change", membershipChangeOf(e.index, cs));
      if (cc.changes.length > 0) {
        this.confWaiters.resolve(cc.changes.map((c) => `${c.type}:${c.nodeId}`).join(","), cs);
      }
      if (cc.changes.some((c) => c.type !== "remove-node")) this.snapshotWantedAt = e.index;
      for (const ch of cc.changes) {
        const fields = { member: ch.nodeId, url: urls.get(ch.nodeId), index: e.index };
        if (ch.type === "remove-node") this.logger.info(fields, "member removed");
        else if (ch.type === "add-learner") this.logger.info(fields, "learner added");
        else this.logger.info(fields, "voter added or promoted");
      }
      this.logger.debug({ voters: cs.voters, learners: cs.learners }, "configuration changed");
    }
    if (rd.snapshot !== undefined) {
      const file = await this.snapshotter.validate(new TextDecoder().decode(rd.snapshot.data));
      this.lastSnapshotIndex = file.meta.index;
      this.confHistory = [
        { index: file.meta.index, cs: file.meta.confState, members: { ...file.meta.members } },
      ];
      // The snapshot's membership replaces ours: members it no longer names leave (and their
      // transport peers with them).
      for (const id of [...this.members.keys()]) {
        if (id in file.meta.members) continue;
        this.members.delete(id);
        if (id !== this.id) this.opts.transport.removePeer(id);
      }
      for (const [id, url] of Object.entries(file.meta.members)) {
        this.members.set(id, url);
        if (id !== this.id) this.opts.transport.addPeer(id, url);
      }
      this.events.emit(
        "membership-change",
        membershipChangeOf(file.meta.index, file.meta.confState),
      );
      this.applier.enqueue({
        entries: [],
        snapshot: {
          position: { index: file.meta.index, term: file.meta.term },
          open: () => this.snapshotter.openData(file),
        },
      });
    }
    this.applier.enqueue({ entries: rd.committedEntries });
    const bs = this.raw.basicStatus();
    for (const rs of rd.readStates) {
      const key = requestKey(rs.requestCtx);
      if (this.lease.confirmed(key, bs.term, bs.state === "leader")) continue;
      this.reads.resolve(key, rs.index);
    }
    if (rd.softState !== undefined && rd.softState.lead !== this.knownLead) {
      // Read requests still pending went to a leader that no longer leads: its answer may never
      // come. Nothing was written, so they fail as NO_LEADER and the caller asks the new leader
      // now rather than at its timeout. (A late answer from the old leader finds no waiter.)
      if (this.knownLead !== "") {
        this.reads.rejectAll(
          () => new NexusError("NO_LEADER", "the leader changed while confirming the read; retry"),
        );
      }
      this.knownLead = rd.softState.lead;
      this.events.emit("leader-change", {
        leader: this.knownLead,
        leaderUrl: this.members.get(this.knownLead) ?? "",
        term: bs.term,
      });
    }
    this.raw.advance(rd);
  }

  /**
   * A test hook for crashing a leader in the middle of a joint change: with the injected hook
   * pauseBeforeLeaveJointMs (test-hooks.ts) above 0, a leader that has just appended the entry
   * leaving a joint configuration freezes for that long before it sends or persists it (it logs
   * "test hook: paused before leaving the joint configuration"), so a test can kill it there.
   * Resolves true when the node was stopped meanwhile (the Ready is dropped, as in a crash).
   */
  private async pausedForTest(): Promise<boolean> {
    const ms = this.opts.testHooks?.pauseBeforeLeaveJointMs?.() ?? 0;
    if (!(ms > 0) || this.raw.basicStatus().state !== "leader") return false;
    this.logger.warn({ ms }, "test hook: paused before leaving the joint configuration");
    const until = Date.now() + ms;
    while (!this.stopped && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    return this.stopped;
  }

  private fail(err: Error): void {
    if (this.fatal !== undefined) return;
    this.fatal = err;
    this.logger.error({ error: err.message }, "node stopped by a fatal error");
    void this.stop();
    this.opts.onFatal?.(err);
  }

  /** Stops ticking and applying, rejects pending requests, closes the WAL and the store. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    this.checker.stop();
    const why = this.fatal;
    this.reads.rejectAll(() => new StoppedError());
    this.appliedWaiters.rejectAll(() => new StoppedError());
    this.confWaiters.rejectAll(() => new StoppedError());
    this.events.close(why ?? new StoppedError());
    this.saves.rejectAll(() =>
      why !== undefined
        ? new NexusError("WAL_FAILED", `the node stopped: ${why.message}`, { cause: why })
        : new StoppedError(),
    );
    await this.applier.stop();
    while (this.processing) await new Promise((r) => setTimeout(r, 1));
    await this.wal.close().catch(() => undefined);
    await this.opts.store.close();
  }
}
