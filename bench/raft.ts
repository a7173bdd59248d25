/**
 * `npm run bench -- raft [--seconds S]`: proposals committed per second through a 3-node cluster
 * of RawNodes in one process (in-memory storage, in-memory message passing), with batching: each
 * round proposes a batch of entries on the leader and then drives Readies until they are applied
 * on every node. Prints one JSON line per case.
 */
import { RawNode } from "../src/raft/raw-node.js";
import { MemoryStorage } from "../src/raft/storage.js";
import { createSeededRandom } from "../src/raft/random.js";
import type { Message, NodeId } from "../src/raft/types.js";

interface Cluster {
  nodes: Map<NodeId, RawNode>;
  storages: Map<NodeId, MemoryStorage>;
  applied: Map<NodeId, number>;
}

function makeCluster(): Cluster {
  const ids = ["1", "2", "3"];
  const c: Cluster = { nodes: new Map(), storages: new Map(), applied: new Map() };
  for (const id of ids) {
    const st = MemoryStorage.withConfState({
      voters: ids,
      learners: [],
      votersOutgoing: [],
      learnersNext: [],
      autoLeave: false,
    });
    c.storages.set(id, st);
    c.applied.set(id, 0);
    c.nodes.set(
      id,
      new RawNode({
        id,
        electionTick: 10,
        heartbeatTick: 1,
        storage: st,
        random: createSeededRandom(Number(id)),
        maxInflightMsgs: 256,
      }),
    );
  }
  return c;
}

/** Drives every node until quiet. */
function settle(c: Cluster): void {
  let queue: Message[] = [];
  for (;;) {
    let busy = false;
    for (const [id, n] of c.nodes) {
      if (!n.hasReady()) continue;
      busy = true;
      const rd = n.ready();
      const st = c.storages.get(id)!;
      queue.push(...rd.messages);
      if (rd.hardState !== undefined) st.setHardState(rd.hardState);
      st.append(rd.entries);
      queue.push(...rd.persistedMessages);
      const last = rd.committedEntries[rd.committedEntries.length - 1];
      if (last !== undefined) c.applied.set(id, last.index);
      n.advance(rd);
    }
    const q = queue;
    queue = [];
    for (const m of q) {
      busy = true;
      c.nodes.get(m.to)!.step(m);
    }
    if (!busy) return;
  }
}

function compact(c: Cluster): void {
  for (const [id, st] of c.storages) {
    const applied = c.applied.get(id)!;
    if (applied - st.firstIndex() > 20000) {
      st.createSnapshot(applied - 1000, undefined, new Uint8Array(0));
      st.compact(applied - 1000);
    }
  }
}

function runCase(batch: number, entryBytes: number, seconds: number): Record<string, unknown> {
  const c = makeCluster();
  c.nodes.get("1")!.campaign();
  settle(c);
  const leader = c.nodes.get("1")!;
  if (leader.raft.state !== "leader") throw new Error("bench: node 1 did not become leader");
  const payload = new Uint8Array(entryBytes).fill(7);
  const start = process.hrtime.bigint();
  const deadline = start + BigInt(Math.round(seconds * 1e9));
  const startIndex = c.applied.get("1")!;
  let rounds = 0;
  while (process.hrtime.bigint() < deadline) {
    for (let i = 0; i < batch; i++) leader.propose(payload);
    settle(c);
    rounds++;
    if (rounds % 64 === 0) compact(c);
  }
  const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  const committed = Math.min(...c.applied.values()) - startIndex;
  return {
    bench: "raft",
    case: `batch-${batch}`,
    nodes: 3,
    entryBytes,
    batch,
    committed,
    seconds: Number(elapsed.toFixed(3)),
    proposalsPerSec: Math.round(committed / elapsed),
    roundsPerSec: Math.round(rounds / elapsed),
  };
}

export default async function main(args: string[]): Promise<void> {
  let seconds = 2;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--seconds") {
      seconds = Number(args[++i]);
      if (!(seconds > 0)) throw new Error("--seconds takes a positive number");
    } else {
      throw new Error(`unknown argument ${args[i]}; usage: npm run bench -- raft [--seconds S]`);
    }
  }
  for (const batch of [1, 16, 64, 256]) {
    process.stdout.write(JSON.stringify(runCase(batch, 256, seconds)) + "\n");
    await Promise.resolve();
  }
}
