/**
 * The run queue. Agents with pending messages wait here, in three priority classes. A drain runs
 * each agent for at most `reductions` messages before moving on (fairness between agents), and
 * checks the time every few messages: past `sliceMs` it yields to the event loop with
 * setImmediate, so I/O and timers never starve behind busy agents.
 *
 * Drains start as microtasks (a resolved promise's then, which is much cheaper than
 * queueMicrotask in Node), so a message costs no event-loop turn.
 */
import { type Process, Status } from './process.js';
import { Queue } from './queue.js';

export const Priority = { high: 0, normal: 1, low: 2 } as const;
export type PriorityName = keyof typeof Priority;

/** How many normal-priority turns run before one low-priority agent gets a turn. */
const LOW_EVERY = 8;
/** Messages between two looks at the clock. */
const CHECK_EVERY = 128;

const resolved = Promise.resolve();

export class Scheduler {
  readonly #queues: [Queue<Process>, Queue<Process>, Queue<Process>] = [
    new Queue(),
    new Queue(),
    new Queue(),
  ];
  #pending = false;
  #yielding = false;
  #sliceStart = performance.now();
  #ops = 0;
  #normalTurns = 0;
  readonly #reductions: number;
  readonly #sliceMs: number;
  readonly #drain = () => this.drain();
  readonly #resumeAfterYield = () => {
    this.#yielding = false;
    this.#sliceStart = performance.now();
    this.drain();
  };
  /** Slices that ended by yielding to the event loop (for introspection and tests). */
  yields = 0;

  constructor(reductions: number, sliceMs: number) {
    this.#reductions = reductions;
    this.#sliceMs = sliceMs;
  }

  /** Nothing runnable and no drain under way: a message could run at once. */
  get idle(): boolean {
    return !this.#pending && !this.#yielding;
  }

  get runnable(): number {
    return this.#queues[0].length + this.#queues[1].length + this.#queues[2].length;
  }

  schedule(proc: Process): void {
    proc.status = Status.Scheduled;
    this.#queues[proc.priority]!.push(proc);
    if (!this.#pending && !this.#yielding) {
      this.#pending = true;
      resolved.then(this.#drain);
    }
  }

  /**
   * Count `n` messages run outside a drain (a call answered inline) toward the time slice.
   * Returns false when the slice is used up and the caller should go through the queue instead.
   */
  charge(n: number): boolean {
    this.#ops += n;
    if (this.#ops < CHECK_EVERY) return true;
    this.#ops = 0;
    if (!this.#sliceExpired()) return true;
    this.#yield();
    return false;
  }

  #sliceExpired(): boolean {
    return performance.now() - this.#sliceStart > this.#sliceMs;
  }

  #yield(): void {
    this.#yielding = true;
    this.yields++;
    setImmediate(this.#resumeAfterYield);
  }

  drain(): void {
    this.#pending = false;
    const [high, normal, low] = this.#queues;
    const budget = this.#reductions;
    for (;;) {
      let proc: Process | undefined;
      if (high.length > 0) proc = high.shift();
      else if (low.length > 0 && (normal.length === 0 || ++this.#normalTurns >= LOW_EVERY)) {
        this.#normalTurns = 0;
        proc = low.shift();
      } else proc = normal.shift();
      if (proc === undefined) return;
      if (proc.status !== Status.Scheduled) continue; // exited while queued
      const n = proc.runSlice(budget);
      if ((proc.status as Status) === Status.Running) {
        if ((proc.mailbox as Queue<unknown>).length > 0) {
          proc.status = Status.Scheduled;
          this.#queues[proc.priority]!.push(proc);
        } else proc.status = Status.Idle;
      }
      this.#ops += n;
      if (this.#ops >= CHECK_EVERY) {
        this.#ops = 0;
        if (this.runnable > 0 && this.#sliceExpired()) {
          this.#yield();
          return;
        }
      }
    }
  }
}
