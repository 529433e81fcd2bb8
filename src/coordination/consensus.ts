/**
 * Voting consensus as supervised session agents (DESIGN.md, "Coordination sessions are agents").
 *
 * One session agent per proposal, a temporary child of the `Consensus` service's dynamic
 * supervisor. The session monitors every participant, fans the proposal out by cast, and counts
 * the votes participants cast back to it; it never calls a participant, so one slow participant
 * holds up nobody. It decides as soon as the outcome can no longer change (early accept at the
 * threshold, early reject once the threshold is out of reach, a dead participant counting as
 * absent), or at its deadline (a runtime timer, so a VirtualClock drives it in tests). It decides
 * exactly once, resolves the proposer's promise, publishes telemetry and stops.
 *
 * Telemetry: `['mabeam','consensus','reached']` when a proposal is accepted, and
 * `['mabeam','consensus','failed']` (metadata `reason`: `rejected`, `deadline`, `no_quorum` or
 * `session_exit`) otherwise. Measurements carry the tally; metadata the session id and result.
 */
import {
  type AgentContext,
  type AgentRef,
  type AnyRef,
  type Behaviour,
  type CastResult,
  InvalidArgumentError,
  isPid,
  type Pid,
  pidEquals,
  pidKey,
  type Runtime,
  type SystemMessage,
  stop,
} from '../kernel/index.js';
import { SessionService } from './session-service.js';

/** A participant's vote. */
export type Vote = 'yes' | 'no' | 'abstain';

/** The decision rules. */
export type ConsensusRule =
  /** Accepted when more than half of all participants vote yes. */
  | { readonly kind: 'majority' }
  /** Accepted when every participant votes yes (an absent or abstaining one rejects). */
  | { readonly kind: 'unanimous' }
  /**
   * Accepted when the yes weight reaches `threshold` (a fraction in (0, 1]) of the total weight.
   * `weights[i]` belongs to `participants[i]`; weights are finite and non-negative, sum above 0.
   */
  | { readonly kind: 'weighted'; readonly weights: readonly number[]; readonly threshold: number }
  /**
   * Decided at the deadline (or earlier once certain): at least `quorum` votes cast (yes, no or
   * abstain), then accepted when yes votes are more than half of the votes cast.
   */
  | { readonly kind: 'quorum'; readonly quorum: number };

/** What a session casts to each participant. Answer it with `castVote` (or use `withVoting`). */
export interface ProposalMessage<P = unknown> {
  readonly type: 'proposal';
  readonly session: SessionRef;
  readonly id: SessionId;
  readonly proposal: P;
}

/** What a participant casts back to the session. */
export interface VoteMessage {
  readonly type: 'vote';
  readonly id: SessionId;
  readonly from: Pid;
  readonly vote: Vote;
  /**
   * True while the vote is in flight. `castVote` reuses one vote object per participant agent
   * (a round of 100 votes then allocates nothing); whoever reads a vote clears the flag (unless
   * it keeps the object), and a participant whose last vote is still unread casts a fresh one.
   */
  inFlight?: boolean;
}

export type SessionId = number | string;

/** Timer message of a session (its deadline). */
export interface DeadlineMessage {
  /** `deadline`: the session's timer; `check`: re-evaluate after init counted absences. */
  readonly type: 'deadline' | 'check';
}

/** A session agent's handle: it takes votes by cast. */
export type SessionRef = AgentRef<never, never, VoteMessage, DeadlineMessage>;

/** The votes counted so far (counts of participants, not weights). */
export interface Tally {
  yes: number;
  no: number;
  abstain: number;
  /** Participants that died (or were already gone) before voting. */
  absent: number;
  /** Participants still alive that have not voted. */
  pending: number;
  /** Sum of the weights of the yes votes (the yes count for unweighted rules). */
  yesWeight: number;
}

interface ResultBase extends Tally {
  readonly id: SessionId;
  readonly rule: ConsensusRule['kind'];
  readonly participants: number;
  /**
   * What acceptance needs: the yes weight for majority, unanimous and weighted rules, the
   * quorum (votes cast) for the quorum rule.
   */
  readonly threshold: number;
}

/** The vote concluded: the outcome is certain from the votes (and absences) counted. */
export interface ConsensusDecision extends ResultBase {
  readonly decided: true;
  readonly outcome: 'accepted' | 'rejected';
}

/** No decision: the deadline passed undecided, the quorum was not met, or the session died. */
export interface ConsensusFailure extends ResultBase {
  readonly decided: false;
  readonly reason: 'deadline' | 'no_quorum' | 'session_exit';
  /** The session's exit reason, for `session_exit`. */
  readonly exitReason?: unknown;
}

export type ConsensusResult = ConsensusDecision | ConsensusFailure;

/** Options of one proposal. */
export interface ProposeOptions {
  readonly rule?: ConsensusRule;
  /** Runtime-clock ms until the session gives up (quorum: until it counts). Default 5000. */
  readonly deadlineMs?: number;
  /** The session id participants see; default a per-service counter. */
  readonly id?: SessionId;
}

/** Options of the service. */
export interface ConsensusOptions {
  /** Most sessions at once (the dynamic supervisor's maxChildren). Default: no limit. */
  readonly maxSessions?: number;
}

export const CONSENSUS_REACHED = ['mabeam', 'consensus', 'reached'] as const;
export const CONSENSUS_FAILED = ['mabeam', 'consensus', 'failed'] as const;

const DEFAULT_DEADLINE_MS = 5000;
const VOTES: ReadonlySet<unknown> = new Set(['yes', 'no', 'abstain']);

// Per-participant slot states; a typed array keeps the hot path free of allocations.
const PENDING = 0;
const DONE = 1;

/** @internal what a session agent is started with */
export interface SessionArgs {
  readonly id: SessionId;
  readonly participants: readonly Pid[];
  readonly rule: ConsensusRule;
  readonly weights: Float64Array;
  readonly need: number;
  readonly deadlineMs: number;
  readonly proposal: unknown;
  /** Shared with the proposer, so a session that dies still reports its last tally. */
  readonly tally: Tally;
  readonly done: (result: ConsensusResult) => void;
}

interface SessionState {
  readonly args: SessionArgs;
  /**
   * Participant index by pid id; pids are verified in full on lookup. Keyed by the numeric id so
   * counting a vote builds no string; only when ids collide (pids from several nodes or threads)
   * does it fall back to `byKey`.
   */
  readonly byId: Map<number, number>;
  readonly byKey: Map<string, number> | null;
  readonly slots: Uint8Array;
  pendingWeight: number;
  decided: boolean;
}

/**
 * Pure decision step, shared by every vote, DOWN and the deadline: what the tally settles, or
 * undefined while the outcome can still change. Exported for the property test's oracle.
 * @internal
 */
export function evaluate(
  rule: ConsensusRule,
  need: number,
  t: Tally,
  pendingWeight: number,
  atDeadline: boolean,
): { outcome: 'accepted' | 'rejected' } | { reason: 'deadline' | 'no_quorum' } | undefined {
  if (rule.kind === 'quorum') {
    const cast = t.yes + t.no + t.abstain;
    // Pending voters can add k in 0..pending cast votes (or die and add none).
    if (cast + t.pending < need) return { reason: 'no_quorum' };
    if (atDeadline || t.pending === 0) {
      if (cast < need) return { reason: 'no_quorum' };
      return { outcome: 2 * t.yes > cast ? 'accepted' : 'rejected' };
    }
    if (cast >= need) {
      if (2 * t.yes > cast + t.pending) return { outcome: 'accepted' };
      if (2 * t.yes + t.pending <= cast) return { outcome: 'rejected' };
    }
    return undefined;
  }
  // Weights are floats summed in another order than the total `need` came from (0.1 + 0.2 + 0.3
  // is 0.6000000000000001), so "at the threshold" allows a relative rounding slack; for the
  // integer counts of majority and unanimous it changes nothing.
  const reach = need * (1 - 1e-9);
  if (t.yesWeight >= reach) return { outcome: 'accepted' };
  // The pending weight is a running float difference: reject early only when clearly out of
  // reach; once nobody is pending, the comparison above has settled it.
  if (t.yesWeight + pendingWeight < reach) return { outcome: 'rejected' };
  if (t.pending === 0) return { outcome: 'rejected' };
  return atDeadline ? { reason: 'deadline' } : undefined;
}

function finish(
  state: SessionState,
  ctx: AgentContext<never, never, VoteMessage, DeadlineMessage>,
  atDeadline: boolean,
) {
  const { args } = state;
  const verdict = evaluate(args.rule, args.need, args.tally, state.pendingWeight, atDeadline);
  if (verdict === undefined) return state;
  state.decided = true;
  const base = {
    id: args.id,
    rule: args.rule.kind,
    participants: args.participants.length,
    threshold: args.need,
    ...args.tally,
  };
  const result: ConsensusResult =
    'outcome' in verdict
      ? { decided: true, outcome: verdict.outcome, ...base }
      : { decided: false, reason: verdict.reason, ...base };
  args.done(result);
  publish(ctx.runtime, result);
  // `normal`: a decided session is finished work, not a crash, for its temporary supervisor slot.
  return stop('normal', state);
}

function publish(runtime: Runtime, result: ConsensusResult): void {
  const tel = runtime.telemetry;
  if (!tel.enabled) return;
  const measurements = {
    yes: result.yes,
    no: result.no,
    abstain: result.abstain,
    absent: result.absent,
    pending: result.pending,
    yesWeight: result.yesWeight,
  };
  if (result.decided && result.outcome === 'accepted') {
    tel.execute(CONSENSUS_REACHED, measurements, { id: result.id, result });
  } else {
    const reason = result.decided ? 'rejected' : result.reason;
    tel.execute(CONSENSUS_FAILED, measurements, { id: result.id, reason, result });
  }
}

function indexOf(state: SessionState, pid: Pid): number | undefined {
  if (state.byKey !== null) return state.byKey.get(pidKey(pid));
  const i = state.byId.get(pid.id);
  return i !== undefined && pidEquals(state.args.participants[i] as Pid, pid) ? i : undefined;
}

/** The session agent. Started by `Consensus.propose`; exported for supervision introspection. */
export const ConsensusSession: Behaviour<
  SessionArgs,
  SessionState,
  never,
  never,
  VoteMessage,
  DeadlineMessage
> = {
  init(args, ctx) {
    const n = args.participants.length;
    const byId = new Map<number, number>();
    let pendingWeight = 0;
    for (let i = 0; i < n; i++) {
      byId.set((args.participants[i] as Pid).id, i);
      pendingWeight += args.weights[i] as number;
    }
    let byKey: Map<string, number> | null = null;
    if (byId.size !== n) {
      byKey = new Map();
      for (let i = 0; i < n; i++) byKey.set(pidKey(args.participants[i] as Pid), i);
    }
    const state: SessionState = {
      args,
      byId,
      byKey,
      slots: new Uint8Array(n),
      pendingWeight,
      decided: false,
    };
    const msg: ProposalMessage = {
      type: 'proposal',
      session: ctx.self,
      id: args.id,
      proposal: args.proposal,
    };
    let undelivered = 0;
    for (let i = 0; i < n; i++) {
      const p = args.participants[i] as Pid;
      // Monitor before casting: a participant that dies at any point then surely reports DOWN,
      // and a vote it cast before dying is queued ahead of that DOWN (FIFO per sender).
      ctx.monitor(p);
      let delivered: boolean;
      try {
        delivered = ctx.cast(p, msg);
      } catch {
        delivered = false; // a full bounded mailbox that rejects
      }
      if (!delivered) {
        // It will never see the proposal: absent now (a later DOWN finds the slot done).
        undelivered++;
        state.slots[i] = DONE;
        args.tally.pending--;
        args.tally.absent++;
        state.pendingWeight -= args.weights[i] as number;
      }
    }
    ctx.sendAfter({ type: 'deadline' }, args.deadlineMs);
    // Absences may already settle it; decide once init is done (init cannot stop the agent).
    if (undelivered > 0) ctx.send(ctx.self, { type: 'check' });
    return state;
  },

  handleCast(msg, state, ctx): CastResult<SessionState> {
    if (msg.type !== 'vote') return state;
    const { id, from, vote } = msg;
    // Read: the participant may reuse the object now.
    if (msg.inFlight === true) msg.inFlight = false;
    if (state.decided || id !== state.args.id || !VOTES.has(vote)) return state;
    const i = isPid(from) ? indexOf(state, from) : undefined;
    // Unknown voters and second votes are ignored: one participant, one vote.
    if (i === undefined || state.slots[i] !== PENDING) return state;
    state.slots[i] = DONE;
    const t = state.args.tally;
    const w = state.args.weights[i] as number;
    t.pending--;
    state.pendingWeight -= w;
    if (vote === 'yes') {
      t.yes++;
      t.yesWeight += w;
    } else if (vote === 'no') t.no++;
    else t.abstain++;
    return finish(state, ctx, false);
  },

  handleInfo(msg: DeadlineMessage | SystemMessage, state, ctx): CastResult<SessionState> {
    if (state.decided) return state;
    if (msg.type === 'deadline') return finish(state, ctx, true);
    if (msg.type === 'check') return finish(state, ctx, false);
    if (msg.type !== 'DOWN') return state;
    const i = indexOf(state, msg.pid);
    if (i === undefined || state.slots[i] !== PENDING) return state;
    state.slots[i] = DONE;
    const t = state.args.tally;
    t.pending--;
    t.absent++;
    state.pendingWeight -= state.args.weights[i] as number;
    return finish(state, ctx, false);
  },
};

/** Validate a proposal's input and work out weights and the acceptance threshold. */
/**
 * Check what of a rule does not depend on the participants (kind, threshold, weight values, a
 * quorum of at least 1): for rules fixed before the participants are known. `propose` checks
 * the rest (weights per participant, quorum at most the participants).
 */
export function checkRule(rule: unknown): ConsensusRule {
  if (rule === null || typeof rule !== 'object' || !('kind' in rule)) {
    throw new InvalidArgumentError('rule', 'must be {kind: majority|unanimous|weighted|quorum, ...}', rule);
  }
  const r = rule as Record<string, unknown>;
  switch (r.kind) {
    case 'majority':
    case 'unanimous':
      break;
    case 'weighted': {
      const { threshold, weights } = r;
      if (typeof threshold !== 'number' || !(threshold > 0 && threshold <= 1)) {
        throw new InvalidArgumentError('rule threshold', 'must be a fraction in (0, 1]', threshold);
      }
      if (!Array.isArray(weights))
        throw new InvalidArgumentError('rule weights', 'must be an array', weights);
      weights.forEach((w: unknown, i) => {
        if (typeof w !== 'number' || !Number.isFinite(w) || w < 0) {
          throw new InvalidArgumentError(`rule weights[${i}]`, 'must be a finite number >= 0', w);
        }
      });
      break;
    }
    case 'quorum': {
      const q = r.quorum;
      if (typeof q !== 'number' || !Number.isInteger(q) || q < 1) {
        throw new InvalidArgumentError('rule quorum', 'must be an integer >= 1', q);
      }
      break;
    }
    default:
      throw new InvalidArgumentError('rule kind', 'must be majority, unanimous, weighted or quorum', r.kind);
  }
  return rule as ConsensusRule;
}

function prepare(
  participants: unknown,
  rule: unknown,
  deadlineMs: unknown,
): { pids: Pid[]; weights: Float64Array; need: number } {
  if (!Array.isArray(participants) || participants.length === 0) {
    throw new InvalidArgumentError(
      'participants',
      'must be a non-empty array of agent refs or pids',
      participants,
    );
  }
  const seen = new Set<string>();
  const pids: Pid[] = [];
  for (let i = 0; i < participants.length; i++) {
    const p: unknown = participants[i];
    if (!isPid(p)) throw new InvalidArgumentError(`participants[${i}]`, 'must be an agent ref or pid', p);
    const key = pidKey(p);
    if (seen.has(key)) throw new InvalidArgumentError(`participants[${i}]`, 'is a duplicate participant', p);
    seen.add(key);
    pids.push(p);
  }
  if (typeof deadlineMs !== 'number' || !Number.isFinite(deadlineMs) || deadlineMs < 0) {
    throw new InvalidArgumentError('deadlineMs', 'must be a finite number >= 0', deadlineMs);
  }
  const n = pids.length;
  const weights = new Float64Array(n).fill(1);
  if (rule === null || typeof rule !== 'object' || !('kind' in rule)) {
    throw new InvalidArgumentError('rule', 'must be {kind: majority|unanimous|weighted|quorum, ...}', rule);
  }
  const r = rule as Record<string, unknown>;
  switch (r.kind) {
    case 'majority':
      return { pids, weights, need: Math.floor(n / 2) + 1 };
    case 'unanimous':
      return { pids, weights, need: n };
    case 'weighted': {
      const { threshold, weights: ws } = r;
      if (typeof threshold !== 'number' || !(threshold > 0 && threshold <= 1)) {
        throw new InvalidArgumentError('rule threshold', 'must be a fraction in (0, 1]', threshold);
      }
      if (!Array.isArray(ws) || ws.length !== n) {
        throw new InvalidArgumentError(
          'rule weights',
          `must be an array of ${n} weights, one per participant`,
          ws,
        );
      }
      let total = 0;
      for (let i = 0; i < n; i++) {
        const w: unknown = ws[i];
        if (typeof w !== 'number' || !Number.isFinite(w) || w < 0) {
          throw new InvalidArgumentError(`rule weights[${i}]`, 'must be a finite number >= 0', w);
        }
        weights[i] = w;
        total += w;
      }
      if (!(total > 0)) throw new InvalidArgumentError('rule weights', 'must sum to more than 0', ws);
      return { pids, weights, need: threshold * total };
    }
    case 'quorum': {
      const q = r.quorum;
      if (typeof q !== 'number' || !Number.isInteger(q) || q < 1 || q > n) {
        throw new InvalidArgumentError(
          'rule quorum',
          `must be an integer from 1 to ${n} (the participants)`,
          q,
        );
      }
      return { pids, weights, need: q };
    }
    default:
      throw new InvalidArgumentError('rule kind', 'must be majority, unanimous, weighted or quorum', r.kind);
  }
}

/**
 * The consensus service: owns a dynamic supervisor whose temporary children are the sessions.
 * Start it with `Consensus.start(runtime)`.
 */
export class Consensus extends SessionService {
  /** Start the service (a top-level dynamic supervisor on `runtime`). */
  static async start(runtime: Runtime, options: ConsensusOptions = {}): Promise<Consensus> {
    return new Consensus(runtime, await SessionService.startSupervisor(runtime, options.maxSessions));
  }

  /**
   * Put `proposal` to `participants` under `options.rule` (default majority) and resolve with the
   * session's result. Never rejects for a vote's outcome; rejects with InvalidArgumentError
   * (E_INVALID_ARGUMENT, naming the value) for bad input, or with the supervisor's error when the
   * session cannot start.
   */
  async propose<P>(
    participants: readonly (AnyRef | Pid)[],
    proposal: P,
    options: ProposeOptions = {},
  ): Promise<ConsensusResult> {
    const rule = options.rule ?? { kind: 'majority' };
    const deadlineMs = options.deadlineMs ?? DEFAULT_DEADLINE_MS;
    const { pids, weights, need } = prepare(participants, rule, deadlineMs);
    const id = options.id ?? this.nextSessionId();
    const tally: Tally = { yes: 0, no: 0, abstain: 0, absent: 0, pending: pids.length, yesWeight: 0 };
    let settle!: (r: ConsensusResult) => void;
    let settled = false;
    const result = new Promise<ConsensusResult>((resolve) => {
      settle = (r) => {
        if (settled) return;
        settled = true;
        resolve(r);
      };
    });
    const args: SessionArgs = {
      id,
      participants: pids,
      rule,
      weights,
      need,
      deadlineMs,
      proposal,
      tally,
      done: settle,
    };
    // A session killed before deciding (supervisor shutdown, `kill`) still ends the proposal.
    await this.startSession(id, ConsensusSession, args, (exitReason) => {
      if (settled) return;
      const failure: ConsensusFailure = {
        decided: false,
        reason: 'session_exit',
        exitReason,
        id,
        rule: rule.kind,
        participants: pids.length,
        threshold: need,
        ...tally,
      };
      settle(failure);
      publish(this.runtime, failure);
    });
    return result;
  }
  // stop() (from SessionService): running sessions end with `session_exit`.
}

type MaybePromise<T> = T | Promise<T>;

/** True when a cast message is a consensus proposal. */
export function isProposal(msg: unknown): msg is ProposalMessage {
  return (
    msg !== null &&
    typeof msg === 'object' &&
    (msg as { type?: unknown }).type === 'proposal' &&
    isPid((msg as { session?: unknown }).session)
  );
}

interface PooledVote {
  readonly type: 'vote';
  id: SessionId;
  from: Pid;
  vote: Vote;
  inFlight: boolean;
}
/** Per agent (`ctx.local`): the vote object it reuses. */
interface VoteSlot {
  vote: PooledVote;
}
const POOLED_VOTE = {};
const blankSlot = (): VoteSlot => ({
  vote: { type: 'vote', id: '', from: null as unknown as Pid, vote: 'abstain', inFlight: false },
});

/**
 * Answer `proposal` from inside a participant's callback: cast the vote to its session. The
 * agent's vote object is reused once the session has read it (see `VoteMessage.inFlight`); while
 * it is unread (a session that decided early and stopped never reads it), a fresh one is cast and
 * kept for reuse instead.
 */
export function castVote(
  ctx: AgentContext<unknown, unknown, unknown, unknown>,
  proposal: ProposalMessage,
  vote: Vote,
): void {
  const slot = ctx.local(POOLED_VOTE, blankSlot);
  let msg = slot.vote;
  if (msg.inFlight) {
    msg = { type: 'vote', id: proposal.id, from: ctx.self, vote, inFlight: true };
    slot.vote = msg;
  } else {
    msg.id = proposal.id;
    msg.from = ctx.self;
    msg.vote = vote;
    msg.inFlight = true;
  }
  ctx.cast(proposal.session, msg);
}

/**
 * How a participant decides: from the proposal and its own state. Return the vote, or the vote
 * and the next state (to remember what it voted for, say); `null` withholds the vote (the session
 * then counts the participant as pending until its deadline).
 */
export type DecideVote<P, S> = (
  proposal: P,
  state: S,
  msg: ProposalMessage<P>,
) => MaybePromise<Vote | null | { vote: Vote | null; state: S }>;

/**
 * Make `base` a consensus participant: proposals go to `decide`, whose vote is cast to the
 * session; every other cast goes to `base.handleCast`. The vote is the agent's own: the session
 * never chooses it.
 */
export function withVoting<A, S, C, R, K, I, P = unknown>(
  base: Behaviour<A, S, C, R, K, I>,
  decide: DecideVote<P, S>,
): Behaviour<A, S, C, R, K | ProposalMessage<P>, I> {
  const inner = base.handleCast;
  // Hot path (one call per proposal per participant): no closure unless the decision is async.
  const apply = (
    a: Vote | null | { vote: Vote | null; state: S },
    p: ProposalMessage<P>,
    state: S,
    ctx: AgentContext<C, R, K | ProposalMessage<P>, I>,
  ): S => {
    if (a === null) return state;
    if (typeof a === 'string') {
      castVote(ctx as AgentContext<unknown, unknown, unknown, unknown>, p, a);
      return state;
    }
    if (a.vote !== null) castVote(ctx as AgentContext<unknown, unknown, unknown, unknown>, p, a.vote);
    return a.state;
  };
  const wrapped: Behaviour<A, S, C, R, K | ProposalMessage<P>, I> = {
    ...(base as unknown as Behaviour<A, S, C, R, K | ProposalMessage<P>, I>),
    handleCast(msg, state, ctx) {
      if (isProposal(msg)) {
        const p = msg as ProposalMessage<P>;
        const answered = decide(p.proposal, state, p);
        return answered instanceof Promise
          ? answered.then((a) => apply(a, p, state, ctx))
          : apply(answered, p, state, ctx);
      }
      if (inner === undefined) return state;
      return inner.call(base, msg as K, state, ctx as unknown as AgentContext<C, R, K, I>);
    },
  };
  return wrapped;
}
