/**
 * Pending ReadIndex requests on the leader (thesis §6.4): each read waits for a heartbeat round
 * acknowledged by a quorum that was sent after the read arrived. Requests are identified by
 * their context bytes; a heartbeat carries the context of the newest pending request, and an
 * acknowledgement of it confirms every earlier request as well.
 */
import type { Message, NodeId } from "./types.js";

/** How the leader answers ReadIndex: `safe` confirms leadership with a heartbeat quorum;
 * `lease-based` trusts check-quorum's lease and answers at once (unsafe under clock drift). */
export type ReadOnlyOption = "safe" | "lease-based";

/** One pending read: the commit index when it arrived, the request, and who acknowledged. */
export interface ReadIndexStatus {
  readonly req: Message;
  readonly index: number;
  readonly acks: Map<NodeId, boolean>;
}

/** Hex key of a context, for maps. */
export function ctxKey(ctx: Uint8Array): string {
  let s = "";
  for (const b of ctx) s += (b < 16 ? "0" : "") + b.toString(16);
  return s;
}

export class ReadOnly {
  readonly option: ReadOnlyOption;
  private pending = new Map<string, ReadIndexStatus>();
  private queue: string[] = [];

  constructor(option: ReadOnlyOption) {
    this.option = option;
  }

  /** Adds a read request that arrived when the commit index was `index`. Duplicates are ignored. */
  addRequest(index: number, m: Message): void {
    const key = ctxKey(m.context);
    if (this.pending.has(key)) return;
    this.pending.set(key, { index, req: m, acks: new Map() });
    this.queue.push(key);
  }

  /** Records a heartbeat acknowledgement for ctx; returns its acks, or undefined if unknown. */
  recvAck(id: NodeId, ctx: Uint8Array): Map<NodeId, boolean> | undefined {
    const rs = this.pending.get(ctxKey(ctx));
    if (rs === undefined) return undefined;
    rs.acks.set(id, true);
    return rs.acks;
  }

  /**
   * Releases every request queued up to and including the one with context ctx (their leadership
   * confirmation is implied by ctx's) and returns them in arrival order.
   */
  advance(ctx: Uint8Array): ReadIndexStatus[] {
    const key = ctxKey(ctx);
    const i = this.queue.indexOf(key);
    if (i < 0) return [];
    const released = this.queue.slice(0, i + 1);
    this.queue = this.queue.slice(i + 1);
    const out: ReadIndexStatus[] = [];
    for (const k of released) {
      const rs = this.pending.get(k);
      if (rs === undefined) throw new Error("read-only: queue and pending map disagree");
      this.pending.delete(k);
      out.push(rs);
    }
    return out;
  }

  /** Context of the newest pending request, to piggyback on heartbeats. */
  lastPendingRequestCtx(): Uint8Array | undefined {
    const last = this.queue[this.queue.length - 1];
    return last === undefined ? undefined : this.pending.get(last)!.req.context;
  }

  pendingCount(): number {
    return this.queue.length;
  }
}
