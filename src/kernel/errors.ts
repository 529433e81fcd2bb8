/**
 * Typed errors of the kernel. Every error has a stable `code` (never reused for another condition)
 * and a message that names the offending value.
 */

export const ErrorCodes = {
  /** A call did not get a reply within its timeout. */
  TIMEOUT: 'E_TIMEOUT',
  /** The target agent does not exist (never existed, or has exited). */
  NOPROC: 'E_NOPROC',
  /** A bounded mailbox with the `reject` policy is full. */
  MAILBOX_FULL: 'E_MAILBOX_FULL',
  /** An argument (options, spec, message) is invalid. */
  INVALID_ARGUMENT: 'E_INVALID_ARGUMENT',
  /** The callee exited while the call was pending; `reason` holds its exit reason. */
  EXIT: 'E_EXIT',
  /** A name is already registered to another agent. */
  ALREADY_REGISTERED: 'E_ALREADY_REGISTERED',
  /** An agent called itself, which can never be answered. */
  CALL_SELF: 'E_CALL_SELF',
  /** The agent's behaviour does not implement the callback the message needs. */
  NOT_IMPLEMENTED: 'E_NOT_IMPLEMENTED',
  /** `init` failed; `cause` holds what it threw. */
  INIT_FAILED: 'E_INIT_FAILED',
  /** A callback returned a value of the wrong shape. */
  BAD_RETURN: 'E_BAD_RETURN',
  /** The runtime has been shut down. */
  RUNTIME_STOPPED: 'E_RUNTIME_STOPPED',
  /** A supervisor exceeded its restart intensity. */
  MAX_RESTARTS: 'E_MAX_RESTARTS',
  /** A dynamic supervisor reached its child limit. */
  MAX_CHILDREN: 'E_MAX_CHILDREN',
  /** A supervisor has no child with that id. */
  NO_CHILD: 'E_NO_CHILD',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

/**
 * Base class of every mabeam error. Kernel codes are in ErrorCodes; each higher layer keeps its
 * own code map (codes are `E_` plus upper case, unique across the project, never reused).
 */
export class MabeamError extends Error {
  readonly code: ErrorCode | `E_${Uppercase<string>}`;
  constructor(code: ErrorCode | `E_${Uppercase<string>}`, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

export class TimeoutError extends MabeamError {
  readonly timeoutMs: number;
  constructor(what: string, timeoutMs: number) {
    super(ErrorCodes.TIMEOUT, `${what} timed out after ${timeoutMs} ms`);
    this.timeoutMs = timeoutMs;
  }
}

export class NoProcessError extends MabeamError {
  readonly target: string;
  constructor(target: string, detail = 'no such agent') {
    super(ErrorCodes.NOPROC, `${detail}: ${target}`);
    this.target = target;
  }
}

export class MailboxFullError extends MabeamError {
  readonly target: string;
  readonly capacity: number;
  constructor(target: string, capacity: number) {
    super(ErrorCodes.MAILBOX_FULL, `mailbox of ${target} is full (capacity ${capacity})`);
    this.target = target;
    this.capacity = capacity;
  }
}

export class InvalidArgumentError extends MabeamError {
  readonly argument: string;
  constructor(argument: string, problem: string, ...value: [unknown] | []) {
    super(
      ErrorCodes.INVALID_ARGUMENT,
      value.length > 0
        ? `invalid ${argument}: ${problem} (got ${describe(value[0])})`
        : `invalid ${argument}: ${problem}`,
    );
    this.argument = argument;
  }
}

/** The callee exited while a call to it was pending. */
export class ExitError extends MabeamError {
  readonly target: string;
  readonly reason: unknown;
  constructor(target: string, reason: unknown) {
    super(ErrorCodes.EXIT, `${target} exited with reason ${describe(reason)}`, {
      cause: reason instanceof Error ? reason : undefined,
    });
    this.target = target;
    this.reason = reason;
  }
}

export class AlreadyRegisteredError extends MabeamError {
  readonly registeredName: unknown;
  constructor(name: unknown, holder: string) {
    super(ErrorCodes.ALREADY_REGISTERED, `name ${describe(name)} is already registered to ${holder}`);
    this.registeredName = name;
  }
}

export class CallSelfError extends MabeamError {
  constructor(target: string) {
    super(ErrorCodes.CALL_SELF, `${target} called itself; the call could never be answered`);
  }
}

export class NotImplementedError extends MabeamError {
  constructor(target: string, callback: string) {
    super(ErrorCodes.NOT_IMPLEMENTED, `${target} has no ${callback} callback`);
  }
}

export class InitError extends MabeamError {
  constructor(what: string, cause: unknown) {
    super(ErrorCodes.INIT_FAILED, `init of ${what} failed: ${describe(cause)}`, { cause });
  }
}

export class BadReturnError extends MabeamError {
  constructor(callback: string, value: unknown) {
    super(ErrorCodes.BAD_RETURN, `${callback} returned a value of the wrong shape: ${describe(value)}`);
  }
}

export class RuntimeStoppedError extends MabeamError {
  constructor(node: string) {
    super(ErrorCodes.RUNTIME_STOPPED, `runtime ${node} has been shut down`);
  }
}

export class MaxRestartsError extends MabeamError {
  constructor(supervisor: string, intensity: number, periodMs: number) {
    super(
      ErrorCodes.MAX_RESTARTS,
      `supervisor ${supervisor} exceeded ${intensity} restarts in ${periodMs} ms and shut down`,
    );
  }
}

export class MaxChildrenError extends MabeamError {
  constructor(supervisor: string, max: number) {
    super(
      ErrorCodes.MAX_CHILDREN,
      `dynamic supervisor ${supervisor} already has its maximum of ${max} children`,
    );
  }
}

export class NoChildError extends MabeamError {
  constructor(supervisor: string, id: unknown) {
    super(ErrorCodes.NO_CHILD, `supervisor ${supervisor} has no child ${describe(id)}`);
  }
}

/** A short, safe rendering of any value for error messages. */
export function describe(value: unknown): string {
  if (value instanceof Error) return `${value.name}: ${value.message}`;
  if (typeof value === 'string') return truncate(JSON.stringify(value));
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'number') return String(value); // JSON would render NaN and Infinity as null
  if (typeof value === 'symbol') return value.toString();
  if (typeof value === 'function') return `[function ${value.name || 'anonymous'}]`;
  if (
    value !== null &&
    typeof value === 'object' &&
    !Array.isArray(value) && // Array's toString drops the brackets ([] renders as nothing)
    typeof (value as { toString?: unknown }).toString === 'function'
  ) {
    const s = (value as { toString(): string }).toString();
    if (s !== '[object Object]') return s;
  }
  try {
    const s = JSON.stringify(value);
    if (s === undefined) return String(value);
    return truncate(s);
  } catch {
    return Object.prototype.toString.call(value);
  }
}

function truncate(s: string): string {
  return s.length > 200 ? `${s.slice(0, 197)}...` : s;
}
