/**
 * `mabeam bench --baseline save|compare file [--fail-on-regression]` against a fake bench suite
 * whose figures are canned, scaled by a file the test writes (to play a slower or faster build),
 * with a small deterministic spread between runs. Nothing is timed.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCodes, main } from '../../src/cli/main.js';
import { loadBaseline, saveBaseline } from '../../src/perf/baseline.js';
import type { SuiteResult } from '../../src/perf/harness.js';

let dir: string;
let script: string;
let scaleFile: string;
let saved: string;

/**
 * Figures times `time` (latencies) or divided by it (rates), from the scale file; invocation k
 * (counted in a file) adds 1% * (k mod 3), the spread between runs.
 */
function fakeSuite(counter: string, scale: string): string {
  return `
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
const k = existsSync(${JSON.stringify(counter)}) ? Number(readFileSync(${JSON.stringify(counter)}, 'utf8')) : 0;
writeFileSync(${JSON.stringify(counter)}, String(k + 1));
const { time } = JSON.parse(readFileSync(${JSON.stringify(scale)}, 'utf8'));
const noise = 1 + 0.01 * (k % 3);
const figures = {
  quick_calls: [{ ns_per_op: 250 * time * noise }],
  quick_rounds: [{ rounds_per_s: (900 / time) * noise, decided_share: 1, n: 2000 }],
  tuned: [
    { sampler: 'random', us_per_trial: 30 * time * noise },
    { sampler: 'tpe', us_per_trial: 400 * time * noise },
  ],
  growth: [{ bytes_per_hour: 5 * noise }],
};
const argv = process.argv.slice(2);
const at = argv.indexOf('--only');
const only = at >= 0 ? argv[at + 1].split(',') : Object.keys(figures);
for (const name of only) {
  for (const line of figures[name]) process.stdout.write(JSON.stringify({ workload: name, ...line }) + '\\n');
}
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

async function scale(time: number): Promise<void> {
  await writeFile(scaleFile, JSON.stringify({ time }));
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mabeam-baseline-'));
  script = join(dir, 'fake-bench.mjs');
  scaleFile = join(dir, 'scale.json');
  saved = join(dir, 'baselines', 'bench.json');
  await writeFile(script, fakeSuite(join(dir, 'counter'), scaleFile));
  await scale(1);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const FIGURES = [
  'quick_calls.ns_per_op',
  'quick_rounds.rounds_per_s',
  'quick_rounds.decided_share',
  'tuned{sampler=random}.us_per_trial',
  'tuned{sampler=tpe}.us_per_trial',
];

describe('mabeam bench --baseline', () => {
  it('save: runs the suite --runs times (default 3) and saves every figure with a direction, one run each', async () => {
    await scale(1);
    const r = await cli('--baseline', 'save', saved);
    expect(r.code, r.err).toBe(ExitCodes.OK);
    expect(r.err).toContain('run 1 of 3');
    expect(r.err).toContain('run 3 of 3');
    expect(r.err).toContain(`baseline saved to ${saved}: 5 figures, 3 runs`);
    // The usual table of the medians.
    expect(r.out).toMatch(/^quick_calls\s+ns_per_op\s+252\.5$/m);
    const b = await loadBaseline(saved);
    expect(b.suite).toBe('mabeam-bench');
    expect(b.operations.map((o) => o.name)).toEqual(FIGURES);
    for (const op of b.operations) expect(op.runs).toHaveLength(3);
    // Values as reported: 250, 252.5, 255 in some order.
    const calls = b.operations[0]?.runs.map((run) => run.samples[0]).sort();
    expect(calls).toEqual([250, 252.5, 255]);
  });

  it('compare: the same build shows no significant change, and says which test it used', async () => {
    await scale(1);
    const r = await cli('--baseline', 'compare', saved, '--fail-on-regression');
    expect(r.code, r.err).toBe(ExitCodes.OK);
    for (const f of FIGURES) {
      expect(r.out).toMatch(
        new RegExp(`^${f.replace(/[{}.]/g, '\\$&')}\\s+(lower|higher)\\s.*no significant change$`, 'm'),
      );
    }
    expect(r.out).toContain('test: per figure, the ratio of the medians of the runs');
    expect(r.out).toContain('95% percentile-bootstrap confidence interval');
    expect(r.out).toContain(
      'not compared (no direction known from the name, or a growth rate): quick_rounds.n, growth.bytes_per_hour',
    );
    expect(r.out).toContain('0 significant regressions, 0 significant improvements');
  });

  it('compare: a slower build is a regression for latencies and rates alike; exit 1 only with --fail-on-regression', async () => {
    await scale(1.5);
    const r = await cli('--baseline', 'compare', saved);
    expect(r.code, r.err).toBe(ExitCodes.OK);
    expect(r.out).toMatch(
      /^quick_calls\.ns_per_op\s+lower\s+252\.5\s+378\.8\s+3\/3\s+1\.500x \[[\d.]+, [\d.]+\]\s+REGRESSION$/m,
    );
    // A rate that fell: its cost ratio (baseline / current) is 1.5, a regression.
    expect(r.out).toMatch(/^quick_rounds\.rounds_per_s\s+higher\s+909\s+606\s+3\/3\s+1\.500x .*REGRESSION$/m);
    expect(r.out).toMatch(/^quick_rounds\.decided_share\s+higher\s.*no significant change$/m);
    expect(r.out).toContain('4 significant regressions (quick_calls.ns_per_op, quick_rounds.rounds_per_s,');
    const failing = await cli('--baseline', 'compare', saved, '--fail-on-regression');
    expect(failing.code).toBe(ExitCodes.VIOLATION);
  });

  it('compare: a faster build is an improvement, never a failure', async () => {
    await scale(0.5);
    const r = await cli(
      '--baseline',
      'compare',
      saved,
      '--fail-on-regression',
      '--only',
      'quick_calls,quick_rounds',
    );
    expect(r.code, r.err).toBe(ExitCodes.OK);
    expect(r.out).toMatch(/^quick_calls\.ns_per_op\s.*0\.500x .*IMPROVEMENT$/m);
    expect(r.out).toMatch(/^quick_rounds\.rounds_per_s\s.*0\.500x .*IMPROVEMENT$/m);
    // Figures not run this time are listed as such.
    expect(r.out).toMatch(/^tuned\{sampler=tpe\}\.us_per_trial\s.*not run$/m);
  });

  it('compare --json: the medians, then one comparison line per figure; --report charts the ratios', async () => {
    await scale(1.5);
    const report = join(dir, 'compare.html');
    const r = await cli(
      '--baseline',
      'compare',
      saved,
      '--json',
      '--only',
      'quick_calls',
      '--report',
      report,
    );
    expect(r.code, r.err).toBe(ExitCodes.OK);
    const lines = r.out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines[0]).toEqual({ workload: 'quick_calls', ns_per_op: 378.75 });
    const calls = lines.find((l) => l.figure === 'quick_calls.ns_per_op');
    expect(calls).toMatchObject({
      type: 'comparison',
      field: 'ns_per_op',
      better: 'lower',
      baseline_median: 252.5,
      current_median: 378.75,
      baseline_runs: 3,
      current_runs: 3,
      status: 'compared',
      verdict: 'regression',
      method: 'runs-bootstrap',
    });
    expect(calls?.cost_ratio).toBeCloseTo(1.5, 10);
    expect(lines.filter((l) => l.type === 'comparison')).toHaveLength(5);
    const html = await readFile(report, 'utf8');
    const chart = /<svg\b[^>]*data-chart="baseline-comparison"[^>]*>[\s\S]*?<\/svg>/.exec(html)?.[0] ?? '';
    expect(chart.match(/<rect\b[^>]*data-verdict="regression"/g) ?? []).toHaveLength(1);
  });

  it('--runs 1 a side uses the single-run test with its noise floor', async () => {
    await scale(1);
    const one = join(dir, 'one-run.json');
    expect((await cli('--baseline', 'save', one, '--runs', '1', '--only', 'quick_calls')).code).toBe(
      ExitCodes.OK,
    );
    await scale(1.1);
    const r = await cli('--baseline', 'compare', one, '--runs', '1', '--only', 'quick_calls', '--json');
    const calls = r.out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l.figure === 'quick_calls.ns_per_op');
    // 10% slower in one run each: under the 15% noise floor, so not flagged.
    expect(calls).toMatchObject({ method: 'single-run-with-noise-floor', verdict: 'no significant change' });
  });

  it('bad input exits 2 before anything runs', async () => {
    const counter = join(dir, 'counter');
    const before = await readFile(counter, 'utf8');
    const cases: [string[], string][] = [
      [['--baseline', 'save'], '--baseline takes "save <file>" or "compare <file>", got "save"'],
      [['--baseline', 'keep', 'x.json'], 'got "keep x.json"'],
      [['--fail-on-regression'], '--fail-on-regression needs --baseline compare <file>'],
      [
        ['--baseline', 'save', saved, '--fail-on-regression'],
        '--fail-on-regression needs --baseline compare',
      ],
      [['--baseline', 'save', saved, '--gate', 'b.json'], '--baseline cannot be used with --gate'],
      [
        ['--baseline', 'compare', join(dir, 'absent.json')],
        `cannot read baseline ${join(dir, 'absent.json')}`,
      ],
      [['--baseline', 'save', dir], `cannot write the baseline ${dir}: it is a directory`],
    ];
    for (const [args, message] of cases) {
      const r = await cli(...args);
      expect(r.code, args.join(' ')).toBe(ExitCodes.BAD_INPUT);
      expect(r.err).toContain(message);
    }
    expect(await readFile(counter, 'utf8')).toBe(before);
  });

  it('compare refuses a baseline of another suite (a harness suite), naming the file', async () => {
    const harness: SuiteResult = {
      suite: 'registry',
      startedAt: new Date(0).toISOString(),
      durationMs: 1,
      environment: {
        node: 'v20',
        v8: '11',
        platform: 'linux',
        arch: 'x64',
        cpus: 2,
        cpuModel: 'cpu',
        gcExposed: false,
      },
      operations: [],
    };
    const other = join(dir, 'harness.json');
    await saveBaseline(other, harness);
    const r = await cli('--baseline', 'compare', other);
    expect(r.code).toBe(ExitCodes.BAD_INPUT);
    expect(r.err).toContain(
      `baseline ${other} is invalid at suite: is "registry", not a bench-suite baseline`,
    );
  });
});
