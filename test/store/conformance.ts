/**
 * The Store conformance suite: one set of tests every backend runs (hono's pattern). Backends
 * supply how to write and read a key and a statement that fails, in their own language.
 */
import { it } from "node:test";
import assert from "node:assert/strict";
import type { ApplyEntry, Store } from "../../src/store/store.js";

export interface ConformanceOptions {
  readonly name: string;
  /** A fresh, empty store (opened by the suite) and how to clean it up. */
  readonly open: () => Promise<{ store: Store; cleanup: () => Promise<void> }>;
  /** Reopens the same data as a new instance (a restart), if the backend persists. */
  readonly reopen?: (old: Store) => Promise<Store>;
  readonly commands: {
    set(key: string, value: string): { data: string; args?: Record<string, string> };
    get(key: string): { data: string; args?: Record<string, string> };
    /** Decodes a get() result into the value ("" when absent). */
    value(result: Uint8Array): string;
    failing(): { data: string; args?: Record<string, string> };
  };
}

const enc = new TextEncoder();

export function runStoreConformance(o: ConformanceOptions): void {
  let n = 0;
  const entry = (
    index: number,
    cmd?: { data: string; args?: Record<string, string> },
  ): ApplyEntry => ({
    index,
    term: 1,
    command: cmd === undefined ? undefined : { data: enc.encode(cmd.data), args: cmd.args ?? {} },
    timestampMs: 1_700_000_000_000 + index,
    seed: index * 7919,
  });
  const get = async (s: Store, k: string): Promise<string> => {
    const q = o.commands.get(k);
    return o.commands.value(await s.load({ data: enc.encode(q.data), args: q.args ?? {} }));
  };
  const withStore = async (f: (s: Store) => Promise<void>): Promise<void> => {
    const { store, cleanup } = await o.open();
    try {
      assert.deepEqual(await store.open(), { index: 0, term: 0 });
      await f(store);
    } finally {
      await store.close();
      await cleanup();
    }
  };

  it(`${o.name}: applies entries in order, returns one result each and records the applied index`, () =>
    withStore(async (s) => {
      const res = await s.apply([
        entry(1, o.commands.set("k", "a")),
        entry(2),
        entry(3, o.commands.set("k", "b")),
      ]);
      assert.equal(res.length, 3);
      assert.ok(res.every((r) => r.ok));
      assert.equal(await get(s, "k"), "b");
      assert.deepEqual(await s.lastApplied(), { index: 3, term: 1 });
    }));

  it(`${o.name}: entries at or below the applied index are skipped (idempotent re-apply)`, () =>
    withStore(async (s) => {
      await s.apply([entry(1, o.commands.set("k", "a")), entry(2, o.commands.set("k", "b"))]);
      await s.apply([entry(2, o.commands.set("k", "x")), entry(3, o.commands.set("j", "c"))]);
      assert.equal(await get(s, "k"), "b");
      assert.equal(await get(s, "j"), "c");
      assert.equal((await s.lastApplied()).index, 3);
    }));

  it(`${o.name}: a failing statement is that entry's result, leaves nothing behind, and moves the index`, () =>
    withStore(async (s) => {
      const res = await s.apply([
        entry(1, o.commands.set("k", "a")),
        entry(2, o.commands.failing()),
        entry(3),
      ]);
      assert.equal(res[0]!.ok, true);
      assert.equal(res[1]!.ok, false);
      assert.ok(!res[1]!.ok && res[1]!.error.length > 0);
      assert.equal(await get(s, "k"), "a");
      assert.equal((await s.lastApplied()).index, 3);
    }));

  it(`${o.name}: backup and restore round-trip; a bad backup fails and keeps the state`, () =>
    withStore(async (s) => {
      await s.apply([entry(1, o.commands.set("k", "a")), entry(2, o.commands.set("j", "b"))]);
      const b = await s.backup();
      assert.deepEqual(b.position, { index: 2, term: 1 });
      const { store: t, cleanup } = await o.open();
      try {
        await t.open();
        await t.restore(b.position, b.stream);
        assert.equal(await get(t, "k"), "a");
        assert.equal(await get(t, "j"), "b");
        assert.deepEqual(await t.lastApplied(), { index: 2, term: 1 });
        assert.equal((await t.digest()).digest, (await s.digest()).digest);
        const garbage = (async function* () {
          yield enc.encode(`garbage ${++n}`);
        })();
        await assert.rejects(t.restore({ index: 9, term: 1 }, garbage));
        assert.equal(await get(t, "k"), "a");
        assert.equal((await t.lastApplied()).index, 2);
      } finally {
        await t.close();
        await cleanup();
      }
    }));

  it(`${o.name}: digests are equal for equal states and differ otherwise`, () =>
    withStore(async (s) => {
      const d0 = await s.digest();
      await s.apply([entry(1, o.commands.set("k", "a"))]);
      const d1 = await s.digest();
      assert.notEqual(d0.digest, d1.digest);
      assert.equal(d1.position.index, 1);
      assert.match(d1.digest, /^[0-9a-f]{64}$/);
    }));

  if (o.reopen !== undefined) {
    const reopen = o.reopen;
    it(`${o.name}: after a restart the applied index and the data agree`, () =>
      withStore(async (s) => {
        await s.apply([entry(1, o.commands.set("k", "a")), entry(2, o.commands.set("k", "b"))]);
        await s.close();
        const r = await reopen(s);
        assert.deepEqual(await r.open(), { index: 2, term: 1 });
        assert.equal(await get(r, "k"), "b");
        await r.close();
      }));
  }

  it(`${o.name}: close is idempotent`, () =>
    withStore(async (s) => {
      await s.close();
      await s.close();
    }));
}
