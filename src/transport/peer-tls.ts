/**
 * The TLS material of a node's peer connections (mutual TLS): its certificate and key, used both
 * as server and as client, and the CA certificates that peers' certificates must be signed by.
 * Loaded from files and checked at once (a clear BAD_CONFIG at startup rather than refused
 * handshakes later); reloaded on demand (SIGHUP) or when a file changes, keeping the old material
 * when the new files do not pass the same checks.
 */
import { ReloadableTls, loadTlsMaterial } from "../security/tls.js";
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

/**
 * Reads and checks the material (src/security/tls.ts): the files parse, the key matches the
 * certificate, the certificate is valid now, may act as TLS server and client, is signed by one
 * of the trusted CAs, and names `selfUrl` (when given) as peers will require.
 */
export function loadPeerTlsMaterial(files: PeerTlsFiles, selfUrl?: string): PeerTlsMaterial {
  const m = loadTlsMaterial(files, {
    subject: "peer TLS",
    flags: { cert: "-peer-cert-file", key: "-peer-key-file", ca: "-peer-trusted-ca-file" },
    eku: {
      serverAuth: true,
      clientAuth: true,
      why:
        "must allow both TLS server and TLS client use " +
        "(extendedKeyUsage serverAuth,clientAuth): a node is both to its peers",
    },
    signedByTrustedCa: true,
    checkLeaf: (leaf, certFile) =>
      selfUrl === undefined || certificateNamesUrl(leaf, selfUrl)
        ? undefined
        : `the certificate ${certFile} does not name this node's URL ${selfUrl} (its names: ` +
          `${describeCertificateNames(leaf)}); peers would refuse it. It needs the subject ` +
          `alternative name URI:${selfUrl}, or the URL's host as a DNS or IP name ` +
          "(scripts/make-certs.sh makes such certificates)",
  });
  return { cert: m.cert, key: m.key, ca: m.ca! };
}

/** Receives the material after each reload that changed it. */
export type PeerTlsListener = (material: PeerTlsMaterial) => void;

/** The current peer TLS material, reloadable (on SIGHUP, or when a watched file changes). */
export class PeerTls extends ReloadableTls<PeerTlsMaterial> {
  declare readonly files: PeerTlsFiles;

  /** Loads and checks the files (see loadPeerTlsMaterial). Throws BAD_CONFIG saying what is wrong. */
  static load(files: PeerTlsFiles, selfUrl?: string): PeerTls {
    return new PeerTls(files, "peer TLS", () => loadPeerTlsMaterial(files, selfUrl));
  }
}

/** Whether a connection error came from TLS (decided by its code; src/security/tls.ts). */
export { isTlsFailure } from "../security/tls.js";
