/**
 * Restore: a backup (backup.ts) loaded into a new database `<db>_nexus_restore_<random>` on the
 * same server, every record, the counts and the checksum checked, and only then swapped in with
 * one atomic `RENAME TABLE` that moves the live tables and `_nexus_applied` out (to
 * `<db>_nexus_old_<random>`, then dropped) and the restored ones, with the new position, in.
 * Anything wrong leaves the live database untouched and drops the temporary one; what an
 * interrupted restore leaves behind is dropped at the next open().
 */
import { CREATE_REQUESTS, REQUESTS, REQUEST_COLUMNS } from "./request-table.js";
import { createHash, randomBytes } from "node:crypto";
import type { Connection as CoreConnection } from "mysql2";
import type { Connection, RowDataPacket } from "mysql2/promise";
import { NexusError } from "../../errors/index.js";
import type { AppliedPosition } from "../store.js";
import { BACKUP_TAG, BACKUP_VERSION } from "./backup.js";
import {
  APPLIED,
  CREATE_APPLIED,
  CREATE_DDL_MARKER,
  DDL_MARKER,
  RESERVED_PREFIX,
  ensureNexusTables,
  quoteId,
  siblingName,
  userTables,
} from "./nexus-tables.js";
import { isStatementError, messageOf } from "./server-errors.js";

/** A record line of a backup may not be longer (a bad stream must not exhaust memory). */
const MAX_RECORD_BYTES = 256 * 1024 * 1024;

/** What a restore needs of the store. */
export interface RestoreTarget {
  /** The live database. */
  readonly database: string;
  /** A new connection with the pinned session in RESTORE_SQL_MODE. */
  connect(): Promise<CoreConnection>;
  /** Runs `f` on the apply connection while no batch applies. */
  exclusive(f: (c: Connection) => Promise<void>): Promise<void>;
  /** A failure of the server (not of the backup) as the store reports it. */
  unavailable(err: unknown): NexusError;
}

/**
 * Loads a backup taken at `position` into a temporary database, checking it entirely, then swaps
 * it in with one RENAME TABLE (the data and `_nexus_applied` together). On failure nothing
 * changes: NexusError CORRUPTED for a bad backup, the stream's own error when reading it failed,
 * STORE_UNAVAILABLE for the server.
 */
export async function restoreBackup(
  target: RestoreTarget,
  position: AppliedPosition,
  stream: AsyncIterable<Uint8Array>,
  from: AppliedPosition = position,
): Promise<void> {
  const random = randomBytes(4).toString("hex");
  const tmp = siblingName(target.database, `_nexus_restore_${random}`);
  const old = siblingName(target.database, `_nexus_old_${random}`);
  const admin = await target.connect();
  const a = admin.promise();
  let created = false;
  try {
    await a.query("SET SESSION foreign_key_checks = 0");
    const [schemata] = await a.query<RowDataPacket[]>(
      "SELECT default_character_set_name AS cs, default_collation_name AS co FROM information_schema.schemata WHERE schema_name = ?",
      [target.database],
    );
    const cs = schemata[0];
    await a.query(
      `CREATE DATABASE ${quoteId(tmp)}${cs === undefined ? "" : ` CHARACTER SET ${String(cs["cs"])} COLLATE ${String(cs["co"])}`}`,
    );
    created = true;
    await a.query(`USE ${quoteId(tmp)}`);
    await a.query(CREATE_REQUESTS);
    // Checked against where the backup was taken; recorded at `position` (restore into a
    // running cluster: the two differ).
    const tables = await loadBackup(a, from, stream);
    await a.query(CREATE_APPLIED);
    await a.query(`INSERT INTO ${APPLIED} VALUES (1, ?, ?)`, [position.index, position.term]);
    await a.query(CREATE_DDL_MARKER);
    // The swap, while no batch applies: one atomic RENAME moves the live tables (with
    // _nexus_applied) out and the restored ones (with the new position) in.
    await target.exclusive(async (c) => {
      await ensureNexusTables(c);
      const live = [...(await userTables(c, target.database)), APPLIED, DDL_MARKER, REQUESTS];
      const db = quoteId(target.database);
      await a.query(`CREATE DATABASE ${quoteId(old)}`);
      const moves = [
        ...live.map((t) => `${db}.${quoteId(t)} TO ${quoteId(old)}.${quoteId(t)}`),
        ...[...tables, APPLIED, DDL_MARKER, REQUESTS].map(
          (t) => `${quoteId(tmp)}.${quoteId(t)} TO ${db}.${quoteId(t)}`,
        ),
      ];
      await a.query(`RENAME TABLE ${moves.join(", ")}`);
    });
    await a.query(`DROP DATABASE IF EXISTS ${quoteId(old)}`).catch(() => undefined);
  } catch (err) {
    if (err instanceof SourceError) throw err.original;
    if (err instanceof NexusError) throw err;
    if (isStatementError(err)) throw corrupted(`the server refused it: ${messageOf(err)}`, err);
    throw target.unavailable(err);
  } finally {
    if (created) await a.query(`DROP DATABASE IF EXISTS ${quoteId(tmp)}`).catch(() => undefined);
    await a.query(`DROP DATABASE IF EXISTS ${quoteId(old)}`).catch(() => undefined);
    admin.destroy();
  }
}

/** Drops the temporary databases of `database` an interrupted restore left behind, only those. */
export async function dropRestoreLeftovers(c: Connection, database: string): Promise<void> {
  for (const suffix of ["_nexus_restore_", "_nexus_old_"]) {
    const prefix = siblingName(database, `${suffix}00000000`).slice(0, -8);
    const [rows] = await c.query<RowDataPacket[]>(
      "SELECT schema_name AS n FROM information_schema.schemata WHERE schema_name LIKE ?",
      [`${prefix.replace(/[\\%_]/g, (x) => `\\${x}`)}%`],
    );
    for (const r of rows) {
      const name = String(r["n"]);
      if (/^[0-9a-f]{8}$/.test(name.slice(prefix.length))) {
        await c.query(`DROP DATABASE IF EXISTS ${quoteId(name)}`).catch(() => undefined);
      }
    }
  }
}

/** Reads and checks the backup records into the current (temporary) database; its tables. */
async function loadBackup(
  a: Connection,
  position: AppliedPosition,
  stream: AsyncIterable<Uint8Array>,
): Promise<string[]> {
  const hash = createHash("sha256");
  const tables: string[] = [];
  let header = false;
  let ended = false;
  let rows = 0;
  let current: { name: string; columns: string[] } | undefined;
  for await (const line of linesOf(stream)) {
    if (ended) throw corrupted("there is data after its end record");
    let rec: Record<string, unknown>;
    try {
      rec = JSON.parse(line.toString("utf8")) as Record<string, unknown>;
    } catch {
      throw corrupted("a record is not valid JSON");
    }
    if (typeof rec !== "object" || rec === null) throw corrupted("a record is not an object");
    if (rec["t"] === "end") {
      if (!header) throw corrupted("it has no header");
      if (rec["tables"] !== tables.length || rec["rows"] !== rows) {
        throw corrupted(
          `it holds ${tables.length} tables and ${rows} rows but its end record says ${String(rec["tables"])} and ${String(rec["rows"])}`,
        );
      }
      if (rec["sha256"] !== hash.digest("hex")) throw corrupted("its checksum does not match");
      ended = true;
      continue;
    }
    hash.update(line);
    hash.update("\n");
    if (!header) {
      if (rec["t"] !== BACKUP_TAG || rec["v"] !== BACKUP_VERSION) {
        throw corrupted("it is not a Nexus MySQL backup (version 1)");
      }
      if (rec["index"] !== position.index || rec["term"] !== position.term) {
        throw corrupted(
          `it was taken at ${String(rec["index"])}/${String(rec["term"])}, not at ${position.index}/${position.term}`,
        );
      }
      header = true;
    } else if (rec["t"] === "table") {
      const name = rec["name"];
      const create = rec["create"];
      const columns = rec["columns"];
      if (
        typeof name !== "string" ||
        typeof create !== "string" ||
        !Array.isArray(columns) ||
        !columns.every((c) => typeof c === "string") ||
        name.toLowerCase().startsWith(RESERVED_PREFIX) ||
        !create.startsWith(`CREATE TABLE ${quoteId(name)} (`) ||
        tables.includes(name)
      ) {
        throw corrupted(`table record ${JSON.stringify(String(name)).slice(0, 80)} is malformed`);
      }
      await a.query(create);
      tables.push(name);
      current = { name, columns: columns as string[] };
    } else if (rec["t"] === "rows") {
      const list = rec["rows"];
      if (current === undefined || rec["name"] !== current.name || !Array.isArray(list)) {
        throw corrupted("a rows record does not follow its table record");
      }
      const width = current.columns.length;
      const values = list.map((r: unknown) => {
        if (!Array.isArray(r) || r.length !== width)
          throw corrupted(`a row of ${current!.name} does not have ${width} values`);
        return r.map((v: unknown): string | Buffer | null => {
          if (v === null || typeof v === "string") return v;
          if (typeof v === "object" && typeof (v as { b?: unknown }).b === "string") {
            return Buffer.from((v as { b: string }).b, "base64");
          }
          throw corrupted(`a value of ${current!.name} is not a string, {"b": base64} or null`);
        });
      });
      if (values.length > 0) {
        const cols = current.columns.map(quoteId).join(", ");
        await a.query(`INSERT INTO ${quoteId(current.name)} (${cols}) VALUES ?`, [values]);
      }
      rows += values.length;
    } else if (rec["t"] === "requests") {
      const list = rec["rows"];
      if (!Array.isArray(list)) throw corrupted("a requests record has no rows");
      const values = list.map(requestRowOf);
      if (values.length > 0) {
        await a.query(`INSERT INTO ${REQUESTS} (${REQUEST_COLUMNS}) VALUES ?`, [values]);
      }
    } else {
      throw corrupted(`unexpected record "${String(rec["t"])}"`);
    }
  }
  if (!ended)
    throw corrupted(
      `it is truncated: no end record after ${tables.length} tables and ${rows} rows`,
    );
  return tables;
}

/** A row of a requests record, checked, as the values to insert. */
function requestRowOf(r: unknown): (string | number | Buffer)[] {
  if (!Array.isArray(r) || r.length !== 6) throw corrupted("a request record is not 6 values");
  const [id, hash, ok, result, index, kept] = r as unknown[];
  const b = (result as { b?: unknown } | null)?.b;
  if (
    typeof id !== "string" ||
    !/^[\x21-\x7e]{1,128}$/.test(id) ||
    typeof hash !== "string" ||
    !/^[0-9a-f]{64}$/.test(hash) ||
    (ok !== 0 && ok !== 1) ||
    typeof b !== "string" ||
    !Number.isSafeInteger(index) ||
    !Number.isSafeInteger(kept)
  ) {
    throw corrupted(`request record ${JSON.stringify(String(id)).slice(0, 140)} is malformed`);
  }
  return [
    Buffer.from(id, "latin1"),
    hash,
    ok,
    Buffer.from(b, "base64"),
    index as number,
    kept as number,
  ];
}

export function corrupted(why: string, cause?: unknown): NexusError {
  return new NexusError(
    "CORRUPTED",
    `the MySQL backup is invalid: ${why}; the previous state is kept — take a new backup from a healthy replica`,
    cause === undefined ? undefined : { cause },
  );
}

/** An error of the stream a restore reads (not of the store): rethrown as it was. */
class SourceError extends Error {
  constructor(readonly original: unknown) {
    super("the backup stream failed");
  }
}

async function* guarded(stream: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  const it = stream[Symbol.asyncIterator]();
  try {
    for (;;) {
      let r: IteratorResult<Uint8Array>;
      try {
        r = await it.next();
      } catch (err) {
        throw new SourceError(err);
      }
      if (r.done === true) return;
      yield r.value;
    }
  } finally {
    await it.return?.().catch(() => undefined);
  }
}

/** Splits a byte stream into lines without decoding partial UTF-8 sequences. */
async function* linesOf(stream: AsyncIterable<Uint8Array>): AsyncGenerator<Buffer> {
  let parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of guarded(stream)) {
    let buf = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    for (let nl = buf.indexOf(10); nl >= 0; nl = buf.indexOf(10)) {
      parts.push(buf.subarray(0, nl));
      yield Buffer.concat(parts);
      parts = [];
      size = 0;
      buf = buf.subarray(nl + 1);
    }
    if (buf.length > 0) {
      size += buf.length;
      if (size > MAX_RECORD_BYTES) throw corrupted("a record is longer than 256 MiB");
      parts.push(Buffer.from(buf));
    }
  }
  if (size > 0) throw corrupted("it ends in the middle of a record (truncated)");
}
