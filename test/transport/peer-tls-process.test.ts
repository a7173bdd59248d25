/**
 * Peer TLS in a real `nexus serve` process: an https:// URL without the TLS flags refuses to
 * start, and SIGHUP reloads the certificates (or keeps those in use when the new files are
 * unusable), as the log says.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../free-port.js";
import { BIN, run } from "../e2e/programs.js";
import { TestCa } from "./certs.js";

const dir = mkdtempSync(join(tmpdir(), "nexus-tls-proc-"));
const children: ChildProcess[] = [];
after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const t = Date.now();
  while (!cond()) {
    if (Date.now() - t > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("peer TLS in a nexus serve process", () => {
  it("an https:// node URL without the TLS flags refuses to start with a clear message", async () => {
    const url = `https://127.0.0.1:${await freePort()}`;
    const r = await run("nexus", [
      "serve",
      "-store",
      "memory",
      "-nexus-node-url",
      url,
      "-nexus-cluster-url",
      url,
      "-grpcPort",
      String(await freePort()),
    ]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(
      r.stderr,
      /is https:\/\/, but no peer certificate is configured: give -peer-cert-file, -peer-key-file and -peer-trusted-ca-file/,
    );
  });

  it("SIGHUP reloads the peer certificates, and keeps those in use when the new files are unusable", async () => {
    const url = `https://127.0.0.1:${await freePort()}`;
    const ca = TestCa.create();
    const first = ca.issue(url);
    const live = {
      certFile: join(dir, "node.pem"),
      keyFile: join(dir, "node-key.pem"),
      trustedCaFile: join(dir, "ca.pem"),
    };
    copyFileSync(first.certFile, live.certFile);
    copyFileSync(first.keyFile, live.keyFile);
    copyFileSync(first.trustedCaFile, live.trustedCaFile);
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
        "-grpcHost",
        "127.0.0.1",
        "-grpcPort",
        String(await freePort()),
        "-nexus-log-dir",
        join(dir, "logs"),
        "-nexus-snap-dir",
        join(dir, "snap"),
        "-peer-cert-file",
        live.certFile,
        "-peer-key-file",
        live.keyFile,
        "-peer-trusted-ca-file",
        live.trustedCaFile,
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    children.push(child);
    let out = "";
    let err = "";
    child.stdout!.on("data", (c: Buffer) => (out += c.toString()));
    child.stderr!.on("data", (c: Buffer) => (err += c.toString()));
    await until(() => /serving gRPC/.test(out) || child.exitCode !== null, 30_000, "serving");
    assert.match(out, /serving gRPC/, err);
    child.kill("SIGHUP");
    await until(() => /peer TLS certificates unchanged/.test(err), 20_000, "unchanged");
    // A new certificate for the same URL (the script keeps the CA): reloaded.
    const second = ca.issue(url);
    copyFileSync(second.certFile, live.certFile);
    copyFileSync(second.keyFile, live.keyFile);
    child.kill("SIGHUP");
    await until(() => /peer TLS certificates reloaded/.test(err), 20_000, "reloaded");
    // A key that is not PEM: refused, the node goes on with what it has.
    writeFileSync(live.keyFile, "not a key\n");
    child.kill("SIGHUP");
    await until(
      () => /peer TLS certificates not reloaded; keeping those in use/.test(err),
      10_000,
      "kept",
    );
    assert.equal(child.exitCode, null, "still running");
    child.kill("SIGTERM");
    await until(() => child.exitCode !== null, 15_000, "exit");
    assert.equal(child.exitCode, 0, err);
  });
});
