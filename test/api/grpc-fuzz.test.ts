/**
 * A short fuzzing run of the gRPC port (test/api/grpc-fuzz.ts): random and mutated protobuf
 * bodies and broken framing against a real server. The seed is printed; NEXUS_FUZZ_SEED replays
 * a run and NEXUS_FUZZ_INPUTS sets its length (the long run: `node --import tsx
 * test/api/grpc-fuzz.ts --inputs 1000000`).
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { fuzzGrpc, fuzzSeed, startFuzzServer } from "./grpc-fuzz.js";
import type { FuzzServer } from "./grpc-fuzz.js";

const seed = fuzzSeed();
const inputs = Number(process.env["NEXUS_FUZZ_INPUTS"] ?? 0);

describe(`gRPC request fuzzing (seed ${seed}; replay with NEXUS_FUZZ_SEED=${seed})`, () => {
  let server: FuzzServer;
  before(async () => {
    server = await startFuzzServer();
  });
  after(() => server.close());

  it("every request ends in time with a clear status, never INTERNAL or a dead connection", async (t) => {
    const r = await fuzzGrpc(server, seed, inputs > 0 ? inputs : 600);
    t.diagnostic(JSON.stringify({ ...r, findings: r.findings.length }));
    assert.deepEqual(r.findings, [], `findings (replay: NEXUS_FUZZ_SEED=${seed})`);
    // Both outcomes occur, so the inputs reach past the first check.
    assert.ok(r.accepted > 0 && r.refused > 0, JSON.stringify(r));
    assert.ok((r.codes["grpc:3"] ?? 0) > 0, "malformed bodies were refused as INVALID_ARGUMENT");
  });
});
