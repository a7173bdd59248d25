/**
 * A node's durable state at open (issue 14, src/node/DESIGN.md "Restarts"): the WAL, the newest
 * snapshot the WAL records, the log view over both, and the store, with a new cluster's
 * membership bootstrapped into a new WAL and a store behind the snapshot restored from it.
 * Refuses a WAL that lost its entries beside a store that applied some.
 */
import { randomBytes } from "node:crypto";
import { NexusError } from "../errors/index.js";
import { RawNode } from "../raft/raw-node.js";
import { createSeededRandom } from "../raft/random.js";
import { bootstrapEntries } from "../raft/bootstrap.js";
import type { NodeId } from "../raft/types.js";
import { DiskStorage } from "../storage/disk-storage.js";
import { checkNoSwapUnderway } from "../storage/folder-swap.js";
import { Snapshotter } from "../storage/snapshotter.js";
import type { SnapshotFile } from "../storage/snapshotter.js";
import { Wal } from "../storage/wal.js";
import type { WalOptions } from "../storage/wal.js";
import type { CrashHook } from "../storage/crash-points.js";
import type { Store, AppliedPosition } from "../store/store.js";
import { urlContext } from "./member-directory.js";
import type { NexusLogger } from "./options.js";
import { SILENT } from "./options.js";
import { coreSnapshotOf } from "./snapshot-manager.js";

/** What opening the durable state needs (RaftNodeOptions has it). */
export interface DurableStateOptions {
  /** Initial members when this node bootstraps a new cluster; empty to join. */
  readonly bootstrap: readonly { id: NodeId; url: string }[];
  readonly walDir: string;
  readonly walOptions?: WalOptions;
  readonly snapDir: string;
  readonly maxSnapshots?: number;
  readonly store: Store;
  readonly logger?: NexusLogger;
  readonly crash?: CrashHook;
}

/** The durable state, open. */
export interface DurableState {
  readonly wal: Wal;
  readonly storage: DiskStorage;
  readonly snapshotter: Snapshotter;
  /** The newest snapshot the WAL records, if any. */
  readonly newest: SnapshotFile | undefined;
  /** What the store has applied (after a restore from the newest snapshot). */
  readonly position: AppliedPosition;
}

/**
 * Opens (or creates) the WAL, bootstraps a new cluster's membership into it when the WAL is new
 * and this node is an initial member, and opens the store. BAD_CONFIG when the log was lost, or
 * while a swap of the node's folders (nexus recover, nexus restore) is unfinished.
 */
export async function openDurableState(opts: DurableStateOptions): Promise<DurableState> {
  const logger = opts.logger ?? SILENT;
  const crash = opts.crash;
  // A `nexus recover` or `nexus restore` cut short may have replaced one folder and not the other
  // (src/storage/folder-swap.ts): refuse before Wal.open would create a WAL where none is.
  checkNoSwapUnderway(opts.walDir);
  const { wal, state } = await Wal.open(opts.walDir, {
    ...opts.walOptions,
    logger,
    ...(crash === undefined ? {} : { crash }),
  });
  const snapshotter = new Snapshotter(opts.snapDir, {
    maxSnapshots: opts.maxSnapshots ?? 5,
    logger,
    ...(crash === undefined ? {} : { crash }),
  });
  // Only a snapshot the WAL records: a file written (received or taken) whose marker never
  // became durable, or one the core ignored, is newer than the marker and is skipped (kept).
  const newest = await snapshotter.loadNewest(wal.snapshotMarker());
  const snap = newest === undefined ? undefined : coreSnapshotOf(newest);
  let storage: DiskStorage;
  try {
    storage = new DiskStorage(wal, state, snap, { logger });
  } catch (err) {
    await wal.close().catch(() => undefined);
    throw err;
  }
  const walEmpty = state.lastIndex === 0 && state.snapshot.index === 0;
  let position = await opts.store.open();
  if (walEmpty && position.index > 0) {
    // The log was lost (its directory emptied or replaced) but the store was not: bootstrapping
    // a fresh log at term 1 with no vote could vote twice in a term and forget entries a
    // majority relied on. Refuse.
    await wal.close().catch(() => undefined);
    await opts.store.close().catch(() => undefined);
    throw new NexusError(
      "BAD_CONFIG",
      `the write-ahead log in ${opts.walDir} is empty but the store has applied entries up to ` +
        `index ${position.index}: this node's log was lost, and it must not rejoin with a fresh ` +
        "one (it could vote twice in a term and forget entries the cluster relies on). To " +
        "bring it back safely, remove it from the cluster (nexus repl <a running member>, then " +
        "removeNode <its URL>) and add it again (addNode) with an empty data directory (both " +
        "the log and the store), or start it as a new member with a new node URL and a new " +
        "data directory.",
    );
  }
  if (state.lastIndex === 0 && opts.bootstrap.length > 0) {
    const boot = bootstrapEntries(
      opts.bootstrap.map((p) => ({ id: p.id, context: urlContext(p.url) })),
    );
    await wal.save(boot.hardState, boot.entries);
    storage.append(boot.entries);
    storage.setHardState(boot.hardState);
  }
  if (newest !== undefined && position.index < newest.meta.index) {
    // The store is behind the newest snapshot (it was received but not yet restored).
    await opts.store.restore(
      { index: newest.meta.index, term: newest.meta.term },
      snapshotter.openData(newest),
    );
    position = { index: newest.meta.index, term: newest.meta.term };
  }
  return { wal, storage, snapshotter, newest, position };
}

/**
 * The consensus core over the opened log view: ticks counted by the node's timer (a heartbeat per
 * tick), ReadIndex reads (leases are kept on a monotonic clock by lease-upkeep.ts), a fresh random
 * seed, and the core's log lines at debug (info) and warn.
 */
export function coreOf(
  opts: { readonly id: NodeId; readonly electionTick: number },
  storage: DiskStorage,
  logger: NexusLogger,
): RawNode {
  return new RawNode({
    id: opts.id,
    electionTick: opts.electionTick,
    heartbeatTick: 1,
    storage,
    // Conf changes after the snapshot are replayed into the core; the store skips what it has.
    applied: storage.snapshot().metadata.index,
    random: createSeededRandom(randomBytes(4).readUInt32LE(0)),
    // Leases are kept here on a monotonic clock; the core's tick-based lease is not used.
    readOnlyOption: "safe",
    // The core's warnings (a heartbeat committing past a repaired log, a follower that lost
    // entries) say what recovery did; its info lines are debug here.
    logger: {
      debug: () => undefined,
      info: (msg) => logger.debug({ from: "raft" }, msg),
      warn: (msg) => logger.warn({ from: "raft" }, msg),
    },
  });
}
