import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  AgentRef,
  comparePids,
  isPid,
  type Pid,
  pidEquals,
  pidKey,
  Runtime,
} from '../../src/kernel/index.js';

const pidArb: fc.Arbitrary<Pid> = fc.record({
  node: fc.constantFrom('a', 'b', 'node-1', 'node-10', ''),
  thread: fc.integer({ min: 0, max: 3 }),
  id: fc.integer({ min: 0, max: 5 }),
});

describe('pids', () => {
  it('refs serialize to plain pids through JSON and back', async () => {
    const rt = new Runtime({ node: 'n', thread: 2 });
    try {
      const ref = rt.spawnSync({ init: () => null }, undefined);
      const json = JSON.stringify({ to: ref });
      const back = JSON.parse(json).to as Pid;
      expect(back).toEqual({ node: 'n', thread: 2, id: ref.id });
      expect(isPid(back)).toBe(true);
      expect(pidEquals(back, ref)).toBe(true);
      expect(ref.equals(back)).toBe(true);
      // The rebuilt pid reaches the same agent.
      expect(rt.isAlive(back)).toBe(true);
      expect(String(ref)).toBe(`<n.2.${ref.id}>`);
    } finally {
      await rt.shutdown();
    }
  });

  it('equality compares node, thread and id', () => {
    const a = new AgentRef('n', 0, 1);
    expect(a.equals(new AgentRef('n', 0, 1))).toBe(true);
    expect(a.equals({ node: 'n', thread: 0, id: 1 })).toBe(true);
    expect(a.equals(new AgentRef('m', 0, 1))).toBe(false);
    expect(a.equals(new AgentRef('n', 1, 1))).toBe(false);
    expect(a.equals(new AgentRef('n', 0, 2))).toBe(false);
    expect(a.equals(null)).toBe(false);
    expect(a.equals(undefined)).toBe(false);
  });

  it('isPid accepts exactly the pid shape', () => {
    expect(isPid({ node: 'n', thread: 0, id: 3 })).toBe(true);
    expect(isPid(new AgentRef('n', 0, 3))).toBe(true);
    for (const bad of [
      null,
      undefined,
      3,
      'n.0.3',
      { node: 'n', thread: 0 },
      { node: 1, thread: 0, id: 3 },
      { node: 'n', thread: 0.5, id: 3 },
    ]) {
      expect(isPid(bad), JSON.stringify(bad)).toBe(false);
    }
  });

  it('pidKey is injective on pids (as far as equality goes)', () => {
    fc.assert(
      fc.property(pidArb, pidArb, (a, b) => {
        expect(pidKey(a) === pidKey(b)).toBe(pidEquals(a, b));
      }),
      { numRuns: 300 },
    );
  });

  it('comparePids is a total order consistent with equality', () => {
    fc.assert(
      fc.property(pidArb, pidArb, pidArb, (a, b, c) => {
        const ab = comparePids(a, b);
        // antisymmetric and consistent with pidEquals
        expect(Math.sign(ab)).toBe(-Math.sign(comparePids(b, a)) || 0);
        expect(ab === 0).toBe(pidEquals(a, b));
        // transitive
        if (ab <= 0 && comparePids(b, c) <= 0) expect(comparePids(a, c)).toBeLessThanOrEqual(0);
        // reflexive
        expect(comparePids(a, a)).toBe(0);
      }),
      { numRuns: 500 },
    );
  });

  it('sorting by comparePids orders by node, then thread, then id', () => {
    const pids: Pid[] = [
      { node: 'b', thread: 0, id: 1 },
      { node: 'a', thread: 1, id: 0 },
      { node: 'a', thread: 0, id: 2 },
      { node: 'a', thread: 0, id: 1 },
    ];
    expect([...pids].sort(comparePids).map(pidKey)).toEqual(['a.0.1', 'a.0.2', 'a.1.0', 'b.0.1']);
  });
});
