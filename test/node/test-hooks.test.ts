/**
 * Test hooks are injected, and the node program reads them from the environment once at start
 * (src/node/test-hooks.ts); the Ready path never reads process.env.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { PAUSE_BEFORE_LEAVE_JOINT_ENV, testHooksFromEnv } from "../../src/node/test-hooks.js";

describe("test hooks", () => {
  for (const c of [
    { name: "unset: no hook", env: {}, want: undefined },
    { name: "0: no hook", env: { [PAUSE_BEFORE_LEAVE_JOINT_ENV]: "0" }, want: undefined },
    {
      name: "not a number: no hook",
      env: { [PAUSE_BEFORE_LEAVE_JOINT_ENV]: "soon" },
      want: undefined,
    },
    { name: "400: a 400 ms pause", env: { [PAUSE_BEFORE_LEAVE_JOINT_ENV]: "400" }, want: 400 },
  ]) {
    it(c.name, () => assert.equal(testHooksFromEnv(c.env).pauseBeforeLeaveJointMs?.(), c.want));
  }

  it("the runtime (src/node/raft-node.ts) does not read the environment", () => {
    const src = readFileSync(new URL("../../src/node/raft-node.ts", import.meta.url), "utf8");
    assert.doesNotMatch(src, /process\.env/);
  });
});
