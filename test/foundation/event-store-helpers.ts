/** Shared helpers of the event store tests. None of them waits for time. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  EventStore,
  type EventStoreOptions,
  MemoryEventLog,
  type StoredEvent,
  type Subscription,
} from '../../src/foundation/event-store/index.js';
import type { Runtime } from '../../src/kernel/index.js';

/** A fresh temp dir; `cleanup` removes it. */
export function tempDir(): { dir: string; file(name?: string): string; cleanup(): void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mabeam-es-'));
  return {
    dir,
    file: (name = 'events.db') => path.join(dir, name),
    cleanup: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}

/** A timestamp clock the test sets by hand. */
export function manualClock(start = 1_000): {
  now(): number;
  set(t: number): void;
  advance(ms: number): void;
} {
  let t = start;
  return {
    now: () => t,
    set: (v) => {
      t = v;
    },
    advance: (ms) => {
      t += ms;
    },
  };
}

export type StoreOptions = Omit<EventStoreOptions, 'path' | 'backend'>;

/** The two backends, each able to open a store (the SQLite one in `dir`). */
export const BACKENDS = [
  {
    kind: 'memory',
    open: (rt: Runtime, _dir: string, options: StoreOptions = {}) =>
      EventStore.start(rt, { ...options, backend: new MemoryEventLog() }),
  },
  {
    kind: 'sqlite',
    open: (rt: Runtime, dir: string, options: StoreOptions = {}) =>
      EventStore.start(rt, { ...options, path: path.join(dir, 'events.db') }),
  },
] as const;

/** A subscriber function that records what it gets and lets a test await a count. */
export interface Collector {
  readonly events: StoredEvent[];
  handler(event: StoredEvent): void | Promise<void>;
  /** Resolves once `n` events have arrived (rejects after a real-time guard, never passes by it). */
  waitFor(n: number, guardMs?: number): Promise<StoredEvent[]>;
}

export function collector(onEvent?: (event: StoredEvent) => void | Promise<void>): Collector {
  const events: StoredEvent[] = [];
  let waiters: { n: number; resolve(): void }[] = [];
  return {
    events,
    handler(event) {
      events.push(event);
      waiters = waiters.filter((w) => {
        if (events.length < w.n) return true;
        w.resolve();
        return false;
      });
      return onEvent?.(event);
    },
    waitFor(n, guardMs = 5000) {
      if (events.length >= n) return Promise.resolve(events);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`waited for ${n} events, got ${events.length}`)),
          guardMs,
        );
        waiters.push({
          n,
          resolve: () => {
            clearTimeout(timer);
            resolve(events);
          },
        });
      });
    },
  };
}

/** The seqs of `events`. */
export function seqs(events: readonly StoredEvent[]): number[] {
  return events.map((e) => e.seq);
}

/** [from, from + 1, ..., to]. */
export function range(from: number, to: number): number[] {
  const out: number[] = [];
  for (let i = from; i <= to; i++) out.push(i);
  return out;
}

/** One event-loop turn: lets microtasks, scheduler slices and setImmediate callbacks run. Not a sleep. */
export function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Await a subscription's end with a real-time guard. */
export function endOf(sub: Subscription, guardMs = 5000): ReturnType<Subscription['ended']> {
  return Promise.race([
    sub.ended(),
    new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error(`subscription ${sub.id} did not end`)), guardMs).unref(),
    ),
  ]);
}
