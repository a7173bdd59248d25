/**
 * A write costs one WAL fdatasync per node, not two: a hard state whose only change is a new
 * commit index (the core's mustSync false) is not written on its own (Raft §5.3: commitIndex is
 * volatile state); it goes to disk with the next save, and a restart still finds every write.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { createReplicator } from "../../src/node/replicator.js";
import { NOOP_NODE_METRICS } from "../../src/node/node-metrics.js";
import { MemoryStore } from "../../src/store/memory/memory-store.js";
import { until } from "./helpers.js";
import { freePort } from "../free-port.js";
import { tempDir } from "../temp-dir.js";

const dec = new TextDecoder();

describe("WAL syncs per write", () => {
  it("one fdatasync per write on a one-node cluster, and the writes survive a restart", async () => {
    const root = tempDir("nexus-commit-sync-");
    const url = `http://127.0.0.1:${await freePort()}`;
    let syncs = 0;
    const open = (store: MemoryStore) =>
      createReplicator({
        nodeUrl: url,
        clusterUrls: [url],
        store,
        logDir: join(root, "logs"),
        snapDir: join(root, "snap"),
        heartbeatTickMs: 20,
        electionTickMs: 200,
        replTimeoutMs: 5000,
        consistencyCheckIntervalMs: 0,
        metrics: { ...NOOP_NODE_METRICS, walSynced: () => void syncs++ },
      });
    const r = open(new MemoryStore());
    try {
      await r.start();
      await until(() => r.status().role === "leader", 10_000, "leadership");
      await r.save("set warm 1");
      const before = syncs;
      for (let i = 1; i <= 10; i++) await r.save(`incr n`);
      assert.equal(syncs - before, 10, `10 writes took ${syncs - before} fdatasyncs`);
    } finally {
      await r.stop();
    }
    // The store is in memory: a restart re-applies the log, up to the last write.
    const again = open(new MemoryStore());
    try {
      await again.start();
      await until(() => again.status().role === "leader", 10_000, "leadership after restart");
      assert.equal(dec.decode(await again.load("get n")), "10");
    } finally {
      await again.stop();
    }
  });
});
