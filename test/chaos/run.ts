/**
 * One chaos run, inside the runner's private network namespace (main.ts puts it there): set up
 * the network and the 5-node cluster, run the workload under the nemesis, heal, check
 * convergence, tear everything down, judge the history, write the report.
 *
 * Whatever happens (a crash of the harness, Ctrl-C), the nodes are killed and the namespaces
 * deleted before the process ends; the supervisor in main.ts cleans up again after it, in case
 * this process was killed outright.
 */
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { isNexusError } from "../../src/errors/index.js";
import type { ChaosFlags } from "./chaos-flags.js";
import { keyNames } from "./chaos-flags.js";
import { ChaosCluster, RAFT_PORT } from "./cluster.js";
import { agree, describeDisagreement, fileRows, waitLocalAgreement } from "./convergence.js";
import type { Operation } from "./history.js";
import { checkHistory, describeVerdict } from "./linearizability.js";
import { Nemesis } from "./nemesis.js";
import type { FaultEvent } from "./nemesis.js";
import { planNemesis } from "./nemesis-plan.js";
import { ChaosNetwork, workDirOf } from "./netns.js";
import { formatReport, passed } from "./report.js";
import type { ConvergenceReport } from "./report.js";
import { SeededRng } from "./seeded-rng.js";
import { CREATE_TABLE, Workload } from "./workload.js";
import { ONCE_TABLES, OnceWorkload, describeOnce } from "./once-workload.js";
import type { OnceVerdict } from "./once-workload.js";
import { REGIONS, WanEmulator, advertisedIp } from "../wan/wan-emulator.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
/** Where run folders go (git-ignored). */
export const RUNS_DIR = join(ROOT, "chaos-runs");

const NODES = 5;
const HEARTBEAT_MS = 100;
const ELECTION_MS = 1000;
/** Client deadline per call: above the nodes' 5 s replication timeout, so a save that the node
 * gives up on comes back as the node's UNKNOWN_OUTCOME rather than a client timeout. */
const CLIENT_TIMEOUT_MS = 8000;
/**
 * The exactly-once clients' deadline per call (once-workload.ts): short, so that a save stuck
 * behind a fault is abandoned by the client (its outcome unknown) and sent again with its request
 * id through another node while the first attempt may still commit.
 */
const ONCE_TIMEOUT_MS = 2000;
/** How long an exactly-once save is retried with its request id, ms. */
const ONCE_RETRY_MS = 20_000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, ms)));
const enc = new TextEncoder();

function stamp(d: Date): string {
  const p = (n: number): string => String(n).padStart(2, "0");
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
}

/** The history as JSON lines, in id (invocation) order. */
export function historyLines(ops: readonly Operation[]): string {
  return [...ops]
    .sort((a, b) => a.id - b.id)
    .map((o) => JSON.stringify(o))
    .join("\n")
    .concat(ops.length > 0 ? "\n" : "");
}

/** Runs one chaos run; resolves with the process exit code (0: linearizable and converged). */
export async function runChaos(flags: ChaosFlags & { seed: number }): Promise<number> {
  const wallStart = performance.now();
  const seed = flags.seed;
  const runDir = join(RUNS_DIR, `${stamp(new Date())}-${seed}-${flags.reads}`);
  mkdirSync(runDir, { recursive: true });
  const workDir = workDirOf(process.pid);
  mkdirSync(workDir, { recursive: true });
  const say = (s: string): void => void process.stdout.write(`${s}\n`);
  say(
    `chaos: seed ${seed}, reads ${flags.reads}, ${flags.seconds} s of faults, ${flags.clients} clients, ${flags.keys} keys; run folder ${runDir}`,
  );

  let network: ChaosNetwork | undefined;
  let cluster: ChaosCluster | undefined;
  let workload: Workload | undefined;
  let once: OnceWorkload | undefined;
  let wan: WanEmulator | undefined;
  let torn = false;
  const teardown = async (): Promise<void> => {
    if (torn) return;
    torn = true;
    workload?.close();
    once?.close();
    wan?.stop();
    cluster?.closeClients();
    await cluster?.killAll().catch(() => undefined);
    await network?.destroy().catch(() => undefined);
    rmSync(workDir, { recursive: true, force: true });
  };
  // Ctrl-C or a kill: tear down, keep what was recorded, exit.
  const onSignal = (sig: NodeJS.Signals): void => {
    say(`chaos: ${sig}: tearing down (seed ${seed})`);
    if (workload !== undefined)
      writeFileSync(join(runDir, "history.jsonl"), historyLines(workload.ops));
    void teardown().finally(() => {
      say(`chaos: interrupted; partial history kept in ${runDir}`);
      process.exit(130);
    });
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);

  try {
    network = await ChaosNetwork.create(NODES);
    if (flags.wan) {
      wan = await WanEmulator.start({
        network,
        port: RAFT_PORT,
        profile: REGIONS,
        seed: (seed ^ 0x3a4e) >>> 0,
        logDir: runDir,
        controlDir: workDir,
      });
      say(`chaos: emulated regions (--wan), ${wan.describe()}`);
    }
    cluster = new ChaosCluster({
      network,
      workDir,
      logDir: runDir,
      extraFlags: flags.reads === "lease" ? ["-nexusLeaseBasedReads"] : [],
      heartbeatMs: HEARTBEAT_MS,
      electionMs: ELECTION_MS,
      logLevel: flags.nodeLogLevel,
      ...(wan === undefined ? {} : { advertisedIp }),
    });
    const c = cluster;
    await c.startAll();
    // The table, through whichever node takes it, once a leader is elected.
    const setupDeadline = performance.now() + 60_000;
    for (let i = 0; ; i++) {
      try {
        for (const sql of [CREATE_TABLE, ...ONCE_TABLES]) {
          await c.admin(1 + (i % NODES)).save(enc.encode(sql));
        }
        break;
      } catch (err) {
        if (performance.now() > setupDeadline) throw err;
        await sleep(300);
      }
    }
    const t0 = performance.now();
    const now = (): number => Math.round((performance.now() - t0) * 1000) / 1000;
    const plan = planNemesis({
      seed,
      durationMs: flags.seconds * 1000,
      electionMs: ELECTION_MS,
      nodes: NODES,
    });
    const probe = {
      fire: (_node: number, _count: number): void => undefined,
      write: (_node: number): void => undefined,
    };
    const nemesis = new Nemesis({
      probe: (node, count) => probe.fire(node, count),
      probeWrites: (node) => probe.write(node),
      electionMs: ELECTION_MS,
      cluster: c,
      network,
      plan,
      now,
      endMs: flags.seconds * 1000,
      onEvent: (e: FaultEvent) =>
        say(
          `  ${(e.atMs / 1000).toFixed(1).padStart(6)}s r${e.round} ${e.action} ${e.kind} [${e.nodes.join(",")}] ${e.detail}`,
        ),
    });
    if (!(await nemesis.waitWhole(-1, 60_000)))
      throw new Error("the cluster did not form at the start");
    const keys = keyNames(flags.keys);
    const rng = new SeededRng((seed ^ 0x5eed5eed) >>> 0);
    workload = new Workload({
      clients: flags.clients,
      keys,
      readMode: flags.reads,
      localShare: flags.localShare,
      staleBias: 0.5,
      thinkMs: flags.thinkMs,
      timeoutMs: CLIENT_TIMEOUT_MS,
      addrs: c.nodes.map((n) => n.addr),
      rng,
      now,
      staleNodes: () => nemesis.staleNodes(),
    });
    once = new OnceWorkload({
      clients: flags.onceClients,
      addrs: c.nodes.map((n) => n.addr),
      rng: new SeededRng((seed ^ 0x0dce0dce) >>> 0),
      now,
      timeoutMs: ONCE_TIMEOUT_MS,
      retryForMs: ONCE_RETRY_MS,
      runTag: `nxc-${seed}-${process.pid}`,
    });
    const ow = once;
    const w = workload;
    probe.fire = (node, count) => w.probe(node, count);
    probe.write = (node) => w.probeWrites(node);
    w.start();
    ow.start();
    wan?.startStalls((from, to, ms) =>
      say(`  ${(now() / 1000).toFixed(1).padStart(6)}s wan stall n${from}->n${to} ${ms} ms`),
    );
    await nemesis.run();
    // Everything is healed: let the clients run on a whole cluster for a few more seconds.
    await nemesis.waitWhole(-1, 60_000);
    await sleep(Math.max(flags.seconds * 1000 - now(), 0) + 3000);
    await Promise.all([w.stop(), ow.stop()]);
    // The links keep their delays for the final reads and convergence; only the stalls end.
    wan?.stopStalls();
    const workloadMs = now();
    say(
      `chaos: workload stopped at ${(workloadMs / 1000).toFixed(1)} s after ${w.ops.length} operations; final reads and convergence`,
    );

    // A final read of every register in the run's mode, recorded like any other operation: the
    // checker ties every unknown write to what the registers finally hold.
    for (const key of keys) {
      const deadline = now() + 30_000;
      for (let attempt = 0; ; attempt++) {
        const leader = (await c.leader()) ?? 1 + (attempt % NODES);
        const op = await w.record(flags.clients, leader, { kind: "read", key, mode: flags.reads });
        if (op.outcome === "ok" || now() > deadline) break;
        await sleep(300);
      }
    }

    // Exactly-once: the unknown saves' outcomes and the final counters and inserts, judged.
    let onceVerdict: OnceVerdict | undefined;
    if (flags.onceClients > 0) {
      onceVerdict = await ow.settle(async () => (await c.leader()) ?? 1);
      say(`chaos: ${describeOnce(onceVerdict).split("\n")[0]!}`);
    }

    const local = await waitLocalAgreement(c, 60_000);
    // A clean stop checkpoints SQLite's WAL into the file; then the files themselves are compared.
    await Promise.all(c.nodes.map((n) => n.terminate(15_000)));
    const files = c.nodes.map((n) => fileRows(n.index, n.sqlitePath));
    const filesAgree = agree(files);
    const convergence: ConvergenceReport = {
      localAgreed: local.agreed,
      localWaitMs: local.waitedMs,
      filesAgree,
      detail: filesAgree
        ? `  every node: ${files[0]!.rows.length > 300 ? `${files[0]!.rows.slice(0, 300)}...` : files[0]!.rows}`
        : `${describeDisagreement(files)}${local.agreed ? "" : `\n  local reads:\n${describeDisagreement(local.replicas)}`}`,
    };
    const exits = c.nodes.map((n) => `node ${n.index}: ${n.exits.join(", ")}`);
    const crashes = c.nodes.flatMap((n) => n.crashes);
    await teardown();

    const ops = [...w.ops].sort((a, b) => a.id - b.id);
    writeFileSync(join(runDir, "history.jsonl"), historyLines(ops));
    say(`chaos: checking ${ops.length} operations`);
    const verdict = checkHistory(ops, { include: (o) => o.mode !== "local" });
    const verdictWithLocal = checkHistory(ops, { maxMs: 20_000 });
    const ok = passed({ verdict, convergence, crashes }) && (onceVerdict?.ok ?? true);
    const keep = flags.keep || !ok;
    let text = formatReport({
      seed,
      readMode: flags.reads,
      clients: flags.clients,
      keys,
      plannedMs: flags.seconds * 1000,
      workloadMs,
      elapsedMs: performance.now() - wallStart,
      ops,
      events: nemesis.events,
      roundsPlayed: nemesis.roundsPlayed,
      biasedLocalReads: w.biasedLocalReads,
      probeReads: w.probes,
      problems: nemesis.problems,
      crashes,
      convergence,
      verdict,
      verdictWithLocal,
      runDir,
      historyKept: keep,
    });
    if (onceVerdict !== undefined) text += `\n${describeOnce(onceVerdict)}`;
    if (wan !== undefined)
      text += `\nemulated regions: ${wan.describe()}\n  ${wan.stalls} link stalls\n`;
    if (!verdict.ok) text += `\nchecker, without local reads:\n${describeVerdict(verdict)}\n`;
    if (verdictWithLocal.verdict === "violation") {
      text += `\nchecker, with local reads (stale local reads are expected):\n${describeVerdict(verdictWithLocal)}\n`;
    }
    text += `\nnode processes (how each start ended):\n${exits.map((e) => `  ${e}`).join("\n")}\n`;
    writeFileSync(join(runDir, "report.txt"), text);
    if (keep && flags.onceClients > 0) {
      writeFileSync(
        join(runDir, "once.jsonl"),
        [...ow.ops, ...ow.reads].map((x) => JSON.stringify(x)).join("\n") + "\n",
      );
    }
    if (!keep) {
      rmSync(join(runDir, "history.jsonl"), { force: true });
      for (const n of c.nodes) rmSync(join(runDir, `node-${n.index}.log`), { force: true });
    }
    process.stdout.write(`\n${text}`);
    return ok ? 0 : 1;
  } catch (err) {
    say(
      `chaos: the harness failed (seed ${seed}): ${isNexusError(err) ? `${err.code}: ` : ""}${(err as Error).stack ?? String(err)}`,
    );
    if (workload !== undefined)
      writeFileSync(join(runDir, "history.jsonl"), historyLines(workload.ops));
    await teardown();
    say(`chaos: run folder kept: ${runDir}`);
    return 1;
  } finally {
    await teardown();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}
