/**
 * The HTML report: one self-contained HTML file with charts of a benchmark run, to open in any
 * browser or attach to a CI run. Nothing is fetched: the CSS and one small script are inline and
 * every chart is pre-rendered inline SVG, so the file reads the same with scripts off. A Content
 * Security Policy in the page forbids every network request and every script but its own (by hash),
 * so even a name that slipped past escaping could not run code.
 *
 * What it shows, for whatever it is given:
 * - a harness run (`result`, a SuiteResult): a table of every operation's statistics, the latency
 *   distribution of each operation (a histogram of its samples: `<svg data-chart="latency-distribution"
 *   data-operation="name">`, one `<rect>` per bin), and its percentiles (`<svg data-chart="percentiles">`,
 *   one `<rect>` per operation and percentile: p50, p90, p99, p99.9);
 * - its comparison with a baseline (`comparison`): the ratio of medians per operation with its
 *   bootstrap confidence interval as an error bar, colored by verdict (`<svg data-chart="baseline-comparison">`,
 *   one `<rect>` per compared operation), and a table of every operation's verdict;
 * - bench-suite workloads (`workloads`, runner.ts's WorkloadResults: the JSON-lines figures such as
 *   `p50_us`, `p99_us`, `ops_per_s`): a table of every figure, the latency figures they report
 *   (`<svg data-chart="workload-latency">`, one `<rect>` per workload and latency figure) and their
 *   throughput (`<svg data-chart="workload-throughput">`, one `<rect>` per `*_per_s` figure);
 * - a soak (`soak`, soak.ts's SoakReport): its growth rates, and line charts over time of the
 *   latency (`soak-latency`: p50 and p99; `soak-operation-p99`: p99 per operation), the process
 *   memory (`soak-memory`: heap after GC and RSS) and the memory per agent (`soak-agent-memory`),
 *   each series a `<polyline>` with one `<circle>` per point.
 *
 * Every `<rect>` in a chart is a bar (axes and grids are lines; the soak's points are `<circle>`s), with its figures in `data-*`
 * attributes and a `<title>` (the browser's tooltip). Scales are linear, or logarithmic when the
 * values of one chart span more than two orders of magnitude (`data-scale="log"`).
 *
 * All text that comes from the caller (suite, operation and workload names, error messages, the
 * title) is escaped. The script only makes tables sortable and marks the page rendered
 * (`<html data-ready="true">`, and `#rendered` gives the number of charts and bars it found).
 */
import {
  CHART_WIDTH,
  dataNumber,
  escapeHtml,
  htmlAttributes,
  htmlFigure,
  htmlLegend,
  niceStep,
  renderReportPage,
  reportScript,
  reportStylesheet,
  shortenLabel,
  svgChartOpen,
  svgCoordinate,
} from '../foundation/html.js';
import type { Comparison, ComparisonVerdict, OperationComparison } from './baseline.js';
import type { OperationOk, SuiteResult } from './harness.js';
import {
  formatBytes,
  formatComparison,
  formatNanoseconds,
  formatRate,
  type Reporter,
  type ReportInput,
} from './reporters.js';
import type { WorkloadResult } from './runner.js';
import { formatLabels, lineName } from './slo.js';
import type { SoakInterval, SoakReport } from './soak.js';
import { quantile, sortedCopy } from './stats.js';

export { escapeHtml } from '../foundation/html.js';

/** What the HTML report renders; every part is optional (a report of nothing says so). */
export interface HtmlReportInput {
  /** A harness run: statistics, latency distributions and percentiles per operation. */
  readonly result?: SuiteResult;
  /** The run set against a baseline. */
  readonly comparison?: Comparison;
  /** Bench-suite workloads (runner.ts): their figures as a table and bar charts. */
  readonly workloads?: readonly WorkloadResult[];
  /** A soak (soak.ts): growth rates, and latency and memory over time as line charts. */
  readonly soak?: SoakReport;
  /** The page's title (default: `mabeam bench` and the suite's name). */
  readonly title?: string;
  /** When the report was made, shown in the page (default: now). */
  readonly generatedAt?: Date | string;
  /** Bins of each latency histogram (default 40; fewer when there are fewer samples). */
  readonly bins?: number;
}

// ---- numbers ------------------------------------------------------------------------------------

/** A coordinate for an SVG attribute: at most two decimals, never NaN. */
function px(x: number): string {
  return svgCoordinate(x, 2);
}

// ---- histogram -----------------------------------------------------------------------------------

/** One bin of a latency histogram: samples in [from, to) (the last regular bin includes `to`). */
export interface HistogramBin {
  /** Lower bound, in the samples' unit (ns for the harness). */
  readonly from: number;
  /** Upper bound. */
  readonly to: number;
  readonly count: number;
  /** True for the tail bin: the samples above the 99th percentile, from it to the maximum. */
  readonly overflow: boolean;
}

/**
 * The bins of a latency histogram: `bins` equal-width bins (fewer when there are fewer samples)
 * from the minimum to the 99th percentile, so a few outliers do not squeeze the distribution into
 * a couple of bars, plus one overflow bin for the samples above it (the slowest 1%) when there are
 * any. All samples
 * equal: one bin. No samples: no bins. Counts add up to the number of samples.
 */
export function histogramBins(samples: ArrayLike<number>, bins = 40): HistogramBin[] {
  if (!Number.isInteger(bins) || bins < 1)
    throw new RangeError(`bins must be a whole number >= 1, got ${bins}`);
  const sorted = sortedCopy(samples);
  const n = sorted.length;
  if (n === 0) return [];
  const lo = sorted[0] as number;
  const max = sorted[n - 1] as number;
  const hi = quantile(sorted, 0.99);
  if (!(hi > lo)) {
    // Everything up to the 99th percentile is one value.
    const atLo = sorted.filter((x) => x <= lo).length;
    const out: HistogramBin[] = [{ from: lo, to: lo, count: atLo, overflow: false }];
    if (atLo < n) out.push({ from: lo, to: max, count: n - atLo, overflow: true });
    return out;
  }
  const k = Math.min(bins, n);
  const width = (hi - lo) / k;
  const counts = new Array<number>(k).fill(0);
  let overflow = 0;
  for (const x of sorted) {
    if (x > hi) overflow++;
    else {
      const i = Math.min(k - 1, Math.floor((x - lo) / width));
      counts[i] = (counts[i] as number) + 1;
    }
  }
  const out: HistogramBin[] = counts.map((count, i) => ({
    from: lo + i * width,
    to: i === k - 1 ? hi : lo + (i + 1) * width,
    count,
    overflow: false,
  }));
  if (overflow > 0) out.push({ from: hi, to: max, count: overflow, overflow: true });
  return out;
}

// ---- scales --------------------------------------------------------------------------------------

interface Scale {
  (value: number): number;
  readonly kind: 'linear' | 'log';
  readonly ticks: readonly number[];
}

/**
 * A scale from values to x coordinates in [x0, x1]: linear from 0, or logarithmic by decades when
 * the positive values span more than a factor of 100.
 */
function valueScale(values: readonly number[], x0: number, x1: number): Scale {
  const positive = values.filter((v) => Number.isFinite(v) && v > 0);
  const max = Math.max(0, ...positive);
  const minPos = Math.min(...positive);
  if (positive.length > 0 && max / minPos > 100) {
    const lo = 10 ** Math.floor(Math.log10(minPos));
    const hi = 10 ** Math.max(Math.ceil(Math.log10(max)), Math.log10(lo) + 1);
    const span = Math.log10(hi) - Math.log10(lo);
    const f = (v: number) =>
      x0 + ((Math.log10(Math.max(lo, Math.min(hi, v))) - Math.log10(lo)) / span) * (x1 - x0);
    const ticks: number[] = [];
    for (let t = lo; t <= hi * 1.0001; t *= 10) ticks.push(t);
    return Object.assign(f, { kind: 'log' as const, ticks });
  }
  const step = niceStep((max || 1) / 4);
  const top = Math.ceil((max || 1) / step) * step;
  const f = (v: number) => x0 + (Math.max(0, Math.min(top, Number.isFinite(v) ? v : 0)) / top) * (x1 - x0);
  const ticks: number[] = [];
  for (let i = 0; i * step <= top * 1.0001; i++) ticks.push(i * step);
  return Object.assign(f, { kind: 'linear' as const, ticks });
}

// ---- charts --------------------------------------------------------------------------------------

/** A bar of a horizontal bar chart. */
interface Bar {
  /** Short label left of the bar (`p99`, `ops_per_s`). */
  readonly label: string;
  readonly value: number;
  readonly color: string;
  /** The value as text, right of the bar. */
  readonly text: string;
  /** Tooltip. */
  readonly title: string;
  readonly data: Readonly<Record<string, string | number>>;
}

interface BarGroup {
  readonly name: string;
  readonly bars: readonly Bar[];
}

/**
 * Horizontal bars grouped by operation or workload: the group's name on the left, each bar's
 * label next to it, its value at its end, an axis with ticks and a grid below.
 */
function horizontalBars(
  chart: string,
  label: string,
  groups: readonly BarGroup[],
  format: (v: number) => string,
): string {
  const barH = 14;
  const gap = 10;
  const top = 8;
  const nameW = 150;
  const x0 = nameW + 80;
  const x1 = CHART_WIDTH - 90;
  const rows = groups.reduce((n, g) => n + g.bars.length, 0);
  if (rows === 0) {
    return `${svgChartOpen(chart, 30, label, { 'data-scale': 'linear' })}<text x="4" y="18" fill="#777">no figures to chart</text></svg>`;
  }
  const plotH = rows * (barH + 2) + Math.max(0, groups.length - 1) * gap;
  const height = top + plotH + 34;
  const scale = valueScale(
    groups.flatMap((g) => g.bars.map((b) => b.value)),
    x0,
    x1,
  );
  const parts = [svgChartOpen(chart, height, label, { 'data-scale': scale.kind })];
  const axisY = top + plotH + 4;
  for (const t of scale.ticks) {
    const x = scale(t);
    parts.push(
      `<line class="grid" x1="${px(x)}" x2="${px(x)}" y1="${top}" y2="${px(axisY)}" stroke="#e3e6ea"/>`,
      `<text x="${px(x)}" y="${px(axisY + 14)}" text-anchor="middle" fill="#555">${escapeHtml(format(t))}</text>`,
    );
  }
  parts.push(`<line class="axis" x1="${x0}" x2="${x1}" y1="${px(axisY)}" y2="${px(axisY)}" stroke="#888"/>`);
  let y = top;
  for (const g of groups) {
    const groupH = g.bars.length * (barH + 2);
    parts.push(
      `<text class="group" x="4" y="${px(y + groupH / 2 + 4)}" font-weight="600" fill="#222">` +
        `${escapeHtml(shortenLabel(g.name, 24))}<title>${escapeHtml(g.name)}</title></text>`,
    );
    for (const b of g.bars) {
      const w = Math.max(scale(b.value) - x0, Number.isFinite(b.value) && b.value > 0 ? 1 : 0);
      parts.push(
        `<text x="${x0 - 6}" y="${px(y + barH - 3)}" text-anchor="end" fill="#555">${escapeHtml(b.label)}</text>`,
        `<rect x="${x0}" y="${px(y)}" width="${px(w)}" height="${barH}" fill="${b.color}"${htmlAttributes(b.data)}>` +
          `<title>${escapeHtml(b.title)}</title></rect>`,
        `<text class="value" x="${px(x0 + w + 4)}" y="${px(y + barH - 3)}" fill="#222">${escapeHtml(b.text)}</text>`,
      );
      y += barH + 2;
    }
    y += gap;
  }
  parts.push('</svg>');
  return parts.join('');
}

/** The histogram of one operation's samples (ns per call), with the median marked. */
function distributionChart(op: OperationOk, binCount: number): string {
  const bins = histogramBins(op.samples, binCount);
  const height = 190;
  const top = 10;
  const x0 = 50;
  const x1 = CHART_WIDTH - 12;
  const plotBottom = height - 40;
  const regular = bins.filter((b) => !b.overflow);
  const hasOverflow = bins.length > regular.length;
  // Equal-width slots; the overflow bin gets one slot after a small gap.
  const slots = regular.length + (hasOverflow ? 1.5 : 0);
  const slotW = (x1 - x0) / Math.max(1, slots);
  const maxCount = Math.max(1, ...bins.map((b) => b.count));
  const yOf = (count: number) => plotBottom - (count / maxCount) * (plotBottom - top);
  const parts = [
    svgChartOpen('latency-distribution', height, `latency distribution of ${op.name}`, {
      'data-operation': op.name,
      'data-samples': op.stats.n,
    }),
  ];
  for (const frac of [0, 0.5, 1]) {
    const y = yOf(maxCount * frac);
    parts.push(
      `<line class="grid" x1="${x0}" x2="${x1}" y1="${px(y)}" y2="${px(y)}" stroke="#e3e6ea"/>`,
      `<text x="${x0 - 6}" y="${px(y + 4)}" text-anchor="end" fill="#555">${Math.round(maxCount * frac)}</text>`,
    );
  }
  bins.forEach((b, i) => {
    const slot = b.overflow ? regular.length + 0.5 : i;
    const x = x0 + slot * slotW;
    const y = yOf(b.count);
    const range = b.overflow
      ? `above p99 (${formatNanoseconds(b.from)} to ${formatNanoseconds(b.to)})`
      : `${formatNanoseconds(b.from)} to ${formatNanoseconds(b.to)}`;
    parts.push(
      `<rect x="${px(x + 0.5)}" y="${px(y)}" width="${px(Math.max(1, slotW - 1))}" height="${px(plotBottom - y)}" ` +
        `fill="${b.overflow ? '#e15759' : '#4e79a7'}"${htmlAttributes({
          'data-from': b.from,
          'data-to': b.to,
          'data-count': b.count,
          ...(b.overflow ? { 'data-overflow': 'true' } : {}),
        })}><title>${escapeHtml(`${range}: ${b.count} samples`)}</title></rect>`,
    );
  });
  parts.push(
    `<line class="axis" x1="${x0}" x2="${x1}" y1="${plotBottom}" y2="${plotBottom}" stroke="#888"/>`,
  );
  // Median marker, placed within the regular bins.
  const first = regular[0];
  const last = regular[regular.length - 1];
  if (first !== undefined && last !== undefined) {
    const span = last.to - first.from;
    const median = op.stats.median;
    const mx = span > 0 ? x0 + ((median - first.from) / span) * regular.length * slotW : x0 + slotW / 2;
    parts.push(
      `<line class="marker" data-marker="median" x1="${px(mx)}" x2="${px(mx)}" y1="${top}" y2="${plotBottom}" ` +
        `stroke="#222" stroke-dasharray="4 3"><title>median ${escapeHtml(formatNanoseconds(median))}</title></line>`,
      `<text x="${px(Math.min(mx + 4, x1 - 80))}" y="${top + 10}" fill="#222">median ${escapeHtml(formatNanoseconds(median))}</text>`,
      `<text x="${x0}" y="${plotBottom + 16}" fill="#555">${escapeHtml(formatNanoseconds(first.from))}</text>`,
      `<text x="${px(x0 + regular.length * slotW)}" y="${plotBottom + 16}" text-anchor="end" fill="#555">` +
        `${escapeHtml(formatNanoseconds(last.to))} (p99)</text>`,
    );
  }
  if (hasOverflow) {
    parts.push(
      `<text x="${x1}" y="${plotBottom + 30}" text-anchor="end" fill="#e15759">tail above p99</text>`,
    );
  }
  parts.push(
    `<text x="${px((x0 + x1) / 2)}" y="${height - 4}" text-anchor="middle" fill="#555">` +
      `time per call (${op.stats.n} samples; bar height: samples per bin)</text>`,
    '</svg>',
  );
  return parts.join('');
}

const PERCENTILES = [
  { key: 'p50', label: 'p50', color: '#4e79a7', of: (o: OperationOk) => o.stats.median },
  { key: 'p90', label: 'p90', color: '#59a14f', of: (o: OperationOk) => o.stats.p90 },
  { key: 'p99', label: 'p99', color: '#f28e2b', of: (o: OperationOk) => o.stats.p99 },
  { key: 'p999', label: 'p99.9', color: '#e15759', of: (o: OperationOk) => o.stats.p999 },
] as const;

function percentilesChart(ops: readonly OperationOk[]): string {
  const groups: BarGroup[] = ops.map((o) => ({
    name: o.name,
    bars: PERCENTILES.map((p) => {
      const value = p.of(o);
      return {
        label: p.label,
        value,
        color: p.color,
        text: formatNanoseconds(value),
        title: `${o.name} ${p.label}: ${formatNanoseconds(value)}`,
        data: { 'data-operation': o.name, 'data-percentile': p.key, 'data-value': value },
      };
    }),
  }));
  return horizontalBars('percentiles', 'latency percentiles per operation', groups, formatNanoseconds);
}

const VERDICT_COLORS: Readonly<Record<ComparisonVerdict, string>> = {
  regression: '#c0392b',
  improvement: '#1e8449',
  'no significant change': '#8a949e',
};

type Compared = Extract<OperationComparison, { status: 'compared' }>;

/** Ratio of medians (current / baseline) per operation: a bar from 1 and the CI as an error bar. */
function comparisonChart(comparison: Comparison): string {
  const compared = comparison.operations.filter((c): c is Compared => c.status === 'compared');
  const rowH = 22;
  const top = 10;
  const x0 = 170;
  const x1 = CHART_WIDTH - 150;
  const plotH = Math.max(1, compared.length) * rowH;
  const height = top + plotH + 40;
  const t = comparison.threshold;
  const lows = compared.map((c) => c.interval.low);
  const highs = compared.map((c) => c.interval.high);
  let lo = Math.min(1 - t, ...lows);
  let hi = Math.max(1 + t, ...highs);
  const pad = (hi - lo) * 0.08;
  lo = Math.max(0, lo - pad);
  hi += pad;
  const xOf = (v: number) => x0 + ((Math.min(hi, Math.max(lo, v)) - lo) / (hi - lo)) * (x1 - x0);
  const axisY = top + plotH + 4;
  const parts = [
    svgChartOpen(
      'baseline-comparison',
      height,
      'ratio of medians (current / baseline) with confidence interval',
      {
        'data-threshold': t,
        'data-confidence': comparison.confidence,
      },
    ),
  ];
  const step = niceStep((hi - lo) / 5);
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9; v += step) {
    const x = xOf(v);
    parts.push(
      `<line class="grid" x1="${px(x)}" x2="${px(x)}" y1="${top}" y2="${px(axisY)}" stroke="#e3e6ea"/>`,
      `<text x="${px(x)}" y="${px(axisY + 14)}" text-anchor="middle" fill="#555">${escapeHtml(`${Number(v.toFixed(3))}x`)}</text>`,
    );
  }
  parts.push(
    `<line class="threshold" x1="${px(xOf(1 - t))}" x2="${px(xOf(1 - t))}" y1="${top}" y2="${px(axisY)}" stroke="#aab" stroke-dasharray="3 3"/>`,
    `<line class="threshold" x1="${px(xOf(1 + t))}" x2="${px(xOf(1 + t))}" y1="${top}" y2="${px(axisY)}" stroke="#aab" stroke-dasharray="3 3"/>`,
    `<line class="reference" x1="${px(xOf(1))}" x2="${px(xOf(1))}" y1="${top}" y2="${px(axisY)}" stroke="#333"/>`,
    `<line class="axis" x1="${x0}" x2="${x1}" y1="${px(axisY)}" y2="${px(axisY)}" stroke="#888"/>`,
    `<text x="${px((x0 + x1) / 2)}" y="${px(axisY + 30)}" text-anchor="middle" fill="#555">` +
      `${escapeHtml(`current / baseline median; error bar: ${Math.round(comparison.confidence * 100)}% bootstrap CI; dashed: ±${Number((t * 100).toFixed(2))}%`)}</text>`,
  );
  if (compared.length === 0) {
    parts.push(`<text x="${x0}" y="${top + 14}" fill="#777">no operation could be compared</text>`);
  }
  compared.forEach((c, i) => {
    const y = top + i * rowH;
    const mid = y + rowH / 2;
    const color = VERDICT_COLORS[c.verdict];
    const { ratio, low, high } = c.interval;
    const a = xOf(Math.min(1, ratio));
    const b = xOf(Math.max(1, ratio));
    const text = formatComparison(c);
    parts.push(
      `<text x="4" y="${px(mid + 4)}" font-weight="600" fill="#222">${escapeHtml(shortenLabel(c.name, 26))}<title>${escapeHtml(c.name)}</title></text>`,
      `<rect x="${px(a)}" y="${px(mid - 6)}" width="${px(Math.max(1, b - a))}" height="12" fill="${color}" fill-opacity="0.75"` +
        `${htmlAttributes({ 'data-operation': c.name, 'data-verdict': c.verdict, 'data-ratio': ratio, 'data-low': low, 'data-high': high })}>` +
        `<title>${escapeHtml(`${c.name}: ${text}`)}</title></rect>`,
      `<line class="ci" x1="${px(xOf(low))}" x2="${px(xOf(high))}" y1="${px(mid)}" y2="${px(mid)}" stroke="#222" stroke-width="1.5"/>`,
      `<line class="ci" x1="${px(xOf(low))}" x2="${px(xOf(low))}" y1="${px(mid - 5)}" y2="${px(mid + 5)}" stroke="#222" stroke-width="1.5"/>`,
      `<line class="ci" x1="${px(xOf(high))}" x2="${px(xOf(high))}" y1="${px(mid - 5)}" y2="${px(mid + 5)}" stroke="#222" stroke-width="1.5"/>`,
      `<text x="${x1 + 6}" y="${px(mid + 4)}" fill="${color}">${escapeHtml(`${ratio.toFixed(2)}x ${c.verdict === 'no significant change' ? '≈' : c.verdict}`)}</text>`,
    );
  });
  parts.push('</svg>');
  return parts.join('');
}

// ---- workload figures ----------------------------------------------------------------------------

const UNIT_NS: Readonly<Record<string, number>> = { ns: 1, us: 1e3, ms: 1e6, s: 1e9 };

/** A latency figure of a workload: `p99_us`, `median_ms`, `mean_us`, `ns_per_op`. */
export interface LatencyField {
  readonly field: string;
  readonly label: string;
  /** Sort key: the percentile, 50 for the median, 101 for the mean, 102 per op, 103 per other thing. */
  readonly order: number;
  readonly ns: number;
}

/**
 * The latency figures among a workload's fields, in nanoseconds, ordered p50, p90, p99, p99.9,
 * then mean, then per-op, then other times per thing: `pNN_<unit>` (digits past the second are
 * decimals: p999 is p99.9), `median_<unit>`, `mean_<unit>`, `<unit>_per_op`, and `<unit>_per_<x>`
 * (`us_per_trial`, `ns_per_spawn`: labelled `per <x>`), with unit ns, us, ms or s.
 */
export function latencyFields(fields: Readonly<Record<string, number>>): LatencyField[] {
  const out: LatencyField[] = [];
  for (const [field, value] of Object.entries(fields)) {
    const m = /^(?:(p\d+|median|mean)_(ns|us|ms|s)|(ns|us|ms|s)_per_([a-z0-9_]+))$/.exec(field);
    if (m === null || !Number.isFinite(value)) continue;
    const unit = (m[2] ?? m[3]) as string;
    const stat = m[1];
    let order: number;
    let label: string;
    if (stat === undefined) {
      const per = m[4] as string;
      order = per === 'op' ? 102 : 103;
      label = `per ${per.replaceAll('_', ' ')}`;
    } else if (stat.startsWith('p')) {
      const digits = stat.slice(1);
      const pct = digits.length > 2 ? Number(`${digits.slice(0, 2)}.${digits.slice(2)}`) : Number(digits);
      order = pct;
      label = `p${pct}`;
    } else if (stat === 'median') {
      order = 50;
      label = 'median';
    } else {
      order = 101;
      label = 'mean';
    }
    out.push({ field, label, order, ns: value * (UNIT_NS[unit] as number) });
  }
  return out.sort((a, b) => a.order - b.order);
}

/** A throughput figure of a workload, per second; `derived` when computed from a time per op. */
export interface ThroughputField {
  readonly field: string;
  readonly value: number;
  readonly derived: boolean;
}

/**
 * The throughput figures among a workload's fields: every `<what>_per_s`; a workload with none but
 * a time per operation (`ns_per_op`, `us_per_op`...) gets ops/s derived from it (1 / time), as the
 * gate's throughput budgets read it.
 */
export function throughputFields(fields: Readonly<Record<string, number>>): ThroughputField[] {
  const rates = Object.entries(fields)
    .filter(([field, value]) => /_per_s$/.test(field) && Number.isFinite(value))
    .map(([field, value]) => ({ field, value, derived: false }));
  if (rates.length > 0) return rates;
  return Object.entries(fields).flatMap(([field, value]) => {
    const m = /^(ns|us|ms|s)_per_op$/.exec(field);
    if (m === null || !(Number.isFinite(value) && value > 0)) return [];
    return [{ field, value: 1e9 / (value * (UNIT_NS[m[1] as string] as number)), derived: true }];
  });
}

const LATENCY_COLORS = ['#4e79a7', '#59a14f', '#f28e2b', '#e15759', '#b07aa1', '#76b7b2'];

function latencyColor(label: string, i: number): string {
  const byLabel: Record<string, string> = {
    p50: '#4e79a7',
    median: '#4e79a7',
    p90: '#59a14f',
    p99: '#f28e2b',
    'p99.9': '#e15759',
    mean: '#b07aa1',
    'per op': '#76b7b2',
  };
  return byLabel[label] ?? (LATENCY_COLORS[i % LATENCY_COLORS.length] as string);
}

function workloadLatencyChart(workloads: readonly WorkloadResult[]): string {
  const groups: BarGroup[] = [];
  for (const w of workloads) {
    if (w.fields === null) continue;
    const fields = latencyFields(w.fields);
    if (fields.length === 0) continue;
    const name = lineName(w.workload, w.labels);
    groups.push({
      name,
      bars: fields.map((f, i) => ({
        label: f.label,
        value: f.ns,
        color: latencyColor(f.label, i),
        text: formatNanoseconds(f.ns),
        title: `${name} ${f.field} = ${w.fields?.[f.field]}`,
        data: {
          'data-workload': w.workload,
          ...labelData(w),
          'data-field': f.field,
          'data-value': w.fields?.[f.field] ?? Number.NaN,
          'data-ns': f.ns,
        },
      })),
    });
  }
  return horizontalBars('workload-latency', 'latency figures per workload', groups, formatNanoseconds);
}

function workloadThroughputChart(workloads: readonly WorkloadResult[]): string {
  const groups: BarGroup[] = [];
  for (const w of workloads) {
    if (w.fields === null) continue;
    const fields = throughputFields(w.fields);
    if (fields.length === 0) continue;
    const name = lineName(w.workload, w.labels);
    groups.push({
      name,
      bars: fields.map((f) => ({
        label: f.derived ? 'ops' : shortenLabel(f.field.replace(/_per_s$/, ''), 12),
        value: f.value,
        color: f.derived ? '#76b7b2' : '#4e79a7',
        text: f.derived ? `${formatRate(f.value)} (1 / ${f.field})` : formatRate(f.value),
        title: f.derived
          ? `${name}: ${formatRate(f.value)}, from ${f.field} = ${w.fields?.[f.field]}`
          : `${name} ${f.field} = ${f.value}`,
        data: {
          'data-workload': w.workload,
          ...labelData(w),
          'data-field': f.field,
          'data-value': f.value,
          ...(f.derived ? { 'data-derived': 'true' } : {}),
        },
      })),
    });
  }
  return horizontalBars('workload-throughput', 'throughput per workload', groups, formatRate);
}

/** A figure as the bench table prints it: up to 4 decimals, thousands separated. */
function figure(value: number): string {
  return Number.isFinite(value) ? value.toLocaleString('en-US', { maximumFractionDigits: 4 }) : String(value);
}

/** `data-labels="sampler=tpe"` for a labelled line of a workload; nothing otherwise. */
function labelData(w: WorkloadResult): Record<string, string> {
  const text = formatLabels(w.labels ?? {});
  return text === '' ? {} : { 'data-labels': text };
}

function workloadTable(workloads: readonly WorkloadResult[]): string {
  const rows = workloads.map((w) => {
    const name = `<td>${escapeHtml(lineName(w.workload, w.labels))}</td><td class="num" data-sort="${w.runs}">${w.runs}</td>`;
    if (w.fields === null) {
      return `<tr class="failed" data-workload="${escapeHtml(w.workload)}">${name}<td class="bad">FAILED</td><td>${escapeHtml(w.error ?? '')}</td></tr>`;
    }
    const figs = Object.entries(w.fields)
      .map(
        ([field, value]) =>
          `<span class="fig"${htmlAttributes({ 'data-field': field, 'data-value': value })}><span class="k">${escapeHtml(field)}</span> ${escapeHtml(figure(value))}</span>`,
      )
      .join(' ');
    return `<tr${htmlAttributes({ 'data-workload': w.workload, ...labelData(w) })}>${name}<td class="ok">ok</td><td>${figs}</td></tr>`;
  });
  return (
    '<table class="sortable" data-table="workloads"><thead><tr><th>workload</th><th>runs</th><th>status</th>' +
    `<th>figures (median of the runs)</th></tr></thead><tbody>${rows.join('')}</tbody></table>`
  );
}

// ---- suite tables --------------------------------------------------------------------------------

function numCell(value: number, text: string): string {
  return `<td class="num" data-sort="${dataNumber(value)}">${escapeHtml(text)}</td>`;
}

function operationsTable(result: SuiteResult, comparison: Comparison | undefined): string {
  const withMemory = result.operations.some((o) => o.state === 'ok' && o.memory !== null);
  const byName = new Map((comparison?.operations ?? []).map((c) => [c.name, c]));
  const head = ['operation', 'samples', 'mean', 'median', 'p90', 'p99', 'p99.9', 'max', '±rme', 'ops/s'];
  if (withMemory) head.push('alloc/op', 'retained/op');
  if (comparison !== undefined) head.push('vs baseline');
  const rows = result.operations.map((o) => {
    const name = `<td>${escapeHtml(o.name)}</td>`;
    if (o.state === 'error') {
      return (
        `<tr class="failed" data-operation="${escapeHtml(o.name)}">${name}` +
        `<td colspan="${head.length - 1}" class="bad">${escapeHtml(`FAILED in ${o.phase}: ${o.error.message}`)}</td></tr>`
      );
    }
    const s = o.stats;
    const cells = [
      numCell(s.n, String(s.n)),
      numCell(s.mean, formatNanoseconds(s.mean)),
      numCell(s.median, formatNanoseconds(s.median)),
      numCell(s.p90, formatNanoseconds(s.p90)),
      numCell(s.p99, formatNanoseconds(s.p99)),
      numCell(s.p999, formatNanoseconds(s.p999)),
      numCell(s.max, formatNanoseconds(s.max)),
      numCell(s.rme, Number.isFinite(s.rme) ? `${s.rme.toFixed(2)}%` : 'inf'),
      numCell(o.opsPerSecond, formatRate(o.opsPerSecond)),
    ];
    if (withMemory) {
      cells.push(
        o.memory === null
          ? '<td>-</td>'
          : numCell(o.memory.allocatedBytesPerOp, formatBytes(o.memory.allocatedBytesPerOp)),
        o.memory === null
          ? '<td>-</td>'
          : numCell(o.memory.retainedBytesPerOp, formatBytes(o.memory.retainedBytesPerOp)),
      );
    }
    if (comparison !== undefined) {
      const c = byName.get(o.name);
      const verdict = c?.status === 'compared' ? c.verdict : (c?.status ?? 'none');
      cells.push(
        `<td class="verdict" data-verdict="${escapeHtml(verdict)}">${escapeHtml(formatComparison(c))}</td>`,
      );
    }
    return `<tr data-operation="${escapeHtml(o.name)}">${name}${cells.join('')}</tr>`;
  });
  return (
    `<table class="sortable" data-table="operations"><thead><tr>${head.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr></thead>` +
    `<tbody>${rows.join('')}</tbody></table>`
  );
}

function comparisonTable(comparison: Comparison): string {
  const rows = comparison.operations.map((c) => {
    const verdict = c.status === 'compared' ? c.verdict : c.status;
    const medians =
      c.status === 'compared'
        ? `${formatNanoseconds(c.baselineMedian)} → ${formatNanoseconds(c.currentMedian)}`
        : '-';
    return (
      `<tr data-operation="${escapeHtml(c.name)}"><td>${escapeHtml(c.name)}</td><td>${escapeHtml(medians)}</td>` +
      `<td class="verdict" data-verdict="${escapeHtml(verdict)}">${escapeHtml(formatComparison(c))}</td></tr>`
    );
  });
  const notes: string[] = [
    `${comparison.regressions.length} regression(s), ${comparison.improvements.length} improvement(s): ` +
      `a change counts when the ${Math.round(comparison.confidence * 100)}% bootstrap confidence interval of the ` +
      `ratio of medians (${comparison.resamples} resamples, seed ${comparison.seed}) lies beyond ` +
      `±${Number((comparison.threshold * 100).toFixed(2))}%.`,
  ];
  if (comparison.environmentChanges.length > 0) {
    notes.push(`The baseline ran on a different ${comparison.environmentChanges.join(', ')}.`);
  }
  return (
    `${notes.map((n) => `<p class="note">${escapeHtml(n)}</p>`).join('')}` +
    '<table class="sortable" data-table="comparison"><thead><tr><th>operation</th><th>median: baseline → current</th>' +
    `<th>ratio [CI] verdict</th></tr></thead><tbody>${rows.join('')}</tbody></table>`
  );
}

// ---- the page ------------------------------------------------------------------------------------

/** The base stylesheet, with the figures of a workload and the verdicts of a comparison. */
const STYLE = reportStylesheet({
  rules:
    '.fig { display: inline-block; margin: 0 10px 2px 0; white-space: nowrap; } .fig .k { color: #666; }\n' +
    '[data-verdict="regression"] { color: #c0392b; font-weight: 600; } [data-verdict="improvement"] { color: #1e8449; font-weight: 600; }\n',
});

/** The page's only script: sortable tables, and a mark that the page rendered. */
const SCRIPT = reportScript([
  { selector: 'svg[data-chart]', label: 'charts' },
  { selector: 'svg[data-chart] rect', label: 'bars' },
]);

function suiteSection(result: SuiteResult, comparison: Comparison | undefined, bins: number): string {
  const ok = result.operations.filter((o): o is OperationOk => o.state === 'ok');
  const env = result.environment;
  const parts = [
    `<section data-section="suite"><h2>Suite ${escapeHtml(result.suite)}</h2>`,
    `<p class="meta">${escapeHtml(
      `${result.operations.length} operations (${ok.length} measured) in ${(result.durationMs / 1000).toFixed(1)} s, ` +
        `started ${result.startedAt}; node ${env.node} (V8 ${env.v8}) on ${env.platform}/${env.arch}, ` +
        `${env.cpus} cpus (${env.cpuModel})`,
    )}</p>`,
    operationsTable(result, comparison),
    '<h3>Percentiles per operation</h3>',
    htmlLegend(PERCENTILES),
    htmlFigure(percentilesChart(ok), 'p50, p90, p99 and p99.9 of the time per call, per operation.'),
    '<h3>Latency distribution</h3>',
  ];
  for (const op of ok) {
    parts.push(
      `<h3>${escapeHtml(op.name)}</h3>`,
      htmlFigure(
        distributionChart(op, bins),
        `Histogram of ${op.stats.n} samples from the minimum to p99; the red bar (when present) holds the ` +
          'slowest 1% (above p99, up to the maximum); the dashed line is the median.',
      ),
    );
  }
  if (ok.length === 0) parts.push('<p class="note">No operation was measured.</p>');
  parts.push('</section>');
  if (comparison !== undefined) {
    parts.push(
      '<section data-section="comparison"><h2>Comparison with the baseline</h2>',
      htmlLegend([
        { label: 'regression', color: VERDICT_COLORS.regression },
        { label: 'improvement', color: VERDICT_COLORS.improvement },
        { label: 'no significant change', color: VERDICT_COLORS['no significant change'] },
      ]),
      htmlFigure(
        comparisonChart(comparison),
        'Ratio of medians, current / baseline (above 1: slower); the bar runs from 1 to the ratio, the error bar is the confidence interval.',
      ),
      comparisonTable(comparison),
      '</section>',
    );
  }
  return parts.join('');
}

function workloadSection(workloads: readonly WorkloadResult[]): string {
  const failed = workloads.filter((w) => w.fields === null).length;
  const names = new Set(workloads.map((w) => w.workload)).size;
  const lines = names === workloads.length ? '' : ` (${workloads.length} lines)`;
  return [
    '<section data-section="workloads"><h2>Bench suite workloads</h2>',
    `<p class="meta">${escapeHtml(`${names} workloads${lines}, ${failed} failed; each figure is the median of the runs.`)}</p>`,
    workloadTable(workloads),
    '<h3>Latency figures</h3>',
    htmlFigure(
      workloadLatencyChart(workloads),
      'The percentiles, medians and means each workload reports (pNN_us, mean_ms, ns_per_op, ...), in one unit.',
    ),
    '<h3>Throughput</h3>',
    htmlFigure(
      workloadThroughputChart(workloads),
      'The rates each workload reports (fields ending in _per_s); for a workload with none, ops/s from its time per op (ns_per_op).',
    ),
    '</section>',
  ].join('');
}

// ---- the soak ------------------------------------------------------------------------------------

/** One line of a time-series chart: points (x in ms since the start, y in the chart's unit). */
export interface TimeSeries {
  readonly name: string;
  readonly color: string;
  readonly points: readonly { readonly atMs: number; readonly value: number }[];
}

const SERIES_COLORS = [
  '#4e79a7',
  '#f28e2b',
  '#e15759',
  '#76b7b2',
  '#59a14f',
  '#edc948',
  '#b07aa1',
  '#ff9da7',
  '#9c755f',
  '#bab0ac',
];

/**
 * A time-series chart: x is the time since the start, y the values (linear from 0, or
 * logarithmic when they span more than a factor of 100); each series a `<polyline>` and one
 * `<circle>` per point (`data-series`, `data-at-ms`, `data-value`). Points that are not finite
 * (an interval with no call of an operation) are left out.
 */
export function timeSeriesChart(
  chart: string,
  label: string,
  series: readonly TimeSeries[],
  format: (value: number) => string,
): string {
  const height = 230;
  const top = 12;
  const x0 = 70;
  const x1 = CHART_WIDTH - 16;
  const legendH = 16 * Math.ceil(series.length / 4);
  const plotBottom = height - 44 - legendH;
  const points = series.map((s) =>
    s.points.filter((p) => Number.isFinite(p.value) && Number.isFinite(p.atMs)),
  );
  const all = points.flat();
  const y = valueScale(
    all.map((p) => p.value),
    plotBottom,
    top,
  );
  const maxX = Math.max(1, ...all.map((p) => p.atMs));
  const xOf = (ms: number) => x0 + (Math.max(0, ms) / maxX) * (x1 - x0);
  const parts = [svgChartOpen(chart, height, label, { 'data-scale': y.kind })];
  for (const t of y.ticks) {
    const ty = y(t);
    parts.push(
      `<line class="grid" x1="${x0}" x2="${x1}" y1="${px(ty)}" y2="${px(ty)}" stroke="#e3e6ea"/>`,
      `<text x="${x0 - 6}" y="${px(ty + 4)}" text-anchor="end" fill="#555">${escapeHtml(format(t))}</text>`,
    );
  }
  const xStep = niceStep(maxX / 6 / 1000) * 1000;
  for (let t = 0; t <= maxX * 1.0001; t += xStep) {
    parts.push(
      `<text x="${px(xOf(t))}" y="${px(plotBottom + 14)}" text-anchor="middle" fill="#555">${escapeHtml(`${Number((t / 1000).toPrecision(4))} s`)}</text>`,
    );
  }
  parts.push(
    `<line class="axis" x1="${x0}" x2="${x1}" y1="${px(plotBottom)}" y2="${px(plotBottom)}" stroke="#888"/>`,
    `<text x="${px((x0 + x1) / 2)}" y="${px(plotBottom + 28)}" text-anchor="middle" fill="#555">time since the start</text>`,
  );
  if (all.length === 0) {
    parts.push(`<text x="${x0 + 8}" y="${top + 14}" fill="#777">no figures to chart</text>`);
  }
  series.forEach((s, i) => {
    const pts = points[i] ?? [];
    if (pts.length > 1) {
      parts.push(
        `<polyline fill="none" stroke="${s.color}" stroke-width="1.5"${htmlAttributes({ 'data-series': s.name })} points="${pts
          .map((p) => `${px(xOf(p.atMs))},${px(y(p.value))}`)
          .join(' ')}"/>`,
      );
    }
    for (const p of pts) {
      parts.push(
        `<circle cx="${px(xOf(p.atMs))}" cy="${px(y(p.value))}" r="2.5" fill="${s.color}"` +
          `${htmlAttributes({ 'data-series': s.name, 'data-at-ms': p.atMs, 'data-value': p.value })}>` +
          `<title>${escapeHtml(`${s.name} at ${Number((p.atMs / 1000).toPrecision(4))} s: ${format(p.value)}`)}</title></circle>`,
      );
    }
    const lx = x0 + (i % 4) * 170;
    const ly = plotBottom + 44 + Math.floor(i / 4) * 16;
    parts.push(
      `<line x1="${lx}" x2="${lx + 14}" y1="${ly - 4}" y2="${ly - 4}" stroke="${s.color}" stroke-width="3"/>`,
      `<text x="${lx + 18}" y="${ly}" fill="#222">${escapeHtml(shortenLabel(s.name, 24))}</text>`,
    );
  });
  parts.push('</svg>');
  return parts.join('');
}

function soakBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return String(bytes);
  const a = Math.abs(bytes);
  if (a >= 1e9) return `${Number((bytes / 1e9).toPrecision(3))} GB`;
  if (a >= 1e6) return `${Number((bytes / 1e6).toPrecision(3))} MB`;
  if (a >= 1e3) return `${Number((bytes / 1e3).toPrecision(3))} kB`;
  return `${Math.round(bytes)} B`;
}

function soakMicros(us: number): string {
  return formatNanoseconds(us * 1e3);
}

function soakSection(r: SoakReport): string {
  const memoryPoints = [r.baseline, ...r.intervals.map((i) => i.memory)];
  const at = (pick: (m: SoakReport['baseline']) => number) =>
    memoryPoints.map((m) => ({ atMs: m.atMs, value: pick(m) }));
  const latencyAt = (pick: (i: SoakInterval) => number) =>
    r.intervals.map((i) => ({ atMs: i.endMs, value: pick(i) }));
  const g = r.growth;
  const growthRows: [string, string, string][] = [
    [
      'largest agent growth (each agent: its state, mailbox, locals)',
      `${soakBytes(g.agentBytesPerHourMax)}/h${g.maxAgent === null ? '' : ` (${g.maxAgent})`}`,
      `target under ${soakBytes(r.targets.agentBytesPerHour)}/h: ${r.targets.agentOk ? 'met' : 'NOT met'}`,
    ],
    ['mean agent growth', `${soakBytes(g.agentBytesPerHourMean)}/h`, ''],
    [
      'system growth (heap after GC)',
      `${soakBytes(g.steadyHeapBytesPerDay ?? g.heapBytesPerDay)}/day` +
        (g.steadyHeapBytesPerDay === null ? ' (all samples)' : ' (from the first interval on)'),
      `target under ${soakBytes(r.targets.systemBytesPerDay)}/day: ${r.targets.systemOk ? 'met' : 'NOT met'}`,
    ],
    ['heap growth over all samples', `${soakBytes(g.heapBytesPerDay)}/day`, ''],
    ...Object.entries(g.serviceBytesPerHour).map(([name, v]): [string, string, string] => [
      `service ${name}`,
      `${soakBytes(v)}/h`,
      '',
    ]),
  ];
  const intervalRows = r.intervals.map(
    (i) =>
      `<tr data-interval="${i.index}"><td class="num">${i.index}</td>${numCell(i.endMs, `${(i.endMs / 1000).toFixed(1)} s`)}` +
      `${numCell(i.cycles, String(i.cycles))}${numCell(i.overall.p50_us, soakMicros(i.overall.p50_us))}` +
      `${numCell(i.overall.p99_us, soakMicros(i.overall.p99_us))}${numCell(i.overall.errors, String(i.overall.errors))}` +
      `${numCell(i.memory.heapUsedBytes, soakBytes(i.memory.heapUsedBytes))}${numCell(i.memory.rssBytes, soakBytes(i.memory.rssBytes))}` +
      `${numCell(i.memory.liveAgents, String(i.memory.liveAgents))}${numCell(i.memory.agentBytesMean, soakBytes(i.memory.agentBytesMean))}` +
      `${numCell(i.memory.agentBytesMax, soakBytes(i.memory.agentBytesMax))}</tr>`,
  );
  const opSeries: TimeSeries[] = r.operations.map((op, k) => ({
    name: op,
    color: SERIES_COLORS[k % SERIES_COLORS.length] as string,
    points: latencyAt((i) => i.latency[op]?.p99_us ?? Number.NaN),
  }));
  return [
    '<section data-section="soak"><h2>Soak</h2>',
    `<p class="meta">${escapeHtml(
      `${(r.elapsedMs / 1000).toFixed(1)} s of ${(r.plannedMs / 1000).toFixed(1)} s` +
        `${r.stopped === 'aborted' ? ' (stopped early)' : ''}, ${r.cycles} cycles in ${r.intervals.length} intervals ` +
        `of ${(r.intervalMs / 1000).toFixed(1)} s, started ${r.startedAt}; operations: ${r.operations.join(', ')}.`,
    )}</p>`,
    '<h3>Memory growth</h3>',
    `<table data-table="soak-growth"><thead><tr><th>figure</th><th>rate</th><th>target</th></tr></thead><tbody>${growthRows
      .map(
        ([a, b, c]) =>
          `<tr><td>${escapeHtml(a)}</td><td class="num">${escapeHtml(b)}</td><td>${escapeHtml(c)}</td></tr>`,
      )
      .join('')}</tbody></table>`,
    `<p class="note">${escapeHtml(
      `Least-squares slopes over ${g.samples} memory samples taken after forced GC. A run under an hour ` +
        'extrapolates its slopes: read the per-day figure of a short run as an upper bound on noise.',
    )}</p>`,
    '<h3>Latency over time</h3>',
    htmlFigure(
      timeSeriesChart(
        'soak-latency',
        'latency of every call, per interval',
        [
          { name: 'p50', color: '#4e79a7', points: latencyAt((i) => i.overall.p50_us) },
          { name: 'p99', color: '#f28e2b', points: latencyAt((i) => i.overall.p99_us) },
        ],
        soakMicros,
      ),
      'p50 and p99 of every call of every operation in each interval, at the interval end.',
    ),
    htmlFigure(
      timeSeriesChart('soak-operation-p99', 'p99 per operation, per interval', opSeries, soakMicros),
      'p99 of each operation in each interval.',
    ),
    '<h3>Memory over time</h3>',
    htmlFigure(
      timeSeriesChart(
        'soak-memory',
        'process memory after forced GC',
        [
          { name: 'heap used', color: '#4e79a7', points: at((m) => m.heapUsedBytes) },
          { name: 'rss', color: '#bab0ac', points: at((m) => m.rssBytes) },
        ],
        soakBytes,
      ),
      "V8's used heap after forced GC and the resident set size, at the start and at each interval end (process-wide).",
    ),
    htmlFigure(
      timeSeriesChart(
        'soak-agent-memory',
        'memory per agent',
        [
          { name: 'mean per agent', color: '#59a14f', points: at((m) => m.agentBytesMean) },
          { name: 'largest agent', color: '#e15759', points: at((m) => m.agentBytesMax) },
        ],
        soakBytes,
      ),
      "Each long-lived agent's own memory (state, mailbox, locals): the mean and the largest.",
    ),
    '<h3>Intervals</h3>',
    '<table class="sortable" data-table="soak-intervals"><thead><tr><th>interval</th><th>end</th><th>cycles</th>' +
      '<th>p50</th><th>p99</th><th>errors</th><th>heap after GC</th><th>rss</th><th>live agents</th>' +
      `<th>mean/agent</th><th>max/agent</th></tr></thead><tbody>${intervalRows.join('')}</tbody></table>`,
    '</section>',
  ].join('');
}

/** Render the self-contained HTML report (see the module comment for what it holds). */
export function renderHtmlReport(input: HtmlReportInput): string {
  const { result, comparison, workloads } = input;
  const bins = input.bins ?? 40;
  if (!Number.isInteger(bins) || bins < 1)
    throw new RangeError(`bins must be a whole number >= 1, got ${bins}`);
  const title = input.title ?? (result === undefined ? 'mabeam bench' : `mabeam bench: ${result.suite}`);
  const generated =
    input.generatedAt === undefined
      ? new Date().toISOString()
      : typeof input.generatedAt === 'string'
        ? input.generatedAt
        : input.generatedAt.toISOString();
  const body: string[] = [];
  if (result !== undefined) body.push(suiteSection(result, comparison, bins));
  else if (comparison !== undefined) {
    body.push(
      '<section data-section="comparison"><h2>Comparison with the baseline</h2>',
      htmlFigure(comparisonChart(comparison), 'Ratio of medians, current / baseline.'),
      comparisonTable(comparison),
      '</section>',
    );
  }
  if (workloads !== undefined) body.push(workloadSection(workloads));
  if (input.soak !== undefined) body.push(soakSection(input.soak));
  if (body.length === 0)
    body.push('<p class="note">Nothing to report: no suite result, no workloads and no soak.</p>');
  return renderReportPage({
    title,
    generator: 'mabeam bench',
    generatedAt: generated,
    style: STYLE,
    script: SCRIPT,
    body,
  });
}

/** The HTML reporter (`html`): renderHtmlReport of a suite result and its comparison. */
export const htmlReporter: Reporter = {
  name: 'html',
  mediaType: 'text/html',
  render: (input: ReportInput) => renderHtmlReport(input),
};
