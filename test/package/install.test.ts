/**
 * The package as an npm user meets it: `npm run build`, `npm pack`, then `npm install <tarball>`
 * into an empty project (dependencies from the registry, or npm's cache), with no TypeScript
 * toolchain there. One install, reused by every check: the programs run from dist/ (never through
 * a tsx the project has), the library and every subpath import, a SQLite cluster works through
 * the library and through the programs, the Redis and MySQL drivers are neither installed nor
 * needed, and the published types compile and name everything they return.
 *
 * better-sqlite3's native binary: its install script first looks for a prebuilt binary (normally
 * downloaded from GitHub) and compiles from source otherwise, which takes minutes. The test hands
 * it the binary already built in this checkout, as a local prebuild of the same version, so the
 * install takes seconds; when the versions differ it compiles.
 *
 * Takes about a minute; it leaves nothing behind (temporary folder removed, processes killed).
 */
import { after, before, describe, it } from "node:test";
import type { TestContext } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import type { ChildProcess, SpawnSyncReturns } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { freePort } from "../free-port.js";
import { entryPointsOf, unexportedReturnTypes } from "./public-types.js";

const ROOT = resolve(import.meta.dirname, "../..");
const NPM = process.platform === "win32" ? "npm.cmd" : "npm";
const NPX = process.platform === "win32" ? "npx.cmd" : "npx";

const work = mkdtempSync(join(tmpdir(), "nexus-package-"));
const consumer = join(work, "consumer");
const installed = join(consumer, "node_modules", "nexus-raft");
const children = new Set<ChildProcess>();
after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  rmSync(work, { recursive: true, force: true });
});

interface PackResult {
  readonly filename: string;
  readonly size: number;
  readonly unpackedSize: number;
  readonly entryCount: number;
  readonly files: readonly { readonly path: string }[];
}

let packed: PackResult;
const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
  version: string;
  bin: Record<string, string>;
  exports: Record<string, unknown>;
};

/**
 * The environment of a user's shell: without the npm_* variables that npm sets for scripts (this
 * test may run under `npm test`), which would pass that npm's command and settings on to the npm
 * and npx run here. Their configuration comes from the npmrc files, as a user's does.
 */
function userEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.toLowerCase().startsWith("npm_")) env[k] = v;
  }
  return { ...env, ...extra };
}

/** Runs a command to completion; fails the test with its output when it exits non-zero. */
function must(
  cmd: string,
  args: readonly string[],
  cwd: string,
  env = {},
): SpawnSyncReturns<string> {
  const r = spawnSync(cmd, args, {
    cwd,
    encoding: "utf8",
    timeout: 15 * 60_000,
    maxBuffer: 64 * 1024 * 1024,
    env: userEnv(env),
  });
  assert.equal(
    r.status,
    0,
    `${cmd} ${args.join(" ")} (in ${cwd}) exited ${String(r.status)} ${String(r.signal)}:\n${r.stdout}\n${r.stderr}`,
  );
  return r;
}

/** A program of the installed package, through npx as a user types it (no registry lookup). */
function npx(args: readonly string[]): SpawnSyncReturns<string> {
  return spawnSync(NPX, ["--no", "--", ...args], {
    cwd: consumer,
    encoding: "utf8",
    timeout: 60_000,
    env: userEnv(),
  });
}

/** better-sqlite3's binary from this checkout, as the prebuild its installer looks for. */
function localPrebuild(): Record<string, string> {
  const dir = join(ROOT, "node_modules", "better-sqlite3");
  const binary = join(dir, "build", "Release", "better_sqlite3.node");
  if (!existsSync(binary)) return {};
  const { version } = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as {
    version: string;
  };
  const prebuilds = join(work, "prebuilds");
  mkdirSync(prebuilds);
  const name = `better-sqlite3-v${version}-node-v${process.versions.modules}-${process.platform}-${process.arch}.tar.gz`;
  must("tar", ["czf", join(prebuilds, name), "-C", dir, "build/Release/better_sqlite3.node"], work);
  // Used only if the installed better-sqlite3 has this very version (the file name carries it).
  // Our own SQLite build (scripts/build-sqlite.mjs) is handed over the same way: taken only if
  // its stamp (sources, Node and better-sqlite3 versions) matches, else compiled again.
  return {
    npm_config_better_sqlite3_local_prebuilds: prebuilds,
    NEXUS_SQLITE_PREBUILT_DIR: join(ROOT, "native", "sqlite", "build"),
  };
}

describe(
  "the package, packed and installed into an empty project",
  { timeout: 20 * 60_000 },
  () => {
    before(() => {
      let t = Date.now();
      must(NPM, ["run", "build"], ROOT);
      const buildMs = Date.now() - t;
      t = Date.now();
      const out = must(NPM, ["pack", "--json", "--pack-destination", work], ROOT).stdout;
      packed = (JSON.parse(out.slice(out.indexOf("["))) as PackResult[])[0]!;
      mkdirSync(consumer);
      writeFileSync(
        join(consumer, "package.json"),
        JSON.stringify({ name: "consumer", version: "1.0.0", private: true, type: "module" }),
      );
      const packMs = Date.now() - t;
      t = Date.now();
      must(
        NPM,
        ["install", "--no-audit", "--no-fund", "--prefer-offline", join(work, packed.filename)],
        consumer,
        localPrebuild(),
      );
      process.stdout.write(
        `package: ${packed.filename}, ${packed.size} bytes packed, ${packed.unpackedSize} unpacked, ` +
          `${packed.entryCount} files; build ${buildMs} ms, pack ${packMs} ms, install ${Date.now() - t} ms\n`,
      );
    });

    it("the tarball holds the built code, its sources and types, and no tests", () => {
      const files = packed.files.map((f) => f.path);
      for (const want of [
        "LICENSE",
        "README.md",
        "package.json",
        "bin/launch.mjs",
        "bin/nexus-raft",
        "dist/src/index.js",
        "dist/src/index.d.ts",
        "dist/src/index.d.ts.map",
        "dist/src/api/index.js",
        "dist/src/store/sqlite/sqlite-worker.js",
        "src/index.ts",
        "proto/nexus.proto",
        "scripts/build-sqlite.mjs",
        "native/sqlite/step-budget.c",
      ]) {
        assert.ok(files.includes(want), `${want} is missing from the tarball`);
      }
      const unwanted = files.filter(
        (f) =>
          /^(test|bench|docs|\.ci)\//.test(f) ||
          (/^scripts\//.test(f) && f !== "scripts/build-sqlite.mjs") ||
          /(^|\/)node_modules\//.test(f) ||
          /\.test\.[jt]s$/.test(f) ||
          /\.tsbuildinfo$/.test(f) ||
          /^src\/.*\.md$/.test(f) ||
          /^tsconfig/.test(f),
      );
      assert.deepEqual(unwanted, []);
      assert.match(
        readFileSync(join(installed, "LICENSE"), "utf8"),
        /Apache License\s+Version 2\.0/,
      );
    });

    it("the project has no TypeScript toolchain, nor the optional Redis and MySQL drivers", () => {
      for (const absent of ["typescript", "tsx", "ioredis", "mysql2"]) {
        assert.ok(!existsSync(join(consumer, "node_modules", absent)), `${absent} was installed`);
      }
      assert.ok(!existsSync(join(installed, ".git")));
    });

    it("every program prints the version, from dist/, even when the project has tsx", (t: TestContext) => {
      // A tsx that the project hoisted: an installed program must never load it.
      const fake = join(consumer, "node_modules", "tsx");
      mkdirSync(join(fake, "esm"), { recursive: true });
      writeFileSync(
        join(fake, "package.json"),
        JSON.stringify({
          name: "tsx",
          version: "0.0.0-fake",
          type: "module",
          exports: { ".": "./esm/api.js", "./esm/api": "./esm/api.js" },
        }),
      );
      writeFileSync(
        join(fake, "esm", "api.js"),
        'process.stderr.write("tsx was loaded by an installed program\\n");\nprocess.exit(97);\n',
      );
      t.after(() => rmSync(fake, { recursive: true, force: true }));
      for (const prog of Object.keys(pkg.bin)) {
        const r = npx([prog, "--version"]);
        assert.equal(r.status, 0, `${prog} --version: ${r.stderr}`);
        assert.equal(r.stdout, `nexus-raft ${pkg.version}\n`, prog);
      }
      const help = npx(["repl", "--help"]);
      assert.equal(help.status, 0, help.stderr);
      assert.match(help.stdout, /^Usage: repl .*listNodes/s);
      const serveHelp = npx(["nexus-raft", "serve", "--help"]);
      assert.equal(serveHelp.status, 0, serveHelp.stderr);
      assert.match(serveHelp.stdout, /-store <string>/);
    });

    it("the library and every subpath import; a SQLite node works through the library and its gRPC API", async () => {
      const port = await freePort();
      const script = join(consumer, "library.mjs");
      writeFileSync(
        script,
        `import { createRequire } from "node:module";
import { createReplicator, SqliteStore, MemoryStore, NexusError } from "nexus-raft";
import { createNexusClient, startApiServer, Nexus } from "nexus-raft/api";
import { RawNode, MemoryStorage } from "nexus-raft/raft";
import { MemoryStore as MemoryStore2 } from "nexus-raft/store/memory";
import { SqliteStore as SqliteStore2 } from "nexus-raft/store/sqlite";
const require = createRequire(import.meta.url);
const version = require("nexus-raft/package.json").version;
const kinds = [createReplicator, SqliteStore, MemoryStore, NexusError, createNexusClient,
  startApiServer, RawNode, MemoryStorage, MemoryStore2, SqliteStore2].map((x) => typeof x);
const dir = process.argv[2];
const url = "http://127.0.0.1:" + process.argv[3];
const rep = createReplicator({
  nodeUrl: url, clusterUrls: [url], store: new SqliteStore({ path: dir + "/store.db" }),
  logDir: dir + "/logs", snapDir: dir + "/snap", heartbeatTickMs: 20, electionTickMs: 200,
});
await rep.start();
const t0 = Date.now();
while (rep.status().role !== "leader") {
  if (Date.now() - t0 > 20000) throw new Error("no leader");
  await new Promise((r) => setTimeout(r, 20));
}
await rep.save("create table kv (k text primary key, v text)");
await rep.save("insert into kv values ('hello', 'world')");
const rows = new TextDecoder().decode(await rep.load("select * from kv"));
const api = await startApiServer({ replicator: rep, host: "127.0.0.1", port: 0, maxRequestBytes: 1 << 20 });
const client = createNexusClient("127.0.0.1:" + api.port);
const viaGrpc = new TextDecoder().decode(await client.load(new TextEncoder().encode("select v from kv")));
client.close();
await api.close();
await rep.stop();
let redis = "imported";
try { await import("nexus-raft/store/redis"); } catch (err) { redis = err.code + ": " + err.message; }
const drivers = Object.keys(require.cache).filter((m) => /node_modules\\/(ioredis|mysql2)\\//.test(m));
console.log(JSON.stringify({ version, kinds, rows, viaGrpc, service: Nexus.typeName, redis, drivers }));
process.exit(0);
`,
      );
      const dir = join(work, "library-node");
      mkdirSync(dir);
      const r = must(process.execPath, [script, dir, String(port)], consumer);
      const got = JSON.parse(r.stdout) as Record<string, unknown>;
      assert.equal(got["version"], pkg.version);
      assert.deepEqual(new Set(got["kinds"] as string[]), new Set(["function"]));
      assert.equal(got["rows"], '[{"k":"hello","v":"world"}]');
      assert.equal(got["viaGrpc"], '[{"v":"world"}]');
      assert.equal(got["service"], "nexus.api.Nexus");
      // The Redis store needs ioredis, an optional peer dependency the user installs.
      assert.match(got["redis"] as string, /^ERR_MODULE_NOT_FOUND: .*'ioredis'/);
      assert.deepEqual(got["drivers"], []);
    });

    it("the installed programs run a SQLite node that repl talks to, and name the driver a Redis or MySQL node needs", async () => {
      const raft = await freePort();
      const grpc = await freePort();
      const dir = join(work, "program-node");
      const nodeFlags = [
        `-nexus-cluster-url=http://127.0.0.1:${raft}`,
        `-nexus-node-url=http://127.0.0.1:${raft}`,
        `-grpcPort=${grpc}`,
        "-grpcHost=127.0.0.1",
        `-nexus-log-dir=${join(dir, "logs")}`,
        `-nexus-snap-dir=${join(dir, "snap")}`,
        "-nexus-heartbeat-ms=50",
        "-nexus-election-ms=500",
      ];
      const node = spawn(
        join(consumer, "node_modules", ".bin", "sqlite_repl"),
        [...nodeFlags, `-sqlitePath=${join(dir, "store.db")}`],
        { cwd: consumer, stdio: ["ignore", "pipe", "pipe"] },
      );
      children.add(node);
      let out = "";
      const exited = new Promise<number | null>((r) => node.once("exit", (code) => r(code)));
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`not serving in 30 s:\n${out}`)), 30_000);
        const onData = (b: Buffer): void => {
          out += b.toString();
          if (out.includes("serving gRPC")) {
            clearTimeout(timer);
            resolve();
          }
        };
        node.stdout.on("data", onData);
        node.stderr.on("data", onData);
        void exited.then(() => reject(new Error(`exited:\n${out}`)));
      });
      const addr = `127.0.0.1:${grpc}`;
      // The node elects itself; until then a save fails and is retried by the user.
      let saved = npx(["repl", addr, "sqlite", "save", "create table t (x)"]);
      for (let i = 0; i < 20 && saved.status !== 0; i++) {
        await new Promise((r) => setTimeout(r, 250));
        saved = npx(["repl", addr, "sqlite", "save", "create table t (x)"]);
      }
      assert.equal(saved.status, 0, saved.stderr);
      assert.equal(npx(["repl", addr, "sqlite", "save", "insert into t values (42)"]).status, 0);
      const loaded = npx(["repl", addr, "sqlite", "load", "select x from t"]);
      assert.equal(loaded.status, 0, loaded.stderr);
      assert.match(loaded.stdout, /Response from SQLite \(without quotes\): '\[\{"x":42\}\]'/);
      node.kill("SIGTERM");
      assert.equal(await exited, 0, out);

      const other = await freePort();
      const redisFlags = nodeFlags.map((f) =>
        f.replaceAll(String(raft), String(other)).replace(String(grpc), String(other + 1)),
      );
      const redis = npx(["nexus-raft", "serve", "-store", "redis", ...redisFlags]);
      assert.equal(redis.status, 2, redis.stderr);
      assert.match(redis.stderr, /-store redis needs the ioredis package.*npm install ioredis/);
      const mysql = npx([
        "mysql_repl",
        ...redisFlags,
        "-mysqlConnUrl",
        "root:root@tcp(127.0.0.1:1)/nexus?autocommit=false",
      ]);
      assert.equal(mysql.status, 2, mysql.stderr);
      assert.match(mysql.stderr, /-store mysql needs the mysql2 package.*npm install mysql2/);
    });

    it("the published types compile in the project and name every type they return", () => {
      writeFileSync(
        join(consumer, "types.ts"),
        `import { createReplicator, SqliteStore, type MemberInfo, type NodeRole, type Replicator,
  type ReplicatorStatus } from "nexus-raft";
import { createNexusClient, type NexusClient } from "nexus-raft/api";
import type { Ready } from "nexus-raft/raft";
import { pino } from "pino";
const rep: Replicator = createReplicator({ nodeUrl: "http://127.0.0.1:1", clusterUrls: ["http://127.0.0.1:1"],
  store: new SqliteStore({ path: "x.db" }), logger: pino() });
const saved: Promise<Uint8Array> = rep.save("insert into t values (1)");
const status: ReplicatorStatus = rep.status();
const role: NodeRole = status.role;
const members: MemberInfo[] = rep.listMembers().members;
const client: NexusClient = createNexusClient("127.0.0.1:9121");
export type Seen = [typeof saved, typeof role, typeof members, typeof client, Ready | undefined];
`,
      );
      // The checkout's compiler, from outside the project: the project itself has none.
      must(
        process.execPath,
        [
          join(ROOT, "node_modules", "typescript", "bin", "tsc"),
          "--noEmit",
          "--strict",
          "--exactOptionalPropertyTypes",
          "--target",
          "es2022",
          "--module",
          "nodenext",
          "--moduleResolution",
          "nodenext",
          "--typeRoots",
          join(ROOT, "node_modules", "@types"),
          "--types",
          "node",
          "types.ts",
        ],
        consumer,
      );
      const installedPkg = JSON.parse(readFileSync(join(installed, "package.json"), "utf8")) as {
        exports: Record<string, unknown>;
      };
      const entries = entryPointsOf(installed, installedPkg.exports, "dist");
      assert.ok(entries.every((e) => e.file.endsWith(".d.ts") && existsSync(e.file)));
      assert.deepEqual(unexportedReturnTypes(entries, installed), []);
    });
  },
);
