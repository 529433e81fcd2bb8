/**
 * The HTML report of a `mabeam tune` study: one self-contained file to open in any browser or
 * attach to a CI run. Nothing is fetched: the CSS and one small script are inline and every chart
 * is pre-rendered inline SVG, so the page reads the same with scripts off. A Content Security
 * Policy forbids every network request and every script but the page's own (by hash), so even a
 * name that slipped past escaping could not run code. The page, its base style, its script and
 * the escaping are shared with the perf report (src/foundation/html.ts).
 *
 * What it shows:
 * - a summary: the best trial (value and configuration), trials by state, wall time, sampler and
 *   scheduler (`<section data-section="summary">`);
 * - optimization history (`<svg data-chart="history">`): one `<circle class="trial">` per trial
 *   with an objective value, in trial order, and one `<polyline class="best-so-far">`;
 * - parallel coordinates (`<svg data-chart="parallel-coordinates">`): one `<g class="axis">` per
 *   dimension of the space plus the objective's (log axes for log floats, categorical axes for
 *   choices and bools), and one `<polyline class="trial">` per trial with a value, coloured by it
 *   (the best darkest, drawn on top);
 * - learning curves (`<svg data-chart="learning-curves">`): one `<polyline class="curve">` per
 *   trial that reported the objective, pruned ones dashed and orange (`class="curve pruned"`) with
 *   a `<circle class="pruned-end">` where they stopped;
 * - PBT lineage (`<svg data-chart="lineage">`): one `<line class="row">` per trial involved in an
 *   exploit and one `<line class="exploit">` per exploit, from the donor's row to the trial's at
 *   the step it happened; a note (`data-note="no-exploits"`) instead when there were none;
 * - a sortable table of every trial (`<table data-table="trials">`, one row per trial).
 *
 * A trial's value is its `best` (the objective's best over its reports, in the study's mode), or,
 * when that is missing, the best finite objective value among its reports. NaN and infinite values
 * are never plotted; the charts say how many trials had none. Scales are linear, or logarithmic
 * (`data-scale="log"`) when every value is positive and they span more than three decades.
 * Learning curves are thinned to a total budget of points so that hundreds of long trials still
 * give a file of a few hundred kB. Every string that comes from the caller (study, metric,
 * dimension and choice names, configurations, errors, sampler options) is escaped.
 */
import {
  CHART_WIDTH,
  dataNumber,
  escapeHtml,
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
import type { Dimension, SearchSpace, TrialRecord, TrialState } from './types.js';

export { escapeHtml } from '../foundation/html.js';

/** A sampler or scheduler as the report names it: its name, or its spec. */
export type ReportAlgorithm = string | { readonly name: string; readonly options?: unknown };

/** What `renderStudyReport` renders. */
export interface StudyReportInput {
  readonly name: string;
  readonly objective: { readonly metric: string; readonly mode: 'min' | 'max' };
  readonly sampler: ReportAlgorithm;
  readonly scheduler: ReportAlgorithm;
  readonly space: SearchSpace;
  readonly trials: readonly TrialRecord[];
  /** Wall-clock ms the study ran. */
  readonly wallMs: number;
  /** When the study started (epoch ms, an ISO string or a Date). */
  readonly startedAt: number | string | Date;
  /** When the report was made (default: now). */
  readonly generatedAt?: number | string | Date;
}

// ---- escaping and numbers ----------------------------------------------------------------------

/** A coordinate: at most one decimal (the charts are 760 px wide), never NaN. */
function px(x: number): string {
  return svgCoordinate(x, 1);
}

/** A number for people: four significant digits, NaN and infinities spelled out. */
function fmt(x: number | null | undefined): string {
  if (x === null || x === undefined) return '-';
  if (!Number.isFinite(x)) return String(x);
  if (x !== 0 && (Math.abs(x) >= 1e6 || Math.abs(x) < 1e-3)) {
    return x
      .toExponential(2)
      .replace(/\.?0+e/, 'e')
      .replace('e+', 'e');
  }
  return String(Number(x.toPrecision(4)));
}

/** Any configuration value as short text. */
function valueText(v: unknown): string {
  if (typeof v === 'number') return fmt(v);
  if (typeof v === 'string') return v;
  if (v === undefined) return 'undefined';
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

function configText(config: Readonly<Record<string, unknown>>): string {
  return Object.entries(config)
    .map(([k, v]) => `${k}=${valueText(v)}`)
    .join(', ');
}

/** `1.2 s`, `3 min 4 s`, `1 h 2 min`. */
function duration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '-';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s - m * 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

function dateText(t: number | string | Date): string {
  const d = t instanceof Date ? t : new Date(t);
  return Number.isNaN(d.getTime()) ? String(t) : d.toISOString();
}

function algorithmText(a: ReportAlgorithm): string {
  if (typeof a === 'string') return a;
  if (a === null || typeof a !== 'object') return String(a);
  const options = a.options === undefined ? '' : ` ${valueText(a.options)}`;
  return `${a.name}${options}`;
}

// ---- trial values ------------------------------------------------------------------------------

/** A trial's objective value for the charts (see the module comment), or null. */
function trialValue(t: TrialRecord, metric: string, mode: 'min' | 'max'): number | null {
  if (typeof t.best === 'number' && Number.isFinite(t.best)) return t.best;
  let best: number | null = null;
  for (const r of t.reports) {
    const v = r[metric];
    if (
      typeof v === 'number' &&
      Number.isFinite(v) &&
      (best === null || (mode === 'min' ? v < best : v > best))
    ) {
      best = v;
    }
  }
  return best;
}

// ---- scales ------------------------------------------------------------------------------------

/** Maps a value to [0, 1] along an axis. */
interface Scale {
  (v: number): number;
  readonly kind: 'linear' | 'log';
  readonly ticks: readonly number[];
}

/** At most this many ticks on a linear axis (about five are asked for). */
const MAX_TICKS = 12;

/**
 * A linear scale over [lo, hi] (finite) with about four ticks at round values. Halves are taken
 * before differences, so bounds near the largest doubles (whose difference overflows) still give
 * finite steps; the tick loop is bounded by a count, so a step too small to move a tick (bounds
 * far from 0 and very close together) cannot make it spin.
 */
function linearScale(lo: number, hi: number): Scale {
  if (!(hi > lo)) {
    const pad = Math.abs(lo) * 0.1 || 1;
    lo = Math.max(-Number.MAX_VALUE, lo - pad);
    hi = Math.min(Number.MAX_VALUE, hi + pad);
  }
  const half = hi / 2 - lo / 2;
  const step = niceStep(half / 2);
  // Ticks are whole multiples of the step (k * step, never first + i * step, which can overflow).
  const first = Math.ceil(lo / step);
  const ticks: number[] = [];
  for (let i = 0; i <= MAX_TICKS; i++) {
    const t = (first + i) * step;
    if (!Number.isFinite(t) || !(t - hi <= step * 1e-9)) break;
    const rounded = Number(t.toPrecision(12));
    const tick = Number.isFinite(rounded) ? rounded : t;
    if (ticks[ticks.length - 1] !== tick) ticks.push(tick);
  }
  const f = (v: number) => Math.max(0, Math.min(1, (v / 2 - lo / 2) / half));
  return Object.assign(f, { kind: 'linear' as const, ticks });
}

function logScale(lo: number, hi: number): Scale {
  const a = Math.log10(lo);
  const b = hi > lo ? Math.log10(hi) : a + 1;
  const ticks: number[] = [];
  for (let e = Math.ceil(a - 1e-9); e <= b + 1e-9; e++) ticks.push(10 ** e);
  if (ticks.length < 2) ticks.splice(0, ticks.length, lo, hi);
  const f = (v: number) => (v > 0 ? Math.max(0, Math.min(1, (Math.log10(v) - a) / (b - a))) : 0);
  return Object.assign(f, { kind: 'log' as const, ticks });
}

/** Linear, or log when every value is positive and they span more than three decades. */
function valueScale(values: readonly number[]): Scale {
  const finite = values.filter(Number.isFinite);
  if (finite.length === 0) return linearScale(0, 1);
  let lo = finite[0] as number;
  let hi = lo;
  for (const v of finite) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (lo > 0 && hi / lo > 1000) return logScale(lo, hi);
  return linearScale(lo, hi);
}

// ---- chart frame -------------------------------------------------------------------------------

const STATE_COLORS: Readonly<Record<TrialState, string>> = {
  completed: '#4e79a7',
  pruned: '#f28e2b',
  failed: '#e15759',
  running: '#9c9c9c',
  pending: '#c7c7c7',
};

function svgOpen(chart: string, height: number, label: string, extra: Readonly<Record<string, string>> = {}) {
  return svgChartOpen(chart, height, label, extra, { decimals: 1 });
}

/** A value's colour: light (worst) to dark blue (best); `goodness` in [0, 1]. */
function shade(goodness: number): string {
  const from = [198, 219, 239];
  const to = [8, 48, 107];
  const g = Number.isFinite(goodness) ? Math.max(0, Math.min(1, goodness)) : 1;
  const c = from.map((f, i) => Math.round(f + ((to[i] as number) - f) * g));
  return `#${c.map((x) => x.toString(16).padStart(2, '0')).join('')}`;
}

/**
 * Goodness of each value in [0, 1] by rank (1 = best in the study's mode, equal values alike), so
 * a few outliers do not wash out the colours of all the others.
 */
function goodness(values: readonly number[], mode: 'min' | 'max'): (v: number) => number {
  const distinct = [...new Set(values)].sort((a, b) => (mode === 'min' ? b - a : a - b));
  if (distinct.length < 2) return () => 1;
  const rank = new Map(distinct.map((v, i) => [v, i / (distinct.length - 1)]));
  return (v) => rank.get(v) ?? 1;
}

/** A vertical value axis at x from yTop (scale 1) to yBottom (scale 0), with tick labels on its left. */
function yAxis(scale: Scale, x: number, yTop: number, yBottom: number, gridTo?: number): string {
  const parts = [
    `<line class="axis" x1="${px(x)}" x2="${px(x)}" y1="${px(yTop)}" y2="${px(yBottom)}" stroke="#888"/>`,
  ];
  for (const t of scale.ticks) {
    const y = yBottom - scale(t) * (yBottom - yTop);
    if (gridTo !== undefined) {
      parts.push(
        `<line class="grid" x1="${px(x)}" x2="${px(gridTo)}" y1="${px(y)}" y2="${px(y)}" stroke="#eceef1"/>`,
      );
    }
    parts.push(
      `<text x="${px(x - 5)}" y="${px(y + 4)}" text-anchor="end" fill="#555">${escapeHtml(fmt(t))}</text>`,
    );
  }
  return parts.join('');
}

function xAxis(scale: Scale, x0: number, x1: number, y: number, label: string): string {
  const parts = [
    `<line class="axis" x1="${px(x0)}" x2="${px(x1)}" y1="${px(y)}" y2="${px(y)}" stroke="#888"/>`,
  ];
  for (const t of scale.ticks) {
    const x = x0 + scale(t) * (x1 - x0);
    parts.push(
      `<text x="${px(x)}" y="${px(y + 14)}" text-anchor="middle" fill="#555">${escapeHtml(fmt(t))}</text>`,
    );
  }
  parts.push(
    `<text x="${px((x0 + x1) / 2)}" y="${px(y + 28)}" text-anchor="middle" fill="#333">${escapeHtml(label)}</text>`,
  );
  return parts.join('');
}

function emptyChart(chart: string, label: string, note: string): string {
  return `${svgOpen(chart, 34, label, { 'data-empty': 'true' })}<text x="8" y="21" fill="#777">${escapeHtml(note)}</text></svg>`;
}

// ---- optimization history ----------------------------------------------------------------------

interface Valued {
  readonly trial: TrialRecord;
  readonly value: number;
}

function historyChart(
  trials: readonly TrialRecord[],
  valued: readonly Valued[],
  input: StudyReportInput,
): string {
  const { metric, mode } = input.objective;
  const label = `optimization history of ${metric}`;
  if (valued.length === 0) return emptyChart('history', label, `no trial reported a finite ${metric}`);
  const height = 260;
  const [x0, x1, top, bottom] = [64, CHART_WIDTH - 16, 12, height - 40];
  const maxId = Math.max(1, ...trials.map((t) => t.id));
  const xs = linearScale(0, maxId);
  const ys = valueScale(valued.map((v) => v.value));
  const X = (id: number) => x0 + xs(id) * (x1 - x0);
  const Y = (v: number) => bottom - ys(v) * (bottom - top);
  const parts = [
    svgOpen('history', height, label, { 'data-scale': ys.kind, 'data-points': String(valued.length) }),
    yAxis(ys, x0, top, bottom, x1),
    xAxis(linearScale(0, maxId), x0, x1, bottom, 'trial'),
  ];
  const sorted = [...valued].sort((a, b) => a.trial.id - b.trial.id);
  const better = (a: number, b: number) => (mode === 'min' ? a < b : a > b);
  const line: string[] = [];
  let best: number | null = null;
  for (const { trial, value } of sorted) {
    if (best !== null) line.push(`${px(X(trial.id))},${px(Y(best))}`);
    if (best === null || better(value, best)) best = value;
    line.push(`${px(X(trial.id))},${px(Y(best))}`);
  }
  parts.push(
    `<polyline class="best-so-far" points="${line.join(' ')}" fill="none" stroke="#c0392b" stroke-width="2">` +
      `<title>best ${escapeHtml(metric)} so far</title></polyline>`,
  );
  for (const { trial, value } of sorted) {
    parts.push(
      `<circle class="trial" cx="${px(X(trial.id))}" cy="${px(Y(value))}" r="3.5" fill="${STATE_COLORS[trial.state] ?? '#999'}" ` +
        `data-trial="${trial.id}" data-value="${dataNumber(value)}" data-state="${escapeHtml(trial.state)}">` +
        `<title>${escapeHtml(`trial ${trial.id} (${trial.state}): ${metric} ${fmt(value)}`)}</title></circle>`,
    );
  }
  parts.push('</svg>');
  return parts.join('');
}

// ---- parallel coordinates ----------------------------------------------------------------------

/** One axis: where a value sits on it, in [0, 1], and its tick labels. */
interface PcAxis {
  readonly name: string;
  readonly kind: 'linear' | 'log' | 'categorical';
  readonly at: (v: unknown) => number;
  readonly ticks: readonly { readonly at: number; readonly label: string }[];
}

function sameValue(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false;
  return valueText(a) === valueText(b);
}

function categorical(name: string, values: readonly unknown[]): PcAxis {
  const n = values.length;
  const pos = (i: number) => (n <= 1 ? 0.5 : i / (n - 1));
  return {
    name,
    kind: 'categorical',
    at: (v) => {
      const i = values.findIndex((c) => sameValue(c, v));
      return i < 0 ? 0 : pos(i);
    },
    ticks: values.map((v, i) => ({ at: pos(i), label: valueText(v) })),
  };
}

function numericAxis(name: string, scale: Scale): PcAxis {
  return {
    name,
    kind: scale.kind,
    at: (v) => (typeof v === 'number' && Number.isFinite(v) ? scale(v) : 0),
    ticks: scale.ticks.map((t) => ({ at: scale(t), label: fmt(t) })),
  };
}

function dimensionAxis(name: string, dim: Dimension, trials: readonly TrialRecord[]): PcAxis {
  switch (dim?.type) {
    case 'float':
      return numericAxis(
        name,
        dim.log === true && dim.min > 0 ? logScale(dim.min, dim.max) : linearScale(dim.min, dim.max),
      );
    case 'int':
      return numericAxis(name, linearScale(dim.min, dim.max));
    case 'choice':
      return categorical(name, dim.values);
    case 'bool':
      return categorical(name, [false, true]);
    default: {
      // Not a dimension this report knows: the values the trials had, as categories.
      const seen: unknown[] = [];
      for (const t of trials) if (!seen.some((s) => sameValue(s, t.config[name]))) seen.push(t.config[name]);
      return categorical(name, seen);
    }
  }
}

function parallelChart(
  trials: readonly TrialRecord[],
  valued: readonly Valued[],
  input: StudyReportInput,
): string {
  const { metric, mode } = input.objective;
  const objScale = valueScale(valued.map((v) => v.value));
  const axes: PcAxis[] = Object.entries(input.space).map(([name, dim]) => dimensionAxis(name, dim, trials));
  axes.push(numericAxis(metric, objScale));
  const height = 300;
  const [x0, x1, top, bottom] = [70, CHART_WIDTH - 70, 26, height - 34];
  const xOf = (i: number) => (axes.length === 1 ? (x0 + x1) / 2 : x0 + (i / (axes.length - 1)) * (x1 - x0));
  const Y = (at: number) => bottom - at * (bottom - top);
  const parts = [
    svgOpen('parallel-coordinates', height, `parallel coordinates of the configurations and ${metric}`, {
      'data-axes': String(axes.length),
      'data-lines': String(valued.length),
    }),
  ];
  const good =
    valued.length > 0
      ? goodness(
          valued.map((v) => v.value),
          mode,
        )
      : () => 1;
  // Worst first, so the best lines are drawn on top.
  const order = [...valued].sort((a, b) => good(a.value) - good(b.value));
  for (const { trial, value } of order) {
    const points = axes.map((axis, i) => {
      const v = i === axes.length - 1 ? value : trial.config[axis.name];
      return `${px(xOf(i))},${px(Y(axis.at(v)))}`;
    });
    parts.push(
      `<polyline class="trial" points="${points.join(' ')}" fill="none" stroke="${shade(good(value))}" stroke-width="1.5" ` +
        `stroke-opacity="0.8" data-trial="${trial.id}" data-value="${dataNumber(value)}">` +
        `<title>${escapeHtml(`trial ${trial.id}: ${metric} ${fmt(value)}; ${configText(trial.config)}`)}</title></polyline>`,
    );
  }
  axes.forEach((axis, i) => {
    const x = xOf(i);
    const isObjective = i === axes.length - 1;
    const group = [
      `<g class="axis" data-axis="${escapeHtml(axis.name)}" data-scale="${axis.kind}"${isObjective ? ' data-objective="true"' : ''}>`,
      `<line x1="${px(x)}" x2="${px(x)}" y1="${top}" y2="${bottom}" stroke="#555"/>`,
      `<text x="${px(x)}" y="${top - 10}" text-anchor="middle" font-weight="600" fill="#222">` +
        `${escapeHtml(shortenLabel(axis.name, 18))}${axis.kind === 'log' ? ' (log)' : ''}<title>${escapeHtml(axis.name)}</title></text>`,
    ];
    // Many categories: label every k-th so the labels stay readable.
    const every = Math.max(1, Math.ceil(axis.ticks.length / 12));
    axis.ticks.forEach((t, k) => {
      if (k % every !== 0) return;
      group.push(
        `<text x="${px(x + 4)}" y="${px(Y(t.at) + 4)}" fill="#555" paint-order="stroke" stroke="#fff" stroke-width="3">` +
          `${escapeHtml(shortenLabel(t.label, 14))}</text>`,
      );
    });
    group.push('</g>');
    parts.push(group.join(''));
  });
  if (valued.length === 0) {
    parts.push(
      `<text x="${px(x0)}" y="${height - 8}" fill="#777">${escapeHtml(`no trial reported a finite ${metric}`)}</text>`,
    );
  }
  parts.push('</svg>');
  return parts.join('');
}

// ---- learning curves ---------------------------------------------------------------------------

/** Most points drawn over all learning curves (each curve keeps at least its first and last). */
const CURVE_POINT_BUDGET = 24_000;

/** Evenly thinned to at most `max` points, keeping the first and the last. */
function thin<T>(points: readonly T[], max: number): readonly T[] {
  if (points.length <= max) return points;
  const out: T[] = [];
  for (let i = 0; i < max; i++) out.push(points[Math.round((i * (points.length - 1)) / (max - 1))] as T);
  return out;
}

function curvesChart(trials: readonly TrialRecord[], input: StudyReportInput, bestId: number | null): string {
  const { metric } = input.objective;
  const label = `learning curves of ${metric}`;
  const curves: { trial: TrialRecord; points: [number, number][] }[] = [];
  for (const t of trials) {
    const points: [number, number][] = [];
    for (const r of t.reports) {
      const v = r[metric];
      if (typeof v === 'number' && Number.isFinite(v) && Number.isFinite(r.step)) points.push([r.step, v]);
    }
    if (points.length > 0) curves.push({ trial: t, points });
  }
  if (curves.length === 0)
    return emptyChart('learning-curves', label, `no trial reported a finite ${metric}`);
  const height = 280;
  const [x0, x1, top, bottom] = [64, CHART_WIDTH - 16, 12, height - 40];
  let maxStep = 1;
  let minStep = 0;
  const values: number[] = [];
  for (const c of curves) {
    for (const [s, v] of c.points) {
      if (s > maxStep) maxStep = s;
      if (s < minStep) minStep = s;
      values.push(v);
    }
  }
  const xs = linearScale(minStep, maxStep);
  const ys = valueScale(values);
  const X = (s: number) => x0 + xs(s) * (x1 - x0);
  const Y = (v: number) => bottom - ys(v) * (bottom - top);
  const perCurve = Math.max(2, Math.floor(CURVE_POINT_BUDGET / curves.length));
  const parts = [
    svgOpen('learning-curves', height, label, {
      'data-scale': ys.kind,
      'data-curves': String(curves.length),
    }),
    yAxis(ys, x0, top, bottom, x1),
    xAxis(xs, x0, x1, bottom, 'step'),
  ];
  // The best trial last, so it is on top.
  const ordered = [...curves].sort((a, b) => Number(a.trial.id === bestId) - Number(b.trial.id === bestId));
  for (const { trial, points } of ordered) {
    const pruned = trial.state === 'pruned';
    const isBest = trial.id === bestId;
    const shown = thin(points, perCurve);
    const classes = ['curve', ...(pruned ? ['pruned'] : []), ...(isBest ? ['best'] : [])].join(' ');
    const stroke = isBest ? '#08306b' : (STATE_COLORS[trial.state] ?? '#999');
    parts.push(
      `<polyline class="${classes}" points="${shown.map(([s, v]) => `${px(X(s))},${px(Y(v))}`).join(' ')}" fill="none" ` +
        `stroke="${stroke}" stroke-width="${isBest ? 2.5 : 1.2}" stroke-opacity="${isBest ? 1 : 0.7}"` +
        `${pruned ? ' stroke-dasharray="4 3"' : ''} data-trial="${trial.id}" data-state="${escapeHtml(trial.state)}" ` +
        `data-points="${points.length}"><title>${escapeHtml(
          `trial ${trial.id} (${trial.state}), ${points.length} reports${isBest ? ', the best trial' : ''}`,
        )}</title></polyline>`,
    );
    if (pruned) {
      const [s, v] = points[points.length - 1] as [number, number];
      parts.push(
        `<circle class="pruned-end" cx="${px(X(s))}" cy="${px(Y(v))}" r="3" fill="#f28e2b" data-trial="${trial.id}">` +
          `<title>${escapeHtml(`trial ${trial.id} pruned at step ${s}`)}</title></circle>`,
      );
    }
  }
  parts.push('</svg>');
  return parts.join('');
}

// ---- PBT lineage -------------------------------------------------------------------------------

function lineageChart(trials: readonly TrialRecord[]): string | null {
  const withLineage = trials.filter((t) => t.lineage.length > 0);
  if (withLineage.length === 0) return null;
  const byId = new Map(trials.map((t) => [t.id, t]));
  const involved = new Set<number>();
  let maxStep = 1;
  for (const t of withLineage) {
    involved.add(t.id);
    for (const e of t.lineage) {
      involved.add(e.donor);
      if (e.step > maxStep) maxStep = e.step;
    }
  }
  const lastStep = (id: number) => {
    const t = byId.get(id);
    const r = t?.reports[t.reports.length - 1];
    return r !== undefined && Number.isFinite(r.step) ? r.step : 0;
  };
  for (const id of involved) maxStep = Math.max(maxStep, lastStep(id));
  const rows = [...involved].sort((a, b) => a - b);
  const rowH = 20;
  const [x0, x1, top] = [80, CHART_WIDTH - 16, 12];
  const bottom = top + rows.length * rowH;
  const height = bottom + 40;
  const xs = linearScale(0, maxStep);
  const X = (s: number) => x0 + xs(s) * (x1 - x0);
  const rowOf = new Map(rows.map((id, i) => [id, top + i * rowH + rowH / 2]));
  const edges = withLineage.reduce((n, t) => n + t.lineage.length, 0);
  const parts = [
    svgOpen('lineage', height, 'PBT lineage: which trial took whose checkpoint, at which step', {
      'data-rows': String(rows.length),
      'data-exploits': String(edges),
    }),
    xAxis(xs, x0, x1, bottom, 'step'),
  ];
  for (const id of rows) {
    const y = rowOf.get(id) as number;
    const t = byId.get(id);
    const color = t === undefined ? '#bbb' : (STATE_COLORS[t.state] ?? '#999');
    parts.push(
      `<text x="${x0 - 8}" y="${px(y + 4)}" text-anchor="end" fill="#333">trial ${id}</text>`,
      `<line class="row" x1="${px(X(0))}" x2="${px(Math.max(X(lastStep(id)), X(0) + 2))}" y1="${px(y)}" y2="${px(y)}" ` +
        `stroke="${color}" stroke-width="3" data-trial="${id}"><title>${escapeHtml(
          `trial ${id}${t === undefined ? '' : ` (${t.state})`}, up to step ${lastStep(id)}`,
        )}</title></line>`,
    );
  }
  for (const t of withLineage) {
    for (const e of t.lineage) {
      const x = X(e.step);
      const from = rowOf.get(e.donor) as number;
      const to = rowOf.get(t.id) as number;
      const title = escapeHtml(
        `trial ${t.id} took trial ${e.donor}'s checkpoint at step ${e.step}; now ${configText(e.config)}`,
      );
      parts.push(
        `<line class="exploit" x1="${px(x)}" x2="${px(x)}" y1="${px(from)}" y2="${px(to)}" stroke="#6a3d9a" stroke-width="1.5" ` +
          `data-trial="${t.id}" data-donor="${e.donor}" data-step="${dataNumber(e.step)}"><title>${title}</title></line>`,
        `<circle class="exploit-end" cx="${px(x)}" cy="${px(to)}" r="3.5" fill="#6a3d9a"><title>${title}</title></circle>`,
      );
    }
  }
  parts.push('</svg>');
  return parts.join('');
}

// ---- summary and table -------------------------------------------------------------------------

function counts(trials: readonly TrialRecord[]): Record<TrialState, number> {
  const c: Record<TrialState, number> = { pending: 0, running: 0, completed: 0, pruned: 0, failed: 0 };
  for (const t of trials) if (t.state in c) c[t.state]++;
  return c;
}

function summarySection(input: StudyReportInput, best: Valued | null): string {
  const c = counts(input.trials);
  const { metric, mode } = input.objective;
  const rows: [string, string][] = [
    ['objective', `${mode === 'min' ? 'minimize' : 'maximize'} ${metric}`],
    [
      'best',
      best === null
        ? 'none (no trial reported a finite value)'
        : `${metric} = ${fmt(best.value)} (trial ${best.trial.id}, ${best.trial.state})`,
    ],
    ['best config', best === null ? '-' : configText(best.trial.config)],
    [
      'trials',
      `${input.trials.length} run: ${c.completed} completed, ${c.pruned} pruned, ${c.failed} failed` +
        (c.running + c.pending > 0 ? `, ${c.running + c.pending} not finished` : ''),
    ],
    ['wall time', duration(input.wallMs)],
    ['started', dateText(input.startedAt)],
    ['sampler', algorithmText(input.sampler)],
    ['scheduler', algorithmText(input.scheduler)],
    [
      'search space',
      Object.entries(input.space)
        .map(([k, d]) => `${k}: ${dimensionText(d)}`)
        .join('; ') || '(empty)',
    ],
  ];
  return (
    '<section data-section="summary"><h2>Summary</h2><dl class="summary">' +
    rows
      .map(([k, v]) => `<dt>${escapeHtml(k)}</dt><dd data-field="${escapeHtml(k)}">${escapeHtml(v)}</dd>`)
      .join('') +
    '</dl></section>'
  );
}

function dimensionText(d: Dimension): string {
  switch (d?.type) {
    case 'float':
      return `float [${fmt(d.min)}, ${fmt(d.max)}]${d.log === true ? ' log' : ''}`;
    case 'int':
      return `int [${d.min}, ${d.max}]`;
    case 'choice':
      return `choice of ${d.values.map(valueText).join(' | ')}`;
    case 'bool':
      return 'bool';
    default:
      return valueText(d);
  }
}

function trialsTable(input: StudyReportInput, bestId: number | null): string {
  const { metric, mode } = input.objective;
  const rows = [...input.trials]
    .sort((a, b) => a.id - b.id)
    .map((t) => {
      const value = trialValue(t, metric, mode);
      const ran = t.startedAt !== null && t.endedAt !== null ? t.endedAt - t.startedAt : null;
      const changed = configText(t.config) !== configText(t.initialConfig);
      const config = changed
        ? `${configText(t.initialConfig)} → ${configText(t.config)}`
        : configText(t.config);
      const stateClass = t.state === 'failed' ? ' class="bad"' : t.state === 'completed' ? ' class="ok"' : '';
      return (
        `<tr data-trial="${t.id}" data-state="${escapeHtml(t.state)}"${t.id === bestId ? ' class="best"' : ''}>` +
        `<td class="num" data-sort="${t.id}">${t.id}</td><td${stateClass}>${escapeHtml(t.state)}</td>` +
        `<td class="num" data-sort="${dataNumber(value)}">${escapeHtml(fmt(value))}</td>` +
        `<td class="num" data-sort="${t.reports.length}">${t.reports.length}</td>` +
        `<td class="num" data-sort="${t.lineage.length}">${t.lineage.length}</td>` +
        `<td class="num" data-sort="${dataNumber(ran)}">${escapeHtml(ran === null ? '-' : duration(ran))}</td>` +
        `<td>${escapeHtml(config)}</td><td class="bad">${escapeHtml(t.error ?? '')}</td></tr>`
      );
    });
  return (
    '<table class="sortable" data-table="trials"><thead><tr><th>trial</th><th>state</th>' +
    `<th>${escapeHtml(`best ${metric}`)}</th><th>reports</th><th>exploits</th><th>time</th><th>config</th><th>error</th>` +
    `</tr></thead><tbody>${rows.join('')}</tbody></table>`
  );
}

// ---- the page ----------------------------------------------------------------------------------

/** The base stylesheet, tighter, with the summary list, the best trial's row and the colour ramp. */
const STYLE = reportStylesheet({
  headingMargin: '12px 0 8px',
  figureMargin: '8px 0 8px',
  boldBad: false,
  rules:
    'dl.summary { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 0; }\n' +
    'dl.summary dt { color: #555; } dl.summary dd { margin: 0; overflow-wrap: anywhere; }\n' +
    'tr.best { background: #eef5fc; }\n' +
    '.legend i.ramp { width: 60px; background: linear-gradient(90deg, #c6dbef, #08306b); }\n',
});

/** The page's only script: sortable tables, and a mark that the page rendered. */
const SCRIPT = reportScript([
  { selector: 'svg[data-chart]', label: 'charts' },
  { selector: 'svg[data-chart] circle', label: 'points' },
  { selector: 'svg[data-chart] polyline', label: 'polylines' },
  { selector: 'svg[data-chart] line.exploit', label: 'exploits' },
  { selector: 'table[data-table="trials"] tbody tr', label: 'rows' },
]);

/** Render the self-contained HTML report of a study (see the module comment for what it holds). */
export function renderStudyReport(input: StudyReportInput): string {
  const { metric, mode } = input.objective;
  const trials = [...input.trials].sort((a, b) => a.id - b.id);
  const valued: Valued[] = [];
  for (const trial of trials) {
    const value = trialValue(trial, metric, mode);
    if (value !== null) valued.push({ trial, value });
  }
  let best: Valued | null = null;
  for (const v of valued) {
    if (best === null || (mode === 'min' ? v.value < best.value : v.value > best.value)) best = v;
  }
  const bestId = best?.trial.id ?? null;
  const missing = trials.length - valued.length;
  const missingNote =
    missing > 0 ? ` ${missing} trial(s) without a finite ${metric} (failed, or NaN) are not plotted.` : '';
  const title = `mabeam tune: ${input.name}`;
  const generated = dateText(input.generatedAt ?? Date.now());
  const stateLegend = htmlLegend(
    (['completed', 'pruned', 'failed', 'running'] as const).map((s) => ({
      label: s,
      color: STATE_COLORS[s],
    })),
  );
  const lineage = lineageChart(trials);
  const body = [
    summarySection(input, best),
    '<section data-section="history"><h2>Optimization history</h2>',
    stateLegend,
    htmlFigure(
      historyChart(trials, valued, input),
      `Each trial's best ${metric} in trial order (colored by state); the red line is the best so far.${missingNote}`,
    ),
    '</section>',
    '<section data-section="parallel-coordinates"><h2>Parallel coordinates</h2>',
    `<p class="legend"><span><i class="ramp"></i>${escapeHtml(`worst to best ${metric}`)}</span></p>`,
    htmlFigure(
      parallelChart(trials, valued, input),
      `One line per trial through its configuration (the final one, after any PBT exploit) and its ${metric}.${missingNote}`,
    ),
    '</section>',
    '<section data-section="learning-curves"><h2>Learning curves</h2>',
    stateLegend,
    htmlFigure(
      curvesChart(trials, input, bestId),
      `${metric} at each reported step; pruned trials are dashed and end in a dot where they were stopped; the best trial is dark and thick.`,
    ),
    '</section>',
    '<section data-section="lineage"><h2>PBT lineage</h2>',
    lineage === null
      ? '<p class="note" data-note="no-exploits">No exploits: no trial took another trial\'s checkpoint.</p>'
      : htmlFigure(
          lineage,
          "Each row is a trial; a purple line runs from the donor's row to the trial that took its checkpoint, at that step.",
        ),
    '</section>',
    `<section data-section="trials"><h2>Trials</h2>${
      trials.length === 0 ? '<p class="note" data-note="no-trials">No trial ran.</p>' : ''
    }${trialsTable(input, bestId)}</section>`,
  ];
  return renderReportPage({
    title,
    generator: 'mabeam tune',
    generatedAt: generated,
    style: STYLE,
    script: SCRIPT,
    body,
  });
}
