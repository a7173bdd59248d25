/**
 * Test doubles for the runtime: an in-process network of PeerTransports that can partition nodes,
 * and a small key-value Store kept in memory (it survives a node restart when the test reuses
 * the same instance, like a database would).
 */
import type { Message, NodeId } from "../../src/raft/types.js";
import type { PeerTransport } from "../../src/node/raft-node.js";
import type {
  AppliedPosition,
  ApplyEntry,
  ApplyResult,
  Store,
  StoreBackup,
  StoreCommand,
  StoreDigest,
} from "../../src/store/store.js";

export class LocalNetwork {
  private readonly handlers = new Map<NodeId, (msgs: Message[]) => void>();
  readonly down = new Set<NodeId>();

  register(id: NodeId, h: (msgs: Message[]) => void): void {
    this.handlers.set(id, h);
  }

  endpoint(from: NodeId): PeerTransport {
    return {
      send: (msgs) => {
        for (const m of msgs) {
          if (this.down.has(from) || this.down.has(m.to)) continue;
          const h = this.handlers.get(m.to);
          if (h !== undefined) setImmediate(() => h([m]));
        }
      },
      addPeer: () => undefined,
      removePeer: () => undefined,
    };
  }
}

const enc = new TextEncoder();
const dec = new TextDecoder();

/** `set <k> <v>` writes; `get <k>` reads; `fail` is a statement error. */
export class TestStore implements Store {
  readonly kind = "test";
  readonly data = new Map<string, string>();
  applied: AppliedPosition = { index: 0, term: 0 };
  applyCount = 0;
  opened = false;

  async open(): Promise<AppliedPosition> {
    this.opened = true;
    return this.applied;
  }
  async close(): Promise<void> {
    this.opened = false;
  }
  async lastApplied(): Promise<AppliedPosition> {
    return this.applied;
  }
  async apply(entries: readonly ApplyEntry[]): Promise<ApplyResult[]> {
    const out: ApplyResult[] = [];
    for (const e of entries) {
      if (e.index <= this.applied.index) {
        out.push({ ok: true, data: new Uint8Array(0) });
        continue;
      }
      this.applied = { index: e.index, term: e.term };
      if (e.command === undefined) {
        out.push({ ok: true, data: new Uint8Array(0) });
        continue;
      }
      this.applyCount++;
      const [op, k, v] = dec.decode(e.command.data).split(" ");
      if (op === "set" && k !== undefined && v !== undefined) {
        this.data.set(k, v);
        out.push({ ok: true, data: enc.encode("OK") });
      } else {
        out.push({ ok: false, error: `bad command ${op}` });
      }
    }
    return out;
  }
  async load(q: StoreCommand): Promise<Uint8Array> {
    const [, k] = dec.decode(q.data).split(" ");
    return enc.encode(this.data.get(k ?? "") ?? "");
  }
  async backup(): Promise<StoreBackup> {
    const snapshot = JSON.stringify([...this.data]);
    return {
      position: this.applied,
      stream: (async function* () {
        yield enc.encode(snapshot);
      })(),
    };
  }
  async restore(position: AppliedPosition, stream: AsyncIterable<Uint8Array>): Promise<void> {
    let s = "";
    for await (const c of stream) s += dec.decode(c);
    this.data.clear();
    for (const [k, v] of JSON.parse(s) as [string, string][]) this.data.set(k, v);
    this.applied = position;
  }
  async digest(): Promise<StoreDigest> {
    return { position: this.applied, digest: JSON.stringify([...this.data].sort()) };
  }
}

/** Waits until cond() holds, polling; fails after timeoutMs. */
export async function until(
  cond: () => boolean,
  timeoutMs = 10_000,
  what = "condition",
): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
