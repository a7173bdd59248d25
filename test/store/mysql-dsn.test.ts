/**
 * The MySQL connection-string parser (src/store/mysql/dsn.ts): both forms, the errors that say
 * what is wrong without ever showing the password, redaction, and the `tls` parameter.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { isNexusError } from "../../src/errors/index.js";
import { parseMySqlDsn, redactMySqlDsn } from "../../src/store/mysql/dsn.js";
import { MySqlStore } from "../../src/store/mysql/mysql-store.js";

const is =
  (code: Parameters<typeof isNexusError>[1], re?: RegExp) =>
  (e: unknown): boolean => {
    assert.ok(isNexusError(e, code), `expected ${code}, got ${String(e)}`);
    if (re !== undefined) assert.match((e as Error).message, re);
    return true;
  };

describe("MySQL connection strings", () => {
  for (const c of [
    {
      s: "root:root@tcp(127.0.0.1:33061)/nexus?autocommit=false",
      want: { host: "127.0.0.1", port: 33061, user: "root", password: "root", database: "nexus" },
    },
    {
      s: "app@tcp(db.local:3307)/x",
      want: { host: "db.local", port: 3307, user: "app", password: "", database: "x" },
    },
    {
      s: "u:p@ss/w0rd@tcp(10.1.2.3)/shop?parseTime=true&loc=UTC",
      want: { host: "10.1.2.3", port: 3306, user: "u", password: "p@ss/w0rd", database: "shop" },
    },
    {
      s: "/nexus",
      want: { host: "127.0.0.1", port: 3306, user: "root", password: "", database: "nexus" },
    },
    {
      s: "tcp([::1]:3310)/nexus",
      want: { host: "::1", port: 3310, user: "root", password: "", database: "nexus" },
    },
    {
      s: "mysql://u:p%40ss@10.0.0.1/nexus",
      want: { host: "10.0.0.1", port: 3306, user: "u", password: "p@ss", database: "nexus" },
    },
    {
      s: "mysql://127.0.0.1:3399/n%C3%A9",
      want: { host: "127.0.0.1", port: 3399, user: "root", password: "", database: "né" },
    },
  ]) {
    it(`parses ${c.s}`, () => assert.deepEqual(parseMySqlDsn(c.s), c.want));
  }
  for (const [s, why] of [
    ["", /empty/],
    ["root@tcp(127.0.0.1:99999)/nexus", /port "99999"/],
    ["root@tcp(127.0.0.1:3306)", /no \/database/],
    ["root@tcp(127.0.0.1:3306)/", /names no database/],
    ["mysql://host:3306/", /names no database/],
    ["mysql://h/a/b", /exactly one database/],
    ["postgres://h/db", /mysql:\/\//],
    ["root@unix(/tmp/s)/db", /unix sockets/],
    ["root@udp(h:1)/db", /not tcp/],
    ["root@tcp(h:1/db", /not tcp\(host:port\)/],
    ["root@tcp(h:1)/db?autocommit", /"autocommit" is not key=value/],
    ["nonsense", /no \/database/],
  ] as const) {
    it(`refuses "${s}" saying why, with an example`, () => {
      assert.throws(() => parseMySqlDsn(s), is("BAD_CONFIG", why));
      assert.throws(() => parseMySqlDsn(s), /e\.g\. "root:root@tcp\(127\.0\.0\.1:3306\)\/nexus/);
    });
  }
  it("the store refuses a bad connection string at construction", () =>
    assert.throws(() => new MySqlStore({ url: "root@tcp(h:0)/x" }), is("BAD_CONFIG")));

  describe("passwords never appear in a message", () => {
    const PW = "Sup3r-S3cret";
    for (const [s, why] of [
      [`root:${PW}@tcp(127.0.0.1:99999)/nexus`, /port "99999" is not 1-65535/],
      [`root:${PW}@tcp(127.0.0.1:3306)`, /no \/database/],
      [`root:${PW}@tcp(127.0.0.1:3306)/`, /names no database/],
      [`root:${PW}@udp(h:1)/db`, /network "udp" is not tcp/],
      [`root:${PW}@tcp(h:1/db`, /not tcp\(host:port\)/],
      [`root:${PW}@tcp(h:1)/db?autocommit`, /parameter "autocommit" is not key=value/],
      [`root:${PW}@tcp(h:1)/db?tls=preferred`, /tls=preferred would fall back/],
      [`root:${PW}@tcp(h:1)/db?tls=custom`, /tls=custom names a TLS configuration/],
      // No `@`: the password is mistyped, yet hidden.
      [`root:${PW}`, /no \/database/],
      [`root:${PW}tcp(h)/db`, /"root:\*\*\*" is not tcp\(host:port\)/],
      // A password holding `/` whose string lost its database: the parser splits it.
      [`root:ab/${PW}@tcp(h:1)`, /is not tcp\(host:port\)/],
      [`mysql://root:${PW}@h:0/db`, /port is not 1-65535/],
      [`mysql://root:${PW}@h/`, /names no database/],
      [`mysql://root:${PW}@[::1/db`, /not a valid URL/],
      [`mysql://root:${PW}@h/db?tls=x`, /tls=<name> names a TLS configuration/],
      [`postgres://root:${PW}@h/db`, /mysql:\/\//],
      [`root@tcp(h:1)/db?password=${PW}&x`, /parameter "x" is not key=value/],
    ] as const) {
      it(`"${s}": ${String(why)}, the password hidden`, () => {
        assert.throws(() => parseMySqlDsn(s), is("BAD_CONFIG", why));
        assert.throws(
          () => parseMySqlDsn(s),
          (e: Error) => !e.message.includes(PW) && !e.message.includes("S3cret"),
        );
      });
    }

    // Found by the fuzz tests (seed 482611357, input 691): malformed percent-encoding in a URL's
    // user or password threw a URIError (not a NexusError) from decodeURIComponent.
    for (const s of ["MYSQL://D-S3cretu:Pw%C30rD-@host/db", "mysql://%zz:pw@h/db"]) {
      it(`a URL with malformed percent-encoding in its credentials is BAD_CONFIG, not a crash: ${s}`, () =>
        assert.throws(() => parseMySqlDsn(s), is("BAD_CONFIG", /is not valid percent-encoding/)));
    }

    for (const [s, want] of [
      ["root:pw@tcp(h:1)/db", "root:***@tcp(h:1)/db"],
      ["root:p@ss/w0rd@tcp(h:1)/db", "root:***@tcp(h:1)/db"],
      ["root@tcp(h:1)/db", "root@tcp(h:1)/db"],
      ["tcp(h:3306)/db", "tcp(h:3306)/db"],
      ["root:secret", "root:***"],
      ["mysql://u:p%40ss@h:3306/db", "mysql://u:***@h:3306/db"],
      ["mysql://h:3306/db", "mysql://h:3306/db"],
      ["mysql://u:pw@h/db?password=x&tls=true", "mysql://u:***@h/db?password=***&tls=true"],
    ] as const) {
      it(`redactMySqlDsn("${s}") is "${want}"`, () => assert.equal(redactMySqlDsn(s), want));
    }
  });

  describe("the tls parameter", () => {
    for (const [s, want] of [
      ["root@tcp(h:1)/db?tls=true", "verify"],
      ["root@tcp(h:1)/db?autocommit=false&TLS=Skip-Verify", "skip-verify"],
      ["root@tcp(h:1)/db?tls=false", undefined],
      ["root@tcp(h:1)/db", undefined],
      ["mysql://root@h/db?tls=true", "verify"],
      ["mysql://root@h/db?tls=skip-verify", "skip-verify"],
    ] as const) {
      it(`${s} → ${String(want)}`, () => assert.equal(parseMySqlDsn(s).tls, want));
    }
  });
});
