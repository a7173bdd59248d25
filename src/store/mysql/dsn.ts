/**
 * MySQL connection strings: the original's Go-style DSN (`user:pass@tcp(host:port)/db?k=v`, as
 * go-sql-driver/mysql parses it) and `mysql://user:pass@host:port/db` URLs.
 */
import { NexusError } from "../../errors/index.js";

/** Where a MySqlStore connects: one server, one database. */
export interface MySqlDsn {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  readonly database: string;
}

const EXAMPLE =
  'e.g. "root:root@tcp(127.0.0.1:3306)/nexus?autocommit=false" or "mysql://root:root@127.0.0.1:3306/nexus"';

function bad(s: string, why: string): NexusError {
  return new NexusError("BAD_CONFIG", `MySQL connection string "${s}": ${why}; ${EXAMPLE}`);
}

function portOf(s: string, raw: string | undefined): number {
  if (raw === undefined || raw === "") return 3306;
  const p = Number(raw);
  if (!/^\d+$/.test(raw) || p < 1 || p > 65535) throw bad(s, `port "${raw}" is not 1-65535`);
  return p;
}

function databaseOf(s: string, db: string): string {
  if (db === "") throw bad(s, "it names no database (the part after the last /)");
  if (db.length > 64) throw bad(s, `database name "${db}" is longer than 64 characters`);
  return db;
}

/** `host`, `host:port`, `[v6]:port` → host and port (127.0.0.1:3306 by default). */
function hostPort(s: string, addr: string): { host: string; port: number } {
  const m = /^(\[[^\]]*\]|[^:[\]]*)(?::([^:]*))?$/.exec(addr);
  if (m === null) throw bad(s, `"${addr}" is not host:port`);
  const host = (m[1] ?? "").replace(/^\[|\]$/g, "");
  return { host: host === "" ? "127.0.0.1" : host, port: portOf(s, m[2]) };
}

function parseUrl(s: string, t: string): MySqlDsn {
  let u: URL;
  try {
    u = new URL(t);
  } catch {
    throw bad(s, "it is not a valid URL");
  }
  if (u.hostname === "") throw bad(s, "it names no host");
  let database: string;
  try {
    database = decodeURIComponent(u.pathname.replace(/^\//, ""));
  } catch {
    throw bad(s, "the database name is not valid percent-encoding");
  }
  if (database.includes("/")) throw bad(s, "the path must be exactly one database name");
  const { host, port } = hostPort(s, u.host);
  return {
    host,
    port,
    user: u.username === "" ? "root" : decodeURIComponent(u.username),
    password: decodeURIComponent(u.password),
    database: databaseOf(s, database),
  };
}

/**
 * The Go driver's form: `[user[:password]@][net[(addr)]]/dbname[?param1=value1&...]`. As there,
 * the database starts after the last `/` and the address after the last `@`, so a password may
 * contain `@` and `/`. Parameters must be `key=value` and are otherwise ignored (Nexus manages
 * transactions itself; `autocommit=false` from the original is accepted).
 */
function parseGoDsn(s: string, t: string): MySqlDsn {
  const slash = t.lastIndexOf("/");
  if (slash < 0) throw bad(s, "it has no /database part");
  const q = t.indexOf("?", slash);
  const database = t.slice(slash + 1, q < 0 ? undefined : q);
  const query = q < 0 ? "" : t.slice(q + 1);
  for (const kv of query.split("&").filter((x) => x !== "")) {
    if (!/^[^=]+=/.test(kv)) throw bad(s, `parameter "${kv}" is not key=value`);
  }
  const prefix = t.slice(0, slash);
  const at = prefix.lastIndexOf("@");
  const cred = at < 0 ? "" : prefix.slice(0, at);
  const net = at < 0 ? prefix : prefix.slice(at + 1);
  const colon = cred.indexOf(":");
  const user = colon < 0 ? cred : cred.slice(0, colon);
  const password = colon < 0 ? "" : cred.slice(colon + 1);
  let addr = "";
  if (net !== "") {
    const m = /^([a-z0-9]+)(?:\(([^()]*)\))?$/i.exec(net);
    if (m === null) throw bad(s, `"${net}" is not tcp(host:port)`);
    if (m[1]!.toLowerCase() === "unix") {
      throw bad(s, "unix sockets are not supported; use tcp(host:port)");
    }
    if (m[1]!.toLowerCase() !== "tcp") throw bad(s, `network "${m[1]}" is not tcp`);
    addr = m[2] ?? "";
  }
  const { host, port } = hostPort(s, addr);
  return {
    host,
    port,
    user: user === "" ? "root" : user,
    password,
    database: databaseOf(s, database),
  };
}

/**
 * Parses either form into host, port (3306 by default), user ("root" by default), password and
 * database. Throws NexusError BAD_CONFIG naming what is wrong, with an example.
 */
export function parseMySqlDsn(s: string): MySqlDsn {
  const t = s.trim();
  if (t === "") throw bad(s, "it is empty");
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(t)) {
    if (!/^mysql:\/\//i.test(t)) throw bad(s, "the only URL scheme accepted is mysql://");
    return parseUrl(s, t);
  }
  return parseGoDsn(s, t);
}
