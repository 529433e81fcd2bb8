/**
 * Workloads that report several lines (BENCH_SPEC's tune_overhead: one per sampler, told apart by
 * the string field `sampler`), end to end against a fake bench suite (canned figures, nothing
 * timed): the runner keeps every line with its labels, the table and JSON lines show them, a budget
 * selects a line with `where` (or bounds every line without it), and the HTML report names each
 * line.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCodes, main } from '../../src/cli/main.js';
import { medianResults, parseResultLine, runBenchRuns, runBenchScript } from '../../src/perf/runner.js';

let dir: string;
let script: string;

/**
 * The fake suite: `tuned` prints one line per sampler; `plain` one line without labels; `crash`
 * fails. The figures of run k (counted in a file) are the canned ones plus k, so runs differ.
 */
function fakeSuite(counter: string): string {
  return `
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
const k = existsSync(${JSON.stringify(counter)}) ? Number(readFileSync(${JSON.stringify(counter)}, 'utf8')) : 0;
writeFileSync(${JSON.stringify(counter)}, String(k + 1));
const figures = {
  tuned: [
    { sampler: 'random', us_per_trial: 30 + k, us_per_trial_last100: 31 + k },
    { sampler: 'tpe', us_per_trial: 400 + k, us_per_trial_last100: 900 + k },
  ],
  plain: [{ p99_us: 120 + k, n: 2000 }],
};
const argv = process.argv.slice(2);
const at = argv.indexOf('--only');
const only = at >= 0 ? argv[at + 1].split(',') : Object.keys(figures);
let failed = false;
for (const name of only) {
  if (name === 'crash') {
    process.stderr.write('bench: crash FAILED: boom\\n');
    failed = true;
    continue;
  }
  for (const line of figures[name]) process.stdout.write(JSON.stringify({ workload: name, ...line }) + '\\n');
}
process.exitCode = failed ? 1 : 0;
`;
}

interface Run {
  code: number;
  out: string;
  err: string;
}

async function cli(...argv: string[]): Promise<Run> {
  let out = '';
  let err = '';
  const code = await main(['bench', '--bench-script', script, ...argv], {
    stdout: (t) => {
      out += t;
    },
    stderr: (t) => {
      err += t;
    },
  });
  return { code, out, err };
}

async function budgetFile(name: string, value: unknown): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, JSON.stringify(value));
  return path;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mabeam-lines-'));
  script = join(dir, 'fake-bench.mjs');
  await writeFile(script, fakeSuite(join(dir, 'counter')));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('the runner and labelled lines', () => {
  it('parses the string fields of a line as its labels', () => {
    expect(parseResultLine('{"workload":"tuned","sampler":"tpe","us_per_trial":4,"ok":true}')).toEqual({
      workload: 'tuned',
      labels: { sampler: 'tpe' },
      fields: { us_per_trial: 4 },
    });
    expect(parseResultLine('{"workload":"plain","p99_us":1}')).toEqual({
      workload: 'plain',
      labels: {},
      fields: { p99_us: 1 },
    });
  });

  it('returns one result per line, with its labels; a line without labels has none', async () => {
    const results = await runBenchScript({ script, workloads: ['tuned', 'plain', 'crash'] });
    expect(results.map((r) => [r.workload, r.labels, r.fields === null])).toEqual([
      ['tuned', { sampler: 'random' }, false],
      ['tuned', { sampler: 'tpe' }, false],
      ['plain', undefined, false],
      ['crash', undefined, true],
    ]);
    expect('labels' in (results[2] as object)).toBe(false);
  });

  it('runBenchRuns runs the suite once per run and takes medians per line, keyed by the labels', async () => {
    const started: string[] = [];
    const { runs, medians } = await runBenchRuns({
      script,
      workloads: ['tuned', 'plain'],
      runs: 3,
      onRun: (i, n) => started.push(`${i}/${n}`),
    });
    expect(started).toEqual(['1/3', '2/3', '3/3']);
    expect(runs).toHaveLength(3);
    const first = runs[0]?.find((r) => r.labels?.sampler === 'tpe')?.fields?.us_per_trial as number;
    // Three consecutive invocations: figures first, first + 1, first + 2; the median is first + 1.
    expect(runs.map((run) => run.find((r) => r.labels?.sampler === 'tpe')?.fields?.us_per_trial)).toEqual([
      first,
      first + 1,
      first + 2,
    ]);
    expect(medians).toEqual([
      {
        workload: 'tuned',
        labels: { sampler: 'random' },
        runs: 3,
        fields: { us_per_trial: first - 370 + 1, us_per_trial_last100: first - 369 + 1 },
        error: null,
      },
      {
        workload: 'tuned',
        labels: { sampler: 'tpe' },
        runs: 3,
        fields: { us_per_trial: first + 1, us_per_trial_last100: first + 501 },
        error: null,
      },
      { workload: 'plain', runs: 3, fields: { p99_us: first - 279, n: 2000 }, error: null },
    ]);
  });

  it('medianResults fails a workload that failed in any run, naming the run', () => {
    const ok = { workload: 'w', runs: 1, fields: { p99_us: 1 }, error: null };
    const failed = { workload: 'w', runs: 1, fields: null, error: 'boom' };
    expect(medianResults([[ok], [failed], [ok]])).toEqual([
      { workload: 'w', runs: 3, fields: null, error: 'run 2 of 3: boom' },
    ]);
  });
});

describe('mabeam bench with labelled lines', () => {
  it('--json prints each line with its labels; the table names each line', async () => {
    const json = await cli('--json', '--only', 'tuned');
    expect(json.code).toBe(ExitCodes.OK);
    const lines = json.out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => [l.workload, l.sampler])).toEqual([
      ['tuned', 'random'],
      ['tuned', 'tpe'],
    ]);
    expect(Object.keys(lines[0] as object)).toEqual([
      'workload',
      'sampler',
      'us_per_trial',
      'us_per_trial_last100',
    ]);
    const table = await cli('--only', 'tuned,plain');
    expect(table.out).toMatch(/^tuned\{sampler=random\}\s+us_per_trial\s+\d+$/m);
    expect(table.out).toMatch(/^tuned\{sampler=tpe\}\s+us_per_trial\s+\d+$/m);
    expect(table.out).toMatch(/^plain\s+p99_us\s+\d+$/m);
  });

  it('a budget with "where" bounds the line it selects', async () => {
    const file = await budgetFile('where.json', {
      budgets: [
        {
          workload: 'tuned',
          operation: 'tpe overhead',
          where: { sampler: 'tpe' },
          mean: { max: 300, unit: 'us', field: 'us_per_trial' },
        },
        {
          workload: 'tuned',
          operation: 'random overhead',
          where: { sampler: 'random' },
          mean: { max: 300, unit: 'us', field: 'us_per_trial' },
        },
      ],
    });
    const r = await cli('--gate', file);
    expect(r.code).toBe(ExitCodes.VIOLATION);
    expect(r.out).toMatch(
      /^tuned\{sampler=tpe\}\s+tpe overhead\s+mean\s+<= 300 us\s+\d+ us\s+us_per_trial=\d+\s+FAIL$/m,
    );
    expect(r.out).toMatch(
      /^tuned\{sampler=random\}\s+random overhead\s+mean\s+<= 300 us\s+\d+ us\s+us_per_trial=\d+\s+ok$/m,
    );
    expect(r.out).toContain('gate FAILED: 1 of 2 budgets violated');
    expect(r.out).toMatch(/^ {2}tuned\{sampler=tpe\} \(tpe overhead\): mean is \d+ us, over the bound/m);
  });

  it('without "where" a budget bounds every line; a "where" that matches no line is not measured', async () => {
    const file = await budgetFile('every.json', {
      budgets: [
        { workload: 'tuned', mean: { max: 1, unit: 's', field: 'us_per_trial' } },
        {
          workload: 'tuned',
          where: { sampler: 'cmaes' },
          mean: { max: 1, unit: 's', field: 'us_per_trial' },
        },
      ],
    });
    const r = await cli('--gate', file, '--json');
    expect(r.code).toBe(ExitCodes.VIOLATION);
    const rows = r.out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(rows.map((row) => [row.labels, row.ok])).toEqual([
      [{ sampler: 'random' }, true],
      [{ sampler: 'tpe' }, true],
      [undefined, false],
    ]);
    expect(rows[2]?.detail).toBe(
      'not measured: no line of the workload has sampler=cmaes (its lines: sampler=random; sampler=tpe)',
    );
  });

  it('a budget file whose "where" names no label is bad input', async () => {
    const file = await budgetFile('empty-where.json', {
      budgets: [{ workload: 'tuned', where: {}, mean: { max: 1, unit: 's', field: 'us_per_trial' } }],
    });
    const r = await cli('--gate', file);
    expect(r.code).toBe(ExitCodes.BAD_INPUT);
    expect(r.err).toContain('at budgets[0].where: names no label');
  });

  it('the HTML report names each line and carries its labels', async () => {
    const out = join(dir, 'lines.html');
    const r = await cli('--only', 'tuned,plain', '--report', out);
    expect(r.code).toBe(ExitCodes.OK);
    const html = await readFile(out, 'utf8');
    expect(html).toContain('2 workloads (3 lines), 0 failed');
    expect(html).toContain('<tr data-workload="tuned" data-labels="sampler=tpe">');
    expect(html).toContain('<td>tuned{sampler=tpe}</td>');
    const latency = /<svg\b[^>]*data-chart="workload-latency"[^>]*>[\s\S]*?<\/svg>/.exec(html)?.[0] ?? '';
    expect(latency.match(/<rect\b[^>]*data-labels="sampler=random"/g) ?? []).toHaveLength(2);
  });
});
