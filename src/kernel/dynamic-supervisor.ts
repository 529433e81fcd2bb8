/**
 * Dynamic supervisors: supervisors that start with no children and take them at run time, each
 * from its own spec, like Elixir's DynamicSupervisor. The strategy is always one_for_one; restart
 * types, shutdown policies, restart intensity (escalating with a MaxRestartsError) and ordered
 * shutdown (reverse start order) work as in `supervisor.ts`, whose machinery this module reuses.
 *
 * Children are addressed by their ref. A restarted child has a new ref: look it up again with
 * `whichChildren` (or register it under a name through its spawn options).
 */
import { behaviour, type CastResult, reply, stop } from './behaviour.js';
import type { AgentContext, UntypedDest } from './context.js';
import { InvalidArgumentError, MaxChildrenError, NoChildError } from './errors.js';
import { type AgentRef, type AnyRef, isPid, type Pid, pidKey } from './pid.js';
import {
  type Caller,
  CHECK_ARGS,
  type ChildCounts,
  type ChildId,
  type ChildSpec,
  type ChildSpecExtras,
  type ChildStatus,
  type ChildType,
  emitRestart,
  failed,
  giveUp,
  isExitFromOutside,
  isExitMessage,
  needsRestart,
  ok,
  type ProtocolReply,
  type ResolvedChild,
  type RestartIntensity,
  type RestartType,
  RestartWindow,
  request,
  resolveChildSpec,
  resolveIntensity,
  type StartSite,
  type SupervisorStartOptions,
  selfAlive,
  shutdownChildAgent,
  spawnSupervisor,
  startChildAgent,
} from './supervisor.js';

/** Flags of a dynamic supervisor. */
export interface DynamicSupervisorSpec extends RestartIntensity {
  /** Most children at once (running or awaiting a restart). Default: no limit. */
  readonly maxChildren?: number;
}

/** A child spec for a dynamic supervisor: the id is optional and only labels the child. */
export type DynamicChildSpec = Omit<ChildSpec, 'id'> & { readonly id?: ChildId };

/** One row of `DynamicSupervisor.whichChildren`, in start order. */
export interface DynamicChildInfo {
  readonly id: ChildId | undefined;
  readonly ref: AnyRef | undefined;
  readonly status: ChildStatus;
  readonly type: ChildType;
  readonly restart: RestartType;
}

/** The call protocol of a dynamic supervisor; use the functions of `DynamicSupervisor`. */
export type DynamicSupervisorCall =
  | { readonly op: 'which_children' }
  | { readonly op: 'count_children' }
  | { readonly op: 'start_child'; readonly spec: DynamicChildSpec }
  | { readonly op: 'terminate_child'; readonly pid: Pid };

export type DynamicSupervisorRef = AgentRef<DynamicSupervisorCall, ProtocolReply, never, never>;
export type DynamicSupervisorDest = DynamicSupervisorRef | UntypedDest;

const SPEC_KEYS = new Set(['intensity', 'periodMs', 'maxChildren']);

interface ResolvedDynamicSpec {
  readonly intensity: number;
  readonly periodMs: number;
  readonly maxChildren: number;
}

function resolveDynamicSpec(spec: unknown): ResolvedDynamicSpec {
  if (spec === null || typeof spec !== 'object' || Array.isArray(spec)) {
    throw new InvalidArgumentError('dynamic supervisor spec', 'must be an object', spec);
  }
  for (const key of Object.keys(spec)) {
    if (!SPEC_KEYS.has(key)) {
      throw new InvalidArgumentError(`dynamic supervisor spec field ${JSON.stringify(key)}`, 'unknown field');
    }
  }
  const s = spec as DynamicSupervisorSpec;
  const limits = resolveIntensity(s, 'dynamic supervisor spec');
  const maxChildren = s.maxChildren ?? Number.POSITIVE_INFINITY;
  if (!(Number.isInteger(maxChildren) && maxChildren >= 0) && maxChildren !== Number.POSITIVE_INFINITY) {
    throw new InvalidArgumentError(
      'dynamic supervisor spec "maxChildren"',
      'must be an integer >= 0 or Infinity',
      s.maxChildren,
    );
  }
  return { ...limits, maxChildren };
}

/** A failed restart to try again (see supervisor.ts). */
class RetryRestart {
  constructor(readonly serial: number) {}
}

interface DynamicChild {
  /** Stable across restarts; orders the children by first start. */
  readonly serial: number;
  readonly spec: ResolvedChild;
  ref: AnyRef | undefined;
}

interface DynamicState {
  readonly window: RestartWindow;
  readonly maxChildren: number;
  /** By serial, in start order (Map keeps insertion order). */
  readonly children: Map<number, DynamicChild>;
  readonly byPid: Map<string, DynamicChild>;
  nextSerial: number;
}

type Ctx = AgentContext<DynamicSupervisorCall, ProtocolReply, never, RetryRestart>;

async function start(state: DynamicState, ctx: Ctx, child: DynamicChild): Promise<AnyRef> {
  const ref = await startChildAgent(ctx, child.spec.start);
  child.ref = ref;
  state.byPid.set(pidKey(ref), child);
  return ref;
}

async function restart(
  state: DynamicState,
  ctx: Ctx,
  child: DynamicChild,
): Promise<CastResult<DynamicState>> {
  if (!selfAlive(ctx)) return state;
  try {
    await start(state, ctx, child);
  } catch (error) {
    emitRestart(ctx, child.spec.id, undefined, error);
    if (!state.window.record(ctx.runtime.clock.now()))
      return giveUp(ctx, state.window, child.spec.id, error, state);
    ctx.runtime.send(ctx.self.toJSON(), new RetryRestart(child.serial));
  }
  return state;
}

async function childExited(
  state: DynamicState,
  ctx: Ctx,
  child: DynamicChild,
  reason: unknown,
): Promise<CastResult<DynamicState>> {
  const pid = child.ref as AnyRef;
  state.byPid.delete(pidKey(pid));
  child.ref = undefined;
  if (!needsRestart(child.spec.restart, reason)) {
    // Unlike a static supervisor, nobody could restart a finished child by id: forget it.
    state.children.delete(child.serial);
    return state;
  }
  emitRestart(ctx, child.spec.id, pid, reason);
  if (!state.window.record(ctx.runtime.clock.now()))
    return giveUp(ctx, state.window, child.spec.id, reason, state);
  return restart(state, ctx, child);
}

async function shutdownAll(state: DynamicState, ctx: Ctx): Promise<void> {
  const children = [...state.children.values()];
  for (let i = children.length - 1; i >= 0; i--) {
    const child = children[i] as DynamicChild;
    const ref = child.ref;
    if (ref === undefined) continue;
    child.ref = undefined;
    state.byPid.delete(pidKey(ref));
    await shutdownChildAgent(ctx, ref, child.spec.shutdown);
  }
}

async function handleDynamicCall(
  msg: DynamicSupervisorCall,
  state: DynamicState,
  ctx: Ctx,
): Promise<ProtocolReply> {
  const me = ctx.self.toString();
  switch (msg.op) {
    case 'which_children': {
      const rows: DynamicChildInfo[] = [];
      for (const c of state.children.values()) {
        rows.push({
          id: c.spec.id,
          ref: c.ref,
          status: c.ref === undefined ? 'restarting' : 'running',
          type: c.spec.type,
          restart: c.spec.restart,
        });
      }
      return ok(rows);
    }
    case 'count_children': {
      let active = 0;
      let supervisors = 0;
      for (const c of state.children.values()) {
        if (c.ref !== undefined) active++;
        if (c.spec.type === 'supervisor') supervisors++;
      }
      const specs = state.children.size;
      const counts: ChildCounts = { specs, active, supervisors, workers: specs - supervisors };
      return ok(counts);
    }
    case 'start_child': {
      if (state.children.size >= state.maxChildren)
        return failed(new MaxChildrenError(me, state.maxChildren));
      let spec: ResolvedChild;
      try {
        spec = resolveChildSpec(msg.spec, false);
      } catch (error) {
        return failed(error);
      }
      const child: DynamicChild = { serial: state.nextSerial++, spec, ref: undefined };
      try {
        const ref = await start(state, ctx, child);
        state.children.set(child.serial, child);
        return ok(ref);
      } catch (error) {
        return failed(error);
      }
    }
    case 'terminate_child': {
      const child = isPid(msg.pid) ? state.byPid.get(pidKey(msg.pid)) : undefined;
      if (child === undefined) return failed(new NoChildError(me, msg.pid));
      const ref = child.ref as AnyRef;
      child.ref = undefined;
      state.byPid.delete(pidKey(ref));
      state.children.delete(child.serial);
      await shutdownChildAgent(ctx, ref, child.spec.shutdown);
      return ok();
    }
    default:
      return failed(new InvalidArgumentError('dynamic supervisor call', 'unknown operation', msg));
  }
}

const dynamicCallbacks = behaviour<
  DynamicSupervisorSpec,
  DynamicState,
  DynamicSupervisorCall,
  ProtocolReply,
  never,
  RetryRestart
>({
  init(spec, ctx) {
    const resolved = resolveDynamicSpec(spec);
    ctx.trapExit(true);
    return {
      window: new RestartWindow(resolved),
      maxChildren: resolved.maxChildren,
      children: new Map(),
      byPid: new Map(),
      nextSerial: 0,
    };
  },

  handleCall(msg, _from, state, ctx) {
    return handleDynamicCall(msg, state, ctx).then((answer) => reply(answer, state));
  },

  handleInfo(msg, state, ctx) {
    if (msg instanceof RetryRestart) {
      const child = state.children.get(msg.serial);
      if (child === undefined || child.ref !== undefined) return state;
      return restart(state, ctx, child);
    }
    if (!isExitMessage(msg)) return state;
    const child = state.byPid.get(pidKey(msg.from));
    if (child !== undefined) return childExited(state, ctx, child, msg.reason);
    if (isExitFromOutside(ctx, msg)) return stop(msg.reason, state);
    return state;
  },

  terminate(_reason, state, ctx) {
    return shutdownAll(state, ctx);
  },
});

/** The dynamic supervisor behaviour; spawn it with a DynamicSupervisorSpec as args. */
export const DynamicSupervisorBehaviour = Object.assign(dynamicCallbacks, {
  [CHECK_ARGS]: (args: unknown): void => {
    resolveDynamicSpec(args);
  },
});

/**
 * Start a dynamic supervisor with no children. From a runtime it is top-level; from an agent's
 * context it is linked to that agent. A bad spec rejects with InvalidArgumentError.
 */
export function startDynamicSupervisor(
  site: StartSite,
  spec: DynamicSupervisorSpec = {},
  options?: SupervisorStartOptions,
): Promise<DynamicSupervisorRef> {
  return spawnSupervisor(site, DynamicSupervisorBehaviour, spec, options);
}

/**
 * Start a child from `spec` and resolve with its ref. Rejects with InvalidArgumentError for a bad
 * spec, MaxChildrenError when the supervisor is full, or the child's start error.
 */
export async function startChild(
  caller: Caller,
  sup: DynamicSupervisorDest,
  spec: DynamicChildSpec,
  timeoutMs = Number.POSITIVE_INFINITY,
): Promise<AnyRef> {
  resolveChildSpec(spec, false);
  return (await request(caller, sup, { op: 'start_child', spec }, timeoutMs)) as AnyRef;
}

/** Shut a child down by its shutdown policy and forget it. Not a child (any more): NoChildError. */
export async function terminateChild(
  caller: Caller,
  sup: DynamicSupervisorDest,
  child: AnyRef | Pid,
  timeoutMs = Number.POSITIVE_INFINITY,
): Promise<void> {
  // Send the plain pid: the call protocol stays serializable.
  const pid: Pid = { node: child.node, thread: child.thread, id: child.id };
  await request(caller, sup, { op: 'terminate_child', pid }, timeoutMs);
}

/** The children in start order (a restarted child keeps its place), with refs and status. */
export async function whichChildren(
  caller: Caller,
  sup: DynamicSupervisorDest,
  timeoutMs = Number.POSITIVE_INFINITY,
): Promise<DynamicChildInfo[]> {
  return (await request(caller, sup, { op: 'which_children' }, timeoutMs)) as DynamicChildInfo[];
}

/** How many children the supervisor holds, how many run, and how many are supervisors/workers. */
export async function countChildren(
  caller: Caller,
  sup: DynamicSupervisorDest,
  timeoutMs = Number.POSITIVE_INFINITY,
): Promise<ChildCounts> {
  return (await request(caller, sup, { op: 'count_children' }, timeoutMs)) as ChildCounts;
}

/** A child spec that runs a dynamic supervisor under a static one (type `supervisor`). */
export function dynamicSupervisorChildSpec(
  id: ChildId,
  spec: DynamicSupervisorSpec = {},
  extras: Omit<ChildSpecExtras, 'type'> = {},
): ChildSpec {
  const { options, ...rest } = extras;
  const args = spec;
  const startSpec =
    options === undefined
      ? { behaviour: DynamicSupervisorBehaviour, args }
      : { behaviour: DynamicSupervisorBehaviour, args, options };
  return { id, start: startSpec, type: 'supervisor', ...rest };
}

/** The dynamic supervisor API as one namespace; every operation but `start` is a call to it. */
export const DynamicSupervisor = Object.freeze({
  start: startDynamicSupervisor,
  childSpec: dynamicSupervisorChildSpec,
  startChild,
  terminateChild,
  whichChildren,
  countChildren,
  behaviour: DynamicSupervisorBehaviour,
});
