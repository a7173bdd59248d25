/**
 * The original README's Redis walkthrough, step by step: three independent redis-server processes
 * started here on free ports, three bin/redis_repl nodes, the exact bin/repl commands, and every
 * Redis inspected directly. Then: Redis down and back, a restart without double application, and
 * a new replica catching up from a snapshot.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { Redis } from "ioredis";
import { startRedis } from "../store/redis-server.js";
import type { RedisServer } from "../store/redis-server.js";
import { SqliteNode, leaderUrl, repl, run, sqliteCluster, tempDir, until } from "./programs.js";
import { freePort } from "../free-port.js";

async function redisGet(srv: RedisServer, db: number, key: string): Promise<string | null> {
  const c = new Redis({ port: srv.port, db, lazyConnect: true, maxRetriesPerRequest: 0 });
  await c.connect();
  try {
    return await c.get(key);
  } finally {
    c.disconnect();
  }
}

const says = (v: string): string => `Response from Redis (without quotes): '${v}'\n`;

describe("the original's Redis walkthrough", () => {
  it(
    "three redis_repl nodes on three Redis servers: the README's commands, each Redis inspected, faults",
    { timeout: 240_000 },
    async () => {
      const redis = [await startRedis(), await startRedis(), await startRedis()];
      const nodes = await sqliteCluster(
        3,
        ["-nexus-snapshot-count=10", "-nexus-snapshot-catchup-entries=2"],
        "redis_repl",
        (i) => ["-redisPort", String(redis[i]!.port)],
      );
      await Promise.all(nodes.map((n) => n.start()));
      const addr = nodes[0]!.addr;
      await until(
        "a leader",
        () => leaderUrl(addr),
        (l) => l !== "",
      );

      // The README's five commands and their outputs.
      for (const [args, out] of [
        [["save", "db.index=2", "return redis.call('set', 'hello', 'world')"], says("OK")],
        [["save", "db.index=2", "return redis.call('incr', 'ctr')"], says("1")],
        [["save", "db.index=2", "return redis.call('incr', 'ctr')"], says("2")],
        [["load", "db.index=2", "return redis.call('get', 'ctr')"], says("2")],
      ] as const) {
        const r = await repl(addr, "redis", ...args);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout, out);
      }
      const keys = await repl(
        addr,
        "redis",
        "load",
        "db.index=2",
        "return redis.call('keys', '*')",
      );
      assert.ok([says("[ctr hello]"), says("[hello ctr]")].includes(keys.stdout), keys.stdout);
      // "Each of the Redis instances can be inspected for these keys."
      for (const srv of redis) {
        await until(
          "the key on every Redis",
          () => redisGet(srv, 2, "ctr"),
          (v) => v === "2",
        );
        assert.equal(await redisGet(srv, 2, "hello"), "world");
      }

      // A Lua error: a clear error, the same on every replica, and the cluster goes on.
      const bad = await repl(
        addr,
        "redis",
        "save",
        "db.index=2",
        "return redis.call('incr', 'hello')",
      );
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /error from the store: .*not an integer/);

      // Redis of a follower down: writes go on; that node reports NOT_SERVING; once Redis is back it
      // catches up.
      const leader = await leaderUrl(addr);
      const fi = nodes.findIndex((n) => n.url !== leader);
      await redis[fi]!.kill();
      const leaderAddr = nodes.find((n) => n.url === leader)!.addr;
      const w = await repl(
        leaderAddr,
        "redis",
        "save",
        "db.index=2",
        "return redis.call('set', 'during', 'outage')",
      );
      assert.equal(w.code, 0, w.stderr);
      await until(
        "NOT_SERVING on the node whose Redis is down",
        async () => (await run("nexus", ["status", nodes[fi]!.addr])).stdout,
        (o) => o.includes(": NOT_SERVING"),
      );
      // That node refuses requests at once (nothing written) rather than leaving them unknown.
      const refused = await repl(nodes[fi]!.addr, "redis", "save", "db.index=2", "return 1");
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /NOT_SERVING: this node's store is unavailable/);
      await redis[fi]!.start();
      await until(
        "the outage write on the recovered Redis",
        () => redisGet(redis[fi]!, 2, "during"),
        (v) => v === "outage",
      );

      // Restart a node: nothing is applied twice.
      await nodes[1]!.stop();
      await nodes[1]!.start();
      const r3 = await repl(
        nodes[1]!.addr,
        "redis",
        "save",
        "db.index=2",
        "return redis.call('incr', 'ctr')",
      );
      assert.equal(r3.stdout, says("3"), r3.stderr);
      for (const srv of redis)
        await until(
          "ctr = 3 everywhere",
          () => redisGet(srv, 2, "ctr"),
          (v) => v === "3",
        );

      // Enough writes for snapshots and compaction, then a new replica on a new Redis joins and
      // catches up from a streamed snapshot.
      for (let i = 0; i < 25; i++) {
        const r = await repl(
          addr,
          "redis",
          "save",
          "db.index=3",
          `return redis.call('set', 'k${i}', '${i}')`,
        );
        assert.equal(r.code, 0, r.stderr);
      }
      const r4 = await startRedis();
      const fourth = new SqliteNode(
        await freePort(),
        await freePort(),
        join(tempDir(), "node4"),
        nodes.map((n) => n.url),
        ["-nexus-node-state=new"],
        "redis_repl",
        ["-redisPort", String(r4.port)],
      );
      await fourth.start();
      const added = await repl(addr, "addNode", fourth.url);
      assert.equal(added.code, 0, added.stderr);
      assert.match(added.stdout, /^Current cluster members:\n(.*\n){4}\n/);
      await until(
        "the new replica's Redis to catch up",
        () => redisGet(r4, 3, "k24"),
        (v) => v === "24",
      );
      assert.equal(await redisGet(r4, 2, "ctr"), "3");
      assert.equal(await redisGet(r4, 2, "hello"), "world");

      const removed = await repl(addr, "removeNode", fourth.url);
      assert.equal(removed.code, 0, removed.stderr);
      assert.ok(!removed.stdout.includes(fourth.url));
      await fourth.stop();
      await Promise.all(nodes.map((n) => n.stop()));
    },
  );
});
