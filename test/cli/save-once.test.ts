import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { saveOnce } from "../../src/cli/save-once.js";
import { NexusError, isNexusError } from "../../src/errors/index.js";

const data = new TextEncoder().encode("insert into t values (1)");

describe("repl saves with a request id", () => {
  it("an unknown outcome is sent again with the same id and issue time", async () => {
    const seen: Record<string, string>[] = [];
    const client = {
      save: async (_d: Uint8Array, args: Record<string, string> = {}) => {
        seen.push(args);
        if (seen.length < 3) throw new NexusError("UNKNOWN_OUTCOME", "no answer");
        return new Uint8Array([1]);
      },
    };
    const retries: string[] = [];
    const r = await saveOnce(client, data, { params: "[1]" }, 10_000, (id) => retries.push(id));
    assert.deepEqual([...r], [1]);
    assert.equal(seen.length, 3);
    assert.equal(retries.length, 2);
    const id = seen[0]!["request-id"];
    assert.match(id ?? "", /^[0-9a-f-]{36}$/);
    for (const a of seen) {
      assert.deepEqual(a, seen[0]);
      assert.equal(a["params"], "[1]");
    }
  });

  it("NOT_SERVING comes back at once (nothing was written; the user goes to another node)", async () => {
    let calls = 0;
    const down = {
      save: async () => {
        calls++;
        throw new NexusError("NOT_SERVING", "this node's store is unavailable");
      },
    };
    await assert.rejects(saveOnce(down, data, {}, 10_000), (e) => isNexusError(e, "NOT_SERVING"));
    assert.equal(calls, 1);
  });

  it("a store error is not retried; an unknown outcome past the deadline is returned", async () => {
    let calls = 0;
    const failing = {
      save: async () => {
        calls++;
        throw new NexusError("STORE_ERROR", "no such table");
      },
    };
    await assert.rejects(saveOnce(failing, data, {}, 10_000), (e) =>
      isNexusError(e, "STORE_ERROR"),
    );
    assert.equal(calls, 1);
    const unknown = {
      save: async () => {
        throw new NexusError("UNKNOWN_OUTCOME", "no answer");
      },
    };
    const started = Date.now();
    await assert.rejects(saveOnce(unknown, data, {}, 500), (e) =>
      isNexusError(e, "UNKNOWN_OUTCOME"),
    );
    assert.ok(Date.now() - started < 2000);
  });
});
