/**
 * Backup and restore end to end with real processes: a 3-node SQLite cluster backed up under
 * writes (`nexus backup` through a follower), the file checked (`nexus backup verify|info`), and
 * restored (`nexus restore`) into a new 3-node cluster and a new 5-node one at other addresses,
 * whose every replica's digest equals the source's at the backup's index. Refusals change
 * nothing.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { SqliteStore } from "../../src/store/sqlite/index.js";
import { repl, run, sqliteCluster, tempDir, until } from "./programs.js";
import type { SqliteNode } from "./programs.js";
import {
  assertRestoredAsSource,
  backupUnderLoad,
  digestOfStore,
  loadOne,
  restoreArgs,
  restoreCluster,
  waitForLeader,
} from "./backup-scenario.js";

/**
 * The digest of node `n`'s rows up to k: its SQLite file copied (VACUUM INTO, while it runs), the
 * later rows deleted from the copy, and the copy digested by SqliteStore as a replica's is.
 */
async function sqliteDigestUpTo(n: SqliteNode, k: number): Promise<string> {
  const copy = join(tempDir("nexus-backup-ref-"), "ref.db");
  const live = new Database(join(n.dir, "store.db"), { readonly: true });
  try {
    live.prepare("vacuum into ?").run(copy);
  } finally {
    live.close();
  }
  const db = new Database(copy);
  db.prepare("delete from t where i > ?").run(k);
  db.close();
  return digestOfStore(new SqliteStore({ path: copy }));
}

describe("nexus backup and nexus restore (SQLite, real processes)", () => {
  it(
    "backs up a 3-node cluster under writes and restores it into new 3- and 5-node clusters at the backup's index",
    { timeout: 300_000 },
    async () => {
      const src = await sqliteCluster(3);
      await Promise.all(src.map((n) => n.start()));
      await waitForLeader(src[0]!.addr);
      const created = await repl(
        src[0]!.addr,
        "sqlite",
        "save",
        "create table t (i integer primary key, v text not null)",
      );
      assert.equal(created.code, 0, created.stderr);
      const taken = await backupUnderLoad(
        src,
        "sqlite",
        (i) => `insert into t values (${i}, 'row ${i}')`,
      );
      const { file } = taken;

      // New clusters, at other addresses: 3 nodes, then 5.
      const dst = await sqliteCluster(3);
      await restoreCluster(file, dst);
      const k = await assertRestoredAsSource(dst, taken, (k) => sqliteDigestUpTo(src[0]!, k));
      const five = await sqliteCluster(5);
      await restoreCluster(file, five);
      assert.equal(
        await assertRestoredAsSource(five, taken, (k) => sqliteDigestUpTo(src[0]!, k)),
        k,
      );
      await Promise.all(five.map((n) => n.stop()));

      // The restored cluster has the new members only, and takes writes.
      const list = await repl(dst[1]!.addr, "listNodes");
      for (const n of dst) assert.ok(list.stdout.includes(n.url), list.stdout);
      for (const n of src) assert.ok(!list.stdout.includes(n.url), list.stdout);
      const w = await repl(dst[1]!.addr, "sqlite", "save", "insert into t values (1000000, 'new')");
      assert.equal(w.code, 0, w.stderr);
      for (const n of dst) {
        await until(
          "the new row everywhere",
          () => loadOne<{ k: number }>(n.addr, "select max(i) as k from t"),
          (r) => r.k === 1000000,
        );
      }

      // Refusals change nothing.
      const running = await run("nexus", restoreArgs(file, dst[0]!));
      assert.equal(running.code, 2);
      assert.match(running.stderr, /is in use by another process/);
      await dst[0]!.stop();
      const again = await run("nexus", restoreArgs(file, dst[0]!));
      assert.equal(again.code, 2);
      assert.match(again.stderr, /is not empty: this node already has data/);
      const fresh = (await sqliteCluster(1))[0]!;
      const cut = join(taken.dir, "cut.nexus-backup");
      const whole = readFileSync(file);
      writeFileSync(cut, whole.subarray(0, whole.length - 10));
      const truncated = await run("nexus", restoreArgs(cut, fresh));
      assert.equal(truncated.code, 1);
      assert.match(truncated.stderr, /cut backup|ends inside/);
      const flipped = Buffer.from(whole);
      const mid = Math.floor(whole.length / 2);
      flipped[mid] = flipped[mid]! ^ 0x40;
      writeFileSync(cut, flipped);
      const damaged = await run("nexus", restoreArgs(cut, fresh));
      assert.equal(damaged.code, 1);
      assert.match(damaged.stderr, /checksum|SHA-256/);
      const otherKind = await run("nexus", [...restoreArgs(file, fresh), "-store", "memory"]);
      assert.equal(otherKind.code, 1);
      assert.match(otherKind.stderr, /is a backup of a sqlite store, not memory/);
      assert.ok(!existsSync(fresh.dir), "a refused restore creates nothing");
      const bad = await run("nexus", ["backup", "verify", cut]);
      assert.equal(bad.code, 1);
    },
  );
});
