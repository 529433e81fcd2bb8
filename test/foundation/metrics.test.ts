import fc from 'fast-check';
import { register as promGlobalRegistry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import {
  counter,
  distribution,
  type HistogramStats,
  kernelMetrics,
  lastValue,
  MetricCardinalityError,
  MetricConflictError,
  MetricDefinition,
  Metrics,
  MetricsErrorCodes,
  promLabelName,
  promMetricName,
  sum,
  summary,
} from '../../src/foundation/metrics.js';
import {
  type AnyRef,
  behaviour,
  ErrorCodes,
  ExitError,
  InvalidArgumentError,
  MabeamError,
  Runtime,
  reply,
  Supervisor,
  Telemetry,
  TimeoutError,
  VirtualClock,
} from '../../src/kernel/index.js';
import { awaitRestart, awaitTelemetry } from '../../src/kernel/testkit.js';
import { type Deferred, deferred, flush } from '../kernel/helpers.js';

const runtimes: Runtime[] = [];
const gates: Deferred<void>[] = [];
function runtime(options?: ConstructorParameters<typeof Runtime>[0]): Runtime {
  const rt = new Runtime(options);
  runtimes.push(rt);
  return rt;
}
function gate(): Deferred<void> {
  const g = deferred();
  gates.push(g);
  return g;
}
afterEach(async () => {
  for (const g of gates.splice(0)) g.resolve();
  await Promise.all(runtimes.splice(0).map((rt) => rt.shutdown()));
});

function expectCode(fn: () => unknown, code: string, mentions?: string): MabeamError {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(MabeamError);
  const error = caught as MabeamError;
  expect(error.code).toBe(code);
  if (mentions !== undefined) expect(error.message).toContain(mentions);
  return error;
}

function stats(metrics: Metrics, name: string, labels?: Record<string, string>): HistogramStats {
  const v = metrics.value(name, labels);
  if (v === undefined || typeof v === 'number') throw new Error(`${name} is not a histogram series`);
  return v;
}

// ---- the agents the runtime tests use ----------------------------------------------------------

type Call = 'ok' | 'boom' | { wait: Deferred<void> };
type Cast = 'crash' | { block: Deferred<void> } | number;

/** Replies 'ok'; 'boom' crashes inside the call; `{wait}` replies once the gate opens. */
const Worker = behaviour<string, string, Call, string, Cast, unknown>({
  init: (id) => id,
  async handleCall(msg, _from, id) {
    if (msg === 'boom') throw new Error(`${id} crashed in a call`);
    if (typeof msg === 'object') await msg.wait.promise;
    return reply('ok', id);
  },
  async handleCast(msg, id) {
    if (msg === 'crash') throw new Error(`${id} crashed on purpose`);
    if (typeof msg === 'object') await msg.block.promise;
    return id;
  },
});

// ---- direct API --------------------------------------------------------------------------------

describe('direct recording', () => {
  it('counters, gauges and histograms keep their figures per label set', () => {
    const m = new Metrics(new Telemetry());
    const ok = m.counter('jobs.done', { queue: 'a' });
    ok.inc();
    ok.inc(2);
    m.counter('jobs.done', { queue: 'b' }).inc();
    expect(m.counter('jobs.done', { queue: 'a' })).toBe(ok); // one series per label set
    expect(ok.value).toBe(3);
    expect(ok.labels).toEqual({ queue: 'a' });

    const depth = m.gauge('queue.depth');
    depth.set(10);
    depth.inc(5);
    depth.dec();
    expect(m.value('queue.depth')).toBe(14);

    const h = m.histogram('job.duration', { queue: 'a' }, { unit: 'millisecond' });
    for (const v of [4, 1, 3, 2]) h.record(v);
    expect(h.stats()).toMatchObject({ count: 4, sum: 10, min: 1, max: 4, mean: 2.5, p50: 2, p99: 4 });

    expect(m.value('jobs.done', { queue: 'b' })).toBe(1);
    expect(m.value('jobs.done', { queue: 'c' })).toBeUndefined();
    expect(m.value('nothing')).toBeUndefined();
  });

  it('label values may be numbers and booleans (stored as text), in any key order', () => {
    const m = new Metrics(new Telemetry());
    m.counter('hits', { code: 200, cached: true }).inc();
    m.counter('hits', { cached: true, code: 200 }).inc();
    expect(m.value('hits', { code: '200', cached: 'true' })).toBe(2);
    expect(m.snapshot().hits?.series).toEqual([{ labels: { cached: 'true', code: '200' }, value: 2 }]);
  });

  it('snapshot is a copy of every metric with its type, unit, description and drops', () => {
    const m = new Metrics(new Telemetry());
    m.counter('c', undefined, { description: 'the c' }).inc(2);
    m.histogram('h', undefined, { unit: 'byte' }).record(100);
    const snap = m.snapshot();
    m.counter('c').inc();
    expect(snap).toEqual({
      c: {
        type: 'counter',
        description: 'the c',
        unit: undefined,
        dropped: 0,
        series: [{ labels: {}, value: 2 }],
      },
      h: {
        type: 'histogram',
        description: undefined,
        unit: 'byte',
        dropped: 0,
        series: [
          {
            labels: {},
            value: {
              count: 1,
              sum: 100,
              min: 100,
              max: 100,
              mean: 100,
              p50: 100,
              p90: 100,
              p99: 100,
              p999: 100,
            },
          },
        ],
      },
    });
  });

  it('an empty histogram reports count 0, sum 0 and NaN for the rest', () => {
    const m = new Metrics(new Telemetry());
    const s = m.histogram('h').stats();
    expect(s.count).toBe(0);
    expect(s.sum).toBe(0);
    for (const k of ['min', 'max', 'mean', 'p50', 'p90', 'p99', 'p999'] as const) expect(s[k]).toBeNaN();
  });

  it('misuse throws E_INVALID_ARGUMENT naming the value', () => {
    const m = new Metrics(new Telemetry());
    expectCode(() => m.counter('c').inc(-1), ErrorCodes.INVALID_ARGUMENT, '-1');
    expectCode(() => m.counter('c').inc(Number.NaN), ErrorCodes.INVALID_ARGUMENT, 'NaN');
    expectCode(() => m.counter('c').inc(Number.POSITIVE_INFINITY), ErrorCodes.INVALID_ARGUMENT, 'Infinity');
    expectCode(() => m.gauge('g').set(Number.NaN), ErrorCodes.INVALID_ARGUMENT, 'NaN');
    expectCode(() => m.gauge('g').dec('1' as never), ErrorCodes.INVALID_ARGUMENT, '"1"');
    expectCode(() => m.histogram('h').record(-0.5), ErrorCodes.INVALID_ARGUMENT, '-0.5');
    expectCode(() => m.counter(''), ErrorCodes.INVALID_ARGUMENT, 'metric name');
    expectCode(() => m.counter(42 as never), ErrorCodes.INVALID_ARGUMENT, '42');
    expectCode(() => m.counter('l', { k: null } as never), ErrorCodes.INVALID_ARGUMENT, 'null');
    expectCode(() => m.counter('l2', 'x' as never), ErrorCodes.INVALID_ARGUMENT, '"x"');
    expectCode(
      () => m.histogram('h2', undefined, { significantDigits: 6 }),
      ErrorCodes.INVALID_ARGUMENT,
      '6',
    );
    expectCode(
      () => m.histogram('h3', undefined, { resolution: 0 }),
      ErrorCodes.INVALID_ARGUMENT,
      'resolution',
    );
    expectCode(() => m.histogram('h4', undefined, { max: -1 }), ErrorCodes.INVALID_ARGUMENT, '-1');
    expectCode(() => m.histogram('h5', { quantile: 'x' }), ErrorCodes.INVALID_ARGUMENT, 'quantile');
    expectCode(() => m.counter('l3', { 'a.b': 'x', a_b: 'y' }), ErrorCodes.INVALID_ARGUMENT, 'a.b');
    expectCode(() => new Metrics({} as never), ErrorCodes.INVALID_ARGUMENT, 'metrics target');
    expectCode(() => new Metrics(new Telemetry(), { maxSeries: 0 }), ErrorCodes.INVALID_ARGUMENT, '0');
    // Nothing half-made was left behind by the failures.
    expect(Object.keys(m.snapshot()).sort()).toEqual(['c', 'g', 'h']);
  });

  it('a name used with another type, other label names or other histogram options is E_METRIC_CONFLICT', () => {
    const m = new Metrics(new Telemetry());
    m.counter('x', { a: '1' });
    const e = expectCode(() => m.gauge('x'), MetricsErrorCodes.CONFLICT, 'counter');
    expect(e).toBeInstanceOf(MetricConflictError);
    expectCode(() => m.counter('x', { b: '1' }), MetricsErrorCodes.CONFLICT, '[a]');
    expectCode(() => m.counter('x'), MetricsErrorCodes.CONFLICT, '[a]');
    expectCode(() => m.value('x', { a: '1', b: '2' }), MetricsErrorCodes.CONFLICT, '[a, b]');
    m.histogram('h', undefined, { significantDigits: 2 });
    expect(() => m.histogram('h')).not.toThrow(); // no options: the existing ones apply
    expect(() => m.histogram('h', undefined, { significantDigits: 2, description: 'd' })).not.toThrow();
    expectCode(
      () => m.histogram('h', undefined, { significantDigits: 3 }),
      MetricsErrorCodes.CONFLICT,
      'histogram',
    );
    // Two names that are one name in Prometheus.
    m.counter('req.count');
    expectCode(() => m.counter('req_count'), MetricsErrorCodes.CONFLICT, 'req_count');
  });

  it('two metrics that would write one Prometheus sample are E_METRIC_CONFLICT, either way round', async () => {
    const m = new Metrics(new Telemetry());
    m.histogram('lat').record(5); // writes lat, lat_sum and lat_count
    expectCode(() => m.counter('lat_count'), MetricsErrorCodes.CONFLICT, 'lat_count');
    expectCode(() => m.gauge('lat.sum'), MetricsErrorCodes.CONFLICT, 'lat_sum');
    m.counter('size.count').inc(7);
    expectCode(() => m.histogram('size'), MetricsErrorCodes.CONFLICT, 'size_count');
    m.gauge('lat.max').set(1); // not a sample of `lat`: fine
    // Every sample of the exposition appears once.
    const samples = (await m.prometheus()).split('\n').filter((l) => l !== '' && !l.startsWith('#'));
    const keys = samples.map((l) => l.slice(0, l.lastIndexOf(' ')));
    expect(new Set(keys).size).toBe(keys.length);
    expect(Object.keys(m.snapshot()).sort()).toEqual(['lat', 'lat.max', 'size.count']);
    // Through definitions: against existing metrics, and within one attach call in either order.
    const t = new Telemetry();
    const d = Metrics.attach(t, [summary('db.query.duration')]);
    expectCode(
      () => d.attach([counter('db.query.duration.count', { event: ['db', 'query'] })]),
      MetricsErrorCodes.CONFLICT,
      'db_query_duration_count',
    );
    for (const defs of [
      [summary('a.b.time'), counter('a.b.time.sum', { event: ['a', 'b'] })],
      [counter('a.b.time.sum', { event: ['a', 'b'] }), summary('a.b.time')],
    ]) {
      expectCode(() => d.attach(defs), MetricsErrorCodes.CONFLICT, 'a_b_time_sum');
    }
    expect(t.handlers()).toHaveLength(1);
    expect(Object.keys(d.snapshot())).toEqual(['db.query.duration']);
  });

  it('counters and histograms refuse strings, booleans and null, naming the value', () => {
    const m = new Metrics(new Telemetry());
    const c = m.counter('c');
    const h = m.histogram('h');
    c.inc(1);
    h.record(2);
    expectCode(() => c.inc('5' as never), ErrorCodes.INVALID_ARGUMENT, '"5"');
    expectCode(() => c.inc(true as never), ErrorCodes.INVALID_ARGUMENT, 'true');
    expectCode(() => c.inc(null as never), ErrorCodes.INVALID_ARGUMENT, 'null');
    expectCode(() => h.record('5' as never), ErrorCodes.INVALID_ARGUMENT, '"5"');
    expectCode(() => h.record(true as never), ErrorCodes.INVALID_ARGUMENT, 'true');
    expectCode(() => h.record(null as never), ErrorCodes.INVALID_ARGUMENT, 'null');
    expectCode(() => h.record(1, 0), ErrorCodes.INVALID_ARGUMENT, 'count');
    expectCode(() => h.record(1, 1.5), ErrorCodes.INVALID_ARGUMENT, '1.5');
    expectCode(() => h.record(1, '2' as never), ErrorCodes.INVALID_ARGUMENT, '"2"');
    expect(c.value).toBe(1);
    expect(h.stats()).toMatchObject({ count: 1, sum: 2, min: 2, max: 2 });
  });

  it('label values holding any character never merge two label sets', () => {
    const m = new Metrics(new Telemetry());
    m.counter('x', { a: 'p\u0000q', b: 'r' }).inc();
    m.counter('x', { a: 'p', b: 'q\u0000r' }).inc(2);
    m.counter('x', { a: 'p","q', b: 'r' }).inc(3);
    m.counter('x', { a: 'p', b: 'q","r' }).inc(4);
    expect(m.value('x', { a: 'p\u0000q', b: 'r' })).toBe(1);
    expect(m.value('x', { a: 'p', b: 'q\u0000r' })).toBe(2);
    expect(m.value('x', { a: 'p","q', b: 'r' })).toBe(3);
    expect(m.value('x', { a: 'p', b: 'q","r' })).toBe(4);
    const t = new Telemetry();
    const d = Metrics.attach(t, [counter('x.y.count', { tags: ['a', 'b'] })]);
    t.execute(['x', 'y'], {}, { a: 'p\u0000q', b: 'r' });
    t.execute(['x', 'y'], {}, { a: 'p', b: 'q\u0000r' });
    expect(d.snapshot()['x.y.count']?.series).toHaveLength(2);
  });

  it('remove forgets one label set, which then starts again from zero', async () => {
    const m = new Metrics(new Telemetry(), { maxSeries: 2 });
    m.counter('by.agent', { agent: 'a' }).inc(3);
    m.counter('by.agent', { agent: 'b' }).inc(4);
    expect(m.remove('by.agent', { agent: 'a' })).toBe(true);
    expect(m.remove('by.agent', { agent: 'a' })).toBe(false);
    expect(m.remove('nope', { agent: 'a' })).toBe(false);
    expect(m.value('by.agent', { agent: 'a' })).toBeUndefined();
    expect(await m.prometheus()).not.toContain('agent="a"');
    m.counter('by.agent', { agent: 'c' }).inc(); // the freed slot counts for maxSeries
    expect(m.value('by.agent', { agent: 'c' })).toBe(1);
    expectCode(() => m.remove('by.agent', { who: 'b' }), MetricsErrorCodes.CONFLICT, '[agent]');
    m.counter('plain').inc();
    expectCode(() => m.remove('plain', {}), ErrorCodes.INVALID_ARGUMENT, 'no labels');
  });

  it('a label set beyond maxSeries is E_METRIC_CARDINALITY', () => {
    const m = new Metrics(new Telemetry(), { maxSeries: 2 });
    m.counter('by.user', { user: 'a' });
    m.counter('by.user', { user: 'b' });
    const e = expectCode(() => m.counter('by.user', { user: 'c' }), MetricsErrorCodes.CARDINALITY, '"c"');
    expect(e).toBeInstanceOf(MetricCardinalityError);
    expect((e as MetricCardinalityError).limit).toBe(2);
    expect(() => m.counter('by.user', { user: 'a' })).not.toThrow(); // existing sets still work
  });
});

describe('HDR histograms', () => {
  it('quantiles are within the significant digits, and count, sum, min, max, mean are exact', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 10_000_000 }), { minLength: 1, maxLength: 300 }),
        fc.integer({ min: 1, max: 4 }),
        (values, digits) => {
          const m = new Metrics(new Telemetry());
          const h = m.histogram('h', undefined, { significantDigits: digits, resolution: 1 });
          for (const v of values) h.record(v);
          const s = h.stats();
          const sorted = [...values].sort((a, b) => a - b);
          expect(s.count).toBe(values.length);
          expect(s.sum).toBe(values.reduce((a, b) => a + b, 0));
          expect(s.min).toBe(sorted[0]);
          expect(s.max).toBe(sorted.at(-1));
          expect(s.mean).toBeCloseTo(s.sum / s.count, 9);
          for (const [key, p] of [
            ['p50', 50],
            ['p90', 90],
            ['p99', 99],
            ['p999', 99.9],
          ] as const) {
            // HDR's percentile: the smallest recorded value with at least p% of the values at or below it.
            const exact = sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)] as number;
            expect(Math.abs(s[key] - exact)).toBeLessThanOrEqual(exact * 10 ** -digits + 1);
          }
        },
      ),
      { numRuns: 60 },
    );
  });

  it('fractional values are kept to the resolution (a microsecond for milliseconds)', () => {
    const m = new Metrics(new Telemetry());
    const ms = m.histogram('ms', undefined, { unit: 'millisecond' });
    for (const v of [0.0004, 0.0123, 0.0126, 1]) ms.record(v);
    expect(ms.stats()).toMatchObject({ min: 0.0004, p50: 0.012, p90: 1 });
    const coarse = m.histogram('coarse', undefined, { resolution: 1 });
    for (const v of [0.2, 0.4, 2.6]) coarse.record(v);
    expect(coarse.stats()).toMatchObject({ min: 0.2, max: 2.6, p50: 0.2 }); // clamped into [min, max]
    expect(coarse.stats().sum).toBeCloseTo(3.2, 12); // exact sums despite the coarse buckets
  });

  it('values above max count in count, sum and max but enter the quantiles as max', () => {
    const m = new Metrics(new Telemetry());
    const h = m.histogram('h', undefined, { max: 100, resolution: 1 });
    for (let i = 0; i < 98; i++) h.record(10);
    h.record(5000);
    h.record(9000);
    const s = h.stats();
    expect(s).toMatchObject({ count: 100, max: 9000, sum: 98 * 10 + 14_000 });
    expect(s.p50).toBe(10);
    expect(s.p999).toBeLessThanOrEqual(100);
  });
});

describe('HDR histogram counts', () => {
  it('do not wrap after 2^32 values in one bucket (64-bit buckets)', () => {
    const m = new Metrics(new Telemetry());
    const h = m.histogram('h', undefined, { resolution: 1 });
    h.record(1);
    h.record(2000);
    h.record(5, 2 ** 32 - 1);
    h.record(5); // the 2^32nd value in one bucket: a 32-bit count would wrap to 0 here
    const s = h.stats();
    expect(s.count).toBe(2 ** 32 + 2);
    expect(s.sum).toBe(2001 + 5 * 2 ** 32);
    expect(s).toMatchObject({ min: 1, max: 2000, p50: 5, p90: 5, p99: 5, p999: 5 });
  });
});

// ---- definitions -------------------------------------------------------------------------------

describe('definitions bound to telemetry', () => {
  it('parse the event and measurement from the name, and validate their options', () => {
    const d = summary('mabeam.call.stop.duration', { tags: ['outcome'], unit: 'millisecond' });
    expect(d).toBeInstanceOf(MetricDefinition);
    expect(d).toMatchObject({
      type: 'summary',
      event: ['mabeam', 'call', 'stop'],
      measurement: 'duration',
      tags: ['outcome'],
      unit: 'millisecond',
      scale: 1,
      histogram: { significantDigits: 3, resolution: 0.001, max: Number.POSITIVE_INFINITY },
    });
    expect(Object.isFrozen(d)).toBe(true);
    expect(counter('x', { event: ['a', 'b'] }).event).toEqual(['a', 'b']);
    expect(summary('s', { event: ['e'], unit: { from: 'millisecond', to: 'second' } })).toMatchObject({
      unit: 'second',
      scale: 0.001,
      histogram: { resolution: 0.000001 },
    });
    expectCode(() => counter('nodots'), ErrorCodes.INVALID_ARGUMENT, '"nodots"');
    expectCode(() => counter('a..b'), ErrorCodes.INVALID_ARGUMENT, '"a..b"');
    expectCode(() => counter('a.b', { tags: ['t', 't'] }), ErrorCodes.INVALID_ARGUMENT, '["t","t"]');
    expectCode(() => counter('a.b', { tags: 'outcome' as never }), ErrorCodes.INVALID_ARGUMENT, '"outcome"');
    expectCode(() => sum('a.b', { measurement: 3 as never }), ErrorCodes.INVALID_ARGUMENT, '3');
    expectCode(() => sum('a.b', { event: [] }), ErrorCodes.INVALID_ARGUMENT, 'event');
    expectCode(() => sum('a.b', { keep: true as never }), ErrorCodes.INVALID_ARGUMENT, 'keep');
    expectCode(
      () => summary('a.b', { unit: { from: 'second', to: 'byte' } }),
      ErrorCodes.INVALID_ARGUMENT,
      '"from":"second"',
    );
    expectCode(() => distribution('a.b', { significantDigits: 0 }), ErrorCodes.INVALID_ARGUMENT, '0');
    expectCode(
      () => new Metrics(new Telemetry()).attach([{ type: 'counter', name: 'a.b' } as never]),
      ErrorCodes.INVALID_ARGUMENT,
      'metric definition',
    );
  });

  it('counter, sum, last_value and summary aggregate per tag values', () => {
    const t = new Telemetry();
    const m = Metrics.attach(t, [
      counter('http.request.count', { tags: ['method'] }),
      sum('http.request.bytes', { tags: ['method'] }),
      lastValue('http.request.bytes.last', { event: ['http', 'request'], measurement: 'bytes' }),
      distribution('http.request.latency', {
        unit: { from: 'millisecond', to: 'second' },
        tags: ['method', 'status'],
      }),
    ]);
    const req = (method: string, status: number, bytes: number, latency: number) =>
      t.execute(['http', 'request'], { bytes, latency }, { method, status });
    req('GET', 200, 100, 10);
    req('GET', 200, 50, 30);
    req('POST', 500, 7, 1000);
    expect(m.value('http.request.count', { method: 'GET' })).toBe(2);
    expect(m.value('http.request.count', { method: 'POST' })).toBe(1);
    expect(m.value('http.request.bytes', { method: 'GET' })).toBe(150);
    expect(m.value('http.request.bytes.last')).toBe(7);
    const get = stats(m, 'http.request.latency', { method: 'GET', status: '200' });
    expect(get).toMatchObject({ count: 2, min: 0.01, max: 0.03 });
    expect(get.sum).toBeCloseTo(0.04, 12);
    expect(stats(m, 'http.request.latency', { method: 'POST', status: '500' }).p99).toBeCloseTo(1, 3);
  });

  it('keep, tagValues and a measurement function shape what is recorded', () => {
    const t = new Telemetry();
    const m = Metrics.attach(t, [
      counter('job.stop.count', {
        tags: ['kind'],
        keep: (md) => md.internal !== true,
        tagValues: (md) => ({ kind: String(md.job).split(':')[0] }),
      }),
      sum('job.stop.work', { measurement: (ms) => (ms.items ?? 0) * (ms.cost ?? 0) }),
    ]);
    t.execute(['job', 'stop'], { items: 2, cost: 3 }, { job: 'mail:1' });
    t.execute(['job', 'stop'], { items: 1, cost: 1 }, { job: 'mail:2' });
    t.execute(['job', 'stop'], { items: 5, cost: 1 }, { job: 'mail:3', internal: true });
    expect(m.value('job.stop.count', { kind: 'mail' })).toBe(2);
    expect(m.value('job.stop.work')).toBe(12); // keep applies per definition: the sum saw all three
  });

  it('tag values: primitives as text, refs by their name, absent as empty', async () => {
    const rt = runtime();
    const m = Metrics.attach(rt, [counter('t.e.count', { tags: ['v'] })]);
    const ref = await rt.spawn(Worker, 'w');
    for (const v of ['s', 3, false, 10n, undefined, null, ref, { a: 1 }])
      rt.telemetry.execute(['t', 'e'], {}, { v });
    expect(m.snapshot()['t.e.count']?.series.map((s) => s.labels.v)).toEqual([
      's',
      '3',
      'false',
      '10',
      '',
      ref.toString(),
      '{"a":1}',
    ]);
    expect(m.value('t.e.count', { v: '' })).toBe(2);
  });

  it('bad data is dropped and counted, never thrown (the handler stays attached)', () => {
    const t = new Telemetry();
    const m = Metrics.attach(
      t,
      [summary('x.y.v', { tags: ['k'] }), sum('x.y.s'), counter('x.y.count', { tags: ['k'] })],
      { maxSeries: 2 },
    );
    t.execute(['x', 'y'], {}, { k: 'a' }); // no measurement
    t.execute(['x', 'y'], { v: Number.NaN, s: Number.POSITIVE_INFINITY }, { k: 'a' });
    t.execute(['x', 'y'], { v: -1, s: -1 }, { k: 'a' }); // negative: not for a histogram or a sum
    t.execute(['x', 'y'], { v: 1, s: 1 }, { k: 'a' });
    t.execute(['x', 'y'], { v: 1, s: 1 }, { k: 'b' });
    t.execute(['x', 'y'], { v: 1, s: 1 }, { k: 'c' }); // a third label set: beyond maxSeries
    const snap = m.snapshot();
    expect(snap['x.y.v']?.dropped).toBe(4);
    expect(snap['x.y.s']?.dropped).toBe(3);
    expect(snap['x.y.count']?.dropped).toBe(1);
    expect(m.value('x.y.s')).toBe(3);
    expect(m.value('x.y.count', { k: 'a' })).toBe(4); // a counter counts events, measurement or not
    expect(m.bindings().every((b) => b.attached)).toBe(true);
  });

  it('attach is all or nothing; names already bound are E_METRIC_CONFLICT', () => {
    const t = new Telemetry();
    const m = Metrics.attach(t, [counter('a.b.count')]);
    expectCode(
      () => m.attach([counter('c.d.count'), counter('a.b.count')]),
      MetricsErrorCodes.CONFLICT,
      'a.b.count',
    );
    expectCode(
      () => m.attach([counter('e.f.count'), counter('e.f.count')]),
      MetricsErrorCodes.CONFLICT,
      'e.f.count',
    );
    expectCode(
      () => m.attach([counter('g.h.count'), summary('g.h.count')]),
      MetricsErrorCodes.CONFLICT,
      'g.h.count',
    );
    expectCode(
      () => m.attach([counter('i.j'), counter('i_j', { event: ['i'] })]),
      MetricsErrorCodes.CONFLICT,
      'i_j',
    );
    m.gauge('k.l');
    expectCode(() => m.attach([counter('m.n'), counter('k.l')]), MetricsErrorCodes.CONFLICT, 'gauge');
    expect(t.handlers().map((h) => h.id)).toHaveLength(1);
    expect(Object.keys(m.snapshot()).sort()).toEqual(['a.b.count', 'k.l']);
  });

  it('a definition whose handler failed or was detached may be attached again', () => {
    const t = new Telemetry();
    let fail = true;
    const def = counter('a.b.count', {
      keep: () => {
        if (fail) throw new Error('broken keep');
        return true;
      },
    });
    const m = Metrics.attach(t, [def, counter('c.d.count')]);
    t.execute(['a', 'b'], {});
    expect(m.bindings().find((b) => b.name === 'a.b.count')?.attached).toBe(false);
    expectCode(() => m.attach([counter('c.d.count')]), MetricsErrorCodes.CONFLICT, 'already bound');
    fail = false;
    m.attach([def]);
    t.execute(['a', 'b'], {});
    expect(m.value('a.b.count')).toBe(1);
    expect(m.bindings().map((b) => [b.name, b.attached])).toEqual([
      ['c.d.count', true],
      ['a.b.count', true],
    ]);
    const id = m.bindings()[0]?.handlerId as string;
    t.detach(id);
    m.attach([counter('c.d.count')]);
    t.execute(['c', 'd'], {});
    expect(m.value('c.d.count')).toBe(1);
  });

  it('detach stops recording and keeps the figures', () => {
    const t = new Telemetry();
    const m = Metrics.attach(t, [counter('a.b.count')]);
    t.execute(['a', 'b'], {});
    m.detach();
    t.execute(['a', 'b'], {});
    expect(t.enabled).toBe(false);
    expect(m.value('a.b.count')).toBe(1);
    expect(m.bindings()).toEqual([]);
    m.attach([counter('a.b.count')]); // the name is free again and the series carries on
    t.execute(['a', 'b'], {});
    expect(m.value('a.b.count')).toBe(2);
  });

  it('two Metrics on two runtimes never see each other', async () => {
    const a = runtime();
    const b = runtime();
    const ma = Metrics.attach(a, kernelMetrics());
    const mb = Metrics.attach(b, kernelMetrics());
    await a.spawn(Worker, 'a1');
    await a.spawn(Worker, 'a2');
    await b.spawn(Worker, 'b1');
    expect(ma.value('mabeam.agent.spawn.count')).toBe(2);
    expect(mb.value('mabeam.agent.spawn.count')).toBe(1);
  });
});

// ---- the kernel's events -----------------------------------------------------------------------

describe('kernelMetrics on a real runtime', () => {
  it('counts spawns, exits, crashes, restarts and overflows, and times calls by outcome', async () => {
    const clock = new VirtualClock();
    const rt = runtime({ clock, callTimeoutMs: 1000 });
    const m = Metrics.attach(rt, kernelMetrics());
    expect(m.value('mabeam.agent.spawn.count')).toBe(0); // present (0) before any event

    const a = await rt.spawn(Worker, 'a');
    const b = await rt.spawn(Worker, 'b');
    const c = await rt.spawn(Worker, 'c');

    // Calls: two fast ones, one answered after 7 virtual ms, one timeout, one callee crash.
    expect(await rt.call(a, 'ok')).toBe('ok');
    expect(await rt.call(b, 'ok')).toBe('ok');
    const slowGate = gate();
    const slow = rt.call(a, { wait: slowGate });
    clock.advance(7);
    slowGate.resolve();
    expect(await slow).toBe('ok');
    const stuck = gate();
    const timeout = rt.call(b, { wait: stuck }).catch((e: unknown) => e);
    await flush();
    clock.advance(1000);
    expect(await timeout).toBeInstanceOf(TimeoutError);
    stuck.resolve();
    const crashed = rt.call(c, 'boom').catch((e: unknown) => e);
    expect(await crashed).toBeInstanceOf(ExitError);

    // A crash from a cast, and a normal stop.
    const aDown = rt.awaitExit(a);
    rt.cast(a, 'crash');
    await aDown;
    await rt.stop(b);

    // A bounded mailbox overflows: the agent is held, one message fits, the next is refused.
    const sink = await rt.spawn(Worker, 'sink', { mailbox: { capacity: 1 } });
    rt.cast(sink, { block: gate() });
    await flush();
    rt.cast(sink, 1);
    expect(() => rt.cast(sink, 2)).toThrow(expect.objectContaining({ code: ErrorCodes.MAILBOX_FULL }));

    expect(m.value('mabeam.agent.spawn.count')).toBe(4);
    expect(m.value('mabeam.agent.crash.count', { callback: 'handler' })).toBe(2);
    expect(m.value('mabeam.agent.exit.count', { normal: 'false' })).toBe(2);
    expect(m.value('mabeam.agent.exit.count', { normal: 'true' })).toBe(1);
    expect(m.value('mabeam.mailbox.overflow.count', { policy: 'reject' })).toBe(1);
    expect(m.value('mabeam.supervisor.restart.count')).toBe(0);

    const ok = stats(m, 'mabeam.call.stop.duration', { outcome: 'ok' });
    expect(ok).toMatchObject({ count: 3, min: 0, max: 7, sum: 7, p50: 0, p99: 7 });
    expect(stats(m, 'mabeam.call.stop.duration', { outcome: 'timeout' })).toMatchObject({
      count: 1,
      max: 1000,
    });
    expect(stats(m, 'mabeam.call.stop.duration', { outcome: 'error' })).toMatchObject({ count: 1, max: 0 });
  });

  it('counts supervisor restarts and the give-up', async () => {
    const rt = runtime();
    const m = Metrics.attach(rt, kernelMetrics());
    const sup = await Supervisor.start(rt, {
      children: [Supervisor.childSpec('w', Worker, 'w', { options: { name: 'w' } })],
      intensity: 1,
      periodMs: 60_000,
    });
    const first = rt.whereis('w') as AnyRef;
    const restarted = awaitRestart(rt, 'w', first);
    rt.cast(first, 'crash');
    const second = await restarted;
    expect(m.value('mabeam.supervisor.restart.count')).toBe(1);

    const supDown = rt.awaitExit(sup);
    rt.cast(second, 'crash'); // a second crash within the period: too many restarts
    await supDown;
    // The kernel reports the exit that exceeded the intensity as a restart too, then the give-up.
    expect(m.value('mabeam.supervisor.restart.count')).toBe(2);
    expect(m.value('mabeam.supervisor.shutdown.count')).toBe(1);
    expect(m.value('mabeam.agent.spawn.count')).toBe(3); // supervisor, w, w again
  });
});

// ---- failing handlers --------------------------------------------------------------------------

describe('handler failures', () => {
  it('a definition that throws is detached and reported; the other metrics keep counting', async () => {
    const rt = runtime();
    const boom = new Error('tagValues broke');
    const m = Metrics.attach(rt, [
      ...kernelMetrics(),
      counter('mabeam.agent.spawn.fragile', {
        tags: ['name'],
        tagValues: (md) => {
          if (md.name === 'bad') throw boom;
          return md;
        },
      }),
    ]);
    // Someone else's handler on the same event fails too: the kernel detaches it, metrics go on.
    rt.telemetry.attach('someone-else', ['mabeam', 'agent', 'spawn'], () => {
      throw new Error('not ours');
    });
    const failure = awaitTelemetry(rt, ['telemetry', 'handler', 'failure'], (_ms, md) => md.error === boom);
    await rt.spawn(Worker, 'good', { name: 'good' });
    await rt.spawn(Worker, 'bad', { name: 'bad' });
    expect((await failure).metadata.handlerId).toBe(`${m.bindings().at(-1)?.handlerId}`);
    await rt.spawn(Worker, 'later', { name: 'later' });

    expect(m.value('mabeam.agent.spawn.count')).toBe(3);
    expect(m.value('mabeam.agent.spawn.fragile', { name: 'good' })).toBe(1);
    expect(m.value('mabeam.agent.spawn.fragile', { name: 'later' })).toBeUndefined(); // detached by then
    const fragile = m.bindings().find((b) => b.name === 'mabeam.agent.spawn.fragile');
    expect(fragile).toMatchObject({ attached: false, error: boom });
    expect(m.bindings().filter((b) => b.attached)).toHaveLength(kernelMetrics().length);
    expect(m.value('telemetry.handler.failure.count', { handlerId: 'someone-else' })).toBe(1);
    expect(m.value('telemetry.handler.failure.count', { handlerId: fragile?.handlerId ?? '' })).toBe(1);
    // Everything recorded so far is still there and exported.
    expect(await m.prometheus()).toContain('mabeam_agent_spawn_fragile{name="good"} 1');
  });
});

// ---- Prometheus --------------------------------------------------------------------------------

describe('Prometheus exposition', () => {
  it('sanitizes names, escapes label values, and exports histograms as HDR summaries', async () => {
    const t = new Telemetry();
    const m = Metrics.attach(t, [
      counter('app.req.count', { tags: ['path', 'peer.kind'], description: 'requests "served"\nper path' }),
      summary('app.req.duration', { unit: 'millisecond', resolution: 1 }),
    ]);
    t.execute(['app', 'req'], { duration: 10 }, { path: 'C:\\tmp "x"\nnext', 'peer.kind': 'agent' });
    for (const duration of [20, 30, 40])
      t.execute(['app', 'req'], { duration }, { path: '/', 'peer.kind': 'agent' });
    m.gauge('9lives').set(1.5);
    expect(await m.prometheus()).toBe(
      [
        '# HELP app_req_count requests "served"\\nper path',
        '# TYPE app_req_count counter',
        'app_req_count{path="C:\\\\tmp \\"x\\"\\nnext",peer_kind="agent"} 1',
        'app_req_count{path="/",peer_kind="agent"} 3',
        '',
        '# HELP app_req_duration app.req.duration (millisecond)',
        '# TYPE app_req_duration summary',
        'app_req_duration{quantile="0.5"} 20',
        'app_req_duration{quantile="0.9"} 40',
        'app_req_duration{quantile="0.99"} 40',
        'app_req_duration{quantile="0.999"} 40',
        'app_req_duration_sum 100',
        'app_req_duration_count 4',
        '',
        '# HELP _9lives 9lives',
        '# TYPE _9lives gauge',
        '_9lives 1.5',
        '',
      ].join('\n'),
    );
    expect(m.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
  });

  it('each Metrics has its own registry; prom-client global registry stays empty', async () => {
    const before = promGlobalRegistry.getMetricsAsArray().length;
    const one = new Metrics(new Telemetry());
    const two = new Metrics(new Telemetry());
    one.counter('same.name').inc();
    two.counter('same.name').inc(5);
    expect(await one.prometheus()).toContain('same_name 1');
    expect(await two.prometheus()).toContain('same_name 5');
    expect(one.registry).not.toBe(two.registry);
    expect(promGlobalRegistry.getMetricsAsArray().length).toBe(before);
  });

  it('values read at scrape time, not when the metric was made', async () => {
    const m = new Metrics(new Telemetry());
    const c = m.counter('late');
    expect(await m.prometheus()).toContain('late 0');
    c.inc(41);
    c.inc();
    expect(await m.prometheus()).toContain('late 42');
  });

  it('name helpers follow the Prometheus grammar', () => {
    expect(promMetricName('mabeam.call.stop.duration')).toBe('mabeam_call_stop_duration');
    expect(promMetricName('a:b-c d')).toBe('a:b_c_d');
    expect(promMetricName('1x')).toBe('_1x');
    expect(promLabelName('peer.kind:x')).toBe('peer_kind_x');
    expect(promLabelName('0')).toBe('_0');
  });
});

describe('errors', () => {
  it('metric errors are MabeamErrors with stable, distinct codes', () => {
    expect(MetricsErrorCodes).toEqual({ CONFLICT: 'E_METRIC_CONFLICT', CARDINALITY: 'E_METRIC_CARDINALITY' });
    const kernelCodes = new Set<string>(Object.values(ErrorCodes));
    for (const code of Object.values(MetricsErrorCodes)) expect(kernelCodes.has(code)).toBe(false);
    expect(new MetricConflictError('m', 'x')).toBeInstanceOf(MabeamError);
    expect(new MetricConflictError('m', 'x').name).toBe('MetricConflictError');
    expect(new InvalidArgumentError('a', 'b').code).toBe('E_INVALID_ARGUMENT');
  });
});
