/**
 * The arrows between rooms (CONVENTIONS.md): reads every src/**\/*.ts, extracts its imports and
 * fails on an import that the table below does not allow. It doubles as documentation.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const SRC = resolve("src");

/** Room of a file: its first folder under src/ (store/<backend> counts as "store"). */
function roomOf(file: string): string {
  const rel = relative(SRC, file);
  const first = rel.split("/")[0]!;
  return first.endsWith(".ts") ? "root" : first;
}

/** Which rooms each room may import, and which node builtins / packages. */
const ALLOWED: Record<string, { rooms: string[]; external: (spec: string) => boolean }> = {
  raft: { rooms: ["raft"], external: () => false },
  storage: {
    rooms: ["storage", "raft", "errors"],
    external: (s) => s.startsWith("node:"),
  },
  security: { rooms: ["security", "errors"], external: (s) => s.startsWith("node:") },
  transport: {
    rooms: ["transport", "raft", "errors", "security"],
    external: (s) => s.startsWith("node:") || !s.startsWith("."),
  },
  store: { rooms: ["store", "errors"], external: () => true },
  node: {
    // backup: the backup file format, read when a restore into the running cluster commits.
    rooms: ["node", "raft", "storage", "transport", "store", "errors", "backup"],
    external: () => true,
  },
  api: { rooms: ["api", "node", "errors", "store", "security"], external: () => true },
  ops: { rooms: ["ops", "node", "errors", "store", "security"], external: () => true },
  backup: { rooms: ["backup", "storage", "errors"], external: (s) => s.startsWith("node:") },
  cli: {
    rooms: [
      "cli",
      "api",
      "node",
      "ops",
      "store",
      "storage",
      "errors",
      "raft",
      "security",
      "backup",
    ],
    external: () => true,
  },
  errors: { rooms: ["errors"], external: () => false },
  root: {
    rooms: ["root", "raft", "node", "store", "storage", "errors", "api"],
    external: () => false,
  },
};

function walk(dir: string, out: string[]): void {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (p.endsWith(".ts")) out.push(p);
  }
}

function importsOf(text: string): string[] {
  const specs: string[] = [];
  const re = /(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+["']([^"']+)["']/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(text)) !== null) specs.push(m[1]!);
  const dyn = /import\(\s*["']([^"']+)["']\s*\)/g;
  while ((m = dyn.exec(text)) !== null) specs.push(m[1]!);
  return specs;
}

/** Every violation of the table in the given files. */
export function violations(files: string[]): string[] {
  const out: string[] = [];
  for (const file of files) {
    const room = roomOf(file);
    const rule = ALLOWED[room];
    if (rule === undefined) {
      out.push(`${relative(SRC, file)}: room "${room}" is not in the architecture table`);
      continue;
    }
    for (const spec of importsOf(readFileSync(file, "utf8"))) {
      if (spec.startsWith(".")) {
        const target = resolve(dirname(file), spec);
        const targetRoom = roomOf(target);
        if (!rule.rooms.includes(targetRoom)) {
          out.push(`${relative(SRC, file)}: ${room} -> ${targetRoom} (${spec}) is not allowed`);
        }
      } else if (!rule.external(spec)) {
        out.push(`${relative(SRC, file)}: ${room} may not import "${spec}"`);
      }
    }
  }
  return out;
}

describe("architecture", () => {
  it("every import in src/ follows the arrows between rooms", () => {
    const files: string[] = [];
    walk(SRC, files);
    assert.ok(files.length > 0);
    assert.deepEqual(violations(files), []);
  });

  it("the raft core imports nothing outside itself, not even node builtins", () => {
    // The check itself must be able to fail: a raft file importing node:fs is flagged.
    const fake = join(SRC, "raft", "fake.ts");
    const rule = ALLOWED["raft"]!;
    assert.equal(rule.external("node:fs"), false);
    assert.equal(roomOf(fake), "raft");
    assert.deepEqual(
      importsOf('import { x } from "node:fs";\nimport type { Y } from "../storage/y.js";'),
      ["node:fs", "../storage/y.js"],
    );
  });
});
