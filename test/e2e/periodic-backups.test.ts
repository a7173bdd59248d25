/**
 * Periodic backups with real processes: three sqlite_repl nodes all given -backup-interval,
 * -backup-dir, -backup-keep and -backup-upload-cmd; only the leader of the moment writes backups
 * (whole files, the newest N kept, named by time and index), each logged and counted in
 * /metrics, and handed to the upload command by path (a path with shell characters in it is an
 * argument, never shell text). A failing upload is logged and counted and the node goes on. A
 * temporary file left by a crash is removed at start. Bad flags are refused with what to do.
 * And `nexus backup` interrupted by Ctrl-C leaves no `<file>.tmp`.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { freePort } from "../free-port.js";
import { BIN, repl, run, sqliteCluster, tempDir, until } from "./programs.js";
import { waitForLeader } from "./backup-scenario.js";

const NAME = /^nexus-backup-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.\d{3}Z-index-(\d+)\.nexus-backup$/;

const backupsIn = (dir: string): string[] =>
  existsSync(dir) ? readdirSync(dir).filter((n) => n.endsWith(".nexus-backup")) : [];

async function metric(port: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  return line === undefined ? 0 : Number(line.slice(name.length + 1));
}

describe("periodic backups (real processes)", () => {
  it("refuses flags that do not go together, with what to do", async () => {
    const [n] = await sqliteCluster(1);
    for (const [flags, want] of [
      [["-backup-interval=1s"], /-backup-interval needs -backup-dir/],
      [["-backup-dir=/tmp/x"], /-backup-dir needs -backup-interval/],
      [["-backup-keep=3"], /-backup-keep needs -backup-interval/],
      [["-backup-interval=100ms", "-backup-dir=/tmp/x"], /at least 1s/],
      [["-backup-interval=soon", "-backup-dir=/tmp/x"], /must be a duration/],
      [["-backup-interval=1s", "-backup-dir=/tmp/x", "-backup-keep=0"], /backup-keep/],
    ] as const) {
      const r = await run("sqlite_repl", [...n!.flags(), ...flags]);
      assert.equal(r.code, 2, `${flags.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, want);
    }
    const file = join(tempDir(), "not-a-folder");
    writeFileSync(file, "x");
    const r = await run("sqlite_repl", [
      ...n!.flags(),
      "-backup-interval=1s",
      `-backup-dir=${file}`,
    ]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /is not a folder this node can write to/);
  });

  it(
    "only the leader writes them, keeps the newest N, logs, counts and uploads each; a failed upload does not stop the node",
    { timeout: 240_000 },
    async () => {
      const root = tempDir("nexus-periodic-");
      // Shell characters and a space in the path: the upload command gets it as an argument.
      const dirs = [1, 2, 3].map((i) => join(root, `node ${i} $(touch INJECTED)`));
      const uploads = join(root, "uploads");
      mkdirSync(uploads);
      const script = join(root, "upload.sh");
      writeFileSync(
        script,
        `#!/bin/sh\nif [ -e '${uploads}/fail' ]; then echo "bucket unreachable" >&2; exit 3; fi\ncp "$1" '${uploads}/'\n`,
      );
      chmodSync(script, 0o755);
      // A temporary file left by a crash, and a file that is not a backup: only the first goes.
      mkdirSync(join(dirs[0]!, "backups"), { recursive: true });
      const stale = "nexus-backup-2026-01-01T00-00-00.000Z-index-5.nexus-backup.tmp";
      writeFileSync(join(dirs[0]!, "backups", stale), "cut");
      writeFileSync(join(dirs[0]!, "backups", "notes.txt"), "mine");
      const httpPorts = [await freePort(), await freePort(), await freePort()];
      const nodes = await sqliteCluster(
        3,
        [
          "-backup-interval=1s",
          "-backup-keep=2",
          `-backup-upload-cmd=${script}`,
          "-log-level=info",
          "-log-format=json",
        ],
        "sqlite_repl",
        (i) => [
          "-sqlitePath",
          join(dirs[i]!, "store.db"),
          `-backup-dir=${join(dirs[i]!, "backups")}`,
          `-http-port=${httpPorts[i]}`,
        ],
      );
      await Promise.all(nodes.map((n) => n.start()));
      assert.ok(!existsSync(join(dirs[0]!, "backups", stale)), "the crash's .tmp is removed");
      const leaderUrl = await waitForLeader(nodes[0]!.addr);
      const li = nodes.findIndex((n) => n.url === leaderUrl);
      const leader = nodes[li]!;
      const c = await repl(leader.addr, "sqlite", "save", "create table t (i integer)");
      assert.equal(c.code, 0, c.stderr);
      for (let i = 0; i < 5; i++) {
        const s = await repl(nodes[i % 3]!.addr, "sqlite", "save", `insert into t values (${i})`);
        assert.equal(s.code, 0, s.stderr);
      }
      await until(
        "3 backups uploaded",
        async () => readdirSync(uploads).length,
        (n) => n >= 3,
        60_000,
      );
      assert.equal(await waitForLeader(nodes[0]!.addr), leaderUrl, "the leader did not change");
      const ldir = join(dirs[li]!, "backups");
      const kept = backupsIn(ldir).sort();
      assert.ok(kept.length === 2 || kept.length === 3, kept.join(", ")); // 3 while one is pruned
      for (const name of kept) assert.match(name, NAME);
      assert.ok(existsSync(join(dirs[0]!, "backups", "notes.txt")), "other files are kept");
      assert.ok(
        !existsSync(join(process.cwd(), "INJECTED")) && !existsSync(join(root, "INJECTED")),
      );
      // A copy the upload command made (the folder's own files are pruned meanwhile).
      const copy = join(uploads, readdirSync(uploads)[0]!);
      const v = await run("nexus", ["backup", "verify", copy]);
      assert.equal(v.code, 0, v.stderr);
      assert.match(v.stdout, /a whole backup .* of sqlite cluster "nexus"/);
      const indexes = readdirSync(uploads).map((n) => Number(NAME.exec(n)![1]));
      assert.ok(indexes.every((x) => x >= 1));
      for (const [i, n] of nodes.entries()) {
        if (i === li) continue;
        assert.deepEqual(backupsIn(join(dirs[i]!, "backups")), [], `follower ${n.url} wrote none`);
        assert.equal(await metric(httpPorts[i]!, 'nexus_backups_total{outcome="ok"}'), 0);
      }
      const hp = httpPorts[li]!;
      assert.ok((await metric(hp, 'nexus_backups_total{outcome="ok"}')) >= 3);
      assert.ok((await metric(hp, 'nexus_backup_uploads_total{outcome="ok"}')) >= 3);
      assert.ok((await metric(hp, "nexus_backup_last_size_bytes")) > 0);
      const last = await metric(hp, "nexus_backup_last_success_timestamp_seconds");
      assert.ok(Math.abs(last - Date.now() / 1000) < 30, String(last));
      assert.ok((await metric(hp, "nexus_backup_duration_seconds_count")) >= 3);
      const logLines = leader.stderr
        .split("\n")
        .filter((l) => l.includes('"periodic backup written"'))
        .map((l) => JSON.parse(l) as { level: string; file: string; index: number; bytes: number });
      assert.ok(logLines.length >= 3);
      assert.equal(logLines[0]!.level, "info");
      assert.ok(logLines[0]!.file.startsWith(ldir) && logLines[0]!.bytes > 0);

      // The upload fails: logged and counted, and the node goes on taking backups and saves.
      writeFileSync(join(uploads, "fail"), "");
      await until(
        "a failed upload counted",
        () => metric(hp, 'nexus_backup_uploads_total{outcome="failed"}'),
        (n) => n >= 1,
        30_000,
      );
      assert.match(leader.stderr, /"stderr":"bucket unreachable".*"backup upload command failed/);
      const s = await repl(leader.addr, "sqlite", "save", "insert into t values (100)");
      assert.equal(s.code, 0, s.stderr);

      // Another leader: it takes the backups from then on.
      const next = nodes[(li + 1) % 3]!;
      const ndir = join(dirs[(li + 1) % 3]!, "backups");
      const t = await repl(leader.addr, "transferLeader", next.url);
      assert.equal(t.code, 0, t.stderr);
      await until(
        "the new leader's backups",
        async () => backupsIn(ndir).length,
        (n) => n >= 2,
        30_000,
      );
      const before = backupsIn(ldir).sort();
      await until(
        "another backup of the new leader",
        async () => backupsIn(ndir).sort().at(-1),
        (x) => x !== undefined && x > backupsIn(ndir).sort()[0]!,
        30_000,
      );
      assert.deepEqual(backupsIn(ldir).sort(), before, "the old leader takes no more");
      await Promise.all(nodes.map((n) => n.stop()));
      for (const d of dirs) {
        const left = existsSync(join(d, "backups")) ? readdirSync(join(d, "backups")) : [];
        assert.deepEqual(
          left.filter((n) => n.endsWith(".tmp")),
          [],
        );
      }
    },
  );

  it(
    "nexus backup interrupted by Ctrl-C removes its temporary file and exits 130",
    {
      timeout: 120_000,
    },
    async () => {
      const [n] = await sqliteCluster(1, ["-nexus-repl-timeout=120"]);
      await n!.start();
      await waitForLeader(n!.addr);
      for (const sql of [
        "create table b (i integer primary key, v blob)",
        "with recursive c(x) as (select 1 union all select x + 1 from c where x < 200) insert into b select x, zeroblob(1000000) from c",
      ]) {
        const r = await repl(n!.addr, "sqlite", "save", sql);
        assert.equal(r.code, 0, r.stderr);
      }
      const dir = tempDir("nexus-backup-cut-");
      const file = join(dir, "big.nexus-backup");
      const p = spawn(process.execPath, [BIN("nexus"), "backup", n!.addr, file], {
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stderr = "";
      p.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
      const exited = new Promise<number | null>((res) => p.once("exit", (code) => res(code)));
      await until(
        "the temporary file",
        async () => existsSync(`${file}.tmp`),
        (x) => x,
        60_000,
      );
      p.kill("SIGINT");
      assert.equal(await exited, 130, stderr);
      assert.match(stderr, /SIGINT: stopped; nothing was written/);
      assert.deepEqual(readdirSync(dir), []);
    },
  );
});
