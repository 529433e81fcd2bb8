/**
 * Universal variables: typed, versioned values shared by many agents (a learning rate, a
 * temperature, a strategy name), each agent holding a local copy kept current by broadcasts.
 *
 * CQRS like the registry and the config server: reads (`get`, `info`, `history`, `stats`) are
 * synchronous lookups on the service object, so they never queue behind a mailbox; writes
 * (`register`, `update`, `updateBatch`, `delete`) are calls to one owner agent, which validates
 * and applies them one at a time. An accepted write is fanned out to the subscribers with ONE
 * cast per subscriber carrying every change of the write (never a serial round trip per agent);
 * each subscriber acknowledges by a cast back to the owner, which counts the acks and answers the
 * writer's pending call once every live target has acknowledged, or at the deadline with the
 * agents that did not (`missing`). A subscriber that exits is dropped at once (runtime.onExit)
 * and no longer awaited.
 *
 * Deadlines use one runtime-clock timer for the whole service, armed for the earliest pending
 * deadline and left armed when broadcasts complete, so a write costs no timer of its own (the hot
 * path of variable_broadcast_100).
 */
import {
  type AgentContext,
  type AgentRef,
  type AnyRef,
  behaviour,
  describe,
  type From,
  InvalidArgumentError,
  MabeamError,
  NoProcessError,
  noreply,
  type Pid,
  pidKey,
  type Runtime,
  reply,
  type TimerHandle,
} from '../kernel/index.js';

// ---- errors ------------------------------------------------------------------------------------

/** Error codes of the variables service (unique across the project, never reused). */
export const VariableErrorCodes = {
  /** A name that is not registered (or was deleted). */
  UNKNOWN: 'E_VARIABLE_UNKNOWN',
  /** A consensus policy's `decide` refused the change (or failed). */
  REJECTED: 'E_VARIABLE_REJECTED',
} as const;

/** A variable name that is not registered. */
export class UnknownVariableError extends MabeamError {
  readonly variable: string;
  constructor(variable: string) {
    super(VariableErrorCodes.UNKNOWN, `variable ${JSON.stringify(variable)} is not registered`);
    this.variable = variable;
  }
}

/** A change to a consensus-governed variable that `decide` refused (or that `decide` failed on). */
export class VariableRejectedError extends MabeamError {
  readonly variable: string;
  /** Why, as in the message after "rejected: ". */
  readonly detail: string;
  /** What `decide` gave as evidence for the refusal (the consensus result, for one). */
  readonly evidence: unknown;
  constructor(variable: string, detail: string, evidence?: unknown) {
    super(VariableErrorCodes.REJECTED, `change of variable ${JSON.stringify(variable)} rejected: ${detail}`);
    this.variable = variable;
    this.detail = detail;
    this.evidence = evidence;
  }
}

// ---- specs -------------------------------------------------------------------------------------

/** A real number in [min, max]; `log` marks a log-uniform scale (then min must be > 0). */
export interface FloatKind {
  readonly type: 'float';
  readonly min: number;
  readonly max: number;
  readonly log?: boolean;
}
/** An integer in [min, max]. */
export interface IntKind {
  readonly type: 'int';
  readonly min: number;
  readonly max: number;
}
/** One of a fixed list of values (compared with Object.is). */
export interface ChoiceKind {
  readonly type: 'choice';
  readonly values: readonly unknown[];
}
export interface BoolKind {
  readonly type: 'bool';
}
export type VariableKind = FloatKind | IntKind | ChoiceKind | BoolKind;

/** A proposed change, as a conflict resolver or a consensus `decide` sees it. */
export interface ProposedChange {
  readonly name: string;
  readonly current: unknown;
  readonly proposed: unknown;
  readonly modifier: string;
}

/**
 * What a consensus `decide` answers: a boolean, or a verdict that also says why (`reason`, put in
 * the rejection's message) and carries `evidence` (kept on VariableRejectedError, such as the
 * consensus session's result with its tally).
 */
export type ConsensusVerdict =
  | boolean
  | { readonly accepted: boolean; readonly reason?: string; readonly evidence?: unknown };

/** The consensus conflict policy (`consensusPolicy` in the coordination layer builds one). */
export interface ConsensusPolicy {
  readonly type: 'consensus';
  readonly decide: (change: ProposedChange) => Promise<ConsensusVerdict>;
}

/**
 * How a write meets the current value. `last-write-wins` takes the proposed value; a function
 * resolves `(current, proposed, modifier)` to the value to store (validated like any other);
 * `consensus` asks `decide` (plugged in by the coordination layer) and applies only on acceptance.
 */
export type ConflictPolicy =
  | 'last-write-wins'
  | ((current: unknown, proposed: unknown, modifier: string) => unknown)
  | ConsensusPolicy;

export interface VariableSpec {
  readonly name: string;
  readonly kind: VariableKind;
  readonly default: unknown;
  /** Extra validity rule; false rejects the value with E_INVALID_ARGUMENT. */
  readonly constraint?: (value: unknown) => boolean;
  /** Default `last-write-wins`. */
  readonly policy?: ConflictPolicy;
  /** Accepted changes kept for `history` (default 100, at least 1). */
  readonly historyLimit?: number;
}

/** One accepted change, as kept in the history. */
export interface HistoryEntry {
  readonly value: unknown;
  readonly version: number;
  readonly modifier: string;
  /** Runtime clock (ms) when it was applied. */
  readonly at: number;
}

/** A variable's current value with its version and last modifier. */
export interface VariableInfo {
  readonly name: string;
  readonly value: unknown;
  readonly version: number;
  readonly modifier: string;
}

// ---- messages between the owner and the replicas -----------------------------------------------

/** Tag of broadcast messages (checked by `isVariableBroadcast`). */
export const VARIABLE_BROADCAST = 'mabeam.variables.broadcast';
/** Tag of acknowledgements. */
export const VARIABLE_ACK = 'mabeam.variables.ack';

/** One change as carried to the replicas. `deleted` means the variable is gone. */
export interface VariableChange {
  readonly name: string;
  readonly value: unknown;
  readonly version: number;
  readonly modifier: string;
  readonly deleted?: boolean;
}

/** The one message each subscriber receives (by cast) per write. */
export interface VariableBroadcast {
  readonly type: typeof VARIABLE_BROADCAST;
  /** Broadcast number; echoed in the ack. */
  readonly seq: number;
  readonly changes: readonly VariableChange[];
  /** Where the ack goes. */
  readonly collector: AgentRef<never, unknown, VariableAck, never>;
}

/** The acknowledgement a replica casts back to the collector. */
export interface VariableAck {
  readonly type: typeof VARIABLE_ACK;
  readonly seq: number;
  readonly from: AnyRef;
  /**
   * True while the ack is in flight. A replica reuses one ack object for all its acks (a
   * broadcast to 1,000 agents then allocates no acks); the collector clears the flag once it has
   * read the ack, and the replica allocates a fresh one whenever its last is still unread.
   */
  inFlight?: boolean;
}

interface MutableAck {
  readonly type: typeof VARIABLE_ACK;
  seq: number;
  readonly from: AnyRef;
  inFlight: boolean;
}

/** True for a variables broadcast (so a behaviour's handleCast can route it). */
export function isVariableBroadcast(msg: unknown): msg is VariableBroadcast {
  return msg !== null && typeof msg === 'object' && (msg as { type?: unknown }).type === VARIABLE_BROADCAST;
}

/**
 * An agent's local copy of the variables it subscribed to. Reads are plain Map lookups in the
 * agent's own state. `apply` takes a broadcast, keeps every change newer than the copy it has
 * (so a late initial sync cannot overwrite a newer value) and acknowledges it.
 */
export class VariableReplica {
  readonly values = new Map<string, unknown>();
  readonly versions = new Map<string, number>();
  /** Broadcasts applied. */
  received = 0;
  #ack: MutableAck | null = null;

  get(name: string): unknown {
    return this.values.get(name);
  }

  /** Apply a broadcast and cast the ack to its collector from `ctx`'s agent. */
  apply(msg: VariableBroadcast, ctx: Pick<AgentContext, 'self' | 'cast'>): void {
    const changes = msg.changes;
    for (let i = 0; i < changes.length; i++) {
      const c = changes[i] as VariableChange;
      if (c.deleted === true) {
        this.values.delete(c.name);
        this.versions.delete(c.name);
        continue;
      }
      const have = this.versions.get(c.name);
      if (have !== undefined && have >= c.version) continue;
      this.values.set(c.name, c.value);
      this.versions.set(c.name, c.version);
    }
    this.received++;
    let ack = this.#ack;
    if (ack === null || ack.inFlight || ack.from !== ctx.self) {
      ack = { type: VARIABLE_ACK, seq: msg.seq, from: ctx.self, inFlight: true };
      this.#ack = ack;
    } else {
      ack.seq = msg.seq;
      ack.inFlight = true;
    }
    ctx.cast(msg.collector, ack);
  }
}

/**
 * For a behaviour's handleCast: if `msg` is a variables broadcast, apply it to `replica`,
 * acknowledge it and return true; otherwise return false (the message is the agent's own).
 */
export function handleVariables(
  msg: unknown,
  replica: VariableReplica,
  ctx: Pick<AgentContext, 'self' | 'cast'>,
): boolean {
  if (!isVariableBroadcast(msg)) return false;
  replica.apply(msg, ctx);
  return true;
}

/**
 * A ready-made subscriber agent that only keeps a replica. A call `{type: 'get', name}` answers
 * the local copy's value (for tests and for agents that use variables through another agent).
 */
export const VariableSubscriber = behaviour<
  void,
  VariableReplica,
  { readonly type: 'get'; readonly name: string },
  unknown,
  VariableBroadcast
>({
  init: () => new VariableReplica(),
  handleCall: (msg, _from, replica) => reply(replica.get(msg.name), replica),
  // Only broadcasts are applied; any other cast (a consensus proposal: this agent does not vote)
  // is ignored rather than crashing the agent.
  handleCast: (msg, replica, ctx) => {
    handleVariables(msg, replica, ctx);
    return replica;
  },
});

// ---- the service -------------------------------------------------------------------------------

/** One change of a batch. */
export interface ChangeRequest {
  readonly name: string;
  readonly value: unknown;
  readonly modifier?: string;
}

export interface WriteOptions {
  /** Wait for the subscribers' acks (default true); false resolves once applied and sent. */
  readonly awaitAcks?: boolean;
  /** How long to wait for acks, on the runtime clock (default: the service's `ackTimeoutMs`). */
  readonly deadlineMs?: number;
}

/** What a write resolves with. */
export interface WriteResult {
  /** The new version of each change's variable, in the order of the changes. */
  readonly versions: readonly number[];
  /** Subscribers that acknowledged (0 when acks were not awaited). */
  readonly acked: number;
  /** Live subscribers that had not acknowledged by the deadline. */
  readonly missing: readonly AnyRef[];
  /** Subscribers that exited (or unsubscribed) before acknowledging: not awaited. */
  readonly exited: number;
}

export interface VariablesStats {
  readonly variables: number;
  /** (agent, variable) pairs. */
  readonly subscriptions: number;
  /** Subscribed agents. */
  readonly subscribers: number;
  /** Accepted changes. */
  readonly changes: number;
  /** Writes refused (invalid value, unknown name, consensus said no). */
  readonly rejected: number;
  readonly broadcasts: number;
  readonly acks: number;
  /** Broadcasts whose acks are still awaited. */
  readonly pending: number;
  /** Broadcasts that reached their deadline with subscribers missing. */
  readonly timedOut: number;
}

export interface VariablesOptions {
  /** Default deadline for acks, ms on the runtime clock (default 5000). */
  readonly ackTimeoutMs?: number;
  /** Register the owner under this name. */
  readonly name?: string;
}

const EMPTY: readonly AnyRef[] = Object.freeze([]);
/** The owner's deadline message, posted by its timer. */
const EXPIRE = Object.freeze({ t: 'expire' as const });

/**
 * Every broadcast change is made here, so they share one hidden class, and that class is first
 * made with a non-number `value`: V8 then keeps the field tagged and a float value is shared by
 * reference with each replica that reads it, instead of being copied into a new heap number per
 * replica (1.6 KB per 100-agent broadcast, measured with the sampling heap profiler).
 */
function makeChange(name: string, value: unknown, version: number, modifier: string): VariableChange {
  return { name, value, version, modifier };
}
makeChange('', null, 0, '');

interface Variable {
  readonly spec: VariableSpec;
  readonly limit: number;
  value: unknown;
  version: number;
  modifier: string;
  /** Ring buffer of the last `limit` accepted changes. */
  readonly ring: HistoryEntry[];
  ringStart: number;
  /** Subscribers, copy-on-write so a pending broadcast can hold the array it was sent to. */
  subs: readonly Sub[];
}

interface Sub {
  readonly ref: AnyRef;
  readonly key: string;
  /** Highest broadcast seq this agent acknowledged; acks arrive in send order (FIFO). */
  lastAck: number;
  alive: boolean;
  readonly vars: Set<Variable>;
  removeHook: () => void;
  /** Scratch: how many of a multi-variable write's changes are for this agent, while it fans out. */
  hits: number;
}

interface Pending {
  readonly seq: number;
  readonly from: From<WriteReply>;
  readonly targets: readonly Sub[];
  readonly versions: readonly number[];
  remaining: number;
  exited: number;
  readonly deadline: number;
  /**
   * Targets whose broadcast was refused (full mailbox): they never ack this seq, and a later ack
   * of theirs (which moves `lastAck` past it) must not count as one. Null when none.
   */
  readonly refused: readonly Sub[] | null;
}

type OwnerCall =
  | {
      readonly t: 'write';
      readonly changes: readonly ChangeRequest[];
      readonly awaitAcks: boolean;
      readonly deadlineMs: number;
    }
  | { readonly t: 'register'; readonly spec: VariableSpec }
  | { readonly t: 'delete'; readonly name: string };
type WriteReply = WriteResult | { readonly error: unknown };
type OwnerRef = AgentRef<OwnerCall, WriteReply, VariableAck, typeof EXPIRE>;

function failure(error: unknown): { readonly error: unknown } {
  return { error };
}

/**
 * Cast a broadcast from the owner. A subscriber's full mailbox under the `reject` policy throws,
 * which must not crash the owner (every write would be lost with it): such a subscriber simply
 * does not ack and is reported missing at the deadline.
 */
function castTo(ctx: Pick<AgentContext, 'cast'>, ref: AnyRef, msg: VariableBroadcast): boolean {
  try {
    ctx.cast(ref as AgentRef<never, unknown, VariableBroadcast, never>, msg);
    return true;
  } catch {
    // Reported as missing at the deadline.
    return false;
  }
}

/** Validate a spec; throws InvalidArgumentError naming the field. Returns the history limit. */
function checkSpec(spec: VariableSpec): number {
  if (spec === null || typeof spec !== 'object')
    throw new InvalidArgumentError('variable spec', 'must be an object', spec);
  if (typeof spec.name !== 'string' || spec.name === '') {
    throw new InvalidArgumentError('variable name', 'must be a non-empty string', spec.name);
  }
  const where = `variable ${JSON.stringify(spec.name)}`;
  const k = spec.kind as VariableKind | undefined;
  if (k === null || typeof k !== 'object')
    throw new InvalidArgumentError(`${where} kind`, 'must be an object', k);
  switch (k.type) {
    case 'float':
    case 'int':
      if (!Number.isFinite(k.min) || !Number.isFinite(k.max) || k.min > k.max) {
        throw new InvalidArgumentError(`${where} bounds`, 'need finite min <= max', [k.min, k.max]);
      }
      if (k.type === 'int' && (!Number.isInteger(k.min) || !Number.isInteger(k.max))) {
        throw new InvalidArgumentError(`${where} bounds`, 'must be integers', [k.min, k.max]);
      }
      if (k.type === 'float' && k.log === true && !(k.min > 0)) {
        throw new InvalidArgumentError(`${where} min`, 'must be > 0 on a log scale', k.min);
      }
      break;
    case 'choice':
      if (!Array.isArray(k.values) || k.values.length === 0) {
        throw new InvalidArgumentError(`${where} values`, 'must be a non-empty array', k.values);
      }
      break;
    case 'bool':
      break;
    default:
      throw new InvalidArgumentError(`${where} kind`, "must be 'float', 'int', 'choice' or 'bool'", k);
  }
  if (spec.constraint !== undefined && typeof spec.constraint !== 'function') {
    throw new InvalidArgumentError(`${where} constraint`, 'must be a function', spec.constraint);
  }
  const p = spec.policy;
  if (
    p !== undefined &&
    p !== 'last-write-wins' &&
    typeof p !== 'function' &&
    !(p !== null && typeof p === 'object' && p.type === 'consensus' && typeof p.decide === 'function')
  ) {
    throw new InvalidArgumentError(
      `${where} policy`,
      "must be 'last-write-wins', a resolver function or {type: 'consensus', decide}",
      p,
    );
  }
  const limit = spec.historyLimit ?? 100;
  if (!Number.isInteger(limit) || limit < 1) {
    throw new InvalidArgumentError(`${where} historyLimit`, 'must be an integer >= 1', limit);
  }
  checkValue(spec, spec.default, 'default');
  return limit;
}

/** Throws InvalidArgumentError naming the variable and the bound the value breaks. */
function checkValue(spec: VariableSpec, value: unknown, what = 'value'): void {
  const where = `variable ${JSON.stringify(spec.name)} ${what}`;
  const k = spec.kind;
  switch (k.type) {
    case 'float':
      if (typeof value !== 'number' || Number.isNaN(value))
        throw new InvalidArgumentError(where, 'must be a number', value);
      if (value < k.min || value > k.max)
        throw new InvalidArgumentError(where, `must be within [${k.min}, ${k.max}]`, value);
      break;
    case 'int':
      if (!Number.isInteger(value)) throw new InvalidArgumentError(where, 'must be an integer', value);
      if ((value as number) < k.min || (value as number) > k.max) {
        throw new InvalidArgumentError(where, `must be within [${k.min}, ${k.max}]`, value);
      }
      break;
    case 'choice':
      if (!k.values.some((v) => Object.is(v, value))) {
        throw new InvalidArgumentError(where, `must be one of ${describe(k.values)}`, value);
      }
      break;
    case 'bool':
      if (typeof value !== 'boolean') throw new InvalidArgumentError(where, 'must be a boolean', value);
      break;
  }
  if (spec.constraint !== undefined && spec.constraint(value) !== true) {
    throw new InvalidArgumentError(where, 'breaks its constraint', value);
  }
}

/**
 * The variables service. Create it with `Variables.start(runtime)`; the owner agent it spawns
 * serializes every write. Reads are synchronous on this object.
 */
export class Variables {
  readonly runtime: Runtime;
  /** The owner agent (also the collector the acks go to). */
  readonly owner: OwnerRef;
  readonly #vars = new Map<string, Variable>();
  readonly #subs = new Map<string, Sub>();
  /** Same records keyed by the ref object, so an ack (which carries `ctx.self`) skips pidKey. */
  readonly #subsByRef = new Map<AnyRef, Sub>();
  readonly #pending = new Map<number, Pending>();
  readonly #ackTimeoutMs: number;
  #seq = 0;
  /** Scratch of #fanOut: subscribers whose cast was refused. */
  #refused: Sub[] | null = null;
  #timer: TimerHandle | null = null;
  #timerAt = Number.POSITIVE_INFINITY;
  #stats = { changes: 0, rejected: 0, broadcasts: 0, acks: 0, timedOut: 0, subscriptions: 0 };
  #ctx: AgentContext<OwnerCall, WriteReply, VariableAck, never> | null = null;

  private constructor(runtime: Runtime, ackTimeoutMs: number, spawn: (svc: Variables) => OwnerRef) {
    this.runtime = runtime;
    this.#ackTimeoutMs = ackTimeoutMs;
    this.owner = spawn(this);
  }

  /** Start the service (its owner agent) on `runtime`. */
  static start(runtime: Runtime, options: VariablesOptions = {}): Variables {
    const ack = options.ackTimeoutMs ?? 5000;
    if (!(ack > 0) || !Number.isFinite(ack)) {
      throw new InvalidArgumentError('ackTimeoutMs', 'must be a positive finite number of ms', ack);
    }
    return new Variables(runtime, ack, (svc) => {
      const owner = behaviour<void, null, OwnerCall, WriteReply, VariableAck, typeof EXPIRE>({
        init: (_args, ctx) => {
          svc.#ctx = ctx;
          return null;
        },
        handleCall: (msg, from, state) => {
          switch (msg.t) {
            case 'write': {
              const r = svc.#write(msg, from);
              if (r === undefined) return noreply(state);
              if (r instanceof Promise)
                return r.then((v) => (v === undefined ? noreply(state) : reply(v, state)));
              return reply(r, state);
            }
            case 'register':
              return reply(svc.#register(msg.spec), state);
            case 'delete':
              return reply(svc.#delete(msg.name), state);
          }
        },
        handleCast: (ack, state) => {
          svc.#ack(ack);
          return state;
        },
        handleInfo: (msg, state) => {
          if (msg === EXPIRE) svc.#expire();
          return state;
        },
        terminate: () => {
          svc.#stopTimer();
        },
      });
      return runtime.spawnSync(owner, undefined, options.name === undefined ? {} : { name: options.name });
    });
  }

  // ---- reads (synchronous) ---------------------------------------------------------------------

  /** The current value, or undefined for an unknown name. */
  get(name: string): unknown {
    return this.#vars.get(name)?.value;
  }

  has(name: string): boolean {
    return this.#vars.has(name);
  }

  /** Value, version and last modifier; undefined for an unknown name. */
  info(name: string): VariableInfo | undefined {
    const v = this.#vars.get(name);
    return v === undefined ? undefined : { name, value: v.value, version: v.version, modifier: v.modifier };
  }

  /** The spec a variable was registered with; undefined for an unknown name. */
  spec(name: string): VariableSpec | undefined {
    return this.#vars.get(name)?.spec;
  }

  /** Registered names. */
  names(): string[] {
    return [...this.#vars.keys()];
  }

  /** The last `limit` accepted changes (all kept by default), oldest first. */
  history(name: string, limit = Number.POSITIVE_INFINITY): HistoryEntry[] {
    const v = this.#vars.get(name);
    if (v === undefined) throw new UnknownVariableError(name);
    if (!(limit >= 0) || !(Number.isInteger(limit) || limit === Number.POSITIVE_INFINITY)) {
      throw new InvalidArgumentError('history limit', 'must be an integer >= 0', limit);
    }
    const n = v.ring.length;
    const take = Math.min(n, limit);
    const out: HistoryEntry[] = [];
    for (let i = n - take; i < n; i++) out.push(v.ring[(v.ringStart + i) % n] as HistoryEntry);
    return out;
  }

  /** The agents subscribed to `name`. */
  subscribers(name: string): AnyRef[] {
    const v = this.#vars.get(name);
    if (v === undefined) throw new UnknownVariableError(name);
    return v.subs.map((s) => s.ref);
  }

  stats(): VariablesStats {
    const s = this.#stats;
    return {
      variables: this.#vars.size,
      subscriptions: s.subscriptions,
      subscribers: this.#subs.size,
      changes: s.changes,
      rejected: s.rejected,
      broadcasts: s.broadcasts,
      acks: s.acks,
      pending: this.#pending.size,
      timedOut: s.timedOut,
    };
  }

  // ---- writes (serialized by the owner) --------------------------------------------------------

  /** Register a variable at its default (version 0). E_INVALID_ARGUMENT for a bad or taken spec. */
  async register(spec: VariableSpec): Promise<VariableInfo> {
    return this.#unwrap(await this.runtime.call(this.owner, { t: 'register', spec })) as VariableInfo;
  }

  /** Remove a variable; its subscribers are told (not awaited). False if it was not registered. */
  async delete(name: string): Promise<boolean> {
    return this.#unwrap(await this.runtime.call(this.owner, { t: 'delete', name })) as boolean;
  }

  /**
   * Change one variable. Rejects with E_INVALID_ARGUMENT (nothing changes) for an invalid value,
   * E_VARIABLE_UNKNOWN for an unknown name, E_VARIABLE_REJECTED when consensus refuses. Resolves
   * once every live subscriber acknowledged, or at the deadline with the ones missing.
   */
  update(name: string, value: unknown, modifier = 'anonymous', options?: WriteOptions): Promise<WriteResult> {
    return this.updateBatch([{ name, value, modifier }], options);
  }

  /**
   * Change several variables at once: all are validated before any is applied (one invalid
   * change rejects the whole batch), and each subscriber gets one message with the changes of
   * the variables it subscribed to.
   */
  async updateBatch(changes: readonly ChangeRequest[], options?: WriteOptions): Promise<WriteResult> {
    if (!Array.isArray(changes) || changes.length === 0) {
      throw new InvalidArgumentError('changes', 'must be a non-empty array', changes);
    }
    const awaitAcks = options?.awaitAcks ?? true;
    const deadlineMs = options?.deadlineMs ?? this.#ackTimeoutMs;
    if (!(deadlineMs > 0) || !Number.isFinite(deadlineMs)) {
      throw new InvalidArgumentError('deadlineMs', 'must be a positive finite number of ms', deadlineMs);
    }
    // No call timeout: the owner always answers (on the last ack, on the last awaited exit, or
    // at the deadline on its own timer), and a dead owner rejects the call with its exit reason.
    // A finite timeout would arm and disarm a clock timer per write (the kernel drops its call
    // timer whenever no call is pending), which the broadcast hot path cannot afford.
    const r = await this.runtime.call(
      this.owner,
      { t: 'write', changes, awaitAcks, deadlineMs },
      Number.POSITIVE_INFINITY,
    );
    return this.#unwrap(r) as WriteResult;
  }

  /**
   * Subscribe an agent to one or more variables. It is sent their current values at once (one
   * message, acknowledged but not awaited) and every later change. It is unsubscribed from
   * everything when it exits. E_NOPROC if the agent is gone, E_VARIABLE_UNKNOWN for an unknown name.
   */
  subscribe(names: string | readonly string[], agent: AnyRef | Pid): void {
    const list = typeof names === 'string' ? [names] : names;
    if (!Array.isArray(list) || list.length === 0) {
      throw new InvalidArgumentError(
        'subscribe names',
        'must be a name or a non-empty array of names',
        names,
      );
    }
    const vars = list.map((n) => {
      const v = this.#vars.get(n);
      if (v === undefined) throw new UnknownVariableError(n);
      return v;
    });
    if (!this.runtime.isAlive(agent))
      throw new NoProcessError(String(agent), 'cannot subscribe a dead agent');
    const key = pidKey(agent);
    let sub = this.#subs.get(key);
    if (sub === undefined) {
      // A plain pid addresses the same agent in every runtime call; only the identity fast path
      // in #ack misses for it (the pidKey lookup still finds it).
      const ref = agent as AnyRef;
      const created: Sub = {
        ref,
        key,
        // Broadcasts sent before this subscription were not sent to it: acks for them (from an
        // earlier subscription of the same agent) must not count.
        lastAck: this.#seq,
        alive: true,
        vars: new Set(),
        removeHook: () => {},
        hits: 0,
      };
      this.#subs.set(key, created);
      this.#subsByRef.set(ref, created);
      created.removeHook = this.runtime.onExit(ref, () => this.#exited(created));
      sub = created;
    }
    const sync: VariableChange[] = [];
    for (const v of vars) {
      if (sub.vars.has(v)) continue;
      sub.vars.add(v);
      v.subs = [...v.subs, sub];
      this.#stats.subscriptions++;
      sync.push({ name: v.spec.name, value: v.value, version: v.version, modifier: v.modifier });
    }
    if (sync.length > 0) {
      // An initial sync under a seq of its own, so its ack matches no pending broadcast.
      this.runtime.cast(sub.ref as AgentRef<never, unknown, VariableBroadcast, never>, {
        type: VARIABLE_BROADCAST,
        seq: ++this.#seq,
        changes: sync,
        collector: this.owner as unknown as VariableBroadcast['collector'],
      });
    }
  }

  /** Unsubscribe an agent from some variables (all when `names` is omitted). */
  unsubscribe(agent: AnyRef | Pid, names?: string | readonly string[]): void {
    const sub = this.#subs.get(pidKey(agent));
    if (sub === undefined) return;
    const list =
      names === undefined
        ? [...sub.vars]
        : (typeof names === 'string' ? [names] : names).map((n) => this.#vars.get(n));
    for (const v of list) {
      if (v === undefined || !sub.vars.has(v)) continue;
      this.#detach(sub, v);
    }
    if (sub.vars.size === 0) this.#forget(sub);
  }

  // ---- owner side ------------------------------------------------------------------------------

  #unwrap(r: unknown): unknown {
    if (r !== null && typeof r === 'object' && 'error' in r) throw (r as { error: unknown }).error;
    return r;
  }

  #register(spec: VariableSpec): VariableInfo | { error: unknown } {
    let limit: number;
    try {
      limit = checkSpec(spec);
    } catch (error) {
      return failure(error);
    }
    if (this.#vars.has(spec.name)) {
      return failure(new InvalidArgumentError('variable name', 'is already registered', spec.name));
    }
    const v: Variable = {
      spec,
      limit,
      value: spec.default,
      version: 0,
      modifier: 'default',
      ring: [],
      ringStart: 0,
      subs: [],
    };
    this.#vars.set(spec.name, v);
    return { name: spec.name, value: v.value, version: 0, modifier: v.modifier };
  }

  #delete(name: string): boolean {
    const v = this.#vars.get(name);
    if (v === undefined) return false;
    this.#vars.delete(name);
    const ctx = this.#ctx as AgentContext<OwnerCall, WriteReply, VariableAck, never>;
    if (v.subs.length > 0) {
      const msg: VariableBroadcast = {
        type: VARIABLE_BROADCAST,
        seq: ++this.#seq,
        changes: [{ name, value: undefined, version: v.version, modifier: 'delete', deleted: true }],
        collector: ctx.self as unknown as VariableBroadcast['collector'],
      };
      for (const s of v.subs) {
        castTo(ctx, s.ref, msg);
        this.#detach(s, v);
        if (s.vars.size === 0) this.#forget(s);
      }
    }
    return true;
  }

  /**
   * Validate a write against the current values (all before any is applied), run the policies,
   * then apply and fan out. Returns the reply, a promise of it (consensus), or undefined when
   * the reply waits for acks.
   */
  #write(
    msg: Extract<OwnerCall, { t: 'write' }>,
    from: From<WriteReply>,
  ): WriteReply | undefined | Promise<WriteReply | undefined> {
    const reqs = msg.changes;
    const n = reqs.length;
    const vars: Variable[] = new Array(n);
    const values: unknown[] = new Array(n);
    // Later changes of the same variable in one batch see the earlier ones as current.
    const staged = n > 1 ? new Map<Variable, unknown>() : null;
    let consensus: number[] | null = null;
    // What each change meets as current (a consensus `decide` is asked with it).
    const currents: unknown[] = new Array(n);
    try {
      for (let i = 0; i < n; i++) {
        const req = reqs[i] as ChangeRequest;
        const v = req === null || typeof req !== 'object' ? undefined : this.#vars.get(req.name);
        if (v === undefined) throw new UnknownVariableError(String(req?.name));
        const modifier = req.modifier ?? 'anonymous';
        if (typeof modifier !== 'string') {
          throw new InvalidArgumentError(
            `variable ${JSON.stringify(v.spec.name)} modifier`,
            'must be a string',
            modifier,
          );
        }
        const current = staged?.has(v) === true ? staged.get(v) : v.value;
        currents[i] = current;
        const p = v.spec.policy;
        let value = req.value;
        if (typeof p === 'function') value = p(current, value, modifier);
        else if (p !== undefined && p !== 'last-write-wins') {
          consensus ??= [];
          consensus.push(i);
        }
        checkValue(v.spec, value);
        vars[i] = v;
        values[i] = value;
        staged?.set(v, value);
      }
    } catch (error) {
      this.#stats.rejected++;
      return failure(error);
    }
    if (consensus === null) return this.#apply(msg, vars, values, from);
    return this.#decide(msg, vars, values, currents, consensus, from);
  }

  async #decide(
    msg: Extract<OwnerCall, { t: 'write' }>,
    vars: Variable[],
    values: unknown[],
    currents: unknown[],
    which: number[],
    from: From<WriteReply>,
  ): Promise<WriteReply | undefined> {
    for (const i of which) {
      const v = vars[i] as Variable;
      const policy = v.spec.policy as ConsensusPolicy;
      const req = msg.changes[i] as ChangeRequest;
      let verdict: ConsensusVerdict;
      try {
        verdict = await policy.decide({
          name: v.spec.name,
          current: currents[i],
          proposed: values[i],
          modifier: req.modifier ?? 'anonymous',
        });
      } catch (error) {
        this.#stats.rejected++;
        return failure(new VariableRejectedError(v.spec.name, `decide failed: ${describe(error)}`, error));
      }
      const accepted =
        typeof verdict === 'object' && verdict !== null ? verdict.accepted === true : verdict === true;
      if (!accepted) {
        this.#stats.rejected++;
        const reason = typeof verdict === 'object' && verdict !== null ? verdict.reason : undefined;
        const evidence = typeof verdict === 'object' && verdict !== null ? verdict.evidence : undefined;
        return failure(
          new VariableRejectedError(
            v.spec.name,
            `consensus refused${reason === undefined ? '' : `: ${reason}`}`,
            evidence,
          ),
        );
      }
    }
    // The owner took no other write while deciding, so the validation still holds; a variable
    // deleted meanwhile cannot happen for the same reason.
    return this.#apply(msg, vars, values, from);
  }

  #apply(
    msg: Extract<OwnerCall, { t: 'write' }>,
    vars: Variable[],
    values: unknown[],
    from: From<WriteReply>,
  ): WriteReply | undefined {
    const n = vars.length;
    const at = this.runtime.clock.now();
    const versions: number[] = new Array(n);
    const changes: VariableChange[] = new Array(n);
    for (let i = 0; i < n; i++) {
      const v = vars[i] as Variable;
      const modifier = (msg.changes[i] as ChangeRequest).modifier ?? 'anonymous';
      const version = ++v.version;
      v.value = values[i];
      v.modifier = modifier;
      const entry: HistoryEntry = { value: v.value, version, modifier, at };
      if (v.ring.length < v.limit) v.ring.push(entry);
      else {
        v.ring[v.ringStart] = entry;
        v.ringStart = (v.ringStart + 1) % v.limit;
      }
      versions[i] = version;
      changes[i] = makeChange(v.spec.name, v.value, version, modifier);
    }
    this.#stats.changes += n;
    const seq = ++this.#seq;
    this.#refused = null;
    const targets = this.#fanOut(seq, vars, changes);
    this.#stats.broadcasts++;
    if (!msg.awaitAcks || targets.length === 0) {
      return { versions, acked: 0, missing: EMPTY, exited: 0 };
    }
    const deadline = this.runtime.clock.now() + msg.deadlineMs;
    const refused = this.#refused;
    this.#refused = null;
    this.#pending.set(seq, {
      seq,
      from,
      targets,
      versions,
      remaining: targets.length,
      exited: 0,
      deadline,
      refused,
    });
    if (deadline < this.#timerAt) this.#arm(deadline);
    return undefined;
  }

  /** One cast per subscriber; returns who was sent to. */
  #fanOut(seq: number, vars: Variable[], changes: VariableChange[]): readonly Sub[] {
    const ctx = this.#ctx as AgentContext<OwnerCall, WriteReply, VariableAck, never>;
    const collector = ctx.self as unknown as VariableBroadcast['collector'];
    const shared: VariableBroadcast = { type: VARIABLE_BROADCAST, seq, changes, collector };
    if (vars.length === 1) {
      // The hot path: the variable's own (copy-on-write) array is the target list, no copy.
      const subs = (vars[0] as Variable).subs;
      for (let i = 0; i < subs.length; i++) {
        const s = subs[i] as Sub;
        if (!castTo(ctx, s.ref, shared)) this.#refuse(s);
      }
      return subs;
    }
    // Count how many of the changed variables each subscriber has: most have all of them and
    // share the one message; only the others get a message of their own.
    const touched: Sub[] = [];
    for (let i = 0; i < vars.length; i++) {
      const subs = (vars[i] as Variable).subs;
      for (let j = 0; j < subs.length; j++) {
        const s = subs[j] as Sub;
        if (s.hits++ === 0) touched.push(s);
      }
    }
    for (let k = 0; k < touched.length; k++) {
      const s = touched[k] as Sub;
      let msg = shared;
      if (s.hits !== changes.length) {
        const mine: VariableChange[] = [];
        for (let i = 0; i < vars.length; i++)
          if (s.vars.has(vars[i] as Variable)) mine.push(changes[i] as VariableChange);
        msg = { type: VARIABLE_BROADCAST, seq, changes: mine, collector };
      }
      s.hits = 0;
      if (!castTo(ctx, s.ref, msg)) this.#refuse(s);
    }
    return touched;
  }

  #refuse(s: Sub): void {
    if (this.#refused === null) this.#refused = [];
    this.#refused.push(s);
  }

  #ack(ack: VariableAck): void {
    if (ack === null || typeof ack !== 'object' || ack.type !== VARIABLE_ACK) return;
    const seq = ack.seq;
    const fromRef = ack.from;
    // Read: the replica may reuse the object now.
    if (ack.inFlight === true) ack.inFlight = false;
    const sub = this.#subsByRef.get(fromRef) ?? this.#subs.get(pidKey(fromRef));
    if (sub === undefined || seq <= sub.lastAck) return;
    sub.lastAck = seq;
    this.#stats.acks++;
    const p = this.#pending.get(seq);
    if (p === undefined) return;
    if (--p.remaining === 0) this.#finish(p);
  }

  #finish(p: Pending): void {
    this.#pending.delete(p.seq);
    const ctx = this.#ctx as AgentContext<OwnerCall, WriteReply, VariableAck, never>;
    ctx.reply(p.from, {
      versions: p.versions,
      acked: p.targets.length - p.exited,
      missing: EMPTY,
      exited: p.exited,
    });
  }

  /** The exit hook: forget the agent and stop waiting for its acks. */
  #exited(sub: Sub): void {
    for (const v of sub.vars) this.#detach(sub, v);
    this.#forget(sub);
  }

  #detach(sub: Sub, v: Variable): void {
    sub.vars.delete(v);
    v.subs = v.subs.filter((s) => s !== sub);
    this.#stats.subscriptions--;
  }

  /**
   * Drop an agent with no subscriptions left (exited or unsubscribed): broadcasts still waiting
   * for its ack stop waiting (its ack could no longer be matched to it).
   */
  #forget(sub: Sub): void {
    sub.alive = false;
    this.#subs.delete(sub.key);
    this.#subsByRef.delete(sub.ref);
    sub.removeHook();
    for (const p of [...this.#pending.values()]) {
      if ((sub.lastAck < p.seq || p.refused?.includes(sub) === true) && p.targets.includes(sub)) {
        p.exited++;
        if (--p.remaining === 0) this.#finish(p);
      }
    }
  }

  // ---- deadlines -------------------------------------------------------------------------------

  #arm(at: number): void {
    this.#stopTimer();
    this.#timerAt = at;
    // The timer only posts EXPIRE to the owner: handled in mailbox order, after every ack that
    // arrived before the deadline, even when the owner was busy (waiting on a consensus vote).
    this.#timer = this.runtime.clock.setTimeout(
      () => {
        this.#timer = null;
        this.#timerAt = Number.POSITIVE_INFINITY;
        this.runtime.send(this.owner, EXPIRE);
      },
      Math.max(0, at - this.runtime.clock.now()),
    );
  }

  #stopTimer(): void {
    if (this.#timer !== null) this.runtime.clock.clearTimeout(this.#timer);
    this.#timer = null;
    this.#timerAt = Number.POSITIVE_INFINITY;
  }

  /** Answer every broadcast past its deadline with who is missing; re-arm for the next one. */
  #expire(): void {
    const now = this.runtime.clock.now();
    let next = Number.POSITIVE_INFINITY;
    const ctx = this.#ctx as AgentContext<OwnerCall, WriteReply, VariableAck, never>;
    for (const p of [...this.#pending.values()]) {
      if (p.deadline > now) {
        if (p.deadline < next) next = p.deadline;
        continue;
      }
      this.#pending.delete(p.seq);
      this.#stats.timedOut++;
      const missing = p.targets
        .filter((s) => s.alive && (s.lastAck < p.seq || p.refused?.includes(s) === true))
        .map((s) => s.ref);
      ctx.reply(p.from, {
        versions: p.versions,
        acked: p.targets.length - p.exited - missing.length,
        missing,
        exited: p.exited,
      });
    }
    if (next !== Number.POSITIVE_INFINITY) this.#arm(next);
  }
}
