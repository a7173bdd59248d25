/**
 * Before `nexus recover` turns a survivor's data into a new one-member cluster (issue 18, item
 * 6): is the cluster it was a member of still alive? Recovering a member of a live cluster makes
 * a second cluster from the same history, and the two then accept different writes.
 *
 * The members are read from the node's own data: the newest snapshot the WAL records (its
 * membership) and the conf changes in the WAL after it (a change not committed yet still counts:
 * asking one peer too many costs a timeout, missing one can split the cluster). Each member but
 * this node is asked, over the peer transport as this node (so with its cluster name and TLS),
 * for the member list a leader answers (the bootstrap check's question, bootstrap-check.ts):
 * a leader's answer, or a member answering that it does not lead, means that member runs as part
 * of the cluster, and the check refuses with BAD_CONFIG naming it. A member that does not answer
 * in time tells nothing; one that refuses the question (another cluster name, a cluster that
 * removed this node) counts as running. Members with https:// URLs need the node's peer TLS
 * files: without them the check refuses (BAD_CONFIG), since every such member would look lost.
 */
import { NexusError } from "../errors/index.js";
import { decodeConfChange } from "../raft/confchange/codec.js";
import type { NodeId } from "../raft/types.js";
import { Snapshotter } from "../storage/snapshotter.js";
import type { Wal, WalState } from "../storage/wal.js";
import { Http2Transport, PeerRefusedError } from "../transport/http2-transport.js";
import { PeerTls } from "../transport/peer-tls.js";
import { askPeersForProgress } from "./bootstrap-check.js";
import type { ProgressAsker } from "./bootstrap-check.js";
import { urlsOf } from "./member-directory.js";
import { nodeIdOf } from "./node-id.js";
import type { NexusLogger } from "./options.js";

/**
 * The members (id to URL) a node's data names last: the newest snapshot the WAL records, then
 * every conf change in the WAL after it, in order (removals drop a member).
 */
export async function membersOnDisk(
  wal: Wal,
  state: WalState,
  snapDir: string,
): Promise<Map<NodeId, string>> {
  const members = new Map<NodeId, string>();
  const newest = await new Snapshotter(snapDir).loadNewest(wal.snapshotMarker());
  for (const [id, url] of Object.entries(newest?.meta.members ?? {})) members.set(id, url);
  for (let i = state.snapshot.index + 1; i <= state.lastIndex; i++) {
    if (!wal.hasEntry(i)) continue;
    const e = wal.readEntrySync(i);
    if (e.type !== "conf-change") continue;
    const cc = decodeConfChange(e.data);
    const urls = urlsOf(cc.context, cc.changes);
    for (const ch of cc.changes) {
      if (ch.type === "remove-node") members.delete(ch.nodeId);
      else {
        const url = urls.get(ch.nodeId);
        if (url !== undefined) members.set(ch.nodeId, url);
      }
    }
  }
  return members;
}

export interface LiveClusterCheckOptions {
  readonly nodeId: NodeId;
  readonly nodeUrl: string;
  /** The members the node's data names (membersOnDisk); this node's own entry is skipped. */
  readonly members: ReadonlyMap<NodeId, string>;
  /** The cluster name the node ran with (the peers refuse another). */
  readonly clusterName: string;
  /** The node's peer TLS files, when its cluster uses https:// URLs. */
  readonly peerTls?: {
    readonly certFile: string;
    readonly keyFile: string;
    readonly trustedCaFile: string;
  };
  /** How long each member has to answer, ms. */
  readonly timeoutMs: number;
  readonly logger?: NexusLogger;
  /**
   * Who asks (tests pass a fake). Default: a peer transport of this node, made for the question
   * and stopped after it.
   */
  readonly transport?: ProgressAsker;
}

const silent = (): void => undefined;

/**
 * Resolves when no other member of the node's cluster answers as part of it; throws NexusError
 * BAD_CONFIG naming the member that answered (and the leader, when one answered) and what to do.
 */
export async function checkNoLiveCluster(o: LiveClusterCheckOptions): Promise<void> {
  const peers = [...o.members]
    .filter(([id]) => id !== o.nodeId)
    .map(([id, url]) => ({ id, url }))
    .sort((a, b) => a.url.localeCompare(b.url));
  if (peers.length === 0) return;
  const tlsPeers = peers.filter((p) => p.url.startsWith("https://"));
  if (o.peerTls === undefined && tlsPeers.length > 0) {
    // Without a certificate every https:// member is unreachable, which reads as lost: the
    // check would pass while the cluster runs.
    throw new NexusError(
      "BAD_CONFIG",
      `the members ${tlsPeers.map((p) => p.url).join(", ")} are asked over peer TLS (https://): ` +
        "give the -peer-cert-file, -peer-key-file and -peer-trusted-ca-file the node ran with, " +
        "so that a member that still runs can answer; nothing was changed",
    );
  }
  const logger = o.logger ?? { debug: silent, info: silent, warn: silent, error: silent };
  const own = o.transport === undefined ? askingTransport(o, logger) : undefined;
  let answers: PromiseSettledResult<unknown>[];
  try {
    answers = await askPeersForProgress(peers, o.transport ?? own!, o.timeoutMs);
  } finally {
    await own?.stop();
  }
  refuseIfAnswered(o, peers, answers, logger);
}

/** A peer transport of this node that only asks (it never listens). */
function askingTransport(o: LiveClusterCheckOptions, logger: NexusLogger): Http2Transport {
  return new Http2Transport({
    id: o.nodeId,
    clusterName: o.clusterName,
    selfUrl: o.nodeUrl,
    idOfUrl: (url) => nodeIdOf(url),
    ...(o.peerTls === undefined ? {} : { tls: PeerTls.load(o.peerTls, o.nodeUrl) }),
    // Only asks: it never listens, receives messages nor sends snapshots.
    listenHost: "127.0.0.1",
    listenPort: 0,
    handler: {
      onMessages: () => undefined,
      onUnreachable: () => undefined,
      onSnapshot: () => Promise.reject(new NexusError("STOPPED", "not a running node")),
      onSnapshotStatus: () => undefined,
      admitsSender: () => false,
    },
    openSnapshot: () => {
      throw new NexusError("STOPPED", "not a running node");
    },
    connectTimeoutMs: o.timeoutMs,
    logger,
  });
}

/** Interprets the answers: see checkNoLiveCluster. */
function refuseIfAnswered(
  o: LiveClusterCheckOptions,
  peers: readonly { readonly id: NodeId; readonly url: string }[],
  answers: readonly PromiseSettledResult<unknown>[],
  logger: NexusLogger,
): void {
  const running: string[] = [];
  let leader: string | undefined;
  for (const [i, a] of answers.entries()) {
    const p = peers[i]!;
    if (a.status === "fulfilled") {
      leader = p.url;
      running.push(p.url);
    } else if (a.reason instanceof NexusError && a.reason.code === "NOT_LEADER") {
      running.push(p.url);
    } else if (a.reason instanceof PeerRefusedError) {
      // Something runs there and refused the question (another -nexus-cluster-name, a cluster
      // that removed this node, peer TLS): not silence, so not a lost member.
      running.push(`${p.url} (answered HTTP ${a.reason.httpStatus})`);
    } else {
      logger.debug(
        { peer: p.url, error: (a.reason as Error).message },
        "recover: a member did not answer as part of the cluster",
      );
    }
  }
  if (running.length === 0) return;
  const who =
    leader === undefined
      ? `${running.join(", ")} still ${running.length === 1 ? "runs" : "run"} as ${running.length === 1 ? "a member" : "members"} of this node's cluster (no leader answered)`
      : `the cluster still has a leader (${leader})${running.length > 1 ? `; running members: ${running.join(", ")}` : ""}`;
  throw new NexusError(
    "BAD_CONFIG",
    `${who}: recovering ${o.nodeUrl} would make a second cluster from the same data, and the two ` +
      "would accept different writes; nothing was changed. If the cluster still has a majority, " +
      `do not recover: remove this node from it (nexus repl <a running member>, then removeNode ${o.nodeUrl}) ` +
      "or start it again to rejoin. If it lost its majority, stop every member that still runs, " +
      "choose the most up-to-date survivor (nexus recover --inspect) and recover that one. Pass " +
      "--force only if you are sure the members that answered will never serve this cluster again.",
  );
}
