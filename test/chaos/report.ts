/**
 * The chaos run's report: what ran (seed, duration, faults), what the clients saw (operations by
 * kind and outcome, availability, latencies), whether the replicas converged, and the verdicts.
 * Computations are pure functions of the history and the fault log, tested on their own.
 */
import type { Operation, OpOutcome } from "./history.js";
import type { HistoryVerdict } from "./linearizability.js";
import type { FaultEvent } from "./nemesis.js";

/** The kinds the report groups operations by: reads split by the consistency they asked for. */
export type ReportKind = "read" | "read-local" | "write" | "cas";

export const REPORT_KINDS: readonly ReportKind[] = ["read", "read-local", "write", "cas"];

/** The report group of an operation. */
export function reportKindOf(op: Operation): ReportKind {
  if (op.kind === "read") return op.mode === "local" ? "read-local" : "read";
  return op.kind;
}

export type Counts = Record<ReportKind, Record<OpOutcome, number>>;

/** Operations counted by group and outcome. */
export function countOps(ops: readonly Operation[]): Counts {
  const c = Object.fromEntries(
    REPORT_KINDS.map((k) => [k, { ok: 0, failed: 0, unknown: 0 }]),
  ) as Counts;
  for (const op of ops) c[reportKindOf(op)][op.outcome]++;
  return c;
}

export interface Availability {
  /** Per second of the workload: the share of non-local operations completed in it that were ok,
   * or undefined when none completed in it. */
  readonly perSecond: readonly (number | undefined)[];
  /** The share of all non-local operations that were ok. */
  readonly okShare: number;
  /** The longest stretch without any ok non-local operation completing, ms, and where. */
  readonly longestGapMs: number;
  readonly longestGapFromMs: number;
}

/**
 * Availability of the service as the clients saw it. Local reads are left out: a node answers
 * them from its own store whatever happens to the cluster, so they say nothing about it.
 */
export function availability(ops: readonly Operation[], endMs: number): Availability {
  const relevant = ops.filter((o) => !(o.kind === "read" && o.mode === "local"));
  const seconds = Math.max(1, Math.ceil(endMs / 1000));
  const ok = new Array<number>(seconds).fill(0);
  const all = new Array<number>(seconds).fill(0);
  for (const o of relevant) {
    const s = Math.min(seconds - 1, Math.max(0, Math.floor(o.endMs / 1000)));
    all[s]!++;
    if (o.outcome === "ok") ok[s]!++;
  }
  const okEnds = relevant
    .filter((o) => o.outcome === "ok")
    .map((o) => o.endMs)
    .sort((a, b) => a - b);
  let longestGapMs = 0;
  let longestGapFromMs = 0;
  let prev = 0;
  for (const t of [...okEnds, endMs]) {
    if (t - prev > longestGapMs) {
      longestGapMs = t - prev;
      longestGapFromMs = prev;
    }
    prev = Math.max(prev, t);
  }
  const okCount = okEnds.length;
  return {
    perSecond: all.map((n, i) => (n === 0 ? undefined : ok[i]! / n)),
    okShare: relevant.length === 0 ? 0 : okCount / relevant.length,
    longestGapMs,
    longestGapFromMs,
  };
}

export interface Latency {
  readonly n: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

/** Nearest-rank percentile of sorted values (p in (0, 100]). */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

/** Latency of ok operations by group, ms. */
export function latencies(ops: readonly Operation[]): Record<ReportKind, Latency> {
  const out = {} as Record<ReportKind, Latency>;
  for (const k of REPORT_KINDS) {
    const d = ops
      .filter((o) => o.outcome === "ok" && reportKindOf(o) === k)
      .map((o) => o.endMs - o.startMs)
      .sort((a, b) => a - b);
    out[k] = { n: d.length, p50: percentile(d, 50), p99: percentile(d, 99), max: d.at(-1) ?? 0 };
  }
  return out;
}

/**
 * Reads that are provably stale, without any search: an `ok` read returned value v (or null),
 * yet before the read began, the write of v had completed and then another write or successful
 * cas of the same register had completed after it (for null: any write had completed). Values
 * are unique and nothing deletes a row, so v could not be current any more. A lower bound on
 * stale reads (ones the checker also rejects), useful to show local reads going stale; for
 * linearizable and lease reads it must be 0.
 */
export function provablyStaleReads(ops: readonly Operation[]): Operation[] {
  const byKey = new Map<string, Operation[]>();
  for (const o of ops) {
    let l = byKey.get(o.key);
    if (l === undefined) byKey.set(o.key, (l = []));
    l.push(o);
  }
  const stale: Operation[] = [];
  for (const list of byKey.values()) {
    const effective = list.filter(
      (o) => o.outcome === "ok" && (o.kind === "write" || (o.kind === "cas" && o.casOk === true)),
    );
    // The op that wrote each value (ok or unknown: values are unique).
    const writerOf = new Map<number, Operation>();
    for (const o of list) {
      if (
        (o.kind === "write" || o.kind === "cas") &&
        o.value !== undefined &&
        o.outcome !== "failed"
      ) {
        writerOf.set(o.value, o);
      }
    }
    for (const r of list) {
      if (r.kind !== "read" || r.outcome !== "ok") continue;
      if (r.result === null || r.result === undefined) {
        if (effective.some((w) => w.endMs < r.startMs)) stale.push(r);
        continue;
      }
      const w = writerOf.get(r.result);
      if (w === undefined || w.outcome !== "ok") continue;
      if (effective.some((w2) => w2 !== w && w.endMs < w2.startMs && w2.endMs < r.startMs)) {
        stale.push(r);
      }
    }
  }
  return stale.sort((a, b) => a.id - b.id);
}

export interface ConvergenceReport {
  /** Local reads agreed on every node after healing (and how long that took). */
  readonly localAgreed: boolean;
  readonly localWaitMs: number;
  /** The SQLite files, read after a clean stop, hold the same rows. */
  readonly filesAgree: boolean;
  /** Rows per node (or how they differ). */
  readonly detail: string;
}

export interface ReportInput {
  readonly seed: number;
  readonly readMode: string;
  readonly clients: number;
  readonly keys: readonly string[];
  /** The fault phase asked for, ms. */
  readonly plannedMs: number;
  /** When the workload stopped, ms on the run's clock. */
  readonly workloadMs: number;
  /** The whole run, wall time, ms. */
  readonly elapsedMs: number;
  readonly ops: readonly Operation[];
  readonly events: readonly FaultEvent[];
  readonly roundsPlayed: number;
  readonly biasedLocalReads: number;
  /** Reads fired at a node just before and after it was resumed or its partition healed. */
  readonly probeReads: number;
  readonly problems: readonly string[];
  /** Node processes that exited without the harness stopping them. */
  readonly crashes: readonly string[];
  readonly convergence: ConvergenceReport;
  /** Every ok/unknown operation except local reads. */
  readonly verdict: HistoryVerdict;
  /** The same history with local reads. */
  readonly verdictWithLocal: HistoryVerdict;
  readonly runDir: string;
  readonly historyKept: boolean;
}

/** Whether the run passes: linearizable without local reads, converged, no node crashed. */
export function passed(r: Pick<ReportInput, "verdict" | "convergence" | "crashes">): boolean {
  return (
    r.verdict.ok && r.convergence.localAgreed && r.convergence.filesAgree && r.crashes.length === 0
  );
}

const ms = (x: number): string => `${x < 10 ? x.toFixed(1) : Math.round(x)} ms`;
const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;

/** The per-second availability as one digit per second: 9 = 90-100% ok, 0 = under 10%, . = no op. */
export function availabilityStrip(perSecond: readonly (number | undefined)[]): string {
  const chars = perSecond.map((s) =>
    s === undefined ? "." : String(Math.min(9, Math.floor(s * 10))),
  );
  const lines: string[] = [];
  for (let i = 0; i < chars.length; i += 60) {
    lines.push(`  ${String(i).padStart(4)}s ${chars.slice(i, i + 60).join("")}`);
  }
  return lines.join("\n");
}

function verdictLines(v: HistoryVerdict): string[] {
  return v.keys.map(
    (k) =>
      `    ${k.key}: ${k.verdict} (${k.okOps} ok + ${k.unknownOps} unknown ops, ` +
      `${k.stats.statesExplored} states, ${ms(k.stats.elapsedMs)}) ${k.message}`,
  );
}

/** The report as text. */
export function formatReport(r: ReportInput): string {
  const out: string[] = [];
  const ok = passed(r);
  out.push(`chaos run: ${ok ? "PASSED" : "FAILED"}  seed ${r.seed}  reads ${r.readMode}`);
  out.push(
    `duration: ${(r.plannedMs / 1000).toFixed(0)} s of faults asked, workload ${(r.workloadMs / 1000).toFixed(1)} s, ` +
      `whole run ${(r.elapsedMs / 1000).toFixed(1)} s; ${r.clients} clients, keys ${r.keys.join(",")}`,
  );
  out.push(
    `replay: npm run chaos -- --seed ${r.seed} --seconds ${Math.round(r.plannedMs / 1000)} --reads ${r.readMode} --clients ${r.clients} --keys ${r.keys.length}`,
  );
  out.push(`run folder: ${r.runDir}${r.historyKept ? " (history.jsonl kept)" : ""}`);
  out.push("");

  const c = countOps(r.ops);
  out.push(`operations: ${r.ops.length}`);
  out.push(
    `  ${"kind".padEnd(11)}${"ok".padStart(8)}${"failed".padStart(8)}${"unknown".padStart(9)}`,
  );
  for (const k of REPORT_KINDS) {
    const x = c[k];
    out.push(
      `  ${k.padEnd(11)}${String(x.ok).padStart(8)}${String(x.failed).padStart(8)}${String(x.unknown).padStart(9)}`,
    );
  }
  const errors = new Map<string, number>();
  for (const o of r.ops) {
    if (o.error === undefined) continue;
    const code = `${o.outcome} ${/^[A-Z_]+/.exec(o.error)?.[0] ?? o.error.slice(0, 40)}`;
    errors.set(code, (errors.get(code) ?? 0) + 1);
  }
  if (errors.size > 0) {
    out.push(
      `  errors: ${[...errors]
        .sort((a, b) => b[1] - a[1])
        .map(([e, n]) => `${e} x${n}`)
        .join(", ")}`,
    );
  }
  out.push("");

  const av = availability(r.ops, r.workloadMs);
  const okPerSecond = av.perSecond.filter((s): s is number => s !== undefined);
  const fullSeconds = okPerSecond.filter((s) => s >= 0.99).length;
  out.push(
    `availability (non-local ops): ${pct(av.okShare)} ok; ${fullSeconds} of ${av.perSecond.length} seconds at least 99% ok; ` +
      `longest stretch without an ok op: ${ms(av.longestGapMs)} from ${(av.longestGapFromMs / 1000).toFixed(1)} s`,
  );
  out.push("  per second (digit = tenths of ok ops, '.' = no op completed):");
  out.push(availabilityStrip(av.perSecond));
  out.push("");

  const lat = latencies(r.ops);
  out.push("latency of ok ops:");
  for (const k of REPORT_KINDS) {
    const l = lat[k];
    out.push(
      `  ${k.padEnd(11)} n=${String(l.n).padEnd(7)} p50 ${ms(l.p50).padEnd(9)} p99 ${ms(l.p99).padEnd(9)} max ${ms(l.max)}`,
    );
  }
  out.push("");

  const started = r.events.filter((e) => e.action === "start");
  const byKind = new Map<string, number>();
  for (const e of started) byKind.set(e.kind, (byKind.get(e.kind) ?? 0) + 1);
  out.push(
    `faults: ${r.roundsPlayed} rounds, ${started.length} faults started (${[...byKind].map(([k, n]) => `${k} ${n}`).join(", ") || "none"})`,
  );
  for (const e of r.events) {
    out.push(
      `  ${(e.atMs / 1000).toFixed(2).padStart(8)}s r${String(e.round).padEnd(3)} ${e.action.padEnd(5)} ${e.kind.padEnd(14)} ${e.nodes.length > 0 ? `[${e.nodes.join(",")}] ` : ""}${e.detail}`,
    );
  }
  if (r.crashes.length > 0) {
    out.push("NODE CRASHES (exits the harness did not cause; see node-<i>.log):");
    for (const p of r.crashes) out.push(`  ${p}`);
  }
  if (r.problems.length > 0) {
    out.push("problems while playing faults:");
    for (const p of r.problems) out.push(`  ${p}`);
  }
  out.push("");

  out.push(
    `convergence: ${r.convergence.localAgreed && r.convergence.filesAgree ? "converged" : "NOT CONVERGED"} ` +
      `(local reads ${r.convergence.localAgreed ? `agreed after ${ms(r.convergence.localWaitMs)}` : "did not agree"}; ` +
      `SQLite files ${r.convergence.filesAgree ? "identical" : "DIFFER"})`,
  );
  out.push(r.convergence.detail);
  out.push("");

  const staleAll = provablyStaleReads(r.ops);
  const staleLocal = staleAll.filter((o) => o.mode === "local");
  const staleOther = staleAll.filter((o) => o.mode !== "local");
  out.push(
    `verdict without local reads: ${r.verdict.verdict.toUpperCase()} (${r.verdict.ops} ops judged in ${ms(r.verdict.elapsedMs)})`,
  );
  out.push(...verdictLines(r.verdict));
  if (staleOther.length > 0) {
    out.push(
      `  provably stale ${r.readMode} reads: ${staleOther.length}, e.g. ${JSON.stringify(staleOther[0])}`,
    );
  }
  out.push(
    `  (${r.probeReads} probe operations: reads fired at a node as it was resumed or its partition healed, and writes through a new leader while the old one slept)`,
  );
  out.push(`verdict with local reads: ${r.verdictWithLocal.verdict.toUpperCase()}`);
  out.push(...verdictLines(r.verdictWithLocal));
  out.push(
    `  stale local reads seen: ${staleLocal.length > 0 || r.verdictWithLocal.verdict === "violation" ? "yes" : "no"}; ` +
      `provably stale local reads: ${staleLocal.length} of ${c["read-local"].ok} ok local reads ` +
      `(${r.biasedLocalReads} local reads were aimed at a likely stale node)`,
  );
  if (staleLocal.length > 0) out.push(`  e.g. ${JSON.stringify(staleLocal[0])}`);
  out.push("");
  out.push(`result: ${ok ? "PASSED" : "FAILED"} (exit ${ok ? 0 : 1}); seed ${r.seed}`);
  return out.join("\n") + "\n";
}
