/**
 * Random search: every dimension drawn independently and uniformly (log-uniformly on a log
 * scale). The baseline every other sampler must beat, and TPE's startup phase.
 *
 * Also home to what the samplers share: drawing one dimension's value, and the set of pending
 * configurations (asked, not yet told) that keeps concurrent asks from handing out duplicates.
 */
import type { FloatKind } from '../../agents/index.js';
import { Rng } from '../random.js';
import { checkConfig, checkSpace, sameConfig } from '../space.js';
import type { Config, Dimension, Sampler, SamplerFactory, SearchSpace, ToldState } from '../types.js';

/** A uniform draw of one dimension's value (log-uniform for a log-scale float). */
export function sampleDimension(dim: Dimension, rng: Rng): unknown {
  switch (dim.type) {
    case 'float':
      return sampleFloat(dim, rng);
    case 'int':
      return rng.int(dim.min, dim.max);
    case 'choice':
      return rng.pick(dim.values);
    case 'bool':
      return rng.next() < 0.5;
  }
}

function sampleFloat(dim: FloatKind, rng: Rng): number {
  if (dim.min === dim.max) return dim.min;
  const x =
    dim.log === true
      ? Math.exp(rng.uniform(Math.log(dim.min), Math.log(dim.max)))
      : rng.uniform(dim.min, dim.max);
  // exp(log(x)) can land a rounding error outside the bounds.
  return Math.min(dim.max, Math.max(dim.min, x));
}

/** A uniform draw of a whole configuration. */
export function sampleConfig(space: SearchSpace, rng: Rng): Config {
  const config: Record<string, unknown> = {};
  for (const name in space) config[name] = sampleDimension(space[name] as Dimension, rng);
  return config;
}

/** How many pending configurations a sampler remembers (a trial that fails is never told). */
export const PENDING_LIMIT = 64;

/**
 * Configurations handed out by `ask` and not yet told. A failed trial is never told, so the set
 * keeps only the latest PENDING_LIMIT asks: the oldest entry is dropped when full.
 */
export class PendingConfigs {
  readonly #space: SearchSpace;
  readonly #items: Config[] = [];

  constructor(space: SearchSpace) {
    this.#space = space;
  }

  /** The pending configurations, oldest first. */
  get items(): readonly Config[] {
    return this.#items;
  }

  /** Remember a configuration just asked. */
  add(config: Config): void {
    if (this.#items.length >= PENDING_LIMIT) this.#items.shift();
    this.#items.push(config);
  }

  /** Forget a told configuration: the same object if pending, else an equal one. */
  remove(config: Config): void {
    const items = this.#items;
    let at = items.indexOf(config);
    if (at < 0) at = items.findIndex((c) => sameConfig(this.#space, c, config));
    if (at >= 0) items.splice(at, 1);
  }

  /** True when an equal configuration is pending. */
  has(config: Config): boolean {
    const items = this.#items;
    for (let i = 0; i < items.length; i++)
      if (sameConfig(this.#space, items[i] as Config, config)) return true;
    return false;
  }
}

/** Redraws before a random sampler accepts a duplicate of a pending configuration. */
const REDRAWS = 32;

/** Random search over a space; `tell` only clears pending configurations. */
export class RandomSampler implements Sampler {
  readonly name = 'random';
  readonly space: SearchSpace;
  readonly #rng: Rng;
  readonly #pending: PendingConfigs;

  /** `space` is validated (SearchSpaceError if malformed); `seed` fixes the sequence of asks. */
  constructor(space: SearchSpace, seed: number) {
    this.space = checkSpace(space);
    this.#rng = new Rng(seed);
    this.#pending = new PendingConfigs(this.space);
  }

  /** A uniform draw, redrawn (a bounded number of times) while it equals a pending configuration. */
  ask(): Config {
    let config = sampleConfig(this.space, this.#rng);
    for (let i = 0; i < REDRAWS && this.#pending.has(config); i++)
      config = sampleConfig(this.space, this.#rng);
    this.#pending.add(config);
    return config;
  }

  /** Random search does not learn; the configuration is checked and no longer pending. */
  tell(config: Config, _loss: number, _state: ToldState): void {
    checkConfig(this.space, config);
    this.#pending.remove(config);
  }
}

/** A factory of random samplers (`randomSampler()(space, seed)`). */
export function randomSampler(): SamplerFactory {
  return (space, seed) => new RandomSampler(space, seed);
}
