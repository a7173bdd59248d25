/**
 * Reads with a staleness bound on a real cluster (library, HTTP/2 transport, WAL on disk):
 * an idle cluster's heartbeats carry the leader's commit index, so a follower and a learner serve
 * bounded reads long after the last write; a learner held in snapshot state (a slowed snapshot
 * transfer, heartbeats still arriving) knows how far behind it is and refuses.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createReplicator } from "../../src/node/replicator.js";
import type { Replicator, StalenessBound } from "../../src/node/replicator-api.js";
import type { TestHooks } from "../../src/node/test-hooks.js";
import { MemoryStore } from "../../src/store/memory/memory-store.js";
import { isNexusError } from "../../src/errors/index.js";
import { until } from "./helpers.js";
import { freePort } from "../free-port.js";

const roots: string[] = [];
after(() => {
  for (const d of roots) rmSync(d, { recursive: true, force: true });
});
const dec = new TextDecoder();
const HEARTBEAT_MS = 20;
const ELECTION_MS = 300;

interface Node {
  readonly url: string;
  readonly index: number;
  rep: Replicator;
}

class Cluster {
  readonly root = mkdtempSync(join(tmpdir(), "nexus-bounded-"));
  readonly nodes: Node[] = [];
  constructor(
    readonly urls: string[],
    private readonly extra: {
      readonly snapshotCount?: number;
      readonly snapshotCatchUpEntries?: number;
      readonly testHooks?: TestHooks;
    } = {},
  ) {
    roots.push(this.root);
  }

  static async create(n: number, extra: Cluster["extra"] = {}): Promise<Cluster> {
    const urls = await Promise.all(
      Array.from({ length: n }, async () => `http://127.0.0.1:${await freePort()}`),
    );
    const c = new Cluster(urls, extra);
    for (const [i, u] of urls.entries()) {
      c.nodes.push({ url: u, index: i, rep: c.replicator(u, i, "auto") });
    }
    await Promise.all(c.nodes.map((x) => x.rep.start()));
    await until(() => c.leader() !== undefined, 10_000, "a leader");
    return c;
  }

  private replicator(url: string, i: number, nodeState: "auto" | "new"): Replicator {
    return createReplicator(
      {
        nodeUrl: url,
        clusterUrls: this.urls,
        nodeState,
        store: new MemoryStore(),
        logDir: join(this.root, `logs-${i}`),
        snapDir: join(this.root, `snap-${i}`),
        heartbeatTickMs: HEARTBEAT_MS,
        electionTickMs: ELECTION_MS,
        replTimeoutMs: 5000,
        ...(this.extra.snapshotCount === undefined
          ? {}
          : { snapshotCount: this.extra.snapshotCount }),
        ...(this.extra.snapshotCatchUpEntries === undefined
          ? {}
          : { snapshotCatchUpEntries: this.extra.snapshotCatchUpEntries }),
      },
      this.extra.testHooks === undefined ? {} : { testHooks: this.extra.testHooks },
    );
  }

  /** Starts a new node and adds it as a learner. */
  async addLearner(): Promise<Node> {
    const url = `http://127.0.0.1:${await freePort()}`;
    const index = this.nodes.length;
    const n = { url, index, rep: this.replicator(url, index, "new") };
    this.nodes.push(n);
    await n.rep.start();
    await this.leader()!.rep.addMember(url, { learner: true });
    return n;
  }

  /** Stops a node and starts it again from its directories (it forgets what it heard). */
  async restart(n: Node): Promise<void> {
    await n.rep.stop();
    n.rep = this.replicator(n.url, n.index, "new");
    await n.rep.start();
  }

  leader(): Node | undefined {
    return this.nodes.find((n) => n.rep.status().role === "leader");
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.rep.stop()));
  }
}

/** A bounded read of key `k`: its value, or the error it was refused with. */
function read(n: Node, k: string, staleness: StalenessBound): Promise<string | unknown> {
  return n.rep.load(`get ${k}`, { consistency: "bounded", staleness }).then(
    (b) => dec.decode(b),
    (e: unknown) => e,
  );
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe("bounded reads on a real cluster", () => {
  it("an idle cluster: a follower and a learner serve bounded reads long after the last write", async () => {
    // Before: only appends counted as hearing the leader, and an idle leader sends none, so
    // every read below was refused (TOO_STALE) once the bound had passed since the last write.
    const c = await Cluster.create(3);
    try {
      const learner = await c.addLearner();
      const leader = c.leader()!;
      await leader.rep.save("set x 1");
      const commit = leader.rep.status().commit;
      const followers = c.nodes.filter((n) => n !== leader);
      await until(
        () => followers.every((n) => n.rep.status().applied >= commit),
        10_000,
        "every member to apply the write",
      );
      // No writes from here on: only heartbeats (every 20 ms) reach the followers.
      await sleep(4 * ELECTION_MS);
      assert.equal(leader.rep.status().commit, commit, "the cluster stayed idle");
      for (const n of followers) {
        for (const bound of [
          { maxLagMs: 500 },
          { maxLagEntries: 0 },
          { maxLagEntries: 0, maxLagMs: 500 },
        ]) {
          const got = await read(n, "x", bound);
          assert.equal(
            got,
            "1",
            `${n === learner ? "the learner" : "a follower"}, ${JSON.stringify(bound)}: ${String(got)}`,
          );
        }
      }
    } finally {
      await c.stop();
    }
  });

  it("a learner held in snapshot state (heartbeats arriving, no data) refuses: it knows its lag", async () => {
    // The snapshot is sent one 16 KiB piece per 300 ms: some 4 s for ~200 KB.
    const c = await Cluster.create(3, {
      snapshotCount: 10,
      snapshotCatchUpEntries: 2,
      testHooks: { slowSnapshotSendMs: () => 300 },
    });
    try {
      const leader = c.leader()!;
      for (let i = 0; i < 20; i++) await leader.rep.save(`set k${i} ${"v".repeat(10_000)}`);
      await leader.rep.save("set x 1");
      const learner = await c.addLearner();
      // It hears the leader (heartbeats go to a member in snapshot state too) while the snapshot
      // crawls in: within any time bound, far beyond any entry bound.
      await until(
        () => {
          const p = leader.rep.listMembers().members.find((m) => m.url === learner.url)?.progress;
          return p?.snapshot !== undefined;
        },
        10_000,
        "the leader to send the learner a snapshot",
      );
      const refuses = async (why: string): Promise<void> => {
        assert.equal(learner.rep.status().applied, 0, `${why}: the snapshot is still in flight`);
        for (const bound of [
          { maxLagEntries: 5 },
          { maxLagMs: 1000 },
          { maxLagEntries: 5, maxLagMs: 1000 },
        ]) {
          const got = await read(learner, "x", bound);
          assert.ok(
            isNexusError(got, "TOO_STALE"),
            `${why}, ${JSON.stringify(bound)}: ${String(got)}`,
          );
          assert.match(String(got), /entries/);
        }
      };
      await sleep(5 * HEARTBEAT_MS);
      await refuses("added");
      // Restarted, it forgets what it heard; the leader's probe finds the log compacted and sends
      // the snapshot again, so only heartbeats and the snapshot reach it, never an append. Before
      // (a heartbeat's clamped commit, min(match, commit) = 0, taken as the leader's): 0 entries
      // behind and just heard from, it served "" (its empty store) for every bound.
      await c.restart(learner);
      await until(() => learner.rep.status().leader !== "", 10_000, "the learner to hear a leader");
      await sleep(5 * HEARTBEAT_MS);
      await refuses("restarted");
      // Once the snapshot is in, it serves, with the write.
      await until(
        () => learner.rep.status().applied >= leader.rep.status().commit,
        30_000,
        "the snapshot to arrive",
      );
      assert.equal(await read(learner, "x", { maxLagEntries: 5, maxLagMs: 1000 }), "1");
    } finally {
      await c.stop();
    }
  });
});
