/**
 * Population Based Training (Jaderberg et al. 2017, "Population Based Training of Neural
 * Networks"), asynchronous, as Ray Tune's `PopulationBasedTraining` runs it.
 *
 * The population is the live trials (added, not ended) that have reported since they last
 * started a run, each ranked by its latest loss (ties by trial id). A trial is checked when its
 * report crosses a multiple of `perturbationInterval` (with a report every step: at steps I, 2I,
 * 3I...; never before `burnInPeriod`). If it is then in the bottom quantile, it EXPLOITS: the
 * decision names a donor drawn (seeded) among the top quantile's trials with a loss strictly
 * better than its own, and a config explored from the donor's (`exploreConfig`); the study
 * restarts the trial from the donor's latest checkpoint with that config. Otherwise (in particular
 * when no top trial is strictly better, as on a plateau where every loss is the same) it
 * continues. Each quantile holds ceil(n * quantileFraction)
 * trials, at most floor(n / 2), so the two never overlap: with 2 trials, one is top and one
 * bottom; with 1, nothing happens.
 *
 * After an exploit the trial continues from the donor's step: its next reports carry steps
 * after the donor's latest reported step, and its next check is at the first multiple of the
 * interval after that step. Until its next report it has no loss of its own and is left out of
 * the ranking (it holds the donor's weights with a new config, so neither the donor's loss nor
 * its own old one says how it does). Every exploit is kept in the trial's `lineage`.
 */
import { InvalidArgumentError } from '../../kernel/index.js';
import { Rng } from '../random.js';
import type { Config, Decision, Dimension, LineageEntry, Scheduler, SearchSpace } from '../types.js';
import {
  CONTINUE,
  checkNewTrial,
  checkOptionKeys,
  checkOutcome,
  checkReport,
  checkTrialId,
  intOption,
  liveTrial,
  numberOption,
  optionName,
} from './validate.js';

/** Options of PBT. */
export interface PbtOptions {
  /** Steps between two checks of a trial (required, an integer >= 1). */
  readonly perturbationInterval: number;
  /** The share of the population in each of the top and bottom quantiles, in (0, 0.5] (default 0.25). */
  readonly quantileFraction?: number;
  /** The probability that an explored dimension is resampled rather than perturbed (default 0.25). */
  readonly resampleProbability?: number;
  /** The factors a number is multiplied by when perturbed, one drawn each time (default [0.8, 1.2]). */
  readonly perturbFactors?: readonly number[];
  /** No check before this step (default 0). */
  readonly burnInPeriod?: number;
  /** The dimensions to explore (default: all of the space); the others keep the donor's values. */
  readonly dimensions?: readonly string[];
  /**
   * The trials' last step, when known: no exploit at or after it (a restart there would have
   * nothing left to train, and would only relabel the trial with a config it never ran).
   */
  readonly maxSteps?: number;
}

/** How `exploreConfig` changes a config. */
export interface ExploreOptions {
  readonly resampleProbability: number;
  readonly perturbFactors: readonly number[];
  /** Default: every dimension of the space. */
  readonly dimensions?: readonly string[];
}

/** A PBT scheduler, with the lineage of its trials open to inspection. */
export interface PbtScheduler extends Scheduler {
  /** A trial's exploits, in order (the trial's step, the donor, the config it continued with). */
  lineage(trialId: number): readonly LineageEntry[];
}

/** Builds PBT schedulers (a SchedulerFactory whose schedulers expose `lineage()`). */
export type PbtSchedulerFactory = (space: SearchSpace, seed: number) => PbtScheduler;

interface PbtTrial {
  readonly id: number;
  ended: boolean;
  config: Config;
  /** The latest loss of the current run, or null before its first report. */
  lastLoss: number | null;
  /** The latest step reported (or taken over from the donor). */
  lastStep: number;
  /** The first report at a step >= this one is checked. */
  nextCheck: number;
  readonly lineage: LineageEntry[];
}

interface PbtSettings {
  readonly perturbationInterval: number;
  readonly quantileFraction: number;
  readonly burnInPeriod: number;
  readonly maxSteps: number;
  readonly explore: ExploreOptions;
}

class Pbt implements PbtScheduler {
  readonly name = 'pbt';
  readonly #settings: PbtSettings;
  readonly #space: SearchSpace;
  readonly #rng: Rng;
  readonly #trials = new Map<number, PbtTrial>();

  constructor(settings: PbtSettings, space: SearchSpace, seed: number) {
    this.#settings = settings;
    this.#space = space;
    this.#rng = new Rng(seed);
  }

  onTrialAdd(trialId: number, config: Config): void {
    checkNewTrial(this.name, this.#trials, trialId);
    if (config === null || typeof config !== 'object') {
      throw new InvalidArgumentError('config', 'must be an object', config);
    }
    this.#trials.set(trialId, {
      id: trialId,
      ended: false,
      config,
      lastLoss: null,
      lastStep: 0,
      nextCheck: this.#settings.perturbationInterval,
      lineage: [],
    });
  }

  onReport(trialId: number, step: number, loss: number): Decision {
    const value = checkReport(trialId, step, loss);
    const trial = liveTrial(this.name, this.#trials, trialId);
    trial.lastLoss = value;
    trial.lastStep = step;
    if (step < trial.nextCheck) return CONTINUE;
    trial.nextCheck = this.#checkAfter(step);
    if (step < this.#settings.burnInPeriod || step >= this.#settings.maxSteps) return CONTINUE;

    const ranked: PbtTrial[] = [];
    for (const t of this.#trials.values()) if (!t.ended && t.lastLoss !== null) ranked.push(t);
    const n = ranked.length;
    if (n <= 1) return CONTINUE;
    let size = Math.ceil(n * this.#settings.quantileFraction);
    if (size > n / 2) size = Math.floor(n / 2);
    ranked.sort((a, b) => compareLoss(a.lastLoss as number, b.lastLoss as number) || a.id - b.id);
    if (ranked.indexOf(trial) < n - size) return CONTINUE;
    // Only a strictly better donor is worth the trial's own run: on a plateau (tied losses) the
    // ranking by id alone would put trials in the bottom quantile for nothing.
    const own = trial.lastLoss as number;
    const donors = ranked.slice(0, size).filter((t) => compareLoss(t.lastLoss as number, own) < 0);
    if (donors.length === 0) return CONTINUE;

    const donor = this.#rng.pick(donors);
    const config = exploreConfig(donor.config, this.#space, this.#rng, this.#settings.explore);
    trial.lineage.push(Object.freeze({ step, donor: donor.id, config }));
    trial.config = config;
    trial.lastLoss = null;
    trial.lastStep = donor.lastStep;
    trial.nextCheck = this.#checkAfter(donor.lastStep);
    return Object.freeze({ action: 'exploit', donor: donor.id, config });
  }

  onTrialEnd(trialId: number, outcome: 'completed' | 'pruned' | 'failed', _loss: number | null): void {
    checkOutcome(outcome);
    liveTrial(this.name, this.#trials, trialId).ended = true;
  }

  lineage(trialId: number): readonly LineageEntry[] {
    checkTrialId(trialId);
    const trial = this.#trials.get(trialId);
    if (trial === undefined) {
      throw new InvalidArgumentError('trialId', `trial ${trialId} was never added to the pbt scheduler`);
    }
    return Object.freeze(trial.lineage.slice());
  }

  /** The first multiple of the interval after `step`. */
  #checkAfter(step: number): number {
    const interval = this.#settings.perturbationInterval;
    return (Math.floor(step / interval) + 1) * interval;
  }
}

/** Ascending numeric order, consistent with infinite values. */
function compareLoss(a: number, b: number): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * PBT's explore step: a copy of `config` where each explored dimension is resampled from the
 * space with probability `resampleProbability`, and otherwise perturbed:
 *
 * - float (log or not): multiplied by a factor drawn from `perturbFactors`;
 * - int: multiplied by such a factor and rounded; if rounding gives back the same integer it
 *   moves one unit in the factor's direction instead, so small integers (1 * 1.2 = 1.2) do not
 *   get stuck;
 * - choice: a neighbouring value in the list, left or right with equal chance (the only
 *   neighbour at either end);
 * - bool: kept (so it changes only when resampled, to a fair coin).
 *
 * A value missing from the config or out of its dimension's type (a number for a float, a
 * listed value for a choice) is resampled. Every result is clamped within the dimension's
 * bounds. Keys of `config` that are not explored are copied unchanged.
 */
export function exploreConfig(config: Config, space: SearchSpace, rng: Rng, options: ExploreOptions): Config {
  const result: Record<string, unknown> = { ...config };
  const names = options.dimensions ?? Object.keys(space);
  for (const name of names) {
    const dimension = space[name];
    if (dimension === undefined) {
      throw new InvalidArgumentError(
        'dimensions',
        `names no dimension of the space: ${JSON.stringify(name)}`,
        name,
      );
    }
    result[name] = exploreValue(dimension, config[name], rng, options);
  }
  return Object.freeze(result);
}

function exploreValue(dimension: Dimension, current: unknown, rng: Rng, options: ExploreOptions): unknown {
  const resample = rng.next() < options.resampleProbability;
  switch (dimension.type) {
    case 'float': {
      if (resample || typeof current !== 'number' || !Number.isFinite(current))
        return sampleDimension(dimension, rng);
      return clamp(current * rng.pick(options.perturbFactors), dimension.min, dimension.max);
    }
    case 'int': {
      if (resample || typeof current !== 'number' || !Number.isFinite(current))
        return sampleDimension(dimension, rng);
      const base = Math.round(current);
      const factor = rng.pick(options.perturbFactors);
      const target = base * factor;
      let next = Math.round(target);
      if (next === base && factor !== 1) {
        const up = target === base ? factor > 1 : target > base;
        next = base + (up ? 1 : -1);
      }
      return clamp(next, Math.ceil(dimension.min), Math.floor(dimension.max));
    }
    case 'choice': {
      const index = dimension.values.findIndex((v) => Object.is(v, current));
      if (resample || index < 0) return sampleDimension(dimension, rng);
      if (dimension.values.length === 1) return current;
      const step = rng.next() < 0.5 ? -1 : 1;
      const neighbour =
        index + step >= 0 && index + step < dimension.values.length ? index + step : index - step;
      return dimension.values[neighbour];
    }
    case 'bool':
      if (resample || typeof current !== 'boolean') return sampleDimension(dimension, rng);
      return current;
    default:
      throw new InvalidArgumentError('space', 'has a dimension of unknown type', dimension);
  }
}

/** A uniform draw from a dimension (log-uniform for a log float), within its bounds. */
function sampleDimension(dimension: Dimension, rng: Rng): unknown {
  switch (dimension.type) {
    case 'float':
      if (dimension.log === true) {
        const draw = Math.exp(rng.uniform(Math.log(dimension.min), Math.log(dimension.max)));
        return clamp(draw, dimension.min, dimension.max);
      }
      return clamp(rng.uniform(dimension.min, dimension.max), dimension.min, dimension.max);
    case 'int':
      return rng.int(Math.ceil(dimension.min), Math.floor(dimension.max));
    case 'choice':
      return rng.pick(dimension.values);
    case 'bool':
      return rng.next() < 0.5;
    default:
      throw new InvalidArgumentError('space', 'has a dimension of unknown type', dimension);
  }
}

function clamp(value: number, min: number, max: number): number {
  return Math.min(Math.max(value, min), max);
}

/**
 * A factory of PBT schedulers. Throws InvalidArgumentError naming the option
 * (`pbt option "quantileFraction"`) when an option is missing, invalid or unknown; a
 * `dimensions` entry that the study's space lacks is reported when the factory is called.
 */
export function pbtScheduler(options: PbtOptions): PbtSchedulerFactory {
  const opts = checkOptionKeys('pbt', options, [
    'perturbationInterval',
    'quantileFraction',
    'resampleProbability',
    'perturbFactors',
    'burnInPeriod',
    'dimensions',
    'maxSteps',
  ]);
  const perturbationInterval = intOption('pbt', opts, 'perturbationInterval', 1);
  const quantileFraction = numberOption(
    'pbt',
    opts,
    'quantileFraction',
    { min: 0, max: 0.5, minExclusive: true },
    0.25,
  );
  const resampleProbability = numberOption('pbt', opts, 'resampleProbability', { min: 0, max: 1 }, 0.25);
  const burnInPeriod = intOption('pbt', opts, 'burnInPeriod', 0, 0);
  const maxSteps = intOption('pbt', opts, 'maxSteps', 1, Number.MAX_SAFE_INTEGER);
  const perturbFactors = checkFactors(opts.perturbFactors);
  const dimensions = checkDimensionNames(opts.dimensions);
  return (space: SearchSpace, seed: number) => {
    if (dimensions !== undefined) {
      for (const name of dimensions) {
        if (!Object.hasOwn(space, name)) {
          throw new InvalidArgumentError(
            optionName('pbt', 'dimensions'),
            `names no dimension of the space: ${JSON.stringify(name)}`,
            dimensions,
          );
        }
      }
    }
    const explore: ExploreOptions =
      dimensions === undefined
        ? { resampleProbability, perturbFactors }
        : { resampleProbability, perturbFactors, dimensions };
    return new Pbt({ perturbationInterval, quantileFraction, burnInPeriod, maxSteps, explore }, space, seed);
  };
}

function checkFactors(value: unknown): readonly number[] {
  if (value === undefined) return Object.freeze([0.8, 1.2]);
  if (
    !Array.isArray(value) ||
    value.length === 0 ||
    !value.every((f) => typeof f === 'number' && Number.isFinite(f) && f > 0)
  ) {
    throw new InvalidArgumentError(
      optionName('pbt', 'perturbFactors'),
      'must be a non-empty array of finite numbers > 0',
      value,
    );
  }
  return Object.freeze(value.slice() as number[]);
}

function checkDimensionNames(value: unknown): readonly string[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || !value.every((d) => typeof d === 'string')) {
    throw new InvalidArgumentError(
      optionName('pbt', 'dimensions'),
      'must be an array of dimension names',
      value,
    );
  }
  return Object.freeze(value.slice() as string[]);
}
