// biome-ignore-all lint/suspicious/noExplicitAny: `any` marks the message types a signature does not constrain
/**
 * A runtime owns everything: process table, scheduler, names, timers, clock and telemetry. There is
 * no module-level state, so two runtimes in one process never see each other.
 */
import { type Behaviour, isNormalExit } from './behaviour.js';
import { CallTimeouts } from './call-timeouts.js';
import { type Clock, RealClock } from './clock.js';
import { type Dest, type Name, type UntypedDest, VIA, type Via } from './context.js';
import {
  AlreadyRegisteredError,
  CallSelfError,
  describe,
  ExitError,
  InitError,
  InvalidArgumentError,
  MailboxFullError,
  NoProcessError,
  RuntimeStoppedError,
  TimeoutError,
} from './errors.js';
import { AgentRef, type AnyRef, isPid, localProcess, type Pid } from './pid.js';
import { type AnyBehaviour, CallRecord, Kind, Overflow, Process, Status } from './process.js';
import { ProcessTable } from './process-table.js';
import { Priority, type PriorityName, Scheduler } from './scheduler.js';
import { estimateSize } from './size.js';
import { Telemetry } from './telemetry.js';

export type OverflowPolicy = 'reject' | 'drop_oldest' | 'drop_newest';

export interface MailboxOptions {
  /** Most messages the mailbox holds. */
  capacity: number;
  /** What happens to a message that does not fit (default `reject`). */
  overflow?: OverflowPolicy;
}

export interface SpawnOptions {
  /** Register the agent under this name (unique in the runtime; removed when it exits). */
  name?: Name;
  /** Link the new agent to the spawning agent (only through `ctx.spawn`/`ctx.spawnLink`). */
  link?: boolean;
  priority?: PriorityName;
  /** Bound the mailbox. Unbounded when absent. */
  mailbox?: MailboxOptions;
  /** Start with exits trapped (same as calling `ctx.trapExit(true)` in init). */
  trapExit?: boolean;
}

export interface RuntimeOptions {
  /** Node name in pids. Default: a fresh unique name per runtime. */
  node?: string;
  /** Thread number in pids. Default 0. */
  thread?: number;
  /** Default: the real clock. Tests pass a VirtualClock. */
  clock?: Clock;
  telemetry?: Telemetry;
  /** Most messages one agent runs before others get a turn. Default 200. */
  reductions?: number;
  /** Longest stretch (ms) of agent work before yielding to the event loop. Default 5. */
  sliceMs?: number;
  /** Default call timeout in ms. Default 5000. */
  callTimeoutMs?: number;
}

export interface TimerRef {
  readonly timerId: number;
}

export type AgentStatus = 'starting' | 'idle' | 'runnable' | 'running' | 'awaiting' | 'exiting' | 'exited';

/** What `info` reports of an agent. */
export interface AgentInfo {
  pid: Pid;
  name: Name | undefined;
  status: AgentStatus;
  priority: PriorityName;
  mailboxLength: number;
  mailboxCapacity: number;
  /** What a full mailbox does with one more message (the spawn option; `reject` when unbounded). */
  mailboxOverflow: OverflowPolicy;
  dropped: number;
  reductions: number;
  links: number;
  monitors: number;
  trapExit: boolean;
  parent: Pid | undefined;
  /** A rough estimate of the state's heap size in bytes (only when asked for). */
  stateBytes?: number;
}

const STATUS_NAMES: AgentStatus[] = [
  'starting',
  'idle',
  'runnable',
  'running',
  'awaiting',
  'exiting',
  'exited',
];
const PRIORITY_NAMES: PriorityName[] = ['high', 'normal', 'low'];
const SPAWN_KEYS = new Set(['name', 'link', 'priority', 'mailbox', 'trapExit']);
const OVERFLOW: Record<OverflowPolicy, Overflow> = {
  reject: Overflow.Reject,
  drop_oldest: Overflow.DropOldest,
  drop_newest: Overflow.DropNewest,
};

const resolvedPromise = Promise.resolve();

const EV_SPAWN = ['mabeam', 'agent', 'spawn'] as const;
const EV_EXIT = ['mabeam', 'agent', 'exit'] as const;
const EV_CRASH = ['mabeam', 'agent', 'crash'] as const;
const EV_UNHANDLED = ['mabeam', 'agent', 'unhandled'] as const;
const EV_OVERFLOW = ['mabeam', 'mailbox', 'overflow'] as const;
const EV_CALL = ['mabeam', 'call', 'stop'] as const;

interface Timer {
  handle: ReturnType<Clock['setTimeout']>;
  at: number;
  owner: Process | undefined;
}

interface PendingSignal {
  target: Process;
  from: Pid;
  reason: unknown;
  viaLink: boolean;
}

export class Runtime {
  readonly node: string;
  readonly thread: number;
  readonly clock: Clock;
  readonly telemetry: Telemetry;
  /** The pseudo-pid that messages and exit signals from outside any agent come from. */
  readonly pid: AgentRef;
  /** @internal */
  readonly scheduler: Scheduler;
  /** @internal the agent whose callback is running, if any */
  current: Process | null = null;
  readonly #procs = new ProcessTable();
  /** Name -> ref (not process): whereis, the hot read, then returns without another hop. */
  readonly #names = new Map<Name, AnyRef>();
  readonly #timers = new Map<number, Timer>();
  readonly #timeouts: CallTimeouts;
  readonly #callTimeoutMs: number;
  #nextTimer = 0;
  #nextMonitor = 0;
  #stopped = false;
  #signals: PendingSignal[] | null = null;
  #shutdown: Promise<void> | undefined;
  /** An inline run happened in the current synchronous stretch (cleared by the next microtask). */
  #syncRun = false;
  readonly #endSyncRun = () => {
    this.#syncRun = false;
  };

  constructor(options: RuntimeOptions = {}) {
    checkRuntimeOptions(options);
    this.node = options.node ?? `mabeam-${globalThis.crypto.randomUUID().slice(0, 8)}`;
    this.thread = options.thread ?? 0;
    this.clock = options.clock ?? new RealClock();
    this.telemetry = options.telemetry ?? new Telemetry();
    this.scheduler = new Scheduler(options.reductions ?? 200, options.sliceMs ?? 5);
    this.#callTimeoutMs = options.callTimeoutMs ?? 5000;
    this.#timeouts = new CallTimeouts(this.clock);
    this.pid = new AgentRef(this.node, this.thread, 0);
  }

  // ---- spawning ------------------------------------------------------------------------------

  /** Start an agent. Resolves once `init` succeeded; rejects with InitError if it threw. */
  spawn<A, S, C, R, K, I>(
    behaviour: Behaviour<A, S, C, R, K, I>,
    args: A,
    options?: SpawnOptions,
  ): Promise<AgentRef<C, R, K, I>> {
    return this.spawnFrom(null, behaviour, args, options);
  }

  /**
   * Start an agent and return its ref at once, like Erlang's spawn. With a synchronous init the
   * agent is fully started on return (and an init that throws makes spawnSync throw InitError);
   * with an async init it is `starting`, messages wait in its mailbox, and if init then fails the
   * agent exits with the InitError as its reason.
   */
  spawnSync<A, S, C, R, K, I>(
    behaviour: Behaviour<A, S, C, R, K, I>,
    args: A,
    options?: SpawnOptions,
  ): AgentRef<C, R, K, I> {
    const proc = this.#create(null, behaviour, options);
    const state = this.#init(proc, args);
    if (state instanceof Promise) {
      state.then(
        (s) => this.#started(proc, s),
        (error) => {
          if (proc.status === Status.Starting) proc.die(new InitError(proc.toString(), error));
        },
      );
    } else this.#started(proc, state);
    return proc.ref as AgentRef<C, R, K, I>;
  }

  /** @internal */
  spawnFrom<A, S, C, R, K, I>(
    parent: Process | null,
    behaviour: Behaviour<A, S, C, R, K, I>,
    args: A,
    options: SpawnOptions | undefined,
  ): Promise<AgentRef<C, R, K, I>> {
    let proc: Process;
    let state: unknown;
    try {
      proc = this.#create(parent, behaviour, options);
      state = this.#init(proc, args);
    } catch (error) {
      return Promise.reject(error);
    }
    if (state instanceof Promise) {
      return new Promise((resolve, reject) => {
        proc.startSettle = (reason) => reject(new ExitError(proc.toString(), reason));
        state.then(
          (s) => {
            if (proc.status !== Status.Starting) return;
            proc.startSettle = null;
            this.#started(proc, s);
            resolve(proc.ref as AgentRef<C, R, K, I>);
          },
          (error) => {
            if (proc.status !== Status.Starting) return;
            this.#abortStart(proc, error);
            reject(new InitError(proc.toString(), error));
          },
        );
      });
    }
    this.#started(proc, state);
    return Promise.resolve(proc.ref as AgentRef<C, R, K, I>);
  }

  #create(parent: Process | null, behaviour: AnyBehaviour, options: SpawnOptions | undefined): Process {
    if (this.#stopped) throw new RuntimeStoppedError(this.node);
    if (behaviour === null || typeof behaviour !== 'object' || typeof behaviour.init !== 'function') {
      throw new InvalidArgumentError('behaviour', 'must be an object with an init function', behaviour);
    }
    if (parent !== null && parent.status === Status.Dead) {
      throw new NoProcessError(parent.toString(), 'spawn from an agent that has exited');
    }
    const id = this.#procs.nextId();
    const proc = new Process(this, id, behaviour);
    if (options !== undefined) this.#applyOptions(proc, parent, options);
    if (parent !== null) proc.parent = parent;
    this.#procs.add(proc, id);
    return proc;
  }

  /** Run init as the new agent. Throws InitError (after removing the agent) if init throws. */
  #init(proc: Process, args: unknown): unknown {
    const prev = this.current;
    this.current = proc;
    try {
      return proc.behaviour.init(args, proc);
    } catch (error) {
      this.#abortStart(proc, error);
      throw new InitError(proc.toString(), error);
    } finally {
      this.current = prev;
    }
  }

  #applyOptions(proc: Process, parent: Process | null, options: SpawnOptions): void {
    checkSpawnOptions(options);
    const { name, link, priority, mailbox, trapExit } = options;
    if (priority !== undefined) proc.priority = Priority[priority];
    if (mailbox !== undefined) {
      proc.capacity = mailbox.capacity;
      proc.overflow = OVERFLOW[mailbox.overflow ?? 'reject'];
    }
    if (trapExit !== undefined) proc.trapping = trapExit;
    if (link === true && parent === null) {
      throw new InvalidArgumentError(
        'spawn option "link"',
        'needs a spawning agent (use ctx.spawn or ctx.spawnLink)',
      );
    }
    if (name !== undefined) this.#register(name, proc);
    if (link === true) (parent as Process).link(proc.ref);
  }

  #started(proc: Process, state: unknown): void {
    if (proc.status !== Status.Starting) return;
    proc.state = state;
    proc.status = Status.Idle;
    if (proc.mailbox !== null && proc.mailbox.length > 0) this.scheduler.schedule(proc);
    const tel = this.telemetry;
    if (tel.enabled) tel.execute(EV_SPAWN, { count: 1 }, { pid: proc.ref, name: proc.name });
  }

  /** init failed: the agent never lived, so links are dropped without exit signals. */
  #abortStart(proc: Process, error: unknown): void {
    if (proc.links !== null) {
      for (const other of proc.links) other.links?.delete(proc);
      proc.links = null;
    }
    proc.startSettle = null;
    proc.die(error);
  }

  // ---- messaging -----------------------------------------------------------------------------

  /**
   * Request/reply. Rejects with NoProcessError at once if the target is gone, with ExitError if it
   * exits before replying, with TimeoutError after `timeoutMs` (default 5000; Infinity allowed).
   */
  call<C, R>(dest: AgentRef<C, R, never, never>, msg: NoInfer<C>, timeoutMs?: number): Promise<R>;
  call<R = unknown>(dest: UntypedDest, msg: unknown, timeoutMs?: number): Promise<R>;
  call(dest: Dest, msg: unknown, timeoutMs: number = this.#callTimeoutMs): Promise<unknown> {
    const proc = this.#lookup(dest);
    if (proc === undefined || proc.status >= Status.Exiting) {
      return Promise.reject(new NoProcessError(destName(dest)));
    }
    if (proc === this.current) return Promise.reject(new CallSelfError(proc.toString()));
    if (timeoutMs !== this.#callTimeoutMs && !(timeoutMs > 0)) {
      return Promise.reject(
        new InvalidArgumentError('call timeout', 'must be a positive number of ms', timeoutMs),
      );
    }
    const rec = new CallRecord(msg, proc, timeoutMs);
    const tel = this.telemetry;
    const started = tel.enabled && tel.listens(EV_CALL) ? this.clock.now() : -1;
    if (this.#canRunNow(proc) && this.scheduler.charge(1)) {
      this.#runNow(proc, Kind.Call, rec);
    } else {
      try {
        proc.enqueue(Kind.Call, rec);
      } catch (error) {
        return Promise.reject(error);
      }
    }
    if (!rec.settled) this.#timeouts.add(rec);
    const p = rec.promise();
    if (started >= 0) {
      const report = (outcome: string) => {
        tel.execute(EV_CALL, { duration: this.clock.now() - started }, { pid: proc.ref, outcome });
      };
      p.then(
        () => report('ok'),
        (e: unknown) => report(e instanceof TimeoutError ? 'timeout' : 'error'),
      );
    }
    return p;
  }

  /**
   * Fire-and-forget to handleCast. Returns false if the target is gone or the message was
   * dropped by its overflow policy; throws MailboxFullError under the reject policy.
   */
  cast<K>(dest: AgentRef<never, unknown, K, never>, msg: NoInfer<K>): boolean;
  cast(dest: UntypedDest, msg: unknown): boolean;
  cast(dest: Dest, msg: unknown): boolean {
    return this.#deliver(dest, Kind.Cast, msg);
  }

  /** A plain message to handleInfo. Same delivery rules as `cast`. */
  send<I>(dest: AgentRef<never, unknown, never, I>, msg: NoInfer<I>): boolean;
  send(dest: UntypedDest, msg: unknown): boolean;
  send(dest: Dest, msg: unknown): boolean {
    return this.#deliver(dest, Kind.Info, msg);
  }

  #deliver(dest: Dest, kind: Kind, msg: unknown): boolean {
    const proc = this.#lookup(dest);
    if (proc === undefined || proc.status >= Status.Exiting) return false;
    if (this.#canRunNow(proc) && this.#inlineAllowed()) {
      this.#runNow(proc, kind, msg);
      return true;
    }
    return proc.enqueue(kind, msg);
  }

  /**
   * Inline runs within one synchronous stretch of the caller's code are free: the caller holds
   * the thread anyway, and queueing would only pile up a mailbox. Once a microtask boundary has
   * passed (a chain of async handlers passing messages, say), they count toward the scheduler's
   * turn like calls do, so such a chain still yields to the event loop.
   */
  #inlineAllowed(): boolean {
    if (this.#syncRun) return true;
    if (!this.scheduler.charge(1)) return false;
    this.#syncRun = true;
    resolvedPromise.then(this.#endSyncRun);
    return true;
  }

  /**
   * A message from outside any agent to an idle agent, while nothing else is runnable, is run at
   * once: that is exactly what the scheduler would do next, minus the queueing. Messages sent from
   * inside an agent's callback are always queued, so handlers never nest. Calls also count toward
   * the time slice: a caller awaiting call after call resumes by microtask and would otherwise
   * keep the event loop from ever turning, so past the slice its calls queue until the scheduler
   * has yielded. A synchronous loop of casts holds the thread by itself; queueing would not free it.
   */
  #canRunNow(proc: Process): boolean {
    return proc.status === Status.Idle && this.current === null && this.scheduler.idle;
  }

  #runNow(proc: Process, kind: Kind, msg: unknown): void {
    proc.status = Status.Running;
    proc.dispatch(kind, msg);
    proc.reductions++;
    this.current = null;
    proc.afterAsync();
  }

  /**
   * Ask an agent to stop with `reason` after the messages already in its mailbox; terminate runs.
   * Resolves when it has exited.
   */
  stop(dest: Dest, reason: unknown = 'normal', timeoutMs = Number.POSITIVE_INFINITY): Promise<void> {
    const proc = this.#lookup(dest);
    if (proc === undefined || proc.status >= Status.Exiting) {
      return Promise.reject(new NoProcessError(destName(dest)));
    }
    // The stop request would queue behind the very handler waiting for it.
    if (proc === this.current) return Promise.reject(new CallSelfError(proc.toString()));
    if (!(timeoutMs > 0)) {
      return Promise.reject(
        new InvalidArgumentError('stop timeout', 'must be a positive number of ms', timeoutMs),
      );
    }
    return new Promise((resolve, reject) => {
      let timer: ReturnType<Clock['setTimeout']> | null = null;
      if (timeoutMs !== Number.POSITIVE_INFINITY) {
        timer = this.clock.setTimeout(
          () => reject(new TimeoutError(`stop of ${proc}`, timeoutMs)),
          timeoutMs,
        );
      }
      proc.enqueue(
        Kind.Stop,
        {
          reason,
          resolve: () => {
            if (timer !== null) this.clock.clearTimeout(timer);
            resolve();
          },
        },
        true,
      );
    });
  }

  /**
   * Send an exit signal. `'kill'` kills unconditionally (reason `killed`); otherwise an agent that
   * traps exits gets an EXIT message, and one that does not dies (`normal` is ignored).
   */
  exit(dest: AnyRef | Pid | Name, reason: unknown, from: Pid = this.pid): void {
    const proc = this.#lookup(dest);
    if (proc === undefined) return;
    this.exitSignal(proc, from, reason, false);
  }

  /** Kill an agent at once; terminate does not run. */
  kill(dest: AnyRef | Pid | Name): void {
    this.exit(dest, 'kill');
  }

  /**
   * Resolves with the agent's exit reason when it exits; at once if it already has (with its
   * reason when `dest` is a ref from this runtime, else `'noproc'`).
   */
  awaitExit(dest: AnyRef | Pid | Name): Promise<unknown> {
    const proc = this.#lookup(dest);
    if (proc === undefined) {
      // A ref made by this runtime still knows how its agent ended.
      const gone = dest instanceof AgentRef ? (localProcess(dest) as Process | undefined) : undefined;
      if (gone !== undefined && gone.runtime === this && gone.status === Status.Dead) {
        return Promise.resolve(gone.exitReason);
      }
      return Promise.resolve('noproc');
    }
    return new Promise((resolve) => proc.addExitWaiter(resolve));
  }

  /**
   * Run `hook(reason)` synchronously when the agent exits, before any monitor, link, caller or
   * `awaitExit` learns of the exit: for services bound to an agent (registry entries, owned
   * tables, pooled resources) that must be gone by then. Runs at once if the agent is already
   * gone. Returns a function that removes the hook. A hook that throws is reported through
   * telemetry (`['mabeam','agent','crash']`, callback `exit hook`) and the exit goes on.
   */
  onExit(dest: AnyRef | Pid | Name, hook: (reason: unknown) => void): () => void {
    if (typeof hook !== 'function') throw new InvalidArgumentError('onExit hook', 'must be a function', hook);
    const proc = this.#lookup(dest);
    if (proc === undefined || proc.status === Status.Dead) {
      const gone = dest instanceof AgentRef ? (localProcess(dest) as Process | undefined) : undefined;
      try {
        hook(gone !== undefined && gone.runtime === this ? gone.exitReason : 'noproc');
      } catch (error) {
        const tel = this.telemetry;
        if (tel.enabled) tel.execute(EV_CRASH, {}, { pid: dest, error, callback: 'exit hook' });
      }
      return () => {};
    }
    if (proc.exitHooks === null) proc.exitHooks = new Set();
    const hooks = proc.exitHooks;
    hooks.add(hook);
    return () => {
      hooks.delete(hook);
    };
  }

  /**
   * Resolves once the agent's mailbox holds fewer than `below` messages (at once if it already
   * does), or the agent is gone: for producers that pace themselves instead of piling messages up
   * (event store subscriptions, broadcasts). Event-driven: checked as the agent takes messages.
   */
  whenMailboxBelow(dest: AnyRef | Pid | Name, below: number): Promise<void> {
    if (!(below >= 1)) {
      return Promise.reject(
        new InvalidArgumentError('whenMailboxBelow length', 'must be a number >= 1', below),
      );
    }
    const proc = this.#lookup(dest);
    if (proc === undefined || proc.status >= Status.Exiting || proc.mailboxLength < below)
      return Promise.resolve();
    return new Promise((resolve) => {
      const x = proc.ext();
      if (x.lowWater === null) x.lowWater = [];
      x.lowWater.push({ below, wake: resolve });
    });
  }

  isAlive(dest: AnyRef | Pid | Name): boolean {
    const proc = this.#lookup(dest);
    return proc !== undefined && proc.status < Status.Exiting;
  }

  // ---- names ---------------------------------------------------------------------------------

  /** Register `name` for an agent. Throws AlreadyRegisteredError if the name is taken. */
  register(name: Name, ref: AnyRef | Pid): void {
    const proc = this.#lookup(ref);
    if (proc === undefined || proc.status >= Status.Exiting) throw new NoProcessError(destName(ref));
    this.#register(name, proc);
  }

  #register(name: Name, proc: Process): void {
    const t = typeof name;
    if (t !== 'string' && t !== 'number' && t !== 'symbol') {
      throw new InvalidArgumentError('name', 'must be a string, number or symbol', name);
    }
    const holder = this.#names.get(name);
    if (holder !== undefined) throw new AlreadyRegisteredError(name, holder.toString());
    if (proc.name !== undefined) {
      throw new InvalidArgumentError('name', `${proc} is already registered as ${describe(proc.name)}`, name);
    }
    this.#names.set(name, proc.ref);
    proc.name = name;
  }

  unregister(name: Name): boolean {
    const ref = this.#names.get(name);
    if (ref === undefined) return false;
    this.#names.delete(name);
    (localProcess(ref) as Process).name = undefined;
    return true;
  }

  /** The agent registered under `name`, if any. */
  whereis(name: Name): AnyRef | undefined {
    return this.#names.get(name);
  }

  registered(): Name[] {
    return [...this.#names.keys()];
  }

  // ---- timers --------------------------------------------------------------------------------

  /** Send `msg` to `dest`'s handleInfo after `ms` on the runtime clock. */
  sendAfter<I>(dest: AgentRef<never, unknown, never, I>, msg: NoInfer<I>, ms: number): TimerRef;
  sendAfter(dest: UntypedDest, msg: unknown, ms: number): TimerRef;
  sendAfter(dest: Dest, msg: unknown, ms: number): TimerRef {
    if (!(ms >= 0) || !Number.isFinite(ms)) {
      throw new InvalidArgumentError('sendAfter delay', 'must be a finite number of ms >= 0', ms);
    }
    const id = ++this.#nextTimer;
    const owner = this.#lookup(dest);
    const handle = this.clock.setTimeout(() => {
      this.#timers.delete(id);
      owner?.timers?.delete(id);
      try {
        this.send(dest as UntypedDest, msg);
      } catch (error) {
        // A full `reject` mailbox, or a Via resolver that threw: a timer has no sender to tell,
        // and throwing from a clock callback would take the process down, so the message is
        // dropped, counted, and reported.
        const target = error instanceof MailboxFullError ? this.#lookup(dest) : undefined;
        if (target !== undefined) target.dropped++;
        else if (owner !== undefined) this.crashed(owner, error, 'sendAfter delivery');
      }
    }, ms);
    this.#timers.set(id, { handle, at: this.clock.now() + ms, owner });
    if (owner !== undefined) {
      if (owner.timers === null) owner.timers = new Set();
      owner.timers.add(id);
    }
    return { timerId: id };
  }

  /** Cancel a timer. Returns the ms it had left, or false if it already fired or was cancelled. */
  cancelTimer(timer: TimerRef): number | false {
    const t = this.#timers.get(timer.timerId);
    if (t === undefined) return false;
    this.cancelTimerById(timer.timerId);
    t.owner?.timers?.delete(timer.timerId);
    return Math.max(0, t.at - this.clock.now());
  }

  /** @internal */
  cancelTimerById(id: number): void {
    const t = this.#timers.get(id);
    if (t === undefined) return;
    this.#timers.delete(id);
    this.clock.clearTimeout(t.handle);
  }

  // ---- introspection -------------------------------------------------------------------------

  /**
   * The agent whose callback (init, a handler's synchronous part, terminate) is running, or
   * undefined outside any agent. Services that act on behalf of their caller without a mailbox
   * (owned tables' access modes) use it to learn who the caller is. After an `await` inside an
   * async handler the agent no longer runs on the stack, so there it is undefined (or another
   * agent): such code must pass its context explicitly.
   */
  self(): AnyRef | undefined {
    return this.current === null ? undefined : this.current.ref;
  }

  /** Number of live agents. */
  get count(): number {
    return this.#procs.size;
  }

  /** Status and figures of one agent, or undefined if it is gone. */
  info(
    dest: AnyRef | Pid | Name,
    options: { stateSize?: boolean } = { stateSize: true },
  ): AgentInfo | undefined {
    const proc = this.#lookup(dest);
    if (proc === undefined || proc.status === Status.Dead) return undefined;
    return infoOf(proc, options.stateSize === true);
  }

  /** Every live agent with its figures (state sizes only when asked: they cost a walk each). */
  processes(options: { stateSize?: boolean } = {}): AgentInfo[] {
    const out: AgentInfo[] = [];
    for (const proc of this.#procs.values()) out.push(infoOf(proc, options.stateSize === true));
    return out;
  }

  /** Resolve a ref, pid or name to this runtime's process. @internal */
  resolve(dest: unknown): Process | undefined {
    return this.#lookup(dest as Dest);
  }

  #lookup(dest: Dest): Process | undefined {
    if (dest instanceof AgentRef) {
      const proc = localProcess(dest) as Process | undefined;
      if (proc !== undefined) return proc.runtime === this && proc.status !== Status.Dead ? proc : undefined;
    } else if (typeof dest !== 'object' || dest === null) {
      const ref = this.#names.get(dest as Name);
      return ref === undefined ? undefined : (localProcess(ref) as Process);
    } else if (typeof (dest as Via)[VIA] === 'function') {
      const ref = (dest as Via)[VIA](this);
      return ref === undefined || !(ref instanceof AgentRef) ? undefined : this.#lookup(ref);
    }
    if (!isPid(dest) || dest.node !== this.node || dest.thread !== this.thread) return undefined;
    return this.#procs.get(dest.id);
  }

  /** @internal */
  nextMonitorId(): number {
    return ++this.#nextMonitor;
  }

  // ---- exits (internal) ----------------------------------------------------------------------

  /** @internal deliver an exit signal; iterative, so long chains of links cannot overflow the stack */
  exitSignal(target: Process | AnyRef | Pid, from: Pid, reason: unknown, viaLink: boolean): void {
    const proc = target instanceof Process ? target : this.#lookup(target);
    if (proc === undefined) return;
    const signal: PendingSignal = { target: proc, from, reason, viaLink };
    if (this.#signals !== null) {
      this.#signals.push(signal);
      return;
    }
    const queue: PendingSignal[] = [signal];
    this.#signals = queue;
    try {
      for (let i = 0; i < queue.length; i++) this.#deliverSignal(queue[i] as PendingSignal);
    } finally {
      this.#signals = null;
    }
  }

  #deliverSignal({ target, from, reason, viaLink }: PendingSignal): void {
    // 'kill' must also reach an agent stuck in its terminate (a supervisor's shutdown timeout
    // relies on it); every other signal is moot once the agent is exiting.
    if (!viaLink && reason === 'kill') {
      if (target.status !== Status.Dead) target.die('killed');
    } else if (target.status >= Status.Exiting) {
      return;
    } else if (target.trapping) {
      target.enqueue(Kind.Info, { type: 'EXIT', from, reason }, true);
    } else if (reason === 'normal') {
      if (target.ref.equals(from)) target.die('normal');
    } else {
      target.die(reason);
    }
  }

  /** @internal */
  removeProcess(proc: Process): void {
    this.#procs.remove(proc);
    if (proc.name !== undefined && this.#names.get(proc.name as Name) === proc.ref)
      this.#names.delete(proc.name as Name);
  }

  /** @internal a bounded mailbox is full; true means "enqueue anyway" (after dropping the oldest) */
  overflowed(proc: Process, kind: Kind, msg: unknown): boolean {
    const tel = this.telemetry;
    const policy = proc.overflow;
    if (tel.enabled) {
      tel.execute(
        EV_OVERFLOW,
        { length: proc.mailboxLength },
        { pid: proc.ref, policy: ['reject', 'drop_oldest', 'drop_newest'][policy] },
      );
    }
    if (policy === Overflow.Reject) throw new MailboxFullError(proc.toString(), proc.capacity);
    proc.dropped++;
    if (policy === Overflow.DropNewest) {
      if (kind === Kind.Call)
        (msg as CallRecord).reject(new MailboxFullError(proc.toString(), proc.capacity));
      return false;
    }
    const box = proc.mailbox!;
    let oldKind = box.peek() as Kind;
    let old: unknown;
    if (oldKind !== Kind.Signal && oldKind !== Kind.Stop) {
      box.shift();
      old = box.shift();
    } else {
      // System messages (DOWN, EXIT, stop requests) are never dropped: drop the oldest other one.
      const items = box.toArray();
      let i = 0;
      while (i < items.length && (items[i] === Kind.Signal || items[i] === Kind.Stop)) i += 2;
      if (i >= items.length) {
        if (kind === Kind.Call)
          (msg as CallRecord).reject(new MailboxFullError(proc.toString(), proc.capacity));
        return false;
      }
      oldKind = items[i] as Kind;
      old = items[i + 1];
      items.splice(i, 2);
      box.clear();
      for (const item of items) box.push(item);
    }
    if (oldKind === Kind.Call)
      (old as CallRecord).reject(new MailboxFullError(proc.toString(), proc.capacity));
    return true;
  }

  /** @internal */
  unhandled(proc: Process, what: string, msg: unknown): void {
    const tel = this.telemetry;
    if (tel.enabled) tel.execute(EV_UNHANDLED, {}, { pid: proc.ref, kind: what, message: msg });
  }

  /** @internal */
  crashed(proc: Process, error: unknown, callback = 'handler'): void {
    const tel = this.telemetry;
    if (tel.enabled) tel.execute(EV_CRASH, {}, { pid: proc.ref, error, callback });
  }

  /** @internal */
  exited(proc: Process, reason: unknown): void {
    const tel = this.telemetry;
    if (tel.enabled) tel.execute(EV_EXIT, {}, { pid: proc.ref, reason, normal: isNormalExit(reason) });
  }

  // ---- shutdown ------------------------------------------------------------------------------

  get stopped(): boolean {
    return this.#stopped;
  }

  /**
   * Stop every agent: each top-level agent (supervisors shut their own children down in order) is
   * asked to stop with reason `shutdown`, newest first, and awaited before the next one; whatever
   * is still alive when `timeoutMs` (for the whole shutdown) runs out is killed. Timers and call
   * deadlines are cleared. Spawning afterwards is refused; calling it again joins the first call.
   */
  shutdown(timeoutMs = 5000): Promise<void> {
    if (!(timeoutMs >= 0)) {
      return Promise.reject(
        new InvalidArgumentError('shutdown timeout', 'must be a number of ms >= 0', timeoutMs),
      );
    }
    // A second call joins the first rather than killing what the first is waiting for.
    this.#shutdown ??= this.#shutdownAll(timeoutMs);
    return this.#shutdown;
  }

  async #shutdownAll(timeoutMs: number): Promise<void> {
    this.#stopped = true;
    const deadline = this.clock.now() + timeoutMs;
    // Top level: no parent, or a parent already gone. Newest first, one at a time, so a newer
    // agent's terminate can still use the older ones; supervisors stop their own trees in order.
    const top = [...this.#procs.values()].filter((p) => p.parent === null || p.parent.status === Status.Dead);
    for (let i = top.length - 1; i >= 0; i--) {
      const proc = top[i] as Process;
      if (proc.status === Status.Dead) continue;
      if (proc.status === Status.Starting) proc.die('shutdown');
      else if (proc.status === Status.Idle && this.current === null) {
        // Idle and we are outside any agent: stopping it now is what its stop message would do.
        proc.terminate('shutdown');
      } else if (proc.status < Status.Exiting) {
        proc.enqueue(Kind.Stop, { reason: 'shutdown', resolve: () => {} }, true);
      }
      if ((proc.status as Status) === Status.Dead) continue;
      const left = deadline - this.clock.now();
      if (left <= 0) break;
      await this.#exitWithin(proc, left);
    }
    for (const proc of [...this.#procs.values()].reverse()) proc.die('killed');
    for (const id of [...this.#timers.keys()]) this.cancelTimerById(id);
    this.#timeouts.clear();
  }

  /** Resolves when `proc` has exited or `ms` have passed on the runtime clock. */
  #exitWithin(proc: Process, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = this.clock.setTimeout(resolve, ms);
      proc.addExitWaiter(() => {
        this.clock.clearTimeout(timer);
        resolve();
      });
    });
  }
}

function infoOf(proc: Process, withState: boolean): AgentInfo {
  let monitors = 0;
  if (proc.watchers !== null) monitors += proc.watchers.size;
  const info: AgentInfo = {
    pid: proc.ref.toJSON(),
    name: proc.name as Name | undefined,
    status: STATUS_NAMES[proc.status] as AgentStatus,
    priority: PRIORITY_NAMES[proc.priority] as PriorityName,
    mailboxLength: proc.mailboxLength,
    mailboxCapacity: proc.capacity,
    mailboxOverflow: (['reject', 'drop_oldest', 'drop_newest'] as const)[proc.overflow] as OverflowPolicy,
    dropped: proc.dropped,
    reductions: proc.reductions,
    links: proc.links === null ? 0 : proc.links.size,
    monitors,
    trapExit: proc.trapping,
    parent: proc.parent === null ? undefined : proc.parent.ref.toJSON(),
  };
  if (withState) info.stateBytes = estimateSize(proc.state);
  return info;
}

/**
 * Check spawn options without spawning (supervisors check their children's up front). Throws
 * InvalidArgumentError naming the option and the value.
 */
export function checkSpawnOptions(options: unknown): asserts options is SpawnOptions {
  if (options === null || typeof options !== 'object') {
    throw new InvalidArgumentError('spawn options', 'must be an object', options);
  }
  for (const key of Object.keys(options)) {
    if (!SPAWN_KEYS.has(key))
      throw new InvalidArgumentError(`spawn option ${JSON.stringify(key)}`, 'unknown option');
  }
  const { name, link, priority, mailbox, trapExit } = options as Record<string, unknown>;
  if (priority !== undefined && !(typeof priority === 'string' && Object.hasOwn(Priority, priority))) {
    throw new InvalidArgumentError('spawn option "priority"', 'must be high, normal or low', priority);
  }
  if (mailbox !== undefined) {
    if (mailbox === null || typeof mailbox !== 'object') {
      throw new InvalidArgumentError('spawn option "mailbox"', 'must be {capacity, overflow?}', mailbox);
    }
    const { capacity, overflow } = mailbox as Record<string, unknown>;
    if (!Number.isInteger(capacity) || (capacity as number) < 1) {
      throw new InvalidArgumentError(
        'spawn option "mailbox.capacity"',
        'must be a positive integer',
        capacity,
      );
    }
    if (overflow !== undefined && !(typeof overflow === 'string' && Object.hasOwn(OVERFLOW, overflow))) {
      throw new InvalidArgumentError(
        'spawn option "mailbox.overflow"',
        'must be reject, drop_oldest or drop_newest',
        overflow,
      );
    }
  }
  if (trapExit !== undefined && typeof trapExit !== 'boolean') {
    throw new InvalidArgumentError('spawn option "trapExit"', 'must be a boolean', trapExit);
  }
  if (link !== undefined && typeof link !== 'boolean') {
    throw new InvalidArgumentError('spawn option "link"', 'must be a boolean', link);
  }
  const t = typeof name;
  if (name !== undefined && t !== 'string' && t !== 'number' && t !== 'symbol') {
    throw new InvalidArgumentError('name', 'must be a string, number or symbol', name);
  }
}

function destName(dest: unknown): string {
  if (dest instanceof AgentRef) return dest.toString();
  if (isPid(dest)) return `<${dest.node}.${dest.thread}.${dest.id}>`;
  if (dest !== null && typeof dest === 'object' && VIA in dest) {
    const resolver = (dest as Via)[VIA];
    return `via ${resolver.name || 'resolver'} ${describe({ ...dest })}`;
  }
  return `name ${describe(dest)}`;
}

function checkRuntimeOptions(o: RuntimeOptions): void {
  if (o === null || typeof o !== 'object')
    throw new InvalidArgumentError('runtime options', 'must be an object', o);
  if (o.node !== undefined && (typeof o.node !== 'string' || o.node === '')) {
    throw new InvalidArgumentError('runtime option "node"', 'must be a non-empty string', o.node);
  }
  if (o.thread !== undefined && !(Number.isInteger(o.thread) && o.thread >= 0)) {
    throw new InvalidArgumentError('runtime option "thread"', 'must be an integer >= 0', o.thread);
  }
  if (o.reductions !== undefined && !(Number.isInteger(o.reductions) && o.reductions >= 1)) {
    throw new InvalidArgumentError('runtime option "reductions"', 'must be an integer >= 1', o.reductions);
  }
  if (o.sliceMs !== undefined && !(o.sliceMs > 0)) {
    throw new InvalidArgumentError('runtime option "sliceMs"', 'must be a positive number', o.sliceMs);
  }
  if (o.callTimeoutMs !== undefined && !(o.callTimeoutMs > 0)) {
    throw new InvalidArgumentError(
      'runtime option "callTimeoutMs"',
      'must be a positive number',
      o.callTimeoutMs,
    );
  }
}
