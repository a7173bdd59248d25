/**
 * The request-record suite (src/store/request-records.ts), run against every backend: a save
 * with a request id applies once and every retry gets its first result, from the store's own
 * records, whatever the batches, restarts, backups and restores in between.
 */
import { it } from "node:test";
import assert from "node:assert/strict";
import type { ApplyEntry, ApplyResult, Store } from "../../src/store/store.js";
import { hasRequestRecords } from "../../src/store/store.js";
import { requestKeyOf } from "../../src/store/request-records.js";
import { digestOf } from "./conformance.js";
import type { ConformanceOptions } from "./conformance.js";

const enc = new TextEncoder();
const T0 = 1_700_000_000_000;
const WINDOW = 5000;

type Cmd = { data: string; args?: Record<string, string> };

export function runRequestRecordSuite(o: ConformanceOptions): void {
  /** An entry at `index` at time T0 + `at`, with request `id` issued at T0 + `issued`. */
  const entry = (index: number, cmd?: Cmd, id?: string, at = index, issued = at): ApplyEntry => {
    const command =
      cmd === undefined ? undefined : { data: enc.encode(cmd.data), args: cmd.args ?? {} };
    return {
      index,
      term: 1,
      command,
      timestampMs: T0 + at,
      seed: index,
      ...(id === undefined || command === undefined
        ? {}
        : { request: requestKeyOf(command, id, T0 + issued) }),
    };
  };
  const get = async (s: Store, k: string): Promise<string> => {
    const q = o.commands.get(k);
    return o.commands.value(await s.load({ data: enc.encode(q.data), args: q.args ?? {} }));
  };
  const opened = async (): Promise<{ store: Store; cleanup: () => Promise<void> }> => {
    const r = await o.open({ requestWindowMs: WINDOW });
    await r.store.open();
    return r;
  };
  const withStores = async (n: number, f: (s: Store[]) => Promise<void>): Promise<void> => {
    const all: { store: Store; cleanup: () => Promise<void> }[] = [];
    try {
      for (let i = 0; i < n; i++) all.push(await opened());
      await f(all.map((a) => a.store));
    } finally {
      for (const a of all) {
        await a.store.close();
        await a.cleanup();
      }
    }
  };
  const errorOf = (r: ApplyResult | undefined): string =>
    r !== undefined && !r.ok ? r.error : assert.fail(`expected an error, got ${JSON.stringify(r)}`);

  it(`${o.name}: a save with a request id is applied once; retries get the first result and its index`, () =>
    withStores(1, async ([s]) => {
      const first = await s!.apply([entry(1, o.commands.set("k", "a"), "req-1")]);
      assert.equal(first[0]!.ok, true);
      // Another write changes k; the retry of req-1 must not set it back to "a".
      const later = await s!.apply([
        entry(2, o.commands.set("k", "b")),
        entry(3, o.commands.set("k", "a"), "req-1", 3, 1),
      ]);
      assert.deepEqual(later[1], { ...first[0]!, firstIndex: 1 });
      assert.equal(await get(s!, "k"), "b");
      // In the same batch as the first apply too.
      const same = await s!.apply([
        entry(4, o.commands.set("j", "x"), "req-2"),
        entry(5, o.commands.set("j", "y")),
        entry(6, o.commands.set("j", "x"), "req-2", 6, 4),
      ]);
      assert.deepEqual(same[2], { ...same[0]!, firstIndex: 4 });
      assert.equal(await get(s!, "j"), "y");
      assert.deepEqual(await s!.lastApplied(), { index: 6, term: 1 });
    }));

  it(`${o.name}: a request's record is read back: its first result and index`, () =>
    withStores(1, async ([s]) => {
      assert.ok(hasRequestRecords(s!), "the store reads its request records");
      const [r1, , r3] = await s!.apply([
        entry(1, o.commands.set("k", "a"), "rr-1"),
        entry(2, o.commands.set("k", "b")),
        entry(3, o.commands.failing(), "rr-3"),
      ]);
      const one = await s!.requestRecord("rr-1");
      assert.deepEqual(one === undefined ? undefined : { index: one.index, result: one.result }, {
        index: 1,
        result: r1,
      });
      const three = await s!.requestRecord("rr-3");
      assert.equal(three?.index, 3);
      assert.equal(three.result.ok ? "" : three.result.error, errorOf(r3));
      assert.equal(await s!.requestRecord("rr-2"), undefined);
    }));

  it(`${o.name}: an error result is recorded and returned to retries`, () =>
    withStores(1, async ([s]) => {
      const [r1] = await s!.apply([entry(1, o.commands.failing(), "bad-1")]);
      const message = errorOf(r1);
      const [r2] = await s!.apply([entry(2, o.commands.failing(), "bad-1", 2, 1)]);
      assert.equal(errorOf(r2), message);
      assert.equal(r2!.firstIndex, 1);
    }));

  it(`${o.name}: a different payload under a recorded id is refused and has no effect`, () =>
    withStores(1, async ([s]) => {
      await s!.apply([entry(1, o.commands.set("k", "a"), "req-1")]);
      const [r] = await s!.apply([entry(2, o.commands.set("k", "other"), "req-1")]);
      assert.equal(errorOf(r), "request id req-1 was used for a different request");
      assert.equal(await get(s!, "k"), "a");
      assert.equal((await s!.lastApplied()).index, 2);
    }));

  it(`${o.name}: expiry follows the entries' timestamps, the same whatever the batches`, () =>
    withStores(2, async ([a, b]) => {
      const entries = [
        entry(1, o.commands.set("k", "1"), "e-1", 0),
        entry(2, o.commands.set("k", "2"), "e-2", 100),
        // A retry of e-1 within the window: recorded result, no effect.
        entry(3, o.commands.set("k", "1"), "e-1", WINDOW, 0),
        // A retry of e-1 issued more than the window before this entry: refused.
        entry(4, o.commands.set("k", "1"), "e-1", WINDOW + 1, 0),
        // A new request reusing e-2 after its record died: applied as new.
        entry(5, o.commands.set("k", "5"), "e-2", 2 * WINDOW + 200, 2 * WINDOW + 150),
        // Issued far in the future of the leader's clock: refused.
        entry(6, o.commands.set("k", "6"), "e-6", 2 * WINDOW + 300, 4 * WINDOW),
        entry(7, o.commands.set("k", "5"), "e-2", 3 * WINDOW, 2 * WINDOW + 150),
      ];
      const ra: ApplyResult[] = [];
      for (const e of entries) ra.push(...(await a!.apply([e])));
      const rb = await b!.apply(entries);
      assert.deepEqual(ra, rb);
      assert.deepEqual(ra[2], { ...ra[0]!, firstIndex: 1 });
      assert.match(
        errorOf(ra[3]),
        /^request id e-1 expired: retried after the 5000 ms window; read to find out whether it was applied$/,
      );
      assert.equal(ra[4]!.ok, true);
      assert.match(errorOf(ra[5]), /^request id e-6 was issued .* in the future/);
      assert.deepEqual(ra[6], { ...ra[4]!, firstIndex: 5 });
      assert.equal(await get(a!, "k"), "5");
      assert.equal(await get(b!, "k"), "5");
      assert.equal(await digestOf(a!), await digestOf(b!));
    }));

  it(`${o.name}: digests leave the records out: the same data digests the same`, () =>
    withStores(2, async ([a, b]) => {
      await a!.apply([entry(1, o.commands.set("k", "a"), "req-1"), entry(2)]);
      await b!.apply([entry(1, o.commands.set("k", "a")), entry(2)]);
      assert.equal(await digestOf(a!), await digestOf(b!));
    }));

  if (o.reopen !== undefined) {
    const reopen = o.reopen;
    it(`${o.name}: records survive a restart: a retry after it is not applied again`, () =>
      withStores(1, async ([s]) => {
        const [first] = await s!.apply([
          entry(1, o.commands.set("k", "a"), "req-1"),
          entry(2, o.commands.set("k", "b")),
        ]);
        const t = await reopen(s!);
        try {
          await t.open();
          const [retry] = await t.apply([entry(3, o.commands.set("k", "a"), "req-1", 3, 1)]);
          assert.deepEqual(retry, { ...first!, firstIndex: 1 });
          assert.equal(await get(t, "k"), "b");
        } finally {
          await t.close();
        }
      }));
  }

  it(`${o.name}: records travel in backups: a retry after a restore is not applied again`, () =>
    withStores(2, async ([s, t]) => {
      const [first] = await s!.apply([
        entry(1, o.commands.set("k", "a"), "req-1"),
        entry(2, o.commands.set("k", "b")),
      ]);
      const bk = await s!.backup();
      await t!.restore(bk.position, bk.stream);
      const [retry, other] = await t!.apply([
        entry(3, o.commands.set("k", "a"), "req-1", 3, 1),
        entry(4, o.commands.set("k", "zz"), "req-1", 4, 1),
      ]);
      assert.deepEqual(retry, { ...first!, firstIndex: 1 });
      assert.equal(errorOf(other), "request id req-1 was used for a different request");
      assert.equal(await get(t!, "k"), "b");
    }));
}
