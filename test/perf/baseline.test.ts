/**
 * Baselines: the regression test on synthetic runs (a clear 2x slowdown is flagged, a 2x speedup
 * is an improvement, identical distributions never are flagged whatever the seeds), the
 * hierarchical test over several runs (run-level shifts of +-10% never flagged, a 2x slowdown
 * over 3 runs flagged), the noise floor of single-run comparisons, save and load round trips
 * (version 1 files still read), and malformed files rejected with typed errors naming the file
 * and the field. Synthetic, seeded data only; nothing here measures speed.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BASELINE_VERSION,
  type Baseline,
  BaselineInvalidError,
  type BaselineRun,
  BaselineUnreadableError,
  BaselineVersionError,
  baselineJson,
  classifyRatio,
  classifySingleRun,
  compareWithBaseline,
  DEFAULT_NOISE_FLOOR,
  loadBaseline,
  mergeBaselines,
  parseBaseline,
  saveBaseline,
  toBaseline,
} from '../../src/perf/baseline.js';
import {
  BenchErrorCodes,
  benchEnvironment,
  type OperationResult,
  type SuiteResult,
} from '../../src/perf/harness.js';
import { bootstrapMedianRatio, seededRandom, summarize } from '../../src/perf/stats.js';

/** n draws from a log-normal distribution with median `median` and log-sd `sigma`. */
function lognormal(n: number, median: number, sigma: number, seed: number): Float64Array {
  const random = seededRandom(seed);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const z = Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
    out[i] = median * Math.exp(sigma * z);
  }
  return out.sort();
}

/** A run result built from sample sets, as the harness would return it. */
function fakeRun(suite: string, ops: Record<string, Float64Array | Error>): SuiteResult {
  const operations: OperationResult[] = Object.entries(ops).map(([name, samples]) => {
    if (samples instanceof Error) return { state: 'error', name, phase: 'run', error: samples };
    const stats = summarize(samples, { sorted: true });
    return {
      state: 'ok',
      name,
      async: false,
      batch: 1,
      samples,
      stats,
      opsPerSecond: 1e9 / stats.mean,
      memory: null,
      rounds: 1,
      stopReason: 'time',
      durationMs: 1,
    };
  });
  return {
    suite,
    startedAt: '2026-01-02T03:04:05.000Z',
    durationMs: 10,
    environment: benchEnvironment(false),
    operations,
  };
}

describe('classifyRatio', () => {
  it('flags only an interval entirely beyond the threshold', () => {
    expect(classifyRatio({ low: 1.06, high: 1.2 }, 0.05)).toBe('regression');
    expect(classifyRatio({ low: 1.04, high: 1.2 }, 0.05)).toBe('no significant change');
    expect(classifyRatio({ low: 0.8, high: 0.94 }, 0.05)).toBe('improvement');
    expect(classifyRatio({ low: 0.8, high: 0.96 }, 0.05)).toBe('no significant change');
    expect(classifyRatio({ low: 0.99, high: 1.01 }, 0)).toBe('no significant change');
  });
});

describe('compareWithBaseline', () => {
  const base = fakeRun('s', {
    lookup: lognormal(500, 100, 0.3, 1),
    append: lognormal(500, 1000, 0.3, 2),
    gone: lognormal(100, 50, 0.3, 3),
  });
  const baseline = toBaseline(base);

  it('flags a clear 2x slowdown as a regression and a 2x speedup as an improvement', () => {
    const current = fakeRun('s', {
      lookup: lognormal(500, 200, 0.3, 4),
      append: lognormal(500, 500, 0.3, 5),
      fresh: lognormal(100, 10, 0.3, 6),
    });
    const c = compareWithBaseline(baseline, current, { seed: 3 });
    expect(c.regressions).toEqual(['lookup']);
    expect(c.improvements).toEqual(['append']);
    const lookup = c.operations.find((o) => o.name === 'lookup');
    expect(lookup?.status).toBe('compared');
    if (lookup?.status === 'compared') {
      expect(lookup.verdict).toBe('regression');
      expect(lookup.interval.low).toBeGreaterThan(1.05);
      expect(lookup.interval.ratio).toBeGreaterThan(1.8);
      expect(lookup.interval.resamples).toBe(2000);
    }
    expect(c.operations.map((o) => [o.name, o.status])).toEqual([
      ['lookup', 'compared'],
      ['append', 'compared'],
      ['fresh', 'only-in-current'],
      ['gone', 'only-in-baseline'],
    ]);
    expect(c.environmentChanges).toEqual([]);
  });

  it('is deterministic for a seed', () => {
    const current = fakeRun('s', { lookup: lognormal(500, 103, 0.3, 7) });
    expect(compareWithBaseline(baseline, current, { seed: 8 })).toEqual(
      compareWithBaseline(baseline, current, { seed: 8 }),
    );
  });

  it('never flags identical distributions, whatever the data and bootstrap seeds', () => {
    fc.assert(
      fc.property(fc.integer(), fc.integer(), fc.integer(), (seedA, seedB, bootSeed) => {
        const a = fakeRun('s', { op: lognormal(400, 100, 0.2, seedA) });
        const b = fakeRun('s', { op: lognormal(400, 100, 0.2, seedB) });
        const c = compareWithBaseline(toBaseline(a), b, { seed: bootSeed, resamples: 1000 });
        const same = compareWithBaseline(toBaseline(a), a, { seed: bootSeed, resamples: 1000 });
        const op = c.operations[0];
        const sameOp = same.operations[0];
        return (
          op?.status === 'compared' &&
          op.verdict === 'no significant change' &&
          sameOp?.status === 'compared' &&
          sameOp.verdict === 'no significant change' &&
          sameOp.interval.low <= 1 &&
          sameOp.interval.high >= 1
        );
      }),
      { numRuns: 60, seed: 20_261_127 },
    );
  });

  it('lists a failed operation as not comparable, never as a change', () => {
    const current = fakeRun('s', { lookup: new Error('boom'), append: lognormal(500, 1000, 0.3, 9) });
    const c = compareWithBaseline(baseline, current);
    expect(c.operations[0]).toMatchObject({ status: 'not-comparable', name: 'lookup' });
    expect(c.operations[0]?.status === 'not-comparable' && c.operations[0].reason).toMatch(/boom/);
    expect(c.regressions).toEqual([]);
  });

  it('compares two baselines too, and refuses a bad threshold', () => {
    const c = compareWithBaseline(baseline, baseline);
    expect(c.regressions).toEqual([]);
    expect(c.improvements).toEqual([]);
    expect(() => compareWithBaseline(baseline, base, { threshold: -0.1 })).toThrow(/threshold/);
  });
});

/**
 * Runs of one operation from separate "processes": run i has log-normal samples (tight scatter,
 * log-sd `sigma`) around median * shifts[i], a shift of the whole run such as JIT decisions or
 * machine load cause.
 */
function runsOf(
  shifts: readonly number[],
  median: number,
  seed: number,
  sigma = 0.02,
  n = 300,
): SuiteResult[] {
  return shifts.map((shift, i) => fakeRun('s', { op: lognormal(n, median * shift, sigma, seed * 31 + i) }));
}

function compared(c: ReturnType<typeof compareWithBaseline>, name = 'op') {
  const op = c.operations.find((o) => o.name === name);
  if (op?.status !== 'compared') throw new Error(`${name} was not compared`);
  return op;
}

describe('several runs per operation (hierarchical bootstrap)', () => {
  it('never flags A/A runs with run-level shifts of +-10% and tight scatter, whatever the seeds', () => {
    // Both sides see the machine's spread: each has a run 10% fast and one 10% slow, and 1 to 3
    // more anywhere in between. (If every baseline run were slow and every new one fast, no test
    // on those runs could tell it from a real change; that is what more runs make unlikely.)
    const side = fc
      .array(fc.double({ min: 0.9, max: 1.1, noNaN: true }), { minLength: 1, maxLength: 3 })
      .map((rest) => [0.9, 1.1, ...rest]);
    fc.assert(
      fc.property(side, side, fc.integer(), fc.integer(), (baseShifts, curShifts, dataSeed, bootSeed) => {
        const baseline = toBaseline(runsOf(baseShifts, 100, dataSeed));
        const c = compareWithBaseline(baseline, runsOf(curShifts, 100, dataSeed ^ 0x5bd1e995), {
          seed: bootSeed,
          resamples: 500,
        });
        const op = compared(c);
        return (
          op.method === 'runs-bootstrap' &&
          op.baselineRuns === baseShifts.length &&
          op.currentRuns === curShifts.length &&
          op.verdict === 'no significant change' &&
          c.regressions.length === 0 &&
          c.improvements.length === 0
        );
      }),
      { numRuns: 100, seed: 20_261_127 },
    );
  });

  it('sees the run-level shift the within-run interval misses', () => {
    // One run 10% slower than another: a within-run bootstrap on those two runs alone is tight
    // and wholly beyond 5%; with three runs a side the interval spans the spread between runs.
    const base = runsOf([1.0, 0.9, 1.1], 100, 1);
    const cur = runsOf([1.1, 1.0, 0.9], 100, 2);
    const okSamples = (r: SuiteResult) => (r.operations[0]?.state === 'ok' ? r.operations[0].samples : []);
    const within = bootstrapMedianRatio(okSamples(base[1]!), okSamples(cur[0]!), { seed: 5 });
    expect(classifyRatio(within, 0.05)).toBe('regression');
    const op = compared(compareWithBaseline(toBaseline(base), cur, { seed: 5 }));
    expect(op.method).toBe('runs-bootstrap');
    expect(op.verdict).toBe('no significant change');
    expect(op.interval.low).toBeLessThan(0.95);
    expect(op.interval.high).toBeGreaterThan(1.05);
  });

  it('flags a real 2x slowdown across 3 runs a side, and a 2x speedup as an improvement', () => {
    const shifts = [0.9, 1.0, 1.1];
    const baseline = toBaseline(runsOf(shifts, 100, 3));
    const slower = compareWithBaseline(baseline, runsOf(shifts, 200, 4), { seed: 6 });
    expect(slower.regressions).toEqual(['op']);
    const op = compared(slower);
    expect(op).toMatchObject({
      method: 'runs-bootstrap',
      baselineRuns: 3,
      currentRuns: 3,
      verdict: 'regression',
    });
    expect(op.interval.low).toBeGreaterThan(1.05);
    expect(op.interval.ratio).toBeGreaterThan(1.8);
    expect(op.interval.ratio).toBeLessThan(2.2);
    const faster = compareWithBaseline(baseline, runsOf(shifts, 50, 5), { seed: 6 });
    expect(faster.improvements).toEqual(['op']);
    expect(compared(faster).method).toBe('runs-bootstrap');
  });

  it('is deterministic for a seed, and reads runs from a baseline or separately saved baselines', () => {
    const base = runsOf([0.95, 1.0, 1.05], 100, 7);
    const cur = runsOf([1.0, 1.02, 0.97], 103, 8);
    const baseline = toBaseline(base);
    expect(compareWithBaseline(baseline, cur, { seed: 9 })).toEqual(
      compareWithBaseline(baseline, cur, { seed: 9 }),
    );
    // Three single-run baselines (one per process) merged give the same baseline.
    expect(mergeBaselines(base.map((r) => toBaseline(r)))).toEqual(baseline);
    // The new side as a baseline compares as the runs it came from (to its six stored digits).
    const fromRuns = compared(compareWithBaseline(baseline, cur, { seed: 9 }));
    const fromBaseline = compared(compareWithBaseline(baseline, toBaseline(cur), { seed: 9 }));
    expect(fromBaseline).toMatchObject({
      method: 'runs-bootstrap',
      currentRuns: 3,
      verdict: fromRuns.verdict,
    });
    expect(fromBaseline.interval.ratio).toBeCloseTo(fromRuns.interval.ratio, 4);
    expect(fromBaseline.interval.low).toBeCloseTo(fromRuns.interval.low, 4);
    expect(() => mergeBaselines([])).toThrow(/at least one/);
    expect(() => mergeBaselines([baseline, { ...baseline, suite: 'other' }])).toThrow(/suite/);
  });

  it('accepts runs of a single value each (per-run medians)', () => {
    const medians = (values: number[]) => values.map((v) => fakeRun('s', { op: Float64Array.of(v) }));
    const baseline = toBaseline(medians([95, 100, 108, 102]));
    expect(compared(compareWithBaseline(baseline, medians([104, 92, 99, 110]))).verdict).toBe(
      'no significant change',
    );
    const slower = compared(compareWithBaseline(baseline, medians([205, 190, 214, 199])));
    expect(slower).toMatchObject({ method: 'runs-bootstrap', verdict: 'regression', currentRuns: 4 });
  });

  it('leaves out the runs where an operation failed, and lists it when it failed in all', () => {
    const baseline = toBaseline(runsOf([1, 1, 1], 100, 10));
    const [a, b] = runsOf([1, 1], 100, 11);
    const failed = fakeRun('s', { op: new Error('boom') });
    const c = compareWithBaseline(baseline, [a!, failed, b!]);
    expect(compared(c)).toMatchObject({ currentRuns: 2, method: 'runs-bootstrap' });
    const none = compareWithBaseline(baseline, [failed, failed]);
    expect(none.operations[0]).toMatchObject({
      status: 'not-comparable',
      reason: expect.stringMatching(/boom/),
    });
  });
});

describe('single-run comparisons and the noise floor', () => {
  const tight = (median: number, seed: number) => fakeRun('s', { op: lognormal(2000, median, 0.02, seed) });

  it('does not flag a change below the noise floor, even with a tight interval beyond the threshold', () => {
    for (const [ratio, seed] of [
      [1.1, 12],
      [1.13, 13],
      [0.88, 14],
    ] as const) {
      const c = compareWithBaseline(toBaseline(tight(100, seed)), tight(100 * ratio, seed + 100), { seed });
      const op = compared(c);
      expect(op.method).toBe('single-run-with-noise-floor');
      // The within-run interval alone would flag it ...
      expect(classifyRatio(op.interval, c.threshold)).not.toBe('no significant change');
      expect(op.interval.high - op.interval.low).toBeLessThan(0.02);
      // ... but the ratio is within the noise floor.
      expect(op.verdict).toBe('no significant change');
      expect(c.regressions).toEqual([]);
      expect(c.improvements).toEqual([]);
      expect(c.noiseFloor).toBe(DEFAULT_NOISE_FLOOR);
    }
  });

  it('flags a change beyond the noise floor, and applies the floor when either side has one run', () => {
    const baseline = toBaseline(tight(100, 15));
    expect(compareWithBaseline(baseline, tight(130, 16)).regressions).toEqual(['op']);
    expect(compareWithBaseline(baseline, tight(70, 17)).improvements).toEqual(['op']);
    // With noiseFloor 0, the interval test alone decides (the behaviour of version 1).
    expect(compareWithBaseline(baseline, tight(110, 18), { noiseFloor: 0 }).regressions).toEqual(['op']);
    // Several baseline runs against one new run: still one run on a side.
    const several = toBaseline(runsOf([1, 1, 1], 100, 19));
    const op = compared(compareWithBaseline(several, tight(110, 20)));
    expect(op).toMatchObject({ method: 'single-run-with-noise-floor', baselineRuns: 3, currentRuns: 1 });
    expect(op.verdict).toBe('no significant change');
    expect(() => compareWithBaseline(baseline, tight(100, 21), { noiseFloor: 1 })).toThrow(/noiseFloor/);
  });

  it('classifySingleRun keeps an interval verdict only beyond the floor', () => {
    expect(classifySingleRun({ ratio: 1.1, low: 1.08, high: 1.12 }, 0.05, 0.15)).toBe(
      'no significant change',
    );
    expect(classifySingleRun({ ratio: 1.2, low: 1.18, high: 1.22 }, 0.05, 0.15)).toBe('regression');
    expect(classifySingleRun({ ratio: 1.2, low: 1.01, high: 1.4 }, 0.05, 0.15)).toBe('no significant change');
    expect(classifySingleRun({ ratio: 0.8, low: 0.78, high: 0.82 }, 0.05, 0.15)).toBe('improvement');
    expect(classifySingleRun({ ratio: 0.9, low: 0.88, high: 0.92 }, 0.05, 0.15)).toBe(
      'no significant change',
    );
  });
});

describe('saving and loading', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mabeam-baseline-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const run = fakeRun('registry', {
    lookup: lognormal(5000, 100, 0.3, 1),
    failing: new Error('nope'),
  });

  it('round-trips a run, leaving out failed operations and thinning the samples', async () => {
    const file = join(dir, 'nested', 'base.json');
    const written = await saveBaseline(file, run, { maxSamples: 500 });
    const loaded = await loadBaseline(file);
    expect(loaded).toEqual(written);
    expect(loaded.version).toBe(BASELINE_VERSION);
    expect(loaded.suite).toBe('registry');
    expect(loaded.operations.map((o) => o.name)).toEqual(['lookup']);
    expect(loaded.operations[0]?.runs).toHaveLength(1);
    const op = loaded.operations[0]?.runs[0];
    expect(op?.samples).toHaveLength(500);
    expect(op?.stats.n).toBe(5000);
    expect(op?.samples[0]).toBeCloseTo(op?.stats.min ?? Number.NaN, 3);
    expect(op?.samples[499]).toBeCloseTo(op?.stats.max ?? Number.NaN, 3);
    // A loaded baseline compares with the run it came from without any change.
    expect(compareWithBaseline(loaded, run).regressions).toEqual([]);
  });

  it('still reads a version 1 file, as one run per operation', async () => {
    const file = join(dir, 'v1.json');
    const v1 = {
      schema: 'mabeam-bench-baseline',
      version: 1,
      suite: 'registry',
      createdAt: '2025-06-01T10:00:00.000Z',
      environment: {
        node: 'v22.0.0',
        v8: '12.4',
        platform: 'linux',
        arch: 'x64',
        cpus: 2,
        cpuModel: 'cpu',
        gcExposed: false,
      },
      operations: [
        {
          name: 'lookup',
          async: false,
          batch: 1,
          stats: {
            n: 5,
            mean: 102,
            median: 100,
            p90: 108,
            p99: 110,
            p999: 110,
            min: 95,
            max: 110,
            sd: 5.7,
            rme: 6.9,
          },
          opsPerSecond: 9_803_921.5,
          memory: null,
          samples: [95, 98, 100, 105, 110],
        },
      ],
    };
    await writeFile(file, JSON.stringify(v1, null, 2));
    const loaded = await loadBaseline(file);
    expect(loaded.version).toBe(BASELINE_VERSION);
    expect(loaded.operations).toEqual([
      {
        name: 'lookup',
        async: false,
        batch: 1,
        runs: [
          {
            stats: v1.operations[0]!.stats,
            opsPerSecond: 9_803_921.5,
            memory: null,
            samples: [95, 98, 100, 105, 110],
          },
        ],
      },
    ]);
    expect(parseBaseline(JSON.parse(baselineJson(loaded)))).toEqual(loaded);
    const c = compareWithBaseline(loaded, fakeRun('registry', { lookup: lognormal(500, 100, 0.05, 22) }));
    expect(compared(c, 'lookup')).toMatchObject({ method: 'single-run-with-noise-floor', baselineRuns: 1 });
    // A bad version 1 file is reported at its own (version 1) field path.
    const bad = structuredClone(v1);
    bad.operations[0]!.samples.reverse();
    expect(() => parseBaseline(bad, 'old.json')).toThrow(BaselineInvalidError);
    expect(() => parseBaseline(bad, 'old.json')).toThrow('operations[0].samples[1]');
  });

  it('writes one line per sample array', () => {
    const text = baselineJson(toBaseline(run, { maxSamples: 100 }));
    const line = text.split('\n').find((l) => l.includes('"samples"'));
    expect(line).toMatch(/"samples": \[[\d.e+-]+(,[\d.e+-]+){99}\]/);
    expect(JSON.parse(text)).toEqual(toBaseline(run, { maxSamples: 100 }));
  });

  async function rejects(name: string, content: string) {
    const file = join(dir, name);
    await writeFile(file, content);
    return loadBaseline(file).then(
      () => {
        throw new Error(`${name} was accepted`);
      },
      (error: unknown) => ({ error, file }),
    );
  }

  const valid = (): Baseline => toBaseline(run, { maxSamples: 10 });

  it('rejects a missing file and a file that is not JSON as unreadable, naming the file', async () => {
    const missing = join(dir, 'missing.json');
    await expect(loadBaseline(missing)).rejects.toThrow(BaselineUnreadableError);
    await expect(loadBaseline(missing)).rejects.toThrow(missing);
    const { error, file } = await rejects('truncated.json', '{"schema": "mabeam-bench-baseline", ');
    expect(error).toBeInstanceOf(BaselineUnreadableError);
    expect(error).toMatchObject({ code: BenchErrorCodes.BASELINE_UNREADABLE, file });
  });

  it('rejects a malformed baseline with the file and the field', async () => {
    const cases: [string, (b: Record<string, unknown> & Baseline) => unknown, string][] = [
      ['not-an-object', () => [1, 2], '(root)'],
      ['no-schema', ({ schema: _, ...rest }) => rest, 'schema'],
      ['bad-date', (b) => ({ ...b, createdAt: 'yesterday' }), 'createdAt'],
      [
        'string-sample',
        (b) => {
          (b.operations[0]!.runs[0]!.samples as unknown[])[3] = 'fast';
          return b;
        },
        'operations[0].runs[0].samples[3]',
      ],
      [
        'negative-sample',
        (b) => {
          (b.operations[0]!.runs[0]!.samples as number[])[0] = -1;
          return b;
        },
        'operations[0].runs[0].samples[0]',
      ],
      [
        'unsorted-samples',
        (b) => {
          (b.operations[0]!.runs[0]!.samples as number[]).reverse();
          return b;
        },
        'operations[0].runs[0].samples[1]',
      ],
      [
        'no-median',
        (b) => {
          const stats = b.operations[0]!.runs[0]!.stats as Partial<BaselineRun['stats']>;
          delete stats.median;
          return b;
        },
        'operations[0].runs[0].stats.median',
      ],
      [
        'duplicate-name',
        (b) => ({ ...b, operations: [b.operations[0], b.operations[0]] }),
        'operations[1].name',
      ],
    ];
    for (const [name, mutate, field] of cases) {
      const { error, file } = await rejects(`${name}.json`, JSON.stringify(mutate(valid() as never)));
      expect(error, name).toBeInstanceOf(BaselineInvalidError);
      expect(error, name).toMatchObject({ code: BenchErrorCodes.BASELINE_INVALID, file, field });
      expect((error as Error).message, name).toContain(file);
      expect((error as Error).message, name).toContain(field);
    }
  });

  it('rejects another schema version with its own typed error', async () => {
    const { error, file } = await rejects('v3.json', JSON.stringify({ ...valid(), version: 3 }));
    expect(error).toBeInstanceOf(BaselineVersionError);
    expect(error).toMatchObject({ code: BenchErrorCodes.BASELINE_VERSION, file, version: 3 });
    expect((error as Error).message).toMatch(/versions 1 and 2/);
    expect(() => parseBaseline({ ...valid(), version: '1' }, 'inline')).toThrow(/version/);
  });

  it('keeps its codes in the E_ form, each one distinct', () => {
    const codes = Object.values(BenchErrorCodes);
    expect(new Set(codes).size).toBe(codes.length);
    for (const code of codes) expect(code).toMatch(/^E_BENCH_[A-Z_]+$/);
  });
});
