/**
 * A service marketplace: provider agents list services at a price, consumers request them, the
 * provider executes the request (a real call to the provider agent, with a timeout), and the
 * trade settles through an injected `settle(from, to, amount)`, or through `payments` that reserve
 * the price before the work and capture it after.
 *
 * **Matching: best-price listing, not the order book.** A listing is a standing offer with a
 * *capacity* (how many requests the provider runs at once); a slot is taken while a request runs
 * and comes back when it ends. An order book's asks are used up by fills, so it would have to
 * re-post the ask (losing its time priority) after every request; a listing keeps its place. A
 * request is in effect an immediate-or-cancel bid for one unit: it goes to the cheapest listing
 * at or under its `maxPrice` with a free slot, ties to the earliest listing (price-time priority,
 * as in the book). The consumer pays the listed price. Slots are counted per provider and service,
 * not per listing: requests still running after an unlist count against a relisting's capacity.
 *
 * **Who does what.** One marketplace agent owns the listings and slots: `list`, `unlist` and
 * taking or returning a slot are messages to it, and it monitors providers, so a provider that
 * exits is unlisted at once. The request itself runs in the requester's promise, not in the
 * marketplace agent, so one slow provider holds up nobody else: take a slot, reserve the price
 * (`payments`) or check the consumer can pay (`canPay`, optional), call the provider, capture or
 * settle, return the slot.
 *
 * **Failure.** The consumer is charged only after the provider replied with a result. A provider
 * that crashes, exits, is gone, times out, or refuses (`refuseService`) costs the consumer nothing:
 * the request rejects with ProviderFailedError, ProviderTimeoutError or ServiceRefusedError. No
 * listing that fits: NoProviderError (with `reason`). `canPay` or `payments.reserve` throwing
 * (rather than refusing): PaymentError. A settlement that fails after the provider worked rejects
 * with SettlementError. With `settle` the provider is then unpaid, as the consumer's funds were
 * only checked, not reserved; `payments` closes that gap: the price is reserved before the
 * provider is called (`reserve`), paid from the reservation after (`capture`), and the
 * reservation is released on every failure (`release`). A provider that timed out may still be
 * working; its slot is returned anyway.
 *
 * Telemetry: `['mabeam','marketplace','settled']` (measurements `price`, `duration` in runtime
 * clock ms; metadata `service`, `provider`, `consumer`, `request`) and
 * `['mabeam','marketplace','failed']` (metadata `reason`: `no_provider`, `insufficient_funds`,
 * `payment`, `provider_failed`, `provider_timeout`, `refused`, `settlement`, or `error` when the
 * marketplace agent could not be asked for a slot (stopped, say); plus `service`, `consumer`).
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
  pidKey,
  type Runtime,
  reply,
  type SystemMessage,
  TimeoutError,
} from '../kernel/index.js';

// ---- errors ------------------------------------------------------------------------------------

/** Error codes of the service marketplace (unique across mabeam, never reused). */
export const MarketplaceErrorCodes = {
  /** No listing fits the request (none listed, all over the price limit, or all at capacity). */
  NO_PROVIDER: 'E_MARKETPLACE_NO_PROVIDER',
  /** The provider crashed, exited or was gone before it replied; the consumer was not charged. */
  PROVIDER_FAILED: 'E_MARKETPLACE_PROVIDER_FAILED',
  /** The provider did not reply within the request's timeout; the consumer was not charged. */
  PROVIDER_TIMEOUT: 'E_MARKETPLACE_PROVIDER_TIMEOUT',
  /** The provider answered with `refuseService(reason)`; the consumer was not charged. */
  SERVICE_REFUSED: 'E_MARKETPLACE_SERVICE_REFUSED',
  /** The consumer cannot pay the price (in-memory balances, or `canPay` said no). */
  INSUFFICIENT_FUNDS: 'E_MARKETPLACE_INSUFFICIENT_FUNDS',
  /** `settle` (or `payments.capture`) failed after the provider had replied; `cause` holds why. */
  SETTLEMENT_FAILED: 'E_MARKETPLACE_SETTLEMENT_FAILED',
  /** `canPay` or `payments.reserve` threw (other than a refusal for funds); `cause` holds why. */
  PAYMENT_FAILED: 'E_MARKETPLACE_PAYMENT_FAILED',
} as const;

export type NoProviderReason = 'none_listed' | 'over_price' | 'at_capacity';

/** No listing of the service fits the request. */
export class NoProviderError extends MabeamError {
  readonly service: string;
  readonly reason: NoProviderReason;
  constructor(service: string, reason: NoProviderReason, maxPrice: number) {
    const why =
      reason === 'none_listed'
        ? 'nobody lists it'
        : reason === 'over_price'
          ? `every listing costs more than ${maxPrice}`
          : `every listing at or under ${maxPrice} is at capacity`;
    super(MarketplaceErrorCodes.NO_PROVIDER, `no provider for service ${JSON.stringify(service)}: ${why}`);
    this.service = service;
    this.reason = reason;
  }
}

/** The provider failed (crashed, exited, or was gone) before replying. */
export class ProviderFailedError extends MabeamError {
  readonly service: string;
  readonly provider: Pid;
  constructor(service: string, provider: Pid, cause: unknown) {
    super(
      MarketplaceErrorCodes.PROVIDER_FAILED,
      `provider ${pidKey(provider)} of service ${JSON.stringify(service)} failed: ${describe(cause)} (not charged)`,
      { cause },
    );
    this.service = service;
    this.provider = provider;
  }
}

/** The provider did not reply in time. */
export class ProviderTimeoutError extends MabeamError {
  readonly service: string;
  readonly provider: Pid;
  readonly timeoutMs: number;
  constructor(service: string, provider: Pid, timeoutMs: number) {
    super(
      MarketplaceErrorCodes.PROVIDER_TIMEOUT,
      `provider ${pidKey(provider)} of service ${JSON.stringify(service)} did not reply within ${timeoutMs} ms (not charged)`,
    );
    this.service = service;
    this.provider = provider;
    this.timeoutMs = timeoutMs;
  }
}

/** The provider refused the request. */
export class ServiceRefusedError extends MabeamError {
  readonly service: string;
  readonly provider: Pid;
  readonly reason: unknown;
  constructor(service: string, provider: Pid, reason: unknown) {
    super(
      MarketplaceErrorCodes.SERVICE_REFUSED,
      `provider ${pidKey(provider)} refused service ${JSON.stringify(service)}: ${describe(reason)} (not charged)`,
    );
    this.service = service;
    this.provider = provider;
    this.reason = reason;
  }
}

/** The consumer cannot pay. */
export class InsufficientBalanceError extends MabeamError {
  readonly account: string;
  readonly amount: number;
  constructor(account: string, amount: number, balance?: number, cause?: unknown) {
    super(
      MarketplaceErrorCodes.INSUFFICIENT_FUNDS,
      `account ${JSON.stringify(account)} cannot pay ${amount}` +
        (balance === undefined ? '' : ` (balance ${balance})`) +
        (cause === undefined ? '' : `: ${describe(cause)}`),
      cause === undefined ? undefined : { cause },
    );
    this.account = account;
    this.amount = amount;
  }
}

/** Settlement failed after the provider had done the work. */
export class SettlementError extends MabeamError {
  readonly from: string;
  readonly to: string;
  readonly amount: number;
  constructor(from: string, to: string, amount: number, cause: unknown) {
    super(
      MarketplaceErrorCodes.SETTLEMENT_FAILED,
      `settling ${amount} from ${JSON.stringify(from)} to ${JSON.stringify(to)} failed: ${describe(cause)}`,
      { cause },
    );
    this.from = from;
    this.to = to;
    this.amount = amount;
  }
}

/** Checking or reserving the price failed (`canPay` or `payments.reserve` threw); not charged. */
export class PaymentError extends MabeamError {
  readonly account: string;
  readonly amount: number;
  constructor(account: string, amount: number, cause: unknown) {
    super(
      MarketplaceErrorCodes.PAYMENT_FAILED,
      `could not check or reserve ${amount} from ${JSON.stringify(account)}: ${describe(cause)} (not charged)`,
      { cause },
    );
    this.account = account;
    this.amount = amount;
  }
}

// ---- settlement --------------------------------------------------------------------------------

/** Moves `amount` from account `from` to account `to`; throws or rejects to refuse. */
export type SettleFn = (from: string, to: string, amount: number) => void | Promise<void>;
/** Whether `account` can pay `amount` now (checked before the provider is asked to work). */
export type CanPayFn = (account: string, amount: number) => boolean | Promise<boolean>;

/**
 * Payment by reservation (escrow), for example `escrow(ledger)` from ledger.ts. `reserve` runs
 * before the provider is called and answers a token (throw InsufficientBalanceError, or a
 * MabeamError coded `E_INSUFFICIENT_FUNDS` or `E_ACCOUNT_UNKNOWN`, to refuse for want of funds);
 * after the provider replied, `capture(token, to)` pays the price to the provider's account;
 * on every failure instead (provider failed, timed out or refused, capture failed)
 * `release(token)` frees the reservation. Exactly one of `capture` and `release` is called per
 * token that `reserve` gave, except that `release` follows a failed `capture`.
 */
export interface Payments<T = unknown> {
  reserve(account: string, amount: number): T | Promise<T>;
  capture(token: T, to: string): void | Promise<void>;
  release(token: T): void | Promise<void>;
}

/** Codes of errors from `payments.reserve` (and `canPay`) that mean "cannot pay", not "broken". */
const FUNDS_CODES: ReadonlySet<string> = new Set(['E_INSUFFICIENT_FUNDS', 'E_ACCOUNT_UNKNOWN']);

function checkAmount(amount: unknown, what = 'amount'): asserts amount is number {
  if (typeof amount !== 'number' || !Number.isFinite(amount) || amount < 0) {
    throw new InvalidArgumentError(what, 'must be a finite number >= 0', amount);
  }
}

function checkAccount(account: unknown, what = 'account'): asserts account is string {
  if (typeof account !== 'string' || account.length === 0) {
    throw new InvalidArgumentError(what, 'must be a non-empty string', account);
  }
}

/**
 * In-memory balances, the marketplace's default settlement: a balance per account (0 until
 * something is deposited), never negative. A ledger replaces it through the `settle` option.
 */
export class Balances {
  readonly #balances = new Map<string, number>();

  constructor(initial: Readonly<Record<string, number>> = {}) {
    if (initial === null || typeof initial !== 'object') {
      throw new InvalidArgumentError('initial balances', 'must be an object of account: amount', initial);
    }
    for (const [account, amount] of Object.entries(initial)) this.deposit(account, amount);
  }

  balance(account: string): number {
    return this.#balances.get(account) ?? 0;
  }

  deposit(account: string, amount: number): void {
    checkAccount(account);
    checkAmount(amount);
    this.#balances.set(account, this.balance(account) + amount);
  }

  canPay = (account: string, amount: number): boolean => this.balance(account) >= amount;

  /** Both legs at once, or nothing: InsufficientBalanceError if `from` has less than `amount`. */
  settle = (from: string, to: string, amount: number): void => {
    checkAccount(from, 'from');
    checkAccount(to, 'to');
    checkAmount(amount);
    const have = this.balance(from);
    if (have < amount) throw new InsufficientBalanceError(from, amount, have);
    this.#balances.set(from, have - amount);
    this.#balances.set(to, this.balance(to) + amount);
  };

  /** Every account with its balance. */
  entries(): [account: string, balance: number][] {
    return [...this.#balances];
  }
}

// ---- public types ------------------------------------------------------------------------------

export const MARKETPLACE_SETTLED = ['mabeam', 'marketplace', 'settled'] as const;
export const MARKETPLACE_FAILED = ['mabeam', 'marketplace', 'failed'] as const;
/** `payments.release` failed after a failed request (metadata `error`); the reservation may remain. */
export const MARKETPLACE_RELEASE_FAILED = ['mabeam', 'marketplace', 'release_failed'] as const;

/** An agent: its ref, pid, or (from inside its callbacks) its context. */
export type AgentLike = AnyRef | Pid | AgentContext<unknown, unknown, unknown, unknown>;

/** What a provider's handleCall receives; it replies with the result (or `refuseService`). */
export interface ServiceRequest<I = unknown> {
  readonly type: 'service_request';
  readonly service: string;
  readonly input: I;
  /** What the consumer pays once the provider has replied. */
  readonly price: number;
  readonly consumer: string;
  /** Unique per marketplace. */
  readonly request: number;
}

/** A provider's answer that declines the request: the consumer is not charged. */
export interface ServiceRefusal {
  readonly type: 'service_refused';
  readonly reason: unknown;
}

/** Reply this from a provider's handleCall to decline a request. */
export function refuseService(reason: unknown): ServiceRefusal {
  return { type: 'service_refused', reason };
}

/** True when a message is a marketplace service request. */
export function isServiceRequest(msg: unknown): msg is ServiceRequest {
  return (
    msg !== null &&
    typeof msg === 'object' &&
    (msg as { type?: unknown }).type === 'service_request' &&
    typeof (msg as { service?: unknown }).service === 'string'
  );
}

function isRefusal(value: unknown): value is ServiceRefusal {
  return (
    value !== null && typeof value === 'object' && (value as { type?: unknown }).type === 'service_refused'
  );
}

export interface ListOptions {
  /** What a request costs, >= 0. */
  readonly price: number;
  /** Requests the provider runs at once (default 1). */
  readonly capacity?: number;
  /** The account paid; default the provider's pid key (`node.thread.id`, as the ledger keys agents). */
  readonly account?: string;
}

/** A listing as read from the marketplace. */
export interface ListingInfo {
  readonly service: string;
  readonly provider: Pid;
  readonly price: number;
  readonly capacity: number;
  /** Requests of this provider and service running now (those it took before an unlist count). */
  readonly inFlight: number;
  readonly account: string;
  /** Listing order (time priority among equal prices). */
  readonly seq: number;
}

export interface RequestOptions {
  /** The most the consumer pays (default: any price). */
  readonly maxPrice?: number;
  /** Runtime-clock ms the provider has to reply (default: the marketplace's `timeoutMs`). */
  readonly timeoutMs?: number;
}

/** A settled request. */
export interface ServiceReceipt<R = unknown> {
  readonly request: number;
  readonly service: string;
  readonly provider: Pid;
  readonly price: number;
  readonly result: R;
  /** Runtime-clock ms from taking the slot to settlement. */
  readonly durationMs: number;
}

export interface MarketplaceOptions {
  /**
   * Moves money; default an in-memory `Balances` (then `marketplace.balances`). A ledger plugs in
   * here, for example `settle(ledger)` from ledger.ts.
   */
  readonly settle?: SettleFn;
  /**
   * Checked before the provider is called; default the in-memory balances' check when `settle`
   * is not given, none otherwise.
   */
  readonly canPay?: CanPayFn;
  /**
   * Reserve the price before the provider works, capture it after, release it on failure
   * (instead of `settle` and `canPay`, which it excludes); for example `escrow(ledger)`.
   */
  readonly payments?: Payments<unknown>;
  /** Initial in-memory balances (only without `settle` or `payments`). */
  readonly balances?: Readonly<Record<string, number>>;
  /** Default provider timeout in runtime-clock ms (default 5000). */
  readonly timeoutMs?: number;
  /** Register the marketplace agent under this name. */
  readonly name?: string;
}

// ---- the marketplace agent ---------------------------------------------------------------------

interface Listing {
  readonly service: string;
  readonly provider: Pid;
  readonly providerKey: string;
  price: number;
  capacity: number;
  account: string;
  seq: number;
  /** False once unlisted (requests still running return their slot to nobody). */
  live: boolean;
}

/** A slot taken for one request. */
export interface Reservation {
  readonly request: number;
  readonly service: string;
  readonly provider: Pid;
  readonly price: number;
  readonly account: string;
}

/** @internal calls of the marketplace agent */
export type MarketplaceCall =
  | {
      readonly type: 'list';
      readonly service: string;
      readonly provider: Pid;
      readonly price: number;
      readonly capacity: number;
      readonly account: string;
    }
  | { readonly type: 'unlist'; readonly service: string; readonly provider: Pid }
  | { readonly type: 'reserve'; readonly service: string; readonly maxPrice: number };

/** @internal casts of the marketplace agent */
export interface ReleaseMessage {
  readonly type: 'release';
  readonly request: number;
}

type MarketplaceReply =
  | { readonly ok: true; readonly value: ListingInfo | Reservation | boolean }
  | { readonly ok: false; readonly error: Error };

/** The marketplace agent's handle. */
export type MarketplaceRef = AgentRef<MarketplaceCall, MarketplaceReply, ReleaseMessage, never>;
type MarketplaceCtx = AgentContext<MarketplaceCall, MarketplaceReply, ReleaseMessage, never>;

/** The marketplace's state; the handle reads it, only the agent writes it. @internal */
export interface MarketplaceState {
  /** Listings per service, sorted by (price, seq): the first with a free slot is chosen. */
  readonly services: Map<string, Listing[]>;
  /** Providers with listings, each monitored once. */
  readonly providers: Map<string, { readonly monitor: MonitorRef; readonly listings: Map<string, Listing> }>;
  /** Slots taken: the running key (`slotKey`) of each request number. */
  readonly taken: Map<number, string>;
  /**
   * Requests running per provider and service (`slotKey`), not per listing object: requests that
   * outlive an unlist still count when the provider lists the service again.
   */
  readonly running: Map<string, number>;
  nextSeq: number;
  nextRequest: number;
}

function before(a: Listing, b: Listing): boolean {
  return a.price < b.price || (a.price === b.price && a.seq < b.seq);
}

/** Insert keeping (price, seq) order; listings per service are few, so an array is the right size. */
function insertListing(list: Listing[], l: Listing): void {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (before(list[mid] as Listing, l)) lo = mid + 1;
    else hi = mid;
  }
  list.splice(lo, 0, l);
}

function slotKey(providerKey: string, service: string): string {
  return `${providerKey}\u0000${service}`;
}

function runningOf(s: MarketplaceState, l: Listing): number {
  return s.running.get(slotKey(l.providerKey, l.service)) ?? 0;
}

function removeListing(s: MarketplaceState, l: Listing): void {
  l.live = false;
  const list = s.services.get(l.service);
  if (list !== undefined) {
    const i = list.indexOf(l);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) s.services.delete(l.service);
  }
  const p = s.providers.get(l.providerKey);
  p?.listings.delete(l.service);
}

function infoOf(s: MarketplaceState, l: Listing): ListingInfo {
  return {
    service: l.service,
    provider: l.provider,
    price: l.price,
    capacity: l.capacity,
    inFlight: runningOf(s, l),
    account: l.account,
    seq: l.seq,
  };
}

/** The listing a request would get now, or why there is none. */
function choose(s: MarketplaceState, service: string, maxPrice: number): Listing | NoProviderReason {
  const list = s.services.get(service);
  if (list === undefined || list.length === 0) return 'none_listed';
  // Sorted by price: 'over_price' only when not even the cheapest fits the limit.
  for (const l of list) {
    if (l.price > maxPrice) break;
    if (runningOf(s, l) < l.capacity) return l;
  }
  return (list[0] as Listing).price > maxPrice ? 'over_price' : 'at_capacity';
}

function handle(
  s: MarketplaceState,
  msg: MarketplaceCall,
  ctx: MarketplaceCtx,
): ListingInfo | Reservation | boolean {
  switch (msg.type) {
    case 'list': {
      const key = pidKey(msg.provider);
      let p = s.providers.get(key);
      if (p === undefined) {
        p = { monitor: ctx.monitor(msg.provider), listings: new Map() };
        s.providers.set(key, p);
      }
      const old = p.listings.get(msg.service);
      if (old !== undefined) {
        // Relisting: the new terms; a new price is a new offer (it loses its time priority).
        old.capacity = msg.capacity;
        old.account = msg.account;
        if (old.price !== msg.price) {
          const list = s.services.get(msg.service) as Listing[];
          list.splice(list.indexOf(old), 1);
          old.price = msg.price;
          old.seq = ++s.nextSeq;
          insertListing(list, old);
        }
        return infoOf(s, old);
      }
      const l: Listing = {
        service: msg.service,
        provider: msg.provider,
        providerKey: key,
        price: msg.price,
        capacity: msg.capacity,
        account: msg.account,
        seq: ++s.nextSeq,
        live: true,
      };
      p.listings.set(msg.service, l);
      let list = s.services.get(msg.service);
      if (list === undefined) {
        list = [];
        s.services.set(msg.service, list);
      }
      insertListing(list, l);
      return infoOf(s, l);
    }
    case 'unlist': {
      const l = s.providers.get(pidKey(msg.provider))?.listings.get(msg.service);
      if (l === undefined) return false;
      removeListing(s, l);
      return true;
    }
    case 'reserve': {
      const chosen = choose(s, msg.service, msg.maxPrice);
      if (typeof chosen === 'string') throw new NoProviderError(msg.service, chosen, msg.maxPrice);
      const key = slotKey(chosen.providerKey, chosen.service);
      s.running.set(key, (s.running.get(key) ?? 0) + 1);
      const request = ++s.nextRequest;
      s.taken.set(request, key);
      return {
        request,
        service: chosen.service,
        provider: chosen.provider,
        price: chosen.price,
        account: chosen.account,
      };
    }
    default:
      throw new InvalidArgumentError('marketplace call', 'must be list, unlist or reserve', msg);
  }
}

/** The marketplace agent. Started by `Marketplace.start`; exported for supervision. */
export const MarketplaceBehaviour: Behaviour<
  MarketplaceState,
  MarketplaceState,
  MarketplaceCall,
  MarketplaceReply,
  ReleaseMessage,
  never
> = {
  init: (state) => state,

  handleCall(msg, _from, s, ctx): CallResult<MarketplaceReply, MarketplaceState> {
    try {
      return reply({ ok: true, value: handle(s, msg, ctx) }, s);
    } catch (error) {
      return reply({ ok: false, error: error instanceof Error ? error : new Error(describe(error)) }, s);
    }
  },

  handleCast(msg, s): CastResult<MarketplaceState> {
    if (msg.type !== 'release') return s;
    const key = s.taken.get(msg.request);
    if (key === undefined) return s;
    s.taken.delete(msg.request);
    const n = (s.running.get(key) ?? 1) - 1;
    if (n > 0) s.running.set(key, n);
    else s.running.delete(key);
    return s;
  },

  handleInfo(msg: SystemMessage, s): CastResult<MarketplaceState> {
    if (msg.type !== 'DOWN') return s;
    const key = pidKey(msg.pid);
    const p = s.providers.get(key);
    if (p === undefined || p.monitor.monitorId !== msg.monitor.monitorId) return s;
    s.providers.delete(key);
    for (const l of [...p.listings.values()]) removeListing(s, l);
    return s;
  },
};

// ---- the service -------------------------------------------------------------------------------

function agentPid(agent: unknown, what: string): Pid {
  if (agent !== null && typeof agent === 'object' && 'self' in agent && isPid((agent as AgentContext).self)) {
    const p = (agent as AgentContext).self;
    return { node: p.node, thread: p.thread, id: p.id };
  }
  if (isPid(agent)) return { node: agent.node, thread: agent.thread, id: agent.id };
  throw new InvalidArgumentError(what, 'must be an agent ref, pid or agent context', agent);
}

function checkService(service: unknown): asserts service is string {
  if (typeof service !== 'string' || service.length === 0) {
    throw new InvalidArgumentError('service', 'must be a non-empty string', service);
  }
}

function checkTimeout(ms: unknown, what: string): asserts ms is number {
  if (typeof ms !== 'number' || Number.isNaN(ms) || ms <= 0) {
    throw new InvalidArgumentError(what, 'must be a positive number of ms (Infinity: no limit)', ms);
  }
}

const DEFAULT_TIMEOUT_MS = 5000;

/** The settle of a marketplace with `payments` (which captures instead). */
const unused: SettleFn = () => {
  throw new Error('settle is not used with payments');
};

/** The service marketplace (see the module comment). Start it with `Marketplace.start(runtime)`. */
export class Marketplace {
  readonly runtime: Runtime;
  readonly ref: MarketplaceRef;
  /** The in-memory balances, when no `settle` was injected. */
  readonly balances: Balances | undefined;
  readonly #s: MarketplaceState;
  readonly #settle: SettleFn;
  readonly #canPay: CanPayFn | undefined;
  readonly #payments: Payments<unknown> | undefined;
  readonly #timeoutMs: number;

  private constructor(
    runtime: Runtime,
    ref: MarketplaceRef,
    state: MarketplaceState,
    balances: Balances | undefined,
    settle: SettleFn,
    canPay: CanPayFn | undefined,
    payments: Payments<unknown> | undefined,
    timeoutMs: number,
  ) {
    this.runtime = runtime;
    this.ref = ref;
    this.#s = state;
    this.balances = balances;
    this.#settle = settle;
    this.#canPay = canPay;
    this.#payments = payments;
    this.#timeoutMs = timeoutMs;
  }

  /** Start the marketplace agent (top level on `runtime`). */
  static async start(runtime: Runtime, options: MarketplaceOptions = {}): Promise<Marketplace> {
    if (options === null || typeof options !== 'object') {
      throw new InvalidArgumentError('marketplace options', 'must be an object', options);
    }
    const { settle, canPay, payments, balances: initial, timeoutMs = DEFAULT_TIMEOUT_MS, name } = options;
    if (settle !== undefined && typeof settle !== 'function') {
      throw new InvalidArgumentError('settle', 'must be a function (from, to, amount)', settle);
    }
    if (canPay !== undefined && typeof canPay !== 'function') {
      throw new InvalidArgumentError('canPay', 'must be a function (account, amount)', canPay);
    }
    if (payments !== undefined) {
      if (
        payments === null ||
        typeof payments !== 'object' ||
        typeof payments.reserve !== 'function' ||
        typeof payments.capture !== 'function' ||
        typeof payments.release !== 'function'
      ) {
        throw new InvalidArgumentError('payments', 'must be an object {reserve, capture, release}', payments);
      }
      if (settle !== undefined || canPay !== undefined) {
        throw new InvalidArgumentError('payments', 'replace `settle` and `canPay`: give one or the other');
      }
    }
    if ((settle !== undefined || payments !== undefined) && initial !== undefined) {
      throw new InvalidArgumentError(
        'balances',
        'only apply to the in-memory default (no `settle` or `payments` given)',
        initial,
      );
    }
    checkTimeout(timeoutMs, 'timeoutMs');
    const balances = settle === undefined && payments === undefined ? new Balances(initial) : undefined;
    const state: MarketplaceState = {
      services: new Map(),
      providers: new Map(),
      taken: new Map(),
      running: new Map(),
      nextSeq: 0,
      nextRequest: 0,
    };
    const ref = await runtime.spawn(MarketplaceBehaviour, state, name === undefined ? {} : { name });
    return new Marketplace(
      runtime,
      ref,
      state,
      balances,
      settle ?? balances?.settle ?? unused,
      canPay ?? balances?.canPay,
      payments,
      timeoutMs,
    );
  }

  async #call(msg: MarketplaceCall): Promise<unknown> {
    const answer = await this.runtime.call(this.ref, msg, Number.POSITIVE_INFINITY);
    if (!answer.ok) throw answer.error;
    return answer.value;
  }

  /**
   * List `service` by `provider` at `options.price` with `options.capacity` slots. Listing a
   * service the provider lists already changes its terms (a new price loses time priority).
   * The provider is unlisted everywhere when it exits.
   */
  async list(provider: AgentLike, service: string, options: ListOptions): Promise<ListingInfo> {
    const pid = agentPid(provider, 'provider');
    checkService(service);
    if (options === null || typeof options !== 'object') {
      throw new InvalidArgumentError('list options', 'must be an object with price', options);
    }
    checkAmount(options.price, 'price');
    const capacity = options.capacity ?? 1;
    if (typeof capacity !== 'number' || !Number.isSafeInteger(capacity) || capacity < 1) {
      throw new InvalidArgumentError('capacity', 'must be a safe integer >= 1', capacity);
    }
    const account = options.account ?? pidKey(pid);
    checkAccount(account);
    return (await this.#call({
      type: 'list',
      service,
      provider: pid,
      price: options.price,
      capacity,
      account,
    })) as ListingInfo;
  }

  /** Withdraw a listing; resolves false if there was none. Running requests finish. */
  async unlist(provider: AgentLike, service: string): Promise<boolean> {
    const pid = agentPid(provider, 'provider');
    checkService(service);
    return (await this.#call({ type: 'unlist', service, provider: pid })) as boolean;
  }

  /**
   * Buy one execution of `service` for `consumer` (an account name, or an agent whose account is
   * its pid key): the cheapest fitting listing's provider is called with a `ServiceRequest`
   * carrying `input`, and the consumer pays the listed price once it has replied. Resolves with
   * the receipt (the provider's reply in `result`). Rejects, charging nothing (and releasing a
   * `payments` reservation), with NoProviderError, InsufficientBalanceError, PaymentError,
   * ProviderFailedError, ProviderTimeoutError or ServiceRefusedError; with SettlementError if
   * payment fails after the work; with the marketplace agent's error if it could not be asked
   * (telemetry reason `error`).
   */
  async request<R = unknown, I = unknown>(
    consumer: string | AgentLike,
    service: string,
    input: I,
    options: RequestOptions = {},
  ): Promise<ServiceReceipt<R>> {
    const account = typeof consumer === 'string' ? consumer : pidKey(agentPid(consumer, 'consumer'));
    checkAccount(account, 'consumer');
    checkService(service);
    if (options === null || typeof options !== 'object') {
      throw new InvalidArgumentError('request options', 'must be an object', options);
    }
    const maxPrice = options.maxPrice ?? Number.POSITIVE_INFINITY;
    if (typeof maxPrice !== 'number' || Number.isNaN(maxPrice) || maxPrice < 0) {
      throw new InvalidArgumentError('maxPrice', 'must be a number >= 0', maxPrice);
    }
    const timeoutMs = options.timeoutMs ?? this.#timeoutMs;
    checkTimeout(timeoutMs, 'timeoutMs');

    let slot: Reservation;
    try {
      slot = (await this.#call({ type: 'reserve', service, maxPrice })) as Reservation;
    } catch (error) {
      this.#failed(error instanceof NoProviderError ? 'no_provider' : 'error', service, account);
      throw error;
    }
    const started = this.runtime.clock.now();
    const payments = this.#payments;
    let reserved = false;
    let token: unknown;
    const fail = (reason: string, error: Error): never => {
      this.#release(slot.request);
      if (reserved) this.#releasePayment(payments as Payments<unknown>, token, service, account, slot);
      this.#failed(reason, service, account, slot);
      throw error;
    };
    /** A refusal for want of funds, or PaymentError for anything else `canPay`/`reserve` threw. */
    const payFailure = (error: unknown): never => {
      if (error instanceof InsufficientBalanceError) return fail('insufficient_funds', error);
      if (error instanceof MabeamError && FUNDS_CODES.has(error.code)) {
        return fail(
          'insufficient_funds',
          new InsufficientBalanceError(account, slot.price, undefined, error),
        );
      }
      return fail('payment', new PaymentError(account, slot.price, error));
    };

    if (payments !== undefined && slot.price > 0) {
      try {
        token = await payments.reserve(account, slot.price);
      } catch (error) {
        return payFailure(error);
      }
      reserved = true;
    } else if (this.#canPay !== undefined && slot.price > 0) {
      let ok: boolean;
      try {
        ok = await this.#canPay(account, slot.price);
      } catch (error) {
        return payFailure(error);
      }
      if (!ok) {
        return fail(
          'insufficient_funds',
          new InsufficientBalanceError(account, slot.price, this.balances?.balance(account)),
        );
      }
    }

    const msg: ServiceRequest<I> = {
      type: 'service_request',
      service,
      input,
      price: slot.price,
      consumer: account,
      request: slot.request,
    };
    let result: unknown;
    try {
      result = await this.runtime.call(slot.provider, msg, timeoutMs);
    } catch (error) {
      if (error instanceof TimeoutError) {
        return fail('provider_timeout', new ProviderTimeoutError(service, slot.provider, timeoutMs));
      }
      return fail('provider_failed', new ProviderFailedError(service, slot.provider, error));
    }
    if (isRefusal(result)) {
      return fail('refused', new ServiceRefusedError(service, slot.provider, result.reason));
    }
    if (slot.price > 0) {
      try {
        if (reserved) await (payments as Payments<unknown>).capture(token, slot.account);
        else await this.#settle(account, slot.account, slot.price);
      } catch (error) {
        return fail('settlement', new SettlementError(account, slot.account, slot.price, error));
      }
    }
    this.#release(slot.request);
    const durationMs = this.runtime.clock.now() - started;
    const tel = this.runtime.telemetry;
    if (tel.enabled) {
      tel.execute(
        MARKETPLACE_SETTLED,
        { price: slot.price, duration: durationMs },
        { service, provider: slot.provider, consumer: account, request: slot.request },
      );
    }
    return {
      request: slot.request,
      service,
      provider: slot.provider,
      price: slot.price,
      result: result as R,
      durationMs,
    };
  }

  #release(request: number): void {
    this.runtime.cast(this.ref, { type: 'release', request });
  }

  /** Free a reservation after a failure; a release that fails is reported, not thrown. */
  #releasePayment(
    payments: Payments<unknown>,
    token: unknown,
    service: string,
    consumer: string,
    slot: Reservation,
  ): void {
    const report = (error: unknown): void => {
      const tel = this.runtime.telemetry;
      if (!tel.enabled) return;
      tel.execute(
        MARKETPLACE_RELEASE_FAILED,
        { price: slot.price },
        { service, consumer, provider: slot.provider, request: slot.request, error },
      );
    };
    try {
      Promise.resolve(payments.release(token)).catch(report);
    } catch (error) {
      report(error);
    }
  }

  #failed(reason: string, service: string, consumer: string, slot?: Reservation): void {
    const tel = this.runtime.telemetry;
    if (!tel.enabled) return;
    tel.execute(
      MARKETPLACE_FAILED,
      { price: slot?.price ?? 0 },
      { reason, service, consumer, provider: slot?.provider, request: slot?.request },
    );
  }

  // ---- reads (synchronous) ---------------------------------------------------------------------

  /** The listings of `service`, in the order requests pick them (price, then listing time). */
  listings(service: string): ListingInfo[] {
    checkService(service);
    const s = this.#s;
    return (s.services.get(service) ?? []).map((l) => infoOf(s, l));
  }

  /**
   * The listing a request for `service` (at most `maxPrice`) would get now, or undefined. A read:
   * another request may take the slot before yours arrives.
   */
  quote(service: string, maxPrice = Number.POSITIVE_INFINITY): ListingInfo | undefined {
    checkService(service);
    const chosen = choose(this.#s, service, maxPrice);
    return typeof chosen === 'string' ? undefined : infoOf(this.#s, chosen);
  }

  /** Services with at least one listing. */
  services(): string[] {
    return [...this.#s.services.keys()];
  }

  /** Requests running now (slots taken). */
  get inFlight(): number {
    return this.#s.taken.size;
  }

  /** Stop the marketplace agent; running requests still finish and settle. */
  stop(): Promise<void> {
    return this.runtime.stop(this.ref, 'shutdown');
  }
}
