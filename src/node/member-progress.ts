/**
 * The leader's view of its members (roles and replication progress), as it travels to another
 * node that was asked for it (listNodes on a follower). Only the leader tracks progress, so a
 * follower asks the leader over the peer connection; the answer is JSON, checked field by field
 * before use, since it comes off the network.
 */
import type { NodeId } from "../raft/types.js";
import type { Status } from "../raft/raw-node.js";
import type {
  ListMembersOptions,
  MemberInfo,
  MemberList,
  MemberSnapshotProgress,
  MembersWithProgress,
} from "./replicator-api.js";
import type { NexusLogger } from "./options.js";
import { abortable } from "./retry.js";
import type { SnapshotTransfer } from "./node-metrics.js";

/** What a leader answers: its member list with progress, at its last index and term. */
export interface MemberProgressView {
  readonly leader: NodeId;
  readonly term: number;
  readonly lastIndex: number;
  readonly joint: boolean;
  readonly members: readonly MemberInfo[];
}

/**
 * The snapshot the leader is sending to member `id`, if any: its core progress is in `snapshot`
 * state (a snapshot is due, its stream may not have started) or a stream to it is in flight.
 */
export function snapshotProgressOf(
  id: NodeId,
  pr: { readonly state: string; readonly pendingSnapshot: number },
  sending: readonly SnapshotTransfer[],
): { snapshot?: MemberSnapshotProgress } {
  const t = sending.find((x) => x.peer === id);
  if (t === undefined && pr.state !== "snapshot") return {};
  const snapshot = {
    index: t?.index ?? pr.pendingSnapshot,
    bytes: t?.bytes ?? 0,
    ...(t?.totalBytes === undefined ? {} : { totalBytes: t.totalBytes }),
  };
  return { snapshot };
}

/** The percent of a snapshot streamed so far (0 to 100), undefined while its size is unknown. */
export function snapshotPercent(s: MemberSnapshotProgress): number | undefined {
  if (s.totalBytes === undefined) return undefined;
  return Math.min(100, Math.floor((100 * s.bytes) / Math.max(1, s.totalBytes)));
}

const VERSION = 1;
const ROLES = new Set(["leader", "follower", "learner"]);

export function encodeMemberProgress(v: MemberProgressView): Uint8Array {
  return new TextEncoder().encode(JSON.stringify({ version: VERSION, ...v }));
}

const isIndex = (x: unknown): x is number => Number.isSafeInteger(x) && (x as number) >= 0;

/** Parses a leader's answer; throws an Error saying what is wrong with it. */
export function decodeMemberProgress(bytes: Uint8Array): MemberProgressView {
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder().decode(bytes));
  } catch (err) {
    throw new Error(`the leader's member list is not JSON: ${(err as Error).message}`);
  }
  const o = raw as Record<string, unknown> | null;
  if (typeof o !== "object" || o === null)
    throw new Error("the leader's member list is not an object");
  if (o["version"] !== VERSION) {
    throw new Error(`the leader's member list has version ${String(o["version"])}, not ${VERSION}`);
  }
  const { leader, term, lastIndex, joint, members } = o;
  if (typeof leader !== "string" || leader === "")
    throw new Error("the member list names no leader");
  if (!isIndex(term) || !isIndex(lastIndex))
    throw new Error("the member list's term or index is not valid");
  if (typeof joint !== "boolean" || !Array.isArray(members)) {
    throw new Error("the member list lacks joint or members");
  }
  const out: MemberInfo[] = members.map((m: unknown, i) => {
    const r = m as Record<string, unknown> | null;
    if (typeof r !== "object" || r === null) throw new Error(`member ${i} is not an object`);
    const { id, url, role, progress } = r;
    if (
      typeof id !== "string" ||
      typeof url !== "string" ||
      typeof role !== "string" ||
      !ROLES.has(role)
    ) {
      throw new Error(`member ${i} lacks a valid id, url or role`);
    }
    const base = { id, url, role: role as MemberInfo["role"] };
    if (progress === undefined) return base;
    const p = progress as Record<string, unknown> | null;
    if (
      typeof p !== "object" ||
      p === null ||
      typeof p["reachable"] !== "boolean" ||
      !isIndex(p["match"]) ||
      !isIndex(p["lag"])
    ) {
      throw new Error(`member ${i} (${id}) has invalid progress`);
    }
    const pr = { reachable: p["reachable"], match: p["match"], lag: p["lag"] };
    const s = p["snapshot"] as Record<string, unknown> | null | undefined;
    if (s === undefined) return { ...base, progress: pr };
    if (
      typeof s !== "object" ||
      s === null ||
      !isIndex(s["index"]) ||
      !isIndex(s["bytes"]) ||
      (s["totalBytes"] !== undefined && !isIndex(s["totalBytes"]))
    ) {
      throw new Error(`member ${i} (${id}) has an invalid snapshot progress`);
    }
    const snapshot = {
      index: s["index"],
      bytes: s["bytes"],
      ...(s["totalBytes"] === undefined ? {} : { totalBytes: s["totalBytes"] as number }),
    };
    return { ...base, progress: { ...pr, snapshot } };
  });
  return { leader, term, lastIndex, joint, members: out };
}

/** What the member list needs from the running node. */
export interface MemberSource {
  status(): Status;
  readonly members: ReadonlyMap<NodeId, string>;
  heardRecently(id: NodeId): boolean;
}

/** This node's member list; with progress when it leads (only the leader tracks it). */
export function memberListOf(
  node: MemberSource,
  selfId: NodeId,
  transfers: readonly SnapshotTransfer[],
): MemberList {
  const st = node.status();
  const joint = st.config.votersOutgoing.length > 0;
  const learners = new Set(st.config.learners);
  const ids = [
    ...new Set([...st.config.voters, ...st.config.learners, ...st.config.votersOutgoing]),
  ].sort();
  const sending = transfers.filter((t) => t.direction === "send");
  return {
    leader: st.softState.lead,
    joint,
    members: ids.map((id) => {
      const pr = st.progress?.get(id);
      const self = id === selfId;
      return {
        id,
        url: node.members.get(id) ?? "",
        role: learners.has(id) ? "learner" : id === st.softState.lead ? "leader" : "follower",
        ...(pr === undefined
          ? {}
          : {
              progress: {
                reachable: self || node.heardRecently(id),
                match: self ? st.lastIndex : pr.match,
                lag: self ? 0 : Math.max(0, st.lastIndex - pr.match),
                ...snapshotProgressOf(id, pr, sending),
              },
            }),
      };
    }),
  };
}

/** The member list with progress, encoded for a peer that asks; undefined unless this node leads. */
export function progressViewOf(
  node: MemberSource,
  selfId: NodeId,
  list: MemberList,
): Uint8Array | undefined {
  const st = node.status();
  if (st.progress === undefined || st.softState.lead !== selfId) return undefined;
  return encodeMemberProgress({
    leader: selfId,
    term: st.hardState.term,
    lastIndex: st.lastIndex,
    joint: list.joint,
    members: list.members,
  });
}

/**
 * The members with the leader's progress: this node's own list when it leads, else the leader's
 * answer over the peer transport (only from the leader this node follows, in its term or later);
 * without one, this node's list without progress.
 */
export async function membersWithProgress(
  local: MemberList,
  st: Status,
  selfId: NodeId,
  transport: { requestProgress(peer: NodeId, timeoutMs: number): Promise<Uint8Array> } | undefined,
  opts: ListMembersOptions,
  logger: NexusLogger,
): Promise<MembersWithProgress> {
  if (st.progress !== undefined && local.leader === selfId) {
    return { ...local, fromLeader: true, lastIndex: st.lastIndex };
  }
  const own = { ...local, fromLeader: false, lastIndex: -1 };
  if (local.leader === "" || transport === undefined) return own;
  try {
    const view = decodeMemberProgress(
      await abortable(transport.requestProgress(local.leader, opts.timeoutMs ?? 1000), opts.signal),
    );
    if (view.leader !== local.leader || view.term < st.hardState.term) return own;
    return {
      leader: view.leader,
      members: view.members,
      joint: view.joint,
      fromLeader: true,
      lastIndex: view.lastIndex,
    };
  } catch (err) {
    if (opts.signal?.aborted === true) throw err;
    logger.warn(
      { leader: local.leader, error: (err as Error).message },
      "could not get the members' progress from the leader",
    );
    return own;
  }
}
