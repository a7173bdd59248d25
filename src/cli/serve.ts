/**
 * A node as a service: a Replicator on the chosen store with the gRPC API in front, until SIGINT or
 * SIGTERM. Used by `nexus serve` and by the original-style programs (`bin/sqlite_repl`).
 *
 * Shutdown: stop taking calls, let in-flight calls finish (up to a grace period), stop the node and
 * close the store. A second signal exits at once. A fatal node error (WAL write or fsync failure)
 * exits with status 1 after closing what can be closed.
 */
import { startApiServer } from "../api/server.js";
import { nodeDirName } from "../node/options.js";
import type { ApiServer } from "../api/server.js";
import { isNexusError } from "../errors/index.js";
import { TokenAuth } from "../security/auth.js";
import { loadGrpcTls } from "../security/tls.js";
import type { ReloadableTls } from "../security/tls.js";
import { nodeIdOf, parseNodeUrl } from "../node/node-id.js";
import { createReplicator } from "../node/replicator.js";
import { createOperations } from "../ops/operations.js";
import { ALL_CRASH_POINTS } from "../node/crash-points.js";
import { crashAt, parseCrashSpec } from "../storage/crash-points.js";
import type { CrashHook } from "../storage/crash-points.js";
import { testHooksFromEnv } from "../node/test-hooks.js";
import type { Replicator } from "../node/replicator.js";
import { EXIT, exitCodeOf } from "./exit-codes.js";
import type { FlagSpec } from "./flags.js";
import type { ParsedFlags } from "./flags.js";
import { FlagError, bool, describeFlags, parseFlags, str } from "./flags.js";
import type { DataPaths, DirLock } from "./data-dir.js";
import { LockedError, acquireLock, dataPaths, tempDataWarning } from "./data-dir.js";
import type { NexusLogger } from "../node/options.js";
import { CONFIG_FLAG, envNameOf, withEnvAndFile } from "./config-sources.js";
import { createCliLogger } from "./logger.js";
import { NODE_FLAGS, nodeConfigOf } from "./node-flags.js";
import type { NodeConfig } from "./node-flags.js";
import type { StoreKind } from "./stores.js";
import { STORE_KINDS, sqlitePathOf } from "./stores.js";
import { VERSION_FLAG, packageInfo, versionLine } from "./version.js";
import {
  PERIODIC_BACKUP_FLAGS,
  PeriodicBackups,
  periodicBackupConfigOf,
  prepareBackupDir,
} from "./periodic-backups.js";
import type { PeriodicBackupConfig } from "./periodic-backups.js";

export interface ServeProgram {
  /** The name in messages and usage, e.g. "sqlite_repl" or "nexus serve". */
  readonly name: string;
  /** A fixed store (the original-style programs), or undefined for `-store <kind>`. */
  readonly store?: StoreKind;
}

export interface Io {
  out(s: string): void;
  err(s: string): void;
}

const GRACE_MS = 5000;

function specsOf(p: ServeProgram): FlagSpec[] {
  const specs: FlagSpec[] = [...NODE_FLAGS, ...PERIODIC_BACKUP_FLAGS];
  if (p.store === undefined) {
    specs.push({
      name: "store",
      kind: "string",
      default: "sqlite",
      help: `the store replicated onto: ${STORE_KINDS.map((k) => k.name).join(", ")}`,
    });
    const seen = new Set<string>();
    for (const k of STORE_KINDS) {
      for (const s of k.flags) {
        if (!seen.has(s.name)) specs.push({ ...s, help: `${s.help} [-store ${k.name}]` });
        seen.add(s.name);
      }
    }
  } else {
    specs.push(...p.store.flags);
  }
  specs.push(CONFIG_FLAG, VERSION_FLAG);
  return specs;
}

/** The usage text of a serve program. */
export function serveUsage(p: ServeProgram): string {
  return (
    `usage: ${p.name} -nexus-node-url <url> -nexus-cluster-url <url,url,...> -grpcPort <port> [flags]\n\n` +
    `Runs a Nexus node${p.store === undefined ? "" : ` replicating onto ${p.store.display}`} ` +
    "with the gRPC service nexus.api.Nexus. Flags take one dash or two, and -flag value or -flag=value.\n\n" +
    "Every flag can also be given as the environment variable shown with it, or in a JSON or YAML\n" +
    "file named by -config whose keys are the flag names (grpcPort: 9121). The command line wins\n" +
    "over the environment, which wins over the file. See docs/configuration.md.\n\n" +
    `flags:\n${describeFlags(specsOf(p), envNameOf)}`
  );
}

/** Whether a bind address reaches this machine only. */
export function isLoopback(host: string): boolean {
  const h = host
    .trim()
    .toLowerCase()
    .replace(/^\[|\]$/g, "");
  return h === "localhost" || h === "::1" || /^127\.\d+\.\d+\.\d+$/.test(h);
}

/** Runs the service until a signal; resolves with the exit code. */
export async function runServe(argv: readonly string[], p: ServeProgram, io: Io): Promise<number> {
  const specs = specsOf(p);
  let kind: StoreKind;
  let cfg: ReturnType<typeof nodeConfigOf>;
  let flags: ReturnType<typeof parseFlags>;
  let backups: PeriodicBackupConfig | undefined;
  try {
    flags = parseFlags(argv, specs);
    if (flags.help) {
      io.out(serveUsage(p));
      return EXIT.OK;
    }
    if (bool(flags, "version")) {
      io.out(versionLine());
      return EXIT.OK;
    }
    flags = withEnvAndFile(flags, specs);
    cfg = nodeConfigOf(flags);
    backups = periodicBackupConfigOf(flags);
    if (p.store !== undefined) kind = p.store;
    else {
      const name = str(flags, "store")!;
      const k = STORE_KINDS.find((s) => s.name === name);
      if (k === undefined) {
        throw new FlagError(
          `flag -store must be one of ${STORE_KINDS.map((s) => s.name).join(", ")}, got "${name}"`,
        );
      }
      kind = k;
    }
  } catch (err) {
    if (err instanceof FlagError || isNexusError(err, "BAD_CONFIG")) {
      io.err(`${p.name}: ${(err as Error).message}\n\n${serveUsage(p)}`);
      return EXIT.USAGE;
    }
    throw err;
  }

  // The gRPC service's TLS and tokens: checked before the node starts.
  let grpcTls: ReloadableTls | undefined;
  let auth: TokenAuth | undefined;
  try {
    if (cfg.grpcTls !== undefined) grpcTls = loadGrpcTls(cfg.grpcTls);
    if (cfg.authFile !== undefined) auth = TokenAuth.load(cfg.authFile);
  } catch (err) {
    if (!isNexusError(err, "BAD_CONFIG")) throw err;
    io.err(`${p.name}: ${err.message}\n`);
    return EXIT.USAGE;
  }

  let nodeDir: string;
  let idHex: string;
  try {
    idHex = nodeIdOf(parseNodeUrl(cfg.replicator.nodeUrl));
    nodeDir = nodeDirName(idHex);
  } catch (err) {
    io.err(`${p.name}: -nexus-node-url: ${(err as Error).message}\n`);
    return EXIT.USAGE;
  }
  const paths = dataPaths(
    { dataDir: cfg.dataDir, logDir: cfg.replicator.logDir, snapDir: cfg.replicator.snapDir },
    idHex,
  );
  const logger = createCliLogger(cfg.logLevel, { node: cfg.replicator.nodeUrl }, cfg.logFormat);
  const warning = tempDataWarning({
    WAL: paths.logDir,
    snapshots: paths.snapDir,
    ...(kind.name === "sqlite" ? { store: sqlitePathOf(flags, paths.dataDir) } : {}),
  });
  if (warning !== undefined) {
    // The replicator logs its own warning at start; this one is for the person at the terminal.
    io.err(`${p.name}: ${warning}\n`);
  }
  // One process per data folder: a second one would interleave writes to the same WAL.
  let lock: DirLock;
  try {
    lock = acquireLock(paths.lockFile, `the data of node ${idHex} (WAL in ${paths.logDir})`);
  } catch (err) {
    if (!(err instanceof LockedError)) throw err;
    io.err(`${p.name}: ${err.message}\n`);
    return EXIT.FAILED;
  }
  try {
    return await serveLocked(p, io, flags, kind, { ...cfg, dataPaths: paths }, nodeDir, logger, {
      grpcTls,
      auth,
      backups,
    });
  } finally {
    lock.release();
  }
}

/** The rest of runServe, with the data folder locked. */
async function serveLocked(
  p: ServeProgram,
  io: Io,
  flags: ParsedFlags,
  kind: StoreKind,
  node: NodeConfig & { dataPaths: DataPaths },
  nodeDir: string,
  logger: NexusLogger,
  extra: {
    grpcTls: ReloadableTls | undefined;
    auth: TokenAuth | undefined;
    backups: PeriodicBackupConfig | undefined;
  },
): Promise<number> {
  const { grpcTls, auth } = extra;
  const cfg: NodeConfig = {
    ...node,
    replicator: {
      ...node.replicator,
      logDir: node.dataPaths.logDir,
      snapDir: node.dataPaths.snapDir,
    },
  };
  // Crash tests (test/crash-sweep): NEXUS_CRASH_POINT=<point>[:<nth>] kills this process with
  // SIGKILL the nth time the node reaches that point (src/node/crash-points.ts).
  let crash: CrashHook | undefined;
  const crashSpec = process.env["NEXUS_CRASH_POINT"];
  if (crashSpec !== undefined && crashSpec !== "") {
    try {
      const spec = parseCrashSpec(crashSpec, ALL_CRASH_POINTS);
      crash = crashAt(spec);
      logger.warn({ point: spec.point, nth: spec.nth }, "crash test: SIGKILL at a crash point");
    } catch (err) {
      io.err(`${p.name}: NEXUS_CRASH_POINT: ${(err as Error).message}\n`);
      return EXIT.USAGE;
    }
  }
  // The periodic backups' folder, checked (and a crash's leftovers removed) before anything runs.
  if (extra.backups !== undefined) {
    try {
      await prepareBackupDir(extra.backups, logger);
    } catch (err) {
      if (!(err instanceof FlagError)) throw err;
      io.err(`${p.name}: ${err.message}\n`);
      return EXIT.USAGE;
    }
  }
  let fatal: (err: Error) => void = () => {};
  const fatalSeen = new Promise<Error>((resolve) => (fatal = resolve));
  let early: NodeJS.Signals | undefined;
  const onEarlySignal = (s: NodeJS.Signals): void => void (early = s);
  process.on("SIGINT", onEarlySignal);
  process.on("SIGTERM", onEarlySignal);
  const ops = createOperations({
    version: packageInfo().version,
    httpPort: cfg.httpPort,
    httpHost: cfg.httpHost,
    statsdAddr: cfg.statsdAddr,
    readiness: { maxApplyLagEntries: cfg.readyMaxLag },
    statsdNode: new URL(cfg.replicator.nodeUrl).host,
    defaultReadMode: cfg.replicator.leaseBasedReads === true ? "lease" : "linearizable",
    tls: grpcTls,
  });
  let rep: Replicator;
  let describe: string;
  try {
    // A store that is down at start (Redis, MySQL) is waited for, as it is when it fails later.
    for (let attempt = 1; ; attempt++) {
      let made: Awaited<ReturnType<StoreKind["create"]>>;
      try {
        made = await kind.create(flags, nodeDir, node.dataPaths.dataDir);
      } catch (err) {
        if (err instanceof FlagError) {
          io.err(`${p.name}: ${err.message}\n\n${serveUsage(p)}`);
          return EXIT.USAGE;
        }
        // A value the store refused, or its driver package missing: the message says what to do.
        if (isNexusError(err, "BAD_CONFIG")) {
          io.err(`${p.name}: ${err.message}\n`);
          return EXIT.USAGE;
        }
        throw err;
      }
      describe = made.describe;
      try {
        rep = createReplicator(
          {
            ...cfg.replicator,
            store: ops.store(made.store),
            ...(ops.metrics === undefined ? {} : { metrics: ops.metrics }),
            logger,
            ...(crash === undefined ? {} : { crash }),
            onFatal: (e) => fatal(e),
          },
          // Test hooks are read once here, never on the Ready path.
          { testHooks: testHooksFromEnv(process.env) },
        );
      } catch (err) {
        if (isNexusError(err, "BAD_CONFIG")) {
          io.err(`${p.name}: ${err.message}\n\n${serveUsage(p)}`);
          return EXIT.USAGE;
        }
        throw err;
      }
      try {
        await rep.start();
        break;
      } catch (err) {
        await rep.stop().catch(() => undefined);
        await made.store.close().catch(() => undefined);
        if (!isNexusError(err, "STORE_UNAVAILABLE") || early !== undefined) {
          io.err(`${p.name}: the node could not start: ${(err as Error).message}\n`);
          return isNexusError(err) ? exitCodeOf(err.code) : EXIT.FAILED;
        }
        if (attempt === 1) io.err(`${p.name}: waiting for the store: ${err.message}\n`);
        logger.warn({ error: err.message, attempt }, "store unavailable at start; retrying");
        await new Promise((r) => setTimeout(r, Math.min(5000, 200 * attempt)));
        if (early !== undefined) {
          io.err(`${p.name}: ${early} while waiting for the store; exiting\n`);
          return EXIT.OK;
        }
      }
    }
  } finally {
    process.off("SIGINT", onEarlySignal);
    process.off("SIGTERM", onEarlySignal);
  }
  let api: ApiServer;
  try {
    api = await startApiServer({
      replicator: ops.replicator(rep),
      host: cfg.grpcHost,
      port: cfg.grpcPort,
      maxRequestBytes: cfg.replicator.maxRequestBytes ?? 4 * 1024 * 1024,
      version: packageInfo().version,
      ...(grpcTls === undefined ? {} : { tls: grpcTls }),
      ...(auth === undefined ? {} : { auth }),
      logger,
    });
  } catch (err) {
    const e = err as Error & { code?: string };
    io.err(
      e.code === "EADDRINUSE"
        ? `${p.name}: gRPC port ${cfg.grpcPort} on ${cfg.grpcHost} is in use; choose another -grpcPort\n`
        : `${p.name}: the gRPC service could not start: ${e.message}\n`,
    );
    await rep.stop().catch(() => undefined);
    return EXIT.FAILED;
  }
  let httpPort: number | undefined;
  try {
    ({ httpPort } = await ops.start(rep, `${cfg.grpcHost}:${api.port}`));
  } catch (err) {
    const e = err as Error & { code?: string };
    io.err(
      e.code === "EADDRINUSE"
        ? `${p.name}: HTTP port ${cfg.httpPort} on ${cfg.httpHost} is in use; choose another -http-port\n`
        : `${p.name}: the operations HTTP server could not start: ${e.message}\n`,
    );
    await api.close(1000).catch(() => undefined);
    await rep.stop().catch(() => undefined);
    return EXIT.FAILED;
  }
  // Periodic backups: every node has the schedule, the leader of the moment takes them.
  let periodic: PeriodicBackups | undefined;
  if (extra.backups !== undefined) {
    periodic = new PeriodicBackups({
      config: extra.backups,
      replicator: rep,
      logger,
      metrics: ops.metrics,
      nexusVersion: packageInfo().version,
      source: `${cfg.grpcHost}:${api.port}`,
    });
    periodic.start();
  }
  const signals: NodeJS.Signals[] = ["SIGINT", "SIGTERM"];
  let onSignal: (s: NodeJS.Signals) => void = () => {};
  const signalSeen = new Promise<NodeJS.Signals>((resolve) => (onSignal = resolve));
  let stopping = false;
  const handler = (s: NodeJS.Signals): void => {
    if (stopping) {
      io.err(`${p.name}: ${s} again; exiting now\n`);
      process.exit(EXIT.INTERRUPTED);
    }
    stopping = true;
    onSignal(s);
  };
  // Installed before the "serving" line: whoever reads it may signal at once.
  for (const s of signals) process.on(s, handler);
  // SIGHUP reloads the peer and gRPC certificates (also reloaded when their files change) and the
  // auth file. What does not load is kept as it was, and the log says why.
  const reloads: [string, () => boolean | number][] = [];
  if (cfg.replicator.peerTls !== undefined)
    reloads.push(["peer TLS certificates", () => rep.reloadPeerTls()]);
  if (grpcTls !== undefined) reloads.push(["gRPC TLS certificates", () => grpcTls.reload()]);
  if (auth !== undefined) reloads.push(["auth file", () => auth.reload()]);
  const onHangup = (): void => {
    for (const [what, reload] of reloads) {
      try {
        const r = reload();
        if (typeof r === "number") logger.info({ tokens: r }, `${what} reloaded`);
        else logger.info(r ? `${what} reloaded` : `${what} unchanged`);
      } catch (err) {
        logger.error(
          { error: (err as Error).message },
          `${what} not reloaded; keeping those in use`,
        );
      }
    }
  };
  if (reloads.length > 0) process.on("SIGHUP", onHangup);
  grpcTls?.watch(2000, logger);
  if (!isLoopback(cfg.grpcHost) && (grpcTls === undefined || auth === undefined)) {
    logger.warn(
      { grpcHost: cfg.grpcHost, tls: grpcTls !== undefined, auth: auth !== undefined },
      "the gRPC service is bound beyond loopback without " +
        (grpcTls === undefined && auth === undefined
          ? "TLS and tokens"
          : grpcTls === undefined
            ? "TLS"
            : "tokens") +
        ": anyone who reaches the port can read" +
        (auth === undefined ? ", write and change the membership" : " the traffic") +
        "; give -grpc-cert-file/-grpc-key-file and -auth-file (docs/security.md)",
    );
  }
  const st = rep.status();
  io.out(
    `${p.name}: node ${st.id} (${st.url}) serving gRPC on ${cfg.grpcHost}:${api.port}; ` +
      `store ${describe}; WAL in ${cfg.replicator.logDir}` +
      `${httpPort === undefined ? "" : `; metrics and status on ${grpcTls === undefined ? "http" : "https"}://${cfg.httpHost}:${httpPort}/`}\n`,
  );
  logger.info({ id: st.id, grpcPort: api.port, store: describe }, "serving");
  // A node of `nexus local-cluster`: its launcher holds the other end of stdin. When the launcher
  // dies, even by SIGKILL, stdin ends and the node stops cleanly instead of living on orphaned.
  const withParent = process.env["NEXUS_STOP_WITH_PARENT"] === "1";
  if (withParent) {
    process.stdin.on("data", () => undefined);
    process.stdin.once("end", () => handler("SIGTERM"));
    process.stdin.once("error", () => handler("SIGTERM"));
  }
  const why = await Promise.race([signalSeen, fatalSeen]);
  if (withParent) process.stdin.destroy();
  stopping = true;
  if (why instanceof Error) {
    io.err(`${p.name}: the node stopped: ${why.message}\n`);
    await periodic?.stop();
    await api.close(1000).catch(() => undefined);
    await ops.close().catch(() => undefined);
    await rep.stop().catch(() => undefined);
    for (const s of signals) process.off(s, handler);
    process.off("SIGHUP", onHangup);
    return EXIT.FAILED;
  }
  logger.info({ signal: why }, "shutting down");
  io.err(`${p.name}: ${why}: finishing in-flight requests and stopping\n`);
  await periodic?.stop();
  await api.close(GRACE_MS);
  await ops.close();
  await rep.stop();
  io.err(`${p.name}: stopped\n`);
  for (const s of signals) process.off(s, handler);
  process.off("SIGHUP", onHangup);
  return EXIT.OK;
}
