/**
 * Agent pools: warm agents of each type, started ahead of demand, lent to one holder at a time and
 * taken back, more of them started under load up to a maximum, and the surplus stopped once idle.
 *
 * Built on the foundation `Pool` (one per agent type), which already does the hard parts: the FIFO
 * queue of waiting checkouts with deadlines on the runtime clock, creating up to `size +
 * maxOverflow`, reaping idle surplus, binding a lease to its holder, and closing. What the pool
 * lends is not the agent itself but a *slot* that holds one agent. When that agent exits for any
 * reason the pool did not ask for (a crash, a `stop`, a kill), a replacement is started in the same
 * slot, so the foundation pool's books never change and the type keeps its `warm` agents without a
 * second queue. A checkout that receives a slot whose agent is still being replaced waits for it.
 *
 * Agents run under a DynamicSupervisor (the pool's own, or one the caller passes) as `temporary`
 * children: the pool, not the supervisor, decides about replacements, because it alone knows
 * whether an agent was idle, lent, or being retired. Every start and stop goes through that one
 * supervisor, which handles them in order, so a retired agent is gone before its successor starts.
 * A slot being retired still counts against `max` until its agent is stopped (the foundation pool
 * stops counting it at once): a new slot's start waits for that, so a type never has more than
 * `max` agents alive.
 *
 * Each checkout is a lease with its own identity: the ref a checkout returns is a fresh ref object
 * for the agent, and `checkin` with it acts on that lease only. A holder whose lease has already
 * ended (it exited and the agent went back, or the agent died) gets false, and can never give
 * back an agent that has since been lent to someone else.
 */
import {
  Pool,
  CheckoutTimeoutError as PoolCheckoutTimeoutError,
  PoolClosedError,
  HolderExitedError as PoolHolderExitedError,
  NotCheckedOutError as PoolNotCheckedOutError,
  ResourceCreateError as PoolResourceCreateError,
} from '../foundation/pool.js';
import {
  type AgentContext,
  AgentRef,
  type AnyRef,
  type Behaviour,
  DynamicSupervisor,
  type DynamicSupervisorDest,
  type DynamicSupervisorRef,
  describe,
  InvalidArgumentError,
  isPid,
  MabeamError,
  type Pid,
  pidKey,
  type RefOf,
  type Runtime,
  TimeoutError,
  type TimerHandle,
} from '../kernel/index.js';
import { localProcess } from '../kernel/pid.js';

// ---- errors ------------------------------------------------------------------------------------

/** Error codes of agent pools (unique across mabeam, never reused). */
export const AgentPoolErrorCodes = {
  /** No agent of the type became free within the checkout timeout (all `max` were busy). */
  EXHAUSTED: 'E_AGENT_POOL_EXHAUSTED',
  /** A type the pool was not started with. */
  UNKNOWN_TYPE: 'E_AGENT_POOL_UNKNOWN_TYPE',
  /** The pool is closed (or closing): checkouts are refused and waiters rejected. */
  CLOSED: 'E_AGENT_POOL_CLOSED',
  /** `checkin` of a live agent that is not checked out from this pool (or already checked in). */
  NOT_CHECKED_OUT: 'E_AGENT_POOL_NOT_CHECKED_OUT',
  /** An agent could not be started (its init failed); `cause` holds why. */
  START_FAILED: 'E_AGENT_POOL_START_FAILED',
  /** The holder a checkout was made for exited before the agent was handed over. */
  HOLDER_EXITED: 'E_AGENT_POOL_HOLDER_EXITED',
} as const;

/** Every agent of `type` stayed busy for the whole checkout timeout. */
export class AgentPoolExhaustedError extends MabeamError {
  readonly pool: string;
  readonly type: string;
  readonly timeoutMs: number;
  readonly max: number;
  constructor(pool: string, type: string, timeoutMs: number, max: number, detail: string, cause?: unknown) {
    super(
      AgentPoolErrorCodes.EXHAUSTED,
      `${pool}: no ${JSON.stringify(type)} agent became free within ${timeoutMs} ms (max ${max}; ${detail})`,
      { cause },
    );
    this.pool = pool;
    this.type = type;
    this.timeoutMs = timeoutMs;
    this.max = max;
  }
}

/** A type the pool does not have. */
export class UnknownAgentTypeError extends MabeamError {
  readonly pool: string;
  readonly type: unknown;
  constructor(pool: string, type: unknown, known: readonly string[]) {
    super(
      AgentPoolErrorCodes.UNKNOWN_TYPE,
      `${pool} has no agent type ${describe(type)} (types: ${known.map((t) => JSON.stringify(t)).join(', ')})`,
    );
    this.pool = pool;
    this.type = type;
  }
}

/** The pool is closed or closing. */
export class AgentPoolClosedError extends MabeamError {
  readonly pool: string;
  constructor(pool: string) {
    super(AgentPoolErrorCodes.CLOSED, `${pool} is closed`);
    this.pool = pool;
  }
}

/** `checkin` of a live agent this pool did not lend out (or that is already checked in). */
export class AgentNotCheckedOutError extends MabeamError {
  readonly pool: string;
  constructor(pool: string, agent: unknown, detail = 'never lent, or already checked in') {
    super(
      AgentPoolErrorCodes.NOT_CHECKED_OUT,
      `${describe(agent)} is not checked out from ${pool} (${detail})`,
    );
    this.pool = pool;
  }
}

/** An agent of `type` could not be started; `cause` is what its start threw. */
export class AgentPoolStartError extends MabeamError {
  readonly pool: string;
  readonly type: string;
  constructor(pool: string, type: string, cause: unknown) {
    super(
      AgentPoolErrorCodes.START_FAILED,
      `${pool} could not start a ${JSON.stringify(type)} agent: ${describe(cause)}`,
      { cause },
    );
    this.pool = pool;
    this.type = type;
  }
}

/** The holder a checkout was bound to exited before the agent was handed over. */
export class AgentHolderExitedError extends MabeamError {
  readonly pool: string;
  readonly type: string;
  readonly holder: string;
  constructor(pool: string, type: string, holder: string, cause?: unknown) {
    super(
      AgentPoolErrorCodes.HOLDER_EXITED,
      `checkout of a ${JSON.stringify(type)} agent from ${pool} for ${holder} abandoned: the holder exited`,
      { cause },
    );
    this.pool = pool;
    this.type = type;
    this.holder = holder;
  }
}

// ---- public types ------------------------------------------------------------------------------

// biome-ignore lint/suspicious/noExplicitAny: a pool may run agents of any behaviour
type AnyBehaviour = Behaviour<any, any, any, any, any, any>;

/** What happens to a lent agent whose holder exits without checking it in. */
export type HolderExitPolicy = 'return' | 'replace';

/** One agent type of a pool. */
export interface AgentTypeSpec<B extends AnyBehaviour = AnyBehaviour> {
  readonly behaviour: B;
  /** init's argument, the same for every agent of the type. */
  readonly args?: unknown;
  /** Agents started with the pool and kept however idle (an integer >= 0). */
  readonly warm: number;
  /** Most agents of the type at once, busy or idle (an integer >= max(warm, 1)). Default: `warm`. */
  readonly max?: number;
  /** How long (ms, runtime clock) an agent above `warm` may sit idle before it is stopped. Default 10000. */
  readonly idleMs?: number;
  /** Default checkout timeout (ms, runtime clock). Default 5000; Infinity waits forever. */
  readonly checkoutTimeoutMs?: number;
  /**
   * A lent agent whose holder exits: `replace` (default) stops it and starts a fresh one, since it
   * may be mid-task for the dead holder or hold its state; `return` puts it back as it is (cheaper,
   * for stateless agents). Either way the next holder never gets a dead agent.
   */
  readonly onHolderExit?: HolderExitPolicy;
  /**
   * Health check run on an agent before it is lent again (not on one just started). False, or a
   * throw, stops it and lends a freshly started one instead.
   */
  readonly healthy?: (agent: RefOf<B>, runtime: Runtime) => boolean | Promise<boolean>;
}

/** The agent types of a pool, by name. */
export type AgentTypes = Record<string, AgentTypeSpec>;

/** Options of `AgentPool.start`. */
export interface AgentPoolOptions<T extends AgentTypes> {
  /** Shown in errors and telemetry. Default `agent pool`. */
  readonly name?: string;
  readonly types: T;
  /**
   * Run the agents under this dynamic supervisor (the pool stops only its own agents on close).
   * Default: the pool starts its own, and stops it on close.
   */
  readonly supervisor?: DynamicSupervisorDest;
}

/** Who holds a checked-out agent: an agent context (inside a callback) or an agent's ref or pid. */
export type AgentHolder = AgentContext | AnyRef | Pid;

/** Options of `checkout` and `withAgent`. */
export interface AgentCheckoutOptions {
  /** How long to wait for a free agent (ms, runtime clock). Default: the type's `checkoutTimeoutMs`. */
  timeoutMs?: number;
  /**
   * Bind the agent to this holder: if the holder exits while holding it, the agent is returned or
   * replaced (the type's `onHolderExit`); if it exits while waiting, the checkout is abandoned.
   * Default: the calling agent when called on an agent callback's synchronous stack, else none;
   * `null` binds to nobody.
   */
  holder?: AgentHolder | null;
}

/** Options of `checkin`. */
export interface AgentCheckinOptions {
  /** The agent's state is spoiled: stop it and put a freshly started one in its place. */
  replace?: boolean;
}

/** A snapshot of one type's books. */
export interface AgentPoolStats {
  readonly type: string;
  readonly warm: number;
  readonly max: number;
  /** Agents waiting to be lent (including any whose replacement is starting). */
  readonly idle: number;
  /** Agents lent out. */
  readonly busy: number;
  /** Checkouts waiting for an agent. */
  readonly waiting: number;
  /** Agents alive in the pool now. */
  readonly live: number;
  /** Agents being started: new ones and replacements. */
  readonly starting: number;
  /** Lifetime: agents started (replacements included). */
  readonly spawned: number;
  /** Lifetime: agents started to replace one that exited, was unhealthy, or whose holder exited. */
  readonly replaced: number;
  /** Lifetime: agents the pool stopped (idle surplus, replacements, close). */
  readonly stopped: number;
  /**
   * Lifetime: checkouts that timed out, waiting for a free agent or, once given one, for its
   * replacement to start or its health check to answer.
   */
  readonly timeouts: number;
  readonly closed: boolean;
}

// ---- books -------------------------------------------------------------------------------------

interface TypeConfig {
  readonly behaviour: AnyBehaviour;
  readonly args: unknown;
  readonly warm: number;
  readonly max: number;
  readonly idleMs: number;
  readonly checkoutTimeoutMs: number;
  readonly onHolderExit: HolderExitPolicy;
  readonly healthy: ((agent: AnyRef, runtime: Runtime) => boolean | Promise<boolean>) | undefined;
}

/** What the foundation pool lends: a place for one agent, refilled when its agent exits. */
interface Slot {
  readonly books: TypeBooks;
  /** The agent, or null while none runs (being replaced, or its start failed). */
  ref: AnyRef | null;
  /** A replacement being started; never rejects. */
  starting: Promise<void> | null;
  /** Why the last start failed (cleared by a successful one). */
  startError: unknown;
  /** The foundation pool destroyed the slot (idle surplus, close): its agent must not come back. */
  retired: boolean;
  /** Removes the exit hook on `ref`. */
  unwatch: (() => void) | null;
  /** The current holder's lease, if any. */
  lease: Lease | null;
  /** The agent has been lent since it started (only then is it health-checked). */
  used: boolean;
  /** Agents of this slot that exited in a row without ever being lent (a crash loop guard). */
  unlentExits: number;
  /** Starts that failed in a row (the backoff of the background retry). */
  failedStarts: number;
  /** The background retry of a failed start (runtime clock), if armed. */
  retryTimer: TimerHandle | null;
  /** The retirement under way (the agent being stopped), once retired. */
  retiring: Promise<void> | null;
}

/** How a lease ended: only one ended by `checkin` makes a second checkin misuse. */
type LeaseEnd = 'checkin' | 'holder' | 'agent' | 'abandoned' | 'closed';

interface Lease {
  readonly slot: Slot;
  readonly holder: AnyRef | Pid | undefined;
  /** The agent handed over; null until the checkout has it. */
  ref: AnyRef | null;
  /** The ref object given to the holder (this lease's identity in `checkin`); null until then. */
  handle: AnyRef | null;
  unbind: (() => void) | null;
  /** Ended by checkin, holder exit, agent exit or close. */
  ended: boolean;
  endedBy: LeaseEnd | null;
  /** Wakes the checkout's wait (for a start or a health check) when the lease ends. */
  wake: (() => void) | null;
}

interface TypeBooks {
  readonly type: string;
  readonly cfg: TypeConfig;
  pool: Pool<Slot> | null;
  readonly slots: Set<Slot>;
  spawned: number;
  replaced: number;
  stopped: number;
  /** Checkouts that timed out after the foundation pool handed them a slot. */
  timeouts: number;
  /** Slots retired whose agent is not stopped yet: they still count against `max`. */
  retiring: number;
  /** Slot creates waiting for a retirement to finish (woken on each, and on close). */
  readonly capacityWaiters: (() => void)[];
}

/** Replacements started in a row for agents that exited before ever being lent, before giving up. */
const CRASH_LOOP_LIMIT = 3;

/** Background retries of a failed start: the first after this long (runtime clock), then doubling. */
const RETRY_BASE_MS = 1000;
/** ... up to this. */
const RETRY_MAX_MS = 60_000;

/** How long (runtime clock) a given `supervisor` has to answer the check at start. */
const SUPERVISOR_PROBE_MS = 5000;

const EV_SPAWN = ['mabeam', 'agent_pool', 'spawn'] as const;
const EV_START_FAILED = ['mabeam', 'agent_pool', 'start_failed'] as const;

const POOL_KEYS = new Set(['name', 'types', 'supervisor']);
const TYPE_KEYS = new Set([
  'behaviour',
  'args',
  'warm',
  'max',
  'idleMs',
  'checkoutTimeoutMs',
  'onHolderExit',
  'healthy',
]);

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function checkType(type: string, spec: unknown): TypeConfig {
  const field = (key: string) => `agent pool type ${JSON.stringify(type)} option ${JSON.stringify(key)}`;
  if (!isObject(spec)) {
    throw new InvalidArgumentError(`agent pool type ${JSON.stringify(type)}`, 'must be an object', spec);
  }
  for (const key of Object.keys(spec)) {
    if (!TYPE_KEYS.has(key)) throw new InvalidArgumentError(field(key), 'unknown option');
  }
  const s = spec as unknown as AgentTypeSpec;
  const b = s.behaviour as unknown;
  if (!isObject(b) || typeof (b as { init?: unknown }).init !== 'function') {
    throw new InvalidArgumentError(field('behaviour'), 'must be a behaviour (an object with init)', b);
  }
  if (!Number.isInteger(s.warm) || s.warm < 0) {
    throw new InvalidArgumentError(field('warm'), 'must be an integer >= 0', s.warm);
  }
  const max = s.max ?? s.warm;
  if (!Number.isInteger(max) || max < Math.max(1, s.warm)) {
    throw new InvalidArgumentError(
      field('max'),
      `must be an integer >= ${Math.max(1, s.warm)} (at least 1, and at least warm)`,
      s.max,
    );
  }
  const idleMs = s.idleMs ?? 10_000;
  if (!(idleMs >= 0) || !Number.isFinite(idleMs)) {
    throw new InvalidArgumentError(field('idleMs'), 'must be a finite number of ms >= 0', s.idleMs);
  }
  const checkoutTimeoutMs = s.checkoutTimeoutMs ?? 5000;
  if (!(checkoutTimeoutMs > 0)) {
    throw new InvalidArgumentError(
      field('checkoutTimeoutMs'),
      'must be a positive number of ms (or Infinity)',
      s.checkoutTimeoutMs,
    );
  }
  const onHolderExit = s.onHolderExit ?? 'replace';
  if (onHolderExit !== 'return' && onHolderExit !== 'replace') {
    throw new InvalidArgumentError(field('onHolderExit'), 'must be "return" or "replace"', s.onHolderExit);
  }
  if (s.healthy !== undefined && typeof s.healthy !== 'function') {
    throw new InvalidArgumentError(field('healthy'), 'must be a function', s.healthy);
  }
  return {
    behaviour: s.behaviour,
    args: s.args,
    warm: s.warm,
    max,
    idleMs,
    checkoutTimeoutMs,
    onHolderExit,
    healthy: s.healthy as TypeConfig['healthy'],
  };
}

function wakeCapacity(books: TypeBooks): void {
  for (const wake of books.capacityWaiters.splice(0)) wake();
}

/**
 * Check that `given` names a running DynamicSupervisor before anything is started under it: a
 * local agent of another behaviour is refused at once, and anything else must answer a
 * `countChildren` within SUPERVISOR_PROBE_MS (runtime clock), so a wrong `supervisor` fails
 * instead of leaving every start (a call without timeout) waiting for ever.
 */
async function checkSupervisor(runtime: Runtime, given: DynamicSupervisorDest): Promise<void> {
  const field = 'agent pool option "supervisor"';
  if ((isPid(given) || typeof given !== 'object' || given === null) && !runtime.isAlive(given as AnyRef)) {
    throw new InvalidArgumentError(field, 'must name a running dynamic supervisor', given);
  }
  const proc = runtime.resolve(given) as { behaviour?: unknown } | undefined;
  if (proc !== undefined && proc.behaviour !== DynamicSupervisor.behaviour) {
    throw new InvalidArgumentError(
      field,
      'must name a running dynamic supervisor (it names an agent of another behaviour)',
      given,
    );
  }
  let counts: unknown;
  try {
    counts = await DynamicSupervisor.countChildren(runtime, given, SUPERVISOR_PROBE_MS);
  } catch (error) {
    const why =
      error instanceof TimeoutError
        ? `it did not answer within ${SUPERVISOR_PROBE_MS} ms`
        : `it failed a count_children call: ${describe(error)}`;
    throw new InvalidArgumentError(field, `must name a running dynamic supervisor (${why})`, given);
  }
  if (!isObject(counts) || typeof counts.specs !== 'number' || typeof counts.active !== 'number') {
    throw new InvalidArgumentError(
      field,
      `must name a running dynamic supervisor (it answered count_children with ${describe(counts)})`,
      given,
    );
  }
}

function holderOf(holder: AgentHolder): AnyRef | Pid {
  if (holder !== null && typeof holder === 'object') {
    if ('self' in holder && isPid((holder as AgentContext).self)) return (holder as AgentContext).self;
    if (isPid(holder)) return holder;
  }
  throw new InvalidArgumentError('checkout option "holder"', 'must be an agent context, ref or pid', holder);
}

/**
 * A pool of warm agents per type.
 *
 * ```ts
 * const pool = await AgentPool.start(runtime, {
 *   types: { coder: { behaviour: Coder, args: { model: 'small' }, warm: 2, max: 8, idleMs: 30_000 } },
 * });
 * const answer = await pool.withAgent('coder', (agent) => runtime.call(agent, { type: 'solve', task }));
 * ```
 */
export class AgentPool<T extends AgentTypes = AgentTypes> {
  /** The name shown in errors and telemetry. */
  readonly name: string;
  readonly runtime: Runtime;
  /** The dynamic supervisor the agents run under. */
  readonly supervisor: DynamicSupervisorDest;
  readonly #books: Map<string, TypeBooks>;
  readonly #ownsSupervisor: boolean;
  /** Leases of agents handed out, by the agent's pid key. */
  readonly #out = new Map<string, Lease>();
  /** Every lease handed out, by the ref object its checkout returned (its identity in checkin). */
  readonly #leases = new WeakMap<object, Lease>();
  #closed = false;
  #closing: Promise<void> | null = null;

  private constructor(
    runtime: Runtime,
    name: string,
    supervisor: DynamicSupervisorDest,
    owns: boolean,
    books: Map<string, TypeBooks>,
  ) {
    this.runtime = runtime;
    this.name = name;
    this.supervisor = supervisor;
    this.#ownsSupervisor = owns;
    this.#books = books;
  }

  /**
   * Start the pool: a dynamic supervisor (unless one is given), then one foundation pool per type
   * with its `warm` agents running. Rejects with InvalidArgumentError naming the bad option, or with
   * AgentPoolStartError (E_AGENT_POOL_START_FAILED) when a warm agent's init fails (then nothing is
   * left running).
   */
  static async start<T extends AgentTypes>(
    runtime: Runtime,
    options: AgentPoolOptions<T>,
  ): Promise<AgentPool<T>> {
    if (!isObject(options))
      throw new InvalidArgumentError('agent pool options', 'must be an object', options);
    for (const key of Object.keys(options)) {
      if (!POOL_KEYS.has(key)) {
        throw new InvalidArgumentError(`agent pool option ${JSON.stringify(key)}`, 'unknown option');
      }
    }
    const name = options.name ?? 'agent pool';
    if (typeof name !== 'string' || name === '') {
      throw new InvalidArgumentError('agent pool option "name"', 'must be a non-empty string', options.name);
    }
    if (!isObject(options.types) || Object.keys(options.types).length === 0) {
      throw new InvalidArgumentError(
        'agent pool option "types"',
        'must be an object with at least one type',
        options.types,
      );
    }
    const books = new Map<string, TypeBooks>();
    for (const [type, spec] of Object.entries(options.types)) {
      books.set(type, {
        type,
        cfg: checkType(type, spec),
        pool: null,
        slots: new Set(),
        spawned: 0,
        replaced: 0,
        stopped: 0,
        timeouts: 0,
        retiring: 0,
        capacityWaiters: [],
      });
    }
    const given = options.supervisor;
    if (given !== undefined) await checkSupervisor(runtime, given);
    const supervisor: DynamicSupervisorDest =
      given ?? ((await DynamicSupervisor.start(runtime, {})) as DynamicSupervisorRef);
    const pool = new AgentPool<T>(runtime, name, supervisor, given === undefined, books);
    try {
      for (const b of books.values()) {
        b.pool = await Pool.start<Slot>(runtime, {
          name: `${name} type ${JSON.stringify(b.type)}`,
          size: b.cfg.warm,
          maxOverflow: b.cfg.max - b.cfg.warm,
          idleMs: b.cfg.idleMs,
          checkoutTimeoutMs: b.cfg.checkoutTimeoutMs,
          prefill: true,
          strategy: 'lifo',
          create: () => pool.#createSlot(b),
          destroy: (slot) => pool.#retireSlot(slot),
        });
      }
    } catch (error) {
      await pool.close();
      const cause = error instanceof PoolResourceCreateError ? error.cause : error;
      const failed = [...books.values()].find((b) => b.pool === null);
      throw new AgentPoolStartError(name, failed?.type ?? '?', cause);
    }
    if (pool.#ownsSupervisor) {
      // Without its supervisor the pool cannot start or stop agents: it closes.
      runtime.onExit(supervisor as DynamicSupervisorRef, () => {
        void pool.close();
      });
    }
    return pool;
  }

  /** The type names, in the order given at start. */
  get types(): (keyof T & string)[] {
    return [...this.#books.keys()] as (keyof T & string)[];
  }

  /**
   * Borrow an agent of `type`: an idle one (health-checked first when the type has `healthy`), a
   * new one while fewer than `max` exist, or else the next one checked in, in order of arrival.
   * Rejects with AgentPoolExhaustedError (E_AGENT_POOL_EXHAUSTED) after `timeoutMs` on the runtime
   * clock, UnknownAgentTypeError, AgentPoolClosedError, AgentPoolStartError when the agent started for
   * this checkout fails its init, AgentHolderExitedError when the bound holder exits first. Give
   * it back with `checkin`.
   */
  async checkout<K extends keyof T & string>(
    type: K,
    options: AgentCheckoutOptions = {},
  ): Promise<RefOf<T[K]['behaviour']>> {
    const lease = await this.#checkout(type, options, this.runtime.self());
    return lease.handle as RefOf<T[K]['behaviour']>;
  }

  /**
   * Give an agent back, optionally naming its type (checked). Pass the ref `checkout` returned: it
   * names that one lease. Returns true when it went back to the pool (or, with `{replace: true}`,
   * was stopped and a fresh one started in its place); false when that lease had already ended
   * without a checkin (its holder exited and the pool took the agent back, the agent exited, or
   * the pool closed): there is nothing to give back, and an agent lent on to someone else since is
   * never touched. Throws AgentNotCheckedOutError (E_AGENT_POOL_NOT_CHECKED_OUT) at once for a
   * second checkin of the same lease, a live agent that is not checked out from this pool, or one
   * not of `type`. A ref or pid obtained elsewhere (not from `checkout`) names the agent's current
   * lease, if any.
   */
  checkin(agent: AnyRef | Pid, options?: AgentCheckinOptions): boolean;
  checkin(type: keyof T & string, agent: AnyRef | Pid, options?: AgentCheckinOptions): boolean;
  checkin(
    a: string | AnyRef | Pid,
    b?: AnyRef | Pid | AgentCheckinOptions,
    c?: AgentCheckinOptions,
  ): boolean {
    let type: string | undefined;
    let agent: unknown;
    let options: AgentCheckinOptions | undefined;
    if (typeof a === 'string') {
      this.#booksOf(a);
      type = a;
      agent = b;
      options = c;
    } else {
      agent = a;
      options = b as AgentCheckinOptions | undefined;
    }
    if (!isPid(agent)) throw new InvalidArgumentError('checkin agent', 'must be an agent ref or pid', agent);
    if (options !== undefined && !isObject(options)) {
      throw new InvalidArgumentError('checkin options', 'must be an object', options);
    }
    if (this.#closed) return false;
    const own = this.#leases.get(agent as object);
    if (own !== undefined) {
      if (type !== undefined && own.slot.books.type !== type) {
        throw new AgentNotCheckedOutError(
          this.name,
          agent,
          `it is a ${JSON.stringify(own.slot.books.type)} agent, not ${JSON.stringify(type)}`,
        );
      }
      if (own.ended) {
        if (own.endedBy === 'checkin')
          throw new AgentNotCheckedOutError(this.name, agent, 'already checked in');
        return false;
      }
      this.#giveBack(own, options?.replace === true);
      return true;
    }
    const lease = this.#out.get(pidKey(agent));
    if (lease === undefined) {
      if (!this.runtime.isAlive(agent)) return false;
      throw new AgentNotCheckedOutError(this.name, agent);
    }
    if (type !== undefined && lease.slot.books.type !== type) {
      throw new AgentNotCheckedOutError(
        this.name,
        agent,
        `it is a ${JSON.stringify(lease.slot.books.type)} agent, not ${JSON.stringify(type)}`,
      );
    }
    this.#giveBack(lease, options?.replace === true);
    return true;
  }

  /**
   * Check an agent of `type` out, run `fn` with it, and check it back in however `fn` ends.
   * Resolves or rejects as `fn` does. An agent that exits during `fn` is replaced, not returned.
   */
  async withAgent<K extends keyof T & string, R>(
    type: K,
    fn: (agent: RefOf<T[K]['behaviour']>) => R | Promise<R>,
    options: AgentCheckoutOptions = {},
  ): Promise<R> {
    if (typeof fn !== 'function')
      throw new InvalidArgumentError('withAgent callback', 'must be a function', fn);
    const lease = await this.#checkout(type, options, this.runtime.self());
    try {
      return await fn(lease.handle as RefOf<T[K]['behaviour']>);
    } finally {
      // Only this lease: the holder or the agent may have exited meanwhile and the agent moved on.
      if (!lease.ended && !this.#closed) this.#giveBack(lease, false);
    }
  }

  /** One type's books, or every type's by name. Synchronous reads; unknown type throws. */
  stats(): Record<keyof T & string, AgentPoolStats>;
  stats(type: keyof T & string): AgentPoolStats;
  stats(type?: string): AgentPoolStats | Record<string, AgentPoolStats> {
    if (type !== undefined) return this.#stats(this.#booksOf(type));
    const all: Record<string, AgentPoolStats> = {};
    for (const b of this.#books.values()) all[b.type] = this.#stats(b);
    return all;
  }

  /**
   * Close the pool: waiting checkouts reject with AgentPoolClosedError, every agent (idle or lent)
   * is stopped through its supervisor, and the pool's own supervisor stops. Idempotent.
   */
  close(): Promise<void> {
    if (this.#closing !== null) return this.#closing;
    this.#closed = true;
    this.#closing = (async () => {
      for (const lease of [...this.#out.values()]) this.#endLease(lease, 'closed');
      for (const b of this.#books.values()) wakeCapacity(b);
      await Promise.allSettled([...this.#books.values()].map((b) => b.pool?.close()));
      for (const b of this.#books.values()) {
        for (const slot of [...b.slots]) await this.#retireSlot(slot);
      }
      if (this.#ownsSupervisor && this.runtime.isAlive(this.supervisor as DynamicSupervisorRef)) {
        await this.runtime.stop(this.supervisor, 'shutdown').catch(() => {});
      }
    })();
    return this.#closing;
  }

  // ---- checkout ----------------------------------------------------------------------------------

  #booksOf(type: unknown): TypeBooks {
    const b = typeof type === 'string' ? this.#books.get(type) : undefined;
    if (b === undefined) throw new UnknownAgentTypeError(this.name, type, [...this.#books.keys()]);
    return b;
  }

  async #checkout(type: string, options: AgentCheckoutOptions, self: AnyRef | undefined): Promise<Lease> {
    const books = this.#booksOf(type);
    if (options === null || typeof options !== 'object') {
      throw new InvalidArgumentError('checkout options', 'must be an object', options);
    }
    const timeoutMs = options.timeoutMs ?? books.cfg.checkoutTimeoutMs;
    if (!(timeoutMs > 0)) {
      throw new InvalidArgumentError(
        'checkout option "timeoutMs"',
        'must be a positive number of ms (or Infinity)',
        options.timeoutMs,
      );
    }
    const holder =
      options.holder === null ? undefined : options.holder === undefined ? self : holderOf(options.holder);
    if (this.#closed) throw new AgentPoolClosedError(this.name);
    const clock = this.runtime.clock;
    const deadline = clock.now() + timeoutMs;
    let slot: Slot;
    try {
      slot = await (books.pool as Pool<Slot>).checkout({ timeoutMs, holder: holder ?? null });
    } catch (error) {
      throw this.#translate(books, error, timeoutMs);
    }
    // The foundation pool bound the slot to `holder`: if the holder has exited since, it took the
    // slot back already (and may have lent it on), so this checkout must not use it.
    if (this.#closed || slot.retired) throw new AgentPoolClosedError(this.name);
    if (holder !== undefined && !this.runtime.isAlive(holder)) {
      throw new AgentHolderExitedError(this.name, type, describe(holder));
    }
    const lease: Lease = {
      slot,
      holder,
      ref: null,
      handle: null,
      unbind: null,
      ended: false,
      endedBy: null,
      wake: null,
    };
    slot.lease = lease;
    if (holder !== undefined) {
      lease.unbind = this.runtime.onExit(holder, () => this.#holderExited(lease));
    }
    try {
      await this.#ready(lease, deadline, timeoutMs);
    } catch (error) {
      if (!lease.ended) {
        this.#endLease(lease, 'abandoned');
        // Back as it is, even when its agent could not start: the type keeps its slots (and so its
        // `warm`), and the slot's start is retried in the background (see #scheduleRetry).
        this.#returnSlot(slot, false);
      }
      throw error;
    }
    return lease;
  }

  /**
   * Wait until the lease's slot has a live (and, if checked, healthy) agent and return it. Starts a
   * replacement itself when the slot has no agent and none is starting (a previous start failed),
   * once; a second failure rejects with AgentPoolStartError.
   */
  async #ready(lease: Lease, deadline: number, timeoutMs: number): Promise<AnyRef> {
    const slot = lease.slot;
    const books = slot.books;
    let checked = false;
    let restarted = false;
    for (;;) {
      if (slot.starting !== null && !lease.ended) {
        restarted = true;
        await this.#within(slot.starting, lease, deadline, timeoutMs, 'its agent was still starting');
      }
      // The lease may have ended during any wait (holder exit, close), and the slot moved on.
      if (lease.ended || slot.lease !== lease) {
        if (slot.retired || this.#closed) throw new AgentPoolClosedError(this.name);
        throw new AgentHolderExitedError(this.name, books.type, describe(lease.holder));
      }
      const ref = slot.ref;
      if (ref !== null && this.runtime.isAlive(ref)) {
        const healthy = books.cfg.healthy;
        if (checked || restarted || !slot.used || healthy === undefined) {
          // Hand over in the same synchronous step as the liveness check: from here on an exit of
          // the agent ends this lease like any other.
          lease.ref = ref;
          lease.handle = new AgentRef(ref.node, ref.thread, ref.id, localProcess(ref)) as AnyRef;
          this.#leases.set(lease.handle, lease);
          slot.used = true;
          slot.unlentExits = 0;
          this.#out.set(pidKey(ref), lease);
          return ref;
        }
        checked = true;
        const ok = await this.#within(
          Promise.resolve()
            .then(() => healthy(ref, this.runtime))
            .then(
              (v) => v === true,
              () => false,
            ),
          lease,
          deadline,
          timeoutMs,
          'its health check did not answer in time',
        );
        // Only a verdict for this very lease on this very agent counts: a stale check (the lease
        // ended meanwhile and the slot went to someone else) must not stop the next holder's agent.
        if (lease.ended || slot.lease !== lease) continue;
        if (ok !== true && slot.ref === ref && !slot.retired) this.#replace(slot);
        continue;
      }
      if (slot.starting !== null) continue;
      if (restarted) throw new AgentPoolStartError(this.name, books.type, slot.startError);
      restarted = true;
      this.#respawn(slot, false);
    }
  }

  /**
   * `p`, or AgentPoolExhaustedError once the checkout's deadline passes (runtime clock; counted in
   * `timeouts`), or undefined as soon as the lease ends (so a start or health check that never
   * settles cannot hold an abandoned or closed checkout).
   */
  #within<V>(
    p: Promise<V>,
    lease: Lease,
    deadline: number,
    timeoutMs: number,
    detail: string,
  ): Promise<V | undefined> {
    const books = lease.slot.books;
    const clock = this.runtime.clock;
    return new Promise<V | undefined>((resolve, reject) => {
      let timer: TimerHandle | null = null;
      const done = () => {
        if (timer !== null) clock.clearTimeout(timer);
        timer = null;
        if (lease.wake === wake) lease.wake = null;
      };
      const wake = () => {
        done();
        resolve(undefined);
      };
      lease.wake = wake;
      if (Number.isFinite(deadline)) {
        timer = clock.setTimeout(
          () => {
            timer = null;
            done();
            books.timeouts++;
            reject(this.#exhausted(books, timeoutMs, detail));
          },
          Math.max(0, deadline - clock.now()),
        );
      }
      p.then(
        (v) => {
          done();
          resolve(v);
        },
        (e: unknown) => {
          done();
          reject(e);
        },
      );
    });
  }

  #exhausted(books: TypeBooks, timeoutMs: number, detail: string, cause?: unknown): AgentPoolExhaustedError {
    const st = this.#stats(books);
    return new AgentPoolExhaustedError(
      this.name,
      books.type,
      timeoutMs,
      books.cfg.max,
      `${detail}; ${st.busy} busy, ${st.idle} idle, ${st.starting} starting, ${st.waiting} waiting`,
      cause,
    );
  }

  #translate(books: TypeBooks, error: unknown, timeoutMs: number): unknown {
    if (error instanceof PoolCheckoutTimeoutError) {
      return this.#exhausted(books, timeoutMs, 'all in use', error);
    }
    if (error instanceof PoolClosedError) return new AgentPoolClosedError(this.name);
    if (error instanceof PoolResourceCreateError)
      return new AgentPoolStartError(this.name, books.type, error.cause);
    if (error instanceof PoolHolderExitedError) {
      return new AgentHolderExitedError(this.name, books.type, error.holder, error);
    }
    return error;
  }

  // ---- leases ------------------------------------------------------------------------------------

  #endLease(lease: Lease, why: LeaseEnd): void {
    if (lease.ended) return;
    lease.ended = true;
    lease.endedBy = why;
    lease.wake?.();
    lease.wake = null;
    lease.unbind?.();
    lease.unbind = null;
    if (lease.ref !== null) {
      const key = pidKey(lease.ref);
      if (this.#out.get(key) === lease) this.#out.delete(key);
    }
    if (lease.slot.lease === lease) lease.slot.lease = null;
  }

  /** End `lease` and give its slot back to the foundation pool, replacing the agent first if asked. */
  #giveBack(lease: Lease, replace: boolean): void {
    this.#endLease(lease, 'checkin');
    if (replace) this.#replace(lease.slot);
    this.#returnSlot(lease.slot, false);
  }

  #returnSlot(slot: Slot, destroy: boolean): void {
    const pool = slot.books.pool;
    if (pool === null || slot.retired) return;
    try {
      pool.checkin(slot, { destroy });
    } catch (error) {
      // Already on its way back: the foundation pool took it back when the holder exited.
      if (!(error instanceof PoolNotCheckedOutError)) throw error;
    }
  }

  /**
   * The holder of `lease` exited. The foundation pool takes the slot back by itself (its own exit
   * hook on the holder); here the lease ends and, under `replace`, the agent is replaced, so that
   * whoever gets the slot next waits for a fresh agent instead of the dead holder's.
   */
  #holderExited(lease: Lease): void {
    if (lease.ended) return;
    const used = lease.ref !== null;
    this.#endLease(lease, 'holder');
    const slot = lease.slot;
    if (used && !this.#closed && slot.books.cfg.onHolderExit === 'replace') this.#replace(slot);
  }

  // ---- agents in slots ---------------------------------------------------------------------------

  /** The foundation pool's `create`: a new slot with a running agent, or a rejection. */
  async #createSlot(books: TypeBooks): Promise<Slot> {
    const slot: Slot = {
      books,
      ref: null,
      starting: null,
      startError: undefined,
      retired: false,
      unwatch: null,
      lease: null,
      used: false,
      unlentExits: 0,
      failedStarts: 0,
      retryTimer: null,
      retiring: null,
    };
    if (this.#closed) throw new AgentPoolClosedError(this.name);
    books.slots.add(slot);
    try {
      // A retired slot counts against `max` until its agent is stopped: the foundation pool has
      // already stopped counting it, so without this wait its successor could come up beside it.
      while (books.retiring > 0 && books.slots.size + books.retiring > books.cfg.max) {
        await new Promise<void>((resolve) => books.capacityWaiters.push(resolve));
        if (this.#closed) throw new AgentPoolClosedError(this.name);
      }
      await this.#spawnInto(slot, false);
    } catch (error) {
      books.slots.delete(slot);
      throw error;
    }
    return slot;
  }

  /**
   * The foundation pool's `destroy` (and close's sweep): stop the slot's agent for good. A start
   * under way in the slot is not waited out beside it: it completes, and its agent is stopped
   * before the slot stops counting against `max` (see #createSlot).
   */
  #retireSlot(slot: Slot): Promise<void> {
    if (slot.retiring !== null) return slot.retiring;
    const books = slot.books;
    slot.retired = true;
    books.slots.delete(slot);
    books.retiring++;
    if (slot.retryTimer !== null) this.runtime.clock.clearTimeout(slot.retryTimer);
    slot.retryTimer = null;
    if (slot.lease !== null) this.#endLease(slot.lease, 'closed');
    slot.retiring = (async () => {
      try {
        if (slot.starting !== null) await slot.starting;
        const ref = slot.ref;
        slot.ref = null;
        slot.unwatch?.();
        slot.unwatch = null;
        if (ref !== null) await this.#stopAgent(books, ref);
      } finally {
        books.retiring--;
        wakeCapacity(books);
      }
    })();
    return slot.retiring;
  }

  async #spawnInto(slot: Slot, replacement: boolean): Promise<void> {
    const books = slot.books;
    const cfg = books.cfg;
    let ref: AnyRef;
    try {
      ref = await DynamicSupervisor.startChild(this.runtime, this.supervisor, {
        id: books.type,
        start: { behaviour: cfg.behaviour, args: cfg.args },
        restart: 'temporary',
      });
    } catch (error) {
      slot.startError = error;
      const tel = this.runtime.telemetry;
      if (tel.enabled) {
        tel.execute(EV_START_FAILED, { count: 1 }, { pool: this.name, type: books.type, error });
      }
      throw new AgentPoolStartError(this.name, books.type, error);
    }
    books.spawned++;
    if (replacement) books.replaced++;
    slot.startError = undefined;
    slot.failedStarts = 0;
    if (slot.retryTimer !== null) this.runtime.clock.clearTimeout(slot.retryTimer);
    slot.retryTimer = null;
    slot.used = false;
    slot.ref = ref;
    slot.unwatch = this.runtime.onExit(ref, (reason) => this.#agentExited(slot, ref, reason));
    const tel = this.runtime.telemetry;
    if (tel.enabled) {
      tel.execute(
        EV_SPAWN,
        { count: 1 },
        { pool: this.name, type: books.type, agent: ref, replacement: replacement },
      );
    }
  }

  /**
   * Start an agent in a slot that has none, beside the caller (never inside an exit hook or a
   * callback). `slot.starting` is set at once, so checkouts of the slot wait for it.
   */
  #respawn(slot: Slot, replacement: boolean, before?: () => Promise<void>): void {
    const run = Promise.resolve()
      .then(before)
      .then(() => {
        if (slot.retired || this.#closed) return;
        return this.#spawnInto(slot, replacement);
      })
      .catch(() => {
        // Recorded in slot.startError; the next checkout of the slot tries once more or reports it,
        // and meanwhile the start is retried in the background.
        this.#scheduleRetry(slot);
      })
      .finally(() => {
        if (slot.starting === run) slot.starting = null;
      });
    slot.starting = run;
  }

  /**
   * After a failed start, try again in the background (runtime clock, backing off from
   * RETRY_BASE_MS to RETRY_MAX_MS), so the type gets back to its `warm` agents once starts work
   * again without waiting for a checkout to pay for a cold start.
   */
  #scheduleRetry(slot: Slot): void {
    if (slot.retired || this.#closed || slot.retryTimer !== null) return;
    const delay = Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** Math.min(slot.failedStarts, 16));
    slot.failedStarts++;
    slot.retryTimer = this.runtime.clock.setTimeout(() => {
      slot.retryTimer = null;
      if (slot.retired || this.#closed || slot.ref !== null || slot.starting !== null) return;
      this.#respawn(slot, true);
    }, delay);
  }

  /** Stop the slot's agent (if any) and start a fresh one in its place. */
  #replace(slot: Slot): void {
    const old = slot.ref;
    // No agent, but one is starting: it has served nobody yet, so it is fresh enough.
    if (old === null && slot.starting !== null) return;
    slot.ref = null;
    slot.unwatch?.();
    slot.unwatch = null;
    this.#respawn(slot, true, old === null ? undefined : () => this.#stopAgent(slot.books, old));
  }

  /** Stop an agent through its supervisor (in order with every start), by its shutdown policy. */
  async #stopAgent(books: TypeBooks, ref: AnyRef): Promise<void> {
    if (!this.runtime.isAlive(ref)) return;
    books.stopped++;
    try {
      await DynamicSupervisor.terminateChild(this.runtime, this.supervisor, ref);
    } catch {
      // Not a child any more (it exited meanwhile), or the supervisor is gone: make sure.
      if (this.runtime.isAlive(ref)) this.runtime.kill(ref);
    }
  }

  /**
   * A pooled agent exited without the pool asking (a crash, a stop, a kill). Runs in the agent's
   * exit, before anyone else learns of it: a lease on the agent ends (the holder's later checkin
   * returns false), the slot goes back to the pool, and a replacement starts in it.
   */
  #agentExited(slot: Slot, ref: AnyRef, reason: unknown): void {
    if (slot.ref !== ref) return;
    slot.ref = null;
    slot.unwatch = null;
    if (slot.retired || this.#closed) return;
    const lease = slot.lease;
    if (lease !== null && lease.ref !== null) {
      this.#endLease(lease, 'agent');
      this.#returnSlot(slot, false);
    }
    if (!slot.used && ++slot.unlentExits >= CRASH_LOOP_LIMIT) {
      // It keeps dying before anyone used it: stop spinning. The next checkout of the slot tries once.
      slot.startError = new Error(
        `${slot.unlentExits} agents in a row exited before being lent; the last with reason ${describe(reason)}`,
      );
      return;
    }
    // A checkout still getting the slot ready (lease.ref null) waits for this replacement.
    this.#respawn(slot, true);
  }

  // ---- stats -------------------------------------------------------------------------------------

  #stats(b: TypeBooks): AgentPoolStats {
    const ps = (b.pool as Pool<Slot> | null)?.stats();
    let live = 0;
    let starting = ps?.creating ?? 0;
    for (const slot of b.slots) {
      if (slot.ref !== null && this.runtime.isAlive(slot.ref)) live++;
      if (slot.starting !== null) starting++;
    }
    return {
      type: b.type,
      warm: b.cfg.warm,
      max: b.cfg.max,
      idle: ps?.idle ?? 0,
      busy: ps?.out ?? 0,
      waiting: ps?.waiting ?? 0,
      live,
      starting,
      spawned: b.spawned,
      replaced: b.replaced,
      stopped: b.stopped,
      timeouts: (ps?.timeouts ?? 0) + b.timeouts,
      closed: this.#closed,
    };
  }
}
