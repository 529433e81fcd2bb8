/**
 * `span` wraps a unit of work in start/stop/exception telemetry events, like Erlang's
 * `:telemetry.span/3`. It is the one way foundation services (and users) time their work, so that
 * metrics definitions such as `summary('my.op.stop.duration')` apply to all of them alike.
 *
 * Units: every time is in milliseconds. `monotonic_time` and `duration` come from the runtime's
 * clock when a runtime (or anything with a `clock`) is passed, else from `performance.now()`; both
 * are fractional milliseconds, the unit of the kernel's own `['mabeam','call','stop']` duration.
 * `system_time` is wall-clock epoch milliseconds (`Date.now()`), for correlating with logs. Under a
 * VirtualClock, durations are virtual time, which is what makes them testable without sleeping.
 */
import {
  type Clock,
  type EventName,
  InvalidArgumentError,
  type Measurements,
  type Metadata,
  Telemetry,
} from '../kernel/index.js';

/** Where a span emits its events: a Telemetry, or a runtime (its telemetry and its clock). */
export type SpanTarget = Telemetry | { readonly telemetry: Telemetry; readonly clock?: Clock };

/**
 * Metadata key whose value is the same for the start event and the stop or exception event of one
 * span (and differs between spans), so handlers can pair them when spans overlap. Named as in
 * Erlang's :telemetry.
 */
export const SPAN_CONTEXT = 'telemetry_span_context';

/**
 * Run `fn` inside a telemetry span.
 *
 * Emits `[...prefix, 'start']` with `{system_time, monotonic_time}` before `fn` runs; then, when it
 * returns (or its promise fulfils), `[...prefix, 'stop']` with `{duration, monotonic_time}`; when it
 * throws (or its promise rejects), `[...prefix, 'exception']` with `{duration, monotonic_time}` and
 * metadata `{kind, reason, stacktrace}` added, after which the error propagates unchanged. `kind`
 * is `'throw'` for a synchronous throw and `'reject'` for a rejected promise; `stacktrace` is the
 * error's `stack` (undefined for thrown non-errors). All events carry `metadata` plus
 * `telemetry_span_context`. Times are in milliseconds (see the module comment).
 *
 * `fn`'s value is returned as is for a synchronous fn; for a promise-returning fn the returned
 * promise settles with the same value or reason. When no handler listens to any of the three
 * events, `fn` is called directly: no clock reads, no allocation.
 *
 * @throws InvalidArgumentError (E_INVALID_ARGUMENT) if `target` has no telemetry, `prefix` is
 * not a non-empty array (of strings: checked when someone listens) or `fn` is not a function;
 * nothing has run then.
 */
export function span<T>(target: SpanTarget, prefix: EventName, metadata: Metadata, fn: () => T): T {
  const telemetry = target instanceof Telemetry ? target : target?.telemetry;
  if (!(telemetry instanceof Telemetry)) {
    throw new InvalidArgumentError('span target', 'must be a Telemetry or have a telemetry', target);
  }
  if (!Array.isArray(prefix) || prefix.length === 0) badPrefix(prefix);
  if (typeof fn !== 'function') throw new InvalidArgumentError('span fn', 'must be a function', fn);
  // The common case in production: nobody listens, so the span costs a few type checks. This
  // function stays small enough for V8 to inline; the prefix's elements are checked only in
  // `observed` (that loop alone would cost more than everything here).
  if (!telemetry.enabled) return fn();
  return observed(telemetry, target, prefix, metadata, fn);
}

function observed<T>(
  telemetry: Telemetry,
  target: SpanTarget,
  prefix: EventName,
  metadata: Metadata,
  fn: () => T,
): T {
  for (const part of prefix) if (typeof part !== 'string') badPrefix(prefix);
  const startEvent = [...prefix, 'start'];
  const stopEvent = [...prefix, 'stop'];
  const exceptionEvent = [...prefix, 'exception'];
  const onStart = telemetry.listens(startEvent);
  const onStop = telemetry.listens(stopEvent);
  const onException = telemetry.listens(exceptionEvent);
  if (!onStart && !onStop && !onException) return fn();

  const clock = target instanceof Telemetry ? undefined : target.clock;
  const now = clock === undefined ? () => performance.now() : () => clock.now();
  // A string, not an object identity, so the context survives serialization (logs, other threads).
  const meta: Metadata = { ...metadata, [SPAN_CONTEXT]: globalThis.crypto.randomUUID() };
  const started = now();
  if (onStart) telemetry.execute(startEvent, { system_time: Date.now(), monotonic_time: started }, meta);

  const stopped = (): void => {
    if (!onStop) return;
    const t = now();
    telemetry.execute(stopEvent, { duration: t - started, monotonic_time: t }, meta);
  };
  const failed = (kind: 'throw' | 'reject', reason: unknown): void => {
    if (!onException) return;
    const t = now();
    const measurements: Measurements = { duration: t - started, monotonic_time: t };
    const stacktrace = reason instanceof Error ? reason.stack : undefined;
    telemetry.execute(exceptionEvent, measurements, { ...meta, kind, reason, stacktrace });
  };

  let result: T;
  try {
    result = fn();
  } catch (error) {
    failed('throw', error);
    throw error;
  }
  if (isThenable(result)) {
    return result.then(
      (value) => {
        stopped();
        return value;
      },
      (reason: unknown) => {
        failed('reject', reason);
        throw reason;
      },
    ) as T;
  }
  stopped();
  return result;
}

function badPrefix(prefix: unknown): never {
  throw new InvalidArgumentError('span event prefix', 'must be a non-empty array of strings', prefix);
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    value !== null &&
    (typeof value === 'object' || typeof value === 'function') &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}
