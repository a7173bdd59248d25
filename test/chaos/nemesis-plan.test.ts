/**
 * The nemesis plan: a pure function of the seed that never plans more than two faulty nodes at
 * once, makes pauses outlast the election timeout, fits the run, and over a few seeds uses every
 * kind of fault; target resolution and partition shapes.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  costOf,
  mergeBlocks,
  minRoundMs,
  partitionBlocks,
  planNemesis,
  resolveTargets,
  targetCountOf,
} from "./nemesis-plan.js";
import type { FaultKind } from "./nemesis-plan.js";

const opts = { durationMs: 300_000, electionMs: 1000, nodes: 5 };
/** Nodes each fault makes faulty (the plan's own costOf is checked against this too). */
const COST: Record<FaultKind, number> = {
  kill: 1,
  pause: 1,
  "pause-isolated": 1,
  isolate: 1,
  membership: 1,
  "kill-receiving-snapshot": 1,
  "wiped-log": 1,
  split: 2,
  bridge: 2,
};
const SEEDS = Array.from({ length: 200 }, (_, i) => i * 7919 + 1);

describe("chaos: nemesis plan", () => {
  it("is the same for the same seed and differs between seeds", () => {
    assert.deepEqual(planNemesis({ ...opts, seed: 42 }), planNemesis({ ...opts, seed: 42 }));
    assert.notDeepEqual(planNemesis({ ...opts, seed: 42 }), planNemesis({ ...opts, seed: 43 }));
  });

  it("keeps every round within the budget, the run and the timing rules", () => {
    for (const seed of SEEDS) {
      const plan = planNemesis({ ...opts, seed });
      assert.ok(plan.rounds.length > 10, `seed ${seed}: ${plan.rounds.length} rounds`);
      let prevEnd = 0;
      for (const r of plan.rounds) {
        const where = `seed ${seed} round ${r.index}`;
        assert.ok(r.atMs >= prevEnd, `${where} overlaps the previous round`);
        assert.ok(r.atMs + r.lengthMs <= opts.durationMs, `${where} ends after the run`);
        assert.ok(r.lengthMs >= minRoundMs(opts.electionMs), where);
        assert.ok(r.quietMs >= 1000, where);
        const cost = r.faults.reduce((s, f) => s + COST[f.kind], 0);
        assert.ok(cost <= 2, `${where}: ${cost} faulty nodes planned`);
        for (const f of r.faults) {
          assert.ok(f.startMs >= 0 && f.startMs < f.endMs && f.endMs <= r.lengthMs, where);
          assert.equal(f.targets.length, targetCountOf(f.kind), where);
          for (const t of f.targets) assert.ok(t.pick >= 0 && t.pick < 1, where);
          if (f.kind === "pause" || f.kind === "pause-isolated") {
            assert.ok(f.endMs - f.startMs >= 1.5 * opts.electionMs, `${where}: pause too short`);
          }
        }
        prevEnd = r.atMs + r.lengthMs + r.quietMs;
      }
    }
  });

  it("counts a split and a bridge as two faulty nodes, the others as one", () => {
    for (const k of Object.keys(COST) as FaultKind[]) assert.equal(costOf(k), COST[k], k);
  });

  it("uses every kind of fault, and favours the leader", () => {
    const seen = new Map<FaultKind, number>();
    let leaderFirst = 0;
    let faults = 0;
    for (const seed of SEEDS.slice(0, 20)) {
      for (const r of planNemesis({ ...opts, seed }).rounds) {
        for (const f of r.faults) {
          seen.set(f.kind, (seen.get(f.kind) ?? 0) + 1);
          faults++;
          if (f.targets.some((t) => t.prefer === "leader")) leaderFirst++;
        }
      }
    }
    const kinds = [
      "kill",
      "pause",
      "pause-isolated",
      "isolate",
      "split",
      "bridge",
      "membership",
      "kill-receiving-snapshot",
      "wiped-log",
    ];
    for (const k of kinds as FaultKind[]) {
      assert.ok((seen.get(k) ?? 0) > 10, `${k}: ${seen.get(k) ?? 0}`);
    }
    assert.ok(leaderFirst / faults > 0.4, `leader favoured in ${leaderFirst} of ${faults}`);
  });

  it("scales pauses and rounds with a longer election timeout", () => {
    const plan = planNemesis({ ...opts, electionMs: 3000, seed: 5 });
    for (const r of plan.rounds) {
      assert.ok(r.lengthMs >= 6500);
      for (const f of r.faults) {
        if (f.kind === "pause" || f.kind === "pause-isolated") {
          assert.ok(f.endMs - f.startMs >= 4500);
        }
      }
    }
  });

  it("refuses a bad seed or fewer than 5 nodes", () => {
    assert.throws(() => planNemesis({ ...opts, seed: -1 }), /bad seed/);
    assert.throws(() => planNemesis({ ...opts, seed: 1, nodes: 3 }), /5 nodes/);
  });

  it("plans no round in a run too short for one", () => {
    assert.equal(planNemesis({ ...opts, seed: 1, durationMs: 4000 }).rounds.length, 0);
  });
});

describe("chaos: fault targets", () => {
  it("takes the leader when preferred and eligible, else the picked eligible node", () => {
    const eligible = [1, 2, 3, 4, 5];
    assert.deepEqual(resolveTargets([{ prefer: "leader", pick: 0.9 }], eligible, 3), [3]);
    // The leader is faulty already: the picked node among the followers.
    assert.deepEqual(resolveTargets([{ prefer: "leader", pick: 0 }], [1, 2, 4], 3), [1]);
    assert.deepEqual(resolveTargets([{ prefer: "leader", pick: 0.99 }], [1, 2, 4], 3), [4]);
    // No leader known.
    assert.deepEqual(resolveTargets([{ prefer: "leader", pick: 0.5 }], eligible, undefined), [3]);
  });

  it("never picks the leader for a follower rule unless nothing else is left", () => {
    for (let p = 0; p < 1; p += 0.05) {
      const [n] = resolveTargets([{ prefer: "follower", pick: p }], [1, 2, 3], 2)!;
      assert.notEqual(n, 2);
    }
    assert.deepEqual(resolveTargets([{ prefer: "follower", pick: 0.3 }], [2], 2), [2]);
  });

  it("names distinct nodes and gives up when too few are eligible", () => {
    const rules = [
      { prefer: "leader", pick: 0.1 },
      { prefer: "leader", pick: 0.1 },
      { prefer: "any", pick: 0.99 },
    ] as const;
    const got = resolveTargets(rules, [5, 1, 2, 4], 4)!;
    assert.equal(new Set(got).size, 3);
    assert.equal(got[0], 4);
    assert.equal(resolveTargets(rules, [1, 2], 1), undefined);
  });
});

describe("chaos: partition shapes", () => {
  const pairs = (b: Map<number, Set<number>>): string[] =>
    [...b].flatMap(([x, ys]) => [...ys].map((y) => `${x}-${y}`)).sort();

  it("isolates one node from every other, both ways", () => {
    assert.deepEqual(pairs(partitionBlocks("isolate", [3], 5)), [
      "1-3",
      "2-3",
      "3-1",
      "3-2",
      "3-4",
      "3-5",
      "4-3",
      "5-3",
    ]);
  });

  it("splits 2|3", () => {
    const b = partitionBlocks("split", [1, 4], 5);
    assert.deepEqual([...b.get(1)!].sort(), [2, 3, 5]);
    assert.deepEqual([...b.get(2)!].sort(), [1, 4]);
    assert.equal(pairs(b).length, 12);
  });

  it("bridges: the halves cannot see each other, the bridge node sees all", () => {
    const b = partitionBlocks("bridge", [3, 1, 5], 5);
    assert.equal(b.has(3), false);
    assert.deepEqual([...b.get(1)!].sort(), [2, 4]);
    assert.deepEqual([...b.get(5)!].sort(), [2, 4]);
    assert.deepEqual([...b.get(2)!].sort(), [1, 5]);
    for (const [x, ys] of b) for (const y of ys) assert.ok(b.get(y)!.has(x), `${x}-${y} symmetric`);
  });

  it("merges partitions as a union", () => {
    const m = mergeBlocks([partitionBlocks("isolate", [1], 5), partitionBlocks("isolate", [2], 5)]);
    assert.deepEqual([...m.get(1)!].sort(), [2, 3, 4, 5]);
    assert.deepEqual([...m.get(3)!].sort(), [1, 2]);
  });
});
