/**
 * Checking and encoding what crosses the store's API: events in (validated and turned into JSON on
 * the caller's side, so a bad event is refused at once and can never fail a shared transaction),
 * events out (parsed into fresh objects), queries and prune bounds.
 */
import { InvalidArgumentError } from '../../kernel/index.js';
import type { EventQuery, EventRecord, PruneBound, ResolvedQuery, StoredEvent } from './types.js';

/** An event checked and encoded, waiting for its seq and timestamp. */
export interface PreparedEvent {
  readonly type: string;
  readonly data: string;
  readonly correlationId: string | undefined;
  readonly causationId: string | undefined;
  readonly metadata: string | undefined;
}

const EVENT_KEYS = new Set(['type', 'data', 'correlationId', 'causationId', 'metadata']);
const QUERY_KEYS = new Set([
  'type',
  'types',
  'from',
  'to',
  'correlationId',
  'fromSeq',
  'toSeq',
  'limit',
  'order',
]);

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** JSON text of `value`, or an InvalidArgumentError naming `field` if it has none. */
function toJson(value: unknown, field: string): string {
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch (error) {
    throw new InvalidArgumentError(field, `must be JSON-serializable (${(error as Error).message})`);
  }
  if (json === undefined) throw new InvalidArgumentError(field, 'must be JSON-serializable', value);
  return json;
}

function optionalId(value: unknown, field: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value === '') {
    throw new InvalidArgumentError(field, 'must be a non-empty string when set', value);
  }
  return value;
}

/** Check an event and encode its payloads. `field` names it in errors (`event`, `events[3]`). */
export function prepareEvent(input: unknown, field: string): PreparedEvent {
  if (!isPlainObject(input))
    throw new InvalidArgumentError(field, 'must be an object {type, data, ...}', input);
  for (const key in input) {
    if (!EVENT_KEYS.has(key)) {
      const why = key === 'seq' || key === 'timestamp' ? 'is set by the store' : 'unknown field';
      throw new InvalidArgumentError(`${field}.${key}`, why);
    }
  }
  const type = input.type;
  if (typeof type !== 'string' || type === '') {
    throw new InvalidArgumentError(`${field}.type`, 'must be a non-empty string', type);
  }
  if (input.data === undefined)
    throw new InvalidArgumentError(`${field}.data`, 'is required (use null for none)');
  const data = toJson(input.data, `${field}.data`);
  const metadataValue = input.metadata;
  let metadata: string | undefined;
  if (metadataValue !== undefined) {
    if (!isPlainObject(metadataValue)) {
      throw new InvalidArgumentError(`${field}.metadata`, 'must be a plain object when set', metadataValue);
    }
    metadata = toJson(metadataValue, `${field}.metadata`);
  }
  return {
    type,
    data,
    correlationId: optionalId(input.correlationId, `${field}.correlationId`),
    causationId: optionalId(input.causationId, `${field}.causationId`),
    metadata,
  };
}

/** The event handed out for a stored record: payloads parsed, optional fields only when set. */
export function toStoredEvent(record: EventRecord): StoredEvent {
  const event: {
    seq: number;
    type: string;
    data: unknown;
    timestamp: number;
    correlationId?: string;
    causationId?: string;
    metadata?: Record<string, unknown>;
  } = { seq: record.seq, type: record.type, data: JSON.parse(record.data), timestamp: record.timestamp };
  if (record.correlationId !== undefined) event.correlationId = record.correlationId;
  if (record.causationId !== undefined) event.causationId = record.causationId;
  if (record.metadata !== undefined) event.metadata = JSON.parse(record.metadata);
  return event;
}

function checkSeq(value: unknown, field: string): number {
  if (!Number.isSafeInteger(value) || (value as number) < 0) {
    throw new InvalidArgumentError(field, 'must be an integer >= 0', value);
  }
  return value as number;
}

function checkTime(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new InvalidArgumentError(field, 'must be a finite number (a timestamp)', value);
  }
  return value;
}

/** Check a query and resolve its options. */
export function resolveQuery(query: EventQuery | undefined): ResolvedQuery {
  if (query === undefined) {
    return {
      types: undefined,
      from: undefined,
      to: undefined,
      correlationId: undefined,
      fromSeq: undefined,
      toSeq: undefined,
      limit: undefined,
      order: 'asc',
    };
  }
  if (!isPlainObject(query)) throw new InvalidArgumentError('query', 'must be an object', query);
  for (const key in query) {
    if (!QUERY_KEYS.has(key)) throw new InvalidArgumentError(`query.${key}`, 'unknown field');
  }
  let types: readonly string[] | undefined;
  if (query.types !== undefined) {
    if (!Array.isArray(query.types))
      throw new InvalidArgumentError('query.types', 'must be an array', query.types);
    query.types.forEach((t, i) => {
      if (typeof t !== 'string' || t === '') {
        throw new InvalidArgumentError(`query.types[${i}]`, 'must be a non-empty string', t);
      }
    });
    types = [...new Set(query.types)];
  }
  if (query.type !== undefined) {
    if (typeof query.type !== 'string' || query.type === '') {
      throw new InvalidArgumentError('query.type', 'must be a non-empty string', query.type);
    }
    // Both set: an event must match both, so only `type` can remain (or nothing).
    types = types === undefined || types.includes(query.type) ? [query.type] : [];
  }
  const order = query.order ?? 'asc';
  if (order !== 'asc' && order !== 'desc') {
    throw new InvalidArgumentError('query.order', "must be 'asc' or 'desc'", query.order);
  }
  return {
    types,
    from: query.from === undefined ? undefined : checkTime(query.from, 'query.from'),
    to: query.to === undefined ? undefined : checkTime(query.to, 'query.to'),
    correlationId: optionalId(query.correlationId, 'query.correlationId'),
    fromSeq: query.fromSeq === undefined ? undefined : checkSeq(query.fromSeq, 'query.fromSeq'),
    toSeq: query.toSeq === undefined ? undefined : checkSeq(query.toSeq, 'query.toSeq'),
    limit: query.limit === undefined ? undefined : checkSeq(query.limit, 'query.limit'),
    order,
  };
}

/** Check a prune bound: exactly one of `beforeSeq` (integer >= 0) and `beforeTime` (finite). */
export function checkPruneBound(bound: unknown): PruneBound {
  if (!isPlainObject(bound)) {
    throw new InvalidArgumentError('prune bound', 'must be {beforeSeq} or {beforeTime}', bound);
  }
  const keys = Object.keys(bound);
  if (keys.length !== 1 || (keys[0] !== 'beforeSeq' && keys[0] !== 'beforeTime')) {
    throw new InvalidArgumentError(
      'prune bound',
      'must have exactly one field, beforeSeq or beforeTime',
      bound,
    );
  }
  return 'beforeSeq' in bound
    ? { beforeSeq: checkSeq(bound.beforeSeq, 'prune bound.beforeSeq') }
    : { beforeTime: checkTime(bound.beforeTime, 'prune bound.beforeTime') };
}

/** True when a query's filters (other than seq bounds, order and limit) accept the record. */
export function recordMatches(q: ResolvedQuery, r: EventRecord): boolean {
  if (q.types !== undefined && !q.types.includes(r.type)) return false;
  if (q.from !== undefined && r.timestamp < q.from) return false;
  if (q.to !== undefined && r.timestamp >= q.to) return false;
  if (q.correlationId !== undefined && r.correlationId !== q.correlationId) return false;
  return true;
}
