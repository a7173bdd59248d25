/**
 * The gRPC service facing clients it does not trust: tokens and permissions (-auth-file), TLS and
 * client certificates (-grpc-*-file) with reloads, malformed protobuf refused as INVALID_ARGUMENT.
 * Real servers on loopback, real certificates from scripts/make-certs.sh.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import http2 from "node:http2";
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Nexus } from "../../src/api/gen/nexus_pb.js";
import { NexusAdmin } from "../../src/api/gen/nexus_admin_pb.js";
import { startApiServer } from "../../src/api/server.js";
import type { ApiServer } from "../../src/api/server.js";
import { createNexusClient } from "../../src/api/client.js";
import { createReplicator } from "../../src/node/replicator.js";
import type { Replicator } from "../../src/node/replicator.js";
import { SqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { TokenAuth, hashToken, parseAuthFile, permissionNeeded } from "../../src/security/auth.js";
import { loadGrpcTls } from "../../src/security/tls.js";
import { isNexusError } from "../../src/errors/index.js";
import { freePort } from "../free-port.js";
import { TestCa } from "../transport/certs.js";

const dir = mkdtempSync(join(tmpdir(), "nexus-api-security-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const enc = new TextEncoder();

let rep: Replicator;
before(async () => {
  const url = `http://127.0.0.1:${await freePort()}`;
  rep = createReplicator({
    nodeUrl: url,
    clusterUrls: [url],
    store: new SqliteStore({ path: join(dir, "db.sqlite") }),
    logDir: join(dir, "logs"),
    snapDir: join(dir, "snap"),
    heartbeatTickMs: 20,
    electionTickMs: 200,
  });
  await rep.start();
  const t = Date.now();
  while (!rep.status().serving) {
    if (Date.now() - t > 10_000) throw new Error("the node did not start serving");
    await new Promise((r) => setTimeout(r, 20));
  }
});
after(async () => {
  await rep.stop();
});

const TOKENS = { reader: "r-token-1", writer: "w-token-2", admin: "a-token-3", all: "x-token-4" };

function authFile(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

const AUTH_TEXT =
  "# who may do what\n" +
  `reader ${hashToken(TOKENS.reader)} read\n` +
  `writer ${hashToken(TOKENS.writer)} write   # saves only\n` +
  `\nadmin ${hashToken(TOKENS.admin)} admin\n` +
  `ops ${hashToken(TOKENS.all).toUpperCase()} read,write,admin\n`;

async function server(o: Partial<Parameters<typeof startApiServer>[0]> = {}): Promise<ApiServer> {
  return startApiServer({
    replicator: rep,
    host: "127.0.0.1",
    port: 0,
    maxRequestBytes: 1024 * 1024,
    ...o,
  });
}

/** The gRPC code a raw call ends with (or OK). */
async function codeOf(p: Promise<unknown>): Promise<Code | "OK"> {
  try {
    await p;
    return "OK";
  } catch (err) {
    assert.ok(err instanceof ConnectError, String(err));
    return err.code;
  }
}

describe("auth file", () => {
  it("parses names, hashes, permissions and comments", () => {
    const entries = parseAuthFile(AUTH_TEXT, "auth.txt");
    assert.deepEqual(
      entries.map((e) => [e.name, e.line, [...e.permissions].join(",")]),
      [
        ["reader", 2, "read"],
        ["writer", 3, "write"],
        ["admin", 5, "admin"],
        ["ops", 6, "read,write,admin"],
      ],
    );
  });

  it("refuses wrong lines naming each line and what is wrong", () => {
    const text =
      "ok " +
      hashToken("a") +
      " read\n" +
      "short abc read\n" +
      "two fields\n" +
      "p " +
      hashToken("b") +
      " read,fly\n" +
      "ok " +
      hashToken("c") +
      " write\n" +
      "dup " +
      hashToken("a") +
      " admin\n";
    assert.throws(
      () => parseAuthFile(text, "auth.txt"),
      (err: unknown) => {
        assert.ok(isNexusError(err, "BAD_CONFIG"));
        for (const want of [
          /line 2: .*64 hex digits/,
          /line 3: expected 3 fields/,
          /line 4: unknown permission "fly"/,
          /line 5: the name "ok" is already used on line 1/,
          /line 6: the same token hash is already on line 1/,
        ]) {
          assert.match(err.message, want);
        }
        assert.doesNotMatch(err.message, /(?:: |; )line 1:/);
        return true;
      },
    );
    assert.throws(() => parseAuthFile("# nothing\n\n", "auth.txt"), {
      code: "BAD_CONFIG",
      message: /holds no token line/,
    });
  });

  it("maps every method to the permission the issue names (unknown methods need admin)", () => {
    assert.equal(permissionNeeded("nexus.api.Nexus", "Load"), "read");
    assert.equal(permissionNeeded("nexus.api.Nexus", "Check"), "read");
    assert.equal(permissionNeeded("nexus.api.Nexus", "ListNodes"), "read");
    assert.equal(permissionNeeded("nexus.api.Nexus", "Save"), "write");
    assert.equal(permissionNeeded("nexus.api.Nexus", "AddNode"), "admin");
    assert.equal(permissionNeeded("nexus.api.NexusAdmin", "TransferLeader"), "admin");
    assert.equal(permissionNeeded("nexus.api.NexusChecks", "CheckConsistency"), "admin");
    assert.equal(permissionNeeded("nexus.api.Nexus", "SomethingNew"), "admin");
  });

  it("a reload with a wrong file keeps the tokens in use", () => {
    const p = authFile("reload.txt", `a ${hashToken("t1")} read\n`);
    const auth = TokenAuth.load(p);
    assert.equal(auth.decide("Bearer t1", "nexus.api.Nexus", "Load").ok, true);
    writeFileSync(p, `a ${hashToken("t1")} read,oops\n`);
    assert.throws(() => auth.reload(), { code: "BAD_CONFIG", message: /line 1/ });
    assert.equal(auth.decide("Bearer t1", "nexus.api.Nexus", "Load").ok, true);
    writeFileSync(p, `b ${hashToken("t2")} read\n`);
    assert.equal(auth.reload(), 1);
    assert.equal(auth.decide("Bearer t1", "nexus.api.Nexus", "Load").ok, false);
    assert.equal(auth.decide("Bearer t2", "nexus.api.Nexus", "Load").ok, true);
  });
});

describe("tokens and permissions on the gRPC service", () => {
  let api: ApiServer;
  const warned: string[] = [];
  before(async () => {
    api = await server({
      auth: TokenAuth.load(authFile("auth.txt", AUTH_TEXT)),
      logger: { info() {}, warn: (f, m) => void warned.push(`${m} ${JSON.stringify(f)}`) },
    });
    const c = createNexusClient(`127.0.0.1:${api.port}`, { token: TOKENS.all });
    await c.save(enc.encode("create table kv (k text primary key, v text)"));
    c.close();
  });
  after(() => api.close());

  const raw = (token?: string) => {
    const transport = createGrpcTransport({
      baseUrl: `http://127.0.0.1:${api.port}`,
      interceptors:
        token === undefined
          ? []
          : [
              (next) => (req) => {
                req.header.set("authorization", `Bearer ${token}`);
                return next(req);
              },
            ],
    });
    return { nexus: createClient(Nexus, transport), admin: createClient(NexusAdmin, transport) };
  };

  it("a client without a token, or with a wrong one, is refused everything with one bare message", async () => {
    const messages = new Set<string>();
    for (const token of [undefined, "not-a-token", TOKENS.all + "x"]) {
      const { nexus, admin } = raw(token);
      for (const call of [
        nexus.save({ data: enc.encode("insert into kv values ('x', 'y')") }),
        nexus.load({ data: enc.encode("select * from kv") }),
        nexus.listNodes({}),
        nexus.check({}),
        // The attack of the issue: add itself as a learner and receive every write.
        admin.addMember({ nodeUrl: "http://127.0.0.1:1", learner: true, noProbe: true }),
        nexus.removeNode({ nodeUrl: "http://127.0.0.1:1" }),
      ]) {
        try {
          await call;
          assert.fail("the call was allowed");
        } catch (err) {
          assert.ok(err instanceof ConnectError);
          assert.equal(err.code, Code.Unauthenticated);
          messages.add(err.rawMessage);
        }
      }
    }
    assert.equal(messages.size, 1, [...messages].join(" | "));
    assert.doesNotMatch([...messages][0]!, /reader|writer|admin|ops|hash|line/);
    assert.equal(rep.listMembers().members.length, 1, "no member was added");
    // The refusal is logged for the operator (without the token).
    assert.ok(warned.some((l) => /refused a gRPC call/.test(l) && /UNAUTHENTICATED/.test(l)));
    assert.ok(warned.every((l) => !l.includes(TOKENS.all)));
  });

  it("read may load and list, not save nor change the membership; write may save; admin administers", async () => {
    const reader = raw(TOKENS.reader);
    assert.equal(await codeOf(reader.nexus.load({ data: enc.encode("select 1") })), "OK");
    assert.equal(await codeOf(reader.nexus.listNodes({})), "OK");
    assert.equal(await codeOf(reader.nexus.check({})), "OK");
    assert.equal(await codeOf(reader.admin.listMembers({})), "OK");
    assert.equal(
      await codeOf(reader.nexus.save({ data: enc.encode("insert into kv values ('r', '1')") })),
      Code.PermissionDenied,
    );
    assert.equal(
      await codeOf(
        reader.admin.addMember({ nodeUrl: "http://127.0.0.1:1", learner: true, noProbe: true }),
      ),
      Code.PermissionDenied,
    );
    const writer = raw(TOKENS.writer);
    assert.equal(
      await codeOf(writer.nexus.save({ data: enc.encode("insert into kv values ('w', '1')") })),
      "OK",
    );
    assert.equal(
      await codeOf(writer.nexus.load({ data: enc.encode("select 1") })),
      Code.PermissionDenied,
    );
    assert.equal(await codeOf(writer.admin.transferLeader({ nodeUrl: "" })), Code.PermissionDenied);
    const admin = raw(TOKENS.admin);
    assert.equal(
      await codeOf(admin.nexus.save({ data: enc.encode("insert into kv values ('a', '1')") })),
      Code.PermissionDenied,
    );
    // Allowed through (a single node cannot transfer leadership: refused by the node, not auth).
    const transfer = await codeOf(admin.admin.transferLeader({ nodeUrl: "" }));
    assert.notEqual(transfer, Code.PermissionDenied);
    assert.notEqual(transfer, Code.Unauthenticated);
    const rows = await createNexusClient(`127.0.0.1:${api.port}`, { token: TOKENS.all }).load(
      enc.encode("select k from kv order by k"),
    );
    assert.deepEqual(
      JSON.parse(new TextDecoder().decode(rows)),
      [{ k: "w" }],
      "only the writer wrote",
    );
  });

  it("the client reports a refused save as PERMISSION_DENIED or UNAUTHENTICATED, never as an unknown outcome", async () => {
    const c = createNexusClient(`127.0.0.1:${api.port}`, { token: TOKENS.reader });
    await assert.rejects(c.save(enc.encode("insert into kv values ('q', '1')")), {
      code: "PERMISSION_DENIED",
    });
    await assert.rejects(c.addNode("http://127.0.0.1:1"), { code: "PERMISSION_DENIED" });
    c.close();
    const anon = createNexusClient(`127.0.0.1:${api.port}`);
    await assert.rejects(anon.save(enc.encode("insert into kv values ('q', '1')")), {
      code: "UNAUTHENTICATED",
    });
    anon.close();
  });
});

describe("malformed requests", () => {
  let api: ApiServer;
  before(async () => {
    api = await server();
  });
  after(() => api.close());

  /** Posts a raw gRPC body to a method; resolves with grpc-status and grpc-message. */
  function post(path: string, body: Buffer): Promise<{ status: string; message: string }> {
    return new Promise((resolve, reject) => {
      const s = http2.connect(`http://127.0.0.1:${api.port}`);
      s.on("error", reject);
      const req = s.request({
        ":method": "POST",
        ":path": path,
        "content-type": "application/grpc+proto",
        te: "trailers",
      });
      let headers: http2.IncomingHttpHeaders = {};
      req.on("response", (h) => (headers = h));
      req.on("trailers", (t) => (headers = { ...headers, ...t }));
      req.on("data", () => undefined);
      req.on("end", () => {
        s.close();
        resolve({
          status: String(headers["grpc-status"]),
          message: String(headers["grpc-message"] ?? ""),
        });
      });
      req.on("error", reject);
      req.end(body);
    });
  }
  const envelope = (msg: Buffer): Buffer => {
    const h = Buffer.alloc(5);
    h.writeUInt32BE(msg.length, 1);
    return Buffer.concat([h, msg]);
  };

  it("a body that is not protobuf gets INVALID_ARGUMENT, not INTERNAL", async () => {
    for (const [path, bytes] of [
      ["/nexus.api.Nexus/Save", Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f])], // length past the end
      ["/nexus.api.Nexus/Load", Buffer.from([0x07])], // wire type 7 does not exist
      ["/nexus.api.NexusAdmin/AddMember", Buffer.from([0x0a, 0x02, 0xc3, 0x28])], // string not UTF-8
    ] as const) {
      const r = await post(path, envelope(bytes));
      assert.equal(r.status, String(Code.InvalidArgument), `${path}: ${JSON.stringify(r)}`);
      assert.match(decodeURIComponent(r.message), /not a valid nexus\.api\.\w+ message/);
    }
    // A valid message still works through the same path.
    const ok = await post("/nexus.api.Nexus/Check", envelope(Buffer.alloc(0)));
    assert.equal(ok.status, "0");
  });
});

describe("TLS for clients", () => {
  const ca = TestCa.create();
  const otherCa = TestCa.create();
  // Each CA is made with its first certificate.
  before(() => void otherCa.issue("https://client.example:2"));

  it("serves TLS with the given certificate, and refuses clients that do not trust it", async () => {
    const port = await freePort();
    const files = ca.issue(`https://127.0.0.1:${port}`, { hostSan: true });
    const api = await server({
      port,
      tls: loadGrpcTls({ certFile: files.certFile, keyFile: files.keyFile }),
    });
    try {
      const good = createNexusClient(`127.0.0.1:${port}`, { tls: { ca: readFileSync(ca.caFile) } });
      assert.equal(await good.check(), "SERVING");
      good.close();
      const wrongCa = createNexusClient(`127.0.0.1:${port}`, {
        tls: { ca: readFileSync(otherCa.caFile) },
        timeoutMs: 5000,
      });
      // Nothing was sent: UNREACHABLE (not an unknown outcome), saying TLS failed.
      await assert.rejects(wrongCa.save(enc.encode("select 1")), {
        code: "UNREACHABLE",
        message: /TLS handshake/,
      });
      wrongCa.close();
      const plain = createNexusClient(`127.0.0.1:${port}`, { timeoutMs: 3000 });
      await assert.rejects(plain.check());
      plain.close();
    } finally {
      await api.close();
    }
  });

  it("with a trusted CA, requires a client certificate it signed; reloads certificates without a restart", async () => {
    const port = await freePort();
    const live = {
      certFile: join(dir, "grpc.pem"),
      keyFile: join(dir, "grpc-key.pem"),
      trustedCaFile: join(dir, "grpc-ca.pem"),
    };
    const first = ca.issue(`https://127.0.0.1:${port}`, { hostSan: true });
    copyFileSync(first.certFile, live.certFile);
    copyFileSync(first.keyFile, live.keyFile);
    copyFileSync(ca.caFile, live.trustedCaFile);
    const tls = loadGrpcTls(live);
    const api = await server({ port, tls });
    const client = ca.issue("https://client.example:1");
    const caPem = readFileSync(ca.caFile);
    try {
      const withCert = createNexusClient(`127.0.0.1:${port}`, {
        tls: { ca: caPem, cert: readFileSync(client.certFile), key: readFileSync(client.keyFile) },
      });
      assert.equal(await withCert.check(), "SERVING");
      withCert.close();
      const without = createNexusClient(`127.0.0.1:${port}`, {
        tls: { ca: caPem },
        timeoutMs: 5000,
      });
      await assert.rejects(without.check());
      without.close();
      const foreign = otherCa.issue("https://client.example:2");
      const foreignClient = createNexusClient(`127.0.0.1:${port}`, {
        tls: {
          ca: caPem,
          cert: readFileSync(foreign.certFile),
          key: readFileSync(foreign.keyFile),
        },
        timeoutMs: 5000,
      });
      await assert.rejects(foreignClient.check());
      foreignClient.close();

      // New certificates from the other CA, trusting the other CA for clients: reloaded.
      const second = otherCa.issue(`https://127.0.0.1:${port}`, { hostSan: true });
      copyFileSync(second.certFile, live.certFile);
      copyFileSync(second.keyFile, live.keyFile);
      copyFileSync(otherCa.caFile, live.trustedCaFile);
      assert.equal(tls.reload(), true);
      const after2 = createNexusClient(`127.0.0.1:${port}`, {
        tls: {
          ca: readFileSync(otherCa.caFile),
          cert: readFileSync(foreign.certFile),
          key: readFileSync(foreign.keyFile),
        },
      });
      assert.equal(await after2.check(), "SERVING");
      after2.close();
      // A broken key is not loaded: the reload throws and the server keeps what it has.
      writeFileSync(live.keyFile, "not a key");
      assert.throws(() => tls.reload(), { code: "BAD_CONFIG", message: /gRPC TLS/ });
      const still = createNexusClient(`127.0.0.1:${port}`, {
        tls: {
          ca: readFileSync(otherCa.caFile),
          cert: readFileSync(foreign.certFile),
          key: readFileSync(foreign.keyFile),
        },
      });
      assert.equal(await still.check(), "SERVING");
      still.close();
    } finally {
      await api.close();
    }
  });

  it("refuses at load a certificate that cannot serve TLS, naming the flag", () => {
    assert.throws(
      () => loadGrpcTls({ certFile: join(dir, "missing.pem"), keyFile: join(dir, "missing.pem") }),
      { code: "BAD_CONFIG", message: /-grpc-cert-file/ },
    );
  });
});
