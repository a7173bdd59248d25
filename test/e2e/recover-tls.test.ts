/**
 * `nexus recover`'s live-cluster check on a cluster whose peers talk TLS (https:// node URLs and
 * the -peer-* flags), with real processes: with the node's peer TLS files the running members
 * are asked and the recovery is refused, naming the leader; without them it is refused too (every
 * member would look lost); once every other member is stopped, it recovers, and the node starts
 * alone with every write.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { freePort } from "../free-port.js";
import { TestCa } from "../transport/certs.js";
import type { CertFiles } from "../transport/certs.js";
import { SqliteNode, leaderUrl, run, tempDir, until } from "./programs.js";
import { recoverFlags, sqliteRows as rows, sqliteSave as save } from "./majority-loss-scenario.js";

const tlsFlags = (c: CertFiles): string[] => [
  `-peer-cert-file=${c.certFile}`,
  `-peer-key-file=${c.keyFile}`,
  `-peer-trusted-ca-file=${c.trustedCaFile}`,
];

/** A sqlite_repl node at an https:// URL with its peer certificate. */
class TlsNode extends SqliteNode {
  constructor(
    raftPort: number,
    grpcPort: number,
    dir: string,
    clusterUrls: readonly string[],
    readonly certs: CertFiles,
  ) {
    super(raftPort, grpcPort, dir, clusterUrls, tlsFlags(certs));
    (this as { url: string }).url = `https://127.0.0.1:${raftPort}`;
  }
}

describe("nexus recover over peer TLS (SQLite, real processes)", () => {
  it(
    "asks the members over TLS with the -peer-* flags: refused while a leader runs, refused without the flags, recovered once all are stopped",
    { timeout: 300_000 },
    async () => {
      const ca = TestCa.create();
      const ports: [number, number][] = [];
      for (let i = 0; i < 3; i++) ports.push([await freePort(), await freePort()]);
      const urls = ports.map(([r]) => `https://127.0.0.1:${r}`);
      const root = tempDir();
      const nodes = ports.map(
        ([r, g], i) => new TlsNode(r, g, join(root, `node${i + 1}`), urls, ca.issue(urls[i]!)),
      );
      await Promise.all(nodes.map((n) => n.start()));
      const [a, survivor, c] = nodes as [TlsNode, TlsNode, TlsNode];
      await until(
        "a leader",
        () => leaderUrl(a.addr),
        (u) => u.startsWith("https://"),
      );
      await save(a.addr, "create table t (i integer primary key)");
      for (let i = 1; i <= 3; i++) await save(c.addr, `insert into t values (${i})`);
      await until(
        "the survivor applied every write",
        () => rows(survivor.addr),
        (r) => r.length === 3,
      );
      await survivor.stop();
      await until(
        "a leader among the two still running",
        () => leaderUrl(c.addr),
        (u) => u === a.url || u === c.url,
      );
      const flags = [...recoverFlags(survivor, "sqlite"), ...tlsFlags(survivor.certs)];

      // With the node's peer TLS files: the leader answers over TLS.
      const withTls = await run("nexus", ["recover", ...flags]);
      assert.equal(withTls.code, 2, withTls.stderr);
      assert.match(withTls.stderr, /the cluster still has a leader \(https:\/\/127\.0\.0\.1:\d+\)/);
      assert.match(withTls.stderr, /nothing was changed/);

      // Without them: refused too, saying which flags to give (before: every member looked lost).
      const without = await run("nexus", ["recover", ...recoverFlags(survivor, "sqlite")]);
      assert.equal(without.code, 2, without.stderr);
      assert.match(without.stderr, /asked over peer TLS \(https:\/\/\): give the -peer-cert-file/);

      // Every other member stopped: recovered, and it starts alone with every write.
      await a.stop();
      await c.stop();
      const rec = await run("nexus", ["recover", ...flags]);
      assert.equal(rec.code, 0, rec.stderr);
      const one = new TlsNode(
        survivor.raftPort,
        survivor.grpcPort,
        survivor.dir,
        [survivor.url],
        survivor.certs,
      );
      await one.start();
      try {
        assert.deepEqual(
          await until(
            "every write, read through the node as the only member",
            () => rows(one.addr),
            (r) => r.length === 3,
          ),
          [1, 2, 3],
        );
      } finally {
        await one.stop();
      }
    },
  );
});
