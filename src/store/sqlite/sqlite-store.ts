/**
 * SqliteStore: the embedded default store. SQLite through better-sqlite3, with every statement
 * run in a worker thread so that a slow query cannot delay heartbeats.
 *
 * - save: one SQL statement (args `params`: a JSON array or object of placeholder values);
 *   result JSON `{"rowsAffected": n, "lastInsertId": m}`. The applied index is written in the
 *   same transaction; a failing statement is rolled back to its savepoint and is the entry's
 *   error result (the same message on every replica).
 * - load: one read-only query; result: a JSON array of row objects (BLOBs as
 *   `{"base64": "..."}`, integers beyond 2^53 as strings).
 * - Determinism: random() and randomblob() use the entry's seed; 'now' in datetime(), date(),
 *   time(), julianday(), strftime() and unixepoch() is the entry's timestamp.
 *   CURRENT_TIMESTAMP / CURRENT_DATE / CURRENT_TIME are refused with a clear error.
 * - backup: SQLite's online backup into a temporary file, streamed; restore: validated, then
 *   swapped in atomically.
 * - digest: pinned on a WAL snapshot of a second, read-only connection in a second worker thread
 *   and computed there (sqlite-digest.ts), so applying goes on during it.
 */
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, open, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { finished } from "node:stream/promises";
import type { Worker } from "node:worker_threads";
import { StoreError, StoreUnavailableError } from "../../errors/index.js";
import type {
  AppliedPosition,
  ApplyEntry,
  ApplyResult,
  Store,
  StoreBackup,
  StoreCommand,
  PendingDigest,
} from "../store.js";
import type { WorkerRequest, WorkerResponse, WorkerResult } from "./protocol.js";
import { SqliteDigester } from "./sqlite-digester.js";
import { spawnSqliteWorker } from "./spawn-worker.js";

export interface SqliteStoreOptions {
  /** The database file; its folder is created if missing. */
  readonly path: string;
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
  /** While a digest pins its snapshot, applies and restores wait (the snapshot comes first). */
  private pinning: Promise<unknown> | undefined;
  /** While a restore replaces the file, digests wait. */
  private restoring: Promise<unknown> | undefined;

  constructor(opts: SqliteStoreOptions) {
    this.path = opts.path;
  }

  private spawn(): Worker {
    const w = spawnSqliteWorker("sqlite-worker");
    w.on("message", (res: WorkerResponse) => {
      const p = this.pending.get(res.id);
      if (p === undefined) return;
      this.pending.delete(res.id);
      if (res.ok) p.resolve(res.result);
      else if (res.code === "STORE_ERROR") p.reject(new StoreError(res.message));
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
    const position = (await this.call({ op: "open", path: this.path })) as AppliedPosition;
    this.digester.warm();
    return position;
  }

  async close(): Promise<void> {
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

  async apply(entries: readonly ApplyEntry[]): Promise<ApplyResult[]> {
    if (this.pinning !== undefined) await this.pinning.catch(() => undefined);
    return (await this.call({ op: "apply", entries })) as ApplyResult[];
  }

  async load(q: StoreCommand): Promise<Uint8Array> {
    const sql = new TextDecoder().decode(q.data);
    const json = (await this.call({ op: "load", sql, params: q.args["params"] })) as string;
    return new TextEncoder().encode(json);
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

  async restore(position: AppliedPosition, stream: AsyncIterable<Uint8Array>): Promise<void> {
    const run = this.restoreFile(position, stream);
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
      await this.call({ op: "restore", file, position });
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
