/**
 * The run queue. Agents with pending messages wait here, in three priority classes. A drain runs
 * each agent for at most `reductions` messages before moving on (fairness between agents).
 *
 * Drains start as microtasks (a resolved promise's then, which is much cheaper than
 * queueMicrotask in Node), so a message costs no event-loop turn. Microtasks never let the event
 * loop turn, though, so the scheduler keeps its own notion of a turn: the first drain after the
 * event loop moved opens a turn (and posts a setImmediate that closes it when the loop moves
 * again); once the turn has lasted `sliceMs`, the next drain is deferred with setImmediate instead
 * of a microtask. That holds whatever keeps the microtask chain going: busy agents, async
 * handlers passing messages, or a caller awaiting call after call. I/O and timers get their turn.
 */
import { type Process, Status } from './process.js';
import { Queue } from './queue.js';

export const Priority = { high: 0, normal: 1, low: 2 } as const;
export type PriorityName = keyof typeof Priority;

/** How many normal-priority turns run before one low-priority agent gets a turn. */
const LOW_EVERY = 8;
/** Messages between two looks at the clock inside a drain (a look costs about one message). */
const CHECK_EVERY = 16;

const resolved = Promise.resolve();

export class Scheduler {
  readonly #queues: [Queue<Process>, Queue<Process>, Queue<Process>] = [
    new Queue(),
    new Queue(),
    new Queue(),
  ];
  /** A drain is queued as a microtask or running. */
  #pending = false;
  /** A drain is deferred to setImmediate because the turn's slice is used up. */
  #yielding = false;
  /** The event loop has not moved since the turn's first drain. */
  #inTurn = false;
  #sliceStart = 0;
  #ops = 0;
  #normalTurns = 0;
  readonly #reductions: number;
  readonly #sliceMs: number;
  readonly #drain = () => this.drain();
  readonly #endTurn = () => {
    this.#inTurn = false;
  };
  readonly #resumeAfterYield = () => {
    this.#yielding = false;
    this.#openTurn();
    this.#pending = true;
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
    if (this.#pending || this.#yielding) return;
    if (this.#turnUsedUp()) {
      this.#yield();
      return;
    }
    this.#pending = true;
    resolved.then(this.#drain);
  }

  /**
   * Count `n` messages run outside a drain (answered inline) toward the turn. Returns false when
   * the turn is used up: the scheduler then yields and the caller must queue the message instead.
   */
  charge(n: number): boolean {
    this.#ops += n;
    if (this.#ops < CHECK_EVERY && this.#inTurn) return true;
    this.#ops = 0;
    if (!this.#turnUsedUp()) return true;
    this.#yield();
    return false;
  }

  /** Opens a turn if the event loop moved since the last one; true if the open turn is used up. */
  #turnUsedUp(): boolean {
    if (!this.#inTurn) {
      this.#openTurn();
      return false;
    }
    return performance.now() - this.#sliceStart > this.#sliceMs;
  }

  #openTurn(): void {
    this.#inTurn = true;
    this.#sliceStart = performance.now();
    this.#ops = 0;
    setImmediate(this.#endTurn);
  }

  #yield(): void {
    this.#yielding = true;
    this.yields++;
    setImmediate(this.#resumeAfterYield);
  }

  drain(): void {
    try {
      this.#drainQueues();
    } finally {
      // Whatever happens, a later schedule() must be able to start a drain again.
      if (!this.#yielding) this.#pending = false;
    }
  }

  #drainQueues(): void {
    const [high, normal, low] = this.#queues;
    const budget = this.#reductions;
    for (;;) {
      let proc: Process | undefined;
      if (high.length > 0) proc = high.shift();
      else if (low.length > 0 && (normal.length === 0 || ++this.#normalTurns >= LOW_EVERY)) {
        this.#normalTurns = 0;
        proc = low.shift();
      } else proc = normal.shift();
      if (proc === undefined) break;
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
        if (this.runnable > 0 && this.#turnUsedUp()) {
          this.#pending = false;
          this.#yield();
          return;
        }
      }
    }
  }
}
