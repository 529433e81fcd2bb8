/**
 * SLOs and budgets as data (shared/DESIGN.md, "Performance decisions").
 *
 * A budget file is JSON checked by a zod schema: a list of SLOs, each naming a benchmark workload
 * (and, for messages, the operation it stands for) and bounding some of its figures, every bound
 * with an explicit unit:
 *
 *     { "budgets": [ { "workload": "consensus_round_100", "operation": "consensus",
 *                      "p99": { "max": 50, "unit": "ms" } } ] }
 *
 * Metrics: `p99` and `mean` latency (at most), `throughput` (at least), `successRate` (at least)
 * and `memoryGrowth` per hour or day (at most). Bounds are inclusive. A workload that reports
 * several lines (one per sampler, told apart by string labels) is bounded line by line: an SLO
 * applies to every line of its workload, or to those its `where` selects (`{"sampler": "tpe"}`),
 * one row per line. A measured result is what a
 * workload reports: named fields whose names carry their unit (`p99_us`, `ns_per_op`,
 * `rounds_per_s`, `decided_share`, `bytes_per_hour`), as in shared/BENCH_SPEC.md; each bound reads
 * a default field for its metric or the one it names (`field`), converted to the bound's unit. A
 * throughput bound may read a time per operation (`ns_per_op`) and invert it.
 *
 * `checkSlos` compares results with budgets and returns every row and the violations (it never
 * throws for a violation); `assertSlo` throws SloViolationError. A budgeted figure that was not
 * measured (no result, a failed workload, no such field) is a violation, never a pass.
 */
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { InvalidArgumentError, MabeamError } from '../kernel/index.js';

// ---- errors ------------------------------------------------------------------------------------

/** Error codes of SLOs and budgets (unique across the project, never reused). */
export const SloErrorCodes = {
  /** A measured result breaks an SLO's bound, or a budgeted figure was not measured. */
  VIOLATION: 'E_SLO_VIOLATION',
  /** A budget file cannot be read, is not JSON, or does not match the budget schema. */
  BUDGET_FILE: 'E_SLO_BUDGET_FILE',
} as const;

/** Thrown by assertSlo: names the operation, each broken figure, its measured value and bound. */
export class SloViolationError extends MabeamError {
  readonly workload: string;
  readonly operation: string;
  /** The rows that failed (each with its metric, bound, unit and measured value or null). */
  readonly violations: readonly SloRow[];
  constructor(violations: readonly SloRow[]) {
    const first = violations[0];
    if (first === undefined) throw new InvalidArgumentError('violations', 'must not be empty');
    super(
      SloErrorCodes.VIOLATION,
      `SLO violated: ${violations.map((v) => `${v.operation}: ${describeViolation(v)}`).join('; ')}`,
    );
    this.workload = first.workload;
    this.operation = first.operation;
    this.violations = violations;
  }
}

/** One problem in a budget file: where in the JSON (`budgets[2].p99.unit`, or `(root)`) and why. */
export interface BudgetIssue {
  path: string;
  reason: string;
}

/** A budget file that cannot be used: names the file, the path in the JSON and zod's reason. */
export class BudgetFileError extends MabeamError {
  readonly file: string;
  readonly issues: readonly BudgetIssue[];
  constructor(file: string, issues: readonly BudgetIssue[], options?: { cause?: unknown }) {
    super(
      SloErrorCodes.BUDGET_FILE,
      `budget file ${file}: ${issues.map((i) => `at ${i.path}: ${i.reason}`).join('; ')}`,
      options,
    );
    this.file = file;
    this.issues = issues;
  }
}

// ---- units -------------------------------------------------------------------------------------

/** Units of time (latency, or time per operation), with their size in nanoseconds. */
const TIME = { ns: 1, us: 1e3, ms: 1e6, s: 1e9 } as const;
/** Units of throughput, in operations per second. */
const RATE = { 'ops/s': 1, 'ops/min': 1 / 60, 'ops/h': 1 / 3600 } as const;
/** Units of a success rate, as a fraction of 1. */
const RATIO = { ratio: 1, '%': 0.01 } as const;
const HOUR = 1;
const DAY = 24;
/** Units of memory growth, in bytes per hour. */
const GROWTH = {
  'B/h': 1 / HOUR,
  'KB/h': 1e3 / HOUR,
  'KiB/h': 1024 / HOUR,
  'MB/h': 1e6 / HOUR,
  'MiB/h': 1024 ** 2 / HOUR,
  'B/day': 1 / DAY,
  'KB/day': 1e3 / DAY,
  'KiB/day': 1024 / DAY,
  'MB/day': 1e6 / DAY,
  'MiB/day': 1024 ** 2 / DAY,
} as const;

export type TimeUnit = keyof typeof TIME;
export type RateUnit = keyof typeof RATE;
export type RatioUnit = keyof typeof RATIO;
export type GrowthUnit = keyof typeof GROWTH;
export type SloUnit = TimeUnit | RateUnit | RatioUnit | GrowthUnit;
type Dimension = 'time' | 'rate' | 'ratio' | 'growth';

const UNITS: Record<Dimension, Readonly<Record<string, number>>> = {
  time: TIME,
  rate: RATE,
  ratio: RATIO,
  growth: GROWTH,
};

function dimensionOf(unit: SloUnit): Dimension {
  for (const [dim, table] of Object.entries(UNITS) as [Dimension, Record<string, number>][]) {
    if (Object.hasOwn(table, unit)) return dim;
  }
  throw new InvalidArgumentError('unit', 'is not a known SLO unit', unit);
}

/**
 * Convert `value` from one unit to another. Same dimension: a scale. Time per operation to
 * throughput (or back): the reciprocal, which is exact for operations done one after another (a
 * caller awaiting each call), as the latency workloads do. Anything else is an error.
 */
export function convertUnit(value: number, from: SloUnit, to: SloUnit): number {
  const df = dimensionOf(from);
  const dt = dimensionOf(to);
  const sf = UNITS[df][from] as number;
  const st = UNITS[dt][to] as number;
  if (df === dt) return (value * sf) / st;
  if (df === 'time' && dt === 'rate') return 1e9 / (value * sf) / st;
  if (df === 'rate' && dt === 'time') return 1e9 / (value * sf) / st;
  throw new InvalidArgumentError('unit', `cannot convert ${from} to ${to}`, value);
}

/**
 * The unit a result field's name carries, or null when the name says nothing: `ns_per_op`,
 * `us_per_trial` (time per operation), `p99_us`, `mean_ms`, `wall_s`, `seconds` (time),
 * `ops_per_s`, `rounds_per_s`, `x_per_min` (throughput), `decided_share`, `success_rate`,
 * `x_ratio` (ratio), `x_pct` (percent), `bytes_per_hour`, `bytes_per_day` (memory growth).
 */
export function fieldUnit(field: string): SloUnit | null {
  let m = /^(ns|us|ms|s)_per_[a-z0-9_]+$/.exec(field);
  if (m !== null) return m[1] as TimeUnit;
  if (/bytes_per_(hour|h)$/.test(field)) return 'B/h';
  if (/bytes_per_day$/.test(field)) return 'B/day';
  if (/_per_s$/.test(field)) return 'ops/s';
  if (/_per_min$/.test(field)) return 'ops/min';
  if (/(^|_)(share|rate|ratio)$/.test(field)) return 'ratio';
  if (/_(pct|percent)$/.test(field)) return '%';
  if (field === 'seconds') return 's';
  m = /_(ns|us|ms|s)$/.exec(field);
  if (m !== null) return m[1] as TimeUnit;
  return null;
}

// ---- schema ------------------------------------------------------------------------------------

/** The figures an SLO can bound. */
export const SLO_METRICS = ['p99', 'mean', 'throughput', 'successRate', 'memoryGrowth'] as const;
export type SloMetric = (typeof SLO_METRICS)[number];

/** Per metric: which side it bounds, the unit dimension, and the fields read when none is named. */
const METRICS: Record<
  SloMetric,
  { side: 'max' | 'min'; dimension: Dimension; fieldDimensions: Dimension[]; defaults: string[] }
> = {
  p99: {
    side: 'max',
    dimension: 'time',
    fieldDimensions: ['time'],
    defaults: ['p99_ns', 'p99_us', 'p99_ms', 'p99_s'],
  },
  mean: {
    side: 'max',
    dimension: 'time',
    fieldDimensions: ['time'],
    defaults: ['mean_ns', 'mean_us', 'mean_ms', 'mean_s', 'ns_per_op'],
  },
  throughput: { side: 'min', dimension: 'rate', fieldDimensions: ['rate', 'time'], defaults: ['ops_per_s'] },
  successRate: {
    side: 'min',
    dimension: 'ratio',
    fieldDimensions: ['ratio'],
    defaults: ['success_rate', 'decided_share'],
  },
  memoryGrowth: {
    side: 'max',
    dimension: 'growth',
    fieldDimensions: ['growth'],
    defaults: ['bytes_per_hour', 'bytes_per_day'],
  },
};

const ALL_UNITS = [
  ...Object.keys(TIME),
  ...Object.keys(RATE),
  ...Object.keys(RATIO),
  ...Object.keys(GROWTH),
] as [SloUnit, ...SloUnit[]];

const fieldOptions = {
  /** The result field to read (default: the metric's usual fields, see METRICS). */
  field: z.string().min(1).optional(),
  /** The field's unit, when its name does not tell (see fieldUnit). */
  fieldUnit: z.enum(ALL_UNITS).optional(),
};

const keysOf = <T extends object>(o: T) => Object.keys(o) as [keyof T & string, ...(keyof T & string)[]];
const finite = () => z.number().refine(Number.isFinite, 'must be a finite number');

export const MaxTimeBoundSchema = z.strictObject({
  max: finite().positive(),
  unit: z.enum(keysOf(TIME)),
  ...fieldOptions,
});
export const ThroughputBoundSchema = z.strictObject({
  min: finite().positive(),
  unit: z.enum(keysOf(RATE)),
  ...fieldOptions,
});
export const SuccessRateBoundSchema = z
  .strictObject({ min: finite().min(0), unit: z.enum(keysOf(RATIO)), ...fieldOptions })
  .refine((b) => b.min <= (b.unit === '%' ? 100 : 1), {
    message: 'a success rate is at most 1 (ratio) or 100 (%)',
    path: ['min'],
  });
export const MemoryGrowthBoundSchema = z.strictObject({
  max: finite().min(0),
  unit: z.enum(keysOf(GROWTH)),
  ...fieldOptions,
});

/** One SLO: a workload (and the operation it stands for) with one or more bounded figures. */
export const SloSchema = z
  .strictObject({
    /** The benchmark workload whose result this SLO reads (its name in BENCH_SPEC.md). */
    workload: z.string().min(1),
    /** What the workload stands for in messages, e.g. "service discovery" (default: workload). */
    operation: z.string().min(1).optional(),
    /** Free text: where the bound comes from. */
    note: z.string().optional(),
    /** How many runs to take the median of (overrides the file's `runs`). */
    runs: z.int().min(1).optional(),
    /**
     * Which lines of a workload that reports several (one per sampler, say) this SLO bounds: the
     * lines whose labels include all of these (`{"sampler": "tpe"}`). Default: every line.
     */
    where: z
      .record(z.string().min(1), z.string())
      .refine((w) => Object.keys(w).length > 0, 'names no label: give at least one, or leave "where" out')
      .optional(),
    p99: MaxTimeBoundSchema.optional(),
    mean: MaxTimeBoundSchema.optional(),
    throughput: ThroughputBoundSchema.optional(),
    successRate: SuccessRateBoundSchema.optional(),
    memoryGrowth: MemoryGrowthBoundSchema.optional(),
  })
  .superRefine((slo, ctx) => {
    if (!SLO_METRICS.some((m) => slo[m] !== undefined)) {
      ctx.addIssue({ code: 'custom', message: `bounds none of ${SLO_METRICS.join(', ')}`, path: [] });
    }
    for (const metric of SLO_METRICS) {
      const bound = slo[metric];
      if (bound?.field === undefined) continue;
      const unit = bound.fieldUnit ?? fieldUnit(bound.field);
      if (unit === null) {
        ctx.addIssue({
          code: 'custom',
          message: `cannot tell the unit of field ${JSON.stringify(bound.field)} from its name: give "fieldUnit"`,
          path: [metric, 'field'],
        });
      } else if (!METRICS[metric].fieldDimensions.includes(dimensionOf(unit))) {
        ctx.addIssue({
          code: 'custom',
          message: `field ${JSON.stringify(bound.field)} is in ${unit}, which cannot measure ${metric}`,
          path: [metric, bound.fieldUnit === undefined ? 'field' : 'fieldUnit'],
        });
      }
    }
  });

/** A budget file: SLOs for a set of workloads. */
export const BudgetsSchema = z.strictObject({
  /** JSON schema reference or comments are welcome; they are not read. */
  $schema: z.string().optional(),
  description: z.string().optional(),
  /** Default number of runs per workload; the gate compares the median of each figure. */
  runs: z.int().min(1).optional(),
  budgets: z.array(SloSchema).min(1),
});

export type Slo = z.infer<typeof SloSchema>;
export type Budgets = z.infer<typeof BudgetsSchema>;

/** `budgets[2].p99.unit` for zod's path `['budgets', 2, 'p99', 'unit']`; `(root)` for none. */
function jsonPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else if (typeof key === 'string' && /^[A-Za-z_$][\w$]*$/.test(key)) out += out === '' ? key : `.${key}`;
    else out += `[${JSON.stringify(String(key))}]`;
  }
  return out === '' ? '(root)' : out;
}

function issuesOf(error: z.ZodError): BudgetIssue[] {
  return error.issues.map((i) => ({ path: jsonPath(i.path), reason: i.message }));
}

/**
 * Check a parsed JSON value against the budget schema. `file` names the source in errors.
 * Throws BudgetFileError with every issue's path and zod's reason.
 */
export function parseBudgets(value: unknown, file = '(inline budgets)'): Budgets {
  const parsed = BudgetsSchema.safeParse(value);
  if (!parsed.success) throw new BudgetFileError(file, issuesOf(parsed.error));
  return parsed.data;
}

/** Read and check a budget file. Throws BudgetFileError when it is unreadable, not JSON, or invalid. */
export async function loadBudgets(file: string): Promise<Budgets> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new BudgetFileError(file, [{ path: '(file)', reason: `cannot read: ${errorText(error)}` }], {
      cause: error,
    });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new BudgetFileError(file, [{ path: '(root)', reason: `not valid JSON: ${errorText(error)}` }], {
      cause: error,
    });
  }
  return parseBudgets(json, file);
}

// ---- checking ----------------------------------------------------------------------------------

/**
 * A measured result, as a workload reports it: fields named with their units (BENCH_SPEC.md).
 * `fields: null` (with `error`) means the workload failed.
 */
export interface SloResult {
  workload: string;
  /** Which line of the workload this is, when it reports several (`{ sampler: 'tpe' }`). */
  labels?: Readonly<Record<string, string>> | undefined;
  fields: Readonly<Record<string, number>> | null;
  error?: string | null;
}

/** One budgeted figure against its measurement. */
export interface SloRow {
  workload: string;
  /** The labels of the line it was measured on, when the workload reports labelled lines. */
  labels?: Readonly<Record<string, string>>;
  /** The SLO's operation (its workload when it names none). */
  operation: string;
  metric: SloMetric;
  /** `max`: the figure must be at most `bound`; `min`: at least. */
  side: 'max' | 'min';
  /** The bound, in `unit`. */
  bound: number;
  unit: SloUnit;
  /** The measured figure in `unit`, or null when it was not measured. */
  measured: number | null;
  /** The result field it was read from, and that field's raw value (null when not measured). */
  field: string | null;
  raw: number | null;
  ok: boolean;
  /** Why it was not measured ("not measured: ..."), else ''. */
  detail: string;
}

/** What checkSlos returns: every row, the failed ones, and whether all passed. */
export interface SloReport {
  rows: SloRow[];
  violations: SloRow[];
  ok: boolean;
}

type AnyBound = {
  max?: number;
  min?: number;
  unit: SloUnit;
  field?: string | undefined;
  fieldUnit?: SloUnit | undefined;
};

/**
 * The rows of one SLO against one result (a line of its workload, or the failed workload), or
 * against no result: then every row is "not measured", with `missing` as the reason when given.
 */
function checkOne(slo: Slo, result: SloResult | undefined, missing?: string): SloRow[] {
  const operation = slo.operation ?? slo.workload;
  const labels = result?.fields === null ? undefined : result?.labels;
  const rows: SloRow[] = [];
  for (const metric of SLO_METRICS) {
    const bound = slo[metric] as AnyBound | undefined;
    if (bound === undefined) continue;
    const spec = METRICS[metric];
    const row: SloRow = {
      workload: slo.workload,
      operation,
      metric,
      side: spec.side,
      bound: (spec.side === 'max' ? bound.max : bound.min) as number,
      unit: bound.unit,
      measured: null,
      field: null,
      raw: null,
      ok: false,
      detail: '',
    };
    if (labels !== undefined && Object.keys(labels).length > 0) row.labels = labels;
    rows.push(row);
    if (result === undefined) {
      row.detail = missing ?? 'not measured: no result for this workload';
      continue;
    }
    if (result.fields === null) {
      row.detail = `not measured: the workload failed${result.error ? ` (${result.error})` : ''}`;
      continue;
    }
    const fields = result.fields;
    const candidates = bound.field === undefined ? spec.defaults : [bound.field];
    const field = candidates.find((f) => Object.hasOwn(fields, f));
    const raw = field === undefined ? undefined : fields[field];
    if (field === undefined || raw === undefined) {
      row.detail = `not measured: the result has no ${candidates.join(' or ')} field`;
      continue;
    }
    row.field = field;
    row.raw = raw;
    if (typeof raw !== 'number' || Number.isNaN(raw)) {
      row.detail = `not measured: field ${field} is not a number (${String(raw)})`;
      continue;
    }
    const from = bound.fieldUnit ?? fieldUnit(field);
    if (from === null || !spec.fieldDimensions.includes(dimensionOf(from))) {
      row.detail = `not measured: cannot read ${metric} from field ${field} (unit ${from ?? 'unknown'})`;
      continue;
    }
    row.measured = convertUnit(raw, from, bound.unit);
    row.ok = spec.side === 'max' ? row.measured <= row.bound : row.measured >= row.bound;
  }
  return rows;
}

/**
 * Compare results with budgets: one row per budgeted figure, in the budgets' order. Never throws
 * for a violation (only for malformed budgets: BudgetFileError). A figure with no measurement is
 * a violation with `measured: null` and a `detail` saying why.
 */
export function checkSlos(results: readonly SloResult[], budgets: Budgets | readonly Slo[]): SloReport {
  let list: readonly Slo[];
  if (Array.isArray(budgets)) list = budgets.length === 0 ? [] : parseBudgets({ budgets }).budgets;
  else list = parseBudgets(budgets).budgets;
  // Per workload, its lines (the first result per label set) in order.
  const byWorkload = new Map<string, Map<string, SloResult>>();
  for (const r of results) {
    let lines = byWorkload.get(r.workload);
    if (lines === undefined) {
      lines = new Map();
      byWorkload.set(r.workload, lines);
    }
    const key = r.fields === null ? '\u0000failed' : labelKey(r.labels ?? {});
    if (!lines.has(key)) lines.set(key, r);
  }
  const rows = list.flatMap((slo) => {
    const lines = [...(byWorkload.get(slo.workload)?.values() ?? [])];
    if (lines.length === 0) return checkOne(slo, undefined);
    const failed = lines.find((r) => r.fields === null);
    if (failed !== undefined) return checkOne(slo, failed);
    const where = slo.where;
    const selected = where === undefined ? lines : lines.filter((r) => labelsMatch(where, r.labels));
    if (selected.length === 0) {
      const had = lines.map((r) => formatLabels(r.labels ?? {}) || '(no labels)').join('; ');
      return checkOne(
        slo,
        undefined,
        `not measured: no line of the workload has ${formatLabels(where ?? {})} (its lines: ${had})`,
      );
    }
    return selected.flatMap((r) => checkOne(slo, r));
  });
  const violations = rows.filter((r) => !r.ok);
  return { rows, violations, ok: violations.length === 0 };
}

// ---- labelled lines ----------------------------------------------------------------------------

/** `sampler=tpe,seed=1` in the labels' own order; '' for none. */
export function formatLabels(labels: Readonly<Record<string, string>>): string {
  return Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}

/** The identity of a line among its workload's lines: its labels sorted by name (`formatLabels`). */
export function labelKey(labels: Readonly<Record<string, string>>): string {
  return formatLabels(
    Object.fromEntries(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))),
  );
}

/** `tune_overhead{sampler=tpe}`; the bare workload name for a line without labels. */
export function lineName(workload: string, labels?: Readonly<Record<string, string>>): string {
  const text = labels === undefined ? '' : formatLabels(labels);
  return text === '' ? workload : `${workload}{${text}}`;
}

/** True when `labels` has every label of `where` with the same value. */
export function labelsMatch(
  where: Readonly<Record<string, string>>,
  labels: Readonly<Record<string, string>> | undefined,
): boolean {
  return Object.entries(where).every(
    ([k, v]) => labels !== undefined && Object.hasOwn(labels, k) && labels[k] === v,
  );
}

/**
 * Throw SloViolationError unless `result` meets every bound of `slo`. The message names the
 * operation, each broken figure, its measured value and its bound (or why it was not measured).
 * `result` may be a workload result or just its fields (string fields are the line's labels). With
 * `where`, a result whose labels do not match is an InvalidArgumentError (it is not the line the
 * SLO bounds).
 */
export function assertSlo(result: SloResult | Readonly<Record<string, number | string>>, slo: Slo): void {
  const parsed = SloSchema.safeParse(slo);
  if (!parsed.success) {
    throw new InvalidArgumentError(
      'slo',
      issuesOf(parsed.error)
        .map((i) => `at ${i.path}: ${i.reason}`)
        .join('; '),
    );
  }
  const r: SloResult = isSloResult(result) ? result : plainResult(parsed.data.workload, result);
  if (r.workload !== parsed.data.workload) {
    throw new InvalidArgumentError(
      'result',
      `is for workload ${JSON.stringify(r.workload)}, the SLO for ${JSON.stringify(parsed.data.workload)}`,
    );
  }
  const where = parsed.data.where;
  if (where !== undefined && r.fields !== null && r.labels !== undefined && !labelsMatch(where, r.labels)) {
    throw new InvalidArgumentError(
      'result',
      `is the line ${lineName(r.workload, r.labels)}, the SLO bounds the lines with ${formatLabels(where)}`,
    );
  }
  const violations = checkOne(parsed.data, r).filter((row) => !row.ok);
  if (violations.length > 0) throw new SloViolationError(violations);
}

/** Bare fields as a result: string values are the line's labels, numbers its figures. */
function plainResult(workload: string, fields: Readonly<Record<string, number | string>>): SloResult {
  const figures: Record<string, number> = {};
  const labels: Record<string, string> = {};
  for (const [k, v] of Object.entries(fields)) {
    if (typeof v === 'string') labels[k] = v;
    else figures[k] = v;
  }
  return Object.keys(labels).length === 0
    ? { workload, fields: figures }
    : { workload, labels, fields: figures };
}

function isSloResult(value: unknown): value is SloResult {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { workload?: unknown }).workload === 'string' &&
    'fields' in value
  );
}

// ---- presentation ------------------------------------------------------------------------------

/** Four significant digits, whole numbers from 10,000 up, with thousands separators. */
export function formatFigure(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  const rounded = Math.abs(value) >= 10_000 ? Math.round(value) : Number(value.toPrecision(4));
  return rounded.toLocaleString('en-US', { maximumSignificantDigits: Math.abs(value) >= 10_000 ? 21 : 4 });
}

/** `<= 50 ms`, `>= 50,000 ops/s`. */
export function formatBound(row: Pick<SloRow, 'side' | 'bound' | 'unit'>): string {
  return `${row.side === 'max' ? '<=' : '>='} ${formatFigure(row.bound)} ${row.unit}`;
}

/** `12.3 ms`, or `not measured`. */
export function formatMeasured(row: Pick<SloRow, 'measured' | 'unit'>): string {
  return row.measured === null ? 'not measured' : `${formatFigure(row.measured)} ${row.unit}`;
}

/** `p99 is 63 ms, over the bound (<= 50 ms)`, or `p99 not measured: ...`. */
export function describeViolation(row: SloRow): string {
  if (row.measured === null) return `${row.metric} (bound ${formatBound(row)}) ${row.detail}`;
  const verb = row.side === 'max' ? 'over' : 'under';
  return `${row.metric} is ${formatMeasured(row)}, ${verb} the bound (${formatBound(row)})`;
}

/**
 * A readable table of the rows: workload (with the line's labels, `tune_overhead{sampler=tpe}`,
 * when it has any), operation, metric, bound, measured (in the bound's unit), the field it came
 * from with its raw value, and ok / FAIL.
 */
export function formatSloTable(rows: readonly SloRow[]): string {
  const header = ['workload', 'operation', 'metric', 'bound', 'measured', 'from field', 'status'];
  const body = rows.map((r) => [
    lineName(r.workload, r.labels),
    r.operation,
    r.metric,
    formatBound(r),
    formatMeasured(r),
    r.field === null ? '-' : `${r.field}=${r.raw === null ? '?' : formatFigure(r.raw)}`,
    r.ok ? 'ok' : 'FAIL',
  ]);
  const all = [header, ...body];
  const widths = header.map((_, c) => Math.max(...all.map((row) => (row[c] as string).length)));
  const line = (row: string[]) =>
    row
      .map((cell, c) =>
        c === 3 || c === 4 ? cell.padStart(widths[c] as number) : cell.padEnd(widths[c] as number),
      )
      .join('  ')
      .trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
