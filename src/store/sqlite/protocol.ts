/** Messages between SqliteStore (main thread) and its workers (apply, load, digest). */
import type { AppliedPosition, ApplyEntry, ApplyResult } from "../store.js";
import type { RequestRecord } from "../request-records.js";

/** The apply connection's settings that loads must never change (SqliteStore.applySettings()). */
export interface ApplySettings {
  /** PRAGMA synchronous: 1 (NORMAL) always (sqlite-worker.ts says why). */
  readonly synchronous: number;
  /** PRAGMA query_only: 0 always. */
  readonly queryOnly: number;
  /** PRAGMA journal_mode: "wal" always. */
  readonly journalMode: string;
}

/** To the apply worker. */
export type WorkerRequest =
  | {
      readonly id: number;
      readonly op: "open";
      readonly path: string;
      /** SQLite instructions one user statement may run; 0: no limit. */
      readonly stepBudget: number;
      /** How long request ids are remembered (request-records.ts), in ms. */
      readonly requestWindowMs: number;
    }
  | { readonly id: number; readonly op: "apply"; readonly entries: readonly ApplyEntry[] }
  | { readonly id: number; readonly op: "settings" }
  | { readonly id: number; readonly op: "lastApplied" }
  | { readonly id: number; readonly op: "requestRecord"; readonly requestId: string }
  | { readonly id: number; readonly op: "backup"; readonly file: string }
  | {
      readonly id: number;
      readonly op: "restore";
      readonly file: string;
      readonly position: AppliedPosition;
      /** Where the backup was taken, when not at `position` (restore into a running cluster). */
      readonly from: AppliedPosition;
    }
  | { readonly id: number; readonly op: "close" };

export type WorkerResult = AppliedPosition | ApplyResult[] | ApplySettings | RequestRecord | null;

/** From the apply worker. BAD_CONFIG: the step budget was asked for and cannot be had. */
export type WorkerResponse =
  | { readonly id: number; readonly ok: true; readonly result: WorkerResult }
  | {
      readonly id: number;
      readonly ok: false;
      readonly code: "STORE_ERROR" | "STORE_UNAVAILABLE" | "BAD_CONFIG";
      readonly message: string;
    };

/** The limits of a load (SqliteStoreOptions says what each means). */
export interface LoadLimits {
  readonly maxRows: number;
  readonly maxBytes: number;
  readonly timeoutMs: number;
}

/** To a load worker: run one read-only query on its own read-only connection to `path`. */
export interface LoadRequest {
  readonly id: number;
  readonly path: string;
  readonly sql: string;
  readonly params: string | undefined;
  readonly limits: LoadLimits;
  /** When the load must have ended, in ms since the epoch (it was asked for timeoutMs before). */
  readonly deadlineAt: number;
}

/** From a load worker: the result as UTF-8 JSON (its buffer transferred), or why not. */
export type LoadResponse =
  | { readonly id: number; readonly ok: true; readonly json: Uint8Array }
  | {
      readonly id: number;
      readonly ok: false;
      /** STORE_ERROR: the query's fault (refused, failed, over a limit); else the database's. */
      readonly code: "STORE_ERROR" | "STORE_UNAVAILABLE" | "TOO_LARGE" | "TIMEOUT";
      readonly message: string;
    };

/** To the digest worker: pin a snapshot and hash it, or abandon every running digest. */
export type DigestRequest =
  | { readonly id: number; readonly op: "pin"; readonly path: string }
  | { readonly id: number; readonly op: "abort"; readonly reason: string };

/**
 * From the digest worker, for a pin: `pinned` (the snapshot is open at `position`), then `done`
 * or `failed`; `failed` alone if it could not pin. For an abort: `aborted` once every digest
 * running when it arrived has closed its connection.
 */
export type DigestResponse =
  | { readonly id: number; readonly kind: "pinned"; readonly position: AppliedPosition }
  | { readonly id: number; readonly kind: "done"; readonly digest: string }
  | { readonly id: number; readonly kind: "failed"; readonly message: string }
  | { readonly id: number; readonly kind: "aborted" };
