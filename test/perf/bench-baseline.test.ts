/**
 * Baselines of the bench suite's figures (src/perf/bench-baseline.ts): which way each figure is
 * better, what goes into a baseline, and the comparison in cost form. Pure functions on canned
 * results: nothing is timed.
 */
import { describe, expect, it } from 'vitest';
import { BaselineInvalidError, parseBaseline } from '../../src/perf/baseline.js';
import {
  BENCH_BASELINE_SUITE,
  benchBaseline,
  compareBenchRuns,
  describeBenchTest,
  fieldDirection,
  figureName,
  formatBenchComparison,
} from '../../src/perf/bench-baseline.js';
import type { WorkloadResult } from '../../src/perf/runner.js';

const ENV = {
  node: 'v20.0.0',
  v8: '11',
  platform: 'linux',
  arch: 'x64',
  cpus: 2,
  cpuModel: 'test cpu',
  gcExposed: true,
};

function line(
  workload: string,
  fields: Record<string, number> | null,
  labels?: Record<string, string>,
): WorkloadResult {
  return labels === undefined
    ? { workload, runs: 1, fields, error: fields === null ? 'boom' : null }
    : { workload, labels, runs: 1, fields, error: fields === null ? 'boom' : null };
}

/** Runs of one suite: run i has the figures scaled by factors[i]. */
function runs(factors: readonly number[], base: { ns: number; rate: number }): WorkloadResult[][] {
  return factors.map((f) => [
    line('calls', { ns_per_op: base.ns * f }),
    line('rounds', { rounds_per_s: base.rate / f, decided_share: 1, n: 100 }),
    line('tune', { us_per_trial: 40 * f }, { sampler: 'tpe' }),
  ]);
}

describe('fieldDirection', () => {
  it('reads the direction from the name; null when it cannot tell, and for growth rates', () => {
    const cases: [string, 'lower' | 'higher' | null][] = [
      ['ns_per_op', 'lower'],
      ['p99_us', 'lower'],
      ['mean_ms', 'lower'],
      ['seconds', 'lower'],
      ['wall_s', 'lower'],
      ['us_per_trial_last100', 'lower'],
      ['bytes_per_agent', 'lower'],
      ['regret_25', 'lower'],
      ['error_rate', 'lower'],
      ['ops_per_s', 'higher'],
      ['msgs_per_s', 'higher'],
      ['decided_share', 'higher'],
      ['success_rate', 'higher'],
      ['hit_pct', 'higher'],
      ['n', null],
      ['threads', null],
      ['agents', null],
      ['bytes_per_hour', null],
      ['system_bytes_per_day', null],
    ];
    for (const [field, direction] of cases) expect(fieldDirection(field), field).toBe(direction);
  });
});

describe('benchBaseline', () => {
  it('holds one single-value run per suite run for every figure with a direction', () => {
    const b = benchBaseline(runs([1, 1.02, 0.99], { ns: 200, rate: 1000 }), {
      createdAt: '2026-01-01T00:00:00.000Z',
      environment: ENV,
    });
    expect(b.suite).toBe(BENCH_BASELINE_SUITE);
    expect(b.operations.map((o) => o.name)).toEqual([
      'calls.ns_per_op',
      'rounds.rounds_per_s',
      'rounds.decided_share',
      'tune{sampler=tpe}.us_per_trial',
    ]);
    const calls = b.operations[0];
    expect(calls?.runs.map((r) => r.samples)).toEqual([[200], [204], [198]]);
    expect(calls?.runs[0]?.stats).toMatchObject({ n: 1, median: 200, p99: 200, sd: 0, rme: null });
    // A valid baseline file.
    expect(parseBaseline(JSON.parse(JSON.stringify(b)))).toEqual(b);
  });

  it('leaves out failed workloads, negative and non-finite values', () => {
    const b = benchBaseline(
      [
        [line('calls', null), line('odd', { p99_us: -1, mean_us: Number.POSITIVE_INFINITY, p50_us: 3 })],
        [line('calls', { ns_per_op: 5 })],
      ],
      { environment: ENV },
    );
    expect(b.operations.map((o) => [o.name, o.runs.length])).toEqual([
      ['odd.p50_us', 1],
      ['calls.ns_per_op', 1],
    ]);
  });

  it('names figures after their line', () => {
    expect(figureName({ workload: 'tune', labels: { sampler: 'tpe', seed: '1' } }, 'regret')).toBe(
      'tune{sampler=tpe,seed=1}.regret',
    );
    expect(figureName({ workload: 'calls' }, 'ns_per_op')).toBe('calls.ns_per_op');
  });
});

describe('compareBenchRuns', () => {
  const saved = benchBaseline(runs([1, 1.02, 0.98], { ns: 200, rate: 1000 }), { environment: ENV });

  it('flags a slower build as a regression whether the figure is a time or a rate', () => {
    const c = compareBenchRuns(saved, runs([1.3, 1.31, 1.29], { ns: 200, rate: 1000 }));
    expect(c.regressions).toEqual([
      'calls.ns_per_op',
      'rounds.rounds_per_s',
      'tune{sampler=tpe}.us_per_trial',
    ]);
    expect(c.improvements).toEqual([]);
    const rate = c.figures.find((f) => f.name === 'rounds.rounds_per_s');
    expect(rate?.direction).toBe('higher');
    expect(rate?.baselineMedian).toBeCloseTo(1000, 6);
    expect(rate?.currentMedian).toBeCloseTo(1000 / 1.3, 6);
    // Cost form: baseline / current for a rate, so above 1 is worse.
    expect(rate?.comparison.status === 'compared' && rate.comparison.interval.ratio).toBeCloseTo(1.3, 6);
    expect(rate?.comparison.status === 'compared' && rate.comparison.method).toBe('runs-bootstrap');
    expect(c.ignored).toEqual(['rounds.n']);
  });

  it('flags a faster build as an improvement, and no change within the noise', () => {
    const faster = compareBenchRuns(saved, runs([0.7, 0.71, 0.69], { ns: 200, rate: 1000 }));
    expect(faster.improvements).toHaveLength(3);
    expect(faster.regressions).toEqual([]);
    const same = compareBenchRuns(saved, runs([1.01, 0.99, 1.0], { ns: 200, rate: 1000 }));
    expect(same.regressions).toEqual([]);
    expect(same.improvements).toEqual([]);
    for (const f of same.figures) {
      expect(f.comparison.status === 'compared' && f.comparison.verdict).toBe('no significant change');
    }
  });

  it('a run shift the size of the spread between runs is not flagged', () => {
    // Baseline runs spread by +-8%; the new runs 6% slower, inside that spread.
    const noisy = benchBaseline(runs([0.92, 1.0, 1.08], { ns: 200, rate: 1000 }), { environment: ENV });
    const c = compareBenchRuns(noisy, runs([0.98, 1.06, 1.14], { ns: 200, rate: 1000 }));
    expect(c.regressions).toEqual([]);
  });

  it('lists figures on one side only, and a figure that is 0 as not comparable', () => {
    const base = benchBaseline([[line('a', { p99_us: 5, ops_per_s: 10 }), line('gone', { p99_us: 1 })]], {
      environment: ENV,
    });
    const c = compareBenchRuns(base, [[line('a', { p99_us: 5, ops_per_s: 0 }), line('new', { p99_us: 1 })]]);
    const status = Object.fromEntries(c.figures.map((f) => [f.name, f.comparison.status]));
    expect(status).toEqual({
      'a.p99_us': 'compared',
      'a.ops_per_s': 'not-comparable',
      'new.p99_us': 'only-in-current',
      'gone.p99_us': 'only-in-baseline',
    });
    const zero = c.figures.find((f) => f.name === 'a.ops_per_s')?.comparison;
    expect(zero?.status === 'not-comparable' && zero.reason).toBe('a run measured 0 now');
    // One run a side: the single-run test, stated in the table.
    const a = c.figures.find((f) => f.name === 'a.p99_us')?.comparison;
    expect(a?.status === 'compared' && a.method).toBe('single-run-with-noise-floor');
    const text = formatBenchComparison(c, 'b.json');
    expect(text).toContain('baseline b.json: 4 figures compared');
    expect(text).toMatch(
      /^a\.ops_per_s\s+higher\s+10\s+0\s+1\/1\s+-\s+not comparable: a run measured 0 now$/m,
    );
    expect(text).toMatch(/^gone\.p99_us\s+lower\s+1\s+-\s+1\/0\s+-\s+not run$/m);
    expect(text).toContain(describeBenchTest(c.comparison));
  });

  it('refuses a baseline of another suite', () => {
    const other = { ...saved, suite: 'registry' };
    expect(() => compareBenchRuns(other, [], { file: 'x.json' })).toThrow(BaselineInvalidError);
    expect(() => compareBenchRuns(other, [], { file: 'x.json' })).toThrow(
      'baseline x.json is invalid at suite: is "registry", not a bench-suite baseline',
    );
  });
});
