/**
 * A private redis-server for tests: its own port and folder, append-only file fsync'd on every
 * write (unless `appendonly: false`). Killed and its folder removed when the test file ends (even
 * on failure), and at the latest when this process exits.
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../free-port.js";

/** How startRedis() configures the server. */
export interface RedisOptions {
  /**
   * true (the default): an append-only file fsync'd on every write (`appendonly yes`,
   * `appendfsync always`), so acknowledged writes survive kill(). false: no persistence at all
   * (no append-only file, no RDB snapshots), as a benchmark wants.
   */
  readonly appendonly?: boolean;
  /** `requirepass`: clients must AUTH with this password. */
  readonly requirepass?: string;
  /**
   * A TLS port besides the plain one (which tests use to see that the server is up): PEM files
   * of the server's certificate and key, and the CA that client certificates must come from
   * (`authClients`: whether the server asks for one; default no).
   */
  readonly tls?: {
    readonly certFile: string;
    readonly keyFile: string;
    readonly caFile: string;
    readonly authClients?: boolean;
  };
}

export interface RedisServer {
  readonly port: number;
  /** The TLS port, when the server was started with `tls`. */
  readonly tlsPort: number | undefined;
  readonly dir: string;
  /** Starts it again (same port and data) after stop() or kill(). */
  start(): Promise<void>;
  /** SIGKILL: like a crash. */
  kill(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Every server process and folder: killed and removed when this process exits (also when a test
 * file fails before its after() hooks run), and never keeping it alive.
 */
const children = new Set<ChildProcess>();
const servers: RedisServer[] = [];
function removeDir(dir: string): void {
  try {
    // Retried: a process killed a moment ago may still be finishing a write.
    rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 20 });
  } catch (err) {
    process.stderr.write(`redis-server: could not remove ${dir}: ${(err as Error).message}\n`);
  }
}
process.on("exit", () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  for (const s of servers) removeDir(s.dir);
});

// Under `node --test`, the test file's after() hook stops them as soon as its tests end. node:test
// is loaded only there: in another process (a benchmark) it would print TAP output on stdout.
if (process.env["NODE_TEST_CONTEXT"] !== undefined) {
  const { after } = await import("node:test");
  after(async () => {
    for (const s of servers) {
      await s.kill();
      removeDir(s.dir);
    }
  });
}

function answersPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ port, host: "127.0.0.1" });
    s.once("error", () => resolve(false));
    s.once("connect", () => s.write("PING\r\n"));
    s.once("data", (d) => {
      s.destroy();
      // A server with requirepass answers NOAUTH: it is up all the same.
      resolve(/^(\+PONG|-NOAUTH)/.test(d.toString()));
    });
  });
}

/** Starts a redis-server on a free port with its own data folder. */
export async function startRedis(options: RedisOptions = {}): Promise<RedisServer> {
  const persistence =
    options.appendonly === false
      ? ["--appendonly", "no"]
      : ["--appendonly", "yes", "--appendfsync", "always"];
  const port = await freePort();
  const tlsPort = options.tls === undefined ? undefined : await freePort();
  const dir = mkdtempSync(join(tmpdir(), "nexus-redis-"));
  const auth = options.requirepass === undefined ? [] : ["--requirepass", options.requirepass];
  const tls =
    options.tls === undefined || tlsPort === undefined
      ? []
      : [
          "--tls-port",
          String(tlsPort),
          "--tls-cert-file",
          options.tls.certFile,
          "--tls-key-file",
          options.tls.keyFile,
          "--tls-ca-cert-file",
          options.tls.caFile,
          "--tls-auth-clients",
          options.tls.authClients === true ? "yes" : "no",
        ];
  let proc: ChildProcess | undefined;
  const server: RedisServer = {
    port,
    tlsPort,
    dir,
    async start() {
      proc = spawn(
        "redis-server",
        [
          "--port",
          String(port),
          "--bind",
          "127.0.0.1",
          "--dir",
          dir,
          "--save",
          "",
          ...persistence,
          ...auth,
          ...tls,
          "--daemonize",
          "no",
          "--logfile",
          join(dir, "redis.log"),
        ],
        { stdio: "ignore" },
      );
      children.add(proc);
      proc.unref();
      const deadline = Date.now() + 10_000;
      while (!(await answersPing(port))) {
        if (Date.now() > deadline) throw new Error(`redis-server on ${port} did not start`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async kill() {
      const p = proc;
      if (p === undefined || p.exitCode !== null || p.signalCode !== null) return;
      p.ref(); // waiting for its exit must keep this process alive
      const exited = new Promise((r) => p.once("exit", r));
      p.kill("SIGKILL");
      await exited;
    },
    async stop() {
      const p = proc;
      if (p === undefined || p.exitCode !== null || p.signalCode !== null) return;
      p.ref();
      const exited = new Promise((r) => p.once("exit", r));
      p.kill("SIGTERM");
      await exited;
    },
  };
  servers.push(server);
  await server.start();
  return server;
}
