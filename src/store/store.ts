/**
 * The Store contract: what a backend (SQLite, Redis, MySQL, memory) implements so that Nexus can
 * replicate onto it. A backend imports only this contract, the errors room and its own driver.
 *
 * The runtime applies committed log entries to the store strictly in index order. The store makes
 * each entry's effect and the new applied index one atomic step, so that after a crash at any
 * instant `lastApplied()` says exactly which entries took effect, and the runtime re-applies only
 * the ones after it: no entry is applied twice, none is skipped.
 */
import type { RequestKey, RequestRecord } from "./request-records.js";

/** A position in the replicated log. */
export interface AppliedPosition {
  readonly index: number;
  readonly term: number;
}

/** A user request for the store: the statement and its arguments. */
export interface StoreCommand {
  /** The statement: SQL text, a Lua script, or a backend-defined command, as bytes. */
  readonly data: Uint8Array;
  /** Request arguments, e.g. `db.index` (Redis), `params` (JSON placeholders for SQL). */
  readonly args: Readonly<Record<string, string>>;
}

/** One committed log entry, as the store sees it. */
export interface ApplyEntry {
  readonly index: number;
  readonly term: number;
  /**
   * The user's write, or undefined for entries without a store effect (a new leader's no-op, a
   * membership change): for those only the applied index moves.
   */
  readonly command: StoreCommand | undefined;
  /**
   * The proposer's wall-clock time in ms since the epoch. Time functions (NOW(), 'now') must use
   * it so that every replica computes the same values.
   */
  readonly timestampMs: number;
  /** A per-entry seed (safe integer, 0 <= seed < 2^53) for random functions. */
  readonly seed: number;
  /**
   * The client's request record key, for a save that must apply exactly once
   * (request-records.ts): a store that holds a live record for `request.id` does not apply the
   * command again and returns the recorded result; otherwise it applies the command and records
   * the result, in the same transaction as the effect and the applied index.
   */
  readonly request?: RequestKey;
}

/**
 * The result of one entry: the store's answer, or the user's statement error (the same on every
 * replica). A failed entry has no effect on the data, but the applied index still moves past it.
 */
export type ApplyResult = (
  { readonly ok: true; readonly data: Uint8Array } | { readonly ok: false; readonly error: string }
) & {
  /**
   * Set on the answer to a repeat of a recorded request id (request-records.ts `decide`): the
   * index of the entry that first applied it, whose result this is. Absent otherwise (the result
   * is this entry's own).
   */
  readonly firstIndex?: number;
};

/** A consistent copy of the store at `position`, as a stream of bytes (any size). */
export interface StoreBackup {
  readonly position: AppliedPosition;
  /** The backup data. Consume it fully, or call `return()` on its iterator to abandon it. */
  readonly stream: AsyncIterable<Uint8Array>;
}

/**
 * A digest of the user-visible state at `position` (consistency checks), being computed.
 * Invariant: `position` is the applied position of the state `digest` describes.
 */
export interface PendingDigest {
  readonly position: AppliedPosition;
  /**
   * Resolves with lowercase hex (64 chars) of a cryptographic hash of the user-visible state at
   * `position`, in a stable order; rejects with StoreUnavailableError if the backend fails (or the
   * store is closed or restored before the digest completes). Equal states digest equally on
   * every replica, whatever their history.
   */
  readonly digest: Promise<string>;
}

/**
 * Wraps a digest being computed: a rejection nobody awaits (the node stopped) does not crash the
 * process, while those who await `digest` still see it.
 */
export function pendingDigest(position: AppliedPosition, digest: Promise<string>): PendingDigest {
  digest.catch(() => undefined);
  return { position, digest };
}

/**
 * A replication target.
 *
 * Failure modes:
 * - A deterministic failure of the user's statement (bad SQL, a Lua error) is that entry's
 *   *result* (`{ ok: false }`), identical on every replica. `load()` throws `StoreError`.
 * - A failure of the backend itself (connection lost, disk full) is not a result: methods throw
 *   `StoreUnavailableError` and nothing is applied from the failing batch beyond what
 *   `lastApplied()` reports; the runtime retries with backoff and reports NOT_SERVING.
 */
export interface Store {
  /** A short name: "sqlite", "memory", "redis", "mysql". */
  readonly kind: string;
  /** Connects or opens files and returns the last applied position (0/0 when new). */
  open(): Promise<AppliedPosition>;
  /** Releases every resource. Idempotent. */
  close(): Promise<void>;
  /** What is durably applied. */
  lastApplied(): Promise<AppliedPosition>;
  /**
   * Applies committed entries in order and returns one result per entry. Entries at or below
   * `lastApplied().index` are skipped (no effect) and get `{ ok: true, data: empty }`.
   * Invariant: entries are in increasing index order, the first one at most lastApplied + 1.
   */
  apply(entries: readonly ApplyEntry[]): Promise<ApplyResult[]>;
  /** A read of the current state. Throws StoreError for a bad query. */
  load(query: StoreCommand): Promise<Uint8Array>;
  /** A consistent copy at the current applied position, streamed. */
  backup(): Promise<StoreBackup>;
  /**
   * Replaces the whole state with a backup taken at `position` (which becomes the applied
   * position). On failure the previous state is kept. With `from` (a restore into a running
   * cluster), the backup was taken at `from` (what a backend checks against the backup's own
   * record of its position) and the restored state becomes the state at `position`, in the same
   * atomic step.
   */
  restore(
    position: AppliedPosition,
    stream: AsyncIterable<Uint8Array>,
    from?: AppliedPosition,
  ): Promise<void>;
  /**
   * Starts a digest of the user-visible state at the current applied position. Resolves as soon
   * as that state is pinned (a read snapshot/transaction is open), so apply() may be called again
   * at once without changing the digest. Backends that cannot pin a state (Redis) resolve only
   * after computing it. Computed streaming, in memory bounded independently of the data size.
   * close() ends every pinned snapshot (its digest then rejects).
   */
  digest(): Promise<PendingDigest>;
}

/** The empty result data. */
export const EMPTY_RESULT: Uint8Array = new Uint8Array(0);

/**
 * An optional ability of a Store: reading the record of a request id (request-records.ts), for
 * "did this request commit, and with what result" (Replicator.requestOutcome, `repl outcome`).
 * Every built-in backend has it. Reads the committed state: a record an apply in progress writes
 * is seen once that apply is done.
 */
export interface RequestRecordSource {
  /** The stored record of `id` (live or expired but not yet purged), or undefined. */
  requestRecord(id: string): Promise<RequestRecord | undefined>;
}

/** Whether `store` can read its request records (RequestRecordSource). */
export function hasRequestRecords(store: Store): store is Store & RequestRecordSource {
  return typeof (store as Partial<RequestRecordSource>).requestRecord === "function";
}
