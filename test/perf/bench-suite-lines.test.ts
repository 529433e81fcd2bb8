/**
 * The bench suite's side of workloads that report several lines (bench/harness.ts, bench/report.ts,
 * bench/main.ts): a run's lines are checked, runs are combined line by line (by their labels), and
 * each line prints as its own JSON line with its labels. The last test runs the real suite's
 * coordination_pair (two lines, `via`) in a child process, and asserts only on the lines' shape.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { type Fields, labelsOf, lineKey, linesOf, WorkloadLinesError } from '../../bench/harness.js';
import { jsonLine, lineName, medianFields, medianLines, table } from '../../bench/report.js';

describe('a workload run: one line or several', () => {
  it('takes one line as is, or a list of lines with labels of their own', () => {
    expect(linesOf('w', { p99_us: 1 })).toEqual([{ p99_us: 1 }]);
    const lines = [
      { sampler: 'random', us_per_trial: 3 },
      { sampler: 'tpe', us_per_trial: 40 },
    ];
    expect(linesOf('w', lines)).toEqual(lines);
  });

  it('refuses no line, several lines without labels, and two lines with the same labels', () => {
    expect(() => linesOf('w', [])).toThrow(WorkloadLinesError);
    expect(() => linesOf('w', [])).toThrow('w: reported no line');
    expect(() => linesOf('w', [{ a: 1 }, { a: 2 }])).toThrow('some without a label');
    expect(() =>
      linesOf('w', [
        { sampler: 'tpe', a: 1 },
        { sampler: 'tpe', a: 2 },
      ]),
    ).toThrow('w: reported two lines labelled sampler=tpe');
  });

  it('a line is known by its labels, whatever their order', () => {
    expect(labelsOf({ sampler: 'tpe', n: 3, seed: '1' })).toEqual({ sampler: 'tpe', seed: '1' });
    expect(lineKey({ seed: '1', sampler: 'tpe', n: 3 })).toBe(lineKey({ sampler: 'tpe', seed: '1', n: 4 }));
    expect(lineKey({ n: 3 })).toBe('');
  });
});

describe('combining runs and printing lines', () => {
  it('takes the median of each figure per line, keeping the labels', () => {
    const runs: Fields[][] = [
      [
        { sampler: 'random', us: 3 },
        { sampler: 'tpe', us: 40 },
      ],
      [
        { sampler: 'tpe', us: 44 },
        { sampler: 'random', us: 5 },
      ],
      [
        { sampler: 'random', us: 4 },
        { sampler: 'tpe', us: 42 },
      ],
    ];
    expect(medianLines(runs)).toEqual([
      { sampler: 'random', us: 4 },
      { sampler: 'tpe', us: 42 },
    ]);
    expect(medianFields([{ a: 1 }, { a: 2 }])).toEqual({ a: 1.5 });
  });

  it('prints each line with its labels as they are, figures rounded', () => {
    expect(jsonLine('tune_overhead', { sampler: 'tpe', us_per_trial: 41.23456 })).toBe(
      '{"workload":"tune_overhead","sampler":"tpe","us_per_trial":41.23}',
    );
    expect(jsonLine('call_roundtrip', { ns_per_op: 183.21 })).toBe(
      '{"workload":"call_roundtrip","ns_per_op":183.2}',
    );
    expect(lineName('w', { sampler: 'tpe', n: 1 })).toBe('w{sampler=tpe}');
    expect(lineName('w', { n: 1 })).toBe('w');
  });

  it('tabulates each line under its name, labels left out of the figures', () => {
    const text = table([
      {
        workload: 'tune_overhead',
        runs: 1,
        lines: [
          { sampler: 'random', us_per_trial: 3, us_per_trial_last100: 4 },
          { sampler: 'tpe', us_per_trial: 40, us_per_trial_last100: 90 },
        ],
        error: null,
      },
      { workload: 'crash', runs: 1, lines: null, error: 'boom' },
    ]);
    expect(text).toMatch(/^tune_overhead\{sampler=random\}\s+us_per_trial\s+3$/m);
    expect(text).toMatch(/^\s+us_per_trial_last100\s+4$/m);
    expect(text).toMatch(/^tune_overhead\{sampler=tpe\}\s+us_per_trial\s+40$/m);
    expect(text).toMatch(/^crash\s+FAILED\s+boom$/m);
    expect(text).not.toMatch(/sampler\s+(random|tpe)/);
  });
});

describe('the real suite, a workload of two lines', () => {
  it('coordination_pair prints one JSON line per way of coordinating, through a child process', async () => {
    const main = fileURLToPath(new URL('../../bench/main.ts', import.meta.url));
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', '--expose-gc', main, '--json', '--only', 'coordination_pair'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (t: string) => {
      out += t;
    });
    child.stderr.setEncoding('utf8').on('data', (t: string) => {
      err += t;
    });
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code, err).toBe(0);
    const lines = out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => [l.workload, l.via])).toEqual([
      ['coordination_pair', 'call'],
      ['coordination_pair', 'barrier'],
    ]);
    for (const l of lines) {
      expect(Object.keys(l)).toEqual(['workload', 'via', 'p50_us', 'p99_us', 'mean_us', 'n', 'ops_per_s']);
      expect(l.p50_us as number).toBeGreaterThan(0);
      expect(l.p50_us as number).toBeLessThanOrEqual(l.p99_us as number);
    }
    expect(lines.map((l) => l.n)).toEqual([10_000, 2_000]);
  }, 120_000);
});
