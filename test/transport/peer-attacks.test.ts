/**
 * The peer-port attacks of issue 16, tried against a real three-node cluster over plaintext
 * HTTP/2 (the loopback walkthrough's setup): a hand-made peer forges messages, snapshots and
 * progress requests. Each attack is refused; where a control shows what a message claiming a
 * member's id still does without TLS, that is the documented limit (src/transport/DESIGN.md).
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createReplicator } from "../../src/node/replicator.js";
import type { Replicator } from "../../src/node/replicator.js";
import { nodeIdOf } from "../../src/node/node-id.js";
import { encodeEntryPayload } from "../../src/node/entry-payload.js";
import { MemoryStore } from "../../src/store/memory/index.js";
import { createMessage } from "../../src/raft/types.js";
import type { Message } from "../../src/raft/types.js";
import { freePort } from "../free-port.js";
import { RawPeer, peerHeaders } from "./raw-peer.js";

const CLUSTER = "secret-cluster-name";
const STRANGER = "deadbeefdeadbeef";
const enc = new TextEncoder();
const dec = new TextDecoder();

async function until(
  cond: () => boolean | Promise<boolean>,
  ms = 15_000,
  what = "condition",
): Promise<void> {
  const t = Date.now();
  while (!(await cond())) {
    if (Date.now() - t > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A save command proposed as raft would carry it. */
function forgedProp(from: string, to: string, key: string): Message {
  return createMessage({
    type: "prop",
    from,
    to,
    entries: [
      {
        term: 0,
        index: 0,
        type: "normal",
        data: encodeEntryPayload({
          kind: "command",
          requestId: randomBytes(16),
          timestampMs: Date.now(),
          seed: 0,
          data: enc.encode(`set ${key} forged`),
          args: {},
        }),
      },
    ],
  });
}

function snap(from: string, to: string, term: number, index: number, voters: string[]): Message {
  return createMessage({
    type: "snap",
    from,
    to,
    term,
    snapshot: {
      metadata: {
        index,
        term,
        confState: { voters, learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false },
      },
      data: enc.encode("forged"),
    },
  });
}

describe("peer-port attacks on a plaintext cluster", () => {
  const root = mkdtempSync(join(tmpdir(), "nexus-peer-attacks-"));
  const urls: string[] = [];
  const reps = new Map<string, Replicator>();
  const stores = new Map<string, MemoryStore>();
  const warnings = new Map<string, string[]>();
  const peers: RawPeer[] = [];

  before(async () => {
    for (let i = 0; i < 3; i++) urls.push(`http://127.0.0.1:${await freePort()}`);
    for (const u of urls) {
      const w: string[] = [];
      warnings.set(u, w);
      const store = new MemoryStore();
      stores.set(u, store);
      const r = createReplicator({
        nodeUrl: u,
        clusterUrls: urls,
        store,
        clusterName: CLUSTER,
        logDir: join(root, "logs"),
        snapDir: join(root, "snap"),
        heartbeatTickMs: 50,
        electionTickMs: 500,
        logger: {
          debug() {},
          info() {},
          warn: (f: unknown, m?: string) => void w.push(`${m ?? ""} ${JSON.stringify(f ?? {})}`),
          error() {},
        },
      });
      reps.set(u, r);
      await r.start();
    }
    await rep(urls[0]!).save(enc.encode("set before 1"));
  });

  after(async () => {
    for (const p of peers) p.close();
    for (const r of reps.values()) await r.stop().catch(() => undefined);
    rmSync(root, { recursive: true, force: true });
  });

  function rep(u: string): Replicator {
    return reps.get(u)!;
  }

  /** Whether node u's store holds key. */
  async function has(u: string, key: string): Promise<boolean> {
    const keys = JSON.parse(
      dec.decode(await stores.get(u)!.load({ data: enc.encode("keys"), args: {} })),
    ) as string[];
    return keys.includes(key);
  }

  function leaderUrl(): string {
    const lead = rep(urls[0]!).status().leader;
    const u = urls.find((x) => nodeIdOf(x) === lead && rep(x).status().role === "leader");
    assert.ok(u !== undefined, "a leader");
    return u;
  }

  async function stableLeader(): Promise<string> {
    let u: string | undefined;
    await until(
      () => {
        try {
          u = leaderUrl();
          return urls.every((x) => rep(x).status().leader === nodeIdOf(u!));
        } catch {
          return false;
        }
      },
      15_000,
      "one leader known to all",
    );
    return u!;
  }

  function raw(u: string): RawPeer {
    const p = new RawPeer(u);
    peers.push(p);
    return p;
  }

  /** Waits until node u logged a warning matching re (the forged traffic was handled). */
  async function warned(u: string, re: RegExp): Promise<void> {
    await until(() => warnings.get(u)!.some((l) => re.test(l)), 15_000, `a warning ${re}`);
  }

  /** A save through the cluster, applied everywhere: what was committed before it is applied too. */
  async function barrier(key: string): Promise<void> {
    await rep(await stableLeader()).save(enc.encode(`set ${key} 1`));
    for (const u of urls) {
      await until(() => has(u, key), 15_000, `${key} applied on ${u}`);
    }
  }

  it("a forged prop from an unknown id does not commit (a control from a member's id does: ids are claims without TLS)", async () => {
    const lead = await stableLeader();
    const p = raw(lead);
    await p.sendMessages(peerHeaders(STRANGER, CLUSTER), [
      forgedProp(STRANGER, nodeIdOf(lead), "forged-stranger"),
    ]);
    await warned(lead, /sender that is not a member/);
    await barrier("after-stranger");
    for (const u of urls) assert.ok(!(await has(u, "forged-stranger")), u);
    // Control: the same message claiming a follower's id is taken (the forgery is well formed).
    const follower = urls.find((u) => u !== lead)!;
    await p.sendMessages(peerHeaders(nodeIdOf(follower), CLUSTER), [
      forgedProp(nodeIdOf(follower), nodeIdOf(lead), "forged-member"),
    ]);
    await barrier("after-member");
    assert.ok(await has(lead, "forged-member"), "the control committed");
  });

  it("the nexus-from header must agree with every message's from", async () => {
    const lead = await stableLeader();
    const follower = urls.find((u) => u !== lead)!;
    await raw(lead).sendMessages(peerHeaders(nodeIdOf(follower), CLUSTER), [
      forgedProp(nodeIdOf(follower), nodeIdOf(lead), "header-ok"),
      forgedProp(STRANGER, nodeIdOf(lead), "header-mismatch"),
    ]);
    await warned(lead, /a message not from its sender or not to this node/);
    await barrier("after-mismatch");
    // The frame is refused whole: neither message is taken.
    for (const key of ["header-ok", "header-mismatch"]) {
      assert.ok(!(await has(lead, key)), key);
    }
  });

  it("a timeout-now from a non-member does not move leadership (a control from the leader's id does)", async () => {
    const lead = await stableLeader();
    const follower = urls.find((u) => u !== lead)!;
    const term = rep(follower).status().term;
    const p = raw(follower);
    await p.sendMessages(peerHeaders(STRANGER, CLUSTER), [
      createMessage({ type: "timeout-now", from: STRANGER, to: nodeIdOf(follower), term }),
    ]);
    await warned(follower, /sender that is not a member/);
    await barrier("after-timeout-now");
    assert.equal(await stableLeader(), lead);
    assert.equal(rep(follower).status().term, term);
    // Control: claiming the leader's id, the same message makes the follower campaign.
    await p.sendMessages(peerHeaders(nodeIdOf(lead), CLUSTER), [
      createMessage({ type: "timeout-now", from: nodeIdOf(lead), to: nodeIdOf(follower), term }),
    ]);
    await until(() => rep(follower).status().term > term, 15_000, "the control campaign");
  });

  it("a forged snap at a high term from a non-member is refused before anything is written", async () => {
    const lead = await stableLeader();
    const follower = urls.find((u) => u !== lead)!;
    const term = rep(follower).status().term;
    const dir = join(root, "snap", `node_${BigInt(`0x${nodeIdOf(follower)}`)}`);
    const files = readdirSync(dir).sort();
    const p = raw(follower);
    const answer = await p.snapshot(
      peerHeaders(STRANGER, CLUSTER),
      snap(STRANGER, nodeIdOf(follower), term + 100, 1_000_000, urls.map(nodeIdOf)),
      256 * 1024,
    );
    assert.equal(answer.status, 403);
    assert.doesNotMatch(answer.body, new RegExp(CLUSTER));
    assert.deepEqual(readdirSync(dir).sort(), files, "nothing written");
    assert.equal(rep(follower).status().term, term);
  });

  it("a member's snap from an old term, not newer than the commit, or for a configuration without the node is refused before writing", async () => {
    const lead = await stableLeader();
    const follower = urls.find((u) => u !== lead)!;
    const st = rep(follower).status();
    assert.ok(st.term >= 2, "an earlier test moved leadership, so an older term exists");
    const dir = join(root, "snap", `node_${BigInt(`0x${nodeIdOf(follower)}`)}`);
    const files = readdirSync(dir).sort();
    const p = raw(follower);
    const [ld, fl] = [nodeIdOf(lead), nodeIdOf(follower)];
    const h = peerHeaders(ld, CLUSTER);
    const voters = urls.map(nodeIdOf);
    for (const [m, why] of [
      [snap(ld, fl, st.term - 1, st.commit + 1000, voters), /older than this node's term/],
      [snap(ld, fl, st.term, st.commit, voters), /not newer than this node's commit index/],
      [snap(ld, fl, st.term, st.commit + 1000, [ld]), /does not include this node/],
    ] as const) {
      const answer = await p.snapshot(h, m, 128 * 1024);
      assert.equal(answer.status, 409);
      assert.match(answer.body, why);
    }
    assert.deepEqual(readdirSync(dir).sort(), files, "nothing written");
    assert.equal(rep(follower).status().term, st.term);
  });

  it("a snapshot stream cut short does not crash the node", async () => {
    // What would stop a node process: an exception or a rejection nobody handles.
    const escaped: unknown[] = [];
    const onEscape = (err: unknown): void => void escaped.push(err);
    process.on("uncaughtException", onEscape);
    process.on("unhandledRejection", onEscape);
    after(() => {
      process.off("uncaughtException", onEscape);
      process.off("unhandledRejection", onEscape);
    });
    const lead = await stableLeader();
    const follower = urls.find((u) => u !== lead)!;
    const st = rep(follower).status();
    const [ld, fl] = [nodeIdOf(lead), nodeIdOf(follower)];
    for (const cut of ["reset", "connection"] as const) {
      const p = new RawPeer(follower);
      const s = p.openSnapshot(
        peerHeaders(ld, CLUSTER),
        snap(ld, fl, st.term, st.commit + 1000, urls.map(nodeIdOf)),
        300 * 1024,
      );
      await new Promise((r) => setTimeout(r, 200));
      if (cut === "reset") s.close(0x8);
      else p.close();
      await new Promise((r) => setTimeout(r, 200));
      p.close();
    }
    // Still a working member: it applies what the cluster commits.
    await barrier("after-cut");
    assert.equal(rep(follower).status().serving, true);
    assert.deepEqual(escaped, [], "nothing escaped to the process");
  });

  it("messages Raft relays keep the asker's id: a transfer asked on a follower moves leadership; one naming a non-member is refused", async () => {
    const lead = await stableLeader();
    const [via, target] = urls.filter((u) => u !== lead) as [string, string];
    // The follower forwards transfer-leader with from = the transferee, not itself.
    assert.equal(await rep(via).transferLeadership(target), nodeIdOf(target));
    const now = await stableLeader();
    assert.equal(now, target);
    const other = urls.find((u) => u !== now)!;
    await raw(now).sendMessages(peerHeaders(nodeIdOf(other), CLUSTER), [
      createMessage({ type: "transfer-leader", from: STRANGER, to: nodeIdOf(now) }),
    ]);
    await warned(now, /a message not from its sender or not to this node/);
    await barrier("after-relayed");
    assert.equal(await stableLeader(), now);
  });

  it("the progress is refused without a member's id, and a refusal tells nothing", async () => {
    const lead = await stableLeader();
    const p = raw(lead);
    for (const h of [
      peerHeaders(),
      peerHeaders(STRANGER),
      peerHeaders(nodeIdOf(urls[1]!), "another-cluster"),
      peerHeaders(STRANGER, CLUSTER),
    ]) {
      const a = await p.request("GET", "/nexus/raft/v1/progress", h);
      assert.equal(a.status, 403, JSON.stringify(h));
      assert.doesNotMatch(a.body, new RegExp(CLUSTER));
      assert.doesNotMatch(a.body, /http:|term|member/);
    }
    const follower = urls.find((u) => u !== lead)!;
    const ok = await p.request(
      "GET",
      "/nexus/raft/v1/progress",
      peerHeaders(nodeIdOf(follower), CLUSTER),
    );
    assert.equal(ok.status, 200);
    assert.match(ok.body, /127\.0\.0\.1/);
  });
});
