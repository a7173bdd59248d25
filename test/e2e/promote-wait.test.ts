/**
 * `repl promoteNode --wait`, with real processes: the command waits for a learner that is not
 * running yet, shows its progress, and promotes it once it has caught up; it gives up after
 * --wait-timeout, and refuses on a node that is not the leader (only the leader knows the lag).
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { createNexusClient } from "../../src/api/client.js";
import { nodeIdOf } from "../../src/node/node-id.js";
import { freePort } from "../free-port.js";
import { SqliteNode, leaderUrl, repl, sqliteCluster, tempDir, until } from "./programs.js";

describe("promoteNode --wait (end to end)", { timeout: 240_000 }, async () => {
  const voters = await sqliteCluster(3);
  const learner = new SqliteNode(
    await freePort(),
    await freePort(),
    join(tempDir(), "learner"),
    voters.map((n) => n.url),
  );
  after(async () => {
    await Promise.all([...voters, learner].map((n) => n.stop("SIGKILL")));
  });
  await Promise.all(voters.map((n) => n.start()));
  const leaderAt = async (): Promise<SqliteNode> => {
    const url = await until(
      "a leader",
      () => leaderUrl(voters[0]!.addr),
      (u) => u !== "",
    );
    return voters.find((n) => n.url === url)!;
  };

  it("gives up after --wait-timeout while the learner does not run, and refuses on a follower", async () => {
    const head = await leaderAt();
    const added = await repl(head.addr, "addNode", learner.url, "--learner", "--no-probe");
    assert.equal(added.code, 0, added.stderr);
    const c = createNexusClient(head.addr);
    await c.save(new TextEncoder().encode("create table kv (k text primary key, v text)"));
    for (let i = 0; i < 20; i++) {
      await c.save(new TextEncoder().encode(`insert into kv values ('k${i}', '${i}')`));
    }
    c.close();
    const gaveUp = await repl(
      head.addr,
      "promoteNode",
      learner.url,
      "--wait",
      "--wait-timeout",
      "2",
    );
    assert.equal(gaveUp.code, 1, gaveUp.stderr);
    assert.match(gaveUp.stderr, /waiting for [0-9a-f]{16} to catch up: not answering/);
    assert.match(gaveUp.stderr, /did not catch up within 2 s .*not promoted/);
    const follower = voters.find((n) => n !== head)!;
    const atFollower = await repl(follower.addr, "promoteNode", learner.url, "--wait");
    assert.equal(atFollower.code, 1);
    assert.match(atFollower.stderr, /must be sent to the leader/);
    const list = await repl(head.addr, "listNodes");
    assert.match(list.stdout, new RegExp(`${nodeIdOf(learner.url)} learner`));
  });

  it("waits for the learner to catch up, then promotes it", async () => {
    const head = await leaderAt();
    const waiting = repl(head.addr, "promoteNode", learner.url, "--wait", "--max-lag", "0");
    await new Promise((r) => setTimeout(r, 1500));
    await learner.start();
    const done = await waiting;
    assert.equal(done.code, 0, done.stderr);
    assert.match(done.stderr, /caught up after [\d.]+ s; promoting/);
    assert.match(done.stdout, new RegExp(`${nodeIdOf(learner.url)} follower`));
  });
});
