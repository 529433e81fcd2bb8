/**
 * The generic agent loop: one process per agent. It owns the mailbox, runs one message at a time
 * through the behaviour's callbacks (one dispatch wrapper, so user code can never break the loop),
 * and carries out exits: links, monitors, pending callers.
 *
 * Internal: the public surface is Runtime and AgentContext.
 */
import {
  type Behaviour,
  CallReply,
  type DownMessage,
  type ExitMessage,
  type From,
  type MonitorRef,
  NoReply,
  Stop,
} from './behaviour.js';
import type { CallTimeouts } from './call-timeouts.js';
import type { AgentContext, Dest, UntypedDest } from './context.js';
import {
  BadReturnError,
  CallSelfError,
  ExitError,
  InvalidArgumentError,
  NoProcessError,
  NotImplementedError,
} from './errors.js';
import { AgentRef, type AnyRef, type Pid } from './pid.js';
import { Queue } from './queue.js';
import type { Runtime, SpawnOptions, TimerRef } from './runtime.js';

export enum Status {
  Starting = 0,
  Idle = 1,
  Scheduled = 2,
  Running = 3,
  Awaiting = 4,
  Exiting = 5,
  Dead = 6,
}

export enum Kind {
  Call = 0,
  Cast = 1,
  Info = 2,
  Stop = 3,
  /** A DOWN or EXIT from the runtime: delivered like Info, but never dropped by an overflow policy. */
  Signal = 4,
}

export enum Overflow {
  Reject = 0,
  DropOldest = 1,
  DropNewest = 2,
}

/**
 * One pending call. It is the `from` handed to handleCall. The promise is created lazily: a call
 * answered synchronously never pays for a promise executor.
 */
export class CallRecord {
  // Set in the constructor rather than by class-field initializers: one allocation per call.
  declare settled: boolean;
  declare resolveFn: ((v: unknown) => void) | null;
  declare rejectFn: ((e: unknown) => void) | null;
  declare outcome: unknown;
  declare failed: boolean;
  declare deadline: number;
  /** The deadline keeper holding this call, told when it settles. */
  declare deadlines: CallTimeouts | null;
  /** The request; dropped once settled so a call kept for its deadline holds no payload. */
  declare msg: unknown;
  declare readonly target: Process;
  declare readonly timeoutMs: number;

  constructor(msg: unknown, target: Process, timeoutMs: number) {
    this.settled = false;
    this.resolveFn = null;
    this.rejectFn = null;
    this.outcome = undefined;
    this.failed = false;
    this.deadline = 0;
    this.deadlines = null;
    this.msg = msg;
    this.target = target;
    this.timeoutMs = timeoutMs;
  }

  resolve(value: unknown): boolean {
    if (this.settled) return false;
    this.settled = true;
    if (this.resolveFn !== null) this.resolveFn(value);
    else this.outcome = value;
    this.release();
    return true;
  }

  reject(error: unknown): boolean {
    if (this.settled) return false;
    this.settled = true;
    if (this.rejectFn !== null) this.rejectFn(error);
    else {
      this.outcome = error;
      this.failed = true;
    }
    this.release();
    return true;
  }

  release(): void {
    this.msg = undefined;
    this.resolveFn = null;
    this.rejectFn = null;
    if (this.deadlines !== null) {
      this.deadlines.settled();
      this.deadlines = null;
    }
  }

  promise(): Promise<unknown> {
    if (this.settled) return this.failed ? Promise.reject(this.outcome) : Promise.resolve(this.outcome);
    return new Promise((resolve, reject) => {
      this.resolveFn = resolve;
      this.rejectFn = reject;
    });
  }
}

interface StopRequest {
  reason: unknown;
  resolve: () => void;
}

// biome-ignore lint/suspicious/noExplicitAny: the loop is generic over every behaviour
export type AnyBehaviour = Behaviour<any, any, any, any, any, any>;

/** Unbounded mailbox capacity (kept a small integer so the hot check stays on Smis). */
export const UNBOUNDED = 0x3fffffff;

/**
 * What few agents use (links, monitors, names, bounded-mailbox policy...) lives in one object
 * allocated on first use, keeping an idle agent small.
 */
class Extras {
  overflow: Overflow = Overflow.Reject;
  dropped = 0;
  trapping = false;
  name: unknown = undefined;
  parent: Process | null = null;
  links: Set<Process> | null = null;
  /** Monitors others hold on this process: monitor id -> watcher. */
  watchers: Map<number, Process> | null = null;
  /** Monitors this process holds: monitor id -> watched process. */
  watching: Map<number, Process> | null = null;
  /** Calls accepted with `noreply` and not answered yet, plus the one an async handler is on. */
  openCalls: Set<CallRecord> | null = null;
  timers: Set<number> | null = null;
  exitWaiters: ((reason: unknown) => void)[] | null = null;
  /** Synchronous cleanup of services bound to this agent (names, tables, pooled resources). */
  exitHooks: Set<(reason: unknown) => void> | null = null;
  /** Waiting for the mailbox to drop below a length (producers pacing themselves). */
  lowWater: { below: number; wake: () => void }[] | null = null;
  /** Settles the spawn promise while an async init is pending. */
  startSettle: ((error: unknown) => void) | null = null;
  exitReason: unknown = undefined;
  /** `local()` storage: the first key in two fields, any others in a Map. */
  localKey: object | null = null;
  localValue: unknown = undefined;
  locals: Map<object, unknown> | null = null;
}

export class Process implements AgentContext {
  // Fields are declared and set in the constructor, in one order, rather than by class-field
  // initializers: spawn is hot, and this keeps it to one straight-line constructor.
  declare status: Status;
  declare priority: number;
  declare reductions: number;
  /** Max messages in the mailbox (UNBOUNDED: no limit). */
  declare capacity: number;
  declare state: unknown;
  declare mailbox: Queue<unknown> | null;
  declare x: Extras | null;
  declare readonly ref: AnyRef;
  declare readonly runtime: Runtime;
  declare readonly behaviour: AnyBehaviour;

  constructor(runtime: Runtime, id: number, behaviour: AnyBehaviour) {
    this.status = Status.Starting;
    this.priority = 1;
    this.reductions = 0;
    this.capacity = UNBOUNDED;
    this.state = undefined;
    this.mailbox = null;
    this.x = null;
    this.runtime = runtime;
    this.behaviour = behaviour;
    this.ref = new AgentRef(runtime.node, runtime.thread, id, this);
  }

  get id(): number {
    return this.ref.id;
  }

  ext(): Extras {
    if (this.x === null) this.x = new Extras();
    return this.x;
  }

  get overflow(): Overflow {
    return this.x === null ? Overflow.Reject : this.x.overflow;
  }
  set overflow(v: Overflow) {
    if (this.x === null && v === Overflow.Reject) return;
    this.ext().overflow = v;
  }
  get dropped(): number {
    return this.x === null ? 0 : this.x.dropped;
  }
  set dropped(v: number) {
    if (this.x === null && v === 0) return;
    this.ext().dropped = v;
  }
  get trapping(): boolean {
    return this.x === null ? false : this.x.trapping;
  }
  set trapping(v: boolean) {
    if (this.x === null && v === false) return;
    this.ext().trapping = v;
  }
  get name(): unknown {
    return this.x === null ? undefined : this.x.name;
  }
  set name(v: unknown) {
    if (this.x === null && v === undefined) return;
    this.ext().name = v;
  }
  get parent(): Process | null {
    return this.x === null ? null : this.x.parent;
  }
  set parent(v: Process | null) {
    if (this.x === null && v === null) return;
    this.ext().parent = v;
  }
  get links(): Set<Process> | null {
    return this.x === null ? null : this.x.links;
  }
  set links(v: Set<Process> | null) {
    if (this.x === null && v === null) return;
    this.ext().links = v;
  }
  get watchers(): Map<number, Process> | null {
    return this.x === null ? null : this.x.watchers;
  }
  set watchers(v: Map<number, Process> | null) {
    if (this.x === null && v === null) return;
    this.ext().watchers = v;
  }
  get watching(): Map<number, Process> | null {
    return this.x === null ? null : this.x.watching;
  }
  set watching(v: Map<number, Process> | null) {
    if (this.x === null && v === null) return;
    this.ext().watching = v;
  }
  get openCalls(): Set<CallRecord> | null {
    return this.x === null ? null : this.x.openCalls;
  }
  set openCalls(v: Set<CallRecord> | null) {
    if (this.x === null && v === null) return;
    this.ext().openCalls = v;
  }
  get timers(): Set<number> | null {
    return this.x === null ? null : this.x.timers;
  }
  set timers(v: Set<number> | null) {
    if (this.x === null && v === null) return;
    this.ext().timers = v;
  }
  get exitHooks(): Set<(reason: unknown) => void> | null {
    return this.x === null ? null : this.x.exitHooks;
  }
  set exitHooks(v: Set<(reason: unknown) => void> | null) {
    if (this.x === null && v === null) return;
    this.ext().exitHooks = v;
  }
  get exitWaiters(): ((reason: unknown) => void)[] | null {
    return this.x === null ? null : this.x.exitWaiters;
  }
  set exitWaiters(v: ((reason: unknown) => void)[] | null) {
    if (this.x === null && v === null) return;
    this.ext().exitWaiters = v;
  }
  get startSettle(): ((error: unknown) => void) | null {
    return this.x === null ? null : this.x.startSettle;
  }
  set startSettle(v: ((error: unknown) => void) | null) {
    if (this.x === null && v === null) return;
    this.ext().startSettle = v;
  }
  get exitReason(): unknown {
    return this.x === null ? undefined : this.x.exitReason;
  }
  set exitReason(v: unknown) {
    if (this.x === null && v === undefined) return;
    this.ext().exitReason = v;
  }

  get self(): AnyRef {
    return this.ref;
  }

  toString(): string {
    return this.ref.toString();
  }

  get alive(): boolean {
    return this.status < Status.Exiting;
  }

  // ---- mailbox -------------------------------------------------------------------------------

  /**
   * Put a message in the mailbox and make the agent runnable. Returns false when the message was
   * dropped by the overflow policy; throws (via the runtime) for the reject policy. System
   * messages (DOWN, EXIT, stop requests) are never refused by a bounded mailbox.
   */
  enqueue(kind: Kind, msg: unknown, system = false): boolean {
    if (this.status === Status.Dead) return false;
    let box = this.mailbox;
    if (box === null) {
      box = new Queue<unknown>(8);
      this.mailbox = box;
    } else if (box.length >= this.capacity * 2 && !system) {
      if (!this.runtime.overflowed(this, kind, msg)) return false;
    }
    box.push(system && kind === Kind.Info ? Kind.Signal : kind);
    box.push(msg);
    if (this.status === Status.Idle) this.runtime.scheduler.schedule(this);
    return true;
  }

  get mailboxLength(): number {
    return this.mailbox === null ? 0 : this.mailbox.length >> 1;
  }

  /** Run up to `budget` messages. Returns how many were run. */
  runSlice(budget: number): number {
    const box = this.mailbox as Queue<unknown>;
    const rt = this.runtime;
    let n = 0;
    this.status = Status.Running;
    while (n < budget && box.length > 0) {
      const kind = box.shift() as Kind;
      const msg = box.shift();
      n++;
      this.dispatch(kind, msg);
      if (this.x !== null && this.x.lowWater !== null) this.wakeLowWater(false);
      if (this.status !== Status.Running) break;
    }
    this.reductions += n;
    rt.current = null;
    return n;
  }

  /** The one dispatch wrapper: every callback result or throw comes through here. */
  dispatch(kind: Kind, msg: unknown): void {
    const rt = this.runtime;
    rt.current = this;
    const b = this.behaviour;
    let result: unknown;
    try {
      switch (kind) {
        case Kind.Call: {
          const rec = msg as CallRecord;
          if (rec.settled) return; // timed out while queued; nobody waits for the reply
          if (b.handleCall === undefined) {
            rec.reject(new NotImplementedError(this.toString(), 'handleCall'));
            return;
          }
          result = b.handleCall(rec.msg, rec as From, this.state, this);
          break;
        }
        case Kind.Cast:
          if (b.handleCast === undefined) {
            rt.unhandled(this, 'cast', msg);
            return;
          }
          result = b.handleCast(msg, this.state, this);
          break;
        case Kind.Info:
        case Kind.Signal:
          // Only a real exit signal (never a plain message shaped like one) from the parent
          // makes a trapping agent terminate, as in OTP.
          if (kind === Kind.Signal && this.trapping && isExitFromParent(msg, this.parent)) {
            this.terminate((msg as ExitMessage).reason);
            return;
          }
          if (b.handleInfo === undefined) {
            rt.unhandled(this, 'info', msg);
            return;
          }
          result = b.handleInfo(msg, this.state, this);
          break;
        default: {
          const req = msg as StopRequest;
          this.addExitWaiter(req.resolve);
          this.terminate(req.reason);
          return;
        }
      }
    } catch (error) {
      // The caller of a call that crashed its callee learns the reason at once (E_EXIT).
      if (kind === Kind.Call) this.openCall(msg as CallRecord);
      this.crash(error);
      return;
    }
    if (result instanceof Promise) {
      // Not if the agent died in the handler's synchronous part (say, killed through a link):
      // a dead agent must stay dead, and resume() then ignores the handler's outcome.
      if (this.status < Status.Exiting) this.status = Status.Awaiting;
      if (kind === Kind.Call) this.openCall(msg as CallRecord);
      result.then(
        (value) => this.resume(kind, msg, value),
        (error) => this.resumeCrash(error),
      );
      return;
    }
    if (this.status === Status.Dead) {
      // Killed during the handler's synchronous part: a dead agent neither replies nor keeps state.
      if (kind === Kind.Call) (msg as CallRecord).reject(new ExitError(this.toString(), this.exitReason));
      return;
    }
    this.apply(kind, msg, result);
  }

  /** Apply a callback's result: new state, a reply, or a stop. */
  apply(kind: Kind, msg: unknown, result: unknown): void {
    if (kind === Kind.Call) {
      const rec = msg as CallRecord;
      if (result instanceof CallReply) {
        this.state = result.state;
        rec.resolve(result.value);
      } else if (result instanceof NoReply) {
        this.state = result.state;
        if (!rec.settled) this.openCall(rec);
      } else if (result instanceof Stop) {
        this.state = result.state;
        if (result.hasReply) rec.resolve(result.value);
        else this.openCall(rec);
        this.terminate(result.reason);
      } else {
        this.openCall(rec);
        this.crash(new BadReturnError('handleCall', result));
      }
    } else if (result instanceof Stop) {
      this.state = result.state;
      this.terminate(result.reason);
    } else {
      this.state = result;
    }
  }

  resume(kind: Kind, msg: unknown, value: unknown): void {
    if (this.status !== Status.Awaiting) return; // killed while awaiting
    this.status = Status.Running;
    const rt = this.runtime;
    const prev = rt.current;
    rt.current = this;
    if (kind === Kind.Call) this.openCalls?.delete(msg as CallRecord);
    this.apply(kind, msg, value);
    rt.current = prev;
    this.afterAsync();
  }

  resumeCrash(error: unknown): void {
    if (this.status !== Status.Awaiting) return;
    this.status = Status.Running;
    const rt = this.runtime;
    const prev = rt.current;
    rt.current = this;
    this.crash(error);
    rt.current = prev;
  }

  /** After an async step: go back to the run queue if messages are waiting. */
  afterAsync(): void {
    if (this.status !== Status.Running) return;
    this.status = Status.Idle;
    if (this.mailbox !== null && this.mailbox.length > 0) this.runtime.scheduler.schedule(this);
  }

  openCall(rec: CallRecord): void {
    if (this.status === Status.Dead) {
      // It died while handling the call: nobody is left to answer, so the caller learns why now.
      rec.reject(new ExitError(this.toString(), this.exitReason));
      return;
    }
    if (this.openCalls === null) this.openCalls = new Set();
    this.openCalls.add(rec);
  }

  // ---- exits ---------------------------------------------------------------------------------

  /** A callback threw: exit with what it threw, running terminate. */
  crash(error: unknown): void {
    this.runtime.crashed(this, error);
    this.terminate(error);
  }

  /** Exit with `reason`, running the behaviour's terminate first. */
  terminate(reason: unknown): void {
    if (this.status >= Status.Exiting) return;
    const wasStarting = this.status === Status.Starting;
    this.status = Status.Exiting;
    const t = this.behaviour.terminate;
    if (t === undefined || wasStarting) {
      this.finish(reason);
      return;
    }
    let result: unknown;
    const rt = this.runtime;
    const prev = rt.current;
    rt.current = this;
    try {
      result = t.call(this.behaviour, reason, this.state, this);
    } catch (error) {
      rt.crashed(this, error, 'terminate');
    }
    rt.current = prev;
    if (result instanceof Promise) {
      result.then(
        () => this.finish(reason),
        (error) => {
          rt.crashed(this, error, 'terminate');
          this.finish(reason);
        },
      );
    } else {
      this.finish(reason);
    }
  }

  /** Exit at once, without terminate (kill, or an untrapped exit signal). */
  die(reason: unknown): void {
    if (this.status === Status.Dead) return;
    this.status = Status.Exiting;
    this.finish(reason);
  }

  /** The last step of every exit: tell everyone who needs to know, then free what we hold. */
  finish(reason: unknown): void {
    if (this.status === Status.Dead) return;
    this.status = Status.Dead;
    this.exitReason = reason;
    const rt = this.runtime;
    rt.removeProcess(this);
    // Bound services clean up first, so whoever sees this exit (DOWN, EXIT, awaitExit, a
    // failed call) finds no registry entry, table or resource still pointing at the agent.
    if (this.exitHooks !== null) {
      const hooks = this.exitHooks;
      this.exitHooks = null;
      for (const hook of hooks) {
        try {
          hook(reason);
        } catch (error) {
          rt.crashed(this, error, 'exit hook');
        }
      }
    }
    if (this.startSettle !== null) {
      const settle = this.startSettle;
      this.startSettle = null;
      settle(reason);
    }
    // Callers waiting on us learn the reason at once, never by timing out.
    if (this.openCalls !== null) {
      for (const rec of this.openCalls) rec.reject(new ExitError(this.toString(), reason));
      this.openCalls = null;
    }
    const box = this.mailbox;
    if (box !== null) {
      while (box.length > 0) {
        const kind = box.shift() as Kind;
        const msg = box.shift();
        if (kind === Kind.Call) (msg as CallRecord).reject(new ExitError(this.toString(), reason));
        else if (kind === Kind.Stop) this.addExitWaiter((msg as StopRequest).resolve);
      }
      this.mailbox = null;
    }
    if (this.timers !== null) {
      for (const id of this.timers) rt.cancelTimerById(id);
      this.timers = null;
    }
    if (this.watching !== null) {
      for (const [id, target] of this.watching) target.watchers?.delete(id);
      this.watching = null;
    }
    const pid = this.ref;
    if (this.watchers !== null) {
      for (const [id, watcher] of this.watchers) {
        watcher.watching?.delete(id);
        const down: DownMessage = { type: 'DOWN', monitor: { monitorId: id }, pid, reason };
        watcher.enqueue(Kind.Info, down, true);
      }
      this.watchers = null;
    }
    if (this.links !== null) {
      const links = this.links;
      this.links = null;
      for (const other of links) {
        other.links?.delete(this);
        rt.exitSignal(other, pid, reason, true);
      }
    }
    this.state = undefined;
    if (this.x !== null && this.x.lowWater !== null) this.wakeLowWater(true);
    rt.exited(this, reason);
    if (this.exitWaiters !== null) {
      const waiters = this.exitWaiters;
      this.exitWaiters = null;
      for (const w of waiters) w(reason);
    }
  }

  /** Wake producers waiting for the mailbox to drop below their mark (all of them on exit). */
  wakeLowWater(all: boolean): void {
    const x = this.x as Extras;
    const waiting = x.lowWater as { below: number; wake: () => void }[];
    const length = this.mailboxLength;
    const still = all ? [] : waiting.filter((w) => length >= w.below);
    if (still.length === waiting.length) return;
    x.lowWater = still.length > 0 ? still : null;
    for (const w of waiting) if (all || length < w.below) w.wake();
  }

  addExitWaiter(fn: (reason: unknown) => void): void {
    if (this.status === Status.Dead) {
      fn(this.exitReason);
      return;
    }
    if (this.exitWaiters === null) this.exitWaiters = [];
    this.exitWaiters.push(fn);
  }

  // ---- AgentContext --------------------------------------------------------------------------

  reply<R>(from: From<R>, value: R): boolean {
    const rec = from as unknown as CallRecord;
    if (!(rec instanceof CallRecord)) {
      throw new InvalidArgumentError('reply target', 'must be the `from` handed to handleCall', from);
    }
    rec.target.openCalls?.delete(rec);
    return rec.resolve(value);
  }

  trapExit(on: boolean): void {
    this.trapping = on === true;
  }

  link(other: AnyRef | Pid): void {
    this.assertAlive('link');
    const target = this.runtime.resolve(other);
    if (target === this) return;
    if (target === undefined || !target.alive) {
      // As in OTP: a process that traps exits gets {EXIT, noproc}; otherwise link raises noproc
      // (thrown from a callback, that crashes the agent and terminate runs).
      if (!this.trapping)
        throw new NoProcessError(other instanceof AgentRef ? other.toString() : pidString(other));
      this.runtime.exitSignal(this, other, 'noproc', true);
      return;
    }
    if (this.links === null) this.links = new Set();
    if (target.links === null) target.links = new Set();
    this.links.add(target);
    target.links.add(this);
  }

  unlink(other: AnyRef | Pid): void {
    const target = this.runtime.resolve(other);
    if (target === undefined) return;
    this.links?.delete(target);
    target.links?.delete(this);
  }

  monitor(other: AnyRef | Pid): MonitorRef {
    this.assertAlive('monitor');
    const id = this.runtime.nextMonitorId();
    const target = this.runtime.resolve(other);
    const ref: MonitorRef = { monitorId: id };
    if (target === undefined || !target.alive) {
      const pid = other instanceof AgentRef ? other : (other as Pid);
      const down: DownMessage = { type: 'DOWN', monitor: ref, pid, reason: 'noproc' };
      this.enqueue(Kind.Info, down, true);
      return ref;
    }
    if (target.watchers === null) target.watchers = new Map();
    if (this.watching === null) this.watching = new Map();
    target.watchers.set(id, this);
    this.watching.set(id, target);
    return ref;
  }

  demonitor(monitor: MonitorRef): boolean {
    const target = this.watching?.get(monitor.monitorId);
    if (target === undefined) return false;
    this.watching?.delete(monitor.monitorId);
    target.watchers?.delete(monitor.monitorId);
    return true;
  }

  spawn<A, S, C, R, K, I>(
    behaviour: Behaviour<A, S, C, R, K, I>,
    args: A,
    options?: SpawnOptions,
  ): Promise<AgentRef<C, R, K, I>> {
    return this.runtime.spawnFrom(this, behaviour, args, options);
  }

  spawnLink<A, S, C, R, K, I>(
    behaviour: Behaviour<A, S, C, R, K, I>,
    args: A,
    options?: Omit<SpawnOptions, 'link'>,
  ): Promise<AgentRef<C, R, K, I>> {
    return this.runtime.spawnFrom(this, behaviour, args, { ...options, link: true });
  }

  call(dest: Dest, msg: unknown, timeoutMs?: number): Promise<never> {
    // After an await in an async handler, runtime.current no longer points at this agent.
    if (this.runtime.resolve(dest) === this) return Promise.reject(new CallSelfError(this.toString()));
    return this.runtime.call(dest as UntypedDest, msg, timeoutMs);
  }

  cast(dest: Dest, msg: unknown): boolean {
    return this.runtime.cast(dest as UntypedDest, msg);
  }

  send(dest: Dest, msg: unknown): boolean {
    return this.runtime.send(dest as UntypedDest, msg);
  }

  local<T>(key: object, init: () => T): T {
    const x = this.ext();
    if (x.localKey === key) return x.localValue as T;
    if (x.localKey === null) {
      x.localKey = key;
      x.localValue = init();
      return x.localValue as T;
    }
    x.locals ??= new Map();
    if (x.locals.has(key)) return x.locals.get(key) as T;
    const value = init();
    x.locals.set(key, value);
    return value;
  }

  sendAfter(msg: unknown, ms: number): TimerRef {
    this.assertAlive('sendAfter');
    return this.runtime.sendAfter(this.ref, msg, ms);
  }

  /**
   * Code of an agent that has exited can still run (the rest of an async handler whose agent was
   * killed while it awaited); it must not leave links, monitors or timers behind a dead agent.
   */
  assertAlive(what: string): void {
    if (this.status === Status.Dead)
      throw new NoProcessError(this.toString(), `${what} from an agent that has exited`);
  }

  cancelTimer(timer: TimerRef): number | false {
    return this.runtime.cancelTimer(timer);
  }

  exit(dest: AnyRef | Pid, reason: unknown): void {
    this.runtime.exit(dest, reason, this.ref);
  }
}

function isExitFromParent(msg: unknown, parent: Process | null): boolean {
  return (
    parent !== null &&
    msg !== null &&
    typeof msg === 'object' &&
    (msg as ExitMessage).type === 'EXIT' &&
    parent.ref.equals((msg as ExitMessage).from)
  );
}

function pidString(pid: Pid): string {
  return `<${pid.node}.${pid.thread}.${pid.id}>`;
}
