/**
 * The allocation policies on random instances (computeAllocation is pure, so no runtime), and the
 * gathering on random agent behaviours. Invariants: no resource over-allocated, nobody gets more
 * than asked, work conserving, the water-filling optimality condition of (weighted) max-min,
 * proportional shares, weights respected, order of the claims irrelevant; and every gathered agent
 * accounted for exactly once with the allocation of the valid answers.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type AllocationPolicy,
  Allocator,
  type Claim,
  computeAllocation,
  isNeedsRequest,
  type Needs,
  type NeedsRequest,
  type Resources,
  withNeeds,
} from '../../src/economics/allocation.js';
import {
  type AnyRef,
  behaviour,
  DynamicSupervisor,
  pidKey,
  Runtime,
  VirtualClock,
} from '../../src/kernel/index.js';

const NAMES = ['cpu', 'mem', 'gpu'] as const;

/** Amounts: mostly arbitrary doubles, with exact zeros and small integers mixed in. */
const amount = (max: number) =>
  fc.oneof(
    fc.double({ min: 0, max, noNaN: true, noDefaultInfinity: true }),
    fc.integer({ min: 0, max: Math.floor(max) }),
    fc.constant(0),
  );

interface Instance {
  readonly resources: Resources;
  readonly claims: Claim[];
  readonly weights: number[];
}

const instanceArb: fc.Arbitrary<Instance> = fc
  .tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 0, max: 12 }))
  .chain(([r, n]) => {
    const names = NAMES.slice(0, r);
    const resources = fc
      .tuple(...names.map(() => amount(100)))
      .map((caps) => Object.fromEntries(names.map((name, i) => [name, caps[i] as number])));
    // A need may leave a resource out (it then counts as 0).
    const needs = fc.array(
      fc.tuple(...names.map(() => fc.option(amount(60), { nil: undefined }))).map((ds) => {
        const o: Record<string, number> = {};
        names.forEach((name, i) => {
          if (ds[i] !== undefined) o[name] = ds[i] as number;
        });
        return o as Needs;
      }),
      { minLength: n, maxLength: n },
    );
    const weights = fc.array(
      fc.oneof(fc.double({ min: 0.01, max: 20, noNaN: true }), fc.integer({ min: 1, max: 5 })),
      { minLength: n, maxLength: n },
    );
    return fc.record({ resources, needs, weights }).map(({ resources, needs, weights }) => ({
      resources,
      claims: needs.map((d, i) => ({ agent: `a${i}`, needs: d })),
      weights,
    }));
  });

const KINDS = ['proportional', 'max_min', 'weighted_max_min', 'weighted_proportional'] as const;
type Kind = (typeof KINDS)[number];

function policyOf(kind: Kind, weights: number[]): AllocationPolicy {
  return kind === 'weighted_max_min' || kind === 'weighted_proportional' ? { kind, weights } : { kind };
}

/** Per resource: needs, grants, rates' weights, capacity and a tolerance for float rounding. */
function* perResource(inst: Instance, kind: Kind) {
  const grants = computeAllocation(inst.claims, inst.resources, policyOf(kind, inst.weights));
  for (const name of Object.keys(inst.resources)) {
    const d = inst.claims.map((c) => c.needs[name] ?? 0);
    const x = grants.map((g) => g.granted[name] as number);
    const cap = inst.resources[name] as number;
    const tol = 1e-9 * Math.max(1, cap, ...d);
    yield { name, d, x, cap, tol, w: inst.weights };
  }
}

const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);
const RUNS = { numRuns: 300 };

describe('allocation policies (pure)', () => {
  it.each(KINDS)('%s: no resource over-allocated, nobody more than asked, work conserving', (kind) => {
    fc.assert(
      fc.property(instanceArb, (inst) => {
        const grants = computeAllocation(inst.claims, inst.resources, policyOf(kind, inst.weights));
        expect(grants.map((g) => g.agent)).toEqual(inst.claims.map((c) => c.agent));
        for (const g of grants) expect(Object.keys(g.granted)).toEqual(Object.keys(inst.resources));
        for (const { d, x, cap, tol } of perResource(inst, kind)) {
          // Exact, not within a tolerance: summed in claim order, the grants never exceed it.
          expect(sum(x)).toBeLessThanOrEqual(cap);
          x.forEach((xi, i) => {
            expect(xi).toBeGreaterThanOrEqual(0);
            expect(xi).toBeLessThanOrEqual(d[i] as number);
          });
          if (sum(d) <= cap) expect(x).toEqual(d);
          // Pareto: oversubscribed, the whole capacity is handed out.
          else expect(sum(x)).toBeGreaterThanOrEqual(cap - tol * (x.length + 1));
        }
      }),
      RUNS,
    );
  });

  it('max-min: an agent can gain only by taking from one that has less or the same (water-filling)', () => {
    fc.assert(
      fc.property(instanceArb, (inst) => {
        for (const { d, x, tol } of perResource(inst, 'max_min')) {
          x.forEach((xi, i) => {
            if (xi >= (d[i] as number) - tol) return; // served in full: nothing to gain
            // i is short: every other agent has at most what i has.
            for (const xj of x) expect(xj).toBeLessThanOrEqual(xi + tol);
          });
        }
      }),
      RUNS,
    );
  });

  it('proportional: oversubscribed, every agent gets the same fraction of its need', () => {
    fc.assert(
      fc.property(instanceArb, (inst) => {
        for (const { d, x, cap, tol } of perResource(inst, 'proportional')) {
          const total = sum(d);
          if (total <= cap) continue;
          const f = cap / total;
          x.forEach((xi, i) => {
            expect(Math.abs(xi - f * (d[i] as number))).toBeLessThanOrEqual(tol);
          });
        }
      }),
      RUNS,
    );
  });

  it('weighted max-min: a short agent has the largest share per unit of weight; shares of short agents follow the weights', () => {
    fc.assert(
      fc.property(instanceArb, (inst) => {
        for (const { d, x, w, tol } of perResource(inst, 'weighted_max_min')) {
          const short = x.map((xi, i) => xi < (d[i] as number) - tol);
          x.forEach((xi, i) => {
            if (!short[i]) return;
            const level = xi / (w[i] as number);
            x.forEach((xj, j) => {
              // j holds no more per unit of weight than i: i can gain only from such agents.
              expect(xj / (w[j] as number)).toBeLessThanOrEqual(level + tol);
              // Two short agents: shares in the ratio of their weights.
              if (short[j])
                expect(Math.abs(xj - level * (w[j] as number))).toBeLessThanOrEqual(
                  tol * (w[j] as number) * 20,
                );
            });
          });
        }
      }),
      RUNS,
    );
  });

  it('weighted proportional: a short agent has the largest share per unit of weight times need', () => {
    fc.assert(
      fc.property(instanceArb, (inst) => {
        for (const { d, x, w, tol } of perResource(inst, 'weighted_proportional')) {
          x.forEach((xi, i) => {
            if (xi >= (d[i] as number) - tol) return;
            // Short agents need more than the tolerance, so this divides by nothing tiny.
            const level = xi / ((w[i] as number) * (d[i] as number));
            x.forEach((xj, j) => {
              // Multiplied out: w * d of a tiny need can underflow to 0.
              expect(xj).toBeLessThanOrEqual(level * (w[j] as number) * (d[j] as number) * (1 + 1e-9) + tol);
            });
          });
        }
      }),
      RUNS,
    );
  });

  it('weighted: more weight and more need never get less; equal weights give the unweighted result', () => {
    fc.assert(
      fc.property(instanceArb, fc.double({ min: 0.1, max: 10, noNaN: true }), (inst, c) => {
        for (const kind of ['weighted_max_min', 'weighted_proportional'] as const) {
          for (const { d, x, w, tol } of perResource(inst, kind)) {
            x.forEach((xi, i) => {
              x.forEach((xj, j) => {
                if ((w[i] as number) >= (w[j] as number) && (d[i] as number) >= (d[j] as number)) {
                  expect(xi).toBeGreaterThanOrEqual(xj - tol);
                }
              });
            });
          }
        }
        const same = inst.weights.map(() => c);
        const pairs = [
          ['weighted_max_min', 'max_min'],
          ['weighted_proportional', 'proportional'],
        ] as const;
        for (const [weighted, plain] of pairs) {
          const a = computeAllocation(inst.claims, inst.resources, { kind: weighted, weights: same });
          const b = computeAllocation(inst.claims, inst.resources, { kind: plain });
          a.forEach((g, i) => {
            for (const name of Object.keys(inst.resources)) {
              const tol = 1e-9 * Math.max(1, inst.resources[name] as number);
              expect(
                Math.abs((g.granted[name] as number) - (b[i]?.granted[name] as number)),
              ).toBeLessThanOrEqual(tol);
            }
          });
        }
      }),
      RUNS,
    );
  });

  it.each(KINDS)('%s: the guarantees hold for magnitudes across the whole float range', (kind) => {
    // Weights from 1e-300 to 1e300 and needs from subnormal to 1e300: weight times need leaves
    // the float range, which the water-filling must survive without NaN, excess or idle capacity.
    const huge = fc.oneof(
      fc.double({ min: 0, max: 1e300, noNaN: true, noDefaultInfinity: true }),
      fc.double({ min: 0, max: 1e-300, noNaN: true }),
      fc.integer({ min: 0, max: 10 }),
    );
    const weight = fc.double({ min: 1e-300, max: 1e300, noNaN: true, noDefaultInfinity: true });
    fc.assert(
      fc.property(fc.array(fc.tuple(huge, weight), { maxLength: 16 }), huge, (cs, cap) => {
        const claims = cs.map(([d], i) => ({ agent: `a${i}`, needs: { r: d } }));
        const grants = computeAllocation(
          claims,
          { r: cap },
          policyOf(
            kind,
            cs.map(([, w]) => w),
          ),
        );
        const x = grants.map((g) => g.granted.r as number);
        x.forEach((xi, i) => {
          expect(xi).toBeGreaterThanOrEqual(0);
          expect(xi).toBeLessThanOrEqual(cs[i]?.[0] as number);
        });
        expect(sum(x)).toBeLessThanOrEqual(cap);
        // Up to rounding, and to subnormal granularity (2.5e-323 does not halve exactly).
        if (sum(cs.map(([d]) => d)) > cap) expect(sum(x)).toBeGreaterThanOrEqual(cap * (1 - 1e-9) - 1e-300);
      }),
      { numRuns: 1000 },
    );
  });

  it.each(KINDS)(
    '%s: needs are read once: amounts that change on later reads change nothing (regression)',
    (kind) => {
      // Getters that are valid on the first read and anything (negative, NaN, huge) after it: the
      // allocation used to read the needs again after checking them.
      const later = fc.oneof(
        fc.double({ min: -1e9, max: 1e9, noNaN: true }),
        fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, -1),
      );
      fc.assert(
        fc.property(instanceArb, fc.array(later, { minLength: 1, maxLength: 8 }), (inst, afters) => {
          let k = 0;
          const fickle = inst.claims.map((c) => {
            const needs = {};
            for (const [name, first] of Object.entries(c.needs)) {
              let reads = 0;
              Object.defineProperty(needs, name, {
                enumerable: true,
                get: () => (reads++ === 0 ? first : afters[k++ % afters.length]),
              });
            }
            return { agent: c.agent, needs: needs as Needs };
          });
          const policy = policyOf(kind, inst.weights);
          const grants = computeAllocation(fickle, inst.resources, policy);
          expect(grants).toEqual(computeAllocation(inst.claims, inst.resources, policy));
        }),
        { numRuns: 150 },
      );
    },
  );

  it.each(KINDS)('%s: the order of the claims does not matter', (kind) => {
    fc.assert(
      fc.property(
        instanceArb.chain((inst) =>
          fc.record({
            inst: fc.constant(inst),
            perm: fc.shuffledSubarray(
              inst.claims.map((_, i) => i),
              { minLength: inst.claims.length, maxLength: inst.claims.length },
            ),
          }),
        ),
        ({ inst, perm }) => {
          const weights = new Map(inst.claims.map((c, i) => [c.agent, inst.weights[i] as number]));
          const policy = policyOf(kind, [...weights.values()]);
          const mapPolicy = 'weights' in policy ? { ...policy, weights } : policy;
          const a = computeAllocation(inst.claims, inst.resources, policy);
          const shuffled = perm.map((i) => inst.claims[i] as Claim);
          const b = new Map(
            computeAllocation(shuffled, inst.resources, mapPolicy).map((g) => [g.agent, g.granted]),
          );
          for (const g of a) {
            for (const name of Object.keys(inst.resources)) {
              const tol = 1e-9 * Math.max(1, inst.resources[name] as number);
              expect(
                Math.abs((g.granted[name] as number) - (b.get(g.agent)?.[name] as number)),
              ).toBeLessThanOrEqual(tol);
            }
          }
        },
      ),
      { numRuns: 150 },
    );
  });
});

type Behave = 'answer' | 'silent' | 'crash' | 'invalid' | 'dead';
type Hostile = 'answer' | 'mutate' | 'full';
interface Spec {
  readonly behave: Behave;
  readonly needs: Needs;
}
const Participant = withNeeds<Spec, Spec, never, never, never, never>(
  behaviour<Spec, Spec>({ init: (s) => s }),
  (_request, s) => {
    if (s.behave === 'crash') throw new Error('crashed on request');
    if (s.behave === 'silent') return null;
    if (s.behave === 'invalid') return { cpu: -1 };
    return s.needs;
  },
);

function flush(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

describe('allocation gathering', () => {
  it('every agent is allocated, missing or rejected exactly once, and the valid answers are shared as computeAllocation says', async () => {
    const specArb = fc.record({
      behave: fc.constantFrom<Behave>('answer', 'answer', 'answer', 'silent', 'crash', 'invalid', 'dead'),
      needs: fc.record({ cpu: amount(50), mem: amount(50) }),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.array(specArb, { minLength: 1, maxLength: 10 }),
        fc.constantFrom(...KINDS),
        fc.record({ cpu: amount(100), mem: amount(100) }),
        async (specs, kind, resources) => {
          const clock = new VirtualClock();
          const rt = new Runtime({ clock });
          try {
            const alloc = await Allocator.start(rt);
            const agents: AnyRef[] = specs.map((s) => rt.spawnSync(Participant, s));
            specs.forEach((s, i) => {
              if (s.behave === 'dead') rt.kill(agents[i] as AnyRef);
            });
            const weights = specs.map((_, i) => i + 1);
            const pending = alloc.allocate(agents, resources, policyOf(kind, weights), { deadlineMs: 100 });
            await DynamicSupervisor.countChildren(rt, alloc.supervisor);
            await flush();
            clock.advance(100);
            const r = await pending;

            const keys = agents.map((a) => pidKey(a));
            const seen = [
              ...r.allocations.map((a) => a.key),
              ...r.missing.map((m) => m.key),
              ...r.rejected.map((x) => x.key),
            ];
            expect(seen.sort()).toEqual([...keys].sort());
            specs.forEach((s, i) => {
              const key = keys[i] as string;
              if (s.behave === 'answer') expect(r.allocations.some((a) => a.key === key)).toBe(true);
              if (s.behave === 'invalid') expect(r.rejected.some((x) => x.key === key)).toBe(true);
              if (s.behave === 'silent')
                expect(r.missing.find((m) => m.key === key)?.reason).toBe('deadline');
              if (s.behave === 'crash' || s.behave === 'dead') {
                expect(r.missing.find((m) => m.key === key)?.reason).toBe('exit');
              }
            });
            const claims = r.allocations.map((a) => ({ agent: a.key, needs: a.needs }));
            const answeredWeights = r.allocations.map((a) => (keys.indexOf(a.key) + 1) as number);
            const expected = computeAllocation(claims, resources, policyOf(kind, answeredWeights));
            expect(r.allocations.map((a) => a.granted)).toEqual(expected.map((g) => g.granted));
          } finally {
            await rt.shutdown();
          }
        },
      ),
      { numRuns: 60 },
    );
  });
});

/** Answers with its own live object (a raw cast, no reportNeeds copy), changed later by the test. */
const Raw = behaviour<
  { needs: Record<string, number> },
  { needs: Record<string, number> },
  never,
  never,
  NeedsRequest
>({
  init: (s) => s,
  handleCast(req, s, ctx) {
    if (isNeedsRequest(req))
      ctx.cast(req.session, { type: 'needs', id: req.id, token: req.token, needs: s.needs });
    return s;
  },
});

describe('allocation gathering against hostile agents (regression)', () => {
  it('agents that change their needs after answering, or cannot be asked, never break the guarantees', async () => {
    const specArb = fc.record({
      behave: fc.constantFrom<Hostile>('answer', 'mutate', 'mutate', 'full'),
      needs: fc.record({ cpu: amount(50), mem: amount(50) }),
      after: fc.record({
        cpu: fc.oneof(fc.double({ min: -1e6, max: 1e6, noNaN: true }), fc.constant(Number.NaN)),
        mem: fc.double({ min: -1e6, max: 1e6, noNaN: true }),
      }),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.array(specArb, { minLength: 1, maxLength: 8 }),
        fc.constantFrom(...KINDS),
        fc.record({ cpu: amount(100), mem: amount(100) }),
        async (specs, kind, resources) => {
          const clock = new VirtualClock();
          const rt = new Runtime({ clock });
          let release!: () => void;
          const gate = new Promise<void>((r) => {
            release = r;
          });
          const Busy = behaviour<void, null, never, never, string>({
            init: () => null,
            handleCast: async (_m, s) => {
              await gate;
              return s;
            },
          });
          try {
            const alloc = await Allocator.start(rt);
            const live = specs.map((s) => ({ ...s.needs }));
            const agents: AnyRef[] = [];
            for (const [i, s] of specs.entries()) {
              if (s.behave === 'full') {
                const busy = rt.spawnSync(Busy, undefined, { mailbox: { capacity: 1 } });
                rt.cast(busy, 'work');
                await flush();
                rt.cast(busy, 'more');
                agents.push(busy);
              } else agents.push(rt.spawnSync(Raw, { needs: live[i] as Record<string, number> }));
            }
            const weights = specs.map((_, i) => i + 1);
            const pending = alloc.allocate(agents, resources, policyOf(kind, weights), { deadlineMs: 100 });
            await DynamicSupervisor.countChildren(rt, alloc.supervisor);
            await flush();
            specs.forEach((s, i) => {
              if (s.behave === 'mutate') Object.assign(live[i] as object, s.after);
            });
            clock.advance(100);
            const r = await pending;
            release();

            const keys = agents.map((a) => pidKey(a));
            specs.forEach((s, i) => {
              const key = keys[i] as string;
              if (s.behave === 'full')
                expect(r.missing.find((m) => m.key === key)?.reason).toBe('undeliverable');
              else expect(r.allocations.find((a) => a.key === key)?.needs).toEqual(s.needs);
            });
            expect(r.allocations.length + r.missing.length).toBe(specs.length);
            for (const name of ['cpu', 'mem'] as const) {
              const granted = r.allocations.map((a) => a.granted[name] as number);
              for (const g of granted) expect(g).toBeGreaterThanOrEqual(0);
              expect(sum(granted)).toBeLessThanOrEqual(resources[name]);
            }
            const claims = r.allocations.map((a) => ({ agent: a.key, needs: a.needs }));
            const answeredWeights = r.allocations.map((a) => keys.indexOf(a.key) + 1);
            const expected = computeAllocation(claims, resources, policyOf(kind, answeredWeights));
            expect(r.allocations.map((a) => a.granted)).toEqual(expected.map((g) => g.granted));
          } finally {
            release();
            await rt.shutdown();
          }
        },
      ),
      { numRuns: 40 },
    );
  });
});
