import { describe, expect, it } from 'vitest';
import { AgentRef, type AnyRef, behaviour, type Runtime } from '../../src/kernel/index.js';
import {
  awaitExit,
  awaitRestart,
  awaitTelemetry,
  matches,
  probe,
  withRuntime,
} from '../../src/kernel/testkit.js';
import { flush, runtimeFactory, watch } from './helpers.js';

/** Every runtime a test makes is shut down after it. */
const runtime = runtimeFactory();

const Idle = behaviour<void, null>({ init: () => null });

describe('matches', () => {
  it('compares primitives with Object.is', () => {
    expect(matches(1, 1)).toBe(true);
    expect(matches('a', 'a')).toBe(true);
    expect(matches(Number.NaN, Number.NaN)).toBe(true);
    expect(matches(0, -0)).toBe(false);
    expect(matches(1, '1')).toBe(false);
    expect(matches(null, undefined)).toBe(false);
    expect(matches(undefined, undefined)).toBe(true);
  });

  it('matches objects as deep partials', () => {
    const msg = { type: 'DOWN', reason: { code: 'E', detail: [1, 2] }, extra: true };
    expect(matches({ type: 'DOWN' }, msg)).toBe(true);
    expect(matches({ reason: { code: 'E' } }, msg)).toBe(true);
    expect(matches({}, msg)).toBe(true);
    expect(matches({ type: 'EXIT' }, msg)).toBe(false);
    expect(matches({ missing: undefined }, msg)).toBe(false);
    expect(matches({ reason: { detail: [1] } }, msg)).toBe(false);
    expect(matches({ a: 1 }, null)).toBe(false);
    expect(matches({ a: 1 }, 'a')).toBe(false);
  });

  it('matches arrays with the same length, elementwise', () => {
    expect(matches([1, { a: 1 }], [1, { a: 1, b: 2 }])).toBe(true);
    expect(matches([1], [1, 2])).toBe(false);
    expect(matches([1, 2], { 0: 1, 1: 2, length: 2 })).toBe(false);
  });

  it('matches pids and refs by identity of the agent', () => {
    const ref = new AgentRef('n', 0, 3);
    expect(matches(ref, { node: 'n', thread: 0, id: 3 })).toBe(true);
    expect(matches({ node: 'n', thread: 0, id: 3 }, ref)).toBe(true);
    expect(matches({ pid: ref }, { pid: new AgentRef('n', 0, 3) })).toBe(true);
    expect(matches(ref, new AgentRef('n', 0, 4))).toBe(false);
    expect(matches(ref, 'n.0.3')).toBe(false);
    expect(matches({ id: 3 }, ref)).toBe(true);
  });

  it('uses functions as predicates, at the top and nested', () => {
    expect(matches((m: number) => m > 2, 3)).toBe(true);
    expect(matches((m: number) => m > 2, 1)).toBe(false);
    expect(matches({ reason: (r: unknown) => r instanceof Error }, { reason: new Error('x') })).toBe(true);
    expect(matches({ reason: (r: unknown) => r instanceof Error }, { reason: 'x' })).toBe(false);
  });

  it('compares class instances other than refs by identity', () => {
    const e = new Error('x');
    expect(matches({ reason: e }, { reason: e })).toBe(true);
    expect(matches({ reason: e }, { reason: new Error('x') })).toBe(false);
  });
});

describe('probe', () => {
  it('records calls, casts and infos in order with their kind, and replies ok to calls', async () => {
    const rt = runtime();
    const p = probe(rt);
    rt.cast(p.ref, 'c');
    rt.send(p.ref, 'i');
    expect(await rt.call(p.ref, 'q')).toBe('ok');
    expect(p.received).toEqual([
      { kind: 'cast', message: 'c' },
      { kind: 'info', message: 'i' },
      { kind: 'call', message: 'q' },
    ]);
    expect(p.pending).toHaveLength(3);
  });

  it('replies with a configured value or function, changeable with setReply', async () => {
    const rt = runtime();
    const p = probe(rt, { reply: 42 });
    expect(await rt.call(p.ref, 'a')).toBe(42);
    p.setReply((m: unknown) => ({ echo: m }));
    expect(await rt.call(p.ref, 'b')).toEqual({ echo: 'b' });
    const q = probe(rt, { reply: undefined });
    expect(await rt.call(q.ref, 'c')).toBeUndefined();
  });

  it('registers a name and traps exits when asked', async () => {
    const rt = runtime();
    const p = probe(rt, { name: 'watcher', trapExit: true });
    expect(rt.whereis('watcher')?.equals(p.ref)).toBe(true);
    const child = await p.ctx.spawnLink(Idle, undefined);
    rt.exit(child, 'bye');
    await p.expectMessage({ type: 'EXIT', from: child, reason: 'bye' });
  });

  it('expectMessage consumes: successive calls see successive matching messages', async () => {
    const rt = runtime();
    const p = probe(rt);
    for (let i = 0; i < 5; i++) rt.send(p.ref, { n: i, even: i % 2 === 0 });
    expect(await p.expectMessage({ even: false })).toEqual({ n: 1, even: false });
    expect(await p.expectMessage({ even: false })).toEqual({ n: 3, even: false });
    expect(await p.expectMessage(() => true)).toEqual({ n: 0, even: true });
    expect(p.pending.map((e) => (e.message as { n: number }).n)).toEqual([2, 4]);
    expect(p.received).toHaveLength(5);
  });

  it('expectMessage waits for a message that arrives later', async () => {
    const rt = runtime();
    const p = probe(rt);
    const waiting = watch(p.expectMessage({ hello: 'world' }));
    await flush();
    expect(waiting.current.state).toBe('pending');
    rt.send(p.ref, { hello: 'mars' });
    await flush();
    expect(waiting.current.state).toBe('pending');
    rt.send(p.ref, { hello: 'world', extra: 1 });
    await flush();
    expect(waiting.current).toEqual({ state: 'fulfilled', value: { hello: 'world', extra: 1 } });
    // The non-matching message is still pending.
    expect(p.pending.map((e) => e.message)).toEqual([{ hello: 'mars' }]);
  });

  it('two concurrent expectations each take their own message', async () => {
    const rt = runtime();
    const p = probe(rt);
    const a = p.expectMessage('a');
    const any = p.expectMessage(() => true);
    rt.send(p.ref, 'a');
    rt.send(p.ref, 'b');
    expect(await a).toBe('a');
    expect(await any).toBe('b');
  });

  it('expectMessage can filter by kind', async () => {
    const rt = runtime();
    const p = probe(rt);
    rt.send(p.ref, 'x');
    rt.cast(p.ref, 'x');
    await flush();
    await p.expectMessage('x', { kind: 'cast' });
    expect(p.pending).toEqual([{ kind: 'info', message: 'x' }]);
  });

  it('expectMessage rejects on timeout with what was received', async () => {
    const rt = runtime();
    const p = probe(rt);
    rt.send(p.ref, { got: 'this' });
    rt.cast(p.ref, 'consumed');
    await p.expectMessage('consumed');
    const error = (await p
      .expectMessage({ want: 'that' }, { timeout: 10 })
      .catch((e: unknown) => e)) as Error;
    expect(error).toBeInstanceOf(Error);
    expect(error.message).toContain("want: 'that'");
    expect(error.message).toContain("info: { got: 'this' }");
    expect(error.message).toContain("cast: 'consumed'");
    expect(error.message).toContain('10 ms');
  });

  it('expectMessage rejects at once when the probe has exited, naming the reason', async () => {
    const rt = runtime();
    const p = probe(rt);
    const waiting = p.expectMessage('never', { timeout: 60_000 }).catch((e: unknown) => e);
    rt.exit(p.ref, 'probe shot');
    expect(((await waiting) as Error).message).toContain('probe shot');
    const later = (await p.expectMessage('never', { timeout: 60_000 }).catch((e: unknown) => e)) as Error;
    expect(later.message).toContain('has exited');
  });

  it('refuteMessage resolves when nothing matching is pending or arrives', async () => {
    const rt = runtime();
    const p = probe(rt);
    rt.send(p.ref, 'other');
    await flush();
    await expect(p.refuteMessage('unwanted', { within: 5 })).resolves.toBeUndefined();
    // It does not consume anything.
    expect(p.pending).toHaveLength(1);
  });

  it('refuteMessage rejects when a matching message is pending or arrives within the window', async () => {
    const rt = runtime();
    const p = probe(rt);
    rt.send(p.ref, 'unwanted');
    await flush();
    await expect(p.refuteMessage('unwanted')).rejects.toThrow(/unwanted/);
    const q = probe(rt);
    const refuting = q.refuteMessage({ bad: true }, { within: 60_000 });
    rt.send(q.ref, { bad: true });
    await expect(refuting).rejects.toThrow(/bad/);
    // The refuted message stays pending for inspection.
    expect(q.pending).toHaveLength(1);
  });

  it('a pending refutation does not hide the message from a pending expectation', async () => {
    const rt = runtime();
    const p = probe(rt);
    const refuting = p.refuteMessage('a', { within: 60_000 }).catch((e: unknown) => e);
    const expecting = p.expectMessage('a');
    rt.send(p.ref, 'a');
    expect(await refuting).toBeInstanceOf(Error);
    expect(await expecting).toBe('a');
  });

  it('clear forgets pending messages but keeps the history', async () => {
    const rt = runtime();
    const p = probe(rt);
    rt.send(p.ref, 1);
    await flush();
    p.clear();
    expect(p.pending).toHaveLength(0);
    expect(p.received).toHaveLength(1);
  });

  it('acts as an agent through ctx: monitor gives DOWN messages', async () => {
    const rt = runtime();
    const p = probe(rt);
    const target = await rt.spawn(Idle, undefined);
    const mon = p.ctx.monitor(target);
    rt.exit(target, 'gone');
    await p.expectMessage({ type: 'DOWN', monitor: mon, pid: target, reason: 'gone' });
  });
});

describe('awaitExit', () => {
  it('resolves with the exit reason', async () => {
    const rt = runtime();
    const ref = await rt.spawn(Idle, undefined);
    const exit = awaitExit(rt, ref);
    rt.exit(ref, 'because');
    expect(await exit).toBe('because');
  });

  it('rejects after the guard timeout with the agent status', async () => {
    const rt = runtime();
    const ref = await rt.spawn(Idle, undefined);
    const error = (await awaitExit(rt, ref, { timeout: 10 }).catch((e: unknown) => e)) as Error;
    expect(error.message).toContain(String(ref));
    expect(error.message).toContain('did not exit within 10 ms');
    expect(error.message).toContain('idle');
  });
});

describe('awaitRestart', () => {
  it('resolves at once when the name already points to a live agent other than the old one', async () => {
    const rt = runtime();
    const ref = await rt.spawn(Idle, undefined, { name: 'svc' });
    expect((await awaitRestart(rt, 'svc')).equals(ref)).toBe(true);
    expect((await awaitRestart(rt, 'svc', new AgentRef(rt.node, 0, 999))).equals(ref)).toBe(true);
  });

  it('waits for the name to point to a new agent', async () => {
    const rt = runtime();
    const old = await rt.spawn(Idle, undefined, { name: 'svc' });
    const restarted = watch(awaitRestart(rt, 'svc', old));
    await flush();
    expect(restarted.current.state).toBe('pending');
    const exit = rt.awaitExit(old);
    rt.kill(old);
    await exit;
    await rt.spawn(Idle, undefined, { name: 'other' });
    await flush();
    expect(restarted.current.state).toBe('pending');
    const fresh = await rt.spawn(Idle, undefined, { name: 'svc' });
    await flush();
    expect(restarted.current.state).toBe('fulfilled');
    expect((restarted.current as { value: AnyRef }).value.equals(fresh)).toBe(true);
    expect(rt.telemetry.handlers()).toEqual([]);
  });

  it('sees a name registered right after the spawn', async () => {
    const rt = runtime();
    const restarted = awaitRestart(rt, 'late');
    const ref = rt.spawnSync(Idle, undefined);
    rt.register('late', ref);
    expect((await restarted).equals(ref)).toBe(true);
  });

  it('rejects after the guard timeout, naming the name', async () => {
    const rt = runtime();
    const old = await rt.spawn(Idle, undefined, { name: 'stuck' });
    const error = (await awaitRestart(rt, 'stuck', old, { timeout: 10 }).catch((e: unknown) => e)) as Error;
    expect(error.message).toContain('"stuck"');
    expect(rt.telemetry.handlers()).toEqual([]);
  });
});

describe('awaitTelemetry', () => {
  it('resolves with the first matching event and detaches', async () => {
    const rt = runtime();
    const event = awaitTelemetry(rt, ['my', 'event'], (m) => m.n === 2);
    rt.telemetry.execute(['my', 'event'], { n: 1 }, { which: 'first' });
    rt.telemetry.execute(['my', 'event'], { n: 2 }, { which: 'second' });
    expect(await event).toEqual({ measurements: { n: 2 }, metadata: { which: 'second' } });
    expect(rt.telemetry.handlers()).toEqual([]);
  });

  it('rejects after the guard timeout, saying how many events it saw', async () => {
    const rt = runtime();
    const event = awaitTelemetry(rt, ['my', 'event'], () => false, { timeout: 10 });
    rt.telemetry.execute(['my', 'event'], {});
    const error = (await event.catch((e: unknown) => e)) as Error;
    expect(error.message).toContain('my.event');
    expect(error.message).toContain('1 such event');
    expect(rt.telemetry.handlers()).toEqual([]);
  });

  it('rejects with the error when the predicate throws', async () => {
    const rt = runtime();
    const boom = new Error('predicate broke');
    const event = awaitTelemetry(rt, ['e'], () => {
      throw boom;
    });
    rt.telemetry.execute(['e'], {});
    await expect(event).rejects.toBe(boom);
  });
});

describe('withRuntime', () => {
  it('hands a fresh runtime to fn and shuts it down afterwards', async () => {
    let seen: Runtime | undefined;
    const result = await withRuntime(async (rt) => {
      seen = rt;
      await rt.spawn(Idle, undefined);
      return 'value';
    });
    expect(result).toBe('value');
    expect(seen?.stopped).toBe(true);
    expect(seen?.count).toBe(0);
  });

  it('shuts down even when fn throws, and passes options on', async () => {
    let seen: Runtime | undefined;
    const error = await withRuntime(
      (rt) => {
        seen = rt;
        throw new Error('inside');
      },
      { node: 'kit-node' },
    ).catch((e: unknown) => e);
    expect((error as Error).message).toBe('inside');
    expect(seen?.node).toBe('kit-node');
    expect(seen?.stopped).toBe(true);
  });
});
