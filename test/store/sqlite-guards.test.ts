/**
 * The SQLite store's guards (issue 16 items 4 and 5): the apply step budget, statements Nexus
 * manages refused however they are written, and loads kept off the apply connection, read-only,
 * and capped in rows, bytes and time.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { SqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import type { SqliteStoreOptions } from "../../src/store/sqlite/sqlite-store.js";
import type { ApplyEntry, ApplyResult } from "../../src/store/store.js";
import { isNexusError } from "../../src/errors/index.js";
import { digestOf } from "./conformance.js";
import { tempDir } from "../temp-dir.js";

const enc = new TextEncoder();
const dec = new TextDecoder();

async function open(opts: Partial<SqliteStoreOptions> = {}): Promise<SqliteStore> {
  const d = tempDir("nexus-sqlite-guards-");
  const s = new SqliteStore({ path: join(d, "db.sqlite"), ...opts });
  await s.open();
  return s;
}

function entry(index: number, sql: string | undefined, params?: unknown[]): ApplyEntry {
  return {
    index,
    term: 1,
    command:
      sql === undefined
        ? undefined
        : {
            data: enc.encode(sql),
            args: params === undefined ? {} : { params: JSON.stringify(params) },
          },
    timestampMs: 1_700_000_000_000,
    seed: index,
  };
}

const INFINITE = "with recursive c(x) as (select 1 union all select x + 1 from c)";
/** About 17 SQLite instructions per row: 3 million rows are some 51 million instructions. */
const COUNT_3M =
  "with recursive c(x) as (select 1 union all select x + 1 from c where x < 3000000) select count(*) as n from c";

const errorOf = (r: ApplyResult | undefined): string =>
  r !== undefined && !r.ok ? r.error : assert.fail(`expected an error, got ${JSON.stringify(r)}`);
const rowsOf = (r: Uint8Array): Record<string, unknown>[] =>
  JSON.parse(dec.decode(r)) as Record<string, unknown>[];

async function load(s: SqliteStore, sql: string): Promise<Record<string, unknown>[]> {
  return rowsOf(await s.load({ data: enc.encode(sql), args: {} }));
}

describe("SqliteStore: the apply step budget", () => {
  it("a statement past the budget is its entry's error, rolled back, and the batch around it applies", async () => {
    const s = await open({ applyStepBudget: 1_000_000 });
    try {
      const r = await s.apply([
        entry(1, "create table t (id integer primary key, v text)"),
        entry(2, "insert into t (v) values ('before')"),
        entry(3, `insert into t (v) select 'x' from (${INFINITE} select x from c)`),
        entry(4, `${INFINITE} select count(*) from c`),
        entry(5, "insert into t (v) values ('after')"),
      ]);
      assert.deepEqual(
        r.map((x) => x.ok),
        [true, true, false, false, true],
      );
      for (const i of [2, 3]) {
        assert.match(
          errorOf(r[i]),
          /^apply budget exceeded: .* more than 1000000 SQLite instructions/,
        );
        assert.match(errorOf(r[i]), /-apply-step-budget/);
      }
      // The entries before the poison (applied again after SQLite rolled the batch back) keep
      // their own results.
      assert.deepEqual(JSON.parse(dec.decode((r[1] as { data: Uint8Array }).data)), {
        rowsAffected: 1,
        lastInsertId: 1,
      });
      assert.deepEqual(JSON.parse(dec.decode((r[4] as { data: Uint8Array }).data)), {
        rowsAffected: 1,
        lastInsertId: 2,
      });
      assert.deepEqual(await load(s, "select v from t order by id"), [
        { v: "before" },
        { v: "after" },
      ]);
      assert.deepEqual(await s.lastApplied(), { index: 5, term: 1 });
    } finally {
      await s.close();
    }
  });

  it("counts instructions, not time: the same statements stop at the same place on every replica", async () => {
    // 51 million instructions: within a budget of 60 million, past one of 40 million.
    const results: string[] = [];
    const digests: string[] = [];
    for (const budget of [60_000_000, 60_000_000, 40_000_000]) {
      const s = await open({ applyStepBudget: budget });
      try {
        const r = await s.apply([
          entry(1, "create table t (n integer)"),
          entry(2, `insert into t select n from (${COUNT_3M})`),
        ]);
        results.push(JSON.stringify(r.map((x) => x.ok)));
        digests.push(await digestOf(s));
      } finally {
        await s.close();
      }
    }
    assert.deepEqual(results, ["[true,true]", "[true,true]", "[true,false]"]);
    assert.equal(digests[0], digests[1]);
    assert.notEqual(digests[0], digests[2]);
  });

  it("budget 0 is no limit; a negative budget is refused", async () => {
    const s = await open({ applyStepBudget: 0 });
    try {
      const r = await s.apply([
        entry(1, "create table t (n integer)"),
        entry(2, `insert into t select n from (${COUNT_3M})`),
      ]);
      assert.ok(r.every((x) => x.ok));
    } finally {
      await s.close();
    }
    assert.throws(
      () => new SqliteStore({ path: "/tmp/unused.db", applyStepBudget: -1 }),
      (e: unknown) =>
        isNexusError(e, "BAD_CONFIG") && /apply-step-budget/.test((e as Error).message),
    );
  });

  it("the budget's own functions cannot be called by a save", async () => {
    const s = await open({ applyStepBudget: 1_000_000 });
    try {
      const r = await s.apply([
        entry(1, "select _nexus_step_budget_arm(0)"),
        entry(2, `select "_NEXUS_step_budget_disarm"()`),
      ]);
      assert.match(errorOf(r[0]), /reserved for Nexus/);
      assert.match(errorOf(r[1]), /reserved for Nexus/);
    } finally {
      await s.close();
    }
  });

  it("transaction control and PRAGMA are refused in a save even behind comments or EXPLAIN", async () => {
    const s = await open();
    try {
      const r = await s.apply([
        entry(1, "create table t (x)"),
        entry(2, "/* a comment */ pragma synchronous = off"),
        entry(3, "-- a comment\n  PRAGMA query_only = 1"),
        entry(4, "explain pragma synchronous = 0"),
        entry(5, "/**/commit"),
        entry(6, "/**/ attach ':memory:' as x"),
        entry(7, "insert into t values (1)"),
      ]);
      assert.deepEqual(
        r.map((x) => x.ok),
        [true, false, false, false, false, false, true],
      );
      for (const i of [1, 2, 3, 4, 5]) assert.match(errorOf(r[i]), /managed by Nexus/);
      assert.deepEqual(await s.applySettings(), {
        synchronous: 1,
        queryOnly: 0,
        journalMode: "wal",
      });
    } finally {
      await s.close();
    }
  });
});

describe("SqliteStore: loads", () => {
  it("PRAGMA assignments as loads are refused and leave the apply connection as it was", async () => {
    const s = await open();
    try {
      await s.apply([entry(1, "create table t (x)")]);
      for (const sql of [
        "PRAGMA synchronous=OFF",
        "PRAGMA query_only=1",
        "/* hidden */ pragma main.synchronous = 0",
        "explain pragma query_only = 1",
        "pragma cache_size(1)",
        "pragma journal_mode",
        "pragma wal_checkpoint(TRUNCATE)",
      ]) {
        await assert.rejects(
          load(s, sql),
          (e: unknown) => isNexusError(e, "STORE_ERROR") && /PRAGMA/.test((e as Error).message),
          sql,
        );
      }
      assert.deepEqual(await s.applySettings(), {
        synchronous: 1,
        queryOnly: 0,
        journalMode: "wal",
      });
      // The apply connection still writes.
      const r = await s.apply([entry(2, "insert into t values (1)")]);
      assert.equal(r[0]!.ok, true, JSON.stringify(r));
      assert.deepEqual(await load(s, "select x from t"), [{ x: 1 }]);
    } finally {
      await s.close();
    }
  });

  it("a PRAGMA that reads is a load; anything that writes, attaches or loads code is refused", async () => {
    const s = await open();
    try {
      await s.apply([
        entry(1, "create table t (x integer, y text)"),
        entry(2, "insert into t values (1, 'a')"),
      ]);
      assert.deepEqual(
        (await load(s, "pragma table_info(t)")).map((c) => c["name"]),
        ["x", "y"],
      );
      assert.deepEqual(await load(s, "pragma user_version"), [{ user_version: 0 }]);
      assert.deepEqual(
        (await load(s, "select name from pragma_table_info('t')")).map((c) => c["name"]),
        ["x", "y"],
      );
      for (const [sql, why] of [
        ["insert into t values (2, 'b')", /read-only/],
        ["/**/ delete from t", /read-only/],
        ["with x as (select 1) insert into t select 3, 'c' from x", /read-only/],
        ["attach ':memory:' as other", /read-only/],
        ["create temp table scratch (x)", /read-only/],
        ["select load_extension('/tmp/nothing')", /not authorized/],
        ["select * from _nexus_meta", /reserved for Nexus/],
        ["begin", /read-only/],
      ] as const) {
        await assert.rejects(
          load(s, sql),
          (e: unknown) => isNexusError(e, "STORE_ERROR") && why.test((e as Error).message),
          sql,
        );
      }
      assert.deepEqual(await load(s, "select count(*) as n from t"), [{ n: 1 }]);
    } finally {
      await s.close();
    }
  });

  it("a load past its deadline is stopped with TIMEOUT; the node keeps applying and answering meanwhile", async () => {
    const s = await open({ loadTimeoutMs: 1000 });
    try {
      await s.apply([entry(1, "create table t (x)")]);
      // Both load workers started first: starting one from TypeScript source can take longer than
      // the 1 s deadline on a busy machine (those first loads are refused; the workers stay).
      for (let tries = 1; ; tries++) {
        const both = await Promise.allSettled([load(s, "select 1"), load(s, "select 1")]);
        if (both.every((r) => r.status === "fulfilled")) break;
        assert.ok(tries < 10, "the load workers never answered");
      }
      const started = Date.now();
      // Settled into a value at once: on a busy machine the deadline may pass before it is awaited.
      const forever = load(s, `${INFINITE} select count(*) from c`).then(
        () => assert.fail("the endless load returned"),
        (e: unknown) => e,
      );
      // Applies and other loads go on while it runs.
      const r = await s.apply([entry(2, "insert into t values (7)")]);
      assert.equal(r[0]!.ok, true);
      assert.deepEqual(await load(s, "select x from t"), [{ x: 7 }]);
      const e = await forever;
      assert.ok(isNexusError(e, "TIMEOUT"), `not a TIMEOUT: ${String(e)}`);
      assert.match((e as Error).message, /longer than 1000 ms/);
      assert.match((e as Error).message, /-load-timeout-ms/);
      const took = Date.now() - started;
      assert.ok(took >= 1000, `stopped after ${took} ms`);
      // The worker that ran it stopped it (or was replaced): loads still work.
      assert.deepEqual(await load(s, "select x from t"), [{ x: 7 }]);
      assert.equal((await s.apply([entry(3, "insert into t values (8)")]))[0]!.ok, true);
    } finally {
      await s.close();
    }
  });

  it("a load is capped in rows and in bytes, and the error names the flag that raises the cap", async () => {
    const s = await open({ loadMaxRows: 10, loadMaxBytes: 200 });
    try {
      await s.apply([
        entry(1, "create table t (x integer)"),
        entry(2, "insert into t select value from generate_series(1, 11)"),
      ]);
      // generate_series may be missing from a build: fill by hand then.
      if ((await load(s, "select count(*) as n from t"))[0]!["n"] !== 11) {
        await s.apply([
          entry(
            3,
            "insert into t select x from (with recursive c(x) as (select 1 union all select x + 1 from c where x < 11) select x from c)",
          ),
        ]);
      }
      assert.equal((await load(s, "select x from t order by x limit 10")).length, 10);
      await assert.rejects(
        load(s, "select x from t"),
        (e: unknown) =>
          isNexusError(e, "TOO_LARGE") &&
          /more than 10 rows/.test((e as Error).message) &&
          /-load-max-rows/.test((e as Error).message),
      );
      await assert.rejects(
        load(s, "select printf('%.100c', 'x') as big from t limit 3"),
        (e: unknown) =>
          isNexusError(e, "TOO_LARGE") &&
          /larger than 200 bytes/.test((e as Error).message) &&
          /-load-max-bytes/.test((e as Error).message),
      );
      // Exactly at the byte cap is fine: [{"v":"..."}] is 200 bytes for 190 characters.
      const exact = await s.load({
        data: enc.encode("select printf('%.190c', 'y') as v"),
        args: {},
      });
      assert.equal(exact.byteLength, 200);
    } finally {
      await s.close();
    }
  });

  it("a slow apply does not hold loads back: they run on connections of their own", async () => {
    const s = await open({ applyStepBudget: 0 });
    try {
      await s.apply([entry(1, "create table t (n integer)"), entry(2, "insert into t values (1)")]);
      // A load worker is running already (starting one takes a while on a busy machine).
      assert.deepEqual(await load(s, "select count(*) as n from t"), [{ n: 1 }]);
      let applied = false;
      const slow = s
        .apply([
          entry(3, `insert into t select n from (${COUNT_3M.replace("3000000", "20000000")})`),
        ])
        .then(() => (applied = true));
      // Give the apply worker time to start the statement, then read.
      await new Promise((r) => setTimeout(r, 200));
      assert.deepEqual(await load(s, "select count(*) as n from t"), [{ n: 1 }]);
      assert.equal(applied, false, "the load answered while the apply was still running");
      await slow;
      assert.deepEqual(await load(s, "select count(*) as n from t"), [{ n: 2 }]);
    } finally {
      await s.close();
    }
  });
});
