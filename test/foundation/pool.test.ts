import { afterEach, describe, expect, it } from 'vitest';
import {
  CheckoutTimeoutError,
  NotCheckedOutError,
  Pool,
  PoolClosedError,
  type PoolOptions,
  ResourceCreateError,
} from '../../src/foundation/pool.js';
import {
  behaviour,
  InvalidArgumentError,
  noreply,
  Runtime,
  reply,
  VirtualClock,
} from '../../src/kernel/index.js';
import { awaitExit, awaitTelemetry, probe } from '../../src/kernel/testkit.js';
import { deferred, flush, watch } from '../kernel/helpers.js';

interface Conn {
  id: number;
  healthy: boolean;
}

/** A resource factory that records what it made and destroyed; `failCreates` makes creates throw. */
function connections() {
  let next = 0;
  const f = {
    live: new Set<Conn>(),
    destroyed: [] as Conn[],
    failCreates: 0,
    create(): Conn {
      if (f.failCreates > 0) {
        f.failCreates--;
        throw new Error('connection refused');
      }
      const c = { id: ++next, healthy: true };
      f.live.add(c);
      return c;
    },
    destroy(c: Conn): void {
      f.live.delete(c);
      f.destroyed.push(c);
    },
    validate(c: Conn): boolean {
      return c.healthy;
    },
  };
  return f;
}

const runtimes: Runtime[] = [];
function setup() {
  const clock = new VirtualClock();
  const rt = new Runtime({ clock });
  runtimes.push(rt);
  const conns = connections();
  const start = (options: Partial<PoolOptions<Conn>> = {}) =>
    Pool.start<Conn>(rt, {
      name: 'db',
      size: 2,
      create: conns.create,
      destroy: conns.destroy,
      ...options,
    });
  return { clock, rt, conns, start };
}
afterEach(async () => {
  await Promise.all(runtimes.splice(0).map((rt) => rt.shutdown()));
});

describe('Pool options', () => {
  it('rejects bad options with E_INVALID_ARGUMENT naming the option', async () => {
    const { start } = setup();
    const cases: [Partial<PoolOptions<Conn>>, string][] = [
      [{ size: -1 }, 'size'],
      [{ size: 1.5 }, 'size'],
      [{ size: 0, maxOverflow: 0 }, 'size'],
      [{ maxOverflow: -2 }, 'maxOverflow'],
      [{ idleMs: -1 }, 'idleMs'],
      [{ checkoutTimeoutMs: 0 }, 'checkoutTimeoutMs'],
      [{ strategy: 'random' as never }, 'strategy'],
      [{ create: 42 as never }, 'create'],
      [{ prefill: 'yes' as never }, 'prefill'],
      [{ sizes: 3 } as never, 'sizes'],
    ];
    for (const [options, name] of cases) {
      const error = await start(options).catch((e: unknown) => e);
      expect(error, name).toBeInstanceOf(InvalidArgumentError);
      expect((error as InvalidArgumentError).code).toBe('E_INVALID_ARGUMENT');
      expect((error as Error).message).toContain(`"${name}"`);
    }
  });
});

describe('Pool checkout and checkin', () => {
  it('prefills size resources and lends them out and back', async () => {
    const { start, conns } = setup();
    const pool = await start();
    expect(conns.live.size).toBe(2);
    expect(pool.stats()).toMatchObject({ name: 'db', total: 2, idle: 2, out: 0 });
    const a = await pool.checkout();
    const b = await pool.checkout();
    expect(a).not.toBe(b);
    expect(pool.stats()).toMatchObject({ idle: 0, out: 2 });
    pool.checkin(a);
    await flush();
    expect(pool.stats()).toMatchObject({ idle: 1, out: 1 });
    // LIFO: the resource just returned is the one handed out next.
    expect(await pool.checkout()).toBe(a);
  });

  it('creates lazily without prefill', async () => {
    const { start, conns } = setup();
    const pool = await start({ prefill: false });
    expect(conns.live.size).toBe(0);
    await pool.checkout();
    expect(conns.live.size).toBe(1);
  });

  it('fifo strategy hands out the longest-idle resource', async () => {
    const { start } = setup();
    const pool = await start({ strategy: 'fifo' });
    const a = await pool.checkout();
    const b = await pool.checkout();
    pool.checkin(a);
    pool.checkin(b);
    await flush();
    expect(await pool.checkout()).toBe(a);
  });

  it('creates overflow resources up to maxOverflow, then queues checkouts FIFO', async () => {
    const { start, conns } = setup();
    const pool = await start({ maxOverflow: 1 });
    const held = [await pool.checkout(), await pool.checkout(), await pool.checkout()];
    expect(conns.live.size).toBe(3);
    expect(pool.stats()).toMatchObject({ out: 3, overflow: 1 });
    const order: number[] = [];
    const waiters = [1, 2, 3].map((i) =>
      pool.checkout().then((c) => {
        order.push(i);
        return c;
      }),
    );
    await flush();
    expect(pool.stats().waiting).toBe(3);
    expect(conns.live.size).toBe(3); // never more than size + maxOverflow
    for (const c of held) pool.checkin(c);
    const served = await Promise.all(waiters);
    expect(order).toEqual([1, 2, 3]);
    expect(new Set(served)).toEqual(new Set(held));
  });

  it('withResource returns the resource when fn returns, throws or rejects', async () => {
    const { start } = setup();
    const pool = await start({ size: 1 });
    expect(await pool.withResource((c) => c.id)).toBe(1);
    await expect(
      pool.withResource(() => {
        throw new Error('sync failure');
      }),
    ).rejects.toThrow('sync failure');
    await flush();
    expect(pool.stats()).toMatchObject({ out: 0, idle: 1 });
    await expect(pool.withResource(async () => Promise.reject(new Error('async failure')))).rejects.toThrow(
      'async failure',
    );
    await flush();
    expect(pool.stats()).toMatchObject({ out: 0, idle: 1 });
  });

  it('refuses a checkin of something not checked out, and a second checkin, with E_NOT_CHECKED_OUT', async () => {
    const { start } = setup();
    const pool = await start();
    const c = await pool.checkout();
    pool.checkin(c);
    expect(() => pool.checkin(c)).toThrow(NotCheckedOutError);
    expect(() => pool.checkin({ id: 99, healthy: true })).toThrow(
      /\{"id":99,"healthy":true\} is not checked out from db/,
    );
    await flush();
    expect(() => pool.checkin(c)).toThrow(expect.objectContaining({ code: 'E_NOT_CHECKED_OUT' }));
  });

  it('checkin with destroy replaces a broken resource', async () => {
    const { start, conns } = setup();
    const pool = await start({ size: 1 });
    const c = await pool.checkout();
    pool.checkin(c, { destroy: true });
    await flush();
    expect(conns.destroyed).toEqual([c]);
    const d = await pool.checkout();
    expect(d).not.toBe(c);
  });
});

describe('Pool checkout timeout', () => {
  it('rejects with E_CHECKOUT_TIMEOUT naming the pool and the timeout, on the runtime clock', async () => {
    const { start, clock } = setup();
    const pool = await start({ size: 1 });
    const held = await pool.checkout();
    const waiting = watch(pool.checkout({ timeoutMs: 100 }));
    clock.advance(99);
    await flush();
    expect(waiting.current.state).toBe('pending');
    clock.advance(1);
    await flush();
    expect(waiting.current.state).toBe('rejected');
    const error = (waiting.current as { reason: unknown }).reason as CheckoutTimeoutError;
    expect(error).toBeInstanceOf(CheckoutTimeoutError);
    expect(error.code).toBe('E_CHECKOUT_TIMEOUT');
    expect(error.message).toMatch(/checkout from db timed out after 100 ms/);
    expect(error).toMatchObject({ pool: 'db', timeoutMs: 100 });
    expect(pool.stats()).toMatchObject({ waiting: 0, timeouts: 1 });
    // The timed-out waiter is gone: the resource goes idle, not to it.
    pool.checkin(held);
    await flush();
    expect(pool.stats()).toMatchObject({ idle: 1, out: 0 });
  });

  it('uses the pool default timeout, and rejects a bad one', async () => {
    const { start, clock } = setup();
    const pool = await start({ size: 1, checkoutTimeoutMs: 50 });
    await pool.checkout();
    const waiting = pool.checkout();
    clock.advance(50);
    await expect(waiting).rejects.toMatchObject({ code: 'E_CHECKOUT_TIMEOUT', timeoutMs: 50 });
    await expect(pool.checkout({ timeoutMs: -5 })).rejects.toMatchObject({
      code: 'E_INVALID_ARGUMENT',
      message: expect.stringContaining('"timeoutMs"'),
    });
  });

  it('reports checkouts through telemetry', async () => {
    const { start, rt, clock } = setup();
    const pool = await start({ size: 1 });
    const held = await pool.checkout();
    const event = awaitTelemetry(rt, ['mabeam', 'pool', 'checkout']);
    const waiting = pool.checkout();
    clock.advance(30);
    pool.checkin(held);
    await waiting;
    expect(await event).toMatchObject({
      measurements: { waitMs: 30 },
      metadata: { pool: 'db', outcome: 'ok' },
    });
  });
});

describe('Pool health checks', () => {
  it('destroys a resource that fails validation on checkout and serves a fresh one', async () => {
    const { start, conns } = setup();
    const pool = await start({ size: 1, validate: conns.validate });
    const c = await pool.checkout();
    pool.checkin(c);
    c.healthy = false;
    const d = await pool.checkout();
    expect(d).not.toBe(c);
    expect(conns.destroyed).toEqual([c]);
    expect(pool.stats()).toMatchObject({ validationFailures: 1, total: 1, out: 1 });
  });

  it('treats a validate that throws as a failed check', async () => {
    const { start } = setup();
    let calls = 0;
    const pool = await start({
      size: 1,
      validate: () => {
        calls++;
        if (calls === 1) throw new Error('ping failed');
        return true;
      },
    });
    const c = await pool.checkout();
    expect(c.id).toBe(2);
    expect(pool.stats().validationFailures).toBe(1);
  });
});

describe('Pool create failures', () => {
  it('surface as E_RESOURCE_CREATE_FAILED to the waiting caller and free the slot', async () => {
    const { start, conns } = setup();
    const pool = await start({ size: 1, prefill: false });
    conns.failCreates = 1;
    const error = await pool.checkout().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ResourceCreateError);
    expect((error as ResourceCreateError).message).toMatch(
      /db could not create a resource: Error: connection refused/,
    );
    expect((error as Error).cause).toBeInstanceOf(Error);
    expect(pool.stats()).toMatchObject({ total: 0, creating: 0, createFailures: 1 });
    // The slot was not leaked: the next checkout creates again.
    const c = await pool.checkout();
    expect(c.id).toBe(1);
  });

  it('make start reject when prefilling, destroying what was made', async () => {
    const { rt, conns } = setup();
    let n = 0;
    const error = await Pool.start<Conn>(rt, {
      name: 'flaky',
      size: 3,
      create: () => {
        n++;
        if (n === 2) throw new Error('no route to host');
        return conns.create();
      },
      destroy: conns.destroy,
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ResourceCreateError);
    expect((error as Error).message).toContain('flaky could not create a resource');
    expect(conns.live.size).toBe(0);
    expect(conns.destroyed).toHaveLength(2);
  });
});

describe('Pool idle reaping', () => {
  it('destroys overflow resources idle for idleMs and keeps size', async () => {
    const { start, clock, conns } = setup();
    const pool = await start({ size: 1, maxOverflow: 2, idleMs: 1000 });
    const cs = [await pool.checkout(), await pool.checkout(), await pool.checkout()];
    expect(conns.live.size).toBe(3);
    pool.checkin(cs[0] as Conn);
    clock.advance(500);
    pool.checkin(cs[1] as Conn);
    pool.checkin(cs[2] as Conn);
    await flush();
    clock.advance(499);
    await flush();
    expect(conns.live.size).toBe(3);
    clock.advance(1);
    await flush();
    // The longest-idle one went first; the other surplus one is not idle long enough yet.
    expect(conns.destroyed).toEqual([cs[0]]);
    clock.advance(500);
    await flush();
    expect(conns.live.size).toBe(1);
    expect(pool.stats()).toMatchObject({ total: 1, idle: 1, overflow: 0 });
    clock.advance(100_000);
    await flush();
    expect(conns.live.size).toBe(1);
  });

  it('with idleMs 0 destroys surplus resources on checkin', async () => {
    const { start, conns } = setup();
    const pool = await start({ size: 1, maxOverflow: 1, idleMs: 0 });
    const a = await pool.checkout();
    const b = await pool.checkout();
    pool.checkin(b);
    await flush();
    expect(conns.destroyed).toEqual([b]);
    pool.checkin(a);
    await flush();
    expect(pool.stats()).toMatchObject({ total: 1, idle: 1 });
  });
});

describe('Pool holders', () => {
  it('returns the resource of a holder that exits, before anyone sees the exit', async () => {
    const { start, rt } = setup();
    const pool = await start({ size: 1 });
    const holder = probe(rt);
    const watcher = probe(rt);
    watcher.ctx.monitor(holder.ref);
    const c = await pool.checkout({ holder: holder.ref });
    const next = pool.checkout();
    await flush();
    expect(pool.stats().waiting).toBe(1);
    rt.kill(holder.ref);
    await watcher.expectMessage({ type: 'DOWN' });
    expect(pool.stats().out).toBe(1); // handed straight to the waiter
    expect(await next).toBe(c);
  });

  it('binds a checkout made from inside an agent with its context', async () => {
    const { start, rt } = setup();
    const pool = await start({ size: 1 });
    const User = behaviour<void, null, 'take', number, 'crash'>({
      init: () => null,
      async handleCall(_m, _f, s, ctx) {
        const c = await pool.checkout({ holder: ctx });
        return reply(c.id, s);
      },
      handleCast() {
        throw new Error('user crashed');
      },
    });
    const user = await rt.spawn(User, undefined);
    expect(await rt.call(user, 'take')).toBe(1);
    expect(pool.stats().out).toBe(1);
    rt.cast(user, 'crash');
    await awaitExit(rt, user);
    expect(pool.stats()).toMatchObject({ out: 0, idle: 1 });
  });

  it('destroys the resource of an exited holder with destroyOnHolderExit', async () => {
    const { start, rt, conns } = setup();
    const pool = await start({ size: 1, destroyOnHolderExit: true });
    const holder = probe(rt);
    const c = await pool.checkout({ holder: holder.ref });
    rt.kill(holder.ref);
    await awaitExit(rt, holder.ref);
    expect(conns.destroyed).toEqual([c]);
    const d = await pool.checkout();
    expect(d).not.toBe(c);
  });

  it('drops a waiting checkout whose holder exits, with E_HOLDER_EXITED', async () => {
    const { start, rt } = setup();
    const pool = await start({ size: 1 });
    const held = await pool.checkout();
    const holder = probe(rt);
    const waiting = watch(pool.checkout({ holder: holder.ref }));
    await flush();
    rt.kill(holder.ref);
    await flush();
    expect(waiting.current).toMatchObject({ state: 'rejected', reason: { code: 'E_HOLDER_EXITED' } });
    expect(pool.stats().waiting).toBe(0);
    pool.checkin(held);
    await flush();
    expect(pool.stats()).toMatchObject({ idle: 1, out: 0 });
  });

  it('a checkin by the holder unbinds it: its later exit changes nothing', async () => {
    const { start, rt, conns } = setup();
    const pool = await start({ size: 1, destroyOnHolderExit: true });
    const holder = probe(rt);
    const c = await pool.checkout({ holder: holder.ref });
    pool.checkin(c);
    await flush();
    rt.kill(holder.ref);
    await awaitExit(rt, holder.ref);
    expect(conns.destroyed).toEqual([]);
    expect(pool.stats()).toMatchObject({ idle: 1 });
  });

  it('refuses to lend to a holder that is already dead', async () => {
    const { start, rt } = setup();
    const pool = await start({ size: 1 });
    const holder = probe(rt);
    rt.kill(holder.ref);
    await expect(pool.checkout({ holder: holder.ref })).rejects.toMatchObject({
      code: 'E_HOLDER_EXITED',
      message: expect.stringMatching(
        /checkout from db for <.*> abandoned: the holder exited with reason "noproc"/,
      ),
    });
    expect(pool.stats()).toMatchObject({ idle: 1, out: 0, waiting: 0 });
  });

  it("withResource whose holder died during fn does not check in the next holder's lease", async () => {
    const { start, rt, clock } = setup();
    const pool = await start({ size: 1 });
    const holder = probe(rt);
    const gate = deferred();
    const a = pool.withResource(
      async (c) => {
        await gate.promise;
        return c;
      },
      { holder: holder.ref },
    );
    await flush();
    const bGot = pool.checkout({ holder: null });
    await flush();
    rt.kill(holder.ref); // A's resource goes back and straight to B
    const b = await bGot;
    gate.resolve();
    expect(await a).toBe(b);
    await flush();
    expect(pool.stats()).toMatchObject({ out: 1, idle: 0 });
    const third = watch(pool.checkout({ timeoutMs: 10 }));
    await flush();
    clock.advance(10);
    await flush();
    expect(third.current).toMatchObject({ state: 'rejected', reason: { code: 'E_CHECKOUT_TIMEOUT' } });
    pool.checkin(b); // B's lease is still B's to return
    await flush();
    expect(pool.stats()).toMatchObject({ out: 0, idle: 1 });
  });

  it("a checkin queued by a holder that then exits does not return the next holder's lease", async () => {
    const { start, rt, clock } = setup();
    const pool = await start({ size: 1 });
    const A = behaviour<void, { c: Conn | null }, 'take', number, 'give_back_and_crash'>({
      init: () => ({ c: null }),
      async handleCall(_m, _f, s, ctx) {
        s.c = await pool.checkout({ holder: ctx });
        return reply(s.c.id, s);
      },
      handleCast(_m, s) {
        pool.checkin(s.c as Conn); // from inside an agent: the cast is queued behind this exit
        throw new Error('crash after checkin');
      },
    });
    const a = await rt.spawn(A, undefined);
    expect(await rt.call(a, 'take')).toBe(1);
    const bGot = pool.checkout({ holder: null });
    await flush();
    rt.cast(a, 'give_back_and_crash');
    await awaitExit(rt, a);
    const b = await bGot;
    await flush(); // the stale checkin is handled now
    expect(pool.stats()).toMatchObject({ out: 1, idle: 0 });
    const third = watch(pool.checkout({ timeoutMs: 10 }));
    await flush();
    clock.advance(10);
    await flush();
    expect(third.current).toMatchObject({ state: 'rejected', reason: { code: 'E_CHECKOUT_TIMEOUT' } });
    expect(b.id).toBe(1);
  });

  it('binds a checkout from inside an agent to that agent by default; holder null opts out', async () => {
    const { start, rt } = setup();
    const pool = await start({ size: 2 });
    const User = behaviour<boolean, { bound: boolean }, 'take', number, 'crash'>({
      init: (bound) => ({ bound }),
      handleCall(_m, from, s, ctx) {
        // No await before checkout: the agent is on the stack, so runtime.self() is this agent.
        void pool.checkout(s.bound ? {} : { holder: null }).then((c) => ctx.reply(from, c.id));
        return noreply(s);
      },
      handleCast() {
        throw new Error('user crashed');
      },
    });
    const bound = await rt.spawn(User, true);
    const unbound = await rt.spawn(User, false);
    await rt.call(bound, 'take');
    await rt.call(unbound, 'take');
    expect(pool.stats().out).toBe(2);
    rt.cast(bound, 'crash');
    await awaitExit(rt, bound);
    expect(pool.stats()).toMatchObject({ out: 1, idle: 1 });
    rt.cast(unbound, 'crash');
    await awaitExit(rt, unbound);
    await flush();
    expect(pool.stats()).toMatchObject({ out: 1, idle: 1 });
  });

  it('rejects a holder that is not an agent', async () => {
    const { start } = setup();
    const pool = await start();
    await expect(pool.checkout({ holder: 'me' as never })).rejects.toMatchObject({
      code: 'E_INVALID_ARGUMENT',
      message: expect.stringContaining('"holder"'),
    });
  });
});

describe('Pool close', () => {
  it('destroys idle and lent resources, rejects waiters, refuses checkouts', async () => {
    const { start, conns } = setup();
    const pool = await start({ size: 2 });
    const a = await pool.checkout();
    await pool.checkout();
    const waiting = pool.checkout();
    await pool.close();
    await expect(waiting).rejects.toBeInstanceOf(PoolClosedError);
    expect(conns.live.size).toBe(0);
    await expect(pool.checkout()).rejects.toMatchObject({ code: 'E_POOL_CLOSED', message: 'db is closed' });
    expect(() => pool.checkin(a)).not.toThrow();
    expect(pool.stats().closed).toBe(true);
    await pool.close(); // idempotent
  });

  it('waits for a create in flight and destroys what it makes', async () => {
    const { rt, conns } = setup();
    const gate = deferred();
    const pool = await Pool.start<Conn>(rt, {
      size: 1,
      prefill: false,
      create: async () => {
        await gate.promise;
        return conns.create();
      },
      destroy: conns.destroy,
    });
    expect(pool.name).toMatch(/^pool </);
    const waiting = pool.checkout().catch((e: unknown) => e);
    await flush();
    expect(pool.stats().creating).toBe(1);
    const closed = watch(pool.close());
    await flush();
    expect(closed.current.state).toBe('pending');
    gate.resolve();
    await pool.close();
    expect(await waiting).toBeInstanceOf(PoolClosedError);
    expect(conns.live.size).toBe(0);
    expect(conns.destroyed).toHaveLength(1);
  });

  it('stops waiting for a create that never settles after the close timeout', async () => {
    const { rt, clock, conns } = setup();
    const never = deferred<Conn>();
    const pool = await Pool.start<Conn>(rt, {
      size: 1,
      prefill: false,
      create: () => never.promise,
      destroy: conns.destroy,
    });
    const waiting = pool.checkout().catch((e: unknown) => e);
    await flush();
    expect(pool.stats().creating).toBe(1);
    const closed = watch(pool.close({ timeoutMs: 1000 }));
    await flush();
    clock.advance(999);
    await flush();
    expect(closed.current.state).toBe('pending');
    clock.advance(1);
    await flush();
    await flush();
    expect(closed.current.state).toBe('fulfilled');
    expect(await waiting).toBeInstanceOf(PoolClosedError);
    expect(pool.stats().closed).toBe(true);
    await expect(pool.close({ timeoutMs: -1 })).rejects.toMatchObject({ code: 'E_INVALID_ARGUMENT' });
    // What the hung create makes at last is destroyed, not leaked.
    never.resolve(conns.create());
    await flush();
    expect(conns.live.size).toBe(0);
  });

  it('runtime shutdown destroys the resources too', async () => {
    const { start, rt, conns } = setup();
    await start({ size: 3 });
    expect(conns.live.size).toBe(3);
    await rt.shutdown();
    expect(conns.live.size).toBe(0);
  });

  it('killing the owner closes the pool: resources destroyed, waiters and checkouts get E_POOL_CLOSED', async () => {
    const { start, rt, conns } = setup();
    const pool = await start({ size: 2 });
    const lent = await pool.checkout();
    await pool.checkout();
    const waiting = pool.checkout().catch((e: unknown) => e);
    await flush();
    expect(pool.stats().waiting).toBe(1);
    rt.kill(pool.ref);
    await awaitExit(rt, pool.ref);
    expect(conns.live.size).toBe(0);
    expect(pool.stats().closed).toBe(true);
    expect(await waiting).toBeInstanceOf(PoolClosedError);
    await expect(pool.checkout()).rejects.toBeInstanceOf(PoolClosedError);
    expect(() => pool.checkin(lent)).not.toThrow();
    await pool.close();
  });

  it('reports a destroy that throws through telemetry and goes on', async () => {
    const { rt, conns } = setup();
    const pool = await Pool.start<Conn>(rt, {
      name: 'grumpy',
      size: 1,
      create: conns.create,
      destroy: () => {
        throw new Error('already closed');
      },
    });
    const event = awaitTelemetry(rt, ['mabeam', 'pool', 'resource_error']);
    await pool.close();
    expect((await event).metadata).toMatchObject({ pool: 'grumpy', op: 'destroy' });
  });
});
