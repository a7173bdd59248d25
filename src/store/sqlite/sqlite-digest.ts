/**
 * The digest of a SQLite database's user-visible state, computed on a read-only connection of
 * its own inside one read transaction (WAL mode gives it a snapshot while the apply connection
 * goes on writing).
 *
 * What is hashed (sha256), in this order:
 * - the schema: every row of sqlite_master except Nexus's own (`_nexus_*`), as (type, name,
 *   tbl_name, sql), ordered by type then name. Page numbers (rootpage) are left out: they depend
 *   on the file's history, not on the data;
 * - then, for each table in name order (sqlite_sequence and sqlite_stat* included: they decide
 *   future AUTOINCREMENT values and query plans), its rows: rowid tables with their rowid, in
 *   rowid order; WITHOUT ROWID tables in primary-key order. Virtual tables are skipped (their
 *   content lives in their shadow tables, which are hashed as tables).
 *
 * The rowid is part of the state: it is visible (`select rowid`), it decides the ids of future
 * inserts, and it is the same on every replica for the same history of statements, since every
 * replica runs the same statements and a snapshot is a page-for-page copy (VACUUM, which may
 * renumber rowids, is refused). So two tables with equal rows but different rowids (one had rows
 * deleted) digest differently, as they would answer `select rowid` differently.
 *
 * Values are framed with their storage class: NULL, INTEGER (64-bit), REAL (IEEE-754 bits),
 * TEXT (UTF-8 bytes) and BLOB differ even where their JSON would not (1 vs 1.0 vs '1').
 * Memory is bounded: rows are stepped one at a time and hashed through a 64 KiB buffer.
 */
import type Database from "better-sqlite3";
import { HashSink } from "../hash-sink.js";
import type { AppliedPosition } from "../store.js";

/** Begins a read transaction on `db` and reads the applied position, which pins the snapshot. */
export function pinSnapshot(db: Database.Database): AppliedPosition {
  db.exec("begin");
  const rows = db.prepare("select k, v from _nexus_meta").all() as { k: string; v: number }[];
  const m = new Map(rows.map((r) => [r.k, r.v]));
  return { index: Number(m.get("applied_index") ?? 0), term: Number(m.get("applied_term") ?? 0) };
}

/** One SQLite value, framed with its storage class. */
function hashValue(sink: HashSink, v: unknown): void {
  if (v === null || v === undefined) sink.tag("N");
  else if (typeof v === "bigint") {
    sink.tag("I");
    sink.i64(v);
  } else if (typeof v === "number") {
    sink.tag("R");
    sink.f64(v);
  } else if (typeof v === "string") {
    sink.tag("T");
    sink.text(v);
  } else if (v instanceof Uint8Array) {
    sink.tag("B");
    sink.bytes(v);
  } else {
    throw new Error(`unexpected SQLite value of type ${typeof v}`);
  }
}

const quote = (name: string): string => `"${name.replace(/"/g, '""')}"`;

interface SchemaRow {
  readonly type: string;
  readonly name: string;
  readonly tbl_name: string;
  readonly sql: string | null;
}

/** The SELECT that reads a table's rows in its stable order. */
function rowsQuery(db: Database.Database, table: string): string {
  const t = quote(table);
  const cols = db.prepare(`select name, pk from pragma_table_info(?)`).all(table) as {
    name: string;
    pk: number;
  }[];
  const names = new Set(cols.map((c) => c.name.toLowerCase()));
  const list = db
    .prepare("select wr from pragma_table_list where schema = 'main' and name = ?")
    .get(table) as { wr: number } | undefined;
  if (list?.wr === 1) {
    // WITHOUT ROWID: the primary-key index's own order (its columns, directions and collations).
    const pk = db
      .prepare("select name from pragma_index_list(?) where origin = 'pk'")
      .get(table) as { name: string } | undefined;
    const keys =
      pk === undefined
        ? []
        : (db
            .prepare(
              "select name, desc, coll from pragma_index_xinfo(?) where key = 1 order by seqno",
            )
            .all(pk.name) as { name: string; desc: number; coll: string }[]);
    const order = keys
      .map((k) => `${quote(k.name)} collate ${quote(k.coll)}${k.desc === 1 ? " desc" : ""}`)
      .join(", ");
    return `select * from ${t}${order === "" ? "" : ` order by ${order}`}`;
  }
  const rowid = ["rowid", "_rowid_", "oid"].find((r) => !names.has(r));
  if (rowid !== undefined) return `select ${rowid}, * from ${t} order by ${rowid}`;
  // Every alias of the rowid is a column name: order by every column.
  return `select * from ${t} order by ${cols.map((c) => quote(c.name)).join(", ")}`;
}

/**
 * Hashes the state visible to `db`'s open read transaction (see the file's comment). `pause` is
 * awaited every few milliseconds of work: the caller yields there (and may throw to abandon).
 */
export async function hashSnapshot(
  db: Database.Database,
  pause: () => Promise<void>,
): Promise<string> {
  const sink = new HashSink();
  let since = performance.now();
  const maybePause = async (): Promise<void> => {
    if (performance.now() - since < 10) return;
    await pause();
    since = performance.now();
  };
  const schema = db
    .prepare(
      "select type, name, tbl_name, sql from sqlite_master " +
        "where name not glob '_nexus_*' and tbl_name not glob '_nexus_*' order by type, name",
    )
    .all() as SchemaRow[];
  sink.tag("S");
  for (const s of schema) {
    sink.tag("s");
    for (const v of [s.type, s.name, s.tbl_name, s.sql]) hashValue(sink, v);
  }
  const tables = schema
    .filter((s) => s.type === "table" && !/^\s*create\s+virtual\s+table\b/i.test(s.sql ?? ""))
    .map((s) => s.name)
    .sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  for (const table of tables) {
    sink.tag("t");
    sink.text(table);
    const stmt = db.prepare(rowsQuery(db, table)).raw(true).safeIntegers(true);
    let n = 0;
    const it = stmt.iterate() as IterableIterator<unknown[]>;
    try {
      for (const row of it) {
        sink.tag("r");
        for (const v of row) hashValue(sink, v);
        if (++n % 256 === 0) await maybePause();
      }
    } finally {
      it.return?.();
    }
    sink.tag("e");
    sink.i64(BigInt(n));
  }
  return sink.hex();
}
