/**
 * Small helpers shared by the workloads: a monotonic nanosecond clock, forced garbage collection
 * and heap readings for the memory figures, percentiles for latency workloads, and the median used
 * to combine repeated runs.
 */

/**
 * What one line of a workload's run reports: the field names of BENCH_SPEC.md mapped to their
 * values. Numbers are figures (`us_per_trial`); strings are labels that say which line this is when
 * a workload reports several (`sampler: "tpe"`). A workload that reports one line needs no label.
 */
export type Fields = Record<string, number | string>;

/** One benchmark workload. `run` warms up, measures, cleans up and returns its line(s). */
export interface Workload {
  /** The workload's name in BENCH_SPEC.md (and in `--only`). */
  readonly name: string;
  /** One line for the readable table's header and `--help`. */
  readonly description: string;
  /** True when the workload reads the heap, which needs node's `--expose-gc`. */
  readonly needsGc: boolean;
  /**
   * One line of fields, or several (BENCH_SPEC's tune_overhead: one per sampler). Several lines
   * must each carry string labels that tell them apart (`{ sampler: 'random', ... }`), the same
   * labels in every run: the runs of a line are combined by its labels.
   */
  run(): Promise<Fields | readonly Fields[]>;
}

/** A workload's lines broke the rules above (none, or two with the same labels). */
export class WorkloadLinesError extends Error {
  constructor(workload: string, problem: string) {
    super(`${workload}: ${problem}`);
    this.name = 'WorkloadLinesError';
  }
}

/** The labels of a line (its string fields), in the line's order. */
export function labelsOf(fields: Fields): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(fields)) if (typeof v === 'string') out[k] = v;
  return out;
}

/** The identity of a line among its workload's lines: `sampler=tpe`, `` for a line without labels. */
export function lineKey(fields: Fields): string {
  return Object.entries(labelsOf(fields))
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}

/**
 * A run's result as a list of lines, checked: at least one, and with several, each with labels
 * no other line has. Throws WorkloadLinesError naming the workload otherwise.
 */
export function linesOf(workload: string, result: Fields | readonly Fields[]): Fields[] {
  const lines = Array.isArray(result) ? [...(result as readonly Fields[])] : [result as Fields];
  if (lines.length === 0) throw new WorkloadLinesError(workload, 'reported no line');
  if (lines.length > 1) {
    const seen = new Set<string>();
    for (const line of lines) {
      const key = lineKey(line);
      if (seen.has(key)) {
        throw new WorkloadLinesError(
          workload,
          key === ''
            ? 'reported several lines, some without a label: give each line a string label (e.g. sampler: "tpe")'
            : `reported two lines labelled ${key}: each line needs labels of its own`,
        );
      }
      seen.add(key);
    }
  }
  return lines;
}

/** Thrown when a memory figure is asked for but node was started without `--expose-gc`. */
export class GcUnavailableError extends Error {
  constructor() {
    super(
      'forced GC is not available: start node with --expose-gc ' +
        '(npm run bench does; for a direct run use `node --expose-gc build/bench/main.js`)',
    );
    this.name = 'GcUnavailableError';
  }
}

/** The current time in nanoseconds from a monotonic clock (never jumps with the wall clock). */
export function now(): bigint {
  return process.hrtime.bigint();
}

/** Nanoseconds elapsed since `start` (a value of `now()`), as a plain number. */
export function nsSince(start: bigint): number {
  return Number(process.hrtime.bigint() - start);
}

/** True when node was started with `--expose-gc`. */
export function hasGc(): boolean {
  return typeof (globalThis as { gc?: unknown }).gc === 'function';
}

/**
 * Run a full, synchronous garbage collection. Twice, because the first pass can leave behind
 * objects that only become unreachable once others were collected (weak references, finalizers).
 * Throws GcUnavailableError without `--expose-gc`.
 */
export function forceGc(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (typeof gc !== 'function') throw new GcUnavailableError();
  gc();
  gc();
}

/** Heap in use, in bytes, right after a forced GC, so that only live objects are counted. */
export function liveHeap(): number {
  forceGc();
  return process.memoryUsage().heapUsed;
}

/** Let every pending microtask, promise reaction and setImmediate callback run. */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Latency summary of a sample, in the sample's own unit (except `n`, the sample count). */
export interface Percentiles {
  p50: number;
  p99: number;
  mean: number;
  n: number;
}

/**
 * Nearest-rank percentiles and mean of the first `count` samples (all by default). Sorts that
 * part of `samples` in place; a Float64Array sorts numerically, with no comparator needed.
 */
export function percentiles(samples: Float64Array, count = samples.length): Percentiles {
  if (count <= 0) throw new RangeError('percentiles need at least one sample');
  const sorted = samples.subarray(0, count).sort();
  let sum = 0;
  for (let i = 0; i < count; i++) sum += sorted[i] as number;
  const rank = (p: number) => sorted[Math.max(0, Math.ceil(p * count) - 1)] as number;
  return { p50: rank(0.5), p99: rank(0.99), mean: sum / count, n: count };
}

/** The median of `values` (the mean of the two middle ones for an even count). */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new RangeError('median of no values');
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/**
 * Round a figure for display: four significant digits, and whole numbers from 10,000 up (no one
 * reads the decimals of 15,234,112 ops/s, and they are noise anyway).
 */
export function roundFigure(value: number): number {
  if (!Number.isFinite(value)) return value;
  if (Math.abs(value) >= 10_000) return Math.round(value);
  return Number(value.toPrecision(4));
}
