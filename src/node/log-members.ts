/**
 * Members named by conf changes in this node's log that it has not applied yet: the entry that
 * adds a member may be in the log without the node knowing it is committed (a restart loses a
 * commit index not yet written, and a follower learns of a commit only after the entry). If the
 * member it adds then leads, this node must take its messages and answer them, or it never learns
 * the entry is committed and stays in the old configuration for good. Such members are admitted
 * by the transport and get a transport peer until the entry is applied (the member directory then
 * decides) or replaced by a conflicting leader's entries.
 */
import type { ConfChange, Entry, NodeId } from "../raft/types.js";
import { urlsOf } from "./member-directory.js";
import type { PeerSet } from "./member-directory.js";

/** Decodes a conf-change entry's payload (raft-node's decoder). */
export type ConfChangeDecoder = (data: Uint8Array) => ConfChange;

interface Named {
  readonly url: string;
  /** The index of the entry that names it. */
  readonly index: number;
}

export class LogMembers {
  /** By member: the unapplied entries that name it, oldest first. */
  private readonly named = new Map<NodeId, Named[]>();

  constructor(
    private readonly self: NodeId,
    private readonly peers: PeerSet,
    /** Member URLs by id from applied conf changes and snapshots (they keep their peers). */
    private readonly applied: ReadonlyMap<NodeId, string>,
    private readonly decode: ConfChangeDecoder,
  ) {}

  /** Whether an unapplied conf change in the log names `id` with a URL. */
  has(id: NodeId): boolean {
    return this.named.has(id);
  }

  /**
   * Entries written to the log (in order, contiguous): those from `entries[0].index` on replace
   * what the log held there, so members named only by replaced entries are forgotten first.
   */
  appended(entries: readonly Entry[]): void {
    const first = entries[0];
    if (first === undefined) return;
    this.forget((n) => n.index >= first.index);
    for (const e of entries) {
      if (e.type !== "conf-change") continue;
      let cc: ConfChange;
      try {
        cc = this.decode(e.data);
      } catch {
        continue; // The applier reports an undecodable entry when it gets there.
      }
      const urls = urlsOf(cc.context, cc.changes);
      for (const ch of cc.changes) {
        const url = urls.get(ch.nodeId);
        if (ch.type === "remove-node" || ch.nodeId === this.self || url === undefined) continue;
        const list = this.named.get(ch.nodeId) ?? [];
        if (list.length === 0) this.named.set(ch.nodeId, list);
        list.push({ url, index: e.index });
        if (!this.applied.has(ch.nodeId)) this.peers.addPeer(ch.nodeId, url);
      }
    }
  }

  /**
   * Conf changes up to `index` were applied. A member still named by a later entry gets its peer
   * back if an applied change removed it (removed, then added again: the directory dropped it).
   */
  appliedThrough(index: number): void {
    this.forget((n) => n.index <= index);
    for (const [id, list] of this.named) {
      if (!this.applied.has(id)) this.peers.addPeer(id, list[list.length - 1]!.url);
    }
  }

  /** A snapshot replaced the whole log: no entry names anyone any more. */
  clear(): void {
    this.forget(() => true);
  }

  private forget(which: (n: Named) => boolean): void {
    for (const [id, list] of [...this.named]) {
      const kept = list.filter((n) => !which(n));
      if (kept.length === list.length) continue;
      const last = kept[kept.length - 1];
      if (last === undefined) {
        this.named.delete(id);
        // A member the applied configuration names keeps its peer (the directory owns it).
        if (!this.applied.has(id)) this.peers.removePeer(id);
        continue;
      }
      this.named.set(id, kept);
      if (!this.applied.has(id)) this.peers.addPeer(id, last.url);
    }
  }
}
