/**
 * `mabeam bench --report out.html`: the workloads run are written as the HTML report, with a plain
 * run and with --gate, against a fake bench suite (canned figures, nothing timed). A report path
 * that cannot be written is bad input (exit 2), found before any workload runs.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCodes, main } from '../../src/cli/main.js';

let dir: string;
let script: string;
let log: string;

function fakeSuite(logPath: string): string {
  return `
import { appendFileSync } from 'node:fs';
const figures = {
  quick_latency: { p50_us: 40, p99_us: 120, mean_us: 50, n: 2000 },
  quick_rounds: { rounds_per_s: 900, decided_share: 1 },
};
const argv = process.argv.slice(2);
appendFileSync(${JSON.stringify(logPath)}, JSON.stringify(argv) + '\\n');
const at = argv.indexOf('--only');
const only = at >= 0 ? argv[at + 1].split(',') : [...Object.keys(figures)];
let failed = false;
for (const name of only) {
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

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
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

function rectsOf(html: string, chart: string): string[] {
  const svg = new RegExp(`<svg\\b[^>]*data-chart="${chart}"[^>]*>[\\s\\S]*?</svg>`).exec(html)?.[0] ?? '';
  return svg.match(/<rect\b[^>]*>/g) ?? [];
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mabeam-report-'));
  log = join(dir, 'calls.log');
  script = join(dir, 'fake-bench.mjs');
  await writeFile(script, fakeSuite(log));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('mabeam bench --report', () => {
  it('writes the HTML report of the workloads run, creating its directory, and still prints the table', async () => {
    const out = join(dir, 'reports', 'nested', 'plain.html');
    const run = await cli('--report', out);
    expect(run.code).toBe(ExitCodes.OK);
    expect(run.out).toContain('quick_latency');
    expect(run.out).not.toContain('<html');
    expect(run.err).toContain(`report written to ${out}`);
    const html = await readFile(out, 'utf8');
    expect(html.startsWith('<!DOCTYPE html>')).toBe(true);
    expect(rectsOf(html, 'workload-latency')).toHaveLength(3);
    expect(rectsOf(html, 'workload-throughput')).toHaveLength(1);
    expect(html).toContain('data-field="rounds_per_s"');
  });

  it('writes the report with --gate and --json too; a failed workload is in it', async () => {
    const budgets = join(dir, 'budgets.json');
    await writeFile(
      budgets,
      JSON.stringify({
        budgets: [{ workload: 'quick_latency', operation: 'sync', p99: { max: 5, unit: 'ms' } }],
      }),
    );
    const gated = join(dir, 'gate.html');
    const run = await cli('--gate', budgets, '--report', gated);
    expect(run.code).toBe(ExitCodes.OK);
    expect(run.out).toContain('gate passed');
    expect(rectsOf(await readFile(gated, 'utf8'), 'workload-latency')).toHaveLength(3);

    const failed = join(dir, 'failed.html');
    const json = await cli('--json', '--only', 'quick_rounds,crash', '--report', failed);
    expect(json.code).toBe(ExitCodes.VIOLATION);
    expect(json.out.trim().split('\n')).toEqual([
      '{"workload":"quick_rounds","rounds_per_s":900,"decided_share":1}',
    ]);
    const html = await readFile(failed, 'utf8');
    expect(html).toContain('<tr class="failed" data-workload="crash">');
  });

  it('exits 2 before running anything when the report cannot be written', async () => {
    const taken = join(dir, 'a-directory.html');
    await mkdir(taken, { recursive: true });
    const before = await readFile(log, 'utf8').catch(() => '');
    const run = await cli('--report', taken);
    expect(run.code).toBe(ExitCodes.BAD_INPUT);
    expect(run.err).toContain(`cannot write the report ${taken}: it is a directory`);
    expect(await readFile(log, 'utf8').catch(() => '')).toBe(before);
  });

  it('lists --report in the help', async () => {
    const run = await cli('--help');
    expect(run.out).toContain('--report <out.html>');
  });
});
