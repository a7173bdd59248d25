/**
 * The apply connection's transaction over one batch of entries, and the applied position it
 * records in `_nexus_applied`. The position is written only in a transaction that also holds the
 * entries it covers, so the data and the position never disagree.
 */
import type { Connection } from "mysql2/promise";
import type { AppliedPosition } from "../store.js";
import { APPLIED } from "./nexus-tables.js";

/** One batch's transaction state on the apply connection. */
export class BatchTransaction {
  /** The last entry handled (applied, refused or empty). */
  private appliedPos: AppliedPosition;
  /**
   * What `_nexus_applied` holds, committed or inside the open transaction.
   * Invariant: recorded.index <= applied.index.
   */
  private recorded: AppliedPosition;
  private inTx = false;

  /** `start` is the position `_nexus_applied` holds when the batch begins. */
  constructor(
    readonly conn: Connection,
    readonly start: AppliedPosition,
  ) {
    this.appliedPos = start;
    this.recorded = start;
  }

  /** The last entry handled in this batch (`start` before the first). */
  get applied(): AppliedPosition {
    return this.appliedPos;
  }

  /** Marks the entry at `pos` handled: the next commit records it. */
  advance(pos: AppliedPosition): void {
    this.appliedPos = pos;
  }

  /** Opens the transaction unless it is open. */
  async begin(): Promise<void> {
    if (!this.inTx) await this.conn.query("START TRANSACTION");
    this.inTx = true;
  }

  /** Records the applied position (if it moved) and commits what is open. */
  async commit(): Promise<void> {
    const a = this.appliedPos;
    if (a.index !== this.recorded.index || a.term !== this.recorded.term) {
      await this.begin();
      await this.conn.query(
        `UPDATE ${APPLIED} SET applied_index = ?, applied_term = ? WHERE id = 1`,
        [a.index, a.term],
      );
      this.recorded = a;
    }
    if (this.inTx) await this.conn.query("COMMIT");
    this.inTx = false;
  }

  /** Rolls back what is open (after a failure: errors are ignored, the connection is dropped). */
  async rollback(): Promise<void> {
    if (this.inTx) await this.conn.query("ROLLBACK").catch(() => undefined);
  }
}
