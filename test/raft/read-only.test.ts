import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ReadOnly, ctxKey } from "../../src/raft/read-only.js";
import { dec, enc, msg } from "./helpers.js";

function req(ctx: string) {
  return msg({ type: "read-index", from: "2", context: enc(ctx) });
}

describe("read-only: pending ReadIndex requests on the leader (thesis §6.4)", () => {
  it("acknowledgements are recorded per request; unknown contexts are ignored", () => {
    const ro = new ReadOnly("safe");
    ro.addRequest(5, req("a"));
    assert.deepEqual([...ro.recvAck("1", enc("a"))!.keys()], ["1"]);
    assert.deepEqual([...ro.recvAck("2", enc("a"))!.keys()], ["1", "2"]);
    assert.equal(ro.recvAck("2", enc("zz")), undefined);
  });

  it("advancing to a request releases it and every earlier one, in arrival order", () => {
    const ro = new ReadOnly("safe");
    ro.addRequest(5, req("a"));
    ro.addRequest(6, req("b"));
    ro.addRequest(7, req("c"));
    assert.equal(dec(ro.lastPendingRequestCtx()!), "c");
    const out = ro.advance(enc("b"));
    assert.deepEqual(
      out.map((rs) => [dec(rs.req.context), rs.index]),
      [
        ["a", 5],
        ["b", 6],
      ],
    );
    assert.equal(ro.pendingCount(), 1);
    assert.deepEqual(ro.advance(enc("b")), [], "released requests are gone");
    assert.equal(ro.advance(enc("c")).length, 1);
    assert.equal(ro.lastPendingRequestCtx(), undefined);
  });

  it("a duplicate request (same context) is ignored until released", () => {
    const ro = new ReadOnly("safe");
    ro.addRequest(5, req("a"));
    ro.addRequest(9, req("a"));
    assert.equal(ro.pendingCount(), 1);
    assert.deepEqual(
      ro.advance(enc("a")).map((rs) => rs.index),
      [5],
    );
    ro.addRequest(9, req("a"));
    assert.equal(ro.pendingCount(), 1, "after release the context may be used again");
  });

  it("context keys are hex and distinguish byte strings", () => {
    assert.equal(ctxKey(new Uint8Array([0, 1, 255])), "0001ff");
    assert.notEqual(ctxKey(enc("ab")), ctxKey(enc("a")));
  });
});
