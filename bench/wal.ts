/**
 * `npm run bench -- wal [--dir D] [--seconds S]`: write-ahead log figures on 256-byte entries,
 * printed as JSON lines `{"bench":"wal","case":...}`:
 * - raw-fdatasync: the raw rate of write(256 B) + fdatasync on the same disk (`syncsPerSec`);
 * - fsync-single: one entry per save, awaited one by one (`entriesPerSec`, `ratioToRaw`);
 * - batched: group commit with 64 entries per sync (`entriesPerSec`, `ratioToRaw`);
 * - recovery-1m: open and replay a log of 1,000,000 entries (`seconds`).
 * The directory defaults to a temporary one under the current directory (same disk as the repo).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { open } from "node:fs/promises";
import { join, resolve } from "node:path";
import { Wal } from "../src/storage/wal.js";
import type { Entry } from "../src/raft/types.js";

function line(o: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify({ bench: "wal", ...o }) + "\n");
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
    // Raw write + fdatasync of 256 bytes, appending to a preallocated file.
    const fh = await open(join(root, "raw"), "w");
    await fh.write(new Uint8Array(64 * 1024 * 1024), 0, 64 * 1024 * 1024, 0);
    await fh.datasync();
    let n = 0;
    let t0 = performance.now();
    while (performance.now() - t0 < seconds * 1000) {
      await fh.write(payload, 0, 256, n * 256);
      await fh.datasync();
      n++;
    }
    const raw = n / ((performance.now() - t0) / 1000);
    await fh.close();
    line({ case: "raw-fdatasync", entryBytes: 256, syncsPerSec: Math.round(raw) });

    // One entry per save.
    {
      const { wal } = await Wal.open(join(root, "single"));
      let idx = 1;
      t0 = performance.now();
      while (performance.now() - t0 < seconds * 1000) {
        await wal.save(undefined, entries(idx, 1, payload));
        idx++;
      }
      const rate = (idx - 1) / ((performance.now() - t0) / 1000);
      await wal.close();
      line({
        case: "fsync-single",
        entryBytes: 256,
        entriesPerSec: Math.round(rate),
        ratioToRaw: Number((rate / raw).toFixed(2)),
      });
    }

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
