import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  COMMIT_EVENT,
  type EventMessage,
  EventStore,
  EventStoreErrorCodes,
  MemoryEventLog,
  type StoredEvent,
  SUBSCRIBER_FAILED_EVENT,
  type Subscription,
  SubscriptionEndedError,
} from '../../src/foundation/event-store/index.js';
import { behaviour, InvalidArgumentError, Runtime, reply } from '../../src/kernel/index.js';
import { awaitTelemetry, probe } from '../../src/kernel/testkit.js';
import { BACKENDS, collector, endOf, range, seqs, tempDir, turn } from './event-store-helpers.js';

let tmp: ReturnType<typeof tempDir>;
let rt: Runtime;

beforeEach(() => {
  tmp = tempDir();
  rt = new Runtime();
});

afterEach(async () => {
  await rt.shutdown();
  tmp.cleanup();
});

const ev = (i: number) => ({ type: 't', data: i });

describe.each(BACKENDS)('$kind backend', ({ open }) => {
  it('catches up from the log, then follows live commits', async () => {
    const store = await open(rt, tmp.dir);
    await store.appendBatch(range(1, 10).map(ev));
    const got = collector();
    const sub = store.subscribe(1, got.handler);
    expect(sub.state).toBe('catching_up');
    await sub.caughtUp();
    expect(sub.state).toBe('live');
    expect(seqs(got.events)).toEqual(range(1, 10));
    expect(sub.position).toBe(11);
    await store.append(ev(11));
    await store.appendBatch([ev(12), ev(13)]);
    expect(seqs(await got.waitFor(13))).toEqual(range(1, 13));
    expect(got.events.map((e) => e.data)).toEqual(range(1, 13));
    sub.unsubscribe();
    expect(await sub.ended()).toEqual({ reason: 'unsubscribed' });
  });

  it('starts at fromSeq, also past the end of the log', async () => {
    const store = await open(rt, tmp.dir);
    await store.appendBatch(range(1, 6).map(ev));
    const middle = collector();
    const future = collector();
    const a = store.subscribe(4, middle.handler);
    const b = store.subscribe(9, future.handler);
    await Promise.all([a.caughtUp(), b.caughtUp()]);
    expect(seqs(middle.events)).toEqual([4, 5, 6]);
    expect(future.events).toEqual([]);
    await store.appendBatch(range(7, 10).map(ev));
    expect(seqs(await middle.waitFor(7))).toEqual(range(4, 10));
    expect(seqs(await future.waitFor(2))).toEqual([9, 10]);
  });

  it('has no gap and no duplicate when appends race the catch-up', async () => {
    const store = await open(rt, tmp.dir);
    await store.appendBatch(range(1, 300).map(ev));
    // Slow, async subscribers reading small pages, so the catch-up spans many commits; one of them
    // buffers so little that it keeps falling back from live to the log.
    const slow = collector(() => turn());
    const tiny = collector((e) => (e.seq % 3 === 0 ? turn() : undefined));
    const fast = collector();
    const subs = [
      store.subscribe(1, slow.handler, { pageSize: 7 }),
      store.subscribe(1, tiny.handler, { pageSize: 5, maxBuffer: 2 }),
      store.subscribe(1, fast.handler, { pageSize: 50 }),
    ];
    // Sample each subscription's state at every commit, to show the race really happened.
    const states = subs.map(() => [] as string[]);
    rt.telemetry.attach('race-states', COMMIT_EVENT, () => {
      for (const [i, sub] of subs.entries()) states[i]?.push(sub.state);
    });
    // Appenders race the catch-up: single appends and batches, awaited in small groups.
    let next = 301;
    const appenders = range(1, 3).map(async (k) => {
      for (let round = 0; round < 20; round++) {
        if (k === 1) await store.appendBatch(range(0, 4).map(() => ev(0)));
        else await Promise.all(range(0, 4).map(() => store.append(ev(0))));
        next += 5;
      }
    });
    await Promise.all(appenders);
    expect(store.lastSeq).toBe(600);
    for (const c of [slow, tiny, fast]) expect(seqs(await c.waitFor(600))).toEqual(range(1, 600));
    // Commits landed while the slow one was still catching up.
    expect(states[0]).toContain('catching_up');
    // Now all are live; bursts larger than the tiny buffer send that one back to the log.
    for (const sub of subs) expect(sub.state).toBe('live');
    for (let i = 0; i < 3; i++) await store.appendBatch(range(1, 20).map(ev));
    for (const c of [slow, tiny, fast]) expect(seqs(await c.waitFor(660))).toEqual(range(1, 660));
    expect((states[1] as string[]).slice(-3)).toContain('catching_up');
    for (const sub of subs) expect(sub.state).toBe('live');
    expect(next).toBe(601);
  });

  it('delivers to an agent as EventMessages, and ends when the agent exits', async () => {
    const store = await open(rt, tmp.dir);
    await store.appendBatch(range(1, 3).map(ev));
    const p = probe(rt);
    const sub = store.subscribe(2, p.ref);
    for (const seq of [2, 3]) {
      const msg = await p.expectMessage<EventMessage>({ type: 'mabeam.event', subscription: sub.id });
      expect(msg.event).toMatchObject({ seq, data: seq });
    }
    await store.append(ev(4));
    expect((await p.expectMessage<EventMessage>({ type: 'mabeam.event' })).event.seq).toBe(4);
    rt.kill(p.ref);
    expect(await endOf(sub)).toEqual({ reason: 'subscriber_exited' });
    await store.append(ev(5)); // nothing is sent to the dead agent
  });
});

describe('subscriptions (memory backend)', () => {
  async function memoryStore(): Promise<EventStore> {
    return EventStore.start(rt, { backend: new MemoryEventLog() });
  }

  it('waits for an async handler before the next event', async () => {
    const store = await memoryStore();
    let running = 0;
    let overlap = false;
    const got = collector(async () => {
      running++;
      if (running > 1) overlap = true;
      await turn();
      running--;
    });
    store.subscribe(1, got.handler);
    await Promise.all(range(1, 50).map((i) => store.append(ev(i))));
    await got.waitFor(50);
    expect(overlap).toBe(false);
    expect(seqs(got.events)).toEqual(range(1, 50));
  });

  it('ends a subscription whose handler throws, reporting it, at the failed event', async () => {
    const store = await memoryStore();
    await store.appendBatch(range(1, 5).map(ev));
    const boom = new Error('boom');
    const reported = awaitTelemetry(rt, SUBSCRIBER_FAILED_EVENT);
    const seen: number[] = [];
    const sub = store.subscribe(1, (e) => {
      if (e.seq === 3) throw boom;
      seen.push(e.seq);
    });
    expect(await endOf(sub)).toEqual({ reason: 'failed', error: boom });
    expect((await reported).metadata).toMatchObject({ subscription: sub.id, position: 3, error: boom });
    expect(seen).toEqual([1, 2]);
    expect(sub.position).toBe(3); // resubscribe from here to retry
    expect(sub.state).toBe('ended');
    await expect(sub.caughtUp()).rejects.toBeInstanceOf(SubscriptionEndedError);
    const rejected = store.subscribe(1, async (e) => {
      if (e.seq === 2) throw boom;
    });
    expect(await endOf(rejected)).toMatchObject({ reason: 'failed', error: boom });
  });

  it('rejects caughtUp when unsubscribed before catching up; unsubscribe is idempotent', async () => {
    const store = await memoryStore();
    await store.appendBatch(range(1, 5).map(ev));
    const sub = store.subscribe(1, () => {});
    const caught = sub.caughtUp();
    sub.unsubscribe();
    sub.unsubscribe();
    const error = await caught.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SubscriptionEndedError);
    expect((error as SubscriptionEndedError).code).toBe(EventStoreErrorCodes.STORE_SUBSCRIPTION_ENDED);
    expect(await sub.ended()).toEqual({ reason: 'unsubscribed' });
  });

  it('stops delivering after unsubscribe, even with events buffered', async () => {
    const store = await memoryStore();
    let sub: Subscription | undefined;
    const got = collector((e) => {
      if (e.seq === 2) sub?.unsubscribe();
    });
    sub = store.subscribe(1, got.handler);
    await store.appendBatch(range(1, 10).map(ev));
    await sub.ended();
    await store.append(ev(11));
    await turn();
    expect(seqs(got.events)).toEqual([1, 2]);
  });

  it('ends subscriptions with store_closed when the store closes', async () => {
    const store = await memoryStore();
    const sub = store.subscribe(1, () => {});
    await sub.caughtUp();
    await store.close();
    expect(await sub.ended()).toEqual({ reason: 'store_closed' });
  });

  it('paces an agent with a bounded mailbox: it never overflows, nothing is lost', async () => {
    const store = await memoryStore();
    let releaseBusy!: () => void;
    const released = new Promise<void>((resolve) => {
      releaseBusy = resolve;
    });
    const seen: number[] = [];
    // Busy in an async handler, so events would pile up in a mailbox that holds two.
    const Busy = behaviour<void, null, 'block', void, never, EventMessage>({
      init: () => null,
      async handleCall(_msg, _from, state) {
        await released;
        return reply(undefined, state);
      },
      handleInfo: (msg, state) => {
        if (msg.type === 'mabeam.event') seen.push(msg.event.seq);
        return state;
      },
    });
    const busy = await rt.spawn(Busy, undefined, { mailbox: { capacity: 2, overflow: 'drop_newest' } });
    const blocked = rt.call(busy, 'block');
    const sub = store.subscribe(1, busy);
    await store.appendBatch(range(1, 5).map(ev));
    for (let i = 0; i < 20; i++) await turn();
    expect(rt.info(busy)).toMatchObject({ mailboxLength: 2, dropped: 0 });
    expect(sub.state).not.toBe('ended');
    releaseBusy();
    await blocked;
    for (let i = 0; i < 1000 && seen.length < 5; i++) await turn();
    expect(seen).toEqual(range(1, 5));
    expect(rt.info(busy)?.dropped).toBe(0);
  });

  it('paces an agent subscriber: at most maxBuffer events in its mailbox, the rest stay in the log', async () => {
    const store = await memoryStore();
    await store.appendBatch(range(1, 2000).map(ev));
    let release!: () => void;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    const seen: number[] = [];
    const Slow = behaviour<void, null, never, never, never, EventMessage>({
      init: () => null,
      async handleInfo(msg, state) {
        await released;
        if (msg.type === 'mabeam.event') seen.push(msg.event.seq);
        return state;
      },
    });
    const slow = await rt.spawn(Slow, undefined);
    const sub = store.subscribe(1, slow, { pageSize: 10, maxBuffer: 10 });
    for (let i = 0; i < 100; i++) await turn();
    expect(rt.info(slow)?.mailboxLength).toBeLessThanOrEqual(10);
    expect(sub.position).toBeLessThanOrEqual(1 + 11); // 10 waiting + the one being handled
    await store.appendBatch(range(2001, 2100).map(ev)); // live commits while it is behind
    for (let i = 0; i < 20; i++) await turn();
    expect(rt.info(slow)?.mailboxLength).toBeLessThanOrEqual(10);
    release();
    for (let i = 0; i < 20_000 && seen.length < 2100; i++) await turn();
    expect(seen).toEqual(range(1, 2100));
    await sub.caughtUp();
  });

  it('refuses bad arguments at once', async () => {
    const store = await memoryStore();
    const cases: [unknown[], string][] = [
      [[-1, () => {}], 'fromSeq'],
      [[1.5, () => {}], 'fromSeq'],
      [[1, 'handler'], 'subscriber'],
      [[1, { node: 'x' }], 'subscriber'],
      [[1, () => {}, { pageSize: 0 }], 'subscribe option "pageSize"'],
      [[1, () => {}, { maxBuffer: 1.5 }], 'subscribe option "maxBuffer"'],
      [[1, () => {}, { colour: 1 }], 'subscribe option "colour"'],
    ];
    for (const [args, field] of cases) {
      let error: unknown;
      try {
        (store.subscribe as (...a: unknown[]) => unknown)(...args);
      } catch (e) {
        error = e;
      }
      expect(error, field).toBeInstanceOf(InvalidArgumentError);
      expect((error as InvalidArgumentError).argument).toBe(field);
    }
    const p = probe(rt);
    rt.kill(p.ref);
    expect(() => store.subscribe(1, p.ref)).toThrow(/live agent/);
    // A drop_oldest mailbox could lose events silently: refused.
    const lossy = await rt.spawn(
      behaviour<void, null, never, never, never, EventMessage>({
        init: () => null,
        handleInfo: (_m, s) => s,
      }),
      undefined,
      { mailbox: { capacity: 4, overflow: 'drop_oldest' } },
    );
    expect(() => store.subscribe(1, lossy)).toThrow(InvalidArgumentError);
    expect(() => store.subscribe(1, lossy)).toThrow(/drop_oldest/);
  });

  it('property: every subscription sees exactly [fromSeq, lastSeq], whatever the interleaving', async () => {
    type Step =
      | { op: 'append'; n: number; batch: boolean }
      | { op: 'subscribe'; from: number; pageSize: number; maxBuffer: number; async: boolean }
      | { op: 'turn' }
      | { op: 'microtask' };
    const step = fc.oneof(
      fc.record({
        op: fc.constant('append' as const),
        n: fc.integer({ min: 1, max: 6 }),
        batch: fc.boolean(),
      }),
      fc.record({
        op: fc.constant('subscribe' as const),
        from: fc.integer({ min: 0, max: 30 }),
        pageSize: fc.integer({ min: 1, max: 6 }),
        maxBuffer: fc.integer({ min: 1, max: 6 }),
        async: fc.boolean(),
      }),
      fc.constant({ op: 'turn' as const }),
      fc.constant({ op: 'microtask' as const }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 30 }), async (steps: Step[]) => {
        const runtime = new Runtime();
        try {
          const store = await EventStore.start(runtime, { backend: new MemoryEventLog(), maxBatch: 4 });
          const pending: Promise<unknown>[] = [];
          const subs: { from: number; got: ReturnType<typeof collector> }[] = [];
          for (const s of steps) {
            if (s.op === 'append') {
              const events = range(1, s.n).map(ev);
              if (s.batch) pending.push(store.appendBatch(events));
              else for (const e of events) pending.push(store.append(e));
            } else if (s.op === 'subscribe') {
              const got = collector(s.async ? () => turn() : undefined);
              store.subscribe(s.from, got.handler, { pageSize: s.pageSize, maxBuffer: s.maxBuffer });
              subs.push({ from: s.from, got });
            } else if (s.op === 'turn') {
              await turn();
            } else {
              await Promise.resolve();
            }
          }
          await Promise.all(pending);
          const last = store.lastSeq;
          for (const { from, got } of subs) {
            const want = range(Math.max(from, 1), last);
            const events: StoredEvent[] = await got.waitFor(want.length);
            await turn();
            expect(seqs(events)).toEqual(want);
          }
        } finally {
          await runtime.shutdown();
        }
      }),
      { numRuns: 60 },
    );
  });
});
