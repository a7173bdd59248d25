/**
 * Starting a node: the peer transport, the RaftNode over the WAL and the store, and what runs
 * beside them (leader placement, the catch-up log, metrics views), wired together. The
 * Replicator (replicator.ts) calls it once per start and keeps what it returns.
 */
import { mkdir } from "node:fs/promises";
import type { Readable } from "node:stream";
import { NexusError } from "../errors/index.js";
import type { Message } from "../raft/types.js";
import { checkNoSwapUnderway } from "../storage/folder-swap.js";
import { Http2Transport } from "../transport/http2-transport.js";
import { PeerTls } from "../transport/peer-tls.js";
import { checkNotKnownToCluster } from "./bootstrap-check.js";
import { CatchUpLog } from "./catch-up-log.js";
import { startLeaderPlacement } from "./leader-placement.js";
import type { NodeEvents } from "./node-events.js";
import { nodeIdOf } from "./node-id.js";
import { SnapshotTransfers } from "./node-metrics.js";
import type { NormalizedOptions } from "./options.js";
import { PeerAdmission } from "./peer-admission.js";
import { ProgressBoard, storeWithProgress } from "./progress-board.js";
import { RaftNode } from "./raft-node.js";
import { resolveTiming } from "./auto-timing.js";
import type { MemberInfo, ReplicatorEvents } from "./replicator-api.js";
import { tempFolders } from "./temp-dirs.js";
import type { TestHooks } from "./test-hooks.js";
import { slowed } from "./test-hooks.js";

/** How often the leader looks at how far members are behind, for its catch-up log. */
const CATCH_UP_SAMPLE_MS = 5000;

/** A started node and what runs beside it. */
export interface StartedNode {
  /** The options the node runs with: `o`, with the measured timing when it was "auto". */
  readonly options: NormalizedOptions;
  readonly node: RaftNode;
  readonly transport: Http2Transport;
  /** Snapshot streams in flight. */
  readonly transfers: SnapshotTransfers;
  /** Stops leader placement and the catch-up log (before the node stops). */
  stopTimers(): void;
}

/** What the node needs from the Replicator that starts it. */
export interface StartWiring {
  readonly testHooks: TestHooks | undefined;
  /** The Replicator's events, which the node's are forwarded to. */
  readonly events: NodeEvents<ReplicatorEvents>;
  /** The leader's member list with progress, as a follower asks for it over the transport. */
  progressView(): Uint8Array | undefined;
  /** The members with the leader's progress (listMembers). */
  members(): readonly MemberInfo[];
}

/** Opens and starts a node for the validated options `o`. */
export async function startNode(given: NormalizedOptions, w: StartWiring): Promise<StartedNode> {
  let o = given;
  // Before the bootstrap check: a half-swapped node may have no WAL folder for a moment.
  checkNoSwapUnderway(o.logDir);
  const temp = tempFolders({ WAL: o.logDir, snapshots: o.snapDir });
  if (temp.length > 0) {
    o.logger.warn(
      { folders: Object.fromEntries(temp) },
      `WARNING: this node's data is under a temporary folder (${temp.map(([k, p]) => `${k} ${p}`).join(", ")}), ` +
        "which a reboot or a temp cleaner may empty: the node would lose its log and rejoin with nothing. " +
        "Give a lasting folder: option dataDir (-data-dir), or logDir and snapDir (-nexus-log-dir, -nexus-snap-dir)",
    );
  }
  await mkdir(o.snapDir, { recursive: true });
  await mkdir(o.logDir.replace(/\/[^/]+$/, ""), { recursive: true });
  const holder: { node?: RaftNode } = {};
  const pending: Message[][] = [];
  const admission = new PeerAdmission(o.nodeId, () => holder.node);
  const transfers = new SnapshotTransfers(() => o.metrics, o.snapDir, o.logger);
  const board = new ProgressBoard(o.logger);
  const transport = new Http2Transport({
    id: o.nodeId,
    clusterName: o.clusterName,
    selfUrl: o.nodeUrl.url,
    idOfUrl: (url) => nodeIdOf(url),
    ...(o.peerTls === undefined ? {} : { tls: PeerTls.load(o.peerTls, o.nodeUrl.url) }),
    maxSnapshotBytes: o.maxSnapshotBytes,
    // Room for the largest entry a request can make, and for batches of small ones.
    maxFrameBytes: Math.max(64 * 1024 * 1024, 2 * o.maxRequestBytes + 1024 * 1024),
    leaderPriority: o.leaderPriority,
    listenHost: o.listenUrl.hostname,
    listenPort: o.listenUrl.port,
    handler: {
      onMessages: (msgs) =>
        holder.node === undefined ? pending.push(msgs) : holder.node.step(msgs),
      onUnreachable: (peer) => holder.node?.reportUnreachable(peer),
      onDropped: (msgs) => holder.node?.reportDropped(msgs),
      onSnapshot: async (m: Message, body: Readable) => {
        if (holder.node === undefined) {
          body.destroy();
          throw new NexusError("STOPPED", "the node is starting; retry");
        }
        await holder.node.receiveSnapshot(m, transfers.track("receive", m, body));
      },
      onSnapshotStatus: (peer, status) => holder.node?.reportSnapshot(peer, status),
      onProgressRequest: () => (holder.node === undefined ? undefined : w.progressView()),
      admitsSender: (from) => admission.admitsSender(from),
      checkSnapshot: (m) => admission.checkSnapshot(m),
    },
    openSnapshot: (m) => {
      if (holder.node === undefined) throw new NexusError("STOPPED", "the node is not running");
      const body = holder.node.openSnapshot(m);
      const slowMs = w.testHooks?.slowSnapshotSendMs?.() ?? 0;
      return transfers.track("send", m, slowMs > 0 ? slowed(body, slowMs) : body);
    },
    // Dead peer connections are found within about two election timeouts.
    connectTimeoutMs: Math.max(2000, o.electionTickMs),
    pingIntervalMs: Math.max(500, Math.round(o.electionTickMs / 2)),
    pingTimeoutMs: Math.max(2000, 2 * o.electionTickMs),
    logger: o.logger,
  });
  await transport.start();
  const peers = o.clusterUrls.map((u) => ({ id: nodeIdOf(u), url: u.url }));
  const others = peers.filter((p) => p.id !== o.nodeId);
  // With no WAL, a node the cluster already heard from must not start empty (bootstrap-check.ts).
  try {
    await checkNotKnownToCluster({
      nodeId: o.nodeId,
      nodeUrl: o.nodeUrl.url,
      logDir: o.logDir,
      peers,
      transport,
      timeoutMs: Math.min(5000, Math.max(2000, 2 * o.electionTickMs)),
      logger: o.logger,
    });
  } catch (err) {
    await transport.stop();
    throw err;
  }
  // Auto timing times them before the node runs.
  if (o.autoTiming) for (const p of others) transport.addPeer(p.id, p.url);
  o = await resolveTiming(
    o,
    transport,
    others.map((p) => p.id),
  );
  transport.announceTiming({ heartbeatTickMs: o.heartbeatTickMs, electionTick: o.electionTick });
  const node = await RaftNode.open({
    id: o.nodeId,
    bootstrap: o.initialMember ? peers : [],
    walDir: o.logDir,
    walOptions: { maxWals: o.maxWals, onSync: (ms, bytes) => o.metrics.walSynced(ms, bytes) },
    snapDir: o.snapDir,
    snapshotCount: o.snapshotCount,
    snapshotCatchUpEntries: o.snapshotCatchUpEntries,
    maxSnapshots: o.maxSnapshots,
    // Restores and digests log their progress and show in /status (progress-board.ts).
    store: storeWithProgress(o.store, board, o.snapDir),
    transport,
    heartbeatTickMs: o.heartbeatTickMs,
    electionTick: o.electionTick,
    replTimeoutMs: o.replTimeoutMs,
    leaseBasedReads: o.leaseBasedReads,
    leaseDriftMargin: o.leaseDriftMargin,
    consistencyCheckIntervalMs: o.consistencyCheckIntervalMs,
    onDivergence: o.onDivergence,
    logger: o.logger,
    ...(o.crash === undefined ? {} : { crash: o.crash }),
    ...(w.testHooks === undefined ? {} : { testHooks: w.testHooks }),
    onFatal: (err) => {
      o.logger.error({ error: err.message }, "replicator stopped");
      o.onFatal?.(err);
    },
  });
  // Peers of the initial cluster are known before the log is applied (again with auto timing: a
  // snapshot's membership installed at open may have dropped some of those timed).
  for (const p of others) transport.addPeer(p.id, p.url);
  node.events.on("leader-change", (e) => w.events.emit("leader-change", e));
  node.events.on("membership-change", (e) => w.events.emit("membership-change", e));
  node.events.on("divergence", (e) => w.events.emit("divergence", e));
  const placement = startLeaderPlacement(o, node, transport, w.members);
  holder.node = node;
  const timing = { heartbeatTickMs: o.heartbeatTickMs, electionTickMs: o.electionTickMs };
  const view = {
    peers: () => transport.stats(),
    latestCheck: () => node.latestCheck(),
    timing: () => timing,
  };
  o.metrics.attach({
    ...view,
    transfers: () => transfers.list(),
    longTasks: () => board.list(),
  });
  for (const m of pending) node.step(m);
  node.start();
  const catchUp = new CatchUpLog(o.logger);
  const catchUpTimer = setInterval(() => {
    if (node.status().softState.lead !== o.nodeId) return;
    catchUp.sample(o.nodeId, w.members(), Date.now());
  }, CATCH_UP_SAMPLE_MS);
  catchUpTimer.unref();
  return {
    options: o,
    node,
    transport,
    transfers,
    stopTimers: () => {
      placement.stop();
      clearInterval(catchUpTimer);
    },
  };
}
