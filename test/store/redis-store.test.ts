import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { RedisStore, renderRedisReply } from "../../src/store/redis/redis-store.js";
import type { ApplyEntry, ApplyResult, Store } from "../../src/store/store.js";
import { isNexusError } from "../../src/errors/index.js";
import { digestOf, runStoreConformance } from "./conformance.js";
import type { ConformanceOptions } from "./conformance.js";
import { runRequestRecordSuite } from "./request-records-suite.js";
import { requestKeyOf } from "../../src/store/request-records.js";
import { startRedis } from "./redis-server.js";
import type { RedisServer } from "./redis-server.js";

const enc = new TextEncoder();
const dec = new TextDecoder();

function entry(index: number, lua: string | undefined, db = "2"): ApplyEntry {
  return {
    index,
    term: 1,
    command: lua === undefined ? undefined : { data: enc.encode(lua), args: { "db.index": db } },
    timestampMs: 1_700_000_000_000,
    seed: 7,
  };
}

const text = (r: ApplyResult): string =>
  r.ok ? dec.decode(r.data) : assert.fail(`entry failed: ${r.error}`);

async function load(s: Store, lua: string, db = "2"): Promise<string> {
  return dec.decode(await s.load({ data: enc.encode(lua), args: { "db.index": db } }));
}

let shared: RedisServer | undefined;
async function server(): Promise<RedisServer> {
  shared ??= await startRedis();
  return shared;
}

interface FreshStore {
  readonly store: RedisStore;
  readonly srv: RedisServer;
}

/** A fresh store on its own server (so tests do not share data). */
async function fresh(): Promise<FreshStore> {
  const srv = await startRedis();
  const store = new RedisStore({ port: srv.port });
  return { store, srv };
}

/** Two fresh stores, open, for `body`; both closed after it, whether it passes or not. */
async function withTwoStores(body: (a: FreshStore, b: FreshStore) => Promise<void>): Promise<void> {
  const a = await fresh();
  const b = await fresh();
  await a.store.open();
  await b.store.open();
  try {
    await body(a, b);
  } finally {
    await a.store.close();
    await b.store.close();
  }
}

describe("RedisStore", () => {
  const conformance: ConformanceOptions = {
    name: "redis",
    open: async (opts) => {
      const srv = await startRedis();
      return { store: new RedisStore({ port: srv.port, ...opts }), cleanup: () => srv.kill() };
    },
    reopen: async (old) => new RedisStore({ port: (old as RedisStore).port }),
    commands: {
      set: (k, v) => ({
        data: `return redis.call('set', '${k}', '${v}')`,
        args: { "db.index": "1" },
      }),
      get: (k) => ({ data: `return redis.call('get', '${k}')`, args: { "db.index": "1" } }),
      value: (r) => dec.decode(r),
      failing: () => ({ data: "return redis.call('nosuchcommand')", args: { "db.index": "1" } }),
    },
    poison: {
      budget: 100_000,
      keepsWrites: true,
      command: (k) => ({
        data: `redis.call('set', '${k}', 'p') while true do end`,
        args: { "db.index": "1" },
      }),
    },
    tamper: async (store, k, v) => {
      const c = new Redis({ port: (store as RedisStore).port, db: 1, lazyConnect: true });
      try {
        await c.connect();
        await c.set(k, v);
      } finally {
        c.disconnect();
      }
    },
  };
  runStoreConformance(conformance);
  runRequestRecordSuite(conformance);

  it("renders replies as the original: strings as is, integers in decimal, arrays as [a b c], nil as empty", () => {
    assert.equal(renderRedisReply(Buffer.from("OK")), "OK");
    assert.equal(renderRedisReply(2), "2");
    assert.equal(renderRedisReply([Buffer.from("ctr"), Buffer.from("hello")]), "[ctr hello]");
    assert.equal(renderRedisReply([1, [Buffer.from("a"), null]]), "[1 [a ]]");
    assert.equal(renderRedisReply(null), "");
  });

  it("a save with a request id answers the same text as one without (the script renders it)", async () => {
    const { store: s, srv } = await fresh();
    await s.open();
    try {
      const replies = [
        "return redis.call('set', 'k', 'v')",
        "return redis.call('incr', 'n')",
        "return {1, 'a', {2, 'b'}, true, false}",
        "return 3.7",
        "return nil",
        "return {err = 'boom'}",
        "return {{err = 'inner'}}",
        "error('raised')",
      ];
      let i = 0;
      for (const lua of replies) {
        const plain = entry(++i, lua);
        const withId = { ...entry(++i, lua) };
        const keyed = {
          ...withId,
          request: requestKeyOf(withId.command!, `r${i}`, withId.timestampMs),
        };
        const [a] = await s.apply([plain]);
        const [b] = await s.apply([keyed]);
        // incr answers the next number; every other reply is the same text.
        if (lua.includes("incr")) assert.deepEqual([a!, b!].map(text), ["1", "2"]);
        else assert.deepEqual(b, a, lua);
      }
    } finally {
      await s.close();
      await srv.kill();
    }
  });

  it("the original's walkthrough: set, incr twice, keys, get", async () => {
    const srv = await server();
    const s = new RedisStore({ port: srv.port });
    await s.open();
    try {
      const r = await s.apply([
        entry(1, "return redis.call('set', 'hello', 'world')"),
        entry(2, "return redis.call('incr', 'ctr')"),
        entry(3, "return redis.call('incr', 'ctr')"),
      ]);
      assert.deepEqual(r.map(text), ["OK", "1", "2"]);
      const keys = await load(s, "return redis.call('keys', '*')");
      assert.ok(keys === "[ctr hello]" || keys === "[hello ctr]", keys);
      assert.equal(await load(s, "return redis.call('get', 'ctr')"), "2");
      // Written in db 2, as db.index said; the applied index lives in db 13.
      const direct = new Redis({ port: srv.port, db: 2, lazyConnect: true });
      await direct.connect();
      assert.equal(await direct.get("hello"), "world");
      await direct.select(13);
      assert.deepEqual(await direct.hgetall("nexus:applied"), { index: "3", term: "1" });
      direct.disconnect();
    } finally {
      await s.close();
    }
  });

  it("a Lua error, a syntax error and a refused call are the entries' results; the index moves past them", async () => {
    const { store: s } = await fresh();
    await s.open();
    try {
      const r = await s.apply([
        entry(1, "redis.call('set', 'a', '1'); return redis.call('incr', 'a', 'extra')"),
        entry(2, "return redis.call('set', 'b'"),
        entry(3, "return redis.call('TIME')"),
        entry(4, "return redis.call('get', 'x')", "13"),
        entry(5, "return redis.call('set', 'c', '3')"),
      ]);
      assert.equal(r[0]!.ok, false);
      assert.match((r[0] as { error: string }).error, /wrong number of arg/i);
      assert.equal(r[1]!.ok, false);
      assert.match((r[1] as { error: string }).error, /compil|syntax|expected/i);
      assert.equal(r[2]!.ok, false);
      assert.match((r[2] as { error: string }).error, /TIME gives different results/);
      assert.equal(r[3]!.ok, false);
      assert.match((r[3] as { error: string }).error, /metadata database/);
      assert.equal(text(r[4]!), "OK");
      // Redis keeps what the failing snippet wrote before its error, identically everywhere.
      assert.equal(await load(s, "return redis.call('get', 'a')"), "1");
      assert.deepEqual(await s.lastApplied(), { index: 5, term: 1 });
      await assert.rejects(load(s, "return redis.call('set', 'z', '1')"), (e: unknown) =>
        isNexusError(e, "STORE_ERROR"),
      );
    } finally {
      await s.close();
    }
  });

  it("a restart never applies an entry twice: re-applied entries are skipped", async () => {
    const { store: s, srv } = await fresh();
    await s.open();
    await s.apply([
      entry(1, "return redis.call('incr', 'n')"),
      entry(2, "return redis.call('incr', 'n')"),
    ]);
    await s.close();
    const s2 = new RedisStore({ port: srv.port });
    assert.deepEqual(await s2.open(), { index: 2, term: 1 });
    try {
      const r = await s2.apply([
        entry(2, "return redis.call('incr', 'n')"),
        entry(3, "return redis.call('incr', 'n')"),
      ]);
      assert.deepEqual(r.map(text), ["", "3"]);
      assert.equal(await load(s2, "return redis.call('get', 'n')"), "3");
    } finally {
      await s2.close();
    }
  });

  it("Redis down is not a result: apply throws STORE_UNAVAILABLE, and works again once Redis is back", async () => {
    const { store: s, srv } = await fresh();
    await s.open();
    try {
      await s.apply([entry(1, "return redis.call('incr', 'n')")]);
      await srv.kill();
      await assert.rejects(
        s.apply([entry(2, "return redis.call('incr', 'n')")]),
        (e: unknown) =>
          isNexusError(e, "STORE_UNAVAILABLE") && /unavailable/.test((e as Error).message),
      );
      await srv.start();
      // The append-only file kept entry 1 and its index; entry 2 never happened.
      assert.deepEqual(await s.lastApplied(), { index: 1, term: 1 });
      const r = await s.apply([entry(2, "return redis.call('incr', 'n')")]);
      assert.equal(text(r[0]!), "2");
    } finally {
      await s.close();
    }
  });

  it("backup streams every key of every database with its TTL; restore loads it on another server; digests agree", () =>
    withTwoStores(async (a, b) => {
      const fill = `for i = 1, 3000 do
          redis.call('set', 's' .. i, 'v' .. i)
          redis.call('hset', 'h' .. (i % 50), 'f' .. i, i)
          redis.call('rpush', 'l' .. (i % 20), i)
          redis.call('zadd', 'z', i, 'm' .. i)
          redis.call('sadd', 'set', i)
        end
        redis.call('set', 'ttl', 'x', 'EX', 3600)
        return 1`;
      await a.store.apply([
        entry(1, fill, "0"),
        entry(2, "return redis.call('set', 'other', 'db')", "5"),
      ]);
      const backup = await a.store.backup();
      assert.deepEqual(backup.position, { index: 2, term: 1 });
      await b.store.restore(backup.position, backup.stream);
      assert.deepEqual(await b.store.lastApplied(), { index: 2, term: 1 });
      assert.equal(await load(b.store, "return redis.call('get', 'other')", "5"), "db");
      assert.equal(await load(b.store, "return redis.call('hget', 'h7', 'f7')", "0"), "7");
      const ttl = Number(await load(b.store, "return redis.call('ttl', 'ttl')", "0"));
      assert.ok(ttl > 3500 && ttl <= 3600, `ttl ${ttl}`);
      assert.equal(await digestOf(a.store), await digestOf(b.store));
      // One more write on a only: the digests differ.
      await a.store.apply([entry(3, "return redis.call('set', 's1', 'changed')", "0")]);
      assert.notEqual(await digestOf(a.store), await digestOf(b.store));
    }));

  it("a backup read in many batches is the state at its position: applies wait until it is read", () =>
    withTwoStores(async (a, b) => {
      await a.store.apply([
        entry(1, "for i = 1, 5000 do redis.call('set', 'k' .. i, i) end return 1", "0"),
      ]);
      const before = await digestOf(a.store);
      const backup = await a.store.backup();
      const it = backup.stream[Symbol.asyncIterator]();
      const chunks: Uint8Array[] = [];
      for (let i = 0; i < 2; i++) chunks.push((await it.next()).value as Uint8Array);
      // Sent while the backup is being read: applied only once it has been.
      let applied = false;
      const write = a.store
        .apply([
          entry(2, "for i = 1, 5000 do redis.call('set', 'k' .. i, 'changed') end return 1", "0"),
        ])
        .then(() => (applied = true));
      for (let r = await it.next(); r.done !== true; r = await it.next()) {
        assert.equal(applied, false, "an apply ran while the backup was read");
        chunks.push(r.value);
      }
      assert.ok(chunks.length > 3, `${chunks.length} chunks: the keys were read in batches`);
      await write;
      await b.store.restore(
        backup.position,
        (async function* () {
          yield* chunks;
        })(),
      );
      assert.equal(await digestOf(b.store), before);
      assert.equal(await load(b.store, "return redis.call('dbsize')", "0"), "5000");
    }));

  it("a truncated or corrupted backup is refused and the target keeps its data", () =>
    withTwoStores(async (a, b) => {
      await a.store.apply([
        entry(1, "for i = 1, 100 do redis.call('set', 'k' .. i, i) end return 1", "0"),
      ]);
      await b.store.apply([entry(1, "return redis.call('set', 'mine', 'kept')", "0")]);
      const chunks: Uint8Array[] = [];
      for await (const c of (await a.store.backup()).stream) chunks.push(c);
      const whole = Buffer.concat(chunks);
      for (const bad of [
        whole.subarray(0, whole.length - 20),
        Buffer.concat([whole.subarray(0, 40), Buffer.from("x"), whole.subarray(41)]),
      ]) {
        await assert.rejects(
          b.store.restore(
            { index: 1, term: 1 },
            (async function* () {
              yield bad;
            })(),
          ),
          (e: unknown) => isNexusError(e, "CORRUPTED"),
        );
        assert.equal(await load(b.store, "return redis.call('get', 'mine')", "0"), "kept");
        assert.equal(await load(b.store, "return redis.call('get', 'k1')", "0"), "");
      }
    }));

  it("digests compare logical values: the same data built differently digests the same", () =>
    withTwoStores(async (a, b) => {
      // a: a hash grown large (hashtable encoding) and shrunk back; b: built small (listpack).
      await a.store.apply([
        entry(
          1,
          "for i = 1, 1000 do redis.call('hset', 'h', 'f' .. i, i) end for i = 3, 1000 do redis.call('hdel', 'h', 'f' .. i) end return 1",
          "0",
        ),
      ]);
      await b.store.apply([
        entry(1, "redis.call('hset', 'h', 'f2', 2) redis.call('hset', 'h', 'f1', 1) return 1", "0"),
      ]);
      assert.equal(await digestOf(a.store), await digestOf(b.store));
    }));
  it("digests of large values (read piecewise and by SCAN) agree across servers whatever the insertion order, and see one changed element", () =>
    withTwoStores(async (a, b) => {
      // Over the sizes read whole in a batch: a 3 MiB string, 2000-element list, set, hash, zset.
      const fill = (order: "up" | "down"): string => `
        local n = 2000
        for j = 1, n do
          local i = j
          if '${order}' == 'down' then i = n + 1 - j end
          redis.call('sadd', 'set', 'm' .. i)
          redis.call('hset', 'hash', 'f' .. i, 'v' .. i)
          redis.call('zadd', 'zset', i / 4, 'z' .. i)
        end
        for i = 1, n do redis.call('rpush', 'list', 'item' .. i) end
        redis.call('set', 'big', string.rep('0123456789abcdef', 3 * 65536))
        redis.call('set', 'withttl', 'x')
        redis.call('pexpire', 'withttl', 3600000)
        return 1`;
      await a.store.apply([entry(1, fill("up"), "0")]);
      await b.store.apply([entry(1, fill("down"), "0")]);
      const d = await digestOf(a.store);
      assert.equal(d, await digestOf(b.store));
      const changes: [string, string, string][] = [
        [
          "a set member",
          "redis.call('srem', 'set', 'm7') redis.call('sadd', 'set', 'm7x') return 1",
          "0",
        ],
        ["a hash value", "return redis.call('hset', 'hash', 'f1999', 'other')", "0"],
        ["a zset score", "return redis.call('zadd', 'zset', 1000, 'z3')", "0"],
        ["a list item", "return redis.call('lset', 'list', 1500, 'other')", "0"],
        [
          "the last byte of a large string",
          "return redis.call('setrange', 'big', 3 * 1048576 - 1, 'X')",
          "0",
        ],
        ["TTL presence", "return redis.call('persist', 'withttl')", "0"],
        ["a key in another database", "return redis.call('set', 'k', 'v')", "7"],
      ];
      const seen = new Set([d]);
      let index = 2;
      for (const [what, lua, db] of changes) {
        await b.store.apply([entry(index++, lua, db)]);
        const x = await digestOf(b.store);
        assert.ok(!seen.has(x), `${what}: the digest did not change`);
        seen.add(x);
      }
    }));

  it("digests tell types apart, take scores as numbers, and skip the metadata database", () =>
    withTwoStores(async (a, b) => {
      await a.store.apply([
        entry(1, "return redis.call('zadd', 'z', '1.0', 'm', '1e1', 'n')", "0"),
      ]);
      await b.store.apply([entry(1, "return redis.call('zadd', 'z', 1, 'm', 10, 'n')", "0")]);
      assert.equal(await digestOf(a.store), await digestOf(b.store));
      await a.store.apply([entry(2, "return redis.call('set', 'k', '1')", "0")]);
      await b.store.apply([entry(2, "return redis.call('rpush', 'k', '1')", "0")]);
      assert.notEqual(await digestOf(a.store), await digestOf(b.store));
      // The metadata database (13) is not user state.
      const before = await digestOf(a.store);
      const c = new Redis({ port: a.srv.port, db: 13, lazyConnect: true });
      try {
        await c.connect();
        await c.set("something", "else");
      } finally {
        c.disconnect();
      }
      assert.equal(await digestOf(a.store), before);
    }));

  it("applies wait while a digest is computed (Redis has no snapshots): the digest is of its position", async () => {
    const { store: s } = await fresh();
    await s.open();
    try {
      await s.apply([
        entry(1, "for i = 1, 50000 do redis.call('set', 'k' .. i, i) end return 1", "0"),
      ]);
      const order: string[] = [];
      const pending = s.digest().then((p) => {
        order.push("digest");
        return p;
      });
      const applied = s
        .apply([entry(2, "return redis.call('set', 'k1', 'changed')", "0")])
        .then(() => order.push("apply"));
      const p = await pending;
      await applied;
      assert.deepEqual(order, ["digest", "apply"]);
      assert.deepEqual(p.position, { index: 1, term: 1 });
      const { store: t } = await fresh();
      await t.open();
      try {
        await t.apply([
          entry(1, "for i = 1, 50000 do redis.call('set', 'k' .. i, i) end return 1", "0"),
        ]);
        assert.equal(await p.digest, await digestOf(t));
      } finally {
        await t.close();
      }
    } finally {
      await s.close();
    }
  });
  it("a digest while Redis is down is refused as STORE_UNAVAILABLE", async () => {
    const { store: s, srv } = await fresh();
    await s.open();
    try {
      await s.apply([entry(1, "return redis.call('set', 'k', 'v')", "0")]);
      await srv.kill();
      await assert.rejects(s.digest(), (e: unknown) => isNexusError(e, "STORE_UNAVAILABLE"));
      await srv.start();
      const d = await s.digest();
      assert.deepEqual(d.position, { index: 1, term: 1 });
      assert.match(await d.digest, /^[0-9a-f]{64}$/);
    } finally {
      await s.close();
    }
  });
});
