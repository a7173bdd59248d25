/**
 * The SQLite digest worker: computes digests on read-only connections of its own, so that the
 * apply worker never waits for one. For each `pin` it opens a connection, begins a read
 * transaction and reads the applied position (the WAL snapshot is then fixed), answers `pinned`,
 * and hashes the snapshot, yielding every few milliseconds so that other pins and aborts are
 * answered meanwhile. Several digests may run at once, each on its own connection.
 */
import { setImmediate as yieldNow } from "node:timers/promises";
import { parentPort } from "node:worker_threads";
import type Database from "better-sqlite3";
import type { DigestRequest, DigestResponse } from "./protocol.js";
import { openSqliteDatabase } from "./sqlite-binding.js";
import { hashSnapshot, pinSnapshot } from "./sqlite-digest.js";

/** Running digests: why each must stop (undefined: keep going), and when it has ended. */
const running = new Map<number, { abort: string | undefined; ended: Promise<void> }>();

function post(res: DigestResponse): void {
  parentPort!.postMessage(res);
}

class Abandoned extends Error {}

function pin(id: number, path: string): void {
  let db: Database.Database | undefined;
  let position;
  try {
    db = openSqliteDatabase(path, { readonly: true, fileMustExist: true, timeout: 5000 });
    position = pinSnapshot(db);
  } catch (err) {
    db?.close();
    post({ id, kind: "failed", message: (err as Error).message });
    return;
  }
  const conn = db;
  post({ id, kind: "pinned", position });
  const state: { abort: string | undefined; ended: Promise<void> } = {
    abort: undefined,
    ended: Promise.resolve(),
  };
  running.set(id, state);
  state.ended = (async () => {
    try {
      const digest = await hashSnapshot(conn, async () => {
        await yieldNow();
        if (state.abort !== undefined) throw new Abandoned(state.abort);
      });
      post({ id, kind: "done", digest });
    } catch (err) {
      post({ id, kind: "failed", message: (err as Error).message });
    } finally {
      running.delete(id);
      try {
        conn.close();
      } catch {
        // closing a connection whose read transaction is open cannot fail in a way that matters
      }
    }
  })();
}

async function abortAll(id: number, reason: string): Promise<void> {
  const ends = [...running.values()].map((r) => {
    r.abort = reason;
    return r.ended;
  });
  await Promise.all(ends);
  post({ id, kind: "aborted" });
}

parentPort!.on("message", (req: DigestRequest) => {
  if (req.op === "pin") pin(req.id, req.path);
  else void abortAll(req.id, req.reason);
});
