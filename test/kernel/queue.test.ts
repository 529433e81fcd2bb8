import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Queue } from '../../src/kernel/queue.js';

describe('Queue', () => {
  it('is FIFO across growth and wrap-around', () => {
    const q = new Queue<number>(4);
    const model: number[] = [];
    let next = 0;
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < round % 7; i++) {
        q.push(next);
        model.push(next++);
      }
      for (let i = 0; i < round % 5; i++) expect(q.shift()).toBe(model.shift());
      expect(q.length).toBe(model.length);
      expect(q.toArray()).toEqual(model);
    }
  });

  it('shift and peek on an empty queue give undefined', () => {
    const q = new Queue<string>();
    expect(q.shift()).toBeUndefined();
    expect(q.peek()).toBeUndefined();
    q.push('a');
    expect(q.peek()).toBe('a');
    expect(q.length).toBe(1);
    expect(q.shift()).toBe('a');
    expect(q.length).toBe(0);
  });

  it('removeWhere drops matching items and keeps the order of the rest', () => {
    const q = new Queue<number>(2);
    for (let i = 0; i < 10; i++) q.push(i);
    q.shift();
    expect(q.removeWhere((n) => n % 3 === 0)).toBe(3);
    expect(q.toArray()).toEqual([1, 2, 4, 5, 7, 8]);
  });

  it('clear empties it and it stays usable', () => {
    const q = new Queue<number>();
    for (let i = 0; i < 100; i++) q.push(i);
    q.clear();
    expect(q.length).toBe(0);
    expect(q.shift()).toBeUndefined();
    for (let i = 0; i < 20; i++) q.push(i);
    expect(q.toArray()).toEqual(Array.from({ length: 20 }, (_, i) => i));
  });

  it('behaves like an array model under random operations', () => {
    type Op =
      | { op: 'push'; v: number }
      | { op: 'shift' }
      | { op: 'peek' }
      | { op: 'remove'; mod: number }
      | { op: 'clear' };
    const opArb: fc.Arbitrary<Op> = fc.oneof(
      { weight: 6, arbitrary: fc.integer().map((v) => ({ op: 'push' as const, v })) },
      { weight: 4, arbitrary: fc.constant({ op: 'shift' as const }) },
      { weight: 1, arbitrary: fc.constant({ op: 'peek' as const }) },
      { weight: 1, arbitrary: fc.integer({ min: 2, max: 5 }).map((mod) => ({ op: 'remove' as const, mod })) },
      { weight: 1, arbitrary: fc.constant({ op: 'clear' as const }) },
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 40 }), fc.array(opArb, { maxLength: 300 }), (cap, ops) => {
        const q = new Queue<number>(cap);
        let model: number[] = [];
        for (const o of ops) {
          switch (o.op) {
            case 'push':
              q.push(o.v);
              model.push(o.v);
              break;
            case 'shift':
              expect(q.shift()).toBe(model.shift());
              break;
            case 'peek':
              expect(q.peek()).toBe(model[0]);
              break;
            case 'remove': {
              const before = model.length;
              model = model.filter((v) => v % o.mod !== 0);
              expect(q.removeWhere((v) => v % o.mod === 0)).toBe(before - model.length);
              break;
            }
            case 'clear':
              q.clear();
              model = [];
              break;
          }
          expect(q.length).toBe(model.length);
        }
        expect(q.toArray()).toEqual(model);
      }),
      { numRuns: 200 },
    );
  });
});
