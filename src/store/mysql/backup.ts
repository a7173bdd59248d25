/**
 * The backup format, and its writer. A backup is newline-delimited JSON records, streamed with
 * backpressure from a snapshot (snapshot.ts):
 *
 *     {"t":"nexus-mysql-backup","v":1,"index":12,"term":3}
 *     {"t":"table","name":"kv","create":"CREATE TABLE `kv` (...)","columns":["k","v"]}
 *     {"t":"rows","name":"kv","rows":[["a","1"],["b",null],["c",{"b":"AAEC"}]]}
 *     {"t":"requests","rows":[["req-1","<sha256 hex>",1,{"b":"e30="},7,1700000000000]]}
 *     {"t":"end","tables":1,"rows":3,"sha256":"<sha-256 of every line before this one>"}
 *
 * Values are the server's own text (numbers, dates, DECIMAL exactly as stored), `{"b": base64}`
 * for binary, or null. Generated columns are not stored (they are recomputed). Views are not
 * included (none can be created through Nexus). A rows record holds at most BATCH_ROWS rows or
 * about BATCH_BYTES bytes. `requests` records (zero or more, after the tables) carry the request
 * records of `_nexus_requests` (request-table.ts) as (id, hash, ok, result, index, keptFromMs);
 * `rows` of the end record counts table rows only. The reader is restore.ts.
 */
import { createHash } from "node:crypto";
import { allRequests, rowOf } from "./request-table.js";
import { rawRows } from "./snapshot.js";
import type { Snapshot } from "./snapshot.js";
import type { WireValue } from "./value-conversion.js";

/** The header record's `t` and `v`. */
export const BACKUP_TAG = "nexus-mysql-backup";
export const BACKUP_VERSION = 1;
/** A rows record holds at most this many rows or about this many bytes. */
const BATCH_ROWS = 1000;
const BATCH_BYTES = 1024 * 1024;

/** The records of a backup of `s`, as lines (the caller ends the snapshot). */
export async function* backupLines(s: Snapshot): AsyncGenerator<Uint8Array> {
  const hash = createHash("sha256");
  let rows = 0;
  const line = (o: unknown): Buffer => {
    const b = Buffer.from(`${JSON.stringify(o)}\n`);
    hash.update(b);
    return b;
  };
  yield line({ t: BACKUP_TAG, v: BACKUP_VERSION, index: s.position.index, term: s.position.term });
  for (const t of s.tables) {
    const columns = t.columns.filter((c) => !c.generated).map((c) => c.name);
    yield line({ t: "table", name: t.name, create: t.create, columns });
    let binary: boolean[] = [];
    let batch: WireValue[][] = [];
    let bytes = 0;
    for await (const raw of rawRows(s, t, columns, (b) => (binary = b))) {
      batch.push(
        raw.map((v, i): WireValue => {
          if (v === null) return null;
          bytes += v.length;
          return binary[i] === true ? { b: v.toString("base64") } : v.toString("utf8");
        }),
      );
      rows++;
      if (batch.length >= BATCH_ROWS || bytes >= BATCH_BYTES) {
        yield line({ t: "rows", name: t.name, rows: batch });
        batch = [];
        bytes = 0;
      }
    }
    if (batch.length > 0) yield line({ t: "rows", name: t.name, rows: batch });
  }
  const requests = (await allRequests(s.conn)).map(rowOf);
  for (let i = 0; i < requests.length; i += BATCH_ROWS) {
    const batch = requests.slice(i, i + BATCH_ROWS).map(([id, h, ok, result, index, kept]) => {
      return [id, h, ok, { b: result.toString("base64") }, index, kept];
    });
    yield line({ t: "requests", rows: batch });
  }
  const end = { t: "end", tables: s.tables.length, rows, sha256: hash.digest("hex") };
  yield Buffer.from(`${JSON.stringify(end)}\n`);
}
