/**
 * Seeded randomness for samplers and schedulers: the same seed gives the same study. Never
 * Math.random: a study must be reproducible, and a test must be able to replay it.
 */
import { SplitMix32 } from '../foundation/random.js';

/**
 * A seeded generator with the draws samplers need, on SplitMix32 (foundation/random.ts): `next()`
 * is a float in [0, 1).
 */
export class Rng extends SplitMix32 {
  #spare = Number.NaN;

  /** `seed` is any safe integer; different seeds give unrelated sequences. */
  constructor(seed: number) {
    // Fold the bits of a seed above 32 into the low ones.
    super((seed >>> 0) ^ Math.floor(seed / 2 ** 32));
    // Warm the state so that nearby seeds (0, 1, 2...) diverge from the first draw.
    for (let i = 0; i < 4; i++) this.next();
  }

  /** A float in [min, max). */
  uniform(min: number, max: number): number {
    return min + (max - min) * this.next();
  }

  /** An integer in [min, max] (both inclusive). */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
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
