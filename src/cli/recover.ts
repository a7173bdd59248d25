/**
 * `nexus recover`: after a majority of a cluster is lost for good, turns one survivor's data into
 * a new one-member cluster, to which members are then added back with addNode.
 * `nexus recover --inspect` prints a node's last log index and term, and what its store applied,
 * so the operator can choose the most up-to-date survivor.
 *
 * What recover does, with the node stopped: its store keeps every write it applied (at index A,
 * term T); the store's consistent copy becomes the node's Raft snapshot at (A, T) whose
 * configuration is this node alone, in a new WAL (the marker and a hard state at the old WAL's
 * term). The old WAL and snapshot folders are renamed aside (`<dir>.before-recover-<time>`),
 * never deleted. Before that, the store gets every entry of the WAL it had not applied
 * (store-catch-up.ts): the survivor's whole log is kept, as the lost majority may have committed
 * any of it.
 *
 * Crash-atomic: the new folders are built beside the old ones and swapped in through a journal
 * (src/storage/folder-swap.ts). Killed at any instant, the node's data is the old state (run it
 * again from the start), the new state, or a journal: the node then refuses to start, and a run
 * of `nexus recover` finishes the swap (without asking the members again: they were asked before
 * the journal was written). The store is never written.
 */
import { existsSync, readdirSync } from "node:fs";
import { SILENT, nodeDirName } from "../node/options.js";
import { createConnection } from "node:net";
import { join } from "node:path";
import { NexusError, isNexusError } from "../errors/index.js";
import { nodeIdOf, parseNodeUrl } from "../node/node-id.js";
import { checkNoLiveCluster, membersOnDisk } from "../node/recover-check.js";
import { openDurableState } from "../node/durable-state.js";
import { catchUpStore } from "../node/store-catch-up.js";
import type { CrashHook } from "../storage/crash-points.js";
import { crashAt, parseCrashSpec } from "../storage/crash-points.js";
import type { SwapJournal } from "../storage/folder-swap.js";
import {
  SWAP_CRASH_POINTS,
  buildFreshData,
  clearSwapLeftovers,
  commitSwap,
  finishSwap,
  freshDirOf,
  journalPathOf,
  readSwapJournal,
} from "../storage/folder-swap.js";
import { SNAPSHOT_CRASH_POINTS } from "../storage/snapshotter.js";
import { WAL_CRASH_POINTS, Wal } from "../storage/wal.js";
import { EXIT, exitCodeOf } from "./exit-codes.js";
import type { FlagSpec, ParsedFlags } from "./flags.js";
import { FlagError, bool, describeFlags, parseFlags, str } from "./flags.js";
import { NODE_FLAGS } from "./node-flags.js";
import { DATA_DIR_FLAG, LockedError, acquireLock, dataPaths } from "./data-dir.js";
import type { DirLock } from "./data-dir.js";
import { STORE_KINDS } from "./stores.js";

function specs(): FlagSpec[] {
  const out: FlagSpec[] = NODE_FLAGS.filter((s) =>
    [
      "nexus-node-url",
      "nexus-log-dir",
      "nexus-snap-dir",
      "nexus-cluster-name",
      "peer-cert-file",
      "peer-key-file",
      "peer-trusted-ca-file",
    ].includes(s.name),
  );
  out.push(
    DATA_DIR_FLAG,
    { name: "inspect", kind: "bool", help: "print the last log index and term; change nothing" },
    {
      name: "force",
      kind: "bool",
      help: "recover even if other members of the node's cluster still answer (skips the check)",
    },
    { name: "store", kind: "string", default: "sqlite", help: "the node's store kind" },
  );
  const seen = new Set<string>();
  for (const k of STORE_KINDS) {
    for (const s of k.flags) {
      if (!seen.has(s.name)) out.push({ ...s, help: `${s.help} [-store ${k.name}]` });
      seen.add(s.name);
    }
  }
  return out;
}

export const RECOVER_USAGE = `usage: nexus recover -nexus-node-url <url> [-nexus-log-dir d -nexus-snap-dir d] [--force] [store flags]
       nexus recover --inspect -nexus-node-url <url> [-nexus-log-dir d -nexus-snap-dir d] [store flags]

After a majority of a cluster is lost for good: turns this (stopped) node's data into a new
cluster whose only member is this node, keeping every write in its log (the store first applies
the entries of the log it had not applied). Start it again
with -nexus-cluster-url set to its own URL alone, then add members back with addNode (new nodes
started with -nexus-node-state new). The old WAL and snapshot folders are renamed aside, not
deleted. Never start the lost nodes again with their old data.

If it is interrupted (killed, a power loss), run it again with the same flags: it either starts
over (nothing was changed yet) or finishes the swap of folders it had begun; the node refuses to
start until then.

It refuses (exit 2, nothing changed) while another member its data names still answers as part
of the cluster: stop every member that still runs first (or, if the cluster still has a
majority, do not recover: remove this node from it). Members are asked over the peer transport
with -nexus-cluster-name and the -peer-* TLS flags the node ran with. --force skips the check:
only when you are sure the members that answered will never serve this cluster again.

--inspect prints the node's last log index and term, its commit and what its store applied:
run it on every survivor and recover the one with the highest (last term, last index).

flags:
${describeFlags(specs())}`;

interface Io {
  out(s: string): void;
  err(s: string): void;
}

/** Whether something accepts connections at the node's own URL (the node still runs). */
function answers(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host, port });
    const done = (v: boolean): void => {
      s.destroy();
      resolve(v);
    };
    s.setTimeout(1000, () => done(false));
    s.once("connect", () => done(true));
    s.once("error", () => done(false));
  });
}

/** The peer TLS files the node ran with: all three flags, or none. */
function peerTlsOf(f: ParsedFlags): {
  peerTls?: { certFile: string; keyFile: string; trustedCaFile: string };
} {
  const [certFile, keyFile, trustedCaFile] = [
    "peer-cert-file",
    "peer-key-file",
    "peer-trusted-ca-file",
  ].map((n) => str(f, n)?.trim() ?? "");
  if (certFile === "" && keyFile === "" && trustedCaFile === "") return {};
  if (certFile === "" || keyFile === "" || trustedCaFile === "") {
    throw new FlagError(
      "peer TLS needs all three of -peer-cert-file, -peer-key-file and -peer-trusted-ca-file",
    );
  }
  return { peerTls: { certFile: certFile!, keyFile: keyFile!, trustedCaFile: trustedCaFile! } };
}

/**
 * Crash tests (test/cli/recover-crash.test.ts): `NEXUS_CRASH_POINT=<point>[:<nth>]` kills this
 * process with SIGKILL the nth time it reaches a point of the WAL, the snapshotter or the folder
 * swap (src/storage/crash-points.ts). Throws a plain Error for a bad spec.
 */
export function crashHookFromEnv(): { crash?: CrashHook } {
  const spec = process.env["NEXUS_CRASH_POINT"];
  if (spec === undefined || spec === "") return {};
  return {
    crash: crashAt(
      parseCrashSpec(spec, [...WAL_CRASH_POINTS, ...SNAPSHOT_CRASH_POINTS, ...SWAP_CRASH_POINTS]),
    ),
  };
}

/** A journal exists: a swap was cut short. Finishes it (a recover's), or says what to run. */
async function finishInterrupted(
  pending: SwapJournal,
  journal: string,
  targets: readonly string[],
  inspect: boolean,
  io: Io,
): Promise<number> {
  if (inspect || pending.command !== "recover") {
    throw new NexusError(
      "BAD_CONFIG",
      `a \`nexus ${pending.command}\` of this node was interrupted (journal ${journal}): run ` +
        `\`nexus ${pending.command}\` again with the same flags to finish it${inspect ? " (--inspect changes nothing)" : ""}; nothing was changed`,
    );
  }
  const named = pending.folders.map((x) => x.target);
  if (named.length !== targets.length || named.some((t, i) => t !== targets[i])) {
    throw new NexusError(
      "BAD_CONFIG",
      `the interrupted recover's journal ${journal} names the folders ${named.join(", ")}, ` +
        `not ${targets.join(", ")}: run nexus recover with the flags it ran with; nothing was changed`,
    );
  }
  await finishSwap(journal, pending, crashHookFromEnv());
  const a = pending.about;
  const asides = pending.folders.flatMap((x) => (x.aside === undefined ? [] : [x.aside]));
  io.out(
    `finished an interrupted nexus recover: node ${String(a["node"])} (${String(a["url"])}) is now the only member of a new cluster at index ${String(a["index"])} (term ${String(a["term"])}); ` +
      `snapshot ${String(a["snapshot"])}\nthe old data was moved to ${asides.join(" and ")}\n` +
      `start it with -nexus-cluster-url ${String(a["url"])}, then add members back with addNode\n`,
  );
  return EXIT.OK;
}

/** Runs `nexus recover`; resolves with the exit code. */
export async function runRecover(argv: readonly string[], io: Io): Promise<number> {
  let f: ParsedFlags;
  let url: ReturnType<typeof parseNodeUrl>;
  let tls: ReturnType<typeof peerTlsOf>;
  try {
    f = parseFlags(argv, specs());
    if (f.help) {
      io.out(RECOVER_USAGE);
      return EXIT.OK;
    }
    const u = str(f, "nexus-node-url");
    if (u === undefined || u.trim() === "") {
      throw new FlagError(
        "flag -nexus-node-url is required, e.g. -nexus-node-url http://127.0.0.1:9021",
      );
    }
    url = parseNodeUrl(u.trim());
    tls = peerTlsOf(f);
  } catch (err) {
    if (
      err instanceof FlagError ||
      isNexusError(err, "INVALID_ARGUMENT") ||
      isNexusError(err, "BAD_CONFIG")
    ) {
      io.err(`nexus recover: ${(err as Error).message}\n\n${RECOVER_USAGE}`);
      return EXIT.USAGE;
    }
    throw err;
  }
  const kind = STORE_KINDS.find((k) => k.name === str(f, "store"));
  if (kind === undefined) {
    io.err(
      `nexus recover: flag -store must be one of ${STORE_KINDS.map((k) => k.name).join(", ")}\n`,
    );
    return EXIT.USAGE;
  }
  const id = nodeIdOf(url);
  const nodeDir = nodeDirName(id);
  const paths = dataPaths(
    {
      dataDir: str(f, "data-dir"),
      logDir: str(f, "nexus-log-dir"),
      snapDir: str(f, "nexus-snap-dir"),
    },
    id,
  );
  const walDir = join(paths.logDir, nodeDir);
  const snapDir = join(paths.snapDir, nodeDir);
  let withCrash: { crash?: CrashHook };
  try {
    withCrash = crashHookFromEnv();
  } catch (err) {
    io.err(`nexus recover: NEXUS_CRASH_POINT: ${(err as Error).message}\n`);
    return EXIT.USAGE;
  }
  const journal = journalPathOf(walDir);
  let lock: DirLock | undefined;
  try {
    if (await answers(url.hostname, url.port)) {
      throw new NexusError(
        "BAD_CONFIG",
        `something answers at ${url.url}: stop the node before recovering it; nothing was changed`,
      );
    }
    lock = acquireLock(paths.lockFile, `the node's data (${paths.logDir})`);
    const pending = await readSwapJournal(journal);
    if (pending !== undefined) {
      return await finishInterrupted(pending, journal, [snapDir, walDir], bool(f, "inspect"), io);
    }
    if (!existsSync(walDir) || readdirSync(walDir).length === 0) {
      throw new NexusError(
        "BAD_CONFIG",
        `${walDir} holds no write-ahead log: check -nexus-node-url and -nexus-log-dir (the node's folder is named after its URL's id)`,
      );
    }
    const { wal, state } = await Wal.open(walDir);
    let lastTerm: number;
    let members: Map<string, string>;
    try {
      lastTerm = wal.hasEntry(state.lastIndex)
        ? wal.readEntrySync(state.lastIndex).term
        : state.snapshot.term;
      members = await membersOnDisk(wal, state, snapDir);
    } finally {
      await wal.close();
    }
    if (!bool(f, "inspect") && !bool(f, "force")) {
      await checkNoLiveCluster({
        nodeId: id,
        nodeUrl: url.url,
        members,
        clusterName: str(f, "nexus-cluster-name") ?? "nexus",
        ...tls,
        timeoutMs: 3000,
      });
    }
    const made = await kind.create(f, nodeDir, paths.dataDir);
    const store = made.store;
    let applied: { index: number; term: number };
    try {
      if (bool(f, "inspect")) {
        applied = await store.open();
        io.out(
          `node ${id} (${url.url})\n` +
            `last index:    ${state.lastIndex}\n` +
            `last term:     ${lastTerm}\n` +
            `commit:        ${state.hardState.commit}\n` +
            `term:          ${state.hardState.term}\n` +
            `store applied: ${applied.index} (term ${applied.term}), ${made.describe}\n`,
        );
        return EXIT.OK;
      }
      // The store first gets every entry of the log it has not applied (store-catch-up.ts):
      // those it was behind on or lost to a power loss, and those the lost majority may have
      // committed without this node hearing so.
      const durable = await openDurableState({ bootstrap: [], walDir, snapDir, store });
      try {
        const before = durable.position.index;
        const last = durable.storage.lastIndex();
        applied = await catchUpStore(durable, snapDir, store, last, SILENT);
        if (applied.index > before) {
          io.out(
            `applied the log's entries ${before + 1} to ${applied.index}, which the store had not applied\n`,
          );
        }
      } finally {
        await durable.wal.close();
      }
      if (applied.index < 1) {
        throw new NexusError(
          "BAD_CONFIG",
          `the store (${made.describe}) has applied nothing: there is nothing to recover`,
        );
      }
      const stamp = new Date().toISOString().replace(/[:.]/g, "-");
      const oldWal = `${walDir}.before-recover-${stamp}`;
      const oldSnap = `${snapDir}.before-recover-${stamp}`;
      // The new snapshot and WAL are built beside the old folders, then swapped in through a
      // journal (src/storage/folder-swap.ts): a crash at any instant leaves the old state, the
      // new state, or a journal that a run of nexus recover finishes.
      for (const p of await clearSwapLeftovers(journal, [snapDir, walDir])) {
        io.out(`removed ${p}, left by an interrupted nexus recover (it was never used)\n`);
      }
      const freshSnap = freshDirOf(snapDir);
      const freshWal = freshDirOf(walDir);
      let p: { index: number; term: number };
      let snapName: string;
      try {
        const backup = await store.backup();
        p = backup.position;
        const confState = {
          voters: [id],
          learners: [],
          votersOutgoing: [],
          learnersNext: [],
          autoLeave: false,
        };
        snapName = await buildFreshData(
          snapDir,
          walDir,
          { index: p.index, term: p.term, confState, members: { [id]: url.url } },
          backup.stream,
          Math.max(state.hardState.term, p.term),
          withCrash,
        );
      } catch (err) {
        await clearSwapLeftovers(journal, [snapDir, walDir]).catch(() => undefined);
        throw err;
      }
      await commitSwap(
        journal,
        {
          command: "recover",
          folders: [
            { target: snapDir, fresh: freshSnap, aside: existsSync(snapDir) ? oldSnap : undefined },
            { target: walDir, fresh: freshWal, aside: oldWal },
          ],
          about: { node: id, url: url.url, index: p.index, term: p.term, snapshot: snapName },
        },
        withCrash,
      );
      io.out(
        `node ${id} (${url.url}) is now the only member of a new cluster at index ${p.index} (term ${p.term}); ` +
          `snapshot ${snapName}\nthe old data was moved to ${oldWal}${existsSync(oldSnap) ? ` and ${oldSnap}` : ""}\n` +
          `start it with -nexus-cluster-url ${url.url}, then add members back with addNode\n`,
      );
      return EXIT.OK;
    } finally {
      await store.close();
    }
  } catch (err) {
    if (err instanceof FlagError || err instanceof LockedError) {
      io.err(`nexus recover: ${err.message}\n`);
      return EXIT.USAGE;
    }
    if (err instanceof NexusError) {
      io.err(`nexus recover: ${err.message}\n`);
      return exitCodeOf(err.code);
    }
    throw err;
  } finally {
    lock?.release();
  }
}
