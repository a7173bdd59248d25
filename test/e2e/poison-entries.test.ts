/**
 * Poison entries end deterministically (issue 16 item 4), end to end: three real nodes, a save
 * that never ends on its own, sent through bin/repl. The client gets the budget error naming the
 * flag; every replica applied the same outcome (the consistency check finds them equal); the
 * next save applies everywhere; and loads stay off the apply path (a PRAGMA load is refused and
 * changes nothing).
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { Redis } from "ioredis";
import { openSqliteDatabase } from "../../src/store/sqlite/sqlite-binding.js";
import { startRedis } from "../store/redis-server.js";
import type { RedisServer } from "../store/redis-server.js";
import type { SqliteNode } from "./programs.js";
import { leaderUrl, repl, run, sqliteCluster, until } from "./programs.js";

/** `repl checkConsistency` on addr: the exit code and output. */
async function consistent(addr: string): Promise<void> {
  const r = await until(
    "a consistency check with every replica ok",
    () => repl(addr, "checkConsistency"),
    (x) => x.code === 0,
    60_000,
  );
  assert.equal((r.stdout.match(/ ok$/gm) ?? []).length, 3, r.stdout);
}

async function serving(nodes: readonly SqliteNode[]): Promise<void> {
  for (const n of nodes) {
    const st = await run("nexus", ["status", n.addr]);
    assert.match(st.stdout, /: SERVING\n/, st.stdout + st.stderr);
  }
}

describe("poison entries end to end", () => {
  it(
    "SQLite: an endless statement is refused by the step budget on every replica, and the cluster goes on",
    { timeout: 240_000 },
    async () => {
      const nodes = await sqliteCluster(3, ["-apply-step-budget=2000000"]);
      await Promise.all(nodes.map((n) => n.start()));
      const addr = nodes[0]!.addr;
      await until(
        "a leader",
        () => leaderUrl(addr),
        (l) => l !== "",
      );
      const t = await repl(
        addr,
        "sqlite",
        "save",
        "create table t (id integer primary key, v text)",
      );
      assert.equal(t.code, 0, t.stderr);

      const poison = await repl(
        nodes[1]!.addr,
        "sqlite",
        "save",
        "insert into t (v) select 'x' from (with recursive c(x) as (select 1 union all select x + 1 from c) select x from c)",
      );
      assert.equal(poison.code, 1, poison.stdout);
      assert.match(
        poison.stderr,
        /apply budget exceeded: the statement ran more than 2000000 SQLite instructions/,
      );
      assert.match(poison.stderr, /-apply-step-budget/);

      // The next saves apply on every replica.
      for (const [i, n] of nodes.entries()) {
        const r = await repl(n.addr, "sqlite", "save", `insert into t (v) values ('after ${i}')`);
        assert.equal(r.code, 0, r.stderr);
      }
      const rows = await repl(addr, "sqlite", "load", "select v from t order by id");
      assert.equal(rows.code, 0, rows.stderr);
      assert.match(rows.stdout, /after 0.*after 1.*after 2/s);
      assert.doesNotMatch(rows.stdout, /"x"/);
      await consistent(addr);

      // A PRAGMA as a load is refused; the node still applies with full durability.
      const pragma = await repl(nodes[2]!.addr, "sqlite", "load", "PRAGMA synchronous=OFF");
      assert.equal(pragma.code, 1, pragma.stdout);
      assert.match(pragma.stderr, /PRAGMA/);
      const again = await repl(
        nodes[2]!.addr,
        "sqlite",
        "save",
        "insert into t (v) values ('last')",
      );
      assert.equal(again.code, 0, again.stderr);
      await serving(nodes);
      await consistent(addr);
      await Promise.all(nodes.map((n) => n.stop()));
      // Every replica's file holds the same rows, without any of the poison's.
      const files = nodes.map((n) => {
        const db = openSqliteDatabase(join(n.dir, "store.db"), {
          readonly: true,
          fileMustExist: true,
        });
        try {
          return JSON.stringify(db.prepare("select id, v from t order by id").all());
        } finally {
          db.close();
        }
      });
      assert.equal(files[0], files[1]);
      assert.equal(files[0], files[2]);
    },
  );

  it(
    "Redis: an endless snippet ends with the budget error on every replica; what it wrote before stays everywhere",
    { timeout: 240_000 },
    async () => {
      const redis: RedisServer[] = [];
      for (let i = 0; i < 3; i++) redis.push(await startRedis({ appendonly: false }));
      const nodes = await sqliteCluster(3, ["-apply-step-budget=100000"], "redis_repl", (i) => [
        "-redisPort",
        String(redis[i]!.port),
      ]);
      await Promise.all(nodes.map((n) => n.start()));
      const addr = nodes[0]!.addr;
      await until(
        "a leader",
        () => leaderUrl(addr),
        (l) => l !== "",
      );

      const poison = await repl(
        nodes[2]!.addr,
        "redis",
        "save",
        "db.index=2",
        "redis.call('set', 'before', 'written') while true do redis.call('incr', 'spins') end",
      );
      assert.equal(poison.code, 1, poison.stdout);
      assert.match(poison.stderr, /apply budget exceeded: the script ran more than 100000 steps/);
      assert.match(poison.stderr, /-apply-step-budget/);
      // An escape attempt on the metadata database is refused too.
      const escape = await repl(
        addr,
        "redis",
        "save",
        "db.index=2",
        "redis.call('select', 13) return redis.call('flushdb')",
      );
      assert.equal(escape.code, 1, escape.stdout);
      assert.match(escape.stderr, /SELECT is not allowed/);

      const next = await repl(
        nodes[1]!.addr,
        "redis",
        "save",
        "db.index=2",
        "return redis.call('set', 'next', 'applied')",
      );
      assert.equal(next.code, 0, next.stderr);
      for (const srv of redis) {
        const c = new Redis({ port: srv.port, db: 2, lazyConnect: true, maxRetriesPerRequest: 0 });
        await c.connect();
        try {
          await until(
            "the next save on every Redis",
            () => c.get("next"),
            (v) => v === "applied",
          );
          assert.equal(await c.get("before"), "written");
          assert.equal(await c.get("spins"), "49999");
        } finally {
          c.disconnect();
        }
      }
      await serving(nodes);
      await consistent(addr);
      await Promise.all(nodes.map((n) => n.stop()));
    },
  );
});
