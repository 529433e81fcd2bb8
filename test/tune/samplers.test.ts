/**
 * Random and grid search, and what every sampler owes the study: values always inside their
 * dimension (property-tested over random spaces, TPE included), integral ints, reproducible
 * sequences for a seed, distinct configurations for concurrent asks.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  GridSampler,
  gridSampler,
  gridValues,
  PENDING_LIMIT,
  RandomSampler,
  randomSampler,
  tpeSampler,
} from '../../src/tune/samplers/index.js';
import { checkConfig, checkSpace, SearchSpaceError, sameConfig } from '../../src/tune/space.js';
import type { Config, Dimension, Sampler, SamplerFactory, SearchSpace } from '../../src/tune/types.js';

const FACTORIES: [string, SamplerFactory][] = [
  ['random', randomSampler()],
  ['grid', gridSampler({ gridPoints: 4 })],
  ['tpe', tpeSampler({ nStartupTrials: 5 })],
];

/** A deterministic loss for any configuration (so TPE has something to model). */
function lossOf(config: Config): number {
  let s = 0;
  for (const [k, v] of Object.entries(config)) {
    const x = typeof v === 'number' ? v : typeof v === 'boolean' ? (v ? 1 : 0) : String(v).length;
    s += Math.sin(x * 1.7 + k.length) + x * x * 1e-3;
  }
  return s;
}

/** Up to n asks, each told at once; stops early when the sampler runs dry. */
function drive(sampler: Sampler, n: number): Config[] {
  const out: Config[] = [];
  for (let i = 0; i < n; i++) {
    const c = sampler.ask();
    if (c === null) break;
    out.push(c);
    sampler.tell(c, lossOf(c), i % 7 === 3 ? 'pruned' : 'completed');
  }
  return out;
}

// ---- random spaces -----------------------------------------------------------------------------

const finite = fc.double({ min: -1e6, max: 1e6, noNaN: true, noDefaultInfinity: true });
const floatDim: fc.Arbitrary<Dimension> = fc
  .tuple(finite, finite)
  .map(([a, b]) => ({ type: 'float', min: Math.min(a, b), max: Math.max(a, b) }));
const logDim: fc.Arbitrary<Dimension> = fc
  .tuple(fc.double({ min: 1e-8, max: 1e3, noNaN: true }), fc.double({ min: 1, max: 1e6, noNaN: true }))
  .map(([a, f]) => ({ type: 'float', min: a, max: a * f, log: true }));
const intDim: fc.Arbitrary<Dimension> = fc
  .tuple(fc.integer({ min: -1000, max: 1000 }), fc.integer({ min: 0, max: 50 }))
  .map(([a, w]) => ({ type: 'int', min: a, max: a + w }));
const choiceDim: fc.Arbitrary<Dimension> = fc
  .uniqueArray(fc.oneof(fc.string({ maxLength: 4 }), fc.integer(), fc.boolean(), fc.constant(null)), {
    minLength: 1,
    maxLength: 6,
    comparator: (a, b) => Object.is(a, b),
  })
  .map((values) => ({ type: 'choice', values }));
const boolDim: fc.Arbitrary<Dimension> = fc.constant({ type: 'bool' });
const spaceArb: fc.Arbitrary<SearchSpace> = fc.dictionary(
  fc.string({ minLength: 1, maxLength: 5 }),
  fc.oneof(floatDim, logDim, intDim, choiceDim, boolDim),
  { minKeys: 1, maxKeys: 5 },
);

describe('every sampler', () => {
  for (const [name, factory] of FACTORIES) {
    it(`${name}: every value lies in its dimension, ints are integral (random spaces)`, () => {
      fc.assert(
        fc.property(spaceArb, fc.integer({ min: 0, max: 2 ** 31 }), (space, seed) => {
          const sampler = factory(space, seed);
          for (const c of drive(sampler, 30)) {
            expect(() => checkConfig(space, c)).not.toThrow();
            expect(Object.keys(c)).toEqual(Object.keys(space));
          }
        }),
        { numRuns: 40 },
      );
    });

    it(`${name}: the same seed gives the same sequence, another seed another`, () => {
      const space = checkSpace({
        x: { type: 'float', min: -3, max: 3 },
        lr: { type: 'float', min: 1e-5, max: 1, log: true },
        n: { type: 'int', min: 0, max: 9 },
        act: { type: 'choice', values: ['a', 'b', 'c'] },
        on: { type: 'bool' },
      });
      const a = drive(factory(space, 42), 40);
      const b = drive(factory(space, 42), 40);
      const c = drive(factory(space, 43), 40);
      expect(a).toEqual(b);
      expect(c).not.toEqual(a);
    });

    it(`${name}: concurrent asks (before any tell) hand out distinct configurations`, () => {
      // A small discrete space, where duplicates would come easily: 3 * 2 * 4 = 24 points.
      const space = checkSpace({
        act: { type: 'choice', values: ['a', 'b', 'c'] },
        on: { type: 'bool' },
        n: { type: 'int', min: 1, max: 4 },
      });
      const sampler = factory(space, 7);
      drive(sampler, 12); // past TPE's startup
      const batch: Config[] = [];
      for (let i = 0; i < 8; i++) batch.push(sampler.ask() as Config);
      for (let i = 0; i < batch.length; i++) {
        for (let j = 0; j < i; j++)
          expect(sameConfig(space, batch[i] as Config, batch[j] as Config)).toBe(false);
      }
    });

    it(`${name}: refuses a malformed space and a told configuration outside the space`, () => {
      expect(() => factory({ x: { type: 'float', min: 1, max: 0 } }, 0)).toThrow(SearchSpaceError);
      // A width that overflows to Infinity would make every draw max and every grid point alike.
      expect(() => factory({ x: { type: 'float', min: -1e308, max: 1e308 } }, 0)).toThrow(
        /"x".*overflows to Infinity/,
      );
      const sampler = factory({ x: { type: 'float', min: 0, max: 1 } }, 0);
      expect(() => sampler.tell({ x: 2 }, 1, 'completed')).toThrow(/"x".*within \[0, 1\]/);
      expect(() => sampler.tell({ y: 0.5 }, 1, 'completed')).toThrow(/"y"/);
    });
  }
});

// ---- random ------------------------------------------------------------------------------------

describe('random sampler', () => {
  it('is named random and is uniform on a linear float (mean and quartiles)', () => {
    const sampler = new RandomSampler({ x: { type: 'float', min: -10, max: 10 } }, 3);
    expect(sampler.name).toBe('random');
    const xs = drive(sampler, 4000).map((c) => c.x as number);
    xs.sort((a, b) => a - b);
    expect(xs[1000]).toBeCloseTo(-5, 0);
    expect(xs[2000]).toBeCloseTo(0, 0);
    expect(xs[3000]).toBeCloseTo(5, 0);
  });

  it('is log-uniform on a log float: the median is near the geometric mean, each decade equally likely', () => {
    const sampler = new RandomSampler({ lr: { type: 'float', min: 1e-6, max: 1, log: true } }, 11);
    const xs = drive(sampler, 4000).map((c) => c.lr as number);
    xs.sort((a, b) => a - b);
    const median = xs[2000] as number;
    expect(Math.log10(median)).toBeGreaterThan(-3.3);
    expect(Math.log10(median)).toBeLessThan(-2.7);
    // 6 decades: each should get about 1/6 of the draws.
    for (let d = -6; d < 0; d++) {
      const share = xs.filter((x) => x >= 10 ** d && x < 10 ** (d + 1)).length / xs.length;
      expect(share).toBeGreaterThan(0.13);
      expect(share).toBeLessThan(0.2);
    }
  });

  it('draws every int and every choice, bounds included', () => {
    const sampler = new RandomSampler(
      {
        n: { type: 'int', min: -2, max: 2 },
        c: { type: 'choice', values: ['x', 'y', 'z'] },
        b: { type: 'bool' },
      },
      5,
    );
    const cs = drive(sampler, 300);
    expect(new Set(cs.map((c) => c.n))).toEqual(new Set([-2, -1, 0, 1, 2]));
    expect(new Set(cs.map((c) => c.c))).toEqual(new Set(['x', 'y', 'z']));
    expect(new Set(cs.map((c) => c.b))).toEqual(new Set([true, false]));
  });

  it('reaches every integer of a range wider than 2^32 (odd ones too), and its bounds', () => {
    const sampler = new RandomSampler({ n: { type: 'int', min: 0, max: 2 ** 40 } }, 7);
    const ns = drive(sampler, 2000).map((c) => c.n as number);
    // 32 random bits would give multiples of 2^8 only; 53 bits give about as many odd as even.
    const odd = ns.filter((n) => n % 2 === 1).length;
    expect(odd).toBeGreaterThan(850);
    expect(odd).toBeLessThan(1150);
    expect(ns.filter((n) => n % 256 !== 0).length).toBeGreaterThan(1900);
    for (const n of ns) {
      expect(Number.isSafeInteger(n)).toBe(true);
      expect(n).toBeGreaterThanOrEqual(0);
      expect(n).toBeLessThanOrEqual(2 ** 40);
    }
    const full = new RandomSampler({ n: { type: 'int', min: Number.MIN_SAFE_INTEGER, max: 2 ** 53 - 1 } }, 1);
    for (const c of drive(full, 200)) expect(Number.isSafeInteger(c.n)).toBe(true);
  });

  it('refuses a float whose width overflows, rather than always drawing max', () => {
    const e = (() => {
      try {
        new RandomSampler({ x: { type: 'float', min: -1e308, max: 1e308 } }, 1);
      } catch (err) {
        return err;
      }
      return null;
    })();
    expect(e).toBeInstanceOf(SearchSpaceError);
    expect((e as SearchSpaceError).code).toBe('E_TUNE_SPACE_INVALID');
    expect((e as SearchSpaceError).dimension).toBe('x');
    // The widest finite width is fine, and its draws spread over the whole range.
    const half = Number.MAX_VALUE / 2;
    const xs = drive(new RandomSampler({ x: { type: 'float', min: -half, max: half } }, 1), 200).map(
      (c) => c.x as number,
    );
    expect(new Set(xs).size).toBe(200);
    expect(xs.some((x) => x < -half / 2)).toBe(true);
    expect(xs.some((x) => x > half / 2)).toBe(true);
  });

  it('remembers at most PENDING_LIMIT pending configurations (a failed trial is never told)', () => {
    const space = checkSpace({ n: { type: 'int', min: 0, max: 1_000_000 } });
    const sampler = new RandomSampler(space, 1);
    for (let i = 0; i < PENDING_LIMIT * 3; i++) sampler.ask();
    // Still answers, and a tell of something never asked is accepted.
    expect(sampler.ask()).not.toBeNull();
    expect(() => sampler.tell({ n: 5 }, 0, 'completed')).not.toThrow();
  });
});

// ---- grid --------------------------------------------------------------------------------------

describe('grid sampler', () => {
  const space = checkSpace({
    lr: { type: 'float', min: 1e-4, max: 1, log: true },
    x: { type: 'float', min: 0, max: 1 },
    n: { type: 'int', min: 1, max: 3 },
    act: { type: 'choice', values: ['relu', 'tanh'] },
    on: { type: 'bool' },
  });

  it('spaces log floats in log, linear floats linearly, and keeps every int of a short range', () => {
    const lr = gridValues(space.lr as Dimension, 5) as number[];
    expect(lr).toHaveLength(5);
    expect(lr[0]).toBe(1e-4);
    expect(lr[4]).toBe(1);
    for (const [i, v] of [1e-3, 1e-2, 1e-1].entries()) expect(lr[i + 1]).toBeCloseTo(v, 12);
    expect(gridValues(space.x as Dimension, 5)).toEqual([0, 0.25, 0.5, 0.75, 1]);
    expect(gridValues(space.n as Dimension, 5)).toEqual([1, 2, 3]);
    expect(gridValues({ type: 'int', min: 0, max: 100 }, 3)).toEqual([0, 50, 100]);
    expect(gridValues({ type: 'float', min: 2, max: 8 }, 1)).toEqual([5]);
    expect(gridValues({ type: 'bool' }, 5)).toEqual([false, true]);
  });

  for (const shuffle of [true, false]) {
    it(`hands out every point exactly once, then null (shuffle ${shuffle})`, () => {
      const sampler = new GridSampler(space, 9, { gridPoints: { lr: 5, x: 3 }, shuffle });
      expect(sampler.size).toBe(5 * 3 * 3 * 2 * 2);
      const seen = new Set<string>();
      for (let i = 0; i < sampler.size; i++) {
        const c = sampler.ask();
        expect(c).not.toBeNull();
        checkConfig(space, c);
        seen.add(JSON.stringify(c));
      }
      expect(seen.size).toBe(sampler.size);
      expect(sampler.remaining).toBe(0);
      expect(sampler.ask()).toBeNull();
      expect(sampler.ask()).toBeNull();
    });
  }

  it('without shuffle walks the grid in order, last dimension fastest', () => {
    const sampler = new GridSampler({ a: { type: 'int', min: 0, max: 1 }, b: { type: 'bool' } }, 0, {
      shuffle: false,
    });
    expect(drive(sampler, 10)).toEqual([
      { a: 0, b: false },
      { a: 0, b: true },
      { a: 1, b: false },
      { a: 1, b: true },
    ]);
  });

  it('shuffles by seed: same seed same order, another seed another', () => {
    const order = (seed: number) => drive(new GridSampler(space, seed), 200);
    expect(order(1)).toEqual(order(1));
    expect(order(2)).not.toEqual(order(1));
  });

  it('handles a grid far too large to store, lazily', () => {
    const big = checkSpace(
      Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`x${i}`, { type: 'float', min: 0, max: 1 }])),
    );
    const sampler = new GridSampler(big, 3, { gridPoints: 10 });
    expect(sampler.size).toBe(1e12);
    const seen = new Set(drive(sampler, 500).map((c) => JSON.stringify(c)));
    expect(seen.size).toBe(500);
  });

  it('refuses a float whose width overflows, and spaces the widest finite one evenly', () => {
    expect(() => new GridSampler({ x: { type: 'float', min: -1e308, max: 1e308 } }, 1)).toThrow(
      SearchSpaceError,
    );
    expect(() => new GridSampler({ x: { type: 'float', min: -1e308, max: 1e308 } }, 1)).toThrow(
      /"x".*overflows to Infinity/,
    );
    const half = Number.MAX_VALUE / 2;
    const sampler = new GridSampler({ x: { type: 'float', min: -half, max: half } }, 1, { shuffle: false });
    const xs = drive(sampler, 10).map((c) => c.x as number);
    expect(xs).toHaveLength(5);
    expect(new Set(xs).size).toBe(5);
    expect(xs[0]).toBe(-half);
    expect(xs[2]).toBe(0);
    expect(xs[4]).toBe(half);
    expect((xs[3] as number) / (half / 2)).toBeCloseTo(1, 12);
    expect(gridValues({ type: 'float', min: 0, max: Number.MAX_VALUE }, 3)).toEqual([
      0,
      Number.MAX_VALUE / 2,
      Number.MAX_VALUE,
    ]);
  });

  it('refuses bad grid options, naming them', () => {
    expect(() => new GridSampler(space, 0, { gridPoints: 0 })).toThrow(/gridPoints/);
    expect(() => new GridSampler(space, 0, { gridPoints: 2.5 })).toThrow(/gridPoints/);
    expect(() => new GridSampler(space, 0, { gridPoints: { nope: 3 } })).toThrow(/gridPoints.nope/);
    expect(() => new GridSampler(space, 0, { gridPoints: { act: 3 } })).toThrow(/gridPoints.act.*choice/);
    const huge = Object.fromEntries(
      Array.from({ length: 60 }, (_, i) => [`x${i}`, { type: 'bool' }]),
    ) as SearchSpace;
    expect(() => new GridSampler(huge, 0)).toThrow(/2\^53/);
  });
});
