/**
 * The readiness verdict of /readyz (each reason a node is not ready, the apply-lag bound) and the
 * recent-rates window of the status page (buckets, empty ones, the ring's bound).
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { ReplicatorStatus } from "../../src/node/replicator.js";
import { readinessOf } from "../../src/ops/node-status.js";
import { RecentRates } from "../../src/ops/recent-rates.js";

const healthy: ReplicatorStatus = {
  id: "a",
  url: "http://a:1",
  role: "follower",
  term: 3,
  leader: "b",
  commit: 100,
  lastIndex: 100,
  applied: 100,
  serving: true,
  notServingReason: "",
  diverged: undefined,
};

describe("readinessOf", () => {
  const cases: { name: string; st: ReplicatorStatus | undefined; bound?: number; want: RegExp }[] =
    [
      { name: "healthy", st: healthy, want: /^$/ },
      { name: "stopped", st: undefined, want: /not running/ },
      {
        name: "no leader",
        st: { ...healthy, leader: "", serving: false, notServingReason: "x" },
        want: /no leader is known/,
      },
      {
        name: "diverged",
        st: { ...healthy, serving: false, diverged: { index: 7, reason: "digest differs" } },
        want: /diverged .* index 7: digest differs/,
      },
      {
        name: "store down",
        st: { ...healthy, serving: false, notServingReason: "the store is unavailable: gone" },
        want: /^the store is unavailable: gone$/,
      },
      {
        name: "lag within the default bound",
        st: { ...healthy, applied: 0, commit: 1000 },
        want: /^$/,
      },
      {
        name: "lag past the default bound",
        st: { ...healthy, applied: 0, commit: 1001 },
        want: /lags 1001 entries .* \(more than 1000\)/,
      },
      {
        name: "lag past a bound given",
        st: { ...healthy, applied: 90 },
        bound: 5,
        want: /lags 10 entries/,
      },
    ];
  for (const c of cases) {
    it(c.name, () => {
      const r = readinessOf(c.st, c.bound === undefined ? {} : { maxApplyLagEntries: c.bound });
      assert.match(r.reason, c.want);
      assert.equal(r.ready, r.reason === "");
    });
  }
});

describe("RecentRates", () => {
  it("keeps per-bucket counts, failures, mean and max; empty buckets are zero", () => {
    let now = 1_000_000;
    const r = new RecentRates(5000, 4, () => now);
    r.record("save", 10, true);
    r.record("save", 30, false);
    now += 5000;
    r.record("save", 4, true);
    r.record("load", 1, true);
    const s = r.series("save");
    assert.equal(s.length, 4);
    assert.deepEqual(
      s.map((p) => [p.count, p.failed, p.meanMs, p.maxMs]),
      [
        [0, 0, 0, 0],
        [0, 0, 0, 0],
        [2, 1, 20, 30],
        [1, 0, 4, 4],
      ],
    );
    assert.equal(s[3]!.perSecond, 0.2);
    assert.equal(r.series("load")[3]!.count, 1);
    // Older than the window: gone.
    now += 5 * 5000;
    assert.ok(r.series("save").every((p) => p.count === 0));
    for (let i = 0; i < 100; i++) {
      now += 5000;
      r.record("save", 1, true);
    }
    assert.equal(
      r.series("save").reduce((a, p) => a + p.count, 0),
      4,
    );
  });
});
