/**
 * A short crash sweep in `npm test` (the long one: `npm run crash-sweep -- --cycles 20`): two
 * points, one cycle each, real processes. A received snapshot killed between its file and its
 * marker, and a follower killed after a WAL save before its acknowledgement. About 40 s on an idle
 * machine (two cycles of three real processes); the timeout leaves room for a loaded one.
 */
import { it } from "node:test";
import assert from "node:assert/strict";
import { describeSweep, runSweep } from "./crash-sweep.js";

it(
  "a node SIGKILLed at a crash point restarts, catches up, keeps every acknowledged write and applies each index once",
  { timeout: 300_000 },
  async () => {
    const lines: string[] = [];
    const results = await runSweep({
      points: ["node.receive-after-snapshot-file", "wal.batch-after-sync"],
      cycles: 1,
      seed: 14,
      log: (l) => lines.push(l),
    });
    const table = describeSweep(results);
    for (const r of results) {
      assert.equal(r.failure, undefined, `${r.point}: ${r.failure}\n${table}`);
      assert.equal(r.reached, true, `${r.point} was not reached\n${lines.join("\n")}`);
      assert.ok(r.acked > 0, "writes were acknowledged");
    }
  },
);
