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
 */
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, open, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { finished } from "node:stream/promises";
import { Worker } from "node:worker_threads";
import { StoreError, StoreUnavailableError } from "../../errors/index.js";
import type {
  AppliedPosition,
  ApplyEntry,
  ApplyResult,
  Store,
  StoreBackup,
  StoreCommand,
  StoreDigest,
} from "../store.js";
import type { WorkerRequest, WorkerResponse, WorkerResult } from "./protocol.js";

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

  constructor(opts: SqliteStoreOptions) {
    this.path = opts.path;
  }

  private spawn(): Worker {
    const here = import.meta.url;
    const ts = here.endsWith(".ts");
    const url = new URL(ts ? "./sqlite-worker.ts" : "./sqlite-worker.js", here);
    // Running from TypeScript sources (tests, development): load the worker through tsx, resolved
    // from here (the worker's own base is the process's working directory).
    const w = ts
      ? new Worker(
          `import(${JSON.stringify(import.meta.resolve("tsx/esm/api"))}).then((m) => { m.register(); return import(${JSON.stringify(url.href)}); })`,
          { eval: true },
        )
      : new Worker(url);
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
    return (await this.call({ op: "open", path: this.path })) as AppliedPosition;
  }

  async close(): Promise<void> {
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
      await this.call({ op: "restore", file, position });
    } finally {
      await rm(file, { force: true });
    }
  }

  async digest(): Promise<StoreDigest> {
    return (await this.call({ op: "digest" })) as StoreDigest;
  }
}
