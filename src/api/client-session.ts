/**
 * Read-your-writes over the gRPC service, the client's side of Replicator.session(): a session
 * keeps the highest index its saves committed at (SaveResponse `index`) and sends it with every
 * load as the arg `min-index`, so whichever node answers has applied the session's own saves
 * first, with no round trip to the leader.
 */
import type { NexusClient } from "./client.js";
import { HighestIndex } from "../node/session.js";
import { MIN_INDEX_ARG } from "./request-args.js";

/** A session on a NexusClient (createClientSession). */
export interface ClientSession {
  /** The highest index this session saw (0 before its first save). */
  readonly lastIndex: number;
  /** NexusClient.save(), remembering the index it committed at. */
  save(data: Uint8Array, args?: Record<string, string>): Promise<Uint8Array>;
  /**
   * NexusClient.load() with `min-index` the session's `lastIndex` (unless `args` has a higher
   * one). The node answers DEADLINE_EXCEEDED (TIMEOUT) when it does not reach it in time.
   */
  load(data: Uint8Array, args?: Record<string, string>): Promise<Uint8Array>;
  /** Takes an index seen elsewhere (e.g. another session's save) into account. */
  observe(index: number): void;
}

export function createClientSession(
  client: Pick<NexusClient, "saveWithIndex" | "load">,
): ClientSession {
  const seen = new HighestIndex();
  return {
    get lastIndex() {
      return seen.lastIndex;
    },
    observe: (index) => seen.observe(index),
    async save(data, args) {
      const r = await client.saveWithIndex(data, args);
      seen.observe(r.index);
      return r.data;
    },
    load(data, args = {}) {
      const asked = Number(args[MIN_INDEX_ARG] ?? 0);
      const last = seen.lastIndex;
      const minIndex = Number.isSafeInteger(asked) ? Math.max(asked, last) : last;
      return client.load(data, { ...args, [MIN_INDEX_ARG]: String(minIndex) });
    },
  };
}
