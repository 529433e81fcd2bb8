import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from 'vitest';
import { z } from 'zod';
import {
  type ConfigChange,
  ConfigErrorCodes,
  ConfigFileError,
  ConfigNotUpdatableError,
  ConfigServer,
  ConfigUnknownPathError,
} from '../../src/foundation/config.js';
import { behaviour, ErrorCodes, InvalidArgumentError, MabeamError } from '../../src/kernel/index.js';
import { awaitExit, awaitTelemetry, probe } from '../../src/kernel/testkit.js';
import { runtimeFactory } from '../kernel/helpers.js';

const runtime = runtimeFactory();

const Schema = z.object({
  // prefault({}): an absent `server` is parsed as {}, so its fields' defaults apply.
  server: z
    .object({
      host: z.string().default('localhost'),
      port: z.number().int().min(1).max(65535).default(8080),
    })
    .prefault({}),
  db: z.object({
    url: z.string().min(1),
    poolSize: z.number().int().positive().default(5),
  }),
  features: z.object({ beta: z.boolean().default(false) }).default({ beta: false }),
  tags: z.array(z.string()).default([]),
  limits: z.record(z.string(), z.number()).default({}),
  mode: z.enum(['dev', 'prod']).default('dev'),
});

const UPDATABLE = ['server.port', 'features', 'limits', 'mode', 'tags'] as const;

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mabeam-config-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function file(name: string, content: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, content);
  return path;
}

/** Options a test may add to or change in `start`'s. */
interface Extra {
  file?: string;
  env?: { prefix: string; env?: Record<string, string | undefined> };
  name?: string;
}

function start(extra: Extra = {}) {
  const rt = runtime();
  return ConfigServer.start(rt, {
    schema: Schema,
    defaults: { db: { url: 'sqlite://memory' } },
    updatable: UPDATABLE,
    env: { prefix: 'APP', env: {} },
    ...extra,
  }).then((config) => ({ rt, config }));
}

async function rejection(p: Promise<unknown>): Promise<MabeamError> {
  try {
    await p;
  } catch (error) {
    return error as MabeamError;
  }
  throw new Error('expected a rejection');
}

describe('loading', () => {
  it('applies the schema defaults, then defaults; reads are typed, synchronous and frozen', async () => {
    const { config } = await start();
    expect(config.get('server.port')).toBe(8080);
    expect(config.get('db.url')).toBe('sqlite://memory');
    expect(config.get('server')).toEqual({ host: 'localhost', port: 8080 });
    expect(config.version).toBe(0);
    expectTypeOf(config.get('server.port')).toEqualTypeOf<number>();
    expectTypeOf(config.get('mode')).toEqualTypeOf<'dev' | 'prod'>();
    expectTypeOf(config.get('limits')).toEqualTypeOf<Record<string, number>>();
    expect(Object.isFrozen(config.get('server'))).toBe(true);
    expect(Object.isFrozen(config.snapshot)).toBe(true);
    // @ts-expect-error not a path of the schema
    expect(() => config.get('server.nope')).toThrow(ConfigUnknownPathError);
    expect(() => config.get('server.nope' as never)).toThrow(/"server.nope" is not in the schema/);
    expect(() => config.get('' as never)).toThrow(expect.objectContaining({ code: 'E_INVALID_ARGUMENT' }));
  });

  it('layers defaults < file < environment', async () => {
    const path = await file(
      'layers.json',
      JSON.stringify({ server: { host: 'file-host', port: 9000 }, db: { poolSize: 7 }, mode: 'prod' }),
    );
    const { config } = await start({
      file: path,
      env: {
        prefix: 'APP',
        env: {
          APP_SERVER__PORT: '9100',
          APP_DB__POOL_SIZE: '12', // camelCase key as SNAKE_CASE
          APP_SERVER__HOST: '10.0.0.1', // a string path takes the raw value
          APP_TAGS: '["a","b"]',
          APP_LIMITS__rps: '50', // a record key as written
          OTHER_SERVER__PORT: '1', // another prefix: ignored
        },
      },
    });
    expect(config.snapshot).toEqual({
      server: { host: '10.0.0.1', port: 9100 },
      db: { url: 'sqlite://memory', poolSize: 12 },
      features: { beta: false },
      tags: ['a', 'b'],
      limits: { rps: 50 },
      mode: 'prod',
    });
  });

  it('rejects a bad environment value naming the variable, the path and zod’s reason', async () => {
    const error = await rejection(start({ env: { prefix: 'APP_', env: { APP_SERVER__PORT: 'eighty' } } }));
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect(error.code).toBe('E_INVALID_ARGUMENT');
    expect(error.message).toContain('config path "server.port" (from environment variable APP_SERVER__PORT)');
    expect(error.message).toContain('expected number');
    expect(error.message).toContain('"eighty"');
    const range = await rejection(start({ env: { prefix: 'APP', env: { APP_SERVER__PORT: '70000' } } }));
    expect(range.message).toMatch(/server.port.*Too big.*\(got 70000\)/);
  });

  it('rejects environment variables with the prefix that name no path', async () => {
    const error = await rejection(start({ env: { prefix: 'APP', env: { APP_SERVR__PORT: '1' } } }));
    expect(error).toBeInstanceOf(ConfigUnknownPathError);
    expect(error.message).toContain('APP_SERVR__PORT');
    const deep = await rejection(start({ env: { prefix: 'APP', env: { APP_SERVER__PORT__X: '1' } } }));
    expect(deep.code).toBe('E_CONFIG_UNKNOWN_PATH');
  });

  it('rejects a bad file: missing, not JSON, not an object, unknown key, invalid value', async () => {
    const missing = await rejection(start({ file: join(dir, 'nope.json') }));
    expect(missing).toBeInstanceOf(ConfigFileError);
    expect(missing.message).toMatch(/nope\.json": no such file/);
    const notJson = await rejection(start({ file: await file('bad.json', '{"server": ') }));
    expect(notJson).toMatchObject({
      code: 'E_CONFIG_FILE',
      message: expect.stringContaining('is not valid JSON'),
    });
    const array = await rejection(start({ file: await file('array.json', '[1, 2]') }));
    expect(array.message).toContain('must hold a JSON object, not [1,2]');
    const typo = await rejection(start({ file: await file('typo.json', '{"server": {"prot": 1}}') }));
    expect(typo).toMatchObject({
      code: 'E_CONFIG_UNKNOWN_PATH',
      message: expect.stringContaining('"server.prot"'),
    });
    const invalid = await rejection(start({ file: await file('invalid.json', '{"db": {"poolSize": -1}}') }));
    expect(invalid.code).toBe('E_INVALID_ARGUMENT');
    expect(invalid.message).toMatch(/"db.poolSize" \(from file .*invalid\.json\).*Too small/);
  });

  it('rejects a configuration missing a required value, and unknown updatable paths', async () => {
    const rt = runtime();
    const missing = await rejection(ConfigServer.start(rt, { schema: Schema }));
    expect(missing.message).toMatch(/config path "db" \(not set\)/);
    const unknown = await rejection(
      ConfigServer.start(rt, {
        schema: Schema,
        defaults: { db: { url: 'x' } },
        // @ts-expect-error not a path of the schema
        updatable: ['server.nope'],
      }),
    );
    expect(unknown).toMatchObject({
      code: 'E_CONFIG_UNKNOWN_PATH',
      message: expect.stringContaining('server.nope'),
    });
    await expect(ConfigServer.start(rt, { schema: Schema, extra: 1 } as never)).rejects.toThrow(
      /"extra".*unknown option/,
    );
    await expect(ConfigServer.start(rt, { schema: {} as never })).rejects.toThrow(/must be a zod schema/);
    await expect(ConfigServer.start(rt, { schema: z.string() as never })).rejects.toThrow(/object schema/);
  });
});

describe('updates', () => {
  it('accept a valid value on an updatable path and step the version', async () => {
    const { config } = await start();
    expect(await config.update('server.port', 9090)).toBe(1);
    expect(config.get('server.port')).toBe(9090);
    expect(config.version).toBe(1);
    // A path below an updatable one.
    expect(await config.update('limits.rps', 10)).toBe(2);
    expect(await config.update('features.beta', true)).toBe(3);
    expect(config.get('limits')).toEqual({ rps: 10 });
    // The same value again is no change: no new version.
    expect(await config.update('server.port', 9090)).toBe(3);
    // undefined unsets: back to the schema default.
    expect(await config.update('server.port', undefined as never)).toBe(4);
    expect(config.get('server.port')).toBe(8080);
  });

  it('refuse a path not declared updatable, naming it; the old value stays', async () => {
    const { config } = await start();
    // @ts-expect-error not updatable
    const error = await rejection(config.update('db.url', 'postgres://x'));
    expect(error).toBeInstanceOf(ConfigNotUpdatableError);
    expect(error.code).toBe('E_CONFIG_NOT_UPDATABLE');
    expect(error.message).toContain('config path "db.url" is not updatable');
    expect(config.get('db.url')).toBe('sqlite://memory');
    expect(config.version).toBe(0);
    // A parent of an updatable path is not updatable either.
    await expect(config.update('server' as never, { host: 'h', port: 1 } as never)).rejects.toThrow(
      ConfigNotUpdatableError,
    );
    await expect(config.update('nope' as never, 1 as never)).rejects.toThrow(ConfigUnknownPathError);
  });

  it('refuse an invalid value with E_INVALID_ARGUMENT naming the path and zod’s reason; the old value stays', async () => {
    const { config } = await start();
    const error = await rejection(config.update('server.port', 0));
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect(error.message).toMatch(/invalid config path "server.port": server.port: Too small.*\(got 0\)/);
    const wrongType = await rejection(config.update('mode', 'staging' as never));
    expect(wrongType.message).toMatch(/"mode".*Invalid option.*"dev"\|"prod"/);
    expect(config.get('server.port')).toBe(8080);
    expect(config.get('mode')).toBe('dev');
    expect(config.version).toBe(0);
  });

  it('are serialized: concurrent writers each get their own version, in order', async () => {
    const { config } = await start();
    const versions = await Promise.all(
      Array.from({ length: 50 }, (_, i) => config.update('server.port', 1000 + i)),
    );
    expect(versions).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    expect(config.get('server.port')).toBe(1049);
  });

  it('never change the caller’s object (the snapshot is a frozen copy)', async () => {
    const { config } = await start();
    const tags = ['x'];
    await config.update('tags', tags);
    tags.push('y');
    expect(Object.isFrozen(tags)).toBe(false);
    expect(config.get('tags')).toEqual(['x']);
  });
});

describe('subscriptions', () => {
  it('send an agent config_changed with old, new and version, for the path and below it', async () => {
    const { rt, config } = await start();
    const p = probe(rt);
    config.subscribe('server.port', p.ref);
    config.subscribe('server', p.ref);
    await config.update('server.port', 9001);
    await p.expectMessage({ type: 'config_changed', path: 'server.port', old: 8080, new: 9001, version: 1 });
    const parent = await p.expectMessage<ConfigChange>({ type: 'config_changed', path: 'server' });
    expect(parent).toMatchObject({ old: { port: 8080 }, new: { port: 9001 }, version: 1 });
  });

  it('leave out subscribers whose path did not change', async () => {
    const { rt, config } = await start();
    const p = probe(rt);
    config.subscribe('mode', p.ref);
    config.subscribe('server.port', p.ref);
    await config.update('mode', 'prod');
    await config.update('server.port', 1234);
    // Messages from the owner arrive in order: had `mode` been reported for the port change, it
    // would come before the port message.
    await p.expectMessage({ path: 'mode', new: 'prod', version: 1 });
    await p.expectMessage({ path: 'server.port', new: 1234, version: 2 });
    expect(p.received.filter((m) => (m.message as ConfigChange).path === 'mode')).toHaveLength(1);
  });

  it('call function subscribers after the write, which may write themselves', async () => {
    const { config } = await start();
    const seen: ConfigChange[] = [];
    config.subscribe('mode', (change) => {
      seen.push(change);
      // Runs outside the owner, so a write from here is an ordinary call.
      if (change.new === 'prod') void config.update('features.beta', true);
    });
    const beta = new Promise<ConfigChange>((resolve) => config.subscribe('features.beta', resolve));
    await config.update('mode', 'prod');
    expect(seen).toEqual([{ type: 'config_changed', path: 'mode', old: 'dev', new: 'prod', version: 1 }]);
    expect(await beta).toMatchObject({ new: true, version: 2 });
    config.subscribe('mode', (change) => {
      expectTypeOf(change).toEqualTypeOf<ConfigChange<'dev' | 'prod'>>();
    });
  });

  it('detach a function subscriber that throws, and report it', async () => {
    const { rt, config } = await start();
    let calls = 0;
    config.subscribe('mode', () => {
      calls++;
      throw new Error('bad subscriber');
    });
    const failed = awaitTelemetry(rt, ['mabeam', 'config', 'subscriber_failed']);
    await config.update('mode', 'prod');
    const event = await failed;
    expect(event.metadata).toMatchObject({
      path: 'mode',
      error: expect.objectContaining({ message: 'bad subscriber' }),
    });
    expect(config.subscriptions).toBe(0);
    await config.update('mode', 'dev');
    expect(calls).toBe(1);
  });

  it('unsubscribe by the returned function or by path and subscriber', async () => {
    const { rt, config } = await start();
    const p = probe(rt);
    const off = config.subscribe('mode', p.ref);
    config.subscribe('server.port', p.ref);
    config.subscribe('server.port', p.ref); // twice is once
    const fn = () => {};
    config.subscribe('tags', fn);
    expect(config.subscriptions).toBe(3);
    expect(off()).toBe(true);
    expect(off()).toBe(false);
    expect(config.unsubscribe('tags', fn)).toBe(true);
    await config.update('mode', 'prod');
    await config.update('server.port', 4321);
    await p.expectMessage({ path: 'server.port', version: 2 });
    expect(p.received).toHaveLength(1);
    expect(config.unsubscribe('server.port', p.ref)).toBe(true);
    expect(config.subscriptions).toBe(0);
  });

  it('drop an agent’s subscriptions when it exits; a dead agent cannot subscribe', async () => {
    const { rt, config } = await start();
    const p = probe(rt);
    config.subscribe('mode', p.ref);
    config.subscribe('server', p.ref);
    expect(config.subscriptions).toBe(2);
    rt.kill(p.ref);
    await awaitExit(rt, p.ref);
    expect(config.subscriptions).toBe(0);
    expect(() => config.subscribe('mode', p.ref)).toThrow(
      expect.objectContaining({ code: ErrorCodes.NOPROC }),
    );
    expect(() => config.subscribe('mode', 42 as never)).toThrow(/subscriber/);
    expect(() => config.subscribe('nope' as never, () => {})).toThrow(ConfigUnknownPathError);
  });
});

describe('reset', () => {
  it('returns to the loaded configuration (file and environment included) and notifies', async () => {
    const path = await file('reset.json', JSON.stringify({ mode: 'prod' }));
    const { rt, config } = await start({
      file: path,
      env: { prefix: 'APP', env: { APP_SERVER__PORT: '7000' } },
    });
    const p = probe(rt);
    config.subscribe('server.port', p.ref);
    config.subscribe('mode', p.ref);
    await config.update('server.port', 7001);
    await config.update('mode', 'dev');
    expect(await config.reset()).toBe(3);
    expect(config.get('server.port')).toBe(7000);
    expect(config.get('mode')).toBe('prod');
    await p.expectMessage({ path: 'server.port', old: 7001, new: 7000, version: 3 });
    await p.expectMessage({ path: 'mode', old: 'dev', new: 'prod', version: 3 });
    // Already as loaded: no change, no new version.
    expect(await config.reset()).toBe(3);
  });
});

describe('the owner', () => {
  it('may crash: reads go on, the next write starts a new owner, nothing is lost', async () => {
    const { rt, config } = await start({ name: 'config' });
    const p = probe(rt);
    config.subscribe('server.port', p.ref);
    await config.update('server.port', 5000);
    const first = config.owner;
    expect(rt.whereis('config')?.equals(first)).toBe(true);
    rt.exit(first, new Error('owner crashed'));
    await awaitExit(rt, first);
    expect(config.get('server.port')).toBe(5000);
    expect(await config.update('server.port', 5001)).toBe(2);
    expect(config.owner.equals(first)).toBe(false);
    expect(rt.whereis('config')?.equals(config.owner)).toBe(true);
    await p.expectMessage({ new: 5000, version: 1 });
    await p.expectMessage({ old: 5000, new: 5001, version: 2 });
  });

  it('takes writes from agents, whose reads inside a handler already see the change', async () => {
    const { rt, config } = await start();
    const Reactor = behaviour<void, null, never, never, never, ConfigChange>({
      init: () => null,
      handleInfo: (msg, s) => {
        const change = msg as ConfigChange;
        // A synchronous read of the snapshot: already the version the message announces.
        if (config.get('mode') === change.new && config.version >= change.version && change.new === 'prod') {
          void config.update('features.beta', true);
        }
        return s;
      },
    });
    const reactor = rt.spawnSync(Reactor, undefined);
    config.subscribe('mode', reactor);
    const beta = new Promise<ConfigChange>((resolve) => config.subscribe('features.beta', resolve));
    await config.update('mode', 'prod');
    expect(await beta).toMatchObject({ old: false, new: true, version: 2 });
  });

  it('stop: writes and subscriptions are refused, reads still answer', async () => {
    const { rt, config } = await start();
    const owner = config.owner;
    await config.stop();
    expect(rt.isAlive(owner)).toBe(false);
    expect(config.stopped).toBe(true);
    await expect(config.update('mode', 'prod')).rejects.toMatchObject({ code: 'E_CONFIG_STOPPED' });
    expect(() => config.subscribe('mode', () => {})).toThrow(/has been stopped/);
    expect(config.get('mode')).toBe('dev');
    await config.stop(); // twice is fine
  });

  it('reports accepted changes through telemetry', async () => {
    const { rt, config } = await start();
    const changed = awaitTelemetry(rt, ['mabeam', 'config', 'changed']);
    await config.update('mode', 'prod');
    expect((await changed).measurements).toEqual({ version: 1 });
  });
});

describe('Maps, Sets, Dates, class instances and records', () => {
  class Endpoint {
    constructor(readonly url: string) {}
  }
  const Kinds = z.object({
    hosts: z.set(z.string()).default(new Set(['a'])),
    weights: z.map(z.string(), z.number()).default(new Map([['x', 1]])),
    cutoff: z.date().default(new Date(0)),
    endpoint: z.instanceof(Endpoint).default(new Endpoint('http://a')),
    nested: z.object({ list: z.array(z.number()), since: z.date().optional() }).default({ list: [1] }),
    limits: z.record(z.string(), z.number()).default({}),
  });
  const startKinds = () =>
    ConfigServer.start(runtime(), {
      schema: Kinds,
      updatable: ['hosts', 'weights', 'cutoff', 'endpoint', 'nested', 'limits'],
    });

  it('compare Maps and Sets by entries and other objects by identity: updates to them are applied', async () => {
    const config = await startKinds();
    const seen: ConfigChange[] = [];
    config.subscribe('hosts', (c) => seen.push(c));
    expect(await config.update('hosts', new Set(['a', 'b']))).toBe(1);
    expect(await config.update('weights', new Map([['x', 2]]))).toBe(2);
    expect(await config.update('weights', new Map([['y', 2]]))).toBe(3);
    expect(await config.update('endpoint', new Endpoint('http://b'))).toBe(4);
    expect(await config.update('cutoff', new Date(5))).toBe(5);
    expect([...config.get('hosts')]).toEqual(['a', 'b']);
    expect([...config.get('weights')]).toEqual([['y', 2]]);
    expect(config.get('endpoint').url).toBe('http://b');
    expect(config.get('cutoff').getTime()).toBe(5);
    // Equal contents are no change: no version step, no notification.
    expect(await config.update('hosts', new Set(['b', 'a']))).toBe(5);
    expect(await config.update('weights', new Map([['y', 2]]))).toBe(5);
    expect(await config.update('cutoff', new Date(5))).toBe(5);
    await Promise.resolve();
    expect(seen).toHaveLength(1);
    const change = seen[0] as ConfigChange<Set<string>>;
    expect([...change.old]).toEqual(['a']);
    expect([...change.new]).toEqual(['a', 'b']);
  });

  it('hand out copies of Maps, Sets and Dates: a reader cannot change the configuration', async () => {
    const config = await startKinds();
    config.get('hosts').add('evil');
    config.get('weights').set('evil', 9);
    config.get('cutoff').setTime(123);
    config.snapshot.hosts.add('evil');
    config.snapshot.cutoff.setTime(456);
    expect([...config.get('hosts')]).toEqual(['a']);
    expect([...config.get('weights')]).toEqual([['x', 1]]);
    expect(config.get('cutoff').getTime()).toBe(0);
    expect(config.version).toBe(0);
    // Objects and arrays around them are still frozen; a Date below a plain object is copied too.
    expect(Object.isFrozen(config.snapshot)).toBe(true);
    await config.update('nested', { list: [2], since: new Date(7) });
    (config.get('nested').since as Date).setTime(8);
    (config.snapshot.nested.since as Date).setTime(9);
    expect(config.get('nested.since')?.getTime()).toBe(7);
    expect(Object.isFrozen(config.get('nested'))).toBe(true);
    // The schema's own default objects are neither frozen nor handed out.
    const again = Kinds.parse({});
    expect(again.cutoff.getTime()).toBe(0);
    expect(() => again.nested.list.push(2)).not.toThrow();
  });

  it('get reads own properties only, never inherited members of a record', async () => {
    const config = await startKinds();
    expect(config.get('limits.toString' as never)).toBeUndefined();
    expect(config.get('limits.__proto__' as never)).toBeUndefined();
    expect(config.get('limits.constructor' as never)).toBeUndefined();
    const seen: ConfigChange[] = [];
    config.subscribe('limits.toString' as never, (c: ConfigChange) => seen.push(c));
    await config.update('limits.toString' as never, 5 as never);
    expect(config.get('limits.toString' as never)).toBe(5);
    expect(config.get('limits')).toEqual({ toString: 5 });
    await Promise.resolve();
    expect(seen).toEqual([expect.objectContaining({ old: undefined, new: 5, version: 1 })]);
  });

  it('never freeze the caller’s objects, also ones structuredClone cannot copy', async () => {
    const Hooks = z.object({
      hook: z
        .object({ fn: z.custom<() => void>((f) => typeof f === 'function'), tags: z.array(z.string()) })
        .optional(),
    });
    const config = await ConfigServer.start(runtime(), { schema: Hooks, updatable: ['hook'] });
    const value = { fn: () => {}, tags: ['a'] };
    await config.update('hook', value);
    expect(Object.isFrozen(value)).toBe(false);
    expect(Object.isFrozen(value.tags)).toBe(false);
    value.tags.push('b');
    expect(config.get('hook')?.tags).toEqual(['a']);
    expect(config.get('hook')?.fn).toBe(value.fn);
  });
});

describe('errors', () => {
  it('have unique E_ codes on MabeamError subclasses', () => {
    const codes = Object.values(ConfigErrorCodes);
    expect(new Set(codes).size).toBe(codes.length);
    for (const code of codes) expect(code).toMatch(/^E_CONFIG_[A-Z_]+$/);
    expect(new ConfigFileError('f', 'why')).toBeInstanceOf(MabeamError);
    expect(new ConfigNotUpdatableError('a.b', []).message).toContain('none is');
  });
});
