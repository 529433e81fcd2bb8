/**
 * The study: the bookkeeping core of `mabeam tune`, and its ask/tell interface.
 *
 * A `Study` owns one search space, one sampler, one scheduler and the trial records; it turns the
 * user's objective into a loss for them (see types.ts) and, when given a store, persists every
 * step before it returns (so an acknowledged report, checkpoint or result survives a crash).
 * It is synchronous and single-threaded: `tune()` (tune.ts) drives it from one study agent,
 * and users who run their own loop drive it directly:
 *
 * ```ts
 * const study = Study.create({ space, objective: { metric: 'loss', mode: 'min' }, trials: 50 });
 * for (let t = study.ask(); t !== null; t = study.ask()) {
 *   study.tell(t.id, { metrics: { step: 1, loss: await evaluate(t.config) } });
 * }
 * study.best();
 * ```
 */
import { InvalidArgumentError, MabeamError } from '../kernel/index.js';
import {
  type Allocation,
  type AuctionAllocation,
  type AuctionAllocationOptions,
  checkAllocation,
} from './allocation.js';
import { Rng } from './random.js';
import { makeSampler, makeScheduler, type SamplerSpec, type SchedulerSpec } from './registry.js';
import { checkSpace } from './space.js';
import type {
  Config,
  Decision,
  LineageEntry,
  Sampler,
  Scheduler,
  SearchSpace,
  TrainableRef,
  TrialMetrics,
  TrialRecord,
  TrialState,
} from './types.js';

// ---- errors ------------------------------------------------------------------------------------

/** Error codes of the study (unique across mabeam, never reused). */
export const StudyErrorCodes = {
  /** A trial id the study never handed out. */
  UNKNOWN_TRIAL: 'E_TUNE_TRIAL_UNKNOWN',
  /** A report, checkpoint or result for a trial that is not running (it ended, or never started). */
  TRIAL_NOT_RUNNING: 'E_TUNE_TRIAL_NOT_RUNNING',
  /** A report without the objective's metric, with a non-finite metric, or with a bad step. */
  BAD_REPORT: 'E_TUNE_BAD_REPORT',
} as const;

export class UnknownTrialError extends MabeamError {
  readonly trialId: number;
  constructor(trialId: number, count: number) {
    super(
      StudyErrorCodes.UNKNOWN_TRIAL,
      `trial ${trialId} does not exist (the study has trials 0 to ${count - 1})`,
    );
    this.trialId = trialId;
  }
}

export class TrialNotRunningError extends MabeamError {
  readonly trialId: number;
  readonly state: TrialState;
  constructor(trialId: number, state: TrialState, what: string) {
    super(StudyErrorCodes.TRIAL_NOT_RUNNING, `cannot ${what} trial ${trialId}: it is ${state}, not running`);
    this.trialId = trialId;
    this.state = state;
  }
}

export class BadReportError extends MabeamError {
  readonly trialId: number;
  constructor(trialId: number, problem: string) {
    super(StudyErrorCodes.BAD_REPORT, `bad report from trial ${trialId}: ${problem}`);
    this.trialId = trialId;
  }
}

// ---- options -----------------------------------------------------------------------------------

/** What to optimize: a reported metric, minimized or maximized. */
export interface Objective {
  readonly metric: string;
  readonly mode: 'min' | 'max';
}

/** The persistent description of a study (what storage keeps and a resume rebuilds from). */
export interface StudySpec {
  readonly space: SearchSpace;
  readonly objective: Objective;
  readonly sampler: SamplerSpec;
  readonly scheduler: SchedulerSpec;
  /** How many trials to run in all. */
  readonly trials: number;
  /** How many run at once (tune() only; the ask/tell user decides for themselves). */
  readonly concurrency: number;
  readonly seed: number;
  /** The trainable (tune() only). */
  readonly trainable?: TrainableRef;
  /** How tune() gives worker slots to trials (allocation.ts). Absent: fifo. */
  readonly allocation?: Allocation;
  /** Auction allocation's settings, defaults filled in (with `allocation: 'auction'` only). */
  readonly auction?: AuctionAllocation;
}

/**
 * Where a study persists. StudyStorage (storage.ts) implements it over SQLite; every method is a
 * committed write (or a read) by the time it returns.
 */
export interface StudyStore {
  trialStarted(study: string, id: number, config: Config): void;
  report(study: string, id: number, metrics: TrialMetrics): void;
  checkpoint(study: string, id: number, step: number, state: unknown): void;
  latestCheckpoint(study: string, id: number): { step: number; state: unknown } | undefined;
  exploit(study: string, id: number, entry: LineageEntry): void;
  trialEnded(study: string, id: number, state: TrialState, best: number | null, error: string | null): void;
  finishStudy(study: string): void;
  /**
   * Drop a running trial's reports after `step` (its last checkpoint), so that the steps it
   * reports again when it continues from there are not stored twice. Returns how many it dropped.
   */
  rewindTrial?(study: string, id: number, step: number): number;
}

/** Options of Study.create. Everything but `space` and `objective` has a default. */
export interface StudyOptions {
  readonly space: SearchSpace;
  readonly objective: Objective;
  /** Default TPE with its default options. */
  readonly sampler?: SamplerSpec;
  /** Default FIFO (every trial runs to its end). */
  readonly scheduler?: SchedulerSpec;
  /** Default 100. */
  readonly trials?: number;
  /** Default 1. */
  readonly concurrency?: number;
  /** Default 0. */
  readonly seed?: number;
  readonly trainable?: TrainableRef;
  /**
   * How tune() gives its `concurrency` worker slots to trials: `fifo` (default: a trial keeps its
   * slot from start to end) or `auction` (trials bid for leases of compute; allocation.ts).
   */
  readonly allocation?: Allocation;
  /** Options of auction allocation (with `allocation: 'auction'` only). */
  readonly auction?: AuctionAllocationOptions;
}

/** A trial handed out by `ask`: run `config`, starting from `checkpoint` when there is one. */
export interface AskedTrial {
  readonly id: number;
  readonly config: Config;
  /** The state to restore (an interrupted trial continued after a resume), or undefined. */
  readonly checkpoint: unknown;
}

/** How a trial ended, as its runner tells the study. */
export type TrialOutcome =
  /** It ran to its end; `metrics`, if given, is its final report (added unless already reported). */
  | { readonly state: 'completed'; readonly metrics?: TrialMetrics }
  /** The scheduler stopped it. */
  | { readonly state: 'pruned' }
  /** It threw, timed out or ran out of memory. */
  | { readonly state: 'failed'; readonly error: string };

/** The best trial so far. */
export interface BestTrial {
  readonly trialId: number;
  readonly config: Config;
  /** The objective metric's best value (the user's mode). */
  readonly value: number;
}

/** Counts of trials by state, and the best. */
export interface StudySummary {
  readonly trials: number;
  readonly completed: number;
  readonly pruned: number;
  readonly failed: number;
  readonly running: number;
  readonly best: BestTrial | null;
}

const DEFAULT_SAMPLER: SamplerSpec = { name: 'tpe' };
const DEFAULT_SCHEDULER: SchedulerSpec = { name: 'fifo' };

function checkObjective(objective: unknown): Objective {
  const o = objective as Partial<Objective> | null;
  if (o === null || typeof o !== 'object') {
    throw new InvalidArgumentError('study option "objective"', 'must be {metric, mode}', objective);
  }
  if (typeof o.metric !== 'string' || o.metric === '' || o.metric === 'step') {
    throw new InvalidArgumentError(
      'study objective "metric"',
      'must be the name of a reported metric (not "step")',
      o.metric,
    );
  }
  if (o.mode !== 'min' && o.mode !== 'max') {
    throw new InvalidArgumentError('study objective "mode"', 'must be "min" or "max"', o.mode);
  }
  return { metric: o.metric, mode: o.mode };
}

function positiveInt(name: string, value: unknown, fallback: number): number {
  const v = value ?? fallback;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) {
    throw new InvalidArgumentError(`study option "${name}"`, 'must be a whole number >= 1', value);
  }
  return v;
}

/** Validate study options and fill in the defaults. Throws before any work starts. */
export function checkStudyOptions(options: StudyOptions): StudySpec {
  if (options === null || typeof options !== 'object') {
    throw new InvalidArgumentError('study options', 'must be an object', options);
  }
  const seed = options.seed ?? 0;
  if (typeof seed !== 'number' || !Number.isSafeInteger(seed)) {
    throw new InvalidArgumentError('study option "seed"', 'must be a safe integer', options.seed);
  }
  const base: StudySpec = {
    space: checkSpace(options.space),
    objective: checkObjective(options.objective),
    sampler: options.sampler ?? DEFAULT_SAMPLER,
    scheduler: options.scheduler ?? DEFAULT_SCHEDULER,
    trials: positiveInt('trials', options.trials, 100),
    concurrency: positiveInt('concurrency', options.concurrency, 1),
    seed,
    ...(options.trainable === undefined ? {} : { trainable: options.trainable }),
  };
  const auction = checkAllocation(options.allocation, options.auction, base);
  const spec: StudySpec = {
    ...base,
    ...(options.allocation === undefined ? {} : { allocation: options.allocation }),
    ...(auction === undefined ? {} : { auction }),
  };
  // Building them validates their names and options now, not at the first ask.
  makeSampler(spec.sampler, spec.space, seed);
  makeScheduler(spec.scheduler, spec.space, seed);
  return spec;
}

// ---- the study ---------------------------------------------------------------------------------

/** A persisted study: a store and the study's name in it. */
export interface Persistence {
  readonly store: StudyStore;
  readonly name: string;
}

export class Study {
  readonly spec: StudySpec;
  readonly #sampler: Sampler;
  readonly #scheduler: Scheduler;
  readonly #trials: TrialRecord[] = [];
  readonly #persist: Persistence | undefined;
  /** Interrupted trials of a resumed study, handed out by `ask` before any new one. */
  readonly #toContinue: number[] = [];
  /** Checkpoints kept in memory when there is no store (the latest per trial). */
  readonly #checkpoints = new Map<number, { step: number; state: unknown }>();
  #samplerDone = false;
  #best: BestTrial | null = null;

  private constructor(spec: StudySpec, persist: Persistence | undefined, samplerSeed: number) {
    this.spec = spec;
    this.#persist = persist;
    this.#sampler = makeSampler(spec.sampler, spec.space, samplerSeed);
    this.#scheduler = makeScheduler(spec.scheduler, spec.space, spec.seed);
  }

  /** A new study. With `persist`, the caller has created the study in the store already. */
  static create(options: StudyOptions, persist?: Persistence): Study {
    return new Study(checkStudyOptions(options), persist, options.seed ?? 0);
  }

  /**
   * Rebuild a study from its stored spec and trials: finished trials are told to the sampler and
   * replayed through the scheduler (never re-run); trials that were running when the process died
   * are handed out again by `ask`, with their latest checkpoint, before any new trial.
   */
  static resume(spec: StudySpec, trials: readonly TrialRecord[], persist: Persistence): Study {
    checkStudyOptions(spec);
    // A resumed sampler must not replay the asks of the first run (it would propose the same
    // configurations again): it is seeded from the seed and the number of trials already asked.
    const samplerSeed = new Rng(spec.seed).fork().int(0, 2 ** 31) + trials.length * 7919;
    const study = new Study(spec, persist, samplerSeed);
    const sorted = [...trials].sort((a, b) => a.id - b.id);
    for (const t of sorted) study.#restore(t);
    // The scheduler sees the stored reports step by step across trials (every trial's first
    // step, then every second...): the order in which a concurrent study reached its rungs, as
    // near as the records tell, so ASHA's rungs are rebuilt as they were. Decisions are ignored:
    // they were taken (and recorded) in the first run.
    const maxReports = Math.max(0, ...sorted.map((t) => t.reports.length));
    for (let i = 0; i < maxReports; i++) {
      for (const t of sorted) {
        const m = t.reports[i];
        const v = m?.[spec.objective.metric];
        if (m !== undefined && typeof v === 'number' && Number.isFinite(v)) {
          study.#scheduler.onReport(t.id, m.step, study.#loss(v));
        }
      }
    }
    for (const t of sorted) study.#settle(study.#get(t.id));
    return study;
  }

  #restore(stored: TrialRecord): void {
    if (stored.id !== this.#trials.length) {
      throw new InvalidArgumentError(
        'stored trials',
        `ids must run 0, 1, 2... (found ${stored.id} at ${this.#trials.length})`,
      );
    }
    let reports = stored.reports;
    let best = stored.best;
    if ((stored.state === 'running' || stored.state === 'pending') && this.#persist !== undefined) {
      // An interrupted trial continues from its last checkpoint: what it reported after that
      // checkpoint is dropped (it will be reported again), here and in the store.
      const { store, name } = this.#persist;
      const from = store.latestCheckpoint(name, stored.id)?.step ?? 0;
      if (reports.some((m) => m.step > from)) {
        store.rewindTrial?.(name, stored.id, from);
        reports = reports.filter((m) => m.step <= from);
        best = null;
        for (const m of reports) {
          const v = m[this.spec.objective.metric];
          if (
            typeof v === 'number' &&
            (best === null || (this.spec.objective.mode === 'min' ? v < best : v > best))
          ) {
            best = v;
          }
        }
      }
    }
    const record: TrialRecord = { ...stored, best, reports: [...reports], lineage: [...stored.lineage] };
    this.#trials.push(record);
    this.#scheduler.onTrialAdd(record.id, record.initialConfig);
  }

  /** After the replay: finished trials are told; interrupted ones wait for `ask`. */
  #settle(record: TrialRecord): void {
    if (record.state === 'running' || record.state === 'pending') {
      record.state = 'pending';
      this.#toContinue.push(record.id);
      return;
    }
    this.#finish(record, record.state, false);
  }

  #loss(value: number): number {
    return this.spec.objective.mode === 'min' ? value : -value;
  }

  #get(id: number): TrialRecord {
    const t = Number.isInteger(id) ? this.#trials[id] : undefined;
    if (t === undefined) throw new UnknownTrialError(id, this.#trials.length);
    return t;
  }

  #running(id: number, what: string): TrialRecord {
    const t = this.#get(id);
    if (t.state !== 'running') throw new TrialNotRunningError(id, t.state, what);
    return t;
  }

  /**
   * The next trial to run, or null when the study has handed out all its trials (or its sampler
   * has no more configurations, as a finished grid). Marks the trial running.
   */
  ask(): AskedTrial | null {
    const again = this.#toContinue.shift();
    if (again !== undefined) {
      const t = this.#get(again);
      t.state = 'running';
      t.startedAt ??= Date.now();
      this.#persist?.store.trialStarted(this.#persist.name, t.id, t.config);
      return { id: t.id, config: t.config, checkpoint: this.latestCheckpoint(t.id)?.state };
    }
    if (this.#samplerDone || this.#trials.length >= this.spec.trials) return null;
    const config = this.#sampler.ask();
    if (config === null) {
      this.#samplerDone = true;
      return null;
    }
    const id = this.#trials.length;
    const record: TrialRecord = {
      id,
      state: 'running',
      initialConfig: config,
      config,
      reports: [],
      best: null,
      error: null,
      lineage: [],
      startedAt: Date.now(),
      endedAt: null,
    };
    this.#trials.push(record);
    this.#persist?.store.trialStarted(this.#persist.name, id, config);
    this.#scheduler.onTrialAdd(id, config);
    return { id, config, checkpoint: undefined };
  }

  /**
   * Record a report of a running trial and return the scheduler's decision. The report must
   * carry the objective's metric as a finite number and a whole `step` >= 1. A PBT exploit is
   * recorded here (lineage, new config); the caller restarts the trial from the donor's checkpoint.
   */
  report(id: number, metrics: TrialMetrics): Decision {
    const t = this.#running(id, 'report for');
    const { metric } = this.spec.objective;
    if (metrics === null || typeof metrics !== 'object')
      throw new BadReportError(id, 'metrics must be an object');
    if (!Number.isSafeInteger(metrics.step) || metrics.step < 1) {
      throw new BadReportError(id, `"step" must be a whole number >= 1 (got ${String(metrics.step)})`);
    }
    const value = metrics[metric];
    if (typeof value !== 'number' || !Number.isFinite(value)) {
      const has = Object.keys(metrics).join(', ');
      throw new BadReportError(
        id,
        value === undefined
          ? `it has no metric "${metric}" (it has: ${has})`
          : `metric "${metric}" must be a finite number (got ${String(value)})`,
      );
    }
    const copy = { ...metrics } as TrialMetrics;
    t.reports.push(copy);
    this.#persist?.store.report(this.#persist.name, id, copy);
    this.#noteValue(t, value);
    const decision = this.#scheduler.onReport(id, metrics.step, this.#loss(value));
    if (decision.action === 'exploit') {
      const entry: LineageEntry = { step: metrics.step, donor: decision.donor, config: decision.config };
      t.lineage.push(entry);
      t.config = decision.config;
      this.#persist?.store.exploit(this.#persist.name, id, entry);
    }
    return decision;
  }

  #noteValue(t: TrialRecord, value: number): void {
    const better = (a: number, b: number) => (this.spec.objective.mode === 'min' ? a < b : a > b);
    if (t.best === null || better(value, t.best)) t.best = value;
    if (this.#best === null || better(value, this.#best.value)) {
      this.#best = { trialId: t.id, config: t.config, value };
    }
  }

  /** Store a running trial's checkpoint (the latest one per trial is kept). */
  checkpoint(id: number, step: number, state: unknown): void {
    this.#running(id, 'checkpoint');
    if (this.#persist !== undefined) this.#persist.store.checkpoint(this.#persist.name, id, step, state);
    else this.#checkpoints.set(id, { step, state });
  }

  /** A trial's latest checkpoint, or undefined. */
  latestCheckpoint(id: number): { step: number; state: unknown } | undefined {
    this.#get(id);
    return this.#persist !== undefined
      ? this.#persist.store.latestCheckpoint(this.#persist.name, id)
      : this.#checkpoints.get(id);
  }

  /** A trial ended. Tells the sampler (completed and pruned trials) and the scheduler. */
  tell(id: number, outcome: TrialOutcome): void {
    const t = this.#running(id, 'end');
    if (outcome.state === 'completed' && outcome.metrics !== undefined) {
      const last = t.reports[t.reports.length - 1];
      if (last === undefined || last.step !== outcome.metrics.step) this.report(id, outcome.metrics);
    }
    if (outcome.state === 'completed' && t.reports.length === 0) {
      this.#finish(t, 'failed', true, `it completed without reporting "${this.spec.objective.metric}"`);
      return;
    }
    this.#finish(t, outcome.state, true, outcome.state === 'failed' ? outcome.error : null);
  }

  #finish(t: TrialRecord, state: TrialState, live: boolean, error: string | null = t.error): void {
    t.state = state;
    t.error = error;
    if (live) t.endedAt = Date.now();
    const loss = t.best === null ? null : this.#loss(t.best);
    if (!live && t.best !== null) this.#noteValue(t, t.best);
    if (state === 'completed' || state === 'pruned' || state === 'failed') {
      this.#scheduler.onTrialEnd(t.id, state, loss);
      if (loss !== null && state !== 'failed') this.#sampler.tell(t.initialConfig, loss, state);
    }
    if (live) this.#persist?.store.trialEnded(this.#persist.name, t.id, state, t.best, error);
  }

  /** True when every trial has been handed out (or the sampler ran dry) and none is running. */
  get done(): boolean {
    const exhausted = this.#samplerDone || this.#trials.length >= this.spec.trials;
    return exhausted && this.#toContinue.length === 0 && this.#trials.every((t) => t.state !== 'running');
  }

  /** Mark the study finished in its store. */
  finish(): void {
    this.#persist?.store.finishStudy(this.#persist.name);
  }

  /** The best trial so far (by the objective, over every report), or null. */
  best(): BestTrial | null {
    return this.#best;
  }

  /** The trial records, by id (live objects: read, do not change). */
  trials(): readonly TrialRecord[] {
    return this.#trials;
  }

  /** Counts by state and the best trial. */
  summary(): StudySummary {
    let completed = 0;
    let pruned = 0;
    let failed = 0;
    let running = 0;
    for (const t of this.#trials) {
      if (t.state === 'completed') completed++;
      else if (t.state === 'pruned') pruned++;
      else if (t.state === 'failed') failed++;
      else if (t.state === 'running') running++;
    }
    return { trials: this.#trials.length, completed, pruned, failed, running, best: this.#best };
  }
}
