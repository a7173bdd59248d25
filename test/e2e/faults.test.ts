/**
 * End to end under faults: SIGKILL of the leader and its restart; a save whose outcome is unknown.
 * Real bin/sqlite_repl processes, driven only through bin/repl.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { SqliteNode } from "./programs.js";
import { leaderUrl, repl, sqliteCluster, until } from "./programs.js";

const rowsOf = async (addr: string, consistency = "linearizable"): Promise<string> => {
  const r = await repl(
    "-consistency",
    consistency,
    addr,
    "sqlite",
    "load",
    "select v from t order by v",
  );
  return r.code === 0 ? r.stdout : `exit ${r.code}: ${r.stderr}`;
};

describe("faults end to end", () => {
  it("SIGKILL of the leader: writes go on through the others, the restarted node catches up, replicas end identical", async () => {
    const nodes = await sqliteCluster(3);
    await Promise.all(nodes.map((n) => n.start()));
    const first = await until(
      "a leader",
      () => leaderUrl(nodes[0]!.addr),
      (l) => l !== "",
    );
    const r0 = await repl(
      nodes[0]!.addr,
      "sqlite",
      "save",
      "create table t (v integer primary key)",
    );
    assert.equal(r0.code, 0, r0.stderr);
    for (let i = 1; i <= 5; i++) {
      const r = await repl(nodes[i % 3]!.addr, "sqlite", "save", `insert into t values (${i})`);
      assert.equal(r.code, 0, r.stderr);
    }

    const killed = nodes.find((n) => n.url === first)!;
    const rest = nodes.filter((n) => n !== killed) as [SqliteNode, SqliteNode];
    assert.equal(await killed.stop("SIGKILL"), null);
    // A save right after the kill rides out the election (the node retries only what was never
    // proposed) and is acknowledged by the two survivors.
    for (let i = 6; i <= 10; i++) {
      const r = await repl(rest[i % 2]!.addr, "sqlite", "save", `insert into t values (${i})`);
      assert.equal(r.code, 0, `save ${i}: ${r.stderr}`);
    }
    const second = await leaderUrl(rest[0].addr);
    assert.notEqual(second, first);
    assert.ok(rest.some((n) => n.url === second));

    await killed.start();
    const want = await rowsOf(rest[0].addr);
    assert.match(want, /'\[\{"v":1\},.*\{"v":10\}\]'/);
    // The restarted node's own store (a local read) catches up with every acknowledged save.
    await until(
      "the restarted node to catch up",
      () => rowsOf(killed.addr, "local"),
      (v) => v === want,
    );
    for (const n of nodes) assert.equal(await rowsOf(n.addr, "local"), want);
    const codes = await Promise.all(nodes.map((n) => n.stop()));
    assert.deepEqual(codes, [0, 0, 0]);
  });

  it("a save that cannot reach a quorum ends with an unknown outcome (exit 4), is not retried, and may still take effect", async () => {
    // The leader must still lead when the insert arrives, after both followers were killed and a
    // repl process started: with check-quorum it steps down one election timeout after it last
    // heard from a quorum, and 1 s was too short on a busy CI machine (NO_LEADER instead of 4).
    const nodes = await sqliteCluster(3, ["-nexus-repl-timeout=1", "-nexus-election-ms=5000"]);
    await Promise.all(nodes.map((n) => n.start()));
    const leader = await until(
      "a leader",
      () => leaderUrl(nodes[0]!.addr),
      (l) => l !== "",
    );
    const l = nodes.find((n) => n.url === leader)!;
    const followers = nodes.filter((n) => n !== l);
    assert.equal((await repl(l.addr, "sqlite", "save", "create table t (v integer)")).code, 0);
    for (const f of followers) await f.stop("SIGKILL");

    // The leader has proposed the insert but cannot commit it.
    const r = await repl(l.addr, "sqlite", "save", "insert into t values (42)");
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stderr, /outcome unknown: .*may or may not/);
    assert.equal(r.stdout, "");

    // One follower comes back. It cannot win an election against the old leader, whose log is
    // longer, so the old leader's entry commits: the outcome was indeed unknown, and exactly one
    // row exists (no blind retry happened anywhere).
    await followers[0]!.start();
    const one = "Response from SQLite (without quotes): '[{\"v\":42}]'\n";
    const got = await until(
      "the pending insert to settle",
      async () => {
        const x = await repl(followers[0]!.addr, "sqlite", "load", "select v from t");
        return x.stdout;
      },
      (v) => v === one,
      60_000,
    );
    assert.equal(got, one);
    await followers[1]!.start();
    await until(
      "the last follower to catch up",
      async () =>
        (await repl("-consistency=local", followers[1]!.addr, "sqlite", "load", "select v from t"))
          .stdout,
      (v) => v === one,
    );
    await Promise.all(nodes.map((n) => n.stop()));
  });
});
