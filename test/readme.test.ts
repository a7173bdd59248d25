/**
 * The README's library example must keep working: this test extracts the first TypeScript block,
 * points its import at the source tree and runs it.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

describe("README", () => {
  it("the Raft core example runs and elects its single node", () => {
    const readme = readFileSync("README.md", "utf8");
    const m = /```ts\n([\s\S]*?)```/.exec(readme);
    assert.ok(m !== null, "README has no ts example");
    const raftEntry = pathToFileURL(resolve("src/raft/index.ts")).href;
    const code =
      m[1]!.replace('"nexus-raft/raft"', JSON.stringify(raftEntry)) +
      '\nif (node.raft.state !== "leader") { console.error("not leader"); process.exit(3); }\n';
    const dir = mkdtempSync(join(tmpdir(), "nexus-readme-"));
    try {
      const file = join(dir, "example.ts");
      writeFileSync(file, code);
      const res = spawnSync(process.execPath, ["--import", "tsx", file], { encoding: "utf8" });
      assert.equal(res.status, 0, `example failed: ${res.stderr}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
