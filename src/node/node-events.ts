/**
 * Typed events: what the Ready loop reports (leader change, membership change, divergence) to
 * those who wait on it, the facade and the library's users. Listeners run synchronously when
 * the event is emitted; one that throws is logged and never disturbs the emitter or the other
 * listeners (an event is emitted from the Ready loop, which must not fail because of a listener).
 */
import type { ConfState, NodeId } from "../raft/types.js";
import type { NexusLogger } from "./options.js";

/** The leader this node follows changed (Raft §5.2). */
export interface LeaderChange {
  /** The new leader ("" while none is known). */
  readonly leader: NodeId;
  /** Its URL as this node knows it ("" when unknown). */
  readonly leaderUrl: string;
  readonly term: number;
}

/** A configuration took effect on this node (a conf change applied, or a snapshot installed). */
export interface MembershipChange {
  /** The log index where it took effect. */
  readonly index: number;
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
  /** The outgoing voters while a joint configuration is not left (empty otherwise). */
  readonly votersOutgoing: readonly NodeId[];
  /** Whether a joint configuration is in effect. */
  readonly joint: boolean;
}

/** A consistency check found that this replica diverged from the majority. */
export interface DivergenceEvent {
  /** The index of the check that found it. */
  readonly index: number;
  readonly reason: string;
}

/** Every event by name. */
export interface NodeEventMap {
  "leader-change": LeaderChange;
  "membership-change": MembershipChange;
  divergence: DivergenceEvent;
}

export type NodeEventName = keyof NodeEventMap;

/** A MembershipChange from a configuration. */
export function membershipChangeOf(index: number, cs: ConfState): MembershipChange {
  return {
    index,
    voters: [...cs.voters],
    learners: [...cs.learners],
    votersOutgoing: [...cs.votersOutgoing],
    joint: cs.votersOutgoing.length > 0,
  };
}

type Listener<T> = (event: T) => void;

/** How waitFor ends when the event does not come. */
export interface WaitForOptions {
  readonly timeoutMs: number;
  /** The error the wait rejects with at the timeout. */
  readonly onTimeout: () => Error;
  readonly signal?: AbortSignal | undefined;
}

export class NodeEvents<M extends object = NodeEventMap> {
  private readonly listeners = new Map<keyof M, Set<Listener<never>>>();
  /** Pending waitFor() calls, rejected by close(). */
  private readonly waits = new Set<(err: Error) => void>();
  private closedBy: Error | undefined;

  constructor(private readonly logger?: NexusLogger) {}

  /** Calls `listener` on every `event` until the returned function is called. */
  on<K extends keyof M>(event: K, listener: Listener<M[K]>): () => void {
    let set = this.listeners.get(event);
    if (set === undefined) {
      set = new Set();
      this.listeners.set(event, set);
    }
    set.add(listener as Listener<never>);
    return () => this.off(event, listener);
  }

  /** Stops calling `listener`. */
  off<K extends keyof M>(event: K, listener: Listener<M[K]>): void {
    this.listeners.get(event)?.delete(listener as Listener<never>);
  }

  /** Calls every listener of `event`; a listener that throws is logged and skipped. */
  emit<K extends keyof M>(event: K, value: M[K]): void {
    const set = this.listeners.get(event);
    if (set === undefined) return;
    for (const l of [...set]) {
      try {
        (l as Listener<M[K]>)(value);
      } catch (err) {
        this.logger?.error(
          { event: String(event), error: (err as Error)?.message ?? String(err) },
          "an event listener threw; the event is delivered to the others",
        );
      }
    }
  }

  /**
   * Resolves once `done()` holds: at once if it holds now, else at the first `event` after which
   * it does. Rejects with onTimeout() at the timeout, with the signal's reason when it aborts, and
   * with close()'s error when the emitter closes (the node stopped).
   */
  waitFor<K extends keyof M>(event: K, done: () => boolean, o: WaitForOptions): Promise<void> {
    if (this.closedBy !== undefined) return Promise.reject(this.closedBy);
    if (done()) return Promise.resolve();
    if (o.signal?.aborted === true) return Promise.reject(o.signal.reason as Error);
    return new Promise<void>((resolve, reject) => {
      const finish = (err?: Error): void => {
        off();
        clearTimeout(timer);
        this.waits.delete(finish);
        o.signal?.removeEventListener("abort", onAbort);
        if (err === undefined) resolve();
        else reject(err);
      };
      const onAbort = (): void => finish(o.signal?.reason as Error);
      const off = this.on(event, () => {
        if (done()) finish();
      });
      const timer = setTimeout(() => finish(o.onTimeout()), o.timeoutMs);
      this.waits.add(finish);
      o.signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** Rejects every pending waitFor() with `err`, and every later one; listeners stay. */
  close(err: Error): void {
    this.closedBy = err;
    for (const w of [...this.waits]) w(err);
  }
}
