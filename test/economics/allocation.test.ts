import { afterEach, describe, expect, it } from 'vitest';
import {
  ALLOCATION_ABORTED,
  ALLOCATION_DONE,
  AllocationAbortedError,
  AllocationErrorCodes,
  type AllocationResult,
  Allocator,
  computeAllocation,
  InvalidNeedsError,
  type Needs,
  type NeedsRequest,
  needsAndState,
  reportNeeds,
  waterFill,
  withNeeds,
} from '../../src/economics/allocation.js';
import {
  type AnyRef,
  behaviour,
  DynamicSupervisor,
  InvalidArgumentError,
  MailboxFullError,
  pidKey,
  Runtime,
  reply,
  VirtualClock,
} from '../../src/kernel/index.js';
import { awaitTelemetry } from '../../src/kernel/testkit.js';

/** An agent that asks for what its state says, and remembers how many requests it answered. */
interface AskerState {
  needs: Needs | null;
  asked: number;
  crash?: boolean;
}
const Asker = withNeeds<AskerState, AskerState, 'asked', number, 'noop', never>(
  behaviour<AskerState, AskerState, 'asked', number, 'noop'>({
    init: (s) => s,
    handleCall: (_m, _f, s) => reply(s.asked, s),
    handleCast: (_m, s) => s,
  }),
  (_request, state) => {
    if (state.crash) throw new Error('cannot work out my needs');
    return needsAndState(state.needs, { ...state, asked: state.asked + 1 });
  },
);

/** Never answers. */
const Silent = behaviour<void, null, never, never, NeedsRequest>({
  init: () => null,
  handleCast: (_m, s) => s,
});

let rt: Runtime;
let clock: VirtualClock;
afterEach(async () => {
  await rt?.shutdown();
});

async function setup(): Promise<Allocator> {
  clock = new VirtualClock();
  rt = new Runtime({ clock });
  return Allocator.start(rt);
}
function askers(...needs: (Needs | null)[]): AnyRef[] {
  return needs.map((n) => rt.spawnSync(Asker, { needs: n, asked: 0 }));
}
const byKey = (r: AllocationResult) => new Map(r.allocations.map((a) => [a.key, a.granted]));
/** A call through the supervisor: the casts queued ahead of it (the agents' answers) are handled. */
const barrier = (a: Allocator) => DynamicSupervisor.countChildren(rt, a.supervisor);
const flush = () => new Promise<void>((r) => setImmediate(r));

/** An agent whose handling of casts waits for `gate`: with capacity 1, its mailbox fills up. */
function busyAgent(overflow: 'reject' | 'drop_newest', gate: Promise<void>): AnyRef {
  const Busy = behaviour<void, null, never, never, string>({
    init: () => null,
    handleCast: async (_m, s) => {
      await gate;
      return s;
    },
  });
  return rt.spawnSync(Busy, undefined, { mailbox: { capacity: 1, overflow } });
}

describe('Allocator: gathering', () => {
  it('gathers every agent’s needs and shares by max-min; publishes done', async () => {
    const alloc = await setup();
    const done = awaitTelemetry(rt, ALLOCATION_DONE);
    const agents = askers({ cpu: 2 }, { cpu: 10, mem: 1 }, { cpu: 10 });
    const r = await alloc.allocate(agents, { cpu: 12, mem: 4 }, { kind: 'max_min' });
    const g = byKey(r);
    expect(g.get(pidKey(agents[0] as AnyRef))).toEqual({ cpu: 2, mem: 0 });
    expect(g.get(pidKey(agents[1] as AnyRef))).toEqual({ cpu: 5, mem: 1 });
    expect(g.get(pidKey(agents[2] as AnyRef))).toEqual({ cpu: 5, mem: 0 });
    expect(r).toMatchObject({
      policy: 'max_min',
      missing: [],
      rejected: [],
      unallocated: { cpu: 0, mem: 3 },
    });
    // No deadline was needed: the result came when the last agent answered.
    expect(r.elapsedMs).toBe(0);
    const event = await done;
    expect(event.measurements).toMatchObject({ agents: 3, allocated: 3, missing: 0, rejected: 0 });
    expect(event.metadata.id).toBe(r.id);
    // The needs are each agent's own answer, and the answer went through its own state.
    expect(await rt.call(agents[1] as AnyRef, 'asked')).toBe(1);
  });

  it('passes capacities and the caller’s context to the agents', async () => {
    const alloc = await setup();
    const seen: NeedsRequest<string>[] = [];
    const Echo = withNeeds<void, null, never, never, never, never, string>(
      behaviour<void, null>({ init: () => null }),
      (request) => {
        seen.push(request);
        return { gpu: request.context === 'training' ? 1 : 0 };
      },
    );
    const r = await alloc.allocate(
      [rt.spawnSync(Echo, undefined)],
      { gpu: 4 },
      { kind: 'proportional' },
      {
        context: 'training',
        id: 'round-1',
      },
    );
    expect(seen[0]).toMatchObject({
      type: 'needs_request',
      id: 'round-1',
      resources: { gpu: 4 },
      context: 'training',
    });
    expect(r.id).toBe('round-1');
    expect(r.allocations[0]?.granted).toEqual({ gpu: 1 });
  });

  it('works with reportNeeds from a hand-written handler, async decisions, and several rounds', async () => {
    const alloc = await setup();
    const Manual = behaviour<number, number, never, never, NeedsRequest>({
      init: (n) => n,
      handleCast(msg, n, ctx) {
        reportNeeds(ctx, msg, { cpu: n });
        return n;
      },
    });
    const Async = withNeeds<void, null, never, never, never, never>(
      behaviour<void, null>({ init: () => null }),
      async () => ({ cpu: 3 }),
    );
    const agents = [rt.spawnSync(Manual, 1), rt.spawnSync(Async, undefined)];
    for (let round = 0; round < 3; round++) {
      const r = await alloc.allocate(agents, { cpu: 3 }, { kind: 'max_min' });
      expect(r.allocations.map((a) => a.granted.cpu)).toEqual([1, 2]);
    }
  });

  it('names a silent agent at the deadline (virtual clock); the others are allocated', async () => {
    const alloc = await setup();
    const [a, b] = askers({ cpu: 6 }, { cpu: 6 });
    const quiet = rt.spawnSync(Silent, undefined);
    const pending = alloc.allocate(
      [a as AnyRef, quiet, b as AnyRef],
      { cpu: 10 },
      { kind: 'max_min' },
      {
        deadlineMs: 300,
      },
    );
    let result: AllocationResult | undefined;
    void pending.then((r) => {
      result = r;
    });
    await DynamicSupervisor.countChildren(rt, alloc.supervisor);
    clock.advance(299);
    await DynamicSupervisor.countChildren(rt, alloc.supervisor);
    expect(result).toBeUndefined();
    clock.advance(1);
    const r = await pending;
    expect(r.missing).toEqual([{ agent: quiet, key: pidKey(quiet), reason: 'deadline' }]);
    expect(r.allocations.map((x) => x.granted.cpu)).toEqual([5, 5]);
    expect(r.elapsedMs).toBe(300);
  });

  it('an agent that withholds its answer (decides null) is missing at the deadline', async () => {
    const alloc = await setup();
    const agents = askers({ cpu: 1 }, null);
    const pending = alloc.allocate(agents, { cpu: 1 }, { kind: 'max_min' }, { deadlineMs: 10 });
    await DynamicSupervisor.countChildren(rt, alloc.supervisor);
    clock.advance(10);
    const r = await pending;
    expect(r.missing.map((m) => m.key)).toEqual([pidKey(agents[1] as AnyRef)]);
    expect(r.allocations[0]?.granted).toEqual({ cpu: 1 });
  });

  it('an agent that crashes working out its needs gets nothing and is named with its exit reason', async () => {
    const alloc = await setup();
    const [ok] = askers({ cpu: 8 });
    const crasher = rt.spawnSync(Asker, { needs: { cpu: 8 }, asked: 0, crash: true });
    // No deadline needed: the DOWN settles the last pending agent.
    const r = await alloc.allocate([crasher, ok as AnyRef], { cpu: 4 }, { kind: 'max_min' });
    expect(r.missing).toHaveLength(1);
    expect(r.missing[0]).toMatchObject({ key: pidKey(crasher), reason: 'exit' });
    expect(String(r.missing[0]?.exitReason)).toMatch(/cannot work out my needs/);
    expect(r.allocations).toHaveLength(1);
    expect(r.allocations[0]?.granted).toEqual({ cpu: 4 });
  });

  it('an agent already dead is named with reason noproc; killed mid-gathering too', async () => {
    const alloc = await setup();
    const [gone] = askers({ cpu: 1 });
    rt.kill(gone as AnyRef);
    const quiet = rt.spawnSync(Silent, undefined);
    const [ok] = askers({ cpu: 1 });
    const pending = alloc.allocate(
      [gone as AnyRef, quiet, ok as AnyRef],
      { cpu: 5 },
      { kind: 'proportional' },
    );
    await DynamicSupervisor.countChildren(rt, alloc.supervisor);
    rt.kill(quiet);
    const r = await pending;
    expect(r.missing).toEqual([
      { agent: gone, key: pidKey(gone as AnyRef), reason: 'exit', exitReason: 'noproc' },
      { agent: quiet, key: pidKey(quiet), reason: 'exit', exitReason: 'killed' },
    ]);
    expect(r.allocations[0]?.granted).toEqual({ cpu: 1 });
    expect(r.unallocated).toEqual({ cpu: 4 });
  });

  it('rejects invalid needs for that agent only, with a typed error naming the field', async () => {
    const alloc = await setup();
    const bad = [
      { cpu: -1 },
      { cpu: Number.NaN },
      { disk: 1 },
      'lots' as unknown as Needs,
      { cpu: Number.POSITIVE_INFINITY },
      new Map([['cpu', 1]]) as unknown as Needs,
    ];
    const agents = askers(...bad, { cpu: 3 });
    const r = await alloc.allocate(agents, { cpu: 2, mem: 1 }, { kind: 'max_min' });
    expect(r.rejected.map((x) => x.error.field)).toEqual([
      'needs.cpu',
      'needs.cpu',
      'needs.disk',
      'needs',
      'needs.cpu',
      'needs',
    ]);
    for (const [i, x] of r.rejected.entries()) {
      expect(x.error).toBeInstanceOf(InvalidNeedsError);
      expect(x.error.code).toBe(AllocationErrorCodes.INVALID_NEEDS);
      expect(x.key).toBe(pidKey(agents[i] as AnyRef));
      expect(x.error.message).toContain(x.key);
      expect(x.needs).toEqual(bad[i]);
    }
    expect(r.rejected[2]?.error.message).toMatch(/not a resource on offer \(cpu, mem\)/);
    expect(r.allocations).toHaveLength(1);
    expect(r.allocations[0]?.granted).toEqual({ cpu: 2, mem: 0 });
  });

  it('ignores answers without a valid token, second answers and answers to another allocation', async () => {
    const alloc = await setup();
    const Chatty = behaviour<void, null, never, never, NeedsRequest>({
      init: () => null,
      handleCast(msg, s, ctx) {
        reportNeeds(ctx, { ...msg, id: 'other' }, { cpu: 100 });
        reportNeeds(ctx, msg, { cpu: 1 });
        reportNeeds(ctx, msg, { cpu: 100 });
        return s;
      },
    });
    const chatty = rt.spawnSync(Chatty, undefined);
    const quiet = rt.spawnSync(Silent, undefined);
    const pending = alloc.allocate([chatty, quiet], { cpu: 10 }, { kind: 'max_min' }, { deadlineMs: 5 });
    const [child] = await DynamicSupervisor.whichChildren(rt, alloc.supervisor);
    // A reply without the token of a request (here, one guessing it) counts for nobody.
    rt.cast(child?.ref as AnyRef, { type: 'needs', id: 1, token: 'guess', needs: { cpu: 9 } });
    rt.cast(child?.ref as AnyRef, { type: 'needs', id: 1, needs: { cpu: 9 } });
    clock.advance(5);
    const r = await pending;
    expect(r.allocations.map((a) => [a.key, a.granted.cpu])).toEqual([[pidKey(chatty), 1]]);
  });

  it('copies the needs: an agent changing its answer object afterwards changes nothing', async () => {
    const alloc = await setup();
    const shared = { cpu: 4 };
    const Mutating = behaviour<void, null, never, never, NeedsRequest>({
      init: () => null,
      handleCast(msg, s, ctx) {
        reportNeeds(ctx, msg, shared);
        shared.cpu = 1000;
        return s;
      },
    });
    const quiet = rt.spawnSync(Silent, undefined);
    const pending = alloc.allocate(
      [rt.spawnSync(Mutating, undefined), quiet],
      { cpu: 10 },
      { kind: 'max_min' },
      {
        deadlineMs: 1,
      },
    );
    await DynamicSupervisor.countChildren(rt, alloc.supervisor);
    clock.advance(1);
    expect((await pending).allocations[0]?.granted.cpu).toBe(4);
  });

  it('needs are read once when they arrive: changing the answered object later changes nothing (regression)', async () => {
    // A hand-written handler casting its own live object (no reportNeeds copy), which it then
    // changes before the deadline: the session used to read it again at decide time, granting
    // -10 and handing out 20 cpu of 10.
    const alloc = await setup();
    const mine = { cpu: 10 };
    const Raw = behaviour<void, null, never, never, NeedsRequest>({
      init: () => null,
      handleCast(req, s, ctx) {
        ctx.cast(req.session, { type: 'needs', id: req.id, token: req.token, needs: mine });
        return s;
      },
    });
    const [a, b] = askers({ cpu: 10 }, { cpu: 10 });
    const raw = rt.spawnSync(Raw, undefined);
    const late = rt.spawnSync(Silent, undefined);
    const pending = alloc.allocate(
      [a as AnyRef, b as AnyRef, raw, late],
      { cpu: 10 },
      { kind: 'max_min' },
      { deadlineMs: 100 },
    );
    await barrier(alloc);
    mine.cpu = -10;
    clock.advance(100);
    const r = await pending;
    const grants = r.allocations.map((x) => x.granted.cpu as number);
    expect(grants).toEqual([10 / 3, 10 / 3, 10 / 3]);
    expect(grants.reduce((x, y) => x + y, 0)).toBeLessThanOrEqual(10);
    const kept = r.allocations[2]?.needs;
    expect(kept).toEqual({ cpu: 10 });
    expect(kept).not.toBe(mine);
    expect(r.missing.map((m) => m.reason)).toEqual(['deadline']);
  });

  it('needs behind getters or a Proxy are read once per resource; a throwing getter is rejected (regression)', async () => {
    const alloc = await setup();
    let reads = 0;
    // Valid on the first read, negative ever after.
    const fickle = {
      get cpu() {
        return reads++ === 0 ? 4 : -1000;
      },
    };
    const trapped: string[] = [];
    const proxy = new Proxy(
      { cpu: 4, mem: 2 },
      {
        get(target, key, receiver) {
          if (typeof key === 'string') trapped.push(key);
          return trapped.length > 2 ? 1e9 : Reflect.get(target, key, receiver);
        },
      },
    );
    const throwing = {
      get cpu(): number {
        throw new Error('no needs today');
      },
    };
    // Every trap throws: even describing it for the error message must not crash the session.
    const hostile = new Proxy(
      {},
      {
        get() {
          throw new Error('trap');
        },
        getPrototypeOf() {
          throw new Error('trap');
        },
        ownKeys() {
          throw new Error('trap');
        },
      },
    );
    const answers: unknown[] = [fickle, proxy, throwing, hostile];
    const Raw = behaviour<number, number, never, never, NeedsRequest>({
      init: (n) => n,
      handleCast(req, n, ctx) {
        ctx.cast(req.session, { type: 'needs', id: req.id, token: req.token, needs: answers[n] });
        return n;
      },
    });
    const agents = [0, 1, 2, 3].map((n) => rt.spawnSync(Raw, n));
    const r = await alloc.allocate(agents, { cpu: 6, mem: 1 }, { kind: 'max_min' });
    expect(reads).toBe(1);
    expect(trapped).toEqual(['cpu', 'mem']);
    expect(r.allocations.map((x) => [x.needs, x.granted])).toEqual([
      [{ cpu: 4 }, { cpu: 3, mem: 0 }],
      [
        { cpu: 4, mem: 2 },
        { cpu: 3, mem: 1 },
      ],
    ]);
    expect(r.rejected.map((x) => [x.key, x.error.field])).toEqual([
      [pidKey(agents[2] as AnyRef), 'needs'],
      [pidKey(agents[3] as AnyRef), 'needs'],
    ]);
    expect(r.rejected[0]?.error.message).toMatch(/could not be read \(no needs today\)/);
    expect(r.rejected[1]?.error.message).toMatch(/could not be read \(trap\).*an unprintable value/);
  });

  it('an agent whose bounded mailbox is full is missing (undeliverable); the others are allocated (regression)', async () => {
    const alloc = await setup();
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const rejecting = busyAgent('reject', gate);
    const dropping = busyAgent('drop_newest', gate);
    for (const busy of [rejecting, dropping]) {
      rt.cast(busy, 'work'); // being handled (awaits the gate)
      await flush();
      rt.cast(busy, 'more'); // queued: the mailbox is now full
    }
    const [ok] = askers({ cpu: 4 });
    // Used to reject: the session's init threw MailboxFullError, failing the whole allocation.
    const r = await alloc
      .allocate([rejecting, ok as AnyRef, dropping], { cpu: 4 }, { kind: 'max_min' })
      .finally(release);
    expect(r.allocations.map((a) => [a.key, a.granted.cpu])).toEqual([[pidKey(ok as AnyRef), 4]]);
    expect(r.missing.map((m) => [m.key, m.reason])).toEqual([
      [pidKey(rejecting), 'undeliverable'],
      [pidKey(dropping), 'undeliverable'],
    ]);
    expect(r.missing[0]?.error).toBeInstanceOf(MailboxFullError);
    expect(r.missing[1]?.error).toBeUndefined();
    // Decided as soon as ok answered: no deadline reached, no timer left behind.
    expect(r.elapsedMs).toBe(0);
    expect(clock.pending).toBe(0);
  });

  it('decides at once when no request could be delivered (regression)', async () => {
    const alloc = await setup();
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const busy = busyAgent('reject', gate);
    rt.cast(busy, 'work');
    await flush();
    rt.cast(busy, 'more');
    const done = awaitTelemetry(rt, ALLOCATION_DONE);
    // No clock advance: nobody is pending after the session's init, so it does not wait.
    const r = await alloc
      .allocate([busy], { cpu: 4 }, { kind: 'max_min' }, { deadlineMs: 60_000 })
      .finally(release);
    expect(r.missing).toMatchObject([{ key: pidKey(busy), reason: 'undeliverable' }]);
    expect(r.allocations).toEqual([]);
    expect(r.unallocated).toEqual({ cpu: 4 });
    expect((await done).measurements).toMatchObject({ agents: 1, missing: 1, allocated: 0 });
    expect(clock.pending).toBe(0);
    expect(await barrier(alloc)).toMatchObject({ active: 0 });
  });

  it('hands every agent the same frozen copy of a plain context; the caller’s object is untouched', async () => {
    const alloc = await setup();
    const context = { purpose: 'training', tags: ['a'], limits: { cpu: 1 } };
    const seen: { context: typeof context; mutated: boolean }[] = [];
    const Meddler = withNeeds<void, null, never, never, never, never, typeof context>(
      behaviour<void, null>({ init: () => null }),
      (request) => {
        let mutated = true;
        try {
          request.context.tags.push('mine');
          request.context.limits.cpu = 100;
        } catch {
          mutated = false;
        }
        seen.push({ context: request.context, mutated });
        return { cpu: 1 };
      },
    );
    await alloc.allocate(
      [rt.spawnSync(Meddler, undefined), rt.spawnSync(Meddler, undefined)],
      { cpu: 2 },
      { kind: 'max_min' },
      { context },
    );
    expect(seen.map((x) => x.mutated)).toEqual([false, false]);
    expect(seen[0]?.context).toBe(seen[1]?.context);
    expect(seen[0]?.context).toEqual(context);
    expect(seen[0]?.context).not.toBe(context);
    expect(Object.isFrozen(seen[0]?.context.limits)).toBe(true);
    expect(Object.isFrozen(context)).toBe(false);
  });

  it('a resource named like an Object.prototype member works; __proto__ is refused, not lost', async () => {
    const alloc = await setup();
    const [a, b] = askers({ cpu: 2 }, { toString: 1, cpu: 2 });
    const r = await alloc.allocate([a as AnyRef, b as AnyRef], { cpu: 2, toString: 1 }, { kind: 'max_min' });
    expect(r.allocations.map((x) => x.granted)).toEqual([
      { cpu: 1, toString: 0 },
      { cpu: 1, toString: 1 },
    ]);
    expect(r.unallocated).toEqual({ cpu: 0, toString: 0 });
    const proto = JSON.parse('{"cpu": 1, "__proto__": 5}') as Record<string, number>;
    const err = await alloc.allocate([a as AnyRef], proto, { kind: 'max_min' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect(err).toMatchObject({ argument: 'resources.__proto__' });
    expect(() => computeAllocation([], proto, { kind: 'max_min' })).toThrow(/resources\.__proto__/);
  });

  it('weighted max-min with a Map, a function and an array of weights agree', async () => {
    const alloc = await setup();
    const agents = askers({ cpu: 100 }, { cpu: 100 }, { cpu: 1 });
    const keys = agents.map((a) => pidKey(a));
    const w = [3, 1, 1];
    const policies = [
      { kind: 'weighted_max_min', weights: w },
      { kind: 'weighted_max_min', weights: new Map(keys.map((k, i) => [k, w[i] as number])) },
      { kind: 'weighted_max_min', weights: Object.fromEntries(keys.map((k, i) => [k, w[i] as number])) },
      { kind: 'weighted_max_min', weights: (_k: string, i: number) => w[i] as number },
    ] as const;
    for (const policy of policies) {
      const r = await alloc.allocate(agents, { cpu: 9 }, policy);
      expect(r.allocations.map((a) => a.granted.cpu)).toEqual([6, 2, 1]);
    }
  });

  it('weights of agents that did not answer are dropped, not shifted onto others', async () => {
    const alloc = await setup();
    const quiet = rt.spawnSync(Silent, undefined);
    const [a, b] = askers({ cpu: 100 }, { cpu: 100 });
    const pending = alloc.allocate(
      [quiet, a as AnyRef, b as AnyRef],
      { cpu: 8 },
      {
        kind: 'weighted_max_min',
        weights: [100, 1, 3],
      },
      { deadlineMs: 1 },
    );
    await DynamicSupervisor.countChildren(rt, alloc.supervisor);
    clock.advance(1);
    expect((await pending).allocations.map((x) => x.granted.cpu)).toEqual([2, 6]);
  });

  it('a killed session rejects with AllocationAbortedError and publishes aborted', async () => {
    const alloc = await setup();
    const aborted = awaitTelemetry(rt, ALLOCATION_ABORTED);
    const pending = alloc.allocate(
      [rt.spawnSync(Silent, undefined)],
      { cpu: 1 },
      { kind: 'max_min' },
      { id: 'x' },
    );
    const [child] = await DynamicSupervisor.whichChildren(rt, alloc.supervisor);
    rt.kill(child?.ref as AnyRef);
    const err = await pending.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AllocationAbortedError);
    expect(err).toMatchObject({ code: AllocationErrorCodes.ABORTED, id: 'x', exitReason: 'killed' });
    expect((await aborted).metadata.id).toBe('x');
  });

  it('stopping the service aborts running allocations', async () => {
    const alloc = await setup();
    const pending = alloc.allocate([rt.spawnSync(Silent, undefined)], { cpu: 1 }, { kind: 'max_min' });
    await DynamicSupervisor.countChildren(rt, alloc.supervisor);
    await alloc.stop();
    await expect(pending).rejects.toMatchObject({ code: 'E_ALLOCATION_ABORTED', exitReason: 'shutdown' });
  });
});

describe('Allocator: invalid input', () => {
  const cases: [string, (a: AnyRef) => Parameters<Allocator['allocate']>, RegExp][] = [
    ['no agents', () => [[], { cpu: 1 }, { kind: 'max_min' }], /invalid agents/],
    ['a non-agent', () => [['bob' as unknown as AnyRef], { cpu: 1 }, { kind: 'max_min' }], /agents\[0\]/],
    ['a duplicate agent', (a) => [[a, a], { cpu: 1 }, { kind: 'max_min' }], /agents\[1\].*duplicate/],
    ['no resources', (a) => [[a], {}, { kind: 'max_min' }], /invalid resources: must name at least one/],
    ['resources not an object', (a) => [[a], [1] as never, { kind: 'max_min' }], /invalid resources/],
    ['a negative capacity', (a) => [[a], { cpu: -1 }, { kind: 'max_min' }], /resources\.cpu.*got -1/],
    [
      'an infinite capacity',
      (a) => [[a], { cpu: Number.POSITIVE_INFINITY }, { kind: 'max_min' }],
      /resources\.cpu/,
    ],
    ['a NaN capacity', (a) => [[a], { cpu: Number.NaN }, { kind: 'max_min' }], /resources\.cpu.*NaN/],
    ['an unknown policy', (a) => [[a], { cpu: 1 }, { kind: 'fifo' } as never], /invalid policy/],
    ['no policy', (a) => [[a], { cpu: 1 }, undefined as never], /invalid policy/],
    [
      'too few weights',
      (a) => [[a], { cpu: 1 }, { kind: 'weighted_max_min', weights: [] }],
      /policy weights: must be an array of 1/,
    ],
    [
      'a zero weight',
      (a) => [[a], { cpu: 1 }, { kind: 'weighted_proportional', weights: [0] }],
      /policy weights\[0\]: must be a finite number > 0/,
    ],
    [
      'a weight missing from the map',
      (a) => [[a], { cpu: 1 }, { kind: 'weighted_max_min', weights: new Map() }],
      /policy weights for agent .*got undefined/,
    ],
    [
      'a NaN weight from the function',
      (a) => [[a], { cpu: 1 }, { kind: 'weighted_max_min', weights: () => Number.NaN }],
      /policy weights\(.*\).*NaN/,
    ],
    [
      'weights of the wrong kind',
      (a) => [[a], { cpu: 1 }, { kind: 'weighted_max_min', weights: 3 as never }],
      /policy weights: must be an array, a Map/,
    ],
    ['a negative deadline', (a) => [[a], { cpu: 1 }, { kind: 'max_min' }, { deadlineMs: -1 }], /deadlineMs/],
    ['null options', (a) => [[a], { cpu: 1 }, { kind: 'max_min' }, null as never], /invalid options/],
    [
      'a context that cannot be read',
      (a) => [
        [a],
        { cpu: 1 },
        { kind: 'max_min' },
        {
          context: {
            get x() {
              throw new Error('nope');
            },
          },
        },
      ],
      /invalid options\.context: could not be copied: nope/,
    ],
  ];
  it.each(cases)(
    'rejects %s with InvalidArgumentError naming the value, before asking anyone',
    async (_n, make, re) => {
      const alloc = await setup();
      const [a] = askers({ cpu: 1 });
      const err = await alloc.allocate(...make(a as AnyRef)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InvalidArgumentError);
      expect((err as Error).message).toMatch(re);
      expect(await DynamicSupervisor.countChildren(rt, alloc.supervisor)).toMatchObject({ active: 0 });
      expect(await rt.call(a as AnyRef, 'asked')).toBe(0);
    },
  );

  it('a weights function that throws is an InvalidArgumentError naming the weight, with the cause (regression)', async () => {
    const alloc = await setup();
    const [a] = askers({ cpu: 1 });
    const boom = new Error('no reputation service');
    const policy = {
      kind: 'weighted_max_min',
      weights: () => {
        throw boom;
      },
    } as const;
    const err = await alloc.allocate([a as AnyRef], { cpu: 1 }, policy).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as InvalidArgumentError).argument).toMatch(/^policy weights\(/);
    expect((err as Error).message).toMatch(/threw: no reputation service/);
    expect((err as Error).cause).toBe(boom);
    expect(await rt.call(a as AnyRef, 'asked')).toBe(0);
    expect(() => computeAllocation([{ agent: 'x', needs: {} }], { cpu: 1 }, policy)).toThrow(
      /policy weights\("x"\): threw/,
    );
  });

  it('computeAllocation names bad claims, needs, resources and weights', () => {
    const ok = { cpu: 1 };
    expect(() => computeAllocation('x' as never, ok, { kind: 'max_min' })).toThrow(/invalid claims/);
    expect(() => computeAllocation([{ agent: 1 } as never], ok, { kind: 'max_min' })).toThrow(
      /claims\[0\]\.agent/,
    );
    expect(() =>
      computeAllocation(
        [
          { agent: 'a', needs: {} },
          { agent: 'a', needs: {} },
        ],
        ok,
        { kind: 'max_min' },
      ),
    ).toThrow(/claims\[1\]\.agent: is a duplicate/);
    expect(() => computeAllocation([{ agent: 'a', needs: { cpu: -2 } }], ok, { kind: 'max_min' })).toThrow(
      /claims\[0\]\.needs\.cpu: must be a finite number >= 0 \(got -2\)/,
    );
    expect(() => computeAllocation([{ agent: 'a', needs: { gpu: 1 } }], ok, { kind: 'max_min' })).toThrow(
      /claims\[0\]\.needs\.gpu: is not a resource on offer/,
    );
    expect(() => computeAllocation([], { cpu: -1 }, { kind: 'max_min' })).toThrow(/resources\.cpu/);
    expect(() =>
      computeAllocation([{ agent: 'a', needs: ok }], ok, { kind: 'weighted_max_min', weights: { b: 1 } }),
    ).toThrow(/policy weights for agent a/);
    try {
      computeAllocation([{ agent: 'a', needs: { cpu: Number.NaN } }], ok, { kind: 'max_min' });
    } catch (e) {
      expect(e).toBeInstanceOf(InvalidArgumentError);
      expect((e as InvalidArgumentError).argument).toBe('claims[0].needs.cpu');
    }
  });
});

describe('computeAllocation and waterFill (examples)', () => {
  it('max-min: small needs are served in full, the rest split evenly', () => {
    const g = computeAllocation(
      [
        { agent: 'a', needs: { cpu: 1 } },
        { agent: 'b', needs: { cpu: 4 } },
        { agent: 'c', needs: { cpu: 10 } },
      ],
      { cpu: 9 },
      { kind: 'max_min' },
    );
    expect(g.map((x) => x.granted.cpu)).toEqual([1, 4, 4]);
  });

  it('proportional: the same fraction of every need when oversubscribed', () => {
    const g = computeAllocation(
      [
        { agent: 'a', needs: { cpu: 2, mem: 1 } },
        { agent: 'b', needs: { cpu: 6 } },
      ],
      { cpu: 4, mem: 8 },
      { kind: 'proportional' },
    );
    expect(g).toEqual([
      { agent: 'a', granted: { cpu: 1, mem: 1 } },
      { agent: 'b', granted: { cpu: 3, mem: 0 } },
    ]);
  });

  it('weighted proportional: weight times need, the surplus of a satisfied agent redistributed', () => {
    const g = computeAllocation(
      [
        { agent: 'a', needs: { cpu: 2 } },
        { agent: 'b', needs: { cpu: 10 } },
      ],
      { cpu: 8 },
      { kind: 'weighted_proportional', weights: { a: 10, b: 1 } },
    );
    // a would get 8 * 20/30 > 2: served in full, b takes the remaining 6.
    expect(g.map((x) => x.granted.cpu)).toEqual([2, 6]);
  });

  it('zero capacity grants nothing; zero needs get nothing; empty claims are fine', () => {
    expect(Array.from(waterFill([1, 2], 0, [1, 1]))).toEqual([0, 0]);
    expect(Array.from(waterFill([0, 5], 3, [1, 1]))).toEqual([0, 3]);
    // Rates of 0 wait for every positive rate, then share what is left equally.
    expect(Array.from(waterFill([2, 5, 5], 6, [1, 0, 0]))).toEqual([2, 2, 2]);
    expect(Array.from(waterFill([5, 5], 4, [0, 0]))).toEqual([2, 2]);
    expect(computeAllocation([], { cpu: 1 }, { kind: 'max_min' })).toEqual([]);
  });
});
