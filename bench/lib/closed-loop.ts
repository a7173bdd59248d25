/**
 * The closed-loop load driver every cluster benchmark shares: `clients` loops, each sending its
 * next request as soon as the previous one is answered, for a fixed time, while the server
 * processes' CPU time is read from /proc before and after.
 */
import { readFileSync } from "node:fs";

/** Clock ticks per second of /proc/<pid>/stat's utime and stime (USER_HZ, 100 on Linux). */
const CLOCK_TICKS_PER_SECOND = 100;

/** CPU seconds (user + system) that process `pid` has used so far, from /proc/<pid>/stat. */
export function cpuSecondsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // The command name (field 2) may contain spaces: fields are counted after its closing ")".
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
}

/** The summed CPU seconds of several processes. */
export function cpuSecondsOfAll(pids: readonly number[]): number {
  let s = 0;
  for (const p of pids) s += cpuSecondsOf(p);
  return s;
}

/** The `p`th percentile (0-100) of ascending `sorted`, 0 when empty. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

/** What one closed-loop run measured. */
export interface LoadFigures {
  readonly clients: number;
  /** Requests answered without error within the measured time. */
  readonly ops: number;
  readonly failed: number;
  /** The first error seen, for the report; undefined when none failed. */
  readonly firstError: string | undefined;
  readonly opsPerSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** CPU ms of all server processes per answered request. */
  readonly cpuMsPerOp: number;
}

export interface ClosedLoopOptions {
  readonly clients: number;
  readonly seconds: number;
  /** Unmeasured time first (JIT, connections, caches), seconds. */
  readonly warmupSeconds: number;
  /** Server processes whose CPU time is counted. */
  readonly pids: readonly number[];
  /** One request of client number `client` (0-based), its `seq`th; rejects on failure. */
  readonly op: (client: number, seq: number) => Promise<unknown>;
}

const round = (x: number, digits: number): number => Number(x.toFixed(digits));

/** Runs `clients` closed loops of `op` for `seconds` after the warm-up, and measures them. */
export async function closedLoop(o: ClosedLoopOptions): Promise<LoadFigures> {
  const latencies: number[] = [];
  let failed = 0;
  let firstError: string | undefined;
  let measuring = false;
  let stopAt = performance.now() + o.warmupSeconds * 1000;
  const loop = async (client: number): Promise<void> => {
    for (let seq = 0; ; seq++) {
      const t0 = performance.now();
      // Past the end of the warm-up, or of the measured time: this loop is done.
      if (t0 >= stopAt) return;
      try {
        await o.op(client, seq);
        if (measuring) latencies.push(performance.now() - t0);
      } catch (err) {
        if (measuring) {
          failed++;
          firstError ??= err instanceof Error ? err.message : String(err);
        }
      }
    }
  };
  const run = (): Promise<void[]> =>
    Promise.all(Array.from({ length: o.clients }, (_, i) => loop(i)));
  if (o.warmupSeconds > 0) await run();
  measuring = true;
  const cpu0 = cpuSecondsOfAll(o.pids);
  const start = performance.now();
  stopAt = start + o.seconds * 1000;
  await run();
  const elapsed = (performance.now() - start) / 1000;
  const cpu = cpuSecondsOfAll(o.pids) - cpu0;
  latencies.sort((a, b) => a - b);
  return {
    clients: o.clients,
    ops: latencies.length,
    failed,
    firstError,
    opsPerSec: Math.round(latencies.length / elapsed),
    p50Ms: round(percentile(latencies, 50), 2),
    p99Ms: round(percentile(latencies, 99), 2),
    cpuMsPerOp: round((cpu * 1000) / Math.max(1, latencies.length), 3),
  };
}
