/**
 * The event store: an append-only log behind one writer agent that group-commits.
 *
 * Writes. `append` and `appendBatch` check and encode their events on the caller's side, put a
 * request on the store's queue and ask the writer for a flush (in a microtask, so that every append
 * of the current synchronous run, or of the current scheduler slice when agents append, is queued
 * first). The writer agent takes everything queued (up to `maxBatch` events, never splitting one
 * request) and commits it in ONE transaction, then settles each request's promise and hands the
 * committed events to subscribers. Appends that arrive while the writer is busy wait for the next
 * transaction: that is the group commit, and since only the writer ever writes, concurrent
 * appenders never meet "database is locked". Reads (`query`) go straight to the backend on the
 * caller's thread: no mailbox in the read path.
 *
 * Crash policy. The queue belongs to the store, not to the writer, and a commit is one synchronous
 * step (the embedded backends are synchronous), so the writer can die only between commits, never
 * inside one. When it dies (killed, or crashed), the store's supervisor restarts it and the new
 * writer commits whatever is still queued: callers of a killed writer do not see an error, their
 * appends are committed late. Only if the supervisor gives up (more restarts than its intensity
 * allows) do the queued appends reject with StoreUnavailableError (E_STORE_UNAVAILABLE), and those
 * were never committed, so they are safe to retry. A request whose transaction the backend refuses
 * rejects with StoreWriteError (E_STORE_WRITE_FAILED); when a group fails, each request of it is
 * retried alone, so one bad request cannot fail its neighbours. No outcome is ambiguous: a promise
 * that resolved was committed, one that rejected was not.
 */
import {
  type AgentContext,
  type AnyRef,
  behaviour,
  InvalidArgumentError,
  isNormalExit,
  isPid,
  type Pid,
  type RestartIntensity,
  Runtime,
  Supervisor,
  type SupervisorRef,
} from '../../kernel/index.js';
import { checkPruneBound, type PreparedEvent, prepareEvent, resolveQuery, toStoredEvent } from './codec.js';
import { StoreClosedError, StoreUnavailableError, StoreWriteError } from './errors.js';
import { MemoryEventLog } from './memory.js';
import { SqliteEventLog, type SqliteSynchronous } from './sqlite.js';
import {
  LogSubscription,
  SUBSCRIBE_DEFAULTS,
  type SubscribeOptions,
  type Subscriber,
  type Subscription,
  type SubscriptionHost,
} from './subscription.js';
import type { EventBackend, EventInput, EventQuery, EventRecord, PruneBound, StoredEvent } from './types.js';

/** Where the store gets its timestamps. Epoch milliseconds by default (`Date.now`). */
export interface TimestampClock {
  now(): number;
}

export interface EventStoreOptions {
  /** A SQLite file for the log (created if missing): the embedded default backend. */
  readonly path?: string;
  /** A backend instead of `path`, for example `new MemoryEventLog()`. The store takes ownership (closes it). */
  readonly backend?: EventBackend;
  /** With `path`: `full` (default, durable against power loss) or `normal` (against process death). */
  readonly synchronous?: SqliteSynchronous;
  /**
   * Timestamps of committed events. Default: wall-clock epoch ms. Not the runtime's clock, which is
   * monotonic from process start and so means nothing once the log outlives the process.
   */
  readonly clock?: TimestampClock;
  /** Names the store in telemetry and errors. Default: the backend's location. */
  readonly name?: string;
  /** Most events per transaction (a larger appendBatch still commits whole). Default 1000. */
  readonly maxBatch?: number;
  /** The writer's supervisor's restart intensity. Default: the kernel's (3 restarts in 5000 ms). */
  readonly restart?: RestartIntensity;
}

/** Where a store starts: from a runtime (top level), or from an agent (its supervisor is linked to it). */
export type StoreSite = Runtime | Pick<AgentContext, 'runtime' | 'spawnLink'>;

/** Telemetry event emitted after every commit, with measurements `{events, duration}` (ms). */
export const COMMIT_EVENT = Object.freeze(['mabeam', 'event_store', 'commit'] as const);
/** Telemetry event emitted when a subscriber's handler throws (its subscription ends). */
export const SUBSCRIBER_FAILED_EVENT = Object.freeze([
  'mabeam',
  'event_store',
  'subscriber',
  'failed',
] as const);

export const EVENT_STORE_DEFAULTS = Object.freeze({
  maxBatch: 1000,
  synchronous: 'full' as SqliteSynchronous,
});

const OPTION_KEYS = new Set(['path', 'backend', 'synchronous', 'clock', 'name', 'maxBatch', 'restart']);
const SUBSCRIBE_KEYS = new Set(['pageSize', 'maxBuffer']);
const WALL_CLOCK: TimestampClock = { now: () => Date.now() };

const FLUSH: unique symbol = Symbol('mabeam.event_store.flush');

/** One queued write: events to append (resolving with the stored events) or a prune. */
interface WriteRequest {
  readonly events: readonly PreparedEvent[] | null;
  readonly prune: PruneBound | null;
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

/**
 * The state shared by the store's handle and its writer agent (which is restarted with the same
 * core). Not exported from the package.
 */
class StoreCore implements SubscriptionHost {
  readonly name: string;
  readonly runtime: Runtime;
  readonly backend: EventBackend;
  readonly clock: TimestampClock;
  readonly maxBatch: number;
  readonly subs = new Set<LogSubscription>();
  supervisor: SupervisorRef | undefined;
  writer: AnyRef | undefined;
  /** Set once close() was called: new writes and reads are refused. */
  closing = false;
  /** Set when the store is finished (closed, or its writer gone for good): why it refuses. */
  failure: Error | undefined;
  #queue: WriteRequest[] = [];
  #head = 0;
  #queuedEvents = 0;
  #flushRequested = false;
  #nextSubscription = 1;

  constructor(
    name: string,
    runtime: Runtime,
    backend: EventBackend,
    clock: TimestampClock,
    maxBatch: number,
  ) {
    this.name = name;
    this.runtime = runtime;
    this.backend = backend;
    this.clock = clock;
    this.maxBatch = maxBatch;
  }

  get queuedEvents(): number {
    return this.#queuedEvents;
  }

  /** Why a new operation is refused now, if it is. */
  refusal(operation: string): Error | undefined {
    if (this.closing || this.failure instanceof StoreClosedError)
      return new StoreClosedError(this.name, operation);
    return this.failure;
  }

  enqueue(request: WriteRequest): void {
    this.#queue.push(request);
    if (request.events !== null) this.#queuedEvents += request.events.length;
    this.#requestFlush();
  }

  // ---- the writer's side -----------------------------------------------------------------------

  attachWriter(writer: AnyRef): void {
    this.writer = writer;
    this.#flushRequested = false;
    // Whatever a dead writer left queued is this one's first job.
    if (this.#head < this.#queue.length) this.#requestFlush();
  }

  detachWriter(writer: AnyRef): void {
    if (this.writer?.equals(writer)) {
      this.writer = undefined;
      this.#flushRequested = false;
    }
  }

  #requestFlush(): void {
    if (this.#flushRequested) return;
    this.#flushRequested = true;
    queueMicrotask(this.#sendFlush);
  }

  readonly #sendFlush = (): void => {
    const writer = this.writer;
    // No writer (it is being restarted): its successor flushes on start (attachWriter).
    if (writer === undefined || !this.runtime.send(writer, FLUSH)) this.#flushRequested = false;
  };

  /** The writer's FLUSH: commit one group (or run one prune), then ask for more if more is queued. */
  flush(): void {
    this.#flushRequested = false;
    this.#flushOnce();
    if (this.#head < this.#queue.length) this.#requestFlush();
  }

  /** Commit everything queued (orderly shutdown of the writer). */
  flushAll(): void {
    while (this.#head < this.#queue.length) this.#flushOnce();
  }

  #flushOnce(): void {
    const queue = this.#queue;
    const first = queue[this.#head];
    if (first === undefined) return;
    if (first.prune !== null) {
      this.#head++;
      this.#compact();
      this.#runPrune(first, first.prune);
      return;
    }
    // A group: consecutive append requests up to maxBatch events (always at least one request).
    const group: WriteRequest[] = [];
    let events = 0;
    while (this.#head < queue.length) {
      const req = queue[this.#head] as WriteRequest;
      if (req.events === null) break;
      if (group.length > 0 && events + req.events.length > this.maxBatch) break;
      group.push(req);
      events += req.events.length;
      this.#head++;
    }
    this.#queuedEvents -= events;
    this.#compact();
    this.#commit(group);
  }

  #compact(): void {
    if (this.#head === this.#queue.length) {
      this.#queue = [];
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
  }

  /** One transaction for the group; each request settles with its own slice of the result. */
  #commit(group: readonly WriteRequest[]): void {
    const backend = this.backend;
    const runtime = this.runtime;
    const tel = runtime.telemetry;
    const started = tel.enabled ? runtime.clock.now() : 0;
    const records: EventRecord[] = [];
    try {
      const now = this.clock.now();
      if (typeof now !== 'number' || !Number.isFinite(now)) {
        throw new TypeError(`the store's clock returned ${String(now)}, not a finite timestamp`);
      }
      // Timestamps never go back along seq, even when the wall clock does.
      const timestamp = Math.max(now, backend.lastTimestamp);
      let seq = backend.lastSeq;
      for (const req of group) {
        for (const e of req.events as readonly PreparedEvent[]) {
          records.push({
            seq: ++seq,
            type: e.type,
            data: e.data,
            timestamp,
            correlationId: e.correlationId,
            causationId: e.causationId,
            metadata: e.metadata,
          });
        }
      }
      backend.append(records);
    } catch (error) {
      if (group.length === 1) (group[0] as WriteRequest).reject(new StoreWriteError(this.name, error));
      // Isolate the request that failed: each one again, alone.
      else for (const req of group) this.#commit([req]);
      return;
    }
    const stored = records.map(toStoredEvent);
    let i = 0;
    for (const req of group) {
      const n = (req.events as readonly PreparedEvent[]).length;
      req.resolve(stored.slice(i, i + n));
      i += n;
    }
    for (const sub of this.subs) sub.offer(stored);
    if (tel.enabled) {
      tel.execute(
        COMMIT_EVENT,
        { events: records.length, duration: runtime.clock.now() - started },
        {
          store: this.name,
          backend: backend.kind,
          requests: group.length,
          firstSeq: (records[0] as EventRecord).seq,
          lastSeq: (records[records.length - 1] as EventRecord).seq,
        },
      );
    }
  }

  #runPrune(req: WriteRequest, bound: PruneBound): void {
    let removed: number;
    try {
      removed = this.backend.prune(bound);
    } catch (error) {
      req.reject(new StoreWriteError(this.name, error));
      return;
    }
    req.resolve(removed);
  }

  // ---- subscriptions ---------------------------------------------------------------------------

  subscribe(fromSeq: number, subscriber: Subscriber, options: { pageSize: number; maxBuffer: number }) {
    const sub = new LogSubscription(this, this.#nextSubscription++, fromSeq, subscriber, options);
    this.subs.add(sub);
    sub.start();
    return sub;
  }

  removeSubscription(sub: LogSubscription): void {
    this.subs.delete(sub);
  }

  subscriberFailed(sub: LogSubscription, error: unknown): void {
    const tel = this.runtime.telemetry;
    if (tel.enabled) {
      tel.execute(
        SUBSCRIBER_FAILED_EVENT,
        {},
        { store: this.name, subscription: sub.id, position: sub.position, error },
      );
    }
  }

  // ---- the end ---------------------------------------------------------------------------------

  /**
   * The store is finished (its supervisor exited): refuse from now on with `failure`, reject what is
   * still queued with it, end the subscriptions and release the backend.
   */
  finish(failure: Error): void {
    if (this.failure !== undefined) return;
    this.failure = failure;
    const queue = this.#queue.slice(this.#head);
    this.#queue = [];
    this.#head = 0;
    this.#queuedEvents = 0;
    for (const req of queue) req.reject(failure);
    const end =
      failure instanceof StoreClosedError
        ? { reason: 'store_closed' as const }
        : { reason: 'store_closed' as const, error: failure };
    for (const sub of [...this.subs]) sub.end(end);
    this.backend.close();
  }
}

/** The writer agent: the only one that writes to the backend. Its state is the shared core. */
const EventWriter = behaviour<StoreCore, StoreCore, never, never, never, typeof FLUSH>({
  init(core, ctx) {
    const self = ctx.self;
    ctx.runtime.onExit(self, () => core.detachWriter(self));
    core.attachWriter(self);
    return core;
  },
  handleInfo(msg, core) {
    if (msg === FLUSH) core.flush();
    return core;
  },
  terminate(reason, core) {
    // An orderly stop (store closed, runtime shut down) commits what callers are waiting for. After
    // a crash, the restarted writer does that instead.
    if (isNormalExit(reason)) core.flushAll();
  },
});

/** Not a type guard on purpose: narrowing to a record would lose the options' own types. */
function isObject(value: unknown): boolean {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function positiveInt(value: unknown, field: string): number {
  if (!Number.isSafeInteger(value) || (value as number) < 1) {
    throw new InvalidArgumentError(field, 'must be an integer >= 1', value);
  }
  return value as number;
}

/** Check the options and open the backend they name. */
function openBackend(options: EventStoreOptions): EventBackend {
  if (!isObject(options)) throw new InvalidArgumentError('event store options', 'must be an object', options);
  for (const key of Object.keys(options)) {
    if (!OPTION_KEYS.has(key))
      throw new InvalidArgumentError(`event store option "${key}"`, 'unknown option');
  }
  const { path, backend } = options;
  if ((path === undefined) === (backend === undefined)) {
    throw new InvalidArgumentError(
      'event store options',
      'need exactly one of "path" (SQLite) and "backend"',
    );
  }
  if (backend !== undefined) {
    if (options.synchronous !== undefined) {
      throw new InvalidArgumentError('event store option "synchronous"', 'applies only with "path"');
    }
    if (
      !isObject(backend) ||
      typeof backend.append !== 'function' ||
      typeof backend.readFrom !== 'function' ||
      typeof backend.query !== 'function'
    ) {
      throw new InvalidArgumentError('event store option "backend"', 'must implement EventBackend', backend);
    }
    return backend;
  }
  const synchronous = options.synchronous ?? EVENT_STORE_DEFAULTS.synchronous;
  return new SqliteEventLog(path as string, { synchronous });
}

/**
 * A durable, append-only event log (see the module comment for how writes are batched and what a
 * crash does). Start one with `EventStore.start`.
 */
export class EventStore {
  readonly #core: StoreCore;
  #closed: Promise<void> | undefined;

  private constructor(core: StoreCore) {
    this.#core = core;
  }

  /**
   * Open the backend and start the store's supervisor with its writer agent. Rejects with
   * InvalidArgumentError for bad options and StoreOpenError (E_STORE_OPEN_FAILED) if the backend
   * cannot be opened.
   *
   * @example
   * const store = await EventStore.start(runtime, { path: 'events.db' });
   * const { seq } = await store.append({ type: 'order.placed', data: { id: 7 } });
   */
  static async start(site: StoreSite, options: EventStoreOptions): Promise<EventStore> {
    const runtime = site instanceof Runtime ? site : site?.runtime;
    if (!(runtime instanceof Runtime)) {
      throw new InvalidArgumentError('event store site', 'must be a runtime or an agent context', site);
    }
    const clock = options?.clock ?? WALL_CLOCK;
    if (!isObject(clock) || typeof clock.now !== 'function') {
      throw new InvalidArgumentError('event store option "clock"', 'must be an object with now()', clock);
    }
    const maxBatch =
      options?.maxBatch === undefined
        ? EVENT_STORE_DEFAULTS.maxBatch
        : positiveInt(options.maxBatch, 'event store option "maxBatch"');
    if (options?.name !== undefined && (typeof options.name !== 'string' || options.name === '')) {
      throw new InvalidArgumentError('event store option "name"', 'must be a non-empty string', options.name);
    }
    const backend = openBackend(options);
    const core = new StoreCore(options.name ?? backend.location, runtime, backend, clock, maxBatch);
    let sup: SupervisorRef;
    try {
      sup = await Supervisor.start(site, {
        strategy: 'one_for_one',
        ...(options.restart ?? {}),
        children: [
          Supervisor.childSpec('writer', EventWriter, core, {
            // Trapping exits makes the supervisor's shutdown run terminate, which commits the queue.
            options: { trapExit: true },
            shutdown: 'infinity',
          }),
        ],
      });
    } catch (error) {
      backend.close();
      throw error;
    }
    core.supervisor = sup;
    runtime.onExit(sup, (reason) => {
      core.finish(
        core.closing || isNormalExit(reason)
          ? new StoreClosedError(core.name)
          : new StoreUnavailableError(core.name, reason),
      );
    });
    return new EventStore(core);
  }

  /** The store's name (telemetry, errors). */
  get name(): string {
    return this.#core.name;
  }

  /** The backend's kind: `sqlite`, `memory`, ... */
  get backendKind(): string {
    return this.#core.backend.kind;
  }

  /** The seq of the last committed event (0 for an empty new log). */
  get lastSeq(): number {
    return this.#core.backend.lastSeq;
  }

  /** Events appended and not yet committed. */
  get queued(): number {
    return this.#core.queuedEvents;
  }

  /** The writer agent, or undefined while its supervisor restarts it (or after the store finished). */
  get writer(): AnyRef | undefined {
    return this.#core.writer;
  }

  /** The supervisor of the writer. */
  get supervisor(): SupervisorRef {
    return this.#core.supervisor as SupervisorRef;
  }

  /** True once `close` was called or the store finished for another reason. */
  get closed(): boolean {
    return this.#core.closing || this.#core.failure !== undefined;
  }

  /**
   * Append one event. Resolves with the stored event (its seq and timestamp) once it is committed
   * and durable. Rejects with InvalidArgumentError for a bad event (naming the field), with
   * StoreClosedError after `close`, StoreWriteError if the backend refused the transaction and
   * StoreUnavailableError if the writer is gone for good; in each of those cases nothing was committed.
   */
  append<T>(event: EventInput<T>): Promise<StoredEvent<T>> {
    const refused = this.#core.refusal('append');
    if (refused !== undefined) return Promise.reject(refused);
    let prepared: PreparedEvent;
    try {
      prepared = prepareEvent(event, 'event');
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise((resolve, reject) => {
      this.#core.enqueue({
        events: [prepared],
        prune: null,
        resolve: (stored) => resolve((stored as StoredEvent<T>[])[0] as StoredEvent<T>),
        reject,
      });
    });
  }

  /**
   * Append events atomically: all are committed in one transaction (with consecutive seqs and one
   * timestamp), or none is. Resolves with the stored events in order. Errors as for `append`; a bad
   * event is named by its index (`events[3].data`).
   */
  appendBatch(events: readonly EventInput[]): Promise<StoredEvent[]> {
    const refused = this.#core.refusal('appendBatch');
    if (refused !== undefined) return Promise.reject(refused);
    if (!Array.isArray(events)) {
      return Promise.reject(new InvalidArgumentError('events', 'must be an array', events));
    }
    if (events.length === 0) return Promise.resolve([]);
    let prepared: PreparedEvent[];
    try {
      prepared = events.map((e, i) => prepareEvent(e, `events[${i}]`));
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise((resolve, reject) => {
      this.#core.enqueue({ events: prepared, prune: null, resolve: resolve as (v: unknown) => void, reject });
    });
  }

  /**
   * Committed events matching `query` (all of them without one), oldest first unless `order` is
   * `desc`. Reads the backend directly on the caller's thread, never through the writer.
   */
  query(query?: EventQuery): Promise<StoredEvent[]> {
    const refused = this.#core.refusal('query');
    if (refused !== undefined) return Promise.reject(refused);
    try {
      return Promise.resolve(this.#core.backend.query(resolveQuery(query)));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Deliver every event with `seq >= fromSeq` (use 1 for the whole log, `lastSeq + 1` for only new
   * ones) to `subscriber`, in seq order and each exactly once: first from the log, then live as
   * events are committed. A function subscriber is called one event at a time (a returned promise
   * is awaited first); an agent receives an EventMessage in handleInfo per event, and its exit ends
   * the subscription. A handler that throws ends its subscription (reported through telemetry
   * `['mabeam','event_store','subscriber','failed']`). Events pruned before delivery are skipped.
   * Throws InvalidArgumentError for bad arguments and StoreClosedError on a closed store.
   */
  subscribe(fromSeq: number, subscriber: Subscriber, options: SubscribeOptions = {}): Subscription {
    const refused = this.#core.refusal('subscribe');
    if (refused !== undefined) throw refused;
    if (!Number.isSafeInteger(fromSeq) || fromSeq < 0) {
      throw new InvalidArgumentError('fromSeq', 'must be an integer >= 0', fromSeq);
    }
    if (typeof subscriber !== 'function' && !isPid(subscriber)) {
      throw new InvalidArgumentError('subscriber', 'must be a function, an agent ref or a pid', subscriber);
    }
    if (!isObject(options)) throw new InvalidArgumentError('subscribe options', 'must be an object', options);
    for (const key of Object.keys(options)) {
      if (!SUBSCRIBE_KEYS.has(key))
        throw new InvalidArgumentError(`subscribe option "${key}"`, 'unknown option');
    }
    const pageSize =
      options.pageSize === undefined
        ? SUBSCRIBE_DEFAULTS.pageSize
        : positiveInt(options.pageSize, 'subscribe option "pageSize"');
    const maxBuffer =
      options.maxBuffer === undefined
        ? SUBSCRIBE_DEFAULTS.maxBuffer
        : positiveInt(options.maxBuffer, 'subscribe option "maxBuffer"');
    if (typeof subscriber !== 'function') {
      const info = this.#core.runtime.info(subscriber as Pid, { stateSize: false });
      if (info === undefined || info.status === 'exiting' || info.status === 'exited') {
        throw new InvalidArgumentError('subscriber', 'must be a live agent', subscriber);
      }
      // A drop_oldest mailbox would lose events silently (another sender's message pushes one of
      // ours out, and nobody learns of it): refused. reject and drop_newest fail loudly instead.
      if (info.mailboxOverflow === 'drop_oldest') {
        throw new InvalidArgumentError(
          'subscriber',
          'must not have a drop_oldest mailbox (events would be lost silently)',
          subscriber,
        );
      }
    }
    return this.#core.subscribe(fromSeq, subscriber, { pageSize, maxBuffer });
  }

  /**
   * Remove a prefix of the log (see PruneBound); resolves with the number of events removed. Runs
   * through the writer, in order with appends: appends issued before it are committed first. Seqs
   * are never reused, even when everything was pruned.
   */
  prune(bound: PruneBound): Promise<number> {
    const refused = this.#core.refusal('prune');
    if (refused !== undefined) return Promise.reject(refused);
    let checked: PruneBound;
    try {
      checked = checkPruneBound(bound);
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise((resolve, reject) => {
      this.#core.enqueue({ events: null, prune: checked, resolve: resolve as (v: unknown) => void, reject });
    });
  }

  /**
   * Stop accepting work, commit what is queued, end subscriptions, stop the writer and its
   * supervisor, and close the backend. Idempotent; resolves when all of that is done.
   */
  close(): Promise<void> {
    if (this.#closed === undefined) this.#closed = this.#close();
    return this.#closed;
  }

  async #close(): Promise<void> {
    const core = this.#core;
    core.closing = true;
    const sup = core.supervisor;
    if (sup !== undefined && core.runtime.isAlive(sup)) {
      // The writer's terminate commits the queue; the supervisor's exit hook then finishes the core.
      await core.runtime.stop(sup, 'shutdown').catch(() => {});
    }
    core.finish(new StoreClosedError(core.name));
  }
}

/** Start an event store (same as `EventStore.start`). */
export function startEventStore(site: StoreSite, options: EventStoreOptions): Promise<EventStore> {
  return EventStore.start(site, options);
}

/** A memory-backed store, for tests and for logs that need not outlive the process. */
export function startMemoryEventStore(
  site: StoreSite,
  options: Omit<EventStoreOptions, 'path' | 'backend' | 'synchronous'> = {},
): Promise<EventStore> {
  return EventStore.start(site, { ...options, backend: new MemoryEventLog() });
}
