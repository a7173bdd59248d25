/**
 * SqliteStore: the embedded default store. SQLite through better-sqlite3, with every statement
 * run in a worker thread so that a slow query cannot delay heartbeats.
 *
 * - save: one SQL statement (args `params`: a JSON array or object of placeholder values);
 *   result JSON `{"rowsAffected": n, "lastInsertId": m}`. The applied index is written in the
 *   same transaction; a failing statement is rolled back to its savepoint and is the entry's
 *   error result (the same message on every replica).
 * - Step budget: each statement of a save may run at most `applyStepBudget` SQLite instructions
 *   (a deterministic count, the same on every replica); one that runs more is stopped, rolled
 *   back, and is its entry's error result everywhere (src/store/DESIGN.md).
 * - load: one read-only query; result: a JSON array of row objects (BLOBs as
 *   `{"base64": "..."}`, integers beyond 2^53 as strings). Loads run in workers of their own on
 *   read-only connections (sqlite-loader.ts), never on the connection that applies; they are
 *   refused before being prepared unless they read, and are capped in rows, bytes and time.
 * - Determinism: random() and randomblob() use the entry's seed; 'now' in datetime(), date(),
 *   time(), julianday(), strftime() and unixepoch() is the entry's timestamp.
 *   CURRENT_TIMESTAMP / CURRENT_DATE / CURRENT_TIME are refused with a clear error.
 * - backup: SQLite's online backup into a temporary file, streamed; restore: validated, then
 *   swapped in atomically.
 * - digest: pinned on a WAL snapshot of a second, read-only connection in a second worker thread
 *   and computed there (sqlite-digest.ts), so applying goes on during it.
 */
import { DEFAULT_REQUEST_WINDOW_MS, validateRequestWindow } from "../request-records.js";
import type { RequestRecord } from "../request-records.js";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, open, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { finished } from "node:stream/promises";
import type { Worker } from "node:worker_threads";
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
import type { ApplySettings, WorkerRequest, WorkerResponse, WorkerResult } from "./protocol.js";
import { STEP_BUDGET_BINDING, STEP_BUDGET_MISSING } from "./sqlite-binding.js";
import { SqliteDigester } from "./sqlite-digester.js";
import { SqliteLoader } from "./sqlite-loader.js";
import { spawnSqliteWorker } from "./spawn-worker.js";

/**
 * SQLite instructions a statement of a save may run, by default: about 3 s of work at the 60
 * million instructions a second measured on a 2-core machine (an INSERT ... SELECT of some 10
 * million short rows).
 */
export const DEFAULT_SQLITE_STEP_BUDGET = 200_000_000;
/** Rows a load may return, by default. */
export const DEFAULT_LOAD_MAX_ROWS = 1_000_000;
/** Bytes of JSON a load may return, by default (64 MiB). */
export const DEFAULT_LOAD_MAX_BYTES = 64 * 1024 * 1024;
/** Milliseconds a load may run, by default. */
export const DEFAULT_LOAD_TIMEOUT_MS = 30_000;

export interface SqliteStoreOptions {
  /** The database file; its folder is created if missing. */
  readonly path: string;
  /**
   * SQLite virtual-machine instructions one statement of a save may run; a statement that runs
   * more ends with an error, rolled back, on every replica alike. Must be the same on every
   * node (src/store/DESIGN.md says what happens otherwise). 0: no limit, which is unsafe: one
   * statement that never ends stops every replica. Default DEFAULT_SQLITE_STEP_BUDGET. Needs
   * the SQLite build of scripts/build-sqlite.mjs unless 0 (else open() refuses: BAD_CONFIG).
   */
  readonly applyStepBudget?: number;
  /** Rows a load may return (more: TOO_LARGE). Default DEFAULT_LOAD_MAX_ROWS. */
  readonly loadMaxRows?: number;
  /** Bytes of JSON a load may return (more: TOO_LARGE). Default DEFAULT_LOAD_MAX_BYTES. */
  readonly loadMaxBytes?: number;
  /** Milliseconds a load may run before it is stopped (TIMEOUT). Default DEFAULT_LOAD_TIMEOUT_MS. */
  readonly loadTimeoutMs?: number;
  /**
   * How long request ids are remembered, in ms of the entries' (leaders') timestamps
   * (src/store/request-records.ts). Must be the same on every node. Default 10 minutes.
   */
  readonly requestWindowMs?: number;
}

function nonNegativeInt(name: string, v: number | undefined, dflt: number, min: number): number {
  const n = v ?? dflt;
  if (!Number.isSafeInteger(n) || n < min) {
    throw new NexusError("BAD_CONFIG", `${name} must be an integer >= ${min}, got ${String(v)}`);
  }
  return n;
}

type Pending = { resolve: (r: WorkerResult) => void; reject: (e: Error) => void };

/** Distributes a request without its id (TypeScript cannot spread over a union). */
type Request = WorkerRequest extends infer R
  ? R extends { id: number }
    ? Omit<R, "id">
    : never
  : never;

export class SqliteStore implements Store {
  readonly kind = "sqlite";
  readonly path: string;
  private worker: Worker | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private tmpCounter = 0;
  private readonly digester = new SqliteDigester();
  private readonly loader: SqliteLoader;
  /** SQLite instructions a statement of a save may run (0: no limit). */
  readonly applyStepBudget: number;
  /** How long request ids are remembered, in ms. */
  readonly requestWindowMs: number;
  /** While a digest pins its snapshot, applies and restores wait (the snapshot comes first). */
  private pinning: Promise<unknown> | undefined;
  /** While a restore replaces the file, digests wait. */
  private restoring: Promise<unknown> | undefined;

  /** Throws BAD_CONFIG for an invalid option, or a step budget without the SQLite build for it. */
  constructor(opts: SqliteStoreOptions) {
    this.path = opts.path;
    this.requestWindowMs = validateRequestWindow(opts.requestWindowMs ?? DEFAULT_REQUEST_WINDOW_MS);
    this.applyStepBudget = nonNegativeInt(
      "applyStepBudget (-apply-step-budget)",
      opts.applyStepBudget,
      DEFAULT_SQLITE_STEP_BUDGET,
      0,
    );
    if (this.applyStepBudget > 0 && STEP_BUDGET_BINDING === undefined) {
      throw new NexusError("BAD_CONFIG", STEP_BUDGET_MISSING);
    }
    this.loader = new SqliteLoader(this.path, {
      maxRows: nonNegativeInt(
        "loadMaxRows (-load-max-rows)",
        opts.loadMaxRows,
        DEFAULT_LOAD_MAX_ROWS,
        1,
      ),
      maxBytes: nonNegativeInt(
        "loadMaxBytes (-load-max-bytes)",
        opts.loadMaxBytes,
        DEFAULT_LOAD_MAX_BYTES,
        2,
      ),
      timeoutMs: nonNegativeInt(
        "loadTimeoutMs (-load-timeout-ms)",
        opts.loadTimeoutMs,
        DEFAULT_LOAD_TIMEOUT_MS,
        1,
      ),
    });
  }

  private spawn(): Worker {
    const w = spawnSqliteWorker("sqlite-worker");
    w.on("message", (res: WorkerResponse) => {
      const p = this.pending.get(res.id);
      if (p === undefined) return;
      this.pending.delete(res.id);
      if (res.ok) p.resolve(res.result);
      else if (res.code === "STORE_ERROR") p.reject(new StoreError(res.message));
      else if (res.code === "BAD_CONFIG") p.reject(new NexusError("BAD_CONFIG", res.message));
      else p.reject(new StoreUnavailableError(`SQLite failed: ${res.message}`));
    });
    const fail = (why: string): void => {
      if (this.worker === w) this.worker = undefined;
      for (const p of this.pending.values())
        p.reject(new StoreUnavailableError(`SQLite worker ${why}`));
      this.pending.clear();
    };
    w.on("error", (e) => fail(`failed: ${e.message}`));
    w.on("exit", (code) => fail(`exited (code ${code})`));
    return w;
  }

  private call(req: Request): Promise<WorkerResult> {
    const w = this.worker;
    if (w === undefined)
      return Promise.reject(new StoreUnavailableError("the SQLite store is not open"));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      w.postMessage({ ...req, id });
    });
  }

  async open(): Promise<AppliedPosition> {
    if (this.worker === undefined) {
      await mkdir(dirname(this.path), { recursive: true });
      this.worker = this.spawn();
    }
    const position = (await this.call({
      op: "open",
      path: this.path,
      stepBudget: this.applyStepBudget,
      requestWindowMs: this.requestWindowMs,
    })) as AppliedPosition;
    this.digester.warm();
    return position;
  }

  async close(): Promise<void> {
    await this.loader.stop("the SQLite store was closed during the load");
    await this.digester.close();
    const w = this.worker;
    if (w === undefined) return;
    await this.call({ op: "close" }).catch(() => undefined);
    this.worker = undefined;
    await w.terminate();
  }

  async lastApplied(): Promise<AppliedPosition> {
    return (await this.call({ op: "lastApplied" })) as AppliedPosition;
  }

  /** The request record of `id`, if any (RequestRecordSource). */
  async requestRecord(id: string): Promise<RequestRecord | undefined> {
    const r = (await this.call({ op: "requestRecord", requestId: id })) as RequestRecord | null;
    return r ?? undefined;
  }

  async apply(entries: readonly ApplyEntry[]): Promise<ApplyResult[]> {
    if (this.pinning !== undefined) await this.pinning.catch(() => undefined);
    return (await this.call({ op: "apply", entries })) as ApplyResult[];
  }

  /**
   * A read-only query on a load worker's own connection. Throws StoreError (refused or failed),
   * NexusError TOO_LARGE (over -load-max-rows or -load-max-bytes) or TIMEOUT (over
   * -load-timeout-ms), StoreUnavailableError.
   */
  async load(q: StoreCommand): Promise<Uint8Array> {
    if (this.worker === undefined) throw new StoreUnavailableError("the SQLite store is not open");
    return this.loader.load(new TextDecoder().decode(q.data), q.args["params"]);
  }

  /** The apply connection's settings, which nothing but Nexus changes (for checks and tests). */
  async applySettings(): Promise<ApplySettings> {
    return (await this.call({ op: "settings" })) as ApplySettings;
  }

  private tmpFile(what: string): string {
    return join(dirname(this.path), `.nexus-${what}-${process.pid}-${this.tmpCounter++}.db`);
  }

  async backup(): Promise<StoreBackup> {
    const file = this.tmpFile("backup");
    const position = (await this.call({ op: "backup", file })) as AppliedPosition;
    async function* stream(): AsyncIterable<Uint8Array> {
      try {
        for await (const chunk of createReadStream(file, { highWaterMark: 256 * 1024 })) {
          yield chunk as Buffer;
        }
      } finally {
        await rm(file, { force: true });
      }
    }
    return { position, stream: stream() };
  }

  async restore(
    position: AppliedPosition,
    stream: AsyncIterable<Uint8Array>,
    from: AppliedPosition = position,
  ): Promise<void> {
    const run = this.restoreFile(position, stream, from);
    this.restoring = run;
    try {
      await run;
    } finally {
      if (this.restoring === run) this.restoring = undefined;
    }
  }

  private async restoreFile(
    position: AppliedPosition,
    stream: AsyncIterable<Uint8Array>,
    from: AppliedPosition,
  ): Promise<void> {
    const file = this.tmpFile("restore");
    try {
      const out = createWriteStream(file);
      for await (const chunk of stream) {
        if (!out.write(chunk)) await new Promise<void>((r) => out.once("drain", () => r()));
      }
      out.end();
      await finished(out);
      // Durable before it replaces the database.
      const fh = await open(file, "r+");
      await fh.sync();
      await fh.close();
      if (this.pinning !== undefined) await this.pinning.catch(() => undefined);
      // Digests read the file being replaced: they are abandoned (they reject) first.
      await this.digester.abortAll("the store was restored from a snapshot during the digest");
      // Loads too: their connections are to the file being replaced.
      await this.loader.stop("the store was restored from a snapshot during the load; retry it");
      await this.call({ op: "restore", file, position, from });
    } finally {
      await rm(file, { force: true });
    }
  }

  /**
   * Pins a WAL snapshot on a read-only connection of the digest worker and resolves; the worker
   * then hashes it (sqlite-digest.ts says what) while this store goes on applying. Applies called
   * meanwhile wait only for the pin. The database is in WAL mode (open() makes it so); note that
   * a long digest keeps the WAL from being checkpointed past its snapshot, so the -wal file grows
   * with what is applied during it, until the digest ends.
   */
  async digest(): Promise<PendingDigest> {
    if (this.restoring !== undefined) await this.restoring.catch(() => undefined);
    if (this.worker === undefined) {
      throw new StoreUnavailableError("the SQLite store is not open");
    }
    const pin = this.digester.start(this.path);
    this.pinning = pin;
    try {
      return await pin;
    } finally {
      if (this.pinning === pin) this.pinning = undefined;
    }
  }
}
