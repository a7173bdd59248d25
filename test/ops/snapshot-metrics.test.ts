/**
 * Snapshots in the metrics, end to end: with a small -nexus-snapshot-count the leader takes
 * snapshots and compacts its log; a follower that was down meanwhile catches up from a snapshot
 * stream. The leader counts snapshots taken and sent (bytes, duration), the follower counts one
 * received, and neither has a stream left in flight afterwards (/status `snapshots` is empty).
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createNexusClient } from "../../src/api/client.js";
import { freePort } from "../free-port.js";
import type { SqliteNode } from "../e2e/programs.js";
import { leaderUrl, sqliteCluster, until } from "../e2e/programs.js";

async function metrics(port: number): Promise<string> {
  const r = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(5000) });
  return r.text();
}

function sample(text: string, series: string): number {
  for (const line of text.split("\n")) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return 0;
}

describe("snapshot metrics", { timeout: 180_000 }, async () => {
  const nodes: SqliteNode[] = await sqliteCluster(3, [
    "-nexus-snapshot-count=20",
    "-nexus-snapshot-catchup-entries=5",
  ]);
  const ports = [await freePort(), await freePort(), await freePort()];
  after(async () => {
    await Promise.all(nodes.map((n) => n.stop("SIGKILL")));
  });
  await Promise.all(nodes.map((n, i) => n.start([`-http-port=${ports[i]}`])));

  it("counts snapshots taken, sent and received", async () => {
    const lead = await until(
      "a leader",
      () => leaderUrl(nodes[0]!.addr),
      (u) => u !== "",
    );
    const li = nodes.findIndex((n) => n.url === lead);
    const fi = nodes.findIndex((n) => n.url !== lead);
    await nodes[fi]!.stop();
    const c = createNexusClient(nodes[li]!.addr, { timeoutMs: 20_000 });
    const enc = new TextEncoder();
    try {
      await c.save(enc.encode("CREATE TABLE t (v TEXT)"));
      for (let i = 0; i < 80; i++) await c.save(enc.encode(`INSERT INTO t VALUES ('${i}')`));
    } finally {
      c.close();
    }
    const taken = await until(
      "a snapshot taken",
      () => metrics(ports[li]!),
      (t) => sample(t, "nexus_snapshots_taken_total") >= 1,
    );
    assert.ok(sample(taken, 'nexus_snapshot_bytes_total{direction="taken"}') > 0);
    assert.ok(sample(taken, "nexus_snapshot_take_duration_seconds_count") >= 1);
    await nodes[fi]!.start([`-http-port=${ports[fi]}`]);
    const got = await until(
      "a snapshot received",
      () => metrics(ports[fi]!),
      (t) => sample(t, 'nexus_snapshot_transfers_total{direction="received",outcome="ok"}') >= 1,
      30_000,
    );
    assert.ok(sample(got, 'nexus_snapshot_bytes_total{direction="received"}') > 0);
    assert.ok(
      sample(got, 'nexus_snapshot_transfer_duration_seconds_count{direction="received"}') >= 1,
    );
    const sent = await metrics(ports[li]!);
    assert.ok(sample(sent, 'nexus_snapshot_transfers_total{direction="sent",outcome="ok"}') >= 1);
    // Every byte received was sent (a stream cut and sent again counts on the leader twice).
    assert.ok(
      sample(sent, 'nexus_snapshot_bytes_total{direction="sent"}') >=
        sample(got, 'nexus_snapshot_bytes_total{direction="received"}'),
    );
    const st = (await (await fetch(`http://127.0.0.1:${ports[fi]}/status`)).json()) as {
      snapshots: unknown[];
    };
    assert.deepEqual(st.snapshots, []);
  });
});
