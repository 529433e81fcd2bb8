import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/kernel/index.js';
import { Rng } from '../../src/tune/random.js';
import {
  exploreConfig,
  type PbtOptions,
  type PbtScheduler,
  pbtScheduler,
} from '../../src/tune/schedulers/index.js';
import type { Config, Decision, Dimension, SearchSpace } from '../../src/tune/types.js';

const space: SearchSpace = {
  lr: { type: 'float', min: 1e-4, max: 1, log: true },
  layers: { type: 'int', min: 1, max: 8 },
  act: { type: 'choice', values: ['relu', 'tanh', 'gelu'] },
  bn: { type: 'bool' },
};
const base: Config = { lr: 0.01, layers: 4, act: 'tanh', bn: true };

function pbt(options: PbtOptions, trials: number, seed = 7): PbtScheduler {
  const s = pbtScheduler(options)(space, seed);
  for (let id = 0; id < trials; id++) s.onTrialAdd(id, base);
  return s;
}

function inBounds(dimension: Dimension, value: unknown): boolean {
  switch (dimension.type) {
    case 'float':
      return typeof value === 'number' && value >= dimension.min && value <= dimension.max;
    case 'int':
      return (
        Number.isInteger(value) && (value as number) >= dimension.min && (value as number) <= dimension.max
      );
    case 'choice':
      return dimension.values.some((v) => Object.is(v, value));
    case 'bool':
      return typeof value === 'boolean';
  }
}

describe('PBT decisions', () => {
  it('does nothing with a population of one', () => {
    const s = pbt({ perturbationInterval: 1 }, 1);
    for (let step = 1; step <= 20; step++) expect(s.onReport(0, step, 100 * step).action).toBe('continue');
    expect(s.lineage(0)).toEqual([]);
  });

  it('with two trials, the worse exploits the better at the interval and continues from its step', () => {
    const s = pbt({ perturbationInterval: 2 }, 2);
    expect(s.onReport(0, 1, 1).action).toBe('continue');
    expect(s.onReport(1, 1, 2).action).toBe('continue');
    expect(s.onReport(0, 2, 1).action).toBe('continue'); // checked: top
    const d = s.onReport(1, 2, 2); // checked: bottom
    expect(d.action).toBe('exploit');
    if (d.action !== 'exploit') return;
    expect(d.donor).toBe(0);
    for (const [name, dimension] of Object.entries(space))
      expect(inBounds(dimension, d.config[name])).toBe(true);
    expect(s.lineage(1)).toEqual([{ step: 2, donor: 0, config: d.config }]);
    expect(s.lineage(0)).toEqual([]);
    // Until it reports again, trial 1 is out of the ranking: trial 0 has nobody to lose to.
    expect(s.onReport(0, 4, 50).action).toBe('continue');
    // Trial 1 goes on from the donor's step (2): step 3 is no check, step 4 is.
    expect(s.onReport(1, 3, 100).action).toBe('continue');
    expect(s.onReport(1, 4, 100).action).toBe('exploit');
  });

  it('after taking a donor that is ahead, checks at the first multiple of the interval after its step', () => {
    const s = pbt({ perturbationInterval: 2 }, 2);
    for (let step = 1; step <= 6; step++) s.onReport(0, step, 1);
    s.onReport(1, 1, 5);
    expect(s.onReport(1, 2, 5).action).toBe('exploit');
    expect(s.onReport(1, 7, 5).action).toBe('continue');
    expect(s.onReport(1, 8, 5).action).toBe('exploit');
    expect(s.lineage(1).map((e) => e.step)).toEqual([2, 8]);
  });

  it('does not exploit at or after maxSteps (nothing would be left to train)', () => {
    const run = (options: PbtOptions) => {
      const s = pbt(options, 2);
      s.onReport(0, 1, 1);
      s.onReport(1, 1, 2);
      s.onReport(0, 2, 1);
      return s.onReport(1, 2, 2).action;
    };
    expect(run({ perturbationInterval: 2 })).toBe('exploit');
    expect(run({ perturbationInterval: 2, maxSteps: 2 })).toBe('continue');
    expect(run({ perturbationInterval: 2, maxSteps: 3 })).toBe('exploit');
    expect(() => pbtScheduler({ perturbationInterval: 2, maxSteps: 0 })).toThrow(/pbt option "maxSteps"/);
  });

  it('never checks before the burn-in period, and then only on the interval', () => {
    const s = pbt({ perturbationInterval: 2, burnInPeriod: 5 }, 2);
    s.onReport(0, 1, 0);
    const actions: string[] = [];
    for (let step = 1; step <= 6; step++) actions.push(s.onReport(1, step, 9).action);
    expect(actions).toEqual(['continue', 'continue', 'continue', 'continue', 'continue', 'exploit']);
  });

  it('exploits the bottom quantile from the top quantile, and leaves the middle alone', () => {
    // 8 trials, quantileFraction 0.25: 2 on top (0, 1), 2 at the bottom (6, 7).
    const donors = new Set<number>();
    for (let seed = 0; seed < 20; seed++) {
      const s = pbt({ perturbationInterval: 1 }, 8, seed);
      // Step 1, best last: each newcomer ranks first, so nobody is at the bottom when checked.
      for (let id = 7; id >= 0; id--) expect(s.onReport(id, 1, id).action).toBe('continue');
      const decisions = [0, 1, 2, 3, 4, 5, 6, 7].map((id) => s.onReport(id, 2, id));
      // Trial 6 ranks 7th of 8: bottom. Then 6 is out of the ranking until it reports, and
      // trial 7 ranks last of 7 (quantiles of ceil(7 * 0.25) = 2).
      expect(decisions.map((d) => d.action)).toEqual([...Array(6).fill('continue'), 'exploit', 'exploit']);
      for (const d of decisions) if (d.action === 'exploit') donors.add(d.donor);
    }
    expect([...donors].sort()).toEqual([0, 1]);
  });

  it('does not exploit a donor that is no better than itself (a plateau of tied losses)', () => {
    const s = pbtScheduler({ perturbationInterval: 1, quantileFraction: 0.25 })(space, 0);
    for (let id = 0; id < 4; id++) s.onTrialAdd(id, { ...base, lr: 0.01 * (id + 1) });
    // Every trial at the same loss: ranked by id, trial 3 is at the bottom, trial 0 on top.
    expect([0, 1, 2, 3].map((id) => s.onReport(id, 1, -1).action)).toEqual(Array(4).fill('continue'));
    expect(s.lineage(3)).toEqual([]);
    // Once the top trial is strictly better, the bottom one takes it.
    expect(s.onReport(0, 2, -2).action).toBe('continue');
    expect(s.onReport(3, 2, -1)).toMatchObject({ action: 'exploit', donor: 0 });
  });

  it('draws donors only among the strictly better trials of the top quantile', () => {
    // 8 trials, quantileFraction 0.5: 4 on top. At step 2 trial 0 keeps loss 1 and all the
    // others report loss 2, so trials 1-3 share the top with trial 0 but tie with the bottom ones.
    for (let seed = 0; seed < 20; seed++) {
      const s = pbt({ perturbationInterval: 1, quantileFraction: 0.5, burnInPeriod: 2 }, 8, seed);
      for (let id = 0; id < 8; id++) expect(s.onReport(id, 1, id < 4 ? 1 : 2).action).toBe('continue');
      expect(s.onReport(0, 2, 1).action).toBe('continue');
      for (let id = 1; id < 4; id++) expect(s.onReport(id, 2, 2).action).toBe('continue');
      // Each of 4-7 ranks at the bottom in turn (an exploited trial leaves the ranking).
      for (let id = 4; id < 8; id++)
        expect(s.onReport(id, 2, 2)).toMatchObject({ action: 'exploit', donor: 0 });
    }
  });

  it('keeps the two quantiles apart in small populations', () => {
    // 3 trials, quantileFraction 0.5: ceil(1.5) = 2 would overlap; each quantile holds 1.
    const s = pbt({ perturbationInterval: 1, quantileFraction: 0.5 }, 3);
    // Best last, so each newcomer ranks first.
    expect([2, 1, 0].map((id) => s.onReport(id, 1, id + 1).action)).toEqual(Array(3).fill('continue'));
    expect(s.onReport(1, 2, 2).action).toBe('continue'); // the middle one
    expect(s.onReport(2, 2, 3)).toMatchObject({ action: 'exploit', donor: 0 });
  });

  it('forgets ended trials', () => {
    const s = pbt({ perturbationInterval: 1 }, 2);
    s.onReport(0, 1, 1);
    s.onTrialEnd(0, 'completed', 1);
    expect(s.onReport(1, 1, 9).action).toBe('continue');
    expect(s.lineage(0)).toEqual([]);
    expect(() => s.lineage(5)).toThrow(InvalidArgumentError);
  });

  it('explores only the dimensions it is told to', () => {
    const s = pbtScheduler({ perturbationInterval: 1, dimensions: ['lr'], resampleProbability: 0 })(space, 3);
    s.onTrialAdd(0, { ...base, extra: 'kept' });
    s.onTrialAdd(1, base);
    s.onReport(0, 1, 0);
    const d = s.onReport(1, 1, 1);
    expect(d).toMatchObject({ action: 'exploit', donor: 0 });
    if (d.action !== 'exploit') return;
    expect(d.config).toMatchObject({ layers: 4, act: 'tanh', bn: true, extra: 'kept' });
    expect([0.01 * 0.8, 0.01 * 1.2]).toContain(d.config.lr);
  });
});

describe('exploreConfig', () => {
  const perturbOnly = { resampleProbability: 0, perturbFactors: [0.8, 1.2] };
  const draws = (config: Config, dims: SearchSpace, n = 200, options = perturbOnly) => {
    const rng = new Rng(11);
    return Array.from({ length: n }, () => exploreConfig(config, dims, rng, options));
  };
  const values = (configs: Config[], name: string) =>
    [...new Set(configs.map((c) => c[name]))].sort((a, b) =>
      typeof a === 'number' && typeof b === 'number' ? a - b : String(a) < String(b) ? -1 : 1,
    );

  it('multiplies floats, log or not, by a factor and clamps them within bounds', () => {
    const dims: SearchSpace = {
      f: { type: 'float', min: 0, max: 100 },
      g: { type: 'float', min: 1e-3, max: 1, log: true },
    };
    expect(values(draws({ f: 10, g: 0.1 }, dims), 'f')).toEqual([10 * 0.8, 10 * 1.2]);
    expect(values(draws({ f: 90, g: 0.1 }, dims), 'f')).toEqual([90 * 0.8, 100]);
    expect(values(draws({ f: 10, g: 0.9 }, dims), 'g')).toEqual([0.9 * 0.8, 1]);
  });

  it('multiplies ints and rounds them, moving at least one unit', () => {
    const dims: SearchSpace = { i: { type: 'int', min: 0, max: 11 } };
    expect(values(draws({ i: 10 }, dims), 'i')).toEqual([8, 11]); // 12 clamped to 11
    expect(values(draws({ i: 1 }, dims), 'i')).toEqual([0, 2]); // 0.8 and 1.2 both round to 1
    expect(values(draws({ i: 0 }, dims), 'i')).toEqual([0, 1]); // -1 clamped to 0
  });

  it('moves a choice to a neighbouring value', () => {
    const dims: SearchSpace = {
      c: { type: 'choice', values: ['a', 'b', 'c'] },
      one: { type: 'choice', values: [1] },
    };
    expect(values(draws({ c: 'a', one: 1 }, dims), 'c')).toEqual(['b']);
    expect(values(draws({ c: 'b', one: 1 }, dims), 'c')).toEqual(['a', 'c']);
    expect(values(draws({ c: 'c', one: 1 }, dims), 'one')).toEqual([1]);
  });

  it('keeps a bool unless it resamples it', () => {
    const dims: SearchSpace = { b: { type: 'bool' } };
    expect(values(draws({ b: true }, dims), 'b')).toEqual([true]);
    const resampled = draws({ b: true }, dims, 2000, { resampleProbability: 1, perturbFactors: [0.8, 1.2] });
    const flipped = resampled.filter((c) => c.b === false).length / resampled.length;
    expect(flipped).toBeGreaterThan(0.4);
    expect(flipped).toBeLessThan(0.6);
  });

  it('resamples values that are missing or out of their dimension, and copies other keys', () => {
    const [c] = draws(
      { c: 'zzz', note: 'x' },
      { c: { type: 'choice', values: ['a', 'b'] }, f: { type: 'float', min: 2, max: 3 } },
      1,
    );
    expect(['a', 'b']).toContain(c?.c);
    expect(c?.f).toBeGreaterThanOrEqual(2);
    expect(c?.f).toBeLessThanOrEqual(3);
    expect(c?.note).toBe('x');
    expect(() => exploreConfig({}, {}, new Rng(1), { ...perturbOnly, dimensions: ['nope'] })).toThrow(
      InvalidArgumentError,
    );
  });

  it('honours the resample probability (property)', () => {
    fc.assert(
      fc.property(fc.double({ min: 0, max: 1, noNaN: true }), fc.integer(), (p, seed) => {
        const rng = new Rng(seed);
        const dims: SearchSpace = { x: { type: 'float', min: 0, max: 1e9 } };
        const n = 3000;
        let resampled = 0;
        for (let i = 0; i < n; i++) {
          const x = exploreConfig({ x: 1000 }, dims, rng, {
            resampleProbability: p,
            perturbFactors: [0.8, 1.2],
          }).x;
          if (x !== 1000 * 0.8 && x !== 1000 * 1.2) resampled++;
        }
        const slack = 6 * Math.sqrt((p * (1 - p)) / n) + 1e-9;
        expect(Math.abs(resampled / n - p)).toBeLessThanOrEqual(slack);
      }),
      { numRuns: 30 },
    );
  });
});

// ---- properties of whole runs ------------------------------------------------------------------

const floatDim = fc
  .record({
    min: fc.double({ min: -1000, max: 1000, noNaN: true }),
    width: fc.double({ min: 1e-3, max: 1000, noNaN: true }),
  })
  .map(({ min, width }): Dimension => ({ type: 'float', min, max: min + width }));
const logDim = fc
  .record({
    min: fc.double({ min: 1e-6, max: 10, noNaN: true }),
    ratio: fc.double({ min: 1.01, max: 1e4, noNaN: true }),
  })
  .map(({ min, ratio }): Dimension => ({ type: 'float', min, max: min * ratio, log: true }));
const intDim = fc
  .record({ min: fc.integer({ min: -50, max: 50 }), width: fc.integer({ min: 0, max: 100 }) })
  .map(({ min, width }): Dimension => ({ type: 'int', min, max: min + width }));
const choiceDim = fc
  .uniqueArray(fc.oneof(fc.integer(), fc.string(), fc.boolean()), {
    minLength: 1,
    maxLength: 6,
    comparator: 'SameValue',
  })
  .map((values): Dimension => ({ type: 'choice', values }));
const boolDim = fc.constant<Dimension>({ type: 'bool' });
const spaceArb = fc
  .array(fc.oneof(floatDim, logDim, intDim, choiceDim, boolDim), { minLength: 1, maxLength: 5 })
  .map((dims): SearchSpace => Object.fromEntries(dims.map((d, i) => [`d${i}`, d])));

/** A config within the space, often at a bound (where a perturbation must be clamped). */
function sampleConfig(s: SearchSpace, rng: Rng): Config {
  const config: Record<string, unknown> = {};
  for (const [name, d] of Object.entries(s)) {
    const edge = rng.next();
    if (d.type === 'float')
      config[name] = edge < 0.25 ? d.min : edge < 0.5 ? d.max : rng.uniform(d.min, d.max);
    else if (d.type === 'int')
      config[name] = edge < 0.25 ? d.min : edge < 0.5 ? d.max : rng.int(d.min, d.max);
    else if (d.type === 'choice') config[name] = rng.pick(d.values);
    else config[name] = rng.next() < 0.5;
  }
  return config;
}

interface Scenario {
  readonly space: SearchSpace;
  readonly options: PbtOptions;
  readonly seed: number;
  readonly eventSeed: number;
  readonly trials: number;
  readonly maxSteps: number;
}

interface ModelTrial {
  readonly id: number;
  step: number;
  live: boolean;
  loss: number | null;
  config: Config;
}

/**
 * Runs a population that reports every step in a random interleaving, with random losses (some
 * tied), and checks every decision against a model of the ranking.
 */
function run(sc: Scenario): { decisions: (Decision & { id: number; step: number })[]; problems: string[] } {
  const { space: sp, options } = sc;
  const interval = options.perturbationInterval;
  const q = options.quantileFraction ?? 0.25;
  const burnIn = options.burnInPeriod ?? 0;
  const explored = new Set(options.dimensions ?? Object.keys(sp));
  const s = pbtScheduler(options)(sp, sc.seed);
  const rng = new Rng(sc.eventSeed);
  const model: ModelTrial[] = Array.from({ length: sc.trials }, (_, id) => ({
    id,
    step: 0,
    live: true,
    loss: null,
    config: sampleConfig(sp, rng),
  }));
  for (const t of model) s.onTrialAdd(t.id, t.config);
  const decisions: (Decision & { id: number; step: number })[] = [];
  const problems: string[] = [];
  for (let budget = sc.trials * sc.maxSteps * 4; budget > 0; budget--) {
    const live = model.filter((t) => t.live);
    if (live.length === 0) break;
    const t = rng.pick(live);
    const step = t.step + 1;
    const loss = rng.next() < 0.2 ? rng.int(0, 2) : rng.next();
    t.step = step;
    t.loss = loss;
    const d = s.onReport(t.id, step, loss);
    decisions.push({ ...d, id: t.id, step });

    const ranked = model
      .filter((x) => x.live && x.loss !== null)
      .sort((a, b) => (a.loss as number) - (b.loss as number) || a.id - b.id);
    const n = ranked.length;
    let k = Math.ceil(n * q);
    if (k > n / 2) k = Math.floor(n / 2);
    const isCheck = step % interval === 0 && step >= burnIn;
    const inBottom = n >= 2 && ranked.indexOf(t) >= n - k;
    // Exploit only a strictly better donor: ties (a plateau) never make a trial copy another.
    const betterOnTop = ranked.slice(0, k).some((x) => (x.loss as number) < loss);
    if (d.action === 'exploit') {
      const donor = model[d.donor];
      const donorRank = donor === undefined ? -1 : ranked.indexOf(donor);
      if (!isCheck) problems.push(`exploit off the interval: trial ${t.id} at step ${step}`);
      if (!inBottom) problems.push(`trial ${t.id} exploited from rank ${ranked.indexOf(t)} of ${n} (k ${k})`);
      if (donor === undefined || donorRank < 0 || donorRank >= k) {
        problems.push(`donor ${d.donor} not in the top ${k} of ${n} (rank ${donorRank})`);
      }
      if (donor !== undefined && !((donor.loss as number) < loss)) {
        problems.push(`donor ${d.donor} (loss ${donor.loss}) is no better than trial ${t.id} (loss ${loss})`);
      }
      for (const [name, dimension] of Object.entries(sp)) {
        if (!inBounds(dimension, d.config[name])) {
          problems.push(`${name} = ${String(d.config[name])} out of ${JSON.stringify(dimension)}`);
        }
        if (!explored.has(name) && !Object.is(d.config[name], donor?.config[name])) {
          problems.push(`${name} not explored but changed`);
        }
      }
      const entry = s.lineage(t.id).at(-1);
      if (entry?.step !== step || entry.donor !== d.donor || entry.config !== d.config)
        problems.push('lineage');
      if (donor !== undefined) {
        t.config = d.config;
        t.loss = null;
        t.step = donor.step;
      }
    } else {
      if (d.action !== 'continue') problems.push(`unexpected ${d.action}`);
      if (isCheck && inBottom && betterOnTop)
        problems.push(`trial ${t.id} at the bottom at step ${step} was not exploited`);
    }
    if (t.step >= sc.maxSteps) {
      t.live = false;
      s.onTrialEnd(t.id, 'completed', loss);
    }
  }
  return { decisions, problems };
}

const scenarioArb = fc
  .record({
    space: spaceArb,
    interval: fc.integer({ min: 1, max: 4 }),
    quantileFraction: fc.double({ min: 0.01, max: 0.5, noNaN: true }),
    resampleProbability: fc.double({ min: 0, max: 1, noNaN: true }),
    burnInPeriod: fc.integer({ min: 0, max: 6 }),
    subset: fc.boolean(),
    seed: fc.integer(),
    eventSeed: fc.integer(),
    trials: fc.integer({ min: 1, max: 10 }),
    maxSteps: fc.integer({ min: 2, max: 25 }),
  })
  .map(
    (r): Scenario => ({
      space: r.space,
      options: {
        perturbationInterval: r.interval,
        quantileFraction: r.quantileFraction,
        resampleProbability: r.resampleProbability,
        burnInPeriod: r.burnInPeriod,
        ...(r.subset ? { dimensions: Object.keys(r.space).filter((_, i) => i % 2 === 0) } : {}),
      },
      seed: r.seed,
      eventSeed: r.eventSeed,
      trials: r.trials,
      maxSteps: r.maxSteps,
    }),
  );

describe('PBT (property)', () => {
  it('exploits only on the interval, bottom from top, with configs within the space', () => {
    fc.assert(
      fc.property(scenarioArb, (sc) => {
        expect(run(sc).problems).toEqual([]);
      }),
      { numRuns: 150 },
    );
  });

  it('makes the same decisions from the same seed', () => {
    fc.assert(
      fc.property(scenarioArb, (sc) => {
        expect(run(sc).decisions).toEqual(run(sc).decisions);
      }),
      { numRuns: 30 },
    );
  });

  it('makes different decisions from different seeds', () => {
    const sc: Scenario = {
      space,
      options: { perturbationInterval: 1, resampleProbability: 0.5 },
      seed: 0,
      eventSeed: 99,
      trials: 8,
      maxSteps: 20,
    };
    const first = run(sc).decisions;
    expect(first.filter((d) => d.action === 'exploit').length).toBeGreaterThan(10);
    const others = [1, 2, 3].map((seed) => run({ ...sc, seed }).decisions);
    expect(others.some((d) => JSON.stringify(d) !== JSON.stringify(first))).toBe(true);
  });

  it('resamples about resampleProbability of the dimensions over many exploits', () => {
    const dims: SearchSpace = { x: { type: 'float', min: 0, max: 1e9 } };
    const s = pbtScheduler({ perturbationInterval: 1 })(dims, 5);
    s.onTrialAdd(0, { x: 1000 });
    s.onTrialAdd(1, { x: 1000 });
    const n = 2000;
    let resampled = 0;
    for (let step = 1; step <= n; step++) {
      s.onReport(0, step, 0);
      const d = s.onReport(1, step, 1);
      expect(d).toMatchObject({ action: 'exploit', donor: 0 });
      if (d.action === 'exploit' && d.config.x !== 1000 * 0.8 && d.config.x !== 1000 * 1.2) resampled++;
    }
    expect(s.lineage(1)).toHaveLength(n);
    expect(Math.abs(resampled / n - 0.25)).toBeLessThan(6 * Math.sqrt((0.25 * 0.75) / n));
  });
});
