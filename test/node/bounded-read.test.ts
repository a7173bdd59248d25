/**
 * Reads with a staleness bound: the tracker of the leader's commit index and of when a leader
 * was last heard (leader-freshness.ts), and the decision to serve, refuse or fall back
 * (bounded-read.ts). Pure: explicit clocks, hand-made messages.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { isNexusError } from "../../src/errors/index.js";
import { LeaderFreshness, majorityHeardAtMs } from "../../src/node/leader-freshness.js";
import {
  checkStalenessBound,
  servesWithinBound,
  staleBoundOfArgs,
  staleReason,
} from "../../src/node/bounded-read.js";
import { createMessage } from "../../src/raft/types.js";
import type { LeaderCommitHeard, Message } from "../../src/raft/types.js";
import { Network, ids } from "../raft/network.js";
import { NexusError } from "../../src/errors/index.js";
import { loadOutcomeOf } from "../../src/ops/measured.js";

const snapAt = (index: number, term: number) =>
  createMessage({
    type: "snap",
    from: "a",
    to: "b",
    term,
    snapshot: {
      metadata: {
        index,
        term,
        confState: {
          voters: ["a", "b"],
          learners: [],
          votersOutgoing: [],
          learnersNext: [],
          autoLeave: false,
        },
      },
      data: new Uint8Array(),
    },
  });

describe("LeaderFreshness: the leader's commit index and when a leader was heard", () => {
  it("knows nothing before a leader is heard", () => {
    assert.deepEqual(new LeaderFreshness().staleness(0, 1000), {
      lagEntries: 0,
      sinceLeaderMs: undefined,
    });
  });

  const heard = (term: number, leaderCommit: number, count: number): LeaderCommitHeard => ({
    term,
    lead: "a",
    leaderCommit,
    count,
  });
  const hbAt = (term: number) =>
    createMessage({ type: "heartbeat", from: "a", to: "b", term, commit: 0 });

  it("a hearing of the current leader carries its commit and refreshes when it was heard", () => {
    const f = new LeaderFreshness();
    f.observe(hbAt(2), heard(2, 40, 1), 2, 1000);
    assert.equal(f.highestLeaderCommit(), 40);
    assert.deepEqual(f.staleness(30, 1250), { lagEntries: 10, sinceLeaderMs: 250 });
  });

  it("an idle leader's heartbeats (same commit, new count) keep refreshing it", () => {
    // Before: only appends counted, so an idle cluster's followers went stale after the bound.
    const f = new LeaderFreshness();
    f.observe(hbAt(2), heard(2, 7, 1), 2, 1000);
    f.observe(hbAt(2), heard(2, 7, 2), 2, 5000);
    assert.deepEqual(f.staleness(7, 5100), { lagEntries: 0, sinceLeaderMs: 100 });
  });

  it("a follower held behind hears the leader's real commit: it is behind, not fresh", () => {
    // Before: a follower held in snapshot or probe state, sent only heartbeats with commit = its
    // own match, looked 0 entries behind.
    const f = new LeaderFreshness();
    f.observe(hbAt(2), heard(2, 500, 1), 2, 1000);
    assert.deepEqual(f.staleness(35, 1000), { lagEntries: 465, sinceLeaderMs: 0 });
  });

  it("the same hearing seen again (another message stepped after it) does not refresh", () => {
    const f = new LeaderFreshness();
    f.observe(hbAt(2), heard(2, 7, 1), 2, 1000);
    f.observe(
      createMessage({ type: "vote", from: "c", to: "b", term: 2 }),
      heard(2, 7, 1),
      2,
      3000,
    );
    assert.deepEqual(f.staleness(7, 3000), { lagEntries: 0, sinceLeaderMs: 2000 });
  });

  it("nothing heard (a heartbeat of a peer that predates leaderCommit) counts for nothing", () => {
    const f = new LeaderFreshness();
    f.observe(hbAt(2), undefined, 2, 1000);
    assert.deepEqual(f.staleness(0, 1000), { lagEntries: 0, sinceLeaderMs: undefined });
  });

  it("a snapshot's index is committed, but a snapshot is not hearing the leader", () => {
    const f = new LeaderFreshness();
    f.observe(snapAt(50, 2), undefined, 2, 1000);
    assert.equal(f.highestLeaderCommit(), 50);
    assert.deepEqual(f.staleness(30, 1250), { lagEntries: 20, sinceLeaderMs: undefined });
  });

  it("ignores a hearing of another term (the core's record of a deposed leader)", () => {
    const f = new LeaderFreshness();
    f.observe(hbAt(1), heard(1, 9, 1), 2, 1000);
    f.observe(snapAt(60, 1), undefined, 2, 1000);
    assert.deepEqual(f.staleness(0, 1100), { lagEntries: 0, sinceLeaderMs: undefined });
  });

  it("keeps the highest commit seen (a new leader's lower commit does not lower it)", () => {
    const f = new LeaderFreshness();
    f.observe(hbAt(2), heard(2, 40, 1), 2, 1000);
    f.observe(hbAt(3), heard(3, 12, 2), 3, 1100);
    assert.equal(f.highestLeaderCommit(), 40);
    assert.deepEqual(f.staleness(12, 1100), { lagEntries: 28, sinceLeaderMs: 0 });
    assert.deepEqual(f.staleness(45, 1100).lagEntries, 0, "not behind once applied past it");
  });
});

describe("majorityHeardAtMs: when a leader last heard from a quorum", () => {
  const heard = new Map([
    ["b", 900],
    ["c", 500],
    ["d", 100],
  ]);
  const at = (id: string) => heard.get(id);
  for (const c of [
    { name: "alone: now", voters: ["a"], want: 1000 },
    { name: "3 voters: the more recent of the others", voters: ["a", "b", "c"], want: 900 },
    { name: "5 voters: the third newest", voters: ["a", "b", "c", "d", "e"], want: 500 },
    { name: "never heard from enough: unknown", voters: ["a", "e", "f"], want: undefined },
    { name: "an empty (outgoing) half: now", voters: [], want: 1000 },
  ]) {
    it(c.name, () => assert.equal(majorityHeardAtMs(c.voters, "a", at, 1000), c.want));
  }
});

describe("bounded reads: serve, refuse (TOO_STALE) or fall back", () => {
  const fresh = { lagEntries: 3, sinceLeaderMs: 80 };
  for (const c of [
    { name: "entries within", b: { maxLagEntries: 3 }, s: fresh, stale: false },
    { name: "entries beyond", b: { maxLagEntries: 2 }, s: fresh, stale: true },
    {
      name: "time within, nothing left to apply",
      b: { maxLagMs: 80 },
      s: { lagEntries: 0, sinceLeaderMs: 80 },
      stale: false,
    },
    // Before: a node heard from just now but 3 entries from applying what the leader had
    // committed was served under a time bound alone (a slow apply aged the data without limit).
    { name: "time within, entries left to apply", b: { maxLagMs: 80 }, s: fresh, stale: true },
    {
      name: "time and entries within",
      b: { maxLagEntries: 3, maxLagMs: 80 },
      s: fresh,
      stale: false,
    },
    { name: "time beyond", b: { maxLagMs: 79 }, s: fresh, stale: true },
    { name: "both, time beyond", b: { maxLagEntries: 10, maxLagMs: 50 }, s: fresh, stale: true },
    {
      name: "no leader ever heard, time bound",
      b: { maxLagMs: 1000 },
      s: { lagEntries: 0, sinceLeaderMs: undefined },
      stale: true,
    },
    // A partitioned node sees no lag: the last commit index it heard is only trusted for an
    // election timeout.
    {
      name: "entries bound alone, leader silent past the election timeout",
      b: { maxLagEntries: 100 },
      s: { lagEntries: 0, sinceLeaderMs: 1001 },
      stale: true,
    },
    {
      name: "entries bound alone, leader heard within the election timeout",
      b: { maxLagEntries: 100 },
      s: { lagEntries: 0, sinceLeaderMs: 1000 },
      stale: false,
    },
  ]) {
    it(c.name, () => assert.equal(staleReason(c.b, c.s, 1000) !== undefined, c.stale));
  }

  it("refuses beyond the bound with TOO_STALE, saying by how much", () => {
    assert.throws(
      () => servesWithinBound({ maxLagEntries: 1 }, fresh, 1000),
      (e: unknown) => isNexusError(e, "TOO_STALE") && /3 entries behind/.test(String(e)),
    );
  });

  it("falls back (false: go through ReadIndex) when the caller asks", () => {
    assert.equal(
      servesWithinBound({ maxLagEntries: 1, onStale: "linearizable" }, fresh, 1000),
      false,
    );
    assert.equal(servesWithinBound({ maxLagEntries: 3 }, fresh, 1000), true);
  });

  for (const c of [
    { name: "no bound at all", b: undefined },
    { name: "an empty bound", b: {} },
    { name: "a negative entry bound", b: { maxLagEntries: -1 } },
    { name: "a zero time bound", b: { maxLagMs: 0 } },
    { name: "a fractional time bound", b: { maxLagMs: 1.5 } },
    { name: "an unknown fallback", b: { maxLagMs: 5, onStale: "local" as "refuse" } },
  ]) {
    it(`refuses ${c.name} (INVALID_ARGUMENT)`, () =>
      assert.throws(
        () => checkStalenessBound(c.b),
        (e: unknown) => isNexusError(e, "INVALID_ARGUMENT"),
      ));
  }

  it("reads the bound from a Load's args", () => {
    assert.deepEqual(
      staleBoundOfArgs({
        consistency: "bounded",
        "max-lag-entries": "5",
        "max-lag-ms": "200",
        "on-stale": "linearizable",
      }),
      { maxLagEntries: 5, maxLagMs: 200, onStale: "linearizable" },
    );
    assert.throws(
      () => staleBoundOfArgs({ "max-lag-ms": "soon" }),
      (e: unknown) => isNexusError(e, "INVALID_ARGUMENT"),
    );
    assert.throws(
      () => staleBoundOfArgs({}),
      (e: unknown) => isNexusError(e, "INVALID_ARGUMENT"),
    );
  });
});

describe("a refused bounded read in the metrics", () => {
  it("is counted as too_stale, not as an error", () => {
    assert.equal(loadOutcomeOf(new NexusError("TOO_STALE", "behind")), "too_stale");
  });
});

describe("bounded reads across leader changes (the core's network, freshness as the node keeps it)", () => {
  it("a new leader that has not committed in its term does not make a follower look fresh", () => {
    const net = new Network(ids(3), { preVote: false, checkQuorum: false });
    net.campaign("1");
    net.propose("1", "a");
    net.propose("1", "b");
    // 3 misses the last write; 2 gets it but not the news that it is committed.
    net.isolate("3");
    net.filter = (m) =>
      m.from === "1" &&
      m.to === "2" &&
      (m.type === "heartbeat" || (m.type === "app" && m.entries.length === 0))
        ? undefined
        : m;
    net.propose("1", "c");
    const committed = net.node("1").basicStatus().commit;
    // 1 dies; 3 comes back, and its answers to 2 are lost: 2 never commits in its term.
    net.isolate("1");
    net.reconnect("3");
    net.filter = (m) => (m.from === "3" && m.to === "2" && m.type !== "vote-resp" ? undefined : m);
    net.campaign("2");
    assert.equal(net.node("2").raft.state, "leader");
    const f = new LeaderFreshness();
    let now = 0;
    for (let t = 0; t < 5; t++) {
      now += 50;
      net.node("2").tick();
      net.settle();
      const n3 = net.node("3");
      const term = n3.basicStatus().term;
      f.observe(
        { type: "heartbeat", term, snapshot: undefined },
        n3.leaderCommitHeard(),
        term,
        now,
      );
    }
    const applied3 = net.node("3").basicStatus().commit;
    assert.ok(applied3 < committed, `3 lacks committed entries (${applied3} < ${committed})`);
    assert.notEqual(
      staleReason({ maxLagMs: 100 }, f.staleness(applied3, now), 1000),
      undefined,
      `a maxLagMs=100 read served on 3 without entries ${applied3 + 1}..${committed}`,
    );
  });

  it("a follower cut off with a deposed leader ages by the leader's last contact with a majority", () => {
    const net = new Network(ids(5), { preVote: true, checkQuorum: true });
    net.campaign("1");
    net.propose("1", "a");
    const tickMs = 100;
    const maxLagMs = 150;
    let now = 0;
    // What each node heard from whom (ms), and the leader's appends and heartbeats stamped with
    // how long ago it heard from a majority, as RaftNode.withQuorumAge does.
    const heard = new Map<string, Map<string, number>>();
    let lastTo3: Message | undefined;
    net.filter = (m) => {
      const mine = heard.get(m.to) ?? new Map<string, number>();
      heard.set(m.to, mine);
      mine.set(m.from, now);
      if (m.leaderCommit === undefined) return m;
      const at = majorityHeardAtMs(ids(5), m.from, (id) => heard.get(m.from)?.get(id), now);
      const out = { ...m, leaderQuorumAgeMs: at === undefined ? 2 ** 32 - 1 : now - at };
      if (m.to === "3") lastTo3 = out;
      return out;
    };
    net.tickNode("1", 3);
    // {1, 3} | {2, 4, 5}
    for (const a of ["1", "3"]) for (const b of ["2", "4", "5"]) net.cutLink(a, b);
    const f = new LeaderFreshness();
    let served: string | undefined;
    const committedAt = new Map<number, number>();
    for (let t = 0; t < 100 && served === undefined; t++) {
      now += tickMs;
      net.tick();
      const n3 = net.node("3");
      const term = n3.basicStatus().term;
      if (lastTo3 !== undefined) f.observe(lastTo3, n3.leaderCommitHeard(), term, now);
      const newLeader = ["2", "4", "5"].find((id) => net.node(id).raft.state === "leader");
      if (newLeader === undefined) continue;
      net.propose(newLeader, `w${t}`);
      const committed = net.node(newLeader).basicStatus().commit;
      for (let i = 1; i <= committed; i++) if (!committedAt.has(i)) committedAt.set(i, now);
      const applied3 = n3.basicStatus().commit;
      const missingSince = committedAt.get(applied3 + 1);
      if (
        missingSince !== undefined &&
        now - missingSince > maxLagMs &&
        staleReason({ maxLagMs }, f.staleness(applied3, now), 1000) === undefined
      ) {
        served = `t=${now} ms: 3 serves a maxLagMs=${maxLagMs} read at ${applied3}, missing ${applied3 + 1} committed by ${newLeader} at t=${missingSince} ms`;
      }
    }
    assert.ok(committedAt.size > 2, "the majority side elected a leader and committed");
    assert.equal(served, undefined, served);
  });
});
