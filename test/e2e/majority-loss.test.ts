/**
 * After losing a majority, with real processes: 2 of 3 SQLite nodes killed, the survivor's state
 * taken with `nexus backup -local` (no quorum needed), restored as a one-member cluster at the
 * survivor's own address, then two new members added back with addNode. Every write the survivor
 * had applied is kept. `nexus recover` refuses while another member of the survivor's cluster
 * still answers, unless --force.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { freePort } from "../free-port.js";
import { SqliteNode, leaderUrl, repl, run, sqliteCluster, tempDir, until } from "./programs.js";
import {
  recoverAfterLosingTwo,
  recoverFlags,
  sqliteRows as rows,
  sqliteSave as save,
} from "./majority-loss-scenario.js";

describe("recovering from the loss of 2 of 3 nodes (SQLite, real processes)", () => {
  it(
    "keeps every write the survivor applied: backup -local, restore as one member, add members back",
    { timeout: 300_000 },
    async () => {
      const nodes = await sqliteCluster(3);
      await Promise.all(nodes.map((n) => n.start()));
      await until(
        "a leader",
        () => leaderUrl(nodes[0]!.addr),
        (u) => u !== "",
      );
      await save(nodes[0]!.addr, "create table t (i integer primary key)");
      for (let i = 1; i <= 8; i++) await save(nodes[i % 3]!.addr, `insert into t values (${i})`);
      const survivor = nodes[2]!;
      await until(
        "the survivor applied every write",
        () => rows(survivor.addr),
        (r) => r.length === 8,
      );

      // Lose two: the survivor cannot commit any more.
      await nodes[0]!.stop("SIGKILL");
      await nodes[1]!.stop("SIGKILL");
      const refused = await repl(
        "-timeout=2",
        survivor.addr,
        "sqlite",
        "save",
        "insert into t values (99)",
      );
      assert.notEqual(refused.code, 0);

      // 1. The survivor's state, as it applied it (no read barrier: there is no quorum).
      const file = join(tempDir("nexus-recover-"), "survivor.nexus-backup");
      const b = await run("nexus", ["backup", "-local", survivor.addr, file]);
      assert.equal(b.code, 0, b.stderr);
      await survivor.stop();

      // 2. A one-member cluster at the survivor's address, from fresh folders.
      const one = new SqliteNode(survivor.raftPort, survivor.grpcPort, join(tempDir(), "one"), [
        survivor.url,
      ]);
      const r = await run("nexus", [
        "restore",
        file,
        "-nexus-node-url",
        one.url,
        "-nexus-cluster-url",
        one.url,
        `-nexus-log-dir=${join(one.dir, "logs")}`,
        `-nexus-snap-dir=${join(one.dir, "snap")}`,
        "-sqlitePath",
        join(one.dir, "store.db"),
      ]);
      assert.equal(r.code, 0, r.stderr);
      await one.start();
      await until(
        "the survivor leads alone",
        () => leaderUrl(one.addr),
        (u) => u === one.url,
      );
      assert.deepEqual(await rows(one.addr), [1, 2, 3, 4, 5, 6, 7, 8]);
      await save(one.addr, "insert into t values (9)");

      // 3. Two new members added back, one at a time.
      const added: SqliteNode[] = [];
      for (let k = 0; k < 2; k++) {
        const n = new SqliteNode(await freePort(), await freePort(), join(tempDir(), `new${k}`), [
          one.url,
        ]);
        await n.start();
        const a = await repl(one.addr, "addNode", n.url);
        assert.equal(a.code, 0, a.stderr);
        added.push(n);
      }
      await save(added[0]!.addr, "insert into t values (10)");
      for (const n of [one, ...added]) {
        await until(
          "every write on every member",
          () => rows(n.addr, "local"),
          (v) => v.length === 10,
        );
        assert.deepEqual(await rows(n.addr, "local"), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      }
    },
  );

  it(
    "nexus recover --inspect, then nexus recover: the stopped survivor's own data as a one-member cluster, members added back",
    { timeout: 300_000 },
    () =>
      recoverAfterLosingTwo({
        kind: "sqlite",
        program: "sqlite_repl",
        stores: async () => undefined,
        setup: (addr) => save(addr, "create table t (i integer primary key)"),
        insert: (addr, i) => save(addr, `insert into t values (${i})`),
        rows,
      }),
  );

  it(
    "nexus recover refuses while another member answers (a leader, then a lone member), succeeds once it is stopped; --force skips the check",
    { timeout: 300_000 },
    async () => {
      const nodes = await sqliteCluster(3);
      await Promise.all(nodes.map((n) => n.start()));
      const [a, survivor, c] = nodes as [SqliteNode, SqliteNode, SqliteNode];
      await until(
        "a leader",
        () => leaderUrl(a.addr),
        (u) => u !== "",
      );
      await save(a.addr, "create table t (i integer primary key)");
      for (let i = 1; i <= 3; i++) await save(c.addr, `insert into t values (${i})`);
      await until(
        "the survivor applied every write",
        () => rows(survivor.addr),
        (r) => r.length === 3,
      );
      await survivor.stop();
      const dataFlags = (n: SqliteNode): string[] => recoverFlags(n, "sqlite");
      const aside = (n: SqliteNode): string[] =>
        readdirSync(join(n.dir, "logs")).filter((f) => f.includes("before-recover"));

      // The other two still form a cluster with a leader.
      await until(
        "a leader among the two still running",
        () => leaderUrl(c.addr),
        (u) => u === a.url || u === c.url,
      );
      const withLeader = await run("nexus", ["recover", ...dataFlags(survivor)]);
      assert.equal(withLeader.code, 2, withLeader.stderr);
      // (The leader's answer, unless an election is under way: test/node/recover-check.test.ts
      // covers each answer.)
      assert.match(withLeader.stderr, /the cluster still has a leader|still run/);
      assert.ok(
        [a.url, c.url].some((u) => withLeader.stderr.includes(u)),
        withLeader.stderr,
      );
      assert.match(withLeader.stderr, /nothing was changed/);
      assert.deepEqual(aside(survivor), []);

      // One other member still runs (without a quorum): still refused, naming it.
      await a.stop("SIGKILL");
      const lone = await run("nexus", ["recover", ...dataFlags(survivor)]);
      assert.equal(lone.code, 2, lone.stderr);
      assert.ok(lone.stderr.includes(c.url), lone.stderr);
      assert.match(lone.stderr, /--force/);
      assert.deepEqual(aside(survivor), []);

      // --force skips the check (the killed member's data, while c still runs).
      const forced = await run("nexus", ["recover", "--force", ...dataFlags(a)]);
      assert.equal(forced.code, 0, forced.stderr);
      assert.equal(aside(a).length, 1);

      // Once the last other member is stopped, the survivor is recovered.
      await c.stop();
      const rec = await run("nexus", ["recover", ...dataFlags(survivor)]);
      assert.equal(rec.code, 0, rec.stderr);
      const one = new SqliteNode(survivor.raftPort, survivor.grpcPort, survivor.dir, [
        survivor.url,
      ]);
      await one.start();
      await until(
        "the survivor leads alone",
        () => leaderUrl(one.addr),
        (u) => u === one.url,
      );
      assert.deepEqual(await rows(one.addr), [1, 2, 3]);
    },
  );
});
