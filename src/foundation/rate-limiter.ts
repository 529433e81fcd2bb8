/**
 * A token-bucket rate limiter per key: each key's bucket holds up to `capacity` tokens (the burst)
 * and refills at `refillPerSecond` on the runtime clock. `tryAcquire` answers at once (with how
 * long to wait when refused); `acquire` waits its turn, first come first served per key, and
 * rejects with E_RATE_LIMITED when its timeout passes first.
 *
 * A plain object rather than an agent: deciding is a few arithmetic operations on the caller's
 * turn, and the waiting is done with clock timers, so a mailbox would only add a hop. Memory stays
 * bounded: a bucket untouched for as long as it takes to refill completely is full, which is
 * exactly what a missing bucket means, so such buckets are dropped as calls come in.
 */
import {
  type Clock,
  describe,
  InvalidArgumentError,
  MabeamError,
  type Runtime,
  type TimerHandle,
} from '../kernel/index.js';

/** Error codes of the rate limiter (unique across mabeam, never reused). */
export const RateLimiterErrorCodes = {
  /** `acquire` did not get its tokens within its timeout. */
  RATE_LIMITED: 'E_RATE_LIMITED',
} as const;

/** `acquire` waited `timeoutMs` without its tokens becoming available. */
export class RateLimitedError extends MabeamError {
  readonly limiter: string;
  readonly key: unknown;
  readonly tokens: number;
  readonly timeoutMs: number;
  constructor(limiter: string, key: unknown, tokens: number, timeoutMs: number) {
    super(
      RateLimiterErrorCodes.RATE_LIMITED,
      `rate limiter ${describe(limiter)}: ${tokens} token(s) for key ${describe(key)} not granted within ${timeoutMs} ms`,
    );
    this.limiter = limiter;
    this.key = key;
    this.tokens = tokens;
    this.timeoutMs = timeoutMs;
  }
}

export interface RateLimiterOptions {
  /** Names the limiter in errors. Default `rate-limiter`. */
  name?: string;
  /** Most tokens a bucket holds: the largest burst. A number > 0. */
  capacity: number;
  /** Tokens added to each bucket per second of runtime-clock time. A number > 0. */
  refillPerSecond: number;
}

/** What `tryAcquire` answers. */
export interface TryAcquireResult {
  granted: boolean;
  /** When refused: ms until the tokens could be granted (given the callers already waiting). 0 when granted. */
  retryAfterMs: number;
  /** Tokens left in the bucket after this decision. */
  remaining: number;
}

export interface AcquireOptions {
  /** Tokens to take (default 1, at most `capacity`). */
  tokens?: number;
  /** How long to wait (ms, runtime clock). Default 5000; Infinity waits as long as it takes. */
  timeoutMs?: number;
}

export interface RateLimiterStats {
  name: string;
  /** Buckets held in memory (the others are full). */
  keys: number;
  /** `acquire` calls waiting, over all keys. */
  waiting: number;
  granted: number;
  denied: number;
  timedOut: number;
}

interface Waiter {
  readonly tokens: number;
  readonly timeoutMs: number;
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
  timer: TimerHandle | null;
}

interface Bucket<K> {
  readonly key: K;
  tokens: number;
  /** Clock time `tokens` was computed at. */
  at: number;
  /** Last time anyone used the bucket: the Map is kept in this order (oldest first). */
  touched: number;
  /** FIFO: the head blocks those behind it, so a big request is not starved by small ones. */
  readonly waiters: Waiter[];
  timer: TimerHandle | null;
}

/** Float slack: tokens accrue as fractions and should not miss a grant by a rounding error. */
const EPSILON = 1e-9;
const OPTION_KEYS = new Set(['name', 'capacity', 'refillPerSecond']);

/**
 * Limit how often something may happen per key (per user, per tenant, per endpoint).
 *
 * ```ts
 * const limiter = new RateLimiter(runtime, { name: 'api', capacity: 10, refillPerSecond: 5 });
 * const { granted, retryAfterMs } = limiter.tryAcquire(userId);
 * await limiter.acquire(userId, { timeoutMs: 1000 }); // or wait for a token, E_RATE_LIMITED after 1 s
 * ```
 */
export class RateLimiter<K = string> {
  readonly name: string;
  readonly capacity: number;
  readonly refillPerSecond: number;
  readonly #clock: Clock;
  /** Insertion order is touch order: the front holds the buckets idle the longest. */
  readonly #buckets = new Map<K, Bucket<K>>();
  /** How long an emptied bucket takes to fill up again. */
  readonly #fullMs: number;
  #waiting = 0;
  #granted = 0;
  #denied = 0;
  #timedOut = 0;

  /** Throws InvalidArgumentError (naming the option) for bad options. */
  constructor(runtime: Runtime, options: RateLimiterOptions) {
    if (options === null || typeof options !== 'object') {
      throw new InvalidArgumentError('rate limiter options', 'must be an object', options);
    }
    for (const key of Object.keys(options)) {
      if (!OPTION_KEYS.has(key)) {
        throw new InvalidArgumentError(`rate limiter option ${JSON.stringify(key)}`, 'unknown option');
      }
    }
    const { name = 'rate-limiter', capacity, refillPerSecond } = options;
    if (typeof name !== 'string' || name === '') {
      throw new InvalidArgumentError('rate limiter option "name"', 'must be a non-empty string', name);
    }
    if (!(capacity > 0) || !Number.isFinite(capacity)) {
      throw new InvalidArgumentError(
        'rate limiter option "capacity"',
        'must be a finite number > 0',
        capacity,
      );
    }
    if (!(refillPerSecond > 0) || !Number.isFinite(refillPerSecond)) {
      throw new InvalidArgumentError(
        'rate limiter option "refillPerSecond"',
        'must be a finite number > 0',
        refillPerSecond,
      );
    }
    this.name = name;
    this.capacity = capacity;
    this.refillPerSecond = refillPerSecond;
    this.#clock = runtime.clock;
    this.#fullMs = (capacity * 1000) / refillPerSecond;
  }

  /**
   * Take `n` tokens from `key`'s bucket if it has them and nobody is waiting on that key (waiters
   * are served first: trying is not a way to jump the queue). Never waits.
   */
  tryAcquire(key: K, n = 1): TryAcquireResult {
    this.#checkTokens(n);
    const now = this.#clock.now();
    this.#sweep(now);
    const b = this.#bucket(key, now);
    if (b.waiters.length === 0 && b.tokens >= n - EPSILON) {
      b.tokens = Math.max(0, b.tokens - n);
      this.#granted++;
      return { granted: true, retryAfterMs: 0, remaining: b.tokens };
    }
    this.#denied++;
    let queued = n;
    for (const w of b.waiters) queued += w.tokens;
    return { granted: false, retryAfterMs: this.#msFor(queued - b.tokens), remaining: b.tokens };
  }

  /**
   * Wait for tokens on `key`, behind earlier waiters on that key. Resolves when granted; rejects
   * with RateLimitedError (E_RATE_LIMITED) after `timeoutMs` (runtime clock) without them.
   */
  acquire(key: K, options: AcquireOptions = {}): Promise<void> {
    let n: number;
    let timeoutMs: number;
    try {
      if (options === null || typeof options !== 'object') {
        throw new InvalidArgumentError('acquire options', 'must be an object', options);
      }
      n = options.tokens ?? 1;
      this.#checkTokens(n);
      timeoutMs = options.timeoutMs ?? 5000;
      if (!(timeoutMs >= 0)) {
        throw new InvalidArgumentError(
          'acquire option "timeoutMs"',
          'must be a number of ms >= 0 (or Infinity)',
          timeoutMs,
        );
      }
    } catch (error) {
      return Promise.reject(error);
    }
    const now = this.#clock.now();
    this.#sweep(now);
    const b = this.#bucket(key, now);
    if (b.waiters.length === 0 && b.tokens >= n - EPSILON) {
      b.tokens = Math.max(0, b.tokens - n);
      this.#granted++;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const w: Waiter = { tokens: n, timeoutMs, resolve, reject, timer: null };
      b.waiters.push(w);
      this.#waiting++;
      if (Number.isFinite(timeoutMs)) w.timer = this.#clock.setTimeout(() => this.#expire(b, w), timeoutMs);
      if (b.waiters.length === 1) this.#arm(b);
    });
  }

  /** Tokens `key` has now (capacity for a key not seen lately). */
  available(key: K): number {
    const b = this.#buckets.get(key);
    if (b === undefined) return this.capacity;
    this.#refill(b, this.#clock.now());
    return b.tokens;
  }

  stats(): RateLimiterStats {
    return {
      name: this.name,
      keys: this.#buckets.size,
      waiting: this.#waiting,
      granted: this.#granted,
      denied: this.#denied,
      timedOut: this.#timedOut,
    };
  }

  #checkTokens(n: number): void {
    if (!(n > 0 && n <= this.capacity)) {
      throw new InvalidArgumentError(
        'rate limiter tokens',
        `must be a number in (0, ${this.capacity}] (the capacity of ${describe(this.name)})`,
        n,
      );
    }
  }

  /** The bucket of `key`, refilled to `now` and moved to the back of the touch order. */
  #bucket(key: K, now: number): Bucket<K> {
    let b = this.#buckets.get(key);
    if (b === undefined) {
      b = { key, tokens: this.capacity, at: now, touched: now, waiters: [], timer: null };
    } else {
      this.#refill(b, now);
      this.#buckets.delete(key);
      b.touched = now;
    }
    this.#buckets.set(key, b);
    return b;
  }

  #refill(b: Bucket<K>, now: number): void {
    if (now > b.at) {
      b.tokens = Math.min(this.capacity, b.tokens + ((now - b.at) * this.refillPerSecond) / 1000);
      b.at = now;
    }
  }

  /**
   * Ms until `tokens` more tokens have accrued. A deficit above EPSILON (the tolerance `#drain`
   * grants with) is always at least 1 ms away: a 0 ms timer for it would find the bucket short
   * again at the same instant and re-arm forever (under a VirtualClock, time never moves then).
   */
  #msFor(tokens: number): number {
    return tokens <= EPSILON ? 0 : Math.max(1, Math.ceil((tokens * 1000) / this.refillPerSecond - 1e-6));
  }

  /**
   * Drop buckets idle for `fullMs`: without waiters nobody took from them since their last touch,
   * so they are full now, the same as absent. The touch order makes this a walk from the front.
   */
  #sweep(now: number): void {
    for (const b of this.#buckets.values()) {
      if (b.touched + this.#fullMs > now) break;
      if (b.waiters.length === 0) this.#buckets.delete(b.key);
    }
  }

  /** Arm the bucket's timer for when its head waiter's tokens will have accrued. */
  #arm(b: Bucket<K>): void {
    if (b.timer !== null) this.#clock.clearTimeout(b.timer);
    b.timer = null;
    const head = b.waiters[0];
    if (head === undefined) return;
    this.#refill(b, this.#clock.now());
    b.timer = this.#clock.setTimeout(() => this.#drain(b), this.#msFor(head.tokens - b.tokens));
  }

  /** Grant waiters in order while the bucket has their tokens, then re-arm for the next. */
  #drain(b: Bucket<K>): void {
    b.timer = null;
    const now = this.#clock.now();
    this.#refill(b, now);
    b.touched = now;
    // Back of the touch order, or a sweep could stop early at this (non-full) bucket.
    this.#buckets.delete(b.key);
    this.#buckets.set(b.key, b);
    for (;;) {
      const head = b.waiters[0];
      if (head === undefined || b.tokens < head.tokens - EPSILON) break;
      b.waiters.shift();
      this.#waiting--;
      b.tokens = Math.max(0, b.tokens - head.tokens);
      if (head.timer !== null) this.#clock.clearTimeout(head.timer);
      this.#granted++;
      head.resolve();
    }
    this.#arm(b);
  }

  #expire(b: Bucket<K>, w: Waiter): void {
    const i = b.waiters.indexOf(w);
    if (i < 0) return;
    b.waiters.splice(i, 1);
    this.#waiting--;
    this.#timedOut++;
    w.reject(new RateLimitedError(this.name, b.key, w.tokens, w.timeoutMs));
    // The next waiter may need fewer tokens than the one that left.
    if (i === 0) this.#drain(b);
  }
}
