/**
 * The leader's log of members catching up: a member that lags more than `minLagEntries` behind
 * the leader's last index and is gaining on it is logged at info at most once a sample (the
 * replicator samples every 5 s) with its match, lag, rate and time left, and once more when it
 * has caught up. A member that does not move (stopped, cut off) is not logged again: the peer
 * warnings cover it. Members receiving a snapshot are left to the snapshot's own progress log.
 */
import type { NodeId } from "../raft/types.js";
import type { MemberInfo } from "./replicator-api.js";
import type { NexusLogger } from "./options.js";

interface Seen {
  readonly since: number;
  at: number;
  match: number;
}

export class CatchUpLog {
  private readonly behind = new Map<NodeId, Seen>();

  constructor(
    private readonly logger: NexusLogger,
    private readonly minLagEntries = 1000,
  ) {}

  /** One look at the leader's members (listMembers() on the leader) at time `now` (ms). */
  sample(self: NodeId, members: readonly MemberInfo[], now: number): void {
    const present = new Set<NodeId>();
    for (const m of members) {
      const p = m.progress;
      if (m.id === self || p === undefined) continue;
      present.add(m.id);
      const seen = this.behind.get(m.id);
      if (p.lag <= this.minLagEntries) {
        if (seen !== undefined) {
          this.behind.delete(m.id);
          this.logger.info(
            {
              member: m.id,
              url: m.url,
              role: m.role,
              match: p.match,
              lag: p.lag,
              seconds: Math.round((now - seen.since) / 100) / 10,
            },
            "member caught up",
          );
        }
        continue;
      }
      if (seen === undefined) {
        this.behind.set(m.id, { since: now, at: now, match: p.match });
        continue;
      }
      const gained = p.match - seen.match;
      const rate = now > seen.at ? (gained * 1000) / (now - seen.at) : 0;
      seen.at = now;
      seen.match = p.match;
      if (gained <= 0 || p.snapshot !== undefined || !p.reachable) continue;
      this.logger.info(
        {
          member: m.id,
          url: m.url,
          role: m.role,
          match: p.match,
          lag: p.lag,
          entriesPerSecond: Math.round(rate),
          secondsLeft: rate > 0 ? Math.round(p.lag / rate) : null,
        },
        "member catching up",
      );
    }
    for (const id of [...this.behind.keys()]) if (!present.has(id)) this.behind.delete(id);
  }
}
