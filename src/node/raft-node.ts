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
 *
 * The parts it drives each live in their own file: durable-state.ts (open), member-directory.ts,
 * snapshot-manager.ts, member-changes.ts, client-requests.ts (waiters), lease-upkeep.ts.
 */
import { NexusError, StoppedError } from "../errors/index.js";
import { join } from "node:path";
import type { RawNode } from "../raft/raw-node.js";
import type { Ready } from "../raft/raw-node.js";
import { RaftError } from "../raft/raft.js";
import { decodeConfChange } from "../raft/confchange/codec.js";
import { LogMembers } from "./log-members.js";
import { MAX_QUORUM_AGE_MS } from "../transport/codec.js";
import type { ConfState, Entry, HardState, Message, NodeId, Snapshot } from "../raft/types.js";
import { createMessage } from "../raft/types.js";
import { isLeaseReadContext } from "./read-rounds.js";
import type { DiskStorage } from "../storage/disk-storage.js";
import type { Wal } from "../storage/wal.js";
import type { SnapshotFile, Snapshotter } from "../storage/snapshotter.js";
import { Applier } from "./applier.js";
import { RestoreStaging } from "./restore-staging.js";
import type { ProposalKind, SavedResult } from "./client-requests.js";
import { requestKey } from "./entry-payload.js";
import { writeTrace } from "./write-trace.js";
import type { ClientRequest } from "./entry-payload.js";
import type { NexusLogger } from "./options.js";
import { SILENT } from "./options.js";
import type { MonotonicClock } from "./leader-lease.js";
import { LeaseUpkeep } from "./lease-upkeep.js";
import { leaseBoundMs } from "./auto-timing.js";
import { LeaderFreshness, majorityHeardAtMs } from "./leader-freshness.js";
import type { Staleness } from "./leader-freshness.js";
import { ConsistencyChecker } from "./consistency-checker.js";
import type { Divergence } from "./consistency-checker.js";
import type { CheckRound } from "./consistency.js";
import { NodeEvents, membershipChangeOf } from "./node-events.js";
import { mostUpToDateVoter } from "./membership-policy.js";
import { ClientRequests } from "./client-requests.js";
import { MemberDirectory } from "./member-directory.js";
import { MemberChanges } from "./member-changes.js";
import type { MemberChange } from "./member-changes.js";
import { SnapshotManager } from "./snapshot-manager.js";
import { committedConflict, leaderDisagreesError } from "./log-divergence.js";
import { coreOf, openDurableState } from "./durable-state.js";
import { leavesJoint, pauseBeforeLeaveJoint } from "./test-hooks.js";
import type { RaftNodeOptions } from "./raft-node-options.js";

export type { PeerTransport, RaftNodeOptions } from "./raft-node-options.js";

export class RaftNode {
  readonly id: NodeId;
  private readonly raw: RawNode;
  private readonly wal: Wal;
  private readonly storage: DiskStorage;
  private readonly applier: Applier;
  private readonly opts: RaftNodeOptions;
  private readonly logger: NexusLogger;
  /** The newest hard state not yet in the WAL: one that only moved the commit index. */
  private unsavedHardState: HardState | undefined;
  /** Writes and reads in flight on this node, and reads waiting for an applied index. */
  private readonly requests: ClientRequests;
  /** Membership changes proposed here, until they are applied. */
  private readonly memberChanges: MemberChanges;
  /** What the Ready loop reports: leader change, membership change, divergence. */
  readonly events: NodeEvents;
  private timer: NodeJS.Timeout | undefined;
  private processing = false;
  /** The Ready loop's current run, awaited by stop(). */
  private loop: Promise<void> = Promise.resolve();
  private scheduled = false;
  private stopped = false;
  /** Aborted when the node stops: ends the test hook's pause. */
  private readonly halt = new AbortController();
  private fatal: Error | undefined;
  /** Members, their URLs, configurations by index, transport peers, when peers were heard. */
  private readonly directory: MemberDirectory;
  /** Member URLs by id, from applied conf changes and installed snapshots. */
  readonly members: ReadonlyMap<NodeId, string>;
  /** Members named by conf changes in the log not applied yet (admitted, with peers). */
  private readonly logMembers: LogMembers;
  /** Taking, streaming, receiving and installing snapshots; backups. */
  private readonly snapshots: SnapshotManager;
  private readonly clock: MonotonicClock;
  /** Consistency checks: this node's reports and verdicts. */
  private readonly checker: ConsistencyChecker;
  /** The leader's read lease kept renewed, and the vote hold-off after start. */
  private readonly lease: LeaseUpkeep;
  /** The highest leader commit index seen and when a leader was last heard (bounded reads). */
  private readonly freshness = new LeaderFreshness();
  /** The leader as of the last Ready that said ("" for none). */
  private knownLead: NodeId = "";
  /** Ticks since start. */
  private ticks = 0;

  private constructor(
    opts: RaftNodeOptions,
    raw: RawNode,
    wal: Wal,
    storage: DiskStorage,
    applier: Applier,
    snapshotter: Snapshotter,
    newest: SnapshotFile | undefined,
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
    const schedule = (): void => this.schedule();
    this.lease = new LeaseUpkeep({
      ...opts,
      clock: this.clock,
      raw,
      schedule,
      leaseBoundMs: () => {
        const cs = raw.status().config;
        const timingOf = (id: NodeId) => opts.transport.timingOf?.(id);
        return leaseBoundMs(
          [...cs.voters, ...cs.votersOutgoing],
          opts.id,
          opts,
          timingOf,
          opts.leaseDriftMargin ?? 0.1,
        );
      },
    });
    this.directory = new MemberDirectory(opts.id, opts.transport, this.logger);
    this.members = this.directory.urls;
    this.logMembers = new LogMembers(
      opts.id,
      opts.transport,
      this.directory.urls,
      decodeConfChange,
    );
    this.snapshots = new SnapshotManager(
      {
        ...opts,
        storage,
        wal,
        snapshotter,
        members: this.directory,
        logger: this.logger,
        restoreOpenAt: (index) => applier.restoreOpenAt(index),
      },
      () => this.stopped,
      newest,
    );
    this.requests = new ClientRequests({ ...opts, raw, applier, schedule }, () => this.running());
    this.memberChanges = new MemberChanges({
      ...opts,
      raw,
      storage,
      events: this.events,
      schedule,
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
      propose: (kind, data, requestId) => this.requests.proposeInternal(kind, data, requestId),
      halt: (reason) => this.applier.halt(reason),
      stepAside: () => this.stepAside(),
      onDiverged: (div) => this.events.emit("divergence", div),
    });
  }

  /** Throws why the node stopped, if it did. */
  private running(): void {
    if (this.stopped) throw this.fatal ?? new StoppedError();
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
    const { wal, storage, snapshotter, newest, position } = await openDurableState(opts);
    const raw = coreOf(opts, storage, logger);
    const holder: { node?: RaftNode } = {};
    const staging = await RestoreStaging.open(
      join(opts.snapDir, "restore-staging"),
      position,
      logger,
    );
    const applier = new Applier(
      opts.store,
      {
        onResult: (payload, index, result) => {
          if (payload.kind === "check-report") holder.node?.checker.onReport(payload);
          else {
            writeTrace?.applied(requestKey(payload.requestId), index);
            holder.node?.requests.saved(payload.requestId, index, result);
          }
        },
        onCheck: async (payload, index, outcomes) =>
          holder.node?.checker.onCheck(payload, index, outcomes),
        onApplied: (pos) => {
          holder.node?.requests.applied(pos.index);
          holder.node?.snapshots.maybeSnapshot(pos.index);
        },
        // The applier logs the store going down and coming back, once each.
        onStoreHealth: () => undefined,
      },
      logger,
      position,
      undefined,
      undefined,
      staging,
    );
    applier.crash = opts.crash;
    const node = new RaftNode(opts, raw, wal, storage, applier, snapshotter, newest);
    if (newest !== undefined) {
      node.directory.install(newest.meta.index, newest.meta.confState, newest.meta.members);
    }
    node.logMembers.appended(unknownCommitted(storage));
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
    this.lease.start();
    this.applier.start();
    this.checker.start();
    this.timer = setInterval(() => {
      if (this.stopped) return;
      this.raw.tick();
      this.lease.noteTransfer();
      this.lease.maybeRenew();
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
      // Just started: this node may have acknowledged a leader's lease before it went down.
      if (this.lease.ignoresVote(m)) continue;
      this.directory.heard(m.from, this.clock());
      if (m.type === "app" && this.divergesFromLeader(m)) return;
      if (m.type === "read-index" && this.answersByLease(m)) continue;
      try {
        this.raw.step(m);
        this.freshness.observe(
          m,
          this.raw.leaderCommitHeard(),
          this.raw.basicStatus().term,
          this.clock(),
        );
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
    this.lease.noteTransfer();
    this.schedule();
  }

  /**
   * A lease round's read-index request from another node (read-rounds.ts), answered at once with
   * this leader's commit index while its read lease is valid: the same index its own lease reads
   * use, with no heartbeat round. Without a valid lease (or not the leader) the core takes it.
   */
  private answersByLease(m: Message): boolean {
    if (m.from === this.id || m.from === "" || !isLeaseReadContext(m.context)) return false;
    const at = this.lease.readIndex();
    if (at === undefined) return false;
    this.opts.transport.send([
      createMessage({
        type: "read-index-resp",
        from: this.id,
        to: m.from,
        term: this.raw.basicStatus().term,
        index: at,
        context: m.context,
      }),
    ]);
    return true;
  }

  /**
   * Whether a message from `peer` arrived within the last election timeout. On the leader every
   * live member answers each heartbeat, so this says whether it is reachable now (the core's
   * recentActive is reset at every check-quorum round and would say no for a moment).
   */
  heardRecently(peer: NodeId): boolean {
    const windowMs = this.opts.heartbeatTickMs * this.opts.electionTick;
    return this.directory.heardWithin(peer, this.clock(), windowMs);
  }

  /**
   * Whether an append from a current leader contradicts an entry this node has committed
   * (log-divergence.ts); if so the node stops with a clear error (BAD_CONFIG).
   */
  private divergesFromLeader(m: Message): boolean {
    const at = committedConflict(this.storage, m);
    if (at === 0) return false;
    this.fail(leaderDisagreesError(m.from, at, this.opts.walDir, this.opts.snapDir));
    return true;
  }

  /**
   * The index a lease read may be served at now, or undefined (use readBarrier); asking keeps
   * the lease renewed for a while (LeaseUpkeep.readIndex).
   */
  leaseReadIndex(): number | undefined {
    this.running();
    return this.lease.readIndex();
  }

  /**
   * How stale this node's store may be now (bounded-read.ts): entries behind the highest leader
   * commit index it saw, and ms since it heard a leader. On the leader: behind its own commit
   * index, and ms since a quorum of voters was last heard (it may have been deposed since).
   */
  staleness(): Staleness {
    this.running();
    const now = this.clock();
    const applied = this.appliedIndex();
    const st = this.raw.basicStatus();
    if (st.state !== "leader") return this.freshness.staleness(applied, now);
    const at = this.quorumHeardAtMs(now);
    return {
      lagEntries: Math.max(0, st.commit - applied),
      sinceLeaderMs: at === undefined ? undefined : Math.max(0, now - at),
    };
  }

  /** When this node (as leader) last heard from a majority of its voters (both halves if joint). */
  private quorumHeardAtMs(now: number): number | undefined {
    const cs = this.raw.status().config;
    const heard = (id: string): number | undefined => this.directory.lastHeard(id);
    const incoming = majorityHeardAtMs(cs.voters, this.id, heard, now);
    const outgoing = majorityHeardAtMs(cs.votersOutgoing, this.id, heard, now);
    return incoming === undefined || outgoing === undefined
      ? undefined
      : Math.min(incoming, outgoing);
  }

  /**
   * The leader's appends and heartbeats say how long ago it heard from a majority (for followers'
   * bounded reads: leader-freshness.ts); never heard: the largest age.
   */
  private withQuorumAge(msgs: readonly Message[]): readonly Message[] {
    let age: number | undefined;
    let out: Message[] | undefined;
    for (let i = 0; i < msgs.length; i++) {
      const m = msgs[i]!;
      if (m.leaderCommit === undefined || (m.type !== "app" && m.type !== "heartbeat")) continue;
      if (age === undefined) {
        const now = this.clock();
        const at = this.quorumHeardAtMs(now);
        age =
          at === undefined
            ? MAX_QUORUM_AGE_MS
            : Math.min(MAX_QUORUM_AGE_MS, Math.max(0, Math.round(now - at)));
      }
      out ??= msgs.slice();
      out[i] = { ...m, leaderQuorumAgeMs: age };
    }
    return out ?? msgs;
  }

  /** Resolves once the store has applied `index` (or rejects when the node stops). */
  waitApplied(index: number, timeoutMs: number): Promise<void> {
    return this.requests.waitApplied(index, timeoutMs);
  }

  /** The transport could not deliver to a peer: the core stops pipelining to it. */
  reportUnreachable(peer: NodeId): void {
    if (this.stopped) return;
    this.raw.reportUnreachable(peer);
    this.schedule();
  }

  /**
   * Messages the transport never delivered: a write or read this node forwarded to a leader it
   * cannot reach fails at once as not written (ClientRequests.dropped).
   */
  reportDropped(msgs: readonly Message[]): void {
    if (this.stopped) return;
    this.requests.dropped(msgs);
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

  /**
   * Whether a conf change in this node's log that it has not applied yet names `id`: such a
   * member may lead before this node learns the entry is committed (log-members.ts).
   */
  namedByLog(id: NodeId): boolean {
    return this.logMembers.has(id);
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
   * Proposes a write; resolves with the store's result once applied here. UNKNOWN_OUTCOME at
   * replTimeoutMs, NO_LEADER / PROPOSAL_DROPPED, STOPPED (ClientRequests.propose).
   */
  propose(
    data: Uint8Array,
    args: Readonly<Record<string, string>> = {},
    kind: ProposalKind = "command",
    timeoutMs: number = this.opts.replTimeoutMs,
    clientRequest?: ClientRequest,
  ): Promise<SavedResult> {
    return this.requests.propose(data, args, kind, timeoutMs, clientRequest);
  }

  /**
   * A linearizable read point (ReadIndex, thesis §6.4; ClientRequests.readBarrier); with `lease`,
   * one a leader may confirm by its read lease (a lease read on a node without a valid lease).
   */
  readBarrier(timeoutMs: number, lease = false): Promise<void> {
    return this.requests.readBarrier(timeoutMs, lease);
  }

  /** A consistent copy of the store with its membership, for `nexus backup` (SnapshotManager). */
  backup(): ReturnType<SnapshotManager["backup"]> {
    return this.snapshots.backup();
  }

  /** The whole snapshot file named by a `snap` message, to stream to a follower. */
  openSnapshot(m: Message): AsyncIterable<Uint8Array> {
    return this.snapshots.openSnapshot(m);
  }

  /**
   * Stores a snapshot file streamed by the leader, then hands its message to the core, which
   * restores from it in the next Ready. Rejects (the leader retries) if it does not validate.
   */
  async receiveSnapshot(m: Message, body: AsyncIterable<Uint8Array>): Promise<void> {
    this.step([await this.snapshots.receive(m, body)]);
  }

  /**
   * Proposes adding (as a voter or learner) or removing one member; resolves with the new
   * configuration once applied here. Errors as MemberChanges.propose.
   */
  changeMember(
    type: "add-node" | "add-learner" | "remove-node",
    nodeId: NodeId,
    url: string,
  ): Promise<ConfState> {
    return this.changeMembers([{ type, nodeId, url }]);
  }

  /** Several membership changes at once, through joint consensus (MemberChanges). */
  async changeMembers(changes: readonly MemberChange[]): Promise<ConfState> {
    this.running();
    return this.memberChanges.propose(changes);
  }

  /** Asks the core to hand leadership to `to` (Raft thesis §3.10). Resolves at once. */
  transferLeadership(to: NodeId): void {
    this.running();
    this.raw.transferLeadership(to);
    this.lease.noteTransfer();
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled || this.processing || this.stopped) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      if (!this.processing) this.loop = this.process();
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

  /** One Ready, in the fixed order of the file's header (src/raft/DESIGN.md). */
  private async handleReady(rd: Ready): Promise<void> {
    this.logRole(rd);
    if (leavesJoint(rd.entries) && (await this.pausedForTest())) return;
    // The leader's appends go out while its own fsync runs.
    this.opts.transport.send(this.withQuorumAge(rd.messages));
    await this.persist(rd);
    // Followers acknowledge only what is durable.
    this.opts.transport.send(rd.persistedMessages);
    for (const e of rd.committedEntries) if (e.type === "conf-change") this.applyConfChange(e);
    const lastCommitted = rd.committedEntries[rd.committedEntries.length - 1];
    if (lastCommitted !== undefined) this.logMembers.appliedThrough(lastCommitted.index);
    if (rd.snapshot !== undefined) await this.installSnapshot(rd.snapshot);
    writeTrace?.committed(rd.committedEntries);
    this.applier.enqueue({ entries: rd.committedEntries });
    this.settleReads(rd.readStates);
    if (rd.softState !== undefined && rd.softState.lead !== this.knownLead) {
      this.leaderChanged(rd.softState.lead);
    }
    this.raw.advance(rd);
  }

  /** Logs a role change (info: leader, follower; debug: campaigning). */
  private logRole(rd: Ready): void {
    if (rd.softState === undefined) return;
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

  /** Writes a Ready's hard state, entries and snapshot marker to the WAL, then the log view. */
  private async persist(rd: Ready): Promise<void> {
    // A received snapshot's file is durable already (receiveSnapshot); its marker goes in the same
    // write batch as the entries and hard state after it ([marker][entries][hard state]): a crash
    // before that batch leaves a file the WAL does not record, which open() skips.
    const marker =
      rd.snapshot === undefined
        ? undefined
        : { index: rd.snapshot.metadata.index, term: rd.snapshot.metadata.term };
    // A hard state whose only change is a new commit index (rd.mustSync false) is not written on
    // its own: commitIndex is volatile (Raft §5.3; recovery clamps a stale one), and a write of it
    // would cost an fdatasync between commit and apply. It goes with the next save.
    const hardState = rd.hardState ?? this.unsavedHardState;
    this.unsavedHardState = rd.mustSync ? undefined : hardState;
    if (rd.mustSync) {
      writeTrace?.walStart(rd.entries);
      await this.wal.save(hardState, rd.entries, marker);
      writeTrace?.walDone(rd.entries);
      this.opts.crash?.(
        marker === undefined ? "node.ready-after-wal-save" : "node.receive-after-snapshot-marker",
      );
    } else {
      // Nothing to write: still give the transport its turn (it flushes on setImmediate), as a
      // WAL write would, so that this Ready's messages leave before a conf change applied below
      // removes their peer: a member being removed must still hear the commit that removes it.
      await new Promise<void>((r) => setImmediate(r));
    }
    if (rd.snapshot !== undefined && marker !== undefined) {
      this.snapshots.covered(marker);
      this.storage.applySnapshot(rd.snapshot);
      this.logMembers.clear();
    }
    this.storage.append(rd.entries);
    this.logMembers.appended(rd.entries);
    if (rd.hardState !== undefined) this.storage.setHardState(rd.hardState);
  }

  /** A committed conf change: the core's configuration, the members, and who waits on it. */
  private applyConfChange(e: Entry): void {
    const cc = decodeConfChange(e.data);
    const cs: ConfState = this.raw.applyConfChange(cc);
    this.directory.applyConfChange(e.index, cc, cs);
    this.events.emit("membership-change", membershipChangeOf(e.index, cs));
    this.memberChanges.applied(cc, cs);
    if (cc.changes.some((c) => c.type !== "remove-node")) this.snapshots.wantAfter(e.index);
  }

  /** The core restores from a received snapshot: its membership, then the store's data. */
  private async installSnapshot(snapshot: Snapshot): Promise<void> {
    const file = await this.snapshots.install(snapshot);
    this.events.emit("membership-change", membershipChangeOf(file.meta.index, file.meta.confState));
    this.applier.enqueue({
      entries: [],
      snapshot: {
        position: { index: file.meta.index, term: file.meta.term },
        open: () => this.snapshots.openData(file),
      },
    });
  }

  /** Read states: a lease renewal round's, or a read waiting for its index. */
  private settleReads(readStates: Ready["readStates"]): void {
    const bs = this.raw.basicStatus();
    for (const rs of readStates) {
      const key = requestKey(rs.requestCtx);
      if (this.lease.confirmed(key, bs.term, bs.state === "leader")) continue;
      this.requests.readConfirmed(key, rs.index);
    }
  }

  /** The leader changed: pending reads fail over, and listeners hear of it. */
  private leaderChanged(lead: NodeId): void {
    // Reads pending at the old leader may never be answered (see leaderLost).
    if (this.knownLead !== "") this.requests.leaderLost();
    this.knownLead = lead;
    this.events.emit("leader-change", {
      leader: this.knownLead,
      leaderUrl: this.members.get(this.knownLead) ?? "",
      term: this.raw.basicStatus().term,
    });
  }

  /**
   * The leave-joint test hook (test-hooks.ts): resolves true when the node was stopped during
   * its pause (the Ready is then dropped, as in a crash).
   */
  private async pausedForTest(): Promise<boolean> {
    const isLeader = this.raw.basicStatus().state === "leader";
    const { testHooks } = this.opts;
    return (
      (await pauseBeforeLeaveJoint(testHooks, isLeader, this.logger, this.halt.signal)) &&
      this.stopped
    );
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
    this.halt.abort();
    const why = this.fatal;
    this.requests.rejectAll(
      () => new StoppedError(),
      () =>
        why !== undefined
          ? new NexusError("WAL_FAILED", `the node stopped: ${why.message}`, { cause: why })
          : new StoppedError(),
    );
    this.memberChanges.rejectAll(() => new StoppedError());
    this.events.close(why ?? new StoppedError());
    await this.applier.stop();
    await this.loop;
    // The commit index known, if only a commit-only hard state has it (persist() defers those):
    // a restart then applies at once what this node knew committed.
    if (why === undefined && this.unsavedHardState !== undefined) {
      await this.wal.save(this.unsavedHardState, []).catch(() => undefined);
    }
    await this.wal.close().catch(() => undefined);
    await this.opts.store.close();
  }
}

/**
 * The conf-change entries of the log after the commit index it knows: not applied on open
 * (log-members.ts). Read in slices, so a long tail costs no more memory than one slice.
 */
function unknownCommitted(storage: DiskStorage): Entry[] {
  const out: Entry[] = [];
  const last = storage.lastIndex();
  let next = Math.max(storage.initialState().hardState.commit, storage.firstIndex() - 1) + 1;
  while (next <= last) {
    const slice = storage.entries(next, last + 1, 4 << 20);
    for (const e of slice) if (e.type === "conf-change") out.push(e);
    next += slice.length;
  }
  return out;
}
