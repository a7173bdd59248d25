/**
 * decide() (src/store/request-records.ts) on its own: a repeat answered from a record carries the
 * index of the entry that recorded it (`firstIndex`); a record kept before indexes were read back
 * (index 0) still answers, without one, so the node falls back to the repeat's own index.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { decide, recordOf, requestKeyOf } from "../../src/store/request-records.js";
import type { ApplyEntry } from "../../src/store/store.js";

const cmd = { data: new TextEncoder().encode("incr n"), args: {} };
const key = requestKeyOf(cmd, "r-1", 1000);
const entry = (index: number): ApplyEntry => ({
  index,
  term: 1,
  command: cmd,
  timestampMs: 1000 + index,
  seed: 0,
  request: key,
});
const result = { ok: true as const, data: new TextEncoder().encode("1") };

describe("decide", () => {
  for (const c of [
    { name: "a record with its index", index: 7, want: { ...result, firstIndex: 7 } },
    { name: "an old record without one", index: 0, want: result },
  ]) {
    it(`answers a repeat from ${c.name}`, () => {
      const found = { ...recordOf(entry(7), key, result), index: c.index };
      assert.deepEqual(decide(entry(9), key, found, 60_000), { result: c.want });
    });
  }
  it("applies an id with no record", () =>
    assert.deepEqual(decide(entry(9), key, undefined, 60_000), { apply: true }));
});
