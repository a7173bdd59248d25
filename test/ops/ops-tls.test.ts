/**
 * The operations HTTP port served with TLS when the gRPC service's TLS material is given: HTTPS
 * with the node's certificate, a client certificate required when the material has a trusted CA,
 * plain HTTP refused, and a reload of the material taken without a restart.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import https from "node:https";
import type { TLSSocket } from "node:tls";
import http from "node:http";
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createReplicator } from "../../src/node/replicator.js";
import type { Replicator } from "../../src/node/replicator.js";
import { MemoryStore } from "../../src/store/memory/index.js";
import { createOperations } from "../../src/ops/operations.js";
import type { Operations } from "../../src/ops/operations.js";
import { loadGrpcTls } from "../../src/security/tls.js";
import { freePort } from "../free-port.js";
import { TestCa } from "../transport/certs.js";

const dir = mkdtempSync(join(tmpdir(), "nexus-ops-tls-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** GET over HTTPS with the given options; resolves with the status and body, rejects on TLS errors. */
function httpsGet(
  port: number,
  path: string,
  opts: https.RequestOptions,
): Promise<{ status: number; body: string; fingerprint: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get({ host: "127.0.0.1", port, path, timeout: 5000, ...opts }, (res) => {
      const fingerprint = (res.socket as TLSSocket).getPeerCertificate().fingerprint256;
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body, fingerprint }));
    });
    req.on("timeout", () => req.destroy(new Error("timed out")));
    req.on("error", reject);
  });
}

describe("the operations port with TLS", () => {
  const ca = TestCa.create();
  let rep: Replicator;
  let ops: Operations;
  let port: number;
  const live = {
    certFile: join(dir, "grpc.pem"),
    keyFile: join(dir, "grpc-key.pem"),
    trustedCaFile: join(dir, "grpc-ca.pem"),
  };
  let client: { certFile: string; keyFile: string };
  let tls: ReturnType<typeof loadGrpcTls>;

  before(async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    rep = createReplicator({
      nodeUrl: url,
      clusterUrls: [url],
      store: new MemoryStore(),
      logDir: join(dir, "logs"),
      snapDir: join(dir, "snap"),
      heartbeatTickMs: 20,
      electionTickMs: 200,
    });
    await rep.start();
    port = await freePort();
    const first = ca.issue(`https://127.0.0.1:${port}`, { hostSan: true });
    copyFileSync(first.certFile, live.certFile);
    copyFileSync(first.keyFile, live.keyFile);
    copyFileSync(ca.caFile, live.trustedCaFile);
    client = ca.issue("https://client.example:1");
    tls = loadGrpcTls(live);
    ops = createOperations({
      version: "0.0.0-test",
      httpPort: port,
      tls,
      defaultReadMode: "linearizable",
    });
    await ops.start(rep, "");
  });
  after(async () => {
    await ops.close();
    await rep.stop();
  });

  it("answers HTTPS clients with a certificate from the trusted CA", async () => {
    const r = await httpsGet(port, "/livez", {
      ca: readFileSync(ca.caFile),
      cert: readFileSync(client.certFile),
      key: readFileSync(client.keyFile),
    });
    assert.equal(r.status, 200, r.body);
    const m = await httpsGet(port, "/metrics", {
      ca: readFileSync(ca.caFile),
      cert: readFileSync(client.certFile),
      key: readFileSync(client.keyFile),
    });
    assert.match(m.body, /nexus_build_info\{version="0\.0\.0-test"\} 1/);
  });

  it("refuses a client without a certificate, and plain HTTP", async () => {
    await assert.rejects(httpsGet(port, "/livez", { ca: readFileSync(ca.caFile) }));
    await assert.rejects(
      new Promise((resolve, reject) => {
        const req = http.get({ host: "127.0.0.1", port, path: "/livez", timeout: 3000 }, (res) => {
          res.resume();
          res.on("end", () => resolve(res.statusCode));
        });
        req.on("timeout", () => req.destroy(new Error("timed out")));
        req.on("error", reject);
      }),
    );
  });

  it("serves a reloaded certificate without a restart", async () => {
    const opts = {
      ca: readFileSync(ca.caFile),
      cert: readFileSync(client.certFile),
      key: readFileSync(client.keyFile),
      agent: false as const,
    };
    const old = await httpsGet(port, "/livez", opts);
    const next = ca.issue(`https://localhost:${port}`, { hostSan: true });
    copyFileSync(next.certFile, live.certFile);
    copyFileSync(next.keyFile, live.keyFile);
    // What SIGHUP does in nexus serve: the gRPC service's material is reloaded, and this port too.
    assert.equal(tls.reload(), true);
    const now = await httpsGet(port, "/livez", { ...opts, servername: "localhost" });
    assert.equal(now.status, 200);
    assert.notEqual(now.fingerprint, old.fingerprint);
  });
});
