/**
 * The folder swap of `nexus recover` and `nexus restore` (src/storage/folder-swap.ts) under the
 * power-loss file system: cut at every crash point, with the unsynced directory operations lost,
 * kept, or a random prefix of them kept, the folders are always the complete old state (no
 * journal), the complete new state, or a journal that `finishSwap` turns into the new state; the
 * old data is never lost. Seed: FOLDER_SWAP_SEED.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { NexusError } from "../../src/errors/index.js";
import {
  SWAP_CRASH_POINTS,
  clearSwapLeftovers,
  commitSwap,
  finishSwap,
  freshDirOf,
  journalPathOf,
  readSwapJournal,
} from "../../src/storage/folder-swap.js";
import type { SwapJournal } from "../../src/storage/folder-swap.js";
import type { FsLayer } from "../../src/storage/fs-layer.js";
import { PowerLossFs } from "./power-loss-fs.js";
import type { DirLoss } from "./power-loss-fs.js";

const WAL = "/d/logs/node_1";
const SNAP = "/d/snap/node_1";
const JOURNAL = journalPathOf(WAL);

class Crash extends Error {}

function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
}

async function put(fs: FsLayer, path: string, text: string): Promise<void> {
  const f = await fs.open(path, "w");
  await f.write(new TextEncoder().encode(text), 0);
  await f.datasync();
  await f.close();
}

async function get(fs: FsLayer, path: string): Promise<string | undefined> {
  if (!(await fs.exists(path))) return undefined;
  const f = await fs.open(path, "r");
  const b = new Uint8Array(await f.size());
  await f.read(b, 0);
  await f.close();
  return new TextDecoder().decode(b);
}

/**
 * A node's folders (old data; none for a restore, `aside` false) and the new ones built beside
 * them: their files durable, their folders' entries not (commitSwap syncs them).
 */
async function setup(
  withOldSnap: boolean,
  aside: boolean,
): Promise<{
  fs: PowerLossFs;
  j: SwapJournal;
}> {
  const fs = new PowerLossFs();
  for (const d of ["/d", "/d/logs", "/d/snap"]) await fs.mkdirp(d);
  if (aside) {
    // Recover: the node's data. (Restore: none, the folders are absent.)
    await fs.mkdirp(WAL);
    await put(fs, `${WAL}/0-1.wal`, "old wal");
    await fs.syncDir(WAL);
  }
  if (withOldSnap) {
    await fs.mkdirp(SNAP);
    await put(fs, `${SNAP}/1-5.snap`, "old snap");
    await fs.syncDir(SNAP);
  }
  await fs.syncDir("/d/logs");
  await fs.syncDir("/d/snap");
  await fs.mkdirp(freshDirOf(SNAP));
  await put(fs, `${freshDirOf(SNAP)}/2-9.snap`, "new snap");
  await fs.mkdirp(freshDirOf(WAL));
  await put(fs, `${freshDirOf(WAL)}/0-1.wal`, "new wal");
  const j: SwapJournal = {
    command: "recover",
    folders: [
      {
        target: SNAP,
        fresh: freshDirOf(SNAP),
        aside: aside && withOldSnap ? `${SNAP}.before-recover-t` : undefined,
      },
      { target: WAL, fresh: freshDirOf(WAL), aside: aside ? `${WAL}.before-recover-t` : undefined },
    ],
    about: { index: 9, term: 2 },
  };
  return { fs, j };
}

type Seen = "old" | "new";

/** What the node's folders hold: exactly the old state or exactly the new one (else it throws). */
async function stateOf(fs: FsLayer, j: SwapJournal, withOldSnap: boolean): Promise<Seen> {
  const wal = await get(fs, `${WAL}/0-1.wal`);
  const snapOld = await get(fs, `${SNAP}/1-5.snap`);
  const snapNew = await get(fs, `${SNAP}/2-9.snap`);
  if (wal === "old wal") {
    assert.equal(snapOld, withOldSnap ? "old snap" : undefined, "old WAL beside the new snapshots");
    assert.equal(snapNew, undefined, "old WAL beside the new snapshot folder");
    return "old";
  }
  assert.equal(wal, "new wal", "the WAL folder is gone or unknown");
  assert.equal(snapNew, "new snap", "new WAL beside the old snapshot folder");
  assert.equal(snapOld, undefined);
  for (const f of j.folders) assert.equal(await fs.exists(f.fresh), false, `${f.fresh} is left`);
  // The old data is kept aside, whole.
  const walAside = j.folders[1]!.aside;
  if (walAside !== undefined) assert.equal(await get(fs, `${walAside}/0-1.wal`), "old wal");
  const snapAside = j.folders[0]!.aside;
  if (snapAside !== undefined) assert.equal(await get(fs, `${snapAside}/1-5.snap`), "old snap");
  return "new";
}

/** The crash points a whole swap reaches, with their nth, in order. */
async function reachedPoints(withOldSnap: boolean, aside: boolean): Promise<[string, number][]> {
  const { fs, j } = await setup(withOldSnap, aside);
  const seen: [string, number][] = [];
  const count = new Map<string, number>();
  await commitSwap(JOURNAL, j, {
    fs: fs.view(),
    crash: (p) => {
      const n = (count.get(p) ?? 0) + 1;
      count.set(p, n);
      seen.push([p, n]);
    },
  });
  assert.equal(await stateOf(fs.view(), j, withOldSnap), "new");
  assert.equal(await fs.exists(JOURNAL), false);
  return seen;
}

const SEED = Number(process.env["FOLDER_SWAP_SEED"] ?? Date.now() % 1_000_000);

describe(`folder swap under power loss (FOLDER_SWAP_SEED=${SEED})`, () => {
  it("a whole swap reaches every crash point and ends in the new state, the journal gone", async () => {
    const names = new Set((await reachedPoints(true, true)).map(([p]) => p));
    for (const p of SWAP_CRASH_POINTS) assert.ok(names.has(p.name), `${p.name} not reached`);
  });

  for (const c of [
    { name: "recover: old folders aside", withOldSnap: true, aside: true },
    { name: "recover: no snapshot folder before", withOldSnap: false, aside: true },
    { name: "restore: folders absent, nothing aside", withOldSnap: false, aside: false },
  ]) {
    it(`${c.name}: cut at every point, the old state, the new one, or a journal that finishes`, async () => {
      const rand = rng(SEED);
      const points = await reachedPoints(c.withOldSnap, c.aside);
      const modes: DirLoss[] = ["lost", "kept", "prefix", "prefix", "prefix"];
      for (const [point, nth] of points) {
        for (const dirs of modes) {
          const what = `${point}:${nth}, directory operations ${dirs}`;
          const { fs, j } = await setup(c.withOldSnap, c.aside);
          let count = 0;
          await assert.rejects(
            commitSwap(JOURNAL, j, {
              fs: fs.view(),
              crash: (p) => {
                if (p === point && ++count === nth) throw new Crash(what);
              },
            }),
            Crash,
          );
          fs.crash(rand, { data: "all", dirs });
          const v = fs.view();
          const pending = await readSwapJournal(JOURNAL, { fs: v });
          if (pending !== undefined) {
            assert.deepEqual(pending, j, what);
            await finishSwap(JOURNAL, pending, { fs: v });
            assert.equal(await fs.exists(JOURNAL), false, what);
          } else if (c.aside) {
            if ((await stateOf(v, j, c.withOldSnap)) === "old") {
              // Run again: the leftovers go, the swap is done from the start.
              await clearSwapLeftovers(JOURNAL, [SNAP, WAL], { fs: v });
              for (const f of j.folders) assert.equal(await v.exists(f.fresh), false, what);
              assert.equal(await stateOf(v, j, c.withOldSnap), "old", what);
              await rebuildFresh(v);
              await commitSwap(JOURNAL, j, { fs: v });
            }
          } else if (!(await v.exists(`${WAL}/0-1.wal`))) {
            // Restore, no journal, no WAL: the node has no data at all (not half of it).
            assert.equal(await v.exists(`${SNAP}/2-9.snap`), false, what);
            await clearSwapLeftovers(JOURNAL, [SNAP, WAL], { fs: v });
            await rebuildFresh(v);
            await commitSwap(JOURNAL, j, { fs: v });
          }
          if (c.aside) assert.equal(await stateOf(v, j, c.withOldSnap), "new", what);
          else {
            assert.equal(await get(v, `${WAL}/0-1.wal`), "new wal", what);
            assert.equal(await get(v, `${SNAP}/2-9.snap`), "new snap", what);
          }
        }
      }
    });
  }

  it("finishSwap refuses, changing nothing, when a folder is in a state no swap leaves", async () => {
    const { fs, j } = await setup(true, true);
    const v = fs.view();
    // Something put a folder where the old data should go.
    await v.mkdirp(j.folders[0]!.aside!);
    await assert.rejects(
      finishSwap(JOURNAL, j, { fs: v }),
      (e: unknown) => e instanceof NexusError && e.code === "BAD_CONFIG" && /both/.test(e.message),
    );
    assert.equal(await get(v, `${SNAP}/1-5.snap`), "old snap");
    assert.equal(await get(v, `${freshDirOf(SNAP)}/2-9.snap`), "new snap");
  });

  it("a damaged journal is CORRUPTED, not guessed at", async () => {
    const { fs } = await setup(true, true);
    await put(fs.view(), JOURNAL, "{not json");
    await assert.rejects(
      readSwapJournal(JOURNAL, { fs: fs.view() }),
      (e: unknown) => e instanceof NexusError && e.code === "CORRUPTED",
    );
  });
});

/** Builds the new folders again (a second run of the command). */
async function rebuildFresh(fs: FsLayer): Promise<void> {
  await fs.mkdirp(freshDirOf(SNAP));
  await put(fs, `${freshDirOf(SNAP)}/2-9.snap`, "new snap");
  await fs.mkdirp(freshDirOf(WAL));
  await put(fs, `${freshDirOf(WAL)}/0-1.wal`, "new wal");
}
