/**
 * The log as the core sees it: the stable entries in Storage followed by the unstable ones, plus
 * the commit and applied indexes (Raft §5.3).
 * Invariant: applied <= committed <= lastIndex().
 * Invariant: firstIndex() - 1 <= applied (entries before the snapshot are applied).
 */
import { Unstable } from "./log-unstable.js";
import type { Storage } from "./storage.js";
import { StorageError, isStorageError, limitSize } from "./storage.js";
import type { Entry, Snapshot } from "./types.js";
import { invariant } from "./invariant.js";

export class RaftLog {
  readonly storage: Storage;
  readonly unstable: Unstable;
  /** The highest index known to be committed on a quorum. */
  committed: number;
  /** The highest index handed to the application to apply. */
  applied: number;
  /** Maximum bytes of committed entries handed out in one Ready. */
  readonly maxApplyingEntsSize: number;

  constructor(storage: Storage, maxApplyingEntsSize: number) {
    this.storage = storage;
    this.maxApplyingEntsSize = maxApplyingEntsSize;
    const first = storage.firstIndex();
    const last = storage.lastIndex();
    this.unstable = new Unstable(last + 1);
    this.committed = first - 1;
    this.applied = first - 1;
  }

  /**
   * Appends entries from the leader if the log matches at (index, logTerm) (the log-matching
   * property, Raft §5.3). Returns the index of the last new entry, or undefined on mismatch.
   * Conflicting entries (same index, other term) and everything after them are replaced.
   */
  maybeAppend(
    index: number,
    logTerm: number,
    committed: number,
    ents: readonly Entry[],
  ): number | undefined {
    if (!this.matchTerm(index, logTerm)) return undefined;
    const lastNew = index + ents.length;
    const ci = this.findConflict(ents);
    if (ci !== 0) {
      invariant(
        ci > this.committed,
        `entry ${ci} conflicts with committed entry [committed(${this.committed})]`,
      );
      this.append(ents.slice(ci - (index + 1)));
    }
    this.commitTo(Math.min(committed, lastNew));
    return lastNew;
  }

  /** Appends entries to the unstable part (truncating a conflicting suffix). Returns lastIndex. */
  append(ents: readonly Entry[]): number {
    if (ents.length === 0) return this.lastIndex();
    const after = ents[0]!.index - 1;
    invariant(
      after >= this.committed,
      `after(${after}) is out of range [committed(${this.committed})]`,
    );
    this.unstable.truncateAndAppend(ents);
    return this.lastIndex();
  }

  /**
   * The index of the first entry of ents that conflicts with the log (same index, other term),
   * or of the first new entry if none conflicts, or 0 if all are already present.
   */
  findConflict(ents: readonly Entry[]): number {
    for (const e of ents) {
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  /**
   * Fast backtracking: the largest index <= index whose term is <= term, and that term. An entry
   * with a larger term cannot match the other log at that index, so the search skips it.
   */
  findConflictByTerm(index: number, term: number): { index: number; term: number } {
    for (let i = index; i > 0; i--) {
      const t = this.termOrUndefined(i);
      if (t === undefined) return { index: i, term: 0 };
      if (t <= term) return { index: i, term: t };
    }
    return { index: 0, term: 0 };
  }

  /** Entries not yet persisted. */
  unstableEntries(): Entry[] {
    return this.unstable.entries;
  }

  /** Committed entries not yet handed to the application, bounded by maxApplyingEntsSize. */
  nextCommittedEnts(): Entry[] {
    if (this.hasPendingSnapshot()) return [];
    const lo = this.applied + 1;
    const hi = Math.min(this.committed, this.lastIndex()) + 1;
    if (lo >= hi) return [];
    return this.slice(lo, hi, this.maxApplyingEntsSize);
  }

  /** Whether there are committed entries to hand out. */
  hasNextCommittedEnts(): boolean {
    if (this.hasPendingSnapshot()) return false;
    return this.applied < Math.min(this.committed, this.lastIndex());
  }

  /** Whether an unstable snapshot waits to be persisted and applied. */
  hasPendingSnapshot(): boolean {
    return this.unstable.snapshot !== undefined;
  }

  /** The snapshot to send to a follower: the unstable one or the storage's. */
  snapshot(): Snapshot {
    return this.unstable.snapshot ?? this.storage.snapshot();
  }

  firstIndex(): number {
    return this.unstable.maybeFirstIndex() ?? this.storage.firstIndex();
  }

  lastIndex(): number {
    return this.unstable.maybeLastIndex() ?? this.storage.lastIndex();
  }

  /** The last index that is persisted (excluding the unstable part). */
  stableLastIndex(): number {
    if (this.unstable.snapshot !== undefined) return this.storage.lastIndex();
    return this.unstable.offset - 1;
  }

  /** Raises the commit index. Invariant: the new commit index is <= lastIndex. */
  commitTo(toCommit: number): void {
    if (this.committed < toCommit) {
      invariant(
        this.lastIndex() >= toCommit,
        `tocommit(${toCommit}) is out of range [lastIndex(${this.lastIndex()})]. ` +
          "Was the raft log corrupted, truncated, or lost?",
      );
      this.committed = toCommit;
    }
  }

  /** Records that entries up to i were handed to the application. */
  appliedTo(i: number): void {
    if (i === 0) return;
    invariant(
      this.committed >= i && i >= this.applied,
      `applied(${i}) is out of range [prevApplied(${this.applied}), committed(${this.committed})]`,
    );
    this.applied = i;
  }

  stableTo(i: number, t: number): void {
    this.unstable.stableTo(i, t);
  }

  stableSnapTo(i: number): void {
    this.unstable.stableSnapTo(i);
  }

  lastTerm(): number {
    const t = this.termOrUndefined(this.lastIndex());
    invariant(t !== undefined, `unexpected error when getting the last term`);
    return t;
  }

  /**
   * The term of entry i. Throws StorageError "compacted" below firstIndex() - 1 and
   * "unavailable" above lastIndex().
   */
  term(i: number): number {
    const ut = this.unstable.maybeTerm(i);
    if (ut !== undefined) return ut;
    // The valid range for the stable part is [firstIndex()-1, stable last index].
    const dummy = this.firstIndex() - 1;
    if (i < dummy) throw new StorageError("compacted");
    if (i > this.lastIndex()) throw new StorageError("unavailable");
    return this.storage.term(i);
  }

  /** The term of entry i, or undefined if it is compacted or past the end. */
  termOrUndefined(i: number): number | undefined {
    try {
      return this.term(i);
    } catch (err) {
      if (isStorageError(err, "compacted") || isStorageError(err, "unavailable")) return undefined;
      throw err;
    }
  }

  /** Entries from i to the end, bounded by maxBytes (at least one). */
  entries(i: number, maxBytes: number): Entry[] {
    if (i > this.lastIndex()) return [];
    return this.slice(i, this.lastIndex() + 1, maxBytes);
  }

  /** Every entry from the first index (for tests). */
  allEntries(): Entry[] {
    return this.entries(this.firstIndex(), Number.MAX_SAFE_INTEGER);
  }

  /**
   * Whether a log ending at (lasti, term) is at least as up to date as ours (Raft §5.4.1):
   * a later last term wins; with equal terms, the longer log.
   */
  isUpToDate(lasti: number, term: number): boolean {
    const lt = this.lastTerm();
    return term > lt || (term === lt && lasti >= this.lastIndex());
  }

  /** Whether the entry at i has term t. */
  matchTerm(i: number, t: number): boolean {
    const lt = this.termOrUndefined(i);
    return lt !== undefined && lt === t;
  }

  /**
   * Commits up to maxIndex only if that entry is of the given (current) term: a leader never
   * commits entries of earlier terms by counting replicas (Raft §5.4.2, Figure 8).
   */
  maybeCommit(maxIndex: number, term: number): boolean {
    if (maxIndex > this.committed && this.termOrUndefined(maxIndex) === term) {
      this.commitTo(maxIndex);
      return true;
    }
    return false;
  }

  /** Resets the log to a snapshot received from the leader. */
  restore(s: Snapshot): void {
    this.committed = s.metadata.index;
    this.unstable.restore(s);
  }

  /** Entries in [lo, hi), bounded by maxBytes. Throws "compacted" if lo is compacted. */
  slice(lo: number, hi: number, maxBytes: number): Entry[] {
    this.mustCheckOutOfBounds(lo, hi);
    if (lo === hi) return [];
    let ents: Entry[] = [];
    const off = this.unstable.offset;
    if (lo < off) {
      const stored = this.storage.entries(lo, Math.min(hi, off), maxBytes);
      // The storage may return fewer entries because of the size limit.
      if (stored.length < Math.min(hi, off) - lo) return stored;
      ents = stored;
    }
    if (hi > off) {
      const uns = this.unstable.slice(Math.max(lo, off), hi);
      ents = ents.length > 0 ? ents.concat(uns) : uns;
    }
    return limitSize(ents, maxBytes);
  }

  private mustCheckOutOfBounds(lo: number, hi: number): void {
    invariant(lo <= hi, `invalid slice ${lo} > ${hi}`);
    const fi = this.firstIndex();
    if (lo < fi) throw new StorageError("compacted");
    const length = this.lastIndex() + 1 - fi;
    invariant(hi <= fi + length, `slice[${lo},${hi}) out of bound [${fi},${this.lastIndex()}]`);
  }

  describe(): string {
    return (
      `committed=${this.committed} applied=${this.applied} ` +
      `unstable.offset=${this.unstable.offset} len(unstable.entries)=${this.unstable.entries.length}`
    );
  }
}
