/**
 * Property: after any sequence of register / unregister / updateMetadata / kill / crash, every read
 * of the registry (lookup, select by indexed and non-indexed fields and by predicate, count,
 * entriesOf) agrees with a plain model: a Map from (namespace, name) to holders and metadata.
 * Writes must also succeed or fail exactly as the model says.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Registry, type RegistryKeyMode, type RegistryName } from '../../src/foundation/registry.js';
import { type AnyRef, behaviour, Runtime } from '../../src/kernel/index.js';
import { awaitExit } from '../../src/kernel/testkit.js';

type Meta = { type: string; cap: string | string[]; color: string };

const NAMESPACES = ['a', 'b'] as const;
const NAMES: readonly RegistryName[] = ['x', 1, '1', ['t'], ['t', 1], ['t', 2], ['t', 1, 'z'], ['u', 1]];
const SLOTS = 4;
/** Slot index SLOTS means "an agent that has exited" (the most recent one, if any). */
const DEAD = SLOTS;

const Agent = behaviour<void, null, never, never, 'crash'>({
  init: () => null,
  handleCast: () => {
    throw new Error('crash');
  },
});

type Action =
  | { kind: 'register'; ns: string; name: number; slot: number; meta: Meta }
  | { kind: 'unregister'; ns: string; name: number; slot: number | null }
  | { kind: 'update'; ns: string; name: number; slot: number | null; meta: Meta }
  | { kind: 'churn'; ns: string; name: number; slot: number; times: number }
  | { kind: 'kill'; slot: number }
  | { kind: 'crash'; slot: number };

const meta: fc.Arbitrary<Meta> = fc.record({
  type: fc.constantFrom('p', 'q'),
  cap: fc.oneof(fc.constantFrom('x', 'y'), fc.subarray(['x', 'y'])),
  color: fc.constantFrom('red', 'blue'),
});
const ns = fc.constantFrom(...NAMESPACES);
const name = fc.nat(NAMES.length - 1);
const slot = fc.nat(SLOTS - 1);

const action: fc.Arbitrary<Action> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('register'), ns, name, slot: fc.nat(DEAD), meta }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('unregister'), ns, name, slot: fc.option(slot) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('update'), ns, name, slot: fc.option(slot), meta }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('churn'),
      ns,
      name,
      slot,
      times: fc.integer({ min: 1, max: 12 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('kill'), slot }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('crash'), slot }) },
) as fc.Arbitrary<Action>;

/** The model: (namespace, name) -> members in registration order (one at most for unique keys). */
class Model {
  readonly names = new Map<string, { ns: string; name: RegistryName; members: Map<AnyRef, Meta> }>();

  constructor(readonly unique: boolean) {}

  static key(ns: string, name: RegistryName): string {
    return `${ns}|${JSON.stringify(name)}`;
  }

  members(ns: string, name: RegistryName): Map<AnyRef, Meta> | undefined {
    return this.names.get(Model.key(ns, name))?.members;
  }

  /** What a register should do: 'ok', or the error code. */
  register(ns: string, name: RegistryName, ref: AnyRef, alive: boolean, m: Meta): string {
    if (!alive) return 'E_NOPROC';
    const members = this.members(ns, name);
    if (members !== undefined && (this.unique || members.has(ref))) return 'E_ALREADY_REGISTERED';
    if (members === undefined)
      this.names.set(Model.key(ns, name), { ns, name, members: new Map([[ref, m]]) });
    else members.set(ref, m);
    return 'ok';
  }

  unregister(ns: string, name: RegistryName, ref: AnyRef | undefined): boolean {
    const members = this.members(ns, name);
    if (members === undefined) return false;
    if (ref === undefined) {
      this.names.delete(Model.key(ns, name));
      return true;
    }
    if (!members.delete(ref)) return false;
    if (members.size === 0) this.names.delete(Model.key(ns, name));
    return true;
  }

  update(ns: string, name: RegistryName, ref: AnyRef | undefined, m: Meta): string {
    const members = this.members(ns, name);
    if (members === undefined) return 'E_REGISTRY_NOT_REGISTERED';
    const target = ref ?? [...members.keys()][0];
    if (target === undefined || !members.has(target)) return 'E_REGISTRY_NOT_REGISTERED';
    members.set(target, m);
    return 'ok';
  }

  exited(ref: AnyRef): void {
    for (const [key, entry] of this.names) {
      entry.members.delete(ref);
      if (entry.members.size === 0) this.names.delete(key);
    }
  }

  entries(ns?: string): { ns: string; name: RegistryName; ref: AnyRef; meta: Meta }[] {
    const out: { ns: string; name: RegistryName; ref: AnyRef; meta: Meta }[] = [];
    for (const entry of this.names.values()) {
      if (ns !== undefined && entry.ns !== ns) continue;
      for (const [ref, m] of entry.members) out.push({ ns: entry.ns, name: entry.name, ref, meta: m });
    }
    return out;
  }
}

/** A comparable rendering of entries, order-free. */
function rows(
  entries: {
    namespace?: string;
    ns?: string;
    name: RegistryName;
    ref: AnyRef;
    metadata?: Meta;
    meta?: Meta;
  }[],
): string[] {
  return entries
    .map((e) => JSON.stringify([e.namespace ?? e.ns, e.name, e.ref.id, e.metadata ?? e.meta]))
    .sort();
}

/** Agent ids, sorted: group members come in no promised order. */
const ids = (refs: readonly AnyRef[]) => refs.map((r) => r.id).sort((x, y) => x - y);

const has = (value: string | string[], wanted: string) =>
  Array.isArray(value) ? value.includes(wanted) : value === wanted;

function check(registry: Registry<Meta, RegistryKeyMode>, model: Model, live: readonly AnyRef[]): void {
  for (const n of NAMESPACES) {
    for (const nm of NAMES) {
      const members = [...(model.members(n, nm)?.keys() ?? [])];
      const found = registry.lookup(n, nm);
      if (model.unique) expect(found).toBe(members[0]);
      else expect(ids(found as readonly AnyRef[])).toEqual(ids(members));
    }
    const all = model.entries(n);
    expect(rows(registry.list(n))).toEqual(rows(all));
    expect(registry.count(n)).toBe(all.length);
    for (const type of ['p', 'q']) {
      const want = rows(all.filter((e) => e.meta.type === type));
      expect(rows(registry.select(n, { type }))).toEqual(want);
      expect(registry.count(n, { type })).toBe(want.length);
    }
    for (const cap of ['x', 'y']) {
      expect(rows(registry.select(n, { cap }))).toEqual(rows(all.filter((e) => has(e.meta.cap, cap))));
      expect(rows(registry.select(n, { cap, color: 'red' }))).toEqual(
        rows(all.filter((e) => has(e.meta.cap, cap) && e.meta.color === 'red')),
      );
    }
    expect(rows(registry.select(n, { color: 'blue' }))).toEqual(
      rows(all.filter((e) => e.meta.color === 'blue')),
    );
    expect(rows(registry.select(n, { type: 'p', color: 'blue' }))).toEqual(
      rows(all.filter((e) => e.meta.type === 'p' && e.meta.color === 'blue')),
    );
    expect(rows(registry.select(n, (e) => e.metadata.color === 'red' || e.ref.id % 2 === 0))).toEqual(
      rows(all.filter((e) => e.meta.color === 'red' || e.ref.id % 2 === 0)),
    );
  }
  expect(registry.count()).toBe(model.entries().length);
  for (const ref of live) {
    expect(rows(registry.entriesOf(ref))).toEqual(rows(model.entries().filter((e) => e.ref === ref)));
  }
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (error) {
    return (error as { code?: string }).code ?? String(error);
  }
}

async function runScenario(keys: RegistryKeyMode, actions: readonly Action[]): Promise<void> {
  const rt = new Runtime();
  try {
    const registry = await Registry.start<Meta>(rt, { keys, indexes: ['type', 'cap'] });
    const model = new Model(keys === 'unique');
    const agents: AnyRef[] = Array.from({ length: SLOTS }, () => rt.spawnSync(Agent, undefined));
    let dead: AnyRef | undefined;
    const pick = (s: number | null): AnyRef | undefined =>
      s === null ? undefined : s === DEAD ? dead : agents[s];
    for (const act of actions) {
      switch (act.kind) {
        case 'register': {
          const ref = pick(act.slot);
          if (ref === undefined) break;
          const nm = NAMES[act.name] as RegistryName;
          const expected = model.register(act.ns, nm, ref, rt.isAlive(ref), act.meta);
          expect(await codeOf(registry.register(act.ns, nm, ref, act.meta))).toBe(expected);
          break;
        }
        case 'unregister': {
          const nm = NAMES[act.name] as RegistryName;
          const ref = pick(act.slot);
          const expected = model.unregister(act.ns, nm, ref);
          expect(await registry.unregister(act.ns, nm, ref)).toBe(expected);
          break;
        }
        case 'update': {
          const nm = NAMES[act.name] as RegistryName;
          const ref = pick(act.slot);
          if (keys === 'duplicate' && ref === undefined) break;
          const expected = model.update(act.ns, nm, ref, act.meta);
          expect(await codeOf(registry.updateMetadata(act.ns, nm, act.meta, ref))).toBe(expected);
          break;
        }
        case 'churn': {
          // The same name taken and released over and over (a lock, a lease): tombstones pile
          // up in the read model and get compacted away.
          const ref = agents[act.slot] as AnyRef;
          const nm = NAMES[act.name] as RegistryName;
          for (let i = 0; i < act.times; i++) {
            const expected = model.register(act.ns, nm, ref, true, { type: 'p', cap: 'x', color: 'red' });
            expect(
              await codeOf(registry.register(act.ns, nm, ref, { type: 'p', cap: 'x', color: 'red' })),
            ).toBe(expected);
            if (expected !== 'ok') break;
            expect(await registry.unregister(act.ns, nm, ref)).toBe(model.unregister(act.ns, nm, ref));
          }
          break;
        }
        case 'kill':
        case 'crash': {
          const ref = agents[act.slot] as AnyRef;
          if (act.kind === 'kill') rt.kill(ref);
          else {
            rt.cast(ref, 'crash');
            await awaitExit(rt, ref);
          }
          model.exited(ref);
          dead = ref;
          agents[act.slot] = rt.spawnSync(Agent, undefined);
          break;
        }
      }
      check(registry, model, agents);
    }
  } finally {
    await rt.shutdown();
  }
}

describe('registry reads agree with a model', () => {
  for (const keys of ['unique', 'duplicate'] as const) {
    it(`after any sequence of writes and exits (${keys} keys)`, async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(action, { maxLength: 40 }), (actions) => runScenario(keys, actions)),
        { numRuns: 150 },
      );
    });
  }
});
