/**
 * The raft log view: the core's Storage interface over the WAL. Recent entries are cached in
 * memory; older ones are read back from their segment (synchronously: only slow followers and
 * restarts need them). The view holds entries after the last compaction point, the hard state,
 * and the snapshot's metadata (its data is a small handle naming the snapshot file).
 *
 * Call order, as the Ready contract requires: after `wal.save()` resolves, `append()` the same
 * entries and `setHardState()`; after a snapshot is persisted, `applySnapshot()`.
 *
 * An entry the view cannot serve, for whatever reason (compacted, its segment removed by
 * retention, replaced by a snapshot), is reported as StorageError "compacted": the core then
 * sends the follower a snapshot instead. The view follows the WAL's retention on its own: before
 * the WAL removes a segment, it records the newest entry gone (`Wal.gone()`), and the view never
 * serves at or below it.
 */
import { NexusError } from "../errors/index.js";
import type { ConfState, Entry, HardState, Snapshot } from "../raft/types.js";
import { EMPTY_BYTES, EMPTY_CONF_STATE } from "../raft/types.js";
import type { Storage } from "../raft/storage.js";
import { StorageError, limitSize } from "../raft/storage.js";
import type { Wal, WalState } from "./wal.js";
import { clampCommit } from "./wal.js";

export interface DiskStorageOptions {
  /** How many recent entries to keep in memory. Default 10,000. */
  readonly cacheEntries?: number;
  /** Where a hard state that had to be corrected at opening is reported. */
  /** Where warnings go, called as pino is: `(fields, msg)` (a NexusLogger fits). */
  readonly logger?: { warn(fields: Readonly<Record<string, unknown>>, msg: string): void };
}

/** The core's Storage over a recovered WAL (see the module comment). */
export class DiskStorage implements Storage {
  private readonly wal: Wal;
  private hardState: HardState;
  private snap: Snapshot;
  /**
   * Entries at or below this index are compacted; term(compactIndex) is compactTerm.
   * Invariant: compactIndex >= wal.gone().index once synced (see syncWithWal).
   */
  private compactIndex: number;
  private compactTerm: number;
  private readonly cacheMax: number;
  private cache: Entry[] = [];
  private cacheFirst = 1;

  /**
   * A view over a recovered WAL, starting from `snapshot` (metadata, with `data` naming the file;
   * undefined for none). The snapshot must be one the WAL records: the one at its newest marker,
   * an older one whose following entries the WAL still holds (a damaged newest snapshot), or a
   * newer one whose own entry (index and term) the log holds (a local snapshot whose marker was
   * not written before a crash). Throws NexusError INTERNAL for a newer snapshot the log does not
   * back (choose with `Snapshotter.loadNewest(marker)`), and CORRUPTED when the WAL and the
   * snapshot disagree or the entries after the snapshot are gone. The hard state's commit is
   * clamped into [snapshot index, lastIndex()] (the core must never see a commit beyond its log).
   */
  constructor(
    wal: Wal,
    state: WalState,
    snapshot: Snapshot | undefined,
    opts: DiskStorageOptions = {},
  ) {
    this.wal = wal;
    this.cacheMax = opts.cacheEntries ?? 10_000;
    this.snap = snapshot ?? {
      metadata: { index: 0, term: 0, confState: EMPTY_CONF_STATE },
      data: EMPTY_BYTES,
    };
    const s = this.snap.metadata;
    const m = state.snapshot;
    const p = wal.positions;
    if (s.index > m.index && !(p.has(s.index) && p.term(s.index) === s.term)) {
      // Newer than the marker and not backed by the log's own entry at its index (a received
      // snapshot whose marker never reached the disk): the log may contradict it.
      throw new NexusError(
        "INTERNAL",
        `snapshot ${s.index} (term ${s.term}) is newer than the write-ahead log's snapshot marker ` +
          `${m.index} and the log does not hold its entry: the WAL never recorded it, so the log ` +
          `after it cannot be trusted. Open the newest snapshot the marker covers ` +
          `(Snapshotter.loadNewest(marker)).`,
      );
    }
    if (s.index > 0 && s.index === m.index && s.term !== m.term) {
      throw new NexusError(
        "CORRUPTED",
        `snapshot ${s.index} has term ${s.term} but the write-ahead log's marker says term ` +
          `${m.term}. Restore this node from a peer.`,
      );
    }
    if (s.index < m.index) {
      // An older snapshot (the newest is damaged): the WAL must hold every entry after it.
      const holds = p.count > 0 && p.first <= s.index + 1 && p.last >= m.index;
      if (!holds || (s.index >= p.first && p.term(s.index) !== s.term)) {
        throw new NexusError(
          "CORRUPTED",
          `snapshot ${s.index} is older than the write-ahead log's snapshot marker ${m.index}, ` +
            `and the log no longer holds every entry in between (it holds ` +
            `${p.count > 0 ? `${p.first}..${p.last}` : "none"}). The snapshot at ${m.index} is ` +
            `needed: restore it, or restore this node from a peer.`,
        );
      }
    }
    this.compactIndex = s.index;
    this.compactTerm = s.term;
    this.hardState = clampCommit(state.hardState, s.index, this.lastIndex(), (msg, fields) =>
      opts.logger?.warn(fields, msg),
    );
  }

  /** Follows the WAL's retention: entries it can no longer serve leave the view. */
  private syncWithWal(): void {
    const g = this.wal.gone();
    if (g.index <= this.compactIndex) return;
    this.compactIndex = g.index;
    this.compactTerm = g.term;
    this.dropCachedTo(g.index);
  }

  private dropCachedTo(index: number): void {
    if (this.cacheFirst <= index) {
      const drop = Math.min(this.cache.length, index + 1 - this.cacheFirst);
      this.cache = this.cache.slice(drop);
      this.cacheFirst += drop;
    }
  }

  initialState(): { hardState: HardState; confState: ConfState } {
    return { hardState: this.hardState, confState: this.snap.metadata.confState };
  }

  setHardState(hs: HardState): void {
    this.hardState = hs;
  }

  firstIndex(): number {
    this.syncWithWal();
    return this.compactIndex + 1;
  }

  lastIndex(): number {
    this.syncWithWal();
    const p = this.wal.positions;
    if (p.count === 0 || p.last <= this.compactIndex) return this.compactIndex;
    return p.last;
  }

  /**
   * The term of entry i, for i in [firstIndex() - 1, lastIndex()]. Throws StorageError
   * "compacted" below (or when the WAL no longer holds it) and "unavailable" above.
   */
  term(i: number): number {
    this.syncWithWal();
    if (i < this.compactIndex) {
      throw new StorageError(
        "compacted",
        `term of ${i}: compacted (first index ${this.compactIndex + 1})`,
      );
    }
    if (i === this.compactIndex) return this.compactTerm;
    const last = this.lastIndex();
    if (i > last) throw new StorageError("unavailable", `term of ${i}: past last index ${last}`);
    if (!this.wal.positions.has(i)) {
      throw new StorageError("compacted", `term of ${i}: no longer in the write-ahead log`);
    }
    return this.wal.positions.term(i);
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    this.syncWithWal();
    if (lo <= this.compactIndex) {
      throw new StorageError(
        "compacted",
        `entries from ${lo}: compacted (first index ${this.compactIndex + 1})`,
      );
    }
    if (hi > this.lastIndex() + 1) {
      throw new StorageError(
        "unavailable",
        `entries hi ${hi} is past last index ${this.lastIndex()}`,
      );
    }
    const out: Entry[] = [];
    let size = 0;
    for (let i = lo; i < hi; i++) {
      let e = this.cached(i);
      if (e === undefined) {
        if (!this.wal.hasEntry(i)) {
          throw new StorageError("compacted", `entry ${i} is no longer in the write-ahead log`);
        }
        e = this.wal.readEntrySync(i);
      }
      size += e.data.byteLength;
      if (out.length > 0 && size > maxBytes) break;
      out.push(e);
    }
    return limitSize(out, maxBytes);
  }

  private cached(i: number): Entry | undefined {
    const k = i - this.cacheFirst;
    return k >= 0 && k < this.cache.length ? this.cache[k] : undefined;
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  /** Caches entries that were just saved to the WAL (a lower first index replaces the tail). */
  append(ents: readonly Entry[]): void {
    if (ents.length === 0) return;
    const first = ents[0]!.index;
    if (
      this.cache.length === 0 ||
      first < this.cacheFirst ||
      first > this.cacheFirst + this.cache.length
    ) {
      this.cache = ents.slice();
      this.cacheFirst = first;
    } else {
      this.cache.length = first - this.cacheFirst;
      for (const e of ents) this.cache.push(e);
    }
    if (this.cache.length > this.cacheMax) {
      const drop = this.cache.length - this.cacheMax;
      this.cache = this.cache.slice(drop);
      this.cacheFirst += drop;
    }
  }

  /**
   * Records a snapshot made locally at an applied index and its file handle; entries are kept
   * until compact().
   */
  createSnapshot(index: number, confState: ConfState, data: Uint8Array): Snapshot {
    if (index <= this.snap.metadata.index) throw new StorageError("snapshot-out-of-date");
    if (index > this.lastIndex()) {
      throw new Error(`snapshot ${index} is past last index ${this.lastIndex()}`);
    }
    this.snap = { metadata: { index, term: this.term(index), confState }, data };
    return this.snap;
  }

  /** Drops entries before compactIndex from the view (they remain until the WAL releases them). */
  compact(compactIndex: number): void {
    if (compactIndex <= this.firstIndex() - 1) throw new StorageError("compacted");
    if (compactIndex > this.lastIndex()) {
      throw new Error(`compact ${compactIndex} is past last index ${this.lastIndex()}`);
    }
    this.compactTerm = this.term(compactIndex);
    this.compactIndex = compactIndex;
    this.dropCachedTo(compactIndex);
  }

  /** Resets the view to a snapshot received from the leader (after the WAL recorded its marker). */
  applySnapshot(snap: Snapshot): void {
    if (snap.metadata.index <= this.snap.metadata.index)
      throw new StorageError("snapshot-out-of-date");
    this.snap = snap;
    this.compactIndex = snap.metadata.index;
    this.compactTerm = snap.metadata.term;
    this.cache = [];
    this.cacheFirst = snap.metadata.index + 1;
  }
}
