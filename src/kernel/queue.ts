/**
 * A growable ring-buffer FIFO. Used for run queues and, with two slots per entry, for mailboxes.
 * Shift is O(1) and does not leave holes behind like `Array.prototype.shift` on big arrays.
 */
export class Queue<T> {
  #items: (T | undefined)[];
  #head = 0;
  #size = 0;
  #mask: number;

  constructor(initialCapacity = 16) {
    let cap = 4;
    while (cap < initialCapacity) cap <<= 1;
    this.#items = new Array(cap);
    this.#mask = cap - 1;
  }

  get length(): number {
    return this.#size;
  }

  push(item: T): void {
    if (this.#size > this.#mask) this.#grow();
    this.#items[(this.#head + this.#size) & this.#mask] = item;
    this.#size++;
  }

  /** Removes and returns the oldest item (undefined when empty). */
  shift(): T | undefined {
    if (this.#size === 0) return undefined;
    const i = this.#head;
    const item = this.#items[i];
    this.#items[i] = undefined;
    this.#head = (i + 1) & this.#mask;
    this.#size--;
    return item;
  }

  peek(): T | undefined {
    return this.#size === 0 ? undefined : this.#items[this.#head];
  }

  /** Removes every item for which `drop` returns true, keeping order. */
  removeWhere(drop: (item: T) => boolean): number {
    const kept: T[] = [];
    let removed = 0;
    while (this.#size > 0) {
      const item = this.shift() as T;
      if (drop(item)) removed++;
      else kept.push(item);
    }
    for (const item of kept) this.push(item);
    return removed;
  }

  toArray(): T[] {
    const out: T[] = [];
    for (let k = 0; k < this.#size; k++) out.push(this.#items[(this.#head + k) & this.#mask] as T);
    return out;
  }

  clear(): void {
    this.#items = new Array(4);
    this.#mask = 3;
    this.#head = 0;
    this.#size = 0;
  }

  #grow(): void {
    const old = this.#items;
    const cap = old.length;
    const next = new Array<T | undefined>(cap * 2);
    for (let k = 0; k < this.#size; k++) next[k] = old[(this.#head + k) & this.#mask];
    this.#items = next;
    this.#head = 0;
    this.#mask = cap * 2 - 1;
  }
}
