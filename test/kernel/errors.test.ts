import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  AlreadyRegisteredError,
  BadReturnError,
  CallSelfError,
  describe as describeValue,
  ErrorCodes,
  ExitError,
  InitError,
  InvalidArgumentError,
  MabeamError,
  MailboxFullError,
  MaxChildrenError,
  MaxRestartsError,
  NoChildError,
  NoProcessError,
  NotImplementedError,
  RuntimeStoppedError,
  TimeoutError,
} from '../../src/kernel/index.js';

/** One instance of every error class, with the code it must carry and a value its message names. */
const cases: [MabeamError, string, string][] = [
  [new TimeoutError('call to <n.0.7>', 250), ErrorCodes.TIMEOUT, '250'],
  [new NoProcessError('<n.0.7>'), ErrorCodes.NOPROC, '<n.0.7>'],
  [new MailboxFullError('<n.0.8>', 16), ErrorCodes.MAILBOX_FULL, '16'],
  [
    new InvalidArgumentError('spawn option "priority"', 'must be high, normal or low', 'urgent'),
    ErrorCodes.INVALID_ARGUMENT,
    '"urgent"',
  ],
  [new ExitError('<n.0.9>', 'crashed hard'), ErrorCodes.EXIT, 'crashed hard'],
  [new AlreadyRegisteredError('svc', '<n.0.1>'), ErrorCodes.ALREADY_REGISTERED, '"svc"'],
  [new CallSelfError('<n.0.3>'), ErrorCodes.CALL_SELF, '<n.0.3>'],
  [new NotImplementedError('<n.0.4>', 'handleCall'), ErrorCodes.NOT_IMPLEMENTED, 'handleCall'],
  [new InitError('<n.0.5>', new Error('no db')), ErrorCodes.INIT_FAILED, 'no db'],
  [new BadReturnError('handleCall', { weird: 1 }), ErrorCodes.BAD_RETURN, '{"weird":1}'],
  [new RuntimeStoppedError('node-x'), ErrorCodes.RUNTIME_STOPPED, 'node-x'],
  [new MaxRestartsError('<n.0.6>', 3, 5000), ErrorCodes.MAX_RESTARTS, '5000'],
  [new MaxChildrenError('<n.0.6>', 10), ErrorCodes.MAX_CHILDREN, '10'],
  [new NoChildError('<n.0.6>', 'worker-1'), ErrorCodes.NO_CHILD, '"worker-1"'],
];

describe('error codes', () => {
  it('are unique and all start with E_', () => {
    const codes = Object.values(ErrorCodes);
    expect(new Set(codes).size).toBe(codes.length);
    for (const code of codes) expect(code).toMatch(/^E_[A-Z_]+$/);
  });

  it('each have a doc comment in errors.ts', () => {
    const source = readFileSync(new URL('../../src/kernel/errors.ts', import.meta.url), 'utf8');
    for (const key of Object.keys(ErrorCodes)) {
      expect(source, key).toMatch(new RegExp(`\\*/\\s*\\n\\s*${key}: 'E_`));
    }
  });

  it('every code has an error class, and every class carries its own code', () => {
    const seen = new Set(cases.map(([, code]) => code));
    expect([...seen].sort()).toEqual(Object.values(ErrorCodes).sort());
    for (const [error, code] of cases) {
      expect(error.code, error.name).toBe(code);
      expect(error).toBeInstanceOf(MabeamError);
      expect(error).toBeInstanceOf(Error);
      expect(error.name).toBe(error.constructor.name);
    }
    // No two classes share a code.
    expect(new Set(cases.map(([e]) => e.constructor)).size).toBe(cases.length);
  });

  it('messages name the offending value', () => {
    for (const [error, , value] of cases) expect(error.message, error.name).toContain(value);
  });

  it('keep their details as fields', () => {
    const cause = new Error('inner');
    expect(new TimeoutError('x', 5).timeoutMs).toBe(5);
    expect(new NoProcessError('<a>').target).toBe('<a>');
    expect(new MailboxFullError('<a>', 3).capacity).toBe(3);
    expect(new InvalidArgumentError('opt', 'bad').argument).toBe('opt');
    expect(new ExitError('<a>', cause).reason).toBe(cause);
    expect(new ExitError('<a>', cause).cause).toBe(cause);
    expect(new ExitError('<a>', 'normal').cause).toBeUndefined();
    expect(new InitError('<a>', cause).cause).toBe(cause);
    expect(new AlreadyRegisteredError('n', '<a>').registeredName).toBe('n');
  });
});

describe('describe (value rendering in messages)', () => {
  it('renders each kind of value recognisably', () => {
    expect(describeValue('s')).toBe('"s"');
    expect(describeValue(12)).toBe('12');
    expect(describeValue(Number.NaN)).toBe('NaN');
    expect(describeValue(Number.NEGATIVE_INFINITY)).toBe('-Infinity');
    expect(describeValue(10n)).toBe('10n');
    expect(describeValue(Symbol('x'))).toBe('Symbol(x)');
    expect(describeValue(undefined)).toBe('undefined');
    expect(describeValue(null)).toBe('null');
    expect(describeValue(function named() {})).toBe('[function named]');
    expect(describeValue(new TypeError('bad'))).toBe('TypeError: bad');
    expect(describeValue({ a: [1, 2] })).toBe('{"a":[1,2]}');
    expect(describeValue([1, 'a'])).toBe('[1,"a"]');
    expect(describeValue([])).toBe('[]');
    expect(describeValue({ toString: () => '<custom>' })).toBe('<custom>');
  });

  it('truncates long values and survives cycles', () => {
    expect(describeValue('x'.repeat(1000)).length).toBeLessThanOrEqual(200);
    expect(describeValue('x'.repeat(1000))).toMatch(/^"x+\.\.\.$/);
    const big = { items: Array.from({ length: 500 }, (_, i) => i) };
    expect(describeValue(big).length).toBeLessThanOrEqual(200);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(describeValue(cyclic)).toBe('[object Object]');
  });
});
