import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CONFIG_FLAG, envNameOf, withEnvAndFile } from "../../src/cli/config-sources.js";
import { FlagError, parseFlags } from "../../src/cli/flags.js";
import type { FlagSpec } from "../../src/cli/flags.js";
import { NODE_FLAGS } from "../../src/cli/node-flags.js";
import { serveUsage } from "../../src/cli/serve.js";
import { STORE_KINDS } from "../../src/cli/stores.js";
import { freePort } from "../free-port.js";

const root = mkdtempSync(join(tmpdir(), "nexus-cli-config-"));
after(() => rmSync(root, { recursive: true, force: true }));

const SPECS: readonly FlagSpec[] = [
  { name: "nexus-node-url", kind: "string", help: "" },
  { name: "grpcPort", kind: "int", min: 1, max: 65535, help: "" },
  { name: "nexus-max-wals", kind: "int", min: 0, default: 5, help: "" },
  { name: "nexusLeaseBasedReads", kind: "bool", aliases: ["nexus-lease-based-reads"], help: "" },
  { name: "redisPassword", kind: "string", help: "" },
  CONFIG_FLAG,
];

function file(name: string, text: string): string {
  const p = join(root, name);
  writeFileSync(p, text);
  return p;
}

const resolve = (argv: string[], env: NodeJS.ProcessEnv): Map<string, unknown> =>
  new Map(withEnvAndFile(parseFlags(argv, SPECS), SPECS, env).values);

describe("flags from the environment and a config file", () => {
  it("derives the variable from the flag's name", () => {
    assert.equal(envNameOf("grpcPort"), "NEXUS_GRPC_PORT");
    assert.equal(envNameOf("nexus-node-url"), "NEXUS_NODE_URL");
    assert.equal(envNameOf("nexusLeaseBasedReads"), "NEXUS_LEASE_BASED_READS");
    assert.equal(envNameOf("metadataDB"), "NEXUS_METADATA_DB");
    assert.equal(envNameOf("log-level"), "NEXUS_LOG_LEVEL");
    assert.equal(envNameOf("mysqlPasswordFile"), "NEXUS_MYSQL_PASSWORD_FILE");
  });

  it("no two flags of a node program share a variable, and --help names each", () => {
    for (const kind of [undefined, ...STORE_KINDS]) {
      const usage = serveUsage(
        kind === undefined ? { name: "nexus serve" } : { name: "x", store: kind },
      );
      const names = [...usage.matchAll(/\[env (NEXUS_[A-Z0-9_]+)\]/g)].map((m) => m[1]!);
      assert.equal(new Set(names).size, names.length, `duplicates in ${String(kind?.name)}`);
      assert.ok(names.includes("NEXUS_GRPC_PORT"));
    }
    assert.ok(
      NODE_FLAGS.every((s) => serveUsage({ name: "n" }).includes(`[env ${envNameOf(s.name)}]`)),
    );
  });

  it("the command line wins over the environment, which wins over the file, over the default", () => {
    const cfg = file(
      "p.json",
      JSON.stringify({ grpcPort: 1, "nexus-node-url": "http://f:1", "nexus-max-wals": 7 }),
    );
    const env = { NEXUS_GRPC_PORT: "2", NEXUS_CONFIG: cfg };
    assert.equal(resolve(["-grpcPort", "3"], env).get("grpcPort"), 3);
    assert.equal(resolve([], env).get("grpcPort"), 2);
    assert.equal(resolve([], env).get("nexus-node-url"), "http://f:1");
    assert.equal(resolve([], env).get("nexus-max-wals"), 7);
    assert.equal(resolve([], {}).get("nexus-max-wals"), 5);
    assert.equal(resolve(["-config", cfg], {}).get("grpcPort"), 1);
    // A boolean from the environment, and false on the command line beating true there.
    assert.equal(
      resolve([], { NEXUS_LEASE_BASED_READS: "true" }).get("nexusLeaseBasedReads"),
      true,
    );
    assert.equal(
      resolve(["-nexusLeaseBasedReads=false"], { NEXUS_LEASE_BASED_READS: "1" }).get(
        "nexusLeaseBasedReads",
      ),
      false,
    );
  });

  it("YAML files, keys by any of a flag's names, lists joined with commas", () => {
    const cfg = file(
      "c.yaml",
      "grpcPort: 9121\nnexus-lease-based-reads: true\nnexus-node-url:\n  - http://a:1\n  - http://b:2\n",
    );
    const v = resolve(["-config", cfg], {});
    assert.equal(v.get("grpcPort"), 9121);
    assert.equal(v.get("nexusLeaseBasedReads"), true);
    assert.equal(v.get("nexus-node-url"), "http://a:1,http://b:2");
  });

  it("an unknown key is an error naming the key and the file", () => {
    const cfg = file("u.yaml", "grpcPort: 9121\ngrpc-prot: 9122\n");
    assert.throws(
      () => resolve(["-config", cfg], {}),
      (e: unknown) =>
        e instanceof FlagError && e.message.includes(`config file ${cfg}: unknown key "grpc-prot"`),
    );
  });

  it("bad values name the variable or the file and key", () => {
    assert.throws(
      () => resolve([], { NEXUS_GRPC_PORT: "x" }),
      (e: unknown) =>
        e instanceof FlagError &&
        /environment variable NEXUS_GRPC_PORT \(flag -grpcPort\): .*integer/.test(e.message),
    );
    const cfg = file("b.json", '{"grpcPort": true}');
    assert.throws(
      () => resolve(["-config", cfg], {}),
      (e: unknown) =>
        e instanceof FlagError && e.message.includes(`key "grpcPort" must be an integer`),
    );
    const broken = file("broken.yaml", "grpcPort: [\n");
    assert.throws(
      () => resolve(["-config", broken], {}),
      (e: unknown) =>
        e instanceof FlagError && e.message.includes(`config file ${broken}: not valid`),
    );
    assert.throws(
      () => resolve(["-config", join(root, "missing.json")], {}),
      (e: unknown) => e instanceof FlagError && e.message.includes("cannot read it"),
    );
  });

  it("NEXUS_REDIS_PASSWORD stays the secret's own variable (a password file still wins over it)", () => {
    assert.equal(resolve([], { NEXUS_REDIS_PASSWORD: "s3cret" }).get("redisPassword"), undefined);
  });
});

describe("a node started from the environment and a config file only", () => {
  it("serves with the values given there, and refuses an unknown key with exit 2", async () => {
    const raft = await freePort();
    const grpc = await freePort();
    const dir = join(root, "node");
    const cfg = file(
      "node.yaml",
      `nexus-node-url: http://127.0.0.1:${raft}\nnexus-cluster-url: [http://127.0.0.1:${raft}]\n` +
        `grpcHost: 127.0.0.1\nsqlitePath: ${join(dir, "db")}\n`,
    );
    const env = {
      ...process.env,
      NEXUS_CONFIG: cfg,
      NEXUS_GRPC_PORT: String(grpc),
      NEXUS_LOG_DIR: join(dir, "logs"),
      NEXUS_SNAP_DIR: join(dir, "snap"),
    };
    const out = await new Promise<string>((res, rej) => {
      const p = spawn(process.execPath, ["bin/sqlite_repl"], {
        env,
        stdio: ["ignore", "pipe", "pipe"],
      });
      let text = "";
      p.stdout.on("data", (b: Buffer) => {
        text += b.toString();
        if (text.includes("serving gRPC")) p.kill("SIGTERM");
      });
      p.stderr.on("data", (b: Buffer) => (text += b.toString()));
      p.once("exit", (code) =>
        code === 0 ? res(text) : rej(new Error(`exit ${String(code)}: ${text}`)),
      );
    });
    assert.match(
      out,
      new RegExp(`serving gRPC on 127\\.0\\.0\\.1:${grpc}; store sqlite ${join(dir, "db")}`),
    );

    const bad = file("bad.yaml", "grpcPort: 1\nsqlite-path: /x\n");
    const r = await new Promise<{ code: number | null; err: string }>((res) => {
      const p = spawn(process.execPath, ["bin/sqlite_repl", "-config", bad], {
        stdio: ["ignore", "pipe", "pipe"],
      });
      let err = "";
      p.stderr.on("data", (b: Buffer) => (err += b.toString()));
      p.once("exit", (code) => res({ code, err }));
    });
    assert.equal(r.code, 2);
    assert.match(r.err, new RegExp(`config file ${bad}: unknown key "sqlite-path"`));
  });
});
