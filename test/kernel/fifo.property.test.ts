/**
 * FIFO per sender-receiver pair: whatever the interleaving of senders (external code and agents),
 * the mix of cast/send/call, priorities, slice sizes and async handlers, every receiver sees each
 * sender's messages in the order that sender sent them, and sees all of them.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type AnyRef, behaviour, type PriorityName, Runtime } from '../../src/kernel/index.js';
import { probe } from '../../src/kernel/testkit.js';
import { flush } from './helpers.js';

type Via = 'cast' | 'send' | 'call';
interface Out {
  to: AnyRef;
  via: Via;
  msg: Tagged;
}
interface Tagged {
  from: string;
  seq?: number;
  done?: true;
}

/** Sends each batch it is cast, in order; optionally awaits before sending. */
const Relay = behaviour<boolean, boolean, never, never, Out[]>({
  init: (async) => async,
  handleCast(batch, async, ctx) {
    const go = () => {
      for (const o of batch) {
        if (o.via === 'cast') ctx.cast(o.to, o.msg);
        else if (o.via === 'send') ctx.send(o.to, o.msg);
        else void ctx.call(o.to, o.msg).catch(() => undefined);
      }
      return async;
    };
    return async ? Promise.resolve().then(go) : go();
  },
});

const priorityArb = fc.constantFrom<PriorityName>('high', 'normal', 'low');
const viaArb = fc.constantFrom<Via>('cast', 'send', 'call');

const scenarioArb = fc.record({
  reductions: fc.integer({ min: 1, max: 40 }),
  receivers: fc.array(priorityArb, { minLength: 1, maxLength: 4 }),
  relays: fc.array(fc.record({ priority: priorityArb, async: fc.boolean() }), { minLength: 1, maxLength: 3 }),
  steps: fc.array(
    fc.oneof(
      {
        weight: 8,
        arbitrary: fc.record({
          kind: fc.constant('send' as const),
          // 0 is external code; 1.. are the relays (taken modulo their number)
          sender: fc.nat({ max: 3 }),
          sends: fc.array(fc.record({ receiver: fc.nat({ max: 3 }), via: viaArb }), {
            minLength: 1,
            maxLength: 4,
          }),
        }),
      },
      { weight: 1, arbitrary: fc.constant({ kind: 'microtask' as const }) },
      { weight: 1, arbitrary: fc.constant({ kind: 'turn' as const }) },
    ),
    { maxLength: 60 },
  ),
});

describe('FIFO per sender-receiver pair', () => {
  it('holds under random interleavings of senders, kinds, priorities and slices', async () => {
    await fc.assert(
      fc.asyncProperty(scenarioArb, async (sc) => {
        const rt = new Runtime({ reductions: sc.reductions });
        try {
          const receivers = sc.receivers.map((priority) => probe(rt, { spawn: { priority } }));
          const relays = await Promise.all(
            sc.relays.map((r) => rt.spawn(Relay, r.async, { priority: r.priority })),
          );
          const senderNames = ['external', ...relays.map((_, i) => `relay${i}`)];
          const nextSeq = new Map<string, number>();
          const calls: Promise<unknown>[] = [];
          const deliver = (senderIdx: number, outs: Out[]) => {
            if (senderIdx === 0) {
              for (const o of outs) {
                if (o.via === 'cast') rt.cast(o.to, o.msg);
                else if (o.via === 'send') rt.send(o.to, o.msg);
                else calls.push(rt.call(o.to, o.msg));
              }
            } else rt.cast(relays[senderIdx - 1] as AnyRef, outs);
          };
          for (const step of sc.steps) {
            if (step.kind === 'microtask') await Promise.resolve();
            else if (step.kind === 'turn') await flush();
            else {
              const senderIdx = step.sender % senderNames.length;
              const from = senderNames[senderIdx] as string;
              const outs = step.sends.map(({ receiver, via }) => {
                const r = receiver % receivers.length;
                const key = `${from}>${r}`;
                const seq = nextSeq.get(key) ?? 0;
                nextSeq.set(key, seq + 1);
                return { to: (receivers[r] as (typeof receivers)[number]).ref, via, msg: { from, seq } };
              });
              deliver(senderIdx, outs);
            }
          }
          // Each sender ends with a `done` marker to every receiver, through the same path.
          for (let s = 0; s < senderNames.length; s++) {
            deliver(
              s,
              receivers.map((r) => ({
                to: r.ref,
                via: 'cast' as const,
                msg: { from: senderNames[s] as string, done: true as const },
              })),
            );
          }
          for (const r of receivers) {
            for (const from of senderNames) await r.expectMessage({ from, done: true }, { timeout: 5000 });
          }
          await Promise.all(calls);
          receivers.forEach((r, ri) => {
            for (const from of senderNames) {
              const seqs = r.received
                .map((e) => e.message as Tagged)
                .filter((m) => m.from === from && m.done === undefined)
                .map((m) => m.seq);
              const expected = nextSeq.get(`${from}>${ri}`) ?? 0;
              expect(seqs, `${from} -> receiver ${ri}`).toEqual(
                Array.from({ length: expected }, (_, i) => i),
              );
            }
          });
        } finally {
          await rt.shutdown();
        }
      }),
      { numRuns: 150 },
    );
  });
});
