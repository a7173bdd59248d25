/** Messages between SqliteStore (main thread) and its worker. */
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
  | { readonly id: number; readonly op: "digest" }
  | { readonly id: number; readonly op: "close" };

export type WorkerResult =
  | AppliedPosition
  | ApplyResult[]
  | string
  | { readonly position: AppliedPosition; readonly digest: string }
  | null;

export type WorkerResponse =
  | { readonly id: number; readonly ok: true; readonly result: WorkerResult }
  | {
      readonly id: number;
      readonly ok: false;
      readonly code: "STORE_ERROR" | "STORE_UNAVAILABLE";
      readonly message: string;
    };
