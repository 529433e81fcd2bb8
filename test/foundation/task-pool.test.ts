import { afterEach, describe, expect, it } from 'vitest';
import {
  TaskCancelledError,
  TaskFailedError,
  TaskPool,
  type TaskPoolOptions,
  TaskTimeoutError,
  WorkerCrashedError,
} from '../../src/foundation/task-pool.js';
import { InvalidArgumentError, Runtime, VirtualClock } from '../../src/kernel/index.js';
import { awaitTelemetry } from '../../src/kernel/testkit.js';

const WORKER = new URL('../fixtures/cpu-worker.mjs', import.meta.url);

type Task =
  | { op: 'fib'; n: number }
  | { op: 'echo'; value: unknown }
  | { op: 'thread' | 'hang' | 'uncaught' }
  | { op: 'spin'; started?: Int32Array }
  | { op: 'throw'; message?: string }
  | { op: 'exit'; code?: number };

/** A flag the worker sets as the task begins on its thread (see the fixture). */
function startedFlag(): { flag: Int32Array; started: Promise<void> } {
  const flag = new Int32Array(new SharedArrayBuffer(4));
  // Node 20 has Atomics.waitAsync; the TS lib this project targets does not declare it yet.
  const { waitAsync } = Atomics as unknown as {
    waitAsync(a: Int32Array, i: number, v: number): { async: boolean; value: Promise<string> | string };
  };
  const wait = waitAsync(flag, 0, 0);
  const started = wait.async ? (wait.value as Promise<string>).then(() => undefined) : Promise.resolve();
  return { flag, started };
}

const pools: TaskPool<Task, unknown>[] = [];
const runtimes: Runtime[] = [];
afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.close({ force: true })));
  await Promise.all(runtimes.splice(0).map((rt) => rt.shutdown()));
});

async function start(options: Partial<TaskPoolOptions> = {}) {
  const clock = new VirtualClock();
  const rt = new Runtime({ clock });
  runtimes.push(rt);
  const pool = await TaskPool.start<Task, unknown>({
    filename: WORKER,
    minThreads: 1,
    maxThreads: 2,
    runtime: rt,
    ...options,
  });
  pools.push(pool);
  return { pool, clock, rt };
}

describe('TaskPool options', () => {
  it('rejects bad options with E_INVALID_ARGUMENT naming the option', async () => {
    const cases: [Partial<TaskPoolOptions>, string][] = [
      [{ filename: '/no/such/worker.mjs' }, '"filename"'],
      [{ filename: 'https://example.com/w.mjs' }, '"filename"'],
      [{ minThreads: 3, maxThreads: 2 }, '"minThreads"'],
      [{ maxThreads: 0 }, '"maxThreads"'],
      [{ idleTimeout: -1 }, '"idleTimeout"'],
      [{ taskTimeoutMs: 0 }, '"taskTimeoutMs"'],
      [{ threads: 2 } as never, '"threads"'],
    ];
    for (const [options, name] of cases) {
      const error = await TaskPool.start({ filename: WORKER, ...options }).catch((e: unknown) => e);
      expect(error, name).toBeInstanceOf(InvalidArgumentError);
      expect((error as Error).message).toContain(name);
    }
  });

  it('accepts a path, a file: URL string or a URL', async () => {
    for (const filename of [WORKER, WORKER.href, WORKER.pathname]) {
      const pool = await TaskPool.start<Task, unknown>({ filename, minThreads: 0, maxThreads: 1 });
      pools.push(pool);
      expect(pool.name).toBe('cpu-worker.mjs');
    }
  });
});

describe('TaskPool.run', () => {
  it('runs CPU-bound tasks on worker threads, in parallel', async () => {
    const { pool } = await start();
    const results = await Promise.all([25, 26, 27, 20].map((n) => pool.run({ op: 'fib', n })));
    expect(results).toEqual([75025, 121393, 196418, 6765]);
    expect(pool.stats()).toMatchObject({ completed: 4, pending: 0, failed: 0 });
  });

  it('runs another export by name', async () => {
    const pool = await TaskPool.start<number, number>({
      filename: WORKER,
      exportName: 'double',
      maxThreads: 1,
    });
    pools.push(pool as never);
    expect(await pool.run(21)).toBe(42);
    const { pool: other } = await start();
    expect(await other.run(5 as never, { exportName: 'double' })).toBe(10);
  });

  it('a task that throws fails with E_TASK_FAILED and its thread lives on', async () => {
    const { pool } = await start({ maxThreads: 1 });
    const before = await pool.run({ op: 'thread' });
    const error = await pool.run({ op: 'throw', message: 'bad input 42' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TaskFailedError);
    expect(error).toMatchObject({ code: 'E_TASK_FAILED', pool: 'cpu-worker.mjs' });
    expect((error as Error).message).toBe('task in "cpu-worker.mjs" failed: RangeError: bad input 42');
    expect(await pool.run({ op: 'thread' })).toBe(before);
  });

  it('times out on the runtime clock with E_TASK_TIMEOUT, terminating a stuck thread', async () => {
    const { pool, clock } = await start({ maxThreads: 1 });
    const { flag, started } = startedFlag();
    const spinning = pool.run({ op: 'spin', started: flag }, { timeoutMs: 250 }).catch((e: unknown) => e);
    await started; // the thread is in the loop: the timeout has to terminate it
    expect(Atomics.load(flag, 0)).toBe(1);
    clock.advance(249);
    expect(pool.stats().pending).toBe(1);
    clock.advance(1);
    const error = await spinning;
    expect(error).toBeInstanceOf(TaskTimeoutError);
    expect(error).toMatchObject({ code: 'E_TASK_TIMEOUT', timeoutMs: 250 });
    expect((error as Error).message).toContain('timed out after 250 ms');
    // The only thread was stuck in a loop; it was replaced, so the next task runs.
    expect(await pool.run({ op: 'echo', value: 'next' })).toBe('next');
    expect(pool.stats().timedOut).toBe(1);
  });

  it('applies the pool default task timeout', async () => {
    const { pool, clock } = await start({ taskTimeoutMs: 100 });
    const hanging = pool.run({ op: 'hang' });
    clock.advance(100);
    await expect(hanging).rejects.toMatchObject({ code: 'E_TASK_TIMEOUT', timeoutMs: 100 });
  });

  it('cancels with an AbortSignal (E_TASK_CANCELLED), before or while running', async () => {
    const { pool } = await start({ maxThreads: 1 });
    const early = new AbortController();
    early.abort('not needed');
    await expect(pool.run({ op: 'echo', value: 1 }, { signal: early.signal })).rejects.toMatchObject({
      code: 'E_TASK_CANCELLED',
      reason: 'not needed',
    });
    const late = new AbortController();
    const { flag, started } = startedFlag();
    const running = pool.run({ op: 'spin', started: flag }, { signal: late.signal }).catch((e: unknown) => e);
    const queued = pool.run({ op: 'echo', value: 'queued' });
    await started; // really running, so the cancel has to terminate the thread
    late.abort(new Error('user went away'));
    const error = await running;
    expect(error).toBeInstanceOf(TaskCancelledError);
    expect((error as Error).message).toBe('task in "cpu-worker.mjs" was cancelled: Error: user went away');
    expect(await queued).toBe('queued');
    expect(pool.stats().cancelled).toBe(2);
  });

  it('an exception escaping to the thread surfaces as E_WORKER_CRASHED, and the next task runs', async () => {
    const { pool, rt } = await start({ maxThreads: 1 });
    const crash = awaitTelemetry(rt, ['mabeam', 'task_pool', 'worker_crash']);
    const error = await pool.run({ op: 'uncaught' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WorkerCrashedError);
    expect(error).toMatchObject({ code: 'E_WORKER_CRASHED', exitCode: undefined });
    expect((error as Error).message).toBe(
      'worker thread of "cpu-worker.mjs" crashed running a task: Error: uncaught in worker',
    );
    expect((await crash).metadata).toMatchObject({ pool: 'cpu-worker.mjs' });
    expect(await pool.run({ op: 'fib', n: 10 })).toBe(55);
    expect(pool.stats().crashed).toBe(1);
  });

  it('process.exit in the worker surfaces as E_WORKER_CRASHED with the exit code', async () => {
    const { pool } = await start({ maxThreads: 1 });
    const error = await pool.run({ op: 'exit', code: 3 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WorkerCrashedError);
    expect(error).toMatchObject({ exitCode: 3 });
    expect((error as Error).message).toBe(
      'worker thread of "cpu-worker.mjs" exited with code 3 running a task',
    );
    expect(await pool.run({ op: 'echo', value: 'alive' })).toBe('alive');
  });

  it('reports each task through telemetry', async () => {
    const { pool, rt } = await start();
    const event = awaitTelemetry(rt, ['mabeam', 'task_pool', 'task']);
    await pool.run({ op: 'echo', value: 1 });
    expect((await event).metadata).toEqual({ pool: 'cpu-worker.mjs', outcome: 'ok' });
  });
});

describe('TaskPool.close', () => {
  it('waits for running tasks, then refuses new ones with E_TASK_POOL_CLOSED', async () => {
    const { pool } = await start();
    const running = pool.run({ op: 'fib', n: 22 });
    await pool.close();
    expect(await running).toBe(17711);
    await expect(pool.run({ op: 'echo', value: 1 })).rejects.toMatchObject({ code: 'E_TASK_POOL_CLOSED' });
    expect(pool.stats().closed).toBe(true);
  });

  it('with force, terminates threads and rejects pending tasks', async () => {
    const { pool } = await start({ maxThreads: 1 });
    const running = pool.run({ op: 'hang' }).catch((e: unknown) => e);
    const queued = pool.run({ op: 'echo', value: 1 }).catch((e: unknown) => e);
    await pool.close({ force: true });
    expect(await running).toMatchObject({ code: 'E_TASK_POOL_CLOSED' });
    expect(await queued).toMatchObject({ code: 'E_TASK_POOL_CLOSED' });
  });
});
