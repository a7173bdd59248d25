/**
 * MySqlStore against a private MariaDB server started by this file (test/store/mariadb-server.ts):
 * each test works in its own database, so nothing depends on another test or on a shared server.
 */
import { createHash } from "node:crypto";
import { before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { MySqlStore } from "../../src/store/mysql/mysql-store.js";
import { refusalOf } from "../../src/store/mysql/statement-classifier.js";
import type { ApplyEntry, ApplyResult, Store } from "../../src/store/store.js";
import { isNexusError } from "../../src/errors/index.js";
import { digestOf, runStoreConformance } from "./conformance.js";
import type { ConformanceOptions } from "./conformance.js";
import { runRequestRecordSuite } from "./request-records-suite.js";
import { startMariaDb } from "./mariadb-server.js";
import type { MariaDbServer } from "./mariadb-server.js";

const enc = new TextEncoder();
const dec = new TextDecoder();
const TS = 1_700_000_000_123; // 2023-11-14 22:13:20.123 UTC

function entry(
  index: number,
  sql: string | undefined,
  opts: { params?: unknown[]; ts?: number; seed?: number; term?: number } = {},
): ApplyEntry {
  return {
    index,
    term: opts.term ?? 1,
    command:
      sql === undefined
        ? undefined
        : {
            data: enc.encode(sql),
            args: opts.params === undefined ? {} : { params: JSON.stringify(opts.params) },
          },
    timestampMs: opts.ts ?? TS,
    seed: opts.seed ?? 424242,
  };
}

const text = (r: ApplyResult | undefined): string =>
  r === undefined ? assert.fail("no result") : r.ok ? dec.decode(r.data) : assert.fail(r.error);
const errorOf = (r: ApplyResult | undefined): string =>
  r === undefined || r.ok ? assert.fail("the entry succeeded") : r.error;
const allOk = (rs: ApplyResult[]): void =>
  assert.ok(
    rs.every((r) => r.ok),
    JSON.stringify(rs.map((r) => (r.ok ? "ok" : r.error))),
  );
const is =
  (code: Parameters<typeof isNexusError>[1], re?: RegExp) =>
  (e: unknown): boolean => {
    assert.ok(isNexusError(e, code), `expected ${code}, got ${String(e)}`);
    if (re !== undefined) assert.match((e as Error).message, re);
    return true;
  };

/** A string literal for a test's own SQL. */
const mysqlString = (x: string): string => `'${x.replace(/[\\']/g, (c) => `\\${c}`)}'`;

let srv: MariaDbServer;
let dbs = 0;
/** A fresh database on the private server, and a (not yet opened) store on it. */
async function freshStore(
  opts: Partial<ConstructorParameters<typeof MySqlStore>[0]> = {},
): Promise<{ store: MySqlStore; db: string }> {
  const db = `t${++dbs}`;
  await srv.query(`CREATE DATABASE ${db}`);
  return { store: new MySqlStore({ url: srv.url(db), ...opts }), db };
}

async function load(s: Store, sql: string, params?: unknown[]): Promise<unknown> {
  const args: Record<string, string> =
    params === undefined ? {} : { params: JSON.stringify(params) };
  return JSON.parse(dec.decode(await s.load({ data: enc.encode(sql), args })));
}

async function drain(stream: AsyncIterable<Uint8Array>): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for await (const c of stream) out.push(Buffer.from(c));
  return out;
}

async function* chunks(...parts: Uint8Array[]): AsyncGenerator<Uint8Array> {
  for (const p of parts) yield p;
}

/** Splits a buffer into pieces of n bytes (cutting UTF-8 characters and lines anywhere). */
function pieces(b: Buffer, n: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < b.length; i += n) out.push(b.subarray(i, i + n));
  return out;
}

describe("MySqlStore", () => {
  before(async () => {
    srv = await startMariaDb();
    // Server defaults unlike the pinned session: the store must not depend on them.
    await srv.query(
      "SET GLOBAL time_zone = '+02:00', GLOBAL sql_mode = '', GLOBAL auto_increment_increment = 3",
    );
  });

  describe("conformance", () => {
    const conformance: ConformanceOptions = {
      name: "mysql",
      open: async (opts) => {
        const { store, db } = await freshStore(opts);
        await srv.query("CREATE TABLE kv (k VARCHAR(64) PRIMARY KEY, v TEXT)", db);
        return { store, cleanup: async () => void (await srv.query(`DROP DATABASE ${db}`)) };
      },
      reopen: async (old) => new MySqlStore({ url: srv.dsn((old as MySqlStore).dsn.database) }),
      commands: {
        set: (k, v) => ({
          data: "insert into kv (k, v) values (?, ?) on duplicate key update v = values(v)",
          args: { params: JSON.stringify([k, v]) },
        }),
        get: (k) => ({
          data: "select v from kv where k = ?",
          args: { params: JSON.stringify([k]) },
        }),
        value: (r) => (JSON.parse(dec.decode(r)) as { v: string }[])[0]?.v ?? "",
        failing: () => ({ data: "insert into no_such_table values (1)" }),
      },
      tamper: async (store, k, v) => {
        const db = (store as MySqlStore).dsn.database;
        await srv.query(`UPDATE kv SET v = ${mysqlString(v)} WHERE k = ${mysqlString(k)}`, db);
      },
    };
    runStoreConformance(conformance);
    runRequestRecordSuite(conformance);
  });

  describe("what a save may be", () => {
    const cases: [string, RegExp | undefined][] = [
      ["insert into user (id, name) values (1, 'a')", undefined],
      ["insert user (id) values (1)", undefined],
      ["create table if not exists version (v int, user varchar(9), primary key (v))", undefined],
      [
        "insert into t values ('uuid() and sysdate() in a string'), (\"@x\"), ('_nexus_applied')",
        undefined,
      ],
      ["insert into t values (1) -- uuid()", undefined],
      ["insert into t values (1) /* commit; uuid() */", undefined],
      ["create table e (engine varchar(10), `current_user` int) engine = InnoDB", undefined],
      ["select 1;", undefined],
      ["(select 1)", undefined],
      ["with x as (select 1 as a) select a from x", undefined],
      ["alter table t add column v int", undefined],
      ["create unique index i on t (v)", undefined],
      ["truncate t", undefined],
      ["rename table a to b", undefined],
      ["drop table if exists t", undefined],
      ["update t set ts = now(6), r = rand(), u = unix_timestamp()", undefined],
      [
        "insert into t values (uuid())",
        /^UUID\(\) gives different results on different replicas; compute/,
      ],
      ["insert into t values (UUID_SHORT())", /^UUID_SHORT\(\)/],
      ["insert into t values (Sys_Guid())", /^SYS_GUID\(\)/],
      ["insert into t values (sysdate())", /^SYSDATE\(\).*use NOW\(\)/],
      ["insert into t values (connection_id())", /^CONNECTION_ID\(\)/],
      ["insert into t values (last_insert_id())", /^LAST_INSERT_ID\(\).*lastInsertId/],
      ["insert into t values (current_user)", /^CURRENT_USER\(\)/],
      ["insert into t values (user())", /^USER\(\)/],
      ["insert into t values (version())", /^VERSION\(\)/],
      ["select sleep(5)", /^SLEEP\(\).*stall/],
      ["insert into t /*! values (uuid()) */", /^UUID\(\)/],
      ["insert into t /*M!100101 values (uuid()) */", /^UUID\(\)/],
      ["begin", /^transaction control/],
      ["START TRANSACTION", /^transaction control/],
      ["commit", /^transaction control/],
      ["rollback", /^transaction control/],
      ["savepoint x", /^transaction control/],
      ["lock tables t write", /^transaction control/],
      ["set autocommit = 0", /^transaction control/],
      ["SET @@session.autocommit = 1", /^transaction control/],
      ["set session transaction isolation level read committed", /^transaction control/],
      ["set @x = 1", /^SET changes a session setting/],
      ["set names latin1", /^SET changes a session setting/],
      ["insert into t values (@x)", /^user variables/],
      ["insert into t values (@@hostname)", /^server variables/],
      ["update t set a = (@i := @i + 1)", /^user variables/],
      ["select a from t into @x", /^SELECT \.\.\. INTO/],
      ["select a from t into outfile '/tmp/x'", /^SELECT \.\.\. INTO/],
      ["create temporary table x (a int)", /^temporary tables/],
      ["create view v as select 1", /^only tables and indexes are replicated/],
      ["create definer = root@localhost view v as select 1", /^only tables and indexes/],
      ["create trigger tr before insert on t for each row set new.a = 1", /^only tables/],
      ["create procedure p() begin commit; end", /^only tables/],
      ["create function f() returns int return 1", /^only tables/],
      ["create event e on schedule every 1 day do delete from t", /^only tables/],
      ["create database x", /^CREATE DATABASE acts on the server/],
      ["drop database nexus", /^DROP DATABASE acts on the server/],
      ["create user x", /^CREATE USER acts on the server/],
      ["grant all on *.* to x", /^GRANT is not replicated/],
      ["call p()", /^CALL is not replicated/],
      ["load data infile '/tmp/x' into table t", /^LOAD is not replicated/],
      ["show tables", /^SHOW is a read: send it with load/],
      ["create table m (a int) engine=MyISAM", /^ENGINE=MYISAM is not transactional/],
      ["alter table m engine memory", /^ENGINE=MEMORY/],
      ["create table h (a int) with system versioning", /^system-versioned/],
      ["select 1; select 2", /^send one statement at a time/],
      ["delete from _nexus_applied", /^_nexus_applied is Nexus's own table/],
      ["select * from `_NEXUS_APPLIED`", /^_nexus_applied is Nexus's own table/],
      ["drop table nexus._nexus_ddl", /^_nexus_ddl is Nexus's own table/],
      ["", /^the statement is empty/],
      ["  -- only a comment", /^the statement is empty/],
      ["select 'unterminated", /^the statement has an unterminated 'quote'/],
      // Comments as the server reads them (found while fuzzing the lexer): `--` then U+00A0 is two
      // minus signs and a name, so the UUID_SHORT() after it runs and must be seen.
      [
        "insert into t select x --\u00a0 + uuid_short() from (select 1 as x, 2 as `\u00a0`) d",
        /^UUID_SHORT\(\)/,
      ],
      ["insert into t values (1) --\u3000, (uuid())", /^UUID\(\)/],
      // The server ends a line comment at a NUL character: what follows is code.
      ["insert into t select 1 # c \u0000 + uuid_short()", /^UUID_SHORT\(\)/],
      ["insert into t select 1 -- c \u0000 + uuid_short()", /^UUID_SHORT\(\)/],
      // `--` then any ASCII control character is a comment, to the server too.
      ["insert into t values (1) --\u0001 uuid()", undefined],
      ["insert into t values (1) --\t(uuid())", undefined],
      ["insert into t values (1) --", undefined],
    ];
    for (const [sql, want] of cases) {
      it(`${want === undefined ? "accepts" : "refuses"}: ${sql || "(empty)"}`, () => {
        const got = refusalOf(sql);
        if (want === undefined) assert.equal(got, undefined);
        else assert.match(got ?? "(accepted)", want);
      });
    }
  });

  it("comments are read as the server reads them: `--` then U+00A0 is not a comment (the lexer sees the code after it), `--` then a tab is", async () => {
    const { store: s } = await freshStore();
    await s.open();
    try {
      const sql = "select x --\u00a0 + 1 as v from (select 1 as x, 2 as `\u00a0`) d";
      // x - -(`\u00a0`) + 1 = 1 + 2 + 1: the server ran what follows `--`.
      assert.deepEqual(await load(s, sql), [{ v: 4 }]);
      assert.deepEqual(await load(s, "select 1 as v --\t+ 1"), [{ v: 1 }]);
      const r = await s.apply([
        entry(1, "create table u (v bigint unsigned)"),
        entry(
          2,
          "insert into u select x --\u00a0 + uuid_short() from (select 1 as x, 2 as `\u00a0`) d",
        ),
      ]);
      assert.match(errorOf(r[1]), /^UUID_SHORT\(\) gives different results/);
      assert.deepEqual(await load(s, "select count(*) as n from u"), [{ n: 0 }]);
    } finally {
      await s.close();
    }
  });

  it("the original's walkthrough: the table is created, the insert naming a missing column is a clear error and changes nothing", async () => {
    const { store: s } = await freshStore();
    await s.open();
    try {
      const r = await s.apply([
        entry(
          1,
          "create table sync_table (id INT PRIMARY KEY AUTO_INCREMENT, data VARCHAR(50) NOT NULL, ts timestamp(3) default current_timestamp(3) on update current_timestamp(3));",
        ),
        entry(2, "insert into sync_table (name, data) values ('foo', 'bar');"),
        entry(3, "insert into sync_table (data) values ('bar');"),
        entry(4, "insert into sync_table (data) values (?)", { params: ["world"] }),
      ]);
      assert.equal(text(r[0]), '{"rowsAffected":0,"lastInsertId":0}');
      assert.match(errorOf(r[1]), /^Unknown column 'name' in/);
      assert.equal(text(r[2]), '{"rowsAffected":1,"lastInsertId":1}');
      assert.equal(text(r[3]), '{"rowsAffected":1,"lastInsertId":2}');
      // The leader's timestamp, not the replica's clock; nothing from entry 2.
      assert.deepEqual(await load(s, "select id, data, ts from sync_table order by id"), [
        { id: 1, data: "bar", ts: "2023-11-14 22:13:20.123" },
        { id: 2, data: "world", ts: "2023-11-14 22:13:20.123" },
      ]);
      assert.deepEqual(await s.lastApplied(), { index: 4, term: 1 });
    } finally {
      await s.close();
    }
  });

  it("lastInsertId is the statement's own: 0 when it inserted nothing, whatever came before or after a restart", async () => {
    const { store: s, db } = await freshStore();
    await s.open();
    try {
      const r = await s.apply([
        entry(1, "create table li (id int auto_increment primary key, v int)"),
        entry(2, "insert into li (v) values (1)"),
        entry(3, "update li set v = 2"),
        entry(4, "create table plain (x int)"),
        entry(5, "insert into plain values (1)"),
        entry(6, "insert into li (v) values (3), (4)"),
        entry(7, "delete from li where v = 3"),
        entry(8, "select * from li"),
      ]);
      assert.deepEqual(r.map(text), [
        '{"rowsAffected":0,"lastInsertId":0}',
        '{"rowsAffected":1,"lastInsertId":1}',
        '{"rowsAffected":1,"lastInsertId":0}',
        '{"rowsAffected":0,"lastInsertId":0}',
        '{"rowsAffected":1,"lastInsertId":0}',
        '{"rowsAffected":2,"lastInsertId":2}',
        '{"rowsAffected":1,"lastInsertId":0}',
        '{"rowsAffected":0,"lastInsertId":0}',
      ]);
    } finally {
      await s.close();
    }
    const s2 = new MySqlStore({ url: srv.url(db) });
    await s2.open();
    try {
      const r = await s2.apply([
        entry(9, "insert into plain values (2)"),
        entry(10, "insert into li (v) values (5)"),
      ]);
      assert.deepEqual(r.map(text), [
        '{"rowsAffected":1,"lastInsertId":0}',
        '{"rowsAffected":1,"lastInsertId":4}',
      ]);
    } finally {
      await s2.close();
    }
  });

  it("NOW(), CURRENT_TIMESTAMP defaults (also filled by an ALTER) and RAND() are identical on two replicas, and follow the entry's time and seed", async () => {
    const run = async (ts: number, seed: number): Promise<Record<string, unknown>[]> => {
      const { store: s } = await freshStore();
      await s.open();
      try {
        allOk(
          await s.apply([
            entry(
              1,
              "create table d (id int primary key, t datetime(6), r double, u bigint, dflt timestamp(3) default current_timestamp(3))",
              { ts, seed },
            ),
            entry(2, "insert into d (id, t, r, u) values (1, now(6), rand(), unix_timestamp())", {
              ts,
              seed,
            }),
            entry(3, "insert into d (id, t, r) select 2, utc_timestamp(3), rand() * 1000", {
              ts,
              seed: seed + 1,
            }),
            entry(
              4,
              "alter table d add column added timestamp(3) not null default current_timestamp(3)",
              {
                ts: ts + 60_000,
                seed,
              },
            ),
          ]),
        );
        return (await load(s, "select * from d order by id")) as Record<string, unknown>[];
      } finally {
        await s.close();
      }
    };
    const a = await run(1_700_000_000_500, 99);
    const b = await run(1_700_000_000_500, 99);
    assert.deepEqual(a, b);
    assert.deepEqual(
      a.map((r) => [r["t"], r["u"], r["dflt"], r["added"]]),
      [
        [
          "2023-11-14 22:13:20.500000",
          1700000000,
          "2023-11-14 22:13:20.500",
          "2023-11-14 22:14:20.500",
        ],
        ["2023-11-14 22:13:20.500000", null, "2023-11-14 22:13:20.500", "2023-11-14 22:14:20.500"],
      ],
    );
    assert.notEqual(a[0]!["r"], a[1]!["r"]);
    const otherSeed = await run(1_700_000_000_500, 12345);
    assert.deepEqual(
      otherSeed.map((r) => r["t"]),
      a.map((r) => r["t"]),
    );
    assert.notEqual(otherSeed[0]!["r"], a[0]!["r"]);
    const otherTime = await run(1_700_000_999_000, 99);
    assert.deepEqual(
      otherTime.map((r) => r["r"]),
      a.map((r) => r["r"]),
    );
    assert.equal(otherTime[0]!["t"], "2023-11-14 22:29:59.000000");
  });

  it("refuses what cannot be replicated deterministically, as the entry's result, without running it", async () => {
    const { store: s, db } = await freshStore();
    await s.open();
    try {
      const r = await s.apply([
        entry(1, "create table u (v varchar(64))"),
        entry(2, "insert into u values (uuid())"),
        entry(3, "insert into u values (sysdate())"),
        entry(4, "commit"),
        entry(5, "set autocommit = 1"),
        entry(6, "update _nexus_applied set applied_index = 0"),
        entry(7, "create temporary table tmp (a int)"),
        entry(8, "insert into u values ('ok')"),
        entry(9, "insert into u values ('a'); insert into u values ('b')"),
        entry(10, `drop database ${db}`),
      ]);
      assert.match(errorOf(r[1]), /UUID\(\) gives different results/);
      assert.match(errorOf(r[2]), /SYSDATE\(\)/);
      assert.match(errorOf(r[3]), /transaction control/);
      assert.match(errorOf(r[4]), /transaction control/);
      assert.match(errorOf(r[5]), /_nexus_applied is Nexus's own table/);
      assert.match(errorOf(r[6]), /temporary tables/);
      assert.equal(text(r[7]), '{"rowsAffected":1,"lastInsertId":0}');
      assert.match(errorOf(r[8]), /one statement/);
      assert.match(errorOf(r[9]), /acts on the server/);
      assert.deepEqual(await load(s, "select v from u"), [{ v: "ok" }]);
      assert.deepEqual(await s.lastApplied(), { index: 10, term: 1 });
      assert.equal((await srv.query(`show databases like '${db}'`)).length, 1);
    } finally {
      await s.close();
    }
  });

  it("binds ? placeholders outside literals, with binary values; a wrong count or bad params is the entry's error", async () => {
    const { store: s } = await freshStore();
    await s.open();
    try {
      const r = await s.apply([
        entry(1, "create table p (a varchar(20), b varchar(20), c varbinary(8), n int)"),
        entry(2, "insert into p values (?, 'what? -- no', ?, ?) -- ?", {
          params: ['it\'s \\ "x"', { base64: "AAH/" }, 7],
        }),
        entry(3, "insert into p (a) values (?)", { params: [] }),
        entry(4, "insert into p (a) values (?)", { params: [{ nested: true }] }),
        entry(5, "insert into p (a, n) values (?, ?)", { params: [null, true] }),
      ]);
      assert.equal(text(r[1]), '{"rowsAffected":1,"lastInsertId":0}');
      assert.match(errorOf(r[2]), /has 1 \? placeholder\(s\) but args.params has 0/);
      assert.match(
        errorOf(r[3]),
        /params\[0\] must be a string, number, boolean, null or \{"base64"/,
      );
      assert.equal(text(r[4]), '{"rowsAffected":1,"lastInsertId":0}');
      assert.deepEqual(await load(s, "select * from p where n = ? or n = ? order by n", [7, 1]), [
        { a: null, b: null, c: null, n: 1 },
        { a: 'it\'s \\ "x"', b: "what? -- no", c: { base64: "AAH/" }, n: 7 },
      ]);
    } finally {
      await s.close();
    }
  });

  it("load: one read on a read-only connection, values typed for JSON; writes, DDL and bad SQL are StoreErrors", async () => {
    const { store: s, db } = await freshStore();
    await s.open();
    try {
      allOk(
        await s.apply([
          entry(
            1,
            "create table v (id int primary key, b bigint, big bigint, bu bigint unsigned, d decimal(10,2), f double, bin varbinary(4), t datetime(3), n int null, j json, e enum('x','y'), bt bit(2))",
          ),
          entry(
            2,
            "insert into v values (1, 42, 9007199254740993, 18446744073709551615, 3.50, 0.25, x'00ff', '2024-01-02 03:04:05.678', null, '{\"a\": 1}', 'y', b'10')",
          ),
        ]),
      );
      assert.deepEqual(await load(s, "select * from v"), [
        {
          id: 1,
          b: 42,
          big: "9007199254740993",
          bu: "18446744073709551615",
          d: "3.50",
          f: 0.25,
          bin: { base64: "AP8=" },
          t: "2024-01-02 03:04:05.678",
          n: null,
          j: '{"a": 1}',
          e: "y",
          bt: { base64: "Ag==" },
        },
      ]);
      assert.deepEqual(await load(s, "show tables like 'v'"), [{ [`Tables_in_${db} (v)`]: "v" }]);
      await assert.rejects(
        load(s, "select nope from v"),
        is("STORE_ERROR", /^Unknown column 'nope'/),
      );
      await assert.rejects(load(s, "delete from v"), is("STORE_ERROR", /send writes with save/));
      await assert.rejects(load(s, "drop table v"), is("STORE_ERROR", /send writes with save/));
      await assert.rejects(load(s, "select * from v into outfile '/tmp/v'"), is("STORE_ERROR"));
      await assert.rejects(
        load(s, "select * from _nexus_applied"),
        is("STORE_ERROR", /Nexus's own/),
      );
      // A write the text does not show (a function created behind Nexus's back) is refused by
      // the read-only session.
      await srv.query(
        "create function w() returns int modifies sql data begin insert into v (id) values (99); return 1; end",
        db,
      );
      await assert.rejects(load(s, "select w() as x"), is("STORE_ERROR", /read-only/));
      assert.deepEqual(await load(s, "select id from v"), [{ id: 1 }]);
    } finally {
      await s.close();
    }
  });

  it("DDL between DML in one batch: everything applies in order, and a restart re-applies nothing", async () => {
    const { store: s, db } = await freshStore();
    await s.open();
    allOk(
      await s
        .apply([
          entry(1, "create table a (x int)"),
          entry(2, "insert into a values (1)"),
          entry(3, "alter table a add column y int default 7"),
          entry(4, "insert into a (x) values (2)"),
          entry(5, undefined),
          entry(6, "create table b (z int)"),
          entry(7, "insert into b values (1)"),
          entry(8, "insert into b values ('not a number')"),
          entry(9, "rename table b to c"),
        ])
        .then((r) => r.slice(0, 7)),
    );
    await s.close();
    const s2 = new MySqlStore({ url: srv.dsn(db) });
    assert.deepEqual(await s2.open(), { index: 9, term: 1 });
    try {
      const r = await s2.apply([
        entry(3, "alter table a add column y int default 7"),
        entry(4, "insert into a (x) values (2)"),
        entry(9, "rename table b to c"),
        entry(10, "insert into a (x) values (3)"),
      ]);
      assert.deepEqual(r.slice(0, 3).map(text), ["", "", ""]);
      assert.deepEqual(await load(s2, "select x, y from a order by x"), [
        { x: 1, y: 7 },
        { x: 2, y: 7 },
        { x: 3, y: 7 },
      ]);
      assert.deepEqual(await load(s2, "select z from c"), [{ z: 1 }]);
      assert.deepEqual(await s2.lastApplied(), { index: 10, term: 1 });
    } finally {
      await s2.close();
    }
  });

  it("a crash between a DDL and its recorded index: the DDL is not run twice (even a RENAME that swaps), and one that never ran is run", async () => {
    const crash = { at: -1, where: "" };
    const fault = (where: string) => (i: number) => {
      if (i === crash.at && crash.where === where) throw new Error(`simulated crash ${where}`);
    };
    const { store: s, db } = await freshStore({
      faults: { beforeDdl: fault("before"), afterDdl: fault("after") },
    });
    const restart = async (): Promise<MySqlStore> => {
      await s.close();
      const r = new MySqlStore({ url: srv.url(db) });
      await r.open();
      return r;
    };
    await s.open();
    allOk(
      await s.apply([
        entry(1, "create table a (v int)"),
        entry(2, "create table b (v int)"),
        entry(3, "insert into a values (1)"),
        entry(4, "insert into b values (2)"),
      ]),
    );
    crash.at = 6;
    crash.where = "after";
    const swap = "rename table a to t, b to a, t to b";
    await assert.rejects(
      s.apply([
        entry(5, "insert into a values (11)"),
        entry(6, swap),
        entry(7, "insert into a values (3)"),
      ]),
      is("STORE_UNAVAILABLE", /simulated crash after/),
    );
    // Entry 5 is committed with the marker, entry 6 ran (tables swapped), its index is not recorded.
    assert.deepEqual(await s.lastApplied(), { index: 5, term: 1 });
    let r = await restart();
    try {
      const res = await r.apply([entry(6, swap), entry(7, "insert into a values (3)")]);
      assert.deepEqual(res.map(text), [
        '{"rowsAffected":0,"lastInsertId":0}',
        '{"rowsAffected":1,"lastInsertId":0}',
      ]);
      assert.deepEqual(await load(r, "select v from a order by v"), [{ v: 2 }, { v: 3 }]);
      assert.deepEqual(await load(r, "select v from b order by v"), [{ v: 1 }, { v: 11 }]);
      assert.deepEqual(await r.lastApplied(), { index: 7, term: 1 });
    } finally {
      await r.close();
    }

    // The same with an ALTER; then a crash before the DDL ran: it must run when redone.
    const faulty = (): MySqlStore =>
      new MySqlStore({
        url: srv.url(db),
        faults: { beforeDdl: fault("before"), afterDdl: fault("after") },
      });
    const redo = async (sql: string, index: number, where: string): Promise<MySqlStore> => {
      const t = faulty();
      await t.open();
      crash.at = index;
      crash.where = where;
      await assert.rejects(t.apply([entry(index, sql)]), is("STORE_UNAVAILABLE"));
      await t.close();
      const u = new MySqlStore({ url: srv.url(db) });
      assert.deepEqual(await u.open(), { index: index - 1, term: 1 });
      assert.deepEqual((await u.apply([entry(index, sql)])).map(text), [
        '{"rowsAffected":0,"lastInsertId":0}',
      ]);
      assert.deepEqual(await u.lastApplied(), { index, term: 1 });
      return u;
    };
    r = await redo("alter table a add column w int default 5", 8, "after");
    await r.close();
    r = await redo("alter table b add column w int default 6", 9, "before");
    try {
      assert.deepEqual(await load(r, "select v, w from a order by v"), [
        { v: 2, w: 5 },
        { v: 3, w: 5 },
      ]);
      assert.deepEqual(await load(r, "select v, w from b order by v"), [
        { v: 1, w: 6 },
        { v: 11, w: 6 },
      ]);
    } finally {
      await r.close();
    }
  });

  it("backup streams schema and rows losslessly; restore loads them elsewhere, digests agree; a bad stream changes nothing", async () => {
    const { store: a } = await freshStore();
    const { store: b, db: bdb } = await freshStore();
    await a.open();
    await b.open();
    try {
      allOk(
        await a.apply([
          entry(
            1,
            "create table big (id int primary key, s varchar(100), u text, n bigint, un bigint unsigned, d decimal(30,10), f double, fl float, bin varbinary(16), bl blob, dt datetime(6), ts timestamp(3) null, j json, bt bit(3), g int as (id * 2) persistent, nul int null, key (n))",
          ),
          entry(
            2,
            "insert into big (id, s, u, n, un, d, f, fl, bin, bl, dt, ts, j, bt) select seq, if(seq % 10 = 0, null, concat('s', seq)), concat('héllo ☃ 😀 ', seq), 9007199254740993 + seq, 18446744073709551615 - seq, seq / 7 + 0.0000000001, seq / 3, seq / 9, unhex(md5(seq)), if(seq % 100 = 0, null, unhex(repeat('00ff', seq % 50))), '2024-02-29 12:34:56.789012' + interval seq second, from_unixtime(1700000000 + seq), json_object('k', seq), seq % 8 from seq_1_to_20000",
          ),
          entry(3, "create table parent (id int primary key)"),
          entry(
            4,
            "create table child (id int primary key, p int, foreign key (p) references parent (id))",
          ),
          entry(5, "insert into parent values (1), (2)"),
          entry(6, "insert into child values (1, 1), (2, 2)"),
          entry(
            7,
            "create table ai (id int auto_increment primary key, v varchar(5), hid int invisible default 3)",
          ),
          entry(8, "insert into ai (v) values ('x'), ('y')"),
          entry(9, "update ai set id = 0 where v = 'x'"),
          entry(10, "create table nopk (a int, b varchar(5))"),
          entry(11, "insert into nopk values (2, null), (1, 'x'), (1, 'x')"),
        ]),
      );
      allOk(
        await b.apply([
          entry(1, "create table mine (z int)"),
          entry(2, "insert into mine values (1)"),
        ]),
      );
      const backup = await a.backup();
      assert.deepEqual(backup.position, { index: 11, term: 1 });
      const parts = await drain(backup.stream);
      assert.ok(parts.length > 20, `only ${parts.length} chunks: the backup is not streamed`);
      const whole = Buffer.concat(parts);
      const lines = whole.toString().trimEnd().split("\n");
      assert.deepEqual(JSON.parse(lines[0]!), {
        t: "nexus-mysql-backup",
        v: 1,
        index: 11,
        term: 1,
      });
      assert.match(
        lines.at(-1)!,
        /^\{"t":"end","tables":5,"rows":20009,"sha256":"[0-9a-f]{64}"\}$/,
      );
      // Generated columns are not stored (they are recomputed); invisible ones are.
      const columnsOf = (name: string): unknown =>
        (
          lines
            .map((l) => JSON.parse(l) as { t: string; name?: string; columns?: string[] })
            .find((r) => r.t === "table" && r.name === name) ?? {}
        ).columns;
      assert.deepEqual(columnsOf("ai"), ["id", "v", "hid"]);
      assert.ok(!(columnsOf("big") as string[]).includes("g"));

      const restoreFails = async (
        why: string,
        stream: AsyncIterable<Uint8Array>,
        check: (e: unknown) => boolean,
        position = { index: 11, term: 1 },
      ): Promise<void> => {
        await assert.rejects(b.restore(position, stream), check, why);
        assert.deepEqual(await load(b, "select z from mine"), [{ z: 1 }], why);
        assert.deepEqual(await b.lastApplied(), { index: 2, term: 1 }, why);
        assert.deepEqual(await srv.query(`show databases like '${bdb}\\_nexus\\_%'`), [], why);
      };
      const bigRows = lines.findIndex((l) => l.startsWith('{"t":"rows","name":"big"')) + 2;
      assert.ok(lines[bigRows]!.startsWith('{"t":"rows","name":"big"'));
      const withoutEnd = Buffer.from(`${lines.slice(0, -1).join("\n")}\n`);
      await restoreFails(
        "no end record",
        chunks(withoutEnd),
        is("CORRUPTED", /truncated: no end record/),
      );
      await restoreFails(
        "cut in a record",
        chunks(whole.subarray(0, whole.length - 30)),
        is("CORRUPTED", /truncated/),
      );
      await restoreFails(
        "a changed value",
        chunks(Buffer.from(whole.toString().replace('"s19999"', '"s1999X"'))),
        is("CORRUPTED", /checksum does not match/),
      );
      await restoreFails(
        "a dropped rows record",
        chunks(Buffer.from(`${lines.filter((_, i) => i !== bigRows).join("\n")}\n`)),
        is("CORRUPTED", /end record says/),
      );
      await restoreFails(
        "another position",
        chunks(whole),
        is("CORRUPTED", /taken at 11\/1, not at 12\/1/),
        {
          index: 12,
          term: 1,
        },
      );
      const broken = new Error("the peer went away");
      await restoreFails(
        "the source fails",
        (async function* () {
          yield whole.subarray(0, 100_000);
          throw broken;
        })(),
        (e) => e === broken,
      );

      // The real thing, in 4 KiB pieces that cut lines and UTF-8 characters anywhere.
      await b.restore({ index: 11, term: 1 }, chunks(...pieces(whole, 4096)));
      assert.deepEqual(await b.lastApplied(), { index: 11, term: 1 });
      assert.deepEqual(await srv.query(`show databases like '${bdb}\\_nexus\\_%'`), []);
      await assert.rejects(load(b, "select * from mine"), is("STORE_ERROR", /doesn't exist/));
      assert.equal(await digestOf(a), await digestOf(b));
      const all = "select * from big order by id";
      assert.deepEqual(await load(b, all), await load(a, all));
      assert.deepEqual(await load(b, "select id, v, hid from ai order by id"), [
        { id: 0, v: "x", hid: 3 },
        { id: 2, v: "y", hid: 3 },
      ]);
      assert.deepEqual(
        (await load(b, "select n, un, u, bin, g from big where id = 20000")) as unknown[],
        [
          {
            n: "9007199254760993",
            un: "18446744073709531615",
            u: "héllo ☃ 😀 20000",
            bin: {
              base64: createHash("md5").update("20000").digest("base64"),
            },
            g: 40000,
          },
        ],
      );
      // The restored replica goes on like the original: foreign keys and auto-increment included.
      for (const s of [a, b]) {
        const r = await s.apply([
          entry(12, "insert into ai (v) values ('z')"),
          entry(13, "insert into child values (3, 9)"),
        ]);
        assert.equal(text(r[0]), '{"rowsAffected":1,"lastInsertId":3}');
        assert.match(errorOf(r[1]), /foreign key constraint fails/);
      }
      assert.equal(await digestOf(a), await digestOf(b));
      await a.apply([entry(14, "update big set s = 'changed' where id = 77")]);
      assert.notEqual(await digestOf(a), await digestOf(b));
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("a backup is a snapshot at its position: applying goes on meanwhile, a DDL on its tables waits for it", async () => {
    const { store: a } = await freshStore({ lockWaitTimeoutSec: 1 });
    const { store: b } = await freshStore();
    await a.open();
    await b.open();
    try {
      allOk(
        await a.apply([
          entry(1, "create table k (id int primary key, v varchar(10))"),
          entry(2, "insert into k select seq, 'v' from seq_1_to_5000"),
        ]),
      );
      const before = await digestOf(a);
      const backup = await a.backup();
      // Not consumed yet: writes and new tables go on, and are not in it.
      allOk(
        await a.apply([
          entry(3, "update k set v = 'changed' where id = 7"),
          entry(4, "create table later (x int)"),
          entry(5, "insert into later values (1)"),
        ]),
      );
      // A DDL on a table the backup reads waits for it (lock_wait_timeout), then is retried.
      await assert.rejects(
        a.apply([entry(6, "alter table k add column w int")]),
        is("STORE_UNAVAILABLE", /Lock wait timeout/),
      );
      assert.deepEqual(await a.lastApplied(), { index: 5, term: 1 });
      await b.restore(backup.position, backup.stream);
      assert.deepEqual(await b.lastApplied(), { index: 2, term: 1 });
      assert.equal(await digestOf(b), before);
      assert.deepEqual(await load(b, "select v from k where id = 7"), [{ v: "v" }]);
      allOk(await a.apply([entry(6, "alter table k add column w int")]));

      // An abandoned backup ends its snapshot too.
      const abandoned = await a.backup();
      const it = abandoned.stream[Symbol.asyncIterator]();
      await it.next();
      await it.return?.();
      allOk(await a.apply([entry(7, "alter table k drop column w")]));
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("a digest is pinned on a snapshot: applying goes on while it is computed, and it is of its position", async () => {
    const { store: a } = await freshStore();
    const { store: b } = await freshStore();
    await a.open();
    await b.open();
    const fill = [
      entry(
        1,
        "create table big (id int primary key, name varchar(40), n double, b varbinary(16))",
      ),
      entry(
        2,
        "insert into big select seq, concat('name-', seq), seq / 7, unhex(md5(seq)) from seq_1_to_200000",
      ),
      entry(3, "create table later (k varchar(5) primary key, v varchar(10))"),
      entry(4, "insert into later values ('a', 'before')"),
    ];
    try {
      allOk(await a.apply(fill));
      allOk(await b.apply(fill));
      const t0 = performance.now();
      const pending = await a.digest();
      const pinMs = performance.now() - t0;
      assert.deepEqual(pending.position, { index: 4, term: 1 });
      let done = false;
      void pending.digest.then(() => (done = true));
      allOk(await a.apply([entry(5, "update later set v = 'after'")]));
      allOk(await a.apply([entry(6, "delete from big where id = 1000")]));
      assert.deepEqual(await load(a, "select v from later"), [{ v: "after" }]);
      assert.equal(done, false, "the applies waited for the digest");
      const hex = await pending.digest;
      const totalMs = performance.now() - t0;
      assert.equal(hex, await digestOf(b), "a's digest pinned at 4 is b's at 4");
      const now = await a.digest();
      assert.deepEqual(now.position, { index: 6, term: 1 });
      assert.notEqual(await now.digest, hex);
      process.stdout.write(
        `# 200000 rows: pinned in ${pinMs.toFixed(0)} ms, digest in ${totalMs.toFixed(0)} ms\n`,
      );
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("close() ends a running digest's snapshot and connection: the digest rejects", async () => {
    const { store: s, db } = await freshStore();
    await s.open();
    const connections = async (): Promise<number> =>
      (
        (await srv.query(
          `select count(*) as n from information_schema.processlist where db = '${db}'`,
        )) as { n: number }[]
      )[0]!.n;
    try {
      allOk(
        await s.apply([
          entry(1, "create table big (id int primary key, v varchar(40))"),
          entry(2, "insert into big select seq, concat('value-', seq) from seq_1_to_200000"),
        ]),
      );
      const pending = await s.digest();
      assert.ok((await connections()) >= 2, "the digest has a connection of its own");
      await s.close();
      await assert.rejects(pending.digest, is("STORE_UNAVAILABLE"));
      const deadline = Date.now() + 10_000;
      while ((await connections()) > 0) {
        assert.ok(Date.now() < deadline, "the store's connections outlived close()");
        await new Promise((r) => setTimeout(r, 20));
      }
    } finally {
      await s.close();
    }
  });

  it("MySQL down is not a result: STORE_UNAVAILABLE, nothing half-applied, and it resumes when MySQL is back", async () => {
    const own = await startMariaDb();
    const s = new MySqlStore({ url: own.url(), connectTimeoutMs: 1000 });
    await s.open();
    try {
      allOk(
        await s.apply([
          entry(1, "create table c (n bigint)"),
          entry(2, "insert into c values (1)"),
        ]),
      );
      await own.stop();
      const down = is("STORE_UNAVAILABLE", new RegExp(`127\\.0\\.0\\.1:${own.port}`));
      await assert.rejects(s.apply([entry(3, "insert into c values (2)")]), down);
      await assert.rejects(load(s, "select n from c"), down);
      await assert.rejects(s.lastApplied(), down);
      await assert.rejects(new MySqlStore({ url: own.url(), connectTimeoutMs: 1000 }).open(), down);
      await own.start();
      assert.deepEqual(await s.lastApplied(), { index: 2, term: 1 });
      allOk(await s.apply([entry(3, "insert into c values (2)")]));
      assert.deepEqual(await load(s, "select n from c order by n"), [{ n: 1 }, { n: 2 }]);

      // Killed in the middle of a batch: either all of it or none of it is applied, and
      // lastApplied says which; applying it again leaves each entry applied once.
      const batch = [
        entry(4, "insert into c values (3)"),
        entry(5, "insert into c select sum(a.seq * b.seq) from seq_1_to_3000 a, seq_1_to_5000 b"),
      ];
      const applying = s.apply(batch);
      const slow =
        "select count(*) as n from information_schema.processlist where info like 'insert into c select sum%'";
      while (((await own.query(slow)) as { n: number }[])[0]!.n === 0) {
        await new Promise((r) => setTimeout(r, 5));
      }
      await own.kill();
      await assert.rejects(applying, is("STORE_UNAVAILABLE"));
      await own.start();
      const at = (await s.lastApplied()).index;
      const count = async (): Promise<unknown> =>
        ((await load(s, "select count(*) as n from c")) as { n: number }[])[0]!.n;
      assert.deepEqual([at, await count()], at === 3 ? [3, 2] : [5, 4]);
      await s.apply(batch);
      assert.deepEqual(await s.lastApplied(), { index: 5, term: 1 });
      assert.equal(await count(), 4);
    } finally {
      await s.close();
    }
  });

  it("the server's own defaults do not matter: strict mode, UTC and auto-increment steps are the session's", async () => {
    const { store: s } = await freshStore();
    await s.open();
    try {
      const r = await s.apply([
        entry(1, "create table st (id int auto_increment primary key, x tinyint, at datetime)"),
        entry(2, "insert into st (x, at) values (1, now())"),
        entry(3, "insert into st (x, at) values (1000, now())"),
        entry(4, "insert into st (x, at) values (2, now())"),
      ]);
      assert.equal(text(r[1]), '{"rowsAffected":1,"lastInsertId":1}');
      assert.match(errorOf(r[2]), /^Out of range value for column 'x'/);
      assert.equal(text(r[3]), '{"rowsAffected":1,"lastInsertId":2}');
      assert.deepEqual(await load(s, "select x, at from st order by id"), [
        { x: 1, at: "2023-11-14 22:13:20" },
        { x: 2, at: "2023-11-14 22:13:20" },
      ]);
    } finally {
      await s.close();
    }
  });

  it("digests do not depend on the order rows were written in, with or without a primary key", async () => {
    const digestAfter = async (inserts: string[]): Promise<string> => {
      const { store: s } = await freshStore();
      await s.open();
      try {
        allOk(
          await s.apply([
            entry(1, "create table np (a int, b varchar(5))"),
            entry(2, "create table pk (id int primary key, b varchar(5))"),
            ...inserts.map((sql, i) => entry(3 + i, sql)),
          ]),
        );
        return await digestOf(s);
      } finally {
        await s.close();
      }
    };
    const one = await digestAfter([
      "insert into np values (1, 'b'), (1, 'a'), (2, null), (1, 'a')",
      "insert into pk values (2, 'y'), (1, 'x')",
    ]);
    const other = await digestAfter([
      "insert into pk values (1, 'x')",
      "insert into np values (2, null), (1, 'a')",
      "insert into np values (1, 'a'), (1, 'b')",
      "insert into pk values (2, 'y')",
    ]);
    assert.equal(one, other);
    const different = await digestAfter([
      "insert into np values (1, 'b'), (1, 'a'), (2, null)",
      "insert into pk values (2, 'y'), (1, 'x')",
    ]);
    assert.notEqual(one, different);
  });

  it("open() drops the temporary databases an interrupted restore left behind, and only those", async () => {
    const { store: s, db } = await freshStore();
    for (const d of [
      `${db}_nexus_restore_0badf00d`,
      `${db}_nexus_old_0badf00d`,
      `${db}_nexus_old_mine`,
    ]) {
      await srv.query(`CREATE DATABASE ${d}`);
    }
    await s.open();
    await s.close();
    assert.deepEqual(
      (await srv.query(`show databases like '${db}\\_%'`)).map(
        (r) => Object.values(r as object)[0],
      ),
      [`${db}_nexus_old_mine`],
    );
  });

  it("a missing database and a refused login are configuration errors that say what to do", async () => {
    await assert.rejects(
      new MySqlStore({ url: srv.url("no_such_db") }).open(),
      is("BAD_CONFIG", /database "no_such_db" does not exist .* create it first/),
    );
    await assert.rejects(
      new MySqlStore({ url: `mysql://nobody:pw@127.0.0.1:${srv.port}/nexus` }).open(),
      is(
        "BAD_CONFIG",
        /refused the login.*check the user and the password \(given in the connection string, NEXUS_MYSQL_PASSWORD or a password file\)/,
      ),
    );
  });
});
