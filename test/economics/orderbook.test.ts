import { afterEach, describe, expect, it } from 'vitest';
import {
  DuplicateOrderError,
  Exchange,
  type FillMessage,
  NotOrderOwnerError,
  ORDERBOOK_CANCEL,
  ORDERBOOK_TRADE,
  ORDERBOOK_TRADE_ERROR,
  OrderBook,
  OrderBookErrorCodes,
  OrderNotFoundError,
  submitRequest,
  type Trade,
  UnknownMarketError,
} from '../../src/economics/orderbook.js';
import { InvalidArgumentError, type Pid, pidKey, Runtime } from '../../src/kernel/index.js';
import { awaitTelemetry, probe } from '../../src/kernel/testkit.js';

function book(onTrade?: (t: Trade<string>) => void): OrderBook<string> {
  return new OrderBook<string>(onTrade === undefined ? { name: 'test' } : { name: 'test', onTrade });
}

function caught(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected a throw');
}

describe('OrderBook: resting and reads', () => {
  it('rests non-crossing orders and reports top of book, depth and spread', () => {
    const b = book();
    b.submit({ side: 'bid', price: 99, quantity: 5, owner: 'a' });
    b.submit({ side: 'bid', price: 98, quantity: 7, owner: 'b' });
    b.submit({ side: 'bid', price: 99, quantity: 2, owner: 'c' });
    b.submit({ side: 'ask', price: 101, quantity: 3, owner: 'd' });
    b.submit({ side: 'ask', price: 102, quantity: 4, owner: 'e' });
    expect(b.size).toBe(5);
    expect(b.bestBid).toBe(99);
    expect(b.bestAsk).toBe(101);
    expect(b.top()).toEqual({
      bid: { price: 99, quantity: 7, orders: 2 },
      ask: { price: 101, quantity: 3, orders: 1 },
    });
    expect(b.depth('bid')).toEqual([
      { price: 99, quantity: 7, orders: 2 },
      { price: 98, quantity: 7, orders: 1 },
    ]);
    expect(b.depth('ask', 1)).toEqual([{ price: 101, quantity: 3, orders: 1 }]);
    expect(b.levels('bid')).toBe(2);
    expect(b.lastPrice).toBeUndefined();
    expect(b.trades).toBe(0);
  });

  it('an empty book has no best prices and an empty depth', () => {
    const b = book();
    expect(b.bestBid).toBeUndefined();
    expect(b.bestAsk).toBeUndefined();
    expect(b.top()).toEqual({ bid: undefined, ask: undefined });
    expect(b.depth('ask')).toEqual([]);
  });

  it('assigns ids in order and lists orders in priority order', () => {
    const b = book();
    const r1 = b.submit({ side: 'ask', price: 10, quantity: 1, owner: 'a' });
    const r2 = b.submit({ side: 'ask', price: 9, quantity: 1, owner: 'b' });
    const r3 = b.submit({ side: 'ask', price: 10, quantity: 1, owner: 'c' });
    expect([r1.id, r2.id, r3.id]).toEqual([1, 2, 3]);
    expect(r1.status).toBe('resting');
    expect([...b.orders('ask')].map((o) => o.owner)).toEqual(['b', 'a', 'c']);
    expect(b.order(3)).toMatchObject({ id: 3, side: 'ask', price: 10, quantity: 1, original: 1, owner: 'c' });
    expect(b.order(42)).toBeUndefined();
  });
});

describe('OrderBook: matching', () => {
  it('a crossing bid trades at the resting ask price (the maker price)', () => {
    const b = book();
    b.submit({ side: 'ask', price: 100, quantity: 5, owner: 's', id: 'ask1' });
    const r = b.submit({ side: 'bid', price: 105, quantity: 5, owner: 'x', id: 'bid1' });
    expect(r.status).toBe('filled');
    expect(r.filled).toBe(5);
    expect(r.trades).toEqual([
      {
        seq: 1,
        price: 100,
        quantity: 5,
        buyId: 'bid1',
        buyer: 'x',
        sellId: 'ask1',
        seller: 's',
        takerSide: 'bid',
        takerId: 'bid1',
        makerId: 'ask1',
        takerRemaining: 0,
        makerRemaining: 0,
      },
    ]);
    expect(b.lastPrice).toBe(100);
    expect(b.size).toBe(0);
    expect(b.volume).toBe(5);
  });

  it('a crossing ask trades at the resting bid price', () => {
    const b = book();
    b.submit({ side: 'bid', price: 100, quantity: 5, owner: 'buyer' });
    const r = b.submit({ side: 'ask', price: 90, quantity: 2, owner: 'seller' });
    expect(r.trades.map((t) => [t.price, t.quantity, t.buyer, t.seller, t.takerSide])).toEqual([
      [100, 2, 'buyer', 'seller', 'ask'],
    ]);
    expect(b.top().bid).toEqual({ price: 100, quantity: 3, orders: 1 });
    expect(b.lastPrice).toBe(100);
  });

  it('best price first, then first come first served within a level', () => {
    const b = book();
    b.submit({ side: 'ask', price: 101, quantity: 2, owner: 'late-worse' });
    b.submit({ side: 'ask', price: 100, quantity: 2, owner: 'first' });
    b.submit({ side: 'ask', price: 100, quantity: 2, owner: 'second' });
    b.submit({ side: 'ask', price: 99, quantity: 1, owner: 'best' });
    const r = b.submit({ side: 'bid', price: 101, quantity: 6, owner: 'x' });
    expect(r.trades.map((t) => [t.seller, t.price, t.quantity])).toEqual([
      ['best', 99, 1],
      ['first', 100, 2],
      ['second', 100, 2],
      ['late-worse', 101, 1],
    ]);
    expect(r.status).toBe('filled');
    expect(b.top().ask).toEqual({ price: 101, quantity: 1, orders: 1 });
    expect(b.lastPrice).toBe(101);
  });

  it('partial fill of the taker: the rest rests at its limit', () => {
    const b = book();
    b.submit({ side: 'ask', price: 100, quantity: 3, owner: 's' });
    const r = b.submit({ side: 'bid', price: 100, quantity: 10, owner: 'x' });
    expect(r.status).toBe('partial');
    expect(r.filled).toBe(3);
    expect(r.resting).toBe(7);
    expect(b.bestBid).toBe(100);
    expect(b.bestAsk).toBeUndefined();
    expect(b.order(r.id)).toMatchObject({ quantity: 7, original: 10 });
  });

  it('partial fill of the maker keeps its place at the front of its level', () => {
    const b = book();
    const first = b.submit({ side: 'bid', price: 50, quantity: 10, owner: 'first' });
    b.submit({ side: 'bid', price: 50, quantity: 10, owner: 'second' });
    const r1 = b.submit({ side: 'ask', price: 50, quantity: 4, owner: 's' });
    expect(r1.trades[0]).toMatchObject({ buyer: 'first', makerRemaining: 6 });
    const r2 = b.submit({ side: 'ask', price: 50, quantity: 8, owner: 's' });
    expect(r2.trades.map((t) => [t.buyer, t.quantity, t.makerRemaining])).toEqual([
      ['first', 6, 0],
      ['second', 2, 8],
    ]);
    expect(b.order(first.id)).toBeUndefined();
    expect(b.top().bid).toEqual({ price: 50, quantity: 8, orders: 1 });
  });

  it('orders that do not cross rest, whatever the size', () => {
    const b = book();
    b.submit({ side: 'ask', price: 100, quantity: 1, owner: 's' });
    const r = b.submit({ side: 'bid', price: 99.5, quantity: 1000, owner: 'x' });
    expect(r.trades).toEqual([]);
    expect(r.status).toBe('resting');
    expect(b.bestBid).toBeLessThan(b.bestAsk as number);
  });

  it('an ioc order drops what it cannot fill at once', () => {
    const b = book();
    b.submit({ side: 'ask', price: 100, quantity: 2, owner: 's' });
    const r = b.submit({ side: 'bid', price: 100, quantity: 5, owner: 'x', timeInForce: 'ioc' });
    expect(r).toMatchObject({ status: 'cancelled', filled: 2, resting: 0 });
    expect(b.size).toBe(0);
    const none = b.submit({ side: 'bid', price: 1, quantity: 5, owner: 'x', timeInForce: 'ioc' });
    expect(none).toMatchObject({ status: 'cancelled', filled: 0, resting: 0, trades: [] });
  });

  it('calls onTrade for every trade, in order, before submit returns', () => {
    const seen: number[] = [];
    const b = book((t) => seen.push(t.seq));
    b.submit({ side: 'ask', price: 1, quantity: 1, owner: 's' });
    b.submit({ side: 'ask', price: 2, quantity: 1, owner: 's' });
    b.submit({ side: 'bid', price: 2, quantity: 2, owner: 'x' });
    expect(seen).toEqual([1, 2]);
    expect(b.trades).toBe(2);
  });

  it('onTrade sees a consistent book: cancelling the partially filled maker from it leaves the ladder intact', () => {
    // Regression: onTrade ran mid-match, so a cancel from it removed the level twice (it sat twice
    // on the spare list, two new levels shared it, and depth() looped forever).
    const seen: { size: number; bestAsk: number | undefined }[] = [];
    const b: OrderBook<string> = new OrderBook<string>({
      name: 'test',
      onTrade: (t) => {
        seen.push({ size: b.size, bestAsk: b.bestAsk });
        if (t.makerRemaining > 0) b.cancel(t.makerId);
      },
    });
    b.submit({ side: 'ask', price: 10, quantity: 5, owner: 'm', id: 'm1' });
    const r = b.submit({ side: 'bid', price: 10, quantity: 2, owner: 't' });
    expect(r).toMatchObject({ filled: 2, status: 'filled' });
    // Called after the match: the maker's 3 left were resting at 10.
    expect(seen).toEqual([{ size: 1, bestAsk: 10 }]);
    expect(b.size).toBe(0);
    expect(b.levels('ask')).toBe(0);
    b.submit({ side: 'ask', price: 20, quantity: 1, owner: 'a' });
    b.submit({ side: 'ask', price: 30, quantity: 1, owner: 'b' });
    expect(b.depth('ask', Number.POSITIVE_INFINITY)).toEqual([
      { price: 20, quantity: 1, orders: 1 },
      { price: 30, quantity: 1, orders: 1 },
    ]);
    const r2 = b.submit({ side: 'bid', price: 25, quantity: 1, owner: 'c', timeInForce: 'ioc' });
    expect(r2.trades).toEqual([expect.objectContaining({ price: 20, quantity: 1 })]);
    expect(b.depth('ask', Number.POSITIVE_INFINITY)).toEqual([{ price: 30, quantity: 1, orders: 1 }]);
  });

  it('a submit from onTrade is matched after the outer one; every trade is delivered in seq order', () => {
    const seen: number[] = [];
    const b: OrderBook<string> = new OrderBook<string>({
      name: 'test',
      onTrade: (t) => {
        seen.push(t.seq);
        // The first trade triggers a hedge: buy the next ask too.
        if (t.seq === 1) b.submit({ side: 'bid', price: 3, quantity: 1, owner: 'hedge' });
      },
    });
    for (const price of [1, 2, 3]) b.submit({ side: 'ask', price, quantity: 1, owner: 's' });
    const r = b.submit({ side: 'bid', price: 2, quantity: 2, owner: 'x' });
    expect(r.trades.map((t) => t.seq)).toEqual([1, 2]);
    expect(seen).toEqual([1, 2, 3]);
    expect(b.depth('ask')).toEqual([]);
    expect(b.size).toBe(0);
  });

  it('a throwing onTrade: the submit completes, the caller gets every trade, each error is reported', async () => {
    // Regression: the first throw escaped from mid-match, leaving an empty level as the best ask
    // and the trades lost for the caller.
    const rt = new Runtime();
    try {
      const errors: [unknown, number][] = [];
      const telemetry = awaitTelemetry(rt, ORDERBOOK_TRADE_ERROR);
      let calls = 0;
      const b = new OrderBook<string>({
        name: 'test',
        onTrade: () => {
          calls++;
          throw new Error('listener failed');
        },
        onTradeError: (error, trade) => errors.push([error, trade.seq]),
        telemetry: rt.telemetry,
      });
      b.submit({ side: 'ask', price: 10, quantity: 2, owner: 'm' });
      b.submit({ side: 'ask', price: 11, quantity: 3, owner: 'n' });
      const r = b.submit({ side: 'bid', price: 11, quantity: 5, owner: 't' });
      expect(r).toMatchObject({ filled: 5, status: 'filled' });
      expect(r.trades.map((t) => t.seq)).toEqual([1, 2]);
      expect(calls).toBe(2);
      expect(errors.map(([e, seq]) => [(e as Error).message, seq])).toEqual([
        ['listener failed', 1],
        ['listener failed', 2],
      ]);
      const { metadata } = await telemetry;
      expect(metadata).toMatchObject({ book: 'order book "test"', trade: r.trades[0] });
      expect((metadata.error as Error).message).toBe('listener failed');
      expect(b.size).toBe(0);
      expect(b.top()).toEqual({ bid: undefined, ask: undefined });
      expect(b.levels('ask')).toBe(0);
    } finally {
      await rt.shutdown();
    }
  });

  it('an order sweeping many levels empties them', () => {
    const b = book();
    for (let p = 1; p <= 100; p++) b.submit({ side: 'ask', price: p, quantity: 1, owner: 's' });
    const r = b.submit({ side: 'bid', price: 60, quantity: 1000, owner: 'x' });
    expect(r.filled).toBe(60);
    expect(b.levels('ask')).toBe(40);
    expect(b.bestAsk).toBe(61);
    expect(b.bestBid).toBe(60);
  });
});

describe('OrderBook: cancel', () => {
  it('removes a resting order and returns what was open', () => {
    const b = book();
    const r = b.submit({ side: 'bid', price: 10, quantity: 5, owner: 'a' });
    b.submit({ side: 'ask', price: 10, quantity: 2, owner: 's' });
    expect(b.cancel(r.id)).toMatchObject({ id: r.id, quantity: 3, original: 5, side: 'bid' });
    expect(b.size).toBe(0);
    expect(b.levels('bid')).toBe(0);
  });

  it('from the middle of a level keeps the others in order', () => {
    const b = book();
    const ids = ['a', 'b', 'c', 'd'].map(
      (o) => b.submit({ side: 'ask', price: 5, quantity: 1, owner: o }).id,
    );
    b.cancel(ids[1] as number);
    b.cancel(ids[3] as number);
    expect([...b.orders('ask')].map((o) => o.owner)).toEqual(['a', 'c']);
    expect(b.top().ask).toEqual({ price: 5, quantity: 2, orders: 2 });
  });

  it('of a level in the middle of the ladder keeps the ladder sorted', () => {
    const b = book();
    const ids = [5, 3, 9, 7, 1].map((p) => b.submit({ side: 'bid', price: p, quantity: 1, owner: 'a' }).id);
    b.cancel(ids[0] as number); // price 5
    b.cancel(ids[4] as number); // price 1
    expect(b.depth('bid', Number.POSITIVE_INFINITY).map((l) => l.price)).toEqual([9, 7, 3]);
    b.submit({ side: 'bid', price: 5, quantity: 1, owner: 'a' });
    expect(b.depth('bid', Number.POSITIVE_INFINITY).map((l) => l.price)).toEqual([9, 7, 5, 3]);
  });

  it('of an unknown, filled or cancelled order throws OrderNotFoundError', () => {
    const b = book();
    const filled = b.submit({ side: 'ask', price: 1, quantity: 1, owner: 's', id: 'f' });
    b.submit({ side: 'bid', price: 1, quantity: 1, owner: 'x' });
    const cancelled = b.submit({ side: 'ask', price: 2, quantity: 1, owner: 's', id: 'c' });
    b.cancel(cancelled.id);
    for (const id of [filled.id, cancelled.id, 'never']) {
      const e = caught(() => b.cancel(id));
      expect(e).toBeInstanceOf(OrderNotFoundError);
      expect((e as OrderNotFoundError).code).toBe('E_ORDERBOOK_ORDER_NOT_FOUND');
      expect((e as Error).message).toContain(JSON.stringify(id));
    }
  });

  it('cancelOwner removes every order of an owner (books with ownerKey)', () => {
    const b = new OrderBook<{ name: string }>({ ownerKey: (o) => o.name });
    b.submit({ side: 'bid', price: 1, quantity: 1, owner: { name: 'a' } });
    b.submit({ side: 'ask', price: 5, quantity: 2, owner: { name: 'a' } });
    b.submit({ side: 'ask', price: 5, quantity: 3, owner: { name: 'b' } });
    expect(
      b
        .cancelOwner({ name: 'a' })
        .map((o) => o.quantity)
        .sort(),
    ).toEqual([1, 2]);
    expect(b.size).toBe(1);
    expect(b.cancelOwner({ name: 'a' })).toEqual([]);
    expect(() => book().cancelOwner('a')).toThrow(InvalidArgumentError);
  });
});

describe('OrderBook: validation', () => {
  it('names the bad field and changes nothing', () => {
    const b = book();
    const cases: [Record<string, unknown>, string][] = [
      [{ side: 'buy', price: 1, quantity: 1 }, 'side'],
      [{ side: 'bid', price: 0, quantity: 1 }, 'price'],
      [{ side: 'bid', price: -1, quantity: 1 }, 'price'],
      [{ side: 'bid', price: Number.NaN, quantity: 1 }, 'price'],
      [{ side: 'bid', price: Number.POSITIVE_INFINITY, quantity: 1 }, 'price'],
      [{ side: 'bid', price: '1', quantity: 1 }, 'price'],
      [{ side: 'bid', price: 1, quantity: 0 }, 'quantity'],
      [{ side: 'bid', price: 1, quantity: 1.5 }, 'quantity'],
      [{ side: 'bid', price: 1, quantity: -2 }, 'quantity'],
      [{ side: 'bid', price: 1, quantity: 1, id: { x: 1 } }, 'order id'],
      [{ side: 'bid', price: 1, quantity: 1, id: 1.5 }, 'order id'],
      [{ side: 'bid', price: 1, quantity: 1, timeInForce: 'fok' }, 'timeInForce'],
    ];
    for (const [order, field] of cases) {
      const e = caught(() => b.submit({ owner: 'a', ...order } as never));
      expect(e, JSON.stringify(order)).toBeInstanceOf(InvalidArgumentError);
      expect((e as InvalidArgumentError).argument).toBe(field);
    }
    expect(caught(() => b.submit(null as never))).toBeInstanceOf(InvalidArgumentError);
    expect(b.size).toBe(0);
    expect(caught(() => b.depth('sideways' as never))).toBeInstanceOf(InvalidArgumentError);
  });

  it('refuses the id of a resting order, and reuses the id of a finished one', () => {
    const b = book();
    b.submit({ side: 'bid', price: 1, quantity: 1, owner: 'a', id: 'x' });
    const e = caught(() => b.submit({ side: 'ask', price: 1, quantity: 1, owner: 'a', id: 'x' }));
    expect(e).toBeInstanceOf(DuplicateOrderError);
    expect((e as DuplicateOrderError).code).toBe(OrderBookErrorCodes.DUPLICATE_ID);
    expect(b.size).toBe(1);
    b.cancel('x');
    expect(b.submit({ side: 'ask', price: 1, quantity: 1, owner: 'a', id: 'x' }).status).toBe('resting');
  });

  it('generated ids skip ids given by hand', () => {
    const b = book();
    b.submit({ side: 'bid', price: 1, quantity: 1, owner: 'a', id: 1 });
    expect(b.submit({ side: 'bid', price: 1, quantity: 1, owner: 'a' }).id).toBe(2);
  });

  it('codes are unique E_ codes', () => {
    const codes = Object.values(OrderBookErrorCodes);
    expect(new Set(codes).size).toBe(codes.length);
    for (const c of codes) expect(c).toMatch(/^E_[A-Z_]+$/);
  });
});

describe('Exchange agent', () => {
  let rt: Runtime;
  afterEach(async () => {
    await rt?.shutdown();
  });

  it('matches submitted orders, replies with trades and sends fills to the maker', async () => {
    rt = new Runtime();
    const ex = await Exchange.start(rt, { markets: ['cpu'] });
    const maker = probe(rt);
    const taker = probe(rt);
    const r1 = await ex.submit('cpu', { side: 'ask', price: 10, quantity: 4, owner: maker.ref, id: 'm1' });
    expect(r1.status).toBe('resting');
    expect(ex.book('cpu').top().ask).toEqual({ price: 10, quantity: 4, orders: 1 });
    const trade = awaitTelemetry(rt, ORDERBOOK_TRADE);
    const r2 = await ex.submit('cpu', { side: 'bid', price: 12, quantity: 3, owner: taker.ref });
    expect(r2.trades.map((t) => [t.price, t.quantity])).toEqual([[10, 3]]);
    expect(pidKey(r2.trades[0]?.seller as Pid)).toBe(pidKey(maker.ref));
    const fill = await maker.expectMessage<FillMessage>({ type: 'fill' });
    expect(fill).toMatchObject({
      market: 'cpu',
      id: 'm1',
      side: 'ask',
      price: 10,
      quantity: 3,
      remaining: 1,
    });
    expect(fill.role).toBe('maker');
    expect(pidKey(fill.counterparty)).toBe(pidKey(taker.ref));
    expect((await trade).measurements).toEqual({ price: 10, quantity: 3 });
    // The taker learned its trades from the reply: no fill message (anything the exchange sent it
    // was sent before the reply, so it has been received once the taker's mailbox is empty).
    await rt.whenMailboxBelow(taker.ref, 1);
    expect(taker.received).toEqual([]);
    expect(ex.book('cpu').lastPrice).toBe(10);
  });

  it('takes orders by cast: the owner gets the ack and its fills as messages', async () => {
    rt = new Runtime();
    const ex = await Exchange.start(rt, { markets: ['gpu'] });
    const seller = probe(rt);
    const buyer = probe(rt);
    rt.cast(ex.ref, submitRequest('gpu', { side: 'ask', price: 5, quantity: 2, owner: seller.ref, id: 's' }));
    await seller.expectMessage({ type: 'order_accepted', id: 's', status: 'resting', resting: 2 });
    rt.cast(ex.ref, submitRequest('gpu', { side: 'bid', price: 6, quantity: 5, owner: buyer.ref, id: 'b' }));
    await buyer.expectMessage({ type: 'fill', id: 'b', role: 'taker', quantity: 2, price: 5, remaining: 3 });
    await buyer.expectMessage({ type: 'order_accepted', id: 'b', status: 'partial', filled: 2, resting: 3 });
    await seller.expectMessage({ type: 'fill', id: 's', role: 'maker', remaining: 0 });
    rt.cast(ex.ref, { type: 'cancel', market: 'gpu', id: 'b', owner: buyer.ref });
    await buyer.expectMessage({ type: 'order_cancelled', id: 'b', quantity: 3 });
    rt.cast(ex.ref, { type: 'cancel', market: 'gpu', id: 'b', owner: buyer.ref });
    const rejected = await buyer.expectMessage({ type: 'order_rejected', id: 'b' });
    expect(rejected.error).toBeInstanceOf(OrderNotFoundError);
    rt.cast(ex.ref, {
      ...submitRequest('gpu', { side: 'bid', price: 1, quantity: 1, owner: buyer.ref }),
      price: -1,
    });
    const bad = await buyer.expectMessage({ type: 'order_rejected' });
    expect((bad.error as InvalidArgumentError).argument).toBe('price');
  });

  it('rejects bad input, unknown markets, unknown orders and cancels by a non-owner', async () => {
    rt = new Runtime();
    const ex = await Exchange.start(rt, { markets: ['cpu'] });
    const a = probe(rt);
    const b = probe(rt);
    await expect(
      ex.submit('disk', { side: 'bid', price: 1, quantity: 1, owner: a.ref }),
    ).rejects.toBeInstanceOf(UnknownMarketError);
    expect(() => ex.book('disk')).toThrow(UnknownMarketError);
    await expect(
      ex.submit('cpu', { side: 'bid', price: 1, quantity: 0, owner: a.ref }),
    ).rejects.toMatchObject({
      argument: 'quantity',
    });
    await expect(
      ex.submit('cpu', { side: 'bid', price: 1, quantity: 1, owner: 'nobody' as never }),
    ).rejects.toMatchObject({
      argument: 'owner',
    });
    const r = await ex.submit('cpu', { side: 'bid', price: 1, quantity: 1, owner: a.ref });
    await expect(ex.cancel('cpu', r.id, b.ref)).rejects.toBeInstanceOf(NotOrderOwnerError);
    await expect(ex.cancel('cpu', 999)).rejects.toBeInstanceOf(OrderNotFoundError);
    expect(await ex.cancel('cpu', r.id, a.ref)).toMatchObject({ id: r.id, quantity: 1 });
    // The agent survived every error.
    expect(rt.info(ex.ref)).toBeDefined();
  });

  it('opens markets at run time', async () => {
    rt = new Runtime();
    const ex = await Exchange.start(rt);
    expect(ex.markets()).toEqual([]);
    expect(await ex.open('ram')).toBe(true);
    expect(await ex.open('ram')).toBe(false);
    expect(ex.markets()).toEqual(['ram']);
    await expect(ex.open('')).rejects.toBeInstanceOf(InvalidArgumentError);
  });

  it('cancels the resting orders of an owner that exits', async () => {
    rt = new Runtime();
    const ex = await Exchange.start(rt, { markets: ['cpu', 'gpu'] });
    const doomed = probe(rt);
    const other = probe(rt);
    await ex.submit('cpu', { side: 'bid', price: 3, quantity: 1, owner: doomed.ref });
    await ex.submit('gpu', { side: 'ask', price: 9, quantity: 2, owner: doomed.ref });
    await ex.submit('cpu', { side: 'bid', price: 2, quantity: 1, owner: other.ref });
    const cancelled = awaitTelemetry(rt, ORDERBOOK_CANCEL, (_m, meta) => meta.market === 'gpu');
    rt.kill(doomed.ref);
    const ev = await cancelled;
    expect(ev.metadata.reason).toBe('owner_exit');
    expect(ev.measurements.quantity).toBe(2);
    expect(ex.book('cpu').size).toBe(1);
    expect(ex.book('cpu').bestBid).toBe(2);
    expect(ex.book('gpu').size).toBe(0);
  });
});
