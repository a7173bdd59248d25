/**
 * The member directory: the members' URLs as applied conf changes and installed snapshots name
 * them, the configurations by the index where they took effect (a snapshot or backup is labelled
 * with the one in effect at its index), the transport's peers kept in step with the members, and
 * when each peer was last heard from.
 */
import type { ConfChange, ConfState, NodeId } from "../raft/types.js";
import type { NexusLogger } from "./options.js";

const URL_CONTEXT = new TextEncoder();

/** The URL context of a bootstrap conf change naming one member (the original's form). */
export function urlContext(url: string): Uint8Array {
  return URL_CONTEXT.encode(url);
}

/**
 * The context of a proposed conf change: one URL for a single change (the original's form), or
 * a JSON object of id to URL (of the members added) for several. urlsOf reads it back.
 */
export function confChangeContext(
  changes: readonly { type: ConfChange["changes"][number]["type"]; nodeId: NodeId; url: string }[],
): Uint8Array {
  // One URL as the context (the original's form); a JSON map of id to URL for several.
  const adds = changes.filter((c) => c.type !== "remove-node");
  return changes.length === 1
    ? URL_CONTEXT.encode(changes[0]!.url)
    : URL_CONTEXT.encode(JSON.stringify(Object.fromEntries(adds.map((c) => [c.nodeId, c.url]))));
}

/**
 * The URLs a conf change's context names: one URL for a single change (the original's form), or
 * a JSON object of id to URL for several.
 */
export function urlsOf(
  context: Uint8Array,
  changes: readonly { nodeId: NodeId }[],
): Map<NodeId, string> {
  const text = new TextDecoder().decode(context);
  const out = new Map<NodeId, string>();
  if (text === "") return out;
  if (text.startsWith("{")) {
    try {
      for (const [id, url] of Object.entries(JSON.parse(text) as Record<string, unknown>)) {
        if (typeof url === "string") out.set(id, url);
      }
    } catch {
      // Not ours: no URLs.
    }
    return out;
  }
  if (changes.length === 1) out.set(changes[0]!.nodeId, text);
  return out;
}

/** A configuration and the member URLs in effect from `index` on. */
export interface ConfAt {
  readonly index: number;
  readonly cs: ConfState;
  readonly members: Record<NodeId, string>;
}

/** The transport's side of the directory: its peers follow the members. */
export interface PeerSet {
  addPeer(id: NodeId, url: string): void;
  removePeer(id: NodeId): void;
}

export class MemberDirectory {
  /** Member URLs by id, from applied conf changes and installed snapshots. */
  readonly urls = new Map<NodeId, string>();
  /** Configurations and member URLs by the index where they took effect (for snapshots). */
  private history: ConfAt[] = [];
  /** When each peer was last heard from (monotonic ms): reachability for listMembers. */
  private readonly heardAt = new Map<NodeId, number>();

  constructor(
    private readonly self: NodeId,
    private readonly peers: PeerSet,
    private readonly logger: NexusLogger,
  ) {}

  /**
   * Applies a committed conf change (at `index`, giving configuration `cs`): members it adds
   * with a URL join (with their transport peers), members no configuration names any more leave.
   */
  applyConfChange(index: number, cc: ConfChange, cs: ConfState): void {
    const urls = urlsOf(cc.context, cc.changes);
    for (const ch of cc.changes) {
      if (ch.type === "remove-node") continue;
      const url = urls.get(ch.nodeId);
      if (url === undefined) continue;
      this.urls.set(ch.nodeId, url);
      if (ch.nodeId !== this.self) this.peers.addPeer(ch.nodeId, url);
    }
    // A member leaves when no configuration names it any more: a voter removed by a joint
    // change still votes in the outgoing half until the joint configuration is left.
    const named = new Set([...cs.voters, ...cs.learners, ...cs.votersOutgoing, ...cs.learnersNext]);
    for (const id of [...this.urls.keys()]) {
      if (named.has(id)) continue;
      this.urls.delete(id);
      if (id !== this.self) this.peers.removePeer(id);
    }
    this.history.push({ index, cs, members: Object.fromEntries(this.urls) });
    for (const ch of cc.changes) {
      const fields = { member: ch.nodeId, url: urls.get(ch.nodeId), index };
      if (ch.type === "remove-node") this.logger.info(fields, "member removed");
      else if (ch.type === "add-learner") this.logger.info(fields, "learner added");
      else this.logger.info(fields, "voter added or promoted");
    }
    this.logger.debug({ voters: cs.voters, learners: cs.learners }, "configuration changed");
  }

  /**
   * Takes a snapshot's membership (at open, or when one is installed): it replaces ours, and
   * members it no longer names leave (their transport peers with them).
   */
  install(index: number, cs: ConfState, members: Readonly<Record<NodeId, string>>): void {
    this.history = [{ index, cs, members: { ...members } }];
    for (const id of [...this.urls.keys()]) {
      if (id in members) continue;
      this.urls.delete(id);
      if (id !== this.self) this.peers.removePeer(id);
    }
    for (const [id, url] of Object.entries(members)) {
      this.urls.set(id, url);
      if (id !== this.self) this.peers.addPeer(id, url);
    }
  }

  /** The configuration in effect at `index`, if this node knows it. */
  confAt(index: number): ConfAt | undefined {
    let conf: ConfAt | undefined;
    for (const c of this.history) if (c.index <= index) conf = c;
    return conf;
  }

  /** The oldest configuration this node knows. */
  oldest(): ConfAt | undefined {
    return this.history[0];
  }

  /** Forgets the configurations before `index` (a snapshot covers them) but `keep`. */
  forgetBefore(index: number, keep: ConfAt): void {
    this.history = this.history.filter((c) => c.index >= index || c === keep);
  }

  /** A message from `peer` arrived at `now` (monotonic ms). */
  heard(peer: NodeId, now: number): void {
    this.heardAt.set(peer, now);
  }

  /** When `peer` was last heard from (monotonic ms), or undefined if never. */
  lastHeard(peer: NodeId): number | undefined {
    return this.heardAt.get(peer);
  }

  /** Whether `peer` was heard from within `windowMs` of `now`. */
  heardWithin(peer: NodeId, now: number, windowMs: number): boolean {
    const at = this.heardAt.get(peer);
    return at !== undefined && now - at <= windowMs;
  }
}
