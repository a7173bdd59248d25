/**
 * Safety (Raft §5.4): commit only by a quorum of the current term (Figure 8), leader
 * completeness, state machine safety, log matching; checked by scenarios and by a seeded
 * randomized run (replay one with RAFT_SEED=<n>).
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createSeededRandom } from "../../src/raft/random.js";
import type { Message } from "../../src/raft/types.js";
import { Network, ids } from "./network.js";
import { storageWithLog, termsOf } from "./helpers.js";

const PLAIN = { preVote: false, checkQuorum: false } as const;

/**
 * Figure 8 of the Raft paper, state (c): S1 (the leader of term 2) replicated 2@2 to S2 only;
 * S5 (the leader of term 3, elected by S3, S4, S5) wrote 3 at index 2 and crashed.
 */
function figure8(): Network {
  const all = ids(5);
  const net = new Network(all, PLAIN);
  net.setNode("1", storageWithLog(all, [1, 2], { term: 3, commit: 1 }), PLAIN);
  net.setNode("2", storageWithLog(all, [1, 2], { term: 3, commit: 1 }), PLAIN);
  net.setNode("3", storageWithLog(all, [1], { term: 3, vote: "5", commit: 1 }), PLAIN);
  net.setNode("4", storageWithLog(all, [1], { term: 3, vote: "5", commit: 1 }), PLAIN);
  net.setNode("5", storageWithLog(all, [1, 3], { term: 3, vote: "5", commit: 1 }), PLAIN);
  return net;
}

function termAt(net: Network, id: string, index: number): number | undefined {
  return net.node(id).raft.raftLog.termOrUndefined(index);
}

describe("§5.4 safety", () => {
  it("§5.4.2 (Figure 8): an entry of an earlier term stored on a majority is not committed by counting replicas", () => {
    const net = figure8();
    net.isolate("5"); // S5 is down
    // S1 is elected for term 4. It replicates the term-2 entry but (for now) not its own.
    net.filter = (m) =>
      m.type === "app" && m.from === "1"
        ? { ...m, entries: m.entries.filter((e) => e.index < 3) }
        : m;
    net.campaign("1");
    assert.equal(net.leader(), "1");
    assert.equal(net.node("1").raft.term, 4);
    for (const id of ["1", "2", "3", "4"]) assert.equal(termAt(net, id, 2), 2, `2@2 on ${id}`);
    assert.equal(
      net.node("1").raft.raftLog.committed,
      1,
      "2@2 is on 4 of 5 nodes but of an earlier term: not committed",
    );
    assert.deepEqual(
      net.applied.get("1")!.map((e) => e.index),
      [1],
      "only the entry committed before",
    );
    // Why: S1 crashes, S5 comes back and is elected (its last term 3 beats 2) ...
    net.isolate("1");
    net.reconnect("5");
    net.filter = undefined;
    net.campaign("5"); // loses at term 4: S2..S4 already voted in term 4
    net.campaign("5");
    assert.equal(net.leader(), "5");
    // ... and overwrites index 2 on the very majority that held 2@2.
    for (const id of ["2", "3", "4", "5"])
      assert.equal(termAt(net, id, 2), 3, `3 at index 2 on ${id}`);
  });

  it("§5.4.2 (Figure 8): once an entry of the leader's term is committed, the earlier ones are too and can never be overwritten", () => {
    const net = figure8();
    net.isolate("5");
    net.cutLink("1", "4"); // S4 keeps its short log
    net.campaign("1");
    assert.equal(net.leader(), "1");
    // 3@4 (the new leader's no-op) is on S1, S2, S3: it and 2@2 are committed.
    assert.equal(net.node("1").raft.raftLog.committed, 3);
    assert.deepEqual(
      net.applied.get("1")!.map((e) => `${e.index}@${e.term}`),
      ["1@1", "2@2", "3@4"],
    );
    // S1 crashes; S5 returns. S5 cannot win: S2 and S3 hold a later last term.
    net.isolate("1");
    net.reconnect("5");
    net.cutLink("1", "4");
    for (let i = 0; i < 5; i++) net.campaign("5");
    assert.notEqual(net.leader(), "5");
    net.tick(40);
    const l = net.leader();
    assert.ok(l === "2" || l === "3", `leader ${String(l)} lacks committed entries`);
    for (const id of ["2", "3", "4", "5"]) {
      assert.deepEqual(termsOf(net.node(id).raft.raftLog.allEntries()).slice(0, 3), [1, 2, 4], id);
    }
  });
});

/** Invariant checks of a running network (Raft Figure 3's properties). */
class SafetyChecker {
  private readonly leaderOfTerm = new Map<number, string>();
  /** index -> term of every entry known committed (applied somewhere). */
  private readonly committed = new Map<number, number>();

  check(net: Network, seed: number): void {
    const ctx = `(seed ${seed}; replay with RAFT_SEED=${seed})`;
    for (const [id, n] of net.nodes) {
      for (const e of net.applied.get(id)!) {
        const t = this.committed.get(e.index);
        // State machine safety: no two nodes apply different entries at one index.
        assert.ok(t === undefined || t === e.term, `state machine safety at ${e.index} ${ctx}`);
        this.committed.set(e.index, e.term);
      }
      if (n.raft.state !== "leader") continue;
      // Election safety: at most one leader per term.
      const prev = this.leaderOfTerm.get(n.raft.term);
      assert.ok(prev === undefined || prev === id, `two leaders in term ${n.raft.term} ${ctx}`);
      this.leaderOfTerm.set(n.raft.term, id);
    }
    for (const [id, n] of net.nodes) {
      if (n.raft.state !== "leader") continue;
      // Leader completeness: a leader holds every committed entry of earlier terms.
      for (const [index, term] of this.committed) {
        if (term > n.raft.term) continue;
        const got = n.raft.raftLog.termOrUndefined(index);
        if (got === undefined && index < n.raft.raftLog.firstIndex()) continue;
        assert.equal(got, term, `leader ${id} misses committed ${index}@${term} ${ctx}`);
      }
    }
    // Log matching: same index and term imply identical prefixes.
    const logs = [...net.nodes.values()].map((n) => termsOf(n.raft.raftLog.allEntries()));
    for (let a = 0; a < logs.length; a++) {
      for (let b = a + 1; b < logs.length; b++) {
        const la = logs[a]!;
        const lb = logs[b]!;
        const n = Math.min(la.length, lb.length);
        let last = -1;
        for (let i = 0; i < n; i++) if (la[i] === lb[i]) last = i;
        for (let i = 0; i <= last; i++) {
          assert.equal(la[i], lb[i], `log matching broken at index ${i + 1} ${ctx}`);
        }
      }
    }
  }
}

describe("§5.4 safety under random partitions (seeded)", () => {
  const fixed = process.env["RAFT_SEED"];
  const seeds = fixed !== undefined ? [Number(fixed)] : [1, 2, 3, 4, 5, 6];
  for (const seed of seeds) {
    for (const prevote of [false, true]) {
      it(`seed ${seed}, preVote=${prevote}: election safety, leader completeness, log matching, state machine safety`, () => {
        const rnd = createSeededRandom(seed);
        const net = new Network(ids(5), {
          preVote: prevote,
          checkQuorum: prevote,
          seed: seed * 31,
        });
        // Different seeds per node come from Network's defaults when `seed` is not shared.
        for (const id of ids(5)) {
          net.setNode(id, net.storages.get(id)!, {
            preVote: prevote,
            checkQuorum: prevote,
            seed: seed * 101 + Number(id),
          });
        }
        // Randomly drop 10% of messages on top of partitions.
        net.filter = (m: Message) => (rnd(10) === 0 ? undefined : m);
        const checker = new SafetyChecker();
        let n = 0;
        for (let step = 0; step < 300; step++) {
          const r = rnd(20);
          if (r === 0) {
            net.isolate(String(rnd(5) + 1));
          } else if (r === 1) {
            const keep: Network["filter"] = net.filter;
            net.heal();
            net.filter = keep;
          } else if (r < 8) {
            const l = net.leader();
            if (l !== undefined) {
              try {
                net.propose(l, `v${n++}`);
              } catch {
                // refused (e.g. stepping down): fine
              }
            }
          }
          net.tick();
          checker.check(net, seed);
        }
        net.heal();
        net.tick(50);
        checker.check(net, seed);
        assert.ok(net.leader() !== undefined, `no leader at the end (seed ${seed})`);
      });
    }
  }
});
