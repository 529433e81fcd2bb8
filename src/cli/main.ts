#!/usr/bin/env node
/**
 * The `mabeam` command.
 *
 *     mabeam bench [--only a,b] [--runs n] [--json] [--gate budgets.json]
 *                  [--bench-script path] [--timeout seconds] [--report out.html]
 *                  [--baseline save|compare file] [--fail-on-regression]
 *
 * `mabeam bench` runs the benchmark suite (build/bench/main.js, each workload in a fresh node
 * process) and prints a table, or JSON lines with --json. With `--gate budgets.json` it runs the
 * workloads the budget file lists (src/perf/slo.ts), prints each budget with its measured value
 * (the median of the runs) and fails on any violation. `--report out.html` also writes the workloads
 * run as a self-contained HTML report with charts (src/perf/html-report.ts). `--baseline save file`
 * runs the suite `--runs` times (default 3, each run a fresh invocation) and saves every figure's
 * runs as a baseline; `--baseline compare file` sets new runs against it with the regression test
 * of src/perf/bench-baseline.ts (exit 1 on a significant regression with --fail-on-regression).
 *
 * Exit status: 0 when everything ran (and, with --gate, every budget is met); 1 when a budget is
 * violated or not measured, or (without --gate) a workload failed; 2 for bad input: a bad command
 * line, a budget file that cannot be read or does not match the schema, an unknown workload, or a
 * bench script that is not built. stdout carries only results; progress and errors go to stderr.
 */
import { constants, realpathSync } from 'node:fs';
import { access, mkdir, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, InvalidArgumentError as CommanderArgumentError, CommanderError } from 'commander';
import { MabeamError } from '../kernel/index.js';
import {
  type Baseline,
  BaselineInvalidError,
  compareWithBaseline,
  loadBaseline,
  saveBaseline,
} from '../perf/baseline.js';
import {
  BENCH_BASELINE_SUITE,
  benchBaseline,
  benchComparisonJsonLines,
  compareBenchRuns,
  formatBenchComparison,
} from '../perf/bench-baseline.js';
import { type HtmlReportInput, renderHtmlReport } from '../perf/html-report.js';
import { renderJsonLines, renderTable } from '../perf/reporters.js';
import { findBenchScript, runBenchRuns, runBenchScript, type WorkloadResult } from '../perf/runner.js';
import {
  type Budgets,
  checkSlos,
  describeViolation,
  formatFigure,
  formatSloTable,
  lineName,
  loadBudgets,
  type Slo,
  type SloResult,
  type SloRow,
} from '../perf/slo.js';
import {
  DurationFormatError,
  formatSoakInterval,
  formatSoakReport,
  parseDuration,
  soak,
  soakBudgets,
  soakIntervalJson,
  soakJsonLines,
  soakSloResult,
} from '../perf/soak.js';
import { comprehensiveBudgets, comprehensiveSuite, suiteSloResults } from '../perf/suite-comprehensive.js';
import { registerTuneCommand } from './tune.js';

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
  report?: string;
  suite?: 'comprehensive';
  maxTime?: number;
  soak?: number;
  interval?: number;
  baseline?: string[];
  failOnRegression?: boolean;
}

/** `--baseline save file` or `--baseline compare file`, read from the option's two values. */
interface BaselineAction {
  action: 'save' | 'compare';
  file: string;
}

/** Runs per figure with --baseline when --runs is not given: the runs-bootstrap needs 2 a side. */
const DEFAULT_BASELINE_RUNS = 3;

/** The name `--suite comprehensive` runs its suite under (and its baselines carry). */
const COMPREHENSIVE_SUITE = 'comprehensive';

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
    .option(
      '--gate <budgets.json>',
      'check the budgets in this file; exit 1 on any violation (with --suite or --soak, a bare --gate: their default SLOs)',
    )
    .option('--bench-script <path>', 'the compiled bench suite (default: build/bench/main.js)')
    .option(
      '--timeout <seconds>',
      `stop the suite after this long (default ${DEFAULT_TIMEOUT_S})`,
      parseWholeNumber('--timeout'),
    )
    .option(
      '--report <out.html>',
      'also write the workloads run (or, with --suite, its operations) as a self-contained HTML report with charts',
    )
    .option('--suite <name>', 'run a built-in suite in this process: comprehensive', parseSuiteName)
    .option(
      '--max-time <ms>',
      'with --suite: sampling time per operation (default 1000)',
      parseWholeNumber('--max-time'),
    )
    .option(
      '--soak <duration>',
      'run the soak (mixed workload) for this long: 30s, 10m, 1h',
      parseDurationOption('--soak'),
    )
    .option(
      '--interval <duration>',
      'with --soak: the reporting interval (default duration / 20, 1s to 60s)',
      parseDurationOption('--interval'),
    )
    .option(
      '--baseline <action-and-file...>',
      `save file: save the figures of --runs runs (default ${DEFAULT_BASELINE_RUNS}) as a baseline; ` +
        'compare file: set new runs against it (significant changes only)',
    )
    .option('--fail-on-regression', 'with --baseline compare: exit 1 on a significant regression')
    .addHelpText(
      'after',
      '\nExit status: 0 ok; 1 a budget violated or not measured (a workload failed, without --gate;\n' +
        'a significant regression, with --baseline compare --fail-on-regression);\n' +
        '2 bad input (command line, budget or baseline file, unknown workload, bench suite not built).',
    )
    .action(async (opts: BenchOpts) => {
      done(await bench(opts, io));
    });
  registerTuneCommand(program, { ...io, tty: io === processIo && process.stderr.isTTY === true }, done);
  return program;
}

/** Run `mabeam` with `argv` (without node and the script); resolves to the exit status. */
export async function main(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  let code: number = ExitCodes.OK;
  const program = buildProgram(io, (c) => {
    code = c;
  });
  try {
    await program.parseAsync(withDefaultGate(argv), { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? ExitCodes.OK : ExitCodes.BAD_INPUT;
    throw error;
  }
  return code;
}

async function bench(opts: BenchOpts, io: CliIo): Promise<number> {
  if (!(await reportWritable(opts.report, io))) return ExitCodes.BAD_INPUT;
  const baseline = baselineAction(opts, io);
  if (baseline === false) return ExitCodes.BAD_INPUT;
  try {
    if (opts.suite !== undefined || opts.soak !== undefined) return await benchInProcess(opts, baseline, io);
    if (opts.gate === DEFAULT_GATE) {
      io.stderr('mabeam bench: --gate needs a budget file (a bare --gate only with --suite or --soak)\n');
      return ExitCodes.BAD_INPUT;
    }
    const script = opts.benchScript ?? findBenchScript();
    if (baseline !== null) return await baselineBench(opts, baseline, script, io);
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

/**
 * The --baseline action, null without one, or false (after saying why) for bad input: not
 * `save file` or `compare file`, combined with --gate or --soak, or --fail-on-regression without
 * `--baseline compare`.
 */
function baselineAction(opts: BenchOpts, io: CliIo): BaselineAction | null | false {
  const bad = (why: string) => {
    io.stderr(`mabeam bench: ${why}\n`);
    return false as const;
  };
  if (opts.baseline === undefined) {
    return opts.failOnRegression ? bad('--fail-on-regression needs --baseline compare <file>') : null;
  }
  const [action, file, ...rest] = opts.baseline;
  if ((action !== 'save' && action !== 'compare') || file === undefined || file === '' || rest.length > 0) {
    return bad(
      `--baseline takes "save <file>" or "compare <file>", got ${JSON.stringify(opts.baseline.join(' '))}`,
    );
  }
  if (opts.gate !== undefined) return bad('--baseline cannot be used with --gate');
  if (opts.soak !== undefined) return bad('--baseline cannot be used with --soak');
  if (opts.failOnRegression && action !== 'compare') {
    return bad('--fail-on-regression needs --baseline compare <file>');
  }
  return { action, file };
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
  if (!(await writeReport(opts.report, results, io))) return ExitCodes.BAD_INPUT;
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
  if (!(await writeReport(opts.report, results, io))) return ExitCodes.BAD_INPUT;
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
  for (const v of report.violations)
    io.stdout(`  ${lineName(v.workload, v.labels)} (${v.operation}): ${describeViolation(v)}\n`);
  return ExitCodes.VIOLATION;
}

/**
 * `mabeam bench --baseline save|compare file`: the suite run `--runs` times (one invocation each,
 * so every run of every workload is a fresh process), its medians printed as usual; then the runs
 * saved as a baseline, or compared with one (a table of every figure with its verdict).
 */
async function baselineBench(
  opts: BenchOpts,
  baseline: BaselineAction,
  script: string,
  io: CliIo,
): Promise<number> {
  // Read the baseline, or check it can be written, before anything runs.
  let saved: Baseline | null = null;
  if (baseline.action === 'compare') {
    saved = await loadBaseline(baseline.file);
    if (saved.suite !== BENCH_BASELINE_SUITE) {
      throw new BaselineInvalidError(
        baseline.file,
        'suite',
        `is ${JSON.stringify(saved.suite)}, not a bench-suite baseline (${JSON.stringify(BENCH_BASELINE_SUITE)}); ` +
          'a --suite baseline compares with --suite',
      );
    }
  } else if (!(await reportWritable(baseline.file, io, 'the baseline'))) {
    return ExitCodes.BAD_INPUT;
  }
  const { runs, medians } = await runBenchRuns({
    script,
    workloads: opts.only ?? null,
    runs: opts.runs ?? DEFAULT_BASELINE_RUNS,
    onStderr: io.stderr,
    timeoutMs: timeoutMs(opts),
    onRun: (i, n) => io.stderr(`mabeam bench: run ${i} of ${n}\n`),
  });
  if (opts.json) for (const r of medians) io.stdout(`${jsonLine(r)}\n`);
  else io.stdout(`${resultTable(medians)}\n`);
  const ran = medians.every((r) => r.fields !== null);
  if (saved === null) {
    const written = await saveBaseline(baseline.file, benchBaseline(runs));
    io.stderr(
      `mabeam bench: baseline saved to ${baseline.file}: ${written.operations.length} figures, ${runs.length} run${runs.length === 1 ? '' : 's'}\n`,
    );
    if (!(await writeReport(opts.report, medians, io))) return ExitCodes.BAD_INPUT;
    return ran ? ExitCodes.OK : ExitCodes.VIOLATION;
  }
  const compared = compareBenchRuns(saved, runs, { file: baseline.file });
  if (opts.json) for (const line of benchComparisonJsonLines(compared)) io.stdout(`${line}\n`);
  else io.stdout(`\n${formatBenchComparison(compared, baseline.file)}\n`);
  if (!(await writeReport(opts.report, { workloads: medians, comparison: compared.comparison }, io)))
    return ExitCodes.BAD_INPUT;
  if (!ran) return ExitCodes.VIOLATION;
  return opts.failOnRegression && compared.regressions.length > 0 ? ExitCodes.VIOLATION : ExitCodes.OK;
}

/**
 * With --report (or a baseline to save), before anything runs: can `file` be written (its directory
 * made, not a directory)?
 */
async function reportWritable(file: string | undefined, io: CliIo, what = 'the report'): Promise<boolean> {
  if (file === undefined) return true;
  try {
    await mkdir(dirname(file), { recursive: true });
    await access(dirname(file), constants.W_OK);
    if ((await stat(file).catch(() => null))?.isDirectory()) throw new Error('it is a directory');
    return true;
  } catch (error) {
    io.stderr(
      `mabeam bench: cannot write ${what} ${file}: ${error instanceof Error ? error.message : String(error)}\n`,
    );
    return false;
  }
}

/** With --report: write the HTML report of `results` to `file`; false (after saying why) when it cannot. */
async function writeReport(
  file: string | undefined,
  results: WorkloadResult[] | HtmlReportInput,
  io: CliIo,
): Promise<boolean> {
  if (file === undefined) return true;
  try {
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, renderHtmlReport(Array.isArray(results) ? { workloads: results } : results));
  } catch (error) {
    io.stderr(
      `mabeam bench: cannot write the report ${file}: ${error instanceof Error ? error.message : String(error)}\n`,
    );
    return false;
  }
  io.stderr(`mabeam bench: report written to ${file}\n`);
  return true;
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
    ...(row.labels === undefined ? {} : { labels: row.labels }),
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

/** The suite's JSON line of a result: `{"workload":"w","sampler":"tpe","us_per_trial":41}`. */
function jsonLine(r: WorkloadResult): string {
  return JSON.stringify({ workload: r.workload, ...r.labels, ...r.fields });
}

function resultTable(results: readonly WorkloadResult[]): string {
  const rows: string[][] = [['workload', 'field', 'value']];
  for (const r of results) {
    if (r.fields === null) {
      rows.push([r.workload, 'FAILED', r.error ?? '']);
      continue;
    }
    Object.entries(r.fields).forEach(([name, value], i) => {
      rows.push([i === 0 ? lineName(r.workload, r.labels) : '', name, formatFigure(value)]);
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

// ---- in-process suites -----------------------------------------------------------------------------
//
//     mabeam bench --suite comprehensive [--json] [--gate [budgets.json]] [--max-time ms]
//     mabeam bench --soak 10m [--interval 30s] [--json] [--gate [budgets.json]]
//
// (`--gate` keeps its required argument in commander; a bare `--gate` is rewritten to
// DEFAULT_GATE before parsing, by withDefaultGate.)
//
// `--suite comprehensive` runs the roadmap's comprehensive suite in this process
// (src/perf/suite-comprehensive.ts) and prints the harness table; `--soak` runs the soak
// (src/perf/soak.ts) and prints memory and latency per interval (SIGINT stops it early and prints
// what it has). With either, a bare `--gate` checks their default SLOs (the roadmap's) and
// `--gate file` the budgets of that file, against their results.

/** What a bare `--gate` (last, or followed by another option) stands for: the default SLOs. */
const DEFAULT_GATE = '<default SLOs>';

function withDefaultGate(argv: readonly string[]): string[] {
  const out: string[] = [];
  argv.forEach((arg, i) => {
    out.push(arg);
    const next = argv[i + 1];
    if (arg === '--gate' && (next === undefined || next.startsWith('-'))) out.push(DEFAULT_GATE);
  });
  return out;
}

function parseSuiteName(text: string): 'comprehensive' {
  if (text !== 'comprehensive') {
    throw new CommanderArgumentError(`--suite must be comprehensive, got ${JSON.stringify(text)}`);
  }
  return text;
}

function parseDurationOption(name: string) {
  return (text: string): number => {
    try {
      return parseDuration(text);
    } catch (error) {
      if (error instanceof DurationFormatError) throw new CommanderArgumentError(`${name}: ${error.message}`);
      throw error;
    }
  };
}

/**
 * `--suite comprehensive` or `--soak d`: run in this process; with --gate, check SLOs; with
 * `--suite` and --baseline, save the harness result as a baseline or compare it with one.
 */
async function benchInProcess(opts: BenchOpts, baseline: BaselineAction | null, io: CliIo): Promise<number> {
  const clash = [
    ...(opts.suite !== undefined && opts.soak !== undefined ? ['--soak'] : []),
    ...(opts.only === undefined ? [] : ['--only']),
    ...(opts.runs === undefined ? [] : ['--runs']),
    ...(opts.benchScript === undefined ? [] : ['--bench-script']),
    ...(opts.suite === undefined && opts.maxTime !== undefined ? ['--max-time'] : []),
    ...(opts.soak === undefined && opts.interval !== undefined ? ['--interval'] : []),
  ];
  if (clash.length > 0) {
    const mode = opts.suite !== undefined ? '--suite' : '--soak';
    io.stderr(`mabeam bench: ${clash.join(', ')} cannot be used with ${mode}\n`);
    return ExitCodes.BAD_INPUT;
  }
  if (!(await reportWritable(opts.report, io))) return ExitCodes.BAD_INPUT;
  // A baseline to compare with is read, and one to save checked, before anything runs.
  const savedBaseline = baseline?.action === 'compare' ? await loadBaseline(baseline.file) : null;
  if (savedBaseline !== null && savedBaseline.suite !== COMPREHENSIVE_SUITE) {
    throw new BaselineInvalidError(
      baseline?.file as string,
      'suite',
      `is ${JSON.stringify(savedBaseline.suite)}, not the ${JSON.stringify(COMPREHENSIVE_SUITE)} suite's ` +
        '(a baseline of the bench suite compares without --suite)',
    );
  }
  if (baseline?.action === 'save' && !(await reportWritable(baseline.file, io, 'the baseline'))) {
    return ExitCodes.BAD_INPUT;
  }
  const budgets =
    opts.gate === undefined
      ? null
      : opts.gate !== DEFAULT_GATE
        ? await loadBudgets(opts.gate)
        : opts.suite !== undefined
          ? comprehensiveBudgets()
          : soakBudgets();
  let results: SloResult[];
  let ran = true;
  if (opts.suite !== undefined) {
    const result = await comprehensiveSuite({
      sqlite: true,
      ...(opts.maxTime === undefined ? {} : { maxTimeMs: opts.maxTime }),
      name: COMPREHENSIVE_SUITE,
    }).run({ onResult: (o) => io.stderr(`bench: ${o.name} ${o.state}\n`) });
    const comparison = savedBaseline === null ? undefined : compareWithBaseline(savedBaseline, result);
    const input = comparison === undefined ? { result } : { result, comparison };
    if (budgets === null) io.stdout(opts.json ? renderJsonLines(input) : `${renderTable(input)}\n`);
    if (baseline?.action === 'save') {
      const written = await saveBaseline(baseline.file, result);
      io.stderr(
        `mabeam bench: baseline saved to ${baseline.file}: ${written.operations.length} operations\n`,
      );
    }
    if (!(await writeReport(opts.report, input, io))) return ExitCodes.BAD_INPUT;
    results = suiteSloResults(result);
    ran = result.operations.every((o) => o.state === 'ok');
    // (--baseline never comes with --gate: budgets is null here when there is a comparison.)
    if (opts.failOnRegression && (comparison?.regressions.length ?? 0) > 0) ran = false;
  } else {
    const controller = new AbortController();
    const onSigint = () => {
      io.stderr('mabeam bench: SIGINT: stopping the soak, reporting what it has\n');
      controller.abort();
    };
    process.once('SIGINT', onSigint);
    try {
      const report = await soak({
        durationMs: opts.soak as number,
        ...(opts.interval === undefined ? {} : { intervalMs: opts.interval }),
        signal: controller.signal,
        onInterval: (i) => {
          if (opts.json && budgets === null) io.stdout(`${soakIntervalJson(i)}\n`);
          else io.stderr(`${formatSoakInterval(i)}\n`);
        },
      });
      if (budgets === null) {
        io.stdout(opts.json ? soakJsonLines({ ...report, intervals: [] }) : `${formatSoakReport(report)}\n`);
      }
      if (!(await writeReport(opts.report, { soak: report, title: 'mabeam bench: soak' }, io))) {
        return ExitCodes.BAD_INPUT;
      }
      results = [soakSloResult(report)];
    } finally {
      process.removeListener('SIGINT', onSigint);
    }
  }
  if (budgets === null) return ran ? ExitCodes.OK : ExitCodes.VIOLATION;
  const report = checkSlos(results, budgets);
  if (opts.json) {
    for (const row of report.rows) io.stdout(`${JSON.stringify(rowJson(row, 1))}\n`);
    return report.ok ? ExitCodes.OK : ExitCodes.VIOLATION;
  }
  io.stdout(`${formatSloTable(report.rows)}\n\n`);
  io.stdout(
    report.ok
      ? `gate passed: all ${report.rows.length} budgets met\n`
      : `gate FAILED: ${report.violations.length} of ${report.rows.length} budgets violated\n`,
  );
  for (const v of report.violations)
    io.stdout(`  ${lineName(v.workload, v.labels)} (${v.operation}): ${describeViolation(v)}\n`);
  return report.ok ? ExitCodes.OK : ExitCodes.VIOLATION;
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
