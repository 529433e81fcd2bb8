/**
 * Lease-based locks with fencing tokens.
 *
 * A `LeaseLock` is one agent that owns every lease it grants, so acquire, renew, release, expiry
 * and holder deaths are serialized by its mailbox and need no other locking. A lease is granted
 * to a holder agent for `ttlMs` on the runtime clock; it ends when released, when it expires (a
 * timer, checked again on every operation, so a lease is never honoured past its expiry even if
 * the timer's message is still queued), or when its holder exits (monitors). Then the next
 * waiter, in order of arrival, gets it. Waiters give up after `waitMs` with E_LEASE_TIMEOUT.
 *
 * Every grant carries a fencing token: one counter per lock, so tokens strictly increase for each
 * resource across all grants, expiries and holders (and, with the `lastToken` option, across a
 * lock that takes over from a stopped one). A lease alone cannot stop a holder that was
 * paused past its expiry from acting on stale belief; the storage it writes to can, by refusing
 * tokens lower than the highest it has seen (`FencedStore`, `Fence`).
 *
 * Telemetry: `['mabeam','lease','granted']`, `['mabeam','lease','released']` (metadata `reason`:
 * `release` or `holder_exit`), `['mabeam','lease','expired']`, `['mabeam','lease','timeout']`;
 * metadata carries the resource, token and holder.
 */
import {
  type AgentContext,
  type AgentRef,
  type AnyRef,
  type Behaviour,
  type CallResult,
  describe,
  ExitError,
  type From,
  InvalidArgumentError,
  isPid,
  MabeamError,
  type MonitorRef,
  type Name,
  NoProcessError,
  noreply,
  type Pid,
  pidKey,
  type Runtime,
  reply,
  type SystemMessage,
  type TimerRef,
} from '../kernel/index.js';

// ---- errors ------------------------------------------------------------------------------------

/** Error codes of lease locks and fenced resources (unique across mabeam, never reused). */
export const LeaseErrorCodes = {
  /** The resource did not become free within the acquire's `waitMs`. */
  TIMEOUT: 'E_LEASE_TIMEOUT',
  /** The token's lease is over (expired, released or its holder exited) and nobody holds the resource. */
  EXPIRED: 'E_LEASE_EXPIRED',
  /** The resource is leased under another token: this one is stale. */
  STALE_TOKEN: 'E_LEASE_STALE_TOKEN',
  /** The holder an acquire was made for exited (or was already gone) before the lease was granted. */
  HOLDER_EXITED: 'E_LEASE_HOLDER_EXITED',
  /** A fenced resource refused a write whose token is lower than the highest it has seen. */
  FENCED: 'E_LEASE_FENCED',
  /** The lock agent stopped (or crashed) before answering: `stop()`, a supervisor, a kill. */
  LOCK_STOPPED: 'E_LEASE_LOCK_STOPPED',
} as const;

/** An acquire waited `waitMs` without the resource becoming free. */
export class LeaseTimeoutError extends MabeamError {
  readonly resource: string;
  readonly waitMs: number;
  constructor(resource: string, waitMs: number, holder: Pid | undefined) {
    super(
      LeaseErrorCodes.TIMEOUT,
      `lease on ${JSON.stringify(resource)} not granted within ${waitMs} ms` +
        (holder === undefined ? '' : ` (held by ${pidString(holder)})`),
    );
    this.resource = resource;
    this.waitMs = waitMs;
  }
}

/** The token's lease has ended and the resource is free: renew or release came too late. */
export class LeaseExpiredError extends MabeamError {
  readonly resource: string;
  readonly token: number;
  constructor(resource: string, token: number) {
    super(
      LeaseErrorCodes.EXPIRED,
      `lease on ${JSON.stringify(resource)} with token ${token} is over (expired, released, or its holder exited)`,
    );
    this.resource = resource;
    this.token = token;
  }
}

/** The resource is leased under another token. */
export class StaleTokenError extends MabeamError {
  readonly resource: string;
  readonly token: number;
  readonly current: number;
  constructor(resource: string, token: number, current: number) {
    super(
      LeaseErrorCodes.STALE_TOKEN,
      `token ${token} is stale: ${JSON.stringify(resource)} is leased under token ${current}`,
    );
    this.resource = resource;
    this.token = token;
    this.current = current;
  }
}

/** The holder of a pending acquire exited before it was granted. */
export class LeaseHolderExitedError extends MabeamError {
  readonly resource: string;
  constructor(resource: string, holder: Pid, reason: unknown) {
    super(
      LeaseErrorCodes.HOLDER_EXITED,
      `acquire of ${JSON.stringify(resource)} for ${pidString(holder)} abandoned: the holder exited with reason ${describe(reason)}`,
    );
    this.resource = resource;
  }
}

/** A fenced resource refused a write carrying a token lower than the highest it has seen. */
export class FencedError extends MabeamError {
  readonly resource: string;
  readonly token: number;
  readonly highest: number;
  constructor(resource: string, token: number, highest: number) {
    super(
      LeaseErrorCodes.FENCED,
      `write to ${JSON.stringify(resource)} with token ${token} refused: token ${highest} has been seen (a later lease holder wrote)`,
    );
    this.resource = resource;
    this.token = token;
    this.highest = highest;
  }
}

/**
 * The lock agent is gone: it stopped (`LeaseLock.stop()`), was stopped by its supervisor or the
 * runtime, or crashed, before answering this call (a waiting acquire, or any call made after).
 * Every lease it granted ended with it.
 */
export class LeaseLockStoppedError extends MabeamError {
  /** The lock agent's exit reason (`noproc` when it was already gone at the call). */
  readonly reason: unknown;
  constructor(reason: unknown, cause?: unknown) {
    super(LeaseErrorCodes.LOCK_STOPPED, `lease lock stopped with reason ${describe(reason)}`, {
      cause,
    });
    this.reason = reason;
  }
}

function pidString(p: Pid): string {
  return `<${p.node}.${p.thread}.${p.id}>`;
}

// ---- public types ------------------------------------------------------------------------------

/** Who holds a lease: an agent's ref or pid, or (inside its callbacks) its context. */
export type LeaseHolder = AnyRef | Pid | AgentContext<unknown, unknown, unknown, unknown>;

/** A granted (or renewed) lease. */
export interface LeaseGrant {
  readonly resource: string;
  /** The fencing token: higher than every token granted before for this resource. */
  readonly token: number;
  /** Runtime-clock ms at which the lease ends unless renewed. */
  readonly expiresAt: number;
  readonly holder: Pid;
}

/** Options of `acquire`. */
export interface LeaseAcquireOptions {
  /** How long the lease lasts (ms, runtime clock) unless renewed. A finite number > 0. */
  readonly ttlMs: number;
  /**
   * How long to wait for the resource (ms, runtime clock) before E_LEASE_TIMEOUT. 0 fails at once
   * when it is held; Infinity waits for ever. Default 5000.
   */
  readonly waitMs?: number;
}

/** Options of `LeaseLock.start`. */
export interface LeaseLockOptions {
  /** Register the lock agent under this name. */
  readonly name?: Name;
  /**
   * The last token already issued for these resources (default 0): grants start above it. A lock
   * that takes over from one that stopped or crashed passes the highest token its fences have
   * seen (`Fence.highest`), so tokens keep increasing across the two and stale holders stay fenced.
   */
  readonly lastToken?: number;
}

export const LEASE_GRANTED = ['mabeam', 'lease', 'granted'] as const;
export const LEASE_RELEASED = ['mabeam', 'lease', 'released'] as const;
export const LEASE_EXPIRED = ['mabeam', 'lease', 'expired'] as const;
export const LEASE_TIMEOUT = ['mabeam', 'lease', 'timeout'] as const;

const DEFAULT_WAIT_MS = 5000;

// ---- the lock agent ----------------------------------------------------------------------------

type LeaseReply =
  | { readonly ok: true; readonly grant?: LeaseGrant }
  | { readonly ok: false; readonly error: Error };

/** @internal calls of the lock agent */
export type LeaseCall =
  | {
      readonly type: 'acquire';
      readonly resource: string;
      readonly holder: Pid;
      readonly ttlMs: number;
      readonly waitMs: number;
    }
  | { readonly type: 'renew'; readonly resource: string; readonly token: number; readonly ttlMs: number }
  | { readonly type: 'release'; readonly resource: string; readonly token: number };

/** @internal timer messages of the lock agent */
export type LeaseInfo =
  | {
      readonly type: 'expire';
      readonly resource: string;
      readonly token: number;
      /** Which arming of the lease's timer sent it: older ones (before a renew) are stale. */
      readonly arm: number;
    }
  | { readonly type: 'wait_timeout'; readonly waiter: number };

/** The lock agent's handle. */
export type LeaseLockRef = AgentRef<LeaseCall, LeaseReply, never, LeaseInfo>;
type LockCtx = AgentContext<LeaseCall, LeaseReply, never, LeaseInfo>;

interface Lease {
  readonly resource: string;
  readonly token: number;
  readonly holder: Pid;
  readonly holderKey: string;
  expiresAt: number;
  timer: TimerRef | null;
  /** Bumped each time the expiry timer is armed; the timer's message carries it. */
  arm: number;
}

interface Waiter {
  readonly id: number;
  readonly resource: string;
  readonly holder: Pid;
  readonly holderKey: string;
  readonly from: From<LeaseReply>;
  readonly ttlMs: number;
  readonly waitMs: number;
  timer: TimerRef | null;
}

interface Entry {
  lease: Lease | null;
  /** Insertion order is arrival order: the first waiter is next. */
  readonly waiters: Map<number, Waiter>;
}

interface Watched {
  readonly monitor: MonitorRef;
  readonly leases: Set<string>;
  readonly waits: Set<number>;
}

/** The lock's state; the handle reads it (`holder`), only the agent writes it. @internal */
export interface LockState {
  readonly runtime: Runtime;
  /** Resources with a lease or waiters; a free, unwanted resource has no entry. */
  readonly resources: Map<string, Entry>;
  /** Holders (of leases or waits) by pid key, each monitored once. */
  readonly holders: Map<string, Watched>;
  readonly waiters: Map<number, Waiter>;
  lastToken: number;
  nextWaiter: number;
}

function emit(
  s: LockState,
  event: readonly string[],
  lease: Lease,
  extra: Record<string, unknown> = {},
): void {
  const tel = s.runtime.telemetry;
  if (!tel.enabled) return;
  tel.execute(
    event,
    { token: lease.token, expiresAt: lease.expiresAt },
    { resource: lease.resource, token: lease.token, holder: lease.holder, ...extra },
  );
}

function watch(s: LockState, ctx: LockCtx, holder: Pid, key: string): Watched {
  let w = s.holders.get(key);
  if (w === undefined) {
    w = { monitor: ctx.monitor(holder), leases: new Set(), waits: new Set() };
    s.holders.set(key, w);
  }
  return w;
}

function unwatchIfIdle(s: LockState, ctx: LockCtx, key: string): void {
  const w = s.holders.get(key);
  if (w === undefined || w.leases.size > 0 || w.waits.size > 0) return;
  ctx.demonitor(w.monitor);
  s.holders.delete(key);
}

function entryOf(s: LockState, resource: string): Entry {
  let e = s.resources.get(resource);
  if (e === undefined) {
    e = { lease: null, waiters: new Map() };
    s.resources.set(resource, e);
  }
  return e;
}

function dropIfUnused(s: LockState, resource: string, e: Entry): void {
  if (e.lease === null && e.waiters.size === 0) s.resources.delete(resource);
}

function grant(
  s: LockState,
  ctx: LockCtx,
  e: Entry,
  resource: string,
  holder: Pid,
  key: string,
  ttlMs: number,
) {
  const now = ctx.runtime.clock.now();
  const token = ++s.lastToken;
  const lease: Lease = {
    resource,
    token,
    holder,
    holderKey: key,
    expiresAt: now + ttlMs,
    timer: null,
    arm: 0,
  };
  armExpiry(lease, ctx, ttlMs);
  e.lease = lease;
  watch(s, ctx, holder, key).leases.add(resource);
  emit(s, LEASE_GRANTED, lease);
  return toGrant(lease);
}

/** (Re-)arm the lease's expiry timer for `ms` from now, replacing any earlier one. */
function armExpiry(lease: Lease, ctx: LockCtx, ms: number): void {
  if (lease.timer !== null) ctx.cancelTimer(lease.timer);
  lease.arm++;
  lease.timer = ctx.sendAfter(
    { type: 'expire', resource: lease.resource, token: lease.token, arm: lease.arm },
    Math.max(0, ms),
  );
}

function toGrant(lease: Lease): LeaseGrant {
  return { resource: lease.resource, token: lease.token, expiresAt: lease.expiresAt, holder: lease.holder };
}

/** Remove a waiter from every book (its timer too). */
function dropWaiter(s: LockState, ctx: LockCtx, w: Waiter): void {
  s.waiters.delete(w.id);
  const e = s.resources.get(w.resource);
  e?.waiters.delete(w.id);
  if (w.timer !== null) ctx.cancelTimer(w.timer);
  s.holders.get(w.holderKey)?.waits.delete(w.id);
  unwatchIfIdle(s, ctx, w.holderKey);
}

/** End the resource's lease and hand the resource to the next waiter whose holder still lives. */
function endLease(s: LockState, ctx: LockCtx, e: Entry, lease: Lease): void {
  e.lease = null;
  if (lease.timer !== null) ctx.cancelTimer(lease.timer);
  s.holders.get(lease.holderKey)?.leases.delete(lease.resource);
  unwatchIfIdle(s, ctx, lease.holderKey);
  for (const w of e.waiters.values()) {
    dropWaiter(s, ctx, w);
    if (!ctx.runtime.isAlive(w.holder)) {
      // Its DOWN is on the way; answer now rather than grant a lease nobody can use.
      ctx.reply(w.from, { ok: false, error: new LeaseHolderExitedError(w.resource, w.holder, 'noproc') });
      continue;
    }
    const g = grant(s, ctx, e, lease.resource, w.holder, w.holderKey, w.ttlMs);
    ctx.reply(w.from, { ok: true, grant: g });
    return;
  }
  dropIfUnused(s, lease.resource, e);
}

/**
 * Expire the resource's lease if its time is up, whether or not its timer message has been
 * handled yet: an operation never sees a lease past its expiry.
 */
function settle(s: LockState, ctx: LockCtx, resource: string): Entry | undefined {
  const e = s.resources.get(resource);
  const lease = e?.lease;
  if (e === undefined || lease == null) return e;
  if (ctx.runtime.clock.now() >= lease.expiresAt) {
    emit(s, LEASE_EXPIRED, lease);
    endLease(s, ctx, e, lease);
    return s.resources.get(resource);
  }
  return e;
}

/** Why `token` does not hold `resource`. */
function notHeld(e: Entry | undefined, resource: string, token: number): Error {
  const lease = e?.lease;
  if (lease == null) return new LeaseExpiredError(resource, token);
  return new StaleTokenError(resource, token, lease.token);
}

function handle(msg: LeaseCall, from: From<LeaseReply>, s: LockState, ctx: LockCtx): LeaseReply | null {
  switch (msg.type) {
    case 'acquire': {
      const { resource, holder, ttlMs, waitMs } = msg;
      if (!ctx.runtime.isAlive(holder)) {
        return { ok: false, error: new LeaseHolderExitedError(resource, holder, 'noproc') };
      }
      const e = settle(s, ctx, resource) ?? entryOf(s, resource);
      const key = pidKey(holder);
      if (e.lease === null && e.waiters.size === 0) {
        return { ok: true, grant: grant(s, ctx, e, resource, holder, key, ttlMs) };
      }
      if (waitMs === 0) {
        const tel = s.runtime.telemetry;
        if (tel.enabled) tel.execute(LEASE_TIMEOUT, { waitMs }, { resource, holder });
        return { ok: false, error: new LeaseTimeoutError(resource, 0, e.lease?.holder) };
      }
      const w: Waiter = {
        id: ++s.nextWaiter,
        resource,
        holder,
        holderKey: key,
        from,
        ttlMs,
        waitMs,
        timer: null,
      };
      if (waitMs !== Number.POSITIVE_INFINITY)
        w.timer = ctx.sendAfter({ type: 'wait_timeout', waiter: w.id }, waitMs);
      e.waiters.set(w.id, w);
      s.waiters.set(w.id, w);
      watch(s, ctx, holder, key).waits.add(w.id);
      return null;
    }
    case 'renew': {
      const e = settle(s, ctx, msg.resource);
      const lease = e?.lease;
      if (lease == null || lease.token !== msg.token)
        return { ok: false, error: notHeld(e, msg.resource, msg.token) };
      lease.expiresAt = ctx.runtime.clock.now() + msg.ttlMs;
      armExpiry(lease, ctx, msg.ttlMs);
      return { ok: true, grant: toGrant(lease) };
    }
    case 'release': {
      const e = settle(s, ctx, msg.resource);
      const lease = e?.lease;
      if (e === undefined || lease == null || lease.token !== msg.token) {
        return { ok: false, error: notHeld(e, msg.resource, msg.token) };
      }
      emit(s, LEASE_RELEASED, lease, { reason: 'release' });
      endLease(s, ctx, e, lease);
      return { ok: true };
    }
    default:
      return { ok: false, error: new InvalidArgumentError('lease call', 'unknown operation', msg) };
  }
}

/** The lock agent. Started by `LeaseLock.start`; exported for supervision introspection. */
export const LeaseLockBehaviour: Behaviour<LockState, LockState, LeaseCall, LeaseReply, never, LeaseInfo> = {
  init: (s) => s,

  handleCall(msg, from, s, ctx): CallResult<LeaseReply, LockState> {
    const answer = handle(msg, from, s, ctx);
    return answer === null ? noreply(s) : reply(answer, s);
  },

  handleInfo(msg: LeaseInfo | SystemMessage, s, ctx) {
    switch (msg.type) {
      case 'expire': {
        const lease = s.resources.get(msg.resource)?.lease;
        // A lease renewed (new timer) or already ended leaves its old timer's message stale.
        if (lease == null || lease.token !== msg.token || lease.arm !== msg.arm) return s;
        lease.timer = null;
        settle(s, ctx, msg.resource);
        // The timer fired before the clock reached expiresAt (Node runs timers on libuv's cached
        // loop time, which lags RealClock's performance.now()): wait out the rest, or nothing
        // would end this lease until another operation touched the resource.
        if (s.resources.get(msg.resource)?.lease === lease) {
          armExpiry(lease, ctx, lease.expiresAt - ctx.runtime.clock.now());
        }
        return s;
      }
      case 'wait_timeout': {
        const w = s.waiters.get(msg.waiter);
        if (w === undefined) return s;
        w.timer = null;
        // A lease whose time is up (its timer's message may still be queued behind this one)
        // ends first: the waiter may be next, and is then granted rather than timed out.
        settle(s, ctx, w.resource);
        if (!s.waiters.has(w.id)) return s;
        dropWaiter(s, ctx, w);
        const e = s.resources.get(w.resource);
        if (e !== undefined) dropIfUnused(s, w.resource, e);
        const tel = s.runtime.telemetry;
        if (tel.enabled)
          tel.execute(LEASE_TIMEOUT, { waitMs: w.waitMs }, { resource: w.resource, holder: w.holder });
        ctx.reply(w.from, {
          ok: false,
          error: new LeaseTimeoutError(w.resource, w.waitMs, e?.lease?.holder),
        });
        return s;
      }
      case 'DOWN': {
        const key = pidKey(msg.pid);
        const watched = s.holders.get(key);
        if (watched === undefined || watched.monitor.monitorId !== msg.monitor.monitorId) return s;
        for (const id of [...watched.waits]) {
          const w = s.waiters.get(id);
          if (w === undefined) continue;
          dropWaiter(s, ctx, w);
          ctx.reply(w.from, {
            ok: false,
            error: new LeaseHolderExitedError(w.resource, w.holder, msg.reason),
          });
        }
        for (const resource of [...watched.leases]) {
          const e = s.resources.get(resource);
          const lease = e?.lease;
          if (e === undefined || lease == null) continue;
          emit(s, LEASE_RELEASED, lease, { reason: 'holder_exit', exitReason: msg.reason });
          endLease(s, ctx, e, lease);
        }
        s.holders.delete(key);
        return s;
      }
      default:
        return s;
    }
  },
};

// ---- input -------------------------------------------------------------------------------------

function checkResource(resource: unknown): string {
  if (typeof resource !== 'string' || resource === '') {
    throw new InvalidArgumentError('resource', 'must be a non-empty string', resource);
  }
  return resource;
}

function checkTtl(ttlMs: unknown): number {
  if (typeof ttlMs !== 'number' || !Number.isFinite(ttlMs) || ttlMs <= 0) {
    throw new InvalidArgumentError('ttlMs', 'must be a finite number of ms > 0', ttlMs);
  }
  return ttlMs;
}

function checkToken(token: unknown): number {
  if (typeof token !== 'number' || !Number.isSafeInteger(token) || token < 1) {
    throw new InvalidArgumentError('token', 'must be a fencing token (an integer >= 1)', token);
  }
  return token;
}

function holderPid(holder: unknown): Pid {
  if (holder !== null && typeof holder === 'object' && 'self' in holder && isPid(holder.self)) {
    return holder.self;
  }
  if (isPid(holder)) return holder;
  throw new InvalidArgumentError('holder', 'must be an agent ref, pid or agent context', holder);
}

// ---- the service -------------------------------------------------------------------------------

/** A lease lock service: one agent granting leases on named resources. */
export class LeaseLock {
  readonly runtime: Runtime;
  /** The lock agent. */
  readonly ref: LeaseLockRef;
  readonly #s: LockState;

  private constructor(runtime: Runtime, ref: LeaseLockRef, state: LockState) {
    this.runtime = runtime;
    this.ref = ref;
    this.#s = state;
  }

  /** Start the lock agent (top level on `runtime`). */
  static async start(runtime: Runtime, options: LeaseLockOptions = {}): Promise<LeaseLock> {
    const lastToken = options.lastToken ?? 0;
    if (!Number.isSafeInteger(lastToken) || lastToken < 0) {
      throw new InvalidArgumentError('lastToken', 'must be a safe integer >= 0', lastToken);
    }
    const state: LockState = {
      runtime,
      resources: new Map(),
      holders: new Map(),
      waiters: new Map(),
      lastToken,
      nextWaiter: 0,
    };
    const ref = await runtime.spawn(
      LeaseLockBehaviour,
      state,
      options.name === undefined ? {} : { name: options.name },
    );
    return new LeaseLock(runtime, ref, state);
  }

  async #call(msg: LeaseCall): Promise<LeaseGrant | undefined> {
    let answer: LeaseReply;
    try {
      answer = await this.runtime.call(this.ref, msg, Number.POSITIVE_INFINITY);
    } catch (error) {
      if (error instanceof ExitError) throw new LeaseLockStoppedError(error.reason, error);
      if (error instanceof NoProcessError) throw new LeaseLockStoppedError('noproc', error);
      throw error;
    }
    if (!answer.ok) throw answer.error;
    return answer.grant;
  }

  /**
   * Lease `resource` for `holder` for `ttlMs`: at once when it is free, else after the waiters
   * before this one, in order of arrival. Rejects with LeaseTimeoutError (E_LEASE_TIMEOUT) after
   * `waitMs`, LeaseHolderExitedError (E_LEASE_HOLDER_EXITED) when the holder exits first,
   * LeaseLockStoppedError (E_LEASE_LOCK_STOPPED) when the lock agent stops or crashes first (or
   * had already), and InvalidArgumentError naming the field for bad input. Not re-entrant: a
   * holder that acquires a resource it holds waits for its own lease to end.
   */
  async acquire(resource: string, holder: LeaseHolder, options: LeaseAcquireOptions): Promise<LeaseGrant> {
    checkResource(resource);
    const pid = holderPid(holder);
    if (options === null || typeof options !== 'object') {
      throw new InvalidArgumentError('acquire options', 'must be an object with ttlMs', options);
    }
    const ttlMs = checkTtl(options.ttlMs);
    const waitMs = options.waitMs ?? DEFAULT_WAIT_MS;
    if (typeof waitMs !== 'number' || Number.isNaN(waitMs) || waitMs < 0) {
      throw new InvalidArgumentError(
        'waitMs',
        'must be a number of ms >= 0 (Infinity: wait for ever)',
        waitMs,
      );
    }
    // A plain pid crossing into the agent's books: keep only its address.
    const h = { node: pid.node, thread: pid.thread, id: pid.id };
    return (await this.#call({ type: 'acquire', resource, holder: h, ttlMs, waitMs })) as LeaseGrant;
  }

  /**
   * Extend the lease `token` holds on `resource` to `ttlMs` from now. Rejects with
   * LeaseExpiredError (E_LEASE_EXPIRED) when that lease is over and the resource free, or
   * StaleTokenError (E_LEASE_STALE_TOKEN) when the resource is leased under another token, and
   * LeaseLockStoppedError (E_LEASE_LOCK_STOPPED) when the lock agent is gone.
   */
  async renew(resource: string, token: number, ttlMs: number): Promise<LeaseGrant> {
    checkResource(resource);
    checkToken(token);
    checkTtl(ttlMs);
    return (await this.#call({ type: 'renew', resource, token, ttlMs })) as LeaseGrant;
  }

  /** End the lease `token` holds on `resource`. Same errors as `renew`. */
  async release(resource: string, token: number): Promise<void> {
    checkResource(resource);
    checkToken(token);
    await this.#call({ type: 'release', resource, token });
  }

  /**
   * Who holds `resource` now (a synchronous read of the lock's books), or undefined. A lease
   * whose expiry has passed is reported as ended even before the lock has handled its timer.
   */
  holder(resource: string): LeaseGrant | undefined {
    const lease = this.#s.resources.get(resource)?.lease;
    if (lease == null || this.runtime.clock.now() >= lease.expiresAt) return undefined;
    return toGrant(lease);
  }

  /** Acquires waiting for `resource`. */
  waiting(resource: string): number {
    return this.#s.resources.get(resource)?.waiters.size ?? 0;
  }

  /**
   * Stop the lock agent: every lease ends with it; waiting acquires, and every call made
   * afterwards, reject with LeaseLockStoppedError (E_LEASE_LOCK_STOPPED, `reason` 'shutdown' for a
   * waiting acquire, 'noproc' for a later call). Its successor should be started with `lastToken`.
   */
  stop(): Promise<void> {
    return this.runtime.stop(this.ref, 'shutdown');
  }
}

// ---- fencing -----------------------------------------------------------------------------------

/**
 * The check a fenced resource makes: remember the highest token seen, refuse lower ones. Equal
 * tokens pass (one holder writing several times under one lease).
 */
export class Fence {
  readonly resource: string;
  #highest = 0;

  constructor(resource: string) {
    this.resource = checkResource(resource);
  }

  /** The highest token seen (0 before the first). */
  get highest(): number {
    return this.#highest;
  }

  /** Accept `token` (raising the highest seen) or throw FencedError (E_LEASE_FENCED). */
  check(token: number): void {
    checkToken(token);
    if (token < this.#highest) throw new FencedError(this.resource, token, this.#highest);
    this.#highest = token;
  }
}

/**
 * A store that guards each key with a `Fence`: a write carries the writer's fencing token for that
 * key and is refused when a later lease's token has already written. Stands for the storage a
 * lease protects (a database row with a token column, an object store with conditional writes).
 */
export class FencedStore<V> {
  readonly #fences = new Map<string, Fence>();
  readonly #values = new Map<string, V>();

  /** Write `value` under `key` if `token` is not lower than the highest seen for `key`. */
  write(key: string, token: number, value: V): void {
    let fence = this.#fences.get(key);
    if (fence === undefined) {
      fence = new Fence(key);
      fence.check(token);
      this.#fences.set(key, fence);
    } else fence.check(token);
    this.#values.set(key, value);
  }

  /** The fence guarding `key` (undefined before its first write). */
  fence(key: string): Fence | undefined {
    return this.#fences.get(key);
  }

  read(key: string): V | undefined {
    return this.#values.get(key);
  }

  /** The highest token that has written `key` (0 if none). */
  highestToken(key: string): number {
    return this.#fences.get(key)?.highest ?? 0;
  }
}
