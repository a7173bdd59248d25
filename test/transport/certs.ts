/**
 * Certificates for tests, made by scripts/make-certs.sh with openssl in a temporary folder: a CA,
 * and node certificates naming the URLs asked for (so the script is tested too). Removed after
 * the test file.
 */
import { after } from "node:test";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const SCRIPT = join(import.meta.dirname, "../../scripts/make-certs.sh");

/** A node certificate's files. */
export interface CertFiles {
  readonly certFile: string;
  readonly keyFile: string;
  readonly trustedCaFile: string;
}

/** A CA in a temporary folder, issuing node certificates. */
export class TestCa {
  readonly dir: string;

  private constructor(dir: string) {
    this.dir = dir;
  }

  /** A new CA (made with the first certificate issued). */
  static create(): TestCa {
    const dir = mkdtempSync(join(tmpdir(), "nexus-certs-"));
    after(() => rmSync(dir, { recursive: true, force: true }));
    return new TestCa(dir);
  }

  get caFile(): string {
    return join(this.dir, "ca.pem");
  }

  /** A certificate naming `url` (a URI SAN; with `hostSan` its host too), signed by this CA. */
  issue(url: string, opts: { hostSan?: boolean } = {}): CertFiles {
    execFileSync(
      "bash",
      [SCRIPT, "-d", this.dir, ...(opts.hostSan === true ? ["--host-san"] : []), url],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    const m = /^https:\/\/\[?([^\]]+?)\]?:(\d+)$/.exec(url);
    if (m === null) throw new Error(`not an https node URL: ${url}`);
    const name = `node-${m[1]!.replace(/:/g, "_")}-${m[2]}`;
    return {
      certFile: join(this.dir, `${name}.pem`),
      keyFile: join(this.dir, `${name}-key.pem`),
      trustedCaFile: this.caFile,
    };
  }
}
