/**
 * `nexus local-cluster` (what `npm start` runs): a cluster of N nodes on SQLite on this machine,
 * each a child process running `nexus serve`, with data in one folder. Prints the addresses and
 * the repl commands to try; Ctrl-C (or SIGTERM) stops every node gracefully. Started again with
 * the same folder, the cluster resumes with its data.
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
import { FlagError, describeFlags, int, parseFlags, str } from "./flags.js";
import type { Io } from "./serve.js";

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
];

export const LOCAL_CLUSTER_USAGE =
  "usage: nexus local-cluster [flags]   (npm start)\n\n" +
  "Starts a local cluster on SQLite, one process per node, and stops it on Ctrl-C.\n\n" +
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
  readonly exited: Promise<number | null>;
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
  const n = int(flags, "nodes")!;
  const dir = resolve(str(flags, "dir")!);
  const raftPorts = Array.from({ length: n }, (_, i) => int(flags, "raft-port")! + i);
  const grpcPorts = Array.from({ length: n }, (_, i) => int(flags, "grpc-port")! + i);
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
  const stopAll = (sig: NodeJS.Signals): void => {
    for (const s of started) if (s.child.exitCode === null) s.child.kill(sig);
  };
  // If this process exits for any reason, its nodes do not outlive it.
  const onExit = (): void => stopAll("SIGKILL");
  process.on("exit", onExit);

  const ready: Promise<void>[] = [];
  for (let i = 0; i < n; i++) {
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
        `-nexus-log-dir=${join(nodeDir, "logs")}`,
        `-nexus-snap-dir=${join(nodeDir, "snap")}`,
        `-sqlitePath=${join(nodeDir, "store.db")}`,
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
    const exited = new Promise<number | null>((res) => child.once("exit", (code) => res(code)));
    started.push({ child, exited });
    ready.push(
      new Promise<void>((res, rej) => {
        const lines = createInterface({ input: child.stdout! });
        lines.on("line", (l) => {
          log.write(`${l}\n`);
          if (l.includes("serving gRPC")) res();
        });
        void exited.then((code) =>
          rej(
            new Error(
              `node ${i + 1} exited with status ${String(code)}; see ${join(nodeDir, "node.log")}`,
            ),
          ),
        );
      }),
    );
  }

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

  let code: number = EXIT.OK;
  try {
    await Promise.race([Promise.all(ready), stopRequested]);
    if (signalled === undefined) {
      await waitForLeader(grpcPorts[0]!, stopRequested);
      const rel = relative(process.cwd(), dir) || ".";
      io.out(`Nexus local cluster: ${n} node${n > 1 ? "s" : ""} on SQLite, data in ${rel}/\n\n`);
      for (let i = 0; i < n; i++) {
        io.out(
          `  node ${i + 1}: gRPC 127.0.0.1:${grpcPorts[i]!}   peers http://127.0.0.1:${raftPorts[i]!}   log ${rel}/node${i + 1}/node.log\n`,
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
          "\nCtrl-C stops the cluster; npm start again resumes it with its data.\n",
      );
      // Run until a signal or until a node dies.
      const died = Promise.race(started.map((s, i) => s.exited.then((c) => ({ i, c }))));
      const first = await Promise.race([stopRequested.then(() => undefined), died]);
      if (first !== undefined) {
        io.err(
          `nexus local-cluster: node ${first.i + 1} exited with status ${String(first.c)}; ` +
            `see ${join(dir, `node${first.i + 1}`, "node.log")}. Stopping the others.\n`,
        );
        code = EXIT.FAILED;
      }
    }
  } catch (err) {
    io.err(`nexus local-cluster: ${(err as Error).message}\n`);
    code = EXIT.FAILED;
  }
  io.out("\nstopping the nodes...\n");
  stopAll("SIGTERM");
  const timer = setTimeout(() => stopAll("SIGKILL"), 15_000);
  const codes = await Promise.all(started.map((s) => s.exited));
  clearTimeout(timer);
  process.off("exit", onExit);
  process.off("SIGINT", onSignal);
  process.off("SIGTERM", onSignal);
  io.out(`stopped (${codes.map((c, i) => `node ${i + 1}: ${String(c)}`).join(", ")})\n`);
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
