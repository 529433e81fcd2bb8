import { describe, expect, it } from 'vitest';
import {
  AlreadyRegisteredError,
  type AnyRef,
  behaviour,
  ErrorCodes,
  ExitError,
  InitError,
  InvalidArgumentError,
  NoProcessError,
  Runtime,
  RuntimeStoppedError,
  reply,
  stop,
  VirtualClock,
} from '../../src/kernel/index.js';
import { awaitExit, awaitTelemetry, probe } from '../../src/kernel/testkit.js';
import { type Deferred, deferred, flush, runtimeFactory, StuckInTerminate, watch } from './helpers.js';

/** Every runtime a test makes is shut down after it. */
const runtime = runtimeFactory();

/** State is `args`; `get` returns it; terminate reports to `report` if given. */
const Cell = behaviour<
  { value: unknown; report?: AnyRef },
  { value: unknown; report?: AnyRef },
  'get' | 'stop',
  unknown
>({
  init: (args) => args,
  handleCall: (msg, _from, s) => (msg === 'get' ? reply(s.value, s) : stop('normal', s, 'stopping')),
  terminate(reason, s, ctx) {
    if (s.report !== undefined) ctx.send(s.report, { terminated: ctx.self, reason });
  },
});

const AsyncInit = behaviour<Deferred<unknown>, unknown, 'get', unknown>({
  init: (gate) => gate.promise,
  handleCall: (_m, _f, s) => reply(s, s),
});

describe('spawn', () => {
  it('resolves with a ref once a sync init ran; the agent is idle and answers', async () => {
    const rt = runtime();
    const ref = await rt.spawn(Cell, { value: 7 });
    expect(rt.isAlive(ref)).toBe(true);
    expect(rt.info(ref)?.status).toBe('idle');
    expect(await rt.call(ref, 'get')).toBe(7);
    expect(ref.node).toBe(rt.node);
    expect(ref.thread).toBe(0);
  });

  it('resolves only after an async init succeeded; messages sent meanwhile wait in the mailbox', async () => {
    const rt = runtime();
    const gate = deferred<unknown>();
    const spawned = watch(rt.spawn(AsyncInit, gate));
    await flush();
    expect(spawned.current.state).toBe('pending');
    expect(rt.count).toBe(1);
    expect(rt.processes()[0]?.status).toBe('starting');
    gate.resolve('ready');
    await flush();
    expect(spawned.current.state).toBe('fulfilled');
    const ref = (spawned.current as { value: AnyRef }).value;
    expect(await rt.call(ref, 'get')).toBe('ready');
  });

  it('rejects with E_INIT_FAILED carrying the cause when init throws, and leaves nothing behind', async () => {
    const rt = runtime();
    const cause = new Error('bad config');
    const Failing = behaviour<void, never>({
      init() {
        throw cause;
      },
    });
    const error = (await rt
      .spawn(Failing, undefined, { name: 'failing' })
      .catch((e: unknown) => e)) as InitError;
    expect(error).toBeInstanceOf(InitError);
    expect(error.code).toBe(ErrorCodes.INIT_FAILED);
    expect(error.cause).toBe(cause);
    expect(error.message).toContain('bad config');
    expect(rt.count).toBe(0);
    expect(rt.whereis('failing')).toBeUndefined();
  });

  it('rejects with E_INIT_FAILED when an async init rejects', async () => {
    const rt = runtime();
    const gate = deferred<unknown>();
    const p = rt.spawn(AsyncInit, gate, { name: 'slow' });
    gate.reject(new Error('later'));
    const error = (await p.catch((e: unknown) => e)) as InitError;
    expect(error).toBeInstanceOf(InitError);
    expect((error.cause as Error).message).toBe('later');
    expect(rt.count).toBe(0);
    expect(rt.whereis('slow')).toBeUndefined();
  });

  it('a failed init does not send exit signals to agents linked during init (the agent never lived)', async () => {
    const rt = runtime();
    const report = probe(rt);
    const LinkThenFail = behaviour<AnyRef, never>({
      init(other, ctx) {
        ctx.link(other);
        throw new Error('no');
      },
    });
    await expect(rt.spawn(LinkThenFail, report.ref)).rejects.toBeInstanceOf(InitError);
    expect(rt.isAlive(report.ref)).toBe(true);
    expect(rt.info(report.ref)?.links).toBe(0);
  });

  it('an agent killed during an async init makes spawn reject with E_EXIT', async () => {
    const rt = runtime();
    const gate = deferred<unknown>();
    const p = rt.spawn(AsyncInit, gate, { name: 'doomed' });
    const ref = rt.whereis('doomed') as AnyRef;
    rt.kill(ref);
    const error = (await p.catch((e: unknown) => e)) as ExitError;
    expect(error).toBeInstanceOf(ExitError);
    expect(error.reason).toBe('killed');
    gate.resolve('too late');
    await flush();
    expect(rt.count).toBe(0);
  });

  it('emits a spawn telemetry event with the pid and name', async () => {
    const rt = runtime();
    const event = awaitTelemetry(rt, ['mabeam', 'agent', 'spawn']);
    const ref = await rt.spawn(Cell, { value: 1 }, { name: 'cell' });
    const { metadata } = await event;
    expect((metadata.pid as AnyRef).equals(ref)).toBe(true);
    expect(metadata.name).toBe('cell');
  });
});

describe('spawnSync', () => {
  it('returns a started agent at once with a sync init', () => {
    const rt = runtime();
    const ref = rt.spawnSync(Cell, { value: 'x' });
    expect(rt.info(ref)?.status).toBe('idle');
  });

  it('throws E_INIT_FAILED when a sync init throws', () => {
    const rt = runtime();
    const Failing = behaviour<void, never>({
      init() {
        throw new Error('sync fail');
      },
    });
    expect(() => rt.spawnSync(Failing, undefined)).toThrow(InitError);
    expect(rt.count).toBe(0);
  });

  it('with an async init the agent is starting; it exits with InitError if init fails', async () => {
    const rt = runtime();
    const gate = deferred<unknown>();
    const ref = rt.spawnSync(AsyncInit, gate);
    expect(rt.info(ref)?.status).toBe('starting');
    const pending = watch(rt.call(ref, 'get'));
    const exit = awaitExit(rt, ref);
    gate.reject(new Error('async fail'));
    const reason = await exit;
    expect(reason).toBeInstanceOf(InitError);
    await flush();
    expect(pending.current.state).toBe('rejected');
    expect(((pending.current as { reason: unknown }).reason as ExitError).code).toBe(ErrorCodes.EXIT);
  });

  it('with an async init that succeeds, queued messages run afterwards', async () => {
    const rt = runtime();
    const gate = deferred<unknown>();
    const ref = rt.spawnSync(AsyncInit, gate);
    const answer = rt.call(ref, 'get');
    gate.resolve(42);
    expect(await answer).toBe(42);
  });
});

describe('spawn options', () => {
  it('rejects unknown options and bad values with E_INVALID_ARGUMENT naming the value', async () => {
    const rt = runtime();
    const cases: [unknown, string][] = [
      [{ colour: 'red' }, 'colour'],
      [{ priority: 'urgent' }, 'urgent'],
      [{ trapExit: 'yes' }, 'yes'],
      [{ link: 1 }, '1'],
      [{ link: true }, 'link'],
      [{ name: { n: 1 } }, 'name'],
      [null, 'null'],
    ];
    for (const [options, text] of cases) {
      const error = await rt.spawn(Cell, { value: 0 }, options as never).catch((e: unknown) => e);
      expect(error, JSON.stringify(options)).toBeInstanceOf(InvalidArgumentError);
      expect((error as InvalidArgumentError).code).toBe(ErrorCodes.INVALID_ARGUMENT);
      expect((error as Error).message).toContain(text);
      expect(() => rt.spawnSync(Cell, { value: 0 }, options as never)).toThrow(InvalidArgumentError);
    }
    expect(rt.count).toBe(0);
    expect(rt.registered()).toEqual([]);
  });

  it('rejects a behaviour without init', async () => {
    const rt = runtime();
    await expect(rt.spawn({} as never, undefined)).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(rt.spawn(null as never, undefined)).rejects.toThrow(/behaviour/);
  });

  it('applies priority, trapExit and mailbox options', async () => {
    const rt = runtime();
    const ref = await rt.spawn(
      Cell,
      { value: 0 },
      { priority: 'high', trapExit: true, mailbox: { capacity: 5, overflow: 'drop_newest' } },
    );
    const info = rt.info(ref);
    expect(info?.priority).toBe('high');
    expect(info?.trapExit).toBe(true);
    expect(info?.mailboxCapacity).toBe(5);
    const plain = await rt.spawn(Cell, { value: 0 });
    expect(rt.info(plain)?.priority).toBe('normal');
    expect(rt.info(plain)?.trapExit).toBe(false);
  });
});

describe('runtime options', () => {
  it('rejects bad options with E_INVALID_ARGUMENT naming the value', () => {
    const cases: [unknown, string][] = [
      [{ node: '' }, '""'],
      [{ thread: -1 }, '-1'],
      [{ thread: 1.5 }, '1.5'],
      [{ reductions: 0 }, '0'],
      [{ sliceMs: -2 }, '-2'],
      [{ callTimeoutMs: Number.NaN }, 'NaN'],
      ['fast', 'fast'],
    ];
    for (const [options, text] of cases) {
      let error: unknown;
      try {
        new Runtime(options as never);
      } catch (e) {
        error = e;
      }
      expect(error, JSON.stringify(options)).toBeInstanceOf(InvalidArgumentError);
      expect((error as Error).message).toContain(text);
    }
  });

  it('uses the node and thread given in pids', async () => {
    const rt = runtime({ node: 'n1', thread: 3 });
    const ref = await rt.spawn(Cell, { value: 0 });
    expect(ref.toJSON()).toEqual({ node: 'n1', thread: 3, id: ref.id });
    expect(rt.pid.toJSON()).toEqual({ node: 'n1', thread: 3, id: 0 });
  });
});

describe('names', () => {
  it('registers at spawn, resolves by name and removes the name when the agent exits', async () => {
    const rt = runtime();
    const ref = await rt.spawn(Cell, { value: 'named' }, { name: 'cell' });
    expect(rt.whereis('cell')?.equals(ref)).toBe(true);
    expect(rt.registered()).toEqual(['cell']);
    expect(await rt.call('cell', 'get')).toBe('named');
    expect(rt.info('cell')?.name).toBe('cell');
    const exit = awaitExit(rt, ref);
    rt.kill('cell');
    await exit;
    expect(rt.whereis('cell')).toBeUndefined();
    expect(rt.registered()).toEqual([]);
  });

  it('refuses a name that is taken with E_ALREADY_REGISTERED naming it', async () => {
    const rt = runtime();
    const first = await rt.spawn(Cell, { value: 1 }, { name: 'dup' });
    const error = await rt.spawn(Cell, { value: 2 }, { name: 'dup' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AlreadyRegisteredError);
    expect((error as AlreadyRegisteredError).code).toBe(ErrorCodes.ALREADY_REGISTERED);
    expect((error as Error).message).toContain('"dup"');
    expect((error as Error).message).toContain(String(first));
    expect(rt.count).toBe(1);
  });

  it('register / unregister at run time; symbols and numbers are names too', async () => {
    const rt = runtime();
    const ref = await rt.spawn(Cell, { value: 1 });
    const sym = Symbol('svc');
    rt.register(sym, ref);
    expect(rt.whereis(sym)?.equals(ref)).toBe(true);
    expect(() => rt.register('other', ref)).toThrow(InvalidArgumentError);
    expect(rt.unregister(sym)).toBe(true);
    expect(rt.unregister(sym)).toBe(false);
    expect(rt.whereis(sym)).toBeUndefined();
    rt.register(42, ref);
    expect(await rt.call(42, 'get')).toBe(1);
  });

  it('register refuses a dead agent with E_NOPROC', async () => {
    const rt = runtime();
    const ref = await rt.spawn(Cell, { value: 1 });
    const exit = awaitExit(rt, ref);
    rt.kill(ref);
    await exit;
    expect(() => rt.register('late', ref)).toThrow(NoProcessError);
  });

  it('a name is free again after its agent exits, and does not reach the old agent', async () => {
    const rt = runtime();
    const old = await rt.spawn(Cell, { value: 'old' }, { name: 'svc' });
    await rt.stop(old);
    const fresh = await rt.spawn(Cell, { value: 'new' }, { name: 'svc' });
    expect(fresh.equals(old)).toBe(false);
    expect(await rt.call('svc', 'get')).toBe('new');
  });
});

describe('stale pids', () => {
  it('a pid of an exited agent never reaches the agent that reuses its slot', async () => {
    const rt = runtime();
    const old = await rt.spawn(Cell, { value: 'old' });
    const stalePid = old.toJSON();
    await rt.stop(old);
    const fresh = await rt.spawn(Cell, { value: 'new' });
    expect(fresh.id).not.toBe(old.id);
    expect(rt.isAlive(stalePid)).toBe(false);
    expect(rt.isAlive(old)).toBe(false);
    await expect(rt.call(stalePid, 'get')).rejects.toBeInstanceOf(NoProcessError);
    expect(rt.cast(old as AnyRef, 'x')).toBe(false);
  });
});

describe('stop', () => {
  it('stops after the messages already queued, runs terminate and resolves after the exit', async () => {
    const rt = runtime();
    const report = probe(rt);
    const ref = await rt.spawn(Cell, { value: 1, report: report.ref });
    const answer = rt.call(ref, 'get');
    await rt.stop(ref, { shutdown: 'bye' });
    expect(await answer).toBe(1);
    expect(rt.isAlive(ref)).toBe(false);
    await report.expectMessage({ terminated: ref, reason: { shutdown: 'bye' } });
  });

  it('rejects with E_NOPROC for a dead agent', async () => {
    const rt = runtime();
    await expect(rt.stop('nobody')).rejects.toBeInstanceOf(NoProcessError);
  });

  it('waits for an async terminate', async () => {
    const rt = runtime();
    const gate = deferred();
    const SlowStop = behaviour<void, null>({
      init: () => null,
      terminate: () => gate.promise,
    });
    const ref = await rt.spawn(SlowStop, undefined);
    const stopped = watch(rt.stop(ref));
    await flush();
    expect(stopped.current.state).toBe('pending');
    expect(rt.info(ref)?.status).toBe('exiting');
    // An exiting agent takes no more messages: calls fail at once.
    await expect(rt.call(ref as AnyRef, 'x')).rejects.toBeInstanceOf(NoProcessError);
    expect(rt.cast(ref as AnyRef, 'x')).toBe(false);
    gate.resolve();
    await flush();
    expect(stopped.current.state).toBe('fulfilled');
  });

  it('times out on the runtime clock', async () => {
    const clock = new VirtualClock();
    const rt = runtime({ clock });
    const gate = deferred();
    const SlowStop = behaviour<void, null>({
      init: () => null,
      terminate: () => gate.promise,
    });
    const ref = await rt.spawn(SlowStop, undefined);
    const stopped = watch(rt.stop(ref, 'normal', 100));
    await flush();
    clock.advance(100);
    await flush();
    expect(stopped.current.state).toBe('rejected');
    expect(((stopped.current as { reason: unknown }).reason as { code: string }).code).toBe(
      ErrorCodes.TIMEOUT,
    );
    gate.resolve();
  });

  it('a terminate that throws is reported, and the agent still exits with its reason', async () => {
    const rt = runtime();
    const Bad = behaviour<void, null>({
      init: () => null,
      terminate() {
        throw new Error('terminate failed');
      },
    });
    const ref = await rt.spawn(Bad, undefined);
    const crash = awaitTelemetry(rt, ['mabeam', 'agent', 'crash'], (_m, md) => md.callback === 'terminate');
    const exit = awaitExit(rt, ref);
    await rt.stop(ref, 'normal');
    expect(await exit).toBe('normal');
    expect(((await crash).metadata.error as Error).message).toBe('terminate failed');
  });
});

describe('exit telemetry', () => {
  it('reports every exit with its reason and whether it was normal', async () => {
    const rt = runtime();
    const ref = await rt.spawn(Cell, { value: 1 });
    const event = awaitTelemetry(rt, ['mabeam', 'agent', 'exit'], (_m, md) => (md.pid as AnyRef).equals(ref));
    rt.exit(ref, 'boom');
    const { metadata } = await event;
    expect(metadata).toMatchObject({ reason: 'boom', normal: false });
  });
});

describe('info and processes', () => {
  it('reports status, mailbox, reductions, links, monitors, parent and state size', async () => {
    const rt = runtime();
    const watcher = probe(rt);
    const ref = await rt.spawn(Cell, { value: 'x'.repeat(1000) }, { name: 'big' });
    watcher.ctx.monitor(ref);
    watcher.ctx.link(ref);
    await rt.call(ref, 'get');
    await rt.call(ref, 'get');
    const info = rt.info(ref);
    expect(info).toMatchObject({
      pid: ref.toJSON(),
      name: 'big',
      status: 'idle',
      priority: 'normal',
      mailboxLength: 0,
      dropped: 0,
      reductions: 2,
      links: 1,
      monitors: 1,
      trapExit: false,
      parent: undefined,
    });
    expect(info?.stateBytes).toBeGreaterThan(2000);
    expect(rt.info(ref, { stateSize: false })?.stateBytes).toBeUndefined();
    // JSON-serializable
    expect(JSON.parse(JSON.stringify(info))).toMatchObject({ name: 'big', status: 'idle' });
  });

  it('reports the parent of an agent spawned through ctx.spawn', async () => {
    const rt = runtime();
    const p = probe(rt);
    const child = await p.ctx.spawn(Cell, { value: 1 });
    expect(rt.info(child)?.parent).toEqual(p.ref.toJSON());
    expect(rt.info(child)?.links).toBe(0);
    const linked = await p.ctx.spawnLink(Cell, { value: 2 });
    expect(rt.info(linked)?.links).toBe(1);
  });

  it('info of a dead or unknown agent is undefined', async () => {
    const rt = runtime();
    const ref = await rt.spawn(Cell, { value: 1 });
    await rt.stop(ref);
    expect(rt.info(ref)).toBeUndefined();
    expect(rt.info('nobody')).toBeUndefined();
  });

  it('processes() lists every live agent; count follows spawns and exits', async () => {
    const rt = runtime();
    expect(rt.count).toBe(0);
    const refs = await Promise.all([1, 2, 3].map((v) => rt.spawn(Cell, { value: v })));
    expect(rt.count).toBe(3);
    const listed = rt.processes().map((i) => i.pid.id);
    expect(listed.sort()).toEqual(refs.map((r) => r.id).sort());
    expect(rt.processes()[0]?.stateBytes).toBeUndefined();
    expect(rt.processes({ stateSize: true })[0]?.stateBytes).toBeGreaterThan(0);
    await rt.stop(refs[1] as AnyRef);
    expect(rt.count).toBe(2);
    expect(rt.processes().map((i) => i.pid.id)).not.toContain(refs[1]?.id);
  });
});

describe('shutdown', () => {
  it('stops top-level agents in reverse start order with reason shutdown, running terminate', async () => {
    const rt = new Runtime();
    const log: unknown[] = [];
    const Logged = behaviour<string, string>({
      init: (n) => n,
      terminate(reason, n) {
        log.push([n, reason]);
      },
    });
    await rt.spawn(Logged, 'first');
    await rt.spawn(Logged, 'second');
    await rt.spawn(Logged, 'third');
    await rt.shutdown();
    expect(log).toEqual([
      ['third', 'shutdown'],
      ['second', 'shutdown'],
      ['first', 'shutdown'],
    ]);
    expect(rt.count).toBe(0);
    expect(rt.stopped).toBe(true);
  });

  it('refuses spawning afterwards with E_RUNTIME_STOPPED; calls get E_NOPROC', async () => {
    const rt = new Runtime();
    const ref = await rt.spawn(Cell, { value: 1 });
    await rt.shutdown();
    const error = await rt.spawn(Cell, { value: 2 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RuntimeStoppedError);
    expect((error as RuntimeStoppedError).code).toBe(ErrorCodes.RUNTIME_STOPPED);
    expect((error as Error).message).toContain(rt.node);
    expect(() => rt.spawnSync(Cell, { value: 2 })).toThrow(RuntimeStoppedError);
    await expect(rt.call(ref, 'get')).rejects.toBeInstanceOf(NoProcessError);
    await rt.shutdown(); // idempotent
  });

  it('kills an agent whose terminate does not finish within the timeout (runtime clock)', async () => {
    const clock = new VirtualClock();
    const rt = new Runtime({ clock });
    const report = probe(rt);
    const ref = await rt.spawn(StuckInTerminate, report.ref);
    const exit = awaitExit(rt, ref);
    const done = rt.shutdown(100);
    await report.expectMessage('terminating');
    clock.advance(100);
    await done;
    expect(await exit).toBe('killed');
  });

  it('cancels timers and pending call deadlines', async () => {
    const clock = new VirtualClock();
    const rt = new Runtime({ clock });
    const ref = await rt.spawn(Cell, { value: 1 });
    rt.sendAfter(ref as AnyRef, 'later', 1000);
    rt.sendAfter('someone', 'later', 1000);
    expect(clock.pending).toBeGreaterThan(0);
    await rt.shutdown();
    expect(clock.pending).toBe(0);
  });

  it('kills children of top-level agents too', async () => {
    const rt = new Runtime();
    const p = probe(rt);
    const child = await p.ctx.spawn(Cell, { value: 1 });
    const exit = rt.awaitExit(child);
    await rt.shutdown();
    expect(await exit).toBe('killed');
    expect(rt.count).toBe(0);
  });
});

describe('two runtimes', () => {
  it('do not see each other: pids, names, counts and shutdown are separate', async () => {
    const a = runtime();
    const b = runtime();
    expect(a.node).not.toBe(b.node);
    const ra = await a.spawn(Cell, { value: 'a' }, { name: 'svc' });
    const rb = await b.spawn(Cell, { value: 'b' }, { name: 'svc' });
    expect(ra.id).toBe(rb.id); // same slot numbering, different nodes
    expect(await a.call('svc', 'get')).toBe('a');
    expect(await b.call('svc', 'get')).toBe('b');
    expect(a.isAlive(rb)).toBe(false);
    expect(a.info(rb)).toBeUndefined();
    await expect(a.call(rb, 'get')).rejects.toBeInstanceOf(NoProcessError);
    expect(a.cast(rb.toJSON(), 'x')).toBe(false);
    await a.shutdown();
    expect(b.isAlive(rb)).toBe(true);
    expect(await b.call(rb, 'get')).toBe('b');
    expect(b.count).toBe(1);
  });
});

describe('ctx.local: agent-local storage for libraries', () => {
  it('keeps one value per key per agent, made once, separate between agents', async () => {
    const rt = new Runtime();
    const A = {};
    const B = {};
    let made = 0;
    const Local = behaviour<void, void, 'get', [unknown, unknown, unknown]>({
      init: () => undefined,
      handleCall: (_m, _f, s, ctx) => {
        const a1 = ctx.local(A, () => ({ made: ++made }));
        const b = ctx.local(B, () => ({ made: ++made }));
        const a2 = ctx.local(A, () => ({ made: ++made }));
        return reply([a1, b, a2], s);
      },
    });
    const x = rt.spawnSync(Local, undefined);
    const y = rt.spawnSync(Local, undefined);
    const [xa, xb, xa2] = await rt.call(x, 'get');
    expect(xa).toBe(xa2);
    expect(xb).not.toBe(xa);
    const [xa3, xb3] = await rt.call(x, 'get');
    expect([xa3, xb3]).toEqual([xa, xb]);
    expect(xa3).toBe(xa);
    expect(xb3).toBe(xb);
    const [ya] = await rt.call(y, 'get');
    expect(ya).not.toBe(xa);
    expect(made).toBe(4);
    await rt.shutdown();
  });
});
