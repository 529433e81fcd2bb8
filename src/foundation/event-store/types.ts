/**
 * The event store's data model and its backend interface. Events are appended to one log; the log
 * gives each a sequence number (gapless and increasing: 1, 2, 3, ...) and a timestamp at commit.
 * Backends (memory, SQLite, later NATS JetStream) implement `EventBackend`; the store on top of
 * them (store.ts) owns batching, the writer agent and subscriptions.
 */

/** JSON-compatible metadata of an event (tracing ids, the producing agent, ...). */
export type EventMetadata = Record<string, unknown>;

/** What a producer appends. `data` and `metadata` are stored as JSON (they must survive a round trip). */
export interface EventInput<T = unknown> {
  /** The event's type, for example `'order.placed'`; non-empty. Indexed. */
  readonly type: string;
  /** The payload; anything `JSON.stringify` accepts (not `undefined`, functions, bigints, cycles). */
  readonly data: T;
  /** Groups the events of one workflow or request. Indexed. */
  readonly correlationId?: string;
  /** The id (often the seq, as a string) of the event or command that caused this one. */
  readonly causationId?: string;
  readonly metadata?: EventMetadata;
}

/**
 * An event as committed: the input plus its sequence number and timestamp. Optional fields are
 * present only when they were set. Treat it as read-only: live subscribers of one store share the
 * same object (reads from the log always build fresh ones).
 */
export interface StoredEvent<T = unknown> extends EventInput<T> {
  /** Position in the log: the first event is 1, each commit continues where the last one ended. */
  readonly seq: number;
  /**
   * Commit time from the store's clock (epoch milliseconds by default). Never decreases along
   * `seq`: a clock that steps back is clamped to the last timestamp, so time ranges and seq
   * ranges agree. All events of one transaction share one timestamp.
   */
  readonly timestamp: number;
}

/** Which events `query` returns. Every filter is optional; together they must all hold. */
export interface EventQuery {
  /** Only events of this type. */
  readonly type?: string;
  /** Only events of one of these types (combined with `type`, an event must match both). */
  readonly types?: readonly string[];
  /** Only events with `timestamp >= from`. */
  readonly from?: number;
  /** Only events with `timestamp < to` (half-open, so consecutive windows do not overlap). */
  readonly to?: number;
  readonly correlationId?: string;
  /** Only events with `seq >= fromSeq`. */
  readonly fromSeq?: number;
  /** Only events with `seq < toSeq` (half-open; page backwards with `toSeq` = the last seq seen). */
  readonly toSeq?: number;
  /** At most this many events (the first ones in the chosen order). */
  readonly limit?: number;
  /** `asc` (default): oldest first; `desc`: newest first. */
  readonly order?: 'asc' | 'desc';
}

/**
 * What `prune` removes: always a prefix of the log (so what stays is one contiguous run of seqs).
 * `beforeSeq`: events with `seq < beforeSeq`. `beforeTime`: events with `timestamp < beforeTime`
 * (a prefix too, since timestamps never decrease along seq).
 */
export type PruneBound = { readonly beforeSeq: number } | { readonly beforeTime: number };

/** An event as a backend stores it: seq and timestamp assigned, payloads already JSON text. */
export interface EventRecord {
  readonly seq: number;
  readonly type: string;
  /** `data` as JSON text. */
  readonly data: string;
  readonly timestamp: number;
  readonly correlationId: string | undefined;
  readonly causationId: string | undefined;
  /** `metadata` as JSON text, if set. */
  readonly metadata: string | undefined;
}

/** A validated query with every option resolved (`type` folded into `types`). */
export interface ResolvedQuery {
  readonly types: readonly string[] | undefined;
  readonly from: number | undefined;
  readonly to: number | undefined;
  readonly correlationId: string | undefined;
  readonly fromSeq: number | undefined;
  readonly toSeq: number | undefined;
  readonly limit: number | undefined;
  readonly order: 'asc' | 'desc';
}

/**
 * A storage backend. Synchronous on purpose: the embedded backends (memory, better-sqlite3) are,
 * and a synchronous commit cannot be interrupted halfway by anything else on the thread, which is
 * what makes the store's writer crash semantics simple (see store.ts). Only the store's writer
 * agent calls `append` and `prune`; reads may come from anywhere on the thread.
 */
export interface EventBackend {
  /** A short name for telemetry and messages: `memory`, `sqlite`. */
  readonly kind: string;
  /** Where the log lives (a file path, or `memory`), for messages. */
  readonly location: string;
  /** Highest seq ever committed, 0 for a new log. Pruning never lowers it (seqs are never reused). */
  readonly lastSeq: number;
  /** Timestamp of the event at `lastSeq` (0 for a new log); kept across pruning as well. */
  readonly lastTimestamp: number;
  readonly closed: boolean;
  /**
   * Commit `records` (consecutive seqs from `lastSeq + 1`, non-decreasing timestamps) in one
   * atomic transaction, durable when this returns. On failure it throws and commits nothing.
   */
  append(records: readonly EventRecord[]): void;
  /** Up to `limit` events with `seq >= fromSeq`, oldest first (the subscription catch-up read). */
  readFrom(fromSeq: number, limit: number): StoredEvent[];
  query(query: ResolvedQuery): StoredEvent[];
  /** Remove a prefix of the log (see PruneBound). Returns how many events were removed. */
  prune(bound: PruneBound): number;
  /** Release the storage. Idempotent. */
  close(): void;
}
