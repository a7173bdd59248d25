/**
 * The original README's "at runtime, nodes can be removed or new nodes added" walkthrough on
 * Redis, with real processes: three bin/redis_repl nodes on three private redis-servers, data
 * written before a fourth node is launched (with the three URLs and its own, as the original
 * does), `repl addNode`, the fourth Redis holding the earlier data, then `repl removeNode` of a
 * follower and of the leader, while a writer keeps saving. At the end every acknowledged write
 * is in the Redis of every remaining member. (redis-walkthrough.test.ts covers a new replica
 * catching up from a snapshot; this one catches up from the log.)
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { nodeIdOf } from "../../src/node/node-id.js";
import { startWriter } from "./membership-writer.js";
import { SqliteNode, leaderUrl, repl, tempDir, until } from "./programs.js";
import { redisCluster, redisFlags, redisMget, redisServers } from "./redis-nodes.js";
import { freePort } from "../free-port.js";

/** The member lines of `repl listNodes`-style output: `<id> => <url>[ (leader)]`. */
function memberLines(stdout: string): string[] {
  return stdout.split("\n").filter((l) => / => /.test(l));
}

describe("membership at runtime on Redis (the original's walkthrough)", () => {
  it(
    "addNode of a fourth node launched with the cluster's URLs and its own, then removeNode of a follower and of the leader, writes going on throughout",
    { timeout: 240_000 },
    async () => {
      const { nodes, redis } = await redisCluster(3);
      await Promise.all(nodes.map((n) => n.start()));
      const addr = nodes[0]!.addr;
      await until(
        "a leader",
        () => leaderUrl(addr),
        (l) => l !== "",
      );
      // Data written before the fourth node exists.
      for (const lua of [
        "return redis.call('set', 'hello', 'world')",
        "return redis.call('incr', 'ctr')",
        "return redis.call('incr', 'ctr')",
      ]) {
        const r = await repl(addr, "redis", "save", "db.index=2", lua);
        assert.equal(r.code, 0, r.stderr);
      }

      // A writer through the current members, all along.
      const members: SqliteNode[] = [...nodes];
      const writer = startWriter(
        () => members.map((n) => n.addr),
        (i) => `return redis.call('set', 'w${i}', '${i}')`,
        { "db.index": "3" },
      );
      const moreWrites = async (what: string, n = 10): Promise<void> => {
        const from = writer.acked.length;
        await until(
          what,
          async () => writer.acked.length,
          (k) => k >= from + n,
          30_000,
        );
      };
      try {
        await moreWrites("writes before node 4");

        // "Launch a node listening at a specific address": the cluster's URLs and its own, no
        // -nexus-node-state (it sees its URL is not among the cluster's and joins).
        const r4 = (await redisServers(1))[0]!;
        const fourth = new SqliteNode(
          await freePort(),
          await freePort(),
          join(tempDir(), "node4"),
          nodes.map((n) => n.url),
          [],
          "redis_repl",
          redisFlags(r4),
        );
        await fourth.start();
        const added = await repl(addr, "addNode", fourth.url);
        assert.equal(added.code, 0, added.stderr);
        assert.match(added.stdout, /^Current cluster members:\n/);
        const four = memberLines(added.stdout);
        assert.equal(four.length, 4, added.stdout);
        assert.ok(four.includes(`${nodeIdOf(fourth.url)} => ${fourth.url}`), added.stdout);
        members.push(fourth);
        // Node 4's Redis has what was written before it was launched.
        await until(
          "the earlier data in node 4's Redis",
          () => redisMget(r4, 2, ["hello", "ctr"]),
          (v) => v[0] === "world" && v[1] === "2",
        );
        await moreWrites("writes after node 4 joined");

        // Remove a follower.
        const leader = await leaderUrl(addr);
        const leaderNode = nodes.find((n) => n.url === leader)!;
        const follower = nodes.find((n) => n.url !== leader)!;
        members.splice(members.indexOf(follower), 1);
        const rm = await repl(leaderNode.addr, "removeNode", follower.url);
        assert.equal(rm.code, 0, rm.stderr);
        const three = memberLines(rm.stdout);
        assert.equal(three.length, 3, rm.stdout);
        assert.ok(!rm.stdout.includes(follower.url), rm.stdout);
        assert.equal(await follower.stop(), 0);
        await moreWrites("writes after the follower's removal");

        // Remove the leader, asking the leader itself: it commits the change and steps down; the
        // other two elect a leader and the writes go on.
        members.splice(members.indexOf(leaderNode), 1);
        const rmLeader = await repl(leaderNode.addr, "removeNode", leaderNode.url);
        assert.equal(rmLeader.code, 0, rmLeader.stderr);
        assert.ok(!memberLines(rmLeader.stdout).some((l) => l.includes(leaderNode.url)));
        // Its own view is the last it knew: it says so.
        assert.match(rmLeader.stdout, /is not a member: this view may be stale; ask another node/);
        const next = await until(
          "a new leader among the remaining two",
          () => leaderUrl(members[0]!.addr),
          (l) => l !== "" && l !== leaderNode.url,
        );
        assert.ok(
          members.some((n) => n.url === next),
          `${next} is one of the remaining members`,
        );
        await moreWrites("writes after the leader's removal");
        assert.equal(await leaderNode.stop(), 0);
        const listed = await repl(members[0]!.addr, "listNodes");
        assert.equal(listed.code, 0, listed.stderr);
        assert.deepEqual(
          memberLines(listed.stdout)
            .map((l) => l.split(" => ")[1]!.replace(" (leader)", ""))
            .sort(),
          members.map((n) => n.url).sort(),
        );

        const acked = await writer.stop();
        assert.ok(acked.length >= 50, `${acked.length} acknowledged writes`);
        // Every acknowledged write is in the Redis of every remaining member.
        const redisOf = new Map(nodes.map((n, i) => [n, redis[i]!]));
        redisOf.set(fourth, r4);
        const keys = acked.map((i) => `w${i}`);
        for (const srv of members.map((n) => redisOf.get(n)!)) {
          const values = await until(
            "every acknowledged write in every remaining Redis",
            () => redisMget(srv, 3, keys),
            (v) => v.every((x, j) => x === String(acked[j])),
          );
          assert.equal(values.length, acked.length);
        }
        console.log(
          `membership walkthrough: ${acked.length} writes acknowledged, ${writer.failed()} not (failed or outcome unknown; not counted, not retried)`,
        );
        await Promise.all(members.map((n) => n.stop()));
      } finally {
        await writer.stop();
      }
    },
  );
});
