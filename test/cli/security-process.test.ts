/**
 * `nexus serve` with TLS for clients and tokens, driven by `bin/repl` as a user would: flags,
 * NEXUS_TOKEN, SIGHUP reloads of the auth file (a wrong file keeps the old one), the loopback
 * default and the warning beyond it, and repl output through a pipe past 64 KiB.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFile } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { hashToken } from "../../src/security/auth.js";
import { freePort } from "../free-port.js";
import { TestCa } from "../transport/certs.js";

const BIN = (name: string): string => join(import.meta.dirname, "../../bin", name);
const dir = mkdtempSync(join(tmpdir(), "nexus-cli-security-"));
const children: ChildProcess[] = [];
after(() => {
  for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const t = Date.now();
  while (!cond()) {
    if (Date.now() - t > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

interface Node {
  readonly child: ChildProcess;
  readonly grpcPort: number;
  out(): string;
  err(): string;
}

async function serve(name: string, extra: string[]): Promise<Node> {
  const url = `http://127.0.0.1:${await freePort()}`;
  const grpcPort = await freePort();
  const child = spawn(
    process.execPath,
    [
      BIN("nexus"),
      "serve",
      "-store",
      "memory",
      "-nexus-node-url",
      url,
      "-nexus-cluster-url",
      url,
      "-grpcPort",
      String(grpcPort),
      "-nexus-log-dir",
      join(dir, name, "logs"),
      "-nexus-snap-dir",
      join(dir, name, "snap"),
      ...extra,
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  children.push(child);
  let out = "";
  let err = "";
  child.stdout!.on("data", (c: Buffer) => (out += c.toString()));
  child.stderr!.on("data", (c: Buffer) => (err += c.toString()));
  await until(() => /serving gRPC/.test(out) || child.exitCode !== null, 60_000, "serving");
  assert.match(out, /serving gRPC/, err);
  return { child, grpcPort, out: () => out, err: () => err };
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function repl(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN("repl"), ...args],
      { env: { ...process.env, NEXUS_TOKEN: "", ...env }, maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) =>
        resolve({ code: error === null ? 0 : (error.code as number), stdout, stderr }),
    );
  });
}

describe("nexus serve with TLS and tokens, used through bin/repl", () => {
  const ca = TestCa.create();
  const authPath = join(dir, "auth.txt");
  let node: Node;
  let tlsFlags: string[];
  before(async () => {
    writeFileSync(
      authPath,
      `ops ${hashToken("ops-token")} read,write,admin\nviewer ${hashToken("view-token")} read\n`,
    );
    const port = await freePort();
    const server = ca.issue(`https://127.0.0.1:${port}`, { hostSan: true });
    const client = ca.issue("https://client.example:1");
    tlsFlags = ["-cacert", ca.caFile, "-cert", client.certFile, "-key", client.keyFile];
    const url = `http://127.0.0.1:${await freePort()}`;
    void url;
    node = await serve("secured", [
      "-grpc-cert-file",
      server.certFile,
      "-grpc-key-file",
      server.keyFile,
      "-grpc-trusted-ca-file",
      ca.caFile,
      "-auth-file",
      authPath,
    ]);
    // The free port asked for the certificate is not the node's: the certificate names the
    // address by its host (127.0.0.1), which is what a client checks.
  });

  it("saves and loads with a certificate and a token (flag or NEXUS_TOKEN); refuses without", async () => {
    const addr = `127.0.0.1:${node.grpcPort}`;
    const saved = await repl([
      ...tlsFlags,
      "-token",
      "ops-token",
      addr,
      "sqlite",
      "save",
      "set a 1",
    ]);
    assert.equal(saved.code, 0, saved.stderr);
    const loaded = await repl([...tlsFlags, addr, "sqlite", "load", "get a"], {
      NEXUS_TOKEN: "view-token",
    });
    assert.equal(loaded.code, 0, loaded.stderr);
    assert.match(loaded.stdout, /'1'/);
    const noToken = await repl([...tlsFlags, addr, "sqlite", "save", "set a 2"]);
    assert.equal(noToken.code, 1);
    assert.match(noToken.stderr, /UNAUTHENTICATED/);
    const readOnly = await repl([
      ...tlsFlags,
      "-token",
      "view-token",
      addr,
      "sqlite",
      "save",
      "set a 3",
    ]);
    assert.equal(readOnly.code, 1);
    assert.match(readOnly.stderr, /PERMISSION_DENIED/);
    // No client certificate: the handshake fails, nothing was sent (exit 3, not 4).
    const noCert = await repl([
      "-cacert",
      ca.caFile,
      "-token",
      "ops-token",
      addr,
      "sqlite",
      "save",
      "set a 4",
    ]);
    assert.equal(noCert.code, 3, noCert.stderr);
    // Plaintext to the TLS port.
    const plain = await repl([
      "-timeout",
      "5",
      "-token",
      "ops-token",
      addr,
      "sqlite",
      "load",
      "get a",
    ]);
    assert.notEqual(plain.code, 0);
    const check = await repl([...tlsFlags, "-token", "ops-token", addr, "sqlite", "load", "get a"]);
    assert.match(check.stdout, /'1'/, "no refused save was applied");
  });

  it("SIGHUP re-reads the auth file; a wrong file keeps the tokens in use and the log says why", async () => {
    const addr = `127.0.0.1:${node.grpcPort}`;
    writeFileSync(authPath, `ops2 ${hashToken("new-token")} read,write\n`);
    node.child.kill("SIGHUP");
    await until(() => /auth file reloaded/.test(node.err()), 10_000, "the reload");
    // The same signal reloads the gRPC certificates (unchanged here).
    assert.match(node.err(), /gRPC TLS certificates unchanged/);
    const fresh = await repl([...tlsFlags, "-token", "new-token", addr, "sqlite", "load", "get a"]);
    assert.equal(fresh.code, 0, fresh.stderr);
    const old = await repl([...tlsFlags, "-token", "ops-token", addr, "sqlite", "load", "get a"]);
    assert.equal(old.code, 1);
    assert.match(old.stderr, /UNAUTHENTICATED/);

    writeFileSync(authPath, `ops3 ${hashToken("third")} read,delete\n`);
    node.child.kill("SIGHUP");
    await until(() => /auth file not reloaded/.test(node.err()), 10_000, "the refused reload");
    assert.match(node.err(), /line 1: unknown permission \\"delete\\"/);
    const kept = await repl([...tlsFlags, "-token", "new-token", addr, "sqlite", "load", "get a"]);
    assert.equal(kept.code, 0, kept.stderr);
  });
});

describe("bind address and plaintext", () => {
  it("binds 127.0.0.1 by default, without a warning; beyond loopback without TLS and tokens it warns", async () => {
    const local = await serve("default-bind", []);
    assert.match(local.out(), /serving gRPC on 127\.0\.0\.1:/);
    assert.doesNotMatch(local.err(), /beyond loopback/);
    local.child.kill("SIGTERM");
    const open = await serve("open-bind", ["-grpcHost", "0.0.0.0"]);
    await until(() => /beyond loopback/.test(open.err()), 10_000, "the warning");
    assert.match(open.err(), /"level":"?(warn|40)/);
    open.child.kill("SIGTERM");
  });

  it("bin/repl output through a pipe is complete past 64 KiB", async () => {
    const node = await serve("pipe", []);
    const addr = `127.0.0.1:${node.grpcPort}`;
    const big = "x".repeat(100_000);
    for (const k of ["b1", "b2", "b3"]) {
      const saved = await repl([addr, "sqlite", "save", `set ${k} ${big}`]);
      assert.equal(saved.code, 0, saved.stderr);
    }
    const full = await repl([addr, "sqlite", "load", "dump"]);
    assert.equal(full.code, 0, full.stderr);
    const expected = Buffer.byteLength(full.stdout);
    assert.ok(expected > 300_000, String(expected));
    // Through a shell pipe whose reader starts late, as in `bin/repl ... | wc -c` on a busy
    // machine: a pipe holds 64 KiB, the rest is written after the pipe drains.
    const wc = await new Promise<string>((resolve, reject) =>
      execFile(
        "bash",
        [
          "-c",
          `"${process.execPath}" "${BIN("repl")}" ${addr} sqlite load dump | (sleep 1; wc -c)`,
        ],
        (e, out) => (e === null ? resolve(out) : reject(e)),
      ),
    );
    assert.equal(Number(wc.trim()), expected);
    node.child.kill("SIGTERM");
  });
});
