import { describe, expect, it } from 'vitest';
import {
  type AgentContext,
  type AnyRef,
  behaviour,
  type ChildSpec,
  type ChildSpecExtras,
  ErrorCodes,
  MaxRestartsError,
  type Metadata,
  NoChildError,
  Runtime,
  reply,
  Supervisor,
  type SupervisorRef,
  type SupervisorSpec,
  VirtualClock,
} from '../../src/kernel/index.js';
import { deferred } from './helpers.js';
import { crash, nextEvent, Worker, type WorkerArgs } from './supervision-fixtures.js';

// ---- test agents -------------------------------------------------------------------------------

function worker(
  id: string,
  log: string[],
  args: Partial<WorkerArgs> = {},
  extras: ChildSpecExtras = {},
): ChildSpec {
  return Supervisor.childSpec(id, Worker, { id, log, trap: true, ...args }, extras);
}

async function refs(rt: Runtime, sup: SupervisorRef): Promise<(AnyRef | undefined)[]> {
  return (await Supervisor.whichChildren(rt, sup)).map((c) => c.ref);
}

async function childRef(rt: Runtime, sup: SupervisorRef, id: string): Promise<AnyRef> {
  const child = (await Supervisor.whichChildren(rt, sup)).find((c) => c.id === id);
  if (child?.ref === undefined) throw new Error(`child ${id} is not running`);
  return child.ref;
}

/** Collects every emission of `event`. */
function collect(rt: Runtime, event: readonly string[]): Metadata[] {
  const seen: Metadata[] = [];
  rt.telemetry.attach(`collect-${event.join('.')}`, event, (_e, _m, metadata) => seen.push(metadata));
  return seen;
}

const RESTART = ['mabeam', 'supervisor', 'restart'] as const;
const SHUTDOWN = ['mabeam', 'supervisor', 'shutdown'] as const;

// ---- tests -------------------------------------------------------------------------------------

describe('starting', () => {
  it('starts children in order, linked to and parented by the supervisor, which traps exits', async () => {
    const rt = new Runtime();
    const log: string[] = [];
    const sup = await Supervisor.start(rt, {
      children: [worker('a', log), worker('b', log), worker('c', log)],
    });
    expect(log).toEqual(['start:a', 'start:b', 'start:c']);
    const kids = await Supervisor.whichChildren(rt, sup);
    expect(kids.map((k) => [k.id, k.status, k.type, k.restart])).toEqual([
      ['a', 'running', 'worker', 'permanent'],
      ['b', 'running', 'worker', 'permanent'],
      ['c', 'running', 'worker', 'permanent'],
    ]);
    for (const k of kids) expect(rt.info(k.ref as AnyRef)?.parent).toEqual(sup.toJSON());
    expect(rt.info(sup)?.trapExit).toBe(true);
    expect(rt.info(sup)?.links).toBe(3);
    expect(await Supervisor.countChildren(rt, sup)).toEqual({
      specs: 3,
      active: 3,
      supervisors: 0,
      workers: 3,
    });
    await rt.shutdown();
  });

  it('shuts down the children already started when one fails to start, and rejects', async () => {
    const rt = new Runtime();
    const log: string[] = [];
    const spec: SupervisorSpec = {
      children: [
        worker('a', log),
        worker('b', log),
        worker('c', log, { failInit: () => true }),
        worker('d', log),
      ],
    };
    const err = await Supervisor.start(rt, spec).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: ErrorCodes.INIT_FAILED });
    expect(String((err as Error).message)).toContain('child "c"');
    expect(String((err as Error).message)).toContain('init of c failed');
    expect(log).toEqual(['start:a', 'start:b', 'stop:b', 'stop:a']);
    expect(rt.count).toBe(0);
    await rt.shutdown();
  });

  it('starts a child with a custom start function and restarts it the same way', async () => {
    const rt = new Runtime();
    const log: string[] = [];
    let starts = 0;
    const start = (ctx: Pick<AgentContext, 'spawnLink'>) => {
      starts++;
      return ctx.spawnLink(Worker, { id: 'x', log, trap: true });
    };
    const sup = await Supervisor.start(rt, { children: [{ id: 'x', start }] });
    const x = await childRef(rt, sup, 'x');
    expect(rt.info(x)?.parent).toEqual(sup.toJSON());
    await crash(rt, x);
    const x2 = await childRef(rt, sup, 'x');
    expect(x2.equals(x)).toBe(false);
    expect(starts).toBe(2);
    await rt.shutdown();
  });
});

describe('strategies', () => {
  it('one_for_one restarts only the child that exited', async () => {
    const rt = new Runtime();
    const log: string[] = [];
    const sup = await Supervisor.start(rt, {
      strategy: 'one_for_one',
      children: [worker('a', log), worker('b', log), worker('c', log)],
    });
    const [a, b, c] = (await refs(rt, sup)) as AnyRef[];
    const restarted = nextEvent(rt, RESTART);
    log.length = 0;
    await crash(rt, b as AnyRef);
    const after = (await refs(rt, sup)) as AnyRef[];
    expect(after[0]?.equals(a)).toBe(true);
    expect(after[1]?.equals(b)).toBe(false);
    expect(after[2]?.equals(c)).toBe(true);
    expect(log).toEqual(['stop:b', 'start:b']);
    const meta = await restarted;
    expect(meta.child).toBe('b');
    expect((meta.supervisor as AnyRef).equals(sup)).toBe(true);
    expect(meta.reason).toBeInstanceOf(Error);
    await rt.shutdown();
  });

  it('one_for_all stops the others in reverse order and restarts all in start order', async () => {
    const rt = new Runtime();
    const log: string[] = [];
    const sup = await Supervisor.start(rt, {
      strategy: 'one_for_all',
      children: [worker('a', log), worker('b', log), worker('c', log)],
    });
    const before = (await refs(rt, sup)) as AnyRef[];
    log.length = 0;
    await crash(rt, before[1] as AnyRef);
    const after = (await refs(rt, sup)) as AnyRef[];
    for (let i = 0; i < 3; i++) expect(after[i]?.equals(before[i])).toBe(false);
    expect(log).toEqual(['stop:b', 'stop:c', 'stop:a', 'start:a', 'start:b', 'start:c']);
    for (const ref of before) expect(rt.isAlive(ref)).toBe(false);
    await rt.shutdown();
  });

  it('rest_for_one restarts the child and those started after it', async () => {
    const rt = new Runtime();
    const log: string[] = [];
    const sup = await Supervisor.start(rt, {
      strategy: 'rest_for_one',
      children: [worker('a', log), worker('b', log), worker('c', log), worker('d', log)],
    });
    const before = (await refs(rt, sup)) as AnyRef[];
    log.length = 0;
    await crash(rt, before[1] as AnyRef);
    const after = (await refs(rt, sup)) as AnyRef[];
    expect(after.map((r, i) => r?.equals(before[i]))).toEqual([true, false, false, false]);
    expect(log).toEqual(['stop:b', 'stop:d', 'stop:c', 'start:b', 'start:c', 'start:d']);
    await rt.shutdown();
  });

  it('one_for_all drops temporary siblings it had to stop', async () => {
    const rt = new Runtime();
    const log: string[] = [];
    const sup = await Supervisor.start(rt, {
      strategy: 'one_for_all',
      children: [worker('a', log), worker('t', log, {}, { restart: 'temporary' })],
    });
    await crash(rt, await childRef(rt, sup, 'a'));
    expect((await Supervisor.whichChildren(rt, sup)).map((c) => c.id)).toEqual(['a']);
    await rt.shutdown();
  });
});

describe('restart types', () => {
  it('permanent children are restarted even after a normal exit', async () => {
    const rt = new Runtime();
    const log: string[] = [];
    const sup = await Supervisor.start(rt, { children: [worker('p', log)] });
    const p = await childRef(rt, sup, 'p');
    const exited = rt.awaitExit(p);
    rt.cast(p, 'finish');
    expect(await exited).toBe('normal');
    const p2 = await childRef(rt, sup, 'p');
    expect(p2.equals(p)).toBe(false);
    await rt.shutdown();
  });

  it('transient children are restarted only after an abnormal exit', async () => {
    const rt = new Runtime();
    const log: string[] = [];
    const sup = await Supervisor.start(rt, { children: [worker('t', log, {}, { restart: 'transient' })] });
    const t = await childRef(rt, sup, 't');
    await crash(rt, t);
    const t2 = await childRef(rt, sup, 't');
    expect(t2.equals(t)).toBe(false);
    const exited = rt.awaitExit(t2);
    rt.cast(t2, 'finish');
    expect(await exited).toBe('normal');
    const [row] = await Supervisor.whichChildren(rt, sup);
    expect(row).toMatchObject({ id: 't', ref: undefined, status: 'terminated' });
    expect(await Supervisor.countChildren(rt, sup)).toMatchObject({ specs: 1, active: 0 });
    await rt.shutdown();
  });

  it('temporary children are never restarted and are forgotten when they exit', async () => {
    const rt = new Runtime();
    const log: string[] = [];
    const restarts = collect(rt, RESTART);
    const sup = await Supervisor.start(rt, {
      children: [worker('a', log), worker('tmp', log, {}, { restart: 'temporary' })],
    });
    await crash(rt, await childRef(rt, sup, 'tmp'));
    expect((await Supervisor.whichChildren(rt, sup)).map((c) => c.id)).toEqual(['a']);
    expect(restarts).toEqual([]);
    await rt.shutdown();
  });
});

describe('restart intensity', () => {
  it('allows `intensity` restarts within the period and gives up on one more', async () => {
    const rt = new Runtime({ clock: new VirtualClock() });
    const log: string[] = [];
    const sup = await Supervisor.start(rt, {
      intensity: 2,
      periodMs: 1000,
      children: [worker('a', log), worker('b', log)],
    });
    const b0 = await childRef(rt, sup, 'b');
    await crash(rt, await childRef(rt, sup, 'a'));
    await crash(rt, await childRef(rt, sup, 'a'));
    expect(rt.isAlive(sup)).toBe(true);
    const shutdown = nextEvent(rt, SHUTDOWN);
    const a = await childRef(rt, sup, 'a');
    log.length = 0;
    rt.cast(a, 'crash');
    const reason = await rt.awaitExit(sup);
    expect(reason).toBeInstanceOf(MaxRestartsError);
    expect((reason as MaxRestartsError).code).toBe(ErrorCodes.MAX_RESTARTS);
    const meta = await shutdown;
    expect(meta.child).toBe('a');
    expect(meta.reason).toBe(reason);
    expect(log).toEqual(['stop:a', 'stop:b']);
    expect(rt.isAlive(b0)).toBe(false);
    expect(rt.count).toBe(0);
    await rt.shutdown();
  });

  it('forgets restarts older than the period (virtual clock)', async () => {
    const clock = new VirtualClock();
    const rt = new Runtime({ clock });
    const sup = await Supervisor.start(rt, { intensity: 1, periodMs: 1000, children: [worker('a', [])] });
    await crash(rt, await childRef(rt, sup, 'a'));
    clock.advance(1000);
    // Exactly one period later the first restart still counts (OTP's window is inclusive)...
    clock.advance(1);
    // ...one ms more and it has left the window.
    await crash(rt, await childRef(rt, sup, 'a'));
    expect(rt.isAlive(sup)).toBe(true);
    rt.cast(await childRef(rt, sup, 'a'), 'crash');
    expect(await rt.awaitExit(sup)).toBeInstanceOf(MaxRestartsError);
    await rt.shutdown();
  });

  it('intensity 0 gives up on the first restart', async () => {
    const rt = new Runtime();
    const sup = await Supervisor.start(rt, { intensity: 0, children: [worker('a', [])] });
    rt.cast(await childRef(rt, sup, 'a'), 'crash');
    expect(await rt.awaitExit(sup)).toBeInstanceOf(MaxRestartsError);
    await rt.shutdown();
  });

  it('retries a restart whose start fails, counting each attempt', async () => {
    const rt = new Runtime();
    let inits = 0;
    const started = deferred();
    const restarts = collect(rt, RESTART);
    // Starts, then fails twice on restart, then starts again.
    const failInit = () => {
      inits++;
      return inits === 2 || inits === 3;
    };
    const sup = await Supervisor.start(rt, {
      intensity: 3,
      children: [worker('a', [], { failInit, onStart: () => inits === 4 && started.resolve() })],
    });
    await crash(rt, await childRef(rt, sup, 'a'));
    await started.promise;
    const [row] = await Supervisor.whichChildren(rt, sup);
    expect(row?.status).toBe('running');
    expect(restarts.length).toBe(3);
    expect(rt.isAlive(sup)).toBe(true);
    await rt.shutdown();
  });

  it('gives up when restarts keep failing', async () => {
    const rt = new Runtime();
    let inits = 0;
    const sup = await Supervisor.start(rt, {
      intensity: 3,
      children: [worker('a', [], { failInit: () => ++inits > 1 })],
    });
    rt.cast(await childRef(rt, sup, 'a'), 'crash');
    expect(await rt.awaitExit(sup)).toBeInstanceOf(MaxRestartsError);
    expect(inits).toBe(4);
    await rt.shutdown();
  });
});

describe('nested supervisors', () => {
  it('escalate: a child supervisor over its intensity exits with MaxRestartsError and its parent restarts the subtree', async () => {
    const rt = new Runtime({ clock: new VirtualClock() });
    const log: string[] = [];
    const root = await Supervisor.start(rt, {
      children: [
        worker('a', log),
        Supervisor.supervisorChildSpec('sub', {
          intensity: 1,
          children: [worker('w', log), worker('v', log)],
        }),
      ],
    });
    const sub = (await childRef(rt, root, 'sub')) as SupervisorRef;
    expect(rt.info(sub)?.parent).toEqual(root.toJSON());
    const rootRestart = nextEvent(rt, RESTART);
    await crash(rt, await childRef(rt, sub, 'w'));
    expect((await rootRestart).child).toBe('w');

    const escalated = nextEvent(rt, SHUTDOWN);
    log.length = 0;
    rt.cast(await childRef(rt, sub, 'w'), 'crash');
    const reason = await rt.awaitExit(sub);
    expect(reason).toBeInstanceOf(MaxRestartsError);
    expect((await escalated).supervisor).toEqual(sub);

    const sub2 = (await childRef(rt, root, 'sub')) as SupervisorRef;
    expect(sub2.equals(sub)).toBe(false);
    expect((await Supervisor.whichChildren(rt, sub2)).map((c) => c.status)).toEqual(['running', 'running']);
    // The sub-tree went down in reverse order and came back in order; the sibling was untouched.
    expect(log).toEqual(['stop:w', 'stop:v', 'start:w', 'start:v']);
    expect(await Supervisor.countChildren(rt, root)).toEqual({
      specs: 2,
      active: 2,
      supervisors: 1,
      workers: 1,
    });
    await rt.shutdown();
  });

  it('escalate all the way up: the root gives up too', async () => {
    const rt = new Runtime();
    const root = await Supervisor.start(rt, {
      intensity: 0,
      children: [Supervisor.supervisorChildSpec('sub', { intensity: 0, children: [worker('w', [])] })],
    });
    const sub = (await childRef(rt, root, 'sub')) as SupervisorRef;
    rt.cast(await childRef(rt, sub, 'w'), 'crash');
    expect(await rt.awaitExit(root)).toBeInstanceOf(MaxRestartsError);
    expect(rt.count).toBe(0);
    await rt.shutdown();
  });

  it('a supervisor started from an agent is linked to it and escalates to it', async () => {
    const rt = new Runtime();
    const exits: unknown[] = [];
    const Parent = behaviour<null, SupervisorRef | null, 'sup', SupervisorRef | null>({
      async init(_args, ctx) {
        ctx.trapExit(true);
        return Supervisor.start(ctx, { intensity: 0, children: [worker('w', [])] });
      },
      handleCall: (_msg, _from, s) => reply(s, s),
      handleInfo(msg, s) {
        exits.push(msg);
        return s;
      },
    });
    const parent = await rt.spawn(Parent, null);
    const sup = (await rt.call(parent, 'sup')) as SupervisorRef;
    expect(rt.info(sup)?.parent).toEqual(parent.toJSON());
    rt.cast(await childRef(rt, sup, 'w'), 'crash');
    await rt.awaitExit(sup);
    await rt.call(parent, 'sup');
    expect(exits).toEqual([{ type: 'EXIT', from: sup, reason: expect.any(MaxRestartsError) }]);
    await rt.shutdown();
  });
});

describe('ordered shutdown', () => {
  it('stops children in reverse start order, running their terminate callbacks', async () => {
    const rt = new Runtime();
    const log: string[] = [];
    const sup = await Supervisor.start(rt, {
      children: [
        worker('a', log),
        Supervisor.supervisorChildSpec('sub', { children: [worker('x', log), worker('y', log)] }),
        worker('b', log),
      ],
    });
    const kids = await refs(rt, sup);
    log.length = 0;
    await rt.stop(sup, 'shutdown');
    expect(log).toEqual(['stop:b', 'stop:y', 'stop:x', 'stop:a']);
    for (const ref of kids) expect(rt.isAlive(ref as AnyRef)).toBe(false);
    expect(rt.count).toBe(0);
    await rt.shutdown();
  });

  it('shuts down when its parent exits (the EXIT from the parent becomes terminate)', async () => {
    const rt = new Runtime();
    const log: string[] = [];
    const Parent = behaviour<null, SupervisorRef, 'sup', SupervisorRef>({
      init: (_args, ctx) => Supervisor.start(ctx, { children: [worker('a', log), worker('b', log)] }),
      handleCall: (_msg, _from, s) => reply(s, s),
    });
    const parent = await rt.spawn(Parent, null);
    const sup = await rt.call(parent, 'sup');
    log.length = 0;
    rt.exit(parent, 'shutdown');
    expect(await rt.awaitExit(sup)).toBe('shutdown');
    expect(log).toEqual(['stop:b', 'stop:a']);
    expect(rt.count).toBe(0);
    await rt.shutdown();
  });

  it('an exit signal from outside any agent shuts a top-level supervisor down in order', async () => {
    const rt = new Runtime();
    const log: string[] = [];
    const sup = await Supervisor.start(rt, { children: [worker('a', log), worker('b', log)] });
    log.length = 0;
    rt.exit(sup, 'shutdown');
    expect(await rt.awaitExit(sup)).toBe('shutdown');
    expect(log).toEqual(['stop:b', 'stop:a']);
    await rt.shutdown();
  });

  it('runtime.shutdown shuts supervision trees down in order', async () => {
    const rt = new Runtime();
    const log: string[] = [];
    await Supervisor.start(rt, { children: [worker('a', log), worker('b', log), worker('c', log)] });
    log.length = 0;
    await rt.shutdown();
    expect(log).toEqual(['stop:c', 'stop:b', 'stop:a']);
  });

  it('kills a child whose terminate outlasts its shutdown timeout (virtual clock)', async () => {
    const clock = new VirtualClock();
    const rt = new Runtime({ clock });
    const log: string[] = [];
    const entered = deferred();
    const sup = await Supervisor.start(rt, {
      children: [
        worker('a', log),
        worker('h', log, { hang: true, onTerminate: entered.resolve }, { shutdown: 1000 }),
      ],
    });
    const h = await childRef(rt, sup, 'h');
    const a = await childRef(rt, sup, 'a');
    const hExit = rt.awaitExit(h);
    log.length = 0;
    const stopped = rt.stop(sup, 'shutdown');
    await entered.promise;
    clock.advance(999);
    expect(rt.info(h)?.status).toBe('exiting');
    expect(rt.isAlive(a)).toBe(true);
    clock.advance(1);
    expect(await hExit).toBe('killed');
    await stopped;
    expect(log).toEqual(['stop:h', 'stop:a']);
    expect(rt.count).toBe(0);
    await rt.shutdown();
  });

  it('brutal_kill kills at once: terminate does not run', async () => {
    const rt = new Runtime();
    const log: string[] = [];
    const sup = await Supervisor.start(rt, {
      children: [worker('a', log), worker('k', log, {}, { shutdown: 'brutal_kill' })],
    });
    const k = await childRef(rt, sup, 'k');
    const kExit = rt.awaitExit(k);
    log.length = 0;
    await rt.stop(sup);
    expect(await kExit).toBe('killed');
    expect(log).toEqual(['stop:a']);
    await rt.shutdown();
  });

  it('infinity waits for as long as terminate takes', async () => {
    const clock = new VirtualClock();
    const rt = new Runtime({ clock });
    const entered = deferred();
    let finish!: () => void;
    const Slow = behaviour<null, null>({
      init: (_a, ctx) => {
        ctx.trapExit(true);
        return null;
      },
      terminate: () =>
        new Promise<void>((resolve) => {
          finish = resolve;
          entered.resolve();
        }),
    });
    const sup = await Supervisor.start(rt, {
      children: [Supervisor.childSpec('slow', Slow, null, { shutdown: 'infinity' })],
    });
    const stopped = rt.stop(sup);
    await entered.promise;
    clock.advance(1_000_000);
    expect(rt.info(sup)?.status).toBe('exiting');
    finish();
    await stopped;
    expect(rt.count).toBe(0);
    await rt.shutdown();
  });
});

describe('managing children at run time', () => {
  it('startChild, terminateChild, restartChild and deleteChild', async () => {
    const rt = new Runtime();
    const log: string[] = [];
    const sup = await Supervisor.start(rt, { children: [worker('a', log)] });
    const b = await Supervisor.startChild(rt, sup, worker('b', log));
    expect(rt.info(b)?.parent).toEqual(sup.toJSON());
    expect((await Supervisor.whichChildren(rt, sup)).map((c) => c.id)).toEqual(['a', 'b']);

    await Supervisor.terminateChild(rt, sup, 'b');
    expect(rt.isAlive(b)).toBe(false);
    expect(log.at(-1)).toBe('stop:b');
    expect(await Supervisor.countChildren(rt, sup)).toMatchObject({ specs: 2, active: 1 });

    const b2 = await Supervisor.restartChild(rt, sup, 'b');
    expect(rt.isAlive(b2)).toBe(true);
    await expect(Supervisor.restartChild(rt, sup, 'b')).rejects.toMatchObject({
      code: ErrorCodes.INVALID_ARGUMENT,
    });
    await expect(Supervisor.deleteChild(rt, sup, 'b')).rejects.toMatchObject({
      code: ErrorCodes.INVALID_ARGUMENT,
    });
    await Supervisor.terminateChild(rt, sup, 'b');
    await Supervisor.deleteChild(rt, sup, 'b');
    expect((await Supervisor.whichChildren(rt, sup)).map((c) => c.id)).toEqual(['a']);
    await rt.shutdown();
  });

  it('rejects unknown child ids with NoChildError and duplicates with E_INVALID_ARGUMENT', async () => {
    const rt = new Runtime();
    const sup = await Supervisor.start(rt, { children: [worker('a', [])] });
    for (const op of [Supervisor.terminateChild, Supervisor.restartChild, Supervisor.deleteChild]) {
      const err = await op(rt, sup, 'nope').then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(NoChildError);
      expect(err).toMatchObject({ code: ErrorCodes.NO_CHILD });
      expect((err as Error).message).toContain('"nope"');
    }
    await expect(Supervisor.startChild(rt, sup, worker('a', []))).rejects.toMatchObject({
      code: ErrorCodes.INVALID_ARGUMENT,
    });
    await rt.shutdown();
  });

  it('a child added at run time is restarted and shut down like the others', async () => {
    const rt = new Runtime();
    const log: string[] = [];
    const sup = await Supervisor.start(rt, { strategy: 'rest_for_one', children: [worker('a', log)] });
    const b = await Supervisor.startChild(rt, sup, worker('b', log));
    const a = await childRef(rt, sup, 'a');
    await crash(rt, a);
    const b2 = await childRef(rt, sup, 'b');
    expect(b2.equals(b)).toBe(false);
    log.length = 0;
    await rt.stop(sup);
    expect(log).toEqual(['stop:b', 'stop:a']);
    await rt.shutdown();
  });

  it('startChild with a child that fails to start rejects and keeps no spec', async () => {
    const rt = new Runtime();
    const sup = await Supervisor.start(rt, {});
    await expect(
      Supervisor.startChild(rt, sup, worker('f', [], { failInit: () => true })),
    ).rejects.toMatchObject({
      code: ErrorCodes.INIT_FAILED,
    });
    expect(await Supervisor.countChildren(rt, sup)).toEqual({
      specs: 0,
      active: 0,
      supervisors: 0,
      workers: 0,
    });
    await rt.shutdown();
  });

  it('calls to a dead supervisor reject at once with E_NOPROC', async () => {
    const rt = new Runtime();
    const sup = await Supervisor.start(rt, {});
    await rt.stop(sup);
    await expect(Supervisor.whichChildren(rt, sup)).rejects.toMatchObject({ code: ErrorCodes.NOPROC });
    await rt.shutdown();
  });
});

describe('spec validation', () => {
  const ok = worker('ok', []);
  const cases: [string, unknown, string][] = [
    ['not an object', 42, 'supervisor spec'],
    ['unknown strategy', { strategy: 'one_for_some' }, '"one_for_some"'],
    ['negative intensity', { intensity: -1 }, 'intensity'],
    ['fractional intensity', { intensity: 1.5 }, '1.5'],
    ['zero period', { periodMs: 0 }, 'periodMs'],
    ['infinite period', { periodMs: Number.POSITIVE_INFINITY }, 'Infinity'],
    ['unknown field', { stratgy: 'one_for_one' }, 'stratgy'],
    ['children not an array', { children: ok }, 'children'],
    ['duplicate child id', { children: [ok, ok] }, 'duplicate child id (got "ok")'],
    ['missing id', { children: [{ start: ok.start }] }, 'child spec "id"'],
    ['bad restart', { children: [{ ...ok, restart: 'sometimes' }] }, 'field "restart"'],
    ['bad restart value', { children: [{ ...ok, restart: 'sometimes' }] }, '"sometimes"'],
    ['negative shutdown', { children: [{ ...ok, shutdown: -5 }] }, 'field "shutdown"'],
    ['bad shutdown word', { children: [{ ...ok, shutdown: 'gently' }] }, '"gently"'],
    ['bad type', { children: [{ ...ok, type: 'manager' }] }, 'field "type"'],
    ['missing start', { children: [{ id: 'x' }] }, 'field "start"'],
    ['missing behaviour', { children: [{ id: 'x', start: { args: 1 } }] }, 'start.behaviour'],
    [
      'behaviour without init',
      { children: [{ id: 'x', start: { behaviour: {}, args: 1 } }] },
      'start.behaviour',
    ],
    ['link option', { children: [{ id: 'x', start: { ...ok.start, options: { link: true } } }] }, 'link'],
    ['unknown child field', { children: [{ ...ok, restrat: 'temporary' }] }, 'restrat'],
    [
      'bad nested supervisor spec',
      { children: [Supervisor.supervisorChildSpec('sub', { strategy: 'bogus' as 'one_for_one' })] },
      '"bogus"',
    ],
  ];
  for (const [name, spec, mentions] of cases) {
    it(`rejects ${name} with E_INVALID_ARGUMENT before starting anything`, async () => {
      const rt = new Runtime();
      const err = await Supervisor.start(rt, spec as SupervisorSpec).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toMatchObject({ code: ErrorCodes.INVALID_ARGUMENT });
      expect((err as Error).message).toContain(mentions);
      expect(rt.count).toBe(0);
      await rt.shutdown();
    });
  }

  it('rejects a bad spec given to startChild', async () => {
    const rt = new Runtime();
    const sup = await Supervisor.start(rt, {});
    await expect(Supervisor.startChild(rt, sup, { ...ok, shutdown: Number.NaN })).rejects.toMatchObject({
      code: ErrorCodes.INVALID_ARGUMENT,
      message: expect.stringContaining('NaN'),
    });
    await rt.shutdown();
  });

  it('checks every child spawn option before starting any child', async () => {
    const rt = new Runtime();
    const log: string[] = [];
    const bad = worker('b', log, {}, { options: { priority: 'urgent' as never } });
    await expect(Supervisor.start(rt, { children: [worker('a', log), bad] })).rejects.toMatchObject({
      code: ErrorCodes.INVALID_ARGUMENT,
      message: expect.stringMatching(/child spec "b".*priority.*"urgent"/),
    });
    expect(log).toEqual([]);
    await rt.shutdown();
  });

  it('fills defaults from one place', () => {
    expect(Supervisor.defaults).toEqual({
      strategy: 'one_for_one',
      intensity: 3,
      periodMs: 5000,
      restart: 'permanent',
      type: 'worker',
      workerShutdownMs: 5000,
      supervisorShutdown: 'infinity',
    });
  });
});
