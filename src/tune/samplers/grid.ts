/**
 * Grid search: every combination of every choice, both booleans, and `gridPoints` evenly spaced
 * values of each float or int dimension (spaced on the log scale for a log float), each handed
 * out exactly once; `ask` returns null once the grid is exhausted.
 *
 * The order is a seeded shuffle by default, as Optuna's GridSampler does: a study with fewer
 * trials than grid points then spreads them over the whole grid instead of exhausting the first
 * value of the first dimension. The shuffle is a lazy Fisher-Yates (a map of swapped positions),
 * so a grid of any size costs memory only for the points handed out. The grid is never stored:
 * a grid index is decoded into a configuration, last dimension fastest.
 */
import { InvalidArgumentError } from '../../kernel/index.js';
import { Rng } from '../random.js';
import { checkConfig, checkSpace } from '../space.js';
import type { Config, Dimension, Sampler, SamplerFactory, SearchSpace, ToldState } from '../types.js';

/** Options of `gridSampler`. */
export interface GridOptions {
  /**
   * How many values of each float or int dimension (default 5): one count for all, or counts by
   * dimension name (dimensions left out get 5). An int with fewer integers gets all of them; a
   * count of 1 takes the centre of the range.
   */
  readonly gridPoints?: number | Readonly<Record<string, number>>;
  /** Hand the points out in a seeded random order (default true), or in grid order. */
  readonly shuffle?: boolean;
}

const DEFAULT_GRID_POINTS = 5;

function checkCount(where: string, n: unknown): number {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1) {
    throw new InvalidArgumentError(where, 'must be an integer >= 1', n);
  }
  return n;
}

/** The grid values of one dimension, in increasing order (false before true). */
export function gridValues(dim: Dimension, points: number): readonly unknown[] {
  switch (dim.type) {
    case 'choice':
      return dim.values;
    case 'bool':
      return [false, true];
    case 'int': {
      if (dim.max - dim.min + 1 <= points) {
        return Array.from({ length: dim.max - dim.min + 1 }, (_, i) => dim.min + i);
      }
      if (points === 1) return [Math.round(dim.min + (dim.max - dim.min) / 2)];
      const out: number[] = [];
      for (let i = 0; i < points; i++) {
        const v = Math.round(dim.min + ((dim.max - dim.min) * i) / (points - 1));
        if (out[out.length - 1] !== v) out.push(v);
      }
      return out;
    }
    case 'float': {
      if (dim.min === dim.max) return [dim.min];
      const log = dim.log === true;
      const lo = log ? Math.log(dim.min) : dim.min;
      const hi = log ? Math.log(dim.max) : dim.max;
      if (points === 1) {
        const mid = lo + (hi - lo) / 2;
        return [Math.min(dim.max, Math.max(dim.min, log ? Math.exp(mid) : mid))];
      }
      // checkSpace keeps hi - lo finite, but (hi - lo) * i can still overflow near the largest
      // doubles: then divide first (other ranges keep the exact values they always had).
      const width = hi - lo;
      const out: number[] = [];
      for (let i = 0; i < points; i++) {
        const offset = (width * i) / (points - 1);
        const t = lo + (Number.isFinite(offset) ? offset : width * (i / (points - 1)));
        const v = i === 0 ? dim.min : i === points - 1 ? dim.max : log ? Math.exp(t) : t;
        out.push(Math.min(dim.max, Math.max(dim.min, v)));
      }
      return out;
    }
  }
}

/** Grid search over a space. `tell` only validates: a grid does not learn. */
export class GridSampler implements Sampler {
  readonly name = 'grid';
  readonly space: SearchSpace;
  /** Number of points in the grid. */
  readonly size: number;
  readonly #names: readonly string[];
  readonly #values: readonly (readonly unknown[])[];
  readonly #rng: Rng | null;
  /** Lazy Fisher-Yates: position -> grid index, for the positions that were swapped. */
  readonly #swapped = new Map<number, number>();
  #next = 0;

  /**
   * `space` is validated (SearchSpaceError if malformed), then `options` (InvalidArgumentError
   * for a bad count, an unknown dimension, or a grid of more than 2^53 points).
   */
  constructor(space: SearchSpace, seed: number, options: GridOptions = {}) {
    this.space = checkSpace(space);
    const gp = options.gridPoints ?? DEFAULT_GRID_POINTS;
    let byName: Readonly<Record<string, number>> = {};
    let all = DEFAULT_GRID_POINTS;
    if (typeof gp === 'number') {
      all = checkCount('gridPoints', gp);
    } else if (gp !== null && typeof gp === 'object') {
      for (const name of Object.keys(gp)) {
        const dim = this.space[name];
        if (dim === undefined)
          throw new InvalidArgumentError(`gridPoints.${name}`, 'is not a dimension of the space');
        if (dim.type !== 'float' && dim.type !== 'int') {
          throw new InvalidArgumentError(
            `gridPoints.${name}`,
            `applies to float and int dimensions, not ${dim.type}`,
          );
        }
        checkCount(`gridPoints.${name}`, gp[name]);
      }
      byName = gp;
    } else {
      throw new InvalidArgumentError('gridPoints', 'must be a count or an object of counts by dimension', gp);
    }
    this.#names = Object.keys(this.space);
    this.#values = this.#names.map((name) => gridValues(this.space[name] as Dimension, byName[name] ?? all));
    let size = 1;
    for (const v of this.#values) size *= v.length;
    if (!Number.isSafeInteger(size))
      throw new InvalidArgumentError('grid', 'has more than 2^53 points', size);
    this.size = size;
    this.#rng = options.shuffle === false ? null : new Rng(seed);
  }

  /** Points not handed out yet. */
  get remaining(): number {
    return this.size - this.#next;
  }

  /** The next grid point, or null when every point has been handed out. */
  ask(): Config | null {
    const i = this.#next;
    if (i >= this.size) return null;
    this.#next = i + 1;
    let index = i;
    const rng = this.#rng;
    if (rng !== null) {
      // Swap position i with a uniform position j in [i, size): the point at j is the i-th out.
      const j = i + this.#below(this.size - i, rng);
      const swapped = this.#swapped;
      index = swapped.get(j) ?? j;
      if (j !== i) swapped.set(j, swapped.get(i) ?? i);
      swapped.delete(i);
    }
    return this.#decode(index);
  }

  /** A grid does not learn; the configuration is only checked. */
  tell(config: Config, _loss: number, _state: ToldState): void {
    checkConfig(this.space, config);
  }

  /** A uniform integer in [0, n): 32 random bits, or 53 for a grid larger than 2^32. */
  #below(n: number, rng: Rng): number {
    const u = n <= 2 ** 32 ? rng.next() : rng.next() + rng.next() / 2 ** 32;
    return Math.min(n - 1, Math.floor(u * n));
  }

  #decode(index: number): Config {
    const config: Record<string, unknown> = {};
    const names = this.#names;
    const values = this.#values;
    for (let d = names.length - 1; d >= 0; d--) {
      const vs = values[d] as readonly unknown[];
      config[names[d] as string] = vs[index % vs.length];
      index = Math.floor(index / vs.length);
    }
    // Keys in the space's order, as the other samplers produce them.
    const ordered: Record<string, unknown> = {};
    for (const name of names) ordered[name] = config[name];
    return ordered;
  }
}

/** A factory of grid samplers (`gridSampler({gridPoints: 10})(space, seed)`). */
export function gridSampler(options: GridOptions = {}): SamplerFactory {
  return (space, seed) => new GridSampler(space, seed, options);
}
