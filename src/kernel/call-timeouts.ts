/**
 * Call deadlines without a timer per call. Calls with the same timeout expire in the order they
 * were made, so each timeout value keeps a FIFO; one clock timer is armed for the earliest head.
 * A call that settles is not removed (O(1)); settled heads are dropped when met. Once no call is
 * pending the FIFOs are dropped and the timer stops keeping the process alive, but it stays armed:
 * re-arming a timer for every call made while none is pending costs microseconds per call.
 */
import type { Clock, TimerHandle } from './clock.js';
import { TimeoutError } from './errors.js';
import type { CallRecord } from './process.js';
import { Queue } from './queue.js';

export class CallTimeouts {
  readonly #clock: Clock;
  readonly #fifos = new Map<number, Queue<CallRecord>>();
  #timer: TimerHandle | null = null;
  #timerAt = Number.POSITIVE_INFINITY;
  /** Calls added and not settled yet. */
  #live = 0;
  #expiring = false;
  readonly #fire = () => this.#expire();

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  add(rec: CallRecord): void {
    const ms = rec.timeoutMs;
    if (ms === Number.POSITIVE_INFINITY) return;
    const deadline = this.#clock.now() + ms;
    rec.deadline = deadline;
    let fifo = this.#fifos.get(ms);
    if (fifo === undefined) {
      fifo = new Queue<CallRecord>();
      this.#fifos.set(ms, fifo);
    } else {
      while (fifo.length > 0 && (fifo.peek() as CallRecord).settled) fifo.shift();
    }
    fifo.push(rec);
    rec.deadlines = this;
    if (++this.#live === 1 && this.#timer !== null) this.#clock.keepAlive?.(this.#timer, true);
    if (deadline < this.#timerAt) this.#arm(deadline);
  }

  /** A call added here settled (replied, failed or timed out). */
  settled(): void {
    this.#live--;
    if (this.#live === 0 && !this.#expiring) this.#idle();
  }

  /** Nothing pending: let go of the records, and of the process (the timer stays armed). */
  #idle(): void {
    this.#dropRecords();
    if (this.#timer !== null) this.#clock.keepAlive?.(this.#timer, false);
  }

  #dropRecords(): void {
    for (const fifo of this.#fifos.values()) {
      for (let rec = fifo.shift(); rec !== undefined; rec = fifo.shift()) rec.deadlines = null;
    }
    this.#fifos.clear();
    this.#live = 0;
  }

  /** Stop the timer and forget every deadline (runtime shutdown). */
  clear(): void {
    this.#dropRecords();
    if (this.#timer !== null) this.#clock.clearTimeout(this.#timer);
    this.#timer = null;
    this.#timerAt = Number.POSITIVE_INFINITY;
    this.#fifos.clear();
  }

  #arm(at: number): void {
    if (this.#timer !== null) this.#clock.clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = this.#clock.setTimeout(this.#fire, Math.max(0, at - this.#clock.now()));
  }

  #expire(): void {
    this.#expiring = true;
    try {
      this.#expireDue();
    } finally {
      this.#expiring = false;
    }
    if (this.#live === 0) this.#dropRecords();
  }

  #expireDue(): void {
    this.#timer = null;
    this.#timerAt = Number.POSITIVE_INFINITY;
    const now = this.#clock.now();
    let next = Number.POSITIVE_INFINITY;
    for (const [ms, fifo] of this.#fifos) {
      while (fifo.length > 0) {
        const head = fifo.peek() as CallRecord;
        if (head.settled) {
          fifo.shift();
          continue;
        }
        if (head.deadline > now) {
          if (head.deadline < next) next = head.deadline;
          break;
        }
        fifo.shift();
        head.target.openCalls?.delete(head);
        head.reject(new TimeoutError(`call to ${head.target}`, ms));
      }
      if (fifo.length === 0) this.#fifos.delete(ms);
    }
    if (next !== Number.POSITIVE_INFINITY) this.#arm(next);
  }
}
