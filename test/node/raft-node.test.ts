import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RaftNode } from "../../src/node/raft-node.js";
import { createNodeFs } from "../../src/storage/fs-layer.js";
import type { FsLayer } from "../../src/storage/fs-layer.js";
import { isNexusError } from "../../src/errors/index.js";
import { LocalNetwork, TestStore, until } from "./helpers.js";

const roots: string[] = [];
after(() => {
  for (const d of roots) rmSync(d, { recursive: true, force: true });
});

const IDS = ["a", "b", "c"];
const MEMBERS = IDS.map((id, i) => ({ id, url: `http://127.0.0.1:${9100 + i}` }));
const enc = new TextEncoder();

async function cluster(fsFor: (id: string) => FsLayer = () => createNodeFs()) {
  const root = mkdtempSync(join(tmpdir(), "nexus-node-"));
  roots.push(root);
  const net = new LocalNetwork();
  const stores = new Map(IDS.map((id) => [id, new TestStore()]));
  const nodes = new Map<string, RaftNode>();
  const fatal: string[] = [];
  const open = async (id: string): Promise<RaftNode> => {
    const n = await RaftNode.open({
      id,
      bootstrap: MEMBERS,
      walDir: join(root, id),
      walOptions: { fs: fsFor(id), segmentBytes: 1024 * 1024 },
      store: stores.get(id)!,
      transport: net.endpoint(id),
      heartbeatTickMs: 10,
      electionTick: 10,
      replTimeoutMs: 3000,
      snapDir: join(root, `${id}-snap`),
      snapshotCount: 10_000,
      snapshotCatchUpEntries: 100,
      onFatal: (e) => fatal.push(`${id}: ${e.message}`),
    });
    net.register(id, (msgs) => n.step(msgs));
    nodes.set(id, n);
    n.start();
    return n;
  };
  for (const id of IDS) await open(id);
  const leader = (): RaftNode | undefined =>
    [...nodes.values()].find(
      (n) => n.status().softState.raftState === "leader" && n.fatalError() === undefined,
    );
  return { net, stores, nodes, open, leader, fatal };
}

describe("raft node on real WALs", () => {
  it("elects a leader, replicates a write to every store and answers with the store's result", async () => {
    const c = await cluster();
    try {
      await until(() => c.leader() !== undefined, 10_000, "a leader");
      const res = await c.leader()!.propose(enc.encode("set x 1"));
      assert.deepEqual(res, { ok: true, data: enc.encode("OK") });
      const bad = await c.leader()!.propose(enc.encode("nonsense"));
      assert.equal(bad.ok, false);
      await until(
        () => IDS.every((id) => c.stores.get(id)!.data.get("x") === "1"),
        5000,
        "replication",
      );
    } finally {
      for (const n of c.nodes.values()) await n.stop();
    }
  });

  it("a restarted follower re-applies exactly what its store had not applied", async () => {
    const c = await cluster();
    try {
      await until(() => c.leader() !== undefined, 10_000, "a leader");
      for (let i = 0; i < 5; i++) await c.leader()!.propose(enc.encode(`set k${i} v${i}`));
      const follower = IDS.find((id) => c.nodes.get(id) !== c.leader())!;
      await until(() => c.stores.get(follower)!.data.size === 5, 5000, "follower caught up");
      await c.nodes.get(follower)!.stop();
      for (let i = 5; i < 8; i++) await c.leader()!.propose(enc.encode(`set k${i} v${i}`));
      const before = c.stores.get(follower)!.applyCount;
      assert.equal(before, 5);
      await c.open(follower);
      await until(
        () => c.stores.get(follower)!.data.size === 8,
        5000,
        "restarted follower caught up",
      );
      // Three new writes applied, none of the first five again.
      assert.equal(c.stores.get(follower)!.applyCount, 8);
    } finally {
      for (const n of c.nodes.values()) await n.stop();
    }
  });

  it("an fsync failure stops the node with a clear error and fails its pending writes", async () => {
    let failing = false;
    const real = createNodeFs();
    const failingFs: FsLayer = {
      ...real,
      async open(path, mode) {
        const f = await real.open(path, mode);
        return {
          ...f,
          datasync: async () => {
            if (failing) throw new Error("EIO: injected fsync failure");
            await f.datasync();
          },
        };
      },
    };
    const c = await cluster(() => failingFs);
    try {
      await until(() => c.leader() !== undefined, 10_000, "a leader");
      const l = c.leader()!;
      failing = true;
      await assert.rejects(l.propose(enc.encode("set y 1")), (e: unknown) =>
        isNexusError(e, "WAL_FAILED"),
      );
      await until(() => l.fatalError() !== undefined, 5000, "the node to stop");
      assert.match(l.fatalError()!.message, /write-ahead log write or sync failed.*must stop/);
      assert.ok(c.fatal.length > 0);
      await assert.rejects(l.propose(enc.encode("set y 2")), (e: unknown) =>
        isNexusError(e, "WAL_FAILED"),
      );
    } finally {
      failing = false;
      for (const n of c.nodes.values()) await n.stop();
    }
  });
});
