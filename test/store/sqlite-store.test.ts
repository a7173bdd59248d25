import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { SqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { openSqliteDatabase } from "../../src/store/sqlite/sqlite-binding.js";
import type { ApplyEntry } from "../../src/store/store.js";
import { digestOf, runStoreConformance } from "./conformance.js";
import type { ConformanceOptions } from "./conformance.js";
import { runRequestRecordSuite } from "./request-records-suite.js";
import { isNexusError } from "../../src/errors/index.js";
import { tempDir } from "../temp-dir.js";

function tmp(): string {
  return tempDir("nexus-sqlite-");
}
const enc = new TextEncoder();
const dec = new TextDecoder();

function entry(
  index: number,
  sql: string | undefined,
  args: Record<string, string> = {},
  ts = 1_700_000_000_000,
  seed = 99,
): ApplyEntry {
  return {
    index,
    term: 1,
    command: sql === undefined ? undefined : { data: enc.encode(sql), args },
    timestampMs: ts,
    seed,
  };
}

describe("SqliteStore", () => {
  const conformance: ConformanceOptions = {
    name: "sqlite",
    open: async (opts) => {
      const dir = tmp();
      const store = new SqliteStore({ path: join(dir, "db.sqlite"), ...opts });
      // The suite's key-value commands need a table: create it at index 0 through the worker.
      return {
        store: withTable(store),
        cleanup: async () => rmSync(dir, { recursive: true, force: true }),
      };
    },
    reopen: async (old) => withTable(new SqliteStore({ path: (old as SqliteStore).path })),
    commands: {
      set: (k, v) => ({
        data: "insert into kv (k, v) values (?, ?) on conflict(k) do update set v = excluded.v",
        args: { params: JSON.stringify([k, v]) },
      }),
      get: (k) => ({ data: "select v from kv where k = ?", args: { params: JSON.stringify([k]) } }),
      value: (r) => {
        const rows = JSON.parse(dec.decode(r)) as { v: string }[];
        return rows[0]?.v ?? "";
      },
      failing: () => ({ data: "insert into no_such_table values (1)" }),
    },
    poison: {
      budget: 1_000_000,
      keepsWrites: false,
      // Writes the key over and over, for ever.
      command: (k) => ({
        data:
          "insert or replace into kv (k, v) select ?, 'p' from " +
          "(with recursive c(x) as (select 1 union all select x + 1 from c) select x from c)",
        args: { params: JSON.stringify([k]) },
      }),
    },
    tamper: async (store, k, v) => {
      const db = openSqliteDatabase((store as SqliteStore).path);
      try {
        db.prepare("update kv set v = ? where k = ?").run(v, k);
      } finally {
        db.close();
      }
    },
  };
  runStoreConformance(conformance);
  runRequestRecordSuite(conformance);

  it("save returns rowsAffected and lastInsertId; a failing statement leaves nothing behind", async () => {
    const s = new SqliteStore({ path: join(tmp(), "db.sqlite") });
    await s.open();
    try {
      const r = await s.apply([
        entry(1, "create table t (id integer primary key autoincrement, name text unique)"),
        entry(2, "insert into t (name) values ('a')"),
        entry(3, "insert into t (name) values ('a')"),
        entry(4, "insert into t (name) values (?)", { params: '["b"]' }),
      ]);
      assert.deepEqual(JSON.parse(dec.decode((r[1] as { data: Uint8Array }).data)), {
        rowsAffected: 1,
        lastInsertId: 1,
      });
      assert.equal(r[2]!.ok, false);
      assert.match((r[2] as { error: string }).error, /UNIQUE constraint failed/);
      assert.deepEqual(JSON.parse(dec.decode((r[3] as { data: Uint8Array }).data)), {
        rowsAffected: 1,
        lastInsertId: 2,
      });
      const rows = JSON.parse(
        dec.decode(await s.load({ data: enc.encode("select name from t order by id"), args: {} })),
      );
      assert.deepEqual(rows, [{ name: "a" }, { name: "b" }]);
    } finally {
      await s.close();
    }
  });

  it("a statement that inserts nothing reports lastInsertId 0, whatever the connection inserted before", async () => {
    const path = join(tmp(), "db.sqlite");
    const s = new SqliteStore({ path });
    await s.open();
    const idOf = (r: unknown): unknown =>
      (JSON.parse(dec.decode((r as { data: Uint8Array }).data)) as { lastInsertId: number })
        .lastInsertId;
    try {
      const r = await s.apply([
        entry(1, "create table t (id integer primary key, v text)"),
        entry(2, "insert into t (v) values ('a')"),
        entry(3, "update t set v = 'b'"),
        entry(4, "create table u (x)"),
      ]);
      assert.deepEqual(r.map(idOf), [0, 1, 0, 0]);
    } finally {
      await s.close();
    }
    // A replica that restarts has a fresh connection: the results must not depend on that.
    const s2 = new SqliteStore({ path });
    await s2.open();
    try {
      const r = await s2.apply([entry(5, "create table w (x)")]);
      assert.equal(idOf(r[0]!), 0);
    } finally {
      await s2.close();
    }
  });

  it("refuses writes in load, two statements, _nexus_ tables, transaction control and CURRENT_TIMESTAMP", async () => {
    const s = new SqliteStore({ path: join(tmp(), "db.sqlite") });
    await s.open();
    try {
      await s.apply([entry(1, "create table t (x)")]);
      await assert.rejects(
        s.load({ data: enc.encode("insert into t values (1)"), args: {} }),
        (e: unknown) => isNexusError(e, "STORE_ERROR") && /read-only/.test((e as Error).message),
      );
      const r = await s.apply([
        entry(2, "insert into t values (1); insert into t values (2)"),
        entry(3, "delete from _nexus_meta"),
        entry(4, "begin"),
        entry(5, "insert into t values (CURRENT_TIMESTAMP)"),
        entry(6, "insert into t values ('CURRENT_TIMESTAMP is fine inside a string')"),
      ]);
      assert.deepEqual(
        r.map((x) => x.ok),
        [false, false, false, false, true],
      );
      assert.match((r[0] as { error: string }).error, /more than one statement/);
      assert.match((r[3] as { error: string }).error, /use datetime\('now'\)/);
      assert.equal((await s.lastApplied()).index, 6);
    } finally {
      await s.close();
    }
  });

  it("random() and datetime('now') give the same values on every replica", async () => {
    const digests: string[] = [];
    const values: string[] = [];
    for (let i = 0; i < 2; i++) {
      const s = new SqliteStore({ path: join(tmp(), "db.sqlite") });
      await s.open();
      try {
        await s.apply([
          entry(
            1,
            "create table t (r integer, b blob, now text, d text default (datetime('now')))",
          ),
          entry(
            2,
            "insert into t (r, b, now) values (random(), randomblob(8), datetime('now'))",
            {},
            1_700_000_000_000,
            12345,
          ),
          entry(
            3,
            "insert into t (r, b, now) values (random(), randomblob(8), strftime('%s', 'now'))",
            {},
            1_700_000_123_000,
            777,
          ),
        ]);
        digests.push(await digestOf(s));
        values.push(dec.decode(await s.load({ data: enc.encode("select * from t"), args: {} })));
      } finally {
        await s.close();
      }
    }
    assert.equal(digests[0], digests[1]);
    assert.equal(values[0], values[1]);
    const rows = JSON.parse(values[0]!) as { now: string; d: string }[];
    assert.equal(rows[0]!.now, "2023-11-14 22:13:20");
    assert.equal(rows[0]!.d, "2023-11-14 22:13:20");
    assert.equal(rows[1]!.now, "1700000123");
  });

  it("a slow query runs in the worker and does not block the main event loop", async () => {
    const s = new SqliteStore({ path: join(tmp(), "db.sqlite") });
    await s.open();
    try {
      let ticks = 0;
      const timer = setInterval(() => ticks++, 10);
      const start = Date.now();
      // A recursive CTE that takes a while to count.
      await s.load({
        data: enc.encode(
          "with recursive c(x) as (select 1 union all select x + 1 from c where x < 3000000) select count(*) as n from c",
        ),
        args: {},
      });
      const took = Date.now() - start;
      clearInterval(timer);
      assert.ok(took > 100, `the query took only ${took} ms; make it slower`);
      assert.ok(ticks >= (took / 10) * 0.5, `only ${ticks} timer ticks during a ${took} ms query`);
    } finally {
      await s.close();
    }
  });
});

/** A store whose database file already has the key-value table the suite uses. */
function withTable(store: SqliteStore): SqliteStore {
  const db = openSqliteDatabase(store.path);
  db.exec("create table if not exists kv (k text primary key, v text)");
  db.close();
  return store;
}
