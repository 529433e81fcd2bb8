/**
 * Soak mode: a mixed workload run for a long time (the comprehensive suite's operations in a loop,
 * on one runtime, plus agents spawning and exiting), reporting memory and latency per interval and
 * the memory growth rate: per agent per hour (the roadmap's target: under 1 MB per hour per agent)
 * and of the whole heap per day (under 10 MB per day).
 *
 * ```ts
 * const ac = new AbortController();
 * process.once('SIGINT', () => ac.abort());
 * const report = await soak({ durationMs: parseDuration('10m'), intervalMs: 30_000, signal: ac.signal });
 * console.log(formatSoakReport(report));
 * ```
 *
 * The schedule (when an interval ends, when the run ends) follows `clock`, read once per cycle;
 * latencies are always taken with the hrtime clock. So a test can drive the schedule with a fake
 * clock and get a fixed number of cycles per interval, without any timing in its assertions.
 *
 * Memory at the start (after one warm-up cycle) and at the end of each interval, after forced GC:
 * - per agent: each long-lived agent's own memory (state, mailbox, locals; ./memory.ts
 *   `agentMemory`, the walk `measureGrowth` uses for agents);
 * - per service: each service's own structures (`sizeOf`);
 * - the process: V8's used heap after GC, and the RSS (process-wide, for comparison).
 * Growth rates are least-squares slopes over those samples against the schedule clock: per agent
 * (each agent's own slope; the report gives the mean and the largest), per service, and the heap's.
 * A slope over a short run extrapolates noise: read per-day figures from runs of an hour or more.
 */
import { setImmediate as turn } from 'node:timers/promises';
import v8 from 'node:v8';
import vm from 'node:vm';
import { type AnyRef, behaviour, InvalidArgumentError, MabeamError, Runtime } from '../kernel/index.js';
import { agentMemory, exposedGc, sizeOf } from './memory.js';
import type { Budgets, SloResult } from './slo.js';
import { quantile } from './stats.js';
import {
  COMPREHENSIVE_OPERATIONS,
  type ComprehensiveOperation,
  type Fixture,
  type FixtureSizes,
  fixtureSizes,
  startFixture,
} from './suite-comprehensive.js';

// ---- durations -----------------------------------------------------------------------------------

/** Error codes of the soak mode (unique across the project, never reused). */
export const SoakErrorCodes = {
  /** A duration (`--soak`, `--interval`) that is not a positive number with a unit. */
  BAD_DURATION: 'E_SOAK_DURATION',
} as const;

/** A duration text that cannot be read: names the input and what is accepted. */
export class DurationFormatError extends MabeamError {
  /** The text as given. */
  readonly input: string;
  constructor(input: string, problem: string) {
    super(
      SoakErrorCodes.BAD_DURATION,
      `invalid duration ${JSON.stringify(input)}: ${problem} ` +
        '(a positive number with a unit ms, s, m, h or d, like 30s, 10m, 1h or 1h30m)',
    );
    this.input = input;
  }
}

const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * Milliseconds of a duration like `30s`, `10m`, `1h`, `1.5h`, `250ms`, `2d` or `1h30m` (parts add
 * up). A bare number, an unknown unit, zero or anything else throws DurationFormatError.
 */
export function parseDuration(text: string): number {
  if (typeof text !== 'string') throw new DurationFormatError(String(text), 'not a string');
  const trimmed = text.trim();
  if (trimmed === '') throw new DurationFormatError(text, 'empty');
  if (/^\d+(\.\d+)?$/.test(trimmed)) throw new DurationFormatError(text, 'no unit');
  const part = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/y;
  let total = 0;
  let at = 0;
  while (at < trimmed.length) {
    part.lastIndex = at;
    const m = part.exec(trimmed);
    if (m === null) throw new DurationFormatError(text, `cannot read ${JSON.stringify(trimmed.slice(at))}`);
    total += Number(m[1]) * (UNIT_MS[m[2] as string] as number);
    at = part.lastIndex;
  }
  if (!(total > 0) || !Number.isFinite(total)) throw new DurationFormatError(text, 'must be more than 0');
  return total;
}

/** `90000` -> `1m30s`; `250` -> `250ms`. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms);
  if (ms < 1000) return `${Math.round(ms)}ms`;
  let s = Math.round(ms / 1000);
  const out: string[] = [];
  for (const [unit, size] of [
    ['d', 86_400],
    ['h', 3600],
    ['m', 60],
  ] as const) {
    if (s >= size) {
      out.push(`${Math.floor(s / size)}${unit}`);
      s %= size;
    }
  }
  if (s > 0 || out.length === 0) out.push(`${s}s`);
  return out.join('');
}

// ---- options and report ------------------------------------------------------------------------

/** Options of a soak. */
export interface SoakOptions {
  /** How long to run, on `clock` (ms). */
  readonly durationMs: number;
  /** Length of one reporting interval (ms). Default: durationMs / 20, within 1 s to 60 s. */
  readonly intervalMs?: number;
  /** Stops the soak (after the operation in progress); the report covers what ran. */
  readonly signal?: AbortSignal;
  /** The schedule's clock in ms, read once per cycle (default `performance.now`). */
  readonly clock?: () => number;
  /** Forced GC (default: node's `--expose-gc`, else enabled at run time: see forcedGc). */
  readonly gc?: () => void;
  /** The comprehensive operations to loop over (default all but event_append_sqlite). */
  readonly operations?: readonly ComprehensiveOperation[];
  /**
   * Untimed cycles before the baseline (default 200): code compiled, histories and the trimmed
   * event log at their steady size, so the first interval's growth is not the warm-up's.
   */
  readonly warmupCycles?: number;
  /** Agents spawned, messaged and stopped per cycle (default 10; 0: none). */
  readonly churnAgents?: number;
  /** Fixture sizes (discovery agents, voters, broadcast subscribers). */
  readonly sizes?: Partial<FixtureSizes>;
  /** A temp dir for event_append_sqlite (needed only with that operation). */
  readonly tmpDir?: string;
  /** Called with each interval as soon as it is measured (to stream output). */
  readonly onInterval?: (interval: SoakInterval) => void;
}

/** Latency of one operation over one interval, in microseconds. */
export interface SoakLatency {
  readonly n: number;
  readonly p50_us: number;
  readonly p99_us: number;
  readonly mean_us: number;
  readonly max_us: number;
  /** Calls that threw (not in the latency figures). */
  readonly errors: number;
}

/** Memory at one point of the soak, after forced GC. */
export interface SoakMemory {
  /** When, on the schedule clock, ms since the soak started. */
  readonly atMs: number;
  readonly heapUsedBytes: number;
  readonly rssBytes: number;
  /** Agents alive on the soak's runtime (services' agents included). */
  readonly liveAgents: number;
  /** Long-lived workload agents measured one by one. */
  readonly trackedAgents: number;
  readonly agentBytesMean: number;
  readonly agentBytesMax: number;
  readonly agentBytesTotal: number;
  /** Each service's own structures (sizeOf); null when it could not be walked. */
  readonly serviceBytes: Readonly<Record<string, number | null>>;
  /**
   * The runtime's own structures (sizeOf of the Runtime: its process table and queues, not the
   * agents' processes); null when it could not be walked.
   */
  readonly runtimeBytes: number | null;
}

/** One reporting interval. */
export interface SoakInterval {
  /** 1, 2, ... */
  readonly index: number;
  /** Start and end on the schedule clock, ms since the soak started. */
  readonly startMs: number;
  readonly endMs: number;
  /** Complete cycles (every operation once, and one churn). */
  readonly cycles: number;
  /** Per operation (and `agent_churn`: spawning, messaging and stopping churnAgents agents). */
  readonly latency: Readonly<Record<string, SoakLatency>>;
  /** Every call of every operation together. */
  readonly overall: SoakLatency;
  readonly spawned: number;
  readonly exited: number;
  readonly memory: SoakMemory;
}

/** Growth rates: least-squares slopes over the memory samples (baseline and every interval). */
export interface SoakGrowth {
  /** Memory samples the slopes are fitted to. */
  readonly samples: number;
  /** Mean over tracked agents of each agent's own growth (bytes per hour). */
  readonly agentBytesPerHourMean: number;
  /** The largest agent growth (bytes per hour), and which agent. */
  readonly agentBytesPerHourMax: number;
  readonly maxAgent: string | null;
  /** V8's used heap after GC, process-wide: over every sample, the baseline included. */
  readonly heapBytesPerHour: number;
  readonly heapBytesPerDay: number;
  /**
   * The same from the first interval's end on (null with fewer than two intervals): without the
   * step from the baseline to the first interval, which holds the rest of the warm-up (code
   * compiled by the JIT, V8 sizing its heap). The system target reads this one when there is one.
   */
  readonly steadyHeapBytesPerHour: number | null;
  readonly steadyHeapBytesPerDay: number | null;
  /** Each service's own growth (bytes per hour). */
  readonly serviceBytesPerHour: Readonly<Record<string, number>>;
  /** The runtime's own structures' growth (bytes per hour). */
  readonly runtimeBytesPerHour: number;
  /**
   * The platform's own structures together: the runtime's and every service's slope, by the size
   * walk (bytes per hour). Unlike the heap, a walk has no noise from the JIT or V8's heap sizing,
   * so it can be read from a short run.
   */
  readonly structuresBytesPerHour: number;
}

/** The targets (BENCH_SPEC.md, last paragraph) and whether this run met them. */
export interface SoakTargets {
  readonly agentBytesPerHour: number;
  readonly systemBytesPerDay: number;
  readonly agentOk: boolean;
  readonly systemOk: boolean;
}

/** The result of a soak. */
export interface SoakReport {
  readonly startedAt: string;
  readonly plannedMs: number;
  /** On the schedule clock. */
  readonly elapsedMs: number;
  readonly intervalMs: number;
  /** `duration`: ran its course; `aborted`: stopped by the signal. */
  readonly stopped: 'duration' | 'aborted';
  readonly cycles: number;
  readonly operations: readonly string[];
  readonly churnAgents: number;
  readonly baseline: SoakMemory;
  readonly intervals: readonly SoakInterval[];
  readonly growth: SoakGrowth;
  readonly targets: SoakTargets;
}

/** The roadmap's targets: agent memory growth under 1 MB per hour, system under 10 MB per day. */
export const SOAK_TARGETS = { agentBytesPerHour: 1e6, systemBytesPerDay: 10e6 } as const;

// ---- forced GC -----------------------------------------------------------------------------------

/**
 * A forced-GC function: `gc` when node runs with --expose-gc, else one enabled at run time
 * (`--expose-gc` set through v8.setFlagsFromString, `gc` taken from a fresh V8 context).
 */
export function forcedGc(): () => void {
  const exposed = exposedGc();
  if (exposed !== undefined) return exposed;
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
}

// ---- the soak ------------------------------------------------------------------------------------

/** A churned agent: a little state, one message, then stopped. */
const Ephemeral = behaviour<number, { n: number; seen: number[] }, never, never, number>({
  init: (n) => ({ n, seen: [] }),
  handleCast: (m, s) => {
    s.seen.push(m);
    return s;
  },
});

const DEFAULT_OPERATIONS = COMPREHENSIVE_OPERATIONS.filter((o) => o !== 'event_append_sqlite');
const CHURN = 'agent_churn';

function check(options: SoakOptions): void {
  if (options === null || typeof options !== 'object') {
    throw new InvalidArgumentError('soak options', 'must be an object', options);
  }
  const { durationMs, intervalMs, churnAgents, warmupCycles, operations, clock, gc, signal } = options;
  if (typeof durationMs !== 'number' || !(durationMs > 0) || !Number.isFinite(durationMs)) {
    throw new InvalidArgumentError('durationMs', 'must be a finite number > 0', durationMs);
  }
  if (intervalMs !== undefined && (typeof intervalMs !== 'number' || !(intervalMs > 0))) {
    throw new InvalidArgumentError('intervalMs', 'must be a number > 0', intervalMs);
  }
  if (churnAgents !== undefined && !(Number.isSafeInteger(churnAgents) && churnAgents >= 0)) {
    throw new InvalidArgumentError('churnAgents', 'must be a whole number >= 0', churnAgents);
  }
  if (warmupCycles !== undefined && !(Number.isSafeInteger(warmupCycles) && warmupCycles >= 0)) {
    throw new InvalidArgumentError('warmupCycles', 'must be a whole number >= 0', warmupCycles);
  }
  if (operations !== undefined) {
    if (!Array.isArray(operations) || operations.length === 0) {
      throw new InvalidArgumentError('operations', 'must be a non-empty array', operations);
    }
    for (const o of operations) {
      if (!(COMPREHENSIVE_OPERATIONS as readonly string[]).includes(o)) {
        throw new InvalidArgumentError(
          'operations',
          `has ${JSON.stringify(o)}, not a comprehensive operation`,
          o,
        );
      }
    }
    if (operations.includes('event_append_sqlite') && options.tmpDir === undefined) {
      throw new InvalidArgumentError('tmpDir', 'is needed for event_append_sqlite');
    }
  }
  if (clock !== undefined && typeof clock !== 'function') {
    throw new InvalidArgumentError('clock', 'must be a function', clock);
  }
  if (gc !== undefined && typeof gc !== 'function')
    throw new InvalidArgumentError('gc', 'must be a function', gc);
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new InvalidArgumentError('signal', 'must be an AbortSignal', signal);
  }
}

/** Latency samples of one interval (µs), per operation. */
class IntervalSamples {
  readonly byOp = new Map<string, { us: number[]; errors: number }>();

  record(op: string, us: number | null): void {
    let entry = this.byOp.get(op);
    if (entry === undefined) {
      entry = { us: [], errors: 0 };
      this.byOp.set(op, entry);
    }
    if (us === null) entry.errors++;
    else entry.us.push(us);
  }

  get empty(): boolean {
    return this.byOp.size === 0;
  }

  summarize(): { latency: Record<string, SoakLatency>; overall: SoakLatency } {
    const latency: Record<string, SoakLatency> = {};
    const all: number[] = [];
    let errors = 0;
    for (const [op, { us, errors: e }] of this.byOp) {
      latency[op] = latencyOf(us, e);
      for (const x of us) all.push(x);
      errors += e;
    }
    return { latency, overall: latencyOf(all, errors) };
  }
}

function latencyOf(us: number[], errors: number): SoakLatency {
  if (us.length === 0)
    return { n: 0, p50_us: Number.NaN, p99_us: Number.NaN, mean_us: Number.NaN, max_us: Number.NaN, errors };
  const sorted = Float64Array.from(us).sort();
  let sum = 0;
  for (const x of sorted) sum += x;
  return {
    n: sorted.length,
    p50_us: quantile(sorted, 0.5),
    p99_us: quantile(sorted, 0.99),
    mean_us: sum / sorted.length,
    max_us: sorted[sorted.length - 1] as number,
    errors,
  };
}

/**
 * A least-squares slope kept as running sums (Welford-style co-moments): constant memory per
 * series, so the soak's own bookkeeping does not grow with its length.
 */
class Slope {
  n = 0;
  #mx = 0;
  #my = 0;
  #cxy = 0;
  #cxx = 0;

  add(x: number, y: number): void {
    this.n++;
    const dx = x - this.#mx;
    this.#mx += dx / this.n;
    this.#my += (y - this.#my) / this.n;
    this.#cxy += dx * (y - this.#my);
    this.#cxx += dx * (x - this.#mx);
  }

  /** 0 with fewer than two distinct x. */
  get value(): number {
    return this.n < 2 || this.#cxx === 0 ? 0 : this.#cxy / this.#cxx;
  }
}

const HOUR_MS = 3_600_000;

/** Add (hours, bytes) to the series of `key`. */
function pushPoint(series: Map<string, Slope>, key: string, atMs: number, bytes: number): void {
  let slope = series.get(key);
  if (slope === undefined) {
    slope = new Slope();
    series.set(key, slope);
  }
  slope.add(atMs / HOUR_MS, bytes);
}

/**
 * Run the mixed workload for `durationMs` (or until `signal` aborts) and report memory and latency
 * per interval and the growth rates. Everything it starts is stopped before it resolves.
 */
export async function soak(options: SoakOptions): Promise<SoakReport> {
  check(options);
  const clock = options.clock ?? (() => performance.now());
  const gc = options.gc ?? forcedGc();
  const intervalMs = options.intervalMs ?? Math.min(60_000, Math.max(1000, options.durationMs / 20));
  const churnAgents = options.churnAgents ?? 10;
  const sizes = fixtureSizes(options.sizes ?? {});
  const names = [...(options.operations ?? DEFAULT_OPERATIONS)];
  const signal = options.signal;
  const startedAt = new Date().toISOString();

  const runtime = new Runtime();
  const fixtures: Fixture[] = [];
  try {
    for (const name of names) fixtures.push(await startFixture(runtime, name, sizes, options.tmpDir));

    let spawned = 0;
    let exited = 0;
    let serial = 0;
    const churn = async (): Promise<void> => {
      const refs: AnyRef[] = [];
      for (let k = 0; k < churnAgents; k++) {
        const ref = runtime.spawnSync(Ephemeral, serial++);
        runtime.cast(ref, k);
        refs.push(ref);
      }
      spawned += refs.length;
      for (const ref of refs) await runtime.stop(ref);
      for (const ref of refs)
        if (runtime.isAlive(ref)) throw new Error(`${CHURN}: ${String(ref)} did not exit`);
      exited += refs.length;
    };

    /** One cycle; false when the signal stopped it midway. */
    const cycle = async (samples: IntervalSamples | null): Promise<boolean> => {
      for (const f of fixtures) {
        if (signal?.aborted) return false;
        const t0 = process.hrtime.bigint();
        try {
          const r = f.run();
          if (f.async) await r;
          samples?.record(f.name, Number(process.hrtime.bigint() - t0) / 1e3);
        } catch {
          samples?.record(f.name, null);
        }
      }
      if (churnAgents > 0) {
        if (signal?.aborted) return false;
        const t0 = process.hrtime.bigint();
        try {
          await churn();
          samples?.record(CHURN, Number(process.hrtime.bigint() - t0) / 1e3);
        } catch {
          samples?.record(CHURN, null);
        }
      }
      // One turn of the event loop per cycle: timers, signals and I/O get their turn.
      await turn();
      return true;
    };

    const tracked = (): AnyRef[] => fixtures.flatMap((f) => f.agents());
    const services = (): Record<string, object> => Object.assign({}, ...fixtures.map((f) => f.services()));
    const perAgent = new Map<string, Slope>();
    const perService = new Map<string, Slope>();
    const runtimeSlope = new Slope();
    const heap = new Slope();
    const steadyHeap = new Slope(); // from the first interval on

    const measure = async (atMs: number): Promise<SoakMemory> => {
      for (const f of fixtures) await f.trim?.();
      await turn();
      gc();
      await turn();
      gc();
      const usage = process.memoryUsage();
      let total = 0;
      let max = 0;
      let count = 0;
      for (const ref of tracked()) {
        let bytes: number;
        try {
          bytes = agentMemory(ref).bytes;
        } catch {
          continue; // exited meanwhile
        }
        count++;
        total += bytes;
        if (bytes > max) max = bytes;
        const key = String(ref);
        pushPoint(perAgent, key, atMs, bytes);
      }
      const serviceBytes: Record<string, number | null> = {};
      for (const [name, svc] of Object.entries(services())) {
        try {
          const bytes = sizeOf(svc).bytes;
          serviceBytes[name] = bytes;
          pushPoint(perService, name, atMs, bytes);
        } catch {
          serviceBytes[name] = null;
        }
      }
      let runtimeBytes: number | null = null;
      try {
        runtimeBytes = sizeOf(runtime).bytes;
        runtimeSlope.add(atMs / HOUR_MS, runtimeBytes);
      } catch {
        runtimeBytes = null;
      }
      heap.add(atMs / HOUR_MS, usage.heapUsed);
      if (heap.n > 1) steadyHeap.add(atMs / HOUR_MS, usage.heapUsed);
      return {
        atMs,
        heapUsedBytes: usage.heapUsed,
        rssBytes: usage.rss,
        liveAgents: runtime.count,
        trackedAgents: count,
        agentBytesMean: count === 0 ? 0 : total / count,
        agentBytesMax: max,
        agentBytesTotal: total,
        serviceBytes,
        runtimeBytes,
      };
    };

    // Untimed warm-up cycles (first calls compile code, histories fill up), then the baseline.
    const warmup = options.warmupCycles ?? 200;
    for (let i = 0; i < warmup && !signal?.aborted; i++) {
      await cycle(null);
      if (i % 50 === 49) for (const f of fixtures) await f.trim?.();
    }
    spawned = 0;
    exited = 0;
    const start = clock();
    const baseline = await measure(0);
    const intervals: SoakInterval[] = [];
    let cycles = 0;
    let intervalStart = 0;
    let samples = new IntervalSamples();
    let intervalCycles = 0;
    let now = 0;
    const close = async (endMs: number): Promise<void> => {
      const { latency, overall } = samples.summarize();
      samples = new IntervalSamples(); // drop the samples before measuring the heap
      const interval: SoakInterval = {
        index: intervals.length + 1,
        startMs: intervalStart,
        endMs,
        cycles: intervalCycles,
        latency,
        overall,
        spawned,
        exited,
        memory: await measure(endMs),
      };
      intervals.push(interval);
      options.onInterval?.(interval);
      intervalStart = endMs;
      intervalCycles = 0;
      spawned = 0;
      exited = 0;
    };

    let stopped: SoakReport['stopped'] = 'duration';
    for (;;) {
      if (signal?.aborted) {
        stopped = 'aborted';
        if (!samples.empty) await close(now);
        break;
      }
      const complete = await cycle(samples);
      now = clock() - start;
      if (complete) {
        cycles++;
        intervalCycles++;
      }
      const done = now >= options.durationMs;
      if (done || now - intervalStart >= intervalMs) {
        if (!samples.empty || done) await close(now);
      }
      if (done) break;
    }

    const agentSlopes = [...perAgent].map(([agent, series]) => [agent, series.value] as const);
    let maxAgent: string | null = null;
    let maxSlope = 0;
    let sumSlope = 0;
    for (const [agent, s] of agentSlopes) {
      sumSlope += s;
      if (maxAgent === null || s > maxSlope) {
        maxAgent = agent;
        maxSlope = s;
      }
    }
    const heapPerHour = heap.value;
    const steady = steadyHeap.n >= 2 ? steadyHeap.value : null;
    const growth: SoakGrowth = {
      samples: heap.n,
      agentBytesPerHourMean: agentSlopes.length === 0 ? 0 : sumSlope / agentSlopes.length,
      agentBytesPerHourMax: maxSlope,
      maxAgent,
      heapBytesPerHour: heapPerHour,
      heapBytesPerDay: heapPerHour * 24,
      steadyHeapBytesPerHour: steady,
      steadyHeapBytesPerDay: steady === null ? null : steady * 24,
      serviceBytesPerHour: Object.fromEntries([...perService].map(([name, series]) => [name, series.value])),
      runtimeBytesPerHour: runtimeSlope.value,
      structuresBytesPerHour: [...perService.values()].reduce(
        (sum, series) => sum + series.value,
        runtimeSlope.value,
      ),
    };
    return {
      startedAt,
      plannedMs: options.durationMs,
      elapsedMs: now,
      intervalMs,
      stopped,
      cycles,
      operations: churnAgents > 0 ? [...names, CHURN] : names,
      churnAgents,
      baseline,
      intervals,
      growth,
      targets: {
        agentBytesPerHour: SOAK_TARGETS.agentBytesPerHour,
        systemBytesPerDay: SOAK_TARGETS.systemBytesPerDay,
        agentOk: growth.agentBytesPerHourMax <= SOAK_TARGETS.agentBytesPerHour,
        systemOk: systemBytesPerDay(growth) <= SOAK_TARGETS.systemBytesPerDay,
      },
    };
  } finally {
    for (const f of fixtures.reverse()) {
      try {
        await f.stop();
      } catch {
        // the runtime's shutdown below stops whatever is left
      }
    }
    await runtime.shutdown();
  }
}

// ---- sustained growth ------------------------------------------------------------------------------

/** One point of a memory series: when (ms) and how many bytes. */
export interface GrowthPoint {
  readonly atMs: number;
  readonly bytes: number;
}

/**
 * Sustained growth of a memory series, in bytes per hour: the smaller of the least-squares slopes
 * over its first half and its second half (the middle point in both). Growth that goes on (a leak)
 * shows in both halves; a one-time step (a table or ring buffer doubling its capacity at a new
 * high-water mark, then flat) shows in one half only, so it does not count. That is what lets a
 * short run judge growth per hour or day: one 16 KB step in a 6 s run can make a least-squares slope
 * of several MB per day (6.6 MB measured), and its sustained growth is 0. Needs 3 points or more (throws InvalidArgumentError otherwise).
 */
export function sustainedGrowthPerHour(points: readonly GrowthPoint[]): number {
  if (!Array.isArray(points) || points.length < 3) {
    throw new InvalidArgumentError('points', 'needs at least 3 points', points?.length);
  }
  const mid = (points.length - 1) >> 1;
  const slopeOf = (part: readonly GrowthPoint[]) => {
    const slope = new Slope();
    for (const p of part) slope.add(p.atMs / HOUR_MS, p.bytes);
    return slope.value;
  };
  return Math.min(slopeOf(points.slice(0, mid + 1)), slopeOf(points.slice(mid)));
}

/** The memory samples of a soak (the baseline, then each interval's) as one series per figure. */
export function soakMemorySeries(
  report: Pick<SoakReport, 'baseline' | 'intervals'>,
  bytes: (m: SoakMemory) => number,
): GrowthPoint[] {
  return [report.baseline, ...report.intervals.map((i) => i.memory)].map((m) => ({
    atMs: m.atMs,
    bytes: bytes(m),
  }));
}

/**
 * Sustained growth of the platform's own structures, in bytes per hour: the sum, over the runtime
 * and every service, of each one's sustained growth (sustainedGrowthPerHour of its series, by the
 * size walk; a sample it could not be walked at is left out of its series). Taken per structure,
 * so two one-time steps of different structures, one in each half of the run, do not add up to
 * growth.
 */
export function sustainedStructuresGrowthPerHour(report: Pick<SoakReport, 'baseline' | 'intervals'>): number {
  const samples = [report.baseline, ...report.intervals.map((i) => i.memory)];
  const series = new Map<string, GrowthPoint[]>();
  const add = (key: string, atMs: number, bytes: number | null | undefined) => {
    if (bytes === null || bytes === undefined) return;
    let points = series.get(key);
    if (points === undefined) {
      points = [];
      series.set(key, points);
    }
    points.push({ atMs, bytes });
  };
  for (const m of samples) {
    add('\u0000runtime', m.atMs, m.runtimeBytes);
    for (const [name, bytes] of Object.entries(m.serviceBytes)) add(name, m.atMs, bytes);
  }
  let total = 0;
  for (const points of series.values()) if (points.length >= 3) total += sustainedGrowthPerHour(points);
  return total;
}

// ---- SLOs and reporting ----------------------------------------------------------------------------

/** The system growth the target is judged on: the steady slope when there is one, else the whole. */
export function systemBytesPerDay(g: SoakGrowth): number {
  return g.steadyHeapBytesPerDay ?? g.heapBytesPerDay;
}

/** The soak as an SLO result (./slo.ts): workload `soak`, growth fields in bytes per hour and day. */
export function soakSloResult(report: SoakReport): SloResult {
  return {
    workload: 'soak',
    fields: {
      agent_bytes_per_hour: report.growth.agentBytesPerHourMax,
      agent_mean_bytes_per_hour: report.growth.agentBytesPerHourMean,
      system_bytes_per_day: systemBytesPerDay(report.growth),
      system_bytes_per_hour: systemBytesPerDay(report.growth) / 24,
      system_all_samples_bytes_per_day: report.growth.heapBytesPerDay,
      structures_bytes_per_day: report.growth.structuresBytesPerHour * 24,
    },
  };
}

/** The roadmap's memory SLOs on a soak: agent growth under 1 MB/h, system under 10 MB/day. */
export function soakBudgets(): Budgets {
  return {
    description: "the roadmap's memory growth objectives (BENCH_SPEC.md, last paragraph) on a soak",
    budgets: [
      {
        workload: 'soak',
        operation: 'agent memory growth (the largest of any agent)',
        note: 'roadmap: agent memory growth under 1 MB per hour',
        memoryGrowth: { max: 1, unit: 'MB/h', field: 'agent_bytes_per_hour' },
      },
      {
        workload: 'soak',
        operation: 'system memory growth (heap after GC)',
        note: 'roadmap: system memory growth under 10 MB per day',
        memoryGrowth: { max: 10, unit: 'MB/day', field: 'system_bytes_per_day' },
      },
    ],
  };
}

function fmtUs(us: number): string {
  if (!Number.isFinite(us)) return '-';
  if (us >= 1000) return `${(us / 1000).toPrecision(3)} ms`;
  return `${us.toPrecision(3)} µs`;
}

function fmtBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return String(bytes);
  const a = Math.abs(bytes);
  if (a >= 1e6) return `${(bytes / 1e6).toPrecision(3)} MB`;
  if (a >= 1e3) return `${(bytes / 1e3).toPrecision(3)} kB`;
  return `${Math.round(bytes)} B`;
}

function table(rows: string[][], right: ReadonlySet<number>): string {
  const widths = (rows[0] as string[]).map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  const line = (r: string[]) =>
    r
      .map((cell, c) =>
        right.has(c) ? cell.padStart(widths[c] as number) : cell.padEnd(widths[c] as number),
      )
      .join('  ')
      .trimEnd();
  return [
    line(rows[0] as string[]),
    widths.map((w) => '-'.repeat(w)).join('  '),
    ...rows.slice(1).map(line),
  ].join('\n');
}

/** One line per interval, for progress output. */
export function formatSoakInterval(i: SoakInterval): string {
  return (
    `interval ${i.index} at ${formatDuration(i.endMs)}: ${i.cycles} cycles, p50 ${fmtUs(i.overall.p50_us)}, ` +
    `p99 ${fmtUs(i.overall.p99_us)}, heap ${fmtBytes(i.memory.heapUsedBytes)}, ` +
    `${fmtBytes(i.memory.agentBytesMean)}/agent over ${i.memory.trackedAgents} agents`
  );
}

/** The report as text: memory and latency per interval, latency per operation, growth rates. */
export function formatSoakReport(r: SoakReport): string {
  const out: string[] = [];
  out.push(
    `soak: ${formatDuration(r.elapsedMs)} of ${formatDuration(r.plannedMs)}` +
      `${r.stopped === 'aborted' ? ' (stopped early)' : ''}, ${r.cycles} cycles, ` +
      `interval ${formatDuration(r.intervalMs)}; operations: ${r.operations.join(', ')}`,
  );
  out.push('');
  const rows: string[][] = [
    [
      'interval',
      'end',
      'cycles',
      'p50',
      'p99',
      'heap after GC',
      'rss',
      'live agents',
      'mean/agent',
      'max/agent',
    ],
  ];
  const b = r.baseline;
  rows.push([
    'start',
    '0s',
    '-',
    '-',
    '-',
    fmtBytes(b.heapUsedBytes),
    fmtBytes(b.rssBytes),
    String(b.liveAgents),
    fmtBytes(b.agentBytesMean),
    fmtBytes(b.agentBytesMax),
  ]);
  for (const i of r.intervals) {
    rows.push([
      String(i.index),
      formatDuration(i.endMs),
      String(i.cycles),
      fmtUs(i.overall.p50_us),
      fmtUs(i.overall.p99_us),
      fmtBytes(i.memory.heapUsedBytes),
      fmtBytes(i.memory.rssBytes),
      String(i.memory.liveAgents),
      fmtBytes(i.memory.agentBytesMean),
      fmtBytes(i.memory.agentBytesMax),
    ]);
  }
  out.push(table(rows, new Set([2, 3, 4, 5, 6, 7, 8, 9])));
  if (r.intervals.length > 0) {
    out.push('');
    const first = r.intervals[0] as SoakInterval;
    const last = r.intervals[r.intervals.length - 1] as SoakInterval;
    const opRows: string[][] = [
      ['operation', 'calls', 'errors', 'p50 first', 'p50 last', 'p99 first', 'p99 last', 'worst p99'],
    ];
    for (const op of r.operations) {
      let calls = 0;
      let errors = 0;
      let worst = Number.NaN;
      for (const i of r.intervals) {
        const l = i.latency[op];
        if (l === undefined) continue;
        calls += l.n;
        errors += l.errors;
        if (Number.isFinite(l.p99_us) && !(l.p99_us <= worst)) worst = l.p99_us;
      }
      opRows.push([
        op,
        String(calls),
        String(errors),
        fmtUs(first.latency[op]?.p50_us ?? Number.NaN),
        fmtUs(last.latency[op]?.p50_us ?? Number.NaN),
        fmtUs(first.latency[op]?.p99_us ?? Number.NaN),
        fmtUs(last.latency[op]?.p99_us ?? Number.NaN),
        fmtUs(worst),
      ]);
    }
    out.push(table(opRows, new Set([1, 2, 3, 4, 5, 6, 7])));
  }
  const g = r.growth;
  out.push('');
  out.push(`growth (least-squares slopes over ${g.samples} memory samples, after forced GC):`);
  out.push(
    `  per agent: mean ${fmtBytes(g.agentBytesPerHourMean)}/h, largest ${fmtBytes(g.agentBytesPerHourMax)}/h` +
      `${g.maxAgent === null || !(g.agentBytesPerHourMax > 0) ? '' : ` (${g.maxAgent})`}; target under ${fmtBytes(r.targets.agentBytesPerHour)}/h: ` +
      `${r.targets.agentOk ? 'met' : 'NOT met'}`,
  );
  out.push(
    `  system (heap after GC): ${fmtBytes(g.heapBytesPerHour)}/h = ${fmtBytes(g.heapBytesPerDay)}/day over all ` +
      `samples; ${
        g.steadyHeapBytesPerDay === null
          ? 'no steady slope (under two intervals)'
          : `${fmtBytes(g.steadyHeapBytesPerDay)}/day from the first interval on`
      }; target under ${fmtBytes(r.targets.systemBytesPerDay)}/day: ${r.targets.systemOk ? 'met' : 'NOT met'}`,
  );
  const svc = Object.entries(g.serviceBytesPerHour);
  if (svc.length > 0) out.push(`  services: ${svc.map(([n, s]) => `${n} ${fmtBytes(s)}/h`).join(', ')}`);
  out.push(
    `  platform structures (runtime ${fmtBytes(g.runtimeBytesPerHour)}/h and services, by the walk): ` +
      `${fmtBytes(g.structuresBytesPerHour * 24)}/day`,
  );
  if (r.elapsedMs < HOUR_MS) {
    out.push('  (a run under an hour extrapolates its slopes: read them as an upper bound on noise)');
  }
  return out.join('\n');
}

/** JSON lines: one `{type: 'interval', ...}` per interval, then `{type: 'summary', ...}`. */
export function soakJsonLines(r: SoakReport): string {
  const { intervals, ...summary } = r;
  return [...intervals.map((i) => soakIntervalJson(i)), JSON.stringify({ type: 'summary', ...summary })]
    .map((l) => `${l}\n`)
    .join('');
}

/** One interval as a JSON line (without the newline). */
export function soakIntervalJson(i: SoakInterval): string {
  return JSON.stringify({ type: 'interval', ...i });
}
