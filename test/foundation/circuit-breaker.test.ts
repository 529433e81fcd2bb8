import { afterEach, describe, expect, it } from 'vitest';
import {
  CircuitBreaker,
  type CircuitBreakerOptions,
  CircuitOpenError,
} from '../../src/foundation/circuit-breaker.js';
import { InvalidArgumentError, type Metadata, Runtime, VirtualClock } from '../../src/kernel/index.js';
import { deferred } from '../kernel/helpers.js';

const runtimes: Runtime[] = [];
afterEach(async () => {
  await Promise.all(runtimes.splice(0).map((rt) => rt.shutdown()));
});

function setup(options: Partial<CircuitBreakerOptions> = {}) {
  const clock = new VirtualClock();
  const rt = new Runtime({ clock });
  runtimes.push(rt);
  const changes: Metadata[] = [];
  rt.telemetry.attach('test', ['mabeam', 'circuit_breaker', 'state_change'], (_e, m, meta) =>
    changes.push({ ...meta, durationMs: m.durationMs }),
  );
  const breaker = new CircuitBreaker(rt, {
    name: 'payments',
    trip: { kind: 'consecutive', failures: 3 },
    resetTimeoutMs: 1000,
    ...options,
  });
  return { clock, rt, breaker, changes };
}

const ok = () => 'ok';
const fail = () => {
  throw new Error('dependency down');
};

async function failTimes(breaker: CircuitBreaker, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await expect(breaker.call(fail)).rejects.toThrow('dependency down');
}

describe('CircuitBreaker options', () => {
  it('rejects bad options with E_INVALID_ARGUMENT naming the option', () => {
    const rt = new Runtime();
    runtimes.push(rt);
    const cases: [unknown, string][] = [
      [{}, '"name"'],
      [{ name: 'x', resetTimeoutMs: -1 }, '"resetTimeoutMs"'],
      [{ name: 'x', halfOpenCalls: 0 }, '"halfOpenCalls"'],
      [{ name: 'x', halfOpenTimeoutMs: -1 }, '"halfOpenTimeoutMs"'],
      [{ name: 'x', trip: { kind: 'consecutive', failures: 0 } }, '"trip.failures"'],
      [{ name: 'x', trip: { kind: 'count', failures: 2, windowMs: 0 } }, '"trip.windowMs"'],
      [{ name: 'x', trip: { kind: 'rate', rate: 1.5, windowMs: 10 } }, '"trip.rate"'],
      [{ name: 'x', trip: { kind: 'rate', rate: 0.5, windowMs: 10, minCalls: 0 } }, '"trip.minCalls"'],
      [{ name: 'x', trip: { kind: 'sometimes' } }, '"trip.kind"'],
      [{ name: 'x', isFailure: 3 }, '"isFailure"'],
      [{ name: 'x', threshold: 3 }, '"threshold"'],
    ];
    for (const [options, name] of cases) {
      let error: unknown;
      try {
        new CircuitBreaker(rt, options as CircuitBreakerOptions);
      } catch (e) {
        error = e;
      }
      expect(error, name).toBeInstanceOf(InvalidArgumentError);
      expect((error as Error).message).toContain(name);
    }
  });
});

describe('CircuitBreaker', () => {
  it('opens after consecutive failures; a success resets the count', async () => {
    const { breaker, changes } = setup();
    await failTimes(breaker, 2);
    expect(await breaker.call(ok)).toBe('ok');
    await failTimes(breaker, 2);
    expect(breaker.state).toBe('closed');
    await failTimes(breaker, 1);
    expect(breaker.state).toBe('open');
    expect(changes).toEqual([{ from: 'closed', to: 'open', name: 'payments', durationMs: 0 }]);
  });

  it('while open, rejects fast with E_CIRCUIT_OPEN without calling fn', async () => {
    const { breaker, clock } = setup();
    await failTimes(breaker, 3);
    clock.advance(400);
    let called = false;
    const error = await breaker
      .call(() => {
        called = true;
      })
      .catch((e: unknown) => e);
    expect(called).toBe(false);
    expect(error).toBeInstanceOf(CircuitOpenError);
    expect(error).toMatchObject({
      code: 'E_CIRCUIT_OPEN',
      breaker: 'payments',
      state: 'open',
      retryAfterMs: 600,
    });
    expect((error as Error).message).toBe(
      'circuit breaker "payments" is open; trial calls allowed in 600 ms',
    );
    expect(breaker.stats()).toMatchObject({ rejected: 1, calls: 3, failures: 3, opened: 1 });
  });

  it('turns half-open after the reset timeout, lets one trial through, and closes on its success', async () => {
    const { breaker, clock, changes } = setup();
    await failTimes(breaker, 3);
    clock.advance(999);
    expect(breaker.state).toBe('open');
    clock.advance(1);
    expect(breaker.state).toBe('half_open');
    const gate = deferred<string>();
    const trial = breaker.call(() => gate.promise);
    // The trial is in progress: others are still refused.
    await expect(breaker.call(ok)).rejects.toMatchObject({
      code: 'E_CIRCUIT_OPEN',
      state: 'half_open',
      retryAfterMs: 0,
    });
    gate.resolve('recovered');
    expect(await trial).toBe('recovered');
    expect(breaker.state).toBe('closed');
    expect(changes.map((c) => [c.from, c.to])).toEqual([
      ['closed', 'open'],
      ['open', 'half_open'],
      ['half_open', 'closed'],
    ]);
    expect(changes[1]).toMatchObject({ durationMs: 1000 });
  });

  it('reopens when a trial fails, and waits the full reset timeout again', async () => {
    const { breaker, clock, changes } = setup();
    await failTimes(breaker, 3);
    clock.advance(1000);
    await failTimes(breaker, 1);
    expect(breaker.state).toBe('open');
    clock.advance(999);
    await expect(breaker.call(ok)).rejects.toMatchObject({ retryAfterMs: 1 });
    clock.advance(1);
    expect(await breaker.call(ok)).toBe('ok');
    expect(changes.map((c) => c.to)).toEqual(['open', 'half_open', 'open', 'half_open', 'closed']);
  });

  it('needs every one of halfOpenCalls trials to succeed', async () => {
    const { breaker, clock } = setup({ halfOpenCalls: 2 });
    await failTimes(breaker, 3);
    clock.advance(1000);
    expect(await breaker.call(ok)).toBe('ok');
    expect(breaker.state).toBe('half_open');
    expect(await breaker.call(ok)).toBe('ok');
    expect(breaker.state).toBe('closed');
  });

  it('ignores the outcome of a call admitted before the last transition', async () => {
    const { breaker, clock } = setup();
    const slow = deferred<string>();
    const late = breaker.call(() => slow.promise);
    await failTimes(breaker, 3);
    clock.advance(1000);
    expect(breaker.state).toBe('half_open');
    slow.reject(new Error('late failure'));
    await expect(late).rejects.toThrow('late failure');
    // The stale failure did not reopen the circuit: the trial is still available.
    expect(breaker.state).toBe('half_open');
    expect(await breaker.call(ok)).toBe('ok');
    expect(breaker.state).toBe('closed');
  });

  it('counts only errors isFailure accepts', async () => {
    const { breaker } = setup({ isFailure: (e) => !(e instanceof RangeError) });
    for (let i = 0; i < 5; i++) {
      await expect(
        breaker.call(() => {
          throw new RangeError('bad input, not an outage');
        }),
      ).rejects.toBeInstanceOf(RangeError);
    }
    expect(breaker.state).toBe('closed');
  });

  it('reopens when a half-open trial does not settle within halfOpenTimeoutMs', async () => {
    const { breaker, clock, changes } = setup({
      trip: { kind: 'consecutive', failures: 1 },
      halfOpenTimeoutMs: 500,
    });
    await failTimes(breaker, 1);
    clock.advance(1000);
    const hanging = deferred<string>();
    const trial = breaker.call(() => hanging.promise);
    await expect(breaker.call(ok)).rejects.toMatchObject({ code: 'E_CIRCUIT_OPEN' }); // trial taken
    clock.advance(499);
    expect(breaker.state).toBe('half_open');
    clock.advance(1);
    expect(breaker.state).toBe('open'); // the trial is overdue: as if it had failed
    clock.advance(1000);
    expect(await breaker.call(ok)).toBe('ok'); // a fresh trial closes it
    expect(breaker.state).toBe('closed');
    hanging.resolve('late');
    expect(await trial).toBe('late'); // the late outcome is moot
    expect(breaker.state).toBe('closed');
    expect(changes.map((c) => c.to)).toEqual(['open', 'half_open', 'open', 'half_open', 'closed']);
  });

  it('an overdue trial noticed late counts the reset timeout from its deadline', async () => {
    const { breaker, clock } = setup({ trip: { kind: 'consecutive', failures: 1 }, halfOpenTimeoutMs: 100 });
    await failTimes(breaker, 1);
    clock.advance(1000);
    void breaker.call(() => new Promise<never>(() => {}));
    clock.advance(10 * 60_000); // nobody looked: the trial went overdue at +100 ms
    expect(await breaker.call(ok)).toBe('ok'); // open since then, half-open long since: a new trial
    expect(breaker.state).toBe('closed');
  });

  it('the half-open trial deadline defaults to resetTimeoutMs', async () => {
    const { breaker, clock } = setup({ trip: { kind: 'consecutive', failures: 1 } });
    await failTimes(breaker, 1);
    clock.advance(1000);
    void breaker.call(() => new Promise<never>(() => {}));
    clock.advance(999);
    expect(breaker.state).toBe('half_open');
    clock.advance(1);
    expect(breaker.state).toBe('open');
  });

  it('trip and reset force the state', async () => {
    const { breaker, changes } = setup();
    breaker.trip();
    breaker.trip();
    expect(breaker.state).toBe('open');
    breaker.reset();
    expect(breaker.state).toBe('closed');
    expect(changes.map((c) => c.to)).toEqual(['open', 'closed']);
  });
});

describe('CircuitBreaker trip policies', () => {
  it('count: opens after N failures within the window, old failures age out', async () => {
    const { breaker, clock } = setup({ trip: { kind: 'count', failures: 3, windowMs: 100 } });
    await failTimes(breaker, 2);
    clock.advance(100);
    expect(await breaker.call(ok)).toBe('ok');
    await failTimes(breaker, 1); // the first two are 100 ms old: outside the window
    expect(breaker.state).toBe('closed');
    clock.advance(50);
    await failTimes(breaker, 1);
    expect(breaker.state).toBe('closed'); // two within 100 ms
    await failTimes(breaker, 1);
    expect(breaker.state).toBe('open'); // three within 100 ms, a success between notwithstanding
  });

  it('rate: opens when the failure ratio in the window reaches the rate, after minCalls', async () => {
    const { breaker, clock } = setup({ trip: { kind: 'rate', rate: 0.5, windowMs: 1000, minCalls: 4 } });
    await failTimes(breaker, 3);
    expect(breaker.state).toBe('closed'); // only 3 calls: below minCalls
    for (let i = 0; i < 4; i++) await breaker.call(ok);
    expect(breaker.state).toBe('closed'); // 3 of 7 failed
    clock.advance(1000); // the window has moved past all of them
    for (let i = 0; i < 3; i++) await breaker.call(ok);
    await failTimes(breaker, 2);
    expect(breaker.state).toBe('closed'); // 2 of 5
    await failTimes(breaker, 1);
    expect(breaker.state).toBe('open'); // 3 of 6
  });

  it('rate: reset() forgets the counts of the window (also early on the clock)', async () => {
    const { breaker, clock } = setup({ trip: { kind: 'rate', rate: 0.5, windowMs: 10_000, minCalls: 10 } });
    await failTimes(breaker, 10);
    expect(breaker.state).toBe('open');
    breaker.reset();
    clock.advance(2000); // another bucket of the same window
    await failTimes(breaker, 1);
    expect(breaker.state).toBe('closed'); // 1 call since the reset: below minCalls
  });
});
