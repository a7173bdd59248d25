import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import {
  ConsistencyTracker,
  OutcomeHash,
  decodeCheckReport,
  encodeCheckReport,
} from "../../src/node/consistency.js";
import type { CheckReport } from "../../src/node/consistency.js";
import { isNexusError } from "../../src/errors/index.js";
import { until, walCluster } from "./helpers.js";

const D1 = "1".repeat(64);
const D2 = "2".repeat(64);
const O1 = "a".repeat(64);
const O2 = "b".repeat(64);
const members = (...ids: string[]): Map<string, string> =>
  new Map(ids.map((id) => [id, `http://${id}`]));
const rep = (
  node: string,
  digest: string,
  outcomes: string | null,
  position = 10,
): CheckReport => ({
  node,
  check: 10,
  position,
  digest,
  outcomes,
});

describe("consistency verdicts", () => {
  for (const c of [
    {
      name: "all agree",
      ids: ["a", "b", "c"],
      reports: [rep("a", D1, O1), rep("b", D1, O1), rep("c", D1, O1)],
      want: { a: "ok", b: "ok", c: "ok" },
      complete: true,
    },
    {
      name: "one store digest differs",
      ids: ["a", "b", "c"],
      reports: [rep("a", D1, O1), rep("b", D2, O1), rep("c", D1, O1)],
      want: { a: "ok", b: "diverged", c: "ok" },
      complete: true,
    },
    {
      name: "same store digest, but one applied an entry with another outcome",
      ids: ["a", "b", "c"],
      reports: [rep("a", D1, O1), rep("b", D1, O1), rep("c", D1, O2)],
      want: { a: "ok", b: "ok", c: "diverged" },
      complete: true,
    },
    {
      name: "an outcome hash missing after a restart is not compared",
      ids: ["a", "b", "c"],
      reports: [rep("a", D1, O1), rep("b", D1, null), rep("c", D1, O1)],
      want: { a: "ok", b: "ok", c: "ok" },
      complete: true,
    },
    {
      name: "one against one with the third missing: undecided",
      ids: ["a", "b", "c"],
      reports: [rep("a", D1, O1), rep("b", D2, O1)],
      want: { a: "undecided", b: "undecided", c: "pending" },
      complete: false,
    },
    {
      name: "two agreeing of three decide while the third is missing",
      ids: ["a", "b", "c"],
      reports: [rep("a", D1, O1), rep("b", D1, O1)],
      want: { a: "ok", b: "ok", c: "pending" },
      complete: false,
    },
    {
      name: "a digest not taken at the check's index is a divergence",
      ids: ["a", "b", "c"],
      reports: [rep("a", D1, O1), rep("b", D1, O1), rep("c", D1, O1, 11)],
      want: { a: "ok", b: "ok", c: "diverged" },
      complete: true,
    },
    {
      name: "two against two of four: nobody is blamed",
      ids: ["a", "b", "c", "d"],
      reports: [rep("a", D1, O1), rep("b", D1, O1), rep("c", D2, O1), rep("d", D2, O1)],
      want: { a: "undecided", b: "undecided", c: "undecided", d: "undecided" },
      complete: true,
    },
    {
      name: "a report from a non-member is ignored",
      ids: ["a", "b", "c"],
      reports: [rep("a", D1, O1), rep("b", D1, O1), rep("c", D1, O1), rep("z", D2, O2)],
      want: { a: "ok", b: "ok", c: "ok" },
      complete: true,
    },
  ]) {
    it(c.name, () => {
      const t = new ConsistencyTracker();
      t.recordCheck(10, members(...c.ids));
      for (const r of c.reports) t.recordReport(r);
      const round = t.round(10)!;
      assert.deepEqual(Object.fromEntries(round.members.map((m) => [m.id, m.verdict])), c.want);
      assert.equal(round.complete, c.complete);
      for (const m of round.members) if (m.verdict === "diverged") assert.notEqual(m.reason, "");
    });
  }

  it("a report of an unknown check is ignored", () => {
    const t = new ConsistencyTracker();
    assert.equal(t.recordReport(rep("a", D1, O1)), undefined);
  });

  it("reports round-trip through their entry encoding; malformed ones are refused", () => {
    const r = rep("a", D1, null);
    assert.deepEqual(decodeCheckReport(encodeCheckReport(r)), r);
    for (const bad of [
      "",
      "{}",
      '{"v":1,"node":"a","check":1,"position":1,"digest":"xyz","outcomes":null}',
    ]) {
      assert.throws(
        () => decodeCheckReport(new TextEncoder().encode(bad)),
        (e: unknown) => isNexusError(e, "CORRUPTED"),
      );
    }
  });

  it("outcome hashes: equal runs hash equal, any difference shows, a partial run hashes null", () => {
    const enc = new TextEncoder();
    const run = (h: OutcomeHash, last: string): string | null => {
      h.add(1, { ok: true, data: enc.encode("x") });
      h.add(2, { ok: false, error: last });
      return h.take();
    };
    const a = run(new OutcomeHash(true), "no such table");
    assert.equal(a, run(new OutcomeHash(true), "no such table"));
    assert.notEqual(a, run(new OutcomeHash(true), "syntax error"));
    const partial = new OutcomeHash(false);
    assert.equal(run(partial, "no such table"), null, "opened on a store that was not empty");
    assert.equal(run(partial, "no such table"), a, "the next run is whole");
    const restored = new OutcomeHash(true);
    restored.invalidate();
    assert.equal(run(restored, "no such table"), null);
  });
});

describe("consistency checks in the runtime", () => {
  it("a healthy cluster agrees; a store changed behind the cluster's back is DIVERGED, only that replica, and it stops serving", async () => {
    const c = await walCluster();
    try {
      await until(() => c.leader() !== undefined, 10_000, "a leader");
      const enc = new TextEncoder();
      for (let i = 0; i < 5; i++) await c.leader()!.propose(enc.encode(`set k${i} v${i}`));
      const first = await c.leader()!.proposeCheck();
      const ok = await c.leader()!.waitCheck(first, 10_000);
      assert.ok(ok?.complete, "every member reported");
      assert.deepEqual(
        ok.members.map((m) => m.verdict),
        ["ok", "ok", "ok"],
      );
      // Change one follower's data behind the cluster's back.
      const victim = c.ids.find((id) => c.nodes.get(id) !== c.leader())!;
      await until(() => c.stores.get(victim)!.data.get("k4") === "v4", 5000, "the victim applied");
      c.stores.get(victim)!.data.set("k1", "tampered");
      // Each node reports its own divergence as an event, once.
      const events: { id: string; index: number }[] = [];
      for (const id of c.ids) {
        c.nodes.get(id)!.events.on("divergence", (e) => events.push({ id, index: e.index }));
      }
      const second = await c.leader()!.proposeCheck();
      const bad = await c.leader()!.waitCheck(second, 10_000);
      assert.deepEqual(
        Object.fromEntries(bad!.members.map((m) => [m.id, m.verdict])),
        Object.fromEntries(c.ids.map((id) => [id, id === victim ? "diverged" : "ok"])),
      );
      await until(
        () => c.nodes.get(victim)!.divergence() !== undefined,
        5000,
        "the victim to know",
      );
      assert.equal(c.nodes.get(victim)!.divergence()!.index, second);
      assert.deepEqual(events, [{ id: victim, index: second }]);
      for (const id of c.ids)
        if (id !== victim) assert.equal(c.nodes.get(id)!.divergence(), undefined);
      // Report mode: it keeps applying.
      await c.leader()!.propose(enc.encode("set after 1"));
      await until(() => c.stores.get(victim)!.data.get("after") === "1", 5000, "applying goes on");
    } finally {
      await c.stopAll();
    }
  });

  it("stop mode: a diverged replica stops applying and remembers it across a restart", async () => {
    const c = await walCluster({ onDivergence: "stop" });
    try {
      await until(() => c.leader() !== undefined, 10_000, "a leader");
      const enc = new TextEncoder();
      await c.leader()!.propose(enc.encode("set k v"));
      const victim = c.ids.find((id) => c.nodes.get(id) !== c.leader())!;
      await until(() => c.stores.get(victim)!.data.get("k") === "v", 5000, "the victim applied");
      c.stores.get(victim)!.data.set("k", "tampered");
      const at = await c.leader()!.proposeCheck();
      await c.leader()!.waitCheck(at, 10_000);
      await until(() => c.nodes.get(victim)!.applyHalted() !== undefined, 5000, "halted");
      await c.leader()!.propose(enc.encode("set later 1"));
      await until(
        () => c.ids.every((id) => id === victim || c.stores.get(id)!.data.get("later") === "1"),
        5000,
        "the others apply",
      );
      assert.equal(c.stores.get(victim)!.data.get("later"), undefined, "the victim does not");
      assert.ok(existsSync(join(c.snapDirOf(victim), "DIVERGED")));
      await c.nodes.get(victim)!.stop();
      const again = await c.open(victim);
      assert.equal(again.divergence()?.index, at, "remembered");
      assert.match(again.applyHalted() ?? "", /diverged/);
    } finally {
      await c.stopAll();
    }
  });

  it("a diverged leader hands leadership to a replica that agrees with the majority", async () => {
    const c = await walCluster();
    try {
      await until(() => c.leader() !== undefined, 10_000, "a leader");
      const enc = new TextEncoder();
      for (let i = 0; i < 3; i++) await c.leader()!.propose(enc.encode(`set k${i} v${i}`));
      const old = c.leader()!;
      const victim = c.ids.find((id) => c.nodes.get(id) === old)!;
      c.stores.get(victim)!.data.set("k1", "tampered");
      const at = await old.proposeCheck();
      await old.waitCheck(at, 10_000);
      await until(() => c.leader() !== undefined && c.leader() !== old, 10_000, "another leader");
      assert.ok(old.divergence() !== undefined);
      assert.equal(c.leader()!.divergence(), undefined);
    } finally {
      await c.stopAll();
    }
  });
});
