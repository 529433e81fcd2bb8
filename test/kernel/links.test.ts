import { describe, expect, it } from 'vitest';
import { type AnyRef, behaviour, isNormalExit, reply, stop } from '../../src/kernel/index.js';
import { awaitExit, probe } from '../../src/kernel/testkit.js';
import { flush, runtimeFactory, StuckInTerminate } from './helpers.js';

/** Every runtime a test makes is shut down after it. */
const runtime = runtimeFactory();

type Cmd =
  | { do: 'link'; to: AnyRef }
  | { do: 'unlink'; to: AnyRef }
  | { do: 'crash'; reason: unknown }
  | { do: 'stop'; reason: unknown }
  | { do: 'trap'; on: boolean }
  | { do: 'exit'; to: AnyRef; reason: unknown };

/**
 * A worker driven by casts. Reports every info (EXIT, DOWN...) and its terminate reason to `report`.
 */
const Worker = behaviour<AnyRef | undefined, AnyRef | undefined, 'ping', string, Cmd, unknown>({
  init: (report) => report,
  handleCall: (_msg, _from, s) => reply('pong', s),
  handleCast(cmd, s, ctx) {
    switch (cmd.do) {
      case 'link':
        ctx.link(cmd.to);
        return s;
      case 'unlink':
        ctx.unlink(cmd.to);
        return s;
      case 'crash':
        throw cmd.reason;
      case 'stop':
        return stop(cmd.reason, s);
      case 'trap':
        ctx.trapExit(cmd.on);
        return s;
      case 'exit':
        ctx.exit(cmd.to, cmd.reason);
        return s;
    }
  },
  handleInfo(msg, s, ctx) {
    if (s !== undefined) ctx.send(s, { from: ctx.self, info: msg });
    return s;
  },
  terminate(reason, s, ctx) {
    if (s !== undefined) ctx.send(s, { from: ctx.self, terminated: reason });
  },
});

describe('links', () => {
  it('an abnormal exit kills linked agents with the same reason', async () => {
    const rt = runtime();
    const a = await rt.spawn(Worker, undefined);
    const b = await rt.spawn(Worker, undefined);
    rt.cast(a, { do: 'link', to: b });
    expect(await rt.call(a, 'ping')).toBe('pong');
    expect(rt.info(a)?.links).toBe(1);
    expect(rt.info(b)?.links).toBe(1);
    const aExit = awaitExit(rt, a);
    const bExit = awaitExit(rt, b);
    const failure = new Error('b failed');
    rt.cast(b, { do: 'crash', reason: failure });
    expect(await bExit).toBe(failure);
    expect(await aExit).toBe(failure);
  });

  it('links are bidirectional: the linked-to side dying kills the linker too', async () => {
    const rt = runtime();
    const a = await rt.spawn(Worker, undefined);
    const b = await rt.spawn(Worker, undefined);
    rt.cast(a, { do: 'link', to: b });
    await rt.call(a, 'ping');
    const bExit = awaitExit(rt, b);
    rt.cast(a, { do: 'crash', reason: 'a broke' });
    expect(await bExit).toBe('a broke');
  });

  it('normal exits do not propagate to agents that do not trap exits', async () => {
    const rt = runtime();
    const report = probe(rt);
    const a = await rt.spawn(Worker, report.ref);
    const b = await rt.spawn(Worker, undefined);
    rt.cast(a, { do: 'link', to: b });
    await rt.call(a, 'ping');
    const bExit = awaitExit(rt, b);
    rt.cast(b, { do: 'stop', reason: 'normal' });
    expect(await bExit).toBe('normal');
    expect(await rt.call(a, 'ping')).toBe('pong');
    expect(rt.info(a)?.links).toBe(0);
    await report.refuteMessage(() => true);
  });

  it('a trapping agent gets EXIT messages instead of dying, for normal and abnormal exits alike', async () => {
    const rt = runtime();
    const report = probe(rt);
    const trapper = await rt.spawn(Worker, report.ref, { trapExit: true });
    const one = await rt.spawn(Worker, undefined);
    const two = await rt.spawn(Worker, undefined);
    rt.cast(trapper, { do: 'link', to: one });
    rt.cast(trapper, { do: 'link', to: two });
    await rt.call(trapper, 'ping');
    rt.cast(one, { do: 'stop', reason: 'normal' });
    rt.cast(two, { do: 'crash', reason: 'bad' });
    await report.expectMessage({ from: trapper, info: { type: 'EXIT', from: one, reason: 'normal' } });
    await report.expectMessage({ from: trapper, info: { type: 'EXIT', from: two, reason: 'bad' } });
    expect(rt.isAlive(trapper)).toBe(true);
    expect(rt.info(trapper)?.trapExit).toBe(true);
  });

  it('ctx.trapExit can be switched on and off at run time', async () => {
    const rt = runtime();
    const report = probe(rt);
    const a = await rt.spawn(Worker, report.ref);
    const b = await rt.spawn(Worker, undefined);
    const c = await rt.spawn(Worker, undefined);
    rt.cast(a, { do: 'trap', on: true });
    rt.cast(a, { do: 'link', to: b });
    rt.cast(a, { do: 'link', to: c });
    await rt.call(a, 'ping');
    rt.cast(b, { do: 'crash', reason: 'b' });
    await report.expectMessage({ info: { type: 'EXIT', from: b, reason: 'b' } });
    rt.cast(a, { do: 'trap', on: false });
    await rt.call(a, 'ping');
    const aExit = awaitExit(rt, a);
    rt.cast(c, { do: 'crash', reason: 'c' });
    expect(await aExit).toBe('c');
  });

  it('kill cannot be trapped; linked agents see reason killed (which they can trap)', async () => {
    const rt = runtime();
    const report = probe(rt);
    const victim = await rt.spawn(Worker, report.ref, { trapExit: true });
    const watcher = await rt.spawn(Worker, report.ref, { trapExit: true });
    rt.cast(watcher, { do: 'link', to: victim });
    await rt.call(watcher, 'ping');
    const victimExit = awaitExit(rt, victim);
    rt.exit(victim, 'kill');
    expect(await victimExit).toBe('killed');
    await report.expectMessage({ from: watcher, info: { type: 'EXIT', from: victim, reason: 'killed' } });
    // kill skips terminate
    await report.refuteMessage({ from: victim, terminated: () => true });
    expect(rt.isAlive(watcher)).toBe(true);
  });

  it('kill reaches an agent stuck in an async terminate', async () => {
    const rt = runtime();
    const report = probe(rt);
    const ref = await rt.spawn(StuckInTerminate, report.ref);
    const exit = awaitExit(rt, ref);
    void rt.stop(ref, 'normal');
    await report.expectMessage('terminating');
    expect(rt.info(ref)?.status).toBe('exiting');
    rt.exit(ref, 'some reason'); // other signals are moot while exiting
    expect(rt.info(ref)?.status).toBe('exiting');
    rt.kill(ref);
    expect(await exit).toBe('killed');
  });

  it('a killed agent propagates killed (not kill) to non-trapping links, which die too', async () => {
    const rt = runtime();
    const a = await rt.spawn(Worker, undefined);
    const b = await rt.spawn(Worker, undefined);
    rt.cast(a, { do: 'link', to: b });
    await rt.call(a, 'ping');
    const aExit = awaitExit(rt, a);
    rt.kill(b);
    expect(await aExit).toBe('killed');
  });

  it('an exit signal from outside: trapped as EXIT, otherwise fatal; normal is ignored', async () => {
    const rt = runtime();
    const report = probe(rt);
    const trapper = await rt.spawn(Worker, report.ref, { trapExit: true });
    const plain = await rt.spawn(Worker, report.ref);
    rt.exit(trapper, 'go away');
    await report.expectMessage({ from: trapper, info: { type: 'EXIT', from: rt.pid, reason: 'go away' } });
    rt.exit(plain, 'normal');
    expect(await rt.call(plain, 'ping')).toBe('pong');
    const plainExit = awaitExit(rt, plain);
    rt.exit(plain, 'go away');
    expect(await plainExit).toBe('go away');
    // An untrapped exit signal kills without terminate.
    await report.refuteMessage({ from: plain, terminated: () => true });
  });

  it('ctx.exit sends an exit signal from the agent', async () => {
    const rt = runtime();
    const report = probe(rt);
    const sender = await rt.spawn(Worker, undefined);
    const target = await rt.spawn(Worker, report.ref, { trapExit: true });
    rt.cast(sender, { do: 'exit', to: target, reason: 'from sender' });
    await report.expectMessage({ info: { type: 'EXIT', from: sender, reason: 'from sender' } });
  });

  it('unlink stops propagation', async () => {
    const rt = runtime();
    const a = await rt.spawn(Worker, undefined);
    const b = await rt.spawn(Worker, undefined);
    rt.cast(a, { do: 'link', to: b });
    rt.cast(b, { do: 'unlink', to: a });
    await rt.call(a, 'ping');
    await rt.call(b, 'ping');
    expect(rt.info(a)?.links).toBe(0);
    const bExit = awaitExit(rt, b);
    rt.cast(b, { do: 'crash', reason: 'alone' });
    await bExit;
    expect(await rt.call(a, 'ping')).toBe('pong');
  });

  it('linking to a dead agent: EXIT noproc when trapping, else link throws E_NOPROC and the agent crashes', async () => {
    const rt = runtime();
    const report = probe(rt);
    const dead = await rt.spawn(Worker, undefined);
    const gone = awaitExit(rt, dead);
    rt.kill(dead);
    await gone;
    const trapper = await rt.spawn(Worker, report.ref, { trapExit: true });
    rt.cast(trapper, { do: 'link', to: dead });
    await report.expectMessage({ info: { type: 'EXIT', from: dead, reason: 'noproc' } });
    const plain = await rt.spawn(Worker, undefined);
    const plainExit = awaitExit(rt, plain);
    rt.cast(plain, { do: 'link', to: dead });
    // As in OTP, where link/1 raises noproc: the handler throws, so the agent crashes with it.
    expect(await plainExit).toMatchObject({ code: 'E_NOPROC' });
  });

  it('a long chain of links propagates without overflowing the stack', async () => {
    const rt = runtime();
    const n = 20_000;
    const refs: AnyRef[] = [];
    for (let i = 0; i < n; i++) refs.push(rt.spawnSync(Worker, undefined));
    for (let i = 1; i < n; i++) rt.cast(refs[i] as AnyRef, { do: 'link', to: refs[i - 1] as AnyRef });
    await Promise.all(refs.map((r) => rt.call(r, 'ping')));
    const last = awaitExit(rt, refs[n - 1] as AnyRef);
    rt.cast(refs[0] as AnyRef, { do: 'crash', reason: 'chain' });
    expect(await last).toBe('chain');
    expect(rt.count).toBe(0);
  });

  it('a trapping child exits (running terminate) when its parent sends EXIT', async () => {
    const rt = runtime();
    const report = probe(rt);
    const Parent = behaviour<AnyRef, AnyRef | null, 'spawn', AnyRef>({
      init: () => null,
      async handleCall(_msg, _from, _s, ctx) {
        const child = await ctx.spawnLink(Worker, report.ref, { trapExit: true });
        return reply(child, child);
      },
    });
    const parent = await rt.spawn(Parent, report.ref);
    const child = await rt.call(parent, 'spawn');
    expect(rt.info(child)?.parent).toEqual(parent.toJSON());
    rt.exit(parent, 'parent gone');
    await report.expectMessage({ from: child, terminated: 'parent gone' });
    // It exits instead of handling the EXIT as an ordinary message.
    await report.refuteMessage({ from: child, info: () => true });
  });
});

describe('monitors', () => {
  it('a DOWN message carries the monitor, the pid and the exit reason', async () => {
    const rt = runtime();
    const watcher = probe(rt);
    const target = await rt.spawn(Worker, undefined);
    const mon = watcher.ctx.monitor(target);
    expect(rt.info(target)?.monitors).toBe(1);
    rt.cast(target, { do: 'crash', reason: 'kaput' });
    const down = await watcher.expectMessage({ type: 'DOWN' });
    expect(down).toEqual({ type: 'DOWN', monitor: mon, pid: target, reason: 'kaput' });
    expect(isNormalExit(down.reason)).toBe(false);
  });

  it('monitors fire for normal exits too, and each monitor gives its own DOWN', async () => {
    const rt = runtime();
    const watcher = probe(rt);
    const target = await rt.spawn(Worker, undefined);
    const m1 = watcher.ctx.monitor(target);
    const m2 = watcher.ctx.monitor(target);
    expect(m1.monitorId).not.toBe(m2.monitorId);
    await rt.stop(target);
    await watcher.expectMessage({ type: 'DOWN', monitor: m1, reason: 'normal' });
    await watcher.expectMessage({ type: 'DOWN', monitor: m2, reason: 'normal' });
  });

  it('a monitor does not link: the watcher survives', async () => {
    const rt = runtime();
    const watcher = probe(rt);
    const target = await rt.spawn(Worker, undefined);
    watcher.ctx.monitor(target);
    rt.cast(target, { do: 'crash', reason: new Error('x') });
    await watcher.expectMessage({ type: 'DOWN' });
    expect(rt.isAlive(watcher.ref)).toBe(true);
  });

  it('demonitor: no DOWN afterwards', async () => {
    const rt = runtime();
    const watcher = probe(rt);
    const target = await rt.spawn(Worker, undefined);
    const mon = watcher.ctx.monitor(target);
    expect(watcher.ctx.demonitor(mon)).toBe(true);
    expect(watcher.ctx.demonitor(mon)).toBe(false);
    expect(rt.info(target)?.monitors).toBe(0);
    const gone = awaitExit(rt, target);
    rt.kill(target);
    await gone;
    await flush();
    await watcher.refuteMessage({ type: 'DOWN' });
  });

  it('monitoring a dead or unknown agent gives DOWN noproc at once', async () => {
    const rt = runtime();
    const watcher = probe(rt);
    const target = await rt.spawn(Worker, undefined);
    const gone = awaitExit(rt, target);
    rt.kill(target);
    await gone;
    const mon = watcher.ctx.monitor(target);
    await watcher.expectMessage({ type: 'DOWN', monitor: mon, pid: target, reason: 'noproc' });
    const ghost = { node: rt.node, thread: 0, id: 99_999 };
    const mon2 = watcher.ctx.monitor(ghost);
    await watcher.expectMessage({ type: 'DOWN', monitor: mon2, pid: ghost, reason: 'noproc' });
  });

  it('a watcher that exits first leaves no monitor behind', async () => {
    const rt = runtime();
    const watcher = probe(rt);
    const target = await rt.spawn(Worker, undefined);
    watcher.ctx.monitor(target);
    expect(rt.info(target)?.monitors).toBe(1);
    const gone = awaitExit(rt, watcher.ref);
    rt.kill(watcher.ref);
    await gone;
    expect(rt.info(target)?.monitors).toBe(0);
  });

  it('an agent that monitors from a handler gets DOWN in handleInfo', async () => {
    const rt = runtime();
    const report = probe(rt);
    const Watch = behaviour<AnyRef, AnyRef, AnyRef, 'ok'>({
      init: (r) => r,
      handleCall(target, _from, r, ctx) {
        ctx.monitor(target);
        return reply('ok', r);
      },
      handleInfo(msg, r, ctx) {
        ctx.send(r, msg);
        return r;
      },
    });
    const w = await rt.spawn(Watch, report.ref);
    const target = await rt.spawn(Worker, undefined);
    await rt.call(w, target);
    rt.cast(target, { do: 'stop', reason: { shutdown: 'done' } });
    const down = await report.expectMessage({ type: 'DOWN', pid: target });
    expect(down.reason).toEqual({ shutdown: 'done' });
    expect(isNormalExit(down.reason)).toBe(true);
  });
});
