/**
 * The snapshot manager: takes a snapshot every snapshotCount applied entries (or once the store
 * catches up with a member added after the newest one), compacts the log behind it, streams a
 * snapshot file to a follower, stores one streamed by the leader, installs the one the core
 * restores from, and hands out a consistent backup labelled with its membership.
 */
import { NexusError } from "../errors/index.js";
import type { ConfState, Message, NodeId, Snapshot } from "../raft/types.js";
import type { DiskStorage } from "../storage/disk-storage.js";
import type { Wal } from "../storage/wal.js";
import { snapshotName } from "../storage/snapshotter.js";
import type { CoveringMarker, SnapshotFile, Snapshotter } from "../storage/snapshotter.js";
import type { CrashHook } from "../storage/crash-points.js";
import type { Store } from "../store/store.js";
import type { MemberDirectory } from "./member-directory.js";
import type { NexusLogger } from "./options.js";

const enc = new TextEncoder();

/** The core's view of a snapshot file: its metadata, and its name as the data. */
export function coreSnapshotOf(file: SnapshotFile): Snapshot {
  return {
    metadata: { index: file.meta.index, term: file.meta.term, confState: file.meta.confState },
    data: enc.encode(file.name),
  };
}

export interface SnapshotManagerOptions {
  readonly store: Store;
  readonly storage: DiskStorage;
  readonly wal: Wal;
  readonly snapshotter: Snapshotter;
  readonly members: MemberDirectory;
  /** Applied entries between snapshots. */
  readonly snapshotCount: number;
  /** Entries kept after a snapshot for slow followers. */
  readonly snapshotCatchUpEntries: number;
  readonly logger: NexusLogger;
  readonly crash?: CrashHook | undefined;
  /** Whether a restore is being staged at this index (restore-staging.ts: no snapshot inside one). */
  readonly restoreOpenAt?: (index: number) => boolean;
}

export class SnapshotManager {
  private readonly o: SnapshotManagerOptions;
  private lastSnapshotIndex = 0;
  private snapshotting = false;
  /** A member was added after the newest snapshot: take one as soon as the store catches up. */
  private snapshotWantedAt = 0;

  /**
   * `stopped`: whether the node stopped (a snapshot under way then leaves the log alone);
   * `newest`: the snapshot the node opened with, if any.
   */
  constructor(
    o: SnapshotManagerOptions,
    private readonly stopped: () => boolean,
    newest: SnapshotFile | undefined,
  ) {
    this.o = o;
    if (newest !== undefined) this.lastSnapshotIndex = newest.meta.index;
  }

  /** A member was added at `index`: a new member can only be sent a snapshot that contains it. */
  wantAfter(index: number): void {
    this.snapshotWantedAt = index;
  }

  /**
   * Takes a snapshot when snapshotCount entries were applied since the last one, or when a member
   * was added after it (a new member can only be sent a snapshot that contains it).
   */
  maybeSnapshot(applied: number): void {
    if (this.snapshotting || this.stopped()) return;
    const due = applied - this.lastSnapshotIndex >= this.o.snapshotCount;
    const wanted =
      this.snapshotWantedAt > this.lastSnapshotIndex && applied >= this.snapshotWantedAt;
    if (!due && !wanted) return;
    this.snapshotting = true;
    void this.takeSnapshot()
      .catch((err: unknown) =>
        this.o.logger.warn({ error: (err as Error).message }, "snapshot failed"),
      )
      .finally(() => {
        this.snapshotting = false;
      });
  }

  private async takeSnapshot(): Promise<void> {
    const { storage, wal, members, crash } = this.o;
    const started = Date.now();
    const backup = await this.o.store.backup();
    const p = backup.position;
    if (
      p.index <= this.lastSnapshotIndex ||
      p.index > storage.lastIndex() ||
      this.o.restoreOpenAt?.(p.index) === true
    ) {
      // Nothing new to snapshot, or a restore is being staged there (restore-staging.ts: no
      // snapshot inside one): abandon the backup stream.
      await backup.stream[Symbol.asyncIterator]().return?.();
      return;
    }
    const conf = members.confAt(p.index) ?? members.oldest();
    if (conf === undefined) return;
    const file = await this.o.snapshotter.save(
      { index: p.index, term: p.term, confState: conf.cs, members: conf.members },
      backup.stream,
    );
    crash?.("node.snapshot-after-file");
    if (this.stopped()) return;
    storage.createSnapshot(p.index, conf.cs, enc.encode(file.name));
    await wal.saveSnapshotMarker({ index: p.index, term: p.term });
    crash?.("node.snapshot-after-marker");
    this.o.snapshotter.covered({ index: p.index, term: p.term });
    this.lastSnapshotIndex = p.index;
    members.forgetBefore(p.index, conf);
    const compactTo = p.index - this.o.snapshotCatchUpEntries;
    if (compactTo > storage.firstIndex()) {
      storage.compact(compactTo);
      await wal.releaseTo(compactTo);
      crash?.("node.snapshot-after-compact");
    }
    this.o.logger.info(
      {
        index: p.index,
        bytes: file.dataLength,
        ms: Date.now() - started,
        ...(compactTo > 0 ? { compactedTo: compactTo } : {}),
      },
      "snapshot taken",
    );
  }

  /**
   * A consistent copy of the store at its applied position, with the configuration and member
   * URLs in effect at that index (for `nexus backup`). Taken as a snapshot's is, without writing
   * a snapshot file. NOT_SERVING when the configuration at that index is not known here (the
   * store is still restoring a snapshot it received): retry.
   */
  async backup(): Promise<{
    position: { index: number; term: number };
    confState: ConfState;
    members: Record<NodeId, string>;
    stream: AsyncIterable<Uint8Array>;
  }> {
    const backup = await this.o.store.backup();
    const p = backup.position;
    const conf = this.o.members.confAt(p.index);
    if (conf === undefined) {
      await backup.stream[Symbol.asyncIterator]().return?.();
      throw new NexusError(
        "NOT_SERVING",
        `the membership at applied index ${p.index} is not known on this node yet (it is restoring a snapshot); retry`,
      );
    }
    return { position: p, confState: conf.cs, members: { ...conf.members }, stream: backup.stream };
  }

  /** The whole snapshot file named by a `snap` message, to stream to a follower. */
  openSnapshot(m: Message): AsyncIterable<Uint8Array> {
    const name = new TextDecoder().decode(m.snapshot?.data ?? new Uint8Array(0));
    const snapshotter = this.o.snapshotter;
    return (async function* () {
      const file = await snapshotter.validate(name);
      yield* snapshotter.openFile(file);
    })();
  }

  /**
   * Stores a snapshot file streamed by the leader and returns its message for the core, naming
   * the file. Rejects (the leader retries) if it does not validate.
   */
  async receive(m: Message, body: AsyncIterable<Uint8Array>): Promise<Message> {
    if (m.snapshot === undefined)
      throw new NexusError("INVALID_ARGUMENT", "snap message without a snapshot");
    const name = snapshotName(m.snapshot.metadata.term, m.snapshot.metadata.index);
    await this.o.snapshotter.saveRaw(name, body);
    // The file is durable and not recorded by the WAL: a restart now skips it (open()).
    this.o.crash?.("node.receive-after-snapshot-file");
    return { ...m, snapshot: { ...m.snapshot, data: enc.encode(name) } };
  }

  /** The WAL recorded `marker` (a received snapshot's): retention keeps its file. */
  covered(marker: CoveringMarker): void {
    this.o.snapshotter.covered(marker);
  }

  /**
   * The core restores from a received snapshot: validates its file and makes it the newest,
   * with its membership. Resolves with the file, whose data the store restores from.
   */
  async install(s: Snapshot): Promise<SnapshotFile> {
    const file = await this.o.snapshotter.validate(new TextDecoder().decode(s.data));
    this.lastSnapshotIndex = file.meta.index;
    this.o.members.install(file.meta.index, file.meta.confState, file.meta.members);
    return file;
  }

  /** The store's data inside a snapshot file. */
  openData(file: SnapshotFile): AsyncIterable<Uint8Array> {
    return this.o.snapshotter.openData(file);
  }
}
