/**
 * Typed errors of the event store. Each condition has its own stable code (never reused); bad
 * input is the kernel's InvalidArgumentError (E_INVALID_ARGUMENT), naming the offending field.
 */
import { describe, MabeamError } from '../../kernel/index.js';

export const EventStoreErrorCodes = {
  /** The store has been closed (or its runtime shut it down); nothing more is accepted. */
  STORE_CLOSED: 'E_STORE_CLOSED',
  /**
   * The store's writer is gone for good (its supervisor exceeded its restart intensity). An append
   * rejected with this code was not committed.
   */
  STORE_UNAVAILABLE: 'E_STORE_UNAVAILABLE',
  /** The backend failed to commit (disk full, I/O error, a foreign writer); nothing was committed. */
  STORE_WRITE_FAILED: 'E_STORE_WRITE_FAILED',
  /** The backend could not be opened (bad path, not a database, an incompatible schema). */
  STORE_OPEN_FAILED: 'E_STORE_OPEN_FAILED',
  /** An event could not be handed to a subscriber agent (it was gone or its mailbox refused it). */
  STORE_DELIVERY_FAILED: 'E_STORE_DELIVERY_FAILED',
  /** A subscription ended before what was awaited on it happened (see `Subscription.caughtUp`). */
  STORE_SUBSCRIPTION_ENDED: 'E_STORE_SUBSCRIPTION_ENDED',
} as const;

export type EventStoreErrorCode = (typeof EventStoreErrorCodes)[keyof typeof EventStoreErrorCodes];

/** An operation on a store that has been closed. */
export class StoreClosedError extends MabeamError {
  readonly store: string;
  constructor(store: string, operation?: string) {
    super(
      EventStoreErrorCodes.STORE_CLOSED,
      `event store ${store} is closed${operation === undefined ? '' : `; ${operation} refused`}`,
    );
    this.store = store;
  }
}

/** The writer cannot be restarted any more; the append was not committed. */
export class StoreUnavailableError extends MabeamError {
  readonly store: string;
  readonly reason: unknown;
  constructor(store: string, reason: unknown) {
    super(
      EventStoreErrorCodes.STORE_UNAVAILABLE,
      `event store ${store} has no writer any more (its supervisor exited with ${describe(reason)}); ` +
        'the write was not committed',
      { cause: reason instanceof Error ? reason : undefined },
    );
    this.store = store;
    this.reason = reason;
  }
}

/** The backend refused a transaction; none of its events were committed. */
export class StoreWriteError extends MabeamError {
  readonly store: string;
  constructor(store: string, cause: unknown) {
    super(
      EventStoreErrorCodes.STORE_WRITE_FAILED,
      `event store ${store} failed to commit (nothing of this write was committed): ${describe(cause)}`,
      { cause },
    );
    this.store = store;
  }
}

/** The backend could not be opened. */
export class StoreOpenError extends MabeamError {
  readonly location: string;
  constructor(location: string, cause: unknown) {
    super(EventStoreErrorCodes.STORE_OPEN_FAILED, `cannot open event store ${location}: ${describe(cause)}`, {
      cause,
    });
    this.location = location;
  }
}

/** An event could not be sent to a subscriber agent, so its subscription ended (no silent gap). */
export class DeliveryError extends MabeamError {
  readonly subscriber: string;
  readonly seq: number;
  constructor(subscriber: string, seq: number, cause?: unknown) {
    super(
      EventStoreErrorCodes.STORE_DELIVERY_FAILED,
      `event ${seq} could not be delivered to subscriber ${subscriber}` +
        (cause === undefined
          ? ' (it has exited or its mailbox dropped the message)'
          : `: ${describe(cause)}`),
      { cause },
    );
    this.subscriber = subscriber;
    this.seq = seq;
  }
}

/** A subscription ended while something waited for it (for example for it to catch up). */
export class SubscriptionEndedError extends MabeamError {
  readonly subscription: number;
  readonly reason: string;
  constructor(subscription: number, reason: string, cause?: unknown) {
    super(
      EventStoreErrorCodes.STORE_SUBSCRIPTION_ENDED,
      `subscription ${subscription} ended (${reason})${cause === undefined ? '' : `: ${describe(cause)}`}`,
      { cause },
    );
    this.subscription = subscription;
    this.reason = reason;
  }
}
