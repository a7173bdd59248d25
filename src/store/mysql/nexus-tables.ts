/**
 * Nexus's own tables in the replicated database, and the naming helpers around them.
 *
 * - `_nexus_applied` (one row, id 1): the applied index and term, written in the same transaction
 *   as the entries it covers, so the position and the data never disagree.
 * - `_nexus_ddl` (at most one row, id 1): the marker of the DDL crash protocol (ddl-protocol.ts).
 * - `_nexus_requests`: the request records (request-table.ts), carried by backups in records of
 *   their own, left out of digests.
 *
 * Every name starting with `_nexus_` is reserved: statements may not use one, backups and digests
 * leave them out.
 */
import mysql from "mysql2";
import type { Connection, RowDataPacket } from "mysql2/promise";
import type { AppliedPosition } from "../store.js";
import { CREATE_REQUESTS } from "./request-table.js";

/** The table holding the applied position. */
export const APPLIED = "_nexus_applied";
/** The table holding the DDL crash protocol's marker. */
export const DDL_MARKER = "_nexus_ddl";
/** Names starting with this (in any case) are Nexus's. */
export const RESERVED_PREFIX = "_nexus_";

/** `CREATE TABLE` of `_nexus_applied` (without IF NOT EXISTS). */
export const CREATE_APPLIED = `CREATE TABLE ${APPLIED} (id TINYINT PRIMARY KEY, applied_index BIGINT NOT NULL, applied_term BIGINT NOT NULL) ENGINE=InnoDB`;
/** `CREATE TABLE` of `_nexus_ddl` (without IF NOT EXISTS). */
export const CREATE_DDL_MARKER = `CREATE TABLE ${DDL_MARKER} (id TINYINT PRIMARY KEY, entry_index BIGINT NOT NULL, schema_sha256 CHAR(64) NOT NULL) ENGINE=InnoDB`;

/** A name quoted for SQL (backticks; a dot is part of the name, not a qualifier). */
export function quoteId(name: string): string {
  return mysql.escapeId(name, true);
}

/** A database name derived from `db` with `suffix`, within MySQL's 64 characters. */
export function siblingName(db: string, suffix: string): string {
  return db.slice(0, 64 - suffix.length) + suffix;
}

/** Creates Nexus's tables where they are missing (position 0/0 when new). */
export async function ensureNexusTables(c: Connection): Promise<void> {
  await c.query(CREATE_APPLIED.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS"));
  await c.query(`INSERT IGNORE INTO ${APPLIED} VALUES (1, 0, 0)`);
  await c.query(CREATE_DDL_MARKER.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS"));
  await c.query(CREATE_REQUESTS.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS"));
}

/** The position recorded in `_nexus_applied` (as seen by `c`'s transaction, if any). */
export async function readPosition(c: Connection): Promise<AppliedPosition> {
  const [rows] = await c.query<RowDataPacket[]>(
    `SELECT applied_index, applied_term FROM ${APPLIED} WHERE id = 1`,
  );
  const r = rows[0];
  return { index: Number(r?.["applied_index"] ?? 0), term: Number(r?.["applied_term"] ?? 0) };
}

const sortNames = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** The user's tables of `schema` (base tables, `_nexus_*` left out), in code-unit order. */
export async function userTables(c: Connection, schema: string): Promise<string[]> {
  const [rows] = await c.query<RowDataPacket[]>(
    "SELECT table_name AS n FROM information_schema.tables WHERE table_schema = ? AND table_type = 'BASE TABLE'",
    [schema],
  );
  return rows
    .map((r) => String(r["n"]))
    .filter((n) => !n.toLowerCase().startsWith(RESERVED_PREFIX))
    .sort(sortNames);
}
