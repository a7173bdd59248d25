/**
 * The reference the checker is tested against: a search that is obviously correct and hopelessly
 * slow, straight from the definition. It does not split by key, does not memoize, and knows no
 * tricks about unknown operations.
 *
 * A history is linearizable iff for some subset of its unknown writes and cas, some order of the
 * `ok` operations plus that subset
 * - respects real time: when `a.endMs < b.startMs` (an unknown operation never ends), `a` comes
 *   before `b`;
 * - is a legal run of `stepRegister` on every key, each register starting at `null`.
 * Failed operations and unknown reads are left out. Orders are built one operation at a time; an
 * order is abandoned as soon as its prefix breaks one of the two rules, which no extension could
 * repair, so every order is covered.
 */
import { stepRegister } from "./history.js";
import type { Operation } from "./history.js";

/** Largest history (after leaving out failed ops and unknown reads) the reference accepts. */
export const BRUTE_FORCE_MAX_OPS = 9;

/**
 * True iff `ops` is linearizable, by exhaustive search.
 * @throws RangeError when more than {@link BRUTE_FORCE_MAX_OPS} operations remain to be ordered.
 */
export function checkHistoryBruteForce(ops: readonly Operation[]): boolean {
  const okOps = ops.filter((op) => op.outcome === "ok");
  const unknown = ops.filter((op) => op.outcome === "unknown" && op.kind !== "read");
  if (okOps.length + unknown.length > BRUTE_FORCE_MAX_OPS) {
    throw new RangeError(`brute force: ${okOps.length + unknown.length} ops is too many`);
  }
  const endOf = (op: Operation): number => (op.outcome === "unknown" ? Infinity : op.endMs);
  for (let mask = 0; mask < 1 << unknown.length; mask++) {
    const chosen = [...okOps, ...unknown.filter((_, i) => (mask & (1 << i)) !== 0)];
    if (someOrder(chosen, endOf)) return true;
  }
  return false;
}

function someOrder(ops: readonly Operation[], endOf: (op: Operation) => number): boolean {
  const placed = new Array<boolean>(ops.length).fill(false);
  const registers = new Map<string, number | null>();
  const extend = (count: number): boolean => {
    if (count === ops.length) return true;
    for (let i = 0; i < ops.length; i++) {
      if (placed[i]) continue;
      const op = ops[i]!;
      // Some unplaced op must come before op: op cannot be next.
      if (ops.some((other, j) => !placed[j] && j !== i && endOf(other) < op.startMs)) continue;
      const before = registers.has(op.key) ? registers.get(op.key)! : null;
      const after = stepRegister(before, op);
      if (after === undefined) continue;
      placed[i] = true;
      registers.set(op.key, after);
      if (extend(count + 1)) return true;
      placed[i] = false;
      registers.set(op.key, before);
    }
    return false;
  };
  return extend(0);
}
