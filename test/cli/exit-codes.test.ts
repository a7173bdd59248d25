/**
 * The one table of exit codes (src/cli/exit-codes.ts), as the README documents it: 0 done, 1
 * failed, 2 bad usage, 3 the address does not answer, 4 the outcome is unknown.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { NEXUS_ERROR_CODES } from "../../src/errors/index.js";
import type { NexusErrorCode } from "../../src/errors/index.js";
import { EXIT, exitCodeOf } from "../../src/cli/exit-codes.js";

const SPECIAL: Partial<Record<NexusErrorCode, number>> = {
  BAD_CONFIG: 2,
  UNREACHABLE: 3,
  UNKNOWN_OUTCOME: 4,
};

describe("exit codes by Nexus error code", () => {
  it("the outcomes keep the numbers the README gives", () => {
    assert.deepEqual(
      { ...EXIT },
      { OK: 0, FAILED: 1, USAGE: 2, UNREACHABLE: 3, UNKNOWN_OUTCOME: 4, INTERRUPTED: 130 },
    );
  });

  for (const code of NEXUS_ERROR_CODES) {
    const want = SPECIAL[code] ?? 1;
    it(`${code} exits ${want}`, () => assert.equal(exitCodeOf(code), want));
  }
});
