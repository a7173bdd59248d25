/**
 * The apply pipeline observes a store call that does not return: after the threshold it reports
 * the entries and the time through storeError() (the node then says NOT_SERVING with that reason),
 * without aborting anything; once the call returns, the report goes away.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Applier } from "../../src/node/applier.js";
import { SILENT } from "../../src/node/options.js";
import { MemoryStore } from "../../src/store/memory/memory-store.js";
import type { ApplyEntry, ApplyResult } from "../../src/store/store.js";
import { isNexusError } from "../../src/errors/index.js";
import type { Entry } from "../../src/raft/types.js";

/** A memory store whose apply() waits for release() (a statement that does not end). */
class HangingStore extends MemoryStore {
  private gate: Promise<void> | undefined;
  release: () => void = () => undefined;

  hang(): void {
    this.gate = new Promise((r) => (this.release = r));
  }

  override async apply(entries: readonly ApplyEntry[]): Promise<ApplyResult[]> {
    if (this.gate !== undefined) await this.gate;
    return super.apply(entries);
  }
}

const noop = (index: number): Entry => ({
  index,
  term: 1,
  type: "normal",
  data: new Uint8Array(0),
});

async function until(f: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!f()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("Applier: a store call that does not return", () => {
  it("is reported after the threshold with its entries, and no longer once it returns", async () => {
    const store = new HangingStore();
    const position = await store.open();
    const warnings: string[] = [];
    const logger = {
      ...SILENT,
      warn: (fields: unknown, msg?: string) =>
        warnings.push(`${msg} ${JSON.stringify(fields)}`),
    };
    const applied: number[] = [];
    const a = new Applier(
      store,
      {
        onResult: () => undefined,
        onApplied: (p) => applied.push(p.index),
        onStoreHealth: () => undefined,
      },
      logger,
      position,
      2000,
      200,
    );
    a.start();
    try {
      a.enqueue({ entries: [noop(1)] });
      await until(() => applied.includes(1), "entry 1");
      assert.equal(a.storeError(), undefined);
      store.hang();
      a.enqueue({ entries: [noop(2), noop(3)] });
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(a.storeError(), undefined, "not before the threshold");
      await until(() => a.storeError() !== undefined, "the stuck report");
      const err = a.storeError()!;
      assert.ok(isNexusError(err, "STORE_UNAVAILABLE"));
      assert.match(err.message, /stuck applying the entries at indexes 2-3 for \d+ s/);
      assert.match(err.message, /-apply-step-budget/);
      await until(() => warnings.length > 0, "the warning");
      assert.match(warnings[0]!, /applying is stuck/);
      store.release();
      await until(() => applied.includes(3), "entries 2-3");
      assert.equal(a.storeError(), undefined, "cleared once the call returned");
      assert.equal(warnings.length, 1, "logged once");
    } finally {
      store.release();
      await a.stop();
    }
  });
});
