/**
 * Baselines of the bench suite (`mabeam bench --baseline save|compare file`): the figures every
 * workload reports (`ns_per_op`, `p99_us`, `ops_per_s`...), over several runs, saved in the
 * baseline format of ./baseline.ts and compared with the same regression test.
 *
 * Each figure of each line of each workload is one baseline operation, named
 * `<workload>[{labels}].<field>` (`call_roundtrip.ns_per_op`, `tune_overhead{sampler=tpe}.us_per_trial`),
 * holding one run per run of the suite, each run a single value: the figure that run reported
 * (runner.ts's runBenchRuns runs the whole suite once per run, so every run of every workload is a
 * fresh process and the runs carry the noise between processes). The file keeps the figures as
 * reported.
 *
 * Which way is worse depends on the figure: a time or a size is worse higher, a rate or a success
 * share worse lower (fieldDirection, from the field's name). The comparison puts every figure in
 * cost form first (a figure that is better higher is inverted, 1 / value), so that the ratio
 * current / baseline above 1 is always worse and compareWithBaseline's verdicts read as they say:
 * a "regression" is a figure that got significantly worse, whichever its direction. Figures whose
 * direction the name does not tell (`n`, `threads`) and memory growth rates (slopes near zero,
 * either sign, whose ratio means nothing; the gate bounds them) are not in the baseline.
 */
import { describe } from '../kernel/errors.js';
import {
  BASELINE_SCHEMA,
  BASELINE_VERSION,
  type Baseline,
  BaselineInvalidError,
  type BaselineOperation,
  type BaselineRun,
  type CompareOptions,
  type Comparison,
  compareWithBaseline,
  DEFAULT_NOISE_FLOOR,
  type OperationComparison,
} from './baseline.js';
import { type BenchEnvironment, benchEnvironment } from './harness.js';
import { uncomparedText } from './reporters.js';
import type { WorkloadResult } from './runner.js';
import { fieldUnit, formatFigure, lineName } from './slo.js';

/** The `suite` of a bench-suite baseline file. */
export const BENCH_BASELINE_SUITE = 'mabeam-bench';

/** Which way a figure gets better: `lower` (a time, a size) or `higher` (a rate, a success share). */
export type FieldDirection = 'lower' | 'higher';

/**
 * Which way a figure is better, from its name; null when the name does not tell (`n`, `threads`,
 * `agents`) or for a memory growth rate (`bytes_per_hour`, `bytes_per_day`), which are left out of
 * baselines. Lower: times (`ns_per_op`, `p99_us`, `seconds`, `us_per_trial`), sizes
 * (`bytes_per_agent`), `regret`, and error, failure, miss, loss or drop rates. Higher: rates
 * (`ops_per_s`, `x_per_min`) and success shares or ratios (`decided_share`, `success_rate`).
 */
export function fieldDirection(field: string): FieldDirection | null {
  if (/bytes_per_(hour|h|day)$/.test(field)) return null;
  if (/(^|_)(error|errors|failure|failures|miss|loss|drop|dropped)(_|$)/.test(field)) return 'lower';
  if (/(^|_)regret(_|$)/.test(field)) return 'lower';
  if (/(^|_)bytes(_|$)/.test(field)) return 'lower';
  const unit = fieldUnit(field);
  if (unit === null) return null;
  if (unit === 'ns' || unit === 'us' || unit === 'ms' || unit === 's') return 'lower';
  if (unit === 'ops/s' || unit === 'ops/min' || unit === 'ratio' || unit === '%') return 'higher';
  return null;
}

/** The baseline operation name of one figure: `call_roundtrip.ns_per_op`, `tune_overhead{sampler=tpe}.us_per_trial`. */
export function figureName(result: Pick<WorkloadResult, 'workload' | 'labels'>, field: string): string {
  return `${lineName(result.workload, result.labels)}.${field}`;
}

/** The field of a figure's operation name (after its last `.`). */
function fieldOf(name: string): string {
  return name.slice(name.lastIndexOf('.') + 1);
}

function singleValueRun(value: number): BaselineRun {
  return {
    stats: {
      n: 1,
      mean: value,
      median: value,
      p90: value,
      p99: value,
      p999: value,
      min: value,
      max: value,
      sd: 0,
      rme: null,
    },
    opsPerSecond: null,
    memory: null,
    samples: [value],
  };
}

/**
 * The baseline of several runs of the bench suite (each run: every line runBenchScript returned
 * for it): one operation per figure with a direction (fieldDirection), one single-value run per
 * run of the suite where it was measured. Failed workloads, negative or non-finite values are left
 * out of their run. `environment` defaults to this process's (the suite's workloads run with
 * `--expose-gc`).
 */
export function benchBaseline(
  runs: readonly (readonly WorkloadResult[])[],
  options: { createdAt?: string; environment?: BenchEnvironment } = {},
): Baseline {
  const ops = new Map<string, BaselineOperation>();
  for (const run of runs) {
    for (const r of run) {
      if (r.fields === null) continue;
      for (const [field, value] of Object.entries(r.fields)) {
        if (fieldDirection(field) === null || !Number.isFinite(value) || value < 0) continue;
        const name = figureName(r, field);
        let op = ops.get(name);
        if (op === undefined) {
          op = { name, async: false, batch: 1, runs: [] };
          ops.set(name, op);
        }
        op.runs.push(singleValueRun(value));
      }
    }
  }
  return {
    schema: BASELINE_SCHEMA,
    version: BASELINE_VERSION,
    suite: BENCH_BASELINE_SUITE,
    createdAt: options.createdAt ?? new Date().toISOString(),
    environment: options.environment ?? benchEnvironment(true),
    operations: [...ops.values()],
  };
}

/** One figure of a bench comparison. */
export interface FigureComparison {
  /** The figure's name (`call_roundtrip.ns_per_op`), as in the baseline file. */
  readonly name: string;
  readonly field: string;
  readonly direction: FieldDirection;
  /** Medians over the runs of each side, as reported (null on a side that has none). */
  readonly baselineMedian: number | null;
  readonly currentMedian: number | null;
  /** Runs on each side. */
  readonly baselineRuns: number;
  readonly currentRuns: number;
  /**
   * The test's outcome, in cost form: the ratio and interval are current / baseline of the time or
   * size, or baseline / current of a rate or share, so above 1 is always worse.
   */
  readonly comparison: OperationComparison;
}

/** A bench suite's runs set against a bench baseline. */
export interface BenchComparison {
  /** compareWithBaseline's comparison of the figures in cost form (for reports and charts). */
  readonly comparison: Comparison;
  /** Per figure, in the current runs' order, then those only in the baseline. */
  readonly figures: readonly FigureComparison[];
  /** Names of the figures that got significantly worse, and better. */
  readonly regressions: readonly string[];
  readonly improvements: readonly string[];
  /** Figures of the current runs left out: no direction known from the name, or a growth rate. */
  readonly ignored: readonly string[];
}

function costOf(baseline: Baseline, drop: ReadonlySet<string>): Baseline {
  return {
    ...baseline,
    operations: baseline.operations
      .filter((op) => !drop.has(op.name))
      .map((op) => {
        if (fieldDirection(fieldOf(op.name)) !== 'higher') return op;
        return { ...op, runs: op.runs.map((r) => singleValueRun(1 / medianOf(r.samples))) };
      }),
  };
}

function medianOf(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

function mediansOf(baseline: Baseline): Map<string, { median: number; runs: number }> {
  return new Map(
    baseline.operations.map((op) => [
      op.name,
      { median: medianOf(op.runs.map((r) => medianOf(r.samples))), runs: op.runs.length },
    ]),
  );
}

/**
 * Compare runs of the bench suite with a bench baseline, figure by figure, by the regression test
 * of ./baseline.ts in cost form (module comment). `file` names the baseline in errors: a baseline
 * of another suite (a harness suite's) throws BaselineInvalidError. A figure that is 0 on either
 * side, or infinite in cost form, is listed as not comparable.
 */
export function compareBenchRuns(
  baseline: Baseline,
  runs: readonly (readonly WorkloadResult[])[],
  options: CompareOptions & { file?: string } = {},
): BenchComparison {
  const { file, ...compareOptions } = options;
  if (baseline.suite !== BENCH_BASELINE_SUITE) {
    throw new BaselineInvalidError(
      file ?? '(inline baseline)',
      'suite',
      `is ${describe(baseline.suite)}, not a bench-suite baseline (${JSON.stringify(BENCH_BASELINE_SUITE)}, ` +
        'written by `mabeam bench --baseline save`)',
    );
  }
  const current = benchBaseline(runs, { createdAt: baseline.createdAt });
  const ignored = [
    ...new Set(
      runs.flatMap((run) =>
        run.flatMap((r) =>
          r.fields === null
            ? []
            : Object.keys(r.fields)
                .filter((f) => fieldDirection(f) === null)
                .map((f) => figureName(r, f)),
        ),
      ),
    ),
  ];
  // A figure that is 0 in some run has no cost-form ratio (a rate of 0 is an infinite cost).
  const zero = new Map<string, string>();
  for (const side of [baseline, current]) {
    for (const op of side.operations) {
      if (op.runs.some((r) => !(medianOf(r.samples) > 0))) {
        zero.set(op.name, `a run measured 0 ${side === baseline ? 'in the baseline' : 'now'}`);
      }
    }
  }
  const comparison = compareWithBaseline(
    costOf(baseline, new Set(zero.keys())),
    costOf(current, new Set(zero.keys())),
    compareOptions,
  );
  const baseMedians = mediansOf(baseline);
  const curMedians = mediansOf(current);
  const byName = new Map(comparison.operations.map((c) => [c.name, c]));
  const names = [
    ...current.operations.map((o) => o.name),
    ...baseline.operations.map((o) => o.name).filter((n) => !curMedians.has(n)),
  ];
  const figures: FigureComparison[] = names.map((name) => {
    const field = fieldOf(name);
    const b = baseMedians.get(name);
    const c = curMedians.get(name);
    const reason = zero.get(name);
    const compared: OperationComparison =
      reason !== undefined && b !== undefined && c !== undefined
        ? { status: 'not-comparable', name, reason }
        : (byName.get(name) ??
          (b === undefined
            ? { status: 'only-in-current', name }
            : c === undefined
              ? { status: 'only-in-baseline', name }
              : { status: 'not-comparable', name, reason: reason ?? 'not compared' }));
    return {
      name,
      field,
      direction: fieldDirection(field) ?? 'lower',
      baselineMedian: b?.median ?? null,
      currentMedian: c?.median ?? null,
      baselineRuns: b?.runs ?? 0,
      currentRuns: c?.runs ?? 0,
      comparison: compared,
    };
  });
  const flagged = (verdict: string) =>
    figures
      .filter((f) => f.comparison.status === 'compared' && f.comparison.verdict === verdict)
      .map((f) => f.name);
  return {
    comparison,
    figures,
    regressions: flagged('regression'),
    improvements: flagged('improvement'),
    ignored,
  };
}

/**
 * The test used, in one paragraph: what the ratio is, the interval, and when a change counts (with
 * the method each figure got: runs-bootstrap with 2 or more runs a side, else the noise floor too).
 */
export function describeBenchTest(c: Comparison): string {
  const pct = (x: number) => `${Number((x * 100).toFixed(2))}%`;
  return (
    `test: per figure, the ratio of the medians of the runs (current / baseline; baseline / current for ` +
    `a rate or share, so above 1 is worse), with a ${Math.round(c.confidence * 100)}% percentile-bootstrap ` +
    `confidence interval (runs resampled with replacement, ${c.resamples} resamples, seed ${c.seed}). ` +
    `A regression is flagged only when the whole interval lies above 1 + ${pct(c.threshold)} ` +
    `(an improvement: below 1 - ${pct(c.threshold)}); with a single run on either side, the ratio itself ` +
    `must also pass the noise floor of ${pct(c.noiseFloor ?? DEFAULT_NOISE_FLOOR)}. Use 3 or more runs a side.`
  );
}

function verdictText(c: OperationComparison): string {
  if (c.status !== 'compared') return uncomparedText(c);
  return c.verdict === 'no significant change' ? 'no significant change' : c.verdict.toUpperCase();
}

/**
 * The comparison as a table: figure, which way is better, the baseline and current medians (as
 * reported), the cost ratio with its interval, the verdict; then the test used and a summary.
 */
export function formatBenchComparison(bc: BenchComparison, file?: string): string {
  const header = ['figure', 'better', 'baseline', 'current', 'runs', 'cost ratio [95% CI]', 'verdict'];
  const rows = bc.figures.map((f) => {
    const c = f.comparison;
    return [
      f.name,
      f.direction,
      f.baselineMedian === null ? '-' : formatFigure(f.baselineMedian),
      f.currentMedian === null ? '-' : formatFigure(f.currentMedian),
      `${f.baselineRuns}/${f.currentRuns}`,
      c.status === 'compared'
        ? `${c.interval.ratio.toFixed(3)}x [${c.interval.low.toFixed(3)}, ${c.interval.high.toFixed(3)}]`
        : '-',
      verdictText(c),
    ];
  });
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] as string).length)));
  const right = new Set([2, 3, 4, 5]);
  const line = (r: string[]) =>
    r
      .map((cell, i) =>
        right.has(i) ? cell.padStart(widths[i] as number) : cell.padEnd(widths[i] as number),
      )
      .join('  ')
      .trimEnd();
  const out = [
    `baseline${file === undefined ? '' : ` ${file}`}: ${bc.figures.length} figures compared ` +
      '(runs: baseline/current; cost ratio above 1 is worse)',
    '',
    line(header),
    widths.map((w) => '-'.repeat(w)).join('  '),
    ...rows.map(line),
    '',
    describeBenchTest(bc.comparison),
  ];
  if (bc.comparison.environmentChanges.length > 0) {
    out.push(`note: the baseline ran on a different ${bc.comparison.environmentChanges.join(', ')}.`);
  }
  if (bc.ignored.length > 0) {
    out.push(`not compared (no direction known from the name, or a growth rate): ${bc.ignored.join(', ')}`);
  }
  out.push(
    `${bc.regressions.length} significant regression${bc.regressions.length === 1 ? '' : 's'}` +
      `${bc.regressions.length > 0 ? ` (${bc.regressions.join(', ')})` : ''}, ` +
      `${bc.improvements.length} significant improvement${bc.improvements.length === 1 ? '' : 's'}` +
      `${bc.improvements.length > 0 ? ` (${bc.improvements.join(', ')})` : ''}`,
  );
  return out.join('\n');
}

/** One JSON line per figure: `{"type":"comparison","figure",...,"verdict"}` (no newline at the end of each). */
export function benchComparisonJsonLines(bc: BenchComparison): string[] {
  return bc.figures.map((f) => {
    const c = f.comparison;
    return JSON.stringify({
      type: 'comparison',
      figure: f.name,
      field: f.field,
      better: f.direction,
      baseline_median: f.baselineMedian,
      current_median: f.currentMedian,
      baseline_runs: f.baselineRuns,
      current_runs: f.currentRuns,
      status: c.status,
      ...(c.status === 'compared'
        ? {
            verdict: c.verdict,
            method: c.method,
            cost_ratio: c.interval.ratio,
            ci_low: c.interval.low,
            ci_high: c.interval.high,
          }
        : c.status === 'not-comparable'
          ? { reason: c.reason }
          : {}),
    });
  });
}
