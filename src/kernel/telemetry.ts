/**
 * The runtime's telemetry hook, modeled on Erlang's :telemetry. Events are named by arrays of
 * strings (`['mabeam', 'agent', 'spawn']`); handlers are attached by id to exact event names. A
 * handler that throws is detached and reported through `['telemetry', 'handler', 'failure']`.
 * Emitting an event nobody listens to costs one Map lookup; hot paths check `enabled` first.
 */
import { AlreadyRegisteredError, InvalidArgumentError } from './errors.js';

export type EventName = readonly string[];
export type Measurements = Record<string, number>;
export type Metadata = Record<string, unknown>;
export type TelemetryHandler = (
  event: EventName,
  measurements: Measurements,
  metadata: Metadata,
  config: unknown,
) => void;

interface Attached {
  id: string;
  events: string[];
  handler: TelemetryHandler;
  config: unknown;
}

const FAILURE_EVENT = ['telemetry', 'handler', 'failure'] as const;

export class Telemetry {
  readonly #byEvent = new Map<string, Attached[]>();
  readonly #byId = new Map<string, Attached>();

  /** True when at least one handler is attached (cheap check for hot paths). */
  get enabled(): boolean {
    return this.#byId.size > 0;
  }

  /** Attach `handler` under `id` to each of `events`. Throws if the id is taken. */
  attach(
    id: string,
    events: EventName | readonly EventName[],
    handler: TelemetryHandler,
    config?: unknown,
  ): void {
    if (typeof id !== 'string' || id === '')
      throw new InvalidArgumentError('telemetry handler id', 'must be a non-empty string', id);
    if (this.#byId.has(id)) throw new AlreadyRegisteredError(id, 'another telemetry handler');
    if (typeof handler !== 'function') {
      throw new InvalidArgumentError(
        `telemetry handler ${JSON.stringify(id)}`,
        'must be a function',
        handler,
      );
    }
    const list: EventName[] = isEventList(events) ? [...events] : [events as EventName];
    const attached: Attached = { id, events: list.map(keyOf), handler, config };
    this.#byId.set(id, attached);
    for (const key of attached.events) {
      const handlers = this.#byEvent.get(key);
      if (handlers) handlers.push(attached);
      else this.#byEvent.set(key, [attached]);
    }
  }

  /** Detach the handler with this id; returns false if there was none. */
  detach(id: string): boolean {
    const attached = this.#byId.get(id);
    if (!attached) return false;
    this.#byId.delete(id);
    for (const key of attached.events) {
      const handlers = this.#byEvent.get(key);
      if (!handlers) continue;
      const rest = handlers.filter((h) => h !== attached);
      if (rest.length === 0) this.#byEvent.delete(key);
      else this.#byEvent.set(key, rest);
    }
    return true;
  }

  /** True when some handler listens to this exact event. */
  listens(event: EventName): boolean {
    return this.#byId.size > 0 && this.#byEvent.has(keyOf(event));
  }

  /** Handlers attached, by id. */
  handlers(): { id: string; events: string[][] }[] {
    return [...this.#byId.values()].map((a) => ({ id: a.id, events: a.events.map((k) => k.split(SEP)) }));
  }

  execute(event: EventName, measurements: Measurements, metadata: Metadata = {}): void {
    if (this.#byId.size === 0) return;
    const handlers = this.#byEvent.get(keyOf(event));
    if (!handlers) return;
    for (const attached of handlers) {
      try {
        attached.handler(event, measurements, metadata, attached.config);
      } catch (error) {
        this.detach(attached.id);
        this.execute(FAILURE_EVENT, {}, { handlerId: attached.id, event, error });
      }
    }
  }
}

/** A separator no event-name element contains in practice (a dot would make ['a.b'] equal ['a', 'b']). */
const SEP = '\u0000';

function keyOf(event: EventName): string {
  return event.join(SEP);
}

function isEventList(events: EventName | readonly EventName[]): events is readonly EventName[] {
  return events.length > 0 && Array.isArray(events[0]);
}
