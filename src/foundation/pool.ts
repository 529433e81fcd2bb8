/**
 * A connection pool for any resource with `{create, validate?, destroy}`, after Erlang's poolboy:
 * `size` resources kept, up to `maxOverflow` more created under load and reaped after `idleMs`
 * idle, a FIFO queue of waiting checkouts with deadlines on the runtime clock, health checks on
 * checkout, and resources bound to the agent that holds them.
 *
 * The pool is an agent: one owner serializes every checkout, checkin, create and health check, so
 * the bookkeeping needs no locks and the order of service is the order of arrival. The owner never
 * awaits user code: `create`, `validate` and `destroy` run beside it and report back by message,
 * so one slow connect never holds up a checkin. `stats()` and the checkin misuse check read the
 * owner's state synchronously (the CQRS read side); only the owner writes it.
 */
import {
  type AgentContext,
  type AgentRef,
  type AnyRef,
  behaviour,
  describe,
  ExitError,
  type From,
  InitError,
  InvalidArgumentError,
  isPid,
  MabeamError,
  NoProcessError,
  noreply,
  type Pid,
  type Runtime,
  reply,
  stop,
  type TimerRef,
} from '../kernel/index.js';

// ---- errors ------------------------------------------------------------------------------------

/** Error codes of the connection pool (unique across mabeam, never reused). */
export const PoolErrorCodes = {
  /** No resource became free within the checkout timeout. */
  CHECKOUT_TIMEOUT: 'E_CHECKOUT_TIMEOUT',
  /** The pool is closed (or closing): checkouts are refused and waiters rejected. */
  POOL_CLOSED: 'E_POOL_CLOSED',
  /** The resource factory's `create` threw or rejected; `cause` holds what it threw. */
  RESOURCE_CREATE_FAILED: 'E_RESOURCE_CREATE_FAILED',
  /** `checkin` of a value that is not checked out from this pool (or already being returned). */
  NOT_CHECKED_OUT: 'E_NOT_CHECKED_OUT',
  /** The agent a waiting checkout was made for exited before it was served. */
  HOLDER_EXITED: 'E_HOLDER_EXITED',
} as const;

/** A checkout waited `timeoutMs` without a resource becoming free. */
export class CheckoutTimeoutError extends MabeamError {
  readonly pool: string;
  readonly timeoutMs: number;
  constructor(pool: string, timeoutMs: number, detail: string) {
    super(
      PoolErrorCodes.CHECKOUT_TIMEOUT,
      `checkout from ${pool} timed out after ${timeoutMs} ms (${detail})`,
    );
    this.pool = pool;
    this.timeoutMs = timeoutMs;
  }
}

/** The pool is closed or closing. */
export class PoolClosedError extends MabeamError {
  readonly pool: string;
  constructor(pool: string) {
    super(PoolErrorCodes.POOL_CLOSED, `${pool} is closed`);
    this.pool = pool;
  }
}

/** `create` failed; the slot it would have filled is free again. */
export class ResourceCreateError extends MabeamError {
  readonly pool: string;
  constructor(pool: string, cause: unknown) {
    super(PoolErrorCodes.RESOURCE_CREATE_FAILED, `${pool} could not create a resource: ${describe(cause)}`, {
      cause,
    });
    this.pool = pool;
  }
}

/** `checkin` of something this pool did not lend out (or that is already on its way back). */
export class NotCheckedOutError extends MabeamError {
  readonly pool: string;
  constructor(pool: string, resource: unknown) {
    super(
      PoolErrorCodes.NOT_CHECKED_OUT,
      `${describe(resource)} is not checked out from ${pool} (never lent, or already checked in)`,
    );
    this.pool = pool;
  }
}

/** The holder a waiting checkout was bound to exited before a resource was free. */
export class HolderExitedError extends MabeamError {
  readonly pool: string;
  readonly holder: string;
  constructor(pool: string, holder: string, reason: unknown) {
    super(
      PoolErrorCodes.HOLDER_EXITED,
      `checkout from ${pool} for ${holder} abandoned: the holder exited with reason ${describe(reason)}`,
    );
    this.pool = pool;
    this.holder = holder;
  }
}

// ---- public types ------------------------------------------------------------------------------

/** How the pool makes, checks and disposes of resources. Any of them may be async. */
export interface ResourceFactory<R> {
  /** Make a resource. Each call must return a distinct value (the pool keys its books by it). */
  create(): R | Promise<R>;
  /**
   * Health check, run on an idle resource before it is handed out. False (or a throw) destroys the
   * resource, and the waiting checkout is served by another one.
   */
  validate?(resource: R): boolean | Promise<boolean>;
  /** Dispose of a resource. A throw is reported through telemetry and otherwise ignored. */
  destroy(resource: R): void | Promise<void>;
}

/** Options of `Pool.start`. */
export interface PoolOptions<R> extends ResourceFactory<R> {
  /** Shown in errors and telemetry. Default: `pool <agent ref>`. */
  name?: string;
  /** Resources kept (created at start when `prefill`, never reaped). An integer >= 0. */
  size: number;
  /** Extra resources created when all `size` are out; reaped after `idleMs` idle. Default 0. */
  maxOverflow?: number;
  /** How long (ms, runtime clock) an overflow resource may sit idle before it is destroyed. Default 10000; 0 destroys it on checkin. */
  idleMs?: number;
  /** Default checkout timeout in ms (runtime clock). Default 5000; Infinity waits forever. */
  checkoutTimeoutMs?: number;
  /** Create the `size` resources at start (a create that fails makes `start` reject). Default true. */
  prefill?: boolean;
  /** Destroy, rather than return, a resource whose holder exits without checking it in. Default false. */
  destroyOnHolderExit?: boolean;
  /**
   * Which idle resource a checkout gets: `lifo` (default) reuses the most recently returned one,
   * so surplus resources stay idle long enough to be reaped; `fifo` spreads use over all of them.
   */
  strategy?: 'lifo' | 'fifo';
}

/** Who holds a checked-out resource: an agent context (inside a callback) or an agent's ref or pid. */
export type Holder = AgentContext | AnyRef | Pid;

/** Options of `checkout` and `withResource`. */
export interface CheckoutOptions {
  /** How long to wait for a free resource (ms, runtime clock). Default: the pool's `checkoutTimeoutMs`. */
  timeoutMs?: number;
  /**
   * Bind the resource to this agent: if it exits while holding the resource (or while waiting for
   * one), the resource goes back to the pool (or is destroyed, with `destroyOnHolderExit`).
   *
   * Default: the calling agent (`runtime.self()`) when `checkout` is called from an agent's
   * callback on its synchronous stack, else none. After an `await` inside an async handler the
   * agent is no longer on the stack, so pass its context explicitly there. `null` opts out: the
   * resource is bound to no agent, even when called from one.
   */
  holder?: Holder | null;
}

/** Options of `checkin`. */
export interface CheckinOptions {
  /** The resource is broken: destroy it instead of returning it to the idle set. */
  destroy?: boolean;
}

/** A snapshot of the pool's books. */
export interface PoolStats {
  name: string;
  size: number;
  maxOverflow: number;
  /** Resources that exist or are being made: idle + out + creating + validating. */
  total: number;
  idle: number;
  out: number;
  /** Checkouts waiting in the queue. */
  waiting: number;
  creating: number;
  validating: number;
  /** Destroys still running (not counted in `total`). */
  destroying: number;
  /** How far `total` is above `size`. */
  overflow: number;
  /** Lifetime counters. */
  created: number;
  destroyed: number;
  createFailures: number;
  validationFailures: number;
  checkouts: number;
  timeouts: number;
  closed: boolean;
}

// ---- the owner agent ---------------------------------------------------------------------------

/** A successful reply carries the lease too, so `withResource` checks in exactly what it got. */
type CheckoutReply<R> = { ok: true; resource: R; lease: Lease<R> } | { ok: false; error: Error };

type PoolCall =
  | { type: 'checkout'; timeoutMs: number; holder: AnyRef | Pid | undefined }
  | { type: 'close'; timeoutMs: number };
/** A checkin names the lease, not the resource: a stale one (its holder exited meanwhile and the
 * resource went to someone else) must not return the next holder's lease. */
type PoolCast<R> = { type: 'checkin'; lease: Lease<R>; destroy: boolean };
type PoolInfo<R> =
  | { type: 'expire'; waiter: number }
  | { type: 'reap' }
  | { type: 'created'; resource: R }
  | { type: 'create_failed'; error: unknown }
  | { type: 'validated'; resource: R; ok: boolean }
  | { type: 'holder_exit'; lease: Lease<R>; reason: unknown }
  | { type: 'waiter_exit'; waiter: number; reason: unknown };

type PoolReply<R> = CheckoutReply<R> | undefined;
type PoolContext<R> = AgentContext<PoolCall, PoolReply<R>, PoolCast<R>, PoolInfo<R>>;

/** The pool agent's handle. */
export type PoolRef<R> = AgentRef<PoolCall, PoolReply<R>, PoolCast<R>, PoolInfo<R>>;

interface Config<R> {
  factory: ResourceFactory<R>;
  size: number;
  maxOverflow: number;
  idleMs: number;
  checkoutTimeoutMs: number;
  prefill: boolean;
  destroyOnHolderExit: boolean;
  lifo: boolean;
}

interface Lease<R> {
  readonly resource: R;
  readonly holder: AnyRef | Pid | undefined;
  unbind: (() => void) | null;
  /** Set by `checkin` at once, so a second checkin of the same resource is caught as misuse. */
  returning: boolean;
}

interface Waiter<R> {
  readonly id: number;
  readonly from: From<PoolReply<R>>;
  readonly holder: AnyRef | Pid | undefined;
  readonly since: number;
  timeoutMs: number;
  timer: TimerRef | null;
  unbind: (() => void) | null;
}

interface Idle<R> {
  readonly resource: R;
  readonly since: number;
}

/** The owner's state; the facade reads it (never writes it, except `Lease.returning`). */
interface PoolState<R> {
  readonly cfg: Config<R>;
  readonly runtime: Runtime;
  name: string;
  ctx: PoolContext<R> | null;
  /** Oldest idle first; LIFO takes from the end, FIFO from the front. */
  idle: Idle<R>[];
  readonly out: Map<R, Lease<R>>;
  /** Insertion order is arrival order: the first entry is the head of the FIFO queue. */
  readonly waiters: Map<number, Waiter<R>>;
  creating: number;
  validating: number;
  destroying: number;
  closed: boolean;
  /** A pool callback is running: exit hooks then defer to a message instead of re-entering. */
  busy: boolean;
  reapTimer: TimerRef | null;
  nextWaiter: number;
  /** User-code promises still running (creates, validations, destroys), for `close` to await. */
  readonly inflight: Set<Promise<unknown>>;
  created: number;
  destroyed: number;
  createFailures: number;
  validationFailures: number;
  checkouts: number;
  timeouts: number;
}

const EV_CHECKOUT = ['mabeam', 'pool', 'checkout'] as const;
const EV_RESOURCE_ERROR = ['mabeam', 'pool', 'resource_error'] as const;

function total<R>(s: PoolState<R>): number {
  return s.idle.length + s.out.size + s.creating + s.validating;
}

function capacity<R>(s: PoolState<R>): number {
  return s.cfg.size + s.cfg.maxOverflow;
}

function describeLoad<R>(s: PoolState<R>): string {
  return (
    `size ${s.cfg.size}, max overflow ${s.cfg.maxOverflow}, ${s.out.size} out, ` +
    `${s.idle.length} idle, ${s.waiters.size} waiting`
  );
}

/** Run `fn` as the owner: marks the state busy so exit hooks defer instead of re-entering. */
function owning<R, T>(s: PoolState<R>, fn: () => T): T {
  const was = s.busy;
  s.busy = true;
  try {
    return fn();
  } finally {
    s.busy = was;
  }
}

function report<R>(s: PoolState<R>, op: 'create' | 'validate' | 'destroy', error: unknown): void {
  const tel = s.runtime.telemetry;
  if (tel.enabled) tel.execute(EV_RESOURCE_ERROR, { count: 1 }, { pool: s.name, op, error });
}

function reportCheckout<R>(s: PoolState<R>, w: Waiter<R>, outcome: string): void {
  const tel = s.runtime.telemetry;
  if (tel.enabled) {
    tel.execute(EV_CHECKOUT, { waitMs: s.runtime.clock.now() - w.since }, { pool: s.name, outcome });
  }
}

/** Track a user-code promise until it settles, so `close` can wait for it. */
function track<R>(s: PoolState<R>, p: Promise<unknown>): void {
  const settled = p.finally(() => s.inflight.delete(settled));
  s.inflight.add(settled);
}

function destroyResource<R>(s: PoolState<R>, resource: R): void {
  s.destroyed++;
  s.destroying++;
  track(
    s,
    Promise.resolve()
      .then(() => s.cfg.factory.destroy(resource))
      .catch((error: unknown) => report(s, 'destroy', error))
      .finally(() => {
        s.destroying--;
      }),
  );
}

/** Deliver the result of user code to the owner, or clean up if the pool has gone meanwhile. */
function deliver<R>(s: PoolState<R>, msg: PoolInfo<R>): void {
  const orphan = msg.type === 'created' || msg.type === 'validated' ? msg.resource : undefined;
  if (s.closed || s.ctx === null || !s.runtime.send(s.ctx.self, msg)) {
    if (msg.type === 'created' || msg.type === 'validated') destroyResource(s, orphan as R);
  }
}

function startCreate<R>(s: PoolState<R>): void {
  s.creating++;
  track(
    s,
    Promise.resolve()
      .then(() => s.cfg.factory.create())
      .then(
        (resource) => deliver(s, { type: 'created', resource }),
        (error: unknown) => {
          report(s, 'create', error);
          deliver(s, { type: 'create_failed', error });
        },
      ),
  );
}

function startValidate<R>(
  s: PoolState<R>,
  resource: R,
  validate: (r: R) => boolean | Promise<boolean>,
): void {
  s.validating++;
  track(
    s,
    Promise.resolve()
      .then(() => validate(resource))
      .then(
        (ok) => deliver(s, { type: 'validated', resource, ok: ok === true }),
        (error: unknown) => {
          report(s, 'validate', error);
          deliver(s, { type: 'validated', resource, ok: false });
        },
      ),
  );
}

function takeIdle<R>(s: PoolState<R>): Idle<R> | undefined {
  return s.cfg.lifo ? s.idle.pop() : s.idle.shift();
}

function head<R>(s: PoolState<R>): Waiter<R> | undefined {
  for (const w of s.waiters.values()) return w;
  return undefined;
}

function dropWaiter<R>(s: PoolState<R>, w: Waiter<R>): void {
  s.waiters.delete(w.id);
  if (w.timer !== null) s.ctx?.cancelTimer(w.timer);
  w.timer = null;
  w.unbind?.();
  w.unbind = null;
}

function failWaiter<R>(s: PoolState<R>, w: Waiter<R>, error: Error, outcome: string): void {
  dropWaiter(s, w);
  reportCheckout(s, w, outcome);
  s.ctx?.reply(w.from, { ok: false, error });
}

/**
 * Start as much work as the queue needs: idle resources first (health-checked when `validate` is
 * set), then new resources while below `size + maxOverflow`. Work already under way (creates,
 * health checks) counts toward the demand, so a burst of checkouts never over-creates.
 */
function dispatch<R>(s: PoolState<R>): void {
  if (s.closed) return;
  const validate = s.cfg.factory.validate?.bind(s.cfg.factory);
  // Recomputed each turn: serving may also drop waiters whose holder has died.
  while (s.waiters.size - s.creating - s.validating > 0) {
    const entry = takeIdle(s);
    if (entry !== undefined) {
      if (validate !== undefined) startValidate(s, entry.resource, validate);
      else release(s, entry.resource);
    } else if (total(s) < capacity(s)) {
      startCreate(s);
    } else {
      break;
    }
  }
}

/** A resource is free: the oldest waiter gets it, or it goes idle (or away, if surplus). */
function release<R>(s: PoolState<R>, resource: R): void {
  if (s.closed) {
    destroyResource(s, resource);
    return;
  }
  if (lend(s, resource)) return;
  if (s.cfg.idleMs === 0 && total(s) >= s.cfg.size) {
    // Surplus (the others already fill `size`) and no grace period: away at once.
    destroyResource(s, resource);
    return;
  }
  s.idle.push({ resource, since: s.runtime.clock.now() });
  armReap(s);
}

/** Hand `resource` to the oldest waiter whose holder (if any) is alive. False if there is none. */
function lend<R>(s: PoolState<R>, resource: R): boolean {
  for (;;) {
    const w = head(s);
    if (w === undefined) return false;
    const holder = w.holder;
    if (holder !== undefined && !s.runtime.isAlive(holder)) {
      // Its exit hook has not run yet (deferred): never lend to a dead holder.
      failWaiter(s, w, new HolderExitedError(s.name, describe(holder), 'noproc'), 'holder_exited');
      continue;
    }
    dropWaiter(s, w);
    const lease: Lease<R> = { resource, holder, unbind: null, returning: false };
    s.out.set(resource, lease);
    s.checkouts++;
    if (holder !== undefined) {
      lease.unbind = s.runtime.onExit(holder, (reason) => holderExited(s, lease, reason));
    }
    reportCheckout(s, w, 'ok');
    s.ctx?.reply(w.from, { ok: true, resource, lease });
    return true;
  }
}

/**
 * The holder of `lease` exited: take the resource back. Runs inside the exiting agent's exit, so
 * whoever learns of the exit (DOWN, EXIT, awaitExit) finds the resource already back. If a pool
 * callback is running (user code in it killed the holder), it is deferred to a message instead.
 */
function holderExited<R>(s: PoolState<R>, lease: Lease<R>, reason: unknown): void {
  if (s.closed || s.out.get(lease.resource) !== lease || !ownerAlive(s)) return;
  if (s.busy) {
    deliver(s, { type: 'holder_exit', lease, reason });
    return;
  }
  owning(s, () => returnLease(s, lease, s.cfg.destroyOnHolderExit));
}

function returnLease<R>(s: PoolState<R>, lease: Lease<R>, destroy: boolean): void {
  if (s.out.get(lease.resource) !== lease) return;
  s.out.delete(lease.resource);
  lease.unbind?.();
  lease.unbind = null;
  if (destroy) destroyResource(s, lease.resource);
  else release(s, lease.resource);
  dispatch(s);
}

function waiterHolderExited<R>(s: PoolState<R>, id: number, reason: unknown): void {
  const w = s.waiters.get(id);
  if (s.closed || w === undefined || !ownerAlive(s)) return;
  if (s.busy) {
    deliver(s, { type: 'waiter_exit', waiter: id, reason });
    return;
  }
  owning(s, () =>
    failWaiter(s, w, new HolderExitedError(s.name, describe(w.holder), reason), 'holder_exited'),
  );
}

/** False once the owner agent is gone (killed without its terminate running): nothing to update. */
function ownerAlive<R>(s: PoolState<R>): boolean {
  return s.ctx !== null && s.runtime.isAlive(s.ctx.self);
}

/** Arm the reap timer for the oldest idle resource, if the pool is above `size`. */
function armReap<R>(s: PoolState<R>): void {
  if (s.reapTimer !== null || s.ctx === null || s.idle.length === 0 || total(s) <= s.cfg.size) return;
  const oldest = (s.idle[0] as Idle<R>).since;
  const wait = Math.max(0, oldest + s.cfg.idleMs - s.runtime.clock.now());
  s.reapTimer = s.ctx.sendAfter({ type: 'reap' }, wait);
}

function reap<R>(s: PoolState<R>): void {
  s.reapTimer = null;
  const now = s.runtime.clock.now();
  while (total(s) > s.cfg.size && s.idle.length > 0) {
    const oldest = s.idle[0] as Idle<R>;
    if (now - oldest.since < s.cfg.idleMs) break;
    s.idle.shift();
    destroyResource(s, oldest.resource);
  }
  armReap(s);
}

/**
 * Close the pool: reject waiters, destroy idle and lent resources. With `waitMs > 0`, also wait
 * (at most that long, on the runtime clock) for create/validate/destroy calls still running, so a
 * user callback that never settles cannot hold close() forever; resources those make are
 * destroyed when they finish either way (see `deliver`).
 */
async function shutdown<R>(s: PoolState<R>, waitMs: number): Promise<void> {
  if (s.closed) return;
  s.closed = true;
  const closed = new PoolClosedError(s.name);
  for (const w of [...s.waiters.values()]) failWaiter(s, w, closed, 'closed');
  if (s.reapTimer !== null) s.ctx?.cancelTimer(s.reapTimer);
  s.reapTimer = null;
  const resources = s.idle.map((e) => e.resource);
  s.idle = [];
  for (const lease of s.out.values()) {
    lease.unbind?.();
    lease.unbind = null;
    resources.push(lease.resource);
  }
  s.out.clear();
  for (const r of resources) destroyResource(s, r);
  if (waitMs <= 0 || s.inflight.size === 0) return;
  const clock = s.runtime.clock;
  const deadline = clock.now() + waitMs;
  while (s.inflight.size > 0) {
    const left = deadline - clock.now();
    if (left <= 0) return;
    let timer: ReturnType<typeof clock.setTimeout> | undefined;
    const expired = new Promise<void>((resolve) => {
      timer = clock.setTimeout(resolve, left);
    });
    await Promise.race([Promise.allSettled([...s.inflight]), expired]);
    if (timer !== undefined) clock.clearTimeout(timer);
  }
}

const PoolAgent = behaviour<
  PoolState<unknown>,
  PoolState<unknown>,
  PoolCall,
  PoolReply<unknown>,
  PoolCast<unknown>,
  PoolInfo<unknown>
>({
  async init(s, ctx) {
    s.ctx = ctx;
    if (s.name === '') s.name = `pool ${ctx.self}`;
    if (s.cfg.prefill && s.cfg.size > 0) {
      const made = await Promise.allSettled(
        Array.from({ length: s.cfg.size }, () => Promise.resolve().then(() => s.cfg.factory.create())),
      );
      const failed = made.find((m) => m.status === 'rejected');
      const ok = made.flatMap((m) => (m.status === 'fulfilled' ? [m.value] : []));
      s.created += ok.length;
      if (failed !== undefined) {
        s.closed = true;
        await Promise.allSettled(ok.map((r) => Promise.resolve().then(() => s.cfg.factory.destroy(r))));
        throw new ResourceCreateError(s.name, (failed as PromiseRejectedResult).reason);
      }
      const now = s.runtime.clock.now();
      s.idle = ok.map((resource) => ({ resource, since: now }));
    }
    return s;
  },

  handleCall(msg, from, s, ctx) {
    if (msg.type === 'close') {
      return shutdown(s, msg.timeoutMs).then(() => stop('normal', s, undefined));
    }
    return owning(s, () => {
      if (s.closed) return reply({ ok: false, error: new PoolClosedError(s.name) }, s);
      if (msg.holder !== undefined && !s.runtime.isAlive(msg.holder)) {
        return reply({ ok: false, error: new HolderExitedError(s.name, describe(msg.holder), 'noproc') }, s);
      }
      const w: Waiter<unknown> = {
        id: s.nextWaiter++,
        from,
        holder: msg.holder,
        since: s.runtime.clock.now(),
        timeoutMs: msg.timeoutMs,
        timer: null,
        unbind: null,
      };
      s.waiters.set(w.id, w);
      dispatch(s);
      if (s.waiters.has(w.id)) {
        if (Number.isFinite(msg.timeoutMs))
          w.timer = ctx.sendAfter({ type: 'expire', waiter: w.id }, msg.timeoutMs);
        if (msg.holder !== undefined) {
          const id = w.id;
          w.unbind = s.runtime.onExit(msg.holder, (reason) => waiterHolderExited(s, id, reason));
        }
      }
      return noreply(s);
    });
  },

  handleCast(msg, s) {
    return owning(s, () => {
      // returnLease acts only if this very lease is still out: a stale checkin is a no-op.
      returnLease(s, msg.lease, msg.destroy);
      return s;
    });
  },

  handleInfo(msg, s) {
    return owning(s, () => {
      switch (msg.type) {
        case 'expire': {
          const w = s.waiters.get(msg.waiter);
          if (w !== undefined) {
            w.timer = null;
            s.timeouts++;
            failWaiter(s, w, new CheckoutTimeoutError(s.name, w.timeoutMs, describeLoad(s)), 'timeout');
          }
          break;
        }
        case 'reap':
          reap(s);
          break;
        case 'created':
          s.creating--;
          s.created++;
          release(s, msg.resource);
          dispatch(s);
          break;
        case 'create_failed': {
          s.creating--;
          s.createFailures++;
          // The create was started for the oldest uncovered waiter; it learns why, and its slot is free.
          const w = head(s);
          if (w !== undefined && s.waiters.size > s.creating + s.validating) {
            failWaiter(s, w, new ResourceCreateError(s.name, msg.error), 'create_failed');
          }
          dispatch(s);
          break;
        }
        case 'validated':
          s.validating--;
          if (msg.ok) {
            release(s, msg.resource);
          } else {
            s.validationFailures++;
            destroyResource(s, msg.resource);
          }
          dispatch(s);
          break;
        case 'holder_exit':
          returnLease(s, msg.lease, s.cfg.destroyOnHolderExit);
          break;
        case 'waiter_exit': {
          const w = s.waiters.get(msg.waiter);
          if (w !== undefined) {
            failWaiter(s, w, new HolderExitedError(s.name, describe(w.holder), msg.reason), 'holder_exited');
          }
          break;
        }
      }
      return s;
    });
  },

  terminate(_reason, s) {
    // A stop from outside (runtime shutdown, a supervisor) must not hang on a create that never
    // settles: destroy what exists now, and let late resources be destroyed as they arrive.
    void shutdown(s, 0);
  },
});

// ---- the facade --------------------------------------------------------------------------------

const OPTION_KEYS = new Set([
  'name',
  'size',
  'maxOverflow',
  'idleMs',
  'checkoutTimeoutMs',
  'prefill',
  'destroyOnHolderExit',
  'strategy',
  'create',
  'validate',
  'destroy',
]);

function checkOptions<R>(o: PoolOptions<R>): Config<R> {
  if (o === null || typeof o !== 'object')
    throw new InvalidArgumentError('pool options', 'must be an object', o);
  for (const key of Object.keys(o)) {
    if (!OPTION_KEYS.has(key))
      throw new InvalidArgumentError(`pool option ${JSON.stringify(key)}`, 'unknown option');
  }
  const opt = (key: string) => `pool option ${JSON.stringify(key)}`;
  if (o.name !== undefined && (typeof o.name !== 'string' || o.name === '')) {
    throw new InvalidArgumentError(opt('name'), 'must be a non-empty string', o.name);
  }
  if (!Number.isInteger(o.size) || o.size < 0) {
    throw new InvalidArgumentError(opt('size'), 'must be an integer >= 0', o.size);
  }
  const maxOverflow = o.maxOverflow ?? 0;
  if (!Number.isInteger(maxOverflow) || maxOverflow < 0) {
    throw new InvalidArgumentError(opt('maxOverflow'), 'must be an integer >= 0', o.maxOverflow);
  }
  if (o.size + maxOverflow < 1) {
    throw new InvalidArgumentError(opt('size'), 'size + maxOverflow must be at least 1', o.size);
  }
  const idleMs = o.idleMs ?? 10_000;
  if (!(idleMs >= 0) || !Number.isFinite(idleMs)) {
    throw new InvalidArgumentError(opt('idleMs'), 'must be a finite number of ms >= 0', o.idleMs);
  }
  const checkoutTimeoutMs = o.checkoutTimeoutMs ?? 5000;
  if (!(checkoutTimeoutMs > 0)) {
    throw new InvalidArgumentError(
      opt('checkoutTimeoutMs'),
      'must be a positive number of ms (or Infinity)',
      o.checkoutTimeoutMs,
    );
  }
  for (const key of ['prefill', 'destroyOnHolderExit'] as const) {
    if (o[key] !== undefined && typeof o[key] !== 'boolean') {
      throw new InvalidArgumentError(opt(key), 'must be a boolean', o[key]);
    }
  }
  if (o.strategy !== undefined && o.strategy !== 'lifo' && o.strategy !== 'fifo') {
    throw new InvalidArgumentError(opt('strategy'), 'must be lifo or fifo', o.strategy);
  }
  if (typeof o.create !== 'function')
    throw new InvalidArgumentError(opt('create'), 'must be a function', o.create);
  if (typeof o.destroy !== 'function')
    throw new InvalidArgumentError(opt('destroy'), 'must be a function', o.destroy);
  if (o.validate !== undefined && typeof o.validate !== 'function') {
    throw new InvalidArgumentError(opt('validate'), 'must be a function', o.validate);
  }
  const factory: ResourceFactory<R> = {
    create: o.create.bind(o),
    destroy: o.destroy.bind(o),
  };
  if (o.validate !== undefined) factory.validate = o.validate.bind(o);
  return {
    factory,
    size: o.size,
    maxOverflow,
    idleMs,
    checkoutTimeoutMs,
    prefill: o.prefill ?? true,
    destroyOnHolderExit: o.destroyOnHolderExit ?? false,
    lifo: o.strategy !== 'fifo',
  };
}

function holderOf(holder: Holder): AnyRef | Pid {
  if (holder !== null && typeof holder === 'object') {
    if ('self' in holder && isPid((holder as AgentContext).self)) return (holder as AgentContext).self;
    if (isPid(holder)) return holder;
  }
  throw new InvalidArgumentError('checkout option "holder"', 'must be an agent context, ref or pid', holder);
}

/**
 * A pool of reusable resources (connections, sessions, handles) owned by an agent.
 *
 * ```ts
 * const pool = await Pool.start(runtime, { name: 'db', size: 5, maxOverflow: 5, create: connect, destroy: (c) => c.end() });
 * const rows = await pool.withResource((db) => db.query('select 1'));
 * ```
 */
export class Pool<R> {
  /** The name shown in errors and telemetry. */
  readonly name: string;
  readonly runtime: Runtime;
  /** The owner agent. */
  readonly ref: PoolRef<R>;
  readonly #s: PoolState<R>;
  #closing: Promise<void> | null = null;

  private constructor(runtime: Runtime, ref: PoolRef<R>, state: PoolState<R>) {
    this.runtime = runtime;
    this.ref = ref;
    this.#s = state;
    this.name = state.name;
  }

  /**
   * Start a pool agent. With `prefill` (the default) resolves once the `size` resources exist;
   * rejects with ResourceCreateError (E_RESOURCE_CREATE_FAILED) if any `create` failed (those that
   * succeeded are destroyed), and with InvalidArgumentError (naming the option) for bad options.
   */
  static async start<R>(runtime: Runtime, options: PoolOptions<R>): Promise<Pool<R>> {
    const cfg = checkOptions(options);
    const state: PoolState<R> = {
      cfg,
      runtime,
      name: options.name ?? '',
      ctx: null,
      idle: [],
      out: new Map(),
      waiters: new Map(),
      creating: 0,
      validating: 0,
      destroying: 0,
      closed: false,
      busy: false,
      reapTimer: null,
      nextWaiter: 0,
      inflight: new Set(),
      created: 0,
      destroyed: 0,
      createFailures: 0,
      validationFailures: 0,
      checkouts: 0,
      timeouts: 0,
    };
    let ref: PoolRef<R>;
    try {
      ref = (await runtime.spawn(PoolAgent, state as PoolState<unknown>)) as unknown as PoolRef<R>;
    } catch (error) {
      // The create's own typed error is more useful than the kernel's wrapper around it.
      if (error instanceof InitError && error.cause instanceof ResourceCreateError) throw error.cause;
      throw error;
    }
    // However the owner ends (close, a kill, a supervisor's shutdown, runtime shutdown), the pool
    // closes with it: waiters are rejected and every resource, idle or lent, is destroyed. A kill
    // skips `terminate`, so this hook (run as the owner exits) is what makes the cleanup certain.
    runtime.onExit(ref, () => {
      void shutdown(state, 0);
    });
    return new Pool(runtime, ref, state);
  }

  /**
   * Borrow a resource: an idle one (health-checked first when `validate` is set), a new one while
   * below `size + maxOverflow`, or else the next one returned, in order of arrival. Rejects with
   * CheckoutTimeoutError (E_CHECKOUT_TIMEOUT) after `timeoutMs` on the runtime clock,
   * ResourceCreateError when the `create` made for this checkout fails, PoolClosedError once the
   * pool is closing, HolderExitedError when the bound holder exits first. Return it with `checkin`.
   */
  async checkout(options: CheckoutOptions = {}): Promise<R> {
    return (await this.#checkout(options)).resource;
  }

  async #checkout(options: CheckoutOptions = {}): Promise<{ resource: R; lease: Lease<R> }> {
    if (options === null || typeof options !== 'object') {
      throw new InvalidArgumentError('checkout options', 'must be an object', options);
    }
    const timeoutMs = options.timeoutMs ?? this.#s.cfg.checkoutTimeoutMs;
    if (!(timeoutMs > 0)) {
      throw new InvalidArgumentError(
        'checkout option "timeoutMs"',
        'must be a positive number of ms (or Infinity)',
        options.timeoutMs,
      );
    }
    const holder =
      options.holder === null
        ? undefined
        : options.holder === undefined
          ? this.runtime.self()
          : holderOf(options.holder);
    if (this.#closing !== null || this.#s.closed) throw new PoolClosedError(this.name);
    let answer: PoolReply<R>;
    try {
      // No call timeout: the pool's own deadline (runtime clock) decides, and always answers.
      answer = await this.runtime.call(
        this.ref,
        { type: 'checkout', timeoutMs, holder },
        Number.POSITIVE_INFINITY,
      );
    } catch (error) {
      // The owner is gone (closed, killed, runtime shut down): its exit hook has closed the pool.
      if (error instanceof NoProcessError || error instanceof ExitError) {
        throw new PoolClosedError(this.name);
      }
      throw error;
    }
    const a = answer as CheckoutReply<R>;
    if (!a.ok) throw a.error;
    return { resource: a.resource, lease: a.lease };
  }

  /**
   * Give a resource back (or destroy it, with `{destroy: true}`). Throws NotCheckedOutError
   * (E_NOT_CHECKED_OUT) at once for a value that is not checked out from this pool or is already
   * being returned. After `close` it does nothing: the resource has been destroyed.
   */
  checkin(resource: R, options: CheckinOptions = {}): void {
    const s = this.#s;
    if (s.closed) return;
    const lease = s.out.get(resource);
    if (lease === undefined || lease.returning) throw new NotCheckedOutError(this.name, resource);
    lease.returning = true;
    this.runtime.cast(this.ref, { type: 'checkin', lease, destroy: options.destroy === true });
  }

  /**
   * Check a resource out, run `fn` with it, and check it back in however `fn` ends (returns,
   * throws or rejects). Resolves or rejects as `fn` does.
   */
  async withResource<T>(fn: (resource: R) => T | Promise<T>, options?: CheckoutOptions): Promise<T> {
    if (typeof fn !== 'function')
      throw new InvalidArgumentError('withResource callback', 'must be a function', fn);
    const { resource, lease } = await this.#checkout(options);
    try {
      return await fn(resource);
    } finally {
      // The holder may have exited (resource already back, perhaps lent to someone else by now) or
      // the pool closed meanwhile: then there is nothing to return. Only this lease is checked in.
      const s = this.#s;
      if (!s.closed && s.out.get(resource) === lease && !lease.returning) {
        lease.returning = true;
        this.runtime.cast(this.ref, { type: 'checkin', lease, destroy: false });
      }
    }
  }

  /** The pool's books as of the last message its owner handled (a synchronous read). */
  stats(): PoolStats {
    const s = this.#s;
    const t = total(s);
    return {
      name: this.name,
      size: s.cfg.size,
      maxOverflow: s.cfg.maxOverflow,
      total: t,
      idle: s.idle.length,
      out: s.out.size,
      waiting: s.waiters.size,
      creating: s.creating,
      validating: s.validating,
      destroying: s.destroying,
      overflow: Math.max(0, t - s.cfg.size),
      created: s.created,
      destroyed: s.destroyed,
      createFailures: s.createFailures,
      validationFailures: s.validationFailures,
      checkouts: s.checkouts,
      timeouts: s.timeouts,
      closed: s.closed,
    };
  }

  /**
   * Close the pool: waiting checkouts reject with PoolClosedError, every resource (idle or lent
   * out) is destroyed, creates still running are awaited (at most `timeoutMs`, default 5000, on
   * the runtime clock; what they make later is destroyed when it arrives), then the owner agent
   * stops. Idempotent: later calls join the first.
   */
  close(options: { timeoutMs?: number } = {}): Promise<void> {
    const timeoutMs = options.timeoutMs ?? 5000;
    if (!(timeoutMs >= 0)) {
      return Promise.reject(
        new InvalidArgumentError('close option "timeoutMs"', 'must be a number of ms >= 0', timeoutMs),
      );
    }
    if (this.#closing === null) {
      this.#closing = this.runtime
        .call(this.ref, { type: 'close', timeoutMs }, Number.POSITIVE_INFINITY)
        .then(
          () => undefined,
          (error: unknown) => {
            // Already gone (runtime shut down): its terminate has done the same cleanup.
            if (error instanceof NoProcessError || error instanceof ExitError) return;
            throw error;
          },
        );
    }
    return this.#closing;
  }
}
