/**
 * A deterministic simulation of a Raft cluster in one process: RawNodes with durable in-memory
 * storage, a simulated network that drops, duplicates, delays and reorders messages, partitions
 * that come and go, crashes and restarts (a node keeps only what it persisted), membership
 * changes, leadership transfers, reads, snapshots and compaction. After every step the checker
 * verifies Raft's safety properties; after the faults heal the cluster must make progress.
 *
 * Everything is driven by one seeded PRNG: the same seed replays the same run exactly.
 */
import { RawNode } from "../../src/raft/raw-node.js";
import type { Ready } from "../../src/raft/raw-node.js";
import { RaftError } from "../../src/raft/raft.js";
import { MemoryStorage } from "../../src/raft/storage.js";
import { createSeededRandom } from "../../src/raft/random.js";
import { bootstrapEntries } from "../../src/raft/bootstrap.js";
import { decodeConfChange } from "../../src/raft/confchange/codec.js";
import type { ConfChange, ConfState, Entry, Message, NodeId } from "../../src/raft/types.js";
import { EMPTY_CONF_STATE } from "../../src/raft/types.js";
import { SimRandom } from "./sim-random.js";

/** A violated safety or liveness property. */
export class SimFailure extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SimFailure";
  }
}

/** 53-bit string hash (cyrb53): cheap, well distributed, deterministic. */
export function hash53(s: string, seed = 0): number {
  let h1 = 0xdeadbeef ^ seed;
  let h2 = 0x41c6ce57 ^ seed;
  for (let i = 0; i < s.length; i++) {
    const ch = s.charCodeAt(i);
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4294967296 * (2097151 & h2) + (h1 >>> 0);
}

function bytesKey(b: Uint8Array): string {
  let s = "";
  for (const x of b) s += String.fromCharCode(x);
  return s;
}

function entryHash(e: Entry): number {
  return hash53(`${e.type}|${bytesKey(e.data)}`);
}

function chainHash(prev: number, index: number, term: number, h: number): number {
  return hash53(`${prev}|${index}|${term}|${h}`);
}

/** The state machine: durable, with its applied index persisted atomically with its state. */
interface StateMachine {
  applied: number;
  /** Rolling hash of every entry applied, in order. */
  chain: number;
}

interface PendingRead {
  /** Highest index applied anywhere when the read was issued: the read point must cover it. */
  readonly minIndex: number;
}

/** Knobs of one run, all derived from the seed. */
export interface SimParams {
  readonly initialVoters: number;
  readonly faultTicks: number;
  readonly dropRate: number;
  readonly dupRate: number;
  readonly maxDelay: number;
  readonly crashRate: number;
  readonly partitionRate: number;
  readonly proposeRate: number;
  readonly confChangeRate: number;
  readonly transferRate: number;
  readonly readRate: number;
  readonly snapshotEvery: number;
  readonly maxInflight: number;
  readonly maxSizePerMsg: number;
}

export function paramsForSeed(seed: number, faultTicks: number): SimParams {
  const r = new SimRandom(seed ^ 0x5eed);
  return {
    initialVoters: r.pick([3, 3, 5, 5, 4]),
    faultTicks,
    dropRate: r.pick([0, 0.02, 0.05, 0.1, 0.2]),
    dupRate: r.pick([0, 0.02, 0.05]),
    maxDelay: r.pick([0, 1, 3, 6]),
    crashRate: r.pick([0.002, 0.005, 0.01]),
    partitionRate: r.pick([0.002, 0.005, 0.01]),
    proposeRate: r.pick([0.2, 0.5, 1]),
    confChangeRate: r.pick([0.005, 0.01, 0.02]),
    transferRate: r.pick([0, 0.003, 0.01]),
    readRate: r.pick([0.05, 0.2]),
    snapshotEvery: r.pick([8, 20, 50]),
    maxInflight: r.pick([1, 4, 64]),
    maxSizePerMsg: r.pick([1, 64, 1024 * 1024]),
  };
}

class SimNode {
  raw: RawNode | undefined;
  incarnation = 0;
  readonly sm: StateMachine = { applied: 0, chain: 0 };
  /** Configurations by the index of the entry that produced them (for snapshots). */
  confAt: { index: number; cs: ConfState }[] = [];
  pendingReads = new Map<string, PendingRead>();
  readCounter = 0;
  lastSnapshotIndex = 0;
  /** A conf change was applied since the last snapshot: take one (see Storage.snapshot). */
  confChangedSinceSnapshot = false;

  constructor(
    readonly id: NodeId,
    readonly durable: MemoryStorage,
  ) {}

  get alive(): boolean {
    return this.raw !== undefined;
  }
}

interface InFlight {
  readonly deliverAt: number;
  readonly m: Message;
}

/** Counters reported at the end of a run. */
export interface SimStats {
  ticks: number;
  delivered: number;
  dropped: number;
  crashes: number;
  partitions: number;
  proposals: number;
  confChanges: number;
  transfers: number;
  reads: number;
  readsAnswered: number;
  snapshotsSent: number;
  maxCommit: number;
  leaders: number;
}

export class ClusterSim {
  readonly rng: SimRandom;
  readonly p: SimParams;
  readonly nodes = new Map<NodeId, SimNode>();
  private net: InFlight[] = [];
  private blocked = new Set<string>();
  private partitionUntil = 0;
  now = 0;
  private nextId: number;
  private proposalCounter = 0;
  private faultsOn = true;
  readonly trace: string[] = [];
  readonly stats: SimStats = {
    ticks: 0,
    delivered: 0,
    dropped: 0,
    crashes: 0,
    partitions: 0,
    proposals: 0,
    confChanges: 0,
    transfers: 0,
    reads: 0,
    readsAnswered: 0,
    snapshotsSent: 0,
    maxCommit: 0,
    leaders: 0,
  };

  // ---- global knowledge for the checker ----
  /** term -> leader. */
  private leaderOfTerm = new Map<number, NodeId>();
  /** index -> what was applied there (by anyone), with the chain hash up to it. */
  private appliedAt = new Map<number, { term: number; hash: number; chain: number }>();
  private maxAppliedAnywhere = 0;
  /** (index, term) -> entry hash and previous term: for log matching. */
  private seenEntries = new Map<string, { hash: number; prevTerm: number | undefined }>();

  constructor(
    readonly seed: number,
    faultTicks = 600,
    readonly verbose = false,
  ) {
    this.rng = new SimRandom(seed);
    this.p = paramsForSeed(seed, faultTicks);
    const voters: NodeId[] = [];
    for (let i = 1; i <= this.p.initialVoters; i++) voters.push(String(i));
    const boot = bootstrapEntries(voters.map((id) => ({ id })));
    for (const id of voters) {
      const st = new MemoryStorage();
      st.append(boot.entries);
      st.setHardState(boot.hardState);
      const n = new SimNode(id, st);
      this.nodes.set(id, n);
      this.start(n);
    }
    this.nextId = this.p.initialVoters + 1;
  }

  private log(s: string): void {
    if (this.verbose) this.trace.push(`[t=${this.now}] ${s}`);
  }

  private start(n: SimNode): void {
    n.incarnation++;
    n.pendingReads.clear();
    const snap = n.durable.snapshot();
    // The store is behind the durable snapshot (crash between persisting and restoring it):
    // restore it first, as the runtime does on restart.
    if (snap.metadata.index > n.sm.applied)
      this.restoreStateMachine(n, snap.metadata.index, snap.data);
    n.raw = new RawNode({
      id: n.id,
      electionTick: 10,
      heartbeatTick: 1,
      storage: n.durable,
      // Conf changes after the snapshot are re-delivered and re-applied to the core; the state
      // machine skips what it already applied.
      applied: snap.metadata.index,
      random: createSeededRandom(hash53(`${this.seed}:${n.id}:${n.incarnation}`) >>> 0),
      maxInflightMsgs: this.p.maxInflight,
      maxSizePerMsg: this.p.maxSizePerMsg,
    });
    n.confAt = [{ index: snap.metadata.index, cs: snap.metadata.confState }];
  }

  private crash(n: SimNode): void {
    this.log(`crash ${n.id}`);
    n.raw = undefined;
    this.stats.crashes++;
  }

  // ---- the network ----

  private send(msgs: readonly Message[]): void {
    for (const m of msgs) {
      if (this.faultsOn && this.rng.chance(this.p.dropRate)) {
        this.stats.dropped++;
        this.reportDrop(m);
        continue;
      }
      const copies = this.faultsOn && this.rng.chance(this.p.dupRate) ? 2 : 1;
      for (let c = 0; c < copies; c++) {
        const delay = this.faultsOn ? this.rng.int(this.p.maxDelay + 1) : 0;
        this.net.push({ deliverAt: this.now + delay, m });
      }
    }
  }

  private reportDrop(m: Message): void {
    const from = this.nodes.get(m.from);
    if (from?.raw === undefined) return;
    if (m.type === "snap") from.raw.reportSnapshot(m.to, "failure");
    else if (m.type === "app") from.raw.reportUnreachable(m.to);
  }

  private deliverDue(): boolean {
    const due: InFlight[] = [];
    const later: InFlight[] = [];
    for (const f of this.net) (f.deliverAt <= this.now ? due : later).push(f);
    this.net = later;
    // Reordering: messages due at the same time arrive in random order.
    for (let i = due.length - 1; i > 0; i--) {
      const j = this.rng.int(i + 1);
      [due[i], due[j]] = [due[j]!, due[i]!];
    }
    for (const { m } of due) {
      const to = this.nodes.get(m.to);
      if (to?.raw === undefined || this.blocked.has(`${m.from}->${m.to}`)) {
        this.stats.dropped++;
        this.reportDrop(m);
        continue;
      }
      this.stats.delivered++;
      try {
        to.raw.step(m);
      } catch (err) {
        if (!(err instanceof RaftError)) throw err;
      }
      if (m.type === "snap") {
        const from = this.nodes.get(m.from);
        from?.raw?.reportSnapshot(m.to, "finish");
        this.stats.snapshotsSent++;
      }
    }
    return due.length > 0;
  }

  // ---- Ready handling, in the runtime's order ----

  private processReadies(): boolean {
    let any = false;
    for (const n of this.sortedNodes()) {
      for (let guard = 0; n.raw !== undefined && n.raw.hasReady(); guard++) {
        if (guard > 1000) throw new SimFailure(`node ${n.id} never ran out of Readies`);
        any = true;
        this.handleReady(n, n.raw.ready());
      }
    }
    return any;
  }

  private handleReady(n: SimNode, rd: Ready): void {
    const raw = n.raw!;
    if (rd.softState?.raftState === "leader") this.onBecameLeader(n);
    this.send(rd.messages);
    // Persist. A crash may strike right after: what is persisted survives, nothing else.
    if (rd.snapshot !== undefined) n.durable.applySnapshot(rd.snapshot);
    n.durable.append(rd.entries);
    if (rd.hardState !== undefined) n.durable.setHardState(rd.hardState);
    if (this.faultsOn && this.rng.chance(this.p.crashRate / 4)) {
      this.crash(n);
      return;
    }
    this.send(rd.persistedMessages);
    if (rd.snapshot !== undefined) {
      this.restoreStateMachine(n, rd.snapshot.metadata.index, rd.snapshot.data);
      n.confAt = [{ index: rd.snapshot.metadata.index, cs: rd.snapshot.metadata.confState }];
    }
    for (const e of rd.committedEntries) this.applyEntry(n, e);
    for (const rs of rd.readStates) this.onReadState(n, rs.index, bytesKey(rs.requestCtx));
    raw.advance(rd);
    this.maybeSnapshot(n);
  }

  private restoreStateMachine(n: SimNode, index: number, data: Uint8Array): void {
    const s = JSON.parse(new TextDecoder().decode(data)) as { applied: number; chain: number };
    if (s.applied !== index) {
      throw new SimFailure(`node ${n.id}: snapshot at ${index} holds state at ${s.applied}`);
    }
    const g = this.appliedAt.get(index);
    if (g === undefined || g.chain !== s.chain) {
      throw new SimFailure(`node ${n.id}: snapshot at ${index} disagrees with what was applied`);
    }
    if (index < n.sm.applied) {
      throw new SimFailure(
        `node ${n.id}: restored snapshot ${index} behind applied ${n.sm.applied}`,
      );
    }
    n.sm.applied = index;
    n.sm.chain = s.chain;
    this.log(`${n.id} restored snapshot at ${index}`);
  }

  private applyEntry(n: SimNode, e: Entry): void {
    if (e.type === "conf-change") {
      const cs = n.raw!.applyConfChange(decodeConfChange(e.data));
      n.confAt.push({ index: e.index, cs });
      n.confChangedSinceSnapshot = true;
    }
    if (e.index <= n.sm.applied) return; // replayed after a restart: already applied
    if (e.index !== n.sm.applied + 1) {
      throw new SimFailure(`node ${n.id} applied ${e.index} after ${n.sm.applied}: a gap`);
    }
    const h = entryHash(e);
    const prev = n.sm.chain;
    const chain = chainHash(prev, e.index, e.term, h);
    const g = this.appliedAt.get(e.index);
    if (g === undefined) {
      const gp = this.appliedAt.get(e.index - 1);
      if (e.index > 1 && gp === undefined) {
        throw new SimFailure(
          `node ${n.id} applied ${e.index} before anyone applied ${e.index - 1}`,
        );
      }
      this.appliedAt.set(e.index, { term: e.term, hash: h, chain });
      this.maxAppliedAnywhere = Math.max(this.maxAppliedAnywhere, e.index);
    } else if (g.term !== e.term || g.hash !== h || g.chain !== chain) {
      throw new SimFailure(
        `state machine safety: node ${n.id} applied a different entry at ${e.index} ` +
          `(term ${e.term} vs ${g.term})`,
      );
    }
    n.sm.applied = e.index;
    n.sm.chain = chain;
  }

  private maybeSnapshot(n: SimNode): void {
    if (n.raw === undefined) return;
    if (n.sm.applied - n.lastSnapshotIndex < this.p.snapshotEvery && !n.confChangedSinceSnapshot) {
      return;
    }
    const idx = n.sm.applied;
    if (idx <= n.durable.snapshot().metadata.index || idx > n.durable.lastIndex()) return;
    let cs: ConfState | undefined;
    for (const c of n.confAt) if (c.index <= idx) cs = c.cs;
    if (cs === undefined) return;
    const data = new TextEncoder().encode(JSON.stringify({ applied: idx, chain: n.sm.chain }));
    n.durable.createSnapshot(idx, cs, data);
    const keep = Math.max(1, idx - 5);
    if (keep > n.durable.firstIndex()) n.durable.compact(keep);
    // Keep the configuration in force at idx and every later one.
    const atIdx = n.confAt.filter((c) => c.index <= idx).pop();
    n.confAt = [...(atIdx === undefined ? [] : [atIdx]), ...n.confAt.filter((c) => c.index > idx)];
    n.lastSnapshotIndex = idx;
    n.confChangedSinceSnapshot = false;
  }

  // ---- reads ----

  private issueRead(n: SimNode): void {
    const ctx = `${n.id}/${n.incarnation}/${n.readCounter++}`;
    n.pendingReads.set(ctx, { minIndex: this.maxAppliedAnywhere });
    n.raw!.readIndex(new TextEncoder().encode(ctx));
    this.stats.reads++;
  }

  private onReadState(n: SimNode, index: number, ctxBytes: string): void {
    const ctx = ctxBytes;
    const pr = n.pendingReads.get(ctx);
    if (pr === undefined) {
      throw new SimFailure(`node ${n.id} got a ReadState for ${ctx}, which it is not waiting for`);
    }
    n.pendingReads.delete(ctx);
    if (index < pr.minIndex) {
      throw new SimFailure(
        `read ${ctx} on ${n.id} got read index ${index}, below ${pr.minIndex} already applied`,
      );
    }
    const r = n.raw!.raft;
    if (r.state === "leader" && r.raftLog.termOrUndefined(r.raftLog.committed) !== r.term) {
      throw new SimFailure(`leader ${n.id} served a read before committing in its term ${r.term}`);
    }
    this.stats.readsAnswered++;
  }

  // ---- safety checks ----

  private onBecameLeader(n: SimNode): void {
    const r = n.raw!.raft;
    const prev = this.leaderOfTerm.get(r.term);
    if (prev !== undefined && prev !== n.id) {
      throw new SimFailure(`election safety: ${prev} and ${n.id} both leaders of term ${r.term}`);
    }
    this.leaderOfTerm.set(r.term, n.id);
    this.stats.leaders++;
    this.log(`${n.id} became leader of term ${r.term}`);
    // Leader completeness: every entry applied anywhere is in the new leader's log.
    const first = r.raftLog.firstIndex();
    for (let i = Math.max(first, 1); i <= this.maxAppliedAnywhere; i++) {
      const g = this.appliedAt.get(i)!;
      const t = r.raftLog.termOrUndefined(i);
      if (t !== g.term) {
        throw new SimFailure(
          `leader completeness: leader ${n.id} (term ${r.term}) has term ${String(t)} at ${i}, ` +
            `committed term ${g.term}`,
        );
      }
    }
    if (first - 1 > this.maxAppliedAnywhere) {
      throw new SimFailure(`leader ${n.id} compacted past anything applied`);
    }
  }

  /** Log matching over every live node's log (stable and unstable parts). */
  private checkLogs(): void {
    for (const n of this.nodes.values()) {
      if (n.raw === undefined) continue;
      const log = n.raw.raft.raftLog;
      const first = log.firstIndex();
      const last = log.lastIndex();
      const ents = last >= first ? log.slice(first, last + 1, Number.MAX_SAFE_INTEGER) : [];
      let prevTerm = log.termOrUndefined(first - 1);
      for (const e of ents) {
        const key = `${e.index}/${e.term}`;
        const h = entryHash(e);
        const seen = this.seenEntries.get(key);
        if (seen === undefined) {
          this.seenEntries.set(key, { hash: h, prevTerm });
        } else {
          if (seen.hash !== h) {
            throw new SimFailure(
              `log matching: two different entries at index ${e.index} term ${e.term}`,
            );
          }
          if (seen.prevTerm !== undefined && prevTerm !== undefined && seen.prevTerm !== prevTerm) {
            throw new SimFailure(
              `log matching: entries at ${e.index}/${e.term} follow different terms ` +
                `(${seen.prevTerm} vs ${prevTerm}) on ${n.id}`,
            );
          }
        }
        prevTerm = e.term;
      }
      if (log.committed > this.stats.maxCommit) this.stats.maxCommit = log.committed;
      // Nothing committed is lost: a node never holds less than it applied.
      if (log.lastIndex() < n.sm.applied && !log.hasPendingSnapshot()) {
        throw new SimFailure(
          `node ${n.id} log ends at ${log.lastIndex()} below applied ${n.sm.applied}`,
        );
      }
    }
  }

  // ---- faults and workload ----

  private sortedNodes(): SimNode[] {
    return [...this.nodes.values()].sort((a, b) => Number(a.id) - Number(b.id));
  }

  private leader(): SimNode | undefined {
    let best: SimNode | undefined;
    for (const n of this.sortedNodes()) {
      if (n.raw?.raft.state !== "leader") continue;
      if (best === undefined || n.raw.raft.term > best.raw!.raft.term) best = n;
    }
    return best;
  }

  private propose(n: SimNode): void {
    const data = new TextEncoder().encode(`p${this.seed}-${this.proposalCounter++}`);
    try {
      n.raw!.propose(data);
      this.stats.proposals++;
    } catch (err) {
      if (!(err instanceof RaftError)) throw err;
    }
  }

  private changeMembership(l: SimNode): void {
    const r = l.raw!.raft;
    const cfg = r.trk.config;
    const voters = [...cfg.voters.incoming.ids].sort();
    const learners = [...cfg.learners].sort();
    const choice = this.rng.int(6);
    let cc: ConfChange | undefined;
    const newNode = (): NodeId => {
      const id = String(this.nextId++);
      const n = new SimNode(id, MemoryStorage.withConfState(EMPTY_CONF_STATE));
      this.nodes.set(id, n);
      this.start(n);
      return id;
    };
    const empty = new Uint8Array(0);
    if (choice === 0 && this.nodes.size < 9) {
      cc = {
        transition: "auto",
        changes: [{ type: "add-node", nodeId: newNode() }],
        context: empty,
      };
    } else if (choice === 1 && this.nodes.size < 9) {
      cc = {
        transition: "auto",
        changes: [{ type: "add-learner", nodeId: newNode() }],
        context: empty,
      };
    } else if (choice === 2 && learners.length > 0) {
      cc = {
        transition: "auto",
        changes: [{ type: "add-node", nodeId: this.rng.pick(learners) }],
        context: empty,
      };
    } else if (choice === 3 && voters.length > 3) {
      cc = {
        transition: "auto",
        changes: [{ type: "remove-node", nodeId: this.rng.pick(voters) }],
        context: empty,
      };
    } else if (choice === 4 && voters.length >= 3 && this.nodes.size < 9 && !cfg.voters.isJoint) {
      // Replace a voter through joint consensus.
      const old = this.rng.pick(voters);
      cc = {
        transition: this.rng.pick(["auto", "implicit"] as const),
        changes: [
          { type: "add-node", nodeId: newNode() },
          { type: "remove-node", nodeId: old },
        ],
        context: empty,
      };
    } else if (choice === 5 && learners.length > 0) {
      cc = {
        transition: "auto",
        changes: [{ type: "remove-node", nodeId: this.rng.pick(learners) }],
        context: empty,
      };
    }
    if (cc === undefined) return;
    try {
      l.raw!.proposeConfChange(cc);
      this.stats.confChanges++;
      this.log(`${l.id} proposed ${JSON.stringify(cc.changes)}`);
    } catch (err) {
      if (!(err instanceof RaftError)) throw err;
    }
  }

  private partition(): void {
    this.blocked.clear();
    const ids = this.sortedNodes().map((n) => n.id);
    if (this.rng.chance(0.5)) {
      // Leaders are isolated more often: that is what makes logs diverge (Figure 8 cases).
      const l = this.leader();
      const victim = l !== undefined && this.rng.chance(0.6) ? l.id : this.rng.pick(ids);
      for (const o of ids) {
        if (o === victim) continue;
        this.blocked.add(`${victim}->${o}`);
        this.blocked.add(`${o}->${victim}`);
      }
      this.log(`isolate ${victim}`);
    } else {
      const side = new Set(ids.filter(() => this.rng.chance(0.5)));
      for (const a of ids) {
        for (const b of ids) {
          if (side.has(a) !== side.has(b)) this.blocked.add(`${a}->${b}`);
        }
      }
      this.log(`split ${[...side].join(",")} | rest`);
    }
    this.partitionUntil = this.now + this.rng.pick([2, 5, 20, 60]) + this.rng.int(100);
    this.stats.partitions++;
  }

  private injectFaults(): void {
    const nodes = this.sortedNodes();
    if (this.blocked.size > 0 && this.now >= this.partitionUntil) {
      this.blocked.clear();
      this.log("heal partition");
    } else if (this.blocked.size === 0 && this.rng.chance(this.p.partitionRate)) {
      this.partition();
    }
    for (const n of nodes) {
      const isLeader = n.raw?.raft.state === "leader";
      const rate = isLeader ? this.p.crashRate * 3 : this.p.crashRate;
      if (n.raw !== undefined && this.rng.chance(rate)) this.crash(n);
      else if (n.raw === undefined && this.rng.chance(0.05)) this.start(n);
    }
    const live = nodes.filter((n) => n.raw !== undefined);
    if (live.length === 0) return;
    if (this.rng.chance(this.p.proposeRate)) this.propose(this.rng.pick(live));
    if (this.rng.chance(this.p.readRate)) this.issueRead(this.rng.pick(live));
    const l = this.leader();
    if (l !== undefined && this.rng.chance(this.p.confChangeRate)) this.changeMembership(l);
    if (l !== undefined && this.rng.chance(this.p.transferRate)) {
      const voters = [...l.raw!.raft.trk.config.voters.incoming.ids].filter((id) => id !== l.id);
      if (voters.length > 0) {
        const to = this.rng.pick(voters.sort());
        l.raw!.transferLeadership(to);
        this.stats.transfers++;
        this.log(`${l.id} transfers leadership to ${to}`);
      }
    }
  }

  /** One tick: faults, ticks, then message rounds until quiet (bounded). */
  step(): void {
    this.now++;
    this.stats.ticks++;
    if (this.faultsOn) this.injectFaults();
    for (const n of this.sortedNodes()) n.raw?.tick();
    for (let round = 0; round < 8; round++) {
      const a = this.processReadies();
      const b = this.deliverDue();
      if (!a && !b) break;
    }
    this.processReadies();
    this.checkLogs();
  }

  /** The whole run: faults, then healing and a liveness check. Throws SimFailure. */
  run(): void {
    for (let i = 0; i < this.p.faultTicks; i++) this.step();
    // Heal everything.
    this.faultsOn = false;
    this.blocked.clear();
    for (const n of this.sortedNodes()) if (n.raw === undefined) this.start(n);
    const healStart = this.now;
    const deadline = healStart + 1500;
    const want: number[] = [];
    let target = -1;
    while (this.now < deadline) {
      this.step();
      const l = this.leader();
      if (l === undefined || l.raw!.raft.leadTransferee !== "") continue;
      // Members (by the leader's configuration) must all apply what the leader commits.
      if (target < 0 && !l.raw!.raft.trk.config.voters.isJoint) {
        for (let i = 0; i < 3; i++) this.propose(l);
        target = l.raw!.raft.raftLog.lastIndex();
        want.push(target);
      }
      if (target < 0) continue;
      const cfg = l.raw!.raft.trk.config;
      const members = [...cfg.voters.ids(), ...cfg.learners];
      if (l.raw!.raft.raftLog.lastIndex() < target) {
        // The proposals were lost with a deposed leader: try again.
        target = -1;
        continue;
      }
      if (members.every((id) => (this.nodes.get(id)?.sm.applied ?? -1) >= target)) return;
    }
    const detail = this.sortedNodes()
      .map(
        (n) =>
          `${n.id}:${n.raw?.raft.state ?? "down"}/t${n.raw?.raft.term ?? "-"}/applied ${n.sm.applied}`,
      )
      .join(" ");
    throw new SimFailure(`liveness: no progress within 1500 ticks after healing (${detail})`);
  }
}

/** Runs one seed; returns undefined on success or the failure message. */
export function runSeed(
  seed: number,
  faultTicks = 600,
  verbose = false,
): { error?: string; sim: ClusterSim } {
  const sim = new ClusterSim(seed, faultTicks, verbose);
  try {
    sim.run();
    return { sim };
  } catch (err) {
    const msg = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    return { error: msg, sim };
  }
}
