/**
 * A short fuzzing run of what peers send (test/transport/peer-fuzz.ts): the frame assembler and
 * the raft message decoders. The seed is printed; NEXUS_FUZZ_SEED replays a run and
 * NEXUS_FUZZ_INPUTS sets its length (the long run: `node --import tsx
 * test/transport/peer-fuzz.ts --inputs 1000000`).
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { fuzz, fuzzSeed } from "./peer-fuzz.js";

const seed = fuzzSeed();
const inputs = Number(process.env["NEXUS_FUZZ_INPUTS"] ?? 0);

describe(`peer input fuzzing (seed ${seed}; replay with NEXUS_FUZZ_SEED=${seed})`, () => {
  for (const [target, short] of [
    ["frames", 20_000],
    ["messages", 10_000],
  ] as const) {
    it(`${target}: no crash, no hang, only clear refusals and valid messages`, async (t) => {
      const r = await fuzz(target, seed, inputs > 0 ? inputs : short);
      t.diagnostic(JSON.stringify({ ...r, findings: r.findings.length }));
      assert.deepEqual(r.findings, [], `findings (replay: NEXUS_FUZZ_SEED=${seed})`);
      // Both outcomes occur, so the inputs reach past the first check.
      assert.ok(r.accepted > 0 && r.refused > 0, JSON.stringify(r));
    });
  }
});
