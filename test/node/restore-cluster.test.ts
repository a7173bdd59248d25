/**
 * Restore into a running cluster through the proposer (cluster-restore.ts) on a 3-node cluster of
 * RaftNodes with real WALs: snapshots are due every 2 entries, yet none is taken inside the
 * staged restore (its first chunk to its commit); every store holds the backup afterwards, and
 * saves between chunks are replaced.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BackupWriter } from "../../src/backup/backup-file.js";
import { restoreIntoCluster } from "../../src/node/cluster-restore.js";
import { SILENT } from "../../src/node/options.js";
import type { NexusLogger } from "../../src/node/options.js";
import { until, walCluster } from "./helpers.js";

const enc = new TextEncoder();

describe("restore into a running cluster (RaftNodes, real WALs)", () => {
  it("takes no snapshot inside a staged restore, and every store holds the backup at the commit", async () => {
    const snapshots: number[] = [];
    let begin = 0;
    const loggerFor = (): NexusLogger => ({
      ...SILENT,
      info: (fields: unknown, msg?: string) => {
        const f = fields as { index?: number };
        if (msg === "snapshot taken" && typeof f.index === "number") snapshots.push(f.index);
        if (msg === "restore staging began" && typeof f.index === "number") begin = f.index;
      },
    });
    const c = await walCluster({ snapshotCount: 2, loggerFor });
    try {
      await until(() => c.leader() !== undefined, 5000);
      const leader = c.leader()!;
      for (let i = 0; i < 6; i++) await leader.propose(enc.encode(`set before${i} x`));
      // A backup of a "test" store holding big=<40 KiB>: 40 chunks of 1 KiB.
      const value = "v".repeat(40 * 1024);
      const file = join(mkdtempSync(join(tmpdir(), "nexus-rc-")), "b.nexus-backup");
      const w = await BackupWriter.create(file, {
        storeKind: "test",
        clusterName: "src",
        index: 7,
        term: 1,
        members: [],
        nexusVersion: "test",
        createdAt: new Date(0).toISOString(),
        source: "test",
      });
      await w.write(enc.encode(JSON.stringify([["big", value]])));
      await w.finish();
      // Saves race the chunks (each applied before the commit, then replaced).
      let racing = true;
      const saver = (async () => {
        for (let i = 0; racing; i++) await leader.propose(enc.encode(`set during${i} y`));
      })();
      const r = await restoreIntoCluster(leader, "test", file, 1024, SILENT);
      racing = false;
      await saver;
      assert.ok(begin > 0 && begin < r.index);
      const inside = snapshots.filter((s) => s >= begin && s < r.index);
      assert.deepEqual(
        inside,
        [],
        `snapshots ${snapshots.join(",")}, restore ${begin}..${r.index}`,
      );
      assert.ok(snapshots.some((s) => s >= r.index) || snapshots.some((s) => s < begin));
      await leader.propose(enc.encode("set after z"));
      const states: string[] = [];
      for (const id of c.ids) {
        const s = c.stores.get(id)!;
        await until(() => s.data.get("after") === "z", 5000);
        // Saves before the commit are gone; one racing save may have been committed after it.
        const keys = [...s.data.keys()];
        assert.ok(!keys.some((k) => k.startsWith("before")), `${id}: ${keys.join(",")}`);
        assert.ok(
          keys.filter((k) => k.startsWith("during")).length <= 1,
          `${id}: ${keys.join(",")}`,
        );
        assert.equal(s.data.get("big"), value);
        states.push(JSON.stringify([...s.data].sort()));
      }
      assert.equal(states[1], states[0]);
      assert.equal(states[2], states[0]);
    } finally {
      await c.stopAll();
    }
  });
});
