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
import protobuf from "protobufjs";
import { ROOT, sqliteCluster, until } from "./programs.js";

/**
 * gRPC's richer error model as a client declares it (googleapis' google/rpc/status.proto and
 * error_details.proto, field numbers as published), and the original's nexus.api.Status: written
 * here, not loaded from this project's proto/, so the test checks the wire, not our own files.
 */
const MAP_STRING_STRING_3: protobuf.IMapField = { keyType: "string", type: "string", id: 3 };
const RICH = protobuf.Root.fromJSON({
  nested: {
    google: {
      nested: {
        protobuf: {
          nested: {
            Any: {
              fields: { typeUrl: { type: "string", id: 1 }, value: { type: "bytes", id: 2 } },
            },
          },
        },
        rpc: {
          nested: {
            Status: {
              fields: {
                code: { type: "int32", id: 1 },
                message: { type: "string", id: 2 },
                details: { rule: "repeated", type: "google.protobuf.Any", id: 3 },
              },
            },
            ErrorInfo: {
              fields: {
                reason: { type: "string", id: 1 },
                domain: { type: "string", id: 2 },
                metadata: MAP_STRING_STRING_3,
              },
            },
          },
        },
      },
    },
    nexus: {
      nested: {
        api: {
          nested: {
            Status: {
              fields: { code: { type: "int32", id: 1 }, message: { type: "string", id: 2 } },
            },
          },
        },
      },
    },
  },
});

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
  it("calls Check, Save, Load and ListNodes, and reads errors: status code, human message, ErrorInfo", async () => {
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

      // An error: a gRPC status with a human message; grpc-status-details-bin holds a
      // google.rpc.Status whose details are the Nexus code as a google.rpc.ErrorInfo and the
      // original's nexus.api.Status.
      const err = await call(stub, "save", {
        data: Buffer.from("insert into nope values (1)"),
        args: {},
      }).then(
        () => assert.fail("the bad statement succeeded"),
        (e: grpc.ServiceError) => e,
      );
      assert.equal(err.code, grpc.status.INVALID_ARGUMENT);
      assert.match(err.details, /^no such table: nope/);
      const bin = err.metadata.get("grpc-status-details-bin")[0];
      assert.ok(Buffer.isBuffer(bin), "grpc-status-details-bin is present");
      const status = RICH.lookupType("google.rpc.Status").decode(bin).toJSON() as {
        code: number;
        message: string;
        details: { typeUrl: string; value: string }[];
      };
      assert.equal(status.code, grpc.status.INVALID_ARGUMENT);
      assert.equal(status.message, err.details);
      assert.deepEqual(
        status.details.map((d) => d.typeUrl),
        ["type.googleapis.com/google.rpc.ErrorInfo", "type.googleapis.com/nexus.api.Status"],
      );
      const info = RICH.lookupType("google.rpc.ErrorInfo")
        .decode(Buffer.from(status.details[0]!.value, "base64"))
        .toJSON();
      assert.deepEqual(info, { reason: "STORE_ERROR", domain: "nexus" });
      const orig = RICH.lookupType("nexus.api.Status")
        .decode(Buffer.from(status.details[1]!.value, "base64"))
        .toJSON();
      assert.deepEqual(orig, { code: -1, message: err.details });
    } finally {
      stub.close();
      await Promise.all(nodes.map((n) => n.stop()));
    }
  });
});
