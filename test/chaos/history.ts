/**
 * The history a chaos run records and the linearizability checker judges: one record per client
 * operation on a register, with its invocation and completion times and its outcome.
 *
 * Registers hold integers; `null` is the initial state (the register was never written).
 *
 * Outcomes:
 * - `ok`: the operation took effect exactly once, at some instant between `startMs` and `endMs`.
 *   A read returned `result`; a cas returned whether it matched (`casOk`).
 * - `failed`: the operation certainly had no effect (refused before anything was written, e.g.
 *   NOT_SERVING, PROPOSAL_DROPPED, or a read that returned nothing). The checker ignores it.
 * - `unknown`: the client gave up waiting (timeout, connection lost after sending). A write or cas
 *   may take effect at any instant after `startMs`, or never; its `endMs` is the moment the client
 *   gave up, which bounds nothing. An unknown read tells nothing and is ignored.
 */

/** What an operation does to its register. */
export type OpKind = "read" | "write" | "cas";

/** How an operation ended, as the client saw it. */
export type OpOutcome = "ok" | "failed" | "unknown";

/** The consistency a read asked for. */
export type ReadMode = "linearizable" | "lease" | "local";

export interface Operation {
  /** Unique within a history, in invocation order. */
  readonly id: number;
  /** The client (a sequential process) that issued it. */
  readonly client: number;
  /** The register. */
  readonly key: string;
  readonly kind: OpKind;
  /** write: the value written; cas: the new value. */
  readonly value?: number;
  /** cas: the value the register must hold for the swap to happen. */
  readonly expected?: number | null;
  /** Invocation time, ms on a monotonic clock shared by every client of the run. */
  readonly startMs: number;
  /** Completion time (when the outcome was known), same clock; startMs <= endMs. */
  readonly endMs: number;
  readonly outcome: OpOutcome;
  /** read (ok): the value read, null when the register was never written. */
  readonly result?: number | null;
  /** cas (ok): whether the register held `expected` and was swapped. */
  readonly casOk?: boolean;
  /** read: the consistency asked for. */
  readonly mode?: ReadMode;
  /** The node the client sent it to (a URL or address), for reports. */
  readonly node?: string;
  /** The error message, for failed and unknown operations. */
  readonly error?: string;
}

/** A register model step: the register's value after `op` applied to `state`, or undefined if
 * `op`'s recorded result is impossible from `state`. */
export function stepRegister(state: number | null, op: Operation): number | null | undefined {
  switch (op.kind) {
    case "read":
      return op.outcome === "ok" && op.result !== state ? undefined : state;
    case "write":
      return op.value ?? null;
    case "cas": {
      const matches = state === (op.expected ?? null);
      if (op.outcome === "ok" && op.casOk !== matches) return undefined;
      return matches ? (op.value ?? null) : state;
    }
  }
}
