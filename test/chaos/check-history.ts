/**
 * Judges a recorded history file from the command line:
 *
 *   tsx test/chaos/check-history.ts [options] <history.jsonl>
 *
 * The file holds one Operation (history.ts) per line as JSON; blank lines are skipped. Prints the
 * verdict per key, with the explanation of a violation. Exit status: 0 linearizable, 1 violation,
 * 2 unknown (budget exhausted), 64 bad usage or a malformed file.
 *
 * Options:
 *   --read-modes m1,m2  judge only reads asked with these modes (linearizable, lease, local);
 *                       reads that name no mode, writes and cas are always judged
 *   --max-states N      explored states per key before giving up (default 2,000,000)
 *   --max-ms N          wall time per key in ms before giving up (default 60,000)
 *   --exact             only the exact search (see CheckOptions.search)
 */
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import type { Operation, ReadMode } from "./history.js";
import { checkHistory, describeVerdict, validateOperation } from "./linearizability.js";
import type { CheckOptions } from "./linearizability.js";

/**
 * Parses a JSON-lines history: one Operation per non-blank line.
 * @throws TypeError naming `source` and the line of the first line that is not a valid Operation.
 */
export function parseHistory(text: string, source = "history"): Operation[] {
  const ops: Operation[] = [];
  const lines = text.split("\n");
  lines.forEach((line, i) => {
    if (line.trim() === "") return;
    let op: Operation;
    try {
      op = JSON.parse(line) as Operation;
    } catch (e) {
      throw new TypeError(`${source}:${i + 1}: not JSON (${(e as Error).message})`);
    }
    try {
      validateOperation(op);
    } catch (e) {
      throw new TypeError(`${source}:${i + 1}: ${(e as Error).message}`);
    }
    ops.push(op);
  });
  return ops;
}

/** Reads and parses a JSON-lines history file (see {@link parseHistory}). */
export function readHistoryFile(path: string): Operation[] {
  return parseHistory(readFileSync(path, "utf8"), path);
}

const READ_MODES: readonly ReadMode[] = ["linearizable", "lease", "local"];

/** Runs the command with `args` (without node and script); returns the exit status. */
export function main(args: readonly string[], out: (line: string) => void = console.log): number {
  const usage = (why: string): number => {
    out(`check-history: ${why}`);
    out(
      "usage: tsx test/chaos/check-history.ts [--read-modes m1,m2] [--max-states N] [--max-ms N] [--exact] <history.jsonl>",
    );
    return 64;
  };
  let file: string | undefined;
  let modes: ReadMode[] | undefined;
  let maxStates: number | undefined;
  let maxMs: number | undefined;
  let exact = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const value = (): string | undefined => args[++i];
    if (a === "--read-modes") {
      const v = value();
      if (v === undefined) return usage("--read-modes needs a list");
      const list = v.split(",").filter((m) => m !== "");
      const badMode = list.find((m) => !(READ_MODES as readonly string[]).includes(m));
      if (badMode !== undefined || list.length === 0) {
        return usage(`--read-modes: "${badMode ?? v}" is not one of ${READ_MODES.join(", ")}`);
      }
      modes = list as ReadMode[];
    } else if (a === "--max-states" || a === "--max-ms") {
      const v = Number(value());
      if (!Number.isFinite(v) || v <= 0) return usage(`${a} needs a positive number`);
      if (a === "--max-states") maxStates = v;
      else maxMs = v;
    } else if (a === "--exact") {
      exact = true;
    } else if (a.startsWith("-")) {
      return usage(`unknown option ${a}`);
    } else if (file === undefined) {
      file = a;
    } else {
      return usage("one history file at a time");
    }
  }
  if (file === undefined) return usage("no history file");
  let ops: Operation[];
  try {
    ops = readHistoryFile(file);
  } catch (e) {
    out(`check-history: ${(e as Error).message}`);
    return 64;
  }
  const selected = modes;
  const opts: CheckOptions = {
    ...(maxStates !== undefined ? { maxStates } : {}),
    ...(maxMs !== undefined ? { maxMs } : {}),
    ...(exact ? { search: "exact" as const } : {}),
    ...(selected !== undefined
      ? {
          include: (op: Operation) =>
            op.kind !== "read" || op.mode === undefined || selected.includes(op.mode),
        }
      : {}),
  };
  const verdict = checkHistory(ops, opts);
  out(`${file}:`);
  out(describeVerdict(verdict));
  return verdict.verdict === "ok" ? 0 : verdict.verdict === "violation" ? 1 : 2;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = main(process.argv.slice(2));
}
