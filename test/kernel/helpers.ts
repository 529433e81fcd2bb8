/** Small helpers shared by the kernel tests. None of them waits for time. */
import { afterEach } from 'vitest';
import { type AnyRef, behaviour, Runtime, type RuntimeOptions } from '../../src/kernel/index.js';

/**
 * A runtime factory for one test file: every runtime it makes is shut down after each test, so a
 * failing test cannot leave agents running into the next one.
 */
export function runtimeFactory(): (options?: RuntimeOptions) => Runtime {
  const runtimes: Runtime[] = [];
  afterEach(async () => {
    await Promise.all(runtimes.splice(0).map((rt) => rt.shutdown()));
  });
  return (options) => {
    const rt = new Runtime(options);
    runtimes.push(rt);
    return rt;
  };
}

export interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

/** A promise settled by hand, to hold an async handler at a known point. */
export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * Let every queued microtask and the runtime's pending drains run: resolves after one event-loop
 * turn (setImmediate runs after the microtask queue is empty). Not a sleep: no time passes on
 * purpose, and nothing here depends on how long it takes.
 */
export function flush(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export type PromiseState<T> =
  | { state: 'pending' }
  | { state: 'fulfilled'; value: T }
  | { state: 'rejected'; reason: unknown };

/** Observe a promise without awaiting it (call `flush()` before reading). */
export function watch<T>(promise: Promise<T>): { readonly current: PromiseState<T> } {
  const box: { current: PromiseState<T> } = { current: { state: 'pending' } };
  promise.then(
    (value) => {
      box.current = { state: 'fulfilled', value };
    },
    (reason: unknown) => {
      box.current = { state: 'rejected', reason };
    },
  );
  return box;
}

/** Tells the ref it was given that it is terminating, then never finishes terminate. */
export const StuckInTerminate = behaviour<AnyRef, AnyRef>({
  init: (r) => r,
  terminate(_reason, r, ctx) {
    ctx.send(r, 'terminating');
    return new Promise<void>(() => {});
  },
});
