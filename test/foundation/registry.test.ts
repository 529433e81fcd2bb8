import { describe, expect, it } from 'vitest';
import {
  NameTakenError,
  NotRegisteredError,
  Registry,
  RegistryErrorCodes,
  RegistryOwner,
  RegistryStoppedError,
  RegistryUnavailableError,
} from '../../src/foundation/registry.js';
import {
  type AgentContext,
  AlreadyRegisteredError,
  type AnyRef,
  behaviour,
  type DownMessage,
  ErrorCodes,
  InvalidArgumentError,
  NoProcessError,
  type Runtime,
  reply,
  Supervisor,
} from '../../src/kernel/index.js';
import { awaitExit, probe } from '../../src/kernel/testkit.js';
import { runtimeFactory } from '../kernel/helpers.js';

const runtime = runtimeFactory();

/** Answers `ping` with `pong from <its label>`; a cast crashes it. */
const Worker = behaviour<string, string, 'ping', string, 'crash'>({
  init: (label) => label,
  handleCall: (_msg, _from, label) => reply(`pong from ${label}`, label),
  handleCast: () => {
    throw new Error('asked to crash');
  },
});

function worker(rt: Runtime, label = 'w'): AnyRef {
  return rt.spawnSync(Worker, label);
}

/** Crash `ref` with a cast and wait for its exit. */
async function crash(rt: Runtime, ref: AnyRef): Promise<unknown> {
  rt.cast(ref, 'crash');
  return awaitExit(rt, ref);
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
}

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected a throw');
}

/** Agent ids, sorted: group members come in no promised order. */
const ids = (refs: readonly AnyRef[]) => refs.map((r) => r.id).sort((x, y) => x - y);

type Meta = { type?: string; capability?: string | string[]; color?: string; n?: number };

describe('registering and looking up', () => {
  it('finds agents by string, number and tuple names, each its own name', async () => {
    const rt = runtime();
    const reg = await Registry.start(rt);
    const [a, b, c, d, e] = [worker(rt), worker(rt), worker(rt), worker(rt), worker(rt)];
    await reg.register('prod', 'svc', a);
    await reg.register('prod', 1, b);
    await reg.register('prod', '1', c);
    await reg.register('prod', ['agent', 1], d);
    await reg.register('prod', ['agent'], e);
    expect(reg.lookup('prod', 'svc')).toBe(a);
    expect(reg.lookup('prod', 1)).toBe(b);
    expect(reg.lookup('prod', '1')).toBe(c);
    expect(reg.lookup('prod', ['agent', 1])).toBe(d);
    expect(reg.lookup('prod', ['agent'])).toBe(e);
    expect(reg.lookup('prod', 'agent')).toBeUndefined();
    expect(reg.lookup('prod', ['agent', '1'])).toBeUndefined();
    expect(reg.lookup('prod', ['agent', 1, 2])).toBeUndefined();
    expect(reg.lookup('prod', ['other', 1])).toBeUndefined();
    expect(reg.lookup('nowhere', 'svc')).toBeUndefined();
    expect(reg.count('prod')).toBe(5);
    expect(reg.count()).toBe(5);
  });

  it('keeps its own frozen copy of a tuple name', async () => {
    const rt = runtime();
    const reg = await Registry.start(rt);
    const a = worker(rt);
    const name: (string | number)[] = ['agent', 7];
    await reg.register('prod', name, a);
    name[1] = 8;
    expect(reg.lookup('prod', ['agent', 7])).toBe(a);
    expect(reg.lookup('prod', ['agent', 8])).toBeUndefined();
    const [entry] = reg.list('prod');
    expect(entry?.name).toEqual(['agent', 7]);
    expect(Object.isFrozen(entry?.name)).toBe(true);
  });

  it('answers with the canonical ref even when registered by a plain pid', async () => {
    const rt = runtime();
    const reg = await Registry.start(rt);
    const a = worker(rt);
    await reg.register('prod', 'a', a.toJSON());
    expect(reg.lookup('prod', 'a')).toBe(a);
  });

  it('reads without the owner: lookups work while the owner is dead', async () => {
    const rt = runtime();
    const reg = await Registry.start(rt);
    const a = worker(rt);
    await reg.register('prod', ['agent', 1], a, { type: 'w' });
    rt.kill(reg.owner as AnyRef);
    expect(reg.owner).toBeUndefined();
    expect(reg.lookup('prod', ['agent', 1])).toBe(a);
    expect(reg.select('prod', { type: 'w' }).map((e) => e.ref)).toEqual([a]);
  });

  it('refuses a taken unique name with an error naming the holder and the namespace', async () => {
    const rt = runtime();
    const reg = await Registry.start(rt);
    const [a, b] = [worker(rt), worker(rt)];
    await reg.register('prod', ['agent', 1], a);
    const error = (await rejection(reg.register('prod', ['agent', 1], b))) as NameTakenError;
    expect(error).toBeInstanceOf(NameTakenError);
    expect(error).toBeInstanceOf(AlreadyRegisteredError);
    expect(error.code).toBe(ErrorCodes.ALREADY_REGISTERED);
    expect(error.holder).toBe(a);
    expect(error.namespace).toBe('prod');
    expect(error.message).toContain(a.toString());
    expect(error.message).toContain('["agent",1]');
    expect(error.message).toContain('"prod"');
    // The same agent again is refused too: a name has one holder and one registration.
    expect(await rejection(reg.register('prod', ['agent', 1], a))).toBeInstanceOf(NameTakenError);
    expect(reg.lookup('prod', ['agent', 1])).toBe(a);
  });

  it('lets one agent hold many names', async () => {
    const rt = runtime();
    const reg = await Registry.start(rt);
    const a = worker(rt);
    await reg.register('prod', 'x', a);
    await reg.register('prod', 'y', a);
    await reg.register('test', 'x', a);
    expect(reg.entriesOf(a).map((e) => [e.namespace, e.name])).toEqual([
      ['prod', 'x'],
      ['prod', 'y'],
      ['test', 'x'],
    ]);
  });

  it('serializes concurrent registrations of one name: exactly one wins', async () => {
    const rt = runtime();
    const reg = await Registry.start(rt);
    const agents = Array.from({ length: 20 }, () => worker(rt));
    const results = await Promise.allSettled(agents.map((a) => reg.register('prod', 'leader', a)));
    const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [agents[i]] : []));
    expect(won).toHaveLength(1);
    expect(reg.lookup('prod', 'leader')).toBe(won[0]);
    for (const r of results) {
      if (r.status === 'rejected') expect((r.reason as NameTakenError).holder).toBe(won[0]);
    }
  });

  it('rejects registering an agent that is not alive with E_NOPROC', async () => {
    const rt = runtime();
    const reg = await Registry.start(rt);
    const a = worker(rt);
    rt.kill(a);
    const error = (await rejection(reg.register('prod', 'a', a))) as NoProcessError;
    expect(error).toBeInstanceOf(NoProcessError);
    expect(error.message).toContain(a.toString());
    const elsewhere = worker(runtime());
    expect(await rejection(reg.register('prod', 'b', elsewhere))).toBeInstanceOf(NoProcessError);
    expect(reg.count()).toBe(0);
  });
});

describe('bad input', () => {
  it('rejects bad namespaces, names, pids and metadata with E_INVALID_ARGUMENT naming the value', async () => {
    const rt = runtime();
    const reg = await Registry.start(rt);
    const a = worker(rt);
    const cases: [() => Promise<unknown>, string][] = [
      [() => reg.register('', 'x', a), '""'],
      [() => reg.register(42 as never, 'x', a), '42'],
      [() => reg.register(null as never, 'x', a), 'null'],
      [() => reg.register('prod', { id: 1 } as never, a), '{"id":1}'],
      [() => reg.register('prod', [] as never, a), '[]'],
      [() => reg.register('prod', ['a', { id: 1 }] as never, a), '["a",{"id":1}]'],
      [() => reg.register('prod', ['a', ['b']] as never, a), '["a",["b"]]'],
      [() => reg.register('prod', Number.NaN, a), 'NaN'],
      [() => reg.register('prod', Number.POSITIVE_INFINITY, a), 'Infinity'],
      [() => reg.register('prod', true as never, a), 'true'],
      [() => reg.register('prod', 'x', 'not-a-pid' as never), '"not-a-pid"'],
      [() => reg.register('prod', 'x', { id: 3 } as never), '{"id":3}'],
      [() => reg.register('prod', 'x', a, 5 as never), '5'],
      [() => reg.register('prod', 'x', a, ['type'] as never), '["type"]'],
      [() => reg.unregister('prod', Symbol('s') as never), 'Symbol(s)'],
      [() => reg.updateMetadata('prod', 'x', 7 as never), '7'],
    ];
    for (const [run, shown] of cases) {
      const error = (await rejection(run())) as InvalidArgumentError;
      expect(error, shown).toBeInstanceOf(InvalidArgumentError);
      expect(error.code).toBe(ErrorCodes.INVALID_ARGUMENT);
      expect(error.message).toContain(shown);
    }
    expect(reg.count()).toBe(0);
  });

  it('throws on bad input to reads, even when nothing is registered', async () => {
    const rt = runtime();
    const reg = await Registry.start(rt);
    const a = worker(rt);
    await reg.register('prod', ['agent', 1], a);
    const cases: [() => unknown, string][] = [
      [() => reg.lookup('', 'x'), '""'],
      [() => reg.lookup(undefined as never, 'x'), 'undefined'],
      [() => reg.lookup('prod', { a: 1 } as never), '{"a":1}'],
      [() => reg.lookup('prod', ['agent', {}] as never), '["agent",{}]'],
      [() => reg.lookup('prod', []), '[]'],
      [() => reg.lookup('nowhere', null as never), 'null'],
      [() => reg.select('', {}), '""'],
      [() => reg.select('prod', 'type' as never), '"type"'],
      [() => reg.select('prod', { type: undefined }), 'type'],
      [() => reg.count(3 as never), '3'],
      [() => reg.list(3 as never), '3'],
      [() => reg.entriesOf('x' as never), '"x"'],
      [() => reg.via('prod', { a: 1 } as never), '{"a":1}'],
      [() => reg.via('', 'x'), '""'],
    ];
    for (const [run, shown] of cases) {
      const error = thrown(run) as InvalidArgumentError;
      expect(error, shown).toBeInstanceOf(InvalidArgumentError);
      expect(error.message).toContain(shown);
    }
  });

  it('refuses bad options', () => {
    const rt = runtime();
    const bad: [unknown, string][] = [
      ['x', '"x"'],
      [{ keys: 'many' }, '"many"'],
      [{ indexes: 'type' }, '"type"'],
      [{ indexes: ['type', 'type'] }, '["type","type"]'],
      [{ indexes: [''] }, '[""]'],
      [{ label: '' }, '""'],
      [{ shards: 4 }, '"shards"'],
    ];
    for (const [options, shown] of bad) {
      const error = thrown(() => Registry.create(rt, options as never)) as InvalidArgumentError;
      expect(error, shown).toBeInstanceOf(InvalidArgumentError);
      expect(error.message).toContain(shown);
    }
    expect(thrown(() => Registry.create({} as never))).toBeInstanceOf(InvalidArgumentError);
  });
});

describe('exits', () => {
  it('removes the entries of a crashed agent before any monitor sees it go', async () => {
    const rt = runtime();
    const reg = await Registry.start<Meta>(rt, { indexes: ['type'] });
    const a = worker(rt);
    await reg.register('prod', ['agent', 1], a, { type: 'w' });
    await reg.register('test', 'a', a);
    // A watcher that looks the name up the moment it is told of the exit, and reports to a probe.
    const report = probe(rt);
    const Watcher = behaviour<AnyRef, null, never, never, never, DownMessage>({
      init(target, ctx) {
        ctx.monitor(target);
        return null;
      },
      handleInfo(msg, s, ctx) {
        ctx.send(report.ref, { down: msg.type, lookup: reg.lookup('prod', ['agent', 1]) });
        return s;
      },
    });
    rt.spawnSync(Watcher, a);
    const lookupsAtExit: unknown[] = [];
    void rt.awaitExit(a).then(() => lookupsAtExit.push(reg.lookup('test', 'a')));
    expect(await crash(rt, a)).toMatchObject({ message: 'asked to crash' });
    expect(await report.expectMessage({ down: 'DOWN' })).toEqual({ down: 'DOWN', lookup: undefined });
    expect(lookupsAtExit).toEqual([undefined]);
    expect(reg.count()).toBe(0);
    expect(reg.select('prod', { type: 'w' })).toEqual([]);
    expect(reg.entriesOf(a)).toEqual([]);
    expect(reg.namespaces()).toEqual([]);
  });

  it('removes the entries of an agent that stops normally or is killed', async () => {
    const rt = runtime();
    const reg = await Registry.start(rt);
    const [a, b] = [worker(rt), worker(rt)];
    await reg.register('prod', 'a', a);
    await reg.register('prod', 'b', b);
    await rt.stop(a);
    expect(reg.lookup('prod', 'a')).toBeUndefined();
    rt.kill(b);
    expect(reg.lookup('prod', 'b')).toBeUndefined();
    // The name is free again.
    const c = worker(rt);
    await reg.register('prod', 'a', c);
    expect(reg.lookup('prod', 'a')).toBe(c);
  });

  it('lets an unregistered agent exit without touching entries registered since under its old name', async () => {
    const rt = runtime();
    const reg = await Registry.start(rt);
    const [a, b] = [worker(rt), worker(rt)];
    await reg.register('prod', 'x', a);
    expect(await reg.unregister('prod', 'x')).toBe(true);
    await reg.register('prod', 'x', b);
    rt.kill(a);
    expect(reg.lookup('prod', 'x')).toBe(b);
  });
});

describe('unregister', () => {
  it('removes a name; with a pid only if that agent holds it', async () => {
    const rt = runtime();
    const reg = await Registry.start(rt);
    const [a, b] = [worker(rt), worker(rt)];
    await reg.register('prod', ['agent', 1], a);
    expect(await reg.unregister('prod', ['agent', 1], b)).toBe(false);
    expect(reg.lookup('prod', ['agent', 1])).toBe(a);
    expect(await reg.unregister('prod', ['agent', 1], a.toJSON())).toBe(true);
    expect(reg.lookup('prod', ['agent', 1])).toBeUndefined();
    expect(await reg.unregister('prod', ['agent', 1])).toBe(false);
    expect(await reg.unregister('nowhere', 'x')).toBe(false);
  });

  it('keeps tuples that share a prefix with a removed one', async () => {
    const rt = runtime();
    const reg = await Registry.start(rt);
    const [a, b, c] = [worker(rt), worker(rt), worker(rt)];
    await reg.register('prod', ['a'], a);
    await reg.register('prod', ['a', 1], b);
    await reg.register('prod', ['a', 1, 'x'], c);
    expect(await reg.unregister('prod', ['a', 1])).toBe(true);
    expect(reg.lookup('prod', ['a'])).toBe(a);
    expect(reg.lookup('prod', ['a', 1, 'x'])).toBe(c);
    expect(await reg.unregister('prod', ['a'])).toBe(true);
    expect(reg.lookup('prod', ['a', 1, 'x'])).toBe(c);
    expect(await reg.unregister('prod', ['a', 1, 'x'])).toBe(true);
    expect(reg.lookup('prod', ['a', 1, 'x'])).toBeUndefined();
    await reg.register('prod', ['a', 1], b);
    expect(reg.lookup('prod', ['a', 1])).toBe(b);
  });
});

describe('churn', () => {
  it('stays correct when one name is taken and released many times among many others', async () => {
    const rt = runtime();
    const reg = await Registry.start<Meta>(rt, { indexes: ['type'] });
    const residents = Array.from({ length: 50 }, () => worker(rt));
    for (const [i, r] of residents.entries())
      await reg.register('prod', ['agent', i], r, { type: 'resident' });
    const solo = worker(rt);
    await reg.register('prod', 'solo', solo, { type: 'solo' });
    const [a, b] = [worker(rt), worker(rt)];
    for (let i = 0; i < 300; i++) {
      const holder = i % 2 === 0 ? a : b;
      // A fresh indexed value each time: emptied index sets pile up and get swept.
      await reg.register('prod', ['lock', 'db'], holder, { type: `holder-${i}` });
      expect(reg.lookup('prod', ['lock', 'db'])).toBe(holder);
      await reg.register('prod', i, holder);
      expect(await reg.unregister('prod', ['lock', 'db'])).toBe(true);
      expect(await reg.unregister('prod', i)).toBe(true);
    }
    expect(reg.lookup('prod', ['lock', 'db'])).toBeUndefined();
    expect(reg.count('prod')).toBe(51);
    expect(reg.count('prod', { type: 'resident' })).toBe(50);
    expect(reg.select('prod', { type: 'solo' }).map((e) => e.ref)).toEqual([solo]);
    expect(reg.select('prod', { type: 'holder-1' })).toEqual([]);
    expect(reg.count('prod', { type: 'holder-299' })).toBe(0);
    for (const [i, r] of residents.entries()) expect(reg.lookup('prod', ['agent', i])).toBe(r);
    expect(reg.entriesOf(a)).toEqual([]);
    // The agents that churned still leave cleanly.
    await reg.register('prod', 'last', a);
    rt.kill(a);
    expect(reg.lookup('prod', 'last')).toBeUndefined();
  });

  it('stays correct when members leave and rejoin a group, and namespaces empty and refill', async () => {
    const rt = runtime();
    const groups = await Registry.start(rt, { keys: 'duplicate' });
    const members = Array.from({ length: 20 }, () => worker(rt));
    for (const m of members) await groups.register('prod', 'pool', m);
    const [first] = members as [AnyRef];
    // Many agents passing through: the departed members' tombstones pile up and get compacted.
    for (let i = 0; i < 40; i++) {
      const passing = worker(rt);
      await groups.register('prod', 'pool', passing);
      if (i % 2 === 0) expect(await groups.unregister('prod', 'pool', passing)).toBe(true);
      else rt.kill(passing);
    }
    for (let i = 0; i < 100; i++) {
      expect(await groups.unregister('prod', 'pool', first)).toBe(true);
      await groups.register('prod', 'pool', first);
      await groups.register(`test-${i % 30}`, 'x', first);
      expect(await groups.clear(`test-${i % 30}`)).toBe(1);
    }
    expect(ids(groups.lookup('prod', 'pool'))).toEqual(ids(members));
    expect(groups.namespaces()).toEqual(['prod']);
    expect(groups.count()).toBe(20);
    rt.kill(first);
    expect(ids(groups.lookup('prod', 'pool'))).toEqual(ids(members.slice(1)));
  });
});

describe('namespaces', () => {
  it('keep the same name apart, and clear drops one namespace only', async () => {
    const rt = runtime();
    const reg = await Registry.start(rt);
    const [a, b, c] = [worker(rt), worker(rt), worker(rt)];
    await reg.register('prod', 'db', a);
    await reg.register('test-1', 'db', b);
    await reg.register('test-1', 'cache', c);
    expect(reg.lookup('prod', 'db')).toBe(a);
    expect(reg.lookup('test-1', 'db')).toBe(b);
    expect(reg.count('test-1')).toBe(2);
    expect(reg.namespaces().sort()).toEqual(['prod', 'test-1']);
    expect(await reg.clear('test-1')).toBe(2);
    expect(reg.lookup('test-1', 'db')).toBeUndefined();
    expect(reg.lookup('prod', 'db')).toBe(a);
    expect(reg.namespaces()).toEqual(['prod']);
    expect(await reg.clear('test-1')).toBe(0);
    // The cleared agents live on, and their exit now leaves the registry alone.
    rt.kill(b);
    expect(reg.lookup('prod', 'db')).toBe(a);
  });

  it('are per registry: two registries (and two runtimes) share nothing', async () => {
    const rt1 = runtime();
    const rt2 = runtime();
    const r1 = await Registry.start(rt1);
    const r2 = await Registry.start(rt1);
    const r3 = await Registry.start(rt2);
    const a = worker(rt1);
    await r1.register('prod', 'a', a);
    expect(r2.lookup('prod', 'a')).toBeUndefined();
    expect(r3.lookup('prod', 'a')).toBeUndefined();
    await r2.register('prod', 'a', a);
    expect(r2.lookup('prod', 'a')).toBe(a);
  });
});

describe('metadata and select', () => {
  async function fleet(rt: Runtime) {
    const reg = await Registry.start<Meta>(rt, { indexes: ['type', 'capability'] });
    const [a, b, c, d] = [worker(rt), worker(rt), worker(rt), worker(rt)];
    await reg.register('prod', ['agent', 1], a, {
      type: 'trainer',
      capability: ['gpu', 'cpu'],
      color: 'red',
    });
    await reg.register('prod', ['agent', 2], b, { type: 'trainer', capability: 'cpu', color: 'blue' });
    await reg.register('prod', ['agent', 3], c, { type: 'evaluator', capability: ['cpu'], color: 'red' });
    await reg.register('test', ['agent', 1], d, { type: 'trainer', capability: 'gpu' });
    return { reg, a, b, c, d };
  }

  const refs = (entries: { ref: AnyRef }[]) => entries.map((e) => e.ref.id).sort((x, y) => x - y);

  it('selects by indexed fields, non-indexed fields, several fields and predicates', async () => {
    const rt = runtime();
    const { reg, a, b, c } = await fleet(rt);
    expect(refs(reg.select('prod', { type: 'trainer' }))).toEqual(refs([{ ref: a }, { ref: b }]));
    expect(refs(reg.select('prod', { capability: 'gpu' }))).toEqual([a.id]);
    expect(refs(reg.select('prod', { capability: 'cpu' }))).toEqual(
      refs([{ ref: a }, { ref: b }, { ref: c }]),
    );
    expect(refs(reg.select('prod', { color: 'red' }))).toEqual(refs([{ ref: a }, { ref: c }]));
    expect(refs(reg.select('prod', { type: 'trainer', color: 'red' }))).toEqual([a.id]);
    expect(refs(reg.select('prod', { type: 'trainer', capability: 'cpu' }))).toEqual(
      refs([{ ref: a }, { ref: b }]),
    );
    expect(reg.select('prod', { type: 'nobody' })).toEqual([]);
    expect(reg.select('prod', { type: 'trainer', capability: 'tpu' })).toEqual([]);
    expect(refs(reg.select('prod', (e) => e.metadata.color === 'blue'))).toEqual([b.id]);
    expect(refs(reg.select('prod'))).toHaveLength(3);
    expect(reg.select('nowhere', { type: 'trainer' })).toEqual([]);
    expect(reg.count('prod', { type: 'trainer' })).toBe(2);
    expect(reg.count('prod', { color: 'red' })).toBe(2);
    expect(reg.count('prod', (e) => e.metadata.type === 'evaluator')).toBe(1);
    const [entry] = reg.select('prod', { color: 'blue' });
    expect(entry).toMatchObject({
      namespace: 'prod',
      name: ['agent', 2],
      ref: b,
      metadata: { type: 'trainer' },
    });
    expect(Object.isFrozen(entry)).toBe(true);
    expect(Object.isFrozen(entry?.metadata)).toBe(true);
  });

  it("copies metadata, so changing the caller's object leaves the index consistent", async () => {
    const rt = runtime();
    const reg = await Registry.start<Meta>(rt, { indexes: ['capability'] });
    const a = worker(rt);
    const capability = ['gpu'];
    const meta = { capability };
    await reg.register('prod', 'a', a, meta);
    capability.push('tpu');
    meta.capability = ['x'];
    expect(reg.select('prod', { capability: 'gpu' })).toHaveLength(1);
    expect(reg.select('prod', { capability: 'tpu' })).toHaveLength(0);
    expect(reg.metadata('prod', 'a')).toEqual({ capability: ['gpu'] });
  });

  it('updates metadata with a value or a function, keeping indexes in step', async () => {
    const rt = runtime();
    const { reg, a, b } = await fleet(rt);
    const updated = await reg.updateMetadata('prod', ['agent', 1], { type: 'evaluator', capability: 'tpu' });
    expect(updated).toMatchObject({ ref: a, metadata: { type: 'evaluator', capability: 'tpu' } });
    expect(reg.metadata('prod', ['agent', 1])).toEqual({ type: 'evaluator', capability: 'tpu' });
    expect(refs(reg.select('prod', { type: 'trainer' }))).toEqual([b.id]);
    expect(reg.select('prod', { capability: 'gpu' })).toEqual([]);
    expect(refs(reg.select('prod', { capability: 'tpu' }))).toEqual([a.id]);
    // Functions run in the owner one after another: no increment is lost.
    await reg.updateMetadata('prod', ['agent', 2], { n: 0 });
    await Promise.all(
      Array.from({ length: 10 }, () =>
        reg.updateMetadata('prod', ['agent', 2], (m) => ({ ...m, n: (m.n ?? 0) + 1 })),
      ),
    );
    expect(reg.metadata('prod', ['agent', 2])).toEqual({ n: 10 });
    // The entry a caller got earlier is a snapshot.
    expect(updated.metadata).toEqual({ type: 'evaluator', capability: 'tpu' });
  });

  it("refuses to update what is not registered, and passes an updater's error back", async () => {
    const rt = runtime();
    const { reg, a, b } = await fleet(rt);
    const missing = (await rejection(reg.updateMetadata('prod', ['agent', 9], {}))) as NotRegisteredError;
    expect(missing).toBeInstanceOf(NotRegisteredError);
    expect(missing.code).toBe(RegistryErrorCodes.NOT_REGISTERED);
    expect(missing.message).toContain('["agent",9]');
    const wrongHolder = await rejection(reg.updateMetadata('prod', ['agent', 1], {}, b));
    expect(wrongHolder).toMatchObject({ code: 'E_REGISTRY_NOT_REGISTERED' });
    const boom = new Error('updater failed');
    expect(
      await rejection(
        reg.updateMetadata('prod', ['agent', 1], () => {
          throw boom;
        }),
      ),
    ).toBe(boom);
    expect(await rejection(reg.updateMetadata('prod', ['agent', 1], () => 'nope' as never))).toBeInstanceOf(
      InvalidArgumentError,
    );
    // The owner lives on after refusing.
    expect(reg.owner).toBeDefined();
    expect(reg.metadata('prod', ['agent', 1], a)).toMatchObject({ type: 'trainer' });
  });
});

describe('via', () => {
  it('makes a registered name usable wherever a pid is', async () => {
    const rt = runtime();
    const reg = await Registry.start(rt);
    const a = worker(rt, 'one');
    await reg.register('prod', ['agent', 1], a);
    const dest = reg.via('prod', ['agent', 1]);
    expect(await rt.call(dest, 'ping')).toBe('pong from one');
    // Resolved at send time: re-registering redirects the same destination.
    await reg.unregister('prod', ['agent', 1]);
    const b = worker(rt, 'two');
    await reg.register('prod', ['agent', 1], b);
    expect(await rt.call(dest, 'ping')).toBe('pong from two');
    // From inside an agent too.
    const p = probe(rt);
    expect(await p.ctx.call(dest, 'ping')).toBe('pong from two');
    const watcher = probe(rt);
    watcher.ctx.monitor(b);
    expect(rt.cast(dest, 'crash')).toBe(true);
    await watcher.expectMessage({ type: 'DOWN' });
    const error = (await rejection(rt.call(dest, 'ping'))) as NoProcessError;
    expect(error.code).toBe(ErrorCodes.NOPROC);
    expect(error.message).toContain('["agent",1]');
    expect(rt.send(dest, 'hello')).toBe(false);
  });

  it('resolves nothing on another runtime, and refuses duplicate registries', async () => {
    const rt = runtime();
    const reg = await Registry.start(rt);
    await reg.register('prod', 'a', worker(rt));
    const other = runtime();
    expect(await rejection(other.call(reg.via('prod', 'a'), 'ping'))).toBeInstanceOf(NoProcessError);
    const groups = await Registry.start(rt, { keys: 'duplicate' });
    expect(thrown(() => groups.via('prod', 'a'))).toBeInstanceOf(InvalidArgumentError);
  });
});

describe('duplicate keys (groups)', () => {
  it('holds many agents under one name; lookup gives all members; exits remove members', async () => {
    const rt = runtime();
    const groups = await Registry.start<Meta>(rt, { keys: 'duplicate', indexes: ['type'] });
    const [a, b, c] = [worker(rt), worker(rt), worker(rt)];
    expect(groups.lookup('prod', 'workers')).toEqual([]);
    await groups.register('prod', 'workers', a, { type: 'x' });
    await groups.register('prod', 'workers', b, { type: 'y' });
    await groups.register('prod', ['pool', 1], c);
    await groups.register('prod', ['pool', 1], a);
    expect(ids(groups.lookup('prod', 'workers'))).toEqual(ids([a, b]));
    expect(ids(groups.lookup('prod', ['pool', 1]))).toEqual(ids([c, a]));
    expect(Object.isFrozen(groups.lookup('prod', 'workers'))).toBe(true);
    expect(groups.count('prod')).toBe(4);
    const again = (await rejection(groups.register('prod', 'workers', a))) as NameTakenError;
    expect(again).toBeInstanceOf(NameTakenError);
    expect(again.holder).toBe(a);
    await crash(rt, a);
    expect(groups.lookup('prod', 'workers')).toEqual([b]);
    expect(groups.lookup('prod', ['pool', 1])).toEqual([c]);
    expect(groups.select('prod', { type: 'x' })).toEqual([]);
    expect(groups.count('prod')).toBe(2);
  });

  it('unregisters one member or all, and updates per member', async () => {
    const rt = runtime();
    const groups = await Registry.start<Meta>(rt, { keys: 'duplicate', indexes: ['type'] });
    const [a, b, c] = [worker(rt), worker(rt), worker(rt)];
    for (const r of [a, b, c]) await groups.register('prod', 'g', r, { type: 'old' });
    await groups.updateMetadata('prod', 'g', { type: 'new' }, b);
    expect(groups.metadata('prod', 'g', b)).toEqual({ type: 'new' });
    expect(groups.metadata('prod', 'g', a)).toEqual({ type: 'old' });
    expect(groups.select('prod', { type: 'new' }).map((e) => e.ref)).toEqual([b]);
    expect(ids(groups.entries('prod', 'g').map((e) => e.ref))).toEqual(ids([a, b, c]));
    expect(thrown(() => groups.metadata('prod', 'g'))).toBeInstanceOf(InvalidArgumentError);
    expect(await rejection(groups.updateMetadata('prod', 'g', {}))).toBeInstanceOf(InvalidArgumentError);
    expect(await groups.unregister('prod', 'g', b)).toBe(true);
    expect(await groups.unregister('prod', 'g', b)).toBe(false);
    expect(ids(groups.lookup('prod', 'g'))).toEqual(ids([a, c]));
    expect(await groups.unregister('prod', 'g')).toBe(true);
    expect(groups.lookup('prod', 'g')).toEqual([]);
    expect(groups.count()).toBe(0);
  });
});

describe('the owner', () => {
  it('is the single writer: writes are calls to it, refused while it is down', async () => {
    const rt = runtime();
    const reg = await Registry.start(rt);
    const owner = reg.owner as AnyRef;
    expect(rt.isAlive(owner)).toBe(true);
    const a = worker(rt);
    await reg.register('prod', 'a', a);
    rt.kill(owner);
    const error = (await rejection(reg.register('prod', 'b', a))) as RegistryUnavailableError;
    expect(error).toBeInstanceOf(RegistryUnavailableError);
    expect(error.code).toBe(RegistryErrorCodes.UNAVAILABLE);
    expect(await rejection(reg.unregister('prod', 'a'))).toBeInstanceOf(RegistryUnavailableError);
    // Reads and exit cleanup go on without it.
    expect(reg.lookup('prod', 'a')).toBe(a);
    rt.kill(a);
    expect(reg.lookup('prod', 'a')).toBeUndefined();
  });

  it('turns an owner that dies with a write in its mailbox into E_REGISTRY_UNAVAILABLE', async () => {
    const rt = runtime();
    const reg = await Registry.start(rt);
    const owner = reg.owner as AnyRef;
    const a = worker(rt);
    // From inside an agent, the call is queued rather than run at once; kill the owner first.
    const p = probe(rt);
    const pending = new Promise<unknown>((resolve) => {
      p.setReply(() => {
        const write = reg.register('prod', 'a', a).catch((e: unknown) => e);
        rt.kill(owner);
        resolve(write);
        return 'ok';
      });
    });
    await rt.call(p.ref, 'go');
    expect(await pending).toBeInstanceOf(RegistryUnavailableError);
    expect(reg.count()).toBe(0);
  });

  it('is restarted by a supervisor, and the restarted owner serves the same read model', async () => {
    const rt = runtime();
    const reg = Registry.create<Meta>(rt, { indexes: ['type'] });
    expect(await rejection(reg.register('prod', 'x', worker(rt)))).toBeInstanceOf(RegistryUnavailableError);
    const sup = await Supervisor.start(rt, { children: [reg.childSpec('registry')] });
    const first = reg.owner as AnyRef;
    const a = worker(rt);
    await reg.register('prod', ['agent', 1], a, { type: 'w' });
    rt.kill(first);
    // The supervisor handles the EXIT (and restarts) before it answers this call.
    const [child] = await Supervisor.whichChildren(rt, sup);
    expect(child?.ref).toBe(reg.owner);
    expect(reg.owner).toBeDefined();
    expect(reg.owner?.equals(first)).toBe(false);
    expect(reg.lookup('prod', ['agent', 1])).toBe(a);
    expect(reg.select('prod', { type: 'w' })).toHaveLength(1);
    const b = worker(rt);
    await reg.register('prod', ['agent', 2], b);
    expect(await rejection(reg.register('prod', ['agent', 1], b))).toBeInstanceOf(NameTakenError);
    // The old owner's entries still go when their agents exit.
    rt.kill(a);
    expect(reg.lookup('prod', ['agent', 1])).toBeUndefined();
  });

  it('refuses a second running owner and an owner for a registry of another runtime', async () => {
    const rt = runtime();
    const reg = await Registry.start(rt);
    const second = (await rejection(rt.spawn(RegistryOwner, reg))) as Error;
    expect(second.cause).toBeInstanceOf(InvalidArgumentError);
    expect((second.cause as Error).message).toContain('already has a running owner');
    const other = runtime();
    expect(((await rejection(other.spawn(RegistryOwner, reg))) as Error).cause).toBeInstanceOf(
      InvalidArgumentError,
    );
    expect(((await rejection(rt.spawn(RegistryOwner, {} as never))) as Error).cause).toBeInstanceOf(
      InvalidArgumentError,
    );
  });

  it('can be started linked under an agent', async () => {
    const rt = runtime();
    const parent = probe(rt, { trapExit: true });
    const reg = await Registry.start(parent.ctx as AgentContext);
    expect(rt.info(reg.owner as AnyRef)?.parent).toEqual(parent.ref.toJSON());
    await reg.stop();
    // Stopped with reason normal: the linked parent is told, and lives on.
    await parent.expectMessage({ type: 'EXIT', reason: 'normal' });
    expect(rt.isAlive(parent.ref)).toBe(true);
  });
});

describe('stop', () => {
  it('drops every entry, stops the owner and refuses later writes', async () => {
    const rt = runtime();
    const reg = await Registry.start(rt);
    const owner = reg.owner as AnyRef;
    const a = worker(rt);
    await reg.register('prod', 'a', a);
    await reg.stop();
    expect(reg.stopped).toBe(true);
    expect(await awaitExit(rt, owner)).toBe('normal');
    expect(reg.lookup('prod', 'a')).toBeUndefined();
    expect(reg.count()).toBe(0);
    const error = (await rejection(reg.register('prod', 'a', a))) as RegistryStoppedError;
    expect(error).toBeInstanceOf(RegistryStoppedError);
    expect(error.code).toBe(RegistryErrorCodes.STOPPED);
    // The dropped entry's exit hook is gone too: the agent exits without touching the registry.
    rt.kill(a);
    await reg.stop();
    expect(((await rejection(rt.spawn(RegistryOwner, reg))) as Error).cause).toBeInstanceOf(
      RegistryStoppedError,
    );
  });

  it('is not undone by a supervisor: a transient owner stopped normally is not restarted', async () => {
    const rt = runtime();
    const reg = Registry.create(rt);
    const sup = await Supervisor.start(rt, { children: [reg.childSpec()] });
    await reg.stop();
    const [child] = await Supervisor.whichChildren(rt, sup);
    expect(child?.ref).toBeUndefined();
    expect(reg.owner).toBeUndefined();
  });
});
