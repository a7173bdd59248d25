/**
 * A private MariaDB server for tests: its own data folder (mariadb-install-db), port and socket,
 * root without a password, a database `nexus`. Every server started by a test file is killed and
 * its folder removed in an `after()` hook (under `node --test`), and at process exit if that hook
 * never runs (or outside the test runner, as in a benchmark).
 * On a 2-core machine a server is ready in about 1 s (install ~0.7 s, start ~0.2 s).
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import mysql from "mysql2/promise";
import { freePort } from "../free-port.js";

/** How startMariaDb() sizes InnoDB. The defaults are small, for tests. */
export interface MariaDbOptions {
  /** `innodb_buffer_pool_size` in MiB. Default 16. */
  readonly bufferPoolMb?: number;
  /** `innodb_log_file_size` in MiB. Default 16. */
  readonly logFileMb?: number;
  /**
   * `innodb_flush_log_at_trx_commit`: 1 flushes the redo log to disk at every commit, 2 writes
   * it at every commit and flushes it about once a second, 0 does both about once a second.
   * Default: the server's own (1).
   */
  readonly flushLogAtTrxCommit?: 0 | 1 | 2;
  /** More mariadbd options, after the helper's own (a later one wins), e.g. `--ssl-cert=...`. */
  readonly serverArgs?: readonly string[];
}

export interface MariaDbServer {
  readonly port: number;
  readonly dir: string;
  /** `mysql://root@127.0.0.1:<port>/<db>` (db defaults to `nexus`). */
  url(db?: string): string;
  /** The original's DSN form: `root@tcp(127.0.0.1:<port>)/<db>?autocommit=false`. */
  dsn(db?: string): string;
  /** Runs one statement as root on a new connection; rows, or [] for a write. */
  query(sql: string, db?: string): Promise<unknown[]>;
  /** Starts the server (again) on the same data folder and port; resolves when it answers. */
  start(): Promise<void>;
  /** Stops it cleanly (SIGTERM) and waits for its exit. */
  stop(): Promise<void>;
  /** Kills it (SIGKILL), as a crash would, and waits for its exit. */
  kill(): Promise<void>;
  /** kill() then start(). */
  restart(): Promise<void>;
}

/**
 * Every server process and folder: killed and removed when this process exits (also when a test
 * file fails before its after() hook runs), and never keeping it alive. A mariadb-install-db
 * still running is killed first, with the mariadbd it started (its own process group).
 */
const children = new Set<ChildProcess>();
const installs = new Set<ChildProcess>();
const servers: MariaDbServer[] = [];
function killInstalls(): void {
  for (const p of installs) {
    try {
      if (p.pid !== undefined) process.kill(-p.pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
}
function removeDir(dir: string): void {
  try {
    // Retried: a process killed a moment ago may still be finishing a write.
    rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 20 });
  } catch (err) {
    process.stderr.write(`mariadb-server: could not remove ${dir}: ${(err as Error).message}\n`);
  }
}
process.on("exit", () => {
  killInstalls();
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  for (const s of servers) removeDir(s.dir);
});

// Under `node --test`, the test file's after() hook stops them as soon as its tests end. node:test
// is loaded only there: in another process (a benchmark) it would print TAP output on stdout.
if (process.env["NODE_TEST_CONTEXT"] !== undefined) {
  const { after } = await import("node:test");
  after(async () => {
    killInstalls();
    for (const s of servers) {
      await s.kill();
      removeDir(s.dir);
    }
  });
}

function binary(name: string, dirs: readonly string[]): string {
  for (const d of dirs) if (existsSync(join(d, name))) return join(d, name);
  return name;
}

const MARIADBD = binary("mariadbd", ["/usr/sbin", "/usr/bin", "/usr/local/bin"]);
const INSTALL_DB = binary("mariadb-install-db", ["/usr/bin", "/usr/local/bin", "/usr/sbin"]);

function megabytes(name: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback;
  if (!Number.isSafeInteger(v) || v < 1) {
    throw new Error(`startMariaDb: ${name} takes a positive whole number of MiB, got ${v}`);
  }
  return v;
}

/**
 * Runs mariadb-install-db in its own process group, so that clean-up can kill it together with
 * the bootstrap mariadbd it starts; rejects with its output if it fails.
 */
function installDb(args: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn(INSTALL_DB, args, { detached: true, stdio: ["ignore", "pipe", "pipe"] });
    installs.add(p);
    let output = "";
    const collect = (d: Buffer): void => {
      output = (output + d.toString()).slice(-4000);
    };
    p.stdout.on("data", collect);
    p.stderr.on("data", collect);
    p.once("error", (err) => {
      installs.delete(p);
      reject(err);
    });
    p.once("close", (code, signal) => {
      installs.delete(p);
      if (code === 0) resolve();
      else reject(new Error(`${INSTALL_DB} failed (${signal ?? `exit code ${code}`}):\n${output}`));
    });
  });
}

/** Starts a private MariaDB with a database `nexus` (utf8mb4). */
export async function startMariaDb(options: MariaDbOptions = {}): Promise<MariaDbServer> {
  const innodb = [
    `--innodb-buffer-pool-size=${megabytes("bufferPoolMb", options.bufferPoolMb, 16)}M`,
    `--innodb-log-file-size=${megabytes("logFileMb", options.logFileMb, 16)}M`,
    ...(options.flushLogAtTrxCommit === undefined
      ? []
      : [`--innodb-flush-log-at-trx-commit=${options.flushLogAtTrxCommit}`]),
  ];
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "nexus-mariadb-"));
  const data = join(dir, "data");
  const user = userInfo().username;
  let proc: ChildProcess | undefined;
  const query = async (sql: string, db?: string): Promise<unknown[]> => {
    const c = await mysql.createConnection({
      host: "127.0.0.1",
      port,
      user: "root",
      ...(db === undefined ? {} : { database: db }),
    });
    try {
      const [rows] = await c.query(sql);
      return Array.isArray(rows) ? rows : [];
    } finally {
      await c.end();
    }
  };
  const waitExit = async (signal: NodeJS.Signals): Promise<void> => {
    const p = proc;
    if (p === undefined || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise((r) => p.once("exit", r));
    p.ref(); // waiting for its exit must keep this process alive
    p.kill(signal);
    await exited;
    children.delete(p);
  };
  const server: MariaDbServer = {
    port,
    dir,
    url: (db = "nexus") => `mysql://root@127.0.0.1:${port}/${db}`,
    dsn: (db = "nexus") => `root@tcp(127.0.0.1:${port})/${db}?autocommit=false`,
    query,
    async start() {
      const p = spawn(
        MARIADBD,
        [
          "--no-defaults",
          `--datadir=${data}`,
          `--port=${port}`,
          "--bind-address=127.0.0.1",
          `--socket=${join(dir, "sock")}`,
          `--pid-file=${join(dir, "pid")}`,
          `--log-error=${join(dir, "error.log")}`,
          `--user=${user}`,
          "--skip-log-bin",
          "--skip-name-resolve",
          ...innodb,
          "--character-set-server=utf8mb4",
          "--collation-server=utf8mb4_unicode_ci",
          ...(options.serverArgs ?? []),
        ],
        { stdio: "ignore" },
      );
      children.add(p);
      p.unref();
      proc = p;
      const deadline = Date.now() + 30_000;
      for (;;) {
        try {
          await query("SELECT 1");
          return;
        } catch (err) {
          if (Date.now() > deadline || p.exitCode !== null) {
            let log = "";
            try {
              log = readFileSync(join(dir, "error.log"), "utf8").slice(-2000);
            } catch {
              // no log yet
            }
            throw new Error(
              `mariadbd on port ${port} did not start: ${(err as Error).message}\n${log}`,
            );
          }
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    },
    stop: () => waitExit("SIGTERM"),
    kill: () => waitExit("SIGKILL"),
    async restart() {
      await waitExit("SIGKILL");
      await server.start();
    },
  };
  // Registered before anything can fail, so that after() removes the folder in any case.
  servers.push(server);
  await installDb([
    "--no-defaults",
    `--datadir=${data}`,
    "--auth-root-authentication-method=normal",
    "--skip-test-db",
    `--user=${user}`,
  ]);
  await server.start();
  await query("CREATE DATABASE nexus");
  return server;
}
