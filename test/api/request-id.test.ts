/**
 * The gRPC Save's request args `request-id` and `request-issued-at`: a save repeated with the
 * same id applies once and answers the first result (src/store/request-records.ts).
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { toBinary } from "@bufbuild/protobuf";
import protobuf from "protobufjs";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Nexus, SaveResponseSchema } from "../../src/api/gen/nexus_pb.js";
import { createNexusClient } from "../../src/api/client.js";
import { createClientSession } from "../../src/api/client-session.js";
import { minIndexOf } from "../../src/api/request-args.js";
import { requestOf } from "../../src/api/service.js";
import { isNexusError } from "../../src/errors/index.js";
import { until } from "../node/helpers.js";
import { startSingleNode } from "./single-node.js";
import type { SingleNode } from "./single-node.js";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** The original's SaveResponse (fields 1 to 3 only): what an old client decodes with. */
const ORIGINAL = protobuf.Root.fromJSON({
  nested: {
    Status: { fields: { code: { type: "int32", id: 1 }, message: { type: "string", id: 2 } } },
    SaveResponse: {
      fields: {
        status: { type: "Status", id: 1 },
        reqData: { type: "bytes", id: 2 },
        resData: { type: "bytes", id: 3 },
      },
    },
  },
}).lookupType("SaveResponse");

/** A single SQLite node with its gRPC service, leading; `stop` ends both. */
async function singleNode(replTimeoutMs = 5000): Promise<SingleNode> {
  const n = await startSingleNode("nexus-api-rid-", { replTimeoutMs });
  await until(() => n.rep.status().role === "leader", 10_000, "the node to lead");
  return n;
}

describe("gRPC Save's index and Load's min-index", () => {
  it("splits min-index off the store's args, and checks it", () => {
    assert.deepEqual(minIndexOf({ params: "[1]", "min-index": "17" }), {
      args: { params: "[1]" },
      minIndex: 17,
    });
    assert.deepEqual(minIndexOf({ params: "[1]" }), { args: { params: "[1]" } });
    for (const bad of ["", "-1", "1.5", "x", "9".repeat(16)]) {
      assert.throws(
        () => minIndexOf({ "min-index": bad }),
        (e) => isNexusError(e, "INVALID_ARGUMENT"),
      );
    }
  });

  it("answers the commit index (a repeat's is the first commit's), which the original's SaveResponse skips", async () => {
    const n = await singleNode();
    const client = createClient(Nexus, createGrpcTransport({ baseUrl: `http://${n.address}` }));
    try {
      const made = await client.save({ data: enc.encode("create table t (v text)") });
      assert.ok(made.index > 0n);
      const args = {
        "request-id": enc.encode("idx-1"),
        "request-issued-at": enc.encode(String(Date.now())),
      };
      const insert = enc.encode("insert into t values ('a')");
      const first = await client.save({ data: insert, args });
      await client.save({ data: enc.encode("insert into t values ('b')") });
      const again = await client.save({ data: insert, args });
      assert.ok(first.index > made.index);
      assert.equal(again.index, first.index);
      assert.equal(BigInt(n.rep.status().applied) > again.index, true);
      // An old client decodes the same message without the new field, and without error.
      const old = ORIGINAL.toObject(ORIGINAL.decode(toBinary(SaveResponseSchema, first)));
      assert.deepEqual(Object.keys(old).sort(), ["reqData", "resData", "status"]);
      assert.deepEqual(new Uint8Array(old["resData"] as Uint8Array), first.resData);
      // A min-index load reads it; one this node cannot reach in time is DEADLINE_EXCEEDED.
      const count = enc.encode("select count(*) as n from t");
      const at = { "min-index": enc.encode(String(again.index)) };
      const rows = await client.load({ data: count, args: at });
      assert.deepEqual(JSON.parse(dec.decode(rows.resData)), [{ n: 2 }]);
      await assert.rejects(
        client.load({ data: count, args: { "min-index": enc.encode("1000000") } }),
        (e: unknown) => e instanceof ConnectError && e.code === Code.DeadlineExceeded,
      );
      await assert.rejects(
        client.load({ data: count, args: { "min-index": enc.encode("soon") } }),
        (e: unknown) => e instanceof ConnectError && e.code === Code.InvalidArgument,
      );
    } finally {
      await n.stop();
    }
  });

  it("a client session sends its saves' highest index with its loads", async () => {
    const n = await singleNode(800);
    const client = createNexusClient(n.address);
    const seen: Record<string, string>[] = [];
    const session = createClientSession({
      saveWithIndex: (d, a) => client.saveWithIndex(d, a),
      load: (d, a = {}) => {
        seen.push(a);
        return client.load(d, a);
      },
    });
    try {
      await session.save(enc.encode("create table t (v text)"));
      await session.save(enc.encode("insert into t values ('a')"));
      assert.equal(session.lastIndex, n.rep.status().applied);
      const rows = await session.load(enc.encode("select v from t"));
      assert.deepEqual(JSON.parse(dec.decode(rows)), [{ v: "a" }]);
      assert.deepEqual(seen.at(-1), { "min-index": String(session.lastIndex) });
      session.observe(1_000_000);
      await assert.rejects(session.load(enc.encode("select v from t")), (e: unknown) =>
        isNexusError(e, "TIMEOUT"),
      );
    } finally {
      client.close();
      await n.stop();
    }
  });
});

describe("gRPC Save with a request id", () => {
  it("splits request-id and request-issued-at off the store's args, and checks them", () => {
    assert.deepEqual(requestOf({ params: "[1]", "request-id": "a", "request-issued-at": "17" }), {
      args: { params: "[1]" },
      request: { requestId: "a", issuedAtMs: 17 },
    });
    assert.deepEqual(requestOf({ params: "[1]" }), { args: { params: "[1]" } });
    for (const bad of [
      { "request-issued-at": "17" },
      { "request-id": "a", "request-issued-at": "x" },
    ]) {
      assert.throws(
        () => requestOf(bad),
        (e) => isNexusError(e, "INVALID_ARGUMENT"),
      );
    }
  });

  it("applies once and answers the first result to a repeat; another payload is refused", async () => {
    const n = await singleNode();
    const client = createClient(Nexus, createGrpcTransport({ baseUrl: `http://${n.address}` }));
    try {
      await client.save({ data: enc.encode("create table t (id integer primary key, v text)") });
      const args = {
        params: enc.encode('["x"]'),
        "request-id": enc.encode("grpc-1"),
        "request-issued-at": enc.encode(String(Date.now())),
      };
      const insert = enc.encode("insert into t (v) values (?)");
      const first = await client.save({ data: insert, args });
      const again = await client.save({ data: insert, args });
      assert.deepEqual(JSON.parse(dec.decode(first.resData)), { rowsAffected: 1, lastInsertId: 1 });
      assert.deepEqual(again.resData, first.resData);
      const rows = await client.load({ data: enc.encode("select count(*) as n from t") });
      assert.deepEqual(JSON.parse(dec.decode(rows.resData)), [{ n: 1 }]);
      await assert.rejects(
        client.save({ data: enc.encode("insert into t (v) values ('other')"), args }),
        (e: unknown) =>
          e instanceof ConnectError &&
          /request id grpc-1 was used for a different request/.test(e.rawMessage),
      );
    } finally {
      await n.stop();
    }
  });
});
