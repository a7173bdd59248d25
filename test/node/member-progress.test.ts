import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  decodeMemberProgress,
  encodeMemberProgress,
  snapshotPercent,
  snapshotProgressOf,
} from "../../src/node/member-progress.js";
import type { SnapshotTransfer } from "../../src/node/node-metrics.js";
import type { NodeId } from "../../src/raft/types.js";
import type { MemberProgressView } from "../../src/node/member-progress.js";

const view: MemberProgressView = {
  leader: "a10202ab0eac4801",
  term: 7,
  lastIndex: 42,
  joint: false,
  members: [
    {
      id: "a10202ab0eac4801",
      url: "http://127.0.0.1:9021",
      role: "leader",
      progress: { reachable: true, match: 42, lag: 0 },
    },
    {
      id: "663ca4baed7470b5",
      url: "http://127.0.0.1:9022",
      role: "learner",
      progress: {
        reachable: false,
        match: 3,
        lag: 39,
        snapshot: { index: 40, bytes: 1024, totalBytes: 4096 },
      },
    },
    {
      id: "763ca4baed7470b5",
      url: "http://127.0.0.1:9024",
      role: "follower",
      progress: { reachable: true, match: 3, lag: 39, snapshot: { index: 40, bytes: 0 } },
    },
    { id: "f3fd5b0446cc7033", url: "http://127.0.0.1:9023", role: "follower" },
  ],
};

const enc = (o: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(o));
const good = JSON.parse(new TextDecoder().decode(encodeMemberProgress(view))) as Record<
  string,
  unknown
>;

describe("the leader's member list on the wire", () => {
  it("round-trips", () => {
    assert.deepEqual(decodeMemberProgress(encodeMemberProgress(view)), view);
  });

  const bad: [string, Uint8Array, RegExp][] = [
    ["not JSON", new TextEncoder().encode("{"), /not JSON/],
    ["not an object", enc([1]), /version/],
    ["null", enc(null), /not an object/],
    ["another version", enc({ ...good, version: 2 }), /version 2, not 1/],
    ["no leader", enc({ ...good, leader: "" }), /names no leader/],
    ["a negative index", enc({ ...good, lastIndex: -1 }), /term or index/],
    ["a fractional term", enc({ ...good, term: 1.5 }), /term or index/],
    ["members missing", enc({ ...good, members: undefined }), /lacks joint or members/],
    ["joint not boolean", enc({ ...good, joint: "no" }), /lacks joint or members/],
    ["a member not an object", enc({ ...good, members: [3] }), /member 0 is not an object/],
    [
      "an unknown role",
      enc({ ...good, members: [{ id: "x", url: "u", role: "boss" }] }),
      /member 0 lacks a valid id, url or role/,
    ],
    [
      "progress with a string match",
      enc({
        ...good,
        members: [
          {
            id: "x",
            url: "u",
            role: "follower",
            progress: { reachable: true, match: "1", lag: 0 },
          },
        ],
      }),
      /member 0 \(x\) has invalid progress/,
    ],
    [
      "a snapshot with negative bytes",
      enc({
        ...good,
        members: [
          {
            id: "x",
            url: "u",
            role: "learner",
            progress: { reachable: true, match: 1, lag: 0, snapshot: { index: 3, bytes: -1 } },
          },
        ],
      }),
      /member 0 \(x\) has an invalid snapshot progress/,
    ],
  ];
  for (const [what, bytes, why] of bad) {
    it(`refuses ${what}, saying what is wrong`, () => {
      assert.throws(() => decodeMemberProgress(bytes), why);
    });
  }
});

describe("a member receiving a snapshot, as the leader lists it", () => {
  const b = "000000000000000b" as NodeId;
  const stream: SnapshotTransfer = {
    direction: "send",
    peer: b,
    index: 90,
    bytes: 300,
    totalBytes: 1200,
    startedAt: 0,
  };
  for (const c of [
    { name: "replicating, no stream: none", state: "replicate", sending: [], want: {} },
    {
      name: "snapshot state, stream not started: bytes 0, size unknown",
      state: "snapshot",
      sending: [],
      want: { snapshot: { index: 77, bytes: 0 } },
    },
    {
      name: "a stream in flight: its bytes and size",
      state: "snapshot",
      sending: [stream],
      want: { snapshot: { index: 90, bytes: 300, totalBytes: 1200 } },
    },
    {
      name: "a stream to another member: none",
      state: "probe",
      sending: [{ ...stream, peer: "000000000000000c" as NodeId }],
      want: {},
    },
  ]) {
    it(c.name, () => {
      assert.deepEqual(
        snapshotProgressOf(b, { state: c.state, pendingSnapshot: 77 }, c.sending),
        c.want,
      );
    });
  }

  it("has a percent once the size is known", () => {
    assert.equal(snapshotPercent({ index: 1, bytes: 300, totalBytes: 1200 }), 25);
    assert.equal(snapshotPercent({ index: 1, bytes: 300 }), undefined);
  });
});
