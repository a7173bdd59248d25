/**
 * Runtime membership at the library level: several createReplicator() nodes in one process over
 * HTTP/2 on loopback, each with its own WAL, snapshots and MemoryStore (kept across a restart, as
 * a database would be). Joint changes (including a leader that dies between entering and leaving
 * the joint configuration), membership across restarts after snapshots and compaction, a node
 * bootstrapped by mistake, both orders of adding a node, and refused changes.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createReplicator } from "../../src/node/replicator.js";
import type { Replicator } from "../../src/node/replicator.js";
import type { NodeState } from "../../src/node/options.js";
import { MemoryStore } from "../../src/store/memory/memory-store.js";
import { NotLeaderError, isNexusError } from "../../src/errors/index.js";
import { nodeIdOf } from "../../src/node/node-id.js";
import { until } from "./helpers.js";
import { freePort } from "../free-port.js";

const roots: string[] = [];
after(() => {
  for (const d of roots) rmSync(d, { recursive: true, force: true });
});

const enc = new TextEncoder();
const dec = new TextDecoder();
/**
 * The leave-joint pause (src/node/test-hooks.ts) every node of these tests is given: a leader
 * that appended the entry leaving a joint configuration freezes this long (0: not at all).
 */
const hook = { pauseMs: 0 };

interface NodeOptions {
  readonly clusterUrls: readonly string[];
  readonly nodeState?: NodeState;
}

/** Nodes by URL: each keeps its folder and store across stop() and start(). */
class Cluster {
  readonly root = mkdtempSync(join(tmpdir(), "nexus-members-"));
  readonly stores = new Map<string, MemoryStore>();
  readonly reps = new Map<string, Replicator>();
  readonly options = new Map<string, NodeOptions>();
  /** Warnings logged by each node, and the fatal errors that stopped one. */
  readonly warnings = new Map<string, string[]>();
  readonly fatal = new Map<string, Error>();

  constructor(
    readonly urls: string[],
    readonly extra: { snapshotCount?: number; snapshotCatchUpEntries?: number } = {},
  ) {
    roots.push(this.root);
  }

  static async create(
    n: number,
    extra?: { snapshotCount?: number; snapshotCatchUpEntries?: number },
  ): Promise<Cluster> {
    const urls: string[] = [];
    for (let i = 0; i < n; i++) urls.push(`http://127.0.0.1:${await freePort()}`);
    const c = new Cluster(urls, extra);
    for (const u of urls) c.options.set(u, { clusterUrls: urls });
    return c;
  }

  /** A new URL for a node that is not an initial member (started with nodeState new). */
  async newUrl(): Promise<string> {
    const u = `http://127.0.0.1:${await freePort()}`;
    this.options.set(u, { clusterUrls: this.urls, nodeState: "new" });
    return u;
  }

  async start(url: string): Promise<Replicator> {
    const o = this.options.get(url)!;
    if (!this.stores.has(url)) this.stores.set(url, new MemoryStore());
    const warnings = this.warnings.get(url) ?? [];
    this.warnings.set(url, warnings);
    const r = createReplicator(
      {
        nodeUrl: url,
        clusterUrls: o.clusterUrls,
        ...(o.nodeState === undefined ? {} : { nodeState: o.nodeState }),
        store: this.stores.get(url)!,
        logDir: join(this.root, "logs"),
        snapDir: join(this.root, "snap"),
        // Short enough for quick tests, long enough that a busy CI machine does not cause elections.
        heartbeatTickMs: 50,
        electionTickMs: 500,
        replTimeoutMs: 5000,
        snapshotCount: this.extra.snapshotCount ?? 10_000,
        snapshotCatchUpEntries: this.extra.snapshotCatchUpEntries ?? 5_000,
        logger: {
          debug() {},
          info() {},
          // A NexusLogger level: (fields, msg) or (msg); the message is what the tests look for.
          warn: (a: string | Readonly<Record<string, unknown>>, msg?: string) =>
            warnings.push(typeof a === "string" ? a : (msg ?? "")),
          error() {},
        },
        onFatal: (e) => this.fatal.set(url, e),
      },
      { testHooks: { pauseBeforeLeaveJointMs: () => hook.pauseMs } },
    );
    this.reps.set(url, r);
    await r.start();
    return r;
  }

  async stop(url: string): Promise<void> {
    const r = this.reps.get(url);
    this.reps.delete(url);
    await r?.stop();
  }

  async stopAll(): Promise<void> {
    for (const u of [...this.reps.keys()]) await this.stop(u).catch(() => undefined);
  }

  rep(url: string): Replicator {
    const r = this.reps.get(url);
    assert.ok(r !== undefined, `${url} is not running`);
    return r;
  }

  running(): Replicator[] {
    return [...this.reps.entries()].filter(([u]) => !this.fatal.has(u)).map(([, r]) => r);
  }

  leaderUrl(): string | undefined {
    for (const [u, r] of this.reps) {
      if (this.fatal.has(u)) continue;
      try {
        if (r.status().role === "leader") return u;
      } catch {
        // stopped meanwhile
      }
    }
    return undefined;
  }

  async waitLeader(what = "a leader"): Promise<string> {
    await until(() => this.leaderUrl() !== undefined, 15_000, what);
    return this.leaderUrl()!;
  }

  /** The member URLs as `url` sees them, sorted, with learners marked. */
  view(url: string): string[] {
    return this.rep(url)
      .listMembers()
      .members.map((m) => (m.role === "learner" ? `${m.url} (learner)` : m.url))
      .sort();
  }

  /** Waits until every given node sees exactly `want` (sorted URLs, learners marked). */
  async waitView(urls: readonly string[], want: readonly string[], what: string): Promise<void> {
    const sorted = [...want].sort();
    await until(
      () =>
        urls.every((u) => {
          try {
            return JSON.stringify(this.view(u)) === JSON.stringify(sorted);
          } catch {
            return false;
          }
        }),
      15_000,
      `${what}: want ${JSON.stringify(sorted)}, have ${JSON.stringify(urls.map((u) => this.safeView(u)))}`,
    );
  }

  private safeView(u: string): string[] | string {
    try {
      return this.view(u);
    } catch (err) {
      return (err as Error).message;
    }
  }
}

async function dump(r: Replicator): Promise<Record<string, string>> {
  return JSON.parse(
    dec.decode(await r.load(enc.encode("dump"), { consistency: "local" })),
  ) as Record<string, string>;
}

/** Writes `set w<i> <i>` through the running members in turn; records every acknowledged one. */
function startWriter(
  c: Cluster,
  skip: ReadonlySet<Replicator> = new Set(),
): { acked: string[]; stop: () => Promise<string[]> } {
  const acked: string[] = [];
  let stopped = false;
  let i = 0;
  const loop = (async () => {
    while (!stopped) {
      // Through the nodes that know a leader (a node not yet added knows none).
      const nodes = c.running().filter((r) => {
        if (skip.has(r)) return false;
        try {
          return r.status().leader !== "";
        } catch {
          return false;
        }
      });
      const r = nodes[i % Math.max(1, nodes.length)];
      const key = `w${i++}`;
      if (r === undefined) {
        await new Promise((res) => setTimeout(res, 10));
        continue;
      }
      try {
        await r.save(enc.encode(`set ${key} ${i}`));
        acked.push(key);
      } catch {
        // Not acknowledged (no leader, stopped, unknown outcome): not counted.
        await new Promise((res) => setTimeout(res, 5));
      }
    }
  })();
  return {
    acked,
    stop: async () => {
      stopped = true;
      await loop;
      return acked;
    },
  };
}

/** Waits until every node in `urls` has applied what the leader committed, then checks keys. */
async function assertAllPresent(c: Cluster, urls: readonly string[], keys: readonly string[]) {
  const leader = c.rep(await c.waitLeader());
  const commit = leader.status().commit;
  for (const u of urls) {
    await until(() => c.rep(u).status().applied >= commit, 15_000, `${u} to apply ${commit}`);
    const d = await dump(c.rep(u));
    const missing = keys.filter((k) => d[k] === undefined);
    assert.deepEqual(missing, [], `${u} is missing acknowledged writes`);
  }
}

describe("joint membership changes (library)", () => {
  it("replacing a replica in one joint change: the outgoing member keeps its URL and vote until the joint configuration is left", async () => {
    const c = await Cluster.create(3);
    try {
      await Promise.all(c.urls.map((u) => c.start(u)));
      const lead = await c.waitLeader();
      await c.rep(lead).save(enc.encode("set before 1"));
      const [a, b, old] = [lead, ...c.urls.filter((u) => u !== lead)] as [string, string, string];
      const fresh = await c.newUrl();
      await c.start(fresh);
      // Freeze the leader for a moment right after it appended the entry leaving the joint
      // configuration, to look at the cluster while it is joint.
      hook.pauseMs = 400;
      const change = c.rep(lead).changeMembers({ add: [fresh], remove: [old] });
      try {
        await until(
          () => c.warnings.get(lead)!.some((w) => w.startsWith("test hook")),
          10_000,
          "the leader to reach the leave-joint entry",
        );
      } finally {
        hook.pauseMs = 0;
      }
      const during = c.rep(lead).listMembers();
      assert.equal(during.joint, true);
      // No other change until the joint configuration is left (asked where it is known).
      await until(() => c.rep(b).listMembers().joint, 10_000, "b to apply the joint entry");
      await assert.rejects(c.rep(b).removeMember(a), (e: unknown) => {
        assert.ok(isNexusError(e, "MEMBERSHIP_REFUSED"), String(e));
        assert.match(e.message, /a joint membership change is in progress/);
        return true;
      });
      // Both halves are listed with their URLs: the outgoing one still votes.
      assert.deepEqual(during.members.map((m) => m.url).sort(), [a, b, old, fresh].sort());
      await change;
      const members = [a, b, fresh];
      await c.waitView([...members, old], members, "the final configuration everywhere");
      assert.equal(c.rep(lead).listMembers().joint, false);
      assert.equal((await dump(c.rep(fresh)))["before"], "1");
      // The removed replica takes no part any more; the new configuration commits without it.
      await c.stop(old);
      assert.equal(dec.decode(await c.rep(fresh).save(enc.encode("set after 2"))), "OK");
    } finally {
      hook.pauseMs = 0;
      await c.stopAll();
    }
  });

  /**
   * The leader dies between entering and leaving a joint change that adds `fresh` and removes
   * `old`; the survivors finish it; the old leader comes back with the joint entry in its log but
   * not known committed (a commit-only hard state is not written on its own) and must learn the
   * outcome from whoever leads then. `freshLeads`: the new member leads when it comes back (it is
   * named only by that entry, which the old leader has not applied).
   */
  async function leaderDiesInJointChange(freshLeads: boolean): Promise<void> {
    const c = await Cluster.create(3);
    let writer: ReturnType<typeof startWriter> | undefined;
    try {
      await Promise.all(c.urls.map((u) => c.start(u)));
      const lead = await c.waitLeader();
      const [b, old] = c.urls.filter((u) => u !== lead) as [string, string];
      const fresh = await c.newUrl();
      await c.start(fresh);
      // A removed member may never hear that its removal was committed: not written through.
      const removed = new Set<Replicator>();
      const w = startWriter(c, removed);
      writer = w;
      await until(() => w.acked.length >= 20, 10_000, "writes before the change");
      hook.pauseMs = 60_000;
      const change = c.rep(lead).changeMembers({ add: [fresh], remove: [old] });
      change.catch(() => undefined);
      try {
        await until(
          () => c.warnings.get(lead)!.some((w) => w.startsWith("test hook")),
          10_000,
          "the leader to reach the leave-joint entry",
        );
      } finally {
        hook.pauseMs = 0;
      }
      assert.equal(c.rep(lead).listMembers().joint, true);
      // The leader dies there: the leave-joint entry was neither persisted nor sent.
      await c.stop(lead);
      removed.add(c.rep(old));
      await assert.rejects(change, (e: unknown) => isNexusError(e, "STOPPED"));
      const survivors = [b, old, fresh];
      const before = w.acked.length;
      const next = await c.waitLeader("a new leader among the survivors");
      assert.notEqual(next, lead);
      // The joint entry was committed, so the only way out is forward: the new configuration.
      await c.waitView(
        survivors,
        [lead, b, fresh],
        "the survivors to leave the joint configuration",
      );
      for (const u of survivors) assert.equal(c.rep(u).listMembers().joint, false, u);
      await until(() => w.acked.length >= before + 20, 15_000, "writes after the failure");
      // The old leader comes back with what it had on disk and learns the outcome.
      await c.stop(old);
      if (freshLeads) {
        await c.rep(await c.waitLeader()).transferLeadership(fresh);
        assert.equal(c.leaderUrl(), fresh);
      }
      await c.start(lead);
      await c.waitView([lead, b, fresh], [lead, b, fresh], "the restarted leader to catch up");
      const acked = await w.stop();
      await assertAllPresent(c, [lead, b, fresh], acked);
    } finally {
      hook.pauseMs = 0;
      await writer?.stop();
      await c.stopAll();
    }
  }

  it("a leader that dies between entering and leaving a joint change: the survivors finish it, no acknowledged write is lost", async () => {
    await leaderDiesInJointChange(false);
  });

  it("the same, and the member the joint change added leads when the old leader comes back: the old leader hears it and catches up", async () => {
    await leaderDiesInJointChange(true);
  });
});

describe("promotion through a joint change (library)", () => {
  it("a learner that caught up replaces a voter in one joint change; one that lags is refused", async () => {
    const c = await Cluster.create(3);
    try {
      await Promise.all(c.urls.map((u) => c.start(u)));
      const lead = await c.waitLeader();
      // Whoever leads now: promotion must be asked of the leader.
      const via = (): Replicator => c.rep(c.leaderUrl() ?? lead);
      const old = c.urls.find((u) => u !== lead)!;
      const learner = await c.newUrl();
      await c.start(learner);
      await via().addMember(learner, { learner: true });
      for (let i = 0; i < 10; i++) await via().save(enc.encode(`set k${i} ${i}`));
      // Stopped, it lags: the replacement is refused and nothing changes.
      await c.stop(learner);
      for (let i = 10; i < 30; i++) await via().save(enc.encode(`set k${i} ${i}`));
      await assert.rejects(
        via().changeMembers({ add: [learner], remove: [old], maxLagEntries: 5 }),
        (e: unknown) => {
          assert.ok(isNexusError(e, "MEMBERSHIP_REFUSED"), String(e));
          assert.match(e.message, /is \d+ entries behind the leader \(at most 5 allowed\)/);
          return true;
        },
      );
      const voters = c.urls;
      await c.waitView([lead], [...voters, `${learner} (learner)`], "nothing changed");
      // Back and caught up: one joint change promotes it and removes `old`.
      await c.start(learner);
      await until(
        () =>
          via()
            .listMembers()
            .members.some((m) => m.url === learner && m.progress?.lag === 0),
        10_000,
        "the learner to catch up",
      );
      await via().changeMembers({ add: [learner], remove: [old], maxLagEntries: 5 });
      const now = [...voters.filter((u) => u !== old), learner];
      await c.waitView(now, now, "the learner promoted in place of the old voter");
      assert.equal((await dump(c.rep(learner)))["k29"], "29");
    } finally {
      await c.stopAll();
    }
  });
});

describe("membership is persisted (library)", () => {
  it("after learners, joint and single changes, snapshots and compaction, a whole-cluster restart comes back with the current membership, not the command line's", async () => {
    const c = await Cluster.create(3, { snapshotCount: 5, snapshotCatchUpEntries: 2 });
    try {
      const [a, b, cc] = c.urls as [string, string, string];
      await Promise.all(c.urls.map((u) => c.start(u)));
      const lead = await c.waitLeader();
      const d = await c.newUrl();
      const learner = await c.newUrl();
      const f = await c.newUrl();
      for (const u of [d, learner, f]) await c.start(u);
      const via = (): Replicator => c.rep(c.leaderUrl() ?? lead);
      await via().addMember(d);
      await via().addMember(learner, { learner: true });
      await via().changeMembers({ add: [f], remove: [b] });
      const want = [a, cc, d, f, `${learner} (learner)`];
      await c.waitView([a, cc, d, f, learner], want, "the changed membership");
      await c.stop(b);
      // Enough writes for several snapshots: every conf change is now behind the snapshot and
      // compacted away, so only the snapshots carry the membership and the URLs.
      for (let i = 0; i < 40; i++) await via().save(enc.encode(`set k${i} ${i}`));
      const live = [a, cc, d, f, learner];
      await assertAllPresent(c, live, ["k39"]);
      await c.stopAll();
      // The same command lines as before: a and c with the initial cluster's URLs (b among
      // them), the others as new nodes.
      await Promise.all(live.map((u) => c.start(u)));
      await c.waitLeader("a leader after the restart");
      await c.waitView(live, want, "the membership after the restart");
      assert.equal(c.rep(learner).status().role, "follower");
      assert.notEqual(c.leaderUrl(), learner);
      assert.equal(dec.decode(await c.rep(learner).save(enc.encode("set after 1"))), "OK");
      await assertAllPresent(c, live, ["k0", "k39", "after"]);
      // b's URL is on every command line but it is no longer a member.
      for (const u of live) {
        assert.ok(
          !c
            .rep(u)
            .listMembers()
            .members.some((m) => m.id === nodeIdOf(b)),
          u,
        );
      }
    } finally {
      await c.stopAll();
    }
  });
});

describe("joining (library)", () => {
  it("either order: a node added before it runs (probe off) catches up once launched; one launched first is added with the probe", async () => {
    const c = await Cluster.create(3);
    try {
      await Promise.all(c.urls.map((u) => c.start(u)));
      const lead = await c.waitLeader();
      await c.rep(lead).save(enc.encode("set x 1"));
      const later = await c.newUrl();
      // With the probe (the default) a node that does not run yet is refused, nothing changed.
      await assert.rejects(c.rep(lead).addMember(later), (e: unknown) => {
        assert.ok(isNexusError(e, "MEMBERSHIP_REFUSED"), String(e));
        assert.match(e.message, /does not answer .*--no-probe/);
        return true;
      });
      assert.equal(c.rep(lead).listMembers().members.length, 3);
      // Add first, launch afterwards.
      await c.rep(lead).addMember(later, { probe: false });
      await c.start(later);
      await c.waitView([...c.urls, later], [...c.urls, later], "four members");
      await until(
        () => c.rep(later).status().applied >= c.rep(lead).status().commit,
        10_000,
        "catch up",
      );
      assert.equal((await dump(c.rep(later)))["x"], "1");
      // Launch first, add afterwards (through a follower: it is forwarded to the leader).
      const first = await c.newUrl();
      await c.start(first);
      const follower = c.urls.find((u) => u !== c.leaderUrl())!;
      await c.rep(follower).addMember(first, { learner: true });
      await c.waitView(
        [...c.urls, later, first],
        [...c.urls, later, `${first} (learner)`],
        "a learner too",
      );
      await until(
        () => c.rep(first).status().applied >= c.rep(lead).status().commit,
        10_000,
        "catch up",
      );
      assert.equal((await dump(c.rep(first)))["x"], "1");
    } finally {
      await c.stopAll();
    }
  });

  it("a node that bootstrapped by mistake (its own URL among an existing cluster's) stops with a clear error once added, and joins after a clean start as new", async () => {
    const c = await Cluster.create(3);
    try {
      await Promise.all(c.urls.map((u) => c.start(u)));
      const lead = await c.waitLeader();
      await c.rep(lead).save(enc.encode("set x 1"));
      const wrong = `http://127.0.0.1:${await freePort()}`;
      c.options.set(wrong, { clusterUrls: [...c.urls, wrong] });
      await c.start(wrong);
      await c.rep(lead).addMember(wrong);
      await until(() => c.fatal.has(wrong), 10_000, "the mis-bootstrapped node to stop");
      const err = c.fatal.get(wrong)!;
      assert.ok(isNexusError(err, "BAD_CONFIG"), String(err));
      assert.match(err.message, /bootstrapped a cluster of its own/);
      assert.match(err.message, /-nexus-node-state new/);
      // The cluster goes on with 3 of its 4 voters.
      assert.equal(dec.decode(await c.rep(lead).save(enc.encode("set y 2"))), "OK");
      // Cleaned up and started as a new node, it catches up.
      await c.stop(wrong);
      c.fatal.delete(wrong);
      const dir = join(c.root, "logs", `node_${BigInt(`0x${nodeIdOf(wrong)}`).toString()}`);
      rmSync(dir, { recursive: true, force: true });
      rmSync(join(c.root, "snap", `node_${BigInt(`0x${nodeIdOf(wrong)}`).toString()}`), {
        recursive: true,
        force: true,
      });
      c.stores.delete(wrong);
      c.options.set(wrong, { clusterUrls: [...c.urls, wrong], nodeState: "new" });
      await c.start(wrong);
      await until(
        () => c.rep(wrong).status().applied >= c.rep(lead).status().commit,
        10_000,
        "the node to catch up",
      );
      const d = await dump(c.rep(wrong));
      assert.equal(d["x"], "1");
      assert.equal(d["y"], "2");
      assert.equal(c.fatal.has(wrong), false);
    } finally {
      await c.stopAll();
    }
  });
});

describe("refused membership changes (library)", () => {
  it("the last voter cannot be removed", async () => {
    const c = await Cluster.create(1);
    try {
      const [only] = c.urls as [string];
      await c.start(only);
      await c.waitLeader();
      await assert.rejects(c.rep(only).removeMember(only), (e: unknown) => {
        assert.ok(isNexusError(e, "MEMBERSHIP_REFUSED"), String(e));
        assert.match(e.message, /cannot remove the last voter; nothing changed/);
        return true;
      });
      await assert.rejects(c.rep(only).changeMembers({ remove: [only] }), (e: unknown) =>
        isNexusError(e, "MEMBERSHIP_REFUSED"),
      );
      assert.deepEqual(c.view(only), [only]);
      assert.equal(dec.decode(await c.rep(only).save(enc.encode("set x 1"))), "OK");
    } finally {
      await c.stopAll();
    }
  });

  it("changes that would leave fewer answering voters than a quorum are refused on the leader and on a follower, nothing changed", async () => {
    const c = await Cluster.create(3);
    try {
      await Promise.all(c.urls.map((u) => c.start(u)));
      const lead = await c.waitLeader();
      const [f1, down] = c.urls.filter((u) => u !== lead) as [string, string];
      await c.stop(down);
      const before = c.view(lead);
      const refusal = (what: RegExp) => (e: unknown) => {
        assert.ok(isNexusError(e, "MEMBERSHIP_REFUSED"), String(e));
        assert.match(e.message, what);
        return true;
      };
      // Wait until the leader notices that `down` is silent (one election timeout).
      await until(
        () =>
          c
            .rep(lead)
            .listMembers()
            .members.some((m) => m.url === down && m.progress?.reachable === false),
        5000,
        "the leader to see the stopped node as unreachable",
      );
      for (const at of [lead, f1]) {
        await assert.rejects(
          c.rep(at).removeMember(at === lead ? f1 : lead),
          refusal(/only 1 of 2 voters would answer.*not answering: http:\/\/127\.0\.0\.1:\d+ /),
        );
        const unlaunched = `http://127.0.0.1:${await freePort()}`;
        await assert.rejects(
          c.rep(at).addMember(unlaunched, { probe: false }),
          refusal(/only 2 of 4 voters would answer/),
        );
      }
      // A learner does not change the quorum: it may be added.
      const l = await c.newUrl();
      await c.start(l);
      await c.rep(lead).addMember(l, { learner: true });
      await c.waitView([lead, f1], [...before, `${l} (learner)`], "the learner added");
      // Each of these is refused with a reason, and changes nothing.
      await assert.rejects(
        c.rep(lead).addMember(l),
        refusal(/already a member \(a learner; make it a voter with promoteNode\)/),
      );
      // Only the leader knows a learner's lag: a follower refuses with the leader's URL, which
      // the gRPC server passes on to clients (NotLeaderError.leaderUrl).
      for (const call of [
        () => c.rep(f1).promoteLearner(l),
        () => c.rep(f1).transferLeadership(),
      ]) {
        await assert.rejects(call(), (e: unknown) => {
          assert.ok(e instanceof NotLeaderError, String(e));
          assert.equal(e.code, "NOT_LEADER");
          assert.equal(e.leaderUrl, lead);
          return true;
        });
      }
      await assert.rejects(
        c.rep(lead).promoteLearner(f1),
        refusal(/is not a learner \(it is already a voter\)/),
      );
      await assert.rejects(
        c.rep(lead).removeMember(`http://127.0.0.1:1`),
        refusal(/is not a member/),
      );
      await assert.rejects(c.rep(lead).addMember(f1), refusal(/already a member/));
      await assert.rejects(
        c.rep(lead).transferLeadership(l),
        refusal(/is a learner; only a voter can lead/),
      );
      await assert.rejects(
        c.rep(lead).transferLeadership(down),
        refusal(/does not answer the leader/),
      );
      await assert.rejects(
        c.rep(lead).changeMembers({ remove: [f1] }),
        refusal(/only 1 of 2 voters would answer/),
      );
      assert.deepEqual(c.view(lead), [...before, `${l} (learner)`].sort());
      // Removing the silent voter leaves 2 of 2 answering: allowed.
      await c.rep(lead).removeMember(down);
      await c.waitView([lead, f1, l], [lead, f1, `${l} (learner)`], "the silent voter removed");
    } finally {
      await c.stopAll();
    }
  });
});
