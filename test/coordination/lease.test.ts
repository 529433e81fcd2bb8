import { afterEach, describe, expect, it } from 'vitest';
import {
  Fence,
  FencedError,
  FencedStore,
  LEASE_EXPIRED,
  LEASE_GRANTED,
  LEASE_RELEASED,
  LEASE_TIMEOUT,
  LeaseExpiredError,
  type LeaseGrant,
  LeaseHolderExitedError,
  LeaseLock,
  LeaseLockStoppedError,
  LeaseTimeoutError,
  StaleTokenError,
} from '../../src/coordination/lease.js';
import {
  type AnyRef,
  behaviour,
  type Clock,
  InvalidArgumentError,
  Runtime,
  type TimerHandle,
  VirtualClock,
} from '../../src/kernel/index.js';
import { awaitTelemetry, probe } from '../../src/kernel/testkit.js';
import { deferred, flush, watch } from '../kernel/helpers.js';

let rt: Runtime;
let clock: VirtualClock;
afterEach(async () => {
  await rt?.shutdown();
});

async function setup(): Promise<LeaseLock> {
  clock = new VirtualClock();
  rt = new Runtime({ clock });
  return LeaseLock.start(rt);
}

/** Holder agents. */
function agents(n: number): AnyRef[] {
  return Array.from({ length: n }, () => probe(rt).ref);
}

/** The lock has handled everything sent so far, and the replies have been delivered. */
async function settled(lock: LeaseLock): Promise<void> {
  await rt.whenMailboxBelow(lock.ref, 1);
  await flush();
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    (v) => {
      throw new Error(`expected a rejection, got ${JSON.stringify(v)}`);
    },
    (e: unknown) => e,
  );
}

describe('LeaseLock: grant, renew, release', () => {
  it('grants a free resource at once with a token and an expiry on the runtime clock', async () => {
    const lock = await setup();
    const [a] = agents(1) as [AnyRef];
    clock.advance(10);
    const granted = awaitTelemetry(rt, LEASE_GRANTED);
    const g = await lock.acquire('r', a, { ttlMs: 100 });
    expect(g).toEqual({ resource: 'r', token: 1, expiresAt: 110, holder: a.toJSON() });
    expect(lock.holder('r')).toEqual(g);
    expect(lock.holder('other')).toBeUndefined();
    expect((await granted).metadata).toMatchObject({ resource: 'r', token: 1 });
  });

  it('renew extends the same lease (same token) from now', async () => {
    const lock = await setup();
    const [a] = agents(1) as [AnyRef];
    const g = await lock.acquire('r', a, { ttlMs: 100 });
    clock.advance(60);
    const r = await lock.renew('r', g.token, 100);
    expect(r).toMatchObject({ token: g.token, expiresAt: 160 });
    clock.advance(60); // t = 120: past the first expiry, within the renewed one
    expect(lock.holder('r')?.token).toBe(g.token);
    clock.advance(40); // t = 160
    expect(lock.holder('r')).toBeUndefined();
  });

  it('release frees the resource; the next grant has a higher token', async () => {
    const lock = await setup();
    const [a, b] = agents(2) as [AnyRef, AnyRef];
    const released = awaitTelemetry(rt, LEASE_RELEASED);
    const g1 = await lock.acquire('r', a, { ttlMs: 100 });
    await lock.release('r', g1.token);
    expect(lock.holder('r')).toBeUndefined();
    expect((await released).metadata).toMatchObject({ reason: 'release', token: g1.token });
    const g2 = await lock.acquire('r', b, { ttlMs: 100 });
    expect(g2.token).toBeGreaterThan(g1.token);
  });

  it('tokens strictly increase per resource across grants, expiries and holders', async () => {
    const lock = await setup();
    const [a, b] = agents(2) as [AnyRef, AnyRef];
    const tokens: number[] = [];
    for (let i = 0; i < 4; i++) {
      const g = await lock.acquire('r', i % 2 ? a : b, { ttlMs: 10 });
      tokens.push(g.token);
      await lock.acquire('other', a, { ttlMs: 5 }); // interleaved grants on another resource
      clock.advance(10); // both expire
    }
    for (let i = 1; i < tokens.length; i++) expect(tokens[i]).toBeGreaterThan(tokens[i - 1] as number);
  });

  it('accepts the holder as an agent context, from inside its own callback', async () => {
    const lock = await setup();
    const grants: LeaseGrant[] = [];
    const Worker = behaviour<null, null, never, never, 'go'>({
      init: () => null,
      async handleCast(_m, s, ctx) {
        grants.push(await lock.acquire('job', ctx, { ttlMs: 50 }));
        return s;
      },
    });
    const w = rt.spawnSync(Worker, null);
    const granted = awaitTelemetry(rt, LEASE_GRANTED);
    rt.cast(w, 'go');
    await granted;
    await rt.whenMailboxBelow(w, 1);
    await flush();
    expect(grants[0]?.holder).toEqual(w.toJSON());
  });
});

describe('LeaseLock: waiting, expiry, holder death', () => {
  it('expiry frees the lock and grants the next waiter', async () => {
    const lock = await setup();
    const [a, b] = agents(2) as [AnyRef, AnyRef];
    const g1 = await lock.acquire('r', a, { ttlMs: 100 });
    const expired = awaitTelemetry(rt, LEASE_EXPIRED);
    const wait = watch(lock.acquire('r', b, { ttlMs: 100, waitMs: 1000 }));
    await settled(lock);
    expect(wait.current.state).toBe('pending');
    expect(lock.waiting('r')).toBe(1);
    clock.advance(99);
    await settled(lock);
    expect(wait.current.state).toBe('pending');
    clock.advance(1);
    await settled(lock);
    expect(wait.current).toEqual({
      state: 'fulfilled',
      value: { resource: 'r', token: g1.token + 1, expiresAt: 200, holder: b.toJSON() },
    });
    expect(lock.holder('r')?.holder).toEqual(b.toJSON());
    expect((await expired).metadata).toMatchObject({ token: g1.token, holder: a.toJSON() });
  });

  it('serves waiters in order of arrival', async () => {
    const lock = await setup();
    const [a, b, c] = agents(3) as [AnyRef, AnyRef, AnyRef];
    const g = await lock.acquire('r', a, { ttlMs: 100 });
    const order: string[] = [];
    const pb = lock.acquire('r', b, { ttlMs: 100 }).then((x) => {
      order.push('b');
      return x;
    });
    const pc = lock.acquire('r', c, { ttlMs: 100 }).then((x) => {
      order.push('c');
      return x;
    });
    await lock.release('r', g.token);
    const gb = await pb;
    await settled(lock);
    expect(order).toEqual(['b']);
    await lock.release('r', gb.token);
    expect((await pc).holder).toEqual(c.toJSON());
    expect(order).toEqual(['b', 'c']);
  });

  it("the holder's death releases all its leases and grants the waiters", async () => {
    const lock = await setup();
    const [a, b] = agents(2) as [AnyRef, AnyRef];
    await lock.acquire('r1', a, { ttlMs: 1000 });
    await lock.acquire('r2', a, { ttlMs: 1000 });
    const released = awaitTelemetry(rt, LEASE_RELEASED, (_m, md) => md.reason === 'holder_exit');
    const wait = lock.acquire('r1', b, { ttlMs: 100 });
    await settled(lock);
    rt.kill(a);
    expect(await wait).toMatchObject({ resource: 'r1', holder: b.toJSON() });
    expect((await released).metadata).toMatchObject({ holder: a.toJSON(), exitReason: 'killed' });
    expect(lock.holder('r2')).toBeUndefined();
    expect(clock.now()).toBe(0); // no time passed: the death, not an expiry, freed them
  });

  it('a waiter whose holder dies is dropped with E_LEASE_HOLDER_EXITED', async () => {
    const lock = await setup();
    const [a, b, c] = agents(3) as [AnyRef, AnyRef, AnyRef];
    const g = await lock.acquire('r', a, { ttlMs: 1000 });
    const pb = lock.acquire('r', b, { ttlMs: 100 });
    const pc = lock.acquire('r', c, { ttlMs: 100 });
    await settled(lock);
    rt.kill(b);
    const err = await rejection(pb);
    expect(err).toBeInstanceOf(LeaseHolderExitedError);
    expect(err).toMatchObject({ code: 'E_LEASE_HOLDER_EXITED', message: /killed/ });
    await lock.release('r', g.token);
    expect((await pc).holder).toEqual(c.toJSON());
  });

  it('an acquire for a dead holder is refused', async () => {
    const lock = await setup();
    const [a] = agents(1) as [AnyRef];
    rt.kill(a);
    await expect(lock.acquire('r', a, { ttlMs: 10 })).rejects.toMatchObject({
      code: 'E_LEASE_HOLDER_EXITED',
    });
    expect(lock.holder('r')).toBeUndefined();
  });

  it('a waiter gives up after waitMs with E_LEASE_TIMEOUT; waitMs 0 gives up at once', async () => {
    const lock = await setup();
    const [a, b] = agents(2) as [AnyRef, AnyRef];
    await lock.acquire('r', a, { ttlMs: 1000 });
    const timeout = awaitTelemetry(rt, LEASE_TIMEOUT);
    const wait = watch(lock.acquire('r', b, { ttlMs: 100, waitMs: 50 }));
    clock.advance(49);
    await settled(lock);
    expect(wait.current.state).toBe('pending');
    clock.advance(1);
    await settled(lock);
    const err = (wait.current as { reason: unknown }).reason;
    expect(err).toBeInstanceOf(LeaseTimeoutError);
    expect(err).toMatchObject({
      code: 'E_LEASE_TIMEOUT',
      waitMs: 50,
      message: /"r" not granted within 50 ms/,
    });
    expect((await timeout).metadata).toMatchObject({ resource: 'r' });
    expect(lock.waiting('r')).toBe(0);
    await expect(lock.acquire('r', b, { ttlMs: 100, waitMs: 0 })).rejects.toMatchObject({
      code: 'E_LEASE_TIMEOUT',
    });
    // The holder is undisturbed.
    expect(lock.holder('r')?.holder).toEqual(a.toJSON());
  });

  it('is not re-entrant: a holder acquiring again waits for its own lease to end', async () => {
    const lock = await setup();
    const [a] = agents(1) as [AnyRef];
    const g = await lock.acquire('r', a, { ttlMs: 100 });
    const again = lock.acquire('r', a, { ttlMs: 100, waitMs: 500 });
    clock.advance(100);
    expect((await again).token).toBe(g.token + 1);
  });

  it('stopping the lock rejects the waiting acquires, and later calls, with E_LEASE_LOCK_STOPPED', async () => {
    const lock = await setup();
    const [a, b] = agents(2) as [AnyRef, AnyRef];
    const g = await lock.acquire('r', a, { ttlMs: 100 });
    const wait = lock.acquire('r', b, { ttlMs: 100 });
    await settled(lock);
    await lock.stop();
    const err = await rejection(wait);
    expect(err).toBeInstanceOf(LeaseLockStoppedError);
    expect(err).toMatchObject({ code: 'E_LEASE_LOCK_STOPPED', reason: 'shutdown', message: /shutdown/ });
    for (const late of [
      lock.acquire('r', b, { ttlMs: 100 }),
      lock.renew('r', g.token, 100),
      lock.release('r', g.token),
    ]) {
      expect(await rejection(late)).toMatchObject({ code: 'E_LEASE_LOCK_STOPPED', reason: 'noproc' });
    }
  });

  it('a killed lock rejects the waiting acquires with E_LEASE_LOCK_STOPPED naming the reason', async () => {
    const lock = await setup();
    const [a, b] = agents(2) as [AnyRef, AnyRef];
    await lock.acquire('r', a, { ttlMs: 100 });
    const wait = lock.acquire('r', b, { ttlMs: 100 });
    await settled(lock);
    rt.kill(lock.ref);
    expect(await rejection(wait)).toMatchObject({ code: 'E_LEASE_LOCK_STOPPED', reason: 'killed' });
  });
});

describe('LeaseLock: stale tokens', () => {
  it('renew and release with the token of an expired lease, superseded by another, are E_LEASE_STALE_TOKEN', async () => {
    const lock = await setup();
    const [a, b] = agents(2) as [AnyRef, AnyRef];
    const ga = await lock.acquire('r', a, { ttlMs: 100 });
    clock.advance(100);
    const gb = await lock.acquire('r', b, { ttlMs: 100 });
    for (const attempt of [lock.renew('r', ga.token, 100), lock.release('r', ga.token)]) {
      const err = await rejection(attempt);
      expect(err).toBeInstanceOf(StaleTokenError);
      expect(err).toMatchObject({
        code: 'E_LEASE_STALE_TOKEN',
        token: ga.token,
        current: gb.token,
        message: new RegExp(`token ${ga.token} is stale: "r" is leased under token ${gb.token}`),
      });
    }
    expect(lock.holder('r')).toEqual(gb); // undisturbed
  });

  it('renew and release of a lease that is over, with the resource free, are E_LEASE_EXPIRED', async () => {
    const lock = await setup();
    const [a] = agents(1) as [AnyRef];
    const g = await lock.acquire('r', a, { ttlMs: 100 });
    clock.advance(100);
    const err = await rejection(lock.renew('r', g.token, 100));
    expect(err).toBeInstanceOf(LeaseExpiredError);
    expect(err).toMatchObject({ code: 'E_LEASE_EXPIRED', token: g.token });
    await expect(lock.release('r', g.token)).rejects.toMatchObject({ code: 'E_LEASE_EXPIRED' });
    // Released leases are over too.
    const g2 = await lock.acquire('r', a, { ttlMs: 100 });
    await lock.release('r', g2.token);
    await expect(lock.release('r', g2.token)).rejects.toMatchObject({ code: 'E_LEASE_EXPIRED' });
  });

  it.each([
    ['an empty resource', (l: LeaseLock, a: AnyRef) => l.acquire('', a, { ttlMs: 1 }), /resource/],
    // biome-ignore lint/suspicious/noExplicitAny: deliberately ill-typed input
    ['a bad holder', (l: LeaseLock) => l.acquire('r', 'nobody' as any, { ttlMs: 1 }), /holder.*nobody/],
    ['a zero ttl', (l: LeaseLock, a: AnyRef) => l.acquire('r', a, { ttlMs: 0 }), /ttlMs.*0/],
    [
      'an infinite ttl',
      (l: LeaseLock, a: AnyRef) => l.acquire('r', a, { ttlMs: Infinity }),
      /ttlMs.*Infinity/,
    ],
    // biome-ignore lint/suspicious/noExplicitAny: deliberately ill-typed input
    ['no options', (l: LeaseLock, a: AnyRef) => l.acquire('r', a, undefined as any), /acquire options/],
    [
      'a negative waitMs',
      (l: LeaseLock, a: AnyRef) => l.acquire('r', a, { ttlMs: 1, waitMs: -1 }),
      /waitMs.*-1/,
    ],
    ['a fractional token', (l: LeaseLock) => l.renew('r', 1.5, 10), /token.*1\.5/],
    ['a zero token', (l: LeaseLock) => l.release('r', 0), /token.*0/],
    ['a negative renew ttl', (l: LeaseLock) => l.renew('r', 1, -5), /ttlMs.*-5/],
  ])('rejects %s with E_INVALID_ARGUMENT naming the field', async (_what, run, message) => {
    const lock = await setup();
    const [a] = agents(1) as [AnyRef];
    const err = await rejection(run(lock, a));
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect(err).toMatchObject({ code: 'E_INVALID_ARGUMENT', message });
  });
});

describe('Fencing', () => {
  it('a fence passes equal and higher tokens and refuses lower ones', () => {
    const fence = new Fence('doc');
    fence.check(3);
    fence.check(3);
    fence.check(5);
    expect(fence.highest).toBe(5);
    expect(() => fence.check(4)).toThrow(FencedError);
    expect(() => fence.check(4)).toThrow(/token 4 refused: token 5 has been seen/);
    expect(fence.highest).toBe(5);
  });

  it("why fencing matters: a holder paused past its lease cannot clobber the next holder's write", async () => {
    const lock = await setup();
    const store = new FencedStore<string>();
    const unfenced = new Map<string, string>(); // the same writes, without the fence
    const pause = deferred();
    const lateWrite = deferred<unknown>();
    // A takes the lease, writes, then "pauses" (a long GC, a stalled VM) while still believing it
    // holds the lease, and writes again when it resumes.
    const A = behaviour<null, null, never, never, 'work'>({
      init: () => null,
      async handleCast(_m, s, ctx) {
        const g = await lock.acquire('doc', ctx, { ttlMs: 100 });
        store.write('doc', g.token, 'A: first');
        unfenced.set('doc', 'A: first');
        await pause.promise;
        unfenced.set('doc', 'A: late');
        try {
          store.write('doc', g.token, 'A: late');
          lateWrite.resolve('accepted');
        } catch (error) {
          lateWrite.resolve(error);
        }
        return s;
      },
    });
    const a = rt.spawnSync(A, null);
    const [b] = agents(1) as [AnyRef];
    const granted = awaitTelemetry(rt, LEASE_GRANTED);
    rt.cast(a, 'work');
    const ga = (await granted).metadata;
    await flush();
    expect(store.read('doc')).toBe('A: first');

    clock.advance(100); // A's lease expires while A is paused
    const gb = await lock.acquire('doc', b, { ttlMs: 100 });
    expect(gb.token).toBeGreaterThan(ga.token as number);
    store.write('doc', gb.token, 'B');
    unfenced.set('doc', 'B');

    pause.resolve(); // A wakes up and writes with its old token
    const outcome = await lateWrite.promise;
    expect(outcome).toBeInstanceOf(FencedError);
    expect(outcome).toMatchObject({ code: 'E_LEASE_FENCED', token: ga.token, highest: gb.token });
    expect(store.read('doc')).toBe('B'); // B's write survives
    expect(store.highestToken('doc')).toBe(gb.token);
    expect(unfenced.get('doc')).toBe('A: late'); // without the fence, B's write is lost
  });
});

describe('LeaseLock: taking over from a stopped lock', () => {
  it('a lock started with lastToken keeps tokens above the old lock, so its stale holder stays fenced', async () => {
    const first = await setup();
    const store = new FencedStore<string>();
    const [a, b] = agents(2) as [AnyRef, AnyRef];
    const ga = await first.acquire('doc', a, { ttlMs: 100 });
    store.write('doc', ga.token, 'A');
    await first.stop();
    // Without lastToken a fresh lock would issue token 1 again, A's token, and A's late write
    // would pass the fence; with it, B's token is above anything the fence has seen.
    const second = await LeaseLock.start(rt, { lastToken: store.fence('doc')?.highest ?? 0 });
    const gb = await second.acquire('doc', b, { ttlMs: 100 });
    expect(gb.token).toBeGreaterThan(ga.token);
    store.write('doc', gb.token, 'B');
    expect(() => store.write('doc', ga.token, 'A late')).toThrow(FencedError);
    expect(store.read('doc')).toBe('B');
    await expect(LeaseLock.start(rt, { lastToken: -1 })).rejects.toThrow(/lastToken/);
  });
});

/**
 * Node runs timers on libuv's cached loop time, which lags performance.now() (RealClock.now) by
 * the time already spent in the current tick, so a timer can fire a little before now() reaches
 * its due time. This clock models that: `now()` is the virtual loop time plus a skew the test sets
 * while "work" is going on in the tick.
 */
class LoopTimeClock implements Clock {
  readonly inner = new VirtualClock();
  skew = 0;
  now(): number {
    return this.inner.now() + this.skew;
  }
  setTimeout(fn: () => void, ms: number): TimerHandle {
    return this.inner.setTimeout(fn, ms);
  }
  clearTimeout(h: TimerHandle): void {
    this.inner.clearTimeout(h);
  }
}

describe('LeaseLock: expiry timers that fire early or late (regressions)', () => {
  /** A lock on a LoopTimeClock with `a` holding 'r' until 100.5 (timer due at loop time 100). */
  async function earlyTimerSetup(): Promise<{ lock: LeaseLock; loop: LoopTimeClock; a: AnyRef; b: AnyRef }> {
    const loop = new LoopTimeClock();
    rt = new Runtime({ clock: loop });
    const lock = await LeaseLock.start(rt);
    const [a, b] = agents(2) as [AnyRef, AnyRef];
    loop.skew = 0.5; // half a ms of work already done in this tick when the lease is granted
    const g = await lock.acquire('r', a, { ttlMs: 100 });
    expect(g.expiresAt).toBe(100.5);
    return { lock, loop, a, b };
  }

  it('an expiry timer that fires before expiresAt re-arms for the rest: the waiter is granted on time', async () => {
    const { lock, loop, b } = await earlyTimerSetup();
    const expired = awaitTelemetry(rt, LEASE_EXPIRED);
    const waiting = watch(lock.acquire('r', b, { ttlMs: 100, waitMs: 1000 }));
    await settled(lock);
    loop.skew = 0; // the next tick
    loop.inner.advance(100); // the timer fires at loop time 100, now() = 100 < 100.5
    await settled(lock);
    expect(waiting.current.state).toBe('pending');
    expect(lock.holder('r')?.token).toBe(1);
    loop.inner.advance(0.5); // the re-armed timer
    await settled(lock);
    expect(waiting.current).toMatchObject({
      state: 'fulfilled',
      value: { token: 2, expiresAt: 200.5, holder: b.toJSON() },
    });
    expect((await expired).metadata).toMatchObject({ token: 1 });
  });

  it('and a waiter with a finite waitMs is granted, not failed with E_LEASE_TIMEOUT', async () => {
    const { lock, loop, b } = await earlyTimerSetup();
    const waiting = watch(lock.acquire('r', b, { ttlMs: 100, waitMs: 1000 }));
    await settled(lock);
    loop.skew = 0;
    for (let t = 0; t < 1100; t += 10) {
      loop.inner.advance(10);
      await settled(lock);
    }
    // Granted when A's lease ended (100.5), not when B's wait ran out.
    expect(waiting.current).toMatchObject({
      state: 'fulfilled',
      value: { token: 2, expiresAt: 200.5, holder: b.toJSON() },
    });
  });

  it('a wait timeout handled before the expiry it coincides with settles the lease first and grants', async () => {
    const { lock, loop, b } = await earlyTimerSetup();
    loop.skew = 0;
    // B's wait ends at 100.5, exactly when A's lease does; its timer is armed before A's re-armed
    // expiry timer, so its message is handled first.
    const waiting = watch(lock.acquire('r', b, { ttlMs: 100, waitMs: 100.5 }));
    await settled(lock);
    loop.inner.advance(100);
    await settled(lock);
    expect(waiting.current.state).toBe('pending');
    loop.inner.advance(0.5);
    await settled(lock);
    expect(waiting.current).toMatchObject({ state: 'fulfilled', value: { token: 2, holder: b.toJSON() } });
    expect(lock.waiting('r')).toBe(0);
  });

  it("a renew queued before the old timer's message makes that message stale: one timer, the new expiry", async () => {
    const lock = await setup();
    const [a, b] = agents(2) as [AnyRef, AnyRef];
    const g = await lock.acquire('r', a, { ttlMs: 100 });
    clock.advance(99);
    const renewed = watch(lock.renew('r', g.token, 100)); // queued at t = 99, handled later
    clock.advance(1); // t = 100: the old timer fires behind the renew; the renew wins
    await settled(lock);
    expect(renewed.current).toMatchObject({ state: 'fulfilled', value: { token: g.token, expiresAt: 199 } });
    expect(clock.pending).toBe(1); // the stale message armed nothing
    const waiting = watch(lock.acquire('r', b, { ttlMs: 100, waitMs: Number.POSITIVE_INFINITY }));
    clock.advance(98);
    await settled(lock);
    expect(waiting.current.state).toBe('pending');
    clock.advance(1);
    await settled(lock);
    expect(waiting.current).toMatchObject({ state: 'fulfilled', value: { token: g.token + 1 } });
  });
});
