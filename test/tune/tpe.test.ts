/**
 * The TPE sampler: it beats random search on the same budget, finds the best category of a
 * choice, works on log and int scales, ranks pruned and NaN results as the worst, starts with
 * random trials, and stays valid on long studies (where the "above" group is subsampled). All
 * runs are seeded, so every assertion is deterministic.
 */
import { describe, expect, it } from 'vitest';
import {
  defaultGamma,
  optunaGamma,
  RandomSampler,
  TpeSampler,
  tpeSampler,
} from '../../src/tune/samplers/index.js';
import { checkConfig, checkSpace } from '../../src/tune/space.js';
import type { Config, Sampler, SearchSpace } from '../../src/tune/types.js';

/** Run `n` sequential trials; returns the best loss and every configuration asked. */
function optimize(
  sampler: Sampler,
  f: (c: Config) => number,
  n: number,
): { best: number; configs: Config[] } {
  let best = Number.POSITIVE_INFINITY;
  const configs: Config[] = [];
  for (let i = 0; i < n; i++) {
    const c = sampler.ask() as Config;
    configs.push(c);
    const v = f(c);
    if (v < best) best = v;
    sampler.tell(c, v, 'completed');
  }
  return { best, configs };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

const QUAD: SearchSpace = { x: { type: 'float', min: -5, max: 5 }, y: { type: 'float', min: -5, max: 5 } };
const quad = (c: Config) => ((c.x as number) - 1.5) ** 2 + ((c.y as number) + 2) ** 2;

describe('TPE sampler', () => {
  it('is named tpe and checks its options, naming the bad one', () => {
    expect(new TpeSampler(QUAD, 0).name).toBe('tpe');
    expect(() => tpeSampler({ nStartupTrials: -1 })).toThrow(/nStartupTrials/);
    expect(() => tpeSampler({ nEiCandidates: 0 })).toThrow(/nEiCandidates/);
    expect(() => tpeSampler({ priorWeight: 0 })).toThrow(/priorWeight/);
    expect(() => tpeSampler({ bandwidth: 'silverman' as 'knn' })).toThrow(/bandwidth/);
    expect(() => tpeSampler({ bandwidthFactor: Number.NaN })).toThrow(/bandwidthFactor/);
    expect(() => tpeSampler({ maxAboveKernels: 4 })).toThrow(/maxAboveKernels/);
    expect(() => tpeSampler({ multivariate: 1 as unknown as boolean })).toThrow(/multivariate/);
    expect(() => tpeSampler({ gamma: 0.1 as unknown as (n: number) => number })).toThrow(/gamma/);
  });

  it('gammas: the default takes the best 25%, Optuna the best 10%, both capped at 25', () => {
    expect([1, 4, 10, 40, 100, 1000].map(defaultGamma)).toEqual([1, 1, 3, 10, 25, 25]);
    expect([1, 10, 11, 100, 1000].map(optunaGamma)).toEqual([1, 1, 2, 10, 25]);
  });

  it('starts with random trials: its first nStartupTrials asks are random search', () => {
    const tpe = optimize(new TpeSampler(QUAD, 5, { nStartupTrials: 6 }), quad, 6).configs;
    const random = optimize(new RandomSampler(QUAD, 5), quad, 6).configs;
    expect(tpe).toEqual(random);
  });

  it('beats random search on a quadratic with the same budget and seeds', () => {
    const tpe: number[] = [];
    const random: number[] = [];
    for (let seed = 0; seed < 7; seed++) {
      tpe.push(optimize(new TpeSampler(QUAD, seed), quad, 60).best);
      random.push(optimize(new RandomSampler(QUAD, seed), quad, 60).best);
    }
    expect(median(tpe)).toBeLessThan(0.02);
    expect(median(tpe) * 5).toBeLessThan(median(random));
  });

  it('converges in univariate mode too, and with each bandwidth rule', () => {
    for (const options of [
      { multivariate: false },
      { bandwidth: 'neighbors' as const },
      { bandwidth: 'scott' as const },
      { multivariate: false, bandwidth: 'neighbors' as const, gamma: optunaGamma, nStartupTrials: 10 },
    ]) {
      const bests = [0, 1, 2].map((seed) => optimize(new TpeSampler(QUAD, seed, options), quad, 80).best);
      expect(median(bests)).toBeLessThan(0.1);
    }
  });

  it('finds the best category of a choice (and the best boolean)', () => {
    const space = checkSpace({
      opt: { type: 'choice', values: ['sgd', 'adam', 'rmsprop', 'adagrad', 'lion'] },
      nesterov: { type: 'bool' },
      x: { type: 'float', min: 0, max: 1 },
    });
    const cost: Record<string, number> = { sgd: 3, adam: 0, rmsprop: 2, adagrad: 2.5, lion: 1.5 };
    const f = (c: Config) =>
      (cost[c.opt as string] as number) + (c.nesterov === true ? 0 : 1) + (c.x as number);
    for (const multivariate of [true, false]) {
      const { configs } = optimize(new TpeSampler(space, 3, { multivariate }), f, 60);
      const late = configs.slice(-20);
      expect(late.filter((c) => c.opt === 'adam').length).toBeGreaterThanOrEqual(12);
      expect(late.filter((c) => c.nesterov === true).length).toBeGreaterThanOrEqual(12);
    }
  });

  it('optimizes a log-scale float in log space and an int as an integer', () => {
    const space = checkSpace({
      lr: { type: 'float', min: 1e-6, max: 1, log: true },
      layers: { type: 'int', min: 1, max: 12 },
    });
    const f = (c: Config) => (Math.log10(c.lr as number) + 3) ** 2 + 0.2 * ((c.layers as number) - 7) ** 2;
    const { configs } = optimize(new TpeSampler(space, 1), f, 80);
    for (const c of configs) expect(Number.isInteger(c.layers)).toBe(true);
    const best = configs.reduce((a, c) => (f(c) < f(a) ? c : a));
    expect(best.layers).toBe(7);
    expect(Math.abs(Math.log10(best.lr as number) + 3)).toBeLessThan(0.3);
  });

  it('ranks pruned results after every completed one, however low their loss', () => {
    const space = checkSpace({ x: { type: 'float', min: 0, max: 1 } });
    const sampler = new TpeSampler(space, 2, { nStartupTrials: 0 });
    // Completed results say small x is good; pruned ones report a tiny loss near x = 0.9.
    for (let i = 0; i < 20; i++) {
      const x = (i + 0.5) / 20;
      sampler.tell({ x }, x, 'completed');
      sampler.tell({ x: 0.88 + i * 0.001 }, -100, 'pruned');
    }
    const xs = optimize(sampler, (c) => c.x as number, 20).configs.map((c) => c.x as number);
    expect(median(xs)).toBeLessThan(0.3);
  });

  it('ranks a NaN loss (a diverged run) as the worst', () => {
    const space = checkSpace({ x: { type: 'float', min: 0, max: 1 } });
    const sampler = new TpeSampler(space, 4, { nStartupTrials: 0 });
    for (let i = 0; i < 20; i++) {
      const x = (i + 0.5) / 20;
      sampler.tell({ x }, x > 0.7 ? Number.NaN : Math.abs(x - 0.3), 'completed');
    }
    const xs = optimize(sampler, (c) => Math.abs((c.x as number) - 0.3), 20).configs.map(
      (c) => c.x as number,
    );
    expect(Math.abs(median(xs) - 0.3)).toBeLessThan(0.15);
  });

  it('learns from tells it never asked (a resumed study), checking them', () => {
    const sampler = new TpeSampler(QUAD, 0, { nStartupTrials: 5 });
    const other = new RandomSampler(QUAD, 9);
    for (let i = 0; i < 40; i++) {
      const c = other.ask();
      sampler.tell({ ...c }, quad(c), 'completed');
    }
    expect(sampler.observations).toBe(40);
    expect(() => sampler.tell({ x: 9, y: 0 }, 1, 'completed')).toThrow(/"x"/);
    expect(() => sampler.tell({ x: 0, y: 0 }, 1, 'failed' as 'completed')).toThrow(/state/);
    const c = sampler.ask();
    expect(quad(c)).toBeLessThan(10);
  });

  it('spreads concurrent asks apart (constant liar) and keeps them distinct', () => {
    const space = checkSpace({ x: { type: 'float', min: 0, max: 1 } });
    const spread = (constantLiar: boolean) => {
      const sampler = new TpeSampler(space, 6, { constantLiar });
      optimize(sampler, (c) => Math.abs((c.x as number) - 0.5), 30);
      const batch = Array.from({ length: 8 }, () => sampler.ask().x as number);
      expect(new Set(batch).size).toBe(8);
      return Math.max(...batch) - Math.min(...batch);
    };
    expect(spread(true)).toBeGreaterThan(spread(false));
  });

  it('stays valid and keeps improving on a long study (the above group subsampled)', () => {
    const space = checkSpace({
      x: { type: 'float', min: -10, max: 10 },
      n: { type: 'int', min: 0, max: 20 },
      c: { type: 'choice', values: ['a', 'b', 'c'] },
    });
    const f = (c: Config) => (c.x as number) ** 2 + Math.abs((c.n as number) - 4) + (c.c === 'b' ? 0 : 1);
    const sampler = new TpeSampler(space, 8, { maxAboveKernels: 16 });
    const { configs, best } = optimize(sampler, f, 400);
    for (const c of configs) checkConfig(space, c);
    expect(best).toBeLessThan(0.05);
    // The last 100 proposals concentrate on the optimum.
    const late = configs.slice(-100);
    expect(median(late.map(f))).toBeLessThan(1);
  });

  it('handles constant dimensions (min = max, a single choice) without modeling them', () => {
    const space = checkSpace({
      a: { type: 'float', min: 2, max: 2 },
      b: { type: 'int', min: 3, max: 3 },
      c: { type: 'choice', values: ['only'] },
      x: { type: 'float', min: 0, max: 1 },
    });
    const { configs } = optimize(new TpeSampler(space, 0), (c) => c.x as number, 30);
    for (const c of configs) expect([c.a, c.b, c.c]).toEqual([2, 3, 'only']);
    const allConstant = new TpeSampler({ a: { type: 'float', min: 1, max: 1 } }, 0);
    expect(optimize(allConstant, () => 0, 15).configs.every((c) => c.a === 1)).toBe(true);
  });
});
