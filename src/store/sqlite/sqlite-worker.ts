/**
 * The SQLite worker: owns the better-sqlite3 connection and runs every statement, so that a slow
 * query never blocks the main thread where Raft ticks and heartbeats run. It answers one request
 * at a time, in order.
 */
import { closeSync, fsyncSync, openSync, renameSync, rmSync } from "node:fs";
import { dirname } from "node:path";
import { parentPort } from "node:worker_threads";
import Database from "better-sqlite3";
import type { AppliedPosition, ApplyEntry, ApplyResult } from "../store.js";
import type { WorkerRequest, WorkerResponse, WorkerResult } from "./protocol.js";

class StatementError extends Error {}

let db: Database.Database | undefined;
let dbPath = "";
/** A plain connection whose date functions are not overridden, for computing them. */
const helper = new Database(":memory:");
/** The entry being applied: its time and seeded PRNG drive the SQL functions. */
let current: { timestampMs: number; rand: () => number } | undefined;

function mulberry32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const TIME_FUNCTIONS = ["datetime", "date", "time", "julianday", "strftime", "unixepoch"] as const;

function installDeterministicFunctions(d: Database.Database): void {
  // random() and randomblob() draw from the entry's seed, the same on every replica.
  d.function("random", { deterministic: false }, () => {
    const r = current?.rand ?? Math.random;
    const hi = Math.floor(r() * 0x100000000) | 0;
    const lo = Math.floor(r() * 0x100000000) >>> 0;
    return (BigInt(hi) << 32n) | BigInt(lo);
  });
  d.function("randomblob", { deterministic: false }, (n: unknown) => {
    const len = Math.max(1, Number(n) | 0);
    const r = current?.rand ?? Math.random;
    const b = Buffer.alloc(len);
    for (let i = 0; i < len; i++) b[i] = Math.floor(r() * 256);
    return b;
  });
  // 'now' in date and time functions is the entry's timestamp (the proposer's clock).
  for (const name of TIME_FUNCTIONS) {
    d.function(name, { deterministic: false, varargs: true }, (...args: unknown[]) => {
      const nowMs = current?.timestampMs ?? Date.now();
      const nowText = new Date(nowMs).toISOString().replace("T", " ").replace("Z", "");
      const mapped =
        args.length === 0 && name !== "strftime"
          ? [nowText]
          : args.map((a) => (typeof a === "string" && a.toLowerCase() === "now" ? nowText : a));
      const sql = `select ${name}(${mapped.map(() => "?").join(", ")}) as v`;
      const row = helper.prepare(sql).get(...mapped) as { v: unknown };
      return row.v as number | string | null;
    });
  }
}

const FORBIDDEN =
  /^\s*(begin|commit|end|rollback|savepoint|release|attach|detach|vacuum|pragma)\b/i;
const CURRENT_KEYWORDS = /\bcurrent_(timestamp|date|time)\b/i;

function checkStatement(sql: string): void {
  if (/_nexus_/i.test(sql))
    throw new StatementError("tables named _nexus_* are reserved for Nexus");
  if (FORBIDDEN.test(sql)) {
    throw new StatementError(
      "transaction control, ATTACH, VACUUM and PRAGMA are managed by Nexus; send plain statements",
    );
  }
  if (CURRENT_KEYWORDS.test(sql.replace(/'(?:[^']|'')*'/g, "''"))) {
    throw new StatementError(
      "CURRENT_TIMESTAMP, CURRENT_DATE and CURRENT_TIME would differ between replicas; " +
        "use datetime('now'), date('now') or time('now'), which Nexus makes deterministic",
    );
  }
}

function params(raw: string | undefined): unknown[] | Record<string, unknown> {
  if (raw === undefined || raw === "") return [];
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    throw new StatementError(
      "args.params must be JSON: an array or an object of placeholder values",
    );
  }
  if (Array.isArray(v)) return v;
  if (typeof v === "object" && v !== null) return v as Record<string, unknown>;
  throw new StatementError("args.params must be a JSON array or object");
}

function run(stmt: Database.Statement, p: unknown[] | Record<string, unknown>): Database.RunResult {
  return Array.isArray(p) ? stmt.run(...p) : stmt.run(p);
}

function getMeta(d: Database.Database): AppliedPosition {
  const rows = d.prepare("select k, v from _nexus_meta").all() as { k: string; v: number }[];
  const m = new Map(rows.map((r) => [r.k, r.v]));
  return { index: m.get("applied_index") ?? 0, term: m.get("applied_term") ?? 0 };
}

function open(path: string): AppliedPosition {
  dbPath = path;
  const d = new Database(path);
  // WAL: readers (the digest worker's snapshots) never block this writer, nor it them.
  const mode = d.pragma("journal_mode = WAL", { simple: true }) as string;
  if (mode.toLowerCase() !== "wal") {
    d.close();
    throw new Error(`could not put ${path} in WAL mode (it stays in ${mode} mode)`);
  }
  d.pragma("synchronous = FULL");
  d.exec("create table if not exists _nexus_meta (k text primary key, v integer not null)");
  // A connection-local table whose one row, rewritten at rowid 0 before each statement, resets
  // last_insert_rowid: a statement that inserts nothing reports lastInsertId 0 on every replica,
  // whatever this connection inserted before (its history differs after a restart or a restore).
  d.exec("create temp table if not exists _nexus_rowid (x)");
  installDeterministicFunctions(d);
  db = d;
  return getMeta(d);
}

function need(): Database.Database {
  if (db === undefined) throw new Error("the database is not open");
  return db;
}

function apply(entries: readonly ApplyEntry[]): ApplyResult[] {
  const d = need();
  const setMeta = d.prepare(
    "insert into _nexus_meta (k, v) values (?, ?) on conflict(k) do update set v = excluded.v",
  );
  const resetRowid = d.prepare("insert or replace into temp._nexus_rowid (rowid, x) values (0, 0)");
  const results: ApplyResult[] = [];
  const tx = d.transaction(() => {
    let applied = getMeta(d);
    for (const e of entries) {
      if (e.index <= applied.index) {
        results.push({ ok: true, data: new Uint8Array(0) });
        continue;
      }
      if (e.command !== undefined) {
        const sql = new TextDecoder().decode(e.command.data);
        current = { timestampMs: e.timestampMs, rand: mulberry32(e.seed % 0x100000000) };
        d.exec("savepoint nexus_entry");
        try {
          checkStatement(sql);
          const stmt = d.prepare(sql);
          const p = params(e.command.args["params"]);
          let changes = 0;
          let lastId = 0;
          if (stmt.reader) {
            if (Array.isArray(p)) stmt.all(...p);
            else stmt.all(p);
          } else {
            resetRowid.run();
            const info = run(stmt, p);
            changes = info.changes;
            lastId = Number(info.lastInsertRowid);
          }
          d.exec("release nexus_entry");
          results.push({
            ok: true,
            data: new TextEncoder().encode(
              JSON.stringify({ rowsAffected: changes, lastInsertId: lastId }),
            ),
          });
        } catch (err) {
          d.exec("rollback to nexus_entry");
          d.exec("release nexus_entry");
          results.push({ ok: false, error: (err as Error).message });
        } finally {
          current = undefined;
        }
      } else {
        results.push({ ok: true, data: new Uint8Array(0) });
      }
      applied = { index: e.index, term: e.term };
    }
    setMeta.run("applied_index", applied.index);
    setMeta.run("applied_term", applied.term);
  });
  tx.immediate();
  return results;
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

function load(sql: string, rawParams: string | undefined): string {
  const d = need();
  if (/_nexus_/i.test(sql))
    throw new StatementError("tables named _nexus_* are reserved for Nexus");
  let stmt: Database.Statement;
  try {
    stmt = d.prepare(sql);
  } catch (err) {
    throw new StatementError((err as Error).message);
  }
  if (!stmt.reader) throw new StatementError("load runs read-only queries; send writes with save");
  if (!stmt.readonly)
    throw new StatementError("load runs read-only queries; this statement writes");
  const p = params(rawParams);
  try {
    const rows = (Array.isArray(p) ? stmt.all(...p) : stmt.all(p)) as Record<string, unknown>[];
    return JSON.stringify(rows.map(encodeRow));
  } catch (err) {
    throw new StatementError((err as Error).message);
  }
}

async function handle(req: WorkerRequest): Promise<WorkerResult> {
  switch (req.op) {
    case "open":
      return open(req.path);
    case "apply":
      return apply(req.entries);
    case "load":
      return load(req.sql, req.params);
    case "lastApplied":
      return getMeta(need());
    case "backup": {
      const d = need();
      const position = getMeta(d);
      await d.backup(req.file);
      return position;
    }
    case "restore": {
      const check = new Database(req.file, { readonly: true, fileMustExist: true });
      try {
        const pos = getMeta(check);
        if (pos.index !== req.position.index || pos.term !== req.position.term) {
          throw new StatementError(
            `the backup is at ${pos.index}/${pos.term}, expected ${req.position.index}/${req.position.term}`,
          );
        }
      } catch (err) {
        throw new StatementError(`not a usable backup: ${(err as Error).message}`);
      } finally {
        check.close();
      }
      need().close();
      db = undefined;
      rmSync(`${dbPath}-wal`, { force: true });
      rmSync(`${dbPath}-shm`, { force: true });
      renameSync(req.file, dbPath);
      const dirFd = openSync(dirname(dbPath), "r");
      try {
        fsyncSync(dirFd);
      } finally {
        closeSync(dirFd);
      }
      return open(dbPath);
    }
    case "close":
      db?.close();
      db = undefined;
      return null;
  }
}

let chain = Promise.resolve();
parentPort!.on("message", (req: WorkerRequest) => {
  chain = chain.then(async () => {
    let res: WorkerResponse;
    try {
      res = { id: req.id, ok: true, result: await handle(req) };
    } catch (err) {
      // The database itself failing (I/O, disk full, locked) is not the user's statement's fault.
      const code = (err as { code?: unknown }).code;
      const backendFailure =
        typeof code === "string" &&
        /^SQLITE_(IOERR|FULL|CANTOPEN|CORRUPT|BUSY|LOCKED|NOMEM|READONLY|PERM|NOTADB)/.test(code);
      const statement =
        err instanceof StatementError || (typeof code === "string" && !backendFailure);
      res = {
        id: req.id,
        ok: false,
        code: statement ? "STORE_ERROR" : "STORE_UNAVAILABLE",
        message: (err as Error).message,
      };
    }
    parentPort!.postMessage(res);
  });
});
