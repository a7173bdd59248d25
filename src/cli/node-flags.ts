/**
 * The flags every node program takes: the original's `-nexus-*` flags and `-grpcPort`, with the
 * original's names, meanings and defaults, plus a few of ours (marked in their help). They become
 * ReplicatorOptions and the gRPC listen address.
 */
import type { NodeState, ReplicatorOptions } from "../node/options.js";
import { DATA_DIR_FLAG } from "./data-dir.js";
import type { FlagSpec, ParsedFlags } from "./flags.js";
import { FlagError, bool, int, str } from "./flags.js";
import { LOG_FORMATS, LOG_LEVELS, defaultLogFormat } from "./logger.js";
import type { LogFormat, LogLevel } from "./logger.js";
import { DEFAULT_REQUEST_WINDOW_MS } from "../store/request-records.js";

export const NODE_FLAGS: readonly FlagSpec[] = [
  {
    name: "nexus-node-url",
    kind: "string",
    help: "URL of this node for peer traffic, http://<host>:<port>, or https:// with the -peer-* TLS flags (required)",
  },
  {
    name: "nexus-listen-url",
    kind: "string",
    help: "where the peer server binds, e.g. http://0.0.0.0:9021, when it differs from -nexus-node-url (NAT, containers, relays); peers still dial -nexus-node-url (default: -nexus-node-url)",
  },
  {
    name: "nexus-leader-priority",
    kind: "int",
    default: 0,
    min: 0,
    max: 1000,
    help: "this node's leader priority, 0-1000: the leader hands leadership to a caught-up voter with a higher one (put the highest where the writers are; equal priorities never move it)",
  },
  {
    name: "nexus-cluster-url",
    kind: "string",
    help: "comma-separated URLs of the initial cluster's nodes (required)",
  },
  {
    name: "grpcPort",
    kind: "int",
    min: 1,
    max: 65535,
    help: "port on which the Nexus gRPC service listens (required)",
  },
  {
    name: "grpcHost",
    kind: "string",
    default: "127.0.0.1",
    help: "address the gRPC service binds; 0.0.0.0 for every interface, as the original (ours; see docs/security.md)",
  },
  {
    name: "nexus-cluster-name",
    kind: "string",
    default: "nexus",
    help: "name shared by the cluster's nodes; traffic from another cluster is refused",
  },
  DATA_DIR_FLAG,
  {
    name: "nexus-log-dir",
    kind: "string",
    help: "dir for the raft WAL; the node uses node_<id> in it (default <data-dir>/wal; the original's /tmp/logs)",
  },
  {
    name: "nexus-snap-dir",
    kind: "string",
    help: "dir for raft snapshots; the node uses node_<id> in it (default <data-dir>/snap; the original's /tmp/snap)",
  },
  {
    name: "nexus-repl-timeout",
    kind: "int",
    min: 1,
    default: 5,
    help: "seconds a save may take; after that its outcome is unknown",
  },
  {
    name: "nexusLeaseBasedReads",
    kind: "bool",
    aliases: ["nexus-lease-based-reads"],
    help: "serve reads from the leader's lease instead of a quorum round trip (default false)",
  },
  {
    name: "nexus-node-state",
    kind: "string",
    default: "auto",
    help: "new: join an existing cluster; existing: a member of the initial cluster; auto: decide from -nexus-cluster-url",
  },
  {
    name: "nexus-snapshot-count",
    kind: "int",
    min: 1,
    default: 10_000,
    help: "applied entries between snapshots",
  },
  {
    name: "nexus-snapshot-catchup-entries",
    kind: "int",
    min: 0,
    default: 5_000,
    help: "entries kept after a snapshot for slow followers",
  },
  {
    name: "nexus-max-snapshots",
    kind: "int",
    min: 0,
    default: 5,
    help: "snapshot files kept (0 is unlimited)",
  },
  {
    name: "nexus-max-wals",
    kind: "int",
    min: 0,
    default: 5,
    help: "WAL files kept (0 is unlimited)",
  },
  {
    name: "nexus-heartbeat-ms",
    kind: "string",
    default: "100",
    help:
      "ms between leader heartbeats (ours; on a WAN about the round-trip time), or auto: " +
      "measured at start, the farthest peer's round trip (at least 100) with a 10x election timeout",
  },
  {
    name: "nexus-election-ms",
    kind: "int",
    min: 2,
    default: 1000,
    help: "ms without a leader before an election (ours; 10x the heartbeat; with auto heartbeats, the lowest)",
  },
  {
    name: "nexus-max-request-bytes",
    kind: "int",
    min: 1,
    default: 4 * 1024 * 1024,
    help: "largest save/load request accepted, bytes (ours)",
  },
  {
    name: "nexus-consistency-check-interval",
    kind: "string",
    default: "5m",
    help: "time between consistency checks across replicas, e.g. 30s, 5m, 1h; 0 disables (ours; the original's TODO)",
  },
  {
    name: "nexus-request-window",
    kind: "string",
    default: "10m",
    help:
      "how long a save's request id is remembered, e.g. 10m, 1h (at least 1s): a retry with the " +
      "id within it gets the first result and is not applied again, a retry issued longer ago " +
      "is refused. Counted on the leaders' clocks, from when the request was first issued. Give " +
      "every node the same: a node with another window may decide a retry differently and is " +
      "then found diverged (ours)",
  },
  {
    name: "nexus-on-divergence",
    kind: "string",
    default: "report",
    help: "what a replica found diverged does: report (keep applying, answer NOT_SERVING) or stop (also stop applying) (ours)",
  },
  {
    name: "peer-cert-file",
    kind: "string",
    help: "this node's certificate for mutual TLS with peers (PEM; must name its https:// URL); with -peer-key-file and -peer-trusted-ca-file (etcd's names)",
  },
  {
    name: "peer-key-file",
    kind: "string",
    help: "the private key of -peer-cert-file (PEM)",
  },
  {
    name: "peer-trusted-ca-file",
    kind: "string",
    help: "the CA certificate(s) (PEM) every peer's certificate must be signed by",
  },
  {
    name: "grpc-cert-file",
    kind: "string",
    help: "certificate (PEM) of the gRPC service: clients connect with TLS; with -grpc-key-file (reloaded on SIGHUP or change)",
  },
  { name: "grpc-key-file", kind: "string", help: "the private key of -grpc-cert-file (PEM)" },
  {
    name: "grpc-trusted-ca-file",
    kind: "string",
    help: "CA certificate(s) (PEM): gRPC clients must present a certificate signed by one (needs -grpc-cert-file)",
  },
  {
    name: "auth-file",
    kind: "string",
    help: 'tokens of gRPC clients, lines "<name> <sha256 hex of token> <read,write,admin>"; re-read on SIGHUP (see nexus auth)',
  },
  {
    name: "nexus-max-snapshot-bytes",
    kind: "int",
    min: 1,
    default: 8 * 1024 ** 3,
    help: "largest snapshot accepted from a peer, bytes (ours; default 8 GiB)",
  },
  {
    name: "http-port",
    kind: "int",
    min: 0,
    max: 65535,
    help: "port of the operations HTTP server: /metrics (Prometheus), /livez, /readyz, /status and a status page at /; HTTPS with the -grpc-* TLS flags (ours; default none)",
  },
  {
    name: "http-host",
    kind: "string",
    default: "127.0.0.1",
    help: "address the operations HTTP server binds (ours; loopback unless you mean to expose it)",
  },
  {
    name: "ready-max-lag",
    kind: "int",
    min: 0,
    default: 1000,
    help: "most committed entries not yet applied for /readyz to answer ready (ours)",
  },
  {
    name: "statsd-addr",
    kind: "string",
    help: "host:port of a StatsD server to push metrics to over UDP, e.g. 127.0.0.1:8125 (the original's names: save.latency.ms, ...)",
  },
  {
    name: "log-level",
    kind: "string",
    default: "info",
    help: "debug, info, warn, error or silent; logs go to stderr (ours)",
  },
  {
    name: "log-format",
    kind: "string",
    help: "text (time, level, message, fields) or json (one object a line); default text when stderr is a terminal, json otherwise (ours)",
  },
];

/** What the node flags say, validated. */
export interface NodeConfig {
  readonly replicator: Omit<ReplicatorOptions, "store" | "logger" | "onFatal">;
  /** -data-dir, when given. */
  readonly dataDir?: string;
  /** The gRPC service's TLS files (trustedCaFile: client certificates required), if any. */
  readonly grpcTls?: { certFile: string; keyFile: string; trustedCaFile?: string };
  /** The gRPC service's token file, if any. */
  readonly authFile?: string;
  readonly grpcHost: string;
  readonly grpcPort: number;
  readonly logLevel: LogLevel;
  readonly logFormat: LogFormat;
  /** The operations HTTP port, undefined for none. */
  readonly httpPort: number | undefined;
  readonly httpHost: string;
  /** /readyz answers not ready while more committed entries than this are not applied yet. */
  readonly readyMaxLag: number;
  /** host:port of a StatsD server, undefined for none. */
  readonly statsdAddr: string | undefined;
}

function required(f: ParsedFlags, name: string, example: string): string {
  const v = str(f, name);
  if (v === undefined || v.trim() === "") {
    throw new FlagError(`flag -${name} is required, e.g. -${name} ${example}`);
  }
  return v.trim();
}

const DURATION_UNITS_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * A Go-style duration ("300ms", "30s", "5m", "1h30m", "1.5h"; "0" alone means zero) in ms.
 * Throws FlagError naming the flag.
 */
export function parseDurationMs(flag: string, text: string): number {
  const t = text.trim();
  if (t === "0") return 0;
  const part = /(\d+(?:\.\d+)?)(ms|s|m|h)/y;
  let ms = 0;
  let at = 0;
  while (at < t.length) {
    part.lastIndex = at;
    const m = part.exec(t);
    if (m === null) break;
    ms += Number(m[1]) * DURATION_UNITS_MS[m[2]!]!;
    at = part.lastIndex;
  }
  if (t === "" || at !== t.length || !Number.isSafeInteger(Math.round(ms))) {
    throw new FlagError(
      `flag -${flag} must be a duration such as 30s, 5m or 1h30m (or 0), got "${text}"`,
    );
  }
  return Math.round(ms);
}

/**
 * -nexus-request-window in ms: the stores' `requestWindowMs` (src/store/request-records.ts).
 * Throws FlagError when it is not a duration of at least 1s.
 */
export function requestWindowMsOf(f: ParsedFlags): number {
  // Programs that open a store without running a node (nexus restore, recover) have no such flag.
  const text = str(f, "nexus-request-window");
  if (text === undefined) return DEFAULT_REQUEST_WINDOW_MS;
  const ms = parseDurationMs("nexus-request-window", text);
  if (ms < 1000) {
    throw new FlagError(
      `flag -nexus-request-window must be at least 1s, got "${str(f, "nexus-request-window")!}"; ` +
        "the default is 10m",
    );
  }
  return ms;
}

/** Reads the node flags. Throws FlagError naming the flag when one is missing or wrong. */
export function nodeConfigOf(f: ParsedFlags): NodeConfig {
  const nodeUrl = required(f, "nexus-node-url", "http://127.0.0.1:9021");
  const clusterUrls = required(
    f,
    "nexus-cluster-url",
    '"http://127.0.0.1:9021,http://127.0.0.1:9022,http://127.0.0.1:9023"',
  )
    .split(",")
    .map((u) => u.trim())
    .filter((u) => u !== "");
  const grpcPort = int(f, "grpcPort");
  if (grpcPort === undefined)
    throw new FlagError("flag -grpcPort is required, e.g. -grpcPort 9121");
  const heartbeat = str(f, "nexus-heartbeat-ms")!;
  if (heartbeat !== "auto" && !/^[1-9]\d{0,8}$/.test(heartbeat)) {
    throw new FlagError(
      `flag -nexus-heartbeat-ms must be an integer from 1 (ms) or auto, got "${heartbeat}"`,
    );
  }
  const nodeState = str(f, "nexus-node-state")!;
  if (!["auto", "new", "existing"].includes(nodeState)) {
    throw new FlagError(`flag -nexus-node-state must be new, existing or auto, got "${nodeState}"`);
  }
  const checkEveryMs = parseDurationMs(
    "nexus-consistency-check-interval",
    str(f, "nexus-consistency-check-interval")!,
  );
  requestWindowMsOf(f);
  const onDivergence = str(f, "nexus-on-divergence")!;
  if (onDivergence !== "report" && onDivergence !== "stop") {
    throw new FlagError(`flag -nexus-on-divergence must be report or stop, got "${onDivergence}"`);
  }
  const tlsFiles = {
    certFile: str(f, "peer-cert-file"),
    keyFile: str(f, "peer-key-file"),
    trustedCaFile: str(f, "peer-trusted-ca-file"),
  };
  const tlsGiven = Object.values(tlsFiles).filter((v) => v !== undefined && v.trim() !== "");
  if (tlsGiven.length > 0 && tlsGiven.length < 3) {
    throw new FlagError(
      "peer TLS needs all three of -peer-cert-file, -peer-key-file and -peer-trusted-ca-file",
    );
  }
  const statsdAddr = str(f, "statsd-addr");
  if (statsdAddr !== undefined && !/^(\[[^\]]+\]|[^:]+):\d{1,5}$/.test(statsdAddr.trim())) {
    throw new FlagError(
      `flag -statsd-addr must be host:port, e.g. 127.0.0.1:8125, got "${statsdAddr}"`,
    );
  }
  const given = (name: string): string | undefined => {
    const v = str(f, name)?.trim();
    return v === undefined || v === "" ? undefined : v;
  };
  const [grpcCert, grpcKey, grpcCa] = [
    given("grpc-cert-file"),
    given("grpc-key-file"),
    given("grpc-trusted-ca-file"),
  ];
  if (
    (grpcCert === undefined) !== (grpcKey === undefined) ||
    (grpcCa !== undefined && grpcCert === undefined)
  ) {
    throw new FlagError(
      "gRPC TLS needs both -grpc-cert-file and -grpc-key-file (and -grpc-trusted-ca-file only with them)",
    );
  }
  const authFile = given("auth-file");
  const logLevel = str(f, "log-level")!;
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw new FlagError(
      `flag -log-level must be one of ${LOG_LEVELS.join(", ")}, got "${logLevel}"`,
    );
  }
  const logFormat = str(f, "log-format") ?? defaultLogFormat();
  if (!(LOG_FORMATS as readonly string[]).includes(logFormat)) {
    throw new FlagError(`flag -log-format must be text or json, got "${logFormat}"`);
  }
  return {
    replicator: {
      nodeUrl,
      ...(str(f, "nexus-listen-url") === undefined
        ? {}
        : { listenUrl: str(f, "nexus-listen-url")! }),
      clusterUrls,
      leaderPriority: int(f, "nexus-leader-priority")!,
      clusterName: str(f, "nexus-cluster-name")!,
      // Absent: in the data folder (serve.ts resolves them with -data-dir).
      ...(str(f, "nexus-log-dir") === undefined ? {} : { logDir: str(f, "nexus-log-dir")! }),
      ...(str(f, "nexus-snap-dir") === undefined ? {} : { snapDir: str(f, "nexus-snap-dir")! }),
      replTimeoutMs: int(f, "nexus-repl-timeout")! * 1000,
      leaseBasedReads: bool(f, "nexusLeaseBasedReads"),
      nodeState: nodeState as NodeState,
      snapshotCount: int(f, "nexus-snapshot-count")!,
      snapshotCatchUpEntries: int(f, "nexus-snapshot-catchup-entries")!,
      maxSnapshots: int(f, "nexus-max-snapshots")!,
      maxWals: int(f, "nexus-max-wals")!,
      heartbeatTickMs: heartbeat === "auto" ? "auto" : Number(heartbeat),
      electionTickMs: int(f, "nexus-election-ms")!,
      maxRequestBytes: int(f, "nexus-max-request-bytes")!,
      maxSnapshotBytes: int(f, "nexus-max-snapshot-bytes")!,
      ...(tlsGiven.length === 3
        ? {
            peerTls: {
              certFile: tlsFiles.certFile!,
              keyFile: tlsFiles.keyFile!,
              trustedCaFile: tlsFiles.trustedCaFile!,
            },
          }
        : {}),
      consistencyCheckIntervalMs: checkEveryMs,
      onDivergence,
    },
    ...(str(f, "data-dir") === undefined ? {} : { dataDir: str(f, "data-dir")! }),
    ...(grpcCert === undefined
      ? {}
      : {
          grpcTls: {
            certFile: grpcCert,
            keyFile: grpcKey!,
            ...(grpcCa === undefined ? {} : { trustedCaFile: grpcCa }),
          },
        }),
    ...(authFile === undefined ? {} : { authFile }),
    grpcHost: str(f, "grpcHost")!,
    grpcPort,
    logLevel: logLevel as LogLevel,
    logFormat: logFormat as LogFormat,
    httpPort: int(f, "http-port"),
    httpHost: str(f, "http-host")!,
    readyMaxLag: int(f, "ready-max-lag")!,
    statsdAddr: statsdAddr?.trim(),
  };
}
