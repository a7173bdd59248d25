/**
 * `npm run bench -- backup [--sqlite-mb N] [--redis-keys N] [--stores sqlite,redis] [--dir D]`:
 * backup and restore of a real node process, as JSON lines `{"bench":"backup","case":<store>,...}`:
 * - `dataMB`: the store's backup data (MiB, 2^20 bytes), `fileMB`: the backup file;
 * - `backupSeconds`, `backupMBps`: `nexus backup <addr> <file>` from start to exit (a process
 *   start included), and the data's MiB per second;
 * - `backupPeakRssMB`: the peak resident memory (VmHWM) of the `nexus backup` process;
 * - `nodeRssBeforeMB`, `nodePeakRssDuringBackupMB`: the node's resident memory before and its
 *   highest sample (every 20 ms) while the backup ran;
 * - `restoreSeconds`, `restoreMBps`, `restorePeakRssMB`: `nexus restore` (checks the whole file,
 *   writes the node's snapshot and WAL), and its process's peak resident memory;
 * - `startSeconds`, `restoredNodePeakRssMB`: a node started on the restored data until a load
 *   answers (it loads its store from the snapshot), and that node's peak resident memory.
 *
 * SQLite: one sqlite_repl node; the data (rows of a 1000-byte blob of randomblob(), from the
 * entry's seed, so replicas agree) is saved through the node in 100 MiB statements until the
 * database is `--sqlite-mb` (default 1024). Redis: one redis_repl node on a private
 * redis-server (free port, no persistence), `--redis-keys` keys (default 1,000,000) `key:<i>`
 * with a 64-byte value saved in Lua loops of 100,000; restored onto a second private server.
 * Everything started is stopped and every folder removed at the end, also after a failure or
 * Ctrl-C.
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createNexusClient } from "../src/api/client.js";
import { freePort } from "../test/free-port.js";
import { startRedis } from "../test/store/redis-server.js";

const USAGE =
  "usage: npm run bench -- backup [--sqlite-mb N] [--redis-keys N] [--stores sqlite,redis] [--dir D]";
const ROOT = fileURLToPath(new URL("..", import.meta.url));
const MiB = 1024 * 1024;

function line(o: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify({ bench: "backup", ...o }) + "\n");
}

const children = new Set<ChildProcess>();
const dirs = new Set<string>();
function cleanupNow(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs.clear();
}
process.on("exit", cleanupNow);
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.once(sig, () => {
    cleanupNow();
    process.exit(130);
  });
}

/** A figure of /proc/<pid>/status in MiB (VmRSS, VmHWM), or 0 once the process is gone. */
function procMB(pid: number | undefined, field: "VmRSS" | "VmHWM"): number {
  if (pid === undefined) return 0;
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(
      readFileSync(`/proc/${pid}/status`, "utf8"),
    );
    return m === null ? 0 : Number(m[1]) / 1024;
  } catch {
    return 0;
  }
}

const round = (x: number, digits = 1): number => Number(x.toFixed(digits));

/** Runs a bin/ program to its end, sampling its peak memory; fails on a non-zero exit. */
async function runMeasured(
  program: string,
  args: readonly string[],
  sampleAlso?: ChildProcess,
): Promise<{ seconds: number; peakRssMB: number; alsoPeakRssMB: number; stdout: string }> {
  const started = performance.now();
  const p = spawn(process.execPath, [join(ROOT, "bin", program), ...args], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.add(p);
  let stdout = "";
  let stderr = "";
  p.stdout.on("data", (b: Buffer) => (stdout += b.toString()));
  p.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
  let peak = 0;
  let alsoPeak = 0;
  const sampler = setInterval(() => {
    peak = Math.max(peak, procMB(p.pid, "VmHWM"));
    alsoPeak = Math.max(alsoPeak, procMB(sampleAlso?.pid, "VmRSS"));
  }, 20);
  const code = await new Promise<number | null>((res) => p.once("exit", (c) => res(c)));
  clearInterval(sampler);
  children.delete(p);
  if (code !== 0) throw new Error(`${program} ${args.join(" ")} exited ${code}:\n${stderr}`);
  return {
    seconds: (performance.now() - started) / 1000,
    peakRssMB: peak,
    alsoPeakRssMB: alsoPeak,
    stdout,
  };
}

/** A node process of bin/<program> on free ports, resolved once it serves. */
async function startNode(
  program: string,
  dir: string,
  storeFlags: readonly string[],
  urlPort?: number,
): Promise<{ proc: ChildProcess; addr: string; url: string; port: number }> {
  const port = urlPort ?? (await freePort());
  const grpc = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const p = spawn(
    process.execPath,
    [
      join(ROOT, "bin", program),
      `-nexus-node-url=${url}`,
      `-nexus-cluster-url=${url}`,
      `-grpcPort=${grpc}`,
      `-data-dir=${dir}`,
      "-nexus-repl-timeout=600",
      "-nexus-consistency-check-interval=0",
      "-apply-step-budget=0",
      "-log-level=warn",
      ...storeFlags,
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  children.add(p);
  let out = "";
  let err = "";
  await new Promise<void>((res, rej) => {
    p.stdout!.on("data", (b: Buffer) => {
      out += b.toString();
      if (out.includes("serving gRPC")) res();
    });
    p.stderr!.on("data", (b: Buffer) => (err += b.toString()));
    p.once("exit", (c) => rej(new Error(`${program} exited ${c}:\n${err}`)));
  });
  return { proc: p, addr: `127.0.0.1:${grpc}`, url, port };
}

async function stopNode(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const exited = new Promise((res) => p.once("exit", res));
  p.kill("SIGTERM");
  await exited;
  children.delete(p);
}

/** Saves `statements` one after another through the node, then waits for a load to answer. */
async function saveAll(addr: string, statements: Iterable<string>, args = {}): Promise<void> {
  const c = createNexusClient(addr, { timeoutMs: 600_000 });
  try {
    for (let tries = 0; ; tries++) {
      try {
        await c.listMembers();
        break;
      } catch (e) {
        if (tries > 100) throw e;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    for (const s of statements) await c.save(new TextEncoder().encode(s), args);
  } finally {
    c.close();
  }
}

async function waitForLoad(addr: string, sql: string, args = {}): Promise<void> {
  const c = createNexusClient(addr, { timeoutMs: 10_000 });
  try {
    for (;;) {
      try {
        await c.load(new TextEncoder().encode(sql), args);
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  } finally {
    c.close();
  }
}

interface Case {
  readonly name: string;
  readonly program: string;
  /** Store flags of the source node, and of the restored one. */
  readonly sourceFlags: readonly string[];
  readonly restoredFlags: readonly string[];
  readonly restoreStoreFlags: readonly string[];
  fill(addr: string): Promise<void>;
  readonly probe: { sql: string; args?: Record<string, string> };
  readonly detail: Record<string, unknown>;
}

async function measure(c: Case, base: string): Promise<void> {
  const work = mkdtempSync(join(base, `nexus-bench-backup-${c.name}-`));
  dirs.add(work);
  const src = await startNode(c.program, join(work, "src"), c.sourceFlags);
  const fillStarted = performance.now();
  await c.fill(src.addr);
  const fillSeconds = (performance.now() - fillStarted) / 1000;
  const file = join(work, "bench.nexus-backup");
  const nodeRssBeforeMB = procMB(src.proc.pid, "VmRSS");
  const b = await runMeasured("nexus", ["backup", src.addr, file], src.proc);
  await stopNode(src.proc);
  const m = /: (\d+) bytes in/.exec(b.stdout);
  const dataBytes = Number(m?.[1] ?? NaN);
  const fileBytes = statSync(file).size;
  // Restore into a new one-node cluster at another address.
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const dst = join(work, "dst");
  const r = await runMeasured("nexus", [
    "restore",
    file,
    `-nexus-node-url=${url}`,
    `-nexus-cluster-url=${url}`,
    `-data-dir=${dst}`,
    ...c.restoreStoreFlags,
  ]);
  const startStarted = performance.now();
  const node = await startNode(c.program, dst, c.restoredFlags, port);
  await waitForLoad(node.addr, c.probe.sql, c.probe.args);
  const startSeconds = (performance.now() - startStarted) / 1000;
  const restoredNodePeakRssMB = procMB(node.proc.pid, "VmHWM");
  await stopNode(node.proc);
  const dataMB = dataBytes / MiB;
  line({
    case: c.name,
    ...c.detail,
    dataMB: round(dataMB),
    fileMB: round(fileBytes / MiB),
    fillSeconds: round(fillSeconds),
    backupSeconds: round(b.seconds, 2),
    backupMBps: round(dataMB / b.seconds),
    backupPeakRssMB: round(b.peakRssMB),
    nodeRssBeforeMB: round(nodeRssBeforeMB),
    nodePeakRssDuringBackupMB: round(b.alsoPeakRssMB),
    restoreSeconds: round(r.seconds, 2),
    restoreMBps: round(dataMB / r.seconds),
    restorePeakRssMB: round(r.peakRssMB),
    startSeconds: round(startSeconds, 2),
    restoredNodePeakRssMB: round(restoredNodePeakRssMB),
  });
  rmSync(work, { recursive: true, force: true });
  dirs.delete(work);
}

function sqliteCase(mb: number): Case {
  const rowsPerSave = 100 * 1024; // 100 MiB of 1000-byte blobs (plus page overhead)
  const saves = Math.max(1, Math.round(mb / 100));
  return {
    name: "sqlite",
    program: "sqlite_repl",
    sourceFlags: [],
    restoredFlags: [],
    restoreStoreFlags: [],
    detail: { rows: saves * rowsPerSave, rowBytes: 1000 },
    probe: { sql: "select count(*) as n from b" },
    async fill(addr) {
      const statements = ["create table b (i integer primary key, v blob not null)"];
      for (let s = 0; s < saves; s++) {
        const from = s * rowsPerSave + 1;
        statements.push(
          `with recursive c(x) as (select ${from} union all select x + 1 from c where x < ${from + rowsPerSave - 1}) ` +
            "insert into b select x, randomblob(1000) from c",
        );
      }
      await saveAll(addr, statements);
    },
  };
}

async function redisCase(keys: number): Promise<Case & { close(): Promise<void> }> {
  const a = await startRedis({ appendonly: false });
  const b = await startRedis({ appendonly: false });
  const perSave = 100_000;
  return {
    name: "redis",
    program: "redis_repl",
    sourceFlags: ["-redisPort", String(a.port)],
    restoredFlags: ["-redisPort", String(b.port)],
    restoreStoreFlags: ["-store", "redis", "-redisPort", String(b.port)],
    detail: { keys, valueBytes: 64 },
    probe: { sql: "return redis.call('dbsize')", args: { "db.index": "0" } },
    async fill(addr) {
      const statements: string[] = [];
      for (let from = 1; from <= keys; from += perSave) {
        const to = Math.min(keys, from + perSave - 1);
        statements.push(
          `for i = ${from}, ${to} do redis.call('set', 'key:' .. i, string.rep('v', 64)) end return ${to}`,
        );
      }
      await saveAll(addr, statements, { "db.index": "0" });
    },
    async close() {
      await a.kill();
      await b.kill();
      rmSync(a.dir, { recursive: true, force: true });
      rmSync(b.dir, { recursive: true, force: true });
    },
  };
}

export default async function main(args: string[]): Promise<void> {
  let sqliteMb = 1024;
  let redisKeys = 1_000_000;
  let stores = ["sqlite", "redis"];
  let base = tmpdir();
  for (let i = 0; i < args.length; i += 2) {
    const [k, v] = [args[i], args[i + 1]];
    if (v === undefined) throw new Error(USAGE);
    if (k === "--sqlite-mb") sqliteMb = Number(v);
    else if (k === "--redis-keys") redisKeys = Number(v);
    else if (k === "--stores") stores = v.split(",");
    else if (k === "--dir") base = resolve(v);
    else throw new Error(`unknown argument ${k}\n${USAGE}`);
  }
  if (
    !(sqliteMb >= 1) ||
    !(redisKeys >= 1) ||
    stores.some((s) => !["sqlite", "redis"].includes(s))
  ) {
    throw new Error(USAGE);
  }
  if (stores.includes("sqlite")) await measure(sqliteCase(sqliteMb), base);
  if (stores.includes("redis")) {
    const c = await redisCase(redisKeys);
    try {
      await measure(c, base);
    } finally {
      await c.close();
    }
  }
  cleanupNow();
}
