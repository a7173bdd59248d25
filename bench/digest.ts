/**
 * `npm run bench -- digest [--rows N] [--mysql-rows N] [--stores sqlite,redis,mysql] [--dir D]`:
 * the time of a store digest (consistency checks) on N rows or keys, as JSON lines
 * `{"bench":"digest","case":<store>,...}`:
 * - `pinMs`: until digest() resolves (the state is pinned; applies may go on). For Redis, which
 *   has no snapshots, it resolves only once the digest is computed;
 * - `digestSeconds`: until the digest's hex is known, and `secondsPerMillion` rows/keys;
 * - `peakRssGrowthMB`: the growth of this process's resident memory during the digest (the
 *   SQLite digest runs in a worker thread of this process; Redis and MariaDB are servers apart);
 * - `appliesDuringDigest`, `applyP50Ms`, `applyMaxMs`: small applies issued one after another
 *   while the digest runs (they go on for SQLite and MySQL; for Redis the first waits for it),
 *   and `idleApplyP50Ms`, the same applies during one second before the digest.
 *
 * Data is loaded through the backend directly (bulk INSERT ... SELECT, Redis Lua loops),
 * not through replication. Rows: an integer primary key, a 24-byte name, a 64-byte value and a
 * double; Redis keys: `key:<i>` with a 64-byte string value. Defaults: 1,000,000 rows/keys for
 * SQLite and Redis, 1,000,000 for MariaDB (--mysql-rows). Redis (no persistence) and MariaDB
 * (a 256 MiB buffer pool and redo log, the log flushed about once a second) are private servers on
 * free ports, started with the test helpers test/store/redis-server.ts and mariadb-server.ts;
 * their folders and the SQLite folder are removed at the end, also after a failure or Ctrl-C.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { Redis } from "ioredis";
import mysql from "mysql2/promise";
import { SqliteStore } from "../src/store/sqlite/sqlite-store.js";
import { RedisStore } from "../src/store/redis/redis-store.js";
import { MySqlStore } from "../src/store/mysql/mysql-store.js";
import type { ApplyEntry, Store } from "../src/store/store.js";
import { startRedis } from "../test/store/redis-server.js";
import { startMariaDb } from "../test/store/mariadb-server.js";
import { openSqliteDatabase } from "../src/store/sqlite/sqlite-binding.js";

const USAGE =
  "usage: npm run bench -- digest [--rows N] [--mysql-rows N] [--stores sqlite,redis,mysql] [--dir D]";

function line(o: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify({ bench: "digest", ...o }) + "\n");
}

// ---------------------------------------------------------------------------------------------
// clean-up of everything this run starts, even after a failure or a signal: the SQLite folders
// here; the servers and their folders in their helpers, at the latest at process exit

const dirs = new Set<string>();
function cleanupNow(): void {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs.clear();
}
process.on("exit", cleanupNow);
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.once(sig, () => {
    cleanupNow();
    process.exit(130); // runs the server helpers' exit handlers too
  });
}

function tempDir(base: string, what: string): string {
  const d = mkdtempSync(join(base, `nexus-bench-digest-${what}-`));
  dirs.add(d);
  return d;
}

function removeDir(d: string): void {
  rmSync(d, { recursive: true, force: true });
  dirs.delete(d);
}

/** Kills a server started by a test helper and removes its folder, before the next store's. */
async function discard(server: { readonly dir: string; kill(): Promise<void> }): Promise<void> {
  await server.kill();
  rmSync(server.dir, { recursive: true, force: true });
}

// ---------------------------------------------------------------------------------------------
// measuring one digest

const enc = new TextEncoder();

interface Figures {
  /** Apply latency without a digest (the same loop, before it), for comparison. */
  idleApplyP50Ms: number;
  pinMs: number;
  digestSeconds: number;
  peakRssGrowthMB: number;
  appliesDuringDigest: number;
  applyP50Ms: number;
  applyMaxMs: number;
  digest: string;
}

/**
 * Times store.digest() while applying `write(i)` entries one after another from `firstIndex`,
 * and samples this process's RSS every 5 ms.
 */
async function measure(
  store: Store,
  firstIndex: number,
  write: (i: number) => { data: string; args?: Record<string, string> },
): Promise<Figures> {
  const applyOne = async (index: number): Promise<number> => {
    const cmd = write(index);
    const e: ApplyEntry = {
      index,
      term: 1,
      command: { data: enc.encode(cmd.data), args: cmd.args ?? {} },
      timestampMs: Date.now(),
      seed: index,
    };
    const a0 = performance.now();
    const [r] = await store.apply([e]);
    if (r === undefined || !r.ok) {
      throw new Error(`apply failed: ${r?.ok === false ? r.error : "no result"}`);
    }
    return performance.now() - a0;
  };
  // Without a digest first: one second of applies.
  let index = firstIndex;
  const idle: number[] = [];
  const idleEnd = performance.now() + 1000;
  while (performance.now() < idleEnd) idle.push(await applyOne(index++));
  idle.sort((a, b) => a - b);
  const rss0 = process.memoryUsage.rss();
  let peak = rss0;
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 5);
  const t0 = performance.now();
  let finished = false;
  const latencies: number[] = [];
  const atDigest = index;
  // Applies from the start: they show whether the digest holds the apply path.
  const applying = (async () => {
    while (!finished) {
      // Every apply started before the digest ended counts, also one that waited for it.
      latencies.push(await applyOne(index++));
    }
  })();
  try {
    const pending = await store.digest();
    const pinMs = performance.now() - t0;
    if (pending.position.index > atDigest) {
      throw new Error(`the digest is at ${pending.position.index}, after the first apply`);
    }
    const digest = await pending.digest;
    const digestSeconds = (performance.now() - t0) / 1000;
    finished = true;
    await applying;
    latencies.sort((a, b) => a - b);
    return {
      idleApplyP50Ms: Math.round((idle[Math.floor(idle.length / 2)] ?? 0) * 100) / 100,
      pinMs: Math.round(pinMs * 10) / 10,
      digestSeconds: Math.round(digestSeconds * 1000) / 1000,
      peakRssGrowthMB: Math.round(((peak - rss0) / 1048576) * 10) / 10,
      appliesDuringDigest: latencies.length,
      applyP50Ms: Math.round((latencies[Math.floor(latencies.length / 2)] ?? 0) * 100) / 100,
      applyMaxMs: Math.round((latencies[latencies.length - 1] ?? 0) * 100) / 100,
      digest,
    };
  } finally {
    finished = true;
    clearInterval(sampler);
    await applying.catch(() => undefined);
  }
}

function report(store: string, n: number, loadSeconds: number, f: Figures): void {
  line({
    case: store,
    [store === "redis" ? "keys" : "rows"]: n,
    loadSeconds: Math.round(loadSeconds * 100) / 100,
    pinMs: f.pinMs,
    digestSeconds: f.digestSeconds,
    secondsPerMillion: Math.round((f.digestSeconds / (n / 1_000_000)) * 100) / 100,
    peakRssGrowthMB: f.peakRssGrowthMB,
    idleApplyP50Ms: f.idleApplyP50Ms,
    appliesDuringDigest: f.appliesDuringDigest,
    applyP50Ms: f.applyP50Ms,
    applyMaxMs: f.applyMaxMs,
    digest: f.digest.slice(0, 16),
  });
}

// ---------------------------------------------------------------------------------------------
// the stores

async function benchSqlite(base: string, rows: number): Promise<void> {
  const dir = tempDir(base, "sqlite");
  try {
    const path = join(dir, "db.sqlite");
    // The store creates its metadata and puts the file in WAL mode; the rows are loaded directly.
    const init = new SqliteStore({ path });
    await init.open();
    await init.close();
    const t0 = performance.now();
    const db = openSqliteDatabase(path);
    db.exec(
      "create table kv (id integer primary key, name text not null, v text not null, n real)",
    );
    db.exec(
      `insert into kv with recursive c(x) as (select 1 union all select x + 1 from c where x < ${rows}) ` +
        "select x, printf('name-%019d', x), printf('%064d', x * 7919), x / 7.0 from c",
    );
    db.exec("create table w (i integer primary key, v text)");
    db.exec("insert or replace into _nexus_meta values ('applied_index', 1), ('applied_term', 1)");
    db.close();
    const loadSeconds = (performance.now() - t0) / 1000;
    const store = new SqliteStore({ path });
    await store.open();
    try {
      const f = await measure(store, 2, (i) => ({
        data: "insert into w values (?, 'x')",
        args: { params: JSON.stringify([i]) },
      }));
      report("sqlite", rows, loadSeconds, f);
    } finally {
      await store.close();
    }
  } finally {
    removeDir(dir);
  }
}

async function benchRedis(keys: number): Promise<void> {
  const server = await startRedis({ appendonly: false });
  const port = server.port;
  const c = new Redis({ port, lazyConnect: true, maxRetriesPerRequest: 0 });
  c.on("error", () => undefined);
  try {
    await c.connect();
    const t0 = performance.now();
    // Server-side, 100,000 keys per script: nothing to build or parse on this side.
    for (let at = 0; at < keys; at += 100_000) {
      await c.eval(
        "for i = tonumber(ARGV[1]), tonumber(ARGV[2]) do redis.call('SET', 'key:' .. i, string.rep('v', 64)) end return 1",
        0,
        String(at),
        String(Math.min(keys, at + 100_000) - 1),
      );
    }
    await c.select(13);
    await c.hset("nexus:applied", "index", "1", "term", "1");
    const loadSeconds = (performance.now() - t0) / 1000;
    c.disconnect();
    const store = new RedisStore({ port, timeoutMs: 60_000 });
    await store.open();
    try {
      const f = await measure(store, 2, (i) => ({
        data: `return redis.call('set', 'w:${i}', 'x')`,
        args: { "db.index": "1" },
      }));
      report("redis", keys, loadSeconds, f);
    } finally {
      await store.close();
    }
  } finally {
    c.disconnect();
    await discard(server);
  }
}

async function benchMysql(rows: number): Promise<void> {
  const server = await startMariaDb({ bufferPoolMb: 256, logFileMb: 256, flushLogAtTrxCommit: 2 });
  const port = server.port;
  try {
    const url = server.url();
    const init = new MySqlStore({ url });
    await init.open();
    await init.close();
    const t0 = performance.now();
    const c = await mysql.createConnection({
      host: "127.0.0.1",
      port,
      user: "root",
      database: "nexus",
    });
    try {
      await c.query(
        "CREATE TABLE kv (id BIGINT PRIMARY KEY, name VARCHAR(32) NOT NULL, v VARCHAR(64) NOT NULL, n DOUBLE) ENGINE=InnoDB",
      );
      for (let at = 1; at <= rows; at += 250_000) {
        const to = Math.min(rows, at + 250_000 - 1);
        await c.query(
          `INSERT INTO kv SELECT seq, CONCAT('name-', LPAD(seq, 19, '0')), LPAD(seq * 7919, 64, '0'), seq / 7 FROM seq_${at}_to_${to}`,
        );
      }
      await c.query("CREATE TABLE w (i BIGINT PRIMARY KEY, v VARCHAR(8)) ENGINE=InnoDB");
      await c.query("UPDATE _nexus_applied SET applied_index = 1, applied_term = 1 WHERE id = 1");
    } finally {
      await c.end();
    }
    const loadSeconds = (performance.now() - t0) / 1000;
    const store = new MySqlStore({ url });
    await store.open();
    try {
      const f = await measure(store, 2, (i) => ({
        data: "insert into w values (?, 'x')",
        args: { params: JSON.stringify([i]) },
      }));
      report("mysql", rows, loadSeconds, f);
    } finally {
      await store.close();
    }
  } finally {
    await discard(server);
  }
}

// ---------------------------------------------------------------------------------------------

function count(flag: string, raw: string | undefined): number {
  const n = Number(raw);
  if (raw === undefined || !Number.isSafeInteger(n) || n < 1) {
    throw new Error(`${flag} takes a positive integer, got ${String(raw)}; ${USAGE}`);
  }
  return n;
}

export default async function main(args: string[]): Promise<void> {
  let rows = 1_000_000;
  let mysqlRows: number | undefined;
  let stores = ["sqlite", "redis", "mysql"];
  let base = tmpdir();
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--rows") rows = count(a, args[++i]);
    else if (a === "--mysql-rows") mysqlRows = count(a, args[++i]);
    else if (a === "--dir") base = resolve(args[++i] ?? ".");
    else if (a === "--stores") {
      stores = (args[++i] ?? "").split(",").filter((s) => s !== "");
      const bad = stores.filter((s) => !["sqlite", "redis", "mysql"].includes(s));
      if (stores.length === 0 || bad.length > 0) {
        throw new Error(
          `--stores takes a list of sqlite, redis, mysql, got "${args[i] ?? ""}"; ${USAGE}`,
        );
      }
    } else throw new Error(`unknown argument ${a}; ${USAGE}`);
  }
  try {
    for (const s of stores) {
      if (s === "sqlite") await benchSqlite(base, rows);
      else if (s === "redis") await benchRedis(rows);
      else await benchMysql(mysqlRows ?? rows);
    }
  } finally {
    cleanupNow();
  }
}
