/**
 * Baselines: a suite's runs saved as JSON, and the comparison of new runs with them.
 *
 * A baseline holds one or more runs per operation (each run's thinned samples; a run may hold a
 * single value, such as the median of a separate process). Several runs are what let the test see
 * the noise between processes (below).
 *
 * The regression test. For each operation on both sides, the statistic is the ratio of the
 * medians of per-run medians r = median_runs(median(current run)) / median_runs(median(baseline
 * run)) (with one run per side: the plain ratio of medians), with a seeded percentile-bootstrap
 * confidence interval (stats.ts, bootstrapRunsMedianRatio: by default 2,000 resamples, 95%
 * confidence, the two sides resampled independently; runs with replacement, then samples within
 * each drawn run). With a threshold t (default 0.05):
 * - regression when the whole interval lies above 1 + t (low > 1 + t): the operation is slower by
 *   more than t, and the noise of the two runs cannot explain it;
 * - improvement when the whole interval lies below 1 - t (high < 1 - t);
 * - otherwise no significant change: either the change is small, or the runs are too noisy to say.
 * Medians rather than means, because latency distributions are skewed and a few GC pauses move
 * the mean; an interval rather than a point, so that noise on a shared machine does not fail a
 * build; the threshold, so that a real but negligible change does not either.
 *
 * Between-run noise. A difference between two processes (JIT decisions, CPU frequency, the load
 * of a shared machine) is a shift of the whole run, which more samples do not shrink: on this
 * 2-core shared machine, processes running unchanged code gave median ratios of 0.87x to 1.04x,
 * with within-run intervals under 1% wide, so a within-run bootstrap at t = 5% flagged two of three
 * A/A comparisons. Hence two methods (OperationComparison `method`):
 * - 'runs-bootstrap', with >= 2 runs on each side: resampling the runs puts the run-to-run spread
 *   in the interval, and the rule above applies as is;
 * - 'single-run-with-noise-floor', with one run on either side: the spread between runs cannot be
 *   estimated, so the interval test alone is not trusted; a change is flagged only when, in
 *   addition, the ratio itself is beyond the noise floor f (option noiseFloor, default 0.15:
 *   above the 13% A/A spread measured here): r > 1 + f for a regression, r < 1 - f for an
 *   improvement. Measure the machine's own spread (A/A comparisons) and set f above it.
 * Record several runs from fresh processes (toBaseline or mergeBaselines over several runs) to get
 * the first method, and a test that can see changes smaller than the noise floor.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { z } from 'zod';
import { describe, InvalidArgumentError, MabeamError } from '../kernel/errors.js';
import { type BenchEnvironment, BenchErrorCodes, type SuiteResult } from './harness.js';
import {
  bootstrapRunsMedianRatio,
  isSorted,
  medianOfSorted,
  type RatioInterval,
  sortedCopy,
  thinSorted,
} from './stats.js';

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
        `this mabeam reads versions ${BASELINE_READABLE_VERSIONS.join(' and ')} (save a new baseline)`,
    );
    this.file = file;
    this.version = version;
  }
}

// ---- the file format ---------------------------------------------------------------------------

/** The `schema` tag of a baseline file. */
export const BASELINE_SCHEMA = 'mabeam-bench-baseline';
/**
 * The version of the baseline format this code writes: 2 (several runs per operation). Version 1
 * files (one run per operation) are still read, as one run (BASELINE_READABLE_VERSIONS).
 */
export const BASELINE_VERSION = 2;
/** The versions loadBaseline and parseBaseline accept; older ones are upgraded on reading. */
export const BASELINE_READABLE_VERSIONS: readonly number[] = [1, 2];

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

/** Ascending samples in ns per call; at most the save's maxSamples, evenly spaced order statistics. */
const samplesSchema = z
  .array(nonNegative)
  .min(1)
  .superRefine((samples, ctx) => {
    for (let j = 1; j < samples.length; j++) {
      if ((samples[j] as number) < (samples[j - 1] as number)) {
        ctx.addIssue({ code: 'custom', path: [j], message: 'samples must be in ascending order' });
        return;
      }
    }
  });

/** Version 1: one run per operation. */
const operationV1Schema = z.strictObject({
  name: z.string().min(1),
  async: z.boolean(),
  batch: z.number().int().min(1),
  /** Nanoseconds per call. */
  stats: statsSchema,
  opsPerSecond: nonNegative.nullable(),
  memory: memorySchema.nullable(),
  samples: samplesSchema,
});

/** One run of an operation (version 2): its statistics (ns per call) and thinned samples. */
const runSchema = z.strictObject({
  stats: statsSchema,
  opsPerSecond: nonNegative.nullable(),
  memory: memorySchema.nullable(),
  samples: samplesSchema,
});

/** Version 2: one or more runs per operation, each from its own process ideally. */
const operationSchema = z.strictObject({
  name: z.string().min(1),
  async: z.boolean(),
  batch: z.number().int().min(1),
  runs: z.array(runSchema).min(1),
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

function uniqueNames(b: { operations: readonly { name: string }[] }, ctx: z.RefinementCtx): void {
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
  });
}

/** The zod schema of a version 1 baseline file (one run per operation); read, never written. */
export const BaselineV1Schema = z
  .strictObject({
    schema: z.literal(BASELINE_SCHEMA),
    version: z.literal(1),
    suite: z.string().min(1),
    createdAt: z.iso.datetime(),
    environment: environmentSchema,
    operations: z.array(operationV1Schema),
  })
  .superRefine(uniqueNames);

/** The zod schema of a baseline file (version 2: one or more runs per operation). */
export const BaselineSchema = z
  .strictObject({
    schema: z.literal(BASELINE_SCHEMA),
    version: z.literal(BASELINE_VERSION),
    suite: z.string().min(1),
    /** When the first run started. */
    createdAt: z.iso.datetime(),
    /** The environment of the first run. */
    environment: environmentSchema,
    operations: z.array(operationSchema),
  })
  .superRefine(uniqueNames);

/** Saved runs: what `saveBaseline` writes and `loadBaseline` returns (always the current version). */
export type Baseline = z.infer<typeof BaselineSchema>;
/** One operation of a baseline. */
export type BaselineOperation = Baseline['operations'][number];
/** One run of an operation of a baseline. */
export type BaselineRun = BaselineOperation['runs'][number];
/** A version 1 baseline file, as read. */
export type BaselineV1 = z.infer<typeof BaselineV1Schema>;

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
 * The baseline form of a run, or of several runs of one suite (ideally each in a fresh process):
 * its measured operations (failed ones are left out), each with one entry per run where it
 * succeeded, holding that run's statistics, memory figures and (thinned) samples. Several runs
 * are merged as by mergeBaselines.
 */
export function toBaseline(
  result: SuiteResult | readonly SuiteResult[],
  options: BaselineOptions = {},
): Baseline {
  if (isRunList(result)) {
    if (result.length === 0) throw new InvalidArgumentError('result', 'needs at least one run');
    return mergeBaselines(result.map((r) => toBaseline(r, options)));
  }
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
      runs: [
        {
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
        },
      ],
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

function isRunList(run: SuiteResult | readonly SuiteResult[] | Baseline): run is readonly SuiteResult[] {
  return Array.isArray(run);
}

/**
 * One baseline holding the runs of several baselines of the same suite (for example, baselines
 * saved by separate processes): per operation, the runs of each baseline in order; operations in
 * order of first appearance. The suite, creation time and environment are the first baseline's.
 */
export function mergeBaselines(baselines: readonly Baseline[]): Baseline {
  const first = baselines[0];
  if (first === undefined) throw new InvalidArgumentError('baselines', 'needs at least one baseline');
  const byName = new Map<string, { name: string; async: boolean; batch: number; runs: BaselineRun[] }>();
  baselines.forEach((b, i) => {
    if (b.suite !== first.suite) {
      throw new InvalidArgumentError(
        `baselines[${i}].suite`,
        `runs of different suites (${JSON.stringify(first.suite)}) cannot be merged`,
        b.suite,
      );
    }
    for (const op of b.operations) {
      const entry = byName.get(op.name);
      if (entry === undefined) byName.set(op.name, { ...op, runs: [...op.runs] });
      else entry.runs.push(...op.runs);
    }
  });
  return {
    schema: BASELINE_SCHEMA,
    version: BASELINE_VERSION,
    suite: first.suite,
    createdAt: first.createdAt,
    environment: { ...first.environment },
    operations: [...byName.values()],
  };
}

/** A version 1 baseline as the current version: each operation's one run. */
function upgradeV1(v1: BaselineV1): Baseline {
  return {
    ...v1,
    version: BASELINE_VERSION,
    operations: v1.operations.map(({ name, async, batch, stats, opsPerSecond, memory, samples }) => ({
      name,
      async,
      batch,
      runs: [{ stats, opsPerSecond, memory, samples }],
    })),
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
 * Check parsed JSON against the baseline schema of its version, and return it as the current
 * version (a version 1 baseline becomes one run per operation). Throws BaselineVersionError for a
 * version this code does not read, and BaselineInvalidError naming `file` and the first bad field
 * (as a path in the file as written) otherwise.
 */
export function parseBaseline(value: unknown, file = '(inline baseline)'): Baseline {
  const tagged =
    value !== null &&
    typeof value === 'object' &&
    (value as { schema?: unknown }).schema === BASELINE_SCHEMA &&
    'version' in value;
  const version = tagged ? (value as { version: unknown }).version : undefined;
  if (tagged && !BASELINE_READABLE_VERSIONS.includes(version as number)) {
    throw new BaselineVersionError(file, version);
  }
  const invalid = (error: z.ZodError) => {
    const issue = error.issues[0];
    return new BaselineInvalidError(file, fieldPath(issue?.path ?? []), issue?.message ?? 'invalid');
  };
  if (version === 1) {
    const parsed = BaselineV1Schema.safeParse(value);
    if (!parsed.success) throw invalid(parsed.error);
    return upgradeV1(parsed.data);
  }
  const parsed = BaselineSchema.safeParse(value);
  if (!parsed.success) throw invalid(parsed.error);
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

/**
 * Write a run, several runs of one suite, or a baseline to `file` as a baseline (the current
 * version), creating its directory; returns what was written.
 */
export async function saveBaseline(
  file: string,
  run: SuiteResult | readonly SuiteResult[] | Baseline,
  options: BaselineOptions = {},
): Promise<Baseline> {
  const baseline = !isRunList(run) && 'schema' in run ? parseBaseline(run, file) : toBaseline(run, options);
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, baselineJson(baseline));
  return baseline;
}

// ---- comparing ---------------------------------------------------------------------------------

/** The outcome of the regression test for one operation. */
export type ComparisonVerdict = 'regression' | 'improvement' | 'no significant change';

/**
 * Which test gave the verdict (module comment): 'runs-bootstrap' with >= 2 runs on each side (the
 * interval includes the spread between runs); 'single-run-with-noise-floor' with one run on
 * either side (the interval test and, in addition, the ratio beyond the noise floor).
 */
export type ComparisonMethod = 'runs-bootstrap' | 'single-run-with-noise-floor';

/** One operation of a comparison: a union on `status`. */
export type OperationComparison =
  | {
      readonly status: 'compared';
      readonly name: string;
      readonly verdict: ComparisonVerdict;
      /**
       * Ratio of the medians of per-run medians (current / baseline; with one run per side, the
       * ratio of medians) and its bootstrap interval.
       */
      readonly interval: RatioInterval;
      /** Medians of per-run medians in ns per call. */
      readonly baselineMedian: number;
      readonly currentMedian: number;
      /** The test applied (always set by compareWithBaseline). */
      readonly method?: ComparisonMethod;
      /** Runs compared on each side (always set by compareWithBaseline). */
      readonly baselineRuns?: number;
      readonly currentRuns?: number;
    }
  | { readonly status: 'only-in-baseline'; readonly name: string }
  | { readonly status: 'only-in-current'; readonly name: string }
  | { readonly status: 'not-comparable'; readonly name: string; readonly reason: string };

/** Options of compareWithBaseline. */
export interface CompareOptions {
  /** Relative change that counts (default 0.05: 5%). */
  readonly threshold?: number;
  /**
   * With one run on either side, the relative change the ratio itself must exceed, besides the
   * interval test, to be flagged (default 0.15: above the 0.87x to 1.04x medians of A/A runs
   * measured on a 2-core shared machine). Set it above your machine's run-to-run spread.
   */
  readonly noiseFloor?: number;
  /** Bootstrap resamples (default 2,000). */
  readonly resamples?: number;
  /** Bootstrap seed (default 1); the comparison is deterministic for a seed. */
  readonly seed?: number;
  /** Confidence level of the interval (default 0.95). */
  readonly confidence?: number;
}

/** The default noise floor of single-run comparisons (CompareOptions.noiseFloor). */
export const DEFAULT_NOISE_FLOOR = 0.15;

/** New runs set against a baseline. */
export interface Comparison {
  readonly suite: string;
  readonly threshold: number;
  /** The noise floor of single-run comparisons (always set by compareWithBaseline). */
  readonly noiseFloor?: number;
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

/**
 * The verdict for a single-run comparison: the interval verdict (classifyRatio), kept only when
 * the ratio is also beyond the noise floor (ratio > 1 + noiseFloor for a regression,
 * ratio < 1 - noiseFloor for an improvement).
 */
export function classifySingleRun(
  interval: Pick<RatioInterval, 'ratio' | 'low' | 'high'>,
  threshold = 0.05,
  noiseFloor = DEFAULT_NOISE_FLOOR,
): ComparisonVerdict {
  const verdict = classifyRatio(interval, threshold);
  if (verdict === 'regression' && interval.ratio > 1 + noiseFloor) return verdict;
  if (verdict === 'improvement' && interval.ratio < 1 - noiseFloor) return verdict;
  return 'no significant change';
}

interface Comparable {
  readonly name: string;
  /** Each run's ascending samples, or why there are none. */
  readonly runs: Float64Array[] | { readonly failed: string };
}

function comparablesOf(run: SuiteResult | readonly SuiteResult[] | Baseline): {
  env: BenchEnvironment;
  ops: Comparable[];
} {
  if (isRunList(run)) {
    const first = run[0];
    if (first === undefined) throw new InvalidArgumentError('current', 'needs at least one run');
    const byName = new Map<string, { runs: Float64Array[]; failed: string | undefined }>();
    for (const r of run) {
      for (const o of r.operations) {
        let entry = byName.get(o.name);
        if (entry === undefined) {
          entry = { runs: [], failed: undefined };
          byName.set(o.name, entry);
        }
        if (o.state === 'ok') entry.runs.push(o.samples);
        else entry.failed ??= `failed in the current run (${o.phase}): ${o.error.message}`;
      }
    }
    return {
      env: first.environment,
      ops: [...byName].map(([name, e]) => ({
        name,
        // Runs where the operation failed are left out; with none left it is not comparable.
        runs: e.runs.length > 0 ? e.runs : { failed: e.failed ?? 'no run' },
      })),
    };
  }
  if ('schema' in run) {
    return {
      env: run.environment,
      ops: run.operations.map((o) => ({
        name: o.name,
        runs: o.runs.map((r) => Float64Array.from(r.samples)),
      })),
    };
  }
  return comparablesOf([run]);
}

/**
 * Compare new runs (one run, several runs of the suite, or a baseline) with a baseline, operation
 * by operation, by the regression test in the module comment. Operations present on one side
 * only, or that failed in every run, are listed but never flagged.
 */
export function compareWithBaseline(
  baseline: Baseline,
  current: SuiteResult | readonly SuiteResult[] | Baseline,
  options: CompareOptions = {},
): Comparison {
  const threshold = options.threshold ?? 0.05;
  if (typeof threshold !== 'number' || !(threshold >= 0 && threshold < 1)) {
    throw new InvalidArgumentError('threshold', 'must be a number in [0, 1)', threshold);
  }
  const noiseFloor = options.noiseFloor ?? DEFAULT_NOISE_FLOOR;
  if (typeof noiseFloor !== 'number' || !(noiseFloor >= 0 && noiseFloor < 1)) {
    throw new InvalidArgumentError('noiseFloor', 'must be a number in [0, 1)', noiseFloor);
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
    if (!Array.isArray(c.runs)) {
      operations.push({ status: 'not-comparable', name: c.name, reason: c.runs.failed });
      continue;
    }
    const bs = b.runs as Float64Array[];
    const cs = c.runs.map((r) => (isSorted(r) ? r : sortedCopy(r)));
    const zero = [...bs, ...cs].find((r) => !(medianOfSorted(r) > 0));
    if (zero !== undefined) {
      operations.push({
        status: 'not-comparable',
        name: c.name,
        reason: `a run with a median of ${medianOfSorted(zero)} ns: batch the operation`,
      });
      continue;
    }
    const interval = bootstrapRunsMedianRatio(bs, cs, { resamples, seed, confidence });
    const method: ComparisonMethod =
      bs.length >= 2 && cs.length >= 2 ? 'runs-bootstrap' : 'single-run-with-noise-floor';
    operations.push({
      status: 'compared',
      name: c.name,
      verdict:
        method === 'runs-bootstrap'
          ? classifyRatio(interval, threshold)
          : classifySingleRun(interval, threshold, noiseFloor),
      interval,
      baselineMedian: medianOfMedians(bs),
      currentMedian: medianOfMedians(cs),
      method,
      baselineRuns: bs.length,
      currentRuns: cs.length,
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
    suite: isRunList(current) ? (current[0]?.suite ?? baseline.suite) : current.suite,
    threshold,
    noiseFloor,
    confidence,
    resamples,
    seed,
    operations,
    regressions: flagged('regression'),
    improvements: flagged('improvement'),
    environmentChanges,
  };
}

/** The median of the runs' medians (each run ascending). */
function medianOfMedians(runs: readonly Float64Array[]): number {
  return medianOfSorted(Float64Array.from(runs, medianOfSorted).sort());
}
