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

export function createSession(target: SessionTarget): Session {
  let lastIndex = 0;
  const observe = (index: number): void => {
    if (Number.isSafeInteger(index) && index > lastIndex) lastIndex = index;
  };
  return {
    get lastIndex() {
      return lastIndex;
    },
    observe,
    async save(data, opts) {
      const r = await target.saveWithIndex(data, opts);
      observe(r.index);
      return r.data;
    },
    load(data, opts = {}) {
      return target.load(data, { ...opts, minIndex: Math.max(opts.minIndex ?? 0, lastIndex) });
    },
  };
}
