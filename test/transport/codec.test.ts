/**
 * The raft message codec's checks of what a peer sends, one case per rule (the rules the fuzzer
 * in peer-fuzz.ts checks at random; a finding becomes a case here).
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { create, toBinary } from "@bufbuild/protobuf";
import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  decodeBatch,
  decodeMessage,
  encodeBatch,
  encodeMessage,
} from "../../src/transport/codec.js";
import { MessageBatchSchema, MessageSchema } from "../../src/transport/gen/raft_pb.js";
import { createMessage } from "../../src/raft/types.js";

/** A wire message built field by field (bypassing the encoder's own types). */
function wire(fields: MessageInitShape<typeof MessageSchema>): Uint8Array {
  return toBinary(
    MessageBatchSchema,
    create(MessageBatchSchema, {
      messages: [create(MessageSchema, { type: "heartbeat", from: "a", to: "b", ...fields })],
    }),
  );
}

const conf = { voters: ["a", "b"], learners: [] };

describe("codec: what a peer sends is checked", () => {
  for (const c of [
    {
      name: "an unknown type",
      fields: { type: "steal" },
      want: /unknown or local message type "steal"/,
    },
    { name: "a local type", fields: { type: "hup" }, want: /local message type "hup"/ },
    { name: "an empty from", fields: { from: "" }, want: /from "" is not a node id/ },
    { name: "an empty to", fields: { to: "" }, want: /to "" is not a node id/ },
    { name: "an id of 65 characters", fields: { from: "x".repeat(65) }, want: /is not a node id/ },
    { name: "an id with a space", fields: { to: "a b" }, want: /is not a node id/ },
    { name: "a non-ASCII id", fields: { from: "é" }, want: /is not a node id/ },
    {
      name: "a term of 2^53",
      fields: { term: 2n ** 53n },
      want: /term 9007199254740992 is not a safe integer/,
    },
    {
      name: "a commit of 2^64-1",
      fields: { commit: 2n ** 64n - 1n },
      want: /commit .* is not a safe integer/,
    },
    {
      name: "an entry index of 2^53",
      fields: { type: "app", index: 0n, entries: [{ term: 1n, index: 2n ** 53n }] },
      want: /entry index .* is not a safe integer/,
    },
    {
      name: "an entry type 7",
      fields: { type: "app", entries: [{ index: 1n, type: 7 }] },
      want: /entry type 7/,
    },
    {
      name: "a prop without entries",
      fields: { type: "prop" },
      want: /prop message without entries/,
    },
    {
      name: "app entries that skip an index",
      fields: {
        type: "app",
        index: 4n,
        entries: [
          { term: 1n, index: 5n },
          { term: 1n, index: 7n },
        ],
      },
      want: /app entry 1 has index 7, expected 6/,
    },
    {
      name: "app entries not after the message's index",
      fields: { type: "app", index: 4n, entries: [{ term: 1n, index: 4n }] },
      want: /app entry 0 has index 4, expected 5/,
    },
    {
      name: "entries on a heartbeat",
      fields: { entries: [{ index: 1n }] },
      want: /a heartbeat message carries entries/,
    },
    {
      name: "a snapshot on a heartbeat",
      fields: { snapshot: { metadata: { index: 1n, term: 1n, confState: conf } } },
      want: /a heartbeat message carries a snapshot/,
    },
    {
      name: "a snap without a snapshot",
      fields: { type: "snap", term: 1n },
      want: /snap message without a snapshot/,
    },
    {
      name: "a snapshot without metadata",
      fields: { type: "snap", term: 1n, snapshot: { data: new Uint8Array(1) } },
      want: /snapshot without metadata/,
    },
    {
      name: "a leaderCommit of 2^53",
      fields: { leaderCommit: 2n ** 53n },
      want: /leaderCommit 9007199254740992 is not a safe integer/,
    },
    {
      name: "a snapshot at index 0",
      fields: {
        type: "snap",
        term: 1n,
        snapshot: { metadata: { index: 0n, term: 1n, confState: conf } },
      },
      want: /snapshot at index or term 0/,
    },
    {
      name: "a snapshot of a later term than its message",
      fields: {
        type: "snap",
        term: 2n,
        snapshot: { metadata: { index: 5n, term: 3n, confState: conf } },
      },
      want: /snapshot of term 3 in a message of term 2/,
    },
    {
      name: "a snapshot whose configuration names a bad id",
      fields: {
        type: "snap",
        term: 1n,
        snapshot: { metadata: { index: 5n, term: 1n, confState: { voters: ["a", ""] } } },
      },
      want: /voter "" is not a node id/,
    },
  ]) {
    it(`refuses ${c.name} (INVALID_ARGUMENT)`, () => {
      assert.throws(() => decodeBatch(wire(c.fields)), {
        code: "INVALID_ARGUMENT",
        message: new RegExp(`^malformed raft message from peer: .*${c.want.source}`),
      });
    });
  }

  it("refuses bytes that are not protobuf, in a batch or alone", () => {
    for (const b of [new Uint8Array([0xff, 0xff, 0xff]), new Uint8Array([0x0a, 0x80])]) {
      assert.throws(() => decodeBatch(b), {
        code: "INVALID_ARGUMENT",
        message: /undecodable frame/,
      });
      assert.throws(() => decodeMessage(b), {
        code: "INVALID_ARGUMENT",
        message: /undecodable message/,
      });
    }
  });

  it("takes what correct nodes send: an empty batch, a forwarded prop, app entries after its index", () => {
    assert.deepEqual(decodeBatch(encodeBatch([])), []);
    const prop = createMessage({
      type: "prop",
      from: "a",
      to: "b",
      entries: [{ term: 0, index: 0, type: "normal", data: new Uint8Array([1]) }],
    });
    const app = createMessage({
      type: "app",
      from: "b",
      to: "a",
      term: 3,
      index: 9,
      logTerm: 2,
      entries: [
        { term: 3, index: 10, type: "normal", data: new Uint8Array(0) },
        { term: 3, index: 11, type: "conf-change", data: new Uint8Array([2]) },
      ],
    });
    assert.deepEqual(decodeBatch(encodeBatch([prop, app])), [prop, app]);
  });
});

describe("codec: the leader's unclamped commit index (leaderCommit)", () => {
  it("round-trips on app and heartbeat, apart from the clamped commit", () => {
    const hb = createMessage({ type: "heartbeat", from: "a", to: "b", term: 2, commit: 3 });
    const withIt = { ...hb, leaderCommit: 40 };
    const app = createMessage({ type: "app", from: "a", to: "b", term: 2, commit: 40 });
    const appWithIt = { ...app, leaderCommit: 40 };
    assert.deepEqual(decodeBatch(encodeBatch([withIt, appWithIt])), [withIt, appWithIt]);
    assert.equal(decodeBatch(encodeBatch([{ ...hb, leaderCommit: 0 }]))[0]!.leaderCommit, 0);
  });

  it("absent (a peer that predates it) stays absent: unknown, not 0", () => {
    const [m] = decodeBatch(wire({ term: 2n, commit: 3n }));
    assert.equal(m!.commit, 3);
    assert.equal("leaderCommit" in m!, false);
  });

  it("is dropped on other message types, in both directions", () => {
    const [m] = decodeBatch(wire({ type: "heartbeat-resp", term: 2n, leaderCommit: 9n }));
    assert.equal("leaderCommit" in m!, false);
    const vote = createMessage({ type: "vote", from: "a", to: "b", term: 2, leaderCommit: 9 });
    assert.equal("leaderCommit" in decodeBatch(encodeBatch([vote]))[0]!, false);
  });

  it("the leader's quorum age round-trips with it on app and heartbeat, clamped to uint32, dropped elsewhere", () => {
    const hb = createMessage({ type: "heartbeat", from: "a", to: "b", term: 2, commit: 3 });
    const aged = { ...hb, leaderCommit: 40, leaderQuorumAgeMs: 250 };
    assert.deepEqual(decodeBatch(encodeBatch([aged])), [aged]);
    const never = { ...hb, leaderCommit: 40, leaderQuorumAgeMs: 2 ** 40 };
    assert.equal(decodeBatch(encodeBatch([never]))[0]!.leaderQuorumAgeMs, 2 ** 32 - 1);
    const [m] = decodeBatch(wire({ type: "heartbeat-resp", term: 2n, leaderQuorumAgeMs: 9 }));
    assert.equal("leaderQuorumAgeMs" in m!, false);
  });

  it("a field this version does not know is skipped (as an older peer skips leaderCommit)", () => {
    const hb = createMessage({ type: "heartbeat", from: "a", to: "b", term: 2, commit: 3 });
    // Field 99, varint 1: what a later version might add.
    const later = new Uint8Array([...encodeMessage(hb), 0x98, 0x06, 0x01]);
    const got = decodeMessage(later);
    assert.deepEqual([got.type, got.term, got.commit], ["heartbeat", 2, 3]);
  });
});
