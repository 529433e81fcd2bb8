/**
 * Auction mechanisms as pure functions: ranking and tie-breaking, first- and second-price
 * outcomes, the Dutch price clock, and VCG winner determination and payments for multi-unit and
 * combinatorial bids. No agents, no clock: the auction sessions (auction.ts) gather the bids and
 * call these, and the property tests check them directly.
 *
 * Tie-breaking everywhere: the higher amount first, then the earlier bid (lower `seq`, the order
 * in which the session accepted valid bids), then the bidder key (string order).
 */

/** An item's id (a lot of a single-item auction, or a good of a combinatorial one). */
export type ItemId = string;

/** Units wanted per item, e.g. `{ cpu: 2, gpu: 1 }`. */
export type Bundle = Readonly<Record<ItemId, number>>;

/** A single-item sealed bid as the mechanisms see it. */
export interface SealedBid {
  /** The bidder's key (the session uses `pidKey`). */
  readonly bidder: string;
  readonly amount: number;
  /** Arrival order of valid bids; lower is earlier. */
  readonly seq: number;
}

/** The order of bids: higher amount, then earlier seq, then smaller bidder key. */
export function compareBids(a: SealedBid, b: SealedBid): number {
  if (a.amount !== b.amount) return b.amount - a.amount;
  if (a.seq !== b.seq) return a.seq - b.seq;
  return a.bidder < b.bidder ? -1 : a.bidder > b.bidder ? 1 : 0;
}

/** The bids at or above `reserve`, best first (see `compareBids`). */
export function rankBids(bids: readonly SealedBid[], reserve = 0): SealedBid[] {
  return bids.filter((b) => b.amount >= reserve).sort(compareBids);
}

/** Who wins a single item and what it pays. */
export interface SingleItemOutcome {
  readonly winner: SealedBid;
  readonly price: number;
}

/**
 * Sealed-bid first price: the best bid at or above the reserve wins and pays its own bid; null
 * when no bid reaches the reserve.
 */
export function firstPriceOutcome(bids: readonly SealedBid[], reserve = 0): SingleItemOutcome | null {
  const winner = best(bids, reserve);
  return winner === undefined ? null : { winner, price: winner.amount };
}

/**
 * Vickrey (sealed second price): the best bid at or above the reserve wins and pays the highest
 * other bid, or the reserve when that is higher (or there is no other bid); null when no bid
 * reaches the reserve. A tie at the top is paid at the tied amount.
 */
export function secondPriceOutcome(bids: readonly SealedBid[], reserve = 0): SingleItemOutcome | null {
  const winner = best(bids, reserve);
  if (winner === undefined) return null;
  let second = reserve;
  for (const b of bids) if (b !== winner && b.amount > second) second = b.amount;
  return { winner, price: second };
}

function best(bids: readonly SealedBid[], reserve: number): SealedBid | undefined {
  let top: SealedBid | undefined;
  for (const b of bids) {
    if (!(b.amount >= reserve)) continue;
    if (top === undefined || compareBids(b, top) < 0) top = b;
  }
  return top;
}

/**
 * The Dutch clock's price at `tick` (0 = the start): `start - tick * decrement`, computed from the
 * tick rather than accumulated, so no rounding drifts over many ticks. Pass `floor` (the reserve)
 * to keep float rounding from showing a price a hair below it (`1 - 7 * 0.1` is
 * 0.29999999999999993): the price never goes below `floor`.
 */
export function dutchPrice(
  start: number,
  decrement: number,
  tick: number,
  floor = Number.NEGATIVE_INFINITY,
): number {
  return Math.max(floor, start - tick * decrement);
}

/** Relative tolerance of the float comparisons that decide ties and floors (see `dutchLastTick`). */
const REL_EPS = 1e-9;

/**
 * The last tick the Dutch clock shows: the largest `tick` whose exact price
 * `start - tick * decrement` is at or above `reserve` and above 0, counted once with a relative
 * tolerance so decimal steps that land on the reserve reach it (1, 0.9, ..., 0.3 with a 0.3
 * reserve is ticks 0 to 7, although 1 - 7 * 0.1 < 0.3 in doubles). -1 when even the start price
 * is below the reserve.
 */
export function dutchLastTick(start: number, decrement: number, reserve: number): number {
  const steps = (start - Math.max(0, reserve)) / decrement;
  const slack = REL_EPS * Math.max(1, Math.abs(steps));
  if (steps < -slack) return -1;
  // A zero price is never shown: with no reserve the last tick is the one before the price hits 0.
  return reserve > 0 ? Math.floor(steps + slack) : Math.max(0, Math.ceil(steps - slack) - 1);
}

// ---- VCG ----------------------------------------------------------------------------------------

/**
 * Exact winner determination is used up to this many bundle bids in one auction (default of the
 * `exactMaxBids` option). The search visits at most the product over bidders of (bundles + 1)
 * allocations, at most 2^16 = 65,536 here, once for the allocation and once more per winner for
 * its payment; branch and bound usually visits far fewer.
 */
export const VCG_EXACT_MAX_BIDS = 16;
/** The most `exactMaxBids` may be set to: 2^24 allocations per search is already seconds of work. */
export const VCG_EXACT_MAX_BIDS_LIMIT = 24;

/** One bundle bid. A bidder may place several: they are XOR bids (at most one of them wins). */
export interface BundleBid {
  readonly bidder: string;
  readonly items: Bundle;
  readonly amount: number;
  /** Arrival order (bundles of one bid message share it and keep their order in the message). */
  readonly seq: number;
}

export type WinnerDeterminationMethod = 'exact' | 'greedy';

export interface VcgOptions {
  /** Per-unit reserve price of each item (default 0): the seller's own value for a unit. */
  readonly reserve?: Readonly<Record<ItemId, number>>;
  /** Exact winner determination up to this many bids (default VCG_EXACT_MAX_BIDS). */
  readonly exactMaxBids?: number;
  /** Force a method; default `auto` (exact up to `exactMaxBids`, greedy above). */
  readonly method?: WinnerDeterminationMethod | 'auto';
}

/** A winning bundle bid and its payment. */
export interface VcgAward {
  /** Index of the bid in the input. */
  readonly index: number;
  readonly bidder: string;
  readonly items: Bundle;
  readonly amount: number;
  readonly price: number;
}

export interface VcgOutcome {
  readonly method: WinnerDeterminationMethod;
  /** Sum of the winning bids' amounts (the declared value of the allocation). */
  readonly welfare: number;
  /** Winners in bidder order (earliest bid first). */
  readonly winners: readonly VcgAward[];
}

interface Prepared {
  /** Bidder groups in order of their earliest bid (then key). */
  readonly groups: Group[];
  readonly supply: Int32Array;
  readonly itemIndex: Map<ItemId, number>;
  readonly reserveOf: (b: BundleBid) => number;
}
interface Group {
  readonly bidder: string;
  readonly options: Option[];
}
interface Option {
  readonly index: number;
  /** Amount minus the reserve cost of the bundle; negative options are left out. */
  readonly value: number;
  readonly need: Int32Array; // pairs: item index, quantity
  readonly size: number;
  readonly seq: number;
  readonly bidder: string;
}

/**
 * Check the instance: every supply a non-negative integer, every bundle non-empty with positive
 * integer quantities of known items, every amount finite and >= 0. Throws a RangeError naming
 * the bad value (the sessions validate bids before they get here).
 */
function prepare(bids: readonly BundleBid[], supply: Bundle, reserve: Bundle = {}): Prepared {
  const itemIndex = new Map<ItemId, number>();
  const units: number[] = [];
  for (const [item, n] of Object.entries(supply)) {
    if (!Number.isInteger(n) || n < 0)
      throw new RangeError(`supply of ${item} must be an integer >= 0, got ${n}`);
    itemIndex.set(item, units.length);
    units.push(n);
  }
  // Own properties only: an item called `toString` has no reserve unless one is given.
  const reserveOf = (b: BundleBid): number => {
    let cost = 0;
    for (const [item, q] of Object.entries(b.items))
      cost += (Object.hasOwn(reserve, item) ? (reserve[item] as number) : 0) * q;
    return cost;
  };
  const byBidder = new Map<string, Group & { first: number }>();
  bids.forEach((b, index) => {
    if (!(Number.isFinite(b.amount) && b.amount >= 0)) {
      throw new RangeError(`bid ${index} amount must be finite and >= 0, got ${b.amount}`);
    }
    const entries = Object.entries(b.items);
    if (entries.length === 0) throw new RangeError(`bid ${index} has an empty bundle`);
    const need = new Int32Array(entries.length * 2);
    let size = 0;
    entries.forEach(([item, q], k) => {
      const i = itemIndex.get(item);
      if (i === undefined) throw new RangeError(`bid ${index} names unknown item ${item}`);
      if (!Number.isInteger(q) || q <= 0)
        throw new RangeError(`bid ${index} quantity of ${item} must be a positive integer, got ${q}`);
      need[2 * k] = i;
      need[2 * k + 1] = q;
      size += q;
    });
    let g = byBidder.get(b.bidder);
    if (g === undefined) {
      g = { bidder: b.bidder, options: [], first: b.seq };
      byBidder.set(b.bidder, g);
    }
    g.first = Math.min(g.first, b.seq);
    const value = b.amount - reserveOf(b);
    if (value >= 0) g.options.push({ index, value, need, size, seq: b.seq, bidder: b.bidder });
  });
  const groups = [...byBidder.values()]
    .filter((g) => g.options.length > 0)
    .sort((a, b) => a.first - b.first || (a.bidder < b.bidder ? -1 : a.bidder > b.bidder ? 1 : 0));
  return { groups, supply: Int32Array.from(units), itemIndex, reserveOf };
}

function fits(need: Int32Array, left: Int32Array): boolean {
  for (let k = 0; k < need.length; k += 2) {
    if ((left[need[k] as number] as number) < (need[k + 1] as number)) return false;
  }
  return true;
}
function take(need: Int32Array, left: Int32Array, sign: 1 | -1): void {
  for (let k = 0; k < need.length; k += 2) {
    const i = need[k] as number;
    left[i] = (left[i] as number) - sign * (need[k + 1] as number);
  }
}

/**
 * Exact winner determination by depth-first branch and bound over bidders (each takes one of its
 * bundles or none), pruned by the sum of the best remaining options. Of allocations with equal
 * value the first found is kept: bidders in order of their earliest bid, each bidder's bundles
 * in the order placed, winning tried before not winning. `skip` leaves one group out.
 */
function solveExact(p: Prepared, skip: number): { value: number; choice: Int32Array } {
  const n = p.groups.length;
  const suffix = new Float64Array(n + 1);
  for (let g = n - 1; g >= 0; g--) {
    let top = 0;
    if (g !== skip) for (const o of (p.groups[g] as Group).options) top = Math.max(top, o.value);
    suffix[g] = (suffix[g + 1] as number) + top;
  }
  const left = Int32Array.from(p.supply);
  const choice = new Int32Array(n).fill(-1);
  // Allocations within a relative epsilon of each other are equally good: the first found stays,
  // so ties follow the documented order, not float rounding (0.1 + 0.2 > 0.3 in doubles).
  const tol = REL_EPS * Math.max(1, suffix[0] as number);
  let bestValue = -1;
  let bestChoice = Int32Array.from(choice);
  const visit = (g: number, acc: number): void => {
    if (acc + (suffix[g] as number) <= bestValue + tol) return;
    if (g === n) {
      bestValue = acc;
      bestChoice = Int32Array.from(choice);
      return;
    }
    if (g !== skip) {
      const opts = (p.groups[g] as Group).options;
      for (let k = 0; k < opts.length; k++) {
        const o = opts[k] as Option;
        if (!fits(o.need, left)) continue;
        take(o.need, left, 1);
        choice[g] = k;
        visit(g + 1, acc + o.value);
        choice[g] = -1;
        take(o.need, left, -1);
      }
    }
    visit(g + 1, acc);
  };
  visit(0, 0);
  return { value: bestValue, choice: bestChoice };
}

/** Greedy order of Lehmann, O'Callaghan and Shoham: value / sqrt(units), then seq, bidder, index. */
function greedyOrder(p: Prepared): Option[] {
  const all: Option[] = [];
  for (const g of p.groups) all.push(...g.options);
  const score = (o: Option) => o.value / Math.sqrt(o.size);
  return all.sort(
    (a, b) =>
      score(b) - score(a) ||
      a.seq - b.seq ||
      (a.bidder < b.bidder ? -1 : a.bidder > b.bidder ? 1 : 0) ||
      a.index - b.index,
  );
}

/** @internal work counter of the greedy's payments, read by the tests (steps scanned per close) */
export const greedyWork = { steps: 0 };

/** A bundle the greedy turned away for lack of units, with the units left of its items then. */
interface TurnedAway {
  readonly pos: number;
  readonly option: Option;
  /** `left` at that moment, per `need` pair of the option (same layout, quantities replaced). */
  readonly left: Int32Array;
}

/**
 * Run the greedy over `order` once: the accepted options (with their positions) and the bundles
 * turned away for lack of units (bundles of bidders that had already won are skipped, not turned
 * away).
 */
function runGreedy(
  order: readonly Option[],
  supply: Int32Array,
): { accepted: Option[]; positions: number[]; turnedAway: TurnedAway[] } {
  const left = Int32Array.from(supply);
  const won = new Set<string>();
  const accepted: Option[] = [];
  const positions: number[] = [];
  const turnedAway: TurnedAway[] = [];
  for (let pos = 0; pos < order.length; pos++) {
    const o = order[pos] as Option;
    if (won.has(o.bidder)) continue;
    if (!fits(o.need, left)) {
      const at = Int32Array.from(o.need);
      for (let k = 0; k < at.length; k += 2) at[k + 1] = left[at[k] as number] as number;
      turnedAway.push({ pos, option: o, left: at });
      continue;
    }
    take(o.need, left, 1);
    won.add(o.bidder);
    accepted.push(o);
    positions.push(pos);
  }
  return { accepted, positions, turnedAway };
}

/**
 * LOS critical values (excluding reserve costs) of every greedy winner, from the one full run.
 *
 * The greedy without winner w runs exactly like the full run up to w's position, then, with w's
 * units still free, accepts what the full run accepted, until the first bundle j after w that
 * the full run turned away for lack of units and that fits once w's units are added back: j is
 * accepted there and leaves too few units for w (it did not fit without them), so j is the bundle
 * that crowds w out, and w's critical value is `score(j) * sqrt(units of w)`; 0 when no such j
 * exists (in particular when the full run turned nothing away). So no greedy is re-run: each
 * winner scans only the turned-away bundles after it, usually stopping at the first.
 */
function criticalValues(
  accepted: readonly Option[],
  positions: readonly number[],
  turnedAway: readonly TurnedAway[],
  items: number,
): Float64Array {
  const out = new Float64Array(accepted.length);
  if (turnedAway.length === 0) return out;
  const extra = new Int32Array(items);
  let first = 0;
  // Winners are in greedy order, so the first turned-away bundle after each only moves forward.
  for (let w = 0; w < accepted.length; w++) {
    const won = accepted[w] as Option;
    const pos = positions[w] as number;
    while (first < turnedAway.length && (turnedAway[first] as TurnedAway).pos < pos) first++;
    take(won.need, extra, -1);
    for (let t = first; t < turnedAway.length; t++) {
      greedyWork.steps++;
      const j = turnedAway[t] as TurnedAway;
      const need = j.option.need;
      let ok = true;
      for (let k = 0; k < need.length; k += 2) {
        if ((j.left[k + 1] as number) + (extra[need[k] as number] as number) < (need[k + 1] as number)) {
          ok = false;
          break;
        }
      }
      if (ok) {
        out[w] = (j.option.value / Math.sqrt(j.option.size)) * Math.sqrt(won.size);
        break;
      }
    }
    take(won.need, extra, 1);
  }
  return out;
}

/**
 * Winner determination alone: which bids win. Exact (welfare-maximizing) up to `exactMaxBids`
 * bids, the LOS greedy above (see `vcgAuction`).
 */
export function winnerDetermination(
  bids: readonly BundleBid[],
  supply: Bundle,
  options: VcgOptions = {},
): { method: WinnerDeterminationMethod; welfare: number; winners: number[] } {
  const out = vcgAuction(bids, supply, options, false);
  return { method: out.method, welfare: out.welfare, winners: out.winners.map((w) => w.index) };
}

/**
 * VCG over multi-unit and combinatorial XOR bids. `supply` gives the units of each item; each
 * bidder wins at most one of its bundles. The reserve is the seller's per-unit value: a bundle is
 * valued at its amount minus its reserve cost, and bundles below their reserve cost never win.
 *
 * Exact (up to `exactMaxBids` bids, default VCG_EXACT_MAX_BIDS): the allocation maximizes the
 * total value, and each winner pays its reserve cost plus the externality it imposes on the
 * others, W(without it) - (W - its value): never more than its bid, never less than its reserve
 * cost (clamped to that range against float rounding).
 *
 * Above the limit: the greedy of Lehmann, O'Callaghan and Shoham (2002), bundles ranked by value /
 * sqrt(units), each accepted if its units are still free and its bidder has not won yet; a
 * winner pays its critical value, the lowest amount at which that bundle would still have won,
 * `reserve cost + score(j) * sqrt(units)` where j is the first other bundle whose acceptance
 * (in the greedy run without the winner) would have crowded it out, or its reserve cost when none
 * would. The greedy is a sqrt(units)-approximation of the best welfare, and truthful for
 * single-minded bidders (one bundle each); `method` in the outcome says which was used.
 */
export function vcgAuction(
  bids: readonly BundleBid[],
  supply: Bundle,
  options: VcgOptions = {},
  withPayments = true,
): VcgOutcome {
  const limit = options.exactMaxBids ?? VCG_EXACT_MAX_BIDS;
  const p = prepare(bids, supply, options.reserve);
  const counted = p.groups.reduce((n, g) => n + g.options.length, 0);
  const method: WinnerDeterminationMethod =
    options.method === 'exact' || options.method === 'greedy'
      ? options.method
      : counted <= limit
        ? 'exact'
        : 'greedy';
  const winners: VcgAward[] = [];
  let welfare = 0;
  const award = (o: Option, price: number) => {
    const b = bids[o.index] as BundleBid;
    const reserveCost = b.amount - o.value;
    welfare += b.amount;
    winners.push({
      index: o.index,
      bidder: b.bidder,
      items: b.items,
      amount: b.amount,
      price: Math.min(b.amount, Math.max(reserveCost, price)),
    });
  };
  if (method === 'exact') {
    const all = solveExact(p, -1);
    p.groups.forEach((g, gi) => {
      const k = all.choice[gi] as number;
      if (k < 0) return;
      const o = g.options[k] as Option;
      const reserveCost = (bids[o.index] as BundleBid).amount - o.value;
      const price = withPayments ? reserveCost + solveExact(p, gi).value - (all.value - o.value) : 0;
      award(o, price);
    });
  } else {
    const order = greedyOrder(p);
    const run = runGreedy(order, p.supply);
    const critical = withPayments
      ? criticalValues(run.accepted, run.positions, run.turnedAway, p.supply.length)
      : null;
    // Report winners in bidder order, like the exact method.
    const rank = new Map(p.groups.map((g, i) => [g.bidder, i]));
    const byBidder = run.accepted.map((o, w) => ({ o, w }));
    byBidder.sort((a, b) => (rank.get(a.o.bidder) as number) - (rank.get(b.o.bidder) as number));
    for (const { o, w } of byBidder) {
      const reserveCost = (bids[o.index] as BundleBid).amount - o.value;
      award(o, critical === null ? 0 : reserveCost + (critical[w] as number));
    }
  }
  return { method, welfare, winners };
}

/**
 * The best total value (amounts minus reserve costs) over feasible XOR allocations, by brute
 * force over every combination: a test oracle for small instances, exported for the property
 * tests. @internal
 */
export function bruteForceWelfare(
  bids: readonly BundleBid[],
  supply: Bundle,
  reserve: Bundle = {},
  without?: string,
): number {
  const p = prepare(
    bids.filter((b) => b.bidder !== without),
    supply,
    reserve,
  );
  let bestValue = 0;
  const left = Int32Array.from(p.supply);
  const walk = (g: number, acc: number) => {
    if (g === p.groups.length) {
      bestValue = Math.max(bestValue, acc);
      return;
    }
    walk(g + 1, acc);
    for (const o of (p.groups[g] as Group).options) {
      if (!fits(o.need, left)) continue;
      take(o.need, left, 1);
      walk(g + 1, acc + o.value);
      take(o.need, left, -1);
    }
  };
  walk(0, 0);
  return bestValue;
}
