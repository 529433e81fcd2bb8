/**
 * The runtime's clock: timers, call timeouts and supervisor restart windows read it. Tests inject
 * a VirtualClock and advance it by hand, so timer-driven logic is tested without sleeping.
 */

export interface TimerHandle {
  readonly __timer: true;
}

export interface Clock {
  /** Monotonic milliseconds. */
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
  /**
   * Whether an armed timer keeps the process alive (Node's ref/unref); default yes. Optional:
   * clocks without a process to keep alive (VirtualClock) ignore it.
   */
  keepAlive?(handle: TimerHandle, keep: boolean): void;
}

/** Node's timers take at most this many ms; longer delays fire after 1 ms with a warning. */
const MAX_TIMER_MS = 2 ** 31 - 1;

interface RealTimer extends TimerHandle {
  timeout: NodeJS.Timeout | undefined;
  keep: boolean;
}

/** Wall-clock time (performance.now) and Node's timers, chained for delays past Node's limit. */
export class RealClock implements Clock {
  now(): number {
    return performance.now();
  }
  setTimeout(fn: () => void, ms: number): TimerHandle {
    const timer: RealTimer = { __timer: true, timeout: undefined, keep: true };
    const arm = (left: number) => {
      timer.timeout =
        left > MAX_TIMER_MS ? setTimeout(() => arm(left - MAX_TIMER_MS), MAX_TIMER_MS) : setTimeout(fn, left);
      if (!timer.keep) timer.timeout.unref();
    };
    arm(Number.isNaN(ms) ? 0 : Math.max(0, ms));
    return timer;
  }
  clearTimeout(handle: TimerHandle): void {
    clearTimeout((handle as RealTimer).timeout);
  }
  keepAlive(handle: TimerHandle, keep: boolean): void {
    const timer = handle as RealTimer;
    timer.keep = keep;
    if (keep) timer.timeout?.ref();
    else timer.timeout?.unref();
  }
}

interface VirtualTimer extends TimerHandle {
  at: number;
  seq: number;
  fn: (() => void) | null;
}

/**
 * A clock that moves only when told to. `advance(ms)` fires every timer due within that span, in
 * due-time order (ties in creation order), moving `now()` to each timer's due time as it fires.
 */
export class VirtualClock implements Clock {
  #now: number;
  #seq = 0;
  #timers: VirtualTimer[] = [];

  constructor(start = 0) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const timer: VirtualTimer = {
      __timer: true,
      at: this.#now + Math.max(0, ms),
      seq: this.#seq++,
      fn,
    };
    // Keep the list sorted by (at, seq); timers are few in tests, insertion is fine.
    const list = this.#timers;
    let i = list.length;
    while (i > 0 && (list[i - 1] as VirtualTimer).at > timer.at) i--;
    list.splice(i, 0, timer);
    return timer;
  }

  clearTimeout(handle: TimerHandle): void {
    const timer = handle as VirtualTimer;
    timer.fn = null;
    const i = this.#timers.indexOf(timer);
    if (i >= 0) this.#timers.splice(i, 1);
  }

  /** Number of timers still pending. */
  get pending(): number {
    return this.#timers.length;
  }

  /** Move time forward by `ms`, firing every timer that falls due. */
  advance(ms: number): void {
    if (!(ms >= 0)) throw new RangeError(`advance needs a non-negative number of ms, got ${ms}`);
    const until = this.#now + ms;
    for (;;) {
      const next = this.#timers[0];
      if (next === undefined || next.at > until) break;
      this.#timers.shift();
      this.#now = next.at;
      const fn = next.fn;
      next.fn = null;
      fn?.();
    }
    this.#now = until;
  }

  /** Fire timers until none is left (timers that re-arm themselves forever make this throw). */
  runAll(maxTimers = 100_000): void {
    for (let fired = 0; this.#timers.length > 0; fired++) {
      if (fired >= maxTimers) throw new Error(`runAll fired ${maxTimers} timers and timers remain`);
      const next = this.#timers[0] as VirtualTimer;
      this.advance(next.at - this.#now);
    }
  }
}
