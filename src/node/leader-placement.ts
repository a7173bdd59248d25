/**
 * Leader placement by priority (`-nexus-leader-priority`): across regions the leader should sit
 * where the writers are. Each node announces its priority to its peers (the transport's
 * `nexus-priority` header); the leader checks now and then whether a voter with a strictly higher
 * priority is reachable and caught up, and only once it has stayed so for several checks in a row
 * hands leadership to the highest of them.
 *
 * Why it does not flap: leadership only moves up in priority, so two nodes never hand it back and
 * forth; a higher-priority node that comes and goes must stay healthy for `stableChecks` checks
 * (several election timeouts) before it is chosen; after a hand-over that did not happen, the
 * leader waits `backoffChecks` checks before trying again. Equal priorities (the default, 0
 * everywhere) never move leadership.
 */
import type { NodeId } from "../raft/types.js";
import type { MemberInfo } from "./replicator-api.js";

/** The highest priority a node may have; 0 is the default. */
export const MAX_LEADER_PRIORITY = 1000;

export interface PlacementView {
  /** Whether this node leads now. */
  isLeader(): boolean;
  /** The members with the leader's progress (only the leader's view has it). */
  members(): readonly MemberInfo[];
  /** The priority a peer announced, if it did. */
  priorityOf(peer: NodeId): number | undefined;
  /** Starts handing leadership to `to` (the core's leadership transfer). */
  transfer(to: NodeId): void;
}

export interface PlacementOptions {
  readonly selfId: NodeId;
  readonly selfPriority: number;
  /** A voter lagging more entries than this is not caught up. Default 100. */
  readonly maxLagEntries?: number;
  /** Checks in a row a candidate must pass before leadership moves to it. Default 3. */
  readonly stableChecks?: number;
  /** Checks to wait after a hand-over before another. Default 5. */
  readonly backoffChecks?: number;
  readonly log?: (fields: Record<string, unknown>, msg: string) => void;
}

/** Checks that a priority (from a flag, an option or the network) is an integer in range. */
export function isLeaderPriority(p: unknown): p is number {
  return Number.isSafeInteger(p) && (p as number) >= 0 && (p as number) <= MAX_LEADER_PRIORITY;
}

export class LeaderPlacement {
  private candidate: NodeId | undefined;
  private streak = 0;
  private waitChecks = 0;
  /** Hand-overs started so far. */
  transfers = 0;

  constructor(
    private readonly view: PlacementView,
    private readonly o: PlacementOptions,
  ) {}

  /** One check (the caller runs it every election timeout or so). */
  check(): void {
    if (!this.view.isLeader()) {
      this.candidate = undefined;
      this.streak = 0;
      return;
    }
    if (this.waitChecks > 0) {
      this.waitChecks--;
      return;
    }
    const best = this.best();
    if (best === undefined || best !== this.candidate) {
      this.candidate = best;
      this.streak = best === undefined ? 0 : 1;
    } else {
      this.streak++;
    }
    if (best === undefined || this.streak < (this.o.stableChecks ?? 3)) return;
    this.o.log?.(
      {
        to: best,
        toPriority: this.view.priorityOf(best),
        priority: this.o.selfPriority,
      },
      "handing leadership to a caught-up voter with a higher priority",
    );
    this.transfers++;
    this.candidate = undefined;
    this.streak = 0;
    this.waitChecks = this.o.backoffChecks ?? 5;
    this.view.transfer(best);
  }

  /** The reachable, caught-up voter with the highest priority above ours, if any. */
  private best(): NodeId | undefined {
    const maxLag = this.o.maxLagEntries ?? 100;
    let best: { id: NodeId; priority: number } | undefined;
    for (const m of this.view.members()) {
      if (m.id === this.o.selfId || m.role !== "follower") continue;
      const p = this.view.priorityOf(m.id);
      if (p === undefined || p <= this.o.selfPriority) continue;
      if (m.progress === undefined || !m.progress.reachable || m.progress.lag > maxLag) continue;
      if (best === undefined || p > best.priority || (p === best.priority && m.id < best.id)) {
        best = { id: m.id, priority: p };
      }
    }
    return best?.id;
  }
}

/** Runs the placement check every election timeout while the node runs. */
export function startLeaderPlacement(
  o: {
    readonly nodeId: NodeId;
    readonly leaderPriority: number;
    readonly electionTickMs: number;
    readonly logger: { info(fields: Record<string, unknown>, msg: string): void };
  },
  node: { leader(): NodeId; transferLeadership(to: NodeId): void },
  peers: { priorityOf(peer: NodeId): number | undefined },
  members: () => readonly MemberInfo[],
): { stop(): void } {
  const placement = new LeaderPlacement(
    {
      isLeader: () => node.leader() === o.nodeId,
      members,
      priorityOf: (peer) => peers.priorityOf(peer),
      transfer: (to) => node.transferLeadership(to),
    },
    {
      selfId: o.nodeId,
      selfPriority: o.leaderPriority,
      log: (fields, msg) => o.logger.info(fields, msg),
    },
  );
  const timer = setInterval(() => {
    try {
      placement.check();
    } catch {
      // Stopping, or the membership changed under the check: the next one sees the new state.
    }
  }, o.electionTickMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
