import { describe, expect, it } from 'vitest';
import {
  AgentHolderExitedError,
  AgentNotCheckedOutError,
  AgentPool,
  AgentPoolClosedError,
  AgentPoolErrorCodes,
  AgentPoolExhaustedError,
  type AgentPoolOptions,
  AgentPoolStartError,
  type AgentTypes,
  UnknownAgentTypeError,
} from '../../src/agents/agent-pool.js';
import {
  type AnyRef,
  behaviour,
  DynamicSupervisor,
  InvalidArgumentError,
  noreply,
  type Runtime,
  reply,
  VirtualClock,
} from '../../src/kernel/index.js';
import { awaitExit, awaitTelemetry, probe } from '../../src/kernel/testkit.js';
import { deferred, flush, runtimeFactory, watch } from '../kernel/helpers.js';

const runtime = runtimeFactory();

type WorkerCall =
  | { type: 'get' }
  | { type: 'set'; value: string }
  | { type: 'crash' }
  | { type: 'hang' }
  | { type: 'fail-health' };
interface WorkerState {
  serial: number;
  value: string;
  unhealthy: boolean;
}

let serial = 0;
/** A stateful worker: `set` leaves state behind, which is what a reused agent would leak. */
const Worker = behaviour<string, WorkerState, WorkerCall, unknown>({
  init: (value) => ({ serial: ++serial, value, unhealthy: false }),
  handleCall(msg, _from, s) {
    switch (msg.type) {
      case 'get':
        return reply({ serial: s.serial, value: s.value }, s);
      case 'set':
        s.value = msg.value;
        return reply('ok', s);
      case 'fail-health':
        s.unhealthy = true;
        return reply('ok', s);
      case 'hang':
        return noreply(s);
      case 'crash':
        throw new Error('worker crashed');
    }
  },
});

const Broken = behaviour<void, void>({
  init() {
    throw new Error('no GPU');
  },
});

function setup(types?: AgentTypes, extra: Partial<AgentPoolOptions<AgentTypes>> = {}) {
  const clock = new VirtualClock();
  const rt = runtime({ clock });
  const start = (
    t: AgentTypes = types ?? { worker: { behaviour: Worker, args: 'fresh', warm: 2, max: 4 } },
  ) => AgentPool.start(rt, { name: 'agents', types: t, ...extra });
  return { clock, rt, start };
}

/** Let the pool's starts and stops (supervisor calls, inits) run to completion. */
async function settle(): Promise<void> {
  for (let i = 0; i < 6; i++) await flush();
}

const get = (rt: Runtime, ref: AnyRef) =>
  rt.call(ref, { type: 'get' }) as Promise<{ serial: number; value: string }>;

describe('AgentPool options', () => {
  it('rejects bad options with E_INVALID_ARGUMENT naming the field', async () => {
    const { rt } = setup();
    const w = { behaviour: Worker, warm: 1, max: 2 };
    const cases: [unknown, string][] = [
      [{ types: { w: { ...w, warm: -1 } } }, '"warm"'],
      [{ types: { w: { ...w, warm: 1.5 } } }, '"warm"'],
      [{ types: { w: { ...w, warm: 3, max: 2 } } }, '"max"'],
      [{ types: { w: { ...w, warm: 0, max: 0 } } }, '"max"'],
      [{ types: { w: { ...w, idleMs: -1 } } }, '"idleMs"'],
      [{ types: { w: { ...w, checkoutTimeoutMs: 0 } } }, '"checkoutTimeoutMs"'],
      [{ types: { w: { ...w, onHolderExit: 'forget' } } }, '"onHolderExit"'],
      [{ types: { w: { ...w, healthy: true } } }, '"healthy"'],
      [{ types: { w: { ...w, behaviour: {} } } }, '"behaviour"'],
      [{ types: { w: { ...w, size: 3 } } }, '"size"'],
      [{ types: {} }, '"types"'],
      [{ types: { w }, sizes: 1 }, '"sizes"'],
      [{ types: { w }, name: '' }, '"name"'],
      [{ types: { w }, supervisor: 'nobody' }, '"supervisor"'],
    ];
    for (const [options, field] of cases) {
      const error = await AgentPool.start(rt, options as AgentPoolOptions<AgentTypes>).catch(
        (e: unknown) => e,
      );
      expect(error, field).toBeInstanceOf(InvalidArgumentError);
      expect((error as Error).message, field).toContain(field);
    }
    expect(rt.count).toBe(0); // nothing was started for a bad spec
  });

  it('names the type and the field for a bad type spec', async () => {
    const { start } = setup();
    await expect(start({ coder: { behaviour: Worker, warm: 1, max: -4 } })).rejects.toThrow(
      /invalid agent pool type "coder" option "max"/,
    );
  });

  it('rejects with E_AGENT_POOL_START_FAILED when a warm agent cannot start, leaving nothing running', async () => {
    const { start, rt } = setup();
    const error = await start({
      worker: { behaviour: Worker, args: 'x', warm: 1 },
      gpu: { behaviour: Broken, warm: 2, max: 2 },
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AgentPoolStartError);
    expect(error).toMatchObject({ code: 'E_AGENT_POOL_START_FAILED', type: 'gpu' });
    expect((error as Error).message).toMatch(/could not start a "gpu" agent: .*no GPU/);
    await settle();
    expect(rt.count).toBe(0);
  });
});

describe('AgentPool checkout and checkin', () => {
  it('starts warm agents under a dynamic supervisor', async () => {
    const { start, rt } = setup();
    const pool = await start();
    expect(pool.types).toEqual(['worker']);
    expect(pool.stats('worker')).toMatchObject({ warm: 2, max: 4, idle: 2, busy: 0, live: 2, spawned: 2 });
    const children = await DynamicSupervisor.whichChildren(rt, pool.supervisor);
    expect(children).toHaveLength(2);
    expect(children.every((c) => c.ref !== undefined && rt.isAlive(c.ref))).toBe(true);
  });

  it('lends distinct agents and takes them back', async () => {
    const { start, rt } = setup();
    const pool = await start();
    const a = await pool.checkout('worker');
    const b = await pool.checkout('worker');
    expect(a.equals(b)).toBe(false);
    expect(await get(rt, a)).toMatchObject({ value: 'fresh' });
    expect(pool.stats('worker')).toMatchObject({ idle: 0, busy: 2 });
    expect(pool.checkin(a)).toBe(true);
    expect(pool.checkin('worker', b)).toBe(true);
    await flush();
    expect(pool.stats('worker')).toMatchObject({ idle: 2, busy: 0, live: 2 });
    // LIFO: the agent returned last is lent next (so surplus agents stay idle and are stopped).
    expect((await pool.checkout('worker')).equals(b)).toBe(true);
  });

  it('starts agents on demand up to max, then makes checkouts wait', async () => {
    const { start, rt } = setup();
    const pool = await start();
    const held = [];
    for (let i = 0; i < 4; i++) held.push(await pool.checkout('worker'));
    expect(new Set(held.map((r) => r.toString())).size).toBe(4);
    expect(pool.stats('worker')).toMatchObject({ busy: 4, live: 4, spawned: 4 });
    const waiting = watch(pool.checkout('worker'));
    await settle();
    expect(waiting.current.state).toBe('pending');
    expect(pool.stats('worker')).toMatchObject({ waiting: 1, live: 4 });
    expect((await DynamicSupervisor.countChildren(rt, pool.supervisor)).active).toBe(4);
  });

  it('rejects with E_AGENT_POOL_EXHAUSTED naming the type and the timeout, on the runtime clock', async () => {
    const { start, clock } = setup();
    const pool = await start({ worker: { behaviour: Worker, args: 'x', warm: 1, checkoutTimeoutMs: 50 } });
    const held = await pool.checkout('worker');
    const waiting = watch(pool.checkout('worker', { timeoutMs: 100 }));
    clock.advance(99);
    await flush();
    expect(waiting.current.state).toBe('pending');
    clock.advance(1);
    await flush();
    expect(waiting.current.state).toBe('rejected');
    const error = (waiting.current as { reason: unknown }).reason as AgentPoolExhaustedError;
    expect(error).toBeInstanceOf(AgentPoolExhaustedError);
    expect(error).toMatchObject({ code: 'E_AGENT_POOL_EXHAUSTED', type: 'worker', timeoutMs: 100, max: 1 });
    expect(error.message).toMatch(/agents: no "worker" agent became free within 100 ms \(max 1; all in use/);
    expect(pool.stats('worker')).toMatchObject({ waiting: 0, timeouts: 1 });
    // The type's default timeout applies when none is given.
    const byDefault = pool.checkout('worker');
    clock.advance(50);
    await expect(byDefault).rejects.toMatchObject({ code: 'E_AGENT_POOL_EXHAUSTED', timeoutMs: 50 });
    pool.checkin(held);
    await flush();
    expect(pool.stats('worker')).toMatchObject({ idle: 1, busy: 0 });
  });

  it('serves waiters first come, first served as agents are checked in', async () => {
    const { start } = setup();
    const pool = await start({ worker: { behaviour: Worker, args: 'x', warm: 1, max: 2 } });
    const held = [await pool.checkout('worker'), await pool.checkout('worker')];
    const order: number[] = [];
    const waiters = [1, 2, 3].map((i) =>
      pool.checkout('worker').then((ref) => {
        order.push(i);
        return ref;
      }),
    );
    await settle();
    expect(pool.stats('worker').waiting).toBe(3);
    pool.checkin(held[0] as AnyRef);
    const first = await waiters[0];
    expect(first?.equals(held[0] as AnyRef)).toBe(true);
    pool.checkin(held[1] as AnyRef);
    pool.checkin(first as AnyRef);
    await Promise.all(waiters);
    expect(order).toEqual([1, 2, 3]);
  });

  it('withAgent checks the agent back in whether fn returns or throws', async () => {
    const { start, rt } = setup();
    const pool = await start({ worker: { behaviour: Worker, args: 'x', warm: 1 } });
    expect(await pool.withAgent('worker', async (ref) => (await get(rt, ref)).value)).toBe('x');
    await expect(
      pool.withAgent('worker', () => {
        throw new Error('task failed');
      }),
    ).rejects.toThrow('task failed');
    await flush();
    expect(pool.stats('worker')).toMatchObject({ idle: 1, busy: 0 });
    await expect(pool.withAgent('worker', 'nope' as never)).rejects.toThrow(InvalidArgumentError);
  });

  it('refuses a checkin of an agent not checked out, twice, or under the wrong type', async () => {
    const { start, rt } = setup();
    const pool = await start({
      worker: { behaviour: Worker, args: 'x', warm: 1 },
      other: { behaviour: Worker, args: 'y', warm: 1 },
    });
    const a = await pool.checkout('worker');
    expect(() => pool.checkin('other', a)).toThrow(AgentNotCheckedOutError);
    expect(() => pool.checkin('other', a)).toThrow(/it is a "worker" agent, not "other"/);
    pool.checkin(a);
    expect(() => pool.checkin(a)).toThrow(
      expect.objectContaining({ code: AgentPoolErrorCodes.NOT_CHECKED_OUT }),
    );
    const stranger = probe(rt).ref;
    expect(() => pool.checkin(stranger)).toThrow(/is not checked out from agents/);
    expect(() => pool.checkin({} as never)).toThrow(InvalidArgumentError);
  });

  it('refuses unknown types with E_AGENT_POOL_UNKNOWN_TYPE', async () => {
    const { start, rt } = setup();
    const pool = await start();
    await expect(pool.checkout('coder' as never)).rejects.toMatchObject({
      code: 'E_AGENT_POOL_UNKNOWN_TYPE',
      message: 'agents has no agent type "coder" (types: "worker")',
    });
    expect(() => pool.stats('coder' as never)).toThrow(UnknownAgentTypeError);
    expect(() => pool.checkin('coder' as never, probe(rt).ref)).toThrow(UnknownAgentTypeError);
    await expect(pool.withAgent('coder' as never, () => 1)).rejects.toThrow(UnknownAgentTypeError);
  });

  it('rejects a bad checkout timeout naming it', async () => {
    const { start } = setup();
    const pool = await start();
    await expect(pool.checkout('worker', { timeoutMs: 0 })).rejects.toThrow(/"timeoutMs"/);
    await expect(pool.checkout('worker', { holder: 42 as never })).rejects.toThrow(/"holder"/);
  });
});

describe('AgentPool shrinking', () => {
  it('stops agents above warm after idleMs idle on the runtime clock, keeping warm ones', async () => {
    const { start, clock, rt } = setup();
    const pool = await start({ worker: { behaviour: Worker, args: 'x', warm: 1, max: 3, idleMs: 1000 } });
    const held = [
      await pool.checkout('worker'),
      await pool.checkout('worker'),
      await pool.checkout('worker'),
    ];
    for (const r of held) pool.checkin(r);
    await flush();
    expect(pool.stats('worker')).toMatchObject({ idle: 3, live: 3 });
    clock.advance(999);
    await settle();
    expect(pool.stats('worker').live).toBe(3);
    clock.advance(1);
    // LIFO keeps the last returned agent in use; the two that idled longest are the surplus.
    await Promise.all([awaitExit(rt, held[0] as AnyRef), awaitExit(rt, held[1] as AnyRef)]);
    await settle();
    expect(rt.isAlive(held[2] as AnyRef)).toBe(true);
    expect(pool.stats('worker')).toMatchObject({ idle: 1, live: 1, stopped: 2 });
    // Never below warm, however long it idles.
    clock.advance(60_000);
    await settle();
    expect(pool.stats('worker')).toMatchObject({ idle: 1, live: 1 });
  });
});

describe('AgentPool failures', () => {
  it('replaces an idle agent that crashes, keeping warm agents', async () => {
    const { start, rt } = setup();
    const pool = await start();
    const [victim] = (await DynamicSupervisor.whichChildren(rt, pool.supervisor)).map((c) => c.ref as AnyRef);
    const respawned = awaitTelemetry(
      rt,
      ['mabeam', 'agent_pool', 'spawn'],
      (_m, md) => md.replacement === true,
    );
    rt.kill(victim as AnyRef);
    const { metadata } = await respawned;
    expect(metadata).toMatchObject({ pool: 'agents', type: 'worker' });
    expect(pool.stats('worker')).toMatchObject({ idle: 2, live: 2, replaced: 1, spawned: 3 });
    const a = await pool.checkout('worker');
    const b = await pool.checkout('worker');
    expect(rt.isAlive(a) && rt.isAlive(b)).toBe(true);
  });

  it('replaces a checked-out agent that crashes; its holder gets false on checkin', async () => {
    const { start, rt } = setup();
    const pool = await start({ worker: { behaviour: Worker, args: 'fresh', warm: 1 } });
    const a = await pool.checkout('worker');
    await rt.call(a, { type: 'set', value: 'dirty' });
    const respawned = awaitTelemetry(rt, ['mabeam', 'agent_pool', 'spawn']);
    await expect(rt.call(a, { type: 'crash' })).rejects.toMatchObject({ code: 'E_EXIT' });
    await respawned;
    expect(pool.stats('worker')).toMatchObject({ busy: 0, idle: 1, live: 1, replaced: 1 });
    expect(pool.checkin(a)).toBe(false); // nothing to give back: it is gone and replaced
    const b = await pool.checkout('worker');
    expect(b.equals(a)).toBe(false);
    expect(await get(rt, b)).toMatchObject({ value: 'fresh' });
  });

  it('serves a waiter with the replacement of an agent that crashed while lent', async () => {
    const { start, rt } = setup();
    const pool = await start({ worker: { behaviour: Worker, args: 'fresh', warm: 1 } });
    const a = await pool.checkout('worker');
    const next = pool.checkout('worker');
    await flush();
    rt.kill(a);
    const b = await next;
    expect(b.equals(a)).toBe(false);
    expect(rt.isAlive(b)).toBe(true);
    expect(pool.stats('worker')).toMatchObject({ busy: 1, live: 1 });
  });

  it('replaces the agent of a holder that dies, by default (it may be mid-task with its state)', async () => {
    const { start, rt } = setup();
    const pool = await start({ worker: { behaviour: Worker, args: 'fresh', warm: 1 } });
    const holder = probe(rt);
    const a = await pool.checkout('worker', { holder: holder.ref });
    await rt.call(a, { type: 'set', value: 'dirty' });
    const hanging = rt.call(a, { type: 'hang' }, Number.POSITIVE_INFINITY).catch((e: unknown) => e);
    rt.kill(holder.ref);
    expect(pool.stats('worker')).toMatchObject({ busy: 0 }); // taken back in the holder's exit
    expect(await awaitExit(rt, a)).toBe('shutdown');
    expect(await hanging).toMatchObject({ code: 'E_EXIT' });
    const b = await pool.checkout('worker');
    expect(b.equals(a)).toBe(false);
    expect(await get(rt, b)).toMatchObject({ value: 'fresh' });
    expect(pool.stats('worker')).toMatchObject({ replaced: 1, stopped: 1, live: 1 });
    expect(pool.checkin(a)).toBe(false);
  });

  it("returns the agent of a holder that dies, as it is, with onHolderExit: 'return'", async () => {
    const { start, rt } = setup();
    const pool = await start({
      worker: { behaviour: Worker, args: 'fresh', warm: 1, onHolderExit: 'return' },
    });
    const holder = probe(rt);
    const a = await pool.checkout('worker', { holder: holder.ref });
    await rt.call(a, { type: 'set', value: 'kept' });
    rt.kill(holder.ref);
    expect(pool.stats('worker')).toMatchObject({ busy: 0, idle: 1 });
    const b = await pool.checkout('worker');
    expect(b.equals(a)).toBe(true);
    expect(await get(rt, b)).toMatchObject({ value: 'kept' });
    expect(pool.stats('worker')).toMatchObject({ replaced: 0, spawned: 1 });
  });

  it('binds to the calling agent by default', async () => {
    const { start, rt } = setup();
    const pool = await start({ worker: { behaviour: Worker, args: 'fresh', warm: 1 } });
    const got: AnyRef[] = [];
    const Holder = behaviour<void, void, 'borrow', string>({
      init() {},
      handleCall(_msg, from, s, ctx) {
        void pool.checkout('worker').then((ref) => {
          got.push(ref);
          ctx.reply(from, 'ok');
        });
        return noreply(s);
      },
    });
    const h = await rt.spawn(Holder, undefined);
    await rt.call(h, 'borrow');
    expect(pool.stats('worker').busy).toBe(1);
    const respawned = awaitTelemetry(rt, ['mabeam', 'agent_pool', 'spawn']);
    rt.kill(h);
    await respawned;
    expect(rt.isAlive(got[0] as AnyRef)).toBe(false);
    expect(pool.stats('worker')).toMatchObject({ busy: 0, idle: 1, live: 1 });
  });

  it('abandons a waiting checkout whose holder dies with E_AGENT_POOL_HOLDER_EXITED', async () => {
    const { start, rt } = setup();
    const pool = await start({ worker: { behaviour: Worker, args: 'x', warm: 1 } });
    const held = await pool.checkout('worker');
    const holder = probe(rt);
    const waiting = pool.checkout('worker', { holder: holder.ref, timeoutMs: Number.POSITIVE_INFINITY });
    await flush();
    rt.kill(holder.ref);
    await expect(waiting).rejects.toBeInstanceOf(AgentHolderExitedError);
    await expect(waiting).rejects.toMatchObject({ code: 'E_AGENT_POOL_HOLDER_EXITED', type: 'worker' });
    pool.checkin(held);
    await flush();
    expect(pool.stats('worker')).toMatchObject({ idle: 1, waiting: 0 });
  });

  it('checkin with replace stops the agent and lends a fresh one next', async () => {
    const { start, rt } = setup();
    const pool = await start({ worker: { behaviour: Worker, args: 'fresh', warm: 1 } });
    const a = await pool.checkout('worker');
    await rt.call(a, { type: 'set', value: 'spoiled' });
    expect(pool.checkin(a, { replace: true })).toBe(true);
    const b = await pool.checkout('worker');
    expect(b.equals(a)).toBe(false);
    expect(rt.isAlive(a)).toBe(false);
    expect(await get(rt, b)).toMatchObject({ value: 'fresh' });
  });

  it('health-checks a used agent before lending it again and replaces an unhealthy one', async () => {
    const { start, rt } = setup();
    const pool = await start({
      worker: {
        behaviour: Worker,
        args: 'fresh',
        warm: 1,
        healthy: async (ref, r) =>
          !((await r.call(ref, { type: 'get' })) as { value: string }).value.includes('!'),
      },
    });
    const a = await pool.checkout('worker');
    pool.checkin(a);
    const again = await pool.checkout('worker');
    expect(again.equals(a)).toBe(true);
    await rt.call(again, { type: 'set', value: 'broken!' });
    pool.checkin(again);
    const b = await pool.checkout('worker');
    expect(b.equals(a)).toBe(false);
    expect(await get(rt, b)).toMatchObject({ value: 'fresh' });
    expect(pool.stats('worker')).toMatchObject({ replaced: 1, live: 1 });
  });

  it('stops replacing an agent that keeps dying before it is ever lent', async () => {
    const { start, rt } = setup();
    let starts = 0;
    const Flaky = behaviour<void, void, never, never, never, 'die'>({
      init(_a, ctx) {
        starts++;
        if (starts === 2 || starts === 3) ctx.send(ctx.self, 'die');
      },
      handleInfo() {
        throw new Error('flaky');
      },
    });
    const pool = await start({ flaky: { behaviour: Flaky, warm: 1 } });
    const [first] = (await DynamicSupervisor.whichChildren(rt, pool.supervisor)).map((c) => c.ref as AnyRef);
    rt.kill(first as AnyRef);
    for (let i = 0; i < 10; i++) await settle();
    // The killed one never served anyone either: with the two replacements that died at once,
    // that is three exits in a row before being lent, and the pool gives up on the slot.
    expect(starts).toBe(3);
    expect(pool.stats('flaky')).toMatchObject({ live: 0, idle: 1 });
    // A checkout tries once more.
    const ref = await pool.checkout('flaky');
    expect(starts).toBe(4);
    expect(rt.isAlive(ref)).toBe(true);
  });

  it('times a checkout out while the replacement it waits for is still starting', async () => {
    const { start, rt, clock } = setup();
    const gate = deferred();
    let starts = 0;
    const Slow = behaviour<void, void, 'get', string>({
      async init() {
        if (++starts > 1) await gate.promise;
      },
      handleCall: (_m, _f, s) => reply('ok', s),
    });
    const pool = await start({ slow: { behaviour: Slow, warm: 1 } });
    const [first] = (await DynamicSupervisor.whichChildren(rt, pool.supervisor)).map((c) => c.ref as AnyRef);
    rt.kill(first as AnyRef);
    await settle();
    const waiting = watch(pool.checkout('slow', { timeoutMs: 100 }));
    await settle();
    clock.advance(100);
    await settle();
    expect(waiting.current.state).toBe('rejected');
    expect((waiting.current as { reason: Error }).reason).toMatchObject({
      code: 'E_AGENT_POOL_EXHAUSTED',
      message: expect.stringContaining('its agent was still starting'),
    });
    expect(pool.stats('slow')).toMatchObject({ busy: 0, idle: 1, starting: 1 });
    gate.resolve();
    const ref = await pool.checkout('slow');
    expect(await rt.call(ref, 'get')).toBe('ok');
    expect(starts).toBe(2);
  });

  it('fails a checkout with E_AGENT_POOL_START_FAILED when the agent started for it cannot start', async () => {
    const { start } = setup();
    const pool = await start({ gpu: { behaviour: Broken, warm: 0, max: 1 } });
    await expect(pool.checkout('gpu')).rejects.toMatchObject({
      code: 'E_AGENT_POOL_START_FAILED',
      type: 'gpu',
    });
    expect(pool.stats('gpu')).toMatchObject({ live: 0, busy: 0, waiting: 0 });
  });
});

describe('AgentPool close', () => {
  it('rejects waiters and later checkouts, stops every agent and its supervisor', async () => {
    const { start, rt } = setup();
    const pool = await start({ worker: { behaviour: Worker, args: 'x', warm: 1, max: 2 } });
    const a = await pool.checkout('worker');
    const b = await pool.checkout('worker');
    const waiting = pool.checkout('worker', { timeoutMs: Number.POSITIVE_INFINITY });
    await flush();
    await pool.close();
    await expect(waiting).rejects.toBeInstanceOf(AgentPoolClosedError);
    await expect(pool.checkout('worker')).rejects.toMatchObject({
      code: 'E_AGENT_POOL_CLOSED',
      message: 'agents is closed',
    });
    expect(rt.isAlive(a) || rt.isAlive(b)).toBe(false);
    expect(rt.isAlive(pool.supervisor as AnyRef)).toBe(false);
    expect(pool.checkin(a)).toBe(false);
    expect(pool.stats('worker')).toMatchObject({ closed: true, live: 0 });
    expect(rt.count).toBe(0);
    await pool.close(); // idempotent
  });

  it('runs agents under a given supervisor and leaves it running on close', async () => {
    const clock = new VirtualClock();
    const rt = runtime({ clock });
    const sup = await DynamicSupervisor.start(rt, {});
    const pool = await AgentPool.start(rt, {
      supervisor: sup,
      types: { worker: { behaviour: Worker, args: 'x', warm: 2 } },
    });
    expect(pool.supervisor).toBe(sup);
    expect((await DynamicSupervisor.countChildren(rt, sup)).active).toBe(2);
    await pool.close();
    expect(rt.isAlive(sup)).toBe(true);
    expect((await DynamicSupervisor.countChildren(rt, sup)).active).toBe(0);
  });

  it('closes when its own supervisor dies', async () => {
    const { start, rt } = setup();
    const pool = await start();
    rt.kill(pool.supervisor as AnyRef);
    await expect(pool.checkout('worker')).rejects.toBeInstanceOf(AgentPoolClosedError);
    await settle();
    expect(rt.count).toBe(0);
  });
});

describe('AgentPool regressions', () => {
  const Plain = behaviour<void, void, 'get', string>({
    init() {},
    handleCall: (_m, _f, s) => reply('ok', s),
  });
  const settleLong = async () => {
    await settle();
    await settle();
  };

  it('never has more than max agents alive when a slot is retired while its replacement starts', async () => {
    const { rt, clock, start } = setup();
    const gate = deferred();
    let starts = 0;
    const spawned: AnyRef[] = [];
    let maxAlive = 0;
    const Slow = behaviour<void, void, 'get', string>({
      async init(_a, ctx) {
        starts++;
        spawned.push(ctx.self);
        maxAlive = Math.max(maxAlive, spawned.filter((r) => rt.isAlive(r)).length);
        if (starts === 2) await gate.promise; // the replacement of the crashed agent is slow
      },
      handleCall: (_m, _f, s) => reply('ok', s),
    });
    const pool = await start({ w: { behaviour: Slow, warm: 0, max: 1, idleMs: 100 } });
    const a = await pool.checkout('w');
    pool.checkin(a);
    await settleLong();
    rt.kill(a); // the idle agent crashes: a replacement starts in its slot (slowly)
    await settleLong();
    clock.advance(100); // the idle slot is reaped while its replacement is starting
    await settleLong();
    const b = pool.checkout('w', { timeoutMs: Number.POSITIVE_INFINITY }); // a new slot
    await settleLong();
    gate.resolve();
    const ref = await b;
    await settleLong();
    expect(maxAlive).toBe(1);
    expect(spawned.filter((r) => rt.isAlive(r))).toHaveLength(1);
    expect(rt.isAlive(ref)).toBe(true);
    expect(pool.stats('w')).toMatchObject({ live: 1, busy: 1 });
  });

  it("onHolderExit 'return': a dead holder's late checkin does not take the agent from its next holder", async () => {
    const { rt, start } = setup();
    const pool = await start({ w: { behaviour: Plain, warm: 1, max: 2, onHolderExit: 'return' } });
    const h1 = probe(rt);
    const h2 = probe(rt);
    const a = await pool.checkout('w', { holder: h1.ref });
    rt.kill(h1.ref); // `a` goes back as it is
    const b = await pool.checkout('w', { holder: h2.ref });
    expect(b.equals(a)).toBe(true); // h2 now holds the agent
    // h1's `finally { pool.checkin(a) }` runs late (an async handler continues after the kill).
    expect(pool.checkin(a)).toBe(false);
    await flush();
    const c = await pool.checkout('w', { holder: null });
    expect(c.equals(b)).toBe(false);
    expect(pool.stats('w').busy).toBe(2);
    // h2's own checkin still works, once.
    expect(pool.checkin(b)).toBe(true);
    expect(() => pool.checkin(b)).toThrow(/already checked in/);
  });

  it("onHolderExit 'replace': a dead holder's finally checkin returns false while its agent is stopped", async () => {
    const { rt, start } = setup();
    const pool = await start({ w: { behaviour: Plain, warm: 1 } });
    const h1 = probe(rt);
    const a = await pool.checkout('w', { holder: h1.ref });
    rt.kill(h1.ref); // the agent is being replaced: stopped through the supervisor, asynchronously
    expect(rt.isAlive(a)).toBe(true);
    expect(pool.checkin(a)).toBe(false);
    await settle();
    expect(pool.checkin(a)).toBe(false);
  });

  it('a stale health check of an abandoned checkout does not stop the agent lent to the next holder', async () => {
    const { rt, start } = setup();
    const slowVerdict = deferred<boolean>();
    let checks = 0;
    const pool = await start({
      w: { behaviour: Plain, warm: 1, healthy: () => (++checks === 1 ? slowVerdict.promise : true) },
    });
    const a = await pool.checkout('w', { holder: null });
    pool.checkin(a); // now used: the next checkout health-checks it
    await settleLong();
    const h2 = probe(rt);
    const abandoned = pool.checkout('w', { holder: h2.ref }).catch((e: unknown) => e);
    await settleLong(); // its (slow) health check is running
    const next = pool.checkout('w', { holder: null, timeoutMs: Number.POSITIVE_INFINITY });
    await settleLong();
    rt.kill(h2.ref); // the first checkout is abandoned; the slot goes to `next`
    const c = await next; // checked healthy by its own check
    expect(c.equals(a)).toBe(true);
    slowVerdict.resolve(false); // the stale check answers
    expect(await abandoned).toMatchObject({ code: 'E_AGENT_POOL_HOLDER_EXITED' });
    await settleLong();
    expect(rt.isAlive(c)).toBe(true); // still lent to `next`: nobody may stop it
    expect(pool.stats('w')).toMatchObject({ busy: 1, live: 1, replaced: 0 });
    expect(pool.checkin(c)).toBe(true);
  });

  it('a checkout stuck in a health check that never answers rejects on close', async () => {
    const { start } = setup();
    let checks = 0;
    const pool = await start({
      w: {
        behaviour: Plain,
        warm: 1,
        healthy: () => (++checks === 1 ? new Promise<boolean>(() => {}) : true),
      },
    });
    const a = await pool.checkout('w', { holder: null });
    pool.checkin(a);
    await settle();
    const stuck = watch(pool.checkout('w', { holder: null, timeoutMs: Number.POSITIVE_INFINITY }));
    await settle();
    expect(stuck.current.state).toBe('pending');
    await pool.close();
    await settle();
    expect(stuck.current).toMatchObject({ state: 'rejected', reason: { code: 'E_AGENT_POOL_CLOSED' } });
  });

  it('AgentPool.start refuses a live agent that is not a dynamic supervisor instead of hanging', async () => {
    const { rt } = setup();
    const NotASupervisor = behaviour<void, void, unknown, unknown>({
      init() {},
      handleCall: (_m, _f, s) => noreply(s),
    });
    const bogus = await rt.spawn(NotASupervisor, undefined);
    await expect(
      AgentPool.start(rt, { types: { w: { behaviour: Plain, warm: 1 } }, supervisor: bogus as never }),
    ).rejects.toMatchObject({
      code: 'E_INVALID_ARGUMENT',
      message: expect.stringContaining('"supervisor"'),
    });
  });

  it('keeps its warm agents after a passing start failure (background retry on the runtime clock)', async () => {
    const { rt, clock, start } = setup();
    let broken = false;
    const Flaky = behaviour<void, void, 'get', string>({
      init() {
        if (broken) throw new Error('GPU busy');
      },
      handleCall: (_m, _f, s) => reply('ok', s),
    });
    const pool = await start({ w: { behaviour: Flaky, warm: 1 } });
    const [first] = (await DynamicSupervisor.whichChildren(rt, pool.supervisor)).map((c) => c.ref as AnyRef);
    broken = true;
    rt.kill(first as AnyRef); // its replacement fails
    await settleLong();
    await expect(pool.checkout('w')).rejects.toMatchObject({ code: 'E_AGENT_POOL_START_FAILED' });
    broken = false; // starts work again
    await settleLong();
    expect(pool.stats('w')).toMatchObject({ live: 0, idle: 1 });
    clock.advance(60_000);
    await settleLong();
    expect(pool.stats('w')).toMatchObject({ warm: 1, live: 1, idle: 1 });
  });

  it('counts a checkout that timed out in the health check, and says so', async () => {
    const { clock, start } = setup();
    let checks = 0;
    const pool = await start({
      w: {
        behaviour: Plain,
        warm: 1,
        healthy: () => (++checks === 1 ? new Promise<boolean>(() => {}) : true),
      },
    });
    const a = await pool.checkout('w', { holder: null });
    pool.checkin(a);
    await settleLong();
    const p = pool.checkout('w', { holder: null, timeoutMs: 100 }).catch((e: Error) => e);
    await settleLong();
    clock.advance(100);
    const error = (await p) as Error & { code: string };
    expect(error.code).toBe('E_AGENT_POOL_EXHAUSTED');
    expect(error.message).toContain('its health check did not answer in time');
    expect(error.message).not.toContain('still starting');
    expect(pool.stats('w').timeouts).toBe(1);
  });
});
