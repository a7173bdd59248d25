/**
 * The WAL's writer thread (src/storage/wal-writer.ts) on real files: batches bypass the libuv
 * thread pool, stay durable and ordered across rolls and large batches, fail the WAL exactly as
 * the thread-pool path does (real ENOSPC from /dev/full, a real failed fdatasync on /dev/null),
 * never keep a process alive, and survive a real SIGKILL mid-save and at the crash point between
 * the write and the fdatasync.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { closeSync, mkdtempSync, openSync, rmSync } from "node:fs";
import { open } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Wal } from "../../src/storage/wal.js";
import { MAX_SEQ } from "../../src/storage/wal-writer.js";
import type { WalOptions } from "../../src/storage/wal.js";
import { createNodeFs } from "../../src/storage/fs-layer.js";
import type { FsLayer } from "../../src/storage/fs-layer.js";
import type { Entry } from "../../src/raft/types.js";
import { isNexusError } from "../../src/errors/index.js";

const CHILD = join(import.meta.dirname, "fixtures", "wal-writer-child.ts");
const roots: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), "nexus-wal-writer-"));
  roots.push(d);
  return d;
}
after(() => {
  for (const d of roots) rmSync(d, { recursive: true, force: true });
});

function ents(first: number, n: number, size = 40): Entry[] {
  return Array.from({ length: n }, (_, i) => ({
    term: 1,
    index: first + i,
    type: "normal" as const,
    data: new TextEncoder().encode(`e${first + i}`.padEnd(size, ".")),
  }));
}

function text(e: Entry): string {
  return new TextDecoder().decode(e.data).replace(/\.+$/, "");
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => {
      t = setTimeout(() => reject(new Error(`${what}: not done after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(t));
}

interface ChildRun {
  lines: string[];
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(): void;
  /** Resolves once the child printed at least n lines. */
  printed(n: number): Promise<void>;
}

function child(dir: string, ...args: string[]): ChildRun {
  const p = spawn(process.execPath, ["--import", "tsx", CHILD, dir, ...args], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const lines: string[] = [];
  let partial = "";
  const waiters: { n: number; resolve: () => void }[] = [];
  p.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    const parts = (partial + chunk).split("\n");
    partial = parts.pop() ?? "";
    lines.push(...parts);
    for (const w of waiters) if (lines.length >= w.n) w.resolve();
  });
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    p.once("exit", (code, signal) => resolve({ code, signal })),
  );
  after(() => {
    if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
  });
  return {
    lines,
    exit,
    kill: () => p.kill("SIGKILL"),
    printed: (n) =>
      lines.length >= n
        ? Promise.resolve()
        : new Promise<void>((resolve, reject) => {
            waiters.push({ n, resolve });
            void exit.then(() => {
              if (lines.length < n) reject(new Error(`child exited after ${lines.length} lines`));
            });
          }),
  };
}

/** Reopens the WAL and checks it holds entries 1..last, each as written; returns last. */
async function checkLog(dir: string, acked: number): Promise<number> {
  const { wal, state } = await Wal.open(dir, { segmentBytes: 4096, maxWals: 0 });
  try {
    assert.ok(state.lastIndex >= acked, `log ends at ${state.lastIndex}, ${acked} acknowledged`);
    assert.ok(state.hardState.commit <= state.lastIndex);
    for (let i = 1; i <= state.lastIndex; i++) {
      assert.equal(text(wal.readEntrySync(i)), `entry ${i}`);
    }
    return state.lastIndex;
  } finally {
    await wal.close();
  }
}

describe("WAL writer thread", () => {
  it("writes and syncs a batch without the libuv thread pool (one hop in its own thread)", async () => {
    // Every thread of the pool is blocked opening a FIFO nobody writes: a batch that needed
    // the pool (an asynchronous write, then an asynchronous fdatasync) could not complete.
    const dir = tmp();
    const { wal } = await Wal.open(join(dir, "wal"));
    await wal.save(undefined, ents(1, 1));
    const threads = Number(process.env["UV_THREADPOOL_SIZE"] ?? 4);
    const fifos: string[] = [];
    const blocked: Promise<FileHandle>[] = [];
    for (let k = 0; k < threads; k++) {
      const f = join(dir, `fifo${k}`);
      execFileSync("mkfifo", [f]);
      fifos.push(f);
      blocked.push(open(f, "r"));
    }
    try {
      await withTimeout(wal.save({ term: 1, vote: "", commit: 2 }, ents(2, 1)), 10_000, "save");
      assert.equal(wal.positions.last, 2);
    } finally {
      // Unblock the pool: give each FIFO a writer.
      for (const f of fifos) closeSync(openSync(f, "w"));
      for (const h of await Promise.all(blocked)) await h.close();
    }
    await wal.close();
  });

  it("keeps saves durable and in order across segment rolls, group commit and a batch larger than its shared buffer", async () => {
    const dir = join(tmp(), "wal");
    let syncs = 0;
    const opts: WalOptions = { segmentBytes: 8 * 1024 * 1024, maxWals: 0, onSync: () => syncs++ };
    const { wal } = await Wal.open(dir, opts);
    for (let i = 1; i <= 20; i++) await wal.save({ term: 1, vote: "a", commit: i - 1 }, ents(i, 1));
    // 3 MiB in one batch: more than the writer's initial 1 MiB buffer.
    await wal.save(undefined, ents(21, 3, 1024 * 1024));
    const before = syncs;
    const saves: Promise<void>[] = [];
    for (let i = 24; i <= 123; i++) saves.push(wal.save(undefined, ents(i, 1)));
    await Promise.all(saves);
    assert.ok(syncs - before <= 3, `100 concurrent saves used ${syncs - before} syncs`);
    // Fill the segment past its end: the next batch goes to a new segment.
    await wal.save(undefined, ents(124, 6, 1024 * 1024));
    for (let i = 130; i <= 140; i++) await wal.save({ term: 1, vote: "a", commit: i }, ents(i, 1));
    assert.ok(wal.segmentNames().length >= 2, `${wal.segmentNames().length} segments`);
    await wal.close();
    const { wal: w2, state } = await Wal.open(dir, opts);
    assert.equal(state.lastIndex, 140);
    assert.deepEqual(state.hardState, { term: 1, vote: "a", commit: 140 });
    for (let i = 1; i <= 140; i++) assert.equal(text(w2.readEntrySync(i)), `e${i}`);
    assert.equal(w2.readEntrySync(22).data.byteLength, 1024 * 1024);
    await w2.close();
  });

  for (const c of [
    {
      name: "a write that fails (ENOSPC on /dev/full)",
      device: "/dev/full",
      code: "ENOSPC",
      syscall: "write",
    },
    {
      name: "an fdatasync that fails (EINVAL on /dev/null)",
      device: "/dev/null",
      code: "EINVAL",
      syscall: "fdatasync",
    },
  ]) {
    it(`${c.name} fails the WAL for good with the thread-pool path's WAL_FAILED`, async () => {
      const messages: string[] = [];
      for (const writer of ["worker", "thread-pool"] as const) {
        const dir = join(tmp(), "wal");
        const real = createNodeFs();
        let armed = false;
        // The live segment's descriptor is the device's: real errors from the kernel.
        const fs: FsLayer = {
          ...real,
          open: (path, mode) =>
            armed && mode === "r+" && path.endsWith(".wal")
              ? real.open(c.device, "r+")
              : real.open(path, mode),
        };
        await (await Wal.open(dir)).wal.close();
        armed = true;
        const { wal } = await Wal.open(dir, { fs, writer });
        let failure: unknown;
        await assert.rejects(wal.save(undefined, ents(1, 1)), (e: unknown) => {
          failure = e;
          return isNexusError(e, "WAL_FAILED");
        });
        const cause = (failure as Error).cause as NodeJS.ErrnoException;
        assert.equal(cause.code, c.code);
        assert.equal(cause.syscall, c.syscall);
        messages.push((failure as Error).message.replace(dir, "<dir>"));
        // Failed for good: a later save is refused with the same error, nothing is written.
        await assert.rejects(wal.save(undefined, ents(1, 1)), (e: unknown) => e === failure);
        assert.equal(wal.failed(), failure);
        await wal.close();
      }
      assert.equal(messages[0], messages[1]);
    });
  }

  it("its request number wraps within the Int32 control slots: saves go on after MAX_SEQ requests", async () => {
    const dir = join(tmp(), "wal");
    const { wal } = await Wal.open(dir);
    try {
      // Two requests: the thread last saw number 2, so the wrap to 1 is a new request to it.
      await wal.save({ term: 1, vote: "", commit: 0 }, ents(1, 1));
      await wal.save({ term: 1, vote: "", commit: 0 }, []);
      // Near the end of the Int32 slots (2^31 requests: weeks of batches at a few thousand a
      // second): without the wrap the next number does not fit and the save fails.
      const w = (wal as unknown as { writer: { seq: number; control: Int32Array } }).writer;
      assert.ok(w !== undefined, "the writer thread is in use");
      assert.ok(MAX_SEQ < 2 ** 31 - 2);
      w.seq = 2 ** 31 - 2;
      w.control[1] = 2 ** 31 - 2; // DONE
      for (let i = 2; i <= 4; i++) {
        await withTimeout(
          wal.save({ term: 1, vote: "", commit: i - 1 }, ents(i, 1)),
          10_000,
          `save ${i}`,
        );
      }
      assert.equal(w.seq, 3, "wrapped to 1, then 2 and 3");
      assert.equal(wal.failed(), undefined);
    } finally {
      await wal.close();
    }
    const again = await Wal.open(dir);
    try {
      assert.equal(again.state.lastIndex, 4);
      assert.equal(text(again.wal.readEntrySync(4)), text(ents(4, 1)[0]!));
    } finally {
      await again.wal.close();
    }
  });

  it("never keeps a process alive, closed or not, and code after close() runs", async () => {
    const closed = child(join(tmp(), "wal"), "close");
    assert.deepEqual(await withTimeout(closed.exit, 60_000, "child exit"), {
      code: 0,
      signal: null,
    });
    assert.deepEqual(closed.lines, ["closed", "after"]);
    const open = child(join(tmp(), "wal"), "noclose");
    assert.deepEqual(await withTimeout(open.exit, 60_000, "child exit"), { code: 0, signal: null });
    assert.deepEqual(open.lines, ["saved"]);
  });

  it("keeps every acknowledged save through a SIGKILL of the process mid-save", async () => {
    const dir = join(tmp(), "wal");
    let acked = 0;
    for (let round = 0; round < 3; round++) {
      const c = child(dir, "loop");
      // Enough saves to roll a few 4 KiB segments, then a kill at whatever instant it lands.
      await withTimeout(c.printed(60), 60_000, "child saves");
      c.kill();
      assert.equal((await c.exit).signal, "SIGKILL");
      acked = Number(c.lines[c.lines.length - 1]);
      assert.ok(acked > 0);
      await checkLog(dir, acked);
    }
  });

  it("can be killed between the write and the fdatasync (crash point wal.batch-after-write)", async () => {
    const dir = join(tmp(), "wal");
    const c = child(dir, "crash", "5");
    assert.equal((await withTimeout(c.exit, 60_000, "child exit")).signal, "SIGKILL");
    // Batches 1-4 were acknowledged; the 5th was written (the page cache keeps it through a
    // process kill) but never synced nor acknowledged.
    assert.deepEqual(c.lines, ["1", "2", "3", "4"]);
    const last = await checkLog(dir, 4);
    assert.equal(last, 5);
  });
});
