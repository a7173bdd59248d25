/**
 * Retention against the catch-up window, on running nodes (RaftNode over real WALs, in process).
 * Entries of ~52 KiB, segments of 256 KiB and maxWals 2: a few entries fill the WAL. A follower
 * falls behind just after a snapshot; the others restart (their entry caches are empty, so the
 * entries the follower needs are read back from segments) and write on until retention removes
 * the segments holding those entries, inside the catch-up window. When the follower returns, the
 * leader must send it a snapshot; no node may stop.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { RaftNode } from "../../src/node/raft-node.js";
import type { PeerTransport } from "../../src/node/raft-node.js";
import type { Message, NodeId } from "../../src/raft/types.js";
import { TestStore, until } from "../node/helpers.js";
import { tempDir } from "../temp-dir.js";

const enc = new TextEncoder();
const VALUE = "x".repeat(52 * 1024);

describe("retention on running nodes", () => {
  it("a follower lagging into the catch-up window after its leader restarted gets a snapshot; nobody stops", async () => {
    const root = tempDir("nexus-retention-node-");
    const ids = ["a", "b", "c"];
    const members = ids.map((id, i) => ({ id, url: `http://127.0.0.1:${9300 + i}` }));
    const stores = new Map(ids.map((id) => [id, new TestStore()]));
    const nodes = new Map<NodeId, RaftNode>();
    const down = new Set<NodeId>();
    const fatal: string[] = [];
    let snapshotsToC = 0;
    const deliver = (m: Message): void => {
      const to = nodes.get(m.to);
      const from = nodes.get(m.from);
      if (to === undefined || from === undefined || down.has(m.to) || down.has(m.from)) return;
      if (m.type !== "snap") {
        setImmediate(() => to.step([m]));
        return;
      }
      // A snapshot is streamed from the leader's file into the follower's, as the transport does.
      if (m.to === "c") snapshotsToC++;
      void to.receiveSnapshot(m, from.openSnapshot(m)).then(
        () => from.reportSnapshot(m.to, "finish"),
        () => from.reportSnapshot(m.to, "failure"),
      );
    };
    const endpoint = (): PeerTransport => ({
      send: (msgs) => {
        for (const m of msgs) deliver(m);
      },
      addPeer: () => undefined,
      removePeer: () => undefined,
    });
    const open = async (id: NodeId): Promise<void> => {
      const n = await RaftNode.open({
        id,
        bootstrap: members,
        walDir: join(root, id),
        walOptions: { segmentBytes: 256 * 1024, maxWals: 2 },
        store: stores.get(id)!,
        transport: endpoint(),
        heartbeatTickMs: 10,
        electionTick: 10,
        replTimeoutMs: 3000,
        snapDir: join(root, `${id}-snap`),
        snapshotCount: 4,
        snapshotCatchUpEntries: 1000,
        onFatal: (e) => fatal.push(`${id}: ${e.message}`),
      });
      nodes.set(id, n);
      n.start();
    };
    const leader = (): RaftNode | undefined =>
      [...nodes.values()].find((n) => n.status().softState.raftState === "leader");
    let key = 0;
    /** Writes n new keys; a write whose outcome is unknown (a leader change) is retried. */
    const write = async (n: number): Promise<void> => {
      for (let i = 0; i < n; i++) {
        const k = key++;
        for (let attempt = 0; ; attempt++) {
          await until(() => leader() !== undefined, 10_000, "a leader");
          try {
            const res = await leader()!.propose(enc.encode(`set k${k} ${VALUE}`));
            assert.equal(res.ok, true);
            break;
          } catch (err) {
            if (attempt >= 5) throw err;
          }
        }
      }
    };
    const snapshotsOf = (id: NodeId): number[] =>
      readdirSync(join(root, `${id}-snap`))
        .filter((f) => f.endsWith(".snap"))
        .map((f) => parseInt(f.slice(17, 33), 16));
    try {
      for (const id of ids) await open(id);
      // c keeps up until the first snapshot, then falls behind.
      await write(4);
      await until(
        () => snapshotsOf("a").length > 0 && snapshotsOf("b").length > 0,
        10_000,
        "snapshots",
      );
      await until(() => stores.get("c")!.data.size === 4, 10_000, "c applied the first writes");
      down.add("c");
      await write(2);
      // a and b restart: their caches are empty, the entries c needs are on disk only.
      for (const id of ["a", "b"]) await nodes.get(id)!.stop();
      for (const id of ["a", "b"]) await open(id);
      // They write on: snapshots, and retention removes segments inside the catch-up window.
      await write(24);
      assert.ok(readdirSync(join(root, "a")).filter((f) => f.endsWith(".wal")).length <= 3);
      down.delete("c");
      await until(() => stores.get("c")!.data.size === key, 20_000, "c caught up");
      assert.ok(snapshotsToC > 0, "c was sent a snapshot");
      assert.deepEqual(fatal, [], "no node stopped");
    } finally {
      for (const n of nodes.values()) await n.stop();
    }
  });
});
