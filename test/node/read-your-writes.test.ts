/**
 * Read-your-writes (LoadOptions.minIndex, Replicator.session()): a save tells the index it
 * committed at (saveWithIndex; a repeat of a request id the first commit's), and a load with that
 * index on a lagging follower waits until the follower applied it, then reads its store with no
 * leader round trip; past replTimeoutMs it says so (TIMEOUT).
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { createReplicator } from "../../src/node/replicator.js";
import type { Replicator } from "../../src/node/replicator-api.js";
import { MemoryStore } from "../../src/store/memory/memory-store.js";
import type { ApplyEntry, ApplyResult } from "../../src/store/store.js";
import { isNexusError } from "../../src/errors/index.js";
import { until } from "./helpers.js";
import { freePort } from "../free-port.js";
import { tempDir } from "../temp-dir.js";

const dec = new TextDecoder();

/** A MemoryStore whose applies wait while `hold()` is in effect (a follower that lags). */
class GatedStore extends MemoryStore {
  private gate: Promise<void> | undefined;
  private unblock: (() => void) | undefined;
  hold(): void {
    this.gate = new Promise((r) => (this.unblock = r));
  }
  release(): void {
    this.unblock?.();
    this.gate = undefined;
  }
  override async apply(entries: readonly ApplyEntry[]): Promise<ApplyResult[]> {
    while (this.gate !== undefined) await this.gate;
    return super.apply(entries);
  }
}

async function cluster(): Promise<{ reps: Replicator[]; stores: GatedStore[] }> {
  const root = tempDir("nexus-ryw-");
  const urls = await Promise.all([1, 2, 3].map(async () => `http://127.0.0.1:${await freePort()}`));
  const stores = urls.map(() => new GatedStore());
  const reps = urls.map((u, i) =>
    createReplicator({
      nodeUrl: u,
      clusterUrls: urls,
      store: stores[i]!,
      logDir: join(root, `logs-${i}`),
      snapDir: join(root, `snap-${i}`),
      heartbeatTickMs: 20,
      electionTickMs: 200,
      replTimeoutMs: 1500,
    }),
  );
  await Promise.all(reps.map((r) => r.start()));
  await until(() => reps.some((r) => r.status().role === "leader"), 10_000, "a leader");
  return { reps, stores };
}

describe("read-your-writes", () => {
  it("a save's index; minIndex on a lagging follower waits for it, then reads locally; TIMEOUT past replTimeoutMs", async () => {
    const { reps, stores } = await cluster();
    try {
      const li = reps.findIndex((r) => r.status().role === "leader");
      const leader = reps[li]!;
      const fi = (li + 1) % 3;
      const follower = reps[fi]!;
      const first = await leader.saveWithIndex("set x 1");
      assert.equal(dec.decode(first.data), "OK");
      assert.ok(first.index > 0 && first.index <= leader.status().applied, String(first.index));
      await until(() => follower.status().applied >= first.index, 5000, "the follower to catch up");

      stores[fi]!.hold();
      const second = await leader.saveWithIndex("set x 2");
      assert.ok(second.index > first.index);
      // The follower holds the entry but has not applied it: a local read is stale.
      assert.equal(dec.decode(await follower.load("get x", { consistency: "local" })), "1");
      let settled = false;
      const read = follower
        .load("get x", { minIndex: second.index })
        .finally(() => (settled = true));
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(settled, false, "a minIndex load answered before its index was applied");
      stores[fi]!.release();
      assert.equal(dec.decode(await read), "2");

      // An index the follower cannot reach in time: TIMEOUT, nothing read.
      stores[fi]!.hold();
      const third = await leader.saveWithIndex("set x 3");
      const t0 = Date.now();
      await assert.rejects(follower.load("get x", { minIndex: third.index }), (e: unknown) =>
        isNexusError(e, "TIMEOUT"),
      );
      assert.ok(Date.now() - t0 >= 1400, "gave up before replTimeoutMs");
      stores[fi]!.release();
      await assert.rejects(follower.load("get x", { minIndex: -1 }), (e: unknown) =>
        isNexusError(e, "INVALID_ARGUMENT"),
      );
    } finally {
      for (const s of stores) s.release();
      for (const r of reps) await r.stop().catch(() => undefined);
    }
  });

  it("a repeated request id answers the first commit's index; a session reads its saves on a lagging node", async () => {
    const { reps, stores } = await cluster();
    try {
      const li = reps.findIndex((r) => r.status().role === "leader");
      const leader = reps[li]!;
      const fi = (li + 2) % 3;
      const once = await leader.saveWithIndex("incr n", { requestId: "ryw-1" });
      await leader.save("incr m");
      const again = await leader.saveWithIndex("incr n", { requestId: "ryw-1" });
      assert.deepEqual(
        { data: dec.decode(again.data), index: again.index },
        {
          data: dec.decode(once.data),
          index: once.index,
        },
      );

      const writer = leader.session();
      assert.equal(writer.lastIndex, 0);
      await until(() => reps[fi]!.status().applied >= again.index, 5000, "the follower");
      stores[fi]!.hold();
      assert.equal(dec.decode(await writer.save("set y 7")), "OK");
      assert.ok(writer.lastIndex > again.index);
      // Another node's session that saw the writer's index reads the write there.
      const reader = reps[fi]!.session();
      reader.observe(writer.lastIndex);
      assert.equal(dec.decode(await reps[fi]!.load("get y", { consistency: "local" })), "");
      const read = reader.load("get y");
      setTimeout(() => stores[fi]!.release(), 100);
      assert.equal(dec.decode(await read), "7");
    } finally {
      for (const s of stores) s.release();
      for (const r of reps) await r.stop().catch(() => undefined);
    }
  });
});
