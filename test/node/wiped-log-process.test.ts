/**
 * A real `bin/sqlite_repl` node restarted with its log directory emptied (its SQLite store kept)
 * refuses to start: exit 2 (BAD_CONFIG in src/cli/exit-codes.ts) and a message saying how to
 * rejoin. Before (issue 14, item 5) it bootstrapped a fresh log at term 1 and rejoined.
 */
import { it } from "node:test";
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { EXIT } from "../../src/cli/exit-codes.js";
import { leaderUrl, repl, sqliteCluster, until } from "../e2e/programs.js";

it("a node whose log directory was emptied refuses to start (exit 2) and says how to rejoin", async () => {
  const nodes = await sqliteCluster(3);
  try {
    await Promise.all(nodes.map((n) => n.start()));
    await until(
      "a leader",
      () => leaderUrl(nodes[0]!.addr),
      (l) => l !== "",
    );
    const r = await repl(nodes[0]!.addr, "sqlite", "save", "create table t (v integer)");
    assert.equal(r.code, 0, r.stderr);
    const victim = nodes[2]!;
    await until(
      "the write applied on the victim",
      () => repl("-consistency", "local", victim.addr, "sqlite", "load", "select count(*) from t"),
      (x) => x.code === 0,
    );
    assert.equal(await victim.stop(), 0);
    rmSync(join(victim.dir, "logs"), { recursive: true, force: true });
    await assert.rejects(victim.start(), /exited with 2/);
    assert.equal(await victim.stop(), EXIT.USAGE);
    assert.match(victim.stderr, /log was lost/);
    assert.match(victim.stderr, /removeNode/);
    assert.match(victim.stderr, /new data directory/);
  } finally {
    await Promise.all(nodes.map((n) => n.stop("SIGKILL")));
  }
});
