/**
 * Log replication (Raft §5.3): the consistency check, log matching, conflict truncation, fast
 * backtracking, and flow control (probe / replicate states, in-flight window, message size).
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { RawNode } from "../../src/raft/raw-node.js";
import type { Message } from "../../src/raft/types.js";
import { Network, ids } from "./network.js";
import { Solo, ackOf, enc, entry, msg, ofType, storageWithLog, termsOf } from "./helpers.js";

const PLAIN = { preVote: false, checkQuorum: false } as const;

function logTerms(n: RawNode): number[] {
  return termsOf(n.raft.raftLog.allEntries());
}

/** Repeats `t` n times. */
function rep(t: number, n: number): number[] {
  return Array.from({ length: n }, () => t);
}

describe("§5.3 log replication", () => {
  it("§5.3: committed entries are applied on every node in the same order", () => {
    const net = new Network(ids(5), PLAIN);
    net.campaign("1");
    const want: string[] = [];
    for (let i = 0; i < 20; i++) {
      const via = String((i % 5) + 1); // followers forward their proposals to the leader
      net.propose(via, `e${i}`);
      want.push(`e${i}`);
    }
    for (const id of ids(5)) assert.deepEqual(net.appliedData(id), want, `node ${id}`);
  });

  it("§5.3: an entry is committed once a majority of voters stores it, not before", () => {
    const net = new Network(ids(5), PLAIN);
    net.campaign("1");
    net.isolate("3");
    net.isolate("4");
    net.isolate("5");
    net.propose("1", "x");
    const li = net.node("1").raft.raftLog.lastIndex();
    assert.equal(net.node("1").raft.raftLog.committed, li - 1, "2 of 5 copies: not committed");
    assert.deepEqual(net.appliedData("1"), []);
    net.reconnect("3");
    net.tick(1); // the leader retries on the next heartbeat round
    assert.equal(net.node("1").raft.raftLog.committed, li, "3 of 5 copies: committed");
    assert.deepEqual(net.appliedData("1"), ["x"]);
  });

  it("§5.3: a follower refuses an append whose previous entry does not match", () => {
    // The follower's log: 1@1 2@1 3@2.
    const cases: { name: string; index: number; logTerm: number; reject: boolean }[] = [
      { name: "match at the last entry", index: 3, logTerm: 2, reject: false },
      { name: "match in the middle", index: 2, logTerm: 1, reject: false },
      { name: "term mismatch", index: 3, logTerm: 3, reject: true },
      { name: "missing previous entry", index: 5, logTerm: 2, reject: true },
    ];
    for (const c of cases) {
      const s = new Solo("2", storageWithLog(ids(3), [1, 1, 2]), PLAIN);
      const out = s.stepAll(
        msg({
          type: "app",
          from: "1",
          to: "2",
          term: 2,
          index: c.index,
          logTerm: c.logTerm,
          entries: [entry(c.index + 1, 2, "new")],
        }),
      );
      const resp = ofType(out.msgs, "app-resp");
      assert.equal(resp.length, 1, c.name);
      assert.equal(resp[0]!.reject, c.reject, c.name);
      assert.equal(s.raft.raftLog.lastIndex(), c.reject ? 3 : c.index + 1, c.name);
    }
  });

  it("§5.3: an append acknowledgement waits for persistence (persistedMessages)", () => {
    const s = new Solo("2", storageWithLog(ids(3), [1]), PLAIN);
    s.node.step(
      msg({
        type: "app",
        from: "1",
        to: "2",
        term: 1,
        index: 1,
        logTerm: 1,
        entries: [entry(2, 1)],
      }),
    );
    const rd = s.node.ready();
    assert.deepEqual(ofType(rd.messages, "app-resp"), []);
    assert.deepEqual(
      ofType(rd.persistedMessages, "app-resp").map((m) => m.index),
      [2],
    );
    assert.equal(rd.entries.length, 1);
    assert.equal(rd.mustSync, true);
    s.handle(rd);
  });

  it("§5.3 (Figure 7): every follower's log, however divergent, ends up equal to the leader's", () => {
    // The leader of term 8 and six followers in the situations of the paper's Figure 7.
    const leaderLog = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
    const followers: Record<string, number[]> = {
      a: [1, 1, 1, 4, 4, 5, 5, 6, 6], // missing one entry
      b: [1, 1, 1, 4], // missing many
      c: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6], // an extra uncommitted entry
      d: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7], // extra entries of a later term
      e: [1, 1, 1, 4, 4, 4, 4], // missing and extra
      f: [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3], // a leader of terms 2 and 3 that never committed
    };
    const names = Object.keys(followers);
    const all = ["l", ...names];
    const net = new Network(all, PLAIN);
    net.setNode("l", storageWithLog(all, leaderLog, { term: 7, commit: 3 }), PLAIN);
    for (const n of names) {
      const terms = followers[n]!;
      net.setNode(n, storageWithLog(all, terms, { term: Math.max(...terms), commit: 3 }), PLAIN);
    }
    net.campaign("l");
    assert.equal(net.leader(), "l");
    assert.equal(net.node("l").raft.term, 8);
    const want = [...leaderLog, 8];
    assert.deepEqual(logTerms(net.node("l")), want, "the leader's log only grew");
    for (const n of names) {
      assert.deepEqual(logTerms(net.node(n)), want, `follower ${n}`);
      assert.equal(net.node(n).raft.raftLog.committed, 11, `follower ${n} commit`);
    }
  });

  describe("§5.3 fast backtracking: rejected round trips are bounded by conflicting terms, not entries", () => {
    const cases: { name: string; leader: number[]; follower: number[] }[] = [
      {
        name: "follower holds long runs of stale terms",
        leader: [...rep(1, 5), ...rep(5, 20)],
        follower: [...rep(1, 5), ...rep(2, 10), ...rep(3, 10), ...rep(4, 10)],
      },
      {
        name: "follower is far behind",
        leader: [...rep(1, 5), ...rep(2, 30)],
        follower: rep(1, 5),
      },
      {
        name: "follower's suffix is of one old term, the leader's of many",
        leader: [1, 1, ...rep(2, 5), ...rep(3, 5), ...rep(4, 5), ...rep(5, 5)],
        follower: rep(1, 22),
      },
      {
        name: "both diverge over several terms",
        leader: [...rep(1, 3), ...rep(2, 4), ...rep(5, 4), ...rep(7, 4)],
        follower: [...rep(1, 3), ...rep(3, 6), ...rep(4, 6), ...rep(6, 6)],
      },
      {
        name: "follower's conflicting entries interleave with the leader's terms",
        leader: [1, 2, 2, 4, 4, 6, 6, 8, 8, 8],
        follower: [1, 2, 3, 3, 5, 5, 7, 7, 7, 7, 7, 7, 7],
      },
    ];
    for (const c of cases) {
      it(c.name, () => {
        const net = new Network(ids(3), PLAIN);
        const leaderTerm = Math.max(...c.leader);
        net.setNode("1", storageWithLog(ids(3), c.leader, { term: leaderTerm }), PLAIN);
        net.setNode(
          "2",
          storageWithLog(ids(3), c.follower, { term: Math.max(...c.follower) }),
          PLAIN,
        );
        net.setNode("3", storageWithLog(ids(3), c.leader, { term: leaderTerm }), PLAIN);
        net.campaign("1");
        assert.equal(net.leader(), "1");
        const rejections = net.delivered.filter(
          (m) => m.type === "app-resp" && m.from === "2" && m.reject,
        ).length;
        let common = 0;
        while (common < c.leader.length && c.leader[common] === c.follower[common]) common++;
        const conflictingTerms =
          new Set(c.follower.slice(common)).size + new Set(c.leader.slice(common)).size;
        const conflictingEntries = Math.max(c.leader.length, c.follower.length) - common;
        assert.ok(
          rejections <= conflictingTerms,
          `${rejections} rejections for ${conflictingTerms} conflicting terms`,
        );
        assert.ok(
          rejections < conflictingEntries / 2,
          `${rejections} rejections for ${conflictingEntries} conflicting entries: entry by entry?`,
        );
        assert.deepEqual(logTerms(net.node("2")), logTerms(net.node("1")));
      });
    }
  });

  it("§5.3: a follower never applies an entry twice or out of order, through partitions", () => {
    const net = new Network(ids(5), PLAIN);
    net.tick(30);
    let n = 0;
    for (let round = 0; round < 10; round++) {
      net.isolate(String((round % 5) + 1));
      for (let k = 0; k < 3; k++) {
        const l = net.leader();
        if (l !== undefined) {
          try {
            net.propose(l, `v${n++}`);
          } catch {
            // the leader may have stepped down meanwhile
          }
        }
        net.tick(3);
      }
      net.heal();
      net.tick(20);
    }
    const ref = net.applied.get("1")!.map((e) => `${e.index}@${e.term}`);
    for (const id of ids(5)) {
      const got = net.applied.get(id)!;
      got.forEach((e, i) => assert.equal(e.index, i + 1, `node ${id} applied out of order`));
      assert.deepEqual(
        got.map((e) => `${e.index}@${e.term}`),
        ref,
        `node ${id} applied a different sequence`,
      );
    }
    assert.ok(net.appliedData("1").length >= 20);
  });
});

describe("§5.3 commit on a heartbeat past the follower's log", () => {
  it("commits only up to the follower's last index (a repaired log), never trips an invariant", () => {
    // The leader sends min(match, committed); a follower that lost acknowledged entries (issue 14)
    // can be sent more. Before: "tocommit(9) is out of range [lastIndex(0)]" thrown from step().
    const s = Solo.of("2", ids(3), PLAIN);
    s.stepAll(msg({ type: "heartbeat", from: "1", to: "2", term: 1, commit: 9 }));
    assert.equal(s.raft.raftLog.committed, s.raft.raftLog.lastIndex());
    assert.equal(s.raft.lead, "1");
  });
});

describe("flow control: probe, replicate and snapshot states", () => {
  /** A 3-voter leader "1" whose followers have not answered yet. */
  function leader(opts: Parameters<typeof Solo.of>[2] = {}): { s: Solo; first: Message[] } {
    const s = Solo.of("1", ids(3), { ...PLAIN, ...opts });
    const first = s.elect();
    return { s, first };
  }

  /** Brings follower 2 into replicate state by acknowledging the leader's first append. */
  function replicating(opts: Parameters<typeof Solo.of>[2] = {}): Solo {
    const { s, first } = leader(opts);
    s.stepAll(ackOf(ofType(first, "app", "2")[0]!));
    assert.equal(s.raft.trk.progress.get("2")!.state, "replicate");
    return s;
  }

  it("a new leader probes each follower with one append and waits for its answer", () => {
    const { s, first } = leader();
    assert.equal(ofType(first, "app", "2").length, 1);
    const pr = s.raft.trk.progress.get("2")!;
    assert.equal(pr.state, "probe");
    assert.equal(pr.isPaused(), true);
    // More proposals do not go to a paused probe.
    s.node.propose(enc("a"));
    s.node.propose(enc("b"));
    assert.deepEqual(ofType(s.drain().msgs, "app", "2"), []);
  });

  it("a probing follower gets the next append after a heartbeat response", () => {
    const { s } = leader();
    s.node.propose(enc("a"));
    s.drain();
    const hb = s.tick(1);
    assert.equal(ofType(hb, "heartbeat", "2").length, 1, "heartbeats are sent to paused followers");
    const out = s.stepAll(msg({ type: "heartbeat-resp", from: "2", to: "1", term: 1 })).msgs;
    const apps = ofType(out, "app", "2");
    assert.equal(apps.length, 1);
    assert.deepEqual(
      apps[0]!.entries.map((e) => e.index),
      [1, 2],
    );
  });

  it("an accepted probe moves the follower to replicate", () => {
    const s = replicating();
    const pr = s.raft.trk.progress.get("2")!;
    assert.equal(pr.match, 1);
    assert.equal(pr.next, 2);
  });

  it("in replicate state appends are pipelined, bounded by maxInflightMsgs", () => {
    const s = replicating({ maxInflightMsgs: 3 });
    const apps: Message[] = [];
    for (let i = 0; i < 5; i++) {
      s.node.propose(enc(`p${i}`));
      apps.push(...ofType(s.drain().msgs, "app", "2"));
    }
    assert.deepEqual(
      apps.map((m) => m.entries.map((e) => e.index)),
      [[2], [3], [4]],
      "three appends in flight without waiting for answers, then the window is full",
    );
    const pr = s.raft.trk.progress.get("2")!;
    assert.equal(pr.isPaused(), true);
    assert.equal(pr.inflights.count(), 3);
    // An acknowledgement frees window slots; the leader sends what is pending at once.
    const more = ofType(s.stepAll(ackOf(apps[0]!)).msgs, "app", "2");
    assert.deepEqual(
      more.map((m) => m.entries.map((e) => e.index)),
      [[5, 6]],
    );
    assert.equal(pr.inflights.count(), 3);
  });

  it("maxSizePerMsg bounds the entry bytes of one append (at least one entry each)", () => {
    const s = replicating({ maxSizePerMsg: 250 });
    for (let i = 0; i < 9; i++) s.node.propose(new Uint8Array(100).fill(65 + i));
    s.node.propose(new Uint8Array(400)); // larger than the limit on its own
    let pending = ofType(s.drain().msgs, "app", "2");
    const seen: number[][] = [];
    while (pending.length > 0) {
      const next: Message[] = [];
      for (const m of pending) {
        if (m.entries.length === 0) continue; // a commit-index update, no entries
        const bytes = m.entries.reduce((n, e) => n + e.data.byteLength, 0);
        assert.ok(m.entries.length === 1 || bytes <= 250, `append of ${bytes} bytes`);
        seen.push(m.entries.map((e) => e.index));
        next.push(...ofType(s.stepAll(ackOf(m)).msgs, "app", "2"));
      }
      pending = next;
    }
    assert.deepEqual(seen.flat(), [2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    assert.ok(seen.length >= 5, `only ${seen.length} appends: size limit not applied`);
    assert.deepEqual(seen[seen.length - 1], [11], "the oversized entry travels alone");
  });

  it("a rejection in replicate state (a lost append) sends the follower back to probe", () => {
    const s = replicating();
    s.node.propose(enc("x"));
    s.drain(); // this append (entry 2) is lost
    s.node.propose(enc("y"));
    const app = ofType(s.drain().msgs, "app", "2")[0]!;
    assert.equal(app.index, 2, "pipelined after the lost one");
    // The follower does not have entry 2: it rejects with its last index as the hint.
    const out = s.stepAll(
      msg({
        type: "app-resp",
        from: "2",
        to: "1",
        term: 1,
        index: 2,
        reject: true,
        rejectHint: 1,
        logTerm: 1,
      }),
    ).msgs;
    const pr = s.raft.trk.progress.get("2")!;
    assert.equal(pr.state, "probe");
    assert.deepEqual(
      ofType(out, "app", "2").map((m) => [m.index, m.entries.map((e) => e.index)]),
      [[1, [2, 3]]],
      "the leader resends from the follower's match",
    );
  });

  it("a stale rejection (of an index below the match) is ignored", () => {
    const s = replicating();
    s.node.propose(enc("x"));
    s.stepAll(ackOf(ofType(s.drain().msgs, "app", "2")[0]!));
    assert.equal(s.raft.trk.progress.get("2")!.match, 2);
    s.stepAll(
      msg({ type: "app-resp", from: "2", to: "1", term: 1, index: 1, reject: true, rejectHint: 0 }),
    );
    assert.equal(s.raft.trk.progress.get("2")!.state, "replicate");
    assert.equal(s.raft.trk.progress.get("2")!.match, 2);
  });

  it("a follower refusing the very entry it matched, its log ending before it, lost entries: the leader resends from its hint", () => {
    // A follower whose WAL was repaired (issue 14): without this the leader would probe it at
    // its old match forever (a refusal at or below the match counts as stale).
    const s = replicating();
    s.node.propose(enc("x"));
    s.stepAll(ackOf(ofType(s.drain().msgs, "app", "2")[0]!));
    const out = s.stepAll(
      msg({ type: "app-resp", from: "2", to: "1", term: 1, index: 2, reject: true, rejectHint: 1 }),
    ).msgs;
    const pr = s.raft.trk.progress.get("2")!;
    assert.equal(pr.state, "probe");
    assert.equal(pr.match, 1);
    assert.deepEqual(
      ofType(out, "app", "2").map((m) => [m.index, m.entries.map((e) => e.index)]),
      [[1, [2]]],
    );
  });

  it("an unreachable report stops pipelining: replicate goes back to probe", () => {
    const s = replicating();
    s.node.reportUnreachable("2");
    s.drain();
    assert.equal(s.raft.trk.progress.get("2")!.state, "probe");
  });
});
