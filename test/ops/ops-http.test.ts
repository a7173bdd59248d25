/**
 * The operations HTTP port end to end: three real node processes started with -http-port. Every
 * endpoint answers on every node; /metrics scraped during a load shows counters moving and
 * histograms filling; /readyz goes unready (503, with the reason) when the node loses its leader
 * and ready again once the others are back.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createNexusClient } from "../../src/api/client.js";
import { freePort } from "../free-port.js";
import type { SqliteNode } from "../e2e/programs.js";
import { run, sqliteCluster, until } from "../e2e/programs.js";
import type { StatusJson } from "../../src/cli/status.js";

interface Got {
  status: number;
  type: string;
  body: string;
}

async function get(port: number, path: string): Promise<Got> {
  const r = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(5000) });
  return { status: r.status, type: r.headers.get("content-type") ?? "", body: await r.text() };
}

/** The value of one sample line of the Prometheus text (`name{labels} value`), or undefined. */
function sample(text: string, series: string): number | undefined {
  for (const line of text.split("\n")) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

/** The sum over every series of a metric whose labels include `has` (e.g. `outcome="ok"`). */
function sum(text: string, name: string, has = ""): number {
  let total = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (m === null || m[1] !== name || !(m[2] ?? "").includes(has)) continue;
    total += Number(m[3]);
  }
  return total;
}

describe("the operations HTTP port of a 3-node cluster", { timeout: 180_000 }, async () => {
  const nodes: SqliteNode[] = await sqliteCluster(3);
  const httpPorts = [await freePort(), await freePort(), await freePort()];
  after(async () => {
    await Promise.all(nodes.map((n) => n.stop("SIGKILL")));
  });
  await Promise.all(nodes.map((n, i) => n.start([`-http-port=${httpPorts[i]}`])));

  it("serves /livez, /readyz, /status, / and /metrics on every node", async () => {
    for (const [i, port] of httpPorts.entries()) {
      assert.match(nodes[i]!.stdout, new RegExp(`metrics and status on http://127.0.0.1:${port}/`));
      const live = await get(port, "/livez");
      assert.equal(live.status, 200, live.body);
      await until(
        "ready",
        () => get(port, "/readyz"),
        (r) => r.status === 200,
      );
      const st = await until(
        "status with three members seen from the leader",
        async () => JSON.parse((await get(port, "/status")).body) as Record<string, unknown>,
        (s) => s["membersFromLeader"] === true && (s["members"] as unknown[]).length === 3,
      );
      assert.equal(st["url"], nodes[i]!.url);
      assert.match(String(st["id"]), /^[0-9a-f]{16}$/);
      assert.match(String(st["leader"]), /^[0-9a-f]{16}$/);
      assert.ok(Number(st["term"]) >= 1);
      assert.equal(st["version"], "0.1.0");
      assert.equal(st["ready"], true);
      assert.ok(typeof st["uptimeSeconds"] === "number");
      for (const k of [
        "commit",
        "applied",
        "lastIndex",
        "applyLag",
        "lastCheck",
        "leaderChanges",
        "tasks",
        "readyMaxLag",
      ]) {
        assert.ok(k in st, `status has ${k}`);
      }
      const members = st["members"] as { url: string; role: string; reachable: boolean }[];
      assert.deepEqual(members.map((m) => m.url).sort(), nodes.map((n) => n.url).sort());
      assert.ok(members.every((m) => m.reachable === true));
      const page = await get(port, "/");
      assert.equal(page.status, 200);
      assert.match(page.type, /text\/html/);
      assert.doesNotMatch(
        page.body,
        /<(script|link)[^>]+(src|href)=["']?https?:/i,
        "no external assets",
      );
      const metrics = await get(port, "/metrics");
      assert.equal(metrics.status, 200);
      assert.match(metrics.type, /text\/plain; version=0\.0\.4/);
      assert.equal(sample(metrics.body, 'nexus_build_info{version="0.1.0"}'), 1);
      assert.ok(sample(metrics.body, "nexus_term")! >= 1);
      assert.ok(sample(metrics.body, "process_resident_memory_bytes")! > 0, "process metrics");
      const missing = await get(port, "/nope");
      assert.equal(missing.status, 404);
    }
  });

  it("says the node's version in nexus status, text and -o json", async () => {
    const text = await run("nexus", ["status", nodes[1]!.addr]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^version: 0\.1\.0$/m);
    const json = await run("nexus", ["status", "-o", "json", nodes[1]!.addr]);
    assert.equal(json.code, 0, json.stderr);
    const doc = JSON.parse(json.stdout) as StatusJson;
    assert.equal(doc.node.version, "0.1.0");
    assert.equal(doc.client.version, "0.1.0");
  });

  it("counts saves and loads while they run, and fills the histograms", async () => {
    const port = httpPorts[0]!;
    const before = (await get(port, "/metrics")).body;
    const c = createNexusClient(nodes[0]!.addr, { timeoutMs: 20_000 });
    const enc = new TextEncoder();
    try {
      await c.save(enc.encode("CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY, v TEXT)"));
      let during = "";
      for (let i = 0; i < 60; i++) {
        await c.save(enc.encode(`INSERT INTO t (v) VALUES ('row ${i}')`));
        if (i % 10 === 0) await c.load(enc.encode("SELECT count(*) FROM t"));
        if (i === 30) during = (await get(port, "/metrics")).body;
      }
      const okBefore = sum(before, "nexus_proposals_total", 'outcome="ok"');
      const okDuring = sum(during, "nexus_proposals_total", 'outcome="ok"');
      assert.ok(okDuring >= okBefore + 30, `proposals ok moved: ${okBefore} -> ${okDuring}`);
      const afterText = await until(
        "the last saves counted",
        async () => (await get(port, "/metrics")).body,
        (t) => sum(t, "nexus_proposals_total", 'outcome="ok"') >= okBefore + 61,
      );
      // Histograms fill: counts move and the +Inf bucket equals the count.
      const saves = sample(afterText, 'nexus_save_duration_seconds_count{outcome="ok"}')!;
      assert.ok(saves >= 61, `saves counted: ${saves}`);
      assert.equal(
        sample(afterText, 'nexus_save_duration_seconds_bucket{le="+Inf",outcome="ok"}'),
        saves,
      );
      assert.ok(sample(afterText, 'nexus_save_duration_seconds_sum{outcome="ok"}')! > 0);
      assert.ok(
        sample(afterText, 'nexus_load_duration_seconds_count{outcome="ok",mode="linearizable"}')! >=
          6,
      );
      const fsyncs = sample(afterText, "nexus_wal_fsync_duration_seconds_count")!;
      assert.ok(fsyncs > sample(before, "nexus_wal_fsync_duration_seconds_count")!, "WAL fsyncs");
      assert.ok(sample(afterText, "nexus_wal_written_bytes_total")! > 0);
      assert.ok(sample(afterText, "nexus_store_apply_duration_seconds_count")! > 0);
      assert.ok(sample(afterText, "nexus_store_applied_entries_total")! >= 61);
      assert.ok(sample(afterText, "nexus_applied_index")! >= 61);
      assert.ok(
        sum(afterText, "nexus_peer_messages_sent_total") >
          sum(before, "nexus_peer_messages_sent_total"),
      );
      assert.ok(sum(afterText, "nexus_peer_sent_bytes_total") > 0);
      assert.match(afterText, /nexus_peer_rtt_seconds\{peer="[0-9a-f]{16}"\} /);
      assert.match(afterText, /nexus_peer_queue_depth\{peer="[0-9a-f]{16}"\} \d+/);
      assert.match(afterText, /nexus_role\{role="(leader|follower)"\} 1/);
      // Rates for the page.
      const rates = JSON.parse((await get(port, "/status/rates")).body) as {
        save: { count: number }[];
      };
      assert.ok(rates.save.reduce((a, p) => a + p.count, 0) >= 61);
    } finally {
      c.close();
    }
  });

  it("goes unready when the node loses its leader, and ready again after", async () => {
    // Keep node 3; stop the other two: no quorum, so it has no leader.
    const port = httpPorts[2]!;
    await until(
      "ready",
      () => get(port, "/readyz"),
      (r) => r.status === 200,
    );
    const changesBefore = sample((await get(port, "/metrics")).body, "nexus_leader_changes_total")!;
    await Promise.all([nodes[0]!.stop(), nodes[1]!.stop()]);
    const unready = await until(
      "unready",
      () => get(port, "/readyz"),
      (r) => r.status === 503,
      15_000,
    );
    assert.match(unready.body, /^not ready: no leader is known/);
    const st = JSON.parse((await get(port, "/status")).body) as Record<string, unknown>;
    assert.equal(st["ready"], false);
    assert.match(String(st["reason"]), /no leader/);
    assert.equal((await get(port, "/livez")).status, 200, "still live");
    await Promise.all([
      nodes[0]!.start([`-http-port=${httpPorts[0]}`]),
      nodes[1]!.start([`-http-port=${httpPorts[1]}`]),
    ]);
    await until(
      "ready again",
      () => get(port, "/readyz"),
      (r) => r.status === 200,
      30_000,
    );
    const changesAfter = sample((await get(port, "/metrics")).body, "nexus_leader_changes_total")!;
    assert.ok(
      changesAfter >= changesBefore + 2,
      `leader changes ${changesBefore} -> ${changesAfter}`,
    );
  });
});

describe("the -http-port flags", () => {
  it("takes -ready-max-lag as the readiness bound, and refuses a negative one", async () => {
    const [n] = await sqliteCluster(1);
    await assert.rejects(n!.start(["-ready-max-lag=-1"]), /ready-max-lag/);
    const port = await freePort();
    try {
      await n!.start([`-http-port=${port}`, "-ready-max-lag=7"]);
      const st = JSON.parse((await get(port, "/status")).body) as Record<string, unknown>;
      assert.equal(st["readyMaxLag"], 7);
    } finally {
      await n!.stop("SIGKILL");
    }
  });

  it("refuses a bad -statsd-addr and a port in use with a clear message", async () => {
    const [n] = await sqliteCluster(1);
    await assert.rejects(n!.start(["-statsd-addr=nohost"]), /-statsd-addr must be host:port/);
    const busy = await freePort();
    const blocker = (await import("node:net")).createServer();
    await new Promise<void>((r) => blocker.listen(busy, "127.0.0.1", r));
    try {
      await assert.rejects(
        n!.start([`-http-port=${busy}`]),
        /HTTP port \d+ on 127\.0\.0\.1 is in use/,
      );
    } finally {
      blocker.close();
      await n!.stop("SIGKILL");
    }
  });
});
