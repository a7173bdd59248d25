/** Messages between SqliteStore (main thread) and its workers (apply, digest). */
import type { AppliedPosition, ApplyEntry, ApplyResult } from "../store.js";

export type WorkerRequest =
  | { readonly id: number; readonly op: "open"; readonly path: string }
  | { readonly id: number; readonly op: "apply"; readonly entries: readonly ApplyEntry[] }
  | {
      readonly id: number;
      readonly op: "load";
      readonly sql: string;
      readonly params: string | undefined;
    }
  | { readonly id: number; readonly op: "lastApplied" }
  | { readonly id: number; readonly op: "backup"; readonly file: string }
  | {
      readonly id: number;
      readonly op: "restore";
      readonly file: string;
      readonly position: AppliedPosition;
    }
  | { readonly id: number; readonly op: "close" };

export type WorkerResult = AppliedPosition | ApplyResult[] | string | null;

export type WorkerResponse =
  | { readonly id: number; readonly ok: true; readonly result: WorkerResult }
  | {
      readonly id: number;
      readonly ok: false;
      readonly code: "STORE_ERROR" | "STORE_UNAVAILABLE";
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
