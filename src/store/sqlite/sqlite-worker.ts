/**
 * The SQLite apply worker: owns the connection that applies committed entries, so that a slow
 * statement never blocks the main thread where Raft ticks and heartbeats run. It answers one
 * request at a time, in order. Loads never reach this connection (sqlite-load-worker.ts).
 *
 * The step budget (src/store/DESIGN.md): each user statement runs with at most `stepBudget`
 * SQLite instructions, counted by the progress handler of native/sqlite/step-budget.c. A
 * statement stopped there is the entry's error result on every replica. SQLite rolls back the
 * whole transaction when it stops a statement that writes, so the batch is then applied again
 * from its start, with that entry's result already known and the statement not run again.
 */
import { closeSync, fsyncSync, openSync, renameSync, rmSync } from "node:fs";
import { dirname } from "node:path";
import { parentPort } from "node:worker_threads";
import type Database from "better-sqlite3";
import type { AppliedPosition, ApplyEntry, ApplyResult } from "../store.js";
import type { WorkerRequest, WorkerResponse, WorkerResult } from "./protocol.js";
import { STEP_BUDGET_BINDING, STEP_BUDGET_MISSING, openSqliteDatabase } from "./sqlite-binding.js";
import { statementHead } from "./sql-head.js";
import type { RequestRecord } from "../request-records.js";
import { REQUEST_PURGE_BATCH, decide, purgeBefore, recordOf } from "../request-records.js";

class StatementError extends Error {}

/** A refusal of the configuration (the step budget cannot be had): the node must not start. */
class ConfigError extends Error {}

/**
 * The entry at `index` spent the step budget in a statement that writes: SQLite rolled back the
 * whole batch, which is applied again with this entry's result known.
 */
class BudgetRollback extends Error {
  constructor(
    readonly index: number,
    message: string,
  ) {
    super(message);
  }
}

let db: Database.Database | undefined;
let dbPath = "";
/** SQLite instructions one user statement may run; 0: no limit. */
let stepBudget = 0;
/** How long request ids are remembered, in ms (request-records.ts). */
let requestWindowMs = 0;
/** A plain connection whose date functions are not overridden, for computing them. */
const helper = openSqliteDatabase(":memory:");
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

/** Statements Nexus manages itself, by first keyword (after EXPLAIN, comments and whitespace). */
const FORBIDDEN = new Set([
  "begin",
  "commit",
  "end",
  "rollback",
  "savepoint",
  "release",
  "attach",
  "detach",
  "vacuum",
  "pragma",
]);
const CURRENT_KEYWORDS = /\bcurrent_(timestamp|date|time)\b/i;

function checkStatement(sql: string): void {
  if (/_nexus_/i.test(sql))
    throw new StatementError("names containing _nexus_ (tables, functions) are reserved for Nexus");
  // Before prepare(): SQLite applies a PRAGMA while preparing it.
  if (FORBIDDEN.has(statementHead(sql).keyword)) {
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

function runStatement(
  stmt: Database.Statement,
  p: unknown[] | Record<string, unknown>,
): Database.RunResult {
  return Array.isArray(p) ? stmt.run(...p) : stmt.run(p);
}

function getMeta(d: Database.Database): AppliedPosition {
  const rows = d.prepare("select k, v from _nexus_meta").all() as { k: string; v: number }[];
  const m = new Map(rows.map((r) => [r.k, r.v]));
  return { index: m.get("applied_index") ?? 0, term: m.get("applied_term") ?? 0 };
}

function open(path: string, budget: number, windowMs: number): AppliedPosition {
  dbPath = path;
  stepBudget = budget;
  requestWindowMs = windowMs;
  if (budget > 0 && STEP_BUDGET_BINDING === undefined) throw new ConfigError(STEP_BUDGET_MISSING);
  const d = openSqliteDatabase(path);
  if (budget > 0) {
    try {
      d.prepare("select _nexus_step_budget_granularity()").get();
    } catch (err) {
      d.close();
      throw new ConfigError(
        `the SQLite build at ${STEP_BUDGET_BINDING} has no step budget (${(err as Error).message}); ` +
          "rebuild it with `node scripts/build-sqlite.mjs`, or start with -apply-step-budget 0 (unsafe)",
      );
    }
  }
  // WAL: readers (the digest worker's snapshots) never block this writer, nor it them.
  const mode = d.pragma("journal_mode = WAL", { simple: true }) as string;
  if (mode.toLowerCase() !== "wal") {
    d.close();
    throw new Error(`could not put ${path} in WAL mode (it stays in ${mode} mode)`);
  }
  // NORMAL: a commit is atomic but not fsynced (a checkpoint is). The Raft WAL is the durable
  // record: a power loss may roll back the last transactions, applied index with them, and the
  // node applies those entries again from its log (or restores the newest snapshot if the store
  // fell behind it: durable-state.ts). FULL put an fsync between commit and every answer.
  d.pragma("synchronous = NORMAL");
  d.exec("create table if not exists _nexus_meta (k text primary key, v integer not null)");
  // Request records (request-records.ts): in the file, so in backups; left out of digests.
  d.exec(
    "create table if not exists _nexus_requests (id text primary key, hash text not null, " +
      "ok integer not null, data blob, error text, entry_index integer not null, " +
      "kept_from_ms integer not null)",
  );
  d.exec("create index if not exists _nexus_requests_kept on _nexus_requests (kept_from_ms)");
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

/** The error result of an entry whose statement spent the step budget. */
function budgetMessage(): string {
  return (
    `apply budget exceeded: the statement ran more than ${stepBudget} SQLite instructions ` +
    "(the apply step budget, flag -apply-step-budget); it was rolled back and has no effect on " +
    "any replica. Split the work into smaller statements, or raise -apply-step-budget on every node"
  );
}

/**
 * Runs `f` (which runs the user's statement) with the step budget armed, and says whether the
 * budget was spent. The arm and disarm statements are prepared afresh each time, and so is the
 * user's statement: SQLite places progress calls by each statement's own cumulative counter.
 */
function withBudget<T>(
  d: Database.Database,
  f: () => T,
): { value?: T; error?: unknown; spent: boolean } {
  if (stepBudget === 0) {
    try {
      return { value: f(), spent: false };
    } catch (error) {
      return { error, spent: false };
    }
  }
  d.prepare("select _nexus_step_budget_arm(?)").run(BigInt(stepBudget));
  let out: { value?: T; error?: unknown };
  try {
    out = { value: f() };
  } catch (error) {
    out = { error };
  }
  const used = d.prepare("select _nexus_step_budget_disarm() as used").get() as { used: number };
  return { ...out, spent: used.used > stepBudget };
}

function apply(entries: readonly ApplyEntry[]): ApplyResult[] {
  // The entries of this batch known to spend the budget in a statement that writes.
  const spent = new Map<number, string>();
  for (;;) {
    try {
      return applyOnce(entries, spent);
    } catch (err) {
      if (!(err instanceof BudgetRollback) || spent.has(err.index)) throw err;
      spent.set(err.index, err.message);
    }
  }
}

const FIND_RECORD =
  "select id, hash, ok, data, error, entry_index, kept_from_ms from _nexus_requests where id = ?";

/** The stored request record of `id`, if any. */
function readRecord(find: Database.Statement, id: string): RequestRecord | undefined {
  const row = find.get(id) as
    | {
        id: string;
        hash: string;
        ok: number;
        data: Buffer | null;
        error: string | null;
        entry_index: number;
        kept_from_ms: number;
      }
    | undefined;
  if (row === undefined) return undefined;
  return {
    id: row.id,
    hash: row.hash,
    result:
      row.ok === 1
        ? { ok: true, data: new Uint8Array(row.data ?? new Uint8Array(0)) }
        : { ok: false, error: row.error ?? "" },
    index: row.entry_index,
    keptFromMs: row.kept_from_ms,
  };
}

function applyOnce(
  entries: readonly ApplyEntry[],
  spent: ReadonlyMap<number, string>,
): ApplyResult[] {
  const d = need();
  const setMeta = d.prepare(
    "insert into _nexus_meta (k, v) values (?, ?) on conflict(k) do update set v = excluded.v",
  );
  const resetRowid = d.prepare("insert or replace into temp._nexus_rowid (rowid, x) values (0, 0)");
  const findRecord = d.prepare(FIND_RECORD);
  const putRecord = d.prepare(
    "insert or replace into _nexus_requests (id, hash, ok, data, error, entry_index, kept_from_ms) " +
      "values (?, ?, ?, ?, ?, ?, ?)",
  );
  const purgeRecords = d.prepare(
    "delete from _nexus_requests where rowid in " +
      "(select rowid from _nexus_requests where kept_from_ms < ? limit ?)",
  );
  const results: ApplyResult[] = [];
  const tx = d.transaction(() => {
    let applied = getMeta(d);
    const start = applied;
    for (const e of entries) {
      if (e.index <= applied.index) {
        results.push({ ok: true, data: new Uint8Array(0) });
        continue;
      }
      const key = e.command === undefined ? undefined : e.request;
      if (key !== undefined) {
        const d0 = decide(e, key, readRecord(findRecord, key.id), requestWindowMs);
        if ("result" in d0) {
          results.push(d0.result);
          applied = { index: e.index, term: e.term };
          continue;
        }
      }
      const known = spent.get(e.index);
      if (known !== undefined) {
        results.push({ ok: false, error: known });
      } else if (e.command !== undefined) {
        const sql = new TextDecoder().decode(e.command.data);
        current = { timestampMs: e.timestampMs, rand: mulberry32(e.seed % 0x100000000) };
        d.exec("savepoint nexus_entry");
        try {
          checkStatement(sql);
          const stmt = d.prepare(sql);
          const p = params(e.command.args["params"]);
          if (!stmt.reader) resetRowid.run();
          const run = withBudget(d, () => {
            if (!stmt.reader) return runStatement(stmt, p);
            if (Array.isArray(p)) stmt.all(...p);
            else stmt.all(p);
            return undefined;
          });
          if (run.spent) {
            // A statement that writes: SQLite has rolled the whole transaction back.
            if (!d.inTransaction) throw new BudgetRollback(e.index, budgetMessage());
            throw new StatementError(budgetMessage());
          }
          if (run.error !== undefined) throw run.error;
          d.exec("release nexus_entry");
          results.push({
            ok: true,
            data: new TextEncoder().encode(
              JSON.stringify({
                rowsAffected: run.value?.changes ?? 0,
                lastInsertId: run.value === undefined ? 0 : Number(run.value.lastInsertRowid),
              }),
            ),
          });
        } catch (err) {
          if (err instanceof BudgetRollback) throw err;
          d.exec("rollback to nexus_entry");
          d.exec("release nexus_entry");
          results.push({ ok: false, error: (err as Error).message });
        } finally {
          current = undefined;
        }
      } else {
        results.push({ ok: true, data: new Uint8Array(0) });
      }
      if (key !== undefined) {
        const r = recordOf(e, key, results[results.length - 1]!);
        putRecord.run(
          r.id,
          r.hash,
          r.result.ok ? 1 : 0,
          r.result.ok ? Buffer.from(r.result.data) : null,
          r.result.ok ? null : r.result.error,
          r.index,
          r.keptFromMs,
        );
      }
      applied = { index: e.index, term: e.term };
    }
    const last = entries.at(-1);
    if (last !== undefined && last.index > start.index) {
      purgeRecords.run(purgeBefore(last.timestampMs, requestWindowMs), REQUEST_PURGE_BATCH);
    }
    setMeta.run("applied_index", applied.index);
    setMeta.run("applied_term", applied.term);
  });
  tx.immediate();
  return results;
}

async function handle(req: WorkerRequest): Promise<WorkerResult> {
  switch (req.op) {
    case "open":
      return open(req.path, req.stepBudget, req.requestWindowMs);
    case "apply":
      return apply(req.entries);
    case "settings": {
      const d = need();
      return {
        synchronous: d.pragma("synchronous", { simple: true }) as number,
        queryOnly: d.pragma("query_only", { simple: true }) as number,
        journalMode: d.pragma("journal_mode", { simple: true }) as string,
      };
    }
    case "lastApplied":
      return getMeta(need());
    case "requestRecord":
      return readRecord(need().prepare(FIND_RECORD), req.requestId) ?? null;
    case "backup": {
      const d = need();
      const position = getMeta(d);
      await d.backup(req.file);
      return position;
    }
    case "restore": {
      const moved = req.from.index !== req.position.index || req.from.term !== req.position.term;
      const check = openSqliteDatabase(req.file, { readonly: !moved, fileMustExist: true });
      try {
        const pos = getMeta(check);
        if (pos.index !== req.from.index || pos.term !== req.from.term) {
          throw new StatementError(
            `the backup is at ${pos.index}/${pos.term}, expected ${req.from.index}/${req.from.term}`,
          );
        }
        if (moved) {
          // The backup's state becomes the state at `position`: recorded in the file before it
          // replaces the database (one rename), so both change together.
          const setMeta = check.prepare(
            "insert into _nexus_meta (k, v) values (?, ?) on conflict(k) do update set v = excluded.v",
          );
          check.transaction(() => {
            setMeta.run("applied_index", req.position.index);
            setMeta.run("applied_term", req.position.term);
          })();
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
      return open(dbPath, stepBudget, requestWindowMs);
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
        code:
          err instanceof ConfigError
            ? "BAD_CONFIG"
            : statement
              ? "STORE_ERROR"
              : "STORE_UNAVAILABLE",
        message: (err as Error).message,
      };
    }
    parentPort!.postMessage(res);
  });
});
