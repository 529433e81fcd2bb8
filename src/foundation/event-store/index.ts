/**
 * The durable event store: an append-only log with gapless sequence numbers, queries by type, time
 * and correlation id, catch-up-then-live subscriptions, and one writer agent that group-commits.
 * Backends: SQLite (the embedded default) and memory.
 */
export {
  DeliveryError,
  type EventStoreErrorCode,
  EventStoreErrorCodes,
  StoreClosedError,
  StoreOpenError,
  StoreUnavailableError,
  StoreWriteError,
  SubscriptionEndedError,
} from './errors.js';
export { MemoryEventLog } from './memory.js';
export { SqliteEventLog, type SqliteEventLogOptions, type SqliteSynchronous } from './sqlite.js';
export {
  COMMIT_EVENT,
  EVENT_STORE_DEFAULTS,
  EventStore,
  type EventStoreOptions,
  type StoreSite,
  SUBSCRIBER_FAILED_EVENT,
  startEventStore,
  startMemoryEventStore,
  type TimestampClock,
} from './store.js';
export {
  type EventHandler,
  type EventMessage,
  SUBSCRIBE_DEFAULTS,
  type SubscribeOptions,
  type Subscriber,
  type Subscription,
  type SubscriptionEnd,
  type SubscriptionState,
} from './subscription.js';
export type {
  EventBackend,
  EventInput,
  EventMetadata,
  EventQuery,
  EventRecord,
  PruneBound,
  ResolvedQuery,
  StoredEvent,
} from './types.js';
