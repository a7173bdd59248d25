/**
 * `npm run bench -- cluster` drives a real 3-node cluster through the gRPC API: one second at one
 * client gives saves, none failed.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

describe("bench cluster", () => {
  it("saves through gRPC for a second and prints one JSON line per concurrency", async () => {
    const stdout = await new Promise<string>((resolve, reject) =>
      execFile(
        process.execPath,
        ["--import", "tsx", "bench/main.ts", "cluster", "--seconds", "1", "--clients", "1,2"],
        { cwd: ROOT, timeout: 120_000 },
        (err, out, errOut) =>
          err === null ? resolve(out) : reject(new Error(`${err.message}\n${errOut}`)),
      ),
    );
    const lines = stdout
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(
      lines.map((l) => [l["case"], l["api"], l["failed"]]),
      [
        ["concurrency-1", "grpc", 0],
        ["concurrency-2", "grpc", 0],
      ],
    );
    for (const l of lines) assert.ok((l["saves"] as number) > 0, JSON.stringify(l));
  });

  it("refuses an unknown argument with the usage", async () => {
    const res = await new Promise<{ code: number | null; stderr: string }>((resolve) =>
      execFile(
        process.execPath,
        ["--import", "tsx", "bench/main.ts", "cluster", "--fast"],
        { cwd: ROOT, timeout: 60_000 },
        (err, _out, stderr) => resolve({ code: err === null ? 0 : (err.code as number), stderr }),
      ),
    );
    assert.notEqual(res.code, 0);
    assert.match(res.stderr, /unknown argument --fast; usage: npm run bench -- cluster/);
  });
});
