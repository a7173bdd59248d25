import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { encodeConfChange } from "../../src/raft/confchange/codec.js";
import {
  describeBytes,
  describeConfState,
  describeEntry,
  describeHardState,
  describeMessage,
  describeProgress,
  describeReady,
  describeSnapshot,
  describeSoftState,
} from "../../src/raft/describe.js";
import type { Ready } from "../../src/raft/raw-node.js";
import { Inflights } from "../../src/raft/tracker/inflights.js";
import { Progress } from "../../src/raft/tracker/progress.js";
import type { Entry, Message } from "../../src/raft/types.js";
import { EMPTY_BYTES } from "../../src/raft/types.js";
import { confChange, confState, enc, entry, msg } from "./helpers.js";

describe("describe: canonical text for golden files", () => {
  const bytes: { name: string; b: Uint8Array; want: string }[] = [
    { name: "printable ASCII is quoted", b: enc("foo bar"), want: '"foo bar"' },
    { name: "empty", b: EMPTY_BYTES, want: '""' },
    { name: "binary is hex", b: new Uint8Array([0, 255, 16]), want: "0x00ff10" },
    { name: "a quote forces hex", b: enc('a"b'), want: "0x612262" },
    { name: "a newline forces hex", b: enc("a\n"), want: "0x610a" },
  ];
  for (const c of bytes) it(`bytes: ${c.name}`, () => assert.equal(describeBytes(c.b), c.want));

  const ccEntry = (data: Uint8Array): Entry => ({ index: 7, term: 3, type: "conf-change", data });
  const entries: { name: string; e: Entry; want: string }[] = [
    { name: "normal", e: entry(5, 2, "x"), want: '5@2 normal "x"' },
    { name: "no-op", e: entry(1, 1), want: '1@1 normal ""' },
    {
      name: "conf change, decoded",
      e: ccEntry(encodeConfChange(confChange("v4 r1", "explicit"))),
      want: "7@3 conf-change explicit add-node 4 remove-node 1",
    },
    {
      name: "leave joint",
      e: ccEntry(encodeConfChange(confChange(""))),
      want: "7@3 conf-change auto leave-joint",
    },
    {
      name: "conf change with context",
      e: ccEntry(encodeConfChange({ ...confChange("l9"), context: enc("u") })),
      want: '7@3 conf-change auto add-learner 9 ctx="u"',
    },
    { name: "malformed conf change", e: ccEntry(enc("?")), want: '7@3 conf-change malformed "?"' },
  ];
  for (const c of entries) it(`entry: ${c.name}`, () => assert.equal(describeEntry(c.e), c.want));

  const msgs: { name: string; m: Message; want: string }[] = [
    {
      name: "append",
      m: msg({
        type: "app",
        from: "1",
        to: "2",
        term: 2,
        index: 5,
        logTerm: 1,
        commit: 4,
        entries: [entry(6, 2, "a")],
      }),
      want: '1->2 app term=2 log=5@1 commit=4 entries=[6@2 normal "a"]',
    },
    {
      name: "first append",
      m: msg({ type: "app", from: "1", to: "2", term: 1, entries: [entry(1, 1)] }),
      want: '1->2 app term=1 log=0@0 entries=[1@1 normal ""]',
    },
    {
      name: "rejected append response",
      m: msg({
        type: "app-resp",
        from: "2",
        to: "1",
        term: 2,
        index: 5,
        reject: true,
        rejectHint: 3,
        logTerm: 1,
      }),
      want: "2->1 app-resp term=2 index=5 rejected hint=3@1",
    },
    {
      name: "vote request",
      m: msg({ type: "vote", from: "3", to: "1", term: 4, index: 9, logTerm: 3 }),
      want: "3->1 vote term=4 log=9@3",
    },
    {
      name: "rejected vote",
      m: msg({ type: "vote-resp", from: "1", to: "3", term: 4, reject: true }),
      want: "1->3 vote-resp term=4 rejected",
    },
    {
      name: "heartbeat with read context",
      m: msg({ type: "heartbeat", from: "1", to: "2", term: 1, commit: 3, context: enc("r") }),
      want: '1->2 heartbeat term=1 commit=3 ctx="r"',
    },
    {
      name: "read-index response",
      m: msg({ type: "read-index-resp", from: "1", to: "2", term: 1, index: 3, context: enc("r") }),
      want: '1->2 read-index-resp term=1 index=3 ctx="r"',
    },
    {
      name: "forwarded proposal (no term, no sender)",
      m: msg({ type: "prop", to: "1", entries: [entry(0, 0, "p")] }),
      want: '_->1 prop entries=[0@0 normal "p"]',
    },
    {
      name: "snapshot",
      m: msg({
        type: "snap",
        from: "1",
        to: "3",
        term: 2,
        snapshot: {
          metadata: { index: 10, term: 2, confState: confState(["1", "2", "3"]) },
          data: EMPTY_BYTES,
        },
      }),
      want: "1->3 snap term=2 snapshot=[index=10 term=2 voters=(1 2 3)]",
    },
  ];
  for (const c of msgs) it(`message: ${c.name}`, () => assert.equal(describeMessage(c.m), c.want));

  it("hard state, soft state, conf state and snapshot", () => {
    assert.equal(describeHardState({ term: 2, vote: "1", commit: 5 }), "term=2 vote=1 commit=5");
    assert.equal(describeHardState({ term: 2, vote: "", commit: 5 }), "term=2 commit=5");
    assert.equal(describeSoftState({ lead: "", raftState: "candidate" }), "candidate");
    assert.equal(describeSoftState({ lead: "3", raftState: "follower" }), "follower lead=3");
    assert.equal(
      describeConfState({
        voters: ["3", "1"],
        votersOutgoing: ["1", "2", "3"],
        learners: ["5"],
        learnersNext: ["2"],
        autoLeave: true,
      }),
      "voters=(1 3)&&(1 2 3) learners=(5) learners_next=(2) autoleave",
    );
    assert.equal(
      describeSnapshot({
        metadata: { index: 3, term: 1, confState: confState(["1"]) },
        data: enc("d"),
      }),
      'index=3 term=1 voters=(1) data="d"',
    );
  });

  it("progress in each state", () => {
    const pr = new Progress(6, new Inflights(2), false, 5);
    pr.becomeReplicate();
    pr.recentActive = true;
    pr.sentEntries(1, 6, 1);
    pr.sentEntries(1, 7, 1);
    assert.equal(describeProgress(pr), "replicate match=5 next=8 paused inflight=2[full]");
    const learner = new Progress(1, new Inflights(2), true);
    assert.equal(describeProgress(learner), "probe match=0 next=1 learner inactive");
    learner.becomeSnapshot(9);
    assert.equal(
      describeProgress(learner),
      "snapshot match=0 next=1 learner pendingSnapshot=9 inactive",
    );
  });

  it("an empty Ready has no lines; sections appear in handling order", () => {
    const empty: Ready = {
      softState: undefined,
      hardState: undefined,
      readStates: [],
      entries: [],
      snapshot: undefined,
      committedEntries: [],
      messages: [],
      persistedMessages: [],
      mustSync: false,
    };
    assert.deepEqual(describeReady(empty), []);
    const rd: Ready = {
      ...empty,
      hardState: { term: 1, vote: "1", commit: 1 },
      entries: [entry(2, 1, "e")],
      committedEntries: [entry(1, 1)],
      readStates: [{ index: 1, requestCtx: enc("q") }],
      messages: [msg({ type: "heartbeat", from: "1", to: "2", term: 1 })],
      persistedMessages: [msg({ type: "app-resp", from: "1", to: "2", term: 1, index: 2 })],
      mustSync: true,
    };
    assert.deepEqual(describeReady(rd), [
      "HardState: term=1 vote=1 commit=1",
      "Entries:",
      '  2@1 normal "e"',
      "CommittedEntries:",
      '  1@1 normal ""',
      "ReadStates:",
      '  index=1 ctx="q"',
      "Messages:",
      "  1->2 heartbeat term=1",
      "PersistedMessages:",
      "  1->2 app-resp term=1 index=2",
      "MustSync",
    ]);
  });
});
