/**
 * The MySQL password and TLS (issue 16, item 7): the password from NEXUS_MYSQL_PASSWORD or a
 * file, never in a message nor (once started) in the process list; TLS to the server, verifying
 * its certificate and name by default. Against a private MariaDB started here with TLS on, its
 * certificates made by openssl in the test, and users with passwords (one requiring TLS, one a
 * client certificate).
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { isNexusError } from "../../src/errors/index.js";
import { MySqlStore } from "../../src/store/mysql/mysql-store.js";
import type { MySqlStoreOptions } from "../../src/store/mysql/mysql-store.js";
import { readMySqlSecrets } from "../../src/store/mysql/secrets.js";
import { freePort } from "../free-port.js";
import { BIN, repl, run, tempDir } from "../e2e/programs.js";
import { startMariaDb } from "./mariadb-server.js";
import type { MariaDbServer } from "./mariadb-server.js";

const enc = new TextEncoder();
const dec = new TextDecoder();
/** The passwords of the test users: none may appear in a message, a warning or `ps`. */
const PW = "App-Pw-7f3a9c";
const TLS_PW = "Tls-Pw-51d2e8";
const X509_PW = "X509-Pw-0b6c4d";
const SECRETS = [PW, TLS_PW, X509_PW];

const is =
  (code: Parameters<typeof isNexusError>[1], re?: RegExp) =>
  (e: unknown): boolean => {
    assert.ok(isNexusError(e, code), `expected ${code}, got ${String(e)}`);
    if (re !== undefined) assert.match((e as Error).message, re);
    for (const s of SECRETS) assert.ok(!(e as Error).message.includes(s), "a password is shown");
    return true;
  };

const noSecret = (text: string): void => {
  for (const s of SECRETS) assert.ok(!text.includes(s), `a password is shown in: ${text}`);
};

/** Certificates made with openssl: a CA, the server's (naming 127.0.0.1), a client's, another CA. */
interface Pki {
  readonly dir: string;
  readonly ca: string;
  readonly otherCa: string;
  readonly serverCert: string;
  readonly serverKey: string;
  readonly clientCert: string;
  readonly clientKey: string;
}

function makePki(dir: string): Pki {
  const f = (name: string): string => join(dir, name);
  const openssl = (...args: string[]): void => {
    execFileSync("openssl", args, { stdio: ["ignore", "ignore", "pipe"] });
  };
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  const ca = (name: string): void =>
    openssl(
      "req",
      "-x509",
      ...ec,
      "-keyout",
      f(`${name}.key`),
      "-out",
      f(`${name}.pem`),
      "-days",
      "2",
      "-subj",
      `/CN=${name}`,
    );
  const signed = (name: string, san: string | undefined): void => {
    openssl(
      "req",
      ...ec,
      "-keyout",
      f(`${name}.key`),
      "-out",
      f(`${name}.csr`),
      "-subj",
      `/CN=${name}`,
    );
    const ext = f(`${name}.ext`);
    writeFileSync(
      ext,
      san === undefined ? "basicConstraints=CA:FALSE\n" : `subjectAltName=${san}\n`,
    );
    openssl(
      "x509",
      "-req",
      "-in",
      f(`${name}.csr`),
      "-CA",
      f("ca.pem"),
      "-CAkey",
      f("ca.key"),
      "-CAcreateserial",
      "-out",
      f(`${name}.pem`),
      "-days",
      "2",
      "-extfile",
      ext,
    );
  };
  ca("ca");
  ca("other-ca");
  signed("server", "IP:127.0.0.1");
  signed("client", undefined);
  return {
    dir,
    ca: f("ca.pem"),
    otherCa: f("other-ca.pem"),
    serverCert: f("server.pem"),
    serverKey: f("server.key"),
    clientCert: f("client.pem"),
    clientKey: f("client.key"),
  };
}

let srv: MariaDbServer;
let pki: Pki;
let dir: string;

/** A store on the test server as `user` (no password in the string), opened and used once. */
async function roundTrip(
  user: string,
  opts: Omit<MySqlStoreOptions, "url">,
  host = "127.0.0.1",
): Promise<unknown> {
  const s = new MySqlStore({
    url: `${user}@tcp(${host}:${srv.port})/nexus`,
    connectTimeoutMs: 3000,
    ...opts,
  });
  try {
    await s.open();
    const cipher = await s.load({
      data: enc.encode("show session status like 'Ssl_version'"),
      args: {},
    });
    return JSON.parse(dec.decode(cipher));
  } finally {
    await s.close();
  }
}

describe("MySQL secrets and TLS", () => {
  before(async () => {
    dir = tempDir("nexus-mysql-secrets-");
    pki = makePki(dir);
    srv = await startMariaDb({
      serverArgs: [
        `--ssl-ca=${pki.ca}`,
        `--ssl-cert=${pki.serverCert}`,
        `--ssl-key=${pki.serverKey}`,
        // Also on 127.0.0.2, an address the server's certificate does not name.
        "--bind-address=127.0.0.1,127.0.0.2",
      ],
    });
    for (const sql of [
      `CREATE USER 'app'@'%' IDENTIFIED BY '${PW}'`,
      `CREATE USER 'tls'@'%' IDENTIFIED BY '${TLS_PW}' REQUIRE SSL`,
      `CREATE USER 'x509'@'%' IDENTIFIED BY '${X509_PW}' REQUIRE X509`,
      "GRANT ALL ON *.* TO 'app'@'%', 'tls'@'%', 'x509'@'%'",
    ]) {
      await srv.query(sql);
    }
  });

  describe("where the password comes from (readMySqlSecrets)", () => {
    const url = "app@tcp(127.0.0.1:3306)/nexus";
    const file = (name: string, text: string, mode: number): string => {
      const p = join(dir, name);
      writeFileSync(p, text);
      chmodSync(p, mode);
      return p;
    };

    it("a password file (one trailing newline dropped) gives the password; mode 600 warns of nothing", () => {
      const r = readMySqlSecrets({ url, passwordFile: file("pw-600", `${PW}\n`, 0o600) });
      assert.deepEqual(r, { options: { password: PW }, warnings: [] });
    });

    it("a password file every user can read works, with a warning that says how to fix it", () => {
      const p = file("pw-644", PW, 0o644);
      const r = readMySqlSecrets({ url, passwordFile: p });
      assert.equal(r.options.password, PW);
      assert.deepEqual(r.warnings, [
        `the MySQL password file ${p} can be read by every user of this machine (mode 0644); restrict it: chmod 600 ${p}`,
      ]);
    });

    for (const [name, make, why] of [
      [
        "missing",
        () => join(dir, "nope"),
        /cannot read the MySQL password file .*nope \(-mysqlPasswordFile\): ENOENT/,
      ],
      ["a folder", () => dir, /is not a file/],
      ["empty", () => file("pw-empty", "\n", 0o600), /is empty/],
      ["two lines", () => file("pw-2", `${PW}\nmore\n`, 0o600), /more than one line/],
    ] as const) {
      it(`a password file that is ${name} is BAD_CONFIG`, () =>
        assert.throws(
          () => readMySqlSecrets({ url, passwordFile: make() }),
          is("BAD_CONFIG", why),
        ));
    }

    it("NEXUS_MYSQL_PASSWORD gives the password; the file wins over it; either wins over the string's, with a warning", () => {
      assert.deepEqual(readMySqlSecrets({ url, envPassword: PW }), {
        options: { password: PW },
        warnings: [],
      });
      assert.deepEqual(readMySqlSecrets({ url, envPassword: "" }), { options: {}, warnings: [] });
      const both = readMySqlSecrets({
        url,
        envPassword: "x",
        passwordFile: file("pw-b", PW, 0o600),
      });
      assert.equal(both.options.password, PW);
      assert.deepEqual(both.warnings, [
        "NEXUS_MYSQL_PASSWORD is ignored: -mysqlPasswordFile gives the password",
      ]);
      const over = readMySqlSecrets({ url: `app:${TLS_PW}@tcp(h:1)/db`, envPassword: PW });
      assert.equal(over.options.password, PW);
      assert.deepEqual(over.warnings, [
        "the password in the connection string is ignored: NEXUS_MYSQL_PASSWORD gives it",
      ]);
      const inUrl = readMySqlSecrets({ url: `app:${TLS_PW}@tcp(h:1)/db` });
      assert.deepEqual(inUrl.options, {});
      assert.match(
        inUrl.warnings[0] ?? "",
        /holds a password, which other users of this machine can read in the process list/,
      );
      for (const w of [...both.warnings, ...over.warnings, ...inUrl.warnings]) noSecret(w);
    });

    it("TLS files are read and checked: a certificate needs its key, PEM that is not PEM is BAD_CONFIG", () => {
      const r = readMySqlSecrets({
        url,
        tlsCaFile: pki.ca,
        tlsCertFile: pki.clientCert,
        tlsKeyFile: pki.clientKey,
      });
      assert.deepEqual(r.options.tls, {
        ca: readFileSync(pki.ca),
        cert: readFileSync(pki.clientCert),
        key: readFileSync(pki.clientKey),
      });
      assert.deepEqual(readMySqlSecrets({ url, tls: true }).options, { tls: {} });
      assert.throws(
        () => readMySqlSecrets({ url, tlsCertFile: pki.clientCert }),
        is("BAD_CONFIG", /go together/),
      );
      const junk = file("junk.pem", "not a certificate", 0o600);
      assert.throws(
        () => readMySqlSecrets({ url, tlsCaFile: junk }),
        is("BAD_CONFIG", /-mysqlTlsCa\) is not a PEM certificate/),
      );
      assert.throws(
        () => readMySqlSecrets({ url, tlsCertFile: pki.clientCert, tlsKeyFile: junk }),
        is("BAD_CONFIG", /-mysqlTlsKey\) is not an unencrypted PEM private key/),
      );
    });
  });

  describe("against MariaDB", () => {
    it("a user with a password: the password option logs in; none or a wrong one is a login refusal that does not show it", async () => {
      assert.deepEqual(await roundTrip("app", { password: PW }), [
        { Variable_name: "Ssl_version", Value: "" },
      ]);
      await assert.rejects(
        roundTrip("app", {}),
        is("BAD_CONFIG", /refused the login: Access denied for user 'app'/),
      );
      await assert.rejects(
        roundTrip("app", { password: TLS_PW }),
        is("BAD_CONFIG", /refused the login/),
      );
    });

    it("TLS with the CA: the connection is encrypted and the server verified; a user that requires TLS is refused without it", async () => {
      const [status] = (await roundTrip("tls", {
        password: TLS_PW,
        tls: { ca: readFileSync(pki.ca) },
      })) as { Value: string }[];
      assert.match(status?.Value ?? "", /^TLSv1\.[23]$/);
      await assert.rejects(
        roundTrip("tls", { password: TLS_PW }),
        is("BAD_CONFIG", /refused the login.*requires TLS needs the TLS options/),
      );
    });

    it("the server is verified by default: a certificate from another CA, or not naming the host, is refused as BAD_CONFIG", async () => {
      await assert.rejects(
        roundTrip("tls", { password: TLS_PW, tls: { ca: readFileSync(pki.otherCa) } }),
        is("BAD_CONFIG", /the TLS connection to MySQL at 127\.0\.0\.1:\d+ .*failed/),
      );
      await assert.rejects(
        roundTrip("tls", { password: TLS_PW, tls: {} }),
        is("BAD_CONFIG", /TLS connection/),
      );
      await assert.rejects(
        roundTrip("tls", { password: TLS_PW, tls: { ca: readFileSync(pki.ca) } }, "127.0.0.2"),
        is(
          "BAD_CONFIG",
          /TLS connection to MySQL at 127\.0\.0\.2.*(IP: 127\.0\.0\.2 is not in the cert's list|altname)/i,
        ),
      );
      // Asked for explicitly, TLS without verification still encrypts.
      const [status] = (await roundTrip("tls", {
        password: TLS_PW,
        tls: { verifyServer: false },
      })) as { Value: string }[];
      assert.match(status?.Value ?? "", /^TLSv1\.[23]$/);
    });

    it("the connection string's tls=true turns TLS on (with the CA given apart), tls=skip-verify without checking", async () => {
      const s = new MySqlStore({
        url: `tls@tcp(127.0.0.1:${srv.port})/nexus?tls=true`,
        password: TLS_PW,
      });
      await assert.rejects(s.open(), is("BAD_CONFIG", /TLS connection/));
      await s.close();
      const k = new MySqlStore({
        url: `tls@tcp(127.0.0.1:${srv.port})/nexus?tls=skip-verify`,
        password: TLS_PW,
      });
      try {
        await k.open();
      } finally {
        await k.close();
      }
    });

    it("a user that requires a client certificate logs in with -mysqlTlsCert/-mysqlTlsKey, not without", async () => {
      const tls = readMySqlSecrets({
        url: "x509@tcp(h:1)/nexus",
        tlsCaFile: pki.ca,
        tlsCertFile: pki.clientCert,
        tlsKeyFile: pki.clientKey,
      }).options.tls!;
      const [status] = (await roundTrip("x509", { password: X509_PW, tls })) as { Value: string }[];
      assert.match(status?.Value ?? "", /^TLSv1\.[23]$/);
      await assert.rejects(
        roundTrip("x509", { password: X509_PW, tls: { ca: readFileSync(pki.ca) } }),
        is("BAD_CONFIG", /refused the login/),
      );
    });
  });

  describe("bin/mysql_repl", () => {
    const children = new Set<ChildProcess>();
    after(() => {
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    });

    /** Starts a one-node mysql_repl; resolves when it serves, with its process and stderr. */
    async function startNode(
      storeFlags: readonly string[],
      env: Record<string, string> = {},
    ): Promise<{ p: ChildProcess; addr: string; stderr: () => string }> {
      const raft = await freePort();
      const grpc = await freePort();
      const nodeDir = join(dir, `node-${raft}`);
      mkdirSync(nodeDir);
      const url = `http://127.0.0.1:${raft}`;
      const p = spawn(
        process.execPath,
        [
          BIN("mysql_repl"),
          "-nexus-cluster-url",
          url,
          "-nexus-node-url",
          url,
          "-grpcPort",
          String(grpc),
          "-grpcHost",
          "127.0.0.1",
          `-nexus-log-dir=${join(nodeDir, "logs")}`,
          `-nexus-snap-dir=${join(nodeDir, "snap")}`,
          "-nexus-heartbeat-ms=50",
          "-nexus-election-ms=500",
          "-log-level=warn",
          ...storeFlags,
        ],
        { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } },
      );
      children.add(p);
      let stdout = "";
      let stderr = "";
      p.stderr!.on("data", (b: Buffer) => (stderr += b.toString()));
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`mysql_repl did not start in 60 s:\n${stderr}`)),
          60_000,
        );
        p.stdout!.on("data", (b: Buffer) => {
          stdout += b.toString();
          if (stdout.includes("serving gRPC")) {
            clearTimeout(timer);
            resolve();
          }
        });
        p.once("exit", (code) => {
          clearTimeout(timer);
          reject(new Error(`mysql_repl exited with ${String(code)}:\n${stderr}`));
        });
      });
      return { p, addr: `127.0.0.1:${grpc}`, stderr: () => stderr };
    }

    const cmdline = (p: ChildProcess): string =>
      readFileSync(`/proc/${p.pid}/cmdline`, "utf8").replaceAll("\0", " ");

    it("NEXUS_MYSQL_PASSWORD and the -mysqlTls* flags: a TLS user with a password serves saves and loads; the password is in no argument", async () => {
      const db = "n_env";
      await srv.query(`CREATE DATABASE ${db}`);
      const n = await startNode(
        ["-mysqlConnUrl", `tls@tcp(127.0.0.1:${srv.port})/${db}`, "-mysqlTlsCa", pki.ca],
        { NEXUS_MYSQL_PASSWORD: TLS_PW },
      );
      const created = await repl(
        n.addr,
        "mysql",
        "save",
        "create table kv (k varchar(9) primary key, v int)",
      );
      assert.equal(
        created.stdout,
        `Response from MySQL (without quotes): '{"rowsAffected":0,"lastInsertId":0}'\n`,
        created.stderr,
      );
      const saved = await repl(n.addr, "mysql", "save", "insert into kv values ('a', 1)");
      assert.equal(saved.code, 0, saved.stderr);
      const loaded = await repl(n.addr, "mysql", "load", "show session status like 'Ssl_version'");
      assert.match(loaded.stdout, /TLSv1\.[23]/);
      assert.deepEqual(await srv.query("select k, v from kv", db), [{ k: "a", v: 1 }]);
      noSecret(cmdline(n.p));
      noSecret(n.stderr());
      n.p.kill("SIGTERM");
    });

    it("a password in -mysqlConnUrl works, with a warning, and is masked in the process list once the node has started", async () => {
      const db = "n_url";
      await srv.query(`CREATE DATABASE ${db}`);
      const n = await startNode(["-mysqlConnUrl", `app:${PW}@tcp(127.0.0.1:${srv.port})/${db}`]);
      const line = cmdline(n.p);
      assert.match(
        line,
        new RegExp(`-mysqlConnUrl app:\\*\\*\\*@tcp\\(127\\.0\\.0\\.1:${srv.port}\\)/${db}`),
      );
      noSecret(line);
      assert.match(
        n.stderr(),
        /warning: the connection string holds a password, which other users/,
      );
      noSecret(n.stderr());
      n.p.kill("SIGTERM");
    });

    it("a password file readable by everyone: the node serves and warns", async () => {
      const db = "n_file";
      await srv.query(`CREATE DATABASE ${db}`);
      const pw = join(dir, "mysql-password");
      writeFileSync(pw, `${PW}\n`);
      chmodSync(pw, 0o644);
      const n = await startNode([
        "-mysqlConnUrl",
        `app@tcp(127.0.0.1:${srv.port})/${db}`,
        "-mysqlPasswordFile",
        pw,
      ]);
      assert.match(
        n.stderr(),
        /warning: the MySQL password file .* can be read by every user of this machine \(mode 0644\); restrict it: chmod 600/,
      );
      noSecret(n.stderr());
      n.p.kill("SIGTERM");
    });

    it("a bad connection string with a password is refused with a message that does not show the password", async () => {
      const r = await run("mysql_repl", [
        "-mysqlConnUrl",
        `root:${PW}@tcp(127.0.0.1:99999)/nexus`,
        "-nexus-cluster-url=http://127.0.0.1:1",
        "-nexus-node-url=http://127.0.0.1:1",
        "-grpcPort=1",
      ]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(
        r.stderr,
        /MySQL connection string "root:\*\*\*@tcp\(127\.0\.0\.1:99999\)\/nexus": port "99999" is not 1-65535/,
      );
      noSecret(r.stderr + r.stdout);
    });
  });
});
