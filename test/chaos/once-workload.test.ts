/**
 * judgeOnce (once-workload.ts): the end state of the exactly-once workload against what its
 * clients were told. Each case breaks one promise and must be found.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { judgeOnce, numberOf } from "./once-workload.js";
import type { OnceOp, RywRead } from "./once-workload.js";

const op = (
  kind: OnceOp["kind"],
  key: string,
  outcome: OnceOp["outcome"],
  requestId: string,
): OnceOp => ({
  client: 0,
  kind,
  key,
  requestId,
  outcome,
  issuedAt: 0,
  attempts: 1,
  startMs: 0,
  endMs: 1,
});

const OPS: OnceOp[] = [
  op("incr", "shared", "ok", "r1"),
  op("incr", "shared", "ok", "r2"),
  op("incr", "shared", "unknown", "r3"),
  op("incr", "own-0", "ok", "r4"),
  op("insert", "t-0-5", "ok", "r5"),
  op("insert", "t-0-6", "unknown", "r6"),
  op("insert", "t-0-7", "failed", "r7"),
];
const read = (value: number | undefined, min: number, max: number): RywRead => ({
  client: 0,
  kind: "incr",
  key: "own-0",
  minIndex: 9,
  node: 2,
  min,
  max,
  ...(value === undefined ? {} : { value }),
});
const good = {
  ops: OPS,
  reads: [read(1, 1, 1), read(undefined, 1, 1)],
  resends: [{ requestId: "r4", index: 7, result: "a", again: { index: 7, result: "a" } }],
  committed: new Set(["r3"]),
  counters: new Map([
    ["shared", 3],
    ["own-0", 1],
  ]),
  tags: new Map([["t-0-5", 1]]),
};

describe("judgeOnce", () => {
  it("passes what the clients were told, an unknown save resolved by its record", () => {
    const v = judgeOnce(good);
    assert.deepEqual(v.problems, []);
    assert.equal(v.ok, true);
    assert.deepEqual(v.saves, { ok: 4, failed: 1, unknown: 2 });
    assert.equal(v.unknownCommitted, 1);
    assert.deepEqual(v.reads, { ok: 1, unavailable: 1 });
  });
  for (const c of [
    {
      name: "a counter incremented twice by one request",
      change: {
        counters: new Map([
          ["shared", 4],
          ["own-0", 1],
        ]),
      },
      want: /counter shared = 4: not within 2 acknowledged and 3/,
    },
    {
      name: "an acknowledged increment lost",
      change: {
        counters: new Map([
          ["shared", 1],
          ["own-0", 1],
        ]),
      },
      want: /counter shared = 1: not within/,
    },
    {
      name: "an unknown increment that committed by its record but is not counted",
      change: {
        counters: new Map([
          ["shared", 2],
          ["own-0", 1],
        ]),
      },
      want: /counter shared = 2, but 2 acknowledged \+ 1 unknown that committed/,
    },
    {
      name: "an insert applied twice",
      change: { tags: new Map([["t-0-5", 2]]) },
      want: /insert t-0-5 appears 2 times/,
    },
    {
      name: "a failed insert there",
      change: {
        tags: new Map([
          ["t-0-5", 1],
          ["t-0-7", 1],
        ]),
      },
      want: /insert t-0-7 \(failed\) appears 1 times, expected 0/,
    },
    {
      name: "an unknown insert there although its record says it did not commit",
      change: {
        tags: new Map([
          ["t-0-5", 1],
          ["t-0-6", 1],
        ]),
      },
      want: /insert t-0-6 \(unknown, not committed by its record\) appears 1 times, expected 0/,
    },
    {
      name: "a read-your-writes read that missed the client's save",
      change: { reads: [read(0, 1, 1)] },
      want: /read-your-writes: client 0 read counter own-0 = 0 on node 2 at min-index 9, expected 1/,
    },
    {
      name: "a repeat answered with another index",
      change: {
        resends: [{ requestId: "r4", index: 7, result: "a", again: { index: 9, result: "a" } }],
      },
      want: /request r4 sent again answered index 9 'a', not the first answer, index 7 'a'/,
    },
  ]) {
    it(`finds ${c.name}`, () => {
      const v = judgeOnce({ ...good, ...c.change });
      assert.equal(v.ok, false);
      assert.ok(
        v.problems.some((p) => c.want.test(p)),
        JSON.stringify(v.problems),
      );
    });
  }
  it("reads one number from a result", () => {
    assert.equal(numberOf(new TextEncoder().encode('[{"n":3}]')), 3);
    assert.equal(numberOf(new TextEncoder().encode("[]")), 0);
    assert.equal(numberOf(new TextEncoder().encode("{}")), undefined);
  });
});
