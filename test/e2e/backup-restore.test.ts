/**
 * Backup and restore end to end with real processes: a 3-node SQLite cluster backed up under
 * writes (`nexus backup` through a follower), the file checked (`nexus backup verify|info`), and
 * restored (`nexus restore`) into a new 3-node cluster at other addresses, whose every replica
 * holds exactly the state at the backup's index. Refusals change nothing.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { leaderUrl, repl, run, sqliteCluster, tempDir, until } from "./programs.js";
import type { SqliteNode } from "./programs.js";

const RESPONSE = /Response from SQLite \(without quotes\): '(.*)'/s;

async function load(addr: string, sql: string): Promise<string> {
  const r = await repl(addr, "sqlite", "load", sql);
  if (r.code !== 0) throw new Error(`load failed: ${r.stderr}`);
  const m = RESPONSE.exec(r.stdout);
  if (m === null) throw new Error(`unexpected output: ${r.stdout}`);
  return m[1]!;
}

const ROWS = "select group_concat(i) as rows from (select i from t order by i)";

function rowsOf(json: string): number[] {
  const v = (JSON.parse(json) as { rows: string | null }[])[0]!.rows;
  return v === null ? [] : v.split(",").map(Number);
}

function restoreArgs(file: string, n: SqliteNode): string[] {
  return [
    "restore",
    file,
    "-nexus-node-url",
    n.url,
    "-nexus-cluster-url",
    n.clusterUrls.join(","),
    `-nexus-log-dir=${join(n.dir, "logs")}`,
    `-nexus-snap-dir=${join(n.dir, "snap")}`,
    "-sqlitePath",
    join(n.dir, "store.db"),
  ];
}

describe("nexus backup and nexus restore (SQLite, real processes)", () => {
  it("backs up a 3-node cluster under writes and restores it into a new 3-node cluster at the backup's index", async () => {
    const src = await sqliteCluster(3);
    await Promise.all(src.map((n) => n.start()));
    await until(
      "a leader",
      () => leaderUrl(src[0]!.addr),
      (u) => u !== "",
    );
    const created = await repl(
      src[0]!.addr,
      "sqlite",
      "save",
      "create table t (i integer primary key)",
    );
    assert.equal(created.code, 0, created.stderr);

    // A writer saving 1, 2, 3... one after the other, through the first node.
    const acked: number[] = [];
    let stop = false;
    const writer = (async () => {
      for (let i = 1; !stop; i++) {
        const r = await repl(src[0]!.addr, "sqlite", "save", `insert into t values (${i})`);
        assert.equal(r.code, 0, `save ${i}: ${r.stderr}`);
        acked.push(i);
      }
    })();
    await until(
      "10 saves",
      async () => acked.length,
      (n) => n >= 10,
      60_000,
    );

    // Through a follower (the read barrier asks the leader), while the writer goes on.
    const leader = await leaderUrl(src[0]!.addr);
    const follower = src.find((n) => n.url !== leader)!;
    const dir = tempDir("nexus-backup-");
    const file = join(dir, "cluster.nexus-backup");
    const ackedBefore = acked.length;
    const b = await run("nexus", ["backup", follower.addr, file]);
    const writtenDuring = acked.length;
    assert.equal(b.code, 0, b.stderr);
    assert.match(b.stderr, /backup: [\d.]+ MiB, [\d.]+ MiB\/s/);
    assert.match(b.stdout, /backup of sqlite cluster "nexus" at index \d+/);
    assert.deepEqual(readdirSync(dir), ["cluster.nexus-backup"], "no .tmp left");
    await until(
      "3 more saves",
      async () => acked.length,
      (n) => n >= writtenDuring + 3,
      60_000,
    );
    stop = true;
    await writer;
    const v = await run("nexus", ["backup", "verify", file]);
    assert.equal(v.code, 0, v.stderr);
    const info = await run("nexus", ["backup", "info", "-o", "json", file]);
    assert.equal(info.code, 0, info.stderr);
    const header = JSON.parse(info.stdout) as {
      storeKind: string;
      index: number;
      term: number;
      members: { url: string; role: string }[];
    };
    assert.equal(header.storeKind, "sqlite");
    assert.deepEqual(header.members.map((m) => m.url).sort(), src.map((n) => n.url).sort());

    // The new cluster, at other addresses.
    const dst = await sqliteCluster(3);
    for (const n of dst) {
      const r = await run("nexus", restoreArgs(file, n));
      assert.equal(r.code, 0, r.stderr);
    }
    await Promise.all(dst.map((n) => n.start()));
    await until(
      "a leader in the restored cluster",
      () => leaderUrl(dst[0]!.addr),
      (u) => u !== "",
    );
    const seen: number[][] = [];
    for (const n of dst)
      seen.push(
        rowsOf(
          await until(
            "a load",
            () => load(n.addr, ROWS),
            () => true,
          ),
        ),
      );
    // Every replica holds the same rows: every save acknowledged before the backup began, and
    // then a prefix of the later ones (the writer saves in order), nothing after the last save.
    assert.deepEqual(seen[1], seen[0]);
    assert.deepEqual(seen[2], seen[0]);
    const rows = seen[0]!;
    assert.ok(
      rows.length >= ackedBefore,
      `${rows.length} rows, ${ackedBefore} acknowledged before`,
    );
    assert.ok(rows.length <= acked.length + 1);
    assert.deepEqual(
      rows,
      Array.from({ length: rows.length }, (_, i) => i + 1),
    );
    // The source kept going after the backup: it holds more than the backup.
    assert.ok(rowsOf(await load(src[0]!.addr, ROWS)).length > rows.length);

    // The restored cluster has the new members, all at the backup's index or past it, and writes.
    const list = await repl(dst[1]!.addr, "listNodes");
    for (const n of dst) assert.ok(list.stdout.includes(n.url), list.stdout);
    for (const n of src) assert.ok(!list.stdout.includes(n.url), list.stdout);
    const w = await repl(dst[1]!.addr, "sqlite", "save", "insert into t values (1000000)");
    assert.equal(w.code, 0, w.stderr);
    for (const n of dst) {
      await until(
        "the new row everywhere",
        async () => rowsOf(await load(n.addr, ROWS)).at(-1),
        (x) => x === 1000000,
      );
    }
    const c = await repl(dst[0]!.addr, "checkConsistency");
    assert.equal(c.code, 0, `${c.stdout}${c.stderr}`);
    // Refusals change nothing.
    const running = await run("nexus", restoreArgs(file, dst[0]!));
    assert.equal(running.code, 2);
    assert.match(running.stderr, /is in use by another process/);
    await dst[0]!.stop();
    const again = await run("nexus", restoreArgs(file, dst[0]!));
    assert.equal(again.code, 2);
    assert.match(again.stderr, /is not empty: this node already has data/);
    const fresh = (await sqliteCluster(1))[0]!;
    const cut = join(dir, "cut.nexus-backup");
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
  });
});
