/**
 * Where a program's MySQL secrets come from, so that the password need not be on the command
 * line (where every user of the machine reads it with `ps`): the environment variable
 * NEXUS_MYSQL_PASSWORD or a password file, either overriding a password in the connection string;
 * and the TLS files. Files are read and checked once, at start: a clear BAD_CONFIG when one cannot
 * be used, a warning when a secret is readable by every user of the machine.
 */
import { X509Certificate, createPrivateKey } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { NexusError } from "../../errors/index.js";
import { parseMySqlDsn } from "./dsn.js";
import type { MySqlTlsOptions } from "./tls.js";

/** The environment variable a program reads the MySQL password from. */
export const MYSQL_PASSWORD_ENV = "NEXUS_MYSQL_PASSWORD";

/** What a program was given (flags and environment). */
export interface MySqlSecretSources {
  /** The connection string (`-mysqlConnUrl`). */
  readonly url: string;
  /** The value of NEXUS_MYSQL_PASSWORD; undefined or "" when unset. */
  readonly envPassword?: string | undefined;
  /** `-mysqlPasswordFile`: a file holding the password (one trailing newline is dropped). */
  readonly passwordFile?: string | undefined;
  /** `-mysqlTls`: TLS on, verifying the server (implied by the files below). */
  readonly tls?: boolean;
  /** `-mysqlTlsCa`: PEM CA certificate(s) the server's certificate must chain to. */
  readonly tlsCaFile?: string | undefined;
  /** `-mysqlTlsCert` and `-mysqlTlsKey`: PEM client certificate and key (both or neither). */
  readonly tlsCertFile?: string | undefined;
  readonly tlsKeyFile?: string | undefined;
}

/** The store options the sources give, and what the program should warn about. */
export interface MySqlSecrets {
  readonly options: { readonly password?: string; readonly tls?: MySqlTlsOptions };
  readonly warnings: readonly string[];
}

function bad(message: string, cause?: unknown): NexusError {
  return new NexusError("BAD_CONFIG", message, cause === undefined ? undefined : { cause });
}

/** A file's bytes, with a warning when every user may read it (`secret`). */
function readSecretFile(
  path: string,
  what: string,
  flag: string,
  warnings: string[],
  secret: boolean,
): Buffer {
  let data: Buffer;
  let mode: number;
  try {
    const st = statSync(path);
    if (!st.isFile()) throw bad(`the ${what} ${path} (${flag}) is not a file`);
    mode = st.mode & 0o777;
    data = readFileSync(path);
  } catch (err) {
    if (err instanceof NexusError) throw err;
    const e = err as NodeJS.ErrnoException;
    throw bad(
      `cannot read the ${what} ${path} (${flag}): ${e.code ?? e.message}; give a readable file`,
      err,
    );
  }
  if (secret && (mode & 0o004) !== 0) {
    warnings.push(
      `the ${what} ${path} can be read by every user of this machine (mode ${mode.toString(8).padStart(4, "0")}); restrict it: chmod 600 ${path}`,
    );
  }
  return data;
}

/**
 * Reads and checks the sources: the password (file, else NEXUS_MYSQL_PASSWORD, else the
 * connection string's own) and the TLS files. Throws NexusError BAD_CONFIG when a file cannot be
 * read or is not what it should be. Never puts a password in a message.
 */
export function readMySqlSecrets(src: MySqlSecretSources): MySqlSecrets {
  const warnings: string[] = [];
  const inUrl = parseMySqlDsn(src.url).password !== "";
  let password: string | undefined;
  let from: string | undefined;
  if (src.passwordFile !== undefined) {
    const text = readSecretFile(
      src.passwordFile,
      "MySQL password file",
      "-mysqlPasswordFile",
      warnings,
      true,
    ).toString("utf8");
    password = text.replace(/\r?\n$/, "");
    if (password === "") {
      throw bad(`the MySQL password file ${src.passwordFile} (-mysqlPasswordFile) is empty`);
    }
    if (/[\r\n]/.test(password)) {
      throw bad(
        `the MySQL password file ${src.passwordFile} (-mysqlPasswordFile) holds more than one line; it must hold the password alone`,
      );
    }
    from = "-mysqlPasswordFile";
    if (src.envPassword !== undefined && src.envPassword !== "") {
      warnings.push(`${MYSQL_PASSWORD_ENV} is ignored: -mysqlPasswordFile gives the password`);
    }
  } else if (src.envPassword !== undefined && src.envPassword !== "") {
    password = src.envPassword;
    from = MYSQL_PASSWORD_ENV;
  }
  if (inUrl && from !== undefined) {
    warnings.push(`the password in the connection string is ignored: ${from} gives it`);
  } else if (inUrl) {
    warnings.push(
      `the connection string holds a password, which other users of this machine can read in the process list until the program hides it, and in your shell history; give it in ${MYSQL_PASSWORD_ENV} or a file (-mysqlPasswordFile) instead`,
    );
  }

  let tls: MySqlTlsOptions | undefined;
  const { tlsCaFile, tlsCertFile, tlsKeyFile } = src;
  if (
    src.tls === true ||
    tlsCaFile !== undefined ||
    tlsCertFile !== undefined ||
    tlsKeyFile !== undefined
  ) {
    if ((tlsCertFile === undefined) !== (tlsKeyFile === undefined)) {
      throw bad(
        "-mysqlTlsCert and -mysqlTlsKey go together: a client certificate needs its key, and a key its certificate",
      );
    }
    let ca: Buffer | undefined;
    let cert: Buffer | undefined;
    let key: Buffer | undefined;
    if (tlsCaFile !== undefined) {
      ca = readSecretFile(tlsCaFile, "MySQL TLS CA file", "-mysqlTlsCa", warnings, false);
      checkCertificate(ca, `the MySQL TLS CA file ${tlsCaFile} (-mysqlTlsCa)`);
    }
    if (tlsCertFile !== undefined && tlsKeyFile !== undefined) {
      cert = readSecretFile(tlsCertFile, "MySQL TLS certificate", "-mysqlTlsCert", warnings, false);
      checkCertificate(cert, `the MySQL TLS certificate ${tlsCertFile} (-mysqlTlsCert)`);
      key = readSecretFile(tlsKeyFile, "MySQL TLS key file", "-mysqlTlsKey", warnings, true);
      try {
        createPrivateKey(key);
      } catch (err) {
        throw bad(
          `the MySQL TLS key file ${tlsKeyFile} (-mysqlTlsKey) is not an unencrypted PEM private key`,
          err,
        );
      }
    }
    tls = {
      ...(ca === undefined ? {} : { ca }),
      ...(cert === undefined ? {} : { cert }),
      ...(key === undefined ? {} : { key }),
    };
  }
  return {
    options: {
      ...(password === undefined ? {} : { password }),
      ...(tls === undefined ? {} : { tls }),
    },
    warnings,
  };
}

function checkCertificate(pem: Buffer, what: string): void {
  try {
    new X509Certificate(pem);
  } catch (err) {
    throw bad(`${what} is not a PEM certificate`, err);
  }
}
