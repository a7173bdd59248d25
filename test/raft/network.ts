/**
 * A test network of RawNodes in one process (Raft §5 scenario tests). Messages are delivered
 * synchronously in FIFO order; the test may drop links, isolate nodes or filter message types.
 * Each node's Ready is handled in the fixed order of the runtime: persist to its MemoryStorage,
 * send, apply, advance.
 */
import { RawNode } from "../../src/raft/raw-node.js";
import type { RaftConfig } from "../../src/raft/raft.js";
import { MemoryStorage } from "../../src/raft/storage.js";
import { createSeededRandom } from "../../src/raft/random.js";
import { decodeConfChange } from "../../src/raft/confchange/codec.js";
import type {
  ConfState,
  Entry,
  Message,
  MessageType,
  NodeId,
  ReadState,
} from "../../src/raft/types.js";

/** Node ids used by tests: "1", "2", ... */
export function ids(n: number): NodeId[] {
  return Array.from({ length: n }, (_, i) => String(i + 1));
}

export interface TestNodeOptions extends Partial<Omit<RaftConfig, "id" | "storage" | "random">> {
  readonly seed?: number;
}

export function newStorage(voters: NodeId[], learners: NodeId[] = []): MemoryStorage {
  return MemoryStorage.withConfState({
    voters,
    learners,
    votersOutgoing: [],
    learnersNext: [],
    autoLeave: false,
  });
}

export function newNode(id: NodeId, storage: MemoryStorage, opts: TestNodeOptions = {}): RawNode {
  const { seed, ...rest } = opts;
  return new RawNode({
    id,
    electionTick: 10,
    heartbeatTick: 1,
    storage,
    random: createSeededRandom(seed ?? Number(id) * 7919),
    ...rest,
  });
}

/** What a node applied, in order. */
export interface Applied {
  readonly entries: Entry[];
}

export class Network {
  readonly nodes = new Map<NodeId, RawNode>();
  readonly storages = new Map<NodeId, MemoryStorage>();
  readonly applied = new Map<NodeId, Entry[]>();
  /** Configurations each node switched to by applying conf changes, in order. */
  readonly confStates = new Map<NodeId, ConfState[]>();
  /** ReadStates each node's Readies returned, in order. */
  readonly readStates = new Map<NodeId, ReadState[]>();
  /** Links that drop every message: "from->to". */
  private readonly cut = new Set<string>();
  /** Message types that are dropped. */
  readonly ignored = new Set<MessageType>();
  /** Every message delivered, for inspection. */
  readonly delivered: Message[] = [];
  private queue: Message[] = [];
  /** Apply conf changes when committed (default true). */
  autoApplyConfChanges = true;
  /**
   * Optional interceptor applied to every message before delivery: return the message (possibly
   * changed) to deliver it, or undefined to drop it.
   */
  filter: ((m: Message) => Message | undefined) | undefined = undefined;
  /** Every message dropped by a cut link, an ignored type or the filter. */
  readonly dropped: Message[] = [];
  /** Options each node was created with, reused by restart(). */
  private readonly nodeOpts = new Map<NodeId, TestNodeOptions>();

  constructor(voters: NodeId[], opts: TestNodeOptions = {}, learners: NodeId[] = []) {
    for (const id of [...voters, ...learners]) {
      const st = newStorage(voters, learners);
      this.storages.set(id, st);
      this.nodes.set(id, newNode(id, st, opts));
      this.applied.set(id, []);
      this.nodeOpts.set(id, opts);
    }
  }

  /**
   * Replaces a node by one started from the given storage (e.g. a prepared log), forgetting what
   * it applied.
   */
  setNode(id: NodeId, storage: MemoryStorage, opts: TestNodeOptions = {}): RawNode {
    const n = newNode(id, storage, opts);
    this.storages.set(id, storage);
    this.nodes.set(id, n);
    this.applied.set(id, []);
    this.nodeOpts.set(id, opts);
    return n;
  }

  /**
   * Simulates a crash and restart: the node loses its volatile state and starts again from its
   * storage. Its state machine restarts from the snapshot and re-applies the committed entries
   * after it, conf changes included (the configuration in storage is the snapshot's).
   */
  restart(id: NodeId): RawNode {
    const st = this.storages.get(id)!;
    const snapIndex = st.firstIndex() - 1;
    this.applied.set(
      id,
      this.applied.get(id)!.filter((e) => e.index <= snapIndex),
    );
    const n = newNode(id, st, { ...this.nodeOpts.get(id), applied: snapIndex });
    this.nodes.set(id, n);
    return n;
  }

  /** Ticks one node `n` times, settling after each tick. */
  tickNode(id: NodeId, n = 1): void {
    for (let i = 0; i < n; i++) {
      this.node(id).tick();
      this.settle();
    }
  }

  node(id: NodeId): RawNode {
    const n = this.nodes.get(id);
    if (n === undefined) throw new Error(`no node ${id}`);
    return n;
  }

  /** Adds a node (e.g. a new member) with an empty storage configured with `voters`. */
  addNode(
    id: NodeId,
    voters: NodeId[],
    opts: TestNodeOptions = {},
    learners: NodeId[] = [],
  ): RawNode {
    const st = newStorage(voters, learners);
    const n = newNode(id, st, opts);
    this.storages.set(id, st);
    this.nodes.set(id, n);
    this.applied.set(id, []);
    this.nodeOpts.set(id, opts);
    return n;
  }

  isolate(id: NodeId): void {
    for (const other of this.nodes.keys()) {
      if (other === id) continue;
      this.cut.add(`${id}->${other}`);
      this.cut.add(`${other}->${id}`);
    }
  }

  cutLink(a: NodeId, b: NodeId): void {
    this.cut.add(`${a}->${b}`);
    this.cut.add(`${b}->${a}`);
  }

  heal(): void {
    this.cut.clear();
    this.ignored.clear();
    this.filter = undefined;
  }

  /** Restores the links of one node (undoes isolate(id)). */
  reconnect(id: NodeId): void {
    for (const link of [...this.cut]) {
      const [a, b] = link.split("->");
      if (a === id || b === id) this.cut.delete(link);
    }
  }

  /** Handles one node's Ready if it has one; returns whether it did. */
  private handleReady(id: NodeId): boolean {
    const n = this.node(id);
    if (!n.hasReady()) return false;
    const rd = n.ready();
    const st = this.storages.get(id)!;
    this.queue.push(...rd.messages);
    if (rd.hardState !== undefined) st.setHardState(rd.hardState);
    if (rd.snapshot !== undefined) st.applySnapshot(rd.snapshot);
    st.append(rd.entries);
    this.queue.push(...rd.persistedMessages);
    if (rd.readStates.length > 0) {
      const rs = this.readStates.get(id) ?? [];
      rs.push(...rd.readStates);
      this.readStates.set(id, rs);
    }
    const ap = this.applied.get(id)!;
    for (const e of rd.committedEntries) {
      ap.push(e);
      if (e.type === "conf-change" && this.autoApplyConfChanges) {
        const cs = n.applyConfChange(decodeConfChange(e.data));
        const seen = this.confStates.get(id) ?? [];
        seen.push(cs);
        this.confStates.set(id, seen);
      }
    }
    n.advance(rd);
    return true;
  }

  /** Processes Readies and delivers messages until nothing is left to do. */
  settle(maxRounds = 100000): void {
    for (let round = 0; round < maxRounds; round++) {
      let progressed = false;
      for (const id of [...this.nodes.keys()].sort()) {
        if (this.handleReady(id)) progressed = true;
      }
      const q = this.queue;
      this.queue = [];
      for (const orig of q) {
        progressed = true;
        if (this.cut.has(`${orig.from}->${orig.to}`) || this.ignored.has(orig.type)) {
          this.dropped.push(orig);
          continue;
        }
        const m = this.filter === undefined ? orig : this.filter(orig);
        if (m === undefined) {
          this.dropped.push(orig);
          continue;
        }
        const to = this.nodes.get(m.to);
        if (to === undefined) continue;
        this.delivered.push(m);
        try {
          to.step(m);
        } catch (err) {
          // Forwarded proposals that the leader refuses are dropped, like a lost message.
          if ((err as { name?: string }).name !== "RaftError") throw err;
        }
      }
      if (!progressed) return;
    }
    throw new Error("network did not settle");
  }

  /** Ticks every node `n` times, settling after each tick. */
  tick(n = 1): void {
    for (let i = 0; i < n; i++) {
      for (const id of [...this.nodes.keys()].sort()) this.node(id).tick();
      this.settle();
    }
  }

  /** Makes `id` campaign and settles. */
  campaign(id: NodeId): void {
    this.node(id).campaign();
    this.settle();
  }

  propose(id: NodeId, data: string): void {
    this.node(id).propose(new TextEncoder().encode(data));
    this.settle();
  }

  /** The leader as seen by the majority of nodes, if every node that knows one agrees. */
  leader(): NodeId | undefined {
    for (const [id, n] of this.nodes) {
      if (n.raft.state === "leader") return id;
    }
    return undefined;
  }

  /** Normal-entry payloads applied by a node, as strings (empty no-ops omitted). */
  appliedData(id: NodeId): string[] {
    return this.applied
      .get(id)!
      .filter((e) => e.type === "normal" && e.data.byteLength > 0)
      .map((e) => new TextDecoder().decode(e.data));
  }
}
