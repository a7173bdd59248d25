/**
 * Read-your-writes sessions (Replicator.session()): a session keeps the highest log index its
 * saves committed at and loads with at least that `minIndex`, so that any node answers a load
 * only once it has applied the session's own saves (without asking the leader).
 */
import type { LoadOptions, SaveOptions, SaveResult, Session } from "./replicator-api.js";

/** What a session runs on: a Replicator's save (with its index) and load. */
export interface SessionTarget {
  saveWithIndex(data: Uint8Array | string, opts?: SaveOptions): Promise<SaveResult>;
  load(data: Uint8Array | string, opts?: LoadOptions): Promise<Uint8Array>;
}

/**
 * The highest log index a session has seen: what both sessions (this one and the gRPC client's,
 * api/client-session.ts) keep. An index that is not a safe integer, or not higher, is ignored.
 */
export class HighestIndex {
  private highest = 0;

  get lastIndex(): number {
    return this.highest;
  }

  observe(index: number): void {
    if (Number.isSafeInteger(index) && index > this.highest) this.highest = index;
  }
}

export function createSession(target: SessionTarget): Session {
  const seen = new HighestIndex();
  return {
    get lastIndex() {
      return seen.lastIndex;
    },
    observe: (index) => seen.observe(index),
    async save(data, opts) {
      const r = await target.saveWithIndex(data, opts);
      seen.observe(r.index);
      return r.data;
    },
    load(data, opts = {}) {
      return target.load(data, {
        ...opts,
        minIndex: Math.max(opts.minIndex ?? 0, seen.lastIndex),
      });
    },
  };
}
