/**
 * RaftNode's contract with its owner: the options it is opened with, and what it needs from the
 * peer transport. The Replicator (replicator.ts) builds them from ReplicatorOptions.
 */
import type { Message, NodeId } from "../raft/types.js";
import type { WalOptions } from "../storage/wal.js";
import type { CrashHook } from "../storage/crash-points.js";
import type { Store } from "../store/store.js";
import type { DivergenceAction } from "./consistency-checker.js";
import type { MonotonicClock } from "./leader-lease.js";
import type { NexusLogger } from "./options.js";
import type { TestHooks } from "./test-hooks.js";

/** What the runtime needs from a peer transport (src/transport implements it). */
export interface PeerTransport {
  /** Sends messages to their `to` peers; never blocks; may drop (Raft tolerates loss). */
  send(msgs: readonly Message[]): void;
  addPeer(id: NodeId, url: string): void;
  removePeer(id: NodeId): void;
  /** The Raft timing a peer announced, if it did (bounds the leader's lease, auto-timing.ts). */
  timingOf?(peer: NodeId): { heartbeatTickMs: number; electionTick: number } | undefined;
}

export interface RaftNodeOptions {
  readonly id: NodeId;
  /** Initial members (id and URL) when this node bootstraps a new cluster; empty to join. */
  readonly bootstrap: readonly { id: NodeId; url: string }[];
  readonly walDir: string;
  readonly walOptions?: WalOptions;
  readonly store: Store;
  readonly transport: PeerTransport;
  readonly heartbeatTickMs: number;
  /** Election timeout in ticks. */
  readonly electionTick: number;
  readonly replTimeoutMs: number;
  /** Snapshot files live here. */
  readonly snapDir: string;
  /** Applied entries between snapshots. */
  readonly snapshotCount: number;
  /** Entries kept after a snapshot for slow followers. */
  readonly snapshotCatchUpEntries: number;
  readonly maxSnapshots?: number;
  /**
   * Keep the leader's read lease renewed all the time (reads default to lease reads). Without it a
   * lease is renewed only while lease reads are asked for. The lease is measured on a monotonic
   * clock, see leader-lease.ts.
   */
  readonly leaseBasedReads?: boolean;
  /** Share of the lease given up for clock-rate drift between members. Default 0.1. */
  readonly leaseDriftMargin?: number;
  /** The monotonic clock (ms). Default `performance.now`; tests inject their own. */
  readonly clock?: MonotonicClock;
  /** Milliseconds between the leader's consistency checks; 0 (the default here) for none. */
  readonly consistencyCheckIntervalMs?: number;
  /** What a replica does when a check finds it diverged. Default "report". */
  readonly onDivergence?: DivergenceAction;
  readonly logger?: NexusLogger;
  /** Called once when the node stops because of an error it cannot recover from. */
  readonly onFatal?: (err: Error) => void;
  /**
   * Called at every crash point (RUNTIME_CRASH_POINTS, and the WAL's and snapshotter's), for crash
   * tests. Default: none (a point then costs one property test).
   */
  readonly crash?: CrashHook;
  /** Test hooks (test-hooks.ts); none by default. */
  readonly testHooks?: TestHooks;
}
