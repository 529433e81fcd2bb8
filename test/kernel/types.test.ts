/**
 * Compile-time checks: `npm run typecheck` fails if a wrong message to a typed handle compiles.
 * Each `@ts-expect-error` line must be an error; the runtime assertions keep vitest honest.
 */
import { describe, expect, it } from 'vitest';
import { type AgentRef, behaviour, Runtime, reply } from '../../src/kernel/index.js';

type CounterCall = { type: 'get' } | { type: 'add'; n: number };
type CounterCast = { type: 'reset' };

const Counter = behaviour<number, number, CounterCall, number, CounterCast, 'tick'>({
  init: (start) => start,
  handleCall(msg, _from, state) {
    if (msg.type === 'get') return reply(state, state);
    return reply(state + msg.n, state + msg.n);
  },
  handleCast: (_msg, _state) => 0,
  handleInfo: (_msg, state) => state + 1,
});

describe('typed handles', () => {
  it('accept the behaviour messages and reject others at compile time', async () => {
    const rt = new Runtime();
    const ref: AgentRef<CounterCall, number, CounterCast, 'tick'> = await rt.spawn(Counter, 1);
    const n: number = await rt.call(ref, { type: 'add', n: 2 });
    expect(n).toBe(3);
    rt.send(ref, 'tick');
    rt.cast(ref, { type: 'reset' });
    expect(await rt.call(ref, { type: 'get' })).toBe(0);

    // @ts-expect-error: not a call message of Counter
    await rt.call(ref, { type: 'mul', n: 2 }).catch(() => undefined);
    // @ts-expect-error: a cast message is not a call message
    rt.cast(ref, { type: 'get' });
    // @ts-expect-error: info messages are 'tick' only
    rt.send(ref, 'tock');
    // @ts-expect-error: the reply type is number
    const s: string = await rt.call(ref, { type: 'get' });
    expect(typeof s).toBe('number');
    // @ts-expect-error: init takes a number
    await rt.spawn(Counter, 'one').catch(() => undefined);
    await rt.shutdown();
  });
});
