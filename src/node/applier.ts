/**
 * The apply pipeline: committed entries (and snapshots) are applied to the store strictly in
 * index order, off the Raft loop, so a slow store never delays heartbeats. A failure of the store
 * itself (StoreUnavailableError, or any unexpected error) is not a result: the pipeline stops,
 * reports the store unavailable, retries the same batch with backoff, and never skips an entry.
 *
 * A store call that does not return (an entry whose statement never ends, with the store's step
 * budget off or not covering it) is observed, never aborted: after `stuckAfterMs` the pipeline
 * reports it through storeError(), naming the entries and how long, so the node says NOT_SERVING
 * with that reason in `nexus status`. Aborting by time would end the entry differently on each
 * replica (src/store/DESIGN.md).
 */
import type { CrashHook } from "../storage/crash-points.js";
import type { Entry } from "../raft/types.js";
import { NexusError, isNexusError } from "../errors/index.js";
import type { AppliedPosition, ApplyEntry, ApplyResult, Store } from "../store/store.js";
import type { EntryPayload } from "./entry-payload.js";
import { decodeEntryPayload } from "./entry-payload.js";
import { requestHash } from "../store/request-records.js";
import type { NexusLogger } from "./options.js";
import { OutcomeHash } from "./consistency.js";
import type { RestoreOutcome, RestoreStaging } from "./restore-staging.js";

/** A snapshot to restore before the entries that follow it. */
export interface SnapshotToRestore {
  readonly position: AppliedPosition;
  readonly open: () => AsyncIterable<Uint8Array>;
}

/** One unit of work, handed over by the Ready loop. */
export interface ApplyBatch {
  readonly snapshot?: SnapshotToRestore;
  readonly entries: readonly Entry[];
}

/** What the pipeline tells its owner. */
export interface ApplierEvents {
  /** An entry proposed with a payload was applied (on this node) with this result. */
  onResult(payload: EntryPayload, index: number, result: ApplyResult): void;
  /** The store's applied index advanced. */
  onApplied(position: AppliedPosition): void;
  /** The store became unavailable (err) or available again (undefined). */
  onStoreHealth(err: Error | undefined): void;
  /**
   * A consistency-check entry was applied at this index: the store is at exactly that index until
   * the returned promise resolves. `outcomes` is the hash of the outcomes of the entries applied
   * since the previous check (null if this pipeline did not apply all of them).
   */
  onCheck?(payload: EntryPayload, index: number, outcomes: string | null): Promise<void>;
}

const EMPTY = new Uint8Array(0);

/** How long one store call may run before the node reports itself stuck, by default. */
export const DEFAULT_APPLY_STUCK_AFTER_MS = 30_000;

/** Decodes the store's view of a log entry. Entries with no payload only move the index. */
export function toApplyEntry(e: Entry): { apply: ApplyEntry; payload: EntryPayload | undefined } {
  if (e.type !== "normal" || e.data.byteLength === 0) {
    return {
      apply: { index: e.index, term: e.term, command: undefined, timestampMs: 0, seed: 0 },
      payload: undefined,
    };
  }
  const p = decodeEntryPayload(e.data);
  const command = p.kind === "command" ? { data: p.data, args: p.args } : undefined;
  const cr = p.clientRequest;
  return {
    apply: {
      index: e.index,
      term: e.term,
      command,
      timestampMs: p.timestampMs,
      seed: p.seed,
      ...(command === undefined || cr === undefined
        ? {}
        : { request: { id: cr.id, hash: requestHash(command), issuedAtMs: cr.issuedAtMs } }),
    },
    payload: p,
  };
}

export class Applier {
  private readonly queue: ApplyBatch[] = [];
  private running = false;
  private stopped = false;
  private wake: (() => void) | undefined;
  private loopDone: Promise<void> = Promise.resolve();
  private unavailable: Error | undefined;
  /** Maximum entries handed to the store in one apply() call. */
  private readonly chunk = 256;
  /** Outcomes of the entries applied since the last check entry. */
  private readonly outcomes: OutcomeHash;
  /** Called at the runtime's apply crash points (crash-points.ts); tests only. */
  crash: CrashHook | undefined;
  /** Why applying was halted for good (a diverged replica), if it was. */
  private haltedFor: string | undefined;

  constructor(
    private readonly store: Store,
    private readonly events: ApplierEvents,
    private readonly logger: NexusLogger,
    /** The position the store reported at open. */
    private applied: AppliedPosition,
    private readonly retryMaxMs = 2000,
    /** After how long a store call that has not returned is reported (storeError()). */
    private readonly stuckAfterMs = DEFAULT_APPLY_STUCK_AFTER_MS,
    /**
     * Where restores into the running cluster are staged (restore-staging.ts). Without it, restore
     * chunks only move the index and every restore commit is refused.
     */
    private readonly staging?: RestoreStaging,
  ) {
    this.outcomes = new OutcomeHash(applied.index === 0);
  }

  /**
   * Stops applying after the batch in progress, for good (until the process restarts): used when
   * this replica diverged and the operator asked it to stop. Entries stay in the log.
   */
  halt(reason: string): void {
    this.haltedFor ??= reason;
  }

  /** Why applying is halted, if it is. */
  halted(): string | undefined {
    return this.haltedFor;
  }

  /** Whether a restore into the running cluster was being staged at `index` (no snapshot there). */
  restoreOpenAt(index: number): boolean {
    return this.staging?.openAt(index) ?? false;
  }

  /** The store's applied position as last reported. */
  position(): AppliedPosition {
    return this.applied;
  }

  /** Entries queued and not yet applied. */
  backlog(): number {
    let n = 0;
    for (const b of this.queue) n += b.entries.length;
    return n;
  }

  /**
   * The store error that stalls the pipeline, if any: a failure of the store, or a store call
   * running longer than `stuckAfterMs` (STORE_UNAVAILABLE naming the entries and the time).
   */
  storeError(): Error | undefined {
    if (this.unavailable !== undefined) return this.unavailable;
    const call = this.inFlight;
    if (call === undefined) return undefined;
    const ms = Date.now() - call.startedAt;
    return ms < this.stuckAfterMs
      ? undefined
      : new NexusError("STORE_UNAVAILABLE", stuckMessage(call, ms));
  }

  /** The store call in progress: which entries (or snapshot) and since when. */
  private inFlight: StoreCall | undefined;

  /** Runs one store call, watched: a call past stuckAfterMs is logged once and reported. */
  private async watch<T>(call: Omit<StoreCall, "startedAt">, f: () => Promise<T>): Promise<T> {
    const c: StoreCall = { ...call, startedAt: Date.now() };
    this.inFlight = c;
    const timer = setTimeout(() => {
      this.logger.warn(
        {
          reason: stuckMessage(c, Date.now() - c.startedAt),
          first: c.first,
          last: c.last,
        },
        "applying is stuck: a store call has not returned",
      );
    }, this.stuckAfterMs);
    timer.unref();
    try {
      return await f();
    } finally {
      clearTimeout(timer);
      if (this.inFlight === c) this.inFlight = undefined;
    }
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loopDone = this.loop();
  }

  enqueue(batch: ApplyBatch): void {
    if (batch.entries.length === 0 && batch.snapshot === undefined) return;
    this.queue.push(batch);
    this.wake?.();
  }

  /** Stops after the batch in progress; queued batches are dropped (they are in the log). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.loopDone;
  }

  /** Resolves once everything enqueued so far is applied (or the pipeline stopped). */
  async drain(): Promise<void> {
    while (!this.stopped && (this.queue.length > 0 || this.busy)) {
      await new Promise<void>((r) => setTimeout(r, 5));
    }
  }

  private busy = false;

  private async loop(): Promise<void> {
    while (!this.stopped) {
      const batch = this.haltedFor === undefined ? this.queue[0] : undefined;
      if (batch === undefined) {
        await new Promise<void>((r) => (this.wake = r));
        this.wake = undefined;
        continue;
      }
      this.busy = true;
      let delay = 20;
      for (;;) {
        try {
          await this.applyBatch(batch);
          if (this.unavailable !== undefined) {
            this.unavailable = undefined;
            this.logger.info("store up again; applying resumed");
            this.events.onStoreHealth(undefined);
          }
          break;
        } catch (err) {
          const e = err instanceof Error ? err : new Error(String(err));
          if (this.unavailable === undefined) {
            this.logger.error(
              {
                error: e.message,
                code: isNexusError(e) ? e.code : undefined,
              },
              "store down; applying paused and retried until it answers",
            );
            this.unavailable = e;
            this.events.onStoreHealth(e);
          }
          if (this.stopped) break;
          await new Promise<void>((r) => setTimeout(r, delay));
          delay = Math.min(this.retryMaxMs, delay * 2);
          if (this.stopped) break;
          // The failed call may have applied a prefix: ask the store where it really is.
          try {
            const pos = await this.store.lastApplied();
            if (pos.index > this.applied.index) this.applied = pos;
          } catch {
            // Still down: retry the batch later.
          }
        }
      }
      this.queue.shift();
      this.busy = false;
    }
  }

  private async applyBatch(batch: ApplyBatch): Promise<void> {
    if (batch.snapshot !== undefined && batch.snapshot.position.index > this.applied.index) {
      const snap = batch.snapshot;
      const started = Date.now();
      await this.watch(
        { what: "snapshot", first: snap.position.index, last: snap.position.index },
        () => this.store.restore(snap.position, snap.open()),
      );
      this.crash?.("node.restore-after-store");
      await this.staging?.reset(snap.position.index);
      this.applied = batch.snapshot.position;
      this.logger.info(
        { index: snap.position.index, term: snap.position.term, ms: Date.now() - started },
        "snapshot restored into the store",
      );
      this.outcomes.invalidate();
      this.events.onApplied(this.applied);
    }
    // Entries already applied (e.g. replayed after a restart) are skipped here; the store
    // would skip them too.
    const pending = batch.entries.filter((e) => e.index > this.applied.index);
    for (let i = 0; i < pending.length && this.haltedFor === undefined;) {
      // A consistency check must see the store at exactly its index: cut the chunk there.
      let j = i;
      const decoded: { apply: ApplyEntry; payload: EntryPayload | undefined }[] = [];
      while (j < pending.length && decoded.length < this.chunk) {
        const d = toApplyEntry(pending[j]!);
        // A restore commit replaces the store: it goes alone, after what precedes it is applied.
        if (d.payload?.kind === "restore-commit" && decoded.length > 0) break;
        decoded.push(d);
        j++;
        if (d.payload?.kind === "check" || d.payload?.kind === "restore-commit") break;
      }
      if (decoded[0]!.payload?.kind === "restore-commit") {
        await this.applyRestoreCommit(decoded[0]!);
        i = j;
        continue;
      }
      // Restore chunks are staged (durably) before the store's index moves past them.
      await this.staging?.stage(
        decoded.map((d) => ({ index: d.apply.index, term: d.apply.term, payload: d.payload })),
      );
      this.crash?.("node.apply-before-store");
      const results = await this.watch(
        {
          what: "entries",
          first: decoded[0]!.apply.index,
          last: decoded[decoded.length - 1]!.apply.index,
        },
        () => this.store.apply(decoded.map((d) => d.apply)),
      );
      this.crash?.("node.apply-after-store");
      const last = decoded[decoded.length - 1]!.apply;
      this.applied = { index: last.index, term: last.term };
      for (let k = 0; k < decoded.length; k++) {
        const d = decoded[k]!;
        if (d.payload === undefined) continue;
        const r = results[k] ?? { ok: true as const, data: EMPTY };
        if (d.payload.kind === "command") this.outcomes.add(d.apply.index, r);
        this.events.onResult(d.payload, d.apply.index, r);
        if (d.payload.kind === "check") {
          const outcomes = this.outcomes.take();
          await this.events.onCheck?.(d.payload, d.apply.index, outcomes);
        }
      }
      this.events.onApplied(this.applied);
      i = j;
    }
  }

  /**
   * Applies a restore commit entry: the store is replaced by the staged backup at the entry's
   * index, or (refused, the same on every replica) only the index moves. Its result is the
   * outcome as JSON (restore-staging.ts, RestoreOutcome).
   */
  private async applyRestoreCommit(d: {
    apply: ApplyEntry;
    payload: EntryPayload | undefined;
  }): Promise<void> {
    const at = { index: d.apply.index, term: d.apply.term };
    const entry = { ...at, payload: d.payload };
    const decision =
      this.staging === undefined
        ? ({
            ok: false,
            outcome: {
              restored: false,
              reason: "not-staged",
              message: "this node does not stage restores; nothing changed",
            },
          } as const)
        : await this.staging.commit(entry, this.store.kind);
    let outcome: RestoreOutcome;
    if (decision.ok) {
      const started = Date.now();
      this.crash?.("node.apply-before-store");
      await this.watch({ what: "snapshot", first: at.index, last: at.index }, () =>
        this.store.restore(at, decision.data, decision.from),
      );
      this.crash?.("node.apply-after-store");
      await this.staging?.committed(at.index);
      outcome = { restored: true, index: at.index, bytes: decision.bytes };
      this.logger.info(
        { index: at.index, bytes: decision.bytes, ms: Date.now() - started },
        "restore committed: the store holds the backup",
      );
    } else {
      await this.watch({ what: "entries", first: at.index, last: at.index }, () =>
        this.store.apply([{ ...d.apply, command: undefined }]),
      );
      outcome = decision.outcome;
    }
    this.applied = at;
    const r: ApplyResult = { ok: true, data: new TextEncoder().encode(JSON.stringify(outcome)) };
    if (d.payload !== undefined) {
      this.outcomes.add(at.index, r);
      this.events.onResult(d.payload, at.index, r);
    }
    this.events.onApplied(this.applied);
  }
}

/** One store call being watched. */
interface StoreCall {
  readonly what: "entries" | "snapshot";
  readonly first: number;
  readonly last: number;
  readonly startedAt: number;
}

function stuckMessage(c: StoreCall, ms: number): string {
  const which =
    c.what === "snapshot"
      ? `restoring the snapshot at index ${c.first}`
      : c.first === c.last
        ? `applying the entry at index ${c.first}`
        : `applying the entries at indexes ${c.first}-${c.last}`;
  return (
    `stuck ${which} for ${Math.round(ms / 1000)} s: the store has not answered ` +
    "(a statement that does not end? the apply step budget, -apply-step-budget, bounds saves; " +
    "0 turns it off). Later entries wait; nothing is skipped"
  );
}
