import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync, rmSync, writeFileSync, cpSync, truncateSync } from "node:fs";
import { join } from "node:path";
import { Wal, segmentName } from "../../src/storage/wal.js";
import { createNodeFs } from "../../src/storage/fs-layer.js";
import type { FsLayer } from "../../src/storage/fs-layer.js";
import type { Entry } from "../../src/raft/types.js";
import { isNexusError } from "../../src/errors/index.js";
import { tempDir } from "../temp-dir.js";

function tmp(): string {
  return tempDir("nexus-wal-");
}

function ents(first: number, n: number, term: number, size = 20): Entry[] {
  return Array.from({ length: n }, (_, i) => ({
    term,
    index: first + i,
    type: "normal" as const,
    data: new TextEncoder().encode(`e${first + i}t${term}`.padEnd(size, ".")),
  }));
}

async function readAll(wal: Wal, first: number, last: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = first; i <= last; i++) {
    const e = wal.readEntrySync(i);
    out.push(`${e.index}/${e.term}:${new TextDecoder().decode(e.data).replace(/\.+$/, "")}`);
  }
  return out;
}

describe("write-ahead log", () => {
  it("recovers the hard state and every entry after a reopen", async () => {
    const dir = join(tmp(), "wal");
    const { wal } = await Wal.open(dir);
    await wal.save({ term: 1, vote: "a", commit: 0 }, ents(1, 3, 1));
    await wal.save({ term: 2, vote: "b", commit: 2 }, ents(4, 2, 2));
    await wal.close();
    const { wal: w2, state } = await Wal.open(dir);
    assert.deepEqual(state.hardState, { term: 2, vote: "b", commit: 2 });
    assert.equal(state.firstIndex, 1);
    assert.equal(state.lastIndex, 5);
    assert.equal(state.tornTail, undefined);
    assert.deepEqual(await readAll(w2, 1, 5), [
      "1/1:e1t1",
      "2/1:e2t1",
      "3/1:e3t1",
      "4/2:e4t2",
      "5/2:e5t2",
    ]);
    await w2.close();
  });

  it("a local snapshot marker records the latest hard state with its commit raised to the marker, never an older term or vote", async () => {
    // Before: a marker past the durable commit (a commit-only hard state is never written on its
    // own) made every restart clamp the commit up to the marker, with a warning.
    const dir = join(tmp(), "wal");
    const { wal } = await Wal.open(dir);
    await wal.save({ term: 1, vote: "a", commit: 2 }, ents(1, 5, 1));
    // The marker is queued behind a save that moves to term 2: it must not bring back term 1.
    const newer = wal.save({ term: 2, vote: "b", commit: 3 }, []);
    const marker = wal.saveSnapshotMarker({ index: 5, term: 1 });
    await Promise.all([newer, marker]);
    await wal.close();
    const warnings: string[] = [];
    const { wal: w2, state } = await Wal.open(dir, {
      logger: { warn: (_f: unknown, msg: string) => void warnings.push(msg) },
    });
    assert.deepEqual(state.hardState, { term: 2, vote: "b", commit: 5 });
    assert.deepEqual(warnings, []);
    await w2.close();
  });

  it("replays a conflicting suffix so the log ends as the new leader wrote it", async () => {
    const dir = join(tmp(), "wal");
    const { wal } = await Wal.open(dir);
    await wal.save(undefined, ents(1, 5, 1));
    await wal.save(undefined, ents(3, 2, 2));
    await wal.close();
    const { wal: w2, state } = await Wal.open(dir);
    assert.equal(state.lastIndex, 4);
    assert.deepEqual(await readAll(w2, 1, 4), ["1/1:e1t1", "2/1:e2t1", "3/2:e3t2", "4/2:e4t2"]);
    await w2.close();
  });

  it("group commit: saves made while a sync is in flight share the next sync", async () => {
    const dir = join(tmp(), "wal");
    const real = createNodeFs();
    let syncs = 0;
    const fs: FsLayer = {
      ...real,
      async open(path, mode) {
        const f = await real.open(path, mode);
        return {
          ...f,
          datasync: async () => {
            syncs++;
            await f.datasync();
          },
        };
      },
    };
    const { wal } = await Wal.open(dir, { fs });
    const before = syncs;
    const saves: Promise<void>[] = [];
    for (let i = 1; i <= 100; i++) saves.push(wal.save(undefined, ents(i, 1, 1)));
    await Promise.all(saves);
    const used = syncs - before;
    assert.ok(used <= 3, `100 concurrent saves used ${used} syncs`);
    assert.equal(wal.positions.last, 100);
    await wal.close();
  });

  it("rotates into new segments named <seq>-<firstIndex> and reads old entries back", async () => {
    const dir = join(tmp(), "wal");
    const { wal } = await Wal.open(dir, { segmentBytes: 4096, maxWals: 0 });
    for (let i = 1; i <= 200; i += 10)
      await wal.save({ term: 1, vote: "", commit: i }, ents(i, 10, 1, 50));
    const names = wal.segmentNames();
    assert.ok(names.length > 3, `only ${names.length} segments`);
    assert.equal(names[0], segmentName(0, 1));
    await wal.close();
    const { wal: w2, state } = await Wal.open(dir, { segmentBytes: 4096, maxWals: 0 });
    assert.equal(state.lastIndex, 200);
    assert.equal(state.hardState.commit, 191);
    const all = await readAll(w2, 1, 200);
    assert.equal(all[0], "1/1:e1t1");
    assert.equal(all[199], "200/1:e200t1");
    await w2.close();
  });

  it("every cut inside the last record recovers exactly the records before it", async () => {
    const base = tmp();
    const dir = join(base, "wal");
    const { wal } = await Wal.open(dir, { segmentBytes: 8192 });
    await wal.save({ term: 1, vote: "", commit: 0 }, ents(1, 3, 1));
    const seg = join(dir, wal.segmentNames()[0]!);
    const before = readFileSync(seg);
    await wal.save(undefined, ents(4, 1, 1, 40));
    await wal.close();
    const after = readFileSync(seg);
    // The last record spans the bytes that differ.
    let start = 0;
    while (start < before.length && before[start] === after[start]) start++;
    let end = after.length;
    while (end > start && after[end - 1] === 0) end--;
    assert.ok(end - start > 40, "the last record was located");
    for (let cut = start; cut < end; cut++) {
      for (const mode of ["zeros", "truncate"] as const) {
        const d = join(base, `cut-${cut}-${mode}`);
        cpSync(dir, d, { recursive: true });
        const f = join(d, wal.segmentNames()[0]!);
        if (mode === "truncate") truncateSync(f, cut);
        else {
          const b = readFileSync(f);
          b.fill(0, cut, end);
          writeFileSync(f, b);
        }
        const { wal: w, state } = await Wal.open(d, { segmentBytes: 8192 });
        assert.equal(state.lastIndex, 3, `cut at ${cut} (${mode})`);
        if (cut > start)
          assert.ok(state.tornTail !== undefined, `cut at ${cut} reports the torn tail`);
        // The log continues from the last good record.
        await w.save(undefined, ents(4, 1, 2));
        await w.close();
        const { wal: w3, state: s3 } = await Wal.open(d, { segmentBytes: 8192 });
        assert.equal(s3.lastIndex, 4);
        assert.equal(w3.readEntrySync(4).term, 2);
        await w3.close();
        rmSync(d, { recursive: true, force: true });
      }
    }
  });

  it("a flipped bit in the middle is corruption, reported with file and offset", async () => {
    const dir = join(tmp(), "wal");
    const { wal } = await Wal.open(dir, { segmentBytes: 8192 });
    await wal.save(undefined, ents(1, 10, 1));
    const name = wal.segmentNames()[0]!;
    await wal.close();
    const f = join(dir, name);
    const b = readFileSync(f);
    const target = 200; // inside an early entry record
    b[target] = b[target]! ^ 0x10;
    writeFileSync(f, b);
    await assert.rejects(Wal.open(dir, { segmentBytes: 8192 }), (err: unknown) => {
      assert.ok(isNexusError(err, "CORRUPTED"));
      assert.match((err as Error).message, new RegExp(`${name} at offset \\d+`));
      assert.match((err as Error).message, /nexus wal repair/);
      return true;
    });
  });

  it("a missing segment is corruption", async () => {
    const dir = join(tmp(), "wal");
    const { wal } = await Wal.open(dir, { segmentBytes: 4096, maxWals: 0 });
    for (let i = 1; i <= 300; i += 10) await wal.save(undefined, ents(i, 10, 1, 50));
    const names = wal.segmentNames();
    await wal.close();
    assert.ok(names.length >= 3, `${names.length} segments`);
    rmSync(join(dir, names[1]!));
    await assert.rejects(Wal.open(dir, { segmentBytes: 4096 }), /missing/);
  });

  it("a failed write or sync fails the WAL for good", async () => {
    for (const what of ["write", "datasync"] as const) {
      const dir = join(tmp(), "wal");
      const real = createNodeFs();
      let fail = false;
      const fs: FsLayer = {
        ...real,
        async open(path, mode) {
          const f = await real.open(path, mode);
          return {
            ...f,
            write: async (b, p) => {
              if (fail && what === "write") throw new Error("EIO: injected write failure");
              await f.write(b, p);
            },
            datasync: async () => {
              if (fail && what === "datasync") throw new Error("EIO: injected sync failure");
              await f.datasync();
            },
          };
        },
      };
      const { wal } = await Wal.open(dir, { fs });
      await wal.save(undefined, ents(1, 1, 1));
      fail = true;
      await assert.rejects(wal.save(undefined, ents(2, 1, 1)), (e: unknown) =>
        isNexusError(e, "WAL_FAILED"),
      );
      fail = false;
      await assert.rejects(wal.save(undefined, ents(2, 1, 1)), (e: unknown) =>
        isNexusError(e, "WAL_FAILED"),
      );
      assert.ok(wal.failed() !== undefined);
      await wal.close();
    }
  });

  it("after a snapshot marker, old segments are released and a reopen starts after the snapshot", async () => {
    const dir = join(tmp(), "wal");
    const { wal } = await Wal.open(dir, { segmentBytes: 4096, maxWals: 3 });
    for (let i = 1; i <= 300; i += 10)
      await wal.save({ term: 1, vote: "", commit: i + 9 }, ents(i, 10, 1, 50));
    await wal.saveSnapshotMarker({ index: 250, term: 1 });
    await wal.releaseTo(240);
    for (let i = 301; i <= 400; i += 10)
      await wal.save({ term: 1, vote: "", commit: i + 9 }, ents(i, 10, 1, 50));
    const names = wal.segmentNames();
    assert.ok(names.length <= 4, `kept ${names.length} segments`);
    assert.equal(readdirSync(dir).filter((n) => n.endsWith(".wal")).length, names.length);
    await wal.close();
    const { wal: w2, state } = await Wal.open(dir, { segmentBytes: 4096, maxWals: 3 });
    assert.deepEqual(state.snapshot, { index: 250, term: 1 });
    // The part of the catch-up window (released to 240) that the kept segments hold is recovered.
    assert.ok(
      state.firstIndex >= 240 && state.firstIndex <= 251,
      `first index ${state.firstIndex} is in the catch-up window [240, 251]`,
    );
    assert.equal(state.lastIndex, 400);
    assert.equal(state.hardState.commit, 400);
    for (let i = state.firstIndex; i <= 400; i++) assert.equal(w2.readEntrySync(i).index, i);
    await w2.close();
  });

  it("a snapshot received from a leader voids the older entries before it, even once their segments are gone", async () => {
    const dir = join(tmp(), "wal");
    const opts = { segmentBytes: 4096, maxWals: 0 };
    const { wal } = await Wal.open(dir, opts);
    // Entries of term 1 until the last segment holds two of them.
    let last = 0;
    for (;;) {
      last++;
      await wal.save({ term: 1, vote: "a", commit: last - 1 }, ents(last, 1, 1, 200));
      const names = wal.segmentNames();
      const first = parseInt(names[names.length - 1]!.slice(17, 33), 16);
      if (names.length >= 3 && last === first + 1) break;
    }
    // The leader's snapshot at the index before that segment, of term 3: it disagrees with the
    // log, so it replaces it (entries after it too, written before it).
    const names = wal.segmentNames();
    const j = parseInt(names[names.length - 1]!.slice(17, 33), 16) - 1;
    await wal.save({ term: 3, vote: "", commit: j }, [], { index: j, term: 3 });
    await wal.releaseTo(j);
    assert.deepEqual(
      wal.segmentNames(),
      [names[names.length - 1]],
      "only the last segment is kept",
    );
    await wal.close();
    const { wal: w2, state } = await Wal.open(dir, opts);
    assert.deepEqual(state.snapshot, { index: j, term: 3 });
    assert.equal(state.lastIndex, j, "the entries of term 1 after the snapshot are void");
    assert.equal(state.firstIndex, j + 1);
    assert.deepEqual(state.hardState, { term: 3, vote: "", commit: j });
    await w2.save(undefined, ents(j + 1, 2, 3));
    await w2.close();
    const { wal: w3, state: s3 } = await Wal.open(dir, opts);
    assert.equal(s3.lastIndex, j + 2);
    assert.deepEqual(await readAll(w3, j + 1, j + 2), [
      `${j + 1}/3:e${j + 1}t3`,
      `${j + 2}/3:e${j + 2}t3`,
    ]);
    await w3.close();
  });
});
