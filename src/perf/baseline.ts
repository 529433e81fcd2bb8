/**
 * Baselines: a suite's run saved as JSON, and the comparison of a new run with it.
 *
 * The regression test. For each operation in both runs, the statistic is the ratio of medians
 * r = median(current samples) / median(baseline samples), with a seeded percentile-bootstrap
 * confidence interval (stats.ts, bootstrapMedianRatio: by default 2,000 resamples, 95%
 * confidence, both runs resampled independently). With a threshold t (default 0.05):
 * - regression when the whole interval lies above 1 + t (low > 1 + t): the operation is slower by
 *   more than t, and the noise of the two runs cannot explain it;
 * - improvement when the whole interval lies below 1 - t (high < 1 - t);
 * - otherwise no significant change: either the change is small, or the runs are too noisy to say.
 * Medians rather than means, because latency distributions are skewed and a few GC pauses move
 * the mean; an interval rather than a point, so that noise on a shared machine does not fail a
 * build; the threshold, so that a real but negligible change does not either.
 *
 * What the interval does not cover: it measures the sampling noise within each run. A difference
 * between two processes (JIT decisions, CPU frequency, the load of a shared machine) is a shift
 * of the whole run, which more samples do not shrink: on this 2-core shared machine, two processes
 * running the same code differed by up to 13% in median, with intervals under 1% wide. Compare runs
 * from fresh processes, and keep the threshold above the machine's run-to-run spread (measure it by
 * comparing two runs of unchanged code: an A/A comparison).
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { z } from 'zod';
import { describe, InvalidArgumentError, MabeamError } from '../kernel/errors.js';
import { type BenchEnvironment, BenchErrorCodes, type SuiteResult } from './harness.js';
import { bootstrapMedianRatio, medianOfSorted, type RatioInterval, sortedCopy, thinSorted } from './stats.js';

// ---- errors ------------------------------------------------------------------------------------

/** A baseline file could not be read, or is not JSON. */
export class BaselineUnreadableError extends MabeamError {
  readonly file: string;
  constructor(file: string, cause: unknown) {
    super(BenchErrorCodes.BASELINE_UNREADABLE, `cannot read baseline ${file}: ${describe(cause)}`, { cause });
    this.file = file;
  }
}

/** A baseline file is JSON but not a valid baseline; `field` is the path of the first bad field. */
export class BaselineInvalidError extends MabeamError {
  readonly file: string;
  /** Path of the offending field, for example `operations[2].samples[5]` (`(root)` for the whole). */
  readonly field: string;
  constructor(file: string, field: string, problem: string) {
    super(BenchErrorCodes.BASELINE_INVALID, `baseline ${file} is invalid at ${field}: ${problem}`);
    this.file = file;
    this.field = field;
  }
}

/** A baseline file written with a schema version this code does not read. */
export class BaselineVersionError extends MabeamError {
  readonly file: string;
  readonly version: unknown;
  constructor(file: string, version: unknown) {
    super(
      BenchErrorCodes.BASELINE_VERSION,
      `baseline ${file} has schema version ${describe(version)}; ` +
        `this mabeam reads version ${BASELINE_VERSION} (save a new baseline)`,
    );
    this.file = file;
    this.version = version;
  }
}

// ---- the file format ---------------------------------------------------------------------------

/** The `schema` tag of a baseline file. */
export const BASELINE_SCHEMA = 'mabeam-bench-baseline';
/** The version of the baseline format this code writes and reads. */
export const BASELINE_VERSION = 1;

const finite = z.number().refine(Number.isFinite, 'must be a finite number');
const nonNegative = finite.refine((v) => v >= 0, 'must be >= 0');

const statsSchema = z.strictObject({
  n: z.number().int().min(1),
  mean: nonNegative,
  median: nonNegative,
  p90: nonNegative,
  p99: nonNegative,
  p999: nonNegative,
  min: nonNegative,
  max: nonNegative,
  sd: nonNegative,
  /** Relative margin of error in percent; null when infinite (a mean of 0). */
  rme: nonNegative.nullable(),
});

const memorySchema = z.strictObject({
  iterations: z.number().int().min(1),
  allocatedBytesPerOp: finite,
  retainedBytesPerOp: finite,
  collections: z.number().int().min(0),
});

const operationSchema = z.strictObject({
  name: z.string().min(1),
  async: z.boolean(),
  batch: z.number().int().min(1),
  /** Nanoseconds per call. */
  stats: statsSchema,
  opsPerSecond: nonNegative.nullable(),
  memory: memorySchema.nullable(),
  /** Samples in ns per call, ascending; at most the save's maxSamples, evenly spaced order statistics. */
  samples: z.array(nonNegative).min(1),
});

const environmentSchema = z.strictObject({
  node: z.string(),
  v8: z.string(),
  platform: z.string(),
  arch: z.string(),
  cpus: z.number().int().min(1),
  cpuModel: z.string(),
  gcExposed: z.boolean(),
});

/** The zod schema of a baseline file (version 1). */
export const BaselineSchema = z
  .strictObject({
    schema: z.literal(BASELINE_SCHEMA),
    version: z.literal(BASELINE_VERSION),
    suite: z.string().min(1),
    createdAt: z.iso.datetime(),
    environment: environmentSchema,
    operations: z.array(operationSchema),
  })
  .superRefine((b, ctx) => {
    const seen = new Set<string>();
    b.operations.forEach((op, i) => {
      if (seen.has(op.name)) {
        ctx.addIssue({
          code: 'custom',
          path: ['operations', i, 'name'],
          message: `duplicate operation name ${JSON.stringify(op.name)}`,
        });
      }
      seen.add(op.name);
      for (let j = 1; j < op.samples.length; j++) {
        if ((op.samples[j] as number) < (op.samples[j - 1] as number)) {
          ctx.addIssue({
            code: 'custom',
            path: ['operations', i, 'samples', j],
            message: 'samples must be in ascending order',
          });
          break;
        }
      }
    });
  });

/** A saved run: what `saveBaseline` writes and `loadBaseline` returns. */
export type Baseline = z.infer<typeof BaselineSchema>;
/** One operation of a baseline. */
export type BaselineOperation = Baseline['operations'][number];

/** Options of toBaseline and saveBaseline. */
export interface BaselineOptions {
  /**
   * Samples kept per operation (default 10,000), as evenly spaced order statistics (stats.ts,
   * thinSorted). Fewer samples make files smaller and later comparisons more conservative.
   */
  readonly maxSamples?: number;
}

/** Six significant digits: far below any threshold worth testing, and half the file size. */
function compact(x: number): number {
  return Number(x.toPrecision(6));
}

/**
 * The baseline form of a run: its measured operations (failed ones are left out), with their
 * statistics, memory figures and (thinned) samples.
 */
export function toBaseline(result: SuiteResult, options: BaselineOptions = {}): Baseline {
  const maxSamples = options.maxSamples ?? 10_000;
  if (!Number.isInteger(maxSamples) || maxSamples < 2) {
    throw new InvalidArgumentError('maxSamples', 'must be a whole number >= 2', maxSamples);
  }
  const operations: BaselineOperation[] = [];
  for (const op of result.operations) {
    if (op.state !== 'ok') continue;
    const { stats } = op;
    operations.push({
      name: op.name,
      async: op.async,
      batch: op.batch,
      stats: {
        n: stats.n,
        mean: stats.mean,
        median: stats.median,
        p90: stats.p90,
        p99: stats.p99,
        p999: stats.p999,
        min: stats.min,
        max: stats.max,
        sd: stats.sd,
        rme: Number.isFinite(stats.rme) ? stats.rme : null,
      },
      opsPerSecond: Number.isFinite(op.opsPerSecond) ? op.opsPerSecond : null,
      memory: op.memory === null ? null : { ...op.memory },
      samples: Array.from(thinSorted(op.samples, maxSamples), compact),
    });
  }
  return {
    schema: BASELINE_SCHEMA,
    version: BASELINE_VERSION,
    suite: result.suite,
    createdAt: result.startedAt,
    environment: { ...result.environment },
    operations,
  };
}

/** `a.b[2].c` from a zod issue path. */
function fieldPath(path: readonly PropertyKey[]): string {
  if (path.length === 0) return '(root)';
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out === '' ? String(key) : `.${String(key)}`;
  }
  return out;
}

/**
 * Check parsed JSON against the baseline schema. Throws BaselineVersionError for a baseline of
 * another version, and BaselineInvalidError naming `file` and the first bad field otherwise.
 */
export function parseBaseline(value: unknown, file = '(inline baseline)'): Baseline {
  if (
    value !== null &&
    typeof value === 'object' &&
    (value as { schema?: unknown }).schema === BASELINE_SCHEMA &&
    'version' in value &&
    (value as { version: unknown }).version !== BASELINE_VERSION
  ) {
    throw new BaselineVersionError(file, (value as { version: unknown }).version);
  }
  const parsed = BaselineSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new BaselineInvalidError(file, fieldPath(issue?.path ?? []), issue?.message ?? 'invalid');
  }
  return parsed.data;
}

/** Read and check a baseline file (BaselineUnreadableError, BaselineVersionError, BaselineInvalidError). */
export async function loadBaseline(file: string): Promise<Baseline> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new BaselineUnreadableError(file, error);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new BaselineUnreadableError(file, error);
  }
  return parseBaseline(json, file);
}

/** The baseline as JSON text: indented, but each sample array on one line. */
export function baselineJson(baseline: Baseline): string {
  return `${JSON.stringify(baseline, null, 2).replace(/\[\s+([-\d.e+,\s]+?)\s+\]/g, (_, nums: string) => `[${nums.replace(/\s+/g, '')}]`)}\n`;
}

/** Write a run (or a baseline) to `file` as a baseline, creating its directory; returns what was written. */
export async function saveBaseline(
  file: string,
  run: SuiteResult | Baseline,
  options: BaselineOptions = {},
): Promise<Baseline> {
  const baseline = 'schema' in run ? parseBaseline(run, file) : toBaseline(run, options);
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, baselineJson(baseline));
  return baseline;
}

// ---- comparing ---------------------------------------------------------------------------------

/** The outcome of the regression test for one operation. */
export type ComparisonVerdict = 'regression' | 'improvement' | 'no significant change';

/** One operation of a comparison: a union on `status`. */
export type OperationComparison =
  | {
      readonly status: 'compared';
      readonly name: string;
      readonly verdict: ComparisonVerdict;
      /** Ratio of medians (current / baseline) and its bootstrap interval. */
      readonly interval: RatioInterval;
      /** Medians in ns per call. */
      readonly baselineMedian: number;
      readonly currentMedian: number;
    }
  | { readonly status: 'only-in-baseline'; readonly name: string }
  | { readonly status: 'only-in-current'; readonly name: string }
  | { readonly status: 'not-comparable'; readonly name: string; readonly reason: string };

/** Options of compareWithBaseline. */
export interface CompareOptions {
  /** Relative change that counts (default 0.05: 5%). */
  readonly threshold?: number;
  /** Bootstrap resamples (default 2,000). */
  readonly resamples?: number;
  /** Bootstrap seed (default 1); the comparison is deterministic for a seed. */
  readonly seed?: number;
  /** Confidence level of the interval (default 0.95). */
  readonly confidence?: number;
}

/** A new run set against a baseline. */
export interface Comparison {
  readonly suite: string;
  readonly threshold: number;
  readonly confidence: number;
  readonly resamples: number;
  readonly seed: number;
  /** Per operation, in the current run's order, then those only in the baseline. */
  readonly operations: readonly OperationComparison[];
  /** Names of the operations flagged as regressions. */
  readonly regressions: readonly string[];
  readonly improvements: readonly string[];
  /** Environment fields that differ between the runs (figures may not be comparable). */
  readonly environmentChanges: readonly string[];
}

/**
 * The verdict for a ratio interval: regression when low > 1 + threshold, improvement when
 * high < 1 - threshold, else no significant change.
 */
export function classifyRatio(
  interval: Pick<RatioInterval, 'low' | 'high'>,
  threshold = 0.05,
): ComparisonVerdict {
  if (interval.low > 1 + threshold) return 'regression';
  if (interval.high < 1 - threshold) return 'improvement';
  return 'no significant change';
}

interface Comparable {
  readonly name: string;
  /** Ascending samples, or why there are none. */
  readonly samples: Float64Array | { readonly failed: string };
}

function comparablesOf(run: SuiteResult | Baseline): { env: BenchEnvironment; ops: Comparable[] } {
  if ('schema' in run) {
    return {
      env: run.environment,
      ops: run.operations.map((o) => ({ name: o.name, samples: Float64Array.from(o.samples) })),
    };
  }
  return {
    env: run.environment,
    ops: run.operations.map((o) => ({
      name: o.name,
      samples:
        o.state === 'ok'
          ? o.samples
          : { failed: `failed in the current run (${o.phase}): ${o.error.message}` },
    })),
  };
}

/**
 * Compare a run with a baseline, operation by operation, by the regression test in the module
 * comment. Operations present on one side only, or that failed, are listed but never flagged.
 */
export function compareWithBaseline(
  baseline: Baseline,
  current: SuiteResult | Baseline,
  options: CompareOptions = {},
): Comparison {
  const threshold = options.threshold ?? 0.05;
  if (typeof threshold !== 'number' || !(threshold >= 0 && threshold < 1)) {
    throw new InvalidArgumentError('threshold', 'must be a number in [0, 1)', threshold);
  }
  const resamples = options.resamples ?? 2000;
  const seed = options.seed ?? 1;
  const confidence = options.confidence ?? 0.95;
  const base = comparablesOf(baseline);
  const cur = comparablesOf(current);
  const baseByName = new Map(base.ops.map((o) => [o.name, o]));
  const operations: OperationComparison[] = [];
  for (const c of cur.ops) {
    const b = baseByName.get(c.name);
    if (b === undefined) {
      operations.push({ status: 'only-in-current', name: c.name });
      continue;
    }
    if (!(c.samples instanceof Float64Array)) {
      operations.push({ status: 'not-comparable', name: c.name, reason: c.samples.failed });
      continue;
    }
    const bs = b.samples as Float64Array;
    const cs = sortedCopy(c.samples);
    const baselineMedian = medianOfSorted(bs);
    const currentMedian = medianOfSorted(cs);
    if (!(baselineMedian > 0 && currentMedian > 0)) {
      operations.push({
        status: 'not-comparable',
        name: c.name,
        reason: `a median of 0 ns (baseline ${baselineMedian}, current ${currentMedian}): batch the operation`,
      });
      continue;
    }
    const interval = bootstrapMedianRatio(bs, cs, { resamples, seed, confidence });
    operations.push({
      status: 'compared',
      name: c.name,
      verdict: classifyRatio(interval, threshold),
      interval,
      baselineMedian,
      currentMedian,
    });
  }
  const currentNames = new Set(cur.ops.map((o) => o.name));
  for (const b of base.ops) {
    if (!currentNames.has(b.name)) operations.push({ status: 'only-in-baseline', name: b.name });
  }
  const flagged = (v: ComparisonVerdict) =>
    operations.filter((o) => o.status === 'compared' && o.verdict === v).map((o) => o.name);
  const environmentChanges = (Object.keys(base.env) as (keyof BenchEnvironment)[]).filter(
    (k) => k !== 'gcExposed' && base.env[k] !== cur.env[k],
  );
  return {
    suite: current.suite,
    threshold,
    confidence,
    resamples,
    seed,
    operations,
    regressions: flagged('regression'),
    improvements: flagged('improvement'),
    environmentChanges,
  };
}
