/**
 * The storage crash-point sweep. For every point of WAL_CRASH_POINTS and SNAPSHOT_CRASH_POINTS, a
 * writer drives the WAL, the snapshotter and the raft log view as the runtime does (a follower's
 * and a leader's saves, group commit, conflicting suffixes, local snapshots with compaction,
 * snapshots received from a leader, segment rolls, retention over maxWals), and a hook crashes
 * it the nth time the point is reached: the file system then loses what a crash there may lose
 * (nothing but the process, unsynced data, a torn prefix, or a random subset of sectors; with a
 * random prefix of unsynced directory operations). After each crash, recovery must:
 *
 * - open (recovery-check.ts: the covered snapshot exists, marker and entries agree, commit <=
 *   last index, a RawNode of the core accepts the state and hands out the committed entries);
 * - hold exactly the acknowledged state plus a prefix of the records of the saves in flight at
 *   the crash (so every acknowledged entry, hard state and marker is there, nothing invented);
 *
 * and while running, the log view must answer every read with entries or "compacted", never an
 * internal error. Crashes at a random instant between the rounds feed the recovery points (a torn
 * tail to cut, an incomplete batch to seal, leftovers to remove).
 *
 * STORAGE_CRASH_SWEEP_CYCLES (default 20) is the number of crashes at each point;
 * STORAGE_CRASH_SWEEP_SEED replays a seed; STORAGE_CRASH_SWEEP_POINT runs one point.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { WAL_CRASH_POINTS } from "../../src/storage/wal.js";
import type { Wal } from "../../src/storage/wal.js";
import { SNAPSHOT_CRASH_POINTS, Snapshotter } from "../../src/storage/snapshotter.js";
import type { CrashHook, CrashPoint } from "../../src/storage/crash-points.js";
import type { DiskStorage } from "../../src/storage/disk-storage.js";
import { StorageError } from "../../src/raft/storage.js";
import type { Entry, HardState, Snapshot } from "../../src/raft/types.js";
import { PowerLossFs } from "./power-loss-fs.js";
import type { CrashOptions } from "./power-loss-fs.js";
import { openRecovered } from "./recovery-check.js";

const CYCLES = Number(process.env["STORAGE_CRASH_SWEEP_CYCLES"] ?? 20);
const SEED = Number(process.env["STORAGE_CRASH_SWEEP_SEED"] ?? 20261126);
const ONLY = process.env["STORAGE_CRASH_SWEEP_POINT"];
const POINTS: readonly CrashPoint[] = [...WAL_CRASH_POINTS, ...SNAPSHOT_CRASH_POINTS].filter(
  (p) => ONLY === undefined || p.name === ONLY,
);

const WAL_DIR = "/data/wal";
const SNAP_DIR = "/data/snap";
const SEGMENT_BYTES = 2048;
const MAX_WALS = 2;
const MAX_SNAPSHOTS = 2;
const CATCH_UP = 4;
const CONF = {
  voters: ["a"],
  learners: [],
  votersOutgoing: [],
  learnersNext: [],
  autoLeave: false,
};

/** Instants of an unfinished write, where a round that missed its point ends. */
const FILLERS = [
  "wal.batch-after-write",
  "wal.batch-after-write",
  "wal.preamble-after-write",
  "wal.prepare-after-write",
  "snap.save-after-write",
  "snap.receive-after-write",
  "snap.save-after-rename",
];

const LOSSES: readonly CrashOptions[] = [
  { data: "none", dirs: "kept" },
  { data: "all", dirs: "lost" },
  { data: "torn", dirs: "prefix" },
  { data: "sectors", dirs: "prefix" },
];

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

function hash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

/** The crash a hook throws: the writer stops there, as a dead process would. */
class Crash extends Error {}

type Marker = { readonly index: number; readonly term: number };
type Rec =
  | { readonly kind: "marker"; readonly m: Marker }
  | { readonly kind: "entry"; readonly e: Entry; readonly key: string }
  | { readonly kind: "hs"; readonly hs: HardState };

/** The durable state the model expects: entries after the marker, by index. */
interface State {
  hs: HardState;
  marker: Marker;
  last: number;
  log: Map<number, string>;
}

function copy(s: State): State {
  return { hs: s.hs, marker: s.marker, last: s.last, log: new Map(s.log) };
}

/** Applies one record as recovery replays it. */
function apply(s: State, r: Rec): void {
  if (r.kind === "hs") {
    s.hs = r.hs;
  } else if (r.kind === "entry") {
    for (let i = r.e.index; i <= s.last; i++) s.log.delete(i);
    s.log.set(r.e.index, r.key);
    s.last = r.e.index;
  } else if (r.m.index > s.marker.index) {
    const at = s.log.get(r.m.index);
    if (r.m.index > s.last || at === undefined || Number(at.split(":")[0]) !== r.m.term) {
      s.log.clear();
      s.last = r.m.index;
    } else {
      for (const i of [...s.log.keys()]) if (i <= r.m.index) s.log.delete(i);
    }
    s.marker = r.m;
  }
}

function clampedCommit(hs: HardState, floor: number, last: number): number {
  if (hs.commit > last) return last;
  if (hs.commit < floor && !(hs.term === 0 && hs.commit === 0 && hs.vote === "")) return floor;
  return hs.commit;
}

const keyOf = (e: Entry): string => `${e.term}:${new TextDecoder().decode(e.data)}`;

/** Per point: crashes at the point, other crashes, and how many had each outcome. */
const report: { name: string; hits: number; rounds: number }[] = [];

after(() => {
  const hits = report.reduce((n, r) => n + r.hits, 0);
  const rounds = report.reduce((n, r) => n + r.rounds, 0);
  console.log(
    `storage crash sweep (seed ${SEED}): ${report.length} crash points, ${hits} crashes at them ` +
      `(${CYCLES} per point), ${rounds} recoveries in all`,
  );
  for (const r of report) console.log(`  ${r.name}: ${r.hits} crashes, ${r.rounds} recoveries`);
});

describe("storage crash points under power loss", () => {
  for (const point of POINTS) {
    it(`${point.name}: ${CYCLES} crashes there, each recovers (seed ${SEED})`, async () => {
      const rand = mulberry32(SEED ^ hash(point.name));
      const int = (n: number): number => Math.floor(rand() * n);
      const fresh = point.name.startsWith("wal.create-");
      const nthMax = point.name.startsWith("wal.batch-")
        ? 8
        : point.name.startsWith("wal.open-")
          ? 1
          : 3;
      let fs = new PowerLossFs();
      let needFresh = true;
      let acked: State = {
        hs: { term: 0, vote: "", commit: 0 },
        marker: { index: 0, term: 0 },
        last: 0,
        log: new Map(),
      };
      let pending: Rec[][] = [];
      let term = 1;
      let counter = 0;
      let hits = 0;
      let rounds = 0;
      const scratch = new PowerLossFs();
      await scratch.mkdirp("/s");

      while (hits < CYCLES) {
        rounds++;
        assert.ok(
          rounds <= CYCLES * 60,
          `${point.name} was reached only ${hits} times in ${rounds} rounds`,
        );
        const ctx = `${point.name} seed ${SEED} round ${rounds}`;
        if (needFresh) {
          needFresh = false;
          fs = new PowerLossFs();
          await fs.mkdirp("/data");
          await fs.syncDir("/");
          acked = {
            hs: { term: 0, vote: "", commit: 0 },
            marker: { index: 0, term: 0 },
            last: 0,
            log: new Map(),
          };
          pending = [];
        }
        const nth = 1 + int(nthMax);
        const loss = LOSSES[int(LOSSES.length)]!;
        let seen = 0;
        let crashed = false;
        let atPoint = false;
        /** Another point to crash at once the round's work is done (see below). */
        let filler: string | undefined;
        const hook: CrashHook = (p) => {
          if (crashed) return;
          if (p === point.name) {
            seen++;
            if (seen < nth) return;
            atPoint = true;
          } else if (p !== filler) {
            return;
          }
          crashed = true;
          fs.crash(rand, p === point.name ? loss : fillerLoss());
          throw new Crash(`crash at ${p}`);
        };
        const walOpts = {
          fs: fs.view(),
          segmentBytes: SEGMENT_BYTES,
          maxWals: MAX_WALS,
          crash: hook,
        };
        const snapOpts = { fs: fs.view(), maxSnapshots: MAX_SNAPSHOTS, crash: hook };

        // Recovery (the hook is armed: the recovery points are reached here).
        let r;
        try {
          r = await recoverAndCheck(ctx, walOpts, snapOpts);
        } catch (err) {
          if (!crashed) throw err;
          if (atPoint) hits++;
          continue;
        }
        const { wal, storage, snapshotter } = r;
        // After a crash in a new WAL's creation, recover it; then start again from nothing.
        if (fresh) needFresh = true;
        // The writer, until the crash or the end of its work. Not reached: it works on until
        // the power goes out in the middle of a write, leaving the next recovery something to
        // do (a torn tail to cut, an incomplete batch to seal, leftover files).
        for (const pass of [0, 1]) {
          if (pass === 1) filler = fillerFor(point.name);
          try {
            await work();
          } catch (err) {
            if (!crashed) throw err;
          }
          if (crashed) break;
        }
        if (atPoint) hits++;
        if (!crashed) {
          for (let t = int(3); t > 0; t--) await new Promise((res) => setImmediate(res));
          fs.crash(rand, LOSSES[int(LOSSES.length)]!);
        }

        async function work(): Promise<void> {
          const w: Wal = wal;
          const view: DiskStorage = storage;
          const snaps: Snapshotter = snapshotter;
          /** Issues a save; the model learns of it when it resolves. */
          const save = (hs: HardState | undefined, entries: Entry[], m?: Marker): Promise<void> => {
            const recs: Rec[] = [];
            if (m !== undefined) recs.push({ kind: "marker", m });
            for (const e of entries) recs.push({ kind: "entry", e, key: keyOf(e) });
            if (hs !== undefined) recs.push({ kind: "hs", hs });
            pending.push(recs);
            return w.save(hs, entries, m).then(() => {
              assert.equal(pending[0], recs, "saves resolve in order");
              pending.shift();
              for (const x of recs) apply(acked, x);
              view.append(entries);
              if (hs !== undefined) view.setHardState(hs);
            });
          };
          const mk = (start: number, n: number, t: number): Entry[] =>
            Array.from({ length: n }, (_, i) => ({
              term: t,
              index: start + i,
              type: "normal" as const,
              data: new TextEncoder().encode(`v${counter++}`.padEnd(20 + int(380), ".")),
            }));
          /** Every read of the view answers with entries or "compacted"/"unavailable". */
          const probe = (): void => {
            const first = view.firstIndex();
            const lastIdx = view.lastIndex();
            for (const i of [first - 2, first - 1, first, lastIdx - int(8), lastIdx, lastIdx + 1]) {
              try {
                view.term(i);
                if (i >= 1 && i <= lastIdx) view.entries(i, lastIdx + 1, 1 + int(2000));
              } catch (err) {
                if (!(err instanceof StorageError)) throw err;
              }
            }
          };
          const ops = 10 + int(30);
          for (let k = 0; k < ops && !crashed; k++) {
            const x = rand();
            const a = acked;
            const floor = Math.max(a.marker.index, a.hs.commit);
            if (x < 0.4) {
              // A follower's Ready: entries and a commit that covers them.
              const n = 1 + int(5);
              const ents = mk(a.last + 1, n, term);
              const hs = rand() < 0.6 ? { term, vote: "a", commit: a.last + n } : undefined;
              await save(hs, ents);
            } else if (x < 0.5) {
              // Group commit: several saves share one write and one fdatasync.
              const n = 2 + int(3);
              const ps: Promise<void>[] = [];
              let next = a.last + 1;
              for (let j = 0; j < n; j++) {
                const ents = mk(next, 1 + int(3), term);
                next += ents.length;
                ps.push(save({ term, vote: "a", commit: next - 1 }, ents));
              }
              await Promise.all(ps);
            } else if (x < 0.6 && a.last > floor) {
              // A new leader replaces an uncommitted suffix.
              const start = floor + 1 + int(a.last - floor);
              term++;
              await save({ term, vote: "b", commit: a.hs.commit }, mk(start, 1 + int(3), term));
            } else if (x < 0.75 && a.hs.commit > a.marker.index && a.hs.commit <= a.last) {
              // A local snapshot at a committed index: file, marker, compaction, release.
              const idx = a.marker.index + 1 + int(a.hs.commit - a.marker.index);
              const t = Number(a.log.get(idx)!.split(":")[0]);
              if (idx <= view.snapshot().metadata.index) continue;
              await snaps.save({ index: idx, term: t, confState: CONF, members: {} }, body(idx));
              const data = new TextEncoder().encode(`snap-${idx}`);
              view.createSnapshot(idx, CONF, data);
              await save(undefined, [], { index: idx, term: t });
              snaps.covered({ index: idx, term: t });
              const to = idx - CATCH_UP;
              if (to > view.firstIndex()) view.compact(to);
              await w.releaseTo(to);
            } else if (x < 0.85) {
              // A snapshot received from a leader, beyond the log or conflicting with it.
              const j = Math.max(floor, a.marker.index) + 1 + int(6);
              term++;
              const m = { index: j, term };
              const name = `${term.toString(16).padStart(16, "0")}-${j.toString(16).padStart(16, "0")}.snap`;
              await snaps.saveRaw(name, await fileOf(m));
              const hs = { term, vote: "", commit: j };
              if (rand() < 0.5) {
                await save(hs, [], m);
              } else {
                const p1 = save(undefined, [], m);
                const p2 = save(hs, []);
                await Promise.all([p1, p2]);
              }
              const snap: Snapshot = {
                metadata: { index: j, term, confState: CONF },
                data: new TextEncoder().encode(name),
              };
              view.applySnapshot(snap);
              snaps.covered(m);
            } else if (x < 0.92) {
              await save({ term, vote: "a", commit: a.last }, []);
            } else {
              await w.releaseTo(a.marker.index - int(CATCH_UP));
            }
            probe();
          }
        }
      }
      // The last crash recovers too.
      const last = await recoverAndCheck(
        `${point.name} seed ${SEED} after the last crash`,
        { fs: fs.view(), segmentBytes: SEGMENT_BYTES, maxWals: MAX_WALS },
        { fs: fs.view(), maxSnapshots: MAX_SNAPSHOTS },
      );
      await last.wal.close();
      rounds++;
      report.push({ name: point.name, hits, rounds });
      assert.ok(hits >= CYCLES);

      /**
       * Where a round that missed its point ends. A point reached while recovering needs
       * something to recover: a torn batch (tail cut, seal) or a snapshot file left half done.
       */
      function fillerFor(name: string): string {
        if (name.startsWith("wal.open-")) return "wal.batch-after-write";
        if (name === "snap.load-after-tmp-unlink") {
          return rand() < 0.5 ? "snap.save-after-write" : "snap.receive-after-write";
        }
        return FILLERS[int(FILLERS.length)]!;
      }
      function fillerLoss(): CrashOptions {
        if (point.name.startsWith("wal.open-")) {
          return rand() < 0.5
            ? { data: "torn", dirs: "prefix" }
            : { data: "sectors", dirs: "prefix" };
        }
        if (point.name === "snap.load-after-tmp-unlink") return { data: "none", dirs: "kept" };
        return LOSSES[int(LOSSES.length)]!;
      }

      /**
       * Opens what the crash left and checks it: recovery-check.ts, then exactly the acknowledged
       * state plus a prefix of the records in flight at the crash. Adopts it as acknowledged.
       */
      async function recoverAndCheck(
        ctx: string,
        walOpts: Parameters<typeof openRecovered>[3],
        snapOpts: Parameters<typeof openRecovered>[4],
      ) {
        const r = await openRecovered(ctx, WAL_DIR, SNAP_DIR, walOpts, snapOpts);
        const { wal, state } = r;
        const got: State = {
          hs: state.hardState,
          marker: state.snapshot,
          last: state.lastIndex,
          log: new Map(),
        };
        for (let i = state.snapshot.index + 1; i <= state.lastIndex; i++) {
          got.log.set(i, keyOf(wal.readEntrySync(i)));
        }
        const flat = pending.flat();
        let match = -1;
        const cand = copy(acked);
        for (let k = 0; k <= flat.length && match < 0; k++) {
          if (k > 0) apply(cand, flat[k - 1]!);
          const same =
            cand.marker.index === got.marker.index &&
            cand.marker.term === got.marker.term &&
            cand.last === got.last &&
            cand.hs.term === got.hs.term &&
            cand.hs.vote === got.hs.vote &&
            clampedCommit(cand.hs, cand.marker.index, cand.last) === got.hs.commit &&
            [...got.log].every(([i, v]) => cand.log.get(i) === v) &&
            [...cand.log.keys()].every((i) => got.log.has(i));
          if (same) match = k;
        }
        assert.ok(
          match >= 0,
          `${ctx}: recovered ${JSON.stringify({ hs: got.hs, marker: got.marker, last: got.last })} ` +
            `is not the acknowledged ${JSON.stringify({ hs: acked.hs, marker: acked.marker, last: acked.last })} ` +
            `plus a prefix of the ${flat.length} records in flight`,
        );
        acked = got;
        pending = [];
        term = Math.max(
          1,
          got.hs.term,
          got.marker.term,
          ...[...got.log.values()].map((v) => Number(v.split(":")[0])),
        );
        return r;
      }

      function body(index: number): AsyncIterable<Uint8Array> {
        return (async function* () {
          yield new Uint8Array(index % 600).fill(index & 0xff);
        })();
      }
      /** The whole file of a snapshot at m, as a leader would stream it. */
      async function fileOf(m: Marker): Promise<AsyncIterable<Uint8Array>> {
        const s = new Snapshotter("/s", { fs: scratch.view(), maxSnapshots: 0 });
        const f = await s.save(
          { index: m.index, term: m.term, confState: CONF, members: {} },
          body(m.index),
        );
        const chunks: Uint8Array[] = [];
        for await (const c of s.openFile(f, 300)) chunks.push(c);
        return (async function* () {
          yield* chunks;
        })();
      }
    });
  }
});
