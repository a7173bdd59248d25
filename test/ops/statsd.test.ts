/**
 * StatsD: a real UDP socket receives what a node started with -statsd-addr pushes, with the
 * original's names (`nexus.` prefix, `save.latency.ms`, `load.latency.ms`, `raft.propose.error`)
 * and the nexusNode tag; and StatsdPush's datagrams stay under the size limit.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import dgram from "node:dgram";
import type { AddressInfo } from "node:net";
import { createNexusClient } from "../../src/api/client.js";
import { StatsdPush, parseStatsdAddr } from "../../src/ops/statsd.js";
import type { SqliteNode } from "../e2e/programs.js";
import { sqliteCluster, until } from "../e2e/programs.js";

/** A UDP server that keeps every line it receives, and the datagram sizes. */
async function statsdServer(): Promise<{
  port: number;
  lines: string[];
  sizes: number[];
  close(): void;
}> {
  const s = dgram.createSocket("udp4");
  const lines: string[] = [];
  const sizes: number[] = [];
  s.on("message", (b) => {
    sizes.push(b.byteLength);
    lines.push(...b.toString().split("\n"));
  });
  await new Promise<void>((r) => s.bind(0, "127.0.0.1", r));
  return { port: (s.address() as AddressInfo).port, lines, sizes, close: () => s.close() };
}

describe("StatsD from a node", { timeout: 120_000 }, async () => {
  const server = await statsdServer();
  const nodes: SqliteNode[] = await sqliteCluster(3, ["-nexus-repl-timeout=1"]);
  after(async () => {
    server.close();
    await Promise.all(nodes.map((n) => n.stop("SIGKILL")));
  });
  await Promise.all(
    nodes.map((n, i) => n.start(i === 0 ? [`-statsd-addr=127.0.0.1:${server.port}`] : [])),
  );

  it("pushes the original's names with the node's tag", async () => {
    const tag = `|#nexusNode:${new URL(nodes[0]!.url).host}`;
    const c = createNexusClient(nodes[0]!.addr, { timeoutMs: 20_000 });
    const enc = new TextEncoder();
    try {
      await c.save(enc.encode("CREATE TABLE t (v TEXT)"));
      for (let i = 0; i < 5; i++) await c.save(enc.encode(`INSERT INTO t VALUES ('${i}')`));
      await c.load(enc.encode("SELECT count(*) FROM t"));
      const has = (re: RegExp): boolean => server.lines.some((l) => re.test(l));
      await until(
        "timings",
        () => Promise.resolve(server.lines),
        () => {
          return has(/^nexus\.save\.latency\.ms:[\d.]+\|ms/) && has(/^nexus\.load\.latency\.ms:/);
        },
      );
      const saves = server.lines.filter((l) => l.startsWith("nexus.save.latency.ms:"));
      assert.equal(saves.length, 6);
      assert.ok(
        saves.every((l) => l.endsWith(tag)),
        saves[0],
      );
      assert.ok(has(/^nexus\.load\.linearizable\.latency\.ms:[\d.]+\|ms\|#nexusNode:/));
      assert.ok(has(/^nexus\.wal\.fsync\.latency\.ms:[\d.]+\|ms/));
      assert.ok(has(/^nexus\.store\.apply\.latency\.ms:[\d.]+\|ms/));
      assert.ok(has(/^nexus\.raft\.term:\d+\|g/), "gauges at start");
      // A save on a node that has no leader: a propose error, counted under the original's name.
      await Promise.all([nodes[1]!.stop(), nodes[2]!.stop()]);
      await until(
        "no leader",
        async () => (await c.nodeStatus()).serving,
        (s) => !s,
        15_000,
      );
      await assert.rejects(c.save(enc.encode("INSERT INTO t VALUES ('x')")));
      await until(
        "propose error",
        () => Promise.resolve(server.lines),
        () => has(/^nexus\.raft\.propose\.error:1\|c/),
      );
      assert.ok(server.sizes.every((n) => n <= 1400));
    } finally {
      c.close();
    }
  });
});

describe("StatsdPush", () => {
  it("batches lines into datagrams of at most 1400 bytes and counts propose errors", async () => {
    const server = await statsdServer();
    const p = StatsdPush.create(`127.0.0.1:${server.port}`, { node: "n1:1" });
    try {
      for (let i = 0; i < 200; i++) p.saved(1.5, "ok");
      p.saved(2, "dropped");
      p.saved(2, "no_leader");
      p.saved(5000, "unknown_outcome");
      p.flush();
      await until(
        "all lines",
        () => Promise.resolve(server.lines.length),
        (n) => n >= 206,
      );
      assert.ok(server.sizes.length > 1, "more than one datagram");
      assert.ok(server.sizes.every((n) => n <= 1400));
      assert.equal(
        server.lines.filter((l) => l === "nexus.raft.propose.error:1|c|#nexusNode:n1:1").length,
        2,
      );
      assert.ok(server.lines.includes("nexus.save.timeout.error:1|c|#nexusNode:n1:1"));
      assert.ok(server.lines.includes("nexus.save.latency.ms:1.5|ms|#nexusNode:n1:1"));
    } finally {
      p.close();
      server.close();
    }
  });

  it("refuses an address that is not host:port", () => {
    assert.deepEqual(parseStatsdAddr("[::1]:8125"), { host: "::1", port: 8125 });
    assert.throws(() => parseStatsdAddr("localhost"), { code: "BAD_CONFIG" });
    assert.throws(() => parseStatsdAddr("h:70000"), { code: "BAD_CONFIG" });
  });
});
