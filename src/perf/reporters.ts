/**
 * Reporters turn a suite's result (and, when given, its comparison with a baseline) into text: a
 * readable console table, or JSON lines for machines (one object per operation, snake_case field
 * names with their unit, as shared/BENCH_SPEC.md's lines).
 *
 * Extension point: a reporter is any object implementing `Reporter`, a pure function of
 * `ReportInput` to text. The HTML report (charts of the latency distribution, percentiles per
 * operation, comparison with a baseline) will be one more `Reporter`, registered in
 * `builtInReporters` under `html`; everything it needs is in ReportInput (the samples of every
 * operation are in `result`).
 */
import type { Comparison, OperationComparison } from './baseline.js';
import type { OperationResult, SuiteResult } from './harness.js';

/** What a reporter renders. */
export interface ReportInput {
  readonly result: SuiteResult;
  /** The run set against a baseline, when there is one. */
  readonly comparison?: Comparison;
}

/** Renders a report as text. Reporters are pure: no I/O, the caller writes the text where it wants. */
export interface Reporter {
  /** The name a command line selects it by (`table`, `json`, later `html`). */
  readonly name: string;
  /** The media type of what `render` returns (`text/plain`, `application/x-ndjson`, `text/html`). */
  readonly mediaType: string;
  render(input: ReportInput): string;
}

// ---- formatting ----------------------------------------------------------------------------------

/** Four significant digits, without exponent notation for the ranges used here. */
function sig4(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  if (x === 0) return '0';
  const abs = Math.abs(x);
  if (abs >= 1000) return Math.round(x).toString();
  return Number(x.toPrecision(4)).toString();
}

/** A duration given in nanoseconds, in the unit that keeps it readable: `183.2 ns`, `12.5 µs`. */
export function formatNanoseconds(ns: number): string {
  const abs = Math.abs(ns);
  if (abs < 1e3) return `${sig4(ns)} ns`;
  if (abs < 1e6) return `${sig4(ns / 1e3)} µs`;
  if (abs < 1e9) return `${sig4(ns / 1e6)} ms`;
  return `${sig4(ns / 1e9)} s`;
}

/** A rate per second: `15.23 M/s`, `812 /s`. */
export function formatRate(perSecond: number): string {
  if (!Number.isFinite(perSecond)) return '-';
  if (perSecond >= 1e9) return `${sig4(perSecond / 1e9)} G/s`;
  if (perSecond >= 1e6) return `${sig4(perSecond / 1e6)} M/s`;
  if (perSecond >= 1e3) return `${sig4(perSecond / 1e3)} k/s`;
  return `${sig4(perSecond)} /s`;
}

/** Bytes: `72.2 B`, `3.1 KiB`. */
export function formatBytes(bytes: number): string {
  const abs = Math.abs(bytes);
  if (abs < 1024) return `${Number(bytes.toFixed(1))} B`;
  if (abs < 1024 ** 2) return `${sig4(bytes / 1024)} KiB`;
  return `${sig4(bytes / 1024 ** 2)} MiB`;
}

/** `1.04x [0.99, 1.09] no significant change`, or why there is no ratio. */
export function formatComparison(c: OperationComparison | undefined): string {
  if (c === undefined) return '-';
  if (c.status !== 'compared') return uncomparedText(c);
  const { ratio, low, high } = c.interval;
  return `${ratio.toFixed(2)}x [${low.toFixed(2)}, ${high.toFixed(2)}] ${c.verdict}`;
}

/** Why an operation has no ratio: new, not run, or not comparable (with the reason). */
export function uncomparedText(c: Exclude<OperationComparison, { status: 'compared' }>): string {
  switch (c.status) {
    case 'only-in-current':
      return 'new (not in baseline)';
    case 'only-in-baseline':
      return 'not run';
    case 'not-comparable':
      return `not comparable: ${c.reason}`;
  }
}

function comparisonsByName(comparison: Comparison | undefined): Map<string, OperationComparison> {
  return new Map((comparison?.operations ?? []).map((c) => [c.name, c]));
}

// ---- the console table ---------------------------------------------------------------------------

/** Lay out rows as a text table; `right` marks the columns aligned right (figures). */
function layout(
  header: readonly string[],
  rows: readonly (readonly string[])[],
  right: readonly boolean[],
): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (right[i] === true ? c.padStart(widths[i] as number) : c.padEnd(widths[i] as number)))
      .join('  ')
      .trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/**
 * The readable table: one row per operation with samples, mean, median, p99, p99.9, max, the
 * relative margin of error, ops/s, the heap allocated per call (when measured) and the verdict
 * against the baseline (when compared); failed operations say where and why; then a summary.
 */
export function renderTable(input: ReportInput): string {
  const { result, comparison } = input;
  const withMemory = result.operations.some((o) => o.state === 'ok' && o.memory !== null);
  const byName = comparisonsByName(comparison);
  const header = ['operation', 'samples', 'mean', 'median', 'p99', 'p99.9', 'max', '±rme', 'ops/s'];
  if (withMemory) header.push('alloc/op', 'retained/op');
  if (comparison !== undefined) header.push('vs baseline (ratio of medians, 95% CI)');
  const right = header.map((_, i) => i > 0 && i < header.length - (comparison === undefined ? 0 : 1));
  const rows = result.operations.map((o): string[] => {
    if (o.state === 'error') return [o.name, `FAILED in ${o.phase}: ${o.error.message}`];
    const s = o.stats;
    const row = [
      o.name,
      String(s.n),
      formatNanoseconds(s.mean),
      formatNanoseconds(s.median),
      formatNanoseconds(s.p99),
      formatNanoseconds(s.p999),
      formatNanoseconds(s.max),
      Number.isFinite(s.rme) ? `${s.rme.toFixed(2)}%` : 'inf',
      formatRate(o.opsPerSecond),
    ];
    if (withMemory) {
      row.push(
        o.memory === null ? '-' : formatBytes(o.memory.allocatedBytesPerOp),
        o.memory === null ? '-' : formatBytes(o.memory.retainedBytesPerOp),
      );
    }
    if (comparison !== undefined) row.push(formatComparison(byName.get(o.name)));
    return row;
  });
  const failedRows = rows.filter((r) => r.length === 2);
  const table = layout(
    header,
    rows.filter((r) => r.length > 2),
    right,
  );
  const lines = [
    `suite ${result.suite}: ${result.operations.length} operations in ${(result.durationMs / 1000).toFixed(1)} s`,
    table,
  ];
  for (const [name, message] of failedRows) lines.push(`${name}: ${message}`);
  if (comparison !== undefined) {
    for (const c of comparison.operations) {
      if (c.status === 'only-in-baseline') lines.push(`${c.name}: in the baseline, not run`);
    }
    const threshold = `${(comparison.threshold * 100).toFixed(0)}%`;
    lines.push(
      `baseline: ${comparison.regressions.length} regression(s), ${comparison.improvements.length} improvement(s) ` +
        `(bootstrap ${Math.round(comparison.confidence * 100)}% CI of the median ratio beyond ±${threshold})`,
    );
    if (comparison.regressions.length > 0) lines.push(`regressions: ${comparison.regressions.join(', ')}`);
    if (comparison.environmentChanges.length > 0) {
      lines.push(`note: the baseline ran on a different ${comparison.environmentChanges.join(', ')}`);
    }
  }
  const env = result.environment;
  lines.push(`node ${env.node} on ${env.platform}/${env.arch}, ${env.cpus} cpus (${env.cpuModel})`);
  return lines.join('\n');
}

// ---- JSON lines ----------------------------------------------------------------------------------

/** A finite number, or null (JSON has no Infinity). */
function num(x: number): number | null {
  return Number.isFinite(x) ? x : null;
}

/**
 * One operation's JSON object: `suite`, `operation`, `state`, then for a measured one `n`,
 * `mean_ns`, `median_ns`, `p90_ns`, `p99_ns`, `p999_ns`, `min_ns`, `max_ns`, `sd_ns`, `rme_pct`,
 * `ops_per_s`, `async`, `batch`, `stop_reason`, with memory `allocated_bytes_per_op`,
 * `retained_bytes_per_op`, and against a baseline `baseline_status`, `baseline_verdict`,
 * `baseline_ratio`, `baseline_ci_low`, `baseline_ci_high`; for a failed one `phase` and `error`.
 */
export function jsonRecord(
  suiteName: string,
  o: OperationResult,
  comparison?: OperationComparison,
): Record<string, unknown> {
  const record: Record<string, unknown> = { suite: suiteName, operation: o.name, state: o.state };
  if (o.state === 'error') {
    record.phase = o.phase;
    record.error = o.error.message;
  } else {
    const s = o.stats;
    Object.assign(record, {
      n: s.n,
      mean_ns: s.mean,
      median_ns: s.median,
      p90_ns: s.p90,
      p99_ns: s.p99,
      p999_ns: s.p999,
      min_ns: s.min,
      max_ns: s.max,
      sd_ns: s.sd,
      rme_pct: num(s.rme),
      ops_per_s: num(o.opsPerSecond),
      async: o.async,
      batch: o.batch,
      stop_reason: o.stopReason,
    });
    if (o.memory !== null) {
      record.allocated_bytes_per_op = o.memory.allocatedBytesPerOp;
      record.retained_bytes_per_op = o.memory.retainedBytesPerOp;
    }
  }
  if (comparison !== undefined) {
    record.baseline_status = comparison.status;
    if (comparison.status === 'compared') {
      record.baseline_verdict = comparison.verdict;
      record.baseline_ratio = comparison.interval.ratio;
      record.baseline_ci_low = comparison.interval.low;
      record.baseline_ci_high = comparison.interval.high;
    }
  }
  return record;
}

/** JSON lines: one object per operation (see jsonRecord), in the run's order, newline-terminated. */
export function renderJsonLines(input: ReportInput): string {
  const byName = comparisonsByName(input.comparison);
  return input.result.operations
    .map((o) => `${JSON.stringify(jsonRecord(input.result.suite, o, byName.get(o.name)))}\n`)
    .join('');
}

/** The console table reporter. */
export const tableReporter: Reporter = { name: 'table', mediaType: 'text/plain', render: renderTable };

/** The JSON lines reporter. */
export const jsonReporter: Reporter = {
  name: 'json',
  mediaType: 'application/x-ndjson',
  render: renderJsonLines,
};

/** The reporters that ship with mabeam, by name (the HTML reporter joins them here). */
export const builtInReporters: Readonly<Record<string, Reporter>> = {
  table: tableReporter,
  json: jsonReporter,
};
