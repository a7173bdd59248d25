/**
 * The DML path of apply: one entry inside the batch's transaction, behind
 * `SAVEPOINT nexus_entry`. A statement error rolls back to the savepoint and is the entry's result
 * (the same on every replica); any other error is thrown, and the caller rolls the whole batch
 * back.
 */
import type { ResultSetHeader } from "mysql2";
import type { ApplyEntry, ApplyResult } from "../store.js";
import type { BatchTransaction } from "./batch-transaction.js";
import { entrySql } from "./determinism.js";
import type { PreparedSave } from "./prepare.js";
import { isStatementError, messageOf } from "./server-errors.js";
import { okResult } from "./value-conversion.js";

/** Runs a DML entry in `tx` and marks it handled; its result. */
export async function applyDml(
  tx: BatchTransaction,
  e: ApplyEntry,
  save: PreparedSave,
): Promise<ApplyResult> {
  const c = tx.conn;
  await tx.begin();
  await c.query(entrySql(e));
  await c.query("SAVEPOINT nexus_entry");
  let result: ApplyResult;
  try {
    const [h] = await c.query<ResultSetHeader>(save.sql);
    result = okResult(h);
  } catch (err) {
    if (!isStatementError(err)) throw err;
    await c.query("ROLLBACK TO SAVEPOINT nexus_entry");
    result = { ok: false, error: messageOf(err) };
  }
  tx.advance({ index: e.index, term: e.term });
  return result;
}
