/**
 * The Redis store's sandbox (issue 16: the Redis attacks, items 4, 5 and 7): a snippet cannot
 * leave its database (the metadata one least of all), escape the wrapper, reach the wrapper's
 * state, or run for ever; loads run read-only in the same sandbox; the connection can be
 * authenticated and encrypted without the password ever showing.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { RedisStore } from "../../src/store/redis/redis-store.js";
import { instrumentLua, LuaRefusal } from "../../src/store/redis/lua-instrument.js";
import type { ApplyEntry, ApplyResult } from "../../src/store/store.js";
import { isNexusError } from "../../src/errors/index.js";
import { digestOf } from "./conformance.js";
import { startRedis } from "./redis-server.js";
import type { RedisServer } from "./redis-server.js";

const enc = new TextEncoder();
const dec = new TextDecoder();

function entry(index: number, lua: string, db = "2", seed = 7): ApplyEntry {
  return {
    index,
    term: 1,
    command: { data: enc.encode(lua), args: { "db.index": db } },
    timestampMs: 1_700_000_000_000,
    seed,
  };
}

const text = (r: ApplyResult | undefined): string =>
  r !== undefined && r.ok ? dec.decode(r.data) : assert.fail(`entry failed: ${JSON.stringify(r)}`);
const errorOf = (r: ApplyResult | undefined): string =>
  r !== undefined && !r.ok ? r.error : assert.fail(`expected an error, got ${JSON.stringify(r)}`);

/** A store on a server of its own (tests look at the metadata database). */
async function fresh(
  opts: { applyStepBudget?: number } = {},
): Promise<{ store: RedisStore; srv: RedisServer }> {
  const srv = await startRedis({ appendonly: false });
  return { store: new RedisStore({ port: srv.port, ...opts }), srv };
}

async function metadata(srv: RedisServer): Promise<Record<string, string>> {
  const c = new Redis({ port: srv.port, db: 13, lazyConnect: true, maxRetriesPerRequest: 0 });
  await c.connect();
  try {
    const keys = await c.keys("*");
    assert.deepEqual(keys, ["nexus:applied"], "nothing but the applied index in db 13");
    return await c.hgetall("nexus:applied");
  } finally {
    c.disconnect();
  }
}

async function load(s: RedisStore, lua: string, db = "2"): Promise<string> {
  return dec.decode(await s.load({ data: enc.encode(lua), args: { "db.index": db } }));
}

describe("RedisStore sandbox: a snippet stays in its database", () => {
  it("SELECT, SWAPDB, MOVE, COPY ... DB, MIGRATE and FLUSHALL are refused, in any spelling, through call and pcall", async () => {
    const { store: s, srv } = await fresh();
    await s.open();
    try {
      const attacks = [
        "redis.call('SELECT', 13) return redis.call('hset', 'nexus:applied', 'index', '999')",
        "redis.call('select', '13') return redis.call('del', 'nexus:applied')",
        "local c = 'sel' .. 'ect' redis.call(c, 13) return redis.call('flushdb')",
        "return redis.call('SwApDb', 2, 13)",
        "redis.call('set', 'k', 'v') return redis.call('move', 'k', 13)",
        "redis.call('set', 'k', 'v') return redis.call('copy', 'k', 'nexus:applied', 'db', 13, 'replace')",
        "return redis.call('migrate', '127.0.0.1', 1, 'k', 13, 1000)",
        "return redis.call('flushall')",
        "return redis.call('config', 'set', 'appendonly', 'no')",
        "return redis.call('script', 'flush')",
      ];
      const r = await s.apply(attacks.map((lua, i) => entry(i + 1, lua)));
      for (const [i, x] of r.entries()) {
        assert.match(errorOf(x), /is not allowed in a Nexus script/, attacks[i]);
      }
      const viaPcall = await s.apply([
        entry(20, "local r = redis.pcall('select', 13) return r.err"),
      ]);
      assert.match(text(viaPcall[0]), /SELECT is not allowed/);
      // The applied index is Nexus's own, and db 2's key is where it was written.
      assert.deepEqual(await metadata(srv), { index: "20", term: "1" });
      assert.equal(await load(s, "return redis.call('get', 'k')"), "v");
      // COPY within the database is fine.
      assert.equal(
        text((await s.apply([entry(21, "return redis.call('copy', 'k', 'k2')")]))[0]),
        "1",
      );
    } finally {
      await s.close();
    }
  });

  it("loads cannot read the metadata database nor write", async () => {
    const { store: s } = await fresh();
    await s.open();
    try {
      await s.apply([entry(1, "return redis.call('set', 'k', 'v')")]);
      await assert.rejects(
        load(s, "redis.call('select', 13) return redis.call('hgetall', 'nexus:applied')"),
        (e: unknown) =>
          isNexusError(e, "STORE_ERROR") && /SELECT is not allowed/.test((e as Error).message),
      );
      await assert.rejects(load(s, "return redis.call('set', 'k', 'changed')"), (e: unknown) =>
        isNexusError(e, "STORE_ERROR"),
      );
      await assert.rejects(
        load(s, "x", "13"),
        (e: unknown) =>
          isNexusError(e, "STORE_ERROR") && /metadata database/.test((e as Error).message),
      );
      assert.equal(await load(s, "return redis.call('get', 'k')"), "v");
    } finally {
      await s.close();
    }
  });
});

describe("RedisStore sandbox: a snippet cannot escape the wrapper", () => {
  it("text that would close the old wrapper is a syntax error; the metadata stays Nexus's", async () => {
    const { store: s, srv } = await fresh();
    await s.open();
    try {
      const r = await s.apply([
        entry(
          1,
          "end redis.call('select', 13) redis.call('hset', 'nexus:applied', 'index', 999) local x = function()",
        ),
        entry(2, "return 1 end\nredis.call('select', 13)\nlocal function y()"),
        entry(3, "]] redis.call('select', 13) --[["),
        entry(4, "return 'fine -- end) redis.call(\"select\", 13)'"),
      ]);
      for (const i of [0, 1, 2]) assert.match(errorOf(r[i]), /Error compiling script/);
      assert.equal(text(r[3]), 'fine -- end) redis.call("select", 13)');
      assert.deepEqual(await metadata(srv), { index: "4", term: "1" });
    } finally {
      await s.close();
    }
  });

  it("the wrapper's state and Redis's globals are out of reach", async () => {
    const { store: s, srv } = await fresh({ applyStepBudget: 10_000 });
    await s.open();
    try {
      const refusedNames = [
        "__nexus_step = function() end while true do end",
        "local __nexus_G = {} return 1",
        "local function f(__nexus_step) end return 1",
      ];
      const missing = [
        "return loadstring('return 1')",
        "return load(function() return nil end)",
        "return getfenv(1)",
        "return setfenv(1, {})",
        "return debug.sethook",
        "return collectgarbage('count')",
        "return os.time()",
      ];
      const r = await s.apply([
        ...refusedNames.map((lua, i) => entry(i + 1, lua)),
        ...missing.map((lua, i) => entry(i + 10, lua)),
        // The environment is the snippet's own: writing into it changes nothing of the wrapper's.
        entry(
          20,
          "rawset(_G, '__nexus_step', function() end) rawset(_G, 'redis', {}) while true do end",
        ),
        entry(21, "return getmetatable('')"),
        entry(22, "setmetatable(_G, nil)"),
        entry(23, "string.lower = function() return 'get' end return redis.call('SELECT', 13)"),
        entry(
          24,
          "return tostring(redis.set_repl) .. tostring(redis.setresp) .. tostring(redis.REDIS_VERSION)",
        ),
      ]);
      for (const i of [0, 1, 2]) assert.match(errorOf(r[i]), /reserved for Nexus/);
      for (let i = 3; i < 3 + missing.length; i++) {
        assert.match(errorOf(r[i]), /nonexistent global variable/, missing[i - 3]);
      }
      const tail = r.slice(3 + missing.length);
      assert.match(errorOf(tail[0]), /apply budget exceeded/);
      assert.equal(text(tail[1]), "");
      assert.match(errorOf(tail[2]), /protected metatable/);
      assert.match(errorOf(tail[3]), /SELECT is not allowed/);
      assert.equal(text(tail[4]), "nilnilnil");
      // Later scripts see Redis's libraries unchanged.
      assert.equal(text((await s.apply([entry(25, "return string.lower('ABC')")]))[0]), "abc");
      assert.deepEqual(await metadata(srv), { index: "25", term: "1" });
    } finally {
      await s.close();
    }
  });

  it("what a snippet means is kept: line numbers, multiple values, parentheses, methods, varargs", async () => {
    const { store: s } = await fresh();
    await s.open();
    try {
      const r = await s.apply([
        entry(1, "local x = 1\n\nerror('boom on three')"),
        entry(2, "local function f() return 1, 2 end return {(f())}"),
        entry(3, "local function f() return 1, 2 end return {f()}"),
        entry(4, "local function f(...) return select('#', ...) end return f(1, nil, 3)"),
        entry(
          5,
          "local t = {n = 0} function t:add(k) self.n = self.n + k return self end return t:add(2):add(3).n",
        ),
        entry(6, "return ('ab'):rep(3) .. #'xyz' .. -(-2) .. 2^3^2"),
        entry(7, "local s = '\\0\\255\\n\"' return #s .. ':' .. s:byte(2)"),
        entry(8, "local a = 0 repeat local b = a a = a + 1 until b >= 2 return a"),
        entry(
          9,
          "local n = 0 for k, v in pairs({a = 1, b = 2}) do n = n + v end for i = 10, 1, -3 do n = n + i end return n",
        ),
        entry(10, "return #KEYS + #ARGV"),
      ]);
      assert.match(errorOf(r[0]), /user_script:3: boom on three/);
      assert.equal(text(r[1]), "[1]");
      assert.equal(text(r[2]), "[1 2]");
      assert.equal(text(r[3]), "3");
      assert.equal(text(r[4]), "5");
      assert.equal(text(r[5]), "ababab32512");
      assert.equal(text(r[6]), "4:255");
      assert.equal(text(r[7]), "3");
      assert.equal(text(r[8]), "25");
      assert.equal(text(r[9]), "0");
    } finally {
      await s.close();
    }
  });

  it("math.random follows the entry's seed: the same on every replica", async () => {
    const a = await fresh();
    const b = await fresh();
    await a.store.open();
    await b.store.open();
    try {
      const lua = "local v = math.random(1000000) redis.call('set', 'r' .. v, 1) return v";
      const ra = await a.store.apply([entry(1, lua, "2", 11), entry(2, lua, "2", 12)]);
      // b ran other scripts first: Redis's own generator would have moved on.
      await b.store.load({ data: enc.encode("return math.random()"), args: { "db.index": "2" } });
      const rb = await b.store.apply([entry(1, lua, "2", 11), entry(2, lua, "2", 12)]);
      assert.deepEqual(ra.map(text), rb.map(text));
      assert.notEqual(text(ra[0]), text(ra[1]));
      assert.equal(await digestOf(a.store), await digestOf(b.store));
    } finally {
      await a.store.close();
      await b.store.close();
    }
  });

  it("instrumentLua puts a step at the top of every loop and function body, and keeps lines", () => {
    const out = instrumentLua(
      enc.encode("while x do end\nrepeat until y\nfor i = 1, 2 do end\nlocal f = function() end"),
    );
    assert.equal(out.match(/__nexus_step\(\)/g)?.length, 4);
    assert.equal(out.split("\n").length, 4);
    assert.match(out, /^local __nexus_G, __nexus_step = \.\.\. return \(function\(\.\.\.\)/);
    assert.doesNotMatch(out, /[^\x20-\x7e\n]/, "printable ASCII");
    assert.throws(
      () => instrumentLua(enc.encode("x = (".repeat(300) + "1" + ")".repeat(300))),
      LuaRefusal,
    );
  });
});

describe("RedisStore sandbox: the step budget", () => {
  it("loops, recursion and a caught budget error all end with the budget error; the next entry applies", async () => {
    const { store: s, srv } = await fresh({ applyStepBudget: 50_000 });
    await s.open();
    try {
      const poisons = [
        "while true do end",
        "repeat until false",
        "for i = 1, 1e12 do end",
        "local function f(n) return f(n + 1) end return f(1)",
        "local ok = pcall(function() while true do end end) redis.call('set', 'after', 'caught') return 'survived'",
        "for k in function() return 1 end do end",
        "while true do redis.call('incr', 'n') end",
      ];
      const r = await s.apply([
        ...poisons.map((lua, i) => entry(i + 1, lua)),
        entry(20, "return 'next'"),
      ]);
      for (const [i, lua] of poisons.entries())
        assert.match(errorOf(r[i]), /^apply budget exceeded/, lua);
      assert.equal(text(r[poisons.length]), "next");
      // What the snippets wrote before the budget ran out stays (Redis has no rollback).
      assert.equal(await load(s, "return redis.call('get', 'after')"), "");
      assert.equal(await load(s, "return redis.call('get', 'n')"), "25000");
      assert.deepEqual(await metadata(srv), { index: "20", term: "1" });
      // Loads have the budget too.
      await assert.rejects(
        load(s, "while true do end"),
        (e: unknown) =>
          isNexusError(e, "STORE_ERROR") && /apply budget exceeded/.test((e as Error).message),
      );
    } finally {
      await s.close();
    }
  });

  it("the count is steps, not time: the same script stops at the same step on every replica", async () => {
    const lua = "for i = 1, 1000000 do redis.call('set', 'last', i) end return 'done'";
    const outcomes: string[] = [];
    for (const budget of [2_000_000, 2_000_000, 1_999_999]) {
      const { store: s } = await fresh({ applyStepBudget: budget });
      await s.open();
      try {
        const r = await s.apply([entry(1, lua)]);
        outcomes.push(`${r[0]!.ok} ${await load(s, "return redis.call('get', 'last')")}`);
      } finally {
        await s.close();
      }
    }
    // One step per iteration and one per redis.call: 2,000,000 steps for the loop; one fewer
    // stops it at the last call.
    assert.deepEqual(outcomes, ["true 1000000", "true 1000000", "false 999999"]);
  });
});

describe("RedisStore: password and TLS", () => {
  const dirs: string[] = [];
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  const PASSWORD = "s3cret-Pa55word-for-tests";

  it("authenticates with a password; a missing or wrong one is STORE_UNAVAILABLE without the password in the message", async () => {
    const srv = await startRedis({ appendonly: false, requirepass: PASSWORD });
    const good = new RedisStore({ port: srv.port, password: PASSWORD });
    assert.deepEqual(await good.open(), { index: 0, term: 0 });
    try {
      assert.equal(
        text((await good.apply([entry(1, "return redis.call('set', 'k', 'v')")]))[0]),
        "OK",
      );
    } finally {
      await good.close();
    }
    for (const password of [undefined, "wrong-password", `${PASSWORD}x`]) {
      const bad = new RedisStore({
        port: srv.port,
        ...(password === undefined ? {} : { password }),
      });
      try {
        await assert.rejects(bad.open(), (e: unknown) => {
          const m = (e as Error).message;
          assert.ok(isNexusError(e, "STORE_UNAVAILABLE"), m);
          assert.ok(!m.includes(PASSWORD) && (password === undefined || !m.includes(password)), m);
          assert.equal(
            (e as Error).cause,
            undefined,
            "no driver error (with its AUTH arguments) attached",
          );
          return /NOAUTH|WRONGPASS|auth/i.test(m);
        });
      } finally {
        await bad.close();
      }
    }
  });

  it("TLS: verifies the server's certificate against the given CA, and refuses a server it cannot verify", async () => {
    const dir = mkdtempSync(join(tmpdir(), "nexus-redis-tls-"));
    dirs.push(dir);
    const f = (n: string): string => join(dir, n);
    const ssl = (...args: string[]): void => {
      execFileSync("openssl", args, { stdio: "ignore" });
    };
    writeFileSync(f("ext.cnf"), "subjectAltName=DNS:localhost\n");
    ssl(
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-days",
      "2",
      "-subj",
      "/CN=Test CA",
      "-keyout",
      f("ca.key"),
      "-out",
      f("ca.crt"),
    );
    ssl(
      "req",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-subj",
      "/CN=localhost",
      "-keyout",
      f("server.key"),
      "-out",
      f("server.csr"),
    );
    ssl(
      "x509",
      "-req",
      "-in",
      f("server.csr"),
      "-CA",
      f("ca.crt"),
      "-CAkey",
      f("ca.key"),
      "-CAcreateserial",
      "-days",
      "2",
      "-extfile",
      f("ext.cnf"),
      "-out",
      f("server.crt"),
    );
    const srv = await startRedis({
      appendonly: false,
      requirepass: PASSWORD,
      tls: { certFile: f("server.crt"), keyFile: f("server.key"), caFile: f("ca.crt") },
    });
    const ca = readFileSync(f("ca.crt"));
    const store = new RedisStore({
      host: "localhost",
      port: srv.tlsPort!,
      password: PASSWORD,
      tls: { ca },
    });
    try {
      await store.open();
      assert.equal(
        text((await store.apply([entry(1, "return redis.call('set', 'k', 'tls')")]))[0]),
        "OK",
      );
      assert.equal(await load(store, "return redis.call('get', 'k')"), "tls");
    } finally {
      await store.close();
    }
    // Without the CA (the system's are used) the server is not trusted.
    const untrusted = new RedisStore({
      host: "localhost",
      port: srv.tlsPort!,
      password: PASSWORD,
      tls: {},
      timeoutMs: 3000,
    });
    try {
      await assert.rejects(
        untrusted.open(),
        (e: unknown) =>
          isNexusError(e, "STORE_UNAVAILABLE") && /certificate/i.test((e as Error).message),
      );
    } finally {
      await untrusted.close();
    }
    // A name the certificate does not carry.
    const misnamed = new RedisStore({
      host: "127.0.0.1",
      port: srv.tlsPort!,
      password: PASSWORD,
      tls: { ca },
      timeoutMs: 3000,
    });
    try {
      await assert.rejects(
        misnamed.open(),
        (e: unknown) =>
          isNexusError(e, "STORE_UNAVAILABLE") &&
          /altnames|hostname|IP/i.test((e as Error).message),
      );
    } finally {
      await misnamed.close();
    }
  });
});
