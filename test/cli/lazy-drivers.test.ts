/**
 * The Redis and MySQL drivers (ioredis, mysql2: optional peer dependencies) are loaded only by a
 * node on that store. Real processes report the CommonJS modules they loaded (both drivers are
 * CommonJS, so whoever imports them leaves them in require.cache) through a preload that writes
 * the list when the process exits; the redis_repl case shows that the report does see a driver.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { BIN, ROOT, sqliteCluster, tempDir } from "../e2e/programs.js";
import { freePort } from "../free-port.js";

const PRELOAD = `import { createRequire } from "node:module";
import { writeFileSync } from "node:fs";
const require = createRequire(import.meta.url);
process.on("exit", () =>
  writeFileSync(process.env.NEXUS_TEST_MODULES_OUT, Object.keys(require.cache).join("\\n")),
);
`;

/**
 * Runs node with the preload and `args`, until `ready` shows on stdout or stderr and then SIGTERM
 * (a node program), or until it exits by itself (`ready` undefined). The modules it loaded.
 */
async function loadedModules(args: readonly string[], ready?: RegExp): Promise<string[]> {
  const dir = tempDir("nexus-lazy-");
  const preload = join(dir, "preload.mjs");
  const out = join(dir, "modules.txt");
  writeFileSync(preload, PRELOAD);
  const p = spawn(process.execPath, ["--import", pathToFileURL(preload).href, ...args], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, NEXUS_TEST_MODULES_OUT: out },
  });
  let text = "";
  const exited = new Promise<number | null>((resolve) => p.once("exit", (code) => resolve(code)));
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`not ready in 30 s:\n${text}`)), 30_000);
      const onData = (b: Buffer): void => {
        text += b.toString();
        if (ready?.test(text) === true) {
          clearTimeout(timer);
          resolve();
        }
      };
      p.stdout.on("data", onData);
      p.stderr.on("data", onData);
      void exited.then(() => {
        clearTimeout(timer);
        if (ready === undefined || ready.test(text)) resolve();
        else reject(new Error(`exited before it was ready:\n${text}`));
      });
    });
  } finally {
    if (p.exitCode === null && p.signalCode === null) p.kill("SIGTERM");
  }
  const code = await exited;
  assert.equal(code, 0, `the process failed (${String(p.signalCode)}):\n${text}`);
  return readFileSync(out, "utf8").split("\n");
}

const loads = (modules: readonly string[], pkg: string): boolean =>
  modules.some((m) => m.includes(`/node_modules/${pkg}/`));

describe("driver packages load only with their store", () => {
  it("a SQLite node (bin/sqlite_repl) serves without loading ioredis or mysql2", async () => {
    const [node] = await sqliteCluster(1);
    const modules = await loadedModules([BIN("sqlite_repl"), ...node!.flags()], /serving gRPC/);
    assert.ok(loads(modules, "pino"), `the report lists the node's modules: ${modules.length}`);
    assert.ok(!loads(modules, "ioredis"), "ioredis was loaded");
    assert.ok(!loads(modules, "mysql2"), "mysql2 was loaded");
  });

  it('import "nexus-raft" (the package root) loads neither driver', async () => {
    const modules = await loadedModules([
      "--import",
      "tsx",
      "--input-type=module",
      "-e",
      `const m = await import(${JSON.stringify(pathToFileURL(join(ROOT, "src/index.ts")).href)});
         if (typeof m.createReplicator !== "function") process.exit(1);`,
    ]);
    assert.ok(!loads(modules, "ioredis"), "ioredis was loaded");
    assert.ok(!loads(modules, "mysql2"), "mysql2 was loaded");
  });

  it("a Redis node (bin/redis_repl) loads ioredis, and still not mysql2", async () => {
    // Nothing listens at that port: the node waits for its store, having loaded the driver.
    const port = await freePort();
    const [node] = await sqliteCluster(1, [], "redis_repl", () => ["-redisPort", String(port)]);
    const modules = await loadedModules(
      [BIN("redis_repl"), ...node!.flags()],
      /waiting for the store/,
    );
    assert.ok(loads(modules, "ioredis"), "ioredis was not loaded by a Redis node");
    assert.ok(!loads(modules, "mysql2"), "mysql2 was loaded");
  });
});
