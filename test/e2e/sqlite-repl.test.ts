/**
 * End to end: real bin/sqlite_repl processes, driven only through bin/repl, as the original's
 * README walkthrough does with Redis and MySQL, adapted to SQLite.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import Database from "better-sqlite3";
import type { SqliteNode } from "./programs.js";
import { leaderUrl, repl, sqliteCluster, until } from "./programs.js";

const RESPONSE = /^Response from SQLite \(without quotes\): '(.*)'\n$/s;

/** The rows of a query on a stopped node's SQLite file, read directly. */
function rowsOnDisk(node: SqliteNode, sql: string): unknown[] {
  const db = new Database(join(node.dir, "store.db"), { readonly: true, fileMustExist: true });
  try {
    return db.prepare(sql).all();
  } finally {
    db.close();
  }
}

async function responseOf(args: string[]): Promise<string> {
  const r = await repl(...args);
  assert.equal(r.code, 0, `repl ${args.join(" ")} failed: ${r.stderr}`);
  const m = RESPONSE.exec(r.stdout);
  assert.ok(m, `unexpected output: ${r.stdout}`);
  return m[1]!;
}

describe("sqlite_repl and repl end to end", () => {
  it("the original's walkthrough on SQLite: members, saves through any node, a bad column refused, identical replicas on disk", async () => {
    const nodes = await sqliteCluster(3);
    await Promise.all(nodes.map((n) => n.start()));
    const [a, b, c] = nodes as [SqliteNode, SqliteNode, SqliteNode];

    const leader = await until(
      "a leader",
      () => leaderUrl(a.addr),
      (l) => l !== "",
    );
    const list = await repl(a.addr, "listNodes");
    assert.equal(list.code, 0);
    // The original's lines come first; the role and progress table follows a blank line.
    const [original, table] = list.stdout.split("\n\n");
    const lines = original!.split("\n");
    assert.equal(lines[0], "Current cluster members:");
    assert.equal(lines.length, 4);
    // (A note may follow the rows, e.g. when no leader answered with the progress.)
    const rows = table!
      .trimEnd()
      .split("\n")
      .filter((r) => !r.startsWith("("));
    assert.equal(rows[0], "id               role      reachable  match  lag");
    assert.equal(rows.length, 4, table);
    assert.equal(rows.filter((r) => / leader /.test(r)).length, 1);
    assert.equal(rows.filter((r) => / follower /.test(r)).length, 2);
    for (const l of lines.slice(1))
      assert.match(l, /^[0-9a-f]{16} => http:\/\/127\.0\.0\.1:\d+( \(leader\))?$/);
    assert.equal(lines.filter((l) => l.endsWith("(leader)")).length, 1);
    assert.ok(list.stdout.includes(`=> ${leader} (leader)`));
    // Ids are sorted and derived from the URLs as the original derives them.
    const ids = lines.slice(1).map((l) => l.slice(0, 16));
    assert.deepEqual([...ids].sort(), ids);
    // Asked of any node, followers included, the table has the leader's progress: a follower
    // fetches it from the leader over the peer connection.
    for (const n of nodes) {
      const t = (await repl(n.addr, "listNodes")).stdout.split("\n\n")[1]!;
      const progress = t
        .trimEnd()
        .split("\n")
        .slice(1)
        .map((r) => r.split(/ +/).slice(1));
      assert.equal(progress.length, 3, `${n.addr}: ${t}`);
      for (const [role, reachable, match, lag] of progress) {
        assert.match(role!, /^(leader|follower)$/, `${n.addr}: ${t}`);
        assert.equal(reachable, "yes", `${n.addr}: ${t}`);
        assert.match(`${match} ${lag}`, /^\d+ \d+$/, `${n.addr}: ${t}`);
      }
    }

    assert.equal(
      await responseOf([
        a.addr,
        "sqlite",
        "save",
        "create table sync_table (id integer primary key autoincrement, data varchar(50) not null, ts text default (datetime('now')))",
      ]),
      '{"rowsAffected":0,"lastInsertId":0}',
    );
    // The walkthrough's insert names a column the table lacks: a clear error, nothing written.
    const bad = await repl(
      a.addr,
      "sqlite",
      "save",
      "insert into sync_table (name, data) values ('foo', 'bar');",
    );
    assert.equal(bad.code, 1);
    assert.equal(bad.stdout, "");
    assert.match(bad.stderr, /error from the store: table sync_table has no column named name/);

    // Saves through followers are forwarded to the leader.
    const followers = nodes.filter((n) => n.url !== leader);
    assert.equal(followers.length, 2);
    assert.equal(
      await responseOf([
        followers[0]!.addr,
        "sqlite",
        "save",
        "insert into sync_table (data) values ('bar')",
      ]),
      '{"rowsAffected":1,"lastInsertId":1}',
    );
    assert.equal(
      await responseOf([
        followers[1]!.addr,
        "sqlite",
        "save",
        "insert into sync_table (data) values ('world')",
      ]),
      '{"rowsAffected":1,"lastInsertId":2}',
    );
    // Parameters, as JSON.
    assert.equal(
      await responseOf([
        "-params",
        '["it\'s"]',
        c.addr,
        "sqlite",
        "save",
        "insert into sync_table (data) values (?)",
      ]),
      '{"rowsAffected":1,"lastInsertId":3}',
    );

    // Linearizable reads on every node see every acknowledged save.
    const want = '[{"data":"bar"},{"data":"world"},{"data":"it\'s"}]';
    for (const n of nodes) {
      assert.equal(
        await responseOf([n.addr, "sqlite", "load", "select data from sync_table order by id"]),
        want,
      );
    }
    // Writes in a load are refused.
    const w = await repl(b.addr, "sqlite", "load", "delete from sync_table");
    assert.equal(w.code, 1);
    assert.match(w.stderr, /read-only|readonly|only reads/i);

    // Graceful stop of every node, then each replica's file is read directly: identical, and
    // the leader's timestamp made datetime('now') identical too.
    const codes = await Promise.all(nodes.map((n) => n.stop("SIGTERM")));
    assert.deepEqual(codes, [0, 0, 0]);
    for (const n of nodes) assert.match(n.stderr, /stopped/);
    const disk = nodes.map((n) => rowsOnDisk(n, "select id, data, ts from sync_table order by id"));
    assert.equal(disk[0]!.length, 3);
    assert.deepEqual(disk[1], disk[0]);
    assert.deepEqual(disk[2], disk[0]);
  });
});
