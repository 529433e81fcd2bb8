#!/usr/bin/env node
/**
 * The `mabeam` command.
 *
 *     mabeam bench [--only a,b] [--runs n] [--json] [--gate budgets.json]
 *                  [--bench-script path] [--timeout seconds]
 *
 * `mabeam bench` runs the benchmark suite (build/bench/main.js, each workload in a fresh node
 * process) and prints a table, or JSON lines with --json. With `--gate budgets.json` it runs the
 * workloads the budget file lists (src/perf/slo.ts), prints each budget with its measured value
 * (the median of the runs) and fails on any violation.
 *
 * Exit status: 0 when everything ran (and, with --gate, every budget is met); 1 when a budget is
 * violated or not measured, or (without --gate) a workload failed; 2 for bad input: a bad command
 * line, a budget file that cannot be read or does not match the schema, an unknown workload, or a
 * bench script that is not built. stdout carries only results; progress and errors go to stderr.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command, InvalidArgumentError as CommanderArgumentError, CommanderError } from 'commander';
import { MabeamError } from '../kernel/index.js';
import { findBenchScript, runBenchScript, type WorkloadResult } from '../perf/runner.js';
import {
  type Budgets,
  checkSlos,
  describeViolation,
  formatFigure,
  formatSloTable,
  loadBudgets,
  type Slo,
  type SloRow,
} from '../perf/slo.js';

/** The command's exit statuses. */
export const ExitCodes = {
  /** Everything ran; every budget is met. */
  OK: 0,
  /** A budget is violated or not measured (with --gate), or a workload failed (without). */
  VIOLATION: 1,
  /** Bad input: command line, budget file, unknown workload, missing bench script. */
  BAD_INPUT: 2,
} as const;

/** Where the command writes: stdout gets results only, stderr progress and errors. */
export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
}

const processIo: CliIo = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
};

interface BenchOpts {
  only?: string[];
  runs?: number;
  json?: boolean;
  gate?: string;
  benchScript?: string;
  timeout?: number;
}

const DEFAULT_TIMEOUT_S = 600;

function parseWholeNumber(name: string) {
  return (text: string): number => {
    const n = Number(text);
    if (!/^\s*\d+\s*$/.test(text) || !Number.isSafeInteger(n) || n < 1) {
      throw new CommanderArgumentError(`${name} must be a whole number >= 1, got ${JSON.stringify(text)}`);
    }
    return n;
  };
}

function parseList(text: string): string[] {
  const names = [
    ...new Set(
      text
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== ''),
    ),
  ];
  if (names.length === 0) throw new CommanderArgumentError('--only needs at least one workload name');
  return names;
}

/** Build the `mabeam` program; `done` receives each action's exit status. */
export function buildProgram(io: CliIo, done: (code: number) => void): Command {
  const program = new Command('mabeam')
    .description('mabeam: an OTP-grade agent runtime for TypeScript')
    .exitOverride()
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr })
    .showHelpAfterError('(run with --help for usage)');
  program
    .command('bench')
    .description(
      'run the benchmark suite; with --gate, check the budgets of a budget file and exit 1 on any violation',
    )
    .option(
      '--only <names>',
      'run only these workloads (comma-separated); with --gate, a subset of the file',
      parseList,
    )
    .option(
      '--runs <n>',
      'runs per workload, reporting the median of each figure (default: the budget file, else 1)',
      parseWholeNumber('--runs'),
    )
    .option('--json', 'print JSON lines: one per workload, or with --gate one per budget')
    .option('--gate <budgets.json>', 'check the budgets in this file; exit 1 on any violation')
    .option('--bench-script <path>', 'the compiled bench suite (default: build/bench/main.js)')
    .option(
      '--timeout <seconds>',
      `stop the suite after this long (default ${DEFAULT_TIMEOUT_S})`,
      parseWholeNumber('--timeout'),
    )
    .addHelpText(
      'after',
      '\nExit status: 0 ok; 1 a budget violated or not measured (a workload failed, without --gate);\n' +
        '2 bad input (command line, budget file, unknown workload, bench suite not built).',
    )
    .action(async (opts: BenchOpts) => {
      done(await bench(opts, io));
    });
  return program;
}

/** Run `mabeam` with `argv` (without node and the script); resolves to the exit status. */
export async function main(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  let code: number = ExitCodes.OK;
  const program = buildProgram(io, (c) => {
    code = c;
  });
  try {
    await program.parseAsync([...argv], { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? ExitCodes.OK : ExitCodes.BAD_INPUT;
    throw error;
  }
  return code;
}

async function bench(opts: BenchOpts, io: CliIo): Promise<number> {
  try {
    const script = opts.benchScript ?? findBenchScript();
    return opts.gate === undefined
      ? await plainBench(opts, script, io)
      : await gate(opts, opts.gate, script, io);
  } catch (error) {
    // Typed errors here are all bad input: budget file, bench script, unknown workload.
    if (error instanceof MabeamError) {
      io.stderr(`mabeam bench: ${error.message}\n`);
      return ExitCodes.BAD_INPUT;
    }
    throw error;
  }
}

function timeoutMs(opts: BenchOpts): number {
  return (opts.timeout ?? DEFAULT_TIMEOUT_S) * 1000;
}

/** `mabeam bench` without --gate: the suite's figures, as a table or JSON lines. */
async function plainBench(opts: BenchOpts, script: string, io: CliIo): Promise<number> {
  const results = await runBenchScript({
    script,
    workloads: opts.only ?? null,
    runs: opts.runs ?? 1,
    onStderr: io.stderr,
    timeoutMs: timeoutMs(opts),
    ...(opts.json ? { onResult: (r: WorkloadResult) => io.stdout(`${jsonLine(r)}\n`) } : {}),
  });
  if (!opts.json) io.stdout(`${resultTable(results)}\n`);
  return results.every((r) => r.fields !== null) ? ExitCodes.OK : ExitCodes.VIOLATION;
}

/** `mabeam bench --gate file`: run the budgeted workloads and check every budget. */
async function gate(opts: BenchOpts, file: string, script: string, io: CliIo): Promise<number> {
  const budgets = await loadBudgets(file);
  const listed = unique(budgets.budgets.map((b) => b.workload));
  if (opts.only !== undefined) {
    const unknown = opts.only.filter((n) => !listed.includes(n));
    if (unknown.length > 0) {
      io.stderr(
        `mabeam bench: --only names workloads the budget file ${file} does not list: ${unknown.join(', ')}\n` +
          `  it lists: ${listed.join(', ')}\n`,
      );
      return ExitCodes.BAD_INPUT;
    }
  }
  const selected: Slo[] = budgets.budgets.filter(
    (b) => opts.only === undefined || opts.only.includes(b.workload),
  );
  const runsOf = runsPerWorkload(selected, budgets, opts.runs);
  // One suite invocation per distinct run count (the suite takes one --runs for all its workloads).
  const groups = new Map<number, string[]>();
  for (const [workload, runs] of runsOf) groups.set(runs, [...(groups.get(runs) ?? []), workload]);
  const results: WorkloadResult[] = [];
  for (const [runs, workloads] of groups) {
    results.push(
      ...(await runBenchScript({ script, workloads, runs, onStderr: io.stderr, timeoutMs: timeoutMs(opts) })),
    );
  }
  const report = checkSlos(results, selected);
  if (opts.json) {
    for (const row of report.rows)
      io.stdout(`${JSON.stringify(rowJson(row, runsOf.get(row.workload) ?? 1))}\n`);
    return report.ok ? ExitCodes.OK : ExitCodes.VIOLATION;
  }
  const runsText = unique([...runsOf.values()]).join(' or ');
  io.stdout(
    `gate ${file}: ${report.rows.length} budget${report.rows.length === 1 ? '' : 's'} over ` +
      `${runsOf.size} workload${runsOf.size === 1 ? '' : 's'}, measured: median of ${runsText} run${runsText === '1' ? '' : 's'}\n\n`,
  );
  io.stdout(`${formatSloTable(report.rows)}\n\n`);
  if (report.ok) {
    io.stdout(`gate passed: all ${report.rows.length} budgets met\n`);
    return ExitCodes.OK;
  }
  io.stdout(`gate FAILED: ${report.violations.length} of ${report.rows.length} budgets violated\n`);
  for (const v of report.violations) io.stdout(`  ${v.workload} (${v.operation}): ${describeViolation(v)}\n`);
  return ExitCodes.VIOLATION;
}

/** Runs per workload: --runs, else the largest of its SLOs' `runs`, else the file's, else 1. */
function runsPerWorkload(
  selected: readonly Slo[],
  budgets: Budgets,
  cliRuns: number | undefined,
): Map<string, number> {
  const out = new Map<string, number>();
  for (const slo of selected) {
    const runs = cliRuns ?? slo.runs ?? budgets.runs ?? 1;
    out.set(slo.workload, Math.max(out.get(slo.workload) ?? 1, runs));
  }
  return out;
}

function rowJson(row: SloRow, runs: number) {
  return {
    workload: row.workload,
    operation: row.operation,
    metric: row.metric,
    side: row.side,
    bound: row.bound,
    measured: row.measured,
    unit: row.unit,
    field: row.field,
    raw: row.raw,
    runs,
    ok: row.ok,
    ...(row.detail === '' ? {} : { detail: row.detail }),
  };
}

function jsonLine(r: WorkloadResult): string {
  return JSON.stringify({ workload: r.workload, ...r.fields });
}

function resultTable(results: readonly WorkloadResult[]): string {
  const rows: string[][] = [['workload', 'field', 'value']];
  for (const r of results) {
    if (r.fields === null) {
      rows.push([r.workload, 'FAILED', r.error ?? '']);
      continue;
    }
    Object.entries(r.fields).forEach(([name, value], i) => {
      rows.push([i === 0 ? r.workload : '', name, formatFigure(value)]);
    });
  }
  const widths = [0, 1, 2].map((c) => Math.max(...rows.map((row) => (row[c] as string).length)));
  const lines = rows.map((row) =>
    row
      .map((cell, c) => (c === 2 ? cell.padStart(widths[c] as number) : cell.padEnd(widths[c] as number)))
      .join('  '),
  );
  lines.splice(1, 0, widths.map((w) => '-'.repeat(w)).join('  '));
  return lines.join('\n');
}

function unique<T>(values: readonly T[]): T[] {
  return [...new Set(values)];
}

/** True when this module is the program node was started with (directly or through a bin link). */
function isEntryPoint(): boolean {
  const invoked = process.argv[1];
  if (invoked === undefined) return false;
  try {
    return realpathSync(invoked) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) process.exitCode = await main(process.argv.slice(2));
