/**
 * MySQL connection strings: the original's Go-style DSN (`user:pass@tcp(host:port)/db?k=v`) and
 * `mysql://user:pass@host:port/db` URLs.
 */
import { NexusError } from "../../errors/index.js";

export interface MySqlDsn {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  readonly database: string;
}

const EXAMPLE =
  'e.g. "root:root@tcp(127.0.0.1:3306)/nexus?autocommit=false" or "mysql://root@127.0.0.1:3306/nexus"';

function bad(s: string, why: string): NexusError {
  return new NexusError("BAD_CONFIG", `MySQL connection string "${s}": ${why}; ${EXAMPLE}`);
}

function port(s: string, raw: string | undefined): number {
  if (raw === undefined || raw === "") return 3306;
  const p = Number(raw);
  if (!/^\d+$/.test(raw) || p < 1 || p > 65535) throw bad(s, `port "${raw}" is not 1-65535`);
  return p;
}

/** Parses either form. Throws BAD_CONFIG saying what is wrong. */
export function parseMySqlDsn(s: string): MySqlDsn {
  const t = s.trim();
  if (t === "") throw bad(s, "it is empty");
  if (/^mysql:\/\//i.test(t)) {
    let u: URL;
    try {
      u = new URL(t);
    } catch {
      throw bad(s, "not a valid URL");
    }
    const database = decodeURIComponent(u.pathname.replace(/^\//, ""));
    if (database === "" || database.includes("/")) throw bad(s, "name one database in the path");
    if (u.hostname === "") throw bad(s, "no host");
    return {
      host: u.hostname.replace(/^\[|\]$/g, ""),
      port: port(s, u.port),
      user: decodeURIComponent(u.username) || "root",
      password: decodeURIComponent(u.password),
      database,
    };
  }
  // [user[:password]@][tcp[(host[:port])]]/dbname[?params]
  const m =
    /^(?:([^:@/]*)(?::([^@]*))?@)?(?:tcp\(([^)]*)\)|unix\([^)]*\))?\/([^?/]+)(?:\?(.*))?$/.exec(t);
  if (m === null) throw bad(s, "not a DSN of the form user:password@tcp(host:port)/database");
  if (/^[^@]*@unix\(/.test(t)) throw bad(s, "unix sockets are not supported; use tcp(host:port)");
  const hp = m[3] ?? "127.0.0.1:3306";
  const hm = /^(\[[^\]]+\]|[^:]*)(?::(\d*))?$/.exec(hp);
  if (hm === null) throw bad(s, `"${hp}" is not host:port`);
  for (const kv of (m[5] ?? "").split("&").filter((x) => x !== "")) {
    if (!kv.includes("=")) throw bad(s, `parameter "${kv}" is not key=value`);
  }
  return {
    host: (hm[1] === "" ? "127.0.0.1" : hm[1]!).replace(/^\[|\]$/g, ""),
    port: port(s, hm[2]),
    user: m[1] === undefined || m[1] === "" ? "root" : m[1],
    password: m[2] ?? "",
    database: m[4]!,
  };
}
