import { afterEach, describe, expect, it } from 'vitest';
import {
  type AnyBid,
  AUCTION_CLOSED,
  AuctionErrorCodes,
  type AuctionResult,
  Auctions,
  type BidMessage,
  BidRejectedError,
  type BidRejection,
  type BidRequest,
  placeBid,
  type VcgRequest,
  withBidding,
} from '../../src/economics/auction.js';
import {
  type AnyRef,
  behaviour,
  DynamicSupervisor,
  InvalidArgumentError,
  type Pid,
  pidEquals,
  Runtime,
  VirtualClock,
} from '../../src/kernel/index.js';
import { awaitTelemetry, type Probe, probe } from '../../src/kernel/testkit.js';

/**
 * A bidder with a private value that decides by itself: sealed auctions get `value * shade`,
 * English asks are met while they are within the value, Dutch prices accepted once at or below
 * it, VCG requests get `bundles`.
 */
interface Valuer {
  value: number;
  shade?: number;
  bundles?: { items: Record<string, number>; amount: number }[];
  requests?: number;
}
const ValueBidder = withBidding<Valuer, Valuer, never, never, 'crash', never>(
  behaviour<Valuer, Valuer, never, never, 'crash'>({
    init: (s) => ({ ...s, requests: 0 }),
    handleCast: () => {
      throw new Error('crash requested');
    },
  }),
  (req: BidRequest, s): { bid: AnyBid | null; state: Valuer } => {
    const state = { ...s, requests: (s.requests ?? 0) + 1 };
    switch (req.kind) {
      case 'first_price':
      case 'vickrey':
        return { bid: { amount: s.value * (s.shade ?? 1) }, state };
      case 'english':
        return { bid: req.ask <= s.value ? { amount: req.ask } : null, state };
      case 'dutch':
        return { bid: req.price <= s.value ? { amount: req.price } : null, state };
      case 'vcg':
        return { bid: s.bundles ? { bundles: s.bundles } : null, state };
    }
  },
);

/** Never answers: holds an auction open until its deadline. */
const Silent = behaviour<void, null, never, never, unknown>({ init: () => null, handleCast: (_m, s) => s });

let rt: Runtime;
let clock: VirtualClock;
afterEach(async () => {
  await rt?.shutdown();
});

async function setup(options: { budgets?: (p: Pid) => number | undefined } = {}) {
  clock = new VirtualClock();
  rt = new Runtime({ clock });
  return Auctions.start(rt, options);
}
const valuers = (values: number[], extra: Partial<Valuer> = {}): AnyRef[] =>
  values.map((value) => rt.spawnSync(ValueBidder, { value, ...extra }));
const silent = (n: number): AnyRef[] => Array.from({ length: n }, () => rt.spawnSync(Silent, undefined));
/** The probe's next bid request. */
const nextRequest = (p: Probe): Promise<BidRequest> => p.expectMessage({ type: 'bid_request' });
const bidAs = (p: Probe, req: BidRequest | BidRejection, bid: AnyBid | null) => placeBid(p.ctx, req, bid);

function sold(r: AuctionResult) {
  if (r.outcome !== 'sold') throw new Error(`expected sold, got ${JSON.stringify(r)}`);
  return r;
}
const winnerIs = (r: AuctionResult, ref: AnyRef) => pidEquals(sold(r).winners[0]?.bidder as Pid, ref);

describe('sealed first price', () => {
  it('the best bid wins and pays its own bid; closes once everyone answered and publishes closed', async () => {
    const a = await setup();
    const closed = awaitTelemetry(rt, AUCTION_CLOSED);
    const bidders = valuers([10, 30, 20]);
    const r = await a.run(bidders, { kind: 'first_price' });
    expect(r).toMatchObject({
      outcome: 'sold',
      revenue: 30,
      validBids: 3,
      endedBy: 'all_answered',
      rounds: 1,
    });
    expect(winnerIs(r, bidders[1] as AnyRef)).toBe(true);
    expect(sold(r).winners[0]).toMatchObject({ items: { item: 1 }, bid: 30, price: 30 });
    const event = await closed;
    expect(event.measurements).toMatchObject({ revenue: 30, winners: 1, validBids: 3 });
    expect(event.metadata).toMatchObject({ id: r.id, kind: 'first_price', outcome: 'sold' });
  });

  it('ends unsold when every bidder passes', async () => {
    const a = await setup();
    const r = await a.run(valuers([0, 0]), { kind: 'first_price' });
    // A value of 0 bids amount 0: rejected as not positive, then the bidder passes by default.
    expect(r).toMatchObject({ outcome: 'unsold', validBids: 0, endedBy: 'all_answered' });
    expect(r.rejected.map((x) => x.code)).toEqual([
      AuctionErrorCodes.INVALID_AMOUNT,
      AuctionErrorCodes.INVALID_AMOUNT,
    ]);
  });
});

describe('Vickrey', () => {
  it('the best bid wins and pays the second-highest bid', async () => {
    const a = await setup();
    const bidders = valuers([10, 30, 20]);
    const r = sold(await a.run(bidders, { kind: 'vickrey' }));
    expect(winnerIs(r, bidders[1] as AnyRef)).toBe(true);
    expect(r.winners[0]).toMatchObject({ bid: 30, price: 20 });
  });

  it('pays the reserve when it is above the second bid, or when there is no second bid', async () => {
    const a = await setup();
    expect(sold(await a.run(valuers([10, 30]), { kind: 'vickrey', reserve: 25 })).revenue).toBe(25);
    expect(sold(await a.run(valuers([30]), { kind: 'vickrey', reserve: 5 })).revenue).toBe(5);
  });

  it('breaks ties by the earliest valid bid', async () => {
    const a = await setup();
    const [p1, p2] = [probe(rt), probe(rt)];
    const h = await a.start([p1.ref, p2.ref], { kind: 'vickrey' });
    const [r1, r2] = [await nextRequest(p1), await nextRequest(p2)];
    bidAs(p2, r2, { amount: 7 });
    bidAs(p1, r1, { amount: 7 });
    const r = sold(await h.result);
    expect(winnerIs(r, p2.ref)).toBe(true);
    expect(r.winners[0]?.price).toBe(7);
  });

  it('bids below the reserve are rejected; with no valid bid the auction ends unsold', async () => {
    const a = await setup();
    const closed = awaitTelemetry(rt, AUCTION_CLOSED);
    const r = await a.run(valuers([3, 4]), { kind: 'vickrey', reserve: 5 });
    expect(r).toMatchObject({ outcome: 'unsold', validBids: 0 });
    expect(r.rejected.map((x) => x.code)).toEqual([
      AuctionErrorCodes.BELOW_RESERVE,
      AuctionErrorCodes.BELOW_RESERVE,
    ]);
    expect((await closed).metadata).toMatchObject({ outcome: 'unsold' });
  });
});

describe('invalid bids are rejected to the bidder and the auction goes on', () => {
  it('negative, over budget and unknown item: each rejected with its code, then a valid bid wins', async () => {
    const budgets = new Map<string, number>();
    const a = await setup({ budgets: (p) => budgets.get(`${p.id}`) });
    const p = probe(rt);
    budgets.set(`${p.ref.id}`, 50);
    const [other] = valuers([10]);
    const h = await a.start([p.ref, other as AnyRef], { kind: 'vickrey', item: 'gpu-hour' });
    const req = await nextRequest(p);
    expect(req).toMatchObject({ kind: 'vickrey', item: 'gpu-hour', reserve: 0, round: 0 });
    const cases: [AnyBid, string, RegExp][] = [
      [{ amount: -5 }, AuctionErrorCodes.INVALID_AMOUNT, /-5/],
      [{ amount: 80 }, AuctionErrorCodes.OVER_BUDGET, /80.*budget 50/],
      [{ amount: 20, item: 'cpu-hour' }, AuctionErrorCodes.UNKNOWN_ITEM, /cpu-hour/],
    ];
    for (const [bid, code, message] of cases) {
      bidAs(p, req, bid);
      const rej = await p.expectMessage<BidRejection>({ type: 'bid_rejected', code });
      expect(rej.error).toBeInstanceOf(BidRejectedError);
      expect(rej.error).toMatchObject({ code, message });
      expect(rej.bid).toEqual(bid);
    }
    // Still open: the probe bids again, validly.
    bidAs(p, req, { amount: 40, item: 'gpu-hour' });
    const r = sold(await h.result);
    expect(winnerIs(r, p.ref)).toBe(true);
    expect(r.winners[0]).toMatchObject({ bid: 40, price: 10 });
    expect(r.rejected.map((x) => x.code)).toEqual(cases.map((c) => c[1]));
    expect(r.rejected.every((x) => pidEquals(x.bidder, p.ref))).toBe(true);
  });

  it('a second bid is a duplicate; a stranger is not a bidder (told once)', async () => {
    const a = await setup();
    const [p, stranger] = [probe(rt), probe(rt)];
    const h = await a.start([p.ref, ...silent(1)], { kind: 'first_price', deadlineMs: 100 });
    const req = await nextRequest(p);
    bidAs(p, req, { amount: 5 });
    bidAs(p, req, { amount: 6 });
    await p.expectMessage({ type: 'bid_rejected', code: AuctionErrorCodes.DUPLICATE_BID });
    // The stranger has no token of its own: it answers p's request without p's secret.
    const forged = { ...req, token: 'not-a-token' };
    bidAs(stranger, forged, { amount: 9 });
    bidAs(stranger, forged, { amount: 9 });
    await stranger.expectMessage({ type: 'bid_rejected', code: AuctionErrorCodes.NOT_BIDDER });
    await DynamicSupervisor.countChildren(rt, a.supervisor);
    clock.advance(100);
    const r = sold(await h.result);
    expect(r.winners[0]?.price).toBe(5);
    expect(r.rejected.map((x) => x.code)).toEqual([
      AuctionErrorCodes.DUPLICATE_BID,
      AuctionErrorCodes.NOT_BIDDER,
    ]);
    await stranger.refuteMessage({ type: 'bid_rejected' }, { within: 10 });
  });

  it('withBidding: onRejected may bid again (here: within the budget)', async () => {
    const a = await setup({ budgets: () => 15 });
    const Retry = withBidding<number, number, never, never, never, never>(
      behaviour<number, number>({ init: (v) => v }),
      (_req, value) => ({ amount: value }),
      { onRejected: (rej) => (rej.code === AuctionErrorCodes.OVER_BUDGET ? { amount: 15 } : null) },
    );
    const r = sold(await a.run([rt.spawnSync(Retry, 40), ...valuers([12])], { kind: 'vickrey' }));
    expect(r.winners[0]).toMatchObject({ bid: 15, price: 12 });
    expect(r.rejected).toHaveLength(1);
  });
  it('a bidder that keeps re-sending an invalid bid counts as passed after 5 rejections', async () => {
    const a = await setup();
    const Stubborn = withBidding<number, number, never, never, never, never>(
      behaviour<number, number>({ init: (v) => v }),
      (_req, v) => ({ amount: v }),
      { onRejected: (_rej, v) => ({ amount: v }) },
    );
    const r = sold(await a.run([rt.spawnSync(Stubborn, -1), ...valuers([4])], { kind: 'vickrey' }));
    expect(r).toMatchObject({ revenue: 0, endedBy: 'all_answered', validBids: 1 });
    expect(r.rejected).toHaveLength(5);
  });
});

describe('deadlines and crashes', () => {
  it('closes at the deadline with the bids it has (virtual clock)', async () => {
    const a = await setup();
    const h = await a.start([...valuers([8, 9]), ...silent(1)], { kind: 'vickrey', deadlineMs: 200 });
    let done: AuctionResult | undefined;
    void h.result.then((r) => {
      done = r;
    });
    clock.advance(199);
    await DynamicSupervisor.countChildren(rt, a.supervisor);
    expect(done).toBeUndefined();
    clock.advance(1);
    const r = sold(await h.result);
    expect(r).toMatchObject({ endedBy: 'deadline', revenue: 8, durationMs: 200, validBids: 2 });
  });

  it('a bidder crashing mid-auction is dropped with its bid', async () => {
    const a = await setup();
    const [high, low] = [probe(rt), probe(rt)];
    const h = await a.start([high.ref, low.ref, ...silent(1)], { kind: 'vickrey', deadlineMs: 100 });
    bidAs(high, await nextRequest(high), { amount: 100 });
    bidAs(low, await nextRequest(low), { amount: 10 });
    await DynamicSupervisor.countChildren(rt, a.supervisor);
    rt.kill(high.ref);
    await rt.awaitExit(high.ref);
    clock.advance(100);
    const r = sold(await h.result);
    expect(winnerIs(r, low.ref)).toBe(true);
    expect(r).toMatchObject({ revenue: 0, validBids: 2 });
    expect(r.dropped).toHaveLength(1);
    expect(pidEquals(r.dropped[0] as Pid, high.ref)).toBe(true);
  });

  it('ends unsold with no_bidders when every bidder crashes (or is already gone)', async () => {
    const a = await setup();
    const [gone, s] = silent(2);
    rt.kill(gone as AnyRef);
    const h = await a.start([gone as AnyRef, s as AnyRef], { kind: 'first_price' });
    rt.kill(s as AnyRef);
    expect(await h.result).toMatchObject({ outcome: 'unsold', endedBy: 'no_bidders', validBids: 0 });
    expect((await h.result).dropped).toHaveLength(2);
  });

  it('a killed session, or a stopped service, ends the auction aborted', async () => {
    const a = await setup();
    const h = await a.start(silent(2), { kind: 'vickrey' });
    rt.kill(h.ref);
    expect(await h.result).toMatchObject({
      outcome: 'aborted',
      endedBy: 'session_exit',
      exitReason: 'killed',
    });
    const closed = awaitTelemetry(rt, AUCTION_CLOSED);
    const h2 = await a.start(silent(2), { kind: 'vcg', supply: { a: 1 } });
    await a.stop();
    expect(await h2.result).toMatchObject({ outcome: 'aborted', exitReason: 'shutdown' });
    expect((await closed).metadata).toMatchObject({ outcome: 'aborted' });
  });

  it('sessions are temporary children: gone after closing', async () => {
    const a = await setup();
    await a.run(valuers([1, 2]), { kind: 'first_price' });
    await rt.stop(rt.spawnSync(Silent, undefined));
    expect((await DynamicSupervisor.countChildren(rt, a.supervisor)).active).toBe(0);
  });
});

describe('English', () => {
  it('ascends by the increment until a round brings no new bid; the highest value wins near the second value', async () => {
    const a = await setup();
    const bidders = valuers([47, 85, 60]);
    const closed = awaitTelemetry(rt, AUCTION_CLOSED);
    const r = sold(await a.run(bidders, { kind: 'english', increment: 5 }));
    expect(winnerIs(r, bidders[1] as AnyRef)).toBe(true);
    expect(r.endedBy).toBe('no_new_bid');
    const price = r.winners[0]?.price as number;
    expect(Math.abs(price - 60)).toBeLessThanOrEqual(5);
    expect(r.rounds).toBeGreaterThan(5);
    expect((await closed).measurements.rounds).toBe(r.rounds);
  });

  it('opens at the reserve; with nobody willing it ends unsold after the first round', async () => {
    const a = await setup();
    const r = await a.run(valuers([10, 20]), { kind: 'english', increment: 1, reserve: 50 });
    expect(r).toMatchObject({ outcome: 'unsold', rounds: 1, endedBy: 'no_new_bid' });
  });

  it('rejects bids below the ask, from the leader, and for a past round', async () => {
    const a = await setup();
    const [p, q] = [probe(rt), probe(rt)];
    const h = await a.start([p.ref, q.ref], { kind: 'english', increment: 10, startPrice: 20 });
    const r1 = await nextRequest(p);
    expect(r1).toMatchObject({ kind: 'english', round: 1, ask: 20, standing: null });
    bidAs(p, r1, { amount: 15 });
    await p.expectMessage({ type: 'bid_rejected', code: AuctionErrorCodes.BID_TOO_LOW });
    bidAs(p, r1, { amount: 25 });
    const q1 = await nextRequest(q);
    bidAs(q, q1, null);
    // Round 2: only q is asked (p leads).
    const r2 = await nextRequest(q);
    expect(r2).toMatchObject({ round: 2, ask: 35, standing: 25 });
    bidAs(p, { ...r2, token: r1.token }, { amount: 50 }); // p's own token, this round
    await p.expectMessage({ type: 'bid_rejected', code: AuctionErrorCodes.ALREADY_LEADING });
    bidAs(q, q1, { amount: 50 });
    await q.expectMessage({ type: 'bid_rejected', code: AuctionErrorCodes.STALE_ROUND });
    bidAs(q, r2, { amount: 40 });
    const r3 = await nextRequest(p);
    expect(r3).toMatchObject({ round: 3, ask: 50, standing: 40 });
    bidAs(p, r3, null);
    const r = sold(await h.result);
    expect(winnerIs(r, q.ref)).toBe(true);
    expect(r).toMatchObject({ revenue: 40, rounds: 3, validBids: 2 });
  });

  it('a round ends at roundMs when a bidder stays silent; a crashed leader falls back to the best live bid (in a new round)', async () => {
    const a = await setup();
    const [p, q] = [probe(rt), probe(rt)];
    const [s] = silent(1);
    const h = await a.start([p.ref, q.ref, s as AnyRef], { kind: 'english', increment: 1, roundMs: 50 });
    const r1 = await nextRequest(p);
    bidAs(p, r1, { amount: 5 });
    bidAs(q, await nextRequest(q), { amount: 5 });
    await DynamicSupervisor.countChildren(rt, a.supervisor);
    clock.advance(50); // the silent bidder holds round 1 until here
    const r2 = await nextRequest(q); // p bid first at 5: it leads
    expect(r2).toMatchObject({ round: 2, standing: 5, ask: 6 });
    rt.kill(p.ref); // the leader crashes: q's 5 stands, and a new round asks 5 + 1
    await rt.awaitExit(p.ref);
    await DynamicSupervisor.countChildren(rt, a.supervisor);
    clock.advance(50); // round 3 (only the silent bidder is asked, at 6) brings no bid
    const r = sold(await h.result);
    expect(winnerIs(r, q.ref)).toBe(true);
    expect(r).toMatchObject({ revenue: 5, endedBy: 'no_new_bid', rounds: 3 });
    expect(r.dropped).toHaveLength(1);
  });

  it('an optional deadline stops the bidding: the standing bid wins', async () => {
    const a = await setup();
    const [p] = [probe(rt)];
    const h = await a.start([p.ref, ...silent(1)], {
      kind: 'english',
      increment: 1,
      roundMs: 1000,
      deadlineMs: 30,
    });
    bidAs(p, await nextRequest(p), { amount: 3 });
    await DynamicSupervisor.countChildren(rt, a.supervisor);
    clock.advance(30);
    expect(await h.result).toMatchObject({ outcome: 'sold', revenue: 3, endedBy: 'deadline' });
  });
});

describe('Dutch', () => {
  it('the clock descends on runtime timers; the first acceptance wins at the clock price', async () => {
    const a = await setup();
    const bidders = valuers([42, 65, 30]);
    const h = await a.start(bidders, { kind: 'dutch', startPrice: 100, decrement: 10, tickMs: 1000 });
    let done: AuctionResult | undefined;
    void h.result.then((r) => {
      done = r;
    });
    for (let t = 0; t < 3; t++) {
      clock.advance(1000); // 90, 80, 70: nobody accepts
      await DynamicSupervisor.countChildren(rt, a.supervisor);
    }
    expect(done).toBeUndefined();
    clock.advance(1000); // 60: the 65 bidder accepts
    const r = sold(await h.result);
    expect(winnerIs(r, bidders[1] as AnyRef)).toBe(true);
    expect(r).toMatchObject({ revenue: 60, endedBy: 'accepted', rounds: 5, durationMs: 4000 });
  });

  it('ends unsold at the floor (the reserve) without an acceptance', async () => {
    const a = await setup();
    const h = await a.start(valuers([5]), {
      kind: 'dutch',
      startPrice: 30,
      decrement: 10,
      tickMs: 10,
      reserve: 15,
    });
    clock.advance(10); // 20
    await DynamicSupervisor.countChildren(rt, a.supervisor);
    clock.advance(10); // 10 < 15: floor
    expect(await h.result).toMatchObject({ outcome: 'unsold', endedBy: 'floor', rounds: 2 });
  });

  it('rejects an acceptance below the clock price and over budget; a late acceptance pays the current price', async () => {
    const a = await setup({ budgets: () => 85 });
    const p = probe(rt);
    const h = await a.start([p.ref], { kind: 'dutch', startPrice: 100, decrement: 10, tickMs: 10 });
    const r0 = await nextRequest(p);
    expect(r0).toMatchObject({ kind: 'dutch', price: 100, round: 0 });
    bidAs(p, r0, { amount: 50 });
    await p.expectMessage({ type: 'bid_rejected', code: AuctionErrorCodes.BID_TOO_LOW });
    bidAs(p, r0, { amount: 100 });
    await p.expectMessage({ type: 'bid_rejected', code: AuctionErrorCodes.OVER_BUDGET });
    clock.advance(20); // 80
    await nextRequest(p);
    bidAs(p, r0, { amount: 85 }); // answers the first request, still at or above the price now
    expect(sold(await h.result).winners[0]).toMatchObject({ bid: 85, price: 80 });
  });
});

describe('VCG', () => {
  it('combinatorial: the best allocation wins and each winner pays its externality', async () => {
    const a = await setup();
    const [x, y, z] = [
      { value: 0, bundles: [{ items: { a: 1, b: 1 }, amount: 10 }] },
      { value: 0, bundles: [{ items: { a: 1 }, amount: 6 }] },
      { value: 0, bundles: [{ items: { b: 1 }, amount: 5 }] },
    ].map((s) => rt.spawnSync(ValueBidder, s));
    const r = sold(await a.run([x, y, z] as AnyRef[], { kind: 'vcg', supply: { a: 1, b: 1 } }));
    expect(r).toMatchObject({ method: 'exact', welfare: 11, revenue: 9 });
    expect(r.winners.map((w) => [w.items, w.bid, w.price])).toEqual([
      [{ a: 1 }, 6, 5],
      [{ b: 1 }, 5, 4],
    ]);
  });

  it('multi-unit with XOR bids and a per-unit reserve', async () => {
    const a = await setup();
    const bidders = [
      {
        value: 0,
        bundles: [
          { items: { slot: 1 }, amount: 8 },
          { items: { slot: 2 }, amount: 14 },
        ],
      },
      { value: 0, bundles: [{ items: { slot: 1 }, amount: 7 }] },
      { value: 0, bundles: [{ items: { slot: 1 }, amount: 3 }] },
    ].map((s) => rt.spawnSync(ValueBidder, s));
    const r = sold(await a.run(bidders, { kind: 'vcg', supply: { slot: 3 }, reserve: { slot: 2 } }));
    // Values net of reserve: 6 | 12, 5, 1. Best: 12 + 5 = 17 (units 2 + 1).
    expect(r.winners.map((w) => [w.items, w.price])).toEqual([
      [{ slot: 2 }, 2 * 2 + (6 - 5)],
      [{ slot: 1 }, 2 + 1],
    ]);
  });

  it('above exactMaxBids the LOS greedy is used and named in the result', async () => {
    const a = await setup();
    const bidders = [
      { value: 0, bundles: [{ items: { a: 1, b: 1 }, amount: 10 }] },
      { value: 0, bundles: [{ items: { a: 1 }, amount: 6 }] },
      { value: 0, bundles: [{ items: { b: 1 }, amount: 3 }] },
    ].map((s) => rt.spawnSync(ValueBidder, s));
    const r = sold(await a.run(bidders, { kind: 'vcg', supply: { a: 1, b: 1 }, exactMaxBids: 2 }));
    // Scores: 10/sqrt2 = 7.07, 6, 3: the pair wins (the exact optimum would be the same here: 10 > 9).
    expect(r.method).toBe('greedy');
    expect(r.winners).toHaveLength(1);
    // Critical value: the first bid crowding it out without it is 6 (score 6), times sqrt(2).
    expect(r.winners[0]?.price).toBeCloseTo(6 * Math.SQRT2, 9);
  });

  it('rejects unknown items, bad units and bundles below their reserve cost', async () => {
    const a = await setup();
    const p = probe(rt);
    const h = await a.start([p.ref], { kind: 'vcg', supply: { a: 2 }, reserve: { a: 3 } });
    const req = await nextRequest(p);
    expect(req).toMatchObject({ kind: 'vcg', supply: { a: 2 }, reserve: { a: 3 } });
    const cases: [AnyBid, string][] = [
      [{ items: { b: 1 }, amount: 5 }, AuctionErrorCodes.UNKNOWN_ITEM],
      [{ items: { a: 3 }, amount: 50 }, AuctionErrorCodes.INVALID_BUNDLE],
      [
        {
          bundles: [
            { items: { a: 1 }, amount: 9 },
            { items: { a: 2 }, amount: 5 },
          ],
        },
        AuctionErrorCodes.BELOW_RESERVE,
      ],
      [{ bundles: [] }, AuctionErrorCodes.INVALID_BUNDLE],
    ];
    for (const [bid, code] of cases) {
      bidAs(p, req, bid);
      await p.expectMessage({ type: 'bid_rejected', code });
    }
    bidAs(p, req, { items: { a: 2 }, amount: 9 });
    expect(sold(await h.result).winners[0]).toMatchObject({ items: { a: 2 }, price: 6 });
  });

  it('ends unsold when nobody bids', async () => {
    const a = await setup();
    const r = await a.run(valuers([1, 1]), { kind: 'vcg', supply: { a: 1 } });
    expect(r).toMatchObject({ outcome: 'unsold', endedBy: 'all_answered', method: 'exact' });
  });
});

describe('withBidding and service input', () => {
  it('async decisions, and other casts reach the base behaviour', async () => {
    const a = await setup();
    const seen: string[] = [];
    const Async = withBidding<number, number, never, never, 'ping', never>(
      behaviour<number, number, never, never, 'ping'>({
        init: (v) => v,
        handleCast: (m, s) => {
          seen.push(m);
          return s;
        },
      }),
      async (_req, v) => ({ amount: v }),
    );
    const b = rt.spawnSync(Async, 9);
    rt.cast(b, 'ping');
    expect(sold(await a.run([b, rt.spawnSync(Async, 4)], { kind: 'vickrey' })).revenue).toBe(4);
    expect(seen).toEqual(['ping']);
  });

  it('a bidder crashing in its own decision is dropped', async () => {
    const a = await setup();
    const Crashy = withBidding<number, number, never, never, never, never>(
      behaviour<number, number>({ init: (v) => v }),
      (_req, v) => {
        if (v < 0) throw new Error('bidder bug');
        return { amount: v };
      },
    );
    const r = sold(await a.run([rt.spawnSync(Crashy, -1), rt.spawnSync(Crashy, 3)], { kind: 'first_price' }));
    expect(r).toMatchObject({ revenue: 3, endedBy: 'all_answered' });
    expect(r.dropped).toHaveLength(1);
  });

  it.each([
    ['no bidders', [], { kind: 'vickrey' }, /bidders/],
    ['a non-pid bidder', [{ id: 1 }], { kind: 'vickrey' }, /bidders\[0\]/],
    ['an unknown kind', 'b', { kind: 'candle' }, /candle/],
    ['a negative reserve', 'b', { kind: 'vickrey', reserve: -1 }, /reserve.*-1/],
    ['a zero increment', 'b', { kind: 'english', increment: 0 }, /increment.*0/],
    [
      'a Dutch start below the reserve',
      'b',
      { kind: 'dutch', startPrice: 5, decrement: 1, tickMs: 1, reserve: 9 },
      /startPrice/,
    ],
    ['a missing tickMs', 'b', { kind: 'dutch', startPrice: 5, decrement: 1 }, /tickMs/],
    ['fractional supply', 'b', { kind: 'vcg', supply: { a: 1.5 } }, /supply\.a.*1\.5/],
    [
      'a reserve for an unknown item',
      'b',
      { kind: 'vcg', supply: { a: 1 }, reserve: { b: 1 } },
      /reserve\.b/,
    ],
    [
      'exactMaxBids above the limit',
      'b',
      { kind: 'vcg', supply: { a: 1 }, exactMaxBids: 40 },
      /exactMaxBids.*40/,
    ],
    ['a negative deadline', 'b', { kind: 'first_price', deadlineMs: -1 }, /deadlineMs/],
  ])('rejects %s with E_INVALID_ARGUMENT naming the value', async (_what, bidders, spec, message) => {
    const a = await setup();
    const bs = bidders === 'b' ? valuers([1]) : bidders;
    // biome-ignore lint/suspicious/noExplicitAny: deliberately ill-typed input
    const err = await a.run(bs as any, spec as any).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect(err).toMatchObject({ code: 'E_INVALID_ARGUMENT', message });
  });

  it('rejects duplicate bidders', async () => {
    const a = await setup();
    const [b] = valuers([1]);
    await expect(a.run([b as AnyRef, b as AnyRef], { kind: 'vickrey' })).rejects.toMatchObject({
      code: 'E_INVALID_ARGUMENT',
      message: /duplicate/,
    });
  });

  it('runs concurrent auctions over the same bidders independently', async () => {
    const a = await setup();
    const bs = valuers([5, 9, 7]);
    const results = await Promise.all([
      a.run(bs, { kind: 'vickrey' }),
      a.run(bs, { kind: 'first_price' }),
      a.run(bs, { kind: 'english', increment: 1 }),
    ]);
    expect(results.map((r) => (r.outcome === 'sold' ? r.revenue : r.outcome))).toEqual([
      7,
      9,
      expect.any(Number),
    ]);
    expect(new Set(results.map((r) => r.id)).size).toBe(3);
  });

  it('error codes are unique E_AUCTION_ codes', () => {
    const codes = Object.values(AuctionErrorCodes);
    expect(new Set(codes).size).toBe(codes.length);
    for (const c of codes) expect(c).toMatch(/^E_AUCTION_[A-Z_]+$/);
  });
});

// ---- review regressions ------------------------------------------------------------------------

describe('bidders are identified by their token, not by the `from` they write', () => {
  it('a bidder cannot bid in another bidder’s name', async () => {
    const a = await setup();
    const [p, q] = [probe(rt), probe(rt)];
    const h = await a.start([p.ref, q.ref], { kind: 'vickrey', deadlineMs: 100 });
    const [rp, rq] = [await nextRequest(p), await nextRequest(q)];
    // Each bidder gets its own unguessable token.
    expect(rp.token).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(rq.token).not.toBe(rp.token);
    // p casts a lowball bid claiming to be q (without q's token), then its own bid.
    const forged: BidMessage = {
      type: 'bid',
      id: rp.id,
      round: 0,
      from: q.ref as Pid,
      token: 'guess',
      bid: { amount: 1 },
    };
    p.ctx.cast(rp.auction as unknown as Pid, forged);
    bidAs(p, rp, { amount: 100 });
    await DynamicSupervisor.countChildren(rt, a.supervisor);
    clock.advance(100); // q never bid: the auction waits for it until the deadline
    const r = sold(await h.result);
    expect(winnerIs(r, p.ref)).toBe(true);
    expect(r).toMatchObject({ validBids: 1, revenue: 0, endedBy: 'deadline' });
    expect(r.rejected.map((x) => x.code)).toEqual([AuctionErrorCodes.NOT_BIDDER]);
  });

  it('a non-bidder cannot bid or pass in a bidder’s name; its rejection carries no token', async () => {
    const a = await setup();
    const [p, q, stranger] = [probe(rt), probe(rt), probe(rt)];
    const h = await a.start([p.ref, q.ref], { kind: 'first_price', deadlineMs: 100 });
    const req = await nextRequest(p);
    const forge = (victim: Pid, bid: AnyBid | null): BidMessage => ({
      type: 'bid',
      id: req.id,
      round: 0,
      from: victim,
      token: 'x'.repeat(22),
      bid,
    });
    stranger.ctx.cast(req.auction as unknown as Pid, forge(p.ref as Pid, { amount: 1_000_000 }));
    stranger.ctx.cast(req.auction as unknown as Pid, forge(q.ref as Pid, null));
    bidAs(stranger, { ...req, token: '' }, { amount: 5 });
    const told = (await stranger.expectMessage({ type: 'bid_rejected' })) as BidRejection;
    expect(told).toMatchObject({ code: AuctionErrorCodes.NOT_BIDDER, token: '' });
    await DynamicSupervisor.countChildren(rt, a.supervisor);
    clock.advance(100);
    const r = await h.result;
    expect(r).toMatchObject({ outcome: 'unsold', validBids: 0, endedBy: 'deadline' });
  });
});

describe('English: a crashed leader', () => {
  it('ends the round: a new one asks the fallen-back standing bid + increment', async () => {
    const a = await setup();
    const [A, B, C] = [probe(rt), probe(rt), probe(rt)];
    const h = await a.start([A.ref, B.ref, C.ref], {
      kind: 'english',
      increment: 10,
      startPrice: 10,
      roundMs: 100,
    });
    const [ra, rb, rc] = [await nextRequest(A), await nextRequest(B), await nextRequest(C)];
    bidAs(B, rb, { amount: 10 });
    bidAs(A, ra, { amount: 50 }); // A leads at 50
    bidAs(C, rc, null);
    const rc2 = await nextRequest(C);
    expect(rc2).toMatchObject({ round: 2, ask: 60, standing: 50 });
    await nextRequest(B);
    rt.kill(A.ref); // B's 10 stands now
    await rt.awaitExit(A.ref);
    // Round 3 at once, asking 20 of C (B leads and is not asked); C had passed at 60.
    const rc3 = await nextRequest(C);
    expect(rc3).toMatchObject({ round: 3, ask: 20, standing: 10 });
    // An answer to the old round is stale, and does not use up C's rejections of round 3.
    for (let i = 0; i < 6; i++) bidAs(C, rc2, { amount: 20 });
    await DynamicSupervisor.countChildren(rt, a.supervisor);
    bidAs(C, rc3, { amount: 20 });
    const rb4 = await nextRequest(B);
    expect(rb4).toMatchObject({ round: 4, ask: 30, standing: 20 });
    bidAs(B, rb4, null);
    const r = sold(await h.result);
    expect(winnerIs(r, C.ref)).toBe(true);
    expect(r).toMatchObject({ revenue: 20, rounds: 4, endedBy: 'no_new_bid' });
    // Stale answers are capped on their own (5 told, the 6th ignored).
    expect(r.rejected.map((x) => x.code)).toEqual(Array(5).fill(AuctionErrorCodes.STALE_ROUND));
  });

  it('with no live bid standing, the new round asks the start price again', async () => {
    const a = await setup();
    const [A, B] = [probe(rt), probe(rt)];
    const h = await a.start([A.ref, B.ref], { kind: 'english', increment: 10, startPrice: 10, roundMs: 100 });
    const [ra, rb] = [await nextRequest(A), await nextRequest(B)];
    bidAs(A, ra, { amount: 50 });
    bidAs(B, rb, null);
    await nextRequest(B);
    rt.kill(A.ref);
    await rt.awaitExit(A.ref);
    const rb3 = await nextRequest(B);
    expect(rb3).toMatchObject({ round: 3, ask: 10, standing: null });
    bidAs(B, rb3, { amount: 15 });
    const r = sold(await h.result); // nobody left to outbid B
    expect(winnerIs(r, B.ref)).toBe(true);
    expect(r).toMatchObject({ revenue: 15, dropped: [A.ref] });
  });
});

describe('VCG shares nothing mutable with bidders or the caller', () => {
  it('requests carry frozen copies of supply and reserve; the caller’s spec is not kept', async () => {
    const a = await setup();
    const [p, q] = [probe(rt), probe(rt)];
    const supply = { gpu: 1 };
    const reserve = { gpu: 40 };
    const h = await a.start([p.ref, q.ref], { kind: 'vcg', supply, reserve, deadlineMs: 100 });
    const [rp, rq] = (await Promise.all([nextRequest(p), nextRequest(q)])) as VcgRequest[];
    expect(rp?.supply).not.toBe(supply);
    expect(Object.isFrozen(rp?.supply) && Object.isFrozen(rp?.reserve)).toBe(true);
    expect(() => {
      (rp?.supply as Record<string, number>).gpu = 5;
    }).toThrow(TypeError);
    supply.gpu = 5; // the caller changes its own object after the start
    reserve.gpu = 0;
    expect(rq?.supply).toEqual({ gpu: 1 });
    bidAs(p, rp as VcgRequest, { items: { gpu: 5 }, amount: 50 });
    bidAs(q, rq as VcgRequest, { items: { gpu: 1 }, amount: 1 });
    await DynamicSupervisor.countChildren(rt, a.supervisor);
    clock.advance(100);
    const r = await h.result;
    expect(r).toMatchObject({ outcome: 'unsold', validBids: 0 });
    expect(r.rejected.map((x) => x.code)).toEqual([
      AuctionErrorCodes.INVALID_BUNDLE,
      AuctionErrorCodes.BELOW_RESERVE,
    ]);
  });

  it('a bundle changed by its bidder after it was validated counts as validated', async () => {
    const a = await setup();
    const [p, q] = [probe(rt), probe(rt)];
    const h = await a.start([p.ref, q.ref], { kind: 'vcg', supply: { gpu: 1 } });
    const [rp, rq] = [await nextRequest(p), await nextRequest(q)];
    const bundle: Record<string, number> = { gpu: 1 };
    bidAs(p, rp, { items: bundle, amount: 10 });
    bundle.tpu = 1; // p reuses its object
    bidAs(q, rq, { items: { gpu: 1 }, amount: 20 });
    const r = sold(await h.result);
    expect(r.revenue).toBe(10);
    expect(r.winners[0]?.items).toEqual({ gpu: 1 });
    expect(Object.isFrozen(r.winners[0]?.items)).toBe(true);
  });

  it('an item named like an Object.prototype member ("valueOf") is sold', async () => {
    const a = await setup();
    const p = probe(rt);
    const h = await a.start([p.ref], {
      kind: 'vcg',
      supply: { valueOf: 1, toString: 1 },
      reserve: { toString: 2 },
    });
    bidAs(p, await nextRequest(p), { bundles: [{ items: { valueOf: 1 }, amount: 5 }] });
    const r = await h.result;
    expect(r).toMatchObject({ outcome: 'sold', validBids: 1, rejected: [] });
  });
});

describe('budgets, the Dutch floor and ids', () => {
  it('a budget lookup that throws rejects that bid (naming the error) and the auction goes on', async () => {
    const a = await setup();
    const [p, q] = [probe(rt), probe(rt)];
    const accounts = new Map<number, number>([[q.ref.id, 100]]);
    const balance = (pid: Pid) => {
      const b = accounts.get(pid.id);
      if (b === undefined) throw new InvalidArgumentError('account', 'is unknown', pid.id);
      return b;
    };
    const h = await a.start([p.ref, q.ref], { kind: 'vickrey', budgetOf: balance });
    const [rp, rq] = [await nextRequest(p), await nextRequest(q)];
    bidAs(q, rq, { amount: 50 });
    bidAs(p, rp, { amount: 10 }); // p has no account: rejected, and counted as having passed
    const told = (await p.expectMessage({ type: 'bid_rejected' })) as BidRejection;
    expect(told.code).toBe(AuctionErrorCodes.BUDGET_UNAVAILABLE);
    expect(told.error.message).toMatch(/InvalidArgumentError E_INVALID_ARGUMENT: .*account/);
    const r = sold(await h.result);
    expect(winnerIs(r, q.ref)).toBe(true);
    expect(r).toMatchObject({ endedBy: 'all_answered', revenue: 0 });
  });

  it('a Dutch clock whose decimal steps land on the reserve offers the reserve', async () => {
    const a = await setup();
    const p = probe(rt);
    const h = await a.start([p.ref], {
      kind: 'dutch',
      startPrice: 1,
      decrement: 0.1,
      tickMs: 10,
      reserve: 0.3,
    });
    for (let t = 1; t <= 8; t++) {
      clock.advance(10);
      await DynamicSupervisor.countChildren(rt, a.supervisor);
    }
    const r = await h.result;
    expect(r).toMatchObject({ outcome: 'unsold', endedBy: 'floor', rounds: 8 });
    const prices = p.received
      .map((e) => e.message as BidRequest)
      .filter((m) => m.type === 'bid_request')
      .map((m) => (m.kind === 'dutch' ? m.price : Number.NaN));
    expect(prices).toHaveLength(8);
    expect(prices.at(-1)).toBe(0.3);
  });

  it('rejects a spec id that is not a finite number or a non-empty string', async () => {
    const a = await setup();
    for (const id of [Number.NaN, Number.POSITIVE_INFINITY, '', {}]) {
      await expect(a.run(valuers([1]), { kind: 'vickrey', id: id as number })).rejects.toMatchObject({
        code: 'E_INVALID_ARGUMENT',
        message: /id/,
      });
    }
  });
});

describe('a bidder that cannot be reached', () => {
  it('one whose bounded mailbox refuses the request is not waited for; the auction closes on the others', async () => {
    const auctions = await setup();
    let release!: () => void;
    const held = new Promise<void>((r) => {
      release = r;
    });
    const Busy = behaviour<void, void, never, never, 'work'>({
      init: () => undefined,
      async handleCast(_m, s) {
        await held;
        return s;
      },
    });
    const busy = await rt.spawn(Busy, undefined, { mailbox: { capacity: 1 } });
    rt.cast(busy, 'work'); // taken: its handler waits
    rt.cast(busy, 'work'); // queued: the mailbox is full
    // Sealed Vickrey with a long deadline: without skipping the unreachable bidder this would
    // wait for the (virtual, never advanced) deadline.
    try {
      const r = await auctions.run([...valuers([30, 20]), busy], {
        kind: 'vickrey',
        item: 'gpu',
        deadlineMs: 60_000,
      });
      expect(sold(r).winners[0]).toMatchObject({ price: 20 });
    } finally {
      release();
    }
  });
});
