/**
 * The linearizability checker of the chaos suite: Wing & Gong's search with Lowe's memoization,
 * one register at a time.
 *
 * ## What it decides
 *
 * A history (see history.ts) is linearizable when there is one total order of its operations that
 * (1) respects real time: if `a` completed before `b` was invoked, `a` comes first, and (2) is a
 * legal run of the register model (`stepRegister`) from `null`. Operations count this way:
 * - `ok`: must be in the order, exactly once, at an instant in `[startMs, endMs]`;
 * - `unknown` write or cas: may be in the order at any instant after `startMs`, or not at all
 *   (its `endMs` bounds nothing);
 * - `failed` operations and `unknown` reads are left out.
 *
 * Real time: `a` precedes `b` only when `a.endMs < b.startMs`, strictly. Equal instants count as
 * overlapping: the clock's resolution cannot say which came first, and the checker must never
 * reject a linearizable history.
 *
 * Registers are independent (P-compositionality, Herlihy & Wing §3.3): a history is linearizable
 * iff each register's sub-history is, so each key is judged on its own, with its own budget.
 *
 * ## How (per register)
 *
 * The search is Wing & Gong's depth-first search over the `ok` operations: at each step, pick a
 * pending operation that no other pending operation must precede (its `startMs` is at most the
 * earliest `endMs` among pending operations), apply it to the model, recurse; backtrack on a dead
 * end. Lowe's memoization prunes a step that reaches a configuration (set of linearized
 * operations, register value) already explored: it failed before, it fails again. The set is a
 * bitset; its cache key is the first pending index plus the linearized indices of the operations
 * that overlap it (no other can be linearized while it is pending). The model is `stepRegister`'s,
 * run on value ids; the tests hold it to `stepRegister` through the brute-force reference.
 *
 * Unknown writes and cas never end, so in the plain search they are pending forever and multiply
 * the configurations. They are handled lazily instead, which keeps them out of the search unless
 * an observation needs them:
 * - An unknown operation can always be delayed (it has no deadline), so some linearization places
 *   each one it uses immediately before the `ok` operation that needs its effect. The search
 *   therefore only inserts a short *block* of unknown operations right before an `ok` operation
 *   that the current value does not explain: a read of 7 when the register holds 5 (an unknown
 *   write of 7, or a chain of unknown cas ending in 7: a simple path in the value graph, at most
 *   one write, then cas), a cas expecting 7 likewise, or a cas that did not match although the
 *   register holds what it expected (one unknown op that changes the value). Nothing else is tried.
 * - Values that no operation observes (no `ok` read returns it, no cas expects it) are all one
 *   value, NEUTRAL: the model cannot tell them apart, so neither does the search. Unknown writes
 *   of values nobody observed collapse into one class: the typical chaos write that timed out and
 *   was never seen costs nothing. Likewise, once every observer of a value is linearized, the
 *   cache treats that value as NEUTRAL.
 * - Interchangeable unknown operations (same effect) are used earliest-invoked first, so the used
 *   ones are always a prefix of their class and equal choices meet in the cache; the cache also
 *   prunes by dominance: a configuration that used a superset of the unknown operations of a
 *   failed one, with the same `ok` set and value, fails too.
 * - Two phases. First a relaxed search, in which an unknown operation may take effect any number
 *   of times: every real linearization is a relaxed one, so a relaxed violation is a violation,
 *   and its configurations are just (`ok` set, value), Lowe's bound however many unknown ops
 *   there are. When it finds a linearization in which each unknown op can be a distinct one (the
 *   usual case), that is a real linearization: ok. Only otherwise does the exact search run, in
 *   which each unknown op takes effect at most once (an unknown write read, overwritten, and read
 *   again is a violation).
 *
 * A budget (explored states and wall time per key) bounds a pathological search: then the verdict
 * is `unknown`, never `ok`. What can reach it: the exact search proving a violation on one busy
 * register (10 clients on one key, thousands of unknown ops), or histories with ops so long that
 * hundreds overlap.
 *
 * On a violation, the report names the furthest point any linearization reached: how many `ok`
 * operations it placed, the values the register could hold there, the operations none of which
 * could be placed next, and the tail of that longest linearization.
 */
import type { Operation, OpKind } from "./history.js";

/** Options of {@link checkHistory}. Budgets apply to each key separately. */
export interface CheckOptions {
  /** Explored search states per key before giving up with verdict `unknown`. Default 2,000,000. */
  readonly maxStates?: number;
  /** Wall time per key in ms before giving up with verdict `unknown`. Default 60,000. */
  readonly maxMs?: number;
  /**
   * Which operations to judge; the others are left out as if never issued. Default: all. E.g.
   * `(op) => op.mode !== "local"` judges a run without its local reads, so that a run can show
   * both that linearizable reads are linearizable and that local reads are not.
   */
  readonly include?: (op: Operation) => boolean;
  /** How many operations of the longest linearization a violation report shows. Default 12. */
  readonly tailOps?: number;
  /**
   * "auto" (default): a relaxed search first, in which an unknown op may take effect more than
   * once (a violation there is a violation; its linearization is usually a real one), then the
   * exact search only when needed. "exact": only the exact search, slower on violations; for
   * tests of the checker.
   */
  readonly search?: "auto" | "exact";
}

/** The verdict on one register, or on a whole history. */
export type Verdict = "ok" | "violation" | "unknown";

/** Search statistics of one key. */
export interface SearchStats {
  /** Configurations the search entered (each linearizes one more `ok` operation). */
  readonly statesExplored: number;
  /** Steps pruned because an equal or dominating configuration had already failed. */
  readonly cacheHits: number;
  /** Configurations held in the cache at the end. */
  readonly cacheSize: number;
  /** Wall time of the search, ms. */
  readonly elapsedMs: number;
  /** Whether the exact search ran: the relaxed one (unknown ops may take effect more than
   * once) found a linearization, but it needed an unknown op twice. */
  readonly exactSearch: boolean;
}

/** Where the search got stuck on a register that is not linearizable. */
export interface ViolationDetail {
  /** `ok` operations placed by the longest linearization found (of `KeyVerdict.okOps`). */
  readonly linearizedOps: number;
  /** The register values (`null`: never written; "unobserved": some value nobody read) that
   * linearizations of that length could leave. */
  readonly values: readonly (number | null | "unobserved")[];
  /** The pending operations that could have come next there, none of which fits. */
  readonly stuckAt: readonly Operation[];
  /** The earliest completion among them: no linearization gets past this instant. */
  readonly stuckAtMs: number;
  /** The last operations of that longest linearization, oldest first; unknown operations that
   * the linearization made take effect are included. */
  readonly tail: readonly Operation[];
}

/** The verdict on one register. */
export interface KeyVerdict {
  readonly key: string;
  /** True iff `verdict === "ok"`. */
  readonly ok: boolean;
  readonly verdict: Verdict;
  /** Operations judged: `ok` ones plus `unknown` writes and cas. */
  readonly ops: number;
  readonly okOps: number;
  readonly unknownOps: number;
  /** Operations of this key left out: failed, unknown reads, excluded by `include`. */
  readonly ignoredOps: number;
  /** One line: what was decided, or why not. */
  readonly message: string;
  /** Set when `verdict === "violation"`. */
  readonly violation?: ViolationDetail;
  readonly stats: SearchStats;
}

/** The verdict on a whole history: `violation` if a key has one, else `unknown` if a key ran out
 * of budget, else `ok`. */
export interface HistoryVerdict {
  /** True iff every key is linearizable (`verdict === "ok"`). */
  readonly ok: boolean;
  readonly verdict: Verdict;
  /** Operations in the history, all outcomes. */
  readonly ops: number;
  /** One verdict per key, keys in sorted order. */
  readonly keys: readonly KeyVerdict[];
  /** Wall time of the whole check, ms. */
  readonly elapsedMs: number;
}

const DEFAULT_MAX_STATES = 2_000_000;
const DEFAULT_MAX_MS = 60_000;
const DEFAULT_TAIL_OPS = 12;

/**
 * Judges a history: splits it by key, leaves out failed operations and unknown reads, and runs the
 * search on each register. Never rejects a linearizable history; reports `unknown` (not `ok`) when
 * a key's budget runs out.
 *
 * @throws TypeError when an operation is malformed (a clear message names it): missing or
 *   non-integer values, times that are not finite or end before they start, duplicate ids.
 */
export function checkHistory(ops: readonly Operation[], opts: CheckOptions = {}): HistoryVerdict {
  const t0 = performance.now();
  const maxStates = opts.maxStates ?? DEFAULT_MAX_STATES;
  const maxMs = opts.maxMs ?? DEFAULT_MAX_MS;
  const tailOps = opts.tailOps ?? DEFAULT_TAIL_OPS;
  if (!(maxStates > 0) || !(maxMs > 0) || !(tailOps >= 0)) {
    throw new TypeError(
      `checkHistory: maxStates, maxMs must be > 0 and tailOps >= 0 (got ${maxStates}, ${maxMs}, ${tailOps})`,
    );
  }
  const ids = new Set<number>();
  const byKey = new Map<string, Operation[]>();
  for (const op of ops) {
    validateOperation(op);
    if (ids.has(op.id)) throw new TypeError(`checkHistory: duplicate operation id ${op.id}`);
    ids.add(op.id);
    let list = byKey.get(op.key);
    if (list === undefined) byKey.set(op.key, (list = []));
    list.push(op);
  }
  const keys: KeyVerdict[] = [];
  for (const key of [...byKey.keys()].sort()) {
    keys.push(checkKey(key, byKey.get(key) ?? [], { maxStates, maxMs, tailOps, opts }));
  }
  const verdict: Verdict = keys.some((k) => k.verdict === "violation")
    ? "violation"
    : keys.some((k) => k.verdict === "unknown")
      ? "unknown"
      : "ok";
  return {
    ok: verdict === "ok",
    verdict,
    ops: ops.length,
    keys,
    elapsedMs: performance.now() - t0,
  };
}

/**
 * Checks that `op` is a well-formed Operation and throws a TypeError naming it otherwise. The
 * checker calls it on every operation; a history reader may call it on each line it parses.
 */
export function validateOperation(op: Operation): void {
  const bad = (why: string): never => {
    throw new TypeError(`malformed operation ${safeJson(op)}: ${why}`);
  };
  if (typeof op !== "object" || op === null) bad("not an object");
  if (!Number.isSafeInteger(op.id)) bad("id must be an integer");
  if (!Number.isSafeInteger(op.client)) bad("client must be an integer");
  if (typeof op.key !== "string") bad("key must be a string");
  if (op.kind !== "read" && op.kind !== "write" && op.kind !== "cas") {
    bad('kind must be "read", "write" or "cas"');
  }
  if (op.outcome !== "ok" && op.outcome !== "failed" && op.outcome !== "unknown") {
    bad('outcome must be "ok", "failed" or "unknown"');
  }
  if (!Number.isFinite(op.startMs) || !Number.isFinite(op.endMs)) bad("times must be finite");
  if (op.endMs < op.startMs) bad("endMs is before startMs");
  if (op.outcome === "failed") return;
  const isValue = (v: unknown): boolean => v === null || Number.isSafeInteger(v);
  if (op.kind === "write" && !Number.isSafeInteger(op.value)) bad("a write needs an integer value");
  if (op.kind === "cas") {
    if (!Number.isSafeInteger(op.value)) bad("a cas needs an integer value");
    // Absent means null, as in stepRegister.
    if (op.expected !== undefined && !isValue(op.expected)) {
      bad("a cas's expected must be an integer or null");
    }
    if (op.outcome === "ok" && typeof op.casOk !== "boolean") bad("an ok cas needs casOk");
  }
  if (op.kind === "read" && op.outcome === "ok" && !isValue(op.result)) {
    bad("an ok read needs result: an integer or null");
  }
}

function safeJson(x: unknown): string {
  try {
    return JSON.stringify(x);
  } catch {
    return String(x);
  }
}

// ---------------------------------------------------------------------------------------------
// One register.

const READ = 0;
const WRITE = 1;
const CAS = 2;

/** A class of interchangeable unknown operations: same effect on the register. */
interface UnknownClass {
  /** WRITE: from any value; CAS: only from `from`. */
  readonly kind: typeof WRITE | typeof CAS;
  readonly from: number;
  readonly to: number;
  /** Members, earliest-invoked first; the search uses them in this order. */
  readonly ops: readonly Operation[];
  readonly starts: readonly number[];
}

/** A register's sub-history, in the numeric form the search runs on. Value ids: 0..neutral-1 are
 * the observed values (`values[id]`), `neutral` is every value nobody observes. */
interface Problem {
  readonly ok: readonly Operation[];
  readonly start: Float64Array;
  readonly end: Float64Array;
  readonly kind: Uint8Array;
  /** read: result; write: value; cas: expected. */
  readonly a: Int32Array;
  /** cas: the new value. */
  readonly b: Int32Array;
  readonly casOk: Uint8Array;
  readonly values: readonly (number | null)[];
  readonly neutral: number;
  readonly initial: number;
  /**
   * Per value id: the last ok op (in start order) that observes it (reads it or is a cas
   * expecting it), or Infinity when an unknown cas expects it (it may always matter). Once every
   * op up to there is linearized, no future step can tell the value from NEUTRAL.
   */
  readonly lastObserver: Float64Array;
  readonly classes: readonly UnknownClass[];
  /** Unknown write class id per target value, or -1. */
  readonly writeTo: Int32Array;
  /** Unknown cas class ids per target value. */
  readonly casInto: readonly (readonly number[])[];
  /** Unknown cas class ids per source value. */
  readonly casFrom: readonly (readonly number[])[];
  /** All unknown write class ids, the neutral one first. */
  readonly writeClasses: readonly number[];
}

const KIND_CODE: Record<OpKind, number> = { read: READ, write: WRITE, cas: CAS };

function buildProblem(okOps: Operation[], unknown: Operation[]): Problem {
  okOps.sort((x, y) => x.startMs - y.startMs || x.endMs - y.endMs || x.id - y.id);
  unknown.sort((x, y) => x.startMs - y.startMs || x.id - y.id);
  // Observed values: only these can be told apart by the model.
  const valueId = new Map<number | null, number>();
  const values: (number | null)[] = [];
  const observe = (v: number | null): void => {
    if (!valueId.has(v)) {
      valueId.set(v, values.length);
      values.push(v);
    }
  };
  for (const op of okOps) {
    if (op.kind === "read") observe(op.result ?? null);
    else if (op.kind === "cas") observe(op.expected ?? null);
  }
  for (const op of unknown) if (op.kind === "cas") observe(op.expected ?? null);
  const neutral = values.length;
  const canon = (v: number | null): number => valueId.get(v) ?? neutral;

  const n = okOps.length;
  const start = new Float64Array(n);
  const end = new Float64Array(n);
  const kind = new Uint8Array(n);
  const a = new Int32Array(n);
  const b = new Int32Array(n);
  const casOk = new Uint8Array(n);
  okOps.forEach((op, i) => {
    start[i] = op.startMs;
    end[i] = op.endMs;
    kind[i] = KIND_CODE[op.kind];
    if (op.kind === "read") a[i] = canon(op.result ?? null);
    else if (op.kind === "write") a[i] = canon(op.value ?? null);
    else {
      a[i] = canon(op.expected ?? null);
      b[i] = canon(op.value ?? null);
      casOk[i] = op.casOk === true ? 1 : 0;
    }
  });

  const lastObserver = new Float64Array(neutral + 1).fill(-1);
  okOps.forEach((op, i) => {
    if (op.kind !== "write") lastObserver[a[i]!] = i;
  });
  for (const op of unknown)
    if (op.kind === "cas") lastObserver[canon(op.expected ?? null)] = Infinity;

  const classByName = new Map<
    string,
    { kind: typeof WRITE | typeof CAS; from: number; to: number; ops: Operation[] }
  >();
  for (const op of unknown) {
    const to = canon(op.value ?? null);
    const from = op.kind === "cas" ? canon(op.expected ?? null) : -1;
    if (op.kind === "cas" && from === to) continue; // swaps a value for itself: no effect, ever
    const name = `${from}>${to}`;
    let c = classByName.get(name);
    if (c === undefined) {
      c = { kind: op.kind === "cas" ? CAS : WRITE, from, to, ops: [] };
      classByName.set(name, c);
    }
    c.ops.push(op);
  }
  const classes: UnknownClass[] = [...classByName.values()].map((c) => ({
    ...c,
    starts: c.ops.map((op) => op.startMs),
  }));
  const writeTo = new Int32Array(neutral + 1).fill(-1);
  const casInto: number[][] = Array.from({ length: neutral + 1 }, () => []);
  const casFrom: number[][] = Array.from({ length: neutral + 1 }, () => []);
  const writeClasses: number[] = [];
  classes.forEach((c, id) => {
    if (c.kind === WRITE) {
      writeTo[c.to] = id;
      writeClasses.push(id);
    } else {
      casInto[c.to]!.push(id);
      casFrom[c.from]!.push(id);
    }
  });
  writeClasses.sort((x, y) =>
    classes[x]!.to === neutral ? -1 : classes[y]!.to === neutral ? 1 : x - y,
  );
  return {
    ok: okOps,
    start,
    end,
    kind,
    a,
    b,
    casOk,
    values,
    neutral,
    initial: canon(null),
    lastObserver,
    classes,
    writeTo,
    casInto,
    casFrom,
    writeClasses,
  };
}

/** Number of elements of sorted `xs` that are <= x. */
function countAtMost(xs: readonly number[], x: number): number {
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (xs[mid]! <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** One way to take the next step: linearize ok op `op`, right after the unknown operations of
 * `block` (class ids, applied in order), leaving the register at `state`. */
interface Child {
  readonly op: number;
  readonly block: readonly number[];
  readonly state: number;
}

interface Frame {
  readonly children: Child[];
  next: number;
  /** The window's earliest pending completion when the children were made. */
  readonly minEnd: number;
  /** What the step into this frame changed, to undo it. */
  readonly op: number;
  readonly block: readonly number[];
  readonly prevState: number;
  readonly prevF: number;
  readonly prevUsed: Int32Array;
}

const EMPTY_USED = new Int32Array(0);
const NO_BLOCK: readonly number[] = [];

/** The budget of one key, shared by both phases of its search. */
interface Budget {
  readonly maxStates: number;
  readonly deadline: number;
  states: number;
  work: number;
}

/** Thrown when the budget runs out; caught by {@link checkKey}. */
class OutOfBudget extends Error {}

/** What one search phase found. */
interface SearchResult {
  readonly verdict: "ok" | "violation";
  /** ok: the linearization found uses each unknown op at most once (it is a real one). */
  readonly exact: boolean;
  readonly cacheHits: number;
  readonly cacheSize: number;
  /** The furthest point reached: `ok` ops linearized there, values, candidates, tail. */
  readonly best: number;
  readonly bestValues: ReadonlySet<number>;
  readonly bestStuck: readonly number[];
  readonly bestStuckAt: number;
  readonly bestTail: readonly Operation[];
}

function checkKey(
  key: string,
  all: readonly Operation[],
  cfg: { maxStates: number; maxMs: number; tailOps: number; opts: CheckOptions },
): KeyVerdict {
  const t0 = performance.now();
  const okOps: Operation[] = [];
  const unknown: Operation[] = [];
  for (const op of all) {
    if (cfg.opts.include !== undefined && !cfg.opts.include(op)) continue;
    if (op.outcome === "ok") okOps.push(op);
    else if (op.outcome === "unknown" && op.kind !== "read") unknown.push(op);
  }
  const ignoredOps = all.length - okOps.length - unknown.length;
  const p = buildProblem(okOps, unknown);
  const budget: Budget = {
    maxStates: cfg.maxStates,
    deadline: t0 + cfg.maxMs,
    states: 0,
    work: 4095, // the first step checks the clock
  };

  // Phase 1, relaxed: an unknown op may take effect any number of times. Every linearization
  // of the real problem is one of the relaxed problem, so a relaxed violation is a violation.
  // Its configurations are only (ok ops linearized, value): Lowe's bound, whatever the unknown
  // ops. Phase 2, exact: each unknown op takes effect at most once; it runs only when the
  // relaxed search found a linearization, and is then usually as quick.
  let phase: "relaxed" | "exact" = "relaxed";
  let result: SearchResult | undefined;
  let cacheHits = 0;
  let cacheSize = 0;
  try {
    if (cfg.opts.search !== "exact") {
      result = searchRegister(p, true, budget, cfg.tailOps);
      cacheHits += result.cacheHits;
      cacheSize += result.cacheSize;
    }
    // Most often the relaxed linearization found never needs an unknown op twice: it is a
    // linearization of the real problem, and the exact search is not needed.
    if (result === undefined || (result.verdict === "ok" && !result.exact)) {
      phase = "exact";
      result = searchRegister(p, false, budget, cfg.tailOps);
      cacheHits += result.cacheHits;
      cacheSize += result.cacheSize;
    }
  } catch (e) {
    if (!(e instanceof OutOfBudget)) throw e;
    result = undefined;
  }

  const states = budget.states;
  const elapsedMs = performance.now() - t0;
  const stats: SearchStats = {
    statesExplored: states,
    cacheHits,
    cacheSize,
    elapsedMs,
    exactSearch: phase === "exact",
  };
  const verdict: Verdict = result === undefined ? "unknown" : result.verdict;
  const base = {
    key,
    ok: verdict === "ok",
    verdict,
    ops: okOps.length + unknown.length,
    okOps: okOps.length,
    unknownOps: unknown.length,
    ignoredOps,
    stats,
  };
  const counts = `${okOps.length} ok + ${unknown.length} unknown ops`;
  const cost = `${states} states, ${elapsedMs.toFixed(0)} ms`;
  if (result === undefined) {
    const why =
      states > cfg.maxStates
        ? `${cfg.maxStates} states explored (maxStates)`
        : `${cfg.maxMs} ms spent (maxMs)`;
    const where =
      phase === "exact"
        ? "the relaxed search (unknown ops may take effect more than once) found a " +
          "linearization, the exact one did not finish"
        : "the relaxed search did not finish";
    return {
      ...base,
      message:
        `verdict unknown, NOT ok: search budget exhausted after ${why}: ${where} ` +
        `(${counts}); raise maxStates/maxMs or check a shorter history`,
    };
  }
  if (result.verdict === "ok") {
    return { ...base, message: `linearizable (${counts}; ${cost})` };
  }
  const violation: ViolationDetail = {
    linearizedOps: result.best,
    values: [...result.bestValues]
      .sort((x, y) => x - y)
      .map((v) => (v === p.neutral ? "unobserved" : p.values[v]!)),
    stuckAt: result.bestStuck.map((i) => p.ok[i]!),
    stuckAtMs: result.bestStuckAt,
    tail: result.bestTail,
  };
  const how = phase === "relaxed" ? "" : "; linearizable only if an unknown op took effect twice";
  return {
    ...base,
    violation,
    message:
      `NOT linearizable: no linearization places more than ${result.best} of ${okOps.length} ` +
      `ok ops (stuck before t=${result.bestStuckAt}${how}; ${counts}; ${cost})`,
  };
}

/**
 * Wing & Gong's depth-first search with Lowe's cache over one register's `ok` operations, with
 * unknown operations inserted in blocks where an observation needs them. `relaxed`: unknown
 * operations may be used any number of times (the search then ignores which were used).
 * @throws OutOfBudget when `budget` runs out.
 */
function searchRegister(
  p: Problem,
  relaxed: boolean,
  budget: Budget,
  tailOps: number,
): SearchResult {
  const n = p.ok.length;
  const spend = (k: number): void => {
    budget.work += k;
    if (budget.work >= 4096) {
      budget.work = 0;
      if (performance.now() > budget.deadline) throw new OutOfBudget();
    }
  };

  // Mutable search state, restored on backtrack.
  const linearized = new Uint8Array(n);
  const usedCount = new Int32Array(p.classes.length);
  /** The unknown classes used so far, sorted, with repetition: the cache's dominance check.
   * Always empty when relaxed. */
  let used: Int32Array = EMPTY_USED;
  let state = p.initial;
  let f = 0; // first pending index: every op before it is linearized
  let depth = 0;

  // Lowe's cache: (f, linearized beyond f, value) -> the `used` sets already explored there.
  const cache = new Map<string, Int32Array | Int32Array[]>();
  let cacheHits = 0;
  let cacheSize = 0;

  // The furthest point reached, for the report.
  let best = -1;
  let bestValues = new Set<number>();
  let bestStuck: number[] = [];
  let bestStuckAt = Infinity;
  let bestTail: Operation[] = [];
  const path: Operation[] = []; // ok ops and used unknown ops, in linearization order

  /** Pending ok ops that may come next, and the earliest completion among pending ops. */
  const window = (): { cands: number[]; minEnd: number } => {
    const cands: number[] = [];
    let minEnd = Infinity;
    for (let i = f; i < n; i++) {
      if (linearized[i] === 1) continue;
      if (p.start[i]! > minEnd) break;
      cands.push(i);
      if (p.end[i]! < minEnd) minEnd = p.end[i]!;
    }
    return { cands, minEnd };
  };

  const cacheKey = (): string => {
    // A value nobody can observe any more behaves as NEUTRAL from here on.
    let k = `${f}:${p.lastObserver[state]! < f ? p.neutral : state}`;
    // Every op that starts after op f ends must follow it, so none is linearized while f is
    // pending: the linearized set is [0, f) plus some of the ops that start before f ends.
    for (let i = f + 1; i < n && p.start[i]! <= p.end[f]!; i++) {
      if (linearized[i] === 1) k += `,${i - f}`;
    }
    return k;
  };

  /** True if `used` includes one of the sets already explored under `k`; else records it. */
  const seen = (k: string): boolean => {
    const prev = cache.get(k);
    if (prev === undefined) {
      cache.set(k, used);
      cacheSize++;
      return false;
    }
    const list = Array.isArray(prev) ? prev : [prev];
    for (const s of list) if (includes(used, s)) return true;
    if (Array.isArray(prev)) prev.push(used);
    else cache.set(k, [prev, used]);
    cacheSize++;
    return false;
  };

  const available = (c: number, minEnd: number): boolean =>
    (relaxed ? 0 : usedCount[c]!) < countAtMost(p.classes[c]!.starts, minEnd);

  /** Minimal blocks of available unknown ops that take the register from `from` to `to`
   * (relaxed: one, if any, since which ops are used does not matter). */
  const blocksTo = (from: number, to: number, minEnd: number): number[][] => {
    const out: number[][] = [];
    const visited = new Set<number>([to]);
    const walk = (target: number, suffix: number[]): void => {
      spend(1);
      const w = p.writeTo[target]!;
      if (w >= 0 && available(w, minEnd)) out.push([w, ...suffix]);
      for (const c of p.casInto[target]!) {
        if (relaxed && out.length > 0) return;
        const src = p.classes[c]!.from;
        if (!available(c, minEnd) || visited.has(src)) continue;
        if (src === from) {
          out.push([c, ...suffix]);
          continue;
        }
        visited.add(src);
        walk(src, [c, ...suffix]);
        visited.delete(src);
      }
    };
    walk(to, []);
    return relaxed ? out.slice(0, 1) : out;
  };

  /** Single unknown ops that take the register away from `from` (for a cas that failed);
   * the neutral write first, as it leaves a value nobody reads. */
  const blocksAway = (from: number, minEnd: number): number[][] => {
    const out: number[][] = [];
    const targets = new Set<number>();
    for (const c of p.writeClasses) {
      const to = p.classes[c]!.to;
      if (to !== from && available(c, minEnd)) {
        out.push([c]);
        targets.add(to);
      }
    }
    for (const c of p.casFrom[from]!) {
      const to = p.classes[c]!.to;
      if (!available(c, minEnd)) continue;
      const w = p.writeTo[to]!;
      if (relaxed && targets.has(to)) continue; // the same child
      if (!relaxed && targets.has(to)) {
        // Using the cas rather than a write with the same effect keeps the more general write.
        const i = out.findIndex((bl) => bl[0] === w);
        out[i] = [c];
      } else out.push([c]);
      targets.add(to);
    }
    spend(out.length);
    return out;
  };

  const childrenOf = (cands: readonly number[], minEnd: number): Child[] => {
    const now: Child[] = [];
    const later: Child[] = [];
    for (const i of cands) {
      const a = p.a[i]!;
      switch (p.kind[i]) {
        case READ:
          if (state === a) now.push({ op: i, block: NO_BLOCK, state });
          else
            for (const bl of blocksTo(state, a, minEnd)) later.push({ op: i, block: bl, state: a });
          break;
        case WRITE:
          now.push({ op: i, block: NO_BLOCK, state: a });
          break;
        default: {
          const to = p.b[i]!;
          if (p.casOk[i] === 1) {
            if (state === a) now.push({ op: i, block: NO_BLOCK, state: to });
            else
              for (const bl of blocksTo(state, a, minEnd))
                later.push({ op: i, block: bl, state: to });
          } else if (state !== a) {
            now.push({ op: i, block: NO_BLOCK, state });
          } else {
            for (const bl of blocksAway(state, minEnd)) {
              later.push({ op: i, block: bl, state: p.classes[bl[0]!]!.to });
            }
          }
        }
      }
    }
    return later.length === 0 ? now : now.concat(later);
  };

  const noteFurthest = (cands: readonly number[], minEnd: number): void => {
    if (depth > best) {
      best = depth;
      bestValues = new Set();
      bestStuck = [...cands];
      bestStuckAt = minEnd;
      bestTail = path.slice(Math.max(0, path.length - tailOps));
    }
    if (depth === best) bestValues.add(state);
  };

  const result = (verdict: "ok" | "violation", exact = !relaxed): SearchResult => ({
    verdict,
    exact,
    cacheHits,
    cacheSize,
    best,
    bestValues,
    bestStuck,
    bestStuckAt,
    bestTail,
  });

  if (n === 0) return result("ok", true);
  const stack: Frame[] = [];
  {
    const { cands, minEnd } = window();
    noteFurthest(cands, minEnd);
    seen(cacheKey());
    stack.push({
      children: childrenOf(cands, minEnd),
      next: 0,
      minEnd,
      op: -1,
      block: NO_BLOCK,
      prevState: state,
      prevF: f,
      prevUsed: used,
    });
  }
  const undo = (
    op: number,
    block: readonly number[],
    prevState: number,
    prevF: number,
    prevUsed: Int32Array,
  ): void => {
    linearized[op] = 0;
    depth--;
    path.pop();
    for (let j = block.length - 1; j >= 0; j--) {
      if (!relaxed) usedCount[block[j]!]!--;
      path.pop();
    }
    state = prevState;
    f = prevF;
    used = prevUsed;
  };
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    const child = top.children[top.next++];
    if (child === undefined) {
      // Dead end: undo the step into this frame.
      stack.pop();
      if (top.op >= 0) undo(top.op, top.block, top.prevState, top.prevF, top.prevUsed);
      continue;
    }
    // Step: the block's unknown ops, then the ok op.
    const prevState = state;
    const prevF = f;
    const prevUsed = used;
    for (const c of child.block) {
      const members = p.classes[c]!.ops;
      path.push(members[relaxed ? 0 : usedCount[c]!]!);
      if (!relaxed) usedCount[c]!++;
    }
    if (!relaxed && child.block.length > 0) used = insertSorted(used, child.block);
    linearized[child.op] = 1;
    depth++;
    path.push(p.ok[child.op]!);
    state = child.state;
    while (f < n && linearized[f] === 1) f++;
    budget.states++;
    spend(1);
    if (budget.states > budget.maxStates) throw new OutOfBudget();
    if (depth === n) {
      // The witness: every step on the stack, then this one.
      const steps = stack.map((fr, i) => ({
        block: i + 1 < stack.length ? stack[i + 1]!.block : child.block,
        minEnd: fr.minEnd,
      }));
      return result("ok", relaxed ? usesEachOnce(p, steps) : true);
    }
    if (seen(cacheKey())) {
      cacheHits++;
      undo(child.op, child.block, prevState, prevF, prevUsed);
      continue;
    }
    const { cands, minEnd } = window();
    noteFurthest(cands, minEnd);
    stack.push({
      children: childrenOf(cands, minEnd),
      next: 0,
      minEnd,
      op: child.op,
      block: child.block,
      prevState,
      prevF,
      prevUsed,
    });
  }
  return result("violation");
}

/**
 * True if the steps of a relaxed linearization (each: the unknown classes its block uses, and the
 * window's earliest pending completion then) can use distinct unknown ops: the k-th use of a
 * class, in order, needs k members invoked by then. Members are then taken earliest first.
 */
function usesEachOnce(
  p: Problem,
  steps: readonly { block: readonly number[]; minEnd: number }[],
): boolean {
  const uses = new Int32Array(p.classes.length);
  for (const { block, minEnd } of steps) {
    for (const c of block) {
      uses[c]!++;
      if (countAtMost(p.classes[c]!.starts, minEnd) < uses[c]!) return false;
    }
  }
  return true;
}

/** True if multiset `big` (sorted) includes multiset `small` (sorted). */
function includes(big: Int32Array, small: Int32Array): boolean {
  if (small.length > big.length) return false;
  let j = 0;
  for (let i = 0; i < small.length; i++) {
    const x = small[i]!;
    while (j < big.length && big[j]! < x) j++;
    if (j === big.length || big[j]! !== x) return false;
    j++;
  }
  return true;
}

/** A new sorted array: `xs` (sorted) plus `add`. */
function insertSorted(xs: Int32Array, add: readonly number[]): Int32Array {
  const out = new Int32Array(xs.length + add.length);
  out.set(xs);
  out.set(add, xs.length);
  return out.sort();
}

// ---------------------------------------------------------------------------------------------
// Reports.

/** One operation, one line: `#12 c3 read -> 5 [100.0, 130.5] ok @n1`. */
export function describeOperation(op: Operation): string {
  const v = (x: number | null | undefined): string => (x === undefined ? "?" : String(x));
  const what =
    op.kind === "read"
      ? `read -> ${op.outcome === "ok" ? v(op.result) : "?"}`
      : op.kind === "write"
        ? `write ${v(op.value)}`
        : `cas ${v(op.expected ?? null)} -> ${v(op.value)}${op.outcome === "ok" ? (op.casOk === true ? " (swapped)" : " (no match)") : ""}`;
  const mode = op.mode !== undefined ? ` ${op.mode}` : "";
  const node = op.node !== undefined ? ` @${op.node}` : "";
  return `#${op.id} c${op.client} ${what}${mode} [${op.startMs}, ${op.endMs}] ${op.outcome}${node}`;
}

/** A printable report of a verdict: one line per key, and for a violation where the search got
 * stuck, what it could not place and the tail of the longest linearization. */
export function describeVerdict(v: HistoryVerdict): string {
  const lines = [
    `history: ${v.verdict.toUpperCase()} (${v.ops} ops, ${v.keys.length} keys, ${v.elapsedMs.toFixed(0)} ms)`,
  ];
  for (const k of v.keys) {
    lines.push(`  key ${JSON.stringify(k.key)}: ${k.verdict} - ${k.message}`);
    const d = k.violation;
    if (d === undefined) continue;
    lines.push(`    the register could hold: ${d.values.map(String).join(" | ")}`);
    lines.push(`    none of these fits next:`);
    for (const op of d.stuckAt) lines.push(`      ${describeOperation(op)}`);
    lines.push(`    the longest linearization found ends with:`);
    for (const op of d.tail) lines.push(`      ${describeOperation(op)}`);
  }
  return lines.join("\n");
}
