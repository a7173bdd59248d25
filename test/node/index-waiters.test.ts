/**
 * IndexWaiters (src/node/waiters.ts): the applied-index waiters of RaftNode, settled once each by
 * reaching the index, by the timeout, or by rejectAll.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { NexusError, StoppedError, isNexusError } from "../../src/errors/index.js";
import { IndexWaiters } from "../../src/node/waiters.js";

const timeout = (): Error => new NexusError("TIMEOUT", "not reached");

describe("IndexWaiters", () => {
  it("reaching an index resolves every waiter at or below it, and only those", async () => {
    const w = new IndexWaiters();
    const done: number[] = [];
    for (const i of [3, 5, 7]) void w.wait(i, 60_000, timeout).then(() => done.push(i));
    w.reached(5);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(done.sort(), [3, 5]);
    assert.equal(w.size, 1);
    w.reached(4);
    w.reached(9);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(done.sort(), [3, 5, 7]);
    assert.equal(w.size, 0);
  });

  it("a waiter not reached in time rejects with onTimeout's error and is dropped", async () => {
    const w = new IndexWaiters();
    await assert.rejects(w.wait(10, 20, timeout), (e: unknown) => isNexusError(e, "TIMEOUT"));
    assert.equal(w.size, 0);
    w.reached(10); // nothing left to settle
  });

  it("rejectAll rejects every waiter once", async () => {
    const w = new IndexWaiters();
    const a = w.wait(1, 60_000, timeout);
    const b = w.wait(2, 60_000, timeout);
    w.rejectAll(() => new StoppedError());
    await assert.rejects(a, StoppedError);
    await assert.rejects(b, StoppedError);
    assert.equal(w.size, 0);
  });
});
