/**
 * Search spaces: every malformed space is refused up front with a typed error naming the
 * dimension and the problem; configurations are checked against their space; the constructors
 * build valid dimensions; the variables a study registers follow the space.
 */
import { describe, expect, it } from 'vitest';
import {
  bool,
  ConfigOutOfSpaceError,
  checkConfig,
  checkSpace,
  choice,
  float,
  int,
  SearchSpaceError,
  sameConfig,
  spaceVariables,
  TuneSpaceErrorCodes,
} from '../../src/tune/space.js';
import type { SearchSpace } from '../../src/tune/types.js';

/** The SearchSpaceError that `fn` throws (fails the test if it throws anything else). */
function spaceError(fn: () => unknown): SearchSpaceError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(SearchSpaceError);
    return error as SearchSpaceError;
  }
  throw new Error('expected a SearchSpaceError, nothing was thrown');
}

function configError(fn: () => unknown): ConfigOutOfSpaceError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigOutOfSpaceError);
    return error as ConfigOutOfSpaceError;
  }
  throw new Error('expected a ConfigOutOfSpaceError, nothing was thrown');
}

const SPACE: SearchSpace = {
  lr: { type: 'float', min: 1e-5, max: 1e-1, log: true },
  layers: { type: 'int', min: 1, max: 4 },
  act: { type: 'choice', values: ['relu', 'tanh'] },
  bn: { type: 'bool' },
};

describe('checkSpace', () => {
  it('accepts a valid space and returns a frozen copy with only the known fields', () => {
    const input = {
      x: { type: 'float', min: 0, max: 1 },
      c: { type: 'choice', values: ['a', 1, true, null] },
    };
    const space = checkSpace(input);
    expect(space).toEqual(input);
    expect(space).not.toBe(input);
    expect(Object.isFrozen(space)).toBe(true);
    expect(Object.isFrozen(space.c)).toBe(true);
    // The copy does not follow later changes to the input.
    (input.c.values as unknown[]).push('b');
    expect((space.c as unknown as { values: unknown[] }).values).toHaveLength(4);
  });

  it('accepts degenerate but meaningful dimensions (min = max, one choice)', () => {
    expect(() =>
      checkSpace({
        a: { type: 'float', min: 2, max: 2 },
        b: { type: 'int', min: 3, max: 3 },
        c: choice(['x']),
      }),
    ).not.toThrow();
  });

  it('accepts the widest ranges whose width is finite, and refuses the first that overflows', () => {
    const max = Number.MAX_VALUE;
    expect(() =>
      checkSpace({
        a: { type: 'float', min: -max / 2, max: max / 2 },
        b: { type: 'float', min: 0, max },
        c: { type: 'float', min: Number.MIN_VALUE, max, log: true },
        d: { type: 'int', min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER },
      }),
    ).not.toThrow();
    const e = spaceError(() => checkSpace({ x: { type: 'float', min: -max, max: 1e292 } }));
    expect(e.dimension).toBe('x');
    expect(e.problem).toMatch(/overflows to Infinity/);
    expect(spaceError(() => float(-1e308, 1e308)).problem).toMatch(/overflows to Infinity/);
  });

  it('refuses a space that is not an object, or that has no dimension', () => {
    for (const bad of [null, 42, 'x', [], [float(0, 1)]]) {
      const e = spaceError(() => checkSpace(bad));
      expect(e.dimension).toBeNull();
      expect(e.code).toBe(TuneSpaceErrorCodes.INVALID);
    }
    const e = spaceError(() => checkSpace({}));
    expect(e.message).toMatch(/no dimensions/);
  });

  const cases: [string, unknown, RegExp][] = [
    ['a dimension that is not an object', 5, /must be an object/],
    ['an unknown type', { type: 'uniform', min: 0, max: 1 }, /unknown type/],
    ['a missing type', { min: 0, max: 1 }, /unknown type/],
    ['an unknown field', { type: 'float', min: 0, max: 1, step: 0.1 }, /unknown field "step"/],
    ['log on an int', { type: 'int', min: 1, max: 10, log: true }, /unknown field "log"/],
    ['min > max', { type: 'float', min: 2, max: 1 }, /min 2 is greater than max 1/],
    ['int min > max', { type: 'int', min: 5, max: 1 }, /min 5 is greater than max 1/],
    ['a missing min', { type: 'float', max: 1 }, /min must be a finite number/],
    [
      'a non-finite max',
      { type: 'float', min: 0, max: Number.POSITIVE_INFINITY },
      /max must be a finite number/,
    ],
    ['a NaN min', { type: 'int', min: Number.NaN, max: 1 }, /min must be a finite number/],
    ['a string bound', { type: 'float', min: '0', max: 1 }, /min must be a finite number/],
    ['a log scale with min = 0', { type: 'float', min: 0, max: 1, log: true }, /log scale needs min > 0/],
    ['a log scale with min < 0', { type: 'float', min: -1, max: 1, log: true }, /log scale needs min > 0/],
    ['a non-boolean log', { type: 'float', min: 1, max: 2, log: 'yes' }, /log must be a boolean/],
    ['int bounds that are not integers', { type: 'int', min: 0.5, max: 3 }, /must be \(safe\) integers/],
    ['choice values that are not an array', { type: 'choice', values: 'abc' }, /values must be an array/],
    ['an empty choice list', { type: 'choice', values: [] }, /values must not be empty/],
    ['duplicate choice values', { type: 'choice', values: ['a', 'b', 'a'] }, /values 0 and 2 are the same/],
    ['an object choice value', { type: 'choice', values: [{ a: 1 }] }, /value 0 must be a string/],
    ['a NaN choice value', { type: 'choice', values: [1, Number.NaN] }, /value 1 must be a string/],
    [
      'a float whose width max - min overflows',
      { type: 'float', min: -1e308, max: 1e308 },
      /width max - min of \[-1e\+308, 1e\+308\] overflows to Infinity/,
    ],
  ];
  for (const [what, dim, message] of cases) {
    it(`refuses ${what}, naming the dimension`, () => {
      const e = spaceError(() => checkSpace({ ok: float(0, 1), bad: dim }));
      expect(e.dimension).toBe('bad');
      expect(e.code).toBe(TuneSpaceErrorCodes.INVALID);
      expect(e.message).toContain('"bad"');
      expect(e.message).toMatch(message);
    });
  }

  it('refuses an empty dimension name', () => {
    const e = spaceError(() => checkSpace({ '': float(0, 1) }));
    expect(e.message).toMatch(/non-empty/);
  });
});

describe('constructors', () => {
  it('build the dimension objects of the variables service', () => {
    expect(float(0, 1)).toEqual({ type: 'float', min: 0, max: 1 });
    expect(float(1e-4, 1, { log: true })).toEqual({ type: 'float', min: 1e-4, max: 1, log: true });
    expect(int(1, 8)).toEqual({ type: 'int', min: 1, max: 8 });
    expect(choice(['a', 'b'])).toEqual({ type: 'choice', values: ['a', 'b'] });
    expect(bool()).toEqual({ type: 'bool' });
    expect(checkSpace({ a: float(0, 1), b: int(0, 3), c: choice([1, 2]), d: bool() })).toBeDefined();
  });

  it('validate at once', () => {
    expect(spaceError(() => float(1, 0)).problem).toMatch(/greater than max/);
    expect(spaceError(() => float(0, 1, { log: true })).problem).toMatch(/log scale/);
    expect(spaceError(() => int(0, 2.5)).problem).toMatch(/integers/);
    expect(spaceError(() => choice([])).problem).toMatch(/empty/);
    expect(spaceError(() => choice([1, 1])).problem).toMatch(/same/);
  });
});

describe('checkConfig', () => {
  const good = { lr: 1e-3, layers: 2, act: 'tanh', bn: false };

  it('accepts a configuration inside the space, bounds included', () => {
    expect(checkConfig(SPACE, good)).toBe(good);
    expect(() => checkConfig(SPACE, { ...good, lr: 1e-5, layers: 4 })).not.toThrow();
    expect(() => checkConfig(SPACE, { ...good, lr: 1e-1, layers: 1 })).not.toThrow();
  });

  const cases: [string, Record<string, unknown>, string, RegExp][] = [
    ['a float above max', { lr: 0.5 }, 'lr', /within \[0.00001, 0.1\]/],
    ['a float below min', { lr: 1e-6 }, 'lr', /within/],
    ['a NaN float', { lr: Number.NaN }, 'lr', /finite number/],
    ['a string for a float', { lr: '0.01' }, 'lr', /finite number/],
    ['a fractional int', { layers: 2.5 }, 'layers', /integer/],
    ['an int out of range', { layers: 5 }, 'layers', /within \[1, 4\]/],
    ['an unknown choice', { act: 'gelu' }, 'act', /one of/],
    ['a non-boolean bool', { bn: 1 }, 'bn', /boolean/],
  ];
  for (const [what, change, dim, message] of cases) {
    it(`refuses ${what}, naming the dimension and the value`, () => {
      const config: Record<string, unknown> = { ...good, ...change };
      const e = configError(() => checkConfig(SPACE, config));
      expect(e.dimension).toBe(dim);
      expect(e.code).toBe(TuneSpaceErrorCodes.CONFIG_OUT_OF_SPACE);
      expect(Object.is(e.value, config[dim])).toBe(true);
      expect(e.message).toContain(`"${dim}"`);
      expect(e.message).toMatch(message);
    });
  }

  it('refuses a missing key and an extra key', () => {
    const { bn: _, ...missing } = good;
    expect(configError(() => checkConfig(SPACE, missing)).message).toMatch(/"bn": is missing/);
    const e = configError(() => checkConfig(SPACE, { ...good, momentum: 0.9 }));
    expect(e.dimension).toBe('momentum');
    expect(e.message).toMatch(/not a dimension/);
  });

  it('refuses a configuration that is not an object', () => {
    expect(configError(() => checkConfig(SPACE, null)).dimension).toBeNull();
    expect(configError(() => checkConfig(SPACE, [1, 2])).dimension).toBeNull();
  });

  it('sameConfig compares every dimension with Object.is', () => {
    expect(sameConfig(SPACE, good, { ...good })).toBe(true);
    expect(sameConfig(SPACE, good, { ...good, layers: 3 })).toBe(false);
  });
});

describe('spaceVariables', () => {
  it('gives one variable per dimension, prefixed, of the dimension kind, at its centre', () => {
    const specs = spaceVariables({ ...SPACE, drop: float(0, 0.5), width: int(1, 4) }, 'study7');
    expect(specs.map((s) => s.name)).toEqual([
      'study7.lr',
      'study7.layers',
      'study7.act',
      'study7.bn',
      'study7.drop',
      'study7.width',
    ]);
    const byName = Object.fromEntries(specs.map((s) => [s.name, s]));
    expect(byName['study7.lr']?.kind).toEqual(SPACE.lr);
    expect(byName['study7.lr']?.default).toBeCloseTo(1e-3, 12); // geometric mean of 1e-5 and 1e-1
    expect(byName['study7.layers']?.default).toBe(3); // round(2.5)
    expect(byName['study7.act']?.default).toBe('relu');
    expect(byName['study7.bn']?.default).toBe(false);
    expect(byName['study7.drop']?.default).toBe(0.25);
  });

  it('takes defaults from a configuration, checked against the space', () => {
    const specs = spaceVariables(SPACE, 'tune', { lr: 0.05, act: 'tanh' });
    expect(specs.find((s) => s.name === 'tune.lr')?.default).toBe(0.05);
    expect(specs.find((s) => s.name === 'tune.act')?.default).toBe('tanh');
    expect(specs.find((s) => s.name === 'tune.layers')?.default).toBe(3);
    const e = configError(() => spaceVariables(SPACE, 'tune', { layers: 9 }));
    expect(e.dimension).toBe('layers');
  });

  it('validates the space and the prefix', () => {
    spaceError(() => spaceVariables({ x: { type: 'float', min: 1, max: 0 } } as unknown as SearchSpace));
    expect(() => spaceVariables(SPACE, '')).toThrow(/prefix/);
  });
});
