/**
 * What /status, /readyz and the status page say about the node: its view (id, URL, role, leader,
 * term, indexes), the members with the leader's progress, peers, the last consistency check,
 * snapshot streams in flight, the version and uptime; and whether it is ready, with the reason.
 */
import type { Replicator, ReplicatorStatus } from "../node/replicator.js";
import { snapshotPercent } from "../node/member-progress.js";
import { longTaskFields } from "../node/progress-board.js";
import type { OpsMetrics } from "./metrics.js";

/** The default apply-lag bound of readiness, entries. */
export const DEFAULT_READY_MAX_LAG = 1000;

/** What makes a node ready (besides a known leader, a healthy store and no divergence). */
export interface ReadinessOptions {
  /** Most committed entries not yet applied for the node to count as ready. Default 1000. */
  readonly maxApplyLagEntries?: number;
}

export interface Readiness {
  readonly ready: boolean;
  /** Why not ("" when ready). */
  readonly reason: string;
}

/** Whether the node can serve: a leader, not diverged, its store up, applying within the bound. */
export function readinessOf(st: ReplicatorStatus | undefined, o: ReadinessOptions = {}): Readiness {
  if (st === undefined) return { ready: false, reason: "the node is not running" };
  if (st.diverged !== undefined) {
    return {
      ready: false,
      reason: `diverged from the other replicas at the consistency check of index ${st.diverged.index}: ${st.diverged.reason}`,
    };
  }
  if (st.leader === "") {
    return {
      ready: false,
      reason: "no leader is known (an election is in progress or there is no quorum)",
    };
  }
  if (!st.serving) return { ready: false, reason: st.notServingReason };
  const bound = o.maxApplyLagEntries ?? DEFAULT_READY_MAX_LAG;
  const lag = st.commit - st.applied;
  if (lag > bound) {
    return {
      ready: false,
      reason: `applying lags ${lag} entries behind the commit index (more than ${bound})`,
    };
  }
  return { ready: true, reason: "" };
}

/** The status of a replicator that may have stopped. */
export function statusOf(rep: Replicator): ReplicatorStatus | undefined {
  try {
    return rep.status();
  } catch {
    return undefined;
  }
}

export interface StatusContext {
  readonly rep: Replicator;
  readonly metrics: OpsMetrics;
  readonly version: string;
  /** When the process started, ms since the epoch. */
  readonly startedAt: number;
  readonly readiness: ReadinessOptions;
  /** The gRPC address clients use, for the page. */
  readonly grpcAddress: string;
}

/** The JSON of /status. */
export async function nodeStatus(c: StatusContext): Promise<Record<string, unknown>> {
  const st = statusOf(c.rep);
  const base = {
    version: c.version,
    startedAt: new Date(c.startedAt).toISOString(),
    uptimeSeconds: Math.round((Date.now() - c.startedAt) / 1000),
    grpc: c.grpcAddress,
  };
  if (st === undefined)
    return { ...base, running: false, ready: false, reason: "the node is not running" };
  const readiness = readinessOf(st, c.readiness);
  let members: Awaited<ReturnType<Replicator["listMembersWithProgress"]>> | undefined;
  try {
    members = await c.rep.listMembersWithProgress({ timeoutMs: 500 });
  } catch {
    members = undefined;
  }
  const view = c.metrics.nodeView();
  const peers = view?.peers() ?? {};
  const check = view?.latestCheck();
  const now = Date.now();
  return {
    ...base,
    running: true,
    id: st.id,
    url: st.url,
    role: st.role,
    leader: st.leader,
    leaderUrl: members?.members.find((m) => m.id === st.leader)?.url ?? "",
    term: st.term,
    commit: st.commit,
    applied: st.applied,
    lastIndex: st.lastIndex,
    applyLag: Math.max(0, st.commit - st.applied),
    serving: st.serving,
    ready: readiness.ready,
    reason: readiness.reason,
    readyMaxLag: c.readiness.maxApplyLagEntries ?? DEFAULT_READY_MAX_LAG,
    diverged: st.diverged ?? null,
    membersFromLeader: members?.fromLeader ?? false,
    leaderLastIndex: members?.lastIndex ?? -1,
    joint: members?.joint ?? false,
    members: (members?.members ?? []).map((m) => {
      const p = peers[m.id];
      return {
        id: m.id,
        url: m.url,
        role: m.role,
        self: m.id === st.id,
        reachable: m.progress?.reachable ?? null,
        match: m.progress?.match ?? null,
        lag: m.progress?.lag ?? null,
        snapshot:
          m.progress?.snapshot === undefined
            ? null
            : {
                ...m.progress.snapshot,
                totalBytes: m.progress.snapshot.totalBytes ?? null,
                percent: snapshotPercent(m.progress.snapshot) ?? null,
              },
        rttMs: p === undefined || p.rttMs < 0 ? null : Math.round(p.rttMs * 100) / 100,
        queued: p?.queued ?? null,
      };
    }),
    lastCheck:
      check === undefined
        ? null
        : {
            index: check.index,
            complete: check.complete,
            members: check.members.map((m) => ({
              id: m.id,
              url: m.url,
              verdict: m.verdict,
              reason: m.reason,
            })),
          },
    snapshots: (view?.transfers() ?? []).map((t) => {
      const secs = Math.max(0.001, (now - t.startedAt) / 1000);
      return {
        direction: t.direction,
        peer: t.peer,
        index: t.index,
        bytes: t.bytes,
        totalBytes: t.totalBytes ?? null,
        percent:
          t.totalBytes === undefined
            ? null
            : Math.round((100 * t.bytes) / Math.max(1, t.totalBytes)),
        bytesPerSecond: Math.round(t.bytes / secs),
        seconds: Math.round(secs * 10) / 10,
      };
    }),
    tasks: (view?.longTasks() ?? []).map((t) => ({ kind: t.kind, ...longTaskFields(t, now) })),
    leaderChanges: c.metrics.recentLeaderChanges(),
  };
}
