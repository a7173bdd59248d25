/**
 * A leader's append that contradicts an entry this node has committed. In a sound cluster that
 * never happens (a leader holds every committed entry, Raft §5.4); it does when this node
 * bootstrapped a cluster of its own: typically a node joining an existing cluster that was started
 * with its own URL in -nexus-cluster-url and without -nexus-node-state new. Without this check it
 * would loop behind the leader forever, never catching up.
 */
import { NexusError } from "../errors/index.js";
import type { Message, NodeId } from "../raft/types.js";
import type { DiskStorage } from "../storage/disk-storage.js";

/**
 * The first index at which an append `m` contradicts an entry this node has committed, or 0.
 * Stale messages (an older term) are left to the core: 0.
 */
export function committedConflict(
  storage: Pick<DiskStorage, "initialState" | "firstIndex" | "lastIndex" | "term">,
  m: Message,
): number {
  const hs = storage.initialState().hardState;
  if (m.term < hs.term) return 0;
  const conflicts = (index: number, term: number): boolean => {
    if (index < 1 || index > hs.commit || index < storage.firstIndex()) return false;
    if (index > storage.lastIndex()) return false;
    return storage.term(index) !== term;
  };
  let at = conflicts(m.index, m.logTerm) ? m.index : 0;
  for (const e of m.entries) {
    if (at !== 0 || e.index > hs.commit) break;
    if (conflicts(e.index, e.term)) at = e.index;
  }
  return at;
}

/** The error that stops a node whose committed log disagrees with `leader`'s at `index`. */
export function leaderDisagreesError(
  leader: NodeId,
  index: number,
  walDir: string,
  snapDir: string,
): NexusError {
  return new NexusError(
    "BAD_CONFIG",
    `this node's log disagrees with the leader's (${leader}) at index ${index}, an entry this node ` +
      "had committed: it bootstrapped a cluster of its own (was its own URL in " +
      "-nexus-cluster-url?). A node joining an existing cluster must start empty, with " +
      "-nexus-node-state new or without its own URL in -nexus-cluster-url: delete its WAL " +
      `(${walDir}), snapshots (${snapDir}) and store data, then start it ` +
      "again that way",
  );
}
