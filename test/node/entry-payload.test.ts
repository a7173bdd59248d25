import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { decodeEntryPayload, encodeEntryPayload } from "../../src/node/entry-payload.js";
import type { EntryPayload } from "../../src/node/entry-payload.js";
import { toApplyEntry } from "../../src/node/applier.js";
import { requestHash } from "../../src/store/request-records.js";
import { isNexusError } from "../../src/errors/index.js";

const enc = new TextEncoder();
const base: EntryPayload = {
  kind: "command",
  requestId: new Uint8Array(16).fill(7),
  timestampMs: 1_700_000_000_000,
  seed: 42,
  data: enc.encode("incr n"),
  args: { "db.index": "1" },
};

describe("entry payload: the client request record key", () => {
  it("a payload without a client request stays version 1 and decodes as before", () => {
    const b = encodeEntryPayload(base);
    assert.equal(b[0], 1);
    const d = decodeEntryPayload(b);
    assert.equal(d.clientRequest, undefined);
    assert.deepEqual(
      { ...d, requestId: [...d.requestId], data: [...d.data] },
      {
        ...base,
        requestId: [...base.requestId],
        data: [...base.data],
      },
    );
  });

  it("a payload with one is version 2 and round-trips; the applier hands the store its key", () => {
    const p = {
      ...base,
      clientRequest: { id: "req-1", issuedAtMs: 1_699_999_999_000 },
    };
    const b = encodeEntryPayload(p);
    assert.equal(b[0], 2);
    const d = decodeEntryPayload(b);
    assert.deepEqual(d.clientRequest, { id: "req-1", issuedAtMs: 1_699_999_999_000 });
    assert.deepEqual(d.args, base.args);
    const { apply } = toApplyEntry({ type: "normal", index: 5, term: 2, data: b } as never);
    assert.deepEqual(apply.request, {
      id: "req-1",
      hash: requestHash({ data: base.data, args: base.args }),
      issuedAtMs: 1_699_999_999_000,
    });
  });

  it("a malformed client request is CORRUPTED", () => {
    const b = encodeEntryPayload({ ...base, clientRequest: { id: "abc", issuedAtMs: 5 } });
    const bad = new Uint8Array(b);
    bad[b.byteLength - 8 - 3] = 0x20; // a space in the id
    assert.throws(
      () => decodeEntryPayload(bad),
      (e) => isNexusError(e) && e.code === "CORRUPTED",
    );
    assert.throws(
      () => decodeEntryPayload(b.subarray(0, b.byteLength - 1)),
      (e) => isNexusError(e) && e.code === "CORRUPTED",
    );
  });
});
