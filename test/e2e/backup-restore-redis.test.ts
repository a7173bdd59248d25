/**
 * Backup and restore on Redis with real processes: three bin/redis_repl nodes on three private
 * redis-servers backed up with `nexus backup`, restored with `nexus restore -store redis` into a
 * new cluster on three other redis-servers, whose every Redis holds exactly the data at the
 * backup's index. A restore onto a Redis that holds Nexus data is refused.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { Redis } from "ioredis";
import { startRedis } from "../store/redis-server.js";
import type { RedisServer } from "../store/redis-server.js";
import { leaderUrl, repl, run, sqliteCluster, tempDir, until } from "./programs.js";
import type { SqliteNode } from "./programs.js";
import { restoreArgs as sharedRestoreArgs } from "./backup-scenario.js";

async function redisMget(srv: RedisServer, db: number, keys: string[]): Promise<(string | null)[]> {
  const c = new Redis({ port: srv.port, db, lazyConnect: true, maxRetriesPerRequest: 0 });
  await c.connect();
  try {
    return await c.mget(...keys);
  } finally {
    c.disconnect();
  }
}

function restoreArgs(file: string, n: SqliteNode, redisPort: number): string[] {
  return sharedRestoreArgs(file, n, ["-store", "redis", "-redisPort", String(redisPort)]);
}

const KEYS = ["k1", "k2", "k3", "k4", "k5", "k6", "k7"];

describe("nexus backup and nexus restore (Redis, real processes)", () => {
  it(
    "restores a backup into a new 3-node cluster on other redis-servers, at the backup's index exactly",
    { timeout: 300_000 },
    async () => {
      const redis = [await startRedis(), await startRedis(), await startRedis()];
      const src = await sqliteCluster(3, [], "redis_repl", (i) => [
        "-redisPort",
        String(redis[i]!.port),
      ]);
      await Promise.all(src.map((n) => n.start()));
      await until(
        "a leader",
        () => leaderUrl(src[0]!.addr),
        (u) => u !== "",
      );
      const save = async (addr: string, i: number): Promise<void> => {
        const r = await repl(
          addr,
          "redis",
          "save",
          "db.index=2",
          `return redis.call('set', 'k${i}', '${i}')`,
        );
        assert.equal(r.code, 0, r.stderr);
      };
      for (let i = 1; i <= 5; i++) await save(src[i % 3]!.addr, i);
      const file = join(tempDir("nexus-backup-redis-"), "redis.nexus-backup");
      const b = await run("nexus", ["backup", src[1]!.addr, file]);
      assert.equal(b.code, 0, b.stderr);
      assert.match(b.stdout, /backup of redis cluster/);
      // Saved after the backup: not in it.
      for (let i = 6; i <= 7; i++) await save(src[0]!.addr, i);

      const dstRedis = [await startRedis(), await startRedis(), await startRedis()];
      const dst = await sqliteCluster(3, [], "redis_repl", (i) => [
        "-redisPort",
        String(dstRedis[i]!.port),
      ]);
      // A Redis that holds Nexus data (the source's) is refused, and nothing is written.
      const busy = await run("nexus", restoreArgs(file, dst[0]!, redis[0]!.port));
      assert.equal(busy.code, 2, busy.stderr);
      assert.match(busy.stderr, /already holds Nexus data/);
      const wrongKind = await run(
        "nexus",
        restoreArgs(file, dst[0]!, dstRedis[0]!.port).map((a) => (a === "redis" ? "sqlite" : a)),
      );
      assert.equal(wrongKind.code, 1);
      assert.match(wrongKind.stderr, /is a backup of a redis store, not sqlite/);

      for (let i = 0; i < 3; i++) {
        const r = await run("nexus", restoreArgs(file, dst[i]!, dstRedis[i]!.port));
        assert.equal(r.code, 0, r.stderr);
      }
      await Promise.all(dst.map((n) => n.start()));
      await until(
        "a leader in the restored cluster",
        () => leaderUrl(dst[0]!.addr),
        (u) => u !== "",
      );
      for (const srv of dstRedis) {
        await until(
          "the backup's data in each new Redis",
          () => redisMget(srv, 2, KEYS),
          (v) => JSON.stringify(v) === JSON.stringify(["1", "2", "3", "4", "5", null, null]),
        );
      }
      await save(dst[2]!.addr, 8);
      for (const srv of dstRedis) {
        await until(
          "a new save everywhere",
          () => redisMget(srv, 2, ["k8"]),
          (v) => v[0] === "8",
        );
      }
    },
  );
});
