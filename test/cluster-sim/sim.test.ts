/**
 * The cluster simulation inside `npm test`: a few hundred seeds, each checked for safety after
 * every step and for liveness after the faults heal. A failure names its seed; replay it with
 * `npm run sim -- --seed S --verbose`. SIM_SEEDS=N runs more.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ClusterSim, SimFailure, runSeed } from "./cluster-sim.js";

const SEEDS = Number(process.env["SIM_SEEDS"] ?? 300);

describe("cluster simulation", () => {
  it(`safety after every step and liveness after healing, seeds 1..${SEEDS}`, () => {
    const failed: string[] = [];
    for (let seed = 1; seed <= SEEDS; seed++) {
      const { error } = runSeed(seed);
      if (error !== undefined) failed.push(`seed ${seed}: ${error}`);
    }
    assert.deepEqual(failed, [], `replay with: npm run sim -- --seed S --verbose`);
  });

  it("a seed replays exactly: same seed, same run", () => {
    const a = runSeed(43);
    const b = runSeed(43);
    assert.deepEqual(a.sim.stats, b.sim.stats);
    assert.ok(a.sim.stats.delivered > 1000, "the run did real work");
    assert.ok(a.sim.stats.crashes > 0 && a.sim.stats.partitions > 0, "faults were injected");
  });

  it("the checker catches two different entries at the same index and term (log matching)", () => {
    const sim = new ClusterSim(7, 600);
    for (let i = 0; i < 120; i++) sim.step();
    // Find a live node with a stable entry and replace it with different data, same term.
    let corrupted = false;
    for (const n of sim.nodes.values()) {
      const st = n.durable;
      if (n.raw === undefined || st.lastIndex() < st.firstIndex()) continue;
      const e = st.entries(st.lastIndex(), st.lastIndex() + 1, Number.MAX_SAFE_INTEGER)[0]!;
      st.append([{ ...e, data: new TextEncoder().encode("forged") }]);
      corrupted = true;
      break;
    }
    assert.ok(corrupted, "no node had a stable entry to corrupt");
    assert.throws(() => {
      for (let i = 0; i < 50; i++) sim.step();
    }, SimFailure);
  });
});
