import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import {
  Nexus,
  HealthCheckResponse_ServingStatus,
  StatusSchema,
} from "../../src/api/gen/nexus_pb.js";
import { NodeInfo_NodeStatus } from "../../src/api/gen/models/internal_pb.js";
import { ErrorInfoSchema } from "../../src/api/gen/google/rpc/error_details_pb.js";
import { encodeGrpcMessage } from "../../src/api/server.js";
import { nodeIdOf } from "../../src/node/node-id.js";
import { startSingleNode } from "./single-node.js";

const enc = new TextEncoder();
const dec = new TextDecoder();

describe("gRPC service nexus.api.Nexus", () => {
  it("serves Check, Save, Load, ListNodes with the original's shapes and errors as gRPC statuses", async () => {
    const { url, api, stop } = await startSingleNode("nexus-api-");
    const client = createClient(
      Nexus,
      createGrpcTransport({ baseUrl: `http://127.0.0.1:${api.port}` }),
    );
    try {
      const deadline = Date.now() + 10_000;
      let status = HealthCheckResponse_ServingStatus.UNKNOWN;
      while (Date.now() < deadline && status !== HealthCheckResponse_ServingStatus.SERVING) {
        status = (await client.check({ service: "" })).status;
        if (status !== HealthCheckResponse_ServingStatus.SERVING)
          await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(status, HealthCheckResponse_ServingStatus.SERVING);

      const created = await client.save({
        data: enc.encode("create table t (k text primary key, v text)"),
      });
      assert.equal(created.status?.code, 0);
      const saved = await client.save({
        data: enc.encode("insert into t values (?, ?)"),
        args: { params: enc.encode('["hello", "world"]') },
      });
      assert.deepEqual(JSON.parse(dec.decode(saved.resData)), { rowsAffected: 1, lastInsertId: 1 });
      assert.equal(dec.decode(saved.reqData), "insert into t values (?, ?)");
      const loaded = await client.load({ data: enc.encode("select * from t") });
      assert.deepEqual(JSON.parse(dec.decode(loaded.resData)), [{ k: "hello", v: "world" }]);

      // A failing statement: a gRPC error status, with the original's Status (-1) as a detail.
      await assert.rejects(
        client.save({ data: enc.encode("insert into t values ('hello', 'again')") }),
        (e: unknown) => {
          assert.ok(e instanceof ConnectError);
          assert.equal(e.code, Code.InvalidArgument);
          // Human text in the status; the Nexus code in ErrorInfo, not in the text.
          assert.match(e.rawMessage, /^UNIQUE constraint failed/);
          const [info] = e.findDetails(ErrorInfoSchema);
          assert.deepEqual([info?.reason, info?.domain], ["STORE_ERROR", "nexus"]);
          const details = e.findDetails(StatusSchema);
          assert.equal(details[0]?.code, -1);
          assert.equal(details[0]?.message, e.rawMessage);
          return true;
        },
      );
      // Bad consistency value and oversized requests are refused clearly.
      await assert.rejects(
        client.load({
          data: enc.encode("select 1"),
          args: { consistency: enc.encode("eventual") },
        }),
        /consistency must be/,
      );
      await assert.rejects(
        client.save({ data: new Uint8Array(2 * 1024 * 1024) }),
        (e: unknown) => e instanceof ConnectError && e.code === Code.ResourceExhausted,
      );

      const nodes = await client.listNodes({});
      const id = BigInt(`0x${nodeIdOf(url)}`);
      assert.equal(nodes.leader, id);
      assert.equal(nodes.nodes[id.toString()]?.nodeUrl, url);
      assert.equal(nodes.nodes[id.toString()]?.status, NodeInfo_NodeStatus.LEADER);
    } finally {
      await stop();
    }
  });
});

describe("grpc-message encoding", () => {
  for (const c of [
    {
      name: "reserved URI characters stay readable",
      s: "STORE_ERROR: a/b?c=d",
      want: "STORE_ERROR: a/b?c=d",
    },
    { name: "percent is encoded", s: "100% done", want: "100%25 done" },
    { name: "newline and non-ASCII as UTF-8 bytes", s: "a\nb é", want: "a%0Ab %C3%A9" },
  ]) {
    it(c.name, () => {
      assert.equal(encodeGrpcMessage(c.s), c.want);
      assert.equal(decodeURIComponent(encodeGrpcMessage(c.s)), c.s);
    });
  }
});
