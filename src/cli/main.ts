/**
 * The `nexus` command. This commands: `nexus wal repair <dir>`; the service commands
 * (serve, repl, status) come with the service.
 */
import { runWalRepair, WAL_REPAIR_USAGE } from "./wal-repair.js";

const USAGE = `usage: nexus <command> [args]

commands:
  wal repair <dir>   keep a corrupted write-ahead log up to its last good record

Run "nexus <command> --help" for a command's options.
`;

export async function main(argv: readonly string[]): Promise<number> {
  const out = (s: string): void => void process.stdout.write(s);
  const err = (s: string): void => void process.stderr.write(s);
  const [cmd, sub, ...rest] = argv;
  if (cmd === undefined || cmd === "--help" || cmd === "-h" || cmd === "help") {
    out(USAGE);
    return cmd === undefined ? 2 : 0;
  }
  if (cmd === "wal") {
    if (sub === "repair") return runWalRepair(rest, out, err);
    if (sub === "--help" || sub === "-h") {
      out(WAL_REPAIR_USAGE);
      return 0;
    }
    err(`nexus wal: unknown subcommand ${String(sub)}\n\n${WAL_REPAIR_USAGE}`);
    return 2;
  }
  err(`nexus: unknown command "${cmd}"\n\n${USAGE}`);
  return 2;
}
