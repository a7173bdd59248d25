/**
 * The TLS material of a node's peer connections (mutual TLS): its certificate and key, used both
 * as server and as client, and the CA certificates that peers' certificates must be signed by.
 * Loaded from files and checked at once (a clear BAD_CONFIG at startup rather than refused
 * handshakes later); reloaded on demand (SIGHUP) or when a file changes, keeping the old material
 * when the new files do not pass the same checks.
 */
import { X509Certificate } from "node:crypto";
import { createSecureContext } from "node:tls";
import { readFileSync, unwatchFile, watchFile } from "node:fs";
import type { Stats } from "node:fs";
import { NexusError } from "../errors/index.js";
import { certificateNamesUrl, describeCertificateNames } from "./peer-identity.js";

/** Where the peer TLS material is, as paths to PEM files. */
export interface PeerTlsFiles {
  /** This node's certificate (PEM; may be followed by intermediate CA certificates). */
  readonly certFile: string;
  /** The private key of that certificate (PEM, unencrypted). */
  readonly keyFile: string;
  /** The CA certificate(s) (PEM) that every peer's certificate must be signed by. */
  readonly trustedCaFile: string;
}

/** The loaded material, as Node's TLS options take it. */
export interface PeerTlsMaterial {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly ca: Buffer;
}

/** Extended key usages a peer certificate needs: TLS server and TLS client. */
const SERVER_AUTH = "1.3.6.1.5.5.7.3.1";
const CLIENT_AUTH = "1.3.6.1.5.5.7.3.2";

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

function bad(msg: string, cause?: unknown): NexusError {
  return new NexusError(
    "BAD_CONFIG",
    `peer TLS: ${msg}`,
    cause === undefined ? undefined : { cause },
  );
}

function certsIn(pem: Buffer, what: string): X509Certificate[] {
  const blocks = pem.toString("utf8").match(PEM_CERT) ?? [];
  if (blocks.length === 0) throw bad(`${what} holds no PEM certificate`);
  return blocks.map((b, i) => {
    try {
      return new X509Certificate(b);
    } catch (err) {
      throw bad(`${what}: certificate ${i + 1} does not parse: ${(err as Error).message}`, err);
    }
  });
}

function read(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw bad(`cannot read ${what} ${path}: ${(err as Error).message}`, err);
  }
}

/**
 * Reads and checks the material: the files parse, the key matches the certificate, the
 * certificate is valid now, may act as TLS server and client, is signed by one of the trusted
 * CAs, and names `selfUrl` (when given) as peers will require.
 */
export function loadPeerTlsMaterial(files: PeerTlsFiles, selfUrl?: string): PeerTlsMaterial {
  const certWhat = "the certificate file (-peer-cert-file)";
  const keyWhat = "the key file (-peer-key-file)";
  const caWhat = "the trusted CA file (-peer-trusted-ca-file)";
  const material = {
    cert: read(files.certFile, certWhat),
    key: read(files.keyFile, keyWhat),
    ca: read(files.trustedCaFile, caWhat),
  };
  const chain = certsIn(material.cert, `${certWhat} ${files.certFile}`);
  const cas = certsIn(material.ca, `${caWhat} ${files.trustedCaFile}`);
  try {
    createSecureContext(material);
  } catch (err) {
    throw bad(
      `${files.certFile} and ${files.keyFile} do not make a usable pair: ${(err as Error).message}`,
      err,
    );
  }
  const leaf = chain[0]!;
  const now = Date.now();
  if (Date.parse(leaf.validTo) < now || Date.parse(leaf.validFrom) > now) {
    throw bad(
      `the certificate ${files.certFile} is valid from ${leaf.validFrom} to ${leaf.validTo}, not now`,
    );
  }
  const eku = leaf.keyUsage as string[] | undefined;
  if (eku !== undefined && !(eku.includes(SERVER_AUTH) && eku.includes(CLIENT_AUTH))) {
    throw bad(
      `the certificate ${files.certFile} must allow both TLS server and TLS client use ` +
        "(extendedKeyUsage serverAuth,clientAuth): a node is both to its peers",
    );
  }
  const signed = chain.some((c) => cas.some((ca) => c.checkIssued(ca) || c.raw.equals(ca.raw)));
  if (!signed) {
    throw bad(
      `the certificate ${files.certFile} (issuer ${leaf.issuer.replace(/\n/g, ", ")}) is not signed by a CA in ` +
        `${files.trustedCaFile}: peers trusting that file would refuse it`,
    );
  }
  if (selfUrl !== undefined && !certificateNamesUrl(leaf, selfUrl)) {
    throw bad(
      `the certificate ${files.certFile} does not name this node's URL ${selfUrl} (its names: ` +
        `${describeCertificateNames(leaf)}); peers would refuse it. It needs the subject ` +
        `alternative name URI:${selfUrl}, or the URL's host as a DNS or IP name ` +
        "(scripts/make-certs.sh makes such certificates)",
    );
  }
  return material;
}

/** Receives the material after each reload that changed it. */
export type PeerTlsListener = (material: PeerTlsMaterial) => void;

/** The current peer TLS material, reloadable. */
export class PeerTls {
  readonly files: PeerTlsFiles;
  private readonly selfUrl: string | undefined;
  private current: PeerTlsMaterial;
  private readonly listeners: PeerTlsListener[] = [];
  private watching = false;
  private debounce: NodeJS.Timeout | undefined;
  private readonly onFileChange = (cur: Stats, prev: Stats): void => {
    if (cur.mtimeMs === prev.mtimeMs && cur.size === prev.size && cur.ino === prev.ino) return;
    clearTimeout(this.debounce);
    // Tools replace the certificate and the key one after the other: wait for both.
    this.debounce = setTimeout(() => {
      try {
        if (this.reload()) this.log.info({}, "peer TLS certificates reloaded (a file changed)");
      } catch (err) {
        this.log.warn(
          {
            error: (err as Error).message,
          },
          "peer TLS files changed but were not loaded; keeping the previous ones",
        );
      }
    }, 300);
    this.debounce.unref();
  };
  private log: {
    info(f: Readonly<Record<string, unknown>>, m?: string): void;
    warn(f: Readonly<Record<string, unknown>>, m: string): void;
  } = { info() {}, warn() {} };

  private constructor(files: PeerTlsFiles, selfUrl: string | undefined, m: PeerTlsMaterial) {
    this.files = files;
    this.selfUrl = selfUrl;
    this.current = m;
  }

  /** Loads and checks the files (see loadPeerTlsMaterial). Throws BAD_CONFIG saying what is wrong. */
  static load(files: PeerTlsFiles, selfUrl?: string): PeerTls {
    return new PeerTls(files, selfUrl, loadPeerTlsMaterial(files, selfUrl));
  }

  /** The material in use now. */
  get material(): PeerTlsMaterial {
    return this.current;
  }

  /** Calls `listener` with the new material after every reload that changed it. */
  onChange(listener: PeerTlsListener): void {
    this.listeners.push(listener);
  }

  /**
   * Reads the files again. Returns whether anything changed (listeners are then called). Throws
   * BAD_CONFIG, keeping the material in use, when the new files do not pass the checks.
   */
  reload(): boolean {
    const next = loadPeerTlsMaterial(this.files, this.selfUrl);
    const same =
      next.cert.equals(this.current.cert) &&
      next.key.equals(this.current.key) &&
      next.ca.equals(this.current.ca);
    if (same) return false;
    this.current = next;
    for (const l of this.listeners) l(next);
    return true;
  }

  /** Reloads whenever one of the files changes (polled every `intervalMs`), until close(). */
  watch(
    intervalMs: number,
    log: {
      info(f: Readonly<Record<string, unknown>>, m?: string): void;
      warn(f: Readonly<Record<string, unknown>>, m: string): void;
    },
  ): void {
    if (this.watching) return;
    this.watching = true;
    this.log = log;
    for (const f of [this.files.certFile, this.files.keyFile, this.files.trustedCaFile]) {
      watchFile(f, { persistent: false, interval: intervalMs }, this.onFileChange);
    }
  }

  /** Stops watching the files. */
  close(): void {
    clearTimeout(this.debounce);
    if (!this.watching) return;
    this.watching = false;
    for (const f of [this.files.certFile, this.files.keyFile, this.files.trustedCaFile]) {
      unwatchFile(f, this.onFileChange);
    }
  }
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
