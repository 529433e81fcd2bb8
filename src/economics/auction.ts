/**
 * Auctions as supervised session agents (DESIGN.md, "auctions are sessions too; bids are gathered
 * in parallel with a deadline").
 *
 * `Auctions.start(runtime)` starts the service: a dynamic supervisor whose temporary children are
 * the auction sessions (auction-session.ts). `auctions.run(bidders, spec)` starts one session and
 * resolves with its result; the session casts bid requests to every bidder, and the bidders,
 * agents with their own logic (`withBidding`, or `placeBid` from any handler), cast their bids
 * back. Mechanisms: sealed first price, Vickrey, English, Dutch and VCG (mechanisms.ts holds the
 * pure winner determination and payment rules).
 *
 * Rules shared by every kind:
 * - A bid is valid when its amount is a positive finite number, within the bidder's budget
 *   (`budgetOf`, undefined = no limit), for a known item (and units within supply), at or above
 *   the reserve (English: the ask; Dutch: the clock price). An invalid bid is cast back to its
 *   bidder as a `BidRejection` carrying a `BidRejectedError` (codes in `AuctionErrorCodes`),
 *   recorded in the result, and the auction goes on: the bidder may bid again. After 5 rejections
 *   in one round a bidder counts as having passed and its further bids that round are ignored
 *   (no rejection ping-pong with a bidder that keeps re-sending a bad bid).
 * - Ties go to the earliest valid bid (the order the session accepted them), then the bidder key.
 * - A bidder that crashes (or is already gone) before the close is dropped, with its bids.
 * - With no valid bid from a live bidder the auction ends `unsold`.
 * - Each auction closes exactly once: the promise resolves with an `AuctionResult` and
 *   `['mabeam','auction','closed']` is published (measurements: revenue, winners, validBids,
 *   rejected, dropped, rounds, durationMs; metadata: id, kind, outcome, endedBy, winners, result).
 */

import { SessionService } from '../coordination/session-service.js';
import {
  type AgentContext,
  type AnyRef,
  type Behaviour,
  type DynamicSupervisorRef,
  InvalidArgumentError,
  isPid,
  type Pid,
  pidKey,
  type Runtime,
  type UntypedDest,
} from '../kernel/index.js';
import { AuctionSession, type Progress, publish, type SessionArgs } from './auction-session.js';
import type {
  AnyBid,
  AuctionAborted,
  AuctionId,
  AuctionRef,
  AuctionResult,
  AuctionSpec,
  BidMessage,
  BidRejection,
  BidRequest,
  BudgetOf,
} from './auction-types.js';
import type { NormalSpec } from './auction-validate.js';
import { type Bundle, dutchLastTick, VCG_EXACT_MAX_BIDS, VCG_EXACT_MAX_BIDS_LIMIT } from './mechanisms.js';

export { AuctionSession } from './auction-session.js';
export {
  type AnyBid,
  AUCTION_CLOSED,
  type AuctionAborted,
  type AuctionErrorCode,
  AuctionErrorCodes,
  type AuctionId,
  type AuctionKind,
  type AuctionRef,
  type AuctionResult,
  type AuctionSold,
  type AuctionSpec,
  type AuctionTimer,
  type AuctionUnsold,
  type Award,
  type Bid,
  type BidMessage,
  BidRejectedError,
  type BidRejection,
  type BidRequest,
  type BudgetOf,
  type BundleOffer,
  type DutchRequest,
  type DutchSpec,
  type EndedBy,
  type EnglishRequest,
  type EnglishSpec,
  type FirstPriceSpec,
  type Rejection,
  type SealedRequest,
  type VcgBid,
  type VcgRequest,
  type VcgSpec,
  type VickreySpec,
} from './auction-types.js';

const DEFAULT_DEADLINE_MS = 5000;
const DEFAULT_ROUND_MS = 1000;
const DEFAULT_ITEM = 'item';

/** Options of the service. */
export interface AuctionsOptions {
  /** Each bidder's budget (undefined = no limit); an auction's own `budgetOf` overrides it. */
  readonly budgets?: BudgetOf;
  /** Most auctions at once (the dynamic supervisor's maxChildren). Default: no limit. */
  readonly maxAuctions?: number;
}

/** A started auction: its session and the promise of its result. */
export interface AuctionHandle {
  readonly id: AuctionId;
  readonly ref: AuctionRef;
  readonly result: Promise<AuctionResult>;
}

function finiteAtLeast(name: string, value: unknown, min: number, open = false): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || (open ? value <= min : value < min)) {
    throw new InvalidArgumentError(name, `must be a finite number ${open ? '>' : '>='} ${min}`, value);
  }
  return value;
}

function itemOf(spec: { item?: unknown }): string {
  const item = spec.item ?? DEFAULT_ITEM;
  if (typeof item !== 'string' || item === '')
    throw new InvalidArgumentError('item', 'must be a non-empty string', item);
  return item;
}

/** Validate a spec and fill in its defaults; InvalidArgumentError names the bad field. */
function normalize(spec: unknown): NormalSpec {
  if (spec === null || typeof spec !== 'object' || !('kind' in spec)) {
    throw new InvalidArgumentError(
      'spec',
      'must be {kind: first_price|vickrey|english|dutch|vcg, ...}',
      spec,
    );
  }
  const s = spec as Record<string, unknown>;
  const deadline = (fallback: number) =>
    s.deadlineMs === undefined ? fallback : finiteAtLeast('deadlineMs', s.deadlineMs, 0);
  switch (s.kind) {
    case 'first_price':
    case 'vickrey':
      return {
        kind: s.kind,
        item: itemOf(s),
        reserve: s.reserve === undefined ? 0 : finiteAtLeast('reserve', s.reserve, 0),
        deadlineMs: deadline(DEFAULT_DEADLINE_MS),
      };
    case 'english': {
      const reserve = s.reserve === undefined ? 0 : finiteAtLeast('reserve', s.reserve, 0);
      const increment = finiteAtLeast('increment', s.increment, 0, true);
      const startPrice =
        s.startPrice === undefined
          ? reserve > 0
            ? reserve
            : increment
          : finiteAtLeast('startPrice', s.startPrice, Math.max(reserve, 0), reserve === 0);
      return {
        kind: 'english',
        item: itemOf(s),
        reserve,
        increment,
        startPrice,
        roundMs: s.roundMs === undefined ? DEFAULT_ROUND_MS : finiteAtLeast('roundMs', s.roundMs, 0),
        deadlineMs: s.deadlineMs === undefined ? undefined : finiteAtLeast('deadlineMs', s.deadlineMs, 0),
      };
    }
    case 'dutch': {
      const reserve = s.reserve === undefined ? 0 : finiteAtLeast('reserve', s.reserve, 0);
      const startPrice = finiteAtLeast('startPrice', s.startPrice, 0, true);
      if (startPrice < reserve) {
        throw new InvalidArgumentError('startPrice', `must be at least the reserve ${reserve}`, startPrice);
      }
      const decrement = finiteAtLeast('decrement', s.decrement, 0, true);
      return {
        kind: 'dutch',
        item: itemOf(s),
        reserve,
        startPrice,
        decrement,
        tickMs: finiteAtLeast('tickMs', s.tickMs, 0, true),
        lastTick: dutchLastTick(startPrice, decrement, reserve),
      };
    }
    case 'vcg': {
      const supply = s.supply;
      if (supply === null || typeof supply !== 'object' || Object.keys(supply).length === 0) {
        throw new InvalidArgumentError('supply', 'must be a non-empty {item: units} object', supply);
      }
      // Validated and copied from one read of each object; the copies are frozen, since they go
      // to every bidder by reference (the kernel does not copy messages).
      const supplyEntries = Object.entries(supply);
      for (const [item, n] of supplyEntries) {
        if (typeof n !== 'number' || !Number.isInteger(n) || n < 0) {
          throw new InvalidArgumentError(`supply.${item}`, 'must be an integer >= 0', n);
        }
      }
      const supplyCopy: Bundle = Object.freeze(Object.fromEntries(supplyEntries));
      const reserve = s.reserve ?? {};
      if (reserve === null || typeof reserve !== 'object') {
        throw new InvalidArgumentError('reserve', 'must be an {item: per-unit price} object', reserve);
      }
      const reserveEntries = Object.entries(reserve);
      for (const [item, r] of reserveEntries) {
        if (!Object.hasOwn(supplyCopy, item))
          throw new InvalidArgumentError(`reserve.${item}`, 'names an item not in supply', r);
        finiteAtLeast(`reserve.${item}`, r, 0);
      }
      const reserveCopy: Bundle = Object.freeze(Object.fromEntries(reserveEntries));
      const exactMaxBids = s.exactMaxBids ?? VCG_EXACT_MAX_BIDS;
      if (
        typeof exactMaxBids !== 'number' ||
        !Number.isInteger(exactMaxBids) ||
        exactMaxBids < 0 ||
        exactMaxBids > VCG_EXACT_MAX_BIDS_LIMIT
      ) {
        throw new InvalidArgumentError(
          'exactMaxBids',
          `must be an integer from 0 to ${VCG_EXACT_MAX_BIDS_LIMIT}`,
          exactMaxBids,
        );
      }
      return {
        kind: 'vcg',
        supply: supplyCopy,
        reserve: reserveCopy,
        deadlineMs: deadline(DEFAULT_DEADLINE_MS),
        exactMaxBids,
      };
    }
    default:
      throw new InvalidArgumentError(
        'spec kind',
        'must be first_price, vickrey, english, dutch or vcg',
        s.kind,
      );
  }
}

function biddersOf(bidders: unknown): Pid[] {
  if (!Array.isArray(bidders) || bidders.length === 0) {
    throw new InvalidArgumentError('bidders', 'must be a non-empty array of agent refs or pids', bidders);
  }
  // Duplicates are found by numeric id; string keys are built only once two ids collide (pids
  // from several nodes or threads), so the usual call allocates no string per bidder.
  const ids = new Set<number>();
  let keys: Set<string> | null = null;
  const pids: Pid[] = [];
  for (let i = 0; i < bidders.length; i++) {
    const p: unknown = bidders[i];
    if (!isPid(p)) throw new InvalidArgumentError(`bidders[${i}]`, 'must be an agent ref or pid', p);
    if (keys === null) {
      if (!ids.has(p.id)) {
        ids.add(p.id);
        pids.push(p);
        continue;
      }
      keys = new Set(pids.map(pidKey));
    }
    const key = pidKey(p);
    if (keys.has(key)) throw new InvalidArgumentError(`bidders[${i}]`, 'is a duplicate bidder', p);
    keys.add(key);
    pids.push(p);
  }
  return pids;
}

/**
 * The auction service: owns a dynamic supervisor whose temporary children are the auctions.
 * Start it with `Auctions.start(runtime, { budgets })`.
 */
export class Auctions extends SessionService {
  readonly #budgets: BudgetOf | undefined;

  private constructor(runtime: Runtime, supervisor: DynamicSupervisorRef, budgets: BudgetOf | undefined) {
    super(runtime, supervisor);
    this.#budgets = budgets;
  }

  /** Start the service (a top-level dynamic supervisor on `runtime`). */
  static async start(runtime: Runtime, options: AuctionsOptions = {}): Promise<Auctions> {
    if (options.budgets !== undefined && typeof options.budgets !== 'function') {
      throw new InvalidArgumentError(
        'budgets',
        'must be a function (bidder) => number | undefined',
        options.budgets,
      );
    }
    const sup = await SessionService.startSupervisor(runtime, options.maxAuctions);
    return new Auctions(runtime, sup, options.budgets);
  }

  /**
   * Start an auction among `bidders` and resolve once its session runs, with the promise of its
   * result. Rejects with InvalidArgumentError (E_INVALID_ARGUMENT, naming the value) for a bad
   * spec or bidder list, or with the supervisor's error when the session cannot start.
   */
  async start(bidders: readonly (AnyRef | Pid)[], spec: AuctionSpec): Promise<AuctionHandle> {
    const normal = normalize(spec);
    const pids = biddersOf(bidders);
    if (spec.budgetOf !== undefined && typeof spec.budgetOf !== 'function') {
      throw new InvalidArgumentError(
        'budgetOf',
        'must be a function (bidder) => number | undefined',
        spec.budgetOf,
      );
    }
    if (
      spec.id !== undefined &&
      !(typeof spec.id === 'number'
        ? Number.isFinite(spec.id)
        : typeof spec.id === 'string' && spec.id !== '')
    ) {
      throw new InvalidArgumentError('id', 'must be a finite number or a non-empty string', spec.id);
    }
    const id = spec.id ?? this.nextSessionId();
    const progress: Progress = {
      validBids: 0,
      rejected: [],
      dropped: [],
      rounds: 0,
      startedAt: this.runtime.clock.now(),
    };
    let settled = false;
    let settle!: (r: AuctionResult) => void;
    const result = new Promise<AuctionResult>((resolve) => {
      settle = (r) => {
        if (settled) return;
        settled = true;
        resolve(r);
      };
    });
    const args: SessionArgs = {
      id,
      spec: normal,
      bidders: pids,
      lot: spec.lot,
      budgetOf: spec.budgetOf ?? this.#budgets,
      progress,
      done: settle,
    };
    // A session killed before closing (service stopped, `kill`) still ends the auction.
    const ref = (await this.startSession(id, AuctionSession, args, (exitReason) => {
      if (settled) return;
      const aborted: AuctionAborted = {
        outcome: 'aborted',
        exitReason,
        id,
        kind: normal.kind,
        bidders: pids.length,
        validBids: progress.validBids,
        rejected: progress.rejected,
        dropped: progress.dropped,
        endedBy: 'session_exit',
        rounds: progress.rounds,
        durationMs: this.runtime.clock.now() - progress.startedAt,
      };
      settle(aborted);
      publish(this.runtime, aborted);
    })) as unknown as AuctionRef;
    return { id, ref, result };
  }

  /** Run an auction to its close: `start`, then its result. */
  async run(bidders: readonly (AnyRef | Pid)[], spec: AuctionSpec): Promise<AuctionResult> {
    return (await this.start(bidders, spec)).result;
  }

  // stop() (from SessionService): running auctions end `aborted`.
}

// ---- bidders -------------------------------------------------------------------------------------

type MaybePromise<T> = T | Promise<T>;

/** True when a cast message is an auction's bid request. */
export function isBidRequest(msg: unknown): msg is BidRequest {
  return (
    msg !== null &&
    typeof msg === 'object' &&
    (msg as { type?: unknown }).type === 'bid_request' &&
    isPid((msg as { auction?: unknown }).auction)
  );
}

/** True when a cast message tells a bidder its bid was rejected. */
export function isBidRejection(msg: unknown): msg is BidRejection {
  return (
    msg !== null &&
    typeof msg === 'object' &&
    (msg as { type?: unknown }).type === 'bid_rejected' &&
    isPid((msg as { auction?: unknown }).auction)
  );
}

/** What `placeBid` needs of an agent's context (any `AgentContext` fits). */
export interface BidderContext {
  readonly self: Pid;
  cast(dest: UntypedDest, msg: unknown): boolean;
}

/**
 * Answer a bid request (or a rejection, to bid again in the same round) from inside a bidder's
 * callback: cast `bid` to the auction, or pass with `null` (the session then stops waiting for
 * this bidder in this round; a Dutch auction ignores passes). The bid carries the request's
 * `token`, which is what identifies the bidder to the session (not `ctx.self`).
 */
export function placeBid(ctx: BidderContext, answering: BidRequest | BidRejection, bid: AnyBid | null): void {
  const msg: BidMessage = {
    type: 'bid',
    id: answering.id,
    round: answering.round,
    from: ctx.self,
    token: answering.token,
    bid,
  };
  ctx.cast(answering.auction as Pid as UntypedDest, msg);
}

/**
 * How a bidder decides: from the request and its own state. Return a bid, `null` to pass, or
 * either with the next state.
 */
export type DecideBid<S> = (
  request: BidRequest,
  state: S,
) => MaybePromise<AnyBid | null | { readonly bid: AnyBid | null; readonly state: S }>;

/** What a bidder does when its bid is rejected: bid again, pass (`null`), or either with a state. */
export type OnRejected<S> = (
  rejection: BidRejection,
  state: S,
) => MaybePromise<AnyBid | null | { readonly bid: AnyBid | null; readonly state: S }>;

export interface BiddingOptions<S> {
  /** Default: pass, so the auction does not wait for this bidder in that round. */
  readonly onRejected?: OnRejected<S>;
}

const passOnRejection = (): null => null;

/**
 * Make `base` a bidder: bid requests go to `decide`, whose answer is cast to the auction;
 * rejections go to `options.onRejected` (default: pass); every other cast goes to
 * `base.handleCast`. The bid is the agent's own: the auction never chooses it.
 */
export function withBidding<A, S, C, R, K, I>(
  base: Behaviour<A, S, C, R, K, I>,
  decide: DecideBid<S>,
  options: BiddingOptions<S> = {},
): Behaviour<A, S, C, R, K | BidRequest | BidRejection, I> {
  const inner = base.handleCast;
  const onRejected: OnRejected<S> = options.onRejected ?? passOnRejection;
  // Hot path (one call per request per bidder): no closure unless the decision is async.
  const apply = (
    a: AnyBid | null | { readonly bid: AnyBid | null; readonly state: S },
    answering: BidRequest | BidRejection,
    state: S,
    ctx: BidderContext,
  ): S => {
    if (a !== null && 'state' in a && 'bid' in a) {
      placeBid(ctx, answering, a.bid);
      return a.state;
    }
    placeBid(ctx, answering, a as AnyBid | null);
    return state;
  };
  return {
    ...(base as unknown as Behaviour<A, S, C, R, K | BidRequest | BidRejection, I>),
    handleCast(msg, state, ctx) {
      if (isBidRequest(msg) || isBidRejection(msg)) {
        const answered = msg.type === 'bid_request' ? decide(msg, state) : onRejected(msg, state);
        return answered instanceof Promise
          ? answered.then((a) => apply(a, msg, state, ctx))
          : apply(answered, msg, state, ctx);
      }
      if (inner === undefined) return state;
      return inner.call(base, msg as K, state, ctx as unknown as AgentContext<C, R, K, I>);
    },
  };
}
