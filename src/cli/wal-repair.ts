/**
 * The `nexus wal repair <dir>` command: prints what it did, exits 0 when the WAL opens
 * afterwards, 1 on failure, 2 on bad usage.
 */
import { repairWal } from "../storage/repair.js";
import { resolve } from "node:path";
import { LockedError, acquireLock } from "./data-dir.js";
import { EXIT } from "./exit-codes.js";
import { versionLine } from "./version.js";

export const WAL_REPAIR_USAGE = `usage: nexus wal repair <dir>

Repairs a write-ahead log that a node refuses to open because it is corrupted: keeps every
record up to the last good one, copies the damaged bytes to <segment>.broken and renames later
segments to <name>.broken (nothing is deleted). The node then starts from the last good record and
catches up from its peers. <dir> is the node's WAL folder (<data-dir>/wal/node_<id>, or
<nexus-log-dir>/node_<id>). It refuses while a node runs on that WAL (its lock file is held).
`;

export async function runWalRepair(
  argv: readonly string[],
  out: (s: string) => void,
  err: (s: string) => void,
): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h") || argv.includes("-help")) {
    out(WAL_REPAIR_USAGE);
    return EXIT.OK;
  }
  if (argv.includes("--version") || argv.includes("-version")) {
    out(versionLine());
    return EXIT.OK;
  }
  if (argv.length !== 1 || argv[0]!.startsWith("-")) {
    err(`nexus wal repair: expected exactly one directory\n\n${WAL_REPAIR_USAGE}`);
    return EXIT.USAGE;
  }
  // The lock a node holds on this WAL (data-dir.ts): never repair under a running node.
  let lock;
  try {
    lock = acquireLock(`${resolve(argv[0]!)}.lock`, `the WAL ${argv[0]!} (wal repair)`);
  } catch (e) {
    if (!(e instanceof LockedError)) throw e;
    err(`nexus wal repair: ${e.message}\n`);
    return EXIT.FAILED;
  }
  try {
    const report = await repairWal(argv[0]!);
    for (const a of report.actions) out(`${a}\n`);
    out(`the write-ahead log now ends at entry ${report.lastIndex}\n`);
    return EXIT.OK;
  } catch (e) {
    err(`nexus wal repair: ${(e as Error).message}\n`);
    return EXIT.FAILED;
  } finally {
    lock.release();
  }
}
