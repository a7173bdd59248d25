/**
 * TLS material read from PEM files, checked when loaded and reloadable: what peer mutual TLS
 * (src/transport/peer-tls.ts) and the gRPC service's TLS (src/api/server.ts) share. Loaded and
 * checked at once (a clear BAD_CONFIG at startup rather than refused handshakes later); reloaded
 * on demand (SIGHUP) or when a file changes, keeping the old material when the new files do not
 * pass the same checks.
 */
import { X509Certificate } from "node:crypto";
import { createSecureContext } from "node:tls";
import { readFileSync, unwatchFile, watchFile } from "node:fs";
import type { Stats } from "node:fs";
import { NexusError } from "../errors/index.js";

/** Where TLS material is, as paths to PEM files. */
export interface TlsFiles {
  /** The certificate (PEM; may be followed by intermediate CA certificates). */
  readonly certFile: string;
  /** The private key of that certificate (PEM, unencrypted). */
  readonly keyFile: string;
  /** CA certificate(s) (PEM) the other side's certificate must be signed by, if any. */
  readonly trustedCaFile?: string | undefined;
}

/** The loaded material, as Node's TLS options take it. */
export interface TlsMaterial {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly ca?: Buffer | undefined;
}

/** What a use of TLS checks when it loads its files, and how its messages name things. */
export interface TlsCheckOptions {
  /** Starts every message, e.g. "peer TLS" or "gRPC TLS". */
  readonly subject: string;
  /** The flags that name the files, e.g. "-peer-cert-file". */
  readonly flags: { readonly cert: string; readonly key: string; readonly ca: string };
  /** Extended key usages the certificate must allow when it lists any, and why (for the message). */
  readonly eku: {
    readonly serverAuth: boolean;
    readonly clientAuth: boolean;
    readonly why: string;
  };
  /** The certificate must be signed by a CA of trustedCaFile (peers trust one CA file). */
  readonly signedByTrustedCa: boolean;
  /** A further check of the certificate: returns what is wrong, or undefined. */
  readonly checkLeaf?: (leaf: X509Certificate, certFile: string) => string | undefined;
}

const SERVER_AUTH = "1.3.6.1.5.5.7.3.1";
const CLIENT_AUTH = "1.3.6.1.5.5.7.3.2";

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

function bad(subject: string, msg: string, cause?: unknown): NexusError {
  return new NexusError(
    "BAD_CONFIG",
    `${subject}: ${msg}`,
    cause === undefined ? undefined : { cause },
  );
}

/** The certificates of a PEM buffer. Throws BAD_CONFIG when there is none or one does not parse. */
export function certificatesIn(pem: Buffer, what: string, subject: string): X509Certificate[] {
  const blocks = pem.toString("utf8").match(PEM_CERT) ?? [];
  if (blocks.length === 0) throw bad(subject, `${what} holds no PEM certificate`);
  return blocks.map((b, i) => {
    try {
      return new X509Certificate(b);
    } catch (err) {
      throw bad(
        subject,
        `${what}: certificate ${i + 1} does not parse: ${(err as Error).message}`,
        err,
      );
    }
  });
}

function read(path: string, what: string, subject: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw bad(subject, `cannot read ${what} ${path}: ${(err as Error).message}`, err);
  }
}

/**
 * Reads and checks the material: the files parse, the key matches the certificate, the
 * certificate is valid now and allows the key usages asked for, and passes the further checks of
 * `o`. Throws BAD_CONFIG saying what is wrong and which flag names the file.
 */
export function loadTlsMaterial(files: TlsFiles, o: TlsCheckOptions): TlsMaterial {
  const s = o.subject;
  const certWhat = `the certificate file (${o.flags.cert})`;
  const keyWhat = `the key file (${o.flags.key})`;
  const caWhat = `the trusted CA file (${o.flags.ca})`;
  const cert = read(files.certFile, certWhat, s);
  const key = read(files.keyFile, keyWhat, s);
  const ca = files.trustedCaFile === undefined ? undefined : read(files.trustedCaFile, caWhat, s);
  const chain = certificatesIn(cert, `${certWhat} ${files.certFile}`, s);
  const cas = ca === undefined ? [] : certificatesIn(ca, `${caWhat} ${files.trustedCaFile}`, s);
  try {
    createSecureContext({ cert, key, ...(ca === undefined ? {} : { ca }) });
  } catch (err) {
    throw bad(
      s,
      `${files.certFile} and ${files.keyFile} do not make a usable pair: ${(err as Error).message}`,
      err,
    );
  }
  const leaf = chain[0]!;
  const now = Date.now();
  if (Date.parse(leaf.validTo) < now || Date.parse(leaf.validFrom) > now) {
    throw bad(
      s,
      `the certificate ${files.certFile} is valid from ${leaf.validFrom} to ${leaf.validTo}, not now`,
    );
  }
  const eku = leaf.keyUsage as string[] | undefined;
  if (
    eku !== undefined &&
    ((o.eku.serverAuth && !eku.includes(SERVER_AUTH)) ||
      (o.eku.clientAuth && !eku.includes(CLIENT_AUTH)))
  ) {
    throw bad(s, `the certificate ${files.certFile} ${o.eku.why}`);
  }
  if (o.signedByTrustedCa) {
    const signed = chain.some((c) => cas.some((a) => c.checkIssued(a) || c.raw.equals(a.raw)));
    if (!signed) {
      throw bad(
        s,
        `the certificate ${files.certFile} (issuer ${leaf.issuer.replace(/\n/g, ", ")}) is not signed by a CA in ` +
          `${String(files.trustedCaFile)}: peers trusting that file would refuse it`,
      );
    }
  }
  const wrong = o.checkLeaf?.(leaf, files.certFile);
  if (wrong !== undefined) throw bad(s, wrong);
  return ca === undefined ? { cert, key } : { cert, key, ca };
}

/** Where a reloadable's messages go (a pino logger fits). */
export interface TlsLog {
  info(f: Readonly<Record<string, unknown>>, m?: string): void;
  warn(f: Readonly<Record<string, unknown>>, m: string): void;
}

/** TLS material in use, reloadable from its files. */
export class ReloadableTls<M extends TlsMaterial = TlsMaterial> {
  readonly files: TlsFiles;
  private readonly subject: string;
  private readonly loadFn: () => M;
  private current: M;
  private readonly listeners: ((material: M) => void)[] = [];
  private watching = false;
  private debounce: NodeJS.Timeout | undefined;
  private log: TlsLog = { info() {}, warn() {} };
  private readonly onFileChange = (cur: Stats, prev: Stats): void => {
    if (cur.mtimeMs === prev.mtimeMs && cur.size === prev.size && cur.ino === prev.ino) return;
    clearTimeout(this.debounce);
    // Tools replace the certificate and the key one after the other: wait for both.
    this.debounce = setTimeout(() => {
      try {
        if (this.reload())
          this.log.info({}, `${this.subject} certificates reloaded (a file changed)`);
      } catch (err) {
        this.log.warn(
          { error: (err as Error).message },
          `${this.subject} files changed but were not loaded; keeping the previous ones`,
        );
      }
    }, 300);
    this.debounce.unref();
  };

  /** Loads with `load` at once (it throws BAD_CONFIG saying what is wrong). */
  constructor(files: TlsFiles, subject: string, load: () => M) {
    this.files = files;
    this.subject = subject;
    this.loadFn = load;
    this.current = load();
  }

  /** The material in use now. */
  get material(): M {
    return this.current;
  }

  /** Calls `listener` with the new material after every reload that changed it. */
  onChange(listener: (material: M) => void): void {
    this.listeners.push(listener);
  }

  /**
   * Reads the files again. Returns whether anything changed (listeners are then called). Throws
   * BAD_CONFIG, keeping the material in use, when the new files do not pass the checks.
   */
  reload(): boolean {
    const next = this.loadFn();
    const same =
      next.cert.equals(this.current.cert) &&
      next.key.equals(this.current.key) &&
      (next.ca === undefined
        ? this.current.ca === undefined
        : this.current.ca !== undefined && next.ca.equals(this.current.ca));
    if (same) return false;
    this.current = next;
    for (const l of this.listeners) l(next);
    return true;
  }

  private paths(): string[] {
    const f = this.files;
    return [f.certFile, f.keyFile, ...(f.trustedCaFile === undefined ? [] : [f.trustedCaFile])];
  }

  /** Reloads whenever one of the files changes (polled every `intervalMs`), until close(). */
  watch(intervalMs: number, log: TlsLog): void {
    if (this.watching) return;
    this.watching = true;
    this.log = log;
    for (const f of this.paths()) {
      watchFile(f, { persistent: false, interval: intervalMs }, this.onFileChange);
    }
  }

  /** Stops watching the files. */
  close(): void {
    clearTimeout(this.debounce);
    if (!this.watching) return;
    this.watching = false;
    for (const f of this.paths()) unwatchFile(f, this.onFileChange);
  }
}

/**
 * The gRPC service's TLS (`-grpc-cert-file`, `-grpc-key-file`, `-grpc-trusted-ca-file`): the
 * certificate must allow TLS server use; the CA file, when given, is what client certificates
 * must be signed by. Throws BAD_CONFIG saying what is wrong.
 */
export function loadGrpcTls(files: TlsFiles): ReloadableTls {
  const checks: TlsCheckOptions = {
    subject: "gRPC TLS",
    flags: { cert: "-grpc-cert-file", key: "-grpc-key-file", ca: "-grpc-trusted-ca-file" },
    eku: {
      serverAuth: true,
      clientAuth: false,
      why: "must allow TLS server use (extendedKeyUsage serverAuth): clients would refuse it",
    },
    signedByTrustedCa: false,
  };
  return new ReloadableTls(files, "gRPC TLS", () => loadTlsMaterial(files, checks));
}

/** Socket-level failure codes: the connection failed before or beneath TLS. */
const SOCKET_CODES: ReadonlySet<string> = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENETDOWN",
  "EPIPE",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ERR_HTTP2_SESSION_ERROR",
  "ERR_HTTP2_STREAM_ERROR",
  "ERR_HTTP2_GOAWAY_SESSION",
  "ERR_HTTP2_ERROR",
]);

/**
 * Whether a connection error came from TLS: an OpenSSL error (its code starts with ERR_SSL_, or it
 * names the OpenSSL library that raised it), Node's own TLS checks (ERR_TLS_...), or a certificate
 * verification result (UNABLE_TO_VERIFY_LEAF_SIGNATURE, CERT_HAS_EXPIRED, ...: upper-case codes
 * without the E prefix of errno names). Decided by the error's code, never its message.
 */
export function isTlsFailure(err: unknown): boolean {
  if (typeof err !== "object" || err === null) return false;
  const e = err as { code?: unknown; library?: unknown };
  if (typeof e.library === "string") return true;
  if (typeof e.code !== "string") return false;
  const code = e.code;
  if (code.startsWith("ERR_SSL_") || code.startsWith("ERR_TLS_") || code.startsWith("ERR_OSSL_"))
    return true;
  if (SOCKET_CODES.has(code) || code.startsWith("ERR_")) return false;
  return /^(?:CERT_|UNABLE_TO_|DEPTH_ZERO_|SELF_SIGNED_|HOSTNAME_MISMATCH|INVALID_CA|PATH_LENGTH|INVALID_PURPOSE|CERT_UNTRUSTED|CERT_REJECTED)/.test(
    code,
  );
}

/**
 * Node's server options for serving with `m`: the certificate and key, and, when the material has
 * a trusted CA, client certificates required and checked against it (mutual TLS).
 */
export function serverSecureOptions(m: TlsMaterial): {
  cert: Buffer;
  key: Buffer;
  ca?: Buffer;
  requestCert: boolean;
  rejectUnauthorized: boolean;
} {
  return m.ca === undefined
    ? { cert: m.cert, key: m.key, requestCert: false, rejectUnauthorized: false }
    : { cert: m.cert, key: m.key, ca: m.ca, requestCert: true, rejectUnauthorized: true };
}
