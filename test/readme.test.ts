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
import { createServer } from "node:net";

describe("README", () => {
  it("the library example runs against a single-node cluster", async () => {
    const readme = readFileSync("README.md", "utf8");
    const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
    const lib = blocks.find((b) => b.includes("createReplicator"));
    assert.ok(lib !== undefined, "README has no library example");
    const dir = mkdtempSync(join(tmpdir(), "nexus-readme-lib-"));
    try {
      const port = await new Promise<number>((resolve) => {
        const s = createServer().listen(0, "127.0.0.1", () => {
          const p = (s.address() as { port: number }).port;
          s.close(() => resolve(p));
        });
      });
      const entry = pathToFileURL(resolve("src/index.ts")).href;
      const code = lib
        .replace('"nexus-raft"', JSON.stringify(entry))
        .replaceAll("19021", String(port))
        .replaceAll("/tmp/nexus-example", dir);
      const file = join(dir, "example.mts");
      writeFileSync(file, code);
      const res = spawnSync(process.execPath, ["--import", "tsx", file], {
        encoding: "utf8",
        timeout: 60_000,
      });
      assert.equal(res.status, 0, `example failed: ${res.stderr}`);
      assert.match(res.stdout, /\[\{"k":"hello","v":"world"\}\]/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("the Raft core example runs and elects its single node", () => {
    const readme = readFileSync("README.md", "utf8");
    const block = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)]
      .map((x) => x[1]!)
      .find((b) => b.includes("new RawNode"));
    assert.ok(block !== undefined, "README has no Raft core example");
    const m = [block, block] as const;
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
