/**
 * The Storage interface: how the core reads the stable (persisted) part of the log, and
 * MemoryStorage, an in-memory implementation for tests and for the runtime's log view.
 *
 * The core never writes through this interface. The caller appends entries and sets hard state
 * after persisting a Ready, then calls advance().
 */
import type { ConfState, Entry, HardState, Snapshot } from "./types.js";
import { EMPTY_BYTES, EMPTY_CONF_STATE, EMPTY_HARD_STATE, entriesSize } from "./types.js";

/** Why a Storage call could not answer. */
export type StorageErrorCode =
  /** The requested index is older than the first available one (it was compacted). */
  | "compacted"
  /** The requested index is newer than the last one. */
  | "unavailable"
  /** The snapshot is being made; the leader retries later. */
  | "snapshot-temporarily-unavailable"
  /** The given snapshot is older than the one stored. */
  | "snapshot-out-of-date";

/** An expected refusal of a Storage call. Any other thrown error is a bug or an I/O failure. */
export class StorageError extends Error {
  readonly code: StorageErrorCode;
  constructor(code: StorageErrorCode, message?: string) {
    super(message ?? `raft storage: ${code}`);
    this.name = "StorageError";
    this.code = code;
  }
}

/** Whether an error is a StorageError with the given code. */
export function isStorageError(err: unknown, code: StorageErrorCode): boolean {
  return err instanceof StorageError && err.code === code;
}

/**
 * Read access to the stable log. Indexes follow etcd's conventions: the entries available are
 * [firstIndex(), lastIndex()], and term(firstIndex() - 1) is the term of the snapshot (or 0).
 */
export interface Storage {
  /** The persisted hard state and configuration, read once when the core starts. */
  initialState(): { hardState: HardState; confState: ConfState };
  /**
   * Entries in [lo, hi). Returns at least one entry when lo < hi, and stops before the total data
   * size exceeds maxBytes. Throws StorageError "compacted" if lo < firstIndex(), "unavailable" if
   * hi > lastIndex() + 1.
   */
  entries(lo: number, hi: number, maxBytes: number): Entry[];
  /**
   * The term of entry i, for i in [firstIndex() - 1, lastIndex()]. Throws "compacted" below and
   * "unavailable" above.
   */
  term(i: number): number;
  /** The index of the last entry (the snapshot's index when the log is empty). */
  lastIndex(): number;
  /** The index of the first available entry (snapshot index + 1). */
  firstIndex(): number;
  /**
   * The most recent snapshot. May throw "snapshot-temporarily-unavailable". The leader sends it to
   * followers that need it; it is only useful to a follower if its configuration contains that
   * follower, so the caller should take a fresh snapshot after applying a change that adds a
   * member (a leader waits for one rather than send a snapshot the follower would refuse).
   */
  snapshot(): Snapshot;
}

/** Keeps entries from the front of `ents` until their size would exceed maxBytes (at least one). */
export function limitSize(ents: Entry[], maxBytes: number): Entry[] {
  if (ents.length === 0) return ents;
  let size = ents[0]!.data.byteLength;
  let n = 1;
  for (; n < ents.length; n++) {
    size += ents[n]!.data.byteLength;
    if (size > maxBytes) break;
  }
  return n === ents.length ? ents : ents.slice(0, n);
}

/**
 * An in-memory Storage. `ents[0]` is a dummy entry holding the snapshot's index and term.
 * Invariant: ents[i].index === ents[0].index + i.
 */
export class MemoryStorage implements Storage {
  private hardState: HardState = EMPTY_HARD_STATE;
  private snap: Snapshot = {
    metadata: { index: 0, term: 0, confState: EMPTY_CONF_STATE },
    data: EMPTY_BYTES,
  };
  private ents: Entry[] = [{ term: 0, index: 0, type: "normal", data: EMPTY_BYTES }];

  /** A storage holding the given configuration as if from a snapshot at index 0. */
  static withConfState(confState: ConfState): MemoryStorage {
    const s = new MemoryStorage();
    s.snap = { metadata: { index: 0, term: 0, confState }, data: EMPTY_BYTES };
    return s;
  }

  initialState(): { hardState: HardState; confState: ConfState } {
    return { hardState: this.hardState, confState: this.snap.metadata.confState };
  }

  /** Records the persisted hard state. */
  setHardState(hs: HardState): void {
    this.hardState = hs;
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    const offset = this.ents[0]!.index;
    if (lo <= offset) throw new StorageError("compacted");
    if (hi > this.lastIndex() + 1) {
      throw new StorageError(
        "unavailable",
        `entries hi ${hi} is past last index ${this.lastIndex()}`,
      );
    }
    if (this.ents.length === 1) throw new StorageError("unavailable");
    return limitSize(this.ents.slice(lo - offset, hi - offset), maxBytes);
  }

  term(i: number): number {
    const offset = this.ents[0]!.index;
    if (i < offset) throw new StorageError("compacted");
    if (i - offset >= this.ents.length) throw new StorageError("unavailable");
    return this.ents[i - offset]!.term;
  }

  lastIndex(): number {
    return this.ents[0]!.index + this.ents.length - 1;
  }

  firstIndex(): number {
    return this.ents[0]!.index + 1;
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  /** Replaces the whole contents with a snapshot. Throws "snapshot-out-of-date" if older. */
  applySnapshot(snap: Snapshot): void {
    if (this.snap.metadata.index >= snap.metadata.index) {
      throw new StorageError("snapshot-out-of-date");
    }
    this.snap = snap;
    this.ents = [
      { term: snap.metadata.term, index: snap.metadata.index, type: "normal", data: EMPTY_BYTES },
    ];
  }

  /**
   * Makes a snapshot at index i (<= lastIndex) with the given configuration and data, to be used
   * by a later compact(). Throws "snapshot-out-of-date" if i is not newer than the current one.
   */
  createSnapshot(i: number, confState: ConfState | undefined, data: Uint8Array): Snapshot {
    if (i <= this.snap.metadata.index) throw new StorageError("snapshot-out-of-date");
    const offset = this.ents[0]!.index;
    if (i > this.lastIndex()) {
      throw new Error(`snapshot ${i} is out of bound lastindex(${this.lastIndex()})`);
    }
    this.snap = {
      metadata: {
        index: i,
        term: this.ents[i - offset]!.term,
        confState: confState ?? this.snap.metadata.confState,
      },
      data,
    };
    return this.snap;
  }

  /** Discards entries before compactIndex. Throws "compacted" if already compacted. */
  compact(compactIndex: number): void {
    const offset = this.ents[0]!.index;
    if (compactIndex <= offset) throw new StorageError("compacted");
    if (compactIndex > this.lastIndex()) {
      throw new Error(`compact ${compactIndex} is out of bound lastindex(${this.lastIndex()})`);
    }
    const i = compactIndex - offset;
    const head = this.ents[i]!;
    const dummy: Entry = { term: head.term, index: head.index, type: "normal", data: EMPTY_BYTES };
    this.ents = [dummy].concat(this.ents.slice(i + 1));
  }

  /**
   * Appends entries, truncating any conflicting suffix. Entries before firstIndex are ignored.
   * Invariant: the new entries are contiguous with what is kept.
   */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const first = this.firstIndex();
    const last = entries[0]!.index + entries.length - 1;
    if (last < first) return;
    let ents = entries;
    if (first > ents[0]!.index) ents = ents.slice(first - ents[0]!.index);
    const offset = ents[0]!.index - this.ents[0]!.index;
    if (offset > this.ents.length) {
      throw new Error(
        `missing log entry [last: ${this.lastIndex()}, append at: ${ents[0]!.index}]`,
      );
    }
    this.ents = this.ents.slice(0, offset).concat(ents);
  }

  /** Total data size of the stored entries (for tests). */
  size(): number {
    return entriesSize(this.ents);
  }
}
