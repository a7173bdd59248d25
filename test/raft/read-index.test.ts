/**
 * Linearizable reads (thesis §6.4): ReadIndex confirmed by a heartbeat quorum, only after the
 * leader committed an entry of its term; lease-based reads (thesis §6.4.1); forwarding from
 * followers, and protection against duplicated or delayed answers.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { describeReadState } from "../../src/raft/describe.js";
import type { Message, ReadState } from "../../src/raft/types.js";
import { Network, ids } from "./network.js";
import { Solo, ackOf, dec, enc, msg, ofType, storageWithLog } from "./helpers.js";

const PLAIN = { preVote: false, checkQuorum: false } as const;

/** A leader of `n` voters whose no-op is committed (followers acknowledged it). */
function committedLeader(n: number, opts: Parameters<typeof Solo.of>[2] = {}): Solo {
  const s = Solo.of("1", ids(n), { ...PLAIN, ...opts });
  const first = s.elect();
  s.stepAll(...ofType(first, "app").map(ackOf));
  assert.equal(s.raft.raftLog.committed, 1);
  return s;
}

function readStatesOf(d: { readies: { readStates: readonly ReadState[] }[] }): string[] {
  return d.readies.flatMap((r) => r.readStates.map(describeReadState));
}

function hbAck(hb: Message): Message {
  return msg({
    type: "heartbeat-resp",
    from: hb.to,
    to: hb.from,
    term: hb.term,
    context: hb.context,
  });
}

describe("thesis §6.4 ReadIndex", () => {
  it("§6.4: the leader answers only after a quorum acknowledges a heartbeat sent after the request", () => {
    const s = committedLeader(5);
    s.node.readIndex(enc("r1"));
    const d = s.drain();
    assert.deepEqual(readStatesOf(d), [], "no answer before confirming leadership");
    const hbs = ofType(d.msgs, "heartbeat");
    assert.equal(hbs.length, 4);
    for (const hb of hbs) assert.equal(dec(hb.context), "r1", "the heartbeat carries the request");
    assert.deepEqual(readStatesOf(s.stepAll(hbAck(hbs[0]!))), [], "2 of 5 is not a quorum");
    assert.deepEqual(readStatesOf(s.stepAll(hbAck(hbs[1]!))), ['index=1 ctx="r1"']);
    assert.deepEqual(readStatesOf(s.stepAll(hbAck(hbs[2]!))), [], "answered once");
  });

  it("§6.4: the read index is the commit index when the request arrived", () => {
    const s = committedLeader(3);
    s.node.readIndex(enc("r"));
    const hb = ofType(s.drain().msgs, "heartbeat")[0]!;
    s.node.propose(enc("later")); // appended, not committed when the read is confirmed
    s.drain();
    assert.deepEqual(readStatesOf(s.stepAll(hbAck(hb))), ['index=1 ctx="r"']);
  });

  it("§6.4: a new leader answers only after it has committed an entry of its own term", () => {
    // The leader's log holds committed entries of term 1; it is elected in term 2.
    const s = new Solo("1", storageWithLog(ids(3), [1, 1], { term: 1, commit: 2 }), PLAIN);
    const first = s.elect();
    s.node.readIndex(enc("early"));
    const d = s.drain();
    assert.deepEqual(ofType(d.msgs, "heartbeat"), [], "held until the no-op of term 2 commits");
    assert.deepEqual(readStatesOf(d), []);
    // The no-op commits; the held read is released and confirmed as usual.
    const released = s.stepAll(ackOf(ofType(first, "app", "2")[0]!));
    assert.equal(s.raft.raftLog.committed, 3);
    const hbs = ofType(released.msgs, "heartbeat");
    assert.ok(hbs.length > 0);
    assert.deepEqual(readStatesOf(s.stepAll(hbAck(hbs[0]!))), ['index=3 ctx="early"']);
  });

  it("§6.4: confirming a later request also confirms every earlier one, in order", () => {
    const s = committedLeader(3);
    s.node.readIndex(enc("a"));
    s.drain();
    s.node.readIndex(enc("b"));
    const hbs = ofType(s.drain().msgs, "heartbeat");
    const hbB = hbs.find((m) => dec(m.context) === "b")!;
    assert.deepEqual(readStatesOf(s.stepAll(hbAck(hbB))), ['index=1 ctx="a"', 'index=1 ctx="b"']);
  });

  it("§6.4: a single-voter leader confirms itself at once", () => {
    const s = Solo.of("1", ["1"], PLAIN);
    s.elect();
    s.drain();
    s.node.readIndex(enc("solo"));
    const d = s.drain();
    assert.deepEqual(readStatesOf(d), ['index=1 ctx="solo"']);
    assert.deepEqual(d.msgs, []);
  });

  it("§6.4: a leader deposed before the quorum answers never serves the read", () => {
    const s = committedLeader(3);
    s.node.readIndex(enc("r"));
    const hb = ofType(s.drain().msgs, "heartbeat")[0]!;
    s.stepAll(msg({ type: "heartbeat", from: "3", to: "1", term: 2 })); // a newer leader exists
    assert.equal(s.raft.state, "follower");
    assert.deepEqual(readStatesOf(s.stepAll(hbAck({ ...hb, term: 2 }))), []);
  });

  it("§6.4.1: lease-based reads are answered at once, without a heartbeat round", () => {
    const s = committedLeader(3, { readOnlyOption: "lease-based", checkQuorum: true });
    s.node.readIndex(enc("lease"));
    const d = s.drain();
    assert.deepEqual(readStatesOf(d), ['index=1 ctx="lease"']);
    assert.deepEqual(ofType(d.msgs, "heartbeat"), []);
  });
});

describe("thesis §6.4 ReadIndex on followers", () => {
  it("§6.4: a follower forwards ReadIndex to the leader and gets the leader's read index", () => {
    const net = new Network(ids(3), PLAIN);
    net.campaign("1");
    net.propose("1", "x");
    net.node("2").readIndex(enc("f"));
    net.settle();
    assert.deepEqual((net.readStates.get("2") ?? []).map(describeReadState), ['index=2 ctx="f"']);
    assert.equal(net.readStates.get("1"), undefined, "the leader answers the follower, not itself");
  });

  it("§6.4: a duplicated or delayed read-index-resp does not produce a second ReadState", () => {
    const s = new Solo("2", storageWithLog(ids(3), [1], { term: 1 }), PLAIN);
    s.stepAll(msg({ type: "heartbeat", from: "1", to: "2", term: 1 }));
    s.node.readIndex(enc("q"));
    assert.deepEqual(
      ofType(s.drain().msgs, "read-index").map((m) => [m.to, dec(m.context)]),
      [["1", "q"]],
    );
    const resp = msg({
      type: "read-index-resp",
      from: "1",
      to: "2",
      term: 1,
      index: 1,
      context: enc("q"),
    });
    assert.deepEqual(readStatesOf(s.stepAll(resp)), ['index=1 ctx="q"']);
    assert.deepEqual(readStatesOf(s.stepAll(resp)), [], "a duplicate is dropped");
    const stray = { ...resp, context: enc("never-asked") };
    assert.deepEqual(readStatesOf(s.stepAll(stray)), [], "an answer to no request is dropped");
  });

  it("§6.4: an answer delayed across a term change does not answer anything", () => {
    const s = new Solo("2", storageWithLog(ids(3), [1], { term: 1 }), PLAIN);
    s.stepAll(msg({ type: "heartbeat", from: "1", to: "2", term: 1 }));
    s.node.readIndex(enc("q"));
    s.drain();
    s.stepAll(msg({ type: "heartbeat", from: "3", to: "2", term: 2 })); // new leader
    const late = msg({
      type: "read-index-resp",
      from: "1",
      to: "2",
      term: 2,
      index: 1,
      context: enc("q"),
    });
    assert.deepEqual(readStatesOf(s.stepAll(late)), []);
  });

  it("§6.4: a follower that knows no leader drops ReadIndex requests", () => {
    const s = Solo.of("2", ids(3), PLAIN);
    s.node.readIndex(enc("q"));
    const d = s.drain();
    assert.deepEqual(d.msgs, []);
    assert.deepEqual(readStatesOf(d), []);
  });
});
