/**
 * MySqlStore: replication onto MySQL or MariaDB (the original's mysql_repl), on mysql2.
 *
 * Saving (`apply`): the command's data is one SQL statement (UTF-8); `args.params` optionally a
 * JSON array of values for its `?` placeholders (strings, numbers, booleans, null, or
 * `{"base64": "..."}` for binary). The result is `{"rowsAffected": n, "lastInsertId": m}`.
 *
 * - Exactly once. A batch runs in one transaction on one dedicated connection, each entry behind
 *   `SAVEPOINT nexus_entry`, and the batch's last index is written to `_nexus_applied` in the same
 *   transaction. A statement error (bad SQL, a missing column, a duplicate key) rolls back to the
 *   savepoint and is that entry's result, the same on every replica. Conditions of the server
 *   (connection lost, deadlock, lock wait timeout, disk full, access denied) are not results: the
 *   batch rolls back and StoreUnavailableError is thrown; the next call reconnects.
 * - DDL. CREATE/ALTER/DROP/RENAME/TRUNCATE commit implicitly and cannot be rolled back, so a DDL
 *   entry runs on its own: first the entries before it are committed together with a marker row
 *   in `_nexus_ddl` (the entry's index and a fingerprint of the schema before it), then the DDL
 *   runs, then its index is recorded and the marker removed, in one transaction. After a crash
 *   between the DDL and that last step the marker tells: when the entry comes again, a schema that
 *   differs from the fingerprint means the DDL took effect (it is not run again; its result is
 *   `{"rowsAffected":0,"lastInsertId":0}`), an unchanged one that it did not (it is run). The
 *   fingerprint covers tables, columns, indexes, constraints and InnoDB table ids (when the user
 *   may read them), so even a RENAME that swaps two tables is not repeated. DDL that leaves the
 *   schema as it was (TRUNCATE, `AUTO_INCREMENT=`) is idempotent here, since nothing ran after it.
 * - Determinism, as MySQL's statement-based replication does it: before each entry
 *   `SET TIMESTAMP` = the leader's time (NOW(), CURRENT_TIMESTAMP defaults, UNIX_TIMESTAMP()) and
 *   `@@rand_seed1/2` from the entry's seed (RAND()); every connection pins `time_zone` (UTC),
 *   `sql_mode`, auto-increment steps and the default engine. Statements whose effect depends on
 *   the replica are refused as the entry's result without running: UUID(), UUID_SHORT(),
 *   SYSDATE(), CONNECTION_ID(), LAST_INSERT_ID(), USER(), server and user variables, transaction
 *   control, session settings, temporary tables, non-InnoDB engines, and any name starting with
 *   `_nexus_`. Only tables and indexes are replicated: views, triggers, routines and events are
 *   refused because a backup does not carry them (a new replica would lack them).
 * - Replicas must run the same server version and configuration (character set and collation
 *   defaults of the database, lower_case_table_names): the digest compares their states.
 *
 * Reading (`load`): one read-only statement (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN, VALUES, TABLE)
 * on a small pool of `SET SESSION TRANSACTION READ ONLY` connections. Rows are a JSON array of
 * objects: integers as numbers (as strings beyond 2^53), DECIMAL as strings, dates as strings
 * (UTC), binary as `{"base64": "..."}`, NULL as null.
 *
 * Backup: `START TRANSACTION WITH CONSISTENT SNAPSHOT` on its own connection, started while no
 * batch is applying, so the position read from `_nexus_applied` and the rows agree; the tables'
 * metadata locks are taken at once, so a DDL entry waits (up to `lockWaitTimeoutSec`, then the
 * apply fails as unavailable and is retried) rather than break the snapshot. Rows are streamed
 * with backpressure as newline-delimited JSON records:
 *
 *     {"t":"nexus-mysql-backup","v":1,"index":12,"term":3}
 *     {"t":"table","name":"kv","create":"CREATE TABLE `kv` (...)","columns":["k","v"]}
 *     {"t":"rows","name":"kv","rows":[["a","1"],["b",null],["c",{"b":"AAEC"}]]}
 *     {"t":"end","tables":1,"rows":3,"sha256":"<sha-256 of every line before this one>"}
 *
 * Values are the server's own text (numbers, dates, DECIMAL exactly as stored), `{"b": base64}`
 * for binary, or null. Generated columns are not stored (they are recomputed). Views are not
 * included (none can be created through Nexus). Restore loads into a new database
 * `<db>_nexus_restore_<random>` on the same server, checks every record, the counts and the
 * checksum, and only then swaps with one atomic `RENAME TABLE` that moves the live tables and
 * `_nexus_applied` out and the restored ones (with the new position) in; anything wrong leaves the
 * live database untouched and drops the temporary one.
 */
import { createHash, randomBytes } from "node:crypto";
import { setImmediate as yieldNow } from "node:timers/promises";
import mysql from "mysql2";
import type {
  Connection as CoreConnection,
  ConnectionOptions,
  FieldPacket,
  Pool as CorePool,
  ResultSetHeader,
  RowDataPacket,
} from "mysql2";
import type { Connection, Pool } from "mysql2/promise";
import { NexusError, StoreError, StoreUnavailableError } from "../../errors/index.js";
import type {
  AppliedPosition,
  ApplyEntry,
  ApplyResult,
  Store,
  StoreBackup,
  StoreCommand,
  PendingDigest,
} from "../store.js";
import { pendingDigest } from "../store.js";
import { HashSink } from "../hash-sink.js";
import { parseMySqlDsn } from "./dsn.js";
import type { MySqlDsn } from "./dsn.js";

/** Fault injection for tests: a throw simulates a crash at that point of a DDL entry. */
export interface MySqlStoreFaults {
  /** After the marker is committed, before the DDL statement runs. */
  readonly beforeDdl?: (index: number) => void | Promise<void>;
  /** After the DDL statement ran, before its index is recorded. */
  readonly afterDdl?: (index: number) => void | Promise<void>;
}

/** Options of MySqlStore. */
export interface MySqlStoreOptions {
  /** `user:pass@tcp(host:port)/db?...` (the original's form) or `mysql://user:pass@host:port/db`. */
  readonly url: string;
  /** Milliseconds to wait for a connection. Default 5000. */
  readonly connectTimeoutMs?: number;
  /**
   * Seconds a statement of an entry may wait for a table lock (`lock_wait_timeout`), e.g. a DDL
   * behind a running backup; then the batch fails as unavailable and is retried. Default 30.
   */
  readonly lockWaitTimeoutSec?: number;
  /** Connections for loads. Default 4. */
  readonly loadConnections?: number;
  /** For tests only. */
  readonly faults?: MySqlStoreFaults;
}

const APPLIED = "_nexus_applied";
const DDL_MARKER = "_nexus_ddl";
const RESERVED_PREFIX = "_nexus_";
const EMPTY = new Uint8Array(0);
const NOTHING = '{"rowsAffected":0,"lastInsertId":0}';
const SQL_MODE = "STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION";
const RESTORE_SQL_MODE = "NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION";
/** A record line of a backup may not be longer (a bad stream must not exhaust memory). */
const MAX_RECORD_BYTES = 256 * 1024 * 1024;
/** A rows record holds at most this many rows or about this many bytes. */
const BATCH_ROWS = 1000;
const BATCH_BYTES = 1024 * 1024;
/** RAND()'s seeds are taken modulo this by the server. */
const RAND_MAX_SEED = 1073741823;

/**
 * Server errors that are conditions of the server or its configuration, not of the statement:
 * never an entry's result (another replica may not have them), always StoreUnavailableError.
 */
const SERVER_CONDITIONS = new Set([
  1015, 1016, 1017, 1020, 1021, 1030, 1034, 1035, 1036, 1037, 1038, 1040, 1041, 1044, 1045, 1053,
  1114, 1135, 1142, 1143, 1152, 1153, 1154, 1155, 1156, 1157, 1158, 1159, 1160, 1161, 1180, 1194,
  1195, 1203, 1205, 1206, 1213, 1226, 1227, 1290, 1317, 1370, 1412, 1615, 1637, 1712, 1792, 1836,
  1877, 1927, 1969, 2006, 2013, 3024, 4031,
]);

interface MySqlError {
  readonly errno?: number;
  readonly code?: string;
  readonly sqlMessage?: string;
  readonly message: string;
  readonly fatal?: boolean;
}

/** A deterministic error of the user's statement (the same on every replica). */
function isStatementError(err: unknown): err is MySqlError {
  const e = err as MySqlError;
  return (
    typeof e === "object" &&
    e !== null &&
    typeof e.errno === "number" &&
    typeof e.sqlMessage === "string" &&
    e.fatal !== true &&
    !SERVER_CONDITIONS.has(e.errno)
  );
}

function messageOf(err: unknown): string {
  const e = err as MySqlError;
  return e.sqlMessage ?? e.message ?? String(err);
}

/** A statement refused before it reaches the server (the message is the result). */
class Refusal extends Error {}

// ---------------------------------------------------------------------------------------------
// Statement analysis: a small MySQL lexer (strings, quoted names, comments, placeholders), so the
// checks below never look inside literals and placeholders are bound outside them.

interface Token {
  readonly kind: "word" | "ident" | "string" | "param" | "op";
  /** Lowercased for words; the unquoted name for idents; the character(s) for ops. */
  readonly text: string;
  readonly start: number;
  readonly end: number;
}

function isWordChar(ch: string): boolean {
  return /[A-Za-z0-9_$\u0080-\uffff]/.test(ch);
}

function lex(sql: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  let inExecutable = false;
  const n = sql.length;
  while (i < n) {
    const ch = sql[i]!;
    if (/\s/.test(ch)) {
      i++;
    } else if (
      ch === "#" ||
      (ch === "-" && sql[i + 1] === "-" && /[\s]|^$/.test(sql[i + 2] ?? ""))
    ) {
      while (i < n && sql[i] !== "\n") i++;
    } else if (ch === "/" && sql[i + 1] === "*") {
      // /*! ... */ and /*M! ... */ are executed by the server: their content is code.
      const exec = /^\/\*M?!\d{0,6}/.exec(sql.slice(i, i + 10));
      if (exec !== null) {
        inExecutable = true;
        i += exec[0].length;
      } else {
        const close = sql.indexOf("*/", i + 2);
        if (close < 0) throw new Refusal("the statement has an unterminated /* comment");
        i = close + 2;
      }
    } else if (ch === "*" && sql[i + 1] === "/" && inExecutable) {
      inExecutable = false;
      i += 2;
    } else if (ch === "'" || ch === '"' || ch === "`") {
      const start = i;
      let text = "";
      i++;
      for (;;) {
        if (i >= n) throw new Refusal(`the statement has an unterminated ${ch}quote${ch}`);
        const c = sql[i]!;
        if (c === "\\" && ch !== "`") {
          text += sql.slice(i, i + 2);
          i += 2;
        } else if (c === ch) {
          if (sql[i + 1] === ch) {
            text += c;
            i += 2;
          } else {
            i++;
            break;
          }
        } else {
          text += c;
          i++;
        }
      }
      out.push({ kind: ch === "`" ? "ident" : "string", text, start, end: i });
    } else if (ch === "?") {
      out.push({ kind: "param", text: "?", start: i, end: i + 1 });
      i++;
    } else if (isWordChar(ch)) {
      const start = i;
      while (i < n && isWordChar(sql[i]!)) i++;
      out.push({ kind: "word", text: sql.slice(start, i).toLowerCase(), start, end: i });
    } else {
      const two = sql.slice(i, i + 2);
      const op = two === "@@" || two === ":=" ? two : ch;
      out.push({ kind: "op", text: op, start: i, end: i + op.length });
      i += op.length;
    }
  }
  return out;
}

const word = (t: Token | undefined, ...w: string[]): boolean =>
  t !== undefined && t.kind === "word" && w.includes(t.text);
const op = (t: Token | undefined, o: string): boolean =>
  t !== undefined && t.kind === "op" && t.text === o;

/** Functions whose value depends on the replica, the connection or the wall clock. */
const REPLICA_FUNCTIONS = new Map<string, string>([
  ["uuid", ""],
  ["uuid_short", ""],
  ["uuid_v4", ""],
  ["uuid_v7", ""],
  ["sys_guid", ""],
  ["random_bytes", ""],
  ["sysdate", "use NOW(), which Nexus sets to the leader's time on every replica"],
  ["connection_id", ""],
  ["last_insert_id", "the id is in the save's result (lastInsertId)"],
  ["row_count", ""],
  ["found_rows", ""],
  ["user", ""],
  ["current_user", ""],
  ["session_user", ""],
  ["system_user", ""],
  ["current_role", ""],
  ["database", ""],
  ["schema", ""],
  ["version", ""],
  ["load_file", ""],
  ["sleep", "it would stall replication"],
  ["benchmark", "it would stall replication"],
  ["get_lock", "locks belong to connections"],
  ["release_lock", "locks belong to connections"],
  ["release_all_locks", "locks belong to connections"],
  ["is_free_lock", "locks belong to connections"],
  ["is_used_lock", "locks belong to connections"],
  ["master_pos_wait", ""],
  ["master_gtid_wait", ""],
  ["source_pos_wait", ""],
  ["nextval", ""],
  ["lastval", ""],
  ["setval", ""],
]);
/** Words before a name that make `name (` a table, not a function call. */
const TABLE_CONTEXT = new Set(
  "into table update from join references exists on insert replace ignore to".split(" "),
);
const NON_INNODB_ENGINES = new Set(
  "myisam memory heap csv archive aria blackhole federated federatedx merge mrg_myisam connect sequence spider columnstore rocksdb tokudb s3 ndb ndbcluster example oqgraph mroonga".split(
    " ",
  ),
);
const OBJECTS = new Set(
  "table index view trigger procedure function event database schema user role server sequence tablespace package synonym logfile instance".split(
    " ",
  ),
);
const DML = new Set("insert replace update delete select with values table do".split(" "));
const READS = new Set("select with values table show describe desc explain".split(" "));
const TX_CONTROL = new Set(
  "begin start commit rollback savepoint release lock unlock xa".split(" "),
);

const TX_MESSAGE =
  "transaction control is Nexus's own: every save runs in a transaction that Nexus commits together with the applied index; send one statement per save, without BEGIN, COMMIT, SAVEPOINT, LOCK TABLES or SET autocommit";
const TABLES_ONLY =
  "only tables and indexes are replicated: views, triggers, stored routines and events are not carried by backups, so a new replica would lack them; put the logic in the statements you save";

/** The object word of CREATE/ALTER/DROP/RENAME after `from`, and whether TEMPORARY came first. */
function objectOf(tokens: readonly Token[], from: number): { object: string; temporary: boolean } {
  let temporary = false;
  for (let i = from; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t.kind !== "word") continue;
    if (t.text === "temporary") temporary = true;
    // `DEFINER = user` names a user, not an object.
    if (t.text === "user" && op(tokens[i - 1], "=")) continue;
    if (OBJECTS.has(t.text)) return { object: t.text, temporary };
  }
  return { object: "", temporary };
}

type SaveKind = "dml" | "ddl" | "create-table";

/** A refusal when the text holds more than one statement (a trailing `;` is fine). */
function checkOneStatement(tokens: readonly Token[]): void {
  const semi = tokens.findIndex((t) => op(t, ";"));
  if (semi >= 0 && semi < tokens.length - 1) {
    throw new Refusal("send one statement at a time: this text has more than one");
  }
}

/** Checks common to saves and loads: not empty, no `_nexus_` names. */
function checkCommon(tokens: readonly Token[]): void {
  if (tokens.length === 0) throw new Refusal("the statement is empty");
  for (const t of tokens) {
    if (
      (t.kind === "word" || t.kind === "ident") &&
      t.text.toLowerCase().startsWith(RESERVED_PREFIX)
    ) {
      const name = t.text.toLowerCase() === APPLIED ? APPLIED : t.text;
      throw new Refusal(
        `${name} is Nexus's own table (names starting with ${RESERVED_PREFIX} are reserved: ${APPLIED} records the applied log position); statements cannot use it`,
      );
    }
  }
}

/**
 * How a save runs: "dml" in the batch's transaction, "ddl" alone ("create-table" is a DDL whose
 * row count is reported: CREATE TABLE ... SELECT); or a Refusal.
 */
function classifySave(tokens: readonly Token[]): SaveKind {
  checkCommon(tokens);
  let first = 0;
  while (op(tokens[first], "(")) first++;
  const head = tokens[first];
  const verb = head?.kind === "word" ? head.text : "";
  let kind: SaveKind;
  if (DML.has(verb)) {
    kind = "dml";
  } else if (verb === "create" || verb === "alter" || verb === "drop" || verb === "rename") {
    const { object, temporary } = objectOf(tokens, first + 1);
    if (temporary) {
      throw new Refusal(
        "temporary tables live only as long as one connection (a replica that reconnects would not have them); use a regular table",
      );
    }
    if (object === "table" && verb === "create") kind = "create-table";
    else if (object === "table" || object === "index") kind = "ddl";
    else if (["view", "trigger", "procedure", "function", "event", "package"].includes(object)) {
      throw new Refusal(TABLES_ONLY);
    } else {
      throw new Refusal(
        `${verb.toUpperCase()} ${object.toUpperCase() || "this"} acts on the server, not on the replicated database; only tables and indexes can be created, altered, dropped or renamed`,
      );
    }
  } else if (verb === "truncate") {
    kind = "ddl";
  } else if (TX_CONTROL.has(verb)) {
    throw new Refusal(TX_MESSAGE);
  } else if (verb === "set") {
    const rest = tokens.slice(first + 1, first + 5);
    if (rest.some((t) => word(t, "autocommit", "transaction", "completion_type"))) {
      throw new Refusal(TX_MESSAGE);
    }
    throw new Refusal(
      "SET changes a session setting, which lasts only as long as one connection (a replica that reconnects would not have it); put the value in the statement or pass it as a parameter",
    );
  } else if (verb === "show" || verb === "describe" || verb === "desc" || verb === "explain") {
    throw new Refusal(`${verb.toUpperCase()} is a read: send it with load`);
  } else {
    throw new Refusal(
      `${verb === "" ? "this statement" : verb.toUpperCase()} is not replicated: a save is one INSERT, REPLACE, UPDATE, DELETE or SELECT, or a CREATE, ALTER, DROP, RENAME or TRUNCATE of a table or index`,
    );
  }
  checkOneStatement(tokens);
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t.kind === "op" && (t.text === "@" || t.text === "@@")) {
      throw new Refusal(
        t.text === "@@"
          ? "server variables (@@name) can differ between replicas; pass the value as a parameter"
          : "user variables (@name) live only as long as one connection (a replica that reconnects would not have them); pass the value as a parameter",
      );
    }
    if (t.kind === "op" && t.text === ":=") {
      throw new Refusal(
        "assignments to variables (:=) are not replicated; pass values as parameters",
      );
    }
    if (t.kind !== "word") continue;
    if (
      word(t, "current_user", "current_role") ||
      (REPLICA_FUNCTIONS.has(t.text) && op(tokens[i + 1], "("))
    ) {
      const prev = tokens[i - 1];
      const isTable = op(prev, ".") || (prev?.kind === "word" && TABLE_CONTEXT.has(prev.text));
      if (!isTable) {
        const hint =
          REPLICA_FUNCTIONS.get(t.text) ||
          "compute the value in the client and pass it as a parameter";
        throw new Refusal(
          `${t.text.toUpperCase()}() gives different results on different replicas; ${hint}`,
        );
      }
    }
    if (
      t.text === "into" &&
      (word(tokens[i + 1], "outfile", "dumpfile") || op(tokens[i + 1], "@"))
    ) {
      throw new Refusal("SELECT ... INTO a file or a variable is not replicated");
    }
    if (t.text === "engine") {
      const v = op(tokens[i + 1], "=") ? tokens[i + 2] : tokens[i + 1];
      const name = v?.text.toLowerCase() ?? "";
      if (NON_INNODB_ENGINES.has(name)) {
        throw new Refusal(
          `ENGINE=${name.toUpperCase()} is not transactional: Nexus needs InnoDB to apply each entry exactly once; leave ENGINE out or use InnoDB`,
        );
      }
    }
    if (t.text === "system" && word(tokens[i + 1], "versioning")) {
      throw new Refusal(
        "system-versioned tables keep a history that backups do not carry; use a regular table",
      );
    }
  }
  return kind;
}

/** Checks a load: one read; or a Refusal. */
function checkLoad(tokens: readonly Token[]): void {
  checkCommon(tokens);
  checkOneStatement(tokens);
  let first = 0;
  while (op(tokens[first], "(")) first++;
  const head = tokens[first];
  if (head?.kind !== "word" || !READS.has(head.text)) {
    throw new Refusal(
      "load runs one read (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN); send writes with save",
    );
  }
  for (let i = 0; i < tokens.length; i++) {
    if (
      word(tokens[i], "into") &&
      (word(tokens[i + 1], "outfile", "dumpfile") || op(tokens[i + 1], "@"))
    ) {
      throw new Refusal("load runs one read; SELECT ... INTO is not one");
    }
  }
}

/** A JSON placeholder value, as mysql2 escapes it. */
type ParamValue = string | number | boolean | null | Buffer;

function paramsOf(raw: string | undefined): ParamValue[] {
  if (raw === undefined || raw === "") return [];
  let p: unknown;
  try {
    p = JSON.parse(raw);
  } catch (err) {
    throw new Refusal(`args.params must be a JSON array of values: ${(err as Error).message}`);
  }
  if (!Array.isArray(p))
    throw new Refusal("args.params must be a JSON array of values for the ? placeholders");
  return p.map((v: unknown, i): ParamValue => {
    if (v === null || typeof v === "string" || typeof v === "boolean") return v;
    if (typeof v === "number") return v;
    if (typeof v === "object" && typeof (v as { base64?: unknown }).base64 === "string") {
      return Buffer.from((v as { base64: string }).base64, "base64");
    }
    throw new Refusal(
      `args.params[${i}] must be a string, number, boolean, null or {"base64": "..."}`,
    );
  });
}

/** The statement with its `?` placeholders (outside literals and comments) bound to values. */
function bind(sql: string, tokens: readonly Token[], params: readonly ParamValue[]): string {
  const slots = tokens.filter((t) => t.kind === "param");
  if (slots.length !== params.length) {
    throw new Refusal(
      `the statement has ${slots.length} ? placeholder(s) but args.params has ${params.length} value(s)`,
    );
  }
  if (slots.length === 0) return sql;
  let out = "";
  let at = 0;
  slots.forEach((s, i) => {
    out += sql.slice(at, s.start) + mysql.escape(params[i]);
    at = s.end;
  });
  return out + sql.slice(at);
}

/**
 * Why a save would not be applied the same way on every replica (the entry's error result), or
 * undefined when it is accepted.
 */
export function refusalOf(sql: string): string | undefined {
  try {
    classifySave(lex(sql));
    return undefined;
  } catch (err) {
    if (err instanceof Refusal) return err.message;
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// Values.

/** Result-set types whose binary-charset values are bytes rather than text. */
const STRINGY_TYPES = new Set([15, 249, 250, 251, 252, 253, 254]);
const BIT = 16;
const GEOMETRY = 255;
const BINARY_CHARSET = 63;

function isBinaryField(f: FieldPacket): boolean {
  const t = f.columnType ?? -1;
  return t === BIT || t === GEOMETRY || (STRINGY_TYPES.has(t) && f.characterSet === BINARY_CHARSET);
}

/** A backup value: the server's text, `{b: base64}` for bytes, or null. */
type WireValue = string | { readonly b: string } | null;

/** A load value as JSON. */
function jsonValue(v: unknown): unknown {
  if (Buffer.isBuffer(v)) return { base64: v.toString("base64") };
  if (typeof v === "bigint") return v.toString();
  return v;
}

function timestampOf(ms: number): string {
  // SET TIMESTAMP = 0 would mean "the server's clock": the smallest step above it instead.
  const t = Math.max(0, Math.trunc(ms));
  if (t === 0) return "0.000001";
  return `${Math.floor(t / 1000)}.${String(t % 1000).padStart(3, "0")}000`;
}

function okResult(h: unknown, ddl = false): ApplyResult {
  const r = (Array.isArray(h) ? {} : (h ?? {})) as Partial<ResultSetHeader>;
  const affected = typeof r.affectedRows === "number" && !ddl ? r.affectedRows : 0;
  const raw = r.insertId as unknown;
  const id =
    typeof raw === "number" || typeof raw === "bigint" || typeof raw === "string"
      ? String(raw)
      : "0";
  return {
    ok: true,
    data: new TextEncoder().encode(
      `{"rowsAffected":${affected},"lastInsertId":${/^\d+$/.test(id) ? id : "0"}}`,
    ),
  };
}

const sortNames = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** What a snapshot reader needs to know of one table, read while no batch is applying. */
interface TableInfo {
  readonly name: string;
  readonly create: string;
  /** Every column in order, with whether it is generated. */
  readonly columns: readonly {
    readonly name: string;
    readonly generated: boolean;
    readonly desc: string;
  }[];
  /** ORDER BY: the primary key, or every column. */
  readonly order: string;
}

interface Snapshot {
  readonly core: CoreConnection;
  readonly conn: Connection;
  readonly position: AppliedPosition;
  readonly tables: readonly TableInfo[];
}

function quoteId(name: string): string {
  return mysql.escapeId(name, true);
}

/** A database name derived from `db` with `suffix`, within MySQL's 64 characters. */
function siblingName(db: string, suffix: string): string {
  return db.slice(0, 64 - suffix.length) + suffix;
}

function corrupted(why: string, cause?: unknown): NexusError {
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

// ---------------------------------------------------------------------------------------------

/** A Store on one MySQL or MariaDB database. */
export class MySqlStore implements Store {
  readonly kind = "mysql";
  /** Where it connects (parsed from `url`). */
  readonly dsn: MySqlDsn;
  private readonly connectTimeoutMs: number;
  private readonly lockWaitTimeoutSec: number;
  private readonly loadConnections: number;
  private readonly faults: MySqlStoreFaults;
  /** The connection that applies (and bookkeeps); replaced after a failure. */
  private conn: Connection | undefined;
  private pool: Pool | undefined;
  /** Serializes apply, lastApplied and the start of snapshots. */
  private lock: Promise<void> = Promise.resolve();
  private closed = false;
  /** Connections of running backups and digests, ended by close(). */
  private readonly readers = new Set<CoreConnection>();
  /** Whether information_schema.innodb_sys_tables (or innodb_tables) is readable. */
  private tableIdsQuery: string | null | undefined;

  constructor(opts: MySqlStoreOptions) {
    this.dsn = parseMySqlDsn(opts.url);
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 5000;
    this.lockWaitTimeoutSec = opts.lockWaitTimeoutSec ?? 30;
    this.loadConnections = opts.loadConnections ?? 4;
    this.faults = opts.faults ?? {};
  }

  private where(): string {
    return `MySQL at ${this.dsn.host}:${this.dsn.port} (database ${this.dsn.database})`;
  }

  private unavailable(err: unknown): StoreUnavailableError {
    if (err instanceof StoreUnavailableError) return err;
    return new StoreUnavailableError(
      `${this.where()} is unavailable: ${messageOf(err)}; Nexus retries — check that the server is running and reachable`,
      { cause: err },
    );
  }

  /** Errors that are not statement errors: a NexusError as is, anything else as unavailable. */
  private failure(err: unknown): NexusError {
    return err instanceof NexusError ? err : this.unavailable(err);
  }

  private options(extra: Partial<ConnectionOptions> = {}): ConnectionOptions {
    return {
      host: this.dsn.host,
      port: this.dsn.port,
      user: this.dsn.user,
      password: this.dsn.password,
      database: this.dsn.database,
      connectTimeout: this.connectTimeoutMs,
      multipleStatements: false,
      supportBigNumbers: true,
      bigNumberStrings: true,
      dateStrings: true,
      decimalNumbers: false,
      jsonStrings: true,
      charset: "UTF8MB4_UNICODE_CI",
      timezone: "Z",
      ...extra,
    };
  }

  /** The session settings every connection pins, so that replicas compute alike. */
  private sessionSql(sqlMode = SQL_MODE): string {
    return (
      `SET SESSION sql_mode = '${sqlMode}', time_zone = '+00:00', auto_increment_increment = 1, ` +
      `auto_increment_offset = 1, default_storage_engine = InnoDB, div_precision_increment = 4, ` +
      `group_concat_max_len = 1048576, foreign_key_checks = 1, unique_checks = 1, ` +
      `lock_wait_timeout = ${Math.max(1, Math.trunc(this.lockWaitTimeoutSec))}`
    );
  }

  private connectError(err: unknown): NexusError {
    const e = err as MySqlError;
    if (e.errno === 1049) {
      return new NexusError(
        "BAD_CONFIG",
        `database "${this.dsn.database}" does not exist on ${this.dsn.host}:${this.dsn.port}; create it first (CREATE DATABASE ${quoteId(this.dsn.database)})`,
        { cause: err },
      );
    }
    if (e.errno === 1045 || e.errno === 1044) {
      return new NexusError(
        "BAD_CONFIG",
        `${this.where()} refused the login: ${messageOf(err)}; check the user and password in the connection string`,
        { cause: err },
      );
    }
    return this.unavailable(err);
  }

  /** A new core connection with the pinned session. */
  private async connectCore(
    extra: Partial<ConnectionOptions> = {},
    sqlMode?: string,
  ): Promise<CoreConnection> {
    const core = mysql.createConnection(this.options(extra));
    core.on("error", () => undefined);
    try {
      await core.promise().query(this.sessionSql(sqlMode));
      return core;
    } catch (err) {
      core.destroy();
      throw this.connectError(err);
    }
  }

  private async applyConn(): Promise<Connection> {
    if (this.closed) {
      throw new StoreUnavailableError("the MySQL store is closed; open() it before using it");
    }
    if (this.conn !== undefined) return this.conn;
    const core = await this.connectCore();
    const c = core.promise();
    const forget = (): void => {
      if (this.conn === c) this.conn = undefined;
    };
    core.on("error", forget);
    core.on("end", forget);
    this.conn = c;
    return c;
  }

  private drop(c: Connection): void {
    c.destroy();
    if (this.conn === c) this.conn = undefined;
  }

  /** Runs f alone (no apply runs meanwhile); its failure does not block what comes next. */
  private serialized<T>(f: () => Promise<T>): Promise<T> {
    const run = this.lock.then(f);
    this.lock = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /** serialized() with the apply connection; a failure other than a NexusError drops it. */
  private exclusive<T>(f: (c: Connection) => Promise<T>): Promise<T> {
    return this.serialized(async () => {
      const c = await this.applyConn();
      try {
        return await f(c);
      } catch (err) {
        if (!(err instanceof NexusError) || err.code === "STORE_UNAVAILABLE") this.drop(c);
        throw this.failure(err);
      }
    });
  }

  private async ensureMeta(c: Connection): Promise<void> {
    await c.query(
      `CREATE TABLE IF NOT EXISTS ${APPLIED} (id TINYINT PRIMARY KEY, applied_index BIGINT NOT NULL, applied_term BIGINT NOT NULL) ENGINE=InnoDB`,
    );
    await c.query(`INSERT IGNORE INTO ${APPLIED} VALUES (1, 0, 0)`);
    await c.query(
      `CREATE TABLE IF NOT EXISTS ${DDL_MARKER} (id TINYINT PRIMARY KEY, entry_index BIGINT NOT NULL, schema_sha256 CHAR(64) NOT NULL) ENGINE=InnoDB`,
    );
  }

  /** Connects, creates Nexus's tables if missing, drops leftovers of an interrupted restore. */
  async open(): Promise<AppliedPosition> {
    this.closed = false;
    return this.exclusive(async (c) => {
      await this.ensureMeta(c);
      await this.dropLeftovers(c);
      return this.position(c);
    });
  }

  private async dropLeftovers(c: Connection): Promise<void> {
    for (const suffix of ["_nexus_restore_", "_nexus_old_"]) {
      const prefix = siblingName(this.dsn.database, `${suffix}00000000`).slice(0, -8);
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

  private async position(c: Connection): Promise<AppliedPosition> {
    const [rows] = await c.query<RowDataPacket[]>(
      `SELECT applied_index, applied_term FROM ${APPLIED} WHERE id = 1`,
    );
    const r = rows[0];
    return { index: Number(r?.["applied_index"] ?? 0), term: Number(r?.["applied_term"] ?? 0) };
  }

  /** Ends every connection. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    await this.lock;
    const c = this.conn;
    this.conn = undefined;
    if (c !== undefined) await c.end().catch(() => c.destroy());
    const pool = this.pool;
    this.pool = undefined;
    if (pool !== undefined) await pool.end().catch(() => undefined);
    for (const r of this.readers) r.destroy();
    this.readers.clear();
  }

  /** The position recorded in `_nexus_applied` (read from the server, never cached). */
  lastApplied(): Promise<AppliedPosition> {
    return this.exclusive((c) => this.position(c));
  }

  // -------------------------------------------------------------------------------------------
  // apply

  /** Applies a batch in one transaction (DDL entries on their own); see the file's comment. */
  apply(entries: readonly ApplyEntry[]): Promise<ApplyResult[]> {
    return this.exclusive(async (c) => {
      const results: ApplyResult[] = [];
      const start = await this.position(c);
      /** The last entry handled; `recorded` is what _nexus_applied holds (committed or in tx). */
      let applied = start;
      let recorded = start;
      let inTx = false;
      const begin = async (): Promise<void> => {
        if (!inTx) await c.query("START TRANSACTION");
        inTx = true;
      };
      const writeApplied = async (): Promise<void> => {
        if (applied.index === recorded.index && applied.term === recorded.term) return;
        await begin();
        await c.query(`UPDATE ${APPLIED} SET applied_index = ?, applied_term = ? WHERE id = 1`, [
          applied.index,
          applied.term,
        ]);
        recorded = applied;
      };
      const commit = async (): Promise<void> => {
        await writeApplied();
        if (inTx) await c.query("COMMIT");
        inTx = false;
      };
      try {
        for (const e of entries) {
          if (e.index <= applied.index) {
            results.push({ ok: true, data: EMPTY });
            continue;
          }
          const pos = { index: e.index, term: e.term };
          if (e.command === undefined) {
            results.push({ ok: true, data: EMPTY });
            applied = pos;
            continue;
          }
          let sql: string;
          let kind: SaveKind;
          try {
            const text = new TextDecoder("utf-8", { fatal: true }).decode(e.command.data);
            const tokens = lex(text);
            kind = classifySave(tokens);
            sql = bind(text, tokens, paramsOf(e.command.args["params"]));
          } catch (err) {
            if (err instanceof Refusal) {
              results.push({ ok: false, error: err.message });
            } else if (err instanceof TypeError) {
              results.push({ ok: false, error: "the statement is not valid UTF-8" });
            } else throw err;
            applied = pos;
            continue;
          }
          const seed = Math.max(0, Math.trunc(e.seed));
          const determinism =
            `SET TIMESTAMP = ${timestampOf(e.timestampMs)}, ` +
            `@@rand_seed1 = ${seed % RAND_MAX_SEED}, ` +
            `@@rand_seed2 = ${Math.floor(seed / RAND_MAX_SEED) % RAND_MAX_SEED}`;
          if (kind !== "dml") {
            // Implicit commit: what came before is committed first, with the marker.
            const before = await this.schemaFingerprint(c);
            if (e.index === start.index + 1) {
              const marker = await this.marker(c);
              if (
                marker !== undefined &&
                marker.index === e.index &&
                marker.fingerprint !== before
              ) {
                // The DDL took effect before a crash; its index was not recorded yet.
                results.push({ ok: true, data: new TextEncoder().encode(NOTHING) });
                applied = pos;
                await begin();
                await c.query(`DELETE FROM ${DDL_MARKER}`);
                await commit();
                continue;
              }
            }
            await begin();
            await c.query(`REPLACE INTO ${DDL_MARKER} VALUES (1, ?, ?)`, [e.index, before]);
            await commit();
            await this.faults.beforeDdl?.(e.index);
            await c.query(determinism);
            let result: ApplyResult;
            try {
              const [h] = await c.query<ResultSetHeader>(sql);
              // The rows an ALTER copied depend on the algorithm the server chose, not on the data.
              result = okResult(h, kind === "ddl");
            } catch (err) {
              if (!isStatementError(err)) throw err;
              result = { ok: false, error: messageOf(err) };
            }
            await this.faults.afterDdl?.(e.index);
            applied = pos;
            await begin();
            await c.query(`DELETE FROM ${DDL_MARKER}`);
            await commit();
            results.push(result);
            continue;
          }
          await begin();
          await c.query(determinism);
          await c.query("SAVEPOINT nexus_entry");
          try {
            const [h] = await c.query<ResultSetHeader>(sql);
            results.push(okResult(h));
          } catch (err) {
            if (!isStatementError(err)) throw err;
            await c.query("ROLLBACK TO SAVEPOINT nexus_entry");
            results.push({ ok: false, error: messageOf(err) });
          }
          applied = pos;
        }
        await commit();
        return results;
      } catch (err) {
        if (inTx) await c.query("ROLLBACK").catch(() => undefined);
        throw this.failure(err);
      }
    });
  }

  private async marker(c: Connection): Promise<{ index: number; fingerprint: string } | undefined> {
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
    const db = this.dsn.database;
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

  // -------------------------------------------------------------------------------------------
  // load

  private loadPool(): Pool {
    if (this.pool !== undefined) return this.pool;
    const core: CorePool = mysql.createPool({
      ...this.options({ bigNumberStrings: false }),
      connectionLimit: this.loadConnections,
      maxIdle: this.loadConnections,
      idleTimeout: 60_000,
    });
    const session = this.sessionSql();
    core.on("connection", (conn) => {
      conn.on("error", () => undefined);
      // Queued before any load on this connection.
      conn.query(session, () => undefined);
      conn.query("SET SESSION TRANSACTION READ ONLY", () => undefined);
    });
    this.pool = core.promise();
    return this.pool;
  }

  /** Runs one read; rows as a JSON array of objects. Throws StoreError for a bad query. */
  async load(query: StoreCommand): Promise<Uint8Array> {
    if (this.closed) {
      throw new StoreUnavailableError("the MySQL store is closed; open() it before using it");
    }
    let sql: string;
    try {
      const text = new TextDecoder().decode(query.data);
      const tokens = lex(text);
      checkLoad(tokens);
      sql = bind(text, tokens, paramsOf(query.args["params"]));
    } catch (err) {
      if (err instanceof Refusal) throw new StoreError(err.message);
      throw err;
    }
    for (let attempt = 1; ; attempt++) {
      try {
        const [rows] = await this.loadPool().query<RowDataPacket[]>(sql);
        const out = Array.isArray(rows)
          ? rows.map((r) =>
              Object.fromEntries(Object.entries(r).map(([k, v]) => [k, jsonValue(v)])),
            )
          : [];
        return new TextEncoder().encode(JSON.stringify(out));
      } catch (err) {
        if (isStatementError(err)) throw new StoreError(messageOf(err), { cause: err });
        if ((err as MySqlError).errno === 1792) {
          throw new StoreError("load runs read-only; send writes with save", { cause: err });
        }
        // A pooled connection that died with the server: a read is safe to retry once.
        if (attempt < 2) continue;
        throw this.failure(err);
      }
    }
  }

  // -------------------------------------------------------------------------------------------
  // snapshots: backup and digest

  private async userTables(c: Connection, schema = this.dsn.database): Promise<string[]> {
    const [rows] = await c.query<RowDataPacket[]>(
      "SELECT table_name AS n FROM information_schema.tables WHERE table_schema = ? AND table_type = 'BASE TABLE'",
      [schema],
    );
    return rows
      .map((r) => String(r["n"]))
      .filter((n) => !n.toLowerCase().startsWith(RESERVED_PREFIX))
      .sort(sortNames);
  }

  /**
   * A read-only consistent snapshot on a new connection, begun while no batch applies: its
   * position, its tables (their metadata locked until the snapshot ends), their definitions.
   */
  private async snapshot(): Promise<Snapshot> {
    if (this.closed) {
      throw new StoreUnavailableError("the MySQL store is closed; open() it before using it");
    }
    // The connection is made at once, while this snapshot already holds its place in line: an
    // apply called after backup() or digest() waits until the snapshot is begun, so the snapshot
    // is of the position at the call (or earlier: applies already under way come first).
    const connecting = (async () => {
      const core = await this.connectCore({ bigNumberStrings: true });
      this.readers.add(core);
      try {
        if (this.closed) throw new StoreUnavailableError("the MySQL store was closed");
        const conn = core.promise();
        await conn.query("SET SESSION max_sort_length = 8388608");
        await conn.query("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ");
        return core;
      } catch (err) {
        this.readers.delete(core);
        core.destroy();
        throw err;
      }
    })();
    connecting.catch(() => undefined);
    let core: CoreConnection | undefined;
    try {
      return await this.serialized(async () => {
        core = await connecting;
        const conn = core.promise();
        await conn.query("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY");
        const position = await this.position(conn);
        const tables: TableInfo[] = [];
        for (const name of await this.userTables(conn)) {
          const t = quoteId(name);
          // Reading the table takes its metadata lock until the snapshot ends.
          await conn.query(`SELECT 1 FROM ${t} LIMIT 0`);
          const [created] = await conn.query<RowDataPacket[]>(`SHOW CREATE TABLE ${t}`);
          const [cols] = await conn.query<RowDataPacket[]>(
            "SELECT column_name AS n, column_type AS ty, is_nullable AS nu, column_default AS d, extra AS x, collation_name AS co FROM information_schema.columns WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            [this.dsn.database, name],
          );
          const [keys] = await conn.query<RowDataPacket[]>(
            "SELECT column_name AS n FROM information_schema.statistics WHERE table_schema = ? AND table_name = ? AND index_name = 'PRIMARY' ORDER BY seq_in_index",
            [this.dsn.database, name],
          );
          const columns = cols.map((r) => ({
            name: String(r["n"]),
            generated: /\b(VIRTUAL|STORED|PERSISTENT)\b/i.test(String(r["x"] ?? "")),
            desc: JSON.stringify([r["n"], r["ty"], r["nu"], r["d"], r["x"], r["co"]]),
          }));
          const order = (
            keys.length > 0 ? keys.map((k) => String(k["n"])) : columns.map((x) => x.name)
          )
            .map(quoteId)
            .join(", ");
          tables.push({ name, create: String(created[0]?.["Create Table"] ?? ""), columns, order });
        }
        return { core, conn, position, tables };
      });
    } catch (err) {
      const c = core ?? (await connecting.catch(() => undefined));
      if (c !== undefined) {
        this.readers.delete(c);
        c.destroy();
      }
      throw this.failure(err);
    }
  }

  /** Streams a table's rows from the snapshot as raw values (Buffers), with binary flags. */
  private async *rawRows(
    s: Snapshot,
    t: TableInfo,
    columns: readonly string[],
    onFields: (binary: boolean[]) => void,
  ): AsyncGenerator<(Buffer | null)[]> {
    const sql = `SELECT ${columns.map(quoteId).join(", ")} FROM ${quoteId(t.name)} ORDER BY ${t.order}`;
    const q = s.core.query({ sql, rowsAsArray: true, typeCast: false });
    const stream = q.stream({ highWaterMark: 256 });
    stream.on("fields", (fields: FieldPacket[]) => onFields(fields.map(isBinaryField)));
    for await (const row of stream) yield row as (Buffer | null)[];
    // close() destroys the connection, which may end the stream early without an error: rows
    // would be missing from a backup or a digest that looks complete.
    if (!this.readers.has(s.core)) {
      throw new StoreUnavailableError(
        "the MySQL store was closed while a snapshot was being read; nothing was completed",
      );
    }
  }

  private endSnapshot(s: Snapshot): void {
    this.readers.delete(s.core);
    s.core.destroy();
  }

  /** A consistent copy at the current applied position, streamed (see the file's comment). */
  async backup(): Promise<StoreBackup> {
    const s = await this.snapshot();
    return { position: s.position, stream: this.backupStream(s) };
  }

  private async *backupStream(s: Snapshot): AsyncGenerator<Uint8Array> {
    const hash = createHash("sha256");
    let rows = 0;
    const line = (o: unknown): Buffer => {
      const b = Buffer.from(`${JSON.stringify(o)}\n`);
      hash.update(b);
      return b;
    };
    try {
      yield line({
        t: "nexus-mysql-backup",
        v: 1,
        index: s.position.index,
        term: s.position.term,
      });
      for (const t of s.tables) {
        const columns = t.columns.filter((c) => !c.generated).map((c) => c.name);
        yield line({ t: "table", name: t.name, create: t.create, columns });
        let binary: boolean[] = [];
        let batch: WireValue[][] = [];
        let bytes = 0;
        for await (const raw of this.rawRows(s, t, columns, (b) => (binary = b))) {
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
      const end = { t: "end", tables: s.tables.length, rows, sha256: hash.digest("hex") };
      yield Buffer.from(`${JSON.stringify(end)}\n`);
    } catch (err) {
      throw this.failure(err);
    } finally {
      this.endSnapshot(s);
    }
  }

  /**
   * Pins a snapshot and resolves; the digest is then computed on the snapshot's own connection
   * while applying goes on. The snapshot is begun like a backup's (see snapshot()): on its own
   * connection, `START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY` at REPEATABLE READ while no
   * batch applies, and `position` read inside it. The digest is sha256 over the user tables in
   * name order (Nexus's `_nexus_*` tables excluded): each table's name and column definitions
   * (name, type, nullability, default, extra, collation), then its rows in primary-key order
   * (every column when there is none) and their count, each value as the server's bytes with
   * their length, or NULL, streamed with backpressure (memory does not grow with the table).
   * Hashing runs on this thread in slices of about a millisecond, so that the apply connection's
   * replies (and the node's timers) are handled meanwhile. As for a backup, a DDL entry on a
   * table being digested waits for the digest to end (up to `lockWaitTimeoutSec`).
   */
  async digest(): Promise<PendingDigest> {
    const s = await this.snapshot();
    return pendingDigest(s.position, this.digestOf(s));
  }

  private async digestOf(s: Snapshot): Promise<string> {
    try {
      const h = new HashSink();
      let since = performance.now();
      for (const t of s.tables) {
        h.tag("t");
        h.text(t.name);
        for (const c of t.columns) h.text(c.desc);
        const columns = t.columns.map((c) => c.name);
        let rows = 0;
        for await (const row of this.rawRows(s, t, columns, () => undefined)) {
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
    } catch (err) {
      const e = this.closed
        ? new StoreUnavailableError("the MySQL store was closed before the digest completed", {
            cause: err,
          })
        : this.failure(err);
      throw e instanceof StoreUnavailableError
        ? e
        : new StoreUnavailableError(`the MySQL digest failed: ${e.message}`, { cause: e });
    } finally {
      this.endSnapshot(s);
    }
  }

  // -------------------------------------------------------------------------------------------
  // restore

  /**
   * Loads a backup into a temporary database, checking it entirely, then swaps it in with one
   * RENAME TABLE (the data and `_nexus_applied` together). On failure nothing changes.
   */
  async restore(position: AppliedPosition, stream: AsyncIterable<Uint8Array>): Promise<void> {
    if (this.closed) {
      throw new StoreUnavailableError("the MySQL store is closed; open() it before using it");
    }
    const random = randomBytes(4).toString("hex");
    const tmp = siblingName(this.dsn.database, `_nexus_restore_${random}`);
    const old = siblingName(this.dsn.database, `_nexus_old_${random}`);
    const admin = await this.connectCore({}, RESTORE_SQL_MODE);
    const a = admin.promise();
    let created = false;
    try {
      await a.query("SET SESSION foreign_key_checks = 0");
      const [schemata] = await a.query<RowDataPacket[]>(
        "SELECT default_character_set_name AS cs, default_collation_name AS co FROM information_schema.schemata WHERE schema_name = ?",
        [this.dsn.database],
      );
      const cs = schemata[0];
      await a.query(
        `CREATE DATABASE ${quoteId(tmp)}${cs === undefined ? "" : ` CHARACTER SET ${String(cs["cs"])} COLLATE ${String(cs["co"])}`}`,
      );
      created = true;
      await a.query(`USE ${quoteId(tmp)}`);
      const tables = await this.loadBackup(a, position, stream);
      await a.query(
        `CREATE TABLE ${APPLIED} (id TINYINT PRIMARY KEY, applied_index BIGINT NOT NULL, applied_term BIGINT NOT NULL) ENGINE=InnoDB`,
      );
      await a.query(`INSERT INTO ${APPLIED} VALUES (1, ?, ?)`, [position.index, position.term]);
      await a.query(
        `CREATE TABLE ${DDL_MARKER} (id TINYINT PRIMARY KEY, entry_index BIGINT NOT NULL, schema_sha256 CHAR(64) NOT NULL) ENGINE=InnoDB`,
      );
      // The swap, while no batch applies: one atomic RENAME moves the live tables (with
      // _nexus_applied) out and the restored ones (with the new position) in.
      await this.exclusive(async (c) => {
        await this.ensureMeta(c);
        const live = [...(await this.userTables(c)), APPLIED, DDL_MARKER];
        const db = quoteId(this.dsn.database);
        await a.query(`CREATE DATABASE ${quoteId(old)}`);
        const moves = [
          ...live.map((t) => `${db}.${quoteId(t)} TO ${quoteId(old)}.${quoteId(t)}`),
          ...[...tables, APPLIED, DDL_MARKER].map(
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
      throw this.unavailable(err);
    } finally {
      if (created) await a.query(`DROP DATABASE IF EXISTS ${quoteId(tmp)}`).catch(() => undefined);
      await a.query(`DROP DATABASE IF EXISTS ${quoteId(old)}`).catch(() => undefined);
      admin.destroy();
    }
  }

  /** Reads and checks the backup records into the current (temporary) database; its tables. */
  private async loadBackup(
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
        if (rec["t"] !== "nexus-mysql-backup" || rec["v"] !== 1) {
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
}
