/**
 * The digest of a snapshot, for consistency checks: sha256 over the user tables in name order
 * (Nexus's `_nexus_*` tables excluded): each table's name and column definitions (name, type,
 * nullability, default, extra, collation), then its rows in primary-key order (every column when
 * there is none) and their count, each value as the server's bytes with their length, or NULL.
 * Rows are streamed with backpressure (memory does not grow with the table), and hashing runs on
 * this thread in slices of about a millisecond, so that the apply connection's replies (and the
 * node's timers) are handled meanwhile.
 *
 * Deterministic: the same rows and schema give the same digest on every replica, whatever order
 * the rows were written in, since they are read in key order.
 */
import { setImmediate as yieldNow } from "node:timers/promises";
import { HashSink } from "../hash-sink.js";
import { rawRows } from "./snapshot.js";
import type { Snapshot } from "./snapshot.js";

/** The digest (hex) of the snapshot's tables (the caller ends the snapshot). */
export async function digestSnapshot(s: Snapshot): Promise<string> {
  const h = new HashSink();
  let since = performance.now();
  for (const t of s.tables) {
    h.tag("t");
    h.text(t.name);
    for (const c of t.columns) h.text(c.desc);
    const columns = t.columns.map((c) => c.name);
    let rows = 0;
    for await (const row of rawRows(s, t, columns, () => undefined)) {
      // Rows arrive faster than they are hashed: without a pause now and then, the stream's
      // buffered rows would keep this thread (and the node's timers and sockets) busy.
      if ((rows & 15) === 0 && performance.now() - since > 1) {
        await yieldNow();
        since = performance.now();
      }
      h.tag("r");
      for (const v of row) {
        if (v === null) h.tag("N");
        else {
          h.tag("V");
          h.bytes(v);
        }
      }
      rows++;
    }
    h.tag("e");
    h.i64(BigInt(rows));
  }
  return h.hex();
}
