/**
 * ReadRounds (src/node/read-rounds.ts): linearizable reads batched into ReadIndex rounds (thesis
 * §6.4). Concurrent reads share a round; a read that arrives after a round was issued is never
 * served by it.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { NexusError, isNexusError } from "../../src/errors/index.js";
import { requestKey } from "../../src/node/entry-payload.js";
import { ClientRequests } from "../../src/node/client-requests.js";
import { ReadRounds } from "../../src/node/read-rounds.js";
import type { RawNode } from "../../src/raft/raw-node.js";
import { createMessage } from "../../src/raft/types.js";

const timeout = (): Error => new NexusError("TIMEOUT", "not confirmed");
const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

/** A fake core: records each read-index context it is asked for. */
function fakeRaw(lead = "00000000000000a1") {
  const issued: string[] = [];
  const raw = {
    lead,
    readIndex(ctx: Uint8Array): void {
      issued.push(requestKey(ctx));
    },
    basicStatus() {
      return { lead: raw.lead } as ReturnType<RawNode["basicStatus"]>;
    },
  };
  return { raw, issued };
}

function rounds(raw: ReturnType<typeof fakeRaw>["raw"], retryMs = 60_000) {
  return new ReadRounds({ raw, schedule: () => undefined, retryMs });
}

describe("ReadRounds", () => {
  it("64 concurrent reads cost two read-index requests, and every read is confirmed", async () => {
    const { raw, issued } = fakeRaw();
    const r = rounds(raw);
    const got: number[] = [];
    const all = Array.from({ length: 64 }, () => r.wait(60_000, timeout).then((i) => got.push(i)));
    assert.equal(issued.length, 1, "the first read issues a round; the others queue behind it");
    r.confirmed(issued[0]!, 10);
    assert.equal(issued.length, 2, "the queued reads share the next round");
    r.confirmed(issued[1]!, 11);
    await Promise.all(all);
    assert.equal(issued.length, 2);
    assert.deepEqual(got.sort(), [10, ...Array<number>(63).fill(11)]);
    assert.equal(r.size, 0);
  });

  it("a read arriving after a round was issued is not served by that round", async () => {
    const { raw, issued } = fakeRaw();
    const r = rounds(raw);
    const settled: string[] = [];
    const a = r.wait(60_000, timeout).then((i) => settled.push(`a@${i}`));
    const b = r.wait(60_000, timeout).then((i) => settled.push(`b@${i}`));
    r.confirmed(issued[0]!, 5);
    await tick();
    assert.deepEqual(settled, ["a@5"], "b arrived after round 1 was issued: it waits for round 2");
    assert.equal(issued.length, 2);
    r.confirmed(issued[1]!, 7);
    await Promise.all([a, b]);
    assert.deepEqual(settled, ["a@5", "b@7"]);
  });

  it("an answer to a round no longer in flight settles nothing", async () => {
    const { raw, issued } = fakeRaw();
    const r = rounds(raw, 20);
    const a = r.wait(60_000, timeout);
    await new Promise((res) => setTimeout(res, 60));
    assert.ok(issued.length >= 2, "an unanswered round is issued again with a new context");
    assert.equal(r.confirmed(issued[0]!, 3), false);
    assert.equal(r.confirmed(issued[issued.length - 1]!, 4), true);
    assert.equal(await a, 4);
  });

  it("a round whose request was dropped fails its reads with NO_LEADER; queued reads go on", async () => {
    const { raw, issued } = fakeRaw();
    const r = rounds(raw);
    const a = r.wait(60_000, timeout);
    const b = r.wait(60_000, timeout);
    r.failed(issued[0]!, new NexusError("NO_LEADER", "dropped"));
    await assert.rejects(a, (e: unknown) => isNexusError(e, "NO_LEADER"));
    assert.equal(issued.length, 2);
    r.confirmed(issued[1]!, 9);
    assert.equal(await b, 9);
  });

  it("with no leader known a read fails at once with NO_LEADER", async () => {
    const { raw, issued } = fakeRaw("");
    const r = rounds(raw);
    await assert.rejects(r.wait(60_000, timeout), (e: unknown) => isNexusError(e, "NO_LEADER"));
    assert.equal(issued.length, 0);
  });

  it("a read times out on its own; the round still serves the others", async () => {
    const { raw, issued } = fakeRaw();
    const r = rounds(raw);
    const short = r.wait(10, timeout);
    const long = r.wait(60_000, timeout);
    await assert.rejects(short, (e: unknown) => isNexusError(e, "TIMEOUT"));
    r.confirmed(issued[0]!, 2);
    assert.equal(issued.length, 2);
    r.confirmed(issued[1]!, 2);
    assert.equal(await long, 2);
  });

  it("rejectAll fails reads in flight and queued, and issues nothing more", async () => {
    const { raw, issued } = fakeRaw();
    const r = rounds(raw);
    const a = r.wait(60_000, timeout);
    const b = r.wait(60_000, timeout);
    r.rejectAll(() => new NexusError("NO_LEADER", "leader changed"));
    await assert.rejects(a, (e: unknown) => isNexusError(e, "NO_LEADER"));
    await assert.rejects(b, (e: unknown) => isNexusError(e, "NO_LEADER"));
    assert.equal(issued.length, 1);
    assert.equal(r.size, 0);
  });
});

describe("ClientRequests.readBarrier", () => {
  it("32 concurrent linearizable reads share the node's read-index rounds", async () => {
    const { raw, issued } = fakeRaw();
    let applied = 0;
    const requests = new ClientRequests(
      {
        raw: { ...raw, propose: () => undefined },
        replTimeoutMs: 60_000,
        heartbeatTickMs: 100,
        electionTick: 10,
        applier: { position: () => ({ index: applied, term: 1 }), storeError: () => undefined },
        schedule: () => undefined,
      },
      () => undefined,
    );
    let done = 0;
    const reads = Array.from({ length: 32 }, () => requests.readBarrier(60_000).then(() => done++));
    assert.equal(issued.length, 1);
    requests.readConfirmed(issued[0]!, 4);
    requests.readConfirmed(issued[1]!, 5);
    assert.equal(issued.length, 2);
    await tick();
    assert.equal(done, 0, "confirmed, but this node has not applied index 4 yet");
    applied = 5;
    requests.applied(5);
    await Promise.all(reads);
    assert.equal(done, 32);
    assert.equal(issued.length, 2);
  });

  for (const lease of [false, true]) {
    it(`a forwarded read-index the transport dropped fails its round at once as NO_LEADER (${lease ? "lease" : "linearizable"} round)`, async () => {
      const { raw } = fakeRaw();
      const contexts: Uint8Array[] = [];
      const requests = new ClientRequests(
        {
          raw: {
            ...raw,
            readIndex: (ctx: Uint8Array) => contexts.push(ctx),
            propose: () => undefined,
          },
          replTimeoutMs: 60_000,
          heartbeatTickMs: 100,
          electionTick: 10,
          applier: { position: () => ({ index: 0, term: 1 }), storeError: () => undefined },
          schedule: () => undefined,
        },
        () => undefined,
      );
      const read = requests.readBarrier(60_000, lease);
      assert.equal(contexts.length, 1);
      // The core forwards a read-index with its context in `context` (raft.ts, stepFollower).
      requests.dropped([
        createMessage({ type: "read-index", to: "00000000000000a1", context: contexts[0]! }),
      ]);
      const outcome = await Promise.race([
        read.then(
          () => "confirmed",
          (e: unknown) => (isNexusError(e, "NO_LEADER") ? "NO_LEADER" : String(e)),
        ),
        new Promise((r) => setTimeout(() => r("still waiting"), 500)),
      ]);
      assert.equal(outcome, "NO_LEADER");
    });
  }
});
