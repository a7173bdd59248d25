/**
 * The nemesis at run time: plays a NemesisPlan against the cluster (SIGKILL and restart,
 * SIGSTOP/SIGCONT, nftables partitions, remove / wipe / re-add), logs every fault with its time,
 * and after every round waits for the cluster to be whole again (every member back, reachable and
 * caught up) before the quiet gap.
 */
import { rmSync } from "node:fs";
import { join } from "node:path";
import { isNexusError } from "../../src/errors/index.js";
import type { ChaosCluster } from "./cluster.js";
import type { ChaosNetwork } from "./netns.js";
import type { FaultKind, NemesisPlan, PlannedFault, PlannedRound } from "./nemesis-plan.js";
import { mergeBlocks, partitionBlocks, resolveTargets } from "./nemesis-plan.js";

/** One line of the fault log. */
export interface FaultEvent {
  /** ms on the run's clock. */
  readonly atMs: number;
  readonly round: number;
  readonly kind: FaultKind | "recovery";
  readonly action: "start" | "heal" | "skip" | "note";
  /** Node numbers (1-based). */
  readonly nodes: readonly number[];
  readonly detail: string;
}

export interface NemesisOptions {
  readonly cluster: ChaosCluster;
  readonly network: ChaosNetwork;
  readonly plan: NemesisPlan;
  /** The run's monotonic clock, ms (0 = workload start). */
  readonly now: () => number;
  /** No round starts later than this (ms on the run's clock) minus its length. */
  readonly endMs: number;
  /** Called with every event as it happens (progress output). */
  readonly onEvent?: (e: FaultEvent) => void;
  /** The nodes' election timeout, ms: a pause-isolated node stays cut off this long (x1.2)
   * after it wakes. */
  readonly electionMs: number;
  /** Fires reads at a node (Workload.probe): just before and after a pause or a partition heals. */
  readonly probe?: (node: number, count: number) => void;
  /** Writes every register once through a node (Workload.probeWrites). */
  readonly probeWrites?: (node: number) => void;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, ms)));

/** Where a node re-added by kill-receiving-snapshot kills itself: the file half received. */
const RECEIVE_CRASH_POINT = "snap.receive-after-write";

/** Reads fired at a paused node just before it resumes, and again just after. */
const PROBES = 3;

/** How long after a partition heals or a pause ends a node still counts as likely stale, ms. */
const STALE_AFTER_MS = 3000;

export class Nemesis {
  readonly events: FaultEvent[] = [];
  /** Nodes some fault holds now. */
  private readonly faulty = new Set<number>();
  private readonly partitions = new Map<number, Map<number, Set<number>>>();
  private nextPartition = 0;
  /** Nodes cut off from the majority or paused, and until when they stay suspect (ms). */
  private readonly suspectUntil = new Map<number, number>();
  private stopped = false;
  /** Rounds started, faults started by kind, and rounds after which recovery was slow. */
  roundsPlayed = 0;
  readonly started = new Map<FaultKind, number>();
  /** Problems seen while playing (recovery that did not happen in time, failed restarts). */
  readonly problems: string[] = [];

  constructor(private readonly o: NemesisOptions) {}

  /** Node numbers likely to serve stale local reads now (isolated, minority, just resumed). */
  staleNodes(): number[] {
    const t = this.o.now();
    const out: number[] = [];
    for (const [n, until] of this.suspectUntil) if (until > t) out.push(n);
    return out;
  }

  /** Asks the nemesis to start no new round. */
  stop(): void {
    this.stopped = true;
  }

  private log(e: Omit<FaultEvent, "atMs">): void {
    const ev = { atMs: this.o.now(), ...e };
    this.events.push(ev);
    this.o.onEvent?.(ev);
  }

  /** Plays the plan until its rounds are done or the time is up, healing everything it did. */
  async run(): Promise<void> {
    for (const round of this.o.plan.rounds) {
      if (this.stopped) break;
      const startAt = Math.max(round.atMs, this.o.now());
      if (startAt + round.lengthMs > this.o.endMs) break;
      await sleep(startAt - this.o.now());
      if (this.stopped) break;
      await this.playRound(round);
      this.roundsPlayed++;
      await this.waitWhole(round.index, 30_000);
      await sleep(round.quietMs);
    }
  }

  private async playRound(round: PlannedRound): Promise<void> {
    const t0 = this.o.now();
    await Promise.all(
      round.faults.map(async (f) => {
        await sleep(t0 + f.startMs - this.o.now());
        const held = await this.begin(round.index, f);
        await sleep(t0 + f.endMs - this.o.now());
        await this.heal(round.index, f, held);
      }),
    );
  }

  /** Starts a fault; returns the nodes it holds (empty when skipped). */
  private async begin(round: number, f: PlannedFault): Promise<number[]> {
    const leader = await this.o.cluster.leader();
    const eligible = this.o.cluster.nodes
      .filter((n) => !this.faulty.has(n.index) && n.state === "running")
      .map((n) => n.index);
    const nodes = resolveTargets(f.targets, eligible, leader);
    if (nodes === undefined) {
      this.log({
        round,
        kind: f.kind,
        action: "skip",
        nodes: [],
        detail: "not enough healthy nodes",
      });
      return [];
    }
    const held =
      f.kind === "split" || f.kind === "isolate"
        ? nodes
        : f.kind === "bridge"
          ? this.o.cluster.nodes.map((n) => n.index).filter((n) => n !== nodes[0])
          : nodes;
    for (const n of held) this.faulty.add(n);
    this.started.set(f.kind, (this.started.get(f.kind) ?? 0) + 1);
    const lead = leader === undefined ? "no leader known" : `leader was ${leader}`;
    switch (f.kind) {
      case "kill": {
        await this.o.cluster.node(nodes[0]!).kill();
        this.log({ round, kind: f.kind, action: "start", nodes, detail: `SIGKILL (${lead})` });
        return held;
      }
      case "pause": {
        this.o.cluster.node(nodes[0]!).pause();
        this.suspectUntil.set(nodes[0]!, Infinity);
        this.log({ round, kind: f.kind, action: "start", nodes, detail: `SIGSTOP (${lead})` });
        if (nodes[0] === leader) void this.writeAround(round, nodes[0]!);
        return held;
      }
      case "pause-isolated": {
        const n = nodes[0]!;
        this.o.cluster.node(n).pause();
        const id = this.nextPartition++;
        this.partitions.set(id, partitionBlocks("isolate", [n], this.o.cluster.nodes.length));
        this.partitionIds.set(f, id);
        await this.applyPartitions();
        this.suspectUntil.set(n, Infinity);
        this.log({
          round,
          kind: f.kind,
          action: "start",
          nodes,
          detail: `SIGSTOP, then cut off (${lead})`,
        });
        if (n === leader) void this.writeAround(round, n);
        return held;
      }
      case "isolate":
      case "split":
      case "bridge": {
        const id = this.nextPartition++;
        const blocks = partitionBlocks(f.kind, nodes, this.o.cluster.nodes.length);
        this.partitions.set(id, blocks);
        await this.applyPartitions();
        // The side without the leader (or the minority) is where local reads go stale.
        const minority = f.kind === "bridge" ? nodes.slice(1) : nodes;
        for (const n of minority) this.suspectUntil.set(n, Infinity);
        const what =
          f.kind === "bridge"
            ? `bridge ${nodes[0]} between {${nodes.slice(1).join(",")}} and the rest`
            : `{${nodes.join(",")}} cut off from the rest`;
        this.log({ round, kind: f.kind, action: "start", nodes, detail: `${what} (${lead})` });
        this.partitionIds.set(f, id);
        return held;
      }
      case "membership":
      case "kill-receiving-snapshot": {
        const removed = await this.removeAndWipe(round, nodes[0]!, f.kind);
        if (!removed) {
          for (const n of held) this.faulty.delete(n);
          return [];
        }
        return held;
      }
      case "wiped-log": {
        const removed = await this.wipedLog(round, nodes[0]!);
        if (!removed) {
          for (const n of held) this.faulty.delete(n);
          return [];
        }
        return held;
      }
    }
  }

  /**
   * The wiped-log fault: removes node i (confirmed), kills it, empties only its log directory and
   * restarts it with its original flags: it must refuse to start (exit 2, BAD_CONFIG: its store
   * has applied entries). A node that starts instead is a finding (it counts as a crash, failing
   * the run). Then it is wiped whole and re-added as a new member at heal. The removal comes
   * first so that a node that wrongly starts cannot vote in the cluster.
   */
  private async wipedLog(round: number, i: number): Promise<boolean> {
    const node = this.o.cluster.node(i);
    if (!(await this.remove(round, i, "wiped-log"))) return false;
    await node.kill();
    rmSync(join(node.dir, "logs"), { recursive: true, force: true });
    node.start({ expectExit: true });
    const refused = await Promise.race([
      node.exitedNow().then(() => true),
      sleep(60_000).then(() => false),
    ]);
    let detail: string;
    if (!refused) {
      await node.kill();
      const msg = `node ${i} started with an emptied log directory instead of refusing`;
      this.problems.push(msg);
      node.crashes.push(msg);
      detail = msg;
    } else if (node.lastExit?.code !== 2) {
      const msg = `node ${i} with an emptied log directory exited with ${node.lastExit?.code ?? node.lastExit?.signal}, not 2 (BAD_CONFIG)`;
      this.problems.push(msg);
      node.crashes.push(msg);
      detail = msg;
    } else {
      detail = "restarted with its log directory emptied: refused to start (exit 2) as it must";
    }
    node.wipe();
    node.joinAsNew = true;
    this.suspectUntil.delete(i);
    this.log({ round, kind: "wiped-log", action: "start", nodes: [i], detail });
    return true;
  }

  private readonly partitionIds = new Map<PlannedFault, number>();

  /**
   * While old leader `n` sleeps: waits (up to 10 s) for the others to elect a new leader and
   * writes every register through it, so that `n` is certainly behind when it wakes. (Clients
   * may all be waiting on requests forwarded to `n` then, and write nothing themselves.)
   */
  private async writeAround(round: number, n: number): Promise<void> {
    const deadline = this.o.now() + 10_000;
    while (this.o.now() < deadline && this.o.cluster.node(n).state === "paused") {
      const l = await this.o.cluster.leader();
      if (l !== undefined && l !== n) {
        this.o.probeWrites?.(l);
        this.log({
          round,
          kind: "recovery",
          action: "note",
          nodes: [l],
          detail: `new leader ${l} while ${n} sleeps: a write to every register through it`,
        });
        return;
      }
      await sleep(200);
    }
  }

  private async applyPartitions(): Promise<void> {
    await this.o.network.applyBlocks(mergeBlocks([...this.partitions.values()]));
  }

  private async heal(round: number, f: PlannedFault, held: number[]): Promise<void> {
    if (held.length === 0) return;
    const t = this.o.now();
    switch (f.kind) {
      case "kill": {
        const n = this.o.cluster.node(held[0]!);
        n.start();
        this.log({ round, kind: f.kind, action: "heal", nodes: held, detail: "restarted" });
        await this.waitAnswering(round, held[0]!);
        // A restarted node replays and catches up: its local reads lag for a while.
        this.suspectUntil.set(held[0]!, this.o.now() + STALE_AFTER_MS);
        break;
      }
      case "pause": {
        // Reads queued at the paused node are served the moment it wakes, before it has heard
        // of a newer term: the moment a lease that outlived the pause would be used.
        this.o.probe?.(held[0]!, PROBES);
        await sleep(200);
        this.o.cluster.node(held[0]!).resume();
        this.o.probe?.(held[0]!, PROBES);
        this.suspectUntil.set(held[0]!, t + STALE_AFTER_MS);
        this.log({ round, kind: f.kind, action: "heal", nodes: held, detail: "SIGCONT" });
        break;
      }
      case "pause-isolated": {
        // It wakes alone: reads sent to it now must not be served from a lease it had before
        // it slept. Probes before, at, and during the lonely wake, then it is reconnected.
        const n = held[0]!;
        this.o.probe?.(n, PROBES);
        await sleep(200);
        this.o.cluster.node(n).resume();
        this.o.probe?.(n, PROBES);
        this.log({
          round,
          kind: f.kind,
          action: "heal",
          nodes: held,
          detail: "SIGCONT, still cut off",
        });
        const lonelyMs = Math.round(1.2 * this.o.electionMs);
        await sleep(lonelyMs / 2);
        this.o.probe?.(n, PROBES);
        await sleep(lonelyMs / 2);
        const id = this.partitionIds.get(f);
        if (id !== undefined) this.partitions.delete(id);
        await this.applyPartitions();
        this.o.probe?.(n, 1);
        this.suspectUntil.set(n, this.o.now() + STALE_AFTER_MS);
        this.log({
          round,
          kind: f.kind,
          action: "heal",
          nodes: held,
          detail: `reconnected ${lonelyMs} ms after waking`,
        });
        break;
      }
      case "isolate":
      case "split":
      case "bridge": {
        const id = this.partitionIds.get(f);
        for (const n of held) this.o.probe?.(n, 1);
        if (id !== undefined) this.partitions.delete(id);
        await this.applyPartitions();
        for (const n of held) this.o.probe?.(n, 1);
        for (const n of held) {
          if ((this.suspectUntil.get(n) ?? 0) === Infinity)
            this.suspectUntil.set(n, t + STALE_AFTER_MS);
        }
        this.log({ round, kind: f.kind, action: "heal", nodes: held, detail: "partition removed" });
        break;
      }
      case "membership":
      case "wiped-log": {
        await this.rejoin(round, held[0]!, f.kind);
        break;
      }
      case "kill-receiving-snapshot": {
        await this.rejoin(round, held[0]!, f.kind, RECEIVE_CRASH_POINT);
        break;
      }
    }
    for (const n of held) this.faulty.delete(n);
  }

  private async waitAnswering(round: number, i: number): Promise<void> {
    try {
      await this.o.cluster.node(i).waitAnswering(60_000);
    } catch (err) {
      const msg = `node ${i} did not come back: ${(err as Error).message}`;
      this.problems.push(msg);
      this.log({ round, kind: "recovery", action: "note", nodes: [i], detail: msg });
    }
  }

  /** The member list as a healthy node other than `except` sees it, or undefined. */
  private async members(
    except?: number,
  ): Promise<{ urls: string[]; fromLeader: boolean; lagging: string[] } | undefined> {
    const leader = await this.o.cluster.leader();
    const order = [
      ...(leader !== undefined && leader !== except ? [leader] : []),
      ...this.o.cluster.nodes.map((n) => n.index).filter((n) => n !== leader && n !== except),
    ];
    for (const i of order) {
      if (this.o.cluster.node(i).state !== "running") continue;
      try {
        const r = await this.o.cluster.admin(i).listMembers();
        return {
          urls: r.members.map((m) => m.url),
          fromLeader: r.fromLeader,
          lagging: r.fromLeader
            ? r.members
                .filter((m) => !m.reachable || m.lag > 100)
                .map(
                  (m) =>
                    `${m.url} (${m.reachable ? "reachable" : "unreachable"}, match ${m.match}, lag ${m.lag}; leader ${i})`,
                )
            : [],
        };
      } catch {
        // Ask the next one.
      }
    }
    return undefined;
  }

  /**
   * Removes node i from the cluster through the leader, confirms it is gone from the member list,
   * then kills it and wipes its data. Returns false (and changes nothing more) when the removal
   * was refused or could not be confirmed.
   */
  private async removeAndWipe(round: number, i: number, kind: FaultKind): Promise<boolean> {
    const node = this.o.cluster.node(i);
    const outcome = await this.remove(round, i, kind);
    if (outcome === false) return false;
    await node.kill();
    node.wipe();
    node.joinAsNew = true;
    this.suspectUntil.delete(i);
    const leader = (await this.o.cluster.leader()) ?? i;
    this.log({
      round,
      kind,
      action: "start",
      nodes: [i],
      detail: `removeNode via ${leader} (${outcome}); killed and wiped`,
    });
    return true;
  }

  /**
   * Removes node i through the leader and confirms it from the others' member list. Resolves the
   * outcome of the call, or false (nothing changed, a skip logged) when refused or unconfirmed.
   */
  private async remove(round: number, i: number, kind: FaultKind): Promise<string | false> {
    const node = this.o.cluster.node(i);
    const leader = (await this.o.cluster.leader()) ?? i;
    let outcome = "removed";
    try {
      await this.o.cluster.admin(leader).removeNode(node.url);
    } catch (err) {
      if (isNexusError(err, "MEMBERSHIP_REFUSED")) {
        this.log({
          round,
          kind,
          action: "skip",
          nodes: [i],
          detail: `removeNode refused: ${err.message}`,
        });
        return false;
      }
      outcome = `removeNode: ${isNexusError(err) ? err.code : (err as Error).message}`;
    }
    // Confirm from the others that it is gone (the change may still be committing).
    const deadline = this.o.now() + 15_000;
    for (;;) {
      const m = await this.members(i);
      if (m !== undefined && !m.urls.includes(node.url)) break;
      if (this.o.now() > deadline) {
        this.log({
          round,
          kind,
          action: "skip",
          nodes: [i],
          detail: `removal not confirmed (${outcome}); node left as is`,
        });
        return false;
      }
      await sleep(250);
    }
    return outcome;
  }

  /** Restarts a removed node as a new member and adds it back (retrying until it is a member). */
  private async rejoin(
    round: number,
    i: number,
    kind: FaultKind,
    crashPoint?: string,
  ): Promise<void> {
    const node = this.o.cluster.node(i);
    if (crashPoint === undefined) node.start();
    else node.start({ env: { NEXUS_CRASH_POINT: crashPoint }, expectExit: true });
    await this.waitAnswering(round, i);
    const deadline = this.o.now() + 60_000;
    let tries = 0;
    let last = "";
    for (;;) {
      const m = await this.members(i);
      if (m?.urls.includes(node.url) === true) break;
      if (this.o.now() > deadline) {
        const msg = `node ${i} could not be added back within 60 s (${tries} addNode calls; last: ${last})`;
        this.problems.push(msg);
        this.log({ round, kind, action: "note", nodes: [i], detail: msg });
        return;
      }
      const leader = await this.o.cluster.leader();
      if (leader !== undefined && leader !== i) {
        tries++;
        try {
          await this.o.cluster.admin(leader).addNode(node.url);
        } catch (err) {
          last = isNexusError(err) ? `${err.code}: ${err.message}` : (err as Error).message;
        }
      }
      await sleep(300);
    }
    let crashed = "";
    if (crashPoint !== undefined) {
      // The leader sends the new member a snapshot: the node kills itself in the middle of
      // receiving it, then is restarted as it was and must catch up.
      const hit = await Promise.race([
        node.exitedNow().then(() => true),
        sleep(20_000).then(() => false),
      ]);
      if (hit && node.lastExit?.signal !== "SIGKILL") {
        const msg = `node ${i} exited (${node.lastExit?.code ?? "?"}) instead of reaching ${crashPoint}`;
        this.problems.push(msg);
        node.crashes.push(msg);
      }
      await node.kill();
      crashed = hit
        ? `; SIGKILLed at ${crashPoint} while receiving the snapshot, restarted`
        : `; ${crashPoint} not reached within 20 s (no snapshot sent), restarted`;
      node.start();
      await this.waitAnswering(round, i);
    }
    this.suspectUntil.set(i, this.o.now() + STALE_AFTER_MS);
    this.log({
      round,
      kind,
      action: "heal",
      nodes: [i],
      detail: `restarted as new and added back (${tries} addNode calls)${crashed}`,
    });
  }

  /**
   * Waits until the leader lists every node as a member, reachable and at most 100 entries
   * behind. A cluster that does not get there in time is a finding: it goes into problems.
   */
  async waitWhole(round: number, timeoutMs: number): Promise<boolean> {
    const t0 = this.o.now();
    const deadline = t0 + timeoutMs;
    let last = "no answer";
    for (;;) {
      const m = await this.members();
      if (m !== undefined && m.fromLeader) {
        const missing = this.o.cluster.nodes
          .filter((n) => !m.urls.includes(n.url))
          .map((n) => n.index);
        if (missing.length === 0 && m.lagging.length === 0) {
          const took = this.o.now() - t0;
          if (took > 5000) {
            this.log({
              round,
              kind: "recovery",
              action: "note",
              nodes: [],
              detail: `whole again after ${Math.round(took)} ms`,
            });
          }
          return true;
        }
        last = `missing ${JSON.stringify(missing)}, lagging ${JSON.stringify(m.lagging)}`;
      } else if (m !== undefined) last = "no leader answers";
      if (this.o.now() > deadline) {
        const msg = `round ${round}: the cluster was not whole ${timeoutMs} ms after healing (${last})`;
        this.problems.push(msg);
        this.log({ round, kind: "recovery", action: "note", nodes: [], detail: msg });
        return false;
      }
      await sleep(250);
    }
  }

  /** Heals whatever is still faulty (used when the run is interrupted). */
  async healAll(): Promise<void> {
    this.partitions.clear();
    await this.o.network.heal().catch(() => undefined);
    for (const n of this.o.cluster.nodes) n.resume();
  }
}
