/**
 * The contracts between the parts of `mabeam tune`: search spaces, samplers, schedulers,
 * trainables and trial records. Each part lives in its own module (space.ts, samplers/,
 * schedulers/, executor.ts, storage.ts, study.ts) and meets the others only through these types.
 *
 * One convention runs through all of them: samplers and schedulers always MINIMIZE. The study
 * turns the user's objective (`{metric: 'accuracy', mode: 'max'}`) into a "loss" (the metric, or
 * its negation for `max`) before a sampler or scheduler sees it, so no algorithm has a `mode`.
 */
import type { BoolKind, ChoiceKind, FloatKind, IntKind } from '../agents/index.js';

// ---- search space ------------------------------------------------------------------------------

/**
 * One dimension of a search space: the kinds of universal variables (a float, optionally on a log
 * scale; an int; a choice among values; a bool). A study registers one variable per dimension.
 */
export type Dimension = FloatKind | IntKind | ChoiceKind | BoolKind;

/** A search space: dimension name -> dimension. Validated by `checkSpace` (space.ts). */
export type SearchSpace = Readonly<Record<string, Dimension>>;

/** One point of a search space: dimension name -> value (number, boolean or a choice's value). */
export type Config = Readonly<Record<string, unknown>>;

// ---- samplers ----------------------------------------------------------------------------------

/** How a trial ended, as a sampler learns of it. */
export type ToldState = 'completed' | 'pruned';

/**
 * A sampler proposes configurations and learns from results. Stateful and incremental: `tell`
 * adds one result, so proposing the n-th configuration need not re-read all n-1 before it.
 * `ask` may be called several times before the matching `tell`s (trials run concurrently); a
 * sampler must not hand out the same configuration twice in a row because of that.
 */
export interface Sampler {
  /** "random", "grid", "tpe". */
  readonly name: string;
  /** The next configuration to try, or null when the sampler has no more (a finished grid). */
  ask(): Config | null;
  /**
   * The loss (lower is better) a configuration reached. `pruned` results carry the loss at the
   * step where the trial was stopped (TPE counts them as it counts Optuna's pruned trials).
   */
  tell(config: Config, loss: number, state: ToldState): void;
}

/** Builds a sampler for a validated space and a seed (same seed, same sequence of asks). */
export type SamplerFactory = (space: SearchSpace, seed: number) => Sampler;

// ---- schedulers --------------------------------------------------------------------------------

/** What a scheduler tells a running trial after a report. */
export type Decision =
  /** Keep training. */
  | { readonly action: 'continue' }
  /**
   * Stop now: pruned (early stopping by ASHA or median stopping), or completed when the scheduler
   * ends a trial that reached its last step (ASHA at `maxSteps`). Default reason: pruned.
   */
  | { readonly action: 'stop'; readonly reason?: 'pruned' | 'completed' }
  /**
   * PBT's exploit/explore: stop this run, restart the trial from `donor`'s latest checkpoint with
   * `config` (the donor's hyperparameters, perturbed or resampled within the space's bounds).
   */
  | { readonly action: 'exploit'; readonly donor: number; readonly config: Config };

/**
 * A trial scheduler: decides after each report whether a trial goes on. Pure bookkeeping, no
 * timers, no I/O; the study calls it from one agent, one event at a time.
 */
export interface Scheduler {
  /** "fifo", "median", "asha", "pbt". */
  readonly name: string;
  /** A trial started with this configuration. */
  onTrialAdd(trialId: number, config: Config): void;
  /** A trial reported `loss` (lower is better) at `step` (1, 2, ...: training iterations). */
  onReport(trialId: number, step: number, loss: number): Decision;
  /** A trial ended: completed (its last loss, or null if it never reported), stopped or failed. */
  onTrialEnd(trialId: number, outcome: 'completed' | 'pruned' | 'failed', loss: number | null): void;
}

/** Builds a scheduler for a validated space and a seed (PBT's perturbations are seeded). */
export type SchedulerFactory = (space: SearchSpace, seed: number) => Scheduler;

// ---- trainables --------------------------------------------------------------------------------

/** What a trainable reports: the training step (1, 2, ...) and any named numeric metrics. */
export type TrialMetrics = { readonly step: number } & Readonly<Record<string, number>>;

/**
 * What `train(config, ctx)` gets besides its configuration. It runs on a worker thread of the
 * study's task pool, so `report` and `checkpoint` are messages to the study.
 */
export interface TrainContext<State = unknown> {
  /** This trial's id in the study (0, 1, ...). */
  readonly trialId: number;
  /** Fixed, non-tuned arguments from the study (for the built-ins: the dataset's path and target). */
  readonly params: Readonly<Record<string, unknown>>;
  /**
   * Report metrics after a step. Resolves once the study's scheduler has decided; by then
   * `shouldStop` is current. A trainable that ignores `shouldStop` is stopped at its next report.
   */
  report(metrics: TrialMetrics): Promise<void>;
  /** Save the training state (structured-clonable: typed arrays, objects, numbers...). Resolves when stored. */
  checkpoint(state: State): Promise<void>;
  /** The state to resume from (this trial's last checkpoint, or a PBT donor's), or undefined. */
  restore(): State | undefined;
  /** True once the scheduler decided this run should end (pruned, or PBT exploit). */
  readonly shouldStop: boolean;
}

/** A trainable's `train` export. Its resolved value, if any, is the trial's final metrics. */
export type TrainFunction<State = unknown> = (
  config: Config,
  ctx: TrainContext<State>,
) => Promise<TrialMetrics | undefined | void> | TrialMetrics | undefined | void;

/** Where a trainable lives: a module (path or file URL; .js, .mjs or .ts) and its export. */
export interface TrainableRef {
  readonly module: string;
  /** Default "train". */
  readonly exportName?: string;
  /** Passed to the trainable as `ctx.params` (structured-clonable). */
  readonly params?: Readonly<Record<string, unknown>>;
}

// ---- trials ------------------------------------------------------------------------------------

export type TrialState = 'pending' | 'running' | 'completed' | 'pruned' | 'failed';

/** PBT lineage: where a trial's current run came from. */
export interface LineageEntry {
  /** The trial's step at which it exploited. */
  readonly step: number;
  /** The trial whose checkpoint it took. */
  readonly donor: number;
  /** The configuration it continued with. */
  readonly config: Config;
}

/** A trial as the study, its storage and its reports see it. */
export interface TrialRecord {
  readonly id: number;
  state: TrialState;
  /** The configuration it started with. */
  readonly initialConfig: Config;
  /** The configuration it runs now (differs after a PBT exploit). */
  config: Config;
  /** Every report, in order. */
  readonly reports: TrialMetrics[];
  /** The objective metric's best value over the reports (the user's mode), or null. */
  best: number | null;
  /** Why it failed (the trainable threw, timed out, ran out of memory), or null. */
  error: string | null;
  /** PBT exploits, in order. */
  readonly lineage: LineageEntry[];
  /** Wall-clock ms (Date.now) when it started and ended. */
  startedAt: number | null;
  endedAt: number | null;
}
