/**
 * The order book against a naive reference model: random sequences of submits, cancels and
 * owner cancels must give the same trades and leave the same resting orders, the book is never
 * crossed after matching, and quantity is conserved.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  OrderBook,
  type OrderId,
  OrderNotFoundError,
  type Side,
  type TimeInForce,
} from '../../src/economics/orderbook.js';

interface ModelOrder {
  id: OrderId;
  side: Side;
  price: number;
  quantity: number;
  owner: string;
  seq: number;
}

interface ModelTrade {
  price: number;
  quantity: number;
  buyId: OrderId;
  sellId: OrderId;
  makerId: OrderId;
  takerId: OrderId;
  buyer: string;
  seller: string;
}

/** Price-time priority the obvious way: scan everything for the best crossing order each time. */
class ModelBook {
  resting: ModelOrder[] = [];
  seq = 0;
  nextId = 0;

  submit(side: Side, price: number, quantity: number, owner: string, tif: TimeInForce): ModelTrade[] {
    let id: number;
    do id = ++this.nextId;
    while (this.resting.some((o) => o.id === id));
    const trades: ModelTrade[] = [];
    let left = quantity;
    while (left > 0) {
      let best: ModelOrder | undefined;
      for (const o of this.resting) {
        if (o.side === side) continue;
        const crosses = side === 'bid' ? o.price <= price : o.price >= price;
        if (!crosses) continue;
        const better =
          best === undefined ||
          (side === 'bid' ? o.price < best.price : o.price > best.price) ||
          (o.price === best.price && o.seq < best.seq);
        if (better) best = o;
      }
      if (best === undefined) break;
      const q = Math.min(left, best.quantity);
      best.quantity -= q;
      left -= q;
      trades.push({
        price: best.price,
        quantity: q,
        buyId: side === 'bid' ? id : best.id,
        sellId: side === 'bid' ? best.id : id,
        makerId: best.id,
        takerId: id,
        buyer: side === 'bid' ? owner : best.owner,
        seller: side === 'bid' ? best.owner : owner,
      });
      if (best.quantity === 0) this.resting = this.resting.filter((o) => o !== best);
    }
    if (left > 0 && tif === 'gtc')
      this.resting.push({ id, side, price, quantity: left, owner, seq: ++this.seq });
    return trades;
  }

  cancel(id: OrderId): ModelOrder | undefined {
    const o = this.resting.find((r) => r.id === id);
    if (o !== undefined) this.resting = this.resting.filter((r) => r !== o);
    return o;
  }

  /** One side in priority order. */
  side(side: Side): ModelOrder[] {
    return this.resting
      .filter((o) => o.side === side)
      .sort((a, b) =>
        a.price === b.price ? a.seq - b.seq : side === 'bid' ? b.price - a.price : a.price - b.price,
      );
  }
}

type Op =
  | { kind: 'submit'; side: Side; price: number; quantity: number; owner: string; tif: TimeInForce }
  | { kind: 'cancel'; pick: number }
  | { kind: 'cancelOwner'; owner: string };

const owners = ['a', 'b', 'c'];

function opArb(maxPrice: number, divisor: number): fc.Arbitrary<Op> {
  return fc.oneof(
    {
      weight: 8,
      arbitrary: fc.record({
        kind: fc.constant('submit' as const),
        side: fc.constantFrom<Side>('bid', 'ask'),
        price: fc.integer({ min: 1, max: maxPrice }).map((p) => p / divisor),
        quantity: fc.integer({ min: 1, max: 12 }),
        owner: fc.constantFrom(...owners),
        tif: fc.constantFrom<TimeInForce>('gtc', 'gtc', 'gtc', 'ioc'),
      }),
    },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('cancel' as const), pick: fc.nat() }) },
    {
      weight: 1,
      arbitrary: fc.record({ kind: fc.constant('cancelOwner' as const), owner: fc.constantFrom(...owners) }),
    },
  );
}

function run(ops: Op[]): void {
  const book = new OrderBook<string>({ ownerKey: (o) => o });
  const model = new ModelBook();
  const ids: OrderId[] = [];
  let submitted = 0;
  let cancelled = 0;
  for (const op of ops) {
    if (op.kind === 'submit') {
      const expected = model.submit(op.side, op.price, op.quantity, op.owner, op.tif);
      const r = book.submit({
        side: op.side,
        price: op.price,
        quantity: op.quantity,
        owner: op.owner,
        timeInForce: op.tif,
      });
      submitted += op.quantity;
      ids.push(r.id);
      expect(
        r.trades.map(({ price, quantity, buyId, sellId, makerId, takerId, buyer, seller }) => ({
          price,
          quantity,
          buyId,
          sellId,
          makerId,
          takerId,
          buyer,
          seller,
        })),
      ).toEqual(expected);
      const filled = expected.reduce((s, t) => s + t.quantity, 0);
      expect(r.filled).toBe(filled);
      if (op.tif === 'ioc') cancelled += op.quantity - filled;
      // Each trade's remaining quantities count down correctly.
      let takerLeft = op.quantity;
      for (const t of r.trades) {
        takerLeft -= t.quantity;
        expect(t.takerRemaining).toBe(takerLeft);
      }
    } else if (op.kind === 'cancel') {
      if (ids.length === 0) continue;
      const id = ids[op.pick % ids.length] as OrderId;
      const expected = model.cancel(id);
      if (expected === undefined) {
        expect(() => book.cancel(id)).toThrow(OrderNotFoundError);
      } else {
        expect(book.cancel(id).quantity).toBe(expected.quantity);
        cancelled += expected.quantity;
      }
    } else {
      const expected = model.resting.filter((o) => o.owner === op.owner);
      for (const o of expected) model.cancel(o.id);
      const got = book.cancelOwner(op.owner);
      expect(got.map((o) => o.id).sort()).toEqual(expected.map((o) => o.id).sort());
      cancelled += got.reduce((s, o) => s + o.quantity, 0);
    }
    // Same resting orders, in the same priority order.
    for (const side of ['bid', 'ask'] as const) {
      expect([...book.orders(side)].map((o) => [o.id, o.price, o.quantity, o.owner])).toEqual(
        model.side(side).map((o) => [o.id, o.price, o.quantity, o.owner]),
      );
    }
    // Never crossed after matching.
    const bid = book.bestBid;
    const ask = book.bestAsk;
    if (bid !== undefined && ask !== undefined) expect(bid).toBeLessThan(ask);
    // Levels agree with the orders in them.
    for (const side of ['bid', 'ask'] as const) {
      const depth = book.depth(side, Number.POSITIVE_INFINITY);
      expect(depth.length).toBe(book.levels(side));
      const orders = model.side(side);
      expect(depth.reduce((s, l) => s + l.quantity, 0)).toBe(orders.reduce((s, o) => s + o.quantity, 0));
      expect(depth.reduce((s, l) => s + l.orders, 0)).toBe(orders.length);
    }
    // Conservation: every lot submitted is traded (on both sides of a trade), resting, or cancelled.
    const resting = model.resting.reduce((s, o) => s + o.quantity, 0);
    expect(submitted).toBe(2 * book.volume + resting + cancelled);
    expect(book.size).toBe(model.resting.length);
  }
}

describe('OrderBook against a reference model', () => {
  it('few price levels: many crossings and FIFO ties', () => {
    fc.assert(
      fc.property(fc.array(opArb(12, 1), { maxLength: 150 }), (ops) => run(ops)),
      { numRuns: 200 },
    );
  });

  it('many price levels, fractional prices: the ladder stays sorted', () => {
    fc.assert(
      fc.property(fc.array(opArb(2000, 8), { minLength: 50, maxLength: 250 }), (ops) => run(ops)),
      { numRuns: 40 },
    );
  });

  it('the last price is the price of the last trade', () => {
    fc.assert(
      fc.property(fc.array(opArb(20, 1), { maxLength: 80 }), (ops) => {
        const book = new OrderBook<string>();
        let last: number | undefined;
        for (const op of ops) {
          if (op.kind !== 'submit') continue;
          const r = book.submit({ side: op.side, price: op.price, quantity: op.quantity, owner: op.owner });
          if (r.trades.length > 0) last = r.trades[r.trades.length - 1]?.price;
          expect(book.lastPrice).toBe(last);
        }
      }),
      { numRuns: 100 },
    );
  });
});
