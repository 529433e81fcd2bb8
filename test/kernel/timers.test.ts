import { describe, expect, it } from 'vitest';
import {
  type AnyRef,
  behaviour,
  ErrorCodes,
  InvalidArgumentError,
  reply,
  type TimerRef,
  VirtualClock,
} from '../../src/kernel/index.js';
import { awaitExit, probe } from '../../src/kernel/testkit.js';
import { flush, runtimeFactory } from './helpers.js';

/** Every runtime a test makes is shut down after it. */
const runtime = runtimeFactory();

function virtual() {
  const clock = new VirtualClock();
  return { clock, rt: runtime({ clock }) };
}

describe('sendAfter', () => {
  it('delivers to handleInfo when the clock reaches the delay, not before', async () => {
    const { clock, rt } = virtual();
    const p = probe(rt);
    rt.sendAfter(p.ref, 'tick', 100);
    clock.advance(99);
    await flush();
    await p.refuteMessage('tick', { within: 0 });
    clock.advance(1);
    expect(await p.expectMessage('tick', { kind: 'info' })).toBe('tick');
  });

  it('fires timers in due order, ties in creation order', async () => {
    const { clock, rt } = virtual();
    const p = probe(rt);
    rt.sendAfter(p.ref, 'c', 30);
    rt.sendAfter(p.ref, 'a1', 10);
    rt.sendAfter(p.ref, 'b', 20);
    rt.sendAfter(p.ref, 'a2', 10);
    rt.sendAfter(p.ref, 'zero', 0);
    clock.advance(30);
    for (const m of ['zero', 'a1', 'a2', 'b', 'c']) expect(await p.expectMessage(() => true)).toBe(m);
  });

  it('works with the real clock too (event-based wait)', async () => {
    const rt = runtime();
    const p = probe(rt);
    rt.sendAfter(p.ref, 'real', 1);
    await p.expectMessage('real');
  });

  it('a message to a name resolves the name when the timer fires', async () => {
    const { clock, rt } = virtual();
    const p = probe(rt, { name: 'target' });
    rt.sendAfter('target', 'by name', 5);
    clock.advance(5);
    await p.expectMessage('by name');
  });

  it('rejects negative, infinite and NaN delays with E_INVALID_ARGUMENT naming the value', () => {
    const { rt } = virtual();
    const p = probe(rt);
    for (const bad of [-1, Number.POSITIVE_INFINITY, Number.NaN]) {
      let error: unknown;
      try {
        rt.sendAfter(p.ref, 'x', bad);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(InvalidArgumentError);
      expect((error as InvalidArgumentError).code).toBe(ErrorCodes.INVALID_ARGUMENT);
      expect((error as Error).message).toContain(String(bad));
    }
  });
});

describe('cancelTimer', () => {
  it('cancels a pending timer and returns the ms it had left', async () => {
    const { clock, rt } = virtual();
    const p = probe(rt);
    const t = rt.sendAfter(p.ref, 'never', 100);
    clock.advance(30);
    expect(rt.cancelTimer(t)).toBe(70);
    expect(rt.cancelTimer(t)).toBe(false);
    clock.advance(1000);
    await flush();
    await p.refuteMessage('never', { within: 0 });
    expect(clock.pending).toBe(0);
  });

  it('returns false for a timer that already fired', async () => {
    const { clock, rt } = virtual();
    const p = probe(rt);
    const t = rt.sendAfter(p.ref, 'fired', 10);
    clock.advance(10);
    await p.expectMessage('fired');
    expect(rt.cancelTimer(t)).toBe(false);
  });

  it('returns false for an unknown timer', () => {
    const { rt } = virtual();
    expect(rt.cancelTimer({ timerId: 12345 })).toBe(false);
  });
});

type TickerCall = { arm: number } | { cancel: true };
/** Arms its own timers (ctx.sendAfter) and reports every tick. */
const Ticker = behaviour<
  AnyRef,
  { report: AnyRef; timer?: TimerRef },
  TickerCall,
  number | false,
  never,
  string
>({
  init: (report) => ({ report }),
  handleCall(msg, _from, s, ctx) {
    if ('arm' in msg) {
      const timer = ctx.sendAfter('tick', msg.arm);
      return reply(msg.arm, { ...s, timer });
    }
    return reply(s.timer === undefined ? false : ctx.cancelTimer(s.timer), s);
  },
  handleInfo(msg, s, ctx) {
    ctx.send(s.report, { tick: msg });
    return s;
  },
});

describe('agent timers', () => {
  it('ctx.sendAfter delivers to the agent itself; ctx.cancelTimer cancels', async () => {
    const { clock, rt } = virtual();
    const p = probe(rt);
    const t = await rt.spawn(Ticker, p.ref);
    await rt.call(t, { arm: 50 });
    clock.advance(50);
    await p.expectMessage({ tick: 'tick' });
    await rt.call(t, { arm: 50 });
    clock.advance(20);
    expect(await rt.call(t, { cancel: true })).toBe(30);
    clock.advance(100);
    await flush();
    await p.refuteMessage({ tick: 'tick' }, { within: 0 });
  });

  it("an agent's timers are cancelled when it exits", async () => {
    const { clock, rt } = virtual();
    const p = probe(rt);
    const t = await rt.spawn(Ticker, p.ref, { name: 'ticker' });
    await rt.call(t, { arm: 100 });
    await rt.call(t, { arm: 200 });
    expect(clock.pending).toBe(2);
    const exit = awaitExit(rt, t);
    rt.kill(t);
    await exit;
    expect(clock.pending).toBe(0);
    // A new agent under the same name does not receive the old agent's timers.
    const p2 = probe(rt, { name: 'ticker' });
    clock.advance(1000);
    await flush();
    await p2.refuteMessage(() => true, { within: 0 });
  });

  it('timers sent from outside to an agent are cancelled when that agent exits', async () => {
    const { clock, rt } = virtual();
    const p = probe(rt);
    rt.sendAfter(p.ref, 'x', 100);
    expect(clock.pending).toBe(1);
    const exit = awaitExit(rt, p.ref);
    rt.kill(p.ref);
    await exit;
    expect(clock.pending).toBe(0);
  });

  it('a periodic timer re-armed in handleInfo ticks once per period', async () => {
    const { clock, rt } = virtual();
    const p = probe(rt);
    const Periodic = behaviour<AnyRef, { report: AnyRef; n: number }, never, never, never, 'tick'>({
      init(report, ctx) {
        ctx.sendAfter('tick', 100);
        return { report, n: 0 };
      },
      handleInfo(_msg, s, ctx) {
        const n = s.n + 1;
        ctx.send(s.report, n);
        ctx.sendAfter('tick', 100);
        return { ...s, n };
      },
    });
    await rt.spawn(Periodic, p.ref);
    for (let i = 1; i <= 3; i++) {
      clock.advance(100);
      expect(await p.expectMessage(() => true)).toBe(i);
    }
    clock.advance(50);
    await flush();
    await p.refuteMessage(() => true, { within: 0 });
  });
});
