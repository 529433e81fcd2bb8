/**
 * Metrics: counters, gauges and HDR histograms aggregated in memory, fed directly or by
 * declarative definitions bound to telemetry events (Elixir's Telemetry.Metrics), and exposed as a
 * plain snapshot or as Prometheus text.
 *
 * Design:
 * - A `Metrics` instance belongs to one Telemetry (a runtime's); there is no global registry, and
 *   each instance has its own prom-client `Registry` (prom-client's default registry is never used,
 *   so two runtimes in one process never mix their figures).
 * - The in-memory store is the source of truth. Recording is a Map lookup and an addition (or one
 *   HDR record); prom-client objects are views that read the store only when scraped, so the hot
 *   path never pays for prom-client's label hashing.
 * - Histograms are HDR histograms (hdr-histogram-js) of integer ticks of `resolution` units, with
 *   exact count, sum, min and max kept beside them. Bucket counts are 64-bit (exact up to 2^53
 *   values a bucket; 32-bit counts would wrap after 2^32 and corrupt every quantile). They are
 *   exported to Prometheus as summaries whose quantiles (0.5, 0.9, 0.99, 0.999) come from the HDR
 *   data, so the exposition agrees with `snapshot()` and needs no bucket tuning. The price:
 *   summaries cannot be aggregated across instances in PromQL; export one instance per scrape
 *   target. hdr-histogram-js's JS recording costs roughly 100-300 ns a value (its index math uses
 *   Math.pow); its WASM build is faster but needs manual `destroy()` of every histogram, which a
 *   metrics store cannot promise.
 * - One telemetry handler per definition: a definition whose user function throws is detached and
 *   reported by the kernel, and every other definition keeps counting.
 * - Bad data in an event (a missing or non-finite measurement, a negative value for a counter or
 *   histogram, one label set too many) never throws from a handler, which would detach it: the
 *   event is skipped and counted in the metric's `dropped`. Misuse of the direct API throws at once.
 */
import * as hdr from 'hdr-histogram-js';
import { Counter as PromCounter, Gauge as PromGauge, Summary as PromSummary, Registry } from 'prom-client';
import {
  describe as describeValue,
  type EventName,
  InvalidArgumentError,
  MabeamError,
  type Measurements,
  type Metadata,
  Telemetry,
  type TelemetryHandler,
} from '../kernel/index.js';

// ---- errors ------------------------------------------------------------------------------------

/** Error codes of the metrics module (unique across mabeam, never reused). */
export const MetricsErrorCodes = {
  /**
   * A metric name is already in use with another type, other label names or other histogram
   * options; two metrics would write a sample of the same Prometheus name (`a.b` and `a_b`, or a
   * histogram `x`, which writes `x_sum` and `x_count`, and a counter `x.count`); or a definition
   * name is bound twice.
   */
  CONFLICT: 'E_METRIC_CONFLICT',
  /** A metric reached its limit of label sets (`maxSeries`). */
  CARDINALITY: 'E_METRIC_CARDINALITY',
} as const;

/** A metric name clashes with an existing metric (see MetricsErrorCodes.CONFLICT). */
export class MetricConflictError extends MabeamError {
  readonly metric: string;
  constructor(metric: string, problem: string) {
    super(MetricsErrorCodes.CONFLICT, `metric ${JSON.stringify(metric)}: ${problem}`);
    this.metric = metric;
  }
}

/** A metric already has `limit` label sets and would need one more. */
export class MetricCardinalityError extends MabeamError {
  readonly metric: string;
  readonly limit: number;
  constructor(metric: string, limit: number, labels: LabelSet) {
    super(
      MetricsErrorCodes.CARDINALITY,
      `metric ${JSON.stringify(metric)} already has its maximum of ${limit} label sets; ` +
        `refusing ${describeValue(labels)}`,
    );
    this.metric = metric;
    this.limit = limit;
  }
}

// ---- public types ------------------------------------------------------------------------------

/** Label values as given to the direct API. */
export type Labels = Readonly<Record<string, string | number | boolean>>;
/** Label values as stored and reported: always strings. */
export type LabelSet = Readonly<Record<string, string>>;

/** How a histogram keeps its values. */
export interface HistogramOptions {
  /**
   * Significant decimal digits kept by the HDR histogram, 1 to 5 (default 3: quantiles are within
   * 0.1% of the true value). Each extra digit costs about ten times the memory.
   */
  significantDigits?: number;
  /**
   * Largest value tracked (default Infinity). Larger values still count in count, sum and max,
   * but enter the quantiles as `max`: a bound on memory and on one outlier's weight.
   */
  max?: number;
  /**
   * Smallest distinguishable value, in the metric's unit. Values are stored as whole multiples of
   * it. Default: one microsecond for time units (0.001 for milliseconds, 1e-6 for seconds, 1 for
   * micro- and nanoseconds), else 0.001.
   */
  resolution?: number;
}

/** Description and unit of a metric, shown in Prometheus HELP text and in snapshots. */
export interface MetricInfo {
  description?: string;
  unit?: string;
}

/** A counter: a sum that only goes up. */
export interface Counter {
  readonly labels: LabelSet;
  readonly value: number;
  /** Add `amount` (default 1). Throws E_INVALID_ARGUMENT unless it is a finite number >= 0. */
  inc(amount?: number): void;
}

/** A gauge: a value that is set, or moved up and down. */
export interface Gauge {
  readonly labels: LabelSet;
  readonly value: number;
  /** Set the value. Throws E_INVALID_ARGUMENT unless it is a finite number. */
  set(value: number): void;
  /** Add `amount` (default 1). */
  inc(amount?: number): void;
  /** Subtract `amount` (default 1). */
  dec(amount?: number): void;
}

/** A histogram of non-negative values (latencies, sizes). */
export interface Histogram {
  readonly labels: LabelSet;
  /**
   * Record `value`, `count` times (default once: `count` is for figures aggregated elsewhere).
   * Throws E_INVALID_ARGUMENT unless `value` is a finite number >= 0 and `count` an integer >= 1.
   */
  record(value: number, count?: number): void;
  /** The figures so far. */
  stats(): HistogramStats;
}

/**
 * A histogram's figures. count, sum, min, max and mean are exact; the quantiles come from the HDR
 * histogram (within its significant digits, and never outside [min, max]). With no values, count
 * and sum are 0 and the rest NaN.
 */
export interface HistogramStats {
  readonly count: number;
  readonly sum: number;
  readonly min: number;
  readonly max: number;
  readonly mean: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly p999: number;
}

/** One label set of a counter or gauge in a snapshot. */
export interface ScalarPoint {
  readonly labels: LabelSet;
  readonly value: number;
}

/** One label set of a histogram in a snapshot. */
export interface HistogramPoint {
  readonly labels: LabelSet;
  readonly value: HistogramStats;
}

interface SnapshotCommon {
  readonly description: string | undefined;
  readonly unit: string | undefined;
  /** Events skipped: missing or invalid measurement, or a label set beyond `maxSeries`. */
  readonly dropped: number;
}

/** One metric in a snapshot, with one point per label set. */
export type MetricSnapshot =
  | (SnapshotCommon & { readonly type: 'counter' | 'gauge'; readonly series: readonly ScalarPoint[] })
  | (SnapshotCommon & { readonly type: 'histogram'; readonly series: readonly HistogramPoint[] });

/** Every metric of a Metrics instance by name; a copy, unaffected by later updates. */
export type MetricsSnapshot = Readonly<Record<string, MetricSnapshot>>;

/** Options of a Metrics instance. */
export interface MetricsOptions {
  /**
   * Most label sets one metric may have (default 1000). A tag with unbounded values (a pid, a
   * request id) would otherwise grow memory without limit.
   */
  maxSeries?: number;
}

/** The state of one definition bound by `Metrics.attach`. */
export interface BindingInfo {
  readonly name: string;
  readonly event: EventName;
  readonly handlerId: string;
  /** False once the kernel detached the handler (it threw) or someone detached it by id. */
  readonly attached: boolean;
  /** What the handler threw, if it did. */
  readonly error?: unknown;
}

// ---- declarative definitions (Telemetry.Metrics) ---------------------------------------------

/** Conversions a definition's `unit: {from, to}` can make. */
export type Unit = 'nanosecond' | 'microsecond' | 'millisecond' | 'second' | 'byte' | 'kilobyte' | 'megabyte';

const UNITS: Record<Unit, { dimension: 'time' | 'size'; factor: number }> = {
  nanosecond: { dimension: 'time', factor: 1e-9 },
  microsecond: { dimension: 'time', factor: 1e-6 },
  millisecond: { dimension: 'time', factor: 1e-3 },
  second: { dimension: 'time', factor: 1 },
  byte: { dimension: 'size', factor: 1 },
  kilobyte: { dimension: 'size', factor: 1e3 },
  megabyte: { dimension: 'size', factor: 1e6 },
};

/** One microsecond in each time unit, the default histogram resolution (written out: no fp noise). */
const DEFAULT_RESOLUTION: Partial<Record<string, number>> = {
  nanosecond: 1,
  microsecond: 1,
  millisecond: 0.001,
  second: 0.000001,
};

/** Computes a definition's value from an event; a non-number or non-finite result is dropped. */
export type MeasurementFn = (measurements: Measurements, metadata: Metadata) => number | undefined;

/** Options common to every definition. */
export interface DefinitionOptions {
  /** The event to listen to. Default: the name without its last dot-separated part. */
  event?: EventName;
  /**
   * The measurement key, or a function of the event. Default: the name's last part (so
   * `'mabeam.call.stop.duration'` reads `duration` of `['mabeam','call','stop']`). Counters ignore
   * it: they count events.
   */
  measurement?: string | MeasurementFn;
  /** Metadata keys whose values label the metric, one series per combination. */
  tags?: readonly string[];
  /** Derive the tag values from the metadata (default: the metadata itself). */
  tagValues?: (metadata: Metadata) => Metadata;
  /** Only events for which this holds are recorded. */
  keep?: (metadata: Metadata, measurements: Measurements) => boolean;
  description?: string;
  /**
   * The unit, shown in HELP text; `{from, to}` also converts each measurement (for example
   * `{from: 'millisecond', to: 'second'}` divides by 1000).
   */
  unit?: string | { from: Unit; to: Unit };
}

/** Options of `summary` and `distribution`: those of every definition plus the histogram's. */
export interface DistributionOptions extends DefinitionOptions, HistogramOptions {}

/** The Telemetry.Metrics kinds: counter, sum, last_value (a gauge), summary and distribution. */
export type DefinitionType = 'counter' | 'sum' | 'last_value' | 'summary' | 'distribution';

/** A metric definition: which event feeds which metric, how. Made by counter(), sum(), ... */
export class MetricDefinition {
  readonly type: DefinitionType;
  readonly name: string;
  readonly event: EventName;
  readonly measurement: string | MeasurementFn;
  readonly tags: readonly string[];
  readonly tagValues: ((metadata: Metadata) => Metadata) | undefined;
  readonly keep: ((metadata: Metadata, measurements: Measurements) => boolean) | undefined;
  readonly description: string | undefined;
  /** The unit reported (the target of a conversion). */
  readonly unit: string | undefined;
  /** Factor applied to each measurement (1 unless the unit converts). */
  readonly scale: number;
  readonly histogram: Readonly<Required<HistogramOptions>> | undefined;

  /** @internal use counter(), sum(), lastValue(), summary() or distribution() */
  constructor(type: DefinitionType, name: string, options: DistributionOptions | undefined) {
    const opts = options ?? {};
    if (typeof opts !== 'object') {
      throw new InvalidArgumentError(`options of metric ${describeValue(name)}`, 'must be an object', opts);
    }
    checkName(name);
    const what = `metric ${JSON.stringify(name)}`;
    const parts = name.split('.');
    let event: EventName;
    if (opts.event !== undefined) {
      if (!isStringArray(opts.event) || opts.event.length === 0) {
        throw new InvalidArgumentError(
          `${what} option "event"`,
          'must be a non-empty array of strings',
          opts.event,
        );
      }
      event = Object.freeze([...opts.event]);
    } else {
      if (parts.length < 2 || parts.some((p) => p === '')) {
        throw new InvalidArgumentError(
          'metric name',
          'must be an event name and a measurement joined by dots (like "mabeam.call.stop.duration"), or come with an "event" option',
          name,
        );
      }
      event = Object.freeze(parts.slice(0, -1));
    }
    const measurement = opts.measurement ?? (parts.at(-1) as string);
    if (typeof measurement === 'string' ? measurement === '' : typeof measurement !== 'function') {
      throw new InvalidArgumentError(
        `${what} option "measurement"`,
        'must be a non-empty string or a function',
        measurement,
      );
    }
    const tags = opts.tags ?? [];
    if (!isStringArray(tags) || tags.some((t) => t === '') || new Set(tags).size !== tags.length) {
      throw new InvalidArgumentError(
        `${what} option "tags"`,
        'must be an array of distinct non-empty strings',
        tags,
      );
    }
    for (const key of ['tagValues', 'keep'] as const) {
      if (opts[key] !== undefined && typeof opts[key] !== 'function') {
        throw new InvalidArgumentError(`${what} option "${key}"`, 'must be a function', opts[key]);
      }
    }
    if (opts.description !== undefined && typeof opts.description !== 'string') {
      throw new InvalidArgumentError(`${what} option "description"`, 'must be a string', opts.description);
    }
    const { unit, scale } = resolveUnit(what, opts.unit);
    this.type = type;
    this.name = name;
    this.event = event;
    this.measurement = measurement;
    this.tags = Object.freeze([...tags]);
    this.tagValues = opts.tagValues;
    this.keep = opts.keep;
    this.description = opts.description;
    this.unit = unit;
    this.scale = scale;
    this.histogram =
      type === 'summary' || type === 'distribution' ? resolveHistogram(what, opts, unit) : undefined;
    Object.freeze(this);
  }
}

/** Count the events (the measurement is ignored). Exported as a Prometheus counter. */
export function counter(name: string, options?: DefinitionOptions): MetricDefinition {
  return new MetricDefinition('counter', name, options);
}

/** Add up the measurement (negative values are dropped). Exported as a Prometheus counter. */
export function sum(name: string, options?: DefinitionOptions): MetricDefinition {
  return new MetricDefinition('sum', name, options);
}

/** Keep the latest measurement. Exported as a Prometheus gauge. */
export function lastValue(name: string, options?: DefinitionOptions): MetricDefinition {
  return new MetricDefinition('last_value', name, options);
}

/**
 * Record the measurement in an HDR histogram: count, sum, min, max, mean and quantiles. Exported
 * as a Prometheus summary with quantiles from the HDR data.
 */
export function summary(name: string, options?: DistributionOptions): MetricDefinition {
  return new MetricDefinition('summary', name, options);
}

/** The same as `summary` (the name Telemetry.Metrics users reach for); kept as its own type. */
export function distribution(name: string, options?: DistributionOptions): MetricDefinition {
  return new MetricDefinition('distribution', name, options);
}

/** Options of kernelMetrics. */
export interface KernelMetricsOptions {
  /** Histogram options of the call latency (milliseconds). */
  callDuration?: HistogramOptions;
}

/**
 * Definitions for the kernel's own events: agents spawned, exited (tag `normal`), crashed (tag
 * `callback`), unhandled messages (tag `kind`), mailbox overflows (tag `policy`), supervisor
 * restarts and give-ups, telemetry handlers that failed (tag `handlerId`), and the latency of calls
 * in milliseconds (tag `outcome`: ok, error, timeout).
 */
export function kernelMetrics(options: KernelMetricsOptions = {}): MetricDefinition[] {
  return [
    counter('mabeam.agent.spawn.count', { description: 'agents started' }),
    counter('mabeam.agent.exit.count', { tags: ['normal'], description: 'agents exited' }),
    counter('mabeam.agent.crash.count', { tags: ['callback'], description: 'callbacks that threw' }),
    counter('mabeam.agent.unhandled.count', {
      tags: ['kind'],
      description: 'messages no callback handled',
    }),
    counter('mabeam.mailbox.overflow.count', {
      tags: ['policy'],
      description: 'messages that found a bounded mailbox full',
    }),
    counter('mabeam.supervisor.restart.count', {
      // The kernel reports each exit that calls for a restart, the one that exceeds intensity too.
      description: 'child exits that called for a restart',
    }),
    counter('mabeam.supervisor.shutdown.count', {
      description: 'supervisors that exceeded their restart intensity',
    }),
    counter('telemetry.handler.failure.count', {
      tags: ['handlerId'],
      description: 'telemetry handlers detached because they threw',
    }),
    summary('mabeam.call.stop.duration', {
      ...options.callDuration,
      unit: 'millisecond',
      tags: ['outcome'],
      description: 'call latency, from call to reply or failure',
    }),
  ];
}

// ---- the store ---------------------------------------------------------------------------------

type Kind = 'counter' | 'gauge' | 'histogram';

const QUANTILES = [
  [0.5, 50],
  [0.9, 90],
  [0.99, 99],
  [0.999, 99.9],
] as const;

/**
 * The key of a series in its family: the one label value as it is, or the JSON text of the values
 * (collision-free whatever the values hold; a family's keys all have the same number of values).
 */
function seriesKey(values: readonly string[]): string {
  return values.length === 1 ? (values[0] as string) : JSON.stringify(values);
}

class CounterSeries implements Counter {
  value = 0;
  constructor(
    readonly labels: LabelSet,
    readonly promLabels: LabelSet,
  ) {}
  inc(amount = 1): void {
    if (typeof amount !== 'number' || !(amount >= 0) || amount === Number.POSITIVE_INFINITY) {
      throw new InvalidArgumentError('counter increment', 'must be a finite number >= 0', amount);
    }
    this.value += amount;
  }
}

class GaugeSeries implements Gauge {
  value = 0;
  constructor(
    readonly labels: LabelSet,
    readonly promLabels: LabelSet,
  ) {}
  set(value: number): void {
    this.value = finite('gauge value', value);
  }
  inc(amount = 1): void {
    this.value += finite('gauge increment', amount);
  }
  dec(amount = 1): void {
    this.value -= finite('gauge decrement', amount);
  }
}

class HistogramSeries implements Histogram {
  count = 0;
  sum = 0;
  min = Number.POSITIVE_INFINITY;
  max = Number.NEGATIVE_INFINITY;
  readonly #hdr: hdr.Histogram;
  readonly #ticksPerUnit: number;
  readonly #maxTicks: number;

  constructor(
    readonly labels: LabelSet,
    readonly promLabels: LabelSet,
    options: Readonly<Required<HistogramOptions>>,
  ) {
    // autoResize: the counts array covers only the range seen so far, so a histogram of
    // sub-millisecond values stays a few KB even with an unbounded max. 64-bit buckets (a
    // Float64Array, exact to 2^53): 32-bit ones wrap after 2^32 values in one bucket, which a
    // long-lived latency histogram reaches (50k calls a second do it in a day) and which then
    // silently corrupts every quantile.
    this.#hdr = hdr.build({
      bitBucketSize: 64,
      autoResize: true,
      numberOfSignificantValueDigits: options.significantDigits as 1 | 2 | 3 | 4 | 5,
    });
    this.#ticksPerUnit = 1 / options.resolution;
    this.#maxTicks = Math.min(Math.round(options.max * this.#ticksPerUnit), Number.MAX_SAFE_INTEGER);
  }

  record(value: number, count = 1): void {
    if (typeof value !== 'number' || !(value >= 0) || value === Number.POSITIVE_INFINITY) {
      throw new InvalidArgumentError('histogram value', 'must be a finite number >= 0', value);
    }
    if (count === 1) {
      this.observe(value);
      return;
    }
    if (!Number.isSafeInteger(count) || count < 1) {
      throw new InvalidArgumentError('histogram count', 'must be an integer >= 1', count);
    }
    this.count += count;
    this.sum += value * count;
    if (value < this.min) this.min = value;
    if (value > this.max) this.max = value;
    this.#hdr.recordValueWithCount(this.#ticks(value), count);
  }

  /** @internal record a value already known to be finite and >= 0 */
  observe(value: number): void {
    this.count++;
    this.sum += value;
    if (value < this.min) this.min = value;
    if (value > this.max) this.max = value;
    this.#hdr.recordValue(this.#ticks(value));
  }

  #ticks(value: number): number {
    return Math.min(Math.round(value * this.#ticksPerUnit), this.#maxTicks);
  }

  /** The value at `percentile` (0..100), clamped into [min, max]. */
  quantile(percentile: number): number {
    if (this.count === 0) return Number.NaN;
    const v = this.#hdr.getValueAtPercentile(percentile) / this.#ticksPerUnit;
    return Math.min(Math.max(v, this.min), this.max);
  }

  stats(): HistogramStats {
    const empty = this.count === 0;
    return {
      count: this.count,
      sum: this.sum,
      min: empty ? Number.NaN : this.min,
      max: empty ? Number.NaN : this.max,
      mean: empty ? Number.NaN : this.sum / this.count,
      p50: this.quantile(50),
      p90: this.quantile(90),
      p99: this.quantile(99),
      p999: this.quantile(99.9),
    };
  }
}

type Series = CounterSeries | GaugeSeries | HistogramSeries;

interface PromValue {
  value: number;
  labels: Record<string, string | number>;
  metricName?: string;
}

/**
 * The names of the samples a metric writes in the exposition: its Prometheus name, and for a
 * histogram (a summary there) also `_sum` and `_count`. No two metrics may share one.
 */
function sampleNames(promName: string, kind: Kind): string[] {
  return kind === 'histogram' ? [promName, `${promName}_sum`, `${promName}_count`] : [promName];
}

function sameNames(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((n, i) => n === b[i]);
}

class Family {
  readonly series = new Map<string, Series>();
  dropped = 0;
  readonly promName: string;
  readonly promLabelNames: readonly string[];
  /** See sampleNames. */
  readonly samples: readonly string[];

  constructor(
    readonly name: string,
    readonly kind: Kind,
    /** Sorted, so that {a, b} and {b, a} name the same label set. */
    readonly labelNames: readonly string[],
    readonly description: string | undefined,
    readonly unit: string | undefined,
    readonly histogram: Readonly<Required<HistogramOptions>> | undefined,
    readonly maxSeries: number,
  ) {
    this.promName = promMetricName(name);
    this.promLabelNames = labelNames.map(promLabelName);
    this.samples = sampleNames(this.promName, kind);
  }

  get help(): string {
    const text = this.description ?? this.name;
    return this.unit === undefined ? text : `${text} (${this.unit})`;
  }

  /** The series for these label values (in labelNames order), created if new; undefined at the limit. */
  seriesFor(values: readonly string[]): Series | undefined {
    const key = seriesKey(values);
    const found = this.series.get(key);
    if (found !== undefined) return found;
    if (this.series.size >= this.maxSeries) return undefined;
    const labels: Record<string, string> = {};
    const promLabels: Record<string, string> = {};
    for (let i = 0; i < values.length; i++) {
      labels[this.labelNames[i] as string] = values[i] as string;
      promLabels[this.promLabelNames[i] as string] = values[i] as string;
    }
    Object.freeze(labels);
    Object.freeze(promLabels);
    const series =
      this.kind === 'counter'
        ? new CounterSeries(labels, promLabels)
        : this.kind === 'gauge'
          ? new GaugeSeries(labels, promLabels)
          : new HistogramSeries(labels, promLabels, this.histogram!);
    this.series.set(key, series);
    return series;
  }

  /** Label values of a direct-API label object, in labelNames order; throws on a mismatch. */
  valuesOf(labels: Labels | undefined): string[] {
    const given = labels === undefined ? [] : Object.keys(labels);
    const mismatch =
      given.length !== this.labelNames.length || this.labelNames.some((n) => !Object.hasOwn(labels ?? {}, n));
    if (mismatch) {
      throw new MetricConflictError(
        this.name,
        `has the label names [${this.labelNames.join(', ')}], not [${[...given].sort().join(', ')}]`,
      );
    }
    return this.labelNames.map((n) => labelText(this.name, n, (labels as Labels)[n]));
  }

  snapshot(): MetricSnapshot {
    const common = { description: this.description, unit: this.unit, dropped: this.dropped };
    if (this.kind === 'histogram') {
      const series = [...this.series.values()].map((s) => ({
        labels: s.labels,
        value: (s as HistogramSeries).stats(),
      }));
      return { type: 'histogram', ...common, series };
    }
    const series = [...this.series.values()].map((s) => ({
      labels: s.labels,
      value: (s as CounterSeries | GaugeSeries).value,
    }));
    return { type: this.kind as 'counter' | 'gauge', ...common, series };
  }

  /** Values in prom-client's shape, read at scrape time. */
  promValues(): PromValue[] {
    const out: PromValue[] = [];
    for (const s of this.series.values()) {
      if (!(s instanceof HistogramSeries)) {
        out.push({ value: s.value, labels: s.promLabels });
        continue;
      }
      for (const [q, percentile] of QUANTILES) {
        out.push({ value: s.quantile(percentile), labels: { ...s.promLabels, quantile: q } });
      }
      out.push({ metricName: `${this.promName}_sum`, value: s.sum, labels: s.promLabels });
      out.push({ metricName: `${this.promName}_count`, value: s.count, labels: s.promLabels });
    }
    return out;
  }
}

// prom-client metrics as views of a Family: `get()` is what the Registry calls when scraping.

class CounterView extends PromCounter<string> {
  readonly #family: Family;
  constructor(family: Family, registry: Registry) {
    super({
      name: family.promName,
      help: family.help,
      labelNames: family.promLabelNames,
      registers: [registry],
    });
    this.#family = family;
  }
  override async get() {
    return { ...(await super.get()), values: this.#family.promValues() };
  }
}

class GaugeView extends PromGauge<string> {
  readonly #family: Family;
  constructor(family: Family, registry: Registry) {
    super({
      name: family.promName,
      help: family.help,
      labelNames: family.promLabelNames,
      registers: [registry],
    });
    this.#family = family;
  }
  override async get() {
    return { ...(await super.get()), values: this.#family.promValues() };
  }
}

class SummaryView extends PromSummary<string> {
  readonly #family: Family;
  constructor(family: Family, registry: Registry) {
    super({
      name: family.promName,
      help: family.help,
      labelNames: family.promLabelNames,
      percentiles: QUANTILES.map(([q]) => q),
      registers: [registry],
    });
    this.#family = family;
  }
  override async get() {
    return { ...(await super.get()), values: this.#family.promValues() };
  }
}

interface Binding {
  readonly definition: MetricDefinition;
  readonly handlerId: string;
  failure: { error: unknown } | undefined;
}

interface FamilyRequest {
  name: string;
  kind: Kind;
  labelNames: readonly string[];
  description: string | undefined;
  unit: string | undefined;
  /** Resolved histogram options (histograms only). */
  histogram: Readonly<Required<HistogramOptions>> | undefined;
  /** True when the caller gave histogram options explicitly (they must then match). */
  explicit: boolean;
}

const KIND_OF: Record<DefinitionType, Kind> = {
  counter: 'counter',
  sum: 'counter',
  last_value: 'gauge',
  summary: 'histogram',
  distribution: 'histogram',
};

/**
 * A set of metrics bound to one Telemetry. Record directly through handles
 * (`metrics.counter('jobs.done').inc()`) or bind definitions to telemetry events
 * (`Metrics.attach(runtime, kernelMetrics())`); read with `snapshot()`, `value()` or
 * `prometheus()`.
 */
export class Metrics {
  readonly telemetry: Telemetry;
  /** This instance's prom-client registry (never prom-client's global one). */
  readonly registry: Registry;
  readonly #id = globalThis.crypto.randomUUID().slice(0, 8);
  readonly #maxSeries: number;
  readonly #families = new Map<string, Family>();
  /** Every sample name (see sampleNames) -> the metric that writes it. */
  readonly #bySample = new Map<string, Family>();
  #bindings: Binding[] = [];

  /**
   * @param target the telemetry to bind definitions to: a Telemetry or a runtime.
   * @throws InvalidArgumentError (E_INVALID_ARGUMENT) for a bad target or `maxSeries`.
   */
  constructor(target: Telemetry | { readonly telemetry: Telemetry }, options: MetricsOptions = {}) {
    const telemetry = target instanceof Telemetry ? target : target?.telemetry;
    if (!(telemetry instanceof Telemetry)) {
      throw new InvalidArgumentError('metrics target', 'must be a Telemetry or have a telemetry', target);
    }
    const maxSeries = options.maxSeries ?? 1000;
    if (!Number.isInteger(maxSeries) || maxSeries < 1) {
      throw new InvalidArgumentError('metrics option "maxSeries"', 'must be an integer >= 1', maxSeries);
    }
    this.telemetry = telemetry;
    this.#maxSeries = maxSeries;
    this.registry = new Registry();
  }

  /** A new Metrics on `target` with `definitions` attached. */
  static attach(
    target: Telemetry | { readonly telemetry: Telemetry },
    definitions: readonly MetricDefinition[],
    options?: MetricsOptions,
  ): Metrics {
    const metrics = new Metrics(target, options);
    metrics.attach(definitions);
    return metrics;
  }

  /**
   * Attach one telemetry handler per definition; each records its event into the metric of the
   * same name, one series per combination of tag values. All or nothing: on any error nothing is
   * attached. A definition whose handler is no longer attached (it threw, or was detached by its
   * id) may be attached again; its metric carries on.
   *
   * @throws InvalidArgumentError if an element is not a MetricDefinition; MetricConflictError if a
   * name is bound already (here or in this call) or clashes with an existing metric (another type
   * or label names, or a Prometheus sample name in common).
   */
  attach(definitions: readonly MetricDefinition[]): void {
    if (!Array.isArray(definitions)) {
      throw new InvalidArgumentError('metric definitions', 'must be an array', definitions);
    }
    const live = new Set(this.telemetry.handlers().map((h) => h.id));
    const bound = new Set(this.#bindings.filter((b) => live.has(b.handlerId)).map((b) => b.definition.name));
    const requests: FamilyRequest[] = [];
    /** Sample name -> the definition of this call that writes it. */
    const samples = new Map<string, MetricDefinition>();
    for (const def of definitions) {
      if (!(def instanceof MetricDefinition)) {
        throw new InvalidArgumentError(
          'metric definition',
          'must be made by counter(), sum(), lastValue(), summary() or distribution()',
          def,
        );
      }
      if (bound.has(def.name)) throw new MetricConflictError(def.name, 'is already bound to an event');
      bound.add(def.name);
      const request: FamilyRequest = {
        name: def.name,
        kind: KIND_OF[def.type],
        labelNames: [...def.tags].sort(),
        description: def.description,
        unit: def.unit,
        histogram: def.histogram,
        explicit: true,
      };
      this.#check(request);
      const promName = promMetricName(def.name);
      for (const sample of sampleNames(promName, request.kind)) {
        const other = samples.get(sample);
        if (other !== undefined) {
          throw sampleConflict(def.name, promName, sample, other.name, promMetricName(other.name));
        }
      }
      for (const sample of sampleNames(promName, request.kind)) samples.set(sample, def);
      requests.push(request);
    }
    // The bindings of names bound again here are dead (else `bound` refused them): replace them.
    const again = new Set(definitions.map((d) => d.name));
    this.#bindings = this.#bindings.filter((b) => !again.has(b.definition.name));
    definitions.forEach((def, i) => {
      const family = this.#family(requests[i] as FamilyRequest);
      const binding: Binding = {
        definition: def,
        handlerId: `mabeam.metrics.${this.#id}.${def.name}`,
        failure: undefined,
      };
      this.telemetry.attach(binding.handlerId, def.event, handlerFor(def, family, binding));
      this.#bindings.push(binding);
    });
  }

  /** Detach every handler this instance attached. The figures stay. */
  detach(): void {
    for (const b of this.#bindings) this.telemetry.detach(b.handlerId);
    this.#bindings = [];
  }

  /** Each bound definition, whether its handler is still attached, and what it threw if it did. */
  bindings(): BindingInfo[] {
    const live = new Set(this.telemetry.handlers().map((h) => h.id));
    return this.#bindings.map((b) => ({
      name: b.definition.name,
      event: b.definition.event,
      handlerId: b.handlerId,
      attached: live.has(b.handlerId),
      ...(b.failure === undefined ? {} : { error: b.failure.error }),
    }));
  }

  /**
   * The counter `name` with these labels, created at 0 if new. Keep the handle on hot paths: this
   * call looks the series up.
   *
   * Label names are fixed by the first use of `name`; description and unit too (later ones are
   * ignored).
   *
   * @throws InvalidArgumentError for a bad name or label value; MetricConflictError if `name` is
   * another type or has other label names; MetricCardinalityError if the metric already has
   * `maxSeries` label sets and these are new.
   */
  counter(name: string, labels?: Labels, info?: MetricInfo): Counter {
    return this.#series(name, 'counter', labels, info, undefined) as CounterSeries;
  }

  /** The gauge `name` with these labels, created at 0 if new. Throws as `counter` does. */
  gauge(name: string, labels?: Labels, info?: MetricInfo): Gauge {
    return this.#series(name, 'gauge', labels, info, undefined) as GaugeSeries;
  }

  /**
   * The histogram `name` with these labels, created empty if new. Options apply when the metric is
   * created; given again later they must be the same (else MetricConflictError). Throws as `counter`
   * does, and InvalidArgumentError for bad options.
   */
  histogram(name: string, labels?: Labels, options?: HistogramOptions & MetricInfo): Histogram {
    return this.#series(name, 'histogram', labels, options, options) as HistogramSeries;
  }

  /**
   * The current value of one series: a number for counters and gauges, HistogramStats for
   * histograms; undefined if the metric or the label set does not exist.
   *
   * @throws MetricConflictError if the labels' names are not the metric's.
   */
  value(name: string, labels?: Labels): number | HistogramStats | undefined {
    const family = this.#families.get(name);
    if (family === undefined) return undefined;
    const values = family.valuesOf(labels);
    const series = family.series.get(seriesKey(values));
    if (series === undefined) return undefined;
    return series instanceof HistogramSeries ? series.stats() : series.value;
  }

  /**
   * Forget one label set of a metric (say that of an agent that has exited): it leaves `value`,
   * `snapshot` and the exposition and no longer counts toward `maxSeries`. Recording it again
   * starts it from zero; a handle to the removed series records into nothing, so fetch a new one.
   * False if the metric or the label set does not exist.
   *
   * @throws MetricConflictError if the labels' names are not the metric's; InvalidArgumentError for
   * a metric without labels (its one series always exists).
   */
  remove(name: string, labels: Labels): boolean {
    const family = this.#families.get(name);
    if (family === undefined) return false;
    const values = family.valuesOf(labels);
    if (values.length === 0) {
      throw new InvalidArgumentError(
        `labels of metric ${JSON.stringify(name)}`,
        'must name a label set: the metric has no labels, and its one series cannot be removed',
        labels,
      );
    }
    return family.series.delete(seriesKey(values));
  }

  /** Every metric, by name. */
  snapshot(): MetricsSnapshot {
    const out: Record<string, MetricSnapshot> = {};
    for (const [name, family] of this.#families) out[name] = family.snapshot();
    return out;
  }

  /**
   * The Prometheus text exposition (format 0.0.4) of every metric. Names have every character
   * outside [a-zA-Z0-9_:] replaced by `_` (`mabeam.call.stop.duration` becomes
   * `mabeam_call_stop_duration`); label values are escaped by prom-client. Histograms appear as
   * summaries with quantiles 0.5, 0.9, 0.99 and 0.999 plus `_sum` and `_count`.
   */
  prometheus(): Promise<string> {
    return this.registry.metrics();
  }

  /** The HTTP Content-Type of `prometheus()`'s text. */
  get contentType(): string {
    return this.registry.contentType;
  }

  #series(
    name: string,
    kind: Kind,
    labels: Labels | undefined,
    info: MetricInfo | undefined,
    histogram: HistogramOptions | undefined,
  ): Series {
    checkName(name);
    if (labels !== undefined && (labels === null || typeof labels !== 'object')) {
      throw new InvalidArgumentError(`labels of metric ${JSON.stringify(name)}`, 'must be an object', labels);
    }
    let family = this.#families.get(name);
    const explicit = histogram !== undefined && hasHistogramOption(histogram);
    if (family === undefined || family.kind !== kind || explicit) {
      // Check the values before the metric exists, so a bad call leaves nothing behind.
      for (const key in labels) labelText(name, key, labels[key]);
      family = this.#family(this.#request(name, kind, labels, info, histogram, explicit));
    }
    const values = family.valuesOf(labels);
    const series = family.seriesFor(values);
    if (series === undefined) {
      const named = Object.fromEntries(family.labelNames.map((n, i) => [n, values[i] as string]));
      throw new MetricCardinalityError(name, family.maxSeries, named);
    }
    return series;
  }

  #request(
    name: string,
    kind: Kind,
    labels: Labels | undefined,
    info: MetricInfo | undefined,
    histogram: HistogramOptions | undefined,
    explicit: boolean,
  ): FamilyRequest {
    const what = `metric ${JSON.stringify(name)}`;
    if (info !== undefined && (info === null || typeof info !== 'object')) {
      throw new InvalidArgumentError(`options of ${what}`, 'must be an object', info);
    }
    const unit = info?.unit;
    if (unit !== undefined && typeof unit !== 'string') {
      throw new InvalidArgumentError(`${what} option "unit"`, 'must be a string', unit);
    }
    const description = info?.description;
    if (description !== undefined && typeof description !== 'string') {
      throw new InvalidArgumentError(`${what} option "description"`, 'must be a string', description);
    }
    return {
      name,
      kind,
      labelNames: labels === undefined ? [] : Object.keys(labels).sort(),
      description,
      unit,
      histogram: kind === 'histogram' ? resolveHistogram(what, histogram ?? {}, unit) : undefined,
      explicit,
    };
  }

  /** Why `request` cannot be served by the existing metrics, as a thrown MetricConflictError. */
  #check(request: FamilyRequest): void {
    const { name, kind, labelNames } = request;
    const existing = this.#families.get(name);
    if (existing !== undefined) {
      if (existing.kind !== kind) throw new MetricConflictError(name, `is a ${existing.kind}, not a ${kind}`);
      if (!sameNames(existing.labelNames, labelNames)) {
        throw new MetricConflictError(
          name,
          `has the label names [${existing.labelNames.join(', ')}], not [${labelNames.join(', ')}]`,
        );
      }
      if (request.explicit && !sameHistogram(existing.histogram, request.histogram)) {
        throw new MetricConflictError(
          name,
          `has the histogram options ${describeValue(existing.histogram)}, not ${describeValue(request.histogram)}`,
        );
      }
      return;
    }
    const promName = promMetricName(name);
    for (const sample of sampleNames(promName, kind)) {
      const clash = this.#bySample.get(sample);
      if (clash !== undefined) throw sampleConflict(name, promName, sample, clash.name, clash.promName);
    }
    const promLabels = labelNames.map(promLabelName);
    if (new Set(promLabels).size !== promLabels.length) {
      throw new InvalidArgumentError(
        `label names of metric ${JSON.stringify(name)}`,
        'must stay distinct in Prometheus form (characters outside [a-zA-Z0-9_] become _)',
        labelNames,
      );
    }
    if (kind === 'histogram' && promLabels.includes('quantile')) {
      throw new InvalidArgumentError(
        `label names of metric ${JSON.stringify(name)}`,
        'must not include "quantile" (a histogram exports its quantiles under that label)',
        labelNames,
      );
    }
    if (labelNames.includes('')) {
      throw new InvalidArgumentError(
        `label names of metric ${JSON.stringify(name)}`,
        'must not be empty',
        labelNames,
      );
    }
  }

  #family(request: FamilyRequest): Family {
    this.#check(request);
    const existing = this.#families.get(request.name);
    if (existing !== undefined) return existing;
    const family = new Family(
      request.name,
      request.kind,
      request.labelNames,
      request.description,
      request.unit,
      request.histogram,
      this.#maxSeries,
    );
    if (family.kind === 'counter') new CounterView(family, this.registry);
    else if (family.kind === 'gauge') new GaugeView(family, this.registry);
    else new SummaryView(family, this.registry);
    this.#families.set(family.name, family);
    for (const sample of family.samples) this.#bySample.set(sample, family);
    // A metric without labels exists from the start: Prometheus then sees 0, not an absent series.
    if (family.labelNames.length === 0) family.seriesFor([]);
    return family;
  }
}

function sampleConflict(
  name: string,
  promName: string,
  sample: string,
  other: string,
  otherPromName: string,
): MetricConflictError {
  return new MetricConflictError(
    name,
    promName === otherPromName
      ? `has the same Prometheus name ${promName} as ${JSON.stringify(other)}`
      : `would write the Prometheus sample ${sample}, which ${JSON.stringify(other)} (${otherPromName}) writes too`,
  );
}

// ---- handlers ----------------------------------------------------------------------------------

/**
 * The telemetry handler of one definition. Bad data is dropped and counted, never thrown; only a
 * user function (measurement, tagValues, keep) can throw, and then the failure is remembered on
 * the binding and rethrown so that the kernel detaches this handler and reports it.
 */
function handlerFor(def: MetricDefinition, family: Family, binding: Binding): TelemetryHandler {
  const { type, measurement, scale, keep, tagValues } = def;
  const labelNames = family.labelNames;
  const fixed = labelNames.length === 0 ? family.seriesFor([]) : undefined;
  const values: string[] = new Array(labelNames.length);
  return (_event, measurements, metadata) => {
    try {
      if (keep !== undefined && !keep(metadata, measurements)) return;
      let value = 1;
      if (type !== 'counter') {
        const raw =
          typeof measurement === 'string' ? measurements[measurement] : measurement(measurements, metadata);
        if (typeof raw !== 'number' || !Number.isFinite(raw)) {
          family.dropped++;
          return;
        }
        value = raw * scale;
        if (value < 0 && type !== 'last_value') {
          family.dropped++;
          return;
        }
      }
      let series = fixed;
      if (series === undefined) {
        const source = tagValues === undefined ? metadata : tagValues(metadata);
        for (let i = 0; i < labelNames.length; i++) values[i] = tagValue(source?.[labelNames[i] as string]);
        series = family.seriesFor(values);
        if (series === undefined) {
          family.dropped++;
          return;
        }
      }
      if (series instanceof HistogramSeries) series.observe(value);
      else if (type === 'last_value') series.value = value;
      else series.value += value;
    } catch (error) {
      binding.failure = { error };
      throw error;
    }
  };
}

/** A direct-API label value as text; anything but a string, number or boolean is refused. */
function labelText(metric: string, key: string, value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  throw new InvalidArgumentError(
    `label ${JSON.stringify(key)} of metric ${JSON.stringify(metric)}`,
    'must be a string, number or boolean',
    value,
  );
}

/** A metadata value as a label value: primitives as text, refs by their toString, absent as ''. */
function tagValue(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return value;
    case 'number':
    case 'boolean':
    case 'bigint':
      return String(value);
    case 'undefined':
      return '';
    default:
      return value === null ? '' : describeValue(value);
  }
}

// ---- validation and names ----------------------------------------------------------------------

function checkName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || name === '') {
    throw new InvalidArgumentError('metric name', 'must be a non-empty string', name);
  }
}

function isStringArray(value: unknown): value is readonly string[] {
  return Array.isArray(value) && value.every((v) => typeof v === 'string');
}

function finite(what: string, value: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new InvalidArgumentError(what, 'must be a finite number', value);
  }
  return value;
}

/** `name` as a Prometheus metric name: [a-zA-Z_:][a-zA-Z0-9_:]*. */
export function promMetricName(name: string): string {
  const s = name.replace(/[^a-zA-Z0-9_:]/g, '_');
  return /^[0-9]/.test(s) ? `_${s}` : s;
}

/** `name` as a Prometheus label name: [a-zA-Z_][a-zA-Z0-9_]*. */
export function promLabelName(name: string): string {
  const s = name.replace(/[^a-zA-Z0-9_]/g, '_');
  return /^[0-9]/.test(s) ? `_${s}` : s;
}

function resolveUnit(
  what: string,
  unit: DefinitionOptions['unit'],
): { unit: string | undefined; scale: number } {
  if (unit === undefined || typeof unit === 'string') return { unit, scale: 1 };
  const from = unit !== null && typeof unit === 'object' ? UNITS[unit.from] : undefined;
  const to = unit !== null && typeof unit === 'object' ? UNITS[unit.to] : undefined;
  if (from === undefined || to === undefined || from.dimension !== to.dimension) {
    throw new InvalidArgumentError(
      `${what} option "unit"`,
      `must be a string or {from, to} with two time units or two size units among ${Object.keys(UNITS).join(', ')}`,
      unit,
    );
  }
  return { unit: unit.to, scale: from.factor / to.factor };
}

function hasHistogramOption(options: HistogramOptions): boolean {
  return (
    options.significantDigits !== undefined || options.max !== undefined || options.resolution !== undefined
  );
}

function resolveHistogram(
  what: string,
  options: HistogramOptions,
  unit: string | undefined,
): Readonly<Required<HistogramOptions>> {
  const significantDigits = options.significantDigits ?? 3;
  if (!Number.isInteger(significantDigits) || significantDigits < 1 || significantDigits > 5) {
    throw new InvalidArgumentError(
      `${what} option "significantDigits"`,
      'must be an integer from 1 to 5',
      significantDigits,
    );
  }
  const resolution =
    options.resolution ?? (unit === undefined ? undefined : DEFAULT_RESOLUTION[unit]) ?? 0.001;
  if (typeof resolution !== 'number' || !Number.isFinite(resolution) || resolution <= 0) {
    throw new InvalidArgumentError(`${what} option "resolution"`, 'must be a finite number > 0', resolution);
  }
  const max = options.max ?? Number.POSITIVE_INFINITY;
  if (typeof max !== 'number' || Number.isNaN(max) || max < resolution) {
    throw new InvalidArgumentError(
      `${what} option "max"`,
      `must be a number >= the resolution (${resolution})`,
      max,
    );
  }
  return Object.freeze({ significantDigits, resolution, max });
}

function sameHistogram(
  a: Readonly<Required<HistogramOptions>> | undefined,
  b: Readonly<Required<HistogramOptions>> | undefined,
): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.significantDigits === b.significantDigits && a.max === b.max && a.resolution === b.resolution;
}
