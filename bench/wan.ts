/**
 * `npm run bench -- wan [--seconds S] [--seed N] [--only SCENARIO]`: real `sqlite_repl` nodes in emulated regions
 * (test/wan: one network namespace per node, a relay per directed link holding bytes for the
 * link's delay), driven through the gRPC API like a user. Needs root, `ip`, `unshare` and `nft`,
 * as `npm run chaos` does.
 *
 * Scenarios, each printed as JSON lines `{"bench":"wan",...}`:
 * - `3-regions`: 3 nodes with round trips 30 ms (n1-n2), 80 ms (n1-n3), 150 ms (n2-n3); the
 *   leader pinned to n1 by `-nexus-leader-priority`.
 * - `5-nodes`: 5 nodes with round trips drawn from 20-200 ms (from the seed).
 * For each: 1 and 64 closed-loop clients beside the leader and beside the follower farthest from
 * it: saves/s, p50/p99 latency, and the physical floor (the round trip to the nearest quorum,
 * plus the hop to the leader from a follower; fsyncs come on top).
 * - `100ms-vs-loopback`: 3 nodes, every round trip 100 ms, then 0 ms: saves/s at 64 clients.
 * - `snapshot-catch-up`: a follower that missed tens of MB catches up by snapshot over a 100 ms,
 *   100 Mbit/s link: time from its restart to caught up, the snapshot's transfer alone (the
 *   leader's "snapshot sent" log line), rates, and whether leadership held meanwhile.
 * `--only` runs one scenario (`3-regions`, `5-nodes`, `100ms-vs-loopback`, `snapshot-catch-up`).
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, readdirSync, statSync } from "node:fs";
import { constants } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createNexusClient } from "../src/api/client.js";
import { closedLoop } from "./lib/closed-loop.js";
import type { LoadFigures } from "./lib/closed-loop.js";
import { ChaosCluster, RAFT_PORT } from "../test/chaos/cluster.js";
import { ChaosNetwork, cleanupStale, workDirOf } from "../test/chaos/netns.js";
import { SeededRng } from "../test/chaos/seeded-rng.js";
import { REGIONS, WanEmulator, advertisedIp } from "../test/wan/wan-emulator.js";

const INNER_ENV = "NEXUS_BENCH_WAN_INNER";
const MAIN = fileURLToPath(new URL("./main.ts", import.meta.url));
const enc = new TextEncoder();
const dec = new TextDecoder();
const VALUE = "v".repeat(256);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const SCENARIOS = ["3-regions", "5-nodes", "100ms-vs-loopback", "snapshot-catch-up"] as const;

interface Args {
  seconds: number;
  seed: number;
  only: string | undefined;
}

function parse(args: readonly string[]): Args {
  const a: Args = { seconds: 5, seed: 1, only: undefined };
  for (let i = 0; i < args.length; i++) {
    const v = Number(args[i + 1]);
    if (args[i] === "--seconds" && v >= 1) a.seconds = v;
    else if (args[i] === "--seed" && Number.isSafeInteger(v)) a.seed = v;
    else if (args[i] === "--only" && (SCENARIOS as readonly string[]).includes(args[i + 1] ?? ""))
      a.only = args[i + 1];
    else
      throw new Error(
        `bad argument ${args[i]}; usage: npm run bench -- wan [--seconds S] [--seed N] ` +
          `[--only ${SCENARIOS.join("|")}]`,
      );
    i++;
  }
  return a;
}

const round = (x: number, d = 1): number => Math.round(x * 10 ** d) / 10 ** d;

function emit(o: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify({ bench: "wan", ...o })}\n`);
}

/** Closed-loop saves (bench/lib/closed-loop.ts) from `clients` clients at node `node`. */
async function drive(
  c: ChaosCluster,
  node: number,
  clients: number,
  seconds: number,
): Promise<LoadFigures> {
  const sql = enc.encode(`insert into kv (v) values ('${VALUE}')`);
  const cs = Array.from({ length: clients }, () =>
    createNexusClient(c.node(node).addr, { timeoutMs: 15_000 }),
  );
  try {
    return await closedLoop({
      clients,
      seconds,
      warmupSeconds: 0,
      pids: c.nodes.flatMap((n) => (n.pid === undefined ? [] : [n.pid])),
      op: (i) => cs[i]!.save(sql),
    });
  } finally {
    for (const cl of cs) cl.close();
  }
}

/** A cluster of `rtt.length` nodes in emulated regions, n1 preferred as leader. */
async function withCluster(
  name: string,
  rtt: readonly (readonly number[])[],
  seed: number,
  o: { snapshotCount?: number; logLevel?: string },
  body: (c: ChaosCluster, wan: WanEmulator) => Promise<void>,
): Promise<void> {
  const network = await ChaosNetwork.create(rtt.length);
  const workDir = join(workDirOf(process.pid), name);
  mkdirSync(workDir, { recursive: true });
  let wan: WanEmulator | undefined;
  let cluster: ChaosCluster | undefined;
  try {
    wan = await WanEmulator.start({
      network,
      port: RAFT_PORT,
      profile: { ...REGIONS, jitterShare: 0, stallGapMs: [0, 0] },
      seed,
      logDir: workDirOf(process.pid),
      controlDir: workDirOf(process.pid),
      rttMs: rtt,
    });
    cluster = new ChaosCluster({
      network,
      workDir,
      logDir: workDirOf(process.pid),
      extraFlags: [],
      heartbeatMs: 100,
      electionMs: 1000,
      logLevel: o.logLevel ?? "warn",
      advertisedIp,
      nodeFlags: (i) => (i === 1 ? ["-nexus-leader-priority=10"] : []),
      ...(o.snapshotCount === undefined ? {} : { snapshotCount: o.snapshotCount }),
    });
    const c = cluster;
    await c.startAll();
    const deadline = performance.now() + 60_000;
    while ((await c.leader()) !== 1) {
      if (performance.now() > deadline) throw new Error(`${name}: n1 did not become the leader`);
      await sleep(200);
    }
    await c.admin(1).save(enc.encode("create table kv (k integer primary key, v text)"));
    await body(c, wan);
  } finally {
    cluster?.closeClients();
    await cluster?.killAll().catch(() => undefined);
    wan?.stop();
    await network.destroy();
  }
}

/** The round trip from the leader (n1) to the nearest quorum of the n nodes. */
function quorumRtt(wan: WanEmulator, n: number): number {
  const others = Array.from({ length: n - 1 }, (_, k) => wan.rtt(1, k + 2)).sort((x, y) => x - y);
  return others[Math.floor(n / 2) - 1]!;
}

async function placements(name: string, rtt: number[][], a: Args): Promise<void> {
  const n = rtt.length;
  await withCluster(name, rtt, a.seed, {}, async (c, wan) => {
    const far = Array.from({ length: n - 1 }, (_, k) => k + 2).reduce((x, y) =>
      wan.rtt(1, y) > wan.rtt(1, x) ? y : x,
    );
    const floorLeader = quorumRtt(wan, n);
    for (const [placement, node, floor] of [
      ["beside leader", 1, floorLeader],
      [`beside follower n${far}`, far, floorLeader + wan.rtt(far, 1)],
    ] as const) {
      for (const clients of [1, 64]) {
        const r = await drive(c, node, clients, a.seconds);
        emit({
          scenario: name,
          placement,
          ...r,
          floorMs: floor,
          p50OverFloor: round(r.p50Ms / floor, 2),
        });
      }
    }
  });
}

async function throughputRatio(a: Args): Promise<void> {
  const rtt = [
    [0, 100, 100],
    [100, 0, 100],
    [100, 100, 0],
  ];
  await withCluster("100ms-vs-loopback", rtt, a.seed, {}, async (c, wan) => {
    const slow = await drive(c, 1, 64, a.seconds);
    for (let i = 1; i <= 3; i++) {
      for (let j = 1; j <= 3; j++) await wan.setLink(i, j, { delayMs: 0 });
    }
    const fast = await drive(c, 1, 64, a.seconds);
    emit({
      scenario: "100ms-vs-loopback",
      clients: 64,
      opsPerSec100ms: slow.opsPerSec,
      p50At100ms: slow.p50Ms,
      opsPerSecLoopback: fast.opsPerSec,
      p50Loopback: fast.p50Ms,
      ratio: round(slow.opsPerSec / fast.opsPerSec, 2),
    });
  });
}

/** The leader's last "snapshot sent" log line (bytes, ms) in a node's JSON log, if any. */
function lastSnapshotSent(file: string): { bytes: number; ms: number } | undefined {
  let last: { bytes: number; ms: number } | undefined;
  for (const line of readFileSync(file, "utf8").split("\n")) {
    if (!line.includes('"snapshot sent"')) continue;
    try {
      const j = JSON.parse(line) as { bytes?: number; ms?: number };
      if (typeof j.bytes === "number" && typeof j.ms === "number")
        last = { bytes: j.bytes, ms: j.ms };
    } catch {
      // A line cut by a kill: skip it.
    }
  }
  return last;
}

async function snapshotCatchUp(a: Args): Promise<void> {
  const rtt = [
    [0, 20, 100],
    [20, 0, 100],
    [100, 100, 0],
  ];
  const o = { snapshotCount: 200, logLevel: "info" };
  await withCluster("snapshot-catch-up", rtt, a.seed, o, async (c, wan) => {
    // 100 Mbit/s to and from n3.
    for (const [i, j] of [
      [1, 3],
      [2, 3],
      [3, 1],
      [3, 2],
    ] as const) {
      await wan.setLink(i, j, { bandwidthBps: 12_500_000 });
    }
    await c.node(3).kill();
    const big = "b".repeat(16 * 1024);
    const rows = 2000;
    let written = 0;
    const cs = Array.from({ length: 16 }, () =>
      createNexusClient(c.node(1).addr, { timeoutMs: 15_000 }),
    );
    await Promise.all(
      cs.map(async (cl) => {
        while (written < rows) {
          written++;
          await cl.save(enc.encode(`insert into kv (v) values ('${big}')`));
        }
      }),
    );
    for (const cl of cs) cl.close();
    const count = async (i: number): Promise<number> => {
      const out = dec.decode(
        await c.admin(i).load(enc.encode("select count(*) as n from kv"), { consistency: "local" }),
      );
      const m = /(\d+)/.exec(out);
      return m === null ? -1 : Number(m[1]);
    };
    const expected = await count(1);
    const snapDir = join(c.node(1).dir, "snap");
    const newest = (): number => {
      let size = 0;
      const walk = (d: string): void => {
        for (const f of readdirSync(d, { withFileTypes: true })) {
          if (f.isDirectory()) walk(join(d, f.name));
          else if (f.name.endsWith(".snap") || f.name.includes("snap"))
            size = Math.max(size, statSync(join(d, f.name)).size);
        }
      };
      walk(snapDir);
      return size;
    };
    const snapBytes = newest();
    const t0 = performance.now();
    c.node(3).start();
    let leaderHeld = true;
    for (;;) {
      if ((await c.leader()) !== 1) leaderHeld = false;
      const got = await count(3).catch(() => -1);
      if (got >= expected) break;
      if (performance.now() - t0 > 300_000) throw new Error("n3 did not catch up within 300 s");
      await sleep(100);
    }
    const s = (performance.now() - t0) / 1000;
    const sent = lastSnapshotSent(join(workDirOf(process.pid), "node-1.log"));
    emit({
      scenario: "snapshot-catch-up",
      link: "100 ms, 100 Mbit/s",
      rows: expected,
      snapshotBytes: snapBytes,
      seconds: round(s, 2),
      mbPerSec: round(snapBytes / 1e6 / s, 2),
      shareOfLink: round(snapBytes / 12.5e6 / s, 2),
      transferBytes: sent?.bytes,
      transferSeconds: sent === undefined ? undefined : round(sent.ms / 1000, 2),
      transferShareOfLink: sent === undefined ? undefined : round(sent.bytes / 12.5e3 / sent.ms, 2),
      leaderHeld,
    });
  });
}

async function inner(a: Args): Promise<void> {
  const runs = (name: string): boolean => a.only === undefined || a.only === name;
  const rng = new SeededRng(a.seed);
  if (runs("3-regions")) {
    await placements(
      "3-regions",
      [
        [0, 30, 80],
        [30, 0, 150],
        [80, 150, 0],
      ],
      a,
    );
  }
  // Drawn whether it runs or not: the 5 nodes' round trips depend on the seed alone.
  const five = Array.from({ length: 5 }, () => new Array<number>(5).fill(0));
  for (let i = 0; i < 5; i++) {
    for (let j = i + 1; j < 5; j++) five[i]![j] = five[j]![i] = rng.between(20, 200);
  }
  if (runs("5-nodes")) await placements("5-nodes", five, a);
  if (runs("100ms-vs-loopback")) await throughputRatio(a);
  if (runs("snapshot-catch-up")) await snapshotCatchUp(a);
}

export default async function main(args: string[]): Promise<void> {
  const a = parse(args);
  if (process.env[INNER_ENV] === "1") {
    await inner(a);
    return;
  }
  if (process.getuid?.() !== 0) throw new Error("bench wan needs root (network namespaces)");
  for (const tool of ["ip", "unshare", "nft"]) {
    if (spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0) {
      throw new Error(`bench wan needs ${tool} (apt-get install -y iproute2 util-linux nftables)`);
    }
  }
  // The runner gets a private network namespace; whatever it leaves is removed after it.
  const child = spawn(
    "unshare",
    ["-n", "--", process.execPath, ...process.execArgv, MAIN, "wan", ...args],
    { stdio: "inherit", env: { ...process.env, [INNER_ENV]: "1" } },
  );
  process.on("SIGINT", () => undefined);
  const status = await new Promise<number>((resolve) =>
    child.once("exit", (code, signal) =>
      resolve(code ?? 128 + (signal === null ? 0 : (constants.signals[signal] ?? 0))),
    ),
  );
  if (child.pid !== undefined) await cleanupStale(child.pid);
  if (status !== 0) process.exit(status);
}
