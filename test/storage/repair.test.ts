import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { Wal } from "../../src/storage/wal.js";
import type { Entry } from "../../src/raft/types.js";
import { isNexusError } from "../../src/errors/index.js";
import { tempDir } from "../temp-dir.js";

function ents(first: number, n: number): Entry[] {
  return Array.from({ length: n }, (_, i) => ({
    term: 1,
    index: first + i,
    type: "normal" as const,
    data: new TextEncoder().encode(`entry-${first + i}`.padEnd(60, ".")),
  }));
}

describe("nexus wal repair", () => {
  it("a WAL corrupted in the middle refuses to open; repair keeps everything up to the last good record", async () => {
    const root = tempDir("nexus-repair-");
    const dir = join(root, "wal");
    const { wal } = await Wal.open(dir, { segmentBytes: 4096, maxWals: 0 });
    for (let i = 1; i <= 200; i += 10) await wal.save(undefined, ents(i, 10));
    const names = wal.segmentNames();
    await wal.close();
    assert.ok(names.length >= 4);
    // Damage the second segment in the middle of its records.
    const victim = join(dir, names[1]!);
    const b = readFileSync(victim);
    b[400] = b[400]! ^ 0xff;
    writeFileSync(victim, b);
    await assert.rejects(Wal.open(dir, { segmentBytes: 4096 }), (e: unknown) =>
      isNexusError(e, "CORRUPTED"),
    );

    const res = spawnSync(resolve("bin/nexus"), ["wal", "repair", dir], { encoding: "utf8" });
    assert.equal(res.status, 0, res.stderr);
    assert.match(res.stdout, /moved \d+ damaged bytes/);
    assert.match(res.stdout, /now ends at entry (\d+)/);
    const kept = Number(/now ends at entry (\d+)/.exec(res.stdout)![1]);

    const { wal: w2, state } = await Wal.open(dir, { segmentBytes: 4096 });
    assert.equal(state.lastIndex, kept);
    assert.ok(kept > 0 && kept < 200, `kept ${kept}`);
    for (let i = 1; i <= kept; i++) assert.equal(w2.readEntrySync(i).index, i);
    await w2.close();
    const broken = readdirSync(dir).filter((n) => n.endsWith(".broken"));
    assert.ok(broken.length >= names.length - 1, `moved aside: ${broken.join(", ")}`);
  });

  it("repair of an intact WAL changes nothing; bad usage exits 2", async () => {
    const root = tempDir("nexus-repair-");
    const dir = join(root, "wal");
    const { wal } = await Wal.open(dir);
    await wal.save(undefined, ents(1, 5));
    await wal.close();
    const res = spawnSync(resolve("bin/nexus"), ["wal", "repair", dir], { encoding: "utf8" });
    assert.equal(res.status, 0, res.stderr);
    assert.match(res.stdout, /intact/);
    const bad = spawnSync(resolve("bin/nexus"), ["wal", "repair"], { encoding: "utf8" });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /usage: nexus wal repair <dir>/);
  });
});
