/**
 * Retention against the catch-up window. With `maxWals` small and large entries (~52 KiB), the
 * WAL removes segments that the catch-up window still covers; a follower lagging into that window
 * past the entry cache must get a snapshot from the leader (the core's "compacted" path), never
 * an internal error that kills the leader's Ready loop. A three-node cluster of the core's
 * RawNodes: the leader on a real WAL and DiskStorage, the followers on MemoryStorage.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { Wal } from "../../src/storage/wal.js";
import { DiskStorage } from "../../src/storage/disk-storage.js";
import { RawNode } from "../../src/raft/raw-node.js";
import type { Ready } from "../../src/raft/raw-node.js";
import { MemoryStorage, isStorageError } from "../../src/raft/storage.js";
import { createSeededRandom } from "../../src/raft/random.js";
import { bootstrapEntries } from "../../src/raft/bootstrap.js";
import { decodeConfChange } from "../../src/raft/confchange/codec.js";
import type { Message, NodeId } from "../../src/raft/types.js";
import { tempDir } from "../temp-dir.js";

const ENTRY_BYTES = 52 * 1024;
const SEGMENT_BYTES = 256 * 1024;
const MAX_WALS = 2;
/** Entries kept after a snapshot for slow followers: far more than MAX_WALS segments hold. */
const CATCH_UP_ENTRIES = 1000;
const SNAPSHOT_EVERY = 4;

describe("retention and the catch-up window", () => {
  it("a follower lagging into the window past the cache gets a snapshot, never an internal error", async () => {
    const root = tempDir("nexus-retention-");
    const walDir = join(root, "wal");
    const { wal, state } = await Wal.open(walDir, {
      segmentBytes: SEGMENT_BYTES,
      maxWals: MAX_WALS,
    });
    const leaderStorage = new DiskStorage(wal, state, undefined, { cacheEntries: 3 });
    const boot = bootstrapEntries([{ id: "a" }, { id: "b" }, { id: "c" }]);
    await wal.save(boot.hardState, boot.entries);
    leaderStorage.append(boot.entries);
    leaderStorage.setHardState(boot.hardState);
    const mem = new Map<NodeId, MemoryStorage>();
    const nodes = new Map<NodeId, RawNode>();
    for (const id of ["a", "b", "c"]) {
      let storage;
      if (id === "a") storage = leaderStorage;
      else {
        const m = new MemoryStorage();
        m.append(boot.entries);
        m.setHardState(boot.hardState);
        mem.set(id, m);
        storage = m;
      }
      nodes.set(
        id,
        new RawNode({
          id,
          electionTick: 10,
          heartbeatTick: 1,
          storage,
          random: createSeededRandom(7),
        }),
      );
    }
    const down = new Set<NodeId>();
    const queue: Message[] = [];
    const snapsToC: Message[] = [];
    let applied = 0;
    let lastSnapshot = 0;

    /** Persists, sends and applies one Ready of one node, as the runtime does. */
    const handle = async (id: NodeId, node: RawNode, rd: Ready): Promise<void> => {
      if (id === "a") {
        if (rd.hardState !== undefined || rd.entries.length > 0)
          await wal.save(rd.hardState, rd.entries);
        leaderStorage.append(rd.entries);
        if (rd.hardState !== undefined) leaderStorage.setHardState(rd.hardState);
      } else {
        const m = mem.get(id)!;
        if (rd.snapshot !== undefined) m.applySnapshot(rd.snapshot);
        m.append(rd.entries);
        if (rd.hardState !== undefined) m.setHardState(rd.hardState);
      }
      for (const m of [...rd.messages, ...rd.persistedMessages]) {
        if (m.type === "snap" && m.to === "c") snapsToC.push(m);
        queue.push(m);
      }
      for (const e of rd.committedEntries) {
        if (e.type === "conf-change") node.applyConfChange(decodeConfChange(e.data));
        if (id === "a") applied = e.index;
      }
      node.advance(rd);
      if (id === "a" && applied - lastSnapshot >= SNAPSHOT_EVERY) {
        // Snapshot at the applied index (the file is not needed here), then compaction.
        const cs = node.status().config;
        leaderStorage.createSnapshot(applied, cs, new TextEncoder().encode(`snap-${applied}`));
        await wal.saveSnapshotMarker({ index: applied, term: leaderStorage.term(applied) });
        lastSnapshot = applied;
        const compactTo = applied - CATCH_UP_ENTRIES;
        if (compactTo > leaderStorage.firstIndex()) {
          leaderStorage.compact(compactTo);
          await wal.releaseTo(compactTo);
        }
      }
    };
    /** Runs the cluster until nothing is left to do. */
    const settle = async (): Promise<void> => {
      for (let round = 0; round < 10_000; round++) {
        let busy = false;
        for (const [id, node] of nodes) {
          if (!node.hasReady()) continue;
          busy = true;
          await handle(id, node, node.ready());
        }
        while (queue.length > 0) {
          busy = true;
          const m = queue.shift()!;
          if (down.has(m.to) || down.has(m.from)) continue;
          nodes.get(m.to)!.step(m);
        }
        if (!busy) return;
      }
      assert.fail("the cluster did not settle");
    };

    const a = nodes.get("a")!;
    await settle(); // the bootstrap configuration is applied
    a.campaign();
    await settle();
    assert.equal(a.raft.state, "leader");
    const propose = async (n: number): Promise<void> => {
      for (let i = 0; i < n; i++) {
        a.propose(new Uint8Array(ENTRY_BYTES).fill(i % 251));
        await settle();
      }
    };
    await propose(3);
    const lag = nodes.get("c")!.raft.raftLog.lastIndex();
    // c falls behind; the leader writes on past several segments and snapshots.
    down.add("c");
    await propose(30);
    const segs = readdirSync(walDir).filter((n) => n.endsWith(".wal"));
    assert.ok(segs.length <= MAX_WALS + 1, `${segs.length} segments on disk`);
    // c's next entry is inside the catch-up window (above the view's compaction by the runtime)
    // but its segment was removed: the view must say "compacted".
    assert.ok(lag + 1 > lastSnapshot - CATCH_UP_ENTRIES, "c lags into the catch-up window");
    assert.throws(
      () => leaderStorage.entries(lag + 1, lag + 2, Number.MAX_SAFE_INTEGER),
      (e: unknown) => isStorageError(e, "compacted"),
    );
    assert.throws(
      () => leaderStorage.term(lag),
      (e: unknown) => isStorageError(e, "compacted"),
    );
    // c comes back: the leader's heartbeats reach it, its send path falls back to a snapshot.
    down.delete("c");
    for (let t = 0; t < 3 && snapsToC.length === 0; t++) {
      a.tick();
      await settle();
    }
    assert.ok(snapsToC.length > 0, "the leader sent c a snapshot");
    assert.ok(snapsToC[0]!.snapshot!.metadata.index >= leaderStorage.firstIndex() - 1);
    a.reportSnapshot("c", "finish");
    await settle();
    for (let t = 0; t < 3; t++) {
      a.tick();
      await settle();
    }
    // c caught up from the snapshot and the entries after it.
    assert.equal(nodes.get("c")!.raft.raftLog.lastIndex(), a.raft.raftLog.lastIndex());
    assert.equal(nodes.get("c")!.raft.raftLog.committed, a.raft.raftLog.committed);
    await wal.close();
  });
});
