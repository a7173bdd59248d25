/**
 * Before a node without a write-ahead log starts: does the cluster already know it? (issue 14,
 * item 5.)
 *
 * A node whose log directory is absent starts empty: as an initial member it bootstraps a fresh
 * log at term 1 with no vote, otherwise it waits to be sent the log. That is right for a node that
 * never took part (a new cluster's members, the late one included, and a node being added), and
 * unsafe for one whose log was lost after it took part: it could vote twice in a term and forget
 * entries a majority counted on it for. When its store survived, `RaftNode.open` refuses (the
 * store's applied index is above 0). When the store went too, only the cluster can tell: its
 * leader tracks, for each member, the highest index the member acknowledged (`match`). A member
 * the leader lists with `match > 0` has had a log; a member of a new cluster that has not started
 * yet, or one just added, has `match` 0.
 *
 * So, with no log directory, the node asks every other URL of its cluster list, over the peer
 * transport (with its TLS and admission), for the member list with progress a leader answers
 * (member-progress.ts), and refuses with BAD_CONFIG (exit 2 from the programs) when an answer
 * names it with `match > 0`. Best effort: a peer that does not answer within the timeout, answers
 * that it does not lead, or refuses a non-member (a node not added yet) tells nothing, and the
 * node starts. It misses a lost log when no leader that heard from the node is among the URLs it
 * was given (e.g. leadership changed since it went down: a new leader's `match` starts at 0).
 */
import { existsSync } from "node:fs";
import { NexusError } from "../errors/index.js";
import type { NodeId } from "../raft/types.js";
import { decodeMemberProgress } from "./member-progress.js";
import type { MemberProgressView } from "./member-progress.js";
import type { NexusLogger } from "./options.js";

/** The part of the peer transport the check uses (Http2Transport satisfies it). */
export interface ProgressAsker {
  addPeer(id: NodeId, url: string): void;
  /** The member list with progress a leader answers; rejects when the peer cannot say. */
  requestProgress(peer: NodeId, timeoutMs: number): Promise<Uint8Array>;
}

export interface BootstrapCheckOptions {
  readonly nodeId: NodeId;
  readonly nodeUrl: string;
  /** This node's WAL directory; the check runs only when it does not exist. */
  readonly logDir: string;
  /** The cluster's URLs as given (this node's own is skipped), with their ids. */
  readonly peers: readonly { readonly id: NodeId; readonly url: string }[];
  readonly transport: ProgressAsker;
  /** How long each peer has to answer, ms. */
  readonly timeoutMs: number;
  readonly logger: NexusLogger;
}

/** What a leader's answer says of this node: the index it acknowledged, if above 0. */
interface Known {
  readonly leader: NodeId;
  readonly term: number;
  readonly match: number;
}

function knownIn(view: MemberProgressView, id: NodeId): Known | undefined {
  const me = view.members.find((m) => m.id === id);
  const match = me?.progress?.match ?? 0;
  return match > 0 ? { leader: view.leader, term: view.term, match } : undefined;
}

/**
 * Asks each peer, over the peer transport, for the member list with progress a leader answers:
 * one settled result per peer, in order (rejected with NOT_LEADER when the peer answers that it
 * does not lead, UNREACHABLE when it does not answer or refuses the question).
 */
export async function askPeersForProgress(
  peers: readonly { readonly id: NodeId; readonly url: string }[],
  transport: ProgressAsker,
  timeoutMs: number,
): Promise<PromiseSettledResult<MemberProgressView>[]> {
  for (const p of peers) transport.addPeer(p.id, p.url);
  return Promise.allSettled(
    peers.map(async (p) => decodeMemberProgress(await transport.requestProgress(p.id, timeoutMs))),
  );
}

/**
 * Resolves when this node may start empty; throws NexusError BAD_CONFIG, saying how to rejoin
 * safely, when its log directory is absent and a leader among its peers knows it as a member that
 * acknowledged entries. Does nothing when the log directory exists (its own state decides).
 */
export async function checkNotKnownToCluster(o: BootstrapCheckOptions): Promise<void> {
  if (existsSync(o.logDir)) return;
  const peers = o.peers.filter((p) => p.id !== o.nodeId);
  if (peers.length === 0) return;
  const answers = await askPeersForProgress(peers, o.transport, o.timeoutMs);
  let leaders = 0;
  for (const [i, a] of answers.entries()) {
    if (a.status === "rejected") {
      o.logger.debug(
        { peer: peers[i]!.url, error: (a.reason as Error).message },
        "no write-ahead log: a peer did not say whether it knows this node",
      );
      continue;
    }
    leaders++;
    const known = knownIn(a.value, o.nodeId);
    if (known === undefined) continue;
    throw new NexusError(
      "BAD_CONFIG",
      `the write-ahead log in ${o.logDir} does not exist, but the cluster already knows this node ` +
        `(${o.nodeId}, ${o.nodeUrl}) as a member that acknowledged entries up to index ` +
        `${known.match} (said by the leader ${known.leader} at ${peers[i]!.url}, term ${known.term}): ` +
        "this node's log was lost, and it must not rejoin with a fresh one (it could vote twice " +
        "in a term and forget entries the cluster relies on). To bring it back safely, remove it " +
        `from the cluster (nexus repl <a running member>, then removeNode ${o.nodeUrl}) and add ` +
        "it again (addNode) with an empty data directory (both the log and the store), or start " +
        "it as a new member with a new node URL and a new data directory.",
    );
  }
  o.logger.info(
    { peers: peers.length, leaders },
    "no write-ahead log: no leader among the peers knows this node as having taken part; starting empty",
  );
}
