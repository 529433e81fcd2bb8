/**
 * ASHA, the Asynchronous Successive Halving Algorithm (Li et al. 2018, "A System for Massively
 * Parallel Hyperparameter Tuning"), in the stop-based form of Ray Tune's `AsyncHyperBandScheduler`
 * (one bracket): instead of pausing trials and promoting them later, each trial is judged once at
 * each rung, when it gets there, and either goes on or stops for good.
 *
 * Rungs sit at steps `gracePeriod * reductionFactor^k` below `maxSteps` (grace 1, factor 3, max
 * 100: steps 1, 3, 9, 27, 81). When a trial reports at a step >= a rung's step for the first
 * time (its first report at or past the rung; the highest such rung if it skipped some), its
 * loss is recorded there and compared with the cutoff: the (1/reductionFactor)-quantile of the
 * losses recorded at that rung BEFORE it, by linear interpolation between order statistics (as
 * numpy's percentile, which Ray uses). The trial goes on if its loss is <= the cutoff, so it is
 * in the top 1/reductionFactor of what the rung has seen so far; otherwise it is stopped (pruned).
 *
 * The rule is asynchronous: it decides at once, from the arrivals so far. The first trial to
 * reach a rung always goes on (there is nothing to compare with), as in the paper and in Ray,
 * and a trial that is the best the rung has seen always goes on. So the fraction promoted
 * depends on the order of arrival: trials arriving in order of decreasing quality each meet
 * better ones already recorded and only the first goes on; arriving in order of increasing
 * quality, each is the best so far and all go on. With arrivals in random order, about
 * 1/reductionFactor of a rung's trials go on (plus a few early arrivals, a logarithmic excess).
 *
 * A trial that reports at step >= `maxSteps` is stopped as completed (the stop carries
 * `reason: 'completed'`; see `isCompletion`). A stop is final: a trial that reports again is told
 * to stop again. `rungs()` shows every rung's arrivals and which were promoted.
 */

import { InvalidArgumentError } from '../../kernel/index.js';
import type { Config, Decision, Scheduler, SearchSpace } from '../types.js';
import {
  COMPLETE,
  CONTINUE,
  checkNewTrial,
  checkOptionKeys,
  checkOutcome,
  checkReport,
  intOption,
  liveTrial,
  optionName,
  PRUNE,
  type StopDecision,
} from './validate.js';

/** Options of ASHA. */
export interface AshaOptions {
  /** The first rung's step: no trial is stopped before it (default 1). */
  readonly gracePeriod?: number;
  /** eta: rungs are eta times apart and about 1/eta of a rung's trials go on (default 3, >= 2). */
  readonly reductionFactor?: number;
  /** The training budget: a trial reporting this step is stopped, completed (required). */
  readonly maxSteps: number;
}

/** One arrival at a rung. */
export interface AshaRungEntry {
  readonly trialId: number;
  /** The loss it reported on arrival (NaN recorded as Infinity). */
  readonly loss: number;
  /** True if it went on past the rung, false if it was stopped there. */
  readonly promoted: boolean;
}

/** A rung: its step and its arrivals in order. */
export interface AshaRung {
  readonly step: number;
  readonly entries: readonly AshaRungEntry[];
}

/** An ASHA scheduler, with its rungs open to inspection. */
export interface AshaScheduler extends Scheduler {
  /** The budget: reporting this step completes a trial. */
  readonly maxSteps: number;
  /** A snapshot of the rungs, lowest step first. */
  rungs(): readonly AshaRung[];
}

/** Builds ASHA schedulers (a SchedulerFactory whose schedulers expose `rungs()`). */
export type AshaSchedulerFactory = (space: SearchSpace, seed: number) => AshaScheduler;

interface Rung {
  readonly step: number;
  readonly entries: AshaRungEntry[];
  /** The recorded losses, ascending. */
  readonly sorted: number[];
  readonly recorded: Set<number>;
}

interface AshaTrial {
  ended: boolean;
  stopped: StopDecision | null;
}

class Asha implements AshaScheduler {
  readonly name = 'asha';
  readonly maxSteps: number;
  readonly #quantile: number;
  readonly #rungs: Rung[];
  readonly #trials = new Map<number, AshaTrial>();

  constructor(rungSteps: readonly number[], reductionFactor: number, maxSteps: number) {
    this.maxSteps = maxSteps;
    this.#quantile = 1 / reductionFactor;
    this.#rungs = rungSteps.map((step) => ({ step, entries: [], sorted: [], recorded: new Set() }));
  }

  onTrialAdd(trialId: number, _config: Config): void {
    checkNewTrial(this.name, this.#trials, trialId);
    this.#trials.set(trialId, { ended: false, stopped: null });
  }

  onReport(trialId: number, step: number, loss: number): Decision {
    const value = checkReport(trialId, step, loss);
    const trial = liveTrial(this.name, this.#trials, trialId);
    if (trial.stopped !== null) return trial.stopped;
    if (step >= this.maxSteps) {
      trial.stopped = COMPLETE;
      return COMPLETE;
    }
    const rung = this.#highestRungAtOrBelow(step);
    if (rung === undefined || rung.recorded.has(trialId)) return CONTINUE;

    const promoted = rung.sorted.length === 0 || value <= quantile(rung.sorted, this.#quantile);
    rung.recorded.add(trialId);
    rung.entries.push(Object.freeze({ trialId, loss: value, promoted }));
    rung.sorted.splice(insertionPoint(rung.sorted, value), 0, value);
    if (promoted) return CONTINUE;
    trial.stopped = PRUNE;
    return PRUNE;
  }

  onTrialEnd(trialId: number, outcome: 'completed' | 'pruned' | 'failed', _loss: number | null): void {
    checkOutcome(outcome);
    liveTrial(this.name, this.#trials, trialId).ended = true;
  }

  rungs(): readonly AshaRung[] {
    return this.#rungs.map((rung) =>
      Object.freeze({ step: rung.step, entries: Object.freeze(rung.entries.slice()) }),
    );
  }

  #highestRungAtOrBelow(step: number): Rung | undefined {
    for (let i = this.#rungs.length - 1; i >= 0; i--) {
      const rung = this.#rungs[i] as Rung;
      if (rung.step <= step) return rung;
    }
    return undefined;
  }
}

/**
 * The q-quantile of an ascending, non-empty array, interpolating linearly between the order
 * statistics around position (n - 1) * q (numpy's default percentile).
 */
export function quantile(sorted: readonly number[], q: number): number {
  const position = (sorted.length - 1) * q;
  const lo = Math.floor(position);
  const low = sorted[lo] as number;
  if (position === lo) return low;
  const high = sorted[lo + 1] as number;
  // Guards infinite neighbours: Infinity - Infinity would be NaN.
  return low === high ? low : low + (position - lo) * (high - low);
}

/** Where `value` goes in an ascending array to keep it ascending (after equal values). */
function insertionPoint(sorted: readonly number[], value: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((sorted[mid] as number) <= value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The rung steps: gracePeriod * reductionFactor^k for k = 0, 1, ... while below maxSteps. */
export function ashaRungSteps(gracePeriod: number, reductionFactor: number, maxSteps: number): number[] {
  const steps: number[] = [];
  for (let step = gracePeriod; step < maxSteps; step *= reductionFactor) steps.push(step);
  return steps;
}

/**
 * A factory of ASHA schedulers. Throws InvalidArgumentError naming the option
 * (`asha option "reductionFactor"`) when an option is missing, invalid or unknown.
 */
export function ashaScheduler(options: AshaOptions): AshaSchedulerFactory {
  const opts = checkOptionKeys('asha', options, ['gracePeriod', 'reductionFactor', 'maxSteps']);
  const gracePeriod = intOption('asha', opts, 'gracePeriod', 1, 1);
  const reductionFactor = intOption('asha', opts, 'reductionFactor', 2, 3);
  const maxSteps = intOption('asha', opts, 'maxSteps', 1);
  if (gracePeriod > maxSteps) {
    throw new InvalidArgumentError(
      optionName('asha', 'gracePeriod'),
      `must be <= maxSteps (${maxSteps})`,
      gracePeriod,
    );
  }
  const steps = ashaRungSteps(gracePeriod, reductionFactor, maxSteps);
  return (_space: SearchSpace, _seed: number) => new Asha(steps, reductionFactor, maxSteps);
}
