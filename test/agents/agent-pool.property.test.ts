/**
 * Property test of the agent pool: random sequences of checkouts (with and without deadlines and
 * holders), checkins (some asking for a replacement), kills of pooled agents, kills of holders and
 * clock advances, under both holder-exit policies. Checked at every agent start and after every
 * step: never more than `max` agents of the type alive, no agent lent to two holders at once, no
 * dead agent handed out. At the end every checkout has been served or rejected for a reason it
 * allows (its deadline passed, or its holder died), and close leaves no agent running.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AgentPool, type HolderExitPolicy } from '../../src/agents/agent-pool.js';
import { type AnyRef, behaviour, reply, VirtualClock } from '../../src/kernel/index.js';
import { type Probe, probe } from '../../src/kernel/testkit.js';
import { flush, runtimeFactory } from '../kernel/helpers.js';

const runtime = runtimeFactory();

const Worker = behaviour<void, number, 'ping', number>({
  init: () => 0,
  handleCall: (_msg, _from, n) => reply(n + 1, n + 1),
});

type Op =
  | { k: 'checkout'; timeoutMs: number; holder: number | null }
  | { k: 'checkin'; pick: number; replace: boolean }
  | { k: 'killAgent'; pick: number }
  | { k: 'killHolder'; holder: number }
  | { k: 'advance'; ms: number };

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
    arbitrary: fc.record({ k: fc.constant('checkin' as const), pick: fc.nat(), replace: fc.boolean() }),
  },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('killAgent' as const), pick: fc.nat() }) },
  {
    weight: 1,
    arbitrary: fc.record({ k: fc.constant('killHolder' as const), holder: fc.nat({ max: HOLDERS - 1 }) }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ k: fc.constant('advance' as const), ms: fc.integer({ min: 1, max: 40 }) }),
  },
);

const configArb = fc
  .record({
    warm: fc.integer({ min: 0, max: 3 }),
    extra: fc.integer({ min: 0, max: 2 }),
    idleMs: fc.integer({ min: 0, max: 50 }),
    policy: fc.constantFrom<HolderExitPolicy>('return', 'replace'),
  })
  .filter((c) => c.warm + c.extra >= 1);

interface Request {
  id: number;
  at: number;
  timeoutMs: number;
  holder: number | null;
  outcome: 'pending' | 'served' | string;
}

async function settle(): Promise<void> {
  for (let i = 0; i < 6; i++) await flush();
}

describe('AgentPool (property)', () => {
  it('bounds live agents by max, lends each to one holder at a time, answers every checkout', async () => {
    await fc.assert(
      fc.asyncProperty(
        configArb,
        fc.array(opArb, { minLength: 10, maxLength: 40, size: 'max' }),
        async (cfg, ops) => {
          const clock = new VirtualClock();
          const rt = runtime({ clock });
          const max = cfg.warm + cfg.extra;
          const problems: string[] = [];
          const agents: AnyRef[] = [];
          const liveAgents = () => agents.filter((a) => rt.isAlive(a));
          // Checked as each agent starts: the moment the bound could be broken.
          rt.telemetry.attach('agent-pool-property', [['mabeam', 'agent_pool', 'spawn']], (_e, _m, md) => {
            agents.push(md.agent as AnyRef);
            const n = liveAgents().length;
            if (n > max) problems.push(`${n} agents alive, max ${max}`);
          });
          const pool = await AgentPool.start(rt, {
            types: {
              w: { behaviour: Worker, warm: cfg.warm, max, idleMs: cfg.idleMs, onHolderExit: cfg.policy },
            },
          });

          const holders: Probe[] = Array.from({ length: HOLDERS }, () => probe(rt));
          const requests: Request[] = [];
          const held: { req: Request; ref: AnyRef }[] = [];

          const checkout = (timeoutMs: number, holder: number | null) => {
            const req: Request = {
              id: requests.length,
              at: clock.now(),
              timeoutMs,
              holder,
              outcome: 'pending',
            };
            requests.push(req);
            const h = holder === null ? null : (holders[holder] as Probe).ref;
            pool.checkout('w', { timeoutMs, holder: h }).then(
              (ref) => {
                req.outcome = 'served';
                if (!rt.isAlive(ref)) problems.push(`checkout ${req.id} got a dead agent`);
                if (held.some((x) => x.ref.equals(ref))) problems.push(`${ref} lent twice`);
                held.push({ req, ref });
              },
              (error: { code?: string }) => {
                req.outcome = error.code ?? String(error);
                if (error.code === 'E_AGENT_POOL_EXHAUSTED' && clock.now() - req.at < timeoutMs) {
                  problems.push(`checkout ${req.id} timed out early`);
                }
              },
            );
          };

          const check = () => {
            expect(problems).toEqual([]);
            const st = pool.stats('w');
            expect(liveAgents().length).toBeLessThanOrEqual(max);
            expect(st.live).toBeLessThanOrEqual(max);
            expect(st.busy).toBeLessThanOrEqual(max);
            expect(st.busy).toBeGreaterThanOrEqual(held.length);
            for (const r of requests) {
              expect(['pending', 'served', 'E_AGENT_POOL_EXHAUSTED', 'E_AGENT_POOL_HOLDER_EXITED']).toContain(
                r.outcome,
              );
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
                expect(pool.checkin('w', (h as { ref: AnyRef }).ref, { replace: op.replace })).toBe(true);
                break;
              }
              case 'killAgent': {
                const live = liveAgents();
                if (live.length === 0) break;
                const victim = live[op.pick % live.length] as AnyRef;
                rt.kill(victim);
                // Its lease ended in its exit: the holder has nothing to give back.
                for (let i = held.length - 1; i >= 0; i--) {
                  const h = held[i] as { ref: AnyRef };
                  if (h.ref.equals(victim)) {
                    held.splice(i, 1);
                    expect(pool.checkin('w', victim)).toBe(false);
                  }
                }
                break;
              }
              case 'killHolder': {
                rt.kill((holders[op.holder] as Probe).ref);
                // The pool took back what that holder had, synchronously in the holder's exit.
                for (let i = held.length - 1; i >= 0; i--) {
                  if ((held[i] as { req: Request }).req.holder === op.holder) held.splice(i, 1);
                }
                holders[op.holder] = probe(rt);
                break;
              }
              case 'advance':
                clock.advance(op.ms);
                break;
            }
            await settle();
            check();
          }

          // Drain: give everything back until every checkout has been answered.
          for (let round = 0; round < 20 && requests.some((r) => r.outcome === 'pending'); round++) {
            for (const h of held.splice(0)) pool.checkin(h.ref);
            clock.advance(100);
            await settle();
            check();
          }
          expect(requests.filter((r) => r.outcome === 'pending')).toEqual([]);
          for (const h of held.splice(0)) pool.checkin(h.ref);
          await settle();
          const st = pool.stats('w');
          expect(st).toMatchObject({ busy: 0, waiting: 0, starting: 0 });
          expect(st.idle).toBeGreaterThanOrEqual(cfg.warm);
          expect(liveAgents().length).toBe(st.live);
          // Whatever happened, the pool can still lend `max` distinct live agents at once (a slot left
          // empty by the crash-loop guard starts its agent when a checkout asks for it).
          const all = await Promise.all(
            Array.from({ length: max }, () => pool.checkout('w', { holder: null })),
          );
          expect(new Set(all.map((r) => r.toString())).size).toBe(max);
          expect(all.every((r) => rt.isAlive(r))).toBe(true);
          expect(liveAgents().length).toBe(max);
          expect(problems).toEqual([]);
          await pool.close();
          expect(liveAgents()).toEqual([]);
          rt.telemetry.detach('agent-pool-property');
        },
      ),
      { numRuns: 120 },
    );
  });
});
