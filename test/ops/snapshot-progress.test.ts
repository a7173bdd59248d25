/**
 * A member receiving a snapshot, as an operator sees it, with real processes: a learner added to
 * a cluster whose leader compacted its log is sent a snapshot (slowed by a test hook so the
 * transfer lasts seconds); meanwhile `repl listNodes` on the leader shows it as receiving a
 * snapshot with its percent (text and `-o json`), `promoteNode --wait` says so, the leader's
 * /status carries it, and once the stream ends the member is shown without it.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { createNexusClient } from "../../src/api/client.js";
import { nodeIdOf } from "../../src/node/node-id.js";
import { SLOW_SNAPSHOT_SEND_ENV } from "../../src/node/test-hooks.js";
import type { ListNodesJson } from "../../src/cli/repl.js";
import { freePort } from "../free-port.js";
import { SqliteNode, leaderUrl, repl, sqliteCluster, tempDir, until } from "../e2e/programs.js";

describe("a member receiving a snapshot", { timeout: 240_000 }, async () => {
  // Every node sends snapshots in 16 KiB pieces, one per 250 ms (only the leader sends here):
  // some 30 pieces, 7 to 8 s, long enough for a progress log line (every 5 s) at each end.
  process.env[SLOW_SNAPSHOT_SEND_ENV] = "250";
  const flags = [
    "-nexus-snapshot-count=20",
    "-nexus-snapshot-catchup-entries=5",
    "-log-level=info",
  ];
  const voters = await sqliteCluster(3, flags);
  const learner = new SqliteNode(
    await freePort(),
    await freePort(),
    join(tempDir(), "learner"),
    voters.map((n) => n.url),
    flags,
  );
  const ports = [await freePort(), await freePort(), await freePort()];
  after(async () => {
    delete process.env[SLOW_SNAPSHOT_SEND_ENV];
    await Promise.all([...voters, learner].map((n) => n.stop("SIGKILL")));
  });
  await Promise.all(voters.map((n, i) => n.start([`-http-port=${ports[i]}`])));

  it("shows in listNodes (text and json), promoteNode --wait and /status, with its percent", async () => {
    const lead = await until(
      "a leader",
      () => leaderUrl(voters[0]!.addr),
      (u) => u !== "",
    );
    const li = voters.findIndex((n) => n.url === lead);
    const head = voters[li]!;
    const c = createNexusClient(head.addr, { timeoutMs: 20_000 });
    const enc = new TextEncoder();
    try {
      await c.save(enc.encode("CREATE TABLE t (v TEXT)"));
      // About 500 KB of incompressible text.
      for (let i = 0; i < 50; i++) {
        await c.save(enc.encode(`INSERT INTO t VALUES ('${randomBytes(5000).toString("hex")}')`));
      }
    } finally {
      c.close();
    }
    const added = await repl(head.addr, "addNode", learner.url, "--learner", "--no-probe");
    assert.equal(added.code, 0, added.stderr);
    await learner.start();
    const id = nodeIdOf(learner.url);
    // The text shows the learner receiving, with a percent once the leader knows the size.
    const text = await until(
      "listNodes showing the snapshot's percent",
      () => repl(head.addr, "listNodes"),
      (r) => new RegExp(`${id} learner .*receiving snapshot \\d+% \\(`).test(r.stdout),
      30_000,
    );
    assert.match(text.stdout, /receiving snapshot \d+% \([\d.]+ of [\d.]+ MB, index \d+\)/);
    const json = await repl(head.addr, "listNodes", "-o", "json");
    assert.equal(json.code, 0, json.stderr);
    const doc = JSON.parse(json.stdout) as ListNodesJson;
    const m = doc.members.find((x) => x.id === id);
    assert.ok(m?.snapshot, `the learner has no snapshot in ${json.stdout}`);
    assert.ok(m.snapshot.totalBytes !== null && m.snapshot.totalBytes > 400_000);
    assert.ok(m.snapshot.percent !== null && m.snapshot.percent >= 0 && m.snapshot.percent < 100);
    assert.ok(m.snapshot.index > 0);
    // The voters are receiving nothing.
    assert.ok(doc.members.filter((x) => x.id !== id).every((x) => x.snapshot === null));
    // promoteNode --wait says what the learner is doing (its first line comes at once).
    const wait = repl(
      head.addr,
      "promoteNode",
      learner.url,
      "--wait",
      "--max-lag",
      "0",
      "--wait-timeout",
      "60",
    );
    const st = (await (await fetch(`http://127.0.0.1:${ports[li]}/status`)).json()) as {
      members: { id: string; snapshot: { percent: number | null } | null }[];
    };
    const sm = st.members.find((x) => x.id === id);
    assert.ok(sm?.snapshot, `/status shows no snapshot for the learner: ${JSON.stringify(st)}`);
    const promoted = await wait;
    assert.equal(promoted.code, 0, promoted.stderr);
    assert.match(
      promoted.stderr,
      /waiting for [0-9a-f]{16} to catch up: answering, receiving snapshot/,
    );
    assert.match(promoted.stderr, /caught up after/);
    // Once it ended, the member is shown without one.
    const done = await repl(head.addr, "listNodes", "-o", "json");
    const after = (JSON.parse(done.stdout) as ListNodesJson).members.find((x) => x.id === id);
    assert.equal(after?.snapshot, null);
    assert.equal(after?.role, "follower");
    // Both ends logged their progress: the leader with percent and time left, the learner with
    // bytes and rate (it does not know the size).
    const logged = (text: string, msg: string): Record<string, unknown>[] =>
      text
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .filter((o) => o["msg"] === msg);
    const sending = logged(head.stderr, "snapshot sending");
    assert.ok(sending.length >= 1, head.stderr.slice(-2000));
    for (const k of ["bytes", "totalBytes", "percent", "bytesPerSecond", "secondsLeft"]) {
      assert.ok(k in sending[0]!, `snapshot sending has ${k}: ${JSON.stringify(sending[0])}`);
    }
    assert.equal(sending[0]!["peer"], id);
    const receiving = logged(learner.stderr, "snapshot receiving");
    assert.ok(receiving.length >= 1, learner.stderr.slice(-2000));
    assert.ok(Number(receiving[0]!["bytes"]) > 0 && Number(receiving[0]!["bytesPerSecond"]) > 0);
    // A whole stream is logged once at each end.
    assert.equal(logged(learner.stderr, "snapshot received").length, 1);
    assert.equal(logged(head.stderr, "snapshot sent").length, 1);
  });
});
