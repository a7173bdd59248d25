import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createNodeFs } from "../../src/storage/fs-layer.js";
import type { FsLayer } from "../../src/storage/fs-layer.js";
import { isNexusError } from "../../src/errors/index.js";
import { until, walCluster } from "./helpers.js";

const IDS = ["a", "b", "c"];
const enc = new TextEncoder();
const cluster = (fsFor?: (id: string) => FsLayer) =>
  walCluster(fsFor === undefined ? {} : { fsFor });

describe("raft node on real WALs", () => {
  it("elects a leader, replicates a write to every store and answers with the store's result", async () => {
    const c = await cluster();
    try {
      await until(() => c.leader() !== undefined, 10_000, "a leader");
      const res = await c.leader()!.propose(enc.encode("set x 1"));
      // With the index it committed at: this node has applied it.
      assert.deepEqual(res, { ok: true, data: enc.encode("OK"), index: res.index });
      assert.ok(res.index > 0 && res.index <= c.leader()!.appliedIndex(), String(res.index));
      const bad = await c.leader()!.propose(enc.encode("nonsense"));
      assert.equal(bad.ok, false);
      assert.equal(bad.index, res.index + 1);
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

  it("a read forwarded to a leader that goes silent fails as NO_LEADER once another leader is known, not at its timeout", async () => {
    const c = await cluster();
    try {
      await until(() => c.leader() !== undefined, 10_000, "a leader");
      const old = c.leader()!;
      const oldId = IDS.find((id) => c.nodes.get(id) === old)!;
      const f = c.nodes.get(IDS.find((id) => id !== oldId)!)!;
      await until(() => f.leader() === oldId, 5000, "the follower to know the leader");
      c.net.down.add(oldId);
      const started = Date.now();
      const err = await f.readBarrier(20_000).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(isNexusError(err, "NO_LEADER"), String(err));
      assert.ok(Date.now() - started < 10_000, `took ${Date.now() - started} ms`);
      await until(() => f.leader() !== "" && f.leader() !== oldId, 10_000, "a new leader");
      await f.readBarrier(5000);
    } finally {
      for (const n of c.nodes.values()) await n.stop();
    }
  });
});
