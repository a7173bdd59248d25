/**
 * A SQLite load worker: runs loads (read-only queries) on a read-only connection of its own, so
 * that nothing a load does reaches the connection that applies entries, and a load past its
 * deadline can be stopped without touching it (sqlite-loader.ts terminates this thread if the
 * deadline below does not end it).
 *
 * A load is refused before it is prepared unless it is a SELECT, a WITH ... SELECT, VALUES, or a
 * PRAGMA that only reads (SQLite applies a PRAGMA assignment while preparing it); prepared, it
 * must be read-only and return rows. Its connection is opened read-only with `query_only` on.
 * It runs with a deadline (SQLite's progress handler stops the statement, when the SQLite build
 * has one: sqlite-binding.ts), and it stops at the first row past the row or byte cap: the result
 * is built row by row, never all at once.
 */
import { parentPort } from "node:worker_threads";
import type Database from "better-sqlite3";
import type { LoadRequest, LoadResponse } from "./protocol.js";
import { openSqliteDatabase } from "./sqlite-binding.js";
import { pragmaForm, statementHead } from "./sql-head.js";

/** A refusal with the code the client sees. */
class LoadError extends Error {
  constructor(
    readonly code: "STORE_ERROR" | "TOO_LARGE" | "TIMEOUT",
    message: string,
  ) {
    super(message);
  }
}

/** PRAGMAs a load may run without an argument: each only reads the database or its schema. */
const READ_PRAGMAS = new Set([
  "application_id",
  "collation_list",
  "compile_options",
  "data_version",
  "database_list",
  "encoding",
  "foreign_key_check",
  "foreign_key_list",
  "freelist_count",
  "function_list",
  "integrity_check",
  "module_list",
  "page_count",
  "page_size",
  "pragma_list",
  "quick_check",
  "schema_version",
  "table_list",
  "user_version",
]);

/** PRAGMAs whose argument in parentheses names what to read, never a value to set. */
const READ_PRAGMAS_WITH_ARGUMENT = new Set([
  "foreign_key_check",
  "foreign_key_list",
  "index_info",
  "index_list",
  "index_xinfo",
  "integrity_check",
  "quick_check",
  "table_info",
  "table_list",
  "table_xinfo",
]);

const READ_KEYWORDS = new Set(["select", "with", "values"]);

/** Refuses, before prepare(), what is not a read. */
export function checkLoad(sql: string): void {
  if (/_nexus_/i.test(sql)) {
    throw new LoadError("STORE_ERROR", "names containing _nexus_ are reserved for Nexus");
  }
  const head = statementHead(sql);
  if (READ_KEYWORDS.has(head.keyword)) return;
  if (head.keyword === "pragma") {
    const form = pragmaForm(head.tokens);
    const ok =
      form !== undefined &&
      !form.assigns &&
      (form.hasArgument
        ? READ_PRAGMAS_WITH_ARGUMENT.has(form.name)
        : READ_PRAGMAS.has(form.name) || READ_PRAGMAS_WITH_ARGUMENT.has(form.name));
    if (ok) return;
    throw new LoadError(
      "STORE_ERROR",
      "load refuses this PRAGMA: a load may only read (e.g. PRAGMA table_info(t), PRAGMA user_version, " +
        "or SELECT * FROM pragma_table_info('t')); settings are managed by Nexus",
    );
  }
  throw new LoadError(
    "STORE_ERROR",
    "load runs read-only queries (SELECT, WITH ... SELECT, VALUES, or a PRAGMA that reads); send writes with save",
  );
}

interface Connection {
  readonly db: Database.Database;
  readonly path: string;
  /** Its SQLite has the load deadline (the build with progress callbacks). */
  readonly deadline: boolean;
}

let conn: Connection | undefined;

function connection(path: string): Connection {
  if (conn !== undefined && conn.path === path) return conn;
  conn?.db.close();
  conn = undefined;
  const db = openSqliteDatabase(path, { readonly: true, fileMustExist: true, timeout: 5000 });
  db.pragma("query_only = 1");
  let deadline = true;
  try {
    db.prepare("select _nexus_deadline_disarm()").get();
  } catch {
    deadline = false;
  }
  conn = { db, path, deadline };
  return conn;
}

function params(raw: string | undefined): unknown[] | Record<string, unknown> {
  if (raw === undefined || raw === "") return [];
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    throw new LoadError(
      "STORE_ERROR",
      "args.params must be JSON: an array or an object of placeholder values",
    );
  }
  if (Array.isArray(v)) return v;
  if (typeof v === "object" && v !== null) return v as Record<string, unknown>;
  throw new LoadError("STORE_ERROR", "args.params must be a JSON array or object");
}

function encodeRow(row: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(row)) {
    out[k] = Buffer.isBuffer(v)
      ? { base64: v.toString("base64") }
      : typeof v === "bigint"
        ? v.toString()
        : v;
  }
  return out;
}

function load(req: LoadRequest): Uint8Array {
  checkLoad(req.sql);
  const { db, deadline } = connection(req.path);
  let stmt: Database.Statement;
  try {
    stmt = db.prepare(req.sql);
  } catch (err) {
    throw new LoadError("STORE_ERROR", (err as Error).message);
  }
  if (!stmt.reader || !stmt.readonly) {
    throw new LoadError("STORE_ERROR", "load runs read-only queries; send writes with save");
  }
  const p = params(req.params);
  const { maxRows, maxBytes, timeoutMs } = req.limits;
  // The deadline counts from when the load was asked for (this thread may have been starting).
  const left = Math.max(1, req.deadlineAt - Date.now());
  if (deadline) db.prepare("select _nexus_deadline_arm(?)").run(BigInt(left));
  const parts: string[] = [];
  // "[" and "]", and a "," between rows.
  let bytes = 2;
  try {
    const rows = (Array.isArray(p) ? stmt.iterate(...p) : stmt.iterate(p)) as Iterable<
      Record<string, unknown>
    >;
    for (const row of rows) {
      if (parts.length === maxRows) {
        throw new LoadError(
          "TOO_LARGE",
          `the load returns more than ${maxRows} rows, the limit (flag -load-max-rows, option loadMaxRows); ` +
            "narrow the query (WHERE, LIMIT) or raise the limit",
        );
      }
      const json = JSON.stringify(encodeRow(row));
      bytes += Buffer.byteLength(json) + (parts.length > 0 ? 1 : 0);
      if (bytes > maxBytes) {
        throw new LoadError(
          "TOO_LARGE",
          `the load's result is larger than ${maxBytes} bytes, the limit (flag -load-max-bytes, option loadMaxBytes); ` +
            "narrow the query (fewer columns or rows, LIMIT) or raise the limit",
        );
      }
      parts.push(json);
    }
  } catch (err) {
    if (err instanceof LoadError) throw err;
    const code = (err as { code?: unknown }).code;
    if (code === "SQLITE_INTERRUPT") {
      throw new LoadError(
        "TIMEOUT",
        `the load ran longer than ${timeoutMs} ms, the limit (flag -load-timeout-ms, option loadTimeoutMs), and was stopped; ` +
          "make the query cheaper or raise the limit",
      );
    }
    throw err;
  } finally {
    if (deadline) db.prepare("select _nexus_deadline_disarm()").get();
  }
  return new TextEncoder().encode(`[${parts.join(",")}]`);
}

parentPort!.on("message", (req: LoadRequest) => {
  let res: LoadResponse;
  try {
    const json = load(req);
    parentPort!.postMessage({ id: req.id, ok: true, json } satisfies LoadResponse, [
      json.buffer as ArrayBuffer,
    ]);
    return;
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    const backendFailure =
      typeof code === "string" &&
      /^SQLITE_(IOERR|FULL|CANTOPEN|CORRUPT|BUSY|LOCKED|NOMEM|PERM|NOTADB)/.test(code);
    res = {
      id: req.id,
      ok: false,
      code:
        err instanceof LoadError
          ? err.code
          : typeof code === "string" && !backendFailure
            ? "STORE_ERROR"
            : "STORE_UNAVAILABLE",
      message: (err as Error).message,
    };
  }
  parentPort!.postMessage(res);
});
