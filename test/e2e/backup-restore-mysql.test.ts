/**
 * Backup and restore on MariaDB with real processes: three bin/mysql_repl nodes, each on its own
 * database of the machine's MariaDB, backed up with `nexus backup` while a writer saves rows
 * (with NOW(3) and RAND(), which every replica must apply alike), restored with `nexus restore
 * -store mysql` into a new 3-node and a new 5-node cluster on other databases, whose every
 * replica's digest equals the source's at the backup's index. A restore onto a database that
 * holds Nexus data is refused.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { MySqlStore } from "../../src/store/mysql/index.js";
import { createDatabases } from "../store/mariadb-databases.js";
import type { TestDatabase } from "../store/mariadb-databases.js";
import { repl, run, sqliteCluster } from "./programs.js";
import {
  assertRestoredAsSource,
  backupUnderLoad,
  digestOfStore,
  restoreArgs,
  restoreCluster,
  waitForLeader,
} from "./backup-scenario.js";

const mysqlFlags = (db: TestDatabase): string[] => ["-mysqlConnUrl", db.dsn];

/**
 * The digest of database `src`'s rows up to k: the table copied into a new database without the
 * later rows, digested by MySqlStore as a replica's is.
 */
async function mysqlDigestUpTo(src: TestDatabase, k: number): Promise<string> {
  const [ref] = await createDatabases("nexus_backup_ref", 1);
  await ref!.query(`create table t like \`${src.name}\`.t`);
  await ref!.query(`insert into t select * from \`${src.name}\`.t where i <= ${k}`);
  return digestOfStore(new MySqlStore({ url: ref!.url }));
}

describe("nexus backup and nexus restore (MariaDB, real processes)", () => {
  it(
    "backs up a 3-node mysql_repl cluster under writes and restores it into new 3- and 5-node clusters at the backup's index",
    { timeout: 400_000 },
    async () => {
      const dbs = await createDatabases("nexus_backup_src", 3);
      const src = await sqliteCluster(3, [], "mysql_repl", (i) => mysqlFlags(dbs[i]!));
      await Promise.all(src.map((n) => n.start()));
      await waitForLeader(src[0]!.addr);
      const created = await repl(
        src[0]!.addr,
        "mysql",
        "save",
        "create table t (i int primary key, v varchar(64) not null, r double not null, ts timestamp(3) not null default current_timestamp(3))",
      );
      assert.equal(created.code, 0, created.stderr);
      const taken = await backupUnderLoad(
        src,
        "mysql",
        (i) => `insert into t (i, v, r, ts) values (${i}, concat('row ', ${i}), rand(), now(3))`,
      );
      const { file } = taken;
      const digestUpTo = (k: number): Promise<string> => mysqlDigestUpTo(dbs[0]!, k);

      const three = await createDatabases("nexus_backup_dst", 3);
      // A database that holds Nexus data (the source's) is refused, and nothing is written.
      const dst = await sqliteCluster(3, [], "mysql_repl", (i) => mysqlFlags(three[i]!));
      const busy = await run(
        "nexus",
        restoreArgs(file, dst[0]!, ["-store", "mysql", ...mysqlFlags(dbs[1]!)]),
      );
      assert.equal(busy.code, 2, busy.stderr);
      assert.match(busy.stderr, /already holds Nexus data/);

      await restoreCluster(file, dst, (i) => ["-store", "mysql", ...mysqlFlags(three[i]!)]);
      const k = await assertRestoredAsSource(dst, taken, digestUpTo);
      await Promise.all(dst.map((n) => n.stop()));

      const fiveDbs = await createDatabases("nexus_backup_five", 5);
      const five = await sqliteCluster(5, [], "mysql_repl", (i) => mysqlFlags(fiveDbs[i]!));
      await restoreCluster(file, five, (i) => ["-store", "mysql", ...mysqlFlags(fiveDbs[i]!)]);
      assert.equal(await assertRestoredAsSource(five, taken, digestUpTo), k);
      const w = await repl(
        five[3]!.addr,
        "mysql",
        "save",
        "insert into t (i, v, r) values (1000000, 'new', 0)",
      );
      assert.equal(w.code, 0, w.stderr);
    },
  );
});
