import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  handleVariables,
  isVariableBroadcast,
  UnknownVariableError,
  type VariableAck,
  type VariableBroadcast,
  VariableErrorCodes,
  VariableRejectedError,
  VariableReplica,
  type VariableSpec,
  VariableSubscriber,
  Variables,
} from '../../src/agents/variables.js';
import {
  type AnyRef,
  behaviour,
  ErrorCodes,
  InvalidArgumentError,
  NoProcessError,
  type Runtime,
  reply,
  VirtualClock,
} from '../../src/kernel/index.js';
import { deferred, flush, runtimeFactory, watch } from '../kernel/helpers.js';

const runtime = runtimeFactory();

const LR: VariableSpec = { name: 'lr', kind: { type: 'float', min: 1e-5, max: 1, log: true }, default: 0.1 };
const LAYERS: VariableSpec = { name: 'layers', kind: { type: 'int', min: 1, max: 8 }, default: 2 };
const OPT: VariableSpec = { name: 'opt', kind: { type: 'choice', values: ['sgd', 'adam'] }, default: 'sgd' };
const NESTEROV: VariableSpec = { name: 'nesterov', kind: { type: 'bool' }, default: false };

/** Receives broadcasts and never acknowledges them: a subscriber that is alive but stuck. */
const Mute = behaviour<VariableBroadcast[], VariableBroadcast[], never, never, VariableBroadcast>({
  init: (log) => log,
  handleCast: (msg, seen) => {
    seen.push(msg);
    return seen;
  },
});

async function setup(rt: Runtime = runtime(), specs: VariableSpec[] = [LR, LAYERS, OPT, NESTEROV]) {
  const vars = Variables.start(rt);
  for (const s of specs) await vars.register(s);
  return { rt, vars };
}

/** A Mute agent and the log of what it received. */
function mute(rt: Runtime): AnyRef {
  const log: VariableBroadcast[] = [];
  const ref = rt.spawnSync(Mute, log);
  muteLogs.set(ref, log);
  return ref;
}
const muteLogs = new Map<AnyRef, VariableBroadcast[]>();

function subscriber(rt: Runtime): AnyRef {
  return rt.spawnSync(VariableSubscriber, undefined);
}

/** A replica with a one-slot `reject` mailbox, held busy until `gate` settles. */
function heldSubscriber(rt: Runtime, gate: Promise<void>): AnyRef {
  const Busy = behaviour<void, VariableReplica, never, never, VariableBroadcast | 'hold'>({
    init: () => new VariableReplica(),
    handleCast: async (msg, replica, ctx) => {
      if (msg === 'hold') await gate;
      else replica.apply(msg, ctx);
      return replica;
    },
  });
  const busy = rt.spawnSync(Busy, undefined, { mailbox: { capacity: 1, overflow: 'reject' } });
  rt.cast(busy, 'hold');
  return busy;
}

async function replicaValue(rt: Runtime, ref: AnyRef, name: string): Promise<unknown> {
  return rt.call(ref as never, { type: 'get', name });
}

async function expectInvalid(p: Promise<unknown>, ...fragments: string[]): Promise<void> {
  const error = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(InvalidArgumentError);
  expect((error as InvalidArgumentError).code).toBe(ErrorCodes.INVALID_ARGUMENT);
  for (const f of fragments) expect((error as Error).message).toContain(f);
}

describe('register', () => {
  it('starts at the default, version 0', async () => {
    const { vars } = await setup();
    expect(vars.get('lr')).toBe(0.1);
    expect(vars.info('layers')).toEqual({ name: 'layers', value: 2, version: 0, modifier: 'default' });
    expect(vars.names().sort()).toEqual(['layers', 'lr', 'nesterov', 'opt']);
    expect(vars.get('nope')).toBeUndefined();
    expect(vars.has('nope')).toBe(false);
    expect(vars.history('lr')).toEqual([]);
  });

  it('rejects bad specs naming the field', async () => {
    const { vars } = await setup(runtime(), []);
    await expectInvalid(vars.register({ name: '', kind: { type: 'bool' }, default: true }), 'variable name');
    await expectInvalid(
      vars.register({ name: 'a', kind: { type: 'float', min: 2, max: 1 }, default: 1 }),
      'bounds',
    );
    await expectInvalid(
      vars.register({ name: 'a', kind: { type: 'float', min: 0, max: 1, log: true }, default: 0.5 }),
      'log scale',
    );
    await expectInvalid(
      vars.register({ name: 'a', kind: { type: 'int', min: 0.5, max: 3 }, default: 1 }),
      'integers',
    );
    await expectInvalid(
      vars.register({ name: 'a', kind: { type: 'choice', values: [] }, default: 1 }),
      'values',
    );
    await expectInvalid(vars.register({ name: 'a', kind: { type: 'nope' } as never, default: 1 }), 'kind');
    await expectInvalid(
      vars.register({ name: 'a', kind: { type: 'int', min: 0, max: 3 }, default: 9 }),
      'default',
      '[0, 3]',
    );
    await expectInvalid(
      vars.register({ name: 'a', kind: { type: 'bool' }, default: true, historyLimit: 0 }),
      'historyLimit',
    );
    await expectInvalid(
      vars.register({ name: 'a', kind: { type: 'bool' }, default: true, policy: 'nope' as never }),
      'policy',
    );
    expect(vars.names()).toEqual([]);
    await vars.register(NESTEROV);
    await expectInvalid(vars.register(NESTEROV), 'already registered');
  });
});

describe('update', () => {
  it('applies a valid change: version +1, modifier, history', async () => {
    const { vars } = await setup();
    const r = await vars.update('lr', 0.01, 'tuner');
    expect(r).toEqual({ versions: [1], acked: 0, missing: [], exited: 0 });
    expect(vars.info('lr')).toEqual({ name: 'lr', value: 0.01, version: 1, modifier: 'tuner' });
    await vars.update('lr', 0.02);
    expect(vars.history('lr').map((h) => [h.value, h.version, h.modifier])).toEqual([
      [0.01, 1, 'tuner'],
      [0.02, 2, 'anonymous'],
    ]);
    expect(vars.stats()).toMatchObject({ changes: 2, rejected: 0, broadcasts: 2 });
  });

  it.each([
    ['lr', 2, ['"lr"', '[0.00001, 1]', 'got 2']],
    ['lr', 0, ['[0.00001, 1]']],
    ['lr', 'fast', ['must be a number']],
    ['lr', Number.NaN, ['must be a number']],
    ['layers', 2.5, ['"layers"', 'integer']],
    ['layers', 9, ['[1, 8]', 'got 9']],
    ['opt', 'rmsprop', ['"opt"', 'one of', 'sgd']],
    ['nesterov', 1, ['"nesterov"', 'boolean']],
  ])('rejects %s = %s with E_INVALID_ARGUMENT and changes nothing', async (name, value, fragments) => {
    const { vars } = await setup();
    const before = vars.info(name);
    await expectInvalid(vars.update(name, value, 'bad'), ...(fragments as string[]));
    expect(vars.info(name)).toEqual(before);
    expect(vars.history(name)).toEqual([]);
    expect(vars.stats()).toMatchObject({ changes: 0, rejected: 1, broadcasts: 0 });
  });

  it('enforces the constraint function', async () => {
    const { vars } = await setup(runtime(), [
      {
        name: 'even',
        kind: { type: 'int', min: 0, max: 100 },
        default: 0,
        constraint: (v) => (v as number) % 2 === 0,
      },
    ]);
    await vars.update('even', 4);
    await expectInvalid(vars.update('even', 5), '"even"', 'constraint', 'got 5');
    expect(vars.info('even')).toMatchObject({ value: 4, version: 1 });
  });

  it('rejects unknown variables with E_VARIABLE_UNKNOWN', async () => {
    const { vars } = await setup();
    const e = await vars.update('nope', 1).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(UnknownVariableError);
    expect((e as UnknownVariableError).code).toBe(VariableErrorCodes.UNKNOWN);
    expect(() => vars.history('nope')).toThrow(UnknownVariableError);
  });

  it('validates the write options', async () => {
    const { vars } = await setup();
    await expectInvalid(vars.update('lr', 0.5, 'x', { deadlineMs: 0 }), 'deadlineMs');
    await expectInvalid(vars.updateBatch([]), 'changes');
    expect(() => Variables.start(runtime(), { ackTimeoutMs: -1 })).toThrow(InvalidArgumentError);
  });

  it('keeps a bounded history', async () => {
    const { vars } = await setup(runtime(), [{ ...LAYERS, historyLimit: 3 }]);
    for (let i = 1; i <= 8; i++) await vars.update('layers', i, `m${i}`);
    expect(vars.history('layers').map((h) => h.version)).toEqual([6, 7, 8]);
    expect(vars.history('layers', 2).map((h) => h.value)).toEqual([7, 8]);
    expect(vars.history('layers', 0)).toEqual([]);
    expect(vars.info('layers')?.version).toBe(8);
  });

  it('keeps 100 entries by default', async () => {
    const { vars } = await setup(runtime(), [
      { name: 'n', kind: { type: 'int', min: 0, max: 1000 }, default: 0 },
    ]);
    for (let i = 1; i <= 150; i++) await vars.update('n', i);
    const h = vars.history('n');
    expect(h).toHaveLength(100);
    expect(h[0]?.value).toBe(51);
    expect(h[99]?.value).toBe(150);
  });

  it('property: version counts accepted changes, value is the last accepted, invalid ones change nothing', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: -5, max: 15 }), { maxLength: 30 }), async (proposals) => {
        const rt = runtime();
        const { vars } = await setup(rt, [{ ...LAYERS, historyLimit: 5 }]);
        const accepted: number[] = [];
        for (const p of proposals) {
          const ok = await vars.update('layers', p).then(
            () => true,
            () => false,
          );
          expect(ok).toBe(p >= 1 && p <= 8);
          if (ok) accepted.push(p);
        }
        expect(vars.info('layers')?.version).toBe(accepted.length);
        expect(vars.get('layers')).toBe(accepted.length > 0 ? accepted[accepted.length - 1] : 2);
        expect(vars.history('layers').map((h) => h.value)).toEqual(accepted.slice(-5));
        await rt.shutdown();
      }),
      { numRuns: 40 },
    );
  });
});

describe('updateBatch', () => {
  it('is all-or-nothing', async () => {
    const { vars } = await setup();
    await expectInvalid(
      vars.updateBatch([
        { name: 'lr', value: 0.5 },
        { name: 'layers', value: 99 },
      ]),
      '"layers"',
    );
    expect(vars.info('lr')?.version).toBe(0);
    const r = await vars.updateBatch([
      { name: 'lr', value: 0.5, modifier: 'a' },
      { name: 'layers', value: 4, modifier: 'b' },
      { name: 'layers', value: 5, modifier: 'c' },
    ]);
    expect(r.versions).toEqual([1, 1, 2]);
    expect(vars.info('layers')).toMatchObject({ value: 5, version: 2, modifier: 'c' });
    expect(vars.get('lr')).toBe(0.5);
  });

  it('sends each subscriber one message with only its variables', async () => {
    const rt = runtime();
    const { vars } = await setup(rt);
    const both = mute(rt);
    const onlyLr = mute(rt);
    vars.subscribe(['lr', 'layers'], both);
    vars.subscribe('lr', onlyLr);
    const result = watch(
      vars.updateBatch(
        [
          { name: 'lr', value: 0.5 },
          { name: 'layers', value: 3 },
        ],
        { awaitAcks: false },
      ),
    );
    await flush();
    expect(result.current.state).toBe('fulfilled');
    // Initial sync plus the batch, each one message.
    const bothMsgs = muteLogs.get(both) ?? [];
    const lrMsgs = muteLogs.get(onlyLr) ?? [];
    expect(bothMsgs).toHaveLength(2);
    expect(bothMsgs[1]?.changes.map((c) => c.name)).toEqual(['lr', 'layers']);
    expect(lrMsgs).toHaveLength(2);
    expect(lrMsgs[1]?.changes.map((c) => [c.name, c.value])).toEqual([['lr', 0.5]]);
  });
});

describe('policies', () => {
  it('a resolver function decides the stored value, which is still validated', async () => {
    const { vars } = await setup(runtime(), [
      {
        ...LAYERS,
        policy: (current, proposed, modifier) =>
          modifier === 'admin' ? proposed : Math.max(current as number, proposed as number),
      },
    ]);
    await vars.update('layers', 5, 'w1');
    await vars.update('layers', 3, 'w2');
    expect(vars.get('layers')).toBe(5);
    await vars.update('layers', 1, 'admin');
    expect(vars.get('layers')).toBe(1);
    await expectInvalid(vars.update('layers', 20, 'w3'), '[1, 8]');
    expect(vars.info('layers')?.version).toBe(3);
  });

  it('consensus applies only what decide accepts', async () => {
    const seen: unknown[] = [];
    let verdict: boolean | 'throw' = true;
    const { vars } = await setup(runtime(), [
      {
        ...OPT,
        policy: {
          type: 'consensus',
          decide: async (change) => {
            seen.push(change);
            if (verdict === 'throw') throw new Error('quorum lost');
            return verdict;
          },
        },
      },
    ]);
    await vars.update('opt', 'adam', 'alice');
    expect(seen).toEqual([{ name: 'opt', current: 'sgd', proposed: 'adam', modifier: 'alice' }]);
    expect(vars.info('opt')).toMatchObject({ value: 'adam', version: 1 });
    verdict = false;
    const no = await vars.update('opt', 'sgd', 'bob').catch((e: unknown) => e);
    expect(no).toBeInstanceOf(VariableRejectedError);
    expect((no as VariableRejectedError).code).toBe(VariableErrorCodes.REJECTED);
    verdict = 'throw';
    const err = await vars.update('opt', 'sgd', 'bob').catch((e: unknown) => e);
    expect((err as Error).message).toContain('quorum lost');
    expect(vars.info('opt')).toMatchObject({ value: 'adam', version: 1 });
    // An invalid value never reaches decide.
    await expectInvalid(vars.update('opt', 'rmsprop'));
    expect(seen).toHaveLength(3);
    expect(vars.stats().rejected).toBe(3);
  });
});

describe('subscriptions and broadcasts', () => {
  it('replicas get the current values at once and every change; update resolves when all acked', async () => {
    const rt = runtime();
    const { vars } = await setup(rt);
    await vars.update('lr', 0.2);
    const subs = Array.from({ length: 5 }, () => subscriber(rt));
    for (const s of subs) vars.subscribe(['lr', 'opt'], s);
    expect(await replicaValue(rt, subs[0] as AnyRef, 'lr')).toBe(0.2);
    const r = await vars.update('lr', 0.01, 'tuner');
    expect(r).toEqual({ versions: [2], acked: 5, missing: [], exited: 0 });
    for (const s of subs) expect(await replicaValue(rt, s, 'lr')).toBe(0.01);
    expect(vars.subscribers('lr')).toHaveLength(5);
    expect(vars.stats()).toMatchObject({ subscriptions: 10, subscribers: 5, pending: 0 });
  });

  it('a variable with no subscribers resolves at once', async () => {
    const { vars } = await setup();
    expect(await vars.update('opt', 'adam')).toMatchObject({ acked: 0, missing: [] });
  });

  it('subscribe rejects dead agents and unknown names; unsubscribe stops the broadcasts', async () => {
    const rt = runtime();
    const { vars } = await setup(rt);
    const dead = subscriber(rt);
    rt.kill(dead);
    expect(() => vars.subscribe('lr', dead)).toThrow(NoProcessError);
    const s = subscriber(rt);
    expect(() => vars.subscribe(['lr', 'nope'], s)).toThrow(UnknownVariableError);
    expect(vars.stats().subscriptions).toBe(0);
    vars.subscribe(['lr', 'opt'], s);
    vars.unsubscribe(s, 'lr');
    expect(vars.subscribers('lr')).toEqual([]);
    expect(vars.subscribers('opt')).toHaveLength(1);
    expect(await vars.update('lr', 0.3)).toMatchObject({ acked: 0 });
    expect(await replicaValue(rt, s, 'lr')).toBe(0.1);
    vars.unsubscribe(s);
    expect(vars.stats()).toMatchObject({ subscriptions: 0, subscribers: 0 });
  });

  it('an agent that exits is unsubscribed at once', async () => {
    const rt = runtime();
    const { vars } = await setup(rt);
    const a = subscriber(rt);
    const b = subscriber(rt);
    vars.subscribe('lr', a);
    vars.subscribe('lr', b);
    rt.kill(a);
    expect(vars.subscribers('lr')).toEqual([b]);
    expect(await vars.update('lr', 0.3)).toMatchObject({ acked: 1, missing: [], exited: 0 });
  });

  it('a subscriber that dies while a broadcast waits for it is not awaited', async () => {
    const rt = runtime();
    const { vars } = await setup(rt);
    const ok = subscriber(rt);
    const stuck = mute(rt);
    vars.subscribe('lr', ok);
    vars.subscribe('lr', stuck);
    const result = watch(vars.update('lr', 0.3));
    await flush();
    expect(result.current.state).toBe('pending');
    expect(vars.stats().pending).toBe(1);
    rt.kill(stuck);
    await flush();
    expect(result.current).toEqual({
      state: 'fulfilled',
      value: { versions: [1], acked: 1, missing: [], exited: 1 },
    });
    expect(vars.stats().pending).toBe(0);
  });

  it('unsubscribing while a broadcast waits releases it too', async () => {
    const rt = runtime();
    const { vars } = await setup(rt);
    const stuck = mute(rt);
    vars.subscribe('lr', stuck);
    const result = watch(vars.update('lr', 0.3));
    await flush();
    expect(result.current.state).toBe('pending');
    vars.unsubscribe(stuck);
    await flush();
    expect(result.current).toMatchObject({ state: 'fulfilled', value: { acked: 0, exited: 1 } });
  });

  it('reports who did not acknowledge by the deadline (virtual clock)', async () => {
    const clock = new VirtualClock();
    const rt = runtime({ clock });
    const vars = Variables.start(rt, { ackTimeoutMs: 1000 });
    await vars.register(LR);
    const ok = subscriber(rt);
    const stuck = mute(rt);
    vars.subscribe('lr', ok);
    vars.subscribe('lr', stuck);
    const first = watch(vars.update('lr', 0.3));
    await flush();
    clock.advance(500);
    const second = watch(vars.update('lr', 0.4, 'x', { deadlineMs: 200 }));
    await flush();
    clock.advance(199);
    await flush();
    expect(first.current.state).toBe('pending');
    expect(second.current.state).toBe('pending');
    clock.advance(1);
    await flush();
    expect(second.current).toEqual({
      state: 'fulfilled',
      value: { versions: [2], acked: 1, missing: [stuck], exited: 0 },
    });
    expect(first.current.state).toBe('pending');
    clock.advance(300);
    await flush();
    expect(first.current).toEqual({
      state: 'fulfilled',
      value: { versions: [1], acked: 1, missing: [stuck], exited: 0 },
    });
    expect(vars.stats()).toMatchObject({ pending: 0, timedOut: 2 });
    // The values were applied regardless of the missing acks.
    expect(vars.info('lr')).toMatchObject({ value: 0.4, version: 2 });
  });

  it('a subscriber whose bounded mailbox refuses the broadcast is reported missing; the owner lives on', async () => {
    const clock = new VirtualClock();
    const rt = runtime({ clock });
    const vars = Variables.start(rt, { ackTimeoutMs: 100 });
    await vars.register(LR);
    const gate = deferred();
    const busy = heldSubscriber(rt, gate.promise);
    vars.subscribe('lr', busy); // the initial sync takes the one mailbox slot
    const result = watch(vars.update('lr', 0.3));
    await flush();
    clock.advance(100);
    await flush();
    expect(result.current).toMatchObject({ state: 'fulfilled', value: { acked: 0, missing: [busy] } });
    expect(rt.isAlive(vars.owner)).toBe(true);
    gate.resolve();
    await flush(); // let it take the sync message, freeing its one slot
    expect(await vars.update('lr', 0.4)).toMatchObject({ acked: 1, missing: [] });
  });

  it('awaitAcks: false resolves once applied and sent', async () => {
    const rt = runtime();
    const { vars } = await setup(rt);
    vars.subscribe('lr', mute(rt));
    expect(await vars.update('lr', 0.3, 'x', { awaitAcks: false })).toMatchObject({ acked: 0, missing: [] });
    expect(vars.stats().pending).toBe(0);
  });

  it('delete tells the replicas and forgets the subscriptions', async () => {
    const rt = runtime();
    const { vars } = await setup(rt);
    const s = subscriber(rt);
    vars.subscribe(['lr', 'opt'], s);
    expect(await vars.delete('lr')).toBe(true);
    expect(await vars.delete('lr')).toBe(false);
    expect(vars.get('lr')).toBeUndefined();
    expect(await replicaValue(rt, s, 'lr')).toBeUndefined();
    expect(await replicaValue(rt, s, 'opt')).toBe('sgd');
    expect(vars.stats().subscriptions).toBe(1);
    await expect(vars.update('lr', 0.3)).rejects.toBeInstanceOf(UnknownVariableError);
  });
});

describe('replica helper', () => {
  it('handleVariables routes broadcasts in a custom behaviour and leaves other messages alone', async () => {
    const rt = runtime();
    const { vars } = await setup(rt);
    const Worker = behaviour<
      void,
      { replica: VariableReplica; other: unknown[] },
      'lr',
      unknown,
      VariableBroadcast | { type: 'job' }
    >({
      init: () => ({ replica: new VariableReplica(), other: [] }),
      handleCall: (_m, _f, s) => reply(s.replica.get('lr'), s),
      handleCast: (msg, s, ctx) => {
        if (!handleVariables(msg, s.replica, ctx)) s.other.push(msg);
        return s;
      },
    });
    const w = rt.spawnSync(Worker, undefined);
    vars.subscribe('lr', w);
    expect(await vars.update('lr', 0.05)).toMatchObject({ acked: 1 });
    expect(await rt.call(w, 'lr')).toBe(0.05);
    rt.cast(w, { type: 'job' });
    expect(isVariableBroadcast({ type: 'job' })).toBe(false);
  });

  it('a replica never goes back to an older version', () => {
    const replica = new VariableReplica();
    const acks: unknown[] = [];
    const ctx = { self: {} as AnyRef, cast: (_to: unknown, msg: unknown) => acks.push(msg) > 0 };
    const collector = {} as VariableBroadcast['collector'];
    replica.apply(
      {
        type: 'mabeam.variables.broadcast',
        seq: 2,
        collector,
        changes: [{ name: 'a', value: 2, version: 2, modifier: 'm' }],
      },
      ctx as never,
    );
    replica.apply(
      {
        type: 'mabeam.variables.broadcast',
        seq: 3,
        collector,
        changes: [{ name: 'a', value: 1, version: 1, modifier: 'm' }],
      },
      ctx as never,
    );
    expect(replica.get('a')).toBe(2);
    expect(acks).toHaveLength(2);
    expect(replica.received).toBe(2);
  });
});

describe('regressions', () => {
  it('history rejects a fractional limit, naming it, instead of returning holes', async () => {
    const { vars } = await setup();
    for (let i = 1; i <= 3; i++) await vars.update('layers', i);
    expect(() => vars.history('layers', 1.5)).toThrow(/1\.5/);
    expect(() => vars.history('layers', 1.5)).toThrow(InvalidArgumentError);
    expect(vars.history('layers', 2).map((h) => h.value)).toEqual([2, 3]);
  });

  it('an agent that re-subscribes and acks an old broadcast does not release it while another subscriber is missing', async () => {
    const clock = new VirtualClock();
    const rt = runtime({ clock });
    const vars = Variables.start(rt, { ackTimeoutMs: 1000 });
    await vars.register(LR);
    const gate = deferred();
    const Held = behaviour<void, VariableReplica, never, never, VariableBroadcast | 'hold'>({
      init: () => new VariableReplica(),
      handleCast: async (msg, replica, ctx) => {
        if (msg === 'hold') await gate.promise;
        else replica.apply(msg, ctx);
        return replica;
      },
    });
    const a = rt.spawnSync(Held, undefined);
    const stuck = mute(rt);
    vars.subscribe('lr', a);
    vars.subscribe('lr', stuck);
    await flush();
    rt.cast(a, 'hold');
    const result = watch(vars.update('lr', 0.3));
    await flush();
    vars.unsubscribe(a); // counted as gone for the pending broadcast
    vars.subscribe('lr', a); // a new subscription: the old broadcast is not its to ack
    gate.resolve();
    await flush();
    expect(result.current.state).toBe('pending');
    clock.advance(1000);
    await flush();
    expect(result.current).toEqual({
      state: 'fulfilled',
      value: { versions: [1], acked: 0, missing: [stuck], exited: 1 },
    });
  });

  it('a refused broadcast stays missing even when a later broadcast to the same agent is acked', async () => {
    const clock = new VirtualClock();
    const rt = runtime({ clock });
    const vars = Variables.start(rt, { ackTimeoutMs: 100 });
    await vars.register(LR);
    const gate = deferred();
    const busy = heldSubscriber(rt, gate.promise);
    vars.subscribe('lr', busy); // the initial sync takes the one mailbox slot
    const first = watch(vars.update('lr', 0.3)); // refused: never reaches busy
    await flush();
    gate.resolve();
    await flush();
    expect(await vars.update('lr', 0.4, 'x', { deadlineMs: 1000 })).toMatchObject({ acked: 1, missing: [] });
    expect(first.current.state).toBe('pending');
    clock.advance(100);
    await flush();
    expect(first.current).toEqual({
      state: 'fulfilled',
      value: { versions: [1], acked: 0, missing: [busy], exited: 0 },
    });
  });

  it('rejects a modifier that is not a string, naming it, and changes nothing', async () => {
    const { vars } = await setup();
    // biome-ignore lint/suspicious/noExplicitAny: deliberately ill-typed input
    await expectInvalid(vars.update('layers', 3, 42 as any), 'modifier', '42');
    expect(vars.info('layers')).toMatchObject({ value: 2, version: 0, modifier: 'default' });
  });

  it('subscribe with no names is refused and leaves no subscriber behind', async () => {
    const rt = runtime();
    const { vars } = await setup(rt);
    const s = subscriber(rt);
    expect(() => vars.subscribe([], s)).toThrow(InvalidArgumentError);
    expect(vars.stats()).toMatchObject({ subscribers: 0, subscriptions: 0 });
  });

  it('consensus sees the batch-staged current value for a second change of the same variable', async () => {
    const seen: unknown[] = [];
    const { vars } = await setup(runtime(), [
      {
        ...LAYERS,
        policy: {
          type: 'consensus',
          decide: async (change) => {
            seen.push(change.current);
            return true;
          },
        },
      },
    ]);
    await vars.updateBatch([
      { name: 'layers', value: 3 },
      { name: 'layers', value: 4 },
    ]);
    expect(seen).toEqual([2, 3]);
    expect(vars.info('layers')).toMatchObject({ value: 4, version: 2 });
  });
});

describe('VariableReplica acks: one object per replica, reused only once read', () => {
  it('acks cast before the collector reads any keep their own seq; a read ack is reused', async () => {
    const rt = runtime();
    const seen: [number, VariableAck][] = [];
    let clear = false;
    let onRead: () => void = () => {};
    const Collector = behaviour<void, void, never, never, VariableAck>({
      init: () => undefined,
      handleCast(ack, s) {
        seen.push([ack.seq, ack]);
        if (clear) ack.inFlight = false;
        onRead();
        return s;
      },
    });
    const collector = rt.spawnSync(Collector, undefined) as unknown as VariableBroadcast['collector'];
    const Holder = behaviour<VariableReplica, VariableReplica, never, never, readonly VariableBroadcast[]>({
      init: (r) => r,
      // Applies every broadcast it is given in one run: all their acks are in flight together.
      handleCast(msgs, r, ctx) {
        for (const m of msgs) r.apply(m, ctx);
        return r;
      },
    });
    const holder = rt.spawnSync(Holder, new VariableReplica());
    const bc = (seq: number): VariableBroadcast => ({
      type: 'mabeam.variables.broadcast',
      seq,
      changes: [{ name: 'lr', value: seq / 10, version: seq, modifier: 't' }],
      collector,
    });
    const reads = (n: number) =>
      new Promise<void>((resolve) => {
        onRead = () => {
          if (--n === 0) resolve();
        };
      });
    for (const c of [false, true]) {
      clear = c;
      seen.length = 0;
      const base = c ? 10 : 0;
      let done = reads(3);
      rt.cast(holder, [bc(base + 1), bc(base + 2), bc(base + 3)]);
      await done;
      expect(seen.map(([seq]) => seq)).toEqual([base + 1, base + 2, base + 3]);
      expect(new Set(seen.map(([, a]) => a)).size).toBe(3);
      done = reads(1);
      rt.cast(holder, [bc(base + 4)]);
      await done;
      expect(seen[3]?.[0]).toBe(base + 4);
      // Reused: the ack object of an earlier, already read ack.
      if (c) expect(seen.slice(0, 3).map(([, a]) => a)).toContain(seen[3]?.[1]);
      else expect(new Set(seen.map(([, a]) => a)).size).toBe(4);
    }
  });
});
