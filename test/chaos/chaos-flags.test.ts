/** The flags of `npm run chaos`: defaults, both spellings, and a clear error for each bad flag. */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ChaosFlagError, keyNames, parseChaosFlags } from "./chaos-flags.js";

describe("chaos: flags", () => {
  it("has defaults that make a 60-second linearizable run", () => {
    const f = parseChaosFlags([]);
    assert.equal(f.seconds, 60);
    assert.equal(f.reads, "linearizable");
    assert.equal(f.seed, undefined);
    assert.equal(f.clients, 6);
    assert.equal(f.keys, 4);
    assert.equal(f.keep, false);
    assert.equal(f.nodeLogLevel, "info");
    assert.equal(f.wan, false);
    assert.equal(f.help, false);
  });

  it("takes --wan as a switch without a value", () => {
    assert.equal(parseChaosFlags(["--wan"]).wan, true);
    assert.throws(() => parseChaosFlags(["--wan=yes"]), /--wan takes no value/);
  });

  it("takes --flag value, --flag=value and one dash", () => {
    const f = parseChaosFlags([
      "--seconds",
      "300",
      "--reads=lease",
      "-seed",
      "77",
      "--clients=8",
      "--keys",
      "3",
      "--keep",
      "--think-ms=0",
      "--local-share",
      "0.5",
      "--node-log-level=info",
    ]);
    assert.equal(f.nodeLogLevel, "info");
    assert.deepEqual(
      [f.seconds, f.reads, f.seed, f.clients, f.keys, f.keep, f.thinkMs, f.localShare],
      [300, "lease", 77, 8, 3, true, 0, 0.5],
    );
    assert.equal(parseChaosFlags(["--help"]).help, true);
  });

  it("refuses bad flags with a message naming the flag and what it takes", () => {
    const cases: [string[], RegExp][] = [
      [["--seconds", "5"], /--seconds takes an integer from 10 to/],
      [["--seconds", "1.5"], /--seconds takes an integer/],
      [["--seconds"], /--seconds needs a value/],
      [["--reads", "stale"], /--reads must be linearizable or lease, got "stale"/],
      [["--reads=local"], /--reads must be linearizable or lease/],
      [["--seed", "-3"], /--seed takes an integer from 0/],
      [["--clients", "0"], /--clients takes an integer from 1 to 32/],
      [["--keys", "27"], /--keys takes an integer from 1 to 26/],
      [["--local-share", "2"], /--local-share takes a number from 0 to 1/],
      [["--keep=yes"], /--keep takes no value/],
      [["--node-log-level", "loud"], /--node-log-level must be debug, info, warn or error/],
      [["--frobnicate"], /unknown flag --frobnicate/],
      [["300"], /unexpected argument "300"/],
    ];
    for (const [argv, re] of cases) {
      assert.throws(
        () => parseChaosFlags(argv),
        (e: unknown) => e instanceof ChaosFlagError && re.test(e.message),
        argv.join(" "),
      );
    }
  });

  it("names registers a, b, c, ...", () => {
    assert.deepEqual(keyNames(3), ["a", "b", "c"]);
    assert.equal(keyNames(26).at(-1), "z");
  });
});
