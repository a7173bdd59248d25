/**
 * The leader's own commit index on appends and heartbeats (Message.leaderCommit), apart from the
 * clamped `commit` a follower advances by, and what a follower keeps of it
 * (RawNode.leaderCommitHeard), for reads with a staleness bound in the runtime.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { Message } from "../../src/raft/types.js";
import { Network, ids } from "./network.js";
import { Solo, msg, ofType, storageWithLog } from "./helpers.js";

const PLAIN = { preVote: false, checkQuorum: false } as const;

/** A follower "2" of term 2 holding entries 1..5 (terms 1,1,2,2,2), commit `commit`. */
function follower(commit: number): Solo {
  return new Solo("2", storageWithLog(["1", "2", "3"], [1, 1, 2, 2, 2], { term: 2, commit }));
}

const hb = (fields: Partial<Message>): Message =>
  msg({ type: "heartbeat", from: "1", to: "2", term: 2, ...fields });
const app = (fields: Partial<Message>): Message =>
  msg({ type: "app", from: "1", to: "2", term: 2, index: 5, logTerm: 2, ...fields });

describe("the leader sends its real commit index apart from the clamped one", () => {
  it("a heartbeat to a follower behind carries commit = match and leaderCommit = committed", () => {
    const net = new Network(ids(3), PLAIN);
    net.campaign("1");
    net.isolate("3");
    for (let i = 0; i < 4; i++) net.propose("1", `e${i}`);
    const committed = net.node("1").basicStatus().commit;
    const match3 = net.node("1").status().progress!.get("3")!.match;
    assert.ok(match3 < committed, "3 is behind");
    net.reconnect("3");
    net.node("1").tick(); // heartbeatTick is 1
    const rd = net.node("1").ready();
    const [toTwo] = ofType(rd.messages, "heartbeat", "2");
    const [toThree] = ofType(rd.messages, "heartbeat", "3");
    assert.equal(toTwo?.commit, committed);
    assert.equal(toTwo?.leaderCommit, committed);
    assert.equal(toThree?.commit, match3, "clamped: 3 must not commit what it may not hold");
    assert.equal(toThree?.leaderCommit, committed, "unclamped: how far the leader is");
    net.node("1").advance(rd);
  });

  it("an append carries leaderCommit = committed", () => {
    const net = new Network(ids(3), PLAIN);
    net.campaign("1");
    net.node("1").propose(new TextEncoder().encode("x"));
    const rd = net.node("1").ready();
    const apps = ofType(rd.messages, "app");
    assert.equal(apps.length, 2);
    for (const m of apps) assert.equal(m.leaderCommit, net.node("1").basicStatus().commit);
    net.node("1").advance(rd);
  });

  it("a follower held behind (isolated, then only heartbeats) knows how far behind it is", () => {
    // Before: the follower saw only the clamped commit (its own match) and looked caught up.
    const net = new Network(ids(3), PLAIN);
    net.campaign("1");
    net.isolate("3");
    for (let i = 0; i < 6; i++) net.propose("1", `e${i}`);
    const committed = net.node("1").basicStatus().commit;
    net.reconnect("3");
    // Only heartbeats reach 3 (the appends that would catch it up are lost): it stays behind.
    net.filter = (m) => (m.to === "3" && m.type !== "heartbeat" ? undefined : m);
    net.tickNode("1", 3);
    assert.ok(net.node("1").status().progress!.get("3")!.match < committed);
    assert.ok(ofType(net.delivered, "heartbeat", "3").length > 0);
    const heard = net.node("3").leaderCommitHeard();
    assert.equal(heard?.leaderCommit, committed);
    assert.ok(net.node("3").basicStatus().commit < committed, "its own commit did not move");
  });
});

describe("a follower keeps the latest leader commit of its current term", () => {
  for (const c of [
    {
      name: "a heartbeat: leaderCommit noted, commit advanced only by the clamped commit",
      steps: [hb({ commit: 2, leaderCommit: 40 })],
      wantHeard: 40,
      wantCommit: 2,
    },
    {
      name: "a heartbeat of a peer predating the field (no leaderCommit): unknown",
      steps: [hb({ commit: 3 })],
      wantHeard: undefined,
      wantCommit: 3,
    },
    {
      name: "an append of a peer predating the field: its commit is the leader's, unclamped",
      steps: [app({ commit: 4 })],
      wantHeard: 4,
      wantCommit: 4,
    },
    {
      name: "an append with leaderCommit: that one",
      steps: [app({ commit: 4, leaderCommit: 4 })],
      wantHeard: 4,
      wantCommit: 4,
    },
    {
      name: "a leaderCommit below this node's commit (buggy or hostile) is raised to it",
      steps: [hb({ commit: 3, leaderCommit: 1 })],
      wantHeard: 3,
      wantCommit: 3,
    },
    {
      name: "a lower one later in the term does not lower it",
      steps: [hb({ commit: 1, leaderCommit: 30 }), hb({ commit: 1, leaderCommit: 20 })],
      wantHeard: 30,
      wantCommit: 1,
    },
    {
      name: "a message of an older term (a deposed leader) is ignored",
      steps: [hb({ term: 1, commit: 1, leaderCommit: 99 })],
      wantHeard: undefined,
      wantCommit: 0,
    },
  ]) {
    it(c.name, () => {
      const f = follower(0);
      f.stepAll(...c.steps);
      assert.equal(f.node.leaderCommitHeard()?.leaderCommit, c.wantHeard);
      assert.equal(f.node.basicStatus().commit, c.wantCommit);
      if (c.wantHeard !== undefined) {
        assert.equal(f.node.leaderCommitHeard()?.term, 2);
        assert.equal(f.node.leaderCommitHeard()?.lead, "1");
      }
    });
  }

  it("every hearing counts, even with the same value (an idle leader's heartbeats)", () => {
    const f = follower(5);
    f.stepAll(hb({ commit: 5, leaderCommit: 5 }));
    const first = f.node.leaderCommitHeard()!.count;
    f.stepAll(hb({ commit: 5, leaderCommit: 5 }));
    assert.equal(f.node.leaderCommitHeard()!.count, first + 1);
  });

  it("a new term forgets the old leader's value; the count still grows", () => {
    const f = follower(0);
    f.stepAll(hb({ commit: 1, leaderCommit: 50 }));
    const before = f.node.leaderCommitHeard()!.count;
    f.stepAll(msg({ type: "heartbeat", from: "3", to: "2", term: 3, commit: 2 }));
    assert.equal(f.node.leaderCommitHeard(), undefined, "term 3's leader sent none");
    f.stepAll(msg({ type: "heartbeat", from: "3", to: "2", term: 3, commit: 2, leaderCommit: 7 }));
    const heard = f.node.leaderCommitHeard()!;
    assert.deepEqual([heard.term, heard.lead, heard.leaderCommit], [3, "3", 7]);
    assert.ok(heard.count > before);
  });

  it("a candidate that hears the new leader notes it too", () => {
    const f = follower(0);
    f.node.campaign();
    f.drain();
    const term = f.node.basicStatus().term;
    f.stepAll(hb({ term, commit: 1, leaderCommit: 9 }));
    assert.equal(f.node.basicStatus().state, "follower");
    assert.equal(f.node.leaderCommitHeard()?.leaderCommit, 9);
  });

  it("the leader itself keeps none", () => {
    const s = Solo.of("1", ["1"]);
    s.elect();
    s.node.propose(new TextEncoder().encode("x"));
    s.drain();
    assert.equal(s.node.leaderCommitHeard(), undefined);
  });
});
