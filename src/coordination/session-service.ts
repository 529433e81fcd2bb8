/**
 * The skeleton every session-based service shares (consensus, barriers, allocation, auctions): a
 * top-level dynamic supervisor whose temporary children are the sessions, automatic session ids,
 * and a hook that runs when a session exits, so a session killed before it settled still ends its
 * caller's promise. Each service keeps its own settle-once logic and result types.
 */
import {
  type AnyRef,
  type Behaviour,
  DynamicSupervisor,
  type DynamicSupervisorRef,
  type Runtime,
} from '../kernel/index.js';

export abstract class SessionService {
  readonly runtime: Runtime;
  /** The dynamic supervisor the sessions run under. */
  readonly supervisor: DynamicSupervisorRef;
  #nextId = 0;

  protected constructor(runtime: Runtime, supervisor: DynamicSupervisorRef) {
    this.runtime = runtime;
    this.supervisor = supervisor;
  }

  /** Start the sessions' supervisor at top level on `runtime`, with at most `maxSessions` children. */
  protected static startSupervisor(runtime: Runtime, maxSessions?: number): Promise<DynamicSupervisorRef> {
    return DynamicSupervisor.start(runtime, maxSessions === undefined ? {} : { maxChildren: maxSessions });
  }

  /** The next automatic session id: 1, 2, ... per service. */
  protected nextSessionId(): number {
    return ++this.#nextId;
  }

  /**
   * Start a session: a temporary child running `behaviour` with `args`. `onExit(reason)` runs when
   * it exits, however it ends (the service settles the caller there if the session had not).
   * Rejects with the supervisor's error when the session cannot start.
   */
  protected async startSession<A>(
    id: number | string,
    // biome-ignore lint/suspicious/noExplicitAny: a session runs its own protocol's behaviour
    behaviour: Behaviour<A, any, any, any, any, any>,
    args: A,
    onExit: (reason: unknown) => void,
  ): Promise<AnyRef> {
    const ref = await DynamicSupervisor.startChild(this.runtime, this.supervisor, {
      id,
      start: { behaviour, args },
      restart: 'temporary',
    });
    this.runtime.onExit(ref, onExit);
    return ref;
  }

  /** Stop the service and every running session (their callers are settled by `onExit`). */
  stop(): Promise<void> {
    return this.runtime.stop(this.supervisor, 'shutdown');
  }
}
