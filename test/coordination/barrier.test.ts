import { afterEach, describe, expect, it } from 'vitest';
import {
  AlreadyArrivedError,
  BARRIER_FAILED,
  BARRIER_TRIPPED,
  BarrierBrokenError,
  type BarrierFailure,
  type BarrierHandle,
  type BarrierMessage,
  Barriers,
  isBarrierMessage,
  NotPartyError,
} from '../../src/coordination/barrier.js';
import {
  type AnyRef,
  behaviour,
  DynamicSupervisor,
  InvalidArgumentError,
  Runtime,
  VirtualClock,
} from '../../src/kernel/index.js';
import { awaitTelemetry, type Probe, probe } from '../../src/kernel/testkit.js';
import { flush, watch } from '../kernel/helpers.js';

let rt: Runtime;
let clock: VirtualClock;
afterEach(async () => {
  await rt?.shutdown();
});

async function setup(): Promise<Barriers> {
  clock = new VirtualClock();
  rt = new Runtime({ clock });
  return Barriers.start(rt);
}

/** Probes registered under the given names: the parties. */
function parties(...names: string[]): Probe[] {
  return names.map((name) => probe(rt, { name }));
}

/** The session has taken every message sent so far (the supervisor answers in order). */
async function settled(b: Barriers, h: BarrierHandle): Promise<void> {
  await rt.whenMailboxBelow(h.ref, 1);
  await DynamicSupervisor.countChildren(rt, b.supervisor);
  await flush();
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    (v) => {
      throw new Error(`expected a rejection, got ${JSON.stringify(v)}`);
    },
    (e: unknown) => e,
  );
}

describe('Barrier: tripping', () => {
  it('resolves for everyone once all n parties arrived, and publishes tripped', async () => {
    const b = await setup();
    parties('a', 'b', 'c');
    const tripped = awaitTelemetry(rt, BARRIER_TRIPPED);
    const h = await b.create({ parties: ['a', 'b', 'c'], deadlineMs: 1000 });
    expect(h.parties).toEqual(['a', 'b', 'c']);
    const results = await Promise.all(['a', 'b', 'c'].map((p) => h.await(p)));
    for (const r of results)
      expect(r).toMatchObject({ outcome: 'tripped', id: h.id, parties: ['a', 'b', 'c'] });
    expect(await h.result).toMatchObject({ outcome: 'tripped', generation: 0 });
    const ev = await tripped;
    expect(ev.measurements).toMatchObject({ parties: 3 });
    expect(ev.metadata.id).toBe(h.id);
    // One-shot: the session is a temporary child, gone after tripping.
    expect((await DynamicSupervisor.countChildren(rt, b.supervisor)).active).toBe(0);
  });

  it('holds the early arrivals until the last one arrives (virtual time passes in between)', async () => {
    const b = await setup();
    parties('a', 'b', 'c');
    const h = await b.create({ parties: ['a', 'b', 'c'], deadlineMs: 1000 });
    const a = watch(h.await('a'));
    const gen = await h.arrive('b'); // arrives without waiting
    expect(gen).toBe(0);
    clock.advance(400);
    await settled(b, h);
    expect(a.current.state).toBe('pending');
    const c = await h.await('c');
    expect(c).toMatchObject({ outcome: 'tripped', elapsedMs: 400 });
    await flush();
    expect(a.current).toMatchObject({ state: 'fulfilled', value: { outcome: 'tripped' } });
  });

  it('inside an agent: castArrive casts, and the trip comes back as a message', async () => {
    const b = await setup();
    const [pa, pb] = parties('a', 'b') as [Probe, Probe];
    const h = await b.create({ parties: ['a', 'b'], deadlineMs: 1000 });
    h.castArrive(pa.ctx); // arrives as itself
    h.castArrive(pb.ctx, 'b'); // or names the party it arrives for
    const msg = await pa.expectMessage<BarrierMessage>({ type: 'barrier', outcome: 'tripped' });
    expect(isBarrierMessage(msg)).toBe(true);
    expect(msg).toMatchObject({ id: h.id, result: { outcome: 'tripped', parties: ['a', 'b'] } });
    await pb.expectMessage({ type: 'barrier', outcome: 'tripped', id: h.id });
  });

  it('an agent arriving from its own callback does not block, and learns the trip in handleInfo', async () => {
    const b = await setup();
    const seen: BarrierMessage[] = [];
    const Worker = behaviour<null, BarrierHandle | null, never, never, BarrierHandle, BarrierMessage>({
      init: () => null,
      handleCast(handle, _s, ctx) {
        handle.castArrive(ctx);
        return handle;
      },
      handleInfo(msg, s) {
        if (isBarrierMessage(msg)) seen.push(msg);
        return s;
      },
    });
    const w1 = rt.spawnSync(Worker, null, { name: 'w1' });
    const w2 = rt.spawnSync(Worker, null, { name: 'w2' });
    const h = await b.create({ parties: ['w1', 'w2'], deadlineMs: 50 });
    rt.cast(w1, h);
    rt.cast(w2, h);
    expect(await h.result).toMatchObject({ outcome: 'tripped' });
    await rt.whenMailboxBelow(w1, 1);
    await rt.whenMailboxBelow(w2, 1);
    expect(seen.map((m) => m.outcome)).toEqual(['tripped', 'tripped']);
  });

  it('names parties: registered names, {name, ref}, and plain refs by their pid', async () => {
    const b = await setup();
    const named = probe(rt, { name: 'named' });
    const [x, y] = [probe(rt), probe(rt)];
    const h = await b.create({ parties: [named.ref, { name: 'x', ref: x.ref }, y.ref], deadlineMs: 10 });
    expect(h.parties).toEqual(['named', 'x', y.ref.toString()]);
    // Arrive by name, by ref, by context.
    await h.arrive('named');
    await h.arrive(x.ref);
    await h.arrive(y.ctx);
    expect(await h.result).toMatchObject({ outcome: 'tripped' });
  });
});

describe('Barrier: failures', () => {
  it('a party that dies before arriving fails the barrier for all, naming it', async () => {
    const b = await setup();
    const [, pb] = parties('a', 'b', 'c');
    const failed = awaitTelemetry(rt, BARRIER_FAILED);
    const h = await b.create({ parties: ['a', 'b', 'c'], deadlineMs: 1000 });
    const a = h.await('a');
    await settled(b, h);
    rt.kill((pb as Probe).ref);
    const err = await rejection(a);
    expect(err).toBeInstanceOf(BarrierBrokenError);
    expect(err).toMatchObject({
      code: 'E_BARRIER_BROKEN',
      message: /party "b" exited with reason 'killed'/,
      result: {
        outcome: 'failed',
        reason: 'party_exit',
        party: 'b',
        exitReason: 'killed',
        arrived: ['a'],
        missing: ['b', 'c'],
      },
    });
    expect(await h.result).toMatchObject({ outcome: 'failed', reason: 'party_exit', party: 'b' });
    expect((await failed).metadata).toMatchObject({ reason: 'party_exit', party: 'b', id: h.id });
    // Late arrivals learn the failure too.
    await expect(h.await('c')).rejects.toMatchObject({ code: 'E_BARRIER_BROKEN', result: { party: 'b' } });
  });

  it('agents waiting by message get the failure as a message', async () => {
    const b = await setup();
    const [pa, pb] = parties('a', 'b') as [Probe, Probe];
    const h = await b.create({ parties: ['a', 'b'], deadlineMs: 1000 });
    h.castArrive(pa.ctx);
    await settled(b, h);
    rt.exit(pb.ref, 'boom');
    const msg = await pa.expectMessage<BarrierMessage>({ type: 'barrier', outcome: 'failed' });
    expect(msg).toMatchObject({ result: { reason: 'party_exit', party: 'b', exitReason: 'boom' } });
  });

  it('a party that is already dead when the barrier starts fails it at once', async () => {
    const b = await setup();
    const [pa, pb] = [probe(rt), probe(rt)];
    rt.kill(pb.ref);
    const h = await b.create({
      parties: [
        { name: 'a', ref: pa.ref },
        { name: 'b', ref: pb.ref },
      ],
      deadlineMs: 10,
    });
    expect(await h.result).toMatchObject({
      outcome: 'failed',
      reason: 'party_exit',
      party: 'b',
      exitReason: 'noproc',
    });
  });

  it('the deadline fails it with the names of the parties still missing (virtual clock)', async () => {
    const b = await setup();
    parties('a', 'b', 'c', 'd');
    const failed = awaitTelemetry(rt, BARRIER_FAILED);
    const h = await b.create({ parties: ['a', 'b', 'c', 'd'], deadlineMs: 100 });
    const a = watch(h.await('a'));
    await h.arrive('c');
    clock.advance(99);
    await settled(b, h);
    expect(a.current.state).toBe('pending');
    clock.advance(1);
    const r = (await h.result) as BarrierFailure;
    expect(r).toMatchObject({
      outcome: 'failed',
      reason: 'deadline',
      arrived: ['a', 'c'],
      missing: ['b', 'd'],
    });
    await flush();
    expect(a.current).toMatchObject({ state: 'rejected', reason: { code: 'E_BARRIER_BROKEN' } });
    expect((a.current as { reason: Error }).reason.message).toMatch(/2 of 4 parties missing: "b", "d"/);
    const ev = await failed;
    expect(ev.measurements).toEqual({ arrived: 2, missing: 2 });
    expect(ev.metadata).toMatchObject({ reason: 'deadline', missing: ['b', 'd'] });
  });

  it('a party dying after it arrived does not fail a one-shot barrier: its arrival stands', async () => {
    const b = await setup();
    const [pa] = parties('a', 'b');
    const h = await b.create({ parties: ['a', 'b'], deadlineMs: 100 });
    await h.arrive('a');
    rt.kill((pa as Probe).ref);
    await settled(b, h);
    expect(await h.await('b')).toMatchObject({ outcome: 'tripped' });
  });

  it('close fails it for everyone waiting with reason closed', async () => {
    const b = await setup();
    parties('a', 'b');
    const h = await b.create({ parties: ['a', 'b'], deadlineMs: 100 });
    const a = h.await('a');
    await h.close();
    await expect(a).rejects.toMatchObject({ result: { reason: 'closed', missing: ['b'] } });
    expect(await h.result).toMatchObject({ reason: 'closed' });
    await h.close(); // a no-op once ended
  });

  it('a killed session fails the barrier with session_exit; so does stopping the service', async () => {
    const b = await setup();
    parties('a', 'b');
    const h = await b.create({ parties: ['a', 'b'], deadlineMs: 100 });
    const a = h.await('a');
    await settled(b, h);
    rt.kill(h.ref);
    await expect(a).rejects.toMatchObject({ code: 'E_BARRIER_BROKEN', result: { reason: 'session_exit' } });
    expect(await h.result).toMatchObject({ reason: 'session_exit', exitReason: 'killed' });

    const h2 = await b.create({ parties: ['a', 'b'], deadlineMs: 100 });
    const failed = awaitTelemetry(rt, BARRIER_FAILED);
    await b.stop();
    expect(await h2.result).toMatchObject({ reason: 'session_exit', exitReason: 'shutdown' });
    expect((await failed).metadata.reason).toBe('session_exit');
  });
});

describe('Barrier: misuse', () => {
  it('arriving twice is E_BARRIER_ALREADY_ARRIVED; a non-party is E_BARRIER_NOT_PARTY', async () => {
    const b = await setup();
    const [, , outsider] = parties('a', 'b', 'z');
    const h = await b.create({ parties: ['a', 'b'], deadlineMs: 100 });
    await h.arrive('a');
    const twice = await rejection(h.await('a'));
    expect(twice).toBeInstanceOf(AlreadyArrivedError);
    expect(twice).toMatchObject({
      code: 'E_BARRIER_ALREADY_ARRIVED',
      party: 'a',
      message: /"a" already arrived/,
    });
    for (const who of ['z', (outsider as Probe).ref, 'nobody']) {
      const err = await rejection(h.arrive(who));
      expect(err).toBeInstanceOf(NotPartyError);
      expect(err).toMatchObject({ code: 'E_BARRIER_NOT_PARTY' });
    }
    expect(() => h.castArrive((outsider as Probe).ctx)).toThrow(NotPartyError);
    // The misuse did not disturb the barrier.
    expect(await h.await('b')).toMatchObject({ outcome: 'tripped' });
    // After a one-shot trip every party has arrived: arriving again is arriving twice.
    await expect(h.arrive('b')).rejects.toMatchObject({ code: 'E_BARRIER_ALREADY_ARRIVED' });
  });

  it('an agent arriving twice gets a refused message', async () => {
    const b = await setup();
    const [pa] = parties('a', 'b') as [Probe];
    const h = await b.create({ parties: ['a', 'b'], deadlineMs: 100 });
    h.castArrive(pa.ctx);
    h.castArrive(pa.ctx);
    const msg = await pa.expectMessage<BarrierMessage>({ type: 'barrier', outcome: 'refused' });
    expect(msg).toMatchObject({ error: { code: 'E_BARRIER_ALREADY_ARRIVED' } });
  });

  it.each([
    ['no parties (n < 1)', () => ({ parties: [], deadlineMs: 10 }), /invalid parties: .*n >= 1/],
    ['parties not an array', () => ({ parties: 'a', deadlineMs: 10 }), /invalid parties/],
    ['a duplicate party', () => ({ parties: ['a', 'a'], deadlineMs: 10 }), /parties\[1\].*duplicate party/],
    [
      'an unregistered name',
      () => ({ parties: ['a', 'ghost'], deadlineMs: 10 }),
      /parties\[1\].*not a registered name.*ghost/,
    ],
    ['a bad party', () => ({ parties: ['a', { id: 1 }], deadlineMs: 10 }), /parties\[1\]/],
    [
      'an empty party name',
      (a: AnyRef) => ({ parties: ['a', { name: '', ref: a }], deadlineMs: 10 }),
      /parties\[1\]\.name/,
    ],
    ['a negative deadline', () => ({ parties: ['a'], deadlineMs: -1 }), /deadlineMs.*-1/],
    ['a NaN deadline', () => ({ parties: ['a'], deadlineMs: Number.NaN }), /deadlineMs.*NaN/],
    ['a missing deadline', () => ({ parties: ['a'] }), /deadlineMs/],
    ['a string deadline', () => ({ parties: ['a'], deadlineMs: '10' }), /deadlineMs/],
    ['an unknown option', () => ({ parties: ['a'], deadlineMs: 10, n: 3 }), /option "n"/],
    ['a bad cyclic flag', () => ({ parties: ['a'], deadlineMs: 10, cyclic: 'yes' }), /cyclic/],
  ])('rejects %s with E_INVALID_ARGUMENT naming the field', async (_what, options, message) => {
    const b = await setup();
    const [pa] = parties('a');
    // biome-ignore lint/suspicious/noExplicitAny: deliberately ill-typed input
    const err = await rejection(b.create(options((pa as Probe).ref) as any));
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect(err).toMatchObject({ code: 'E_INVALID_ARGUMENT', message });
  });

  it('rejects the same agent given twice under different names', async () => {
    const b = await setup();
    const [pa] = parties('a');
    const ref = (pa as Probe).ref as AnyRef;
    await expect(
      b.create({
        parties: [
          { name: 'x', ref },
          { name: 'y', ref },
        ],
        deadlineMs: 10,
      }),
    ).rejects.toMatchObject({
      code: 'E_INVALID_ARGUMENT',
      message: /parties\[1\].*same agent as parties\[0\]/,
    });
  });
});

describe('Barrier: cyclic', () => {
  it('re-arms after each trip with a fresh deadline, until closed', async () => {
    const b = await setup();
    parties('a', 'b');
    const h = await b.create({ parties: ['a', 'b'], deadlineMs: 100, cyclic: true });
    const g0 = await Promise.all([h.await('a'), h.await('b')]);
    expect(g0.map((r) => r.generation)).toEqual([0, 0]);
    clock.advance(90); // generation 1 started at the trip: its deadline is 100 ms from then
    const g1 = await Promise.all([h.await('b'), h.await('a')]);
    expect(g1.map((r) => [r.generation, r.elapsedMs])).toEqual([
      [1, 90],
      [1, 90],
    ]);
    expect(await h.arrive('a')).toBe(2);
    clock.advance(99);
    await settled(b, h);
    clock.advance(1);
    expect(await h.result).toMatchObject({
      outcome: 'failed',
      reason: 'deadline',
      generation: 2,
      missing: ['b'],
    });
  });

  it('a party that died after arriving fails the next generation at once, naming it', async () => {
    const b = await setup();
    const [pa] = parties('a', 'b');
    const h = await b.create({ parties: ['a', 'b'], deadlineMs: 100, cyclic: true });
    await h.arrive('a');
    rt.kill((pa as Probe).ref);
    await settled(b, h);
    expect(await h.await('b')).toMatchObject({ outcome: 'tripped', generation: 0 });
    expect(await h.result).toMatchObject({ reason: 'party_exit', party: 'a', generation: 1 });
  });

  it('close ends a cyclic barrier', async () => {
    const b = await setup();
    parties('a', 'b');
    const h = await b.create({ parties: ['a', 'b'], deadlineMs: Number.POSITIVE_INFINITY, cyclic: true });
    await Promise.all([h.arrive('a'), h.arrive('b')]);
    await h.close();
    expect(await h.result).toMatchObject({ reason: 'closed', generation: 1, missing: ['a', 'b'] });
    expect(clock.pending).toBe(0); // no deadline timer was armed
  });
});

describe('Barrier: castArrive is always answered (regressions)', () => {
  /** The barrier messages a probe has received, in order. */
  function barrierMessages(p: Probe): BarrierMessage[] {
    return p.received.map((r) => r.message).filter(isBarrierMessage);
  }

  /** A party that arrives by castArrive on 'arrive' and crashes on 'crash'; records barrier messages. */
  const Party = behaviour<
    { box: { h?: BarrierHandle }; got: BarrierMessage[] },
    { box: { h?: BarrierHandle }; got: BarrierMessage[] },
    never,
    never,
    string,
    unknown
  >({
    init: (s) => s,
    handleCast(msg, s, ctx) {
      if (msg === 'crash') throw new Error('boom');
      if (msg === 'arrive') s.box.h?.castArrive(ctx);
      return s;
    },
    handleInfo(msg, s) {
      if (isBarrierMessage(msg)) s.got.push(msg);
      return s;
    },
  });
  /** Casts each message of a list to its target from inside one handler (so they queue in order). */
  const Driver = behaviour<void, void, never, never, [AnyRef, string][]>({
    init: () => undefined,
    handleCast(list, s, ctx) {
      for (const [to, m] of list) ctx.cast(to as never, m);
      return s;
    },
  });
  /** Run `fn` inside an agent's handler: messages it sends queue rather than run inline. */
  function inHandler(fn: () => void): void {
    const Runner = behaviour<void, void, never, never, () => void>({
      init: () => undefined,
      handleCast(f, s) {
        f();
        return s;
      },
    });
    rt.cast(rt.spawnSync(Runner, undefined), fn);
  }

  it('an arrival queued behind the DOWN that fails the barrier is refused with the failure', async () => {
    const b = await setup();
    const box: { h?: BarrierHandle } = {};
    const aGot: BarrierMessage[] = [];
    const pa = rt.spawnSync(Party, { box, got: aGot });
    const pb = rt.spawnSync(Party, { box, got: [] });
    const h = await b.create({
      parties: [
        { name: 'a', ref: pa },
        { name: 'b', ref: pb },
      ],
      deadlineMs: 1000,
    });
    box.h = h;
    const driver = rt.spawnSync(Driver, undefined);
    // In one drain: B crashes (its DOWN goes to the session), then A arrives by castArrive.
    rt.cast(driver, [
      [pb, 'crash'],
      [pa, 'arrive'],
    ]);
    expect(await h.result).toMatchObject({ outcome: 'failed', reason: 'party_exit', party: 'b' });
    await rt.whenMailboxBelow(pa, 1);
    await flush();
    await rt.whenMailboxBelow(pa, 1);
    expect(aGot).toHaveLength(1);
    const msg = aGot[0] as BarrierMessage & { outcome: 'refused' };
    expect(msg).toMatchObject({ type: 'barrier', id: h.id, outcome: 'refused' });
    expect(msg.error).toBeInstanceOf(BarrierBrokenError);
    expect(msg.error).toMatchObject({ result: { reason: 'party_exit', party: 'b', missing: ['a', 'b'] } });
  });

  it('a second arrival queued behind the one that trips a one-shot barrier is refused as arrived twice', async () => {
    const b = await setup();
    const [pa, pb] = parties('a', 'b') as [Probe, Probe];
    const h = await b.create({ parties: ['a', 'b'], deadlineMs: 1000 });
    inHandler(() => {
      h.castArrive(pa.ctx);
      h.castArrive(pb.ctx);
      h.castArrive(pa.ctx); // still in the mailbox when the trip stops the session
    });
    await pa.expectMessage({ type: 'barrier', outcome: 'refused' });
    expect(barrierMessages(pa).map((m) => m.outcome)).toEqual(['tripped', 'refused']);
    const refused = barrierMessages(pa)[1] as BarrierMessage & { outcome: 'refused' };
    expect(refused.error).toBeInstanceOf(AlreadyArrivedError);
    expect(refused.error).toMatchObject({ party: 'a', generation: 0 });
    // Once ended, a castArrive is answered at once, without the session.
    h.castArrive(pb.ctx);
    await pb.expectMessage({
      type: 'barrier',
      outcome: 'refused',
      error: { code: 'E_BARRIER_ALREADY_ARRIVED' },
    });
    expect(barrierMessages(pb).map((m) => m.outcome)).toEqual(['tripped', 'refused']);
  });

  it('an arrival in the mailbox of a killed session is refused with session_exit', async () => {
    const b = await setup();
    const [pa, pb] = parties('a', 'b') as [Probe, Probe];
    const h = await b.create({ parties: ['a', 'b'], deadlineMs: 1000 });
    inHandler(() => {
      h.castArrive(pa.ctx);
      rt.kill(h.ref); // before the session has read the arrival
    });
    const msg = await pa.expectMessage<BarrierMessage & { outcome: 'refused' }>({
      type: 'barrier',
      outcome: 'refused',
    });
    expect(msg.error).toBeInstanceOf(BarrierBrokenError);
    expect(msg.error).toMatchObject({ result: { reason: 'session_exit', exitReason: 'killed' } });
    expect(await h.result).toMatchObject({ reason: 'session_exit' });
    // After the session is gone: refused with the recorded failure, not as arrived twice.
    h.castArrive(pb.ctx);
    await pb.expectMessage({ type: 'barrier', outcome: 'refused', error: { code: 'E_BARRIER_BROKEN' } });
    await expect(h.arrive('b')).rejects.toMatchObject({
      code: 'E_BARRIER_BROKEN',
      result: { reason: 'session_exit' },
    });
    expect(barrierMessages(pa)).toHaveLength(1);
    expect(barrierMessages(pb)).toHaveLength(1);
  });

  it('closing with an arrival queued refuses it with closed', async () => {
    const b = await setup();
    const [pa] = parties('a', 'b') as [Probe];
    const h = await b.create({ parties: ['a', 'b'], deadlineMs: 1000 });
    let closed: Promise<void> | undefined;
    inHandler(() => {
      closed = h.close(); // queued ahead of the arrival
      h.castArrive(pa.ctx);
    });
    await closed;
    expect(await h.result).toMatchObject({ reason: 'closed', arrived: [] });
    await pa.expectMessage({ type: 'barrier', outcome: 'refused', error: { result: { reason: 'closed' } } });
    expect(barrierMessages(pa)).toHaveLength(1);
  });

  it('cyclic: an arrival queued behind a trip counts in the next generation', async () => {
    const b = await setup();
    const [pa, pb] = parties('a', 'b') as [Probe, Probe];
    const h = await b.create({ parties: ['a', 'b'], deadlineMs: 1000, cyclic: true });
    inHandler(() => {
      h.castArrive(pa.ctx);
      h.castArrive(pb.ctx);
      h.castArrive(pa.ctx); // generation 1
    });
    await settled(b, h);
    expect(await h.arrive('b')).toBe(1);
    await pa.expectMessage({ type: 'barrier', outcome: 'tripped', result: { generation: 1 } });
    expect(barrierMessages(pa).map((m) => m.outcome)).toEqual(['tripped', 'tripped']);
    await h.close();
  });
});
