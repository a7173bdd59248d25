/**
 * A node as a service: a Replicator on the chosen store with the gRPC API in front, until SIGINT or
 * SIGTERM. Used by `nexus serve` and by the original-style programs (`bin/sqlite_repl`).
 *
 * Shutdown: stop taking calls, let in-flight calls finish (up to a grace period), stop the node and
 * close the store. A second signal exits at once. A fatal node error (WAL write or fsync failure)
 * exits with status 1 after closing what can be closed.
 */
import { startApiServer } from "../api/server.js";
import type { ApiServer } from "../api/server.js";
import { isNexusError } from "../errors/index.js";
import { nodeIdOf, parseNodeUrl } from "../node/node-id.js";
import { createReplicator } from "../node/replicator.js";
import { testHooksFromEnv } from "../node/test-hooks.js";
import type { Replicator } from "../node/replicator.js";
import { EXIT, exitCodeOf } from "./exit-codes.js";
import type { FlagSpec } from "./flags.js";
import { FlagError, bool, describeFlags, parseFlags, str } from "./flags.js";
import { createCliLogger } from "./logger.js";
import { NODE_FLAGS, nodeConfigOf } from "./node-flags.js";
import type { StoreKind } from "./stores.js";
import { STORE_KINDS } from "./stores.js";
import { VERSION_FLAG, versionLine } from "./version.js";

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
  const specs: FlagSpec[] = [...NODE_FLAGS];
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
  specs.push(VERSION_FLAG);
  return specs;
}

/** The usage text of a serve program. */
export function serveUsage(p: ServeProgram): string {
  return (
    `usage: ${p.name} -nexus-node-url <url> -nexus-cluster-url <url,url,...> -grpcPort <port> [flags]\n\n` +
    `Runs a Nexus node${p.store === undefined ? "" : ` replicating onto ${p.store.display}`} ` +
    "with the gRPC service nexus.api.Nexus. Flags take one dash or two, and -flag value or -flag=value.\n\n" +
    `flags:\n${describeFlags(specsOf(p))}`
  );
}

/** Runs the service until a signal; resolves with the exit code. */
export async function runServe(argv: readonly string[], p: ServeProgram, io: Io): Promise<number> {
  const specs = specsOf(p);
  let kind: StoreKind;
  let cfg: ReturnType<typeof nodeConfigOf>;
  let flags: ReturnType<typeof parseFlags>;
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
    cfg = nodeConfigOf(flags);
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

  let nodeDir: string;
  try {
    nodeDir = `node_${BigInt(`0x${nodeIdOf(parseNodeUrl(cfg.replicator.nodeUrl))}`).toString()}`;
  } catch (err) {
    io.err(`${p.name}: -nexus-node-url: ${(err as Error).message}\n`);
    return EXIT.USAGE;
  }
  const logger = createCliLogger(cfg.logLevel, { node: cfg.replicator.nodeUrl });
  let fatal: (err: Error) => void = () => {};
  const fatalSeen = new Promise<Error>((resolve) => (fatal = resolve));
  let early: NodeJS.Signals | undefined;
  const onEarlySignal = (s: NodeJS.Signals): void => void (early = s);
  process.on("SIGINT", onEarlySignal);
  process.on("SIGTERM", onEarlySignal);
  let rep: Replicator;
  let describe: string;
  try {
    // A store that is down at start (Redis, MySQL) is waited for, as it is when it fails later.
    for (let attempt = 1; ; attempt++) {
      let made: Awaited<ReturnType<StoreKind["create"]>>;
      try {
        made = await kind.create(flags, nodeDir);
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
            store: made.store,
            logger,
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
      replicator: rep,
      host: cfg.grpcHost,
      port: cfg.grpcPort,
      maxRequestBytes: cfg.replicator.maxRequestBytes ?? 4 * 1024 * 1024,
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
  // SIGHUP reloads the peer certificates (they are also reloaded when their files change).
  const onHangup = (): void => {
    try {
      const changed = rep.reloadPeerTls();
      logger.info(changed ? "peer TLS certificates reloaded" : "peer TLS certificates unchanged");
    } catch (err) {
      logger.error(
        { error: (err as Error).message },
        "peer TLS certificates not reloaded; keeping those in use",
      );
    }
  };
  if (cfg.replicator.peerTls !== undefined) process.on("SIGHUP", onHangup);
  const st = rep.status();
  io.out(
    `${p.name}: node ${st.id} (${st.url}) serving gRPC on ${cfg.grpcHost}:${api.port}; ` +
      `store ${describe}; WAL in ${cfg.replicator.logDir}\n`,
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
    await api.close(1000).catch(() => undefined);
    await rep.stop().catch(() => undefined);
    for (const s of signals) process.off(s, handler);
    process.off("SIGHUP", onHangup);
    return EXIT.FAILED;
  }
  logger.info({ signal: why }, "shutting down");
  io.err(`${p.name}: ${why}: finishing in-flight requests and stopping\n`);
  await api.close(GRACE_MS);
  await rep.stop();
  io.err(`${p.name}: stopped\n`);
  for (const s of signals) process.off(s, handler);
  process.off("SIGHUP", onHangup);
  return EXIT.OK;
}
