/**
 * The statistics on sample sets with known answers: quantiles, mean / sd / margin of error
 * (checked against tinybench's own figures for the same samples), Student's t against published
 * tables, HDR histograms, the seeded generator, and the bootstrap of the median ratio (determinism
 * for a seed, and agreement with a plain resample-and-sort bootstrap), and its hierarchical form
 * over several runs.
 */
import { Bench } from 'tinybench';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/kernel/errors.js';
import {
  bootstrapMedianRatio,
  bootstrapRunsMedianRatio,
  histogramOf,
  histogramQuantile,
  marginOfError,
  medianOfSorted,
  normalQuantile,
  quantile,
  RunningStatistics,
  seededRandom,
  sortedCopy,
  studentTCdf,
  studentTQuantile,
  summarize,
  summarizeHistogram,
  tCritical95,
  thinSorted,
} from '../../src/perf/stats.js';

/** n draws from a log-normal distribution with median `median` and log-sd `sigma`. */
function lognormal(n: number, median: number, sigma: number, seed: number): Float64Array {
  const random = seededRandom(seed);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const z = Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
    out[i] = median * Math.exp(sigma * z);
  }
  return out;
}

describe('quantiles', () => {
  const oneToTen = Float64Array.from({ length: 10 }, (_, i) => i + 1);

  it('interpolate linearly between order statistics (type 7)', () => {
    expect(quantile(oneToTen, 0)).toBe(1);
    expect(quantile(oneToTen, 1)).toBe(10);
    expect(quantile(oneToTen, 0.5)).toBe(5.5);
    expect(quantile(oneToTen, 0.9)).toBeCloseTo(9.1, 12);
    expect(quantile(oneToTen, 0.99)).toBeCloseTo(9.91, 12);
    expect(quantile([1, 2, 3], 0.5)).toBe(2);
    expect(quantile([7], 0.999)).toBe(7);
    expect(medianOfSorted([1, 3, 3, 100])).toBe(3);
  });

  it('refuse an empty set and a p outside [0, 1] with typed errors', () => {
    expect(() => quantile([], 0.5)).toThrow(InvalidArgumentError);
    expect(() => quantile([1], 1.5)).toThrow(/between 0 and 1/);
    expect(() => summarize([])).toThrow(InvalidArgumentError);
    expect(() => summarize([1, Number.NaN])).toThrow(/samples\[1\]/);
  });
});

describe('summarize', () => {
  it('gives mean, sample sd and the t-based margin of error of a known set', () => {
    // mean 5, sum of squared deviations 32, sample variance 32 / 7.
    const s = summarize([9, 2, 5, 4, 4, 7, 4, 5]);
    expect(s.n).toBe(8);
    expect(s.mean).toBe(5);
    expect(s.median).toBe(4.5);
    expect(s.min).toBe(2);
    expect(s.max).toBe(9);
    expect(s.sd).toBeCloseTo(Math.sqrt(32 / 7), 12);
    expect(s.df).toBe(7);
    expect(s.critical).toBeCloseTo(2.364624251592785, 9);
    expect(s.sem).toBeCloseTo(Math.sqrt(32 / 7) / Math.sqrt(8), 12);
    expect(s.moe).toBeCloseTo(s.sem * s.critical, 12);
    expect(s.rme).toBeCloseTo((100 * s.moe) / 5, 12);
  });

  it('gives a single sample no spread and no margin', () => {
    const s = summarize([42]);
    expect([s.mean, s.median, s.p999, s.min, s.max]).toEqual([42, 42, 42, 42, 42]);
    expect([s.sd, s.moe, s.rme]).toEqual([0, 0, 0]);
  });

  it('reports an infinite rme for a zero mean with spread', () => {
    expect(marginOfError(3, 0, 1).rme).toBe(Number.POSITIVE_INFINITY);
    expect(marginOfError(3, 0, 0).rme).toBe(0);
  });

  it('agrees with tinybench on the same samples (same rme formula)', async () => {
    const values = Array.from(lognormal(50, 2, 0.4, 7));
    let i = 0;
    const bench = new Bench({ warmup: false, time: 0, iterations: values.length });
    bench.add('fixed', () => ({ overriddenDuration: values[i++] as number }), { async: false });
    const [task] = await bench.run();
    const result = task?.result;
    if (result?.state !== 'completed') throw new Error(`tinybench state ${result?.state}`);
    const mine = summarize(values);
    expect(result.latency.samplesCount).toBe(values.length);
    expect(mine.mean).toBeCloseTo(result.latency.mean, 12);
    expect(mine.sd).toBeCloseTo(result.latency.sd, 12);
    expect(mine.median).toBeCloseTo(result.latency.p50, 12);
    expect(mine.p99).toBeCloseTo(result.latency.p99, 12);
    expect(mine.critical).toBeCloseTo(result.latency.critical, 6);
    expect(mine.rme).toBeCloseTo(result.latency.rme, 6);
  });

  it('is matched by the running statistics used to decide when to stop', () => {
    const values = lognormal(1000, 100, 0.5, 3);
    const running = new RunningStatistics();
    for (const v of values) running.push(v);
    const s = summarize(values);
    expect(running.n).toBe(1000);
    expect(running.mean).toBeCloseTo(s.mean, 9);
    expect(running.sd).toBeCloseTo(s.sd, 9);
    expect(running.rme).toBeCloseTo(s.rme, 9);
    expect(new RunningStatistics().rme).toBe(Number.POSITIVE_INFINITY);
  });
});

describe("Student's t and the normal quantile", () => {
  it('match published two-sided 95% critical values', () => {
    const table: [number, number][] = [
      [1, 12.706204736],
      [2, 4.30265273],
      [3, 3.182446305],
      [5, 2.570581836],
      [10, 2.228138852],
      [30, 2.042272456],
      [100, 1.983971519],
      [1000, 1.962339081],
      [10_000, 1.960201263],
    ];
    for (const [df, t] of table) expect(tCritical95(df), `df ${df}`).toBeCloseTo(t, 7);
  });

  it('invert the t CDF, symmetric around 0', () => {
    for (const df of [3, 7, 40, 500]) {
      for (const p of [0.6, 0.9, 0.995]) {
        const t = studentTQuantile(p, df);
        expect(studentTCdf(t, df)).toBeCloseTo(p, 9);
        expect(studentTQuantile(1 - p, df)).toBeCloseTo(-t, 9);
      }
    }
    expect(studentTCdf(0, 12)).toBe(0.5);
    expect(studentTQuantile(0.995, 4)).toBeCloseTo(4.604094871, 7);
  });

  it('normal quantile', () => {
    expect(normalQuantile(0.975)).toBeCloseTo(1.959963985, 8);
    expect(normalQuantile(0.5)).toBeCloseTo(0, 12);
    expect(normalQuantile(0.001)).toBeCloseTo(-3.090232306, 7);
    expect(() => normalQuantile(1)).toThrow(InvalidArgumentError);
    expect(() => studentTQuantile(0.9, 0.5)).toThrow(/degrees of freedom/);
  });
});

describe('HDR histograms', () => {
  it('give percentiles within their precision', () => {
    const values = Float64Array.from({ length: 1000 }, (_, i) => (i + 1) * 1000);
    const h = histogramOf(values, 3);
    const s = summarizeHistogram(h);
    const exact = summarize(values);
    expect(s.n).toBe(1000);
    expect(s.max).toBeGreaterThanOrEqual(1_000_000);
    expect(s.max).toBeLessThanOrEqual(1_001_000);
    for (const [approx, truth] of [
      [s.median, exact.median],
      [s.p90, exact.p90],
      [s.p99, exact.p99],
      [s.mean, exact.mean],
    ] as const) {
      expect(Math.abs(approx - truth) / truth).toBeLessThan(2e-3);
    }
    expect(s.min).toBeLessThanOrEqual(s.median);
    expect(histogramQuantile(h, 1)).toBe(h.getValueAtPercentile(100));
    expect(() => histogramOf([-1])).toThrow(InvalidArgumentError);
  });
});

describe('seeded randomness', () => {
  it('repeats its sequence for a seed, stays in [0, 1), and differs between seeds', () => {
    const a = seededRandom(42);
    const b = seededRandom(42);
    const c = seededRandom(43);
    const xs = Array.from({ length: 1000 }, () => a());
    expect(Array.from({ length: 1000 }, () => b())).toEqual(xs);
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
    expect(Array.from({ length: 10 }, () => c())).not.toEqual(xs.slice(0, 10));
    const m = xs.reduce((s, x) => s + x, 0) / xs.length;
    expect(Math.abs(m - 0.5)).toBeLessThan(0.05);
  });

  it('thinSorted keeps the extremes and evenly spaced order statistics', () => {
    const sorted = Float64Array.from({ length: 1001 }, (_, i) => i);
    const thin = thinSorted(sorted, 11);
    expect(Array.from(thin)).toEqual([0, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000]);
    expect(thinSorted(sorted, 2000)).toBe(sorted);
  });
});

/** The textbook bootstrap: resample both sets, sort, take medians, then the percentile interval. */
function naiveBootstrap(base: Float64Array, cur: Float64Array, resamples: number, seed: number) {
  const random = seededRandom(seed);
  const resampleMedian = (xs: Float64Array) => {
    const r = new Float64Array(xs.length);
    for (let i = 0; i < xs.length; i++) r[i] = xs[Math.floor(random() * xs.length)] as number;
    return medianOfSorted(r.sort());
  };
  const ratios = new Float64Array(resamples);
  for (let i = 0; i < resamples; i++) ratios[i] = resampleMedian(cur) / resampleMedian(base);
  ratios.sort();
  return { low: quantile(ratios, 0.025), high: quantile(ratios, 0.975) };
}

describe('bootstrapMedianRatio', () => {
  const base = lognormal(300, 100, 0.3, 1);
  const slower = lognormal(300, 200, 0.3, 2);

  it('is deterministic for a seed', () => {
    const a = bootstrapMedianRatio(base, slower, { seed: 9 });
    const b = bootstrapMedianRatio(base, slower, { seed: 9 });
    const c = bootstrapMedianRatio(base, slower, { seed: 10 });
    expect(b).toEqual(a);
    expect([c.low, c.high]).not.toEqual([a.low, a.high]);
    expect(a).toMatchObject({ resamples: 2000, confidence: 0.95, seed: 9 });
  });

  it('brackets a 2x slowdown, and its point estimate is the ratio of the medians', () => {
    const r = bootstrapMedianRatio(base, slower, { seed: 1 });
    expect(r.ratio).toBeCloseTo(medianOfSorted(sortedCopy(slower)) / medianOfSorted(sortedCopy(base)), 12);
    expect(r.low).toBeLessThanOrEqual(r.ratio);
    expect(r.high).toBeGreaterThanOrEqual(r.ratio);
    expect(r.low).toBeGreaterThan(1.7);
    expect(r.high).toBeLessThan(2.3);
  });

  it('agrees with the resample-and-sort bootstrap, for odd and even counts', () => {
    for (const [nb, nc] of [
      [101, 151],
      [100, 150],
    ] as const) {
      const b = lognormal(nb, 100, 0.3, 11);
      const c = lognormal(nc, 110, 0.3, 12);
      const fast = bootstrapMedianRatio(b, c, { seed: 5, resamples: 4000 });
      const naive = naiveBootstrap(sortedCopy(b), sortedCopy(c), 4000, 6);
      // Two Monte Carlo estimates of the same interval: equal up to resampling noise.
      expect(Math.abs(fast.low - naive.low), `low, n ${nb}/${nc}`).toBeLessThan(0.02);
      expect(Math.abs(fast.high - naive.high), `high, n ${nb}/${nc}`).toBeLessThan(0.02);
    }
  });

  it('refuses bad options and zero medians with typed errors', () => {
    expect(() => bootstrapMedianRatio(base, slower, { resamples: 5 })).toThrow(InvalidArgumentError);
    expect(() => bootstrapMedianRatio(base, slower, { confidence: 1 })).toThrow(/confidence/);
    expect(() => bootstrapMedianRatio([0, 0, 1], slower)).toThrow(/baseline/);
    expect(() => bootstrapMedianRatio([], slower)).toThrow(InvalidArgumentError);
  });
});

describe('bootstrapRunsMedianRatio', () => {
  /** Runs with whole-run shifts: run i has tight log-normal samples around median * shifts[i]. */
  const runs = (shifts: readonly number[], median: number, seed: number) =>
    shifts.map((s, i) => lognormal(201, median * s, 0.02, seed * 17 + i));

  /** The plain two-level bootstrap: draw runs, then samples within each, sort, take medians. */
  function naiveRuns(b: Float64Array[], c: Float64Array[], resamples: number, seed: number) {
    const random = seededRandom(seed);
    const side = (rs: Float64Array[]) => {
      const medians = rs.map(() => {
        const run = rs[Math.floor(random() * rs.length)] as Float64Array;
        return medianOfSorted(
          sortedCopy(Float64Array.from(run, () => run[Math.floor(random() * run.length)] as number)),
        );
      });
      return medianOfSorted(sortedCopy(medians));
    };
    const ratios = Float64Array.from({ length: resamples }, () => {
      const bm = side(b);
      return side(c) / bm;
    }).sort();
    return { low: quantile(ratios, 0.025), high: quantile(ratios, 0.975) };
  }

  it('is the within-run bootstrap for one run a side, and deterministic for a seed', () => {
    const b = lognormal(300, 100, 0.3, 21);
    const c = lognormal(250, 120, 0.3, 22);
    expect(bootstrapRunsMedianRatio([b], [c], { seed: 4 })).toEqual(bootstrapMedianRatio(b, c, { seed: 4 }));
    const bs = runs([0.9, 1, 1.1], 100, 1);
    const cs = runs([1, 1.05, 0.95], 100, 2);
    expect(bootstrapRunsMedianRatio(bs, cs, { seed: 3 })).toEqual(
      bootstrapRunsMedianRatio(bs, cs, { seed: 3 }),
    );
    expect(bootstrapRunsMedianRatio(bs, cs, { seed: 3 })).not.toEqual(
      bootstrapRunsMedianRatio(bs, cs, { seed: 4 }),
    );
  });

  it('takes the ratio of medians of run medians, with an interval as wide as the run spread', () => {
    const bs = runs([0.9, 1, 1.1], 100, 3);
    const cs = runs([0.9, 1, 1.1], 100, 4);
    const r = bootstrapRunsMedianRatio(bs, cs, { seed: 1 });
    const mom = (rs: Float64Array[]) =>
      medianOfSorted(sortedCopy(rs.map((x) => medianOfSorted(sortedCopy(x)))));
    expect(r.ratio).toBeCloseTo(mom(cs) / mom(bs), 12);
    // The within-run interval of any two of these runs is about 1% wide; this one spans the shifts.
    expect(r.low).toBeLessThan(0.9);
    expect(r.high).toBeGreaterThan(1.1);
  });

  it('agrees with the plain two-level resample-and-sort bootstrap', () => {
    const bs = runs([0.95, 1, 1.08, 0.97], 100, 5);
    const cs = runs([1.1, 1.02, 0.99], 110, 6);
    const fast = bootstrapRunsMedianRatio(bs, cs, { seed: 7, resamples: 4000 });
    const naive = naiveRuns(bs, cs, 4000, 8);
    expect(Math.abs(fast.low - naive.low)).toBeLessThan(0.02);
    expect(Math.abs(fast.high - naive.high)).toBeLessThan(0.02);
  });

  it('refuses empty sides, empty runs, zero medians and bad options with typed errors', () => {
    const bs = runs([1, 1], 100, 9);
    expect(() => bootstrapRunsMedianRatio([], bs)).toThrow(/baselineRuns/);
    expect(() => bootstrapRunsMedianRatio(bs, [[1], []])).toThrow(/currentRuns\[1\]/);
    expect(() => bootstrapRunsMedianRatio([[0], [0], [1]], bs)).toThrow(InvalidArgumentError);
    expect(() => bootstrapRunsMedianRatio(bs, bs, { resamples: 5 })).toThrow(/resamples/);
    expect(() => bootstrapRunsMedianRatio(bs, bs, { seed: 1.5 })).toThrow(/seed/);
  });
});
