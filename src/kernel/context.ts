// biome-ignore-all lint/suspicious/noExplicitAny: `any` marks the message types a signature does not constrain
import type { Behaviour, From, MonitorRef } from './behaviour.js';
import type { AgentRef, AnyRef, Pid } from './pid.js';
import type { Runtime, SpawnOptions, TimerRef } from './runtime.js';

/**
 * A destination without message types: a registered name, or a plain pid (for example one that
 * crossed a thread as JSON). Typed refs never match it, so a wrong message to a typed ref cannot
 * slip through as "untyped".
 */
export type UntypedDest = Name | Via | (Pid & { readonly equals?: never });

/** The key of a `Via` destination's resolver. */
export const VIA: unique symbol = Symbol('mabeam.via');

/**
 * A destination resolved by another name service (OTP's `{via, Module, Name}`): the runtime calls
 * `[VIA](runtime)` at send time and delivers to the ref it returns (none: like an unknown name).
 */
export interface Via {
  readonly [VIA]: (runtime: Runtime) => AnyRef | undefined;
}

/** Where a message can go: a typed ref, a plain pid, or a name registered with `runtime.register`. */
export type Dest<Call = unknown, Reply = unknown, Cast = unknown, Info = unknown> =
  | AgentRef<Call, Reply, Cast, Info>
  | UntypedDest;

/** A registered name. */
export type Name = string | number | symbol;

/**
 * What an agent's callbacks can do. The context is the agent itself: messages sent through it
 * come from this agent, agents spawned through it have it as parent, timers are owned by it.
 */
export interface AgentContext<Call = unknown, Reply = unknown, Cast = unknown, Info = unknown> {
  /** This agent's handle. */
  readonly self: AgentRef<Call, Reply, Cast, Info>;
  readonly runtime: Runtime;
  /** Answer a call that was left pending with `noreply`. Returns false if it had already settled. */
  reply<R>(from: From<R>, value: R): boolean;
  /** Turn exit signals from links into EXIT messages (true) or let them kill this agent (false). */
  trapExit(on: boolean): void;
  link(other: AnyRef | Pid): void;
  unlink(other: AnyRef | Pid): void;
  /** Receive a DOWN message when `other` exits (at once, with reason 'noproc', if it is gone). */
  monitor(other: AnyRef | Pid): MonitorRef;
  demonitor(monitor: MonitorRef): boolean;
  /** Spawn an agent whose parent is this agent. */
  spawn<A, S, C, R, K, I>(
    behaviour: Behaviour<A, S, C, R, K, I>,
    args: A,
    options?: SpawnOptions,
  ): Promise<AgentRef<C, R, K, I>>;
  /** Spawn an agent linked to this one. */
  spawnLink<A, S, C, R, K, I>(
    behaviour: Behaviour<A, S, C, R, K, I>,
    args: A,
    options?: Omit<SpawnOptions, 'link'>,
  ): Promise<AgentRef<C, R, K, I>>;
  call<C, R>(dest: AgentRef<C, R, never, never>, msg: NoInfer<C>, timeoutMs?: number): Promise<R>;
  call<R = unknown>(dest: UntypedDest, msg: unknown, timeoutMs?: number): Promise<R>;
  cast<K>(dest: AgentRef<never, unknown, K, never>, msg: NoInfer<K>): boolean;
  cast(dest: UntypedDest, msg: unknown): boolean;
  send<I>(dest: AgentRef<never, unknown, never, I>, msg: NoInfer<I>): boolean;
  send(dest: UntypedDest, msg: unknown): boolean;
  /** Send `msg` to this agent's handleInfo after `ms` (runtime clock). Cancelled if the agent exits. */
  sendAfter(msg: Info, ms: number): TimerRef;
  cancelTimer(timer: TimerRef): number | false;
  /** Send an exit signal to another agent (`'kill'` cannot be trapped). */
  exit(dest: AnyRef | Pid, reason: unknown): void;
  /**
   * Agent-local storage for libraries built on the kernel: the value kept for `key` (compared by
   * identity), made by `init` on first use, and dropped with the agent. Protocol helpers use it to
   * reuse one message object per agent instead of allocating one per message (see `castVote`).
   * The first key an agent uses is a field read; later keys go through a Map.
   */
  local<T>(key: object, init: () => T): T;
}
