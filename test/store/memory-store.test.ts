import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { MemoryStore } from "../../src/store/memory/memory-store.js";
import { runStoreConformance } from "./conformance.js";
import { runRequestRecordSuite } from "./request-records-suite.js";
import { isNexusError } from "../../src/errors/index.js";

const dec = new TextDecoder();
const enc = new TextEncoder();

const conformance = {
  name: "memory",
  open: async (opts?: { requestWindowMs?: number }) => ({
    store: new MemoryStore(opts),
    cleanup: async () => undefined,
  }),
  commands: {
    set: (k: string, v: string) => ({ data: `set ${k} ${v}` }),
    get: (k: string) => ({ data: `get ${k}` }),
    value: (r: Uint8Array) => dec.decode(r),
    failing: () => ({ data: "fail on purpose" }),
  },
};

describe("MemoryStore", () => {
  runStoreConformance(conformance);
  runRequestRecordSuite(conformance);

  it("cas, incr, append, now and random are deterministic functions of the entry", async () => {
    const s = new MemoryStore();
    const e = (index: number, data: string) => ({
      index,
      term: 1,
      command: { data: enc.encode(data), args: {} },
      timestampMs: 42,
      seed: 1234567,
    });
    const r = await s.apply([
      e(1, "cas x  v1"),
      e(2, "set x v1"),
      e(3, "cas x v1 v2"),
      e(4, "incr n"),
      e(5, "incr n"),
      e(6, "append s hello world"),
      e(7, "now"),
      e(8, "random"),
      e(9, "bogus"),
    ]);
    const out = r.map((x) => (x.ok ? dec.decode(x.data) : `ERR ${x.error}`));
    assert.deepEqual(out.slice(0, 8), [
      "ERR usage: cas <key> <expected> <new>",
      "OK",
      "true",
      "1",
      "2",
      "OK",
      "42",
      "234567",
    ]);
    assert.match(out[8]!, /unknown command "bogus"; valid commands/);
    assert.equal(dec.decode(await s.load({ data: enc.encode("get s"), args: {} })), "hello world");
    await assert.rejects(s.load({ data: enc.encode("drop all"), args: {} }), (err: unknown) =>
      isNexusError(err, "STORE_ERROR"),
    );
    s.setAvailable(false);
    await assert.rejects(s.apply([e(10, "set a b")]), (err: unknown) =>
      isNexusError(err, "STORE_UNAVAILABLE"),
    );
  });
});
