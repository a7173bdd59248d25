/**
 * SqliteStore's digest: pinned on a WAL snapshot in a second worker, computed while applying goes
 * on, ended by close() and restore(), and what it covers (schema, rowids, storage classes).
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { SqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import type { ApplyEntry, ApplyResult } from "../../src/store/store.js";
import { isNexusError } from "../../src/errors/index.js";
import { hashSnapshot, pinSnapshot } from "../../src/store/sqlite/sqlite-digest.js";
import { digestOf } from "./conformance.js";
import { openSqliteDatabase } from "../../src/store/sqlite/sqlite-binding.js";
import { tempDir } from "../temp-dir.js";

function tmp(): string {
  return tempDir("nexus-sqlite-digest-");
}
const enc = new TextEncoder();

function entry(index: number, sql: string | undefined): ApplyEntry {
  return {
    index,
    term: 1,
    command: sql === undefined ? undefined : { data: enc.encode(sql), args: {} },
    timestampMs: 1_700_000_000_000,
    seed: 5,
  };
}

const allOk = (rs: ApplyResult[]): void =>
  assert.ok(
    rs.every((r) => r.ok),
    JSON.stringify(rs.map((r) => (r.ok ? "ok" : r.error))),
  );

/**
 * Rows enough that a digest takes a while (a few hundred ms), in `big`, then a small table `later`
 * that the digest reads last: a change to it during the digest shows whether the snapshot held.
 */
const ROWS = 300_000;
const FILL = [
  entry(1, "create table big (id integer primary key, name text, n real, b blob)"),
  entry(
    2,
    `insert into big (name, n, b) with recursive c(x) as (select 1 union all select x + 1 from c where x < ${ROWS}) select 'name-' || x, x / 7.0, randomblob(16) from c`,
  ),
  entry(3, "create table later (k text primary key, v text)"),
  entry(4, "insert into later values ('a', 'before')"),
];

async function opened(): Promise<SqliteStore> {
  const s = new SqliteStore({ path: join(tmp(), "db.sqlite") });
  await s.open();
  return s;
}

/** Whether a reader holds a snapshot of the file: a TRUNCATE checkpoint cannot complete. */
function readerHoldsWal(path: string): boolean {
  const db = openSqliteDatabase(path, { timeout: 0 });
  try {
    const r = db.pragma("wal_checkpoint(TRUNCATE)") as { busy: number }[];
    return r[0]!.busy !== 0;
  } finally {
    db.close();
  }
}

/** The digest of a database built by `sqls` (run directly, as the apply worker would). */
async function digestAfter(sqls: string[]): Promise<string> {
  const db = openSqliteDatabase(":memory:");
  try {
    db.exec("create table _nexus_meta (k text primary key, v integer not null)");
    for (const [i, q] of sqls.entries()) {
      db.exec(q);
      db.prepare("insert or replace into _nexus_meta values ('applied_index', ?)").run(i + 1);
    }
    const position = pinSnapshot(db);
    assert.equal(position.index, sqls.length);
    return await hashSnapshot(db, async () => undefined);
  } finally {
    db.close();
  }
}

describe("SqliteStore digest", () => {
  it("applying goes on while a digest is computed, and the digest is of the state it pinned", async () => {
    const a = await opened();
    const b = await opened();
    try {
      allOk(await a.apply(FILL));
      allOk(await b.apply(FILL));
      const t0 = performance.now();
      const pending = await a.digest();
      const pinMs = performance.now() - t0;
      assert.deepEqual(pending.position, { index: 4, term: 1 });
      let digestDone = false;
      void pending.digest.then(() => (digestDone = true));
      // These are applied (and answered) while the digest still runs.
      allOk(await a.apply([entry(5, "update later set v = 'after' where k = 'a'")]));
      allOk(await a.apply([entry(6, "delete from big where id = 1000")]));
      assert.equal(digestDone, false, "the applies waited for the digest");
      const hex = await pending.digest;
      const totalMs = performance.now() - t0;
      assert.equal(hex, await digestOf(b), "a's digest pinned at 4 is b's at 4");
      const now = await a.digest();
      assert.deepEqual(now.position, { index: 6, term: 1 });
      assert.notEqual(await now.digest, hex);
      process.stdout.write(
        `# ${ROWS} rows: pinned in ${pinMs.toFixed(0)} ms, digest in ${totalMs.toFixed(0)} ms\n`,
      );
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("the snapshot is held until the digest ends, and close() ends it: the digest rejects", async () => {
    const s = await opened();
    try {
      allOk(await s.apply(FILL));
      const done = await s.digest();
      await done.digest;
      assert.equal(readerHoldsWal(s.path), false, "a finished digest still holds the WAL");

      // (A snapshot that reads nothing from the WAL would not hold it: write something first.)
      allOk(await s.apply([entry(5, "update big set name = 'x' where id = 1")]));
      const pending = await s.digest();
      assert.equal(readerHoldsWal(s.path), true, "the pinned digest holds no snapshot");
      await s.close();
      await assert.rejects(pending.digest, (e: unknown) => isNexusError(e, "STORE_UNAVAILABLE"));
      assert.equal(readerHoldsWal(s.path), false, "close() left a snapshot open");
      // A digest of a closed store is refused at once.
      await assert.rejects(s.digest(), (e: unknown) => isNexusError(e, "STORE_UNAVAILABLE"));
    } finally {
      await s.close();
    }
  });

  it("a running digest nobody awaits rejects quietly when the store closes", async () => {
    const s = await opened();
    allOk(await s.apply(FILL));
    const unawaited = await s.digest();
    assert.deepEqual(unawaited.position, { index: 4, term: 1 });
    await s.close();
    // Its rejection is handled inside: nothing reaches the process's unhandledRejection.
    let unhandled: unknown;
    const onUnhandled = (e: unknown): void => {
      unhandled = e;
    };
    process.on("unhandledRejection", onUnhandled);
    try {
      for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(unhandled, undefined);
    } finally {
      process.off("unhandledRejection", onUnhandled);
    }
  });

  it("a restore abandons the running digests (they reject), then digests see the restored state", async () => {
    const src = await opened();
    const s = await opened();
    try {
      allOk(
        await src.apply([entry(1, "create table t (x)"), entry(2, "insert into t values (42)")]),
      );
      allOk(await s.apply(FILL));
      const pending = await s.digest();
      const backup = await src.backup();
      await s.restore(backup.position, backup.stream);
      await assert.rejects(pending.digest, (e: unknown) => isNexusError(e, "STORE_UNAVAILABLE"));
      const after = await s.digest();
      assert.deepEqual(after.position, { index: 2, term: 1 });
      assert.equal(await after.digest, await digestOf(src));
    } finally {
      await src.close();
      await s.close();
    }
  });

  it("several digests may run at once, each of its own position", async () => {
    const s = await opened();
    const t = await opened();
    try {
      allOk(await s.apply(FILL));
      allOk(await t.apply(FILL));
      const first = await s.digest();
      allOk(await s.apply([entry(5, "update later set v = 'second'")]));
      const second = await s.digest();
      allOk(await s.apply([entry(6, "update later set v = 'third'")]));
      assert.deepEqual(first.position, { index: 4, term: 1 });
      assert.deepEqual(second.position, { index: 5, term: 1 });
      const [h1, h2] = await Promise.all([first.digest, second.digest]);
      assert.equal(h1, await digestOf(t), "the first is t's at 4");
      allOk(await t.apply([entry(5, "update later set v = 'second'")]));
      assert.equal(h2, await digestOf(t), "the second is t's at 5");
    } finally {
      await s.close();
      await t.close();
    }
  });

  it("covers the schema, rowids and storage classes, not Nexus's metadata", async () => {
    const base = [
      "create table t (a, b text)",
      "insert into t values (1, 'x')",
      "insert into t values (2, 'y')",
    ];
    const d = await digestAfter(base);
    // The same state after a different history: equal (the applied index is not state).
    // (The digest through the store is the same function: compared once here.)
    const s = await opened();
    try {
      allOk(await s.apply(base.map((q, i) => entry(i + 1, q))));
      assert.equal(await digestOf(s), d);
    } finally {
      await s.close();
    }
    assert.equal(
      await digestAfter([
        "create table t (a, b text)",
        "insert into t values (1, 'x')",
        "insert into t values (2, 'z')",
        "update t set b = 'y' where a = 2",
      ]),
      d,
    );
    const differing: [string, string[]][] = [
      ["an integer where a real was", [base[0]!, "insert into t values (1.0, 'x')", base[2]!]],
      ["text where an integer was", [base[0]!, "insert into t values ('1', 'x')", base[2]!]],
      [
        "a blob where text was",
        [base[0]!, "insert into t values (1, cast('x' as blob))", base[2]!],
      ],
      ["an index", [...base, "create index t_b on t (b)"]],
      ["the same rows at other rowids", [base[0]!, base[2]!, base[1]!]],
      ["a table whose name only looks like Nexus's", [...base, "create table anexus_x (y)"]],
      [
        "an AUTOINCREMENT counter",
        [
          ...base,
          "create table ai (id integer primary key autoincrement)",
          "insert into ai default values",
          "delete from ai",
        ],
      ],
    ];
    // The same single row at rowid 1 and at rowid 2: the rowid is state.
    const single = await digestAfter([base[0]!, base[1]!]);
    const shifted = await digestAfter([
      base[0]!,
      "insert into t values (0, 'z')",
      base[1]!,
      "delete from t where a = 0",
    ]);
    assert.notEqual(single, shifted, "a row at another rowid: the digest did not change");
    const seen = new Set([d, single, shifted]);
    for (const [what, sqls] of differing) {
      const x = await digestAfter(sqls);
      assert.ok(!seen.has(x), `${what}: the digest did not change`);
      seen.add(x);
    }
  });

  it("WITHOUT ROWID tables digest in primary-key order, and tables shadowing every rowid alias work", async () => {
    const schema = [
      "create table w (a text, b integer, c, primary key (a, b desc)) without rowid",
      "create table r (rowid, _rowid_, oid)",
    ];
    const one = await digestAfter([
      ...schema,
      "insert into w values ('x', 1, 'p'), ('x', 2, 'q'), ('a', 9, null)",
      "insert into r values (1, 2, 3), (0, 0, 0)",
    ]);
    const other = await digestAfter([
      ...schema,
      "insert into w values ('a', 9, null)",
      "insert into w values ('x', 2, 'q'), ('x', 1, 'p')",
      "insert into r values (1, 2, 3), (0, 0, 0)",
    ]);
    assert.equal(one, other);
    const changed = await digestAfter([
      ...schema,
      "insert into w values ('x', 1, 'p'), ('x', 2, 'Q'), ('a', 9, null)",
      "insert into r values (1, 2, 3), (0, 0, 0)",
    ]);
    assert.notEqual(one, changed);
  });
});
