/**
 * Property test of the connection pool: random sequences of checkouts (with and without deadlines
 * and holders), checkins, broken resources, failing creates, holder deaths and clock advances.
 * After every step: never more than size + maxOverflow resources exist or are out, no waiter waits
 * while a resource is free, and waiters are served in arrival order. At the end every checkout has
 * been served or rejected for a reason it allows (its deadline passed, its holder died, a create
 * for it failed).
 */
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { Pool } from '../../src/foundation/pool.js';
import { Runtime, VirtualClock } from '../../src/kernel/index.js';
import { type Probe, probe } from '../../src/kernel/testkit.js';
import { flush } from '../kernel/helpers.js';

interface Conn {
  id: number;
  healthy: boolean;
}

type Op =
  | { k: 'checkout'; timeoutMs: number; holder: number | null }
  | { k: 'checkin'; pick: number; destroy: boolean }
  | { k: 'kill'; holder: number }
  | { k: 'advance'; ms: number }
  | { k: 'break'; pick: number }
  | { k: 'failCreate' };

const HOLDERS = 3;

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      k: fc.constant('checkout' as const),
      timeoutMs: fc.oneof(fc.integer({ min: 1, max: 60 }), fc.constant(Number.POSITIVE_INFINITY)),
      holder: fc.option(fc.nat({ max: HOLDERS - 1 }), { nil: null }),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({ k: fc.constant('checkin' as const), pick: fc.nat(), destroy: fc.boolean() }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ k: fc.constant('kill' as const), holder: fc.nat({ max: HOLDERS - 1 }) }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ k: fc.constant('advance' as const), ms: fc.integer({ min: 1, max: 40 }) }),
  },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('break' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('failCreate' as const) }) },
);

const configArb = fc
  .record({
    size: fc.integer({ min: 0, max: 3 }),
    maxOverflow: fc.integer({ min: 0, max: 2 }),
    idleMs: fc.integer({ min: 0, max: 50 }),
    validate: fc.boolean(),
    prefill: fc.boolean(),
    fifo: fc.boolean(),
  })
  .filter((c) => c.size + c.maxOverflow >= 1);

interface Request {
  id: number;
  at: number;
  timeoutMs: number;
  holder: number | null;
  outcome: 'pending' | 'served' | string;
}

async function settle(): Promise<void> {
  for (let i = 0; i < 4; i++) await flush();
}

const runtimes: Runtime[] = [];
afterEach(async () => {
  await Promise.all(runtimes.splice(0).map((rt) => rt.shutdown()));
});

describe('Pool (property)', () => {
  it('bounds resources, never starves a waiter while one is free, serves in FIFO order', async () => {
    await fc.assert(
      fc.asyncProperty(configArb, fc.array(opArb, { maxLength: 40 }), async (cfg, ops) => {
        const clock = new VirtualClock();
        const rt = new Runtime({ clock });
        runtimes.push(rt);
        const max = cfg.size + cfg.maxOverflow;
        let nextId = 0;
        let failCreates = 0;
        const live = new Set<Conn>();
        const pool = await Pool.start<Conn>(rt, {
          name: 'prop',
          size: cfg.size,
          maxOverflow: cfg.maxOverflow,
          idleMs: cfg.idleMs,
          prefill: cfg.prefill,
          strategy: cfg.fifo ? 'fifo' : 'lifo',
          create: () => {
            if (failCreates > 0) {
              failCreates--;
              throw new Error('create failed');
            }
            const c = { id: ++nextId, healthy: true };
            live.add(c);
            return c;
          },
          destroy: (c) => {
            if (!live.delete(c)) problems.push(`resource ${c.id} destroyed twice`);
          },
          ...(cfg.validate ? { validate: (c: Conn) => c.healthy } : {}),
        });

        const holders: Probe[] = Array.from({ length: HOLDERS }, () => probe(rt));
        const requests: Request[] = [];
        const served: number[] = [];
        const held: { req: Request; conn: Conn }[] = [];
        /** Violations seen in promise callbacks, where a throw would not reach fast-check. */
        const problems: string[] = [];

        const checkout = (timeoutMs: number, holder: number | null) => {
          const req: Request = {
            id: requests.length,
            at: clock.now(),
            timeoutMs,
            holder,
            outcome: 'pending',
          };
          requests.push(req);
          const options =
            holder === null ? { timeoutMs } : { timeoutMs, holder: (holders[holder] as Probe).ref };
          pool.checkout(options).then(
            (conn) => {
              req.outcome = 'served';
              served.push(req.id);
              if (held.some((h) => h.conn === conn)) problems.push(`resource ${conn.id} lent twice`);
              held.push({ req, conn });
            },
            (error: { code?: string }) => {
              req.outcome = error.code ?? String(error);
              if (error.code === 'E_CHECKOUT_TIMEOUT' && clock.now() - req.at < timeoutMs) {
                problems.push(`checkout ${req.id} timed out early`);
              }
            },
          );
        };

        const check = () => {
          expect(problems).toEqual([]);
          const st = pool.stats();
          expect(st.out).toBeLessThanOrEqual(max);
          expect(st.total).toBeLessThanOrEqual(max);
          expect(live.size).toBeLessThanOrEqual(max);
          expect(st.out).toBe(held.length);
          if (st.waiting > 0) {
            // Someone waits: then nothing is free and nothing more may be made.
            expect(st.idle).toBe(0);
            expect(st.total).toBe(max);
          }
          for (let i = 1; i < served.length; i++) expect(served[i]).toBeGreaterThan(served[i - 1] as number);
          for (const r of requests) {
            expect([
              'pending',
              'served',
              'E_CHECKOUT_TIMEOUT',
              'E_HOLDER_EXITED',
              'E_RESOURCE_CREATE_FAILED',
            ]).toContain(r.outcome);
          }
        };

        for (const op of ops) {
          switch (op.k) {
            case 'checkout':
              checkout(op.timeoutMs, op.holder);
              break;
            case 'checkin': {
              if (held.length === 0) break;
              const [h] = held.splice(op.pick % held.length, 1);
              pool.checkin((h as { conn: Conn }).conn, { destroy: op.destroy });
              break;
            }
            case 'kill': {
              rt.kill((holders[op.holder] as Probe).ref);
              // The pool took back what that holder had, synchronously in the exit hook.
              for (let i = held.length - 1; i >= 0; i--) {
                if ((held[i] as { req: Request }).req.holder === op.holder) held.splice(i, 1);
              }
              holders[op.holder] = probe(rt);
              break;
            }
            case 'advance':
              clock.advance(op.ms);
              break;
            case 'break': {
              const all = [...live];
              if (all.length > 0) (all[op.pick % all.length] as Conn).healthy = false;
              break;
            }
            case 'failCreate':
              failCreates++;
              break;
          }
          await settle();
          check();
        }

        // Drain: give everything back until every checkout has been answered.
        failCreates = 0;
        for (let round = 0; round < 20 && requests.some((r) => r.outcome === 'pending'); round++) {
          for (const h of held.splice(0)) pool.checkin(h.conn);
          clock.advance(100);
          await settle();
          check();
        }
        expect(requests.filter((r) => r.outcome === 'pending')).toEqual([]);
        for (const h of held.splice(0)) pool.checkin(h.conn);
        await pool.close();
        expect(live.size).toBe(0);
        await rt.shutdown();
      }),
      { numRuns: 150 },
    );
  });
});
