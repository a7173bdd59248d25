import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Inflights } from "../../src/raft/tracker/inflights.js";
import { Progress } from "../../src/raft/tracker/progress.js";
import type { ProgressState } from "../../src/raft/tracker/progress.js";
import { ProgressTracker, confStatesEquivalent } from "../../src/raft/tracker/progress-tracker.js";
import { restoreConfState } from "../../src/raft/confchange/changer.js";

describe("tracker/inflights: the bounded window of in-flight appends", () => {
  it("is full after maxCount additions and frees up to an acknowledged index", () => {
    const inf = new Inflights(3);
    inf.add(5, 10);
    inf.add(6, 10);
    assert.equal(inf.full(), false);
    inf.add(9, 10);
    assert.equal(inf.full(), true);
    assert.throws(() => inf.add(10, 1), /full window/);
    inf.freeLE(6);
    assert.equal(inf.count(), 1);
    assert.equal(inf.bytes(), 10);
    assert.equal(inf.full(), false);
  });

  const cases: { name: string; adds: number[]; free: number; wantCount: number }[] = [
    { name: "free below the first frees nothing", adds: [5, 6, 7], free: 4, wantCount: 3 },
    { name: "free at the first frees one", adds: [5, 6, 7], free: 5, wantCount: 2 },
    { name: "free between entries", adds: [5, 7, 9], free: 8, wantCount: 1 },
    { name: "free past the last frees all", adds: [5, 6, 7], free: 100, wantCount: 0 },
    { name: "free on empty", adds: [], free: 10, wantCount: 0 },
  ];
  for (const c of cases) {
    it(`freeLE: ${c.name}`, () => {
      const inf = new Inflights(10);
      for (const i of c.adds) inf.add(i, 1);
      inf.freeLE(c.free);
      assert.equal(inf.count(), c.wantCount);
      assert.equal(inf.bytes(), c.wantCount);
    });
  }

  it("wraps around its ring buffer and keeps order", () => {
    const inf = new Inflights(4);
    for (let round = 0; round < 5; round++) {
      const base = round * 10;
      for (let i = 0; i < 4; i++) inf.add(base + i, 1);
      assert.equal(inf.full(), true);
      inf.freeLE(base + 1);
      assert.equal(inf.count(), 2);
      inf.freeLE(base + 3);
      assert.equal(inf.count(), 0);
    }
  });

  it("with maxBytes, is full once the in-flight bytes reach the limit", () => {
    const inf = new Inflights(100, 50);
    inf.add(1, 20);
    inf.add(2, 20);
    assert.equal(inf.full(), false);
    inf.add(3, 10);
    assert.equal(inf.full(), true);
    inf.freeLE(1);
    assert.equal(inf.bytes(), 30);
    assert.equal(inf.full(), false);
  });

  it("clone copies contents and limits; reset empties", () => {
    const inf = new Inflights(3, 100);
    inf.add(1, 5);
    inf.add(2, 6);
    const c = inf.clone();
    assert.equal(c.count(), 2);
    assert.equal(c.bytes(), 11);
    c.add(3, 1);
    assert.equal(inf.count(), 2, "the clone is independent");
    inf.reset();
    assert.equal(inf.count(), 0);
    assert.equal(inf.bytes(), 0);
  });

  it("refuses a zero-size window", () => {
    assert.throws(() => new Inflights(0), /maxCount/);
  });
});

function progress(state: ProgressState, match: number, next: number, maxInflight = 256): Progress {
  const pr = new Progress(next, new Inflights(maxInflight), false, match);
  if (state === "replicate") {
    pr.becomeReplicate();
    pr.next = next;
  } else if (state === "snapshot") {
    pr.becomeSnapshot(next);
  }
  return pr;
}

describe("tracker/progress: per-follower state (Raft §5.3 nextIndex/matchIndex)", () => {
  describe("state transitions", () => {
    it("becomeReplicate resets next to match+1 and clears the window", () => {
      const pr = progress("probe", 4, 10);
      pr.msgAppFlowPaused = true;
      pr.becomeReplicate();
      assert.equal(pr.state, "replicate");
      assert.equal(pr.next, 5);
      assert.equal(pr.isPaused(), false);
    });

    it("becomeProbe from replicate resets next to match+1", () => {
      const pr = progress("replicate", 4, 10);
      pr.inflights.add(7, 1);
      pr.becomeProbe();
      assert.equal(pr.state, "probe");
      assert.equal(pr.next, 5);
      assert.equal(pr.inflights.count(), 0);
    });

    it("becomeProbe from snapshot resumes after the snapshot", () => {
      const pr = progress("probe", 1, 2);
      pr.becomeSnapshot(20);
      assert.equal(pr.state, "snapshot");
      assert.equal(pr.pendingSnapshot, 20);
      assert.equal(pr.isPaused(), true, "nothing is sent while a snapshot is in flight");
      pr.becomeProbe();
      assert.equal(pr.next, 21);
      assert.equal(pr.pendingSnapshot, 0);
    });

    it("becomeProbe from snapshot keeps next above match when match passed the snapshot", () => {
      const pr = progress("probe", 1, 2);
      pr.becomeSnapshot(20);
      pr.match = 25;
      pr.becomeProbe();
      assert.equal(pr.next, 26);
    });
  });

  describe("maybeUpdate", () => {
    const cases: {
      name: string;
      match: number;
      next: number;
      n: number;
      want: boolean;
      wantMatch: number;
      wantNext: number;
    }[] = [
      {
        name: "older index is stale",
        match: 5,
        next: 8,
        n: 3,
        want: false,
        wantMatch: 5,
        wantNext: 8,
      },
      {
        name: "same index is not an update",
        match: 5,
        next: 8,
        n: 5,
        want: false,
        wantMatch: 5,
        wantNext: 8,
      },
      {
        name: "newer index below next",
        match: 5,
        next: 8,
        n: 6,
        want: true,
        wantMatch: 6,
        wantNext: 8,
      },
      {
        name: "newer index at next",
        match: 5,
        next: 8,
        n: 8,
        want: true,
        wantMatch: 8,
        wantNext: 9,
      },
      {
        name: "newer index past next",
        match: 5,
        next: 8,
        n: 12,
        want: true,
        wantMatch: 12,
        wantNext: 13,
      },
    ];
    for (const c of cases) {
      it(c.name, () => {
        const pr = progress("probe", c.match, c.next);
        assert.equal(pr.maybeUpdate(c.n), c.want);
        assert.equal(pr.match, c.wantMatch);
        assert.equal(pr.next, c.wantNext);
      });
    }

    it("an update unpauses a probing follower", () => {
      const pr = progress("probe", 1, 2);
      pr.sentEntries(1, 2, 0);
      assert.equal(pr.isPaused(), true);
      pr.maybeUpdate(2);
      assert.equal(pr.isPaused(), false);
    });
  });

  describe("maybeDecrTo (fast backtracking, Raft §5.3)", () => {
    const cases: {
      name: string;
      state: ProgressState;
      match: number;
      next: number;
      rejected: number;
      hint: number;
      want: boolean;
      wantNext: number;
    }[] = [
      {
        name: "replicate: rejection of a matched index is stale",
        state: "replicate",
        match: 5,
        next: 10,
        rejected: 5,
        hint: 5,
        want: false,
        wantNext: 10,
      },
      {
        name: "replicate: real rejection goes back to match+1",
        state: "replicate",
        match: 5,
        next: 10,
        rejected: 9,
        hint: 9,
        want: true,
        wantNext: 6,
      },
      {
        name: "probe: rejection of another index than next-1 is stale",
        state: "probe",
        match: 0,
        next: 10,
        rejected: 5,
        hint: 5,
        want: false,
        wantNext: 10,
      },
      {
        name: "probe: hint below next-1 jumps to hint+1",
        state: "probe",
        match: 0,
        next: 10,
        rejected: 9,
        hint: 3,
        want: true,
        wantNext: 4,
      },
      {
        name: "probe: a hint past the rejected index decreases by one only",
        state: "probe",
        match: 0,
        next: 10,
        rejected: 9,
        hint: 20,
        want: true,
        wantNext: 9,
      },
      {
        name: "probe: next never goes below match+1",
        state: "probe",
        match: 4,
        next: 10,
        rejected: 9,
        hint: 1,
        want: true,
        wantNext: 5,
      },
      {
        name: "probe: next never goes below 1",
        state: "probe",
        match: 0,
        next: 1,
        rejected: 0,
        hint: 0,
        want: true,
        wantNext: 1,
      },
    ];
    for (const c of cases) {
      it(c.name, () => {
        const pr = progress(c.state, c.match, c.next);
        assert.equal(pr.maybeDecrTo(c.rejected, c.hint), c.want);
        assert.equal(pr.next, c.wantNext);
      });
    }

    it("a rejection unpauses a probing follower", () => {
      const pr = progress("probe", 0, 10);
      pr.sentEntries(1, 10, 0);
      assert.equal(pr.isPaused(), true);
      pr.maybeDecrTo(9, 5);
      assert.equal(pr.isPaused(), false);
    });
  });

  describe("sentEntries and isPaused (flow control)", () => {
    it("probe: one append with entries pauses until answered", () => {
      const pr = progress("probe", 0, 1);
      pr.sentEntries(0, 0, 0);
      assert.equal(pr.isPaused(), false, "an empty probe does not pause");
      pr.sentEntries(3, 3, 30);
      assert.equal(pr.isPaused(), true);
      assert.equal(pr.next, 1, "probe does not advance next optimistically");
    });

    it("replicate: next advances optimistically until the window is full", () => {
      const pr = progress("replicate", 0, 1, 2);
      pr.sentEntries(2, 2, 0);
      assert.equal(pr.next, 3);
      assert.equal(pr.isPaused(), false);
      pr.sentEntries(1, 3, 0);
      assert.equal(pr.next, 4);
      assert.equal(pr.isPaused(), true, "window of 2 is full");
      pr.maybeUpdate(2);
      pr.inflights.freeLE(2);
      assert.equal(pr.isPaused(), false);
    });

    it("snapshot: sending an append is a bug", () => {
      const pr = progress("snapshot", 0, 10);
      assert.throws(() => pr.sentEntries(1, 1, 0), /unhandled state snapshot/);
    });
  });

  it("clone is a deep copy", () => {
    const pr = progress("replicate", 3, 5);
    pr.inflights.add(4, 1);
    pr.recentActive = true;
    const c = pr.clone();
    assert.deepEqual(
      [c.state, c.match, c.next, c.recentActive, c.inflights.count()],
      ["replicate", 3, 5, true, 1],
    );
    c.inflights.add(5, 1);
    c.match = 9;
    assert.equal(pr.inflights.count(), 1);
    assert.equal(pr.match, 3);
  });
});

describe("tracker/progress-tracker: the leader's view of the configuration", () => {
  function tracker(
    voters: string[],
    learners: string[] = [],
    outgoing: string[] = [],
  ): ProgressTracker {
    const r = restoreConfState(
      { voters, learners, votersOutgoing: outgoing, learnersNext: [], autoLeave: false },
      1,
      8,
      0,
    );
    const t = new ProgressTracker(8, 0);
    t.config = r.config;
    t.progress = r.progress;
    return t;
  }

  it("committed(): the majority's match, learners excluded", () => {
    const t = tracker(["1", "2", "3"], ["4"]);
    const set = (m: Record<string, number>) => {
      for (const [id, v] of Object.entries(m)) t.progress.get(id)!.match = v;
    };
    set({ 1: 9, 2: 5, 3: 1, 4: 9 });
    assert.equal(t.committed(), 5);
    set({ 2: 1 });
    assert.equal(t.committed(), 1, "the learner's 9 does not help");
  });

  it("quorumActive(): learners do not count; joint needs both halves", () => {
    const t = tracker(["1", "2", "3"], ["4"]);
    for (const pr of t.progress.values()) pr.recentActive = false;
    t.progress.get("1")!.recentActive = true;
    t.progress.get("4")!.recentActive = true;
    assert.equal(t.quorumActive(), false);
    t.progress.get("2")!.recentActive = true;
    assert.equal(t.quorumActive(), true);
    const j = tracker(["1", "2", "3"], [], ["1", "4", "5"]);
    for (const pr of j.progress.values()) pr.recentActive = false;
    for (const id of ["1", "2", "3"]) j.progress.get(id)!.recentActive = true;
    assert.equal(j.quorumActive(), false, "the outgoing half (1 4 5) has only 1 active");
  });

  it("votes: the first vote of each voter counts; learners' votes are not tallied", () => {
    const t = tracker(["1", "2", "3"], ["4"]);
    t.recordVote("4", true);
    t.recordVote("1", true);
    t.recordVote("2", false);
    t.recordVote("2", true); // a later vote of the same voter is ignored
    assert.deepEqual(t.tallyVotes(), { granted: 1, rejected: 1, result: "pending" });
    t.recordVote("3", true);
    assert.deepEqual(t.tallyVotes(), { granted: 2, rejected: 1, result: "won" });
    t.resetVotes();
    assert.deepEqual(t.tallyVotes(), { granted: 0, rejected: 0, result: "pending" });
  });

  it("isSingleton and confStatesEquivalent", () => {
    assert.equal(tracker(["1"]).isSingleton(), true);
    assert.equal(tracker(["1", "2"]).isSingleton(), false);
    assert.equal(tracker(["1"], [], ["1", "2"]).isSingleton(), false);
    const a = {
      voters: ["1", "2"],
      learners: ["3"],
      votersOutgoing: [],
      learnersNext: [],
      autoLeave: false,
    };
    assert.equal(confStatesEquivalent(a, { ...a, voters: ["2", "1"] }), true);
    assert.equal(confStatesEquivalent(a, { ...a, learners: [] }), false);
  });
});
