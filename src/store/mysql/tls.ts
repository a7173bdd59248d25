/**
 * TLS for the connections to MySQL/MariaDB: the options, mysql2's `ssl` option made from them (or
 * from the connection string's `tls` parameter), with the server's certificate and name checked
 * unless asked otherwise.
 */
import { connect as netConnect } from "node:net";
import type { Socket } from "node:net";
import type { ConnectionOptions } from "mysql2";
import { NexusError } from "../../errors/index.js";
import type { MySqlDsn } from "./dsn.js";
import type { MySqlError } from "./server-errors.js";

/** TLS for the connections to the server. */
export interface MySqlTlsOptions {
  /** PEM certificate(s) of the CA the server's certificate must chain to. Default: Node's CAs. */
  readonly ca?: string | Buffer;
  /** PEM client certificate, for a server that asks for one (`REQUIRE X509`); with `key`. */
  readonly cert?: string | Buffer;
  /** PEM private key of `cert` (unencrypted). */
  readonly key?: string | Buffer;
  /**
   * Check the server's certificate (signed by a trusted CA, naming the host connected to).
   * Default true; false only encrypts (anyone in the path can pose as the server).
   */
  readonly verifyServer?: boolean;
}

/** mysql2's `ssl` option: from the options if given, else from the string's `tls` parameter. */
export function sslOptions(
  fromUrl: MySqlDsn["tls"],
  tls: MySqlTlsOptions | undefined,
): ConnectionOptions["ssl"] {
  if (tls === undefined && fromUrl === undefined) return undefined;
  if ((tls?.cert === undefined) !== (tls?.key === undefined)) {
    throw new NexusError(
      "BAD_CONFIG",
      "a TLS client certificate needs its key, and a key its certificate: give both or neither",
    );
  }
  const verify = tls?.verifyServer ?? fromUrl !== "skip-verify";
  return {
    ...(tls?.ca === undefined ? {} : { ca: tls.ca }),
    ...(tls?.cert === undefined ? {} : { cert: tls.cert }),
    ...(tls?.key === undefined ? {} : { key: tls.key }),
    rejectUnauthorized: verify,
    // mysql2 checks the name in the certificate only when asked.
    verifyIdentity: verify,
  };
}

/**
 * A socket to the server, as mysql2 opens it, that also carries the address it connects to as
 * its host name. For an IP address mysql2 gives TLS no server name, and Node then checks the
 * server's certificate against "localhost" (the socket's `_host`, which Node sets only after a
 * name lookup, is the next candidate): with it set, the certificate must name the address.
 * Should Node stop reading `_host`, the check falls back to "localhost" and fails closed.
 */
export function socketNamed(opts: {
  readonly config: {
    readonly host: string;
    readonly port: number;
    readonly enableKeepAlive?: boolean;
    readonly keepAliveInitialDelay?: number;
  };
}): Socket {
  const { host, port, enableKeepAlive, keepAliveInitialDelay } = opts.config;
  const s = netConnect(port, host);
  Object.assign(s, { _host: host });
  if (enableKeepAlive === true) s.on("connect", () => s.setKeepAlive(true, keepAliveInitialDelay));
  s.setNoDelay(true);
  return s;
}

/** Whether a connection error is the TLS handshake's (a configuration to fix, not an outage). */
export function isTlsFailure(e: MySqlError): boolean {
  return /CERT|SSL|TLS|SIGNATURE|ISSUER|ALTNAME/.test(e.code ?? "");
}
