/**
 * What every fuzz driver shares (test/storage/storage-fuzz.ts, test/api/grpc-fuzz.ts,
 * test/transport/peer-fuzz.ts): the run's seed, one generator per input (input i of a run with
 * seed s draws from its own, so one input replays alone), random bytes, the loop over the inputs
 * with its counts, findings and inputs/s, and the command line
 *
 *   node --import tsx <driver> [--inputs N] [--seed S] [--only I] [--target T]
 *
 * which prints one JSON line per target and exits 1 if there is any finding (2 on a bad flag).
 */
import { createSeededRandom } from "../src/raft/random.js";
import type { RandomSource } from "../src/raft/random.js";

/** One input that broke a rule. */
export interface Finding {
  readonly target: string;
  readonly seed: number;
  /** The input's number in the run (-1: after the inputs). */
  readonly input: number;
  readonly problem: string;
  /** The input's first bytes, hex. */
  readonly bytes: string;
}

/** The outcome of fuzzing one target. */
export interface FuzzReport<T extends string = string> {
  readonly target: T;
  readonly seed: number;
  readonly inputs: number;
  readonly seconds: number;
  readonly inputsPerSec: number;
  /** Inputs the code under test accepted (what that means is the driver's). */
  readonly accepted: number;
  /** Inputs refused with the expected, clear error. */
  readonly refused: number;
  readonly findings: readonly Finding[];
}

/** What one input did. */
export interface InputOutcome {
  readonly input: Uint8Array;
  /** The rule it broke ("" for none). */
  readonly problem: string;
  readonly accepted: boolean;
  readonly refused: boolean;
}

/** Findings kept per run: the first ones are enough to replay. */
const MAX_FINDINGS = 20;

/** The seed of a run: NEXUS_FUZZ_SEED when set, else a fresh one (printed by the caller). */
export function fuzzSeed(): number {
  const env = process.env["NEXUS_FUZZ_SEED"];
  if (env !== undefined && env !== "") return Number(env) >>> 0;
  return (Date.now() ^ (process.pid << 16)) >>> 0;
}

/** The generator of input `i` of a run with `seed`. */
export function inputRandom(seed: number, i: number): RandomSource {
  return createSeededRandom((seed ^ Math.imul(i + 1, 0x9e3779b1)) >>> 0);
}

/** `n` random bytes. */
export function bytes(rnd: RandomSource, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = rnd(256);
  return out;
}

/** An input's first 64 bytes, hex ("..." when there is more). */
export function hex(b: Uint8Array): string {
  return Buffer.from(b.subarray(0, 64)).toString("hex") + (b.byteLength > 64 ? "..." : "");
}

export interface RunOptions<T extends string> {
  readonly target: T;
  readonly seed: number;
  /** Inputs 0 .. inputs-1, unless `only`. */
  readonly inputs: number;
  /** Run only this input (a replay). */
  readonly only?: number | undefined;
  /** Inputs in flight at once. Default 1. */
  readonly window?: number;
  /** An input that takes longer than this (ms) is a finding. Default: none. */
  readonly slowMs?: number;
}

/** Runs `one` on every input of a run and reports. */
export async function runInputs<T extends string>(
  o: RunOptions<T>,
  one: (rnd: RandomSource, i: number) => InputOutcome | Promise<InputOutcome>,
): Promise<FuzzReport<T>> {
  const findings: Finding[] = [];
  let accepted = 0;
  let refused = 0;
  const t0 = performance.now();
  const first = o.only ?? 0;
  const last = o.only === undefined ? o.inputs : o.only + 1;
  let next = first;
  const worker = async (): Promise<void> => {
    while (next < last) {
      const i = next++;
      const started = performance.now();
      const r = await one(inputRandom(o.seed, i), i);
      let problem = r.problem;
      const ms = performance.now() - started;
      if (problem === "" && o.slowMs !== undefined && ms > o.slowMs) {
        problem = `took ${ms.toFixed(0)} ms`;
      }
      if (r.accepted) accepted++;
      if (r.refused) refused++;
      if (problem !== "" && findings.length < MAX_FINDINGS) {
        findings.push({ target: o.target, seed: o.seed, input: i, problem, bytes: hex(r.input) });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(o.window ?? 1, last - first) }, worker));
  const seconds = (performance.now() - t0) / 1000;
  return {
    target: o.target,
    seed: o.seed,
    inputs: last - first,
    seconds: Number(seconds.toFixed(2)),
    inputsPerSec: Math.round((last - first) / Math.max(seconds, 1e-9)),
    accepted,
    refused,
    findings,
  };
}

/** A driver's command line: its targets (all by default) and how to fuzz one. */
export interface FuzzMainOptions<T extends string> {
  readonly targets: readonly T[];
  readonly run: (
    target: T,
    seed: number,
    inputs: number,
    only: number | undefined,
  ) => Promise<FuzzReport> | FuzzReport;
}

/** A whole number flag, or a message saying what is wrong with it. */
function count(name: string, text: string | undefined, min: number): number | string {
  const n = Number(text);
  if (text === undefined || !Number.isInteger(n) || n < min) {
    return `--${name} wants a whole number >= ${min}, not ${JSON.stringify(text)}`;
  }
  return n;
}

/**
 * Runs a driver from its command line (`argv` without node and the script): one JSON line per
 * target on stdout; exits 1 on any finding, 2 on a bad flag (with what was wrong).
 */
export async function fuzzMain<T extends string>(
  argv: readonly string[],
  o: FuzzMainOptions<T>,
): Promise<never> {
  const flags = new Map<string, string | undefined>();
  for (let k = 0; k < argv.length; k++) {
    const name = argv[k]!.replace(/^--/, "");
    if (!argv[k]!.startsWith("--") || !["inputs", "seed", "only", "target"].includes(name)) {
      return usage(`unknown argument ${JSON.stringify(argv[k])}`, o.targets);
    }
    flags.set(name, argv[++k]);
  }
  const inputs = flags.has("inputs") ? count("inputs", flags.get("inputs"), 1) : 1_000_000;
  const seed = flags.has("seed") ? count("seed", flags.get("seed"), 0) : fuzzSeed();
  const only = flags.has("only") ? count("only", flags.get("only"), 0) : undefined;
  for (const v of [inputs, seed, only]) if (typeof v === "string") return usage(v, o.targets);
  const target = flags.get("target");
  if (flags.has("target") && !o.targets.includes(target as T)) {
    return usage(
      `--target is one of ${o.targets.join(", ")}, not ${JSON.stringify(target)}`,
      o.targets,
    );
  }
  let found = 0;
  for (const t of target === undefined ? o.targets : [target as T]) {
    const r = await o.run(t, (seed as number) >>> 0, inputs as number, only as number | undefined);
    found += r.findings.length;
    process.stdout.write(JSON.stringify(r) + "\n");
  }
  process.exit(found > 0 ? 1 : 0);
}

function usage(problem: string, targets: readonly string[]): never {
  process.stderr.write(
    `${problem}\nusage: [--inputs N] [--seed S] [--only I] [--target ${targets.join("|")}]\n`,
  );
  process.exit(2);
}
