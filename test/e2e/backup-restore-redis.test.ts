/**
 * Backup and restore on Redis with real processes: three bin/redis_repl nodes on three private
 * redis-servers backed up with `nexus backup` while a writer saves numbered keys, restored with
 * `nexus restore -store redis` into a new 3-node and a new 5-node cluster on other redis-servers,
 * whose every replica's digest equals the source's at the backup's index. A restore onto a Redis
 * that holds Nexus data, or as another store kind, is refused.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { RedisStore } from "../../src/store/redis/redis-store.js";
import { createNexusClient } from "../../src/api/client.js";
import type { RedisServer } from "../store/redis-server.js";
import { repl, run, until } from "./programs.js";
import {
  assertRestoredAsSource,
  backupUnderLoad,
  digestOfStore,
  restoreArgs,
  restoreCluster,
  waitForLeader,
} from "./backup-scenario.js";
import { redisCluster, redisFlags, redisMget, redisServers } from "./redis-nodes.js";

/** Row i: key r:<i> and `max`, the highest row saved (rows are saved one after another). */
const insert = (i: number): string =>
  `redis.call('set', 'r:${i}', '${i}') return redis.call('set', 'max', '${i}')`;

/** The highest row a cluster holds, read through `addr`. */
async function highestRow(addr: string): Promise<number> {
  const c = createNexusClient(addr, { timeoutMs: 10_000 });
  try {
    return Number(
      new TextDecoder().decode(
        await c.load(new TextEncoder().encode("return redis.call('get', 'max')")),
      ),
    );
  } finally {
    c.close();
  }
}

/**
 * The digest of Redis `src`'s rows up to k: those keys (and max = k) copied to a new
 * redis-server, digested by RedisStore as a replica's is.
 */
async function redisDigestUpTo(src: RedisServer, k: number): Promise<string> {
  const [ref] = await redisServers(1);
  const keys = Array.from({ length: k }, (_, i) => `r:${i + 1}`);
  const values = await redisMget(src, 0, keys);
  const store = new RedisStore({ port: ref!.port });
  const c = new Redis({ port: ref!.port, lazyConnect: true, maxRetriesPerRequest: 0 });
  await c.connect();
  try {
    const p = c.pipeline();
    for (const [i, v] of values.entries()) if (v !== null) p.set(keys[i]!, v);
    p.set("max", String(k));
    await p.exec();
  } finally {
    c.disconnect();
  }
  return digestOfStore(store);
}

describe("nexus backup and nexus restore (Redis, real processes)", () => {
  it(
    "backs up a 3-node redis_repl cluster under writes and restores it into new 3- and 5-node clusters at the backup's index",
    { timeout: 400_000 },
    async () => {
      const { nodes: src, redis } = await redisCluster(3);
      await Promise.all(src.map((n) => n.start()));
      await waitForLeader(src[0]!.addr);
      const taken = await backupUnderLoad(src, "redis", insert);
      const { file } = taken;
      const digestUpTo = (k: number): Promise<string> => redisDigestUpTo(redis[0]!, k);

      const { nodes: dst, redis: dstRedis } = await redisCluster(3);
      const storeFlags = (srv: RedisServer): string[] => ["-store", "redis", ...redisFlags(srv)];
      // A Redis that holds Nexus data (the source's) is refused, and nothing is written.
      const busy = await run("nexus", restoreArgs(file, dst[0]!, storeFlags(redis[0]!)));
      assert.equal(busy.code, 2, busy.stderr);
      assert.match(busy.stderr, /already holds Nexus data/);
      const wrongKind = await run(
        "nexus",
        restoreArgs(file, dst[0]!, storeFlags(dstRedis[0]!)).map((a) =>
          a === "redis" ? "sqlite" : a,
        ),
      );
      assert.equal(wrongKind.code, 1);
      assert.match(wrongKind.stderr, /is a backup of a redis store, not sqlite/);

      await restoreCluster(file, dst, (i) => storeFlags(dstRedis[i]!));
      const k = await assertRestoredAsSource(dst, taken, digestUpTo, highestRow);
      await Promise.all(dst.map((n) => n.stop()));

      const { nodes: five, redis: fiveRedis } = await redisCluster(5);
      await restoreCluster(file, five, (i) => storeFlags(fiveRedis[i]!));
      assert.equal(await assertRestoredAsSource(five, taken, digestUpTo, highestRow), k);
      const w = await repl(five[3]!.addr, "redis", "save", "db.index=0", insert(1_000_000));
      assert.equal(w.code, 0, w.stderr);
      for (const srv of fiveRedis) {
        await until(
          "the new save in every Redis",
          () => redisMget(srv, 0, ["max"]),
          (v) => v[0] === "1000000",
        );
      }
    },
  );
});
