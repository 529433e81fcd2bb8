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

/**
 * Where a stored report is: its trial, and its position in that trial's `reports`. A study's
 * reports in the order they arrived (across trials) are a list of these (`StoredStudy.reportOrder`).
 */
export interface ReportPosition {
  readonly trial: number;
  readonly index: number;
}

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
  /** A configuration the sampler gave whose trial the store failed to start: the next ask's. */
  #unstarted: Config | null = null;
  #samplerDone = false;
  #best: BestTrial | null = null;

  private constructor(
    spec: StudySpec,
    persist: Persistence | undefined,
    sampler: Sampler,
    scheduler: Scheduler,
  ) {
    this.spec = spec;
    this.#persist = persist;
    this.#sampler = sampler;
    this.#scheduler = scheduler;
  }

  /** A new study. With `persist`, the caller has created the study in the store already. */
  static create(options: StudyOptions, persist?: Persistence): Study {
    const spec = checkStudyOptions(options);
    return new Study(
      spec,
      persist,
      makeSampler(spec.sampler, spec.space, spec.seed),
      makeScheduler(spec.scheduler, spec.space, spec.seed),
    );
  }

  /**
   * Rebuild a study from its stored spec and trials. Finished trials are never re-run; trials
   * that were running when the process died are handed out again by `ask`, with their latest
   * checkpoint, before any new trial (what they reported after that checkpoint is dropped, here
   * and in the store: they report it again).
   *
   * The sampler: a grid is rebuilt with the study's seed and skips the points already handed out
   * (one per stored trial), so no point runs twice and an exhausted grid stays exhausted; other
   * samplers (continuous configurations) are seeded anew from the seed and the number of trials
   * asked, so they do not propose the first run's configurations again. Either way the sampler is
   * told every finished (completed or pruned) trial, as it was in the first run.
   *
   * The scheduler is rebuilt by replaying the stored reports (see `replayScheduler`) in `order`,
   * the order they arrived in (`StoredStudy.reportOrder`: every report of `trials` once, each
   * trial's in their order; InvalidArgumentError otherwise), or, without it (null or absent), in
   * a guessed order (see `stepMajor`). Its decisions are ignored (they were taken, and recorded, in
   * the first run), and no decision of the replay binds an interrupted trial.
   */
  static resume(
    spec: StudySpec,
    trials: readonly TrialRecord[],
    persist: Persistence,
    order?: readonly ReportPosition[] | null,
  ): Study {
    checkStudyOptions(spec);
    const sorted = [...trials].sort((a, b) => a.id - b.id);
    if (order !== undefined && order !== null) checkReportOrder(order, sorted);
    const restored = sorted.map((t, i) => restoreRecord(spec, t, i, persist));
    const records = restored.map((r) => r.record);
    const interrupted = (t: TrialRecord) => t.state === 'running' || t.state === 'pending';
    const arrived =
      order === undefined || order === null
        ? null
        : arrivals(
            spec,
            order.filter((p) => restored[p.trial]?.kept(p.index) === true),
            sorted,
          );
    const { sampler, exhausted } = resumedSampler(spec, records.length);
    const study = new Study(spec, persist, sampler, replayScheduler(spec, records, interrupted, arrived));
    study.#samplerDone = exhausted;
    for (const t of records) {
      study.#trials.push(t);
      const best = bestOf(spec.objective, t);
      if (best !== null) study.#noteBest(t.id, best.config, best.value);
      if (interrupted(t)) {
        t.state = 'pending';
        study.#toContinue.push(t.id);
      } else if (t.state === 'completed' || t.state === 'pruned') {
        study.#tellSampler(t, t.state);
      }
    }
    return study;
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
   * has no more configurations, as a finished grid). Marks the trial running (in the store first:
   * if the store fails, the study is as before and the next ask hands out the same trial).
   */
  ask(): AskedTrial | null {
    const again = this.#toContinue[0];
    if (again !== undefined) {
      const t = this.#get(again);
      this.#persist?.store.trialStarted(this.#persist.name, t.id, t.config);
      this.#toContinue.shift();
      t.state = 'running';
      t.startedAt ??= Date.now();
      return { id: t.id, config: t.config, checkpoint: this.latestCheckpoint(t.id)?.state };
    }
    if (this.#samplerDone || this.#trials.length >= this.spec.trials) return null;
    const config = this.#unstarted ?? this.#sampler.ask();
    if (config === null) {
      this.#samplerDone = true;
      return null;
    }
    const id = this.#trials.length;
    this.#unstarted = config;
    this.#persist?.store.trialStarted(this.#persist.name, id, config);
    this.#unstarted = null;
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
    this.#scheduler.onTrialAdd(id, config);
    return { id, config, checkpoint: undefined };
  }

  /**
   * Record a report of a running trial and return the scheduler's decision. The report must
   * carry the objective's metric as a finite number and a whole `step` >= 1 (BadReportError
   * otherwise, and nothing changes). A PBT exploit is recorded here (lineage, new config); the
   * caller restarts the trial from the donor's checkpoint. The store is written before the study's
   * memory changes, so a failed write (an error other than BadReportError) leaves the study as
   * the store has it.
   */
  report(id: number, metrics: TrialMetrics): Decision {
    const t = this.#running(id, 'report for');
    const value = this.#check(id, metrics);
    const copy = { ...metrics } as TrialMetrics;
    this.#persist?.store.report(this.#persist.name, id, copy);
    t.reports.push(copy);
    this.#noteValue(t, value);
    const decision = this.#scheduler.onReport(id, metrics.step, this.#loss(value));
    if (decision.action === 'exploit') {
      const entry: LineageEntry = { step: metrics.step, donor: decision.donor, config: decision.config };
      this.#persist?.store.exploit(this.#persist.name, id, entry);
      t.lineage.push(entry);
      t.config = decision.config;
    }
    return decision;
  }

  /** The objective's value in a report, or BadReportError naming what is wrong with it. */
  #check(id: number, metrics: TrialMetrics): number {
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
    return value;
  }

  #noteValue(t: TrialRecord, value: number): void {
    if (t.best === null || better(this.spec.objective, value, t.best)) t.best = value;
    this.#noteBest(t.id, t.config, value);
  }

  #noteBest(trialId: number, config: Config, value: number): void {
    if (this.#best === null || better(this.spec.objective, value, this.#best.value)) {
      this.#best = { trialId, config, value };
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

  /**
   * A trial ended. Tells the sampler (completed and pruned trials) and the scheduler. A completed
   * trial's final `metrics` that are not a valid report (no objective metric, say) fail the
   * trial with the report's problem, as does a trial that completed without any report.
   */
  tell(id: number, outcome: TrialOutcome): void {
    const t = this.#running(id, 'end');
    if (outcome.state === 'completed' && outcome.metrics !== undefined) {
      const last = t.reports[t.reports.length - 1];
      if (last === undefined || last.step !== outcome.metrics.step) {
        try {
          this.report(id, outcome.metrics);
        } catch (error) {
          if (!(error instanceof BadReportError)) throw error;
          this.#finish(t, 'failed', `its final metrics are not a valid report: ${error.message}`);
          return;
        }
      }
    }
    if (outcome.state === 'completed' && t.reports.length === 0) {
      this.#finish(t, 'failed', `it completed without reporting "${this.spec.objective.metric}"`);
      return;
    }
    this.#finish(t, outcome.state, outcome.state === 'failed' ? outcome.error : null);
  }

  /** A running trial ended: the store first, then the records, the scheduler and the sampler. */
  #finish(t: TrialRecord, state: 'completed' | 'pruned' | 'failed', error: string | null): void {
    this.#persist?.store.trialEnded(this.#persist.name, t.id, state, t.best, error);
    t.state = state;
    t.error = error;
    t.endedAt = Date.now();
    this.#scheduler.onTrialEnd(t.id, state, t.best === null ? null : this.#loss(t.best));
    if (state !== 'failed') this.#tellSampler(t, state);
  }

  /**
   * Tell the sampler how a finished trial's initial configuration did: its best loss before its
   * first PBT exploit (after it, the trial trained on a donor's weights with another
   * configuration, which says nothing of its own). Nothing if it has no such loss.
   */
  #tellSampler(t: TrialRecord, state: 'completed' | 'pruned'): void {
    const value = bestBeforeExploit(this.spec.objective, t);
    if (value !== null) this.#sampler.tell(t.initialConfig, this.#loss(value), state);
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

  /**
   * The study's scheduler (the live object: inspect it, as ASHA's `rungs()`, but do not call its
   * `on*` methods, which the study calls).
   */
  scheduler(): Scheduler {
    return this.#scheduler;
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

// ---- resume ------------------------------------------------------------------------------------

/** True when `a` is a better value of the objective than `b`. */
function better(objective: Objective, a: number, b: number): boolean {
  return objective.mode === 'min' ? a < b : a > b;
}

/** A report's objective value, if it is a finite number. */
function objectiveValue(objective: Objective, m: TrialMetrics): number | undefined {
  const v = m[objective.metric];
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

/**
 * A trial's best report and the configuration it ran with then: the initial one, then each PBT
 * exploit's from the report that triggered it on (within one run steps increase, so the report
 * whose step is the exploit's is the one that triggered it).
 */
function bestOf(objective: Objective, t: TrialRecord): { value: number; config: Config } | null {
  let config = t.initialConfig;
  let exploits = 0;
  let best: { value: number; config: Config } | null = null;
  for (const m of t.reports) {
    const v = objectiveValue(objective, m);
    if (v !== undefined && (best === null || better(objective, v, best.value))) best = { value: v, config };
    const entry = t.lineage[exploits];
    if (entry !== undefined && m.step === entry.step) {
      config = entry.config;
      exploits++;
    }
  }
  return best;
}

/** A trial's best value up to and including the report that triggered its first exploit. */
function bestBeforeExploit(objective: Objective, t: TrialRecord): number | null {
  const first = t.lineage[0];
  if (first === undefined) return t.best;
  let best: number | null = null;
  for (const m of t.reports) {
    const v = objectiveValue(objective, m);
    if (v !== undefined && (best === null || better(objective, v, best))) best = v;
    if (m.step === first.step) break;
  }
  return best;
}

/**
 * A stored trial as the resumed study holds it, and which of its stored reports (by position) it
 * kept. An interrupted one (running or pending) is rewound to its latest checkpoint: its later
 * reports are dropped, in the store too (rewindTrial).
 */
function restoreRecord(
  spec: StudySpec,
  stored: TrialRecord,
  index: number,
  persist: Persistence,
): { record: TrialRecord; kept: (index: number) => boolean } {
  if (stored.id !== index) {
    throw new InvalidArgumentError(
      'stored trials',
      `ids must run 0, 1, 2... (found ${stored.id} at ${index})`,
    );
  }
  let reports = stored.reports;
  let best = stored.best;
  let kept = (_index: number) => true;
  if (stored.state === 'running' || stored.state === 'pending') {
    const { store, name } = persist;
    const from = store.latestCheckpoint(name, stored.id)?.step ?? 0;
    const all = stored.reports;
    kept = (i: number) => (all[i]?.step ?? Number.POSITIVE_INFINITY) <= from;
    if (reports.some((m) => m.step > from)) {
      store.rewindTrial?.(name, stored.id, from);
      reports = reports.filter((m) => m.step <= from);
    }
    best = null;
    for (const m of reports) {
      const v = objectiveValue(spec.objective, m);
      if (v !== undefined && (best === null || better(spec.objective, v, best))) best = v;
    }
  }
  return { record: { ...stored, best, reports: [...reports], lineage: [...stored.lineage] }, kept };
}

/**
 * The sampler of a resumed study that asked `asked` configurations already. A grid restarts from
 * the study's seed and skips the points handed out; other samplers are seeded anew (their
 * configurations are continuous: the first run's sequence would only propose them again).
 */
function resumedSampler(spec: StudySpec, asked: number): { sampler: Sampler; exhausted: boolean } {
  if (spec.sampler.name === 'grid') {
    const sampler = makeSampler(spec.sampler, spec.space, spec.seed);
    for (let i = 0; i < asked; i++) {
      if (sampler.ask() === null) return { sampler, exhausted: true };
    }
    return { sampler, exhausted: (sampler as { remaining?: unknown }).remaining === 0 };
  }
  const seed = new Rng(spec.seed).fork().int(0, 2 ** 31) + asked * 7919;
  return { sampler: makeSampler(spec.sampler, spec.space, seed), exhausted: false };
}

/** One report to replay. */
interface Replayed {
  readonly id: number;
  readonly step: number;
  readonly loss: number;
}

/**
 * Check that `order` lists every report of `trials` (sorted by id) exactly once, each trial's in
 * their order (a trial's n-th report arrived after its (n-1)-th); InvalidArgumentError naming the
 * first entry that does not.
 */
function checkReportOrder(order: readonly ReportPosition[], trials: readonly TrialRecord[]): void {
  if (!Array.isArray(order)) {
    throw new InvalidArgumentError('report order', 'must be an array of {trial, index}', order);
  }
  const byId = new Map(trials.map((t) => [t.id, t]));
  const next = new Map<number, number>();
  order.forEach((p, i) => {
    const where = `report order entry ${i}`;
    if (
      p === null ||
      typeof p !== 'object' ||
      !Number.isSafeInteger(p.trial) ||
      !Number.isSafeInteger(p.index)
    ) {
      throw new InvalidArgumentError(where, 'must be {trial, index} with whole numbers', p);
    }
    const t = byId.get(p.trial);
    if (t === undefined) {
      throw new InvalidArgumentError(
        where,
        `names trial ${p.trial}, which is not among the stored trials`,
        p,
      );
    }
    if (p.index < 0 || p.index >= t.reports.length) {
      throw new InvalidArgumentError(
        where,
        `names report ${p.index} of trial ${p.trial}, which has ${t.reports.length} reports`,
        p,
      );
    }
    const expected = next.get(p.trial) ?? 0;
    if (p.index !== expected) {
      throw new InvalidArgumentError(
        where,
        `names report ${p.index} of trial ${p.trial} where its report ${expected} was due ` +
          "(each report once, each trial's in their order)",
        p,
      );
    }
    next.set(p.trial, expected + 1);
  });
  for (const t of trials) {
    const listed = next.get(t.id) ?? 0;
    if (listed !== t.reports.length) {
      throw new InvalidArgumentError(
        'report order',
        `lists ${listed} of the ${t.reports.length} reports of trial ${t.id}: it must list every stored report`,
      );
    }
  }
}

/**
 * The reports at `positions` (of the stored `trials`, sorted by id), in that order, as the replay
 * feeds them; a report without a finite objective value is skipped, as the first run refused it.
 */
function arrivals(
  spec: StudySpec,
  positions: readonly ReportPosition[],
  trials: readonly TrialRecord[],
): Replayed[] {
  const out: Replayed[] = [];
  for (const p of positions) {
    const m = trials[p.trial]?.reports[p.index];
    const v = m === undefined ? undefined : objectiveValue(spec.objective, m);
    if (m !== undefined && v !== undefined) {
      out.push({ id: p.trial, step: m.step, loss: spec.objective.mode === 'min' ? v : -v });
    }
  }
  return out;
}

/**
 * Reports of several trials in the order a replay feeds them when their arrival order is unknown
 * (a study written by schema version 1 storage, or a caller without it): step by step across the
 * trials (every trial's first report, then every second...), and within one round the worse
 * losses first. This is the arrival of concurrent trials as near as the records tell, and
 * worse-first makes each arrival the best its rung has seen, so the replay stops as few trials as
 * it can (a stop is final in ASHA and median stopping). It can still differ from the first run
 * (a trial the first run promoted may be stopped, cutting its history short in the scheduler).
 */
function stepMajor(spec: StudySpec, trials: readonly TrialRecord[]): Replayed[] {
  const loss = (v: number) => (spec.objective.mode === 'min' ? v : -v);
  const out: Replayed[] = [];
  const rounds = Math.max(0, ...trials.map((t) => t.reports.length));
  for (let i = 0; i < rounds; i++) {
    const round: Replayed[] = [];
    for (const t of trials) {
      const m = t.reports[i];
      const v = m === undefined ? undefined : objectiveValue(spec.objective, m);
      if (m !== undefined && v !== undefined) round.push({ id: t.id, step: m.step, loss: loss(v) });
    }
    round.sort((a, b) => (a.loss < b.loss ? 1 : a.loss > b.loss ? -1 : b.id - a.id));
    out.push(...round);
  }
  return out;
}

/**
 * The scheduler of a resumed study, rebuilt from the records. Every trial is added with its
 * CURRENT configuration (after its PBT exploits). Then the reports are replayed:
 *
 * - The interrupted trials' kept reports (up to their checkpoints). Their first run let them go
 *   on at each of these reports, so the replay must too: if it would stop one (or, under PBT,
 *   exploit for it) the replay differs from the first run (a guessed order, or reports of other
 *   trials dropped by a rewind), and the scheduler is rebuilt with that trial added fresh, without
 *   its reports (it is judged from its next report on, as a trial that just started). Replay
 *   decisions never bind an interrupted trial.
 * - The finished trials' reports (decisions ignored: they were taken and recorded in the first
 *   run), except under PBT, whose population is the live trials only: replaying ended trials'
 *   reports would draw exploits that never happened.
 *
 * With `arrived` (the kept reports in the order they arrived) both are replayed together in that
 * order, so the scheduler sees what it saw in the first run. Without it, the interrupted trials'
 * reports come first, among themselves only, then the finished trials', each in `stepMajor`'s
 * guessed order. Then the finished trials are ended.
 */
function replayScheduler(
  spec: StudySpec,
  records: readonly TrialRecord[],
  interrupted: (t: TrialRecord) => boolean,
  arrived: readonly Replayed[] | null,
): Scheduler {
  const binding = new Set(records.filter(interrupted).map((t) => t.id));
  const finished = records.filter((t) => !interrupted(t));
  const fresh = new Set<number>();
  for (;;) {
    const scheduler = makeScheduler(spec.scheduler, spec.space, spec.seed);
    for (const t of records) scheduler.onTrialAdd(t.id, t.config);
    const pbt = scheduler.name === 'pbt';
    // Replayed: the interrupted trials not added fresh, and the finished ones unless under PBT.
    const replayed = (id: number) => (binding.has(id) ? !fresh.has(id) : !pbt);
    const reports =
      arrived !== null
        ? arrived.filter((r) => replayed(r.id))
        : stepMajor(
            spec,
            records.filter((t) => binding.has(t.id) && replayed(t.id)),
          ).concat(pbt ? [] : stepMajor(spec, finished));
    let bound: number | null = null;
    for (const r of reports) {
      const decision = scheduler.onReport(r.id, r.step, r.loss);
      if (binding.has(r.id) && decision.action !== 'continue') {
        bound = r.id;
        break;
      }
    }
    if (bound !== null) {
      fresh.add(bound);
      continue;
    }
    for (const t of finished) {
      const loss = t.best === null ? null : spec.objective.mode === 'min' ? t.best : -t.best;
      scheduler.onTrialEnd(t.id, t.state as 'completed' | 'pruned' | 'failed', loss);
    }
    return scheduler;
  }
}
