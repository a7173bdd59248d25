/**
 * The main thread's side of the SQLite digest worker (sqlite-digest-worker.ts): started when the
 * store opens (warm()) or on the first digest, and kept for the next ones; it does not keep the
 * process alive by itself.
 */
import type { Worker } from "node:worker_threads";
import { StoreUnavailableError } from "../../errors/index.js";
import type { AppliedPosition, PendingDigest } from "../store.js";
import { pendingDigest } from "../store.js";
import type { DigestRequest, DigestResponse } from "./protocol.js";
import { spawnSqliteWorker } from "./spawn-worker.js";

interface Waiter {
  pinned?: (position: AppliedPosition) => void;
  done?: (digest: string) => void;
  aborted?: () => void;
  fail: (err: Error) => void;
}

/** Distributes a request without its id. */
type Request = DigestRequest extends infer R
  ? R extends { id: number }
    ? Omit<R, "id">
    : never
  : never;

export class SqliteDigester {
  private worker: Worker | undefined;
  private nextId = 1;
  private readonly waiters = new Map<number, Waiter>();

  private spawn(): Worker {
    const w = spawnSqliteWorker("sqlite-digest-worker");
    w.unref();
    w.on("message", (res: DigestResponse) => {
      const wt = this.waiters.get(res.id);
      if (wt === undefined) return;
      switch (res.kind) {
        case "pinned":
          wt.pinned?.(res.position);
          return;
        case "done":
          this.waiters.delete(res.id);
          wt.done?.(res.digest);
          return;
        case "aborted":
          this.waiters.delete(res.id);
          wt.aborted?.();
          return;
        case "failed":
          this.waiters.delete(res.id);
          wt.fail(new StoreUnavailableError(`the SQLite digest failed: ${res.message}`));
          return;
      }
    });
    const fail = (why: string): void => {
      if (this.worker === w) this.worker = undefined;
      for (const wt of this.waiters.values()) wt.fail(new StoreUnavailableError(why));
      this.waiters.clear();
    };
    w.on("error", (e) => fail(`the SQLite digest worker failed: ${e.message}`));
    w.on("exit", (code) => fail(`the SQLite digest worker exited (code ${code})`));
    return w;
  }

  private send(req: Request, waiter: Waiter): void {
    this.worker ??= this.spawn();
    const id = this.nextId++;
    this.waiters.set(id, waiter);
    this.worker.postMessage({ ...req, id });
  }

  /**
   * Starts the worker now if it is not running, so that the first digest does not wait for it
   * to load (the pin holds applies back meanwhile).
   */
  warm(): void {
    this.worker ??= this.spawn();
  }

  /** Pins a snapshot of the database at `path` (in WAL mode) and digests it. */
  start(path: string): Promise<PendingDigest> {
    return new Promise((resolvePin, rejectPin) => {
      let resolveDigest: (d: string) => void = () => undefined;
      let rejectDigest: (e: Error) => void = () => undefined;
      const digest = new Promise<string>((res, rej) => {
        resolveDigest = res;
        rejectDigest = rej;
      });
      let pinned = false;
      this.send(
        { op: "pin", path },
        {
          pinned: (position) => {
            pinned = true;
            resolvePin(pendingDigest(position, digest));
          },
          done: resolveDigest,
          fail: (err) => {
            if (pinned) rejectDigest(err);
            else rejectPin(err);
          },
        },
      );
    });
  }

  /** Abandons every running digest (they reject) and resolves once their connections are closed. */
  abortAll(reason: string): Promise<void> {
    if (this.worker === undefined) return Promise.resolve();
    return new Promise((resolve) => {
      this.send({ op: "abort", reason }, { aborted: resolve, fail: () => resolve() });
    });
  }

  /**
   * Ends the worker: every running digest rejects and its connection is closed. Idempotent.
   * Running digests are first asked to stop between two reads (for at most 2 s): terminating
   * the thread while it is inside better-sqlite3 can abort the whole process.
   */
  async close(): Promise<void> {
    const w = this.worker;
    if (w === undefined) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.abortAll("the SQLite store was closed before the digest completed"),
      new Promise<void>((r) => (timer = setTimeout(r, 2000))),
    ]);
    clearTimeout(timer);
    if (this.worker !== w) return;
    this.worker = undefined;
    for (const wt of this.waiters.values()) {
      wt.fail(new StoreUnavailableError("the SQLite store was closed before the digest completed"));
    }
    this.waiters.clear();
    await w.terminate();
  }
}
