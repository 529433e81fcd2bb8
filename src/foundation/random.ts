/**
 * A small seeded pseudo-random generator for everything that must be reproducible: the same seed
 * gives the same sequence, on every platform and Node version (it uses only 32-bit integer
 * arithmetic). Never Math.random where a run must replay. Not for secrets: use node:crypto.
 *
 * The generator is SplitMix32: a 32-bit Weyl sequence (add the golden-ratio constant) passed
 * through an avalanche mix. The perf bootstrap (`seededRandom`) and the tune samplers (`Rng`) both
 * draw from it.
 */

/**
 * One step of SplitMix32 on `state` (its first element): advance the state and return the draw.
 * The state lives in a typed array: a 32-bit value held in a field or a closure variable would be
 * boxed as a heap number on every step (it exceeds the small-integer range), about 10x slower.
 */
function step(state: Uint32Array): number {
  state[0] = (state[0] as number) + 0x9e3779b9;
  let z = state[0] as number;
  z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
  z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
  z ^= z >>> 15;
  return (z >>> 0) / 4294967296;
}

/** A SplitMix32 generator: floats in [0, 1), one per `next()`. */
export class SplitMix32 {
  readonly #state: Uint32Array;

  /**
   * `seed` is any number; its low 32 bits (as `seed >>> 0` reads them) are the initial state, so
   * seeds that differ by a multiple of 2^32 give the same sequence.
   */
  constructor(seed: number) {
    this.#state = new Uint32Array([seed >>> 0]);
  }

  /** The next float in [0, 1): a multiple of 2^-32. */
  next(): number {
    return step(this.#state);
  }
}

/** A SplitMix32 generator as a function (seeded as `SplitMix32`): each call returns the next draw. */
export function splitMix32(seed: number): () => number {
  const state = new Uint32Array([seed >>> 0]);
  return () => step(state);
}
