/**
 * The public API's calls and events (src/node/replicator.ts): every call takes an AbortSignal,
 * and a Replicator reports leader changes and membership changes as typed events.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { createReplicator, nodeIdOf } from "../../src/index.js";
import type { LeaderChange, MembershipChange, Replicator } from "../../src/index.js";
import { MemoryStore } from "../../src/store/memory/memory-store.js";
import { until } from "./helpers.js";
import { freePort } from "../free-port.js";
import { tempDir } from "../temp-dir.js";

async function node(urls: string[], url: string, root: string): Promise<Replicator> {
  return createReplicator({
    nodeUrl: url,
    clusterUrls: urls,
    store: new MemoryStore(),
    logDir: join(root, "logs"),
    snapDir: join(root, "snap"),
    heartbeatTickMs: 20,
    electionTickMs: 200,
    replTimeoutMs: 5000,
  });
}

function isAbort(reason: unknown): (e: unknown) => boolean {
  return (e) => {
    assert.equal(e, reason, `rejected with the signal's reason, got ${String(e)}`);
    return true;
  };
}

describe("the public API: AbortSignal and events", () => {
  it("a single node: leader-change on election, membership-change on a change; aborted calls change nothing", async () => {
    const root = tempDir("nexus-api-");
    const url = `http://127.0.0.1:${await freePort()}`;
    const r = await node([url], url, root);
    const leaders: LeaderChange[] = [];
    const changes: MembershipChange[] = [];
    // Listeners registered before start() are kept.
    r.on("leader-change", (e) => leaders.push(e));
    const offMembers = r.on("membership-change", (e) => changes.push(e));
    try {
      await r.start();
      await until(() => leaders.some((e) => e.leader !== ""), 10_000, "a leader-change event");
      const first = leaders.find((e) => e.leader !== "")!;
      assert.equal(first.leader, nodeIdOf(url));
      assert.equal(first.leaderUrl, url);
      assert.ok(first.term >= 1);

      // An already aborted signal: rejected with its reason, nothing written or changed.
      const ac = new AbortController();
      const reason = new Error("the caller gave up");
      ac.abort(reason);
      const s = { signal: ac.signal };
      await assert.rejects(r.save("set k 1", s), isAbort(reason));
      await assert.rejects(r.load("get k", s), isAbort(reason));
      await assert.rejects(r.checkConsistency(s), isAbort(reason));
      const learner = `http://127.0.0.1:${await freePort()}`;
      await assert.rejects(
        r.addMember(learner, { learner: true, probe: false, ...s }),
        isAbort(reason),
      );
      await assert.rejects(r.removeMember(learner, s), isAbort(reason));
      await assert.rejects(r.promoteLearner(learner, s), isAbort(reason));
      await assert.rejects(r.changeMembers({ add: [learner], probe: false }, s), isAbort(reason));
      await assert.rejects(r.transferLeadership(url, s), isAbort(reason));
      await assert.rejects(r.listMembersWithProgress(s), isAbort(reason));
      assert.equal(new TextDecoder().decode(await r.load("get k")), "");
      assert.equal(r.listMembers().members.length, 1);

      // A membership change is reported once applied.
      await r.addMember(learner, { learner: true, probe: false });
      await until(
        () => changes.some((e) => e.learners.includes(nodeIdOf(learner))),
        5000,
        "a membership-change event naming the learner",
      );
      const ev = changes.find((e) => e.learners.includes(nodeIdOf(learner)))!;
      assert.deepEqual(ev.voters, [nodeIdOf(url)]);
      assert.equal(ev.joint, false);
      assert.ok(ev.index > 0);
      // Unsubscribed: no more events.
      offMembers();
      const n = changes.length;
      await r.removeMember(learner);
      await until(() => r.listMembers().members.length === 1, 5000, "the learner removed");
      assert.equal(changes.length, n);
      // A listener that throws does not disturb the node.
      r.on("membership-change", () => {
        throw new Error("a listener bug");
      });
      await r.addMember(learner, { learner: true, probe: false });
      assert.equal(new TextDecoder().decode(await r.save("set k 2")), "OK");
    } finally {
      await r.stop();
    }
  });

  it("aborting a call that waits for a leader ends it at once", async () => {
    const root = tempDir("nexus-api-");
    // Two members, one running: no leader is ever elected, so calls wait (retrying NO_LEADER).
    const urls = [`http://127.0.0.1:${await freePort()}`, `http://127.0.0.1:${await freePort()}`];
    const r = await node(urls, urls[0]!, root);
    try {
      await r.start();
      for (const call of [
        (signal: AbortSignal) => r.save("set k 1", { signal }),
        (signal: AbortSignal) => r.load("get k", { signal }),
        (signal: AbortSignal) => r.checkConsistency({ signal, timeoutMs: 60_000 }),
      ]) {
        const ac = new AbortController();
        const started = Date.now();
        const p = call(ac.signal);
        setTimeout(() => ac.abort(), 100);
        await assert.rejects(p, (e: unknown) => e instanceof Error && e.name === "AbortError");
        // replTimeoutMs is 5 s: the abort, not the deadline, ended it.
        assert.ok(Date.now() - started < 3000, `ended after ${Date.now() - started} ms`);
      }
      assert.equal(r.status().leader, "", "still no leader: the calls were waiting for one");
    } finally {
      await r.stop();
    }
  });
});
