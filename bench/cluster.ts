/**
 * `npm run bench -- cluster [--seconds S]`: a 3-node cluster of `bin/nexus serve` processes on
 * loopback with SQLite stores, driven as a user would: through the gRPC API (nexus.api.Nexus, with
 * @grpc/grpc-js), closed-loop clients spread over all three nodes, followers included. For
 * concurrency 1, 16 and 64 it prints saves per second, p50/p99 latency and the CPU seconds the
 * three nodes spent per 1,000 saves, as JSON lines `{"bench":"cluster",...}`.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { closedLoop } from "./lib/closed-loop.js";
import { startNexus } from "./lib/clusters.js";
import type { BenchCluster } from "./lib/clusters.js";
import type { KvClient } from "./lib/kv-clients.js";
import { nexusClient, retryUntil, waitWritable } from "./lib/kv-clients.js";

const USAGE = "usage: npm run bench -- cluster [--seconds S] [--clients 1,16,64]";

function positive(flag: string, v: string | undefined): number {
  const n = Number(v);
  if (v === undefined || v === "" || !Number.isFinite(n) || n <= 0) {
    throw new Error(`${flag} needs a positive number, got ${JSON.stringify(v ?? null)}; ${USAGE}`);
  }
  return n;
}

export default async function main(args: string[]): Promise<void> {
  let seconds = 5;
  let concurrencies = [1, 16, 64];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--seconds") seconds = positive("--seconds", args[++i]);
    else if (args[i] === "--clients") {
      concurrencies = (args[++i] ?? "").split(",").map((c) => positive("--clients", c));
    } else throw new Error(`unknown argument ${args[i]}; ${USAGE}`);
  }
  const root = mkdtempSync(join(tmpdir(), "nexus-bench-cluster-"));
  let cluster: BenchCluster | undefined;
  let client: KvClient | undefined;
  try {
    cluster = await startNexus(root, "sqlite", { flags: ["-nexus-snapshot-count=10000"] });
    const c = nexusClient(cluster.addrs, "sqlite");
    client = c;
    await retryUntil("create table", () => c.setup());
    await waitWritable(c);
    const value = Buffer.alloc(200, "x");
    let key = 0;
    for (const concurrency of concurrencies) {
      const r = await closedLoop({
        clients: concurrency,
        seconds,
        warmupSeconds: 0,
        pids: cluster.pids,
        op: (i) => c.put(i % c.nodes, `k${key++}`, value),
      });
      process.stdout.write(
        JSON.stringify({
          bench: "cluster",
          case: `concurrency-${concurrency}`,
          nodes: 3,
          store: "sqlite",
          api: "grpc",
          concurrency,
          saves: r.ops,
          failed: r.failed,
          ...(r.firstError === undefined ? {} : { firstError: r.firstError }),
          savesPerSec: r.opsPerSec,
          p50Ms: r.p50Ms,
          p99Ms: r.p99Ms,
          cpuSecondsPer1000Saves: r.cpuMsPerOp,
        }) + "\n",
      );
    }
  } finally {
    client?.close();
    await cluster?.stop();
    rmSync(root, { recursive: true, force: true });
  }
}
