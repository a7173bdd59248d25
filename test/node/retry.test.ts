/**
 * The one retry helper (src/node/retry.ts): which errors retry is decided by code, never by
 * message; the deadline and an AbortSignal end it.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  NexusError,
  NotLeaderError,
  StoppedError,
  StoreError,
  TimeoutError,
  UnknownOutcomeError,
} from "../../src/errors/index.js";
import { RaftError } from "../../src/raft/raft.js";
import { abortable, isRetryableUnwritten, retryUnwritten } from "../../src/node/retry.js";

describe("which errors retry (nothing was written)", () => {
  for (const c of [
    { name: "NexusError NO_LEADER", err: new NexusError("NO_LEADER", "x"), want: true },
    {
      name: "NexusError PROPOSAL_DROPPED",
      err: new NexusError("PROPOSAL_DROPPED", "x"),
      want: true,
    },
    { name: "RaftError no-leader", err: new RaftError("no-leader", "x"), want: true },
    { name: "RaftError proposal-dropped", err: new RaftError("proposal-dropped", "x"), want: true },
    {
      name: "RaftError conf-change-refused",
      err: new RaftError("conf-change-refused", "x"),
      want: false,
    },
    {
      name: "NOT_LEADER (NotLeaderError)",
      err: new NotLeaderError("x", "http://l:1"),
      want: false,
    },
    { name: "TIMEOUT: may have been written", err: new TimeoutError("x"), want: false },
    {
      name: "UNKNOWN_OUTCOME: may have been written",
      err: new UnknownOutcomeError("x"),
      want: false,
    },
    { name: "STOPPED", err: new StoppedError(), want: false },
    { name: "MEMBERSHIP_REFUSED", err: new NexusError("MEMBERSHIP_REFUSED", "x"), want: false },
    { name: "STORE_ERROR", err: new StoreError("x"), want: false },
    // Decided by code: a foreign error whose message says "no leader" does not retry.
    { name: "a plain Error saying no leader", err: new Error("NO_LEADER: no leader"), want: false },
    { name: "not an error at all", err: "NO_LEADER", want: false },
  ]) {
    it(`${c.name}: ${c.want ? "retries" : "does not retry"}`, () =>
      assert.equal(isRetryableUnwritten(c.err), c.want));
  }
});

describe("retryUnwritten", () => {
  it("retries a retryable refusal until it passes", async () => {
    let n = 0;
    const v = await retryUnwritten(
      async () => {
        if (++n < 3) throw new NexusError("NO_LEADER", "no leader yet");
        return "done";
      },
      { deadline: Date.now() + 5000, intervalMs: 1 },
    );
    assert.equal(v, "done");
    assert.equal(n, 3);
  });

  it("gives up at once on an error that does not retry", async () => {
    let n = 0;
    await assert.rejects(
      retryUnwritten(
        async () => {
          n++;
          throw new UnknownOutcomeError("maybe written");
        },
        { deadline: Date.now() + 5000, intervalMs: 1 },
      ),
      UnknownOutcomeError,
    );
    assert.equal(n, 1);
  });

  it("throws the last error at the deadline", async () => {
    let n = 0;
    const started = Date.now();
    await assert.rejects(
      retryUnwritten(
        async () => {
          n++;
          throw new NexusError("PROPOSAL_DROPPED", `attempt ${n}`);
        },
        { deadline: Date.now() + 100, intervalMs: 10 },
      ),
      (e: unknown) => e instanceof NexusError && e.code === "PROPOSAL_DROPPED",
    );
    assert.ok(n >= 2, `retried (${n} attempts)`);
    assert.ok(Date.now() - started < 2000);
  });

  it("gives each attempt the time left", async () => {
    const seen: number[] = [];
    await retryUnwritten(
      async (remaining) => {
        seen.push(remaining);
        if (seen.length < 2) throw new NexusError("NO_LEADER", "x");
      },
      { deadline: Date.now() + 1000, intervalMs: 20 },
    );
    assert.ok(seen[0]! <= 1000 && seen[1]! < seen[0]!, String(seen));
  });

  it("uses beforeRetry instead of the pause when given", async () => {
    let waited = 0;
    let n = 0;
    await retryUnwritten(
      async () => {
        if (++n < 2) throw new NexusError("NO_LEADER", "x");
      },
      {
        deadline: Date.now() + 1000,
        intervalMs: 60_000,
        beforeRetry: async () => {
          waited++;
        },
      },
    );
    assert.equal(waited, 1);
  });

  it("an aborted signal rejects with its reason before any attempt", async () => {
    const ac = new AbortController();
    ac.abort(new Error("caller gave up"));
    let n = 0;
    await assert.rejects(
      retryUnwritten(
        async () => {
          n++;
        },
        { deadline: Date.now() + 1000, intervalMs: 1, signal: ac.signal },
      ),
      /caller gave up/,
    );
    assert.equal(n, 0);
  });

  it("aborting during the pause or an attempt rejects at once", async () => {
    const ac = new AbortController();
    const started = Date.now();
    setTimeout(() => ac.abort(), 50);
    await assert.rejects(
      retryUnwritten(
        async () => {
          throw new NexusError("NO_LEADER", "x");
        },
        { deadline: Date.now() + 60_000, intervalMs: 10_000, signal: ac.signal },
      ),
      (e: unknown) => e instanceof Error && e.name === "AbortError",
    );
    const ac2 = new AbortController();
    setTimeout(() => ac2.abort(), 50);
    await assert.rejects(
      retryUnwritten(() => new Promise<void>(() => undefined), {
        deadline: Date.now() + 60_000,
        intervalMs: 1,
        signal: ac2.signal,
      }),
      (e: unknown) => e instanceof Error && e.name === "AbortError",
    );
    assert.ok(Date.now() - started < 5000);
  });
});

describe("abortable", () => {
  it("passes the work's result without a signal or when not aborted", async () => {
    assert.equal(await abortable(Promise.resolve(1), undefined), 1);
    assert.equal(await abortable(Promise.resolve(2), new AbortController().signal), 2);
  });
});
