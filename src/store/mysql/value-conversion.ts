/**
 * Values between the server and Nexus: a save's result, a load's values as JSON, and which result
 * columns hold bytes rather than text (for backups and loads).
 */
import type { FieldPacket, ResultSetHeader } from "mysql2";
import type { ApplyResult } from "../store.js";

/** Result-set types whose binary-charset values are bytes rather than text. */
const STRINGY_TYPES = new Set([15, 249, 250, 251, 252, 253, 254]);
const BIT = 16;
const GEOMETRY = 255;
const BINARY_CHARSET = 63;

/** Whether a result column's values are bytes (BIT, GEOMETRY, BINARY/VARBINARY/BLOB). */
export function isBinaryField(f: FieldPacket): boolean {
  const t = f.columnType ?? -1;
  return t === BIT || t === GEOMETRY || (STRINGY_TYPES.has(t) && f.characterSet === BINARY_CHARSET);
}

/** A backup value: the server's text, `{b: base64}` for bytes, or null. */
export type WireValue = string | { readonly b: string } | null;

/**
 * A load value as JSON: bytes as `{"base64": "..."}`, bigints as strings; numbers, strings and
 * null as they are (mysql2 already gives DECIMAL and dates as strings).
 */
export function jsonValue(v: unknown): unknown {
  if (Buffer.isBuffer(v)) return { base64: v.toString("base64") };
  if (typeof v === "bigint") return v.toString();
  return v;
}

/** The result of a save that did nothing, or whose work is not counted (a DDL). */
export const NOTHING = '{"rowsAffected":0,"lastInsertId":0}';

/**
 * A save's result, `{"rowsAffected": n, "lastInsertId": m}`, from the server's reply. For a DDL
 * (`ddl`) the rows are 0: the rows an ALTER copied depend on the algorithm the server chose, not
 * on the data.
 */
export function okResult(h: unknown, ddl = false): ApplyResult {
  const r = (Array.isArray(h) ? {} : (h ?? {})) as Partial<ResultSetHeader>;
  const affected = typeof r.affectedRows === "number" && !ddl ? r.affectedRows : 0;
  const raw = r.insertId as unknown;
  const id =
    typeof raw === "number" || typeof raw === "bigint" || typeof raw === "string"
      ? String(raw)
      : "0";
  return {
    ok: true,
    data: new TextEncoder().encode(
      `{"rowsAffected":${affected},"lastInsertId":${/^\d+$/.test(id) ? id : "0"}}`,
    ),
  };
}
