/**
 * Checks shared by the schedulers: their options (each bad option named as `<scheduler> option
 * "<name>"`), the arguments of their callbacks, and the trial lifecycle the study must follow
 * (`onTrialAdd` once, then reports, then `onTrialEnd` once). Misuse throws `InvalidArgumentError`
 * at once, so a bug in the caller surfaces where it happens, not as a wrong decision later.
 */
import { InvalidArgumentError } from '../../kernel/index.js';
import type { Decision } from '../types.js';

/** The argument name of one scheduler option, as error messages show it. */
export function optionName(scheduler: string, option: string): string {
  return `${scheduler} option ${JSON.stringify(option)}`;
}

/**
 * Checks that `options` is a plain object (or undefined) whose keys are all in `known`, so a
 * misspelt option (`grace_period`) is an error rather than silently ignored.
 */
export function checkOptionKeys(
  scheduler: string,
  options: unknown,
  known: readonly string[],
): Readonly<Record<string, unknown>> {
  if (options === undefined) return {};
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new InvalidArgumentError(`${scheduler} options`, 'must be an object', options);
  }
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) {
      throw new InvalidArgumentError(
        optionName(scheduler, key),
        `unknown option (known: ${known.join(', ')})`,
        (options as Record<string, unknown>)[key],
      );
    }
  }
  return options as Readonly<Record<string, unknown>>;
}

/** An integer option >= `min`; `fallback` when absent (undefined means required). */
export function intOption(
  scheduler: string,
  options: Readonly<Record<string, unknown>>,
  name: string,
  min: number,
  fallback?: number,
): number {
  const value = options[name];
  if (value === undefined) {
    if (fallback !== undefined) return fallback;
    throw new InvalidArgumentError(optionName(scheduler, name), `is required (an integer >= ${min})`);
  }
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw new InvalidArgumentError(optionName(scheduler, name), `must be an integer >= ${min}`, value);
  }
  return value;
}

/** A finite number option in [min, max] (exclusive at `min` when `minExclusive`). */
export function numberOption(
  scheduler: string,
  options: Readonly<Record<string, unknown>>,
  name: string,
  range: { readonly min: number; readonly max: number; readonly minExclusive?: boolean },
  fallback: number,
): number {
  const value = options[name];
  if (value === undefined) return fallback;
  const low = range.minExclusive === true ? `> ${range.min}` : `>= ${range.min}`;
  if (
    typeof value !== 'number' ||
    !Number.isFinite(value) ||
    value < range.min ||
    (range.minExclusive === true && value === range.min) ||
    value > range.max
  ) {
    throw new InvalidArgumentError(
      optionName(scheduler, name),
      `must be a number ${low} and <= ${range.max}`,
      value,
    );
  }
  return value;
}

/** Checks the arguments of `onReport` and returns the loss to compare (NaN counts as +Infinity). */
export function checkReport(trialId: number, step: number, loss: number): number {
  checkTrialId(trialId);
  if (typeof step !== 'number' || !Number.isSafeInteger(step) || step < 1) {
    throw new InvalidArgumentError('step', 'must be an integer >= 1', step);
  }
  if (typeof loss !== 'number') throw new InvalidArgumentError('loss', 'must be a number', loss);
  // A diverged run reports NaN: it is the worst possible result, not one to ignore.
  return Number.isNaN(loss) ? Number.POSITIVE_INFINITY : loss;
}

/** Checks a trial id (an integer >= 0, as the study numbers its trials). */
export function checkTrialId(trialId: number): void {
  if (typeof trialId !== 'number' || !Number.isSafeInteger(trialId) || trialId < 0) {
    throw new InvalidArgumentError('trialId', 'must be an integer >= 0', trialId);
  }
}

/** Checks the outcome passed to `onTrialEnd`. */
export function checkOutcome(outcome: string): void {
  if (outcome !== 'completed' && outcome !== 'pruned' && outcome !== 'failed') {
    throw new InvalidArgumentError('outcome', 'must be "completed", "pruned" or "failed"', outcome);
  }
}

/** The lifecycle part of a scheduler's per-trial state. */
export interface TrialLife {
  ended: boolean;
}

/** The state of a live trial, or a throw naming why the trial cannot report now. */
export function liveTrial<T extends TrialLife>(
  scheduler: string,
  trials: ReadonlyMap<number, T>,
  trialId: number,
): T {
  const trial = trials.get(trialId);
  if (trial === undefined) {
    throw new InvalidArgumentError(
      'trialId',
      `trial ${trialId} was never added to the ${scheduler} scheduler`,
    );
  }
  if (trial.ended) throw new InvalidArgumentError('trialId', `trial ${trialId} has already ended`);
  return trial;
}

/** Throws if `trialId` was already added (a study adds each trial once). */
export function checkNewTrial(
  scheduler: string,
  trials: ReadonlyMap<number, unknown>,
  trialId: number,
): void {
  checkTrialId(trialId);
  if (trials.has(trialId)) {
    throw new InvalidArgumentError(
      'trialId',
      `trial ${trialId} was already added to the ${scheduler} scheduler`,
    );
  }
}

/**
 * A stop that also says why. `Decision`'s stop carries no reason, so a stop at the end of the
 * budget carries `reason: 'completed'` as an extra field, for the study to record the trial as
 * completed rather than pruned; every other stop carries `reason: 'pruned'`.
 */
export type StopDecision = Extract<Decision, { action: 'stop' }> & {
  readonly reason: 'pruned' | 'completed';
};

/** Keep training. */
export const CONTINUE: Decision = Object.freeze({ action: 'continue' });
/** Stop early (pruned). */
export const PRUNE: StopDecision = Object.freeze({ action: 'stop', reason: 'pruned' });
/** Stop at the end of the budget (completed). */
export const COMPLETE: StopDecision = Object.freeze({ action: 'stop', reason: 'completed' });

/** True when a decision stops a trial because it used up its budget (so it completed). */
export function isCompletion(decision: Decision): boolean {
  return decision.action === 'stop' && (decision as Partial<StopDecision>).reason === 'completed';
}
