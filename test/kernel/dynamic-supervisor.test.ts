import { describe, expect, it } from 'vitest';
import {
  type AnyRef,
  type DynamicChildSpec,
  DynamicSupervisor,
  type DynamicSupervisorRef,
  type DynamicSupervisorSpec,
  ErrorCodes,
  MaxChildrenError,
  MaxRestartsError,
  NoChildError,
  Runtime,
  Supervisor,
  type SupervisorRef,
  VirtualClock,
} from '../../src/kernel/index.js';
import { crash, nextEvent, Worker, type WorkerArgs } from './supervision-fixtures.js';

function worker(
  id: string,
  log: string[] = [],
  extra: Omit<DynamicChildSpec, 'start'> = {},
  args: Partial<WorkerArgs> = {},
): DynamicChildSpec {
  return { id, start: { behaviour: Worker, args: { id, log, trap: true, ...args } }, ...extra };
}

async function refOf(rt: Runtime, sup: DynamicSupervisorRef, id: string): Promise<AnyRef | undefined> {
  return (await DynamicSupervisor.whichChildren(rt, sup)).find((c) => c.id === id)?.ref;
}

describe('DynamicSupervisor', () => {
  it('starts empty and takes children at run time, linked to and parented by it', async () => {
    const rt = new Runtime();
    const sup = await DynamicSupervisor.start(rt);
    expect(await DynamicSupervisor.countChildren(rt, sup)).toEqual({
      specs: 0,
      active: 0,
      supervisors: 0,
      workers: 0,
    });
    const a = await DynamicSupervisor.startChild(rt, sup, worker('a'));
    const b = await DynamicSupervisor.startChild(rt, sup, {
      start: { behaviour: Worker, args: { id: 'b' } },
    });
    expect(await rt.call(a, 'ping')).toBe('pong');
    expect(rt.info(a)?.parent).toEqual(sup.toJSON());
    expect(rt.info(sup)?.trapExit).toBe(true);
    const rows = await DynamicSupervisor.whichChildren(rt, sup);
    expect(rows.map((r) => [r.id, r.status, r.type, r.restart])).toEqual([
      ['a', 'running', 'worker', 'permanent'],
      [undefined, 'running', 'worker', 'permanent'],
    ]);
    expect(rows[1]?.ref?.equals(b)).toBe(true);
    expect(await DynamicSupervisor.countChildren(rt, sup)).toEqual({
      specs: 2,
      active: 2,
      supervisors: 0,
      workers: 2,
    });
    await rt.shutdown();
  });

  it('terminateChild shuts the child down by its policy and forgets it', async () => {
    const rt = new Runtime();
    const log: string[] = [];
    const sup = await DynamicSupervisor.start(rt);
    const a = await DynamicSupervisor.startChild(rt, sup, worker('a', log));
    await DynamicSupervisor.startChild(rt, sup, worker('b', log));
    await DynamicSupervisor.terminateChild(rt, sup, a);
    expect(rt.isAlive(a)).toBe(false);
    expect(log).toEqual(['start:a', 'start:b', 'stop:a']);
    expect((await DynamicSupervisor.whichChildren(rt, sup)).map((r) => r.id)).toEqual(['b']);
    // Also by plain pid, as after crossing a thread boundary.
    const err = await DynamicSupervisor.terminateChild(rt, sup, a.toJSON()).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(NoChildError);
    expect(err).toMatchObject({ code: ErrorCodes.NO_CHILD });
    await rt.shutdown();
  });

  it('refuses children beyond maxChildren with MaxChildrenError', async () => {
    const rt = new Runtime();
    const sup = await DynamicSupervisor.start(rt, { maxChildren: 2 });
    const a = await DynamicSupervisor.startChild(rt, sup, worker('a'));
    await DynamicSupervisor.startChild(rt, sup, worker('b'));
    const err = await DynamicSupervisor.startChild(rt, sup, worker('c')).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(MaxChildrenError);
    expect(err).toMatchObject({ code: ErrorCodes.MAX_CHILDREN });
    expect(rt.count).toBe(3);
    await DynamicSupervisor.terminateChild(rt, sup, a);
    await DynamicSupervisor.startChild(rt, sup, worker('c'));
    expect((await DynamicSupervisor.whichChildren(rt, sup)).map((r) => r.id)).toEqual(['b', 'c']);
    await rt.shutdown();
  });

  it('restarts a crashed permanent child in place (one_for_one), with a new ref', async () => {
    const rt = new Runtime();
    const log: string[] = [];
    const sup = await DynamicSupervisor.start(rt);
    const a = await DynamicSupervisor.startChild(rt, sup, worker('a', log));
    const b = await DynamicSupervisor.startChild(rt, sup, worker('b', log));
    const c = await DynamicSupervisor.startChild(rt, sup, worker('c', log));
    const restarted = nextEvent(rt, ['mabeam', 'supervisor', 'restart']);
    log.length = 0;
    await crash(rt, b);
    const rows = await DynamicSupervisor.whichChildren(rt, sup);
    expect(rows.map((r) => r.id)).toEqual(['a', 'b', 'c']);
    expect(rows[0]?.ref?.equals(a)).toBe(true);
    expect(rows[1]?.ref?.equals(b)).toBe(false);
    expect(rows[2]?.ref?.equals(c)).toBe(true);
    expect(log).toEqual(['stop:b', 'start:b']);
    const meta = await restarted;
    expect(meta).toMatchObject({ child: 'b', pid: b });
    expect((meta.supervisor as AnyRef).equals(sup)).toBe(true);
    // The old ref is no child any more.
    await expect(DynamicSupervisor.terminateChild(rt, sup, b)).rejects.toBeInstanceOf(NoChildError);
    await rt.shutdown();
  });

  it('forgets temporary children on any exit and transient ones on a normal exit', async () => {
    const rt = new Runtime();
    const sup = await DynamicSupervisor.start(rt);
    const tmp = await DynamicSupervisor.startChild(rt, sup, worker('tmp', [], { restart: 'temporary' }));
    const tr = await DynamicSupervisor.startChild(rt, sup, worker('tr', [], { restart: 'transient' }));
    await crash(rt, tmp);
    await crash(rt, tr);
    const tr2 = await refOf(rt, sup, 'tr');
    expect(tr2?.equals(tr)).toBe(false);
    rt.cast(tr2 as AnyRef, 'finish');
    await rt.awaitExit(tr2 as AnyRef);
    expect(await DynamicSupervisor.whichChildren(rt, sup)).toEqual([]);
    await rt.shutdown();
  });

  it('gives up past its restart intensity, shutting children down, and allows restarts again after the period', async () => {
    const clock = new VirtualClock();
    const rt = new Runtime({ clock });
    const log: string[] = [];
    const sup = await DynamicSupervisor.start(rt, { intensity: 1, periodMs: 100 });
    await DynamicSupervisor.startChild(rt, sup, worker('a', log));
    const b = await DynamicSupervisor.startChild(rt, sup, worker('b', log));
    await crash(rt, (await refOf(rt, sup, 'a')) as AnyRef);
    clock.advance(101);
    await crash(rt, (await refOf(rt, sup, 'a')) as AnyRef);
    expect(rt.isAlive(sup)).toBe(true);
    const gaveUp = nextEvent(rt, ['mabeam', 'supervisor', 'shutdown']);
    log.length = 0;
    rt.cast((await refOf(rt, sup, 'a')) as AnyRef, 'crash');
    expect(await rt.awaitExit(sup)).toBeInstanceOf(MaxRestartsError);
    expect(await gaveUp).toMatchObject({ child: 'a' });
    expect(log).toEqual(['stop:a', 'stop:b']);
    expect(rt.isAlive(b)).toBe(false);
    await rt.shutdown();
  });

  it('shuts children down in reverse start order, killing one that outlasts its timeout', async () => {
    const clock = new VirtualClock();
    const rt = new Runtime({ clock });
    const log: string[] = [];
    let entered!: () => void;
    const hanging = new Promise<void>((resolve) => {
      entered = resolve;
    });
    const sup = await DynamicSupervisor.start(rt);
    for (const id of ['a', 'b']) await DynamicSupervisor.startChild(rt, sup, worker(id, log));
    const h = await DynamicSupervisor.startChild(
      rt,
      sup,
      worker('h', log, { shutdown: 50 }, { hang: true, onTerminate: entered }),
    );
    await DynamicSupervisor.startChild(rt, sup, worker('c', log));
    const hExit = rt.awaitExit(h);
    log.length = 0;
    const stopped = rt.stop(sup);
    await hanging;
    expect(log).toEqual(['stop:c', 'stop:h']);
    clock.advance(50);
    expect(await hExit).toBe('killed');
    await stopped;
    expect(log).toEqual(['stop:c', 'stop:h', 'stop:b', 'stop:a']);
    expect(rt.count).toBe(0);
    await rt.shutdown();
  });

  it('rejects bad specs with E_INVALID_ARGUMENT', async () => {
    const rt = new Runtime();
    const bad: [unknown, string][] = [
      [{ maxChildren: -1 }, 'maxChildren'],
      [{ maxChildren: 1.5 }, '1.5'],
      [{ intensity: -2 }, 'intensity'],
      [{ strategy: 'one_for_all' }, 'strategy'],
      [null, 'dynamic supervisor spec'],
    ];
    for (const [spec, mentions] of bad) {
      const err = await DynamicSupervisor.start(rt, spec as DynamicSupervisorSpec).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toMatchObject({ code: ErrorCodes.INVALID_ARGUMENT });
      expect((err as Error).message).toContain(mentions);
    }
    expect(rt.count).toBe(0);
    const sup = await DynamicSupervisor.start(rt);
    const badChildren: [unknown, string][] = [
      [{ start: { args: 1 } }, 'start.behaviour'],
      [{ start: { behaviour: Worker, args: { id: 'x' } }, restart: 'often' }, '"often"'],
      [{ start: { behaviour: Worker, args: { id: 'x' } }, shutdown: -1 }, '-1'],
      [{ id: '', start: { behaviour: Worker, args: { id: 'x' } } }, 'child spec "id"'],
    ];
    for (const [spec, mentions] of badChildren) {
      const err = await DynamicSupervisor.startChild(rt, sup, spec as DynamicChildSpec).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toMatchObject({ code: ErrorCodes.INVALID_ARGUMENT });
      expect((err as Error).message).toContain(mentions);
    }
    expect(await DynamicSupervisor.countChildren(rt, sup)).toMatchObject({ specs: 0 });
    await rt.shutdown();
  });

  it('escalates to a static parent supervisor, which restarts it empty', async () => {
    const rt = new Runtime();
    const root = await Supervisor.start(rt, {
      children: [DynamicSupervisor.childSpec('pool', { intensity: 0 })],
    });
    const [row] = await Supervisor.whichChildren(rt, root);
    expect(row).toMatchObject({ id: 'pool', type: 'supervisor', status: 'running' });
    const pool = row?.ref as DynamicSupervisorRef;
    const a = await DynamicSupervisor.startChild(rt, pool, worker('a'));
    await crash(rt, a);
    expect(await rt.awaitExit(pool)).toBeInstanceOf(MaxRestartsError);
    const [row2] = await Supervisor.whichChildren(rt, root as SupervisorRef);
    expect(row2?.ref?.equals(pool)).toBe(false);
    expect(await DynamicSupervisor.countChildren(rt, row2?.ref as DynamicSupervisorRef)).toMatchObject({
      specs: 0,
    });
    await rt.shutdown();
  });

  it('runs supervisors as children too (type supervisor, shutdown infinity)', async () => {
    const rt = new Runtime();
    const log: string[] = [];
    const sup = await DynamicSupervisor.start(rt);
    const sub = await DynamicSupervisor.startChild(rt, sup, {
      ...Supervisor.supervisorChildSpec('sub', {
        children: [Supervisor.childSpec('x', Worker, { id: 'x', log, trap: true })],
      }),
    });
    expect(await DynamicSupervisor.countChildren(rt, sup)).toEqual({
      specs: 1,
      active: 1,
      supervisors: 1,
      workers: 0,
    });
    expect((await Supervisor.whichChildren(rt, sub as SupervisorRef)).map((c) => c.id)).toEqual(['x']);
    log.length = 0;
    await rt.shutdown();
    expect(log).toEqual(['stop:x']);
  });
});
