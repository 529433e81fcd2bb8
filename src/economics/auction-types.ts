/**
 * The auction protocol's data: specs, the messages between a session and its bidders, results,
 * and the typed errors a rejected bid carries. The session is in auction-session.ts, the service
 * and the bidder helpers in auction.ts.
 */
import { type AgentRef, MabeamError, type Pid } from '../kernel/index.js';
import type { Bundle, ItemId, WinnerDeterminationMethod } from './mechanisms.js';

// ---- errors --------------------------------------------------------------------------------------

/** Error codes of auctions (unique across the project, never reused). */
export const AuctionErrorCodes = {
  /** The bid's amount is not a positive finite number. */
  INVALID_AMOUNT: 'E_AUCTION_INVALID_AMOUNT',
  /** The amount is above what the bidder's budget (`budgetOf`) allows. */
  OVER_BUDGET: 'E_AUCTION_OVER_BUDGET',
  /** The bid names an item the auction does not sell. */
  UNKNOWN_ITEM: 'E_AUCTION_UNKNOWN_ITEM',
  /** A bundle is malformed: empty, or a quantity that is not a positive integer within supply. */
  INVALID_BUNDLE: 'E_AUCTION_INVALID_BUNDLE',
  /** The amount is below the reserve price (for a bundle: its reserve cost). */
  BELOW_RESERVE: 'E_AUCTION_BELOW_RESERVE',
  /** English: below the current ask; Dutch: below the current clock price. */
  BID_TOO_LOW: 'E_AUCTION_BID_TOO_LOW',
  /** A second valid bid from the same bidder (in the same round, for English auctions). */
  DUPLICATE_BID: 'E_AUCTION_DUPLICATE_BID',
  /** English: the standing leader bid against itself. */
  ALREADY_LEADING: 'E_AUCTION_ALREADY_LEADING',
  /** English: the bid answers a round that is over. */
  STALE_ROUND: 'E_AUCTION_STALE_ROUND',
  /**
   * The bid carries no valid bidder token: the sender is not one of the auction's bidders, or it
   * did not answer with the token of the request it was sent (a forged or hand-built message).
   */
  NOT_BIDDER: 'E_AUCTION_NOT_BIDDER',
  /** The bidder's budget could not be read: `budgetOf` threw, or answered something not a number. */
  BUDGET_UNAVAILABLE: 'E_AUCTION_BUDGET_UNAVAILABLE',
} as const;

export type AuctionErrorCode = (typeof AuctionErrorCodes)[keyof typeof AuctionErrorCodes];

/** Why a bid was rejected; cast back to the bidder inside a `BidRejection` and kept in the result. */
export class BidRejectedError extends MabeamError {
  declare readonly code: AuctionErrorCode;
  readonly auction: AuctionId;
  readonly bid: unknown;
  constructor(code: AuctionErrorCode, auction: AuctionId, detail: string, bid: unknown) {
    super(code, `bid rejected by auction ${JSON.stringify(auction)}: ${detail}`);
    this.auction = auction;
    this.bid = bid;
  }
}

// ---- specs ---------------------------------------------------------------------------------------

export type AuctionId = number | string;
export type AuctionKind = 'first_price' | 'vickrey' | 'english' | 'dutch' | 'vcg';

/**
 * What a bidder's budget allows it to bid; `undefined` means no limit. A ledger plugs in here
 * (`budgetOf(ledger)`). Should it throw, the bid is rejected with E_AUCTION_BUDGET_UNAVAILABLE and
 * the auction goes on.
 */
export type BudgetOf = (bidder: Pid) => number | undefined;

interface SpecBase {
  /** The id bidders see (a finite number or a non-empty string); default a per-service counter. */
  readonly id?: AuctionId;
  /** Anything bidders should know about what is sold (passed along in every bid request). */
  readonly lot?: unknown;
  /** Overrides the service's `budgets` for this auction. */
  readonly budgetOf?: BudgetOf;
}

interface SingleItemSpec extends SpecBase {
  /** The item sold; bids may name it and must not name another. Default `'item'`. */
  readonly item?: ItemId;
  /** Lowest acceptable price (default 0). */
  readonly reserve?: number;
}

/** Sealed bid, first price: one bid per bidder, the best pays its bid. */
export interface FirstPriceSpec extends SingleItemSpec {
  readonly kind: 'first_price';
  /** Runtime-clock ms to gather bids (default 5000); closes earlier once every bidder answered. */
  readonly deadlineMs?: number;
}

/** Sealed bid, second price: the best pays the second-best valid bid, or the reserve if higher. */
export interface VickreySpec extends SingleItemSpec {
  readonly kind: 'vickrey';
  readonly deadlineMs?: number;
}

/** Ascending rounds: each ask is the standing bid plus `increment`; ends after a round with no new bid. */
export interface EnglishSpec extends SingleItemSpec {
  readonly kind: 'english';
  /** Minimum raise over the standing bid (> 0). */
  readonly increment: number;
  /** The first round's ask; default the reserve, or `increment` when the reserve is 0. */
  readonly startPrice?: number;
  /** Runtime-clock ms a round waits for answers (default 1000); it ends earlier once all answered. */
  readonly roundMs?: number;
  /** Optional hard stop: the standing bid wins at this many ms. Default: none. */
  readonly deadlineMs?: number;
}

/** Descending clock: the price starts at `startPrice` and drops by `decrement` every `tickMs`. */
export interface DutchSpec extends SingleItemSpec {
  readonly kind: 'dutch';
  readonly startPrice: number;
  readonly decrement: number;
  readonly tickMs: number;
  // `reserve` is the floor: the clock stops (unsold) when the price would fall below it.
}

/** Multi-unit and combinatorial: bundles of units of several items, XOR bids, VCG payments. */
export interface VcgSpec extends SpecBase {
  readonly kind: 'vcg';
  /** Units of each item for sale (non-negative integers). */
  readonly supply: Bundle;
  /** Per-unit reserve price of each item (default 0). */
  readonly reserve?: Readonly<Record<ItemId, number>>;
  readonly deadlineMs?: number;
  /**
   * Exact winner determination up to this many bundle bids (default VCG_EXACT_MAX_BIDS = 16, at
   * most VCG_EXACT_MAX_BIDS_LIMIT = 24); the LOS greedy above it.
   */
  readonly exactMaxBids?: number;
}

export type AuctionSpec = FirstPriceSpec | VickreySpec | EnglishSpec | DutchSpec | VcgSpec;

// ---- messages ------------------------------------------------------------------------------------

/** A single-item bid; for Dutch, `amount` at or above the current price accepts it. */
export interface Bid {
  readonly amount: number;
  readonly item?: ItemId;
}
/** One bundle of a combinatorial bid. */
export interface BundleOffer {
  readonly items: Bundle;
  readonly amount: number;
}
/** A VCG bid: one bundle, or several as XOR alternatives (at most one of them wins). */
export type VcgBid = BundleOffer | { readonly bundles: readonly BundleOffer[] };
export type AnyBid = Bid | VcgBid;

interface RequestBase {
  readonly type: 'bid_request';
  /** Where bids go (use `placeBid`). */
  readonly auction: AuctionRef;
  readonly id: AuctionId;
  /** The round (English), the clock tick (Dutch), 0 for sealed auctions. */
  readonly round: number;
  readonly lot: unknown;
  /**
   * This bidder's secret for this auction (random, different for every bidder): `placeBid` sends
   * it back, and the session takes a bid as this bidder's only with it. Do not pass it on: whoever
   * holds it can bid in this bidder's name.
   */
  readonly token: string;
}
export interface SealedRequest extends RequestBase {
  readonly kind: 'first_price' | 'vickrey';
  readonly item: ItemId;
  readonly reserve: number;
}
export interface EnglishRequest extends RequestBase {
  readonly kind: 'english';
  readonly item: ItemId;
  /** The lowest acceptable bid this round. */
  readonly ask: number;
  /** The standing (leading) bid, or null before the first one. */
  readonly standing: number | null;
  readonly increment: number;
}
export interface DutchRequest extends RequestBase {
  readonly kind: 'dutch';
  readonly item: ItemId;
  /** The clock's current price: bid it (or more) to accept. */
  readonly price: number;
}
export interface VcgRequest extends RequestBase {
  readonly kind: 'vcg';
  /** Frozen copies (shared by all bidders of the auction). */
  readonly supply: Bundle;
  readonly reserve: Readonly<Record<ItemId, number>>;
}

/** What a session casts to its bidders. Answer with `placeBid` (or use `withBidding`). */
export type BidRequest = SealedRequest | EnglishRequest | DutchRequest | VcgRequest;

/** What a bidder casts back: a bid, or `bid: null` to pass. */
export interface BidMessage {
  readonly type: 'bid';
  readonly id: AuctionId;
  readonly round: number;
  /** The sender, where a rejection of a message without a valid token goes; not trusted. */
  readonly from: Pid;
  /** The token of the request (or rejection) answered; it alone identifies the bidder. */
  readonly token: string;
  readonly bid: AnyBid | null;
}

/** Cast back to a bidder whose bid was rejected; the auction goes on (it may bid again). */
export interface BidRejection {
  readonly type: 'bid_rejected';
  /** The auction that rejected it (answer with `placeBid` to bid again or pass). */
  readonly auction: AuctionRef;
  readonly id: AuctionId;
  readonly round: number;
  readonly code: AuctionErrorCode;
  readonly error: BidRejectedError;
  readonly bid: unknown;
  /** The bidder's token, to bid again with `placeBid`; '' when the sender is not a bidder. */
  readonly token: string;
}

/** Timer messages of a session. */
export type AuctionTimer =
  | { readonly type: 'deadline' }
  | { readonly type: 'round_end'; readonly round: number }
  | { readonly type: 'tick'; readonly round: number };

/** A session agent's handle: it takes bids by cast. */
export type AuctionRef = AgentRef<never, never, BidMessage, AuctionTimer>;

// ---- results -------------------------------------------------------------------------------------

/** One winner: what it won, what it bid, what it pays. */
export interface Award {
  readonly bidder: Pid;
  /** Units won per item; `{ [item]: 1 }` in single-item auctions. */
  readonly items: Bundle;
  readonly bid: number;
  readonly price: number;
}

/** A rejected bid, as recorded in the result. */
export interface Rejection {
  readonly bidder: Pid;
  readonly round: number;
  readonly code: AuctionErrorCode;
  readonly message: string;
}

/** How the auction came to an end. */
export type EndedBy =
  /** Sealed and VCG: every live bidder bid or passed. */
  | 'all_answered'
  /** The deadline passed (sealed, VCG, or English's optional hard stop). */
  | 'deadline'
  /** English: a round brought no new valid bid. */
  | 'no_new_bid'
  /** Dutch: a bidder accepted the clock price. */
  | 'accepted'
  /** Dutch: the clock would drop below the reserve. */
  | 'floor'
  /** Every bidder crashed (or was gone at the start). */
  | 'no_bidders'
  /** The session agent exited before closing (killed, service stopped). */
  | 'session_exit';

interface ResultBase {
  readonly id: AuctionId;
  readonly kind: AuctionKind;
  readonly bidders: number;
  /** Valid bids received (each VCG bid message counts once). */
  readonly validBids: number;
  readonly rejected: readonly Rejection[];
  /** Bidders that crashed (or were gone) before the close: their bids do not count. */
  readonly dropped: readonly Pid[];
  readonly endedBy: EndedBy;
  /** English rounds run, Dutch clock ticks shown, 1 for sealed and VCG auctions. */
  readonly rounds: number;
  /** Runtime-clock ms from the start to the close. */
  readonly durationMs: number;
}

export interface AuctionSold extends ResultBase {
  readonly outcome: 'sold';
  /** One award for single-item auctions; one per winning bidder for VCG. */
  readonly winners: readonly Award[];
  /** Sum of the prices. */
  readonly revenue: number;
  /** VCG only: exact or greedy winner determination. */
  readonly method?: WinnerDeterminationMethod;
  /** VCG only: the sum of the winning bids (the allocation's declared value). */
  readonly welfare?: number;
}

/** Nothing sold: no valid bid (at or above the reserve) from a live bidder. */
export interface AuctionUnsold extends ResultBase {
  readonly outcome: 'unsold';
  readonly method?: WinnerDeterminationMethod;
}

/** The session exited before it could close (killed, or the service stopped). */
export interface AuctionAborted extends ResultBase {
  readonly outcome: 'aborted';
  readonly exitReason: unknown;
}

export type AuctionResult = AuctionSold | AuctionUnsold | AuctionAborted;

/** Telemetry event of every closed auction (sold, unsold or aborted). */
export const AUCTION_CLOSED = ['mabeam', 'auction', 'closed'] as const;
