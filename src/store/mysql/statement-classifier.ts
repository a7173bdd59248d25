/**
 * What a statement may be: the checks that keep every replica's state the same.
 *
 * A save is one INSERT, REPLACE, UPDATE, DELETE or SELECT (DML, run inside the batch's
 * transaction) or one CREATE, ALTER, DROP, RENAME or TRUNCATE of a table or index (DDL, run on its
 * own by the DDL crash protocol). Anything whose effect could differ between replicas is refused
 * before it runs, as the entry's result: functions of the replica or the wall clock (UUID(),
 * SYSDATE(), CONNECTION_ID(), ...), user and server variables, transaction control and session
 * settings, temporary tables, non-InnoDB engines, system-versioned tables, views, triggers,
 * routines and events (a backup does not carry them), and Nexus's own `_nexus_*` tables.
 * A load is one read (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN, VALUES, TABLE).
 *
 * The checks read the lexer's tokens (sql-lexer.ts), never the raw text, so a word inside a string
 * or a comment is not mistaken for code; the code inside `/*! ... *\/` is checked like any other.
 * Every function here is linear in the number of tokens and depends only on the text.
 */
import { RESERVED_PREFIX, APPLIED } from "./nexus-tables.js";
import { Refusal } from "./refusal.js";
import { lex, op, word } from "./sql-lexer.js";
import type { Token } from "./sql-lexer.js";

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

/**
 * How a save runs: "dml" in the batch's transaction; "ddl" alone (an implicit commit);
 * "create-table" is a DDL whose row count is reported (CREATE TABLE ... SELECT).
 */
export type SaveKind = "dml" | "ddl" | "create-table";

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
export function classifySave(tokens: readonly Token[]): SaveKind {
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
export function checkLoad(tokens: readonly Token[]): void {
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
