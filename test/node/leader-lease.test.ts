import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { LeaderLease, leaseDurationMs } from "../../src/node/leader-lease.js";
import type { Message } from "../../src/raft/types.js";
import { createMessage } from "../../src/raft/types.js";
import { until, walCluster } from "./helpers.js";

/** A clock the test moves by hand. */
function manualClock(start = 1000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => (t += ms) };
}

describe("leader lease on a monotonic clock (thesis §6.4.1)", () => {
  it("is valid only after a quorum confirmed a round, and lasts from the round's send time", () => {
    const clock = manualClock();
    const l = new LeaderLease({ durationMs: 900, now: clock.now });
    assert.equal(l.valid(3), false, "no round confirmed yet");
    l.renewalSent("r1", 3);
    assert.ok(l.owns("r1"));
    clock.advance(100); // the round trip
    assert.equal(l.confirmed("r1", 3, true), true);
    assert.equal(l.valid(3), true);
    assert.equal(l.remainingMs(3), 800, "measured from the send, not the confirmation");
    clock.advance(799);
    assert.equal(l.valid(3), true);
    clock.advance(1);
    assert.equal(l.valid(3), false, "expired 900 ms after the round was sent");
  });

  it("a confirmation that arrives after a long pause gives no lease (the round is too old)", () => {
    const clock = manualClock();
    const l = new LeaderLease({ durationMs: 900, now: clock.now });
    l.renewalSent("r1", 3);
    clock.advance(10_000); // SIGSTOP: the acknowledgements waited in the socket
    l.confirmed("r1", 3, true);
    assert.equal(l.valid(3), false);
  });

  it("belongs to one term, and only to a leader", () => {
    const clock = manualClock();
    const l = new LeaderLease({ durationMs: 900, now: clock.now });
    l.renewalSent("r1", 3);
    l.confirmed("r1", 4, true); // the node moved to term 4 meanwhile
    assert.equal(l.valid(3), false);
    assert.equal(l.valid(4), false);
    l.renewalSent("r2", 4);
    l.confirmed("r2", 4, false); // no longer leading
    assert.equal(l.valid(4), false);
    l.renewalSent("r3", 4);
    l.confirmed("r3", 4, true);
    assert.equal(l.valid(4), true);
    assert.equal(l.valid(5), false);
    assert.equal(l.confirmed("unknown", 4, true), false, "user reads are not renewal rounds");
  });

  it("a leadership transfer revokes it for the rest of the term", () => {
    const clock = manualClock();
    const l = new LeaderLease({ durationMs: 900, now: clock.now });
    l.renewalSent("r1", 3);
    l.confirmed("r1", 3, true);
    assert.equal(l.valid(3), true);
    l.revoke(3);
    assert.equal(l.valid(3), false);
    l.renewalSent("r2", 3);
    l.confirmed("r2", 3, true);
    assert.equal(l.valid(3), false, "rounds of the revoked term do not bring it back");
    l.renewalSent("r3", 4);
    l.confirmed("r3", 4, true);
    assert.equal(l.valid(4), true, "a later term has its own lease");
  });

  for (const c of [
    { name: "defaults: 100 ms ticks, 10 ticks", tick: 100, election: 10, margin: 0.1, want: 810 },
    { name: "no margin", tick: 100, election: 10, margin: 0, want: 900 },
    { name: "WAN: 500 ms ticks, 10 ticks", tick: 500, election: 10, margin: 0.1, want: 4050 },
  ]) {
    it(`duration: ${c.name}`, () =>
      assert.equal(leaseDurationMs(c.tick, c.election, c.margin), c.want));
  }
});

describe("lease reads in the runtime", () => {
  it("a leader whose monotonic clock jumped past its lease stops serving from it at once, while its tick count has not moved", async () => {
    const clocks = new Map<string, ReturnType<typeof manualClock>>();
    const real = (): number => performance.now();
    const c = await walCluster({
      leaseBasedReads: true,
      clockFor: (id) => {
        // Each node's clock follows real time plus an offset the test can add to.
        let offset = 0;
        const clock = {
          now: () => real() + offset,
          advance: (ms: number) => (offset += ms),
        };
        clocks.set(id, clock);
        return clock.now;
      },
    });
    try {
      await until(() => c.leader() !== undefined, 10_000, "a leader");
      const l = c.leader()!;
      await l.propose(new TextEncoder().encode("set x 1"));
      await until(() => l.leaseReadIndex() !== undefined, 5000, "a lease");
      const id = c.ids.find((i) => c.nodes.get(i) === l)!;
      // Cut the leader off so no renewal can be confirmed, then let its clock jump 5 s (a pause:
      // the process did not tick meanwhile).
      c.net.down.add(id);
      clocks.get(id)!.advance(5000);
      assert.equal(l.leaseReadIndex(), undefined, "the lease expired by the monotonic clock");
      assert.equal(l.status().softState.raftState, "leader", "the core still believes it leads");
    } finally {
      await c.stopAll();
    }
  });

  it("a transfer of leadership voids the lease at once", async () => {
    const c = await walCluster({ leaseBasedReads: true });
    try {
      await until(() => c.leader() !== undefined, 10_000, "a leader");
      const l = c.leader()!;
      await l.propose(new TextEncoder().encode("set x 1"));
      await until(() => l.leaseReadIndex() !== undefined, 5000, "a lease");
      const to = c.ids.find((i) => c.nodes.get(i) !== l)!;
      c.net.down.add(to); // the transfer cannot finish: the leader stays leader meanwhile
      l.transferLeadership(to);
      assert.equal(l.leaseReadIndex(), undefined);
      assert.equal(l.status().softState.raftState, "leader");
    } finally {
      await c.stopAll();
    }
  });

  it("a node ignores vote requests for an election timeout after it starts", async () => {
    const clock = manualClock();
    const c = await walCluster({ clockFor: () => clock.now });
    try {
      // Nobody can win while every clock holds the votes back: stop the three and probe one.
      await c.stopAll();
      const sent: Message[] = [];
      c.net.register("x", (msgs) => sent.push(...msgs));
      const b = await c.open("b");
      const vote = (term: number): Message =>
        createMessage({ type: "vote", from: "x", to: "b", term, logTerm: 99, index: 99 });
      b.step([vote(50)]);
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(sent.filter((m) => m.type === "vote-resp").length, 0, "held back");
      clock.advance(100); // 10 ticks of 10 ms
      b.step([vote(51)]);
      await until(() => sent.some((m) => m.type === "vote-resp"), 5000, "a vote response");
    } finally {
      await c.stopAll();
    }
  });
});

describe("lease reads on a follower (issue 19)", () => {
  /** A cluster whose every sent message is recorded, and a follower of its leader. */
  async function recorded() {
    const sent: Message[] = [];
    const c = await walCluster({
      leaseBasedReads: true,
      transportFor: (id, net) => {
        const ep = net.endpoint(id);
        return {
          ...ep,
          send: (msgs) => {
            sent.push(...msgs);
            ep.send(msgs);
          },
        };
      },
    });
    await until(() => c.leader() !== undefined, 10_000, "a leader");
    const l = c.leader()!;
    await l.propose(new TextEncoder().encode("set x 1"));
    await until(() => l.leaseReadIndex() !== undefined, 5000, "a lease");
    const lid = c.ids.find((i) => c.nodes.get(i) === l)!;
    const fid = c.ids.find((i) => i !== lid)!;
    return { c, sent, lid, fid, follower: c.nodes.get(fid)! };
  }
  const same = (a: Uint8Array, b: Uint8Array): boolean =>
    a.byteLength === b.byteLength && a.every((x, i) => x === b[i]);

  it("a leader holding its lease answers a follower's lease round at once, with no heartbeat round", async () => {
    const { c, sent, lid, fid, follower } = await recorded();
    try {
      sent.length = 0;
      await follower.readBarrier(3000, true);
      const req = sent.find((m) => m.type === "read-index" && m.from === fid && m.to === lid);
      assert.ok(req !== undefined, "the follower asked the leader");
      const resp = sent.find(
        (m) => m.type === "read-index-resp" && m.to === fid && same(m.context, req.context),
      );
      assert.ok(resp !== undefined, "the leader answered");
      assert.ok(resp.index >= 1);
      const rounds = sent.filter((m) => m.type === "heartbeat" && same(m.context, req.context));
      assert.equal(rounds.length, 0, "no heartbeat round for a lease round");
    } finally {
      await c.stopAll();
    }
  });

  it("a follower's linearizable round still takes a heartbeat round at a leader with a lease", async () => {
    const { c, sent, lid, fid, follower } = await recorded();
    try {
      sent.length = 0;
      await follower.readBarrier(3000);
      const req = sent.find((m) => m.type === "read-index" && m.from === fid && m.to === lid);
      assert.ok(req !== undefined, "the follower asked the leader");
      const rounds = sent.filter((m) => m.type === "heartbeat" && same(m.context, req.context));
      assert.ok(rounds.length > 0, "a heartbeat round confirmed the linearizable read");
    } finally {
      await c.stopAll();
    }
  });
});
