/**
 * 1,000 random power-loss cycles under appends, segment rotation, conflicting suffixes, hard
 * state updates, snapshot markers and compaction. After each crash the WAL must open, and every
 * acknowledged entry must be there (unless a later save replaced it). Seeded: the seed is
 * printed; WAL_CRASH_SEED replays one, WAL_CRASH_CYCLES runs more.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Wal } from "../../src/storage/wal.js";
import type { Entry, HardState } from "../../src/raft/types.js";
import { PowerLossFs } from "./power-loss-fs.js";
import { Snapshotter } from "../../src/storage/snapshotter.js";

const CONF = {
  voters: ["a"],
  learners: [],
  votersOutgoing: [],
  learnersNext: [],
  autoLeave: false,
};

function mulberry32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SEED = Number(process.env["WAL_CRASH_SEED"] ?? 20261125);
const CYCLES = Number(process.env["WAL_CRASH_CYCLES"] ?? 1000);

interface Save {
  readonly hs: HardState | undefined;
  readonly entries: Entry[];
  readonly marker: { index: number; term: number } | undefined;
}

function key(e: Entry): string {
  return `${e.term}:${new TextDecoder().decode(e.data)}`;
}

describe("write-ahead log under power loss", () => {
  it(`survives ${CYCLES} random crash cycles (seed ${SEED})`, async () => {
    const rand = mulberry32(SEED);
    const int = (n: number): number => Math.floor(rand() * n);
    const fs = new PowerLossFs();
    await fs.mkdirp("/data");
    await fs.syncDir("/data");
    const optsFor = () => ({ fs: fs.view(), segmentBytes: 2048, maxWals: 3 });
    // The acknowledged model.
    const log = new Map<number, string>();
    let last = 0;
    let markerIndex = 0;
    let hs: HardState = { term: 0, vote: "", commit: 0 };
    let term = 1;
    let counter = 0;
    let crashes = 0;
    let tornSeen = 0;
    for (let cycle = 0; cycle < CYCLES; cycle++) {
      const ctx = `seed ${SEED} cycle ${cycle}`;
      let opened;
      try {
        opened = await Wal.open("/data/wal", optsFor());
      } catch (err) {
        assert.fail(`${ctx}: open failed after a crash: ${(err as Error).message}`);
      }
      const { wal, state } = opened;
      if (state.tornTail !== undefined) tornSeen++;
      // The snapshot file is written before its marker: the newest valid file covers the marker.
      const snapshotter = new Snapshotter("/data/snap", { fs: fs.view(), maxSnapshots: 2 });
      const newest = await snapshotter.loadNewest();
      assert.ok(
        (newest?.meta.index ?? 0) >= state.snapshot.index,
        `${ctx}: WAL marker ${state.snapshot.index} but newest snapshot file ${String(newest?.meta.index)}`,
      );
      if (newest !== undefined) {
        let n = 0;
        for await (const c of snapshotter.openData(newest)) n += c.byteLength;
        assert.equal(n, newest.meta.index % 997, `${ctx}: snapshot data length`);
      }
      // Pending (unacknowledged) saves of the previous cycle may or may not have landed.
      const pendingEntries = pendingFromLastCycle;
      const pendingHs = pendingHsFromLastCycle;
      assert.ok(
        state.snapshot.index >= markerIndex,
        `${ctx}: snapshot marker went back from ${markerIndex} to ${state.snapshot.index}`,
      );
      assert.ok(
        state.hardState.term === hs.term && state.hardState.commit === hs.commit
          ? true
          : pendingHs.some(
              (p) => p.term === state.hardState.term && p.commit === state.hardState.commit,
            ),
        `${ctx}: hard state ${JSON.stringify(state.hardState)} is neither the acknowledged ${JSON.stringify(hs)} nor a pending one`,
      );
      // Every acknowledged entry after the snapshot is present, or replaced by a pending save.
      // An unacknowledged save that replaced a suffix may have landed in part: from its first
      // landed entry on, the log may differ from (or end before) the acknowledged one.
      const from = Math.max(state.snapshot.index + 1, state.firstIndex);
      let replacedFrom = Number.POSITIVE_INFINITY;
      for (let i = from; i <= Math.max(last, state.lastIndex); i++) {
        const acked = i <= last ? log.get(i) : undefined;
        const got = i <= state.lastIndex ? key(wal.readEntrySync(i)) : undefined;
        if (got !== undefined && got !== acked && pendingEntries.get(i)?.has(got) === true) {
          replacedFrom = Math.min(replacedFrom, i);
          continue;
        }
        if (got === acked) continue;
        if (i > replacedFrom && (got === undefined || pendingEntries.get(i)?.has(got) === true))
          continue;
        assert.fail(
          `${ctx}: entry ${i} is ${String(got)}, acknowledged ${String(acked)} (lost or invented)`,
        );
      }
      // Adopt what recovered as the new truth.
      log.clear();
      for (let i = from; i <= state.lastIndex; i++) log.set(i, key(wal.readEntrySync(i)));
      last = state.lastIndex;
      markerIndex = state.snapshot.index;
      hs = state.hardState;
      term = Math.max(term, hs.term + 1);
      pendingFromLastCycle = new Map();
      pendingHsFromLastCycle = [];

      // A burst of operations; some are awaited (acknowledged), some are left in flight.
      let planned = last;
      const inflight: Promise<void>[] = [];
      const ops = 1 + int(12);
      for (let k = 0; k < ops; k++) {
        const r = rand();
        let s: Save;
        if (r < 0.55 || planned === markerIndex) {
          const n = 1 + int(6);
          const start = planned + 1;
          s = { hs: undefined, entries: mk(start, n, term), marker: undefined };
          planned = start + n - 1;
        } else if (r < 0.7) {
          // A new leader overwrites a suffix after the snapshot.
          term++;
          const start = markerIndex + 1 + int(planned - markerIndex);
          const n = 1 + int(4);
          s = {
            hs: { term, vote: "x", commit: hs.commit },
            entries: mk(start, n, term),
            marker: undefined,
          };
          planned = start + n - 1;
        } else if (r < 0.85) {
          s = { hs: { term, vote: "", commit: last }, entries: [], marker: undefined };
        } else {
          // Snapshot at an acknowledged index, then compaction.
          const idx = last > markerIndex ? markerIndex + 1 + int(last - markerIndex) : 0;
          if (idx === 0) continue;
          const t = Number(log.get(idx)!.split(":")[0]);
          s = { hs: undefined, entries: [], marker: { index: idx, term: t } };
        }
        if (s.marker !== undefined) {
          // Snapshot order: the file (synced, renamed, directory synced), then the WAL marker.
          const size = s.marker.index % 997;
          const body = (async function* (): AsyncIterable<Uint8Array> {
            yield new Uint8Array(size).fill(7);
          })();
          await snapshotter.save({ ...s.marker, confState: CONF, members: {} }, body);
        }
        const p =
          s.marker !== undefined ? wal.saveSnapshotMarker(s.marker) : wal.save(s.hs, s.entries);
        const record = (): void => {
          for (const e of s.entries) {
            log.set(e.index, key(e));
            for (let i = e.index + 1; i <= last; i++)
              if (!s.entries.some((x) => x.index === i)) log.delete(i);
          }
          if (s.entries.length > 0) last = s.entries[s.entries.length - 1]!.index;
          if (s.hs !== undefined) hs = s.hs;
          if (s.marker !== undefined) markerIndex = Math.max(markerIndex, s.marker.index);
        };
        if (rand() < 0.7) {
          await p;
          record();
          if (s.marker !== undefined) await wal.releaseTo(s.marker.index - 5);
        } else {
          for (const e of s.entries) {
            const set = pendingFromLastCycle.get(e.index) ?? new Set<string>();
            set.add(key(e));
            pendingFromLastCycle.set(e.index, set);
          }
          if (s.hs !== undefined) pendingHsFromLastCycle.push(s.hs);
          inflight.push(p.then(record, () => undefined));
          break; // later saves would queue behind it; crash soon
        }
      }
      // Let a random number of turns pass, then the power goes out.
      for (let t = int(4); t > 0; t--) await new Promise((r) => setImmediate(r));
      fs.crash(rand, rand() < 0.5);
      crashes++;
      // Saves that resolved before the crash are acknowledged; the rest never will be.
      await Promise.race([Promise.all(inflight), new Promise((r) => setTimeout(r, 0))]);
    }
    assert.equal(crashes, CYCLES);
    assert.ok(tornSeen > 0, "some crashes produced a torn tail");
    // Helper for the entries of a save.
    function mk(start: number, n: number, t: number): Entry[] {
      return Array.from({ length: n }, (_, i) => ({
        term: t,
        index: start + i,
        type: "normal" as const,
        data: new TextEncoder().encode(`v${counter++}`),
      }));
    }
  });
});

let pendingFromLastCycle = new Map<number, Set<string>>();
let pendingHsFromLastCycle: HardState[] = [];
