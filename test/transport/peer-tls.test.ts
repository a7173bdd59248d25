/**
 * Mutual TLS between peers: certificates from scripts/make-certs.sh (test/transport/certs.ts),
 * identities bound to node URLs, refusals of every other certificate, reloads, and the startup
 * checks that keep https:// URLs from running in plaintext.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import http2 from "node:http2";
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Http2Transport } from "../../src/transport/http2-transport.js";
import type { TransportHandler } from "../../src/transport/http2-transport.js";
import { PeerTls } from "../../src/transport/peer-tls.js";
import { nodeIdOf } from "../../src/node/node-id.js";
import { createReplicator } from "../../src/node/replicator.js";
import type { Replicator } from "../../src/node/replicator.js";
import { MemoryStore } from "../../src/store/memory/index.js";
import { runServe } from "../../src/cli/serve.js";
import { STORE_KINDS } from "../../src/cli/stores.js";
import { EXIT } from "../../src/cli/exit-codes.js";
import { createMessage } from "../../src/raft/types.js";
import type { Message } from "../../src/raft/types.js";
import { freePort } from "../free-port.js";
import { TestCa } from "./certs.js";
import type { CertFiles } from "./certs.js";

const scratch = mkdtempSync(join(tmpdir(), "nexus-peer-tls-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

interface Recorder extends TransportHandler {
  msgs: Message[];
}

function recorder(admits: (from: string) => boolean = () => true): Recorder {
  const r: Recorder = {
    msgs: [],
    onMessages: (m) => void r.msgs.push(...m),
    onUnreachable: () => undefined,
    onSnapshot: async () => undefined,
    onSnapshotStatus: () => undefined,
    onProgressRequest: () => new TextEncoder().encode("progress"),
    admitsSender: admits,
  };
  return r;
}

/** Warnings a transport logged. */
function warnings(): { lines: string[]; logger: { warn(f: object, m: string): void } } {
  const lines: string[] = [];
  return { lines, logger: { warn: (f, m) => void lines.push(`${m} ${JSON.stringify(f ?? {})}`) } };
}

async function until(cond: () => boolean, ms = 10_000, what = "condition"): Promise<void> {
  const t = Date.now();
  while (!cond()) {
    if (Date.now() - t > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function httpsUrl(): Promise<string> {
  return `https://127.0.0.1:${await freePort()}`;
}

/**
 * A TLS transport for `url` (its id is the URL's node id) with the given files. `claim`
 * overrides the URL it says it is (an impostor); `checkSelf` false skips the startup check that
 * its certificate names its URL.
 */
function tlsNode(
  url: string,
  files: CertFiles,
  handler: TransportHandler,
  opts: {
    claim?: string;
    checkSelf?: boolean;
    logger?: { warn(f: object, m: string): void };
  } = {},
): Http2Transport {
  const claim = opts.claim ?? url;
  return new Http2Transport({
    id: nodeIdOf(claim),
    clusterName: "tls",
    listenHost: "127.0.0.1",
    listenPort: Number(new URL(url).port),
    handler,
    openSnapshot: async function* () {},
    selfUrl: claim,
    idOfUrl: (u) => nodeIdOf(u),
    tls: PeerTls.load(files, opts.checkSelf === false ? undefined : claim),
    ...(opts.logger === undefined ? {} : { logger: opts.logger }),
  });
}

const hb = (from: string, to: string, term: number): Message =>
  createMessage({ type: "heartbeat", from, to, term });

describe("mutual TLS between peers", () => {
  const ca = TestCa.create();

  it("peers with certificates from the trusted CA exchange messages both ways", async () => {
    const [ua, ub] = [await httpsUrl(), await httpsUrl()];
    const [ia, ib] = [nodeIdOf(ua), nodeIdOf(ub)];
    const [ra, rb] = [recorder(), recorder()];
    const a = tlsNode(ua, ca.issue(ua), ra);
    const b = tlsNode(ub, ca.issue(ub), rb);
    await a.start();
    await b.start();
    try {
      a.addPeer(ib, ub);
      b.addPeer(ia, ua);
      a.send([hb(ia, ib, 1)]);
      b.send([hb(ib, ia, 2)]);
      await until(() => rb.msgs.length === 1 && ra.msgs.length === 1, 10_000, "delivery");
      assert.equal(rb.msgs[0]!.from, ia);
      assert.equal(ra.msgs[0]!.from, ib);
      assert.equal(new TextDecoder().decode(await a.requestProgress(ib, 5000)), "progress");
    } finally {
      await a.stop();
      await b.stop();
    }
  });

  it("a peer with a CA-signed certificate for another name (even another member's) cannot send as a member", async () => {
    const [ua, ub, uc, um] = [
      await httpsUrl(),
      await httpsUrl(),
      await httpsUrl(),
      await httpsUrl(),
    ];
    const rb = recorder();
    const wb = warnings();
    const b = tlsNode(ub, ca.issue(ub), rb, { logger: wb.logger });
    await b.start();
    // The impostor listens at um with a valid certificate naming member a, and claims to be c.
    const impostor = tlsNode(um, ca.issue(ua), recorder(), { claim: uc, checkSelf: false });
    // Another one has a valid certificate for its own URL um and claims to be c.
    const other = tlsNode(um.replace(/:\d+$/, `:${await freePort()}`), ca.issue(um), recorder(), {
      claim: uc,
      checkSelf: false,
    });
    await impostor.start();
    await other.start();
    try {
      for (const t of [impostor, other]) t.addPeer(nodeIdOf(ub), ub);
      for (let i = 1; i <= 5; i++) {
        impostor.send([hb(nodeIdOf(uc), nodeIdOf(ub), i)]);
        other.send([hb(nodeIdOf(uc), nodeIdOf(ub), i)]);
        await new Promise((r) => setTimeout(r, 50));
      }
      await until(() => b.refused().refusedRequests >= 2, 10_000, "two refusals");
      assert.equal(rb.msgs.length, 0, "no message from an impostor reached the node");
      assert.ok(
        wb.lines.some((l) => /does not name the sender's URL/.test(l)),
        wb.lines.join("\n"),
      );
      // The holder of a's certificate is a, and may say so: the same connection works as a.
      const realA = tlsNode(ua, ca.issue(ua), recorder());
      await realA.start();
      try {
        realA.addPeer(nodeIdOf(ub), ub);
        realA.send([hb(nodeIdOf(ua), nodeIdOf(ub), 9)]);
        await until(() => rb.msgs.length === 1, 10_000, "a's message");
        assert.equal(rb.msgs[0]!.from, nodeIdOf(ua));
      } finally {
        await realA.stop();
      }
    } finally {
      await impostor.stop();
      await other.stop();
      await b.stop();
    }
  });

  it("a peer with a certificate from another CA, or with none, or in plaintext, cannot connect", async () => {
    const ub = await httpsUrl();
    const rb = recorder();
    const wb = warnings();
    const b = tlsNode(ub, ca.issue(ub), rb, { logger: wb.logger });
    await b.start();
    const foreignCa = TestCa.create();
    const um = await httpsUrl();
    const foreign = tlsNode(um, foreignCa.issue(um), recorder());
    await foreign.start();
    try {
      foreign.addPeer(nodeIdOf(ub), ub);
      foreign.send([hb(nodeIdOf(um), nodeIdOf(ub), 1)]);
      await until(() => wb.lines.some((l) => /TLS handshake failed/.test(l)), 10_000, "a log line");
      // No client certificate at all (trusting the right CA).
      const bare = http2.connect(ub, { ca: readFileSync(ca.caFile) });
      const bareFailed = new Promise<string>((r) => {
        bare.on("error", (e) => r(e.message));
        bare.on("close", () => r("closed"));
      });
      const st = bare.request({ ":method": "GET", ":path": "/nexus/raft/v1/progress" });
      st.on("error", () => undefined);
      await bareFailed;
      bare.destroy();
      // Plaintext HTTP/2 to the TLS port.
      const plain = http2.connect(ub.replace("https:", "http:"));
      const plainFailed = new Promise<void>((r) => {
        plain.on("error", () => r());
        plain.on("close", () => r());
      });
      plain.request({ ":method": "GET", ":path": "/" }).on("error", () => undefined);
      await plainFailed;
      plain.destroy();
      assert.equal(rb.msgs.length, 0);
    } finally {
      await foreign.stop();
      await b.stop();
    }
  });

  it("a node does not talk to a peer whose certificate does not name the peer's URL", async () => {
    const [ua, ub, elsewhere] = [await httpsUrl(), await httpsUrl(), await httpsUrl()];
    const rb = recorder();
    // b serves a certificate for another URL.
    const b = tlsNode(ub, ca.issue(elsewhere), rb, { checkSelf: false });
    const wa = warnings();
    const a = tlsNode(ua, ca.issue(ua), recorder(), { logger: wa.logger });
    await a.start();
    await b.start();
    try {
      a.addPeer(nodeIdOf(ub), ub);
      await until(
        () => {
          a.send([hb(nodeIdOf(ua), nodeIdOf(ub), 1)]);
          return wa.lines.some((l) => /does not name it/.test(l));
        },
        10_000,
        "the refusal",
      );
      assert.equal(rb.msgs.length, 0);
    } finally {
      await a.stop();
      await b.stop();
    }
  });

  it("serves the progress over TLS only to members", async () => {
    const [ua, ub, um] = [await httpsUrl(), await httpsUrl(), await httpsUrl()];
    const b = tlsNode(
      ub,
      ca.issue(ub),
      recorder((from) => from === nodeIdOf(ua)),
    );
    const a = tlsNode(ua, ca.issue(ua), recorder());
    const m = tlsNode(um, ca.issue(um), recorder());
    for (const t of [a, b, m]) await t.start();
    try {
      a.addPeer(nodeIdOf(ub), ub);
      m.addPeer(nodeIdOf(ub), ub);
      assert.equal(
        new TextDecoder().decode(await a.requestProgress(nodeIdOf(ub), 5000)),
        "progress",
      );
      await assert.rejects(m.requestProgress(nodeIdOf(ub), 5000), {
        code: "UNREACHABLE",
        message: /answered HTTP 403/,
      });
    } finally {
      for (const t of [a, b, m]) await t.stop();
    }
  });

  it("reloads certificates on demand and when their files change", async () => {
    const [ua, ub] = [await httpsUrl(), await httpsUrl()];
    const ca2 = TestCa.create();
    const dir = mkdtempSync(join(scratch, "reload-"));
    const live = {
      certFile: join(dir, "b.pem"),
      keyFile: join(dir, "b-key.pem"),
      trustedCaFile: join(dir, "ca.pem"),
    };
    const put = (f: CertFiles): void => {
      copyFileSync(f.certFile, live.certFile);
      copyFileSync(f.keyFile, live.keyFile);
      copyFileSync(f.trustedCaFile, live.trustedCaFile);
    };
    const fromCa1 = ca.issue(ub);
    const fromCa2 = ca2.issue(ub);
    put(fromCa1);
    const rb = recorder();
    const b = tlsNode(ub, live, rb);
    const a = tlsNode(ua, ca.issue(ua), recorder());
    await a.start();
    await b.start();
    const ia = nodeIdOf(ua);
    const ib = nodeIdOf(ub);
    a.addPeer(ib, ub);
    let term = 0;
    const reaches = async (what: string): Promise<void> => {
      const before = rb.msgs.length;
      await until(
        () => {
          a.send([hb(ia, ib, ++term)]);
          return rb.msgs.length > before;
        },
        15_000,
        what,
      );
    };
    try {
      await reaches("a message under CA 1");
      assert.equal(b.reloadTls(), false, "nothing changed yet");
      // b moves to CA 2 (a SIGHUP): a, which trusts and holds CA 1 only, is cut off.
      put(fromCa2);
      assert.equal(b.reloadTls(), true);
      await new Promise((r) => setTimeout(r, 300));
      const seen = rb.msgs.length;
      for (let i = 0; i < 10; i++) {
        a.send([hb(ia, ib, ++term)]);
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(rb.msgs.length, seen, "a cannot reach b once b trusts CA 2 only");
      // Unusable files are refused, and the material in use stays.
      copyFileSync(ca.issue(ua).keyFile, live.keyFile);
      assert.throws(() => b.reloadTls(), { code: "BAD_CONFIG", message: /usable pair/ });
      // Back to CA 1 by changing the files only: the node notices by itself.
      put(fromCa1);
      await reaches("a message after the files changed back");
    } finally {
      await a.stop();
      await b.stop();
    }
  });
});

describe("peer TLS configuration", () => {
  const ca = TestCa.create();
  const base = (
    nodeUrl: string,
    clusterUrls: string[],
  ): Parameters<typeof createReplicator>[0] => ({
    nodeUrl,
    clusterUrls,
    store: new MemoryStore(),
    logDir: join(scratch, "logs"),
    snapDir: join(scratch, "snap"),
  });

  it("refuses https:// URLs without peer TLS, TLS files with http:// URLs, and mixed schemes", () => {
    assert.throws(() => createReplicator(base("https://127.0.0.1:1", ["https://127.0.0.1:1"])), {
      code: "BAD_CONFIG",
      message: /https:\/\/, but no peer certificate is configured: give -peer-cert-file/,
    });
    const files = ca.issue("https://127.0.0.1:1");
    assert.throws(
      () =>
        createReplicator({ ...base("http://127.0.0.1:1", ["http://127.0.0.1:1"]), peerTls: files }),
      { code: "BAD_CONFIG", message: /would talk in the clear/ },
    );
    assert.throws(
      () =>
        createReplicator({
          ...base("https://127.0.0.1:1", ["https://127.0.0.1:1", "http://127.0.0.1:2"]),
          peerTls: files,
        }),
      { code: "BAD_CONFIG", message: /differ in scheme/ },
    );
  });

  it("refuses at start a certificate that does not name the node, or a key that does not match", async () => {
    const url = await httpsUrl();
    const wrongName = ca.issue(await httpsUrl());
    const r1 = createReplicator({ ...base(url, [url]), peerTls: wrongName });
    await assert.rejects(r1.start(), {
      code: "BAD_CONFIG",
      message: /does not name this node's URL/,
    });
    await r1.stop();
    const right = ca.issue(url);
    const r2 = createReplicator({
      ...base(url, [url]),
      peerTls: { ...right, keyFile: wrongName.keyFile },
    });
    await assert.rejects(r2.start(), { code: "BAD_CONFIG", message: /usable pair/ });
    await r2.stop();
  });

  it("a node with an https:// URL and no TLS flags refuses to start (exit 2, a clear message)", async () => {
    let err = "";
    const code = await runServe(
      [
        "-nexus-node-url",
        "https://127.0.0.1:9",
        "-nexus-cluster-url",
        "https://127.0.0.1:9",
        "-grpcPort",
        "9",
      ],
      { name: "memory_repl", store: STORE_KINDS.find((k) => k.name === "memory")! },
      { out: () => undefined, err: (s) => void (err += s) },
    );
    assert.equal(code, EXIT.USAGE);
    assert.match(
      err,
      /no peer certificate is configured: give -peer-cert-file, -peer-key-file and -peer-trusted-ca-file/,
    );
    err = "";
    const partial = await runServe(
      [
        "-nexus-node-url",
        "https://127.0.0.1:9",
        "-nexus-cluster-url",
        "https://127.0.0.1:9",
        "-grpcPort",
        "9",
        "-peer-cert-file",
        "/x.pem",
      ],
      { name: "memory_repl", store: STORE_KINDS.find((k) => k.name === "memory")! },
      { out: () => undefined, err: (s) => void (err += s) },
    );
    assert.equal(partial, EXIT.USAGE);
    assert.match(
      err,
      /needs all three of -peer-cert-file, -peer-key-file and -peer-trusted-ca-file/,
    );
  });

  it("a three-node cluster over mutual TLS replicates, and refuses a plaintext member", async () => {
    const urls = [await httpsUrl(), await httpsUrl(), await httpsUrl()];
    const reps: Replicator[] = [];
    try {
      for (const u of urls) {
        const r = createReplicator({
          ...base(u, urls),
          logDir: join(scratch, "tls-cluster", "logs"),
          snapDir: join(scratch, "tls-cluster", "snap"),
          peerTls: ca.issue(u),
          heartbeatTickMs: 50,
          electionTickMs: 500,
        });
        reps.push(r);
        await r.start();
      }
      const enc = new TextEncoder();
      await reps[0]!.save(enc.encode("set k v"));
      for (const r of reps) {
        await until(() => r.status().applied >= reps[0]!.status().applied, 10_000, "applied");
        assert.equal(
          new TextDecoder().decode(await r.load(enc.encode("get k"), { consistency: "local" })),
          "v",
        );
      }
      await assert.rejects(reps[0]!.addMember("http://127.0.0.1:9", { probe: false }), {
        code: "MEMBERSHIP_REFUSED",
        message: /uses http but this cluster's nodes use https/,
      });
    } finally {
      for (const r of reps) await r.stop();
    }
  });
});
