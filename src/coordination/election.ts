/**
 * Leader election among a fixed group of member agents, by Raft's election rules (Ongaro and
 * Ousterhout, "In Search of an Understandable Consensus Algorithm", sections 5.1, 5.2 and 5.4.1
 * without the log; CheckQuorum from Ongaro's thesis, section 6.2).
 *
 * Every member is an agent that runs the protocol itself: follower, candidate or leader, with a
 * current term and the vote it gave in that term. Members talk by cast only (RequestVote,
 * AppendEntries without entries, and their replies, each sent back to the sender's pid), and time
 * runs on runtime timers (`ctx.sendAfter`), so a VirtualClock drives a whole election in tests.
 * Election timeouts are drawn from a seeded generator per member, never from Math.random.
 *
 * The group owns what outlives a member: the members' supervisor (one_for_one, permanent
 * children, so a killed member comes back as a follower), the stable storage holding each
 * member's `currentTerm` and `votedFor` (written before any message that depends on it is sent,
 * so a restarted member cannot vote twice in a term), the directory of current member refs, and
 * the read model behind `leader()`, `term()` and `members()` (synchronous reads, written by the
 * members as their roles change; no mailbox in between, as with the registry).
 *
 * Telemetry: `['mabeam','election','elected']` when a member wins an election, and
 * `['mabeam','election','stepped_down']` when a leader stops leading (metadata `reason`:
 * `higher_term`, `lost_quorum` or `exit`). Measurements `{term}`; metadata `group`, `member`,
 * `ref`, `term`.
 */
import {
  type AgentContext,
  type AgentRef,
  type AnyRef,
  type Behaviour,
  type CastResult,
  InvalidArgumentError,
  isPid,
  MabeamError,
  type MonitorRef,
  type Pid,
  pidEquals,
  pidKey,
  type Runtime,
  Supervisor,
  type SupervisorRef,
  type SystemMessage,
  TimeoutError,
  type TimerRef,
  type UntypedDest,
} from '../kernel/index.js';

// ---- errors ------------------------------------------------------------------------------------

/** Error codes of leader election (unique across mabeam, never reused). */
export const ElectionErrorCodes = {
  /** The group has been stopped (or its supervisor gave up); no leader will come. */
  STOPPED: 'E_ELECTION_STOPPED',
  /** A member name that is not in the group. */
  UNKNOWN_MEMBER: 'E_ELECTION_UNKNOWN_MEMBER',
} as const;

/** The group is stopped: `awaitLeader` and member operations fail with this. */
export class ElectionStoppedError extends MabeamError {
  readonly group: string;
  readonly reason: unknown;
  constructor(group: string, reason: unknown) {
    super(ElectionErrorCodes.STOPPED, `election group ${group} has stopped`, {
      cause: reason instanceof Error ? reason : undefined,
    });
    this.group = group;
    this.reason = reason;
  }
}

/** A name that is not a member of the group. */
export class UnknownMemberError extends MabeamError {
  readonly group: string;
  readonly member: unknown;
  constructor(group: string, member: unknown) {
    super(
      ElectionErrorCodes.UNKNOWN_MEMBER,
      `election group ${group} has no member ${JSON.stringify(member)}`,
    );
    this.group = group;
    this.member = member;
  }
}

// ---- public types ------------------------------------------------------------------------------

export type ElectionRole = 'follower' | 'candidate' | 'leader';

/** The group's leader, as `leader()` defines it. */
export interface LeaderInfo {
  readonly member: string;
  readonly ref: AnyRef;
  readonly term: number;
}

/** One member as the group's read model sees it now. */
export interface ElectionMemberInfo {
  readonly member: string;
  /** The running agent, or undefined while the member is down (stopped, or between crash and restart). */
  readonly ref: AnyRef | undefined;
  /** Undefined while the member is down. */
  readonly role: ElectionRole | undefined;
  /** The member's persisted currentTerm (kept while it is down). */
  readonly term: number;
  /** The member's persisted vote in `term`. */
  readonly votedFor: string | undefined;
  /** Whom the member takes for the leader of `term` (itself when it leads). */
  readonly leader: string | undefined;
}

/** Raft's persistent state of one member. */
export interface ElectionPersistentState {
  readonly term: number;
  readonly votedFor: string | undefined;
}

/**
 * Stable storage for the members' persistent state. `save` must be durable when it returns: a
 * member sends nothing that depends on the new state before it does. Synchronous by design (a
 * member's handler stays synchronous); a durable backend can keep a synchronous write-through
 * cache in front of its log.
 */
export interface ElectionStorage {
  load(member: string): ElectionPersistentState | undefined;
  save(member: string, state: ElectionPersistentState): void;
}

/** The default stable storage: a map owned by the group, so it outlives member restarts. */
export class MemoryElectionStorage implements ElectionStorage {
  readonly #states = new Map<string, ElectionPersistentState>();
  load(member: string): ElectionPersistentState | undefined {
    return this.#states.get(member);
  }
  save(member: string, state: ElectionPersistentState): void {
    this.#states.set(member, { term: state.term, votedFor: state.votedFor });
  }
}

export interface ElectionOptions {
  /** How many members (named `m1`..`mN`), or their names (unique, non-empty strings). */
  readonly members: number | readonly string[];
  /** How often a leader sends heartbeats, runtime-clock ms. Default 50; below the minimum election timeout. */
  readonly heartbeatMs?: number;
  /** The range election timeouts are drawn from, `[min, max]` ms. Default `[150, 300]`. */
  readonly electionTimeoutMs?: readonly [number, number];
  /** Seed of the members' timeout generators (an integer). Default 0. */
  readonly seed?: number;
  /**
   * Followers monitor the leader they follow; when it dies they start an election after a short
   * random delay in `[0, heartbeatMs)` instead of a full election timeout. Default true. Raft's
   * timeouts elect a new leader without it too, only later.
   */
  readonly monitorLeader?: boolean;
  /**
   * A leader that has not heard from a majority (itself included) within the maximum election
   * timeout steps down (reason `lost_quorum`). Default true. Without it a leader cut off from the
   * majority keeps leading its term until it learns of a higher one.
   */
  readonly checkQuorum?: boolean;
  /** Restart intensity of the members' supervisor. Default `{intensity: 3 * members, periodMs: 5000}`. */
  readonly restartIntensity?: { readonly intensity?: number; readonly periodMs?: number };
  /** Stable storage for currentTerm and votedFor. Default: a new MemoryElectionStorage. */
  readonly storage?: ElectionStorage;
  /** The group's id in messages and telemetry. Default `election-` plus a random suffix. */
  readonly id?: string;
  /**
   * How member messages travel, for tests and simulations: called for every message a member
   * sends, it may call `deliver` at once, later (a delay, say on the runtime's clock), more than
   * once, or never (a lost message). Raft's election is safe under any of these. Default: cast at
   * once (per-sender FIFO, no loss).
   */
  readonly transport?: ElectionTransport;
}

/** One member message in flight, as a transport sees it. */
export interface ElectionEnvelope {
  /** The sending member. */
  readonly from: string;
  /** The receiving agent (a member, or whoever sent the request being answered). */
  readonly to: Pid;
  readonly message: ElectionMessage;
}

/** Carries member messages; see `ElectionOptions.transport`. */
export type ElectionTransport = (envelope: ElectionEnvelope, deliver: () => void) => void;

export interface AwaitLeaderOptions {
  /** Only a leader of this term or a later one. Default 1 (any leader). */
  readonly minTerm?: number;
  /** Runtime-clock ms before rejecting with TimeoutError (E_TIMEOUT). Default 5000; Infinity allowed. */
  readonly timeoutMs?: number;
}

// ---- messages ----------------------------------------------------------------------------------

/** RequestVote: a candidate asks for a member's vote in `term`. The reply goes to `from`. */
export interface RequestVoteMessage {
  readonly type: 'request_vote';
  readonly group: string;
  readonly term: number;
  readonly candidate: string;
  readonly from: Pid;
}

/** The answer to RequestVote, carrying the voter's currentTerm. */
export interface VoteReplyMessage {
  readonly type: 'vote_reply';
  readonly group: string;
  readonly term: number;
  readonly voter: string;
  readonly granted: boolean;
}

/** AppendEntries without entries: the leader's heartbeat. The reply goes to `from`. */
export interface AppendEntriesMessage {
  readonly type: 'append_entries';
  readonly group: string;
  readonly term: number;
  readonly leader: string;
  readonly from: Pid;
}

/** The answer to AppendEntries, carrying the follower's currentTerm. */
export interface AppendReplyMessage {
  readonly type: 'append_reply';
  readonly group: string;
  readonly term: number;
  readonly member: string;
  readonly success: boolean;
}

/** Everything a member takes by cast. */
export type ElectionMessage =
  | RequestVoteMessage
  | VoteReplyMessage
  | AppendEntriesMessage
  | AppendReplyMessage;

/** A member's own timers. */
export type ElectionTimerMessage =
  | { readonly type: 'election_timeout'; readonly gen: number }
  | { readonly type: 'heartbeat'; readonly gen: number };

export type ElectionMemberRef = AgentRef<never, never, ElectionMessage, ElectionTimerMessage>;

/** What a subscribed agent is cast whenever `leader()` changes (and once on subscribing). */
export interface LeaderChangedMessage {
  readonly type: 'leader_changed';
  readonly group: string;
  /** The new leader, or undefined while there is none. */
  readonly leader: LeaderInfo | undefined;
}

export const ELECTION_ELECTED = ['mabeam', 'election', 'elected'] as const;
export const ELECTION_STEPPED_DOWN = ['mabeam', 'election', 'stepped_down'] as const;

/** Why a leader stopped leading. */
export type SteppedDownReason = 'higher_term' | 'lost_quorum' | 'exit';

const DEFAULT_HEARTBEAT_MS = 50;
const DEFAULT_TIMEOUT_MS: readonly [number, number] = [150, 300];
const DEFAULT_AWAIT_MS = 5000;
const OPTION_KEYS = new Set([
  'members',
  'heartbeatMs',
  'electionTimeoutMs',
  'seed',
  'monitorLeader',
  'checkQuorum',
  'restartIntensity',
  'storage',
  'id',
  'transport',
]);

// ---- seeded randomness -------------------------------------------------------------------------

/** Mix 32-bit words into one seed (murmur3's finalizer after each word). */
function mix(words: readonly number[]): number {
  let h = 0x9e3779b9;
  for (const w of words) {
    h = Math.imul(h ^ (w >>> 0), 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
  }
  return h >>> 0;
}

/**
 * The generator of one member incarnation: mulberry32 seeded with the group seed (both 32-bit
 * halves), the member's index and how many times it has been started. Deterministic for a given
 * seed and schedule, and a restarted member does not replay the timeouts of its last life.
 * Returns floats in [0, 1).
 * @internal exported for tests and the docs
 */
export function memberRandom(seed: number, index: number, incarnation: number): () => number {
  let a = mix([seed % 2 ** 32, Math.floor(seed / 2 ** 32), index, incarnation]);
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---- the group's shared core (the members' args) ------------------------------------------------

interface View {
  ref: AnyRef | undefined;
  role: ElectionRole | undefined;
  term: number;
  votedFor: string | undefined;
  leader: string | undefined;
}

interface Waiter {
  readonly minTerm: number;
  resolve(leader: LeaderInfo): void;
  reject(error: unknown): void;
}

interface Config {
  readonly id: string;
  readonly names: readonly string[];
  readonly majority: number;
  readonly heartbeatMs: number;
  readonly minTimeoutMs: number;
  readonly maxTimeoutMs: number;
  readonly seed: number;
  readonly monitorLeader: boolean;
  readonly checkQuorum: boolean;
  readonly intensity: number;
  readonly periodMs: number;
}

/**
 * What the group shares with its members: configuration, stable storage, the directory of member
 * refs and the read model. One per group, never module state.
 */
class GroupCore {
  readonly views: View[];
  readonly incarnations: Uint32Array;
  readonly index: ReadonlyMap<string, number>;
  current: LeaderInfo | undefined;
  readonly waiters = new Set<Waiter>();
  readonly subscribers = new Map<string, { ref: Pid; unhook: () => void }>();
  stopped: { reason: unknown } | undefined;
  #outbox: { to: Pid; msg: LeaderChangedMessage }[] = [];
  #flushing = false;

  constructor(
    readonly runtime: Runtime,
    readonly config: Config,
    readonly storage: ElectionStorage,
    readonly transport: ElectionTransport | undefined,
  ) {
    this.index = new Map(config.names.map((n, i) => [n, i]));
    this.incarnations = new Uint32Array(config.names.length);
    this.views = config.names.map((name) => {
      const saved = storage.load(name);
      return {
        ref: undefined,
        role: undefined,
        term: saved?.term ?? 0,
        votedFor: saved?.votedFor,
        leader: undefined,
      };
    });
  }

  /** A member (re)started: record its ref, and hook its exit into the read model. */
  attach(i: number, ref: AnyRef): void {
    const view = this.views[i] as View;
    view.ref = ref;
    this.runtime.onExit(ref, () => this.#detach(i, ref));
  }

  #detach(i: number, ref: AnyRef): void {
    const view = this.views[i] as View;
    if (view.ref === undefined || !pidEquals(view.ref, ref)) return;
    const wasLeader = view.role === 'leader';
    view.ref = undefined;
    view.role = undefined;
    view.leader = undefined;
    if (wasLeader) steppedDown(this, i, ref, view.term, 'exit');
    this.changed();
  }

  /** A member's role, term, vote or leader changed. */
  update(s: MemberState): void {
    const view = this.views[s.index] as View;
    view.role = s.role;
    view.term = s.term;
    view.votedFor = s.votedFor;
    view.leader = s.leader;
    this.changed();
  }

  /**
   * The leader: the live member that leads in the highest term any live member has reached. Raft
   * allows at most one leader per term, so there is at most one; while a live member knows of a
   * newer term than the leader's (an election is under way, or a restarted member brings a newer
   * term back), there is none, because that leader's authority is being replaced.
   */
  computeLeader(): LeaderInfo | undefined {
    let maxTerm = -1;
    for (const v of this.views) if (v.ref !== undefined && v.term > maxTerm) maxTerm = v.term;
    for (let i = 0; i < this.views.length; i++) {
      const v = this.views[i] as View;
      if (v.ref !== undefined && v.role === 'leader' && v.term === maxTerm) {
        return { member: this.config.names[i] as string, ref: v.ref, term: v.term };
      }
    }
    return undefined;
  }

  maxTerm(): number {
    let max = 0;
    for (const v of this.views) if (v.ref !== undefined && v.term > max) max = v.term;
    return max;
  }

  changed(): void {
    const next = this.computeLeader();
    const prev = this.current;
    if (
      prev === next ||
      (prev !== undefined &&
        next !== undefined &&
        prev.member === next.member &&
        prev.term === next.term &&
        pidEquals(prev.ref, next.ref))
    ) {
      return;
    }
    this.current = next;
    if (next !== undefined) {
      for (const w of [...this.waiters]) if (next.term >= w.minTerm) w.resolve(next);
    }
    for (const { ref } of this.subscribers.values()) this.notify(ref, next);
  }

  /**
   * Queue a leader_changed cast. Sent from a microtask, in order: this runs inside members'
   * handlers and exit hooks, where a cast to an idle subscriber must not run it inline.
   */
  notify(to: Pid, leader: LeaderInfo | undefined): void {
    this.#outbox.push({ to, msg: { type: 'leader_changed', group: this.config.id, leader } });
    if (this.#flushing) return;
    this.#flushing = true;
    queueMicrotask(() => {
      this.#flushing = false;
      const out = this.#outbox;
      this.#outbox = [];
      for (const { to, msg } of out) this.runtime.cast(to as UntypedDest, msg);
    });
  }

  stop(reason: unknown): void {
    if (this.stopped !== undefined) return;
    this.stopped = { reason };
    const error = new ElectionStoppedError(this.config.id, reason);
    for (const w of [...this.waiters]) w.reject(error);
    for (const s of this.subscribers.values()) s.unhook();
    this.subscribers.clear();
  }
}

function steppedDown(core: GroupCore, i: number, ref: AnyRef, term: number, reason: SteppedDownReason): void {
  const tel = core.runtime.telemetry;
  if (!tel.enabled) return;
  const member = core.config.names[i] as string;
  tel.execute(ELECTION_STEPPED_DOWN, { term }, { group: core.config.id, member, ref, term, reason });
}

// ---- the member agent --------------------------------------------------------------------------

/** @internal what a member is started with */
export interface MemberArgs {
  readonly core: GroupCore;
  readonly index: number;
}

interface MemberState {
  readonly core: GroupCore;
  readonly index: number;
  readonly name: string;
  readonly random: () => number;
  role: ElectionRole;
  term: number;
  votedFor: string | undefined;
  /** The leader of `term`, once known. */
  leader: string | undefined;
  /** Votes received as candidate in `term`. */
  votes: Set<string>;
  electionTimer: TimerRef | undefined;
  heartbeatTimer: TimerRef | undefined;
  /** Timer generation: a timer message of an older generation is stale (it was already queued when cancelled). */
  gen: number;
  /** Follower: the monitor on the leader's agent, and that agent. */
  leaderMonitor: MonitorRef | undefined;
  leaderPid: Pid | undefined;
  /** Leader: since when, and when each peer last acknowledged a heartbeat (runtime clock). */
  leaderSince: number;
  acks: Map<string, number>;
}

type MemberCtx = AgentContext<never, never, ElectionMessage, ElectionTimerMessage>;

function persist(s: MemberState): void {
  s.core.storage.save(s.name, { term: s.term, votedFor: s.votedFor });
}

function cancelTimers(s: MemberState, ctx: MemberCtx): void {
  if (s.electionTimer !== undefined) ctx.cancelTimer(s.electionTimer);
  if (s.heartbeatTimer !== undefined) ctx.cancelTimer(s.heartbeatTimer);
  s.electionTimer = undefined;
  s.heartbeatTimer = undefined;
  s.gen++;
}

/** (Re)arm the election timer: a fresh random timeout, or `ms` when given. */
function armElection(s: MemberState, ctx: MemberCtx, ms?: number): void {
  cancelTimers(s, ctx);
  const { minTimeoutMs, maxTimeoutMs } = s.core.config;
  const delay = ms ?? minTimeoutMs + s.random() * (maxTimeoutMs - minTimeoutMs);
  s.electionTimer = ctx.sendAfter({ type: 'election_timeout', gen: s.gen }, delay);
}

function armHeartbeat(s: MemberState, ctx: MemberCtx): void {
  cancelTimers(s, ctx);
  s.heartbeatTimer = ctx.sendAfter({ type: 'heartbeat', gen: s.gen }, s.core.config.heartbeatMs);
}

function unwatchLeader(s: MemberState, ctx: MemberCtx): void {
  if (s.leaderMonitor !== undefined) ctx.demonitor(s.leaderMonitor);
  s.leaderMonitor = undefined;
  s.leaderPid = undefined;
}

/** Send one member message: by cast, or through the group's transport when one is set. */
function transmit(s: MemberState, ctx: MemberCtx, to: Pid, msg: ElectionMessage): void {
  const transport = s.core.transport;
  if (transport === undefined) {
    ctx.cast(to as UntypedDest, msg);
    return;
  }
  const runtime = ctx.runtime;
  transport({ from: s.name, to, message: msg }, () => {
    runtime.cast(to as UntypedDest, msg);
  });
}

/** Cast to every other member that is running now. */
function broadcast(s: MemberState, ctx: MemberCtx, msg: ElectionMessage): void {
  const views = s.core.views;
  for (let i = 0; i < views.length; i++) {
    if (i === s.index) continue;
    const ref = (views[i] as View).ref;
    if (ref !== undefined) transmit(s, ctx, ref, msg);
  }
}

/** Leave the leader role of `term` for follower; the caller persists and publishes. */
function leaveLeadership(s: MemberState, ctx: MemberCtx, term: number, reason: SteppedDownReason): void {
  s.role = 'follower';
  s.acks.clear();
  steppedDown(s.core, s.index, ctx.self, term, reason);
  armElection(s, ctx);
}

/** Raft: any message with a newer term makes us a follower of that term, with no vote in it yet. */
function adoptTerm(s: MemberState, ctx: MemberCtx, term: number): void {
  const ledTerm = s.role === 'leader' ? s.term : undefined;
  s.term = term;
  s.votedFor = undefined;
  s.leader = undefined;
  s.votes.clear();
  unwatchLeader(s, ctx);
  persist(s);
  if (ledTerm !== undefined) leaveLeadership(s, ctx, ledTerm, 'higher_term');
  s.role = 'follower';
  s.core.update(s);
}

function startElection(s: MemberState, ctx: MemberCtx): void {
  s.term++;
  s.role = 'candidate';
  s.votedFor = s.name;
  s.leader = undefined;
  s.votes = new Set([s.name]);
  unwatchLeader(s, ctx);
  // Persist before asking anyone: the vote for ourselves must survive a crash.
  persist(s);
  s.core.update(s);
  armElection(s, ctx);
  if (s.votes.size >= s.core.config.majority) {
    becomeLeader(s, ctx);
    return;
  }
  broadcast(s, ctx, {
    type: 'request_vote',
    group: s.core.config.id,
    term: s.term,
    candidate: s.name,
    from: ctx.self,
  });
}

function becomeLeader(s: MemberState, ctx: MemberCtx): void {
  s.role = 'leader';
  s.leader = s.name;
  s.votes.clear();
  s.acks.clear();
  s.leaderSince = ctx.runtime.clock.now();
  s.core.update(s);
  const tel = ctx.runtime.telemetry;
  if (tel.enabled) {
    tel.execute(
      ELECTION_ELECTED,
      { term: s.term },
      { group: s.core.config.id, member: s.name, ref: ctx.self, term: s.term },
    );
  }
  heartbeat(s, ctx);
}

function heartbeat(s: MemberState, ctx: MemberCtx): void {
  broadcast(s, ctx, {
    type: 'append_entries',
    group: s.core.config.id,
    term: s.term,
    leader: s.name,
    from: ctx.self,
  });
  armHeartbeat(s, ctx);
}

/** CheckQuorum: has a majority (ourselves included) acknowledged us within the window? */
function hasQuorum(s: MemberState, now: number): boolean {
  const { majority, maxTimeoutMs } = s.core.config;
  if (now - s.leaderSince < maxTimeoutMs) return true;
  let live = 1;
  for (const at of s.acks.values()) if (now - at <= maxTimeoutMs) live++;
  return live >= majority;
}

function onRequestVote(s: MemberState, ctx: MemberCtx, msg: RequestVoteMessage): void {
  // Terms above ours were adopted before this runs, so msg.term <= s.term here.
  const granted = msg.term === s.term && (s.votedFor === undefined || s.votedFor === msg.candidate);
  if (granted && s.votedFor === undefined) {
    s.votedFor = msg.candidate;
    // Persist before the reply leaves: a restarted member must still remember this vote.
    persist(s);
    s.core.update(s);
  }
  // Granting a vote defers our own candidacy (Raft, section 5.2); a denial does not.
  if (granted) armElection(s, ctx);
  const reply: VoteReplyMessage = {
    type: 'vote_reply',
    group: s.core.config.id,
    term: s.term,
    voter: s.name,
    granted,
  };
  if (isPid(msg.from)) transmit(s, ctx, msg.from, reply);
}

function onAppendEntries(s: MemberState, ctx: MemberCtx, msg: AppendEntriesMessage): void {
  const answer = (success: boolean) => {
    const reply: AppendReplyMessage = {
      type: 'append_reply',
      group: s.core.config.id,
      term: s.term,
      member: s.name,
      success,
    };
    if (isPid(msg.from)) transmit(s, ctx, msg.from, reply);
  };
  // A stale leader learns our newer term from the reply and steps down. A second leader in our
  // own term cannot exist (one vote per member per term, majorities intersect); refuse it anyway.
  if (msg.term < s.term || s.role === 'leader') {
    answer(false);
    return;
  }
  if (s.role !== 'follower' || s.leader !== msg.leader) {
    s.role = 'follower';
    s.votes.clear();
    s.leader = msg.leader;
    s.core.update(s);
  }
  if (s.core.config.monitorLeader && isPid(msg.from) && !(s.leaderPid && pidEquals(s.leaderPid, msg.from))) {
    unwatchLeader(s, ctx);
    s.leaderPid = msg.from;
    s.leaderMonitor = ctx.monitor(msg.from);
  }
  armElection(s, ctx);
  answer(true);
}

function senderOf(msg: ElectionMessage): string {
  switch (msg.type) {
    case 'request_vote':
      return msg.candidate;
    case 'vote_reply':
      return msg.voter;
    case 'append_entries':
      return msg.leader;
    case 'append_reply':
      return msg.member;
    default:
      return '';
  }
}

/** A member: runs Raft's election rules. Started by `ElectionGroup.start`; exported for introspection. */
export const ElectionMember: Behaviour<
  MemberArgs,
  MemberState,
  never,
  never,
  ElectionMessage,
  ElectionTimerMessage
> = {
  init({ core, index }, ctx) {
    const name = core.config.names[index] as string;
    // The persistent state comes from stable storage: a restart is a follower with its old term and vote.
    const saved = core.storage.load(name);
    const incarnation = core.incarnations[index] as number;
    core.incarnations[index] = incarnation + 1;
    const s: MemberState = {
      core,
      index,
      name,
      random: memberRandom(core.config.seed, index, incarnation),
      role: 'follower',
      term: saved?.term ?? 0,
      votedFor: saved?.votedFor,
      leader: undefined,
      votes: new Set(),
      electionTimer: undefined,
      heartbeatTimer: undefined,
      gen: 0,
      leaderMonitor: undefined,
      leaderPid: undefined,
      leaderSince: 0,
      acks: new Map(),
    };
    core.attach(index, ctx.self);
    core.update(s);
    armElection(s, ctx);
    return s;
  },

  handleCast(msg, s, ctx): CastResult<MemberState> {
    if (msg === null || typeof msg !== 'object' || msg.group !== s.core.config.id) return s;
    if (typeof msg.term !== 'number' || !Number.isSafeInteger(msg.term) || msg.term < 0) return s;
    // Only members take part: a stranger's message neither moves our term nor gets an answer.
    if (!s.core.index.has(senderOf(msg))) return s;
    if (msg.term > s.term) adoptTerm(s, ctx, msg.term);
    switch (msg.type) {
      case 'request_vote':
        onRequestVote(s, ctx, msg);
        break;
      case 'append_entries':
        onAppendEntries(s, ctx, msg);
        break;
      case 'vote_reply':
        if (s.role === 'candidate' && msg.term === s.term && msg.granted) {
          s.votes.add(msg.voter);
          if (s.votes.size >= s.core.config.majority) becomeLeader(s, ctx);
        }
        break;
      case 'append_reply':
        if (s.role === 'leader' && msg.term === s.term && msg.success) {
          s.acks.set(msg.member, ctx.runtime.clock.now());
        }
        break;
    }
    return s;
  },

  handleInfo(msg: ElectionTimerMessage | SystemMessage, s, ctx): CastResult<MemberState> {
    switch (msg.type) {
      case 'election_timeout':
        if (msg.gen === s.gen && s.role !== 'leader') startElection(s, ctx);
        return s;
      case 'heartbeat':
        if (msg.gen !== s.gen || s.role !== 'leader') return s;
        if (s.core.config.checkQuorum && !hasQuorum(s, ctx.runtime.clock.now())) {
          s.leader = undefined;
          leaveLeadership(s, ctx, s.term, 'lost_quorum');
          s.core.update(s);
          return s;
        }
        heartbeat(s, ctx);
        return s;
      case 'DOWN':
        // Our leader died: elect a new one soon, not after a full election timeout. The short
        // delay is random per member, so followers do not all split the vote at once.
        if (s.leaderMonitor !== undefined && msg.monitor.monitorId === s.leaderMonitor.monitorId) {
          s.leaderMonitor = undefined;
          s.leaderPid = undefined;
          if (s.role === 'follower') armElection(s, ctx, s.random() * s.core.config.heartbeatMs);
        }
        return s;
      default:
        return s;
    }
  },
};

// ---- options -----------------------------------------------------------------------------------

function isFinitePositive(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v) && v > 0;
}

function resolveOptions(options: unknown): {
  config: Config;
  storage: ElectionStorage;
  transport: ElectionTransport | undefined;
} {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new InvalidArgumentError('election options', 'must be an object', options);
  }
  for (const key of Object.keys(options)) {
    if (!OPTION_KEYS.has(key))
      throw new InvalidArgumentError(`election option ${JSON.stringify(key)}`, 'unknown option');
  }
  const o = options as ElectionOptions;
  let names: string[];
  if (typeof o.members === 'number') {
    if (!Number.isInteger(o.members) || o.members < 1) {
      throw new InvalidArgumentError(
        'election option "members"',
        'must be an integer >= 1 or an array of names',
        o.members,
      );
    }
    names = Array.from({ length: o.members }, (_, i) => `m${i + 1}`);
  } else if (Array.isArray(o.members)) {
    if (o.members.length === 0) {
      throw new InvalidArgumentError('election option "members"', 'must name at least one member', o.members);
    }
    const seen = new Set<string>();
    names = [];
    for (let i = 0; i < o.members.length; i++) {
      const n: unknown = o.members[i];
      if (typeof n !== 'string' || n === '') {
        throw new InvalidArgumentError(`election option "members[${i}]"`, 'must be a non-empty string', n);
      }
      if (seen.has(n))
        throw new InvalidArgumentError(`election option "members[${i}]"`, 'is a duplicate name', n);
      seen.add(n);
      names.push(n);
    }
  } else {
    throw new InvalidArgumentError(
      'election option "members"',
      'must be an integer >= 1 or an array of names',
      o.members,
    );
  }
  const heartbeatMs = o.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
  if (!isFinitePositive(heartbeatMs)) {
    throw new InvalidArgumentError(
      'election option "heartbeatMs"',
      'must be a finite number of ms > 0',
      o.heartbeatMs,
    );
  }
  const range = o.electionTimeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (!Array.isArray(range) || range.length !== 2) {
    throw new InvalidArgumentError('election option "electionTimeoutMs"', 'must be [min, max] in ms', range);
  }
  const [min, max] = range as [unknown, unknown];
  if (!isFinitePositive(min)) {
    throw new InvalidArgumentError(
      'election option "electionTimeoutMs[0]" (min)',
      'must be a finite number of ms > 0',
      min,
    );
  }
  if (!isFinitePositive(max)) {
    throw new InvalidArgumentError(
      'election option "electionTimeoutMs[1]" (max)',
      'must be a finite number of ms > 0',
      max,
    );
  }
  if (min > max) {
    throw new InvalidArgumentError('election option "electionTimeoutMs"', 'min must not exceed max', range);
  }
  if (heartbeatMs >= min) {
    throw new InvalidArgumentError(
      'election option "heartbeatMs"',
      `must be below the minimum election timeout (${min} ms), or followers time out between heartbeats`,
      heartbeatMs,
    );
  }
  const seed = o.seed ?? 0;
  if (typeof seed !== 'number' || !Number.isSafeInteger(seed)) {
    throw new InvalidArgumentError('election option "seed"', 'must be a safe integer', o.seed);
  }
  for (const key of ['monitorLeader', 'checkQuorum'] as const) {
    if (o[key] !== undefined && typeof o[key] !== 'boolean') {
      throw new InvalidArgumentError(`election option "${key}"`, 'must be a boolean', o[key]);
    }
  }
  const ri = o.restartIntensity ?? {};
  if (ri === null || typeof ri !== 'object') {
    throw new InvalidArgumentError(
      'election option "restartIntensity"',
      'must be {intensity?, periodMs?}',
      ri,
    );
  }
  const intensity = ri.intensity ?? 3 * names.length;
  if (!Number.isInteger(intensity) || intensity < 0) {
    throw new InvalidArgumentError(
      'election option "restartIntensity.intensity"',
      'must be an integer >= 0',
      ri.intensity,
    );
  }
  const periodMs = ri.periodMs ?? 5000;
  if (!isFinitePositive(periodMs)) {
    throw new InvalidArgumentError(
      'election option "restartIntensity.periodMs"',
      'must be a finite number of ms > 0',
      ri.periodMs,
    );
  }
  const storage = o.storage ?? new MemoryElectionStorage();
  if (
    storage === null ||
    typeof storage !== 'object' ||
    typeof storage.load !== 'function' ||
    typeof storage.save !== 'function'
  ) {
    throw new InvalidArgumentError('election option "storage"', 'must have load and save functions', storage);
  }
  const id = o.id ?? `election-${globalThis.crypto.randomUUID().slice(0, 8)}`;
  if (typeof id !== 'string' || id === '') {
    throw new InvalidArgumentError('election option "id"', 'must be a non-empty string', o.id);
  }
  if (o.transport !== undefined && typeof o.transport !== 'function') {
    throw new InvalidArgumentError('election option "transport"', 'must be a function', o.transport);
  }
  return {
    transport: o.transport,
    config: {
      id,
      names,
      majority: Math.floor(names.length / 2) + 1,
      heartbeatMs,
      minTimeoutMs: min,
      maxTimeoutMs: max,
      seed,
      monitorLeader: o.monitorLeader ?? true,
      checkQuorum: o.checkQuorum ?? true,
      intensity,
      periodMs,
    },
    storage,
  };
}

// ---- the group ---------------------------------------------------------------------------------

/**
 * A group of members electing a leader. Start it with `ElectionGroup.start(runtime, options)`;
 * the members start as followers and the first election begins when the first election timeout
 * runs out on the runtime's clock.
 */
export class ElectionGroup {
  readonly runtime: Runtime;
  /** The supervisor the members run under (one_for_one, permanent children named by member). */
  readonly supervisor: SupervisorRef;
  /** The group's id, in messages and telemetry metadata. */
  readonly id: string;
  /** How many votes win an election: a majority of all members, running or not. */
  readonly majority: number;
  /** The stable storage of currentTerm and votedFor. */
  readonly storage: ElectionStorage;
  readonly #core: GroupCore;

  private constructor(core: GroupCore, supervisor: SupervisorRef) {
    this.runtime = core.runtime;
    this.supervisor = supervisor;
    this.id = core.config.id;
    this.majority = core.config.majority;
    this.storage = core.storage;
    this.#core = core;
  }

  /**
   * Validate `options` (InvalidArgumentError, naming the option) and start the members under a
   * new top-level supervisor.
   */
  static async start(runtime: Runtime, options: ElectionOptions): Promise<ElectionGroup> {
    const { config, storage, transport } = resolveOptions(options);
    const core = new GroupCore(runtime, config, storage, transport);
    const children = config.names.map((name, index) =>
      Supervisor.childSpec(
        name,
        ElectionMember,
        { core, index },
        { restart: 'permanent', shutdown: 'brutal_kill' },
      ),
    );
    const sup = await Supervisor.start(runtime, {
      strategy: 'one_for_one',
      intensity: config.intensity,
      periodMs: config.periodMs,
      children,
    });
    // Stopped, or gave up after too many restarts: either way no leader will come any more.
    runtime.onExit(sup, (reason) => core.stop(reason));
    return new ElectionGroup(core, sup);
  }

  /**
   * The current leader: the running member that leads in the highest term any running member has
   * reached, or undefined. While members disagree (an election is under way, a follower has not
   * yet heard of the new term, a restarted member brings back a newer term), a leader of an older
   * term is not reported, so at most one member is ever reported and never one that a running
   * member knows to be superseded. A leader that lost its majority is still reported until it
   * steps down (CheckQuorum, within about one maximum election timeout) or hears of a newer term.
   */
  leader(): LeaderInfo | undefined {
    return this.#core.current;
  }

  /** The highest currentTerm among the running members (0 before the first election). */
  term(): number {
    return this.#core.maxTerm();
  }

  /** Every member, in the order given at start. */
  members(): ElectionMemberInfo[] {
    return this.#core.views.map((v, i) => ({
      member: this.#core.config.names[i] as string,
      ref: v.ref,
      role: v.role,
      term: v.term,
      votedFor: v.votedFor,
      leader: v.leader,
    }));
  }

  /** The member's running agent, or undefined while it is down. UnknownMemberError for a stranger. */
  ref(member: string): ElectionMemberRef | undefined {
    return this.#view(member).ref as ElectionMemberRef | undefined;
  }

  /**
   * Resolve with the leader once there is one of term `minTerm` or later (at once if there is),
   * from the members' own state changes, never by polling. Rejects with TimeoutError (E_TIMEOUT)
   * after `timeoutMs` of runtime-clock time, or ElectionStoppedError when the group stops.
   */
  awaitLeader(options: AwaitLeaderOptions = {}): Promise<LeaderInfo> {
    const minTerm = options.minTerm ?? 1;
    const timeoutMs = options.timeoutMs ?? DEFAULT_AWAIT_MS;
    if (typeof minTerm !== 'number' || !Number.isFinite(minTerm)) {
      return Promise.reject(
        new InvalidArgumentError('awaitLeader option "minTerm"', 'must be a finite number', minTerm),
      );
    }
    if (typeof timeoutMs !== 'number' || !(timeoutMs > 0)) {
      return Promise.reject(
        new InvalidArgumentError(
          'awaitLeader option "timeoutMs"',
          'must be a number of ms > 0 (Infinity allowed)',
          timeoutMs,
        ),
      );
    }
    const core = this.#core;
    if (core.stopped !== undefined)
      return Promise.reject(new ElectionStoppedError(this.id, core.stopped.reason));
    const now = core.current;
    if (now !== undefined && now.term >= minTerm) return Promise.resolve(now);
    return new Promise((resolve, reject) => {
      const clock = this.runtime.clock;
      const timer =
        timeoutMs === Number.POSITIVE_INFINITY
          ? undefined
          : clock.setTimeout(() => {
              core.waiters.delete(waiter);
              reject(
                new TimeoutError(`awaitLeader (term >= ${minTerm}) of election group ${this.id}`, timeoutMs),
              );
            }, timeoutMs);
      const waiter: Waiter = {
        minTerm,
        resolve(leader) {
          core.waiters.delete(waiter);
          if (timer !== undefined) clock.clearTimeout(timer);
          resolve(leader);
        },
        reject(error) {
          core.waiters.delete(waiter);
          if (timer !== undefined) clock.clearTimeout(timer);
          reject(error);
        },
      };
      core.waiters.add(waiter);
    });
  }

  /**
   * Cast `LeaderChangedMessage` to `agent` now (the current leader, possibly none) and on every
   * change of `leader()`, in order, until it exits or the returned function is called.
   */
  subscribe(agent: AnyRef | Pid): () => void {
    if (!isPid(agent)) throw new InvalidArgumentError('subscriber', 'must be an agent ref or pid', agent);
    const core = this.#core;
    if (core.stopped !== undefined) throw new ElectionStoppedError(this.id, core.stopped.reason);
    const key = pidKey(agent);
    const existing = core.subscribers.get(key);
    if (existing !== undefined) existing.unhook();
    const removeHook = this.runtime.onExit(agent, () => core.subscribers.delete(key));
    const entry = {
      ref: agent,
      unhook: () => {
        removeHook();
        if (core.subscribers.get(key) === entry) core.subscribers.delete(key);
      },
    };
    core.subscribers.set(key, entry);
    core.notify(agent, core.current);
    return entry.unhook;
  }

  /** Crash a member (exit reason `killed`); its supervisor restarts it as a follower. False if it was down. */
  kill(member: string): boolean {
    const ref = this.#view(member).ref;
    if (ref === undefined) return false;
    this.runtime.kill(ref);
    return true;
  }

  /** Stop a member and keep it down (no restart) until `startMember`. */
  async stopMember(member: string): Promise<void> {
    this.#view(member);
    this.#live();
    await Supervisor.terminateChild(this.runtime, this.supervisor, member);
  }

  /** Start a member that is down (it comes back as a follower); resolves with its ref, or the running one's. */
  async startMember(member: string): Promise<ElectionMemberRef> {
    const view = this.#view(member);
    this.#live();
    if (view.ref !== undefined) return view.ref as ElectionMemberRef;
    return (await Supervisor.restartChild(this.runtime, this.supervisor, member)) as ElectionMemberRef;
  }

  /** Stop every member and the supervisor; pending `awaitLeader` calls reject with ElectionStoppedError. */
  async stop(): Promise<void> {
    if (this.#core.stopped !== undefined || !this.runtime.isAlive(this.supervisor)) return;
    await this.runtime.stop(this.supervisor, 'shutdown');
  }

  /** True until the group is stopped (or its supervisor gives up). */
  get running(): boolean {
    return this.#core.stopped === undefined;
  }

  #view(member: string): View {
    const i = this.#core.index.get(member);
    if (i === undefined) throw new UnknownMemberError(this.id, member);
    return this.#core.views[i] as View;
  }

  #live(): void {
    const stopped = this.#core.stopped;
    if (stopped !== undefined) throw new ElectionStoppedError(this.id, stopped.reason);
  }
}
