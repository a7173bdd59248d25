/**
 * `?` placeholders: the values of a command's `args.params` bound into its statement, as literals
 * escaped by mysql2, at the placeholder tokens the lexer found (never inside a string, a quoted
 * name or a comment). Binding happens before the statement is sent, so every replica runs the
 * same text.
 */
import mysql from "mysql2";
import { Refusal } from "./refusal.js";
import type { Token } from "./sql-lexer.js";

/** A JSON placeholder value, as mysql2 escapes it. */
export type ParamValue = string | number | boolean | null | Buffer;

/**
 * The values of `args.params`: a JSON array of strings, numbers, booleans, nulls or
 * `{"base64": "..."}` (bytes). Absent or "" is no values. Throws Refusal for anything else.
 */
export function paramsOf(raw: string | undefined): ParamValue[] {
  if (raw === undefined || raw === "") return [];
  let p: unknown;
  try {
    p = JSON.parse(raw);
  } catch (err) {
    throw new Refusal(`args.params must be a JSON array of values: ${(err as Error).message}`);
  }
  if (!Array.isArray(p))
    throw new Refusal("args.params must be a JSON array of values for the ? placeholders");
  return p.map((v: unknown, i): ParamValue => {
    if (v === null || typeof v === "string" || typeof v === "boolean") return v;
    if (typeof v === "number") return v;
    if (typeof v === "object" && typeof (v as { base64?: unknown }).base64 === "string") {
      return Buffer.from((v as { base64: string }).base64, "base64");
    }
    throw new Refusal(
      `args.params[${i}] must be a string, number, boolean, null or {"base64": "..."}`,
    );
  });
}

/** The statement with its `?` placeholders (outside literals and comments) bound to values. */
export function bind(sql: string, tokens: readonly Token[], params: readonly ParamValue[]): string {
  const slots = tokens.filter((t) => t.kind === "param");
  if (slots.length !== params.length) {
    throw new Refusal(
      `the statement has ${slots.length} ? placeholder(s) but args.params has ${params.length} value(s)`,
    );
  }
  if (slots.length === 0) return sql;
  let out = "";
  let at = 0;
  slots.forEach((s, i) => {
    out += sql.slice(at, s.start) + mysql.escape(params[i]);
    at = s.end;
  });
  return out + sql.slice(at);
}
