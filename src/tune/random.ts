/**
 * Seeded randomness for samplers and schedulers: the same seed gives the same study. Never
 * Math.random: a study must be reproducible, and a test must be able to replay it.
 */
import { SplitMix32 } from '../foundation/random.js';

/**
 * A hash of a seed's high word (`Math.floor(seed / 2^32)`, as a 32-bit integer) to 32 bits: 0 for
 * 0, so seeds in [0, 2^32) keep their sequences, and otherwise multiplied by an odd constant and
 * avalanched (murmur3's finalizer), a bijection of the 32-bit integers.
 */
function mixHighWord(high: number): number {
  let h = Math.imul(high | 0, 0x9e3779b1);
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** The generator's initial state for a seed: its low word, xored with the hash of its high word. */
function foldSeed(seed: number): number {
  return ((seed >>> 0) ^ mixHighWord(Math.floor(seed / 2 ** 32))) >>> 0;
}

/**
 * A seeded generator with the draws samplers need, on SplitMix32 (foundation/random.ts): `next()`
 * is a float in [0, 1).
 */
export class Rng extends SplitMix32 {
  #spare = Number.NaN;

  /**
   * `seed` is any safe integer; different seeds give unrelated sequences. A seed in [0, 2^32)
   * is the generator's initial state as is; the high word of any other (a negative seed, or one
   * >= 2^32) is hashed (`mixHighWord`) into the low one, so seed -1 differs from 0 and 2^32 + 1
   * from 1. The state has 32 bits, so some pairs of seeds outside [0, 2^32) still share a
   * sequence, but no simple pattern does (seeds 2^32 apart never do, nor small negative and
   * small positive ones).
   */
  constructor(seed: number) {
    super(foldSeed(seed));
    // Warm the state so that nearby seeds (0, 1, 2...) diverge from the first draw.
    for (let i = 0; i < 4; i++) this.next();
  }

  /** A float in [min, max). */
  uniform(min: number, max: number): number {
    return min + (max - min) * this.next();
  }

  /**
   * An integer in [min, max] (both inclusive). A range of at most 2^32 integers takes one draw;
   * a wider one takes two, for 53 random bits, so that every integer of int(0, 2^40) can come up
   * (32 bits would give only multiples of 2^8).
   */
  int(min: number, max: number): number {
    const n = max - min + 1;
    if (n <= 2 ** 32) return min + Math.floor(this.next() * n);
    // 21 high bits then 32 low bits: a multiple of 2^-53 in [0, 1).
    const high = Math.floor(this.next() * 2 ** 21);
    const u = (high * 2 ** 32 + this.next() * 2 ** 32) / 2 ** 53;
    // Rounding of u * n can reach n when n is not a power of two.
    return Math.min(max, min + Math.floor(u * n));
  }

  /** A standard normal draw (Marsaglia's polar method; the second value of each pair is kept). */
  normal(): number {
    if (!Number.isNaN(this.#spare)) {
      const v = this.#spare;
      this.#spare = Number.NaN;
      return v;
    }
    let u: number;
    let v: number;
    let s: number;
    do {
      u = 2 * this.next() - 1;
      v = 2 * this.next() - 1;
      s = u * u + v * v;
    } while (s >= 1 || s === 0);
    const f = Math.sqrt((-2 * Math.log(s)) / s);
    this.#spare = v * f;
    return u * f;
  }

  /** An element of a non-empty array, uniformly. */
  pick<T>(values: readonly T[]): T {
    return values[Math.floor(this.next() * values.length)] as T;
  }

  /** A new generator derived from this one (for a sub-component that needs its own stream). */
  fork(): Rng {
    return new Rng(Math.floor(this.next() * 2 ** 32));
  }
}
