/**
 * The security flags of the programs: the gRPC bind default, the TLS and auth flags' pairing
 * rules, the client's -cert/-key/-token, and `nexus auth` making auth file lines.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { parseFlags, FlagError } from "../../src/cli/flags.js";
import { NODE_FLAGS, nodeConfigOf } from "../../src/cli/node-flags.js";
import { isLoopback } from "../../src/cli/serve.js";
import { CLIENT_SECURITY_FLAGS, clientSecurityOf } from "../../src/cli/client-security-flags.js";
import { runAuth } from "../../src/cli/auth-command.js";
import { hashToken, parseAuthFile } from "../../src/security/auth.js";

const BASE = [
  "-nexus-node-url",
  "http://127.0.0.1:9021",
  "-nexus-cluster-url",
  "http://127.0.0.1:9021",
  "-grpcPort",
  "9121",
];
const cfg = (extra: string[]) => nodeConfigOf(parseFlags([...BASE, ...extra], NODE_FLAGS));

describe("node security flags", () => {
  it("the gRPC service binds 127.0.0.1 unless -grpcHost says otherwise", () => {
    assert.equal(cfg([]).grpcHost, "127.0.0.1");
    assert.equal(cfg(["-grpcHost", "0.0.0.0"]).grpcHost, "0.0.0.0");
    assert.ok(
      isLoopback("127.0.0.1") &&
        isLoopback("::1") &&
        isLoopback("[::1]") &&
        isLoopback("localhost"),
    );
    assert.ok(!isLoopback("0.0.0.0") && !isLoopback("10.0.0.1") && !isLoopback("::"));
  });

  it("gRPC TLS needs a certificate and a key; a trusted CA only with them", () => {
    assert.deepEqual(cfg(["-grpc-cert-file", "c.pem", "-grpc-key-file", "k.pem"]).grpcTls, {
      certFile: "c.pem",
      keyFile: "k.pem",
    });
    assert.equal(
      cfg(["-grpc-cert-file", "c", "-grpc-key-file", "k", "-grpc-trusted-ca-file", "ca"]).grpcTls
        ?.trustedCaFile,
      "ca",
    );
    assert.throws(() => cfg(["-grpc-cert-file", "c.pem"]), FlagError);
    assert.throws(() => cfg(["-grpc-trusted-ca-file", "ca.pem"]), FlagError);
    assert.equal(cfg(["-auth-file", "auth.txt"]).authFile, "auth.txt");
    assert.equal(cfg([]).authFile, undefined);
  });

  it("client flags: -cert needs -key; the token comes from -token or NEXUS_TOKEN", () => {
    const p = (a: string[]) => parseFlags(a, CLIENT_SECURITY_FLAGS);
    assert.throws(() => clientSecurityOf(p(["-cert", "c.pem"]), {}), FlagError);
    assert.throws(() => clientSecurityOf(p(["-cacert", "/nonexistent/ca.pem"]), {}), /cacert/);
    assert.deepEqual(clientSecurityOf(p([]), { NEXUS_TOKEN: "t1" }), { token: "t1" });
    assert.deepEqual(clientSecurityOf(p(["-token", "t2"]), { NEXUS_TOKEN: "t1" }), { token: "t2" });
    assert.deepEqual(clientSecurityOf(p([]), {}), {});
  });
});

describe("nexus auth", () => {
  const io = () => {
    const o = { out: "", err: "" };
    return {
      o,
      io: { out: (s: string) => void (o.out += s), err: (s: string) => void (o.err += s) },
    };
  };

  it("new-token prints a token on stderr and its auth file line on stdout", async () => {
    const { o, io: i } = io();
    assert.equal(await runAuth(["new-token", "ops", "read,write,admin"], i), 0);
    const token = /: (\S+)\n$/.exec(o.err)![1]!;
    assert.equal(o.out, `ops ${hashToken(token)} read,write,admin\n`);
    assert.equal(parseAuthFile(o.out, "x")[0]!.name, "ops");
  });

  it("hash-token reads the token from stdin; wrong permissions are refused", async () => {
    const { o, io: i } = io();
    assert.equal(await runAuth(["hash-token", "ci", "write"], i, async () => "my-token\n"), 0);
    assert.equal(o.out, `ci ${hashToken("my-token")} write\n`);
    const bad = io();
    assert.equal(await runAuth(["hash-token", "ci", "root"], bad.io, async () => "t"), 2);
    assert.match(bad.o.err, /unknown permission "root"/);
  });
});
