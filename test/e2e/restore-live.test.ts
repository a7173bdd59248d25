/**
 * Restore into a running cluster end to end with real processes (`repl <addr> restore <file>`):
 * a 3-node SQLite cluster is written to, backed up, written to again, and restored from the
 * backup through a follower. Every replica then holds exactly the backup's rows, the consistency
 * check finds equal digests, and later saves apply on the restored state. An answer other than
 * "yes", a damaged file and a backup of another store kind change nothing.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BIN, leaderUrl, repl, run, sqliteCluster, tempDir, until } from "./programs.js";
import type { RunResult } from "./programs.js";
import { BackupWriter } from "../../src/backup/backup-file.js";

const RESPONSE = /Response from SQLite \(without quotes\): '(.*)'/s;
const ROWS = "select group_concat(i) as rows from (select i from t order by i)";

async function rows(addr: string): Promise<number[]> {
  const r = await repl("-consistency", "local", addr, "sqlite", "load", ROWS);
  if (r.code !== 0) throw new Error(`load failed: ${r.stderr}`);
  const m = RESPONSE.exec(r.stdout);
  if (m === null) throw new Error(`unexpected output: ${r.stdout}`);
  const v = (JSON.parse(m[1]!) as { rows: string | null }[])[0]!.rows;
  return v === null ? [] : v.split(",").map(Number);
}

/** `bin/repl <args>` with `input` on its standard input. */
function replWithInput(input: string, ...args: string[]): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [BIN("repl"), ...args],
      { timeout: 120_000, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === "number" ? err.code : -1;
        resolve({ code, stdout, stderr });
      },
    );
    child.stdin?.end(input);
  });
}

describe("repl restore: a backup restored into a running cluster (SQLite, real processes)", () => {
  it(
    "replaces every replica's state at one index; digests equal; later saves apply",
    { timeout: 300_000 },
    async () => {
      const nodes = await sqliteCluster(3);
      await Promise.all(nodes.map((n) => n.start()));
      await until(
        "a leader",
        () => leaderUrl(nodes[0]!.addr),
        (u) => u !== "",
      );
      const save = async (addr: string, sql: string): Promise<void> => {
        const r = await repl(addr, "sqlite", "save", sql);
        assert.equal(r.code, 0, `${sql}: ${r.stderr}`);
      };
      await save(nodes[0]!.addr, "create table t (i integer primary key)");
      for (let i = 1; i <= 5; i++) await save(nodes[i % 3]!.addr, `insert into t values (${i})`);
      const dir = tempDir("nexus-restore-live-");
      const file = join(dir, "b.nexus-backup");
      const b = await run("nexus", ["backup", nodes[1]!.addr, file]);
      assert.equal(b.code, 0, b.stderr);
      // Saved after the backup: replaced by the restore.
      for (let i = 6; i <= 9; i++) await save(nodes[0]!.addr, `insert into t values (${i})`);
      await save(nodes[0]!.addr, "create table later (x)");

      const leader = await leaderUrl(nodes[0]!.addr);
      const follower = nodes.find((n) => n.url !== leader)!;

      // Not confirmed: nothing changes.
      const no = await replWithInput("no\n", follower.addr, "restore", file);
      assert.equal(no.code, 1, no.stderr);
      assert.match(no.stderr, /Type yes to continue/);
      assert.match(no.stderr, /restore cancelled; nothing changed/);
      // A damaged file is refused before anything is sent.
      const damaged = join(dir, "damaged.nexus-backup");
      const whole = readFileSync(file);
      const flipped = Buffer.from(whole);
      const mid = Math.floor(whole.length / 2);
      flipped[mid] = flipped[mid]! ^ 0x40;
      writeFileSync(damaged, flipped);
      const bad = await repl(follower.addr, "restore", damaged, "--yes");
      assert.equal(bad.code, 1, bad.stderr);
      assert.match(bad.stderr, /checksum|SHA-256/);
      for (const n of nodes) {
        await until(
          "all 9 rows everywhere",
          () => rows(n.addr),
          (r) => r.length === 9,
        );
      }

      // Confirmed on stdin, through a follower.
      const ok = await replWithInput("yes\n", follower.addr, "restore", file);
      assert.equal(ok.code, 0, ok.stderr);
      const m = /into the cluster at index (\d+)/.exec(ok.stdout);
      assert.ok(m !== null, ok.stdout);
      for (const n of nodes) {
        await until(
          "exactly the backup's rows on every replica",
          () => rows(n.addr),
          (r) => JSON.stringify(r) === "[1,2,3,4,5]",
        );
      }
      // The table created after the backup is gone too.
      const later = await repl(
        "-consistency",
        "local",
        nodes[2]!.addr,
        "sqlite",
        "load",
        "select * from later",
      );
      assert.notEqual(later.code, 0, "the table made after the backup was replaced");
      assert.match(later.stderr, /no such table/);
      const c = await repl(nodes[0]!.addr, "checkConsistency");
      assert.equal(c.code, 0, `${c.stdout}${c.stderr}`);
      assert.equal((c.stdout.match(/ ok\n/g) ?? []).length, 3, c.stdout);
      // Later saves apply on the restored state, everywhere.
      await save(nodes[0]!.addr, "insert into t values (100)");
      for (const n of nodes) {
        await until(
          "the later save everywhere",
          () => rows(n.addr),
          (r) => JSON.stringify(r) === "[1,2,3,4,5,100]",
        );
      }
      // A backup of another store kind is refused (checked here, then by the node); nothing changes.
      const memFile = join(dir, "memory.nexus-backup");
      const w = await BackupWriter.create(memFile, {
        storeKind: "memory",
        clusterName: "other",
        index: 1,
        term: 1,
        members: [],
        nexusVersion: "test",
        createdAt: new Date().toISOString(),
        source: "test",
      });
      await w.write(new TextEncoder().encode('{"nexusMemoryBackup":1,"index":1}\n'));
      await w.finish();
      const wrong = await repl(follower.addr, "restore", memFile, "-y");
      assert.equal(wrong.code, 1, wrong.stderr);
      assert.match(wrong.stderr, /backup of a memory store and this cluster's store is sqlite/);
      for (const n of nodes) assert.deepEqual(await rows(n.addr), [1, 2, 3, 4, 5, 100]);
    },
  );
});
