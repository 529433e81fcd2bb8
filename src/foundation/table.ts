/**
 * Owned tables, the ETS analogue: key/value tables that an agent owns, read and written
 * synchronously on the table object (no mailbox, so a read costs a Map or B-tree lookup), and
 * dropped the moment their owner exits unless an heir inherits them.
 *
 * - Kinds: `set` (hash: a Map) and `ordered_set` (a B+ tree kept sorted by key, for point lookups
 *   and ordered range scans alike).
 * - Keys: numbers (not NaN), strings, and tuples (arrays of keys, compared elementwise). Order
 *   across types: numbers < strings < tuples; a tuple sorts after every tuple it is a prefix of
 *   (so `[a]` < `[a, b]`), which keeps all keys with one tuple prefix together.
 * - Access, as in ETS: `public` (anyone reads and writes), `protected` (the default: anyone
 *   reads, only the owner writes), `private` (only the owner reads or writes). The caller is the
 *   agent whose callback is running (`runtime.self()`); code that runs after an `await` inside a
 *   handler is no longer "inside" its agent, so it acts through `table.as(ctx)`.
 * - Lifetime: bound to the owner with `runtime.onExit`, which runs before anyone can observe the
 *   exit, so nobody ever sees a table whose owner is gone. With an heir, the heir becomes the owner
 *   and receives `{type: 'TABLE-TRANSFER', table, from, heirData}`; otherwise the table is dropped
 *   and every later use throws NoTableError (E_NO_TABLE).
 *
 * There is no module state: a `Tables` object belongs to one runtime and holds its table names.
 */
import {
  type AgentContext,
  AgentRef,
  AlreadyRegisteredError,
  type AnyRef,
  describe,
  InvalidArgumentError,
  MabeamError,
  NoProcessError,
  type Runtime,
} from '../kernel/index.js';

// ---- errors ------------------------------------------------------------------------------------

/** Error codes of owned tables (unique across the project, never reused). */
export const TableErrorCodes = {
  /** The table was dropped (its owner exited without an heir, or `drop` was called). */
  NO_TABLE: 'E_NO_TABLE',
  /** The access mode forbids this operation to this caller. */
  TABLE_ACCESS: 'E_TABLE_ACCESS',
  /** `insertNew` found the key already present. */
  KEY_EXISTS: 'E_TABLE_KEY_EXISTS',
  /** `updateCounter` found no entry and was given no initial value. */
  NO_KEY: 'E_TABLE_NO_KEY',
  /** An ordered operation (`range`) on a `set` table. */
  NOT_ORDERED: 'E_TABLE_NOT_ORDERED',
} as const;

/** Any use of a dropped table. */
export class NoTableError extends MabeamError {
  readonly table: string;
  constructor(table: string, why: string) {
    super(TableErrorCodes.NO_TABLE, `${table} no longer exists (${why})`);
    this.table = table;
  }
}

/** The table's access mode does not let this caller do this. */
export class TableAccessError extends MabeamError {
  readonly table: string;
  readonly operation: string;
  constructor(table: string, operation: string, caller: AnyRef | undefined, rule: string) {
    const who = caller === undefined ? 'code outside any agent' : `agent ${caller}`;
    super(TableErrorCodes.TABLE_ACCESS, `${operation} on ${table} by ${who} refused: ${rule}`);
    this.table = table;
    this.operation = operation;
  }
}

/** `insertNew` of a key that is present. */
export class KeyExistsError extends MabeamError {
  readonly key: unknown;
  constructor(table: string, key: unknown) {
    super(TableErrorCodes.KEY_EXISTS, `key ${describe(key)} already exists in ${table}`);
    this.key = key;
  }
}

/** `updateCounter` of an absent key without an initial value. */
export class NoKeyError extends MabeamError {
  readonly key: unknown;
  constructor(table: string, key: unknown) {
    super(TableErrorCodes.NO_KEY, `no key ${describe(key)} in ${table} (and no initial value given)`);
    this.key = key;
  }
}

/** An ordered operation on a table of kind `set`. */
export class NotOrderedError extends MabeamError {
  constructor(table: string, operation: string) {
    super(TableErrorCodes.NOT_ORDERED, `${operation} needs an ordered_set, but ${table} is a set`);
  }
}

// ---- keys --------------------------------------------------------------------------------------

/** A table key: a number (not NaN), a string, or a tuple of keys. */
export type TableKey = number | string | readonly TableKey[];

/** `set`: hashed, unordered. `ordered_set`: sorted by key, with range scans. */
export type TableKind = 'set' | 'ordered_set';

/** Who may read and write (see the module comment). */
export type TableAccess = 'public' | 'protected' | 'private';

/**
 * The total order on keys: numbers < strings < tuples; numbers and strings by `<` (strings by
 * UTF-16 code units), tuples elementwise with a proper prefix first. Negative, zero or positive.
 */
export function compareKeys(a: TableKey, b: TableKey): number {
  if (typeof a === 'number') {
    if (typeof b === 'number') return a < b ? -1 : a > b ? 1 : 0;
    return -1;
  }
  if (typeof a === 'string') {
    if (typeof b === 'string') return a < b ? -1 : a > b ? 1 : 0;
    return typeof b === 'number' ? 1 : -1;
  }
  if (typeof b !== 'object') return 1;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const c = compareKeys(a[i] as TableKey, b[i] as TableKey);
    if (c !== 0) return c;
  }
  return a.length - b.length;
}

function isKey(k: unknown): k is TableKey {
  const t = typeof k;
  if (t === 'string') return true;
  if (t === 'number') return !Number.isNaN(k); // NaN is unequal to everything: it could never be found
  if (!Array.isArray(k)) return false;
  for (const e of k) if (!isKey(e)) return false;
  return true;
}

function checkKey(k: unknown, what = 'table key'): void {
  if (!isKey(k))
    throw new InvalidArgumentError(what, 'must be a number (not NaN), a string or a tuple of keys', k);
}

/**
 * A stored tuple key is a frozen deep copy: the caller may reuse or change its array afterwards
 * without moving the entry to the wrong place in the tree or hash. -0 is stored as 0 (as a Map
 * does), so both kinds hand back the same key.
 */
function ownKey<K extends TableKey>(k: K): K {
  if (typeof k === 'number') return (k === 0 ? 0 : k) as K;
  if (typeof k !== 'object') return k;
  const copy = (k as readonly TableKey[]).map(ownKey);
  return Object.freeze(copy) as unknown as K;
}

/** A tuple's hash key. Strings are JSON-quoted, so no element can imitate a separator. */
function encodeTuple(t: readonly TableKey[]): string {
  let s = '[';
  for (let i = 0; i < t.length; i++) {
    if (i > 0) s += ',';
    const e = t[i];
    if (typeof e === 'number')
      s += e === 0 ? '0' : String(e); // -0 and 0 are the same key
    else if (typeof e === 'string') s += JSON.stringify(e);
    else s += encodeTuple(e as readonly TableKey[]);
  }
  return `${s}]`;
}

function hasTuplePrefix(key: TableKey, prefix: readonly TableKey[]): boolean {
  if (typeof key !== 'object' || key.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) {
    if (compareKeys(key[i] as TableKey, prefix[i] as TableKey) !== 0) return false;
  }
  return true;
}

function matchesPrefix(key: TableKey, prefix: string | readonly TableKey[]): boolean {
  return typeof prefix === 'string'
    ? typeof key === 'string' && key.startsWith(prefix)
    : hasTuplePrefix(key, prefix);
}

// ---- stores ------------------------------------------------------------------------------------

/** One entry as returned by scans. */
export type Entry<K, V> = [key: K, value: V];

/** Result of a store write: whether a new key was added, or an existing key kept (insertNew). */
enum Put {
  Replaced = 0,
  Inserted = 1,
  Exists = 2,
}

interface Store<K extends TableKey, V> {
  readonly size: number;
  get(key: K): V | undefined;
  /** `onlyNew`: leave an existing entry alone and return Put.Exists. */
  put(key: K, value: V, onlyNew: boolean): Put;
  delete(key: K): boolean;
  clear(): void;
  entries(): IterableIterator<Entry<K, V>>;
  matchPrefix(prefix: string | readonly TableKey[], limit: number): Entry<K, V>[];
}

/**
 * `set`: numbers and strings go straight into a Map; tuples, which a Map would compare by
 * identity, go into a second Map under their encoding (a separate Map, so that no string key can
 * collide with a tuple's encoding).
 */
class HashStore<K extends TableKey, V> implements Store<K, V> {
  /** Number and string keys (shared with Core.fast for the read fast path; never replaced). */
  readonly prims = new Map<K, V>();
  #tuples: Map<string, Entry<K, V>> | null = null;

  get size(): number {
    return this.prims.size + (this.#tuples === null ? 0 : this.#tuples.size);
  }

  get(key: K): V | undefined {
    if (typeof key !== 'object') return this.prims.get(key);
    // A non-key could encode like a real tuple (an object encodes as []), so it finds nothing.
    if (this.#tuples === null || !isKey(key)) return undefined;
    return this.#tuples.get(encodeTuple(key as readonly TableKey[]))?.[1];
  }

  put(key: K, value: V, onlyNew: boolean): Put {
    if (typeof key !== 'object') {
      const prims = this.prims;
      if (onlyNew && prims.has(key)) return Put.Exists;
      const before = prims.size;
      prims.set(key, value);
      return prims.size === before ? Put.Replaced : Put.Inserted;
    }
    if (this.#tuples === null) this.#tuples = new Map();
    const code = encodeTuple(key as readonly TableKey[]);
    const entry = this.#tuples.get(code);
    if (entry !== undefined) {
      if (onlyNew) return Put.Exists;
      entry[1] = value;
      return Put.Replaced;
    }
    this.#tuples.set(code, [ownKey(key), value]);
    return Put.Inserted;
  }

  delete(key: K): boolean {
    if (typeof key !== 'object') return this.prims.delete(key);
    if (this.#tuples === null || !isKey(key)) return false;
    return this.#tuples.delete(encodeTuple(key as readonly TableKey[]));
  }

  clear(): void {
    this.prims.clear();
    // In place, not just dropped: an iteration that is under way must see the entries go, as it
    // does for `prims` (a Map iterator over a cleared Map ends).
    this.#tuples?.clear();
    this.#tuples = null;
  }

  *entries(): IterableIterator<Entry<K, V>> {
    for (const e of this.prims) yield e;
    if (this.#tuples !== null) for (const [k, v] of this.#tuples.values()) yield [k, v];
  }

  matchPrefix(prefix: string | readonly TableKey[], limit: number): Entry<K, V>[] {
    const out: Entry<K, V>[] = [];
    if (limit <= 0) return out;
    if (typeof prefix === 'string') {
      for (const [k, v] of this.prims) {
        if (typeof k === 'string' && k.startsWith(prefix)) {
          out.push([k, v]);
          if (out.length >= limit) break;
        }
      }
    } else if (this.#tuples !== null) {
      for (const [k, v] of this.#tuples.values()) {
        if (hasTuplePrefix(k, prefix)) {
          out.push([k, v]);
          if (out.length >= limit) break;
        }
      }
    }
    return out;
  }
}

// B+ tree nodes. Leaves hold the entries and are linked both ways for range scans in either
// direction; branches hold separators: every key in kids[i] < keys[i] <= every key in kids[i+1].
class Leaf<K, V> {
  keys: K[];
  vals: V[];
  prev: Leaf<K, V> | null = null;
  next: Leaf<K, V> | null = null;
  constructor(keys: K[], vals: V[]) {
    this.keys = keys;
    this.vals = vals;
  }
}

class Branch<K, V> {
  keys: K[];
  kids: Node<K, V>[];
  constructor(keys: K[], kids: Node<K, V>[]) {
    this.keys = keys;
    this.kids = kids;
  }
}

type Node<K, V> = Leaf<K, V> | Branch<K, V>;

/**
 * Node fan-out. 64 keeps a 10,000-key tree three levels deep and a node's binary search within a
 * cache-friendly array; nodes below a quarter full are merged or refilled from a sibling, so the
 * height stays logarithmic in the live size whatever the insert/delete pattern.
 */
const MAX = 64;
const MIN = 16;

/** First index whose key is >= key. */
function lowerBound<K extends TableKey>(keys: readonly K[], key: K): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareKeys(keys[mid] as K, key) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** First index whose key is > key. */
function upperBound<K extends TableKey>(keys: readonly K[], key: K): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareKeys(keys[mid] as K, key) <= 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** A position in the leaf chain. */
interface Pos<K, V> {
  leaf: Leaf<K, V>;
  i: number;
}

/**
 * `ordered_set`: a B+ tree. A sorted array would insert in O(n) (a 1M-key table moves megabytes
 * per insert); a skip list chases a pointer per comparison. The tree gives O(log n) for both and
 * scans leaf arrays in order.
 */
class TreeStore<K extends TableKey, V> implements Store<K, V> {
  #root: Node<K, V> = new Leaf<K, V>([], []);
  #size = 0;
  /** Bumped on every insert or delete of a key, so live iterators know to re-seek. */
  version = 0;
  /** The separator produced by the last split (a second return value of #insert). */
  #sep: K | undefined;

  get size(): number {
    return this.#size;
  }

  #leafFor(key: K): Leaf<K, V> {
    let node = this.#root;
    while (node instanceof Branch) node = node.kids[upperBound(node.keys, key)] as Node<K, V>;
    return node;
  }

  get(key: K): V | undefined {
    // A non-key (NaN compares equal to every number) cannot be present, and must not match.
    if (typeof key !== 'string' && (typeof key !== 'number' || Number.isNaN(key)) && !isKey(key))
      return undefined;
    const leaf = this.#leafFor(key);
    const i = lowerBound(leaf.keys, key);
    return i < leaf.keys.length && compareKeys(leaf.keys[i] as K, key) === 0 ? leaf.vals[i] : undefined;
  }

  put(key: K, value: V, onlyNew: boolean): Put {
    if (this.#insert(this.#root, key, value, onlyNew)) return onlyNew ? Put.Exists : Put.Replaced;
    const right = this.#split;
    if (right !== null) {
      this.#split = null;
      this.#root = new Branch([this.#sep as K], [this.#root, right]);
    }
    return Put.Inserted;
  }

  /** The new right sibling from the last split (with #sep), or null. */
  #split: Node<K, V> | null = null;

  /** Insert below `node`; true when the key was already there. A split is left in #split/#sep. */
  #insert(node: Node<K, V>, key: K, value: V, onlyNew: boolean): boolean {
    if (node instanceof Leaf) {
      const keys = node.keys;
      const i = lowerBound(keys, key);
      if (i < keys.length && compareKeys(keys[i] as K, key) === 0) {
        if (!onlyNew) node.vals[i] = value;
        return true;
      }
      keys.splice(i, 0, ownKey(key));
      node.vals.splice(i, 0, value);
      this.#size++;
      this.version++;
      if (keys.length > MAX) {
        const half = keys.length >>> 1;
        const right = new Leaf(keys.splice(half), node.vals.splice(half));
        right.next = node.next;
        if (right.next !== null) right.next.prev = right;
        right.prev = node;
        node.next = right;
        this.#sep = right.keys[0] as K;
        this.#split = right;
      }
      return false;
    }
    const i = upperBound(node.keys, key);
    if (this.#insert(node.kids[i] as Node<K, V>, key, value, onlyNew)) return true;
    const right = this.#split;
    if (right === null) return false;
    node.keys.splice(i, 0, this.#sep as K);
    node.kids.splice(i + 1, 0, right);
    this.#split = null;
    if (node.kids.length > MAX) {
      const half = node.kids.length >>> 1;
      const kids = node.kids.splice(half);
      const keys = node.keys.splice(half);
      this.#sep = node.keys.pop() as K;
      this.#split = new Branch(keys, kids);
    }
    return false;
  }

  delete(key: K): boolean {
    if (!isKey(key)) return false;
    if (!this.#remove(this.#root, key)) return false;
    const root = this.#root;
    if (root instanceof Branch && root.kids.length === 1) this.#root = root.kids[0] as Node<K, V>;
    return true;
  }

  #remove(node: Node<K, V>, key: K): boolean {
    if (node instanceof Leaf) {
      const i = lowerBound(node.keys, key);
      if (i >= node.keys.length || compareKeys(node.keys[i] as K, key) !== 0) return false;
      node.keys.splice(i, 1);
      node.vals.splice(i, 1);
      this.#size--;
      this.version++;
      return true;
    }
    const i = upperBound(node.keys, key);
    const kid = node.kids[i] as Node<K, V>;
    if (!this.#remove(kid, key)) return false;
    if ((kid instanceof Leaf ? kid.keys.length : kid.kids.length) < MIN) rebalance(node, i);
    return true;
  }

  clear(): void {
    this.#root = new Leaf<K, V>([], []);
    this.#size = 0;
    this.version++;
  }

  #first(): Leaf<K, V> {
    let node = this.#root;
    while (node instanceof Branch) node = node.kids[0] as Node<K, V>;
    return node;
  }

  #last(): Leaf<K, V> {
    let node = this.#root;
    while (node instanceof Branch) node = node.kids[node.kids.length - 1] as Node<K, V>;
    return node;
  }

  /** The first entry with a key >= `key` (> `key` when `after`); may point past a leaf's end. */
  seek(key: K | undefined, after: boolean): Pos<K, V> {
    if (key === undefined) return { leaf: this.#first(), i: 0 };
    const leaf = this.#leafFor(key);
    return { leaf, i: after ? upperBound(leaf.keys, key) : lowerBound(leaf.keys, key) };
  }

  /** The last entry with a key <= `key` (< `key` when `before`); i may be -1. */
  seekBack(key: K | undefined, before: boolean): Pos<K, V> {
    if (key === undefined) {
      const leaf = this.#last();
      return { leaf, i: leaf.keys.length - 1 };
    }
    const leaf = this.#leafFor(key);
    return { leaf, i: (before ? lowerBound(leaf.keys, key) : upperBound(leaf.keys, key)) - 1 };
  }

  entries(): IterableIterator<Entry<K, V>> {
    return new TreeCursor(this);
  }

  /**
   * Entries from `from` (inclusive) to `to` (exclusive, or inclusive when asked), ascending or
   * descending, at most `limit`.
   */
  range(
    from: K | undefined,
    to: K | undefined,
    inclusive: boolean,
    reverse: boolean,
    limit: number,
  ): Entry<K, V>[] {
    const out: Entry<K, V>[] = [];
    if (limit <= 0) return out;
    if (!reverse) {
      let { leaf, i } = this.seek(from, false);
      let l: Leaf<K, V> | null = leaf;
      while (l !== null) {
        const keys = l.keys;
        for (; i < keys.length; i++) {
          const k = keys[i] as K;
          if (to !== undefined) {
            const c = compareKeys(k, to);
            if (c > 0 || (c === 0 && !inclusive)) return out;
          }
          out.push([k, l.vals[i] as V]);
          if (out.length >= limit) return out;
        }
        l = l.next;
        i = 0;
      }
      return out;
    }
    const { leaf, i: start } = this.seekBack(to, !inclusive);
    let l: Leaf<K, V> | null = leaf;
    let i = start;
    while (l !== null) {
      for (; i >= 0; i--) {
        const k = l.keys[i] as K;
        if (from !== undefined && compareKeys(k, from) < 0) return out;
        out.push([k, l.vals[i] as V]);
        if (out.length >= limit) return out;
      }
      l = l.prev;
      if (l !== null) i = l.keys.length - 1;
    }
    return out;
  }

  matchPrefix(prefix: string | readonly TableKey[], limit: number): Entry<K, V>[] {
    // Keys with one prefix are contiguous and start at the prefix itself (see compareKeys).
    const out: Entry<K, V>[] = [];
    if (limit <= 0) return out;
    let { leaf, i } = this.seek(prefix as K, false);
    let l: Leaf<K, V> | null = leaf;
    while (l !== null) {
      for (; i < l.keys.length; i++) {
        const k = l.keys[i] as K;
        if (!matchesPrefix(k, prefix)) return out;
        out.push([k, l.vals[i] as V]);
        if (out.length >= limit) return out;
      }
      l = l.next;
      i = 0;
    }
    return out;
  }
}

/** Refill or merge the under-full child `parent.kids[i]` with a sibling. */
function rebalance<K, V>(parent: Branch<K, V>, i: number): void {
  const j = i > 0 ? i - 1 : i; // separator between left = kids[j] and right = kids[j + 1]
  const left = parent.kids[j] as Node<K, V>;
  const right = parent.kids[j + 1] as Node<K, V>;
  if (left instanceof Leaf) {
    const r = right as Leaf<K, V>;
    if (left.keys.length + r.keys.length <= MAX) {
      left.keys.push(...r.keys);
      left.vals.push(...r.vals);
      left.next = r.next;
      if (r.next !== null) r.next.prev = left;
      parent.keys.splice(j, 1);
      parent.kids.splice(j + 1, 1);
      return;
    }
    const keys = left.keys.concat(r.keys);
    const vals = left.vals.concat(r.vals);
    const half = keys.length >>> 1;
    left.keys = keys.slice(0, half);
    left.vals = vals.slice(0, half);
    r.keys = keys.slice(half);
    r.vals = vals.slice(half);
    parent.keys[j] = r.keys[0] as K;
    return;
  }
  const r = right as Branch<K, V>;
  const sep = parent.keys[j] as K;
  if (left.kids.length + r.kids.length <= MAX) {
    left.keys.push(sep, ...r.keys);
    left.kids.push(...r.kids);
    parent.keys.splice(j, 1);
    parent.kids.splice(j + 1, 1);
    return;
  }
  const keys = [...left.keys, sep, ...r.keys];
  const kids = left.kids.concat(r.kids);
  const half = kids.length >>> 1;
  left.kids = kids.slice(0, half);
  left.keys = keys.slice(0, half - 1);
  parent.keys[j] = keys[half - 1] as K;
  r.kids = kids.slice(half);
  r.keys = keys.slice(half);
}

/**
 * A live ascending iterator over a tree. It remembers the last key it returned; when the tree
 * changed shape since (a key inserted or deleted), it seeks past that key again, so iterating
 * while writing neither skips nor repeats entries that stay, and sees keys added ahead of it.
 */
class TreeCursor<K extends TableKey, V> implements IterableIterator<Entry<K, V>> {
  readonly #tree: TreeStore<K, V>;
  #pos: Pos<K, V>;
  #version: number;
  #last: K | undefined = undefined;
  #started = false;

  constructor(tree: TreeStore<K, V>) {
    this.#tree = tree;
    this.#pos = tree.seek(undefined, false);
    this.#version = tree.version;
  }

  [Symbol.iterator](): IterableIterator<Entry<K, V>> {
    return this;
  }

  next(): IteratorResult<Entry<K, V>> {
    const tree = this.#tree;
    if (tree.version !== this.#version) {
      this.#pos = this.#started ? tree.seek(this.#last, true) : tree.seek(undefined, false);
      this.#version = tree.version;
    }
    let { leaf, i } = this.#pos;
    while (i >= leaf.keys.length) {
      if (leaf.next === null) {
        this.#pos = { leaf, i };
        return { done: true, value: undefined };
      }
      leaf = leaf.next;
      i = 0;
    }
    const key = leaf.keys[i] as K;
    this.#pos = { leaf, i: i + 1 };
    this.#last = key;
    this.#started = true;
    return { done: false, value: [key, leaf.vals[i] as V] };
  }
}

// ---- tables ------------------------------------------------------------------------------------

/** Options of `Tables.create`. */
export interface TableOptions {
  /** Default `set`. */
  kind?: TableKind;
  /** Default `protected` (as in ETS). */
  access?: TableAccess;
  /** Register the table under this name in its `Tables` (unique there; freed when it is dropped). */
  name?: string;
  /** Inherits the table when the owner exits (if still alive then). */
  heir?: AnyRef;
  /** Sent to the heir with the table, as `heirData`. */
  heirData?: unknown;
}

/** What a new owner receives (as an info message) when it inherits or is given a table. */
export interface TableTransfer<K extends TableKey = TableKey, V = unknown> {
  readonly type: 'TABLE-TRANSFER';
  readonly table: Table<K, V>;
  /** The previous owner. */
  readonly from: AnyRef;
  /** The heir's `heirData`, or the gift of `giveAway`. */
  readonly heirData: unknown;
}

/** Options of `range`. */
export interface RangeOptions {
  /** Most entries returned (default: all). */
  limit?: number;
  /** Descending order (from `to` down to `from`). */
  reverse?: boolean;
  /** Include an entry whose key equals `to` (default false: the range is `[from, to)`). */
  inclusive?: boolean;
}

/** Options of `matchPrefix`. */
export interface MatchOptions {
  /** Most entries returned (default: all). */
  limit?: number;
}

/** A table's properties, from `info()`. */
export interface TableInfo {
  readonly id: number;
  readonly name: string | undefined;
  readonly kind: TableKind;
  readonly access: TableAccess;
  readonly owner: AnyRef;
  readonly heir: AnyRef | undefined;
  readonly size: number;
}

/** The state every handle on one table shares (the table itself and its `as(ctx)` views). */
interface Core<K extends TableKey, V> {
  readonly id: number;
  readonly name: string | undefined;
  readonly kind: TableKind;
  readonly access: TableAccess;
  readonly runtime: Runtime;
  readonly registry: Registry;
  store: Store<K, V>;
  /**
   * A set's Map of number and string keys (the store's own) while anyone may read it, for the
   * read fast path; null for an ordered_set, a private table, or once dropped.
   */
  fast: Map<K, V> | null;
  owner: AnyRef;
  heir: AnyRef | undefined;
  heirData: unknown;
  /** Anyone may read: not private and not dropped (the one check on the read path). */
  readOpen: boolean;
  /** Anyone may write: public and not dropped. */
  writeOpen: boolean;
  /** Why it was dropped, or null while it exists. */
  dropped: string | null;
  /** Removes the exit hook on the current owner. */
  unhook: (() => void) | null;
  /** The table handle given to the owner (not a view), sent in TABLE-TRANSFER messages. */
  main: Table<K, V> | null;
}

const KINDS = new Set<string>(['set', 'ordered_set']);
const ACCESS = new Set<string>(['public', 'protected', 'private']);
const OPTION_KEYS = new Set(['kind', 'access', 'name', 'heir', 'heirData']);
const NO_LIMIT = Number.POSITIVE_INFINITY;

function checkLimit(limit: number | undefined): number {
  if (limit === undefined) return NO_LIMIT;
  if (!(Number.isInteger(limit) && limit >= 0) && limit !== NO_LIMIT) {
    throw new InvalidArgumentError('limit', 'must be an integer >= 0', limit);
  }
  return limit;
}

/**
 * True if `ctx` is the context `runtime` gave a live agent: the kernel's context of an agent is
 * its process, which is what the runtime resolves the agent's ref to (an object that merely names
 * the agent resolves to something else, a dead agent's ref to nothing).
 */
function isLiveContext(runtime: Runtime, ctx: AgentContext): boolean {
  return runtime.resolve(ctx.self) === ctx;
}

function refOf(who: AnyRef | AgentContext, what: string): AnyRef {
  if (who instanceof AgentRef) return who;
  if (who !== null && typeof who === 'object' && (who as AgentContext).self instanceof AgentRef) {
    return (who as AgentContext).self;
  }
  throw new InvalidArgumentError(what, 'must be an agent ref or an agent context', who);
}

/** Table's constructor, for `Tables.create` and `as` only (set in Table's static block). */
let newTable: <K extends TableKey, V>(core: Core<K, V>, as: AgentContext | null) => Table<K, V>;

/**
 * One table. Reads and writes run synchronously on the caller's thread, checked against the
 * access mode and the caller (`runtime.self()`, or the context bound with `as`). Create tables
 * with `Tables.create`.
 */
export class Table<K extends TableKey = TableKey, V = unknown> {
  readonly #c: Core<K, V>;
  /** The caller this handle acts as (`as(ctx)`), or null: whoever runs (`runtime.self()`). */
  readonly #as: AgentContext | null;

  private constructor(core: Core<K, V>, as: AgentContext | null) {
    this.#c = core;
    this.#as = as;
  }

  static {
    newTable = (core, as) => new Table(core, as);
  }

  // ---- properties (never throw, also after the drop) ----

  /** The table's number in its `Tables` (unique there). */
  get id(): number {
    return this.#c.id;
  }

  get name(): string | undefined {
    return this.#c.name;
  }

  get kind(): TableKind {
    return this.#c.kind;
  }

  get access(): TableAccess {
    return this.#c.access;
  }

  /** The current owner (the last one, once dropped). */
  get owner(): AnyRef {
    return this.#c.owner;
  }

  get heir(): AnyRef | undefined {
    return this.#c.heir;
  }

  /** True once the table was dropped; every other use then throws NoTableError. */
  get dropped(): boolean {
    return this.#c.dropped !== null;
  }

  toString(): string {
    const c = this.#c;
    return c.name === undefined ? `table #${c.id}` : `table #${c.id} (${JSON.stringify(c.name)})`;
  }

  /**
   * A handle on the same table that acts as the agent of `ctx`, for an owner's code that runs
   * after an `await` in a handler (where `runtime.self()` no longer names it). `ctx` must be the
   * context the runtime gave that agent (an object that merely names an agent is refused), and the
   * agent must be alive whenever the handle is used: once it has exited, the handle's checked
   * operations throw TableAccessError.
   */
  as(ctx: AgentContext): Table<K, V> {
    if (ctx === null || typeof ctx !== 'object' || !(ctx.self instanceof AgentRef)) {
      throw new InvalidArgumentError('table caller', 'must be an agent context', ctx);
    }
    if (ctx.runtime !== this.#c.runtime) {
      throw new InvalidArgumentError('table caller', `must be an agent of the table's runtime`, ctx.self);
    }
    if (!isLiveContext(this.#c.runtime, ctx)) {
      throw new InvalidArgumentError(
        'table caller',
        `must be the context of a live agent (the one its runtime gave it), not an object naming ${ctx.self}`,
        ctx.self,
      );
    }
    return newTable(this.#c, ctx);
  }

  // ---- access checks ----

  /** The caller; throws TableAccessError (for `op`) if the bound context is no longer its agent's. */
  #caller(op: string): AnyRef | undefined {
    const as = this.#as;
    if (as === null) return this.#c.runtime.self();
    if (!isLiveContext(this.#c.runtime, as)) {
      throw new TableAccessError(
        this.toString(),
        op,
        as.self,
        'the context bound with as() is not a live agent context (its agent has exited)',
      );
    }
    return as.self;
  }

  #isOwner(op: string): boolean {
    const caller = this.#caller(op);
    return caller?.equals(this.#c.owner) === true;
  }

  /** The slow path of a read: dropped, or private. */
  #checkRead(op: string): void {
    const c = this.#c;
    if (c.dropped !== null) throw new NoTableError(this.toString(), c.dropped);
    if (!this.#isOwner(op)) {
      throw new TableAccessError(
        this.toString(),
        op,
        this.#caller(op),
        `private, only its owner ${c.owner} may read it`,
      );
    }
  }

  /** The slow path of a write: dropped, protected or private. */
  #checkWrite(op: string): void {
    const c = this.#c;
    if (c.dropped !== null) throw new NoTableError(this.toString(), c.dropped);
    if (!this.#isOwner(op)) {
      throw new TableAccessError(
        this.toString(),
        op,
        this.#caller(op),
        `${c.access}, only its owner ${c.owner} may write it`,
      );
    }
  }

  /** Owner-only operations (giveAway, setHeir), whatever the access mode. */
  #checkOwner(op: string): void {
    const c = this.#c;
    if (c.dropped !== null) throw new NoTableError(this.toString(), c.dropped);
    if (!this.#isOwner(op)) {
      throw new TableAccessError(
        this.toString(),
        op,
        this.#caller(op),
        `only its owner ${c.owner} may do this`,
      );
    }
  }

  // ---- reads ----

  /** The value under `key`, or undefined. */
  get(key: K): V | undefined {
    const c = this.#c;
    // The hot path (an open set, a number or string key): one load, one test, the Map lookup.
    const fast = c.fast;
    if (fast !== null && typeof key !== 'object') return fast.get(key);
    if (!c.readOpen) this.#checkRead('get');
    return c.store.get(key);
  }

  has(key: K): boolean {
    const c = this.#c;
    if (!c.readOpen) this.#checkRead('has');
    return c.store.get(key) !== undefined;
  }

  /** Number of entries. */
  get size(): number {
    const c = this.#c;
    if (!c.readOpen) this.#checkRead('size');
    return c.store.size;
  }

  /**
   * Entries whose key is a string starting with `prefix` (a string), or a tuple starting with the
   * elements of `prefix` (a tuple; a key equal to it counts). An ordered_set seeks to the first
   * match and returns them in key order; a set scans every entry.
   */
  matchPrefix(prefix: string | readonly TableKey[], options: MatchOptions = {}): Entry<K, V>[] {
    const c = this.#c;
    if (!c.readOpen) this.#checkRead('matchPrefix');
    if (typeof prefix !== 'string') checkKey(prefix, 'prefix');
    if (typeof prefix === 'number')
      throw new InvalidArgumentError('prefix', 'must be a string or a tuple', prefix);
    return c.store.matchPrefix(prefix, checkLimit(options.limit));
  }

  /**
   * An ordered_set's entries with keys from `from` (inclusive) to `to` (exclusive unless
   * `inclusive`), in key order or (`reverse`) the opposite, at most `limit`. An undefined bound is
   * open. Throws NotOrderedError on a set.
   */
  range(from?: K, to?: K, options: RangeOptions = {}): Entry<K, V>[] {
    const c = this.#c;
    if (!c.readOpen) this.#checkRead('range');
    if (!(c.store instanceof TreeStore)) throw new NotOrderedError(this.toString(), 'range');
    if (from !== undefined) checkKey(from, 'range start');
    if (to !== undefined) checkKey(to, 'range end');
    const limit = checkLimit(options.limit);
    return c.store.range(from, to, options.inclusive === true, options.reverse === true, limit);
  }

  /**
   * Every entry. An ordered_set: in key order. A set: first the number and string keys, in
   * insertion order, then the tuple keys, in insertion order (the two are kept apart, so a set's
   * order is not its overall insertion order; sort, or use an ordered_set, where order matters).
   * Lazy and live: writes during the iteration are seen as a Map iterator sees them: an entry
   * deleted or cleared before it is reached is not yielded, a new one may be (ordered_set: keys
   * after the current one appear, none is repeated). Throws NoTableError if the table is dropped
   * meanwhile.
   */
  entries(): IterableIterator<Entry<K, V>> {
    const c = this.#c;
    if (!c.readOpen) this.#checkRead('entries');
    return this.#guard(c.store.entries(), (e) => e);
  }

  /** Every key (order as in `entries`). */
  keys(): IterableIterator<K> {
    const c = this.#c;
    if (!c.readOpen) this.#checkRead('keys');
    return this.#guard(c.store.entries(), (e) => e[0]);
  }

  /** Every value (order as in `entries`). */
  values(): IterableIterator<V> {
    const c = this.#c;
    if (!c.readOpen) this.#checkRead('values');
    return this.#guard(c.store.entries(), (e) => e[1]);
  }

  [Symbol.iterator](): IterableIterator<Entry<K, V>> {
    return this.entries();
  }

  *#guard<T>(it: Iterator<Entry<K, V>>, pick: (e: Entry<K, V>) => T): IterableIterator<T> {
    const c = this.#c;
    for (;;) {
      if (c.dropped !== null) throw new NoTableError(this.toString(), c.dropped);
      const r = it.next();
      if (r.done === true) return;
      yield pick(r.value);
    }
  }

  /** Name, kind, access, owner, heir and size. */
  info(): TableInfo {
    const c = this.#c;
    if (!c.readOpen) this.#checkRead('info');
    return {
      id: c.id,
      name: c.name,
      kind: c.kind,
      access: c.access,
      owner: c.owner,
      heir: c.heir,
      size: c.store.size,
    };
  }

  // ---- writes ----

  /** Insert or replace. `value` may not be undefined (undefined is what `get` returns for "absent"). */
  put(key: K, value: V): void {
    const c = this.#c;
    if (!c.writeOpen) this.#checkWrite('put');
    if (typeof key !== 'string' && (typeof key !== 'number' || Number.isNaN(key))) checkKey(key);
    if (value === undefined)
      throw new InvalidArgumentError(`value for key ${describe(key)}`, 'must not be undefined');
    c.store.put(key, value, false);
  }

  /** Insert only if the key is absent; throws KeyExistsError (E_TABLE_KEY_EXISTS) otherwise. */
  insertNew(key: K, value: V): void {
    const c = this.#c;
    if (!c.writeOpen) this.#checkWrite('insertNew');
    checkKey(key);
    if (value === undefined)
      throw new InvalidArgumentError(`value for key ${describe(key)}`, 'must not be undefined');
    if (c.store.put(key, value, true) === Put.Exists) throw new KeyExistsError(this.toString(), key);
  }

  /** Remove the entry; false if there was none. */
  delete(key: K): boolean {
    const c = this.#c;
    if (!c.writeOpen) this.#checkWrite('delete');
    return c.store.delete(key);
  }

  /**
   * Add `incr` to the number under `key` and return the result. An absent key starts from
   * `initial`, or throws NoKeyError (E_TABLE_NO_KEY) without one; a key holding something other
   * than a number throws E_INVALID_ARGUMENT.
   */
  updateCounter(this: Table<K, number>, key: K, incr: number, initial?: number): number {
    const c = this.#c;
    if (!c.writeOpen) this.#checkWrite('updateCounter');
    checkKey(key);
    if (typeof incr !== 'number' || !Number.isFinite(incr)) {
      throw new InvalidArgumentError('counter increment', 'must be a finite number', incr);
    }
    let current = c.store.get(key);
    if (current === undefined) {
      if (initial === undefined) throw new NoKeyError(this.toString(), key);
      if (typeof initial !== 'number' || !Number.isFinite(initial)) {
        throw new InvalidArgumentError('counter initial value', 'must be a finite number', initial);
      }
      current = initial;
    } else if (typeof current !== 'number') {
      throw new InvalidArgumentError(
        `counter at key ${describe(key)} in ${this}`,
        'must hold a number',
        current,
      );
    }
    const next = current + incr;
    c.store.put(key, next, false);
    return next;
  }

  /** Remove every entry. */
  clear(): void {
    const c = this.#c;
    if (!c.writeOpen) this.#checkWrite('clear');
    c.store.clear();
  }

  // ---- ownership ----

  /**
   * Make `newOwner` the owner now; it receives a TABLE-TRANSFER message with `gift` as
   * `heirData`. Only the owner may give a table away.
   */
  giveAway(newOwner: AnyRef, gift?: unknown): void {
    this.#checkOwner('giveAway');
    const c = this.#c;
    const to = refOf(newOwner, 'new owner');
    if (to.equals(c.owner)) throw new InvalidArgumentError('new owner', 'already owns the table', to);
    if (!c.runtime.isAlive(to))
      throw new NoProcessError(to.toString(), 'cannot give a table to a dead agent');
    transfer(c, to, gift);
  }

  /** Set (or with undefined, clear) the heir and the data it will receive. Owner only. */
  setHeir(heir: AnyRef | undefined, heirData?: unknown): void {
    this.#checkOwner('setHeir');
    const c = this.#c;
    c.heir = heir === undefined ? undefined : refOf(heir, 'heir');
    c.heirData = heir === undefined ? undefined : heirData;
  }

  /** Drop the table now (needs write access: the owner, or anyone for a public table). */
  drop(): void {
    const c = this.#c;
    if (!c.writeOpen) this.#checkWrite('drop');
    const by = this.#as === null ? c.runtime.self() : this.#as.self;
    dropTable(c, `dropped by ${by ?? 'code outside any agent'}`);
  }
}

/** The live tables and names of one `Tables`. */
interface Registry {
  readonly live: Set<Core<TableKey, unknown>>;
  readonly names: Map<string, Core<TableKey, unknown>>;
}

/**
 * The owned tables of one runtime: creates them, binds each to its owner's exit, and keeps the
 * names of named tables. Make one per runtime (names are unique within it).
 */
export class Tables {
  readonly runtime: Runtime;
  readonly #reg: Registry = { live: new Set(), names: new Map() };
  #nextId = 0;

  constructor(runtime: Runtime) {
    if (runtime === null || typeof runtime !== 'object' || typeof runtime.onExit !== 'function') {
      throw new InvalidArgumentError('runtime', 'must be a Runtime', runtime);
    }
    this.runtime = runtime;
  }

  /**
   * Create a table owned by `owner` (its ref, or its context), which must be alive. The table is
   * dropped when the owner exits, unless `heir` is alive then and inherits it.
   */
  create<K extends TableKey = TableKey, V = unknown>(
    owner: AnyRef | AgentContext,
    options: TableOptions = {},
  ): Table<K, V> {
    const ownerRef = refOf(owner, 'table owner');
    checkOptions(options);
    const rt = this.runtime;
    if (!rt.isAlive(ownerRef)) throw new NoProcessError(ownerRef.toString(), 'a table owner must be alive');
    const { kind = 'set', access = 'protected', name } = options;
    const reg = this.#reg;
    if (name !== undefined) {
      const holder = reg.names.get(name);
      if (holder !== undefined) throw new AlreadyRegisteredError(name, String(holder.main));
    }
    const store = kind === 'set' ? new HashStore<K, V>() : new TreeStore<K, V>();
    const core: Core<K, V> = {
      id: ++this.#nextId,
      name,
      kind,
      access,
      runtime: rt,
      registry: reg,
      store,
      fast: store instanceof HashStore && access !== 'private' ? store.prims : null,
      owner: ownerRef,
      heir: options.heir,
      heirData: options.heirData,
      readOpen: access !== 'private',
      writeOpen: access === 'public',
      dropped: null,
      unhook: null,
      main: null,
    };
    const table = newTable(core, null);
    core.main = table;
    const anyCore = core as unknown as Core<TableKey, unknown>;
    reg.live.add(anyCore);
    if (name !== undefined) reg.names.set(name, anyCore);
    bindOwner(core);
    return table;
  }

  /** The table registered under `name`, if it exists. The types are the caller's assertion. */
  whereis<K extends TableKey = TableKey, V = unknown>(name: string): Table<K, V> | undefined {
    const core = this.#reg.names.get(name);
    return core === undefined ? undefined : (core.main as unknown as Table<K, V>);
  }

  /** Every table that exists, oldest first. */
  all(): Table[] {
    return [...this.#reg.live].map((c) => c.main as Table);
  }

  /** Number of tables that exist. */
  get count(): number {
    return this.#reg.live.size;
  }
}

/** Drop or hand on the table when its owner exits. */
function bindOwner<K extends TableKey, V>(core: Core<K, V>): void {
  core.unhook = core.runtime.onExit(core.owner, (reason) => {
    core.unhook = null;
    ownerExited(core, reason);
  });
}

/** Runs in the owner's exit hook, before anyone can see the exit. */
function ownerExited<K extends TableKey, V>(core: Core<K, V>, reason: unknown): void {
  if (core.dropped !== null) return;
  const heir = core.heir;
  if (heir !== undefined && !heir.equals(core.owner) && core.runtime.isAlive(heir)) {
    const data = core.heirData;
    // The heir is used up: it is now the owner and may name a new heir.
    core.heir = undefined;
    core.heirData = undefined;
    transfer(core, heir, data);
    return;
  }
  dropTable(core, `its owner ${core.owner} exited with reason ${describe(reason)}`);
}

/** Make `to` the owner and tell it. */
function transfer<K extends TableKey, V>(core: Core<K, V>, to: AnyRef, heirData: unknown): void {
  const from = core.owner;
  core.unhook?.();
  core.owner = to;
  bindOwner(core);
  const msg: TableTransfer<K, V> = {
    type: 'TABLE-TRANSFER',
    table: core.main as Table<K, V>,
    from,
    heirData,
  };
  try {
    core.runtime.send(to, msg);
  } catch {
    // A full mailbox with the reject policy: the agent owns the table all the same (it can see
    // so in `table.owner`); ownership must not hinge on a message getting through.
  }
}

function dropTable<K extends TableKey, V>(core: Core<K, V>, why: string): void {
  if (core.dropped !== null) return;
  core.dropped = why;
  core.readOpen = false;
  core.fast = null;
  core.writeOpen = false;
  core.unhook?.();
  core.unhook = null;
  // Free the entries now: a dropped table's handle may live on in some closure.
  core.store.clear();
  const anyCore = core as unknown as Core<TableKey, unknown>;
  const reg = core.registry;
  reg.live.delete(anyCore);
  if (core.name !== undefined && reg.names.get(core.name) === anyCore) reg.names.delete(core.name);
}

function checkOptions(o: TableOptions): void {
  if (o === null || typeof o !== 'object')
    throw new InvalidArgumentError('table options', 'must be an object', o);
  for (const key of Object.keys(o)) {
    if (!OPTION_KEYS.has(key))
      throw new InvalidArgumentError(`table option ${JSON.stringify(key)}`, 'unknown option');
  }
  if (o.kind !== undefined && !KINDS.has(o.kind)) {
    throw new InvalidArgumentError('table option "kind"', 'must be set or ordered_set', o.kind);
  }
  if (o.access !== undefined && !ACCESS.has(o.access)) {
    throw new InvalidArgumentError('table option "access"', 'must be public, protected or private', o.access);
  }
  if (o.name !== undefined && (typeof o.name !== 'string' || o.name === '')) {
    throw new InvalidArgumentError('table option "name"', 'must be a non-empty string', o.name);
  }
  if (o.heir !== undefined && !(o.heir instanceof AgentRef)) {
    throw new InvalidArgumentError('table option "heir"', 'must be an agent ref', o.heir);
  }
}
