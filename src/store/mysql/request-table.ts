/**
 * `_nexus_requests`: the MySQL store's request records (src/store/request-records.ts), read and
 * written on the apply connection inside the batch's transaction, so a record commits with the
 * entry's effect and the applied position. Backups carry them in `requests` records (backup.ts).
 */
import type { Connection, RowDataPacket } from "mysql2/promise";
import type { ApplyResult } from "../store.js";
import type { RequestRecord } from "../request-records.js";

/** The table of request records. */
export const REQUESTS = "_nexus_requests";

/** `CREATE TABLE` of `_nexus_requests` (without IF NOT EXISTS). */
export const CREATE_REQUESTS =
  `CREATE TABLE ${REQUESTS} (id VARBINARY(128) PRIMARY KEY, hash CHAR(64) CHARACTER SET ascii NOT NULL, ` +
  "ok TINYINT NOT NULL, result LONGBLOB NOT NULL, entry_index BIGINT NOT NULL, " +
  "kept_from_ms BIGINT NOT NULL, KEY (kept_from_ms)) ENGINE=InnoDB";

/** One record as a row of the table, in column order (also the backup's row form). */
export type RequestRow = [string, string, number, Buffer, number, number];

/** The columns, in RequestRow's order. */
export const REQUEST_COLUMNS = "id, hash, ok, result, entry_index, kept_from_ms";

export function rowOf(r: RequestRecord): RequestRow {
  const result = r.result.ok ? Buffer.from(r.result.data) : Buffer.from(r.result.error, "utf8");
  return [r.id, r.hash, r.result.ok ? 1 : 0, result, r.index, r.keptFromMs];
}

function recordOfRow(row: RowDataPacket): RequestRecord {
  const text = row["result"] as Buffer;
  const result: ApplyResult =
    Number(row["ok"]) === 1
      ? { ok: true, data: new Uint8Array(text) }
      : { ok: false, error: text.toString("utf8") };
  return {
    id: Buffer.isBuffer(row["id"]) ? row["id"].toString("latin1") : String(row["id"]),
    hash: String(row["hash"]),
    result,
    index: Number(row["entry_index"]),
    keptFromMs: Number(row["kept_from_ms"]),
  };
}

/** The record of `id`, if any (in `c`'s transaction). */
export async function readRequest(c: Connection, id: string): Promise<RequestRecord | undefined> {
  const [rows] = await c.query<RowDataPacket[]>(
    `SELECT ${REQUEST_COLUMNS} FROM ${REQUESTS} WHERE id = ?`,
    [Buffer.from(id, "latin1")],
  );
  return rows[0] === undefined ? undefined : recordOfRow(rows[0]);
}

/** Writes (or replaces) a record (in `c`'s transaction). */
export async function writeRequest(c: Connection, r: RequestRecord): Promise<void> {
  const row = rowOf(r);
  await c.query(`REPLACE INTO ${REQUESTS} (${REQUEST_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)`, [
    Buffer.from(row[0], "latin1"),
    ...row.slice(1),
  ]);
}

/** Deletes up to `limit` records kept from before `beforeMs` (in `c`'s transaction). */
export async function purgeRequests(c: Connection, beforeMs: number, limit: number): Promise<void> {
  await c.query(`DELETE FROM ${REQUESTS} WHERE kept_from_ms < ? ORDER BY kept_from_ms LIMIT ?`, [
    beforeMs,
    limit,
  ]);
}

/** Every record, in id order (the snapshot's transaction): for backups. */
export async function allRequests(c: Connection): Promise<RequestRecord[]> {
  const [rows] = await c.query<RowDataPacket[]>(
    `SELECT ${REQUEST_COLUMNS} FROM ${REQUESTS} ORDER BY id`,
  );
  return rows.map(recordOfRow);
}
