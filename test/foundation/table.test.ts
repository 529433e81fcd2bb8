import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  compareKeys,
  type Entry,
  KeyExistsError,
  NoKeyError,
  NoTableError,
  NotOrderedError,
  type Table,
  TableAccessError,
  TableErrorCodes,
  type TableKey,
  Tables,
  type TableTransfer,
} from '../../src/foundation/table.js';
import {
  type AgentContext,
  type AnyRef,
  behaviour,
  type DownMessage,
  ErrorCodes,
  MabeamError,
  type Runtime,
  reply,
} from '../../src/kernel/index.js';
import { awaitExit, probe } from '../../src/kernel/testkit.js';
import { runtimeFactory } from '../kernel/helpers.js';

const runtime = runtimeFactory();

/** Something to run inside an agent, with its context. */
type Job = (ctx: AgentContext) => unknown;
type Outcome = { ok: unknown } | { error: unknown };

/**
 * A worker agent: a call runs a job in its handler (so `runtime.self()` is the worker); a cast
 * crashes it; info messages are passed to `onInfo`, run as the worker too.
 */
const Worker = behaviour<
  { onInfo?: (msg: unknown, ctx: AgentContext) => void } | undefined,
  { onInfo?: (msg: unknown, ctx: AgentContext) => void } | undefined,
  Job,
  Outcome,
  'crash',
  unknown
>({
  init: (args) => args,
  handleCall: (job, _from, s, ctx) => {
    try {
      return reply({ ok: job(ctx as AgentContext) }, s);
    } catch (error) {
      return reply({ error }, s);
    }
  },
  handleCast: () => {
    throw new Error('asked to crash');
  },
  handleInfo: (msg, s, ctx) => {
    s?.onInfo?.(msg, ctx as AgentContext);
    return s;
  },
});

type WorkerRef = AnyRef;

/** Run `job` inside `agent`'s handler; resolve with its result or reject with what it threw. */
async function inside<T>(rt: Runtime, agent: WorkerRef, job: (ctx: AgentContext) => T): Promise<T> {
  const outcome = (await rt.call(agent, job as Job)) as Outcome;
  if ('error' in outcome) throw outcome.error;
  return outcome.ok as T;
}

function setup() {
  const rt = runtime();
  const tables = new Tables(rt);
  const owner = rt.spawnSync(Worker, undefined);
  return { rt, tables, owner };
}

/** A public table, writable from the test's own code. */
function publicTable<K extends TableKey, V>(kind: 'set' | 'ordered_set' = 'set'): Table<K, V> {
  const { tables, owner } = setup();
  return tables.create<K, V>(owner, { kind, access: 'public' });
}

describe('table operations (set)', () => {
  it('put, get, has, delete and size', () => {
    const t = publicTable<string | number, string>();
    expect(t.get('a')).toBeUndefined();
    t.put('a', 'x');
    t.put(1, 'one');
    t.put('1', 'string one');
    expect(t.get('a')).toBe('x');
    expect(t.get(1)).toBe('one');
    expect(t.get('1')).toBe('string one');
    expect(t.has('a')).toBe(true);
    expect(t.size).toBe(3);
    t.put('a', 'y');
    expect(t.get('a')).toBe('y');
    expect(t.size).toBe(3);
    expect(t.delete('a')).toBe(true);
    expect(t.delete('a')).toBe(false);
    expect(t.has('a')).toBe(false);
    expect(t.size).toBe(2);
    t.clear();
    expect(t.size).toBe(0);
  });

  it('compares tuple keys by value, and keeps its own copy of them', () => {
    const t = publicTable<TableKey, number>();
    const key = ['user', 7];
    t.put(key, 1);
    expect(t.get(['user', 7])).toBe(1);
    key[1] = 8; // changing the caller's array must not move the entry
    expect(t.get(['user', 7])).toBe(1);
    expect(t.get(['user', 8])).toBeUndefined();
    t.put([['nested', 1], 'x'], 2);
    expect(t.get([['nested', 1], 'x'])).toBe(2);
    // A string that looks like a tuple's encoding is a different key.
    t.put('["user",7]', 3);
    expect(t.get(['user', 7])).toBe(1);
    expect(t.size).toBe(3);
    expect(t.delete(['user', 7])).toBe(true);
    expect(t.get('["user",7]')).toBe(3);
  });

  it('treats 0 and -0 as one key', () => {
    for (const kind of ['set', 'ordered_set'] as const) {
      const t = publicTable<TableKey, string>(kind);
      t.put(-0, 'zero');
      expect(t.get(0)).toBe('zero');
      t.put([0], 'tuple zero');
      expect(t.get([-0])).toBe('tuple zero');
      expect(t.size).toBe(2);
      // Both kinds hand back 0, never -0, also inside a tuple.
      t.put([-0, 1], 'tuple');
      const keys = [...t.keys()];
      expect(Object.is(keys[0], 0)).toBe(true);
      expect(Object.is((keys[2] as number[])[0], 0)).toBe(true);
    }
  });

  it('refuses keys that cannot be found again and undefined values', () => {
    const t = publicTable<TableKey, unknown>();
    for (const bad of [Number.NaN, true, null, {}, ['a', {}], [Number.NaN]]) {
      expect(() => t.put(bad as never, 1)).toThrow(expect.objectContaining({ code: 'E_INVALID_ARGUMENT' }));
    }
    expect(() => t.put('k', undefined)).toThrow(/value for key "k".*must not be undefined/);
    expect(t.get({} as never)).toBeUndefined();
    t.put([], 'empty tuple');
    expect(t.get([{}] as never)).toBeUndefined();
    const ordered = publicTable<TableKey, unknown>('ordered_set');
    ordered.put(1, 'one');
    expect(ordered.get(Number.NaN)).toBeUndefined();
    expect(ordered.get(true as never)).toBeUndefined();
    expect(ordered.delete(Number.NaN)).toBe(false);
  });

  it('insertNew fails with E_TABLE_KEY_EXISTS naming the key, leaving the value', () => {
    for (const kind of ['set', 'ordered_set'] as const) {
      const t = publicTable<TableKey, string>(kind);
      t.insertNew(['k', 1], 'first');
      const error = (() => {
        try {
          t.insertNew(['k', 1], 'second');
        } catch (e) {
          return e;
        }
      })();
      expect(error).toBeInstanceOf(KeyExistsError);
      expect(error).toMatchObject({
        code: 'E_TABLE_KEY_EXISTS',
        message: expect.stringContaining('["k",1]'),
      });
      expect(t.get(['k', 1])).toBe('first');
    }
  });

  it('updateCounter adds, starts from the initial value, and refuses what is not a counter', () => {
    for (const kind of ['set', 'ordered_set'] as const) {
      const t = publicTable<string, number>(kind);
      expect(t.updateCounter('hits', 1, 0)).toBe(1);
      expect(t.updateCounter('hits', 5)).toBe(6);
      expect(t.updateCounter('hits', -2, 100)).toBe(4);
      expect(t.get('hits')).toBe(4);
      expect(() => t.updateCounter('missing', 1)).toThrow(NoKeyError);
      expect(() => t.updateCounter('missing', 1)).toThrow(
        expect.objectContaining({ code: 'E_TABLE_NO_KEY' }),
      );
      expect(() => t.updateCounter('hits', Number.NaN)).toThrow(/counter increment/);
      const mixed = t as unknown as Table<string, unknown>;
      mixed.put('name', 'not a number');
      expect(() => t.updateCounter('name', 1)).toThrow(
        /counter at key "name".*must hold a number.*"not a number"/,
      );
    }
  });

  it('matchPrefix finds string keys by prefix and tuple keys by leading elements', () => {
    const t = publicTable<TableKey, number>();
    t.put('user:1', 1);
    t.put('user:2', 2);
    t.put('group:1', 3);
    t.put(['user', 1, 'name'], 4);
    t.put(['user', 1], 5);
    t.put(['user', 2, 'name'], 6);
    t.put(['group', 1], 7);
    const sorted = (es: Entry<TableKey, number>[]) => es.map((e) => e[1]).sort();
    expect(sorted(t.matchPrefix('user:'))).toEqual([1, 2]);
    expect(sorted(t.matchPrefix(['user', 1]))).toEqual([4, 5]);
    expect(sorted(t.matchPrefix(['user']))).toEqual([4, 5, 6]);
    expect(sorted(t.matchPrefix([]))).toEqual([4, 5, 6, 7]);
    expect(t.matchPrefix('user:', { limit: 1 })).toHaveLength(1);
    expect(() => t.matchPrefix(3 as never)).toThrow(/prefix/);
  });

  it('iterates keys, values and entries, and refuses range on a set', () => {
    const t = publicTable<string, number>();
    t.put('a', 1);
    t.put('b', 2);
    expect([...t.keys()].sort()).toEqual(['a', 'b']);
    expect([...t.values()].sort()).toEqual([1, 2]);
    expect(new Map(t)).toEqual(
      new Map([
        ['a', 1],
        ['b', 2],
      ]),
    );
    expect(() => t.range('a', 'b')).toThrow(NotOrderedError);
    expect(() => t.range('a', 'b')).toThrow(expect.objectContaining({ code: 'E_TABLE_NOT_ORDERED' }));
  });
});

describe('iteration of a set', () => {
  it('yields the numbers and strings first, then the tuples, each in insertion order', () => {
    const t = publicTable<TableKey, number>('set');
    t.put(['t'], 1);
    t.put('s', 2);
    t.put(3, 3);
    t.put(['u'], 4);
    t.put('r', 5);
    expect([...t.keys()]).toEqual(['s', 3, 'r', ['t'], ['u']]);
  });

  it('ends when the table is cleared meanwhile, tuple keys included', () => {
    for (const kind of ['set', 'ordered_set'] as const) {
      for (const at of [1, 2, 3]) {
        const t = publicTable<TableKey, number>(kind);
        t.put('s', 0);
        t.put(['a', 1], 1);
        t.put(['a', 2], 2);
        t.put(['a', 3], 3);
        const seen: TableKey[] = [];
        for (const [k] of t) {
          seen.push(k);
          if (seen.length === at) t.clear();
        }
        expect(seen).toHaveLength(at);
        expect(t.size).toBe(0);
        t.put(['b'], 1); // usable afterwards
        expect([...t]).toEqual([[['b'], 1]]);
      }
    }
  });
});

describe('ordered_set', () => {
  it('orders numbers before strings before tuples, tuples elementwise with prefixes first', () => {
    const t = publicTable<TableKey, number>('ordered_set');
    const keys: TableKey[] = [['b'], 'b', 10, ['a', 2], 'a', -1, ['a'], ['a', 1, 'x'], 2.5, ['a', 1], 'ab'];
    for (const [i, k] of keys.entries()) t.put(k, i);
    expect([...t.keys()]).toEqual([
      -1,
      2.5,
      10,
      'a',
      'ab',
      'b',
      ['a'],
      ['a', 1],
      ['a', 1, 'x'],
      ['a', 2],
      ['b'],
    ]);
  });

  it('range scans [from, to), inclusive, reversed, limited and open-ended', () => {
    const t = publicTable<number, string>('ordered_set');
    for (let i = 0; i < 1000; i++) t.put(i * 2, `v${i * 2}`); // even keys 0..1998
    const keys = (es: Entry<number, string>[]) => es.map((e) => e[0]);
    expect(keys(t.range(10, 20))).toEqual([10, 12, 14, 16, 18]);
    expect(keys(t.range(10, 20, { inclusive: true }))).toEqual([10, 12, 14, 16, 18, 20]);
    expect(keys(t.range(11, 19))).toEqual([12, 14, 16, 18]);
    expect(keys(t.range(10, 20, { reverse: true }))).toEqual([18, 16, 14, 12, 10]);
    expect(keys(t.range(10, 20, { reverse: true, inclusive: true, limit: 2 }))).toEqual([20, 18]);
    expect(keys(t.range(undefined, 5))).toEqual([0, 2, 4]);
    expect(keys(t.range(1994))).toEqual([1994, 1996, 1998]);
    expect(keys(t.range(undefined, undefined, { reverse: true, limit: 3 }))).toEqual([1998, 1996, 1994]);
    expect(t.range(20, 10)).toEqual([]);
    expect(t.range(0, 100, { limit: 0 })).toEqual([]);
    expect(t.range(5, 6)).toEqual([]);
    expect(t.range(10, 12)[0]).toEqual([10, 'v10']);
    expect(() => t.range(0, 10, { limit: -1 })).toThrow(/limit/);
    expect(() => t.range(Number.NaN)).toThrow(/range start/);
  });

  it('matchPrefix seeks to the prefix and returns matches in key order', () => {
    const t = publicTable<TableKey, number>('ordered_set');
    let i = 0;
    for (const user of ['ann', 'bob', 'cy']) {
      for (const field of ['age', 'name', 'zip']) t.put([user, field], i++);
      t.put(`${user}:x`, i++);
    }
    expect(t.matchPrefix(['bob']).map((e) => e[0])).toEqual([
      ['bob', 'age'],
      ['bob', 'name'],
      ['bob', 'zip'],
    ]);
    expect(t.matchPrefix(['bob', 'name'])).toEqual([[['bob', 'name'], 5]]);
    expect(t.matchPrefix('b').map((e) => e[0])).toEqual(['bob:x']);
    expect(t.matchPrefix(['cy'], { limit: 2 })).toHaveLength(2);
    expect(t.matchPrefix(['dan'])).toEqual([]);
  });

  it('iterates live: a key deleted or added during iteration is skipped or seen, none twice', () => {
    const t = publicTable<number, number>('ordered_set');
    for (let i = 0; i < 500; i++) t.put(i * 10, i);
    const seen: number[] = [];
    for (const [k] of t) {
      seen.push(k);
      if (k === 100) {
        t.delete(110); // ahead: skipped
        t.delete(90); // behind: already seen
        t.put(105, -1); // ahead: seen
        t.put(5, -1); // behind: not seen
        for (let j = 0; j < 200; j++) t.put(2000 + j * 10 + 1, j); // force splits ahead
      }
    }
    expect(seen).toContain(105);
    expect(seen).not.toContain(110);
    expect(seen).not.toContain(5);
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen).toEqual([...seen].sort((a, b) => a - b));
    expect(seen.length).toBe(500 - 1 + 1 + 200);
  });
});

/** The reference model: entries kept sorted with compareKeys. */
class Model {
  entries: Entry<TableKey, number>[] = [];
  find(k: TableKey): number {
    return this.entries.findIndex((e) => compareKeys(e[0], k) === 0);
  }
  put(k: TableKey, v: number): void {
    const i = this.find(k);
    if (i >= 0) (this.entries[i] as Entry<TableKey, number>)[1] = v;
    else {
      this.entries.push([k, v]);
      this.entries.sort((a, b) => compareKeys(a[0], b[0]));
    }
  }
  delete(k: TableKey): boolean {
    const i = this.find(k);
    if (i >= 0) this.entries.splice(i, 1);
    return i >= 0;
  }
}

const keyArb: fc.Arbitrary<TableKey> = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 0, max: 400 }) },
  { weight: 1, arbitrary: fc.constantFrom(-0.5, 0.25, 1e9, -1e9) },
  { weight: 2, arbitrary: fc.string({ maxLength: 3 }) },
  { weight: 2, arbitrary: fc.tuple(fc.constantFrom('a', 'b'), fc.integer({ min: 0, max: 20 })) },
  { weight: 1, arbitrary: fc.array(fc.integer({ min: 0, max: 2 }), { maxLength: 3 }) },
);

type Op = { op: 'put'; key: TableKey; value: number } | { op: 'delete'; key: TableKey };

const opsArb = fc.array(
  fc.oneof(
    {
      weight: 3,
      arbitrary: fc.record({ op: fc.constant('put' as const), key: keyArb, value: fc.integer() }),
    },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('delete' as const), key: keyArb }) },
  ),
  { maxLength: 1500 },
);

describe('ordered_set against a sorted-array model (property)', () => {
  it('agrees on get, size, order, range and matchPrefix after any sequence of writes', () => {
    fc.assert(
      fc.property(opsArb, keyArb, keyArb, fc.boolean(), (ops: Op[], a, b, reverse) => {
        const t = publicTable<TableKey, number>('ordered_set');
        const h = publicTable<TableKey, number>('set');
        const m = new Model();
        for (const o of ops) {
          if (o.op === 'put') {
            t.put(o.key, o.value);
            h.put(o.key, o.value);
            m.put(o.key, o.value);
          } else {
            const expected = m.delete(o.key);
            expect(t.delete(o.key)).toBe(expected);
            expect(h.delete(o.key)).toBe(expected);
          }
        }
        expect(t.size).toBe(m.entries.length);
        expect(h.size).toBe(m.entries.length);
        expect([...t]).toEqual(m.entries);
        for (const [k, v] of m.entries) {
          expect(t.get(k)).toBe(v);
          expect(h.get(k)).toBe(v);
        }
        const [from, to] = compareKeys(a, b) <= 0 ? [a, b] : [b, a];
        const inRange = m.entries.filter((e) => compareKeys(e[0], from) >= 0 && compareKeys(e[0], to) < 0);
        expect(t.range(from, to, { reverse })).toEqual(reverse ? [...inRange].reverse() : inRange);
        const prefix = typeof a === 'number' ? [a] : a;
        const matching = m.entries.filter((e) =>
          typeof prefix === 'string'
            ? typeof e[0] === 'string' && e[0].startsWith(prefix)
            : Array.isArray(e[0]) &&
              prefix.every((p, i) => compareKeys(p, (e[0] as TableKey[])[i] as TableKey) === 0),
        );
        expect(t.matchPrefix(prefix)).toEqual(matching);
        const sortEntries = (es: Entry<TableKey, number>[]) => es.sort((x, y) => compareKeys(x[0], y[0]));
        expect(sortEntries(h.matchPrefix(prefix))).toEqual(matching);
      }),
      { numRuns: 120 },
    );
  });

  it('stays consistent through growth to many levels and shrinking to nothing', () => {
    const t = publicTable<number, number>('ordered_set');
    const n = 50_000;
    // A scrambled order, so splits happen all over the tree.
    const order = Array.from({ length: n }, (_, i) => (i * 7919) % n);
    for (const k of order) t.put(k, -k);
    expect(t.size).toBe(n);
    expect(t.range(24_990, 25_000).map((e) => e[0])).toEqual([
      24_990, 24_991, 24_992, 24_993, 24_994, 24_995, 24_996, 24_997, 24_998, 24_999,
    ]);
    // Delete every key but the multiples of 100, in another scrambled order: merges and refills.
    for (const k of order.slice().reverse()) if (k % 100 !== 0) t.delete(k);
    expect([...t.keys()]).toEqual(Array.from({ length: n / 100 }, (_, i) => i * 100));
    for (let i = 0; i < n; i += 100) expect(t.get(i)).toBe(-i);
    for (const k of order) t.delete(k);
    expect(t.size).toBe(0);
    expect([...t]).toEqual([]);
    t.put(1, 1);
    expect([...t]).toEqual([[1, 1]]);
  });
});

describe('ordered_set B+ tree against a Map (property)', () => {
  it('agrees after runs of inserts and deletes that build three-level trees and empty them', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 6000 }), fc.integer({ min: 1, max: 200 })),
          { minLength: 1, maxLength: 60 },
        ),
        fc.integer({ min: 0, max: 6000 }),
        fc.integer({ min: 0, max: 6000 }),
        fc.boolean(),
        fc.boolean(),
        (batches, a, b, reverse, inclusive) => {
          const t = publicTable<number, number>('ordered_set');
          const m = new Map<number, number>();
          let v = 0;
          for (const [insert, start, len] of batches) {
            for (let k = start; k < start + len; k++) {
              if (insert) {
                t.put(k, ++v);
                m.set(k, v);
              } else expect(t.delete(k)).toBe(m.delete(k));
            }
          }
          const sorted = [...m.entries()].sort((x, y) => x[0] - y[0]);
          expect([...t]).toEqual(sorted);
          expect(t.size).toBe(m.size);
          const [lo, hi] = a <= b ? [a, b] : [b, a];
          const expected = sorted.filter(([k]) => k >= lo && (inclusive ? k <= hi : k < hi));
          expect(t.range(lo, hi, { reverse, inclusive })).toEqual(reverse ? expected.reverse() : expected);
          for (const k of [lo, hi, lo + 1]) expect(t.get(k)).toBe(m.get(k));
        },
      ),
      { numRuns: 40 },
    );
  });

  it('agrees after long random interleavings of puts and deletes', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 3000 })), {
          minLength: 2000,
          maxLength: 8000,
        }),
        (ops) => {
          const t = publicTable<number, number>('ordered_set');
          const m = new Map<number, number>();
          for (const [insert, k] of ops) {
            if (insert) {
              t.put(k, k);
              m.set(k, k);
            } else expect(t.delete(k)).toBe(m.delete(k));
          }
          const sorted = [...m.keys()].sort((x, y) => x - y);
          expect([...t.keys()]).toEqual(sorted);
          expect(t.range(undefined, undefined, { reverse: true }).map((e) => e[0])).toEqual(
            [...sorted].reverse(),
          );
        },
      ),
      { numRuns: 10 },
    );
  });
});

describe('compareKeys (property)', () => {
  it('is a total order: antisymmetric, transitive, and zero only for equal keys', () => {
    fc.assert(
      fc.property(keyArb, keyArb, keyArb, (a, b, c) => {
        expect(Math.sign(compareKeys(a, b)) + Math.sign(compareKeys(b, a))).toBe(0);
        if (compareKeys(a, b) <= 0 && compareKeys(b, c) <= 0)
          expect(compareKeys(a, c)).toBeLessThanOrEqual(0);
        if (compareKeys(a, b) === 0) expect(JSON.stringify(a)).toBe(JSON.stringify(b));
      }),
      { numRuns: 2000 },
    );
  });
});

describe('access modes', () => {
  it('protected (the default): anyone reads, only the owner writes', async () => {
    const { rt, tables, owner } = setup();
    const t = tables.create<string, number>(owner);
    expect(t.access).toBe('protected');
    await inside(rt, owner, () => t.put('a', 1));
    expect(t.get('a')).toBe(1);
    expect(() => t.put('b', 2)).toThrow(TableAccessError);
    expect(() => t.put('b', 2)).toThrow(/put on table #1 by code outside any agent refused: protected/);
    const other = rt.spawnSync(Worker, undefined);
    await expect(inside(rt, other, () => t.get('a'))).resolves.toBe(1);
    const refused = inside(rt, other, () => t.delete('a'));
    await expect(refused).rejects.toMatchObject({ code: 'E_TABLE_ACCESS' });
    await expect(refused).rejects.toThrow(`delete on table #1 by agent ${other} refused`);
    expect(t.get('a')).toBe(1);
  });

  it('private: only the owner reads or writes', async () => {
    const { rt, tables, owner } = setup();
    const t = tables.create<string, number>(owner, { access: 'private' });
    await inside(rt, owner, () => t.put('a', 1));
    await expect(inside(rt, owner, () => t.get('a'))).resolves.toBe(1);
    expect(() => t.get('a')).toThrow(expect.objectContaining({ code: 'E_TABLE_ACCESS' }));
    expect(() => t.size).toThrow(/private, only its owner/);
    expect(() => [...t]).toThrow(TableAccessError);
    expect(() => t.matchPrefix('a')).toThrow(TableAccessError);
  });

  it('public: anyone reads and writes', async () => {
    const { rt, tables, owner } = setup();
    const t = tables.create<string, number>(owner, { access: 'public' });
    const other = rt.spawnSync(Worker, undefined);
    await inside(rt, other, () => t.put('a', 1));
    t.put('b', 2);
    expect(t.size).toBe(2);
  });

  it('as(ctx) lets the owner write after an await, where runtime.self() no longer names it', async () => {
    const rt = runtime();
    const tables = new Tables(rt);
    const Async = behaviour<void, Table<string, number> | null, 'fill', string>({
      init: (_a, ctx) => tables.create<string, number>(ctx),
      handleCall: async (_m, _f, t, ctx) => {
        const table = t as Table<string, number>;
        table.put('before', 1);
        await Promise.resolve();
        let plain = 'ok';
        try {
          table.put('after', 2);
        } catch (e) {
          plain = (e as MabeamError).code;
        }
        table.as(ctx).put('after', 3);
        return reply(plain, t);
      },
    });
    const owner = await rt.spawn(Async, undefined);
    expect(await rt.call(owner, 'fill')).toBe('E_TABLE_ACCESS');
    const t = tables.all()[0] as Table<string, number>;
    expect(Object.fromEntries(t)).toEqual({ before: 1, after: 3 });
    // A view acts as its agent: another agent's context does not pass for the owner.
    const p = probe(rt);
    expect(() => t.as(p.ctx).put('x', 1)).toThrow(TableAccessError);
    expect(() => t.as({} as AgentContext)).toThrow(/must be an agent context/);
    const otherRt = runtime();
    expect(() => t.as(probe(otherRt).ctx)).toThrow(/runtime/);
  });
});

describe('as(ctx)', () => {
  it('refuses a forged context, and at use the context of an agent that has exited', async () => {
    const { rt, tables, owner } = setup();
    const heir = rt.spawnSync(Worker, undefined);
    const t = tables.create<string, number>(owner, { access: 'private', heir });
    const ownerCtx = await inside(rt, owner, (ctx) => ctx);
    // Objects that merely name the owner do not pass for it.
    for (const forged of [{ self: owner, runtime: rt }, Object.create(ownerCtx)]) {
      expect(() => t.as(forged as AgentContext)).toThrow(/must be the context of a live agent/);
    }
    expect(() => t.get('a')).toThrow(TableAccessError);
    // The real context passes.
    const view = t.as(ownerCtx);
    view.put('a', 1);
    expect(view.get('a')).toBe(1);
    // The owner exits (the heir inherits): the view bound to its context is refused from then on.
    rt.cast(owner, 'crash');
    await awaitExit(rt, owner);
    expect(t.owner.equals(heir)).toBe(true);
    expect(() => view.get('a')).toThrow(/not a live agent context/);
    expect(() => view.put('b', 2)).toThrow(TableAccessError);
    expect(() => t.as(ownerCtx)).toThrow(/must be the context of a live agent/);
    await expect(inside(rt, heir, () => t.get('a'))).resolves.toBe(1);
  });
});

describe('lifetime', () => {
  it('drops the table when its owner exits, before anyone sees the exit', async () => {
    const { rt, tables, owner } = setup();
    const t = tables.create<string, number>(owner, { name: 'sessions' });
    await inside(rt, owner, () => t.put('a', 1));
    // A watcher records, at the moment the DOWN reaches it, whether the table was already gone.
    const report = probe(rt);
    const watcher = rt.spawnSync(Worker, {
      onInfo: (msg) => {
        if ((msg as DownMessage).type === 'DOWN')
          report.ctx.send(report.ref, { down: true, dropped: t.dropped });
      },
    });
    await inside(rt, watcher, (ctx) => ctx.monitor(owner));
    rt.cast(owner, 'crash');
    await report.expectMessage({ down: true, dropped: true });
    expect(t.dropped).toBe(true);
    expect(tables.whereis('sessions')).toBeUndefined();
    expect(tables.count).toBe(0);
    for (const use of [
      () => t.get('a'),
      () => t.size,
      () => t.put('a', 2),
      () => t.range(),
      () => t.info(),
      () => [...t.keys()],
      () => t.drop(),
    ]) {
      expect(use).toThrow(NoTableError);
    }
    expect(() => t.get('a')).toThrow(
      /table #1 \("sessions"\) no longer exists \(its owner <.*> exited with reason Error: asked to crash\)/,
    );
    // The name is free again.
    const owner2 = rt.spawnSync(Worker, undefined);
    expect(tables.create(owner2, { name: 'sessions' }).id).toBe(2);
  });

  it('an iteration over a table that is dropped meanwhile throws E_NO_TABLE', async () => {
    const { rt, tables, owner } = setup();
    const t = tables.create<number, number>(owner, { access: 'public', kind: 'ordered_set' });
    for (let i = 0; i < 10; i++) t.put(i, i);
    const it = t.keys();
    expect(it.next().value).toBe(0);
    rt.kill(owner);
    await awaitExit(rt, owner);
    expect(() => it.next()).toThrow(expect.objectContaining({ code: 'E_NO_TABLE' }));
  });

  it('hands the table to a live heir, who gets TABLE-TRANSFER and may write at once', async () => {
    const { rt, tables, owner } = setup();
    const report = probe(rt);
    const heir = rt.spawnSync(Worker, {
      onInfo: (msg) => {
        const transfer = msg as TableTransfer<string, number>;
        if (transfer.type !== 'TABLE-TRANSFER') return;
        transfer.table.put('inherited', 1); // the heir is the owner now
        report.ctx.send(report.ref, { ...transfer, owner: transfer.table.owner });
      },
    });
    const t = tables.create<string, number>(owner, { heir, heirData: { note: 'yours' } });
    await inside(rt, owner, () => t.put('a', 1));
    rt.cast(owner, 'crash');
    const msg = await report.expectMessage({
      type: 'TABLE-TRANSFER',
      from: owner,
      heirData: { note: 'yours' },
    });
    expect(msg.table).toBe(t);
    expect(msg.owner.equals(heir)).toBe(true);
    expect(Object.fromEntries(t)).toEqual({ a: 1, inherited: 1 });
    expect(t.heir).toBeUndefined(); // used up
    // Now the table lives as long as the heir.
    rt.kill(heir);
    await awaitExit(rt, heir);
    expect(t.dropped).toBe(true);
  });

  it('drops the table when the heir is already dead', async () => {
    const { rt, tables, owner } = setup();
    const heir = rt.spawnSync(Worker, undefined);
    const t = tables.create(owner, { heir });
    rt.kill(heir);
    rt.kill(owner);
    await awaitExit(rt, owner);
    expect(t.dropped).toBe(true);
  });

  it('giveAway and setHeir: owner only; the new owner is told and the old one no longer matters', async () => {
    const { rt, tables, owner } = setup();
    const t = tables.create<string, number>(owner);
    const next = probe(rt);
    expect(() => t.giveAway(next.ref)).toThrow(TableAccessError);
    expect(() => t.setHeir(next.ref)).toThrow(/setHeir on table #1 by code outside any agent refused/);
    const dead = rt.spawnSync(Worker, undefined);
    rt.kill(dead);
    await expect(inside(rt, owner, () => t.giveAway(dead))).rejects.toMatchObject({ code: 'E_NOPROC' });
    await expect(inside(rt, owner, () => t.giveAway(owner))).rejects.toThrow(/already owns/);
    await inside(rt, owner, () => t.giveAway(next.ref, 'gift'));
    await next.expectMessage({ type: 'TABLE-TRANSFER', table: t, from: owner, heirData: 'gift' });
    expect(t.owner.equals(next.ref)).toBe(true);
    rt.kill(owner);
    await awaitExit(rt, owner);
    expect(t.dropped).toBe(false);
    t.as(next.ctx).put('mine', 1);
    const heir = probe(rt);
    t.as(next.ctx).setHeir(heir.ref, 'next in line');
    expect(t.heir?.equals(heir.ref)).toBe(true);
    rt.kill(next.ref);
    await heir.expectMessage({ type: 'TABLE-TRANSFER', from: next.ref, heirData: 'next in line' });
    expect(t.get('mine')).toBe(1);
  });

  it('drop() by the owner frees the table and its name at once', async () => {
    const { rt, tables, owner } = setup();
    const t = tables.create(owner, { name: 'x' });
    expect(() => t.drop()).toThrow(TableAccessError);
    await inside(rt, owner, () => t.drop());
    expect(t.dropped).toBe(true);
    expect(tables.whereis('x')).toBeUndefined();
    expect(() => t.get('k')).toThrow(/dropped by <.*>/);
  });
});

describe('Tables', () => {
  it('names tables uniquely per Tables, and tables of two runtimes never meet', () => {
    const a = setup();
    const b = setup();
    const ta = a.tables.create<string, number>(a.owner, { name: 'shared', access: 'public' });
    expect(() => a.tables.create(a.owner, { name: 'shared' })).toThrow(
      expect.objectContaining({ code: ErrorCodes.ALREADY_REGISTERED }),
    );
    const tb = b.tables.create<string, number>(b.owner, { name: 'shared', access: 'public' });
    ta.put('k', 1);
    expect(tb.get('k')).toBeUndefined();
    expect(a.tables.whereis('shared')).toBe(ta);
    expect(b.tables.whereis('shared')).toBe(tb);
    expect(a.tables.all()).toEqual([ta]);
    expect(ta.info()).toMatchObject({ id: 1, name: 'shared', kind: 'set', access: 'public', size: 1 });
    expect(String(ta)).toBe('table #1 ("shared")');
  });

  it('validates the owner and the options', async () => {
    const { rt, tables, owner } = setup();
    const dead = rt.spawnSync(Worker, undefined);
    rt.kill(dead);
    expect(() => tables.create(dead)).toThrow(expect.objectContaining({ code: 'E_NOPROC' }));
    expect(() => tables.create('owner' as never)).toThrow(/table owner/);
    expect(() => tables.create(owner, { kind: 'bag' as never })).toThrow(/"kind".*"bag"/);
    expect(() => tables.create(owner, { access: 'open' as never })).toThrow(/"access"/);
    expect(() => tables.create(owner, { name: '' })).toThrow(/"name"/);
    expect(() => tables.create(owner, { heir: 'h' as never })).toThrow(/"heir"/);
    expect(() => tables.create(owner, { size: 3 } as never)).toThrow(/"size".*unknown option/);
    expect(() => new Tables({} as Runtime)).toThrow(/runtime/);
    // Created through the owner's context, inside the owner.
    const t = await inside(rt, owner, (ctx) => tables.create(ctx));
    expect(t.owner.equals(owner)).toBe(true);
  });

  it('has unique E_ codes on MabeamError subclasses', () => {
    const codes = Object.values(TableErrorCodes);
    expect(new Set(codes).size).toBe(codes.length);
    for (const code of codes) expect(code).toMatch(/^E_[A-Z_]+$/);
    for (const code of codes) expect(Object.values(ErrorCodes)).not.toContain(code);
    expect(new NoTableError('t', 'why')).toBeInstanceOf(MabeamError);
    expect(new KeyExistsError('t', 1).code).toBe('E_TABLE_KEY_EXISTS');
  });
});
