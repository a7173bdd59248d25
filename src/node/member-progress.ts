/**
 * The leader's view of its members (roles and replication progress), as it travels to another
 * node that was asked for it (listNodes on a follower). Only the leader tracks progress, so a
 * follower asks the leader over the peer connection; the answer is JSON, checked field by field
 * before use, since it comes off the network.
 */
import type { NodeId } from "../raft/types.js";
import type { MemberInfo, MemberSnapshotProgress } from "./replicator.js";
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
