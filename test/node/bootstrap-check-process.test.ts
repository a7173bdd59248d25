/**
 * Real `bin/sqlite_repl` processes and src/node/bootstrap-check.ts (issue 14, item 5): a node
 * without a write-ahead log starts empty only if no leader among its peers has heard from it.
 *
 * - A new cluster whose third member starts seconds after the others have elected a leader and
 *   committed a write starts it (the leader lists it with match 0).
 * - A node added with `addNode --no-probe` before it runs starts empty (a member, match 0).
 * - A follower that took part, whose log, snapshots and store were all deleted, restarted with its
 *   original command line, refuses: exit 2 and how to rejoin. Before, with nothing for the
 *   store's applied-index check to see, it bootstrapped a fresh log at term 1 with no vote.
 */
import { it } from "node:test";
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { EXIT } from "../../src/cli/exit-codes.js";
import { freePort } from "../free-port.js";
import { SqliteNode, leaderUrl, repl, sqliteCluster, until } from "../e2e/programs.js";

const countOn = (n: SqliteNode): Promise<string> =>
  repl("-consistency", "local", n.addr, "sqlite", "load", "select count(*) as c from t").then(
    (r) => (r.code === 0 ? r.stdout : `exit ${String(r.code)}: ${r.stderr}`),
  );

it("a late initial member and an added node start empty; a wiped member that took part refuses (exit 2)", async () => {
  const nodes = await sqliteCluster(3);
  const [a, b, late] = nodes as [SqliteNode, SqliteNode, SqliteNode];
  let added: SqliteNode | undefined;
  try {
    // A new cluster started staggered: two members elect a leader and commit a write first.
    await Promise.all([a.start(), b.start()]);
    await until(
      "a leader of two",
      () => leaderUrl(a.addr),
      (l) => l !== "",
    );
    let r = await repl(a.addr, "sqlite", "save", "create table t (v integer)");
    assert.equal(r.code, 0, r.stderr);
    r = await repl(a.addr, "sqlite", "save", "insert into t (v) values (1)");
    assert.equal(r.code, 0, r.stderr);
    await new Promise((res) => setTimeout(res, 2000));
    // The late member has no WAL; the leader knows it with match 0: it must start and catch up.
    await late.start();
    await until(
      "the late member caught up",
      () => countOn(late),
      (x) => /\b1\b/.test(x),
    );

    // A node added before it runs (--no-probe) starts empty: a member the leader never heard from.
    const rp = await freePort();
    added = new SqliteNode(rp, await freePort(), join(late.dir, "..", "added"), a.clusterUrls, [
      "-nexus-node-state=new",
    ]);
    r = await repl(a.addr, "addNode", added.url, "--no-probe", "--learner");
    assert.equal(r.code, 0, r.stderr);
    await added.start();
    await until(
      "the added node caught up",
      () => countOn(added!),
      (x) => /\b1\b/.test(x),
    );

    // A follower that took part loses everything (log, snapshots, store) and is restarted as it
    // was started: the leader lists it with match > 0, so it must refuse.
    const leader = await until(
      "a leader",
      () => leaderUrl(a.addr),
      (l) => l !== "",
    );
    const victim = nodes.find((n) => n.url !== leader)!;
    assert.equal(await victim.stop(), 0);
    for (const p of ["logs", "snap", "store.db", "store.db-wal", "store.db-shm"]) {
      rmSync(join(victim.dir, p), { recursive: true, force: true });
    }
    await assert.rejects(victim.start(), /exited with 2/);
    assert.equal(await victim.stop(), EXIT.USAGE);
    assert.match(victim.stderr, /already knows this node/);
    assert.match(victim.stderr, /log was lost/);
    assert.match(victim.stderr, new RegExp(`removeNode ${victim.url}`));
    assert.match(victim.stderr, /new data directory/);
  } finally {
    await Promise.all(
      [...nodes, ...(added === undefined ? [] : [added])].map((n) => n.stop("SIGKILL")),
    );
  }
});
