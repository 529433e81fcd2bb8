import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  AGENT_FAILED,
  AGENT_RESTARTED,
  AGENT_STARTED,
  AGENT_STOPPED,
  AgentExistsError,
  AgentRegistry,
  AgentRegistryErrorCodes,
  type AgentRestartPolicy,
  type AgentSpec,
  AgentStartFailedError,
  checkAgentSpec,
  UnknownAgentError,
} from '../../src/agents/agent-registry.js';
import {
  type AnyRef,
  behaviour,
  ErrorCodes,
  InitError,
  InvalidArgumentError,
  MaxChildrenError,
  MaxRestartsError,
  Runtime,
  reply,
  stop,
  VirtualClock,
} from '../../src/kernel/index.js';
import { awaitTelemetry, probe } from '../../src/kernel/testkit.js';
import { deferred, runtimeFactory, StuckInTerminate } from '../kernel/helpers.js';

const runtime = runtimeFactory();

type WorkerCall = 'ping' | 'health' | 'count' | 'config';
/** `hold` keeps the agent busy in its handler until the promise settles: a stuck agent. */
type WorkerCast = 'inc' | 'crash' | 'quit' | { readonly hold: Promise<void> };
interface WorkerState {
  readonly n: number;
  readonly config: unknown;
}

const Worker = behaviour<unknown, WorkerState, WorkerCall, unknown, WorkerCast, unknown>({
  init: (config) => ({ n: 0, config }),
  handleCall(msg, _from, s) {
    if (msg === 'count') return reply(s.n, s);
    if (msg === 'config') return reply(s.config, s);
    if (msg === 'health') return reply('ok', s);
    return reply('pong', s);
  },
  handleCast(msg, s) {
    if (msg === 'inc') return { ...s, n: s.n + 1 };
    if (msg === 'crash') throw new Error('boom');
    if (msg === 'quit') return stop('normal', s);
    return msg.hold.then(() => s);
  },
});

const FailingInit = behaviour<unknown, never>({
  init() {
    throw new Error('cannot start');
  },
});

function spec(id: string, extra: Partial<AgentSpec> = {}): AgentSpec {
  return { id, type: 'worker', capabilities: ['compute'], behaviour: Worker, ...extra };
}

async function setup(options: Parameters<typeof AgentRegistry.start>[1] = {}, rt: Runtime = runtime()) {
  const agents = await AgentRegistry.start(rt, options);
  return { rt, agents };
}

/** The event for agent `id` (subscribe before doing what emits it). */
function eventFor(rt: Runtime, event: readonly string[], id: string) {
  return awaitTelemetry(rt, event, (_m, md) => md.id === id);
}

async function expectCode(promise: Promise<unknown>, code: string): Promise<unknown> {
  const error = await promise.then(
    () => {
      throw new Error(`expected a rejection with ${code}`);
    },
    (e: unknown) => e,
  );
  expect(error).toMatchObject({ code });
  return error;
}

function ids(rows: readonly { id: string }[]): string[] {
  return rows.map((r) => r.id).sort();
}

describe('AgentRegistry: registration and finding', () => {
  it('registers, starts, and finds agents by capability and type through the index', async () => {
    const { rt, agents } = await setup();
    await agents.register(spec('a', { capabilities: ['compute', 'vision'], config: { lr: 0.1 } }));
    await agents.register(spec('b', { type: 'trainer', capabilities: ['compute'] }));
    await agents.register(spec('c', { type: 'trainer', capabilities: ['nlp'], metadata: { gpu: true } }));
    expect(agents.status('a')).toBe('registered');
    expect(agents.whereis('a')).toBeUndefined();

    const a = await agents.start('a');
    expect(rt.isAlive(a)).toBe(true);
    expect(agents.status('a')).toBe('running');
    expect(agents.whereis('a')).toBe(a);
    expect(await rt.call(a, 'config')).toEqual({ lr: 0.1 });

    expect(ids(agents.findByCapability('compute'))).toEqual(['a', 'b']);
    expect(ids(agents.findByCapability('vision'))).toEqual(['a']);
    expect(agents.findByCapability('nothing')).toEqual([]);
    expect(ids(agents.findByType('trainer'))).toEqual(['b', 'c']);
    expect(agents.findByType('worker')).toMatchObject([{ id: 'a', status: 'running', pid: a }]);
    expect(ids(agents.list())).toEqual(['a', 'b', 'c']);
    expect(ids(agents.list({ status: 'running' }))).toEqual(['a']);
    expect(ids(agents.list({ status: 'registered', type: 'trainer' }))).toEqual(['b', 'c']);
    expect(ids(agents.list({ capability: 'compute', status: 'running' }))).toEqual(['a']);
    expect(agents.info('c')).toMatchObject({
      id: 'c',
      type: 'trainer',
      capabilities: ['nlp'],
      restart: 'permanent',
      metadata: { gpu: true },
      status: 'registered',
      pid: undefined,
      restarts: 0,
      startedAt: undefined,
      lastExitReason: undefined,
    });
    // The finds are registry selects: the read model holds every spec and each running agent.
    expect(agents.registry.select('agents', { capabilities: 'compute' })).toHaveLength(2);
    expect(agents.registry.lookup('running', 'a')).toBe(a);
  });

  it('rejects a duplicate id with E_AGENT_EXISTS, also when both registrations race', async () => {
    const { agents } = await setup();
    await agents.register(spec('a'));
    const error = await expectCode(agents.register(spec('a')), AgentRegistryErrorCodes.EXISTS);
    expect(error).toBeInstanceOf(AgentExistsError);
    expect((error as Error).message).toContain('"a"');
    const [first, second] = await Promise.allSettled([
      agents.register(spec('b')),
      agents.register(spec('b')),
    ]);
    expect(first.status).toBe('fulfilled');
    expect(second).toMatchObject({ status: 'rejected', reason: { code: 'E_AGENT_EXISTS' } });
    expect(agents.findByType('worker')).toHaveLength(2);
  });

  it('answers an unknown id with E_AGENT_UNKNOWN from every operation', async () => {
    const { agents } = await setup();
    for (const read of [
      () => agents.status('x'),
      () => agents.info('x'),
      () => agents.whereis('x'),
      () => agents.metrics('x'),
    ]) {
      expect(read).toThrow(UnknownAgentError);
    }
    expect(() => agents.status('x')).toThrow(/"x" is not registered/);
    for (const op of [
      agents.start('x'),
      agents.stop('x'),
      agents.restart('x'),
      agents.unregister('x'),
      agents.health('x'),
    ]) {
      await expectCode(op, AgentRegistryErrorCodes.UNKNOWN);
    }
  });

  it('validates specs up front, naming the field', async () => {
    const { agents } = await setup();
    const cases: [unknown, RegExp][] = [
      [null, /agent spec: must be a plain object/],
      [{ ...spec('a'), id: '' }, /field "id"/],
      [{ ...spec('a'), id: 7 }, /field "id"/],
      [{ ...spec('a'), type: '' }, /"a" field "type"/],
      [{ ...spec('a'), capabilities: 'compute' }, /"a" field "capabilities"/],
      [{ ...spec('a'), capabilities: ['ok', 3] }, /"a" field "capabilities\[1\]".*got 3/],
      [{ ...spec('a'), capabilities: ['x', 'x'] }, /"capabilities\[1\]": is a duplicate/],
      [{ ...spec('a'), behaviour: undefined }, /"a" field "behaviour"/],
      [{ ...spec('a'), behaviour: { handleCall() {} } }, /"a" field "behaviour"/],
      [{ ...spec('a'), restart: 'sometimes' }, /"a" field "restart".*"sometimes"/],
      [{ ...spec('a'), metadata: [1] }, /"a" field "metadata"/],
      [{ ...spec('a'), shutdown: -1 }, /"a" field "shutdown"/],
      [{ ...spec('a'), spawn: { name: 'n' } }, /"a" field "spawn.name"/],
      [{ ...spec('a'), spawn: { priority: 'urgent' } }, /"a" field "spawn"/],
      [{ ...spec('a'), health: { timeoutMs: 0 } }, /"a" field "health.timeoutMs"/],
      [{ ...spec('a'), health: { maxMailbox: 1.5 } }, /"a" field "health.maxMailbox"/],
      [{ ...spec('a'), health: { check: 'yes' } }, /"a" field "health.check"/],
      [{ ...spec('a'), colour: 'red' }, /"a" field "colour": unknown field/],
    ];
    for (const [bad, message] of cases) {
      expect(() => checkAgentSpec(bad)).toThrow(message);
      const error = await expectCode(agents.register(bad as AgentSpec), ErrorCodes.INVALID_ARGUMENT);
      expect(error).toBeInstanceOf(InvalidArgumentError);
    }
    expect(agents.list()).toEqual([]);
    // Defaults are filled in and the spec is frozen.
    const resolved = checkAgentSpec({ id: 'a', type: 't', behaviour: Worker });
    expect(resolved).toMatchObject({ capabilities: [], restart: 'permanent', metadata: {} });
    expect(Object.isFrozen(resolved.capabilities)).toBe(true);
  });

  it('rejects bad options and bad read arguments with InvalidArgumentError', async () => {
    const rt = runtime();
    await expect(AgentRegistry.start(rt, { intensity: -1 })).rejects.toThrow(/option "intensity"/);
    await expect(AgentRegistry.start(rt, { periodMs: 0 })).rejects.toThrow(/option "periodMs"/);
    await expect(AgentRegistry.start(rt, { health: { maxMailbox: -1 } })).rejects.toThrow(
      /option "health.maxMailbox"/,
    );
    await expect(AgentRegistry.start(rt, { nope: 1 } as never)).rejects.toThrow(/option "nope"/);
    const { agents } = await setup({}, rt);
    expect(() => agents.findByCapability('')).toThrow(InvalidArgumentError);
    expect(() => agents.status(3 as never)).toThrow(/agent id/);
    expect(() => agents.list({ status: 'gone' as never })).toThrow(/field "status"/);
    expect(() => agents.list({ kind: 'x' } as never)).toThrow(/field "kind"/);
  });
});

describe('AgentRegistry: supervision', () => {
  it('restarts a crashed agent with a new pid, and whereis follows it', async () => {
    const { rt, agents } = await setup();
    await agents.register(spec('a'));
    const first = await agents.start('a');
    const restarted = eventFor(rt, AGENT_RESTARTED, 'a');
    rt.cast(first, 'crash');
    const { metadata, measurements } = await restarted;
    expect(metadata).toMatchObject({ cause: 'exit', reason: { message: 'boom' } });
    expect(measurements.restarts).toBe(1);
    const second = agents.whereis('a') as AnyRef;
    expect(second).toBeDefined();
    expect(second.equals(first)).toBe(false);
    expect(rt.isAlive(first)).toBe(false);
    expect(rt.isAlive(second)).toBe(true);
    expect(agents.status('a')).toBe('running');
    expect(agents.info('a')).toMatchObject({ restarts: 1, pid: second, lastExitReason: { message: 'boom' } });
    expect(await rt.call(second, 'ping')).toBe('pong');
    // A kill restarts it too; the read model never holds the dead pid.
    const again = eventFor(rt, AGENT_RESTARTED, 'a');
    rt.kill(second);
    expect(agents.whereis('a')).toBeUndefined();
    expect(agents.status('a')).toBe('restarting');
    await again;
    expect(agents.whereis('a')?.equals(second)).toBe(false);
    expect(agents.info('a').restarts).toBe(2);
  });

  it('transient agents restart after a crash but not after a normal exit', async () => {
    const { rt, agents } = await setup();
    await agents.register(spec('t', { restart: 'transient' }));
    const first = await agents.start('t');
    const restarted = eventFor(rt, AGENT_RESTARTED, 't');
    rt.cast(first, 'crash');
    await restarted;
    const second = agents.whereis('t') as AnyRef;
    expect(second.equals(first)).toBe(false);

    const stopped = eventFor(rt, AGENT_STOPPED, 't');
    rt.cast(second, 'quit');
    expect((await stopped).metadata.reason).toBe('normal');
    expect(agents.status('t')).toBe('stopped');
    expect(agents.whereis('t')).toBeUndefined();
    expect(agents.info('t')).toMatchObject({ restarts: 1, lastExitReason: 'normal' });
    // A stopped agent can be started again.
    const third = await agents.start('t');
    expect(agents.whereis('t')).toBe(third);
  });

  it('temporary agents are never restarted: a crash leaves them failed, a normal exit stopped', async () => {
    const { rt, agents } = await setup();
    await agents.register(spec('tmp', { restart: 'temporary' }));
    const ref = await agents.start('tmp');
    const failed = eventFor(rt, AGENT_FAILED, 'tmp');
    rt.kill(ref);
    expect((await failed).metadata.reason).toBe('killed');
    expect(agents.status('tmp')).toBe('failed');
    expect(agents.info('tmp')).toMatchObject({ restarts: 0, pid: undefined, lastExitReason: 'killed' });

    const again = await agents.start('tmp');
    const stopped = eventFor(rt, AGENT_STOPPED, 'tmp');
    rt.cast(again, 'quit');
    await stopped;
    expect(agents.status('tmp')).toBe('stopped');
  });

  it('permanent agents restart after a normal exit too', async () => {
    const { rt, agents } = await setup();
    await agents.register(spec('p'));
    const ref = await agents.start('p');
    const restarted = eventFor(rt, AGENT_RESTARTED, 'p');
    rt.cast(ref, 'quit');
    expect((await restarted).metadata).toMatchObject({ cause: 'exit', reason: 'normal' });
    expect(agents.status('p')).toBe('running');
  });

  it('marks the agents failed when the supervisor gives up, and says so on every start', async () => {
    const clock = new VirtualClock();
    const { rt, agents } = await setup({ intensity: 1, periodMs: 1000 }, runtime({ clock }));
    await agents.register(spec('a'));
    await agents.register(spec('b'));
    await agents.register(spec('idle'));
    await agents.start('a');
    const b = await agents.start('b');
    const firstRestart = eventFor(rt, AGENT_RESTARTED, 'a');
    rt.cast(agents.whereis('a') as AnyRef, 'crash');
    await firstRestart;
    const failedA = eventFor(rt, AGENT_FAILED, 'a');
    const failedB = eventFor(rt, AGENT_FAILED, 'b');
    rt.cast(agents.whereis('a') as AnyRef, 'crash'); // a second restart within the period: too many
    const [ea, eb] = await Promise.all([failedA, failedB]);
    expect(ea.metadata.reason).toBeInstanceOf(MaxRestartsError);
    expect(eb.metadata).toMatchObject({ exitReason: 'shutdown' });
    await rt.awaitExit(agents.supervisor);

    expect(agents.status('a')).toBe('failed');
    expect(agents.status('b')).toBe('failed');
    expect(agents.status('idle')).toBe('registered');
    expect(rt.isAlive(b)).toBe(false);
    expect(agents.whereis('b')).toBeUndefined();
    expect(agents.supervisorFailure).toBeInstanceOf(MaxRestartsError);
    const error = await expectCode(agents.start('idle'), AgentRegistryErrorCodes.SUPERVISOR_DOWN);
    expect((error as Error).message).toMatch(/exceeded 1 restarts/);
    await expectCode(agents.restart('a'), AgentRegistryErrorCodes.SUPERVISOR_DOWN);
    await agents.stop('a'); // nothing runs: stop has nothing to do
    expect(agents.status('a')).toBe('failed');
    const health = await agents.health();
    expect(health).toMatchObject({ healthy: false, supervisor: 'failed' });
    expect(health.agents.map((h) => [h.id, h.problem])).toEqual([
      ['a', 'not_running'],
      ['b', 'not_running'],
    ]);
    // Registration and reads keep working.
    await agents.register(spec('late'));
    expect(ids(agents.findByType('worker'))).toEqual(['a', 'b', 'idle', 'late']);
  });

  it('reports a failed init as E_AGENT_START_FAILED and leaves the agent failed', async () => {
    const { rt, agents } = await setup();
    await agents.register({ id: 'bad', type: 'worker', capabilities: [], behaviour: FailingInit });
    const failed = eventFor(rt, AGENT_FAILED, 'bad');
    const error = await expectCode(agents.start('bad'), AgentRegistryErrorCodes.START_FAILED);
    expect(error).toBeInstanceOf(AgentStartFailedError);
    expect((error as Error).cause).toBeInstanceOf(InitError);
    expect((error as Error).message).toMatch(/"bad" failed to start.*cannot start/);
    await failed;
    expect(agents.status('bad')).toBe('failed');
    expect(agents.info('bad').lastExitReason).toBeInstanceOf(InitError);
    expect(rt.isAlive(agents.supervisor)).toBe(true);
  });

  it('refuses to start past maxAgents with MaxChildrenError, leaving the agent as it was', async () => {
    const { agents } = await setup({ maxAgents: 1 });
    await agents.register(spec('a'));
    await agents.register(spec('b'));
    await agents.start('a');
    await expect(agents.start('b')).rejects.toBeInstanceOf(MaxChildrenError);
    expect(agents.status('b')).toBe('registered');
    await agents.stop('a');
    await agents.start('b');
    expect(agents.status('b')).toBe('running');
  });
});

describe('AgentRegistry: stop, restart, unregister', () => {
  it('stops an agent and restarts it with a new pid', async () => {
    const { rt, agents } = await setup();
    await agents.register(spec('a'));
    const started = eventFor(rt, AGENT_STARTED, 'a');
    const first = await agents.start('a');
    expect((await started).metadata.pid).toBe(first);
    await expectCode(agents.start('a'), AgentRegistryErrorCodes.RUNNING);

    const manual = eventFor(rt, AGENT_RESTARTED, 'a');
    const second = await agents.restart('a');
    expect((await manual).metadata.cause).toBe('manual');
    expect(second.equals(first)).toBe(false);
    expect(rt.isAlive(first)).toBe(false);
    expect(agents.whereis('a')).toBe(second);
    expect(agents.info('a').restarts).toBe(1);

    const stopped = eventFor(rt, AGENT_STOPPED, 'a');
    await agents.stop('a');
    expect((await stopped).metadata).toMatchObject({ reason: 'shutdown', pid: second, status: 'stopped' });
    expect(agents.status('a')).toBe('stopped');
    expect(agents.whereis('a')).toBeUndefined();
    expect(rt.isAlive(second)).toBe(false);
    await agents.stop('a'); // already stopped: nothing to do

    // restart of a stopped agent simply starts it
    const startedAgain = eventFor(rt, AGENT_STARTED, 'a');
    const third = await agents.restart('a');
    await startedAgain;
    expect(agents.whereis('a')).toBe(third);
    expect(agents.info('a').restarts).toBe(1);
  });

  it('serializes operations on one agent issued without waiting', async () => {
    const { agents } = await setup();
    const registered = agents.register(spec('a'));
    const started = agents.start('a');
    const stopped = agents.stop('a');
    const restarted = agents.restart('a');
    await registered;
    await started;
    await stopped;
    const ref = await restarted;
    expect(agents.status('a')).toBe('running');
    expect(agents.whereis('a')).toBe(ref);
  });

  it('stop during a restart waits for it, then stops the new incarnation for good', async () => {
    const { rt, agents } = await setup();
    const gate = deferred();
    const restarting = deferred();
    let inits = 0;
    const SlowRestart = behaviour<void, null, 'ping', string, 'crash'>({
      async init() {
        if (inits++ > 0) {
          restarting.resolve();
          await gate.promise;
        }
        return null;
      },
      handleCall: (_msg, _from, s) => reply('pong', s),
      handleCast() {
        throw new Error('boom');
      },
    });
    await agents.register({ id: 'slow', type: 'worker', behaviour: SlowRestart });
    const first = await agents.start('slow');
    rt.cast(first, 'crash');
    expect(agents.status('slow')).toBe('restarting');
    let done = false;
    const stopping = agents.stop('slow').then(() => {
      done = true;
    });
    const restarted = eventFor(rt, AGENT_RESTARTED, 'slow');
    await restarting.promise; // the supervisor is in the new incarnation's init
    expect(agents.status('slow')).toBe('restarting');
    expect(done).toBe(false);
    gate.resolve();
    const { metadata } = await restarted;
    await stopping;
    expect(rt.isAlive(metadata.pid as AnyRef)).toBe(false);
    expect(agents.info('slow')).toMatchObject({ status: 'stopped', restarts: 1, pid: undefined });
  });

  it('stop waits for terminate, and kills an agent stuck in it after its shutdown time', async () => {
    const clock = new VirtualClock();
    const rt = runtime({ clock });
    const { agents } = await setup({}, rt);
    const p = probe(rt);
    await agents.register({
      id: 'stuck',
      type: 'worker',
      behaviour: StuckInTerminate,
      config: p.ref,
      shutdown: 200,
      spawn: { trapExit: true },
    });
    const ref = await agents.start('stuck');
    let done = false;
    const stopping = agents.stop('stuck').then(() => {
      done = true;
    });
    await p.expectMessage('terminating');
    expect(done).toBe(false);
    expect(agents.status('stuck')).toBe('running');
    clock.advance(200);
    await stopping;
    expect(rt.isAlive(ref)).toBe(false);
    expect(agents.info('stuck')).toMatchObject({ status: 'stopped', lastExitReason: 'killed' });
  });

  it('unregister stops the agent and frees its id', async () => {
    const { rt, agents } = await setup();
    await agents.register(spec('a'));
    const ref = await agents.start('a');
    const stopped = eventFor(rt, AGENT_STOPPED, 'a');
    await agents.unregister('a');
    await stopped;
    expect(rt.isAlive(ref)).toBe(false);
    expect(() => agents.status('a')).toThrow(UnknownAgentError);
    expect(agents.findByCapability('compute')).toEqual([]);
    expect(agents.registry.count()).toBe(0);
    await agents.register(spec('a', { type: 'other' }));
    expect(agents.findByType('other')).toMatchObject([{ id: 'a', status: 'registered' }]);
  });

  it('shutdown stops every agent and refuses later operations', async () => {
    const { rt, agents } = await setup();
    await agents.register(spec('a'));
    const ref = await agents.start('a');
    const stopped = eventFor(rt, AGENT_STOPPED, 'a');
    await agents.shutdown();
    await stopped;
    expect(rt.isAlive(ref)).toBe(false);
    expect(rt.isAlive(agents.root)).toBe(false);
    expect(agents.stopped).toBe(true);
    expect(() => agents.status('a')).toThrow(expect.objectContaining({ code: 'E_AGENT_REGISTRY_STOPPED' }));
    await expectCode(agents.register(spec('b')), AgentRegistryErrorCodes.STOPPED);
    await expectCode(agents.start('a'), AgentRegistryErrorCodes.STOPPED);
    await agents.shutdown(); // joins
  });

  it('keeps working when the registry owner crashes: the root restarts it on the same read model', async () => {
    const { rt, agents } = await setup();
    await agents.register(spec('a'));
    const owner = agents.registry.owner as AnyRef;
    const back = awaitTelemetry(rt, ['mabeam', 'agent', 'spawn'], () => agents.registry.owner !== undefined);
    rt.kill(owner);
    await back;
    expect(agents.registry.owner?.equals(owner)).toBe(false);
    expect(ids(agents.findByType('worker'))).toEqual(['a']);
    await agents.start('a');
    await agents.register(spec('b'));
    expect(ids(agents.list())).toEqual(['a', 'b']);
  });
});

describe('AgentRegistry: metrics and health', () => {
  it('metrics move as the agent handles messages, and uptime follows the runtime clock', async () => {
    const clock = new VirtualClock(1000);
    const { rt, agents } = await setup({}, runtime({ clock }));
    await agents.register(spec('a'));
    expect(agents.metrics('a')).toEqual({
      id: 'a',
      status: 'registered',
      restarts: 0,
      messagesProcessed: 0,
      mailboxLength: 0,
      uptimeMs: 0,
    });
    const ref = await agents.start('a');
    const before = agents.metrics('a').messagesProcessed;
    for (let i = 0; i < 5; i++) rt.cast(ref, 'inc');
    expect(await rt.call(ref, 'count')).toBe(5);
    clock.advance(250);
    expect(agents.metrics('a')).toMatchObject({
      status: 'running',
      messagesProcessed: before + 6,
      mailboxLength: 0,
      uptimeMs: 250,
    });
    expect(agents.info('a').startedAt).toBe(1000);

    // A held agent piles up messages.
    const gate = deferred();
    rt.cast(ref, { hold: gate.promise });
    rt.cast(ref, 'inc');
    rt.cast(ref, 'inc');
    expect(agents.metrics('a').mailboxLength).toBe(2);
    gate.resolve();
    expect(await rt.call(ref, 'count')).toBe(7);

    const restarted = eventFor(rt, AGENT_RESTARTED, 'a');
    rt.cast(ref, 'crash');
    await restarted;
    expect(agents.metrics('a')).toMatchObject({ restarts: 1, messagesProcessed: 0, uptimeMs: 0 });
  });

  it('a health call answered in time is healthy; a stuck agent is not (VirtualClock)', async () => {
    const clock = new VirtualClock();
    const { rt, agents } = await setup({}, runtime({ clock }));
    await agents.register(spec('h', { health: { message: 'health', timeoutMs: 100 } }));
    await agents.register(spec('picky', { health: { message: 'ping', check: (r) => r === 'ok' } }));
    const ref = await agents.start('h');
    await agents.start('picky');
    expect(await agents.health('h')).toMatchObject({
      id: 'h',
      healthy: true,
      status: 'running',
      latencyMs: 0,
    });
    expect(await agents.health('picky')).toMatchObject({
      healthy: false,
      problem: 'bad_reply',
      error: 'pong',
    });

    const gate = deferred();
    rt.cast(ref, { hold: gate.promise });
    const checking = agents.health('h');
    clock.advance(100);
    const stuck = await checking;
    expect(stuck).toMatchObject({ healthy: false, problem: 'no_reply', status: 'running', latencyMs: 100 });
    expect(stuck.error).toMatchObject({ code: ErrorCodes.TIMEOUT });
    gate.resolve();
    expect(await rt.call(ref, 'ping')).toBe('pong');
    expect((await agents.health('h')).healthy).toBe(true);
  });

  it('without a health message, health is liveness plus the mailbox backlog threshold', async () => {
    const { rt, agents } = await setup({ health: { maxMailbox: 2 } });
    await agents.register(spec('plain'));
    await agents.register(spec('off'));
    expect(await agents.health('off')).toMatchObject({ healthy: false, problem: 'not_running' });
    const ref = await agents.start('plain');
    expect(await agents.health('plain')).toMatchObject({
      healthy: true,
      mailboxLength: 0,
      latencyMs: undefined,
    });
    expect(await agents.health()).toMatchObject({ healthy: true, supervisor: 'running' });

    const gate = deferred();
    rt.cast(ref, { hold: gate.promise });
    rt.cast(ref, 'inc');
    rt.cast(ref, 'inc');
    expect((await agents.health('plain')).healthy).toBe(true); // 2 queued: at the threshold
    rt.cast(ref, 'inc');
    expect(await agents.health('plain')).toMatchObject({
      healthy: false,
      problem: 'mailbox_backlog',
      mailboxLength: 3,
    });
    const all = await agents.health();
    expect(all.healthy).toBe(false);
    expect(all.agents.map((a) => a.id)).toEqual(['plain']); // 'off' is registered only: not counted
    gate.resolve();
    expect(await rt.call(ref, 'count')).toBe(3);
    expect((await agents.health()).healthy).toBe(true);
  });

  it('a health call to an agent that dies meanwhile reports call_failed', async () => {
    const { rt, agents } = await setup();
    await agents.register(spec('d', { restart: 'temporary', health: { message: 'health' } }));
    const ref = await agents.start('d');
    const gate = deferred();
    rt.cast(ref, { hold: gate.promise });
    const checking = agents.health('d');
    rt.kill(ref);
    expect(await checking).toMatchObject({
      healthy: false,
      problem: 'call_failed',
      error: { code: 'E_EXIT' },
    });
    expect(agents.status('d')).toBe('failed');
    gate.resolve();
  });
});

// ---- a model-based property test ----------------------------------------------------------------

type Op =
  | { readonly kind: 'register'; readonly id: string; readonly policy: AgentRestartPolicy }
  | {
      readonly kind: 'start' | 'stop' | 'restart' | 'unregister' | 'kill' | 'quit';
      readonly id: string;
    };

interface ModelAgent {
  policy: AgentRestartPolicy;
  status: 'registered' | 'running' | 'stopped' | 'failed';
  restarts: number;
}

const ID = fc.constantFrom('a', 'b', 'c');
const POLICY = fc.constantFrom<AgentRestartPolicy>('permanent', 'transient', 'temporary');
const OP: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('register' as const), id: ID, policy: POLICY }),
  fc.record({
    kind: fc.constantFrom('start', 'stop', 'restart', 'unregister', 'kill', 'quit') as fc.Arbitrary<
      'start' | 'stop' | 'restart' | 'unregister' | 'kill' | 'quit'
    >,
    id: ID,
  }),
);

async function step(
  rt: Runtime,
  agents: AgentRegistry,
  model: Map<string, ModelAgent>,
  op: Op,
): Promise<void> {
  const m = model.get(op.id);
  if (op.kind === 'register') {
    if (m !== undefined) {
      await expectCode(agents.register(spec(op.id)), AgentRegistryErrorCodes.EXISTS);
      return;
    }
    await agents.register({
      id: op.id,
      type: op.policy,
      capabilities: ['any', op.policy],
      behaviour: Worker,
      restart: op.policy,
    });
    model.set(op.id, { policy: op.policy, status: 'registered', restarts: 0 });
    return;
  }
  if (m === undefined) {
    if (op.kind === 'kill' || op.kind === 'quit') return;
    const call = {
      start: () => agents.start(op.id),
      stop: () => agents.stop(op.id),
      restart: () => agents.restart(op.id),
      unregister: () => agents.unregister(op.id),
    }[op.kind];
    await expectCode(call(), AgentRegistryErrorCodes.UNKNOWN);
    return;
  }
  switch (op.kind) {
    case 'start':
      if (m.status === 'running') await expectCode(agents.start(op.id), AgentRegistryErrorCodes.RUNNING);
      else {
        await agents.start(op.id);
        m.status = 'running';
      }
      return;
    case 'stop':
      await agents.stop(op.id);
      if (m.status === 'running') m.status = 'stopped';
      return;
    case 'restart':
      await agents.restart(op.id);
      if (m.status === 'running') m.restarts++;
      m.status = 'running';
      return;
    case 'unregister':
      await agents.unregister(op.id);
      model.delete(op.id);
      return;
    case 'kill':
    case 'quit': {
      if (m.status !== 'running') return;
      const pid = agents.whereis(op.id) as AnyRef;
      const abnormal = op.kind === 'kill';
      const restarts = m.policy === 'permanent' || (m.policy === 'transient' && abnormal);
      const event = restarts ? AGENT_RESTARTED : abnormal ? AGENT_FAILED : AGENT_STOPPED;
      const seen = eventFor(rt, event, op.id);
      if (abnormal) rt.kill(pid);
      else rt.cast(pid, 'quit');
      await seen;
      if (restarts) m.restarts++;
      m.status = restarts ? 'running' : abnormal ? 'failed' : 'stopped';
      return;
    }
  }
}

function checkModel(rt: Runtime, agents: AgentRegistry, model: Map<string, ModelAgent>): void {
  for (const id of ['a', 'b', 'c']) {
    const m = model.get(id);
    if (m === undefined) {
      expect(() => agents.status(id)).toThrow(UnknownAgentError);
      continue;
    }
    const info = agents.info(id);
    expect(info.status).toBe(m.status);
    expect(info.restarts).toBe(m.restarts);
    const pid = agents.whereis(id);
    expect(pid !== undefined).toBe(m.status === 'running');
    if (pid !== undefined) expect(rt.isAlive(pid)).toBe(true);
  }
  for (const policy of ['permanent', 'transient', 'temporary'] as const) {
    const expected = [...model].filter(([, m]) => m.policy === policy).map(([id]) => id);
    expect(ids(agents.findByType(policy))).toEqual(expected.sort());
    expect(ids(agents.findByCapability(policy))).toEqual(expected);
  }
  const running = [...model].filter(([, m]) => m.status === 'running').map(([id]) => id);
  expect(ids(agents.list({ status: 'running' }))).toEqual(running.sort());
  expect(ids(agents.findByCapability('any'))).toEqual([...model.keys()].sort());
}

describe('AgentRegistry: model', () => {
  it('random register/start/kill/quit/stop/restart/unregister sequences agree with a simple model', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(OP, { maxLength: 30 }), async (ops) => {
        const rt = new Runtime();
        try {
          const agents = await AgentRegistry.start(rt, { intensity: 1000 });
          const model = new Map<string, ModelAgent>();
          for (const op of ops) {
            await step(rt, agents, model, op);
            checkModel(rt, agents, model);
          }
        } finally {
          await rt.shutdown();
        }
      }),
      { numRuns: 60 },
    );
  });
});

describe('AgentRegistry: agents that exit right after init', () => {
  const CrashAtOnce = behaviour<unknown, number, never, never, never, 'boom'>({
    init(_c, ctx) {
      ctx.send(ctx.self, 'boom');
      return 0;
    },
    handleInfo: () => {
      throw new Error('real reason: boom');
    },
  });
  const OneShot = behaviour<unknown, number, never, never, never, 'done'>({
    init(_c, ctx) {
      ctx.send(ctx.self, 'done');
      return 0;
    },
    handleInfo: (_m, s) => stop('normal', s),
  });

  it('a temporary agent that crashes right after init is failed with the crash, not a registry E_NOPROC', async () => {
    const { agents } = await setup({}, runtime({ clock: new VirtualClock() }));
    await agents.register({ id: 'c', type: 'job', behaviour: CrashAtOnce, restart: 'temporary' });
    const ref = await agents.start('c');
    expect(agents.status('c')).toBe('failed');
    expect(String(agents.info('c').lastExitReason)).toContain('real reason: boom');
    expect(agents.info('c').pid).toBeUndefined();
    expect(agents.whereis('c')).toBeUndefined();
    expect(ref).toBeDefined();
  });

  for (const restart of ['temporary', 'transient'] as const) {
    it(`a ${restart} agent that exits normally at once has started, and is stopped`, async () => {
      const { rt, agents } = await setup({}, runtime({ clock: new VirtualClock() }));
      await agents.register({ id: 'job', type: 'job', behaviour: OneShot, restart });
      const started = eventFor(rt, AGENT_STARTED, 'job');
      const stopped = eventFor(rt, AGENT_STOPPED, 'job');
      await agents.start('job');
      await started;
      await stopped;
      expect(agents.status('job')).toBe('stopped');
      expect(agents.info('job').lastExitReason).toBe('normal');
    });
  }

  it('a permanent agent that keeps exiting at once is restarted up to intensity, then failed', async () => {
    const { agents } = await setup({ intensity: 2 }, runtime({ clock: new VirtualClock() }));
    await agents.register({ id: 'c', type: 'job', behaviour: CrashAtOnce });
    const error = await expectCode(agents.start('c'), AgentRegistryErrorCodes.START_FAILED);
    expect(String((error as Error).cause)).toContain('real reason: boom');
    expect(agents.info('c')).toMatchObject({ status: 'failed', restarts: 2, pid: undefined });
    // The supervisor itself is fine: other agents still start.
    await agents.register(spec('w'));
    expect(agents.status('w')).toBe('registered');
    await agents.start('w');
    expect(agents.status('w')).toBe('running');
  });

  it('counts restart(id) of a running agent in restarts; of a stopped one it is a plain start', async () => {
    const { rt, agents } = await setup({}, runtime({ clock: new VirtualClock() }));
    await agents.register(spec('a'));
    await agents.start('a');
    await agents.restart('a');
    expect(agents.info('a').restarts).toBe(1);
    await agents.stop('a');
    const started = eventFor(rt, AGENT_STARTED, 'a');
    await agents.restart('a');
    await started;
    expect(agents.info('a')).toMatchObject({ status: 'running', restarts: 1 });
  });

  it("list({status: 'running'}) lists only agents whose status is running", async () => {
    const { agents } = await setup({}, runtime({ clock: new VirtualClock() }));
    await agents.register(spec('a'));
    await agents.register(spec('b'));
    await agents.start('a');
    await agents.start('b');
    await agents.stop('b');
    expect(ids(agents.list({ status: 'running' }))).toEqual(['a']);
    expect(agents.list({ status: 'running' }).every((s) => s.status === 'running')).toBe(true);
  });
});
