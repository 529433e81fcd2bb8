/**
 * SLOs and budgets as data: checkSlos and assertSlo on synthetic results (no real code is timed),
 * units and their conversions, and malformed budget files.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidArgumentError, MabeamError } from '../../src/kernel/index.js';
import {
  assertSlo,
  BudgetFileError,
  type Budgets,
  checkSlos,
  convertUnit,
  fieldUnit,
  formatLabels,
  formatSloTable,
  labelKey,
  labelsMatch,
  lineName,
  loadBudgets,
  parseBudgets,
  type Slo,
  SloErrorCodes,
  type SloResult,
  SloViolationError,
} from '../../src/perf/slo.js';

const consensus: Slo = {
  workload: 'consensus_round_100',
  operation: 'consensus',
  p99: { max: 50, unit: 'ms' },
};

function result(workload: string, fields: Record<string, number>): SloResult {
  return { workload, fields };
}

function caught(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected a throw');
}

describe('checkSlos', () => {
  const budgets: Budgets = {
    budgets: [
      consensus,
      { workload: 'registry_lookup', operation: 'service discovery', mean: { max: 1, unit: 'ms' } },
      { workload: 'call_roundtrip', throughput: { min: 50_000, unit: 'ops/s', field: 'ns_per_op' } },
      {
        workload: 'faults',
        throughput: { min: 100, unit: 'ops/s', field: 'rounds_per_s' },
        successRate: { min: 99, unit: '%' },
      },
      { workload: 'soak', memoryGrowth: { max: 1, unit: 'MB/h' } },
    ],
  };
  const passing: SloResult[] = [
    result('consensus_round_100', { p50_us: 20, p99_us: 49_999, mean_us: 30, n: 2000 }),
    result('registry_lookup', { ns_per_op: 90 }),
    result('call_roundtrip', { ns_per_op: 300 }),
    result('faults', { rounds_per_s: 1000, decided_share: 1 }),
    result('soak', { bytes_per_hour: 200_000 }),
  ];

  it('passes when every figure is within its bound, one row per bounded figure', () => {
    const report = checkSlos(passing, budgets);
    expect(report.ok).toBe(true);
    expect(report.violations).toEqual([]);
    expect(report.rows.map((r) => [r.workload, r.metric, r.ok])).toEqual([
      ['consensus_round_100', 'p99', true],
      ['registry_lookup', 'mean', true],
      ['call_roundtrip', 'throughput', true],
      ['faults', 'throughput', true],
      ['faults', 'successRate', true],
      ['soak', 'memoryGrowth', true],
    ]);
  });

  it('reports measured values in the bound unit, with the field they came from', () => {
    const rows = checkSlos(passing, budgets).rows;
    const p99 = rows[0]!;
    expect(p99).toMatchObject({
      operation: 'consensus',
      side: 'max',
      bound: 50,
      unit: 'ms',
      field: 'p99_us',
    });
    expect(p99.measured).toBeCloseTo(49.999, 9);
    expect(p99.raw).toBe(49_999);
    // ns per sequential call inverted to calls per second
    expect(rows[2]!.measured).toBeCloseTo(1e9 / 300, 6);
    // decided_share 1 (ratio) read as 100 %
    expect(rows[4]).toMatchObject({ field: 'decided_share', measured: 100, unit: '%' });
    // 200,000 B/h is 0.2 MB/h
    expect(rows[5]!.measured).toBeCloseTo(0.2, 12);
    // An SLO without an operation is named after its workload
    expect(rows[2]!.operation).toBe('call_roundtrip');
  });

  it('flags each kind of violation and never throws for one', () => {
    const failing: SloResult[] = [
      result('consensus_round_100', { p99_us: 50_001 }),
      result('registry_lookup', { ns_per_op: 1_000_001 }),
      result('call_roundtrip', { ns_per_op: 20_001 }),
      result('faults', { rounds_per_s: 99.9, decided_share: 0.98 }),
      result('soak', { bytes_per_hour: 1_000_001 }),
    ];
    const report = checkSlos(failing, budgets);
    expect(report.ok).toBe(false);
    expect(report.violations.map((v) => v.metric)).toEqual([
      'p99',
      'mean',
      'throughput',
      'throughput',
      'successRate',
      'memoryGrowth',
    ]);
    expect(report.violations.every((v) => v.measured !== null && v.detail === '')).toBe(true);
  });

  it('treats bounds as inclusive', () => {
    const report = checkSlos(
      [result('consensus_round_100', { p99_ms: 50 }), result('call_roundtrip', { ops_per_s: 50_000 })],
      [consensus, { workload: 'call_roundtrip', throughput: { min: 50_000, unit: 'ops/s' } }],
    );
    expect(report.ok).toBe(true);
  });

  it('a budgeted figure with no result is a violation, not a pass', () => {
    const report = checkSlos([], [consensus]);
    expect(report.ok).toBe(false);
    expect(report.violations[0]).toMatchObject({
      measured: null,
      field: null,
      ok: false,
      detail: 'not measured: no result for this workload',
    });
  });

  it('a failed workload is not measured, with its error', () => {
    const report = checkSlos([{ workload: 'consensus_round_100', fields: null, error: 'boom' }], [consensus]);
    expect(report.violations[0]!.detail).toBe('not measured: the workload failed (boom)');
  });

  it('a result without the budgeted field is not measured, naming the fields looked for', () => {
    const report = checkSlos(
      [result('consensus_round_100', { p50_us: 3, mean_us: 4 }), result('call_roundtrip', { ns_per_op: 5 })],
      [
        consensus,
        { workload: 'call_roundtrip', throughput: { min: 1, unit: 'ops/s', field: 'calls_per_s' } },
      ],
    );
    expect(report.violations.map((v) => v.detail)).toEqual([
      'not measured: the result has no p99_ns or p99_us or p99_ms or p99_s field',
      'not measured: the result has no calls_per_s field',
    ]);
  });

  it('a NaN figure is not measured', () => {
    const report = checkSlos([result('consensus_round_100', { p99_us: Number.NaN })], [consensus]);
    expect(report.violations[0]!.detail).toMatch(/^not measured: field p99_us is not a number/);
  });

  it('reads a field whose unit is given by fieldUnit', () => {
    const slo: Slo = { workload: 'w', p99: { max: 2, unit: 'ms', field: 'tail', fieldUnit: 'us' } };
    expect(checkSlos([result('w', { tail: 1999 })], [slo]).ok).toBe(true);
    expect(checkSlos([result('w', { tail: 2001 })], [slo]).ok).toBe(false);
  });

  it('an empty list of SLOs checks nothing', () => {
    expect(checkSlos([result('w', { p99_us: 1 })], [])).toEqual({ rows: [], violations: [], ok: true });
  });

  it('renders a table of every row', () => {
    const table = formatSloTable(
      checkSlos([result('consensus_round_100', { p99_us: 60_000 })], [consensus]).rows,
    );
    const lines = table.split('\n');
    expect(lines[0]).toMatch(/^workload\s+operation\s+metric\s+bound\s+measured\s+from field\s+status$/);
    expect(lines[2]).toMatch(
      /^consensus_round_100\s+consensus\s+p99\s+<= 50 ms\s+60 ms\s+p99_us=60,000\s+FAIL$/,
    );
  });
});

describe('assertSlo', () => {
  it('returns quietly when the SLO is met, for a result or bare fields', () => {
    expect(() => assertSlo(result('consensus_round_100', { p99_us: 10 }), consensus)).not.toThrow();
    expect(() => assertSlo({ p99_us: 10 }, consensus)).not.toThrow();
  });

  it('throws SloViolationError naming the operation, the figure, the measured value and the bound', () => {
    const error = caught(() => assertSlo({ p99_us: 63_000 }, consensus));
    expect(error).toBeInstanceOf(SloViolationError);
    expect(error).toBeInstanceOf(MabeamError);
    const e = error as SloViolationError;
    expect(e.code).toBe(SloErrorCodes.VIOLATION);
    expect(e.name).toBe('SloViolationError');
    expect(e.message).toBe('SLO violated: consensus: p99 is 63 ms, over the bound (<= 50 ms)');
    expect(e.operation).toBe('consensus');
    expect(e.workload).toBe('consensus_round_100');
    expect(e.violations).toHaveLength(1);
  });

  it('names every broken figure, throughput under its floor included', () => {
    const slo: Slo = {
      workload: 'call_roundtrip',
      operation: 'service calls',
      mean: { max: 10, unit: 'us', field: 'ns_per_op' },
      throughput: { min: 50_000, unit: 'ops/s', field: 'ns_per_op' },
    };
    const e = caught(() => assertSlo({ ns_per_op: 40_000 }, slo)) as SloViolationError;
    expect(e.message).toBe(
      'SLO violated: service calls: mean is 40 us, over the bound (<= 10 us); ' +
        'service calls: throughput is 25,000 ops/s, under the bound (>= 50,000 ops/s)',
    );
  });

  it('a figure that was not measured fails with the reason', () => {
    const e = caught(() => assertSlo({ p50_us: 1 }, consensus)) as SloViolationError;
    expect(e.message).toBe(
      'SLO violated: consensus: p99 (bound <= 50 ms) not measured: the result has no p99_ns or p99_us or p99_ms or p99_s field',
    );
    expect(e.violations[0]!.measured).toBeNull();
  });

  it('memory growth and success rate messages carry their units', () => {
    const slo: Slo = {
      workload: 'soak',
      operation: 'agent memory',
      memoryGrowth: { max: 1, unit: 'MB/h' },
      successRate: { min: 0.999, unit: 'ratio', field: 'success_rate' },
    };
    const e = caught(() =>
      assertSlo({ bytes_per_hour: 2_500_000, success_rate: 0.5 }, slo),
    ) as SloViolationError;
    expect(e.message).toContain('successRate is 0.5 ratio, under the bound (>= 0.999 ratio)');
    expect(e.message).toContain('memoryGrowth is 2.5 MB/h, over the bound (<= 1 MB/h)');
  });

  it('rejects a result for another workload and an invalid SLO', () => {
    expect(() => assertSlo(result('other', { p99_us: 1 }), consensus)).toThrow(InvalidArgumentError);
    expect(() => assertSlo({ p99_us: 1 }, { workload: 'w' } as Slo)).toThrow(/bounds none of/);
    expect(() =>
      assertSlo({ p99_us: 1 }, { workload: 'w', p99: { max: 1, unit: 'ops/s' } } as unknown as Slo),
    ).toThrow(InvalidArgumentError);
  });
});

describe('units', () => {
  it('reads units from BENCH_SPEC field names', () => {
    expect(fieldUnit('ns_per_op')).toBe('ns');
    expect(fieldUnit('us_per_trial')).toBe('us');
    expect(fieldUnit('p99_us')).toBe('us');
    expect(fieldUnit('p50_ms')).toBe('ms');
    expect(fieldUnit('wall_s')).toBe('s');
    expect(fieldUnit('seconds')).toBe('s');
    expect(fieldUnit('ops_per_s')).toBe('ops/s');
    expect(fieldUnit('rounds_per_s')).toBe('ops/s');
    expect(fieldUnit('batched_appends_per_s')).toBe('ops/s');
    expect(fieldUnit('decided_share')).toBe('ratio');
    expect(fieldUnit('success_rate')).toBe('ratio');
    expect(fieldUnit('hit_pct')).toBe('%');
    expect(fieldUnit('bytes_per_hour')).toBe('B/h');
    expect(fieldUnit('bytes_per_day')).toBe('B/day');
    expect(fieldUnit('n')).toBeNull();
    expect(fieldUnit('regret')).toBeNull();
  });

  it('converts within a dimension and between time per operation and throughput', () => {
    expect(convertUnit(1500, 'us', 'ms')).toBeCloseTo(1.5, 12);
    expect(convertUnit(2, 's', 'ns')).toBe(2e9);
    expect(convertUnit(120, 'ops/min', 'ops/s')).toBeCloseTo(2, 12);
    expect(convertUnit(0.5, 'ratio', '%')).toBe(50);
    expect(convertUnit(24, 'MB/day', 'MB/h')).toBeCloseTo(1, 12);
    expect(convertUnit(1, 'MiB/h', 'B/h')).toBe(1024 ** 2);
    expect(convertUnit(200, 'ns', 'ops/s')).toBeCloseTo(5e6, 3);
    expect(convertUnit(1000, 'ops/s', 'ms')).toBeCloseTo(1, 12);
    expect(() => convertUnit(1, 'ms', 'ratio')).toThrow(InvalidArgumentError);
  });
});

describe('budget files', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mabeam-slo-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function file(name: string, text: string): Promise<string> {
    const path = join(dir, name);
    await writeFile(path, text);
    return path;
  }

  function issuesOf(value: unknown): BudgetFileError {
    const error = caught(() => parseBudgets(value, 'b.json'));
    expect(error).toBeInstanceOf(BudgetFileError);
    return error as BudgetFileError;
  }

  it('loads a valid file', async () => {
    const path = await file('ok.json', JSON.stringify({ runs: 3, budgets: [consensus] }));
    expect(await loadBudgets(path)).toEqual({ runs: 3, budgets: [consensus] });
  });

  it('names the file, the JSON path and the reason for a unit of the wrong kind', () => {
    const e = issuesOf({ budgets: [consensus, { workload: 'w', p99: { max: 1, unit: 'ops/s' } }] });
    expect(e.code).toBe(SloErrorCodes.BUDGET_FILE);
    expect(e.file).toBe('b.json');
    expect(e.issues).toHaveLength(1);
    expect(e.issues[0]!.path).toBe('budgets[1].p99.unit');
    expect(e.issues[0]!.reason).toMatch(/ns.*us.*ms.*s/);
    expect(e.message).toMatch(/^budget file b\.json: at budgets\[1\]\.p99\.unit: /);
  });

  it('rejects unknown keys (a typo is not silently ignored)', () => {
    const e = issuesOf({
      budgets: [{ workload: 'w', p99: { max: 1, unit: 'ms' }, p999: { max: 1, unit: 'ms' } }],
    });
    expect(e.issues[0]!.path).toBe('budgets[0]');
    expect(e.issues[0]!.reason).toMatch(/p999/);
  });

  it('rejects a missing or empty budget list, and an SLO with no bound', () => {
    expect(issuesOf({}).issues[0]!.path).toBe('budgets');
    expect(issuesOf({ budgets: [] }).issues[0]!.path).toBe('budgets');
    const e = issuesOf({ budgets: [{ workload: 'w', note: 'nothing bounded' }] });
    expect(e.issues[0]).toEqual({
      path: 'budgets[0]',
      reason: 'bounds none of p99, mean, throughput, successRate, memoryGrowth',
    });
  });

  it('rejects bad numbers with their paths', () => {
    const e = issuesOf({
      budgets: [
        { workload: 'a', p99: { max: -1, unit: 'ms' } },
        { workload: 'b', successRate: { min: 1.5, unit: 'ratio' } },
        { workload: 'c', throughput: { min: '50000', unit: 'ops/s' } },
        { workload: 'd', runs: 0, mean: { max: 1, unit: 'ms' } },
      ],
    });
    expect(e.issues.map((i) => i.path)).toEqual([
      'budgets[0].p99.max',
      'budgets[1].successRate.min',
      'budgets[2].throughput.min',
      'budgets[3].runs',
    ]);
  });

  it('rejects a field whose unit cannot be told, or cannot measure the metric', () => {
    const e = issuesOf({
      budgets: [
        { workload: 'a', p99: { max: 1, unit: 'ms', field: 'tail' } },
        { workload: 'b', p99: { max: 1, unit: 'ms', field: 'ops_per_s' } },
        { workload: 'c', successRate: { min: 0.5, unit: 'ratio', field: 'x', fieldUnit: 'ms' } },
      ],
    });
    expect(e.issues).toEqual([
      {
        path: 'budgets[0].p99.field',
        reason: 'cannot tell the unit of field "tail" from its name: give "fieldUnit"',
      },
      { path: 'budgets[1].p99.field', reason: 'field "ops_per_s" is in ops/s, which cannot measure p99' },
      {
        path: 'budgets[2].successRate.fieldUnit',
        reason: 'field "x" is in ms, which cannot measure successRate',
      },
    ]);
  });

  it('a file that is not JSON names the file and the parse error', async () => {
    const path = await file('bad.json', '{ "budgets": [ ');
    const error = await loadBudgets(path).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BudgetFileError);
    expect((error as BudgetFileError).file).toBe(path);
    expect((error as BudgetFileError).issues[0]!.path).toBe('(root)');
    expect((error as BudgetFileError).message).toContain(`budget file ${path}: at (root): not valid JSON`);
  });

  it('a missing file names the file', async () => {
    const path = join(dir, 'absent.json');
    await expect(loadBudgets(path)).rejects.toThrow(`budget file ${path}: at (file): cannot read`);
  });

  it('checkSlos rejects malformed budgets with BudgetFileError', () => {
    expect(() => checkSlos([], { budgets: [{ workload: '' }] } as unknown as Budgets)).toThrow(
      BudgetFileError,
    );
  });

  it('the repository CI budget file is valid, and bounds every roadmap SLO', async () => {
    const budgets = await loadBudgets(new URL('../../budgets/ci.json', import.meta.url).pathname);
    const bounds = budgets.budgets.flatMap((b) =>
      (['p99', 'mean', 'throughput', 'successRate', 'memoryGrowth'] as const)
        .filter((m) => b[m] !== undefined)
        .map((m) => `${lineName(b.workload, b.where)} ${m} ${b[m]?.unit}`),
    );
    expect(bounds).toEqual(
      expect.arrayContaining([
        'registry_lookup p99 ms',
        'coordination_pair{via=call} p99 ms',
        'coordination_pair{via=barrier} p99 ms',
        'consensus_round_100 p99 ms',
        'variable_broadcast_100 p99 ms',
        'variable_sync_1000 p99 ms',
        'cast_throughput throughput ops/s',
        'consensus_round_100_faults throughput ops/s',
        'call_roundtrip throughput ops/s',
        'memory_growth memoryGrowth MB/h',
        'memory_growth memoryGrowth MB/day',
      ]),
    );
  });
});

describe('workloads with several lines', () => {
  const lines: SloResult[] = [
    { workload: 'tune_overhead', labels: { sampler: 'random' }, fields: { us_per_trial: 30 } },
    { workload: 'tune_overhead', labels: { sampler: 'tpe' }, fields: { us_per_trial: 400 } },
  ];
  const bound = { max: 100, unit: 'us', field: 'us_per_trial' } as const;

  it('a budget with "where" bounds the lines it selects, one row each with their labels', () => {
    const report = checkSlos(lines, [{ workload: 'tune_overhead', where: { sampler: 'tpe' }, mean: bound }]);
    expect(report.rows).toHaveLength(1);
    expect(report.rows[0]).toMatchObject({ labels: { sampler: 'tpe' }, measured: 400, ok: false });
    expect(formatSloTable(report.rows)).toMatch(/^tune_overhead\{sampler=tpe\}\s+tune_overhead\s+mean/m);
  });

  it('without "where" a budget bounds every line', () => {
    const report = checkSlos(lines, [{ workload: 'tune_overhead', mean: bound }]);
    expect(report.rows.map((r) => [r.labels?.sampler, r.ok])).toEqual([
      ['random', true],
      ['tpe', false],
    ]);
  });

  it('a "where" no line matches is not measured, listing the lines there are', () => {
    const report = checkSlos(lines, [{ workload: 'tune_overhead', where: { sampler: 'grid' }, mean: bound }]);
    expect(report.ok).toBe(false);
    expect(report.rows[0]?.detail).toBe(
      'not measured: no line of the workload has sampler=grid (its lines: sampler=random; sampler=tpe)',
    );
  });

  it('a failed workload fails every budget on it, whatever its "where"', () => {
    const report = checkSlos(
      [{ workload: 'tune_overhead', fields: null, error: 'boom' }],
      [{ workload: 'tune_overhead', where: { sampler: 'tpe' }, mean: bound }],
    );
    expect(report.rows[0]?.detail).toBe('not measured: the workload failed (boom)');
    expect(report.rows[0]?.labels).toBeUndefined();
  });

  it('a line printed twice counts once (the first); a line without labels has no labels in its row', () => {
    const report = checkSlos(
      [...lines, { workload: 'tune_overhead', labels: { sampler: 'tpe' }, fields: { us_per_trial: 1 } }],
      [{ workload: 'tune_overhead', where: { sampler: 'tpe' }, mean: bound }],
    );
    expect(report.rows.map((r) => r.measured)).toEqual([400]);
    const plain = checkSlos([result('w', { p99_us: 1 })], [{ workload: 'w', p99: { max: 1, unit: 'ms' } }]);
    expect('labels' in (plain.rows[0] as object)).toBe(false);
  });

  it('assertSlo reads labels from a result or from the string fields of bare fields', () => {
    const slo: Slo = { workload: 'tune_overhead', where: { sampler: 'tpe' }, mean: bound };
    expect(() => assertSlo({ sampler: 'tpe', us_per_trial: 50 }, slo)).not.toThrow();
    expect(() => assertSlo({ sampler: 'tpe', us_per_trial: 500 }, slo)).toThrow(SloViolationError);
    const wrong = caught(() => assertSlo(lines[0] as SloResult, slo));
    expect(wrong).toBeInstanceOf(InvalidArgumentError);
    expect((wrong as Error).message).toContain(
      'is the line tune_overhead{sampler=random}, the SLO bounds the lines with sampler=tpe',
    );
  });

  it('rejects a "where" that names no label, or a label value that is not a string', () => {
    expect(() => parseBudgets({ budgets: [{ workload: 'w', where: {}, mean: bound }] })).toThrow(
      'at budgets[0].where: names no label',
    );
    expect(() => parseBudgets({ budgets: [{ workload: 'w', where: { sampler: 1 }, mean: bound }] })).toThrow(
      /at budgets\[0\]\.where\.sampler: /,
    );
  });

  it('label helpers: lineName, formatLabels, labelKey (sorted), labelsMatch', () => {
    expect(lineName('w')).toBe('w');
    expect(lineName('w', {})).toBe('w');
    expect(lineName('w', { b: '2', a: '1' })).toBe('w{b=2,a=1}');
    expect(formatLabels({ b: '2', a: '1' })).toBe('b=2,a=1');
    expect(labelKey({ b: '2', a: '1' })).toBe('a=1,b=2');
    expect(labelsMatch({ a: '1' }, { a: '1', b: '2' })).toBe(true);
    expect(labelsMatch({ a: '1' }, { a: '2' })).toBe(false);
    expect(labelsMatch({ a: '1' }, undefined)).toBe(false);
  });
});

describe('SloErrorCodes', () => {
  it('are E_ plus upper case and distinct', () => {
    const codes = Object.values(SloErrorCodes);
    expect(new Set(codes).size).toBe(codes.length);
    for (const c of codes) expect(c).toMatch(/^E_[A-Z][A-Z0-9_]*$/);
  });
});
