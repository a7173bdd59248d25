/**
 * A private MariaDB server for tests: its own data folder (mariadb-install-db) and port, root
 * without a password, a database `nexus`; killed and removed when the test file ends.
 */
import { after } from "node:test";
import { execFile, spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import mysql from "mysql2/promise";

export interface MariaDbServer {
  readonly port: number;
  readonly dir: string;
  /** `mysql://root@127.0.0.1:<port>/<db>` */
  url(db?: string): string;
  /** The original's DSN form: `root@tcp(127.0.0.1:<port>)/<db>?autocommit=false`. */
  dsn(db?: string): string;
  query(sql: string, db?: string): Promise<unknown[]>;
  start(): Promise<void>;
  kill(): Promise<void>;
}

const servers: MariaDbServer[] = [];
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

const MARIADBD = existsSync("/usr/sbin/mariadbd") ? "/usr/sbin/mariadbd" : "mariadbd";

/** Starts a private MariaDB with a database `nexus`. */
export async function startMariaDb(): Promise<MariaDbServer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "nexus-mariadb-"));
  const data = join(dir, "data");
  const user = userInfo().username;
  await promisify(execFile)("mariadb-install-db", [
    "--no-defaults",
    `--datadir=${data}`,
    "--auth-root-authentication-method=normal",
    "--skip-test-db",
    `--user=${user}`,
  ]);
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
  const server: MariaDbServer = {
    port,
    dir,
    url: (db = "nexus") => `mysql://root@127.0.0.1:${port}/${db}`,
    dsn: (db = "nexus") => `root@tcp(127.0.0.1:${port})/${db}?autocommit=false`,
    query,
    async start() {
      proc = spawn(
        MARIADBD,
        [
          "--no-defaults",
          `--datadir=${data}`,
          `--port=${port}`,
          "--bind-address=127.0.0.1",
          `--socket=${join(dir, "sock")}`,
          `--pid-file=${join(dir, "pid")}`,
          `--user=${user}`,
          "--skip-log-bin",
          "--skip-name-resolve",
          "--innodb-buffer-pool-size=16M",
          "--innodb-log-file-size=16M",
          "--character-set-server=utf8mb4",
          "--collation-server=utf8mb4_unicode_ci",
        ],
        { stdio: "ignore" },
      );
      const deadline = Date.now() + 30_000;
      for (;;) {
        try {
          await query("SELECT 1");
          break;
        } catch (err) {
          if (Date.now() > deadline || proc.exitCode !== null) {
            throw new Error(`mariadbd on ${port} did not start: ${(err as Error).message}`);
          }
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    },
    async kill() {
      const p = proc;
      if (p === undefined || p.exitCode !== null || p.signalCode !== null) return;
      const exited = new Promise((r) => p.once("exit", r));
      p.kill("SIGKILL");
      await exited;
    },
  };
  servers.push(server);
  await server.start();
  await query("CREATE DATABASE nexus");
  return server;
}
