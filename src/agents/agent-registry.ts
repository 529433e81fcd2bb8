/**
 * The agent registry: MABEAM agents described by specs (id, type, capabilities, config, behaviour,
 * restart policy), found by type and capability, and run under one agent supervisor.
 *
 * Reads (`status`, `info`, `list`, `findByCapability`, `findByType`, `whereis`, `metrics`) are
 * synchronous: they read the foundation's CQRS `Registry` (indexed on `type` and `capabilities`, so
 * a find is an index read, not a scan) and the service's own records. Writes to the registry go
 * through its owner agent. The read model has two namespaces:
 *
 * - `agents`: one entry per registered spec, held by the service's root supervisor (an entry must
 *   be held by a live agent, and the spec outlives any one run of the agent);
 * - `running`: one entry per running agent, held by the agent itself. The child start function
 *   registers each new incarnation, and the registry's exit hook removes the entry the moment the
 *   agent exits, so `whereis` never answers a dead pid and follows every restart.
 *
 * Agents run under a DynamicSupervisor (restart policy per agent, intensity per service). Its root
 * is a one_for_one Supervisor holding the registry owner (restarted if it crashes) and the agent
 * supervisor as a `temporary` child: when the agent supervisor gives up (too many restarts), the
 * root does not bring it back empty; the service marks every agent that was meant to run `failed`
 * and refuses `start`/`restart` with AgentSupervisorDownError naming the reason.
 *
 * Lifecycle operations on one agent (`start`, `stop`, `restart`, `unregister`) are serialized per
 * agent in the service object rather than in an agent's mailbox, so an agent starting another from
 * a handler never waits behind an unrelated start. (Starting agents from an agent's `init` would
 * still deadlock: the supervisor is busy starting the first one.)
 *
 * Telemetry: `AGENT_STARTED`, `AGENT_RESTARTED` (metadata `cause`: `exit` for a supervisor
 * restart, `manual` for `restart(id)`), `AGENT_STOPPED` and `AGENT_FAILED`; see their TSDoc. Each
 * carries measurements `{count: 1, restarts}` and metadata `{id, type, pid, status}` plus `reason`
 * where an exit caused it (the agent's pid that exited, or the new one for started/restarted).
 * Nothing is built when no handler is attached.
 */
import { NameTakenError, Registry, type RegistryEntry } from '../foundation/index.js';
import {
  type AnyRef,
  type Behaviour,
  type ChildSpawnOptions,
  type ChildStartContext,
  type CustomStart,
  DynamicSupervisor,
  type DynamicSupervisorRef,
  describe,
  ExitError,
  InvalidArgumentError,
  isNormalExit,
  MabeamError,
  MaxChildrenError,
  NoChildError,
  NoProcessError,
  type RestartType,
  type Runtime,
  type ShutdownPolicy,
  SUPERVISOR_DEFAULTS,
  Supervisor,
  type SupervisorRef,
  TimeoutError,
} from '../kernel/index.js';
import { checkSpawnOptions } from '../kernel/runtime.js';

// ---- errors ------------------------------------------------------------------------------------

/** Error codes of the agent registry (unique across the project, never reused). */
export const AgentRegistryErrorCodes = {
  /** `register` with an id that is already registered. */
  EXISTS: 'E_AGENT_EXISTS',
  /** An id that is not registered (or was unregistered). */
  UNKNOWN: 'E_AGENT_UNKNOWN',
  /** `start` of an agent that is running or being restarted by the supervisor. */
  RUNNING: 'E_AGENT_RUNNING',
  /** The agent could not be started (its init threw, or its registration failed); `cause` says why. */
  START_FAILED: 'E_AGENT_START_FAILED',
  /** The agent supervisor has exited (gave up after too many restarts): nothing can be started. */
  SUPERVISOR_DOWN: 'E_AGENT_SUPERVISOR_DOWN',
  /** The agent registry was stopped (or its root supervisor exited). */
  STOPPED: 'E_AGENT_REGISTRY_STOPPED',
} as const;

/** `register` with an id that is taken. */
export class AgentExistsError extends MabeamError {
  readonly agentId: string;
  constructor(id: string) {
    super(AgentRegistryErrorCodes.EXISTS, `agent ${JSON.stringify(id)} is already registered`);
    this.agentId = id;
  }
}

/** An id that is not registered. */
export class UnknownAgentError extends MabeamError {
  readonly agentId: string;
  constructor(id: string) {
    super(AgentRegistryErrorCodes.UNKNOWN, `agent ${JSON.stringify(id)} is not registered`);
    this.agentId = id;
  }
}

/** `start` of an agent that is running (or restarting); `pid` is the running agent, if any. */
export class AgentRunningError extends MabeamError {
  readonly agentId: string;
  readonly pid: AnyRef | undefined;
  constructor(id: string, status: AgentLifecycleStatus, pid: AnyRef | undefined) {
    super(
      AgentRegistryErrorCodes.RUNNING,
      `agent ${JSON.stringify(id)} is already ${status}${pid === undefined ? '' : ` as ${pid}`}`,
    );
    this.agentId = id;
    this.pid = pid;
  }
}

/** The agent could not be started; `cause` holds why (an InitError when its init threw). */
export class AgentStartFailedError extends MabeamError {
  readonly agentId: string;
  constructor(id: string, cause: unknown) {
    super(
      AgentRegistryErrorCodes.START_FAILED,
      `agent ${JSON.stringify(id)} failed to start: ${describe(cause)}`,
      { cause },
    );
    this.agentId = id;
  }
}

/** The agent supervisor exited; `reason` is its exit reason (a MaxRestartsError when it gave up). */
export class AgentSupervisorDownError extends MabeamError {
  readonly reason: unknown;
  constructor(label: string, reason: unknown) {
    super(
      AgentRegistryErrorCodes.SUPERVISOR_DOWN,
      `the agent supervisor of ${label} has exited (reason ${describe(reason)}); its agents are ` +
        'marked failed and no agent can be started',
      { cause: reason instanceof Error ? reason : undefined },
    );
    this.reason = reason;
  }
}

/** An operation after `stop()` (or after the service's root supervisor exited). */
export class AgentRegistryStoppedError extends MabeamError {
  constructor(label: string) {
    super(AgentRegistryErrorCodes.STOPPED, `${label} has been stopped`);
  }
}

// ---- telemetry ---------------------------------------------------------------------------------

/** An agent was started by `start(id)` (or by `restart(id)` of an agent that was not running). */
export const AGENT_STARTED = ['mabeam', 'agents', 'started'] as const;
/** An agent runs again: restarted by the supervisor (`cause: 'exit'`) or by `restart(id)` (`'manual'`). */
export const AGENT_RESTARTED = ['mabeam', 'agents', 'restarted'] as const;
/**
 * An agent stopped and stays down: `stop`, `unregister`, a normal exit its policy does not
 * restart, or the service shutting down.
 */
export const AGENT_STOPPED = ['mabeam', 'agents', 'stopped'] as const;
/**
 * An agent is down for good after a failure: an abnormal exit its policy does not restart, a
 * failed start, or the supervisor giving up (metadata `reason` is then the supervisor's).
 */
export const AGENT_FAILED = ['mabeam', 'agents', 'failed'] as const;

// ---- specs -------------------------------------------------------------------------------------

/** permanent: always restarted; transient: only after an abnormal exit; temporary: never. */
export type AgentRestartPolicy = RestartType;

/** Spawn options of an agent: priority, bounded mailbox, trapExit (names are the registry's job). */
export type AgentSpawnOptions = Omit<ChildSpawnOptions, 'name'>;

/**
 * How `health(id)` checks an agent. With `message`, the agent's behaviour must answer that call
 * message (handleCall); without it, health is liveness plus the mailbox backlog only.
 */
export interface AgentHealthCheck {
  /** A call message the agent answers (not undefined); the check is a real `call` with `timeoutMs`. */
  readonly message?: unknown;
  /** Ms (runtime clock) the health call may take. Default: the service's (1000). */
  readonly timeoutMs?: number;
  /** Most queued messages a healthy agent has. Default: the service's (1000). */
  readonly maxMailbox?: number;
  /** Judges the reply (true: healthy). Default: any reply is healthy. */
  readonly check?: (reply: unknown) => boolean;
}

/** An agent description. `register` validates it up front; unset fields take the defaults shown. */
export interface AgentSpec<Config = unknown> {
  /** Unique, non-empty. */
  readonly id: string;
  /** Non-empty; indexed (`findByType`). */
  readonly type: string;
  /** Non-empty, distinct strings; indexed (`findByCapability`). Default `[]`. */
  readonly capabilities?: readonly string[];
  /** Passed to the behaviour's init on every (re)start. */
  readonly config?: Config;
  // biome-ignore lint/suspicious/noExplicitAny: an agent may run any behaviour
  readonly behaviour: Behaviour<Config, any, any, any, any, any>;
  /** Default `permanent`. */
  readonly restart?: AgentRestartPolicy;
  /** Free-form data about the agent (a plain object), reported by `info` and `list`. */
  readonly metadata?: Readonly<Record<string, unknown>>;
  /** How long `stop` waits for terminate before killing (ms, `brutal_kill`, `infinity`). Default 5000. */
  readonly shutdown?: ShutdownPolicy;
  readonly spawn?: AgentSpawnOptions;
  readonly health?: AgentHealthCheck;
}

/** A validated spec with its defaults filled in (frozen). */
export interface ResolvedAgentSpec {
  readonly id: string;
  readonly type: string;
  readonly capabilities: readonly string[];
  readonly config: unknown;
  // biome-ignore lint/suspicious/noExplicitAny: an agent may run any behaviour
  readonly behaviour: Behaviour<any, any, any, any, any, any>;
  readonly restart: AgentRestartPolicy;
  readonly metadata: Readonly<Record<string, unknown>>;
  readonly shutdown: ShutdownPolicy | undefined;
  readonly spawn: AgentSpawnOptions | undefined;
  readonly health: AgentHealthCheck | undefined;
}

// ---- reports -----------------------------------------------------------------------------------

/**
 * Where an agent is in its life:
 * - `registered`: registered, never started;
 * - `running`: an incarnation is alive (`whereis` gives it);
 * - `restarting`: it exited and the supervisor is bringing it back;
 * - `stopped`: down after `stop`, or after a normal exit its policy does not restart;
 * - `failed`: down after an abnormal exit its policy does not restart, a failed start, or the
 *   agent supervisor giving up.
 */
export type AgentLifecycleStatus = 'registered' | 'running' | 'restarting' | 'stopped' | 'failed';

/** One agent in `list` and the finds. */
export interface AgentSummary {
  readonly id: string;
  readonly type: string;
  readonly capabilities: readonly string[];
  readonly restart: AgentRestartPolicy;
  readonly metadata: Readonly<Record<string, unknown>>;
  readonly status: AgentLifecycleStatus;
  /** The running incarnation, or undefined when it is not running. */
  readonly pid: AnyRef | undefined;
}

/** What `info(id)` reports. */
export interface AgentDetails extends AgentSummary {
  /**
   * Restarts since registration: by the supervisor after an exit, and by `restart(id)` of an agent
   * that was running (or restarting). `restart(id)` of an agent that was not running is a plain
   * start (AGENT_STARTED) and is not counted.
   */
  readonly restarts: number;
  /** Runtime-clock ms when the running incarnation started; undefined when not running. */
  readonly startedAt: number | undefined;
  /** Why the last incarnation (or start) ended; undefined if it never has. */
  readonly lastExitReason: unknown;
  /** Runtime-clock ms of that exit. */
  readonly lastExitAt: number | undefined;
}

/** What `metrics(id)` reports (figures of the running incarnation; zeros when not running). */
export interface AgentMetrics {
  readonly id: string;
  readonly status: AgentLifecycleStatus;
  readonly restarts: number;
  /** Messages the running incarnation has handled (the kernel's reductions). */
  readonly messagesProcessed: number;
  readonly mailboxLength: number;
  /** Runtime-clock ms since the running incarnation started. */
  readonly uptimeMs: number;
}

/** Why an agent is unhealthy. */
export type AgentHealthProblem =
  /** Not running (registered, restarting, stopped or failed). */
  | 'not_running'
  /** More than `maxMailbox` messages queued. */
  | 'mailbox_backlog'
  /** The health call timed out (the agent is stuck or too slow). */
  | 'no_reply'
  /** The health call failed otherwise (the agent exited meanwhile, mailbox full...); see `error`. */
  | 'call_failed'
  /** The reply did not pass `check` (or `check` threw; see `error`). */
  | 'bad_reply';

/** The health of one agent. */
export interface AgentHealth {
  readonly id: string;
  readonly healthy: boolean;
  readonly status: AgentLifecycleStatus;
  /** Set when not healthy. */
  readonly problem?: AgentHealthProblem;
  /** The mailbox length when checked (undefined when not running). */
  readonly mailboxLength: number | undefined;
  /** Runtime-clock ms the health call took (undefined without a health call). */
  readonly latencyMs: number | undefined;
  readonly error?: unknown;
}

/** The health of the whole service. */
export interface AgentRegistryHealth {
  /** True when the agent supervisor runs and every agent in `agents` is healthy. */
  readonly healthy: boolean;
  /** `failed` once the agent supervisor has exited. */
  readonly supervisor: 'running' | 'failed';
  /** Agents meant to run: status running, restarting or failed (registered and stopped are left out). */
  readonly agents: readonly AgentHealth[];
}

/** Filter of `list`: all given fields must match. */
export interface AgentListFilter {
  readonly type?: string;
  readonly capability?: string;
  readonly status?: AgentLifecycleStatus;
}

/** Options of `AgentRegistry.start`. */
export interface AgentRegistryOptions {
  /** Restart intensity of the agent supervisor (restarts within `periodMs`). Default 3. */
  readonly intensity?: number;
  /** Default 5000 ms. */
  readonly periodMs?: number;
  /** Most agents running (or restarting) at once. Default: no limit. */
  readonly maxAgents?: number;
  /** Defaults of every agent's health check. */
  readonly health?: { readonly timeoutMs?: number; readonly maxMailbox?: number };
  /** A label for messages. Default `agent registry`. */
  readonly label?: string;
}

/** What the read model indexes. */
interface AgentIndex extends Record<string, unknown> {
  readonly id: string;
  readonly type: string;
  readonly capabilities: readonly string[];
}

/** Namespaces of the read model. */
const SPECS = 'agents';
const RUNNING = 'running';

const DEFAULT_HEALTH_TIMEOUT_MS = 1000;
const DEFAULT_MAX_MAILBOX = 1000;

// ---- validation --------------------------------------------------------------------------------

const SPEC_KEYS = new Set([
  'id',
  'type',
  'capabilities',
  'config',
  'behaviour',
  'restart',
  'metadata',
  'shutdown',
  'spawn',
  'health',
]);
const HEALTH_KEYS = new Set(['message', 'timeoutMs', 'maxMailbox', 'check']);
const POLICIES: ReadonlySet<unknown> = new Set(['permanent', 'transient', 'temporary']);

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function checkId(id: unknown, what = 'agent id'): asserts id is string {
  if (typeof id !== 'string' || id === '')
    throw new InvalidArgumentError(what, 'must be a non-empty string', id);
}

/**
 * Check an agent spec and fill in its defaults. Throws InvalidArgumentError naming the field (and
 * the agent, once its id is known) and the value.
 */
export function checkAgentSpec(spec: unknown): ResolvedAgentSpec {
  if (!isPlainObject(spec)) throw new InvalidArgumentError('agent spec', 'must be a plain object', spec);
  checkId(spec.id, 'agent spec field "id"');
  const id = spec.id;
  const what = `agent spec ${JSON.stringify(id)} field`;
  for (const key of Object.keys(spec)) {
    if (!SPEC_KEYS.has(key))
      throw new InvalidArgumentError(`${what} ${JSON.stringify(key)}`, 'unknown field');
  }
  if (typeof spec.type !== 'string' || spec.type === '') {
    throw new InvalidArgumentError(`${what} "type"`, 'must be a non-empty string', spec.type);
  }
  const raw = spec.capabilities ?? [];
  if (!Array.isArray(raw)) {
    throw new InvalidArgumentError(`${what} "capabilities"`, 'must be an array of strings', raw);
  }
  const seen = new Set<string>();
  for (let i = 0; i < raw.length; i++) {
    const cap: unknown = raw[i];
    if (typeof cap !== 'string' || cap === '') {
      throw new InvalidArgumentError(`${what} "capabilities[${i}]"`, 'must be a non-empty string', cap);
    }
    if (seen.has(cap)) throw new InvalidArgumentError(`${what} "capabilities[${i}]"`, 'is a duplicate', cap);
    seen.add(cap);
  }
  const b = spec.behaviour as { init?: unknown } | null | undefined;
  if (b === null || typeof b !== 'object' || typeof b.init !== 'function') {
    throw new InvalidArgumentError(
      `${what} "behaviour"`,
      'must be a behaviour (an object with an init function)',
      spec.behaviour,
    );
  }
  const restart = spec.restart ?? SUPERVISOR_DEFAULTS.restart;
  if (!POLICIES.has(restart)) {
    throw new InvalidArgumentError(`${what} "restart"`, 'must be permanent, transient or temporary', restart);
  }
  const metadata = spec.metadata ?? {};
  if (!isPlainObject(metadata)) {
    throw new InvalidArgumentError(`${what} "metadata"`, 'must be a plain object', metadata);
  }
  const shutdown = spec.shutdown;
  if (
    shutdown !== undefined &&
    shutdown !== 'brutal_kill' &&
    shutdown !== 'infinity' &&
    !(typeof shutdown === 'number' && Number.isFinite(shutdown) && shutdown >= 0)
  ) {
    throw new InvalidArgumentError(
      `${what} "shutdown"`,
      'must be a finite number of ms >= 0, brutal_kill or infinity',
      shutdown,
    );
  }
  const spawn = spec.spawn;
  if (spawn !== undefined) {
    if (!isPlainObject(spawn)) throw new InvalidArgumentError(`${what} "spawn"`, 'must be an object', spawn);
    for (const key of ['name', 'link']) {
      if (key in spawn) {
        throw new InvalidArgumentError(
          `${what} "spawn.${key}"`,
          'is not allowed: the registry names agents and the supervisor links them',
        );
      }
    }
    try {
      checkSpawnOptions(spawn);
    } catch (error) {
      if (!(error instanceof InvalidArgumentError)) throw error;
      throw new InvalidArgumentError(`${what} "spawn"`, error.message);
    }
  }
  const health = spec.health;
  if (health !== undefined) checkHealth(health, `${what} "health`);
  return Object.freeze({
    id,
    type: spec.type,
    capabilities: Object.freeze([...(raw as string[])]),
    config: spec.config,
    behaviour: spec.behaviour as ResolvedAgentSpec['behaviour'],
    restart: restart as AgentRestartPolicy,
    metadata: Object.isFrozen(metadata) ? metadata : Object.freeze({ ...metadata }),
    shutdown: shutdown as ShutdownPolicy | undefined,
    spawn: spawn === undefined ? undefined : Object.freeze({ ...spawn }),
    health: health === undefined ? undefined : Object.freeze({ ...(health as AgentHealthCheck) }),
  });
}

/** `what` is the field's name without its closing quote (`agent spec "a" field "health`). */
function checkHealth(health: unknown, what: string): void {
  if (!isPlainObject(health)) throw new InvalidArgumentError(`${what}"`, 'must be an object', health);
  for (const key of Object.keys(health)) {
    if (!HEALTH_KEYS.has(key)) throw new InvalidArgumentError(`${what}.${key}"`, 'unknown field');
  }
  checkHealthLimits(health, what);
  if (health.check !== undefined && typeof health.check !== 'function') {
    throw new InvalidArgumentError(`${what}.check"`, 'must be a function', health.check);
  }
}

function checkHealthLimits(health: Record<string, unknown>, what: string): void {
  const { timeoutMs, maxMailbox } = health;
  if (timeoutMs !== undefined && !(typeof timeoutMs === 'number' && timeoutMs > 0)) {
    throw new InvalidArgumentError(`${what}.timeoutMs"`, 'must be a number of ms > 0', timeoutMs);
  }
  if (maxMailbox !== undefined && !(Number.isInteger(maxMailbox) && (maxMailbox as number) >= 0)) {
    throw new InvalidArgumentError(`${what}.maxMailbox"`, 'must be an integer >= 0', maxMailbox);
  }
}

const OPTION_KEYS = new Set(['intensity', 'periodMs', 'maxAgents', 'health', 'label']);

interface ResolvedOptions {
  readonly intensity: number;
  readonly periodMs: number;
  readonly maxAgents: number;
  readonly timeoutMs: number;
  readonly maxMailbox: number;
  readonly label: string;
}

function resolveOptions(options: unknown): ResolvedOptions {
  if (!isPlainObject(options)) {
    throw new InvalidArgumentError('agent registry options', 'must be a plain object', options);
  }
  for (const key of Object.keys(options)) {
    if (!OPTION_KEYS.has(key)) {
      throw new InvalidArgumentError(`agent registry option ${JSON.stringify(key)}`, 'unknown option');
    }
  }
  const intensity = options.intensity ?? SUPERVISOR_DEFAULTS.intensity;
  if (!(Number.isInteger(intensity) && (intensity as number) >= 0)) {
    throw new InvalidArgumentError('agent registry option "intensity"', 'must be an integer >= 0', intensity);
  }
  const periodMs = options.periodMs ?? SUPERVISOR_DEFAULTS.periodMs;
  if (!(typeof periodMs === 'number' && Number.isFinite(periodMs) && periodMs > 0)) {
    throw new InvalidArgumentError(
      'agent registry option "periodMs"',
      'must be a finite number > 0',
      periodMs,
    );
  }
  const maxAgents = options.maxAgents ?? Number.POSITIVE_INFINITY;
  if (
    !((Number.isInteger(maxAgents) && (maxAgents as number) >= 0) || maxAgents === Number.POSITIVE_INFINITY)
  ) {
    throw new InvalidArgumentError(
      'agent registry option "maxAgents"',
      'must be an integer >= 0 or Infinity',
      maxAgents,
    );
  }
  const health = options.health ?? {};
  if (!isPlainObject(health)) {
    throw new InvalidArgumentError('agent registry option "health"', 'must be an object', health);
  }
  for (const key of Object.keys(health)) {
    if (key !== 'timeoutMs' && key !== 'maxMailbox') {
      throw new InvalidArgumentError(`agent registry option "health.${key}"`, 'unknown option');
    }
  }
  checkHealthLimits(health, 'agent registry option "health');
  const label = options.label ?? 'agent registry';
  if (typeof label !== 'string' || label === '') {
    throw new InvalidArgumentError('agent registry option "label"', 'must be a non-empty string', label);
  }
  return {
    intensity: intensity as number,
    periodMs,
    maxAgents: maxAgents as number,
    timeoutMs: (health.timeoutMs as number | undefined) ?? DEFAULT_HEALTH_TIMEOUT_MS,
    maxMailbox: (health.maxMailbox as number | undefined) ?? DEFAULT_MAX_MAILBOX,
    label,
  };
}

// ---- the service -------------------------------------------------------------------------------

/** Why an agent is being shut down by one of our own operations. */
type Halt = 'stop' | 'restart' | 'unregister';

/** How an incarnation came to be. */
type StartCause = 'start' | 'manual' | 'exit';

interface AgentRecord {
  readonly spec: ResolvedAgentSpec;
  readonly index: AgentIndex;
  status: AgentLifecycleStatus;
  pid: AnyRef | undefined;
  restarts: number;
  startedAt: number | undefined;
  lastExitReason: unknown;
  lastExitAt: number | undefined;
  /** Meant to run: started and not yet stopped or given up. The supervisor's exit settles these. */
  active: boolean;
  /** Set while one of our operations shuts the agent down, so its exit is not taken for a crash. */
  halting: Halt | undefined;
  unregistered: boolean;
  /** The tail of this agent's lifecycle operations. */
  queue: Promise<unknown>;
  /** Woken on every status change. */
  waiters: (() => void)[];
}

function needsRestart(policy: AgentRestartPolicy, reason: unknown): boolean {
  return policy === 'permanent' || (policy === 'transient' && !isNormalExit(reason));
}

const ignore = (): void => {};

/**
 * Thrown by the child start function when the new incarnation ran its init and exited before its
 * registration got through (the registry refuses a dead agent): it did start, and `reason` is how
 * it ended. `#launch` settles the agent with that reason instead of calling it a failed start.
 */
class ExitedAtStart extends Error {
  readonly ref: AnyRef;
  readonly how: StartCause;
  readonly reason: unknown;
  constructor(ref: AnyRef, how: StartCause, reason: unknown) {
    super(`agent ${ref} exited right after its init with reason ${describe(reason)}`);
    this.ref = ref;
    this.how = how;
    this.reason = reason;
  }
}

/** The exit reason of an agent that has exited (the kernel runs an exit hook at once for it). */
function exitReasonOf(runtime: Runtime, ref: AnyRef): unknown {
  let reason: unknown = 'noproc';
  runtime.onExit(ref, (r) => {
    reason = r;
  })();
  return reason;
}

/**
 * The agent registry service. Start it with `AgentRegistry.start(runtime, options)`; everything it
 * holds hangs off that runtime.
 */
export class AgentRegistry {
  readonly runtime: Runtime;
  readonly label: string;
  /**
   * The read model: namespace `agents` (every registered agent) and `running` (each running
   * incarnation, held by the agent), both indexed on `type` and `capabilities`.
   */
  readonly registry: Registry<AgentIndex>;
  /** The service's root supervisor (registry owner and agent supervisor). */
  readonly root: SupervisorRef;
  /** The dynamic supervisor the agents run under. */
  readonly supervisor: DynamicSupervisorRef;
  readonly #options: ResolvedOptions;
  readonly #records = new Map<string, AgentRecord>();
  /** Set once the agent supervisor has exited: its exit reason. */
  #supervisorExit: { readonly reason: unknown } | undefined;
  #stopped = false;
  #stopping: Promise<void> | undefined;

  private constructor(
    runtime: Runtime,
    options: ResolvedOptions,
    registry: Registry<AgentIndex>,
    root: SupervisorRef,
    supervisor: DynamicSupervisorRef,
  ) {
    this.runtime = runtime;
    this.label = options.label;
    this.#options = options;
    this.registry = registry;
    this.root = root;
    this.supervisor = supervisor;
    runtime.onExit(supervisor, (reason) => this.#supervisorExited(reason));
    runtime.onExit(root, () => {
      this.#stopped = true;
      for (const record of this.#records.values()) wake(record);
    });
  }

  /**
   * Start the service: its registry owner and agent supervisor under a root supervisor (top level
   * on `runtime`). Bad options reject with InvalidArgumentError naming the option.
   */
  static async start(runtime: Runtime, options: AgentRegistryOptions = {}): Promise<AgentRegistry> {
    const resolved = resolveOptions(options);
    const registry = Registry.create<AgentIndex>(runtime, {
      indexes: ['type', 'capabilities'],
      label: resolved.label,
    });
    const root = await Supervisor.start(runtime, {
      strategy: 'one_for_one',
      children: [
        registry.childSpec('registry'),
        // temporary: a supervisor that gave up is not brought back empty behind the agents' backs.
        DynamicSupervisor.childSpec(
          'agents',
          { intensity: resolved.intensity, periodMs: resolved.periodMs, maxChildren: resolved.maxAgents },
          { restart: 'temporary' },
        ),
      ],
    });
    const children = await Supervisor.whichChildren(runtime, root);
    const supervisor = children.find((c) => c.id === 'agents')?.ref as DynamicSupervisorRef;
    return new AgentRegistry(runtime, resolved, registry, root, supervisor);
  }

  // ---- writes ----------------------------------------------------------------------------------

  /**
   * Register an agent (not started). Resolves with its summary once it can be found. Rejects with
   * InvalidArgumentError for a bad spec (naming the field), AgentExistsError for a taken id.
   */
  register<C>(spec: AgentSpec<C>): Promise<AgentSummary> {
    let record: AgentRecord;
    try {
      this.#checkOpen();
      const resolved = checkAgentSpec(spec);
      if (this.#records.has(resolved.id)) throw new AgentExistsError(resolved.id);
      record = {
        spec: resolved,
        index: Object.freeze({ id: resolved.id, type: resolved.type, capabilities: resolved.capabilities }),
        status: 'registered',
        pid: undefined,
        restarts: 0,
        startedAt: undefined,
        lastExitReason: undefined,
        lastExitAt: undefined,
        active: false,
        halting: undefined,
        unregistered: false,
        queue: Promise.resolve(),
        waiters: [],
      };
    } catch (error) {
      return Promise.reject(error);
    }
    const id = record.spec.id;
    // Reserved at once, so a concurrent register of the same id fails deterministically.
    this.#records.set(id, record);
    return this.#serialize(record, async () => {
      try {
        await this.registry.register(SPECS, id, this.root, record.index);
      } catch (error) {
        if (this.#records.get(id) === record) this.#records.delete(id);
        record.unregistered = true;
        if (error instanceof NameTakenError) throw new AgentExistsError(id);
        throw error;
      }
      return summaryOf(record);
    });
  }

  /**
   * Start a registered (stopped, failed) agent under the supervisor; resolves with its ref once its
   * init has run and `whereis` finds it. Rejects with UnknownAgentError, AgentRunningError (running
   * or restarting), AgentStartFailedError (init threw; the agent is then `failed`), MaxChildrenError
   * (`maxAgents` reached), AgentSupervisorDownError.
   */
  start(id: string): Promise<AnyRef> {
    return this.#operate(id, (record) => {
      if (record.status === 'running' || record.status === 'restarting') {
        throw new AgentRunningError(id, record.status, record.pid);
      }
      return this.#launch(record, 'start');
    });
  }

  /**
   * Stop an agent by its shutdown policy (terminate runs; killed after `shutdown` ms). Waits for a
   * restart in progress to finish first. Resolves at once if it is not running.
   */
  stop(id: string): Promise<void> {
    return this.#operate(id, (record) => this.#halt(record, 'stop'));
  }

  /**
   * Stop the agent (if running) and start it again with a new pid; counts as a restart when it was
   * running. Resolves with the new ref. Same rejections as `start` (but never AgentRunningError).
   */
  restart(id: string): Promise<AnyRef> {
    return this.#operate(id, async (record) => {
      const wasRunning = record.status === 'running' || record.status === 'restarting';
      await this.#halt(record, 'restart');
      return this.#launch(record, wasRunning ? 'manual' : 'start');
    });
  }

  /** Stop the agent if it runs, and forget it: its id is free again. */
  unregister(id: string): Promise<void> {
    return this.#operate(id, async (record) => {
      await this.#halt(record, 'unregister');
      await this.registry.unregister(SPECS, id);
      record.unregistered = true;
      this.#records.delete(id);
      wake(record);
    });
  }

  /**
   * Stop the service: the agents (newest first, by their shutdown policies), then the registry
   * owner and the root. Every later operation rejects with AgentRegistryStoppedError; calling it
   * again joins the first call.
   */
  shutdown(): Promise<void> {
    this.#stopping ??= (async () => {
      if (this.runtime.isAlive(this.root)) await this.runtime.stop(this.root, 'shutdown').catch(ignore);
      await this.registry.stop();
      this.#stopped = true;
    })();
    return this.#stopping;
  }

  // ---- reads: synchronous ----------------------------------------------------------------------

  /** The agent's lifecycle status. Throws UnknownAgentError. */
  status(id: string): AgentLifecycleStatus {
    return this.#record(id).status;
  }

  /** The running incarnation of the agent (a registry lookup), or undefined when it is not running. */
  whereis(id: string): AnyRef | undefined {
    this.#record(id);
    return this.registry.lookup(RUNNING, id);
  }

  /** Spec summary, status, current pid, restarts, start time and last exit. */
  info(id: string): AgentDetails {
    const r = this.#record(id);
    return {
      ...summaryOf(r),
      restarts: r.restarts,
      startedAt: r.startedAt,
      lastExitReason: r.lastExitReason,
      lastExitAt: r.lastExitAt,
    };
  }

  /**
   * Registered agents, in registration order, matching `filter`. Type and capability are index
   * reads (of the `running` namespace when `status` is `running`, so that too is an index read).
   */
  list(filter: AgentListFilter = {}): AgentSummary[] {
    this.#checkOpen();
    if (!isPlainObject(filter))
      throw new InvalidArgumentError('agent list filter', 'must be an object', filter);
    const where: { type?: string; capabilities?: string } = {};
    for (const key of Object.keys(filter)) {
      if (key !== 'type' && key !== 'capability' && key !== 'status') {
        throw new InvalidArgumentError(`agent list filter field ${JSON.stringify(key)}`, 'unknown field');
      }
    }
    if (filter.type !== undefined) {
      checkId(filter.type, 'agent list filter field "type"');
      where.type = filter.type;
    }
    if (filter.capability !== undefined) {
      checkId(filter.capability, 'agent list filter field "capability"');
      where.capabilities = filter.capability;
    }
    const status = filter.status;
    if (
      status !== undefined &&
      !['registered', 'running', 'restarting', 'stopped', 'failed'].includes(status as string)
    ) {
      throw new InvalidArgumentError(
        'agent list filter field "status"',
        'must be registered, running, restarting, stopped or failed',
        status,
      );
    }
    const entries = this.registry.select(status === 'running' ? RUNNING : SPECS, where);
    const out = this.#summaries(entries);
    // Filtered for `running` too: an incarnation is in the `running` namespace from its
    // registration on, a moment before the service has recorded it as running.
    return status === undefined ? out : out.filter((s) => s.status === status);
  }

  /** Registered agents with `capability` (any status), in registration order: an index read. */
  findByCapability(capability: string): AgentSummary[] {
    this.#checkOpen();
    checkId(capability, 'capability');
    return this.#summaries(this.registry.select(SPECS, { capabilities: capability }));
  }

  /** Registered agents of `type` (any status), in registration order: an index read. */
  findByType(type: string): AgentSummary[] {
    this.#checkOpen();
    checkId(type, 'agent type');
    return this.#summaries(this.registry.select(SPECS, { type }));
  }

  /**
   * Restarts, and the running incarnation's messages handled (the kernel's reductions), mailbox
   * length and uptime, from `runtime.info`. Zeros when not running.
   */
  metrics(id: string): AgentMetrics {
    const r = this.#record(id);
    const info = r.pid === undefined ? undefined : this.runtime.info(r.pid, { stateSize: false });
    return {
      id,
      status: r.status,
      restarts: r.restarts,
      messagesProcessed: info?.reductions ?? 0,
      mailboxLength: info?.mailboxLength ?? 0,
      uptimeMs: r.startedAt === undefined || info === undefined ? 0 : this.runtime.clock.now() - r.startedAt,
    };
  }

  /**
   * Health of one agent, or of the service. An agent is healthy when, all at once:
   * 1. it is `running` and its incarnation is alive;
   * 2. its mailbox holds at most `maxMailbox` messages (checked before any call: a call would only
   *    queue behind the backlog);
   * 3. when its spec has `health.message`: a real `call` with that message gets a reply within
   *    `timeoutMs` (runtime clock), and `health.check(reply)` (if given) returns true.
   * Without `health.message`, 1 and 2 are the whole check (liveness and backlog).
   *
   * The service is healthy when the agent supervisor runs and every agent meant to run (status
   * running, restarting or failed) is healthy; registered and stopped agents are not counted.
   * Never rejects for an unhealthy agent; rejects with UnknownAgentError for an unknown id.
   */
  health(id: string): Promise<AgentHealth>;
  health(): Promise<AgentRegistryHealth>;
  health(id?: string): Promise<AgentHealth | AgentRegistryHealth> {
    try {
      if (id !== undefined) return this.#probe(this.#record(id));
      this.#checkOpen();
    } catch (error) {
      return Promise.reject(error);
    }
    const probes: Promise<AgentHealth>[] = [];
    for (const record of this.#records.values()) {
      const s = record.status;
      if (s === 'running' || s === 'restarting' || s === 'failed') probes.push(this.#probe(record));
    }
    return Promise.all(probes).then((agents) => {
      const supervisor = this.#supervisorDown() ? 'failed' : 'running';
      return {
        healthy: supervisor === 'running' && agents.every((a) => a.healthy),
        supervisor,
        agents,
      };
    });
  }

  /** True once the service was stopped (or its root supervisor exited). */
  get stopped(): boolean {
    return this.#stopped;
  }

  /** The agent supervisor's exit reason once it has exited (gave up), else undefined. */
  get supervisorFailure(): unknown {
    return this.#supervisorExit?.reason;
  }

  toString(): string {
    return this.label;
  }

  // ---- internals -------------------------------------------------------------------------------

  #checkOpen(): void {
    if (this.#stopped || this.#stopping !== undefined) throw new AgentRegistryStoppedError(this.label);
  }

  #record(id: string): AgentRecord {
    this.#checkOpen();
    checkId(id);
    const record = this.#records.get(id);
    if (record === undefined) throw new UnknownAgentError(id);
    return record;
  }

  #supervisorDown(): boolean {
    return this.#supervisorExit !== undefined || !this.runtime.isAlive(this.supervisor);
  }

  #summaries(entries: readonly RegistryEntry<AgentIndex>[]): AgentSummary[] {
    const out: AgentSummary[] = [];
    for (const entry of entries) {
      const record = this.#records.get(entry.metadata.id);
      if (record !== undefined && !record.unregistered) out.push(summaryOf(record));
    }
    return out;
  }

  /** Run a lifecycle operation after the agent's earlier ones. */
  #serialize<T>(record: AgentRecord, fn: () => Promise<T>): Promise<T> {
    const run = record.queue.then(fn);
    record.queue = run.then(ignore, ignore);
    return run;
  }

  #operate<T>(id: string, fn: (record: AgentRecord) => Promise<T>): Promise<T> {
    let record: AgentRecord;
    try {
      record = this.#record(id);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#serialize(record, () => {
      if (record.unregistered) throw new UnknownAgentError(id);
      this.#checkOpen();
      return fn(record);
    });
  }

  /**
   * Start a new child for the agent; its start function registers and tracks each incarnation.
   * `quickExits` counts the incarnations of this launch that exited right after their init.
   */
  async #launch(record: AgentRecord, cause: StartCause, quickExits = 0): Promise<AnyRef> {
    const id = record.spec.id;
    if (this.#supervisorDown()) {
      throw new AgentSupervisorDownError(this.label, this.#supervisorExit?.reason ?? 'noproc');
    }
    record.active = true;
    try {
      return await DynamicSupervisor.startChild(this.runtime, this.supervisor, {
        id,
        start: this.#childStart(record, cause),
        restart: record.spec.restart,
        ...(record.spec.shutdown === undefined ? {} : { shutdown: record.spec.shutdown }),
      });
    } catch (error) {
      record.active = false;
      if (error instanceof ExitedAtStart) return this.#exitedAtStart(record, error, quickExits);
      if (this.#supervisorDown()) {
        throw new AgentSupervisorDownError(this.label, this.#supervisorExit?.reason ?? error);
      }
      if (error instanceof MaxChildrenError) throw error;
      record.status = 'failed';
      record.lastExitReason = error;
      record.lastExitAt = this.runtime.clock.now();
      this.#emit(AGENT_FAILED, record, { reason: error });
      wake(record);
      throw new AgentStartFailedError(id, error);
    }
  }

  /**
   * The incarnation a `start`/`restart` launched ran its init and exited before the supervisor
   * took it on (so the supervisor will not restart it). It did start: record it, then its exit,
   * and do what its policy asks: settled `stopped`/`failed` with its real exit reason (the start
   * resolves with the ref), or, when the policy restarts it, start it again as a restart, at most
   * `intensity` times in a row before the agent is `failed` and the start rejects with
   * AgentStartFailedError whose cause is the last exit reason.
   */
  #exitedAtStart(record: AgentRecord, quick: ExitedAtStart, quickExits: number): Promise<AnyRef> | AnyRef {
    record.active = true;
    // Records the incarnation (status running, AGENT_STARTED/RESTARTED), and runs the exit hook at
    // once since it is gone: that records the exit and settles it if its policy does not restart.
    this.#started(record, quick.ref, quick.how);
    if (record.status !== 'restarting') return quick.ref;
    if (quickExits + 1 > this.#options.intensity || this.#supervisorDown()) {
      record.active = false;
      record.status = 'failed';
      this.#emit(AGENT_FAILED, record, { reason: quick.reason, pid: quick.ref });
      wake(record);
      throw new AgentStartFailedError(record.spec.id, quick.reason);
    }
    return this.#launch(record, 'exit', quickExits + 1);
  }

  /**
   * The child's start function, run by the supervisor on the first start and on every restart.
   * It registers the new incarnation in the `running` namespace before the supervisor (and so
   * `start`) sees it, so `whereis` follows restarts.
   */
  #childStart(record: AgentRecord, cause: StartCause): CustomStart {
    let next: StartCause = cause;
    return async (ctx: ChildStartContext) => {
      const spec = record.spec;
      const ref = (await ctx.spawnLink(spec.behaviour, spec.config, spec.spawn)) as AnyRef;
      try {
        await this.registry.register(RUNNING, spec.id, ref, record.index);
      } catch (error) {
        if (error instanceof NoProcessError && !this.runtime.isAlive(ref)) {
          // It ran its init and has exited already (a one-shot job, a crash in its first message):
          // a start that ended, not a failed one. The supervisor only takes live agents, so say so.
          const how = next;
          next = 'exit';
          const reason = exitReasonOf(this.runtime, ref);
          if (how === 'exit') {
            // A supervisor restart: the supervisor counts it as a failed restart and tries again.
            record.lastExitReason = reason;
            record.lastExitAt = this.runtime.clock.now();
          }
          throw new ExitedAtStart(ref, how, reason);
        }
        // Not tracked by the supervisor yet (we have not returned it): do not leave it running.
        ctx.runtime.exit(ref, 'kill');
        throw error;
      }
      const how = next;
      next = 'exit';
      this.#started(record, ref, how);
      return ref;
    };
  }

  #started(record: AgentRecord, ref: AnyRef, cause: StartCause): void {
    record.pid = ref;
    record.status = 'running';
    record.startedAt = this.runtime.clock.now();
    if (cause === 'start') this.#emit(AGENT_STARTED, record, {});
    else {
      record.restarts++;
      this.#emit(AGENT_RESTARTED, record, {
        cause,
        reason: cause === 'exit' ? record.lastExitReason : undefined,
      });
    }
    wake(record);
    // Runs at once if the agent is already gone.
    this.runtime.onExit(ref, (reason) => this.#exited(record, ref, reason));
  }

  /** An incarnation exited (runs in the kernel's exit hook, before anyone else learns of it). */
  #exited(record: AgentRecord, ref: AnyRef, reason: unknown): void {
    if (record.pid !== ref) return;
    record.pid = undefined;
    record.startedAt = undefined;
    record.lastExitReason = reason;
    record.lastExitAt = this.runtime.clock.now();
    if (record.halting !== undefined || this.#supervisorDown()) {
      // Provisional: the halting operation, or the supervisor's exit, settles it.
      record.status = 'stopped';
    } else if (needsRestart(record.spec.restart, reason)) {
      record.status = 'restarting';
    } else {
      this.#settle(record, reason, ref);
    }
    wake(record);
  }

  /** The agent is down for good after exiting with `reason` on its own. */
  #settle(record: AgentRecord, reason: unknown, pid: AnyRef | undefined): void {
    record.active = false;
    if (isNormalExit(reason)) {
      record.status = 'stopped';
      this.#emit(AGENT_STOPPED, record, { reason, pid });
    } else {
      record.status = 'failed';
      this.#emit(AGENT_FAILED, record, { reason, pid });
    }
  }

  /** Shut the agent down (if it runs) on behalf of `why`. */
  async #halt(record: AgentRecord, why: Halt): Promise<void> {
    for (;;) {
      if (record.status === 'restarting' && !this.#supervisorDown()) {
        await nextChange(record);
        continue;
      }
      const pid = record.pid;
      if (pid === undefined) {
        if (why !== 'restart') record.active = false;
        return;
      }
      record.halting = why;
      try {
        await DynamicSupervisor.terminateChild(this.runtime, this.supervisor, pid);
      } catch (error) {
        record.halting = undefined;
        if (error instanceof NoChildError) {
          // It exited on its own before the supervisor took our request, so the supervisor
          // handled that exit by its policy: re-read the status the way the supervisor acted.
          if (record.pid === undefined && record.status === 'stopped' && !this.#supervisorDown()) {
            if (needsRestart(record.spec.restart, record.lastExitReason)) record.status = 'restarting';
            else this.#settle(record, record.lastExitReason, undefined);
          }
          continue;
        }
        if (error instanceof NoProcessError || error instanceof ExitError) {
          // The supervisor went down meanwhile; its exit hook has settled the agent.
          return;
        }
        throw error;
      }
      record.halting = undefined;
      record.active = false;
      record.status = 'stopped';
      if (why !== 'restart') this.#emit(AGENT_STOPPED, record, { reason: record.lastExitReason, pid });
      wake(record);
      return;
    }
  }

  /** The agent supervisor exited: every agent meant to run is down for good. */
  #supervisorExited(reason: unknown): void {
    this.#supervisorExit = { reason };
    const failed = !isNormalExit(reason);
    for (const record of this.#records.values()) {
      if (!record.active) continue;
      record.active = false;
      record.pid = undefined;
      record.startedAt = undefined;
      record.status = failed ? 'failed' : 'stopped';
      this.#emit(failed ? AGENT_FAILED : AGENT_STOPPED, record, {
        reason,
        exitReason: record.lastExitReason,
      });
      wake(record);
    }
  }

  /** Call the agent with its health message, if it has one, and judge the outcome. */
  #probe(record: AgentRecord): Promise<AgentHealth> {
    const id = record.spec.id;
    const status = record.status;
    const pid = record.pid;
    const info =
      pid === undefined || status !== 'running' ? undefined : this.runtime.info(pid, { stateSize: false });
    if (info === undefined) {
      return Promise.resolve({
        id,
        healthy: false,
        status,
        problem: 'not_running',
        mailboxLength: undefined,
        latencyMs: undefined,
      });
    }
    const check = record.spec.health;
    const maxMailbox = check?.maxMailbox ?? this.#options.maxMailbox;
    const mailboxLength = info.mailboxLength;
    if (mailboxLength > maxMailbox) {
      return Promise.resolve({
        id,
        healthy: false,
        status,
        problem: 'mailbox_backlog',
        mailboxLength,
        latencyMs: undefined,
      });
    }
    if (check === undefined || check.message === undefined) {
      return Promise.resolve({ id, healthy: true, status, mailboxLength, latencyMs: undefined });
    }
    const clock = this.runtime.clock;
    const t0 = clock.now();
    // Made synchronously, so a test can advance a VirtualClock right after calling health().
    return this.runtime.call(pid as AnyRef, check.message, check.timeoutMs ?? this.#options.timeoutMs).then(
      (answer): AgentHealth => {
        const latencyMs = clock.now() - t0;
        let ok: boolean;
        try {
          ok = check.check === undefined || check.check(answer) === true;
        } catch (error) {
          return { id, healthy: false, status, problem: 'bad_reply', mailboxLength, latencyMs, error };
        }
        return ok
          ? { id, healthy: true, status, mailboxLength, latencyMs }
          : { id, healthy: false, status, problem: 'bad_reply', mailboxLength, latencyMs, error: answer };
      },
      (error: unknown): AgentHealth => ({
        id,
        healthy: false,
        status,
        problem: error instanceof TimeoutError ? 'no_reply' : 'call_failed',
        mailboxLength,
        latencyMs: clock.now() - t0,
        error,
      }),
    );
  }

  #emit(event: readonly string[], record: AgentRecord, extra: Record<string, unknown>): void {
    const tel = this.runtime.telemetry;
    if (!tel.enabled) return;
    tel.execute(
      event,
      { count: 1, restarts: record.restarts },
      { id: record.spec.id, type: record.spec.type, pid: record.pid, status: record.status, ...extra },
    );
  }
}

function summaryOf(r: AgentRecord): AgentSummary {
  const s = r.spec;
  return {
    id: s.id,
    type: s.type,
    capabilities: s.capabilities,
    restart: s.restart,
    metadata: s.metadata,
    status: r.status,
    pid: r.pid,
  };
}

function wake(record: AgentRecord): void {
  if (record.waiters.length === 0) return;
  const waiters = record.waiters;
  record.waiters = [];
  for (const w of waiters) w();
}

function nextChange(record: AgentRecord): Promise<void> {
  return new Promise((resolve) => record.waiters.push(resolve));
}
