/**
 * Pure statistics for the benchmark harness: order statistics from sorted samples or from an HDR
 * histogram, mean / standard deviation / relative margin of error (Student's t, as tinybench), a
 * seeded random number generator, and seeded percentile-bootstrap confidence intervals of the
 * ratio of two medians (within one run each, or hierarchical over several runs). No clock, no I/O, no global state: every function here returns the same
 * answer for the same input.
 */
import type { Histogram } from 'hdr-histogram-js';
import { build as buildHistogram } from 'hdr-histogram-js';
import { splitMix32 } from '../foundation/random.js';
import { InvalidArgumentError } from '../kernel/errors.js';

// ---- summaries -----------------------------------------------------------------------------------

/**
 * What a sample set says about one operation, in the samples' unit (the harness uses nanoseconds
 * per operation), except `n`, `df`, `critical` (dimensionless) and `rme` (percent).
 */
export interface SampleStatistics {
  /** Number of samples. */
  readonly n: number;
  readonly mean: number;
  /** The 0.5 quantile (the mean of the two middle samples for an even count). */
  readonly median: number;
  readonly p90: number;
  readonly p99: number;
  readonly p999: number;
  readonly min: number;
  readonly max: number;
  /** Sample standard deviation (denominator n - 1); 0 for a single sample. */
  readonly sd: number;
  /** Standard error of the mean: sd / sqrt(n). */
  readonly sem: number;
  /** Degrees of freedom of the t interval: n - 1. */
  readonly df: number;
  /** Two-sided 95% critical value of Student's t with `df` degrees of freedom (df 0 uses 1). */
  readonly critical: number;
  /** Margin of error: half-width of the 95% confidence interval of the mean, sem * critical. */
  readonly moe: number;
  /** Relative margin of error in percent: 100 * moe / |mean| (Infinity when the mean is 0). */
  readonly rme: number;
}

/** A sorted copy of `values` as a Float64Array (numeric order; the input is left untouched). */
export function sortedCopy(values: ArrayLike<number>): Float64Array {
  return Float64Array.from(values).sort();
}

/** True when `values` is in ascending order. */
export function isSorted(values: ArrayLike<number>): boolean {
  for (let i = 1; i < values.length; i++) if ((values[i] as number) < (values[i - 1] as number)) return false;
  return true;
}

/**
 * The `p` quantile (0 <= p <= 1) of ascending `sorted` samples, by linear interpolation between
 * order statistics (Hyndman and Fan's type 7, the default of R, NumPy and tinybench): with
 * h = (n - 1) p, the result is x[floor h] + (h - floor h) (x[floor h + 1] - x[floor h]).
 */
export function quantile(sorted: ArrayLike<number>, p: number): number {
  const n = sorted.length;
  if (n === 0) throw new InvalidArgumentError('samples', 'a quantile needs at least one sample');
  if (!(p >= 0 && p <= 1)) throw new InvalidArgumentError('p', 'a quantile is between 0 and 1', p);
  const h = (n - 1) * p;
  const lo = Math.floor(h);
  const low = sorted[lo] as number;
  if (lo + 1 >= n) return low;
  const high = sorted[lo + 1] as number;
  return high === low ? low : low + (h - lo) * (high - low);
}

/** The median of ascending `sorted` samples (quantile 0.5). */
export function medianOfSorted(sorted: ArrayLike<number>): number {
  return quantile(sorted, 0.5);
}

/** Arithmetic mean. */
export function mean(values: ArrayLike<number>): number {
  if (values.length === 0) throw new InvalidArgumentError('samples', 'a mean needs at least one sample');
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i] as number;
  return sum / values.length;
}

/** Sample variance (denominator n - 1, two passes for accuracy); 0 for a single value. */
export function variance(values: ArrayLike<number>, valuesMean = mean(values)): number {
  const n = values.length;
  if (n < 2) return 0;
  let m2 = 0;
  for (let i = 0; i < n; i++) {
    const d = (values[i] as number) - valuesMean;
    m2 += d * d;
  }
  return m2 / (n - 1);
}

/**
 * Every figure of SampleStatistics for `samples` (any order; they are sorted on a copy unless
 * `sorted` says they already are).
 */
export function summarize(samples: ArrayLike<number>, options: { sorted?: boolean } = {}): SampleStatistics {
  const n = samples.length;
  if (n === 0) throw new InvalidArgumentError('samples', 'statistics need at least one sample');
  for (let i = 0; i < n; i++) {
    if (!Number.isFinite(samples[i] as number)) {
      throw new InvalidArgumentError(`samples[${i}]`, 'samples must be finite numbers', samples[i]);
    }
  }
  const sorted = options.sorted === true ? samples : sortedCopy(samples);
  const m = mean(sorted);
  const sd = Math.sqrt(variance(sorted, m));
  return {
    n,
    mean: m,
    median: quantile(sorted, 0.5),
    p90: quantile(sorted, 0.9),
    p99: quantile(sorted, 0.99),
    p999: quantile(sorted, 0.999),
    min: sorted[0] as number,
    max: sorted[n - 1] as number,
    sd,
    ...marginOfError(n, m, sd),
  };
}

/**
 * The t-based 95% margin of error of a mean from its sample count, mean and standard deviation:
 * sem = sd / sqrt(n), moe = sem * t(0.975, n - 1), rme = 100 * moe / |mean| percent. This is the
 * same formula as tinybench's `rme`. A single sample has moe 0 (no interval can be formed).
 */
export function marginOfError(
  n: number,
  sampleMean: number,
  sd: number,
): { sem: number; df: number; critical: number; moe: number; rme: number } {
  const df = n - 1;
  const critical = tCritical95(Math.max(1, df));
  const sem = n > 0 ? sd / Math.sqrt(n) : 0;
  const moe = df === 0 ? 0 : sem * critical;
  const rme =
    sampleMean === 0 ? (moe === 0 ? 0 : Number.POSITIVE_INFINITY) : (100 * moe) / Math.abs(sampleMean);
  return { sem, df, critical, moe, rme };
}

/**
 * Running count, mean and variance (Welford's algorithm), for deciding when to stop sampling
 * without re-sorting everything after each round.
 */
export class RunningStatistics {
  #n = 0;
  #mean = 0;
  #m2 = 0;

  push(x: number): void {
    this.#n++;
    const d = x - this.#mean;
    this.#mean += d / this.#n;
    this.#m2 += d * (x - this.#mean);
  }

  get n(): number {
    return this.#n;
  }

  get mean(): number {
    return this.#mean;
  }

  get sd(): number {
    return this.#n < 2 ? 0 : Math.sqrt(this.#m2 / (this.#n - 1));
  }

  /** The relative margin of error in percent, as SampleStatistics.rme (Infinity before 2 samples). */
  get rme(): number {
    return this.#n < 2 ? Number.POSITIVE_INFINITY : marginOfError(this.#n, this.#mean, this.sd).rme;
  }
}

// ---- Student's t ---------------------------------------------------------------------------------

const LANCZOS = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
  12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
];

/** ln Γ(x) for x > 0 (Lanczos, g = 7, n = 9: about 15 significant digits). */
export function logGamma(x: number): number {
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  const z = x - 1;
  let a = LANCZOS[0] as number;
  const t = z + 7.5;
  for (let i = 1; i < 9; i++) a += (LANCZOS[i] as number) / (z + i);
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Continued fraction of the incomplete beta function (modified Lentz). */
function betaContinuedFraction(x: number, a: number, b: number): number {
  const tiny = 1e-300;
  let c = 1;
  let d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 10_000; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((a + m2 - 1) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    aa = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < 1e-15) break;
  }
  return h;
}

/** The regularized incomplete beta function I_x(a, b), for 0 <= x <= 1 and a, b > 0. */
export function regularizedBeta(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const front = Math.exp(logGamma(a + b) - logGamma(a) - logGamma(b) + a * Math.log(x) + b * Math.log(1 - x));
  return x < (a + 1) / (a + b + 2)
    ? (front * betaContinuedFraction(x, a, b)) / a
    : 1 - (front * betaContinuedFraction(1 - x, b, a)) / b;
}

/** The cumulative distribution function of Student's t with `df` degrees of freedom. */
export function studentTCdf(t: number, df: number): number {
  const tail = 0.5 * regularizedBeta(df / (df + t * t), df / 2, 0.5);
  return t >= 0 ? 1 - tail : tail;
}

/**
 * The standard normal quantile (Acklam's rational approximation, relative error under 1.2e-9).
 */
export function normalQuantile(p: number): number {
  if (!(p > 0 && p < 1)) throw new InvalidArgumentError('p', 'a normal quantile needs 0 < p < 1', p);
  const a = [
    -39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269, -30.66479806614716,
    2.506628277459239,
  ];
  const b = [
    -54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572,
  ];
  const c = [
    -0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734, 4.374664141464968,
    2.938163982698783,
  ];
  const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
  const A = (i: number) => a[i] as number;
  const B = (i: number) => b[i] as number;
  const C = (i: number) => c[i] as number;
  const D = (i: number) => d[i] as number;
  const low = 0.02425;
  if (p < low || p > 1 - low) {
    const q = Math.sqrt(-2 * Math.log(p < low ? p : 1 - p));
    const x =
      (((((C(0) * q + C(1)) * q + C(2)) * q + C(3)) * q + C(4)) * q + C(5)) /
      ((((D(0) * q + D(1)) * q + D(2)) * q + D(3)) * q + 1);
    return p < low ? x : -x;
  }
  const q = p - 0.5;
  const r = q * q;
  return (
    ((((((A(0) * r + A(1)) * r + A(2)) * r + A(3)) * r + A(4)) * r + A(5)) * q) /
    (((((B(0) * r + B(1)) * r + B(2)) * r + B(3)) * r + B(4)) * r + 1)
  );
}

/**
 * The `p` quantile of Student's t with `df` degrees of freedom (df >= 1, real). Exact closed forms
 * for df 1 and 2; up to df 1,000 the t CDF (through the regularized incomplete beta function) is
 * inverted by bisection to 1e-12; above, the Cornish-Fisher expansion around the normal quantile
 * (Abramowitz and Stegun 26.7.5), accurate to about 1e-10 there.
 */
export function studentTQuantile(p: number, df: number): number {
  if (!(p > 0 && p < 1)) throw new InvalidArgumentError('p', 'a t quantile needs 0 < p < 1', p);
  if (!(df >= 1) || !Number.isFinite(df)) {
    throw new InvalidArgumentError('df', 'degrees of freedom must be a finite number >= 1', df);
  }
  if (p < 0.5) return -studentTQuantile(1 - p, df);
  if (p === 0.5) return 0;
  if (df === 1) return Math.tan(Math.PI * (p - 0.5));
  if (df === 2) return (2 * p - 1) / Math.sqrt(2 * p * (1 - p));
  if (df > 1000) {
    const z = normalQuantile(p);
    const z2 = z * z;
    const g1 = (z * (z2 + 1)) / 4;
    const g2 = (z * ((5 * z2 + 16) * z2 + 3)) / 96;
    const g3 = (z * (((3 * z2 + 19) * z2 + 17) * z2 - 15)) / 384;
    const g4 = (z * ((((79 * z2 + 776) * z2 + 1482) * z2 - 1920) * z2 - 945)) / 92160;
    return z + g1 / df + g2 / df ** 2 + g3 / df ** 3 + g4 / df ** 4;
  }
  let lo = 0;
  let hi = 2;
  while (studentTCdf(hi, df) < p) hi *= 2;
  for (let i = 0; i < 200 && hi - lo > 1e-12 * hi; i++) {
    const mid = (lo + hi) / 2;
    if (studentTCdf(mid, df) < p) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

const t95Cache = new Map<number, number>();

/** t(0.975, df): the two-sided 95% critical value (memoized; df is a whole number >= 1). */
export function tCritical95(df: number): number {
  let t = t95Cache.get(df);
  if (t === undefined) {
    t = studentTQuantile(0.975, df);
    if (t95Cache.size < 10_000) t95Cache.set(df, t);
  }
  return t;
}

// ---- HDR histograms ------------------------------------------------------------------------------

/** Percentile figures read from an HDR histogram (its values are whole numbers). */
export interface HistogramStatistics {
  readonly n: number;
  readonly mean: number;
  readonly median: number;
  readonly p90: number;
  readonly p99: number;
  readonly p999: number;
  readonly min: number;
  readonly max: number;
  readonly sd: number;
}

/**
 * Record `values` (rounded to whole numbers: record nanoseconds, not milliseconds) in a new HDR
 * histogram with `significantDigits` (1 to 5, default 3) of value precision. Use it when samples
 * are too many to keep (long or soak runs); it keeps memory bounded at the cost of that precision.
 */
export function histogramOf(values: ArrayLike<number>, significantDigits: 1 | 2 | 3 | 4 | 5 = 3): Histogram {
  const h = buildHistogram({ numberOfSignificantValueDigits: significantDigits, useWebAssembly: false });
  for (let i = 0; i < values.length; i++) {
    const v = values[i] as number;
    if (!(v >= 0) || !Number.isFinite(v)) {
      throw new InvalidArgumentError(`values[${i}]`, 'an HDR histogram records finite values >= 0', v);
    }
    h.recordValue(Math.round(v));
  }
  return h;
}

/**
 * The `p` quantile (0 <= p <= 1) of an HDR histogram: the highest value equivalent (within the
 * histogram's precision) to the value below which a fraction p of the recorded values fall.
 */
export function histogramQuantile(histogram: Histogram, p: number): number {
  if (!(p >= 0 && p <= 1)) throw new InvalidArgumentError('p', 'a quantile is between 0 and 1', p);
  if (histogram.totalCount === 0) throw new InvalidArgumentError('histogram', 'the histogram is empty');
  return histogram.getValueAtPercentile(p * 100);
}

/** The figures of HistogramStatistics read from `histogram` (within its precision). */
export function summarizeHistogram(histogram: Histogram): HistogramStatistics {
  if (histogram.totalCount === 0) throw new InvalidArgumentError('histogram', 'the histogram is empty');
  return {
    n: histogram.totalCount,
    mean: histogram.mean,
    median: histogramQuantile(histogram, 0.5),
    p90: histogramQuantile(histogram, 0.9),
    p99: histogramQuantile(histogram, 0.99),
    p999: histogramQuantile(histogram, 0.999),
    min: histogram.getValueAtPercentile(0),
    max: histogram.maxValue,
    sd: histogram.stdDeviation,
  };
}

// ---- seeded randomness and the bootstrap -------------------------------------------------------

/**
 * A seeded pseudo-random generator of floats in [0, 1) (SplitMix32, from foundation/random.ts).
 * The same seed always gives the same sequence.
 */
export function seededRandom(seed: number): () => number {
  return splitMix32(seed);
}

/**
 * Keep at most `max` samples of ascending `sorted`, chosen as evenly spaced order statistics
 * (always including the minimum and the maximum). The kept set has the same quantiles, to within
 * the spacing; it has fewer samples, so a bootstrap on it gives a wider, more conservative interval.
 * Baselines store thinned samples to keep their files small.
 */
export function thinSorted(sorted: Float64Array, max: number): Float64Array {
  if (!Number.isInteger(max) || max < 2) {
    throw new InvalidArgumentError('max', 'must be a whole number of samples >= 2', max);
  }
  const n = sorted.length;
  if (n <= max) return sorted;
  const out = new Float64Array(max);
  for (let i = 0; i < max; i++) out[i] = sorted[Math.round((i * (n - 1)) / (max - 1))] as number;
  return out;
}

/** Options of bootstrapMedianRatio. */
export interface BootstrapOptions {
  /** Number of bootstrap resamples (default 2,000). */
  readonly resamples?: number;
  /** Seed of the resampling generator (default 1): the same inputs and seed give the same interval. */
  readonly seed?: number;
  /** Confidence level of the interval, between 0 and 1 (default 0.95). */
  readonly confidence?: number;
}

/** A point estimate of median(current) / median(baseline) and its bootstrap confidence interval. */
export interface RatioInterval {
  /** median(current) / median(baseline) on the full sample sets. */
  readonly ratio: number;
  /** Lower bound of the percentile-bootstrap interval. */
  readonly low: number;
  /** Upper bound of the percentile-bootstrap interval. */
  readonly high: number;
  readonly confidence: number;
  readonly resamples: number;
  readonly seed: number;
}

/** A standard normal variate from two uniforms (Box-Muller; one of the pair is discarded). */
function normalVariate(random: () => number): number {
  const u1 = 1 - random(); // in (0, 1], so the logarithm is finite
  const u2 = random();
  return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
}

/** A Gamma(shape, 1) variate for shape >= 1 (Marsaglia and Tsang, 2000). */
function gammaVariate(shape: number, random: () => number): number {
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    const x = normalVariate(random);
    const t = 1 + c * x;
    if (t <= 0) continue;
    const v = t * t * t;
    const u = 1 - random();
    if (u < 1 - 0.0331 * x * x * x * x) return d * v;
    if (Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v;
  }
}

/** A Beta(a, b) variate for a, b >= 1, as X / (X + Y) with X ~ Gamma(a), Y ~ Gamma(b). */
function betaVariate(a: number, b: number, random: () => number): number {
  const x = gammaVariate(a, random);
  return x / (x + gammaVariate(b, random));
}

/**
 * The median of one bootstrap resample of ascending `sorted` (n draws with replacement), drawn in
 * O(1) instead of O(n). A resample is sorted[floor(n U_i)] for n independent uniforms U_i, and
 * floor(n u) is non-decreasing in u, so the resample's k-th smallest value is sorted[floor(n U_(k))]
 * with U_(k) the k-th smallest uniform, which is Beta(k, n - k + 1) distributed. For an even n the
 * next order statistic is U_(k+1) = U_(k) + (1 - U_(k)) (1 - V^(1/(n-k))), V uniform (the least of
 * the n - k uniforms above U_(k)). The draws have exactly the distribution of resampling and
 * sorting; this only skips the work.
 */
function resampleMedian(sorted: Float64Array, random: () => number): number {
  const n = sorted.length;
  const at = (u: number) => sorted[Math.min(n - 1, Math.floor(n * u))] as number;
  const k = ((n - 1) >> 1) + 1; // 1-based rank of the lower middle value
  const uk = betaVariate(k, n - k + 1, random);
  if (n % 2 === 1) return at(uk);
  const next = uk + (1 - uk) * -Math.expm1(Math.log(1 - random()) / (n - k));
  return (at(uk) + at(next)) / 2;
}

/** Bootstrap options with their defaults, checked (E_INVALID_ARGUMENT naming the bad one). */
function checkBootstrap(
  options: BootstrapOptions,
): Required<Pick<BootstrapOptions, 'resamples' | 'seed' | 'confidence'>> {
  const resamples = options.resamples ?? 2000;
  const seed = options.seed ?? 1;
  const confidence = options.confidence ?? 0.95;
  if (!Number.isInteger(resamples) || resamples < 10) {
    throw new InvalidArgumentError('resamples', 'must be a whole number >= 10', resamples);
  }
  if (!Number.isInteger(seed)) throw new InvalidArgumentError('seed', 'must be a whole number', seed);
  if (!(confidence > 0 && confidence < 1)) {
    throw new InvalidArgumentError('confidence', 'must be between 0 and 1 (exclusive)', confidence);
  }
  return { resamples, seed, confidence };
}

/** The percentile interval of the resampled `ratios` (sorted here) around the point `ratio`. */
function ratioInterval(
  ratio: number,
  ratios: Float64Array,
  o: { resamples: number; seed: number; confidence: number },
): RatioInterval {
  ratios.sort();
  const alpha = 1 - o.confidence;
  return {
    ratio,
    low: quantile(ratios, alpha / 2),
    high: quantile(ratios, 1 - alpha / 2),
    confidence: o.confidence,
    resamples: o.resamples,
    seed: o.seed,
  };
}

/**
 * A seeded percentile-bootstrap confidence interval of median(current) / median(baseline).
 *
 * Each of `resamples` rounds draws, independently, `baseline.length` values with replacement from
 * the baseline and `current.length` from the current samples, and records the ratio of the two
 * resample medians; the interval is the (1 - confidence) / 2 and (1 + confidence) / 2 quantiles of
 * those ratios (type 7 interpolation). The two sets are resampled independently because they come
 * from independent runs. Each resample median is drawn directly from its exact distribution (see
 * resampleMedian), so the cost is O(resamples), whatever the sample counts. Both medians must be positive (latencies of 0 mean the timer could not
 * see the operation; batch it).
 */
export function bootstrapMedianRatio(
  baseline: ArrayLike<number>,
  current: ArrayLike<number>,
  options: BootstrapOptions = {},
): RatioInterval {
  const { resamples, seed, confidence } = checkBootstrap(options);
  const base = isSorted(baseline) ? Float64Array.from(baseline) : sortedCopy(baseline);
  const cur = isSorted(current) ? Float64Array.from(current) : sortedCopy(current);
  if (base.length === 0 || cur.length === 0) {
    throw new InvalidArgumentError('samples', 'both sample sets need at least one sample');
  }
  const baseMedian = medianOfSorted(base);
  const curMedian = medianOfSorted(cur);
  if (!(baseMedian > 0))
    throw new InvalidArgumentError('baseline', 'the median must be positive', baseMedian);
  if (!(curMedian > 0)) throw new InvalidArgumentError('current', 'the median must be positive', curMedian);
  const random = seededRandom(seed);
  const ratios = new Float64Array(resamples);
  for (let r = 0; r < resamples; r++) {
    const b = resampleMedian(base, random);
    const c = resampleMedian(cur, random);
    ratios[r] = b > 0 ? c / b : Number.POSITIVE_INFINITY;
  }
  return ratioInterval(curMedian / baseMedian, ratios, { resamples, seed, confidence });
}

/** The median of a small array of numbers (sorted in place). */
function medianInPlace(values: Float64Array): number {
  values.sort();
  return medianOfSorted(values);
}

function sortedRuns(runs: readonly ArrayLike<number>[], side: string): Float64Array[] {
  if (runs.length === 0) throw new InvalidArgumentError(side, 'needs at least one run');
  return runs.map((run, i) => {
    const sorted = isSorted(run) ? Float64Array.from(run) : sortedCopy(run);
    if (sorted.length === 0)
      throw new InvalidArgumentError(`${side}[${i}]`, 'a run needs at least one sample');
    return sorted;
  });
}

/**
 * A seeded hierarchical (two-level) bootstrap confidence interval of the ratio of the medians of
 * per-run medians, current / baseline, for sample sets measured in several runs (separate
 * processes) on each side.
 *
 * The statistic is median over runs of (median of the run's samples), on each side. Each of
 * `resamples` rounds, on each side independently, draws as many runs as the side has, with
 * replacement; then, within each drawn run, a resample of its samples (with replacement, its
 * median drawn directly as in bootstrapMedianRatio); the round's value is the median of those
 * resampled run medians. The interval is the percentile interval of the ratios (type 7).
 * Resampling the runs is what makes the interval cover a shift of a whole run (JIT decisions,
 * CPU frequency, machine load), which resampling samples within a run cannot see: with k runs per
 * side the interval is about as wide as the spread of the run medians, however many samples each
 * run has. A run may hold a single value (for example, that run's median).
 *
 * With one run on each side this is exactly bootstrapMedianRatio (same seed, same interval). With
 * one run on either side the interval has no between-run term for that side, so it understates
 * the noise; baseline.ts then also requires a noise floor. Cost: O(resamples * runs log runs).
 */
export function bootstrapRunsMedianRatio(
  baselineRuns: readonly ArrayLike<number>[],
  currentRuns: readonly ArrayLike<number>[],
  options: BootstrapOptions = {},
): RatioInterval {
  const base = sortedRuns(baselineRuns, 'baselineRuns');
  const cur = sortedRuns(currentRuns, 'currentRuns');
  if (base.length === 1 && cur.length === 1) {
    return bootstrapMedianRatio(base[0] as Float64Array, cur[0] as Float64Array, options);
  }
  const { resamples, seed, confidence } = checkBootstrap(options);
  const baseMedian = medianInPlace(Float64Array.from(base, medianOfSorted));
  const curMedian = medianInPlace(Float64Array.from(cur, medianOfSorted));
  if (!(baseMedian > 0)) {
    throw new InvalidArgumentError('baselineRuns', 'the median of run medians must be positive', baseMedian);
  }
  if (!(curMedian > 0)) {
    throw new InvalidArgumentError('currentRuns', 'the median of run medians must be positive', curMedian);
  }
  const random = seededRandom(seed);
  const baseScratch = new Float64Array(base.length);
  const curScratch = new Float64Array(cur.length);
  const side = (runs: Float64Array[], scratch: Float64Array): number => {
    const k = runs.length;
    for (let i = 0; i < k; i++) {
      // A single run is always drawn: skip the draw, so one run behaves as bootstrapMedianRatio.
      const run = runs[k === 1 ? 0 : Math.min(k - 1, Math.floor(k * random()))] as Float64Array;
      scratch[i] = resampleMedian(run, random);
    }
    return medianInPlace(scratch);
  };
  const ratios = new Float64Array(resamples);
  for (let r = 0; r < resamples; r++) {
    const b = side(base, baseScratch);
    const c = side(cur, curScratch);
    ratios[r] = b > 0 ? c / b : Number.POSITIVE_INFINITY;
  }
  return ratioInterval(curMedian / baseMedian, ratios, { resamples, seed, confidence });
}
