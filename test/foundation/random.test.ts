/**
 * The seeded generator: its sequence is pinned (seeded results elsewhere, the perf bootstrap and
 * the tune samplers, depend on it), draws are in [0, 1), and the seed is read as its low 32 bits.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SplitMix32, splitMix32 } from '../../src/foundation/random.js';
import { seededRandom } from '../../src/perf/stats.js';
import { Rng } from '../../src/tune/random.js';

function draws(next: () => number, n: number): number[] {
  return Array.from({ length: n }, () => next());
}

describe('SplitMix32', () => {
  it('gives the pinned sequence for a seed', () => {
    const g = new SplitMix32(0);
    expect(draws(() => g.next(), 3)).toEqual([0.3921251413412392, 0.8505931859835982, 0.684420470148325]);
    expect(draws(splitMix32(42), 4)).toEqual([
      0.12848330102860928, 0.03353364090435207, 0.07509804493747652, 0.7065966189838946,
    ]);
  });

  it('splitMix32, the class and perf seededRandom give the same sequence', () => {
    fc.assert(
      fc.property(fc.integer({ min: -(2 ** 40), max: 2 ** 40 }), (seed) => {
        const g = new SplitMix32(seed);
        const expected = draws(() => g.next(), 16);
        expect(draws(splitMix32(seed), 16)).toEqual(expected);
        expect(draws(seededRandom(seed), 16)).toEqual(expected);
      }),
    );
  });

  it('tune Rng continues the sequence of its folded seed after four warm-up draws', () => {
    const rng = new Rng(42);
    expect(draws(() => rng.next(), 2)).toEqual([0.21141720796003938, 0.6166351919528097]);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 32 - 1 }), (seed) => {
        const next = splitMix32(seed);
        draws(next, 4);
        const r = new Rng(seed);
        expect(draws(() => r.next(), 8)).toEqual(draws(next, 8));
      }),
    );
  });

  it('draws floats in [0, 1) that are multiples of 2^-32', () => {
    fc.assert(
      fc.property(fc.integer(), (seed) => {
        for (const x of draws(splitMix32(seed), 64)) {
          expect(x).toBeGreaterThanOrEqual(0);
          expect(x).toBeLessThan(1);
          expect(Number.isInteger(x * 2 ** 32)).toBe(true);
        }
      }),
    );
  });

  it('reads the seed as its low 32 bits', () => {
    expect(draws(splitMix32(-1), 5)).toEqual(draws(splitMix32(2 ** 32 - 1), 5));
    expect(draws(splitMix32(7 + 2 ** 32), 5)).toEqual(draws(splitMix32(7), 5));
    expect(draws(splitMix32(1), 5)).not.toEqual(draws(splitMix32(2), 5));
  });

  it('spreads draws evenly over [0, 1)', () => {
    const next = splitMix32(123);
    const bins = new Array<number>(10).fill(0);
    const n = 100_000;
    for (let i = 0; i < n; i++) {
      const b = Math.floor(next() * 10);
      bins[b] = (bins[b] as number) + 1;
    }
    // Each bin expects 10_000 draws (sd about 95); 600 off is over six standard deviations.
    for (const count of bins) expect(Math.abs(count - n / 10)).toBeLessThan(600);
  });
});
