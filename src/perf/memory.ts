/**
 * Memory growth of one agent or one service, measured on its own retained structures (never from
 * the whole process's total, see shared/DESIGN.md), after forced GC, before and after a workload.
 *
 * The measurement is a deep size walk (`sizeOf`): every object reachable from the target is counted
 * once with V8's typical 64-bit sizes, and the walk stops at kernel boundaries (the runtime, other
 * agents' processes, agent refs, clocks, telemetry, Node timers), so a service's figure is what the
 * service itself holds, not what the objects it points at hold. Private class fields (`#x`), which
 * the services keep their models in and which JavaScript cannot enumerate, are read through the
 * in-thread V8 inspector. The figures are estimates for finding growth, not accounting: they are
 * compared before and after, so a constant error cancels out.
 */

import inspector from 'node:inspector';
import { types } from 'node:util';
import { RealClock, VirtualClock } from '../kernel/clock.js';
import { InvalidArgumentError, MabeamError } from '../kernel/errors.js';
import { AgentRef, localProcess } from '../kernel/pid.js';
import { Process, Status } from '../kernel/process.js';
import { Runtime } from '../kernel/runtime.js';
import { Scheduler } from '../kernel/scheduler.js';
import { Telemetry } from '../kernel/telemetry.js';
import { ExposeGcRequiredError } from './harness.js';

// ---- errors ------------------------------------------------------------------------------------

export const MemoryErrorCodes = {
  /** The measured agent exited (or its runtime stopped) during the measurement. */
  TARGET_GONE: 'E_MEMORY_TARGET_GONE',
  /** The size walk met more objects than its `maxNodes` limit. */
  WALK_LIMIT: 'E_MEMORY_WALK_LIMIT',
} as const;

export class MemoryTargetGoneError extends MabeamError {
  readonly target: string;
  constructor(target: string, when: string) {
    super(MemoryErrorCodes.TARGET_GONE, `cannot measure ${target}: the agent is gone (${when})`);
    this.target = target;
  }
}

export class MemoryWalkLimitError extends MabeamError {
  readonly maxNodes: number;
  constructor(maxNodes: number) {
    super(
      MemoryErrorCodes.WALK_LIMIT,
      `the size walk met more than ${maxNodes} objects; raise options.maxNodes ` +
        `(a truncated walk would hide growth) or add a boundary`,
    );
    this.maxNodes = maxNodes;
  }
}

// ---- the size walk -----------------------------------------------------------------------------

/** Something that names its own retained structures; `sizeOf` and `measureGrowth` walk those. */
export interface MemoryMeasurable {
  memoryRoots(): readonly unknown[];
}

export interface SizeOptions {
  /** Most objects the walk visits before failing with E_MEMORY_WALK_LIMIT. Default 500 000. */
  maxNodes?: number;
  /**
   * Read private class fields (`#x`) through the in-thread V8 inspector. Default true. Without it
   * (or where node has no inspector) a class instance's private state is invisible.
   */
  privateFields?: boolean;
  /**
   * Objects for which this returns true are counted as a pointer and not followed. Default
   * `kernelBoundary`. A root is never a boundary.
   */
  boundary?: (value: object) => boolean;
  /** More objects counted as a pointer only (shared structures the target does not own). */
  exclude?: Iterable<object>;
}

export interface SizeReport {
  /** Estimated bytes retained by the roots (shared objects counted once). */
  bytes: number;
  /** Distinct objects visited (boundaries and primitives not included). */
  objects: number;
  /** Objects not followed: boundaries, excluded objects, weak collections, proxies. */
  boundaries: number;
  /** Objects whose private fields were read through the inspector. */
  privateFieldObjects: number;
  /** Whether private fields were read (false: disabled, or no inspector in this node). */
  privateFields: boolean;
}

/** Typical V8 sizes on a 64-bit build without pointer compression (Node's default). */
const SLOT = 8;
const OBJECT_HEADER = 24; // map, properties, elements
const ARRAY_HEADER = 32 + 16; // JSArray + FixedArray header
const MAP_HEADER = 32 + 40; // JSMap + OrderedHashMap header
const MAP_ENTRY = 28; // key, value, chain + a share of the buckets
const SET_ENTRY = 20;
const FUNCTION_SIZE = 64;
const HEAP_NUMBER = 16;
const STRING_HEADER = 16;
const PROMISE_SIZE = 40;
const OPAQUE_SIZE = 32;

/**
 * The default boundary: kernel objects no agent or service owns by itself (a runtime, another
 * agent's process, agent refs, clocks, telemetry, the scheduler) and Node's timer handles (which
 * link every timer of the process together).
 */
export function kernelBoundary(value: object): boolean {
  if (
    value instanceof AgentRef ||
    value instanceof Process ||
    value instanceof Runtime ||
    value instanceof Telemetry ||
    value instanceof Scheduler ||
    value instanceof RealClock ||
    value instanceof VirtualClock
  ) {
    return true;
  }
  const name = (value as { constructor?: { name?: unknown } }).constructor?.name;
  return name === 'Timeout' || name === 'Immediate';
}

/** Built-in prototypes whose instances cannot have private fields of their own. */
const PLAIN_PROTOS = new Set<unknown>([
  null,
  Object.prototype,
  Array.prototype,
  Map.prototype,
  Set.prototype,
  Date.prototype,
  RegExp.prototype,
  Promise.prototype,
  Error.prototype,
  TypeError.prototype,
  RangeError.prototype,
  ArrayBuffer.prototype,
  WeakMap.prototype,
  WeakSet.prototype,
  String.prototype,
  Number.prototype,
  Boolean.prototype,
]);
/** Prototypes known (from one inspected instance) to declare no private fields. */
const noPrivate = new WeakSet<object>();

/** Any character outside Latin-1 makes V8 store the string with two bytes per character. */
const TWO_BYTE = /[\u0100-\uffff]/;

function stringBytes(s: string): number {
  const twoByte = TWO_BYTE.test(s);
  const payload = twoByte ? s.length * 2 : s.length;
  return STRING_HEADER + ((payload + 7) & ~7);
}

function numberBytes(n: number): number {
  return Number.isInteger(n) && n >= -(2 ** 31) && n < 2 ** 31 && !Object.is(n, -0) ? 0 : HEAP_NUMBER;
}

interface RemoteValue {
  type: string;
  subtype?: string;
  value?: unknown;
  unserializableValue?: string;
  objectId?: string;
}

/** Reads private fields of class instances through a synchronous in-thread inspector session. */
class PrivateReader {
  readonly #session: inspector.Session;
  static readonly #slot = Symbol.for('mabeam.perf.memory.slot');
  static readonly #group = 'mabeam-perf-memory';

  private constructor(session: inspector.Session) {
    this.#session = session;
  }

  static open(): PrivateReader | null {
    try {
      const session = new inspector.Session();
      session.connect();
      return new PrivateReader(session);
    } catch {
      return null;
    }
  }

  #post<T>(method: string, params: object): T {
    let out: T | undefined;
    let error: unknown;
    // An in-thread session answers synchronously: the callback has run when post returns.
    this.#session.post(method, params, (e: unknown, r: unknown) => {
      error = e;
      out = r as T;
    });
    if (error) throw error;
    if (out === undefined) throw new Error(`inspector ${method} did not answer synchronously`);
    return out;
  }

  /**
   * For each object, its private field values (objects as the real objects, primitives as
   * values), null when the inspector reports none, undefined when it could not inspect it.
   */
  read(objects: readonly object[]): (unknown[] | null | undefined)[] {
    const g = globalThis as Record<symbol, unknown>;
    g[PrivateReader.#slot] = objects;
    try {
      const group = PrivateReader.#group;
      const array = this.#post<{ result: RemoteValue }>('Runtime.evaluate', {
        expression: `globalThis[Symbol.for('mabeam.perf.memory.slot')]`,
        objectGroup: group,
        silent: true,
      }).result;
      const elements = this.#post<{ result: { name: string; value?: RemoteValue }[] }>(
        'Runtime.getProperties',
        {
          objectId: array.objectId,
          ownProperties: true,
          objectGroup: group,
        },
      ).result;
      const ids: string[] = new Array(objects.length);
      for (const p of elements) {
        const i = Number(p.name);
        if (Number.isInteger(i) && i >= 0 && i < objects.length && p.value?.objectId)
          ids[i] = p.value.objectId;
      }
      const out: (unknown[] | null | undefined)[] = [];
      const wanted: { objectId: string }[] = [];
      const places: { row: unknown[]; index: number }[] = [];
      for (let i = 0; i < objects.length; i++) {
        const id = ids[i];
        if (id === undefined) {
          out.push(undefined); // not inspectable: nothing read, nothing cached
          continue;
        }
        const props = this.#post<{ privateProperties?: { name: string; value?: RemoteValue }[] }>(
          'Runtime.getProperties',
          { objectId: id, ownProperties: true, objectGroup: group },
        ).privateProperties;
        if (props === undefined || props.length === 0) {
          out.push(null);
          continue;
        }
        const row: unknown[] = [];
        for (const p of props) {
          const v = p.value;
          if (v === undefined) continue; // a private accessor: no storage of its own
          if (v.objectId !== undefined && v.type !== 'bigint') {
            places.push({ row, index: row.length });
            row.push(undefined);
            wanted.push({ objectId: v.objectId });
          } else {
            row.push(primitiveOf(v));
          }
        }
        out.push(row);
      }
      // Fetch the object-valued fields as real objects, in chunks (one call per chunk).
      const outSlot = Symbol.for('mabeam.perf.memory.out');
      for (let start = 0; start < wanted.length; start += 4096) {
        const chunk = wanted.slice(start, start + 4096);
        this.#post('Runtime.callFunctionOn', {
          objectId: array.objectId,
          functionDeclaration: `function (...a) { globalThis[Symbol.for('mabeam.perf.memory.out')] = a; }`,
          arguments: chunk,
          objectGroup: group,
          silent: true,
        });
        const values = g[outSlot] as unknown[];
        g[outSlot] = undefined;
        for (let k = 0; k < chunk.length; k++) {
          const place = places[start + k] as { row: unknown[]; index: number };
          place.row[place.index] = values[k];
        }
      }
      return out;
    } finally {
      g[PrivateReader.#slot] = undefined;
      try {
        this.#post('Runtime.releaseObjectGroup', { objectGroup: PrivateReader.#group });
      } catch {
        // nothing to release
      }
    }
  }

  close(): void {
    this.#session.disconnect();
  }
}

function primitiveOf(v: RemoteValue): unknown {
  if (v.type === 'undefined') return undefined;
  if (v.unserializableValue !== undefined) {
    if (v.type === 'bigint') return BigInt(v.unserializableValue.slice(0, -1));
    return Number(v.unserializableValue); // NaN, Infinity, -Infinity, -0
  }
  return v.value;
}

/** One walk over one or more roots, sharing a seen-set so shared objects count once. */
class Walker {
  bytes = 0;
  objects = 0;
  boundaries = 0;
  privateFieldObjects = 0;
  readonly privateFields: boolean;
  readonly #seen = new Set<object>();
  readonly #roots = new Set<object>();
  readonly #stack: unknown[] = [];
  readonly #pending: object[] = [];
  readonly #maxNodes: number;
  readonly #boundary: (value: object) => boolean;
  readonly #exclude: Set<object>;
  readonly #reader: PrivateReader | null;

  constructor(options: SizeOptions) {
    this.#maxNodes = options.maxNodes ?? 500_000;
    this.#boundary = options.boundary ?? kernelBoundary;
    this.#exclude = new Set(options.exclude ?? []);
    this.#reader = options.privateFields === false ? null : PrivateReader.open();
    this.privateFields = this.#reader !== null;
  }

  /** Walk `root`, returning the bytes it added (objects already seen add nothing). */
  add(root: unknown): number {
    const before = this.bytes;
    if (root !== null && (typeof root === 'object' || typeof root === 'function')) this.#roots.add(root);
    this.#stack.push(root);
    this.#drain();
    return this.bytes - before;
  }

  close(): void {
    this.#reader?.close();
  }

  report(): SizeReport {
    return {
      bytes: this.bytes,
      objects: this.objects,
      boundaries: this.boundaries,
      privateFieldObjects: this.privateFieldObjects,
      privateFields: this.privateFields,
    };
  }

  #drain(): void {
    for (;;) {
      while (this.#stack.length > 0) this.#visit(this.#stack.pop());
      if (this.#pending.length === 0) return;
      this.#readPrivates(this.#pending.splice(0, this.#pending.length));
    }
  }

  #readPrivates(objects: object[]): void {
    const rows = (this.#reader as PrivateReader).read(objects);
    for (let i = 0; i < objects.length; i++) {
      const row = rows[i];
      if (row === undefined) continue;
      if (row === null) {
        const proto = Object.getPrototypeOf(objects[i]) as object | null;
        if (proto !== null) noPrivate.add(proto);
        continue;
      }
      this.privateFieldObjects++;
      this.bytes += SLOT * row.length;
      for (const v of row) this.#stack.push(v);
    }
  }

  #visit(v: unknown): void {
    switch (typeof v) {
      case 'string':
        this.bytes += stringBytes(v);
        return;
      case 'number':
        this.bytes += numberBytes(v);
        return;
      case 'bigint':
        this.bytes += 16 + 8 * Math.ceil(Math.max(1, v.toString(16).length) / 16);
        return;
      case 'object':
      case 'function':
        break;
      default:
        return; // undefined, booleans, symbols: shared, no storage of their own
    }
    if (v === null) return;
    const o = v as object;
    if (this.#seen.has(o)) return;
    this.#seen.add(o);
    if (!this.#roots.has(o) && (this.#exclude.has(o) || this.#boundary(o))) {
      this.boundaries++;
      return;
    }
    if (this.#seen.size > this.#maxNodes) throw new MemoryWalkLimitError(this.#maxNodes);
    this.objects++;
    if (typeof o === 'function') {
      this.bytes += FUNCTION_SIZE; // the closure's captured context is not followed
      return;
    }
    if (types.isProxy(o)) {
      this.boundaries++;
      this.bytes += OPAQUE_SIZE; // following it would run its traps
      return;
    }
    if (Array.isArray(o)) {
      this.bytes += ARRAY_HEADER + SLOT * o.length;
      for (let i = 0; i < o.length; i++) this.#stack.push(o[i]);
    } else if (o instanceof Map) {
      this.bytes += MAP_HEADER + MAP_ENTRY * o.size;
      for (const [k, item] of o) this.#stack.push(k, item);
    } else if (o instanceof Set) {
      this.bytes += MAP_HEADER + SET_ENTRY * o.size;
      for (const item of o) this.#stack.push(item);
    } else if (ArrayBuffer.isView(o)) {
      this.bytes += 64;
      this.#stack.push(o.buffer);
      return;
    } else if (o instanceof ArrayBuffer || types.isSharedArrayBuffer(o)) {
      this.bytes += 80 + (o as ArrayBuffer).byteLength;
      return;
    } else if (types.isPromise(o)) {
      this.bytes += PROMISE_SIZE; // its result and reactions are not visible
    } else if (
      types.isWeakMap(o) ||
      types.isWeakSet(o) ||
      o instanceof WeakRef ||
      o instanceof FinalizationRegistry
    ) {
      this.bytes += OPAQUE_SIZE; // weak: what it points at is not retained by it
      return;
    } else {
      this.bytes += OBJECT_HEADER;
    }
    if (!Array.isArray(o)) this.#ownProperties(o);
    if (this.#reader !== null) {
      const proto = Object.getPrototypeOf(o) as object | null;
      if (!PLAIN_PROTOS.has(proto) && !(proto !== null && noPrivate.has(proto))) this.#pending.push(o);
    }
  }

  #ownProperties(o: object): void {
    for (const key of Reflect.ownKeys(o)) {
      const d = Object.getOwnPropertyDescriptor(o, key);
      if (d === undefined) continue;
      this.bytes += SLOT;
      if ('value' in d) this.#stack.push(d.value);
      else {
        // Own accessors: count the getter and setter functions, never call them.
        if (d.get) this.#stack.push(d.get);
        if (d.set) this.#stack.push(d.set);
      }
    }
  }
}

/**
 * Estimated bytes retained by `root`: a deep walk with cycle detection (shared objects counted
 * once) that stops at `boundary` objects (default `kernelBoundary`) and reads private class
 * fields through the inspector. A `MemoryMeasurable` is measured through its `memoryRoots()`.
 * Throws E_MEMORY_WALK_LIMIT rather than return a truncated figure.
 */
export function sizeOf(root: unknown, options: SizeOptions = {}): SizeReport {
  checkSizeOptions(options);
  const walker = new Walker(options);
  try {
    if (isMeasurable(root)) for (const r of root.memoryRoots()) walker.add(r);
    else walker.add(root);
    return walker.report();
  } finally {
    walker.close();
  }
}

function isMeasurable(value: unknown): value is MemoryMeasurable {
  return (
    value !== null &&
    typeof value === 'object' &&
    typeof (value as { memoryRoots?: unknown }).memoryRoots === 'function'
  );
}

function checkSizeOptions(options: SizeOptions): void {
  if (options === null || typeof options !== 'object') {
    throw new InvalidArgumentError('size options', 'must be an object', options);
  }
  const { maxNodes, boundary, exclude, privateFields } = options;
  if (maxNodes !== undefined && !(Number.isSafeInteger(maxNodes) && maxNodes > 0)) {
    throw new InvalidArgumentError('options.maxNodes', 'must be a positive integer', maxNodes);
  }
  if (boundary !== undefined && typeof boundary !== 'function') {
    throw new InvalidArgumentError('options.boundary', 'must be a function', boundary);
  }
  if (exclude !== undefined && typeof (exclude as Iterable<object>)?.[Symbol.iterator] !== 'function') {
    throw new InvalidArgumentError('options.exclude', 'must be an iterable of objects', exclude);
  }
  if (privateFields !== undefined && typeof privateFields !== 'boolean') {
    throw new InvalidArgumentError('options.privateFields', 'must be a boolean', privateFields);
  }
}

// ---- one agent -----------------------------------------------------------------------------------

export interface AgentMemory extends SizeReport {
  /** Bytes of the agent's state. */
  stateBytes: number;
  /** Bytes of the queued messages (and their mailbox slots) not already counted in the state. */
  mailboxBytes: number;
  /** Bytes of `ctx.local` storage not already counted. */
  localsBytes: number;
  mailboxLength: number;
}

/**
 * The memory an agent holds by itself: its state, the messages waiting in its mailbox and its
 * `ctx.local` storage, walked together (shared objects counted once, state first). Kernel
 * bookkeeping (links, monitors, timers, the process record) and the behaviour's code are not
 * counted; refs to other agents count as a pointer.
 */
export function agentMemory(ref: AgentRef, options: SizeOptions = {}): AgentMemory {
  if (!(ref instanceof AgentRef)) throw new InvalidArgumentError('agent', 'must be an AgentRef', ref);
  checkSizeOptions(options);
  const proc = localProcess(ref) as Process | undefined;
  if (proc === undefined) {
    throw new InvalidArgumentError('agent', 'must be a ref made by a runtime on this thread', ref);
  }
  if (proc.status === Status.Dead) throw new MemoryTargetGoneError(String(ref), 'it has exited');
  const walker = new Walker(options);
  try {
    const stateBytes = walker.add(proc.state);
    let mailboxBytes = 0;
    const box = proc.mailbox;
    if (box !== null) {
      const items = box.toArray();
      mailboxBytes += 32 + SLOT * items.length; // the ring buffer: two slots per message
      for (let i = 1; i < items.length; i += 2) mailboxBytes += walker.add(items[i]);
    }
    let localsBytes = 0;
    const x = proc.x;
    if (x !== null) {
      if (x.localKey !== null) localsBytes += walker.add(x.localValue);
      if (x.locals !== null) localsBytes += walker.add(x.locals);
    }
    const report = walker.report();
    return {
      ...report,
      bytes: stateBytes + mailboxBytes + localsBytes,
      stateBytes,
      mailboxBytes,
      localsBytes,
      mailboxLength: proc.mailboxLength,
    };
  } finally {
    walker.close();
  }
}

// ---- growth --------------------------------------------------------------------------------------

/**
 * What to measure: an agent ref (its state, mailbox and locals), a service or any object (its own
 * retained structures, by a size walk), a `MemoryMeasurable`, a function returning the object graph
 * to measure (an array result: each element is a root), or `'process'` (the process heap after GC:
 * process-wide, for comparison only).
 */
export type GrowthTarget = AgentRef | MemoryMeasurable | object | (() => unknown) | 'process';

export interface GrowthOptions extends SizeOptions {
  /** The forced GC. Default `globalThis.gc` (node --expose-gc); ExposeGcRequiredError (E_BENCH_GC_UNAVAILABLE) without one. */
  gc?: () => void;
  /** Iterations run before the first measurement (fills caches, histories, pools). Default 0. */
  warmup?: number;
  /** Measurements taken, evenly spaced, besides the one before. Default min(iterations, 10). */
  samples?: number;
  /**
   * Awaited before each measurement, after the workload (say, until the agents have drained their
   * mailboxes). Default: one turn of the event loop.
   */
  settle?: () => unknown;
  /** A label for reports. Default: a description of the target. */
  label?: string;
}

export interface GrowthSample {
  /** Iterations run (after warm-up) when this was taken. */
  iteration: number;
  bytes: number;
  /** Objects the walk visited (0 in process mode). */
  objects: number;
  /** For agents: the split of `bytes`. */
  agent?: { stateBytes: number; mailboxBytes: number; localsBytes: number; mailboxLength: number };
}

export interface GrowthResult {
  label: string;
  /** agent, service (an object or MemoryMeasurable), graph (a function's result), or process. */
  scope: 'agent' | 'service' | 'graph' | 'process';
  /** `walk`: the target's own structures (sizeOf); `heap`: V8's used heap, process-wide. */
  method: 'walk' | 'heap';
  iterations: number;
  warmup: number;
  beforeBytes: number;
  afterBytes: number;
  /** afterBytes - beforeBytes. */
  totalBytes: number;
  /** totalBytes / iterations. */
  bytesPerIteration: number;
  /** Least-squares slope of bytes over iterations across every sample: steady growth per iteration. */
  slopeBytesPerIteration: number;
  samples: GrowthSample[];
  /** Whether private class fields were read (walk method). */
  privateFields: boolean;
}

/** The process's `gc` if node runs with --expose-gc, else undefined. */
export function exposedGc(): (() => void) | undefined {
  const gc = (globalThis as { gc?: unknown }).gc;
  return typeof gc === 'function' ? (gc as () => void) : undefined;
}

/**
 * Run `workload` `iterations` times (awaited one after another, after `warmup` more) and measure
 * the target before, at `samples` points and after, each time after a forced GC. Growth is
 * reported in total, per iteration, and as the slope across the samples.
 */
export async function measureGrowth(
  target: GrowthTarget,
  workload: (iteration: number) => unknown,
  iterations: number,
  options: GrowthOptions = {},
): Promise<GrowthResult> {
  if (options === null || typeof options !== 'object') {
    throw new InvalidArgumentError('measureGrowth options', 'must be an object', options);
  }
  const gc = options.gc ?? exposedGc();
  if (options.gc !== undefined && typeof options.gc !== 'function') {
    throw new InvalidArgumentError('options.gc', 'must be a function', options.gc);
  }
  if (typeof workload !== 'function')
    throw new InvalidArgumentError('workload', 'must be a function', workload);
  if (!(Number.isSafeInteger(iterations) && iterations > 0)) {
    throw new InvalidArgumentError('iterations', 'must be a positive integer', iterations);
  }
  const warmup = options.warmup ?? 0;
  if (!(Number.isSafeInteger(warmup) && warmup >= 0)) {
    throw new InvalidArgumentError('options.warmup', 'must be a non-negative integer', warmup);
  }
  const samples = options.samples ?? Math.min(iterations, 10);
  if (!(Number.isSafeInteger(samples) && samples >= 1 && samples <= iterations)) {
    throw new InvalidArgumentError(
      'options.samples',
      `must be an integer from 1 to iterations (${iterations})`,
      samples,
    );
  }
  if (options.settle !== undefined && typeof options.settle !== 'function') {
    throw new InvalidArgumentError('options.settle', 'must be a function', options.settle);
  }
  if (options.label !== undefined && typeof options.label !== 'string') {
    throw new InvalidArgumentError('options.label', 'must be a string', options.label);
  }
  checkSizeOptions(options);
  const measure = measurer(target, options);
  if (gc === undefined) throw new ExposeGcRequiredError('measureGrowth');
  const settle = options.settle ?? (() => new Promise<void>((resolve) => setImmediate(resolve)));

  const take = async (iteration: number): Promise<GrowthSample> => {
    await settle();
    gc();
    // Let finalizers and weak-ref clearing run, then collect what they released.
    await new Promise<void>((resolve) => setImmediate(resolve));
    gc();
    return { iteration, ...measure.sample() };
  };

  let i = 0;
  for (; i < warmup; i++) await workload(i);
  const taken: GrowthSample[] = [await take(0)];
  const marks = new Set<number>();
  for (let s = 1; s <= samples; s++) marks.add(Math.round((s * iterations) / samples));
  for (let n = 1; n <= iterations; n++) {
    await workload(i++);
    if (marks.has(n)) taken.push(await take(n));
  }
  const before = taken[0] as GrowthSample;
  const after = taken[taken.length - 1] as GrowthSample;
  const totalBytes = after.bytes - before.bytes;
  return {
    label: options.label ?? measure.label,
    scope: measure.scope,
    method: measure.scope === 'process' ? 'heap' : 'walk',
    iterations,
    warmup,
    beforeBytes: before.bytes,
    afterBytes: after.bytes,
    totalBytes,
    bytesPerIteration: totalBytes / iterations,
    slopeBytesPerIteration: slope(taken),
    samples: taken,
    privateFields: measure.scope === 'process' ? false : measure.privateFields(),
  };
}

interface Measurer {
  label: string;
  scope: GrowthResult['scope'];
  sample(): Omit<GrowthSample, 'iteration'>;
  privateFields(): boolean;
}

function measurer(target: GrowthTarget, options: SizeOptions): Measurer {
  let privateFields = options.privateFields !== false;
  const size: SizeOptions = {
    ...(options.maxNodes === undefined ? {} : { maxNodes: options.maxNodes }),
    ...(options.boundary === undefined ? {} : { boundary: options.boundary }),
    ...(options.exclude === undefined ? {} : { exclude: [...options.exclude] }),
    ...(options.privateFields === undefined ? {} : { privateFields: options.privateFields }),
  };
  if (target === 'process') {
    return {
      label: 'process heap (process-wide)',
      scope: 'process',
      sample: () => ({ bytes: process.memoryUsage().heapUsed, objects: 0 }),
      privateFields: () => false,
    };
  }
  if (target instanceof AgentRef) {
    if (localProcess(target) === undefined) {
      throw new InvalidArgumentError('target', 'must be a ref made by a runtime on this thread', target);
    }
    const label = `agent ${String(target)}`;
    return {
      label,
      scope: 'agent',
      sample: () => {
        const m = agentMemory(target, size);
        privateFields = m.privateFields;
        return {
          bytes: m.bytes,
          objects: m.objects,
          agent: {
            stateBytes: m.stateBytes,
            mailboxBytes: m.mailboxBytes,
            localsBytes: m.localsBytes,
            mailboxLength: m.mailboxLength,
          },
        };
      },
      privateFields: () => privateFields,
    };
  }
  if (typeof target === 'function') {
    const f = target as () => unknown;
    return {
      label: `graph of ${f.name || 'a function'}`,
      scope: 'graph',
      sample: () => {
        const graph = f();
        const roots = Array.isArray(graph) ? graph : [graph];
        const r = sizeOf({ memoryRoots: () => roots }, size);
        privateFields = r.privateFields;
        return { bytes: r.bytes, objects: r.objects };
      },
      privateFields: () => privateFields,
    };
  }
  if (target !== null && typeof target === 'object') {
    const name = (target as { constructor?: { name?: string } }).constructor?.name;
    return {
      label: `service ${name || 'object'}`,
      scope: 'service',
      sample: () => {
        const r = sizeOf(target, size);
        privateFields = r.privateFields;
        return { bytes: r.bytes, objects: r.objects };
      },
      privateFields: () => privateFields,
    };
  }
  throw new InvalidArgumentError(
    'target',
    "must be an AgentRef, an object, a MemoryMeasurable, a function returning the graph, or 'process'",
    target,
  );
}

/** Least-squares slope of bytes over iteration (0 with fewer than two distinct iterations). */
function slope(samples: readonly GrowthSample[]): number {
  const n = samples.length;
  if (n < 2) return 0;
  let sx = 0;
  let sy = 0;
  for (const s of samples) {
    sx += s.iteration;
    sy += s.bytes;
  }
  const mx = sx / n;
  const my = sy / n;
  let num = 0;
  let den = 0;
  for (const s of samples) {
    num += (s.iteration - mx) * (s.bytes - my);
    den += (s.iteration - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}
