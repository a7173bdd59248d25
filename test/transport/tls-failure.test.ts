/**
 * isTlsFailure tells TLS failures from socket failures by the error's code: errors raised by real
 * TLS handshakes (an untrusted CA, a client without a certificate) count, a refused connection and
 * plain errors do not. The transport logs "TLS with a peer failed" only for the first kind.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import http2 from "node:http2";
import { readFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { isTlsFailure } from "../../src/transport/peer-tls.js";
import { freePort } from "../free-port.js";
import { TestCa } from "./certs.js";

/** The error a client session gets connecting to `url` with `options`. */
function connectError(url: string, options: http2.SecureClientSessionOptions): Promise<Error> {
  return new Promise((resolve, reject) => {
    const s = http2.connect(url, options);
    s.on("error", (err: Error) => {
      s.destroy();
      resolve(err);
    });
    s.on("connect", () => {
      // The handshake passed: ask for something so that a refused client certificate shows.
      const req = s.request({ ":path": "/" });
      req.on("error", (err: Error) => {
        s.destroy();
        resolve(err);
      });
      req.on("response", () => {
        s.destroy();
        reject(new Error("the request was answered; expected a TLS failure"));
      });
      req.end();
    });
  });
}

describe("isTlsFailure", () => {
  const ca = TestCa.create();
  const other = TestCa.create();

  async function server(): Promise<{ url: string; close: () => void }> {
    const port = await freePort();
    const url = `https://127.0.0.1:${port}`;
    const files = ca.issue(url, { hostSan: true });
    const srv = http2.createSecureServer({
      cert: readFileSync(files.certFile),
      key: readFileSync(files.keyFile),
      ca: readFileSync(files.trustedCaFile),
      requestCert: true,
      rejectUnauthorized: true,
    });
    srv.on("stream", (st) => st.respond({ ":status": 200 }, { endStream: true }));
    srv.on("sessionError", () => undefined);
    await new Promise<void>((r) => srv.listen(port, "127.0.0.1", r));
    return {
      url: `https://127.0.0.1:${(srv.address() as AddressInfo).port}`,
      close: () => srv.close(),
    };
  }

  it("a server certificate from an untrusted CA is a TLS failure", async () => {
    const s = await server();
    try {
      const mine = other.issue("https://127.0.0.1:1", { hostSan: true });
      const err = await connectError(s.url, {
        ca: readFileSync(mine.trustedCaFile),
        cert: readFileSync(mine.certFile),
        key: readFileSync(mine.keyFile),
      });
      assert.equal(isTlsFailure(err), true, `code ${String((err as NodeJS.ErrnoException).code)}`);
    } finally {
      s.close();
    }
  });

  it("a client without a certificate, refused by the server, is a TLS failure", async () => {
    const s = await server();
    try {
      const err = await connectError(s.url, { ca: readFileSync(ca.caFile) });
      assert.equal(isTlsFailure(err), true, `code ${String((err as NodeJS.ErrnoException).code)}`);
    } finally {
      s.close();
    }
  });

  it("a refused connection and errors without a TLS code are not", async () => {
    const port = await freePort();
    const err = await connectError(`https://127.0.0.1:${port}`, { ca: readFileSync(ca.caFile) });
    assert.equal((err as NodeJS.ErrnoException).code, "ECONNREFUSED");
    assert.equal(isTlsFailure(err), false);
    assert.equal(isTlsFailure(new Error("certificate handshake SSL TLS")), false);
    assert.equal(isTlsFailure(undefined), false);
    assert.equal(
      isTlsFailure(Object.assign(new Error("x"), { code: "ERR_HTTP2_STREAM_ERROR" })),
      false,
    );
  });
});
