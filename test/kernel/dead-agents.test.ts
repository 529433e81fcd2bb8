/**
 * An agent's code can outlive the agent (the rest of an async handler whose agent was killed while
 * it awaited). Such code must not act for the dead agent, and a dead agent must not reply.
 */
import { describe, expect, it } from 'vitest';
import { type AnyRef, behaviour, reply, VirtualClock } from '../../src/kernel/index.js';
import { deferred, flush, runtimeFactory } from './helpers.js';

const runtime = runtimeFactory();
const Idle = behaviour<void, null>({ init: () => null, handleInfo: (_m, s) => s });

describe('dead agents', () => {
  it('code running after the agent was killed cannot link, monitor or spawn for it', async () => {
    const rt = runtime();
    const service = rt.spawnSync(Idle, undefined);
    const gate = deferred();
    const attempts: string[] = [];
    let child: AnyRef | undefined;
    const Worker = behaviour<void, null, never, never, 'go'>({
      init: () => null,
      async handleCast(_m, s, ctx) {
        await gate.promise;
        for (const [what, act] of [
          ['monitor', () => ctx.monitor(service)],
          ['link', () => ctx.link(service)],
          ['sendAfter', () => ctx.sendAfter('tick' as never, 10)],
        ] as const) {
          try {
            act();
          } catch (error) {
            attempts.push(`${what}: ${(error as { code?: string }).code}`);
          }
        }
        child = await ctx.spawnLink(Idle, undefined).catch((error) => {
          attempts.push(`spawnLink: ${error.code}`);
          return undefined;
        });
        return s;
      },
    });
    const w = rt.spawnSync(Worker, undefined);
    rt.cast(w, 'go');
    rt.kill(w);
    gate.resolve();
    await flush();
    await flush();
    expect(attempts).toEqual([
      'monitor: E_NOPROC',
      'link: E_NOPROC',
      'sendAfter: E_NOPROC',
      'spawnLink: E_NOPROC',
    ]);
    expect(child).toBeUndefined();
    expect(rt.info(service)).toMatchObject({ links: 0, monitors: 0 });
  });

  it('an agent killed in the synchronous part of handleCall neither replies nor keeps the new state', async () => {
    const rt = runtime();
    const victim = rt.spawnSync(Idle, undefined);
    const Linker = behaviour<void, { big: number[] } | null, 'go', string>({
      init: () => null,
      handleCall(_m, _f, _s, ctx) {
        ctx.link(victim);
        rt.kill(victim); // the link takes this agent down before the handler returns
        return reply('reply from a dead agent', { big: new Array(1000).fill(1) });
      },
    });
    const ref = rt.spawnSync(Linker, undefined);
    await expect(rt.call(ref, 'go')).rejects.toMatchObject({ code: 'E_EXIT', reason: 'killed' });
    expect(await rt.awaitExit(ref)).toBe('killed');
  });

  it('stop(self) from inside a handler is refused instead of waiting for itself forever', async () => {
    const rt = runtime();
    const Selfish = behaviour<void, null, 'stop-me', string>({
      init: () => null,
      async handleCall(_m, _f, s, ctx) {
        const outcome = await rt.stop(ctx.self).then(
          () => 'stopped',
          (e: { code: string }) => e.code,
        );
        return reply(outcome, s);
      },
    });
    const ref = rt.spawnSync(Selfish, undefined);
    expect(await rt.call(ref, 'stop-me')).toBe('E_CALL_SELF');
  });
});

describe('call deadlines', () => {
  const Echo = behaviour<void, null, string, string>({
    init: () => null,
    handleCall: (m, _f, s) => reply(m, s),
  });

  it('hold nothing once every queued call has settled, and stop at the deadline without re-arming', async () => {
    const clock = new VirtualClock();
    const rt = runtime({ clock });
    const a = rt.spawnSync(Echo, undefined);
    // Two calls at once: the second queues (and gets a deadline) behind the first.
    const answers = await Promise.all([rt.call(a, 'one'), rt.call(a, 'two')]);
    expect(answers).toEqual(['one', 'two']);
    expect(clock.pending).toBeLessThanOrEqual(1);
    clock.advance(5000);
    expect(clock.pending).toBe(0);
  });

  it('keep the process alive only while a call is pending', async () => {
    const rt = runtime();
    const timeouts = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timeouts();
    const gate = deferred<string>();
    const Held = behaviour<void, null, string, string>({
      init: () => null,
      handleCall: async (m, _f, s) => reply(`${m}:${await gate.promise}`, s),
    });
    const held = rt.spawnSync(Held, undefined);
    const echo = rt.spawnSync(Echo, undefined);
    const first = rt.call(held, 'a'); // answered later: its deadline keeps the process alive
    expect(timeouts()).toBe(before + 1);
    gate.resolve('done');
    expect(await first).toBe('a:done');
    expect(timeouts()).toBe(before);
    expect(await rt.call(echo, 'b')).toBe('b');
    expect(timeouts()).toBe(before);
  });
});

describe('shutdown', () => {
  it('stops top-level agents newest first, each after the previous one exited, and a second call joins the first', async () => {
    const rt = runtime();
    const order: string[] = [];
    // The newer agent's terminate takes longer: only waiting for it makes 'old' stop after it.
    const Named = behaviour<{ name: string; hops: number }, { name: string; hops: number }>({
      init: (args) => args,
      async terminate(_r, { name, hops }) {
        for (let i = 0; i < hops; i++) await flush();
        order.push(name);
      },
    });
    rt.spawnSync(Named, { name: 'old', hops: 1 }, { trapExit: true });
    rt.spawnSync(Named, { name: 'new', hops: 5 }, { trapExit: true });
    await Promise.all([rt.shutdown(), rt.shutdown()]);
    expect(order).toEqual(['new', 'old']);
    expect(rt.count).toBe(0);
  });
});
