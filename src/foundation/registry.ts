/**
 * The registry: names for agents, read without a mailbox (CQRS).
 *
 * Reads (`lookup`, `select`, `count`, `list`) are plain Map and index reads on the caller's thread:
 * no message, no promise, nanoseconds. Writes (`register`, `unregister`, `updateMetadata`,
 * `clear`) are calls to one owner agent, so they are serialized in one place (the place that will
 * later also feed replicas on other threads and nodes); the owner applies each write to the read
 * model, which lives in the `Registry` object itself, not in the owner's state.
 *
 * An entry disappears when its agent exits. That removal is the one write that does not go
 * through the owner: it runs in a kernel exit hook (`runtime.onExit`), synchronously, before any
 * monitor, link, caller or `awaitExit` learns of the exit. A round trip through the owner's
 * mailbox would leave a window in which someone who saw the exit could still look up the dead
 * agent. The hook runs on the runtime's thread like the owner, so it never interleaves with a
 * write in progress.
 *
 * If the owner crashes, the read model survives (it is not the owner's state): lookups keep
 * working and exiting agents keep being removed; writes reject with `RegistryUnavailableError`
 * until an owner runs again. `Registry.start` spawns an unsupervised owner; to have it restarted,
 * make the registry with `Registry.create` and put `registry.childSpec()` under a Supervisor. The
 * restarted owner attaches to the same read model, so nothing registered is lost.
 *
 * Names are strings, numbers or tuples (arrays of strings and finite numbers, like Erlang's
 * `{agent, 42}`). Tuples are kept in a trie of Maps, one level per element, so looking one up
 * never builds a string: building and hashing a fresh key string per lookup costs more than ten
 * times a Map read. Each namespace remembers the trie node of the last tuple head it saw, because
 * tagged tuples (`['agent', i]`) share their head: a lookup is then one Map read on the last
 * element. Removed names leave tombstones that are compacted away later (see SLACK), because V8
 * Maps slow down badly when one key is deleted and re-added over and over.
 */
import {
  AgentRef,
  AlreadyRegisteredError,
  type AnyRef,
  type Behaviour,
  behaviour,
  type ChildId,
  type ChildSpec,
  type ChildSpecExtras,
  describe,
  ExitError,
  InvalidArgumentError,
  isPid,
  MabeamError,
  NoProcessError,
  type Pid,
  Runtime,
  reply,
  type StartSite,
  VIA,
  type Via,
} from '../kernel/index.js';

// ---- public types ------------------------------------------------------------------------------

/** One element of a tuple name. */
export type RegistryNameElement = string | number;

/**
 * A registered name: a string, a finite number, or a tuple of them (`['agent', 42]`). `1` and
 * `'1'` are different names, and so are `'agent'` and `['agent']`.
 */
export type RegistryName = string | number | readonly RegistryNameElement[];

/** Metadata of an entry: a plain object, copied (shallowly) and frozen when written. */
export type RegistryMetadata = Readonly<Record<string, unknown>>;

/**
 * `unique`: one agent per name (lookup gives that agent). `duplicate`: any number of agents per
 * name, like Erlang's `:pg` groups (lookup gives every member).
 */
export type RegistryKeyMode = 'unique' | 'duplicate';

/** What `lookup` returns: the holder for unique names, all members for duplicate ones. */
export type RegistryLookup<K extends RegistryKeyMode> = K extends 'duplicate'
  ? readonly AnyRef[]
  : AnyRef | undefined;

/** One registration. Immutable: an update makes a new entry. */
export interface RegistryEntry<M extends RegistryMetadata = RegistryMetadata> {
  readonly namespace: string;
  readonly name: RegistryName;
  readonly ref: AnyRef;
  readonly metadata: M;
}

/** The value a metadata field is compared with in `select`: for an array field, any one element. */
type FieldQuery<T> = T extends readonly (infer E)[] ? E : T;

/**
 * What `select` matches: an object of field values (all must match; a field holding an array
 * matches when any element equals the value; values compare like Map keys, by SameValueZero), or a
 * predicate on entries.
 */
export type RegistryWhere<M extends RegistryMetadata = RegistryMetadata> =
  | { readonly [F in keyof M]?: FieldQuery<M[F]> }
  | ((entry: RegistryEntry<M>) => boolean);

/** A new metadata value, or a function of the current one (run by the owner, so atomic). */
export type RegistryMetadataUpdate<M extends RegistryMetadata> = M | ((current: M) => M);

export interface RegistryOptions<M extends RegistryMetadata = RegistryMetadata> {
  /** Default `unique`. */
  readonly keys?: RegistryKeyMode;
  /**
   * RegistryMetadata fields with an index: `select` by one of them is an index read; by any other field,
   * or by a predicate, a scan of the namespace.
   */
  readonly indexes?: readonly (keyof M & string)[];
  /** A label for error messages and the owner's description. Default `registry`. */
  readonly label?: string;
}

// ---- errors ------------------------------------------------------------------------------------

/** Codes of the registry's own errors (kernel codes are reused where they fit). */
export const RegistryErrorCodes = {
  /** `updateMetadata` (or a pid-guarded write) names an entry nobody holds. */
  NOT_REGISTERED: 'E_REGISTRY_NOT_REGISTERED',
  /** No owner agent is running (it exited, or was never started), so writes cannot be applied. */
  UNAVAILABLE: 'E_REGISTRY_UNAVAILABLE',
  /** The registry was stopped with `stop()`. */
  STOPPED: 'E_REGISTRY_STOPPED',
} as const;

/**
 * A unique name is already held (code E_ALREADY_REGISTERED, as the kernel's own names), or, in a
 * duplicate registry, the agent is already a member. Names the holder.
 */
export class NameTakenError extends AlreadyRegisteredError {
  readonly namespace: string;
  readonly holder: AnyRef;
  constructor(namespace: string, name: RegistryName, holder: AnyRef) {
    super(name, `${holder} in namespace ${describe(namespace)}`);
    this.namespace = namespace;
    this.holder = holder;
  }
}

/** `updateMetadata` (or a pid-guarded write) named an entry that nobody (or not that agent) holds. */
export class NotRegisteredError extends MabeamError {
  readonly namespace: string;
  readonly registeredName: RegistryName;
  constructor(namespace: string, name: RegistryName, detail = 'is not registered') {
    super(
      RegistryErrorCodes.NOT_REGISTERED,
      `name ${describe(name)} in namespace ${describe(namespace)} ${detail}`,
    );
    this.namespace = namespace;
    this.registeredName = name;
  }
}

/** A write found no owner agent running; `cause` holds the kernel error when the owner died mid-call. */
export class RegistryUnavailableError extends MabeamError {
  constructor(label: string, cause?: unknown) {
    super(
      RegistryErrorCodes.UNAVAILABLE,
      `${label} has no running owner agent (it exited or has not started), so it cannot take writes`,
      { cause },
    );
  }
}

/** A write (or a new owner) came after `stop()`. */
export class RegistryStoppedError extends MabeamError {
  constructor(label: string) {
    super(RegistryErrorCodes.STOPPED, `${label} has been stopped`);
  }
}

// ---- the read model (internal) -----------------------------------------------------------------

class Entry<M extends RegistryMetadata> implements RegistryEntry<M> {
  constructor(
    readonly namespace: string,
    readonly name: RegistryName,
    readonly ref: AnyRef,
    readonly metadata: M,
  ) {
    Object.freeze(this);
  }
}

/**
 * Tombstones a map may hold beyond its live keys before it is rebuilt.
 *
 * Why tombstones at all: V8's Map and Set keep a deleted entry in its hash chain until the table
 * is next rehashed, and adding a key first walks that chain. Deleting and re-adding the same key
 * (a lock name taken and released, an agent leaving and rejoining a group) therefore grows the
 * chain by one each time, until an add costs time in proportion to the table's size: 26 us per
 * add in a Map of 10,000 keys, measured on Node 20. So the read model never deletes a key that may
 * come back: it overwrites the value with `undefined` and rebuilds the map (without tombstones)
 * once they outnumber the live keys, which keeps memory bounded at a constant cost per delete.
 */
const SLACK = 8;

/** The members of one duplicate name, with the array `lookup` hands out (rebuilt after a change). */
class Group<M extends RegistryMetadata> {
  /** agent id -> entry, or undefined for a member that left (a tombstone). */
  members = new Map<number, Entry<M> | undefined>();
  size = 0;
  #dead = 0;
  #refs: readonly AnyRef[] | null = null;

  refs(): readonly AnyRef[] {
    if (this.#refs === null) {
      const refs: AnyRef[] = [];
      for (const e of this.members.values()) if (e !== undefined) refs.push(e.ref);
      this.#refs = Object.freeze(refs);
    }
    return this.#refs;
  }

  /** The members' entries. */
  entries(): Entry<M>[] {
    const out: Entry<M>[] = [];
    for (const e of this.members.values()) if (e !== undefined) out.push(e);
    return out;
  }

  get(id: number): Entry<M> | undefined {
    return this.members.get(id);
  }

  /** Add a member that is not one yet. */
  add(entry: Entry<M>): void {
    if (this.members.has(entry.ref.id)) this.#dead--;
    this.members.set(entry.ref.id, entry);
    this.size++;
    this.#refs = null;
  }

  /** Replace a member's entry (after a metadata update). */
  replace(entry: Entry<M>): void {
    this.members.set(entry.ref.id, entry);
    this.#refs = null;
  }

  remove(id: number): void {
    this.members.set(id, undefined);
    this.size--;
    this.#dead++;
    this.#refs = null;
    if (this.#dead > this.size + SLACK) {
      const live = new Map<number, Entry<M> | undefined>();
      for (const [key, e] of this.members) if (e !== undefined) live.set(key, e);
      this.members = live;
      this.#dead = 0;
    }
  }
}

type Slot<M extends RegistryMetadata> = Entry<M> | Group<M>;

/**
 * A trie node for the tuples that continue past it: `leaves` holds the slots of tuples that end
 * at the next element, `next` the nodes of longer ones. Keeping the slots in the node's own map
 * (rather than in a node per element) saves lookups one dependent memory read. A removed name
 * leaves a tombstone (`undefined`) in `leaves`; nodes left empty stay until the namespace's names
 * are rebuilt (see SLACK).
 */
class TrieNode<M extends RegistryMetadata> {
  leaves: Map<RegistryNameElement, Slot<M> | undefined> | undefined = undefined;
  next: Map<RegistryNameElement, TrieNode<M>> | undefined = undefined;
}

/** The read model of one namespace. */
class Store<M extends RegistryMetadata> {
  /** String and number names (a Map keeps 1 and '1' apart); undefined marks a removed name. */
  flat = new Map<string | number, Slot<M> | undefined>();
  tuples = new TrieNode<M>();
  /**
   * The root child last looked up, and its key: tagged tuples share their head. The key starts
   * as a string and never becomes undefined, so V8 keeps comparing it as strings (a compare that
   * has once seen `undefined` stays on its generic path).
   */
  headKey: unknown = '';
  headNode: TrieNode<M> | undefined = undefined;
  /** Names with a slot, and tombstones of removed names (see SLACK). */
  names = 0;
  #dead = 0;
  /** Every entry (every member, in a duplicate registry): what scans, `list` and `count` read. */
  readonly entries = new Set<Entry<M>>();
  /**
   * field -> value -> entries holding that value (each element, for an array value). A value
   * whose last entry went keeps its empty set, for the same reason as tombstones.
   */
  readonly indexes = new Map<string, Map<unknown, Set<Entry<M>>>>();
  #emptySets = 0;

  constructor(
    readonly namespace: string,
    indexed: readonly string[],
  ) {
    for (const field of indexed) this.indexes.set(field, new Map());
  }

  /** The slot for `name`, or undefined (also for names of the wrong shape: the caller checks). */
  find(name: unknown): Slot<M> | undefined {
    if (typeof name !== 'object') return this.flat.get(name as string | number);
    if (!Array.isArray(name)) return undefined;
    const last = name.length - 1;
    if (last <= 0) return last === 0 ? this.tuples.leaves?.get(name[0]) : undefined;
    const head = name[0];
    let node = head === this.headKey ? this.headNode : undefined;
    if (node === undefined) {
      node = this.tuples.next?.get(head);
      if (node === undefined) return undefined;
      this.headKey = head;
      this.headNode = node;
    }
    for (let i = 1; i < last; i++) {
      node = node.next?.get(name[i]);
      if (node === undefined) return undefined;
    }
    return node.leaves?.get(name[last]);
  }

  /**
   * The slot for a checked name, for writes. Kept apart from `find` so that the registry's own
   * (frozen) copies of tuples never reach `find`: its element reads then stay monomorphic on the
   * callers' arrays, which in our measurements took about a third off a lookup.
   */
  slotOf(name: RegistryName): Slot<M> | undefined {
    if (typeof name !== 'object') return this.flat.get(name);
    const last = name.length - 1;
    let node: TrieNode<M> | undefined = this.tuples;
    for (let i = 0; i < last && node !== undefined; i++)
      node = node.next?.get(name[i] as RegistryNameElement);
    return node?.leaves?.get(name[last] as RegistryNameElement);
  }

  /** The map holding `name`'s slot and its key in it, creating trie nodes when `create`. */
  #place(
    name: RegistryName,
    create: boolean,
  ): [Map<RegistryNameElement, Slot<M> | undefined>, RegistryNameElement] | undefined {
    if (typeof name !== 'object') return [this.flat, name];
    let node = this.tuples;
    const last = name.length - 1;
    for (let i = 0; i < last; i++) {
      const element = name[i] as RegistryNameElement;
      let child = node.next?.get(element);
      if (child === undefined) {
        if (!create) return undefined;
        if (node.next === undefined) node.next = new Map();
        child = new TrieNode();
        node.next.set(element, child);
      }
      node = child;
    }
    if (node.leaves === undefined) {
      if (!create) return undefined;
      node.leaves = new Map();
    }
    return [node.leaves, name[last] as RegistryNameElement];
  }

  /** Give a name that has no slot (absent, or a tombstone) its slot. */
  add(name: RegistryName, slot: Slot<M>): void {
    const [map, key] = this.#place(name, true) as [
      Map<RegistryNameElement, Slot<M> | undefined>,
      RegistryNameElement,
    ];
    if (map.has(key)) this.#dead--;
    map.set(key, slot);
    this.names++;
  }

  /** Replace the slot of a name that has one. */
  replace(name: RegistryName, slot: Slot<M>): void {
    const place = this.#place(name, false);
    place?.[0].set(place[1], slot);
  }

  /** Remove a name's slot, leaving a tombstone; rebuild once tombstones outnumber live names. */
  remove(name: RegistryName): void {
    const place = this.#place(name, false);
    if (place === undefined || place[0].get(place[1]) === undefined) return;
    place[0].set(place[1], undefined);
    this.names--;
    this.#dead++;
    if (this.#dead > this.names + SLACK) this.#rebuildNames();
  }

  /** Rebuild the name structures from the entries: no tombstones, no empty trie nodes. */
  #rebuildNames(): void {
    const slots: [RegistryName, Slot<M>][] = [];
    const seen = new Set<Slot<M>>();
    for (const entry of this.entries) {
      const slot = this.slotOf(entry.name);
      if (slot === undefined || seen.has(slot)) continue;
      seen.add(slot);
      slots.push([entry.name, slot]);
    }
    this.flat = new Map();
    this.tuples = new TrieNode();
    this.headKey = '';
    this.headNode = undefined;
    this.names = 0;
    this.#dead = 0;
    for (const [name, slot] of slots) this.add(name, slot);
  }

  addEntry(entry: Entry<M>): void {
    this.entries.add(entry);
    if (this.indexes.size === 0) return;
    for (const [field, index] of this.indexes) {
      forEachIndexValue(entry.metadata, field, (value) => {
        let set = index.get(value);
        if (set === undefined) {
          set = new Set();
          index.set(value, set);
        } else if (set.size === 0) this.#emptySets--;
        set.add(entry);
      });
    }
  }

  removeEntry(entry: Entry<M>): void {
    this.entries.delete(entry);
    if (this.indexes.size === 0) return;
    for (const [field, index] of this.indexes) {
      forEachIndexValue(entry.metadata, field, (value) => {
        const set = index.get(value);
        if (set === undefined || !set.delete(entry)) return;
        if (set.size === 0) this.#emptySets++;
      });
    }
    if (this.#emptySets > SLACK) this.#sweepIndexes();
  }

  /** Drop empty index sets once they are more than half of all sets. */
  #sweepIndexes(): void {
    let total = 0;
    for (const index of this.indexes.values()) total += index.size;
    if (this.#emptySets * 2 <= total) return;
    for (const [field, index] of this.indexes) {
      const live = new Map<unknown, Set<Entry<M>>>();
      for (const [value, set] of index) if (set.size > 0) live.set(value, set);
      this.indexes.set(field, live);
    }
    this.#emptySets = 0;
  }
}

/** The values `metadata[field]` is indexed under: each element of an array, else the value. */
function forEachIndexValue(metadata: RegistryMetadata, field: string, fn: (value: unknown) => void): void {
  if (!Object.hasOwn(metadata, field)) return;
  const value = metadata[field];
  if (value === undefined) return;
  if (Array.isArray(value)) for (const v of value) fn(v);
  else fn(value);
}

/** Does `metadata[field]` match `wanted`? The scan's rule, the same as the index's. */
function fieldMatches(metadata: RegistryMetadata, field: string, wanted: unknown): boolean {
  if (!Object.hasOwn(metadata, field)) return false;
  const value = metadata[field];
  if (value === wanted || (Number.isNaN(value) && Number.isNaN(wanted))) return true;
  return Array.isArray(value) && value.includes(wanted);
}

/** An agent with entries: its ref, its entries, and how to remove its exit hook. */
interface Holder<M extends RegistryMetadata> {
  readonly ref: AnyRef;
  readonly entries: Set<Entry<M>>;
  readonly unhook: () => void;
}

// ---- checks ------------------------------------------------------------------------------------

function frozenOrNotArray(value: unknown): boolean {
  return !Array.isArray(value) || Object.isFrozen(value);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function checkNamespace(namespace: unknown): asserts namespace is string {
  if (typeof namespace !== 'string' || namespace === '') {
    throw new InvalidArgumentError('registry namespace', 'must be a non-empty string', namespace);
  }
}

function isNameElement(value: unknown): value is RegistryNameElement {
  return typeof value === 'string' || (typeof value === 'number' && Number.isFinite(value));
}

/** Check a name (throws InvalidArgumentError naming it). */
function checkName(name: unknown): asserts name is RegistryName {
  if (isNameElement(name)) return;
  if (Array.isArray(name) && name.length > 0) {
    let ok = true;
    for (let i = 0; i < name.length && ok; i++) ok = isNameElement(name[i]);
    if (ok) return;
  }
  throw new InvalidArgumentError(
    'registry name',
    'must be a string, a finite number, or a non-empty array of them',
    name,
  );
}

/** Check a name and return it as stored: a tuple copied and frozen, so no one can change it. */
function ownName(name: unknown): RegistryName {
  checkName(name);
  return typeof name !== 'object' || Object.isFrozen(name) ? name : Object.freeze(name.slice());
}

/**
 * Check a name and copy a tuple, for a write that only finds by it: a write sent from inside an
 * agent waits in the owner's mailbox, and the caller may reuse its array meanwhile. Not frozen:
 * freezing costs more than the copy, and this copy is never handed out.
 */
function nameForWrite(name: unknown): RegistryName {
  checkName(name);
  return typeof name !== 'object' || Object.isFrozen(name) ? name : name.slice();
}

function checkPid(pid: unknown, what = 'pid'): asserts pid is AnyRef | Pid {
  if (!(pid instanceof AgentRef) && !isPid(pid)) {
    throw new InvalidArgumentError(what, 'must be an agent ref or a pid {node, thread, id}', pid);
  }
}

const NO_METADATA: RegistryMetadata = Object.freeze({});

/**
 * Copy and freeze metadata. Arrays under indexed fields are copied and frozen too: the index is
 * built from them, and a caller changing one afterwards would leave the index stale. Metadata
 * that is already frozen that deep is kept as it is.
 */
function freezeMetadata<M extends RegistryMetadata>(metadata: unknown, indexed: readonly string[]): M {
  if (metadata === undefined) return NO_METADATA as M;
  if (!isPlainObject(metadata)) {
    throw new InvalidArgumentError('registry metadata', 'must be a plain object', metadata);
  }
  if (Object.isFrozen(metadata) && indexed.every((f) => frozenOrNotArray(metadata[f]))) return metadata as M;
  const copy: Record<string, unknown> = { ...metadata };
  for (const field of indexed) {
    const value = copy[field];
    if (Array.isArray(value)) copy[field] = Object.freeze([...value]);
  }
  return Object.freeze(copy) as M;
}

const OPTION_KEYS = new Set(['keys', 'indexes', 'label']);

interface ResolvedOptions {
  readonly unique: boolean;
  readonly indexes: readonly string[];
  readonly label: string;
}

function resolveOptions(options: unknown): ResolvedOptions {
  if (options === undefined) return { unique: true, indexes: [], label: 'registry' };
  if (!isPlainObject(options))
    throw new InvalidArgumentError('registry options', 'must be an object', options);
  for (const key of Object.keys(options)) {
    if (!OPTION_KEYS.has(key)) {
      throw new InvalidArgumentError(`registry option ${JSON.stringify(key)}`, 'unknown option');
    }
  }
  const keys = options.keys ?? 'unique';
  if (keys !== 'unique' && keys !== 'duplicate') {
    throw new InvalidArgumentError('registry option "keys"', 'must be unique or duplicate', options.keys);
  }
  const indexes = options.indexes ?? [];
  if (
    !Array.isArray(indexes) ||
    !indexes.every((f) => typeof f === 'string' && f !== '') ||
    new Set(indexes).size !== indexes.length
  ) {
    throw new InvalidArgumentError(
      'registry option "indexes"',
      'must be an array of distinct non-empty field names',
      options.indexes,
    );
  }
  const label = options.label ?? 'registry';
  if (typeof label !== 'string' || label === '') {
    throw new InvalidArgumentError('registry option "label"', 'must be a non-empty string', options.label);
  }
  return { unique: keys === 'unique', indexes: Object.freeze([...indexes]), label };
}

// ---- the owner's protocol ----------------------------------------------------------------------

type WriteOp =
  | {
      readonly op: 'register';
      readonly namespace: string;
      readonly name: RegistryName;
      readonly pid: AnyRef | Pid;
      readonly metadata: RegistryMetadata;
    }
  | {
      readonly op: 'unregister';
      readonly namespace: string;
      readonly name: RegistryName;
      readonly pid: AnyRef | Pid | undefined;
    }
  | {
      readonly op: 'update';
      readonly namespace: string;
      readonly name: RegistryName;
      readonly pid: AnyRef | Pid | undefined;
      readonly update: RegistryMetadataUpdate<RegistryMetadata>;
    }
  | { readonly op: 'clear'; readonly namespace: string };

/**
 * A refused write: errors travel back as values, so a refusal never crashes the owner. Accepted
 * writes reply with their plain result (no wrapper to allocate on the common path).
 */
class Refused {
  constructor(readonly error: unknown) {}
}

type WriteReply = unknown;

function unwrap(answer: WriteReply): unknown {
  if (answer instanceof Refused) throw answer.error;
  return answer;
}

// biome-ignore lint/suspicious/noExplicitAny: the owner serves registries of any metadata type
type AnyRegistry = Registry<any, RegistryKeyMode>;

/** Set in Registry's static block: the owner reaches the registry's private write path. */
let applyWrite: (registry: AnyRegistry, op: WriteOp) => WriteReply;
let attachOwner: (registry: AnyRegistry, owner: AnyRef) => void;

/**
 * The owner agent: the single writer. Its state is only the registry it serves; the read model is
 * in the registry object, so a restarted owner continues where the last one stopped.
 */
export const RegistryOwner: Behaviour<AnyRegistry, AnyRegistry, WriteOp, WriteReply> = behaviour<
  AnyRegistry,
  AnyRegistry,
  WriteOp,
  WriteReply
>({
  init(registry, ctx) {
    if (!(registry instanceof Registry)) {
      throw new InvalidArgumentError('registry owner args', 'must be a Registry', registry);
    }
    attachOwner(registry, ctx.self);
    return registry;
  },
  handleCall(op, _from, registry) {
    return reply(applyWrite(registry, op), registry);
  },
});

// ---- the registry ------------------------------------------------------------------------------

const NO_REFS: readonly AnyRef[] = Object.freeze([]);

/**
 * A registry of named agents on one runtime. Create it with `Registry.start` (owner spawned at
 * once) or `Registry.create` plus `childSpec()` (owner under your supervisor).
 */
export class Registry<M extends RegistryMetadata = RegistryMetadata, K extends RegistryKeyMode = 'unique'> {
  readonly runtime: Runtime;
  /** A label for messages. */
  readonly label: string;
  /** `unique` or `duplicate`. */
  readonly keys: K;
  /** The indexed metadata fields. */
  readonly indexes: readonly string[];
  readonly #unique: boolean;
  #stores = new Map<string, Store<M>>();
  /** Stores left without entries (see #remove). */
  #emptyStores = 0;
  /**
   * The last namespace read, and its store: readers mostly stay in one namespace. Starts (and
   * resets to) '' rather than undefined, for the same reason as Store.headKey.
   */
  #lastNamespace: unknown = '';
  #lastStore: Store<M> | undefined = undefined;
  readonly #holders = new Map<number, Holder<M>>();
  #owner: AnyRef | undefined = undefined;
  #stopped = false;

  static {
    applyWrite = (registry, op) => registry.#apply(op);
    attachOwner = (registry, owner) => registry.#attach(owner);
  }

  private constructor(runtime: Runtime, options: ResolvedOptions) {
    this.runtime = runtime;
    this.label = options.label;
    this.keys = (options.unique ? 'unique' : 'duplicate') as K;
    this.indexes = options.indexes;
    this.#unique = options.unique;
  }

  /**
   * Make a registry on `runtime` with no owner yet: reads work at once, writes wait for an owner.
   * Start one by putting `childSpec()` under a supervisor (or spawning `RegistryOwner` with the
   * registry as args). Bad options throw InvalidArgumentError.
   */
  static create<M extends RegistryMetadata = RegistryMetadata>(
    runtime: Runtime,
    options?: RegistryOptions<M> & { readonly keys?: 'unique' },
  ): Registry<M, 'unique'>;
  static create<M extends RegistryMetadata = RegistryMetadata>(
    runtime: Runtime,
    options: RegistryOptions<M> & { readonly keys: 'duplicate' },
  ): Registry<M, 'duplicate'>;
  static create<M extends RegistryMetadata = RegistryMetadata>(
    runtime: Runtime,
    options?: RegistryOptions<M>,
  ): Registry<M, RegistryKeyMode>;
  static create(runtime: Runtime, options?: RegistryOptions): AnyRegistry {
    if (!(runtime instanceof Runtime)) {
      throw new InvalidArgumentError('registry runtime', 'must be a Runtime', runtime);
    }
    return new Registry(runtime, resolveOptions(options));
  }

  /**
   * Make a registry and spawn its owner: at top level when `site` is a runtime, linked to the agent
   * when it is an agent's context. The owner is not supervised; see `create` and `childSpec`.
   */
  static start<M extends RegistryMetadata = RegistryMetadata>(
    site: StartSite,
    options?: RegistryOptions<M> & { readonly keys?: 'unique' },
  ): Promise<Registry<M, 'unique'>>;
  static start<M extends RegistryMetadata = RegistryMetadata>(
    site: StartSite,
    options: RegistryOptions<M> & { readonly keys: 'duplicate' },
  ): Promise<Registry<M, 'duplicate'>>;
  static start<M extends RegistryMetadata = RegistryMetadata>(
    site: StartSite,
    options?: RegistryOptions<M>,
  ): Promise<Registry<M, RegistryKeyMode>>;
  static async start(site: StartSite, options?: RegistryOptions): Promise<AnyRegistry> {
    const runtime = site instanceof Runtime ? site : site?.runtime;
    const registry = Registry.create(runtime, options);
    if (site instanceof Runtime) await site.spawn(RegistryOwner, registry);
    else await site.spawnLink(RegistryOwner, registry);
    return registry;
  }

  /**
   * A child spec that runs this registry's owner under a supervisor. Restart is `transient`: a
   * crashed or killed owner is restarted (and attaches to the same read model), one stopped by
   * `stop()` is not.
   */
  childSpec(id: ChildId = 'registry', extras: Omit<ChildSpecExtras, 'type'> = {}): ChildSpec {
    const { options, ...rest } = extras;
    return {
      id,
      start:
        options === undefined
          ? { behaviour: RegistryOwner, args: this }
          : { behaviour: RegistryOwner, args: this, options },
      restart: 'transient',
      ...rest,
    };
  }

  /** The running owner agent, if any. */
  get owner(): AnyRef | undefined {
    return this.#owner;
  }

  /** True once `stop()` was called. */
  get stopped(): boolean {
    return this.#stopped;
  }

  // ---- reads: no mailbox -----------------------------------------------------------------------

  /**
   * The agent registered under `name` in `namespace` (undefined if none), or, in a duplicate
   * registry, every member (a frozen array, empty if none; in no promised order). A Map read on
   * the caller's thread: no message, no promise. A bad namespace or name throws
   * InvalidArgumentError.
   */
  lookup(namespace: string, name: RegistryName): RegistryLookup<K> {
    let store = namespace === this.#lastNamespace ? this.#lastStore : undefined;
    if (store === undefined) store = this.#storeOf(namespace);
    const slot = store === undefined ? undefined : store.find(name);
    if (slot === undefined) return this.#miss(namespace, name) as RegistryLookup<K>;
    return (this.#unique ? (slot as Entry<M>).ref : (slot as Group<M>).refs()) as RegistryLookup<K>;
  }

  /**
   * The entries under `name`: at most one in a unique registry, every member in a duplicate one.
   */
  entries(namespace: string, name: RegistryName): readonly RegistryEntry<M>[] {
    const slot = this.#storeOf(namespace)?.find(name);
    if (slot === undefined) {
      this.#miss(namespace, name);
      return [];
    }
    return slot instanceof Entry ? [slot] : slot.entries();
  }

  /**
   * The metadata of `name`'s holder (unique), or of member `pid` (duplicate; `pid` required there).
   * Undefined when not registered.
   */
  metadata(namespace: string, name: RegistryName, pid?: AnyRef | Pid): M | undefined {
    if (pid !== undefined) checkPid(pid);
    else if (!this.#unique) {
      throw new InvalidArgumentError('pid', 'is required to read a member of a duplicate registry');
    }
    const slot = this.#storeOf(namespace)?.find(name);
    if (slot === undefined) {
      this.#miss(namespace, name);
      return undefined;
    }
    const entry = slot instanceof Entry ? slot : slot.get((pid as Pid).id);
    if (entry === undefined || (pid !== undefined && !samePid(entry.ref, pid))) return undefined;
    return entry.metadata;
  }

  /**
   * Entries of `namespace` whose metadata matches `where` (see RegistryWhere; an empty object
   * matches all). Selecting on an indexed field reads the index (the smallest one, when several
   * fields are indexed) and checks the other fields on those entries only; otherwise the namespace
   * is scanned. Order is unspecified.
   */
  select(namespace: string, where: RegistryWhere<M> = {}): RegistryEntry<M>[] {
    checkNamespace(namespace);
    const store = this.#storeOf(namespace);
    if (typeof where === 'function') {
      if (store === undefined) return [];
      const out: RegistryEntry<M>[] = [];
      for (const e of store.entries) if (where(e)) out.push(e);
      return out;
    }
    const fields = checkWhere(where);
    if (store === undefined) return [];
    const candidates = this.#candidates(store, where, fields);
    const out: RegistryEntry<M>[] = [];
    if (candidates === null) return out;
    outer: for (const e of candidates) {
      for (const field of fields) {
        if (!fieldMatches(e.metadata, field, (where as Record<string, unknown>)[field])) continue outer;
      }
      out.push(e);
    }
    return out;
  }

  /**
   * Number of entries (members, in a duplicate registry): in `namespace`, or in all namespaces
   * when it is omitted; only those matching `where` when given.
   */
  count(namespace?: string, where?: RegistryWhere<M>): number {
    if (namespace === undefined) {
      if (where !== undefined) {
        throw new InvalidArgumentError('count', 'needs a namespace to count entries matching a query');
      }
      let n = 0;
      for (const store of this.#stores.values()) n += store.entries.size;
      return n;
    }
    checkNamespace(namespace);
    if (where === undefined) return this.#storeOf(namespace)?.entries.size ?? 0;
    if (typeof where !== 'function') {
      const fields = checkWhere(where);
      // One indexed field: the size of its index set, without building the list.
      if (fields.length === 1 && this.indexes.includes(fields[0] as string)) {
        const store = this.#storeOf(namespace);
        const set = store?.indexes
          .get(fields[0] as string)
          ?.get((where as Record<string, unknown>)[fields[0] as string]);
        return set?.size ?? 0;
      }
    }
    return this.select(namespace, where).length;
  }

  /** Every entry of `namespace`, or of every namespace when it is omitted. */
  list(namespace?: string): RegistryEntry<M>[] {
    if (namespace === undefined) {
      const out: RegistryEntry<M>[] = [];
      for (const store of this.#stores.values()) for (const e of store.entries) out.push(e);
      return out;
    }
    checkNamespace(namespace);
    const store = this.#storeOf(namespace);
    return store === undefined ? [] : [...store.entries];
  }

  /** The namespaces that hold at least one entry. */
  namespaces(): string[] {
    const out: string[] = [];
    for (const [namespace, store] of this.#stores) if (store.entries.size > 0) out.push(namespace);
    return out;
  }

  /** Every entry of one agent, in all namespaces. */
  entriesOf(pid: AnyRef | Pid): RegistryEntry<M>[] {
    checkPid(pid);
    const holder = this.#holderOf(pid);
    return holder === undefined ? [] : [...holder.entries];
  }

  /**
   * A destination for `runtime.call/cast/send` (and an agent's `ctx.call`...) that resolves
   * `name` in `namespace` at send time: `runtime.call(registry.via('prod', ['agent', 1]), msg)`.
   * Unregistered (or on another runtime): like an unknown name, so a call rejects at once with
   * E_NOPROC. Only for unique registries (a group has no single agent to deliver to).
   */
  via(namespace: string, name: RegistryName): Via {
    if (!this.#unique) {
      throw new InvalidArgumentError(
        'via',
        `${this.label} has duplicate keys; a via name must resolve to one agent`,
      );
    }
    checkNamespace(namespace);
    const key = ownName(name);
    const rendered = `${describe(key)} in ${this.label} namespace ${describe(namespace)}`;
    return {
      [VIA]: (runtime: Runtime) =>
        runtime === this.runtime ? (this.lookup(namespace, key) as AnyRef | undefined) : undefined,
      toString: () => rendered,
    } as Via;
  }

  // ---- writes: calls to the owner --------------------------------------------------------------

  /**
   * Register `pid` under `name` in `namespace` with `metadata` (a plain object; default `{}`).
   * Resolves once the entry is readable. Rejects with NameTakenError (E_ALREADY_REGISTERED, naming
   * the holder) if a unique name is taken or the agent is already a member of a duplicate name;
   * NoProcessError (E_NOPROC) if the agent is not alive on this runtime; InvalidArgumentError for
   * bad input. The entry is removed when the agent exits.
   */
  register(namespace: string, name: RegistryName, pid: AnyRef | Pid, metadata?: M): Promise<void> {
    let op: WriteOp;
    try {
      checkNamespace(namespace);
      checkPid(pid);
      op = {
        op: 'register',
        namespace,
        name: ownName(name),
        pid,
        metadata: freezeMetadata<M>(metadata, this.indexes),
      };
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#write(op) as Promise<void>;
  }

  /**
   * Remove `name` (unique), or all its members (duplicate). With `pid`, remove only that agent's
   * entry: in a unique registry only if it is the holder. Resolves true if anything was removed.
   */
  unregister(namespace: string, name: RegistryName, pid?: AnyRef | Pid): Promise<boolean> {
    let op: WriteOp;
    try {
      checkNamespace(namespace);
      if (pid !== undefined) checkPid(pid);
      op = { op: 'unregister', namespace, name: nameForWrite(name), pid };
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#write(op) as Promise<boolean>;
  }

  /**
   * Replace the metadata of `name` (unique; with `pid`, only if it is the holder) or of member `pid`
   * (duplicate; `pid` required), with a value or with a function of the current metadata (run by
   * the owner, so read-modify-write is atomic). Resolves with the new entry. Rejects with
   * NotRegisteredError (E_REGISTRY_NOT_REGISTERED) when there is no such entry.
   */
  updateMetadata(
    namespace: string,
    name: RegistryName,
    update: RegistryMetadataUpdate<M>,
    pid?: AnyRef | Pid,
  ): Promise<RegistryEntry<M>> {
    let value: RegistryMetadataUpdate<M>;
    let key: RegistryName;
    try {
      checkNamespace(namespace);
      key = nameForWrite(name);
      if (pid !== undefined) checkPid(pid);
      else if (!this.#unique) {
        throw new InvalidArgumentError('pid', 'is required to update a member of a duplicate registry');
      }
      value = typeof update === 'function' ? update : freezeMetadata<M>(update, this.indexes);
    } catch (error) {
      return Promise.reject(error);
    }
    const op: WriteOp = {
      op: 'update',
      namespace,
      name: key,
      pid,
      update: value as RegistryMetadataUpdate<RegistryMetadata>,
    };
    return this.#write(op) as Promise<RegistryEntry<M>>;
  }

  /** Remove every entry of `namespace` (for example a test's own namespace). Resolves with the count. */
  clear(namespace: string): Promise<number> {
    try {
      checkNamespace(namespace);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#write({ op: 'clear', namespace }) as Promise<number>;
  }

  /**
   * Stop the registry: drop every entry (and the exit hooks that watched their agents), refuse
   * further writes with RegistryStoppedError, and stop the owner (reason `normal`, so a linked
   * parent lives on and a supervisor does not restart it).
   */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const holder of this.#holders.values()) holder.unhook();
    this.#holders.clear();
    this.#stores.clear();
    this.#emptyStores = 0;
    this.#lastNamespace = '';
    this.#lastStore = undefined;
    const owner = this.#owner;
    this.#owner = undefined;
    if (owner !== undefined && this.runtime.isAlive(owner)) {
      await this.runtime.stop(owner, 'normal').catch(() => {
        // It exited on its own meanwhile: nothing left to stop.
      });
    }
  }

  /** The label and key mode, for messages. */
  toString(): string {
    return `${this.label} (${this.keys} keys)`;
  }

  // ---- internals -------------------------------------------------------------------------------

  #storeOf(namespace: string): Store<M> | undefined {
    const store = this.#stores.get(namespace);
    if (store !== undefined) {
      this.#lastNamespace = namespace;
      this.#lastStore = store;
    }
    return store;
  }

  /** A read found nothing: throw if that is because the input was bad, else answer "none". */
  #miss(namespace: unknown, name: unknown): RegistryLookup<K> {
    checkNamespace(namespace);
    checkName(name);
    return (this.#unique ? undefined : NO_REFS) as RegistryLookup<K>;
  }

  /** Entries to check against `where`: one index set, all entries, or null when none can match. */
  #candidates(store: Store<M>, where: object, fields: readonly string[]): Iterable<Entry<M>> | null {
    let best: Set<Entry<M>> | undefined;
    for (const field of fields) {
      const index = store.indexes.get(field);
      if (index === undefined) continue;
      const set = index.get((where as Record<string, unknown>)[field]);
      if (set === undefined) return null;
      if (best === undefined || set.size < best.size) best = set;
    }
    return best ?? store.entries;
  }

  #holderOf(pid: AnyRef | Pid): Holder<M> | undefined {
    const holder = this.#holders.get(pid.id);
    return holder !== undefined && samePid(holder.ref, pid) ? holder : undefined;
  }

  #attach(owner: AnyRef): void {
    if (this.#stopped) throw new RegistryStoppedError(this.label);
    if (
      owner.node !== this.runtime.node ||
      owner.thread !== this.runtime.thread ||
      !this.runtime.isAlive(owner)
    ) {
      throw new InvalidArgumentError('registry owner', `must run on the runtime of ${this.label}`, owner);
    }
    const current = this.#owner;
    if (current !== undefined && this.runtime.isAlive(current)) {
      throw new InvalidArgumentError(
        'registry owner',
        `${this.label} already has a running owner ${current}`,
      );
    }
    this.#owner = owner;
    this.runtime.onExit(owner, () => {
      if (this.#owner === owner) this.#owner = undefined;
    });
  }

  /** Send a write to the owner. Plain promise chaining: an async function here costs extra ticks. */
  #write(op: WriteOp): Promise<unknown> {
    if (this.#stopped) return Promise.reject(new RegistryStoppedError(this.label));
    const owner = this.#owner;
    if (owner === undefined) return Promise.reject(new RegistryUnavailableError(this.label));
    return this.runtime.call(owner, op).then(unwrap, this.#lost);
  }

  /** The owner was gone, or died with our write in its mailbox. */
  readonly #lost = (error: unknown): never => {
    if (error instanceof NoProcessError || error instanceof ExitError) {
      throw new RegistryUnavailableError(this.label, error);
    }
    throw error;
  };

  /** Apply one write; runs in the owner. Everything that can fail is checked before anything changes. */
  #apply(op: WriteOp): WriteReply {
    if (this.#stopped) return new Refused(new RegistryStoppedError(this.label));
    try {
      switch (op.op) {
        case 'register':
          return this.#register(op.namespace, op.name, op.pid, op.metadata as M);
        case 'unregister':
          return this.#unregister(op.namespace, op.name, op.pid);
        case 'update':
          return this.#update(op.namespace, op.name, op.pid, op.update as RegistryMetadataUpdate<M>);
        case 'clear':
          return this.#clear(op.namespace);
      }
    } catch (error) {
      return new Refused(error);
    }
  }

  #register(namespace: string, name: RegistryName, pid: AnyRef | Pid, metadata: M): void {
    const proc = this.runtime.resolve(pid);
    if (proc === undefined || !this.runtime.isAlive(proc.ref)) {
      throw new NoProcessError(describe(pid), 'cannot register an agent that is not alive on this runtime');
    }
    const ref = proc.ref as AnyRef;
    let store = this.#stores.get(namespace);
    const slot = store?.slotOf(name);
    if (slot instanceof Entry) throw new NameTakenError(namespace, name, slot.ref);
    if (slot?.get(ref.id) !== undefined) throw new NameTakenError(namespace, name, ref);
    if (store === undefined) {
      store = new Store<M>(namespace, this.indexes);
      this.#stores.set(namespace, store);
    } else if (store.entries.size === 0) this.#emptyStores--;
    const entry = new Entry(namespace, name, ref, metadata);
    if (this.#unique) store.add(name, entry);
    else {
      let group = slot;
      if (group === undefined) {
        group = new Group<M>();
        store.add(name, group);
      }
      group.add(entry);
    }
    store.addEntry(entry);
    let holder = this.#holders.get(ref.id);
    if (holder === undefined) {
      const id = ref.id;
      // Runs inside the agent's exit, before anyone can observe it (see the module comment).
      const unhook = this.runtime.onExit(ref, () => this.#dropHolder(id));
      holder = { ref, entries: new Set(), unhook };
      this.#holders.set(id, holder);
    }
    holder.entries.add(entry);
  }

  #unregister(namespace: string, name: RegistryName, pid: AnyRef | Pid | undefined): boolean {
    const slot = this.#stores.get(namespace)?.slotOf(name);
    if (slot === undefined) return false;
    if (slot instanceof Entry) {
      if (pid !== undefined && !samePid(slot.ref, pid)) return false;
      this.#remove(slot);
      return true;
    }
    if (pid !== undefined) {
      const entry = slot.get(pid.id);
      if (entry === undefined || !samePid(entry.ref, pid)) return false;
      this.#remove(entry);
      return true;
    }
    for (const entry of slot.entries()) this.#remove(entry);
    return true;
  }

  #update(
    namespace: string,
    name: RegistryName,
    pid: AnyRef | Pid | undefined,
    update: RegistryMetadataUpdate<M>,
  ): RegistryEntry<M> {
    let old = this.#entryFor(namespace, name, pid);
    let metadata: M;
    if (typeof update === 'function') {
      metadata = freezeMetadata<M>(update(old.metadata), this.indexes);
      // The updater is user code: it may have changed the registry (say, by killing an agent).
      old = this.#entryFor(namespace, name, pid);
    } else metadata = update;
    const store = this.#stores.get(namespace) as Store<M>;
    const entry = new Entry(namespace, old.name, old.ref, metadata);
    if (this.#unique) store.replace(old.name, entry);
    else (store.slotOf(old.name) as Group<M>).replace(entry);
    store.removeEntry(old);
    store.addEntry(entry);
    const holder = this.#holders.get(old.ref.id) as Holder<M>;
    holder.entries.delete(old);
    holder.entries.add(entry);
    return entry;
  }

  #entryFor(namespace: string, name: RegistryName, pid: AnyRef | Pid | undefined): Entry<M> {
    const slot = this.#stores.get(namespace)?.slotOf(name);
    if (slot === undefined) throw new NotRegisteredError(namespace, name);
    const entry = slot instanceof Entry ? slot : slot.get((pid as Pid).id);
    if (entry === undefined || (pid !== undefined && !samePid(entry.ref, pid))) {
      throw new NotRegisteredError(namespace, name, `is not held by ${describe(pid)}`);
    }
    return entry;
  }

  #clear(namespace: string): number {
    const store = this.#stores.get(namespace);
    if (store === undefined) return 0;
    const entries = [...store.entries];
    for (const entry of entries) this.#remove(entry);
    return entries.length;
  }

  /** The agent exited: drop its entries and its record. Runs in its exit hook (spent by now). */
  #dropHolder(id: number): void {
    const holder = this.#holders.get(id);
    if (holder === undefined) return;
    for (const entry of [...holder.entries]) this.#remove(entry);
    // Deleted outright: a pid's id never comes back, so no chain grows (see SLACK).
    this.#holders.delete(id);
  }

  /**
   * Remove one entry from every structure. The agent's record (and exit hook) stays while it
   * lives, even with no entries left: dropping and re-adding it on every unregister/register
   * pair would churn the same key (see SLACK), and the hook is what cleans up when it exits.
   */
  #remove(entry: Entry<M>): void {
    const store = this.#stores.get(entry.namespace) as Store<M>;
    const slot = store.slotOf(entry.name);
    if (slot instanceof Group) {
      slot.remove(entry.ref.id);
      if (slot.size === 0) store.remove(entry.name);
    } else store.remove(entry.name);
    store.removeEntry(entry);
    this.#holders.get(entry.ref.id)?.entries.delete(entry);
    if (store.entries.size === 0) {
      // Empty namespaces stay a while (a namespace emptied and refilled would churn its key),
      // and go once they outnumber the others, so per-test namespaces leave nothing behind.
      this.#emptyStores++;
      if (this.#emptyStores > this.#stores.size - this.#emptyStores + SLACK) this.#sweepStores();
    }
  }

  #sweepStores(): void {
    const live = new Map<string, Store<M>>();
    for (const [namespace, store] of this.#stores) if (store.entries.size > 0) live.set(namespace, store);
    this.#stores = live;
    this.#emptyStores = 0;
    this.#lastNamespace = '';
    this.#lastStore = undefined;
  }
}

function samePid(a: Pid, b: Pid): boolean {
  return a.id === b.id && a.thread === b.thread && a.node === b.node;
}

/** Check a `where` object; return its fields. */
function checkWhere(where: unknown): string[] {
  if (!isPlainObject(where)) {
    throw new InvalidArgumentError(
      'registry query',
      'must be an object of field values or a predicate',
      where,
    );
  }
  const fields = Object.keys(where);
  for (const field of fields) {
    if (where[field] === undefined) {
      throw new InvalidArgumentError(
        `registry query field ${JSON.stringify(field)}`,
        'must not be undefined',
      );
    }
  }
  return fields;
}
