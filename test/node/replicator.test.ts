import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { createReplicator } from "../../src/node/replicator.js";
import type { Replicator } from "../../src/node/replicator.js";
import { MemoryStore } from "../../src/store/memory/memory-store.js";
import { isNexusError } from "../../src/errors/index.js";
import { nodeIdOf } from "../../src/node/node-id.js";
import { until } from "./helpers.js";
import { freePort } from "../free-port.js";
import { tempDir } from "../temp-dir.js";

const enc = new TextEncoder();
const dec = new TextDecoder();

describe("Replicator over HTTP/2 on loopback", () => {
  it("replicates writes through any node, reads linearizably, survives the leader stopping", async () => {
    const root = tempDir("nexus-repl-");
    const urls = await Promise.all(
      [1, 2, 3].map(async () => `http://127.0.0.1:${await freePort()}`),
    );
    const stores = urls.map(() => new MemoryStore());
    const reps: Replicator[] = urls.map((u, i) =>
      createReplicator({
        nodeUrl: u,
        clusterUrls: urls,
        store: stores[i]!,
        logDir: join(root, "logs"),
        snapDir: join(root, "snap"),
        heartbeatTickMs: 20,
        electionTickMs: 200,
        replTimeoutMs: 5000,
      }),
    );
    try {
      await Promise.all(reps.map((r) => r.start()));
      await until(() => reps.some((r) => r.status().role === "leader"), 10_000, "a leader");
      const leaderIdx = reps.findIndex((r) => r.status().role === "leader");
      const follower = reps[(leaderIdx + 1) % 3]!;
      // A write through a follower is forwarded to the leader.
      assert.equal(dec.decode(await follower.save(enc.encode("set x 1"))), "OK");
      // A linearizable read on another follower sees it.
      const other = reps[(leaderIdx + 2) % 3]!;
      assert.equal(dec.decode(await other.load(enc.encode("get x"))), "1");
      // A failing statement is a StoreError, the same everywhere.
      await assert.rejects(follower.save(enc.encode("bogus")), (e: unknown) =>
        isNexusError(e, "STORE_ERROR"),
      );
      // listMembers: three members with the original's ids, one leader.
      const m = other.listMembers();
      assert.deepEqual(m.members.map((x) => x.id).sort(), urls.map((u) => nodeIdOf(u)).sort());
      assert.equal(m.members.filter((x) => x.role === "leader").length, 1);
      assert.deepEqual(m.members.map((x) => x.url).sort(), [...urls].sort());
      // Stop the leader: the others elect a new one and keep writing.
      await reps[leaderIdx]!.stop();
      const rest = reps.filter((_, i) => i !== leaderIdx);
      await until(() => rest.some((r) => r.status().role === "leader"), 10_000, "a new leader");
      assert.equal(dec.decode(await rest[0]!.save(enc.encode("incr n"))), "1");
      assert.equal(dec.decode(await rest[1]!.load(enc.encode("get n"))), "1");
      // Oversized requests are refused before anything is written.
      await assert.rejects(rest[0]!.save(new Uint8Array(5 * 1024 * 1024)), (e: unknown) =>
        isNexusError(e, "TOO_LARGE"),
      );
    } finally {
      for (const r of reps) await r.stop().catch(() => undefined);
    }
  });

  it("bad options are refused with a clear error", () => {
    assert.throws(
      () =>
        createReplicator({
          nodeUrl: "127.0.0.1:9021",
          clusterUrls: ["http://127.0.0.1:9021"],
          store: new MemoryStore(),
        }),
      /invalid node URL "127.0.0.1:9021"/,
    );
    assert.throws(
      () =>
        createReplicator({
          nodeUrl: "http://127.0.0.1:9021",
          clusterUrls: ["http://127.0.0.1:9021"],
          store: new MemoryStore(),
          electionTickMs: 100,
          heartbeatTickMs: 100,
        }),
      /electionTickMs \(100\) must be at least twice heartbeatTickMs/,
    );
  });
});

describe("Replicator snapshots", () => {
  it("a follower that falls behind past compaction catches up from a streamed snapshot", async () => {
    const root = tempDir("nexus-snap-");
    const urls = await Promise.all(
      [1, 2, 3].map(async () => `http://127.0.0.1:${await freePort()}`),
    );
    const make = (i: number, store: MemoryStore): Replicator =>
      createReplicator({
        nodeUrl: urls[i]!,
        clusterUrls: urls,
        store,
        logDir: join(root, "logs"),
        snapDir: join(root, "snap"),
        heartbeatTickMs: 20,
        electionTickMs: 200,
        snapshotCount: 20,
        snapshotCatchUpEntries: 5,
      });
    const stores = urls.map(() => new MemoryStore());
    const reps = urls.map((_, i) => make(i, stores[i]!));
    try {
      await Promise.all(reps.map((r) => r.start()));
      await until(() => reps.some((r) => r.status().role === "leader"), 10_000, "a leader");
      const li = reps.findIndex((r) => r.status().role === "leader");
      const fi = (li + 1) % 3;
      await reps[li]!.save(enc.encode("set before 1"));
      await until(
        () => reps[fi]!.status().applied >= reps[li]!.status().applied,
        5000,
        "follower caught up",
      );
      const behindAt = reps[fi]!.status().applied;
      await reps[fi]!.stop();
      for (let i = 0; i < 100; i++) await reps[li]!.save(enc.encode(`set k${i} v${i}`));
      // Restart the follower with an empty store (memory does not survive a restart).
      const fresh = new MemoryStore();
      reps[fi] = make(fi, fresh);
      await reps[fi]!.start();
      await until(
        () => reps[fi]!.status().applied >= reps[li]!.status().applied,
        15_000,
        "the restarted follower to catch up",
      );
      const dump = dec.decode(await reps[fi]!.load(enc.encode("dump"), { consistency: "local" }));
      const leaderDump = dec.decode(
        await reps[li]!.load(enc.encode("dump"), { consistency: "local" }),
      );
      assert.equal(dump, leaderDump);
      assert.equal((JSON.parse(dump) as Record<string, string>)["k99"], "v99");
      // The leader snapshots every 20 entries and keeps 5 after each snapshot, so the entries
      // after behindAt were compacted away: only the streamed snapshot can have carried them.
      assert.ok(reps[fi]!.status().applied >= behindAt + 100);
    } finally {
      for (const r of reps) await r.stop().catch(() => undefined);
    }
  });
});
