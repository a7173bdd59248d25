/**
 * `nexus local-cluster` (what `npm start` runs): a cluster of N nodes on SQLite on this machine,
 * each a child process running `nexus serve`, with data in one folder. Prints the addresses and
 * the repl commands to try; Ctrl-C (or SIGTERM) stops every node gracefully. Started again with
 * the same folder, the cluster resumes with its data. A node that dies (killed, even by SIGTERM)
 * is reported with how it ended and the others go on; typing `restart <n>` starts it again. The
 * folder is locked (cluster.lock): a second cluster on it is refused, naming the first's pid.
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { createWriteStream, mkdirSync } from "node:fs";
import { createServer } from "node:net";
import { join, relative, resolve } from "node:path";
import { createInterface } from "node:readline";
import { createNexusClient } from "../api/client.js";
import { EXIT } from "./exit-codes.js";
import type { FlagSpec } from "./flags.js";
import { FlagError, bool, describeFlags, int, parseFlags, str } from "./flags.js";
import type { DirLock } from "./data-dir.js";
import { LockedError, acquireLock, underTempDir } from "./data-dir.js";
import type { Io } from "./serve.js";
import { VERSION_FLAG, versionLine } from "./version.js";

const FLAGS: readonly FlagSpec[] = [
  { name: "nodes", kind: "int", min: 1, max: 9, default: 3, help: "number of nodes" },
  {
    name: "dir",
    kind: "string",
    default: "nexus-local",
    help: "folder for the nodes' WALs, snapshots, SQLite files and logs",
  },
  {
    name: "raft-port",
    kind: "int",
    min: 1,
    max: 65500,
    default: 9021,
    help: "peer port of the first node; the others follow",
  },
  {
    name: "grpc-port",
    kind: "int",
    min: 1,
    max: 65500,
    default: 9121,
    help: "gRPC port of the first node; the others follow",
  },
  VERSION_FLAG,
];

export const LOCAL_CLUSTER_USAGE =
  "usage: nexus local-cluster [flags]   (npm start)\n\n" +
  "Starts a local cluster on SQLite, one process per node, and stops it on Ctrl-C. A node that\n" +
  'dies is reported and the others go on; type "restart <n>" and Enter to start it again.\n\n' +
  `flags:\n${describeFlags(FLAGS)}`;

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once("error", () => resolve(false));
    s.listen(port, "127.0.0.1", () => s.close(() => resolve(true)));
  });
}

interface Started {
  readonly child: ChildProcess;
  /** How it ended: its exit code, or the signal that killed it. */
  readonly exited: Promise<Ended>;
  /** Resolves when it says it serves; rejects if it exits first. */
  readonly ready: Promise<void>;
}

/** How a node process ended. */
export interface Ended {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** "exited with status 1", "killed by SIGKILL". */
export function describeEnd(e: Ended): string {
  if (e.signal !== null) return `killed by ${e.signal}`;
  return `exited with status ${String(e.code)}`;
}

/** What the stop summary shows for a node: its exit code, or the signal that killed it. */
function shortEnd(e: Ended): string {
  return e.signal !== null ? `killed by ${e.signal}` : String(e.code);
}

export async function runLocalCluster(argv: readonly string[], io: Io): Promise<number> {
  let flags: ReturnType<typeof parseFlags>;
  try {
    flags = parseFlags(argv, FLAGS);
  } catch (err) {
    if (!(err instanceof FlagError)) throw err;
    io.err(`nexus local-cluster: ${err.message}\n\n${LOCAL_CLUSTER_USAGE}`);
    return EXIT.USAGE;
  }
  if (flags.help) {
    io.out(LOCAL_CLUSTER_USAGE);
    return EXIT.OK;
  }
  if (bool(flags, "version")) {
    io.out(versionLine());
    return EXIT.OK;
  }
  const n = int(flags, "nodes")!;
  const dir = resolve(str(flags, "dir")!);
  const rel = relative(process.cwd(), dir) || ".";
  const raftPorts = Array.from({ length: n }, (_, i) => int(flags, "raft-port")! + i);
  const grpcPorts = Array.from({ length: n }, (_, i) => int(flags, "grpc-port")! + i);
  // One cluster per folder: a second one on other ports would share the nodes' data.
  let lock: DirLock;
  try {
    lock = acquireLock(join(dir, "cluster.lock"), `the local cluster's folder ${rel}/`);
  } catch (err) {
    if (!(err instanceof LockedError)) throw err;
    io.err(
      `nexus local-cluster: ${err.message}\n` +
        "Stop that cluster (Ctrl-C in its terminal), or start another one in its own folder: " +
        "npm start -- -dir <folder> -raft-port <port> -grpc-port <port>\n",
    );
    return EXIT.FAILED;
  }
  if (underTempDir(dir)) {
    io.err(
      `nexus local-cluster: WARNING: the cluster's data (${rel}/) is under a temporary folder, ` +
        "which a reboot or a temp cleaner may empty; choose a lasting one with -dir\n",
    );
  }
  try {
    return await runCluster(io, n, dir, rel, raftPorts, grpcPorts);
  } finally {
    lock.release();
  }
}

async function runCluster(
  io: Io,
  n: number,
  dir: string,
  rel: string,
  raftPorts: readonly number[],
  grpcPorts: readonly number[],
): Promise<number> {
  for (const p of [...raftPorts, ...grpcPorts]) {
    if (!(await portFree(p))) {
      io.err(
        `nexus local-cluster: port ${p} on 127.0.0.1 is in use (another cluster running?); ` +
          "stop it or choose other ports with -raft-port and -grpc-port\n",
      );
      return EXIT.FAILED;
    }
  }
  mkdirSync(dir, { recursive: true });
  const cluster = raftPorts.map((p) => `http://127.0.0.1:${p}`).join(",");
  const launcher = process.argv[1]!;
  const started: Started[] = [];
  let stopping = false;
  /** Set once every node served and a leader was elected. */
  let up = false;
  const stopAll = (sig: NodeJS.Signals): void => {
    for (const s of started) {
      if (s.child.exitCode === null && s.child.signalCode === null) s.child.kill(sig);
    }
  };
  // If this process exits for any reason, its nodes do not outlive it.
  const onExit = (): void => stopAll("SIGKILL");
  process.on("exit", onExit);

  const startNode = (i: number): Started => {
    const nodeDir = join(dir, `node${i + 1}`);
    mkdirSync(nodeDir, { recursive: true });
    const log = createWriteStream(join(nodeDir, "node.log"), { flags: "a" });
    const child = spawn(
      process.execPath,
      [
        launcher,
        "serve",
        "-store=sqlite",
        `-nexus-node-url=http://127.0.0.1:${raftPorts[i]!}`,
        `-nexus-cluster-url=${cluster}`,
        `-grpcPort=${grpcPorts[i]!}`,
        "-grpcHost=127.0.0.1",
        // The layout of the first releases (node1/logs, node1/snap, node1/store.db) is kept.
        `-nexus-log-dir=${join(nodeDir, "logs")}`,
        `-nexus-snap-dir=${join(nodeDir, "snap")}`,
        `-sqlitePath=${join(nodeDir, "store.db")}`,
        // node.log is read by people: text lines, whatever this terminal is.
        "-log-format=text",
      ],
      // Its own process group: Ctrl-C reaches this process only, which stops the nodes in order.
      // Its stdin is a pipe from here: if this process dies, the node sees it end and stops.
      {
        detached: true,
        stdio: ["pipe", "pipe", "pipe"],
        env: { ...process.env, NEXUS_STOP_WITH_PARENT: "1" },
      },
    );
    child.stderr!.pipe(log);
    const exited = new Promise<Ended>((res) =>
      child.once("exit", (code, signal) => res({ code, signal })),
    );
    const ready = new Promise<void>((res, rej) => {
      const lines = createInterface({ input: child.stdout! });
      lines.on("line", (l) => {
        log.write(`${l}\n`);
        if (l.includes("serving gRPC")) res();
      });
      void exited.then((e) =>
        rej(
          new Error(
            `node ${i + 1} ${describeEnd(e)}; see ${join(rel, `node${i + 1}`, "node.log")}`,
          ),
        ),
      );
    });
    ready.catch(() => undefined);
    // A node that ends while the cluster runs: the others go on, and it can be started again.
    void exited.then((e) => {
      if (stopping || !up || started[i]?.child !== child) return;
      io.err(
        `nexus local-cluster: node ${i + 1} ${describeEnd(e)} (see ${join(rel, `node${i + 1}`, "node.log")}); ` +
          `the others go on. Type "restart ${i + 1}" and Enter here to start it again.\n`,
      );
    });
    return { child, exited, ready };
  };
  for (let i = 0; i < n; i++) started.push(startNode(i));

  let signalled: NodeJS.Signals | undefined;
  let wake: () => void = () => {};
  const stopRequested = new Promise<void>((res) => (wake = res));
  const onSignal = (s: NodeJS.Signals): void => {
    if (signalled !== undefined) {
      stopAll("SIGKILL");
      return;
    }
    signalled = s;
    wake();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  // Commands typed here while the cluster runs: "restart <n>".
  const commands = createInterface({ input: process.stdin, terminal: false });
  commands.on("line", (line) => {
    const t = line.trim();
    if (t === "" || stopping) return;
    const m = /^restart\s+(\d+)$/.exec(t);
    const i = m === null ? -1 : Number(m[1]) - 1;
    if (m === null || i < 0 || i >= n) {
      io.err(`nexus local-cluster: unknown command "${t}"; type "restart <1-${n}>"\n`);
      return;
    }
    const cur = started[i]!;
    if (cur.child.exitCode === null && cur.child.signalCode === null) {
      io.err(`nexus local-cluster: node ${i + 1} is running (pid ${String(cur.child.pid)})\n`);
      return;
    }
    io.out(`restarting node ${i + 1}...\n`);
    const s = startNode(i);
    started[i] = s;
    s.ready.then(
      () => io.out(`node ${i + 1} is serving again on 127.0.0.1:${grpcPorts[i]!}\n`),
      (err: unknown) => io.err(`nexus local-cluster: ${(err as Error).message}\n`),
    );
  });

  let code: number = EXIT.OK;
  try {
    await Promise.race([Promise.all(started.map((s) => s.ready)), stopRequested]);
    if (signalled === undefined) {
      await waitForLeader(grpcPorts[0]!, stopRequested);
      io.out(`Nexus local cluster: ${n} node${n > 1 ? "s" : ""} on SQLite, data in ${rel}/\n\n`);
      for (let i = 0; i < n; i++) {
        io.out(
          `  node ${i + 1}: gRPC 127.0.0.1:${grpcPorts[i]!}   peers http://127.0.0.1:${raftPorts[i]!}   log ${rel}/node${i + 1}/node.log   pid ${String(started[i]!.child.pid)}\n`,
        );
      }
      const g = (i: number): number => grpcPorts[Math.min(i, n - 1)]!;
      io.out(
        "\nTry, in another terminal:\n" +
          `  bin/repl 127.0.0.1:${g(0)} listNodes\n` +
          `  bin/repl 127.0.0.1:${g(0)} sqlite save "create table kv (k text primary key, v text)"\n` +
          `  bin/repl 127.0.0.1:${g(1)} sqlite save "insert into kv values ('hello', 'world')"\n` +
          `  bin/repl 127.0.0.1:${g(2)} sqlite load "select * from kv"\n` +
          `  bin/nexus status 127.0.0.1:${g(0)}\n` +
          '\nKill a node (kill <pid>) and the others go on; type "restart <n>" here to start it again.\n' +
          "Ctrl-C stops the cluster; npm start again resumes it with its data.\n",
      );
      // Run until a signal; nodes that end meanwhile are reported and may be restarted.
      up = true;
      for (const [i, s] of started.entries()) {
        if (s.child.exitCode !== null || s.child.signalCode !== null) {
          io.err(`nexus local-cluster: node ${i + 1} is not running; type "restart ${i + 1}"\n`);
        }
      }
      await stopRequested;
    }
  } catch (err) {
    io.err(`nexus local-cluster: ${(err as Error).message}\n`);
    code = EXIT.FAILED;
  }
  stopping = true;
  commands.close();
  process.stdin.destroy();
  io.out("\nstopping the nodes...\n");
  stopAll("SIGTERM");
  const timer = setTimeout(() => stopAll("SIGKILL"), 15_000);
  const ends = await Promise.all(started.map((s) => s.exited));
  clearTimeout(timer);
  process.off("exit", onExit);
  process.off("SIGINT", onSignal);
  process.off("SIGTERM", onSignal);
  io.out(`stopped (${ends.map((e, i) => `node ${i + 1}: ${shortEnd(e)}`).join(", ")})\n`);
  return code;
}

async function waitForLeader(grpcPort: number, stop: Promise<void>): Promise<void> {
  const c = createNexusClient(`127.0.0.1:${grpcPort}`, { timeoutMs: 2000 });
  let stopped = false;
  void stop.then(() => (stopped = true));
  try {
    const deadline = Date.now() + 30_000;
    while (!stopped && Date.now() < deadline) {
      try {
        if ((await c.listNodes()).leader !== "") return;
      } catch {
        // not up yet
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    if (!stopped) throw new Error("no leader was elected within 30 s; see the nodes' logs");
  } finally {
    c.close();
  }
}
