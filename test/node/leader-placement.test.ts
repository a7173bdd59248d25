/**
 * Leader placement by priority: the pure rule (who is chosen, when, and why it never flaps), then
 * three real replicators over HTTP/2 where the node with the highest priority ends up leading,
 * keeps leading, and gets leadership back after a restart.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { LeaderPlacement } from "../../src/node/leader-placement.js";
import type { PlacementView } from "../../src/node/leader-placement.js";
import type { MemberInfo } from "../../src/node/replicator-api.js";
import { createReplicator } from "../../src/node/replicator.js";
import type { Replicator } from "../../src/node/replicator.js";
import { MemoryStore } from "../../src/store/memory/memory-store.js";
import { isNexusError } from "../../src/errors/index.js";
import { freePort } from "../free-port.js";
import { until } from "./helpers.js";

function fakeView(o: {
  leader?: boolean;
  members: MemberInfo[];
  priorities: Record<string, number>;
}): PlacementView & { transfers: string[] } {
  const transfers: string[] = [];
  return {
    transfers,
    isLeader: () => o.leader ?? true,
    members: () => o.members,
    priorityOf: (id) => o.priorities[id],
    transfer: (to) => void transfers.push(to),
  };
}

const follower = (id: string, lag = 0, reachable = true): MemberInfo => ({
  id,
  url: `http://${id}:1`,
  role: "follower",
  progress: { reachable, match: 100 - lag, lag },
});
const self: MemberInfo = { id: "a", url: "http://a:1", role: "leader" };

describe("leader placement: the rule", () => {
  it("hands leadership to the highest caught-up voter above it, after it held for stableChecks", () => {
    const v = fakeView({
      members: [self, follower("b"), follower("c"), follower("d", 500)],
      priorities: { b: 5, c: 9, d: 20 },
    });
    const p = new LeaderPlacement(v, { selfId: "a", selfPriority: 1, stableChecks: 3 });
    p.check();
    p.check();
    assert.deepEqual(v.transfers, [], "moved before the candidate held for three checks");
    p.check();
    // d has the highest priority but lags 500 entries: c, the highest caught-up one.
    assert.deepEqual(v.transfers, ["c"]);
  });

  it("never moves to an equal or lower priority, an unreachable voter, a learner or a silent peer", () => {
    const v = fakeView({
      members: [
        self,
        follower("b"),
        follower("c", 0, false),
        { ...follower("d"), role: "learner" },
        follower("e"),
      ],
      priorities: { b: 3, c: 9, d: 9 },
    });
    const p = new LeaderPlacement(v, { selfId: "a", selfPriority: 3, stableChecks: 1 });
    for (let i = 0; i < 10; i++) p.check();
    assert.deepEqual(v.transfers, []);
  });

  it("starts over when the candidate drops out, and waits after a hand-over that did not happen", () => {
    const members = [self, follower("b")];
    const v = fakeView({ members, priorities: { b: 9 } });
    const p = new LeaderPlacement(v, {
      selfId: "a",
      selfPriority: 0,
      stableChecks: 2,
      backoffChecks: 3,
    });
    p.check();
    members[1] = follower("b", 0, false);
    p.check();
    members[1] = follower("b");
    p.check();
    assert.deepEqual(v.transfers, [], "a candidate that dropped out kept its streak");
    p.check();
    assert.deepEqual(v.transfers, ["b"]);
    // Still leader (the transfer did not happen): three checks of rest, then two to qualify.
    for (let i = 0; i < 4; i++) p.check();
    assert.deepEqual(v.transfers, ["b"]);
    p.check();
    assert.deepEqual(v.transfers, ["b", "b"]);
  });

  it("does nothing on a follower", () => {
    const v = fakeView({ leader: false, members: [self, follower("b")], priorities: { b: 9 } });
    const p = new LeaderPlacement(v, { selfId: "a", selfPriority: 0, stableChecks: 1 });
    for (let i = 0; i < 5; i++) p.check();
    assert.deepEqual(v.transfers, []);
  });
});

describe("leader placement: three replicators", () => {
  const root = mkdtempSync(join(tmpdir(), "nexus-placement-"));
  after(() => rmSync(root, { recursive: true, force: true }));

  it("the highest priority leads, stays leader, and leads again after a restart", async () => {
    const urls = await Promise.all(
      [1, 2, 3].map(async () => `http://127.0.0.1:${await freePort()}`),
    );
    const stores = urls.map(() => new MemoryStore());
    const make = (i: number): Replicator =>
      createReplicator({
        nodeUrl: urls[i]!,
        clusterUrls: urls,
        store: stores[i]!,
        logDir: join(root, `n${i}`, "logs"),
        snapDir: join(root, `n${i}`, "snap"),
        heartbeatTickMs: 20,
        electionTickMs: 200,
        leaderPriority: [1, 2, 7][i]!,
      });
    const reps = [0, 1, 2].map(make);
    const leaderIs = (i: number): boolean => reps[i]!.status().role === "leader";
    try {
      await Promise.all(reps.map((r) => r.start()));
      await until(() => leaderIs(2), 20_000, "node 3 (priority 7) leading");
      // It stays: over 3 s (15 election timeouts) leadership never leaves node 3.
      const t0 = performance.now();
      while (performance.now() - t0 < 3000) {
        assert.ok(leaderIs(2) && !leaderIs(0) && !leaderIs(1), "leadership left node 3");
        await new Promise((r) => setTimeout(r, 50));
      }
      await reps[2]!.stop();
      await until(() => leaderIs(0) || leaderIs(1), 20_000, "another leader");
      reps[2] = make(2);
      await reps[2].start();
      await until(() => leaderIs(2), 20_000, "node 3 leading again");
    } finally {
      for (const r of reps) await r.stop().catch(() => undefined);
    }
  });

  it("a priority out of range is refused", () => {
    assert.throws(
      () =>
        createReplicator({
          nodeUrl: "http://127.0.0.1:9021",
          clusterUrls: ["http://127.0.0.1:9021"],
          store: new MemoryStore(),
          leaderPriority: 1001,
        }),
      (e: unknown) => isNexusError(e, "BAD_CONFIG"),
    );
  });
});
