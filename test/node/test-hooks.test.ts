/**
 * Test hooks are injected, and the node program reads them from the environment once at start
 * (src/node/test-hooks.ts); the Ready path never reads process.env.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import {
  PAUSE_BEFORE_LEAVE_JOINT_ENV,
  pauseBeforeLeaveJoint,
  testHooksFromEnv,
} from "../../src/node/test-hooks.js";
import { SILENT } from "../../src/node/options.js";

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

  it("the pause: only on a leader, and it ends when the node stops", async () => {
    const hooks = { pauseBeforeLeaveJointMs: () => 60_000 };
    const stop = new AbortController();
    assert.equal(await pauseBeforeLeaveJoint(hooks, false, SILENT, stop.signal), false);
    assert.equal(await pauseBeforeLeaveJoint({}, true, SILENT, stop.signal), false);
    const t0 = performance.now();
    const paused = pauseBeforeLeaveJoint(hooks, true, SILENT, stop.signal);
    setTimeout(() => stop.abort(), 20);
    assert.equal(await paused, true);
    assert.ok(performance.now() - t0 < 5_000, "the stop ended the pause, not its 60 s");
  });

  for (const file of [
    "raft-node.ts",
    "test-hooks.ts",
    "durable-state.ts",
    "member-directory.ts",
    "snapshot-manager.ts",
    "member-changes.ts",
    "client-requests.ts",
    "lease-upkeep.ts",
  ]) {
    it(`the runtime (src/node/${file}) does not read the environment`, () => {
      const src = readFileSync(new URL(`../../src/node/${file}`, import.meta.url), "utf8");
      assert.doesNotMatch(src, /process\.env/);
    });
  }
});
