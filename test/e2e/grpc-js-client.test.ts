/**
 * "A client generated from the original proto by any gRPC implementation must work": grpc-js with
 * proto/nexus.proto loaded at run time (no code from this project on the client side) against
 * real bin/sqlite_repl processes.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { ROOT, sqliteCluster, until } from "./programs.js";

interface Unary {
  (req: unknown, cb: (err: grpc.ServiceError | null, res: Record<string, unknown>) => void): void;
}
type NexusStub = grpc.Client &
  Record<"check" | "save" | "load" | "listNodes" | "addNode" | "removeNode", Unary>;

const call = (
  stub: NexusStub,
  method: keyof NexusStub,
  req: unknown,
): Promise<Record<string, unknown>> =>
  new Promise((resolve, reject) =>
    (stub[method] as Unary).call(stub, req, (err, res) =>
      err === null ? resolve(res) : reject(err),
    ),
  );

describe("a grpc-js client of the original proto", () => {
  it("calls Check, Save, Load and ListNodes, and reads errors with the Status detail", async () => {
    const def = protoLoader.loadSync(join(ROOT, "proto", "nexus.proto"), {
      includeDirs: [join(ROOT, "proto")],
      longs: String,
      enums: String,
      defaults: true,
    });
    const pkg = grpc.loadPackageDefinition(def) as unknown as {
      nexus: { api: { Nexus: new (addr: string, creds: grpc.ChannelCredentials) => NexusStub } };
    };
    const nodes = await sqliteCluster(3);
    await Promise.all(nodes.map((n) => n.start()));
    const stub = new pkg.nexus.api.Nexus(nodes[2]!.addr, grpc.credentials.createInsecure());
    try {
      await until(
        "SERVING",
        () => call(stub, "check", { service: "" }),
        (r) => r["status"] === "SERVING",
      );
      const saved = await call(stub, "save", {
        data: Buffer.from("create table t (v text)"),
        args: {},
      });
      assert.deepEqual(saved["status"], { code: 0, message: "" });
      assert.equal(String(saved["reqData"]), "create table t (v text)");
      await call(stub, "save", {
        data: Buffer.from("insert into t values (?)"),
        args: { params: Buffer.from('["grpc-js"]') },
      });
      const loaded = await call(stub, "load", {
        data: Buffer.from("select v from t"),
        args: { consistency: Buffer.from("linearizable") },
      });
      assert.equal(String(loaded["resData"]), '[{"v":"grpc-js"}]');

      const list = await call(stub, "listNodes", {});
      const members = list["nodes"] as Record<
        string,
        { nodeUrl: string; nodeId: string; status: string }
      >;
      assert.equal(Object.keys(members).length, 3);
      // (protobufjs renders 64-bit map keys in its own way; the values carry the ids.)
      const leader = Object.values(members).filter((m) => m.status === "LEADER");
      assert.deepEqual(
        leader.map((m) => m.nodeId),
        [String(list["leader"])],
      );
      for (const m of Object.values(members)) assert.ok(nodes.some((n) => n.url === m.nodeUrl));

      // An error: a gRPC status, with the original's Status in grpc-status-details-bin.
      const err = await call(stub, "save", {
        data: Buffer.from("insert into nope values (1)"),
        args: {},
      }).then(
        () => assert.fail("the bad statement succeeded"),
        (e: grpc.ServiceError) => e,
      );
      assert.equal(err.code, grpc.status.INVALID_ARGUMENT);
      assert.match(err.details, /^STORE_ERROR: no such table: nope/);
      const details = err.metadata.get("grpc-status-details-bin")[0];
      assert.ok(Buffer.isBuffer(details) && details.includes(Buffer.from("nexus.api.Status")));
      assert.ok(details.includes(Buffer.from("no such table: nope")));
    } finally {
      stub.close();
      await Promise.all(nodes.map((n) => n.stop()));
    }
  });
});
