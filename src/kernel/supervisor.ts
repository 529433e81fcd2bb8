/**
 * Supervisors, as in OTP: an agent that traps exits, links to its children, restarts them by a
 * strategy, and gives up (escalating to its own parent) when restarts come faster than its restart
 * intensity allows. Supervision is data: a spec of flags and child specs, validated up front, with
 * every default in `SUPERVISOR_DEFAULTS`.
 *
 * Escalation reason: a supervisor that exceeds its intensity shuts its children down and exits
 * with a `MaxRestartsError` (code E_MAX_RESTARTS). OTP exits with `shutdown` there; we use an
 * Error instead so that the escalation is abnormal everywhere it is seen: a parent supervisor
 * restarts the subtree even when it is a transient child, telemetry reports `normal: false`, and a
 * linked agent that does not trap exits goes down with it.
 *
 * The supervisor waits for a child's exit with `runtime.awaitExit` rather than a monitor's DOWN
 * message: it shuts children down from inside a handler or from terminate, and an agent takes no
 * message from its mailbox until those return.
 */
import {
  type Behaviour,
  behaviour,
  type CastResult,
  type ExitMessage,
  isNormalExit,
  reply,
  type Stop,
  stop,
} from './behaviour.js';
import type { AgentContext, UntypedDest } from './context.js';
import {
  BadReturnError,
  describe,
  InitError,
  InvalidArgumentError,
  MabeamError,
  MaxRestartsError,
  NoChildError,
  NoProcessError,
} from './errors.js';
import { AgentRef, type AnyRef, type Pid } from './pid.js';
import { checkSpawnOptions, Runtime, type SpawnOptions } from './runtime.js';

// ---- specs -------------------------------------------------------------------------------------

export type Strategy = 'one_for_one' | 'one_for_all' | 'rest_for_one';
/** permanent: always restarted; transient: only after an abnormal exit; temporary: never. */
export type RestartType = 'permanent' | 'transient' | 'temporary';
/** Ms to wait for a child's terminate before killing it, `brutal_kill`, or `infinity`. */
export type ShutdownPolicy = number | 'brutal_kill' | 'infinity';
export type ChildType = 'worker' | 'supervisor';
export type ChildId = string | number;
/** Spawn options of a child: everything but `link` (a supervisor always links its children). */
export type ChildSpawnOptions = Omit<SpawnOptions, 'link'>;

// biome-ignore lint/suspicious/noExplicitAny: a child may run any behaviour
type AnyBehaviour = Behaviour<any, any, any, any, any, any>;
/**
 * @internal What the shared machinery needs of a supervisor's context. Structural and free of
 * message types, so both kinds of supervisor (each with its own call protocol) can pass theirs.
 */
export interface SupervisorContext {
  readonly self: Pid;
  readonly runtime: Runtime;
  link(other: Pid): void;
  unlink(other: Pid): void;
  exit(dest: Pid, reason: unknown): void;
  spawn: AgentContext['spawn'];
  spawnLink: AgentContext['spawnLink'];
}

/** Start a child by spawning `behaviour` with `args`, linked to (and parented by) the supervisor. */
export interface BehaviourStart {
  readonly behaviour: AnyBehaviour;
  readonly args?: unknown;
  readonly options?: ChildSpawnOptions;
}

/** What a custom start function may use of the supervisor: spawn through it to make it the parent. */
export type ChildStartContext = Pick<AgentContext, 'runtime' | 'spawn' | 'spawnLink'>;

/**
 * Start a child by hand. Spawn with `ctx.spawnLink` so the supervisor is the child's parent (a
 * child that traps exits then gets its terminate run on shutdown); the supervisor links to the
 * returned agent in any case.
 */
export type CustomStart = (ctx: ChildStartContext) => Promise<AnyRef>;

export type ChildStart = BehaviourStart | CustomStart;

/** One child of a supervisor. Unset fields take their value from SUPERVISOR_DEFAULTS. */
export interface ChildSpec {
  readonly id: ChildId;
  readonly start: ChildStart;
  readonly restart?: RestartType;
  /** Default 5000 ms for workers, `infinity` for supervisors (they shut their own tree down). */
  readonly shutdown?: ShutdownPolicy;
  readonly type?: ChildType;
}

/** Restart intensity: more than `intensity` restarts within `periodMs` and the supervisor gives up. */
export interface RestartIntensity {
  readonly intensity?: number;
  readonly periodMs?: number;
}

export interface SupervisorSpec extends RestartIntensity {
  readonly strategy?: Strategy;
  /** Started in this order, shut down in the reverse order. */
  readonly children?: readonly ChildSpec[];
}

/** Every default of supervision, in one place. */
export const SUPERVISOR_DEFAULTS = Object.freeze({
  strategy: 'one_for_one',
  intensity: 3,
  periodMs: 5000,
  restart: 'permanent',
  type: 'worker',
  workerShutdownMs: 5000,
  supervisorShutdown: 'infinity',
} as const);

/** @internal a child spec with every default filled in */
export interface ResolvedChild {
  readonly id: ChildId | undefined;
  readonly start: ChildStart;
  readonly restart: RestartType;
  readonly shutdown: ShutdownPolicy;
  readonly type: ChildType;
}

/** @internal flags with defaults filled in */
export interface ResolvedIntensity {
  readonly intensity: number;
  readonly periodMs: number;
}

interface ResolvedSupervisorSpec extends ResolvedIntensity {
  readonly strategy: Strategy;
  readonly children: ResolvedChild[];
}

const STRATEGIES: readonly Strategy[] = ['one_for_one', 'one_for_all', 'rest_for_one'];
const RESTARTS: readonly RestartType[] = ['permanent', 'transient', 'temporary'];
const TYPES: readonly ChildType[] = ['worker', 'supervisor'];
const SPEC_KEYS = new Set(['strategy', 'intensity', 'periodMs', 'children']);
const CHILD_KEYS = new Set(['id', 'start', 'restart', 'shutdown', 'type']);
const START_KEYS = new Set(['behaviour', 'args', 'options']);

/**
 * @internal A behaviour carrying this key validates its init args, so that a supervisor spec nested
 * in a child spec is checked when the outer spec is, not when the subtree starts.
 */
export const CHECK_ARGS: unique symbol = Symbol('mabeam.checkArgs');

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function rejectUnknownKeys(what: string, value: Record<string, unknown>, known: Set<string>): void {
  for (const key of Object.keys(value)) {
    if (!known.has(key))
      throw new InvalidArgumentError(`${what} field ${JSON.stringify(key)}`, 'unknown field');
  }
}

/** @internal Check intensity and period, filling in defaults. */
export function resolveIntensity(spec: RestartIntensity, what: string): ResolvedIntensity {
  const intensity = spec.intensity ?? SUPERVISOR_DEFAULTS.intensity;
  if (!Number.isInteger(intensity) || intensity < 0) {
    throw new InvalidArgumentError(`${what} "intensity"`, 'must be an integer >= 0', spec.intensity);
  }
  const periodMs = spec.periodMs ?? SUPERVISOR_DEFAULTS.periodMs;
  if (typeof periodMs !== 'number' || !Number.isFinite(periodMs) || periodMs <= 0) {
    throw new InvalidArgumentError(`${what} "periodMs"`, 'must be a finite number of ms > 0', spec.periodMs);
  }
  return { intensity, periodMs };
}

/**
 * @internal Check a child spec and fill in its defaults. Throws InvalidArgumentError naming the
 * field and the value. Dynamic supervisors pass `idRequired = false`.
 */
export function resolveChildSpec(spec: unknown, idRequired: boolean): ResolvedChild {
  if (!isPlainObject(spec)) throw new InvalidArgumentError('child spec', 'must be an object', spec);
  const id = spec.id;
  if (id !== undefined || idRequired) {
    const validId = (typeof id === 'string' && id !== '') || (typeof id === 'number' && Number.isFinite(id));
    if (!validId) {
      throw new InvalidArgumentError('child spec "id"', 'must be a non-empty string or a finite number', id);
    }
  }
  const what = id === undefined ? 'child spec' : `child spec ${describe(id)}`;
  rejectUnknownKeys(what, spec, CHILD_KEYS);
  const start = checkStart(spec.start, what);
  const restart = spec.restart ?? SUPERVISOR_DEFAULTS.restart;
  if (!RESTARTS.includes(restart as RestartType)) {
    throw new InvalidArgumentError(
      `${what} field "restart"`,
      'must be permanent, transient or temporary',
      spec.restart,
    );
  }
  const type = spec.type ?? SUPERVISOR_DEFAULTS.type;
  if (!TYPES.includes(type as ChildType)) {
    throw new InvalidArgumentError(`${what} field "type"`, 'must be worker or supervisor', spec.type);
  }
  const shutdown =
    spec.shutdown ??
    (type === 'supervisor' ? SUPERVISOR_DEFAULTS.supervisorShutdown : SUPERVISOR_DEFAULTS.workerShutdownMs);
  const validShutdown =
    shutdown === 'brutal_kill' ||
    shutdown === 'infinity' ||
    (typeof shutdown === 'number' && Number.isFinite(shutdown) && shutdown >= 0);
  if (!validShutdown) {
    throw new InvalidArgumentError(
      `${what} field "shutdown"`,
      'must be a finite number of ms >= 0, brutal_kill or infinity',
      spec.shutdown,
    );
  }
  return {
    id: id as ChildId | undefined,
    start,
    restart: restart as RestartType,
    shutdown: shutdown as ShutdownPolicy,
    type: type as ChildType,
  };
}

function checkStart(start: unknown, what: string): ChildStart {
  if (typeof start === 'function') return start as CustomStart;
  if (!isPlainObject(start)) {
    throw new InvalidArgumentError(
      `${what} field "start"`,
      'must be {behaviour, args, options?} or a function returning a promise of an agent ref',
      start,
    );
  }
  rejectUnknownKeys(`${what} field "start"`, start, START_KEYS);
  const b = start.behaviour as AnyBehaviour | undefined;
  if (b === null || typeof b !== 'object' || typeof b.init !== 'function') {
    throw new InvalidArgumentError(
      `${what} field "start.behaviour"`,
      'must be a behaviour (an object with an init function)',
      b,
    );
  }
  const options = start.options;
  if (options !== undefined) {
    if (!isPlainObject(options)) {
      throw new InvalidArgumentError(`${what} field "start.options"`, 'must be an object', options);
    }
    if ('link' in options) {
      throw new InvalidArgumentError(
        `${what} field "start.options.link"`,
        'is not allowed: a supervisor always links its children',
      );
    }
    try {
      checkSpawnOptions(options);
    } catch (error) {
      if (!(error instanceof InvalidArgumentError)) throw error;
      throw new InvalidArgumentError(`${what} field "start.options"`, error.message);
    }
  }
  const check = (b as { [CHECK_ARGS]?: (args: unknown) => void })[CHECK_ARGS];
  if (typeof check === 'function') {
    try {
      check(start.args);
    } catch (error) {
      if (!(error instanceof InvalidArgumentError)) throw error;
      throw new InvalidArgumentError(`${what} field "start.args"`, error.message);
    }
  }
  return start as unknown as BehaviourStart;
}

function resolveSupervisorSpec(spec: unknown): ResolvedSupervisorSpec {
  if (!isPlainObject(spec)) throw new InvalidArgumentError('supervisor spec', 'must be an object', spec);
  rejectUnknownKeys('supervisor spec', spec, SPEC_KEYS);
  const strategy = spec.strategy ?? SUPERVISOR_DEFAULTS.strategy;
  if (!STRATEGIES.includes(strategy as Strategy)) {
    throw new InvalidArgumentError(
      'supervisor spec "strategy"',
      'must be one_for_one, one_for_all or rest_for_one',
      spec.strategy,
    );
  }
  const { intensity, periodMs } = resolveIntensity(spec as RestartIntensity, 'supervisor spec');
  const raw = spec.children ?? [];
  if (!Array.isArray(raw)) {
    throw new InvalidArgumentError('supervisor spec "children"', 'must be an array of child specs', raw);
  }
  const children: ResolvedChild[] = [];
  const seen = new Set<ChildId>();
  for (const child of raw) {
    const resolved = resolveChildSpec(child, true);
    if (seen.has(resolved.id as ChildId)) {
      throw new InvalidArgumentError('supervisor spec "children"', 'has a duplicate child id', resolved.id);
    }
    seen.add(resolved.id as ChildId);
    children.push(resolved);
  }
  return { strategy: strategy as Strategy, intensity, periodMs, children };
}

// ---- shared machinery (also used by the dynamic supervisor) -------------------------------------

/**
 * @internal Restart timestamps within the period, as OTP keeps them: a restart at `now` counts
 * every earlier one at `now - periodMs` or later. Never longer than intensity + 1, because the
 * supervisor stops at the first restart too many.
 */
export class RestartWindow {
  #times: number[] = [];

  constructor(readonly limits: ResolvedIntensity) {}

  /** Record a restart at `now`. False when it is one more than the intensity allows. */
  record(now: number): boolean {
    const threshold = now - this.limits.periodMs;
    this.#times = this.#times.filter((t) => t >= threshold);
    this.#times.push(now);
    return this.#times.length <= this.limits.intensity;
  }

  get count(): number {
    return this.#times.length;
  }
}

/** @internal Whether a child with this restart type is restarted after exiting with `reason`. */
export function needsRestart(restart: RestartType, reason: unknown): boolean {
  return restart === 'permanent' || (restart === 'transient' && !isNormalExit(reason));
}

/** @internal Start one child, linked to the supervisor. Rejects with whatever made the start fail. */
export async function startChildAgent(ctx: SupervisorContext, start: ChildStart): Promise<AnyRef> {
  if (typeof start !== 'function') return ctx.spawnLink(start.behaviour, start.args, start.options);
  const ref: unknown = await start(ctx);
  if (!(ref instanceof AgentRef)) throw new BadReturnError('custom child start', ref);
  // A child already gone would only reach us as an EXIT 'noproc' later: fail the start instead.
  if (!ctx.runtime.isAlive(ref))
    throw new NoProcessError(ref.toString(), 'custom child start returned a dead agent');
  ctx.link(ref);
  return ref;
}

/**
 * @internal Shut one child down by its policy and resolve with its exit reason. The child is
 * unlinked first so that the exit we cause never comes back as an EXIT message to restart from.
 */
export async function shutdownChildAgent(
  ctx: SupervisorContext,
  ref: Pid,
  policy: ShutdownPolicy,
): Promise<unknown> {
  const rt = ctx.runtime;
  ctx.unlink(ref);
  const exited = rt.awaitExit(ref);
  if (policy === 'brutal_kill') {
    ctx.exit(ref, 'kill');
    return exited;
  }
  // From the parent, `shutdown` makes a trapping child run its terminate; others just die.
  ctx.exit(ref, 'shutdown');
  if (policy === 'infinity') return exited;
  const timer = rt.clock.setTimeout(() => ctx.exit(ref, 'kill'), policy);
  const reason = await exited;
  rt.clock.clearTimeout(timer);
  return reason;
}

/** @internal False once the supervisor was killed while a handler of it was still awaiting. */
export function selfAlive(ctx: SupervisorContext): boolean {
  return ctx.runtime.isAlive(ctx.self);
}

const EV_RESTART = ['mabeam', 'supervisor', 'restart'] as const;
const EV_SHUTDOWN = ['mabeam', 'supervisor', 'shutdown'] as const;

/** @internal */
export function emitRestart(
  ctx: SupervisorContext,
  child: unknown,
  pid: Pid | undefined,
  reason: unknown,
): void {
  const tel = ctx.runtime.telemetry;
  if (tel.enabled) tel.execute(EV_RESTART, { count: 1 }, { supervisor: ctx.self, child, pid, reason });
}

/** @internal Too many restarts: report it and stop; terminate shuts the children down. */
export function giveUp<S>(
  ctx: SupervisorContext,
  window: RestartWindow,
  child: unknown,
  childReason: unknown,
  state: S,
): Stop<S> {
  const { intensity, periodMs } = window.limits;
  const reason = new MaxRestartsError(ctx.self.toString(), intensity, periodMs);
  const tel = ctx.runtime.telemetry;
  if (tel.enabled) {
    tel.execute(
      EV_SHUTDOWN,
      { restarts: window.count },
      { supervisor: ctx.self, child, childReason, reason, intensity, periodMs },
    );
  }
  return stop(reason, state);
}

/** @internal Exit signals from outside any agent act as the parent's for a top-level supervisor. */
export function isExitFromOutside(ctx: SupervisorContext, msg: ExitMessage): boolean {
  return ctx.runtime.pid.equals(msg.from);
}

/** @internal */
export function isExitMessage(msg: unknown): msg is ExitMessage {
  return isPlainObject(msg) && msg.type === 'EXIT' && 'from' in msg;
}

/** Who is making a supervisor call: a runtime, or an agent's context. */
export type Caller = Runtime | Pick<AgentContext, 'runtime'>;
/** Where a supervisor can be started: at top level of a runtime, or linked under an agent. */
export type StartSite = Runtime | Pick<AgentContext, 'runtime' | 'spawnLink'>;
/** Options for starting a supervisor (it always traps exits, and links when started from an agent). */
export type SupervisorStartOptions = Omit<SpawnOptions, 'link' | 'trapExit'>;

/** @internal The answer of every supervisor call: errors travel back as values and are thrown by the caller. */
export type ProtocolReply =
  | { readonly ok: true; readonly value: unknown }
  | { readonly ok: false; readonly error: unknown };

/** @internal */
export function ok(value?: unknown): ProtocolReply {
  return { ok: true, value };
}

/** @internal */
export function failed(error: unknown): ProtocolReply {
  return { ok: false, error };
}

/** @internal Make a supervisor call and throw the error it answers with. */
export async function request(
  caller: Caller,
  sup: UntypedDest | AnyRef,
  msg: unknown,
  timeoutMs: number,
): Promise<unknown> {
  const rt = caller instanceof Runtime ? caller : caller.runtime;
  // The typed and untyped call overloads meet here; the reply type is ours either way.
  const answer = (await rt.call(sup as UntypedDest, msg, timeoutMs)) as ProtocolReply;
  if (!answer.ok) throw answer.error;
  return answer.value;
}

/** @internal Spawn a supervisor behaviour at a start site, validating its args before anything runs. */
export async function spawnSupervisor<A, R extends AnyRef>(
  site: StartSite,
  b: AnyBehaviour & { [CHECK_ARGS]: (args: unknown) => void },
  args: A,
  options: SupervisorStartOptions | undefined,
): Promise<R> {
  b[CHECK_ARGS](args);
  if (options !== undefined && isPlainObject(options) && ('link' in options || 'trapExit' in options)) {
    throw new InvalidArgumentError('supervisor start options', 'must not set link or trapExit');
  }
  try {
    const ref =
      site instanceof Runtime ? await site.spawn(b, args, options) : await site.spawnLink(b, args, options);
    return ref as unknown as R;
  } catch (error) {
    // Our init throws only kernel errors (a child that failed to start); surface that one rather
    // than the runtime's generic wrapper around it.
    if (error instanceof InitError && error.cause instanceof MabeamError) throw error.cause;
    throw error;
  }
}

// ---- the supervisor agent ----------------------------------------------------------------------

/** Status of a child in `whichChildren`: `restarting` means a failed restart is to be retried. */
export type ChildStatus = 'running' | 'terminated' | 'restarting';

/** One row of `whichChildren`, in start order. */
export interface ChildInfo {
  readonly id: ChildId;
  /** The running agent, or undefined when the child is not running. */
  readonly ref: AnyRef | undefined;
  readonly status: ChildStatus;
  readonly type: ChildType;
  readonly restart: RestartType;
}

/** What `countChildren` reports, as OTP's count_children. */
export interface ChildCounts {
  /** Child specs held, running or not. */
  readonly specs: number;
  /** Children running now. */
  readonly active: number;
  readonly supervisors: number;
  readonly workers: number;
}

/** The call protocol of a supervisor agent; use the functions of `Supervisor` rather than these. */
export type SupervisorCall =
  | { readonly op: 'which_children' }
  | { readonly op: 'count_children' }
  | { readonly op: 'start_child'; readonly spec: ChildSpec }
  | { readonly op: 'terminate_child'; readonly id: ChildId }
  | { readonly op: 'restart_child'; readonly id: ChildId }
  | { readonly op: 'delete_child'; readonly id: ChildId };

/** A handle to a supervisor agent. */
export type SupervisorRef = AgentRef<SupervisorCall, ProtocolReply, never, never>;
/** A supervisor by ref, pid or registered name. */
export type SupervisorDest = SupervisorRef | UntypedDest;

/** A failed restart to try again, sent by the supervisor to itself (OTP's try_again_restart). */
class RetryRestart {
  constructor(readonly id: ChildId) {}
}

interface Child {
  readonly spec: ResolvedChild & { readonly id: ChildId };
  ref: AnyRef | undefined;
  /** Owed a (re)start: its last start attempt failed, or it was shut down by its group's restart. */
  pending: boolean;
}

interface SupervisorState {
  readonly strategy: Strategy;
  readonly window: RestartWindow;
  /** In start order. */
  children: Child[];
  readonly byId: Map<ChildId, Child>;
}

type Ctx = AgentContext<SupervisorCall, ProtocolReply, never, RetryRestart>;

function addChild(state: SupervisorState, spec: ResolvedChild, ref: AnyRef | undefined): Child {
  const child: Child = { spec: spec as Child['spec'], ref, pending: false };
  state.children.push(child);
  state.byId.set(child.spec.id, child);
  return child;
}

function removeChild(state: SupervisorState, child: Child): void {
  state.children = state.children.filter((c) => c !== child);
  state.byId.delete(child.spec.id);
}

/** The children a restart of `child` takes down and brings back, in start order. */
function groupOf(state: SupervisorState, child: Child): Child[] {
  switch (state.strategy) {
    case 'one_for_one':
      return [child];
    case 'one_for_all':
      return [...state.children];
    case 'rest_for_one':
      return state.children.slice(state.children.indexOf(child));
  }
}

/** Shut every running child down, in reverse start order, one after the other. */
async function shutdownAll(state: SupervisorState, ctx: Ctx): Promise<void> {
  for (let i = state.children.length - 1; i >= 0; i--) {
    const child = state.children[i] as Child;
    const ref = child.ref;
    if (ref === undefined) continue;
    child.ref = undefined;
    await shutdownChildAgent(ctx, ref, child.spec.shutdown);
  }
}

/**
 * Restart `child` and the rest of its group: running members other than the child are shut down
 * in reverse start order, then every member owed a start is started in start order. A start that
 * fails counts as one more restart and is retried through the mailbox, so that calls and exits
 * arriving meanwhile are not starved.
 */
async function restartGroup(
  state: SupervisorState,
  ctx: Ctx,
  child: Child,
): Promise<CastResult<SupervisorState>> {
  const group = groupOf(state, child);
  for (let i = group.length - 1; i >= 0; i--) {
    const other = group[i] as Child;
    if (other === child || other.ref === undefined) continue;
    const ref = other.ref;
    other.ref = undefined;
    await shutdownChildAgent(ctx, ref, other.spec.shutdown);
    if (other.spec.restart === 'temporary') removeChild(state, other);
    else other.pending = true;
  }
  child.pending = true;
  for (const member of group) {
    if (!member.pending || state.byId.get(member.spec.id) !== member) continue;
    if (!selfAlive(ctx)) return state;
    try {
      member.ref = await startChildAgent(ctx, member.spec.start);
      member.pending = false;
    } catch (error) {
      emitRestart(ctx, member.spec.id, undefined, error);
      if (!state.window.record(ctx.runtime.clock.now()))
        return giveUp(ctx, state.window, member.spec.id, error, state);
      ctx.runtime.send(ctx.self.toJSON(), new RetryRestart(member.spec.id));
      return state;
    }
  }
  return state;
}

async function childExited(
  state: SupervisorState,
  ctx: Ctx,
  child: Child,
  reason: unknown,
): Promise<CastResult<SupervisorState>> {
  const pid = child.ref;
  child.ref = undefined;
  if (!needsRestart(child.spec.restart, reason)) {
    // A temporary child is forgotten; a transient one that finished keeps its spec, as in OTP.
    if (child.spec.restart === 'temporary') removeChild(state, child);
    return state;
  }
  emitRestart(ctx, child.spec.id, pid, reason);
  if (!state.window.record(ctx.runtime.clock.now()))
    return giveUp(ctx, state.window, child.spec.id, reason, state);
  return restartGroup(state, ctx, child);
}

function statusOf(child: Child): ChildStatus {
  if (child.ref !== undefined) return 'running';
  return child.pending ? 'restarting' : 'terminated';
}

async function handleSupervisorCall(
  msg: SupervisorCall,
  state: SupervisorState,
  ctx: Ctx,
): Promise<ProtocolReply> {
  const me = ctx.self.toString();
  switch (msg.op) {
    case 'which_children':
      return ok(
        state.children.map(
          (c): ChildInfo => ({
            id: c.spec.id,
            ref: c.ref,
            status: statusOf(c),
            type: c.spec.type,
            restart: c.spec.restart,
          }),
        ),
      );
    case 'count_children': {
      let active = 0;
      let supervisors = 0;
      for (const c of state.children) {
        if (c.ref !== undefined) active++;
        if (c.spec.type === 'supervisor') supervisors++;
      }
      const counts: ChildCounts = {
        specs: state.children.length,
        active,
        supervisors,
        workers: state.children.length - supervisors,
      };
      return ok(counts);
    }
    case 'start_child': {
      let spec: ResolvedChild;
      try {
        spec = resolveChildSpec(msg.spec, true);
      } catch (error) {
        return failed(error);
      }
      if (state.byId.has(spec.id as ChildId)) {
        return failed(
          new InvalidArgumentError('child spec "id"', `is already in use in supervisor ${me}`, spec.id),
        );
      }
      try {
        const ref = await startChildAgent(ctx, spec.start);
        addChild(state, spec, ref);
        return ok(ref);
      } catch (error) {
        return failed(error);
      }
    }
    case 'terminate_child': {
      const child = state.byId.get(msg.id);
      if (child === undefined) return failed(new NoChildError(me, msg.id));
      child.pending = false;
      const ref = child.ref;
      child.ref = undefined;
      if (ref !== undefined) await shutdownChildAgent(ctx, ref, child.spec.shutdown);
      if (child.spec.restart === 'temporary') removeChild(state, child);
      return ok();
    }
    case 'restart_child': {
      const child = state.byId.get(msg.id);
      if (child === undefined) return failed(new NoChildError(me, msg.id));
      if (child.ref !== undefined) {
        return failed(
          new InvalidArgumentError('child id', `names a running child of ${me}; terminate it first`, msg.id),
        );
      }
      try {
        child.ref = await startChildAgent(ctx, child.spec.start);
        child.pending = false;
        return ok(child.ref);
      } catch (error) {
        return failed(error);
      }
    }
    case 'delete_child': {
      const child = state.byId.get(msg.id);
      if (child === undefined) return failed(new NoChildError(me, msg.id));
      if (child.ref !== undefined) {
        return failed(
          new InvalidArgumentError('child id', `names a running child of ${me}; terminate it first`, msg.id),
        );
      }
      removeChild(state, child);
      return ok();
    }
    default:
      return failed(new InvalidArgumentError('supervisor call', 'unknown operation', msg));
  }
}

const supervisorCallbacks = behaviour<
  SupervisorSpec,
  SupervisorState,
  SupervisorCall,
  ProtocolReply,
  never,
  RetryRestart
>({
  async init(spec, ctx) {
    const resolved = resolveSupervisorSpec(spec);
    ctx.trapExit(true);
    const state: SupervisorState = {
      strategy: resolved.strategy,
      window: new RestartWindow(resolved),
      children: [],
      byId: new Map(),
    };
    for (const spec of resolved.children) {
      let ref: AnyRef;
      try {
        if (!selfAlive(ctx))
          throw new NoProcessError(ctx.self.toString(), 'supervisor exited while starting');
        ref = await startChildAgent(ctx, spec.start);
      } catch (error) {
        await shutdownAll(state, ctx);
        throw new InitError(`child ${describe(spec.id)} of supervisor ${ctx.self}`, error);
      }
      addChild(state, spec, ref);
    }
    return state;
  },

  handleCall(msg, _from, state, ctx) {
    return handleSupervisorCall(msg, state, ctx).then((answer) => reply(answer, state));
  },

  handleInfo(msg, state, ctx) {
    if (msg instanceof RetryRestart) {
      const child = state.byId.get(msg.id);
      if (child === undefined || !child.pending) return state;
      return restartGroup(state, ctx, child);
    }
    if (!isExitMessage(msg)) return state;
    const child = state.children.find((c) => c.ref?.equals(msg.from));
    if (child !== undefined) return childExited(state, ctx, child, msg.reason);
    if (isExitFromOutside(ctx, msg)) return stop(msg.reason, state);
    // An EXIT from an agent we already let go of (or linked by someone else): nothing to restart.
    return state;
  },

  terminate(_reason, state, ctx) {
    return shutdownAll(state, ctx);
  },
});

/** The supervisor behaviour; spawn it with a SupervisorSpec as args (or use `startSupervisor`). */
export const SupervisorBehaviour = Object.assign(supervisorCallbacks, {
  [CHECK_ARGS]: (args: unknown): void => {
    resolveSupervisorSpec(args);
  },
});

// ---- public API --------------------------------------------------------------------------------

/**
 * Start a supervisor and its children, in order. From a runtime the supervisor is top-level; from
 * an agent's context it is linked to (and parented by) that agent. The spec is validated before
 * anything starts: a bad one rejects with InvalidArgumentError. If a child fails to start, the
 * children already started are shut down and this rejects with an InitError naming that child.
 */
export function startSupervisor(
  site: StartSite,
  spec: SupervisorSpec,
  options?: SupervisorStartOptions,
): Promise<SupervisorRef> {
  return spawnSupervisor(site, SupervisorBehaviour, spec, options);
}

/** Extra fields of a child spec built by `childSpec` or `supervisorChildSpec`. */
export type ChildSpecExtras = Partial<Pick<ChildSpec, 'restart' | 'shutdown' | 'type'>> & {
  readonly options?: ChildSpawnOptions;
};

/** A child spec whose args are type-checked against the behaviour's init. */
export function childSpec<A, S, C, R, K, I>(
  id: ChildId,
  behaviour: Behaviour<A, S, C, R, K, I>,
  args: A,
  extras: ChildSpecExtras = {},
): ChildSpec {
  const { options, ...rest } = extras;
  const start: BehaviourStart = options === undefined ? { behaviour, args } : { behaviour, args, options };
  return { id, start, ...rest };
}

/** A child spec for a nested supervisor (type `supervisor`, shutdown `infinity` unless given). */
export function supervisorChildSpec(
  id: ChildId,
  spec: SupervisorSpec,
  extras: Omit<ChildSpecExtras, 'type'> = {},
): ChildSpec {
  return childSpec(id, SupervisorBehaviour, spec, { ...extras, type: 'supervisor' });
}

/** The children in start order, with their refs and status. */
export async function whichChildren(
  caller: Caller,
  sup: SupervisorDest,
  timeoutMs = Number.POSITIVE_INFINITY,
): Promise<ChildInfo[]> {
  return (await request(caller, sup, { op: 'which_children' }, timeoutMs)) as ChildInfo[];
}

/** How many child specs the supervisor holds, how many run, and how many are supervisors/workers. */
export async function countChildren(
  caller: Caller,
  sup: SupervisorDest,
  timeoutMs = Number.POSITIVE_INFINITY,
): Promise<ChildCounts> {
  return (await request(caller, sup, { op: 'count_children' }, timeoutMs)) as ChildCounts;
}

/**
 * Add a child to a running supervisor (last in start order) and start it. Rejects with
 * InvalidArgumentError for a bad spec or an id in use, or with the child's start error (the spec is
 * then not kept).
 */
export async function startChild(
  caller: Caller,
  sup: SupervisorDest,
  spec: ChildSpec,
  timeoutMs = Number.POSITIVE_INFINITY,
): Promise<AnyRef> {
  resolveChildSpec(spec, true);
  return (await request(caller, sup, { op: 'start_child', spec }, timeoutMs)) as AnyRef;
}

/**
 * Shut a child down by its shutdown policy. Its spec is kept (restart it with `restartChild`),
 * except for a temporary child. Unknown id: NoChildError.
 */
export async function terminateChild(
  caller: Caller,
  sup: SupervisorDest,
  id: ChildId,
  timeoutMs = Number.POSITIVE_INFINITY,
): Promise<void> {
  await request(caller, sup, { op: 'terminate_child', id }, timeoutMs);
}

/**
 * Start a child that is not running from its kept spec. Does not count toward restart intensity.
 * Unknown id: NoChildError; a running child: InvalidArgumentError.
 */
export async function restartChild(
  caller: Caller,
  sup: SupervisorDest,
  id: ChildId,
  timeoutMs = Number.POSITIVE_INFINITY,
): Promise<AnyRef> {
  return (await request(caller, sup, { op: 'restart_child', id }, timeoutMs)) as AnyRef;
}

/** Forget the spec of a child that is not running. Unknown id: NoChildError; running: InvalidArgumentError. */
export async function deleteChild(
  caller: Caller,
  sup: SupervisorDest,
  id: ChildId,
  timeoutMs = Number.POSITIVE_INFINITY,
): Promise<void> {
  await request(caller, sup, { op: 'delete_child', id }, timeoutMs);
}

/**
 * The supervisor API as one namespace. Every operation but `start` is a call to the supervisor
 * agent (default timeout: infinity, as in OTP, because shutting a child down may legitimately take
 * as long as its shutdown policy allows; a dead supervisor still rejects at once).
 */
export const Supervisor = Object.freeze({
  start: startSupervisor,
  childSpec,
  supervisorChildSpec,
  whichChildren,
  countChildren,
  startChild,
  terminateChild,
  restartChild,
  deleteChild,
  behaviour: SupervisorBehaviour,
  defaults: SUPERVISOR_DEFAULTS,
});
