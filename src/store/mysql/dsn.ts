/**
 * MySQL connection strings: the original's Go-style DSN (`user:pass@tcp(host:port)/db?k=v`, as
 * go-sql-driver/mysql parses it) and `mysql://user:pass@host:port/db` URLs.
 *
 * Passwords never appear in a message: an error shows the string with its password masked
 * (redactMySqlDsn), and quotes parts of it only through the same mask. Where the password ends is
 * unknown in a string that does not parse, so the mask is wide: from the first `:` (after a
 * `scheme://`) to the last `@`; with no `@`, what follows a `:` outside brackets up to the next `/`
 * (unless it is a port number); and the value of a parameter named like a password.
 */
import { NexusError } from "../../errors/index.js";

/** Where a MySqlStore connects: one server, one database. */
export interface MySqlDsn {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  readonly database: string;
  /**
   * TLS asked for by the string's `tls` parameter: "verify" (`tls=true`: the server's certificate
   * and name are checked) or "skip-verify" (encrypted, the server not checked). Absent when the
   * parameter is absent or `false`.
   */
  readonly tls?: "verify" | "skip-verify";
}

const EXAMPLE =
  'e.g. "root:root@tcp(127.0.0.1:3306)/nexus?autocommit=false" or "mysql://root:root@127.0.0.1:3306/nexus"';
const SCHEME = /^[a-z][a-z0-9+.-]*:\/\//i;
const MASK = "***";
/** A character standing for a masked one while positions must be kept (collapsed to MASK). */
const HIDDEN = "\ue000";

/** The [start, end) ranges of `t` that may hold a password (see the file's comment). */
function secretRanges(t: string): [number, number][] {
  const out: [number, number][] = [];
  const body = SCHEME.exec(t)?.[0].length ?? 0;
  const at = t.lastIndexOf("@");
  if (at >= body) {
    const colon = t.indexOf(":", body);
    if (colon >= 0 && colon < at) out.push([colon + 1, at]);
  } else {
    // No `@`, so no password by the grammar; but a mistyped string may still hold one.
    let depth = 0;
    for (let i = body; i < t.length; i++) {
      const c = t[i];
      if (c === "(" || c === "[") depth++;
      else if ((c === ")" || c === "]") && depth > 0) depth--;
      else if (c === ":" && depth === 0) {
        const slash = t.indexOf("/", i + 1);
        const end = slash < 0 ? t.length : slash;
        if (!/^\d{0,5}$/.test(t.slice(i + 1, end))) out.push([i + 1, end]);
        break;
      }
    }
  }
  const param = /[?&][^=&]*(?:pass|pwd|secret|token)[^=&]*=([^&]*)/gi;
  for (let m = param.exec(t); m !== null; m = param.exec(t)) {
    out.push([m.index + m[0].length - m[1]!.length, m.index + m[0].length]);
  }
  return out;
}

/** `t` with every secret character replaced by HIDDEN (same length, same positions). */
function hide(t: string): string {
  const secret = new Uint8Array(t.length);
  for (const [a, b] of secretRanges(t)) secret.fill(1, a, b);
  let out = "";
  let run = 0;
  for (let i = 0; i <= t.length; i++) {
    if (i === t.length || secret[i] === 1) {
      out += t.slice(run, i);
      if (i < t.length) out += HIDDEN;
      run = i + 1;
    }
  }
  return out;
}

/** Text of a hidden copy, each run of hidden characters shown as one MASK. */
function shown(hidden: string): string {
  return hidden.replace(/\ue000+/g, MASK);
}

/** The connection string with its password (and anything that may be one) replaced by `***`. */
export function redactMySqlDsn(s: string): string {
  return shown(hide(s.trim()));
}

/** A parse of one string: its text, a masked copy, and errors that quote only the copy. */
class Source {
  readonly hidden: string;

  constructor(readonly text: string) {
    this.hidden = hide(text);
  }

  /** The text of [a, b) as a message may show it. */
  part(a: number, b: number = this.text.length): string {
    return shown(this.hidden.slice(a, b));
  }

  bad(why: string): NexusError {
    return new NexusError(
      "BAD_CONFIG",
      `MySQL connection string "${shown(this.hidden)}": ${why}; ${EXAMPLE}`,
    );
  }
}

/** A port; `at` is where `raw` is in the source (undefined: not quoted). */
function portOf(src: Source, raw: string, at: number | undefined): number {
  if (raw === "") return 3306;
  const p = Number(raw);
  if (!/^\d+$/.test(raw) || p < 1 || p > 65535) {
    const quoted = at === undefined ? "" : ` "${src.part(at, at + raw.length)}"`;
    throw src.bad(`port${quoted} is not 1-65535`);
  }
  return p;
}

/** A database name; `shownDb` is how a message may quote it. */
function databaseOf(src: Source, db: string, shownDb: string | undefined): string {
  if (db === "") throw src.bad("it names no database (the part after the last /)");
  if (db.length > 64) {
    const quoted = shownDb === undefined ? "" : ` "${shownDb}"`;
    throw src.bad(`database name${quoted} is longer than 64 characters`);
  }
  return db;
}

/**
 * `host`, `host:port`, `[v6]:port` → host and port (127.0.0.1:3306 by default); `at` is where
 * `addr` is in the source (undefined: not quoted).
 */
function hostPort(
  src: Source,
  addr: string,
  at: number | undefined,
): { host: string; port: number } {
  const m = /^(\[[^\]]*\]|[^:[\]]*)(?::([^:]*))?$/.exec(addr);
  if (m === null) {
    throw src.bad(
      `${at === undefined ? "the address" : `"${src.part(at, at + addr.length)}"`} is not host:port`,
    );
  }
  const host = (m[1] ?? "").replace(/^\[|\]$/g, "");
  const port =
    m[2] === undefined
      ? 3306
      : portOf(src, m[2], at === undefined ? undefined : at + m[1]!.length + 1);
  return { host: host === "" ? "127.0.0.1" : host, port };
}

/** The `tls` parameter's meaning; `at` is where `value` is in the source (undefined: not quoted). */
function tlsOf(src: Source, value: string, at: number | undefined): MySqlDsn["tls"] | undefined {
  switch (value.toLowerCase()) {
    case "true":
      return "verify";
    case "skip-verify":
      return "skip-verify";
    case "false":
      return undefined;
    case "preferred":
      throw src.bad(
        "tls=preferred would fall back to an unencrypted connection without saying so; use tls=true",
      );
    default:
      throw src.bad(
        `tls=${at === undefined ? "<name>" : src.part(at, at + value.length)} names a TLS configuration, which cannot be registered here; use tls=true, with the -mysqlTlsCa, -mysqlTlsCert and -mysqlTlsKey flags if needed`,
      );
  }
}

function decoded(src: Source, raw: string, what: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw src.bad(`${what} is not valid percent-encoding`);
  }
}

function parseUrl(src: Source): MySqlDsn {
  const t = src.text;
  let u: URL;
  try {
    u = new URL(t);
  } catch {
    throw src.bad("it is not a valid URL");
  }
  if (u.hostname === "") throw src.bad("it names no host");
  const database = decoded(src, u.pathname.replace(/^\//, ""), "the database name");
  if (database.includes("/")) throw src.bad("the path must be exactly one database name");
  // The URL parser normalizes what it splits (case, percent-encoding, IPv6): its parts cannot be
  // located in the text to be quoted through the mask, so they are not quoted.
  const { host, port } = hostPort(src, u.host, undefined);
  const user = decoded(src, u.username, "the user name");
  const password = decoded(src, u.password, "the password");
  const tlsRaw = u.searchParams.get("tls");
  const tls = tlsRaw === null ? undefined : tlsOf(src, tlsRaw, undefined);
  return {
    host,
    port,
    user: user === "" ? "root" : user,
    password,
    database: databaseOf(src, database, undefined),
    ...(tls === undefined ? {} : { tls }),
  };
}

/**
 * The Go driver's form: `[user[:password]@][net[(addr)]]/dbname[?param1=value1&...]`. As there,
 * the database starts after the last `/` and the address after the last `@`, so a password may
 * contain `@` and `/`. Parameters must be `key=value`; `tls` is read, the others are ignored
 * (Nexus manages transactions itself; `autocommit=false` from the original is accepted).
 */
function parseGoDsn(src: Source): MySqlDsn {
  const t = src.text;
  const slash = t.lastIndexOf("/");
  if (slash < 0) throw src.bad("it has no /database part");
  const q = t.indexOf("?", slash);
  const dbEnd = q < 0 ? t.length : q;
  const database = t.slice(slash + 1, dbEnd);
  let tls: MySqlDsn["tls"] | undefined;
  if (q >= 0) {
    let at = q + 1;
    for (const kv of t.slice(q + 1).split("&")) {
      if (kv !== "") {
        if (!/^[^=]+=/.test(kv)) {
          throw src.bad(`parameter "${src.part(at, at + kv.length)}" is not key=value`);
        }
        const eq = kv.indexOf("=");
        if (kv.slice(0, eq).toLowerCase() === "tls")
          tls = tlsOf(src, kv.slice(eq + 1), at + eq + 1);
      }
      at += kv.length + 1;
    }
  }
  const prefix = t.slice(0, slash);
  const at = prefix.lastIndexOf("@");
  const cred = at < 0 ? "" : prefix.slice(0, at);
  const netAt = at + 1;
  const net = prefix.slice(netAt);
  const colon = cred.indexOf(":");
  const user = colon < 0 ? cred : cred.slice(0, colon);
  const password = colon < 0 ? "" : cred.slice(colon + 1);
  let host = "127.0.0.1";
  let port = 3306;
  if (net !== "") {
    const m = /^([a-z0-9]+)(?:\(([^()]*)\))?$/i.exec(net);
    if (m === null) throw src.bad(`"${src.part(netAt, slash)}" is not tcp(host:port)`);
    const kind = m[1]!.toLowerCase();
    if (kind === "unix") throw src.bad("unix sockets are not supported; use tcp(host:port)");
    if (kind !== "tcp") {
      throw src.bad(`network "${src.part(netAt, netAt + m[1]!.length)}" is not tcp`);
    }
    ({ host, port } = hostPort(src, m[2] ?? "", netAt + m[1]!.length + 1));
  }
  return {
    host,
    port,
    user: user === "" ? "root" : user,
    password,
    database: databaseOf(src, database, src.part(slash + 1, dbEnd)),
    ...(tls === undefined ? {} : { tls }),
  };
}

/**
 * Parses either form into host, port (3306 by default), user ("root" by default), password,
 * database and the `tls` parameter. Throws NexusError BAD_CONFIG naming what is wrong, with an
 * example; the message never contains the password.
 */
export function parseMySqlDsn(s: string): MySqlDsn {
  const src = new Source(s.trim());
  if (src.text === "") throw src.bad("it is empty");
  if (SCHEME.test(src.text)) {
    if (!/^mysql:\/\//i.test(src.text)) throw src.bad("the only URL scheme accepted is mysql://");
    return parseUrl(src);
  }
  return parseGoDsn(src);
}
