import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  Changer,
  ConfChangeError,
  checkInvariants,
  restoreConfState,
} from "../../src/raft/confchange/changer.js";
import type { ConfChangeResult } from "../../src/raft/confchange/changer.js";
import {
  decodeConfChange,
  encodeConfChange,
  enterJointOf,
  leaveJointOf,
} from "../../src/raft/confchange/codec.js";
import { describeConfState } from "../../src/raft/describe.js";
import { confStateOf } from "../../src/raft/tracker/progress-tracker.js";
import type { ConfChange, ConfState } from "../../src/raft/types.js";
import { EMPTY_BYTES } from "../../src/raft/types.js";
import { changes as ccs, enc } from "./helpers.js";

function cs(
  voters: string[],
  learners: string[] = [],
  votersOutgoing: string[] = [],
  learnersNext: string[] = [],
  autoLeave = false,
): ConfState {
  return { voters, learners, votersOutgoing, learnersNext, autoLeave };
}

function changer(from: ConfState, lastIndex = 10): Changer {
  const r = restoreConfState(from, lastIndex, 16, 0);
  return new Changer(r.config, r.progress, lastIndex, 16, 0);
}

function describeResult(r: ConfChangeResult): string {
  return describeConfState(confStateOf(r.config));
}

describe("confchange/changer: simple changes (one voter at a time, Raft §6)", () => {
  const cases: { name: string; from: ConfState; changes: string; want: string }[] = [
    { name: "add the first voter", from: cs([]), changes: "v1", want: "voters=(1)" },
    { name: "add a voter", from: cs(["1", "2", "3"]), changes: "v4", want: "voters=(1 2 3 4)" },
    {
      name: "add an existing voter is a no-op",
      from: cs(["1", "2"]),
      changes: "v2",
      want: "voters=(1 2)",
    },
    { name: "remove a voter", from: cs(["1", "2", "3"]), changes: "r3", want: "voters=(1 2)" },
    {
      name: "remove an unknown node is a no-op",
      from: cs(["1", "2"]),
      changes: "r9",
      want: "voters=(1 2)",
    },
    { name: "add a learner", from: cs(["1"]), changes: "l2", want: "voters=(1) learners=(2)" },
    {
      name: "add learners and one voter at once",
      from: cs(["1"]),
      changes: "l2 l3 v4",
      want: "voters=(1 4) learners=(2 3)",
    },
    {
      name: "promote a learner",
      from: cs(["1"], ["2"]),
      changes: "v2",
      want: "voters=(1 2)",
    },
    {
      name: "demote a voter to learner",
      from: cs(["1", "2", "3"]),
      changes: "l3",
      want: "voters=(1 2) learners=(3)",
    },
    {
      name: "remove a learner",
      from: cs(["1"], ["2"]),
      changes: "r2",
      want: "voters=(1)",
    },
    {
      name: "add then remove the same voter nets out",
      from: cs(["1", "2"]),
      changes: "v3 r3",
      want: "voters=(1 2)",
    },
  ];
  for (const c of cases) {
    it(c.name, () => assert.equal(describeResult(changer(c.from).simple(ccs(c.changes))), c.want));
  }

  const refusals: { name: string; from: ConfState; changes: string; err: RegExp }[] = [
    {
      name: "two voters added at once",
      from: cs(["1"]),
      changes: "v2 v3",
      err: /more than one voter changed/,
    },
    {
      name: "a voter replaced by another",
      from: cs(["1", "2", "3"]),
      changes: "r3 v4",
      err: /more than one voter changed/,
    },
    { name: "all voters removed", from: cs(["1"]), changes: "r1", err: /removed all voters/ },
    {
      name: "a simple change in a joint configuration",
      from: cs(["1", "2"], [], ["1"]),
      changes: "v3",
      err: /in joint config/,
    },
  ];
  for (const c of refusals) {
    it(`refuses: ${c.name}`, () => {
      assert.throws(
        () => changer(c.from).simple(ccs(c.changes)),
        (e: unknown) => {
          assert.ok(e instanceof ConfChangeError);
          assert.match(e.message, c.err);
          return true;
        },
      );
    });
  }

  it("a new member starts probing at the leader's last index and counts as active", () => {
    const r = changer(cs(["1"]), 42).simple(ccs("v2"));
    const pr = r.progress.get("2")!;
    assert.deepEqual([pr.state, pr.match, pr.next, pr.recentActive], ["probe", 0, 42, true]);
  });

  it("does not mutate its inputs", () => {
    const base = restoreConfState(cs(["1", "2", "3"]), 5, 16, 0);
    new Changer(base.config, base.progress, 5, 16, 0).simple(ccs("l3"));
    assert.equal(describeResult(base), "voters=(1 2 3)");
    assert.equal(base.progress.get("3")!.isLearner, false);
  });
});

describe("confchange/changer: joint consensus (thesis §4.3)", () => {
  const enter: {
    name: string;
    from: ConfState;
    changes: string;
    autoLeave: boolean;
    want: string;
  }[] = [
    {
      name: "replace one voter",
      from: cs(["1", "2", "3"]),
      changes: "r1 v4",
      autoLeave: true,
      want: "voters=(2 3 4)&&(1 2 3) autoleave",
    },
    {
      name: "add two voters, explicit leave",
      from: cs(["1"]),
      changes: "v2 v3",
      autoLeave: false,
      want: "voters=(1 2 3)&&(1)",
    },
    {
      name: "demote a voter: a learner only after leaving",
      from: cs(["1", "2", "3"]),
      changes: "l3",
      autoLeave: false,
      want: "voters=(1 2)&&(1 2 3) learners_next=(3)",
    },
    {
      name: "add a learner while entering",
      from: cs(["1", "2"]),
      changes: "v3 l4",
      autoLeave: true,
      want: "voters=(1 2 3)&&(1 2) learners=(4) autoleave",
    },
    {
      name: "no changes at all",
      from: cs(["1", "2"]),
      changes: "",
      autoLeave: false,
      want: "voters=(1 2)&&(1 2)",
    },
  ];
  for (const c of enter) {
    it(`enter: ${c.name}`, () => {
      assert.equal(describeResult(changer(c.from).enterJoint(c.autoLeave, ccs(c.changes))), c.want);
    });
  }

  const leave: { name: string; from: ConfState; want: string; gone: string[] }[] = [
    {
      name: "drops the outgoing half and removed members' progress",
      from: cs(["2", "3", "4"], [], ["1", "2", "3"], [], true),
      want: "voters=(2 3 4)",
      gone: ["1"],
    },
    {
      name: "turns learnersNext into learners",
      from: cs(["1", "2"], [], ["1", "2", "3"], ["3"]),
      want: "voters=(1 2) learners=(3)",
      gone: [],
    },
  ];
  for (const c of leave) {
    it(`leave: ${c.name}`, () => {
      const r = changer(c.from).leaveJoint();
      assert.equal(describeResult(r), c.want);
      for (const id of c.gone) assert.equal(r.progress.has(id), false, `${id} still tracked`);
      if (c.from.learnersNext.length > 0) {
        for (const id of c.from.learnersNext) assert.equal(r.progress.get(id)!.isLearner, true);
      }
    });
  }

  const refusals: { name: string; run: () => unknown; err: RegExp }[] = [
    {
      name: "entering when already joint",
      run: () => changer(cs(["1", "2"], [], ["1"])).enterJoint(false, ccs("v3")),
      err: /already joint/,
    },
    {
      name: "entering with no voters",
      run: () => changer(cs([])).enterJoint(false, ccs("v1")),
      err: /zero-voter/,
    },
    {
      name: "entering a configuration without incoming voters",
      run: () => changer(cs(["1", "2"])).enterJoint(false, ccs("r1 r2")),
      err: /removed all voters/,
    },
    {
      name: "leaving when not joint",
      run: () => changer(cs(["1", "2"])).leaveJoint(),
      err: /non-joint/,
    },
  ];
  for (const c of refusals) {
    it(`refuses: ${c.name}`, () => {
      assert.throws(c.run, (e: unknown) => e instanceof ConfChangeError && c.err.test(e.message));
    });
  }
});

describe("confchange/changer: restoreConfState and invariants", () => {
  it("round-trips a joint ConfState", () => {
    const from = cs(["1", "2"], ["5"], ["1", "2", "3"], ["3"], true);
    const r = restoreConfState(from, 7, 16, 0);
    assert.deepEqual(confStateOf(r.config), from);
    assert.equal(r.progress.get("5")!.isLearner, true);
    assert.equal(r.progress.get("3")!.isLearner, false, "learnersNext are voters until leaving");
  });

  it("rejects a node that is both voter and learner", () => {
    assert.throws(() => restoreConfState(cs(["1", "2"], ["2"]), 1, 16, 0), ConfChangeError);
  });

  it("rejects learnersNext outside a joint configuration", () => {
    assert.throws(() => restoreConfState(cs(["1"], [], [], ["2"]), 1, 16, 0), ConfChangeError);
  });

  it("rejects autoLeave outside a joint configuration", () => {
    const r = restoreConfState(cs(["1"]), 1, 16, 0);
    assert.throws(
      () => checkInvariants({ ...r.config, autoLeave: true }, r.progress),
      /autoLeave must be false/,
    );
  });

  it("rejects a member without progress", () => {
    const r = restoreConfState(cs(["1", "2"]), 1, 16, 0);
    r.progress.delete("2");
    assert.throws(() => checkInvariants(r.config, r.progress), /no progress for 2/);
  });
});

describe("confchange/codec: the conf-change entry encoding", () => {
  const roundTrips: { name: string; cc: ConfChange }[] = [
    { name: "leave joint (empty)", cc: { transition: "auto", changes: [], context: EMPTY_BYTES } },
    {
      name: "one change with context",
      cc: { transition: "auto", changes: ccs("v4"), context: enc("http://n4:2380") },
    },
    {
      name: "several changes, explicit",
      cc: {
        transition: "explicit",
        changes: ccs("v4 r1 l5"),
        context: new Uint8Array([0, 255, 16]),
      },
    },
    { name: "implicit", cc: { transition: "implicit", changes: ccs("l2"), context: EMPTY_BYTES } },
  ];
  for (const c of roundTrips) {
    it(`round trip: ${c.name}`, () =>
      assert.deepEqual(decodeConfChange(encodeConfChange(c.cc)), c.cc));
  }

  const malformed: { name: string; data: Uint8Array; err: RegExp }[] = [
    { name: "not JSON", data: enc("add-node 4"), err: /malformed conf change entry/ },
    { name: "invalid UTF-8", data: new Uint8Array([0xff, 0xfe]), err: /malformed/ },
    { name: "JSON null", data: enc("null"), err: /malformed conf change entry/ },
    { name: "a number", data: enc("42"), err: /malformed conf change entry/ },
    {
      name: "unknown transition",
      data: enc('{"t":"sudden","c":[],"x":""}'),
      err: /bad transition/,
    },
    { name: "changes not a list", data: enc('{"t":"auto","c":{},"x":""}'), err: /not a list/ },
    {
      name: "unknown change type",
      data: enc('{"t":"auto","c":[["add-witness","4"]],"x":""}'),
      err: /bad change/,
    },
    {
      name: "node id not a string",
      data: enc('{"t":"auto","c":[["add-node",4]],"x":""}'),
      err: /bad change/,
    },
    {
      name: "change of wrong arity",
      data: enc('{"t":"auto","c":[["add-node"]],"x":""}'),
      err: /bad change/,
    },
    { name: "missing context", data: enc('{"t":"auto","c":[]}'), err: /bad context/ },
    { name: "context not hex", data: enc('{"t":"auto","c":[],"x":"zz"}'), err: /hex/ },
    { name: "context of odd length", data: enc('{"t":"auto","c":[],"x":"abc"}'), err: /hex/ },
  ];
  for (const c of malformed) {
    it(`malformed: ${c.name}`, () => assert.throws(() => decodeConfChange(c.data), c.err));
  }

  const kinds: {
    name: string;
    cc: ConfChange;
    joint: boolean;
    autoLeave: boolean;
    leave: boolean;
  }[] = [
    {
      name: "auto, one change: simple",
      cc: { transition: "auto", changes: ccs("v2"), context: EMPTY_BYTES },
      joint: false,
      autoLeave: false,
      leave: false,
    },
    {
      name: "auto, two changes: joint, auto-leave",
      cc: { transition: "auto", changes: ccs("v2 v3"), context: EMPTY_BYTES },
      joint: true,
      autoLeave: true,
      leave: false,
    },
    {
      name: "implicit, one change: joint, auto-leave",
      cc: { transition: "implicit", changes: ccs("v2"), context: EMPTY_BYTES },
      joint: true,
      autoLeave: true,
      leave: false,
    },
    {
      name: "explicit: joint, no auto-leave",
      cc: { transition: "explicit", changes: ccs("v2 v3"), context: EMPTY_BYTES },
      joint: true,
      autoLeave: false,
      leave: false,
    },
    {
      name: "empty: leave joint",
      cc: { transition: "auto", changes: [], context: EMPTY_BYTES },
      joint: false,
      autoLeave: false,
      leave: true,
    },
  ];
  for (const c of kinds) {
    it(`kind: ${c.name}`, () => {
      if (!c.leave)
        assert.deepEqual(enterJointOf(c.cc), { joint: c.joint, autoLeave: c.autoLeave });
      assert.equal(leaveJointOf(c.cc), c.leave);
    });
  }
});
