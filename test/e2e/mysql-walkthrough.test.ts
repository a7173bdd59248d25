/**
 * The original README's MySQL walkthrough, step by step: three independent MariaDB instances
 * (own data folders, each with a database `nexus`) started here, three bin/mysql_repl nodes with
 * the original's DSN form, the exact bin/repl commands, and every instance inspected directly.
 * Then: NOW()/RAND() determinism, MariaDB down and back, a restart without double application,
 * and a new replica catching up from a snapshot.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { startMariaDb } from "../store/mariadb-server.js";
import type { MariaDbServer } from "../store/mariadb-server.js";
import { SqliteNode, leaderUrl, repl, run, sqliteCluster, tempDir, until } from "./programs.js";
import { freePort } from "../free-port.js";

const says = (v: string): string => `Response from MySQL (without quotes): '${v}'\n`;

async function rows(db: MariaDbServer, sql: string): Promise<string> {
  try {
    return JSON.stringify(await db.query(sql, "nexus"));
  } catch (err) {
    return `error: ${(err as Error).message}`;
  }
}

describe("the original's MySQL walkthrough", () => {
  it(
    "three mysql_repl nodes on three MariaDB instances: the README's commands, each instance inspected, faults",
    { timeout: 240_000 },
    async () => {
      const dbs = [await startMariaDb(), await startMariaDb(), await startMariaDb()];
      const nodes = await sqliteCluster(
        3,
        ["-nexus-snapshot-count=10", "-nexus-snapshot-catchup-entries=2"],
        "mysql_repl",
        (i) => ["-mysqlConnUrl", dbs[i]!.dsn()],
      );
      await Promise.all(nodes.map((n) => n.start()));
      const addr = nodes[0]!.addr;
      await until(
        "a leader",
        () => leaderUrl(addr),
        (l) => l !== "",
      );

      // # Create a `sync_table` in all the nodes
      const created = await repl(
        addr,
        "mysql",
        "save",
        "create table sync_table (id INT PRIMARY KEY AUTO_INCREMENT, data VARCHAR(50) NOT NULL, ts timestamp(3) default current_timestamp(3) on update current_timestamp(3));",
      );
      assert.equal(created.stdout, says('{"rowsAffected":0,"lastInsertId":0}'), created.stderr);
      // # Insert some data into this table: the README's inserts name a column the table lacks.
      for (const sql of [
        "insert into sync_table (name, data) values ('foo', 'bar');",
        "insert into sync_table (name, data) values ('hello', 'world');",
      ]) {
        const r = await repl(addr, "mysql", "save", sql);
        assert.equal(r.code, 1);
        assert.match(r.stderr, /error from the store: Unknown column 'name'/);
      }
      for (const db of dbs) {
        await until(
          "the table on every instance",
          () => rows(db, "select count(*) as n from sync_table"),
          (v) => v === '[{"n":0}]',
        );
      }
      // The same inserts, with the column that exists; one through each node.
      for (const [i, v] of ["bar", "world"].entries()) {
        const r = await repl(
          nodes[i + 1]!.addr,
          "mysql",
          "save",
          `insert into sync_table (data) values ('${v}');`,
        );
        assert.equal(r.stdout, says(`{"rowsAffected":1,"lastInsertId":${i + 1}}`), r.stderr);
      }
      // # Load some data from this table
      const loaded = await repl(addr, "mysql", "load", "select id, data from nexus.sync_table;");
      assert.equal(
        loaded.stdout,
        says('[{"id":1,"data":"bar"},{"id":2,"data":"world"}]'),
        loaded.stderr,
      );
      // NOW() and RAND() come out the same everywhere.
      const rnd = await repl(
        addr,
        "mysql",
        "save",
        "insert into sync_table (data) select concat(rand(), '@', now(6))",
      );
      assert.equal(rnd.code, 0, rnd.stderr);
      // "Each of the 3 MySQL instances can now be inspected."
      const want = await rows(dbs[0]!, "select id, data, ts from sync_table order by id");
      assert.equal((JSON.parse(want) as unknown[]).length, 3, want);
      for (const db of dbs) {
        await until(
          "identical rows on every instance",
          () => rows(db, "select id, data, ts from sync_table order by id"),
          (v) => v === want,
        );
      }

      // MariaDB of a follower down: writes go on; the node says NOT_SERVING; it catches up after.
      const leader = await leaderUrl(addr);
      const fi = nodes.findIndex((n) => n.url !== leader);
      const leaderAddr = nodes.find((n) => n.url === leader)!.addr;
      await dbs[fi]!.kill();
      const w = await repl(
        leaderAddr,
        "mysql",
        "save",
        "insert into sync_table (data) values ('outage')",
      );
      assert.equal(w.code, 0, w.stderr);
      await until(
        "NOT_SERVING on the node whose MariaDB is down",
        async () => (await run("nexus", ["status", nodes[fi]!.addr])).stdout,
        (o) => o.includes(": NOT_SERVING"),
      );
      await dbs[fi]!.start();
      await until(
        "the outage row on the recovered instance",
        () => rows(dbs[fi]!, "select count(*) as n from sync_table where data = 'outage'"),
        (v) => v === '[{"n":1}]',
      );

      // Restart a node: nothing is applied twice.
      await nodes[2]!.stop();
      await nodes[2]!.start();
      const after = await repl(
        nodes[2]!.addr,
        "mysql",
        "save",
        "insert into sync_table (data) values ('after restart')",
      );
      assert.equal(after.stdout, says('{"rowsAffected":1,"lastInsertId":5}'), after.stderr);
      const all = await rows(dbs[0]!, "select id, data, ts from sync_table order by id");
      for (const db of dbs)
        await until(
          "5 identical rows",
          () => rows(db, "select id, data, ts from sync_table order by id"),
          (v) => v === all,
        );
      assert.equal((JSON.parse(all) as unknown[]).length, 5);

      // Snapshots and compaction, then a new replica on a new MariaDB catches up from a snapshot.
      for (let i = 0; i < 20; i++) {
        const r = await repl(
          addr,
          "mysql",
          "save",
          `insert into sync_table (data) values ('bulk ${i}')`,
        );
        assert.equal(r.code, 0, r.stderr);
      }
      const db4 = await startMariaDb();
      const fourth = new SqliteNode(
        await freePort(),
        await freePort(),
        join(tempDir(), "node4"),
        nodes.map((n) => n.url),
        ["-nexus-node-state=new"],
        "mysql_repl",
        ["-mysqlConnUrl", db4.url()],
      );
      await fourth.start();
      const added = await repl(addr, "addNode", fourth.url);
      assert.equal(added.code, 0, added.stderr);
      const full = await rows(dbs[0]!, "select id, data, ts from sync_table order by id");
      await until(
        "the new replica to catch up",
        () => rows(db4, "select id, data, ts from sync_table order by id"),
        (v) => v === full,
      );
      await fourth.stop();
      await Promise.all(nodes.map((n) => n.stop()));
    },
  );
});
