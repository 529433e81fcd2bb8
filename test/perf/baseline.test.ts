/**
 * Baselines: the regression test on synthetic runs (a clear 2x slowdown is flagged, a 2x speedup
 * is an improvement, identical distributions never are flagged whatever the seeds), save and load
 * round trips, and malformed files rejected with typed errors naming the file and the field.
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
  BaselineUnreadableError,
  BaselineVersionError,
  baselineJson,
  classifyRatio,
  compareWithBaseline,
  loadBaseline,
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
import { seededRandom, summarize } from '../../src/perf/stats.js';

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
    const op = loaded.operations[0];
    expect(op?.samples).toHaveLength(500);
    expect(op?.stats.n).toBe(5000);
    expect(op?.samples[0]).toBeCloseTo(op?.stats.min ?? Number.NaN, 3);
    expect(op?.samples[499]).toBeCloseTo(op?.stats.max ?? Number.NaN, 3);
    // A loaded baseline compares with the run it came from without any change.
    expect(compareWithBaseline(loaded, run).regressions).toEqual([]);
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
          (b.operations[0]!.samples as unknown[])[3] = 'fast';
          return b;
        },
        'operations[0].samples[3]',
      ],
      [
        'negative-sample',
        (b) => {
          (b.operations[0]!.samples as number[])[0] = -1;
          return b;
        },
        'operations[0].samples[0]',
      ],
      [
        'unsorted-samples',
        (b) => {
          (b.operations[0]!.samples as number[]).reverse();
          return b;
        },
        'operations[0].samples[1]',
      ],
      [
        'no-median',
        (b) => {
          const stats = b.operations[0]!.stats as Partial<Baseline['operations'][number]['stats']>;
          delete stats.median;
          return b;
        },
        'operations[0].stats.median',
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
    const { error, file } = await rejects('v2.json', JSON.stringify({ ...valid(), version: 2 }));
    expect(error).toBeInstanceOf(BaselineVersionError);
    expect(error).toMatchObject({ code: BenchErrorCodes.BASELINE_VERSION, file, version: 2 });
    expect(() => parseBaseline({ ...valid(), version: '1' }, 'inline')).toThrow(/version/);
  });

  it('keeps its codes in the E_ form, each one distinct', () => {
    const codes = Object.values(BenchErrorCodes);
    expect(new Set(codes).size).toBe(codes.length);
    for (const code of codes) expect(code).toMatch(/^E_BENCH_[A-Z_]+$/);
  });
});
