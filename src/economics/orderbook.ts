/**
 * A continuous double-auction order book, and the `Exchange` agent that runs books for agents.
 *
 * `OrderBook` is the matching core: a plain class, used synchronously, with no runtime. Limit bids
 * and asks rest in price levels; an incoming order matches the opposite side while the prices
 * cross, with **price-time priority**: the best price first (the highest bid, the lowest ask), and
 * within one price level the order that arrived first. Orders fill partially; what is left of a
 * good-till-cancelled order rests, what is left of an immediate-or-cancel order is dropped.
 *
 * **Trade price**: every trade happens at the *resting* (maker) order's price. An incoming bid at
 * 105 that meets a resting ask at 100 buys at 100; the price improvement goes to the order that
 * crossed the spread, as on every continuous exchange. `lastPrice` is the price of the last trade
 * (the last clearing price).
 *
 * Structure: each side is a skip list of price levels keyed so that the best level comes first
 * (reading or removing the best level is O(1); adding or removing another level O(log L) expected,
 * L = levels on that side), plus a Map from price to level. A level is a doubly linked FIFO of its
 * orders (append O(1), fill from the front O(1)). A Map from order id to order makes cancel O(1)
 * (plus O(log L) when it empties its level). Nothing is ever spliced out of an array.
 *
 * Quantities are positive safe integers (lots), so fills are exact and quantity is conserved;
 * prices are positive finite numbers compared exactly (use ticks, or numbers that are exact in
 * binary, if two prices computed differently must meet in one level). Orders of one owner may
 * trade with each other (no self-trade prevention).
 *
 * `Exchange` wraps named books in one agent: agents submit and cancel by call or cast, makers (and
 * takers that submitted by cast) receive `fill` messages, the orders of an owner that exits are
 * cancelled, reads (`exchange.book(market).depth('bid')`) are synchronous.
 *
 * `onTrade` is called for each trade once the submit has finished changing the book (matched,
 * and what is left rested), in trade order, before `submit` returns. So a listener sees a
 * consistent book and may read it, cancel or submit (the trades of a nested submit are delivered
 * after the ones already due, still in order). An error thrown by the listener does not stop the
 * others or the submit: it goes to `onTradeError`, and to `['mabeam','orderbook','trade_error']`
 * on the `telemetry` option (metadata `book`, `trade`, `error`).
 *
 * Telemetry (from the Exchange): `['mabeam','orderbook','trade']` per trade (measurements `price`,
 * `quantity`; metadata `market`, `trade`) and `['mabeam','orderbook','cancel']` per cancelled
 * order (measurements `quantity`, the part left; metadata `market`, `id`, `reason`: `request` or
 * `owner_exit`).
 */
import {
  type AgentContext,
  type AgentRef,
  type AnyRef,
  type Behaviour,
  type CallResult,
  type CastResult,
  describe,
  InvalidArgumentError,
  isPid,
  MabeamError,
  type MonitorRef,
  type Pid,
  pidEquals,
  pidKey,
  type Runtime,
  reply,
  type SystemMessage,
  type Telemetry,
} from '../kernel/index.js';

// ---- errors ------------------------------------------------------------------------------------

/** Error codes of order books and the exchange (unique across mabeam, never reused). */
export const OrderBookErrorCodes = {
  /** Cancel of an order that is not resting: never submitted, already filled or already cancelled. */
  ORDER_NOT_FOUND: 'E_ORDERBOOK_ORDER_NOT_FOUND',
  /** Submit with the id of an order that is still resting in the book. */
  DUPLICATE_ID: 'E_ORDERBOOK_DUPLICATE_ID',
  /** The exchange has no market (book) of that name. */
  UNKNOWN_MARKET: 'E_EXCHANGE_UNKNOWN_MARKET',
  /** Cancel of an order on behalf of an agent that does not own it. */
  NOT_OWNER: 'E_EXCHANGE_NOT_OWNER',
} as const;

/** The order is not resting in the book (unknown id, already filled, or already cancelled). */
export class OrderNotFoundError extends MabeamError {
  readonly id: OrderId;
  constructor(book: string, id: OrderId) {
    super(
      OrderBookErrorCodes.ORDER_NOT_FOUND,
      `order ${describe(id)} is not resting in ${book} (unknown, already filled, or already cancelled)`,
    );
    this.id = id;
  }
}

/** An order with this id is resting in the book already. */
export class DuplicateOrderError extends MabeamError {
  readonly id: OrderId;
  constructor(book: string, id: OrderId) {
    super(OrderBookErrorCodes.DUPLICATE_ID, `order id ${describe(id)} is already resting in ${book}`);
    this.id = id;
  }
}

/** The exchange has no such market. */
export class UnknownMarketError extends MabeamError {
  readonly market: unknown;
  constructor(market: unknown, known: readonly string[]) {
    super(
      OrderBookErrorCodes.UNKNOWN_MARKET,
      `no market ${describe(market)} on the exchange (markets: ${known.map((m) => JSON.stringify(m)).join(', ') || 'none'})`,
    );
    this.market = market;
  }
}

/** A cancel on behalf of an agent that does not own the order. */
export class NotOrderOwnerError extends MabeamError {
  readonly id: OrderId;
  constructor(market: string, id: OrderId, owner: Pid, requester: Pid) {
    super(
      OrderBookErrorCodes.NOT_OWNER,
      `order ${describe(id)} in market ${JSON.stringify(market)} belongs to ${pidKey(owner)}, not ${pidKey(requester)}`,
    );
    this.id = id;
  }
}

// ---- public types ------------------------------------------------------------------------------

export type Side = 'bid' | 'ask';
export type OrderId = string | number;
/** `gtc`: the unfilled part rests (default). `ioc`: the unfilled part is dropped. */
export type TimeInForce = 'gtc' | 'ioc';

/** A limit order. */
export interface OrderInput<O = unknown> {
  readonly side: Side;
  /** Limit price: a bid buys at this price or lower, an ask sells at this price or higher. */
  readonly price: number;
  /** Lots: a positive safe integer. */
  readonly quantity: number;
  readonly owner: O;
  /** Unique among resting orders; default: the book's next free integer. */
  readonly id?: OrderId;
  readonly timeInForce?: TimeInForce;
}

/** One match between an incoming (taker) order and a resting (maker) order. */
export interface Trade<O = unknown> {
  /** 1, 2, 3, ... per book. */
  readonly seq: number;
  /** The maker's price (see the module comment). */
  readonly price: number;
  readonly quantity: number;
  readonly buyId: OrderId;
  readonly buyer: O;
  readonly sellId: OrderId;
  readonly seller: O;
  /** The incoming order's side: `bid` when a buyer crossed the spread. */
  readonly takerSide: Side;
  readonly takerId: OrderId;
  readonly makerId: OrderId;
  /** What is left of each order after this trade. */
  readonly takerRemaining: number;
  readonly makerRemaining: number;
}

/** What became of a submitted order. */
export interface SubmitResult<O = unknown> {
  readonly id: OrderId;
  /** The trades it made, in order. */
  readonly trades: Trade<O>[];
  readonly filled: number;
  /** Quantity left resting in the book (0 when filled, or for an `ioc` order). */
  readonly resting: number;
  /**
   * `filled`: completely. `resting`: no trade, all of it rests. `partial`: traded, the rest rests.
   * `cancelled`: an `ioc` order whose unfilled part (all of it, or what `filled` leaves) was dropped.
   */
  readonly status: 'filled' | 'resting' | 'partial' | 'cancelled';
}

/** A resting order, as read from the book. */
export interface OrderView<O = unknown> {
  readonly id: OrderId;
  readonly side: Side;
  readonly price: number;
  /** Quantity still open. */
  readonly quantity: number;
  /** Quantity it was submitted with. */
  readonly original: number;
  readonly owner: O;
  /** Arrival number in this book (time priority within a level). */
  readonly seq: number;
}

/** One price level of a side. */
export interface LevelView {
  readonly price: number;
  /** Open quantity at this price. */
  readonly quantity: number;
  /** Orders at this price. */
  readonly orders: number;
}

export interface OrderBookOptions<O = unknown> {
  /** Names the book in errors. */
  readonly name?: string;
  /**
   * Called for every trade, in order, before `submit` returns, once the book is consistent again
   * (see the module comment): it may read the book, cancel or submit.
   */
  readonly onTrade?: (trade: Trade<O>) => void;
  /** Gets what `onTrade` threw (the submit and the other trades' calls go on). */
  readonly onTradeError?: (error: unknown, trade: Trade<O>) => void;
  /** Where `['mabeam','orderbook','trade_error']` is reported (for example `runtime.telemetry`). */
  readonly telemetry?: Telemetry;
  /**
   * Index resting orders by owner under this key, which enables `cancelOwner`. Costs a Map and
   * Set update per resting order, so it is off by default.
   */
  readonly ownerKey?: (owner: O) => string;
}

/** The reads of a book. */
export interface ReadonlyOrderBook<O = unknown> {
  readonly name: string;
  /** Resting orders on both sides. */
  readonly size: number;
  readonly bestBid: number | undefined;
  readonly bestAsk: number | undefined;
  /** Price of the last trade (the last clearing price), undefined before the first. */
  readonly lastPrice: number | undefined;
  /** Quantity traded so far. */
  readonly volume: number;
  /** Trades so far. */
  readonly trades: number;
  top(): { readonly bid: LevelView | undefined; readonly ask: LevelView | undefined };
  depth(side: Side, levels?: number): LevelView[];
  levels(side: Side): number;
  order(id: OrderId): OrderView<O> | undefined;
  orders(side: Side): IterableIterator<OrderView<O>>;
}

/** An `onTrade` listener threw (books made with the `telemetry` option). */
export const ORDERBOOK_TRADE_ERROR = ['mabeam', 'orderbook', 'trade_error'] as const;

// ---- the structure -----------------------------------------------------------------------------

const BID = 0;
const ASK = 1;
type SideCode = typeof BID | typeof ASK;
const SIDE_NAMES: readonly Side[] = ['bid', 'ask'];

class Order<O> {
  prev: Order<O> | null = null;
  next: Order<O> | null = null;
  constructor(
    readonly id: OrderId,
    readonly side: SideCode,
    readonly price: number,
    readonly owner: O,
    public quantity: number,
    readonly original: number,
    readonly seq: number,
    readonly level: Level<O>,
  ) {}
}

const MAX_HEIGHT = 24;
const MAX_SPARE = 256;

/** A price level: a node of its side's skip list and a FIFO of orders. */
class Level<O> {
  /** In its ladder (false once removed, and while it waits on the spare list). */
  linked = false;
  head: Order<O> | null = null;
  tail: Order<O> | null = null;
  orders = 0;
  quantity = 0;
  readonly next: (Level<O> | null)[];
  constructor(
    public price: number,
    /** The skip list's sort key: `-price` on the bid side, so the best level is first either way. */
    public key: number,
    height: number,
  ) {
    this.next = new Array<Level<O> | null>(height).fill(null);
  }
}

/**
 * One side's levels: a skip list ascending by key (best first) plus a Map by price. Deterministic:
 * level heights come from a fixed-seed xorshift, so a book behaves the same on every run.
 */
class Ladder<O> {
  readonly head: Level<O> = new Level<O>(Number.NaN, Number.NEGATIVE_INFINITY, MAX_HEIGHT);
  readonly byPrice = new Map<number, Level<O>>();
  #height = 1;
  #rng = 0x9e3779b9;
  readonly #update: Level<O>[] = new Array<Level<O>>(MAX_HEIGHT);
  /**
   * Emptied levels kept for reuse: prices come and go at the top of the book all the time, and a
   * reused level keeps its height, which is as random as a fresh draw.
   */
  readonly #spare: Level<O>[] = [];

  constructor(readonly sign: 1 | -1) {}

  get first(): Level<O> | null {
    return this.head.next[0] as Level<O> | null;
  }

  #randomHeight(): number {
    let x = this.#rng;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.#rng = x >>> 0;
    // p = 1/4 per extra level: two random bits per step.
    let h = 1;
    while ((x & 3) === 0 && h < MAX_HEIGHT) {
      h++;
      x >>>= 2;
    }
    return h;
  }

  /** The level for `price`, made and linked in if absent. */
  levelFor(price: number): Level<O> {
    const found = this.byPrice.get(price);
    if (found !== undefined) return found;
    const key = this.sign * price;
    const update = this.#update;
    let node = this.head;
    for (let i = this.#height - 1; i >= 0; i--) {
      let nx = node.next[i] as Level<O> | null;
      while (nx !== null && nx.key < key) {
        node = nx;
        nx = node.next[i] as Level<O> | null;
      }
      update[i] = node;
    }
    let level = this.#spare.pop();
    if (level === undefined) level = new Level<O>(price, key, this.#randomHeight());
    else {
      level.price = price;
      level.key = key;
    }
    const h = level.next.length;
    if (h > this.#height) {
      for (let i = this.#height; i < h; i++) update[i] = this.head;
      this.#height = h;
    }
    for (let i = 0; i < h; i++) {
      const prev = update[i] as Level<O>;
      level.next[i] = prev.next[i] as Level<O> | null;
      prev.next[i] = level;
    }
    this.byPrice.set(price, level);
    level.linked = true;
    return level;
  }

  /** Unlink an empty level; a level already removed is left alone (never unlinked or spared twice). */
  remove(level: Level<O>): void {
    if (!level.linked) return;
    level.linked = false;
    this.byPrice.delete(level.price);
    const head = this.head;
    const h = level.next.length;
    if (head.next[0] === level) {
      // The best level (the common case): its predecessor is the head on every height it has.
      for (let i = 0; i < h; i++) head.next[i] = level.next[i] as Level<O> | null;
    } else {
      const key = level.key;
      let node = head;
      for (let i = this.#height - 1; i >= 0; i--) {
        let nx = node.next[i] as Level<O> | null;
        while (nx !== null && nx.key < key) {
          node = nx;
          nx = node.next[i] as Level<O> | null;
        }
        if (nx === level) node.next[i] = level.next[i] as Level<O> | null;
      }
    }
    while (this.#height > 1 && head.next[this.#height - 1] === null) this.#height--;
    if (this.#spare.length < MAX_SPARE) {
      // Reset it so a spare holds on to no orders or levels.
      level.head = level.tail = null;
      level.next.fill(null);
      this.#spare.push(level);
    }
  }
}

function view<O>(o: Order<O>): OrderView<O> {
  return {
    id: o.id,
    side: SIDE_NAMES[o.side] as Side,
    price: o.price,
    quantity: o.quantity,
    original: o.original,
    owner: o.owner,
    seq: o.seq,
  };
}

function levelView<O>(l: Level<O>): LevelView {
  return { price: l.price, quantity: l.quantity, orders: l.orders };
}

function checkId(id: unknown): asserts id is OrderId {
  if (typeof id === 'string') return;
  if (typeof id === 'number' && Number.isSafeInteger(id)) return;
  throw new InvalidArgumentError('order id', 'must be a string or a safe integer', id);
}

function checkSide(side: unknown, what = 'side'): SideCode {
  if (side === 'bid') return BID;
  if (side === 'ask') return ASK;
  throw new InvalidArgumentError(what, "must be 'bid' or 'ask'", side);
}

function checkPrice(price: unknown): asserts price is number {
  if (typeof price !== 'number' || !Number.isFinite(price) || price <= 0) {
    throw new InvalidArgumentError('price', 'must be a positive finite number', price);
  }
}

function checkQuantity(quantity: unknown): asserts quantity is number {
  if (typeof quantity !== 'number' || !Number.isSafeInteger(quantity) || quantity <= 0) {
    throw new InvalidArgumentError('quantity', 'must be a positive safe integer (lots)', quantity);
  }
}

/** The matching core (see the module comment). `O` is the type of order owners. */
export class OrderBook<O = unknown> implements ReadonlyOrderBook<O> {
  readonly name: string;
  readonly #sides: [Ladder<O>, Ladder<O>] = [new Ladder<O>(-1), new Ladder<O>(1)];
  readonly #orders = new Map<OrderId, Order<O>>();
  readonly #onTrade: ((trade: Trade<O>) => void) | undefined;
  readonly #onTradeError: ((error: unknown, trade: Trade<O>) => void) | undefined;
  readonly #telemetry: Telemetry | undefined;
  /** Trades waiting for `onTrade`, delivered in order once the book is consistent. */
  #due: Trade<O>[] = [];
  #delivering = false;
  readonly #ownerKey: ((owner: O) => string) | undefined;
  readonly #byOwner: Map<string, Set<Order<O>>> | undefined;
  #nextId = 0;
  #givenIntIds = false;
  #seq = 0;
  #tradeSeq = 0;
  #volume = 0;
  #lastPrice: number | undefined = undefined;

  constructor(options: OrderBookOptions<O> = {}) {
    if (options === null || typeof options !== 'object') {
      throw new InvalidArgumentError('order book options', 'must be an object', options);
    }
    const { name, onTrade, onTradeError, telemetry, ownerKey } = options;
    if (name !== undefined && typeof name !== 'string') {
      throw new InvalidArgumentError('order book name', 'must be a string', name);
    }
    if (onTrade !== undefined && typeof onTrade !== 'function') {
      throw new InvalidArgumentError('onTrade', 'must be a function', onTrade);
    }
    if (onTradeError !== undefined && typeof onTradeError !== 'function') {
      throw new InvalidArgumentError('onTradeError', 'must be a function', onTradeError);
    }
    if (telemetry !== undefined && (telemetry === null || typeof telemetry.execute !== 'function')) {
      throw new InvalidArgumentError('telemetry', 'must be a Telemetry (runtime.telemetry)', telemetry);
    }
    if (ownerKey !== undefined && typeof ownerKey !== 'function') {
      throw new InvalidArgumentError('ownerKey', 'must be a function', ownerKey);
    }
    this.name = name === undefined ? 'order book' : `order book ${JSON.stringify(name)}`;
    this.#onTrade = onTrade;
    this.#onTradeError = onTradeError;
    this.#telemetry = telemetry;
    this.#ownerKey = ownerKey;
    this.#byOwner = ownerKey === undefined ? undefined : new Map();
  }

  // ---- writes ----------------------------------------------------------------------------------

  /**
   * Match `order` against the opposite side, then rest what is left (unless `ioc`). Throws
   * InvalidArgumentError naming the field (side, price, quantity, order id, timeInForce) or
   * DuplicateOrderError (E_ORDERBOOK_DUPLICATE_ID) before anything changes.
   */
  submit(order: OrderInput<O>): SubmitResult<O> {
    if (order === null || typeof order !== 'object') {
      throw new InvalidArgumentError('order', 'must be an object {side, price, quantity, owner}', order);
    }
    const side = checkSide(order.side);
    const price = order.price;
    checkPrice(price);
    const quantity = order.quantity;
    checkQuantity(quantity);
    const tif = order.timeInForce;
    if (tif !== undefined && tif !== 'gtc' && tif !== 'ioc') {
      throw new InvalidArgumentError('timeInForce', "must be 'gtc' or 'ioc'", tif);
    }
    let id = order.id;
    if (id === undefined) {
      id = ++this.#nextId;
      // Generated ids only collide with integer ids given by hand; skip those.
      if (this.#givenIntIds) while (this.#orders.has(id)) id = ++this.#nextId;
    } else {
      checkId(id);
      if (this.#orders.has(id)) throw new DuplicateOrderError(this.name, id);
      if (typeof id === 'number') this.#givenIntIds = true;
    }
    const owner = order.owner;
    const trades: Trade<O>[] = [];
    const left = this.#match(side, price, quantity, id, owner, trades);
    const filled = quantity - left;
    let result: SubmitResult<O>;
    if (left === 0) result = { id, trades, filled, resting: 0, status: 'filled' };
    else if (tif === 'ioc') result = { id, trades, filled, resting: 0, status: 'cancelled' };
    else {
      this.#rest(side, price, left, quantity, id, owner);
      result = { id, trades, filled, resting: left, status: filled === 0 ? 'resting' : 'partial' };
    }
    // The book is consistent again: now the listener may see it (and re-enter it).
    if (this.#onTrade !== undefined && trades.length > 0) this.#deliver(trades);
    return result;
  }

  /** Call onTrade for `trades` after those already due, each error caught and reported. */
  #deliver(trades: Trade<O>[]): void {
    for (const t of trades) this.#due.push(t);
    // A submit from inside onTrade only queues: the outer loop delivers in trade order.
    if (this.#delivering) return;
    this.#delivering = true;
    const onTrade = this.#onTrade as (trade: Trade<O>) => void;
    try {
      for (let i = 0; i < this.#due.length; i++) {
        const trade = this.#due[i] as Trade<O>;
        try {
          onTrade(trade);
        } catch (error) {
          this.#tradeError(error, trade);
        }
      }
    } finally {
      this.#due = [];
      this.#delivering = false;
    }
  }

  #tradeError(error: unknown, trade: Trade<O>): void {
    const tel = this.#telemetry;
    if (tel?.enabled) tel.execute(ORDERBOOK_TRADE_ERROR, {}, { book: this.name, trade, error });
    if (this.#onTradeError === undefined) return;
    try {
      this.#onTradeError(error, trade);
    } catch {
      // A failing error handler has nobody left to tell; the book stays consistent.
    }
  }

  /** Trade `quantity` against the other side while prices cross; returns what is left. */
  #match(side: SideCode, price: number, quantity: number, id: OrderId, owner: O, trades: Trade<O>[]): number {
    const ladder = this.#sides[side === BID ? ASK : BID];
    const takerSide = SIDE_NAMES[side] as Side;
    let left = quantity;
    while (left > 0) {
      const level = ladder.first;
      if (level === null) break;
      // A bid crosses asks priced at or below it; an ask crosses bids at or above it.
      if (side === BID ? level.price > price : level.price < price) break;
      let maker = level.head;
      while (maker !== null && left > 0) {
        const q = Math.min(maker.quantity, left);
        maker.quantity -= q;
        level.quantity -= q;
        left -= q;
        const trade: Trade<O> =
          side === BID
            ? {
                seq: ++this.#tradeSeq,
                price: level.price,
                quantity: q,
                buyId: id,
                buyer: owner,
                sellId: maker.id,
                seller: maker.owner,
                takerSide,
                takerId: id,
                makerId: maker.id,
                takerRemaining: left,
                makerRemaining: maker.quantity,
              }
            : {
                seq: ++this.#tradeSeq,
                price: level.price,
                quantity: q,
                buyId: maker.id,
                buyer: maker.owner,
                sellId: id,
                seller: owner,
                takerSide,
                takerId: id,
                makerId: maker.id,
                takerRemaining: left,
                makerRemaining: maker.quantity,
              };
        this.#volume += q;
        this.#lastPrice = level.price;
        if (maker.quantity === 0) {
          const next = maker.next;
          this.#unlink(maker);
          maker = next;
        }
        trades.push(trade);
      }
      if (level.orders === 0) ladder.remove(level);
    }
    return left;
  }

  #rest(side: SideCode, price: number, quantity: number, original: number, id: OrderId, owner: O): void {
    const level = this.#sides[side].levelFor(price);
    const o = new Order<O>(id, side, price, owner, quantity, original, ++this.#seq, level);
    const tail = level.tail;
    if (tail === null) level.head = o;
    else {
      tail.next = o;
      o.prev = tail;
    }
    level.tail = o;
    level.orders++;
    level.quantity += quantity;
    this.#orders.set(id, o);
    if (this.#byOwner !== undefined) {
      const key = (this.#ownerKey as (owner: O) => string)(owner);
      let set = this.#byOwner.get(key);
      if (set === undefined) {
        set = new Set();
        this.#byOwner.set(key, set);
      }
      set.add(o);
    }
  }

  /** Take an order out of its level and the id map (the level is left linked, even if empty). */
  #unlink(o: Order<O>): void {
    const level = o.level;
    const { prev, next } = o;
    if (prev === null) level.head = next;
    else prev.next = next;
    if (next === null) level.tail = prev;
    else next.prev = prev;
    o.prev = o.next = null;
    level.orders--;
    this.#orders.delete(o.id);
    if (this.#byOwner !== undefined) {
      const key = (this.#ownerKey as (owner: O) => string)(o.owner);
      const set = this.#byOwner.get(key);
      if (set?.delete(o) && set.size === 0) this.#byOwner.delete(key);
    }
  }

  /**
   * Remove a resting order; returns it as it was (its open quantity). Throws OrderNotFoundError
   * (E_ORDERBOOK_ORDER_NOT_FOUND) for an id that is not resting: unknown, filled or cancelled.
   */
  cancel(id: OrderId): OrderView<O> {
    const o = this.#orders.get(id);
    if (o === undefined) {
      checkId(id);
      throw new OrderNotFoundError(this.name, id);
    }
    return this.#cancel(o);
  }

  #cancel(o: Order<O>): OrderView<O> {
    const v = view(o);
    const level = o.level;
    level.quantity -= o.quantity;
    this.#unlink(o);
    if (level.orders === 0) (this.#sides[o.side] as Ladder<O>).remove(level);
    return v;
  }

  /**
   * Cancel every resting order of `owner` (books made with `ownerKey` only); returns them in no
   * particular order.
   */
  cancelOwner(owner: O): OrderView<O>[] {
    if (this.#byOwner === undefined || this.#ownerKey === undefined) {
      throw new InvalidArgumentError('cancelOwner', `${this.name} was made without the ownerKey option`);
    }
    const set = this.#byOwner.get(this.#ownerKey(owner));
    if (set === undefined) return [];
    return [...set].map((o) => this.#cancel(o));
  }

  // ---- reads -----------------------------------------------------------------------------------

  get size(): number {
    return this.#orders.size;
  }

  get bestBid(): number | undefined {
    return this.#sides[BID].first?.price;
  }

  get bestAsk(): number | undefined {
    return this.#sides[ASK].first?.price;
  }

  get lastPrice(): number | undefined {
    return this.#lastPrice;
  }

  get volume(): number {
    return this.#volume;
  }

  get trades(): number {
    return this.#tradeSeq;
  }

  /** Best level of each side. */
  top(): { readonly bid: LevelView | undefined; readonly ask: LevelView | undefined } {
    const b = this.#sides[BID].first;
    const a = this.#sides[ASK].first;
    return {
      bid: b === null ? undefined : levelView(b),
      ask: a === null ? undefined : levelView(a),
    };
  }

  /** The best `levels` levels of `side` (default 10; Infinity for all), best first. */
  depth(side: Side, levels = 10): LevelView[] {
    const s = checkSide(side);
    if (typeof levels !== 'number' || Number.isNaN(levels) || levels < 0) {
      throw new InvalidArgumentError('levels', 'must be a number >= 0 (Infinity: every level)', levels);
    }
    const out: LevelView[] = [];
    for (let l = this.#sides[s].first; l !== null && out.length < levels; l = l.next[0] as Level<O> | null) {
      out.push(levelView(l));
    }
    return out;
  }

  /** Number of price levels on `side`. */
  levels(side: Side): number {
    return this.#sides[checkSide(side)].byPrice.size;
  }

  /** A resting order by id, or undefined. */
  order(id: OrderId): OrderView<O> | undefined {
    const o = this.#orders.get(id);
    return o === undefined ? undefined : view(o);
  }

  /** The resting orders of `side` in priority order (the next to trade first). */
  *orders(side: Side): IterableIterator<OrderView<O>> {
    for (let l = this.#sides[checkSide(side)].first; l !== null; l = l.next[0] as Level<O> | null) {
      for (let o = l.head; o !== null; o = o.next) yield view(o);
    }
  }
}

// ---- the exchange agent ------------------------------------------------------------------------

export const ORDERBOOK_TRADE = ['mabeam', 'orderbook', 'trade'] as const;
export const ORDERBOOK_CANCEL = ['mabeam', 'orderbook', 'cancel'] as const;

/** Who an order belongs to: an agent (ref, pid, or the agent's own context). */
export type OrderOwner = AnyRef | Pid | AgentContext<unknown, unknown, unknown, unknown>;

/** An order for the exchange: the owner is the agent that receives its fills. */
export interface ExchangeOrder {
  readonly side: Side;
  readonly price: number;
  readonly quantity: number;
  readonly owner: OrderOwner;
  readonly id?: OrderId;
  readonly timeInForce?: TimeInForce;
}

/** Sent (to handleInfo) to the owner of an order for every fill it did not learn from a reply. */
export interface FillMessage {
  readonly type: 'fill';
  readonly market: string;
  readonly id: OrderId;
  readonly side: Side;
  readonly price: number;
  readonly quantity: number;
  /** Open quantity left after this fill (0: the order is done). */
  readonly remaining: number;
  readonly role: 'maker' | 'taker';
  readonly counterparty: Pid;
  /** The trade's `seq` in its book. */
  readonly trade: number;
}

/** Sent to the owner of an order submitted by cast, once the exchange has matched it. */
export interface OrderAcceptedMessage {
  readonly type: 'order_accepted';
  readonly market: string;
  readonly id: OrderId;
  readonly status: SubmitResult['status'];
  readonly filled: number;
  readonly resting: number;
}

/** Sent to the owner when a cast submit or cancel fails. */
export interface OrderRejectedMessage {
  readonly type: 'order_rejected';
  readonly market: string;
  /** The id given, if any. */
  readonly id: OrderId | undefined;
  readonly error: Error;
}

/** Sent to the owner when a cast cancel succeeds. */
export interface OrderCancelledMessage {
  readonly type: 'order_cancelled';
  readonly market: string;
  readonly id: OrderId;
  /** Open quantity the cancel removed. */
  readonly quantity: number;
}

/** Every message the exchange sends to order owners. */
export type ExchangeMessage =
  | FillMessage
  | OrderAcceptedMessage
  | OrderRejectedMessage
  | OrderCancelledMessage;

/** A submit as the exchange agent takes it (by call or cast). */
export interface SubmitRequest {
  readonly type: 'submit';
  readonly market: string;
  readonly side: Side;
  readonly price: number;
  readonly quantity: number;
  readonly owner: Pid;
  readonly id?: OrderId;
  readonly timeInForce?: TimeInForce;
}

/** A cancel as the exchange agent takes it; with `owner`, only that owner's order is cancelled. */
export interface CancelRequest {
  readonly type: 'cancel';
  readonly market: string;
  readonly id: OrderId;
  readonly owner?: Pid;
}

/** Calls of the exchange agent. */
export type ExchangeCall = SubmitRequest | CancelRequest | { readonly type: 'open'; readonly market: string };

/** Replies of the exchange agent: errors come back as values, so the agent never crashes on one. */
export type ExchangeReply =
  | { readonly ok: true; readonly value: SubmitResult<Pid> | OrderView<Pid> | boolean }
  | { readonly ok: false; readonly error: Error };

/** The exchange agent's handle. Agents may submit and cancel with `cast` too. */
export type ExchangeRef = AgentRef<ExchangeCall, ExchangeReply, SubmitRequest | CancelRequest, never>;
type ExchangeCtx = AgentContext<ExchangeCall, ExchangeReply, SubmitRequest | CancelRequest, never>;

export interface ExchangeOptions {
  /** The markets (one book each) to open at start. More can be opened with `open`. */
  readonly markets?: readonly string[];
  /** Register the agent under this name. */
  readonly name?: string;
  /** Cancel the resting orders of an owner that exits (default true). */
  readonly cancelOnExit?: boolean;
}

/** The exchange agent's state; the handle reads the books, only the agent writes them. @internal */
export interface ExchangeState {
  readonly runtime: Runtime;
  readonly books: Map<string, OrderBook<Pid>>;
  /** Owners with resting orders (or that had some), each monitored once. */
  readonly watched: Map<string, MonitorRef>;
  readonly cancelOnExit: boolean;
}

function checkMarket(market: unknown): asserts market is string {
  if (typeof market !== 'string' || market.length === 0) {
    throw new InvalidArgumentError('market', 'must be a non-empty string', market);
  }
}

function bookOf(s: ExchangeState, market: string): OrderBook<Pid> {
  const book = s.books.get(market);
  if (book === undefined) throw new UnknownMarketError(market, [...s.books.keys()]);
  return book;
}

function openBook(s: ExchangeState, market: string): boolean {
  checkMarket(market);
  if (s.books.has(market)) return false;
  s.books.set(market, new OrderBook<Pid>({ name: market, ownerKey: pidKey }));
  return true;
}

function doSubmit(
  s: ExchangeState,
  msg: SubmitRequest,
  ctx: ExchangeCtx,
  byCast: boolean,
): SubmitResult<Pid> {
  checkMarket(msg.market);
  const book = bookOf(s, msg.market);
  const owner = msg.owner;
  if (!isPid(owner))
    throw new InvalidArgumentError('owner', 'must be an agent ref, pid or agent context', owner);
  const input: OrderInput<Pid> = {
    side: msg.side,
    price: msg.price,
    quantity: msg.quantity,
    owner,
    ...(msg.id === undefined ? {} : { id: msg.id }),
    ...(msg.timeInForce === undefined ? {} : { timeInForce: msg.timeInForce }),
  };
  const result = book.submit(input);
  const market = msg.market;
  const tel = s.runtime.telemetry;
  for (const t of result.trades) {
    const makerSide: Side = t.takerSide === 'bid' ? 'ask' : 'bid';
    const maker = makerSide === 'bid' ? t.buyer : t.seller;
    const fill: FillMessage = {
      type: 'fill',
      market,
      id: t.makerId,
      side: makerSide,
      price: t.price,
      quantity: t.quantity,
      remaining: t.makerRemaining,
      role: 'maker',
      counterparty: owner,
      trade: t.seq,
    };
    ctx.send(maker, fill);
    if (byCast) {
      const takerFill: FillMessage = {
        type: 'fill',
        market,
        id: t.takerId,
        side: t.takerSide,
        price: t.price,
        quantity: t.quantity,
        remaining: t.takerRemaining,
        role: 'taker',
        counterparty: maker,
        trade: t.seq,
      };
      ctx.send(owner, takerFill);
    }
    if (tel.enabled)
      tel.execute(ORDERBOOK_TRADE, { price: t.price, quantity: t.quantity }, { market, trade: t });
  }
  if (result.resting > 0 && s.cancelOnExit) {
    const key = pidKey(owner);
    if (!s.watched.has(key)) s.watched.set(key, ctx.monitor(owner));
  }
  return result;
}

function doCancel(s: ExchangeState, msg: CancelRequest): OrderView<Pid> {
  checkMarket(msg.market);
  const book = bookOf(s, msg.market);
  checkId(msg.id);
  if (msg.owner !== undefined) {
    const o = book.order(msg.id);
    if (o !== undefined && !pidEquals(o.owner, msg.owner)) {
      throw new NotOrderOwnerError(msg.market, msg.id, o.owner, msg.owner);
    }
  }
  const v = book.cancel(msg.id);
  emitCancel(s, msg.market, v, 'request');
  return v;
}

function emitCancel(s: ExchangeState, market: string, v: OrderView<Pid>, reason: string): void {
  const tel = s.runtime.telemetry;
  if (tel.enabled)
    tel.execute(ORDERBOOK_CANCEL, { quantity: v.quantity }, { market, id: v.id, reason, order: v });
}

function failure(error: unknown): ExchangeReply {
  return { ok: false, error: error instanceof Error ? error : new Error(describe(error)) };
}

/** The exchange agent. Started by `Exchange.start`; exported for supervision. */
export const ExchangeBehaviour: Behaviour<
  ExchangeState,
  ExchangeState,
  ExchangeCall,
  ExchangeReply,
  SubmitRequest | CancelRequest,
  never
> = {
  init: (state) => state,

  handleCall(msg, _from, s, ctx): CallResult<ExchangeReply, ExchangeState> {
    try {
      switch (msg.type) {
        case 'submit':
          return reply({ ok: true, value: doSubmit(s, msg, ctx, false) }, s);
        case 'cancel':
          return reply({ ok: true, value: doCancel(s, msg) }, s);
        case 'open':
          return reply({ ok: true, value: openBook(s, msg.market) }, s);
        default:
          throw new InvalidArgumentError('exchange call', 'must be submit, cancel or open', msg);
      }
    } catch (error) {
      return reply(failure(error), s);
    }
  },

  handleCast(msg, s, ctx): CastResult<ExchangeState> {
    const owner = msg.owner;
    try {
      if (msg.type === 'submit') {
        const r = doSubmit(s, msg, ctx, true);
        const ack: OrderAcceptedMessage = {
          type: 'order_accepted',
          market: msg.market,
          id: r.id,
          status: r.status,
          filled: r.filled,
          resting: r.resting,
        };
        ctx.send(msg.owner, ack);
      } else if (msg.type === 'cancel') {
        const v = doCancel(s, msg);
        const done: OrderCancelledMessage = {
          type: 'order_cancelled',
          market: msg.market,
          id: v.id,
          quantity: v.quantity,
        };
        if (owner !== undefined) ctx.send(owner, done);
      }
    } catch (error) {
      // A cast has nobody waiting: the owner (if it can be told) gets the error as a message.
      if (isPid(owner)) {
        const rejected: OrderRejectedMessage = {
          type: 'order_rejected',
          market: String((msg as { market?: unknown }).market),
          id: (msg as { id?: OrderId }).id,
          error: error instanceof Error ? error : new Error(describe(error)),
        };
        ctx.send(owner, rejected);
      }
    }
    return s;
  },

  handleInfo(msg: SystemMessage, s): CastResult<ExchangeState> {
    if (msg.type !== 'DOWN') return s;
    const key = pidKey(msg.pid);
    if (!s.watched.delete(key)) return s;
    for (const [market, book] of s.books) {
      for (const v of book.cancelOwner(msg.pid)) emitCancel(s, market, v, 'owner_exit');
    }
    return s;
  },
};

function ownerPid(owner: unknown): Pid {
  if (owner !== null && typeof owner === 'object' && 'self' in owner && isPid((owner as AgentContext).self)) {
    return (owner as AgentContext).self;
  }
  if (isPid(owner)) return owner;
  throw new InvalidArgumentError('owner', 'must be an agent ref, pid or agent context', owner);
}

/** A plain pid (a ref carries its runtime; messages and books keep only the address). */
function plainPid(p: Pid): Pid {
  return { node: p.node, thread: p.thread, id: p.id };
}

/**
 * The exchange service: one agent running an order book per market. Writes go through the agent
 * (`submit`, `cancel`, or a cast of `SubmitRequest`/`CancelRequest` from any agent); reads of the
 * books are synchronous (`exchange.book('cpu').top()`).
 */
export class Exchange {
  readonly runtime: Runtime;
  readonly ref: ExchangeRef;
  readonly #s: ExchangeState;

  private constructor(runtime: Runtime, ref: ExchangeRef, state: ExchangeState) {
    this.runtime = runtime;
    this.ref = ref;
    this.#s = state;
  }

  /** Start the exchange agent (top level on `runtime`). */
  static async start(runtime: Runtime, options: ExchangeOptions = {}): Promise<Exchange> {
    if (options === null || typeof options !== 'object') {
      throw new InvalidArgumentError('exchange options', 'must be an object', options);
    }
    const markets = options.markets ?? [];
    if (!Array.isArray(markets)) {
      throw new InvalidArgumentError('markets', 'must be an array of market names', markets);
    }
    const cancelOnExit = options.cancelOnExit ?? true;
    if (typeof cancelOnExit !== 'boolean') {
      throw new InvalidArgumentError('cancelOnExit', 'must be a boolean', cancelOnExit);
    }
    const state: ExchangeState = { runtime, books: new Map(), watched: new Map(), cancelOnExit };
    for (let i = 0; i < markets.length; i++) {
      const m: unknown = markets[i];
      if (typeof m !== 'string' || m.length === 0) {
        throw new InvalidArgumentError(`markets[${i}]`, 'must be a non-empty string', m);
      }
      openBook(state, m);
    }
    const ref = await runtime.spawn(
      ExchangeBehaviour,
      state,
      options.name === undefined ? {} : { name: options.name },
    );
    return new Exchange(runtime, ref, state);
  }

  async #call(msg: ExchangeCall): Promise<unknown> {
    const answer = await this.runtime.call(this.ref, msg, Number.POSITIVE_INFINITY);
    if (!answer.ok) throw answer.error;
    return answer.value;
  }

  /** Open a market (an empty book); resolves false if it was open already. */
  async open(market: string): Promise<boolean> {
    checkMarket(market);
    return (await this.#call({ type: 'open', market })) as boolean;
  }

  /**
   * Submit a limit order to `market`; resolves with its trades and what rests. The makers it
   * traded with get `fill` messages. Rejects with InvalidArgumentError naming the field,
   * UnknownMarketError (E_EXCHANGE_UNKNOWN_MARKET) or DuplicateOrderError.
   */
  async submit(market: string, order: ExchangeOrder): Promise<SubmitResult<Pid>> {
    checkMarket(market);
    if (order === null || typeof order !== 'object') {
      throw new InvalidArgumentError('order', 'must be an object {side, price, quantity, owner}', order);
    }
    const msg: SubmitRequest = {
      type: 'submit',
      market,
      side: order.side,
      price: order.price,
      quantity: order.quantity,
      owner: plainPid(ownerPid(order.owner)),
      ...(order.id === undefined ? {} : { id: order.id }),
      ...(order.timeInForce === undefined ? {} : { timeInForce: order.timeInForce }),
    };
    return (await this.#call(msg)) as SubmitResult<Pid>;
  }

  /**
   * Cancel a resting order; resolves with it as it was. With `owner`, only that owner's order:
   * NotOrderOwnerError (E_EXCHANGE_NOT_OWNER) otherwise. OrderNotFoundError for an order that is
   * not resting.
   */
  async cancel(market: string, id: OrderId, owner?: OrderOwner): Promise<OrderView<Pid>> {
    checkMarket(market);
    checkId(id);
    const msg: CancelRequest =
      owner === undefined
        ? { type: 'cancel', market, id }
        : { type: 'cancel', market, id, owner: plainPid(ownerPid(owner)) };
    return (await this.#call(msg)) as OrderView<Pid>;
  }

  /** The book of `market`, for synchronous reads. UnknownMarketError if there is none. */
  book(market: string): ReadonlyOrderBook<Pid> {
    checkMarket(market);
    return bookOf(this.#s, market);
  }

  /** The open markets. */
  markets(): string[] {
    return [...this.#s.books.keys()];
  }

  /** Stop the exchange agent (the books go with it). */
  stop(): Promise<void> {
    return this.runtime.stop(this.ref, 'shutdown');
  }
}

/** A submit request to cast to the exchange from inside an agent (fills come back as messages). */
export function submitRequest(market: string, order: ExchangeOrder): SubmitRequest {
  checkMarket(market);
  return {
    type: 'submit',
    market,
    side: order.side,
    price: order.price,
    quantity: order.quantity,
    owner: plainPid(ownerPid(order.owner)),
    ...(order.id === undefined ? {} : { id: order.id }),
    ...(order.timeInForce === undefined ? {} : { timeInForce: order.timeInForce }),
  };
}
