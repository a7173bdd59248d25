/**
 * The membership policy (src/node/membership-policy.ts) as pure decisions over a view: quorum
 * after a change, a learner caught up, the choice of the most up-to-date voter, and the checks
 * on what is added, removed or promoted.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { NotLeaderError, isNexusError } from "../../src/errors/index.js";
import type { NexusErrorCode } from "../../src/errors/index.js";
import {
  checkAddable,
  checkCaughtUp,
  checkPromotable,
  checkQuorumAfter,
  checkRemovable,
  checkTransferTarget,
  chooseTransferTarget,
  mostUpToDateVoter,
  planChanges,
} from "../../src/node/membership-policy.js";
import type { MembershipView } from "../../src/node/membership-policy.js";

/** A leader's view ("a" leads) with progress, unless `leader: false`. */
function view(o: {
  voters?: string[];
  learners?: string[];
  outgoing?: string[];
  match?: Record<string, number>;
  silent?: string[];
  leader?: boolean;
  lastIndex?: number;
}): MembershipView {
  const match = o.match ?? {};
  const silent = new Set(o.silent ?? []);
  return {
    self: "a",
    leader: o.leader === false ? "b" : "a",
    leaderUrl: o.leader === false ? "http://b:1" : "http://a:1",
    lastIndex: o.lastIndex ?? 100,
    config: {
      voters: o.voters ?? ["a", "b", "c"],
      learners: o.learners ?? [],
      votersOutgoing: o.outgoing ?? [],
    },
    progress:
      o.leader === false
        ? undefined
        : new Map(Object.entries(match).map(([id, m]) => [id, { match: m }])),
    heardRecently: (id) => !silent.has(id),
    describe: (id) => `http://${id}:1 (${id})`,
  };
}

function refusedWith(code: NexusErrorCode): (e: unknown) => boolean {
  return (e) => {
    assert.ok(isNexusError(e, code), `want ${code}, got ${String(e)}`);
    return true;
  };
}

const neverProbed = async (): Promise<boolean> => {
  throw new Error("must not probe on the leader");
};

describe("mostUpToDateVoter", () => {
  for (const c of [
    { name: "highest match wins", match: { a: 9, b: 5, c: 7 }, want: "c" },
    { name: "ties go to the smaller id", match: { a: 9, b: 7, c: 7 }, want: "b" },
    { name: "never this node", match: { a: 100, b: 1, c: 0 }, want: "b" },
    { name: "a voter without progress counts as match 0", match: { a: 9, c: 0 }, want: "b" },
  ]) {
    it(c.name, () => assert.equal(mostUpToDateVoter(view({ match: c.match })), c.want));
  }
  it("skips ineligible voters", () => {
    const v = view({ match: { a: 9, b: 5, c: 7 } });
    assert.equal(
      mostUpToDateVoter(v, (id) => id !== "c"),
      "b",
    );
  });
  it("learners are never chosen", () => {
    const v = view({ voters: ["a", "b"], learners: ["c"], match: { a: 9, b: 1, c: 9 } });
    assert.equal(mostUpToDateVoter(v), "b");
  });
  it("undefined off the leader and with no other voter", () => {
    assert.equal(mostUpToDateVoter(view({ leader: false })), undefined);
    assert.equal(mostUpToDateVoter(view({ voters: ["a"], match: { a: 1 } })), undefined);
  });
});

describe("chooseTransferTarget / checkTransferTarget", () => {
  it("chooses the most up-to-date voter that answers", () => {
    const v = view({ match: { a: 9, b: 5, c: 7 }, silent: ["c"] });
    assert.equal(chooseTransferTarget(v), "b");
  });
  it("MEMBERSHIP_REFUSED when no other voter answers", () => {
    const v = view({ match: { a: 9, b: 5, c: 7 }, silent: ["b", "c"] });
    assert.throws(() => chooseTransferTarget(v), refusedWith("MEMBERSHIP_REFUSED"));
  });
  it("NOT_LEADER with the leader's URL off the leader", () => {
    assert.throws(
      () => chooseTransferTarget(view({ leader: false })),
      (e: unknown) => {
        assert.ok(e instanceof NotLeaderError, String(e));
        assert.equal(e.code, "NOT_LEADER");
        assert.equal(e.leaderUrl, "http://b:1");
        return true;
      },
    );
  });
  it("refuses a learner, a non-member and a silent voter; accepts an answering voter", () => {
    const v = view({ learners: ["d"], match: { a: 9, b: 5, c: 7, d: 9 }, silent: ["c"] });
    assert.throws(() => checkTransferTarget(v, "d", "http://d:1"), /is a learner/);
    assert.throws(() => checkTransferTarget(v, "x", "http://x:1"), /is not a member/);
    assert.throws(() => checkTransferTarget(v, "c", "http://c:1"), /does not answer/);
    checkTransferTarget(v, "b", "http://b:1");
    // Off the leader a named voter is not checked for answering (no progress known).
    checkTransferTarget(view({ leader: false, silent: ["c"] }), "c", "http://c:1");
  });
});

describe("checkCaughtUp", () => {
  const base = { voters: ["a", "b", "c"], learners: ["d"], lastIndex: 100 };
  for (const c of [
    { name: "within the lag: allowed", match: 95, max: 10, silent: [], ok: true },
    { name: "exactly at the lag: allowed", match: 90, max: 10, silent: [], ok: true },
    { name: "past the lag: refused", match: 89, max: 10, silent: [], ok: false },
    { name: "silent: refused even when caught up", match: 100, max: 10, silent: ["d"], ok: false },
    { name: "default lag is 1000", match: 100 - 1000, max: undefined, silent: [], ok: true },
    {
      name: "default lag 1001 behind: refused",
      match: 100 - 1001,
      max: undefined,
      silent: [],
      ok: false,
    },
  ]) {
    it(c.name, () => {
      const v = view({ ...base, match: { a: 100, d: c.match }, silent: c.silent });
      if (c.ok) checkCaughtUp(v, "d", "http://d:1", c.max);
      else
        assert.throws(
          () => checkCaughtUp(v, "d", "http://d:1", c.max),
          refusedWith("MEMBERSHIP_REFUSED"),
        );
    });
  }
  it("a learner without progress is refused", () => {
    const v = view({ ...base, match: { a: 100 } });
    assert.throws(() => checkCaughtUp(v, "d", "http://d:1", 10), /too far/);
  });
  it("a bad maxLagEntries is INVALID_ARGUMENT", () => {
    const v = view({ ...base, match: { a: 100, d: 100 } });
    assert.throws(() => checkCaughtUp(v, "d", "http://d:1", -1), refusedWith("INVALID_ARGUMENT"));
    assert.throws(() => checkCaughtUp(v, "d", "http://d:1", 1.5), refusedWith("INVALID_ARGUMENT"));
  });
  it("off the leader: NotLeaderError carrying the leader's URL", () => {
    assert.throws(
      () => checkCaughtUp(view({ ...base, leader: false }), "d", "http://d:1", 10),
      (e: unknown) => e instanceof NotLeaderError && e.leaderUrl === "http://b:1",
    );
  });
});

describe("checkQuorumAfter", () => {
  it("on the leader: silent voters beyond a minority refuse the change, naming them", async () => {
    const v = view({ voters: ["a", "b", "c"], match: { a: 1, b: 1, c: 1 }, silent: ["b", "c"] });
    await assert.rejects(
      checkQuorumAfter(v, new Set(["a", "b", "c"]), new Set(), neverProbed),
      (e: unknown) => {
        assert.ok(isNexusError(e, "MEMBERSHIP_REFUSED"));
        assert.match(e.message, /only 1 of 3 voters would answer, fewer than the 2/);
        assert.match(e.message, /http:\/\/b:1 \(b\), http:\/\/c:1 \(c\)/);
        return true;
      },
    );
  });
  it("on the leader: one silent voter of three is fine", async () => {
    const v = view({ match: { a: 1, b: 1, c: 1 }, silent: ["c"] });
    await checkQuorumAfter(v, new Set(["a", "b", "c"]), new Set(), neverProbed);
  });
  it("fresh members (just probed) count as answering", async () => {
    const v = view({ voters: ["a", "b"], match: { a: 1, b: 1 }, silent: ["b"] });
    await checkQuorumAfter(v, new Set(["a", "b", "d"]), new Set(["d"]), neverProbed);
    await assert.rejects(
      checkQuorumAfter(v, new Set(["a", "b", "d"]), new Set(), neverProbed),
      refusedWith("MEMBERSHIP_REFUSED"),
    );
  });
  it("off the leader: this node and the leader answer; others are probed", async () => {
    const probed: string[] = [];
    const v = view({ voters: ["a", "b", "c", "d", "e"], leader: false });
    const probe = async (id: string): Promise<boolean> => {
      probed.push(id);
      return id === "c";
    };
    await checkQuorumAfter(v, new Set(["a", "b", "c", "d", "e"]), new Set(), probe);
    assert.deepEqual(probed.sort(), ["c", "d", "e"]);
    await assert.rejects(
      checkQuorumAfter(v, new Set(["a", "b", "c", "d", "e"]), new Set(), async () => false),
      refusedWith("MEMBERSHIP_REFUSED"),
    );
  });
});

describe("checks on what is added, removed, promoted", () => {
  const v = view({ voters: ["a", "b", "c"], learners: ["d"] });
  const joint = view({ voters: ["a", "b", "e"], outgoing: ["a", "b", "c"] });
  for (const c of [
    { name: "add a voter", f: () => checkAddable(v, "b", "u", false), want: /already a member/ },
    { name: "add a learner again", f: () => checkAddable(v, "d", "u", false), want: /promoteNode/ },
    {
      name: "add during a joint change",
      f: () => checkAddable(joint, "x", "u", false),
      want: /joint/,
    },
    {
      name: "add an outgoing voter",
      f: () => checkAddable(joint, "c", "u", false),
      want: /already/,
    },
    { name: "remove a non-member", f: () => checkRemovable(v, "x", "u"), want: /not a member/ },
    {
      name: "remove the last voter",
      f: () => checkRemovable(view({ voters: ["a"] }), "a", "u"),
      want: /last voter/,
    },
    {
      name: "remove during a joint change",
      f: () => checkRemovable(joint, "a", "u"),
      want: /joint/,
    },
    { name: "promote a voter", f: () => checkPromotable(v, "b", "u"), want: /already a voter/ },
    { name: "promote a non-member", f: () => checkPromotable(v, "x", "u"), want: /not a member/ },
  ]) {
    it(`refused: ${c.name}`, () =>
      assert.throws(c.f, (e: unknown) => {
        assert.ok(isNexusError(e, "MEMBERSHIP_REFUSED"), String(e));
        assert.match(e.message, c.want);
        return true;
      }));
  }
  it("allowed: a new member, a learner removed, a learner promoted", () => {
    checkAddable(v, "x", "u", false);
    checkRemovable(v, "d", "u");
    checkPromotable(v, "d", "u");
  });
});

describe("planChanges", () => {
  const v = view({ voters: ["a", "b", "c"], learners: ["d"] });
  it("adds and removes, giving the voters after", () => {
    const plan = planChanges(
      v,
      [
        { id: "e", url: "ue" },
        { id: "d", url: "ud" },
      ],
      [{ id: "c", url: "uc" }],
    );
    assert.deepEqual(
      plan.changes.map((c) => `${c.type}:${c.nodeId}`),
      ["add-node:e", "add-node:d", "remove-node:c"],
    );
    assert.deepEqual([...plan.votersAfter].sort(), ["a", "b", "d", "e"]);
  });
  for (const c of [
    { name: "nothing given", add: [], remove: [], code: "INVALID_ARGUMENT" },
    {
      name: "removing a node being added",
      add: [{ id: "e", url: "ue" }],
      remove: [{ id: "e", url: "ue" }],
      code: "MEMBERSHIP_REFUSED",
    },
    {
      name: "adding a voter",
      add: [{ id: "a", url: "ua" }],
      remove: [],
      code: "MEMBERSHIP_REFUSED",
    },
    {
      name: "removing a non-member",
      add: [],
      remove: [{ id: "x", url: "ux" }],
      code: "MEMBERSHIP_REFUSED",
    },
    {
      name: "no voter left",
      add: [],
      remove: ["a", "b", "c"].map((id) => ({ id, url: `u${id}` })),
      code: "MEMBERSHIP_REFUSED",
    },
  ] satisfies {
    name: string;
    add: { id: string; url: string }[];
    remove: { id: string; url: string }[];
    code: NexusErrorCode;
  }[]) {
    it(`refused: ${c.name}`, () =>
      assert.throws(() => planChanges(v, c.add, c.remove), refusedWith(c.code)));
  }
  it("a node named twice in add is INVALID_ARGUMENT", () => {
    assert.throws(
      () =>
        planChanges(
          v,
          [
            { id: "e", url: "ue" },
            { id: "e", url: "ue" },
          ],
          [],
        ),
      refusedWith("INVALID_ARGUMENT"),
    );
  });
});
