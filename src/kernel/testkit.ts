/**
 * The test kit (`mabeam/testkit`): a probe agent that records what it receives, OTP-style
 * `expectMessage` / `refuteMessage`, and helpers that wait for exits, restarts and telemetry
 * events. Tests wait for events, never for time: every timeout here is a real-time guard against a
 * test hanging, not something a test may pass because of.
 */
import { inspect } from 'node:util';
import { behaviour, reply } from './behaviour.js';
import type { AgentContext, Name } from './context.js';
import { describe } from './errors.js';
import { AgentRef, type AnyRef, isPid, type Pid, pidEquals } from './pid.js';
import { Runtime, type RuntimeOptions, type SpawnOptions } from './runtime.js';
import type { EventName, Measurements, Metadata } from './telemetry.js';

// ---- patterns ----------------------------------------------------------------------------------

/**
 * What `expectMessage` and `refuteMessage` match against: a predicate, or a deep-partial value.
 * Plain objects match when every key of the pattern matches the value's key (recursively); arrays
 * match elementwise with the same length; pids and refs match the same agent (pidEquals); a
 * function nested in a pattern is a predicate on that part of the value; anything else matches by
 * `Object.is`.
 */
// biome-ignore lint/suspicious/noExplicitAny: patterns range over every message shape
export type Pattern = ((message: any) => boolean) | unknown;

/** True when `value` matches `pattern` (see Pattern). */
export function matches(pattern: Pattern, value: unknown): boolean {
  if (typeof pattern === 'function') return (pattern as (v: unknown) => boolean)(value) === true;
  if (pattern === null || typeof pattern !== 'object') return Object.is(pattern, value);
  if (pattern instanceof AgentRef) return isPid(value) && pidEquals(pattern, value);
  if (Array.isArray(pattern)) {
    if (!Array.isArray(value) || value.length !== pattern.length) return false;
    for (let i = 0; i < pattern.length; i++) if (!matches(pattern[i], value[i])) return false;
    return true;
  }
  const proto = Object.getPrototypeOf(pattern);
  if (proto !== Object.prototype && proto !== null) return Object.is(pattern, value);
  if (value === null || (typeof value !== 'object' && typeof value !== 'function')) return false;
  if (value instanceof AgentRef && isPid(pattern)) return pidEquals(pattern as Pid, value);
  const v = value as Record<PropertyKey, unknown>;
  for (const key of Reflect.ownKeys(pattern)) {
    if (!(key in v)) return false;
    if (!matches((pattern as Record<PropertyKey, unknown>)[key], v[key])) return false;
  }
  return true;
}

function show(value: unknown): string {
  if (typeof value === 'function') return `[predicate ${value.name || 'anonymous'}]`;
  return inspect(value, { depth: 6, breakLength: Number.POSITIVE_INFINITY, maxArrayLength: 20 });
}

// ---- probe -------------------------------------------------------------------------------------

export type ProbeKind = 'call' | 'cast' | 'info';

/** One message the probe received. */
export interface Received {
  readonly kind: ProbeKind;
  readonly message: unknown;
}

/** What a probe answers to calls: a value, or a function of the call message. */
export type ProbeReply = unknown;

export interface ProbeOptions {
  /** Register the probe under this name. */
  name?: Name;
  /** Reply to calls (default `'ok'`). A function is called with the message and its result replied. */
  reply?: ProbeReply;
  /** Start with exits trapped, so links deliver EXIT messages instead of killing the probe. */
  trapExit?: boolean;
  /** Other spawn options (priority, mailbox). */
  spawn?: Omit<SpawnOptions, 'name' | 'trapExit' | 'link'>;
}

export interface ExpectOptions {
  /** Real-time guard in ms (default 1000). */
  timeout?: number;
  /** Only consider messages of this kind. */
  kind?: ProbeKind;
}

export interface RefuteOptions {
  /** How long (real ms) no matching message may arrive (default 50). */
  within?: number;
  /** Only consider messages of this kind. */
  kind?: ProbeKind;
}

export interface Probe {
  /** The probe agent. */
  readonly ref: AnyRef;
  /**
   * The probe as an agent context, to act as the probe: `probe.ctx.monitor(x)`,
   * `probe.ctx.link(x)`, `probe.ctx.spawn(...)` (the probe becomes the parent), `probe.ctx.call(...)`.
   */
  readonly ctx: AgentContext;
  /** Everything received, in order (consumed or not). */
  readonly received: readonly Received[];
  /** Received and not yet consumed by `expectMessage`, in order. */
  readonly pending: readonly Received[];
  /**
   * Resolve with the first pending message matching `pattern` (waiting for it if needed), and
   * consume it. On timeout, reject with an error listing what was received.
   */
  // biome-ignore lint/suspicious/noExplicitAny: messages are whatever the test sent
  expectMessage<T = any>(pattern: Pattern, options?: ExpectOptions): Promise<T>;
  /**
   * Resolve if no message matching `pattern` is pending or arrives within `within` ms; reject if one
   * does. A real-time window: it proves only that nothing arrived in that window.
   */
  refuteMessage(pattern: Pattern, options?: RefuteOptions): Promise<void>;
  /** Change what calls are answered with. */
  setReply(reply: ProbeReply): void;
  /** Forget pending messages (the history in `received` stays). */
  clear(): void;
}

interface Waiter {
  pattern: Pattern;
  kind: ProbeKind | undefined;
  /** Called with the entry; returns true when it took it. */
  offer(entry: Received): boolean;
  fail(error: Error): void;
}

class ProbeRecorder {
  readonly received: Received[] = [];
  pending: Received[] = [];
  waiters: Waiter[] = [];
  replyWith: ProbeReply;
  exitReason: { reason: unknown } | null = null;

  constructor(replyWith: ProbeReply) {
    this.replyWith = replyWith;
  }

  record(kind: ProbeKind, message: unknown): void {
    const entry: Received = { kind, message };
    this.received.push(entry);
    // A copy: offer and fail remove the waiter from the list.
    for (const w of [...this.waiters]) {
      if (w.kind !== undefined && w.kind !== kind) continue;
      let hit: boolean;
      try {
        hit = matches(w.pattern, message);
      } catch (error) {
        w.fail(error instanceof Error ? error : new Error(String(error)));
        continue;
      }
      if (hit && w.offer(entry)) return;
    }
    this.pending.push(entry);
  }

  replyTo(message: unknown): unknown {
    const r = this.replyWith;
    return typeof r === 'function' ? (r as (m: unknown) => unknown)(message) : r;
  }

  take(pattern: Pattern, kind: ProbeKind | undefined): Received | undefined {
    const i = this.pending.findIndex(
      (e) => (kind === undefined || e.kind === kind) && matches(pattern, e.message),
    );
    if (i < 0) return undefined;
    const [entry] = this.pending.splice(i, 1);
    return entry;
  }

  describeReceived(): string {
    const lines: string[] = [];
    const consumed = this.received.length - this.pending.length;
    if (this.pending.length === 0) lines.push('  pending: (none)');
    else {
      lines.push('  pending:');
      for (const e of this.pending) lines.push(`    ${e.kind}: ${show(e.message)}`);
    }
    if (consumed > 0) {
      lines.push(`  already consumed by expectMessage (${consumed}):`);
      for (const e of this.received) {
        if (!this.pending.includes(e)) lines.push(`    ${e.kind}: ${show(e.message)}`);
      }
    }
    if (this.exitReason !== null)
      lines.push(`  the probe exited with reason ${show(this.exitReason.reason)}`);
    return lines.join('\n');
  }
}

const ProbeAgent = behaviour<
  { recorder: ProbeRecorder; onInit: (ctx: AgentContext) => void },
  ProbeRecorder,
  unknown,
  unknown,
  unknown,
  unknown
>({
  init({ recorder, onInit }, ctx) {
    onInit(ctx as AgentContext);
    return recorder;
  },
  handleCall(msg, _from, rec) {
    rec.record('call', msg);
    return reply(rec.replyTo(msg), rec);
  },
  handleCast(msg, rec) {
    rec.record('cast', msg);
    return rec;
  },
  handleInfo(msg, rec) {
    rec.record('info', msg);
    return rec;
  },
});

/** Spawn a probe agent that records every call, cast and info it receives. */
export function probe(runtime: Runtime, options: ProbeOptions = {}): Probe {
  const recorder = new ProbeRecorder(Object.hasOwn(options, 'reply') ? options.reply : 'ok');
  let context: AgentContext | undefined;
  const spawnOptions: SpawnOptions = { ...options.spawn };
  if (options.name !== undefined) spawnOptions.name = options.name;
  if (options.trapExit !== undefined) spawnOptions.trapExit = options.trapExit;
  const ref = runtime.spawnSync(
    ProbeAgent,
    {
      recorder,
      onInit: (ctx) => {
        context = ctx;
      },
    },
    spawnOptions,
  );
  const label = options.name === undefined ? `probe ${ref}` : `probe ${ref} (${describe(options.name)})`;
  void runtime.awaitExit(ref).then((reason) => {
    recorder.exitReason = { reason };
    const waiters = recorder.waiters;
    recorder.waiters = [];
    for (const w of waiters) {
      w.fail(
        new Error(
          `${label} exited with reason ${show(reason)} while waiting for a message matching ` +
            `${show(w.pattern)}; received:\n${recorder.describeReceived()}`,
        ),
      );
    }
  });

  return {
    ref,
    ctx: context as AgentContext,
    get received() {
      return recorder.received;
    },
    get pending() {
      return recorder.pending;
    },
    setReply(r) {
      recorder.replyWith = r;
    },
    clear() {
      recorder.pending = [];
    },
    expectMessage<T>(pattern: Pattern, opts: ExpectOptions = {}): Promise<T> {
      const timeout = opts.timeout ?? 1000;
      const kind = opts.kind;
      const found = recorder.take(pattern, kind);
      if (found !== undefined) return Promise.resolve(found.message as T);
      return new Promise<T>((resolve, reject) => {
        const waiter: Waiter = {
          pattern,
          kind,
          offer(entry) {
            done();
            resolve(entry.message as T);
            return true;
          },
          fail(error) {
            done();
            reject(error);
          },
        };
        const timer = setTimeout(() => {
          done();
          reject(
            new Error(
              `${label}: no ${kind ?? ''}${kind === undefined ? '' : ' '}message matching ${show(pattern)} ` +
                `within ${timeout} ms; received:\n${recorder.describeReceived()}`,
            ),
          );
        }, timeout);
        function done(): void {
          clearTimeout(timer);
          const i = recorder.waiters.indexOf(waiter);
          if (i >= 0) recorder.waiters.splice(i, 1);
        }
        if (recorder.exitReason !== null) {
          waiter.fail(
            new Error(
              `${label} has exited (reason ${show(recorder.exitReason.reason)}) and will receive no ` +
                `message matching ${show(pattern)}; received:\n${recorder.describeReceived()}`,
            ),
          );
          return;
        }
        recorder.waiters.push(waiter);
      });
    },
    refuteMessage(pattern, opts = {}) {
      const within = opts.within ?? 50;
      const kind = opts.kind;
      const unexpected = (message: unknown) =>
        new Error(`${label}: received ${show(message)}, which matches the refuted pattern ${show(pattern)}`);
      const already = recorder.pending.find(
        (e) => (kind === undefined || e.kind === kind) && matches(pattern, e.message),
      );
      if (already !== undefined) return Promise.reject(unexpected(already.message));
      return new Promise((resolve, reject) => {
        const waiter: Waiter = {
          pattern,
          kind,
          // Leave the message pending (return false): refuting does not consume.
          offer(entry) {
            done();
            reject(unexpected(entry.message));
            return false;
          },
          fail(error) {
            done();
            if (recorder.exitReason !== null) resolve();
            else reject(error);
          },
        };
        const timer = setTimeout(() => {
          done();
          resolve();
        }, within);
        function done(): void {
          clearTimeout(timer);
          const i = recorder.waiters.indexOf(waiter);
          if (i >= 0) recorder.waiters.splice(i, 1);
        }
        recorder.waiters.push(waiter);
      });
    },
  };
}

// ---- waiting for events ------------------------------------------------------------------------

export interface GuardOptions {
  /** Real-time guard in ms (default 5000). */
  timeout?: number;
}

const DEFAULT_GUARD_MS = 5000;

/** Resolve with `ref`'s exit reason; reject with a clear error if it has not exited within the guard. */
export function awaitExit(
  runtime: Runtime,
  ref: AnyRef | Pid | Name,
  options: GuardOptions = {},
): Promise<unknown> {
  const timeout = options.timeout ?? DEFAULT_GUARD_MS;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      const info = runtime.info(ref, { stateSize: false });
      const where =
        info === undefined
          ? 'it is not known to the runtime'
          : `status ${info.status}, mailbox ${info.mailboxLength}`;
      reject(new Error(`awaitExit: ${describe(ref)} did not exit within ${timeout} ms (${where})`));
    }, timeout);
    runtime.awaitExit(ref).then(
      (reason) => {
        clearTimeout(timer);
        resolve(reason);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

let handlerSeq = 0;
function handlerId(what: string): string {
  handlerSeq++;
  return `mabeam.testkit.${what}.${handlerSeq}.${globalThis.crypto.randomUUID()}`;
}

const SPAWN_EVENT = ['mabeam', 'agent', 'spawn'] as const;

/**
 * Resolve with the ref `name` points to once it names a live agent other than `oldRef` (any live
 * agent when `oldRef` is omitted). Re-checks on every spawn telemetry event (and once more after
 * the event, for names registered right after spawning), never by polling.
 */
export function awaitRestart(
  runtime: Runtime,
  name: Name,
  oldRef?: AnyRef | Pid,
  options: GuardOptions = {},
): Promise<AnyRef> {
  const timeout = options.timeout ?? DEFAULT_GUARD_MS;
  const current = (): AnyRef | undefined => {
    const ref = runtime.whereis(name);
    if (ref === undefined || !runtime.isAlive(ref)) return undefined;
    if (oldRef !== undefined && pidEquals(ref, oldRef)) return undefined;
    return ref;
  };
  const now = current();
  if (now !== undefined) return Promise.resolve(now);
  return new Promise((resolve, reject) => {
    const id = handlerId('awaitRestart');
    let settled = false;
    const check = () => {
      if (settled) return;
      const ref = current();
      if (ref === undefined) return;
      finish();
      resolve(ref);
    };
    const timer = setTimeout(() => {
      finish();
      const ref = runtime.whereis(name);
      reject(
        new Error(
          `awaitRestart: ${describe(name)} did not point to a new live agent within ${timeout} ms ` +
            `(now ${ref === undefined ? 'unregistered' : describe(ref)}${oldRef === undefined ? '' : `, old ${describe(oldRef)}`})`,
        ),
      );
    }, timeout);
    function finish(): void {
      settled = true;
      clearTimeout(timer);
      runtime.telemetry.detach(id);
    }
    runtime.telemetry.attach(id, SPAWN_EVENT, () => {
      check();
      setImmediate(check);
    });
  });
}

export interface TelemetryEvent {
  measurements: Measurements;
  metadata: Metadata;
}

/**
 * Resolve with the first `eventName` event (for which `predicate` holds) emitted after this call.
 * Call it before doing what emits the event.
 */
export function awaitTelemetry(
  runtime: Runtime,
  eventName: EventName,
  predicate?: (measurements: Measurements, metadata: Metadata) => boolean,
  options: GuardOptions = {},
): Promise<TelemetryEvent> {
  const timeout = options.timeout ?? DEFAULT_GUARD_MS;
  return new Promise((resolve, reject) => {
    const id = handlerId('awaitTelemetry');
    let seen = 0;
    const timer = setTimeout(() => {
      runtime.telemetry.detach(id);
      reject(
        new Error(
          `awaitTelemetry: no ${eventName.join('.')} event${predicate === undefined ? '' : ' matching the predicate'} ` +
            `within ${timeout} ms (${seen} such event(s) seen)`,
        ),
      );
    }, timeout);
    runtime.telemetry.attach(id, eventName, (_event, measurements, metadata) => {
      seen++;
      let hit: boolean;
      try {
        hit = predicate === undefined || predicate(measurements, metadata);
      } catch (error) {
        clearTimeout(timer);
        runtime.telemetry.detach(id);
        reject(error);
        return;
      }
      if (!hit) return;
      clearTimeout(timer);
      runtime.telemetry.detach(id);
      resolve({ measurements, metadata });
    });
  });
}

/** Run `fn` with a fresh runtime and always shut the runtime down afterwards. */
export async function withRuntime<T>(
  fn: (runtime: Runtime) => T | Promise<T>,
  options?: RuntimeOptions,
): Promise<T> {
  const runtime = new Runtime(options);
  try {
    return await fn(runtime);
  } finally {
    await runtime.shutdown();
  }
}
