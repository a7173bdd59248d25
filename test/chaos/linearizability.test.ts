/**
 * Tests of the linearizability checker: hand-written histories with known verdicts, agreement with
 * the brute-force reference on thousands of small random histories (LIN_SEED=<n> replays one run,
 * LIN_HISTORIES=<n> runs more), and large histories like a chaos run's.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SimRandom } from "../cluster-sim/sim-random.js";
import { checkHistoryBruteForce } from "./brute-force.js";
import { main, parseHistory } from "./check-history.js";
import { checkHistory, describeVerdict, validateOperation } from "./linearizability.js";
import type { HistoryVerdict } from "./linearizability.js";
import {
  echoHistory,
  linearizableHistory,
  mutatedHistory,
  randomHistory,
} from "./random-history.js";
import type { GenOptions } from "./random-history.js";
import type { Operation, OpOutcome, ReadMode } from "./history.js";

// ---------------------------------------------------------------------------------------------
// Writing histories by hand: ops get ids in the order they are written.

type Draft = Omit<Operation, "id">;
const build = (drafts: readonly Draft[]): Operation[] => drafts.map((d, id) => ({ ...d, id }));
const w = (
  client: number,
  value: number,
  startMs: number,
  endMs: number,
  outcome: OpOutcome = "ok",
  key = "x",
): Draft => ({ client, key, kind: "write", value, startMs, endMs, outcome });
const r = (
  client: number,
  result: number | null,
  startMs: number,
  endMs: number,
  outcome: OpOutcome = "ok",
  key = "x",
  mode?: ReadMode,
): Draft => ({
  client,
  key,
  kind: "read",
  result,
  startMs,
  endMs,
  outcome,
  ...(mode !== undefined ? { mode } : {}),
});
const cas = (
  client: number,
  expected: number | null,
  value: number,
  casOk: boolean | undefined,
  startMs: number,
  endMs: number,
  outcome: OpOutcome = "ok",
  key = "x",
): Draft => ({
  client,
  key,
  kind: "cas",
  expected,
  value,
  startMs,
  endMs,
  outcome,
  ...(casOk !== undefined ? { casOk } : {}),
});

interface Case {
  readonly name: string;
  readonly ops: readonly Draft[];
  readonly want: boolean;
}

const cases: readonly Case[] = [
  { name: "empty history", ops: [], want: true },
  { name: "read of a never-written register is null", ops: [r(1, null, 0, 1)], want: true },
  { name: "read of a never-written register is not 1", ops: [r(1, 1, 0, 1)], want: false },
  {
    name: "sequential writes and reads",
    ops: [w(1, 1, 0, 1), r(1, 1, 2, 3), w(2, 2, 4, 5), r(1, 2, 6, 7), r(2, 2, 8, 9)],
    want: true,
  },
  {
    name: "stale read after a completed write",
    ops: [w(1, 1, 0, 1), w(1, 2, 2, 3), r(2, 1, 4, 5)],
    want: false,
  },
  {
    name: "null read after a completed write",
    ops: [w(1, 1, 0, 1), r(2, null, 2, 3)],
    want: false,
  },
  {
    name: "read concurrent with a write sees the old value",
    ops: [w(1, 1, 0, 1), w(1, 2, 2, 10), r(2, 1, 3, 4)],
    want: true,
  },
  {
    name: "read concurrent with a write sees the new value",
    ops: [w(1, 1, 0, 1), w(1, 2, 2, 10), r(2, 2, 3, 4)],
    want: true,
  },
  {
    name: "new value then old value during one write",
    ops: [w(1, 1, 0, 1), w(1, 2, 2, 10), r(2, 2, 3, 4), r(2, 1, 5, 6)],
    want: false,
  },
  {
    name: "concurrent writes, later reads see the second to land",
    ops: [w(1, 1, 0, 10), w(2, 2, 0, 10), r(3, 1, 11, 12), r(3, 1, 13, 14)],
    want: true,
  },
  {
    name: "concurrent writes, later reads disagree",
    ops: [w(1, 1, 0, 10), w(2, 2, 0, 10), r(3, 1, 11, 12), r(3, 2, 13, 14)],
    want: false,
  },
  {
    name: "concurrent reads see either order of concurrent writes",
    ops: [w(1, 1, 0, 10), w(2, 2, 0, 10), r(3, 1, 1, 2), r(4, 2, 3, 9)],
    want: true,
  },
  {
    name: "equal instants overlap: a read ending when a write starts may see it",
    ops: [r(2, 1, 0, 5), w(1, 1, 5, 6)],
    want: true,
  },
  {
    name: "a read ending before a write starts cannot see it",
    ops: [r(2, 1, 0, 4), w(1, 1, 5, 6)],
    want: false,
  },
  {
    name: "a read starting when a write ends may miss it",
    ops: [w(1, 1, 0, 5), r(2, null, 5, 6)],
    want: true,
  },
  {
    name: "cas on a fresh register expecting null swaps",
    ops: [cas(1, null, 3, true, 0, 1), r(1, 3, 2, 3)],
    want: true,
  },
  {
    name: "cas that matched swaps",
    ops: [w(1, 1, 0, 1), cas(2, 1, 2, true, 2, 3), r(1, 2, 4, 5)],
    want: true,
  },
  {
    name: "cas that cannot have matched reports a swap",
    ops: [w(1, 1, 0, 1), cas(2, 3, 2, true, 2, 3)],
    want: false,
  },
  {
    name: "cas that did not match leaves the value",
    ops: [w(1, 1, 0, 1), cas(2, 3, 2, false, 2, 3), r(1, 1, 4, 5)],
    want: true,
  },
  {
    name: "cas that must have matched reports no match",
    ops: [w(1, 1, 0, 1), cas(2, 1, 2, false, 2, 3)],
    want: false,
  },
  {
    name: "a read after a swap sees the old value",
    ops: [w(1, 1, 0, 1), cas(2, 1, 2, true, 2, 3), r(1, 1, 4, 5)],
    want: false,
  },
  {
    name: "cas concurrent with a write may miss it",
    ops: [w(1, 1, 0, 1), w(1, 2, 2, 10), cas(2, 1, 3, true, 3, 4), r(3, 2, 11, 12)],
    want: true,
  },
  {
    name: "two cas from the same value cannot both swap",
    ops: [w(1, 1, 0, 1), cas(2, 1, 2, true, 2, 10), cas(3, 1, 3, true, 2, 10)],
    want: false,
  },
  {
    name: "unknown write observed long after it started",
    ops: [
      w(1, 1, 0, 1),
      w(2, 2, 2, 3, "unknown"),
      r(3, 1, 10, 11),
      r(3, 2, 1000, 1001),
      r(1, 2, 2000, 2001),
    ],
    want: true,
  },
  {
    name: "unknown write observed, then un-observed",
    ops: [w(1, 1, 0, 1), w(2, 2, 2, 3, "unknown"), r(3, 2, 10, 11), r(3, 1, 20, 21)],
    want: false,
  },
  {
    name: "unknown write never observed",
    ops: [w(1, 1, 0, 1), w(2, 2, 2, 3, "unknown"), r(3, 1, 10, 11)],
    want: true,
  },
  {
    name: "unknown write cannot take effect before it starts",
    ops: [r(1, 2, 0, 1), w(2, 2, 5, 6, "unknown")],
    want: false,
  },
  {
    name: "unknown write observed after a later write was overwritten",
    ops: [w(2, 2, 0, 1, "unknown"), w(1, 1, 5, 6), r(3, 2, 7, 8), w(1, 3, 9, 10), r(3, 3, 11, 12)],
    want: true,
  },
  {
    name: "unknown write takes effect once",
    ops: [w(2, 2, 0, 1, "unknown"), r(3, 2, 2, 3), w(1, 1, 4, 5), r(3, 2, 6, 7)],
    want: false,
  },
  {
    name: "two unknown writes of the same value, observed twice",
    ops: [
      w(2, 2, 0, 1, "unknown"),
      w(4, 2, 0, 1, "unknown"),
      r(3, 2, 2, 3),
      w(1, 1, 4, 5),
      r(3, 2, 6, 7),
    ],
    want: true,
  },
  {
    name: "unknown cas chain",
    ops: [
      w(1, 1, 0, 1),
      cas(2, 1, 2, undefined, 2, 3, "unknown"),
      cas(3, 2, 3, undefined, 2, 3, "unknown"),
      r(1, 3, 4, 5),
    ],
    want: true,
  },
  {
    name: "unknown cas chain with a missing link",
    ops: [w(1, 1, 0, 1), cas(3, 2, 3, undefined, 2, 3, "unknown"), r(1, 3, 4, 5)],
    want: false,
  },
  {
    name: "unknown write then unknown cas",
    ops: [
      w(1, 1, 0, 1),
      w(2, 5, 2, 3, "unknown"),
      cas(3, 5, 3, undefined, 2, 3, "unknown"),
      r(1, 3, 4, 5),
    ],
    want: true,
  },
  {
    name: "an unknown write nobody reads explains a cas that did not match",
    ops: [
      w(1, 1, 0, 1),
      w(2, 7, 2, 3, "unknown"),
      cas(3, 1, 2, false, 4, 5),
      w(1, 3, 6, 7),
      r(3, 3, 8, 9),
    ],
    want: true,
  },
  {
    name: "without it the cas must have matched",
    ops: [
      w(1, 1, 0, 1),
      w(2, 7, 2, 3, "failed"),
      cas(3, 1, 2, false, 4, 5),
      w(1, 3, 6, 7),
      r(3, 3, 8, 9),
    ],
    want: false,
  },
  {
    name: "failed write ignored",
    ops: [w(1, 1, 0, 1), w(2, 2, 2, 3, "failed"), r(3, 1, 4, 5)],
    want: true,
  },
  {
    name: "failed write never observed",
    ops: [w(1, 1, 0, 1), w(2, 2, 2, 3, "failed"), r(3, 2, 4, 5)],
    want: false,
  },
  {
    name: "failed and unknown reads ignored",
    ops: [w(1, 1, 0, 1), r(2, 9, 2, 3, "failed"), r(2, 8, 4, 5, "unknown")],
    want: true,
  },
  {
    name: "registers are independent",
    ops: [
      w(1, 1, 0, 10, "ok", "a"),
      w(2, 2, 0, 10, "ok", "b"),
      r(3, 1, 1, 2, "ok", "a"),
      r(3, 2, 3, 4, "ok", "b"),
      r(3, null, 3, 4, "ok", "c"),
    ],
    want: true,
  },
  {
    name: "a value written to one register is not in another",
    ops: [w(1, 1, 0, 1, "ok", "a"), r(3, 1, 2, 3, "ok", "b")],
    want: false,
  },
];

describe("checkHistory: hand-written histories", () => {
  for (const c of cases) {
    it(`${c.name}: ${c.want ? "linearizable" : "violation"}`, () => {
      const ops = build(c.ops);
      const got = checkHistory(ops);
      assert.equal(got.ok, c.want, describeVerdict(got));
      assert.equal(got.verdict, c.want ? "ok" : "violation");
      assert.equal(checkHistoryBruteForce(ops), c.want, "the brute force disagrees with the case");
    });
  }

  it("judges each key on its own and names the key that fails", () => {
    const ops = build([
      w(1, 1, 0, 1, "ok", "a"),
      r(2, 1, 2, 3, "ok", "a"),
      w(1, 1, 0, 1, "ok", "b"),
      w(1, 2, 2, 3, "ok", "b"),
      r(2, 1, 4, 5, "ok", "b"),
    ]);
    const got = checkHistory(ops);
    assert.equal(got.verdict, "violation");
    assert.deepEqual(
      got.keys.map((k) => [k.key, k.verdict, k.ops]),
      [
        ["a", "ok", 2],
        ["b", "violation", 3],
      ],
    );
  });

  it("reports where the search got stuck on a violation", () => {
    const ops = build([
      w(1, 1, 0, 1),
      w(1, 2, 2, 3),
      r(2, 2, 4, 5),
      w(2, 5, 6, 8),
      r(3, 1, 6, 7),
      r(1, 5, 9, 10),
    ]);
    const got = checkHistory(ops);
    const k = got.keys[0]!;
    assert.equal(k.verdict, "violation");
    const d = k.violation!;
    assert.equal(d.linearizedOps, 4, "w1 w2 r2 w5 can be placed, nothing after");
    assert.deepEqual(d.values, [5]);
    assert.deepEqual(
      d.stuckAt.map((op) => op.id),
      [4],
      "the stale read",
    );
    assert.equal(d.stuckAtMs, 7);
    assert.deepEqual(
      d.tail.map((op) => op.id),
      [0, 1, 2, 3],
    );
    const text = describeVerdict(got);
    console.log(text);
    assert.match(text, /NOT linearizable/);
    assert.match(text, /#4 c3 read -> 1 \[6, 7\] ok/);
  });

  it("leaves out what `include` rejects: stale local reads", () => {
    const ops = build([
      w(1, 1, 0, 1),
      w(1, 2, 2, 3),
      r(2, 2, 4, 5, "ok", "x", "linearizable"),
      r(3, 1, 4, 5, "ok", "x", "local"),
    ]);
    assert.equal(checkHistory(ops).verdict, "violation");
    const got = checkHistory(ops, { include: (op) => op.mode !== "local" });
    assert.equal(got.verdict, "ok");
    assert.equal(got.keys[0]!.ignoredOps, 1);
  });

  it("gives verdict unknown, never ok, when the budget runs out", () => {
    const rng = new SimRandom(7);
    const ops = linearizableHistory(rng, {
      ops: 400,
      clients: 5,
      keys: 1,
      values: 3,
      pUnknown: 0.05,
      pFailed: 0,
    });
    assert.equal(checkHistory(ops).verdict, "ok");
    const got = checkHistory(ops, { maxStates: 50 });
    assert.equal(got.verdict, "unknown");
    assert.equal(got.ok, false);
    assert.equal(got.keys[0]!.ok, false);
    assert.match(got.keys[0]!.message, /budget exhausted after 50 states/);
    const late = checkHistory(ops, { maxMs: 1e-9 });
    assert.equal(late.verdict, "unknown");
  });

  for (const c of [
    {
      name: "a write without a value",
      op: { id: 0, client: 1, key: "x", kind: "write", startMs: 0, endMs: 1, outcome: "ok" },
    },
    {
      name: "an ok read without a result",
      op: { id: 0, client: 1, key: "x", kind: "read", startMs: 0, endMs: 1, outcome: "ok" },
    },
    {
      name: "an ok cas without casOk",
      op: {
        id: 0,
        client: 1,
        key: "x",
        kind: "cas",
        value: 1,
        expected: null,
        startMs: 0,
        endMs: 1,
        outcome: "ok",
      },
    },
    {
      name: "an end before the start",
      op: {
        id: 0,
        client: 1,
        key: "x",
        kind: "write",
        value: 1,
        startMs: 2,
        endMs: 1,
        outcome: "ok",
      },
    },
    {
      name: "a time that is not finite",
      op: {
        id: 0,
        client: 1,
        key: "x",
        kind: "write",
        value: 1,
        startMs: 0,
        endMs: Infinity,
        outcome: "unknown",
      },
    },
    {
      name: "a value that is not an integer",
      op: {
        id: 0,
        client: 1,
        key: "x",
        kind: "write",
        value: 1.5,
        startMs: 0,
        endMs: 1,
        outcome: "ok",
      },
    },
    {
      name: "an unknown outcome name",
      op: {
        id: 0,
        client: 1,
        key: "x",
        kind: "write",
        value: 1,
        startMs: 0,
        endMs: 1,
        outcome: "timeout",
      },
    },
  ]) {
    it(`refuses ${c.name} with a clear error`, () => {
      const op = c.op as unknown as Operation;
      assert.throws(
        () => validateOperation(op),
        (e: unknown) => e instanceof TypeError && /malformed operation/.test(e.message),
      );
      assert.throws(() => checkHistory([op]), TypeError);
    });
  }

  it("refuses duplicate ids", () => {
    const ops = build([w(1, 1, 0, 1)]);
    assert.throws(() => checkHistory([...ops, ...ops]), /duplicate operation id 0/);
  });
});

// ---------------------------------------------------------------------------------------------
// Random histories.

const seedFromEnv = process.env["LIN_SEED"];
const SEED =
  seedFromEnv !== undefined ? Number(seedFromEnv) : (Date.now() ^ (process.pid << 8)) >>> 0;
const HISTORIES = Number(process.env["LIN_HISTORIES"] ?? 5000);

describe("checkHistory agrees with the brute force", () => {
  it(`on ${HISTORIES} small random histories (LIN_SEED=${SEED})`, () => {
    console.log(`random histories: LIN_SEED=${SEED} replays this run`);
    const rng = new SimRandom(SEED);
    const verdicts = { ok: 0, violation: 0 };
    const byKind = { linearizable: 0, random: 0, mutated: 0, echo: 0 };
    let unknownOps = 0;
    let keyChecks = 0;
    const exact = { ok: 0, violation: 0 };
    for (let n = 0; n < HISTORIES; n++) {
      const g: GenOptions = {
        ops: 1 + rng.int(7),
        clients: 1 + rng.int(3),
        keys: 1 + rng.int(2),
        values: 1 + rng.int(3),
        pUnknown: rng.pick([0, 0.2, 0.4]),
        pFailed: rng.pick([0, 0.15]),
        pSlow: rng.pick([0, 0.3]),
        slowMs: 15,
      };
      const which = rng.pick(["linearizable", "random", "mutated", "echo"] as const);
      byKind[which]++;
      const ops =
        which === "linearizable"
          ? linearizableHistory(rng, g)
          : which === "random"
            ? randomHistory(rng, g)
            : which === "mutated"
              ? mutatedHistory(rng, g)
              : echoHistory(rng, { ...g, ops: Math.min(g.ops, 5), pUnknown: 0.4 });
      unknownOps += ops.filter((op) => op.outcome === "unknown").length;
      const got = checkHistory(ops);
      const want = checkHistoryBruteForce(ops);
      const replay = `history #${n} of LIN_SEED=${SEED} (${which}):\n${JSON.stringify(ops)}\n${describeVerdict(got)}`;
      assert.notEqual(got.verdict, "unknown", replay);
      assert.equal(
        got.ok,
        want,
        `checker says ${got.verdict}, brute force says ${want}; ${replay}`,
      );
      if (which === "linearizable") assert.equal(got.ok, true, `generated linearizable; ${replay}`);
      const exactOnly = checkHistory(ops, { search: "exact" });
      assert.equal(
        exactOnly.ok,
        want,
        `the exact search alone says ${exactOnly.verdict}; ${replay}`,
      );
      for (const k of got.keys) {
        keyChecks++;
        const sub = ops.filter((op) => op.key === k.key);
        assert.equal(k.ok, checkHistoryBruteForce(sub), `key ${k.key}; ${replay}`);
        if (k.stats.exactSearch) exact[k.ok ? "ok" : "violation"]++;
      }
      verdicts[got.ok ? "ok" : "violation"]++;
    }
    console.log(
      `verdicts: ${verdicts.ok} linearizable, ${verdicts.violation} violations ` +
        `(${byKind.linearizable} generated linearizable, ${byKind.random} random, ${byKind.mutated} mutated, ${byKind.echo} echoes; ` +
        `${unknownOps} unknown ops; ${keyChecks} keys checked one by one, ` +
        `${exact.ok + exact.violation} needed the exact search: ${exact.ok} ok, ${exact.violation} violations)`,
    );
    assert.ok(verdicts.ok >= HISTORIES * 0.2, `too few linearizable histories: ${verdicts.ok}`);
    assert.ok(verdicts.violation >= HISTORIES * 0.2, `too few violations: ${verdicts.violation}`);
    // Violations that only the exact search (unknown ops take effect at most once) finds.
    assert.ok(exact.violation >= HISTORIES / 500, `too few exact violations: ${exact.violation}`);
  });
});

// ---------------------------------------------------------------------------------------------
// Chaos-sized histories: assert the verdict, print the time.

describe("checkHistory on chaos-sized histories", () => {
  const big = (
    name: string,
    g: GenOptions,
    seed: number,
    mutate?: (ops: Operation[]) => Operation[],
    want: "ok" | "violation" = "ok",
    also?: (got: HistoryVerdict) => void,
  ): void => {
    it(name, () => {
      const ops0 = linearizableHistory(new SimRandom(seed), g);
      const ops = mutate !== undefined ? mutate(ops0) : ops0;
      const got = checkHistory(ops, { maxMs: 30_000 });
      const unknown = ops.filter((op) => op.outcome === "unknown").length;
      const states = got.keys.reduce((s, k) => s + k.stats.statesExplored, 0);
      console.log(
        `${name}: ${ops.length} ops (${unknown} unknown): ${got.verdict} in ${got.elapsedMs.toFixed(0)} ms, ${states} states`,
      );
      assert.equal(got.verdict, want, describeVerdict(got));
      also?.(got);
    });
  };
  const chaos: GenOptions = {
    ops: 20_000,
    clients: 10,
    keys: 5,
    values: 0,
    pUnknown: 0.05,
    pFailed: 0.05,
    gapMs: 5,
    durationMs: 20,
  };
  big("20,000 ops, 5 keys, 10 clients, 5% unknown, fresh values: ok", chaos, 1);
  big("20,000 ops, 5 keys, 10 clients, 5% unknown, values 1..3: ok", { ...chaos, values: 3 }, 2);
  big(
    "20,000 ops on one key, 10 clients, 30% unknown: ok",
    { ...chaos, keys: 1, pUnknown: 0.3 },
    3,
  );
  big(
    "20,000 ops on one key, 10 clients, 30% unknown, values 1..3: ok",
    { ...chaos, keys: 1, values: 3, pUnknown: 0.3 },
    4,
  );
  const slow: GenOptions = { ...chaos, pUnknown: 0.1, pSlow: 0.02, slowMs: 1000 };
  big("20,000 ops, 5 keys, 10 clients, 10% unknown, 2% slow ops (up to 1 s): ok", slow, 7);
  big(
    "the same, then an unknown write read again after an overwrite: violation (exact search)",
    slow,
    8,
    (ops) => {
      // A value some read saw, written by an unknown write: it took effect then, not again.
      const echo = ops.find(
        (rd) =>
          rd.kind === "read" &&
          rd.outcome === "ok" &&
          ops.some(
            (u) =>
              u.outcome === "unknown" &&
              u.kind === "write" &&
              u.key === rd.key &&
              u.value === rd.result,
          ),
      )!;
      const t = Math.max(...ops.map((op) => op.endMs)) + 10;
      const at = (id: number, dt: number, op: Pick<Operation, "kind" | "value" | "result">) => ({
        ...op,
        id,
        client: 99,
        key: echo.key,
        startMs: t + dt,
        endMs: t + dt + 1,
        outcome: "ok" as const,
      });
      return [
        ...ops,
        at(ops.length, 0, { kind: "write", value: 1e9 }),
        at(ops.length + 1, 2, { kind: "read", result: 1e9 }),
        at(ops.length + 2, 4, { kind: "read", result: echo.result ?? null }),
      ];
    },
    "violation",
    (got) => assert.ok(got.keys.some((k) => k.verdict === "violation" && k.stats.exactSearch)),
  );
  const staleReadNear =
    (fraction: number) =>
    (ops: Operation[]): Operation[] => {
      // A read of the first value written, well after later writes completed: stale.
      const at = Math.floor(ops.length * fraction);
      const first = ops.find(
        (op) => op.key === "k0" && op.kind === "write" && op.outcome === "ok",
      )!;
      const t = ops[at]!.endMs + 1000;
      return [
        ...ops,
        {
          id: ops.length,
          client: 99,
          key: "k0",
          kind: "read",
          result: first.value ?? null,
          startMs: t,
          endMs: t + 1,
          outcome: "ok",
          mode: "local",
        },
      ];
    };
  big(
    "20,000 ops, 5% unknown, one stale read at the end: violation",
    chaos,
    5,
    staleReadNear(0.99),
    "violation",
  );
  big(
    "20,000 ops, 5% unknown, values 1..3, one changed result: violation",
    { ...chaos, values: 3 },
    6,
    (ops) => {
      const i = ops.findIndex(
        (op, j) =>
          j > ops.length / 2 &&
          op.key === "k1" &&
          op.kind === "read" &&
          op.outcome === "ok" &&
          op.result === 2,
      );
      const op = ops[i]!;
      return ops.map((o, j) => (j === i ? { ...op, result: 77 } : o));
    },
    "violation",
  );
});

// ---------------------------------------------------------------------------------------------
// The command line.

describe("check-history: the command line", () => {
  const dir = mkdtempSync(join(tmpdir(), "lin-history-"));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const write = (name: string, ops: readonly Operation[] | string): string => {
    const path = join(dir, name);
    writeFileSync(
      path,
      typeof ops === "string" ? ops : ops.map((op) => JSON.stringify(op)).join("\n") + "\n",
    );
    return path;
  };
  const stale = build([
    w(1, 1, 0, 1),
    w(1, 2, 2, 3),
    r(2, 2, 4, 5, "ok", "x", "linearizable"),
    r(3, 1, 6, 7, "ok", "x", "local"),
  ]);
  const run = (args: string[]): { status: number; text: string } => {
    const lines: string[] = [];
    const status = main(args, (l) => lines.push(l));
    return { status, text: lines.join("\n") };
  };

  for (const c of [
    {
      name: "a violation exits 1",
      args: (f: string) => [f],
      status: 1,
      text: /VIOLATION[\s\S]*#3 c3 read -> 1 local/,
    },
    {
      name: "--read-modes leaves out local reads",
      args: (f: string) => ["--read-modes", "linearizable,lease", f],
      status: 0,
      text: /history: OK/,
    },
    {
      name: "--exact gives the same verdict",
      args: (f: string) => ["--exact", f],
      status: 1,
      text: /VIOLATION/,
    },
    {
      name: "a bad mode is refused",
      args: (f: string) => ["--read-modes", "strong", f],
      status: 64,
      text: /"strong" is not one of/,
    },
    { name: "no file is refused", args: () => [], status: 64, text: /no history file/ },
    {
      name: "a missing file is refused",
      args: () => [join(dir, "missing.jsonl")],
      status: 64,
      text: /ENOENT/,
    },
  ]) {
    it(c.name, () => {
      const got = run(c.args(write("stale.jsonl", stale)));
      assert.equal(got.status, c.status, got.text);
      assert.match(got.text, c.text);
    });
  }

  it("names the line of a malformed operation", () => {
    const f = write("bad.jsonl", `${JSON.stringify(stale[0])}\n\n{"id": 1, "kind": "write"}\n`);
    const got = run([f]);
    assert.equal(got.status, 64);
    assert.match(got.text, /bad\.jsonl:3: malformed operation/);
    assert.throws(() => parseHistory("{not json", "h"), /h:1: not JSON/);
  });

  it("runs as a program: tsx test/chaos/check-history.ts <file>", () => {
    const ok = write("ok.jsonl", stale.slice(0, 3));
    const res = spawnSync(
      process.execPath,
      ["--import", "tsx", "test/chaos/check-history.ts", ok],
      {
        encoding: "utf8",
        timeout: 60_000,
      },
    );
    assert.equal(res.status, 0, res.stdout + res.stderr);
    assert.match(res.stdout, /key "x": ok - linearizable \(3 ok \+ 0 unknown ops/);
  });
});
