/**
 * `mabeam bench` and its gate, end to end against a fake bench suite: a tiny script with the
 * suite's command line (`--json --only a,b --runs n`) that prints canned figures at once, so no
 * real code is timed and nothing sleeps. Exit statuses: 0 ok, 1 violation, 2 bad input.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCodes, main } from '../../src/cli/main.js';
import { runBenchScript } from '../../src/perf/runner.js';

let dir: string;
let script: string;
let log: string;

/** The fake suite: canned figures per workload; `crash` fails; other names are rejected (exit 2). */
function fakeSuite(logPath: string): string {
  return `
import { appendFileSync } from 'node:fs';
const figures = {
  quick_latency: { p50_us: 40, p99_us: 120, mean_us: 50, n: 2000 },
  quick_calls: { ns_per_op: 250 },
  quick_rounds: { rounds_per_s: 900, decided_share: 1 },
};
const argv = process.argv.slice(2);
appendFileSync(${JSON.stringify(logPath)}, JSON.stringify(argv) + '\\n');
const at = argv.indexOf('--only');
const only = at >= 0 ? argv[at + 1].split(',') : [...Object.keys(figures)];
const unknown = only.filter((n) => !(n in figures) && n !== 'crash' && n !== 'hang');
if (unknown.length > 0) {
  process.stderr.write('bench: unknown workload: ' + unknown.join(', ') + '\\n');
  process.exit(2);
}
let failed = false;
for (const name of only) {
  process.stderr.write('bench: ' + name + '...\\n');
  if (name === 'hang') {
    // Never reports and never exits on its own: only the runner's timeout ends it.
    setInterval(() => {}, 1000);
    continue;
  }
  if (name === 'crash') {
    process.stderr.write('bench: crash FAILED: boom\\n');
    failed = true;
    continue;
  }
  process.stdout.write(JSON.stringify({ workload: name, ...figures[name] }) + '\\n');
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
  await writeFile(path, typeof value === 'string' ? value : JSON.stringify(value));
  return path;
}

async function suiteCalls(): Promise<string[][]> {
  const text = await readFile(log, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as string[]);
}

const generous = {
  budgets: [
    { workload: 'quick_latency', operation: 'variable sync', p99: { max: 5, unit: 'ms' } },
    {
      workload: 'quick_calls',
      operation: 'service calls',
      throughput: { min: 50_000, unit: 'ops/s', field: 'ns_per_op' },
    },
    {
      workload: 'quick_rounds',
      operation: 'consensus',
      throughput: { min: 100, unit: 'ops/s', field: 'rounds_per_s' },
      successRate: { min: 0.99, unit: 'ratio', field: 'decided_share' },
    },
  ],
};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mabeam-gate-'));
  log = join(dir, 'calls.log');
  script = join(dir, 'fake-bench.mjs');
  await writeFile(script, fakeSuite(log));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('mabeam bench --gate', () => {
  it('exits 0 and prints every budget with its measured value when all are met', async () => {
    const file = await budgetFile('ok.json', generous);
    const r = await cli('--gate', file);
    expect(r.code).toBe(ExitCodes.OK);
    const lines = r.out.split('\n');
    expect(lines[0]).toBe(`gate ${file}: 4 budgets over 3 workloads, measured: median of 1 run`);
    expect(r.out).toMatch(/^quick_latency\s+variable sync\s+p99\s+<= 5 ms\s+0\.12 ms\s+p99_us=120\s+ok$/m);
    expect(r.out).toMatch(
      /^quick_calls\s+service calls\s+throughput\s+>= 50,000 ops\/s\s+4,000,000 ops\/s\s+ns_per_op=250\s+ok$/m,
    );
    expect(r.out).toMatch(
      /^quick_rounds\s+consensus\s+successRate\s+>= 0\.99 ratio\s+1 ratio\s+decided_share=1\s+ok$/m,
    );
    expect(r.out).toContain('gate passed: all 4 budgets met');
    // The suite's progress goes to stderr, never into the table.
    expect(r.err).toContain('bench: quick_latency...');
    expect(r.out).not.toContain('bench:');
  });

  it('exits 1 with the violation named when a figure breaks its bound', async () => {
    const file = await budgetFile('tight.json', {
      budgets: [
        { workload: 'quick_latency', operation: 'consensus', p99: { max: 100, unit: 'us' } },
        { workload: 'quick_calls', mean: { max: 1, unit: 'us', field: 'ns_per_op' } },
      ],
    });
    const r = await cli('--gate', file);
    expect(r.code).toBe(ExitCodes.VIOLATION);
    expect(r.out).toMatch(/^quick_latency\s+consensus\s+p99\s+<= 100 us\s+120 us\s+p99_us=120\s+FAIL$/m);
    expect(r.out).toMatch(/^quick_calls\s+quick_calls\s+mean\s+<= 1 us\s+0\.25 us\s+ns_per_op=250\s+ok$/m);
    expect(r.out).toContain('gate FAILED: 1 of 2 budgets violated');
    expect(r.out).toContain('  quick_latency (consensus): p99 is 120 us, over the bound (<= 100 us)');
  });

  it('a workload that fails is not measured, which fails the gate', async () => {
    const file = await budgetFile('crash.json', {
      budgets: [
        { workload: 'crash', operation: 'agent operations', throughput: { min: 1, unit: 'ops/s' } },
        { workload: 'quick_latency', p99: { max: 1, unit: 's' } },
      ],
    });
    const r = await cli('--gate', file);
    expect(r.code).toBe(ExitCodes.VIOLATION);
    expect(r.out).toMatch(/^crash\s+agent operations\s+throughput\s+>= 1 ops\/s\s+not measured\s+-\s+FAIL$/m);
    expect(r.out).toContain('gate FAILED: 1 of 2 budgets violated');
    expect(r.out).toContain(
      'crash (agent operations): throughput (bound >= 1 ops/s) not measured: the workload failed',
    );
    expect(r.err).toContain('crash FAILED: boom');
  });

  it('--json prints one JSON line per budget', async () => {
    const file = await budgetFile('json.json', generous);
    const r = await cli('--gate', file, '--json');
    expect(r.code).toBe(ExitCodes.OK);
    const rows = r.out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(rows).toHaveLength(4);
    expect(rows[0]).toEqual({
      workload: 'quick_latency',
      operation: 'variable sync',
      metric: 'p99',
      side: 'max',
      bound: 5,
      measured: 0.12,
      unit: 'ms',
      field: 'p99_us',
      raw: 120,
      runs: 1,
      ok: true,
    });
  });

  it('runs only the listed workloads, grouped by their run counts; --only takes a subset', async () => {
    const file = await budgetFile('runs.json', {
      runs: 2,
      budgets: [
        { workload: 'quick_latency', runs: 5, p99: { max: 1, unit: 's' } },
        { workload: 'quick_calls', mean: { max: 1, unit: 's', field: 'ns_per_op' } },
        { workload: 'quick_rounds', throughput: { min: 1, unit: 'ops/s', field: 'rounds_per_s' } },
      ],
    });
    await rm(log, { force: true });
    expect((await cli('--gate', file)).code).toBe(ExitCodes.OK);
    expect(await suiteCalls()).toEqual([
      ['--json', '--only', 'quick_latency', '--runs', '5'],
      ['--json', '--only', 'quick_calls,quick_rounds', '--runs', '2'],
    ]);
    await rm(log, { force: true });
    const r = await cli('--gate', file, '--only', 'quick_rounds', '--runs', '3');
    expect(r.code).toBe(ExitCodes.OK);
    expect(r.out).toContain('1 budget over 1 workload, measured: median of 3 runs');
    expect(await suiteCalls()).toEqual([['--json', '--only', 'quick_rounds', '--runs', '3']]);
  });

  it('exits 2 for a malformed budget file, naming the file, the JSON path and the reason', async () => {
    const file = await budgetFile('bad.json', {
      budgets: [{ workload: 'quick_latency', p99: { max: 5, unit: 'kg' } }],
    });
    await rm(log, { force: true });
    const r = await cli('--gate', file);
    expect(r.code).toBe(ExitCodes.BAD_INPUT);
    expect(r.err).toMatch(new RegExp(`^mabeam bench: budget file ${file}: at budgets\\[0\\]\\.p99\\.unit: `));
    expect(r.out).toBe('');
    expect(await suiteCalls()).toEqual([]);
  });

  it('exits 2 for a budget file that is missing or not JSON', async () => {
    const missing = await cli('--gate', join(dir, 'absent.json'));
    expect(missing.code).toBe(ExitCodes.BAD_INPUT);
    expect(missing.err).toContain('at (file): cannot read');
    const notJson = await cli('--gate', await budgetFile('text.json', 'p99 < 5 ms'));
    expect(notJson.code).toBe(ExitCodes.BAD_INPUT);
    expect(notJson.err).toContain('at (root): not valid JSON');
  });

  it('exits 2 for a workload the suite does not know', async () => {
    const file = await budgetFile('unknown.json', {
      budgets: [{ workload: 'no_such', p99: { max: 1, unit: 'ms' } }],
    });
    const r = await cli('--gate', file);
    expect(r.code).toBe(ExitCodes.BAD_INPUT);
    expect(r.err).toContain('rejected its command line: bench: unknown workload: no_such');
  });

  it('exits 2 for --only naming a workload the budget file does not list', async () => {
    const file = await budgetFile('only.json', generous);
    const r = await cli('--gate', file, '--only', 'quick_latency,other');
    expect(r.code).toBe(ExitCodes.BAD_INPUT);
    expect(r.err).toContain('does not list: other');
  });
});

describe('mabeam bench command line', () => {
  it('exits 2 for a bad --runs or an unknown option', async () => {
    const runs = await cli('--runs', '0');
    expect(runs.code).toBe(ExitCodes.BAD_INPUT);
    expect(runs.err).toContain('--runs must be a whole number >= 1, got "0"');
    expect((await cli('--fast')).code).toBe(ExitCodes.BAD_INPUT);
    expect((await cli('--only', ' , ')).code).toBe(ExitCodes.BAD_INPUT);
  });

  it('exits 2 for an unknown command', async () => {
    expect(await main(['benhc'], { stdout: () => {}, stderr: () => {} })).toBe(ExitCodes.BAD_INPUT);
  });

  it('--help prints usage and the exit statuses, and exits 0', async () => {
    let out = '';
    const code = await main(['bench', '--help'], { stdout: (t) => (out += t), stderr: () => {} });
    expect(code).toBe(ExitCodes.OK);
    expect(out).toContain('--gate <budgets.json>');
    expect(out).toContain('Exit status: 0 ok; 1 a budget violated');
  });

  it('exits 2 when the bench script does not exist', async () => {
    const r = await cli(
      '--gate',
      await budgetFile('g.json', generous),
      '--bench-script',
      join(dir, 'nope.js'),
    );
    expect(r.code).toBe(ExitCodes.BAD_INPUT);
    expect(r.err).toContain(`bench script not found (tried ${join(dir, 'nope.js')})`);
  });

  it('without --gate: JSON lines of the suite, or a table; 1 when a workload failed', async () => {
    const json = await cli('--json', '--only', 'quick_calls,quick_rounds');
    expect(json.code).toBe(ExitCodes.OK);
    expect(json.out).toBe(
      '{"workload":"quick_calls","ns_per_op":250}\n{"workload":"quick_rounds","rounds_per_s":900,"decided_share":1}\n',
    );
    const table = await cli();
    expect(table.code).toBe(ExitCodes.OK);
    expect(table.out).toMatch(/^quick_latency\s+p50_us\s+40$/m);
    expect(table.out).toMatch(/^\s+n\s+2,000$/m);
    const failed = await cli('--only', 'quick_calls,crash');
    expect(failed.code).toBe(ExitCodes.VIOLATION);
    expect(failed.out).toMatch(/^crash\s+FAILED\s+failed \(bench script exited with code 1/m);
  });
});

describe('the bench runner', () => {
  it('stops a suite that outlives its timeout: its unreported workloads fail', async () => {
    // `hang` never reports and never exits, so the outcome does not depend on how fast node starts.
    const results = await runBenchScript({ script, workloads: ['hang'], timeoutMs: 200 });
    expect(results).toEqual([{ workload: 'hang', runs: 1, fields: null, error: 'timed out after 200 ms' }]);
  });

  it('keeps what the suite reported when one workload fails', async () => {
    const results = await runBenchScript({ script, workloads: ['quick_calls', 'crash'], runs: 2 });
    expect(results).toEqual([
      { workload: 'quick_calls', runs: 2, fields: { ns_per_op: 250 }, error: null },
      {
        workload: 'crash',
        runs: 2,
        fields: null,
        error: 'failed (bench script exited with code 1; see its output above)',
      },
    ]);
  });
});

describe('the mabeam executable', () => {
  it('runs as a program and exits with the gate status', async () => {
    const file = await budgetFile('exe.json', {
      budgets: [{ workload: 'quick_latency', operation: 'consensus', p99: { max: 100, unit: 'us' } }],
    });
    const main = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', main, 'bench', '--gate', file, '--bench-script', script],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (t: string) => {
      out += t;
    });
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code).toBe(ExitCodes.VIOLATION);
    expect(out).toContain('gate FAILED: 1 of 1 budgets violated');
  });
});
