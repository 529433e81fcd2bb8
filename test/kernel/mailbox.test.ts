import { afterEach, describe, expect, it } from 'vitest';
import {
  type AnyRef,
  behaviour,
  ErrorCodes,
  MailboxFullError,
  type OverflowPolicy,
  Runtime,
  reply,
  VirtualClock,
} from '../../src/kernel/index.js';
import { awaitTelemetry, probe } from '../../src/kernel/testkit.js';
import { type Deferred, deferred, flush } from './helpers.js';

const runtimes: Runtime[] = [];
function runtime(options?: ConstructorParameters<typeof Runtime>[0]): Runtime {
  const rt = new Runtime(options);
  runtimes.push(rt);
  return rt;
}
/** Every gate a test created; released before shutdown so no agent is left awaiting. */
const gates: Deferred<void>[] = [];
function newGate(): Deferred<void> {
  const g = deferred();
  gates.push(g);
  return g;
}
afterEach(async () => {
  for (const g of gates.splice(0)) g.resolve();
  await Promise.all(runtimes.splice(0).map((rt) => rt.shutdown()));
});

type Cast = { block: Deferred<void> } | { monitor: AnyRef } | number | string;

/**
 * Forwards every cast and info to `report`; `{block}` holds the agent (async) until released, so
 * the test can fill its mailbox deterministically.
 */
const Sink = behaviour<AnyRef, AnyRef, unknown, unknown, Cast, unknown>({
  init: (report) => report,
  handleCall: (msg, _from, r) => reply(msg, r),
  async handleCast(msg, r, ctx) {
    if (typeof msg === 'object' && 'block' in msg) {
      await msg.block.promise;
      return r;
    }
    if (typeof msg === 'object' && 'monitor' in msg) {
      ctx.monitor(msg.monitor);
      return r;
    }
    ctx.send(r, { cast: msg });
    return r;
  },
  handleInfo(msg, r, ctx) {
    ctx.send(r, { info: msg });
    return r;
  },
});

async function blockedSink(rt: Runtime, capacity: number, overflow?: OverflowPolicy) {
  const report = probe(rt);
  const mailbox = overflow === undefined ? { capacity } : { capacity, overflow };
  const ref = await rt.spawn(Sink, report.ref, { mailbox });
  const gate = newGate();
  rt.cast(ref, { block: gate });
  await flush();
  expect(rt.info(ref)?.status).toBe('awaiting');
  return { ref, report, gate };
}

describe('bounded mailboxes', () => {
  it('reject (the default): a cast past capacity throws E_MAILBOX_FULL to the sender', async () => {
    const rt = runtime();
    const { ref, report, gate } = await blockedSink(rt, 2);
    expect(rt.cast(ref, 1)).toBe(true);
    expect(rt.cast(ref, 2)).toBe(true);
    let error: unknown;
    try {
      rt.cast(ref, 3);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(MailboxFullError);
    expect((error as MailboxFullError).code).toBe(ErrorCodes.MAILBOX_FULL);
    expect((error as MailboxFullError).capacity).toBe(2);
    expect((error as Error).message).toContain(String(ref));
    expect(() => rt.send(ref, 4)).toThrow(MailboxFullError);
    expect(rt.info(ref)?.mailboxLength).toBe(2);
    expect(rt.info(ref)?.mailboxCapacity).toBe(2);
    gate.resolve();
    await report.expectMessage({ cast: 1 });
    await report.expectMessage({ cast: 2 });
    await report.refuteMessage(() => true);
    // Room again once drained.
    expect(rt.cast(ref, 5)).toBe(true);
    await report.expectMessage({ cast: 5 });
  });

  it('reject: a call past capacity rejects with E_MAILBOX_FULL', async () => {
    const rt = runtime();
    const { ref } = await blockedSink(rt, 1);
    rt.cast(ref, 1);
    await expect(rt.call(ref, 'q')).rejects.toBeInstanceOf(MailboxFullError);
  });

  it('reject: an agent casting to a full mailbox gets the error in its own handler', async () => {
    const rt = runtime();
    const { ref } = await blockedSink(rt, 1);
    rt.cast(ref, 1);
    const Sender = behaviour<AnyRef, AnyRef, 'go', string>({
      init: (t) => t,
      handleCall(_m, _f, t, ctx) {
        try {
          ctx.cast(t, 2);
          return reply('sent', t);
        } catch (e) {
          return reply((e as MailboxFullError).code, t);
        }
      },
    });
    const sender = await rt.spawn(Sender, ref);
    expect(await rt.call(sender, 'go')).toBe(ErrorCodes.MAILBOX_FULL);
  });

  it('drop_oldest keeps the newest messages and counts the dropped ones', async () => {
    const rt = runtime();
    const { ref, report, gate } = await blockedSink(rt, 3, 'drop_oldest');
    for (let i = 1; i <= 5; i++) expect(rt.cast(ref, i)).toBe(true);
    expect(rt.info(ref)?.mailboxLength).toBe(3);
    expect(rt.info(ref)?.dropped).toBe(2);
    gate.resolve();
    for (const i of [3, 4, 5]) await report.expectMessage({ cast: i });
    await report.refuteMessage(() => true);
  });

  it('drop_newest keeps the oldest messages, returns false for dropped ones and counts them', async () => {
    const rt = runtime();
    const { ref, report, gate } = await blockedSink(rt, 3, 'drop_newest');
    const accepted = [1, 2, 3, 4, 5].map((i) => rt.cast(ref, i));
    expect(accepted).toEqual([true, true, true, false, false]);
    expect(rt.send(ref, 6)).toBe(false);
    expect(rt.info(ref)?.dropped).toBe(3);
    gate.resolve();
    for (const i of [1, 2, 3]) await report.expectMessage({ cast: i });
    await report.refuteMessage(() => true);
  });

  it('a call dropped by drop_newest, or pushed out by drop_oldest, rejects with E_MAILBOX_FULL', async () => {
    const rt = runtime();
    const newest = await blockedSink(rt, 1, 'drop_newest');
    rt.cast(newest.ref, 1);
    await expect(rt.call(newest.ref, 'late')).rejects.toBeInstanceOf(MailboxFullError);

    const oldest = await blockedSink(rt, 1, 'drop_oldest');
    const pushedOut = rt.call(oldest.ref, 'early').catch((e: unknown) => e);
    rt.cast(oldest.ref, 2);
    expect(await pushedOut).toBeInstanceOf(MailboxFullError);
    oldest.gate.resolve();
    await oldest.report.expectMessage({ cast: 2 });
  });

  it('emits a mailbox overflow telemetry event with the policy', async () => {
    const rt = runtime();
    for (const policy of ['reject', 'drop_oldest', 'drop_newest'] as const) {
      const { ref, gate } = await blockedSink(rt, 1, policy);
      rt.cast(ref, 1);
      const event = awaitTelemetry(rt, ['mabeam', 'mailbox', 'overflow'], (_m, md) =>
        (md.pid as AnyRef).equals(ref),
      );
      try {
        rt.cast(ref, 2);
      } catch {
        // reject policy
      }
      const { measurements, metadata } = await event;
      expect(metadata.policy).toBe(policy);
      expect(measurements.length).toBe(1);
      gate.resolve();
    }
  });

  it('system messages (DOWN) are never refused by a full mailbox', async () => {
    const rt = runtime();
    const report = probe(rt);
    const target = await rt.spawn(Sink, report.ref);
    const sink = await rt.spawn(Sink, report.ref, { mailbox: { capacity: 1 } });
    rt.cast(sink, { monitor: target });
    await flush();
    const gate = newGate();
    rt.cast(sink, { block: gate });
    await flush();
    rt.cast(sink, 1);
    expect(() => rt.cast(sink, 2)).toThrow(MailboxFullError);
    rt.kill(target);
    expect(rt.info(sink)?.mailboxLength).toBe(2);
    gate.resolve();
    await report.expectMessage({ cast: 1 });
    await report.expectMessage({ info: { type: 'DOWN', pid: target, reason: 'killed' } });
  });

  it('drop_oldest never drops system messages (DOWN, stop requests)', async () => {
    const rt = runtime();
    const report = probe(rt);
    const target = await rt.spawn(Sink, report.ref);
    const sink = await rt.spawn(Sink, report.ref, { mailbox: { capacity: 2, overflow: 'drop_oldest' } });
    rt.cast(sink, { monitor: target });
    const gate = newGate();
    rt.cast(sink, { block: gate });
    await flush();
    rt.kill(target); // DOWN now heads the mailbox
    for (let i = 1; i <= 4; i++) rt.cast(sink, i);
    gate.resolve();
    await report.expectMessage({ info: { type: 'DOWN', pid: target } });
    await report.expectMessage({ cast: 4 });
    await report.refuteMessage({ cast: () => true });
    expect(rt.info(sink)?.dropped).toBe(3);

    // A stop request at the head survives too.
    const gate2 = newGate();
    rt.cast(sink, { block: gate2 });
    await flush();
    const stopped = rt.stop(sink, 'normal');
    for (let i = 5; i <= 8; i++) rt.cast(sink, i);
    gate2.resolve();
    await stopped;
    expect(rt.isAlive(sink)).toBe(false);
  });

  it('a timer firing into a full reject mailbox drops the message instead of throwing', async () => {
    const clock = new VirtualClock();
    const rt = runtime({ clock });
    const { ref, report, gate } = await blockedSink(rt, 1);
    rt.cast(ref, 1);
    rt.sendAfter(ref, 'tick', 10);
    let thrown: unknown;
    try {
      clock.advance(10);
    } catch (e) {
      thrown = e;
    }
    if (thrown !== undefined) gate.resolve();
    expect(thrown).toBeUndefined();
    expect(rt.info(ref)?.dropped).toBe(1);
    gate.resolve();
    await report.expectMessage({ cast: 1 });
    await report.refuteMessage({ info: 'tick' });
  });

  it('unbounded mailboxes hold many messages and report their length', async () => {
    const rt = runtime();
    const { ref, report, gate } = await blockedSink(rt, 1_000_000);
    for (let i = 0; i < 10_000; i++) rt.cast(ref, i);
    expect(rt.info(ref)?.mailboxLength).toBe(10_000);
    expect(rt.info(ref)?.dropped).toBe(0);
    gate.resolve();
    await report.expectMessage({ cast: 9_999 }, { timeout: 5000 });
    expect(rt.info(ref)?.mailboxLength).toBe(0);
  });

  it('rejects invalid mailbox options naming the value', async () => {
    const rt = runtime();
    const report = probe(rt);
    for (const [mailbox, text] of [
      [{ capacity: 0 }, '0'],
      [{ capacity: 1.5 }, '1.5'],
      [{ capacity: '3' }, '"3"'],
      [{ capacity: 1, overflow: 'drop_all' }, 'drop_all'],
      [7, '7'],
    ] as const) {
      const error = await rt.spawn(Sink, report.ref, { mailbox: mailbox as never }).catch((e: unknown) => e);
      expect((error as { code: string }).code).toBe(ErrorCodes.INVALID_ARGUMENT);
      expect((error as Error).message).toContain(text);
    }
  });
});

describe('whenMailboxBelow', () => {
  it('resolves as the agent takes messages, at once when already below, and when the agent exits', async () => {
    const rt = runtime();
    const gate = deferred();
    const Slow = behaviour<void, null, never, never, number>({
      init: () => null,
      async handleCast(_m, s) {
        await gate.promise;
        return s;
      },
    });
    const slow = rt.spawnSync(Slow, undefined);
    for (let i = 0; i < 6; i++) rt.cast(slow, i); // one running, five queued
    expect(rt.info(slow)?.mailboxLength).toBe(5);
    let woke = -1;
    const below = rt.whenMailboxBelow(slow, 3).then(() => {
      woke = rt.info(slow)?.mailboxLength ?? -1;
    });
    await flush();
    expect(woke).toBe(-1);
    gate.resolve(); // every handler now finishes at once: the queue drains
    await below;
    expect(woke).toBeLessThan(3);
    await rt.whenMailboxBelow(slow, 1);
    await expect(rt.whenMailboxBelow(slow, 0)).rejects.toMatchObject({ code: 'E_INVALID_ARGUMENT' });

    const gate2 = deferred();
    const Stuck = behaviour<void, null, never, never, number>({
      init: () => null,
      handleCast: async (_m, s) => {
        await gate2.promise;
        return s;
      },
    });
    const held = rt.spawnSync(Stuck, undefined);
    for (let i = 0; i < 4; i++) rt.cast(held, i);
    const onExit = rt.whenMailboxBelow(held, 1);
    rt.kill(held);
    await onExit; // an exit wakes waiters instead of leaving them hanging
    expect(rt.isAlive(held)).toBe(false);
  });
});
