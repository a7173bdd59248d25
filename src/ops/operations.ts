/**
 * The operations side of a node process, wired in one place for `nexus serve`: the metrics, the
 * measured Store and Replicator, the HTTP port and the StatsD push. Nothing runs unless asked for
 * (`httpPort` or `statsdAddr`).
 */
import type { ReadConsistency, Replicator } from "../node/replicator.js";
import type { Store } from "../store/store.js";
import { OpsMetrics } from "./metrics.js";
import { measureReplicator, measureStore } from "./measured.js";
import type { ReadinessOptions } from "./node-status.js";
import type { ReloadableTls } from "../security/tls.js";
import { startOpsServer } from "./ops-server.js";
import type { OpsServer } from "./ops-server.js";
import { StatsdPush } from "./statsd.js";

export interface OperationsOptions {
  readonly version: string;
  /** The HTTP port for /metrics, /livez, /readyz, /status and the page; undefined for none. */
  readonly httpPort?: number | undefined;
  /** Default 127.0.0.1. */
  readonly httpHost?: string;
  /** `host:port` of a StatsD server; undefined for none. */
  readonly statsdAddr?: string | undefined;
  /** Serve the HTTP port with TLS (the gRPC service's material), undefined for plain HTTP. */
  readonly tls?: ReloadableTls | undefined;
  /** The tag naming this node in StatsD (the original's nexusNode: host:port of its URL). */
  readonly statsdNode?: string;
  readonly readiness?: ReadinessOptions;
  readonly defaultReadMode: ReadConsistency;
}

export interface Operations {
  /**
   * The sink for ReplicatorOptions.metrics and for periodic backups (undefined when nothing is
   * measured).
   */
  readonly metrics: OpsMetrics | undefined;
  store(s: Store): Store;
  replicator(r: Replicator): Replicator;
  /** Starts the HTTP port (and the StatsD push) for the running replicator. */
  start(rep: Replicator, grpcAddress: string): Promise<{ httpPort: number | undefined }>;
  close(): Promise<void>;
}

/** The operations of a node; does nothing when neither httpPort nor statsdAddr is given. */
export function createOperations(o: OperationsOptions): Operations {
  if (o.httpPort === undefined && o.statsdAddr === undefined) {
    return {
      metrics: undefined,
      store: (s) => s,
      replicator: (r) => r,
      start: () => Promise.resolve({ httpPort: undefined }),
      close: () => Promise.resolve(),
    };
  }
  let running: Replicator | undefined;
  const m = new OpsMetrics(() => running, o.version);
  const statsd =
    o.statsdAddr === undefined
      ? undefined
      : StatsdPush.create(o.statsdAddr, { node: o.statsdNode ?? "" });
  if (statsd !== undefined) m.listen(statsd);
  let server: OpsServer | undefined;
  return {
    metrics: m,
    store: (s) => measureStore(s, m),
    replicator: (r) => measureReplicator(r, m, o.defaultReadMode),
    async start(rep, grpcAddress) {
      running = rep;
      m.start();
      statsd?.start(() => {
        try {
          return rep.status();
        } catch {
          return undefined;
        }
      });
      if (o.httpPort === undefined) return { httpPort: undefined };
      server = await startOpsServer({
        replicator: rep,
        metrics: m,
        host: o.httpHost ?? "127.0.0.1",
        port: o.httpPort,
        ...(o.tls === undefined ? {} : { tls: o.tls }),
        version: o.version,
        grpcAddress,
        ...(o.readiness === undefined ? {} : { readiness: o.readiness }),
      });
      return { httpPort: server.port };
    },
    async close() {
      m.stop();
      await server?.close();
      statsd?.close();
    },
  };
}
