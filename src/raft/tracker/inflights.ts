/**
 * The bounded window of in-flight append messages to one follower (flow control). Each entry of
 * the window is the last index of one sent append and the bytes it carried.
 * Invariant: the indexes in the window are increasing.
 */
export class Inflights {
  /** Maximum number of messages in flight. */
  readonly maxCount: number;
  /** Maximum total bytes in flight (0 = unlimited). */
  readonly maxBytes: number;
  private readonly idx: number[];
  private readonly sizes: number[];
  private start = 0;
  private n = 0;
  private totalBytes = 0;

  constructor(maxCount: number, maxBytes = 0) {
    if (!(maxCount > 0)) throw new Error(`inflights: maxCount must be > 0, got ${maxCount}`);
    this.maxCount = maxCount;
    this.maxBytes = maxBytes;
    this.idx = new Array<number>(maxCount).fill(0);
    this.sizes = new Array<number>(maxCount).fill(0);
  }

  /** A copy with the same limits and contents. */
  clone(): Inflights {
    const c = new Inflights(this.maxCount, this.maxBytes);
    for (let i = 0; i < this.n; i++) {
      const j = (this.start + i) % this.maxCount;
      c.add(this.idx[j]!, this.sizes[j]!);
    }
    return c;
  }

  /** Records a sent append whose last entry is `index`. Invariant: the window is not full. */
  add(index: number, bytes: number): void {
    if (this.full()) throw new Error("inflights: cannot add into a full window");
    const j = (this.start + this.n) % this.maxCount;
    this.idx[j] = index;
    this.sizes[j] = bytes;
    this.n++;
    this.totalBytes += bytes;
  }

  /** Frees every in-flight message whose index is <= to (they were acknowledged). */
  freeLE(to: number): void {
    while (this.n > 0 && this.idx[this.start]! <= to) {
      this.totalBytes -= this.sizes[this.start]!;
      this.start = (this.start + 1) % this.maxCount;
      this.n--;
    }
    if (this.n === 0) this.start = 0;
  }

  /**
   * Frees the oldest in-flight message. Used when a heartbeat response shows the follower is
   * alive while the window is full: some append was probably lost, and one slot lets the leader
   * send again (and learn where the follower really is) instead of stalling.
   */
  freeFirstOne(): void {
    if (this.n === 0) return;
    this.freeLE(this.idx[this.start]!);
  }

  /** Whether no more messages may be sent. */
  full(): boolean {
    return this.n === this.maxCount || (this.maxBytes > 0 && this.totalBytes >= this.maxBytes);
  }

  count(): number {
    return this.n;
  }

  bytes(): number {
    return this.totalBytes;
  }

  reset(): void {
    this.start = 0;
    this.n = 0;
    this.totalBytes = 0;
  }
}
