import { describe, expect, it } from 'vitest';
import {
  type AgentContext,
  type AnyRef,
  behaviour,
  type PriorityName,
  type Runtime,
  reply,
} from '../../src/kernel/index.js';
import { probe } from '../../src/kernel/testkit.js';
import { runtimeFactory } from './helpers.js';

/** Every runtime a test makes is shut down after it. */
const runtime = runtimeFactory();

interface Shared {
  log: string[];
  /** Messages handled so far, by agent name. */
  done: Map<string, number>;
}

/** Appends `name:msg` to the shared log; casts `{to, msg}` go on to another agent. */
const Logger = behaviour<
  { name: string; shared: Shared; report?: AnyRef; reportAt?: number },
  { name: string; shared: Shared; report?: AnyRef; reportAt?: number },
  'count',
  number,
  unknown
>({
  init: (args) => args,
  handleCall: (_m, _f, s) => reply(s.shared.done.get(s.name) ?? 0, s),
  handleCast(msg, s, ctx) {
    const { shared, name } = s;
    if (msg !== null && typeof msg === 'object' && 'to' in msg) {
      const m = msg as { to: AnyRef; msg: unknown };
      ctx.cast(m.to, m.msg);
    }
    shared.log.push(`${name}:${String(typeof msg === 'object' ? 'fwd' : msg)}`);
    const n = (shared.done.get(name) ?? 0) + 1;
    shared.done.set(name, n);
    if (s.report !== undefined && (s.reportAt === undefined || n === s.reportAt)) {
      ctx.send(s.report, { name, n, snapshot: new Map(shared.done) });
    }
    return s;
  },
});

/**
 * Runs the function it is cast. Messages sent from inside an agent are always queued, so a driver
 * makes several agents runnable at once, which is what priorities and fairness are about (a
 * message sent from outside to an idle agent while nothing is runnable may run at once).
 */
const Driver = behaviour<void, null, never, never, (ctx: AgentContext) => void>({
  init: () => null,
  handleCast(fn, s, ctx) {
    fn(ctx as AgentContext);
    return s;
  },
});

function shared(): Shared {
  return { log: [], done: new Map() };
}

async function logger(
  rt: Runtime,
  name: string,
  sh: Shared,
  priority: PriorityName,
  report?: AnyRef,
  reportAt?: number,
) {
  return rt.spawn(Logger, { name, shared: sh, report, reportAt }, { priority });
}

describe('priorities', () => {
  it('a high-priority agent runs before normal ones that were scheduled earlier', async () => {
    const rt = runtime();
    const sh = shared();
    const report = probe(rt);
    const n = await logger(rt, 'normal', sh, 'normal', report.ref);
    const h = await logger(rt, 'high', sh, 'high', report.ref);
    const driver = await rt.spawn(Driver, undefined);
    rt.cast(driver, (ctx) => {
      ctx.cast(n, 1);
      ctx.cast(n, 2);
      ctx.cast(h, 1);
    });
    await report.expectMessage({ name: 'normal', n: 2 });
    expect(sh.log).toEqual(['high:1', 'normal:1', 'normal:2']);
  });

  it('high priority preempts a busy normal agent at the end of its slice', async () => {
    const rt = runtime({ reductions: 50 });
    const sh = shared();
    const report = probe(rt);
    const h = await logger(rt, 'high', sh, 'high', report.ref);
    const n = await logger(rt, 'normal', sh, 'normal', report.ref, 1000);
    const driver = await rt.spawn(Driver, undefined);
    rt.cast(driver, (ctx) => {
      ctx.cast(n, { to: h, msg: 'urgent' }); // the first message wakes the high agent
      for (let i = 1; i < 1000; i++) ctx.cast(n, i);
    });
    const highRan = await report.expectMessage({ name: 'high' });
    await report.expectMessage({ name: 'normal', n: 1000 });
    // The high agent ran right after the normal agent's first slice, not after all its work.
    expect(highRan.snapshot.get('normal')).toBe(50);
  });

  it('normal runs before low when both are runnable', async () => {
    const rt = runtime();
    const sh = shared();
    const report = probe(rt);
    const low = await logger(rt, 'low', sh, 'low', report.ref);
    const normal = await logger(rt, 'normal', sh, 'normal', report.ref);
    const driver = await rt.spawn(Driver, undefined);
    rt.cast(driver, (ctx) => {
      ctx.cast(low, 1);
      ctx.cast(normal, 1);
    });
    await report.expectMessage({ name: 'low' });
    expect(sh.log).toEqual(['normal:1', 'low:1']);
  });

  it('low priority is not starved by busy normal agents', async () => {
    const rt = runtime();
    const sh = shared();
    const report = probe(rt);
    const perAgent = 2000;
    const normals = await Promise.all(
      Array.from({ length: 10 }, (_, i) => logger(rt, `n${i}`, sh, 'normal', report.ref, perAgent)),
    );
    const low = await logger(rt, 'low', sh, 'low', report.ref);
    const driver = await rt.spawn(Driver, undefined);
    rt.cast(driver, (ctx) => {
      for (let k = 0; k < perAgent; k++) for (const n of normals) ctx.cast(n, k);
      ctx.cast(low, 'hello');
    });
    const lowRan = await report.expectMessage({ name: 'low' }, { timeout: 10_000 });
    const normalDone = [...(lowRan.snapshot as Map<string, number>).entries()]
      .filter(([name]) => name !== 'low')
      .reduce((sum, [, count]) => sum + count, 0);
    // The low agent got its turn long before the 20,000 normal messages were all handled.
    expect(normalDone).toBeLessThan((10 * perAgent) / 2);
    for (let i = 0; i < 10; i++)
      await report.expectMessage({ name: `n${i}`, n: perAgent }, { timeout: 10_000 });
  });
});

describe('fairness', () => {
  it('an agent runs at most `reductions` messages before the next runnable agent gets a turn', async () => {
    const rt = runtime({ reductions: 10 });
    const sh = shared();
    const report = probe(rt);
    const busy = await logger(rt, 'busy', sh, 'normal', report.ref, 100);
    const other = await logger(rt, 'other', sh, 'normal', report.ref);
    const driver = await rt.spawn(Driver, undefined);
    rt.cast(driver, (ctx) => {
      for (let i = 0; i < 100; i++) ctx.cast(busy, i);
      ctx.cast(other, 'x');
    });
    const ran = await report.expectMessage({ name: 'other' });
    expect(ran.snapshot.get('busy')).toBe(10);
    await report.expectMessage({ name: 'busy', n: 100 });
  });

  it('a busy agent with 1e6 queued messages does not starve setImmediate or timers', async () => {
    const rt = runtime();
    const total = 1_000_000;
    const seen = { immediate: false, timer: false };
    const report = probe(rt);
    const Counter = behaviour<void, number, never, never, number>({
      init: () => 0,
      handleCast(_msg, n, ctx) {
        const next = n + 1;
        if (next === total) ctx.send(report.ref, { finished: { ...seen } });
        return next;
      },
    });
    const ref = await rt.spawn(Counter, undefined);
    const driver = await rt.spawn(Driver, undefined);
    rt.cast(driver, (ctx) => {
      for (let i = 0; i < total; i++) ctx.cast(ref, i);
      ctx.send(report.ref, { queued: rt.info(ref)?.mailboxLength });
    });
    setImmediate(() => {
      seen.immediate = true;
    });
    setTimeout(() => {
      seen.timer = true;
    }, 0);
    await report.expectMessage({ queued: total });
    const { finished } = await report.expectMessage({ finished: () => true }, { timeout: 15_000 });
    // Both callbacks ran while the agent still had messages queued.
    expect(finished).toEqual({ immediate: true, timer: true });
    expect(rt.scheduler.yields).toBeGreaterThan(0);
  });

  it('async handlers passing messages in a microtask chain still let timers run', async () => {
    const rt = runtime();
    const hops = 1_000_000;
    const report = probe(rt);
    let timerRanAt = -1;
    let hop = 0;
    type Msg = 'hop' | { peer: AnyRef };
    // Each handler awaits, then casts to its peer from the continuation (outside any agent), so
    // the chain never leaves the microtask queue unless the scheduler makes it.
    const Bouncer = behaviour<AnyRef | undefined, { peer: AnyRef | undefined }, never, never, Msg>({
      init: (peer) => ({ peer }),
      async handleCast(msg, state, ctx) {
        if (msg !== 'hop') return { peer: msg.peer };
        await null;
        if (++hop === hops || timerRanAt >= 0) ctx.send(report.ref, { done: hop });
        else if (state.peer !== undefined) ctx.cast(state.peer, 'hop');
        return state;
      },
    });
    const a = rt.spawnSync(Bouncer, undefined);
    const b = rt.spawnSync(Bouncer, a);
    rt.cast(a, { peer: b });
    setTimeout(() => {
      timerRanAt = hop;
    }, 0);
    rt.cast(a, 'hop');
    const { done } = await report.expectMessage({ done: () => true }, { timeout: 15_000 });
    // The timer ran while the chain was still going, long before a million hops.
    expect(timerRanAt).toBeGreaterThan(0);
    expect(done).toBeLessThan(hops);
  });
});

describe('FIFO', () => {
  it('messages from one sender arrive in the order sent, across cast, send and call', async () => {
    const rt = runtime();
    const got: unknown[] = [];
    const Recorder = behaviour<void, null, unknown, unknown, unknown, unknown>({
      init: () => null,
      handleCall(msg, _f, s) {
        got.push(msg);
        return reply(msg, s);
      },
      handleCast(msg, s) {
        got.push(msg);
        return s;
      },
      handleInfo(msg, s) {
        got.push(msg);
        return s;
      },
    });
    const ref = await rt.spawn(Recorder, undefined);
    const calls: Promise<unknown>[] = [];
    for (let i = 0; i < 600; i++) {
      if (i % 3 === 0) rt.cast(ref, i);
      else if (i % 3 === 1) rt.send(ref, i);
      else calls.push(rt.call(ref, i));
    }
    await Promise.all(calls);
    expect(got).toEqual(Array.from({ length: 600 }, (_, i) => i));
  });

  it('an agent sending to another keeps its order even when external senders interleave', async () => {
    const rt = runtime();
    const receiver = probe(rt);
    const Relay = behaviour<AnyRef, AnyRef, never, never, number>({
      init: (to) => to,
      handleCast(i, to, ctx) {
        ctx.cast(to, { from: 'relay', i });
        return to;
      },
    });
    const relay = await rt.spawn(Relay, receiver.ref);
    for (let i = 0; i < 300; i++) {
      rt.cast(relay, i);
      rt.cast(receiver.ref, { from: 'outside', i });
    }
    for (let i = 0; i < 300; i++)
      await receiver.expectMessage({ from: 'outside' }).then((m) => expect(m.i).toBe(i));
    for (let i = 0; i < 300; i++)
      await receiver.expectMessage({ from: 'relay' }).then((m) => expect(m.i).toBe(i));
  });
});
