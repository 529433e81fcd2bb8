/**
 * Random acquire / renew / release / expire (clock advance) / kill sequences against a model of
 * the grants observed: at any virtual time at most one valid lease per resource, fencing tokens
 * strictly increasing per resource in grant order, renew and release succeeding exactly when the
 * model says the token's lease is valid, and the synchronous `holder` read agreeing with the model.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LeaseErrorCodes, type LeaseGrant, LeaseLock } from '../../src/coordination/lease.js';
import {
  type AnyRef,
  behaviour,
  MabeamError,
  pidKey,
  Runtime,
  VirtualClock,
} from '../../src/kernel/index.js';
import { flush } from '../kernel/helpers.js';

const RESOURCES = ['r0', 'r1'] as const;
const SLOTS = 3;

type Command =
  | { op: 'acquire'; res: number; slot: number; ttl: number; wait: number }
  | { op: 'renew'; res: number; slot: number; ttl: number; token: number | null }
  | { op: 'release'; res: number; slot: number; token: number | null }
  | { op: 'advance'; ms: number }
  /** Advance exactly to the earliest expiry of a valid lease: the boundary where bugs hide. */
  | { op: 'to_expiry' }
  | { op: 'kill'; slot: number };

const res = fc.integer({ min: 0, max: RESOURCES.length - 1 });
const slot = fc.integer({ min: 0, max: SLOTS - 1 });
const ttl = fc.integer({ min: 1, max: 50 });
/** null: the slot's own latest token for the resource; a number: any token at all. */
const token = fc.option(fc.integer({ min: 1, max: 12 }), { nil: null, freq: 3 });
const command: fc.Arbitrary<Command> = fc.oneof(
  fc.record({
    op: fc.constant('acquire' as const),
    res,
    slot,
    ttl,
    wait: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 60 }), fc.constant(Number.POSITIVE_INFINITY)),
  }),
  fc.record({ op: fc.constant('renew' as const), res, slot, ttl, token }),
  fc.record({ op: fc.constant('release' as const), res, slot, token }),
  fc.record({ op: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 60 }) }),
  fc.record({ op: fc.constant('kill' as const), slot }),
  fc.constant({ op: 'to_expiry' as const }),
);

/** A grant as the test saw it; `end` is when it stopped being valid (release or holder death). */
interface Seen {
  readonly grant: LeaseGrant;
  readonly grantedAt: number;
  expiresAt: number;
  endedAt: number;
}

const Holder = behaviour<null, null>({ init: () => null });
const EXPECTED_ERRORS = new Set<string>([
  LeaseErrorCodes.TIMEOUT,
  LeaseErrorCodes.HOLDER_EXITED,
  LeaseErrorCodes.EXPIRED,
  LeaseErrorCodes.STALE_TOKEN,
]);

async function run(commands: Command[]): Promise<void> {
  const clock = new VirtualClock();
  const rt = new Runtime({ clock });
  try {
    const lock = await LeaseLock.start(rt);
    const holders: AnyRef[] = Array.from({ length: SLOTS }, () => rt.spawnSync(Holder, null));
    const seen = new Map<number, Seen>(); // by token
    const lastToken = new Map<string, number>(); // per resource, in the order grants arrive
    const unexpected: unknown[] = [];
    const end = (s: Seen) => Math.min(s.expiresAt, s.endedAt);
    const validAt = (s: Seen, t: number) => s.grantedAt <= t && t < end(s);
    const settle = async () => {
      for (let i = 0; i < 3; i++) {
        await rt.whenMailboxBelow(lock.ref, 1);
        await flush();
      }
    };
    const latestToken = (r: string, holder: AnyRef): number | undefined => {
      let best: number | undefined;
      for (const s of seen.values()) {
        if (s.grant.resource === r && pidKey(s.grant.holder) === pidKey(holder)) best = s.grant.token;
      }
      return best;
    };
    const expectedFailure = (e: unknown) => {
      if (!(e instanceof MabeamError && EXPECTED_ERRORS.has(e.code))) unexpected.push(e);
    };

    for (const c of commands) {
      const now = clock.now();
      switch (c.op) {
        case 'acquire': {
          const r = RESOURCES[c.res] as string;
          lock.acquire(r, holders[c.slot] as AnyRef, { ttlMs: c.ttl, waitMs: c.wait }).then((g) => {
            if (!(g.token > (lastToken.get(r) ?? 0)))
              unexpected.push(`token ${g.token} on ${r} not increasing`);
            lastToken.set(r, g.token);
            // Granted when the lock handled it: expiresAt - ttl, on the virtual clock.
            seen.set(g.token, {
              grant: g,
              grantedAt: g.expiresAt - c.ttl,
              expiresAt: g.expiresAt,
              endedAt: Infinity,
            });
          }, expectedFailure);
          break;
        }
        case 'renew':
        case 'release': {
          const r = RESOURCES[c.res] as string;
          const t = c.token ?? latestToken(r, holders[c.slot] as AnyRef);
          if (t === undefined) break;
          const s = seen.get(t);
          const shouldWork = s !== undefined && s.grant.resource === r && validAt(s, now);
          try {
            if (c.op === 'renew') {
              const g = await lock.renew(r, t, c.ttl);
              expect(g.expiresAt).toBe(now + c.ttl);
              if (s !== undefined) s.expiresAt = g.expiresAt;
            } else {
              await lock.release(r, t);
              if (s !== undefined) s.endedAt = now;
            }
            expect(shouldWork, `${c.op} of ${r} with token ${t} at ${now} succeeded`).toBe(true);
          } catch (error) {
            expectedFailure(error);
            expect(shouldWork, `${c.op} of ${r} with token ${t} at ${now} failed: ${error}`).toBe(false);
          }
          break;
        }
        case 'advance':
          clock.advance(c.ms);
          break;
        case 'to_expiry': {
          const due = [...seen.values()].filter((s) => validAt(s, now)).map((s) => s.expiresAt);
          if (due.length > 0) clock.advance(Math.min(...due) - now);
          break;
        }
        case 'kill': {
          const victim = holders[c.slot] as AnyRef;
          rt.kill(victim);
          for (const s of seen.values()) {
            if (pidKey(s.grant.holder) === pidKey(victim)) s.endedAt = Math.min(s.endedAt, now);
          }
          holders[c.slot] = rt.spawnSync(Holder, null);
          break;
        }
      }
      await settle();
      expect(unexpected).toEqual([]);

      // Per resource, in token order: grant times never go backwards and validity never overlaps.
      const t = clock.now();
      for (const r of RESOURCES) {
        const grants = [...seen.values()]
          .filter((s) => s.grant.resource === r)
          .sort((x, y) => x.grant.token - y.grant.token);
        for (let i = 1; i < grants.length; i++) {
          const prev = grants[i - 1] as Seen;
          const next = grants[i] as Seen;
          expect(next.grantedAt).toBeGreaterThanOrEqual(end(prev));
        }
        const valid = grants.filter((s) => validAt(s, t));
        expect(valid.length).toBeLessThanOrEqual(1);
        // Liveness: nobody waits for a resource that nobody holds.
        if (valid.length === 0) expect(lock.waiting(r), `${r} is free at ${t} with waiters`).toBe(0);
        const h = lock.holder(r);
        if (valid.length === 1) {
          expect(h?.token).toBe((valid[0] as Seen).grant.token);
          expect(rt.isAlive(h?.holder as AnyRef)).toBe(true);
        } else {
          expect(h).toBeUndefined();
        }
      }
    }
  } finally {
    await rt.shutdown();
  }
}

describe('LeaseLock (property)', () => {
  it('at most one valid holder per resource at any virtual time; tokens strictly increase', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(command, { minLength: 1, maxLength: 40 }), (cs) => run(cs)),
      { numRuns: 150 },
    );
  });
});
