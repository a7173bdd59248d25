/**
 * Membership policy: the checks a membership change must pass before it is proposed, and the
 * choice of a voter to hand leadership to. Pure decisions over a snapshot of what this node
 * knows (its configuration, the leader's progress when it leads, who answered recently); the
 * caller gathers the view and does the I/O (probing a URL, proposing the change).
 *
 * Every refusal is a NexusError saying what was wrong and that nothing changed:
 * MEMBERSHIP_REFUSED, or NOT_LEADER (with the leader's URL) when only the leader can decide.
 */
import { NexusError, NotLeaderError } from "../errors/index.js";
import type { NodeId } from "../raft/types.js";

/** What this node knows about the membership, as the policy reads it. */
export interface MembershipView {
  /** This node. */
  readonly self: NodeId;
  /** The leader this node follows ("" for none). */
  readonly leader: NodeId;
  /** The leader's URL as this node knows it ("" when unknown or no leader). */
  readonly leaderUrl: string;
  /** The last index in this node's log. */
  readonly lastIndex: number;
  readonly config: {
    readonly voters: readonly NodeId[];
    readonly learners: readonly NodeId[];
    readonly votersOutgoing: readonly NodeId[];
  };
  /** Each member's replication progress: only the leader tracks it (undefined elsewhere). */
  readonly progress: ReadonlyMap<NodeId, { readonly match: number }> | undefined;
  /** Whether the member was heard from within the last election timeout. */
  heardRecently(id: NodeId): boolean;
  /** A member as people read it: `url (id)`, or the id alone when its URL is unknown. */
  describe(id: NodeId): string;
}

/** Default for maxLagEntries: how far a learner may lag and still be promoted. */
export const DEFAULT_MAX_LAG_ENTRIES = 1000;

/** The NOT_LEADER error for a decision only the leader can take, naming the leader's URL. */
export function notLeader(view: MembershipView, what: string): NotLeaderError {
  const hint =
    view.leader === ""
      ? "no leader is known now"
      : `the leader is ${view.leaderUrl === "" ? view.leader : view.leaderUrl}`;
  return new NotLeaderError(
    `${what} (${hint})`,
    view.leaderUrl === "" ? undefined : view.leaderUrl,
  );
}

/**
 * The voter with the highest match index among `candidates` (default: every voter but this node),
 * ties broken by the smaller id so the choice is the same on every run. `eligible` filters
 * candidates (e.g. only those that answer). Undefined when no progress is known (not the leader)
 * or no candidate is eligible.
 */
export function mostUpToDateVoter(
  view: Pick<MembershipView, "self" | "config" | "progress">,
  eligible: (id: NodeId) => boolean = () => true,
): NodeId | undefined {
  if (view.progress === undefined) return undefined;
  let best: { id: NodeId; match: number } | undefined;
  for (const id of [...view.config.voters].sort()) {
    if (id === view.self || !eligible(id)) continue;
    const match = view.progress.get(id)?.match ?? 0;
    if (best === undefined || match > best.match) best = { id, match };
  }
  return best?.id;
}

/** Refuses a change while a joint configuration is not left yet. */
export function checkNoChangeInProgress(view: Pick<MembershipView, "config">): void {
  if (view.config.votersOutgoing.length > 0) {
    throw new NexusError(
      "MEMBERSHIP_REFUSED",
      "a joint membership change is in progress (it is left automatically once committed); " +
        "retry when listNodes shows it finished. Nothing changed",
    );
  }
}

/** maxLagEntries validated (INVALID_ARGUMENT), defaulting to DEFAULT_MAX_LAG_ENTRIES. */
export function maxLagOf(maxLagEntries: number | undefined): number {
  const max = maxLagEntries ?? DEFAULT_MAX_LAG_ENTRIES;
  if (!Number.isSafeInteger(max) || max < 0) {
    throw new NexusError("INVALID_ARGUMENT", `maxLagEntries must be an integer >= 0, got ${max}`);
  }
  return max;
}

/**
 * Refuses to promote learner `id` (at `url`) unless the leader hears from it and it lags at most
 * `maxLagEntries` (default 1000) behind the leader's last index. NOT_LEADER off the leader: only
 * the leader knows a member's progress.
 */
export function checkCaughtUp(
  view: MembershipView,
  id: NodeId,
  url: string,
  maxLagEntries: number | undefined,
): void {
  if (view.progress === undefined) {
    throw notLeader(
      view,
      `only the leader knows whether ${url} has caught up; send the promotion to the leader`,
    );
  }
  const max = maxLagOf(maxLagEntries);
  const pr = view.progress.get(id);
  const lag = pr === undefined ? Number.POSITIVE_INFINITY : Math.max(0, view.lastIndex - pr.match);
  const silent = pr === undefined || !view.heardRecently(id);
  if (silent || lag > max) {
    throw new NexusError(
      "MEMBERSHIP_REFUSED",
      `${url} ${silent ? "does not answer the leader and " : ""}is ${Number.isFinite(lag) ? `${lag} entries` : "too far"} ` +
        `behind the leader (at most ${max} allowed); wait for it to catch up (listNodes shows its lag), then promote it. Nothing changed`,
    );
  }
}

/** Whether a voter answers, as checkQuorumAfter decides it off the leader: probe its URL. */
export type ProbeMember = (id: NodeId) => Promise<boolean>;

/** The voters among `voters` that would not answer, per the rules of checkQuorumAfter. */
export async function silentVoters(
  view: MembershipView,
  voters: ReadonlySet<NodeId>,
  fresh: ReadonlySet<NodeId>,
  probe: ProbeMember,
): Promise<NodeId[]> {
  const answers = async (id: NodeId): Promise<boolean> => {
    if (id === view.self || fresh.has(id)) return true;
    if (view.progress !== undefined) return view.progress.has(id) && view.heardRecently(id);
    if (id === view.leader) return true;
    return probe(id);
  };
  const ids = [...voters];
  const ok = await Promise.all(ids.map(answers));
  return ids.filter((_, i) => !ok[i]);
}

/**
 * Refuses a change after which the voters that answer would not form a quorum: the cluster
 * could then commit nothing, not even the change back. On the leader "answers" means it heard
 * from the voter within the last election timeout; elsewhere, where no progress is known, each
 * voter is probed (`probe`). This node, the leader it follows, and `fresh` (new members whose
 * URL was just probed) count as answering. MEMBERSHIP_REFUSED names the silent voters.
 */
export async function checkQuorumAfter(
  view: MembershipView,
  voters: ReadonlySet<NodeId>,
  fresh: ReadonlySet<NodeId>,
  probe: ProbeMember,
): Promise<void> {
  const silent = await silentVoters(view, voters, fresh, probe);
  const total = voters.size;
  const reachable = total - silent.length;
  const need = Math.floor(total / 2) + 1;
  if (reachable < need) {
    throw new NexusError(
      "MEMBERSHIP_REFUSED",
      `after this change only ${reachable} of ${total} voters would answer, fewer than the ${need} a quorum needs ` +
        `(not answering: ${silent.map((id) => view.describe(id)).join(", ")}); ` +
        "the cluster could not commit anything after it; bring members back first. Nothing changed",
    );
  }
}

/**
 * The voter leadership goes to when none is named: the most up-to-date other voter that answers.
 * NOT_LEADER off the leader (only it knows progress); MEMBERSHIP_REFUSED when none answers.
 */
export function chooseTransferTarget(view: MembershipView): NodeId {
  if (view.progress === undefined) {
    throw notLeader(
      view,
      "choosing the most up-to-date voter needs the leader; ask the leader or name a node",
    );
  }
  const target = mostUpToDateVoter(view, (id) => view.heardRecently(id));
  if (target === undefined) {
    throw new NexusError(
      "MEMBERSHIP_REFUSED",
      "there is no other voter that answers to hand leadership to; nothing changed",
    );
  }
  return target;
}

/**
 * Refuses to hand leadership to `target` (at `url`): a learner, a non-member, or (on the leader)
 * a voter that does not answer it.
 */
export function checkTransferTarget(view: MembershipView, target: NodeId, url: string): void {
  if (!view.config.voters.includes(target)) {
    throw new NexusError(
      "MEMBERSHIP_REFUSED",
      `${url} (${target}) ` +
        (view.config.learners.includes(target)
          ? "is a learner; only a voter can lead (promote it first)"
          : "is not a member; only a voter can lead") +
        "; nothing changed",
    );
  }
  const known = view.progress?.get(target) !== undefined;
  if (target !== view.self && known && !view.heardRecently(target)) {
    throw new NexusError(
      "MEMBERSHIP_REFUSED",
      `${url} (${target}) does not answer the leader; it cannot take over now. Nothing changed`,
    );
  }
}

/** One member change as the node proposes it. */
export interface PlannedChange {
  readonly type: "add-node" | "remove-node";
  readonly nodeId: NodeId;
  readonly url: string;
}

/** A joint change checked against the configuration: the changes and the voters after it. */
export interface ChangePlan {
  readonly changes: readonly PlannedChange[];
  readonly votersAfter: ReadonlySet<NodeId>;
}

/**
 * Checks a set of changes made at once (`add` and `remove`, each `{ id, url }`): an added node
 * must not be a voter already, a removed one must be a member, no node named twice, at least one
 * change, and at least one voter left. INVALID_ARGUMENT or MEMBERSHIP_REFUSED otherwise.
 */
export function planChanges(
  view: Pick<MembershipView, "config">,
  add: readonly { id: NodeId; url: string }[],
  remove: readonly { id: NodeId; url: string }[],
): ChangePlan {
  const { voters, learners } = view.config;
  const changes: PlannedChange[] = [];
  const seen = new Set<NodeId>();
  const named = (id: NodeId, url: string): void => {
    if (seen.has(id)) throw new NexusError("INVALID_ARGUMENT", `${url} is named twice`);
    seen.add(id);
  };
  for (const { id, url } of add) {
    if (voters.includes(id)) {
      throw new NexusError(
        "MEMBERSHIP_REFUSED",
        `${url} (${id}) is already a voter; nothing changed`,
      );
    }
    named(id, url);
    changes.push({ type: "add-node", nodeId: id, url });
  }
  for (const { id, url } of remove) {
    if (!voters.includes(id) && !learners.includes(id)) {
      throw new NexusError("MEMBERSHIP_REFUSED", `${url} (${id}) is not a member; nothing changed`);
    }
    named(id, url);
    changes.push({ type: "remove-node", nodeId: id, url });
  }
  if (changes.length === 0) throw new NexusError("INVALID_ARGUMENT", "no membership change given");
  checkNoChangeInProgress(view);
  const votersAfter = new Set(voters);
  for (const c of changes) {
    if (c.type === "add-node") votersAfter.add(c.nodeId);
    else votersAfter.delete(c.nodeId);
  }
  if (votersAfter.size === 0) {
    throw new NexusError("MEMBERSHIP_REFUSED", "the change would leave no voter; nothing changed");
  }
  return { changes, votersAfter };
}

/** Refuses to add `id` (at `url`) when it is a member already. */
export function checkAddable(
  view: Pick<MembershipView, "config">,
  id: NodeId,
  url: string,
  learner: boolean,
): void {
  const { voters, votersOutgoing, learners } = view.config;
  if (voters.includes(id) || votersOutgoing.includes(id)) {
    throw new NexusError(
      "MEMBERSHIP_REFUSED",
      `${url} (${id}) is already a member; nothing changed`,
    );
  }
  if (learners.includes(id)) {
    throw new NexusError(
      "MEMBERSHIP_REFUSED",
      `${url} (${id}) is already a member (a learner` +
        (learner ? ")" : "; make it a voter with promoteNode)") +
        "; nothing changed",
    );
  }
  checkNoChangeInProgress(view);
}

/** Refuses to remove `id` (at `url`): not a member, or the last voter. */
export function checkRemovable(
  view: Pick<MembershipView, "config">,
  id: NodeId,
  url: string,
): void {
  const { voters, learners } = view.config;
  if (!voters.includes(id) && !learners.includes(id)) {
    throw new NexusError("MEMBERSHIP_REFUSED", `${url} (${id}) is not a member; nothing changed`);
  }
  if (voters.length === 1 && voters[0] === id) {
    throw new NexusError("MEMBERSHIP_REFUSED", "cannot remove the last voter; nothing changed");
  }
  checkNoChangeInProgress(view);
}

/** Refuses to promote `id` (at `url`) unless it is a learner. */
export function checkPromotable(
  view: Pick<MembershipView, "config">,
  id: NodeId,
  url: string,
): void {
  if (!view.config.learners.includes(id)) {
    throw new NexusError(
      "MEMBERSHIP_REFUSED",
      `${url} (${id}) is not a learner` +
        (view.config.voters.includes(id) ? " (it is already a voter)" : " (it is not a member)") +
        "; nothing changed",
    );
  }
  checkNoChangeInProgress(view);
}
