/**
 * The config server: a typed configuration (a zod schema) read by path, changed only on paths
 * declared updatable, with subscribers told of every change.
 *
 * CQRS like the registry: reads (`get`) are synchronous lookups in an immutable snapshot held by
 * the server object, so they never queue behind a mailbox; writes (`update`, `reset`) are calls to
 * one owner agent, which validates and applies them one at a time and notifies subscribers.
 *
 * Loading, lowest precedence first: the schema's own defaults, `defaults`, the JSON `file`, then
 * environment variables `PREFIX_A__B=...` (one `__` per level). The merged result must pass the
 * schema, or `start` rejects naming the path, the reason and where the value came from.
 *
 * Reads hand out the snapshot's own values, whose arrays and plain objects are frozen. Maps, Sets
 * and Dates cannot be frozen (`set`, `add` and `setTime` ignore Object.freeze), so the snapshot
 * keeps private copies of them and every read (`get`, `snapshot`, a change's `old` and `new`)
 * hands out fresh copies: changing one changes nothing. Values of other classes (say a URL made by
 * a transform) are kept as they are, neither frozen nor copied; changes compare them by identity.
 *
 * The owner may crash or be killed without loss: the snapshot, version and subscriptions live in
 * the server object and the owner is a stateless serializer of writes. A write that was running
 * when it died was either applied completely or not at all (a write is applied synchronously in
 * one handler); the next write starts a fresh owner. Reads never notice.
 */
import { readFile } from 'node:fs/promises';
import type { z } from 'zod';
import {
  type AgentContext,
  AgentRef,
  type AnyRef,
  behaviour,
  describe,
  InvalidArgumentError,
  MabeamError,
  MailboxFullError,
  type Name,
  NoProcessError,
  pidKey,
  type Runtime,
  reply,
} from '../kernel/index.js';

// ---- errors ------------------------------------------------------------------------------------

/** Error codes of the config server (unique across the project, never reused). */
export const ConfigErrorCodes = {
  /** `update` of a path that was not declared updatable. */
  NOT_UPDATABLE: 'E_CONFIG_NOT_UPDATABLE',
  /** A path (or an environment variable, or a key in the file or defaults) the schema lacks. */
  UNKNOWN_PATH: 'E_CONFIG_UNKNOWN_PATH',
  /** The config file could not be read or is not a JSON object. */
  FILE: 'E_CONFIG_FILE',
  /** The server was stopped; it takes no more writes or subscriptions. */
  STOPPED: 'E_CONFIG_STOPPED',
} as const;

/** `update` of a path not declared in `updatable`. */
export class ConfigNotUpdatableError extends MabeamError {
  readonly path: string;
  constructor(path: string, updatable: readonly string[]) {
    const allowed =
      updatable.length === 0 ? 'none is' : `updatable: ${updatable.map((p) => JSON.stringify(p)).join(', ')}`;
    super(
      ConfigErrorCodes.NOT_UPDATABLE,
      `config path ${JSON.stringify(path)} is not updatable (${allowed})`,
    );
    this.path = path;
  }
}

/** A path the schema does not have. */
export class ConfigUnknownPathError extends MabeamError {
  readonly path: string;
  constructor(path: string, where = '') {
    super(ConfigErrorCodes.UNKNOWN_PATH, `config path ${JSON.stringify(path)}${where} is not in the schema`);
    this.path = path;
  }
}

/** The config file is missing, unreadable, not JSON or not an object. */
export class ConfigFileError extends MabeamError {
  readonly file: string;
  constructor(file: string, problem: string, cause?: unknown) {
    super(ConfigErrorCodes.FILE, `config file ${JSON.stringify(file)}: ${problem}`, { cause });
    this.file = file;
  }
}

/** A write or subscription after `stop`. */
export class ConfigStoppedError extends MabeamError {
  constructor(server: string) {
    super(ConfigErrorCodes.STOPPED, `config server ${server} has been stopped`);
  }
}

// ---- path types --------------------------------------------------------------------------------

type Leaf = string | number | boolean | bigint | symbol | null | undefined | Date | RegExp | Function;
type Prev = [never, 0, 1, 2, 3, 4, 5, 6, 7];

/**
 * Every dotted path into a config type, down to 8 levels: `'db' | 'db.host' | 'db.port' | ...`.
 * Paths stop at arrays and other leaves; keys must not contain dots.
 */
export type ConfigPath<T, D extends number = 8> = [D] extends [never]
  ? never
  : NonNullable<T> extends Leaf | readonly unknown[]
    ? never
    : {
        [K in keyof NonNullable<T> & string]:
          | K
          | (ConfigPath<NonNullable<T>[K], Prev[D]> extends infer R extends string ? `${K}.${R}` : never);
      }[keyof NonNullable<T> & string];

/** The type at a dotted path (with `undefined` if an optional object on the way may be absent). */
export type ConfigValue<T, P extends string> = P extends `${infer H}.${infer R}`
  ? H extends keyof NonNullable<T>
    ? ConfigValue<NonNullable<T>[H], R> | (undefined extends T ? undefined : never)
    : never
  : P extends keyof NonNullable<T>
    ? NonNullable<T>[P] | (undefined extends T ? undefined : never)
    : never;

/** The paths `update` takes: the updatable paths `U` and every path below one. */
export type UpdatablePath<T, U extends string> = Extract<ConfigPath<T>, U | `${U}.${string}`>;

/** Objects at any depth made optional, for `defaults`. */
export type DeepPartial<T> = T extends Leaf | readonly unknown[] ? T : { [K in keyof T]?: DeepPartial<T[K]> };

// ---- options and messages ----------------------------------------------------------------------

/** Options of `ConfigServer.start`. */
export interface ConfigOptions<S extends z.ZodType, U extends string> {
  /** The schema of the whole configuration (an object schema). */
  schema: S;
  /** Values below the file and the environment (and above the schema's own `.default()`s). */
  defaults?: DeepPartial<z.input<S>>;
  /** The paths `update` may change (a path covers everything below it). Default: none. */
  updatable?: readonly U[];
  /** A JSON file with a (partial) configuration. Missing or malformed: `start` rejects. */
  file?: string;
  /**
   * Environment overrides: `PREFIX_A__B=value` sets path `a.b` (segments match keys case-blind, a
   * camelCase key also as SNAKE_CASE). Values are JSON-parsed unless the path holds a string.
   * Variables with the prefix that name no path make `start` reject (a typo must not pass
   * silently). `env` defaults to `process.env`.
   */
  env?: { prefix: string; env?: Record<string, string | undefined> };
  /** Register the owner agent under this name. */
  name?: Name;
}

/** Sent to subscribed agents (an info message) and passed to subscribed callbacks. */
export interface ConfigChange<V = unknown> {
  readonly type: 'config_changed';
  /** The subscribed path. */
  readonly path: string;
  readonly old: V;
  readonly new: V;
  /** The version the change produced. */
  readonly version: number;
}

/** A subscriber: an agent (gets an info message) or a function (called after the change). */
export type ConfigSubscriber<V = unknown> = AnyRef | ((change: ConfigChange<V>) => void);

type Write = { op: 'update'; path: string; value: unknown } | { op: 'reset' };
type Outcome = { ok: number } | { error: unknown };

/** The owner: a stateless serializer that applies each write through the server's `apply`. */
const ConfigOwner = behaviour<
  (w: Write, ctx: AgentContext) => number,
  (w: Write, ctx: AgentContext) => number,
  Write,
  Outcome
>({
  init: (apply) => apply,
  handleCall: (write, _from, apply, ctx) => {
    // A refused write is the caller's error, not the owner's: reply with it and carry on.
    try {
      return reply({ ok: apply(write, ctx as AgentContext) }, apply);
    } catch (error) {
      return reply({ error }, apply);
    }
  },
});

// ---- schema walking ----------------------------------------------------------------------------

interface Def {
  type: string;
  innerType?: z.ZodType;
  shape?: Record<string, z.ZodType>;
  catchall?: z.ZodType;
  valueType?: z.ZodType;
  options?: z.ZodType[];
  getter?: () => z.ZodType;
  in?: z.ZodType;
  values?: unknown[];
}

function defOf(schema: z.ZodType): Def {
  return (schema as unknown as { def: Def }).def;
}

const WRAPPERS = new Set(['optional', 'nullable', 'default', 'prefault', 'readonly', 'catch', 'nonoptional']);

/** The schema under its optional/default/... wrappers. */
function unwrap(schema: z.ZodType): z.ZodType {
  for (let i = 0; i < 64; i++) {
    const d = defOf(schema);
    if (WRAPPERS.has(d.type) && d.innerType !== undefined) schema = d.innerType;
    else if (d.type === 'lazy' && d.getter !== undefined) schema = d.getter();
    else if (d.type === 'pipe' && d.in !== undefined) schema = d.in;
    else return schema;
  }
  return schema;
}

/** The schemas a key leads to from `schema` (several through unions); empty if none. */
function childSchemas(schema: z.ZodType, key: string): z.ZodType[] {
  const s = unwrap(schema);
  const d = defOf(s);
  if (d.type === 'object') {
    const shape = d.shape ?? {};
    if (Object.hasOwn(shape, key)) return [shape[key] as z.ZodType];
    const rest = d.catchall === undefined ? undefined : defOf(d.catchall).type;
    return rest === undefined || rest === 'never' || rest === 'unknown' ? [] : [d.catchall as z.ZodType];
  }
  if (d.type === 'record' && d.valueType !== undefined) return [d.valueType];
  if (d.type === 'union' && d.options !== undefined) return d.options.flatMap((o) => childSchemas(o, key));
  return [];
}

/** The schema at a path, or undefined if the schema has no such path. */
function schemaAt(schema: z.ZodType, segments: readonly string[]): z.ZodType | undefined {
  let here: z.ZodType[] = [schema];
  for (const seg of segments) {
    here = here.flatMap((s) => childSchemas(s, seg));
    if (here.length === 0) return undefined;
  }
  return here[0];
}

/** Keys one level below `schema` (object keys; none for records and leaves). */
function keysOf(schema: z.ZodType): string[] {
  const d = defOf(unwrap(schema));
  if (d.type === 'object') return Object.keys(d.shape ?? {});
  if (d.type === 'union' && d.options !== undefined) return [...new Set(d.options.flatMap(keysOf))];
  return [];
}

/** True when the schema at a path takes a string, so an environment value is used verbatim. */
function takesString(schema: z.ZodType): boolean {
  const d = defOf(unwrap(schema));
  if (d.type === 'string' || d.type === 'enum' || d.type === 'template_literal') return true;
  if (d.type === 'literal') return (d.values ?? []).every((v) => typeof v === 'string');
  return false;
}

// ---- plain-data helpers ------------------------------------------------------------------------

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object') return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** Set an own property, also one named `__proto__` (an assignment would change the prototype). */
function setOwn(obj: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') {
    Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
  } else obj[key] = value;
}

/** The value at a path; only own properties count (`limits.toString` is not a config value). */
function valueAt(root: unknown, segments: readonly (string | number | symbol)[]): unknown {
  let v = root;
  for (const seg of segments) {
    if (v === null || typeof v !== 'object' || !Object.hasOwn(v, seg)) return undefined;
    v = (v as Record<string | number | symbol, unknown>)[seg];
  }
  return v;
}

/** A copy of `root` with `value` at the path; only the objects along the path are copied. */
function setAt(root: unknown, segments: readonly string[], value: unknown): Record<string, unknown> {
  const top: Record<string, unknown> = isPlainObject(root) ? { ...root } : {};
  let node = top;
  for (let i = 0; i < segments.length - 1; i++) {
    const seg = segments[i] as string;
    const next = Object.hasOwn(node, seg) ? node[seg] : undefined;
    const copy: Record<string, unknown> = isPlainObject(next) ? { ...next } : {};
    setOwn(node, seg, copy);
    node = copy;
  }
  const last = segments[segments.length - 1] as string;
  if (value === undefined) delete node[last];
  else setOwn(node, last, value);
  return top;
}

/** `over` merged into `base`: plain objects key by key, everything else replaced. */
function deepMerge(base: unknown, over: unknown): unknown {
  if (!isPlainObject(base) || !isPlainObject(over)) return over === undefined ? base : over;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over))
    setOwn(out, k, deepMerge(Object.hasOwn(base, k) ? base[k] : undefined, v));
  return out;
}

// Snapshot copies: arrays and plain objects are frozen and shared; Maps, Sets and Dates, which
// cannot be frozen, are private and copied on every read (see the module comment).

type Unfreezable = Map<unknown, unknown> | Set<unknown> | Date;

/** A Map, Set or Date (exactly those classes; subclasses count as other class instances). */
function isUnfreezable(v: object): v is Unfreezable {
  const proto = Object.getPrototypeOf(v);
  return proto === Map.prototype || proto === Set.prototype || proto === Date.prototype;
}

/** Frozen snapshot containers (arrays, plain objects) with a Map, Set or Date somewhere below. */
const HOLDS_UNFREEZABLE = new WeakSet<object>();

/** True if a read of `v` (a snapshot value) must hand out a copy. */
function needsCopy(v: unknown): boolean {
  return v !== null && typeof v === 'object' && (isUnfreezable(v) || HOLDS_UNFREEZABLE.has(v));
}

function emptyLike(v: object): Record<string, unknown> {
  return Array.isArray(v)
    ? ([] as unknown as Record<string, unknown>)
    : Object.getPrototypeOf(v) === null
      ? Object.create(null)
      : {};
}

/**
 * A private copy of caller data: plain objects, arrays, Maps, Sets and Dates are copied (cycles
 * included); functions and other class instances are kept as they are, never frozen.
 */
function ownCopy(v: unknown, seen = new Map<object, unknown>()): unknown {
  if (v === null || typeof v !== 'object') return v;
  const done = seen.get(v);
  if (done !== undefined) return done;
  if (!isUnfreezable(v) && !Array.isArray(v) && !isPlainObject(v)) return v;
  return copyWith(v, seen, ownCopy, false);
}

/**
 * A copy of a Map, Set, Date, array or plain object whose members are `each(member)`; arrays and
 * plain objects frozen if `freeze`.
 */
function copyWith(
  v: object,
  seen: Map<object, unknown>,
  each: (member: unknown, seen: Map<object, unknown>) => unknown,
  freeze: boolean,
): unknown {
  if (v instanceof Date) return new Date(v.getTime());
  if (v instanceof Map) {
    const out = new Map<unknown, unknown>();
    seen.set(v, out);
    for (const [k, x] of v) out.set(each(k, seen), each(x, seen));
    return out;
  }
  if (v instanceof Set) {
    const out = new Set<unknown>();
    seen.set(v, out);
    for (const x of v) out.add(each(x, seen));
    return out;
  }
  const out = emptyLike(v);
  seen.set(v, out);
  let holds = false;
  for (const k of Object.keys(v)) {
    const child = each((v as Record<string, unknown>)[k], seen);
    if (freeze && needsCopy(child)) holds = true;
    setOwn(out, k, child);
  }
  if (!freeze) return out;
  if (holds) HOLDS_UNFREEZABLE.add(out);
  return Object.freeze(out);
}

/**
 * `v` as a snapshot holds it: a private deep copy whose arrays and plain objects are frozen (so
 * nothing outside, not even a schema's shared `.default()` object, is frozen or shared), and whose
 * containers holding a Map, Set or Date are marked for `readCopy`.
 */
function freezeCopy(v: unknown, seen = new Map<object, unknown>()): unknown {
  if (v === null || typeof v !== 'object') return v;
  const done = seen.get(v);
  if (done !== undefined) return done;
  if (!isUnfreezable(v) && !Array.isArray(v) && !isPlainObject(v)) return v;
  return copyWith(v, seen, freezeCopy, true);
}

/**
 * What a read hands out for the snapshot value `v`: `v` itself, or (if it is or holds a Map, Set
 * or Date) a copy with fresh Maps, Sets and Dates, its arrays and plain objects frozen again.
 */
function readCopy<T>(v: T, seen = new Map<object, unknown>()): T {
  if (!needsCopy(v)) return v;
  const done = seen.get(v as object);
  if (done !== undefined) return done as T;
  return copyWith(v as object, seen, readCopy, true) as T;
}

/** Structural equality: plain objects and arrays by own keys, Maps and Sets by entries, Dates by time, anything else by identity. */
function deepEqual(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false;
  const plainA = isPlainObject(a);
  if (plainA !== isPlainObject(b)) return false;
  if (!plainA) {
    if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false;
    if (a instanceof Date) return Object.is(a.getTime(), (b as Date).getTime());
    if (a instanceof Map) return sameMap(a, b as Map<unknown, unknown>);
    if (a instanceof Set) return sameSet(a, b as Set<unknown>);
    if (!Array.isArray(a)) return false; // another class instance: only itself is equal to it
  }
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  for (const k of ka) {
    if (!Object.hasOwn(b, k)) return false;
    if (!deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])) return false;
  }
  return true;
}

function isObject(v: unknown): v is object {
  return v !== null && typeof v === 'object';
}

/**
 * Same size and entries. Keys are found by identity; object keys not found so (every snapshot
 * holds its own copies) are paired with deeply equal keys of `b` whose values are deeply equal.
 */
function sameMap(a: Map<unknown, unknown>, b: Map<unknown, unknown>): boolean {
  if (a.size !== b.size) return false;
  const unmatched: unknown[] = [];
  for (const [k, v] of a) {
    if (b.has(k)) {
      if (!deepEqual(v, b.get(k))) return false;
    } else if (isObject(k)) unmatched.push(k);
    else return false;
  }
  if (unmatched.length === 0) return true;
  const rest = [...b].filter(([k]) => !a.has(k));
  for (const k of unmatched) {
    const i = rest.findIndex(([bk, bv]) => deepEqual(k, bk) && deepEqual(a.get(k), bv));
    if (i < 0) return false;
    rest.splice(i, 1);
  }
  return true;
}

/** Same size and members: by identity, or (object members) paired with a deeply equal member. */
function sameSet(a: Set<unknown>, b: Set<unknown>): boolean {
  if (a.size !== b.size) return false;
  const unmatched: unknown[] = [];
  for (const m of a) {
    if (b.has(m)) continue;
    if (!isObject(m)) return false;
    unmatched.push(m);
  }
  if (unmatched.length === 0) return true;
  const rest = [...b].filter((m) => !a.has(m));
  for (const m of unmatched) {
    const i = rest.findIndex((o) => deepEqual(m, o));
    if (i < 0) return false;
    rest.splice(i, 1);
  }
  return true;
}

/** Freeze the arrays and plain objects of a value the server owns (its raw input). */
function deepFreeze<T>(v: T): T {
  if (Array.isArray(v) || isPlainObject(v)) {
    if (Object.isFrozen(v)) return v;
    Object.freeze(v);
    for (const child of Object.values(v as object)) deepFreeze(child);
  }
  return v;
}

function zodReason(error: z.ZodError): string {
  return error.issues
    .map((i) => (i.path.length === 0 ? i.message : `${i.path.map(String).join('.')}: ${i.message}`))
    .join('; ');
}

function envSegmentMatches(segment: string, key: string): boolean {
  const upper = segment.toUpperCase();
  return upper === key.toUpperCase() || upper === key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
}

const OPTION_KEYS = new Set(['schema', 'defaults', 'updatable', 'file', 'env', 'name']);
/** Resolved paths kept for `get`; past this many (dynamic record keys) the cache starts over. */
const PATH_CACHE_MAX = 10_000;

// ---- the server --------------------------------------------------------------------------------

/** What was loaded at start: the raw merged input and where each override came from. */
interface Loaded {
  input: Record<string, unknown>;
  /** Path -> source label, for error messages ("env APP_DB__PORT", "file ./c.json"). */
  sources: Map<string, string>;
}

/**
 * A running config server. `T` is the schema's output type, `U` the updatable paths, `I` the
 * schema's input type (what `update` takes; the same as `T` for schemas without transforms).
 */
export class ConfigServer<T, U extends string = never, I = T> {
  readonly runtime: Runtime;
  readonly #schema: z.ZodType<T>;
  readonly #updatable: readonly string[];
  readonly #name: Name | undefined;
  /** The parsed, frozen configuration: what `get` reads. */
  #snapshot: T;
  /** The raw input the snapshot was parsed from; writes change it and parse it again. */
  #input: Record<string, unknown>;
  readonly #baseline: { input: Record<string, unknown>; snapshot: T };
  #version = 0;
  #owner: AnyRef;
  #stopped = false;
  readonly #paths = new Map<string, readonly string[]>();
  /** Subscribed path -> its subscribers. */
  readonly #subs = new Map<string, Set<ConfigSubscriber>>();
  /** Subscribed agent (pid key) -> its paths and the hook that unsubscribes it when it exits. */
  readonly #agents = new Map<string, { paths: Set<string>; unhook: () => void }>();

  private constructor(
    runtime: Runtime,
    schema: z.ZodType<T>,
    updatable: readonly string[],
    name: Name | undefined,
    input: Record<string, unknown>,
    snapshot: T,
  ) {
    this.runtime = runtime;
    this.#schema = schema;
    this.#updatable = updatable;
    this.#name = name;
    this.#input = input;
    this.#snapshot = snapshot;
    this.#baseline = { input, snapshot };
    this.#owner = this.#spawnOwner();
  }

  /**
   * Load, validate and start a config server. Rejects with ConfigFileError (E_CONFIG_FILE) for a
   * bad file, ConfigUnknownPathError (E_CONFIG_UNKNOWN_PATH) for an updatable path, environment
   * variable or file key the schema lacks, and InvalidArgumentError (E_INVALID_ARGUMENT) naming
   * the path, zod's reason and the value's source when the merged configuration fails the schema.
   */
  static async start<S extends z.ZodType, const U extends ConfigPath<z.output<S>> = never>(
    runtime: Runtime,
    options: ConfigOptions<S, U>,
  ): Promise<ConfigServer<z.output<S>, U, z.input<S>>> {
    checkOptions(runtime, options);
    const schema = options.schema as z.ZodType<z.output<S>>;
    const updatable = [...(options.updatable ?? [])] as string[];
    for (const path of updatable) {
      if (schemaAt(schema, splitPath(path)) === undefined)
        throw new ConfigUnknownPathError(path, ' (updatable)');
    }
    const loaded = await load(schema, options);
    const parsed = schema.safeParse(loaded.input);
    if (!parsed.success) throw invalidAtStart(parsed.error, loaded);
    return new ConfigServer<z.output<S>, U, z.input<S>>(
      runtime,
      schema,
      updatable,
      options.name,
      deepFreeze(loaded.input),
      freezeCopy(parsed.data) as z.output<S>,
    );
  }

  // ---- reads: synchronous, from the snapshot ----

  /**
   * The value at a dotted path of the current snapshot. Arrays and plain objects are frozen and
   * shared by every read; Maps, Sets and Dates, which cannot be frozen, are handed out as fresh
   * copies (so are the frozen objects and arrays above them), so changing them changes nothing.
   * Only own properties count: `get('limits.toString')` of a record is undefined.
   */
  get<P extends ConfigPath<T>>(path: P): ConfigValue<T, P> {
    return readCopy(valueAt(this.#snapshot, this.#resolve(path))) as ConfigValue<T, P>;
  }

  /** The whole current configuration (frozen; with Maps, Sets and Dates copied as `get` does). */
  get snapshot(): T {
    return readCopy(this.#snapshot);
  }

  /** 0 at start, plus one per accepted change. */
  get version(): number {
    return this.#version;
  }

  /** The agent that serializes writes (a new one after it exits, from the next write on). */
  get owner(): AnyRef {
    return this.#owner;
  }

  /** The updatable paths. */
  get updatable(): readonly string[] {
    return this.#updatable;
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  // ---- writes: calls to the owner ----

  /**
   * Set the value at an updatable path (or below one). Resolves with the new version (the current
   * one if nothing changed). Rejects with ConfigNotUpdatableError (E_CONFIG_NOT_UPDATABLE) for
   * other paths and with InvalidArgumentError (E_INVALID_ARGUMENT, naming the path and zod's
   * reason) if the result fails the schema; the old value then stays. `undefined` unsets the
   * value (back to the schema's default, if it has one). Should the owner be killed while the
   * write waits in its mailbox, it rejects with ExitError (E_EXIT) and nothing was applied.
   */
  update<P extends UpdatablePath<T, U>>(path: P, value: ConfigValue<I, P>): Promise<number> {
    try {
      this.#resolve(path);
      if (!this.#isUpdatable(path)) throw new ConfigNotUpdatableError(path, this.#updatable);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#write({ op: 'update', path, value });
  }

  /**
   * Go back to the configuration as loaded at start (schema defaults, `defaults`, file and
   * environment). Subscribers of paths that change are notified; one version step for all.
   */
  reset(): Promise<number> {
    return this.#write({ op: 'reset' });
  }

  async #write(write: Write): Promise<number> {
    if (this.#stopped) throw new ConfigStoppedError(this.#label());
    if (!this.runtime.isAlive(this.#owner)) this.#owner = this.#spawnOwner();
    const outcome = (await this.runtime.call(this.#owner, write)) as Outcome;
    if ('error' in outcome) throw outcome.error;
    return outcome.ok;
  }

  #spawnOwner(): AnyRef {
    const options = this.#name === undefined ? undefined : { name: this.#name };
    return this.runtime.spawnSync(ConfigOwner, (w, ctx) => this.#apply(w, ctx), options);
  }

  /** Runs in the owner: validate, swap the snapshot, notify. Returns the version. */
  #apply(write: Write, ctx: AgentContext): number {
    let input: Record<string, unknown>;
    let next: T;
    if (write.op === 'reset') {
      input = this.#baseline.input;
      next = this.#baseline.snapshot;
    } else {
      const segments = this.#resolve(write.path);
      if (!this.#isUpdatable(write.path)) throw new ConfigNotUpdatableError(write.path, this.#updatable);
      input = setAt(this.#input, segments, ownCopy(write.value));
      const parsed = this.#schema.safeParse(input);
      if (!parsed.success) {
        throw new InvalidArgumentError(
          `config path ${JSON.stringify(write.path)}`,
          zodReason(parsed.error),
          write.value,
        );
      }
      next = freezeCopy(parsed.data) as T;
    }
    if (deepEqual(next, this.#snapshot)) return this.#version;
    const old = this.#snapshot;
    this.#input = deepFreeze(input);
    this.#snapshot = next;
    const version = ++this.#version;
    this.#notify(old, next, version, ctx);
    const tel = this.runtime.telemetry;
    if (tel.enabled) {
      tel.execute(['mabeam', 'config', 'changed'], { version }, { server: this.#label(), op: write.op });
    }
    return version;
  }

  #notify(old: T, next: T, version: number, ctx: AgentContext): void {
    for (const [path, subscribers] of this.#subs) {
      const segments = this.#resolve(path);
      const before = valueAt(old, segments);
      const after = valueAt(next, segments);
      if (deepEqual(before, after)) continue;
      // Maps, Sets and Dates in a change are copies, one per subscriber, like those `get` gives.
      const copies = needsCopy(before) || needsCopy(after);
      const shared: ConfigChange = { type: 'config_changed', path, old: before, new: after, version };
      for (const s of subscribers) {
        const change = copies ? { ...shared, old: readCopy(before), new: readCopy(after) } : shared;
        if (s instanceof AgentRef) {
          try {
            ctx.send(s, change);
          } catch (error) {
            // A full `reject` mailbox: that subscriber misses this change; the write stands.
            if (!(error instanceof MailboxFullError)) throw error;
          }
        } else {
          // After the handler, not inside it: a callback may then call `update` itself (from
          // inside the owner that would be a call to self), and always sees the new snapshot.
          queueMicrotask(() => this.#callBack(path, s, change));
        }
      }
    }
  }

  #callBack(path: string, fn: (change: ConfigChange) => void, change: ConfigChange): void {
    if (!this.#subs.get(path)?.has(fn)) return; // unsubscribed meanwhile
    try {
      fn(change);
    } catch (error) {
      // Like a failing telemetry handler: detach it and report, so it cannot fail every change.
      this.#removeSub(path, fn);
      const tel = this.runtime.telemetry;
      if (tel.enabled) {
        tel.execute(['mabeam', 'config', 'subscriber_failed'], {}, { server: this.#label(), path, error });
      }
    }
  }

  // ---- subscriptions ----

  /**
   * Be told of every change to the value at `path` (a change below it included): an agent gets an
   * info message `{type: 'config_changed', path, old, new, version}`, a function is called with
   * it. An agent is unsubscribed when it exits. Returns a function that unsubscribes.
   */
  subscribe<P extends ConfigPath<T>>(
    path: P,
    subscriber: ConfigSubscriber<ConfigValue<T, P>>,
  ): () => boolean {
    if (this.#stopped) throw new ConfigStoppedError(this.#label());
    this.#resolve(path);
    const s = subscriber as ConfigSubscriber;
    if (s instanceof AgentRef) {
      if (!this.runtime.isAlive(s)) throw new NoProcessError(s.toString(), 'cannot subscribe a dead agent');
      const key = pidKey(s);
      let agent = this.#agents.get(key);
      if (agent === undefined) {
        const paths = new Set<string>();
        const unhook = this.runtime.onExit(s, () => {
          this.#agents.delete(key);
          for (const p of paths) this.#removeSub(p, s, false);
        });
        agent = { paths, unhook };
        this.#agents.set(key, agent);
      }
      agent.paths.add(path);
    } else if (typeof s !== 'function') {
      throw new InvalidArgumentError('config subscriber', 'must be an agent ref or a function', s);
    }
    let set = this.#subs.get(path);
    if (set === undefined) {
      set = new Set();
      this.#subs.set(path, set);
    }
    if (findSub(set, s) === undefined) set.add(s); // subscribing twice still sends one message
    return () => this.unsubscribe(path, subscriber);
  }

  /** Stop telling `subscriber` about `path`. False if it was not subscribed. */
  unsubscribe<P extends ConfigPath<T>>(path: P, subscriber: ConfigSubscriber<ConfigValue<T, P>>): boolean {
    return this.#removeSub(path, subscriber as ConfigSubscriber);
  }

  #removeSub(path: string, subscriber: ConfigSubscriber, untrack = true): boolean {
    const set = this.#subs.get(path);
    if (set === undefined) return false;
    const found = findSub(set, subscriber);
    if (found === undefined) return false;
    set.delete(found);
    if (set.size === 0) this.#subs.delete(path);
    if (untrack && found instanceof AgentRef) {
      const key = pidKey(found);
      const agent = this.#agents.get(key);
      agent?.paths.delete(path);
      if (agent !== undefined && agent.paths.size === 0) {
        agent.unhook();
        this.#agents.delete(key);
      }
    }
    return true;
  }

  /** Number of subscriptions (agents and functions), for tests and introspection. */
  get subscriptions(): number {
    let n = 0;
    for (const set of this.#subs.values()) n += set.size;
    return n;
  }

  // ---- lifetime ----

  /**
   * Stop the owner and drop every subscription. Reads keep answering from the last snapshot;
   * writes and subscriptions reject with ConfigStoppedError (E_CONFIG_STOPPED).
   */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const agent of this.#agents.values()) agent.unhook();
    this.#agents.clear();
    this.#subs.clear();
    if (this.runtime.isAlive(this.#owner)) await this.runtime.stop(this.#owner, 'shutdown');
  }

  // ---- paths ----

  #isUpdatable(path: string): boolean {
    for (const u of this.#updatable) if (path === u || path.startsWith(`${u}.`)) return true;
    return false;
  }

  #resolve(path: string): readonly string[] {
    const cached = this.#paths.get(path);
    if (cached !== undefined) return cached;
    const segments = splitPath(path);
    if (schemaAt(this.#schema, segments) === undefined) throw new ConfigUnknownPathError(path);
    if (this.#paths.size >= PATH_CACHE_MAX) this.#paths.clear();
    this.#paths.set(path, segments);
    return segments;
  }

  #label(): string {
    return this.#name === undefined ? String(this.#owner) : describe(this.#name);
  }
}

/** The member of `set` that is `s`: agents by pid (two refs to one agent are one subscriber). */
function findSub(set: Set<ConfigSubscriber>, s: ConfigSubscriber): ConfigSubscriber | undefined {
  if (!(s instanceof AgentRef)) return set.has(s) ? s : undefined;
  for (const other of set) if (other instanceof AgentRef && other.equals(s)) return other;
  return undefined;
}

function splitPath(path: string): string[] {
  if (typeof path !== 'string' || path === '') {
    throw new InvalidArgumentError('config path', 'must be a non-empty dotted string', path);
  }
  const segments = path.split('.');
  if (segments.some((s) => s === ''))
    throw new InvalidArgumentError('config path', 'has an empty segment', path);
  return segments;
}

function checkOptions(runtime: Runtime, o: ConfigOptions<z.ZodType, string>): void {
  if (runtime === null || typeof runtime !== 'object' || typeof runtime.spawnSync !== 'function') {
    throw new InvalidArgumentError('runtime', 'must be a Runtime', runtime);
  }
  if (o === null || typeof o !== 'object')
    throw new InvalidArgumentError('config options', 'must be an object', o);
  for (const key of Object.keys(o)) {
    if (!OPTION_KEYS.has(key))
      throw new InvalidArgumentError(`config option ${JSON.stringify(key)}`, 'unknown option');
  }
  const schema = o.schema as unknown;
  if (
    schema === null ||
    typeof schema !== 'object' ||
    typeof (schema as z.ZodType).safeParse !== 'function'
  ) {
    throw new InvalidArgumentError('config option "schema"', 'must be a zod schema', schema);
  }
  if (keysOf(o.schema).length === 0 && defOf(unwrap(o.schema)).type !== 'object') {
    throw new InvalidArgumentError(
      'config option "schema"',
      'must be an object schema',
      defOf(o.schema).type,
    );
  }
  if (o.updatable !== undefined && !Array.isArray(o.updatable)) {
    throw new InvalidArgumentError('config option "updatable"', 'must be an array of paths', o.updatable);
  }
  if (o.defaults !== undefined && !isPlainObject(o.defaults)) {
    throw new InvalidArgumentError('config option "defaults"', 'must be a plain object', o.defaults);
  }
  if (o.file !== undefined && (typeof o.file !== 'string' || o.file === '')) {
    throw new InvalidArgumentError('config option "file"', 'must be a path', o.file);
  }
  if (o.env !== undefined) {
    if (
      o.env === null ||
      typeof o.env !== 'object' ||
      typeof o.env.prefix !== 'string' ||
      o.env.prefix === ''
    ) {
      throw new InvalidArgumentError(
        'config option "env"',
        'must be {prefix, env?} with a non-empty prefix',
        o.env,
      );
    }
  }
}

// ---- loading -----------------------------------------------------------------------------------

async function load(schema: z.ZodType, o: ConfigOptions<z.ZodType, string>): Promise<Loaded> {
  const sources = new Map<string, string>();
  let input: unknown = {};
  if (o.defaults !== undefined) {
    checkKnownKeys(schema, o.defaults, [], 'defaults');
    input = deepMerge(input, ownCopy(o.defaults));
  }
  if (o.file !== undefined) {
    const fromFile = await readConfigFile(o.file);
    checkKnownKeys(schema, fromFile, [], `file ${o.file}`);
    recordSources(fromFile, [], `file ${o.file}`, sources);
    input = deepMerge(input, fromFile);
  }
  if (o.env !== undefined) {
    for (const { path, value, variable } of fromEnv(schema, o.env.prefix, o.env.env ?? process.env)) {
      input = setAt(input, path, value);
      sources.set(path.join('.'), `environment variable ${variable}`);
    }
  }
  return { input: input as Record<string, unknown>, sources };
}

async function readConfigFile(file: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    throw new ConfigFileError(
      file,
      code === 'ENOENT' ? 'no such file' : `cannot be read (${describe(error)})`,
      error,
    );
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw new ConfigFileError(file, `is not valid JSON (${(error as Error).message})`, error);
  }
  if (!isPlainObject(data)) throw new ConfigFileError(file, `must hold a JSON object, not ${describe(data)}`);
  return data;
}

/** A key the schema does not know (say a typo in the file) must not be dropped silently. */
function checkKnownKeys(schema: z.ZodType, value: unknown, at: string[], source: string): void {
  if (!isPlainObject(value)) return;
  const d = defOf(unwrap(schema));
  if (d.type !== 'object' && d.type !== 'record' && d.type !== 'union') return;
  for (const [k, v] of Object.entries(value)) {
    const path = [...at, k];
    const kids = childSchemas(schema, k);
    if (kids.length === 0) throw new ConfigUnknownPathError(path.join('.'), ` (in ${source})`);
    checkKnownKeys(kids[0] as z.ZodType, v, path, source);
  }
}

function recordSources(value: unknown, at: string[], source: string, into: Map<string, string>): void {
  if (isPlainObject(value)) {
    for (const [k, v] of Object.entries(value)) recordSources(v, [...at, k], source, into);
  } else if (at.length > 0) into.set(at.join('.'), source);
}

/** The overrides in the environment: each `PREFIX_A__B` resolved to a schema path and parsed. */
function fromEnv(
  schema: z.ZodType,
  prefix: string,
  env: Record<string, string | undefined>,
): { path: string[]; value: unknown; variable: string }[] {
  const head = `${prefix.replace(/_+$/, '')}_`;
  const out: { path: string[]; value: unknown; variable: string }[] = [];
  for (const variable of Object.keys(env).sort()) {
    const raw = env[variable];
    if (!variable.startsWith(head) || raw === undefined) continue;
    const segments = variable.slice(head.length).split('__');
    const path: string[] = [];
    let here: z.ZodType | undefined = schema;
    for (const seg of segments) {
      const key: string | undefined = here === undefined ? undefined : envKey(here, seg);
      if (key === undefined || here === undefined) {
        throw new ConfigUnknownPathError(
          [...path, seg.toLowerCase()].join('.'),
          ` (environment variable ${variable})`,
        );
      }
      path.push(key);
      here = schemaAt(here, [key]);
    }
    if (here === undefined)
      throw new ConfigUnknownPathError(path.join('.'), ` (environment variable ${variable})`);
    out.push({ path, value: takesString(here) ? raw : parseEnvValue(raw), variable });
  }
  return out;
}

/** The schema key an environment segment names: an object key (case-blind), or a record key as written. */
function envKey(schema: z.ZodType, segment: string): string | undefined {
  if (segment === '') return undefined;
  const key = keysOf(schema).find((k) => envSegmentMatches(segment, k));
  if (key !== undefined) return key;
  return childSchemas(schema, segment).length > 0 ? segment : undefined;
}

/** JSON where it parses (numbers, booleans, arrays, objects), else the raw string for zod to judge. */
function parseEnvValue(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}

/** The start-time validation error: the first failing path, zod's reasons, where the value came from. */
function invalidAtStart(error: z.ZodError, loaded: Loaded): InvalidArgumentError {
  const first = error.issues[0];
  const path = first === undefined ? [] : first.path.map(String);
  const value = valueAt(loaded.input, path);
  let source = value === undefined ? 'not set' : 'from defaults';
  for (let n = path.length; n > 0; n--) {
    const s = loaded.sources.get(path.slice(0, n).join('.'));
    if (s !== undefined) {
      source = `from ${s}`;
      break;
    }
  }
  const where = path.length === 0 ? 'config' : `config path ${JSON.stringify(path.join('.'))}`;
  const argument = `${where} (${source})`;
  return value === undefined
    ? new InvalidArgumentError(argument, zodReason(error))
    : new InvalidArgumentError(argument, zodReason(error), value);
}
