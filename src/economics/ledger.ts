/**
 * The ledger: accounts with balances, atomic transfers, mint and burn, and holds (escrow), every
 * transaction durable in the event store before it counts.
 *
 * One transaction, one event. A transfer is appended as ONE `ledger.transfer` event that names
 * both legs (debit `from`, credit `to`), so the log cannot hold a debit without its credit: there
 * is no step between the two for a crash to fall into. The same holds for every kind (a capture
 * debits the payer, credits the payee and frees the hold in one event).
 *
 * Ordering: check, reserve, append, commit, apply. One owner agent takes requests in arrival order
 * and, in one synchronous step per request, checks it against the balances (known accounts, funds
 * available), reserves the debit (so later requests cannot spend the same funds while this one is
 * in flight) and hands the event to the store. The balances change only when the store has
 * committed the event: the append's continuation applies it and then resolves the caller's
 * promise. So a promise that resolved was committed (and is applied); one that rejected was not
 * committed and changed nothing. Credits in flight are not spendable until committed, so every
 * prefix of the log, replayed in seq order, is valid on its own.
 *
 * Crashes. The request queue belongs to the ledger, not to the owner, and the owner submits in one
 * synchronous step, so it can die only between requests, never between taking one and submitting
 * it. When it dies, its supervisor restarts it and the new owner takes what is still queued; what
 * the old one had submitted is committed by the store (whose queue outlives its writer) and applied
 * by the continuation, which does not need the owner. When the process dies, whatever the store
 * had committed is in the log and `Ledger.start` / `Ledger.rebuild` replay it; what it had not
 * committed never happened, and its caller never got an acknowledgement.
 *
 * Reads (`balance`, `available`, `history`, ...) are synchronous reads of the committed state on
 * the caller's thread: no mailbox in the read path.
 *
 * Amounts. An amount is a finite number > 0 and at most Number.MAX_SAFE_INTEGER, and a mint that
 * would take the ledger's total above Number.MAX_SAFE_INTEGER is refused (BalanceLimitError); no
 * balance is negative, so none can exceed it either. Integer amounts (minor units) are therefore
 * exact: every balance and total is a safe integer. Fractional amounts are
 * accepted (auction prices, a VCG critical value, are fractions), and then balances are float sums.
 * So that rounding cannot take a balance below 0 or below what it holds, a debit from an account
 * whose balance, holds or debits in flight are not all integers must leave a margin of
 * `balance * 2^-32` (ROUNDING_MARGIN) unspent; `available` reports what is left after it, so
 * spending exactly `available` is always accepted. A residue of rounding that would still take a
 * balance below 0 is cut to 0 when applied (live and in replay alike): a balance is never negative.
 *
 * Telemetry (only when someone listens): `['mabeam','ledger','submit']` when a transaction is
 * handed to the store, `['mabeam','ledger','commit']` when it is applied (measurement `amount`),
 * `['mabeam','ledger','reject']` when a request is refused (metadata `code`, `error`; measurement
 * `amount`, 0 for a whole-hold capture of a hold that is not active).
 */

import type { EventStore, StoredEvent } from '../foundation/event-store/index.js';
import {
  type AgentContext,
  type AnyRef,
  behaviour,
  describe,
  InvalidArgumentError,
  isNormalExit,
  isPid,
  MabeamError,
  type Pid,
  type RestartIntensity,
  Runtime,
  Supervisor,
  type SupervisorRef,
} from '../kernel/index.js';

// ---- errors ------------------------------------------------------------------------------------

/** Error codes of the ledger (unique across mabeam, never reused). */
export const LedgerErrorCodes = {
  /** A debit exceeds what the account has available (balance minus holds and debits in flight). */
  INSUFFICIENT_FUNDS: 'E_INSUFFICIENT_FUNDS',
  /** The account was never opened in this ledger (or its opening is not committed yet). */
  ACCOUNT_UNKNOWN: 'E_ACCOUNT_UNKNOWN',
  /** `open` of an account that exists (or is being opened). */
  ACCOUNT_EXISTS: 'E_ACCOUNT_EXISTS',
  /** No such hold: never placed, already captured or released, or being captured or released. */
  HOLD_UNKNOWN: 'E_HOLD_UNKNOWN',
  /** Replaying the log met an event the ledger could not have written (bad shape, overdraft, ...). */
  LEDGER_CORRUPT: 'E_LEDGER_CORRUPT',
  /** The ledger has been closed; nothing more is accepted. */
  LEDGER_CLOSED: 'E_LEDGER_CLOSED',
  /** The owner's supervisor gave up (restart intensity exceeded); queued requests were not committed. */
  LEDGER_UNAVAILABLE: 'E_LEDGER_UNAVAILABLE',
  /** A mint would take the total (so possibly a balance) above Number.MAX_SAFE_INTEGER. */
  BALANCE_LIMIT: 'E_LEDGER_BALANCE_LIMIT',
} as const;

export type LedgerErrorCode = (typeof LedgerErrorCodes)[keyof typeof LedgerErrorCodes];

/** A debit larger than what the account has available; nothing changed, nothing was appended. */
export class InsufficientFundsError extends MabeamError {
  readonly ledger: string;
  readonly account: string;
  /** The committed balance (holds included). */
  readonly balance: number;
  /** What a debit could take: balance minus holds minus debits in flight (minus the rounding margin). */
  readonly available: number;
  readonly amount: number;
  constructor(ledger: string, account: string, balance: number, available: number, amount: number) {
    super(
      LedgerErrorCodes.INSUFFICIENT_FUNDS,
      `ledger ${JSON.stringify(ledger)}: account ${JSON.stringify(account)} cannot pay ${amount}: ` +
        `balance ${balance}, available ${available}`,
    );
    this.ledger = ledger;
    this.account = account;
    this.balance = balance;
    this.available = available;
    this.amount = amount;
  }
}

/**
 * A mint (`open` or `deposit`) that would take the ledger's total, the sum of all balances, above
 * Number.MAX_SAFE_INTEGER, beyond which numbers are no longer exact; nothing changed. As no balance
 * is negative, no balance can then exceed the limit either.
 */
export class BalanceLimitError extends MabeamError {
  readonly ledger: string;
  /** The account the mint was for. */
  readonly account: string;
  readonly amount: number;
  /** The committed total when it was refused. */
  readonly total: number;
  constructor(ledger: string, account: string, amount: number, total: number) {
    super(
      LedgerErrorCodes.BALANCE_LIMIT,
      `ledger ${JSON.stringify(ledger)}: minting ${amount} into ${JSON.stringify(account)} would take ` +
        `the total (${total}, with mints in flight) above Number.MAX_SAFE_INTEGER, where amounts stop being exact`,
    );
    this.ledger = ledger;
    this.account = account;
    this.amount = amount;
    this.total = total;
  }
}

/** The account does not exist in this ledger. */
export class AccountUnknownError extends MabeamError {
  readonly ledger: string;
  readonly account: string;
  constructor(ledger: string, account: string) {
    super(
      LedgerErrorCodes.ACCOUNT_UNKNOWN,
      `ledger ${JSON.stringify(ledger)} has no account ${JSON.stringify(account)}`,
    );
    this.ledger = ledger;
    this.account = account;
  }
}

/** `open` of an account that already exists (or whose opening is in flight). */
export class AccountExistsError extends MabeamError {
  readonly ledger: string;
  readonly account: string;
  constructor(ledger: string, account: string) {
    super(
      LedgerErrorCodes.ACCOUNT_EXISTS,
      `ledger ${JSON.stringify(ledger)} already has an account ${JSON.stringify(account)}`,
    );
    this.ledger = ledger;
    this.account = account;
  }
}

/** Capture or release of a hold that is not (or no longer) active. */
export class HoldUnknownError extends MabeamError {
  readonly ledger: string;
  readonly hold: number;
  constructor(ledger: string, hold: number, detail = 'no such hold (never placed, or already settled)') {
    super(LedgerErrorCodes.HOLD_UNKNOWN, `ledger ${JSON.stringify(ledger)}: hold ${hold}: ${detail}`);
    this.ledger = ledger;
    this.hold = hold;
  }
}

/** The log holds an event the ledger could not have written; rebuilding stops at it. */
export class LedgerCorruptError extends MabeamError {
  readonly ledger: string;
  readonly seq: number;
  constructor(ledger: string, seq: number, problem: string, cause?: unknown) {
    super(
      LedgerErrorCodes.LEDGER_CORRUPT,
      `ledger ${JSON.stringify(ledger)}: event ${seq} cannot be replayed: ${problem}`,
      { cause },
    );
    this.ledger = ledger;
    this.seq = seq;
  }
}

/** An operation on a closed ledger. */
export class LedgerClosedError extends MabeamError {
  readonly ledger: string;
  constructor(ledger: string, operation?: string) {
    super(
      LedgerErrorCodes.LEDGER_CLOSED,
      `ledger ${JSON.stringify(ledger)} is closed${operation === undefined ? '' : `; ${operation} refused`}`,
    );
    this.ledger = ledger;
  }
}

/** The owner cannot be restarted any more; the request was not committed (safe to retry elsewhere). */
export class LedgerUnavailableError extends MabeamError {
  readonly ledger: string;
  readonly reason: unknown;
  constructor(ledger: string, reason: unknown) {
    super(
      LedgerErrorCodes.LEDGER_UNAVAILABLE,
      `ledger ${JSON.stringify(ledger)} has no owner any more (its supervisor exited with ${describe(reason)}); ` +
        'the request was not committed',
      { cause: reason instanceof Error ? reason : undefined },
    );
    this.ledger = ledger;
    this.reason = reason;
  }
}

// ---- public types ------------------------------------------------------------------------------

/**
 * An account: a name, or an agent (its ref or pid). An agent's account is keyed by its pid string
 * `<node.thread.id>`, so the ref, the pid and that string all name the same account. Pids do not
 * survive a process restart: accounts that must outlive one are best named.
 */
export type AccountId = string | Pid;

/** What each kind of transaction carries (besides its seq, timestamp and optional memo). */
interface TxBodies {
  /** An account opened with an initial balance (minted; may be 0). */
  open: { readonly account: string; readonly amount: number };
  /** Money minted into an account. */
  deposit: { readonly account: string; readonly amount: number };
  /** Money burned from an account. */
  withdraw: { readonly account: string; readonly amount: number };
  /** Both legs: `from` debited, `to` credited. */
  transfer: { readonly from: string; readonly to: string; readonly amount: number };
  /** Funds of `account` reserved under `hold` (still in its balance, no longer available). */
  hold: { readonly hold: number; readonly account: string; readonly amount: number };
  /** `amount` of the hold paid from `from` to `to`; the rest (`released`) is available again. */
  capture: {
    readonly hold: number;
    readonly from: string;
    readonly to: string;
    readonly amount: number;
    readonly released: number;
  };
  /** The hold ended without payment: its `amount` is available again. */
  release: { readonly hold: number; readonly account: string; readonly amount: number };
}

export type TransactionKind = keyof TxBodies;

/**
 * A transaction before the store numbers it. As the caller builds it, the fields only the book
 * knows are placeholders the owner fills in when it takes the request: a hold's id, a capture's
 * `from` and `released` (and its `amount`, NaN for "the whole hold"), a release's account and amount.
 */
type Op<K extends TransactionKind = TransactionKind> = K extends TransactionKind
  ? { readonly kind: K; readonly memo?: string } & TxBodies[K]
  : never;

/** A committed transaction: what the ledger's methods resolve with and `history` lists. */
export type LedgerTransaction<K extends TransactionKind = TransactionKind> = K extends TransactionKind
  ? Op<K> & {
      /** The seq of its event in the store. */
      readonly seq: number;
      /** Its commit timestamp (the store's clock). */
      readonly timestamp: number;
    }
  : never;

/** An account's committed funds. */
export interface AccountBalance {
  /** Everything in the account, holds included. Never negative. */
  readonly balance: number;
  /** The part reserved by active holds. */
  readonly held: number;
}

/** An active hold. */
export interface HoldInfo {
  readonly hold: number;
  readonly account: string;
  readonly amount: number;
  readonly memo?: string;
}

/** The committed state of a ledger (live with `snapshot()`, from the log with `Ledger.rebuild`). */
export interface LedgerSnapshot {
  readonly name: string;
  /** The seq of the last ledger event applied (0 before the first). */
  readonly lastSeq: number;
  /** Transactions applied. */
  readonly transactions: number;
  /** Accounts in key order. */
  readonly accounts: ReadonlyMap<string, AccountBalance>;
  /** Active holds in id order. */
  readonly holds: ReadonlyMap<number, HoldInfo>;
  /** The sum of all balances: changes only with open, deposit and withdraw. */
  readonly total: number;
}

/** Where a ledger starts: from a runtime (top level), or from an agent (its supervisor is linked to it). */
export type LedgerSite = Runtime | Pick<AgentContext, 'runtime' | 'spawnLink'>;

export interface LedgerOptions {
  /** The event store every transaction is appended to (and replayed from). Not closed by the ledger. */
  readonly store: EventStore;
  /**
   * The ledger's name, carried by each of its events, so several ledgers can share one store.
   * Default `'ledger'`. At most one live Ledger per store and name.
   */
  readonly name?: string;
  /** Transactions `history` keeps per account (the most recent). Default 1000; Infinity keeps all. */
  readonly historyLimit?: number;
  /** The owner's supervisor's restart intensity. Default: the kernel's. */
  readonly restart?: RestartIntensity;
}

export const LEDGER_DEFAULTS = Object.freeze({
  name: 'ledger',
  historyLimit: 1000,
  /** Requests the owner takes per message before letting other agents run. */
  drainBatch: 1000,
  /** Events per read while replaying the log. */
  replayPage: 5000,
});

/** The event type of each kind of transaction. */
export const LEDGER_EVENT_TYPES = Object.freeze({
  open: 'ledger.open',
  deposit: 'ledger.deposit',
  withdraw: 'ledger.withdraw',
  transfer: 'ledger.transfer',
  hold: 'ledger.hold',
  capture: 'ledger.capture',
  release: 'ledger.release',
} as const satisfies Record<TransactionKind, string>);

const KIND_OF_TYPE = new Map<string, TransactionKind>(
  Object.entries(LEDGER_EVENT_TYPES).map(([kind, type]) => [type, kind as TransactionKind]),
);
const EVENT_TYPES = Object.values(LEDGER_EVENT_TYPES);

export const LEDGER_SUBMIT_EVENT = Object.freeze(['mabeam', 'ledger', 'submit'] as const);
export const LEDGER_COMMIT_EVENT = Object.freeze(['mabeam', 'ledger', 'commit'] as const);
export const LEDGER_REJECT_EVENT = Object.freeze(['mabeam', 'ledger', 'reject'] as const);

// ---- input -------------------------------------------------------------------------------------

/** The account's key, or InvalidArgumentError naming `field`. */
function accountKey(id: unknown, field: string): string {
  if (typeof id === 'string') {
    if (id === '') throw new InvalidArgumentError(field, 'must be a non-empty name or an agent', id);
    return id;
  }
  if (isPid(id)) return `<${id.node}.${id.thread}.${id.id}>`;
  throw new InvalidArgumentError(field, 'must be an account name (a non-empty string) or an agent', id);
}

/** The most any amount, balance or the total may be: above it numbers are not exact. */
const MAX_AMOUNT = Number.MAX_SAFE_INTEGER;

/**
 * The part of its balance a debit must leave unspent, relative to the balance, once fractions are
 * involved: it covers the rounding of later debits and captures (see the module comment).
 */
export const ROUNDING_MARGIN = 2 ** -32;

function isAmount(v: unknown, allowZero: boolean): v is number {
  return typeof v === 'number' && Number.isFinite(v) && (allowZero ? v >= 0 : v > 0) && v <= MAX_AMOUNT;
}

function checkAmount(amount: unknown, field = 'amount', allowZero = false): number {
  if (!isAmount(amount, allowZero)) {
    throw new InvalidArgumentError(
      field,
      `must be a finite number ${allowZero ? '>= 0' : '> 0'} and at most Number.MAX_SAFE_INTEGER`,
      amount,
    );
  }
  return amount;
}

function checkMemo(memo: unknown): string | undefined {
  if (memo !== undefined && typeof memo !== 'string') {
    throw new InvalidArgumentError('memo', 'must be a string or undefined', memo);
  }
  return memo;
}

function checkHoldId(hold: unknown): number {
  if (!Number.isSafeInteger(hold) || (hold as number) < 1) {
    throw new InvalidArgumentError('hold', 'must be a hold id (an integer >= 1)', hold);
  }
  return hold as number;
}

function withMemo<T extends object>(body: T, memo: string | undefined): T & { memo?: string } {
  return memo === undefined ? body : { ...body, memo };
}

// ---- the book: committed state, one apply for live and replay ----------------------------------

interface Account {
  balance: number;
  held: number;
  holds: number;
  /** Debits submitted and not yet settled (live only): reserved, not spendable again. */
  pending: number;
  inflight: number;
  /** Recent transactions; trimmed to the limit lazily (amortized). */
  history: LedgerTransaction[];
}

interface HoldState {
  readonly hold: number;
  readonly account: string;
  readonly amount: number;
  readonly memo?: string;
  /** A capture or release of it is in flight (live only). */
  settling: boolean;
}

class Book {
  readonly name: string;
  readonly historyLimit: number;
  readonly accounts = new Map<string, Account>();
  readonly holds = new Map<number, HoldState>();
  lastSeq = 0;
  transactions = 0;
  /** The next hold id (one past the highest ever placed or attempted). */
  nextHold = 1;
  /** Minted minus burned, kept as it goes (the limit check on the total). */
  supply = 0;
  /** Mints in flight (live only), and how many. */
  minting = 0;
  mints = 0;

  constructor(name: string, historyLimit: number) {
    this.name = name;
    this.historyLimit = historyLimit;
  }

  account(key: string): Account | undefined {
    return this.accounts.get(key);
  }

  /**
   * Why `op` cannot be applied now, or undefined. `live` also counts what is in flight (debits
   * reserved, accounts being opened, holds being settled); a replay sees only committed state.
   */
  problem(op: Op, live: boolean, opening: ReadonlySet<string>): Error | undefined {
    const name = this.name;
    const funds = (key: string, amount: number): Error | undefined => {
      const a = this.accounts.get(key);
      if (a === undefined) return new AccountUnknownError(name, key);
      // Live: what `available` reports. Replay: the log's debits were checked live, so only an
      // overdraft beyond rounding is corrupt.
      const available = live ? spendable(a) : a.balance - a.held + roundingMargin(a);
      if (amount > available) {
        return new InsufficientFundsError(name, key, a.balance, Math.max(0, available), amount);
      }
      return undefined;
    };
    const known = (key: string): Error | undefined =>
      this.accounts.has(key) ? undefined : new AccountUnknownError(name, key);
    // Balances are never negative, so with the total (mints in flight included) at most
    // MAX_AMOUNT no balance can exceed it either: only mints need the check.
    const mint = (key: string, amount: number): Error | undefined =>
      this.supply + (live ? this.minting : 0) + amount > MAX_AMOUNT
        ? new BalanceLimitError(name, key, amount, this.supply)
        : undefined;
    switch (op.kind) {
      case 'open':
        return this.accounts.has(op.account) || opening.has(op.account)
          ? new AccountExistsError(name, op.account)
          : mint(op.account, op.amount);
      case 'deposit':
        return known(op.account) ?? mint(op.account, op.amount);
      case 'withdraw':
        return funds(op.account, op.amount);
      case 'transfer':
        return known(op.to) ?? funds(op.from, op.amount);
      case 'hold':
        return this.holds.has(op.hold)
          ? new HoldUnknownError(name, op.hold, 'id in use')
          : funds(op.account, op.amount);
      case 'capture':
      case 'release': {
        const h = this.holds.get(op.hold);
        if (h === undefined) return new HoldUnknownError(name, op.hold);
        if (live && h.settling)
          return new HoldUnknownError(name, op.hold, 'already being captured or released');
        if (op.kind === 'release') return undefined;
        if (op.amount > h.amount) {
          return new InvalidArgumentError(
            'capture amount',
            `must not exceed the hold's ${h.amount}`,
            op.amount,
          );
        }
        if (op.to === h.account) {
          return new InvalidArgumentError(
            'to',
            `must differ from the hold's account ${JSON.stringify(h.account)}`,
            op.to,
          );
        }
        return known(op.to);
      }
    }
  }

  /** Apply a committed transaction (already checked). */
  apply(tx: LedgerTransaction): void {
    const touched: Account[] = [];
    switch (tx.kind) {
      case 'open': {
        const a: Account = {
          balance: tx.amount,
          held: 0,
          holds: 0,
          pending: 0,
          inflight: 0,
          history: [],
        };
        this.accounts.set(tx.account, a);
        this.supply += tx.amount;
        touched.push(a);
        break;
      }
      case 'deposit': {
        const a = this.accounts.get(tx.account) as Account;
        a.balance += tx.amount;
        this.supply += tx.amount;
        touched.push(a);
        break;
      }
      case 'withdraw': {
        const a = this.accounts.get(tx.account) as Account;
        a.balance = debit(a.balance, tx.amount);
        this.supply -= tx.amount;
        touched.push(a);
        break;
      }
      case 'transfer': {
        const from = this.accounts.get(tx.from) as Account;
        const to = this.accounts.get(tx.to) as Account;
        from.balance = debit(from.balance, tx.amount);
        to.balance += tx.amount;
        touched.push(from, to);
        break;
      }
      case 'hold': {
        const a = this.accounts.get(tx.account) as Account;
        this.holds.set(
          tx.hold,
          withMemo({ hold: tx.hold, account: tx.account, amount: tx.amount, settling: false }, tx.memo),
        );
        a.held += tx.amount;
        a.holds++;
        if (tx.hold >= this.nextHold) this.nextHold = tx.hold + 1;
        touched.push(a);
        break;
      }
      case 'capture':
      case 'release': {
        const h = this.holds.get(tx.hold) as HoldState;
        this.holds.delete(tx.hold);
        const a = this.accounts.get(h.account) as Account;
        // With no hold left, held is exactly 0 (no float residue from adding and subtracting).
        a.held = --a.holds === 0 ? 0 : a.held - h.amount;
        touched.push(a);
        if (tx.kind === 'capture') {
          const to = this.accounts.get(tx.to) as Account;
          a.balance = debit(a.balance, tx.amount);
          to.balance += tx.amount;
          touched.push(to);
        }
        break;
      }
    }
    this.lastSeq = tx.seq;
    this.transactions++;
    const limit = this.historyLimit;
    if (limit > 0) {
      for (const a of touched) {
        a.history.push(tx);
        if (a.history.length >= 2 * limit + 16) a.history = a.history.slice(a.history.length - limit);
      }
    }
  }

  history(key: string): LedgerTransaction[] {
    const h = this.accounts.get(key)?.history ?? [];
    return h.length > this.historyLimit ? h.slice(h.length - this.historyLimit) : h.slice();
  }

  snapshot(): LedgerSnapshot {
    const accounts = new Map<string, AccountBalance>();
    let total = 0;
    for (const key of [...this.accounts.keys()].sort()) {
      const a = this.accounts.get(key) as Account;
      accounts.set(key, { balance: a.balance, held: a.held });
      total += a.balance;
    }
    const holds = new Map<number, HoldInfo>();
    for (const id of [...this.holds.keys()].sort((x, y) => x - y)) {
      const { settling: _, ...info } = this.holds.get(id) as HoldState;
      holds.set(id, info);
    }
    return {
      name: this.name,
      lastSeq: this.lastSeq,
      transactions: this.transactions,
      accounts,
      holds,
      total,
    };
  }
}

/** `balance - amount`, a rounding residue below 0 cut to 0 (the checks keep anything else out). */
function debit(balance: number, amount: number): number {
  return Math.max(0, balance - amount);
}

/** The unspent margin a debit must leave: 0 while everything in the account is an integer. */
function roundingMargin(a: Account): number {
  return Number.isInteger(a.balance) && Number.isInteger(a.held) && Number.isInteger(a.pending)
    ? 0
    : a.balance * ROUNDING_MARGIN;
}

/** What a debit submitted now may take (may be below 0); `available` reports it clamped at 0. */
function spendable(a: Account): number {
  return a.balance - a.held - a.pending - roundingMargin(a);
}

// ---- events ------------------------------------------------------------------------------------

/** The event payload of `op`: the op's fields plus the ledger's name. */
function eventData(ledger: string, op: Op): Record<string, unknown> {
  const { kind: _, ...body } = op;
  return { ledger, ...body };
}

/** The transaction an event of this ledger holds, or undefined for another ledger's; throws if malformed. */
function decode(ledger: string, event: StoredEvent): LedgerTransaction | undefined {
  const kind = KIND_OF_TYPE.get(event.type);
  const d = event.data as Record<string, unknown> | null;
  if (kind === undefined || d === null || typeof d !== 'object' || d.ledger !== ledger) return undefined;
  const str = (field: string): string => {
    const v = d[field];
    if (typeof v !== 'string' || v === '')
      throw new Error(`field ${field} is ${describe(v)}, not an account`);
    return v;
  };
  const num = (field: string, allowZero: boolean): number => {
    const v = d[field];
    if (!isAmount(v, allowZero)) throw new Error(`field ${field} is ${describe(v)}, not an amount`);
    return v;
  };
  const hold = (): number => {
    const v = d.hold;
    if (!Number.isSafeInteger(v) || (v as number) < 1)
      throw new Error(`field hold is ${describe(v)}, not a hold id`);
    return v as number;
  };
  if (d.memo !== undefined && typeof d.memo !== 'string') throw new Error(`memo is ${describe(d.memo)}`);
  const memo = d.memo as string | undefined;
  const at = { seq: event.seq, timestamp: event.timestamp };
  let body: Op;
  switch (kind) {
    case 'open':
      body = { kind, account: str('account'), amount: num('amount', true) };
      break;
    case 'deposit':
    case 'withdraw':
      body = { kind, account: str('account'), amount: num('amount', false) };
      break;
    case 'transfer':
      body = { kind, from: str('from'), to: str('to'), amount: num('amount', false) };
      break;
    case 'hold':
      body = { kind, hold: hold(), account: str('account'), amount: num('amount', false) };
      break;
    case 'capture':
      body = {
        kind,
        hold: hold(),
        from: str('from'),
        to: str('to'),
        amount: num('amount', true),
        released: num('released', true),
      };
      break;
    case 'release':
      body = { kind, hold: hold(), account: str('account'), amount: num('amount', false) };
      break;
  }
  return { ...withMemo(body, memo), ...at } as LedgerTransaction;
}

/** Replay the ledger's events from the store into a fresh book. */
async function replay(store: EventStore, name: string, historyLimit: number): Promise<Book> {
  const book = new Book(name, historyLimit);
  const none: ReadonlySet<string> = new Set();
  const page = LEDGER_DEFAULTS.replayPage;
  let fromSeq = 1;
  for (;;) {
    const events = await store.query({ types: EVENT_TYPES, fromSeq, limit: page });
    for (const event of events) {
      let tx: LedgerTransaction | undefined;
      try {
        tx = decode(name, event);
      } catch (error) {
        throw new LedgerCorruptError(name, event.seq, (error as Error).message, error);
      }
      if (tx === undefined) continue;
      const problem = book.problem(tx, false, none);
      if (problem !== undefined) throw new LedgerCorruptError(name, event.seq, problem.message, problem);
      if (tx.kind === 'capture' || tx.kind === 'release') {
        const h = book.holds.get(tx.hold) as HoldState;
        const expected = tx.kind === 'capture' ? h.amount - tx.amount : h.amount;
        if (
          (tx.kind === 'capture' ? tx.released : tx.amount) !== expected ||
          (tx.kind === 'capture' && tx.from !== h.account)
        ) {
          throw new LedgerCorruptError(
            name,
            event.seq,
            `does not match hold ${tx.hold} (${h.amount} on ${h.account})`,
          );
        }
      }
      book.apply(tx);
    }
    if (events.length < page) return book;
    fromSeq = (events[events.length - 1] as StoredEvent).seq + 1;
  }
}

// ---- the owner and its queue -------------------------------------------------------------------

const DRAIN: unique symbol = Symbol('mabeam.ledger.drain');

interface Request {
  readonly op: Op;
  resolve(tx: LedgerTransaction): void;
  reject(error: unknown): void;
}

/**
 * The state shared by the ledger's handle, its owner agent (restarted with the same core) and the
 * continuations of its appends. Not exported from the package.
 */
class LedgerCore {
  readonly name: string;
  readonly runtime: Runtime;
  readonly store: EventStore;
  readonly book: Book;
  /** Accounts whose `open` is in flight. */
  readonly opening = new Set<string>();
  supervisor: SupervisorRef | undefined;
  owner: AnyRef | undefined;
  closing = false;
  failure: Error | undefined;
  #queue: Request[] = [];
  #head = 0;
  #drainRequested = false;
  #inflight = 0;
  #idle: (() => void)[] = [];

  constructor(name: string, runtime: Runtime, store: EventStore, book: Book) {
    this.name = name;
    this.runtime = runtime;
    this.store = store;
    this.book = book;
  }

  get queued(): number {
    return this.#queue.length - this.#head;
  }

  get inflight(): number {
    return this.#inflight;
  }

  refusal(operation: string): Error | undefined {
    if (this.closing || this.failure instanceof LedgerClosedError)
      return new LedgerClosedError(this.name, operation);
    return this.failure;
  }

  enqueue(request: Request): void {
    this.#queue.push(request);
    this.#requestDrain();
  }

  attachOwner(owner: AnyRef): void {
    this.owner = owner;
    this.#drainRequested = false;
    // What a dead owner left queued is this one's first job.
    if (this.queued > 0) this.#requestDrain();
  }

  detachOwner(owner: AnyRef): void {
    if (this.owner?.equals(owner)) {
      this.owner = undefined;
      this.#drainRequested = false;
    }
  }

  #requestDrain(): void {
    if (this.#drainRequested) return;
    this.#drainRequested = true;
    // A microtask away, so everything requested in this synchronous run is taken in one message.
    queueMicrotask(this.#sendDrain);
  }

  readonly #sendDrain = (): void => {
    const owner = this.owner;
    // No owner (it is being restarted): its successor drains on start (attachOwner).
    if (owner === undefined || !this.runtime.send(owner, DRAIN)) this.#drainRequested = false;
  };

  /** The owner's DRAIN: take up to a batch of requests, stopping at once if the owner was killed. */
  drain(self: AnyRef): void {
    this.#drainRequested = false;
    let n = LEDGER_DEFAULTS.drainBatch;
    while (n-- > 0 && this.#head < this.#queue.length && this.owner?.equals(self)) {
      const req = this.#queue[this.#head++] as Request;
      this.#submit(req);
    }
    this.#compact();
    if (this.queued > 0 && this.owner?.equals(self)) this.#requestDrain();
  }

  /** Take everything queued (orderly stop of the owner). */
  drainAll(): void {
    while (this.#head < this.#queue.length) this.#submit(this.#queue[this.#head++] as Request);
    this.#compact();
  }

  #compact(): void {
    if (this.#head === this.#queue.length) {
      this.#queue = [];
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
  }

  /** Check, reserve and hand to the store: one synchronous step, so no crash falls inside it. */
  #submit(req: Request): void {
    let op = req.op;
    if (op.kind === 'hold') op = { ...op, hold: this.book.nextHold++ };
    else if (op.kind === 'capture' || op.kind === 'release') op = this.#completeSettlement(op);
    const problem = this.book.problem(op, true, this.opening);
    if (problem !== undefined) {
      this.#rejected(req, op, problem);
      return;
    }
    this.#reserve(op, +1);
    this.#inflight++;
    this.store.append({ type: LEDGER_EVENT_TYPES[op.kind], data: eventData(this.name, op) }).then(
      (event) => this.#committed(req, op, event),
      (error: unknown) => this.#aborted(req, op, error),
    );
    const tel = this.runtime.telemetry;
    if (tel.enabled)
      tel.execute(LEDGER_SUBMIT_EVENT, { amount: op.amount }, { ledger: this.name, kind: op.kind });
  }

  /** A capture or release names only the hold; fill in what the hold says (if it exists). */
  #completeSettlement(op: Op<'capture'> | Op<'release'>): Op {
    const h = this.book.holds.get(op.hold);
    if (h === undefined) return op;
    if (op.kind === 'release')
      return withMemo({ kind: 'release', hold: h.hold, account: h.account, amount: h.amount }, op.memo);
    const amount = Number.isNaN(op.amount) ? h.amount : op.amount;
    return withMemo(
      {
        kind: 'capture',
        hold: h.hold,
        from: h.account,
        to: op.to,
        amount,
        released: Math.max(0, h.amount - amount),
      },
      op.memo,
    );
  }

  /** Reserve (+1) or free (-1) what `op` takes (and mints, for the total's limit) while in flight. */
  #reserve(op: Op, sign: 1 | -1): void {
    const book = this.book;
    const mint = (amount: number): void => {
      book.mints += sign;
      book.minting = book.mints === 0 ? 0 : book.minting + sign * amount;
    };
    const debit = (key: string, amount: number): void => {
      const a = book.account(key);
      if (a === undefined) return;
      a.inflight += sign;
      // With nothing in flight, pending is exactly 0 (no float residue).
      a.pending = a.inflight === 0 ? 0 : a.pending + sign * amount;
    };
    switch (op.kind) {
      case 'open':
        if (sign > 0) this.opening.add(op.account);
        else this.opening.delete(op.account);
        mint(op.amount);
        return;
      case 'deposit':
        mint(op.amount);
        return;
      case 'withdraw':
      case 'hold':
        debit(op.account, op.amount);
        return;
      case 'transfer':
        debit(op.from, op.amount);
        return;
      case 'capture':
      case 'release': {
        // The held funds cover it; only stop a second settlement of the same hold.
        const h = book.holds.get(op.hold);
        if (h !== undefined) h.settling = sign > 0;
        return;
      }
    }
  }

  #committed(req: Request, op: Op, event: StoredEvent): void {
    this.#reserve(op, -1);
    const tx = { ...op, seq: event.seq, timestamp: event.timestamp } as LedgerTransaction;
    this.book.apply(tx);
    this.#settled();
    const tel = this.runtime.telemetry;
    if (tel.enabled) {
      tel.execute(
        LEDGER_COMMIT_EVENT,
        { amount: op.amount },
        { ledger: this.name, kind: op.kind, seq: event.seq },
      );
    }
    req.resolve(tx);
  }

  #aborted(req: Request, op: Op, error: unknown): void {
    this.#reserve(op, -1);
    this.#settled();
    this.#rejected(req, op, error);
  }

  #rejected(req: Request, op: Op, error: unknown): void {
    const tel = this.runtime.telemetry;
    if (tel.enabled) {
      const code = error instanceof MabeamError ? error.code : undefined;
      tel.execute(
        LEDGER_REJECT_EVENT,
        // NaN stands for "the whole hold" of a capture whose hold is not active: no amount known.
        { amount: Number.isNaN(op.amount) ? 0 : op.amount },
        { ledger: this.name, kind: op.kind, code, error },
      );
    }
    req.reject(error);
  }

  #settled(): void {
    if (--this.#inflight > 0) return;
    const idle = this.#idle;
    this.#idle = [];
    for (const wake of idle) wake();
  }

  /** Resolves once nothing submitted is waiting for the store. */
  whenSettled(): Promise<void> {
    if (this.#inflight === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /** The ledger is finished: refuse from now on, reject what is still queued (none of it was submitted). */
  finish(failure: Error): void {
    if (this.failure !== undefined) return;
    this.failure = failure;
    const queue = this.#queue.slice(this.#head);
    this.#queue = [];
    this.#head = 0;
    for (const req of queue) req.reject(failure);
  }
}

/** The owner agent: the only one that checks and submits transactions. Its state is the shared core. */
const LedgerOwner = behaviour<LedgerCore, LedgerCore, never, never, never, typeof DRAIN>({
  init(core, ctx) {
    const self = ctx.self;
    ctx.runtime.onExit(self, () => core.detachOwner(self));
    core.attachOwner(self);
    return core;
  },
  handleInfo(msg, core, ctx) {
    if (msg === DRAIN) core.drain(ctx.self);
    return core;
  },
  terminate(reason, core) {
    // An orderly stop (close, runtime shutdown) submits what callers are waiting for. After a
    // crash, the restarted owner does that instead.
    if (isNormalExit(reason)) core.drainAll();
  },
});

// ---- the service -------------------------------------------------------------------------------

function checkName(name: unknown): string {
  if (typeof name !== 'string' || name === '')
    throw new InvalidArgumentError('ledger name', 'must be a non-empty string', name);
  return name;
}

function checkHistoryLimit(limit: unknown): number {
  if (limit === Number.POSITIVE_INFINITY) return limit;
  if (!Number.isSafeInteger(limit) || (limit as number) < 0) {
    throw new InvalidArgumentError('historyLimit', 'must be an integer >= 0 or Infinity', limit);
  }
  return limit as number;
}

function checkStore(store: unknown): EventStore {
  if (store === null || typeof store !== 'object' || typeof (store as EventStore).append !== 'function') {
    throw new InvalidArgumentError('ledger option "store"', 'must be an EventStore', store);
  }
  return store as EventStore;
}

const OPTION_KEYS = new Set(['store', 'name', 'historyLimit', 'restart']);

/**
 * Accounts, transfers, mint and burn, holds: each transaction one event in the store, applied only
 * once committed (see the module comment for the ordering and what a crash does). Start one with
 * `Ledger.start`.
 */
export class Ledger {
  readonly #core: LedgerCore;
  #closed: Promise<void> | undefined;

  private constructor(core: LedgerCore) {
    this.#core = core;
  }

  /**
   * Replay the ledger's events from `options.store`, then start its owner under a supervisor.
   * Rejects with InvalidArgumentError for bad options and LedgerCorruptError (E_LEDGER_CORRUPT)
   * if the log holds an event that cannot be replayed.
   *
   * @example
   * const ledger = await Ledger.start(runtime, { store });
   * await ledger.open('alice', 100);
   */
  static async start(site: LedgerSite, options: LedgerOptions): Promise<Ledger> {
    const runtime = site instanceof Runtime ? site : site?.runtime;
    if (!(runtime instanceof Runtime)) {
      throw new InvalidArgumentError('ledger site', 'must be a runtime or an agent context', site);
    }
    if (options === null || typeof options !== 'object') {
      throw new InvalidArgumentError('ledger options', 'must be an object with a store', options);
    }
    for (const key of Object.keys(options)) {
      if (!OPTION_KEYS.has(key)) throw new InvalidArgumentError(`ledger option "${key}"`, 'unknown option');
    }
    const store = checkStore(options.store);
    const name = checkName(options.name ?? LEDGER_DEFAULTS.name);
    const historyLimit = checkHistoryLimit(options.historyLimit ?? LEDGER_DEFAULTS.historyLimit);
    const book = await replay(store, name, historyLimit);
    const core = new LedgerCore(name, runtime, store, book);
    const sup = await Supervisor.start(site, {
      strategy: 'one_for_one',
      ...(options.restart ?? {}),
      children: [
        Supervisor.childSpec('owner', LedgerOwner, core, {
          // Trapping exits makes the supervisor's shutdown run terminate, which submits the queue.
          options: { trapExit: true },
          shutdown: 'infinity',
        }),
      ],
    });
    core.supervisor = sup;
    runtime.onExit(sup, (reason) => {
      core.finish(
        core.closing || isNormalExit(reason)
          ? new LedgerClosedError(core.name)
          : new LedgerUnavailableError(core.name, reason),
      );
    });
    return new Ledger(core);
  }

  /**
   * The committed state of ledger `name` (default `'ledger'`) rebuilt from `store` by replaying
   * its events in seq order. Equal to a live ledger's `snapshot()` once its in-flight transactions
   * have settled. Rejects with LedgerCorruptError for an event that cannot be replayed.
   */
  static async rebuild(store: EventStore, options: { name?: string } = {}): Promise<LedgerSnapshot> {
    const book = await replay(checkStore(store), checkName(options.name ?? LEDGER_DEFAULTS.name), 0);
    return book.snapshot();
  }

  /** The ledger's name (carried by its events). */
  get name(): string {
    return this.#core.name;
  }

  /** The owner agent, or undefined while its supervisor restarts it (or after the ledger finished). */
  get owner(): AnyRef | undefined {
    return this.#core.owner;
  }

  /** The owner's supervisor. */
  get supervisor(): SupervisorRef {
    return this.#core.supervisor as SupervisorRef;
  }

  /** The store the ledger appends to. */
  get store(): EventStore {
    return this.#core.store;
  }

  /** Requests waiting for the owner. */
  get queued(): number {
    return this.#core.queued;
  }

  /** Transactions handed to the store and not yet committed (or refused). */
  get inflight(): number {
    return this.#core.inflight;
  }

  get closed(): boolean {
    return this.#core.closing || this.#core.failure !== undefined;
  }

  #submit<K extends TransactionKind>(op: Op<K>): Promise<LedgerTransaction<K>> {
    const refused = this.#core.refusal(op.kind);
    if (refused !== undefined) return Promise.reject(refused);
    return new Promise((resolve, reject) => {
      this.#core.enqueue({ op, resolve: resolve as (tx: LedgerTransaction) => void, reject });
    });
  }

  /** Run `build` (input checks) and submit its op; a bad argument becomes a rejected promise. */
  #request<K extends TransactionKind>(build: () => Op<K>): Promise<LedgerTransaction<K>> {
    let op: Op<K>;
    try {
      op = build();
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#submit(op);
  }

  /**
   * Open `account` with `initial` funds (minted; default 0). Rejects with AccountExistsError
   * (E_ACCOUNT_EXISTS) if it exists or is being opened. The account exists once this resolves.
   */
  open(account: AccountId, initial = 0, memo?: string): Promise<LedgerTransaction<'open'>> {
    return this.#request(() =>
      withMemo(
        {
          kind: 'open' as const,
          account: accountKey(account, 'account'),
          amount: checkAmount(initial, 'initial', true),
        },
        checkMemo(memo),
      ),
    );
  }

  /**
   * Move `amount` from `from` to `to`, atomically: one event carries both legs. Resolves once it
   * is committed (and applied). Rejects, changing nothing and appending nothing, with
   * InsufficientFundsError (E_INSUFFICIENT_FUNDS) when `from` has less available, AccountUnknownError
   * (E_ACCOUNT_UNKNOWN) naming the unknown account, InvalidArgumentError (E_INVALID_ARGUMENT)
   * for an amount that is not a finite number in (0, Number.MAX_SAFE_INTEGER] or `from` equal to
   * `to`; with the store's error (E_STORE_*) when the store refused the commit.
   */
  transfer(
    from: AccountId,
    to: AccountId,
    amount: number,
    memo?: string,
  ): Promise<LedgerTransaction<'transfer'>> {
    return this.#request(() => {
      const f = accountKey(from, 'from');
      const t = accountKey(to, 'to');
      checkAmount(amount);
      if (f === t) throw new InvalidArgumentError('to', 'must differ from "from"', to);
      return withMemo({ kind: 'transfer' as const, from: f, to: t, amount }, checkMemo(memo));
    });
  }

  /**
   * Mint `amount` into `account` (explicitly: the total grows). Errors as for `transfer`, and
   * BalanceLimitError (E_LEDGER_BALANCE_LIMIT) if the total would go above
   * Number.MAX_SAFE_INTEGER (as for `open`).
   */
  deposit(account: AccountId, amount: number, memo?: string): Promise<LedgerTransaction<'deposit'>> {
    return this.#request(() =>
      withMemo(
        { kind: 'deposit' as const, account: accountKey(account, 'account'), amount: checkAmount(amount) },
        checkMemo(memo),
      ),
    );
  }

  /** Burn `amount` from `account` (explicitly: the total shrinks). Errors as for `transfer`. */
  withdraw(account: AccountId, amount: number, memo?: string): Promise<LedgerTransaction<'withdraw'>> {
    return this.#request(() =>
      withMemo(
        { kind: 'withdraw' as const, account: accountKey(account, 'account'), amount: checkAmount(amount) },
        checkMemo(memo),
      ),
    );
  }

  /**
   * Reserve `amount` of `account` (escrow, say for a pending auction): it stays in the balance but
   * is no longer available. Resolves with the transaction, whose `hold` id `capture` and `release`
   * take. Errors as for `withdraw`.
   */
  hold(account: AccountId, amount: number, memo?: string): Promise<LedgerTransaction<'hold'>> {
    return this.#request(() =>
      withMemo(
        {
          kind: 'hold' as const,
          hold: 0,
          account: accountKey(account, 'account'),
          amount: checkAmount(amount),
        },
        checkMemo(memo),
      ),
    );
  }

  /**
   * Pay `amount` (default: all of it) of hold `hold` to `to`, and make the rest available again,
   * in one event. Rejects with HoldUnknownError (E_HOLD_UNKNOWN) for a hold that is not active,
   * InvalidArgumentError for an amount above the hold's or `to` equal to the hold's account,
   * AccountUnknownError for an unknown `to`.
   */
  capture(
    hold: number,
    to: AccountId,
    amount?: number,
    memo?: string,
  ): Promise<LedgerTransaction<'capture'>> {
    return this.#request(() =>
      withMemo(
        {
          kind: 'capture' as const,
          hold: checkHoldId(hold),
          from: '',
          to: accountKey(to, 'to'),
          // NaN stands for "the whole hold" until the owner reads the hold's amount.
          amount: amount === undefined ? Number.NaN : checkAmount(amount, 'amount', true),
          released: 0,
        },
        checkMemo(memo),
      ),
    );
  }

  /** End hold `hold` without payment: its funds are available again. HoldUnknownError if not active. */
  release(hold: number, memo?: string): Promise<LedgerTransaction<'release'>> {
    return this.#request(() =>
      withMemo(
        { kind: 'release' as const, hold: checkHoldId(hold), account: '', amount: 0 },
        checkMemo(memo),
      ),
    );
  }

  // ---- synchronous reads of the committed state ------------------------------------------------

  #account(account: AccountId): Account {
    const key = accountKey(account, 'account');
    const a = this.#core.book.account(key);
    if (a === undefined) throw new AccountUnknownError(this.#core.name, key);
    return a;
  }

  /** Whether `account` exists (committed). False for anything that is not an account id. */
  has(account: AccountId): boolean {
    try {
      return this.#core.book.account(accountKey(account, 'account')) !== undefined;
    } catch {
      return false;
    }
  }

  /** The committed balance, holds included. Throws AccountUnknownError for an unknown account. */
  balance(account: AccountId): number {
    return this.#account(account).balance;
  }

  /** The part of the balance reserved by active holds. */
  held(account: AccountId): number {
    return this.#account(account).held;
  }

  /**
   * What a debit submitted now could take: balance minus holds minus debits in flight, minus the
   * rounding margin when the account is not all integers (see the module comment); never below
   * 0, and a debit of exactly this much is accepted. Throws AccountUnknownError for an unknown
   * account.
   */
  available(account: AccountId): number {
    return Math.max(0, spendable(this.#account(account)));
  }

  /** The account's most recent committed transactions (up to `historyLimit`), oldest first. */
  history(account: AccountId): LedgerTransaction[] {
    this.#account(account);
    return this.#core.book.history(accountKey(account, 'account'));
  }

  /** Account keys (names, and `<node.thread.id>` for agents), sorted. */
  accounts(): string[] {
    return [...this.#core.book.accounts.keys()].sort();
  }

  /** An active hold, or undefined. */
  holdInfo(hold: number): HoldInfo | undefined {
    const h = this.#core.book.holds.get(hold);
    if (h === undefined) return undefined;
    const { settling: _, ...info } = h;
    return info;
  }

  /** The sum of all committed balances. */
  total(): number {
    let t = 0;
    for (const a of this.#core.book.accounts.values()) t += a.balance;
    return t;
  }

  /** The committed state, comparable with `Ledger.rebuild`. */
  snapshot(): LedgerSnapshot {
    return this.#core.book.snapshot();
  }

  /** Resolves once every transaction handed to the store has been committed or refused. */
  settled(): Promise<void> {
    return this.#core.whenSettled();
  }

  /**
   * Refuse new requests (E_LEDGER_CLOSED), submit what is queued, wait for everything in flight
   * to settle, and stop the owner. The store stays open. Idempotent.
   */
  close(): Promise<void> {
    if (this.#closed === undefined) this.#closed = this.#close();
    return this.#closed;
  }

  async #close(): Promise<void> {
    const core = this.#core;
    core.closing = true;
    const sup = core.supervisor;
    if (sup !== undefined && core.runtime.isAlive(sup)) {
      // The owner's terminate submits the queue; the supervisor's exit hook then finishes the core.
      await core.runtime.stop(sup, 'shutdown').catch(() => {});
    }
    core.finish(new LedgerClosedError(core.name));
    await core.whenSettled();
  }
}

/** Start a ledger (same as `Ledger.start`). */
export function startLedger(site: LedgerSite, options: LedgerOptions): Promise<Ledger> {
  return Ledger.start(site, options);
}

// ---- adapters for auctions and the marketplace -------------------------------------------------

/** What `budgetOf` answers for a bidder without an account. */
export interface BudgetOptions {
  /**
   * `zero` (default): it can pay nothing, so any bid is over budget. `unlimited`: undefined, which
   * auctions read as "no limit" (settlement will still fail for want of an account).
   */
  readonly unknown?: 'zero' | 'unlimited';
}

/**
 * A budget lookup for bid validation: what `bidder` could pay now (`available`: balance minus
 * holds minus debits in flight). A bidder without an account (or that is not an account id) gets
 * 0 by default, since auctions read undefined as "no limit"; see BudgetOptions.
 */
export function budgetOf(
  ledger: Ledger,
  options: BudgetOptions = {},
): (bidder: AccountId) => number | undefined {
  const unknown = options.unknown ?? 'zero';
  if (unknown !== 'zero' && unknown !== 'unlimited') {
    throw new InvalidArgumentError('budgetOf option "unknown"', "must be 'zero' or 'unlimited'", unknown);
  }
  const none = unknown === 'zero' ? 0 : undefined;
  return (bidder) => (ledger.has(bidder) ? ledger.available(bidder) : none);
}

/**
 * Escrow for the marketplace's `payments` option: `reserve` places a hold for the price (and
 * answers its id), `capture` pays all of it to the provider, `release` frees it. A refusal of the
 * hold (E_INSUFFICIENT_FUNDS, E_ACCOUNT_UNKNOWN) is the marketplace's "cannot pay".
 *
 * @example
 * const market = await Marketplace.start(runtime, { payments: escrow(ledger) });
 */
export interface Escrow {
  reserve(account: string, amount: number): Promise<number>;
  capture(hold: number, to: string): Promise<void>;
  release(hold: number): Promise<void>;
}

/** An Escrow over `ledger`'s hold, capture and release (each with `memo`, default 'escrow'). */
export function escrow(ledger: Ledger, memo = 'escrow'): Escrow {
  checkMemo(memo);
  return {
    reserve: async (account, amount) => (await ledger.hold(account, amount, memo)).hold,
    capture: async (hold, to) => {
      await ledger.capture(hold, to, undefined, memo);
    },
    release: async (hold) => {
      await ledger.release(hold, memo);
    },
  };
}

/** A can-pay check (for the marketplace): whether `account` exists and has `amount` available now. */
export function canPay(ledger: Ledger): (account: AccountId, amount: number) => boolean {
  return (account, amount) => ledger.has(account) && ledger.available(account) >= amount;
}

/**
 * A settlement function: `transfer(from, to, amount)`, resolving once committed. An amount of 0
 * (a free win) settles at once without a transaction; anything else is checked as by `transfer`.
 */
export function settle(
  ledger: Ledger,
  memo = 'settle',
): (from: AccountId, to: AccountId, amount: number) => Promise<void> {
  return async (from, to, amount) => {
    if (amount === 0) return;
    await ledger.transfer(from, to, amount, memo);
  };
}
