/**
 * Typed events (src/node/node-events.ts): listeners, a listener that throws, and waitFor, which
 * replaces polling loops (leadership transfer, leaving a joint configuration, waiting for a leader).
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { NexusError, StoppedError, isNexusError } from "../../src/errors/index.js";
import { NodeEvents } from "../../src/node/node-events.js";
import type { LeaderChange } from "../../src/node/node-events.js";

const lc = (leader: string, term = 1): LeaderChange => ({ leader, leaderUrl: "", term });
const timeout = (): Error => new NexusError("TIMEOUT", "not in time");

describe("NodeEvents", () => {
  it("calls listeners with the event until unsubscribed", () => {
    const ev = new NodeEvents();
    const seen: string[] = [];
    const off = ev.on("leader-change", (e) => seen.push(e.leader));
    ev.emit("leader-change", lc("a"));
    ev.emit("divergence", { index: 1, reason: "x" });
    off();
    ev.emit("leader-change", lc("b"));
    assert.deepEqual(seen, ["a"]);
  });

  it("a listener that throws is logged; the others still get the event and emit does not throw", () => {
    const logged: unknown[] = [];
    const ev = new NodeEvents({
      debug() {},
      info() {},
      warn() {},
      error: (fields: unknown) => logged.push(fields),
    });
    const seen: string[] = [];
    ev.on("leader-change", () => {
      throw new Error("listener bug");
    });
    ev.on("leader-change", (e) => seen.push(e.leader));
    ev.emit("leader-change", lc("a"));
    assert.deepEqual(seen, ["a"]);
    assert.equal(logged.length, 1);
    assert.match(JSON.stringify(logged[0]), /listener bug/);
  });

  it("waitFor resolves at once when the condition holds, without an event", async () => {
    const ev = new NodeEvents();
    await ev.waitFor("leader-change", () => true, { timeoutMs: 10, onTimeout: timeout });
  });

  it("waitFor resolves at the first event after which the condition holds", async () => {
    const ev = new NodeEvents();
    let leader = "";
    const done = ev.waitFor("leader-change", () => leader === "b", {
      timeoutMs: 5000,
      onTimeout: timeout,
    });
    let settled = false;
    void done.then(() => (settled = true));
    leader = "a";
    ev.emit("leader-change", lc("a"));
    await new Promise((r) => setImmediate(r));
    assert.equal(settled, false, "a leader-change to another node does not end the wait");
    leader = "b";
    ev.emit("leader-change", lc("b"));
    await done;
  });

  it("waitFor ignores other events", async () => {
    const ev = new NodeEvents();
    let ok = false;
    const done = ev.waitFor("membership-change", () => ok, { timeoutMs: 100, onTimeout: timeout });
    ok = true;
    ev.emit("leader-change", lc("a"));
    await assert.rejects(done, (e: unknown) => isNexusError(e, "TIMEOUT"));
  });

  it("waitFor rejects at the timeout with onTimeout's error", async () => {
    const ev = new NodeEvents();
    await assert.rejects(
      ev.waitFor("leader-change", () => false, { timeoutMs: 20, onTimeout: timeout }),
      (e: unknown) => isNexusError(e, "TIMEOUT"),
    );
  });

  it("waitFor rejects with the signal's reason when it aborts, before or during", async () => {
    const ev = new NodeEvents();
    const ac = new AbortController();
    const w = ev.waitFor("leader-change", () => false, {
      timeoutMs: 60_000,
      onTimeout: timeout,
      signal: ac.signal,
    });
    ac.abort(new Error("gave up"));
    await assert.rejects(w, /gave up/);
    await assert.rejects(
      ev.waitFor("leader-change", () => false, {
        timeoutMs: 60_000,
        onTimeout: timeout,
        signal: ac.signal,
      }),
      /gave up/,
    );
  });

  it("close() rejects pending and later waits (the node stopped)", async () => {
    const ev = new NodeEvents();
    const w = ev.waitFor("leader-change", () => false, { timeoutMs: 60_000, onTimeout: timeout });
    ev.close(new StoppedError());
    await assert.rejects(w, StoppedError);
    await assert.rejects(
      ev.waitFor("leader-change", () => true, { timeoutMs: 10, onTimeout: timeout }),
      StoppedError,
    );
  });
});
