/**
 * End to end, real bin/sqlite_repl processes: `repl outcome <request-id>` tells whether a save
 * with that id committed, its result and its index, from any node; a save's index read back
 * with `min-index` on a follower (read-your-writes).
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createNexusClient } from "../../src/api/client.js";
import type { SqliteNode } from "./programs.js";
import { leaderUrl, repl, sqliteCluster, until } from "./programs.js";

const enc = new TextEncoder();
const dec = new TextDecoder();

describe("repl outcome", () => {
  it("says whether an id committed, with its result and index, from any node; min-index reads it on a follower", async () => {
    const nodes = await sqliteCluster(3);
    await Promise.all(nodes.map((n) => n.start()));
    const [a, b, c] = nodes as [SqliteNode, SqliteNode, SqliteNode];
    const client = createNexusClient(a.addr);
    try {
      await until(
        "a leader",
        () => leaderUrl(a.addr),
        (u) => u !== "",
      );
      const made = await repl(a.addr, "sqlite", "save", "create table t (v text)");
      assert.equal(made.code, 0, made.stderr);
      const now = String(Date.now());
      const saved = await client.saveWithIndex(enc.encode("insert into t values ('x')"), {
        "request-id": "e2e-outcome-1",
        "request-issued-at": now,
      });
      await assert.rejects(
        client.save(enc.encode("insert into nowhere values (1)"), {
          "request-id": "e2e-outcome-2",
          "request-issued-at": now,
        }),
      );

      const ok = await repl(b.addr, "outcome", "e2e-outcome-1");
      assert.equal(ok.code, 0, ok.stderr);
      assert.equal(
        ok.stdout,
        `Request e2e-outcome-1 committed at index ${saved.index}, ok (without quotes): ` +
          `'${dec.decode(saved.data)}'\n`,
      );
      const failed = await repl(c.addr, "outcome", "e2e-outcome-2", "-o", "json");
      assert.equal(failed.code, 1, failed.stderr);
      const doc = JSON.parse(failed.stdout) as Record<string, unknown>;
      assert.equal(doc["committed"], true);
      assert.equal(doc["ok"], false);
      assert.equal(doc["index"], saved.index + 1);
      assert.match(String(doc["error"]), /no such table: nowhere/);
      const none = await repl(c.addr, "outcome", "e2e-never-sent");
      assert.equal(none.code, 1, none.stderr);
      assert.match(
        none.stdout,
        /^Request e2e-never-sent did not commit \(no record up to index \d+\)/,
      );
      const bad = await repl(c.addr, "outcome", "has space");
      assert.equal(bad.code, 2, bad.stdout);

      // Read-your-writes on a follower, with the save's index.
      const follower = createNexusClient(c.addr);
      try {
        const rows = await follower.load(enc.encode("select v from t"), {
          "min-index": String(saved.index),
          consistency: "local",
        });
        assert.deepEqual(JSON.parse(dec.decode(rows)), [{ v: "x" }]);
      } finally {
        follower.close();
      }
      // The same through repl's flags: -min-index, and a bounded read on the follower.
      const mine = await repl(
        "-min-index",
        String(saved.index),
        c.addr,
        "sqlite",
        "load",
        "select v from t",
      );
      assert.equal(mine.code, 0, mine.stderr);
      assert.equal(mine.stdout, `Response from SQLite (without quotes): '[{"v":"x"}]'\n`);
      const bounded = await repl(
        "-consistency",
        "bounded",
        "-max-lag-ms",
        "60000",
        c.addr,
        "sqlite",
        "load",
        "select count(*) as n from t",
      );
      assert.equal(bounded.code, 0, bounded.stderr);
      assert.equal(bounded.stdout, `Response from SQLite (without quotes): '[{"n":1}]'\n`);
      // A bounded read without a limit is the node's INVALID_ARGUMENT; a bad -on-stale, a usage error.
      const unbounded = await repl("-consistency", "bounded", c.addr, "sqlite", "load", "select 1");
      assert.notEqual(unbounded.code, 0, unbounded.stdout);
      assert.match(unbounded.stderr, /INVALID_ARGUMENT|limit/i);
      const badStale = await repl("-on-stale", "maybe", c.addr, "sqlite", "load", "select 1");
      assert.equal(badStale.code, 2, badStale.stderr);
    } finally {
      client.close();
      await Promise.all(nodes.map((n) => n.stop()));
    }
  });
});
