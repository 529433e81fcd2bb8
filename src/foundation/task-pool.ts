/**
 * A pool of worker threads for CPU-bound work, on piscina: the runtime's thread stays responsive
 * (agents keep handling messages) while tasks compute elsewhere. A task is a structured-clonable
 * value passed to a function exported by a worker module (any `.js`/`.mjs` file or `file:` URL).
 *
 * What this adds to piscina: per-task timeouts on the runtime clock (E_TASK_TIMEOUT) and
 * cancellation by AbortSignal (E_TASK_CANCELLED), both of which terminate the thread running the
 * task, so even a task stuck in a loop stops; and typed failures that tell a task that threw
 * (E_TASK_FAILED, the thread lives on) from a thread that died under it (E_WORKER_CRASHED: an
 * exception escaping to the thread's top level, or `process.exit`). piscina replaces a dead
 * thread, so the next task runs.
 */
import { constants as fsConstants } from 'node:fs';
import { access } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { basename, resolve as resolvePath } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ResourceLimits, TransferListItem, Worker } from 'node:worker_threads';
import { Piscina } from 'piscina';
import {
  type Clock,
  describe,
  InvalidArgumentError,
  MabeamError,
  RealClock,
  type Runtime,
  type Telemetry,
  type TimerHandle,
} from '../kernel/index.js';

// ---- errors ------------------------------------------------------------------------------------

/** Error codes of the task pool (unique across mabeam, never reused). */
export const TaskPoolErrorCodes = {
  /** A task ran past its timeout; its thread was terminated. */
  TASK_TIMEOUT: 'E_TASK_TIMEOUT',
  /** A task's AbortSignal fired; its thread was terminated (or it left the queue). */
  TASK_CANCELLED: 'E_TASK_CANCELLED',
  /** The thread running a task died (uncaught exception, `process.exit`); piscina replaces it. */
  WORKER_CRASHED: 'E_WORKER_CRASHED',
  /** The task function threw or rejected; `cause` holds what it threw. The thread is fine. */
  TASK_FAILED: 'E_TASK_FAILED',
  /** The task pool is closed: new tasks are refused, and a forced close rejects pending ones. */
  TASK_POOL_CLOSED: 'E_TASK_POOL_CLOSED',
} as const;

export class TaskTimeoutError extends MabeamError {
  readonly pool: string;
  readonly timeoutMs: number;
  constructor(pool: string, timeoutMs: number) {
    super(
      TaskPoolErrorCodes.TASK_TIMEOUT,
      `task in ${describe(pool)} timed out after ${timeoutMs} ms; its thread was terminated`,
    );
    this.pool = pool;
    this.timeoutMs = timeoutMs;
  }
}

export class TaskCancelledError extends MabeamError {
  readonly pool: string;
  readonly reason: unknown;
  constructor(pool: string, reason: unknown) {
    super(TaskPoolErrorCodes.TASK_CANCELLED, `task in ${describe(pool)} was cancelled: ${describe(reason)}`, {
      cause: reason,
    });
    this.pool = pool;
    this.reason = reason;
  }
}

export class WorkerCrashedError extends MabeamError {
  readonly pool: string;
  /** The thread's exit code when it exited (`process.exit`), else undefined. */
  readonly exitCode: number | undefined;
  constructor(pool: string, cause: unknown, exitCode: number | undefined) {
    super(
      TaskPoolErrorCodes.WORKER_CRASHED,
      exitCode === undefined
        ? `worker thread of ${describe(pool)} crashed running a task: ${describe(cause)}`
        : `worker thread of ${describe(pool)} exited with code ${exitCode} running a task`,
      { cause },
    );
    this.pool = pool;
    this.exitCode = exitCode;
  }
}

export class TaskFailedError extends MabeamError {
  readonly pool: string;
  constructor(pool: string, cause: unknown) {
    super(TaskPoolErrorCodes.TASK_FAILED, `task in ${describe(pool)} failed: ${describe(cause)}`, { cause });
    this.pool = pool;
  }
}

export class TaskPoolClosedError extends MabeamError {
  readonly pool: string;
  constructor(pool: string) {
    super(TaskPoolErrorCodes.TASK_POOL_CLOSED, `task pool ${describe(pool)} is closed`);
    this.pool = pool;
  }
}

// ---- options -----------------------------------------------------------------------------------

export interface TaskPoolOptions {
  /** The worker module: a path, a `file:` URL string, or a URL. It must be JavaScript (piscina loads it as is). */
  filename: string | URL;
  /** Which export runs tasks. Default `default`. */
  exportName?: string;
  /** Names the pool in errors and telemetry. Default: the module's file name. */
  name?: string;
  /** Threads kept alive when idle. Default 1. */
  minThreads?: number;
  /** Most threads at once. Default: the number of cores. */
  maxThreads?: number;
  /** Real-time ms an idle thread above `minThreads` lives on. Default 10000. */
  idleTimeout?: number;
  /** Default per-task timeout (ms, runtime clock). Default Infinity. */
  taskTimeoutMs?: number;
  /** Heap limits per thread (a thread exceeding them dies: E_WORKER_CRASHED). */
  resourceLimits?: ResourceLimits;
  /** The runtime whose clock times tasks out and whose telemetry reports them. Default: real clock, no telemetry. */
  runtime?: Runtime;
  /** Node options for the threads (e.g. `['--import', url]` to preload a module). Default: the process's. */
  execArgv?: readonly string[];
  /** The threads' `process.env`. Default: a copy of the process's. */
  env?: Readonly<Record<string, string>>;
}

export interface TaskRunOptions {
  /** Ms (runtime clock) the task may take, queueing included. Default: the pool's `taskTimeoutMs`. */
  timeoutMs?: number;
  /** Cancel the task: rejects with E_TASK_CANCELLED and terminates its thread if it is running. */
  signal?: AbortSignal;
  /** Run another export of the worker module. */
  exportName?: string;
  /** Objects moved to the thread with the task instead of copied (a MessagePort, an ArrayBuffer...). */
  transferList?: readonly TransferListItem[];
}

export interface TaskPoolStats {
  name: string;
  threads: number;
  /** Tasks waiting for a thread. */
  queued: number;
  /** Tasks submitted and not yet settled (queued ones included). */
  pending: number;
  completed: number;
  failed: number;
  crashed: number;
  timedOut: number;
  cancelled: number;
  closed: boolean;
}

const OPTION_KEYS = new Set([
  'filename',
  'exportName',
  'name',
  'minThreads',
  'maxThreads',
  'idleTimeout',
  'taskTimeoutMs',
  'resourceLimits',
  'runtime',
  'execArgv',
  'env',
]);
const EV_TASK = ['mabeam', 'task_pool', 'task'] as const;
const EV_CRASH = ['mabeam', 'task_pool', 'worker_crash'] as const;
/** The error piscina makes for a thread that exited with tasks on it. */
const EXITED = /^worker exited with code: (-?\d+)$/;

function toPath(filename: unknown): string {
  const bad = (problem: string) => new InvalidArgumentError('task pool option "filename"', problem, filename);
  if (filename instanceof URL) {
    if (filename.protocol !== 'file:') throw bad('must be a file path or a file: URL');
    return fileURLToPath(filename);
  }
  if (typeof filename !== 'string' || filename === '') throw bad('must be a file path or a file: URL');
  if (filename.startsWith('file:')) return fileURLToPath(filename);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(filename)) throw bad('must be a file path or a file: URL');
  return resolvePath(filename);
}

function checkOptions(o: TaskPoolOptions) {
  if (o === null || typeof o !== 'object')
    throw new InvalidArgumentError('task pool options', 'must be an object', o);
  for (const key of Object.keys(o)) {
    if (!OPTION_KEYS.has(key))
      throw new InvalidArgumentError(`task pool option ${JSON.stringify(key)}`, 'unknown option');
  }
  const opt = (key: string) => `task pool option ${JSON.stringify(key)}`;
  const path = toPath(o.filename);
  const exportName = o.exportName ?? 'default';
  if (typeof exportName !== 'string' || exportName === '') {
    throw new InvalidArgumentError(opt('exportName'), 'must be a non-empty string', o.exportName);
  }
  const name = o.name ?? basename(path);
  if (typeof name !== 'string' || name === '')
    throw new InvalidArgumentError(opt('name'), 'must be a non-empty string', o.name);
  const minThreads = o.minThreads ?? 1;
  if (!Number.isInteger(minThreads) || minThreads < 0) {
    throw new InvalidArgumentError(opt('minThreads'), 'must be an integer >= 0', o.minThreads);
  }
  const maxThreads = o.maxThreads ?? Math.max(1, availableParallelism());
  if (!Number.isInteger(maxThreads) || maxThreads < 1) {
    throw new InvalidArgumentError(opt('maxThreads'), 'must be an integer >= 1', o.maxThreads);
  }
  if (minThreads > maxThreads) {
    throw new InvalidArgumentError(
      opt('minThreads'),
      `must not exceed maxThreads (${maxThreads})`,
      minThreads,
    );
  }
  const idleTimeout = o.idleTimeout ?? 10_000;
  if (!(idleTimeout >= 0) || !Number.isFinite(idleTimeout)) {
    throw new InvalidArgumentError(opt('idleTimeout'), 'must be a finite number of ms >= 0', o.idleTimeout);
  }
  if (
    o.execArgv !== undefined &&
    !(Array.isArray(o.execArgv) && o.execArgv.every((a) => typeof a === 'string'))
  ) {
    throw new InvalidArgumentError(opt('execArgv'), 'must be an array of strings', o.execArgv);
  }
  if (
    o.env !== undefined &&
    (o.env === null || typeof o.env !== 'object' || !Object.values(o.env).every((v) => typeof v === 'string'))
  ) {
    throw new InvalidArgumentError(opt('env'), 'must be an object of strings', o.env);
  }
  const taskTimeoutMs = o.taskTimeoutMs ?? Number.POSITIVE_INFINITY;
  if (!(taskTimeoutMs > 0)) {
    throw new InvalidArgumentError(
      opt('taskTimeoutMs'),
      'must be a positive number of ms (or Infinity)',
      o.taskTimeoutMs,
    );
  }
  return { path, exportName, name, minThreads, maxThreads, idleTimeout, taskTimeoutMs };
}

// ---- the pool ----------------------------------------------------------------------------------

/**
 * Worker threads for CPU-bound tasks.
 *
 * ```ts
 * const pool = await TaskPool.start({ filename: new URL('./fib-worker.js', import.meta.url), maxThreads: 2 });
 * const n = await pool.run({ n: 30 }, { timeoutMs: 5000 });
 * await pool.close();
 * ```
 */
export class TaskPool<Task = unknown, Result = unknown> {
  readonly name: string;
  readonly #piscina: Piscina<Task, Result>;
  readonly #clock: Clock;
  readonly #telemetry: Telemetry | undefined;
  readonly #taskTimeoutMs: number;
  /**
   * What dying threads threw and the codes they exited with, kept until the event loop turns: a
   * task's rejection is handled in the microtasks right after, and is a crash iff it carries one.
   */
  readonly #crashes = new Set<unknown>();
  readonly #exits = new Set<number>();
  #clearScheduled = false;
  #closed = false;
  #pending = 0;
  #completed = 0;
  #failed = 0;
  #crashed = 0;
  #timedOut = 0;
  #cancelled = 0;

  private constructor(options: TaskPoolOptions, cfg: ReturnType<typeof checkOptions>) {
    this.name = cfg.name;
    this.#clock = options.runtime?.clock ?? new RealClock();
    this.#telemetry = options.runtime?.telemetry;
    this.#taskTimeoutMs = cfg.taskTimeoutMs;
    this.#piscina = new Piscina<Task, Result>({
      filename: cfg.path,
      name: cfg.exportName,
      minThreads: cfg.minThreads,
      maxThreads: cfg.maxThreads,
      idleTimeout: cfg.idleTimeout,
      ...(options.resourceLimits === undefined ? {} : { resourceLimits: options.resourceLimits }),
      ...(options.execArgv === undefined ? {} : { execArgv: [...options.execArgv] }),
      ...(options.env === undefined ? {} : { env: { ...options.env } }),
    });
    this.#piscina.on('workerCreate', (w: { id: number }) => {
      const thread = this.#piscina.threads.find((t) => t.threadId === w.id);
      if (thread !== undefined) this.#watch(thread);
    });
    // A thread that dies with no task on it: piscina emits 'error' (unhandled, it would kill the process).
    this.#piscina.on('error', (error: unknown) => {
      this.#crashed++;
      this.#reportCrash(error, undefined);
    });
  }

  /**
   * Start a pool. Rejects with InvalidArgumentError naming the option for bad options (a worker
   * module that does not exist included).
   */
  static async start<Task = unknown, Result = unknown>(
    options: TaskPoolOptions,
  ): Promise<TaskPool<Task, Result>> {
    const cfg = checkOptions(options);
    try {
      await access(cfg.path, fsConstants.R_OK);
    } catch {
      throw new InvalidArgumentError('task pool option "filename"', 'no readable file there', cfg.path);
    }
    return new TaskPool<Task, Result>(options, cfg);
  }

  /**
   * Run `task` on a thread; resolves with what the worker function returns. Rejects with
   * TaskTimeoutError (E_TASK_TIMEOUT), TaskCancelledError (E_TASK_CANCELLED), TaskFailedError
   * (E_TASK_FAILED: the function threw; `cause` holds it), WorkerCrashedError (E_WORKER_CRASHED)
   * or TaskPoolClosedError (E_TASK_POOL_CLOSED).
   */
  async run(task: Task, options: TaskRunOptions = {}): Promise<Result> {
    if (options === null || typeof options !== 'object') {
      throw new InvalidArgumentError('task run options', 'must be an object', options);
    }
    const timeoutMs = options.timeoutMs ?? this.#taskTimeoutMs;
    if (!(timeoutMs > 0)) {
      throw new InvalidArgumentError(
        'task run option "timeoutMs"',
        'must be a positive number of ms (or Infinity)',
        options.timeoutMs,
      );
    }
    const transferList = options.transferList;
    if (transferList !== undefined && !Array.isArray(transferList)) {
      throw new InvalidArgumentError('task run option "transferList"', 'must be an array', transferList);
    }
    const signal = options.signal;
    if (signal !== undefined && !(signal instanceof AbortSignal)) {
      throw new InvalidArgumentError('task run option "signal"', 'must be an AbortSignal', signal);
    }
    if (this.#closed) throw new TaskPoolClosedError(this.name);
    if (signal?.aborted) {
      this.#cancelled++;
      throw new TaskCancelledError(this.name, signal.reason);
    }
    // One controller for both ways a task ends early: piscina terminates the thread on abort.
    const controller = new AbortController();
    let ended: 'timeout' | 'cancel' | null = null;
    let timer: TimerHandle | null = null;
    if (Number.isFinite(timeoutMs)) {
      timer = this.#clock.setTimeout(() => {
        ended = 'timeout';
        controller.abort();
      }, timeoutMs);
    }
    const onAbort = () => {
      ended = 'cancel';
      controller.abort();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    const started = this.#clock.now();
    this.#pending++;
    try {
      const runOptions: { signal: AbortSignal; name?: string; transferList?: TransferListItem[] } = {
        signal: controller.signal,
      };
      if (options.exportName !== undefined) runOptions.name = options.exportName;
      if (transferList !== undefined) runOptions.transferList = [...transferList];
      const result = await this.#piscina.run(task, runOptions);
      this.#completed++;
      this.#report(started, 'ok');
      return result;
    } catch (error) {
      const typed = this.#classify(error, ended, timeoutMs, signal);
      this.#report(started, typed.code);
      throw typed;
    } finally {
      this.#pending--;
      if (timer !== null) this.#clock.clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    }
  }

  stats(): TaskPoolStats {
    return {
      name: this.name,
      threads: this.#piscina.threads.length,
      queued: this.#piscina.queueSize,
      pending: this.#pending,
      completed: this.#completed,
      failed: this.#failed,
      crashed: this.#crashed,
      timedOut: this.#timedOut,
      cancelled: this.#cancelled,
      closed: this.#closed,
    };
  }

  /**
   * Refuse new tasks and stop the threads. By default waits for queued and running tasks to
   * finish; with `force`, terminates the threads at once and rejects what is pending with
   * TaskPoolClosedError.
   */
  async close(options: { force?: boolean } = {}): Promise<void> {
    const first = !this.#closed;
    this.#closed = true;
    if (!first) return;
    if (options.force === true) await this.#piscina.destroy();
    else await this.#piscina.close();
  }

  #classify(
    error: unknown,
    ended: 'timeout' | 'cancel' | null,
    timeoutMs: number,
    signal: AbortSignal | undefined,
  ): MabeamError {
    if (ended === 'timeout') {
      this.#timedOut++;
      return new TaskTimeoutError(this.name, timeoutMs);
    }
    if (ended === 'cancel') {
      this.#cancelled++;
      return new TaskCancelledError(this.name, signal?.reason);
    }
    if (this.#crashes.has(error)) {
      this.#crashed++;
      this.#reportCrash(error, undefined);
      return new WorkerCrashedError(this.name, error, undefined);
    }
    const exited = error instanceof Error ? EXITED.exec(error.message) : null;
    if (exited !== null && this.#exits.has(Number(exited[1]))) {
      const code = Number(exited[1]);
      this.#crashed++;
      this.#reportCrash(error, code);
      return new WorkerCrashedError(this.name, error, code);
    }
    if (this.#closed) return new TaskPoolClosedError(this.name);
    this.#failed++;
    return new TaskFailedError(this.name, error);
  }

  /** Note what a thread dies of, for `#classify` (see `#crashes`). */
  #watch(thread: Worker): void {
    thread.on('error', (error: unknown) => {
      this.#crashes.add(error);
      this.#scheduleClear();
    });
    thread.on('exit', (code: number) => {
      this.#exits.add(code);
      this.#scheduleClear();
    });
  }

  #scheduleClear(): void {
    if (this.#clearScheduled) return;
    this.#clearScheduled = true;
    setImmediate(() => {
      this.#clearScheduled = false;
      this.#crashes.clear();
      this.#exits.clear();
    });
  }

  #report(started: number, outcome: string): void {
    const tel = this.#telemetry;
    if (tel?.enabled)
      tel.execute(EV_TASK, { durationMs: this.#clock.now() - started }, { pool: this.name, outcome });
  }

  #reportCrash(error: unknown, exitCode: number | undefined): void {
    const tel = this.#telemetry;
    if (tel?.enabled) tel.execute(EV_CRASH, { count: 1 }, { pool: this.name, error, exitCode });
  }
}
