/**
 * 1,000 random power-loss cycles under appends, segment rotation, conflicting suffixes, hard
 * state updates, snapshot files with their markers, compaction and retention. After each crash
 * what is on disk must open as a node would open it (recovery-check.ts: the covered snapshot,
 * marker and entries agreeing, commit <= last index, a RawNode of the core accepting it), and
 * every acknowledged entry must be there (unless a later save replaced it). Crashes drop unsynced
 * data, keep a torn prefix of the newest write, or keep a random subset of its sectors (pages
 * reaching the disk out of order); unsynced directory operations survive as a random prefix.
 * Seeded: the seed is printed; WAL_CRASH_SEED replays one, WAL_CRASH_CYCLES runs more.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { Entry, HardState } from "../../src/raft/types.js";
import { PowerLossFs } from "./power-loss-fs.js";
import type { DataLoss } from "./power-loss-fs.js";
import { openRecovered } from "./recovery-check.js";

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

/** The recovered commit of a hard state, as recovery clamps it. */
function clamped(hs: HardState, floor: number, last: number): number {
  if (hs.commit > last) return last;
  if (hs.commit < floor && !(hs.term === 0 && hs.commit === 0 && hs.vote === "")) return floor;
  return hs.commit;
}

describe("write-ahead log under power loss", () => {
  it(`survives ${CYCLES} random crash cycles (seed ${SEED})`, async () => {
    const rand = mulberry32(SEED);
    const int = (n: number): number => Math.floor(rand() * n);
    const fs = new PowerLossFs();
    await fs.mkdirp("/data");
    await fs.syncDir("/data");
    const walOpts = () => ({ fs: fs.view(), segmentBytes: 2048, maxWals: 3 });
    const snapOpts = () => ({ fs: fs.view(), maxSnapshots: 2 });
    // The acknowledged model.
    const log = new Map<number, string>();
    let last = 0;
    let markerIndex = 0;
    let hs: HardState = { term: 0, vote: "", commit: 0 };
    let term = 1;
    let counter = 0;
    let tornSeen = 0;
    let pendingEntries = new Map<number, Set<string>>();
    let pendingHs: HardState[] = [];
    for (let cycle = 0; cycle < CYCLES; cycle++) {
      const ctx = `seed ${SEED} cycle ${cycle}`;
      const { wal, state, storage, snapshotter } = await openRecovered(
        ctx,
        "/data/wal",
        "/data/snap",
        walOpts(),
        snapOpts(),
      );
      if (state.tornTail !== undefined) tornSeen++;
      assert.ok(
        state.snapshot.index >= markerIndex,
        `${ctx}: snapshot marker went back from ${markerIndex} to ${state.snapshot.index}`,
      );
      const okHs = [hs, ...pendingHs].some(
        (h) =>
          h.term === state.hardState.term &&
          h.vote === state.hardState.vote &&
          clamped(h, state.snapshot.index, state.lastIndex) === state.hardState.commit,
      );
      assert.ok(
        okHs,
        `${ctx}: hard state ${JSON.stringify(state.hardState)} is neither the acknowledged ${JSON.stringify(hs)} nor a pending one`,
      );
      // Every acknowledged entry after the snapshot is present, or replaced by a pending save.
      // An unacknowledged save that replaced a suffix may have landed in part: from its first
      // landed entry on, the log may differ from (or end before) the acknowledged one.
      const from = state.snapshot.index + 1;
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
      pendingEntries = new Map();
      pendingHs = [];

      // A burst of operations; some are awaited (acknowledged), some are left in flight.
      let planned = last;
      const inflight: Promise<void>[] = [];
      const ops = 1 + int(12);
      for (let k = 0; k < ops; k++) {
        const r = rand();
        let s: Save;
        if (r < 0.5 || planned === markerIndex) {
          // A follower's Ready: new entries and a commit that covers them.
          const n = 1 + int(6);
          const start = planned + 1;
          const commit = rand() < 0.5 ? start + n - 1 : hs.commit;
          s = {
            hs: rand() < 0.5 ? { term: hs.term, vote: hs.vote, commit } : undefined,
            entries: mk(start, n, term),
            marker: undefined,
          };
          planned = start + n - 1;
        } else if (r < 0.65 && planned > hs.commit) {
          // A new leader overwrites an uncommitted suffix.
          term++;
          const start =
            Math.max(markerIndex, hs.commit) + 1 + int(planned - Math.max(markerIndex, hs.commit));
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
          // A snapshot at a committed, acknowledged index, then compaction.
          const top = Math.min(hs.commit, last);
          const idx = top > markerIndex ? markerIndex + 1 + int(top - markerIndex) : 0;
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
          storage.append(s.entries);
        };
        if (rand() < 0.7) {
          await p;
          record();
          if (s.marker !== undefined) {
            snapshotter.covered(s.marker);
            const to = s.marker.index - 5;
            if (to > storage.firstIndex()) storage.compact(to);
            await wal.releaseTo(to);
          }
        } else {
          for (const e of s.entries) {
            const set = pendingEntries.get(e.index) ?? new Set<string>();
            set.add(key(e));
            pendingEntries.set(e.index, set);
          }
          if (s.hs !== undefined) pendingHs.push(s.hs);
          inflight.push(p.then(record, () => undefined));
          break; // later saves would queue behind it; crash soon
        }
      }
      // Let a random number of turns pass, then the power goes out.
      for (let t = int(4); t > 0; t--) await new Promise((r) => setImmediate(r));
      const modes: DataLoss[] = ["all", "torn", "sectors"];
      fs.crash(rand, { data: modes[int(modes.length)]!, dirs: "prefix" });
      // Saves that resolved before the crash are acknowledged; the rest never will be.
      await Promise.race([Promise.all(inflight), new Promise((r) => setTimeout(r, 0))]);
    }
    assert.ok(tornSeen > 0, "some crashes produced a torn tail");
    // Helper for the entries of a save.
    function mk(start: number, n: number, t: number): Entry[] {
      return Array.from({ length: n }, (_, i) => ({
        term: t,
        index: start + i,
        type: "normal" as const,
        data: new TextEncoder().encode(`v${counter++}`.padEnd(int(3) === 0 ? 300 : 4, ".")),
      }));
    }
  });
});
