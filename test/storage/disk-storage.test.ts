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
import { isNexusError } from "../../src/errors/index.js";
import type { Snapshot } from "../../src/raft/types.js";

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

  it("term() is bounded like the core's Storage: compacted below, unavailable above, exact in between, also from an older snapshot", async () => {
    const dir = join(mkdtempSync(join(tmpdir(), "nexus-disk-")), "wal");
    roots.push(dir);
    const r = await runNode(dir, 80, 10);
    const last = r.storage.lastIndex();
    const terms = new Map<number, number>();
    for (let i = 1; i <= last; i++) terms.set(i, r.storage.term(i));
    const cs = r.node.status().config;
    // Two snapshots; the newer one's file will be "damaged", so the view starts from the older.
    const older = r.storage.createSnapshot(last - 30, cs, new TextEncoder().encode("older"));
    await r.wal.saveSnapshotMarker({ index: last - 30, term: older.metadata.term });
    const newer = r.storage.createSnapshot(last - 10, cs, new TextEncoder().encode("newer"));
    await r.wal.saveSnapshotMarker({ index: last - 10, term: newer.metadata.term });
    await r.wal.close();

    const { wal, state } = await Wal.open(dir, { segmentBytes: 4096, maxWals: 0 });
    assert.equal(state.snapshot.index, last - 10);
    const storage = new DiskStorage(wal, state, older, { cacheEntries: 10 });
    const first = storage.firstIndex();
    assert.equal(first, last - 29);
    assert.equal(storage.lastIndex(), last);
    assert.equal(storage.term(first - 1), older.metadata.term);
    for (let i = first; i <= last; i++) assert.equal(storage.term(i), terms.get(i), `term(${i})`);
    assert.throws(
      () => storage.term(first - 2),
      (e: unknown) => isStorageError(e, "compacted"),
    );
    assert.throws(
      () => storage.term(last + 1),
      (e: unknown) => isStorageError(e, "unavailable"),
    );
    // The core starts from it and re-applies what follows the older snapshot.
    const node = new RawNode({
      id: "a",
      electionTick: 10,
      heartbeatTick: 1,
      storage,
      applied: last - 30,
      random: createSeededRandom(3),
    });
    assert.equal(node.ready().committedEntries[0]?.index, last - 29);
    await wal.close();
  });

  it("refuses a snapshot the WAL does not record, and an older one whose following entries are gone", async () => {
    const dir = join(mkdtempSync(join(tmpdir(), "nexus-disk-")), "wal");
    roots.push(dir);
    const r = await runNode(dir, 60, 10);
    const last = r.storage.lastIndex();
    const cs = r.node.status().config;
    const snapAt = (index: number, term: number): Snapshot => ({
      metadata: { index, term, confState: cs },
      data: new TextEncoder().encode(`s${index}`),
    });
    const marker = { index: last - 5, term: r.storage.term(last - 5) };
    await r.wal.saveSnapshotMarker(marker);
    r.storage.createSnapshot(marker.index, cs, new TextEncoder().encode("m"));
    r.storage.compact(marker.index - 2);
    await r.wal.releaseTo(marker.index - 2);
    await r.wal.close();
    const { wal, state } = await Wal.open(dir, { segmentBytes: 4096, maxWals: 0 });
    // A file newer than the marker that the log does not back (a received snapshot whose
    // marker never reached the disk).
    assert.throws(
      () => new DiskStorage(wal, state, snapAt(last + 5, 9)),
      (e: unknown) =>
        isNexusError(e, "INTERNAL") &&
        /newer than the write-ahead log's snapshot marker/.test((e as Error).message),
    );
    // An older snapshot whose following entries the WAL released.
    assert.throws(
      () => new DiskStorage(wal, state, snapAt(2, 1)),
      (e: unknown) =>
        isNexusError(e, "CORRUPTED") && /no longer holds every entry/.test((e as Error).message),
    );
    // A local snapshot newer than the marker, backed by the log's own entry, is usable.
    const local = new DiskStorage(wal, state, snapAt(last - 1, r.storage.term(last - 1)));
    assert.equal(local.firstIndex(), last);
    assert.equal(local.lastIndex(), last);
    // The marker's own snapshot, with the wrong term.
    assert.throws(
      () => new DiskStorage(wal, state, snapAt(marker.index, marker.term + 1)),
      (e: unknown) => isNexusError(e, "CORRUPTED"),
    );
    await wal.close();
  });
});
