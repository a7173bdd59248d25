/**
 * Replacing a node's WAL and snapshot folders as one step that a crash cannot cut in half
 * (`nexus recover`, `nexus restore`). Two folder renames are not atomic together, so a journal
 * file is the commit point:
 *
 * 1. The new folders are built beside the real ones, on the same file system, as
 *    `<target>.swap-new`, with every file synced, and the new folders' parents synced.
 *    A crash here leaves the old folders untouched; the leftovers are removed by the next run
 *    (`clearSwapLeftovers`), never used.
 * 2. The journal `<wal dir>.swap-journal` (JSON: the command, and for each folder its target,
 *    the new folder and where the old one goes) is written to `<journal>.tmp`, synced, renamed,
 *    and its folder synced. From this instant the swap rolls forward.
 * 3. For each folder in turn: the old one is renamed aside (`<target>.before-<command>-<time>`;
 *    never deleted) or, when there is no place aside for it, it must be an empty folder and is
 *    removed; then the new one is renamed into place. Each rename is followed by a sync of the
 *    parent folder before the next step.
 * 4. The journal is removed and its folder synced.
 *
 * So at every instant the data is the complete old state (no journal), the complete new state (no
 * journal, no `.swap-new` folder), or a journal names a swap under way. A node refuses to start
 * while a journal exists (`checkNoSwapUnderway`), and the command run again finishes it
 * (`finishSwap`, idempotent: each folder's state tells which of its renames were done).
 *
 * Crash points (SWAP_CRASH_POINTS) name every instant between two of these syscalls.
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname } from "node:path";
import { NexusError } from "../errors/index.js";
import type { CrashHook, CrashPoint } from "./crash-points.js";
import type { FsLayer } from "./fs-layer.js";
import { createNodeFs } from "./fs-layer.js";
import { Snapshotter } from "./snapshotter.js";
import type { SnapshotMeta } from "./snapshotter.js";
import { Wal } from "./wal.js";

/** The swap's crash points, in the order a swap reaches them; each doc says what is on disk. */
export const SWAP_CRASH_POINTS = [
  {
    name: "swap.fresh-after-sync",
    doc: "the new folders are complete and durable beside the old ones; no journal: the old state, with leftovers the next run removes",
  },
  {
    name: "swap.journal-after-write",
    doc: "<journal>.tmp is written and synced, not renamed: not a journal (the old state)",
  },
  {
    name: "swap.journal-after-rename",
    doc: "the journal is in place; its folder is not synced (a power loss may undo it: the old state)",
  },
  {
    name: "swap.journal-after-sync",
    doc: "the journal is durable: the swap rolls forward from here (no folder renamed yet)",
  },
  {
    name: "swap.aside-after-rename",
    doc: "a target folder was renamed aside (or an empty one removed); the parent is not synced",
  },
  {
    name: "swap.aside-after-sync",
    doc: "a target folder is durably aside: the target path does not exist",
  },
  {
    name: "swap.place-after-rename",
    doc: "a new folder was renamed into its target's place; the parent is not synced",
  },
  {
    name: "swap.place-after-sync",
    doc: "a new folder is durably in place",
  },
  {
    name: "swap.journal-after-unlink",
    doc: "every folder is swapped; the journal is unlinked, its folder not synced (it may come back: the next run removes it)",
  },
  {
    name: "swap.done",
    doc: "the swap is durable: the complete new state",
  },
] as const satisfies readonly CrashPoint[];

/** One folder to replace. */
export interface SwapFolder {
  /** The folder the node uses. */
  readonly target: string;
  /** The complete new folder, `freshDirOf(target)`. */
  readonly fresh: string;
  /**
   * Where the old folder goes; undefined when the target must be absent or an empty folder
   * (then removed).
   */
  readonly aside: string | undefined;
}

/** What the journal records. */
export interface SwapJournal {
  /** The command that swaps, as the operator runs it again: "recover", "restore". */
  readonly command: string;
  /** The folders, in the order they are swapped. */
  readonly folders: readonly SwapFolder[];
  /** What the new state is, for the command's message (free-form, small). */
  readonly about: Readonly<Record<string, string | number>>;
}

/** The folder a new `target` is built in. */
export function freshDirOf(target: string): string {
  return `${target}.swap-new`;
}

/** The journal of a swap of the node whose WAL folder is `walDir`. */
export function journalPathOf(walDir: string): string {
  return `${walDir}.swap-journal`;
}

export interface SwapOptions {
  readonly fs?: FsLayer;
  /** Called at each crash point (SWAP_CRASH_POINTS), for crash tests. Default: none. */
  readonly crash?: CrashHook;
}

/**
 * Throws BAD_CONFIG when a swap of the node whose WAL folder is `walDir` is under way (its journal
 * exists): the node's folders may be half replaced, and only the command run again finishes it.
 */
export function checkNoSwapUnderway(walDir: string): void {
  const journal = journalPathOf(walDir);
  if (!existsSync(journal)) return;
  let command = "recover";
  try {
    const j = JSON.parse(readFileSync(journal, "utf8")) as { command?: unknown };
    if (typeof j.command === "string" && /^[a-z-]+$/.test(j.command)) command = j.command;
  } catch {
    // An unreadable journal still means a swap is under way; the command will say more.
  }
  throw new NexusError(
    "BAD_CONFIG",
    `a \`nexus ${command}\` of this node was interrupted (journal ${journal}): its WAL and ` +
      `snapshot folders may be half replaced. Run \`nexus ${command}\` again with the same flags ` +
      "to finish it, then start the node",
  );
}

/**
 * Removes what a swap that never reached its journal left (the `.swap-new` folders, the WAL's
 * own temporary folder inside one, a journal's `.tmp`): none of it is the operator's data.
 * Returns the paths removed. Call it only when no journal exists.
 */
export async function clearSwapLeftovers(
  journal: string,
  targets: readonly string[],
  opts: SwapOptions = {},
): Promise<string[]> {
  const fs = opts.fs ?? createNodeFs();
  if (await fs.exists(journal)) {
    throw new NexusError("INTERNAL", `clearSwapLeftovers called while ${journal} exists`);
  }
  const removed: string[] = [];
  const parents = new Set<string>();
  for (const p of [
    `${journal}.tmp`,
    ...targets.flatMap((t) => [freshDirOf(t), `${freshDirOf(t)}.tmp`]),
  ]) {
    if (await fs.exists(p)) {
      await fs.rmrf(p);
      removed.push(p);
      parents.add(dirname(p));
    }
  }
  for (const d of parents) await fs.syncDir(d);
  return removed;
}

/** Reads the journal, or undefined when there is none. CORRUPTED when it is unreadable. */
export async function readSwapJournal(
  journal: string,
  opts: SwapOptions = {},
): Promise<SwapJournal | undefined> {
  const fs = opts.fs ?? createNodeFs();
  if (!(await fs.exists(journal))) return undefined;
  const f = await fs.open(journal, "r");
  let text: string;
  try {
    const buf = new Uint8Array(await f.size());
    await f.read(buf, 0);
    text = new TextDecoder().decode(buf);
  } finally {
    await f.close();
  }
  const bad = (): NexusError =>
    new NexusError(
      "CORRUPTED",
      `the swap journal ${journal} is damaged: the node's folders may be half replaced. Look at ` +
        "the folders it sits beside (`.swap-new` ones are complete new data, `.before-*` ones " +
        "the old data) and put back the ones you want by hand; nothing was changed",
    );
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch {
    throw bad();
  }
  const o = j as Record<string, unknown>;
  if (
    typeof o !== "object" ||
    o === null ||
    o["version"] !== 1 ||
    typeof o["command"] !== "string" ||
    !Array.isArray(o["folders"]) ||
    typeof o["about"] !== "object" ||
    o["about"] === null
  ) {
    throw bad();
  }
  const folders: SwapFolder[] = [];
  for (const x of o["folders"] as unknown[]) {
    const f = x as Record<string, unknown>;
    if (
      typeof f !== "object" ||
      f === null ||
      typeof f["target"] !== "string" ||
      f["fresh"] !== freshDirOf(f["target"]) ||
      (f["aside"] !== null && typeof f["aside"] !== "string")
    ) {
      throw bad();
    }
    folders.push({
      target: f["target"],
      fresh: f["fresh"],
      aside: f["aside"] === null ? undefined : (f["aside"] as string),
    });
  }
  return {
    command: o["command"],
    folders,
    about: o["about"] as Record<string, string | number>,
  };
}

/**
 * Commits a swap whose new folders (`fresh` of each folder) are complete: syncs their parents,
 * writes the journal durably (the commit point), then finishes it (`finishSwap`). The journal
 * must not exist yet.
 */
export async function commitSwap(
  journal: string,
  j: SwapJournal,
  opts: SwapOptions = {},
): Promise<void> {
  const fs = opts.fs ?? createNodeFs();
  for (const f of j.folders) {
    if (!(await fs.exists(f.fresh))) {
      throw new NexusError("INTERNAL", `the new folder ${f.fresh} does not exist`);
    }
    await fs.syncDir(f.fresh);
  }
  for (const d of new Set(j.folders.map((f) => dirname(f.fresh)))) await fs.syncDir(d);
  opts.crash?.("swap.fresh-after-sync");
  const text = JSON.stringify({
    version: 1,
    command: j.command,
    folders: j.folders.map((f) => ({ target: f.target, fresh: f.fresh, aside: f.aside ?? null })),
    about: j.about,
  });
  const tmp = `${journal}.tmp`;
  const fh = await fs.open(tmp, "w");
  try {
    await fh.write(new TextEncoder().encode(text), 0);
    await fh.datasync();
  } finally {
    await fh.close();
  }
  opts.crash?.("swap.journal-after-write");
  await fs.rename(tmp, journal);
  opts.crash?.("swap.journal-after-rename");
  await fs.syncDir(dirname(journal));
  opts.crash?.("swap.journal-after-sync");
  await finishSwap(journal, j, opts);
}

/**
 * Finishes the swap a durable journal records, from whatever point a crash stopped it: for each
 * folder whose new folder still exists, the old one goes aside (or, empty, is removed) and the new
 * one into place; then the journal is removed. BAD_CONFIG, changing nothing more, when a folder is
 * in a state the swap cannot have left (something else changed it).
 */
export async function finishSwap(
  journal: string,
  j: SwapJournal,
  opts: SwapOptions = {},
): Promise<void> {
  const fs = opts.fs ?? createNodeFs();
  const refuse = (what: string): NexusError =>
    new NexusError(
      "BAD_CONFIG",
      `cannot finish the interrupted \`nexus ${j.command}\` (journal ${journal}): ${what}. ` +
        "Something else changed the node's folders; put them in order by hand (the journal " +
        "names each folder, its new data and where its old data goes), then remove the journal",
    );
  for (const f of j.folders) {
    const parent = dirname(f.target);
    if (!(await fs.exists(f.fresh))) {
      // Already in place (the new folder was renamed into the target).
      if (!(await fs.exists(f.target))) throw refuse(`neither ${f.fresh} nor ${f.target} exists`);
      continue;
    }
    if (await fs.exists(f.target)) {
      if (f.aside !== undefined) {
        if (await fs.exists(f.aside)) throw refuse(`both ${f.target} and ${f.aside} exist`);
        await fs.rename(f.target, f.aside);
      } else {
        if ((await fs.readdir(f.target)).length > 0) {
          throw refuse(`${f.target} is not empty`);
        }
        await fs.rmrf(f.target);
      }
      opts.crash?.("swap.aside-after-rename");
      await fs.syncDir(parent);
      opts.crash?.("swap.aside-after-sync");
    }
    await fs.rename(f.fresh, f.target);
    opts.crash?.("swap.place-after-rename");
    await fs.syncDir(parent);
    opts.crash?.("swap.place-after-sync");
  }
  await fs.unlink(journal);
  opts.crash?.("swap.journal-after-unlink");
  await fs.syncDir(dirname(journal));
  opts.crash?.("swap.done");
}

/**
 * Builds a node's new data beside its folders, for commitSwap: the snapshot `meta` with `data`
 * in `freshDirOf(snapDir)`, and a WAL in `freshDirOf(walDir)` holding only the hard state `term`,
 * commit at the snapshot, and the snapshot's marker. Both are fsynced (Snapshotter, Wal). Returns
 * the snapshot file's name.
 */
export async function buildFreshData(
  snapDir: string,
  walDir: string,
  meta: SnapshotMeta,
  data: AsyncIterable<Uint8Array>,
  term: number,
  opts: { crash?: CrashHook } = {},
): Promise<string> {
  const snap = await new Snapshotter(freshDirOf(snapDir), opts).save(meta, data);
  const { wal } = await Wal.open(freshDirOf(walDir), opts);
  try {
    await wal.save({ term, vote: "", commit: meta.index }, [], {
      index: meta.index,
      term: meta.term,
    });
  } finally {
    await wal.close();
  }
  return snap.name;
}
