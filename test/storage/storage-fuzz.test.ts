/**
 * A short fuzzing run of what a node reads back from disk (test/storage/storage-fuzz.ts): WAL
 * records and snapshot files. The seed is printed; NEXUS_FUZZ_SEED replays a run and
 * NEXUS_FUZZ_INPUTS sets its length (the long run: `node --import tsx
 * test/storage/storage-fuzz.ts --inputs 1000000`).
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { fuzzSeed, fuzzStorage } from "./storage-fuzz.js";

const seed = fuzzSeed();
const inputs = Number(process.env["NEXUS_FUZZ_INPUTS"] ?? 0);

describe(`storage input fuzzing (seed ${seed}; replay with NEXUS_FUZZ_SEED=${seed})`, () => {
  for (const [target, short] of [
    ["records", 20_000],
    ["snapshots", 1_500],
  ] as const) {
    it(`${target}: no crash, no hang, damaged input refused, nothing accepted without its CRC`, async (t) => {
      const r = await fuzzStorage(target, seed, inputs > 0 ? inputs : short);
      t.diagnostic(JSON.stringify({ ...r, findings: r.findings.length }));
      assert.deepEqual(r.findings, [], `findings (replay: NEXUS_FUZZ_SEED=${seed})`);
      // Both outcomes occur, so the inputs reach past the first check.
      assert.ok(r.accepted > 0 && r.refused > 0, JSON.stringify(r));
    });
  }
});
