/**
 * Periodic consistency checks end to end, on each backend: three real node processes checking
 * every 2 s. A healthy cluster stays ok; a value changed behind the cluster's back in one
 * replica's own database is reported DIVERGED within two intervals, for that replica only, which
 * then answers NOT_SERVING; `repl checkConsistency` says the same (exit 1), and 0 while healthy.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import Database from "better-sqlite3";
import { Redis } from "ioredis";
import { startRedis } from "../store/redis-server.js";
import { startMariaDb } from "../store/mariadb-server.js";
import type { SqliteNode } from "./programs.js";
import { leaderUrl, repl, run, sqliteCluster, until } from "./programs.js";

const INTERVAL_MS = 2000;
const FLAGS = [`-nexus-consistency-check-interval=${INTERVAL_MS / 1000}s`];
const LINE = /^([0-9a-f]{16}) => (\S+) ([0-9a-f]{64}|-) (ok|DIVERGED|NO REPORT|UNDECIDED)$/;

/** `repl checkConsistency` parsed: the index and each member's verdict by URL. */
async function checkConsistency(
  addr: string,
): Promise<{ code: number; index: number; verdicts: Record<string, string>; out: string }> {
  const r = await repl(addr, "checkConsistency");
  const lines = r.stdout.trimEnd().split("\n");
  const head = /^Consistency check at index (\d+):$/.exec(lines[0] ?? "");
  assert.ok(head !== null, `unexpected output: ${r.stdout}${r.stderr}`);
  const verdicts: Record<string, string> = {};
  for (const l of lines.slice(1)) {
    const m = LINE.exec(l);
    assert.ok(m !== null, `unexpected line: ${l}`);
    verdicts[m[2]!] = m[4]!;
  }
  return { code: r.code, index: Number(head[1]), verdicts, out: r.stdout + r.stderr };
}

/**
 * The shared scenario: writes, a healthy check, then `tamper(victim)` on one follower's own
 * database, and the verdicts that must follow.
 */
async function scenario(
  nodes: SqliteNode[],
  write: (addr: string, i: number) => Promise<void>,
  tamper: (victim: number) => Promise<void>,
): Promise<void> {
  await Promise.all(nodes.map((n) => n.start()));
  const addr = nodes[0]!.addr;
  const leader = await until(
    "a leader",
    () => leaderUrl(addr),
    (l) => l !== "",
  );
  for (let i = 0; i < 5; i++) await write(nodes[i % 3]!.addr, i);
  const healthy = await checkConsistency(addr);
  assert.equal(healthy.code, 0, healthy.out);
  assert.deepEqual(Object.values(healthy.verdicts), ["ok", "ok", "ok"], healthy.out);
  // The periodic checks of a healthy cluster find nothing either.
  await new Promise((r) => setTimeout(r, 2 * INTERVAL_MS));
  for (const n of nodes) {
    const st = await run("nexus", ["status", n.addr]);
    assert.equal(st.code, 0, st.stdout + st.stderr);
    assert.doesNotMatch(st.stdout, /DIVERGED/);
  }

  const victim = nodes.findIndex((n) => n.url !== leader);
  await tamper(victim);
  const changedAt = Date.now();
  const st = await until(
    "the victim to be found diverged",
    async () => run("nexus", ["status", nodes[victim]!.addr]),
    (r) => r.stdout.includes("DIVERGED"),
    2 * INTERVAL_MS + 10_000,
  );
  const took = Date.now() - changedAt;
  assert.match(st.stdout, /: NOT_SERVING\n/);
  assert.equal(st.code, 1);
  // Within two intervals (plus the time to digest and report on a loaded machine).
  assert.ok(took < 2 * INTERVAL_MS + 5000, `found after ${took} ms`);
  for (const [i, n] of nodes.entries()) {
    if (i === victim) continue;
    const other = await run("nexus", ["status", n.addr]);
    assert.match(other.stdout, /: SERVING\n/, `only the victim: ${other.stdout}`);
  }
  const refused = await repl(nodes[victim]!.addr, "listNodes");
  assert.equal(refused.code, 0, "membership queries still work on the victim");
  const after = await checkConsistency(addr);
  assert.equal(after.code, 1, after.out);
  assert.deepEqual(
    after.verdicts,
    Object.fromEntries(nodes.map((n, i) => [n.url, i === victim ? "DIVERGED" : "ok"])),
    after.out,
  );
  assert.match(after.out, /diverged: its store digest/);
  await Promise.all(nodes.map((n) => n.stop()));
}

describe("consistency checks end to end", () => {
  it("SQLite: a row changed in one replica's file is DIVERGED within two intervals, only there", async () => {
    const nodes = await sqliteCluster(3, FLAGS);
    await scenario(
      nodes,
      async (addr, i) => {
        if (i === 0) {
          const t = await repl(addr, "sqlite", "save", "create table kv (k text primary key, v)");
          assert.equal(t.code, 0, t.stderr);
        }
        const r = await repl(addr, "sqlite", "save", `insert into kv values ('k${i}', ${i})`);
        assert.equal(r.code, 0, r.stderr);
      },
      async (victim) => {
        const db = new Database(join(nodes[victim]!.dir, "store.db"));
        try {
          db.pragma("busy_timeout = 5000");
          assert.equal(db.prepare("update kv set v = 'x' where k = 'k1'").run().changes, 1);
        } finally {
          db.close();
        }
      },
    );
  });

  it("Redis: a key set behind the cluster's back is DIVERGED within two intervals, only there", async () => {
    const redis = [await startRedis(), await startRedis(), await startRedis()];
    const nodes = await sqliteCluster(3, FLAGS, "redis_repl", (i) => [
      "-redisPort",
      String(redis[i]!.port),
    ]);
    await scenario(
      nodes,
      async (addr, i) => {
        const r = await repl(
          addr,
          "redis",
          "save",
          "db.index=2",
          `return redis.call('set', 'k${i}', '${i}')`,
        );
        assert.equal(r.code, 0, r.stderr);
      },
      async (victim) => {
        const c = new Redis({ port: redis[victim]!.port, db: 2, lazyConnect: true });
        await c.connect();
        try {
          await c.set("k1", "tampered");
        } finally {
          c.disconnect();
        }
      },
    );
  });

  it("MySQL: a row updated in one replica's database is DIVERGED within two intervals, only there", async () => {
    const dbs = [await startMariaDb(), await startMariaDb(), await startMariaDb()];
    const nodes = await sqliteCluster(3, FLAGS, "mysql_repl", (i) => [
      "-mysqlConnUrl",
      dbs[i]!.dsn(),
    ]);
    await scenario(
      nodes,
      async (addr, i) => {
        if (i === 0) {
          const t = await repl(
            addr,
            "mysql",
            "save",
            "create table kv (k varchar(10) primary key, v int)",
          );
          assert.equal(t.code, 0, t.stderr);
        }
        const r = await repl(addr, "mysql", "save", `insert into kv values ('k${i}', ${i})`);
        assert.equal(r.code, 0, r.stderr);
      },
      async (victim) => {
        await dbs[victim]!.query("update kv set v = 99 where k = 'k1'", "nexus");
      },
    );
  });
});
