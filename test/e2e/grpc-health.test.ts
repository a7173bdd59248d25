/**
 * grpc.health.v1.Health on a node's gRPC port, asked by grpc-js (the client Kubernetes-style
 * probes are built on) from the proto file alone: Check answers SERVING for "" and for
 * nexus.api.Nexus, NOT_FOUND for a service not served; Watch streams SERVING, then NOT_SERVING
 * when the node loses its leader, then SERVING again once the others are back.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import type { SqliteNode } from "./programs.js";
import { ROOT, sqliteCluster, until } from "./programs.js";

type Unary = (
  req: { service: string },
  cb: (err: grpc.ServiceError | null, res?: { status: string }) => void,
) => void;

interface HealthClient extends grpc.Client {
  Check: Unary;
  Watch(req: { service: string }): grpc.ClientReadableStream<{ status: string }>;
}

function healthClient(addr: string): HealthClient {
  const def = protoLoader.loadSync(join(ROOT, "proto", "grpc", "health", "v1", "health.proto"), {
    enums: String,
  });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    grpc: {
      health: { v1: { Health: new (a: string, c: grpc.ChannelCredentials) => HealthClient } };
    };
  };
  return new pkg.grpc.health.v1.Health(addr, grpc.credentials.createInsecure());
}

function check(c: HealthClient, service: string): Promise<string> {
  return new Promise((resolve, reject) =>
    c.Check({ service }, (err, res) => (err === null ? resolve(res!.status) : reject(err))),
  );
}

describe("grpc.health.v1.Health", { timeout: 120_000 }, async () => {
  const nodes: SqliteNode[] = await sqliteCluster(3);
  after(async () => {
    await Promise.all(nodes.map((n) => n.stop("SIGKILL")));
  });
  await Promise.all(nodes.map((n) => n.start()));
  const c = healthClient(nodes[2]!.addr);
  after(() => c.close());

  it("Check: SERVING for the server and its services, NOT_FOUND for others", async () => {
    await until(
      "serving",
      () => check(c, ""),
      (s) => s === "SERVING",
    );
    assert.equal(await check(c, "nexus.api.Nexus"), "SERVING");
    assert.equal(await check(c, "nexus.api.NexusAdmin"), "SERVING");
    await assert.rejects(check(c, "no.such.Service"), (err: grpc.ServiceError) => {
      assert.equal(err.code, grpc.status.NOT_FOUND);
      assert.match(err.details, /"no\.such\.Service" is not served here/);
      return true;
    });
  });

  it("Watch: streams each change of the node's health until cancelled", async () => {
    const seen: string[] = [];
    const stream = c.Watch({ service: "" });
    stream.on("data", (m: { status: string }) => seen.push(m.status));
    const ended = new Promise<grpc.StatusObject | Error>((resolve) => {
      stream.on("status", resolve);
      stream.on("error", resolve);
    });
    await until(
      "first answer",
      () => Promise.resolve(seen),
      (s) => s.length >= 1,
    );
    assert.deepEqual(seen, ["SERVING"]);
    // Without a quorum the last node has no leader.
    await Promise.all([nodes[0]!.stop(), nodes[1]!.stop()]);
    await until(
      "not serving",
      () => Promise.resolve(seen),
      (s) => s.includes("NOT_SERVING"),
      15_000,
    );
    assert.equal(await check(c, ""), "NOT_SERVING");
    await Promise.all([nodes[0]!.start(), nodes[1]!.start()]);
    await until(
      "serving again",
      () => Promise.resolve(seen.at(-1)),
      (s) => s === "SERVING",
      30_000,
    );
    assert.deepEqual(seen, ["SERVING", "NOT_SERVING", "SERVING"]);
    stream.cancel();
    const end = await ended;
    assert.equal((end as grpc.StatusObject).code, grpc.status.CANCELLED);
    // Watching an unknown service says so, in the stream.
    const unknown = c.Watch({ service: "no.such.Service" });
    const first = await new Promise<{ status: string }>((resolve) => unknown.once("data", resolve));
    assert.equal(first.status, "SERVICE_UNKNOWN");
    unknown.cancel();
    unknown.on("error", () => undefined);
  });
});
