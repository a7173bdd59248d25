/**
 * The load arg `min-index` (read-your-writes over gRPC): shared by the service, which reads it,
 * and the client's session, which sends it.
 */
import { NexusError } from "../errors/index.js";

/** The load arg asking for read-your-writes: a SaveResponse's `index` (LoadOptions.minIndex). */
export const MIN_INDEX_ARG = "min-index";

/** Splits `min-index` (a log index in decimal) off a load's args: it is not the store's. */
export function minIndexOf(all: Record<string, string>): {
  args: Record<string, string>;
  minIndex?: number;
} {
  const { [MIN_INDEX_ARG]: raw, ...args } = all;
  if (raw === undefined) return { args };
  if (!/^\d{1,15}$/.test(raw)) {
    throw new NexusError(
      "INVALID_ARGUMENT",
      `request arg ${MIN_INDEX_ARG} must be a log index in decimal (a Save's index), got "${raw.slice(0, 40)}"`,
    );
  }
  return { args, minIndex: Number(raw) };
}
