/**
 * A save with a client-chosen request id (src/store/request-records.ts): the store applies an id
 * at most once and answers a repeat with the first result, so such a save is retried with the
 * same id on an unknown outcome too (a timeout, a lost leader), until
 * `retryForMs` after it was issued. Without an id nothing here runs: a plain save is not retried
 * once it may have been written.
 */
import { NexusError, StoreError, isNexusError } from "../errors/index.js";
import { validateIssuedAt, validateRequestId } from "../store/request-records.js";
import type { SavedResult } from "./client-requests.js";
import type { ClientRequest } from "./entry-payload.js";
import type { SaveOptions, SaveResult } from "./replicator-api.js";
import { isRetryableUnwritten, retryUnwritten } from "./retry.js";

/** How long a save with a request id keeps retrying by default, in ms from its issue time. */
export const DEFAULT_SAVE_RETRY_MS = 60_000;

export interface RequestSaveWiring {
  readonly heartbeatTickMs: number;
  /** One attempt: propose the save carrying `request` and resolve with the store's result. */
  attempt(request: ClientRequest): Promise<SavedResult>;
}

export async function saveWithRequestId(
  id: string,
  opts: SaveOptions,
  w: RequestSaveWiring,
): Promise<SaveResult> {
  validateRequestId(id);
  const issuedAtMs = opts.issuedAtMs ?? Date.now();
  validateIssuedAt(issuedAtMs);
  const retryForMs = opts.retryForMs ?? DEFAULT_SAVE_RETRY_MS;
  if (!Number.isSafeInteger(retryForMs) || retryForMs < 0) {
    throw new NexusError(
      "INVALID_ARGUMENT",
      `retryForMs must be an integer number of ms >= 0, got ${String(retryForMs)}`,
    );
  }
  return retryUnwritten(
    async () => {
      const r = await w.attempt({ id, issuedAtMs });
      if (!r.ok) throw new StoreError(r.error);
      return { data: r.data, index: r.index };
    },
    {
      deadline: Math.max(issuedAtMs + retryForMs, Date.now() + 1),
      intervalMs: Math.min(50, w.heartbeatTickMs),
      signal: opts.signal,
      // NOT_SERVING (this node's store is down, or it diverged) is refused up front with nothing
      // written: the caller goes to another node at once rather than wait here.
      retryable: (e) => isRetryableUnwritten(e) || isNexusError(e, "UNKNOWN_OUTCOME"),
    },
  );
}
