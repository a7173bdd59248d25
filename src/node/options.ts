/**
 * Replicator options: what a user passes to createReplicator(), validated once into a frozen,
 * normalized copy. Every default is chosen to work out of the box on one machine or a LAN; the
 * docs give WAN guidance for the tick settings.
 */
import { MAX_LEADER_PRIORITY, isLeaderPriority } from "./leader-placement.js";
import { AUTO_HEARTBEAT_FLOOR_MS } from "./auto-timing.js";
import { join, resolve } from "node:path";
import { NexusError } from "../errors/index.js";
import type { Store } from "../store/store.js";
import type { NodeMetrics } from "./node-metrics.js";
import { NOOP_NODE_METRICS } from "./node-metrics.js";
import type { NodeIdHex, NodeUrl } from "./node-id.js";
import { nodeIdOf, parseNodeUrl } from "./node-id.js";

/**
 * One level of a NexusLogger, called as pino's are: `(fields, msg)` with structured fields first,
 * or `(msg)` alone. A console-style `(msg, fields)` function does not type-check as one, so fields
 * are never silently dropped (test/node/logger-contract.test.ts).
 */
export interface NexusLogFn {
  (fields: Readonly<Record<string, unknown>>, msg: string): void;
  (msg: string): void;
}

/**
 * Structured logging used by the runtime: a pino logger fits as it is
 * (`createReplicator({ ..., logger: pino() })`). Levels as in pino; every level may be a no-op.
 * Methods are called on the logger (`logger.warn(...)`), so loggers that use `this` work.
 */
export interface NexusLogger {
  readonly debug: NexusLogFn;
  readonly info: NexusLogFn;
  readonly warn: NexusLogFn;
  readonly error: NexusLogFn;
}

/** A logger that discards everything. */
export const SILENT: NexusLogger = { debug() {}, info() {}, warn() {}, error() {} };

/** How this node starts. */
export type NodeState =
  /** Decide from the cluster URLs: a member of the initial cluster bootstraps, others join. */
  | "auto"
  /** This node is new to an existing cluster: start empty and wait to be added. */
  | "new"
  /** This node is a member of the initial cluster. */
  | "existing";

export interface ReplicatorOptions {
  /** This node's URL, `http://host:port`: where peers reach it. Required. */
  readonly nodeUrl: string;
  /**
   * Where the peer server binds, `http://host:port`, when that differs from `nodeUrl` (behind NAT,
   * in a container, behind a relay or load balancer): peers still dial `nodeUrl`, and the node's id
   * still comes from `nodeUrl`. Same scheme as `nodeUrl`; `http://0.0.0.0:9021` binds every address.
   * Default: `nodeUrl`.
   */
  readonly listenUrl?: string;
  /**
   * This node's leader priority, 0 to 1000 (default 0). The leader hands leadership to a
   * reachable, caught-up voter whose priority is higher than its own (the highest), once that has
   * held for a few election timeouts; equal priorities never move it. Put the highest where the
   * writers are. See docs/wan.md.
   */
  readonly leaderPriority?: number;
  /**
   * The URLs of the initial cluster members (including this node when it is one). Required.
   * Used only when the node starts with no data; afterwards membership comes from the log.
   */
  readonly clusterUrls: readonly string[];
  /** The store to replicate onto. Required. */
  readonly store: Store;
  /**
   * This node's data folder: the WAL goes in `<dataDir>/wal` and snapshots in `<dataDir>/snap`
   * unless logDir or snapDir say otherwise (the programs' `-data-dir`). Default
   * `./nexus-data/<node id in hex>`, resolved against the working directory at creation. A folder
   * under a temporary directory (/tmp, os.tmpdir()) is warned about at start: a reboot may empty it.
   */
  readonly dataDir?: string;
  /**
   * Directory for write-ahead logs; the node uses `<logDir>/node_<id in decimal>`. Default
   * `<dataDir>/wal` (it was `/tmp/logs`, which a reboot may empty).
   */
  readonly logDir?: string;
  /**
   * Directory for snapshots; the node uses `<snapDir>/node_<id in decimal>`. Default
   * `<dataDir>/snap` (it was `/tmp/snap`).
   */
  readonly snapDir?: string;
  /** How long a save may take before it fails with an unknown outcome. Default 5000 ms. */
  readonly replTimeoutMs?: number;
  /**
   * Reads default to lease reads: the leader serves from its lease, kept on a monotonic clock,
   * without a round trip (reads sent to a follower still ask the leader for a read index).
   * Default false (linearizable ReadIndex reads). What leases assume: docs/reads-and-checks.md#lease.
   */
  readonly leaseBasedReads?: boolean;
  /**
   * Share of the lease given up to allow for members' clocks running at different rates:
   * the lease lasts `(electionTickMs - heartbeatTickMs) * (1 - leaseDriftMargin)`. Default 0.1.
   */
  readonly leaseDriftMargin?: number;
  /**
   * Milliseconds between consistency checks (the leader proposes one; every replica digests its
   * store at that index; a replica that differs from the majority is marked diverged). 0
   * disables the periodic checks (checkConsistency() still works). Default 300,000 (5 minutes).
   */
  readonly consistencyCheckIntervalMs?: number;
  /**
   * What a replica does when a check finds it diverged: "report" (keep applying, answer
   * NOT_SERVING, log loudly) or "stop" (also stop applying, and hand leadership away). Default
   * "report".
   */
  readonly onDivergence?: "report" | "stop";
  /** Applied entries between snapshots. Default 10,000. */
  readonly snapshotCount?: number;
  /** Entries kept in the log after a snapshot for slow followers. Default 5,000. */
  readonly snapshotCatchUpEntries?: number;
  /** Snapshot files kept (0 = unlimited). Default 5. */
  readonly maxSnapshots?: number;
  /** WAL segment files kept (0 = unlimited), never removing what recovery needs. Default 5. */
  readonly maxWals?: number;
  /** A name all members share; traffic from another cluster is refused. Default "nexus". */
  readonly clusterName?: string;
  /**
   * Milliseconds per Raft tick for heartbeats. Default 100. The election timeout is
   * `electionTickMs`. On a WAN, set heartbeatTickMs to about the round-trip time between the
   * farthest members and electionTickMs to 10x that, or give "auto": at start the node times its
   * peers' round trips and takes the farthest one (at least 100 ms) as the heartbeat and 10
   * heartbeats (at least electionTickMs) as the election timeout (auto-timing.ts).
   */
  readonly heartbeatTickMs?: number | "auto";
  /**
   * Milliseconds without a leader before an election. Default 1000 (10 heartbeats). With
   * heartbeatTickMs "auto", the lowest election timeout the measured timing may choose.
   */
  readonly electionTickMs?: number;
  /** How this node starts. Default "auto". */
  readonly nodeState?: NodeState;
  /** Largest request (save/load data plus args) accepted, in bytes. Default 4 MiB. */
  readonly maxRequestBytes?: number;
  /**
   * Mutual TLS between peers (PEM files; the node's certificate serves as server and client
   * certificate and must name its URL). Required with `https://` node URLs and refused with
   * `http://` ones. The files are reloaded when they change and by `reloadPeerTls()`.
   */
  readonly peerTls?: {
    readonly certFile: string;
    readonly keyFile: string;
    readonly trustedCaFile: string;
  };
  /** Largest snapshot this node accepts from a peer, in bytes. Default 8 GiB. */
  readonly maxSnapshotBytes?: number;
  readonly logger?: NexusLogger;
  /** Where the runtime reports WAL syncs, snapshots and its counters (src/ops). Default: nowhere. */
  readonly metrics?: NodeMetrics;
  /**
   * Called once if the node stops on its own because of a fatal error (a WAL write or fsync
   * failed). Every pending request has been rejected; a service should exit non-zero.
   */
  readonly onFatal?: (err: Error) => void;
  /**
   * For crash tests only: called with the name of every crash point the node reaches (the WAL's,
   * the snapshotter's and the runtime's, see src/node/crash-points.ts). `nexus serve`
   * sets it from NEXUS_CRASH_POINT. Default: none (a point then costs one property test).
   */
  readonly crash?: (point: string) => void;
}

/** Options after validation: every field present. */
export interface NormalizedOptions {
  readonly nodeUrl: NodeUrl;
  readonly listenUrl: NodeUrl;
  readonly leaderPriority: number;
  readonly nodeId: NodeIdHex;
  readonly clusterUrls: readonly NodeUrl[];
  readonly store: Store;
  readonly logDir: string;
  readonly snapDir: string;
  readonly replTimeoutMs: number;
  readonly leaseBasedReads: boolean;
  readonly leaseDriftMargin: number;
  readonly consistencyCheckIntervalMs: number;
  readonly onDivergence: "report" | "stop";
  readonly snapshotCount: number;
  readonly snapshotCatchUpEntries: number;
  readonly maxSnapshots: number;
  readonly maxWals: number;
  readonly clusterName: string;
  /** With autoTiming, the floor until start measures the peers (then the measured value). */
  readonly heartbeatTickMs: number;
  readonly electionTickMs: number;
  /** electionTickMs / heartbeatTickMs, at least 2. */
  readonly electionTick: number;
  /** heartbeatTickMs "auto": the timing is derived from measured round trips at start. */
  readonly autoTiming: boolean;
  readonly nodeState: NodeState;
  readonly maxRequestBytes: number;
  readonly peerTls:
    | { readonly certFile: string; readonly keyFile: string; readonly trustedCaFile: string }
    | undefined;
  readonly maxSnapshotBytes: number;
  readonly logger: NexusLogger;
  readonly metrics: NodeMetrics;
  readonly onFatal: ((err: Error) => void) | undefined;
  readonly crash: ((point: string) => void) | undefined;
  /** Whether this node is a member of the initial cluster (it bootstraps when new). */
  readonly initialMember: boolean;
}

function bad(msg: string): NexusError {
  return new NexusError("BAD_CONFIG", msg);
}

function int(name: string, v: number | undefined, def: number, min: number): number {
  const x = v ?? def;
  if (!Number.isSafeInteger(x) || x < min) {
    throw bad(`option ${name} must be an integer >= ${min}, got ${String(v)}`);
  }
  return x;
}

/**
 * The peer TLS files, checked against the URLs: `https://` needs them, `http://` refuses them
 * (a node given certificates but plaintext URLs would talk in the clear while its operator
 * believes otherwise), and every URL has this node's scheme.
 */
function peerTlsOf(
  o: ReplicatorOptions,
  nodeUrl: NodeUrl,
  clusterUrls: readonly NodeUrl[],
): NormalizedOptions["peerTls"] {
  for (const u of clusterUrls) {
    if (u.protocol !== nodeUrl.protocol) {
      throw bad(
        `cluster URL ${u.url} and this node's URL ${nodeUrl.url} differ in scheme: ` +
          "every node URL must be https:// (with peer TLS) or every one http://",
      );
    }
  }
  const t = o.peerTls;
  if (t === undefined) {
    if (nodeUrl.protocol === "https:") {
      throw bad(
        `the node URL ${nodeUrl.url} is https://, but no peer certificate is configured: give ` +
          "-peer-cert-file, -peer-key-file and -peer-trusted-ca-file (option peerTls), or use http:// URLs " +
          "(scripts/make-certs.sh makes a CA and node certificates)",
      );
    }
    return undefined;
  }
  const files = { certFile: t.certFile, keyFile: t.keyFile, trustedCaFile: t.trustedCaFile };
  for (const [k, flag] of [
    ["certFile", "-peer-cert-file"],
    ["keyFile", "-peer-key-file"],
    ["trustedCaFile", "-peer-trusted-ca-file"],
  ] as const) {
    if (typeof files[k] !== "string" || files[k].trim() === "") {
      throw bad(`peer TLS needs peerTls.${k} (${flag}): the path of a PEM file`);
    }
  }
  if (nodeUrl.protocol !== "https:") {
    throw bad(
      `peer TLS files are given but the node URL ${nodeUrl.url} is http://: peers would talk in ` +
        "the clear. Use https:// for every node URL (-nexus-node-url, -nexus-cluster-url), or drop the peer TLS flags",
    );
  }
  return Object.freeze(files);
}

/** Validates options. Throws NexusError BAD_CONFIG naming the option and what is expected. */
/** A node's folder inside -nexus-log-dir and -nexus-snap-dir: the original's node_<id in decimal>. */
export function nodeDirName(nodeId: string): string {
  return `node_${BigInt(`0x${nodeId}`).toString()}`;
}

/** The peer server's bind address: `listenUrl` when given (same scheme as the node URL), else the node URL. */
function listenUrlOf(raw: string | undefined, nodeUrl: NodeUrl): NodeUrl {
  if (raw === undefined) return nodeUrl;
  if (typeof raw !== "string" || raw.trim() === "") {
    throw bad("option listenUrl must be a URL like http://0.0.0.0:9021 when given");
  }
  const listenUrl = parseNodeUrl(raw);
  if (listenUrl.protocol !== nodeUrl.protocol) {
    throw bad(
      `listen URL ${listenUrl.url} and node URL ${nodeUrl.url} differ in scheme: ` +
        "the peer server speaks the node URL's scheme; give both http:// or both https://",
    );
  }
  return listenUrl;
}

export function normalizeOptions(o: ReplicatorOptions): NormalizedOptions {
  if (typeof o.nodeUrl !== "string" || o.nodeUrl.trim() === "") {
    throw bad("option nodeUrl is required, e.g. http://127.0.0.1:9021");
  }
  const nodeUrl = parseNodeUrl(o.nodeUrl);
  const listenUrl = listenUrlOf(o.listenUrl, nodeUrl);
  const leaderPriority = o.leaderPriority ?? 0;
  if (!isLeaderPriority(leaderPriority)) {
    throw bad(
      `option leaderPriority must be an integer from 0 to ${MAX_LEADER_PRIORITY}, got ${String(o.leaderPriority)}`,
    );
  }
  if (!Array.isArray(o.clusterUrls) || o.clusterUrls.length === 0) {
    throw bad("option clusterUrls is required: the URLs of the initial cluster members");
  }
  const clusterUrls = o.clusterUrls.map((u) => parseNodeUrl(u));
  const seen = new Set<string>();
  for (const u of clusterUrls) {
    if (seen.has(u.url)) throw bad(`clusterUrls lists ${u.url} twice`);
    seen.add(u.url);
  }
  const peerTls = peerTlsOf(o, nodeUrl, clusterUrls);
  if (o.store === undefined || o.store === null) throw bad("option store is required");
  const nodeId = nodeIdOf(nodeUrl);
  const nodeState = o.nodeState ?? "auto";
  if (!["auto", "new", "existing"].includes(nodeState)) {
    throw bad(`option nodeState must be auto, new or existing, got ${String(nodeState)}`);
  }
  const listed = clusterUrls.some((u) => u.url === nodeUrl.url);
  if (nodeState === "existing" && !listed) {
    throw bad(
      `nodeState is existing but ${nodeUrl.url} is not in clusterUrls; ` +
        "add it to the cluster URLs or start it with nodeState new",
    );
  }
  const autoTiming = o.heartbeatTickMs === "auto";
  const heartbeatTickMs = autoTiming
    ? AUTO_HEARTBEAT_FLOOR_MS
    : int("heartbeatTickMs", o.heartbeatTickMs as number | undefined, 100, 1);
  const electionTickMs = int("electionTickMs", o.electionTickMs, 1000, 1);
  if (electionTickMs < 2 * heartbeatTickMs) {
    throw bad(
      `electionTickMs (${electionTickMs}) must be at least twice heartbeatTickMs (${heartbeatTickMs}); 10x is usual`,
    );
  }
  if (o.dataDir !== undefined && (typeof o.dataDir !== "string" || o.dataDir.trim() === "")) {
    throw bad("option dataDir must be a folder path, e.g. /var/lib/nexus (or leave it out)");
  }
  const dataDir = resolve(o.dataDir ?? join("nexus-data", nodeId));
  const logDir = o.logDir ?? join(dataDir, "wal");
  const snapDir = o.snapDir ?? join(dataDir, "snap");
  if (logDir.trim() === "") throw bad("option logDir must not be empty");
  if (snapDir.trim() === "") throw bad("option snapDir must not be empty");
  const snapshotCount = int("snapshotCount", o.snapshotCount, 10_000, 1);
  const snapshotCatchUpEntries = int("snapshotCatchUpEntries", o.snapshotCatchUpEntries, 5_000, 0);
  const leaseDriftMargin = o.leaseDriftMargin ?? 0.1;
  if (typeof leaseDriftMargin !== "number" || !(leaseDriftMargin >= 0 && leaseDriftMargin < 0.9)) {
    throw bad(
      `option leaseDriftMargin must be a number from 0 to 0.9 (a share of the lease), got ${String(o.leaseDriftMargin)}`,
    );
  }
  const onDivergence = o.onDivergence ?? "report";
  if (onDivergence !== "report" && onDivergence !== "stop") {
    throw bad(`option onDivergence must be "report" or "stop", got ${String(o.onDivergence)}`);
  }
  const clusterName = o.clusterName ?? "nexus";
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(clusterName)) {
    throw bad(
      `option clusterName must be 1-64 letters, digits, '.', '_' or '-', got "${clusterName}"`,
    );
  }
  return Object.freeze({
    nodeUrl,
    listenUrl,
    leaderPriority,
    nodeId,
    clusterUrls: Object.freeze(clusterUrls),
    store: o.store,
    logDir: join(logDir, nodeDirName(nodeId)),
    snapDir: join(snapDir, nodeDirName(nodeId)),
    replTimeoutMs: int("replTimeoutMs", o.replTimeoutMs, 5000, 1),
    leaseBasedReads: o.leaseBasedReads ?? false,
    leaseDriftMargin,
    consistencyCheckIntervalMs: int(
      "consistencyCheckIntervalMs",
      o.consistencyCheckIntervalMs,
      300_000,
      0,
    ),
    onDivergence,
    snapshotCount,
    snapshotCatchUpEntries,
    maxSnapshots: int("maxSnapshots", o.maxSnapshots, 5, 0),
    maxWals: int("maxWals", o.maxWals, 5, 0),
    clusterName,
    heartbeatTickMs,
    electionTickMs,
    electionTick: Math.max(2, Math.round(electionTickMs / heartbeatTickMs)),
    autoTiming,
    nodeState,
    maxRequestBytes: int("maxRequestBytes", o.maxRequestBytes, 4 * 1024 * 1024, 1),
    peerTls,
    maxSnapshotBytes: int("maxSnapshotBytes", o.maxSnapshotBytes, 8 * 1024 ** 3, 1),
    logger: o.logger ?? SILENT,
    metrics: o.metrics ?? NOOP_NODE_METRICS,
    onFatal: o.onFatal,
    crash: o.crash,
    initialMember: nodeState !== "new" && listed,
  });
}
