/**
 * The median stopping rule of Google Vizier (Golovin et al. 2017, "Google Vizier: A Service for
 * Black-Box Optimization", section 3.2.1), in the form Ray Tune's `MedianStoppingRule` uses.
 *
 * A trial reporting at step s is stopped when its best loss so far is strictly worse (greater)
 * than the median of the OTHER trials' running averages up to step s. A trial's running average
 * up to s is the mean of its reported losses at steps <= s; only trials that have reached s (a
 * report at step >= s) take part, as Ray does, so a trial is judged against peers that trained
 * at least as long; Vizier compares with completed trials only, which needs many of them
 * before it can stop anything. Finished trials (completed or pruned) keep their history; failed
 * trials are dropped, since a crash says nothing reliable about the configuration.
 *
 * Nothing is stopped before step `gracePeriod`, nor while fewer than `minSamples` other trials
 * have reached the step. A stop is final: a trial that reports again is told to stop again.
 *
 * A report at a step <= the trial's previous step means the trial went back to a checkpoint:
 * the reports after that point are forgotten, so the history is the one path it trained along.
 */
import type { Config, Decision, Scheduler, SchedulerFactory, SearchSpace } from '../types.js';
import {
  CONTINUE,
  checkNewTrial,
  checkOptionKeys,
  checkOutcome,
  checkReport,
  intOption,
  liveTrial,
  PRUNE,
} from './validate.js';

/** Options of the median stopping rule. */
export interface MedianStoppingOptions {
  /** No trial is stopped at a step below this (default 1: judged from the first report). */
  readonly gracePeriod?: number;
  /** How many other trials must have reached a step before it can stop anyone (default 3). */
  readonly minSamples?: number;
}

interface MedianTrial {
  ended: boolean;
  failed: boolean;
  stopped: boolean;
  /** Steps of the reports along the current path, increasing. */
  readonly steps: number[];
  readonly losses: number[];
  /** sums[i] = losses[0] + ... + losses[i]. */
  readonly sums: number[];
  best: number;
}

class MedianStoppingScheduler implements Scheduler {
  readonly name = 'median';
  readonly #gracePeriod: number;
  readonly #minSamples: number;
  readonly #trials = new Map<number, MedianTrial>();

  constructor(gracePeriod: number, minSamples: number) {
    this.#gracePeriod = gracePeriod;
    this.#minSamples = minSamples;
  }

  onTrialAdd(trialId: number, _config: Config): void {
    checkNewTrial(this.name, this.#trials, trialId);
    this.#trials.set(trialId, {
      ended: false,
      failed: false,
      stopped: false,
      steps: [],
      losses: [],
      sums: [],
      best: Number.POSITIVE_INFINITY,
    });
  }

  onReport(trialId: number, step: number, loss: number): Decision {
    const value = checkReport(trialId, step, loss);
    const trial = liveTrial(this.name, this.#trials, trialId);
    if (trial.stopped) return PRUNE;
    record(trial, step, value);
    if (step < this.#gracePeriod) return CONTINUE;

    const averages: number[] = [];
    for (const [id, other] of this.#trials) {
      if (id === trialId || other.failed) continue;
      const last = other.steps.length - 1;
      if (last < 0 || (other.steps[last] as number) < step) continue;
      const upTo = lastAtOrBefore(other.steps, step);
      if (upTo >= 0) averages.push((other.sums[upTo] as number) / (upTo + 1));
    }
    if (averages.length < this.#minSamples) return CONTINUE;
    if (trial.best > median(averages)) {
      trial.stopped = true;
      return PRUNE;
    }
    return CONTINUE;
  }

  onTrialEnd(trialId: number, outcome: 'completed' | 'pruned' | 'failed', _loss: number | null): void {
    checkOutcome(outcome);
    const trial = liveTrial(this.name, this.#trials, trialId);
    trial.ended = true;
    trial.failed = outcome === 'failed';
  }
}

/** Appends a report, first forgetting the reports at steps >= `step` (a return to a checkpoint). */
function record(trial: MedianTrial, step: number, loss: number): void {
  let rewound = false;
  while (trial.steps.length > 0 && (trial.steps[trial.steps.length - 1] as number) >= step) {
    trial.steps.pop();
    trial.losses.pop();
    trial.sums.pop();
    rewound = true;
  }
  if (rewound) trial.best = trial.losses.reduce((a, b) => Math.min(a, b), Number.POSITIVE_INFINITY);
  const previous = trial.sums.length > 0 ? (trial.sums[trial.sums.length - 1] as number) : 0;
  trial.steps.push(step);
  trial.losses.push(loss);
  trial.sums.push(previous + loss);
  trial.best = Math.min(trial.best, loss);
}

/** The index of the last element <= `step` in an increasing array, or -1. */
function lastAtOrBefore(steps: readonly number[], step: number): number {
  let lo = 0;
  let hi = steps.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((steps[mid] as number) <= step) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}

/** Numeric order that stays consistent with infinite values (Infinity - Infinity is NaN). */
function ascending(a: number, b: number): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The median of a non-empty array (the mean of the two middle values for an even count). */
function median(values: number[]): number {
  values.sort(ascending);
  const mid = values.length >>> 1;
  if (values.length % 2 === 1) return values[mid] as number;
  const low = values[mid - 1] as number;
  const high = values[mid] as number;
  return low === high ? low : (low + high) / 2;
}

/**
 * A factory of median stopping schedulers. Throws InvalidArgumentError naming the option
 * (`median option "minSamples"`) when an option is invalid or unknown.
 */
export function medianStoppingScheduler(options?: MedianStoppingOptions): SchedulerFactory {
  const opts = checkOptionKeys('median', options, ['gracePeriod', 'minSamples']);
  const gracePeriod = intOption('median', opts, 'gracePeriod', 1, 1);
  const minSamples = intOption('median', opts, 'minSamples', 1, 3);
  return (_space: SearchSpace, _seed: number) => new MedianStoppingScheduler(gracePeriod, minSamples);
}
