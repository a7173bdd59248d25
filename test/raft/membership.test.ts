/**
 * Membership changes (Raft §6, thesis chapter 4): one server at a time, learners, joint
 * consensus with automatic or explicit leave, at most one pending change, removing the leader.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { describeConfState } from "../../src/raft/describe.js";
import { RaftError } from "../../src/raft/raft.js";
import { MemoryStorage } from "../../src/raft/storage.js";
import type { ConfChange } from "../../src/raft/types.js";
import { Network, ids } from "./network.js";
import { Solo, ackOf, confChange, enc, msg, ofType, storageWithLog } from "./helpers.js";

const PLAIN = { preVote: false, checkQuorum: false } as const;

function proposeCC(net: Network, id: string, cc: ConfChange): void {
  net.node(id).proposeConfChange(cc);
  net.settle();
}

function configOf(net: Network, id: string): string {
  return describeConfState(net.node(id).status().config);
}

function refusal(fn: () => void): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof RaftError) return e.code;
    throw e;
  }
  return "accepted";
}

/** A 3-voter network led by 1 with one committed proposal. */
function cluster(n = 3): Network {
  const net = new Network(ids(n), PLAIN);
  net.campaign("1");
  net.propose("1", "before");
  return net;
}

describe("§6 membership: one server at a time", () => {
  it("§6: an added voter catches up on the whole log and then counts toward the quorum", () => {
    const net = cluster();
    // A new, empty node that knows the current members (not itself).
    net.addNode("4", ids(3), PLAIN);
    proposeCC(net, "1", confChange("v4"));
    for (const id of ids(4)) assert.equal(configOf(net, id), "voters=(1 2 3 4)", id);
    assert.deepEqual(net.appliedData("4"), ["before"]);
    // With four voters a quorum is three: 1 and 2 alone cannot commit.
    net.isolate("3");
    net.isolate("4");
    net.propose("1", "needs-three");
    assert.deepEqual(net.appliedData("1"), ["before"]);
    net.reconnect("4");
    net.tick(2);
    assert.deepEqual(net.appliedData("1"), ["before", "needs-three"]);
  });

  it("§6: a removed voter no longer counts: entries commit without it", () => {
    const net = cluster();
    proposeCC(net, "1", confChange("r3"));
    assert.equal(configOf(net, "1"), "voters=(1 2)");
    net.isolate("3");
    net.propose("1", "after");
    assert.deepEqual(net.appliedData("2"), ["before", "after"]);
  });

  it("§6: when the configuration shrinks, entries a new majority holds commit at once", () => {
    const s = Solo.of("1", ids(4), PLAIN);
    const first = s.elect();
    s.stepAll(...ofType(first, "app").map(ackOf));
    s.node.propose(enc("x"));
    const app2 = ofType(s.drain().msgs, "app", "2")[0]!;
    s.stepAll(ackOf(app2));
    assert.equal(s.raft.raftLog.committed, 1, "2 of 4 voters hold x");
    // A removal of 4 (committed earlier) is applied now: 2 of the remaining 3 hold x.
    s.node.applyConfChange(confChange("r4"));
    assert.equal(s.raft.raftLog.committed, 2);
    assert.ok(
      ofType(s.drain().msgs, "app").every((m) => m.commit === 2),
      "the new commit index is broadcast",
    );
  });

  it("§6: a leader removed from the configuration steps down and the rest elect a new one", () => {
    const net = cluster();
    proposeCC(net, "1", confChange("r1"));
    assert.equal(net.node("1").raft.state, "follower");
    net.tick(40);
    const l = net.leader();
    assert.ok(l === "2" || l === "3", `leader ${String(l)}`);
    net.propose(l, "after");
    assert.deepEqual(net.appliedData(l), ["before", "after"]);
    assert.equal(net.node("1").raft.state, "follower", "a removed node never campaigns");
  });

  it("§6: a new leader may not propose a change before it has applied its log", () => {
    const s = new Solo("1", storageWithLog(ids(3), [1, 1], { term: 1 }), PLAIN);
    const first = s.elect();
    assert.equal(
      refusal(() => s.node.proposeConfChange(confChange("v4"))),
      "conf-change-refused",
      "entries up to the election may hold an unapplied change",
    );
    s.stepAll(...ofType(first, "app").map(ackOf));
    assert.equal(s.raft.raftLog.applied, 3);
    assert.equal(
      refusal(() => s.node.proposeConfChange(confChange("v4"))),
      "accepted",
    );
  });

  it("§6: at most one change is pending: a second proposeConfChange throws conf-change-refused", () => {
    const net = cluster();
    const leader = net.node("1");
    leader.proposeConfChange(confChange("v4"));
    assert.throws(
      () => leader.proposeConfChange(confChange("v5")),
      (e: unknown) => e instanceof RaftError && e.code === "conf-change-refused",
    );
    net.addNode("4", ids(3), PLAIN);
    net.settle();
    assert.equal(
      refusal(() => leader.proposeConfChange(confChange("v5"))),
      "accepted",
      "once the first is applied the next may follow",
    );
  });
  it("§6: a change refused for the uncommitted-size limit does not count as pending", () => {
    const s = Solo.of("1", ids(3), { ...PLAIN, maxUncommittedEntriesSize: 40 });
    const first = s.elect();
    s.stepAll(...ofType(first, "app").map(ackOf));
    s.node.propose(new Uint8Array(30));
    assert.equal(
      refusal(() => s.node.proposeConfChange(confChange("v4"))),
      "proposal-dropped",
      "30 bytes uncommitted plus the encoded change exceed 40",
    );
    s.stepAll(...ofType(s.drain().msgs, "app").map(ackOf));
    assert.equal(s.raft.raftLog.applied, s.raft.raftLog.lastIndex(), "everything applied");
    assert.equal(
      refusal(() => s.node.proposeConfChange(confChange("v4"))),
      "accepted",
      "no change is pending: the refused one was never appended",
    );
  });
});

describe("learners (thesis §4.2.1)", () => {
  it("§4.2.1: a learner receives the log but never counts toward commit", () => {
    const net = new Network(["1", "2"], PLAIN, ["3"]);
    net.campaign("1");
    net.propose("1", "a");
    assert.deepEqual(net.appliedData("3"), ["a"], "the learner applies committed entries");
    net.isolate("2");
    net.propose("1", "b");
    const li = net.node("1").raft.raftLog.lastIndex();
    assert.equal(net.node("3").raft.raftLog.lastIndex(), li, "the learner stores b");
    assert.equal(
      net.node("1").raft.raftLog.committed,
      li - 1,
      "1 voter of 2 plus a learner is no quorum",
    );
  });

  it("§4.2.1: a learner's vote does not count", () => {
    const s = new Solo("1", storageWithLog(ids(3), [], {}, ["4"]), PLAIN);
    s.node.campaign();
    const out = s.drain().msgs;
    assert.deepEqual(
      ofType(out, "vote").map((m) => m.to),
      ["2", "3"],
      "votes are requested from voters only",
    );
    s.stepAll(msg({ type: "vote-resp", from: "4", to: "1", term: 1 }));
    assert.equal(s.raft.state, "candidate");
    s.stepAll(msg({ type: "vote-resp", from: "2", to: "1", term: 1 }));
    assert.equal(s.raft.state, "leader");
  });

  it("§4.2.1: a learner is added, catches up, and is promoted to voter", () => {
    const net = cluster();
    net.addNode("4", ids(3), PLAIN);
    proposeCC(net, "1", confChange("l4"));
    assert.equal(configOf(net, "4"), "voters=(1 2 3) learners=(4)");
    assert.equal(net.node("4").raft.isLearner, true);
    assert.deepEqual(net.appliedData("4"), ["before"]);
    proposeCC(net, "1", confChange("v4"));
    assert.equal(configOf(net, "4"), "voters=(1 2 3 4)");
    assert.equal(net.node("4").raft.isLearner, false);
  });

  it("§4.2.1: a voter can be demoted to learner and stops counting", () => {
    const net = cluster();
    proposeCC(net, "1", confChange("l3"));
    assert.equal(configOf(net, "1"), "voters=(1 2) learners=(3)");
    net.isolate("2");
    net.propose("1", "x");
    assert.deepEqual(net.appliedData("1"), ["before"], "the learner 3 cannot help commit");
  });
});

describe("thesis §4.3 joint consensus", () => {
  it("§4.3: several changes at once enter a joint configuration and leave it automatically", () => {
    const net = cluster();
    net.addNode("4", ids(3), PLAIN);
    proposeCC(net, "1", confChange("v4 r3"));
    const seen = (id: string) => (net.confStates.get(id) ?? []).map(describeConfState);
    for (const id of ["1", "2", "4"]) {
      assert.deepEqual(
        seen(id),
        ["voters=(1 2 4)&&(1 2 3) autoleave", "voters=(1 2 4)"],
        `node ${id}`,
      );
    }
    net.isolate("3");
    net.propose("1", "after");
    assert.deepEqual(net.appliedData("4"), ["before", "after"]);
  });

  it("§4.3: in a joint configuration an entry commits only with majorities of both halves", () => {
    const net = cluster();
    net.addNode("4", ids(3), PLAIN);
    proposeCC(net, "1", confChange("v4 r3", "explicit"));
    assert.equal(configOf(net, "1"), "voters=(1 2 4)&&(1 2 3)", "explicit: stays joint");
    const cases: { down: string[]; commits: boolean }[] = [
      { down: ["3", "4"], commits: true }, // 1 2 | 1 2
      { down: ["2"], commits: true }, // 1 4 | 1 3
      { down: ["2", "3"], commits: false }, // 1 4 | 1: no old majority
      { down: ["2", "4"], commits: false }, // 1 | 1 3: no new majority
    ];
    for (const c of cases) {
      for (const id of c.down) net.isolate(id);
      const before = net.node("1").raft.raftLog.committed;
      net.propose("1", `down ${c.down.join(",")}`);
      const after = net.node("1").raft.raftLog.committed;
      assert.equal(after > before, c.commits, `down: ${c.down.join(",")}`);
      net.heal();
      net.tick(3); // let everything commit before the next case
    }
  });

  it("§4.3: an explicit joint configuration refuses other changes until it is left", () => {
    const net = cluster();
    net.addNode("4", ids(3), PLAIN);
    proposeCC(net, "1", confChange("v4 r3", "explicit"));
    assert.equal(
      refusal(() => net.node("1").proposeConfChange(confChange("v5"))),
      "conf-change-refused",
    );
    proposeCC(net, "1", confChange("")); // leave
    assert.equal(configOf(net, "1"), "voters=(1 2 4)");
    assert.equal(
      refusal(() => net.node("1").proposeConfChange(confChange(""))),
      "conf-change-refused",
      "leaving when not joint",
    );
  });

  it("§4.3: a new leader inherits an auto-leave joint configuration and leaves it", () => {
    const net = cluster();
    net.addNode("4", ids(3), PLAIN);
    // 1 enters the joint configuration but its leave entry never gets out: it crashes.
    net.filter = (m) => (m.from === "1" && m.entries.some((e) => e.index === 4) ? undefined : m);
    proposeCC(net, "1", confChange("v4 r3"));
    assert.equal(configOf(net, "2"), "voters=(1 2 4)&&(1 2 3) autoleave");
    net.filter = undefined;
    net.isolate("1"); // still leader in its own view: no check-quorum here
    net.tick(40);
    const l = ["2", "3", "4"].find((id) => net.node(id).raft.state === "leader");
    assert.ok(l !== undefined, "a new leader among the others");
    assert.equal(configOf(net, l), "voters=(1 2 4)", "the new leader proposed the leave");
    assert.equal(configOf(net, "4"), "voters=(1 2 4)");
  });

  it("§4.3: leaving a joint configuration automatically is never refused by the uncommitted-size limit", () => {
    // Node 1 is elected in an auto-leave joint configuration, with a small uncommitted limit.
    const st = MemoryStorage.withConfState({
      voters: ["1", "2", "3"],
      votersOutgoing: ["1", "2"],
      learners: [],
      learnersNext: [],
      autoLeave: true,
    });
    const s = new Solo("1", st, { ...PLAIN, maxUncommittedEntriesSize: 50 });
    const first = s.elect();
    s.node.propose(new Uint8Array(100)); // accepted: nothing was uncommitted
    s.drain();
    // The no-op commits alone; applying it triggers the automatic leave while the 100 bytes
    // are still uncommitted.
    s.stepAll(ackOf(ofType(first, "app", "2")[0]!));
    const last = s.raft.raftLog.allEntries().at(-1)!;
    assert.equal(last.type, "conf-change", "the leave entry was appended");
    assert.equal(describeConfState(s.node.status().config), "voters=(1 2 3)&&(1 2) autoleave");
  });

  it("§4.3: a restarted node rebuilds its configuration by re-applying conf changes", () => {
    const net = cluster();
    net.addNode("4", ids(3), PLAIN);
    proposeCC(net, "1", confChange("v4 r3"));
    const n2 = net.restart("2");
    assert.equal(describeConfState(n2.status().config), "voters=(1 2 3)", "the storage's");
    net.tick(2);
    assert.equal(configOf(net, "2"), "voters=(1 2 4)");
  });

  it("§4.3: a leader removed by a joint change leads through the joint phase, then steps down", () => {
    const net = cluster();
    net.addNode("4", ids(3), PLAIN);
    proposeCC(net, "1", confChange("r1 v4"));
    const states = (net.confStates.get("1") ?? []).map(describeConfState);
    assert.deepEqual(states, ["voters=(2 3 4)&&(1 2 3) autoleave", "voters=(2 3 4)"]);
    assert.equal(net.node("1").raft.state, "follower");
    net.tick(40);
    const l = net.leader();
    assert.ok(l !== undefined && l !== "1");
    net.propose(l, "after");
    assert.deepEqual(net.appliedData("4"), ["before", "after"]);
  });
});
