/**
 * Runtime membership end to end on SQLite, with real bin/sqlite_repl processes driven through
 * bin/repl (and the gRPC client for the writers): learners (they receive the data and serve local
 * reads, never vote, never count toward a commit, never lead), promotion (refused while the
 * learner lags), replaceNode and addNode --no-probe, a restart of every node after the changes,
 * leadership transfer under load, a leader SIGKILLed in the middle of a joint change, a node
 * started by mistake with its own URL among the cluster's, and every refused change with its
 * exit code, its message and the member list unchanged.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { createNexusClient } from "../../src/api/client.js";
import { nodeIdOf } from "../../src/node/node-id.js";
import { startWriter } from "./membership-writer.js";
import type { RunResult } from "./programs.js";
import { SqliteNode, leaderUrl, repl, sqliteCluster, tempDir, until } from "./programs.js";
import { freePort } from "../free-port.js";

const HOOK = "NEXUS_TEST_PAUSE_BEFORE_LEAVE_JOINT_MS";

/** The member lines of listNodes-style output, `<id> => <url>[ (leader)]`. */
function memberLines(stdout: string): string[] {
  return stdout.split("\n").filter((l) => / => /.test(l));
}

/** The member URLs of listNodes-style output, sorted. */
function memberUrls(stdout: string): string[] {
  return memberLines(stdout)
    .map((l) => l.split(" => ")[1]!.replace(" (leader)", ""))
    .sort();
}

/** The role table row of `url`'s id: { role, reachable, match, lag }. */
function row(stdout: string, url: string): { role: string; reachable: string; lag: string } {
  const line = stdout
    .split("\n")
    .find((l) => l.startsWith(`${nodeIdOf(url)} `) && !l.includes("=>"));
  assert.ok(line !== undefined, `no row for ${url} in:\n${stdout}`);
  const [, role, reachable, , lag] = line.split(/\s+/);
  return { role: role!, reachable: reachable!, lag: lag! };
}

/** A new node (not an initial member) that joins `nodes`' cluster, on SQLite. */
async function newNode(
  nodes: readonly SqliteNode[],
  extra: readonly string[] = [],
): Promise<SqliteNode> {
  return new SqliteNode(
    await freePort(),
    await freePort(),
    join(tempDir(), "joining"),
    nodes.map((n) => n.url),
    extra,
  );
}

/** Saves statements one after another through the gRPC client (faster than one repl each). */
async function saveAll(addr: string, statements: readonly string[]): Promise<void> {
  const c = createNexusClient(addr, { timeoutMs: 20_000 });
  try {
    for (const sql of statements) await c.save(new TextEncoder().encode(sql));
  } finally {
    c.close();
  }
}

/** The member lines `listNodes` would print, through the gRPC client. */
async function listedMembers(addr: string): Promise<string[]> {
  const c = createNexusClient(addr, { timeoutMs: 20_000 });
  try {
    const { leader, nodes } = await c.listNodes();
    return nodes.map((n) => `${n.id} => ${n.url}${n.id === leader ? " (leader)" : ""}`);
  } finally {
    c.close();
  }
}

const save = (addr: string, sql: string, ...flags: string[]): Promise<RunResult> =>
  repl(...flags, addr, "sqlite", "save", sql);
const localRead = (addr: string, sql: string): Promise<RunResult> =>
  repl("-consistency=local", addr, "sqlite", "load", sql);
const says = (v: string): string => `Response from SQLite (without quotes): '${v}'\n`;

async function leaderNode(nodes: readonly SqliteNode[], via = nodes[0]!): Promise<SqliteNode> {
  // A leader that the asked node names and that says so itself (views lag after an election).
  let found: SqliteNode | undefined;
  await until(
    "a leader",
    async () => {
      const url = await leaderUrl(via.addr);
      found = nodes.find((n) => n.url === url);
      return found !== undefined && (await leaderUrl(found.addr)) === url;
    },
    (ok) => ok,
  );
  return found!;
}

/** Waits until every node's local SQLite has `n` rows in kv. */
async function rowsEverywhere(nodes: readonly SqliteNode[], n: number): Promise<void> {
  for (const node of nodes) {
    await until(
      `${n} rows on ${node.url}`,
      async () => (await localRead(node.addr, "select count(*) as n from kv")).stdout,
      (o) => o === says(`[{"n":${n}}]`),
      30_000,
    );
  }
}

/** Every acknowledged key (k<i>) is in every node's local SQLite. */
async function allAckedPresent(
  nodes: readonly SqliteNode[],
  acked: readonly number[],
): Promise<void> {
  const want = JSON.stringify(
    acked.map((i) => ({ k: `k${i}` })).sort((a, b) => (a.k < b.k ? -1 : 1)),
  );
  for (const node of nodes) {
    await until(
      `every acknowledged write on ${node.url}`,
      async () => {
        const r = await localRead(node.addr, "select k from kv order by k");
        const m = /^Response from SQLite \(without quotes\): '(.*)'\n$/s.exec(r.stdout);
        if (m === null) return `${r.stdout}${r.stderr}`;
        const have = new Set((JSON.parse(m[1]!) as { k: string }[]).map((x) => x.k));
        const missing = acked.filter((i) => !have.has(`k${i}`));
        return missing.length === 0 ? want : `missing ${missing.length}: k${missing[0]}...`;
      },
      (v) => v === want,
      30_000,
    );
  }
}

describe("learners and promotion (end to end)", () => {
  it(
    "a learner receives the data and serves local reads, never counts toward a commit, never leads; promotion is refused while it lags, then makes it a voter",
    { timeout: 240_000 },
    async () => {
      // Two voters: a quorum needs both.
      const voters = await sqliteCluster(2, ["-nexus-repl-timeout=2"]);
      await Promise.all(voters.map((n) => n.start()));
      const lead = await leaderNode(voters);
      assert.equal((await save(lead.addr, "create table kv (k text primary key, v text)")).code, 0);
      assert.equal((await save(lead.addr, "insert into kv values ('a', '1')")).code, 0);
      const learner = await newNode(voters, ["-nexus-repl-timeout=2"]);
      await learner.start();
      const added = await repl(lead.addr, "addNode", learner.url, "--learner");
      assert.equal(added.code, 0, added.stderr);
      assert.equal(row(added.stdout, learner.url).role, "learner");
      assert.equal(memberLines(added.stdout).length, 3);
      // It receives the data, and serves local reads.
      await rowsEverywhere([learner], 1);
      assert.equal(
        (await localRead(learner.addr, "select v from kv where k = 'a'")).stdout,
        says('[{"v":"1"}]'),
      );
      // A linearizable read through the learner works too (the leader confirms it).
      assert.equal(
        (await repl(learner.addr, "sqlite", "load", "select count(*) as n from kv")).stdout,
        says('[{"n":1}]'),
      );

      // The learner down: writes commit (it does not count).
      await learner.stop();
      assert.equal((await save(lead.addr, "insert into kv values ('b', '2')")).code, 0);
      await learner.start();
      await rowsEverywhere([learner], 2);

      // A voter down: with the learner up, nothing commits (2 voters, 1 answers), and the
      // learner never takes over.
      const other = voters.find((n) => n !== lead)!;
      await other.stop();
      const stuck = await save(lead.addr, "insert into kv values ('c', '3')", "-timeout=20");
      assert.notEqual(stuck.code, 0, "a save without a quorum must not be acknowledged");
      assert.match(stuck.stderr, /outcome unknown|NO_LEADER|NOT_SERVING|not accepted/);
      const during = await repl(learner.addr, "listNodes");
      assert.ok(!during.stdout.includes(`${learner.url} (leader)`), during.stdout);
      assert.equal(row(during.stdout, learner.url).role, "learner");
      await other.start();
      const back = await leaderNode(voters, learner);
      // The unacknowledged save may or may not have been applied: take it out either way.
      assert.equal((await save(back.addr, "delete from kv where k = 'c'")).code, 0);
      assert.notEqual(back.url, learner.url);
      const t = await repl(back.addr, "transferLeader", learner.url);
      assert.equal(t.code, 1);
      assert.match(t.stderr, /MEMBERSHIP_REFUSED: .* is a learner; only a voter can lead/);

      // Promotion refused while the learner lags: stop it and write.
      await learner.stop();
      await saveAll(
        back.addr,
        Array.from({ length: 15 }, (_, i) => `insert into kv values ('x${i}', '${i}')`),
      );
      const head = await leaderNode(voters);
      const before = await repl(head.addr, "listNodes");
      const refused = await repl(head.addr, "promoteNode", learner.url, "--max-lag", "5");
      assert.equal(refused.code, 1, refused.stderr);
      assert.match(
        refused.stderr,
        /MEMBERSHIP_REFUSED: .* does not answer the leader and is \d+ entries behind the leader \(at most 5 allowed\); wait for it to catch up/,
      );
      const unchanged = await repl(head.addr, "listNodes");
      assert.deepEqual(memberLines(unchanged.stdout), memberLines(before.stdout));
      assert.equal(row(unchanged.stdout, learner.url).role, "learner");
      assert.ok(Number(row(unchanged.stdout, learner.url).lag) > 5, unchanged.stdout);
      // Only the leader knows the lag: a follower refuses and says so.
      const atFollower = await repl(
        voters.find((n) => n !== head)!.addr,
        "promoteNode",
        learner.url,
      );
      assert.equal(atFollower.code, 1);
      assert.match(atFollower.stderr, /NOT_LEADER: only the leader knows whether .* has caught up/);
      // Back up and caught up: promoted.
      await learner.start();
      await until(
        "the learner to catch up",
        async () => row((await repl(head.addr, "listNodes")).stdout, learner.url),
        (r) => r.reachable === "yes" && r.lag === "0",
      );
      const promoted = await repl(head.addr, "promoteNode", learner.url, "--max-lag", "5");
      assert.equal(promoted.code, 0, promoted.stderr);
      assert.equal(row(promoted.stdout, learner.url).role, "follower");
      // Now it counts: with the other original voter down, the leader and it commit (2 of 3).
      await voters.find((n) => n !== head)!.stop();
      const ok = await save(head.addr, "insert into kv values ('d', '4')", "-timeout=20");
      assert.equal(ok.code, 0, ok.stderr);
      await rowsEverywhere([learner], 18);
      await Promise.all([...voters, learner].map((n) => n.stop()));
    },
  );
});

describe("replacing and adding nodes, then restarting every node (end to end)", () => {
  it(
    "replaceNode moves a replica in one joint change; addNode --no-probe before launch; every node restarted comes back with the current membership",
    { timeout: 240_000 },
    async () => {
      const nodes = await sqliteCluster(3, [
        "-nexus-snapshot-count=20",
        "-nexus-snapshot-catchup-entries=5",
      ]);
      await Promise.all(nodes.map((n) => n.start()));
      const [n1, n2, n3] = nodes as [SqliteNode, SqliteNode, SqliteNode];
      await leaderNode(nodes);
      assert.equal((await save(n1.addr, "create table kv (k text primary key, v text)")).code, 0);
      assert.equal((await save(n2.addr, "insert into kv values ('a', '1')")).code, 0);

      // replaceNode n3 -> n4 (n4 launched first).
      const n4 = await newNode(nodes, [
        "-nexus-snapshot-count=20",
        "-nexus-snapshot-catchup-entries=5",
      ]);
      await n4.start();
      const moved = await repl(n1.addr, "replaceNode", n3.url, n4.url);
      assert.equal(moved.code, 0, moved.stderr);
      assert.deepEqual(memberUrls(moved.stdout), [n1.url, n2.url, n4.url].sort());
      assert.doesNotMatch(moved.stdout, /joint membership change is under way/);
      await rowsEverywhere([n4], 1);
      assert.equal(await n3.stop(), 0);

      // addNode --no-probe: added before it runs (the probe would refuse it), launched after.
      const n5 = await newNode(nodes, [
        "-nexus-snapshot-count=20",
        "-nexus-snapshot-catchup-entries=5",
      ]);
      const probed = await repl(n2.addr, "addNode", n5.url);
      assert.equal(probed.code, 1);
      assert.match(probed.stderr, /does not answer .*--no-probe/);
      const early = await repl(n2.addr, "addNode", n5.url, "--no-probe");
      assert.equal(early.code, 0, early.stderr);
      assert.equal(row(early.stdout, n5.url).role, "follower");
      await n5.start();
      // Enough writes for snapshots and compaction past every membership change.
      await saveAll(
        n4.addr,
        Array.from({ length: 30 }, (_, i) => `insert into kv values ('k${i}', '${i}')`),
      );
      const live = [n1, n2, n4, n5];
      await rowsEverywhere(live, 31);

      // Every node restarted with the command line it was first started with.
      await Promise.all(live.map((n) => n.stop()));
      await Promise.all(live.map((n) => n.start()));
      const lead = await leaderNode(live, n5);
      for (const n of live) {
        const l = await until(
          `${n.url} to know the leader`,
          () => repl(n.addr, "listNodes"),
          (r) => r.stdout.includes(`${lead.url} (leader)`),
        );
        assert.deepEqual(memberUrls(l.stdout), live.map((x) => x.url).sort());
      }
      assert.equal((await save(n5.addr, "insert into kv values ('after', 'restart')")).code, 0);
      await rowsEverywhere(live, 32);
      await Promise.all(live.map((n) => n.stop()));
    },
  );
});

describe("leadership transfer under load (end to end)", () => {
  it(
    "transferLeader to a named voter and to the most up-to-date one while a writer writes: the target leads, writes go on, none acknowledged is lost",
    { timeout: 240_000 },
    async () => {
      const nodes = await sqliteCluster(3);
      await Promise.all(nodes.map((n) => n.start()));
      const first = await leaderNode(nodes);
      assert.equal(
        (await save(first.addr, "create table kv (k text primary key, v text)")).code,
        0,
      );
      const writer = startWriter(
        () => nodes.map((n) => n.addr),
        (i) => `insert into kv values ('k${i}', '${i}')`,
      );
      const moreWrites = async (what: string): Promise<void> => {
        const from = writer.acked.length;
        await until(
          what,
          async () => writer.acked.length,
          (k) => k >= from + 20,
          30_000,
        );
      };
      try {
        await moreWrites("writes before the transfer");
        const target = nodes.find((n) => n !== first)!;
        // Asked through a third node: forwarded to the leader.
        const via = nodes.find((n) => n !== first && n !== target)!;
        const t = await repl(via.addr, "transferLeader", target.url);
        assert.equal(t.code, 0, t.stderr);
        assert.match(t.stdout, new RegExp(`^Leadership transferred to ${target.url}\n`));
        assert.ok(t.stdout.includes(`${target.url} (leader)`), t.stdout);
        await moreWrites("writes after the first transfer");
        // No target: the leader picks the most up-to-date other voter.
        const t2 = await repl(target.addr, "transferLeader");
        assert.equal(t2.code, 0, t2.stderr);
        const m = /^Leadership transferred to (\S+)\n/.exec(t2.stdout);
        assert.ok(m !== null, t2.stdout);
        assert.notEqual(m[1], target.url);
        assert.ok(nodes.some((n) => n.url === m[1]));
        assert.equal(await leaderUrl(target.addr), m[1]);
        await moreWrites("writes after the second transfer");
        // Without a target, a follower cannot know who is most up to date.
        const t3 = await repl(target.addr, "transferLeader");
        assert.equal(t3.code, 1);
        assert.match(t3.stderr, /NOT_LEADER: choosing the most up-to-date voter needs the leader/);
        const acked = await writer.stop();
        console.log(
          `transfer under load: ${acked.length} writes acknowledged, ${writer.failed()} not`,
        );
        await allAckedPresent(nodes, acked);
      } finally {
        await writer.stop();
      }
      await Promise.all(nodes.map((n) => n.stop()));
    },
  );
});

describe("a leader killed in the middle of a joint change (end to end)", () => {
  it(
    "SIGKILL of the leader after it entered the joint configuration and before it left it: the cluster ends in the new configuration, no acknowledged write lost",
    { timeout: 240_000 },
    async () => {
      const nodes = await sqliteCluster(3);
      const [n1, n2, n3] = nodes as [SqliteNode, SqliteNode, SqliteNode];
      // n1 carries the test hook: as leader it freezes right before sending the leave-joint entry.
      process.env[HOOK] = "120000";
      try {
        await n1.start();
      } finally {
        delete process.env[HOOK];
      }
      await Promise.all([n2.start(), n3.start()]);
      await leaderNode(nodes);
      const moved = await repl(n2.addr, "transferLeader", n1.url);
      assert.equal(moved.code, 0, moved.stderr);
      assert.equal((await save(n1.addr, "create table kv (k text primary key, v text)")).code, 0);
      const n4 = await newNode(nodes);
      await n4.start();
      const members = [n2, n3];
      const writer = startWriter(
        () => members.map((n) => n.addr),
        (i) => `insert into kv values ('k${i}', '${i}')`,
      );
      try {
        await until(
          "writes before the change",
          async () => writer.acked.length,
          (k) => k >= 20,
          30_000,
        );
        const change = repl(n1.addr, "replaceNode", n3.url, n4.url);
        await until(
          "the leader to enter the joint configuration",
          async () => n1.stderr,
          (e) => e.includes("test hook: paused before leaving the joint configuration"),
          30_000,
        );
        // The frozen leader still answers listNodes from its own configuration, the joint one:
        // both halves are listed. Its Ready loop is frozen, so once the others elected a leader
        // (one election timeout) n1 knows of it, and the table is that leader's, which may have
        // finished the change already; while n1 still believes it leads, the table is its own.
        const joint = await repl(n1.addr, "listNodes");
        assert.deepEqual(memberUrls(joint.stdout), [n1.url, n2.url, n3.url, n4.url].sort());
        if (joint.stdout.includes(`=> ${n1.url} (leader)`)) {
          assert.match(joint.stdout, /a joint membership change is under way/);
        }
        await n1.stop("SIGKILL");
        const r = await change;
        assert.equal(r.code, 4, `the change's outcome is unknown to its client: ${r.stderr}`);
        members.push(n4);
        // The survivors elect a leader that finishes the change: never stuck in joint. (n3,
        // removed, may not hear that the change was committed: no one sends to it any more.)
        for (const n of [n2, n4]) {
          await until(
            `${n.url} to leave the joint configuration`,
            async () => (await repl(n.addr, "listNodes")).stdout,
            (o) =>
              !o.includes("joint membership change") &&
              JSON.stringify(memberUrls(o)) === JSON.stringify([n1.url, n2.url, n4.url].sort()),
            30_000,
          );
        }
        members.splice(members.indexOf(n3), 1);
        const from = writer.acked.length;
        await until(
          "writes after the failure",
          async () => writer.acked.length,
          (k) => k >= from + 20,
          30_000,
        );
        // The killed leader comes back (without the hook) and learns the outcome.
        await n1.start();
        members.push(n1);
        const acked = await writer.stop();
        console.log(`joint change with a killed leader: ${acked.length} writes acknowledged`);
        await allAckedPresent([n1, n2, n4], acked);
        const listed = await repl(n1.addr, "listNodes");
        assert.deepEqual(memberUrls(listed.stdout), [n1.url, n2.url, n4.url].sort());
      } finally {
        await writer.stop();
      }
      await Promise.all([n1, n2, n3, n4].map((n) => n.stop()));
    },
  );
});

describe("refused membership changes (end to end)", () => {
  it(
    "each refused change: exit code 1 (2 for bad usage), a message saying why, and listNodes unchanged",
    { timeout: 240_000 },
    async () => {
      const nodes = await sqliteCluster(3);
      await Promise.all(nodes.map((n) => n.start()));
      const lead = await leaderNode(nodes);
      const [f1, f2] = nodes.filter((n) => n !== lead) as [SqliteNode, SqliteNode];
      const unknown = `http://127.0.0.1:${await freePort()}`;
      const before = memberLines((await repl(lead.addr, "listNodes")).stdout);
      assert.deepEqual(await listedMembers(lead.addr), before);
      const refusals: [string[], number, RegExp][] = [
        [
          [lead.addr, "removeNode", unknown],
          1,
          /MEMBERSHIP_REFUSED: .* is not a member; nothing changed/,
        ],
        [
          [f1.addr, "addNode", f2.url],
          1,
          /MEMBERSHIP_REFUSED: .* is already a member; nothing changed/,
        ],
        [
          [f1.addr, "addNode", unknown],
          1,
          /MEMBERSHIP_REFUSED: .* does not answer .*Nothing changed/,
        ],
        [
          [lead.addr, "promoteNode", f1.url],
          1,
          /is not a learner \(it is already a voter\); nothing changed/,
        ],
        [
          [lead.addr, "promoteNode", unknown],
          1,
          /is not a learner \(it is not a member\); nothing changed/,
        ],
        [
          [lead.addr, "transferLeader", unknown],
          1,
          /is not a member; only a voter can lead; nothing changed/,
        ],
        [[lead.addr, "replaceNode", unknown, f1.url], 1, /is already a voter; nothing changed/],
        [[lead.addr, "replaceNode", f1.url, unknown], 1, /does not answer/],
        [[lead.addr, "addNode", unknown, "--bogus"], 2, /unknown option "--bogus"/],
        [[lead.addr, "promoteNode", f1.url, "--max-lag", "many"], 2, /--max-lag must be a number/],
        [[lead.addr, "removeNode", "not a url"], 2, /invalid node URL "not a url"/],
      ];
      for (const [args, code, why] of refusals) {
        const r = await repl(...args);
        assert.equal(r.code, code, `${args.join(" ")}: ${r.stderr}`);
        assert.match(r.stderr, why, args.join(" "));
        assert.deepEqual(await listedMembers(lead.addr), before, args.join(" "));
      }
      // With a voter down, changes that would leave fewer answering voters than a quorum.
      await f2.stop();
      await until(
        "the leader to see the stopped node as unreachable",
        async () => row((await repl(lead.addr, "listNodes")).stdout, f2.url).reachable,
        (v) => v === "no",
      );
      for (const [args, why] of [
        [
          [lead.addr, "removeNode", f1.url],
          /only 1 of 2 voters would answer, fewer than the 2 a quorum needs \(not answering: http/,
        ],
        [[f1.addr, "removeNode", lead.url], /only 1 of 2 voters would answer/],
        [[lead.addr, "addNode", unknown, "--no-probe"], /only 2 of 4 voters would answer/],
      ] as const) {
        const r = await repl(...args);
        assert.equal(r.code, 1, `${args.join(" ")}: ${r.stderr}`);
        assert.match(r.stderr, why, args.join(" "));
        assert.deepEqual(await listedMembers(lead.addr), before, args.join(" "));
      }
      await Promise.all(nodes.map((n) => n.stop()));
    },
  );

  it(
    "a node started by mistake with its own URL among an existing cluster's exits with a clear error once added, and joins after a clean start",
    { timeout: 240_000 },
    async () => {
      const nodes = await sqliteCluster(3);
      await Promise.all(nodes.map((n) => n.start()));
      const lead = await leaderNode(nodes);
      assert.equal((await save(lead.addr, "create table kv (k text primary key, v text)")).code, 0);
      assert.equal((await save(lead.addr, "insert into kv values ('a', '1')")).code, 0);
      const raft = await freePort();
      const dir = join(tempDir(), "wrong");
      const url = `http://127.0.0.1:${raft}`;
      const wrong = new SqliteNode(raft, await freePort(), dir, [...nodes.map((n) => n.url), url]);
      await wrong.start();
      const added = await repl(lead.addr, "addNode", url);
      assert.equal(added.code, 0, added.stderr);
      const code = await new Promise<number | null>((resolve) => {
        if (wrong.proc!.exitCode !== null) resolve(wrong.proc!.exitCode);
        else wrong.proc!.once("exit", (c) => resolve(c));
      });
      assert.equal(code, 1);
      assert.match(wrong.stderr, /the node stopped: this node's log disagrees with the leader's/);
      assert.match(wrong.stderr, /-nexus-node-state new/);
      // The cluster goes on (3 of 4 voters answer).
      assert.equal((await save(lead.addr, "insert into kv values ('b', '2')")).code, 0);
      // Cleaned up and started as a new node: it catches up.
      rmSync(dir, { recursive: true, force: true });
      await wrong.start(["-nexus-node-state=new"]);
      await rowsEverywhere([wrong], 2);
      await Promise.all([...nodes, wrong].map((n) => n.stop()));
    },
  );
});
