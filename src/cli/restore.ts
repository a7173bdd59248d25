/**
 * `nexus restore <file> -nexus-node-url <url> -nexus-cluster-url <urls> ...`: prepares one node of
 * a new cluster from a backup. The backup becomes the node's Raft snapshot at the backup's index
 * and term, with the NEW cluster's members as its configuration, and a new write-ahead log holds
 * only the marker of that snapshot and a hard state committing it. Started with the same URLs,
 * each node opens its log at that index, restores its store from the snapshot and the nodes elect
 * a leader: the new cluster starts from the backup's state, every member at the same index.
 *
 * Nothing is changed unless every check passes first: the whole file verifies, it is a backup of
 * the store kind given, the node's WAL and snapshot folders are absent or empty, and its store is
 * empty. The snapshot and WAL are built beside the node's folders and swapped in through a journal
 * (src/storage/folder-swap.ts): a failure while writing removes what was built, and a crash leaves
 * the node without data, with all of it, or with a journal that running nexus restore again
 * finishes (a node refuses to start meanwhile).
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import { nodeDirName } from "../node/options.js";
import { join } from "node:path";
import { BackupFileError, openBackupFile, verifyBackupFile } from "../backup/backup-file.js";
import { NexusError, isNexusError } from "../errors/index.js";
import { nodeIdOf, parseNodeUrl } from "../node/node-id.js";
import type { ConfState } from "../raft/types.js";
import type { CrashHook } from "../storage/crash-points.js";
import {
  buildFreshData,
  clearSwapLeftovers,
  commitSwap,
  finishSwap,
  freshDirOf,
  journalPathOf,
  readSwapJournal,
} from "../storage/folder-swap.js";
import { EXIT, exitCodeOf } from "./exit-codes.js";
import type { FlagSpec, ParsedFlags } from "./flags.js";
import { FlagError, describeFlags, parseFlags, str } from "./flags.js";
import { NODE_FLAGS } from "./node-flags.js";
import { DATA_DIR_FLAG, LockedError, acquireLock, dataPaths } from "./data-dir.js";
import type { DirLock } from "./data-dir.js";
import { crashHookFromEnv } from "./recover.js";
import { STORE_KINDS, sqlitePathOf } from "./stores.js";

const OWN_NODE_FLAGS = ["nexus-node-url", "nexus-cluster-url", "nexus-log-dir", "nexus-snap-dir"];

function specs(): FlagSpec[] {
  const out: FlagSpec[] = NODE_FLAGS.filter((s) => OWN_NODE_FLAGS.includes(s.name));
  out.push(DATA_DIR_FLAG);
  out.push({
    name: "store",
    kind: "string",
    default: "sqlite",
    help: `the store the node will run on: ${STORE_KINDS.map((k) => k.name).join(", ")}`,
  });
  const seen = new Set<string>();
  for (const k of STORE_KINDS) {
    for (const s of k.flags) {
      if (!seen.has(s.name)) out.push({ ...s, help: `${s.help} [-store ${k.name}]` });
      seen.add(s.name);
    }
  }
  return out;
}

export const RESTORE_USAGE = `usage: nexus restore <file> -nexus-node-url <url> -nexus-cluster-url <url,url,...> [flags]

Prepares one node of a NEW cluster from a backup (nexus backup): run it once for every node of
the new cluster, each with its own -nexus-node-url and store flags and the same
-nexus-cluster-url, then start every node with the same flags (nexus serve or sqlite_repl ...).
They form a cluster that starts from the backup's state, every member at the backup's index.

Refuses, changing nothing: a damaged, truncated or newer-version file, a backup of another store
kind than -store, a node whose WAL or snapshot folder is not empty, a store that is not empty.
If it is interrupted (killed, a power loss), run it again with the same flags: it starts over
(nothing was changed yet) or finishes what it had begun; the node refuses to start until then.

flags:
${describeFlags(specs())}`;

interface Io {
  out(s: string): void;
  err(s: string): void;
}

function isEmptyDir(dir: string): boolean {
  if (!existsSync(dir)) return true;
  return statSync(dir).isDirectory() && readdirSync(dir).length === 0;
}

/** Runs `nexus restore`; resolves with the exit code. */
export async function runRestore(argv: readonly string[], io: Io): Promise<number> {
  let f: ParsedFlags;
  let file: string;
  let nodeUrl: string;
  let clusterUrls: string[];
  try {
    f = parseFlags(argv, specs(), { allowPositionals: true });
    if (f.help) {
      io.out(RESTORE_USAGE);
      return EXIT.OK;
    }
    if (f.positionals.length !== 1) throw new FlagError("expected exactly one backup <file>");
    file = f.positionals[0]!;
    const node = str(f, "nexus-node-url");
    const cluster = str(f, "nexus-cluster-url");
    if (node === undefined || node.trim() === "") {
      throw new FlagError(
        "flag -nexus-node-url is required, e.g. -nexus-node-url http://127.0.0.1:9021",
      );
    }
    if (cluster === undefined || cluster.trim() === "") {
      throw new FlagError(
        'flag -nexus-cluster-url is required, e.g. -nexus-cluster-url "http://127.0.0.1:9021,http://127.0.0.1:9022,http://127.0.0.1:9023"',
      );
    }
    nodeUrl = parseNodeUrl(node.trim()).url;
    clusterUrls = cluster
      .split(",")
      .map((u) => u.trim())
      .filter((u) => u !== "")
      .map((u) => parseNodeUrl(u).url);
    if (!clusterUrls.includes(nodeUrl)) {
      throw new FlagError(
        `-nexus-node-url ${nodeUrl} is not in -nexus-cluster-url: a restored cluster's nodes are all its initial members`,
      );
    }
  } catch (err) {
    if (
      err instanceof FlagError ||
      isNexusError(err, "INVALID_ARGUMENT") ||
      isNexusError(err, "BAD_CONFIG")
    ) {
      io.err(`nexus restore: ${(err as Error).message}\n\n${RESTORE_USAGE}`);
      return EXIT.USAGE;
    }
    throw err;
  }
  const kindName = str(f, "store")!;
  const kind = STORE_KINDS.find((k) => k.name === kindName);
  if (kind === undefined) {
    io.err(
      `nexus restore: flag -store must be one of ${STORE_KINDS.map((k) => k.name).join(", ")}, got "${kindName}"\n`,
    );
    return EXIT.USAGE;
  }
  const nodeId = nodeIdOf(nodeUrl);
  const nodeDir = nodeDirName(nodeId);
  const paths = dataPaths(
    {
      dataDir: str(f, "data-dir"),
      logDir: str(f, "nexus-log-dir"),
      snapDir: str(f, "nexus-snap-dir"),
    },
    nodeId,
  );
  const walDir = join(paths.logDir, nodeDir);
  const snapDir = join(paths.snapDir, nodeDir);
  const journal = journalPathOf(walDir);
  let withCrash: { crash?: CrashHook };
  try {
    withCrash = crashHookFromEnv();
  } catch (err) {
    io.err(`nexus restore: NEXUS_CRASH_POINT: ${(err as Error).message}\n`);
    return EXIT.USAGE;
  }
  let wrote = false;
  let lock: DirLock | undefined;
  try {
    // 1. The whole file, before anything is changed.
    const v = await verifyBackupFile(file);
    const h = v.header;
    if (h.storeKind !== kind.name) {
      throw new NexusError(
        "INVALID_ARGUMENT",
        `${file} is a backup of a ${h.storeKind} store, not ${kind.name}: restore it onto a ${h.storeKind} store (-store ${h.storeKind} and its flags); nothing was changed`,
      );
    }
    if (h.index < 1 || h.term < 1) {
      throw new NexusError(
        "INVALID_ARGUMENT",
        `${file} holds no log position (index ${h.index}); nothing was changed`,
      );
    }
    // 2. No process on the node's data, no restore cut short, and its folders and store empty.
    lock = acquireLock(paths.lockFile, `the node's data (${paths.logDir})`);
    const pending = await readSwapJournal(journal);
    if (pending !== undefined) {
      if (pending.command !== "restore") {
        throw new NexusError(
          "BAD_CONFIG",
          `a \`nexus ${pending.command}\` of this node was interrupted (journal ${journal}): run \`nexus ${pending.command}\` again with the same flags to finish it; nothing was changed`,
        );
      }
      const named = pending.folders.map((x) => x.target);
      if (named.length !== 2 || named[0] !== snapDir || named[1] !== walDir) {
        throw new NexusError(
          "BAD_CONFIG",
          `the interrupted restore's journal ${journal} names the folders ${named.join(", ")}, not ${snapDir}, ${walDir}: run nexus restore with the flags it ran with; nothing was changed`,
        );
      }
      await finishSwap(journal, pending, withCrash);
      io.out(
        `finished an interrupted nexus restore for ${nodeUrl} (index ${String(pending.about["index"])}, term ${String(pending.about["term"])}):\n` +
          `  snapshot ${join(snapDir, String(pending.about["snapshot"]))}\n  write-ahead log ${walDir}\n` +
          `start the node with the same -nexus-node-url, -nexus-cluster-url, -nexus-log-dir, -nexus-snap-dir and store flags; ` +
          `its store is loaded from the snapshot when it starts\n`,
      );
      return EXIT.OK;
    }
    for (const [dir, flag] of [
      [walDir, "-nexus-log-dir"],
      [snapDir, "-nexus-snap-dir"],
    ] as const) {
      if (!isEmptyDir(dir)) {
        throw new NexusError(
          "BAD_CONFIG",
          `${dir} is not empty: this node already has data (${flag}). Restore into a new node: choose empty folders, or remove this node's old data first; nothing was changed`,
        );
      }
    }
    const made = await kind.create(f, nodeDir, paths.dataDir);
    const sqlitePath = kind.name === "sqlite" ? sqlitePathOf(f, paths.dataDir) : undefined;
    if (sqlitePath !== undefined) {
      if (existsSync(sqlitePath) && statSync(sqlitePath).size > 0) {
        throw new NexusError(
          "BAD_CONFIG",
          `the SQLite file ${sqlitePath} exists: restore into a new node with a new -sqlitePath (or remove the file); nothing was changed`,
        );
      }
    } else {
      try {
        const at = await made.store.open();
        if (at.index > 0) {
          throw new NexusError(
            "BAD_CONFIG",
            `the store (${made.describe}) already holds Nexus data at index ${at.index}: restore onto an empty store; nothing was changed`,
          );
        }
      } finally {
        await made.store.close();
      }
    }
    // 3. The snapshot, then the WAL that records it (a snapshot is used only once the WAL does).
    const voters = [...new Set(clusterUrls.map((u) => nodeIdOf(u)))].sort();
    const confState: ConfState = {
      voters,
      learners: [],
      votersOutgoing: [],
      learnersNext: [],
      autoLeave: false,
    };
    const members: Record<string, string> = {};
    for (const u of clusterUrls) members[nodeIdOf(u)] = u;
    // Built beside the node's folders, then swapped in through a journal
    // (src/storage/folder-swap.ts): a crash at any instant leaves no data (the node's folders
    // absent or empty, as before), the whole restored data, or a journal a run of nexus restore
    // finishes. A node never starts from half of it.
    for (const p of await clearSwapLeftovers(journal, [snapDir, walDir])) {
      io.out(`removed ${p}, left by an interrupted nexus restore (it was never used)\n`);
    }
    wrote = true;
    const freshSnap = freshDirOf(snapDir);
    const freshWal = freshDirOf(walDir);
    const opened = await openBackupFile(file);
    const snapName = await buildFreshData(
      snapDir,
      walDir,
      { index: h.index, term: h.term, confState, members },
      opened.data,
      h.term,
      withCrash,
    );
    await commitSwap(
      journal,
      {
        command: "restore",
        folders: [
          { target: snapDir, fresh: freshSnap, aside: undefined },
          { target: walDir, fresh: freshWal, aside: undefined },
        ],
        about: { node: nodeUrl, index: h.index, term: h.term, snapshot: snapName },
      },
      withCrash,
    );
    io.out(
      `restored ${file} (${h.storeKind}, index ${h.index}, term ${h.term}, ${v.dataBytes} bytes) for ${nodeUrl}:\n` +
        `  snapshot ${join(snapDir, snapName)}\n  write-ahead log ${walDir}\n` +
        `  members: ${clusterUrls.join(", ")}\n` +
        `start the node with the same -nexus-node-url, -nexus-cluster-url, -nexus-log-dir, -nexus-snap-dir and store flags; ` +
        `its store is loaded from the snapshot when it starts\n`,
    );
    return EXIT.OK;
  } catch (err) {
    // Only what was built beside the node's folders, and only before the journal commits it
    // (after, a run of nexus restore finishes the swap).
    if (wrote && !existsSync(journal)) {
      await clearSwapLeftovers(journal, [snapDir, walDir]).catch(() => undefined);
    }
    if (err instanceof FlagError || err instanceof LockedError) {
      io.err(`nexus restore: ${err.message}\n`);
      return EXIT.USAGE;
    }
    if (err instanceof BackupFileError || err instanceof NexusError) {
      io.err(`nexus restore: ${err.message}\n`);
      return err instanceof BackupFileError ? EXIT.FAILED : exitCodeOf(err.code);
    }
    const code = (err as { code?: unknown }).code;
    if (code === "ENOENT" || code === "EACCES") {
      io.err(`nexus restore: ${(err as Error).message}\n`);
      return EXIT.FAILED;
    }
    throw err;
  } finally {
    lock?.release();
  }
}
