/**
 * Fuzzing the MySQL store's decoders of untrusted text: the statement lexer and classifier (what
 * a save or a load may be, with `args.params` bound) and the connection-string parser.
 *
 * Property: every call returns (no crash, no hang) either a classification (a save's kind and
 * bound text, or its refusal with a reason; a load's text) or the expected NexusError with a
 * message (STORE_ERROR for a load, BAD_CONFIG for a connection string); a connection string's
 * error never contains its password.
 *
 * Inputs are real statements and connection strings mutated by a seeded generator
 * (mysql-fuzz-inputs.ts); the seed is printed, and input `i` depends only on (seed, i). Calls run
 * in a worker thread, so that a call that never returns can be named and stopped: a hang is a
 * call still running after HANG_MS. That bound is not a timing target (a linear pass over 1 MB
 * takes well under a second; a quadratic one takes hours): it only turns a hang into a finding.
 *
 *   NEXUS_FUZZ_SEED=<n>      replay a run
 *   NEXUS_FUZZ_CASE=<i>      run only input i of that seed
 *   NEXUS_FUZZ_INPUTS=<n>    inputs per target (the long run: 1000000)
 */
import { describe, it } from "node:test";
import type { TestContext } from "node:test";
import assert from "node:assert/strict";
import { randomInt } from "node:crypto";
import { Worker } from "node:worker_threads";
import { longStatements } from "./mysql-fuzz-inputs.js";

/** What the worker is asked to run. */
export interface FuzzJob {
  readonly target: "statement" | "dsn" | "long";
  readonly seed: number;
  /** Inputs [from, to). */
  readonly from: number;
  readonly to: number;
  /** Int32 [current input, inputs done], written by the worker. */
  readonly progress: SharedArrayBuffer;
}

/** What the worker reports. */
export type FuzzMessage =
  | {
      readonly type: "finding";
      readonly index: number;
      readonly input: string;
      readonly problem: string;
    }
  | {
      readonly type: "done";
      readonly inputs: number;
      readonly ms: number;
      readonly accepted: number;
      readonly refused: number;
    };

const HANG_MS = 60_000;
const SEED =
  process.env["NEXUS_FUZZ_SEED"] === undefined
    ? randomInt(2 ** 31)
    : Number(process.env["NEXUS_FUZZ_SEED"]);
const CASE =
  process.env["NEXUS_FUZZ_CASE"] === undefined ? undefined : Number(process.env["NEXUS_FUZZ_CASE"]);
/** Inputs per target in `npm test`: about two seconds each on a loaded 2-core machine. */
const INPUTS = Number(process.env["NEXUS_FUZZ_INPUTS"] ?? 4000);

interface FuzzRun {
  readonly findings: string[];
  readonly inputs: number;
  readonly ms: number;
  readonly accepted: number;
  readonly refused: number;
}

/** Runs a job in a worker; a call running longer than HANG_MS is a finding and ends the job. */
function runJob(target: FuzzJob["target"], from: number, to: number): Promise<FuzzRun> {
  const progress = new SharedArrayBuffer(8);
  const p = new Int32Array(progress);
  Atomics.store(p, 0, -1);
  const job: FuzzJob = { target, seed: SEED, from, to, progress };
  // Workers do not inherit tsx's loader: the worker registers it, then loads the TypeScript.
  const tsx = JSON.stringify(import.meta.resolve("tsx/esm/api"));
  const url = JSON.stringify(new URL("./mysql-fuzz-worker.ts", import.meta.url).href);
  const worker = new Worker(
    `import(${tsx}).then((m) => { m.register(); return import(${url}); })`,
    { eval: true, workerData: job },
  );
  const findings: string[] = [];
  const replay = (i: number): string =>
    target === "long"
      ? `long input ${JSON.stringify(longStatements()[i]?.name)}`
      : `input ${i} (replay: NEXUS_FUZZ_SEED=${SEED} NEXUS_FUZZ_CASE=${i})`;
  return new Promise<FuzzRun>((resolve, reject) => {
    let last = -2;
    let lastDone = -1;
    let since = Date.now();
    const watchdog = setInterval(() => {
      const current = Atomics.load(p, 0);
      const doneNow = Atomics.load(p, 1);
      if (current !== last || doneNow !== lastDone) {
        last = current;
        lastDone = doneNow;
        since = Date.now();
      } else if (Date.now() - since > HANG_MS) {
        clearInterval(watchdog);
        findings.push(`${replay(current)} hangs: no answer after ${HANG_MS} ms`);
        void worker.terminate();
        resolve({ findings, inputs: doneNow, ms: NaN, accepted: NaN, refused: NaN });
      }
    }, 250);
    worker.on("message", (m: FuzzMessage) => {
      if (m.type === "finding") findings.push(`${replay(m.index)}: ${m.input}\n  ${m.problem}`);
      else {
        clearInterval(watchdog);
        resolve({ findings, ...m });
      }
    });
    worker.once("error", (err) => {
      clearInterval(watchdog);
      reject(err);
    });
    worker.once("exit", (code) => {
      clearInterval(watchdog);
      if (code !== 0) reject(new Error(`the fuzz worker exited with code ${code}`));
    });
  });
}

async function fuzz(t: TestContext, target: "statement" | "dsn"): Promise<void> {
  const [from, to] = CASE === undefined ? [0, INPUTS] : [CASE, CASE + 1];
  const r = await runJob(target, from, to);
  t.diagnostic(
    `${target}: seed ${SEED}, ${r.inputs} inputs in ${Math.round(r.ms)} ms ` +
      `(${Math.round((r.inputs / r.ms) * 1000)} inputs/s), ${r.accepted} accepted, ${r.refused} refused`,
  );
  assert.deepEqual(r.findings, [], `seed ${SEED}: replay with NEXUS_FUZZ_SEED=${SEED}`);
  assert.equal(r.inputs, to - from);
}

describe(`MySQL fuzz (seed ${SEED}; replay with NEXUS_FUZZ_SEED=${SEED})`, () => {
  it("the statement lexer and classifier: random and mutated statements get a classification or a clear StoreError, never a crash or a hang", (t) =>
    fuzz(t, "statement"));

  it("the DSN parser: random and mutated connection strings give a DSN or a clear BAD_CONFIG that never echoes the password", (t) =>
    fuzz(t, "dsn"));

  it("long inputs (1 MB of nested comments, quotes, escapes, parentheses; 256k placeholders) are classified in one linear pass, not hung", async (t) => {
    const n = longStatements().length;
    const r = await runJob("long", 0, n);
    t.diagnostic(`${n} long inputs in ${Math.round(r.ms)} ms`);
    assert.deepEqual(r.findings, []);
    assert.equal(r.inputs, n);
  });
});
