/**
 * What a power loss can leave of the last, unsynced write of the WAL, and what recovery makes of
 * it. A follower's Ready often carries entries 4..8 with commit 8 in one save: whatever prefix of
 * that write survives, and whatever subset of its 512-byte sectors (pages of one batch reaching a
 * preallocated file out of order), the node must open it, with nothing acknowledged lost. Real
 * corruption (a flipped bit, a lost sector of a batch that was synced, damage in a sealed segment)
 * must still refuse to open.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Wal, WalCorruptedError, segmentName } from "../../src/storage/wal.js";
import type { FsFile, FsLayer } from "../../src/storage/fs-layer.js";
import type { Entry, HardState } from "../../src/raft/types.js";
import { hardStateRecord, segmentRecord, writeEntryRecord } from "../../src/storage/record.js";
import { PowerLossFs, SECTOR } from "./power-loss-fs.js";
import type { DataLoss } from "./power-loss-fs.js";
import { openRecovered } from "./recovery-check.js";

const enc = new TextEncoder();
const dec = new TextDecoder();

function ents(first: number, n: number, term: number, size = 300): Entry[] {
  return Array.from({ length: n }, (_, i) => ({
    term,
    index: first + i,
    type: "normal" as const,
    data: enc.encode(`e${first + i}t${term}`.padEnd(size, ".")),
  }));
}

/** An FsLayer over `inner` that remembers the position and length of every write. */
function recording(inner: FsLayer, writes: { path: string; pos: number; len: number }[]): FsLayer {
  return {
    ...inner,
    async open(path, mode): Promise<FsFile> {
      const f = await inner.open(path, mode);
      return {
        ...f,
        write: async (buf, pos) => {
          writes.push({ path, pos, len: buf.byteLength });
          await f.write(buf, pos);
        },
      };
    },
  };
}

const SEGMENT_BYTES = 64 * 1024;

/**
 * A WAL holding entries 1..3 (acknowledged), then a follower's save of entries 4..8 with commit 8
 * written but not synced, then a crash losing `loss` of it. Returns the recovered state's checks.
 */
async function followerSaveThenCrash(loss: DataLoss, ctx: string) {
  const fs = new PowerLossFs();
  await fs.mkdirp("/n");
  await fs.syncDir("/n");
  const writes: { path: string; pos: number; len: number }[] = [];
  const warnings: string[] = [];
  const logger = { warn: (_f: unknown, m: string) => warnings.push(m) };
  const { wal } = await Wal.open("/n/wal", {
    fs: recording(fs.view(), writes),
    segmentBytes: SEGMENT_BYTES,
    logger,
  });
  await wal.save({ term: 1, vote: "a", commit: 3 }, ents(1, 3, 1));
  // The next write is not synced: the power goes out before its fdatasync completes.
  fs.failSyncs = true;
  await assert.rejects(wal.save({ term: 1, vote: "a", commit: 8 }, ents(4, 5, 1)));
  const batch = writes[writes.length - 1]!;
  fs.crash(() => 0.5, { data: loss, dirs: "lost" });
  warnings.length = 0;
  const r = await openRecovered(
    ctx,
    "/n/wal",
    "/n/snap",
    { fs: fs.view(), segmentBytes: SEGMENT_BYTES, logger },
    { fs: fs.view() },
  );
  const got = r.entries.map((e) => dec.decode(e.data).replace(/\.+$/, ""));
  await r.wal.close();
  return { batch, state: r.state, got, warnings };
}

describe("torn writes of the last batch", () => {
  it("any prefix of a follower's save (entries 4..8, commit 8) opens, and commit never passes the log", async () => {
    const probe = await followerSaveThenCrash("none", "probe");
    assert.equal(probe.state.lastIndex, 8);
    for (let n = 0; n <= probe.batch.len; n++) {
      const ctx = `prefix of ${n} of ${probe.batch.len} bytes`;
      const { state, got, warnings } = await followerSaveThenCrash({ prefix: n }, ctx);
      // The acknowledged entries are all there; the unsynced ones form a prefix.
      assert.deepEqual(got.slice(0, 3), ["e1t1", "e2t1", "e3t1"], ctx);
      assert.ok(state.lastIndex >= 3 && state.lastIndex <= 8, ctx);
      assert.ok(
        state.hardState.commit <= state.lastIndex,
        `${ctx}: commit ${state.hardState.commit} > ${state.lastIndex}`,
      );
      // Entries are written before the hard state that commits them: nothing had to be clamped.
      assert.deepEqual(
        warnings.filter((w) => /commit/.test(w)),
        [],
        `${ctx}: the hard state reached the disk before the entries it commits`,
      );
    }
  });

  it("any subset of the sectors of the last batch (pages out of order) is a torn tail, not corruption", async () => {
    const probe = await followerSaveThenCrash("none", "probe");
    const first = Math.floor(probe.batch.pos / SECTOR);
    const last = Math.floor((probe.batch.pos + probe.batch.len - 1) / SECTOR);
    const n = last - first + 1;
    assert.ok(n >= 3, `the batch spans ${n} sectors`);
    let holes = 0;
    for (let mask = 0; mask < 1 << n; mask++) {
      const kept = (k: number): boolean =>
        k >= first && k <= last && (mask & (1 << (k - first))) !== 0;
      const ctx = `sectors kept ${mask.toString(2).padStart(n, "0")} of ${first}..${last}`;
      const { state, got } = await followerSaveThenCrash({ sectors: kept }, ctx);
      assert.deepEqual(got.slice(0, 3), ["e1t1", "e2t1", "e3t1"], ctx);
      assert.ok(state.hardState.commit <= state.lastIndex, ctx);
      if (!kept(first) && mask !== 0) {
        holes++;
        // Records of the batch reached the disk after a hole: they were cut off and reported.
        assert.ok(state.tornTail !== undefined, `${ctx}: the cut is reported as a torn tail`);
      }
      if (mask === (1 << n) - 1) assert.equal(state.lastIndex, 8, ctx);
    }
    assert.ok(holes > 0, "some subsets left a hole before good records");
  });

  it("after a torn batch was cut, a later torn batch with a hole at its start still opens (the seal)", async () => {
    const fs = new PowerLossFs();
    await fs.mkdirp("/n");
    await fs.syncDir("/n");
    const writes: { path: string; pos: number; len: number }[] = [];
    const opts = () => ({ fs: recording(fs.view(), writes), segmentBytes: SEGMENT_BYTES });
    const { wal } = await Wal.open("/n/wal", opts());
    await wal.save({ term: 1, vote: "a", commit: 2 }, ents(1, 2, 1));
    fs.failSyncs = true;
    await assert.rejects(wal.save({ term: 1, vote: "a", commit: 8 }, ents(3, 6, 1)));
    const b1 = writes[writes.length - 1]!;
    // The first two sectors of the batch land, then a hole, then the rest.
    const s1 = Math.floor(b1.pos / SECTOR);
    fs.crash(() => 0.5, { data: { sectors: (k) => k !== s1 + 2 }, dirs: "lost" });
    const r1 = await openRecovered("first recovery", "/n/wal", "/n/snap", opts(), {
      fs: fs.view(),
    });
    assert.ok(r1.state.tornTail !== undefined, "the hole was cut as a torn tail");
    const kept = r1.state.lastIndex;
    assert.ok(kept >= 2 && kept < 8, `kept up to ${kept}`);
    // The next batch loses its first sector but the rest reaches the disk.
    fs.failSyncs = true;
    await assert.rejects(r1.wal.save({ term: 2, vote: "a", commit: kept }, ents(kept + 1, 4, 2)));
    const b2 = writes[writes.length - 1]!;
    const s2 = Math.floor(b2.pos / SECTOR);
    fs.crash(() => 0.5, { data: { sectors: (k) => k !== s2 }, dirs: "lost" });
    const r2 = await openRecovered("second recovery", "/n/wal", "/n/snap", opts(), {
      fs: fs.view(),
    });
    assert.equal(r2.state.lastIndex, kept, "the second batch was cut whole");
    await r2.wal.close();
  });
});

describe("real corruption still refuses to open", () => {
  /** A WAL on the real layout in a PowerLossFs: batches of entries, each synced. */
  async function synced(batches: number) {
    const fs = new PowerLossFs();
    await fs.mkdirp("/n");
    await fs.syncDir("/n");
    const writes: { path: string; pos: number; len: number }[] = [];
    const { wal } = await Wal.open("/n/wal", {
      fs: recording(fs.view(), writes),
      segmentBytes: SEGMENT_BYTES,
    });
    const spans: { pos: number; len: number }[] = [];
    for (let b = 0; b < batches; b++) {
      await wal.save({ term: 1, vote: "a", commit: 4 * b }, ents(4 * b + 1, 4, 1));
      spans.push(writes[writes.length - 1]!);
    }
    const name = wal.segmentNames()[0]!;
    await wal.close();
    return { fs, spans, path: `/n/wal/${name}` };
  }

  async function damage(fs: PowerLossFs, path: string, f: (b: Uint8Array) => void): Promise<void> {
    const file = await fs.open(path, "r+");
    const buf = new Uint8Array(await file.size());
    await file.read(buf, 0);
    f(buf);
    await file.write(buf, 0);
    await file.datasync();
  }

  const refuses = async (fs: PowerLossFs, what: RegExp): Promise<void> => {
    await assert.rejects(
      Wal.open("/n/wal", { fs: fs.view(), segmentBytes: SEGMENT_BYTES }),
      (err: unknown) => {
        assert.ok(err instanceof WalCorruptedError, `a WalCorruptedError, got ${String(err)}`);
        assert.match(err.message, what);
        return true;
      },
    );
  };

  it("a zeroed sector inside a synced batch, with later batches after it", async () => {
    const { fs, spans, path } = await synced(3);
    const s = Math.ceil(spans[0]!.pos / SECTOR) * SECTOR;
    assert.ok(s + SECTOR <= spans[1]!.pos + spans[1]!.len, "a whole sector inside the synced part");
    await damage(fs, path, (b) => b.fill(0, s, s + SECTOR));
    await refuses(fs, /at offset \d+/);
  });

  it("a flipped bit in a synced batch, with later batches after it", async () => {
    const { fs, spans, path } = await synced(3);
    await damage(fs, path, (b) => {
      const at = spans[1]!.pos + 100;
      b[at] = b[at]! ^ 0x04;
    });
    await refuses(fs, /followed by a good record at offset \d+/);
  });

  it("a flipped bit inside the last batch, with good records of it after (no lost sector)", async () => {
    const { fs, spans, path } = await synced(3);
    await damage(fs, path, (b) => {
      const at = spans[2]!.pos + 20;
      b[at] = b[at]! ^ 0x40;
    });
    await refuses(fs, /no sector of the damaged stretch reads as zeros/);
  });

  it("damage in a sealed segment", async () => {
    const fs = new PowerLossFs();
    await fs.mkdirp("/n");
    await fs.syncDir("/n");
    const { wal } = await Wal.open("/n/wal", { fs: fs.view(), segmentBytes: 4096, maxWals: 0 });
    for (let i = 1; i <= 60; i += 4)
      await wal.save({ term: 1, vote: "", commit: i }, ents(i, 4, 1, 200));
    const names = wal.segmentNames();
    await wal.close();
    assert.ok(names.length >= 3);
    // Zero the tail of the first (sealed) segment's records: a lost sector there is corruption.
    await damage(fs, `/n/wal/${names[0]!}`, (b) => b.fill(0, 1024, 1536));
    await refuses(fs, new RegExp(`${names[0]!} at offset`));
  });

  it("a hard state committing past the log (an older writer, or a reordering disk) is clamped with a warning", async () => {
    // Hand-made segment: preamble, then [hard state commit 8][entries 1..3] as the old order wrote.
    const fs = new PowerLossFs();
    await fs.mkdirp("/n/wal");
    const f = await fs.open(`/n/wal/${segmentName(0, 1)}`, "w");
    const buf = new Uint8Array(SEGMENT_BYTES);
    const dv = new DataView(buf.buffer);
    let off = 0;
    for (const r of [
      segmentRecord(0, 1),
      hardStateRecord({ term: 1, vote: "a", commit: 8 } as HardState),
    ]) {
      buf.set(r, off);
      off += r.byteLength;
    }
    for (const e of ents(1, 3, 1)) off = writeEntryRecord(buf, dv, off, e);
    await f.write(buf, 0);
    await f.datasync();
    await fs.syncDir("/n/wal");
    await fs.syncDir("/n");
    const warnings: string[] = [];
    const r = await openRecovered(
      "clamp",
      "/n/wal",
      "/n/snap",
      { fs: fs.view(), segmentBytes: SEGMENT_BYTES, logger: { warn: (_f, m) => warnings.push(m) } },
      { fs: fs.view() },
    );
    assert.equal(r.state.hardState.commit, 3);
    assert.ok(
      warnings.some((w) => /commit 8 is beyond the last entry 3/.test(w)),
      `warned: ${warnings.join(" | ")}`,
    );
    await r.wal.close();
  });
});
