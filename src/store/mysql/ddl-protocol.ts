/**
 * The DDL path of apply, and the crash protocol that makes it exactly once.
 *
 * Why. CREATE, ALTER, DROP, RENAME and TRUNCATE commit implicitly and cannot be rolled back, so a
 * DDL entry cannot share a transaction with the `_nexus_applied` update that records it, as a DML
 * entry does. A crash (of Nexus, of the connection, of the server) after the DDL took effect and
 * before its index was recorded would otherwise leave a replica that, on restart, runs the DDL a
 * second time: an error (table exists) at best, a different schema (a RENAME that swaps two tables
 * swaps them back) at worst.
 *
 * How. A DDL entry runs on its own, in three steps:
 *
 *   1. One transaction commits the batch's entries before it, their position, and a marker row in
 *      `_nexus_ddl`: the DDL entry's index and a fingerprint (sha256) of the schema before it.
 *   2. The DDL runs (after the entry's `SET TIMESTAMP` and RAND() seeds).
 *   3. One transaction records the DDL entry's index in `_nexus_applied` and deletes the marker.
 *
 * After a crash between 2 and 3, the entry comes again as the first one after the recorded
 * position, and the marker names it. The schema now either differs from the fingerprint (the DDL
 * took effect: it is not run again, its result is `{"rowsAffected":0,"lastInsertId":0}` since
 * the original result is lost) or does not (the DDL never ran: it is run). The fingerprint covers
 * tables, columns, indexes, constraints and, when the user may read them, InnoDB table ids, so
 * even a RENAME that swaps two tables is seen. A DDL that leaves the schema as it was (TRUNCATE,
 * `AUTO_INCREMENT=`) is simply run again, which is harmless: nothing ran after it.
 *
 * The fingerprint is taken before every DDL: a few information_schema queries, which is cheap
 * beside the DDL itself.
 */
import { createHash } from "node:crypto";
import type { ResultSetHeader } from "mysql2";
import type { Connection, RowDataPacket } from "mysql2/promise";
import type { ApplyEntry, ApplyResult } from "../store.js";
import type { BatchTransaction } from "./batch-transaction.js";
import { entrySql } from "./determinism.js";
import { DDL_MARKER } from "./nexus-tables.js";
import type { PreparedSave } from "./prepare.js";
import { isStatementError, messageOf } from "./server-errors.js";
import { NOTHING, okResult } from "./value-conversion.js";

/** Fault injection for tests: a throw simulates a crash at that point of a DDL entry. */
export interface MySqlStoreFaults {
  /** After the marker is committed, before the DDL statement runs. */
  readonly beforeDdl?: (index: number) => void | Promise<void>;
  /** After the DDL statement ran, before its index is recorded. */
  readonly afterDdl?: (index: number) => void | Promise<void>;
}

/** The marker row of `_nexus_ddl`. */
interface Marker {
  readonly index: number;
  readonly fingerprint: string;
}

/** Applies DDL entries of one database with the crash protocol (see the file's comment). */
export class DdlProtocol {
  /**
   * The query of InnoDB table ids (`innodb_sys_tables` on MariaDB, `innodb_tables` on MySQL),
   * null when the user may read neither; undefined until first tried.
   */
  private tableIdsQuery: string | null | undefined;

  constructor(
    private readonly database: string,
    private readonly faults: MySqlStoreFaults = {},
  ) {}

  /**
   * Runs a DDL entry in the batch `tx` (committing what came before it) and marks it handled;
   * its result. A statement error is the entry's result; any other error is thrown with the
   * marker in place, and the entry is tried again after the caller's retry.
   */
  /**
   * `record`, when given, writes the entry's request record in the transaction that records its
   * index (step 3, or the recovery after a crash), so the record and the DDL's index commit
   * together.
   */
  async apply(
    tx: BatchTransaction,
    e: ApplyEntry,
    save: PreparedSave,
    record?: (result: ApplyResult) => Promise<void>,
  ): Promise<ApplyResult> {
    const c = tx.conn;
    const pos = { index: e.index, term: e.term };
    const before = await this.schemaFingerprint(c);
    if (e.index === tx.start.index + 1) {
      const marker = await this.marker(c);
      if (marker !== undefined && marker.index === e.index && marker.fingerprint !== before) {
        // The DDL took effect before a crash; its index was not recorded yet.
        tx.advance(pos);
        await tx.begin();
        await c.query(`DELETE FROM ${DDL_MARKER}`);
        const recovered: ApplyResult = { ok: true, data: new TextEncoder().encode(NOTHING) };
        await record?.(recovered);
        await tx.commit();
        return recovered;
      }
    }
    // Step 1: what came before is committed, with the marker.
    await tx.begin();
    await c.query(`REPLACE INTO ${DDL_MARKER} VALUES (1, ?, ?)`, [e.index, before]);
    await tx.commit();
    await this.faults.beforeDdl?.(e.index);
    // Step 2: the DDL (an implicit commit).
    await c.query(entrySql(e));
    let result: ApplyResult;
    try {
      const [h] = await c.query<ResultSetHeader>(save.sql);
      result = okResult(h, save.kind === "ddl");
    } catch (err) {
      if (!isStatementError(err)) throw err;
      result = { ok: false, error: messageOf(err) };
    }
    await this.faults.afterDdl?.(e.index);
    // Step 3: its index recorded, the marker removed, together.
    tx.advance(pos);
    await tx.begin();
    await c.query(`DELETE FROM ${DDL_MARKER}`);
    await record?.(result);
    await tx.commit();
    return result;
  }

  private async marker(c: Connection): Promise<Marker | undefined> {
    const [rows] = await c.query<RowDataPacket[]>(
      `SELECT entry_index, schema_sha256 FROM ${DDL_MARKER} WHERE id = 1`,
    );
    const r = rows[0];
    return r === undefined
      ? undefined
      : { index: Number(r["entry_index"]), fingerprint: String(r["schema_sha256"]) };
  }

  /**
   * sha256 of the database's schema: tables, columns, indexes, constraints and, when readable,
   * InnoDB table ids (a table renamed onto another's name changes them).
   */
  private async schemaFingerprint(c: Connection): Promise<string> {
    const db = this.database;
    const h = createHash("sha256");
    const queries = [
      "SELECT table_name, table_type, engine, table_collation, create_options, table_comment FROM information_schema.tables WHERE table_schema = ? ORDER BY table_name",
      "SELECT table_name, column_name, ordinal_position, column_default, is_nullable, column_type, collation_name, extra, column_comment, generation_expression FROM information_schema.columns WHERE table_schema = ? ORDER BY table_name, ordinal_position",
      "SELECT table_name, index_name, seq_in_index, column_name, non_unique, sub_part, index_type FROM information_schema.statistics WHERE table_schema = ? ORDER BY table_name, index_name, seq_in_index",
      "SELECT table_name, constraint_name, column_name, ordinal_position, referenced_table_name, referenced_column_name FROM information_schema.key_column_usage WHERE table_schema = ? ORDER BY table_name, constraint_name, ordinal_position",
      "SELECT table_name, constraint_name, update_rule, delete_rule FROM information_schema.referential_constraints WHERE constraint_schema = ? ORDER BY table_name, constraint_name",
    ];
    for (const q of queries) {
      const [rows] = await c.query({ sql: q, rowsAsArray: true }, [db]);
      h.update(`${JSON.stringify(rows)}\n`);
    }
    if (this.tableIdsQuery === undefined) {
      this.tableIdsQuery = null;
      for (const t of ["innodb_sys_tables", "innodb_tables"]) {
        const q = `SELECT name, table_id FROM information_schema.${t} WHERE name LIKE ? ORDER BY name`;
        const ok = await c.query(q, ["x/%"]).then(
          () => true,
          () => false,
        );
        if (ok) {
          this.tableIdsQuery = q;
          break;
        }
      }
    }
    if (this.tableIdsQuery !== null) {
      const like = `${db.replace(/[\\%_]/g, (x) => `\\${x}`)}/%`;
      const [rows] = await c.query({ sql: this.tableIdsQuery, rowsAsArray: true }, [like]);
      h.update(`${JSON.stringify(rows)}\n`);
    }
    return h.digest("hex");
  }
}
