import { describe, expect, it } from 'vitest';
import { type EventName, type Measurements, type Metadata, Telemetry } from '../../src/kernel/index.js';

type Seen = [EventName, Measurements, Metadata, unknown];

function recorder(): {
  seen: Seen[];
  handler: (e: EventName, m: Measurements, md: Metadata, c: unknown) => void;
} {
  const seen: Seen[] = [];
  return { seen, handler: (e, m, md, c) => seen.push([e, m, md, c]) };
}

describe('Telemetry', () => {
  it('is disabled until a handler is attached', () => {
    const t = new Telemetry();
    expect(t.enabled).toBe(false);
    expect(t.listens(['a'])).toBe(false);
    t.execute(['a'], { n: 1 }); // no handlers: nothing happens
    const r = recorder();
    t.attach('h', ['a'], r.handler);
    expect(t.enabled).toBe(true);
    expect(t.listens(['a'])).toBe(true);
    expect(t.listens(['b'])).toBe(false);
  });

  it('delivers exact event names with measurements, metadata and config', () => {
    const t = new Telemetry();
    const r = recorder();
    t.attach('h', ['app', 'req', 'stop'], r.handler, { cfg: true });
    t.execute(['app', 'req', 'stop'], { duration: 5 }, { route: '/' });
    t.execute(['app', 'req'], { duration: 1 });
    t.execute(['app', 'req', 'stop', 'extra'], { duration: 1 });
    expect(r.seen).toEqual([[['app', 'req', 'stop'], { duration: 5 }, { route: '/' }, { cfg: true }]]);
  });

  it('metadata defaults to an empty object', () => {
    const t = new Telemetry();
    const r = recorder();
    t.attach('h', ['e'], r.handler);
    t.execute(['e'], {});
    expect(r.seen[0]?.[2]).toEqual({});
  });

  it('one handler can listen to several events; several handlers to one event, in attach order', () => {
    const t = new Telemetry();
    const order: string[] = [];
    t.attach('one', [['a'], ['b']], (e) => order.push(`one:${e.join('.')}`));
    t.attach('two', ['a'], (e) => order.push(`two:${e.join('.')}`));
    t.execute(['a'], {});
    t.execute(['b'], {});
    expect(order).toEqual(['one:a', 'two:a', 'one:b']);
    expect(t.handlers()).toEqual([
      { id: 'one', events: [['a'], ['b']] },
      { id: 'two', events: [['a']] },
    ]);
  });

  it('event names are compared element by element (a dot inside a name is not a separator)', () => {
    const t = new Telemetry();
    const r = recorder();
    t.attach('h', ['a.b'], r.handler);
    t.execute(['a', 'b'], {});
    expect(r.seen).toHaveLength(0);
    t.execute(['a.b'], {});
    expect(r.seen).toHaveLength(1);
    expect(t.handlers()).toEqual([{ id: 'h', events: [['a.b']] }]);
  });

  it('detach stops delivery and reports whether the id was attached', () => {
    const t = new Telemetry();
    const r = recorder();
    t.attach('h', [['a'], ['b']], r.handler);
    expect(t.detach('h')).toBe(true);
    expect(t.detach('h')).toBe(false);
    t.execute(['a'], {});
    t.execute(['b'], {});
    expect(r.seen).toHaveLength(0);
    expect(t.enabled).toBe(false);
    expect(t.listens(['a'])).toBe(false);
    // The id can be reused.
    t.attach('h', ['a'], r.handler);
    t.execute(['a'], {});
    expect(r.seen).toHaveLength(1);
  });

  it('refuses duplicate ids, empty ids and non-function handlers', () => {
    const t = new Telemetry();
    t.attach('h', ['a'], () => {});
    expect(() => t.attach('h', ['b'], () => {})).toThrow(
      expect.objectContaining({ code: 'E_ALREADY_REGISTERED', message: expect.stringMatching(/"h"/) }),
    );
    expect(() => t.attach('', ['b'], () => {})).toThrow(
      expect.objectContaining({ code: 'E_INVALID_ARGUMENT' }),
    );
    expect(() => t.attach(42 as never, ['b'], () => {})).toThrow(/got 42/);
    expect(() => t.attach('x', ['b'], 5 as never)).toThrow(
      expect.objectContaining({ code: 'E_INVALID_ARGUMENT', message: expect.stringMatching(/"x".*got 5/) }),
    );
  });

  it('a failing handler is detached and reported; the others still run', () => {
    const t = new Telemetry();
    const failures = recorder();
    const others = recorder();
    const boom = new Error('handler broke');
    t.attach('failures', ['telemetry', 'handler', 'failure'], failures.handler);
    t.attach('bad', ['e'], () => {
      throw boom;
    });
    t.attach('good', ['e'], others.handler);
    t.execute(['e'], { n: 1 });
    t.execute(['e'], { n: 2 });
    expect(others.seen.map((s) => s[1].n)).toEqual([1, 2]);
    expect(failures.seen).toHaveLength(1);
    expect(failures.seen[0]?.[2]).toEqual({ handlerId: 'bad', event: ['e'], error: boom });
    expect(t.handlers().map((h) => h.id)).toEqual(['failures', 'good']);
  });

  it('a handler that detaches itself or another while running does not disturb delivery', () => {
    const t = new Telemetry();
    const order: string[] = [];
    t.attach('first', ['e'], () => {
      order.push('first');
      t.detach('first');
    });
    t.attach('second', ['e'], () => order.push('second'));
    t.execute(['e'], {});
    t.execute(['e'], {});
    expect(order).toEqual(['first', 'second', 'second']);
  });

  it('a failing failure handler does not loop', () => {
    const t = new Telemetry();
    t.attach('failures', ['telemetry', 'handler', 'failure'], () => {
      throw new Error('also broken');
    });
    t.attach('bad', ['e'], () => {
      throw new Error('broken');
    });
    expect(() => t.execute(['e'], {})).not.toThrow();
    expect(t.enabled).toBe(false);
  });
});
