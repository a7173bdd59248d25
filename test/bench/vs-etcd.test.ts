/**
 * The vs-etcd benchmark's arguments and output: flags parsed and refused with a usage line, one
 * JSON line per case, and the side-by-side table with the ratios to etcd.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { tmpdir } from "node:os";
import type { CaseResult } from "../../bench/vs-etcd.js";
import { formatLine, formatTable, parseArgs } from "../../bench/vs-etcd.js";

const result = (o: Partial<CaseResult> & Pick<CaseResult, "system" | "case">): CaseResult => ({
  clients: 1,
  ops: 100,
  failed: 0,
  firstError: undefined,
  opsPerSec: 100,
  p50Ms: 1,
  p99Ms: 2,
  cpuMsPerOp: 1,
  ...o,
});

describe("vs-etcd arguments", () => {
  it("defaults: 5 s per case, 1/16/64 clients, every system and case, the temporary folder", () => {
    assert.deepEqual(parseArgs([]), {
      seconds: 5,
      warmupSeconds: 1,
      clients: [1, 16, 64],
      systems: ["etcd", "memory", "sqlite"],
      cases: ["write", "read", "lease-read"],
      dir: tmpdir(),
      breakdown: true,
    });
  });

  it("takes --flag value and --flag=value", () => {
    const a = parseArgs([
      "--seconds",
      "0.5",
      "--warmup=0",
      "--clients=1,4",
      "--systems",
      "etcd,sqlite",
      "--cases=write",
      "--dir=/var/tmp",
      "--no-breakdown",
      "--cpu-prof=/var/tmp/prof",
    ]);
    assert.equal(a.seconds, 0.5);
    assert.equal(a.warmupSeconds, 0);
    assert.deepEqual(a.clients, [1, 4]);
    assert.deepEqual(a.systems, ["etcd", "sqlite"]);
    assert.deepEqual(a.cases, ["write"]);
    assert.equal(a.dir, "/var/tmp");
    assert.equal(a.breakdown, false);
    assert.equal(a.cpuProfDir, "/var/tmp/prof");
  });

  for (const c of [
    { name: "unknown flag", args: ["--fast"], want: /unknown argument "--fast"; usage: / },
    { name: "seconds not a number", args: ["--seconds", "x"], want: /--seconds needs a positive/ },
    { name: "seconds missing", args: ["--seconds"], want: /--seconds needs a positive/ },
    { name: "zero clients", args: ["--clients=1,0"], want: /--clients needs a positive integer/ },
    { name: "fractional clients", args: ["--clients=1.5"], want: /positive integer/ },
    { name: "unknown system", args: ["--systems=etcd,redis"], want: /unknown "redis"/ },
    { name: "unknown case", args: ["--cases=scan"], want: /unknown "scan"/ },
    { name: "empty list", args: ["--cases="], want: /--cases needs a list/ },
  ]) {
    it(`refuses: ${c.name}`, () => assert.throws(() => parseArgs(c.args), c.want));
  }
});

describe("vs-etcd output", () => {
  it("one JSON line per case, with the first error only when one failed", () => {
    const ok = JSON.parse(formatLine(result({ system: "memory", case: "write" }))) as Record<
      string,
      unknown
    >;
    assert.equal(ok["bench"], "vs-etcd");
    assert.equal(ok["system"], "memory");
    assert.equal(ok["opsPerSec"], 100);
    assert.equal("firstError" in ok, false);
    const bad = JSON.parse(
      formatLine(result({ system: "etcd", case: "read", failed: 2, firstError: "boom" })),
    ) as Record<string, unknown>;
    assert.equal(bad["firstError"], "boom");
  });

  it("the table puts the systems side by side with Nexus/etcd ratios; lease reads against etcd's reads", () => {
    const t = formatTable([
      result({ system: "etcd", case: "write", opsPerSec: 200, cpuMsPerOp: 2 }),
      result({ system: "memory", case: "write", opsPerSec: 400, cpuMsPerOp: 1 }),
      result({ system: "etcd", case: "read", opsPerSec: 1000, cpuMsPerOp: 0.5 }),
      result({ system: "memory", case: "read", opsPerSec: 500, cpuMsPerOp: 1 }),
      result({ system: "memory", case: "lease-read", opsPerSec: 3000, cpuMsPerOp: 0.25 }),
    ]).split("\n");
    assert.equal(t[0], "| case | clients | etcd | nexus memory |");
    assert.match(
      t[2]!,
      /^\| write \| 1 \| 200\/s, .* \| 400\/s, .*\(x2\.00 ops\/s, x0\.50 CPU\/op\) \|$/,
    );
    assert.match(t[3]!, /^\| read \| 1 \| 1,000\/s, .*\(x0\.50 ops\/s, x2\.00 CPU\/op\) \|$/);
    assert.match(
      t[4]!,
      /^\| lease-read \| 1 \| — \| 3,000\/s, .*\(x3\.00 ops\/s, x0\.50 CPU\/op\) \|$/,
    );
  });
});
