/**
 * A seeded random number generator for the chaos run (the nemesis plan and the workload's
 * choices), on the project's own seeded PRNG so that a seed replays the same plan.
 */
import { createSeededRandom } from "../../src/raft/random.js";

export class SeededRng {
  private readonly next: (n: number) => number;

  constructor(readonly seed: number) {
    this.next = createSeededRandom(seed);
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return this.next(n);
  }

  /** An integer in [lo, hi] (inclusive). */
  between(lo: number, hi: number): number {
    return lo + this.next(hi - lo + 1);
  }

  /** A float in [0, 1). */
  float(): number {
    return this.next(0x40000000) / 0x40000000;
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.float() < p;
  }

  /** One element of a non-empty array. */
  pick<T>(xs: readonly T[]): T {
    if (xs.length === 0) throw new Error("pick from an empty array");
    return xs[this.next(xs.length)]!;
  }

  /** A choice by weights: returns the key whose weight range the draw falls in. */
  weighted<K extends string>(weights: Readonly<Record<K, number>>): K {
    const entries = Object.entries(weights) as [K, number][];
    const total = entries.reduce((s, [, w]) => s + w, 0);
    let x = this.float() * total;
    for (const [k, w] of entries) {
      if (x < w) return k;
      x -= w;
    }
    return entries[entries.length - 1]![0];
  }

  /** A fresh generator derived from this one (independent streams from one seed). */
  fork(): SeededRng {
    return new SeededRng(this.next(0x100000000) >>> 0);
  }
}
