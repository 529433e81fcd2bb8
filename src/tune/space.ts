/**
 * Search spaces of `mabeam tune`: validation, the constructors users write spaces with, the check
 * that a configuration lies in its space, and the universal variables a study registers for it.
 *
 * A space is plain data (`{lr: float(1e-5, 1e-1, {log: true}), layers: int(1, 4), act:
 * choice(['relu', 'tanh'])}`), so it can come from a JSON file as well as from code. `checkSpace`
 * checks all of it before any trial runs and names the dimension and the problem, so a typo in a
 * space never surfaces as a strange sample halfway through a study. It returns a frozen copy
 * holding only the fields a dimension has; samplers work on that copy.
 *
 * Choice values are restricted to strings, finite numbers, booleans and null. Configurations
 * travel to worker threads and into storage by copy, and choices are compared with Object.is
 * (like the variables service does): an object or array value would no longer equal itself once
 * copied, so a resumed study could not tell which choice it had made.
 */
import type { BoolKind, ChoiceKind, FloatKind, IntKind, VariableSpec } from '../agents/index.js';
import { describe, InvalidArgumentError, MabeamError } from '../kernel/index.js';
import type { Config, Dimension, SearchSpace } from './types.js';

// ---- errors ------------------------------------------------------------------------------------

/** Error codes of search spaces (unique across mabeam, never reused). */
export const TuneSpaceErrorCodes = {
  /** A search space, or one of its dimensions, is malformed. */
  INVALID: 'E_TUNE_SPACE_INVALID',
  /** A configuration does not lie in its space (a missing or extra key, a value out of range). */
  CONFIG_OUT_OF_SPACE: 'E_TUNE_CONFIG_OUT_OF_SPACE',
} as const;

/** A malformed search space. `dimension` names the faulty dimension (null: the space as a whole). */
export class SearchSpaceError extends MabeamError {
  /** The dimension's name, or null when the problem is with the space itself (or an unnamed dimension). */
  readonly dimension: string | null;
  /** What is wrong, as in the message. */
  readonly problem: string;
  constructor(dimension: string | null, problem: string, ...value: [unknown] | []) {
    const where = dimension === null ? 'search space' : `search space dimension ${JSON.stringify(dimension)}`;
    const got = value.length > 0 ? ` (got ${describe(value[0])})` : '';
    super(TuneSpaceErrorCodes.INVALID, `invalid ${where}: ${problem}${got}`);
    this.dimension = dimension;
    this.problem = problem;
  }
}

/** A configuration that does not lie in its search space. */
export class ConfigOutOfSpaceError extends MabeamError {
  /** The dimension whose value is wrong, missing or unknown; null when the config is not an object. */
  readonly dimension: string | null;
  /** The offending value (undefined for a missing key). */
  readonly value: unknown;
  constructor(dimension: string | null, problem: string, value?: unknown) {
    const where = dimension === null ? 'configuration' : `configuration value ${JSON.stringify(dimension)}`;
    super(TuneSpaceErrorCodes.CONFIG_OUT_OF_SPACE, `invalid ${where}: ${problem} (got ${describe(value)})`);
    this.dimension = dimension;
    this.value = value;
  }
}

// ---- validation --------------------------------------------------------------------------------

const FIELDS: Readonly<Record<Dimension['type'], readonly string[]>> = {
  float: ['type', 'min', 'max', 'log'],
  int: ['type', 'min', 'max'],
  choice: ['type', 'values'],
  bool: ['type'],
};

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/** Validate one dimension and return a frozen copy of it; `name` labels the errors. */
function checkDimension(name: string | null, dim: unknown): Dimension {
  if (!isPlainObject(dim)) {
    throw new SearchSpaceError(name, "must be an object such as {type: 'float', min: 0, max: 1}", dim);
  }
  const type = dim.type;
  if (type !== 'float' && type !== 'int' && type !== 'choice' && type !== 'bool') {
    throw new SearchSpaceError(name, "unknown type: must be 'float', 'int', 'choice' or 'bool'", type);
  }
  const fields = FIELDS[type];
  for (const key of Object.keys(dim)) {
    if (!fields.includes(key)) {
      throw new SearchSpaceError(
        name,
        `unknown field ${JSON.stringify(key)} for a ${type} (it has ${fields.join(', ')})`,
      );
    }
  }
  switch (type) {
    case 'float':
    case 'int': {
      const { min, max } = dim;
      if (typeof min !== 'number' || !Number.isFinite(min))
        throw new SearchSpaceError(name, 'min must be a finite number', min);
      if (typeof max !== 'number' || !Number.isFinite(max))
        throw new SearchSpaceError(name, 'max must be a finite number', max);
      if (min > max) throw new SearchSpaceError(name, `min ${min} is greater than max ${max}`);
      if (type === 'int') {
        if (!Number.isSafeInteger(min) || !Number.isSafeInteger(max)) {
          throw new SearchSpaceError(name, 'int bounds must be (safe) integers', [min, max]);
        }
        return Object.freeze({ type: 'int', min, max } satisfies IntKind);
      }
      const log = dim.log;
      if (log !== undefined && typeof log !== 'boolean')
        throw new SearchSpaceError(name, 'log must be a boolean', log);
      if (log === true && min <= 0) throw new SearchSpaceError(name, `a log scale needs min > 0`, min);
      // Samplers, grids and schedulers work with the width of the range: an infinite one would
      // make every draw max and every grid point the same.
      if (log !== true && !Number.isFinite(max - min)) {
        throw new SearchSpaceError(
          name,
          `the width max - min of [${min}, ${max}] overflows to Infinity: narrow the bounds`,
        );
      }
      return Object.freeze(
        log === true ? { type: 'float', min, max, log } : { type: 'float', min, max },
      ) as FloatKind;
    }
    case 'choice': {
      const values = dim.values;
      if (!Array.isArray(values)) throw new SearchSpaceError(name, 'values must be an array', values);
      if (values.length === 0) throw new SearchSpaceError(name, 'values must not be empty');
      for (let i = 0; i < values.length; i++) {
        const v = values[i] as unknown;
        const ok =
          typeof v === 'string' ||
          typeof v === 'boolean' ||
          v === null ||
          (typeof v === 'number' && Number.isFinite(v));
        if (!ok) {
          throw new SearchSpaceError(
            name,
            `value ${i} must be a string, a finite number, a boolean or null`,
            v,
          );
        }
        for (let j = 0; j < i; j++) {
          if (Object.is(values[j], v))
            throw new SearchSpaceError(name, `values ${j} and ${i} are the same`, v);
        }
      }
      return Object.freeze({ type: 'choice', values: Object.freeze(values.slice()) } satisfies ChoiceKind);
    }
    case 'bool':
      return Object.freeze({ type: 'bool' } satisfies BoolKind);
  }
}

/**
 * Validate a search space (for example one read from JSON) and return a frozen copy of it.
 * Throws SearchSpaceError naming the dimension and the problem: an empty space, an unknown type
 * or field, non-finite bounds, min > max, a linear float whose width max - min overflows to
 * Infinity (such as [-1e308, 1e308]), a log scale with min <= 0, non-integer int bounds, an empty
 * choice list, a choice value that is not a primitive, or two equal choices.
 */
export function checkSpace(space: unknown): SearchSpace {
  if (!isPlainObject(space)) throw new SearchSpaceError(null, 'must be an object of named dimensions', space);
  const names = Object.keys(space);
  if (names.length === 0) throw new SearchSpaceError(null, 'has no dimensions');
  const out: Record<string, Dimension> = {};
  for (const name of names) {
    if (name === '') throw new SearchSpaceError(name, 'a dimension name must be a non-empty string');
    out[name] = checkDimension(name, space[name]);
  }
  return Object.freeze(out);
}

/**
 * Check that `config` lies in `space`: an object with exactly the space's keys, each value valid
 * for its dimension (a finite float within bounds, an integer within bounds, one of the choices
 * by Object.is, a boolean). Returns `config`. Throws ConfigOutOfSpaceError naming the dimension
 * and the value. `space` must be valid (see `checkSpace`).
 */
export function checkConfig(space: SearchSpace, config: unknown): Config {
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    throw new ConfigOutOfSpaceError(null, 'must be an object', config);
  }
  const c = config as Record<string, unknown>;
  for (const key of Object.keys(c)) {
    if (!Object.hasOwn(space, key))
      throw new ConfigOutOfSpaceError(key, 'is not a dimension of the space', c[key]);
  }
  for (const name in space) {
    const dim = space[name] as Dimension;
    if (!Object.hasOwn(c, name)) throw new ConfigOutOfSpaceError(name, 'is missing', undefined);
    const problem = valueProblem(dim, c[name]);
    if (problem !== null) throw new ConfigOutOfSpaceError(name, problem, c[name]);
  }
  return config as Config;
}

/** Why `value` is not a valid value of `dim`, or null when it is. */
function valueProblem(dim: Dimension, value: unknown): string | null {
  switch (dim.type) {
    case 'float':
      if (typeof value !== 'number' || !Number.isFinite(value)) return 'must be a finite number';
      return value < dim.min || value > dim.max ? `must be within [${dim.min}, ${dim.max}]` : null;
    case 'int':
      if (!Number.isInteger(value)) return 'must be an integer';
      return (value as number) < dim.min || (value as number) > dim.max
        ? `must be within [${dim.min}, ${dim.max}]`
        : null;
    case 'choice':
      return indexOfChoice(dim, value) < 0 ? `must be one of ${describe(dim.values)}` : null;
    case 'bool':
      return typeof value === 'boolean' ? null : 'must be a boolean';
  }
}

/** The index of `value` among a choice dimension's values (Object.is), or -1. */
export function indexOfChoice(dim: Pick<ChoiceKind, 'values'>, value: unknown): number {
  const values = dim.values;
  for (let i = 0; i < values.length; i++) if (Object.is(values[i], value)) return i;
  return -1;
}

/** True when two configurations of `space` have the same value in every dimension (Object.is). */
export function sameConfig(space: SearchSpace, a: Config, b: Config): boolean {
  if (a === b) return true;
  for (const name in space) if (!Object.is(a[name], b[name])) return false;
  return true;
}

// ---- universal variables -----------------------------------------------------------------------

/**
 * The variable specs a study registers with the universal-variables service (one per dimension,
 * named `<prefix>.<dimension>`, of the dimension's kind). Each starts at `defaults[dimension]` when
 * given (checked against the space), else at the dimension's centre: the midpoint of a float (the
 * geometric mean on a log scale), the rounded midpoint of an int, the first choice, false.
 */
export function spaceVariables(space: SearchSpace, prefix = 'tune', defaults?: Config): VariableSpec[] {
  if (typeof prefix !== 'string' || prefix === '') {
    throw new InvalidArgumentError('variable prefix', 'must be a non-empty string', prefix);
  }
  const checked = checkSpace(space);
  const specs: VariableSpec[] = [];
  for (const name in checked) {
    const dim = checked[name] as Dimension;
    let value: unknown;
    if (defaults !== undefined && Object.hasOwn(defaults, name)) {
      value = defaults[name];
      const problem = valueProblem(dim, value);
      if (problem !== null) throw new ConfigOutOfSpaceError(name, `default ${problem}`, value);
    } else {
      value = centre(dim);
    }
    specs.push({ name: `${prefix}.${name}`, kind: dim, default: value });
  }
  return specs;
}

/** The centre of a dimension, used as a variable's default. */
function centre(dim: Dimension): unknown {
  switch (dim.type) {
    case 'float':
      return dim.log === true
        ? Math.min(dim.max, Math.max(dim.min, Math.sqrt(dim.min) * Math.sqrt(dim.max)))
        : dim.min + (dim.max - dim.min) / 2;
    case 'int':
      return Math.round(dim.min + (dim.max - dim.min) / 2);
    case 'choice':
      return dim.values[0];
    case 'bool':
      return false;
  }
}

// ---- constructors ------------------------------------------------------------------------------

/**
 * A real dimension in [min, max]; `{log: true}` samples it log-uniformly (for learning rates and
 * regularization strengths; then min must be > 0). Throws SearchSpaceError on bad bounds.
 */
export function float(min: number, max: number, options: { readonly log?: boolean } = {}): FloatKind {
  const dim: Record<string, unknown> = { type: 'float', min, max };
  if (options.log !== undefined) dim.log = options.log;
  return checkDimension(null, dim) as FloatKind;
}

/** An integer dimension in [min, max] (both inclusive). Throws SearchSpaceError on bad bounds. */
export function int(min: number, max: number): IntKind {
  return checkDimension(null, { type: 'int', min, max }) as IntKind;
}

/**
 * A categorical dimension: one of `values` (strings, finite numbers, booleans or null, all
 * different). Throws SearchSpaceError on an empty or invalid list.
 */
export function choice<const T extends string | number | boolean | null>(values: readonly T[]): ChoiceKind {
  return checkDimension(null, { type: 'choice', values }) as ChoiceKind;
}

/** A boolean dimension (true or false). */
export function bool(): BoolKind {
  return checkDimension(null, { type: 'bool' }) as BoolKind;
}
