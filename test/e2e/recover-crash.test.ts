/**
 * `nexus recover` and `nexus restore` killed (SIGKILL) at every step of writing and swapping in a
 * node's new WAL and snapshot folders (NEXUS_CRASH_POINT: the folder swap's points, and some of
 * the WAL's and the snapshotter's while the new folders are built), with real processes, files
 * and fsyncs (RECOVER_CRASH_POINTS chooses the points, see below). After each kill the node's data is the old state (byte for byte: the node starts as
 * before, and running the command again succeeds), or the new state, or a swap under way: then the
 * node refuses to start, saying to run the command again, and running it again finishes it. In
 * every case the node then starts as a one-member cluster holding every acknowledged write, and
 * the old data is kept aside, whole.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { cpSync, existsSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { BIN, SqliteNode, leaderUrl, run, sqliteCluster, tempDir, until } from "./programs.js";
import type { RunResult } from "./programs.js";
import { recoverFlags, sqliteRows as rows, sqliteSave as save } from "./majority-loss-scenario.js";

const ALL = [1, 2, 3, 4, 5, 6, 7, 8];

/** `bin/nexus <args>` with NEXUS_CRASH_POINT set; `signal` is SIGKILL when it crashed there. */
function nexusCrashingAt(
  point: string,
  args: readonly string[],
): Promise<RunResult & { signal: string | null }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN("nexus"), ...args],
      { timeout: 60_000, env: { ...process.env, NEXUS_CRASH_POINT: point } },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === "number" ? err.code : -1;
        resolve({ code, stdout, stderr, signal: err?.signal ?? null });
      },
    );
  });
}

/** The segment and snapshot files of a folder, by name (what a node opens). */
function dataFiles(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  if (!existsSync(dir)) return out;
  for (const n of readdirSync(dir).sort()) {
    if (n.endsWith(".wal") || n.endsWith(".snap")) {
      out.set(n, readFileSync(join(dir, n)).toString("base64"));
    }
  }
  return out;
}

/**
 * The crash points a run reaches, as `<point>[:<nth>]`, one of each distinct state a kill leaves
 * (a kill keeps what was written but not synced, so a point right after a rename and the one
 * after its fsync leave the same folders: test/storage/folder-swap.test.ts covers what a power
 * loss makes of them). RECOVER_CRASH_POINTS=distinct runs these, =all every point of the swap and
 * more of the build, =<p>,<p> those.
 */
const DISTINCT = [
  "wal.batch-after-sync",
  "swap.fresh-after-sync",
  "swap.journal-after-write",
  "swap.journal-after-sync",
  "swap.aside-after-sync:1",
  "swap.place-after-sync:1",
  "swap.aside-after-sync:2",
  "swap.place-after-sync:2",
  "swap.journal-after-unlink",
];
const EVERY = [
  "snap.save-after-write",
  "snap.save-after-dir-sync",
  "wal.create-after-rename",
  "wal.batch-after-sync",
  "swap.fresh-after-sync",
  "swap.journal-after-write",
  "swap.journal-after-rename",
  "swap.journal-after-sync",
  "swap.aside-after-rename:1",
  "swap.aside-after-sync:1",
  "swap.place-after-rename:1",
  "swap.place-after-sync:1",
  "swap.aside-after-rename:2",
  "swap.aside-after-sync:2",
  "swap.place-after-rename:2",
  "swap.place-after-sync:2",
  "swap.journal-after-unlink",
  "swap.done",
];
/**
 * What `npm test` runs: one point of each outcome (the old state, a swap under way, the new
 * state), since each point costs a recover, a restart and a read with real processes.
 * RECOVER_CRASH_POINTS=distinct runs DISTINCT.
 */
const SAMPLE = ["swap.journal-after-write", "swap.place-after-sync:1", "swap.journal-after-unlink"];
const chosen = process.env["RECOVER_CRASH_POINTS"] ?? "";
const POINTS =
  chosen === ""
    ? SAMPLE
    : chosen === "distinct"
      ? DISTINCT
      : chosen === "all"
        ? EVERY
        : chosen.split(",").map((p) => p.trim());

/** Starts `n`'s folders as a one-member cluster and checks it leads alone with every write. */
async function startsWithEveryWrite(n: SqliteNode): Promise<void> {
  await n.start();
  try {
    // A linearizable read answers only once the node leads (alone: it is the only member).
    assert.deepEqual(
      await until(
        "every write, read through the node as leader",
        () => rows(n.addr),
        (r) => r.length === ALL.length,
      ),
      ALL,
    );
  } finally {
    await n.stop();
  }
}

/** Starting `n` is refused: a swap is under way; the message names the command to run. */
async function refusesToStart(n: SqliteNode, command: string): Promise<void> {
  await assert.rejects(n.start(), (e: Error) => {
    assert.match(e.message, /exited with 2/);
    assert.match(e.message, new RegExp(`nexus ${command}\` of this node was interrupted`));
    assert.match(e.message, new RegExp(`Run \`nexus ${command}\` again with the same flags`));
    return true;
  });
}

describe("nexus recover and nexus restore killed at every step (SQLite, real processes)", () => {
  it(
    "leave the old state, the new state, or a swap that the command run again finishes; never a half node",
    { timeout: 900_000 },
    async () => {
      const nodes = await sqliteCluster(3);
      await Promise.all(nodes.map((n) => n.start()));
      await until(
        "a leader",
        () => leaderUrl(nodes[0]!.addr),
        (u) => u !== "",
      );
      await save(nodes[0]!.addr, "create table t (i integer primary key)");
      for (const i of ALL) await save(nodes[i % 3]!.addr, `insert into t values (${i})`);
      const survivor = nodes[1]!;
      await until(
        "the survivor applied every write",
        () => rows(survivor.addr),
        (r) => r.length === ALL.length,
      );
      const backupFile = join(tempDir("nexus-recover-crash-"), "b.nexus-backup");
      const b = await run("nexus", ["backup", survivor.addr, backupFile]);
      assert.equal(b.code, 0, b.stderr);
      await nodes[0]!.stop("SIGKILL");
      await nodes[2]!.stop("SIGKILL");
      await survivor.stop();
      const template = join(tempDir("nexus-recover-crash-"), "template");
      cpSync(survivor.dir, template, { recursive: true });
      const nodeDir = readdirSync(join(template, "logs")).find((n) => /^node_\d+$/.test(n))!;
      const oldWal = dataFiles(join(template, "logs", nodeDir));
      const oldSnap = dataFiles(join(template, "snap", nodeDir));
      assert.ok(oldWal.size > 0);

      const root = tempDir("nexus-recover-crash-");
      for (const point of POINTS) {
        // recover: a copy of the stopped survivor's folders, at the survivor's own URL.
        const n = new SqliteNode(survivor.raftPort, survivor.grpcPort, join(root, `r-${point}`), [
          survivor.url,
        ]);
        cpSync(template, n.dir, { recursive: true });
        const walDir = join(n.dir, "logs", nodeDir);
        const snapDir = join(n.dir, "snap", nodeDir);
        const flags = recoverFlags(n, "sqlite");
        const crashed = await nexusCrashingAt(point, ["recover", ...flags]);
        assert.equal(crashed.signal, "SIGKILL", `recover at ${point}: ${crashed.stderr}`);
        const aside = (): string[] =>
          readdirSync(join(n.dir, "logs")).filter((f) => f.includes(".before-recover-"));
        if (existsSync(`${walDir}.swap-journal`)) {
          await refusesToStart(n, "recover");
          const again = await run("nexus", ["recover", ...flags]);
          assert.equal(again.code, 0, `${point}: ${again.stderr}`);
          assert.match(again.stdout, /finished an interrupted nexus recover/);
        } else if (aside().length === 0) {
          // The old state, byte for byte (a node would start as before); leftovers aside.
          assert.deepEqual(dataFiles(walDir), oldWal, point);
          assert.deepEqual(dataFiles(snapDir), oldSnap, point);
          const again = await run("nexus", ["recover", ...flags]);
          assert.equal(again.code, 0, `${point}: ${again.stderr}`);
          assert.match(again.stdout, /is now the only member of a new cluster/);
        }
        // The new state, whole: nothing left beside it, the old data aside.
        const half = `${point}: no journal, the old data aside but a new folder not in place (a half-swapped node)`;
        assert.equal(existsSync(`${walDir}.swap-journal`), false, point);
        assert.equal(existsSync(`${walDir}.swap-new`), false, half);
        assert.equal(existsSync(`${snapDir}.swap-new`), false, half);
        assert.equal(aside().length, 1, point);
        assert.deepEqual(dataFiles(join(n.dir, "logs", aside()[0]!)), oldWal, point);
        await startsWithEveryWrite(n);
      }

      for (const point of POINTS) {
        // restore: empty folders for a one-member cluster at the survivor's URL.
        const n = new SqliteNode(survivor.raftPort, survivor.grpcPort, join(root, `s-${point}`), [
          survivor.url,
        ]);
        const walDir = join(n.dir, "logs", nodeDir);
        const snapDir = join(n.dir, "snap", nodeDir);
        const args = [
          "restore",
          backupFile,
          "-nexus-node-url",
          n.url,
          "-nexus-cluster-url",
          n.url,
          `-nexus-log-dir=${join(n.dir, "logs")}`,
          `-nexus-snap-dir=${join(n.dir, "snap")}`,
          "-sqlitePath",
          join(n.dir, "store.db"),
        ];
        // Nothing to put aside in a restore: the second folder placed is the WAL.
        if (point.startsWith("swap.aside-")) continue;
        const crashed = await nexusCrashingAt(point, args);
        assert.equal(crashed.signal, "SIGKILL", `restore at ${point}: ${crashed.stderr}`);
        if (existsSync(`${walDir}.swap-journal`)) {
          await refusesToStart(n, "restore");
          const again = await run("nexus", args);
          assert.equal(again.code, 0, `${point}: ${again.stderr}`);
          assert.match(again.stdout, /finished an interrupted nexus restore/);
        } else if (!existsSync(walDir)) {
          // No data at all, as before the restore: never a snapshot without its WAL.
          assert.deepEqual(dataFiles(snapDir), new Map(), point);
          const again = await run("nexus", args);
          assert.equal(again.code, 0, `${point}: ${again.stderr}`);
        }
        assert.equal(existsSync(`${walDir}.swap-new`), false, point);
        assert.equal(existsSync(`${snapDir}.swap-new`), false, point);
        await startsWithEveryWrite(n);
      }
    },
  );
});

describe("nexus recover keeps what the survivor's log knows committed (SQLite, real processes)", () => {
  it("a store that lost its last transactions (an older file, as a power loss leaves it) gets them from the log before the new cluster is made", async () => {
    const nodes = await sqliteCluster(3);
    await Promise.all(nodes.map((n) => n.start()));
    await until(
      "a leader",
      () => leaderUrl(nodes[0]!.addr),
      (u) => u !== "",
    );
    const half = ALL.slice(0, 4);
    await save(nodes[0]!.addr, "create table t (i integer primary key)");
    for (const i of half) await save(nodes[0]!.addr, `insert into t values (${i})`);
    const survivor = nodes[1]!;
    const db = join(survivor.dir, "store.db");
    await until(
      "the survivor applied the first writes",
      () => rows(survivor.addr),
      (r) => r.length === half.length,
    );
    // The survivor's store as it was after the first writes.
    await survivor.stop();
    const older = join(tempDir("nexus-recover-catch-up-"), "store.db");
    cpSync(db, older);
    await survivor.start();
    for (const i of ALL.slice(4)) await save(nodes[0]!.addr, `insert into t values (${i})`);
    await until(
      "the survivor applied every write",
      () => rows(survivor.addr),
      (r) => r.length === ALL.length,
    );
    await nodes[0]!.stop("SIGKILL");
    await nodes[2]!.stop("SIGKILL");
    await survivor.stop();
    // Its store goes back to the older file: the last writes are only in its log now.
    for (const f of [`${db}-wal`, `${db}-shm`]) rmSync(f, { force: true });
    cpSync(older, db);
    const r = await run("nexus", ["recover", ...recoverFlags(survivor, "sqlite")]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /applied the log's entries \d+ to \d+, which the store had not applied/);
    const alone = new SqliteNode(survivor.raftPort, survivor.grpcPort, survivor.dir, [
      survivor.url,
    ]);
    await startsWithEveryWrite(alone);
  });
});
