import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync, writeFileSync, renameSync } from "node:fs";
import { join } from "node:path";
import { Snapshotter } from "../../src/storage/snapshotter.js";
import type { SnapshotMeta } from "../../src/storage/snapshotter.js";
import { tempDir } from "../temp-dir.js";

function tmp(): string {
  return tempDir("nexus-snap-");
}

function meta(index: number, term = 1): SnapshotMeta {
  return {
    index,
    term,
    confState: {
      voters: ["a", "b"],
      learners: [],
      votersOutgoing: [],
      learnersNext: [],
      autoLeave: false,
    },
    members: { a: "http://127.0.0.1:1", b: "http://127.0.0.1:2" },
  };
}

async function* chunks(n: number, size: number, fill: number): AsyncIterable<Uint8Array> {
  for (let i = 0; i < n; i++) yield new Uint8Array(size).fill((fill + i) & 0xff);
}

async function collect(it: AsyncIterable<Uint8Array>): Promise<number[]> {
  const sums: number[] = [];
  let total = 0;
  let sum = 0;
  for await (const c of it) {
    total += c.byteLength;
    for (const b of c) sum = (sum + b) % 1000003;
  }
  sums.push(total, sum);
  return sums;
}

describe("snapshot files", () => {
  it("round-trips metadata and streamed data; the newest valid one wins", async () => {
    const s = new Snapshotter(join(tmp(), "snap"));
    await s.save(meta(10), chunks(3, 1000, 1));
    const f = await s.save(meta(20), chunks(5, 70000, 7));
    const got = await s.loadNewest();
    assert.equal(got?.meta.index, 20);
    assert.deepEqual(got?.meta, f.meta);
    assert.deepEqual(await collect(s.openData(got!)), await collect(chunks(5, 70000, 7)));
  });

  it("a crash between writing and renaming leaves the previous snapshot in force", async () => {
    const dir = join(tmp(), "snap");
    const s = new Snapshotter(dir);
    await s.save(meta(10), chunks(2, 100, 1));
    const f = await s.save(meta(20), chunks(2, 100, 2));
    // Simulate the crash: the new file exists only under its temporary name.
    renameSync(f.path, `${f.path}.tmp`);
    const got = await new Snapshotter(dir).loadNewest();
    assert.equal(got?.meta.index, 10);
    assert.ok(!readdirSync(dir).some((n) => n.endsWith(".tmp")), "leftover .tmp removed");
  });

  it("a damaged newest snapshot is skipped in favour of the previous valid one", async () => {
    for (const damage of ["flip-data", "truncate", "flip-meta"] as const) {
      const dir = join(tmp(), "snap");
      const s = new Snapshotter(dir);
      await s.save(meta(10), chunks(2, 100, 1));
      const f = await s.save(meta(20), chunks(2, 5000, 2));
      const b = readFileSync(f.path);
      if (damage === "flip-data") b[f.dataOffset + 123] = b[f.dataOffset + 123]! ^ 1;
      if (damage === "flip-meta") b[20] = b[20]! ^ 1;
      writeFileSync(f.path, damage === "truncate" ? b.subarray(0, b.length - 5) : b);
      const warnings: string[] = [];
      const got = await new Snapshotter(dir, {
        logger: { warn: (_fields, msg) => warnings.push(msg) },
      }).loadNewest();
      assert.equal(got?.meta.index, 10, damage);
      assert.equal(warnings.length, 1, damage);
    }
  });

  it("keeps at most maxSnapshots files, never the newest", async () => {
    const dir = join(tmp(), "snap");
    const s = new Snapshotter(dir, { maxSnapshots: 2 });
    for (let i = 1; i <= 5; i++) await s.save(meta(i * 10), chunks(1, 10, i));
    const names = await s.list();
    assert.equal(names.length, 2);
    assert.equal((await s.loadNewest())?.meta.index, 50);
  });

  it("uses only a snapshot the WAL's marker covers; files newer than the marker are skipped and kept", async () => {
    const dir = join(tmp(), "snap");
    const warnings: string[] = [];
    const s = new Snapshotter(dir, { logger: { warn: (_f, m) => warnings.push(m) } });
    await s.save(meta(10, 2), chunks(1, 10, 1));
    // A crash came after this file but before its WAL marker.
    await s.save(meta(20, 3), chunks(1, 10, 2));
    assert.equal((await s.loadNewest({ index: 10, term: 2 }))?.meta.index, 10);
    assert.ok(warnings.some((w) => /does not record/.test(w)));
    // A marker at the same index but another term does not cover that file (an older one may do).
    assert.equal((await s.loadNewest({ index: 20, term: 4 }))?.meta.index, 10);
    assert.equal((await s.loadNewest({ index: 20, term: 3 }))?.meta.index, 20);
    assert.equal((await s.list()).length, 2);
  });

  it("retention never removes the covered snapshot nor the one just written, whatever files a crash left", async () => {
    const dir = join(tmp(), "snap");
    // Each process: restart, load the snapshot the WAL covers (marker at 100), write a newer
    // snapshot, and crash before its WAL marker.
    const p1 = new Snapshotter(dir, { maxSnapshots: 2 });
    await p1.save(meta(100), chunks(1, 10, 1));
    p1.covered({ index: 100, term: 1 });
    await p1.save(meta(140, 2), chunks(1, 10, 2));
    const p2 = new Snapshotter(dir, { maxSnapshots: 2 });
    assert.equal((await p2.loadNewest({ index: 100, term: 1 }))?.meta.index, 100);
    await p2.save(meta(130, 2), chunks(1, 10, 3));
    const s = new Snapshotter(dir, { maxSnapshots: 2 });
    assert.equal((await s.loadNewest({ index: 100, term: 1 }))?.meta.index, 100);
    const file = await s.save(meta(120, 2), chunks(1, 10, 4));
    const names = await s.list();
    assert.ok(names.includes(file.name), `the file just written is kept: ${names.join(", ")}`);
    assert.equal(
      (await s.loadNewest({ index: 100, term: 1 }))?.meta.index,
      100,
      "the covered file is kept until its successor's marker is durable",
    );
    // Its marker is durable: the file just written is the covered one now; 100 may go.
    s.covered({ index: 120, term: 2 });
    await s.save(meta(125, 2), chunks(1, 10, 5));
    assert.equal((await s.loadNewest({ index: 120, term: 2 }))?.meta.index, 120);
    assert.ok(!(await s.list()).some((n) => n.endsWith("0000000000000064.snap")), "100 went");
  });

  it("retention keeps the covered marker's own file when another file has the same index", async () => {
    const dir = join(tmp(), "snap");
    const s = new Snapshotter(dir, { maxSnapshots: 1 });
    await s.save(meta(33, 6), chunks(1, 10, 1));
    s.covered({ index: 33, term: 6 });
    // Left by crashes before their markers: the same index in a later term, and a newer one.
    await s.save(meta(33, 7), chunks(1, 10, 2));
    await s.save(meta(34, 6), chunks(1, 10, 3));
    await s.save(meta(35, 7), chunks(1, 10, 4));
    assert.equal((await s.loadNewest({ index: 33, term: 6 }))?.meta.term, 6);
  });
});
