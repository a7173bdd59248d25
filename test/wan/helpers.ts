/**
 * Set-up shared by the tests that put link relays in front of real transports and nodes: a relay
 * with the same one-way delay each way to one port, a relay per node for a cluster whose nodes
 * listen on one port and advertise the relay's, and in-process replicators on such a cluster.
 */
import { join } from "node:path";
import { createReplicator } from "../../src/node/replicator.js";
import type { Replicator } from "../../src/node/replicator.js";
import type { ReplicatorOptions } from "../../src/node/options.js";
import { MemoryStore } from "../../src/store/memory/memory-store.js";
import { freePort } from "../free-port.js";
import { LinkRelay } from "./link-relay.js";

/** Starts a relay on a free loopback port to `targetPort`, `oneWayDelayMs` each way, no jitter. */
export async function startRelay(targetPort: number, oneWayDelayMs: number): Promise<LinkRelay> {
  const profile = { delayMs: oneWayDelayMs, jitterMs: 0, bandwidthBps: 0 };
  const r = new LinkRelay({
    listenHost: "127.0.0.1",
    listenPort: 0,
    targetHost: "127.0.0.1",
    targetPort,
    out: profile,
    back: profile,
  });
  await r.start();
  return r;
}

/** A cluster whose node i listens on `listenPorts[i]` and is reached through `relays[i]`. */
export interface RelayedCluster {
  /** The ports the nodes bind (`-nexus-listen-url`, `listenUrl`). */
  readonly listenPorts: readonly number[];
  readonly relays: readonly LinkRelay[];
  /** The relays' URLs: what the nodes advertise (`-nexus-node-url`, `nodeUrl`, the cluster URLs). */
  readonly urls: readonly string[];
}

/** Picks `size` free listen ports and starts a relay to each, `oneWayDelayMs` each way. */
export async function startRelayedCluster(
  size: number,
  oneWayDelayMs: number,
): Promise<RelayedCluster> {
  const listenPorts = await Promise.all(Array.from({ length: size }, () => freePort()));
  const relays = await Promise.all(listenPorts.map((port) => startRelay(port, oneWayDelayMs)));
  const urls = relays.map((r) => `http://127.0.0.1:${r.port}`);
  return { listenPorts, relays, urls };
}

/** Closes every relay, one after another. */
export async function closeRelays(relays: readonly LinkRelay[]): Promise<void> {
  for (const r of relays) await r.close();
}

/**
 * One in-process replicator per node of `cluster`, each on a MemoryStore with its WAL and
 * snapshots in `<root>/n<i>`, plus `options(i)` (timing, metrics, ...). Not started.
 */
export function relayedReplicators(
  cluster: RelayedCluster,
  root: string,
  options: (i: number) => Partial<ReplicatorOptions>,
): Replicator[] {
  return cluster.urls.map((u, i) =>
    createReplicator({
      nodeUrl: u,
      listenUrl: `http://127.0.0.1:${cluster.listenPorts[i]!}`,
      clusterUrls: cluster.urls,
      store: new MemoryStore(),
      logDir: join(root, `n${i}`, "logs"),
      snapDir: join(root, `n${i}`, "snap"),
      ...options(i),
    }),
  );
}
