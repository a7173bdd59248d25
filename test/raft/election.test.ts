/**
 * Leader election (Raft §5.1, §5.2, §5.4.1), pre-vote (thesis §9.6) and check-quorum
 * (thesis §6.2, §4.2.3).
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { MemoryStorage } from "../../src/raft/storage.js";
import { createSeededRandom } from "../../src/raft/random.js";
import { Network, ids } from "./network.js";
import { Solo, confState, msg, ofType, storageWithLog } from "./helpers.js";

const NO_PREVOTE = { preVote: false, checkQuorum: false } as const;

/** Ticks the network one tick at a time and fails if two nodes ever lead in the same term. */
function tickCheckingElectionSafety(net: Network, n: number): void {
  const leaderOfTerm = new Map<number, string>();
  for (let i = 0; i < n; i++) {
    net.tick();
    for (const [id, node] of net.nodes) {
      if (node.raft.state !== "leader") continue;
      const prev = leaderOfTerm.get(node.raft.term);
      assert.ok(
        prev === undefined || prev === id,
        `two leaders in term ${node.raft.term}: ${prev} and ${id}`,
      );
      leaderOfTerm.set(node.raft.term, id);
    }
  }
}

describe("§5.2 leader election", () => {
  it("§5.2: a follower that hears nothing for an election timeout becomes candidate", () => {
    const s = Solo.of("1", ids(3), NO_PREVOTE);
    const timeout = s.raft.randomizedElectionTimeout;
    assert.equal(s.tick(timeout - 1).length, 0, "nothing happens before the timeout");
    assert.equal(s.raft.state, "follower");
    const out = s.tick();
    assert.equal(s.raft.state, "candidate");
    assert.equal(s.raft.term, 1, "a candidate increments its term");
    assert.equal(s.raft.vote, "1", "a candidate votes for itself");
    assert.deepEqual(
      ofType(out, "vote").map((m) => `${m.to} term=${m.term}`),
      ["2 term=1", "3 term=1"],
      "it requests votes from every other voter",
    );
  });

  it("§5.2: election timeouts are randomized in [electionTick, 2 * electionTick)", () => {
    const seen = new Set<number>();
    for (let seed = 0; seed < 200; seed++) {
      const s = Solo.of("1", ids(3), { ...NO_PREVOTE, seed });
      const t = s.raft.randomizedElectionTimeout;
      assert.ok(t >= 10 && t < 20, `timeout ${t} out of range`);
      seen.add(t);
      // Every role change draws again.
      s.raft.becomeFollower(s.raft.term + 1, "");
      const t2 = s.raft.randomizedElectionTimeout;
      assert.ok(t2 >= 10 && t2 < 20, `timeout ${t2} out of range`);
      seen.add(t2);
    }
    assert.ok(seen.size >= 8, `only ${seen.size} distinct timeouts: not randomized`);
  });

  it("§5.2: the same seed gives the same election timeouts (deterministic core)", () => {
    const draws = (seed: number): number[] => {
      const r = createSeededRandom(seed);
      return Array.from({ length: 20 }, () => r(10));
    };
    assert.deepEqual(draws(42), draws(42));
    assert.notDeepEqual(draws(42), draws(43));
  });

  it("§5.2: a candidate that receives votes from a majority becomes leader", () => {
    const s = Solo.of("1", ids(5), NO_PREVOTE);
    s.node.campaign();
    s.drain();
    s.stepAll(msg({ type: "vote-resp", from: "2", to: "1", term: 1 }));
    assert.equal(s.raft.state, "candidate", "2 of 5 votes is not a majority");
    s.stepAll(msg({ type: "vote-resp", from: "3", to: "1", term: 1 }));
    assert.equal(s.raft.state, "leader");
    assert.equal(s.raft.lead, "1");
  });

  it("§5.2: a candidate whose vote requests are rejected by a majority steps down", () => {
    const s = Solo.of("1", ids(3), NO_PREVOTE);
    s.node.campaign();
    s.drain();
    s.stepAll(msg({ type: "vote-resp", from: "2", to: "1", term: 1, reject: true }));
    assert.equal(s.raft.state, "candidate");
    s.stepAll(msg({ type: "vote-resp", from: "3", to: "1", term: 1, reject: true }));
    assert.equal(s.raft.state, "follower");
    assert.equal(s.raft.term, 1);
  });

  it("§5.2: a candidate that hears from a leader of its term becomes its follower", () => {
    const s = Solo.of("1", ids(3), NO_PREVOTE);
    s.node.campaign();
    s.drain();
    s.stepAll(msg({ type: "heartbeat", from: "2", to: "1", term: 1 }));
    assert.equal(s.raft.state, "follower");
    assert.equal(s.raft.lead, "2");
  });

  it("§5.2: each node votes for at most one candidate in a term, first come first served", () => {
    const s = Solo.of("1", ids(3), NO_PREVOTE);
    const vote = (from: string) => msg({ type: "vote", from, to: "1", term: 1 });
    const r1 = ofType(s.stepAll(vote("2")).msgs, "vote-resp");
    assert.deepEqual(
      r1.map((m) => [m.to, m.reject]),
      [["2", false]],
    );
    const r2 = ofType(s.stepAll(vote("3")).msgs, "vote-resp");
    assert.deepEqual(
      r2.map((m) => [m.to, m.reject]),
      [["3", true]],
      "already voted for 2",
    );
    const r3 = ofType(s.stepAll(vote("2")).msgs, "vote-resp");
    assert.deepEqual(
      r3.map((m) => [m.to, m.reject]),
      [["2", false]],
      "a repeated request from the same candidate is granted again",
    );
  });

  it("§5.2: a vote is in the Ready's hardState before the vote response goes out", () => {
    const s = Solo.of("1", ids(3), NO_PREVOTE);
    s.node.step(msg({ type: "vote", from: "2", to: "1", term: 1 }));
    const rd = s.node.ready();
    assert.deepEqual(rd.hardState, { term: 1, vote: "2", commit: 0 });
    assert.equal(rd.mustSync, true);
    assert.deepEqual(ofType(rd.messages, "vote-resp"), [], "never sent before persistence");
    assert.deepEqual(
      ofType(rd.persistedMessages, "vote-resp").map((m) => [m.to, m.term, m.reject]),
      [["2", 1, false]],
    );
    s.handle(rd);
  });

  it("§5.2: a vote survives a crash and restart (it is part of HardState)", () => {
    const net = new Network(ids(3), NO_PREVOTE);
    net.isolate("1");
    net.node("2").campaign();
    net.settle();
    assert.equal(net.node("3").raft.vote, "2");
    // 3 crashes and restarts: it must not vote for 1 in the same term.
    const n3 = net.restart("3");
    assert.equal(n3.raft.term, 1);
    assert.equal(n3.raft.vote, "2");
    n3.step(msg({ type: "vote", from: "1", to: "3", term: 1, index: 5, logTerm: 1 }));
    const rd = n3.ready();
    assert.deepEqual(
      ofType(rd.persistedMessages, "vote-resp").map((m) => m.reject),
      [true],
    );
  });

  it("§5.1: a node that sees a higher term adopts it and becomes follower", () => {
    const s = Solo.of("1", ids(3), NO_PREVOTE);
    s.elect();
    assert.equal(s.raft.state, "leader");
    s.stepAll(msg({ type: "app-resp", from: "2", to: "1", term: 5, index: 0 }));
    assert.equal(s.raft.state, "follower");
    assert.equal(s.raft.term, 5);
    assert.equal(s.raft.vote, "", "a new term has no vote yet");
  });

  it("§5.1: a vote request with a stale term is refused without changing anything", () => {
    const s = new Solo("1", storageWithLog(ids(3), [1, 2], { term: 3 }), NO_PREVOTE);
    const out = s.stepAll(msg({ type: "vote", from: "2", to: "1", term: 2, index: 9, logTerm: 2 }));
    assert.equal(s.raft.term, 3);
    assert.equal(s.raft.vote, "");
    assert.deepEqual(ofType(out.msgs, "vote-resp"), [], "a stale request is ignored");
  });

  describe("§5.4.1: election restriction: a voter denies a candidate whose log is behind", () => {
    // The voter's log: 1@1 2@2 3@2 (last term 2, last index 3).
    const cases: { name: string; index: number; logTerm: number; granted: boolean }[] = [
      { name: "higher last term, shorter log: granted", index: 1, logTerm: 3, granted: true },
      { name: "same last term, same length: granted", index: 3, logTerm: 2, granted: true },
      { name: "same last term, longer: granted", index: 5, logTerm: 2, granted: true },
      { name: "same last term, shorter: denied", index: 2, logTerm: 2, granted: false },
      { name: "lower last term, longer: denied", index: 9, logTerm: 1, granted: false },
    ];
    for (const c of cases) {
      it(c.name, () => {
        const s = new Solo("1", storageWithLog(ids(3), [1, 2, 2]), NO_PREVOTE);
        const out = s.stepAll(
          msg({ type: "vote", from: "2", to: "1", term: 3, index: c.index, logTerm: c.logTerm }),
        );
        const resp = ofType(out.msgs, "vote-resp");
        assert.equal(resp.length, 1);
        assert.equal(resp[0]!.reject, !c.granted);
        assert.equal(s.raft.term, 3, "the term is adopted either way");
      });
    }
  });

  it("§5.2: split votes resolve: the randomized timeouts elect a single leader", () => {
    const net = new Network(ids(3), NO_PREVOTE);
    // Every node campaigns at once: each votes for itself and the vote is split.
    for (const id of ids(3)) net.node(id).campaign();
    net.settle();
    assert.equal(net.leader(), undefined, "nobody won the split vote");
    for (const id of ids(3)) assert.equal(net.node(id).raft.term, 1);
    tickCheckingElectionSafety(net, 40);
    const l = net.leader();
    assert.ok(l !== undefined, "no leader after the split vote");
    assert.ok(net.node(l).raft.term > 1);
    for (const id of ids(3)) assert.equal(net.node(id).leader(), l);
  });

  it("§5.2: election safety: at most one leader per term under repeated partitions", () => {
    const net = new Network(ids(5), NO_PREVOTE);
    for (const cut of ["1", "2", "3", "4", "5"]) {
      net.isolate(cut);
      tickCheckingElectionSafety(net, 25);
      net.heal();
      tickCheckingElectionSafety(net, 25);
    }
    assert.ok(net.leader() !== undefined);
  });

  it("§5.2: a leader sends heartbeats every heartbeatTick, which keep followers from campaigning", () => {
    const net = new Network(ids(3), { ...NO_PREVOTE, heartbeatTick: 2 });
    net.campaign("1");
    const before = net.delivered.length;
    net.tick(100);
    const hbs = net.delivered.slice(before).filter((m) => m.type === "heartbeat");
    assert.equal(hbs.length, 100, "50 heartbeat rounds to 2 followers");
    assert.equal(net.leader(), "1");
    assert.equal(net.node("1").raft.term, 1, "no follower ever campaigned");
  });
});

describe("thesis §9.6 pre-vote", () => {
  it("§9.6: a partitioned node's term does not grow, and the leader keeps its term after it rejoins", () => {
    const net = new Network(ids(3)); // pre-vote and check-quorum on (the defaults)
    net.campaign("1");
    net.propose("1", "a");
    const term = net.node("1").raft.term;
    net.isolate("3");
    net.tick(100);
    const n3 = net.node("3").raft;
    assert.equal(n3.term, term, "pre-votes that nobody answers do not raise the term");
    assert.equal(n3.state, "pre-candidate");
    net.heal();
    net.tick(30);
    assert.equal(net.leader(), "1");
    assert.equal(net.node("1").raft.term, term, "the leader was not disrupted");
    assert.equal(net.node("3").raft.state, "follower");
    assert.equal(net.node("3").leader(), "1");
    assert.deepEqual(net.appliedData("3"), ["a"]);
  });

  it("§9.6 (contrast): without pre-vote a rejoining node disrupts the leader", () => {
    const net = new Network(ids(3), NO_PREVOTE);
    net.campaign("1");
    const term = net.node("1").raft.term;
    net.isolate("3");
    net.tick(100);
    assert.ok(net.node("3").raft.term > term, "each timeout raised the isolated node's term");
    net.heal();
    net.tick(30);
    const l = net.leader();
    assert.ok(l !== undefined);
    assert.ok(net.node(l).raft.term > term, "the cluster had to move to a new term");
  });

  it("§9.6: granting a pre-vote changes neither the voter's term nor its vote, and needs no fsync", () => {
    const s = new Solo("1", storageWithLog(ids(3), [1], { term: 1 }));
    s.node.step(msg({ type: "pre-vote", from: "2", to: "1", term: 2, index: 1, logTerm: 1 }));
    const rd = s.node.ready();
    assert.equal(rd.hardState, undefined);
    assert.deepEqual(
      ofType(rd.messages, "pre-vote-resp").map((m) => [m.to, m.term, m.reject]),
      [["2", 2, false]],
    );
    s.handle(rd);
    assert.equal(s.raft.term, 1);
    assert.equal(s.raft.vote, "");
  });

  it("§9.6: a pre-vote is denied to a node whose log is behind", () => {
    const s = new Solo("1", storageWithLog(ids(3), [1, 2], { term: 2 }));
    const out = s.stepAll(
      msg({ type: "pre-vote", from: "2", to: "1", term: 3, index: 5, logTerm: 1 }),
    );
    assert.deepEqual(
      ofType(out.msgs, "pre-vote-resp").map((m) => m.reject),
      [true],
    );
  });

  it("§9.6: a pre-candidate keeps its term and starts the real election only after a pre-vote majority", () => {
    const s = Solo.of("1", ids(3));
    s.node.campaign();
    const out = s.drain().msgs;
    assert.equal(s.raft.state, "pre-candidate");
    assert.equal(s.raft.term, 0);
    assert.deepEqual(
      ofType(out, "pre-vote").map((m) => `${m.to}@${m.term}`),
      ["2@1", "3@1"],
      "pre-votes ask for the next term",
    );
    const out2 = s.stepAll(msg({ type: "pre-vote-resp", from: "2", to: "1", term: 1 })).msgs;
    assert.equal(s.raft.state, "candidate");
    assert.equal(s.raft.term, 1);
    assert.deepEqual(
      ofType(out2, "vote").map((m) => `${m.to}@${m.term}`),
      ["2@1", "3@1"],
    );
  });
});

describe("thesis §6.2 check-quorum", () => {
  it("§6.2: a leader that cannot reach a quorum for an election timeout steps down", () => {
    const net = new Network(ids(3));
    net.campaign("1");
    net.isolate("1");
    net.tickNode("1", 10);
    // The first check happens with the followers still marked active from before.
    net.tickNode("1", 10);
    assert.equal(net.node("1").raft.state, "follower");
    assert.equal(net.node("1").leader(), "");
  });

  it("§6.2 (contrast): without check-quorum an isolated leader stays leader", () => {
    const net = new Network(ids(3), { checkQuorum: false });
    net.campaign("1");
    net.isolate("1");
    net.tickNode("1", 50);
    assert.equal(net.node("1").raft.state, "leader");
  });

  it("§6.2: a leader that hears from a quorum stays leader", () => {
    const net = new Network(ids(5));
    net.campaign("1");
    net.isolate("4");
    net.isolate("5");
    net.tick(50);
    assert.equal(net.node("1").raft.state, "leader");
    assert.equal(net.node("1").raft.term, 1);
  });

  it("§4.2.3: a follower that heard from a leader within the election timeout ignores vote requests", () => {
    const s = new Solo("1", storageWithLog(ids(3), [1], { term: 1 }));
    s.stepAll(msg({ type: "heartbeat", from: "2", to: "1", term: 1 }));
    const out = s.stepAll(msg({ type: "vote", from: "3", to: "1", term: 2, index: 1, logTerm: 1 }));
    assert.equal(s.raft.term, 1, "the disrupting candidate did not raise the term");
    assert.equal(s.raft.lead, "2");
    assert.deepEqual(ofType(out.msgs, "vote-resp"), []);
    // After the election timeout without hearing from the leader, the request is considered.
    s.tick(10);
    const out2 = s.stepAll(
      msg({ type: "vote", from: "3", to: "1", term: 5, index: 1, logTerm: 1 }),
    );
    assert.deepEqual(
      ofType(out2.msgs, "vote-resp").map((m) => m.reject),
      [false],
    );
  });

  it("§6.2: a deposed leader learns the new term from a stale-term response and follows", () => {
    const net = new Network(ids(3));
    net.campaign("1");
    net.isolate("1");
    net.tick(40); // 1 steps down (check-quorum); 2 or 3 is elected in a later term
    net.heal();
    net.tick(5);
    const l = net.leader();
    assert.ok(l !== undefined && l !== "1");
    assert.equal(net.node("1").raft.term, net.node(l).raft.term);
    assert.equal(net.node("1").leader(), l);
  });
});

describe("learners and elections", () => {
  it("§4.2.1 (thesis): a learner never campaigns, however long it hears nothing", () => {
    const st = MemoryStorage.withConfState(confState(["1", "2"], ["3"]));
    const s = new Solo("3", st);
    const out = s.tick(200);
    assert.equal(s.raft.state, "follower");
    assert.equal(s.raft.term, 0);
    assert.deepEqual(out, []);
    s.node.campaign();
    assert.equal(s.raft.state, "follower", "an explicit campaign is refused too");
  });
});
