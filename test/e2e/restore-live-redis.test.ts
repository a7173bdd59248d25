/**
 * Restore into a running cluster on Redis with real processes: three bin/redis_repl nodes on three
 * private redis-servers, written to, backed up, written to again (new keys and changed ones), and
 * restored with `repl <addr> restore <file> --yes`: every Redis then holds exactly the backup's
 * keys, the consistency check finds equal digests, and later saves apply on the restored state.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { leaderUrl, repl, run, tempDir, until } from "./programs.js";
import { redisCluster, redisMget } from "./redis-nodes.js";

const KEYS = ["k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8"];

describe("repl restore: a backup restored into a running cluster (Redis, real processes)", () => {
  it(
    "replaces every Redis's data at one index; digests equal; later saves apply",
    { timeout: 300_000 },
    async () => {
      const { nodes, redis } = await redisCluster(3);
      await Promise.all(nodes.map((n) => n.start()));
      await until(
        "a leader",
        () => leaderUrl(nodes[0]!.addr),
        (u) => u !== "",
      );
      const save = async (addr: string, key: string, value: string): Promise<void> => {
        const r = await repl(
          addr,
          "redis",
          "save",
          "db.index=2",
          `return redis.call('set', '${key}', '${value}')`,
        );
        assert.equal(r.code, 0, r.stderr);
      };
      for (let i = 1; i <= 5; i++) await save(nodes[i % 3]!.addr, `k${i}`, String(i));
      const file = join(tempDir("nexus-restore-live-redis-"), "redis.nexus-backup");
      const b = await run("nexus", ["backup", nodes[1]!.addr, file]);
      assert.equal(b.code, 0, b.stderr);
      // After the backup: a changed key and new ones, all replaced by the restore.
      await save(nodes[0]!.addr, "k1", "changed");
      for (let i = 6; i <= 7; i++) await save(nodes[0]!.addr, `k${i}`, String(i));

      const r = await repl(nodes[2]!.addr, "restore", file, "--yes");
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /into the cluster at index \d+/);
      const want = JSON.stringify(["1", "2", "3", "4", "5", null, null, null]);
      for (const srv of redis) {
        await until(
          "exactly the backup's keys in every Redis",
          () => redisMget(srv, 2, KEYS),
          (v) => JSON.stringify(v) === want,
        );
      }
      const c = await repl(nodes[0]!.addr, "checkConsistency");
      assert.equal(c.code, 0, `${c.stdout}${c.stderr}`);
      assert.equal((c.stdout.match(/ ok\n/g) ?? []).length, 3, c.stdout);
      await save(nodes[1]!.addr, "k8", "8");
      for (const srv of redis) {
        await until(
          "a later save everywhere, on the restored state",
          () => redisMget(srv, 2, KEYS),
          (v) => JSON.stringify(v) === JSON.stringify(["1", "2", "3", "4", "5", null, null, "8"]),
        );
      }
    },
  );
});
