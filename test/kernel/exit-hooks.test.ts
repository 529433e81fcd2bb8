import { describe, expect, it } from 'vitest';
import { behaviour, type DownMessage, Runtime, reply, VIA, type Via } from '../../src/kernel/index.js';
import { probe } from '../../src/kernel/testkit.js';

const Sleeper = behaviour<void, null, 'ping', 'pong', 'crash'>({
  init: () => null,
  handleCall: (_m, _f, s) => reply('pong' as const, s),
  handleCast: () => {
    throw new Error('asked to crash');
  },
});

describe('onExit hooks', () => {
  it('run before any monitor sees the DOWN, with the exit reason', async () => {
    const rt = new Runtime();
    const target = rt.spawnSync(Sleeper, undefined);
    const watcher = probe(rt);
    watcher.ctx.monitor(target);
    const seen: unknown[] = [];
    let downSeenByHook = true;
    rt.onExit(target, (reason) => {
      seen.push(reason);
      downSeenByHook = watcher.received.some((m) => (m.message as DownMessage).type === 'DOWN');
    });
    rt.cast(target, 'crash');
    const down = (await watcher.expectMessage({ type: 'DOWN' })) as DownMessage;
    expect(seen).toHaveLength(1);
    expect((seen[0] as Error).message).toBe('asked to crash');
    expect(down.reason).toBe(seen[0]);
    expect(downSeenByHook).toBe(false);
    await rt.shutdown();
  });

  it('run at once for an agent that is already gone, and can be removed', async () => {
    const rt = new Runtime();
    const a = rt.spawnSync(Sleeper, undefined);
    rt.kill(a);
    const reasons: unknown[] = [];
    rt.onExit(a, (r) => reasons.push(r));
    expect(reasons).toEqual(['killed']);
    const b = rt.spawnSync(Sleeper, undefined);
    const remove = rt.onExit(b, (r) => reasons.push(r));
    remove();
    rt.kill(b);
    expect(reasons).toEqual(['killed']);
    expect(() => rt.onExit(b, 42 as never)).toThrow(expect.objectContaining({ code: 'E_INVALID_ARGUMENT' }));
    await rt.shutdown();
  });
});

describe('via destinations', () => {
  it('resolve through another name service at send time', async () => {
    const rt = new Runtime();
    const p = probe(rt);
    const table = new Map<string, typeof p.ref>([['svc', p.ref]]);
    const via = (name: string): Via => ({ [VIA]: () => table.get(name) });
    expect(rt.send(via('svc'), 'hello')).toBe(true);
    await p.expectMessage('hello');
    expect(rt.send(via('missing'), 'hello')).toBe(false);
    await expect(rt.call(via('missing'), 'ping')).rejects.toMatchObject({ code: 'E_NOPROC' });
    await rt.shutdown();
  });
});
