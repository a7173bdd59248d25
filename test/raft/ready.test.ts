/**
 * The Ready contract (src/raft/raw-node.ts): messages vs persistedMessages, mustSync, one
 * outstanding Ready, group commit, self-acknowledgement after persistence; plus RawNode input
 * refusals and configuration validation.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { InvariantError } from "../../src/raft/invariant.js";
import { RaftError, validateRaftConfig } from "../../src/raft/raft.js";
import type { RaftConfig } from "../../src/raft/raft.js";
import { createSeededRandom } from "../../src/raft/random.js";
import { MemoryStorage } from "../../src/raft/storage.js";
import { ids } from "./network.js";
import { Solo, ackOf, confState, enc, entry, msg, ofType, storageWithLog } from "./helpers.js";

const PLAIN = { preVote: false, checkQuorum: false } as const;

/** A 3-voter leader whose followers 2 and 3 are both in replicate state, everything committed. */
function leaderWithReplicatingFollowers(): Solo {
  const s = Solo.of("1", ids(3), PLAIN);
  const first = s.elect();
  s.stepAll(...ofType(first, "app").map(ackOf));
  assert.equal(s.raft.raftLog.committed, 1);
  return s;
}

function raftErrorCode(fn: () => void): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof RaftError) return e.code;
    throw e;
  }
  return "ok";
}

describe("Ready: self-acknowledgement after persistence", () => {
  it("a 3-node leader with one follower's ack does not commit before its own advance()", () => {
    const s = leaderWithReplicatingFollowers();
    s.node.propose(enc("x"));
    const rd = s.node.ready();
    const app = ofType(rd.messages, "app", "2")[0]!;
    assert.deepEqual(
      app.entries.map((e) => e.index),
      [2],
      "the append leaves before the leader's own fsync",
    );
    s.node.step(ackOf(app)); // follower 2 acknowledges
    assert.equal(s.raft.raftLog.committed, 1, "1 of 3 durable copies: the leader's is not yet");
    s.handle(rd); // the leader's entry is durable: advance() delivers its own acknowledgement
    assert.equal(s.raft.raftLog.committed, 2);
    const next = s.node.ready();
    assert.deepEqual(
      next.committedEntries.map((e) => e.index),
      [2],
    );
    s.handle(next);
  });

  it("a leader commits with two followers' acks even before its own fsync", () => {
    const s = leaderWithReplicatingFollowers();
    s.node.propose(enc("x"));
    const rd = s.node.ready();
    for (const app of ofType(rd.messages, "app")) s.node.step(ackOf(app));
    assert.equal(s.raft.raftLog.committed, 2, "two durable copies of three are a majority");
    s.handle(rd);
    assert.deepEqual(
      s.drain().readies.flatMap((r) => r.committedEntries.map((e) => e.index)),
      [2],
    );
  });

  it("a candidate counts its own vote only after advance()", () => {
    const s = Solo.of("1", ids(3), PLAIN);
    s.node.campaign();
    const rd = s.node.ready();
    assert.deepEqual(rd.hardState, { term: 1, vote: "1", commit: 0 });
    assert.equal(
      ofType(rd.messages, "vote").length,
      2,
      "vote requests need not wait for the candidate's own fsync",
    );
    s.node.step(msg({ type: "vote-resp", from: "2", to: "1", term: 1 }));
    assert.equal(s.raft.state, "candidate", "its own vote is not durable yet");
    s.handle(rd);
    assert.equal(s.raft.state, "leader");
  });

  it("a single-node cluster becomes leader only after persisting its vote, and commits only after persisting its entry", () => {
    const s = Solo.of("1", ["1"], PLAIN);
    s.node.campaign();
    assert.equal(s.raft.state, "candidate");
    const rd1 = s.node.ready();
    s.handle(rd1);
    assert.equal(s.raft.state, "leader");
    const rd2 = s.node.ready();
    assert.deepEqual(
      rd2.entries.map((e) => e.index),
      [1],
    );
    assert.equal(s.raft.raftLog.committed, 0);
    s.handle(rd2);
    assert.equal(s.raft.raftLog.committed, 1);
    s.node.propose(enc("solo"));
    s.drain();
    assert.deepEqual(s.appliedData(), ["solo"]);
  });
});

describe("Ready: messages, persistedMessages and mustSync", () => {
  it("a follower's append response is a persisted message; a heartbeat response is not", () => {
    const s = new Solo("2", storageWithLog(ids(3), [1], { term: 1 }), PLAIN);
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
    s.node.step(msg({ type: "heartbeat", from: "1", to: "2", term: 1, commit: 1 }));
    const rd = s.node.ready();
    assert.deepEqual(
      rd.messages.map((m) => m.type),
      ["heartbeat-resp"],
    );
    assert.deepEqual(
      rd.persistedMessages.map((m) => m.type),
      ["app-resp"],
    );
    s.handle(rd);
  });

  it("a leader's appends and heartbeats go out in messages, before its own persistence", () => {
    const s = leaderWithReplicatingFollowers();
    s.node.propose(enc("x"));
    s.node.tick();
    const rd = s.node.ready();
    assert.deepEqual([...new Set(rd.messages.map((m) => m.type))].sort(), ["app", "heartbeat"]);
    assert.deepEqual(rd.persistedMessages, []);
    s.handle(rd);
  });

  const syncCases: {
    name: string;
    run: (s: Solo) => void;
    wantSync: boolean;
  }[] = [
    {
      name: "new entries must be synced",
      run: (s) =>
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
        ),
      wantSync: true,
    },
    {
      name: "a new term must be synced",
      run: (s) => s.node.step(msg({ type: "heartbeat", from: "3", to: "2", term: 2 })),
      wantSync: true,
    },
    {
      name: "a new vote must be synced",
      run: (s) =>
        s.node.step(msg({ type: "vote", from: "3", to: "2", term: 2, index: 1, logTerm: 1 })),
      wantSync: true,
    },
    {
      name: "a snapshot must be synced (its acknowledgement is a persisted message)",
      run: (s) =>
        s.node.step(
          msg({
            type: "snap",
            from: "1",
            to: "2",
            term: 1,
            snapshot: {
              metadata: { index: 5, term: 1, confState: confState(ids(3)) },
              data: enc("s"),
            },
          }),
        ),
      wantSync: true,
    },
    {
      name: "only a higher commit index need not be synced",
      run: (s) => s.node.step(msg({ type: "heartbeat", from: "1", to: "2", term: 1, commit: 1 })),
      wantSync: false,
    },
  ];
  for (const c of syncCases) {
    it(`mustSync: ${c.name}`, () => {
      const s = new Solo("2", storageWithLog(ids(3), [1], { term: 1 }), PLAIN);
      c.run(s);
      const rd = s.node.ready();
      assert.equal(rd.mustSync, c.wantSync);
      s.handle(rd);
    });
  }

  it("softState is set only when the role or the leader changes", () => {
    const s = Solo.of("1", ids(3), PLAIN);
    s.node.campaign();
    const rd = s.node.ready();
    assert.deepEqual(rd.softState, { lead: "", raftState: "candidate" });
    s.handle(rd);
    s.node.step(msg({ type: "vote-resp", from: "2", to: "1", term: 1 }));
    const rd2 = s.node.ready();
    assert.deepEqual(rd2.softState, { lead: "1", raftState: "leader" });
    s.handle(rd2);
    s.node.tick();
    const rd3 = s.node.ready();
    assert.equal(rd3.softState, undefined);
    s.handle(rd3);
  });

  it("committed entries are handed out exactly once", () => {
    const s = leaderWithReplicatingFollowers();
    s.node.propose(enc("once"));
    const readies = s.drain().readies;
    const appsTo2 = readies.flatMap((r) => ofType(r.messages, "app", "2"));
    s.stepAll(...appsTo2.map(ackOf));
    s.tick(3);
    assert.deepEqual(s.appliedData(), ["once"]);
  });
});

describe("Ready: paging of committed entries", () => {
  it("committed entries are handed out in order across Readies, bounded by maxCommittedSizePerReady", () => {
    const st = storageWithLog(ids(3), [], { term: 1 });
    st.append(Array.from({ length: 10 }, (_, i) => entry(i + 1, 1, "0123456789")));
    st.setHardState({ term: 1, vote: "", commit: 10 });
    const s = new Solo("2", st, { ...PLAIN, maxCommittedSizePerReady: 25 });
    const pages = s.drain().readies.map((r) => r.committedEntries.map((e) => e.index));
    assert.deepEqual(pages, [
      [1, 2],
      [3, 4],
      [5, 6],
      [7, 8],
      [9, 10],
    ]);
  });
});

describe("Ready: one outstanding Ready and group commit", () => {
  it("ready() again before advance() is a bug; hasReady() is false meanwhile", () => {
    const s = Solo.of("1", ids(3), PLAIN);
    s.node.campaign();
    const rd = s.node.ready();
    assert.equal(s.node.hasReady(), false);
    assert.throws(() => s.node.ready(), InvariantError);
    s.handle(rd);
  });

  it("advance() with a Ready that ready() did not return is a bug", () => {
    const s = Solo.of("1", ids(3), PLAIN);
    s.node.campaign();
    const rd = s.node.ready();
    assert.throws(() => s.node.advance({ ...rd }), InvariantError);
  });

  it("proposals made while a Ready is outstanding go into the next Ready, in one append per follower", () => {
    const s = leaderWithReplicatingFollowers();
    s.node.propose(enc("a"));
    const rd1 = s.node.ready();
    s.node.propose(enc("b"));
    s.node.propose(enc("c"));
    s.handle(rd1);
    const rd2 = s.node.ready();
    assert.deepEqual(
      rd2.entries.map((e) => e.index),
      [3, 4],
      "b and c are persisted together (group commit)",
    );
    assert.deepEqual(
      ofType(rd2.messages, "app").map((m) => [m.to, m.entries.map((e) => e.index)]),
      [
        ["2", [3, 4]],
        ["3", [3, 4]],
      ],
    );
    s.handle(rd2);
  });
});

describe("RawNode: refused inputs", () => {
  it("stepping a local message type from outside is refused (step-local-msg)", () => {
    const s = Solo.of("1", ids(3));
    for (const type of ["hup", "beat", "unreachable", "snap-status", "check-quorum"] as const) {
      assert.equal(
        raftErrorCode(() => s.node.step(msg({ type, from: "2", to: "1" }))),
        "step-local-msg",
        type,
      );
    }
  });

  it("a response from a node outside the configuration is refused (step-peer-not-found)", () => {
    const s = Solo.of("1", ids(3));
    assert.equal(
      raftErrorCode(() => s.node.step(msg({ type: "app-resp", from: "9", to: "1", term: 1 }))),
      "step-peer-not-found",
    );
  });

  it("a proposal without a known leader is refused with no-leader", () => {
    const s = Solo.of("1", ids(3));
    assert.equal(
      raftErrorCode(() => s.node.propose(enc("x"))),
      "no-leader",
    );
  });

  it("thesis §6.2: a follower forwards proposals to the leader; with forwarding disabled it refuses them", () => {
    const s = new Solo("2", storageWithLog(ids(3), [1], { term: 1 }), PLAIN);
    s.stepAll(msg({ type: "heartbeat", from: "1", to: "2", term: 1 }));
    s.node.propose(enc("fwd"));
    const out = s.drain().msgs;
    assert.deepEqual(
      ofType(out, "prop").map((m) => [m.to, m.entries.length]),
      [["1", 1]],
    );
    const d = new Solo("2", storageWithLog(ids(3), [1], { term: 1 }), {
      ...PLAIN,
      disableProposalForwarding: true,
    });
    d.stepAll(msg({ type: "heartbeat", from: "1", to: "2", term: 1 }));
    assert.equal(
      raftErrorCode(() => d.node.propose(enc("fwd"))),
      "proposal-dropped",
    );
  });

  it("a candidate refuses proposals with no-leader", () => {
    const s = Solo.of("1", ids(3), PLAIN);
    s.node.campaign();
    assert.equal(
      raftErrorCode(() => s.node.propose(enc("x"))),
      "no-leader",
    );
  });

  it("maxUncommittedEntriesSize refuses proposals beyond the limit until entries are applied", () => {
    const s = Solo.of("1", ids(3), { ...PLAIN, maxUncommittedEntriesSize: 10 });
    const first = s.elect();
    s.stepAll(...ofType(first, "app").map(ackOf));
    s.node.propose(new Uint8Array(6));
    s.node.propose(new Uint8Array(4));
    assert.equal(
      raftErrorCode(() => s.node.propose(new Uint8Array(1))),
      "proposal-dropped",
    );
    const apps = ofType(s.drain().msgs, "app", "2");
    s.stepAll(...apps.map(ackOf));
    assert.equal(
      raftErrorCode(() => s.node.propose(new Uint8Array(5))),
      "ok",
      "committed and applied entries no longer count",
    );
  });
});

describe("configuration validation", () => {
  const base: RaftConfig = {
    id: "1",
    electionTick: 10,
    heartbeatTick: 1,
    storage: MemoryStorage.withConfState(confState(["1"])),
    random: createSeededRandom(1),
  };
  const bad: { name: string; cfg: Partial<RaftConfig>; err: RegExp }[] = [
    { name: "empty id", cfg: { id: "" }, err: /id must not be empty/ },
    {
      name: "zero heartbeatTick",
      cfg: { heartbeatTick: 0 },
      err: /heartbeatTick must be a positive integer/,
    },
    {
      name: "electionTick not above heartbeatTick",
      cfg: { electionTick: 3, heartbeatTick: 3 },
      err: /electionTick \(3\) must be greater/,
    },
    {
      name: "fractional electionTick",
      cfg: { electionTick: 10.5 },
      err: /electionTick must be a positive integer/,
    },
    { name: "zero maxInflightMsgs", cfg: { maxInflightMsgs: 0 }, err: /maxInflightMsgs/ },
    { name: "zero maxSizePerMsg", cfg: { maxSizePerMsg: 0 }, err: /maxSizePerMsg/ },
    {
      name: "negative applied",
      cfg: { applied: -1 },
      err: /applied must be a non-negative integer/,
    },
    {
      name: "lease-based reads without check-quorum",
      cfg: { readOnlyOption: "lease-based", checkQuorum: false },
      err: /lease-based requires checkQuorum/,
    },
  ];
  for (const c of bad) {
    it(`rejects ${c.name}`, () =>
      assert.throws(() => validateRaftConfig({ ...base, ...c.cfg }), c.err));
  }

  it("fills in documented defaults and freezes the result", () => {
    const n = validateRaftConfig(base);
    assert.deepEqual(
      {
        checkQuorum: n.checkQuorum,
        preVote: n.preVote,
        readOnlyOption: n.readOnlyOption,
        maxInflightMsgs: n.maxInflightMsgs,
        maxSizePerMsg: n.maxSizePerMsg,
        applied: n.applied,
      },
      {
        checkQuorum: true,
        preVote: true,
        readOnlyOption: "safe",
        maxInflightMsgs: 256,
        maxSizePerMsg: 1024 * 1024,
        applied: 0,
      },
    );
    assert.equal(Object.isFrozen(n), true);
  });

  it("accepts lease-based reads with check-quorum", () => {
    assert.equal(
      validateRaftConfig({ ...base, readOnlyOption: "lease-based", checkQuorum: true })
        .readOnlyOption,
      "lease-based",
    );
  });
});
