/**
 * Losing 2 of 3 nodes on MariaDB, with real processes (the procedure of docs/backup.md, shared
 * with the SQLite and Redis tests in majority-loss-scenario.ts): three bin/mysql_repl nodes, each
 * on its own database of the machine's MariaDB, two killed, the survivor recovered with `nexus
 * recover -store mysql` into a one-member cluster, two new members (each on a new database) added
 * back. Every write the survivor had applied is kept on every member.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createDatabases } from "../store/mariadb-databases.js";
import { recoverAfterLosingTwo } from "./majority-loss-scenario.js";
import { repl } from "./programs.js";

const RESPONSE = /Response from \w+ \(without quotes\): '(.*)'/s;

async function save(addr: string, sql: string): Promise<void> {
  const r = await repl(addr, "mysql", "save", sql);
  assert.equal(r.code, 0, r.stderr);
}

async function rows(addr: string, consistency: string): Promise<number[]> {
  const r = await repl(
    `-consistency=${consistency}`,
    addr,
    "mysql",
    "load",
    "select group_concat(i order by i) as r from t",
  );
  if (r.code !== 0) throw new Error(`load failed: ${r.stderr}`);
  const m = RESPONSE.exec(r.stdout);
  if (m === null) throw new Error(`unexpected output: ${r.stdout}`);
  const v = (JSON.parse(m[1]!) as { r: string | null }[])[0]!.r;
  return v === null ? [] : v.split(",").map(Number);
}

describe("recovering from the loss of 2 of 3 nodes (MariaDB, real processes)", () => {
  it(
    "nexus recover -store mysql: the stopped survivor's database as a one-member cluster, members added back",
    { timeout: 300_000 },
    () =>
      recoverAfterLosingTwo({
        kind: "mysql",
        program: "mysql_repl",
        stores: async (n) => {
          const dbs = await createDatabases("nexus_majority_loss", n);
          return (i) => ["-mysqlConnUrl", dbs[i]!.dsn];
        },
        setup: (addr) => save(addr, "create table t (i int primary key)"),
        insert: (addr, i) => save(addr, `insert into t values (${i})`),
        rows,
      }),
  );
});
