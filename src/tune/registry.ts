/**
 * Samplers and schedulers by name, so a study's choice can be stored as data (a name and its
 * options) and rebuilt on resume, and chosen on the command line.
 */
import { InvalidArgumentError } from '../kernel/index.js';
import { gridSampler, randomSampler, tpeSampler } from './samplers/index.js';
import { ashaScheduler, fifoScheduler, medianStoppingScheduler, pbtScheduler } from './schedulers/index.js';
import type { Sampler, SamplerFactory, Scheduler, SchedulerFactory, SearchSpace } from './types.js';

/** A sampler by name: "random", "grid" or "tpe", with that sampler's options. */
export interface SamplerSpec {
  readonly name: string;
  readonly options?: Readonly<Record<string, unknown>>;
}

/** A scheduler by name: "fifo", "median", "asha" or "pbt", with that scheduler's options. */
export interface SchedulerSpec {
  readonly name: string;
  readonly options?: Readonly<Record<string, unknown>>;
}

// The option types differ per algorithm; each validates its own options and names a bad one.
type AnyOptions = never;
const SAMPLERS: Readonly<Record<string, (options?: AnyOptions) => SamplerFactory>> = {
  random: randomSampler as unknown as (options?: AnyOptions) => SamplerFactory,
  grid: gridSampler as unknown as (options?: AnyOptions) => SamplerFactory,
  tpe: tpeSampler as unknown as (options?: AnyOptions) => SamplerFactory,
};
const SCHEDULERS: Readonly<Record<string, (options?: AnyOptions) => SchedulerFactory>> = {
  fifo: fifoScheduler as unknown as (options?: AnyOptions) => SchedulerFactory,
  median: medianStoppingScheduler as unknown as (options?: AnyOptions) => SchedulerFactory,
  asha: ashaScheduler as unknown as (options?: AnyOptions) => SchedulerFactory,
  pbt: pbtScheduler as unknown as (options?: AnyOptions) => SchedulerFactory,
};

/** The sampler names `makeSampler` knows. */
export const SAMPLER_NAMES: readonly string[] = Object.keys(SAMPLERS);
/** The scheduler names `makeScheduler` knows. */
export const SCHEDULER_NAMES: readonly string[] = Object.keys(SCHEDULERS);

function lookup<T>(
  table: Readonly<Record<string, T>>,
  what: string,
  spec: unknown,
): { make: T; options: unknown } {
  const s = spec as Partial<SamplerSpec> | null;
  if (s === null || typeof s !== 'object' || typeof s.name !== 'string') {
    throw new InvalidArgumentError(`study option "${what}"`, 'must be {name, options?}', spec);
  }
  const make = Object.hasOwn(table, s.name) ? table[s.name] : undefined;
  if (make === undefined) {
    throw new InvalidArgumentError(
      `study option "${what}"`,
      `unknown ${what} ${JSON.stringify(s.name)} (known: ${Object.keys(table).join(', ')})`,
    );
  }
  return { make, options: s.options };
}

/** Build the sampler a spec names, for a validated space and a seed. */
export function makeSampler(spec: SamplerSpec, space: SearchSpace, seed: number): Sampler {
  const { make, options } = lookup(SAMPLERS, 'sampler', spec);
  return make(options as AnyOptions)(space, seed);
}

/** Build the scheduler a spec names, for a validated space and a seed. */
export function makeScheduler(spec: SchedulerSpec, space: SearchSpace, seed: number): Scheduler {
  const { make, options } = lookup(SCHEDULERS, 'scheduler', spec);
  return make(options as AnyOptions)(space, seed);
}
