/**
 * Test doubles for the runtime: an in-process network of PeerTransports that can partition nodes,
 * and a small key-value Store kept in memory (it survives a node restart when the test reuses
 * the same instance, like a database would).
 */
import { after } from "node:test";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RaftNode } from "../../src/node/raft-node.js";
import { createNodeFs } from "../../src/storage/fs-layer.js";
import type { FsLayer } from "../../src/storage/fs-layer.js";
import type { Message, NodeId } from "../../src/raft/types.js";
import type { PeerTransport } from "../../src/node/raft-node.js";
import type { NexusLogger, ReplicatorOptions } from "../../src/node/options.js";
import { createReplicator } from "../../src/node/replicator.js";
import type { Replicator } from "../../src/node/replicator.js";
import { freePort } from "../free-port.js";
import type {
  AppliedPosition,
  ApplyEntry,
  ApplyResult,
  Store,
  StoreBackup,
  StoreCommand,
  PendingDigest,
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
  async digest(): Promise<PendingDigest> {
    const state = JSON.stringify([...this.data].sort());
    const hex = createHash("sha256").update(state).digest("hex");
    return { position: this.applied, digest: Promise.resolve(hex) };
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

/** Options of walCluster(). */
export interface WalClusterOptions {
  /** The file system layer of each node's WAL (fault injection). Default: the real one. */
  readonly fsFor?: (id: string) => FsLayer;
  /** Each node's monotonic clock. Default: performance.now. */
  readonly clockFor?: (id: string) => () => number;
  readonly leaseBasedReads?: boolean;
  readonly onDivergence?: "report" | "stop";
  /** Each node's transport. Default: the LocalNetwork's endpoint. */
  readonly transportFor?: (id: string, net: LocalNetwork) => PeerTransport;
  /** Snapshot every that many applied entries. Default 10,000. */
  readonly snapshotCount?: number;
  /** Each node's logger. Default: none. */
  readonly loggerFor?: (id: string) => NexusLogger;
}

/**
 * A 3-node cluster of RaftNodes ("a", "b", "c") on real WALs in a temporary folder, over a
 * LocalNetwork, with TestStores (kept across restarts by `open(id)`). Ticks of 10 ms, election
 * after 10 ticks. The caller stops the nodes; the folder goes when the test file ends.
 */
export async function walCluster(o: WalClusterOptions = {}) {
  const ids = ["a", "b", "c"];
  const members = ids.map((id, i) => ({ id, url: `http://127.0.0.1:${9100 + i}` }));
  const root = mkdtempSync(join(tmpdir(), "nexus-node-"));
  after(() => rmSync(root, { recursive: true, force: true }));
  const net = new LocalNetwork();
  const stores = new Map(ids.map((id) => [id, new TestStore()]));
  const nodes = new Map<string, RaftNode>();
  const fatal: string[] = [];
  const open = async (id: string): Promise<RaftNode> => {
    const n = await RaftNode.open({
      id,
      bootstrap: members,
      walDir: join(root, id),
      walOptions: { fs: o.fsFor?.(id) ?? createNodeFs(), segmentBytes: 1024 * 1024 },
      store: stores.get(id)!,
      transport: o.transportFor?.(id, net) ?? net.endpoint(id),
      heartbeatTickMs: 10,
      electionTick: 10,
      replTimeoutMs: 3000,
      snapDir: join(root, `${id}-snap`),
      snapshotCount: o.snapshotCount ?? 10_000,
      snapshotCatchUpEntries: 100,
      onFatal: (e) => fatal.push(`${id}: ${e.message}`),
      ...(o.loggerFor === undefined ? {} : { logger: o.loggerFor(id) }),
      ...(o.clockFor === undefined ? {} : { clock: o.clockFor(id) }),
      ...(o.leaseBasedReads === undefined ? {} : { leaseBasedReads: o.leaseBasedReads }),
      ...(o.onDivergence === undefined ? {} : { onDivergence: o.onDivergence }),
    });
    net.register(id, (msgs) => n.step(msgs));
    nodes.set(id, n);
    n.start();
    return n;
  };
  for (const id of ids) await open(id);
  const leader = (): RaftNode | undefined =>
    [...nodes.values()].find(
      (n) => n.status().softState.raftState === "leader" && n.fatalError() === undefined,
    );
  const stopAll = async (): Promise<void> => {
    for (const n of nodes.values()) await n.stop();
  };
  const snapDirOf = (id: string): string => join(root, `${id}-snap`);
  const walDirOf = (id: string): string => join(root, id);
  return { ids, net, stores, nodes, open, leader, fatal, stopAll, snapDirOf, walDirOf, root };
}

/**
 * A replicator alone in its cluster on a free loopback port, its WAL and snapshots under `root`
 * (heartbeat 20 ms, election 200 ms, then `options`). Not started.
 */
export async function loneReplicator(
  root: string,
  options: Partial<ReplicatorOptions> & Pick<ReplicatorOptions, "store">,
): Promise<Replicator> {
  const url = `http://127.0.0.1:${await freePort()}`;
  return createReplicator({
    nodeUrl: url,
    clusterUrls: [url],
    logDir: join(root, "logs"),
    snapDir: join(root, "snap"),
    heartbeatTickMs: 20,
    electionTickMs: 200,
    ...options,
  });
}
