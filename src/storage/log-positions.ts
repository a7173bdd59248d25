/**
 * Where each log entry lives on disk: its term, segment sequence number, record offset and record
 * length, for the contiguous indexes [first, last]. Kept in growable typed arrays so that a log
 * of millions of entries costs a few tens of bytes per entry, not an object each.
 */
export class LogPositions {
  /** Index of the first position held (when count > 0). */
  first = 1;
  count = 0;
  private terms = new Float64Array(1024);
  private seqs = new Uint32Array(1024);
  private offsets = new Float64Array(1024);
  private lengths = new Uint32Array(1024);
  /** Number of slots dropped at the front and not yet reclaimed. */
  private head = 0;

  get last(): number {
    return this.first + this.count - 1;
  }

  private ensure(n: number): void {
    const needed = this.head + n;
    if (needed <= this.terms.length) return;
    if (this.head > 0 && n <= this.terms.length / 2) {
      // Reclaim the dropped front instead of growing.
      this.terms.copyWithin(0, this.head, this.head + this.count);
      this.seqs.copyWithin(0, this.head, this.head + this.count);
      this.offsets.copyWithin(0, this.head, this.head + this.count);
      this.lengths.copyWithin(0, this.head, this.head + this.count);
      this.head = 0;
      return;
    }
    const size = Math.max(n * 2, 1024);
    const grow = <T extends Float64Array | Uint32Array>(a: T, make: (n: number) => T): T => {
      const b = make(size);
      b.set(a.subarray(this.head, this.head + this.count));
      return b;
    };
    this.terms = grow(this.terms, (k) => new Float64Array(k));
    this.seqs = grow(this.seqs, (k) => new Uint32Array(k));
    this.offsets = grow(this.offsets, (k) => new Float64Array(k));
    this.lengths = grow(this.lengths, (k) => new Uint32Array(k));
    this.head = 0;
  }

  /**
   * Records entry `index`. An index at or below the last truncates everything from it (a
   * conflicting suffix replaced); an index above last + 1 resets the positions to start there.
   */
  put(index: number, term: number, seq: number, offset: number, length: number): void {
    if (this.count === 0 || index < this.first || index > this.last + 1) {
      if (this.count > 0 && index < this.first) {
        // Older than what we hold: restart from it (the caller validated continuity).
      }
      this.first = index;
      this.count = 0;
      this.head = 0;
    } else if (index <= this.last) {
      this.count = index - this.first;
    }
    this.ensure(this.count + 1);
    const i = this.head + this.count;
    this.terms[i] = term;
    this.seqs[i] = seq;
    this.offsets[i] = offset;
    this.lengths[i] = length;
    this.count++;
  }

  has(index: number): boolean {
    return this.count > 0 && index >= this.first && index <= this.last;
  }

  term(index: number): number {
    return this.terms[this.head + index - this.first]!;
  }

  seq(index: number): number {
    return this.seqs[this.head + index - this.first]!;
  }

  offset(index: number): number {
    return this.offsets[this.head + index - this.first]!;
  }

  length(index: number): number {
    return this.lengths[this.head + index - this.first]!;
  }

  /** Drops positions below index. */
  dropBefore(index: number): void {
    if (this.count === 0 || index <= this.first) return;
    if (index > this.last) {
      this.first = index;
      this.count = 0;
      this.head = 0;
      return;
    }
    const n = index - this.first;
    this.head += n;
    this.count -= n;
    this.first = index;
  }

  /** Forgets everything; the next put() starts anew. */
  clear(nextIndex: number): void {
    this.first = nextIndex;
    this.count = 0;
    this.head = 0;
  }
}
