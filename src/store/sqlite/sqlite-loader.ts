/**
 * The main thread's side of the SQLite load workers (sqlite-load-worker.ts): a small pool of
 * threads, each with its own read-only connection, that run loads one at a time each, apart from
 * the apply worker. Started on the first load; they do not keep the process alive.
 *
 * The deadline: a load not answered `timeoutMs` after it was asked for is refused with TIMEOUT at
 * that moment. Its worker stops the statement itself at the same deadline (SQLite's progress
 * handler, in the SQLite build of sqlite-binding.ts) and is then free again.
 *
 * A worker is never terminated while it runs a load: terminating a thread inside better-sqlite3
 * can abort the whole process (V8 refuses to create the error object of the interrupted call).
 * Workers are terminated only while idle: after a large result (to give its memory back), and by
 * stop(), which retires busy workers as soon as they answer. A worker still busy a second past its
 * load's deadline (work outside SQLite's virtual machine, or a SQLite build without progress
 * callbacks) no longer counts in the pool, so that loads go on meanwhile on a new one.
 */
import type { Worker } from "node:worker_threads";
import { NexusError, StoreError, StoreUnavailableError } from "../../errors/index.js";
import type { LoadLimits, LoadRequest, LoadResponse } from "./protocol.js";
import { spawnSqliteWorker } from "./spawn-worker.js";

/** How long a worker may go on after its load's deadline before it stops counting in the pool. */
const GRACE_MS = 1000;

/**
 * A worker that answered more than this (or stopped at a cap) is replaced: its heap grew with the
 * result, and V8 would keep that memory; ending the idle thread gives it back.
 */
const RECYCLE_AFTER_BYTES = 8 * 1024 * 1024;

interface Job {
  readonly request: LoadRequest;
  readonly resolve: (json: Uint8Array) => void;
  readonly reject: (err: Error) => void;
  /** Answered (or refused for its deadline): what the worker says later is dropped. */
  settled: boolean;
  timer: NodeJS.Timeout | undefined;
}

export class SqliteLoader {
  private readonly idle: Worker[] = [];
  /** The job each busy worker runs. */
  private readonly running = new Map<Worker, Job>();
  /** Busy workers that no longer count in the pool (overdue) or are to end when they answer. */
  private readonly overdue = new Set<Worker>();
  private readonly retiring = new Set<Worker>();
  private readonly queue: Job[] = [];
  private nextId = 1;

  constructor(
    private readonly path: string,
    private readonly limits: LoadLimits,
    /** Loads that may run at once. */
    private readonly size = 2,
  ) {}

  /** Runs one load; rejects with StoreError, NexusError TOO_LARGE or TIMEOUT, or StoreUnavailableError. */
  load(sql: string, params: string | undefined): Promise<Uint8Array> {
    return new Promise((resolve, reject) => {
      const job: Job = {
        request: {
          id: this.nextId++,
          path: this.path,
          sql,
          params,
          limits: this.limits,
          deadlineAt: Date.now() + this.limits.timeoutMs,
        },
        resolve,
        reject,
        settled: false,
        timer: undefined,
      };
      job.timer = setTimeout(() => this.expire(job), this.limits.timeoutMs);
      this.queue.push(job);
      this.dispatch();
    });
  }

  /**
   * Refuses every load in progress or queued with StoreUnavailableError saying `why`, ends the
   * idle workers (closing their connections) and retires the busy ones as soon as they answer.
   * Loads after it start new workers. Used by close() and before a restore replaces the file.
   */
  async stop(why: string): Promise<void> {
    const gone = new StoreUnavailableError(why);
    for (const job of this.queue.splice(0)) this.settle(job, gone);
    for (const [w, job] of this.running) {
      this.settle(job, gone);
      this.retiring.add(w);
    }
    await Promise.all(this.idle.splice(0).map((w) => w.terminate()));
  }

  private settle(job: Job, outcome: Error | Uint8Array): void {
    if (job.timer !== undefined) clearTimeout(job.timer);
    job.timer = undefined;
    if (job.settled) return;
    job.settled = true;
    if (outcome instanceof Error) job.reject(outcome);
    else job.resolve(outcome);
  }

  private expire(job: Job): void {
    job.timer = undefined;
    this.settle(
      job,
      new NexusError(
        "TIMEOUT",
        `the load ran longer than ${this.limits.timeoutMs} ms, the limit (flag -load-timeout-ms, option loadTimeoutMs), and was stopped; ` +
          "make the query cheaper or raise the limit",
      ),
    );
    const queued = this.queue.indexOf(job);
    if (queued >= 0) {
      this.queue.splice(queued, 1);
      return;
    }
    const grace = setTimeout(() => {
      for (const [w, j] of this.running) {
        if (j !== job) continue;
        this.overdue.add(w);
        this.dispatch();
      }
    }, GRACE_MS);
    grace.unref();
  }

  private spawn(): Worker {
    // Room for the result (kept as JSON text, then as bytes) and the rows being encoded.
    const maxOldGenerationSizeMb = Math.max(256, Math.ceil((this.limits.maxBytes / 1048576) * 8));
    const w = spawnSqliteWorker("sqlite-load-worker", { maxOldGenerationSizeMb });
    w.unref();
    w.on("message", (res: LoadResponse) => {
      const job = this.running.get(w);
      if (job === undefined || job.request.id !== res.id) return;
      this.running.delete(w);
      const wasOverdue = this.overdue.delete(w);
      const grew = res.ok ? res.json.byteLength > RECYCLE_AFTER_BYTES : res.code === "TOO_LARGE";
      // It is idle now: ending it cannot interrupt anything.
      if (this.retiring.delete(w) || grew || (wasOverdue && this.busy() >= this.size)) {
        void w.terminate();
      } else {
        this.idle.push(w);
      }
      if (res.ok) this.settle(job, res.json);
      else if (res.code === "STORE_ERROR") this.settle(job, new StoreError(res.message));
      else if (res.code === "STORE_UNAVAILABLE") {
        this.settle(job, new StoreUnavailableError(`SQLite failed: ${res.message}`));
      } else this.settle(job, new NexusError(res.code, res.message));
      this.dispatch();
    });
    const fail = (why: Error): void => {
      const i = this.idle.indexOf(w);
      if (i >= 0) this.idle.splice(i, 1);
      const job = this.running.get(w);
      this.running.delete(w);
      this.overdue.delete(w);
      this.retiring.delete(w);
      if (job !== undefined) {
        const oom = (why as { code?: unknown }).code === "ERR_WORKER_OUT_OF_MEMORY";
        this.settle(
          job,
          oom
            ? new NexusError(
                "TOO_LARGE",
                "the load needed more memory than its worker may use; lower -load-max-bytes, or narrow the query",
              )
            : new StoreUnavailableError(`the SQLite load worker failed: ${why.message}`),
        );
      }
      this.dispatch();
    };
    w.on("error", fail);
    w.on("exit", (code) => fail(new Error(`exited (code ${code})`)));
    return w;
  }

  /** Workers that count in the pool: running, neither overdue nor retiring. */
  private busy(): number {
    let n = 0;
    for (const w of this.running.keys()) if (!this.overdue.has(w) && !this.retiring.has(w)) n++;
    return n;
  }

  private dispatch(): void {
    while (this.queue.length > 0) {
      let w = this.idle.pop();
      if (w === undefined) {
        if (this.busy() >= this.size) return;
        w = this.spawn();
      }
      const job = this.queue.shift()!;
      this.running.set(w, job);
      w.postMessage(job.request);
    }
  }
}
