/**
 * The code examples of docs/library.md and docs/raft-core.md never rot: every ```ts block is
 * type-checked against the sources (imports of `nexus-raft...` pointed at src/), and the blocks
 * that start a single-node cluster on this machine are run. Every option of ReplicatorOptions
 * must be in docs/library.md's options table.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { freePort } from "./free-port.js";

const PAGES = ["docs/library.md", "docs/raft-core.md"];

/** The ```ts blocks of a Markdown page. */
export function tsBlocks(markdown: string): string[] {
  return [...markdown.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m) => m[1]!);
}

/** A block with its `nexus-raft` imports pointed at the sources. */
function againstSources(block: string): string {
  return block.replace(/"nexus-raft(\/[\w/]+)?"/g, (_all, sub: string | undefined) => {
    const dir = sub === undefined ? "src" : `src${sub}`;
    return JSON.stringify(resolve(dir, "index.js"));
  });
}

describe("docs examples", () => {
  for (const page of PAGES) {
    it(`every TypeScript example in ${page} type-checks against src`, () => {
      const blocks = tsBlocks(readFileSync(page, "utf8"));
      assert.ok(blocks.length > 0, `${page} has no TypeScript examples`);
      const dir = mkdtempSync(join(tmpdir(), "nexus-docs-examples-"));
      try {
        const files = blocks.map((b, i) => {
          const file = join(dir, `example-${i + 1}.mts`);
          writeFileSync(file, againstSources(b));
          return file;
        });
        writeFileSync(
          join(dir, "tsconfig.json"),
          JSON.stringify({
            extends: resolve("tsconfig.json"),
            compilerOptions: {
              noEmit: true,
              rootDir: "/",
              typeRoots: [resolve("node_modules/@types")],
            },
            files,
            include: [],
          }),
        );
        const res = spawnSync(
          process.execPath,
          [resolve("node_modules/typescript/bin/tsc"), "-p", join(dir, "tsconfig.json")],
          { encoding: "utf8", timeout: 120_000 },
        );
        // Name the block of each error by its number in the page.
        assert.equal(
          res.status,
          0,
          `${page}: an example does not type-check:\n${res.stdout}${res.stderr}`,
        );
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }

  it("the examples of docs/library.md that start a single node run", async () => {
    const blocks = tsBlocks(readFileSync("docs/library.md", "utf8")).filter(
      (b) => b.includes(".start()") && b.includes("/tmp/nexus-example"),
    );
    assert.ok(blocks.length >= 2, "docs/library.md lost its runnable examples");
    for (const block of blocks) {
      const dir = mkdtempSync(join(tmpdir(), "nexus-docs-run-"));
      try {
        const port = await freePort();
        const code = againstSources(block)
          .replace(/1902\d/g, String(port))
          .replaceAll("/tmp/nexus-example", dir);
        const file = join(dir, "example.mts");
        writeFileSync(file, code);
        const res = spawnSync(process.execPath, ["--import", "tsx", file], {
          encoding: "utf8",
          timeout: 60_000,
        });
        assert.equal(res.status, 0, `example failed:\n${block}\n${res.stderr}`);
        // Each prints what its comment says it prints.
        for (const [, want] of block.matchAll(/console\.log\(.*\); \/\/ (.+)$/gm)) {
          assert.ok(res.stdout.includes(want!), `printed ${res.stdout}, not ${want}`);
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  });

  it("every option of ReplicatorOptions is in docs/library.md's options table", () => {
    const src = readFileSync("src/node/options.ts", "utf8");
    const body = /export interface ReplicatorOptions \{\n([\s\S]*?)\n\}/.exec(src)![1]!;
    const options = [...body.matchAll(/^ {2}readonly (\w+)\??:/gm)].map((m) => m[1]!);
    assert.ok(options.length >= 10, "ReplicatorOptions not found in src/node/options.ts");
    const page = readFileSync("docs/library.md", "utf8");
    const table = page.slice(page.indexOf("## Options"), page.indexOf("## Saving and loading"));
    const missing = options.filter((o) => !table.includes(`\`${o}\``));
    assert.deepEqual(missing, [], "options missing from docs/library.md#options");
  });
});
