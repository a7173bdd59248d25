/**
 * Bootstrapping a new cluster: the initial membership is written into the log itself, as one
 * committed conf-change entry per initial member at term 1 (indexes 1..n), so that it is
 * persisted like any later change, replayed on restart, and replicated to nodes that join later.
 * Every initial member must compute the same entries: they are ordered by node id.
 */
import { encodeConfChange } from "./confchange/codec.js";
import type { Entry, HardState, NodeId } from "./types.js";
import { EMPTY_BYTES, NONE } from "./types.js";

/** One initial member and the opaque context of its add-node change (e.g. its URL). */
export interface BootstrapPeer {
  readonly id: NodeId;
  readonly context?: Uint8Array;
}

/**
 * The entries and hard state a node of a brand-new cluster starts with: persist both, then
 * start the RawNode with an empty configuration and `applied` 0; the first Ready hands the
 * entries out for applyConfChange().
 */
export function bootstrapEntries(peers: readonly BootstrapPeer[]): {
  entries: Entry[];
  hardState: HardState;
} {
  if (peers.length === 0) throw new Error("bootstrap needs at least one peer");
  const sorted = [...peers].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i]!.id === sorted[i - 1]!.id) throw new Error(`duplicate peer ${sorted[i]!.id}`);
  }
  const entries: Entry[] = sorted.map((p, i) => ({
    term: 1,
    index: i + 1,
    type: "conf-change",
    data: encodeConfChange({
      transition: "auto",
      changes: [{ type: "add-node", nodeId: p.id }],
      context: p.context ?? EMPTY_BYTES,
    }),
  }));
  return { entries, hardState: { term: 1, vote: NONE, commit: entries.length } };
}
