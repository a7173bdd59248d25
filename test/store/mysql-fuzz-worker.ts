/**
 * The worker thread of the MySQL fuzz tests (mysql-fuzz.test.ts). It runs one job (a range of
 * generated inputs, or the long inputs) against the statement classifier or the DSN parser, and
 * reports findings: a call that threw anything but the expected NexusError, or returned something
 * that is not a classification. Before each call it stores the input's index in shared memory,
 * so that the test thread can name the input of a call that never returns (a hang), and stop it.
 */
import { parentPort, workerData } from "node:worker_threads";
import { isNexusError } from "../../src/errors/index.js";
import type { NexusErrorCode } from "../../src/errors/index.js";
import { parseMySqlDsn } from "../../src/store/mysql/dsn.js";
import { prepareLoad, prepareSave } from "../../src/store/mysql/prepare.js";
import { refusalOf } from "../../src/store/mysql/statement-classifier.js";
import type { StoreCommand } from "../../src/store/store.js";
import { SECRET, dsnInput, longStatements, statementInput } from "./mysql-fuzz-inputs.js";
import type { FuzzJob, FuzzMessage } from "./mysql-fuzz.test.js";

const job = workerData as FuzzJob;
const progress = new Int32Array(job.progress);
const port = parentPort!;
const post = (m: FuzzMessage): void => port.postMessage(m);
const KINDS = new Set(["dml", "ddl", "create-table"]);
const MAX_FINDINGS = 20;

function describeError(err: unknown): string {
  if (err instanceof Error) return (err.stack ?? `${err.name}: ${err.message}`).slice(0, 1500);
  return `a thrown ${typeof err}: ${String(err)}`;
}

/** Whether `err` is a NexusError with `code` and a message that says something. */
function isClearError(err: unknown, code: NexusErrorCode): err is Error {
  return isNexusError(err, code) && err.message.length > 10;
}

const counts = { accepted: 0, refused: 0 };

/** A finding for one command, or undefined. */
function checkStatement(cmd: StoreCommand): string | undefined {
  let save: ReturnType<typeof prepareSave>;
  try {
    save = prepareSave(cmd);
  } catch (err) {
    return `prepareSave threw: ${describeError(err)}`;
  }
  if ("refusal" in save) {
    if (typeof save.refusal !== "string" || save.refusal.length < 10) {
      return `prepareSave refused without a clear reason: ${JSON.stringify(save)}`;
    }
    counts.refused++;
  } else {
    if (!KINDS.has(save.kind) || typeof save.sql !== "string") {
      return `prepareSave returned no classification: ${JSON.stringify(save).slice(0, 300)}`;
    }
    counts.accepted++;
  }
  try {
    const sql = prepareLoad(cmd);
    if (typeof sql !== "string") return `prepareLoad returned ${typeof sql}`;
  } catch (err) {
    if (!isClearError(err, "STORE_ERROR")) return `prepareLoad threw: ${describeError(err)}`;
  }
  if (job.target === "long") return undefined; // refusalOf is prepareSave's check again
  try {
    const r = refusalOf(new TextDecoder().decode(cmd.data));
    if (r !== undefined && typeof r !== "string") return `refusalOf returned ${typeof r}`;
  } catch (err) {
    return `refusalOf threw: ${describeError(err)}`;
  }
  return undefined;
}

/** A finding for one connection string, or undefined. */
function checkDsn(s: string): string | undefined {
  try {
    const d = parseMySqlDsn(s);
    counts.accepted++;
    if (
      typeof d.host !== "string" ||
      d.host === "" ||
      !Number.isInteger(d.port) ||
      d.port < 1 ||
      d.port > 65535 ||
      typeof d.user !== "string" ||
      d.user === "" ||
      typeof d.password !== "string" ||
      typeof d.database !== "string" ||
      d.database === "" ||
      d.database.length > 64
    ) {
      return `parseMySqlDsn returned an invalid DSN: ${JSON.stringify(d)}`;
    }
  } catch (err) {
    counts.refused++;
    if (!isClearError(err, "BAD_CONFIG")) return `parseMySqlDsn threw: ${describeError(err)}`;
    // The password is between the first `:` (after a `scheme://`) and the last `@`, wherever
    // the parser would end it: when the secret sits there (once), the message must not show it.
    const body = /^[a-z][a-z0-9+.-]*:\/\//i.exec(s)?.[0].length ?? 0;
    const colon = s.indexOf(":", body);
    const secret = s.indexOf(SECRET);
    if (
      colon >= 0 &&
      secret > colon &&
      secret === s.lastIndexOf(SECRET) &&
      s.lastIndexOf("@") >= secret + SECRET.length &&
      err.message.includes(SECRET)
    ) {
      return `parseMySqlDsn echoed the password: ${err.message}`;
    }
  }
  return undefined;
}

let longInputs: ReturnType<typeof longStatements> | undefined;

function inputOf(i: number): { check: () => string | undefined; shown: () => string } {
  if (job.target === "dsn") {
    const s = dsnInput(job.seed, i);
    return { check: () => checkDsn(s), shown: () => JSON.stringify(s) };
  }
  if (job.target === "long") {
    const c = (longInputs ??= longStatements())[i]!;
    const cmd = {
      data: new TextEncoder().encode(c.sql),
      args: c.params === undefined ? {} : { params: c.params },
    };
    return { check: () => checkStatement(cmd), shown: () => c.name };
  }
  const input = statementInput(job.seed, i);
  const cmd = {
    data: input.data,
    args: input.params === undefined ? {} : { params: input.params },
  };
  return {
    check: () => checkStatement(cmd),
    shown: () =>
      `${JSON.stringify(Buffer.from(input.data).toString("latin1")).slice(0, 400)} params ${JSON.stringify(input.params)?.slice(0, 100)}`,
  };
}

const start = performance.now();
let findings = 0;
let done = 0;
for (let i = job.from; i < job.to && findings < MAX_FINDINGS; i++) {
  Atomics.store(progress, 0, i);
  const { check, shown } = inputOf(i);
  const finding = check();
  Atomics.add(progress, 1, 1);
  done++;
  if (finding !== undefined) {
    findings++;
    post({ type: "finding", index: i, input: shown(), problem: finding });
  }
}
post({ type: "done", inputs: done, ms: performance.now() - start, ...counts });
