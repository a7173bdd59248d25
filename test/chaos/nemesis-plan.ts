/**
 * The nemesis plan: which faults happen when, as a pure function of the seed (and the run's
 * duration, election timeout and size). A seed always yields the same plan, so `--seed S`
 * replays it. Which node a fault hits is decided when it starts, from the plan's `pick` number
 * and the cluster as it is then (who leads, which nodes are already faulty): the same seed hits
 * the same roles (the leader, the n-th healthy follower), not necessarily the same node ids.
 *
 * Faults come in rounds: every round starts one or two faults, heals them all, then leaves a
 * quiet gap. A round never makes more than two of the five voters faulty (a kill, a pause, an
 * isolation or a membership change costs one node; a 2|3 split or a bridge costs two), so a
 * quorum of live voters always exists on purpose and every outage is the system's own.
 */
import { SeededRng } from "./seeded-rng.js";

/** What a fault does. */
export type FaultKind =
  /** SIGKILL a node; restart it when the fault heals. */
  | "kill"
  /** SIGSTOP a node longer than the election timeout; SIGCONT when it heals. */
  | "pause"
  /** SIGSTOP a node and cut it off while it sleeps; at heal SIGCONT, and only an election
   * timeout later reconnect it: an old leader wakes up alone, sure of its lease if it kept it
   * in ticks. */
  | "pause-isolated"
  /** Cut one node off from every other node. */
  | "isolate"
  /** Cut the cluster in two: the targets (two nodes) against the other three. */
  | "split"
  /** Two halves that cannot see each other, both seeing the first target (the bridge). */
  | "bridge"
  /** Remove a node from the cluster, wipe it; restart it as a new node and add it back at heal. */
  | "membership"
  /** As membership, but the re-added node is SIGKILLed in the middle of receiving the leader's
   * snapshot (NEXUS_CRASH_POINT), then restarted: it must start and catch up. */
  | "kill-receiving-snapshot"
  /** Kill a node and empty its log directory (its store kept), restart it as it was: it must
   * refuse to start. Then restore it properly: remove it, wipe it, re-add it as a new member. */
  | "wiped-log";

/** How a fault chooses a node when it starts. */
export interface TargetRule {
  /** The leader if it is healthy, else a healthy follower (`any`: any healthy node). */
  readonly prefer: "leader" | "follower" | "any";
  /** In [0, 1): which of the eligible nodes, in index order. */
  readonly pick: number;
}

export interface PlannedFault {
  readonly kind: FaultKind;
  /** Begins this long after its round starts, ms. */
  readonly startMs: number;
  /** Heals this long after its round starts, ms. */
  readonly endMs: number;
  /** One rule per node the fault names (split: the minority of two; bridge: the bridge node,
   * then one node of each half). */
  readonly targets: readonly TargetRule[];
}

export interface PlannedRound {
  /** 0-based. */
  readonly index: number;
  /** Planned start, ms after the workload starts (a round also waits for the previous one). */
  readonly atMs: number;
  /** Every fault of the round heals by this offset from its start, ms. */
  readonly lengthMs: number;
  /** The quiet time after the round heals, ms. */
  readonly quietMs: number;
  readonly faults: readonly PlannedFault[];
}

export interface NemesisPlan {
  readonly seed: number;
  readonly rounds: readonly PlannedRound[];
}

export interface PlanOptions {
  readonly seed: number;
  /** The fault phase's length, ms: no round starts after durationMs - the shortest round. */
  readonly durationMs: number;
  /** The nodes' election timeout, ms: pauses last longer than this. */
  readonly electionMs: number;
  /** Number of nodes (5). */
  readonly nodes: number;
}

/** Nodes a fault makes faulty. */
export function costOf(kind: FaultKind): number {
  return kind === "split" || kind === "bridge" ? 2 : 1;
}

/** Nodes a fault names. */
export function targetCountOf(kind: FaultKind): number {
  return kind === "split" ? 2 : kind === "bridge" ? 3 : 1;
}

/** The combinations a round may start, with their weights. */
const COMBOS: Readonly<Record<string, readonly FaultKind[]>> = {
  kill: ["kill"],
  pause: ["pause"],
  isolate: ["isolate"],
  split: ["split"],
  bridge: ["bridge"],
  "kill+pause": ["kill", "pause"],
  "kill+kill": ["kill", "kill"],
  "pause+isolate": ["pause", "isolate"],
  "kill+isolate": ["kill", "isolate"],
  membership: ["membership"],
  "membership+kill": ["membership", "kill"],
  "membership+pause": ["membership", "pause"],
  "membership+isolate": ["membership", "isolate"],
  "pause-isolated": ["pause-isolated"],
  "pause-isolated+kill": ["pause-isolated", "kill"],
  "kill-receiving-snapshot": ["kill-receiving-snapshot"],
  "wiped-log": ["wiped-log"],
};
const WEIGHTS: Readonly<Record<keyof typeof COMBOS, number>> = {
  kill: 10,
  pause: 10,
  isolate: 9,
  split: 8,
  bridge: 6,
  "kill+pause": 6,
  "kill+kill": 3,
  "pause+isolate": 5,
  "kill+isolate": 4,
  membership: 6,
  "membership+kill": 3,
  "membership+pause": 3,
  "membership+isolate": 3,
  "pause-isolated": 6,
  "pause-isolated+kill": 2,
  "kill-receiving-snapshot": 4,
  "wiped-log": 4,
};

/** The shortest round, ms (a pause must outlast an election with a margin). */
export function minRoundMs(electionMs: number): number {
  return Math.max(3000, 2 * electionMs + 500);
}

function ruleFor(kind: FaultKind, slot: number, rng: SeededRng): TargetRule {
  const pick = rng.float();
  switch (kind) {
    case "kill":
    case "pause":
      return { prefer: rng.chance(0.7) ? "leader" : "any", pick };
    case "pause-isolated":
      return { prefer: rng.chance(0.8) ? "leader" : "any", pick };
    case "isolate":
      return { prefer: rng.chance(0.6) ? "leader" : "any", pick };
    case "split":
      // The leader lands in the minority most of the time: an election must happen.
      return { prefer: slot === 0 && rng.chance(0.6) ? "leader" : "follower", pick };
    case "bridge":
      return { prefer: slot === 1 && rng.chance(0.5) ? "leader" : "any", pick };
    case "membership":
    case "kill-receiving-snapshot":
    case "wiped-log":
      // Removing the leader works too (it steps down).
      return { prefer: rng.chance(0.2) ? "leader" : "follower", pick };
  }
}

/** The plan for a seed. Pure: the same options always give the same plan. */
export function planNemesis(o: PlanOptions): NemesisPlan {
  if (!Number.isSafeInteger(o.seed) || o.seed < 0) throw new Error(`bad seed ${o.seed}`);
  if (o.nodes < 5) throw new Error("the nemesis needs 5 nodes (two faulty at once)");
  const rng = new SeededRng(o.seed);
  const shortest = minRoundMs(o.electionMs);
  const rounds: PlannedRound[] = [];
  // A short calm start: the clients' first operations see a healthy cluster.
  let at = 2000;
  while (at + shortest <= o.durationMs) {
    const lengthMs = Math.min(shortest + rng.int(4000), Math.max(shortest, o.durationMs - at));
    const combo = rng.weighted(WEIGHTS);
    const kinds = COMBOS[combo]!;
    const faults: PlannedFault[] = kinds.map((kind) => {
      const startMs = rng.int(500);
      // A pause heals no sooner than 1.5 election timeouts after it starts.
      const earliestEnd =
        kind === "pause" || kind === "pause-isolated"
          ? startMs + Math.ceil(1.5 * o.electionMs)
          : startMs + 1000;
      const endMs = Math.max(earliestEnd, lengthMs - rng.int(500));
      const targets = Array.from({ length: targetCountOf(kind) }, (_, slot) =>
        ruleFor(kind, slot, rng),
      );
      return { kind, startMs, endMs: Math.min(endMs, lengthMs), targets };
    });
    const quietMs = 1000 + rng.int(2000);
    rounds.push({ index: rounds.length, atMs: at, lengthMs, quietMs, faults });
    at += lengthMs + quietMs;
  }
  return { seed: o.seed, rounds };
}

/** A one-line description of a planned fault. */
export function describePlannedFault(f: PlannedFault): string {
  const t = f.targets.map((r) => r.prefer).join(",");
  return `${f.kind}(${t}) +${f.startMs}..${f.endMs} ms`;
}

/**
 * Chooses the nodes a fault hits: for each rule in order, the leader when the rule prefers it and
 * it is eligible, else the eligible node at `pick` among those the rule allows (followers exclude
 * the leader). Nodes already chosen are not eligible again. Returns undefined when not enough
 * nodes are eligible. Pure.
 */
export function resolveTargets(
  rules: readonly TargetRule[],
  eligible: readonly number[],
  leader: number | undefined,
): number[] | undefined {
  const left = [...eligible].sort((a, b) => a - b);
  const out: number[] = [];
  for (const r of rules) {
    let choice: number | undefined;
    if (r.prefer === "leader" && leader !== undefined && left.includes(leader)) choice = leader;
    else {
      const pool = r.prefer === "any" ? left : left.filter((n) => n !== leader);
      const from = pool.length > 0 ? pool : left;
      if (from.length === 0) return undefined;
      choice = from[Math.min(from.length - 1, Math.floor(r.pick * from.length))];
    }
    if (choice === undefined) return undefined;
    out.push(choice);
    left.splice(left.indexOf(choice), 1);
  }
  return out;
}

/**
 * The symmetric blocked pairs a partition fault installs, as node -> peers it cannot reach.
 * isolate [a]: a against all; split [a, b]: {a, b} against the rest; bridge [m, x, y]: the halves
 * {x, y} and the rest minus m cannot see each other, m sees everyone.
 */
export function partitionBlocks(
  kind: "isolate" | "split" | "bridge",
  targets: readonly number[],
  nodes: number,
): Map<number, Set<number>> {
  const all = Array.from({ length: nodes }, (_, k) => k + 1);
  let a: number[];
  let b: number[];
  if (kind === "isolate" || kind === "split") {
    a = [...targets];
    b = all.filter((n) => !a.includes(n));
  } else {
    const [m, ...half] = targets;
    a = half;
    b = all.filter((n) => n !== m && !half.includes(n));
  }
  const blocks = new Map<number, Set<number>>();
  const add = (x: number, y: number): void => {
    if (!blocks.has(x)) blocks.set(x, new Set());
    blocks.get(x)!.add(y);
  };
  for (const x of a) {
    for (const y of b) {
      add(x, y);
      add(y, x);
    }
  }
  return blocks;
}

/** Merges several partitions' blocked pairs (a union). */
export function mergeBlocks(
  parts: readonly ReadonlyMap<number, ReadonlySet<number>>[],
): Map<number, Set<number>> {
  const out = new Map<number, Set<number>>();
  for (const p of parts) {
    for (const [x, ys] of p) {
      if (!out.has(x)) out.set(x, new Set());
      for (const y of ys) out.get(x)!.add(y);
    }
  }
  return out;
}
