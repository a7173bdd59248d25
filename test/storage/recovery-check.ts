/**
 * Opens what a crash left on disk as a node would (WAL, the snapshot its marker covers, the raft
 * log view) and checks everything a node needs to start: the snapshot the WAL's marker records
 * exists, the marker agrees with the entries, the log is contiguous, the hard state's commit lies
 * in [first index - 1, last index], and a RawNode of the core accepts it all and hands out the
 * committed entries. Throws an AssertionError saying what is wrong (prefixed with `ctx`).
 */
import assert from "node:assert/strict";
import { Wal } from "../../src/storage/wal.js";
import type { WalOptions, WalState } from "../../src/storage/wal.js";
import { Snapshotter } from "../../src/storage/snapshotter.js";
import type { SnapshotFile, SnapshotterOptions } from "../../src/storage/snapshotter.js";
import { DiskStorage } from "../../src/storage/disk-storage.js";
import { RawNode } from "../../src/raft/raw-node.js";
import { createSeededRandom } from "../../src/raft/random.js";
import type { Entry, Snapshot } from "../../src/raft/types.js";

export interface Recovered {
  readonly wal: Wal;
  readonly state: WalState;
  readonly snapshotter: Snapshotter;
  readonly snapFile: SnapshotFile | undefined;
  readonly storage: DiskStorage;
  /** The log view's entries, first index to last. */
  readonly entries: readonly Entry[];
}

/** Opens and checks (see the module comment). The caller closes `wal`. */
export async function openRecovered(
  ctx: string,
  walDir: string,
  snapDir: string,
  walOpts: WalOptions,
  snapOpts: SnapshotterOptions,
): Promise<Recovered> {
  let opened;
  try {
    opened = await Wal.open(walDir, walOpts);
  } catch (err) {
    assert.fail(`${ctx}: the WAL does not open: ${(err as Error).message}`);
  }
  const { wal, state } = opened;
  const m = state.snapshot;
  const snapshotter = new Snapshotter(snapDir, snapOpts);
  const snapFile = await snapshotter.loadNewest(m);
  if (m.index > 0) {
    assert.ok(
      snapFile !== undefined && snapFile.meta.index === m.index && snapFile.meta.term === m.term,
      `${ctx}: the WAL records snapshot ${m.index}/${m.term} but the newest snapshot file it ` +
        `covers is ${snapFile === undefined ? "none" : `${snapFile.meta.index}/${snapFile.meta.term}`}` +
        ` (files: ${(await snapshotter.list()).join(", ")})`,
    );
  }
  // The marker agrees with the entries the WAL holds at its index.
  const p = wal.positions;
  if (m.index > 0 && p.has(m.index)) {
    assert.equal(p.term(m.index), m.term, `${ctx}: entry ${m.index} disagrees with the marker`);
  }
  assert.ok(state.firstIndex <= m.index + 1, `${ctx}: entries after the marker are missing`);
  assert.ok(
    state.lastIndex >= m.index,
    `${ctx}: last index ${state.lastIndex} < marker ${m.index}`,
  );
  const snap: Snapshot | undefined =
    snapFile === undefined
      ? undefined
      : {
          metadata: {
            index: snapFile.meta.index,
            term: snapFile.meta.term,
            confState: snapFile.meta.confState,
          },
          data: new TextEncoder().encode(snapFile.name),
        };
  let storage: DiskStorage;
  try {
    storage = new DiskStorage(wal, state, snap, { cacheEntries: 4 });
  } catch (err) {
    assert.fail(`${ctx}: the log view does not open: ${(err as Error).message}`);
  }
  const first = storage.firstIndex();
  const last = storage.lastIndex();
  const hs = storage.initialState().hardState;
  assert.ok(hs.commit <= last, `${ctx}: commit ${hs.commit} > last index ${last}`);
  assert.ok(
    hs.commit >= first - 1 || (hs.term === 0 && hs.commit === 0 && hs.vote === ""),
    `${ctx}: commit ${hs.commit} < snapshot ${first - 1}`,
  );
  assert.equal(storage.term(first - 1), snap?.metadata.term ?? 0, `${ctx}: term of the snapshot`);
  const entries = last >= first ? storage.entries(first, last + 1, Number.MAX_SAFE_INTEGER) : [];
  assert.equal(entries.length, last - first + 1, `${ctx}: the log view is not contiguous`);
  let prevTerm = snap?.metadata.term ?? 0;
  for (let k = 0; k < entries.length; k++) {
    const e = entries[k]!;
    assert.equal(e.index, first + k, `${ctx}: entry ${first + k} reads back as ${e.index}`);
    assert.ok(e.term >= prevTerm, `${ctx}: entry ${e.index}'s term ${e.term} < ${prevTerm}`);
    assert.equal(storage.term(e.index), e.term, `${ctx}: term(${e.index})`);
    prevTerm = e.term;
  }
  // The core's own invariants accept the state, and it hands out exactly the committed entries.
  let node: RawNode;
  try {
    node = new RawNode({
      id: "a",
      electionTick: 10,
      heartbeatTick: 1,
      storage,
      applied: first - 1,
      random: createSeededRandom(1),
    });
  } catch (err) {
    assert.fail(`${ctx}: the core refuses the recovered state: ${(err as Error).message}`);
  }
  const committed: Entry[] = [];
  for (let round = 0; node.hasReady() && round < 1000; round++) {
    const rd = node.ready();
    committed.push(...rd.committedEntries);
    node.advance(rd);
  }
  const want = Math.max(0, hs.commit - (first - 1));
  assert.equal(
    committed.length,
    want,
    `${ctx}: the core hands out ${committed.length} of ${want} committed entries`,
  );
  for (let k = 0; k < committed.length; k++) {
    assert.equal(committed[k]!.index, first + k, `${ctx}: committed entry ${k}`);
  }
  return { wal, state, snapshotter, snapFile, storage, entries };
}
