/**
 * Saves with a request id (src/store/request-records.ts) through the library: applied once, the
 * first result to every retry, and save() itself retrying an unknown outcome with the same id.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { Replicator } from "../../src/node/replicator-api.js";
import { MemoryStore } from "../../src/store/memory/memory-store.js";
import type { ApplyEntry, ApplyResult } from "../../src/store/store.js";
import { isNexusError } from "../../src/errors/index.js";
import { loneReplicator, until } from "./helpers.js";
import { tempDir } from "../temp-dir.js";

const dec = new TextDecoder();

/** A MemoryStore whose next apply is held back `delayMs` (a slow store: the save times out). */
class SlowOnceStore extends MemoryStore {
  delayMs = 0;
  override async apply(entries: readonly ApplyEntry[]): Promise<ApplyResult[]> {
    const d = this.delayMs;
    this.delayMs = 0;
    if (d > 0) await new Promise((r) => setTimeout(r, d));
    return super.apply(entries);
  }
}

async function single(store: MemoryStore, replTimeoutMs = 5000): Promise<Replicator> {
  const root = tempDir("nexus-once-");
  const rep = await loneReplicator(root, { store, replTimeoutMs });
  await rep.start();
  await until(() => rep.status().role === "leader", 10_000, "the single node to lead");
  return rep;
}

describe("save with a request id", () => {
  it("applies once; a repeat gets the first result; another payload under the id is refused", async () => {
    const rep = await single(new MemoryStore());
    try {
      assert.equal(dec.decode(await rep.save("incr n", { requestId: "r-1" })), "1");
      assert.equal(dec.decode(await rep.save("incr n", { requestId: "r-1" })), "1");
      assert.equal(dec.decode(await rep.load("get n")), "1");
      assert.equal(dec.decode(await rep.save("incr n", { idempotent: true })), "2");
      await assert.rejects(rep.save("incr m", { requestId: "r-1" }), (e: unknown) => {
        assert.ok(isNexusError(e, "STORE_ERROR"), String(e));
        assert.equal(e.message, "request id r-1 was used for a different request");
        return true;
      });
      await assert.rejects(rep.save("incr n", { requestId: "has space" }), (e: unknown) =>
        isNexusError(e, "INVALID_ARGUMENT"),
      );
      // Issued longer ago than the window (10 minutes): refused, not applied.
      await assert.rejects(
        rep.save("incr n", { requestId: "old", issuedAtMs: Date.now() - 11 * 60_000 }),
        (e: unknown) => isNexusError(e, "STORE_ERROR") && /expired/.test(e.message),
      );
      assert.equal(dec.decode(await rep.load("get n")), "2");
    } finally {
      await rep.stop();
    }
  });

  it("an unknown outcome is retried with the same id and applied once", async () => {
    const store = new SlowOnceStore();
    const rep = await single(store, 300);
    try {
      // Without an id, the slow apply is an unknown outcome for the caller.
      store.delayMs = 800;
      await assert.rejects(rep.save("incr a"), (e: unknown) => isNexusError(e, "UNKNOWN_OUTCOME"));
      await new Promise((r) => setTimeout(r, 1000));
      assert.equal(dec.decode(await rep.load("get a")), "1");
      // With one, save() retries through it: the entry applied once, the retry gets its result.
      store.delayMs = 800;
      assert.equal(dec.decode(await rep.save("incr n", { idempotent: true })), "1");
      assert.equal(dec.decode(await rep.load("get n")), "1");
    } finally {
      await rep.stop();
    }
  });
});
