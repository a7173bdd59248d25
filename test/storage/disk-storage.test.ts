import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Wal } from "../../src/storage/wal.js";
import { DiskStorage } from "../../src/storage/disk-storage.js";
import { RawNode } from "../../src/raft/raw-node.js";
import { createSeededRandom } from "../../src/raft/random.js";
import { bootstrapEntries } from "../../src/raft/bootstrap.js";
import { decodeConfChange } from "../../src/raft/confchange/codec.js";
import { isStorageError } from "../../src/raft/storage.js";

const roots: string[] = [];
after(() => {
  for (const d of roots) rmSync(d, { recursive: true, force: true });
});

/** A single-node cluster on a real WAL: propose, persist in Ready order, apply. */
async function runNode(dir: string, proposals: number, cacheEntries: number) {
  const { wal, state } = await Wal.open(dir, { segmentBytes: 4096, maxWals: 0 });
  const storage = new DiskStorage(wal, state, undefined, { cacheEntries });
  if (state.lastIndex === 0) {
    const boot = bootstrapEntries([{ id: "a" }]);
    await wal.save(boot.hardState, boot.entries);
    storage.append(boot.entries);
    storage.setHardState(boot.hardState);
  }
  const node = new RawNode({
    id: "a",
    electionTick: 10,
    heartbeatTick: 1,
    storage,
    random: createSeededRandom(1),
  });
  const applied: string[] = [];
  const drive = async (): Promise<void> => {
    while (node.hasReady()) {
      const rd = node.ready();
      await wal.save(rd.hardState, rd.entries);
      storage.append(rd.entries);
      if (rd.hardState !== undefined) storage.setHardState(rd.hardState);
      for (const e of rd.committedEntries) {
        if (e.type === "conf-change") node.applyConfChange(decodeConfChange(e.data));
        else if (e.data.byteLength > 0) applied.push(new TextDecoder().decode(e.data));
      }
      node.advance(rd);
    }
  };
  await drive();
  node.campaign();
  await drive();
  assert.equal(node.raft.state, "leader");
  for (let i = 0; i < proposals; i++) {
    node.propose(new TextEncoder().encode(`p${i}`));
    await drive();
  }
  return { wal, storage, node, applied };
}

describe("raft log view on the WAL", () => {
  it("serves the core: entries survive a restart and old ones are read back from segments", async () => {
    const dir = join(mkdtempSync(join(tmpdir(), "nexus-disk-")), "wal");
    roots.push(dir);
    const first = await runNode(dir, 200, 5);
    assert.equal(first.applied.length, 200);
    const last = first.storage.lastIndex();
    await first.wal.close();

    const { wal, state } = await Wal.open(dir, { segmentBytes: 4096, maxWals: 0 });
    assert.ok(wal.segmentNames().length > 1, "the log spans several segments");
    const storage = new DiskStorage(wal, state, undefined, { cacheEntries: 5 });
    assert.equal(storage.lastIndex(), last);
    // Nothing is cached after a restart: every entry comes from its segment.
    const all = storage.entries(1, last + 1, Number.MAX_SAFE_INTEGER);
    assert.equal(all.length, last);
    const data = all.filter((e) => e.type === "normal" && e.data.byteLength > 0);
    assert.deepEqual(
      data.map((e) => new TextDecoder().decode(e.data)),
      first.applied,
    );
    // maxBytes limits a read (at least one entry).
    assert.equal(storage.entries(1, last + 1, 1).length, 1);
    await wal.close();
  });

  it("a restart after a snapshot and compaction starts after the snapshot", async () => {
    const dir = join(mkdtempSync(join(tmpdir(), "nexus-disk-")), "wal");
    roots.push(dir);
    const r = await runNode(dir, 80, 10);
    const snapIndex = r.storage.lastIndex() - 10;
    const cs = r.node.status().config;
    const snap = r.storage.createSnapshot(snapIndex, cs, new TextEncoder().encode("snap-file"));
    await r.wal.saveSnapshotMarker({ index: snapIndex, term: snap.metadata.term });
    r.storage.compact(snapIndex - 5);
    await r.wal.releaseTo(snapIndex - 5);
    // The catch-up window is still readable; below it is compacted.
    assert.equal(r.storage.entries(snapIndex - 4, snapIndex - 3, 1e9)[0]!.index, snapIndex - 4);
    assert.throws(
      () => r.storage.term(snapIndex - 6),
      (e: unknown) => isStorageError(e, "compacted"),
    );
    const last = r.storage.lastIndex();
    await r.wal.close();

    const { wal, state } = await Wal.open(dir, { segmentBytes: 4096, maxWals: 0 });
    assert.deepEqual(state.snapshot, { index: snapIndex, term: snap.metadata.term });
    const storage = new DiskStorage(wal, state, snap, { cacheEntries: 10 });
    assert.equal(storage.firstIndex(), snapIndex + 1);
    assert.equal(storage.lastIndex(), last);
    assert.equal(storage.term(snapIndex), snap.metadata.term);
    const node = new RawNode({
      id: "a",
      electionTick: 10,
      heartbeatTick: 1,
      storage,
      applied: snapIndex,
      random: createSeededRandom(2),
    });
    // Entries after the snapshot are handed out again for the state machine to skip or apply.
    const rd = node.ready();
    assert.equal(rd.committedEntries[0]?.index, snapIndex + 1);
    assert.equal(rd.committedEntries[rd.committedEntries.length - 1]?.index, last);
    await wal.close();
  });
});
