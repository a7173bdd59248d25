/**
 * Golden interaction scripts: test/raft/testdata/*.txt. Each file is a scenario written as a
 * sequence of commands, each followed by `----` and the exact output it must produce:
 *
 *     # A comment (only before a command).
 *     campaign 1
 *     ----
 *     ok
 *
 * An output ends at the first blank line (outputs never contain blank lines; an empty output is
 * written `ok`). Outputs come from the describe* functions of src/raft/describe.ts. The runner
 * compares exactly and fails with a diff of the first block that differs. To regenerate every
 * expected output after an intended change (then review the diff in git):
 *
 *     REWRITE=1 node scripts/run-tests.mjs test/raft
 *
 * Commands (ids are node ids; `key=(a,b)` is a list):
 *
 *   add-nodes <n> voters=(..) [learners=(..)] [index=<i>] [prevote=false] [checkquorum=false]
 *             [read-only=safe|lease-based] [max-inflight=256] [max-size=1048576]
 *             [election=10] [heartbeat=1] [forwarding=true]
 *       Adds n nodes with the next free ids, storage holding the configuration (a snapshot at
 *       `index`, term 1, when given). Election timeouts are not randomized here: exactly
 *       `election` ticks. Prints each node's status.
 *   campaign <id>                    the node starts an election now
 *   propose <id> <data>              proposes data (a RaftError is printed as `error: code: ...`)
 *   propose-conf-change <id> [transition=auto|implicit|explicit] <change>...
 *       changes: v<id> add voter, l<id> add learner, r<id> remove; none: leave joint
 *   read-index <id> <ctx>            requests a read index with context ctx
 *   transfer-leadership <id> <to>    asks node id to hand leadership to `to`
 *   tick <id>... [n=1] | tick-heartbeat <id>... | tick-election <id>...
 *   process-ready <id>...            handles one Ready of each: prints it, persists it, applies
 *                                    committed conf changes, queues its messages, advances
 *   deliver-msgs [drop=true] [type=<t>] [<id>...]
 *       steps (or drops) the messages waiting for the given nodes (default: all), printing each;
 *       messages across a cut link are dropped
 *   stabilize [<id>...]              process-ready and deliver-msgs until nothing is left
 *   isolate <id>... | cut-link <a> <b> | heal
 *   status <id>... | raft-state | raft-log <id>...
 *   compact <id> <index>             snapshot at index (<= applied) and compact the storage
 *   report-unreachable <id> <peer> | report-snapshot <id> <peer> finish|failure
 *   restart <id>...                  crash and restart from storage (inbox lost); committed
 *                                    entries after the snapshot are applied again
 *   log-level debug|info|warn|none   include the core's log lines from this level (default none)
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { InteractionEnv, parseCommand } from "./interaction-env.js";

const DIR = join(import.meta.dirname, "testdata");
const REWRITE = process.env["REWRITE"] === "1";

/** One command of a script: the lines before it (comments, blank lines) and its output. */
interface Block {
  readonly preamble: string[];
  readonly command: string;
  readonly line: number;
  readonly expected: string[];
}

function parseScript(text: string, file: string): { blocks: Block[]; trailer: string[] } {
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  const blocks: Block[] = [];
  let preamble: string[] = [];
  let i = 0;
  while (i < lines.length) {
    const l = lines[i]!;
    if (l.trim() === "" || l.startsWith("#")) {
      preamble.push(l);
      i++;
      continue;
    }
    const line = i + 1;
    if (lines[i + 1] !== "----") throw new Error(`${file}:${line}: expected ---- after "${l}"`);
    i += 2;
    const expected: string[] = [];
    while (i < lines.length && lines[i]!.trim() !== "") expected.push(lines[i++]!);
    blocks.push({ preamble, command: l, line, expected });
    preamble = [];
  }
  return { blocks, trailer: preamble };
}

/** A line diff (longest common subsequence): `-` expected only, `+` actual only. */
export function lineDiff(expected: readonly string[], actual: readonly string[]): string[] {
  const n = expected.length;
  const m = actual.length;
  const lcs: number[][] = Array.from({ length: n + 1 }, () => new Array<number>(m + 1).fill(0));
  for (let a = n - 1; a >= 0; a--) {
    for (let b = m - 1; b >= 0; b--) {
      lcs[a]![b] =
        expected[a] === actual[b]
          ? lcs[a + 1]![b + 1]! + 1
          : Math.max(lcs[a + 1]![b]!, lcs[a]![b + 1]!);
    }
  }
  const out: string[] = [];
  let a = 0;
  let b = 0;
  while (a < n || b < m) {
    if (a < n && b < m && expected[a] === actual[b]) {
      out.push(`  ${expected[a]}`);
      a++;
      b++;
    } else if (a < n && (b === m || lcs[a + 1]![b]! >= lcs[a]![b + 1]!)) {
      out.push(`- ${expected[a]}`);
      a++;
    } else {
      out.push(`+ ${actual[b]}`);
      b++;
    }
  }
  return out;
}

function runScript(file: string): void {
  const path = join(DIR, file);
  const { blocks, trailer } = parseScript(readFileSync(path, "utf8"), file);
  const env = new InteractionEnv();
  const rewritten: string[] = [];
  const failures: string[] = [];
  for (const b of blocks) {
    let actual: string[];
    try {
      actual = env.run(parseCommand(b.command, b.line));
    } catch (e) {
      throw new Error(`${file}:${b.line}: ${b.command}: ${(e as Error).message}`, { cause: e });
    }
    for (const l of actual) {
      if (l.trim() === "") throw new Error(`${file}:${b.line}: output contains a blank line`);
    }
    rewritten.push(...b.preamble, b.command, "----", ...actual);
    if (!REWRITE && actual.join("\n") !== b.expected.join("\n")) {
      failures.push(
        `${file}:${b.line}: ${b.command}\n` +
          `--- expected\n+++ actual\n${lineDiff(b.expected, actual).join("\n")}`,
      );
    }
  }
  rewritten.push(...trailer);
  if (REWRITE) {
    writeFileSync(path, rewritten.join("\n") + "\n");
    return;
  }
  if (failures.length > 0) {
    const more = failures.length > 1 ? `\n(${failures.length - 1} later blocks also differ)` : "";
    assert.fail(
      `golden output differs (REWRITE=1 node scripts/run-tests.mjs test/raft to regenerate)\n` +
        `${failures[0]!}${more}`,
    );
  }
}

describe("golden interaction scripts (test/raft/testdata)", () => {
  const files = readdirSync(DIR)
    .filter((f) => f.endsWith(".txt"))
    .sort();
  it("there are scripts to run", () => assert.ok(files.length > 0));
  for (const f of files) it(f, () => runScript(f));
});

describe("golden runner", () => {
  it("parses commands, keys and lists", () => {
    const c = parseCommand("add-nodes 3 voters=(1,2,3) prevote=true", 7);
    assert.deepEqual(
      [c.name, c.positional, [...c.keys], c.line],
      [
        "add-nodes",
        ["3"],
        [
          ["voters", "(1,2,3)"],
          ["prevote", "true"],
        ],
        7,
      ],
    );
  });

  it("the diff marks missing and extra lines", () => {
    assert.deepEqual(lineDiff(["a", "b", "c"], ["a", "x", "c", "d"]), [
      "  a",
      "- b",
      "+ x",
      "  c",
      "+ d",
    ]);
  });

  it("a script whose expected output differs fails with a diff", () => {
    const env = new InteractionEnv();
    const out = env.run(parseCommand("add-nodes 1 voters=(1)", 1));
    const wrong = [...out.slice(0, -1), "config: voters=(1 2)"];
    const d = lineDiff(wrong, out);
    assert.ok(d.some((l) => l === "- config: voters=(1 2)"));
    assert.ok(d.some((l) => l === "+ config: voters=(1)"));
  });

  it("unknown commands and keys are script errors", () => {
    const env = new InteractionEnv();
    assert.throws(() => env.run(parseCommand("frobnicate 1", 1)), /unknown command/);
    assert.throws(() => env.run(parseCommand("add-nodes 1 voterz=(1)", 1)), /unknown key voterz/);
  });
});
