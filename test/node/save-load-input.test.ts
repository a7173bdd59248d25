/**
 * save() and load() take a string (sent as UTF-8) as well as bytes; anything else is refused
 * with INVALID_ARGUMENT before it reaches the log.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { MemoryStore } from "../../src/store/memory/memory-store.js";
import { isNexusError } from "../../src/errors/index.js";
import { loneReplicator, until } from "./helpers.js";
import { tempDir } from "../temp-dir.js";

const dec = new TextDecoder();

describe("save and load input", () => {
  it("take strings and bytes alike; other values are INVALID_ARGUMENT and write nothing", async () => {
    const root = tempDir("nexus-input-");
    const rep = await loneReplicator(root, { store: new MemoryStore() });
    await rep.start();
    try {
      await until(() => rep.status().role === "leader", 10_000, "the single node to lead");
      // Non-ASCII text survives: the string is sent as UTF-8.
      assert.equal(dec.decode(await rep.save("set greeting héllo")), "OK");
      assert.equal(dec.decode(await rep.load("get greeting")), "héllo");
      assert.equal(dec.decode(await rep.save(new TextEncoder().encode("set n 1"))), "OK");
      assert.equal(dec.decode(await rep.load(new TextEncoder().encode("get n"))), "1");
      const applied = rep.status().applied;
      for (const bad of [42, null, undefined, { data: "set x 1" }, ["set x 1"]]) {
        for (const call of [
          () => rep.save(bad as unknown as string),
          () => rep.load(bad as unknown as string),
        ]) {
          await assert.rejects(call(), (err: unknown) => {
            assert.ok(isNexusError(err, "INVALID_ARGUMENT"), String(err));
            assert.match(err.message, /takes a string or a Uint8Array/);
            return true;
          });
        }
      }
      assert.equal(rep.status().applied, applied, "a refused save wrote nothing");
    } finally {
      await rep.stop();
    }
  });
});
