/**
 * A private redis-server for tests: its own port and folder, append-only file fsync'd on every
 * write, killed and removed when the test file ends (even on failure).
 */
import { after } from "node:test";
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createConnection, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface RedisServer {
  readonly port: number;
  readonly dir: string;
  /** Starts it again (same port and data) after stop() or kill(). */
  start(): Promise<void>;
  /** SIGKILL: like a crash. */
  kill(): Promise<void>;
  stop(): Promise<void>;
}

/** Every server process: killed when this process exits, and never keeping it alive. */
const children = new Set<ChildProcess>();
process.on("exit", () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
});

const servers: RedisServer[] = [];
after(async () => {
  for (const s of servers) {
    await s.kill();
    rmSync(s.dir, { recursive: true, force: true });
  }
});

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

function answersPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ port, host: "127.0.0.1" });
    s.once("error", () => resolve(false));
    s.once("connect", () => s.write("PING\r\n"));
    s.once("data", (d) => {
      s.destroy();
      resolve(d.toString().startsWith("+PONG"));
    });
  });
}

/** Starts a redis-server on a free port with its own data folder. */
export async function startRedis(): Promise<RedisServer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "nexus-redis-"));
  let proc: ChildProcess | undefined;
  const server: RedisServer = {
    port,
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
          "--appendonly",
          "yes",
          "--appendfsync",
          "always",
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
