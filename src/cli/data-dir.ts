/**
 * Where a node keeps its data, and that only one process uses it.
 *
 * One `-data-dir` (default `./nexus-data/<node id>`) holds the WAL (`wal/`), the snapshots
 * (`snap/`) and the embedded SQLite store (`store.db`). The original's flags -nexus-log-dir,
 * -nexus-snap-dir and -sqlitePath keep working and win when given. Data under a temporary folder
 * (which a reboot or a cleaner may empty) is warned about at startup.
 *
 * A lock file holding the owner's pid guards the WAL: a second process is refused with the
 * holder's pid; a lock left by a process that is gone (or by this pid, a container restarted) is
 * taken over.
 */
import { mkdirSync, openSync, readFileSync, rmdirSync, unlinkSync, writeSync } from "node:fs";
import { closeSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import type { FlagSpec } from "./flags.js";
import { tempFolders, underTempDir } from "../node/temp-dirs.js";

/** The folder is locked by another live process (`holder` is its pid). */
export class LockedError extends Error {
  constructor(
    message: string,
    readonly holder: number | undefined,
  ) {
    super(message);
    this.name = "LockedError";
  }
}

export const DATA_DIR_FLAG: FlagSpec = {
  name: "data-dir",
  kind: "string",
  help: "folder of this node's data: the WAL (wal/), snapshots (snap/) and SQLite store (store.db); -nexus-log-dir, -nexus-snap-dir and -sqlitePath win when given (default ./nexus-data/<node id>)",
};

/** A node's data folders, resolved. */
export interface DataPaths {
  /** The data folder, when any of the data lives in it. */
  readonly dataDir: string;
  /** The WAL parent folder (the node's WAL is `node_<decimal id>` in it). */
  readonly logDir: string;
  /** The snapshot parent folder. */
  readonly snapDir: string;
  /** The lock file guarding the WAL: `<logDir>/node_<decimal id>.lock`. */
  readonly lockFile: string;
}

/**
 * The folders from the flags: -nexus-log-dir and -nexus-snap-dir when given, else in the data
 * folder (-data-dir, default ./nexus-data/<hex id>).
 */
export function dataPaths(
  given: {
    dataDir?: string | undefined;
    logDir?: string | undefined;
    snapDir?: string | undefined;
  },
  idHex: string,
): DataPaths {
  const dataDir = resolve(given.dataDir ?? join("nexus-data", idHex));
  const logDir = resolve(given.logDir ?? join(dataDir, "wal"));
  const snapDir = resolve(given.snapDir ?? join(dataDir, "snap"));
  const dec = BigInt(`0x${idHex}`).toString();
  return { dataDir, logDir, snapDir, lockFile: join(logDir, `node_${dec}.lock`) };
}

export { underTempDir };

/** The warning for data under a temporary folder, or undefined. `paths` are labelled folders. */
export function tempDataWarning(paths: Readonly<Record<string, string>>): string | undefined {
  const temp = tempFolders(paths);
  if (temp.length === 0) return undefined;
  return (
    `WARNING: this node's data is under a temporary folder (${temp.map(([k, p]) => `${k} ${p}`).join(", ")}), ` +
    "which a reboot or a temp cleaner may empty: the node would lose its log and rejoin with nothing. " +
    "Give a lasting folder with -data-dir (or -nexus-log-dir, -nexus-snap-dir and -sqlitePath)."
  );
}

/** A held lock: release() removes its file if it is still this process's. */
export interface DirLock {
  readonly file: string;
  release(): void;
}

function pidIn(file: string): number | undefined {
  try {
    const n = Number(readFileSync(file, "utf8").trim().split(/\s+/)[0]);
    return Number.isSafeInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, owned by someone else.
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Takes the lock file `file` for this process (its pid, a newline, then `what`). Throws
 * LockedError naming the holder's pid when a live process holds it. A lock of a process that is gone
 * is taken over. The lock is released when the process exits.
 */
export function acquireLock(file: string, what: string): DirLock {
  // The folders made here are removed again on release if they are still empty (a node that
  // stopped before it wrote anything leaves nothing behind).
  const created = mkdirSync(dirname(file), { recursive: true });
  for (let attempt = 0; attempt < 5; attempt++) {
    let fd: number;
    try {
      fd = openSync(file, "wx", 0o644);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      const holder = pidIn(file);
      if (holder !== undefined && holder !== process.pid && alive(holder)) {
        throw new LockedError(
          `${what} is in use by another process (pid ${holder}; lock file ${file}). ` +
            "Stop that process first, or give this one other folders (-data-dir).",
          holder,
        );
      }
      // Gone (or an unreadable, half-written lock): take it over, unless it changed meanwhile.
      if (pidIn(file) === holder) {
        try {
          unlinkSync(file);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
        }
      }
      continue;
    }
    try {
      writeSync(fd, `${process.pid}\n${what}\n`);
    } finally {
      closeSync(fd);
    }
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      process.off("exit", release);
      if (pidIn(file) === process.pid) {
        try {
          unlinkSync(file);
        } catch {
          // already gone
        }
      }
      if (created === undefined) return;
      for (let d = dirname(file); ; d = dirname(d)) {
        try {
          rmdirSync(d);
        } catch {
          break; // not empty: in use
        }
        if (d === resolve(created) || dirname(d) === d) break;
      }
    };
    process.on("exit", release);
    return { file, release };
  }
  throw new LockedError(`could not take the lock file ${file}: others keep taking it`, undefined);
}
