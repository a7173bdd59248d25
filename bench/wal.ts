/**
 * `npm run bench -- wal [--dir D] [--seconds S]`: write-ahead log figures on 256-byte entries,
 * printed as JSON lines `{"bench":"wal","case":...}`:
 * - raw-fdatasync: the disk's limit, write(256 B) + fdatasync in a loop of synchronous calls
 *   (`syncsPerSec`); raw-fdatasync-async: the same through fs/promises (a thread-pool hop per call);
 * - fsync-single: one entry per save, awaited one by one, through the WAL's writer thread
 *   (`entriesPerSec`, `ratioToRaw`: the median over rounds of alternating 250 ms slices of the
 *   rate to the synchronous loop's); fsync-single-thread-pool: the same with
 *   `writer: "thread-pool"` (asynchronous write then fdatasync), in the same rounds, with
 *   `workerToThreadPool`, the median of the rounds' worker / thread-pool rates;
 * - fsync-single-interleaved: the four above, one operation of each in turn, each timed
 *   (`medianUs`, ratios of median and of mean latencies to the synchronous loop's);
 * - batched: group commit with 64 entries per sync (`entriesPerSec`, `ratioToRaw`);
 * - recovery-1m: open and replay a log of 1,000,000 entries (`seconds`).
 * The directory defaults to a temporary one under the current directory (same disk as the repo).
 */
import { closeSync, fdatasyncSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { open } from "node:fs/promises";
import { join, resolve } from "node:path";
import { Wal } from "../src/storage/wal.js";
import type { Entry } from "../src/raft/types.js";

function line(o: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify({ bench: "wal", ...o }) + "\n");
}

/** A file of 64 MiB of zeros, synced, so that writes into it allocate nothing. */
function preallocated(path: string): number {
  const fd = openSync(path, "w");
  writeSync(fd, new Uint8Array(64 * 1024 * 1024), 0, 64 * 1024 * 1024, 0);
  fdatasyncSync(fd);
  return fd;
}

function entries(first: number, n: number, payload: Uint8Array): Entry[] {
  const out: Entry[] = [];
  for (let i = 0; i < n; i++)
    out.push({ term: 1, index: first + i, type: "normal", data: payload });
  return out;
}

export default async function main(args: string[]): Promise<void> {
  let base = resolve(".");
  let seconds = 3;
  let t0 = 0;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--dir") base = resolve(args[++i] ?? ".");
    else if (args[i] === "--seconds") seconds = Number(args[++i]);
    else
      throw new Error(
        `unknown argument ${args[i]}; usage: npm run bench -- wal [--dir D] [--seconds S]`,
      );
  }
  const root = mkdtempSync(join(base, ".bench-wal-"));
  const payload = new Uint8Array(256).fill(42);
  try {
    // The disk's limit: write(256 B) + fdatasync in a loop of synchronous calls (no thread-pool
    // hop), and the same loop through fs/promises; then the WAL's single saves, through its writer
    // thread (the default) and through the thread pool (WalOptions.writer "thread-pool"). They
    // alternate in slices of 250 ms, in an order rotated each round, so drift in the machine's speed hits all alike; each round's
    // ratios to the raw loop are taken, and the median round reported.
    const rawFile = preallocated(join(root, "raw"));
    closeSync(preallocated(join(root, "raw-async")));
    const rawAsync = await open(join(root, "raw-async"), "r+");
    const { wal } = await Wal.open(join(root, "single"));
    const { wal: poolWal } = await Wal.open(join(root, "single-pool"), { writer: "thread-pool" });
    const slice = 250;
    const totals = { raw: 0, rawMs: 0, async: 0, asyncMs: 0, wal: 0, walMs: 0, pool: 0, poolMs: 0 };
    const rounds: { raw: number; async: number; wal: number; pool: number }[] = [];
    let rawAt = 0;
    let asyncAt = 0;
    let idx = 1;
    let poolIdx = 1;
    const timed = async (f: () => unknown): Promise<[number, number]> => {
      let n = 0;
      const start = performance.now();
      while (performance.now() - start < slice) {
        await f();
        n++;
      }
      return [n, performance.now() - start];
    };
    while (totals.walMs < seconds * 1000 || rounds.length < 8) {
      const r = { raw: 0, async: 0, wal: 0, pool: 0 };
      const slices: [keyof typeof r, () => unknown][] = [
        [
          "raw",
          () => {
            writeSync(rawFile, payload, 0, 256, (rawAt++ % 200_000) * 256);
            fdatasyncSync(rawFile);
          },
        ],
        [
          "async",
          async () => {
            await rawAsync.write(payload, 0, 256, (asyncAt++ % 200_000) * 256);
            await rawAsync.datasync();
          },
        ],
        ["wal", () => wal.save(undefined, entries(idx++, 1, payload))],
        ["pool", () => poolWal.save(undefined, entries(poolIdx++, 1, payload))],
      ];
      // Rotate the order each round, so that no case always follows the same one.
      for (let k = 0; k < rounds.length % slices.length; k++) slices.push(slices.shift()!);
      for (const [name, f] of slices) {
        const [n, ms] = await timed(f);
        r[name] = n / (ms / 1000);
        totals[name] += n;
        totals[`${name}Ms`] += ms;
      }
      rounds.push(r);
    }
    const median = (xs: number[]): number => {
      const s = [...xs].sort((a, b) => a - b);
      const m = s.length >> 1;
      return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
    };
    const ratio = (k: "async" | "wal" | "pool"): number =>
      Number(median(rounds.map((r) => r[k] / r.raw)).toFixed(2));
    const raw = totals.raw / (totals.rawMs / 1000);
    line({
      case: "raw-fdatasync",
      entryBytes: 256,
      calls: "sync",
      syncsPerSec: Math.round(raw),
      rounds: rounds.length,
    });
    line({
      case: "raw-fdatasync-async",
      entryBytes: 256,
      calls: "fs/promises",
      syncsPerSec: Math.round(totals.async / (totals.asyncMs / 1000)),
      ratioToRaw: ratio("async"),
    });
    line({
      case: "fsync-single",
      entryBytes: 256,
      writer: "worker",
      entriesPerSec: Math.round(totals.wal / (totals.walMs / 1000)),
      ratioToRaw: ratio("wal"),
    });
    line({
      case: "fsync-single-thread-pool",
      entryBytes: 256,
      writer: "thread-pool",
      entriesPerSec: Math.round(totals.pool / (totals.poolMs / 1000)),
      ratioToRaw: ratio("pool"),
      workerToThreadPool: Number(median(rounds.map((r) => r.wal / r.pool)).toFixed(2)),
    });

    // The same four, interleaved one operation at a time (order rotated each turn), each
    // operation timed: on a shared disk whose fdatasync latency swings by 10x from one second to
    // the next, slices of 250 ms still differ; neighbouring operations meet the same disk.
    {
      const lat = {
        raw: [] as number[],
        async: [] as number[],
        wal: [] as number[],
        pool: [] as number[],
      };
      const ops: [keyof typeof lat, () => unknown][] = [
        [
          "raw",
          () => {
            writeSync(rawFile, payload, 0, 256, (rawAt++ % 200_000) * 256);
            fdatasyncSync(rawFile);
          },
        ],
        [
          "async",
          async () => {
            await rawAsync.write(payload, 0, 256, (asyncAt++ % 200_000) * 256);
            await rawAsync.datasync();
          },
        ],
        ["wal", () => wal.save(undefined, entries(idx++, 1, payload))],
        ["pool", () => poolWal.save(undefined, entries(poolIdx++, 1, payload))],
      ];
      const until = performance.now() + seconds * 4 * 1000;
      for (let turn = 0; performance.now() < until || turn < 20; turn++) {
        for (let k = 0; k < ops.length; k++) {
          const [name, f] = ops[(turn + k) % ops.length]!;
          const start = performance.now();
          await f();
          lat[name].push(performance.now() - start);
        }
      }
      const us = (k: keyof typeof lat): number => Math.round(median(lat[k]) * 1000);
      const mean = (k: keyof typeof lat): number =>
        lat[k].reduce((a, b) => a + b, 0) / lat[k].length;
      line({
        case: "fsync-single-interleaved",
        entryBytes: 256,
        samples: lat.raw.length,
        medianUs: {
          raw: us("raw"),
          rawAsync: us("async"),
          worker: us("wal"),
          threadPool: us("pool"),
        },
        // Rates as ratios to the synchronous loop's: by median latency, and by mean (throughput).
        ratioToRaw: {
          rawAsync: Number((median(lat.raw) / median(lat.async)).toFixed(2)),
          worker: Number((median(lat.raw) / median(lat.wal)).toFixed(2)),
          threadPool: Number((median(lat.raw) / median(lat.pool)).toFixed(2)),
        },
        meanRatioToRaw: {
          rawAsync: Number((mean("raw") / mean("async")).toFixed(2)),
          worker: Number((mean("raw") / mean("wal")).toFixed(2)),
          threadPool: Number((mean("raw") / mean("pool")).toFixed(2)),
        },
        workerToThreadPool: Number((median(lat.pool) / median(lat.wal)).toFixed(2)),
      });
    }
    closeSync(rawFile);
    await rawAsync.close();
    await wal.close();
    await poolWal.close();

    // Group commit: 64 concurrent single-entry saves per sync.
    {
      const { wal } = await Wal.open(join(root, "batched"));
      let idx = 1;
      t0 = performance.now();
      while (performance.now() - t0 < seconds * 1000) {
        const saves: Promise<void>[] = [];
        for (let i = 0; i < 64; i++) saves.push(wal.save(undefined, entries(idx++, 1, payload)));
        await Promise.all(saves);
      }
      const rate = (idx - 1) / ((performance.now() - t0) / 1000);
      await wal.close();
      line({
        case: "batched",
        entryBytes: 256,
        entriesPerSync: 64,
        entriesPerSec: Math.round(rate),
        ratioToRaw: Number((rate / raw).toFixed(2)),
      });
    }

    // Recovery of 1,000,000 entries.
    {
      const dir = join(root, "recovery");
      const { wal } = await Wal.open(dir);
      const total = 1_000_000;
      for (let i = 1; i <= total; i += 4096) {
        await wal.save(
          { term: 1, vote: "", commit: i },
          entries(i, Math.min(4096, total - i + 1), payload),
        );
      }
      await wal.close();
      t0 = performance.now();
      const { wal: w2, state } = await Wal.open(dir);
      const secs = (performance.now() - t0) / 1000;
      if (state.lastIndex !== total) throw new Error(`recovered ${state.lastIndex} entries`);
      await w2.close();
      line({
        case: "recovery-1m",
        entryBytes: 256,
        entries: total,
        segments: w2.segmentNames().length,
        seconds: Number(secs.toFixed(3)),
      });
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}
