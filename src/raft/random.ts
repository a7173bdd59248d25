/**
 * Seeded randomness for the core: election timeouts are randomized (Raft §5.2) through an
 * injected source so that a run is reproducible from its seed.
 */

/** Returns an integer in [0, n). */
export type RandomSource = (n: number) => number;

/**
 * A small, fast, seeded PRNG (SplitMix32-style mixing of a Weyl sequence). Not cryptographic.
 * The same seed always yields the same sequence.
 */
export function createSeededRandom(seed: number): RandomSource {
  let state = seed >>> 0;
  const next = (): number => {
    state = (state + 0x9e3779b9) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
  return (n: number): number => {
    if (!(n > 0)) return 0;
    return Math.floor((next() / 0x100000000) * n);
  };
}
