/**
 * The auction session agent: one per auction, a temporary child of the `Auctions` service's
 * dynamic supervisor. It monitors every bidder, casts bid requests, validates and collects the
 * bids bidders cast back (never calling a bidder, so a slow one holds up nobody), runs the clock
 * with runtime timers (rounds, ticks, deadline), closes exactly once, resolves the starter's
 * promise, publishes `['mabeam','auction','closed']` and stops.
 *
 * Bidders are identified by a token, not by the sender a message names (a cast does not carry
 * its sender): each bidder's requests carry a secret of its own, 128 random bits drawn per
 * auction, and a bid counts as that bidder's only when it brings the secret back.
 */
import { randomBytes } from 'node:crypto';
import {
  type AgentContext,
  type Behaviour,
  type CastResult,
  isPid,
  type Pid,
  pidEquals,
  pidKey,
  type Runtime,
  type SystemMessage,
  stop,
} from '../kernel/index.js';
import {
  AUCTION_CLOSED,
  type AuctionErrorCode,
  AuctionErrorCodes,
  type AuctionId,
  type AuctionResult,
  type AuctionTimer,
  type Award,
  type BidMessage,
  BidRejectedError,
  type BidRejection,
  type BidRequest,
  type BudgetOf,
  type BundleOffer,
  type EndedBy,
  type Rejection,
} from './auction-types.js';
import {
  budgetVerdict,
  type NormalSpec,
  singleItemVerdict,
  type Verdict,
  vcgVerdict,
} from './auction-validate.js';
import {
  type BundleBid,
  dutchPrice,
  firstPriceOutcome,
  type ItemId,
  type SealedBid,
  secondPriceOutcome,
  vcgAuction,
} from './mechanisms.js';

/** What the starter and the session share, so a session that dies still reports its progress. */
export interface Progress {
  validBids: number;
  readonly rejected: Rejection[];
  readonly dropped: Pid[];
  rounds: number;
  readonly startedAt: number;
}

/** @internal what a session agent is started with */
export interface SessionArgs {
  readonly id: AuctionId;
  readonly spec: NormalSpec;
  readonly bidders: readonly Pid[];
  readonly lot: unknown;
  readonly budgetOf: BudgetOf | undefined;
  readonly progress: Progress;
  readonly done: (result: AuctionResult) => void;
}

/** After this many rejections in one round a bidder counts as having passed (it is still told). */
const MAX_REJECTIONS_PER_ROUND = 5;
/** Random bytes of a bidder token. */
const TOKEN_BYTES = 16;

interface SessionState {
  readonly args: SessionArgs;
  readonly byId: Map<number, number>;
  readonly byKey: Map<string, number> | null;
  /** Each bidder's secret token, and the bidder of each token. */
  readonly tokens: readonly string[];
  readonly byToken: Map<string, number>;
  readonly alive: Uint8Array;
  /** Per round: answered (bid or passed), or not asked (English leader). */
  readonly answered: Uint8Array;
  readonly rejects: Uint8Array;
  /** English: rejections this round of bids for a past round (capped apart, never a pass). */
  readonly stale: Uint8Array;
  /** Live bidders asked this round that have not answered. */
  pending: number;
  live: number;
  round: number;
  /** Arrival counter of valid bids (the tie-break). */
  seq: number;
  closed: boolean;
  /** Sealed: each bidder's bid (NaN = none); English: the bidder's latest valid bid. */
  readonly amounts: Float64Array;
  readonly seqs: Float64Array;
  /** English: every valid bid so far, for falling back when the leader crashes. */
  readonly history: { idx: number; amount: number; seq: number }[];
  leader: number;
  ask: number;
  newBid: boolean;
  /** Dutch: the clock price. */
  price: number;
  /** Non-bidders already told they are not bidders. */
  readonly strangers: Set<string>;
  /** VCG: each bidder's validated bundles. */
  readonly offers: (readonly BundleOffer[] | null)[];
}

type Ctx = AgentContext<never, never, BidMessage, AuctionTimer>;

function indexOf(state: SessionState, pid: Pid): number | undefined {
  if (state.byKey !== null) return state.byKey.get(pidKey(pid));
  const i = state.byId.get(pid.id);
  return i !== undefined && pidEquals(state.args.bidders[i] as Pid, pid) ? i : undefined;
}

/** A request without its token (broadcast adds each bidder's own). */
type Untokened<R> = R extends unknown ? Omit<R, 'token'> : never;

function request(state: SessionState, ctx: Ctx): Untokened<BidRequest> {
  const { args } = state;
  const { spec } = args;
  const base = {
    type: 'bid_request',
    auction: ctx.self,
    id: args.id,
    round: state.round,
    lot: args.lot,
  } as const;
  // VCG: supply and reserve are frozen copies (normalize), safe to share with every bidder.
  switch (spec.kind) {
    case 'first_price':
    case 'vickrey':
      return { ...base, kind: spec.kind, item: spec.item, reserve: spec.reserve };
    case 'english':
      return {
        ...base,
        kind: 'english',
        item: spec.item,
        ask: state.ask,
        standing: state.leader < 0 ? null : (state.amounts[state.leader] as number),
        increment: spec.increment,
      };
    case 'dutch':
      return { ...base, kind: 'dutch', item: spec.item, price: state.price };
    case 'vcg':
      return { ...base, kind: 'vcg', supply: spec.supply, reserve: spec.reserve };
  }
}

/** Cast, reporting a full mailbox (overflow policy `reject`) as not delivered instead of throwing. */
function deliver(ctx: Ctx, to: Pid, msg: unknown): boolean {
  try {
    return ctx.cast(to as never, msg as never);
  } catch {
    return false;
  }
}

/** Cast the current request to every live bidder not excluded; returns how many were asked. */
function broadcast(state: SessionState, ctx: Ctx, except = -1): number {
  const msg = request(state, ctx);
  const { bidders } = state.args;
  let asked = 0;
  for (let i = 0; i < bidders.length; i++) {
    if (state.alive[i] === 0 || i === except) continue;
    // A bidder whose bounded mailbox refuses the request is not asked this round (it cannot
    // answer what it never got); the auction goes on with the others.
    if (deliver(ctx, bidders[i] as Pid, { ...msg, token: state.tokens[i] as string } as BidRequest)) asked++;
    else state.answered[i] = 1;
  }
  return asked;
}

function finish(state: SessionState, ctx: Ctx, endedBy: EndedBy): CastResult<SessionState> {
  dropDead(state, ctx);
  state.closed = true;
  const result = outcome(state, endedBy, ctx.runtime.clock.now());
  state.args.done(result);
  publish(ctx.runtime, result);
  // `normal`: a closed auction is finished work, not a crash, for its temporary supervisor slot.
  return stop('normal', state);
}

/** The result from the bids collected (pure apart from reading the state). */
function outcome(state: SessionState, endedBy: EndedBy, now: number): AuctionResult {
  const { args } = state;
  const { spec, bidders, progress } = args;
  const base = {
    id: args.id,
    kind: spec.kind,
    bidders: bidders.length,
    validBids: progress.validBids,
    rejected: progress.rejected,
    dropped: progress.dropped,
    endedBy,
    rounds: progress.rounds,
    durationMs: now - progress.startedAt,
  };
  const sold = (winners: Award[], extra: { method?: 'exact' | 'greedy'; welfare?: number } = {}) => {
    let revenue = 0;
    for (const w of winners) revenue += w.price;
    return { ...base, outcome: 'sold' as const, winners, revenue, ...extra };
  };
  const one = (idx: number, item: ItemId, bid: number, price: number): Award[] => [
    { bidder: bidders[idx] as Pid, items: { [item]: 1 }, bid, price },
  ];
  switch (spec.kind) {
    case 'first_price':
    case 'vickrey': {
      const bids: SealedBid[] = [];
      for (let i = 0; i < bidders.length; i++) {
        const amount = state.amounts[i] as number;
        if (state.alive[i] === 1 && !Number.isNaN(amount)) {
          bids.push({ bidder: String(i), amount, seq: state.seqs[i] as number });
        }
      }
      const decide = spec.kind === 'vickrey' ? secondPriceOutcome : firstPriceOutcome;
      const won = decide(bids, spec.reserve);
      if (won === null) return { ...base, outcome: 'unsold' };
      return sold(one(Number(won.winner.bidder), spec.item, won.winner.amount, won.price));
    }
    case 'english': {
      if (state.leader < 0) return { ...base, outcome: 'unsold' };
      const amount = state.amounts[state.leader] as number;
      return sold(one(state.leader, spec.item, amount, amount));
    }
    case 'dutch': {
      // A Dutch auction closes sold only from `accept`, which builds its own result.
      return { ...base, outcome: 'unsold' };
    }
    case 'vcg': {
      const bids: BundleBid[] = [];
      for (let i = 0; i < bidders.length; i++) {
        const offers = state.offers[i];
        if (state.alive[i] === 0 || offers == null) continue;
        const seq = state.seqs[i] as number;
        for (const o of offers) bids.push({ bidder: String(i), items: o.items, amount: o.amount, seq });
      }
      const out = vcgAuction(bids, spec.supply, { reserve: spec.reserve, exactMaxBids: spec.exactMaxBids });
      if (out.winners.length === 0) return { ...base, outcome: 'unsold', method: out.method };
      const winners = out.winners.map(
        (w): Award => ({
          bidder: bidders[Number(w.bidder)] as Pid,
          items: w.items,
          bid: w.amount,
          price: w.price,
        }),
      );
      return sold(winners, { method: out.method, welfare: out.welfare });
    }
  }
}

/** @internal publish the close of an auction (also used by the service for aborted sessions) */
export function publish(runtime: Runtime, result: AuctionResult): void {
  const tel = runtime.telemetry;
  if (!tel.enabled) return;
  const winners = result.outcome === 'sold' ? result.winners : [];
  tel.execute(
    AUCTION_CLOSED,
    {
      revenue: result.outcome === 'sold' ? result.revenue : 0,
      winners: winners.length,
      validBids: result.validBids,
      rejected: result.rejected.length,
      dropped: result.dropped.length,
      rounds: result.rounds,
      durationMs: result.durationMs,
    },
    {
      id: result.id,
      kind: result.kind,
      outcome: result.outcome,
      endedBy: result.endedBy,
      winners: winners.map((w) => ({ bidder: w.bidder, items: w.items, price: w.price })),
      result,
    },
  );
}

/**
 * Cast a rejection and record it: to bidder `idx` (with its token; counted towards its round cap
 * unless `counted` is false), or with `idx` undefined to `to`, a sender without a valid token.
 */
function reject(
  state: SessionState,
  ctx: Ctx,
  to: Pid,
  idx: number | undefined,
  round: number,
  code: AuctionErrorCode,
  detail: string,
  bid: unknown,
  counted = true,
): CastResult<SessionState> {
  const error = new BidRejectedError(code, state.args.id, detail, bid);
  state.args.progress.rejected.push({ bidder: to, round, code, message: error.message });
  const msg: BidRejection = {
    type: 'bid_rejected',
    auction: ctx.self,
    id: state.args.id,
    round,
    code,
    error,
    bid,
    token: idx === undefined ? '' : (state.tokens[idx] as string),
  };
  deliver(ctx, to, msg);
  if (counted && idx !== undefined && ++(state.rejects[idx] as number) >= MAX_REJECTIONS_PER_ROUND)
    return answer(state, ctx, idx);
  return state;
}

/**
 * Reject a bid over budget. When the budget could not be read at all (the lookup threw), the
 * bidder also counts as having passed this round: the auction does not wait on a lookup that
 * will most likely fail again.
 */
function rejectBudget(
  state: SessionState,
  ctx: Ctx,
  idx: number,
  round: number,
  verdict: NonNullable<Verdict>,
  bid: unknown,
): CastResult<SessionState> {
  const bidder = state.args.bidders[idx] as Pid;
  const after = reject(state, ctx, bidder, idx, round, verdict.code, verdict.detail, bid);
  if (verdict.code !== AuctionErrorCodes.BUDGET_UNAVAILABLE || state.closed) return after;
  return state.args.spec.kind === 'dutch' ? after : answer(state, ctx, idx);
}

/** Mark `idx` as having answered this round; close or end the round once everyone has. */
function answer(state: SessionState, ctx: Ctx, idx: number): CastResult<SessionState> {
  if (state.answered[idx] === 1) return state;
  state.answered[idx] = 1;
  state.pending--;
  return settle(state, ctx);
}

function settle(state: SessionState, ctx: Ctx): CastResult<SessionState> {
  if (state.live === 0) return finish(state, ctx, 'no_bidders');
  if (state.pending > 0) return state;
  switch (state.args.spec.kind) {
    case 'first_price':
    case 'vickrey':
    case 'vcg':
      return finish(state, ctx, 'all_answered');
    case 'english':
      return endRound(state, ctx);
    case 'dutch':
      return state;
  }
}

function endRound(state: SessionState, ctx: Ctx): CastResult<SessionState> {
  // A leader found dead here (its DOWN not handled yet) is replaced as in onDown: a new round.
  if (dropDead(state, ctx)) return restartRound(state, ctx);
  if (!state.newBid) return finish(state, ctx, 'no_new_bid');
  return startRound(state, ctx);
}

/** English, after the leader fell back: end this round and ask again from the new standing bid. */
function restartRound(state: SessionState, ctx: Ctx): CastResult<SessionState> {
  if (state.live === 0) return finish(state, ctx, 'no_bidders');
  return startRound(state, ctx);
}

function startRound(state: SessionState, ctx: Ctx): CastResult<SessionState> {
  const spec = state.args.spec;
  if (spec.kind !== 'english') return state;
  state.round++;
  state.args.progress.rounds = state.round;
  state.newBid = false;
  state.rejects.fill(0);
  state.stale.fill(0);
  state.answered.fill(0);
  state.ask = state.leader < 0 ? spec.startPrice : (state.amounts[state.leader] as number) + spec.increment;
  if (state.leader >= 0) state.answered[state.leader] = 1;
  state.pending = broadcast(state, ctx, state.leader);
  // Nobody left to outbid the leader: this round can bring no new bid.
  if (state.pending === 0) return finish(state, ctx, state.live === 0 ? 'no_bidders' : 'no_new_bid');
  ctx.sendAfter({ type: 'round_end', round: state.round }, spec.roundMs);
  return state;
}

function onBid(state: SessionState, ctx: Ctx, msg: BidMessage): CastResult<SessionState> {
  const { round, bid, token } = msg;
  // The token, not `from`, says whose bid this is: `from` is whatever the sender wrote.
  const idx = typeof token === 'string' ? state.byToken.get(token) : undefined;
  if (idx === undefined) {
    const { from } = msg;
    if (!isPid(from)) return state;
    // Told once per sender; a stranger answering its rejection (a pass or a bid) is not answered
    // again. The rejection carries no token, and counts towards no bidder's cap.
    const key = pidKey(from);
    if (bid === null || state.strangers.has(key)) return state;
    state.strangers.add(key);
    return reject(
      state,
      ctx,
      from,
      undefined,
      round,
      AuctionErrorCodes.NOT_BIDDER,
      `no valid bidder token from ${key}: not a bidder of this auction, or not answering its own request`,
      bid,
    );
  }
  if (state.alive[idx] === 0) return state;
  const from = state.args.bidders[idx] as Pid;
  // Past the cap a bidder's bids this round are ignored: no rejection ping-pong with a bidder
  // that keeps re-sending an invalid bid.
  if (bid !== null && (state.rejects[idx] as number) >= MAX_REJECTIONS_PER_ROUND) return state;
  const spec = state.args.spec;
  if (spec.kind === 'english' && round !== state.round) {
    // A late answer to a past round says nothing about this one: it is not a pass, and its
    // rejections are capped on their own (no ping-pong) without using up this round's cap.
    if (bid === null || (state.stale[idx] as number) >= MAX_REJECTIONS_PER_ROUND) return state;
    state.stale[idx] = (state.stale[idx] as number) + 1;
    return reject(
      state,
      ctx,
      from,
      idx,
      round,
      AuctionErrorCodes.STALE_ROUND,
      `round ${round} is over (now ${state.round})`,
      bid,
      false,
    );
  }
  if (bid === null) return spec.kind === 'dutch' ? state : answer(state, ctx, idx);

  if (spec.kind === 'vcg') {
    if (state.offers[idx] != null) {
      return reject(
        state,
        ctx,
        from,
        idx,
        round,
        AuctionErrorCodes.DUPLICATE_BID,
        'this bidder has already bid',
        bid,
      );
    }
    const v = vcgVerdict(spec, bid);
    if (!Array.isArray(v)) {
      const { code, detail } = v as NonNullable<Verdict>;
      return reject(state, ctx, from, idx, round, code, detail, bid);
    }
    let top = 0;
    for (const o of v as readonly BundleOffer[]) top = Math.max(top, o.amount);
    const over = budgetVerdict(state.args.budgetOf, from, top);
    if (over !== undefined) return rejectBudget(state, ctx, idx, round, over, bid);
    state.offers[idx] = v as readonly BundleOffer[];
    state.seqs[idx] = state.seq++;
    state.args.progress.validBids++;
    return answer(state, ctx, idx);
  }

  const checked = singleItemVerdict(spec.item, bid);
  if (typeof checked !== 'number') {
    const { code, detail } = checked as NonNullable<Verdict>;
    return reject(state, ctx, from, idx, round, code, detail, bid);
  }
  const amount = checked;
  let verdict: Verdict;
  switch (spec.kind) {
    case 'first_price':
    case 'vickrey':
      if (!Number.isNaN(state.amounts[idx] as number)) {
        verdict = { code: AuctionErrorCodes.DUPLICATE_BID, detail: 'this bidder has already bid' };
      } else if (amount < spec.reserve) {
        verdict = {
          code: AuctionErrorCodes.BELOW_RESERVE,
          detail: `amount ${amount} is below the reserve ${spec.reserve}`,
        };
      }
      break;
    case 'english':
      if (idx === state.leader) {
        verdict = { code: AuctionErrorCodes.ALREADY_LEADING, detail: 'the leader cannot outbid itself' };
      } else if (state.answered[idx] === 1) {
        verdict = { code: AuctionErrorCodes.DUPLICATE_BID, detail: `already answered round ${round}` };
      } else if (amount < state.ask) {
        verdict = {
          code: AuctionErrorCodes.BID_TOO_LOW,
          detail: `amount ${amount} is below the ask ${state.ask}`,
        };
      }
      break;
    case 'dutch':
      if (amount < state.price) {
        verdict = {
          code: AuctionErrorCodes.BID_TOO_LOW,
          detail: `amount ${amount} is below the clock price ${state.price}`,
        };
      }
      break;
  }
  if (verdict !== undefined) return reject(state, ctx, from, idx, round, verdict.code, verdict.detail, bid);
  const over = budgetVerdict(state.args.budgetOf, from, amount);
  if (over !== undefined) return rejectBudget(state, ctx, idx, round, over, bid);
  // Dutch: an acceptance closes at once, but it may have been cast just before its bidder died
  // (its DOWN still queued): a dead bidder never wins.
  if (spec.kind === 'dutch' && !isLive(ctx, from)) {
    drop(state, idx);
    return state.live === 0 ? finish(state, ctx, 'no_bidders') : state;
  }

  state.args.progress.validBids++;
  const seq = state.seq++;
  switch (spec.kind) {
    case 'first_price':
    case 'vickrey':
      state.amounts[idx] = amount;
      state.seqs[idx] = seq;
      return answer(state, ctx, idx);
    case 'english': {
      state.amounts[idx] = amount;
      state.seqs[idx] = seq;
      state.history.push({ idx, amount, seq });
      state.newBid = true;
      // Strictly higher takes the lead; an equal later bid does not (earliest valid bid wins ties).
      if (state.leader < 0 || amount > (state.amounts[state.leader] as number)) state.leader = idx;
      return answer(state, ctx, idx);
    }
    case 'dutch':
      return accept(state, ctx, idx, amount);
  }
}

/** False only for a local bidder that is gone (remote ones are left to their DOWN). */
function isLive(ctx: Ctx, pid: Pid): boolean {
  const rt = ctx.runtime;
  return pid.node !== rt.node || pid.thread !== rt.thread || rt.isAlive(pid);
}

/** Mark bidder `idx` dropped (it crashed or is gone); its bids no longer count. */
function drop(state: SessionState, idx: number): void {
  state.alive[idx] = 0;
  state.live--;
  state.args.progress.dropped.push(state.args.bidders[idx] as Pid);
}

/**
 * Before a close: drop the live local bidders that are already gone but whose DOWN is not handled
 * yet, so a dead bidder never wins. English: true when the leader was among them (the best live
 * bid then stands instead).
 */
function dropDead(state: SessionState, ctx: Ctx): boolean {
  const { bidders } = state.args;
  let leaderLost = false;
  for (let i = 0; i < bidders.length; i++) {
    if (state.alive[i] === 0 || isLive(ctx, bidders[i] as Pid)) continue;
    drop(state, i);
    if (i === state.leader) leaderLost = true;
  }
  if (leaderLost) fallBack(state);
  return leaderLost;
}

function accept(state: SessionState, ctx: Ctx, idx: number, amount: number): CastResult<SessionState> {
  const spec = state.args.spec;
  if (spec.kind !== 'dutch') return state;
  state.closed = true;
  const { args } = state;
  const result: AuctionResult = {
    ...outcome(state, 'accepted', ctx.runtime.clock.now()),
    outcome: 'sold',
    winners: [
      { bidder: args.bidders[idx] as Pid, items: { [spec.item]: 1 }, bid: amount, price: state.price },
    ],
    revenue: state.price,
  };
  args.done(result);
  publish(ctx.runtime, result);
  return stop('normal', state);
}

/** English: the leader crashed; the best live bid so far (earliest on ties) stands instead. */
function fallBack(state: SessionState): void {
  let best: { idx: number; amount: number; seq: number } | undefined;
  for (const h of state.history) {
    if (state.alive[h.idx] === 0) continue;
    if (best === undefined || h.amount > best.amount) best = h;
  }
  state.leader = best === undefined ? -1 : best.idx;
  if (best !== undefined) {
    state.amounts[best.idx] = best.amount;
    state.seqs[best.idx] = best.seq;
  }
}

function onDown(state: SessionState, ctx: Ctx, pid: Pid): CastResult<SessionState> {
  const idx = indexOf(state, pid);
  if (idx === undefined || state.alive[idx] === 0) return state;
  drop(state, idx);
  if (state.args.spec.kind === 'english' && idx === state.leader) {
    // The standing bid falls back, so this round's ask (from the crashed leader's bid) is stale:
    // end the round and start one asking the new standing bid + increment (or the start price),
    // of every live bidder, including those that passed at the old ask.
    fallBack(state);
    return restartRound(state, ctx);
  }
  if (state.answered[idx] === 0) {
    state.answered[idx] = 1;
    state.pending--;
  }
  return settle(state, ctx);
}

function onTimer(state: SessionState, ctx: Ctx, msg: AuctionTimer): CastResult<SessionState> {
  const spec = state.args.spec;
  switch (msg.type) {
    case 'deadline':
      return finish(state, ctx, 'deadline');
    case 'round_end':
      return msg.round === state.round ? endRound(state, ctx) : state;
    case 'tick': {
      if (spec.kind !== 'dutch' || msg.round !== state.round) return state;
      // The tick count is fixed up front (with a tolerance), not decided by float rounding here.
      const tick = state.round + 1;
      if (tick > spec.lastTick) return finish(state, ctx, 'floor');
      const price = dutchPrice(spec.startPrice, spec.decrement, tick, spec.reserve);
      if (!(price > 0)) return finish(state, ctx, 'floor');
      state.round++;
      state.args.progress.rounds = state.round + 1;
      state.price = price;
      state.rejects.fill(0);
      broadcast(state, ctx);
      ctx.sendAfter({ type: 'tick', round: state.round }, spec.tickMs);
      return state;
    }
  }
}

/** The session agent. Started by `Auctions.start`; exported for supervision introspection. */
export const AuctionSession: Behaviour<SessionArgs, SessionState, never, never, BidMessage, AuctionTimer> = {
  init(args, ctx) {
    const n = args.bidders.length;
    const byId = new Map<number, number>();
    for (let i = 0; i < n; i++) byId.set((args.bidders[i] as Pid).id, i);
    let byKey: Map<string, number> | null = null;
    if (byId.size !== n) {
      byKey = new Map();
      for (let i = 0; i < n; i++) byKey.set(pidKey(args.bidders[i] as Pid), i);
    }
    const { spec } = args;
    // One draw for all the tokens: 128 random bits per bidder, unguessable by the other agents.
    const random = randomBytes(TOKEN_BYTES * n);
    const tokens: string[] = new Array(n);
    const byToken = new Map<string, number>();
    for (let i = 0; i < n; i++) {
      const token = random.toString('base64url', TOKEN_BYTES * i, TOKEN_BYTES * (i + 1));
      tokens[i] = token;
      byToken.set(token, i);
    }
    const state: SessionState = {
      args,
      byId,
      byKey,
      tokens,
      byToken,
      alive: new Uint8Array(n).fill(1),
      answered: new Uint8Array(n),
      rejects: new Uint8Array(n),
      stale: new Uint8Array(n),
      pending: n,
      live: n,
      round: 0,
      seq: 0,
      closed: false,
      amounts: new Float64Array(n).fill(Number.NaN),
      seqs: new Float64Array(n),
      history: [],
      leader: -1,
      ask: spec.kind === 'english' ? spec.startPrice : 0,
      newBid: false,
      price: spec.kind === 'dutch' ? spec.startPrice : 0,
      strangers: new Set(),
      offers: spec.kind === 'vcg' ? new Array(n).fill(null) : [],
    };
    // Monitor before casting: a bidder that dies at any point surely reports DOWN, and a bid it
    // cast before dying is queued ahead of that DOWN (FIFO per sender).
    for (let i = 0; i < n; i++) ctx.monitor(args.bidders[i] as Pid);
    switch (spec.kind) {
      case 'english':
        state.round = 0;
        // startRound numbers the first round 1.
        ctx.send(ctx.self, { type: 'round_end', round: 0 });
        state.newBid = true;
        if (spec.deadlineMs !== undefined) ctx.sendAfter({ type: 'deadline' }, spec.deadlineMs);
        break;
      case 'dutch':
        args.progress.rounds = 1;
        broadcast(state, ctx);
        ctx.sendAfter({ type: 'tick', round: 0 }, spec.tickMs);
        break;
      default:
        args.progress.rounds = 1;
        // Bidders that could not be asked are not waited for (the deadline still ends it).
        state.pending = broadcast(state, ctx);
        ctx.sendAfter({ type: 'deadline' }, spec.deadlineMs);
    }
    return state;
  },

  handleCast(msg, state, ctx): CastResult<SessionState> {
    if (state.closed || msg.type !== 'bid' || msg.id !== state.args.id) return state;
    return onBid(state, ctx, msg);
  },

  handleInfo(msg: AuctionTimer | SystemMessage, state, ctx): CastResult<SessionState> {
    if (state.closed) return state;
    if (msg.type === 'DOWN') return onDown(state, ctx, msg.pid);
    if (msg.type === 'deadline' || msg.type === 'round_end' || msg.type === 'tick')
      return onTimer(state, ctx, msg);
    return state;
  },
};
