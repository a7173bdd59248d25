import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { FlagError, parseFlags } from "../../src/cli/flags.js";
import type { FlagSpec } from "../../src/cli/flags.js";
import { scanParams } from "../../src/cli/repl.js";
import { NODE_FLAGS, parseDurationMs, requestWindowMsOf } from "../../src/cli/node-flags.js";
import { MEMORY } from "../../src/cli/stores.js";
import type { MemoryStore } from "../../src/store/memory/memory-store.js";
import { DEFAULT_REQUEST_WINDOW_MS, requestKeyOf } from "../../src/store/request-records.js";

const SPECS: readonly FlagSpec[] = [
  { name: "nexus-node-url", kind: "string", help: "" },
  { name: "grpcPort", kind: "int", min: 1, max: 65535, help: "" },
  { name: "nexus-max-wals", kind: "int", min: 0, default: 5, help: "" },
  { name: "nexusLeaseBasedReads", kind: "bool", aliases: ["nexus-lease-based-reads"], help: "" },
];

describe("flags as the original's programs take them", () => {
  for (const c of [
    { name: "one dash, space", argv: ["-grpcPort", "9121"], want: 9121 },
    { name: "one dash, equals", argv: ["-grpcPort=9121"], want: 9121 },
    { name: "two dashes, space", argv: ["--grpcPort", "9121"], want: 9121 },
    { name: "two dashes, equals", argv: ["--grpcPort=9121"], want: 9121 },
  ]) {
    it(c.name, () => assert.equal(parseFlags(c.argv, SPECS).values.get("grpcPort"), c.want));
  }

  it("takes the next token as a string value even when it starts with a dash", () => {
    const f = parseFlags(["-nexus-node-url", "-odd", "-grpcPort", "1"], SPECS);
    assert.equal(f.values.get("nexus-node-url"), "-odd");
  });

  it("applies defaults, and booleans as -flag, -flag=true, -flag=false, or by alias", () => {
    assert.equal(parseFlags([], SPECS).values.get("nexus-max-wals"), 5);
    assert.equal(parseFlags([], SPECS).values.get("nexusLeaseBasedReads"), undefined);
    for (const [argv, want] of [
      [["-nexusLeaseBasedReads"], true],
      [["--nexusLeaseBasedReads=true"], true],
      [["-nexusLeaseBasedReads=false"], false],
      [["-nexus-lease-based-reads"], true],
    ] as const) {
      assert.equal(
        parseFlags(argv, SPECS).values.get("nexusLeaseBasedReads"),
        want,
        argv.join(" "),
      );
    }
  });

  for (const c of [
    { name: "unknown flag", argv: ["-nope", "1"], msg: /unknown flag -nope/ },
    {
      name: "unknown flag, two dashes and a value",
      argv: ["--nope=1"],
      msg: /unknown flag -nope$/,
    },
    { name: "a dash and a number alone", argv: ["-5"], msg: /unknown flag -5$/ },
    { name: "a dash and no flag name", argv: ["-_x"], msg: /unknown flag -_x$/ },
    {
      name: "unknown flag before a flag without its value",
      argv: ["-nope", "-grpcPort"],
      msg: /unknown flag -nope$/,
    },
    { name: "missing value", argv: ["-grpcPort"], msg: /-grpcPort needs a value/ },
    {
      name: "not an integer",
      argv: ["-grpcPort=abc"],
      msg: /-grpcPort must be an integer from 1 to 65535, got "abc"/,
    },
    { name: "out of range", argv: ["-grpcPort", "70000"], msg: /from 1 to 65535, got "70000"/ },
    { name: "negative", argv: ["-nexus-max-wals", "-1"], msg: /from 0 to/ },
    {
      name: "bad boolean",
      argv: ["-nexusLeaseBasedReads=maybe"],
      msg: /true or false, got "maybe"/,
    },
    { name: "given twice", argv: ["-grpcPort=1", "--grpcPort=2"], msg: /more than once/ },
    { name: "stray argument", argv: ["extra"], msg: /unexpected argument "extra"/ },
  ]) {
    it(`refuses: ${c.name}`, () => {
      assert.throws(
        () => parseFlags(c.argv, SPECS),
        (e: unknown) => e instanceof FlagError && c.msg.test(e.message),
      );
    });
  }

  it("stops at the first positional when asked (a command and its arguments)", () => {
    const f = parseFlags(["-grpcPort=1", "addr", "sqlite", "save", "-- comment", "-x"], SPECS, {
      allowPositionals: true,
      stopAtPositional: true,
    });
    assert.deepEqual(f.positionals, ["addr", "sqlite", "save", "-- comment", "-x"]);
  });
});

describe("repl's params, as the original scans them", () => {
  for (const c of [
    { name: "one", s: "db.index=2", want: { "db.index": "2" } },
    {
      name: "two, spaces",
      s: " db.index = 2 , consistency=local",
      want: { "db.index": "2", consistency: "local" },
    },
    { name: "no equals ignored", s: "junk,db.index=3", want: { "db.index": "3" } },
    { name: "value with equals", s: "k=a=b", want: { k: "a=b" } },
  ]) {
    it(c.name, () => assert.deepEqual(scanParams(c.s), c.want));
  }
});

describe("durations, as Go writes them (-nexus-consistency-check-interval)", () => {
  for (const c of [
    { name: "zero disables", s: "0", want: 0 },
    { name: "seconds", s: "30s", want: 30_000 },
    { name: "minutes", s: "5m", want: 300_000 },
    { name: "compound", s: "1h30m", want: 5_400_000 },
    { name: "fraction", s: "1.5s", want: 1500 },
    { name: "milliseconds", s: "250ms", want: 250 },
  ]) {
    it(c.name, () => assert.equal(parseDurationMs("d", c.s), c.want));
  }
  for (const bad of ["", "5", "5 m", "m", "-1s", "1d", "1s2", "0s0"]) {
    it(`refuses "${bad}" naming the flag`, () =>
      assert.throws(
        () => parseDurationMs("nexus-consistency-check-interval", bad),
        (e: unknown) =>
          e instanceof FlagError &&
          /-nexus-consistency-check-interval must be a duration/.test(e.message),
      ));
  }
});

describe("-nexus-request-window: how long request ids are remembered", () => {
  const window = (argv: string[]): number =>
    requestWindowMsOf(parseFlags(argv, NODE_FLAGS, { allowPositionals: true }));
  it("is 10 minutes by default, the stores' own default", () =>
    assert.equal(window([]), DEFAULT_REQUEST_WINDOW_MS));
  it("takes a duration", () => assert.equal(window(["-nexus-request-window", "1h"]), 3_600_000));
  it("is the default for a program without the flag (nexus restore, recover)", () => {
    // Before: a TypeError in parseDurationMs, and nexus restore into a MySQL store exited 1.
    const f = parseFlags(
      ["-mysqlConnUrl", "x"],
      [{ name: "mysqlConnUrl", kind: "string", help: "" }],
      {
        allowPositionals: true,
      },
    );
    assert.equal(requestWindowMsOf(f), DEFAULT_REQUEST_WINDOW_MS);
  });
  for (const bad of ["500ms", "0", "ten"]) {
    it(`refuses "${bad}" naming the flag`, () =>
      assert.throws(
        () => window([`-nexus-request-window=${bad}`]),
        (e: unknown) => e instanceof FlagError && /-nexus-request-window/.test(e.message),
      ));
  }
  it("reaches the store a node program makes", async () => {
    const f = parseFlags(["-nexus-request-window", "2s"], [...NODE_FLAGS, ...MEMORY.flags], {
      allowPositionals: true,
    });
    const { store } = await MEMORY.create(f, "", "");
    const m = store as MemoryStore;
    const cmd = { data: new TextEncoder().encode("incr n"), args: {} };
    const at = (index: number, ms: number) => ({
      index,
      term: 1,
      command: cmd,
      timestampMs: ms,
      seed: 0,
      request: requestKeyOf(cmd, "w", 1000),
    });
    // Within 2 s of its issue a retry is answered from the record; 2.5 s after, it is refused.
    const [first, within, after] = await m.apply([at(1, 1000), at(2, 2900), at(3, 3500)]);
    assert.deepEqual(within, { ...first!, firstIndex: 1 });
    assert.equal(after!.ok, false);
  });
});
