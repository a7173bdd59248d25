/**
 * `npm run bench -- wal [--dir D] [--seconds S]`: write-ahead log figures on 256-byte entries,
 * printed as JSON lines `{"bench":"wal","case":...}`:
 * - raw-fdatasync: the disk's limit, write(256 B) + fdatasync in a loop of synchronous calls
 *   (`syncsPerSec`); raw-fdatasync-async: the same through fs/promises (a thread-pool hop per call);
 * - fsync-single: one entry per save, awaited one by one (`entriesPerSec`, `ratioToRaw`: to the
 *   synchronous loop, measured in alternating slices with it);
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
    // hop), and the same loop through fs/promises; then the WAL's single saves. The raw sync loop
    // and the WAL alternate in slices of 250 ms, so drift in the machine's speed hits both alike.
    const rawFile = preallocated(join(root, "raw"));
    closeSync(preallocated(join(root, "raw-async")));
    const rawAsync = await open(join(root, "raw-async"), "r+");
    const { wal } = await Wal.open(join(root, "single"));
    const slice = 250;
    const totals = { raw: 0, rawMs: 0, async: 0, asyncMs: 0, wal: 0, walMs: 0 };
    let rawAt = 0;
    let asyncAt = 0;
    let idx = 1;
    while (totals.walMs < seconds * 1000) {
      t0 = performance.now();
      while (performance.now() - t0 < slice) {
        writeSync(rawFile, payload, 0, 256, (rawAt++ % 200_000) * 256);
        fdatasyncSync(rawFile);
        totals.raw++;
      }
      totals.rawMs += performance.now() - t0;
      t0 = performance.now();
      while (performance.now() - t0 < slice) {
        await rawAsync.write(payload, 0, 256, (asyncAt++ % 200_000) * 256);
        await rawAsync.datasync();
        totals.async++;
      }
      totals.asyncMs += performance.now() - t0;
      t0 = performance.now();
      while (performance.now() - t0 < slice) {
        await wal.save(undefined, entries(idx++, 1, payload));
        totals.wal++;
      }
      totals.walMs += performance.now() - t0;
    }
    closeSync(rawFile);
    await rawAsync.close();
    await wal.close();
    const raw = totals.raw / (totals.rawMs / 1000);
    const asyncRate = totals.async / (totals.asyncMs / 1000);
    const single = totals.wal / (totals.walMs / 1000);
    line({ case: "raw-fdatasync", entryBytes: 256, calls: "sync", syncsPerSec: Math.round(raw) });
    line({
      case: "raw-fdatasync-async",
      entryBytes: 256,
      calls: "fs/promises",
      syncsPerSec: Math.round(asyncRate),
      ratioToRaw: Number((asyncRate / raw).toFixed(2)),
    });
    line({
      case: "fsync-single",
      entryBytes: 256,
      entriesPerSec: Math.round(single),
      ratioToRaw: Number((single / raw).toFixed(2)),
    });

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
