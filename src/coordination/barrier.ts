/**
 * Barriers as supervised session agents (DESIGN.md, "Coordination sessions are agents").
 *
 * One session agent per barrier, a temporary child of the `Barriers` service's dynamic
 * supervisor. The session monitors every party and counts arrivals; when all n parties have
 * arrived it trips, answering every waiting caller and messaging every waiting agent at once. It
 * fails for everyone instead when a party that has not arrived dies (naming that party), when its
 * deadline (a runtime timer, so a VirtualClock drives it in tests) passes with parties missing
 * (naming them), or when it is closed. A party that dies after arriving has done what the
 * barrier asked of it: its arrival stands, as a consensus vote cast before a crash stands.
 *
 * A barrier is one-shot by default. With `cyclic: true` it re-arms after each trip (a new
 * generation, with a fresh deadline) until it fails or is closed; a party that died after
 * arriving then fails the next generation at once.
 *
 * Telemetry: `['mabeam','barrier','tripped']` (measurements `parties`, `elapsedMs`) and
 * `['mabeam','barrier','failed']` (measurements `arrived`, `missing`; metadata `reason`, `party`,
 * `missing` names). Metadata always carries the barrier id, the generation and the result.
 */
import {
  type AgentContext,
  type AgentRef,
  type AnyRef,
  type Behaviour,
  type CallResult,
  type CastResult,
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
  stop,
  type TimerRef,
} from '../kernel/index.js';
import { SessionService } from './session-service.js';

// ---- errors ------------------------------------------------------------------------------------

/** Error codes of barriers (unique across mabeam, never reused). */
export const BarrierErrorCodes = {
  /** The barrier failed (a party exited, the deadline passed, it was closed or its session died). */
  BROKEN: 'E_BARRIER_BROKEN',
  /** Someone arrived for a party the barrier does not have. */
  NOT_PARTY: 'E_BARRIER_NOT_PARTY',
  /** A party arrived a second time in the same generation. */
  ALREADY_ARRIVED: 'E_BARRIER_ALREADY_ARRIVED',
} as const;

/** The barrier failed before (or instead of) tripping; `result` says why. */
export class BarrierBrokenError extends MabeamError {
  readonly result: BarrierFailure;
  constructor(result: BarrierFailure) {
    super(BarrierErrorCodes.BROKEN, `barrier ${describe(result.id)} failed: ${explain(result)}`);
    this.result = result;
  }
}

/** An arrival for something that is not one of the barrier's parties. */
export class NotPartyError extends MabeamError {
  readonly barrier: BarrierId;
  constructor(barrier: BarrierId, party: unknown) {
    super(BarrierErrorCodes.NOT_PARTY, `${describe(party)} is not a party of barrier ${describe(barrier)}`);
    this.barrier = barrier;
  }
}

/** A party arrived twice in one generation. */
export class AlreadyArrivedError extends MabeamError {
  readonly barrier: BarrierId;
  readonly party: string;
  readonly generation: number;
  constructor(barrier: BarrierId, party: string, generation: number) {
    super(
      BarrierErrorCodes.ALREADY_ARRIVED,
      `party ${JSON.stringify(party)} already arrived at barrier ${describe(barrier)} (generation ${generation})`,
    );
    this.barrier = barrier;
    this.party = party;
    this.generation = generation;
  }
}

function explain(r: BarrierFailure): string {
  const missing = r.missing.map((m) => JSON.stringify(m)).join(', ');
  switch (r.reason) {
    case 'party_exit':
      return `party ${JSON.stringify(r.party)} exited with reason ${describe(r.exitReason)}`;
    case 'deadline':
      return `the deadline passed with ${r.missing.length} of ${r.parties.length} parties missing: ${missing}`;
    case 'closed':
      return 'it was closed before all parties arrived';
    default:
      return `its session exited with reason ${describe(r.exitReason)}`;
  }
}

// ---- public types ------------------------------------------------------------------------------

export type BarrierId = number | string;

/**
 * A party, given as a registered name (resolved when the barrier is created), an agent ref or
 * pid (named by its registered name if it has one, else by its pid), or a ref with an explicit
 * name.
 */
export type PartySpec = Name | AnyRef | Pid | { readonly name: string; readonly ref: AnyRef | Pid };

/** Who arrives: a party's name, its ref or pid, or (inside the party's callbacks) its context. */
export type PartyArg = Name | AnyRef | Pid | AgentContext<unknown, unknown, unknown, unknown>;

/** Options of `Barriers.create`. */
export interface BarrierOptions {
  /** The n parties (n >= 1), each once. */
  readonly parties: readonly PartySpec[];
  /**
   * Runtime-clock ms from the barrier's start (for a cyclic barrier, from each generation's
   * start) until it fails with the parties still missing. Infinity waits forever.
   */
  readonly deadlineMs: number;
  /** The barrier id in results, errors and telemetry; default a per-service counter. */
  readonly id?: BarrierId;
  /** Re-arm after each trip (a new generation) until failed or closed. Default false. */
  readonly cyclic?: boolean;
}

/** Options of the service. */
export interface BarriersOptions {
  /** Most barriers at once (the dynamic supervisor's maxChildren). Default: no limit. */
  readonly maxBarriers?: number;
}

/** Every party arrived. */
export interface BarrierTripped {
  readonly outcome: 'tripped';
  readonly id: BarrierId;
  /** 0 for the first (for a one-shot barrier, the only) generation. */
  readonly generation: number;
  /** Every party's name, in the order given. */
  readonly parties: readonly string[];
  /** Runtime-clock ms from the generation's start to the trip. */
  readonly elapsedMs: number;
}

/** The barrier failed: nobody waiting on it passes. */
export interface BarrierFailure {
  readonly outcome: 'failed';
  readonly id: BarrierId;
  readonly generation: number;
  /**
   * `party_exit`: `party` died before arriving (or, cyclic, before this generation started);
   * `deadline`: the deadline passed; `closed`: `close()` was called; `session_exit`: the session
   * agent itself was stopped or killed (say, by the service's shutdown).
   */
  readonly reason: 'party_exit' | 'deadline' | 'closed' | 'session_exit';
  /** The party that died, for `party_exit`. */
  readonly party?: string;
  /** The dead party's (or the session's) exit reason, for `party_exit` and `session_exit`. */
  readonly exitReason?: unknown;
  readonly parties: readonly string[];
  /** Parties that had arrived in this generation. */
  readonly arrived: readonly string[];
  /** Parties that had not. */
  readonly missing: readonly string[];
}

export type BarrierResult = BarrierTripped | BarrierFailure;

/**
 * What a waiting agent receives in handleInfo (see `BarrierHandle.castArrive`): the trip, the
 * failure, or the refusal of its arrival (arrived twice).
 */
export type BarrierMessage =
  | {
      readonly type: 'barrier';
      readonly id: BarrierId;
      readonly outcome: 'tripped';
      readonly result: BarrierTripped;
    }
  | {
      readonly type: 'barrier';
      readonly id: BarrierId;
      readonly outcome: 'failed';
      readonly result: BarrierFailure;
    }
  | {
      readonly type: 'barrier';
      readonly id: BarrierId;
      readonly outcome: 'refused';
      readonly error: AlreadyArrivedError | BarrierBrokenError;
    };

/** True when a message is a barrier's answer to an agent. */
export function isBarrierMessage(msg: unknown): msg is BarrierMessage {
  return (
    msg !== null &&
    typeof msg === 'object' &&
    (msg as { type?: unknown }).type === 'barrier' &&
    'outcome' in msg
  );
}

export const BARRIER_TRIPPED = ['mabeam', 'barrier', 'tripped'] as const;
export const BARRIER_FAILED = ['mabeam', 'barrier', 'failed'] as const;

// ---- the session agent -------------------------------------------------------------------------

interface ArriveOk {
  readonly ok: true;
  readonly generation: number;
  readonly result?: BarrierTripped;
}
type ArriveReply = ArriveOk | { readonly ok: false; readonly error: Error };

/** @internal calls of a session */
export type BarrierCall =
  | { readonly type: 'arrive'; readonly index: number; readonly wait: boolean }
  | { readonly type: 'close' };
/** @internal casts of a session */
export interface BarrierCast {
  readonly type: 'arrive';
  readonly index: number;
  readonly notify: Pid;
  /** Its key in `BarrierSession.casting`, cleared when the session handles it. */
  readonly ticket: number;
}
/** @internal timer message of a session */
export interface BarrierDeadline {
  readonly type: 'deadline';
  readonly generation: number;
}

/** A session agent's handle. */
export type BarrierRef = AgentRef<BarrierCall, ArriveReply | undefined, BarrierCast, BarrierDeadline>;
type SessionCtx = AgentContext<BarrierCall, ArriveReply | undefined, BarrierCast, BarrierDeadline>;

/**
 * The session's state, made by `create` and shared with the handle: a session that is killed
 * still lets the handle report who had arrived and tell the waiting agents.
 * @internal
 */
export interface BarrierSession {
  readonly id: BarrierId;
  readonly names: readonly string[];
  readonly pids: readonly Pid[];
  readonly byPid: ReadonlyMap<string, number>;
  readonly deadlineMs: number;
  readonly cyclic: boolean;
  readonly done: (result: BarrierResult) => void;
  generation: number;
  startedAt: number;
  arrived: Uint8Array;
  count: number;
  /** Exit reasons of parties that died after arriving (cyclic: they fail the next generation). */
  readonly dead: Map<number, unknown>;
  calls: From<ArriveReply | undefined>[];
  notify: Pid[];
  /**
   * Arrivals cast by `castArrive` that the session has not handled yet, by ticket: an arrival
   * still in the mailbox when the session stops is answered from here (a refusal), not lost.
   */
  readonly casting: Map<number, { readonly notify: Pid; readonly index: number }>;
  nextTicket: number;
  timer: TimerRef | null;
  monitors: Map<number, number>;
  ended: boolean;
}

function failure(
  s: BarrierSession,
  reason: BarrierFailure['reason'],
  extra: { party?: string; exitReason?: unknown } = {},
): BarrierFailure {
  const arrived: string[] = [];
  const missing: string[] = [];
  for (let i = 0; i < s.names.length; i++) (s.arrived[i] ? arrived : missing).push(s.names[i] as string);
  return {
    outcome: 'failed',
    id: s.id,
    generation: s.generation,
    reason,
    ...extra,
    parties: s.names,
    arrived,
    missing,
  };
}

function publish(runtime: Runtime, result: BarrierResult): void {
  const tel = runtime.telemetry;
  if (!tel.enabled) return;
  if (result.outcome === 'tripped') {
    tel.execute(
      BARRIER_TRIPPED,
      { parties: result.parties.length, elapsedMs: result.elapsedMs },
      { id: result.id, generation: result.generation, result },
    );
  } else {
    tel.execute(
      BARRIER_FAILED,
      { arrived: result.arrived.length, missing: result.missing.length },
      {
        id: result.id,
        generation: result.generation,
        reason: result.reason,
        party: result.party,
        missing: result.missing,
        result,
      },
    );
  }
}

/** Send `msg` to an agent that may have exited meanwhile (a dead one has nobody to tell). */
function tell(runtime: Runtime, pid: Pid, msg: BarrierMessage): void {
  try {
    runtime.send(pid, msg);
  } catch {
    // A full mailbox under the reject policy: like a timer, there is no sender to tell.
  }
}

/**
 * Refuse every cast arrival the session has not handled (it is stopping, or has stopped, with
 * them in its mailbox): the barrier has failed, or (one-shot, tripped) every party had arrived.
 * @internal (the handle's exit hook uses it too)
 */
export function refuseCasting(s: BarrierSession, runtime: Runtime, final: BarrierResult): void {
  if (s.casting.size === 0) return;
  const casting = [...s.casting.values()];
  s.casting.clear();
  const broken = final.outcome === 'failed' ? new BarrierBrokenError(final) : undefined;
  for (const { notify, index } of casting) {
    const error = broken ?? new AlreadyArrivedError(s.id, s.names[index] as string, final.generation);
    tell(runtime, notify, { type: 'barrier', id: s.id, outcome: 'refused', error });
  }
}

/** End the barrier for everyone with `result`. @internal (the handle's exit hook uses it too) */
export function failAll(s: BarrierSession, runtime: Runtime, result: BarrierFailure, ctx?: SessionCtx): void {
  s.ended = true;
  const error = new BarrierBrokenError(result);
  if (ctx !== undefined) for (const from of s.calls) ctx.reply(from, { ok: false, error });
  const msg: BarrierMessage = { type: 'barrier', id: s.id, outcome: 'failed', result };
  for (const pid of s.notify) tell(runtime, pid, msg);
  s.calls = [];
  s.notify = [];
  refuseCasting(s, runtime, result);
  s.done(result);
  publish(runtime, result);
}

function fail(
  s: BarrierSession,
  ctx: SessionCtx,
  reason: BarrierFailure['reason'],
  extra?: { party?: string; exitReason?: unknown },
) {
  failAll(s, ctx.runtime, failure(s, reason, extra), ctx);
  // `normal`: a decided barrier is finished work, not a crash, for its temporary supervisor slot.
  return stop('normal', s);
}

function armDeadline(s: BarrierSession, ctx: SessionCtx): void {
  if (s.deadlineMs !== Number.POSITIVE_INFINITY) {
    s.timer = ctx.sendAfter({ type: 'deadline', generation: s.generation }, s.deadlineMs);
  }
}

/** Start a generation: a party that died after arriving in the last one fails it at once. */
function begin(s: BarrierSession, ctx: SessionCtx): CastResult<BarrierSession> {
  for (const [i, exitReason] of s.dead) {
    return fail(s, ctx, 'party_exit', { party: s.names[i] as string, exitReason });
  }
  armDeadline(s, ctx);
  return s;
}

function trip(s: BarrierSession, ctx: SessionCtx): CastResult<BarrierSession> {
  const now = ctx.runtime.clock.now();
  const result: BarrierTripped = {
    outcome: 'tripped',
    id: s.id,
    generation: s.generation,
    parties: s.names,
    elapsedMs: now - s.startedAt,
  };
  const answer: ArriveReply = { ok: true, generation: s.generation, result };
  for (const from of s.calls) ctx.reply(from, answer);
  const msg: BarrierMessage = { type: 'barrier', id: s.id, outcome: 'tripped', result };
  for (const pid of s.notify) ctx.send(pid, msg);
  publish(ctx.runtime, result);
  if (!s.cyclic) {
    s.ended = true;
    // Arrivals still queued can only be second ones: every party has arrived.
    refuseCasting(s, ctx.runtime, result);
    s.done(result);
    return stop('normal', s);
  }
  if (s.timer !== null) ctx.cancelTimer(s.timer);
  s.timer = null;
  s.generation++;
  s.startedAt = now;
  s.arrived = new Uint8Array(s.names.length);
  s.count = 0;
  s.calls = [];
  s.notify = [];
  return begin(s, ctx);
}

/** Record an arrival; an error when the party already arrived this generation. */
function arrive(s: BarrierSession, index: number): AlreadyArrivedError | undefined {
  if (s.arrived[index] === 1) return new AlreadyArrivedError(s.id, s.names[index] as string, s.generation);
  s.arrived[index] = 1;
  s.count++;
  return undefined;
}

/** The session agent. Started by `Barriers.create`; exported for supervision introspection. */
export const BarrierSessionBehaviour: Behaviour<
  BarrierSession,
  BarrierSession,
  BarrierCall,
  ArriveReply | undefined,
  BarrierCast,
  BarrierDeadline
> = {
  init(s, ctx) {
    s.startedAt = ctx.runtime.clock.now();
    // An already dead party answers the monitor with a DOWN at once, failing the barrier.
    for (let i = 0; i < s.pids.length; i++) {
      const m: MonitorRef = ctx.monitor(s.pids[i] as Pid);
      s.monitors.set(m.monitorId, i);
    }
    armDeadline(s, ctx);
    return s;
  },

  handleCall(msg, from, s, ctx): CallResult<ArriveReply | undefined, BarrierSession> {
    if (msg.type === 'close') {
      if (s.ended) return reply(undefined, s);
      failAll(s, ctx.runtime, failure(s, 'closed'), ctx);
      return stop('normal', s, undefined);
    }
    const error = arrive(s, msg.index);
    if (error !== undefined) return reply({ ok: false, error }, s);
    const generation = s.generation;
    if (msg.wait) s.calls.push(from);
    const answer: ArriveReply = { ok: true, generation };
    if (s.count === s.names.length) {
      // A waiting caller is answered by the trip itself.
      trip(s, ctx);
      // Ended: a one-shot trip, or a cyclic one whose next generation failed at once.
      if (s.ended) return msg.wait ? stop('normal', s) : stop('normal', s, answer);
    }
    return msg.wait ? noreply(s) : reply(answer, s);
  },

  handleCast(msg, s, ctx): CastResult<BarrierSession> {
    if (msg.type !== 'arrive') return s;
    s.casting.delete(msg.ticket);
    const error = arrive(s, msg.index);
    if (error !== undefined) {
      ctx.send(msg.notify, { type: 'barrier', id: s.id, outcome: 'refused', error } satisfies BarrierMessage);
      return s;
    }
    s.notify.push(msg.notify);
    return s.count === s.names.length ? trip(s, ctx) : s;
  },

  handleInfo(msg: BarrierDeadline | SystemMessage, s, ctx): CastResult<BarrierSession> {
    if (s.ended) return s;
    if (msg.type === 'deadline') {
      // A timer that fired just before a cyclic trip cancelled it belongs to the old generation.
      if (msg.generation !== s.generation) return s;
      s.timer = null;
      return fail(s, ctx, 'deadline');
    }
    if (msg.type !== 'DOWN') return s;
    const i = s.monitors.get(msg.monitor.monitorId);
    if (i === undefined) return s;
    if (s.arrived[i] === 1) {
      s.dead.set(i, msg.reason);
      return s;
    }
    return fail(s, ctx, 'party_exit', { party: s.names[i] as string, exitReason: msg.reason });
  },
};

// ---- input -------------------------------------------------------------------------------------

function nameOf(name: Name): string {
  return typeof name === 'symbol' ? (name.description ?? name.toString()) : String(name);
}

function pidString(p: Pid): string {
  return `<${p.node}.${p.thread}.${p.id}>`;
}

function resolveParties(
  runtime: Runtime,
  parties: unknown,
): { names: string[]; pids: Pid[]; byPid: Map<string, number>; byName: Map<string, number> } {
  if (!Array.isArray(parties) || parties.length < 1) {
    throw new InvalidArgumentError(
      'parties',
      'must be a non-empty array of party names or agent refs (n >= 1)',
      parties,
    );
  }
  const names: string[] = [];
  const pids: Pid[] = [];
  const byPid = new Map<string, number>();
  const byName = new Map<string, number>();
  for (let i = 0; i < parties.length; i++) {
    const p: unknown = parties[i];
    const field = `parties[${i}]`;
    let name: string;
    let pid: Pid;
    if (typeof p === 'string' || typeof p === 'number' || typeof p === 'symbol') {
      const ref = runtime.whereis(p);
      if (ref === undefined) throw new InvalidArgumentError(field, 'is not a registered name', p);
      name = nameOf(p);
      pid = ref;
    } else if (p !== null && typeof p === 'object' && 'ref' in p) {
      const { name: n, ref } = p as { name?: unknown; ref?: unknown };
      if (typeof n !== 'string' || n === '') {
        throw new InvalidArgumentError(`${field}.name`, 'must be a non-empty string', n);
      }
      if (!isPid(ref)) throw new InvalidArgumentError(`${field}.ref`, 'must be an agent ref or pid', ref);
      name = n;
      pid = ref;
    } else if (isPid(p)) {
      const registered = runtime.info(p, { stateSize: false })?.name;
      name = registered === undefined ? pidString(p) : nameOf(registered);
      pid = p;
    } else {
      throw new InvalidArgumentError(
        field,
        'must be a registered name, an agent ref or pid, or {name, ref}',
        p,
      );
    }
    const key = pidKey(pid);
    const samePid = byPid.get(key);
    if (samePid !== undefined) {
      throw new InvalidArgumentError(
        field,
        `is a duplicate party (the same agent as parties[${samePid}])`,
        p,
      );
    }
    const sameName = byName.get(name);
    if (sameName !== undefined) {
      throw new InvalidArgumentError(field, `is a duplicate party name (as parties[${sameName}])`, name);
    }
    byPid.set(key, i);
    byName.set(name, i);
    names.push(name);
    pids.push(pid);
  }
  return { names, pids, byPid, byName };
}

function checkDeadline(deadlineMs: unknown): number {
  if (
    typeof deadlineMs !== 'number' ||
    Number.isNaN(deadlineMs) ||
    deadlineMs < 0 ||
    deadlineMs === Number.NEGATIVE_INFINITY
  ) {
    throw new InvalidArgumentError(
      'deadlineMs',
      'must be a number of ms >= 0 (Infinity: no deadline)',
      deadlineMs,
    );
  }
  return deadlineMs;
}

const OPTION_KEYS = new Set(['parties', 'deadlineMs', 'id', 'cyclic']);

// ---- the handle and the service ----------------------------------------------------------------

/** One barrier: arrive at it, wait for it, read its result. Returned by `Barriers.create`. */
export class BarrierHandle {
  readonly id: BarrierId;
  /** The session agent. */
  readonly ref: BarrierRef;
  /** The parties' names, in the order given. */
  readonly parties: readonly string[];
  /**
   * The barrier's end: the trip of a one-shot barrier, or the failure of any barrier (a cyclic one
   * ends only by failing or closing). Never rejects.
   */
  readonly result: Promise<BarrierResult>;
  readonly #runtime: Runtime;
  readonly #session: BarrierSession;
  readonly #byName: ReadonlyMap<string, number>;
  readonly #final: () => BarrierResult | undefined;

  /** @internal made by `Barriers.create` */
  constructor(
    runtime: Runtime,
    ref: BarrierRef,
    session: BarrierSession,
    byName: ReadonlyMap<string, number>,
    result: Promise<BarrierResult>,
    final: () => BarrierResult | undefined,
  ) {
    this.#runtime = runtime;
    this.ref = ref;
    this.#session = session;
    this.#byName = byName;
    this.id = session.id;
    this.parties = session.names;
    this.result = result;
    this.#final = final;
  }

  /** The index of `party`, or undefined when it is not a party. */
  #indexOf(party: unknown): number | undefined {
    if (party !== null && typeof party === 'object' && 'self' in party && isPid(party.self)) {
      return this.#session.byPid.get(pidKey(party.self));
    }
    if (isPid(party)) return this.#session.byPid.get(pidKey(party));
    if (typeof party === 'string' || typeof party === 'number' || typeof party === 'symbol') {
      return this.#byName.get(nameOf(party));
    }
    return undefined;
  }

  async #arrive(party: PartyArg, wait: boolean): Promise<ArriveOk> {
    const index = this.#indexOf(party);
    if (index === undefined) throw new NotPartyError(this.id, party);
    let answer: ArriveReply | undefined;
    try {
      answer = await this.#runtime.call(this.ref, { type: 'arrive', index, wait }, Number.POSITIVE_INFINITY);
    } catch (error) {
      if (!(error instanceof NoProcessError || error instanceof ExitError)) throw error;
      // The session is gone; its exit hook has normally settled the result already.
      throw this.#gone(index, error instanceof ExitError ? error.reason : 'noproc');
    }
    if (answer === undefined) throw new Error('barrier session answered an arrival with nothing');
    if (!answer.ok) throw answer.error;
    return answer;
  }

  /** Why an arrival for party `index` cannot be made: the session is gone. */
  #gone(index: number, exitReason: unknown): AlreadyArrivedError | BarrierBrokenError {
    const final = this.#final();
    // A barrier ends tripped only when it is one-shot and every party has arrived: this one had.
    if (final?.outcome === 'tripped') {
      return new AlreadyArrivedError(this.id, this.parties[index] as string, final.generation);
    }
    // The session died and no result was recorded (yet): it failed, as its exit hook will say.
    return new BarrierBrokenError(final ?? failure(this.#session, 'session_exit', { exitReason }));
  }

  /**
   * Arrive as `party` and wait: resolves with the trip once every party has arrived. Rejects with
   * BarrierBrokenError (E_BARRIER_BROKEN) when the barrier fails first, NotPartyError
   * (E_BARRIER_NOT_PARTY) for a non-party, AlreadyArrivedError (E_BARRIER_ALREADY_ARRIVED) when
   * `party` has already arrived in this generation.
   */
  async await(party: PartyArg): Promise<BarrierTripped> {
    return (await this.#arrive(party, true)).result as BarrierTripped;
  }

  /**
   * Arrive as `party` without waiting for the others: resolves with the generation once the
   * arrival is recorded (the trip, if this arrival completes the barrier, has happened by then).
   * Same errors as `await`.
   */
  async arrive(party: PartyArg): Promise<number> {
    return (await this.#arrive(party, false)).generation;
  }

  /**
   * Arrive from inside an agent's callback, without blocking it: casts the arrival (as `party`,
   * default the agent itself) and the agent later receives exactly one `BarrierMessage` for it in
   * handleInfo: the trip, the failure, or a refusal: `AlreadyArrivedError` for a second arrival,
   * `BarrierBrokenError` when the barrier had failed (or its session stopped) before the arrival
   * was handled. Throws NotPartyError at once for a non-party.
   */
  castArrive(ctx: AgentContext<unknown, unknown, unknown, unknown>, party: PartyArg = ctx): void {
    const index = this.#indexOf(party);
    if (index === undefined) throw new NotPartyError(this.id, party);
    const s = this.#session;
    if (!s.ended) {
      // Recorded before the cast: should the session stop with the arrival still in its mailbox,
      // failAll, the trip or the exit hook answers it from here.
      const ticket = ++s.nextTicket;
      s.casting.set(ticket, { notify: ctx.self, index });
      const cast: BarrierCast = { type: 'arrive', index, notify: ctx.self, ticket };
      if (ctx.cast(this.ref as AnyRef, cast)) return;
      s.casting.delete(ticket);
    }
    // The barrier has ended (the session would never read the cast) or its session is gone.
    const msg: BarrierMessage = {
      type: 'barrier',
      id: this.id,
      outcome: 'refused',
      error: this.#gone(index, 'noproc'),
    };
    ctx.send(ctx.self as AnyRef, msg);
  }

  /** Fail the barrier for everyone still waiting (reason `closed`) and stop it. No-op once ended. */
  async close(): Promise<void> {
    try {
      await this.#runtime.call(this.ref, { type: 'close' }, Number.POSITIVE_INFINITY);
    } catch (error) {
      if (!(error instanceof NoProcessError || error instanceof ExitError)) throw error;
    }
  }
}

/**
 * The barrier service: owns a dynamic supervisor whose temporary children are the barrier
 * sessions. Start it with `Barriers.start(runtime)`.
 */
export class Barriers extends SessionService {
  /** Start the service (a top-level dynamic supervisor on `runtime`). */
  static async start(runtime: Runtime, options: BarriersOptions = {}): Promise<Barriers> {
    return new Barriers(runtime, await SessionService.startSupervisor(runtime, options.maxBarriers));
  }

  /**
   * Create a barrier for `parties` and start its session. Rejects with InvalidArgumentError
   * (E_INVALID_ARGUMENT, naming the field) for bad options, or with the supervisor's error when
   * the session cannot start.
   */
  async create(options: BarrierOptions): Promise<BarrierHandle> {
    if (options === null || typeof options !== 'object') {
      throw new InvalidArgumentError('barrier options', 'must be an object', options);
    }
    for (const key of Object.keys(options)) {
      if (!OPTION_KEYS.has(key))
        throw new InvalidArgumentError(`barrier option ${JSON.stringify(key)}`, 'unknown option');
    }
    const { names, pids, byPid, byName } = resolveParties(this.runtime, options.parties);
    const deadlineMs = checkDeadline(options.deadlineMs);
    const { id: given, cyclic = false } = options;
    if (given !== undefined && typeof given !== 'string' && !Number.isFinite(given)) {
      throw new InvalidArgumentError('id', 'must be a string or a finite number', given);
    }
    if (typeof cyclic !== 'boolean') throw new InvalidArgumentError('cyclic', 'must be a boolean', cyclic);
    const id = given ?? this.nextSessionId();

    let final: BarrierResult | undefined;
    let settle!: (r: BarrierResult) => void;
    const result = new Promise<BarrierResult>((resolve) => {
      settle = (r) => {
        if (final !== undefined) return;
        final = r;
        resolve(r);
      };
    });
    const session: BarrierSession = {
      id,
      names,
      pids,
      byPid,
      deadlineMs,
      cyclic,
      done: settle,
      generation: 0,
      startedAt: 0,
      arrived: new Uint8Array(names.length),
      count: 0,
      dead: new Map(),
      calls: [],
      notify: [],
      casting: new Map(),
      nextTicket: 0,
      timer: null,
      monitors: new Map(),
      ended: false,
    };
    // A session stopped before it ended (supervisor shutdown, `kill`) still fails the barrier.
    const ref = (await this.startSession(id, BarrierSessionBehaviour, session, (exitReason) => {
      if (!session.ended) failAll(session, this.runtime, failure(session, 'session_exit', { exitReason }));
      // Cast arrivals still unhandled died with the session's mailbox: refuse them.
      else if (final !== undefined) refuseCasting(session, this.runtime, final);
    })) as BarrierRef;
    return new BarrierHandle(this.runtime, ref, session, byName, result, () => final);
  }
  // stop() (from SessionService): barriers still open fail with `session_exit`.
}
