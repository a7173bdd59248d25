/**
 * The workload's operations against a fake client: the statements and params it sends, how it
 * reads results (rowsAffected, rows), and the fields it records.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { NexusError } from "../../src/errors/index.js";
import {
  CAS_FROM_NULL_SQL,
  CAS_SQL,
  READ_SQL,
  WRITE_SQL,
  perform,
  registerOf,
  rowsAffectedOf,
} from "./workload.js";
import type { RegisterClient } from "./workload.js";

const enc = new TextEncoder();
const dec = new TextDecoder();

interface Call {
  readonly op: "save" | "load";
  readonly sql: string;
  readonly args: Record<string, string>;
}

/** A client whose save/load answer from a script and record what was sent. */
function fake(answers: (string | Error)[]): { c: RegisterClient; calls: Call[] } {
  const calls: Call[] = [];
  const answer = async (
    op: "save" | "load",
    data: Uint8Array,
    args: Record<string, string> = {},
  ) => {
    calls.push({ op, sql: dec.decode(data), args });
    const a = answers.shift();
    if (a === undefined) throw new Error("no answer scripted");
    if (a instanceof Error) throw a;
    return enc.encode(a);
  };
  return {
    calls,
    c: {
      save: (d, a) => answer("save", d, a),
      load: (d, a) => answer("load", d, a),
    },
  };
}

describe("chaos workload", () => {
  it("parses save results and read rows, refusing anything unexpected", () => {
    assert.equal(rowsAffectedOf(enc.encode('{"rowsAffected":1,"lastInsertId":0}')), 1);
    assert.equal(rowsAffectedOf(enc.encode('{"rowsAffected":0,"lastInsertId":0}')), 0);
    assert.equal(rowsAffectedOf(enc.encode("OK")), undefined);
    assert.equal(rowsAffectedOf(enc.encode("{}")), undefined);
    assert.equal(registerOf(enc.encode("[]")), null);
    assert.equal(registerOf(enc.encode('[{"v":42}]')), 42);
    assert.equal(registerOf(enc.encode('[{"v":"42"}]')), undefined);
    assert.equal(registerOf(enc.encode('[{"v":1},{"v":2}]')), undefined);
    assert.equal(registerOf(enc.encode('{"v":1}')), undefined);
    assert.equal(registerOf(enc.encode("not json")), undefined);
  });

  it("writes with an upsert and records ok", async () => {
    const { c, calls } = fake(['{"rowsAffected":1,"lastInsertId":1}']);
    assert.deepEqual(await perform(c, { kind: "write", key: "a", value: 7 }), { outcome: "ok" });
    assert.deepEqual(calls, [{ op: "save", sql: WRITE_SQL, args: { params: '["a",7]' } }]);
  });

  it("cas from a value updates where v matches; rowsAffected tells whether it swapped", async () => {
    const { c, calls } = fake([
      '{"rowsAffected":1,"lastInsertId":0}',
      '{"rowsAffected":0,"lastInsertId":0}',
      '{"rowsAffected":3,"lastInsertId":0}',
    ]);
    const inv = { kind: "cas", key: "b", value: 9, expected: 4 } as const;
    assert.deepEqual(await perform(c, inv), { outcome: "ok", casOk: true });
    assert.deepEqual(await perform(c, inv), { outcome: "ok", casOk: false });
    // Anything but 0 or 1 rows is not understood: it may have been applied.
    assert.equal((await perform(c, inv)).outcome, "unknown");
    assert.deepEqual(calls[0], { op: "save", sql: CAS_SQL, args: { params: '[9,"b",4]' } });
  });

  it("cas from null inserts only when there is no row", async () => {
    const { c, calls } = fake(['{"rowsAffected":0,"lastInsertId":0}']);
    const r = await perform(c, { kind: "cas", key: "b", value: 3, expected: null });
    assert.deepEqual(r, { outcome: "ok", casOk: false });
    assert.deepEqual(calls[0], { op: "save", sql: CAS_FROM_NULL_SQL, args: { params: '["b",3]' } });
  });

  it("reads with the asked consistency (the default sends none) and records the value", async () => {
    const { c, calls } = fake(["[]", '[{"v":5}]', '[{"v":6}]', "garbage"]);
    assert.deepEqual(await perform(c, { kind: "read", key: "c", mode: "linearizable" }), {
      outcome: "ok",
      result: null,
    });
    assert.deepEqual(await perform(c, { kind: "read", key: "c", mode: "lease" }), {
      outcome: "ok",
      result: 5,
    });
    assert.deepEqual(await perform(c, { kind: "read", key: "c", mode: "local" }), {
      outcome: "ok",
      result: 6,
    });
    assert.equal((await perform(c, { kind: "read", key: "c", mode: "local" })).outcome, "unknown");
    assert.deepEqual(
      calls.map((x) => [x.sql, x.args]),
      [
        [READ_SQL, { params: '["c"]' }],
        [READ_SQL, { params: '["c"]', consistency: "lease" }],
        [READ_SQL, { params: '["c"]', consistency: "local" }],
        [READ_SQL, { params: '["c"]', consistency: "local" }],
      ],
    );
  });

  it("records errors through the outcome table", async () => {
    const { c } = fake([
      new NexusError("PROPOSAL_DROPPED", "nothing was written"),
      new NexusError("UNKNOWN_OUTCOME", "may or may not"),
    ]);
    assert.deepEqual(await perform(c, { kind: "write", key: "a", value: 1 }), {
      outcome: "failed",
      error: "PROPOSAL_DROPPED: nothing was written",
    });
    assert.deepEqual(await perform(c, { kind: "cas", key: "a", value: 2, expected: 1 }), {
      outcome: "unknown",
      error: "UNKNOWN_OUTCOME: may or may not",
    });
  });
});
