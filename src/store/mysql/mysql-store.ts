/**
 * MySqlStore: replication onto MySQL or MariaDB, as the original's mysql_repl does, and better.
 *
 * - save: one SQL statement (args `params`: a JSON array of placeholder values), run in a
 *   transaction together with the update of the `_nexus_applied` table: exactly once across
 *   restarts. Result JSON `{"rowsAffected": n, "lastInsertId": m}`.
 * - DDL (CREATE, ALTER, DROP, RENAME, TRUNCATE) commits implicitly in MySQL: such an entry runs on
 *   its own, after what came before is committed, and its index is recorded right after it. A
 *   crash between the two re-runs the DDL at restart; since nothing after it was applied, that has
 *   the same effect (the re-run fails or does what it did), and the replicas stay identical.
 * - A statement error (bad SQL, a missing column) is rolled back to a savepoint and is the entry's
 *   result, the same on every replica. Errors of the server itself (connection lost, deadlock, lock
 *   wait timeout, disk full) are not results: StoreUnavailableError, and the batch is rolled back.
 * - Determinism, as MySQL's statement-based replication does it: each entry runs with
 *   `SET TIMESTAMP` = the leader's time (NOW(), CURRENT_TIMESTAMP defaults), `@@rand_seed1/2` from
 *   the entry's seed (RAND()), and time_zone UTC. UUID(), UUID_SHORT(), SYSDATE(),
 *   CONNECTION_ID() and similar are refused, as are transaction control and `_nexus_applied`.
 * - load: one read-only statement in a read-only transaction; rows as a JSON array of objects
 *   (binary values as `{"base64": "..."}`; DECIMAL and unsafe integers as strings).
 * - backup: the schema and rows of every table, streamed as JSON lines with a checksummed end
 *   record; restore: loaded into a temporary database, validated, then swapped in with one atomic
 *   RENAME TABLE. Applying waits while a backup or digest reads.
 */
import { createHash } from "node:crypto";
import { randomBytes } from "node:crypto";
import type { Readable } from "node:stream";
import mysql from "mysql2/promise";
import type { Connection, FieldPacket, ResultSetHeader, RowDataPacket } from "mysql2/promise";
import { NexusError, StoreError, StoreUnavailableError } from "../../errors/index.js";
import type {
  AppliedPosition,
  ApplyEntry,
  ApplyResult,
  Store,
  StoreBackup,
  StoreCommand,
  StoreDigest,
} from "../store.js";
import { parseMySqlDsn } from "./dsn.js";
import type { MySqlDsn } from "./dsn.js";

export interface MySqlStoreOptions {
  /** `user:pass@tcp(host:port)/db?...` (the original's form) or `mysql://user:pass@host:port/db`. */
  readonly url: string;
  /** Milliseconds to wait for a connection. Default 5000. */
  readonly connectTimeoutMs?: number;
}

const APPLIED = "_nexus_applied";
const DDL = /^\s*(create|alter|drop|rename|truncate)\b/i;
const REFUSED_FUNCTIONS =
  /\b(uuid|uuid_short|sysdate|connection_id|get_lock|release_lock|sleep|benchmark|last_insert_id|row_count|found_rows|user|current_user|session_user|system_user|database|schema|version)\s*\(/i;
const TX_CONTROL =
  /^\s*(begin|start\s+transaction|commit|rollback|savepoint|release\s+savepoint|lock\s+tables?|unlock\s+tables?|set\s+(session\s+|@@session\.|@@)?(autocommit|timestamp|rand_seed|time_zone|sql_log_bin)|xa\s|use\s|flush\b|kill\b|load\s+data|select\b.*\binto\s+(outfile|dumpfile))/is;
/** Server errors that are conditions of the server, not of the statement: retry, never a result. */
const TRANSIENT_ERRNO = new Set([
  1021, 1037, 1038, 1040, 1041, 1053, 1114, 1180, 1205, 1213, 1290, 2006, 2013,
]);

interface MySqlError {
  errno?: number;
  code?: string;
  sqlMessage?: string;
  message: string;
  fatal?: boolean;
}

/** A statement's own error (the same on every replica), as opposed to a server condition. */
function isStatementError(err: unknown): boolean {
  const e = err as MySqlError;
  return (
    typeof e.errno === "number" &&
    e.sqlMessage !== undefined &&
    e.fatal !== true &&
    !TRANSIENT_ERRNO.has(e.errno)
  );
}

function params(raw: string | undefined): unknown[] {
  if (raw === undefined || raw === "") return [];
  let p: unknown;
  try {
    p = JSON.parse(raw);
  } catch (err) {
    throw new StoreError(`params must be a JSON array: ${(err as Error).message}`);
  }
  if (!Array.isArray(p))
    throw new StoreError("params must be a JSON array of values for the ? placeholders");
  return p as unknown[];
}

/** Why a statement cannot be applied on every replica alike, or undefined. */
export function refusalOf(sql: string): string | undefined {
  if (sql.trim() === "") return "the statement is empty";
  if (new RegExp(`\\b${APPLIED}\\b`, "i").test(sql))
    return `${APPLIED} is Nexus's own table; it cannot be used`;
  if (TX_CONTROL.test(sql)) {
    return "transaction control, session settings and file access are managed by Nexus: send one statement per save";
  }
  const m = REFUSED_FUNCTIONS.exec(sql);
  if (m !== null) {
    return `${m[1]!.toUpperCase()}() gives different results on different replicas; compute the value in the client and pass it as a parameter`;
  }
  return undefined;
}

/** Row values as loads return them. */
function jsonValue(v: unknown): unknown {
  if (Buffer.isBuffer(v)) return { base64: v.toString("base64") };
  if (typeof v === "bigint") return v.toString();
  return v;
}

/** Backup/digest values: strings, or {b: base64} for binary, or null. */
type WireValue = string | { b: string } | null;

function wireValue(v: unknown): WireValue {
  if (v === null || v === undefined) return null;
  if (Buffer.isBuffer(v)) return { b: v.toString("base64") };
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "bigint" || typeof v === "boolean") return String(v);
  // JSON columns (MySQL 8) arrive parsed.
  return JSON.stringify(v);
}

export class MySqlStore implements Store {
  readonly kind = "mysql";
  readonly dsn: MySqlDsn;
  private readonly connectTimeoutMs: number;
  private conn: Connection | undefined;
  private lock: Promise<void> = Promise.resolve();

  constructor(opts: MySqlStoreOptions) {
    this.dsn = parseMySqlDsn(opts.url);
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 5000;
  }

  private where(): string {
    return `MySQL at ${this.dsn.host}:${this.dsn.port}/${this.dsn.database}`;
  }

  private unavailable(err: unknown): StoreUnavailableError {
    return new StoreUnavailableError(`${this.where()} is unavailable: ${(err as Error).message}`, {
      cause: err,
    });
  }

  /** A new connection in UTC, with the text protocol's values typed for JSON. */
  private async connect(database = this.dsn.database): Promise<Connection> {
    try {
      const c = await mysql.createConnection({
        host: this.dsn.host,
        port: this.dsn.port,
        user: this.dsn.user,
        password: this.dsn.password,
        database,
        connectTimeout: this.connectTimeoutMs,
        multipleStatements: false,
        supportBigNumbers: true,
        dateStrings: true,
        timezone: "Z",
        // Binary values (charset binary) come back as Buffers, the rest as strings or numbers.
      });
      c.on("error", () => undefined);
      await c.query("SET time_zone = '+00:00'");
      return c;
    } catch (err) {
      const e = err as MySqlError;
      if (e.errno === 1049) {
        throw new NexusError(
          "BAD_CONFIG",
          `database "${database}" does not exist on ${this.dsn.host}:${this.dsn.port}; create it first`,
        );
      }
      if (e.errno === 1045) throw new NexusError("BAD_CONFIG", `${this.where()}: ${e.message}`);
      throw this.unavailable(err);
    }
  }

  private async applyConn(): Promise<Connection> {
    if (this.conn !== undefined) return this.conn;
    this.conn = await this.connect();
    return this.conn;
  }

  private drop(c: Connection): void {
    c.destroy();
    if (this.conn === c) this.conn = undefined;
  }

  /** Runs f under the store's lock with the apply connection; server failures become unavailable. */
  private exclusive<T>(f: (c: Connection) => Promise<T>): Promise<T> {
    const run = this.lock.then(async () => {
      const c = await this.applyConn();
      try {
        return await f(c);
      } catch (err) {
        if (err instanceof NexusError) {
          if (err.code === "STORE_UNAVAILABLE") this.drop(c);
          throw err;
        }
        this.drop(c);
        throw this.unavailable(err);
      }
    });
    this.lock = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  async open(): Promise<AppliedPosition> {
    return this.exclusive(async (c) => {
      await c.query(
        `CREATE TABLE IF NOT EXISTS ${APPLIED} (id TINYINT PRIMARY KEY, applied_index BIGINT NOT NULL, applied_term BIGINT NOT NULL) ENGINE=InnoDB`,
      );
      await c.query(`INSERT IGNORE INTO ${APPLIED} VALUES (1, 0, 0)`);
      return this.position(c);
    });
  }

  private async position(c: Connection): Promise<AppliedPosition> {
    const [rows] = await c.query<RowDataPacket[]>(
      `SELECT applied_index, applied_term FROM ${APPLIED} WHERE id = 1`,
    );
    const r = rows[0];
    return { index: Number(r?.["applied_index"] ?? 0), term: Number(r?.["applied_term"] ?? 0) };
  }

  async close(): Promise<void> {
    await this.lock;
    const c = this.conn;
    this.conn = undefined;
    if (c !== undefined) await c.end().catch(() => c.destroy());
  }

  lastApplied(): Promise<AppliedPosition> {
    return this.exclusive((c) => this.position(c));
  }

  apply(entries: readonly ApplyEntry[]): Promise<ApplyResult[]> {
    return this.exclusive(async (c) => {
      const results: ApplyResult[] = [];
      let applied = await this.position(c);
      let inTx = false;
      let pending: AppliedPosition | undefined;
      const commit = async (): Promise<void> => {
        if (pending !== undefined) {
          if (!inTx) await c.query("START TRANSACTION");
          inTx = true;
          await c.query(`UPDATE ${APPLIED} SET applied_index = ?, applied_term = ? WHERE id = 1`, [
            pending.index,
            pending.term,
          ]);
        }
        if (inTx) await c.query("COMMIT");
        inTx = false;
        pending = undefined;
      };
      try {
        for (const e of entries) {
          if (e.index <= applied.index) {
            results.push({ ok: true, data: new Uint8Array(0) });
            continue;
          }
          const pos = { index: e.index, term: e.term };
          if (e.command === undefined) {
            results.push({ ok: true, data: new Uint8Array(0) });
            pending = pos;
            applied = pos;
            continue;
          }
          const sql = new TextDecoder().decode(e.command.data);
          let args: unknown[];
          let refusal = refusalOf(sql);
          try {
            args = params(e.command.args["params"]);
          } catch (err) {
            args = [];
            refusal ??= (err as Error).message;
          }
          if (refusal !== undefined) {
            results.push({ ok: false, error: refusal });
            pending = pos;
            applied = pos;
            continue;
          }
          await c.query(
            `SET TIMESTAMP = ${(e.timestampMs / 1000).toFixed(3)}, @@rand_seed1 = ${e.seed % 1073741823}, @@rand_seed2 = ${Math.floor(e.seed / 1073741823) % 1073741823}`,
          );
          if (DDL.test(sql)) {
            // Implicit commit: first what came before, then the DDL alone, then its index.
            await commit();
            let result: ApplyResult;
            try {
              const [h] = await c.query<ResultSetHeader>(sql, args);
              result = ok(h);
            } catch (err) {
              if (!isStatementError(err)) throw err;
              result = {
                ok: false,
                error: (err as MySqlError).sqlMessage ?? (err as Error).message,
              };
            }
            pending = pos;
            applied = pos;
            await commit();
            results.push(result);
            continue;
          }
          if (!inTx) {
            await c.query("START TRANSACTION");
            inTx = true;
          }
          await c.query("SAVEPOINT nexus_entry");
          try {
            const [h] = await c.query<ResultSetHeader>(sql, args);
            results.push(ok(h));
          } catch (err) {
            if (!isStatementError(err)) throw err;
            await c.query("ROLLBACK TO SAVEPOINT nexus_entry");
            results.push({
              ok: false,
              error: (err as MySqlError).sqlMessage ?? (err as Error).message,
            });
          }
          pending = pos;
          applied = pos;
        }
        await commit();
        return results;
      } catch (err) {
        if (inTx) await c.query("ROLLBACK").catch(() => undefined);
        throw err instanceof NexusError ? err : this.unavailable(err);
      }
    });
  }

  async load(query: StoreCommand): Promise<Uint8Array> {
    const sql = new TextDecoder().decode(query.data);
    if (sql.trim() === "") throw new StoreError("the statement is empty");
    const args = params(query.args["params"]);
    const c = await this.connect();
    try {
      await c.query("START TRANSACTION READ ONLY");
      const [rows] = await c.query(sql, args);
      await c.query("COMMIT");
      const out = Array.isArray(rows)
        ? (rows as RowDataPacket[]).map((r) =>
            Object.fromEntries(Object.entries(r).map(([k, v]) => [k, jsonValue(v)])),
          )
        : [];
      return new Uint8Array(Buffer.from(JSON.stringify(out)));
    } catch (err) {
      if (isStatementError(err))
        throw new StoreError((err as MySqlError).sqlMessage ?? (err as Error).message, {
          cause: err,
        });
      throw err instanceof NexusError ? err : this.unavailable(err);
    } finally {
      c.destroy();
    }
  }

  /** Holds the store's lock (no apply) until release() is called. */
  private hold(): Promise<{ c: Connection; release: () => void }> {
    let release: () => void = () => {};
    const held = new Promise<void>((r) => (release = r));
    return new Promise((resolve, reject) => {
      void this.exclusive(async (c) => {
        resolve({ c, release });
        await held;
      }).catch(reject);
    });
  }

  private async userTables(c: Connection, schema = this.dsn.database): Promise<string[]> {
    const [rows] = await c.query<RowDataPacket[]>(
      "SELECT table_name AS n FROM information_schema.tables WHERE table_schema = ? AND table_type = 'BASE TABLE' AND table_name <> ? ORDER BY table_name",
      [schema, APPLIED],
    );
    return rows.map((r) => String(r["n"]));
  }

  /** Streams a table's rows as wire values, in primary-key order when there is one. */
  private async *rowsOf(c: Connection, table: string): AsyncGenerator<WireValue[]> {
    const [keys] = await c.query<RowDataPacket[]>(
      "SELECT column_name AS n FROM information_schema.key_column_usage WHERE table_schema = ? AND table_name = ? AND constraint_name = 'PRIMARY' ORDER BY ordinal_position",
      [this.dsn.database, table],
    );
    const order = keys.length > 0 ? keys.map((k) => mysql.escapeId(String(k["n"]))).join(", ") : "";
    const sql = `SELECT * FROM ${mysql.escapeId(table)}${order === "" ? "" : ` ORDER BY ${order}`}`;
    const raw = (
      c as unknown as { connection: { query(o: object): { stream(o: object): Readable } } }
    ).connection;
    const stream = raw.query({ sql, rowsAsArray: true }).stream({ highWaterMark: 256 });
    for await (const row of stream) yield (row as unknown[]).map(wireValue);
  }

  async backup(): Promise<StoreBackup> {
    const { c, release } = await this.hold();
    let position: AppliedPosition;
    let tables: string[];
    try {
      position = await this.position(c);
      tables = await this.userTables(c);
    } catch (err) {
      release();
      throw err instanceof NexusError ? err : this.unavailable(err);
    }
    const unavailable = (err: unknown): StoreUnavailableError => this.unavailable(err);
    const rowsOf = (t: string): AsyncGenerator<WireValue[]> => this.rowsOf(c, t);
    async function* stream(): AsyncGenerator<Uint8Array> {
      const hash = createHash("sha256");
      let rows = 0;
      const line = (o: unknown): Buffer => {
        const b = Buffer.from(`${JSON.stringify(o)}\n`);
        hash.update(b);
        return b;
      };
      try {
        yield line({ t: "nexus-mysql-backup", v: 1 });
        for (const t of tables) {
          const [created] = await c.query<RowDataPacket[]>(
            `SHOW CREATE TABLE ${mysql.escapeId(t)}`,
          );
          yield line({ t: "table", name: t, create: String(created[0]?.["Create Table"]) });
          let batch: WireValue[][] = [];
          for await (const r of rowsOf(t)) {
            batch.push(r);
            rows++;
            if (batch.length >= 500) {
              yield line({ t: "rows", rows: batch });
              batch = [];
            }
          }
          if (batch.length > 0) yield line({ t: "rows", rows: batch });
        }
        const end = { t: "end", tables: tables.length, rows, sha256: hash.digest("hex") };
        yield Buffer.from(`${JSON.stringify(end)}\n`);
      } catch (err) {
        throw err instanceof NexusError ? err : unavailable(err);
      } finally {
        release();
      }
    }
    return { position, stream: stream() };
  }

  async restore(position: AppliedPosition, stream: AsyncIterable<Uint8Array>): Promise<void> {
    const tmp = `${this.dsn.database}_nxr_${randomBytes(4).toString("hex")}`;
    const old = `${this.dsn.database}_nxo_${randomBytes(4).toString("hex")}`;
    const admin = await this.connect();
    try {
      await admin.query(`CREATE DATABASE ${mysql.escapeId(tmp)}`);
      await admin.query(`USE ${mysql.escapeId(tmp)}`);
      await admin.query("SET FOREIGN_KEY_CHECKS = 0");
      // 1. Load into the temporary database, validating as we go.
      const hash = createHash("sha256");
      let header = false;
      let ended = false;
      let rows = 0;
      const tables: string[] = [];
      let current: string | undefined;
      let rest = "";
      const handle = async (text: string): Promise<void> => {
        if (ended) throw new Error("data after the end record");
        let rec: {
          t?: string;
          name?: string;
          create?: string;
          rows?: WireValue[][];
          tables?: number;
          sha256?: string;
          v?: number;
        };
        try {
          rec = JSON.parse(text) as typeof rec;
        } catch {
          throw new Error("a record is not valid JSON");
        }
        if (rec.t === "end") {
          const said = rec.rows as unknown;
          if (rec.tables !== tables.length || said !== rows) {
            throw new Error(
              `the backup ends after ${tables.length} tables and ${rows} rows; its end record says ${String(rec.tables)} and ${String(said)}`,
            );
          }
          if (rec.sha256 !== hash.digest("hex"))
            throw new Error("the backup's checksum does not match");
          ended = true;
          return;
        }
        hash.update(`${text}\n`);
        if (!header) {
          if (rec.t !== "nexus-mysql-backup" || rec.v !== 1)
            throw new Error("not a Nexus MySQL backup");
          header = true;
        } else if (
          rec.t === "table" &&
          typeof rec.name === "string" &&
          typeof rec.create === "string"
        ) {
          await admin.query(rec.create);
          tables.push(rec.name);
          current = rec.name;
        } else if (rec.t === "rows" && Array.isArray(rec.rows) && current !== undefined) {
          const values = rec.rows.map((r) =>
            r.map((v) => (v !== null && typeof v === "object" ? Buffer.from(v.b, "base64") : v)),
          );
          await admin.query(`INSERT INTO ${mysql.escapeId(current)} VALUES ?`, [values]);
          rows += values.length;
        } else throw new Error(`unexpected record "${String(rec.t)}"`);
      };
      for await (const chunk of stream) {
        rest += Buffer.from(chunk).toString("utf8");
        let nl: number;
        while ((nl = rest.indexOf("\n")) >= 0) {
          const text = rest.slice(0, nl);
          rest = rest.slice(nl + 1);
          await handle(text);
        }
      }
      if (rest !== "") throw new Error("the backup ends in the middle of a record");
      if (!ended)
        throw new Error(`the backup is truncated after ${tables.length} tables and ${rows} rows`);

      // 2. Swap: mark nothing applied (a crash from here on restores again from the snapshot),
      // move the old tables out and the new ones in with one atomic RENAME, set the position.
      await this.exclusive(async (c) => {
        await c.query(`UPDATE ${APPLIED} SET applied_index = 0, applied_term = 0 WHERE id = 1`);
        const live = await this.userTables(c);
        await c.query(`CREATE DATABASE ${mysql.escapeId(old)}`);
        const db = mysql.escapeId(this.dsn.database);
        const moves = [
          ...live.map(
            (t) => `${db}.${mysql.escapeId(t)} TO ${mysql.escapeId(old)}.${mysql.escapeId(t)}`,
          ),
          ...tables.map(
            (t) => `${mysql.escapeId(tmp)}.${mysql.escapeId(t)} TO ${db}.${mysql.escapeId(t)}`,
          ),
        ];
        if (moves.length > 0) await c.query(`RENAME TABLE ${moves.join(", ")}`);
        await c.query(`UPDATE ${APPLIED} SET applied_index = ?, applied_term = ? WHERE id = 1`, [
          position.index,
          position.term,
        ]);
        await c.query(`DROP DATABASE ${mysql.escapeId(old)}`);
      });
    } catch (err) {
      if (err instanceof NexusError) throw err;
      if ((err as MySqlError).errno !== undefined && !isStatementError(err))
        throw this.unavailable(err);
      throw new NexusError("CORRUPTED", `the MySQL backup is invalid: ${(err as Error).message}`, {
        cause: err,
      });
    } finally {
      await admin.query(`DROP DATABASE IF EXISTS ${mysql.escapeId(tmp)}`).catch(() => undefined);
      admin.destroy();
    }
  }

  /** sha256 over every user table in name order: its name, columns and rows in key order. */
  async digest(): Promise<StoreDigest> {
    const { c, release } = await this.hold();
    try {
      const position = await this.position(c);
      const hash = createHash("sha256");
      for (const t of await this.userTables(c)) {
        const [cols] = await c.query<RowDataPacket[]>(
          "SELECT column_name AS n, column_type AS ty FROM information_schema.columns WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
          [this.dsn.database, t],
        );
        hash.update(
          `table\0${t}\0${cols.map((x) => `${String(x["n"])} ${String(x["ty"])}`).join(",")}\n`,
        );
        for await (const r of this.rowsOf(c, t)) hash.update(`${JSON.stringify(r)}\n`);
      }
      return { position, digest: hash.digest("hex") };
    } catch (err) {
      throw err instanceof NexusError ? err : this.unavailable(err);
    } finally {
      release();
    }
  }
}

function ok(h: ResultSetHeader | RowDataPacket[] | FieldPacket[] | unknown): ApplyResult {
  const r = h as Partial<ResultSetHeader>;
  const affected = typeof r.affectedRows === "number" ? r.affectedRows : 0;
  const id = typeof r.insertId === "number" || typeof r.insertId === "bigint" ? r.insertId : 0;
  return {
    ok: true,
    data: new Uint8Array(Buffer.from(`{"rowsAffected":${affected},"lastInsertId":${String(id)}}`)),
  };
}
