/**
 * Raft timing from measured round trips (`-nexus-heartbeat-ms auto`, `heartbeatTickMs: "auto"`),
 * and the lease bound that stays safe when members' timings differ.
 *
 * At start, before the node runs, the peers of the cluster are timed with HTTP/2 PINGs (three
 * each, the median kept) for up to `AUTO_PROBE_MS`. The heartbeat is the farthest peer's round
 * trip, at least `AUTO_HEARTBEAT_FLOOR_MS`; the election timeout is `AUTO_ELECTION_TICKS`
 * heartbeats, at least the configured election timeout (a floor too). A heartbeat of one round
 * trip keeps a follower's view of the leader about one round trip old; ten of them before an
 * election ride out jitter and stalls of several round trips without a spurious election. Peers
 * that do not answer in time (not started yet) are left out; with none answering the floors are
 * used. The timing holds until the node restarts.
 *
 * Leases: a leader's lease rests on every voter of the quorum that confirmed a round refusing
 * votes for its own election timeout less one tick after hearing it (leader-lease.ts). With
 * measured timings the voters' timeouts differ, so the lease must be no longer than the SHORTEST
 * of them: every node announces its timing to its peers (the transport's `nexus-timing` header),
 * and the leader bounds its lease by the minimum over the voters, using its own timing for a
 * voter that has not announced one.
 */
import type { NodeId } from "../raft/types.js";
import { leaseDurationMs } from "./leader-lease.js";
import type { NormalizedOptions } from "./options.js";

/** The lowest heartbeat auto timing chooses, ms (the default heartbeat). */
export const AUTO_HEARTBEAT_FLOOR_MS = 100;
/** Election timeout in heartbeats under auto timing. */
export const AUTO_ELECTION_TICKS = 10;
/** How long a start spends timing its peers at most, ms. */
export const AUTO_PROBE_MS = 3000;
/** PINGs per peer; the median is kept (one slow PING does not set the timing). */
const PINGS_PER_PEER = 3;

/** A node's Raft timing: heartbeat tick and election timeout. */
export interface Timing {
  readonly heartbeatTickMs: number;
  readonly electionTickMs: number;
  /** electionTickMs / heartbeatTickMs. */
  readonly electionTick: number;
}

/**
 * The timing for measured round trips `rttsMs` (one per peer, ms): heartbeat = the largest,
 * rounded up, at least `floorMs`; election = AUTO_ELECTION_TICKS heartbeats, at least
 * `electionFloorMs` (rounded up to whole heartbeats).
 */
export function deriveTiming(
  rttsMs: readonly number[],
  floorMs = AUTO_HEARTBEAT_FLOOR_MS,
  electionFloorMs = 0,
): Timing {
  const rtt = rttsMs.reduce((a, b) => Math.max(a, b), 0);
  const heartbeatTickMs = Math.max(floorMs, Math.ceil(rtt));
  const electionTick = Math.max(AUTO_ELECTION_TICKS, Math.ceil(electionFloorMs / heartbeatTickMs));
  return { heartbeatTickMs, electionTick, electionTickMs: electionTick * heartbeatTickMs };
}

/** What timing peers needs from the transport. */
export interface RttProbe {
  measureRtt(peer: NodeId, timeoutMs: number): Promise<number | undefined>;
}

/**
 * Times each peer (the median of PINGS_PER_PEER round trips), retrying a peer that does not
 * answer until `windowMs` has passed. Resolves with the medians of the peers that answered.
 */
export async function measurePeerRtts(
  probe: RttProbe,
  peers: readonly NodeId[],
  windowMs = AUTO_PROBE_MS,
): Promise<Map<NodeId, number>> {
  const deadline = performance.now() + windowMs;
  const out = new Map<NodeId, number>();
  await Promise.all(
    peers.map(async (peer) => {
      const samples: number[] = [];
      while (samples.length < PINGS_PER_PEER) {
        const left = deadline - performance.now();
        if (left <= 0) return;
        const ms = await probe.measureRtt(peer, left);
        if (ms !== undefined) samples.push(ms);
        // Not answering yet (not started, connection refused): try again shortly.
        else await new Promise((r) => setTimeout(r, Math.min(100, Math.max(0, left))));
      }
      samples.sort((a, b) => a - b);
      out.set(peer, samples[Math.floor(samples.length / 2)]!);
    }),
  );
  return out;
}

/**
 * The longest lease that is safe for voters `voters`: the shortest vote hold-off among them
 * (leaseDurationMs of each one's timing, this node's own for those that announced none, and for
 * itself), reduced by the drift margin.
 */
export function leaseBoundMs(
  voters: Iterable<NodeId>,
  self: NodeId,
  own: Pick<Timing, "heartbeatTickMs" | "electionTick">,
  timingOf: (id: NodeId) => Pick<Timing, "heartbeatTickMs" | "electionTick"> | undefined,
  driftMargin: number,
): number {
  let bound = leaseDurationMs(own.heartbeatTickMs, own.electionTick, driftMargin);
  for (const id of voters) {
    if (id === self) continue;
    const t = timingOf(id) ?? own;
    bound = Math.min(bound, leaseDurationMs(t.heartbeatTickMs, t.electionTick, driftMargin));
  }
  return bound;
}

/**
 * Options with the timing measured now when `o.autoTiming` (the peers of `peers` timed through
 * `probe`, logged); `o` itself otherwise.
 */
export async function resolveTiming(
  o: NormalizedOptions,
  probe: RttProbe,
  peers: readonly NodeId[],
): Promise<NormalizedOptions> {
  if (!o.autoTiming) return o;
  const rtts = await measurePeerRtts(probe, peers);
  const t = deriveTiming([...rtts.values()], AUTO_HEARTBEAT_FLOOR_MS, o.electionTickMs);
  o.logger.info(
    {
      heartbeatMs: t.heartbeatTickMs,
      electionMs: t.electionTickMs,
      peersTimed: rtts.size,
      peers: peers.length,
      rttMs: Object.fromEntries([...rtts].map(([id, ms]) => [id, Math.round(ms * 10) / 10])),
    },
    rtts.size === 0 && peers.length > 0
      ? "auto timing: no peer answered in time; using the floors"
      : "auto timing: heartbeat and election timeout chosen from the peers' round trips",
  );
  return Object.freeze({ ...o, ...t });
}
