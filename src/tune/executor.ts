/**
 * The trial executor of `mabeam tune`: runs trainables on worker threads, one trial per task on a
 * TaskPool, so training never blocks the runtime's thread and a trial that throws, hangs or eats
 * its heap only costs its own thread (piscina replaces it) and is marked failed with the reason.
 *
 * Each run gets a MessageChannel; its worker end travels with the task. The worker's `ctx.report`
 * becomes a call to `hooks.onReport` here, and the decision goes back; `ctx.checkpoint` becomes
 * `hooks.onCheckpoint`, acknowledged once that resolved (so an acknowledged checkpoint is stored).
 * Hooks run one at a time, in the order the trainable made its requests.
 *
 * The worker module is worker.ts compiled (dist/tune/worker.js). Under vitest, or any run from the
 * TypeScript sources, this file is executor.ts and the worker is worker.ts: the threads then start
 * with a preload that registers tsx (Node 20 does not pass `--import tsx` hooks on to workers, but
 * a preload that calls tsx's `register()` works on every supported Node).
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { resolve as resolvePath } from 'node:path';
import { pathToFileURL } from 'node:url';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import {
  TaskCancelledError,
  TaskPool,
  TaskPoolErrorCodes,
  TaskTimeoutError,
  WorkerCrashedError,
} from '../foundation/index.js';
import { describe, InvalidArgumentError, MabeamError, type Runtime } from '../kernel/index.js';
import type { Config, TrainableRef, TrialMetrics } from './types.js';
import {
  type CheckResult,
  type TrainableErrorCode,
  TrainableErrorCodes,
  type TrialReplyMessage,
  type TrialRequestMessage,
  type TrialRunOutcome,
  type TrialTask,
  type WorkerTask,
} from './worker.js';

export { type TrainableErrorCode, TrainableErrorCodes, type TrialRunOutcome } from './worker.js';

// ---- errors ------------------------------------------------------------------------------------

/** A trainable that cannot run: its module is missing, fails to load, or has no train export. */
export class TrainableError extends MabeamError {
  /** The module as given. */
  readonly module: string;
  constructor(code: TrainableErrorCode, module: string, message: string) {
    super(code, message);
    this.module = module;
  }
}

// ---- the worker module -------------------------------------------------------------------------

const FROM_SOURCE = import.meta.url.endsWith('.ts');

/** The worker module the executor's threads load (worker.ts from source, worker.js compiled). */
export const WORKER_MODULE = new URL(FROM_SOURCE ? './worker.ts' : './worker.js', import.meta.url);

/** A preload for threads that must import TypeScript: registers tsx's ESM hooks in the thread. */
function tsxPreload(): string {
  // The api's file URL, so the data: module needs no package resolution of its own.
  const require = createRequire(import.meta.url);
  const cjs = require.resolve('tsx/esm/api');
  const api = pathToFileURL(cjs.replace(/\.cjs$/, '.mjs')).href;
  const code = `import { register } from ${JSON.stringify(existsSync(new URL(api)) ? api : pathToFileURL(cjs).href)}; register();`;
  return `data:text/javascript,${encodeURIComponent(code)}`;
}

/**
 * A trainable module as a file URL: a `file:` URL (string or URL) as is, a path resolved against
 * the working directory. Throws InvalidArgumentError for anything else.
 */
export function trainableModuleUrl(module: string | URL): string {
  if (module instanceof URL) {
    if (module.protocol !== 'file:')
      throw new InvalidArgumentError('trainable "module"', 'must be a path or a file: URL', module.href);
    return module.href;
  }
  if (typeof module !== 'string' || module === '') {
    throw new InvalidArgumentError('trainable "module"', 'must be a path or a file: URL', module);
  }
  if (module.startsWith('file:')) return new URL(module).href;
  if (/^[a-z][a-z0-9+.-]+:/i.test(module) && !/^[a-z]:[\\/]/i.test(module)) {
    throw new InvalidArgumentError('trainable "module"', 'must be a path or a file: URL', module);
  }
  return pathToFileURL(resolvePath(module)).href;
}

function checkRef(ref: TrainableRef): {
  module: string;
  exportName: string;
  params: Readonly<Record<string, unknown>>;
} {
  if (ref === null || typeof ref !== 'object') {
    throw new InvalidArgumentError('trainable', 'must be an object like { module: "./train.js" }', ref);
  }
  const exportName = ref.exportName ?? 'train';
  if (typeof exportName !== 'string' || exportName === '') {
    throw new InvalidArgumentError('trainable "exportName"', 'must be a non-empty string', ref.exportName);
  }
  const params = ref.params ?? {};
  if (params === null || typeof params !== 'object' || Array.isArray(params)) {
    throw new InvalidArgumentError('trainable "params"', 'must be an object', ref.params);
  }
  return { module: trainableModuleUrl(ref.module), exportName, params };
}

/** What checking a trainable found besides its train function. */
export interface TrainableInfo {
  /** The module's export names. */
  readonly exports: readonly string[];
  /** Its `space` export (a search space, unchecked: see checkSpace), if any. */
  readonly space?: unknown;
  /** Its `objective` export, if any. */
  readonly objective?: { readonly metric?: string; readonly mode?: string };
}

function infoOf(ref: TrainableRef, result: CheckResult): TrainableInfo {
  if (!result.ok) throw new TrainableError(result.code, String(ref.module), result.reason);
  const info: {
    exports: readonly string[];
    space?: unknown;
    objective?: { metric?: string; mode?: string };
  } = {
    exports: result.exports,
  };
  if (result.space !== undefined) info.space = result.space;
  const objective = result.objective as { metric?: unknown; mode?: unknown } | undefined;
  if (objective !== undefined) {
    const ok =
      objective !== null &&
      typeof objective === 'object' &&
      (objective.metric === undefined || typeof objective.metric === 'string') &&
      (objective.mode === undefined || objective.mode === 'min' || objective.mode === 'max');
    if (!ok) {
      throw new InvalidArgumentError(
        `export "objective" of ${String(ref.module)}`,
        'must be an object like { metric: "accuracy", mode: "max" }',
        objective,
      );
    }
    info.objective = objective as { metric?: string; mode?: string };
  }
  return info;
}

// ---- options and requests ----------------------------------------------------------------------

/** Options of `TrialExecutor.start`. */
export interface ExecutorOptions {
  /** Whose clock times trials out and whose telemetry reports the pool's tasks. Default: real clock. */
  readonly runtime?: Runtime;
  /** Worker threads, i.e. trials at once (more runs wait their turn). Default: the number of cores. */
  readonly threads?: number;
  /** Default per-trial timeout in ms (runtime clock), counted from when the trial gets a thread. Default: none. */
  readonly trialTimeoutMs?: number;
  /** Heap limit per thread in MB (V8's old generation); a trial over it fails "out of memory". Default: Node's. */
  readonly memoryLimitMb?: number;
  /** Names the pool in errors and telemetry. Default "tune-trials". */
  readonly name?: string;
}

/** The smallest heap limit per thread (`memoryLimitMb`) a trial's thread can start with, in MB. */
export const MIN_MEMORY_LIMIT_MB = 8;

/**
 * Check executor options without starting anything (what `TrialExecutor.start` checks first), so a
 * caller can refuse bad ones before it does any work. Throws InvalidArgumentError naming the bad
 * option; returns the thread count (defaulted to the cores) and the limits.
 */
export function checkExecutorOptions(options: ExecutorOptions = {}): {
  readonly threads: number;
  readonly trialTimeoutMs: number | undefined;
  readonly memoryLimitMb: number | undefined;
} {
  if (options === null || typeof options !== 'object')
    throw new InvalidArgumentError('executor options', 'must be an object', options);
  const threads = options.threads ?? Math.max(1, availableParallelism());
  if (!Number.isInteger(threads) || threads < 1) {
    throw new InvalidArgumentError('executor option "threads"', 'must be an integer >= 1', options.threads);
  }
  const { trialTimeoutMs, memoryLimitMb } = options;
  if (trialTimeoutMs !== undefined && !(typeof trialTimeoutMs === 'number' && trialTimeoutMs > 0)) {
    throw new InvalidArgumentError(
      'executor option "trialTimeoutMs"',
      'must be a positive number of ms',
      trialTimeoutMs,
    );
  }
  if (
    memoryLimitMb !== undefined &&
    !(Number.isFinite(memoryLimitMb) && memoryLimitMb >= MIN_MEMORY_LIMIT_MB)
  ) {
    throw new InvalidArgumentError(
      'executor option "memoryLimitMb"',
      `must be a number of MB >= ${MIN_MEMORY_LIMIT_MB}`,
      memoryLimitMb,
    );
  }
  return { threads, trialTimeoutMs, memoryLimitMb };
}

/** One run of a trial. */
export interface TrialRequest {
  readonly trialId: number;
  readonly config: Config;
  readonly trainable: TrainableRef;
  /** The state `ctx.restore()` returns (this trial's or a donor's last checkpoint). */
  readonly checkpoint?: unknown;
  /** This run's timeout in ms. Default: the executor's `trialTimeoutMs`. */
  readonly timeoutMs?: number;
}

/** What the study does with a run's reports and checkpoints. */
export interface TrialHooks {
  /** A report; the answer goes back to the trainable. A throw ends the run (E_TRIAL_HOOK_FAILED). */
  onReport(metrics: TrialMetrics): 'continue' | 'stop' | Promise<'continue' | 'stop'>;
  /**
   * A checkpoint, taken after the run's report of `step` (0 before its first report). The
   * trainable's `ctx.checkpoint` resolves once this resolved. A throw ends the run (E_TRIAL_HOOK_FAILED).
   */
  onCheckpoint(state: unknown, step: number): void | Promise<void>;
}

function checkRequest(request: TrialRequest) {
  if (request === null || typeof request !== 'object')
    throw new InvalidArgumentError('trial request', 'must be an object', request);
  if (!Number.isSafeInteger(request.trialId) || request.trialId < 0) {
    throw new InvalidArgumentError('trial request "trialId"', 'must be an integer >= 0', request.trialId);
  }
  if (request.config === null || typeof request.config !== 'object') {
    throw new InvalidArgumentError('trial request "config"', 'must be an object', request.config);
  }
  if (request.timeoutMs !== undefined && !(request.timeoutMs > 0)) {
    throw new InvalidArgumentError(
      'trial request "timeoutMs"',
      'must be a positive number of ms',
      request.timeoutMs,
    );
  }
  return checkRef(request.trainable);
}

function checkHooks(hooks: TrialHooks): void {
  if (
    hooks === null ||
    typeof hooks !== 'object' ||
    typeof hooks.onReport !== 'function' ||
    typeof hooks.onCheckpoint !== 'function'
  ) {
    throw new InvalidArgumentError('trial hooks', 'must have onReport and onCheckpoint functions', hooks);
  }
}

// ---- the executor ------------------------------------------------------------------------------

const OUT_OF_MEMORY = 'ERR_WORKER_OUT_OF_MEMORY';

/**
 * Runs trials on worker threads.
 *
 * ```ts
 * const executor = await TrialExecutor.start({ runtime, threads: 2, trialTimeoutMs: 60_000, memoryLimitMb: 512 });
 * await executor.check({ module: './train.js' }); // TrainableError before any work starts
 * const outcome = await executor.run(
 *   { trialId: 0, config: { learningRate: 0.01 }, trainable: { module: './train.js' } },
 *   { onReport: (m) => (m.loss > 1 ? 'stop' : 'continue'), onCheckpoint: (state) => save(state) },
 * );
 * await executor.close();
 * ```
 *
 * `run` never rejects for what a trial does: a throw (E_TRAINABLE_FAILED), a timeout
 * (E_TASK_TIMEOUT), a heap overflow (E_TRAINABLE_OUT_OF_MEMORY), a bad report, a missing module
 * or export all resolve `{ status: 'failed', code, reason }`. Aborting the run's signal terminates
 * its thread and resolves failed with E_TASK_CANCELLED: the trial did not end on its own merits,
 * so a sampler must not learn from it as it would from a pruned trial.
 */
export class TrialExecutor {
  readonly #pool: TaskPool<WorkerTask, TrialRunOutcome | CheckResult>;
  readonly #threads: number;
  readonly #memoryLimitMb: number | undefined;
  #running = 0;
  readonly #waiting: (() => void)[] = [];
  #closed = false;

  private constructor(
    pool: TaskPool<WorkerTask, TrialRunOutcome | CheckResult>,
    threads: number,
    memoryLimitMb: number | undefined,
  ) {
    this.#pool = pool;
    this.#threads = threads;
    this.#memoryLimitMb = memoryLimitMb;
  }

  /** Start the threads. Rejects with InvalidArgumentError naming a bad option (see checkExecutorOptions). */
  static async start(options: ExecutorOptions = {}): Promise<TrialExecutor> {
    const { threads, trialTimeoutMs, memoryLimitMb } = checkExecutorOptions(options);
    const pool = await TaskPool.start<WorkerTask, TrialRunOutcome | CheckResult>({
      filename: WORKER_MODULE,
      name: options.name ?? 'tune-trials',
      minThreads: threads,
      maxThreads: threads,
      ...(trialTimeoutMs === undefined ? {} : { taskTimeoutMs: trialTimeoutMs }),
      ...(memoryLimitMb === undefined ? {} : { resourceLimits: { maxOldGenerationSizeMb: memoryLimitMb } }),
      ...(options.runtime === undefined ? {} : { runtime: options.runtime }),
      ...(FROM_SOURCE ? { execArgv: ['--import', tsxPreload()] } : {}),
    });
    return new TrialExecutor(pool, threads, memoryLimitMb);
  }

  /** How many threads run trials. */
  get threads(): number {
    return this.#threads;
  }

  /**
   * Import the trainable's module on a worker thread and look for its train export, before any
   * work starts. Throws TrainableError: E_TRAINABLE_NOT_FOUND, E_TRAINABLE_LOAD_FAILED or
   * E_TRAINABLE_NO_TRAIN (the message names the module and lists its exports). Resolves with the
   * module's exports, and its `space` and `objective` exports if it has them.
   */
  async check(ref: TrainableRef, options: { timeoutMs?: number } = {}): Promise<TrainableInfo> {
    const { module, exportName } = checkRef(ref);
    const result = await this.#withThread(() =>
      this.#pool.run({ kind: 'check', module, exportName }, { timeoutMs: options.timeoutMs ?? 60_000 }),
    );
    return infoOf(ref, result as CheckResult);
  }

  /**
   * Run one trial to its end. Resolves with how it ended (never rejects for the trial's faults;
   * see the class doc). Rejects with InvalidArgumentError for a malformed request or hooks.
   */
  async run(request: TrialRequest, hooks: TrialHooks, signal?: AbortSignal): Promise<TrialRunOutcome> {
    const ref = checkRequest(request);
    checkHooks(hooks);
    if (signal !== undefined && !(signal instanceof AbortSignal)) {
      throw new InvalidArgumentError('trial run "signal"', 'must be an AbortSignal', signal);
    }
    if (this.#closed) return failed(TaskPoolErrorCodes.TASK_POOL_CLOSED, `the trial executor is closed`);
    if (signal?.aborted) return cancelled(request.trialId, signal.reason);
    const { port1, port2 } = new MessageChannel();
    const relay = new Relay(port1, hooks);
    const task: TrialTask = {
      kind: 'trial',
      trialId: request.trialId,
      config: request.config,
      module: ref.module,
      exportName: ref.exportName,
      params: ref.params,
      checkpoint: request.checkpoint,
      port: port2,
    };
    try {
      const outcome = await this.#withThread(
        () =>
          this.#pool.run(task, {
            transferList: [port2],
            ...(request.timeoutMs === undefined ? {} : { timeoutMs: request.timeoutMs }),
            ...(signal === undefined ? {} : { signal }),
          }),
        signal,
      );
      return outcome as TrialRunOutcome;
    } catch (error) {
      return this.#outcomeOf(request.trialId, error);
    } finally {
      port1.close();
      await relay.idle();
    }
  }

  /** Threads, queue and task counts of the underlying pool. */
  stats(): ReturnType<TaskPool['stats']> & { readonly waiting: number } {
    return { ...this.#pool.stats(), waiting: this.#waiting.length };
  }

  /**
   * Stop the threads. By default waits for running trials; with `force`, terminates them (they
   * resolve failed with E_TASK_POOL_CLOSED) and so do runs still waiting for a thread.
   */
  async close(options: { force?: boolean } = {}): Promise<void> {
    this.#closed = true;
    if (options.force === true) for (const wake of this.#waiting.splice(0)) wake();
    await this.#pool.close(options);
  }

  /** Run `work` once a thread is free (at most `threads` tasks at once, FIFO). */
  async #withThread<T>(work: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (this.#running >= this.#threads) {
      await new Promise<void>((resolve, reject) => {
        const wake = () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        };
        const onAbort = () => {
          const i = this.#waiting.indexOf(wake);
          if (i >= 0) this.#waiting.splice(i, 1);
          reject(new TaskCancelledError(this.#pool.name, signal?.reason));
        };
        signal?.addEventListener('abort', onAbort, { once: true });
        this.#waiting.push(wake);
      });
    }
    this.#running++;
    try {
      return await work();
    } finally {
      this.#running--;
      this.#waiting.shift()?.();
    }
  }

  #outcomeOf(trialId: number, error: unknown): TrialRunOutcome {
    if (error instanceof TaskTimeoutError) {
      return failed(
        error.code,
        `trial ${trialId} timed out after ${error.timeoutMs} ms; its thread was terminated`,
      );
    }
    if (error instanceof TaskCancelledError) return cancelled(trialId, error.reason);
    if (error instanceof WorkerCrashedError) {
      if ((error.cause as { code?: unknown } | undefined)?.code === OUT_OF_MEMORY) {
        const limit = this.#memoryLimitMb === undefined ? "Node's default" : `${this.#memoryLimitMb} MB`;
        return failed(
          TrainableErrorCodes.OUT_OF_MEMORY,
          `trial ${trialId} ran out of memory (heap limit per thread: ${limit}); its thread was terminated`,
        );
      }
      return failed(error.code, `trial ${trialId}: ${error.message}`);
    }
    if (error instanceof MabeamError) return failed(error.code, error.message);
    return failed(TrainableErrorCodes.FAILED, `trial ${trialId}: ${describe(error)}`);
  }
}

function failed(code: string, reason: string): TrialRunOutcome {
  return { status: 'failed', code, reason };
}

function cancelled(trialId: number, reason: unknown): TrialRunOutcome {
  return failed(TaskPoolErrorCodes.TASK_CANCELLED, `trial ${trialId} was cancelled: ${describe(reason)}`);
}

/** The main thread's end of a run's channel: calls the hooks in order and answers the worker. */
class Relay {
  readonly #port: MessagePort;
  readonly #hooks: TrialHooks;
  #chain: Promise<void> = Promise.resolve();
  #stopped = false;
  #failed = false;
  #lastStep = 0;

  constructor(port: MessagePort, hooks: TrialHooks) {
    this.#port = port;
    this.#hooks = hooks;
    port.on('message', (msg: TrialRequestMessage) => {
      this.#chain = this.#chain.then(() => this.#handle(msg));
    });
  }

  async #handle(msg: TrialRequestMessage): Promise<void> {
    let reply: TrialReplyMessage;
    try {
      if (this.#failed) {
        reply = { type: 'hook-error', seq: msg.seq, reason: 'an earlier hook failed' };
      } else if (msg.type === 'report') {
        // A report the worker sent before it heard "stop" is answered without the study.
        let decision: 'continue' | 'stop' = 'stop';
        if (!this.#stopped) {
          this.#lastStep = msg.metrics.step;
          decision = await this.#hooks.onReport(msg.metrics);
          if (decision !== 'continue' && decision !== 'stop') {
            throw new InvalidArgumentError('onReport result', 'must be "continue" or "stop"', decision);
          }
        }
        if (decision === 'stop') this.#stopped = true;
        reply = { type: 'reply', seq: msg.seq, decision };
      } else {
        await this.#hooks.onCheckpoint(msg.state, this.#lastStep);
        reply = { type: 'reply', seq: msg.seq };
      }
    } catch (error) {
      this.#failed = true;
      reply = {
        type: 'hook-error',
        seq: msg.seq,
        reason: error instanceof Error ? error.message : describe(error),
      };
    }
    // The port is closed once the run ended (a timeout, say): the answer has nobody to go to.
    try {
      this.#port.postMessage(reply);
    } catch {}
  }

  /** Resolves once every hook call started has finished. */
  idle(): Promise<void> {
    return this.#chain;
  }
}

// ---- checking without an executor -------------------------------------------------------------

/**
 * Check a trainable before a study starts, on a throwaway worker thread: throws TrainableError
 * (E_TRAINABLE_NOT_FOUND, E_TRAINABLE_LOAD_FAILED, E_TRAINABLE_NO_TRAIN with the module's exports
 * listed) or InvalidArgumentError for a malformed ref (or a malformed `objective` export). A
 * missing file is found without a thread. Resolves with what `TrialExecutor.check` finds.
 */
export async function checkTrainable(
  ref: TrainableRef,
  options: { timeoutMs?: number } = {},
): Promise<TrainableInfo> {
  const { module } = checkRef(ref);
  const path = new URL(module);
  if (!existsSync(path)) {
    throw new TrainableError(
      TrainableErrorCodes.NOT_FOUND,
      String(ref.module),
      `trainable module ${describe(String(ref.module))} does not exist`,
    );
  }
  const executor = await TrialExecutor.start({ threads: 1, name: 'tune-check' });
  try {
    return await executor.check(ref, options);
  } finally {
    await executor.close({ force: true });
  }
}
