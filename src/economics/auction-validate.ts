/**
 * Bid validation for the auction sessions: pure checks of a bid against the auction's spec and the
 * bidder's budget, each failure a code of AuctionErrorCodes with a message naming the bad value.
 * The session adds what depends on its state (duplicates, the English ask, the Dutch price).
 */
import type { Pid } from '../kernel/index.js';
import {
  type AuctionErrorCode,
  AuctionErrorCodes,
  type BudgetOf,
  type BundleOffer,
} from './auction-types.js';
import type { Bundle, ItemId } from './mechanisms.js';

/** @internal a spec after validation, with every default filled in */
export type NormalSpec =
  | {
      readonly kind: 'first_price' | 'vickrey';
      readonly item: ItemId;
      readonly reserve: number;
      readonly deadlineMs: number;
    }
  | {
      readonly kind: 'english';
      readonly item: ItemId;
      readonly reserve: number;
      readonly increment: number;
      readonly startPrice: number;
      readonly roundMs: number;
      readonly deadlineMs: number | undefined;
    }
  | {
      readonly kind: 'dutch';
      readonly item: ItemId;
      readonly reserve: number;
      readonly startPrice: number;
      readonly decrement: number;
      readonly tickMs: number;
      /** The last tick the clock shows (`dutchLastTick`), counted once. */
      readonly lastTick: number;
    }
  | {
      readonly kind: 'vcg';
      /** Frozen copies: the caller's objects are not kept, and bidders cannot change these. */
      readonly supply: Bundle;
      readonly reserve: Readonly<Record<ItemId, number>>;
      readonly deadlineMs: number;
      readonly exactMaxBids: number;
    };

function positiveAmount(bid: unknown): number | undefined {
  if (bid === null || typeof bid !== 'object') return undefined;
  const amount = (bid as { amount?: unknown }).amount;
  return typeof amount === 'number' && Number.isFinite(amount) && amount > 0 ? amount : undefined;
}

export type Verdict = { code: AuctionErrorCode; detail: string } | undefined;

/** Check `amount` against the bidder's budget; a lookup that throws rejects the bid, not the auction. */
export function budgetVerdict(budgetOf: BudgetOf | undefined, bidder: Pid, amount: number): Verdict {
  if (budgetOf === undefined) return undefined;
  let budget: unknown;
  try {
    budget = budgetOf(bidder);
  } catch (e) {
    const code = (e as { code?: unknown } | null)?.code;
    const what =
      e instanceof Error ? `${e.name}${typeof code === 'string' ? ` ${code}` : ''}: ${e.message}` : String(e);
    return { code: AuctionErrorCodes.BUDGET_UNAVAILABLE, detail: `the budget lookup threw ${what}` };
  }
  if (budget === undefined) return undefined;
  if (typeof budget !== 'number' || Number.isNaN(budget)) {
    return {
      code: AuctionErrorCodes.BUDGET_UNAVAILABLE,
      detail: `the budget lookup answered ${String(budget)}, not a number or undefined`,
    };
  }
  if (amount <= budget) return undefined;
  return {
    code: AuctionErrorCodes.OVER_BUDGET,
    detail: `amount ${amount} exceeds the bidder's budget ${budget}`,
  };
}

/** Validate a single-item bid's amount and item (kind-specific checks come after). */
export function singleItemVerdict(item: ItemId, bid: unknown): Verdict | number {
  const amount = positiveAmount(bid);
  if (amount === undefined) {
    const got = bid !== null && typeof bid === 'object' ? (bid as { amount?: unknown }).amount : bid;
    return {
      code: AuctionErrorCodes.INVALID_AMOUNT,
      detail: `amount must be a positive finite number, got ${String(got)}`,
    };
  }
  const named = (bid as { item?: unknown }).item;
  if (named !== undefined && named !== item) {
    return {
      code: AuctionErrorCodes.UNKNOWN_ITEM,
      detail: `unknown item ${JSON.stringify(named)} (selling ${JSON.stringify(item)})`,
    };
  }
  return amount;
}

/** Validate a VCG bid into its bundles. */
export function vcgVerdict(
  spec: Extract<NormalSpec, { kind: 'vcg' }>,
  bid: unknown,
): Verdict | readonly BundleOffer[] {
  const invalid = (detail: string): Verdict => ({ code: AuctionErrorCodes.INVALID_BUNDLE, detail });
  if (bid === null || typeof bid !== 'object')
    return invalid(`a VCG bid is {items, amount} or {bundles}, got ${String(bid)}`);
  const list: unknown = 'bundles' in bid ? (bid as { bundles: unknown }).bundles : [bid];
  if (!Array.isArray(list) || list.length === 0) return invalid('bundles must be a non-empty array');
  const out: BundleOffer[] = [];
  for (let b = 0; b < list.length; b++) {
    const offer: unknown = list[b];
    const at = list.length > 1 || 'bundles' in bid ? `bundles[${b}] ` : '';
    const amount = positiveAmount(offer);
    if (amount === undefined) {
      const got =
        offer !== null && typeof offer === 'object' ? (offer as { amount?: unknown }).amount : offer;
      return {
        code: AuctionErrorCodes.INVALID_AMOUNT,
        detail: `${at}amount must be a positive finite number, got ${String(got)}`,
      };
    }
    const items = (offer as { items?: unknown }).items;
    if (items === null || typeof items !== 'object' || Object.keys(items).length === 0) {
      return invalid(`${at}items must be a non-empty {item: units} object`);
    }
    // Read once, validated and copied from the same entries: the bidder keeps its own object.
    const entries = Object.entries(items);
    let cost = 0;
    for (const [item, q] of entries) {
      const supply = Object.hasOwn(spec.supply, item) ? spec.supply[item] : undefined;
      if (supply === undefined)
        return { code: AuctionErrorCodes.UNKNOWN_ITEM, detail: `${at}unknown item ${JSON.stringify(item)}` };
      if (typeof q !== 'number' || !Number.isInteger(q) || q < 1 || q > supply) {
        return invalid(
          `${at}units of ${JSON.stringify(item)} must be an integer from 1 to ${supply}, got ${String(q)}`,
        );
      }
      cost += (Object.hasOwn(spec.reserve, item) ? (spec.reserve[item] as number) : 0) * q;
    }
    if (amount < cost) {
      return {
        code: AuctionErrorCodes.BELOW_RESERVE,
        detail: `${at}amount ${amount} is below the bundle's reserve cost ${cost}`,
      };
    }
    out.push({ items: Object.freeze(Object.fromEntries(entries)) as Bundle, amount });
  }
  return out;
}
