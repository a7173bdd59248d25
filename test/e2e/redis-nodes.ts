/**
 * What the Redis end-to-end tests share: bin/redis_repl nodes, each on its own private
 * redis-server (test/store/redis-server.ts: free port, stopped when the test file ends), and
 * reading a Redis directly.
 */
import { Redis } from "ioredis";
import { startRedis } from "../store/redis-server.js";
import type { RedisServer } from "../store/redis-server.js";
import { sqliteCluster } from "./programs.js";
import type { SqliteNode } from "./programs.js";

/** `n` new private redis-servers. */
export async function redisServers(n: number): Promise<RedisServer[]> {
  const out: RedisServer[] = [];
  for (let i = 0; i < n; i++) out.push(await startRedis());
  return out;
}

/** The store flags of a redis_repl node on `srv`. */
export function redisFlags(srv: RedisServer): string[] {
  return ["-redisPort", String(srv.port)];
}

/** A cluster of `n` redis_repl nodes (not started), node i on a new redis-server `redis[i]`. */
export async function redisCluster(
  n: number,
): Promise<{ nodes: SqliteNode[]; redis: RedisServer[] }> {
  const redis = await redisServers(n);
  const nodes = await sqliteCluster(n, [], "redis_repl", (i) => redisFlags(redis[i]!));
  return { nodes, redis };
}

/** The values of `keys` in database `db` of a Redis (null where absent). */
export async function redisMget(
  srv: RedisServer,
  db: number,
  keys: readonly string[],
): Promise<(string | null)[]> {
  const c = new Redis({ port: srv.port, db, lazyConnect: true, maxRetriesPerRequest: 0 });
  await c.connect();
  try {
    return keys.length === 0 ? [] : await c.mget(...keys);
  } finally {
    c.disconnect();
  }
}
