/**
 * Losing 2 of 3 nodes on Redis, with real processes (the procedure of docs/backup.md, shared with
 * the SQLite and MariaDB tests in majority-loss-scenario.ts): three bin/redis_repl nodes on three
 * private redis-servers, two killed, the survivor recovered with `nexus recover -store redis`
 * into a one-member cluster, two new members (each on a new redis-server) added back. Every write
 * the survivor had applied is kept on every member.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { recoverAfterLosingTwo } from "./majority-loss-scenario.js";
import { repl } from "./programs.js";
import { redisFlags, redisServers } from "./redis-nodes.js";

const RESPONSE = /Response from \w+ \(without quotes\): '(.*)'/s;

async function rows(addr: string, consistency: string): Promise<number[]> {
  const r = await repl(
    `-consistency=${consistency}`,
    addr,
    "redis",
    "load",
    "db.index=2",
    "return redis.call('lrange', 'rows', 0, -1)",
  );
  if (r.code !== 0) throw new Error(`load failed: ${r.stderr}`);
  const m = RESPONSE.exec(r.stdout);
  if (m === null) throw new Error(`unexpected output: ${r.stdout}`);
  const list = m[1]!.replace(/^\[|\]$/g, "").trim();
  return list === "" ? [] : list.split(" ").map(Number);
}

describe("recovering from the loss of 2 of 3 nodes (Redis, real processes)", () => {
  it(
    "nexus recover -store redis: the stopped survivor's Redis as a one-member cluster, members added back",
    { timeout: 300_000 },
    () =>
      recoverAfterLosingTwo({
        kind: "redis",
        program: "redis_repl",
        stores: async (n) => {
          const servers = await redisServers(n);
          return (i) => redisFlags(servers[i]!);
        },
        setup: async () => undefined,
        insert: async (addr, i) => {
          const r = await repl(
            addr,
            "redis",
            "save",
            "db.index=2",
            `return redis.call('rpush', 'rows', '${i}')`,
          );
          assert.equal(r.code, 0, r.stderr);
        },
        rows,
      }),
  );
});
