/**
 * Saves and loads over the last minutes, in fixed time buckets, for the status page's charts:
 * per bucket the count, the failures, the mean and the largest latency. Memory is bounded (a ring
 * of `buckets` buckets per kind), whatever the request rate.
 */

export type RateKind = "save" | "load";

interface Bucket {
  /** Start of the bucket, ms since the epoch (a multiple of bucketMs). */
  start: number;
  count: number;
  failed: number;
  sumMs: number;
  maxMs: number;
}

/** One bucket as /status/rates returns it. */
export interface RatePoint {
  readonly start: number;
  readonly count: number;
  readonly failed: number;
  /** Requests per second over the bucket. */
  readonly perSecond: number;
  readonly meanMs: number;
  readonly maxMs: number;
}

export class RecentRates {
  private readonly ring: Record<RateKind, Bucket[]> = { save: [], load: [] };

  constructor(
    readonly bucketMs = 5000,
    readonly buckets = 60,
    private readonly now: () => number = Date.now,
  ) {}

  record(kind: RateKind, ms: number, ok: boolean): void {
    const start = Math.floor(this.now() / this.bucketMs) * this.bucketMs;
    const ring = this.ring[kind];
    let b = ring[ring.length - 1];
    if (b === undefined || b.start !== start) {
      b = { start, count: 0, failed: 0, sumMs: 0, maxMs: 0 };
      ring.push(b);
      if (ring.length > this.buckets) ring.shift();
    }
    b.count++;
    if (!ok) b.failed++;
    b.sumMs += ms;
    b.maxMs = Math.max(b.maxMs, ms);
  }

  /** The last `buckets` buckets up to now, oldest first, empty ones included. */
  series(kind: RateKind): RatePoint[] {
    const last = Math.floor(this.now() / this.bucketMs) * this.bucketMs;
    const byStart = new Map(this.ring[kind].map((b) => [b.start, b]));
    const out: RatePoint[] = [];
    for (let i = this.buckets - 1; i >= 0; i--) {
      const start = last - i * this.bucketMs;
      const b = byStart.get(start);
      out.push({
        start,
        count: b?.count ?? 0,
        failed: b?.failed ?? 0,
        perSecond: b === undefined ? 0 : b.count / (this.bucketMs / 1000),
        meanMs: b === undefined || b.count === 0 ? 0 : b.sumMs / b.count,
        maxMs: b?.maxMs ?? 0,
      });
    }
    return out;
  }
}
