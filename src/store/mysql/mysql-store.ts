/**
 * MySqlStore: replication onto MySQL or MariaDB (the original's mysql_repl), on mysql2.
 *
 * Saving (`apply`): the command's data is one SQL statement (UTF-8); `args.params` optionally a
 * JSON array of values for its `?` placeholders (strings, numbers, booleans, null, or
 * `{"base64": "..."}` for binary). The result is `{"rowsAffected": n, "lastInsertId": m}`.
 *
 * - Exactly once. A batch runs in one transaction on one dedicated connection, each DML entry
 *   behind `SAVEPOINT nexus_entry` (apply-dml.ts), and the batch's last index is written to
 *   `_nexus_applied` in the same transaction (batch-transaction.ts). A statement error (bad SQL, a
 *   missing column, a duplicate key) rolls back to the savepoint and is that entry's result, the
 *   same on every replica. Conditions of the server (connection lost, deadlock, lock wait timeout,
 *   disk full, access denied: server-errors.ts) are not results: the batch rolls back and
 *   StoreUnavailableError is thrown; the next call reconnects.
 * - DDL (CREATE/ALTER/DROP/RENAME/TRUNCATE) commits implicitly, so a DDL entry runs on its own
 *   under a crash protocol that keeps it exactly once (ddl-protocol.ts).
 * - Determinism: every connection pins its session, every entry sets the leader's time and its
 *   RAND() seeds (determinism.ts); statements whose effect depends on the replica are refused as
 *   the entry's result without running (statement-classifier.ts).
 * - Replicas must run the same server version and configuration (character set and collation
 *   defaults of the database, lower_case_table_names): the digest compares their states.
 *
 * Reading (`load`): one read-only statement (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN, VALUES, TABLE)
 * on a small pool of `SET SESSION TRANSACTION READ ONLY` connections. Rows are a JSON array of
 * objects: integers as numbers (as strings beyond 2^53), DECIMAL as strings, dates as strings
 * (UTC), binary as `{"base64": "..."}`, NULL as null.
 *
 * Backup and digest read a consistent snapshot (snapshot.ts) begun while no batch is applying;
 * the backup format is in backup.ts, the digest in digest.ts, restore in restore.ts.
 * DESIGN.md beside this file says how the pieces fit.
 */
import {
  DEFAULT_REQUEST_WINDOW_MS,
  REQUEST_PURGE_BATCH,
  decide,
  purgeBefore,
  recordOf,
  validateRequestWindow,
} from "../request-records.js";
import { purgeRequests, readRequest, writeRequest } from "./request-table.js";
import type { RequestRecord } from "../request-records.js";
import { isIP } from "node:net";
import mysql from "mysql2";
import type { Connection as CoreConnection, ConnectionOptions, Pool as CorePool } from "mysql2";
import type { Connection, Pool, RowDataPacket } from "mysql2/promise";
import { NexusError, StoreError, StoreUnavailableError } from "../../errors/index.js";
import type {
  AppliedPosition,
  ApplyEntry,
  ApplyResult,
  Store,
  StoreBackup,
  StoreCommand,
  PendingDigest,
} from "../store.js";
import { pendingDigest } from "../store.js";
import { applyDml } from "./apply-dml.js";
import { backupLines } from "./backup.js";
import { BatchTransaction } from "./batch-transaction.js";
import { DdlProtocol } from "./ddl-protocol.js";
import type { MySqlStoreFaults } from "./ddl-protocol.js";
import { RESTORE_SQL_MODE, sessionSql } from "./determinism.js";
import { digestSnapshot } from "./digest.js";
import { parseMySqlDsn } from "./dsn.js";
import type { MySqlDsn } from "./dsn.js";
import { ensureNexusTables, quoteId, readPosition } from "./nexus-tables.js";
import { prepareLoad, prepareSave } from "./prepare.js";
import { dropRestoreLeftovers, restoreBackup } from "./restore.js";
import { isStatementError, messageOf } from "./server-errors.js";
import type { MySqlError } from "./server-errors.js";
import { beginSnapshot, setUpSnapshotSession } from "./snapshot.js";
import type { Snapshot } from "./snapshot.js";
import { isTlsFailure, socketNamed, sslOptions } from "./tls.js";
import type { MySqlTlsOptions } from "./tls.js";
import { jsonValue } from "./value-conversion.js";

/** Options of MySqlStore. */
export interface MySqlStoreOptions {
  /**
   * `user:pass@tcp(host:port)/db?...` (the original's form) or `mysql://user:pass@host:port/db`;
   * a `tls=true` (or `tls=skip-verify`) parameter turns TLS on.
   */
  readonly url: string;
  /** The password, overriding the one in `url` (which then need not hold one). */
  readonly password?: string;
  /**
   * TLS for every connection; given, TLS is on (verifying the server unless `verifyServer` is
   * false). Default: as the `tls` parameter of `url` says (no TLS without one).
   */
  readonly tls?: MySqlTlsOptions;
  /** Milliseconds to wait for a connection. Default 5000. */
  readonly connectTimeoutMs?: number;
  /**
   * Seconds a statement of an entry may wait for a table lock (`lock_wait_timeout`), e.g. a DDL
   * behind a running backup; then the batch fails as unavailable and is retried. Default 30.
   */
  readonly lockWaitTimeoutSec?: number;
  /** Connections for loads. Default 4. */
  readonly loadConnections?: number;
  /**
   * How long request ids are remembered, in ms of the entries' (leaders') timestamps
   * (src/store/request-records.ts). Must be the same on every node. Default 10 minutes.
   */
  readonly requestWindowMs?: number;
  /** For tests only. */
  readonly faults?: MySqlStoreFaults;
}

const EMPTY = new Uint8Array(0);

/** A Store on one MySQL or MariaDB database. */
export class MySqlStore implements Store {
  readonly kind = "mysql";
  /** Where it connects (parsed from `url`; the password is kept apart, never shown). */
  readonly dsn: Omit<MySqlDsn, "password">;
  readonly #password: string;
  readonly #ssl: ConnectionOptions["ssl"];
  private readonly connectTimeoutMs: number;
  private readonly lockWaitTimeoutSec: number;
  private readonly loadConnections: number;
  private readonly ddl: DdlProtocol;
  /** How long request ids are remembered, in ms. */
  readonly requestWindowMs: number;
  /** The connection that applies (and bookkeeps); replaced after a failure. */
  private conn: Connection | undefined;
  private pool: Pool | undefined;
  /** Serializes apply, lastApplied and the start of snapshots. */
  private lock: Promise<void> = Promise.resolve();
  private closed = false;
  /** Connections of running backups and digests, ended by close(). */
  private readonly readers = new Set<CoreConnection>();

  constructor(opts: MySqlStoreOptions) {
    const { password, ...dsn } = parseMySqlDsn(opts.url);
    this.dsn = dsn;
    this.#password = opts.password ?? password;
    this.#ssl = sslOptions(dsn.tls, opts.tls);
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 5000;
    this.lockWaitTimeoutSec = opts.lockWaitTimeoutSec ?? 30;
    this.loadConnections = opts.loadConnections ?? 4;
    this.ddl = new DdlProtocol(this.dsn.database, opts.faults);
    this.requestWindowMs = validateRequestWindow(opts.requestWindowMs ?? DEFAULT_REQUEST_WINDOW_MS);
  }

  // -------------------------------------------------------------------------------------------
  // connections

  private where(): string {
    return `MySQL at ${this.dsn.host}:${this.dsn.port} (database ${this.dsn.database})`;
  }

  private unavailable(err: unknown): StoreUnavailableError {
    if (err instanceof StoreUnavailableError) return err;
    return new StoreUnavailableError(
      `${this.where()} is unavailable: ${messageOf(err)}; Nexus retries — check that the server is running and reachable`,
      { cause: err },
    );
  }

  /** Errors that are not statement errors: a NexusError as is, anything else as unavailable. */
  private failure(err: unknown): NexusError {
    return err instanceof NexusError ? err : this.unavailable(err);
  }

  private checkOpen(): void {
    if (this.closed) {
      throw new StoreUnavailableError("the MySQL store is closed; open() it before using it");
    }
  }

  private options(extra: Partial<ConnectionOptions> = {}): ConnectionOptions {
    return {
      host: this.dsn.host,
      port: this.dsn.port,
      user: this.dsn.user,
      password: this.#password,
      ...(this.#ssl === undefined ? {} : { ssl: this.#ssl }),
      ...(this.#ssl !== undefined && isIP(this.dsn.host) !== 0 ? { stream: socketNamed } : {}),
      database: this.dsn.database,
      connectTimeout: this.connectTimeoutMs,
      multipleStatements: false,
      supportBigNumbers: true,
      bigNumberStrings: true,
      dateStrings: true,
      decimalNumbers: false,
      jsonStrings: true,
      charset: "UTF8MB4_UNICODE_CI",
      timezone: "Z",
      ...extra,
    };
  }

  private connectError(err: unknown): NexusError {
    const e = err as MySqlError;
    if (e.errno === 1049) {
      return new NexusError(
        "BAD_CONFIG",
        `database "${this.dsn.database}" does not exist on ${this.dsn.host}:${this.dsn.port}; create it first (CREATE DATABASE ${quoteId(this.dsn.database)})`,
        { cause: err },
      );
    }
    if (e.errno === 1045 || e.errno === 1044) {
      return new NexusError(
        "BAD_CONFIG",
        `${this.where()} refused the login: ${messageOf(err)}; check the user and the password (given in the connection string, NEXUS_MYSQL_PASSWORD or a password file)${this.#ssl === undefined ? "; a user that requires TLS needs the TLS options" : ""}`,
        { cause: err },
      );
    }
    if (this.#ssl !== undefined && isTlsFailure(e)) {
      return new NexusError(
        "BAD_CONFIG",
        `the TLS connection to ${this.where()} failed: ${e.message}; check that the server has TLS on, that its certificate is signed by the CA given (-mysqlTlsCa) and names ${this.dsn.host}`,
        { cause: err },
      );
    }
    return this.unavailable(err);
  }

  /** A new core connection with the pinned session. */
  private async connectCore(
    extra: Partial<ConnectionOptions> = {},
    sqlMode?: string,
  ): Promise<CoreConnection> {
    const core = mysql.createConnection(this.options(extra));
    core.on("error", () => undefined);
    try {
      await core.promise().query(sessionSql(this.lockWaitTimeoutSec, sqlMode));
      return core;
    } catch (err) {
      core.destroy();
      throw this.connectError(err);
    }
  }

  private async applyConn(): Promise<Connection> {
    this.checkOpen();
    if (this.conn !== undefined) return this.conn;
    const core = await this.connectCore();
    const c = core.promise();
    const forget = (): void => {
      if (this.conn === c) this.conn = undefined;
    };
    core.on("error", forget);
    core.on("end", forget);
    this.conn = c;
    return c;
  }

  private drop(c: Connection): void {
    c.destroy();
    if (this.conn === c) this.conn = undefined;
  }

  /** Runs f alone (no apply runs meanwhile); its failure does not block what comes next. */
  private serialized<T>(f: () => Promise<T>): Promise<T> {
    const run = this.lock.then(f);
    this.lock = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /** serialized() with the apply connection; a failure other than a NexusError drops it. */
  private exclusive<T>(f: (c: Connection) => Promise<T>): Promise<T> {
    return this.serialized(async () => {
      const c = await this.applyConn();
      try {
        return await f(c);
      } catch (err) {
        if (!(err instanceof NexusError) || err.code === "STORE_UNAVAILABLE") this.drop(c);
        throw this.failure(err);
      }
    });
  }

  // -------------------------------------------------------------------------------------------
  // lifecycle

  /** Connects, creates Nexus's tables if missing, drops leftovers of an interrupted restore. */
  async open(): Promise<AppliedPosition> {
    this.closed = false;
    return this.exclusive(async (c) => {
      await ensureNexusTables(c);
      await dropRestoreLeftovers(c, this.dsn.database);
      return readPosition(c);
    });
  }

  /** Ends every connection. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    await this.lock;
    const c = this.conn;
    this.conn = undefined;
    if (c !== undefined) await c.end().catch(() => c.destroy());
    const pool = this.pool;
    this.pool = undefined;
    if (pool !== undefined) await pool.end().catch(() => undefined);
    for (const r of this.readers) r.destroy();
    this.readers.clear();
  }

  /** The position recorded in `_nexus_applied` (read from the server, never cached). */
  lastApplied(): Promise<AppliedPosition> {
    return this.exclusive((c) => readPosition(c));
  }

  // -------------------------------------------------------------------------------------------
  // apply

  /**
   * Applies a batch in one transaction, DML entries behind a savepoint each (apply-dml.ts), DDL
   * entries on their own under the crash protocol (ddl-protocol.ts); see the file's comment.
   * Entries at or below the recorded position are skipped (their result is empty).
   */
  /** The request record of `id`, if any (RequestRecordSource). */
  requestRecord(id: string): Promise<RequestRecord | undefined> {
    return this.exclusive((c) => readRequest(c, id));
  }

  apply(entries: readonly ApplyEntry[]): Promise<ApplyResult[]> {
    return this.exclusive(async (c) => {
      const tx = new BatchTransaction(c, await readPosition(c));
      const results: ApplyResult[] = [];
      try {
        for (const e of entries) {
          if (e.index <= tx.applied.index) {
            results.push({ ok: true, data: EMPTY });
            continue;
          }
          const pos = { index: e.index, term: e.term };
          if (e.command === undefined) {
            results.push({ ok: true, data: EMPTY });
            tx.advance(pos);
            continue;
          }
          const key = e.request;
          let record: ((r: ApplyResult) => Promise<void>) | undefined;
          if (key !== undefined) {
            await tx.begin();
            const d = decide(e, key, await readRequest(c, key.id), this.requestWindowMs);
            if ("result" in d) {
              results.push(d.result);
              tx.advance(pos);
              continue;
            }
            record = (r) => writeRequest(c, recordOf(e, key, r));
          }
          const save = prepareSave(e.command);
          if ("refusal" in save) {
            const refused: ApplyResult = { ok: false, error: save.refusal };
            await record?.(refused);
            results.push(refused);
            tx.advance(pos);
            continue;
          }
          if (save.kind === "dml") {
            const r = await applyDml(tx, e, save);
            await record?.(r);
            results.push(r);
          } else {
            results.push(await this.ddl.apply(tx, e, save, record));
          }
        }
        const last = entries.at(-1);
        if (last !== undefined && last.index > tx.start.index) {
          await tx.begin();
          const before = purgeBefore(last.timestampMs, this.requestWindowMs);
          await purgeRequests(c, before, REQUEST_PURGE_BATCH);
        }
        await tx.commit();
        return results;
      } catch (err) {
        await tx.rollback();
        throw this.failure(err);
      }
    });
  }

  // -------------------------------------------------------------------------------------------
  // load

  private loadPool(): Pool {
    if (this.pool !== undefined) return this.pool;
    const core: CorePool = mysql.createPool({
      ...this.options({ bigNumberStrings: false }),
      connectionLimit: this.loadConnections,
      maxIdle: this.loadConnections,
      idleTimeout: 60_000,
    });
    const session = sessionSql(this.lockWaitTimeoutSec);
    core.on("connection", (conn) => {
      conn.on("error", () => undefined);
      // Queued before any load on this connection.
      conn.query(session, () => undefined);
      conn.query("SET SESSION TRANSACTION READ ONLY", () => undefined);
    });
    this.pool = core.promise();
    return this.pool;
  }

  /** Runs one read; rows as a JSON array of objects. Throws StoreError for a bad query. */
  async load(query: StoreCommand): Promise<Uint8Array> {
    this.checkOpen();
    const sql = prepareLoad(query);
    for (let attempt = 1; ; attempt++) {
      try {
        const [rows] = await this.loadPool().query<RowDataPacket[]>(sql);
        const out = Array.isArray(rows)
          ? rows.map((r) =>
              Object.fromEntries(Object.entries(r).map(([k, v]) => [k, jsonValue(v)])),
            )
          : [];
        return new TextEncoder().encode(JSON.stringify(out));
      } catch (err) {
        if (isStatementError(err)) throw new StoreError(messageOf(err), { cause: err });
        if ((err as MySqlError).errno === 1792) {
          throw new StoreError("load runs read-only; send writes with save", { cause: err });
        }
        // A pooled connection that died with the server: a read is safe to retry once.
        if (attempt < 2) continue;
        throw this.failure(err);
      }
    }
  }

  // -------------------------------------------------------------------------------------------
  // snapshots: backup, digest, restore

  /**
   * A read-only consistent snapshot on a new connection, begun while no batch applies: its
   * position, its tables (their metadata locked until the snapshot ends), their definitions.
   */
  private async snapshot(): Promise<Snapshot> {
    this.checkOpen();
    // The connection is made at once, while this snapshot already holds its place in line: an
    // apply called after backup() or digest() waits until the snapshot is begun, so the snapshot
    // is of the position at the call (or earlier: applies already under way come first).
    const connecting = (async () => {
      const core = await this.connectCore({ bigNumberStrings: true });
      this.readers.add(core);
      try {
        if (this.closed) throw new StoreUnavailableError("the MySQL store was closed");
        await setUpSnapshotSession(core.promise());
        return core;
      } catch (err) {
        this.readers.delete(core);
        core.destroy();
        throw err;
      }
    })();
    connecting.catch(() => undefined);
    let core: CoreConnection | undefined;
    try {
      return await this.serialized(async () => {
        core = await connecting;
        const conn = core.promise();
        const { position, tables } = await beginSnapshot(conn, this.dsn.database);
        const c = core;
        return { core: c, conn, position, tables, isLive: () => this.readers.has(c) };
      });
    } catch (err) {
      const c = core ?? (await connecting.catch(() => undefined));
      if (c !== undefined) {
        this.readers.delete(c);
        c.destroy();
      }
      throw this.failure(err);
    }
  }

  private endSnapshot(s: Snapshot): void {
    this.readers.delete(s.core);
    s.core.destroy();
  }

  /**
   * A consistent copy at the current applied position, streamed in the format of backup.ts. A
   * DDL entry on a table being read waits for the backup to end (up to `lockWaitTimeoutSec`).
   */
  async backup(): Promise<StoreBackup> {
    const s = await this.snapshot();
    return { position: s.position, stream: this.backupStream(s) };
  }

  private async *backupStream(s: Snapshot): AsyncGenerator<Uint8Array> {
    try {
      yield* backupLines(s);
    } catch (err) {
      throw this.failure(err);
    } finally {
      this.endSnapshot(s);
    }
  }

  /**
   * Pins a snapshot and resolves; the digest (digest.ts) is then computed on the snapshot's own
   * connection while applying goes on. As for a backup, a DDL entry on a table being digested
   * waits for the digest to end (up to `lockWaitTimeoutSec`).
   */
  async digest(): Promise<PendingDigest> {
    const s = await this.snapshot();
    return pendingDigest(s.position, this.digestOf(s));
  }

  private async digestOf(s: Snapshot): Promise<string> {
    try {
      return await digestSnapshot(s);
    } catch (err) {
      const e = this.closed
        ? new StoreUnavailableError("the MySQL store was closed before the digest completed", {
            cause: err,
          })
        : this.failure(err);
      throw e instanceof StoreUnavailableError
        ? e
        : new StoreUnavailableError(`the MySQL digest failed: ${e.message}`, { cause: e });
    } finally {
      this.endSnapshot(s);
    }
  }

  /**
   * Loads a backup into a temporary database, checking it entirely, then swaps it in with one
   * RENAME TABLE (the data and `_nexus_applied` together); see restore.ts. On failure nothing
   * changes.
   */
  async restore(
    position: AppliedPosition,
    stream: AsyncIterable<Uint8Array>,
    from: AppliedPosition = position,
  ): Promise<void> {
    this.checkOpen();
    await restoreBackup(
      {
        database: this.dsn.database,
        connect: () => this.connectCore({}, RESTORE_SQL_MODE),
        exclusive: (f) => this.exclusive(f),
        unavailable: (err) => this.unavailable(err),
      },
      position,
      stream,
      from,
    );
  }
}
