/**
 * orderbook_match: a continuous double-auction book holding 10,000 resting orders takes a stream
 * of limit orders, some crossing the spread (they trade) and some not (they rest), mixed so that
 * the book stays near 10,000 resting orders. Headline: orders per second through the matching
 * core (`OrderBook.submit`), 1,000,000 timed orders after 200,000 warm-up orders.
 *
 * The stream: prices are integer ticks around a mid that wanders as trades move it. A crossing
 * order is priced 0 to 3 ticks through the best opposite price (so it may sweep a few levels) and
 * a passive one 1 to 64 ticks behind its own side's best; quantities are 1 to 10 lots. The share
 * of crossing orders is steered by the book's size (half at 10,000, more above, fewer below),
 * which keeps the book within a few hundred orders of 10,000. The generator is a fixed-seed
 * xorshift run inside the timed loop (a few ns per order), so every run sees the same stream.
 *
 * Also reported: `ns_per_order`, `trades_per_order` (how much matching the stream does),
 * `resting_orders` and `levels` at the end (the book really stayed near 10,000), and
 * `orders_per_s_exchange`: 50,000 orders submitted through the Exchange agent by call, one at a
 * time, which adds the agent round trip and the reply to the core's cost.
 */
import { Exchange, OrderBook, type Side } from '../../src/economics/orderbook.js';
import { behaviour, Runtime } from '../../src/kernel/index.js';
import { type Fields, now, nsSince, type Workload } from '../harness.js';

const RESTING = 10_000;
const ORDERS = 1_000_000;
const WARMUP_ORDERS = 200_000;
const EXCHANGE_ORDERS = 50_000;
const MID = 100_000;

/** The order stream: deterministic, steered by the book it feeds. */
class Stream {
  #x = 0x2545f491;

  #next(): number {
    let x = this.#x;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.#x = x >>> 0;
    return this.#x;
  }

  side = 'bid' as Side;
  price = 0;
  quantity = 0;

  /** Draw the next order for a book with these best prices and size. */
  draw(bestBid: number | undefined, bestAsk: number | undefined, size: number): void {
    const r = this.#next();
    const bid = (r & 1) === 0;
    this.side = bid ? 'bid' : 'ask';
    this.quantity = 1 + ((r >>> 1) % 10);
    // Share of crossing orders: 1/2 at the target size, +-1/2 over +-1,000 orders.
    const steer = Math.max(0, Math.min(1, 0.5 + (size - RESTING) / 2000));
    const crossing = ((r >>> 5) & 1023) / 1024 < steer;
    const bb = bestBid ?? (bestAsk === undefined ? MID - 1 : bestAsk - 1);
    const ba = bestAsk ?? bb + 2;
    if (crossing) this.price = bid ? ba + ((r >>> 16) & 3) : Math.max(1, bb - ((r >>> 16) & 3));
    else this.price = bid ? Math.max(1, bb - 1 - ((r >>> 18) & 63)) : ba + 1 + ((r >>> 18) & 63);
  }
}

/** A book filled with `RESTING` non-crossing orders around the mid. */
function filledBook(): OrderBook<number> {
  const book = new OrderBook<number>({ name: 'bench' });
  for (let i = 0; i < RESTING; i++) {
    const bid = i % 2 === 0;
    const offset = 1 + ((i * 7919) % 200);
    book.submit({
      side: bid ? 'bid' : 'ask',
      price: bid ? MID - offset : MID + offset,
      quantity: 1 + (i % 10),
      owner: i,
    });
  }
  if (book.size !== RESTING) throw new Error(`orderbook_match: filled ${book.size} orders, not ${RESTING}`);
  return book;
}

/** Submit `n` orders from the stream; returns the number of trades. */
function feed(book: OrderBook<number>, stream: Stream, n: number): number {
  const before = book.trades;
  for (let i = 0; i < n; i++) {
    stream.draw(book.bestBid, book.bestAsk, book.size);
    book.submit({ side: stream.side, price: stream.price, quantity: stream.quantity, owner: i });
  }
  return book.trades - before;
}

const Owner = behaviour<void, void>({ init: () => undefined, handleInfo: () => undefined });

async function exchangeRate(): Promise<number> {
  const rt = new Runtime();
  try {
    const ex = await Exchange.start(rt, { markets: ['bench'] });
    const owner = rt.spawnSync(Owner, undefined);
    const book = ex.book('bench');
    const stream = new Stream();
    for (let i = 0; i < RESTING; i++) {
      stream.draw(book.bestBid, book.bestAsk, 0); // passive only while filling
      await ex.submit('bench', { side: stream.side, price: stream.price, quantity: stream.quantity, owner });
    }
    const start = now();
    for (let i = 0; i < EXCHANGE_ORDERS; i++) {
      stream.draw(book.bestBid, book.bestAsk, book.size);
      await ex.submit('bench', { side: stream.side, price: stream.price, quantity: stream.quantity, owner });
    }
    return EXCHANGE_ORDERS / (nsSince(start) / 1e9);
  } finally {
    await rt.shutdown();
  }
}

async function run(): Promise<Fields> {
  const book = filledBook();
  const stream = new Stream();
  feed(book, stream, WARMUP_ORDERS);
  const start = now();
  const trades = feed(book, stream, ORDERS);
  const ns = nsSince(start);
  const size = book.size;
  if (Math.abs(size - RESTING) > 2_000) {
    throw new Error(`orderbook_match: the book drifted to ${size} resting orders`);
  }
  const bid = book.bestBid;
  const ask = book.bestAsk;
  if (bid !== undefined && ask !== undefined && bid >= ask) {
    throw new Error(`orderbook_match: the book is crossed (${bid} >= ${ask})`);
  }
  return {
    orders_per_s: ORDERS / (ns / 1e9),
    ns_per_order: ns / ORDERS,
    trades_per_order: trades / ORDERS,
    resting_orders: size,
    levels: book.levels('bid') + book.levels('ask'),
    orders_per_s_exchange: await exchangeRate(),
  };
}

export const orderbookMatch: Workload = {
  name: 'orderbook_match',
  description: '1,000,000 limit orders (crossing and resting) into a book held near 10,000 resting orders',
  needsGc: false,
  run,
};
