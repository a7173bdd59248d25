/**
 * The clusters the cluster benchmarks drive: three etcd members, or three Nexus nodes (`bin/nexus
 * serve`) on the memory or the SQLite store, all on loopback, with fsync on, each in its own
 * folder under `root`. Both expose gRPC client addresses; both stop every process they started.
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "../../test/free-port.js";
import { ServerProcess } from "./server-process.js";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** A running cluster: its client addresses (host:port) and server processes. */
export interface BenchCluster {
  readonly system: string;
  readonly addrs: readonly string[];
  readonly processes: readonly ServerProcess[];
  readonly pids: readonly number[];
  /** The nodes' peer URLs, in the order of addrs. */
  readonly peerUrls: readonly string[];
  stop(): Promise<void>;
}

function cluster(
  system: string,
  addrs: string[],
  peerUrls: string[],
  processes: ServerProcess[],
): BenchCluster {
  return {
    system,
    addrs,
    peerUrls,
    processes,
    pids: processes.map((p) => p.pid),
    stop: async () => {
      await Promise.all(processes.map((p) => p.stop()));
    },
  };
}

async function ports(n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(await freePort());
  return out;
}

/**
 * Three etcd members (`etcd` from PATH, e.g. Debian's etcd-server) with their defaults: fsync on,
 * 100 ms heartbeats, 1 s elections. Resolves once the processes run (they log only warnings):
 * wait for the cluster through a client (waitWritable).
 */
export async function startEtcd(root: string, size = 3): Promise<BenchCluster> {
  const peer = await ports(size);
  const client = await ports(size);
  const names = peer.map((_, i) => `m${i}`);
  const initial = names.map((n, i) => `${n}=http://127.0.0.1:${peer[i]}`).join(",");
  const procs = await Promise.all(
    names.map((name, i) =>
      ServerProcess.start(`etcd ${name}`, "etcd", [
        `--name=${name}`,
        `--data-dir=${join(root, name)}`,
        `--listen-peer-urls=http://127.0.0.1:${peer[i]}`,
        `--initial-advertise-peer-urls=http://127.0.0.1:${peer[i]}`,
        `--listen-client-urls=http://127.0.0.1:${client[i]}`,
        `--advertise-client-urls=http://127.0.0.1:${client[i]}`,
        `--initial-cluster=${initial}`,
        "--initial-cluster-state=new",
        "--initial-cluster-token=nexus-bench",
        "--logger=zap",
        "--log-level=warn",
      ]).catch((err: unknown) => {
        if ((err as { code?: unknown }).code === "ENOENT") {
          throw new Error(
            "etcd is not installed: apt-get install etcd-server (Debian's etcd 3.4), or put etcd on PATH",
          );
        }
        throw err;
      }),
    ),
  );
  return cluster(
    "etcd",
    client.map((p) => `127.0.0.1:${p}`),
    peer.map((p) => `http://127.0.0.1:${p}`),
    procs,
  );
}

export type NexusStoreKind = "memory" | "sqlite";

export interface NexusClusterOptions {
  /** The checkout whose bin/nexus runs (default this one; another for an A/B comparison). */
  readonly home?: string;
  /** Flags for `node` itself before the program, per node (e.g. --cpu-prof for the leader). */
  readonly nodeArgs?: (i: number) => readonly string[];
  /** Extra `nexus serve` flags for every node. */
  readonly flags?: readonly string[];
  /** Extra environment, per node. */
  readonly env?: (i: number) => Readonly<Record<string, string>>;
}

/**
 * Three Nexus nodes, `bin/nexus serve -store <store>`, with their defaults (fsync on, 100 ms
 * heartbeats, 1 s elections) and lease reads allowed. Resolves once every node serves gRPC.
 */
export async function startNexus(
  root: string,
  store: NexusStoreKind,
  o: NexusClusterOptions = {},
  size = 3,
): Promise<BenchCluster> {
  const raft = await ports(size);
  const grpc = await ports(size);
  const urls = raft.map((p) => `http://127.0.0.1:${p}`).join(",");
  const procs = await Promise.all(
    raft.map((p, i) =>
      ServerProcess.start(
        `nexus node ${i}`,
        process.execPath,
        [
          ...(o.nodeArgs?.(i) ?? []),
          join(o.home ?? ROOT, "bin", "nexus"),
          "serve",
          `-nexus-node-url=http://127.0.0.1:${p}`,
          `-nexus-cluster-url=${urls}`,
          `-grpcPort=${grpc[i]}`,
          `-data-dir=${join(root, `n${i}`)}`,
          `-store=${store}`,
          "-nexusLeaseBasedReads",
          "-log-level=warn",
          ...(o.flags ?? []),
        ],
        {
          ready: (out) => out.includes("serving gRPC"),
          env: { ...process.env, ...o.env?.(i) },
        },
      ),
    ),
  );
  return cluster(
    `nexus-${store}`,
    grpc.map((p) => `127.0.0.1:${p}`),
    raft.map((p) => `http://127.0.0.1:${p}`),
    procs,
  );
}
