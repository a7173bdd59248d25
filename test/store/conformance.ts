/**
 * The Store conformance suite: one set of tests every backend runs (hono's pattern). Backends
 * supply how to write and read a key and a statement that fails, in their own language.
 */
import { it } from "node:test";
import assert from "node:assert/strict";
import type { ApplyEntry, Store } from "../../src/store/store.js";
import { isNexusError } from "../../src/errors/index.js";

/** What the suite asks of a store it opens. */
export interface OpenOptions {
  /** The apply step budget, in the backend's own steps (the suite uses a small one). */
  readonly applyStepBudget?: number;
  /** How long request ids are remembered, in ms (request-records.ts). */
  readonly requestWindowMs?: number;
}

export interface ConformanceOptions {
  readonly name: string;
  /** A fresh, empty store (opened by the suite) and how to clean it up. */
  readonly open: (opts?: OpenOptions) => Promise<{ store: Store; cleanup: () => Promise<void> }>;
  /** Reopens the same data as a new instance (a restart), if the backend persists. */
  readonly reopen?: (old: Store) => Promise<Store>;
  readonly commands: {
    set(key: string, value: string): { data: string; args?: Record<string, string> };
    get(key: string): { data: string; args?: Record<string, string> };
    /** Decodes a get() result into the value ("" when absent). */
    value(result: Uint8Array): string;
    failing(): { data: string; args?: Record<string, string> };
  };
  /**
   * A poison entry, for backends with an apply step budget: `command(key)` writes `key` = "p" and
   * then never ends. `budget` is a budget small enough for the suite and large enough for its
   * other commands; `keepsWrites`: whether what the entry wrote before the budget stopped it stays
   * (Redis: it has no rollback) or is rolled back (SQLite).
   */
  readonly poison?: {
    readonly budget: number;
    readonly keepsWrites: boolean;
    command(key: string): { data: string; args?: Record<string, string> };
  };
  /**
   * Sets `key` to `value` directly in the backend's database, behind the store's back (as an
   * operator or a bug could), if the backend has a database of its own.
   */
  readonly tamper?: (store: Store, key: string, value: string) => Promise<void>;
}

/** Starts a digest and awaits it: the hex of the state at its position. */
export async function digestOf(s: Store): Promise<string> {
  return (await s.digest()).digest;
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
        assert.equal(await digestOf(t), await digestOf(s));
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

  it(`${o.name}: restore with from: a backup taken at one position becomes the state at another (restore into a running cluster)`, () =>
    withStore(async (s) => {
      await s.apply([entry(1, o.commands.set("k", "a")), entry(2, o.commands.set("j", "b"))]);
      const b = await s.backup();
      const { store: t, cleanup } = await o.open();
      try {
        await t.open();
        // The target has its own history, further along than the backup.
        await t.apply([3, 4, 5, 6, 7].map((i) => entry(i, o.commands.set("k", `t${i}`))));
        await t.restore({ index: 8, term: 3 }, b.stream, b.position);
        assert.equal(await get(t, "k"), "a");
        assert.equal(await get(t, "j"), "b");
        assert.deepEqual(await t.lastApplied(), { index: 8, term: 3 });
        assert.equal(await digestOf(t), await digestOf(s));
        // Later entries apply on the restored state; earlier ones are skipped.
        await t.apply([
          { ...entry(8, o.commands.set("k", "skipped")), term: 3 },
          { ...entry(9, o.commands.set("k", "after")), term: 3 },
        ]);
        assert.equal(await get(t, "k"), "after");
      } finally {
        await t.close();
        await cleanup();
      }
    }));

  it(`${o.name}: digests are equal for equal states and differ otherwise`, () =>
    withStore(async (s) => {
      const d0 = await s.digest();
      assert.deepEqual(d0.position, { index: 0, term: 0 });
      const hex0 = await d0.digest;
      await s.apply([entry(1, o.commands.set("k", "a"))]);
      const d1 = await s.digest();
      assert.deepEqual(d1.position, { index: 1, term: 1 });
      const hex1 = await d1.digest;
      assert.notEqual(hex0, hex1);
      assert.match(hex1, /^[0-9a-f]{64}$/);
      // An entry without an effect moves the position, not the digest.
      await s.apply([entry(2)]);
      const d2 = await s.digest();
      assert.deepEqual(d2.position, { index: 2, term: 1 });
      assert.equal(await d2.digest, hex1);
      // The same writes on another store (in another order) give the same digest.
      const { store: t, cleanup } = await o.open();
      try {
        await t.open();
        await t.apply([entry(1, o.commands.set("k", "z")), entry(2, o.commands.set("k", "a"))]);
        assert.equal(await digestOf(t), hex1);
      } finally {
        await t.close();
        await cleanup();
      }
    }));

  it(`${o.name}: a digest is of the state it pinned, whatever is applied before it is awaited`, () =>
    withStore(async (s) => {
      const { store: t, cleanup } = await o.open();
      try {
        await t.open();
        const first = [
          entry(1, o.commands.set("k", "a")),
          entry(2, o.commands.set("j", "b")),
          entry(3),
        ];
        await s.apply(first);
        await t.apply(first);
        const pending = await s.digest();
        assert.deepEqual(pending.position, { index: 3, term: 1 });
        // Applying goes on at once, before the digest is awaited.
        await s.apply([
          entry(4, o.commands.set("k", "changed")),
          entry(5, o.commands.set("n", "x")),
        ]);
        assert.equal(await get(s, "k"), "changed");
        const hex = await pending.digest;
        assert.equal(
          hex,
          await digestOf(t),
          "the digest pinned at 3 is that of another store at 3",
        );
        const now = await s.digest();
        assert.deepEqual(now.position, { index: 5, term: 1 });
        assert.notEqual(await now.digest, hex);
      } finally {
        await t.close();
        await cleanup();
      }
    }));

  it(`${o.name}: an apply called while digest() is pinning comes after the pin`, () =>
    withStore(async (s) => {
      const { store: t, cleanup } = await o.open();
      try {
        await t.open();
        await s.apply([entry(1, o.commands.set("k", "a"))]);
        await t.apply([entry(1, o.commands.set("k", "a"))]);
        const pinning = s.digest();
        const applying = s.apply([entry(2, o.commands.set("k", "b"))]);
        const pending = await pinning;
        await applying;
        assert.deepEqual(pending.position, { index: 1, term: 1 });
        assert.equal(await pending.digest, await digestOf(t));
      } finally {
        await t.close();
        await cleanup();
      }
    }));

  it(`${o.name}: a digest nobody awaits neither leaks nor crashes the process when the store closes`, () =>
    withStore(async (s) => {
      await s.apply([entry(1, o.commands.set("k", "a"))]);
      const pending = await s.digest();
      await s.close();
      // Settles either way (done before the close, or rejected by it); a rejection nobody
      // handled would have failed this test file.
      const outcome = await pending.digest.then(
        (hex) => hex,
        (err: unknown) => err,
      );
      if (typeof outcome !== "string") {
        assert.ok(isNexusError(outcome, "STORE_UNAVAILABLE"), String(outcome));
      }
      const { store: t, cleanup } = await o.open();
      try {
        await t.open();
        const unawaited = await t.digest();
        assert.deepEqual(unawaited.position, { index: 0, term: 0 });
        await t.close();
        await new Promise((r) => setImmediate(r));
      } finally {
        await cleanup();
      }
    }));

  if (o.poison !== undefined) {
    const poison = o.poison;
    it(`${o.name}: an entry past the step budget ends with the same error on every replica, and the next ones apply`, async () => {
      const stores: { store: Store; cleanup: () => Promise<void> }[] = [];
      try {
        for (let i = 0; i < 2; i++) {
          const s = await o.open({ applyStepBudget: poison.budget });
          stores.push(s);
          assert.deepEqual(await s.store.open(), { index: 0, term: 0 });
        }
        const outcomes: string[] = [];
        for (const { store } of stores) {
          // In one batch: entries before the poison, the poison, entries after it.
          const res = await store.apply([
            entry(1, o.commands.set("k", "a")),
            entry(2, poison.command("p")),
            entry(3, o.commands.set("j", "b")),
          ]);
          assert.equal(res.length, 3);
          assert.equal(res[0]!.ok, true);
          const poisoned = res[1]!;
          assert.ok(!poisoned.ok, "the poison entry failed");
          assert.match(poisoned.error, /apply budget exceeded/);
          assert.match(poisoned.error, /-apply-step-budget/);
          assert.equal(res[2]!.ok, true);
          assert.equal(await get(store, "k"), "a");
          assert.equal(await get(store, "j"), "b");
          assert.equal(await get(store, "p"), poison.keepsWrites ? "p" : "");
          assert.deepEqual(await store.lastApplied(), { index: 3, term: 1 });
          // The next batch applies as usual.
          const next = await store.apply([entry(4, o.commands.set("k", "c"))]);
          assert.equal(next[0]!.ok, true);
          assert.equal(await get(store, "k"), "c");
          outcomes.push(
            JSON.stringify(res.map((r) => (r.ok ? Buffer.from(r.data).toString() : r.error))),
          );
        }
        assert.equal(outcomes[0], outcomes[1], "the same results on both replicas");
        assert.equal(await digestOf(stores[0]!.store), await digestOf(stores[1]!.store));
      } finally {
        for (const { store, cleanup } of stores) {
          await store.close();
          await cleanup();
        }
      }
    });
  }

  if (o.tamper !== undefined) {
    const tamper = o.tamper;
    it(`${o.name}: a value changed behind the store's back changes the digest`, () =>
      withStore(async (s) => {
        await s.apply([entry(1, o.commands.set("k", "a")), entry(2, o.commands.set("j", "b"))]);
        const before = await digestOf(s);
        await tamper(s, "k", "tampered");
        assert.equal(await get(s, "k"), "tampered");
        const after = await s.digest();
        assert.deepEqual(after.position, { index: 2, term: 1 });
        assert.notEqual(await after.digest, before);
        await tamper(s, "k", "a");
        assert.equal(await digestOf(s), before);
      }));
  }

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
