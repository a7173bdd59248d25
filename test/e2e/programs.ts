/**
 * End-to-end helpers: real `bin/sqlite_repl` processes on free ports and `bin/repl` runs, as a
 * user types them. Every process started is killed when the test file ends, even on failure.
 */
import { after } from "node:test";
import { execFile, spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "../free-port.js";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));
export const BIN = (name: string): string => join(ROOT, "bin", name);

const children = new Set<ChildProcess>();
const dirs: string[] = [];
after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

export function tempDir(prefix = "nexus-e2e-"): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a program from bin/ to completion. */
export function run(
  program: string,
  args: readonly string[],
  timeoutMs = 60_000,
): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN(program), ...args],
      { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === "number" ? err.code : -1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** `bin/repl <args>`. */
export const repl = (...args: string[]): Promise<RunResult> => run("repl", args);

/** One node of a cluster: its ports, folder and flags; start() spawns bin/sqlite_repl. */
export class SqliteNode {
  readonly url: string;
  readonly addr: string;
  proc: ChildProcess | undefined;
  stdout = "";
  stderr = "";
  private exited: Promise<number | null> = Promise.resolve(null);

  constructor(
    readonly raftPort: number,
    readonly grpcPort: number,
    readonly dir: string,
    readonly clusterUrls: readonly string[],
    readonly extraFlags: readonly string[] = [],
    /** The program in bin/ and its store flags (default: sqlite_repl with a file in dir). */
    readonly program = "sqlite_repl",
    readonly storeFlags?: readonly string[],
  ) {
    this.url = `http://127.0.0.1:${raftPort}`;
    this.addr = `127.0.0.1:${grpcPort}`;
  }

  /** Whether the test gave flag `name` itself (as `name=value`). */
  private hasOwn(name: string): boolean {
    return this.extraFlags.some((f) => f.startsWith(`${name}=`));
  }

  /** The flags, in the original README's mixed styles: -flag value, -flag=value, --flag value. */
  flags(): string[] {
    return [
      "-nexus-cluster-url",
      this.clusterUrls.join(","),
      `-nexus-node-url=${this.url}`,
      "--grpcPort",
      String(this.grpcPort),
      "-grpcHost=127.0.0.1",
      `-nexus-log-dir=${join(this.dir, "logs")}`,
      `-nexus-snap-dir=${join(this.dir, "snap")}`,
      ...(this.storeFlags ?? ["-sqlitePath", join(this.dir, "store.db")]),
      // Fast timing by default; a test's own -nexus-heartbeat-ms/-nexus-election-ms replace it.
      ...(this.hasOwn("-nexus-heartbeat-ms") ? [] : ["-nexus-heartbeat-ms=50"]),
      ...(this.hasOwn("-nexus-election-ms") ? [] : ["-nexus-election-ms=500"]),
      ...(this.hasOwn("-log-level") ? [] : ["-log-level=warn"]),
      ...this.extraFlags,
    ];
  }

  /** Spawns the node and resolves once it says it is serving. */
  async start(extra: readonly string[] = []): Promise<void> {
    this.stdout = "";
    this.stderr = "";
    const p = spawn(process.execPath, [BIN(this.program), ...this.flags(), ...extra], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    children.add(p);
    this.proc = p;
    this.exited = new Promise((res) => p.once("exit", (code) => res(code)));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`node ${this.url} did not start in 30 s:\n${this.stderr}`)),
        30_000,
      );
      p.stdout!.on("data", (b: Buffer) => {
        this.stdout += b.toString();
        if (this.stdout.includes("serving gRPC")) {
          clearTimeout(timer);
          resolve();
        }
      });
      p.stderr!.on("data", (b: Buffer) => (this.stderr += b.toString()));
      void this.exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`node ${this.url} exited with ${String(code)}:\n${this.stderr}`));
      });
    });
  }

  /** Sends a signal and resolves with the exit code once the process has exited. */
  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<number | null> {
    const p = this.proc;
    if (p === undefined || p.exitCode !== null || p.signalCode !== null) return p?.exitCode ?? null;
    p.kill(signal);
    return this.exited;
  }
}

/** A cluster of n sqlite_repl nodes on free ports. */
export async function sqliteCluster(
  n: number,
  extraFlags: readonly string[] = [],
  program = "sqlite_repl",
  storeFlags?: (i: number) => readonly string[],
): Promise<SqliteNode[]> {
  const raft: number[] = [];
  const grpc: number[] = [];
  for (let i = 0; i < n; i++) {
    raft.push(await freePort());
    grpc.push(await freePort());
  }
  const urls = raft.map((p) => `http://127.0.0.1:${p}`);
  const root = tempDir();
  return raft.map(
    (p, i) =>
      new SqliteNode(
        p,
        grpc[i]!,
        join(root, `node${i + 1}`),
        urls,
        extraFlags,
        program,
        storeFlags?.(i),
      ),
  );
}

/** Waits for a condition, polling (errors count as not yet); fails with the last value seen. */
export async function until<T>(
  what: string,
  f: () => Promise<T>,
  ok: (v: T) => boolean,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | string | undefined;
  for (;;) {
    try {
      const v = await f();
      if (ok(v)) return v;
      last = v;
    } catch (err) {
      // Not there yet (e.g. a follower that has not applied a table yet): keep polling.
      last = `error: ${(err as Error).message}`;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(last)}`);
    }
    await new Promise((r) => setTimeout(r, 150));
  }
}

/** The leader's URL as `repl listNodes` prints it, or "" when none is known. */
export async function leaderUrl(addr: string): Promise<string> {
  const r = await repl(addr, "listNodes");
  const m = /=> (\S+) \(leader\)/.exec(r.stdout);
  return m === null ? "" : m[1]!;
}
