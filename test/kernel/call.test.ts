import { describe, expect, it } from 'vitest';
import {
  type AgentContext,
  type AnyRef,
  behaviour,
  CallSelfError,
  ErrorCodes,
  ExitError,
  type From,
  NoProcessError,
  noreply,
  reply,
  stop,
  TimeoutError,
  VirtualClock,
} from '../../src/kernel/index.js';
import { awaitExit, awaitTelemetry, probe } from '../../src/kernel/testkit.js';
import { type Deferred, deferred, flush, runtimeFactory, watch } from './helpers.js';

/** Every runtime a test makes is shut down after it. */
const runtime = runtimeFactory();

/** Replies with what it was sent; a cast or info is forwarded to `report` (if given). */
const Echo = behaviour<AnyRef | undefined, AnyRef | undefined, unknown, unknown, unknown, unknown>({
  init: (report) => report,
  handleCall: (msg, _from, s) => reply(msg, s),
  handleCast(msg, s, ctx) {
    if (s !== undefined) ctx.send(s, { cast: msg });
    return s;
  },
  handleInfo(msg, s, ctx) {
    if (s !== undefined) ctx.send(s, { info: msg });
    return s;
  },
});

type Held = { from: From<unknown>; msg: unknown }[];
/** Leaves every call pending (noreply); a cast `release` answers them all with their message. */
const Holder = behaviour<void, Held, unknown, unknown, 'release' | 'crash' | Deferred<void>, never>({
  init: () => [],
  handleCall: (msg, from, held) => noreply([...held, { from, msg }]),
  handleCast(msg, held, ctx) {
    if (msg === 'crash') throw new Error('holder crashed');
    // A gate holds the agent (awaiting) until released, so later messages stay queued.
    if (typeof msg === 'object') return msg.promise.then(() => held);
    for (const h of held) ctx.reply(h.from, h.msg);
    return [];
  },
});

describe('call', () => {
  it('returns the reply of handleCall and keeps the new state', async () => {
    const rt = runtime();
    const Counter = behaviour<number, number, 'inc' | 'get', number>({
      init: (n) => n,
      handleCall: (msg, _from, n) => (msg === 'inc' ? reply(n + 1, n + 1) : reply(n, n)),
    });
    const ref = await rt.spawn(Counter, 10);
    expect(await rt.call(ref, 'inc')).toBe(11);
    expect(await rt.call(ref, 'inc')).toBe(12);
    expect(await rt.call(ref, 'get')).toBe(12);
  });

  it('works by registered name and by plain pid (JSON form)', async () => {
    const rt = runtime();
    const ref = await rt.spawn(Echo, undefined, { name: 'echo' });
    expect(await rt.call('echo', 'by-name')).toBe('by-name');
    const pid = JSON.parse(JSON.stringify(ref));
    expect(await rt.call(pid, 'by-pid')).toBe('by-pid');
  });

  it('answers calls made from inside other agents (async handler awaiting a call)', async () => {
    const rt = runtime();
    const echo = await rt.spawn(Echo, undefined);
    const Forwarder = behaviour<AnyRef, AnyRef, unknown, unknown>({
      init: (target) => target,
      async handleCall(msg, _from, target, ctx) {
        const r = await ctx.call(target, { via: msg });
        return reply({ proxied: r }, target);
      },
    });
    const proxy = await rt.spawn(Forwarder, echo);
    expect(await rt.call(proxy, 1)).toEqual({ proxied: { via: 1 } });
  });

  it('rejects at once with E_NOPROC for a dead, unknown or foreign target (no timeout involved)', async () => {
    const clock = new VirtualClock();
    const rt = runtime({ clock });
    const other = runtime();
    const ref = await rt.spawn(Echo, undefined);
    const exited = rt.awaitExit(ref);
    rt.kill(ref);
    await exited;
    const foreign = await other.spawn(Echo, undefined);
    const targets: unknown[] = [ref, { node: rt.node, thread: 0, id: 424242 }, 'nobody', foreign];
    for (const target of targets) {
      const p = watch(rt.call(target as string, 'hi'));
      await flush();
      // The clock never moved, so this cannot be a timeout.
      expect(p.current.state).toBe('rejected');
      const reason = (p.current as { reason: unknown }).reason;
      expect(reason).toBeInstanceOf(NoProcessError);
      expect((reason as NoProcessError).code).toBe(ErrorCodes.NOPROC);
    }
    expect(clock.pending).toBe(0);
  });

  it('names the missing target in the E_NOPROC message', async () => {
    const rt = runtime();
    await expect(rt.call('ghost', 1)).rejects.toThrow(/ghost/);
  });

  it('times out with E_TIMEOUT on the runtime clock, not before', async () => {
    const clock = new VirtualClock();
    const rt = runtime({ clock });
    const holder = await rt.spawn(Holder, undefined);
    const p = watch(rt.call(holder, 'q', 100));
    clock.advance(99);
    await flush();
    expect(p.current.state).toBe('pending');
    clock.advance(1);
    await flush();
    expect(p.current.state).toBe('rejected');
    const reason = (p.current as { reason: unknown }).reason as TimeoutError;
    expect(reason).toBeInstanceOf(TimeoutError);
    expect(reason.code).toBe(ErrorCodes.TIMEOUT);
    expect(reason.timeoutMs).toBe(100);
    expect(reason.message).toContain(String(holder));
  });

  it('uses the runtime default timeout (callTimeoutMs) and honours per-call timeouts independently', async () => {
    const clock = new VirtualClock();
    const rt = runtime({ clock, callTimeoutMs: 50 });
    const holder = await rt.spawn(Holder, undefined);
    const byDefault = watch(rt.call(holder, 'a'));
    const long = watch(rt.call(holder, 'b', 200));
    const short = watch(rt.call(holder, 'c', 10));
    clock.advance(10);
    await flush();
    expect([byDefault.current.state, long.current.state, short.current.state]).toEqual([
      'pending',
      'pending',
      'rejected',
    ]);
    clock.advance(40);
    await flush();
    expect([byDefault.current.state, long.current.state]).toEqual(['rejected', 'pending']);
    // The held call is still answerable before its own deadline.
    rt.cast(holder, 'release');
    await flush();
    expect(long.current).toEqual({ state: 'fulfilled', value: 'b' });
  });

  it('never times out with timeout Infinity', async () => {
    const clock = new VirtualClock();
    const rt = runtime({ clock });
    const holder = await rt.spawn(Holder, undefined);
    const p = watch(rt.call(holder, 'x', Number.POSITIVE_INFINITY));
    clock.advance(1e9);
    await flush();
    expect(p.current.state).toBe('pending');
    rt.cast(holder, 'release');
    await flush();
    expect(p.current).toEqual({ state: 'fulfilled', value: 'x' });
  });

  it('rejects invalid timeouts with E_INVALID_ARGUMENT naming the value', async () => {
    const rt = runtime();
    const ref = await rt.spawn(Echo, undefined);
    for (const bad of [0, -5, Number.NaN]) {
      const error = await rt.call(ref, 'x', bad).catch((e: unknown) => e);
      expect((error as { code: string }).code).toBe(ErrorCodes.INVALID_ARGUMENT);
      expect((error as Error).message).toContain(String(bad));
    }
  });

  it('a late reply after the timeout is ignored, and ctx.reply says so', async () => {
    const clock = new VirtualClock();
    const rt = runtime({ clock });
    const report = probe(rt);
    const Late = behaviour<AnyRef, { report: AnyRef; from?: From<unknown> }, 'q', unknown, 'answer'>({
      init: (r) => ({ report: r }),
      handleCall: (_msg, from, s) => noreply({ ...s, from }),
      handleCast(_msg, s, ctx) {
        ctx.send(s.report, { replied: ctx.reply(s.from as From<unknown>, 'late') });
        return s;
      },
    });
    const ref = await rt.spawn(Late, report.ref);
    const p = rt.call(ref, 'q', 10);
    await flush();
    clock.advance(10);
    await expect(p).rejects.toBeInstanceOf(TimeoutError);
    rt.cast(ref, 'answer');
    await report.expectMessage({ replied: false });
    expect(rt.isAlive(ref)).toBe(true);
  });

  it('noreply + ctx.reply answers a call later, from the handler of another message', async () => {
    const rt = runtime();
    const Swap = behaviour<void, From<string> | null, string, string>({
      init: () => null,
      handleCall(msg, from, first, ctx) {
        if (first === null) return noreply(from);
        // Answer the second caller first, then the first one.
        ctx.reply(from, `second:${msg}`);
        ctx.reply(first, 'first');
        return noreply(null);
      },
    });
    const ref = await rt.spawn(Swap, undefined);
    const a = watch(rt.call(ref, 'a'));
    await flush();
    expect(a.current.state).toBe('pending');
    expect(await rt.call(ref, 'b')).toBe('second:b');
    await flush();
    expect(a.current).toEqual({ state: 'fulfilled', value: 'first' });
  });

  it('ctx.reply returns true once and false for a second answer', async () => {
    const rt = runtime();
    const report = probe(rt);
    const Twice = behaviour<AnyRef, AnyRef, 'q', number>({
      init: (r) => r,
      handleCall(_msg, from, r, ctx) {
        const first = ctx.reply(from, 1);
        const second = ctx.reply(from, 2);
        ctx.send(r, { first, second });
        return noreply(r);
      },
    });
    const ref = await rt.spawn(Twice, report.ref);
    expect(await rt.call(ref, 'q')).toBe(1);
    await report.expectMessage({ first: true, second: false });
  });

  it('stop with a reply answers the caller, then the agent exits with the reason', async () => {
    const rt = runtime();
    const Quitter = behaviour<void, null, 'quit', string>({
      init: () => null,
      handleCall: (_msg, _from, s) => stop('normal', s, 'bye'),
    });
    const ref = await rt.spawn(Quitter, undefined);
    const exit = awaitExit(rt, ref);
    expect(await rt.call(ref, 'quit')).toBe('bye');
    expect(await exit).toBe('normal');
  });

  it('stop without a reply rejects the caller with E_EXIT carrying the reason', async () => {
    const rt = runtime();
    const Quitter = behaviour<void, null, 'quit', string>({
      init: () => null,
      handleCall: (_msg, _from, s) => stop({ shutdown: 'asked' }, s),
    });
    const ref = await rt.spawn(Quitter, undefined);
    const error = (await rt.call(ref, 'quit').catch((e: unknown) => e)) as ExitError;
    expect(error).toBeInstanceOf(ExitError);
    expect(error.code).toBe(ErrorCodes.EXIT);
    expect(error.reason).toEqual({ shutdown: 'asked' });
  });

  it('a callee throwing in handleCall rejects the caller with E_EXIT carrying the error', async () => {
    const rt = runtime();
    const boom = new Error('boom');
    const Thrower = behaviour<void, null, 'q', never>({
      init: () => null,
      handleCall() {
        throw boom;
      },
    });
    const clock = new VirtualClock();
    const rt2 = runtime({ clock });
    for (const r of [rt, rt2]) {
      const ref = await r.spawn(Thrower, undefined);
      const exit = awaitExit(r, ref);
      const p = watch(r.call(ref, 'q'));
      await flush();
      const state = p.current;
      expect(state.state).toBe('rejected');
      const error = (state as { reason: unknown }).reason as ExitError;
      expect(error).toBeInstanceOf(ExitError);
      expect(error.reason).toBe(boom);
      expect(await exit).toBe(boom);
    }
  });

  it('a wrong return shape from handleCall rejects the caller with E_EXIT (reason E_BAD_RETURN)', async () => {
    const rt = runtime();
    const Bad = behaviour<void, null, 'q', unknown>({
      init: () => null,
      // @ts-expect-error: handleCall must return reply/noreply/stop
      handleCall: () => 42,
    });
    const ref = await rt.spawn(Bad, undefined);
    const error = (await rt.call(ref, 'q').catch((e: unknown) => e)) as ExitError;
    expect(error).toBeInstanceOf(ExitError);
    expect((error.reason as { code: string }).code).toBe(ErrorCodes.BAD_RETURN);
    expect((error.reason as Error).message).toContain('42');
  });

  it('a callee dying mid-call (async handler, killed) rejects the caller with E_EXIT and reason killed', async () => {
    const rt = runtime();
    const gate = deferred();
    const Slow = behaviour<Deferred<void>, null, 'q', string>({
      init: () => null,
      async handleCall(_msg, _from, s) {
        await gate.promise;
        return reply('done', s);
      },
    });
    const ref = await rt.spawn(Slow, gate);
    const p = watch(rt.call(ref, 'q'));
    await flush();
    expect(rt.info(ref)?.status).toBe('awaiting');
    expect(p.current.state).toBe('pending');
    rt.kill(ref);
    await flush();
    expect(p.current.state).toBe('rejected');
    const error = (p.current as { reason: unknown }).reason as ExitError;
    expect(error.code).toBe(ErrorCodes.EXIT);
    expect(error.reason).toBe('killed');
    // The handler finishing afterwards changes nothing.
    gate.resolve();
    await flush();
    expect(rt.isAlive(ref)).toBe(false);
  });

  it('pending (noreply) and queued calls are rejected with the crash reason when the callee crashes', async () => {
    const rt = runtime();
    const holder = await rt.spawn(Holder, undefined);
    const held = rt.call(holder, 'held').catch((e: unknown) => e);
    const gate = deferred();
    rt.cast(holder, gate);
    await flush();
    rt.cast(holder, 'crash');
    const queued = rt.call(holder, 'queued').catch((e: unknown) => e);
    expect(rt.info(holder)?.mailboxLength).toBe(2);
    gate.resolve();
    for (const error of [await held, await queued]) {
      expect(error).toBeInstanceOf(ExitError);
      expect(((error as ExitError).reason as Error).message).toBe('holder crashed');
    }
  });

  it('an async handler holds only its own agent', async () => {
    const rt = runtime();
    const gate = deferred<string>();
    const Slow = behaviour<void, number, 'slow' | 'fast', string>({
      init: () => 0,
      async handleCall(msg, _from, n) {
        if (msg === 'fast') return reply(`fast after ${n}`, n);
        const v = await gate.promise;
        return reply(v, n + 1);
      },
    });
    const slow = await rt.spawn(Slow, undefined);
    const echo = await rt.spawn(Echo, undefined);
    const first = watch(rt.call(slow, 'slow'));
    const second = watch(rt.call(slow, 'fast'));
    // Other agents keep working while `slow` awaits.
    expect(await rt.call(echo, 'still running')).toBe('still running');
    const ref2 = await rt.spawn(Slow, undefined);
    expect(await rt.call(ref2, 'fast')).toBe('fast after 0');
    await flush();
    // `slow` itself takes its next message only after the awaited step.
    expect(first.current.state).toBe('pending');
    expect(second.current.state).toBe('pending');
    expect(rt.info(slow)?.mailboxLength).toBe(1);
    gate.resolve('released');
    await flush();
    expect(first.current).toEqual({ state: 'fulfilled', value: 'released' });
    expect(second.current).toEqual({ state: 'fulfilled', value: 'fast after 1' });
  });

  it('a call to self rejects at once with E_CALL_SELF (sync part of a handler)', async () => {
    const rt = runtime();
    const Selfish = behaviour<void, null, 'go' | 'inner', unknown>({
      init: () => null,
      handleCall(msg, _from, s, ctx) {
        if (msg === 'inner') return reply('inner', s);
        return ctx.call(ctx.self, 'inner').then(
          (v) => reply(v, s),
          (e: unknown) => reply(e, s),
        );
      },
    });
    const ref = await rt.spawn(Selfish, undefined);
    const error = (await rt.call(ref, 'go')) as CallSelfError;
    expect(error).toBeInstanceOf(CallSelfError);
    expect(error.code).toBe(ErrorCodes.CALL_SELF);
    expect(error.message).toContain(String(ref));
  });

  it('a call to self after an await in an async handler also rejects with E_CALL_SELF', async () => {
    const clock = new VirtualClock();
    const rt = runtime({ clock });
    const Selfish = behaviour<void, null, 'go' | 'inner', unknown>({
      init: () => null,
      async handleCall(msg, _from, s, ctx) {
        if (msg === 'inner') return reply('inner', s);
        await Promise.resolve();
        try {
          return reply(await ctx.call(ctx.self, 'inner'), s);
        } catch (e) {
          return reply(e, s);
        }
      },
    });
    const ref = await rt.spawn(Selfish, undefined);
    const p = watch(rt.call(ref, 'go'));
    await flush();
    // No time passed: the answer cannot come from a timeout.
    expect(p.current.state).toBe('fulfilled');
    const error = (p.current as { value: unknown }).value as CallSelfError;
    expect(error).toBeInstanceOf(CallSelfError);
  });

  it('a call cycle between two agents is broken by the call timeout, not a deadlock', async () => {
    const clock = new VirtualClock();
    const rt = runtime({ clock });
    type Msg = 'start' | 'back' | 'ping';
    const Peer = behaviour<void, AnyRef | null, Msg, unknown, AnyRef>({
      init: () => null,
      handleCast: (peer) => peer,
      async handleCall(msg, _from, peer, ctx) {
        if (msg === 'ping') return reply('pong', peer);
        // 'start' calls the peer; the peer's 'back' calls us while we are still waiting.
        const next: Msg = msg === 'start' ? 'back' : 'ping';
        try {
          return reply({ got: await ctx.call(peer as AnyRef, next, msg === 'start' ? 1000 : 100) }, peer);
        } catch (e) {
          return reply({ failed: (e as TimeoutError).code }, peer);
        }
      },
    });
    const a = await rt.spawn(Peer, undefined);
    const b = await rt.spawn(Peer, undefined);
    rt.cast(a, b);
    rt.cast(b, a);
    const p = watch(rt.call(a, 'start', 5000));
    await flush();
    expect(p.current.state).toBe('pending');
    clock.advance(100);
    await flush();
    expect(p.current).toEqual({ state: 'fulfilled', value: { got: { failed: ErrorCodes.TIMEOUT } } });
  });
});

describe('cast and send', () => {
  it('cast goes to handleCast, send to handleInfo, in order', async () => {
    const rt = runtime();
    const report = probe(rt);
    const ref = await rt.spawn(Echo, report.ref);
    expect(rt.cast(ref, 1)).toBe(true);
    expect(rt.send(ref, 2)).toBe(true);
    expect(rt.cast(ref, 3)).toBe(true);
    expect(await report.expectMessage(() => true)).toEqual({ cast: 1 });
    expect(await report.expectMessage(() => true)).toEqual({ info: 2 });
    expect(await report.expectMessage(() => true)).toEqual({ cast: 3 });
  });

  it('cast and send to a dead or unknown target return false and throw nothing', async () => {
    const rt = runtime();
    const ref = await rt.spawn(Echo, undefined);
    const exited = rt.awaitExit(ref);
    rt.kill(ref);
    await exited;
    expect(rt.cast(ref, 'x')).toBe(false);
    expect(rt.send(ref, 'x')).toBe(false);
    expect(rt.cast('nobody', 'x')).toBe(false);
    expect(rt.send({ node: 'elsewhere', thread: 0, id: 1 }, 'x')).toBe(false);
  });

  it('a cast to an agent without handleCast is reported as unhandled and does not kill it', async () => {
    const rt = runtime();
    const { awaitTelemetry } = await import('../../src/kernel/testkit.js');
    const Bare = behaviour<void, null, 'q', string>({
      init: () => null,
      handleCall: (_m, _f, s) => reply('alive', s),
    });
    const ref = await rt.spawn(Bare, undefined);
    const unhandled = awaitTelemetry(rt, ['mabeam', 'agent', 'unhandled']);
    rt.cast(ref as AnyRef, 'stray');
    const event = await unhandled;
    expect(event.metadata).toMatchObject({ kind: 'cast', message: 'stray' });
    expect(await rt.call(ref, 'q')).toBe('alive');
  });

  it('a call to an agent without handleCall rejects with E_NOT_IMPLEMENTED', async () => {
    const rt = runtime();
    const CastOnly = behaviour<void, null, never, never, 'x'>({
      init: () => null,
      handleCast: (_m, s) => s,
    });
    const ref = await rt.spawn(CastOnly, undefined);
    const error = await rt.call(ref as AnyRef, 'q').catch((e: unknown) => e);
    expect((error as { code: string }).code).toBe(ErrorCodes.NOT_IMPLEMENTED);
    expect(rt.isAlive(ref)).toBe(true);
  });

  it('a throwing handleCast exits the agent with the thrown error', async () => {
    const rt = runtime();
    const failure = new Error('cast failed');
    const Fragile = behaviour<void, null, never, never, 'x'>({
      init: () => null,
      handleCast() {
        throw failure;
      },
    });
    const ref = await rt.spawn(Fragile, undefined);
    const exit = awaitExit(rt, ref);
    rt.cast(ref, 'x');
    expect(await exit).toBe(failure);
  });

  it('an agent can cast and send to itself; the message runs after the current one', async () => {
    const rt = runtime();
    const report = probe(rt);
    const Self = behaviour<AnyRef, AnyRef, never, never, string, string>({
      init: (r) => r,
      handleCast(msg, r, ctx) {
        ctx.send(r, `cast ${msg}`);
        if (msg === 'first') {
          ctx.cast(ctx.self, 'second');
          ctx.send(ctx.self, 'third');
          ctx.send(r, 'first done');
        }
        return r;
      },
      handleInfo(msg, r, ctx) {
        ctx.send(r, `info ${String(msg)}`);
        return r;
      },
    });
    const ref = await rt.spawn(Self, report.ref);
    rt.cast(ref, 'first');
    for (const m of ['cast first', 'first done', 'cast second', 'info third']) {
      expect(await report.expectMessage(() => true)).toBe(m);
    }
  });
});

describe('agent context', () => {
  it('ctx.self and ctx.runtime are the agent and its runtime', async () => {
    const rt = runtime();
    let seen: AgentContext | undefined;
    const Spy = behaviour<void, null>({
      init: (_a, ctx) => {
        seen = ctx as AgentContext;
        return null;
      },
    });
    const ref = await rt.spawn(Spy, undefined);
    expect(seen?.runtime).toBe(rt);
    expect(seen?.self.equals(ref)).toBe(true);
  });
});

describe('dying inside a handler', () => {
  it('an async handler whose agent dies in its synchronous part leaves no zombie, and its caller gets E_EXIT', async () => {
    const rt = runtime();
    const Doomed = behaviour<void, AnyRef | null, 'go', string, AnyRef>({
      init: () => null,
      handleCast: (peer) => peer,
      async handleCall(_msg, _from, peer, ctx) {
        ctx.link(peer as AnyRef);
        ctx.exit(peer as AnyRef, 'kill'); // the peer dies, and takes us along through the link
        await Promise.resolve();
        return reply('unreachable', peer);
      },
    });
    const peer = await rt.spawn(Echo, undefined);
    const doomed = await rt.spawn(Doomed, undefined);
    rt.cast(doomed, peer);
    const exit = awaitExit(rt, doomed);
    const error = (await rt.call(doomed, 'go').catch((e: unknown) => e)) as ExitError;
    expect(error).toBeInstanceOf(ExitError);
    expect(error.reason).toBe('killed');
    expect(await exit).toBe('killed');
    await flush();
    expect(rt.isAlive(doomed)).toBe(false);
    expect(rt.info(doomed)).toBeUndefined();
    expect(rt.count).toBe(0);
  });

  it('the same holds for an async handleCast', async () => {
    const rt = runtime();
    const Doomed = behaviour<AnyRef, AnyRef, never, never, 'go'>({
      init: (peer, ctx) => {
        ctx.link(peer);
        return peer;
      },
      async handleCast(_msg, peer, ctx) {
        ctx.exit(peer, 'kill');
        await Promise.resolve();
        return peer;
      },
    });
    const peer = await rt.spawn(Echo, undefined);
    const doomed = await rt.spawn(Doomed, peer);
    const exit = awaitExit(rt, doomed);
    rt.cast(doomed, 'go');
    expect(await exit).toBe('killed');
    await flush();
    expect(rt.isAlive(doomed)).toBe(false);
    expect(rt.cast(doomed, 'go')).toBe(false);
  });

  it('a sync handleCall that dies and returns noreply rejects its caller at once', async () => {
    const rt = runtime();
    const Doomed = behaviour<AnyRef, AnyRef, 'go', string>({
      init: (peer, ctx) => {
        ctx.link(peer);
        return peer;
      },
      handleCall(_msg, _from, peer, ctx) {
        ctx.exit(peer, 'kill');
        return noreply(peer);
      },
    });
    const peer = await rt.spawn(Echo, undefined);
    const doomed = await rt.spawn(Doomed, peer);
    const error = (await rt.call(doomed, 'go').catch((e: unknown) => e)) as ExitError;
    expect(error).toBeInstanceOf(ExitError);
    expect(error.reason).toBe('killed');
  });
});

describe('call telemetry', () => {
  it('reports each call with its duration and outcome', async () => {
    const clock = new VirtualClock();
    const rt = runtime({ clock });
    const echo = await rt.spawn(Echo, undefined);
    const holder = await rt.spawn(Holder, undefined);
    const ok = awaitTelemetry(rt, ['mabeam', 'call', 'stop'], (_m, md) => md.outcome === 'ok');
    await rt.call(echo, 'x');
    expect((await ok).metadata.pid).toBe(echo);
    const timeout = awaitTelemetry(rt, ['mabeam', 'call', 'stop'], (_m, md) => md.outcome === 'timeout');
    const p = rt.call(holder, 'y', 40).catch(() => undefined);
    await flush();
    clock.advance(40);
    await p;
    expect((await timeout).measurements.duration).toBe(40);
    const error = awaitTelemetry(rt, ['mabeam', 'call', 'stop'], (_m, md) => md.outcome === 'error');
    await rt.call('nobody', 'z').catch(() => undefined);
    await rt.call(echo, 'z', -1).catch(() => undefined);
    const held = rt.call(holder, 'w').catch(() => undefined);
    rt.cast(holder, 'crash');
    await held;
    expect((await error).metadata.pid).toBe(holder);
  });
});
