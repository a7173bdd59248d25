/**
 * The gRPC Save's request args `request-id` and `request-issued-at`: a save repeated with the
 * same id applies once and answers the first result (src/store/request-records.ts).
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Nexus } from "../../src/api/gen/nexus_pb.js";
import { startApiServer } from "../../src/api/server.js";
import { requestOf } from "../../src/api/service.js";
import { createReplicator } from "../../src/node/replicator.js";
import { SqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { isNexusError } from "../../src/errors/index.js";
import { until } from "../node/helpers.js";
import { freePort } from "../free-port.js";

const roots: string[] = [];
after(() => {
  for (const d of roots) rmSync(d, { recursive: true, force: true });
});
const enc = new TextEncoder();
const dec = new TextDecoder();

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
    const dir = mkdtempSync(join(tmpdir(), "nexus-api-rid-"));
    roots.push(dir);
    const url = `http://127.0.0.1:${await freePort()}`;
    const rep = createReplicator({
      nodeUrl: url,
      clusterUrls: [url],
      store: new SqliteStore({ path: join(dir, "db.sqlite") }),
      logDir: join(dir, "logs"),
      snapDir: join(dir, "snap"),
      heartbeatTickMs: 20,
      electionTickMs: 200,
    });
    await rep.start();
    const api = await startApiServer({
      replicator: rep,
      host: "127.0.0.1",
      port: 0,
      maxRequestBytes: 1024 * 1024,
    });
    const client = createClient(
      Nexus,
      createGrpcTransport({ baseUrl: `http://127.0.0.1:${api.port}` }),
    );
    try {
      await until(() => rep.status().role === "leader", 10_000, "the node to lead");
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
      await api.close();
      await rep.stop();
    }
  });
});
