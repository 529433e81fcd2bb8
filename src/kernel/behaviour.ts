/**
 * Behaviours separate the generic agent loop (owned by the runtime) from the callbacks (owned by
 * the user), like OTP's gen_server. Callbacks return plain values or tagged results built with
 * `reply`, `noreply` and `stop`; any of them may be async, in which case the agent (and only that
 * agent) waits for it before taking its next message.
 */
import type { AgentContext } from './context.js';
import type { AnyRef, Pid } from './pid.js';

/** Exit reasons with meaning to the runtime. Any other value (usually an Error) is abnormal. */
export type ExitReason =
  | 'normal'
  | 'shutdown'
  | 'killed'
  | 'noproc'
  | { readonly shutdown: unknown }
  | unknown;

/** True for reasons that do not count as a crash: `normal`, `shutdown` and `{shutdown: x}`. */
export function isNormalExit(reason: unknown): boolean {
  return (
    reason === 'normal' ||
    reason === 'shutdown' ||
    (reason !== null && typeof reason === 'object' && !(reason instanceof Error) && 'shutdown' in reason)
  );
}

/** Delivered to a monitoring agent's handleInfo when the monitored agent exits. */
export interface DownMessage {
  readonly type: 'DOWN';
  readonly monitor: MonitorRef;
  readonly pid: Pid;
  readonly reason: unknown;
}

/** Delivered to an agent that traps exits when a linked agent exits (or `exit` is sent to it). */
export interface ExitMessage {
  readonly type: 'EXIT';
  readonly from: Pid;
  readonly reason: unknown;
}

/** Identifies one monitor, for `demonitor`. */
export interface MonitorRef {
  readonly monitorId: number;
}

/** Messages the runtime itself delivers to handleInfo. */
export type SystemMessage = DownMessage | ExitMessage;

/** Who is waiting for a call's reply; pass it to `ctx.reply` to answer later. */
export interface From<Reply = unknown> {
  readonly __reply?: (r: Reply) => void;
}

export class CallReply<R, S> {
  constructor(
    readonly value: R,
    readonly state: S,
  ) {}
}

export class NoReply<S> {
  constructor(readonly state: S) {}
}

export class Stop<S, R = unknown> {
  constructor(
    readonly reason: unknown,
    readonly state: S,
    readonly hasReply: boolean,
    readonly value: R | undefined,
  ) {}
}

/** Reply `value` to the caller and continue with `state`. */
export function reply<R, S>(value: R, state: S): CallReply<R, S> {
  return new CallReply(value, state);
}

/** Continue with `state` without replying now; answer later with `ctx.reply(from, value)`. */
export function noreply<S>(state: S): NoReply<S> {
  return new NoReply(state);
}

/**
 * Stop the agent with `reason` after this message (terminate runs). From handleCall, pass a third
 * argument to reply to the caller before stopping.
 */
export function stop<S, R = never>(reason: unknown, state: S, ...replyValue: [R] | []): Stop<S, R> {
  return new Stop(reason, state, replyValue.length > 0, replyValue[0]);
}

export type CallResult<R, S> = CallReply<R, S> | NoReply<S> | Stop<S, R>;
export type CastResult<S> = S | Stop<S>;
type MaybePromise<T> = T | Promise<T>;

/**
 * An agent's callbacks. Type parameters: Args (init's argument), State, Call (call messages),
 * Reply (what calls answer), Cast (cast messages), Info (plain messages sent with `send`).
 */
export interface Behaviour<Args, State, Call = never, Reply = never, Cast = never, Info = never> {
  /** Builds the initial state. Throwing (or rejecting) makes `spawn` reject with an InitError. */
  init(args: Args, ctx: AgentContext<Call, Reply, Cast, Info>): MaybePromise<State>;
  handleCall?(
    msg: Call,
    from: From<Reply>,
    state: State,
    ctx: AgentContext<Call, Reply, Cast, Info>,
  ): MaybePromise<CallResult<Reply, State>>;
  /** Returns the next state, or `stop(reason, state)`. */
  handleCast?(
    msg: Cast,
    state: State,
    ctx: AgentContext<Call, Reply, Cast, Info>,
  ): MaybePromise<CastResult<State>>;
  /** Plain messages, timers, DOWN and (when trapping exits) EXIT messages. */
  handleInfo?(
    msg: Info | SystemMessage,
    state: State,
    ctx: AgentContext<Call, Reply, Cast, Info>,
  ): MaybePromise<CastResult<State>>;
  /**
   * Runs when the agent stops by `stop`, by returning `stop(...)`, by a crash in a callback, or
   * (when trapping exits) by an exit signal from its parent. Not run on `kill`.
   */
  terminate?(reason: unknown, state: State, ctx: AgentContext<Call, Reply, Cast, Info>): MaybePromise<void>;
}

/** Infer the handle type of agents spawned from a behaviour. */
export type RefOf<B> =
  B extends Behaviour<unknown, unknown, infer C, infer R, infer K, infer I>
    ? import('./pid.js').AgentRef<C, R, K, I>
    : B extends Behaviour<never, unknown, infer C, infer R, infer K, infer I>
      ? import('./pid.js').AgentRef<C, R, K, I>
      : AnyRef;

/**
 * Identity helper that fixes a behaviour's types in one place:
 * `const Counter = behaviour<number, number, 'get', number, 'inc'>({ ... })`.
 */
export function behaviour<Args, State, Call = never, Reply = never, Cast = never, Info = never>(
  b: Behaviour<Args, State, Call, Reply, Cast, Info>,
): Behaviour<Args, State, Call, Reply, Cast, Info> {
  return b;
}
