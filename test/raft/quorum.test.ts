import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { JointConfig } from "../../src/raft/quorum/joint.js";
import { MajorityConfig } from "../../src/raft/quorum/majority.js";
import type { AckedIndexer, VoteResult } from "../../src/raft/quorum/majority.js";

/** An AckedIndexer over a record of id -> acknowledged index. */
function acked(idx: Record<string, number>): AckedIndexer {
  return (id) => idx[id];
}

/** Votes from a compact spec: "1y 2n" (y granted, n rejected). */
function votes(spec: string): Map<string, boolean> {
  const m = new Map<string, boolean>();
  for (const v of spec.split(" ").filter((x) => x !== "")) m.set(v.slice(0, -1), v.endsWith("y"));
  return m;
}

describe("quorum/majority: committedIndex (Raft §5.3: committed once on a majority)", () => {
  const cases: { name: string; voters: string[]; acked: Record<string, number>; want: number }[] = [
    { name: "empty config commits everything", voters: [], acked: {}, want: Infinity },
    { name: "single voter, unknown", voters: ["1"], acked: {}, want: 0 },
    { name: "single voter, acked 5", voters: ["1"], acked: { 1: 5 }, want: 5 },
    {
      name: "3 voters, all differ: the median",
      voters: ["1", "2", "3"],
      acked: { 1: 5, 2: 3, 3: 1 },
      want: 3,
    },
    {
      name: "3 voters, two agree on the max",
      voters: ["1", "2", "3"],
      acked: { 1: 5, 2: 5, 3: 1 },
      want: 5,
    },
    {
      name: "3 voters, one unknown counts as 0",
      voters: ["1", "2", "3"],
      acked: { 1: 7, 2: 4 },
      want: 4,
    },
    {
      name: "3 voters, two unknown",
      voters: ["1", "2", "3"],
      acked: { 1: 7 },
      want: 0,
    },
    {
      name: "4 voters need 3: the third largest",
      voters: ["1", "2", "3", "4"],
      acked: { 1: 4, 2: 3, 3: 2, 4: 1 },
      want: 2,
    },
    {
      name: "5 voters need 3",
      voters: ["1", "2", "3", "4", "5"],
      acked: { 1: 9, 2: 9, 3: 2, 4: 8, 5: 1 },
      want: 8,
    },
    {
      name: "acks from non-voters do not count",
      voters: ["1", "2", "3"],
      acked: { 1: 9, 4: 9, 5: 9 },
      want: 0,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      assert.equal(new MajorityConfig(c.voters).committedIndex(acked(c.acked)), c.want);
    });
  }
});

describe("quorum/majority: voteResult (Raft §5.2: a candidate needs a majority)", () => {
  const cases: { name: string; voters: string[]; votes: string; want: VoteResult }[] = [
    { name: "empty config wins", voters: [], votes: "", want: "won" },
    { name: "1 voter, no vote yet", voters: ["1"], votes: "", want: "pending" },
    { name: "1 voter, granted", voters: ["1"], votes: "1y", want: "won" },
    { name: "1 voter, rejected", voters: ["1"], votes: "1n", want: "lost" },
    { name: "3 voters, one grant", voters: ["1", "2", "3"], votes: "1y", want: "pending" },
    { name: "3 voters, two grants", voters: ["1", "2", "3"], votes: "1y 2y", want: "won" },
    {
      name: "3 voters, grant and reject",
      voters: ["1", "2", "3"],
      votes: "1y 2n",
      want: "pending",
    },
    { name: "3 voters, two rejects", voters: ["1", "2", "3"], votes: "2n 3n", want: "lost" },
    { name: "4 voters, two grants", voters: ["1", "2", "3", "4"], votes: "1y 2y", want: "pending" },
    {
      name: "4 voters, two grants two rejects (a split vote)",
      voters: ["1", "2", "3", "4"],
      votes: "1y 2y 3n 4n",
      want: "lost",
    },
    {
      name: "4 voters, three grants",
      voters: ["1", "2", "3", "4"],
      votes: "1y 2y 4y",
      want: "won",
    },
    {
      name: "votes of non-voters are ignored",
      voters: ["1", "2", "3"],
      votes: "1y 4y 5y",
      want: "pending",
    },
  ];
  for (const c of cases) {
    it(c.name, () => assert.equal(new MajorityConfig(c.voters).voteResult(votes(c.votes)), c.want));
  }
});

describe("quorum/joint: decisions need both majorities (thesis §4.3)", () => {
  const j = (inc: string[], out: string[]): JointConfig =>
    new JointConfig(new MajorityConfig(inc), new MajorityConfig(out));

  describe("committedIndex", () => {
    const cases: {
      name: string;
      incoming: string[];
      outgoing: string[];
      acked: Record<string, number>;
      want: number;
    }[] = [
      {
        name: "not joint: the incoming majority",
        incoming: ["1", "2", "3"],
        outgoing: [],
        acked: { 1: 5, 2: 4, 3: 1 },
        want: 4,
      },
      {
        name: "joint: the smaller of the two majorities",
        incoming: ["1", "2", "3"],
        outgoing: ["1", "4", "5"],
        acked: { 1: 9, 2: 9, 3: 9, 4: 2, 5: 1 },
        want: 2,
      },
      {
        name: "joint: overlapping halves, incoming lags",
        incoming: ["1", "2", "4"],
        outgoing: ["1", "2", "3"],
        acked: { 1: 9, 2: 3, 3: 8, 4: 1 },
        want: 3,
      },
      {
        name: "joint: a majority of the union is not enough",
        incoming: ["4", "5", "6"],
        outgoing: ["1", "2", "3"],
        acked: { 1: 9, 2: 9, 3: 9, 4: 9, 5: 0, 6: 0 },
        want: 0,
      },
      {
        name: "both halves empty",
        incoming: [],
        outgoing: [],
        acked: {},
        want: Infinity,
      },
    ];
    for (const c of cases) {
      it(c.name, () =>
        assert.equal(j(c.incoming, c.outgoing).committedIndex(acked(c.acked)), c.want),
      );
    }
  });

  describe("voteResult", () => {
    const cases: {
      name: string;
      incoming: string[];
      outgoing: string[];
      votes: string;
      want: VoteResult;
    }[] = [
      {
        name: "not joint: won",
        incoming: ["1", "2", "3"],
        outgoing: [],
        votes: "1y 2y",
        want: "won",
      },
      {
        name: "joint: won in incoming only is pending",
        incoming: ["1", "2", "3"],
        outgoing: ["1", "4", "5"],
        votes: "1y 2y 3y",
        want: "pending",
      },
      {
        name: "joint: won in both",
        incoming: ["1", "2", "3"],
        outgoing: ["1", "4", "5"],
        votes: "1y 2y 4y",
        want: "won",
      },
      {
        name: "joint: lost in outgoing loses",
        incoming: ["1", "2", "3"],
        outgoing: ["1", "4", "5"],
        votes: "1y 2y 3y 4n 5n",
        want: "lost",
      },
      {
        name: "joint: lost in incoming loses even when outgoing won",
        incoming: ["1", "2", "3"],
        outgoing: ["1", "4", "5"],
        votes: "2n 3n 4y 5y",
        want: "lost",
      },
      {
        name: "joint: pending in both",
        incoming: ["1", "2", "3"],
        outgoing: ["1", "4", "5"],
        votes: "1y",
        want: "pending",
      },
    ];
    for (const c of cases) {
      it(c.name, () => assert.equal(j(c.incoming, c.outgoing).voteResult(votes(c.votes)), c.want));
    }
  });

  it("isJoint and ids cover both halves", () => {
    const c = j(["1", "2"], ["2", "3"]);
    assert.equal(c.isJoint, true);
    assert.deepEqual([...c.ids()].sort(), ["1", "2", "3"]);
    assert.equal(c.has("3"), true);
    assert.equal(c.has("4"), false);
    assert.equal(j(["1"], []).isJoint, false);
  });
});
