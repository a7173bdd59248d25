/**
 * A consistent read of the database, shared by backups and digests: a connection inside
 * `START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY` (REPEATABLE READ), begun while no batch
 * applies, so the position it reads from `_nexus_applied` and the rows it reads agree. Reading a
 * table takes its metadata lock until the snapshot ends, so a DDL entry on it waits (up to
 * `lockWaitTimeoutSec`) rather than break the snapshot.
 */
import type { Connection as CoreConnection, FieldPacket } from "mysql2";
import type { Connection, RowDataPacket } from "mysql2/promise";
import { StoreUnavailableError } from "../../errors/index.js";
import type { AppliedPosition } from "../store.js";
import { quoteId, readPosition, userTables } from "./nexus-tables.js";
import { isBinaryField } from "./value-conversion.js";

/** What a snapshot reader needs to know of one table, read while no batch is applying. */
export interface TableInfo {
  readonly name: string;
  /** `SHOW CREATE TABLE`'s text. */
  readonly create: string;
  /** Every column in order, with whether it is generated, and its definition for digests. */
  readonly columns: readonly {
    readonly name: string;
    readonly generated: boolean;
    readonly desc: string;
  }[];
  /** ORDER BY: the primary key, or every column. */
  readonly order: string;
}

/** A begun snapshot: its connection, position and tables. */
export interface Snapshot {
  readonly core: CoreConnection;
  readonly conn: Connection;
  readonly position: AppliedPosition;
  readonly tables: readonly TableInfo[];
  /** False once the store was closed (its connection destroyed): rows may be missing. */
  readonly isLive: () => boolean;
}

/** Prepares a new connection for a snapshot (before it is begun). */
export async function setUpSnapshotSession(conn: Connection): Promise<void> {
  await conn.query("SET SESSION max_sort_length = 8388608");
  await conn.query("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ");
}

/**
 * Begins the snapshot on `conn` and reads its position and tables (locking each table's
 * metadata). To be called while no batch applies.
 */
export async function beginSnapshot(
  conn: Connection,
  database: string,
): Promise<{ position: AppliedPosition; tables: TableInfo[] }> {
  await conn.query("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY");
  const position = await readPosition(conn);
  const tables: TableInfo[] = [];
  for (const name of await userTables(conn, database)) {
    const t = quoteId(name);
    // Reading the table takes its metadata lock until the snapshot ends.
    await conn.query(`SELECT 1 FROM ${t} LIMIT 0`);
    const [created] = await conn.query<RowDataPacket[]>(`SHOW CREATE TABLE ${t}`);
    const [cols] = await conn.query<RowDataPacket[]>(
      "SELECT column_name AS n, column_type AS ty, is_nullable AS nu, column_default AS d, extra AS x, collation_name AS co FROM information_schema.columns WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
      [database, name],
    );
    const [keys] = await conn.query<RowDataPacket[]>(
      "SELECT column_name AS n FROM information_schema.statistics WHERE table_schema = ? AND table_name = ? AND index_name = 'PRIMARY' ORDER BY seq_in_index",
      [database, name],
    );
    const columns = cols.map((r) => ({
      name: String(r["n"]),
      generated: /\b(VIRTUAL|STORED|PERSISTENT)\b/i.test(String(r["x"] ?? "")),
      desc: JSON.stringify([r["n"], r["ty"], r["nu"], r["d"], r["x"], r["co"]]),
    }));
    const order = (keys.length > 0 ? keys.map((k) => String(k["n"])) : columns.map((x) => x.name))
      .map(quoteId)
      .join(", ");
    tables.push({ name, create: String(created[0]?.["Create Table"] ?? ""), columns, order });
  }
  return { position, tables };
}

/**
 * Streams a table's rows from the snapshot as raw values (Buffers, or null), in `order`, with
 * backpressure; `onFields` learns which columns hold bytes before the first row.
 */
export async function* rawRows(
  s: Snapshot,
  t: TableInfo,
  columns: readonly string[],
  onFields: (binary: boolean[]) => void,
): AsyncGenerator<(Buffer | null)[]> {
  const sql = `SELECT ${columns.map(quoteId).join(", ")} FROM ${quoteId(t.name)} ORDER BY ${t.order}`;
  const q = s.core.query({ sql, rowsAsArray: true, typeCast: false });
  const stream = q.stream({ highWaterMark: 256 });
  stream.on("fields", (fields: FieldPacket[]) => onFields(fields.map(isBinaryField)));
  for await (const row of stream) yield row as (Buffer | null)[];
  // close() destroys the connection, which may end the stream early without an error: rows
  // would be missing from a backup or a digest that looks complete.
  if (!s.isLive()) {
    throw new StoreUnavailableError(
      "the MySQL store was closed while a snapshot was being read; nothing was completed",
    );
  }
}
