/**
 * End to end through a gRPC client generated from proto/nexus.proto (the original's proto), against
 * real bin/sqlite_repl processes: every RPC, errors as gRPC statuses with the original's Status as
 * a detail, malformed and oversized requests, NOT_SERVING, and a node added and removed.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import type { Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import {
  HealthCheckResponse_ServingStatus,
  Nexus,
  StatusSchema,
} from "../../src/api/gen/nexus_pb.js";
import { NodeInfo_NodeStatus } from "../../src/api/gen/models/internal_pb.js";
import { ErrorInfoSchema } from "../../src/api/gen/google/rpc/error_details_pb.js";
import { SqliteNode, repl, sqliteCluster, tempDir, until } from "./programs.js";
import { freePort } from "../free-port.js";

const enc = new TextEncoder();
const dec = new TextDecoder();

function clientOf(n: SqliteNode): Client<typeof Nexus> {
  return createClient(Nexus, createGrpcTransport({ baseUrl: `http://${n.addr}` }));
}

/** The error a call fails with. */
async function failure(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof ConnectError, String(err));
    return err;
  }
  assert.fail("the call succeeded");
}

/** The Nexus code of a failed call, from its google.rpc.ErrorInfo detail. */
function nexusCode(e: ConnectError): string {
  const [info] = e.findDetails(ErrorInfoSchema);
  assert.ok(info, "the error carries a google.rpc.ErrorInfo detail");
  assert.equal(info.domain, "nexus");
  return info.reason;
}

function statusDetail(e: ConnectError): { code: number; message: string } {
  const [d] = e.findDetails(StatusSchema);
  assert.ok(d, "the error carries a nexus.api.Status detail");
  return { code: d.code, message: d.message };
}

describe("gRPC API end to end", () => {
  it("serves every RPC of nexus.api.Nexus with the original's shapes, and refuses bad requests clearly", async () => {
    const nodes = await sqliteCluster(3, ["-nexus-max-request-bytes=2048"]);
    await Promise.all(nodes.map((n) => n.start()));
    const c = clientOf(nodes[1]!);

    // Check: SERVING once a leader is known.
    await until(
      "SERVING",
      async () => (await c.check({ service: "" })).status,
      (s) => s === HealthCheckResponse_ServingStatus.SERVING,
    );

    // ListNodes: the leader's id and every member with its NodeInfo.
    const list = await until(
      "a leader in ListNodes",
      () => c.listNodes({}),
      (l) => l.leader !== 0n,
    );
    assert.equal(list.status?.code, 0);
    const infos = Object.entries(list.nodes);
    assert.equal(infos.length, 3);
    for (const [key, info] of infos) {
      assert.equal(BigInt(key), info.nodeId);
      assert.ok(nodes.some((n) => n.url === info.nodeUrl));
      assert.equal(
        info.status,
        info.nodeId === list.leader ? NodeInfo_NodeStatus.LEADER : NodeInfo_NodeStatus.FOLLOWER,
      );
    }

    // Save and Load: reqData echoed, resData the store's answer, args passed through.
    const s1 = await c.save({
      data: enc.encode("create table kv (k text primary key, v text)"),
      args: {},
    });
    assert.equal(s1.status?.code, 0);
    assert.equal(dec.decode(s1.reqData), "create table kv (k text primary key, v text)");
    const s2 = await c.save({
      data: enc.encode("insert into kv values (?, ?)"),
      args: { params: enc.encode('["a", "1"]') },
    });
    assert.equal(dec.decode(s2.resData), '{"rowsAffected":1,"lastInsertId":1}');
    for (const consistency of ["linearizable", "lease", "local"]) {
      const l = await until(
        `a ${consistency} load`,
        () =>
          c.load({
            data: enc.encode("select v from kv where k = 'a'"),
            args: { consistency: enc.encode(consistency) },
          }),
        (r) => dec.decode(r.resData) === '[{"v":"1"}]',
      );
      assert.equal(l.status?.code, 0);
    }

    // A statement error: a gRPC status with human text, the Nexus code in ErrorInfo, and the
    // original's Status (-1 and the message).
    const e1 = await failure(c.save({ data: enc.encode("insert into nope values (1)"), args: {} }));
    assert.equal(e1.code, Code.InvalidArgument);
    assert.match(e1.rawMessage, /^no such table: nope/);
    assert.equal(nexusCode(e1), "STORE_ERROR");
    assert.deepEqual(statusDetail(e1), { code: -1, message: e1.rawMessage });

    // Malformed requests.
    const e2 = await failure(
      c.load({ data: enc.encode("select 1"), args: { consistency: enc.encode("eventual") } }),
    );
    assert.equal(e2.code, Code.InvalidArgument);
    assert.equal(nexusCode(e2), "INVALID_ARGUMENT");
    assert.match(e2.rawMessage, /consistency must be linearizable, lease, local or bounded/);
    const e3 = await failure(
      c.save({ data: enc.encode("select 1"), args: { params: new Uint8Array([0xff, 0xfe]) } }),
    );
    assert.equal(e3.code, Code.InvalidArgument);
    assert.match(e3.rawMessage, /not UTF-8/);
    const e4 = await failure(c.save({ data: new Uint8Array(0), args: {} }));
    assert.equal(e4.code, Code.InvalidArgument);

    // Oversized: refused before anything is proposed.
    const big = enc.encode(`insert into kv values ('big', '${"x".repeat(4096)}')`);
    const e5 = await failure(c.save({ data: big, args: {} }));
    assert.equal(e5.code, Code.ResourceExhausted);
    assert.equal(nexusCode(e5), "TOO_LARGE");
    assert.match(e5.rawMessage, /exceeds the limit of 2048 bytes/);
    assert.equal(statusDetail(e5).code, -1);
    const after = await c.load({ data: enc.encode("select count(*) as n from kv"), args: {} });
    assert.equal(dec.decode(after.resData), '[{"n":1}]');

    // Membership: unknown URL removed, unreachable URL added, a URL already present: refused.
    const e6 = await failure(c.removeNode({ nodeUrl: "http://127.0.0.1:1" }));
    assert.equal(e6.code, Code.FailedPrecondition);
    assert.equal(nexusCode(e6), "MEMBERSHIP_REFUSED");
    assert.match(e6.rawMessage, /is not a member; nothing changed/);
    const e7 = await failure(c.addNode({ nodeUrl: `http://127.0.0.1:${await freePort()}` }));
    assert.match(e7.rawMessage, /^http:\/\/127\.0\.0\.1:\d+ does not answer/);
    assert.equal(nexusCode(e7), "MEMBERSHIP_REFUSED");
    assert.equal(statusDetail(e7).code, -1);
    const e8 = await failure(c.addNode({ nodeUrl: nodes[0]!.url }));
    assert.match(e8.rawMessage, /already a member/);
    const e9 = await failure(c.addNode({ nodeUrl: "not a url" }));
    assert.equal(e9.code, Code.InvalidArgument);
    assert.equal((await c.listNodes({})).nodes[list.leader.toString()]?.nodeId, list.leader);
    assert.equal(Object.keys((await c.listNodes({})).nodes).length, 3);

    // AddNode of a launched node (-nexus-node-state new), which catches up; RemoveNode of it.
    const fourth = new SqliteNode(
      await freePort(),
      await freePort(),
      tempDir(),
      nodes.map((n) => n.url),
      ["-nexus-node-state=new"],
    );
    await fourth.start();
    const added = await c.addNode({ nodeUrl: fourth.url });
    assert.equal(added.code, 0);
    const four = await c.listNodes({});
    assert.equal(Object.keys(four.nodes).length, 4);
    const c4 = clientOf(fourth);
    await until(
      "the new node to catch up",
      async () =>
        dec.decode(
          (
            await c4.load({
              data: enc.encode("select v from kv"),
              args: { consistency: enc.encode("local") },
            })
          ).resData,
        ),
      (v) => v === '[{"v":"1"}]',
    );
    const removed = await c.removeNode({ nodeUrl: fourth.url });
    assert.equal(removed.code, 0);
    const listed = await repl(nodes[0]!.addr, "listNodes");
    assert.ok(!listed.stdout.includes(fourth.url), listed.stdout);
    assert.equal(await fourth.stop(), 0);

    await Promise.all(nodes.map((n) => n.stop()));
  });

  it("Check answers NOT_SERVING while no leader is known, and SERVING once there is a quorum", async () => {
    const nodes = await sqliteCluster(3);
    await nodes[0]!.start(["-nexus-repl-timeout=1"]);
    const c = clientOf(nodes[0]!);
    // Alone, a member of a 3-node cluster cannot elect a leader.
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(
      (await c.check({ service: "" })).status,
      HealthCheckResponse_ServingStatus.NOT_SERVING,
    );
    // A save meanwhile: the core's no-leader refusal, mapped by code all the way to the client.
    const e = await failure(c.save({ data: enc.encode("create table t (v text)"), args: {} }));
    assert.equal(e.code, Code.Unavailable);
    assert.equal(nexusCode(e), "NO_LEADER");
    assert.match(e.rawMessage, /^the write was not accepted: no leader/);
    const r = await repl(nodes[0]!.addr, "listNodes");
    assert.equal(r.code, 0);
    assert.match(
      r.stdout,
      /^WARNING: Cluster unhealthy, leader unknown\nCurrent cluster members:\n/,
    );
    await nodes[1]!.start();
    await until(
      "SERVING",
      async () => (await c.check({ service: "" })).status,
      (s) => s === HealthCheckResponse_ServingStatus.SERVING,
    );
    await Promise.all(nodes.map((n) => n.stop()));
  });
});
