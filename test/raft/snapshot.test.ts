/**
 * Log compaction and snapshots (Raft §7): the leader sends a snapshot to a follower whose next
 * entry was compacted, the follower restores from it, replication resumes; snapshot progress
 * state and its failure handling.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { describeConfState } from "../../src/raft/describe.js";
import { MemoryStorage } from "../../src/raft/storage.js";
import type { Snapshot } from "../../src/raft/types.js";
import { Network, ids } from "./network.js";
import {
  Solo,
  ackOf,
  confState,
  enc,
  entriesWithTerms,
  msg,
  ofType,
  storageWithLog,
} from "./helpers.js";

const PLAIN = { preVote: false, checkQuorum: false } as const;

/** Takes a snapshot of node `id` at its applied index and compacts its storage there. */
function compact(net: Network, id: string): Snapshot {
  const n = net.node(id);
  const st = net.storages.get(id)!;
  const applied = n.raft.raftLog.applied;
  const snap = st.createSnapshot(applied, n.status().config, enc(`state@${applied}`));
  st.compact(applied);
  return snap;
}

function snapshotMsg(index: number, term: number, voters: string[]) {
  return msg({
    type: "snap",
    from: "1",
    to: "2",
    term,
    snapshot: { metadata: { index, term, confState: confState(voters) }, data: enc("s") },
  });
}

describe("§7 log compaction and snapshots", () => {
  it("§7: the leader sends a snapshot to a follower whose next entry was compacted; it catches up", () => {
    const net = new Network(ids(3), PLAIN);
    net.campaign("1");
    net.isolate("3");
    for (let i = 0; i < 10; i++) net.propose("1", `e${i}`);
    const snap = compact(net, "1");
    assert.equal(snap.metadata.index, 11);
    assert.equal(net.storages.get("1")!.firstIndex(), 12);
    net.reconnect("3");
    net.tick(3);
    const snaps = net.delivered.filter((m) => m.type === "snap");
    assert.deepEqual(
      snaps.map((m) => [m.to, m.snapshot!.metadata.index]),
      [["3", 11]],
      "exactly one snapshot, to the lagging follower",
    );
    const st3 = net.storages.get("3")!;
    assert.equal(st3.firstIndex(), 12, "the follower's log starts after the snapshot");
    assert.equal(net.node("3").raft.raftLog.committed >= 11, true);
    assert.equal(describeConfState(net.node("3").status().config), "voters=(1 2 3)");
    // Replication continues normally afterwards.
    net.propose("1", "after");
    assert.deepEqual(net.appliedData("3"), ["after"], "applied past the snapshot");
    assert.equal(net.node("1").status().progress!.get("3")!.state, "replicate");
  });

  it("§7: a follower restores its log, commit index and configuration from a snapshot", () => {
    const s = new Solo("2", storageWithLog(ids(3), [1, 1], { term: 1 }), PLAIN);
    const d = s.stepAll(snapshotMsg(10, 2, ["1", "2", "3", "4"]));
    assert.equal(d.readies[0]!.snapshot?.metadata.index, 10);
    assert.equal(s.storage.firstIndex(), 11);
    assert.equal(s.raft.raftLog.committed, 10);
    assert.equal(s.raft.raftLog.applied, 10);
    assert.equal(s.raft.raftLog.lastTerm(), 2);
    assert.equal(describeConfState(s.node.status().config), "voters=(1 2 3 4)");
    assert.deepEqual(
      ofType(d.msgs, "app-resp").map((m) => [m.index, m.reject]),
      [[10, false]],
    );
  });

  it("§7: a snapshot not newer than the follower's commit index is ignored", () => {
    const s = new Solo("2", storageWithLog(ids(3), [1, 1, 1, 1, 1], { term: 1, commit: 5 }), PLAIN);
    const d = s.stepAll(snapshotMsg(3, 1, ids(3)));
    assert.equal(
      d.readies.some((r) => r.snapshot !== undefined),
      false,
    );
    assert.equal(s.storage.firstIndex(), 1);
    assert.deepEqual(
      ofType(d.msgs, "app-resp").map((m) => m.index),
      [5],
      "the answer tells the leader where the follower is",
    );
  });

  it("§7: a snapshot whose last entry the follower already holds only advances its commit index", () => {
    const s = new Solo("2", storageWithLog(ids(3), [1, 1, 1, 1, 1], { term: 1, commit: 2 }), PLAIN);
    const d = s.stepAll(snapshotMsg(4, 1, ids(3)));
    assert.equal(
      d.readies.some((r) => r.snapshot !== undefined),
      false,
    );
    assert.equal(s.raft.raftLog.committed, 4);
    assert.equal(s.raft.raftLog.lastIndex(), 5, "the entry after the snapshot is kept");
  });

  it("§7: a snapshot that does not include the node is not restored", () => {
    const s = new Solo("2", storageWithLog(ids(3), [1], { term: 1 }), PLAIN);
    const d = s.stepAll(snapshotMsg(10, 2, ["1", "3"]));
    assert.equal(
      d.readies.some((r) => r.snapshot !== undefined),
      false,
    );
    assert.equal(s.raft.raftLog.lastIndex(), 1);
  });

  describe("flow control in snapshot state", () => {
    /** A leader of 3 whose storage is compacted at 5; follower 2 has nothing. */
    function leaderNeedingSnapshot(): { s: Solo; snapMsgs: () => number } {
      const st = MemoryStorage.withConfState(confState(ids(3)));
      st.append(entriesWithTerms([1, 1, 1, 1, 1, 1]));
      st.setHardState({ term: 1, vote: "", commit: 6 });
      st.createSnapshot(5, undefined, enc("snap"));
      st.compact(5);
      const s = new Solo("1", st, { ...PLAIN, applied: 6 });
      const first = s.elect();
      // Follower 2 has an empty log: it rejects the probe with hint 0.
      const probe = ofType(first, "app", "2")[0]!;
      const out = s.stepAll(
        msg({
          type: "app-resp",
          from: "2",
          to: "1",
          term: 2,
          index: probe.index,
          reject: true,
          rejectHint: 0,
        }),
      ).msgs;
      let count = ofType(out, "snap", "2").length;
      return {
        s,
        snapMsgs: () => {
          const n = count;
          count = 0;
          return n;
        },
      };
    }

    it("§7: a follower whose next entry is compacted is sent a snapshot and nothing else", () => {
      const { s, snapMsgs } = leaderNeedingSnapshot();
      assert.equal(snapMsgs(), 1);
      const pr = s.raft.trk.progress.get("2")!;
      assert.equal(pr.state, "snapshot");
      assert.equal(pr.pendingSnapshot, 5);
      s.node.propose(enc("x"));
      const out = s.drain().msgs;
      assert.deepEqual(ofType(out, "app", "2"), [], "no appends while the snapshot is in flight");
      assert.deepEqual(ofType(out, "snap", "2"), [], "and no second snapshot");
    });

    it("§7: after a reported success the leader probes from the snapshot index", () => {
      const { s } = leaderNeedingSnapshot();
      s.node.reportSnapshot("2", "finish");
      s.drain();
      const pr = s.raft.trk.progress.get("2")!;
      assert.equal(pr.state, "probe");
      assert.equal(pr.next, 6);
      // It waits for the follower's heartbeat response, then probes.
      const out = s.stepAll(msg({ type: "heartbeat-resp", from: "2", to: "1", term: 2 })).msgs;
      assert.deepEqual(
        ofType(out, "app", "2").map((m) => m.index),
        [5],
      );
    });

    it("§7: after a reported failure the leader retries the snapshot", () => {
      const { s } = leaderNeedingSnapshot();
      s.node.reportSnapshot("2", "failure");
      s.drain();
      assert.equal(s.raft.trk.progress.get("2")!.state, "probe");
      const out = s.stepAll(msg({ type: "heartbeat-resp", from: "2", to: "1", term: 2 })).msgs;
      assert.equal(ofType(out, "snap", "2").length, 1);
    });

    it("§7: the follower's acknowledgement of the snapshot resumes replication", () => {
      const { s } = leaderNeedingSnapshot();
      const out = s.stepAll(msg({ type: "app-resp", from: "2", to: "1", term: 2, index: 5 })).msgs;
      const pr = s.raft.trk.progress.get("2")!;
      assert.equal(pr.state, "replicate");
      assert.deepEqual(
        ofType(out, "app", "2").map((m) => m.entries.map((e) => e.index)),
        [[6, 7]],
        "the entries after the snapshot follow at once",
      );
      void ackOf;
    });
  });

  it("§7: a node restarted from a compacted storage resumes after its snapshot", () => {
    const net = new Network(ids(3), PLAIN);
    net.campaign("1");
    for (let i = 0; i < 5; i++) net.propose("1", `e${i}`);
    compact(net, "2");
    const n2 = net.restart("2");
    assert.equal(n2.raft.raftLog.firstIndex(), 7);
    assert.equal(n2.raft.raftLog.applied, 6);
    net.propose("1", "after");
    assert.deepEqual(net.appliedData("2").slice(-1), ["after"]);
  });
});
