/**
 * Addresses are values: a pid is `{node, thread, id}`, serializable and comparable, so the same
 * call/cast can later reach an agent on another worker thread or machine.
 */

/** The serializable form of an agent's address. */
export interface Pid {
  readonly node: string;
  readonly thread: number;
  readonly id: number;
}

/** Phantom brands carry an agent's message types, so a wrong message is a compile error. */
declare const callBrand: unique symbol;
declare const replyBrand: unique symbol;
declare const castBrand: unique symbol;
declare const infoBrand: unique symbol;

/** @internal the process cached in a ref (undefined for refs rebuilt from a pid). */
export let localProcess: (ref: AgentRef) => unknown;

/**
 * A method-style function type, compared bivariantly: a ref whose behaviour leaves a message kind
 * unused (`never`) must still fit "any agent" parameters. Inference still takes the message type
 * from the ref, so a wrong message is a compile error.
 */
type Accepts<T> = { m(msg: T): void }['m'];

/**
 * A typed handle to an agent: a pid plus (on the agent's own runtime) a cached pointer to the
 * process so that local sends skip the process-table lookup. `JSON.stringify(ref)` gives the pid.
 */
export class AgentRef<Call = unknown, Reply = unknown, Cast = unknown, Info = unknown> implements Pid {
  declare readonly [callBrand]: Accepts<Call>;
  declare readonly [replyBrand]: () => Reply;
  declare readonly [castBrand]: Accepts<Cast>;
  declare readonly [infoBrand]: Accepts<Info>;
  declare readonly node: string;
  declare readonly thread: number;
  declare readonly id: number;
  /** The local process, when this ref was made by the runtime that owns it. */
  #proc: unknown;

  constructor(node: string, thread: number, id: number, proc: unknown = undefined) {
    this.node = node;
    this.thread = thread;
    this.id = id;
    this.#proc = proc;
  }

  static {
    localProcess = (ref) => ref.#proc;
  }

  /** Same agent (same node, thread and id)? */
  equals(other: Pid | null | undefined): boolean {
    return other != null && other.id === this.id && other.thread === this.thread && other.node === this.node;
  }

  toJSON(): Pid {
    return { node: this.node, thread: this.thread, id: this.id };
  }

  toString(): string {
    return `<${this.node}.${this.thread}.${this.id}>`;
  }
}

/** Any agent, whatever its message types. */
// biome-ignore lint/suspicious/noExplicitAny: the variance-free "any agent" handle
export type AnyRef = AgentRef<any, any, any, any>;

/** True when the two pids name the same agent. */
export function pidEquals(a: Pid, b: Pid): boolean {
  return a.id === b.id && a.thread === b.thread && a.node === b.node;
}

/** A total order on pids (node, then thread, then id), for sorting and deterministic tie-breaks. */
export function comparePids(a: Pid, b: Pid): number {
  if (a.node !== b.node) return a.node < b.node ? -1 : 1;
  if (a.thread !== b.thread) return a.thread - b.thread;
  return a.id - b.id;
}

/** A string key for a pid, usable in Maps and Sets. */
export function pidKey(p: Pid): string {
  return `${p.node}.${p.thread}.${p.id}`;
}

/** Parse a pid from its JSON form (for example after crossing a thread or the network). */
export function isPid(value: unknown): value is Pid {
  if (value === null || typeof value !== 'object') return false;
  const v = value as Record<string, unknown>;
  return typeof v.node === 'string' && Number.isInteger(v.thread) && Number.isInteger(v.id);
}
