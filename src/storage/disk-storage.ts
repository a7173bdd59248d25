/**
 * The raft log view: the core's Storage interface over the WAL. Recent entries are cached in
 * memory; older ones are read back from their segment (synchronously: only slow followers and
 * restarts need them). The view holds entries after the last compaction point, the hard state,
 * and the newest snapshot's metadata (its data is a small handle naming the snapshot file).
 *
 * Call order, as the Ready contract requires: after `wal.save()` resolves, `append()` the same
 * entries and `setHardState()`; after a snapshot is persisted, `applySnapshot()`.
 */
import type { ConfState, Entry, HardState, Snapshot } from "../raft/types.js";
import { EMPTY_BYTES, EMPTY_CONF_STATE, EMPTY_HARD_STATE } from "../raft/types.js";
import type { Storage } from "../raft/storage.js";
import { StorageError, limitSize } from "../raft/storage.js";
import type { Wal, WalState } from "./wal.js";

export interface DiskStorageOptions {
  /** How many recent entries to keep in memory. Default 10,000. */
  readonly cacheEntries?: number;
}

export class DiskStorage implements Storage {
  private readonly wal: Wal;
  private hardState: HardState;
  private snap: Snapshot;
  /** Entries below this index are compacted. Invariant: compactIndex >= snapshot index... or 0. */
  private compactIndex: number;
  private compactTerm: number;
  private readonly cacheMax: number;
  private cache: Entry[] = [];
  private cacheFirst = 1;

  /**
   * A view over a recovered WAL. `snapshot` is the newest snapshot file's metadata (it must match
   * the WAL's marker or be newer) with `data` naming the file; undefined when there is none.
   */
  constructor(
    wal: Wal,
    state: WalState,
    snapshot: Snapshot | undefined,
    opts: DiskStorageOptions = {},
  ) {
    this.wal = wal;
    this.hardState = state.hardState;
    this.cacheMax = opts.cacheEntries ?? 10_000;
    this.snap = snapshot ?? {
      metadata: { index: 0, term: 0, confState: EMPTY_CONF_STATE },
      data: EMPTY_BYTES,
    };
    this.compactIndex = this.snap.metadata.index;
    this.compactTerm = this.snap.metadata.term;
    if (state.hardState === EMPTY_HARD_STATE) this.hardState = EMPTY_HARD_STATE;
  }

  initialState(): { hardState: HardState; confState: ConfState } {
    return { hardState: this.hardState, confState: this.snap.metadata.confState };
  }

  setHardState(hs: HardState): void {
    this.hardState = hs;
  }

  firstIndex(): number {
    return this.compactIndex + 1;
  }

  lastIndex(): number {
    const p = this.wal.positions;
    if (p.count === 0 || p.last <= this.compactIndex) return this.compactIndex;
    return p.last;
  }

  term(i: number): number {
    if (i < this.compactIndex) throw new StorageError("compacted");
    if (i === this.compactIndex) return this.compactTerm;
    if (i > this.lastIndex()) throw new StorageError("unavailable");
    return this.wal.positions.term(i);
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    if (lo <= this.compactIndex) throw new StorageError("compacted");
    if (hi > this.lastIndex() + 1) {
      throw new StorageError(
        "unavailable",
        `entries hi ${hi} is past last index ${this.lastIndex()}`,
      );
    }
    const out: Entry[] = [];
    let size = 0;
    for (let i = lo; i < hi; i++) {
      const e = this.cached(i) ?? this.wal.readEntrySync(i);
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
    if (compactIndex <= this.compactIndex) throw new StorageError("compacted");
    if (compactIndex > this.lastIndex()) {
      throw new Error(`compact ${compactIndex} is past last index ${this.lastIndex()}`);
    }
    this.compactTerm = this.term(compactIndex);
    this.compactIndex = compactIndex;
    if (this.cacheFirst <= compactIndex) {
      const drop = Math.min(this.cache.length, compactIndex + 1 - this.cacheFirst);
      this.cache = this.cache.slice(drop);
      this.cacheFirst += drop;
    }
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
