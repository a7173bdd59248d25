/**
 * The MySQL store kind's flags for secrets and TLS, and how a program turns them (with
 * NEXUS_MYSQL_PASSWORD) into store options. Kept apart from stores.ts: only the MySQL kind uses
 * them, and nothing here loads the MySQL driver.
 */
import { redactMySqlDsn } from "../store/mysql/dsn.js";
import type { MySqlStoreOptions } from "../store/mysql/mysql-store.js";
import { MYSQL_PASSWORD_ENV, readMySqlSecrets } from "../store/mysql/secrets.js";
import type { FlagSpec, ParsedFlags } from "./flags.js";
import { bool, str } from "./flags.js";
import { hideInProcessTitle } from "./process-title.js";

/** -mysqlPasswordFile, -mysqlTls, -mysqlTlsCa, -mysqlTlsCert, -mysqlTlsKey. */
export const MYSQL_SECRET_FLAGS: readonly FlagSpec[] = [
  {
    name: "mysqlPasswordFile",
    kind: "string",
    help: `file holding the MySQL password (chmod 600); overrides ${MYSQL_PASSWORD_ENV} and the connection string's, as ${MYSQL_PASSWORD_ENV} overrides the connection string's`,
  },
  {
    name: "mysqlTls",
    kind: "bool",
    help: "connect to MySQL with TLS, checking the server's certificate and name (implied by the -mysqlTls* files)",
  },
  {
    name: "mysqlTlsCa",
    kind: "string",
    help: "PEM CA certificate that signed the MySQL server's (default: the system's CAs)",
  },
  {
    name: "mysqlTlsCert",
    kind: "string",
    help: "PEM client certificate for MySQL (with -mysqlTlsKey)",
  },
  { name: "mysqlTlsKey", kind: "string", help: "PEM private key of -mysqlTlsCert" },
];

/**
 * The store options for connection string `url` and the flags: the password from
 * -mysqlPasswordFile or NEXUS_MYSQL_PASSWORD, TLS from the -mysqlTls* flags. Prints warnings
 * (a secret file readable by everyone, a password on the command line) on stderr, and hides the
 * connection string's password from the process list. Throws NexusError BAD_CONFIG.
 */
export function mysqlStoreOptions(url: string, f: ParsedFlags): MySqlStoreOptions {
  const secrets = readMySqlSecrets({
    url,
    envPassword: process.env[MYSQL_PASSWORD_ENV],
    passwordFile: str(f, "mysqlPasswordFile"),
    tls: bool(f, "mysqlTls"),
    tlsCaFile: str(f, "mysqlTlsCa"),
    tlsCertFile: str(f, "mysqlTlsCert"),
    tlsKeyFile: str(f, "mysqlTlsKey"),
  });
  for (const w of secrets.warnings) process.stderr.write(`warning: ${w}\n`);
  hideInProcessTitle(url, redactMySqlDsn(url));
  return { url, ...secrets.options };
}
