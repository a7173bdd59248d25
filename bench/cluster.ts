/**
 * `npm run bench -- cluster [--seconds S]`: a 3-node cluster of child processes on loopback with
 * SQLite stores. For concurrency 1, 16 and 64 it prints saves per second, p50/p99 latency and the
 * CPU seconds the three nodes spent per 1,000 saves, as JSON lines `{"bench":"cluster",...}`.
 * Saves go through the leader's process (a line protocol on stdin/stdout until the gRPC API lands).
 */
import { readFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ChildNode } from "../test/node/process-cluster.js";
import { freePort } from "../test/free-port.js";

function cpuSeconds(pid: number): number {
  // utime and stime, fields 14 and 15 of /proc/<pid>/stat, in clock ticks (100 per second).
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

export default async function main(args: string[]): Promise<void> {
  let seconds = 5;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--seconds") seconds = Number(args[++i]);
    else
      throw new Error(`unknown argument ${args[i]}; usage: npm run bench -- cluster [--seconds S]`);
  }
  const root = mkdtempSync(join(tmpdir(), "nexus-bench-cluster-"));
  const urls = await Promise.all([1, 2, 3].map(async () => `http://127.0.0.1:${await freePort()}`));
  const nodes = urls.map(
    (u, i) => new ChildNode(u, urls, join(root, `n${i}`), { snapshotCount: 10_000 }),
  );
  try {
    await Promise.all(nodes.map((n) => n.start()));
    let leader: ChildNode | undefined;
    for (let t = 0; t < 200 && leader === undefined; t++) {
      for (const n of nodes) if ((await n.status())?.role === "leader") leader = n;
      if (leader === undefined) await new Promise((r) => setTimeout(r, 50));
    }
    if (leader === undefined) throw new Error("no leader elected");
    const r = await leader.request("save", "create table kv (k integer primary key, v text)");
    if (!r.ok) throw new Error(`create table failed: ${r.error}`);
    const pids = nodes.map((n) => n.pid());
    let key = 0;
    for (const concurrency of [1, 16, 64]) {
      const lat: number[] = [];
      const cpu0 = pids.reduce((s, p) => s + cpuSeconds(p), 0);
      const start = performance.now();
      const end = start + seconds * 1000;
      let failed = 0;
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (performance.now() < end) {
            const t0 = performance.now();
            const res = await leader.request(
              "save",
              `insert into kv values (${key++}, '${"x".repeat(200)}')`,
            );
            if (res.ok) lat.push(performance.now() - t0);
            else failed++;
          }
        }),
      );
      const elapsed = (performance.now() - start) / 1000;
      const cpu = pids.reduce((s, p) => s + cpuSeconds(p), 0) - cpu0;
      lat.sort((a, b) => a - b);
      process.stdout.write(
        JSON.stringify({
          bench: "cluster",
          case: `concurrency-${concurrency}`,
          nodes: 3,
          store: "sqlite",
          concurrency,
          saves: lat.length,
          failed,
          savesPerSec: Math.round(lat.length / elapsed),
          p50Ms: Number(pct(lat, 50).toFixed(2)),
          p99Ms: Number(pct(lat, 99).toFixed(2)),
          cpuSecondsPer1000Saves: Number(((cpu / Math.max(1, lat.length)) * 1000).toFixed(3)),
        }) + "\n",
      );
    }
  } finally {
    for (const n of nodes) await n.kill();
    rmSync(root, { recursive: true, force: true });
  }
}
