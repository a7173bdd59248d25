import { before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { MySqlStore } from "../../src/store/mysql/mysql-store.js";
import { parseMySqlDsn } from "../../src/store/mysql/dsn.js";
import type { ApplyEntry, ApplyResult } from "../../src/store/store.js";
import { isNexusError } from "../../src/errors/index.js";
import { runStoreConformance } from "./conformance.js";
import { startMariaDb } from "./mariadb-server.js";
import type { MariaDbServer } from "./mariadb-server.js";

const enc = new TextEncoder();
const dec = new TextDecoder();

function entry(
  index: number,
  sql: string | undefined,
  opts: { params?: unknown[]; ts?: number; seed?: number } = {},
): ApplyEntry {
  return {
    index,
    term: 1,
    command:
      sql === undefined
        ? undefined
        : {
            data: enc.encode(sql),
            args: opts.params === undefined ? {} : { params: JSON.stringify(opts.params) },
          },
    timestampMs: opts.ts ?? 1_700_000_000_123,
    seed: opts.seed ?? 424242,
  };
}

const text = (r: ApplyResult): string =>
  r.ok ? dec.decode(r.data) : assert.fail(`entry failed: ${r.error}`);
const errorOf = (r: ApplyResult): string => (r.ok ? assert.fail("the entry succeeded") : r.error);

let srv: MariaDbServer;
let dbs = 0;
/** A fresh database on the private server, and a store on it. */
async function freshStore(): Promise<{ store: MySqlStore; db: string }> {
  const db = `t${++dbs}`;
  await srv.query(`CREATE DATABASE ${db}`);
  return { store: new MySqlStore({ url: srv.url(db) }), db };
}

async function load(s: MySqlStore, sql: string): Promise<unknown> {
  return JSON.parse(dec.decode(await s.load({ data: enc.encode(sql), args: {} })));
}

describe("MySqlStore", () => {
  before(async () => {
    srv = await startMariaDb();
  });

  describe("connection strings", () => {
    for (const c of [
      {
        name: "the original's DSN",
        s: "root:root@tcp(127.0.0.1:33061)/nexus?autocommit=false",
        want: { host: "127.0.0.1", port: 33061, user: "root", password: "root", database: "nexus" },
      },
      {
        name: "DSN without password",
        s: "app@tcp(db.local:3307)/x",
        want: { host: "db.local", port: 3307, user: "app", password: "", database: "x" },
      },
      {
        name: "mysql:// URL",
        s: "mysql://u:p%40ss@10.0.0.1/nexus",
        want: { host: "10.0.0.1", port: 3306, user: "u", password: "p@ss", database: "nexus" },
      },
    ]) {
      it(c.name, () => assert.deepEqual(parseMySqlDsn(c.s), c.want));
    }
    for (const s of [
      "",
      "root@tcp(127.0.0.1:99999)/nexus",
      "root@tcp(127.0.0.1:3306)",
      "mysql://host:3306/",
      "root@unix(/tmp/s)/db",
      "nonsense",
    ]) {
      it(`refuses "${s}"`, () =>
        assert.throws(
          () => parseMySqlDsn(s),
          (e: unknown) => isNexusError(e, "BAD_CONFIG"),
        ));
    }
  });

  describe("conformance", () => {
    runStoreConformance({
      name: "mysql",
      open: async () => {
        const { store, db } = await freshStore();
        await srv.query("CREATE TABLE kv (k VARCHAR(64) PRIMARY KEY, v TEXT)", db);
        return { store, cleanup: async () => void (await srv.query(`DROP DATABASE ${db}`)) };
      },
      reopen: async (old) => new MySqlStore({ url: srv.url((old as MySqlStore).dsn.database) }),
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
    });
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
      assert.equal(text(r[0]!), '{"rowsAffected":0,"lastInsertId":0}');
      assert.match(errorOf(r[1]!), /Unknown column 'name' in/);
      assert.equal(text(r[2]!), '{"rowsAffected":1,"lastInsertId":1}');
      assert.equal(text(r[3]!), '{"rowsAffected":1,"lastInsertId":2}');
      // The leader's timestamp, not the replica's clock.
      assert.deepEqual(await load(s, "select id, data, ts from sync_table order by id"), [
        { id: 1, data: "bar", ts: "2023-11-14 22:13:20.123" },
        { id: 2, data: "world", ts: "2023-11-14 22:13:20.123" },
      ]);
      assert.deepEqual(await s.lastApplied(), { index: 4, term: 1 });
    } finally {
      await s.close();
    }
  });

  it("NOW(), CURRENT_TIMESTAMP defaults and RAND() are identical on two replicas, and follow the entry's time and seed", async () => {
    const run = async (ts: number, seed: number): Promise<unknown> => {
      const { store: s } = await freshStore();
      await s.open();
      try {
        await s.apply([
          entry(
            1,
            "create table d (id int primary key, t datetime(3), r double, dflt timestamp(3) default current_timestamp(3))",
            { ts, seed },
          ),
          entry(2, "insert into d (id, t, r) values (1, now(3), rand())", { ts, seed }),
          entry(3, "insert into d (id, t, r) select 2, utc_timestamp(3), rand() * 1000", {
            ts,
            seed: seed + 1,
          }),
        ]);
        return await load(s, "select * from d order by id");
      } finally {
        await s.close();
      }
    };
    const a = await run(1_700_000_000_500, 99);
    const b = await run(1_700_000_000_500, 99);
    assert.deepEqual(a, b);
    assert.equal((a as { t: string }[])[0]!.t, "2023-11-14 22:13:20.500");
    const c = await run(1_700_000_999_000, 12345);
    assert.notDeepEqual(a, c);
  });

  it("refuses what cannot be replicated deterministically, as the entry's result, without running it", async () => {
    const { store: s } = await freshStore();
    await s.open();
    try {
      const r = await s.apply([
        entry(1, "create table u (v varchar(64))"),
        entry(2, "insert into u values (uuid())"),
        entry(3, "insert into u values (sysdate())"),
        entry(4, "commit"),
        entry(5, "set autocommit = 1"),
        entry(6, "update _nexus_applied set applied_index = 0"),
        entry(7, "insert into u values ('ok')"),
      ]);
      assert.match(errorOf(r[1]!), /UUID\(\) gives different results/);
      assert.match(errorOf(r[2]!), /SYSDATE\(\)/);
      assert.match(errorOf(r[3]!), /transaction control/);
      assert.match(errorOf(r[4]!), /transaction control/);
      assert.match(errorOf(r[5]!), /_nexus_applied is Nexus's own table/);
      assert.equal(text(r[6]!), '{"rowsAffected":1,"lastInsertId":0}');
      assert.deepEqual(await load(s, "select v from u"), [{ v: "ok" }]);
      assert.deepEqual(await s.lastApplied(), { index: 7, term: 1 });
      await assert.rejects(load(s, "delete from u"), (e: unknown) =>
        isNexusError(e, "STORE_ERROR"),
      );
    } finally {
      await s.close();
    }
  });

  it("DDL between DML in one batch: everything applies in order, and a restart re-applies nothing", async () => {
    const { store: s, db } = await freshStore();
    await s.open();
    await s.apply([
      entry(1, "create table a (x int)"),
      entry(2, "insert into a values (1)"),
      entry(3, "alter table a add column y int default 7"),
      entry(4, "insert into a (x) values (2)"),
      entry(5, undefined),
    ]);
    await s.close();
    const s2 = new MySqlStore({ url: srv.dsn(db) });
    assert.deepEqual(await s2.open(), { index: 5, term: 1 });
    try {
      const r = await s2.apply([
        entry(4, "insert into a (x) values (2)"),
        entry(6, "insert into a (x) values (3)"),
      ]);
      assert.equal(text(r[0]!), "");
      assert.deepEqual(await load(s2, "select x, y from a order by x"), [
        { x: 1, y: 7 },
        { x: 2, y: 7 },
        { x: 3, y: 7 },
      ]);
    } finally {
      await s2.close();
    }
  });

  it("backup streams schema and rows; restore loads them elsewhere, digests agree; a bad stream changes nothing", async () => {
    const { store: a } = await freshStore();
    const { store: b } = await freshStore();
    await a.open();
    await b.open();
    try {
      const filled = await a.apply([
        entry(
          1,
          "create table big (id int primary key, s varchar(100), n bigint, d decimal(20,6), bin varbinary(16), nul int null, u text)",
        ),
        entry(
          2,
          "insert into big select seq, concat('s', seq), seq * 9007199254, seq / 7, unhex(md5(seq)), null, 'héllo ☃' from seq_1_to_20000",
        ),
        entry(3, "create table other (k varchar(10) primary key)"),
        entry(4, "insert into other values ('x')"),
      ]);
      assert.ok(
        filled.every((r) => r.ok),
        JSON.stringify(filled.map((r) => (r.ok ? "ok" : r.error))),
      );
      await b.apply([
        entry(1, "create table mine (z int)"),
        entry(2, "insert into mine values (1)"),
      ]);
      const chunks: Uint8Array[] = [];
      const backup = await a.backup();
      assert.deepEqual(backup.position, { index: 4, term: 1 });
      for await (const c of backup.stream) chunks.push(c);
      const whole = Buffer.concat(chunks);

      for (const bad of [
        whole.subarray(0, whole.length - 30),
        Buffer.from(whole.toString().replace("s19999", "s1999X")),
      ]) {
        await assert.rejects(
          b.restore(
            { index: 4, term: 1 },
            (async function* () {
              yield bad;
            })(),
          ),
          (e: unknown) => isNexusError(e, "CORRUPTED"),
        );
        assert.deepEqual(await load(b, "select z from mine"), [{ z: 1 }]);
        assert.deepEqual(await b.lastApplied(), { index: 2, term: 1 });
      }
      await b.restore(
        { index: 4, term: 1 },
        (async function* () {
          yield* chunks;
        })(),
      );
      assert.deepEqual(await b.lastApplied(), { index: 4, term: 1 });
      assert.deepEqual(await load(b, "select count(*) as n, sum(nul is null) as nuls from big"), [
        { n: 20000, nuls: "20000" },
      ]);
      await assert.rejects(load(b, "select * from mine"), (e: unknown) =>
        isNexusError(e, "STORE_ERROR"),
      );
      assert.equal((await a.digest()).digest, (await b.digest()).digest);
      await a.apply([entry(5, "update big set s = 'changed' where id = 77")]);
      assert.notEqual((await a.digest()).digest, (await b.digest()).digest);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("MySQL down is not a result: STORE_UNAVAILABLE, nothing half-applied, and it resumes when MySQL is back", async () => {
    const own = await startMariaDb();
    const s = new MySqlStore({ url: own.url(), connectTimeoutMs: 1000 });
    await s.open();
    try {
      await s.apply([entry(1, "create table c (n int)"), entry(2, "insert into c values (1)")]);
      await own.kill();
      await assert.rejects(s.apply([entry(3, "insert into c values (2)")]), (e: unknown) =>
        isNexusError(e, "STORE_UNAVAILABLE"),
      );
      await own.start();
      assert.deepEqual(await s.lastApplied(), { index: 2, term: 1 });
      await s.apply([entry(3, "insert into c values (2)")]);
      assert.deepEqual(await load(s, "select n from c order by n"), [{ n: 1 }, { n: 2 }]);
    } finally {
      await s.close();
    }
  });
});
