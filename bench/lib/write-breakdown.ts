/**
 * Where one write's time goes, at one client: a Nexus cluster started with NEXUS_TRACE_WRITES
 * (src/node/write-trace.ts) on every node, one closed-loop client writing through the leader, then
 * the medians of the intervals between the timestamps the nodes recorded.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { closedLoop } from "./closed-loop.js";
import { percentile } from "./closed-loop.js";
import type { NexusClusterOptions, NexusStoreKind } from "./clusters.js";
import { startNexus } from "./clusters.js";
import { nexusClient, retryUntil, waitWritable } from "./kv-clients.js";

interface WriteLine {
  kind: "write";
  index: number;
  proposedAt?: number;
  walStartAt?: number;
  walDoneAt?: number;
  committedAt?: number;
  appliedAt: number;
}
interface GrpcLine {
  kind: "grpc";
  receivedAt: number;
  answeredAt: number;
}

/** The stages, in the order a write passes them; leader fsync and the follower path overlap. */
export const STAGES = [
  ["grpcMs", "gRPC both ways: client, HTTP/2, decode and encode (client p50 - server p50)"],
  ["handlerToProposeMs", "service handler to propose (checks, entry encoding)"],
  ["proposeToWalMs", "propose to the leader's WAL write (Ready loop turn)"],
  ["leaderFsyncMs", "leader WAL write + fdatasync (overlaps the next three)"],
  ["toFollowerMs", "leader send to follower WAL write (transport, decode, follower Ready)"],
  ["followerFsyncMs", "follower WAL write + fdatasync (the first follower)"],
  ["ackToCommitMs", "follower durable to leader knows commit (ack, leader Ready)"],
  ["commitToApplyMs", "commit to applied (applier queue, store apply)"],
  ["applyToAnswerMs", "applied to the service's answer (waiter, promise chain)"],
] as const;
export type StageName = (typeof STAGES)[number][0];

export interface Breakdown {
  readonly store: NexusStoreKind;
  readonly writes: number;
  readonly clientP50Ms: number;
  readonly serverP50Ms: number;
  readonly stages: Readonly<Record<StageName, number>>;
}

function readLines(file: string): (WriteLine | GrpcLine)[] {
  let text = "";
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    if ((err as { code?: unknown }).code === "ENOENT") return [];
    throw err;
  }
  return text
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as WriteLine | GrpcLine);
}

const median = (xs: number[]): number =>
  Number(
    percentile(
      xs.sort((a, b) => a - b),
      50,
    ).toFixed(3),
  );

/**
 * The stage medians from the trace lines of the leader (the node that took every request) and of
 * the followers, and the client's p50.
 */
export function breakdownOf(
  store: NexusStoreKind,
  leader: readonly (WriteLine | GrpcLine)[],
  followers: readonly (readonly (WriteLine | GrpcLine)[])[],
  clientP50Ms: number,
): Breakdown {
  const grpc = leader.filter((l): l is GrpcLine => l.kind === "grpc");
  const byIndex = followers.map(
    (f) =>
      new Map(
        f.filter((l): l is WriteLine => l.kind === "write").map((l) => [l.index, l] as const),
      ),
  );
  const acc: Record<StageName, number[]> = Object.fromEntries(
    STAGES.map(([k]) => [k, [] as number[]]),
  ) as Record<StageName, number[]>;
  const server: number[] = [];
  let writes = 0;
  for (const w of leader) {
    if (w.kind !== "write" || w.proposedAt === undefined) continue;
    const { proposedAt, walStartAt, walDoneAt, committedAt, appliedAt } = w;
    if (walStartAt === undefined || walDoneAt === undefined || committedAt === undefined) continue;
    // With one client, the request that proposed this entry is the one received before it.
    const g = grpc.find((x) => x.receivedAt <= proposedAt && proposedAt <= x.answeredAt);
    if (g === undefined) continue;
    // The follower whose acknowledgement made the quorum of three: the first durable one.
    const f = byIndex
      .map((m) => m.get(w.index))
      .filter((x): x is WriteLine => x?.walStartAt !== undefined && x.walDoneAt !== undefined)
      .sort((a, b) => a.walDoneAt! - b.walDoneAt!)[0];
    if (f === undefined) continue;
    writes++;
    server.push(g.answeredAt - g.receivedAt);
    acc.handlerToProposeMs.push(proposedAt - g.receivedAt);
    acc.proposeToWalMs.push(walStartAt - proposedAt);
    acc.leaderFsyncMs.push(walDoneAt - walStartAt);
    acc.toFollowerMs.push(f.walStartAt! - walStartAt);
    acc.followerFsyncMs.push(f.walDoneAt! - f.walStartAt!);
    acc.ackToCommitMs.push(committedAt - f.walDoneAt!);
    acc.commitToApplyMs.push(appliedAt - committedAt);
    acc.applyToAnswerMs.push(g.answeredAt - appliedAt);
  }
  const serverP50Ms = median(server);
  const stages = Object.fromEntries(STAGES.map(([k]) => [k, median(acc[k])])) as Record<
    StageName,
    number
  >;
  stages.grpcMs = Number(Math.max(0, clientP50Ms - serverP50Ms).toFixed(3));
  return { store, writes, clientP50Ms, serverP50Ms, stages };
}

/** Runs one client's writes through the leader of a traced cluster for `seconds`. */
export async function measureBreakdown(
  root: string,
  store: NexusStoreKind,
  seconds: number,
  value: Buffer,
  cluster: Omit<NexusClusterOptions, "env"> = {},
): Promise<Breakdown> {
  const traceOf = (i: number): string => join(root, `trace-${i}.jsonl`);
  const nodes = await startNexus(root, store, {
    ...cluster,
    env: (i) => ({ NEXUS_TRACE_WRITES: traceOf(i) }),
  });
  const client = nexusClient(nodes.addrs, store);
  let leader = -1;
  let clientP50Ms = 0;
  try {
    await retryUntil(`${store} setup`, () => client.setup());
    await waitWritable(client);
    const url = await client.leaderUrl(0);
    leader = nodes.peerUrls.indexOf(url);
    if (leader < 0) throw new Error(`no leader known to node 0 (listNodes said "${url}")`);
    const figures = await closedLoop({
      clients: 1,
      seconds,
      warmupSeconds: Math.min(1, seconds / 2),
      pids: nodes.pids,
      op: (_, seq) => client.put(leader, `k${seq % 100}`, value),
    });
    clientP50Ms = figures.p50Ms;
  } finally {
    client.close();
    await nodes.stop();
  }
  const lines = nodes.addrs.map((_, i) => readLines(traceOf(i)));
  return breakdownOf(
    store,
    lines[leader]!,
    lines.filter((_, i) => i !== leader),
    clientP50Ms,
  );
}

/** The breakdown as a Markdown table, one column per store. */
export function formatBreakdown(bs: readonly Breakdown[]): string {
  const row = (cells: readonly string[]): string => `| ${cells.join(" | ")} |`;
  return [
    row(["stage (median ms, one client, via the leader)", ...bs.map((b) => `nexus ${b.store}`)]),
    row(["---", ...bs.map(() => "---:")]),
    ...STAGES.map(([k, what]) => row([what, ...bs.map((b) => b.stages[k].toFixed(2))])),
    row(["server total (handler in to answer)", ...bs.map((b) => b.serverP50Ms.toFixed(2))]),
    row(["client p50", ...bs.map((b) => b.clientP50Ms.toFixed(2))]),
  ].join("\n");
}
