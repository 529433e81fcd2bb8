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

describe('tune Rng', () => {
  it('keeps the pinned first draws of seeds 0-9 (published seeded results depend on them)', () => {
    expect([0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map((seed) => new Rng(seed).next())).toEqual([
      0.7671982778701931, 0.14991333335638046, 0.4217558160889894, 0.39835536922328174, 0.08545853733085096,
      0.7929117204621434, 0.10685796267352998, 0.38037294894456863, 0.7001615888439119, 0.8844834784977138,
    ]);
  });

  it('gives distinct sequences for seeds that differ only above bit 32 or by sign', () => {
    const first = (seed: number) => {
      const r = new Rng(seed);
      return draws(() => r.next(), 4).join(',');
    };
    const seeds = [-1, 0, 1, 2 ** 32, 2 ** 32 + 1, -(2 ** 40), -2, 2, -3, 2 ** 53 - 1, -(2 ** 53 - 1)];
    expect(new Set(seeds.map(first)).size).toBe(seeds.length);
    // No small negative seed shares its sequence with a small non-negative one.
    const small = Array.from({ length: 2001 }, (_, i) => first(i - 1000));
    expect(new Set(small).size).toBe(2001);
    // A seed with a non-zero high word never gives the sequence of its low word.
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 ** 32 - 1 }),
        fc.integer({ min: -(2 ** 21), max: 2 ** 21 - 1 }).filter((h) => h !== 0),
        (low, high) => {
          expect(first(high * 2 ** 32 + low)).not.toBe(first(low));
        },
      ),
    );
  });

  it('int: one draw for a range of up to 2^32 integers (the sequence of floor(next * n))', () => {
    fc.assert(
      fc.property(
        fc.integer(),
        fc.integer({ min: -(2 ** 40), max: 2 ** 40 }),
        fc.integer({ min: 0, max: 2 ** 32 - 1 }),
        (seed, min, w) => {
          const a = new Rng(seed);
          const b = new Rng(seed);
          for (let i = 0; i < 4; i++) expect(a.int(min, min + w)).toBe(min + Math.floor(b.next() * (w + 1)));
        },
      ),
    );
  });

  it('int: 53 random bits for a wider range, so odd values and both bounds stay reachable', () => {
    const r = new Rng(7);
    const xs = Array.from({ length: 4000 }, () => r.int(0, 2 ** 40));
    // With 32 bits every draw of int(0, 2^40) would be a multiple of 2^8.
    const odd = xs.filter((x) => x % 2 === 1).length;
    expect(Math.abs(odd - 2000)).toBeLessThan(200);
    expect(xs.filter((x) => x % 256 === 0).length).toBeLessThan(100);
    // Uniform: each eighth of the range gets about 500 draws (sd about 21).
    const bins = new Array<number>(8).fill(0);
    for (const x of xs) {
      const b = Math.min(7, Math.floor(x / 2 ** 37));
      bins[b] = (bins[b] as number) + 1;
    }
    for (const count of bins) expect(Math.abs(count - 500)).toBeLessThan(130);
    fc.assert(
      fc.property(
        fc.integer(),
        fc.integer({ min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER - 2 ** 32 }),
        (seed, min) => {
          const g = new Rng(seed);
          const max = Math.min(Number.MAX_SAFE_INTEGER, min + 2 ** 32 + (seed >>> 0) * 2 ** 20);
          for (let i = 0; i < 8; i++) {
            const x = g.int(min, max);
            expect(Number.isSafeInteger(x)).toBe(true);
            expect(x).toBeGreaterThanOrEqual(min);
            expect(x).toBeLessThanOrEqual(max);
          }
        },
      ),
    );
    const full = new Rng(3);
    for (let i = 0; i < 100; i++) {
      const x = full.int(Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
      expect(Number.isSafeInteger(x)).toBe(true);
    }
  });
});
