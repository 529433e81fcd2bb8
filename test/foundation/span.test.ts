import { describe, expect, it } from 'vitest';
import { Metrics, summary } from '../../src/foundation/metrics.js';
import { SPAN_CONTEXT, span } from '../../src/foundation/span.js';
import {
  type Clock,
  ErrorCodes,
  type EventName,
  MabeamError,
  type Measurements,
  type Metadata,
  Runtime,
  Telemetry,
  VirtualClock,
} from '../../src/kernel/index.js';
import { deferred } from '../kernel/helpers.js';

interface Seen {
  event: string;
  measurements: Measurements;
  metadata: Metadata;
}

const PREFIX = ['app', 'job'] as const;

/** Records every start/stop/exception event of PREFIX. */
function record(telemetry: Telemetry, which: readonly string[] = ['start', 'stop', 'exception']): Seen[] {
  const seen: Seen[] = [];
  telemetry.attach(
    `record-${which.join('-')}`,
    which.map((w) => [...PREFIX, w]),
    (event: EventName, measurements, metadata) =>
      seen.push({ event: event.at(-1) as string, measurements, metadata }),
  );
  return seen;
}

/** A VirtualClock that counts its reads, to prove a span with no listener never reads it. */
class CountingClock extends VirtualClock {
  reads = 0;
  override now(): number {
    this.reads++;
    return super.now();
  }
}

function target(clock: Clock): { telemetry: Telemetry; clock: Clock } {
  return { telemetry: new Telemetry(), clock };
}

describe('span', () => {
  it('emits start then stop around a synchronous fn, timed by the given clock (ms)', () => {
    const clock = new VirtualClock(100);
    const t = target(clock);
    const seen = record(t.telemetry);
    const before = Date.now();
    const result = span(t, PREFIX, { job: 'a' }, () => {
      expect(seen.map((s) => s.event)).toEqual(['start']);
      clock.advance(5);
      return 42;
    });
    const after = Date.now();
    expect(result).toBe(42);
    expect(seen.map((s) => s.event)).toEqual(['start', 'stop']);
    const [start, stop] = seen as [Seen, Seen];
    expect(start.measurements.monotonic_time).toBe(100);
    expect(start.measurements.system_time).toBeGreaterThanOrEqual(before);
    expect(start.measurements.system_time).toBeLessThanOrEqual(after);
    expect(stop.measurements).toEqual({ duration: 5, monotonic_time: 105 });
    expect(start.metadata).toMatchObject({ job: 'a' });
    expect(stop.metadata).toMatchObject({ job: 'a' });
    expect(typeof start.metadata[SPAN_CONTEXT]).toBe('string');
    expect(stop.metadata[SPAN_CONTEXT]).toBe(start.metadata[SPAN_CONTEXT]);
  });

  it('waits for a promise: stop when it fulfils, with the same value', async () => {
    const clock = new VirtualClock();
    const t = target(clock);
    const seen = record(t.telemetry);
    const work = deferred<string>();
    const p = span(t, PREFIX, {}, () => work.promise);
    expect(seen.map((s) => s.event)).toEqual(['start']);
    clock.advance(12.5);
    work.resolve('done');
    expect(await p).toBe('done');
    expect(seen.map((s) => s.event)).toEqual(['start', 'stop']);
    expect(seen[1]?.measurements.duration).toBe(12.5);
  });

  it('a synchronous throw emits exception (kind throw) and rethrows the same error', () => {
    const clock = new VirtualClock();
    const t = target(clock);
    const seen = record(t.telemetry);
    const boom = new Error('boom');
    expect(() =>
      span(t, PREFIX, { job: 'b' }, () => {
        clock.advance(3);
        throw boom;
      }),
    ).toThrow(boom);
    expect(seen.map((s) => s.event)).toEqual(['start', 'exception']);
    const exception = seen[1] as Seen;
    expect(exception.measurements).toEqual({ duration: 3, monotonic_time: 3 });
    expect(exception.metadata).toMatchObject({
      job: 'b',
      kind: 'throw',
      reason: boom,
      stacktrace: boom.stack,
    });
    expect(exception.metadata[SPAN_CONTEXT]).toBe(seen[0]?.metadata[SPAN_CONTEXT]);
  });

  it('a rejected promise emits exception (kind reject) and the returned promise rejects with it', async () => {
    const clock = new VirtualClock();
    const t = target(clock);
    const seen = record(t.telemetry);
    const work = deferred<number>();
    const p = span(t, PREFIX, {}, () => work.promise);
    clock.advance(2);
    work.reject('not an error'); // thrown non-errors have no stack
    await expect(p).rejects.toBe('not an error');
    expect(seen.map((s) => s.event)).toEqual(['start', 'exception']);
    expect(seen[1]?.measurements.duration).toBe(2);
    expect(seen[1]?.metadata).toMatchObject({
      kind: 'reject',
      reason: 'not an error',
      stacktrace: undefined,
    });
  });

  it('overlapping spans carry distinct contexts', async () => {
    const t = target(new VirtualClock());
    const seen = record(t.telemetry);
    const one = deferred();
    const two = deferred();
    const a = span(t, PREFIX, { n: 1 }, () => one.promise);
    const b = span(t, PREFIX, { n: 2 }, () => two.promise);
    two.resolve();
    one.resolve();
    await Promise.all([a, b]);
    const ctx = (n: number, event: string) =>
      seen.find((s) => s.metadata.n === n && s.event === event)?.metadata[SPAN_CONTEXT];
    expect(ctx(1, 'stop')).toBe(ctx(1, 'start'));
    expect(ctx(2, 'stop')).toBe(ctx(2, 'start'));
    expect(ctx(1, 'start')).not.toBe(ctx(2, 'start'));
  });

  it('with nobody listening, fn runs directly: no clock read, same value, same promise', () => {
    const clock = new CountingClock();
    const t = target(clock);
    expect(span(t, PREFIX, {}, () => 'x')).toBe('x');
    const p = Promise.resolve(1);
    expect(span(t, PREFIX, {}, () => p)).toBe(p);
    // Handlers on other events only: still nothing to do.
    t.telemetry.attach('other', ['app', 'other', 'stop'], () => {});
    expect(span(t, PREFIX, {}, () => 'y')).toBe('y');
    expect(() =>
      span(t, PREFIX, {}, () => {
        throw new Error('still propagates');
      }),
    ).toThrow('still propagates');
    expect(clock.reads).toBe(0);
  });

  it('emits only the events someone listens to', () => {
    const clock = new VirtualClock();
    const t = target(clock);
    const seen = record(t.telemetry, ['stop']);
    span(t, PREFIX, {}, () => clock.advance(1));
    expect(() =>
      span(t, PREFIX, {}, () => {
        throw new Error('x');
      }),
    ).toThrow('x');
    expect(seen.map((s) => [s.event, s.measurements.duration])).toEqual([['stop', 1]]);
  });

  it('a plain Telemetry times with performance.now', () => {
    const telemetry = new Telemetry();
    const seen = record(telemetry);
    const before = performance.now();
    span(telemetry, PREFIX, {}, () => undefined);
    const after = performance.now();
    const stop = seen[1] as Seen;
    expect(stop.measurements.duration).toBeGreaterThanOrEqual(0);
    expect(stop.measurements.duration).toBeLessThanOrEqual(after - before);
    expect(stop.measurements.monotonic_time).toBeGreaterThanOrEqual(before);
  });

  it('a failing handler is detached and reported; the span and its result are unaffected', () => {
    const clock = new VirtualClock();
    const t = target(clock);
    const failures: Metadata[] = [];
    t.telemetry.attach('failures', ['telemetry', 'handler', 'failure'], (_e, _m, md) => failures.push(md));
    t.telemetry.attach('bad', [...PREFIX, 'start'], () => {
      throw new Error('bad handler');
    });
    const seen = record(t.telemetry, ['stop']);
    expect(span(t, PREFIX, {}, () => 'ok')).toBe('ok');
    expect(span(t, PREFIX, {}, () => 'again')).toBe('again');
    expect(failures.map((f) => f.handlerId)).toEqual(['bad']);
    expect(seen).toHaveLength(2);
  });

  it('refuses a bad target, prefix or fn with E_INVALID_ARGUMENT before running anything', () => {
    const t = new Telemetry();
    // Someone listens: the prefix's elements are checked only then (see span's TSDoc).
    t.attach('any', ['app', 'job', 'stop'], () => {});
    let ran = false;
    const fn = () => {
      ran = true;
    };
    const cases: [() => unknown, string][] = [
      [() => span({} as never, PREFIX, {}, fn), 'span target'],
      [() => span(t, [] as never, {}, fn), '[]'],
      [() => span(t, 'app.job' as never, {}, fn), '"app.job"'],
      [() => span(t, ['app', 3] as never, {}, fn), '["app",3]'],
      [() => span(t, PREFIX, {}, 'fn' as never), '"fn"'],
    ];
    for (const [call, mention] of cases) {
      let caught: unknown;
      try {
        call();
      } catch (error) {
        caught = error;
      }
      expect(caught).toBeInstanceOf(MabeamError);
      expect((caught as MabeamError).code).toBe(ErrorCodes.INVALID_ARGUMENT);
      expect((caught as MabeamError).message).toContain(mention);
    }
    expect(ran).toBe(false);
  });

  it('feeds metric definitions: a summary of a runtime span duration per tag', async () => {
    const clock = new VirtualClock();
    const rt = new Runtime({ clock });
    try {
      const m = Metrics.attach(rt, [
        summary('app.job.stop.duration', { unit: 'millisecond', tags: ['queue'] }),
        summary('app.job.exception.duration', { unit: 'millisecond', tags: ['queue', 'kind'] }),
      ]);
      for (const ms of [1, 2, 3, 4]) span(rt, PREFIX, { queue: 'mail' }, () => clock.advance(ms));
      const slow = deferred();
      const pending = span(rt, PREFIX, { queue: 'mail' }, () => slow.promise);
      clock.advance(10);
      slow.reject(new Error('late'));
      await expect(pending).rejects.toThrow('late');
      expect(m.value('app.job.stop.duration', { queue: 'mail' })).toMatchObject({
        count: 4,
        sum: 10,
        min: 1,
        max: 4,
        p50: 2,
      });
      expect(m.value('app.job.exception.duration', { queue: 'mail', kind: 'reject' })).toMatchObject({
        count: 1,
        max: 10,
      });
    } finally {
      await rt.shutdown();
    }
  });
});
