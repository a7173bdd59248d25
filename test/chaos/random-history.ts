/**
 * Random register histories for the checker's tests: clients issue operations one after another on
 * a few registers; generated histories are linearizable by construction (each operation that takes
 * effect does so at a random instant of its interval, on a real register), made up (random
 * results, mostly not linearizable), or near misses (one result changed).
 */
import type { SimRandom } from "../cluster-sim/sim-random.js";
import type { Operation, OpOutcome } from "./history.js";

export interface GenOptions {
  readonly ops: number;
  readonly clients: number;
  readonly keys: number;
  /** Values are drawn from 1..values; 0 means every write writes a new value. */
  readonly values: number;
  readonly pUnknown: number;
  readonly pFailed: number;
  /** Longest gap between a client's operations, and longest operation, in ms. */
  readonly gapMs?: number;
  readonly durationMs?: number;
  /** Probability that an operation is slow: it lasts up to `slowMs` (default 50 durations). */
  readonly pSlow?: number;
  readonly slowMs?: number;
}

interface Planned {
  readonly client: number;
  readonly key: string;
  readonly kind: Operation["kind"];
  readonly startMs: number;
  readonly endMs: number;
  readonly outcome: OpOutcome;
  readonly value: number;
  readonly expected: number | null;
  /** When it takes effect; undefined: never. */
  readonly pointMs: number | undefined;
}

/** Clients issue operations one after another (a client waits for its previous outcome); each
 * operation that takes effect does so at a random instant of its interval (an unknown one, at any
 * instant after its start, or never). Integer times, so that equal instants happen. */
function plan(rng: SimRandom, g: GenOptions): Planned[] {
  const gap = g.gapMs ?? 3;
  const dur = g.durationMs ?? 4;
  const clock = new Array<number>(g.clients).fill(0);
  let fresh = 0;
  const value = (): number => (g.values === 0 ? ++fresh : 1 + rng.int(g.values));
  const someValue = (): number | null => {
    if (g.values === 0) return fresh === 0 || rng.chance(0.1) ? null : 1 + rng.int(fresh);
    return rng.chance(0.2) ? null : 1 + rng.int(g.values);
  };
  const out: Planned[] = [];
  for (let n = 0; n < g.ops; n++) {
    const client = rng.int(g.clients);
    const startMs = clock[client]! + rng.int(gap + 1);
    const slow = g.pSlow !== undefined && rng.chance(g.pSlow);
    const endMs = startMs + rng.int((slow ? (g.slowMs ?? 50 * dur) : dur) + 1);
    clock[client] = endMs;
    const kind = rng.pick(["read", "write", "cas"] as const);
    const u = rng.next();
    const outcome: OpOutcome =
      u < g.pFailed ? "failed" : u < g.pFailed + g.pUnknown ? "unknown" : "ok";
    let pointMs: number | undefined;
    if (outcome === "ok") pointMs = startMs + rng.int(endMs - startMs + 1);
    else if (outcome === "unknown" && rng.chance(0.6)) pointMs = startMs + rng.int(3 * dur + 1);
    out.push({
      client,
      key: `k${rng.int(g.keys)}`,
      kind,
      startMs,
      endMs,
      outcome,
      value: value(),
      expected: someValue(),
      pointMs,
    });
  }
  return out;
}

/** Runs the plan on real registers in the order of the effect instants and records what each
 * operation saw: a linearizable history by construction. */
export function linearizableHistory(rng: SimRandom, g: GenOptions): Operation[] {
  const planned = plan(rng, g);
  const results = new Map<number, { result?: number | null; casOk?: boolean }>();
  const order = planned
    .map((p, i) => ({ p, i, tie: rng.next() }))
    .filter((x) => x.p.pointMs !== undefined)
    .sort((x, y) => x.p.pointMs! - y.p.pointMs! || x.tie - y.tie);
  const reg = new Map<string, number | null>();
  for (const { p, i } of order) {
    const cur = reg.get(p.key) ?? null;
    if (p.kind === "read") results.set(i, { result: cur });
    else if (p.kind === "write") reg.set(p.key, p.value);
    else {
      const matches = cur === p.expected;
      if (matches) reg.set(p.key, p.value);
      results.set(i, { casOk: matches });
    }
  }
  return planned.map((p, id) => toOperation(p, id, results.get(id) ?? garbage(rng, g)));
}

/** The same shapes with made-up results: mostly not linearizable. */
export function randomHistory(rng: SimRandom, g: GenOptions): Operation[] {
  return plan(rng, g).map((p, id) => toOperation(p, id, garbage(rng, g)));
}

/** A linearizable history with one ok result changed: a near miss, often not linearizable. */
export function mutatedHistory(rng: SimRandom, g: GenOptions): Operation[] {
  const ops = linearizableHistory(rng, g);
  const okIdx = ops
    .map((op, i) => (op.outcome === "ok" && op.kind !== "write" ? i : -1))
    .filter((i) => i >= 0);
  if (okIdx.length === 0) return ops;
  const i = rng.pick(okIdx);
  const op = ops[i]!;
  // Half the time a read sees what an unknown write or cas of its register wrote: an echo that
  // is linearizable only if that op took effect there, perhaps a second time.
  const echoes = ops.filter(
    (u) =>
      u.outcome === "unknown" && u.kind !== "read" && u.key === op.key && u.startMs <= op.endMs,
  );
  if (op.kind === "read" && echoes.length > 0 && rng.chance(0.5)) {
    ops[i] = { ...op, result: rng.pick(echoes).value ?? null };
    return ops;
  }
  ops[i] =
    op.kind === "read"
      ? { ...op, result: op.result === null ? 1 : rng.chance(0.5) ? null : (op.result ?? 0) + 1 }
      : { ...op, casOk: op.casOk !== true };
  return ops;
}

function garbage(rng: SimRandom, g: GenOptions): { result: number | null; casOk: boolean } {
  const n = g.values === 0 ? 4 : g.values;
  return { result: rng.chance(0.25) ? null : 1 + rng.int(n), casOk: rng.chance(0.5) };
}

function toOperation(
  p: Planned,
  id: number,
  res: { result?: number | null; casOk?: boolean },
): Operation {
  const base = {
    id,
    client: p.client,
    key: p.key,
    startMs: p.startMs,
    endMs: p.endMs,
    outcome: p.outcome,
  };
  const ok = p.outcome === "ok";
  switch (p.kind) {
    case "read":
      return { ...base, kind: "read", ...(ok ? { result: res.result ?? null } : {}) };
    case "write":
      return { ...base, kind: "write", value: p.value };
    case "cas":
      return {
        ...base,
        kind: "cas",
        value: p.value,
        expected: p.expected,
        ...(ok ? { casOk: res.casOk ?? false } : {}),
      };
  }
}

/**
 * A linearizable history, then, after everything, a read that sees what an unknown write or cas
 * wrote, maybe an ok write, and the same read again: linearizable only if that op took effect
 * twice (what a relaxed search allows and the exact one does not), unless another op explains
 * one of the reads.
 */
export function echoHistory(rng: SimRandom, g: GenOptions): Operation[] {
  const ops = linearizableHistory(rng, g);
  const unknown = ops.filter((u) => u.outcome === "unknown" && u.kind !== "read");
  if (unknown.length === 0) return ops;
  const u = rng.pick(unknown);
  let t = Math.max(...ops.map((op) => op.endMs)) + 1;
  const client = g.clients;
  const add = (op: Omit<Operation, "id" | "client" | "key" | "startMs" | "endMs">): void => {
    ops.push({ ...op, id: ops.length, client, key: u.key, startMs: t, endMs: t + rng.int(2) });
    t += 2;
  };
  add({ kind: "read", result: u.value ?? null, outcome: "ok" });
  if (rng.chance(0.8))
    add({ kind: "write", value: 1 + rng.int(Math.max(g.values, 3)), outcome: "ok" });
  add({ kind: "read", result: u.value ?? null, outcome: "ok" });
  return ops;
}
