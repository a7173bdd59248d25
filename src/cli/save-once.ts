/**
 * `repl`'s saves: each carries a request id (`request-id`, `request-issued-at`), so a save whose
 * outcome is unknown (no answer came back, the node could not be reached) is sent again with the
 * same id until the deadline: applied once, whatever the retries (src/store/request-records.ts).
 */
import { randomUUID } from "node:crypto";
import type { NexusClient } from "../api/client.js";
import { REQUEST_ID_ARG, REQUEST_ISSUED_AT_ARG } from "../api/service.js";
import { isNexusError } from "../errors/index.js";

/** Ms between attempts. */
const RETRY_PAUSE_MS = 200;

/**
 * Saves `data` with a new request id, retrying on UNKNOWN_OUTCOME, UNREACHABLE or NO_LEADER
 * until `forMs` has passed since the first attempt; then the last error. NOT_SERVING (this node's
 * store is down, or it diverged: nothing was written) comes back at once, so the user can go to
 * another node. `onRetry` hears of each retry (the id and why).
 */
export async function saveOnce(
  client: Pick<NexusClient, "save">,
  data: Uint8Array,
  args: Record<string, string>,
  forMs: number,
  onRetry: (requestId: string, err: Error) => void = () => undefined,
  id: string = randomUUID(),
): Promise<Uint8Array> {
  const issuedAt = Date.now();
  const all = { ...args, [REQUEST_ID_ARG]: id, [REQUEST_ISSUED_AT_ARG]: String(issuedAt) };
  for (;;) {
    try {
      return await client.save(data, all);
    } catch (err) {
      const retryable =
        isNexusError(err, "UNKNOWN_OUTCOME") ||
        isNexusError(err, "UNREACHABLE") ||
        isNexusError(err, "NO_LEADER");
      if (!retryable || Date.now() - issuedAt + RETRY_PAUSE_MS >= forMs) throw err;
      onRetry(id, err as Error);
      await new Promise((r) => setTimeout(r, RETRY_PAUSE_MS));
    }
  }
}
