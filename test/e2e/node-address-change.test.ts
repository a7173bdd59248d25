/**
 * Moving a node to a new address with real processes, as docs/backup.md describes it: a node's
 * id is derived from its URL, so a move is a new member at the new address and the old one
 * removed. Step by step (addNode --learner at the new address, promoteNode --wait, removeNode
 * the old one), then in one step (replaceNode). The new node starts with empty folders and
 * receives the data from the cluster (a snapshot, as the log was compacted): nothing is copied
 * by hand. A writer saves throughout; every acknowledged row reaches the new nodes, and the old
 * ones leave the member list.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { freePort } from "../free-port.js";
import { startWriter } from "./membership-writer.js";
import { SqliteNode, leaderUrl, repl, sqliteCluster, tempDir, until } from "./programs.js";
import { loadOne, waitForLeader } from "./backup-scenario.js";

const SNAPSHOTS = ["-nexus-snapshot-count=20", "-nexus-snapshot-catchup-entries=5"];

/** A node at a new address with empty folders, joining the cluster of `members`. */
async function movedNode(members: readonly SqliteNode[]): Promise<SqliteNode> {
  return new SqliteNode(
    await freePort(),
    await freePort(),
    join(tempDir("nexus-moved-"), "node"),
    members.map((n) => n.url),
    SNAPSHOTS,
  );
}

async function leaderAddr(nodes: readonly SqliteNode[]): Promise<string> {
  const url = await until(
    "a leader",
    () => leaderUrl(nodes[0]!.addr),
    (u) => nodes.some((n) => n.url === u),
    30_000,
  );
  return nodes.find((n) => n.url === url)!.addr;
}

const urlsIn = (listNodes: string): string[] =>
  [...listNodes.matchAll(/=> (\S+)/g)].map((m) => m[1]!).sort();

describe("changing a node's address (real processes)", () => {
  it(
    "moves one node step by step (learner, promote, remove) and another with replaceNode, under writes",
    { timeout: 300_000 },
    async () => {
      const nodes = await sqliteCluster(3, SNAPSHOTS);
      await Promise.all(nodes.map((n) => n.start()));
      const [n1, n2, n3] = nodes as [SqliteNode, SqliteNode, SqliteNode];
      await waitForLeader(n1.addr);
      const c = await repl(n1.addr, "sqlite", "save", "create table t (i integer primary key)");
      assert.equal(c.code, 0, c.stderr);
      const writer = startWriter(
        () => [n1.addr],
        (i) => `insert into t values (${i + 1})`,
      );
      await until(
        "30 saves (past a snapshot and compaction)",
        async () => writer.acked.length,
        (n) => n >= 30,
        60_000,
      );

      // Step by step: n3 moves to a new address.
      const n3b = await movedNode(nodes);
      await n3b.start();
      const added = await repl(await leaderAddr(nodes), "addNode", n3b.url, "--learner");
      assert.equal(added.code, 0, added.stderr);
      const promoted = await repl(
        await leaderAddr(nodes),
        "promoteNode",
        n3b.url,
        "--wait",
        "--wait-timeout",
        "60",
      );
      assert.equal(promoted.code, 0, promoted.stderr);
      const removed = await repl(n1.addr, "removeNode", n3.url);
      assert.equal(removed.code, 0, removed.stderr);
      assert.deepEqual(urlsIn(removed.stdout), [n1.url, n2.url, n3b.url].sort());
      await n3.stop();

      // In one step: n2 moves with replaceNode (one joint change).
      const now = [n1, n2, n3b];
      const n2b = await movedNode(now);
      await n2b.start();
      const replaced = await repl(n1.addr, "replaceNode", n2.url, n2b.url);
      assert.equal(replaced.code, 0, replaced.stderr);
      assert.deepEqual(urlsIn(replaced.stdout), [n1.url, n2b.url, n3b.url].sort());
      await n2.stop();

      await until(
        "10 more saves with the moved nodes",
        async () => writer.acked.length,
        (n) => n >= 50,
        60_000,
      );
      const acked = await writer.stop();
      const last = acked.at(-1)! + 1;
      const final = [n1, n2b, n3b];
      for (const n of final) {
        const list = await repl(n.addr, "listNodes");
        assert.deepEqual(urlsIn(list.stdout), final.map((x) => x.url).sort(), list.stdout);
        assert.match(list.stdout, /\(leader\)/);
        // Every acknowledged row is in the moved nodes' own stores.
        const rows = await until(
          `${n.url} to have every acknowledged row`,
          async () =>
            (
              await loadOne<{ rows: string }>(
                n.addr,
                "select group_concat(i) as rows from (select i from t order by i)",
              )
            ).rows
              .split(",")
              .map(Number),
          (r) => r.includes(last),
          30_000,
        );
        const have = new Set(rows);
        assert.deepEqual(
          acked.map((i) => i + 1).filter((i) => !have.has(i)),
          [],
          `${n.url} lacks acknowledged rows`,
        );
      }
    },
  );
});
