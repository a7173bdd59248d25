/**
 * The chaos report's computations on small hand-made histories: counts, availability and its
 * longest gap, latency percentiles, provably stale reads, the pass rule and the text.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { Operation } from "./history.js";
import { checkHistory } from "./linearizability.js";
import {
  availability,
  availabilityStrip,
  countOps,
  formatReport,
  latencies,
  passed,
  percentile,
  provablyStaleReads,
} from "./report.js";
import type { ReportInput } from "./report.js";

let nextId = 0;
type Draft = Omit<Operation, "id" | "client" | "key"> & { client?: number; key?: string };
const op = (d: Draft): Operation => ({ id: nextId++, client: 0, key: "a", ...d });
const write = (
  value: number,
  startMs: number,
  endMs: number,
  outcome: Operation["outcome"] = "ok",
) => op({ kind: "write", value, startMs, endMs, outcome });
const read = (
  result: number | null,
  startMs: number,
  endMs: number,
  mode: Operation["mode"] = "linearizable",
  outcome: Operation["outcome"] = "ok",
) => op({ kind: "read", result, startMs, endMs, outcome, mode });

describe("chaos: report", () => {
  it("counts operations by kind (local reads apart) and outcome", () => {
    const ops = [
      write(1, 0, 10),
      write(2, 0, 10, "unknown"),
      read(1, 0, 5),
      read(1, 0, 5, "local"),
      read(null, 0, 5, "lease", "failed"),
      op({ kind: "cas", value: 3, expected: 1, startMs: 0, endMs: 1, outcome: "ok", casOk: true }),
    ];
    const c = countOps(ops);
    assert.deepEqual(c.write, { ok: 1, failed: 0, unknown: 1 });
    assert.deepEqual(c.read, { ok: 1, failed: 1, unknown: 0 });
    assert.deepEqual(c["read-local"], { ok: 1, failed: 0, unknown: 0 });
    assert.deepEqual(c.cas, { ok: 1, failed: 0, unknown: 0 });
  });

  it("measures availability per second and the longest stretch without an ok op", () => {
    const ops = [
      write(1, 0, 100),
      write(2, 150, 900),
      read(2, 1000, 1200, "linearizable", "unknown"),
      // Local reads do not count: they answer whatever the cluster's state.
      read(2, 1500, 1600, "local"),
      write(3, 3000, 3500),
    ];
    const a = availability(ops, 4000);
    assert.deepEqual(a.perSecond, [1, 0, undefined, 1]);
    assert.equal(a.longestGapMs, 2600);
    assert.equal(a.longestGapFromMs, 900);
    assert.equal(a.okShare, 3 / 4);
    // The end of the workload closes the last stretch.
    assert.equal(availability([write(1, 0, 100)], 5000).longestGapMs, 4900);
    assert.equal(availabilityStrip([1, 0.55, undefined, 0.05]), "     0s 95.0");
  });

  it("computes nearest-rank percentiles of ok operations' latencies", () => {
    assert.equal(percentile([], 50), 0);
    assert.equal(percentile([5], 99), 5);
    const xs = Array.from({ length: 100 }, (_, i) => i + 1);
    assert.equal(percentile(xs, 50), 50);
    assert.equal(percentile(xs, 99), 99);
    assert.equal(percentile(xs, 100), 100);
    const l = latencies([write(1, 0, 10), write(2, 0, 30), write(3, 0, 1000, "unknown")]);
    assert.deepEqual(l.write, { n: 2, p50: 10, p99: 30, max: 30 });
    assert.equal(l.cas.n, 0);
  });

  it("finds provably stale reads, and only those", () => {
    const w1 = write(1, 0, 10);
    const w2 = write(2, 20, 30);
    const stale = read(1, 40, 50, "local");
    // Concurrent with w2: may be linearized before it.
    const concurrent = read(1, 25, 35, "local");
    const fresh = read(2, 40, 50, "local");
    const nullStale = read(null, 15, 16, "local");
    const nullEarly = read(null, 5, 6, "local");
    // A value written by an unknown write proves nothing about order.
    const u = write(5, 60, 61, "unknown");
    const afterUnknown = read(5, 70, 80);
    const ops = [w1, w2, stale, concurrent, fresh, nullStale, nullEarly, u, afterUnknown];
    assert.deepEqual(
      provablyStaleReads(ops).map((o) => o.id),
      [stale.id, nullStale.id],
    );
    // The checker agrees these are violations.
    assert.equal(checkHistory([w1, w2, stale]).verdict, "violation");
    assert.equal(checkHistory([w1, w2, concurrent]).verdict, "ok");
  });

  it("passes only when linearizable and converged, and says so in the text", () => {
    const ops = [write(1, 0, 10), read(1, 20, 30), read(null, 40, 50, "local")];
    const verdict = checkHistory(ops, { include: (o) => o.mode !== "local" });
    const verdictWithLocal = checkHistory(ops);
    const convergence = { localAgreed: true, localWaitMs: 12, filesAgree: true, detail: "  rows" };
    const input: ReportInput = {
      seed: 1234,
      readMode: "lease",
      clients: 2,
      keys: ["a"],
      plannedMs: 60_000,
      workloadMs: 1000,
      elapsedMs: 2000,
      ops,
      events: [
        { atMs: 100, round: 0, kind: "pause", action: "start", nodes: [2], detail: "SIGSTOP" },
        { atMs: 2100, round: 0, kind: "pause", action: "heal", nodes: [2], detail: "SIGCONT" },
      ],
      roundsPlayed: 1,
      biasedLocalReads: 1,
      probeReads: 0,
      problems: [],
      crashes: [],
      convergence,
      verdict,
      verdictWithLocal,
      runDir: "/tmp/run",
      historyKept: false,
    };
    assert.equal(passed(input), true);
    const text = formatReport(input);
    assert.match(text, /^chaos run: PASSED {2}seed 1234 {2}reads lease/);
    assert.match(text, /replay: npm run chaos -- --seed 1234 --seconds 60 --reads lease/);
    assert.match(text, /faults: 1 rounds, 1 faults started \(pause 1\)/);
    assert.match(text, /verdict without local reads: OK/);
    assert.match(text, /verdict with local reads: VIOLATION/);
    assert.match(text, /provably stale local reads: 1 of 1 ok local reads/);
    assert.match(text, /result: PASSED \(exit 0\); seed 1234/);

    assert.equal(passed({ ...input, convergence: { ...convergence, filesAgree: false } }), false);
    assert.equal(passed({ ...input, convergence: { ...convergence, localAgreed: false } }), false);
    const crashed = { ...input, crashes: ["node 3 exited by itself (exit 1)"] };
    assert.equal(passed(crashed), false);
    assert.match(
      formatReport(crashed),
      /NODE CRASHES[^\n]*\n {2}node 3 exited by itself \(exit 1\)/,
    );
    const bad = checkHistory([write(1, 0, 10), read(null, 20, 30)]);
    assert.equal(passed({ ...input, verdict: bad }), false);
    assert.match(formatReport({ ...input, verdict: bad }), /result: FAILED \(exit 1\); seed 1234/);
  });
});
