/**
 * A circuit breaker: closed (calls go through, failures are counted), open (calls are refused at
 * once with E_CIRCUIT_OPEN, so a failing dependency is not hammered and callers do not queue
 * behind its timeouts), half-open (after `resetTimeoutMs`, a few trial calls decide whether to
 * close again or reopen). Every transition emits `['mabeam','circuit_breaker','state_change']`.
 *
 * It is a plain object, not an agent: `call` runs `fn` on the caller's own turn and the
 * bookkeeping is a few synchronous field updates, so a mailbox hop would only add latency. All
 * time comes from the runtime clock, so tests drive it with a VirtualClock.
 */
import { describe, InvalidArgumentError, MabeamError, type Runtime } from '../kernel/index.js';

/** Error codes of the circuit breaker (unique across mabeam, never reused). */
export const CircuitBreakerErrorCodes = {
  /** The circuit is open (or half-open with its trial calls taken): the call was not made. */
  CIRCUIT_OPEN: 'E_CIRCUIT_OPEN',
} as const;

export type CircuitState = 'closed' | 'open' | 'half_open';

/** A call refused without being made, because the circuit is open (or half-open and busy). */
export class CircuitOpenError extends MabeamError {
  readonly breaker: string;
  readonly state: CircuitState;
  /** Ms until the circuit lets trial calls through (0 when half-open). */
  readonly retryAfterMs: number;
  constructor(breaker: string, state: CircuitState, retryAfterMs: number, trials: number) {
    super(
      CircuitBreakerErrorCodes.CIRCUIT_OPEN,
      state === 'open'
        ? `circuit breaker ${describe(breaker)} is open; trial calls allowed in ${retryAfterMs} ms`
        : `circuit breaker ${describe(breaker)} is half-open and its ${trials} trial call(s) are taken`,
    );
    this.breaker = breaker;
    this.state = state;
    this.retryAfterMs = retryAfterMs;
  }
}

/** When a closed circuit opens. */
export type TripPolicy =
  /** After `failures` failures in a row (a success resets the count). */
  | { kind: 'consecutive'; failures: number }
  /** After `failures` failures within the last `windowMs` ms, successes notwithstanding (Erlang's fuse). */
  | { kind: 'count'; failures: number; windowMs: number }
  /**
   * When at least `rate` (0 < rate <= 1) of the calls in the last `windowMs` failed, once at least
   * `minCalls` (default 10) calls were made in it. The window is kept in `buckets` (default 10)
   * slices, so memory is fixed and the window moves in steps of windowMs / buckets.
   */
  | { kind: 'rate'; rate: number; windowMs: number; minCalls?: number; buckets?: number };

export interface CircuitBreakerOptions {
  /** Names the breaker in errors and telemetry. */
  name: string;
  /** Default `{kind: 'consecutive', failures: 5}`. */
  trip?: TripPolicy;
  /** How long (ms, runtime clock) the circuit stays open before trial calls. Default 30000. */
  resetTimeoutMs?: number;
  /** Trial calls let through when half-open; all must succeed to close. Default 1. */
  halfOpenCalls?: number;
  /**
   * How long (ms, runtime clock) the trial calls of a half-open period may take, counted from the
   * first one admitted. If they have not all settled by then the circuit opens again (as if a
   * trial had failed) and their late outcomes are ignored, so a trial that never settles cannot
   * wedge the breaker. Default `resetTimeoutMs`; Infinity disables the deadline.
   */
  halfOpenTimeoutMs?: number;
  /** Which errors count as failures (default: all). Others pass through and count as successes. */
  isFailure?: (error: unknown) => boolean;
}

export interface CircuitBreakerStats {
  name: string;
  state: CircuitState;
  /** Calls that ran (lifetime). */
  calls: number;
  failures: number;
  /** Calls refused with E_CIRCUIT_OPEN (lifetime). */
  rejected: number;
  /** Trial calls in progress or done in the current half-open period. */
  trials: number;
  /** Times the circuit opened (lifetime). */
  opened: number;
}

const EV_STATE_CHANGE = ['mabeam', 'circuit_breaker', 'state_change'] as const;
const OPTION_KEYS = new Set([
  'name',
  'trip',
  'resetTimeoutMs',
  'halfOpenCalls',
  'halfOpenTimeoutMs',
  'isFailure',
]);

interface Bucket {
  epoch: number;
  calls: number;
  failures: number;
}

/** What a closed circuit counts, per trip policy. */
interface Counter {
  /** Record an outcome at `now`; true when the circuit must open. */
  record(failed: boolean, now: number): boolean;
  reset(): void;
}

function consecutive(failures: number): Counter {
  let run = 0;
  return {
    record(failed) {
      run = failed ? run + 1 : 0;
      return run >= failures;
    },
    reset() {
      run = 0;
    },
  };
}

function countInWindow(failures: number, windowMs: number): Counter {
  // The times of the last `failures` failures, in a ring: the oldest tells whether all fit the window.
  const ring: number[] = [];
  let next = 0;
  return {
    record(failed, now) {
      if (!failed) return false;
      if (ring.length < failures) ring.push(now);
      else ring[next] = now;
      next = (next + 1) % failures;
      if (ring.length < failures) return false;
      const oldest = ring[next % ring.length] as number;
      return now - oldest < windowMs;
    },
    reset() {
      ring.length = 0;
      next = 0;
    },
  };
}

function rateInWindow(rate: number, windowMs: number, minCalls: number, buckets: number): Counter {
  const width = windowMs / buckets;
  const ring: Bucket[] = Array.from({ length: buckets }, () => ({ epoch: -1, calls: 0, failures: 0 }));
  return {
    record(failed, now) {
      const epoch = Math.floor(now / width);
      const b = ring[epoch % buckets] as Bucket;
      if (b.epoch !== epoch) {
        b.epoch = epoch;
        b.calls = 0;
        b.failures = 0;
      }
      b.calls++;
      if (failed) b.failures++;
      let calls = 0;
      let fails = 0;
      for (const x of ring) {
        if (x.epoch > epoch - buckets) {
          calls += x.calls;
          fails += x.failures;
        }
      }
      return failed && calls >= minCalls && fails >= rate * calls;
    },
    reset() {
      // The counts too: an epoch test alone would let a reset bucket count (epoch -1 is "recent"
      // while the clock is below one window).
      for (const b of ring) {
        b.epoch = -1;
        b.calls = 0;
        b.failures = 0;
      }
    },
  };
}

function checkOptions(o: CircuitBreakerOptions): {
  name: string;
  counter: Counter;
  resetTimeoutMs: number;
  halfOpenCalls: number;
  halfOpenTimeoutMs: number;
  isFailure: (error: unknown) => boolean;
} {
  if (o === null || typeof o !== 'object') {
    throw new InvalidArgumentError('circuit breaker options', 'must be an object', o);
  }
  for (const key of Object.keys(o)) {
    if (!OPTION_KEYS.has(key)) {
      throw new InvalidArgumentError(`circuit breaker option ${JSON.stringify(key)}`, 'unknown option');
    }
  }
  const opt = (key: string) => `circuit breaker option ${JSON.stringify(key)}`;
  if (typeof o.name !== 'string' || o.name === '') {
    throw new InvalidArgumentError(opt('name'), 'must be a non-empty string', o.name);
  }
  const resetTimeoutMs = o.resetTimeoutMs ?? 30_000;
  if (!(resetTimeoutMs >= 0) || !Number.isFinite(resetTimeoutMs)) {
    throw new InvalidArgumentError(
      opt('resetTimeoutMs'),
      'must be a finite number of ms >= 0',
      o.resetTimeoutMs,
    );
  }
  const halfOpenCalls = o.halfOpenCalls ?? 1;
  if (!Number.isInteger(halfOpenCalls) || halfOpenCalls < 1) {
    throw new InvalidArgumentError(opt('halfOpenCalls'), 'must be an integer >= 1', o.halfOpenCalls);
  }
  const halfOpenTimeoutMs = o.halfOpenTimeoutMs ?? resetTimeoutMs;
  if (!(halfOpenTimeoutMs >= 0)) {
    throw new InvalidArgumentError(
      opt('halfOpenTimeoutMs'),
      'must be a number of ms >= 0 (or Infinity)',
      o.halfOpenTimeoutMs,
    );
  }
  if (o.isFailure !== undefined && typeof o.isFailure !== 'function') {
    throw new InvalidArgumentError(opt('isFailure'), 'must be a function', o.isFailure);
  }
  return {
    name: o.name,
    counter: counterOf(o.trip ?? { kind: 'consecutive', failures: 5 }),
    resetTimeoutMs,
    halfOpenCalls,
    halfOpenTimeoutMs,
    isFailure: o.isFailure ?? (() => true),
  };
}

function counterOf(trip: TripPolicy): Counter {
  const opt = (key: string) => `circuit breaker option "trip.${key}"`;
  if (trip === null || typeof trip !== 'object') {
    throw new InvalidArgumentError('circuit breaker option "trip"', 'must be a trip policy object', trip);
  }
  const positiveInt = (key: 'failures', v: unknown) => {
    if (!Number.isInteger(v) || (v as number) < 1)
      throw new InvalidArgumentError(opt(key), 'must be an integer >= 1', v);
  };
  const windowMs = (v: unknown) => {
    if (!((v as number) > 0) || !Number.isFinite(v)) {
      throw new InvalidArgumentError(opt('windowMs'), 'must be a finite number of ms > 0', v);
    }
  };
  switch (trip.kind) {
    case 'consecutive':
      positiveInt('failures', trip.failures);
      return consecutive(trip.failures);
    case 'count':
      positiveInt('failures', trip.failures);
      windowMs(trip.windowMs);
      return countInWindow(trip.failures, trip.windowMs);
    case 'rate': {
      if (!(trip.rate > 0 && trip.rate <= 1)) {
        throw new InvalidArgumentError(opt('rate'), 'must be a number in (0, 1]', trip.rate);
      }
      windowMs(trip.windowMs);
      const minCalls = trip.minCalls ?? 10;
      if (!Number.isInteger(minCalls) || minCalls < 1) {
        throw new InvalidArgumentError(opt('minCalls'), 'must be an integer >= 1', trip.minCalls);
      }
      const buckets = trip.buckets ?? 10;
      if (!Number.isInteger(buckets) || buckets < 1) {
        throw new InvalidArgumentError(opt('buckets'), 'must be an integer >= 1', trip.buckets);
      }
      return rateInWindow(trip.rate, trip.windowMs, minCalls, buckets);
    }
    default:
      throw new InvalidArgumentError(
        opt('kind'),
        'must be consecutive, count or rate',
        (trip as { kind?: unknown }).kind,
      );
  }
}

/**
 * Guard calls to a dependency that may fail for a while.
 *
 * ```ts
 * const breaker = new CircuitBreaker(runtime, { name: 'payments', trip: { kind: 'consecutive', failures: 3 } });
 * const receipt = await breaker.call(() => payments.charge(order)); // E_CIRCUIT_OPEN while open
 * ```
 */
export class CircuitBreaker {
  readonly name: string;
  readonly runtime: Runtime;
  readonly #counter: Counter;
  readonly #resetTimeoutMs: number;
  readonly #halfOpenCalls: number;
  readonly #halfOpenTimeoutMs: number;
  readonly #isFailure: (error: unknown) => boolean;
  #state: CircuitState = 'closed';
  #since: number;
  /** Bumped on every transition: outcomes of calls admitted in an earlier period are ignored. */
  #generation = 0;
  #trials = 0;
  #trialSuccesses = 0;
  /** When the first trial of the current half-open period was admitted (its deadline counts from it). */
  #trialsSince = 0;
  #calls = 0;
  #failures = 0;
  #rejected = 0;
  #opened = 0;

  /** Throws InvalidArgumentError (naming the option) for bad options. */
  constructor(runtime: Runtime, options: CircuitBreakerOptions) {
    const cfg = checkOptions(options);
    this.runtime = runtime;
    this.name = cfg.name;
    this.#counter = cfg.counter;
    this.#resetTimeoutMs = cfg.resetTimeoutMs;
    this.#halfOpenCalls = cfg.halfOpenCalls;
    this.#halfOpenTimeoutMs = cfg.halfOpenTimeoutMs;
    this.#isFailure = cfg.isFailure;
    this.#since = runtime.clock.now();
  }

  /**
   * The current state. An open circuit whose reset timeout has passed turns half-open here (or at
   * the next call): the transition, and its telemetry event, happen when someone looks.
   */
  get state(): CircuitState {
    this.#refresh();
    return this.#state;
  }

  /**
   * Run `fn` through the breaker. Resolves or rejects as `fn` does; rejects with CircuitOpenError
   * (E_CIRCUIT_OPEN) without calling `fn` while the circuit is open, or half-open with all its
   * trial calls taken.
   */
  async call<T>(fn: () => T | Promise<T>): Promise<T> {
    if (typeof fn !== 'function')
      throw new InvalidArgumentError('circuit breaker call', 'needs a function', fn);
    this.#refresh();
    const trial = this.#admit();
    const generation = this.#generation;
    this.#calls++;
    let value: T;
    try {
      value = await fn();
    } catch (error) {
      let failed = true;
      try {
        failed = this.#isFailure(error);
      } catch {
        // A predicate that throws cannot vouch for the error: count it.
      }
      this.#outcome(failed, trial, generation);
      throw error;
    }
    this.#outcome(false, trial, generation);
    return value;
  }

  /** Force the circuit closed, clearing its counts. */
  reset(): void {
    this.#refresh();
    if (this.#state !== 'closed') this.#transition('closed');
    this.#counter.reset();
  }

  /** Force the circuit open (for example from a health check that knows better). No-op if open. */
  trip(): void {
    this.#refresh();
    if (this.#state !== 'open') this.#transition('open');
  }

  stats(): CircuitBreakerStats {
    return {
      name: this.name,
      state: this.state,
      calls: this.#calls,
      failures: this.#failures,
      rejected: this.#rejected,
      trials: this.#trials,
      opened: this.#opened,
    };
  }

  /** Admit a call or throw CircuitOpenError; true when it is a half-open trial. */
  #admit(): boolean {
    if (this.#state === 'closed') return false;
    if (this.#state === 'half_open' && this.#trials < this.#halfOpenCalls) {
      if (this.#trials === 0) this.#trialsSince = this.runtime.clock.now();
      this.#trials++;
      return true;
    }
    this.#rejected++;
    const retry =
      this.#state === 'open' ? Math.max(0, this.#since + this.#resetTimeoutMs - this.runtime.clock.now()) : 0;
    throw new CircuitOpenError(this.name, this.#state, retry, this.#halfOpenCalls);
  }

  #outcome(failed: boolean, trial: boolean, generation: number): void {
    if (failed) this.#failures++;
    if (generation !== this.#generation) return; // admitted before the last transition: moot
    if (trial) {
      if (failed) this.#transition('open');
      else if (++this.#trialSuccesses >= this.#halfOpenCalls) this.#transition('closed');
    } else if (this.#state === 'closed' && this.#counter.record(failed, this.runtime.clock.now())) {
      this.#transition('open');
    }
  }

  #refresh(): void {
    const now = this.runtime.clock.now();
    if (
      this.#state === 'half_open' &&
      this.#trials > this.#trialSuccesses &&
      now >= this.#trialsSince + this.#halfOpenTimeoutMs
    ) {
      // A trial is overdue: treat it as failed (its outcome, if it ever comes, is moot). The
      // circuit opened when the deadline passed, not when someone looked: the reset timeout
      // counts from then.
      this.#transition('open', this.#trialsSince + this.#halfOpenTimeoutMs);
    }
    if (this.#state === 'open' && now >= this.#since + this.#resetTimeoutMs) {
      this.#transition('half_open');
    }
  }

  /** Move to `to`; `at` (default now) is when it happened, for a transition noticed late. */
  #transition(to: CircuitState, at = this.runtime.clock.now()): void {
    const from = this.#state;
    const now = at;
    const durationMs = now - this.#since;
    this.#state = to;
    this.#since = now;
    this.#generation++;
    this.#trials = 0;
    this.#trialSuccesses = 0;
    if (to === 'closed') this.#counter.reset();
    if (to === 'open') this.#opened++;
    const tel = this.runtime.telemetry;
    if (tel.enabled) tel.execute(EV_STATE_CHANGE, { durationMs }, { from, to, name: this.name });
  }
}
