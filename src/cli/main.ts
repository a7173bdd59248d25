/**
 * The `nexus` command: serve, repl, status, local-cluster, wal repair, backup and restore.
 */
import { BACKUP_USAGE, runBackup } from "./backup.js";
import { AUTH_USAGE, runAuth } from "./auth-command.js";
import { EXIT } from "./exit-codes.js";
import { RESTORE_USAGE, runRestore } from "./restore.js";
import { RECOVER_USAGE, runRecover } from "./recover.js";
import { LOCAL_CLUSTER_USAGE, runLocalCluster } from "./local-cluster.js";
import { replUsage, runRepl } from "./repl.js";
import { runServe } from "./serve.js";
import type { Io } from "./serve.js";
import { STATUS_USAGE, runStatus } from "./status.js";
import { runWalRepair, WAL_REPAIR_USAGE } from "./wal-repair.js";
import { versionLine } from "./version.js";

const USAGE = `usage: nexus <command> [args]   (installed from npm also as nexus-raft)

commands:
  serve              run a node: the gRPC service on a store (-store sqlite|redis|mysql|memory)
  repl <addr> ...    the client: listNodes, addNode, removeNode, sqlite|mysql|redis load|save
  status <addr>      whether a node serves, and the members it sees
  local-cluster      a 3-node cluster on SQLite on this machine (npm start)
  wal repair <dir>   keep a corrupted write-ahead log up to its last good record
  backup <addr> <file>  a consistent backup of the replicated state (also backup verify|info)
  restore <file> ...    prepare one node of a new cluster from a backup
  recover ...           after losing a majority: a survivor as a one-member cluster (--inspect)
  auth new-token     a client token and its -auth-file line (also auth hash-token)
  version            the version of nexus-raft (also --version)

Run "nexus <command> --help" for a command's flags.
`;

const stdio: Io = {
  out: (s) => void process.stdout.write(s),
  err: (s) => void process.stderr.write(s),
};

export async function main(argv: readonly string[], io: Io = stdio): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case undefined:
      io.err(USAGE);
      return EXIT.USAGE;
    case "help":
    case "-h":
    case "-help":
    case "--help":
      io.out(USAGE);
      return EXIT.OK;
    case "version":
    case "-version":
    case "--version":
      io.out(versionLine());
      return EXIT.OK;
    case "serve":
      return runServe(rest, { name: "nexus serve" }, io);
    case "repl":
      return runRepl(rest, io, "nexus repl");
    case "status":
      return runStatus(rest, io);
    case "backup":
      return runBackup(rest, io);
    case "restore":
      return runRestore(rest, io);
    case "recover":
      return runRecover(rest, io);
    case "local-cluster":
      return runLocalCluster(rest, io);
    case "auth":
      return runAuth(rest, io);
    case "wal": {
      const [sub, ...args] = rest;
      if (sub === "repair") return runWalRepair(args, io.out, io.err);
      if (sub === "--help" || sub === "-h" || sub === "-help") {
        io.out(WAL_REPAIR_USAGE);
        return EXIT.OK;
      }
      io.err(`nexus wal: unknown subcommand ${String(sub)}\n\n${WAL_REPAIR_USAGE}`);
      return EXIT.USAGE;
    }
    default:
      io.err(`nexus: unknown command "${cmd}"\n\n${USAGE}`);
      return EXIT.USAGE;
  }
}

/** Usage texts by command, for docs and tests. */
export const USAGES = {
  nexus: USAGE,
  repl: replUsage("repl"),
  status: STATUS_USAGE,
  localCluster: LOCAL_CLUSTER_USAGE,
  walRepair: WAL_REPAIR_USAGE,
  backup: BACKUP_USAGE,
  restore: RESTORE_USAGE,
  recover: RECOVER_USAGE,
  auth: AUTH_USAGE,
} as const;
