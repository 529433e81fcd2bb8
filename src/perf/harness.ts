/**
 * The benchmark harness: a suite of named operations (sync or async), each measured in turn with
 * a warm-up, an adaptive number of samples and per-operation statistics, and optionally the heap
 * it allocates per call. Timing is done by tinybench (its warm-up, async handling, hooks and
 * hrtime clock); this module decides how long to sample, merges tinybench's rounds and computes
 * the statistics with ./stats.ts.
 *
 * ```ts
 * const result = await suite('registry', { maxTimeMs: 2000, targetRme: 1 })
 *   .add('lookup', () => registry.lookup(name), { batch: 1000 })
 *   .add('register+unregister', async () => { await reg.register(k, pid); await reg.unregister(k); })
 *   .run();
 * ```
 *
 * Sampling rule (adaptive sample count). After a warm-up (at least `warmupMs` of calls and at least
 * `warmupIterations` calls, whichever takes longer), the first round takes exactly `minSamples`
 * samples, and each later round about `roundMs` of wall time. After each round the harness stops,
 * with `stopReason`:
 * - `'max-samples'` when it holds `maxSamples` samples or more;
 * - `'rme'` when it holds at least `minSamples` and the relative margin of error of the mean
 *   (stats.ts: 100 * t(0.975, n - 1) * sd / sqrt(n) / mean, in percent) is at most `targetRme`;
 * - `'time'` when it holds at least `minSamples` and `maxTimeMs` has passed since sampling began.
 * `minSamples` wins over `maxTimeMs`: a slow operation takes its minimum samples even when that
 * overruns the budget. Warm-up, setup, teardown and the memory measurement are outside the budget.
 *
 * One sample is one call of the operation, or with `batch: k` the mean of k back-to-back calls
 * (use it for operations under about a microsecond, whose single calls are close to the cost of
 * reading the clock, about 30 to 60 ns). Samples are in nanoseconds per call.
 *
 * A failing operation (its setup, a call, the memory measurement or its teardown throws) yields a
 * result with `state: 'error'` and the run goes on with the next one: one bad operation never
 * stops the suite. Misuse (bad options, a duplicate name, memory figures without forced GC) throws
 * at once, before anything runs.
 */
import { availableParallelism, cpus } from 'node:os';
import { GCProfiler } from 'node:v8';
import { Bench, type Fn } from 'tinybench';
import { InvalidArgumentError, MabeamError } from '../kernel/errors.js';
import { RunningStatistics, type SampleStatistics, summarize } from './stats.js';

// ---- errors ------------------------------------------------------------------------------------

/** Error codes of the benchmark harness and its baselines (unique across mabeam, never reused). */
export const BenchErrorCodes = {
  /** Memory figures were asked for but node was started without `--expose-gc`. */
  GC_UNAVAILABLE: 'E_BENCH_GC_UNAVAILABLE',
  /** `run()` was called on a suite that is already running. */
  SUITE_RUNNING: 'E_BENCH_SUITE_RUNNING',
  /** A baseline file could not be read or is not JSON. */
  BASELINE_UNREADABLE: 'E_BENCH_BASELINE_UNREADABLE',
  /** A baseline file is JSON but does not match the baseline schema (the error names the field). */
  BASELINE_INVALID: 'E_BENCH_BASELINE_INVALID',
  /** A baseline file was written with a schema version this code does not read. */
  BASELINE_VERSION: 'E_BENCH_BASELINE_VERSION',
} as const;

export type BenchErrorCode = (typeof BenchErrorCodes)[keyof typeof BenchErrorCodes];

/** Forced garbage collection is needed (memory figures) but node was started without `--expose-gc`. */
export class ExposeGcRequiredError extends MabeamError {
  /** The node flag that makes forced GC available. */
  readonly flag = '--expose-gc';
  constructor(what: string) {
    super(
      BenchErrorCodes.GC_UNAVAILABLE,
      `${what} needs forced garbage collection: start node with --expose-gc ` +
        '(node --expose-gc ..., or NODE_OPTIONS=--expose-gc), or pass a gc function in the options',
    );
  }
}

/** `run()` on a suite whose previous run has not finished. */
export class SuiteRunningError extends MabeamError {
  constructor(suiteName: string) {
    super(BenchErrorCodes.SUITE_RUNNING, `suite ${JSON.stringify(suiteName)} is already running`);
  }
}

// ---- options and results -----------------------------------------------------------------------

/** How long and how much to sample; set per suite, and overridable per operation. */
export interface SamplingOptions {
  /** Minimum warm-up time in ms before sampling (default 100; 0 with warmupIterations 0: none). */
  readonly warmupMs?: number;
  /** Minimum warm-up calls (default 16). */
  readonly warmupIterations?: number;
  /** Minimum number of samples (default 30). */
  readonly minSamples?: number;
  /** Stop once this many samples are held (default 1,000,000). */
  readonly maxSamples?: number;
  /** Sampling time budget in ms (default 1,000); see the sampling rule in the module comment. */
  readonly maxTimeMs?: number;
  /** Target relative margin of error, in percent (default 1). */
  readonly targetRme?: number;
  /** Length of one sampling round in ms (default maxTimeMs / 10, within 5 to 200). */
  readonly roundMs?: number;
}

/** Options of a suite. */
export interface SuiteOptions extends SamplingOptions {
  /**
   * Also measure the heap each operation allocates and retains per call (default false). Needs
   * forced GC: node's `--expose-gc`, or the `gc` option; `suite()` throws ExposeGcRequiredError
   * otherwise.
   */
  readonly memory?: boolean;
  /** Calls per memory measurement (default: about 100 ms of calls, within 16 to 100,000). */
  readonly memoryIterations?: number;
  /** The forced-GC function (default `globalThis.gc`, present with `--expose-gc`). */
  readonly gc?: () => void;
  /** A monotonic clock in ms for the time budget and durations (default `performance.now`). */
  readonly clock?: () => number;
}

/** Options of one operation. */
export interface OperationOptions extends SamplingOptions {
  /** Runs once before the operation's warm-up (not timed). A throw fails this operation only. */
  readonly setup?: () => unknown;
  /** Runs once after the operation's samples and memory figures (not timed), even after a failure. */
  readonly teardown?: () => unknown;
  /**
   * Whether the operation returns a promise to await. Default: true for an `async function`;
   * otherwise the harness calls the operation once after setup (an untimed warm-up call) and
   * checks whether it returned a promise.
   */
  readonly async?: boolean;
  /** Calls per sample; a sample is their mean (default 1). */
  readonly batch?: number;
  /** Calls per memory measurement (overrides the suite's). */
  readonly memoryIterations?: number;
}

/** Why sampling stopped; see the sampling rule in the module comment. */
export type StopReason = 'rme' | 'time' | 'max-samples';

/**
 * Heap per call, measured over `iterations` calls: after a forced GC, read the heap in use, make
 * the calls while V8's GC profiler records every collection, read the heap again. Allocated bytes
 * = (heap after - heap before) + what the collections during the calls freed (each collection's
 * used heap before minus after), so collections in the middle do not hide allocations. Retained
 * bytes = heap after another forced GC - heap before: what the calls left alive. Both divided by
 * `iterations`. Includes what the harness's loop allocates (nothing for a sync operation; the
 * awaits of an async one) and can be slightly negative from concurrent sweeping.
 */
export interface AllocationResult {
  readonly iterations: number;
  readonly allocatedBytesPerOp: number;
  readonly retainedBytesPerOp: number;
  /** Collections that ran during the calls. */
  readonly collections: number;
}

/** One operation that was measured. Times are nanoseconds per call. */
export interface OperationOk {
  readonly state: 'ok';
  readonly name: string;
  readonly async: boolean;
  readonly batch: number;
  /** Every sample, ascending, in ns per call. */
  readonly samples: Float64Array;
  /** Statistics of `samples` (ns; rme in percent). */
  readonly stats: SampleStatistics;
  /** Calls per second from the mean: 1e9 / stats.mean. */
  readonly opsPerSecond: number;
  /** Heap per call, when the suite measures memory; else null. */
  readonly memory: AllocationResult | null;
  /** Sampling rounds (tinybench runs) taken. */
  readonly rounds: number;
  readonly stopReason: StopReason;
  /** Wall time spent on this operation, warm-up, setup and teardown included, in ms. */
  readonly durationMs: number;
}

/** Where an operation failed. */
export type OperationPhase = 'setup' | 'run' | 'memory' | 'teardown';

/** One operation that failed; the others still ran. */
export interface OperationError {
  readonly state: 'error';
  readonly name: string;
  readonly phase: OperationPhase;
  readonly error: Error;
}

/** The result of one operation: a union on `state`. */
export type OperationResult = OperationOk | OperationError;

/** Where a run happened, to tell whether two runs can be compared. */
export interface BenchEnvironment {
  readonly node: string;
  readonly v8: string;
  readonly platform: string;
  readonly arch: string;
  /** Logical cores node may use. */
  readonly cpus: number;
  readonly cpuModel: string;
  /** True when forced GC was available (memory figures possible). */
  readonly gcExposed: boolean;
}

/** The result of a suite's run. */
export interface SuiteResult {
  readonly suite: string;
  /** Wall-clock start, ISO 8601. */
  readonly startedAt: string;
  readonly durationMs: number;
  readonly environment: BenchEnvironment;
  readonly operations: readonly OperationResult[];
}

/** Options of one `run()`. */
export interface RunOptions {
  /** Run only these operations (by name), in the suite's order. */
  readonly only?: readonly string[];
  /** Called with each operation's result as soon as it is known (to stream output). */
  readonly onResult?: (result: OperationResult) => void;
}

/** The sampling options with every default filled in. */
export interface ResolvedSampling {
  readonly warmupMs: number;
  readonly warmupIterations: number;
  readonly minSamples: number;
  readonly maxSamples: number;
  readonly maxTimeMs: number;
  readonly targetRme: number;
  readonly roundMs: number;
}

const DEFAULT_SAMPLING = {
  warmupMs: 100,
  warmupIterations: 16,
  minSamples: 30,
  maxSamples: 1_000_000,
  maxTimeMs: 1000,
  targetRme: 1,
} as const;

/** What a memory measurement aims for when the iteration count is not given. */
const MEMORY_TARGET_MS = 100;

// ---- validation --------------------------------------------------------------------------------

function wholeNumber(name: string, value: unknown, min: number): void {
  if (value === undefined) return;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new InvalidArgumentError(name, `must be a whole number >= ${min}`, value);
  }
}

function finiteNumber(name: string, value: unknown, positive: boolean): void {
  if (value === undefined) return;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || (positive && value === 0)) {
    throw new InvalidArgumentError(name, `must be a finite number ${positive ? '> 0' : '>= 0'}`, value);
  }
}

function checkSampling(prefix: string, o: SamplingOptions): void {
  finiteNumber(`${prefix}warmupMs`, o.warmupMs, false);
  wholeNumber(`${prefix}warmupIterations`, o.warmupIterations, 0);
  wholeNumber(`${prefix}minSamples`, o.minSamples, 2);
  wholeNumber(`${prefix}maxSamples`, o.maxSamples, 2);
  finiteNumber(`${prefix}maxTimeMs`, o.maxTimeMs, false);
  finiteNumber(`${prefix}targetRme`, o.targetRme, true);
  finiteNumber(`${prefix}roundMs`, o.roundMs, true);
}

/** Merge suite and operation sampling options over the defaults, and check the result. */
function resolveSampling(
  suiteOpts: SamplingOptions,
  opOpts: SamplingOptions,
  name: string,
): ResolvedSampling {
  const pick = <K extends keyof SamplingOptions>(k: K) => opOpts[k] ?? suiteOpts[k];
  const maxTimeMs = pick('maxTimeMs') ?? DEFAULT_SAMPLING.maxTimeMs;
  const resolved: ResolvedSampling = {
    warmupMs: pick('warmupMs') ?? DEFAULT_SAMPLING.warmupMs,
    warmupIterations: pick('warmupIterations') ?? DEFAULT_SAMPLING.warmupIterations,
    minSamples: pick('minSamples') ?? DEFAULT_SAMPLING.minSamples,
    maxSamples: pick('maxSamples') ?? DEFAULT_SAMPLING.maxSamples,
    maxTimeMs,
    targetRme: pick('targetRme') ?? DEFAULT_SAMPLING.targetRme,
    roundMs: pick('roundMs') ?? Math.min(200, Math.max(5, maxTimeMs / 10)),
  };
  if (resolved.maxSamples < resolved.minSamples) {
    throw new InvalidArgumentError(
      `maxSamples of ${JSON.stringify(name)}`,
      `must be at least minSamples (${resolved.minSamples})`,
      resolved.maxSamples,
    );
  }
  return resolved;
}

function toError(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value), { cause: value });
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    value !== null &&
    (typeof value === 'object' || typeof value === 'function') &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

function isAsyncFunction(fn: Function): boolean {
  return fn.constructor?.name === 'AsyncFunction';
}

/** The forced-GC function from the options or node's `--expose-gc` global, or null. */
function findGc(explicit: (() => void) | undefined): (() => void) | null {
  if (explicit !== undefined) return explicit;
  const g = (globalThis as { gc?: unknown }).gc;
  return typeof g === 'function' ? (g as () => void) : null;
}

/** Describe the machine and runtime a result comes from. */
export function benchEnvironment(gcExposed = findGc(undefined) !== null): BenchEnvironment {
  return {
    node: process.version,
    v8: process.versions.v8,
    platform: process.platform,
    arch: process.arch,
    cpus: availableParallelism(),
    cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
    gcExposed,
  };
}

// ---- measuring ---------------------------------------------------------------------------------

/** Growable array of samples (ns). */
class SampleBuffer {
  #data = new Float64Array(1024);
  #length = 0;

  push(x: number): void {
    if (this.#length === this.#data.length) {
      const bigger = new Float64Array(this.#data.length * 2);
      bigger.set(this.#data);
      this.#data = bigger;
    }
    this.#data[this.#length++] = x;
  }

  get length(): number {
    return this.#length;
  }

  /** The samples, ascending. */
  sorted(): Float64Array {
    return this.#data.slice(0, this.#length).sort();
  }
}

/**
 * The batch loop's source. It is compiled anew for every operation (below) so that each operation
 * gets its own copy of the loop and V8 its own type feedback for the `fn()` call: with one shared
 * loop, the call site turns polymorphic once several operations ran through it, and an operation
 * measured after others ran measurably slower (1.5x for a Map.get in a second run of one suite).
 */
const BATCH_LOOP = {
  // One call per sample: the wrapper still gives the operation a call site of its own.
  single: 'return function one() { return fn(); };',
  sync: `return function batch() {
    const t0 = hrtime();
    for (let i = 0; i < size; i++) sink.value = fn();
    const ms = Number(hrtime() - t0) / 1e6;
    return { overriddenDuration: ms / size, overriddenIterationCost: ms };
  };`,
  async: `return async function batch() {
    const t0 = hrtime();
    for (let i = 0; i < size; i++) await fn();
    const ms = Number(hrtime() - t0) / 1e6;
    return { overriddenDuration: ms / size, overriddenIterationCost: ms };
  };`,
};

/** Where batched sync calls put their results, so that V8 cannot drop a call whose result is unused. */
const sink: { value: unknown } = { value: undefined };

/** The function tinybench times: the operation itself, or a batch of it reporting its own mean. */
function timedFunction(fn: () => unknown, isAsync: boolean, batch: number): Fn {
  const source = batch === 1 ? BATCH_LOOP.single : isAsync ? BATCH_LOOP.async : BATCH_LOOP.sync;
  const compile = new Function('fn', 'size', 'hrtime', 'sink', source);
  return compile(fn, batch, process.hrtime.bigint, sink) as Fn;
}

interface Sampled {
  readonly samples: Float64Array;
  readonly rounds: number;
  readonly stopReason: StopReason;
}

/** Sample `fn` by the sampling rule (module comment), in rounds of tinybench runs. */
async function sample(
  name: string,
  fn: Fn,
  isAsync: boolean,
  batch: number,
  s: ResolvedSampling,
  clock: () => number,
): Promise<Sampled> {
  const buffer = new SampleBuffer();
  const running = new RunningStatistics();
  const runOnce = async (options: { time: number; iterations: number; warmup: boolean }) => {
    const bench = new Bench({
      name,
      ...options,
      warmupTime: s.warmupMs,
      warmupIterations: s.warmupIterations,
      retainSamples: true,
      throws: false,
      timestampProvider: 'hrtimeNow',
    });
    bench.add(name, fn, { async: isAsync });
    const [task] = await bench.run();
    const result = task?.result;
    if (result === undefined || result.state === 'errored') {
      throw result?.error ?? new Error(`tinybench did not run ${name}`);
    }
    if (result.state !== 'completed') throw new Error(`tinybench ended ${name} in state ${result.state}`);
    return result;
  };
  // Warm-up on its own, so that the rounds' wall times below are sampling only. Its one measured
  // call is dropped.
  if (s.warmupMs > 0 || s.warmupIterations > 0) await runOnce({ time: 0, iterations: 1, warmup: true });
  const started = clock();
  // tinybench's `time` counts the timed calls only, while the budget is wall time (clock reads,
  // bookkeeping, awaits between calls: several microseconds per sample, far more than a fast call).
  // Each round measures the ratio, and the next round's `time` is its wall-time share divided by it.
  let wallPerCost = 1;
  for (let round = 1; ; round++) {
    let time = 0; // round 1: exactly minSamples samples
    if (round > 1) {
      const remainingMs = Math.max(0, s.maxTimeMs - (clock() - started));
      const untilMaxSamplesMs = ((s.maxSamples - running.n) * running.mean * batch) / 1e6;
      time = Math.min(Math.min(s.roundMs, remainingMs) / wallPerCost, untilMaxSamplesMs);
    }
    const roundStart = clock();
    const result = await runOnce({ time, iterations: Math.max(1, s.minSamples - running.n), warmup: false });
    const costMs = result.totalTime * batch;
    if (costMs > 0) wallPerCost = Math.max(1, (clock() - roundStart) / costMs);
    for (const ms of result.latency.samples ?? []) {
      const ns = ms * 1e6;
      buffer.push(ns);
      running.push(ns);
    }
    const n = running.n;
    let stopReason: StopReason | null = null;
    if (n >= s.maxSamples) stopReason = 'max-samples';
    else if (n >= s.minSamples && running.rme <= s.targetRme) stopReason = 'rme';
    else if (n >= s.minSamples && clock() - started >= s.maxTimeMs) stopReason = 'time';
    if (stopReason !== null) return { samples: buffer.sorted(), rounds: round, stopReason };
  }
}

/** The used heap size from one of the GC profiler's records (camelCase at run time, whatever the types say). */
function usedHeapOf(stats: unknown): number {
  const s = stats as { usedHeapSize?: number; used_heap_size?: number };
  return s.usedHeapSize ?? s.used_heap_size ?? 0;
}

/** Heap allocated and retained per call over `iterations` calls (see AllocationResult). */
async function measureAllocation(
  fn: () => unknown,
  isAsync: boolean,
  iterations: number,
  gc: () => void,
): Promise<AllocationResult> {
  gc();
  gc(); // a second pass frees what only became unreachable in the first (weak refs, finalizers)
  const before = process.memoryUsage().heapUsed;
  const profiler = new GCProfiler();
  profiler.start();
  let report: ReturnType<GCProfiler['stop']>;
  try {
    if (isAsync) for (let i = 0; i < iterations; i++) await fn();
    else for (let i = 0; i < iterations; i++) sink.value = fn();
  } finally {
    report = profiler.stop();
  }
  const after = process.memoryUsage().heapUsed;
  let freed = 0;
  for (const c of report.statistics) {
    freed += usedHeapOf(c.beforeGC.heapStatistics) - usedHeapOf(c.afterGC.heapStatistics);
  }
  gc();
  gc();
  const retained = process.memoryUsage().heapUsed - before;
  return {
    iterations,
    allocatedBytesPerOp: (after - before + freed) / iterations,
    retainedBytesPerOp: retained / iterations,
    collections: report.statistics.length,
  };
}

// ---- the suite ---------------------------------------------------------------------------------

interface OperationSpec {
  readonly name: string;
  readonly fn: () => unknown;
  readonly options: OperationOptions;
  readonly sampling: ResolvedSampling;
}

/** A named list of operations to measure; build it with `suite()`, fill it with `add`, then `run`. */
export class Suite {
  readonly name: string;
  readonly #options: SuiteOptions;
  readonly #gc: (() => void) | null;
  readonly #clock: () => number;
  readonly #operations: OperationSpec[] = [];
  #running = false;

  constructor(name: string, options: SuiteOptions = {}) {
    if (typeof name !== 'string' || name.length === 0) {
      throw new InvalidArgumentError('suite name', 'must be a non-empty string', name);
    }
    checkSampling('', options);
    wholeNumber('memoryIterations', options.memoryIterations, 1);
    if (options.gc !== undefined && typeof options.gc !== 'function') {
      throw new InvalidArgumentError('gc', 'must be a function', options.gc);
    }
    if (options.clock !== undefined && typeof options.clock !== 'function') {
      throw new InvalidArgumentError('clock', 'must be a function', options.clock);
    }
    this.name = name;
    this.#options = options;
    this.#gc = findGc(options.gc);
    if (options.memory === true && this.#gc === null) {
      throw new ExposeGcRequiredError(`suite ${JSON.stringify(name)} measures memory and`);
    }
    this.#clock = options.clock ?? (() => performance.now());
    resolveSampling(options, {}, name);
  }

  /** The operations' names, in the order they run. */
  get operations(): readonly string[] {
    return this.#operations.map((o) => o.name);
  }

  /** Add an operation (chainable). Names are unique within a suite. */
  add(name: string, fn: () => unknown, options: OperationOptions = {}): this {
    if (typeof name !== 'string' || name.length === 0) {
      throw new InvalidArgumentError('operation name', 'must be a non-empty string', name);
    }
    if (this.#operations.some((o) => o.name === name)) {
      throw new InvalidArgumentError(
        'operation name',
        `suite ${JSON.stringify(this.name)} already has it`,
        name,
      );
    }
    if (typeof fn !== 'function')
      throw new InvalidArgumentError(`operation ${JSON.stringify(name)}`, 'must be a function', fn);
    const prefix = `${name}: `;
    checkSampling(prefix, options);
    wholeNumber(`${prefix}batch`, options.batch, 1);
    wholeNumber(`${prefix}memoryIterations`, options.memoryIterations, 1);
    for (const hook of ['setup', 'teardown'] as const) {
      if (options[hook] !== undefined && typeof options[hook] !== 'function') {
        throw new InvalidArgumentError(`${prefix}${hook}`, 'must be a function', options[hook]);
      }
    }
    if (options.async !== undefined && typeof options.async !== 'boolean') {
      throw new InvalidArgumentError(`${prefix}async`, 'must be a boolean', options.async);
    }
    const sampling = resolveSampling(this.#options, options, name);
    this.#operations.push({ name, fn, options, sampling });
    return this;
  }

  /** Measure every operation (or `only` those), one after the other. */
  async run(options: RunOptions = {}): Promise<SuiteResult> {
    if (this.#running) throw new SuiteRunningError(this.name);
    const selected = this.#select(options.only);
    this.#running = true;
    try {
      const startedAt = new Date().toISOString();
      const t0 = this.#clock();
      const operations: OperationResult[] = [];
      for (const op of selected) {
        const result = await this.#measure(op);
        operations.push(result);
        options.onResult?.(result);
      }
      return {
        suite: this.name,
        startedAt,
        durationMs: this.#clock() - t0,
        environment: benchEnvironment(this.#gc !== null),
        operations,
      };
    } finally {
      this.#running = false;
    }
  }

  #select(only: readonly string[] | undefined): OperationSpec[] {
    if (only === undefined) return [...this.#operations];
    const unknown = only.filter((n) => !this.#operations.some((o) => o.name === n));
    if (unknown.length > 0) {
      throw new InvalidArgumentError(
        'only',
        `suite ${JSON.stringify(this.name)} has no operation ${unknown.map((n) => JSON.stringify(n)).join(', ')}`,
        only,
      );
    }
    return this.#operations.filter((o) => only.includes(o.name));
  }

  async #measure(op: OperationSpec): Promise<OperationResult> {
    const t0 = this.#clock();
    const fail = (phase: OperationPhase, error: unknown): OperationError => ({
      state: 'error',
      name: op.name,
      phase,
      error: toError(error),
    });
    try {
      await op.options.setup?.();
    } catch (error) {
      return fail('setup', error);
    }
    let outcome: OperationResult;
    try {
      outcome = await this.#sampleAndMeasure(op, t0);
    } catch (error) {
      outcome = error instanceof PhaseFailure ? fail(error.phase, error.cause) : fail('run', error);
    }
    try {
      await op.options.teardown?.();
    } catch (error) {
      if (outcome.state === 'ok') outcome = fail('teardown', error);
    }
    if (outcome.state === 'ok') outcome = { ...outcome, durationMs: this.#clock() - t0 };
    return outcome;
  }

  async #sampleAndMeasure(op: OperationSpec, t0: number): Promise<OperationOk> {
    let isAsync = op.options.async ?? (isAsyncFunction(op.fn) ? true : undefined);
    if (isAsync === undefined) {
      const probe = op.fn();
      isAsync = isThenable(probe);
      if (isAsync) await probe;
    }
    const batch = op.options.batch ?? 1;
    const sampled = await sample(
      op.name,
      timedFunction(op.fn, isAsync, batch),
      isAsync,
      batch,
      op.sampling,
      this.#clock,
    );
    const stats = summarize(sampled.samples, { sorted: true });
    let memory: AllocationResult | null = null;
    if (this.#options.memory === true && this.#gc !== null) {
      const iterations =
        op.options.memoryIterations ??
        this.#options.memoryIterations ??
        Math.min(100_000, Math.max(16, Math.ceil((MEMORY_TARGET_MS * 1e6) / Math.max(stats.mean, 1))));
      try {
        memory = await measureAllocation(op.fn, isAsync, iterations, this.#gc);
      } catch (error) {
        throw new PhaseFailure('memory', error);
      }
    }
    return {
      state: 'ok',
      name: op.name,
      async: isAsync,
      batch,
      samples: sampled.samples,
      stats,
      opsPerSecond: stats.mean > 0 ? 1e9 / stats.mean : Number.POSITIVE_INFINITY,
      memory,
      rounds: sampled.rounds,
      stopReason: sampled.stopReason,
      durationMs: this.#clock() - t0,
    };
  }
}

/** Carries the phase of a failure from inside the measurement to the result. */
class PhaseFailure extends Error {
  readonly phase: OperationPhase;
  constructor(phase: OperationPhase, cause: unknown) {
    super(`${phase} failed`, { cause });
    this.phase = phase;
  }
}

/**
 * A new suite of operations to measure. Options are checked at once (InvalidArgumentError naming
 * the option); `memory: true` without forced GC throws ExposeGcRequiredError.
 */
export function suite(name: string, options: SuiteOptions = {}): Suite {
  return new Suite(name, options);
}

/** True when a result measured its operation (narrows the union). */
export function isOk(result: OperationResult): result is OperationOk {
  return result.state === 'ok';
}
