/**
 * Uniquely named databases on the MariaDB the machine already runs (127.0.0.1:3306, root without
 * a password; NEXUS_TEST_MYSQL_PORT to use another port), for end-to-end tests whose nodes need
 * one database each rather than a private server each. Every database made is dropped when the
 * test file ends (an `after()` hook under `node --test`).
 */
import { randomBytes } from "node:crypto";
import { after } from "node:test";
import mysql from "mysql2/promise";

export const MYSQL_PORT = Number(process.env.NEXUS_TEST_MYSQL_PORT ?? 3306);

const made: string[] = [];

async function exec(sql: string, db?: string): Promise<unknown[]> {
  const c = await mysql.createConnection({
    host: "127.0.0.1",
    port: MYSQL_PORT,
    user: "root",
    ...(db === undefined ? {} : { database: db }),
  });
  try {
    const [rows] = await c.query(sql);
    return Array.isArray(rows) ? (rows as unknown[]) : [];
  } finally {
    await c.end();
  }
}

after(async () => {
  for (const db of made.splice(0)) await exec(`drop database if exists \`${db}\``);
});

/** One database on the shared server. */
export interface TestDatabase {
  readonly name: string;
  /** The original's DSN form: `root@tcp(127.0.0.1:3306)/<name>?autocommit=false`. */
  readonly dsn: string;
  /** `mysql://root@127.0.0.1:3306/<name>`. */
  readonly url: string;
  /** Runs one statement in it; rows, or [] for a write. */
  query(sql: string): Promise<unknown[]>;
}

/** Creates `n` new empty databases named `<prefix>_<random>_<i>`. */
export async function createDatabases(prefix: string, n: number): Promise<TestDatabase[]> {
  const tag = `${prefix}_${randomBytes(4).toString("hex")}`;
  const out: TestDatabase[] = [];
  for (let i = 1; i <= n; i++) {
    const name = `${tag}_${i}`;
    made.push(name);
    await exec(`create database \`${name}\``);
    out.push({
      name,
      dsn: `root@tcp(127.0.0.1:${MYSQL_PORT})/${name}?autocommit=false`,
      url: `mysql://root@127.0.0.1:${MYSQL_PORT}/${name}`,
      query: (sql) => exec(sql, name),
    });
  }
  return out;
}
