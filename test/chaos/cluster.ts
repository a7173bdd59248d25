/**
 * The chaos cluster: real `bin/sqlite_repl` processes, one per network namespace, that the
 * nemesis kills (SIGKILL), pauses (SIGSTOP/SIGCONT), restarts, wipes and re-adds.
 *
 * Each node listens for peers on http://10.77.0.<i>:7000 and for clients on 10.77.0.<i>:9000;
 * its WAL, snapshots and SQLite file live in the run's scratch folder, its stderr (JSON log
 * lines) in the run folder as node-<i>.log.
 */
import type { ChildProcess } from "node:child_process";
import { closeSync, mkdirSync, openSync, rmSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createNexusClient } from "../../src/api/client.js";
import type { NexusClient } from "../../src/api/client.js";
import { nodeIdOf } from "../../src/node/node-id.js";
import type { ChaosNetwork } from "./netns.js";
import { nodeIp, spawnInNamespace } from "./netns.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const SQLITE_REPL = join(ROOT, "bin", "sqlite_repl");

/** The peer port every node listens on (inside its own namespace). */
export const RAFT_PORT = 7000;
/** The gRPC port every node listens on. */
export const GRPC_PORT = 9000;

export type NodeState = "stopped" | "running" | "paused";

export interface ClusterOptions {
  readonly network: ChaosNetwork;
  /** Node data (WAL, snapshots, SQLite) goes under here. */
  readonly workDir: string;
  /** Node logs go here. */
  readonly logDir: string;
  /** Extra flags for every node (e.g. -nexusLeaseBasedReads). */
  readonly extraFlags: readonly string[];
  readonly heartbeatMs: number;
  readonly electionMs: number;
  /** The nodes' -log-level (their stderr goes to node-<i>.log). */
  readonly logLevel: string;
  /**
   * The address node i advertises to its peers when it differs from the one it binds (emulated
   * regions: test/wan/wan-emulator.ts); absent, nodes advertise their own address.
   */
  readonly advertisedIp?: (i: number) => string;
  /** Flags for node i only (after extraFlags). */
  readonly nodeFlags?: (i: number) => readonly string[];
  /** The nodes' -nexus-snapshot-count (default 300: snapshots happen during a run). */
  readonly snapshotCount?: number;
}

/** One node process (restartable). */
export class ChaosNode {
  readonly url: string;
  readonly addr: string;
  readonly dir: string;
  /** The raft node id (16 hex digits), derived from the URL as every node derives it. */
  readonly id: string;
  state: NodeState = "stopped";
  /** Once wiped and re-added, the node joins as a new member on every later start. */
  joinAsNew = false;
  proc: ChildProcess | undefined;
  /** How each start of the process ended (signal or code), for the report. */
  readonly exits: string[] = [];
  /** Exits the harness did not cause (a crash of the node): what, and when (ms, performance.now). */
  readonly crashes: string[] = [];
  /** Set by kill() and terminate() just before they signal: the coming exit is expected. */
  private stopping = false;
  private exited: Promise<void> = Promise.resolve();

  constructor(
    /** 1-based. */
    readonly index: number,
    private readonly cluster: ChaosCluster,
  ) {
    this.url = `http://${cluster.o.advertisedIp?.(index) ?? nodeIp(index)}:${RAFT_PORT}`;
    this.addr = `${nodeIp(index)}:${GRPC_PORT}`;
    this.dir = join(cluster.o.workDir, `node${index}`);
    this.id = nodeIdOf(this.url);
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  flags(): string[] {
    const o = this.cluster.o;
    return [
      `-nexus-cluster-url=${this.cluster.initialUrls.join(",")}`,
      `-nexus-node-url=${this.url}`,
      ...(o.advertisedIp === undefined
        ? []
        : [`-nexus-listen-url=http://${nodeIp(this.index)}:${RAFT_PORT}`]),
      `-grpcPort=${GRPC_PORT}`,
      `-grpcHost=${nodeIp(this.index)}`,
      `-nexus-log-dir=${join(this.dir, "logs")}`,
      `-nexus-snap-dir=${join(this.dir, "snap")}`,
      `-sqlitePath=${join(this.dir, "store.db")}`,
      `-nexus-heartbeat-ms=${o.heartbeatMs}`,
      `-nexus-election-ms=${o.electionMs}`,
      // Snapshots happen during the run, and a re-added node can be caught up from one.
      // (often enough that a node re-added in a short run is sent one: kill-receiving-snapshot).
      `-nexus-snapshot-count=${o.snapshotCount ?? 300}`,
      "-nexus-snapshot-catchup-entries=100",
      `-log-level=${o.logLevel}`,
      ...(this.joinAsNew ? ["-nexus-node-state=new"] : []),
      ...o.extraFlags,
      ...(o.nodeFlags?.(this.index) ?? []),
    ];
  }

  /**
   * Spawns the process (it is not waited for: see waitAnswering). With `expectExit`, its exit is
   * the fault's own (a crash point, a refusal to start): not counted as a crash, and `exited()`
   * resolves with how it ended. `env` is added to the process's environment.
   */
  start(o: { env?: Record<string, string>; expectExit?: boolean } = {}): void {
    if (this.state !== "stopped") throw new Error(`node ${this.index} is already ${this.state}`);
    mkdirSync(this.dir, { recursive: true });
    const log = openSync(join(this.cluster.o.logDir, `node-${this.index}.log`), "a");
    const p = spawnInNamespace(
      this.cluster.o.network.ns(this.index),
      process.execPath,
      [SQLITE_REPL, ...this.flags()],
      ["ignore", log, log],
      { ...process.env, ...o.env },
    );
    if (o.expectExit === true) this.stopping = true;
    closeSync(log);
    this.proc = p;
    this.state = "running";
    this.exited = new Promise<void>((resolve) => {
      p.once("exit", (code, signal) => {
        const how = signal ?? `exit ${String(code)}`;
        this.lastExit = { code, signal };
        this.exits.push(how);
        if (!this.stopping) this.crashes.push(`node ${this.index} exited by itself (${how})`);
        this.stopping = false;
        if (this.proc === p) {
          this.proc = undefined;
          this.state = "stopped";
        }
        resolve();
      });
    });
  }

  /** How the process last ended. */
  lastExit: { code: number | null; signal: NodeJS.Signals | null } | undefined;

  /** Resolves once the current process has exited (at once when none runs). */
  async exitedNow(): Promise<void> {
    await this.exited;
  }

  /** Resolves once the gRPC service answers a health check (any status), or throws. */
  async waitAnswering(timeoutMs = 60_000): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    const c = createNexusClient(this.addr, { timeoutMs: 1000 });
    try {
      for (;;) {
        if (this.state === "stopped") {
          throw new Error(`node ${this.index} exited (${this.exits.at(-1) ?? "?"}) while starting`);
        }
        try {
          await c.check();
          return;
        } catch {
          // Not listening yet.
        }
        if (performance.now() > deadline) {
          throw new Error(`node ${this.index} did not answer within ${timeoutMs} ms`);
        }
        await new Promise((r) => setTimeout(r, 200));
      }
    } finally {
      c.close();
    }
  }

  /** SIGKILL (works on a paused process too); resolves once it has exited. */
  async kill(): Promise<void> {
    const p = this.proc;
    if (p === undefined) return;
    this.stopping = true;
    p.kill("SIGKILL");
    await this.exited;
  }

  /** SIGTERM: a clean shutdown; SIGKILL after graceMs. */
  async terminate(graceMs = 10_000): Promise<void> {
    const p = this.proc;
    if (p === undefined) return;
    if (this.state === "paused") this.resume();
    this.stopping = true;
    p.kill("SIGTERM");
    const t = setTimeout(() => p.kill("SIGKILL"), graceMs);
    await this.exited;
    clearTimeout(t);
  }

  pause(): void {
    if (this.state !== "running" || this.proc === undefined) return;
    this.proc.kill("SIGSTOP");
    this.state = "paused";
  }

  resume(): void {
    if (this.state !== "paused" || this.proc === undefined) return;
    this.proc.kill("SIGCONT");
    this.state = "running";
  }

  /** Deletes the node's WAL, snapshots and SQLite file (the node must be stopped). */
  wipe(): void {
    if (this.state !== "stopped") throw new Error(`wipe of node ${this.index} while ${this.state}`);
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** The SQLite file (read it only once the node is stopped). */
  get sqlitePath(): string {
    return join(this.dir, "store.db");
  }
}

/** The five (or n) nodes and an admin client per node. */
export class ChaosCluster {
  readonly nodes: ChaosNode[];
  readonly initialUrls: string[];
  private readonly admins = new Map<number, NexusClient>();

  constructor(readonly o: ClusterOptions) {
    const n = o.network.size;
    this.nodes = Array.from({ length: n }, (_, k) => new ChaosNode(k + 1, this));
    this.initialUrls = this.nodes.map((x) => x.url);
  }

  node(i: number): ChaosNode {
    const n = this.nodes[i - 1];
    if (n === undefined) throw new Error(`no node ${i}`);
    return n;
  }

  /** A client for membership and status calls to node i (kept open). */
  admin(i: number): NexusClient {
    let c = this.admins.get(i);
    if (c === undefined) {
      c = createNexusClient(this.node(i).addr, { timeoutMs: 3000 });
      this.admins.set(i, c);
    }
    return c;
  }

  /** Starts every node and waits until they answer. */
  async startAll(): Promise<void> {
    for (const n of this.nodes) n.start();
    await Promise.all(this.nodes.map((n) => n.waitAnswering()));
  }

  /**
   * The leader as the running, unpaused nodes see it: the node index most of them name, or
   * undefined. Asks with short timeouts; never throws.
   */
  async leader(): Promise<number | undefined> {
    const votes = new Map<string, number>();
    await Promise.all(
      this.nodes
        .filter((n) => n.state === "running")
        .map(async (n) => {
          try {
            const r = await this.admin(n.index).listMembers();
            if (r.leader !== "") votes.set(r.leader, (votes.get(r.leader) ?? 0) + 1);
            if (r.fromLeader) votes.set(r.leader, (votes.get(r.leader) ?? 0) + 100);
          } catch {
            // Not answering: no vote.
          }
        }),
    );
    let best: string | undefined;
    for (const [id, v] of votes) if (best === undefined || v > votes.get(best)!) best = id;
    if (best === undefined) return undefined;
    return this.indexOfId(best);
  }

  /** The node index whose id is `id` (16 hex digits), if any. */
  indexOfId(id: string): number | undefined {
    return this.nodes.find((n) => n.id === id)?.index;
  }

  /** Kills every node (SIGCONT first where paused is not needed: SIGKILL ends it either way). */
  async killAll(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.kill()));
  }

  /** Closes the admin clients. */
  closeClients(): void {
    for (const c of this.admins.values()) c.close();
    this.admins.clear();
  }
}
