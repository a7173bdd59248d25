/**
 * `npm run bench -- vs-etcd [--seconds S] [--warmup S] [--clients 1,16,64]
 *   [--systems etcd,memory,sqlite] [--cases write,read,lease-read] [--dir D] [--no-breakdown]
 *   [--cpu-prof D]`:
 * Nexus against etcd, side by side, through each one's gRPC API with the same client library
 * (@grpc/grpc-js). Each system runs as three members on loopback with fsync on (etcd from
 * PATH, e.g. Debian's etcd-server; Nexus as `bin/nexus serve` on the memory and the SQLite
 * stores); all systems run at once and each case is measured on one system after the other, so
 * that a noisy machine's drift hits all alike. Closed-loop clients, spread over all three nodes
 * (followers included), put and get
 * 256-byte values. Prints one JSON line per case on stdout
 * `{"bench":"vs-etcd","system":...,"case":...,"clients":...,"opsPerSec":...,"p50Ms":...,
 * "p99Ms":...,"cpuMsPerOp":...}` (CPU of all three server processes, from /proc), then a table
 * with the ratios to etcd on stderr. Then, unless --no-breakdown, the latency breakdown of one
 * write at one client for each Nexus store (bench/lib/write-breakdown.ts): a JSON line
 * `{"bench":"vs-etcd","case":"write-breakdown",...}` and a table on stderr. With --cpu-prof D,
 * every Nexus node runs under `node --cpu-prof` and writes its profiles (one per thread) to
 * D/<store>/n<i>/ when it stops; `node scripts/cpu-profile-summary.mjs` summarises them.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { LoadFigures } from "./lib/closed-loop.js";
import { closedLoop } from "./lib/closed-loop.js";
import type { BenchCluster, NexusStoreKind } from "./lib/clusters.js";
import { startEtcd, startNexus } from "./lib/clusters.js";
import type { KvClient, ReadMode } from "./lib/kv-clients.js";
import type { Breakdown } from "./lib/write-breakdown.js";
import { formatBreakdown, measureBreakdown } from "./lib/write-breakdown.js";
import { etcdClient, nexusClient, retryUntil, waitWritable } from "./lib/kv-clients.js";

export const SYSTEMS = ["etcd", "memory", "sqlite"] as const;
export type System = (typeof SYSTEMS)[number];
export const CASES = ["write", "read", "lease-read"] as const;
export type Case = (typeof CASES)[number];

export interface VsEtcdArgs {
  readonly seconds: number;
  readonly warmupSeconds: number;
  readonly clients: readonly number[];
  readonly systems: readonly System[];
  readonly cases: readonly Case[];
  /** Folder under which the clusters' data folders are made (its disk is the one fsynced). */
  readonly dir: string;
  /** Whether to measure the one-write latency breakdown of each Nexus store. */
  readonly breakdown: boolean;
  /** Where the Nexus nodes' CPU profiles go (`node --cpu-prof`), when asked for. */
  readonly cpuProfDir?: string;
}

const USAGE =
  "usage: npm run bench -- vs-etcd [--seconds S] [--warmup S] [--clients 1,16,64] " +
  "[--systems etcd,memory,sqlite] [--cases write,read,lease-read] [--dir D] [--no-breakdown] " +
  "[--cpu-prof D]";

function positive(flag: string, v: string | undefined, integer: boolean): number {
  const n = Number(v);
  if (
    v === undefined ||
    v === "" ||
    !Number.isFinite(n) ||
    n <= 0 ||
    (integer && !Number.isInteger(n))
  ) {
    throw new Error(
      `${flag} needs a positive ${integer ? "integer" : "number"}, got ${JSON.stringify(v ?? null)}; ${USAGE}`,
    );
  }
  return n;
}

function listOf<T extends string>(flag: string, v: string | undefined, allowed: readonly T[]): T[] {
  const items = (v ?? "").split(",").filter((x) => x !== "");
  if (items.length === 0)
    throw new Error(`${flag} needs a list of ${allowed.join(", ")}; ${USAGE}`);
  for (const x of items) {
    if (!allowed.includes(x as T)) {
      throw new Error(`${flag}: unknown "${x}", expected some of ${allowed.join(", ")}; ${USAGE}`);
    }
  }
  return items as T[];
}

/** Parses the benchmark's arguments; throws an Error naming the bad one and the usage. */
export function parseArgs(args: readonly string[]): VsEtcdArgs {
  let seconds = 5;
  let warmupSeconds = 1;
  let clients: number[] = [1, 16, 64];
  let systems: System[] = [...SYSTEMS];
  let cases: Case[] = [...CASES];
  let dir = tmpdir();
  let breakdown = true;
  let cpuProfDir: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const eq = a.indexOf("=");
    const flag = eq < 0 ? a : a.slice(0, eq);
    const value = (): string | undefined => (eq < 0 ? args[++i] : a.slice(eq + 1));
    if (flag === "--seconds") seconds = positive(flag, value(), false);
    else if (flag === "--warmup") {
      const v = value();
      warmupSeconds = v === "0" ? 0 : positive(flag, v, false);
    } else if (flag === "--clients") {
      clients = (value() ?? "").split(",").map((c) => positive(flag, c, true));
    } else if (flag === "--systems") systems = listOf(flag, value(), SYSTEMS);
    else if (flag === "--cases") cases = listOf(flag, value(), CASES);
    else if (flag === "--dir") {
      const v = value();
      if (v === undefined || v === "") throw new Error(`--dir needs a folder; ${USAGE}`);
      dir = resolve(v);
    } else if (flag === "--cpu-prof") {
      const v = value();
      if (v === undefined || v === "") throw new Error(`--cpu-prof needs a folder; ${USAGE}`);
      cpuProfDir = resolve(v);
    } else if (a === "--no-breakdown") breakdown = false;
    else throw new Error(`unknown argument ${JSON.stringify(a)}; ${USAGE}`);
  }
  return {
    seconds,
    warmupSeconds,
    clients,
    systems,
    cases,
    dir,
    breakdown,
    ...(cpuProfDir === undefined ? {} : { cpuProfDir }),
  };
}

/** One measured case. */
export interface CaseResult extends LoadFigures {
  readonly system: System;
  readonly case: Case;
}

/** The JSON line of one case. */
export function formatLine(r: CaseResult): string {
  const { firstError, ...figures } = r;
  return JSON.stringify({
    bench: "vs-etcd",
    ...figures,
    ...(firstError === undefined ? {} : { firstError }),
  });
}

const fmt = (x: number): string => x.toLocaleString("en-US", { maximumFractionDigits: 2 });

/**
 * The side-by-side table (Markdown): per case and client count, each system's ops/s, p50 and CPU
 * per op, and for Nexus the ratios to etcd (throughput: Nexus/etcd, higher is better; CPU per op:
 * Nexus/etcd, lower is better). Lease reads are compared with etcd's linearizable reads.
 */
export function formatTable(results: readonly CaseResult[]): string {
  const systems = SYSTEMS.filter((s) => results.some((r) => r.system === s));
  const head = ["case", "clients", ...systems.map((s) => (s === "etcd" ? "etcd" : `nexus ${s}`))];
  const rows: string[][] = [];
  const keys = [...new Set(results.map((r) => `${r.case}\u0000${r.clients}`))];
  for (const k of keys) {
    const [c, n] = k.split("\u0000") as [Case, string];
    const find = (s: System, cs: Case): CaseResult | undefined =>
      results.find((r) => r.system === s && r.case === cs && String(r.clients) === n);
    const base = find("etcd", c === "lease-read" ? "read" : c);
    const cells = systems.map((s) => {
      const r = find(s, c);
      if (r === undefined) return "—";
      let cell = `${fmt(r.opsPerSec)}/s, p50 ${fmt(r.p50Ms)} ms, ${fmt(r.cpuMsPerOp)} ms CPU/op`;
      if (s !== "etcd" && base !== undefined && base.opsPerSec > 0 && base.cpuMsPerOp > 0) {
        cell +=
          ` (x${(r.opsPerSec / base.opsPerSec).toFixed(2)} ops/s,` +
          ` x${(r.cpuMsPerOp / base.cpuMsPerOp).toFixed(2)} CPU/op)`;
      }
      if (r.failed > 0) cell += `, ${r.failed} failed`;
      return cell;
    });
    rows.push([c, n, ...cells]);
  }
  const line = (cells: readonly string[]): string => `| ${cells.join(" | ")} |`;
  return [line(head), line(head.map(() => "---")), ...rows.map(line)].join("\n");
}

const VALUE = Buffer.alloc(256, "v");
const KEYS = 100;

/** Drives one case on a running cluster, clients spread over its nodes. */
async function runCase(
  a: VsEtcdArgs,
  system: System,
  cluster: BenchCluster,
  client: KvClient,
  c: Case,
  clients: number,
): Promise<CaseResult> {
  const mode: ReadMode = c === "lease-read" ? "lease" : "linearizable";
  const op =
    c === "write"
      ? (i: number, seq: number) =>
          client.put(i % client.nodes, `k${(i * 7919 + seq) % KEYS}`, VALUE)
      : (i: number, seq: number) =>
          client.get(i % client.nodes, `k${(i * 7919 + seq) % KEYS}`, mode);
  const figures = await closedLoop({
    clients,
    seconds: a.seconds,
    warmupSeconds: a.warmupSeconds,
    pids: cluster.pids,
    op,
  });
  return { system, case: c, ...figures };
}

async function startSystem(
  system: System,
  root: string,
  cpuProfDir: string | undefined,
): Promise<{ cluster: BenchCluster; client: KvClient }> {
  if (system === "etcd") {
    const cluster = await startEtcd(root);
    return { cluster, client: etcdClient(cluster.addrs) };
  }
  const store: NexusStoreKind = system;
  const cluster = await startNexus(
    root,
    store,
    cpuProfDir === undefined
      ? {}
      : { nodeArgs: (i) => ["--cpu-prof", `--cpu-prof-dir=${join(cpuProfDir, store, `n${i}`)}`] },
  );
  const client = nexusClient(cluster.addrs, store);
  await retryUntil(`${system} setup`, () => client.setup());
  return { cluster, client };
}

export default async function main(args: string[]): Promise<void> {
  const a = parseArgs(args);
  const results: CaseResult[] = [];
  const root = mkdtempSync(join(a.dir, "nexus-bench-vs-etcd-"));
  const started: { system: System; cluster: BenchCluster; client: KvClient }[] = [];
  try {
    // Every system runs at once, idle but for heartbeats while another is measured, so that
    // each case is measured for all systems within seconds of each other on a noisy machine.
    for (const system of a.systems) {
      started.push({ system, ...(await startSystem(system, join(root, system), a.cpuProfDir)) });
    }
    for (const { client } of started) {
      await waitWritable(client);
      // Every key the reads ask for exists.
      for (let k = 0; k < KEYS; k++) await client.put(k % client.nodes, `k${k}`, VALUE);
    }
    for (const c of a.cases) {
      for (const n of a.clients) {
        for (const { system, cluster, client } of started) {
          if (!client.supports(c === "lease-read" ? "lease" : "linearizable")) continue;
          const r = await runCase(a, system, cluster, client, c, n);
          results.push(r);
          process.stdout.write(formatLine(r) + "\n");
        }
      }
    }
  } finally {
    for (const s of started) {
      s.client.close();
      await s.cluster.stop();
    }
    rmSync(root, { recursive: true, force: true });
  }
  process.stderr.write(
    `\nvs-etcd: ${a.seconds} s per case, 3 nodes each on loopback, fsync on, 256-byte values, ` +
      `clients spread over all nodes; ratios are Nexus/etcd (lease reads against etcd's reads)\n` +
      formatTable(results) +
      "\n",
  );
  if (!a.breakdown) return;
  const breakdowns: Breakdown[] = [];
  for (const store of a.systems.filter((s): s is NexusStoreKind => s !== "etcd")) {
    const root = mkdtempSync(join(a.dir, `nexus-bench-breakdown-${store}-`));
    try {
      const b = await measureBreakdown(root, store, a.seconds, VALUE);
      breakdowns.push(b);
      process.stdout.write(
        JSON.stringify({ bench: "vs-etcd", case: "write-breakdown", system: store, ...b }) + "\n",
      );
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  }
  if (breakdowns.length > 0) process.stderr.write(`\n${formatBreakdown(breakdowns)}\n`);
}
