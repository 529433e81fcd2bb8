/**
 * Subscriptions: catch up from the log, then follow live commits, with no gap and no duplicate at
 * the switch.
 *
 * Why the switch is exact: a subscription has a cursor, the next seq it still needs. While catching
 * up it reads pages from the backend (seq >= cursor) and ignores live commits; when a read comes
 * back short, every event committed so far has been read, and it turns live in the same
 * synchronous step. Commits are synchronous too (the writer's transaction and its hand-off to
 * subscribers run in one callback), so no commit can fall between that read and the switch: each
 * commit is either in the read or offered live afterwards, and the cursor drops anything below it.
 *
 * Backpressure without loss: a handler may return a promise, and the next event waits for it. Live
 * events meanwhile wait in a buffer; past `maxBuffer` the subscription drops back to catching up
 * and reads the rest from the log (the log is the buffer), so a slow subscriber costs bounded
 * memory and the writer never waits for anyone.
 *
 * Agent subscribers are paced the same way. Sending is instant, so the delivery for an agent
 * first looks at its mailbox (`runtime.info(...).mailboxLength`): while it holds `maxBuffer`
 * messages or more (or is full, for a bounded mailbox), the delivery waits for the kernel's
 * `whenMailboxBelow` (woken as the agent takes messages, no polling) until there is room. Meanwhile live commits buffer and then fall back
 * to the log as above. So an agent's mailbox holds at most `maxBuffer` of a subscription's events,
 * and for an agent `position` is one past the last event put in its mailbox (not yet necessarily
 * handled). Agents with a `drop_oldest` mailbox are refused at subscribe: another sender could
 * push one of our events out without anyone noticing. A `drop_newest` or `reject` mailbox that
 * refuses an event ends the subscription with a DeliveryError.
 */
import { AgentRef, describe, isPid, type Pid, type Runtime } from '../../kernel/index.js';
import { DeliveryError, SubscriptionEndedError } from './errors.js';
import type { EventBackend, StoredEvent } from './types.js';

/** A function subscriber. A returned promise is awaited before the next event (backpressure). */
export type EventHandler = (event: StoredEvent) => void | Promise<void>;

/** What an agent subscriber receives in handleInfo, once per event, in seq order. */
export interface EventMessage {
  readonly type: 'mabeam.event';
  /** The subscription's id (an agent may hold several). */
  readonly subscription: number;
  readonly event: StoredEvent;
}

/**
 * Who receives the events: a function, or an agent that gets EventMessages in handleInfo (a typed
 * ref whose Info type cannot take an EventMessage is a compile error), or a plain pid.
 */
export type Subscriber = EventHandler | AgentRef<never, unknown, never, EventMessage> | UntypedPid;

/** A pid that is not a typed ref (the same trick as the kernel's UntypedDest). */
type UntypedPid = Pid & { readonly equals?: never };

export interface SubscribeOptions {
  /** Events per catch-up read. Default 500. */
  readonly pageSize?: number;
  /**
   * Most live events held for a subscriber that is still busy with earlier ones; past this it reads
   * from the log instead. Default 10,000.
   */
  readonly maxBuffer?: number;
}

/** Why a subscription ended. `error` is set for `failed` (what the handler threw) and store failures. */
export interface SubscriptionEnd {
  readonly reason: 'unsubscribed' | 'store_closed' | 'subscriber_exited' | 'failed';
  readonly error?: unknown;
}

export type SubscriptionState = 'catching_up' | 'live' | 'ended';

/** A running subscription. */
export interface Subscription {
  readonly id: number;
  /** The next seq to be delivered: one past the last event the subscriber has fully handled. */
  readonly position: number;
  /** `catching_up` (reading the log), `live` (following commits) or `ended`. */
  readonly state: SubscriptionState;
  /**
   * Resolves once the subscription has delivered everything committed before it turned live (at
   * once if it already has). Rejects with SubscriptionEndedError (E_STORE_SUBSCRIPTION_ENDED) if
   * it ends first.
   */
  caughtUp(): Promise<void>;
  /** Resolves (never rejects) when the subscription ends, with the reason. */
  ended(): Promise<SubscriptionEnd>;
  /** Stop delivering. Idempotent. An event whose handler is running still completes. */
  unsubscribe(): void;
}

/** @internal What a subscription needs of its store. */
export interface SubscriptionHost {
  readonly runtime: Runtime;
  readonly backend: EventBackend;
  /** Forget a subscription that ended. */
  removeSubscription(sub: LogSubscription): void;
  /** Report a subscriber whose handler failed (telemetry). */
  subscriberFailed(sub: LogSubscription, error: unknown): void;
}

export const SUBSCRIBE_DEFAULTS = Object.freeze({ pageSize: 500, maxBuffer: 10_000 });

const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** @internal */
export class LogSubscription implements Subscription {
  readonly id: number;
  readonly #host: SubscriptionHost;
  readonly #deliver: EventHandler;
  readonly #pageSize: number;
  readonly #maxBuffer: number;
  /** The next seq not yet taken into the buffer (from a read or a live commit). */
  #cursor: number;
  #position: number;
  #buffer: StoredEvent[] = [];
  #head = 0;
  #catchingUp = true;
  /** The cursor when the subscription first turned live: delivering up to it means caught up. */
  #liveAt: number | undefined;
  #caughtUp = false;
  #pumping = false;
  #end: SubscriptionEnd | undefined;
  #caughtUpWaiters: { resolve(): void; reject(error: unknown): void }[] = [];
  #endWaiters: ((end: SubscriptionEnd) => void)[] = [];
  #removeExitHook: (() => void) | undefined;

  constructor(
    host: SubscriptionHost,
    id: number,
    fromSeq: number,
    subscriber: Subscriber,
    options: { pageSize: number; maxBuffer: number },
  ) {
    this.#host = host;
    this.id = id;
    this.#cursor = fromSeq;
    this.#position = fromSeq;
    this.#pageSize = options.pageSize;
    this.#maxBuffer = options.maxBuffer;
    if (typeof subscriber === 'function') {
      this.#deliver = subscriber;
    } else {
      this.#deliver = agentDelivery(
        host.runtime,
        subscriber,
        id,
        this.#maxBuffer,
        () => this.#end !== undefined,
      );
      // The hook runs as the agent dies, before anyone else learns of it: no send to a dead agent.
      this.#removeExitHook = host.runtime.onExit(subscriber, () => this.end({ reason: 'subscriber_exited' }));
    }
  }

  get position(): number {
    return this.#position;
  }

  get state(): SubscriptionState {
    if (this.#end !== undefined) return 'ended';
    return this.#catchingUp ? 'catching_up' : 'live';
  }

  /** Begin: the first read happens in a microtask, never inside the caller's stack. */
  start(): void {
    this.#kick();
  }

  /**
   * Events just committed (consecutive seqs, oldest first). Called synchronously right after the
   * commit, so it only buffers; delivery runs later, outside the writer.
   */
  offer(events: readonly StoredEvent[]): void {
    if (this.#end !== undefined || this.#catchingUp) return;
    for (const event of events) {
      if (event.seq < this.#cursor) continue;
      if (this.#buffer.length - this.#head >= this.#maxBuffer) {
        // Too far behind: leave this and later events in the log and read them from there.
        this.#catchingUp = true;
        break;
      }
      this.#buffer.push(event);
      this.#cursor = event.seq + 1;
    }
    this.#kick();
  }

  caughtUp(): Promise<void> {
    if (this.#caughtUp) return Promise.resolve();
    if (this.#end !== undefined) return Promise.reject(this.#endedError());
    return new Promise((resolve, reject) => this.#caughtUpWaiters.push({ resolve, reject }));
  }

  ended(): Promise<SubscriptionEnd> {
    if (this.#end !== undefined) return Promise.resolve(this.#end);
    return new Promise((resolve) => this.#endWaiters.push(resolve));
  }

  unsubscribe(): void {
    this.end({ reason: 'unsubscribed' });
  }

  /** @internal End with `end` (the first reason wins). */
  end(end: SubscriptionEnd): void {
    if (this.#end !== undefined) return;
    this.#end = end;
    this.#buffer = [];
    this.#head = 0;
    this.#removeExitHook?.();
    this.#host.removeSubscription(this);
    if (!this.#caughtUp) {
      const error = this.#endedError();
      for (const w of this.#caughtUpWaiters) w.reject(error);
    }
    this.#caughtUpWaiters = [];
    for (const w of this.#endWaiters) w(end);
    this.#endWaiters = [];
  }

  #endedError(): SubscriptionEndedError {
    const end = this.#end as SubscriptionEnd;
    return new SubscriptionEndedError(this.id, end.reason, end.error);
  }

  #kick(): void {
    if (this.#pumping || this.#end !== undefined) return;
    this.#pumping = true;
    queueMicrotask(() => void this.#pump());
  }

  /** Deliver buffered events in order; read pages from the log while catching up. One at a time. */
  async #pump(): Promise<void> {
    let sinceYield = 0;
    try {
      while (this.#end === undefined) {
        if (this.#head < this.#buffer.length) {
          const event = this.#buffer[this.#head++] as StoredEvent;
          const result = this.#deliver(event);
          if (result !== undefined && typeof (result as Promise<void>).then === 'function') await result;
          if (this.#end !== undefined) return;
          this.#position = event.seq + 1;
          if (!this.#caughtUp && this.#liveAt !== undefined && this.#position >= this.#liveAt) {
            this.#markCaughtUp();
          }
          // A long run of synchronous handlers must not keep timers and I/O waiting.
          if (++sinceYield >= this.#pageSize) {
            sinceYield = 0;
            await yieldToEventLoop();
          }
          continue;
        }
        this.#buffer = [];
        this.#head = 0;
        if (!this.#catchingUp) return;
        this.#readPage();
      }
    } catch (error) {
      this.#host.subscriberFailed(this, error);
      this.end({ reason: 'failed', error });
    } finally {
      this.#pumping = false;
    }
  }

  /** One catch-up read; turns live when the read reaches the end of the log. */
  #readPage(): void {
    const page = this.#host.backend.readFrom(this.#cursor, this.#pageSize);
    const last = page[page.length - 1];
    if (last !== undefined) {
      this.#buffer = page;
      this.#cursor = last.seq + 1;
    }
    if (page.length < this.#pageSize) {
      // Everything committed is now read or delivered: from here on, commits are offered live.
      this.#catchingUp = false;
      if (this.#liveAt === undefined) {
        this.#liveAt = this.#cursor;
        if (last === undefined) this.#markCaughtUp();
      }
    }
  }

  #markCaughtUp(): void {
    this.#caughtUp = true;
    for (const w of this.#caughtUpWaiters) w.resolve();
    this.#caughtUpWaiters = [];
  }
}

/**
 * Delivery to an agent: a plain message per event, sent only while the agent's mailbox holds fewer
 * than `maxBuffer` messages (and has room, if bounded); a refused message ends the subscription.
 */
function agentDelivery(
  runtime: Runtime,
  dest: AgentRef | Pid,
  id: number,
  maxBuffer: number,
  ended: () => boolean,
): EventHandler {
  if (!(dest instanceof AgentRef) && !isPid(dest)) {
    throw new TypeError(`subscriber must be a function, an agent ref or a pid, got ${describe(dest)}`);
  }
  const name = String(dest instanceof AgentRef ? dest : describe(dest));
  /** How many messages may sit in the agent's mailbox; undefined once the agent is gone. */
  const limit = (): number | undefined => {
    const info = runtime.info(dest as Pid, { stateSize: false });
    return info === undefined ? undefined : Math.min(maxBuffer, info.mailboxCapacity);
  };
  const room = (): boolean => {
    const info = runtime.info(dest as Pid, { stateSize: false });
    // Gone: the send reports it (its exit hook normally ends the subscription first).
    if (info === undefined) return true;
    return info.mailboxLength < Math.min(maxBuffer, info.mailboxCapacity);
  };
  /** Wait, without polling, until the agent has taken enough messages (or is gone). */
  const drained = async (): Promise<void> => {
    for (let below = limit(); below !== undefined && !ended() && !room(); below = limit()) {
      await runtime.whenMailboxBelow(dest as Pid, below);
    }
  };
  const send = (event: StoredEvent): void => {
    let sent: boolean;
    try {
      sent = runtime.send(dest as Pid, {
        type: 'mabeam.event',
        subscription: id,
        event,
      } satisfies EventMessage);
    } catch (error) {
      throw new DeliveryError(name, event.seq, error);
    }
    if (!sent) throw new DeliveryError(name, event.seq);
  };
  return (event) => {
    if (room()) return send(event);
    return drained().then(() => {
      if (!ended()) send(event);
    });
  };
}
