/**
 * Reads with a staleness bound (consistency "bounded"): a follower or learner in a far region
 * serves a load from its own store, with no round trip to the leader, when it knows it is within
 * the caller's bound, and refuses (TOO_STALE) or falls back to ReadIndex when it is not. It never
 * serves staler data than asked for without saying so.
 *
 * The bound, either or both:
 * - `maxLagEntries`: at most this many entries behind the highest commit index a leader told this
 *   node of (leader-freshness.ts). That index comes with the leader's appends and heartbeats
 *   (its own commit index, not the clamped one a heartbeat commits by), so it is only
 *   known while a leader is heard from: with this bound alone, a node that heard no leader for an
 *   election timeout is stale too (a partitioned node would otherwise see no lag at all).
 * - `maxLagMs`: a leader heard from within this many ms (monotonic clock). What this node had
 *   applied then, up to the lag, is what the leader had committed then (less the one-way delay).
 *
 * On the leader, "heard from a leader" is "heard from a quorum of voters": a leader cut off from
 * its quorum may have been deposed, so its freshness ages from the last time a quorum answered.
 */
import { NexusError } from "../errors/index.js";
import type { Staleness } from "./leader-freshness.js";

/** What a bounded read may be behind by, and what to do when this node is further behind. */
export interface StalenessBound {
  /** At most this many entries behind the leader's commit index (an integer >= 0). */
  readonly maxLagEntries?: number | undefined;
  /** A leader heard from within this many ms (an integer >= 1). */
  readonly maxLagMs?: number | undefined;
  /**
   * Beyond the bound: "refuse" (default: TOO_STALE, nothing read) or "linearizable" (ReadIndex
   * through the leader, one round trip).
   */
  readonly onStale?: "refuse" | "linearizable" | undefined;
}

/** The gRPC Load args that carry a bound (with `consistency` = `bounded`). */
export const BOUND_ARGS = {
  maxLagEntries: "max-lag-entries",
  maxLagMs: "max-lag-ms",
  onStale: "on-stale",
} as const;

/** Checks a bound: at least one limit, integers in range. INVALID_ARGUMENT otherwise. */
export function checkStalenessBound(b: StalenessBound | undefined): StalenessBound {
  if (b === undefined || (b.maxLagEntries === undefined && b.maxLagMs === undefined)) {
    throw new NexusError(
      "INVALID_ARGUMENT",
      "a bounded read needs maxLagEntries or maxLagMs (gRPC args max-lag-entries, max-lag-ms)",
    );
  }
  const limit = (v: number | undefined, min: number, name: string): void => {
    if (v !== undefined && (!Number.isSafeInteger(v) || v < min)) {
      throw new NexusError("INVALID_ARGUMENT", `${name} must be an integer >= ${min}, got ${v}`);
    }
  };
  limit(b.maxLagEntries, 0, "maxLagEntries");
  limit(b.maxLagMs, 1, "maxLagMs");
  if (b.onStale !== undefined && b.onStale !== "refuse" && b.onStale !== "linearizable") {
    throw new NexusError(
      "INVALID_ARGUMENT",
      `onStale must be refuse or linearizable, got "${String(b.onStale)}"`,
    );
  }
  return b;
}

/** The bound in a Load's args (strings), checked; INVALID_ARGUMENT when malformed. */
export function staleBoundOfArgs(args: Readonly<Record<string, string>>): StalenessBound {
  const int = (key: string): number | undefined => {
    const v = args[key];
    if (v === undefined) return undefined;
    if (!/^\d+$/.test(v)) {
      throw new NexusError("INVALID_ARGUMENT", `${key} must be a non-negative integer, got "${v}"`);
    }
    return Number(v);
  };
  const onStale = args[BOUND_ARGS.onStale];
  return checkStalenessBound({
    maxLagEntries: int(BOUND_ARGS.maxLagEntries),
    maxLagMs: int(BOUND_ARGS.maxLagMs),
    onStale: onStale as StalenessBound["onStale"],
  });
}

/**
 * Why a node with `s` is beyond bound `b`, or undefined when it is within it. `electionMs` is the
 * election timeout: how long a bound in entries trusts the last commit index it heard.
 */
export function staleReason(
  b: StalenessBound,
  s: Staleness,
  electionMs: number,
): string | undefined {
  const since = s.sinceLeaderMs;
  if (b.maxLagMs !== undefined && (since === undefined || since > b.maxLagMs)) {
    return since === undefined
      ? `no leader has been heard from since this node started (bound ${b.maxLagMs} ms)`
      : `the leader was last heard from ${Math.round(since)} ms ago (bound ${b.maxLagMs} ms)`;
  }
  // A time bound alone bounds the data's age only once this node has applied what the leader had
  // committed when last heard: hearing a leader recently says nothing of a slow apply.
  if (b.maxLagMs !== undefined && b.maxLagEntries === undefined && s.lagEntries > 0) {
    return (
      `this node has not applied the ${s.lagEntries} entries its leader had committed when last ` +
      `heard from (a time bound alone needs none behind; add maxLagEntries to allow some)`
    );
  }
  if (b.maxLagEntries !== undefined) {
    if (since === undefined || since > electionMs) {
      return `no leader heard from within the election timeout (${electionMs} ms), so the lag is unknown`;
    }
    if (s.lagEntries > b.maxLagEntries) {
      return `this node is ${s.lagEntries} entries behind the leader's commit index (bound ${b.maxLagEntries})`;
    }
  }
  return undefined;
}

/**
 * Whether a bounded read may be served from this node's store now: true within the bound; false
 * beyond it with `onStale` "linearizable" (the caller goes through ReadIndex); TOO_STALE beyond
 * it otherwise.
 */
export function servesWithinBound(
  b: StalenessBound | undefined,
  s: Staleness,
  electionMs: number,
): boolean {
  const bound = checkStalenessBound(b);
  const why = staleReason(bound, s, electionMs);
  if (why === undefined) return true;
  if (bound.onStale === "linearizable") return false;
  throw new NexusError(
    "TOO_STALE",
    `refused a bounded read: ${why}; read from a node nearer the leader, widen the bound, or ask ` +
      `for a fallback to a linearizable read (onStale "linearizable", gRPC arg on-stale)`,
  );
}
