/**
 * The worker-thread side of the trial executor: the task pool's worker module. One task runs one
 * trial (or checks a trainable module): it imports the trainable, calls `train(config, ctx)` and
 * turns whatever happens into a plain result, so a trainable's failure never kills its thread.
 *
 * `ctx.report` and `ctx.checkpoint` are requests over the trial's own MessagePort (transferred
 * with the task): each resolves when the main thread answers, with the scheduler's decision for a
 * report and once the state is stored for a checkpoint. After a "stop" decision the next report
 * throws a private StopSignal, which ends the run as "stopped" however the trainable is written.
 *
 * TypeScript trainables (.ts, .mts, .cts) are imported with tsx's `tsImport`, which loads them in
 * an ES-module package or a CommonJS one alike (tsx's ESM hooks alone leave a .ts file outside a
 * "type": "module" package to Node's CommonJS loader, which fails on it).
 */
import { existsSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { MessagePort } from 'node:worker_threads';
import { describe } from '../kernel/errors.js';
import type { Config, TrainContext, TrainFunction, TrialMetrics } from './types.js';

// ---- protocol (shared with executor.ts) --------------------------------------------------------

/** Error codes of trainables and trials (unique across mabeam, never reused). */
export const TrainableErrorCodes = {
  /** The trainable's module does not exist. */
  NOT_FOUND: 'E_TRAINABLE_NOT_FOUND',
  /** Importing the module threw (a syntax error, a missing dependency, a throw at top level). */
  LOAD_FAILED: 'E_TRAINABLE_LOAD_FAILED',
  /** The module has no function export of the expected name ("train" by default). */
  NO_TRAIN: 'E_TRAINABLE_NO_TRAIN',
  /** `train` threw or rejected; the reason is its message. */
  FAILED: 'E_TRAINABLE_FAILED',
  /** A report (or the returned metrics) had no valid step, a step that did not increase, or a non-numeric metric. */
  BAD_REPORT: 'E_TRAINABLE_BAD_REPORT',
  /** A checkpoint's state could not be copied to the main thread (not structured-clonable). */
  BAD_CHECKPOINT: 'E_TRAINABLE_BAD_CHECKPOINT',
  /** The trial's thread ran out of heap (the executor's memory limit) and was terminated. */
  OUT_OF_MEMORY: 'E_TRAINABLE_OUT_OF_MEMORY',
  /** The study's hook (onReport, onCheckpoint) threw: the run was ended. */
  HOOK_FAILED: 'E_TRIAL_HOOK_FAILED',
} as const;

export type TrainableErrorCode = (typeof TrainableErrorCodes)[keyof typeof TrainableErrorCodes];

/** How one run of a trial ended, as the worker (and then the executor) reports it. */
export type TrialRunOutcome =
  /** `train` returned; `metrics` is what it returned, if anything. */
  | { readonly status: 'completed'; readonly metrics?: TrialMetrics }
  /** The study decided to stop it (pruned, or a PBT exploit) and it stopped. */
  | { readonly status: 'stopped' }
  /** It failed: `code` says how (TrainableErrorCodes, or the task pool's E_TASK_*), `reason` why. */
  | { readonly status: 'failed'; readonly code: string; readonly reason: string };

/** A task that runs one trial. */
export interface TrialTask {
  readonly kind: 'trial';
  readonly trialId: number;
  readonly config: Config;
  /** The trainable module's file URL. */
  readonly module: string;
  readonly exportName: string;
  readonly params: Readonly<Record<string, unknown>>;
  readonly checkpoint: unknown;
  /** The trial's end of its channel (transferred). */
  readonly port: MessagePort;
}

/** A task that only imports a trainable and looks for its export. */
export interface CheckTask {
  readonly kind: 'check';
  readonly module: string;
  readonly exportName: string;
}

export type WorkerTask = TrialTask | CheckTask;

/**
 * What a check task finds: the module's export names, and its `space` and `objective` exports
 * when it has them (a user's trainable may ship its search space and objective).
 */
export type CheckResult =
  | {
      readonly ok: true;
      readonly exports: readonly string[];
      readonly space?: unknown;
      readonly objective?: unknown;
    }
  | { readonly ok: false; readonly code: TrainableErrorCode; readonly reason: string };

/** Worker -> main over a trial's port. */
export type TrialRequestMessage =
  | { readonly type: 'report'; readonly seq: number; readonly metrics: TrialMetrics }
  | { readonly type: 'checkpoint'; readonly seq: number; readonly state: unknown };

/** Main -> worker over a trial's port: the answer to request `seq`. */
export type TrialReplyMessage =
  | { readonly type: 'reply'; readonly seq: number; readonly decision?: 'continue' | 'stop' }
  | { readonly type: 'hook-error'; readonly seq: number; readonly reason: string };

/** File extensions that need tsx. */
export const TS_EXTENSION = /\.(?:[cm]?ts|tsx)$/i;

// ---- loading trainables ------------------------------------------------------------------------

/**
 * TypeScript modules imported so far in this thread, by file URL. `tsImport` registers its own
 * (namespaced) ESM and CommonJS hooks at each call and loads a fresh copy of the module, so each
 * module is imported once per thread, as `import()` does for JavaScript.
 */
const tsModules = new Map<string, Promise<Record<string, unknown>>>();

/**
 * Import a .ts/.mts/.cts module with tsx's `tsImport`: it loads TypeScript whatever the module's
 * package scope (a .ts file outside a package with "type": "module" goes through Node's CommonJS
 * loader, which tsx's ESM hooks alone do not cover). A failed import is not cached.
 */
function importTypeScript(href: string): Promise<Record<string, unknown>> {
  let loading = tsModules.get(href);
  if (loading === undefined) {
    loading = import('tsx/esm/api').then(
      ({ tsImport }) => tsImport(href, import.meta.url) as Promise<Record<string, unknown>>,
    );
    tsModules.set(href, loading);
    loading.catch(() => tsModules.delete(href));
  }
  return loading;
}

function messageOf(error: unknown): string {
  if (error instanceof Error) return error.message;
  return describe(error);
}

type Loaded =
  | { readonly ok: true; readonly train: TrainFunction; readonly module: Readonly<Record<string, unknown>> }
  | Extract<CheckResult, { ok: false }>;

/** Import a trainable module and find its train function, or say precisely why not. */
export async function loadTrainable(href: string, exportName: string): Promise<Loaded> {
  let path: string;
  try {
    path = fileURLToPath(href);
  } catch {
    return {
      ok: false,
      code: TrainableErrorCodes.NOT_FOUND,
      reason: `trainable module ${describe(href)} is not a file URL`,
    };
  }
  if (!existsSync(path) || !statSync(path).isFile()) {
    return {
      ok: false,
      code: TrainableErrorCodes.NOT_FOUND,
      reason: `trainable module ${path} does not exist`,
    };
  }
  let mod: Record<string, unknown>;
  try {
    mod = TS_EXTENSION.test(path)
      ? await importTypeScript(href)
      : ((await import(href)) as Record<string, unknown>);
  } catch (error) {
    return {
      ok: false,
      code: TrainableErrorCodes.LOAD_FAILED,
      reason: `trainable module ${path} failed to load: ${messageOf(error)}`,
    };
  }
  const train = mod[exportName];
  if (typeof train === 'function') return { ok: true, train: train as TrainFunction, module: mod };
  const exports = Object.keys(mod).sort();
  const listed = exports.length === 0 ? 'it exports nothing' : `its exports are ${exports.join(', ')}`;
  const hint =
    exportName !== 'default' && typeof mod.default === 'function'
      ? ` (its default export is a function: name it with exportName "default")`
      : '';
  const what = train === undefined ? 'has no export' : `exports a ${typeof train}, not a function, as`;
  return {
    ok: false,
    code: TrainableErrorCodes.NO_TRAIN,
    reason: `trainable module ${path} ${what} ${JSON.stringify(exportName)}; ${listed}${hint}`,
  };
}

// ---- metrics -----------------------------------------------------------------------------------

/**
 * Why `metrics` is not a valid report (after step `lastStep`), or null. Valid: an object with an
 * integer `step` >= 1 above `lastStep`, and only finite numbers.
 */
export function checkMetrics(metrics: unknown, lastStep: number): string | null {
  if (metrics === null || typeof metrics !== 'object' || Array.isArray(metrics)) {
    return `metrics must be an object like { step: 1, loss: 0.5 }, got ${describe(metrics)}`;
  }
  const m = metrics as Record<string, unknown>;
  const step = m.step;
  if (step === undefined) return 'metrics have no "step" (the training step: 1, 2, ...)';
  if (typeof step !== 'number' || !Number.isInteger(step) || step < 1) {
    return `metrics "step" must be an integer >= 1, got ${describe(step)}`;
  }
  if (step <= lastStep) return `metrics "step" must increase: got ${step} after ${lastStep}`;
  for (const [name, value] of Object.entries(m)) {
    if (typeof value !== 'number' || !Number.isFinite(value)) {
      return `metric ${JSON.stringify(name)} must be a finite number, got ${describe(value)}`;
    }
  }
  return null;
}

// ---- one trial ---------------------------------------------------------------------------------

/** Thrown by `report` after a stop decision; caught here, never seen by the study. */
class StopSignal extends Error {
  constructor() {
    super('the study stopped this trial');
    this.name = 'StopSignal';
  }
}

type Failed = Extract<TrialRunOutcome, { status: 'failed' }>;

/** One run's side of the channel: requests, their replies, and how the run must end. */
class TrialSession {
  readonly #port: MessagePort;
  readonly #pending = new Map<
    number,
    { resolve: (m: TrialReplyMessage) => void; reject: (e: Error) => void }
  >();
  readonly #inFlight = new Set<Promise<unknown>>();
  #seq = 0;
  #lastStep = 0;
  stopped = false;
  /** Set once the run must end as failed whatever the trainable does next. */
  fatal: Failed | null = null;
  readonly ctx: TrainContext;

  constructor(task: TrialTask) {
    this.#port = task.port;
    this.#port.on('message', (msg: TrialReplyMessage) => this.#onReply(msg));
    const session = this;
    const checkpoint = task.checkpoint;
    this.ctx = {
      trialId: task.trialId,
      params: task.params,
      report: (metrics) => session.#report(metrics),
      checkpoint: (state) => session.#checkpoint(state),
      restore: () => checkpoint,
      get shouldStop() {
        return session.stopped;
      },
    };
  }

  #fail(code: TrainableErrorCode, reason: string): Error {
    this.fatal ??= { status: 'failed', code, reason };
    return new Error(this.fatal.reason);
  }

  #report(metrics: TrialMetrics): Promise<void> {
    if (this.fatal !== null) return Promise.reject(new Error(this.fatal.reason));
    if (this.stopped) return Promise.reject(new StopSignal());
    const problem = checkMetrics(metrics, this.#lastStep);
    if (problem !== null) return Promise.reject(this.#fail(TrainableErrorCodes.BAD_REPORT, problem));
    this.#lastStep = metrics.step;
    return this.#request({ type: 'report', seq: 0, metrics: { ...metrics } }).then(() => undefined);
  }

  #checkpoint(state: unknown): Promise<void> {
    if (this.fatal !== null) return Promise.reject(new Error(this.fatal.reason));
    return this.#request({ type: 'checkpoint', seq: 0, state }).then(() => undefined);
  }

  #request(message: TrialRequestMessage): Promise<TrialReplyMessage> {
    const seq = ++this.#seq;
    const promise = new Promise<TrialReplyMessage>((resolve, reject) => {
      try {
        this.#port.postMessage({ ...message, seq });
      } catch (error) {
        const reason =
          message.type === 'checkpoint'
            ? `checkpoint state cannot be copied to the study (use plain objects, arrays, numbers, typed arrays): ${messageOf(error)}`
            : `report cannot be sent: ${messageOf(error)}`;
        reject(
          this.#fail(
            message.type === 'checkpoint'
              ? TrainableErrorCodes.BAD_CHECKPOINT
              : TrainableErrorCodes.BAD_REPORT,
            reason,
          ),
        );
        return;
      }
      this.#pending.set(seq, { resolve, reject });
    });
    const tracked = promise.then(
      () => {},
      () => {},
    );
    this.#inFlight.add(tracked);
    tracked.then(() => this.#inFlight.delete(tracked));
    return promise;
  }

  #onReply(msg: TrialReplyMessage): void {
    const pending = this.#pending.get(msg.seq);
    if (pending === undefined) return;
    this.#pending.delete(msg.seq);
    if (msg.type === 'hook-error') {
      pending.reject(
        this.#fail(TrainableErrorCodes.HOOK_FAILED, `the study failed to handle the trial: ${msg.reason}`),
      );
      return;
    }
    // Set before the report resolves, so `shouldStop` is current when the trainable resumes.
    if (msg.decision === 'stop') this.stopped = true;
    pending.resolve(msg);
  }

  /** Wait until every request the trainable made (awaited or not) has its answer. */
  async settle(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.all([...this.#inFlight]);
  }

  close(): void {
    this.#port.close();
  }

  /** The returned metrics, checked; or a failure. */
  finalMetrics(value: unknown): TrialRunOutcome {
    if (value === undefined || value === null) return { status: 'completed' };
    const problem = checkMetrics(value, 0);
    if (problem !== null) {
      return {
        status: 'failed',
        code: TrainableErrorCodes.BAD_REPORT,
        reason: `train returned bad metrics: ${problem}`,
      };
    }
    return { status: 'completed', metrics: { ...(value as TrialMetrics) } };
  }
}

async function runTrial(task: TrialTask): Promise<TrialRunOutcome> {
  const loaded = await loadTrainable(task.module, task.exportName);
  if (!loaded.ok) {
    task.port.close();
    return { status: 'failed', code: loaded.code, reason: loaded.reason };
  }
  const session = new TrialSession(task);
  try {
    let value: unknown;
    let thrown: { error: unknown } | null = null;
    try {
      value = await loaded.train(task.config, session.ctx);
    } catch (error) {
      thrown = { error };
    }
    await session.settle();
    if (session.fatal !== null) return session.fatal;
    if (session.stopped || thrown?.error instanceof StopSignal) return { status: 'stopped' };
    if (thrown !== null) {
      return { status: 'failed', code: TrainableErrorCodes.FAILED, reason: messageOf(thrown.error) };
    }
    return session.finalMetrics(value);
  } finally {
    session.close();
  }
}

/** The task pool's entry: run a trial, or check a trainable module. Never throws for the trainable's faults. */
export default async function runTask(task: WorkerTask): Promise<TrialRunOutcome | CheckResult> {
  if (task.kind === 'check') {
    const loaded = await loadTrainable(task.module, task.exportName);
    if (!loaded.ok) return loaded;
    const { space, objective } = loaded.module;
    const found = { ok: true as const, exports: Object.keys(loaded.module).sort() };
    try {
      // Copied here so that a value that cannot cross threads fails with its name.
      return {
        ...found,
        ...(space === undefined ? {} : { space: structuredClone(space) }),
        ...(objective === undefined ? {} : { objective: structuredClone(objective) }),
      };
    } catch (error) {
      return {
        ok: false,
        code: TrainableErrorCodes.LOAD_FAILED,
        reason: `trainable module ${fileURLToPath(task.module)} exports a "space" or "objective" that is not plain data: ${messageOf(error)}`,
      };
    }
  }
  return runTrial(task);
}
