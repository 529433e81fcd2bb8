/**
 * The in-memory backend: for tests and for logs that need not outlive the process. It keeps the
 * encoded records (not the caller's objects), so it behaves exactly like the SQLite backend: a
 * caller mutating an event after appending it cannot change the log, and every read returns fresh
 * objects.
 */
import { recordMatches, toStoredEvent } from './codec.js';
import type { EventBackend, EventRecord, PruneBound, ResolvedQuery, StoredEvent } from './types.js';

/** An event log held in memory. Lost with the process. */
export class MemoryEventLog implements EventBackend {
  readonly kind = 'memory';
  readonly location = 'memory';
  /** The records, oldest first. Seqs are contiguous (appends continue at lastSeq + 1, pruning cuts a prefix). */
  #records: EventRecord[] = [];
  #lastSeq = 0;
  #lastTimestamp = 0;
  #closed = false;

  get lastSeq(): number {
    return this.#lastSeq;
  }

  get lastTimestamp(): number {
    return this.#lastTimestamp;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Number of events held. */
  get size(): number {
    return this.#records.length;
  }

  append(records: readonly EventRecord[]): void {
    this.#open();
    // Check the whole batch before touching the log: all or nothing.
    let seq = this.#lastSeq;
    let ts = this.#lastTimestamp;
    for (const r of records) {
      if (r.seq !== seq + 1) throw new Error(`memory event log: expected seq ${seq + 1}, got ${r.seq}`);
      if (!(r.timestamp >= ts)) throw new Error(`memory event log: timestamp ${r.timestamp} is before ${ts}`);
      seq = r.seq;
      ts = r.timestamp;
    }
    for (const r of records) this.#records.push(r);
    this.#lastSeq = seq;
    this.#lastTimestamp = ts;
  }

  readFrom(fromSeq: number, limit: number): StoredEvent[] {
    this.#open();
    const start = this.#indexOfSeq(fromSeq);
    const end = Math.min(this.#records.length, start + limit);
    const out: StoredEvent[] = [];
    for (let i = start; i < end; i++) out.push(toStoredEvent(this.#records[i] as EventRecord));
    return out;
  }

  query(q: ResolvedQuery): StoredEvent[] {
    this.#open();
    const records = this.#records;
    // Seq and time bounds narrow the range by index (timestamps never decrease along seq).
    let lo = q.fromSeq === undefined ? 0 : this.#indexOfSeq(q.fromSeq);
    let hi = q.toSeq === undefined ? records.length : this.#indexOfSeq(q.toSeq);
    if (q.from !== undefined) lo = Math.max(lo, this.#firstAtOrAfter(q.from));
    if (q.to !== undefined) hi = Math.min(hi, this.#firstAtOrAfter(q.to));
    const limit = q.limit ?? Number.POSITIVE_INFINITY;
    const out: StoredEvent[] = [];
    if (q.types?.length === 0 || limit === 0) return out;
    if (q.order === 'asc') {
      for (let i = lo; i < hi && out.length < limit; i++) {
        const r = records[i] as EventRecord;
        if (recordMatches(q, r)) out.push(toStoredEvent(r));
      }
    } else {
      for (let i = hi - 1; i >= lo && out.length < limit; i--) {
        const r = records[i] as EventRecord;
        if (recordMatches(q, r)) out.push(toStoredEvent(r));
      }
    }
    return out;
  }

  prune(bound: PruneBound): number {
    this.#open();
    const n =
      'beforeSeq' in bound ? this.#indexOfSeq(bound.beforeSeq) : this.#firstAtOrAfter(bound.beforeTime);
    if (n > 0) this.#records.splice(0, n);
    return n;
  }

  close(): void {
    this.#closed = true;
    this.#records = [];
  }

  /** Index of the first record with seq >= `seq` (records.length if none). */
  #indexOfSeq(seq: number): number {
    const first = this.#records[0];
    if (first === undefined) return 0;
    return Math.min(this.#records.length, Math.max(0, seq - first.seq));
  }

  /** Index of the first record with timestamp >= `t` (binary search). */
  #firstAtOrAfter(t: number): number {
    const records = this.#records;
    let lo = 0;
    let hi = records.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((records[mid] as EventRecord).timestamp < t) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  #open(): void {
    if (this.#closed) throw new Error('memory event log is closed');
  }
}
