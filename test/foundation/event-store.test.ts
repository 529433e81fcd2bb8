import fs from 'node:fs';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  COMMIT_EVENT,
  EventStore,
  EventStoreErrorCodes,
  MemoryEventLog,
  SqliteEventLog,
  StoreClosedError,
  type StoredEvent,
} from '../../src/foundation/event-store/index.js';
import {
  behaviour,
  ErrorCodes,
  InvalidArgumentError,
  type Measurements,
  type Metadata,
  Runtime,
  reply,
} from '../../src/kernel/index.js';
import { BACKENDS, manualClock, range, seqs, tempDir } from './event-store-helpers.js';

let tmp: ReturnType<typeof tempDir>;
let rt: Runtime;

beforeEach(() => {
  tmp = tempDir();
  rt = new Runtime();
});

afterEach(async () => {
  await rt.shutdown();
  tmp.cleanup();
});

function commits(runtime: Runtime): { measurements: Measurements; metadata: Metadata }[] {
  const seen: { measurements: Measurements; metadata: Metadata }[] = [];
  runtime.telemetry.attach('test-commits', COMMIT_EVENT, (_e, measurements, metadata) =>
    seen.push({ measurements, metadata }),
  );
  return seen;
}

describe.each(BACKENDS)('$kind backend', ({ kind, open }) => {
  describe('append', () => {
    it('gives gapless increasing seqs and timestamps from the injected clock', async () => {
      const clock = manualClock(5_000);
      const store = await open(rt, tmp.dir, { clock });
      expect(store.backendKind).toBe(kind);
      expect(store.lastSeq).toBe(0);
      const a = await store.append({ type: 'order.placed', data: { id: 1 } });
      expect(a).toEqual({ seq: 1, type: 'order.placed', data: { id: 1 }, timestamp: 5_000 });
      clock.advance(10);
      const b = await store.append({
        type: 'order.paid',
        data: [1, 'x', null],
        correlationId: 'c-1',
        causationId: '1',
        metadata: { by: 'agent-7' },
      });
      expect(b).toEqual({
        seq: 2,
        type: 'order.paid',
        data: [1, 'x', null],
        timestamp: 5_010,
        correlationId: 'c-1',
        causationId: '1',
        metadata: { by: 'agent-7' },
      });
      expect(store.lastSeq).toBe(2);
      expect(await store.query()).toEqual([a, b]);
    });

    it('commits an appendBatch atomically with consecutive seqs and one timestamp', async () => {
      const store = await open(rt, tmp.dir, { clock: manualClock(7) });
      await store.append({ type: 'first', data: null });
      const batch = await store.appendBatch(range(1, 5).map((i) => ({ type: 't', data: i })));
      expect(seqs(batch)).toEqual([2, 3, 4, 5, 6]);
      expect(new Set(batch.map((e) => e.timestamp))).toEqual(new Set([7]));
      expect(batch.map((e) => e.data)).toEqual([1, 2, 3, 4, 5]);
      expect(await store.appendBatch([])).toEqual([]);
    });

    it('never lets timestamps go back along seq, even when the clock does', async () => {
      const clock = manualClock(1_000);
      const store = await open(rt, tmp.dir, { clock });
      await store.append({ type: 't', data: 1 });
      clock.set(400);
      const e = await store.append({ type: 't', data: 2 });
      expect(e.timestamp).toBe(1_000);
    });

    it('stores a copy: mutating the appended data changes nothing', async () => {
      const store = await open(rt, tmp.dir);
      const data = { list: [1] };
      const stored = await store.append({ type: 't', data });
      data.list.push(2);
      expect(stored.data).toEqual({ list: [1] });
      expect((await store.query())[0]?.data).toEqual({ list: [1] });
    });

    it('refuses bad events with E_INVALID_ARGUMENT naming the field, and commits nothing', async () => {
      const store = await open(rt, tmp.dir);
      const cyclic: Record<string, unknown> = {};
      cyclic.self = cyclic;
      const cases: [unknown, string][] = [
        [null, 'event'],
        ['x', 'event'],
        [{ data: 1 }, 'event.type'],
        [{ type: '', data: 1 }, 'event.type'],
        [{ type: 7, data: 1 }, 'event.type'],
        [{ type: 't' }, 'event.data'],
        [{ type: 't', data: () => 1 }, 'event.data'],
        [{ type: 't', data: 10n }, 'event.data'],
        [{ type: 't', data: cyclic }, 'event.data'],
        [{ type: 't', data: 1, correlationId: 5 }, 'event.correlationId'],
        [{ type: 't', data: 1, causationId: '' }, 'event.causationId'],
        [{ type: 't', data: 1, metadata: [1] }, 'event.metadata'],
        [{ type: 't', data: 1, seq: 9 }, 'event.seq'],
        [{ type: 't', data: 1, timestamp: 9 }, 'event.timestamp'],
        [{ type: 't', data: 1, colour: 'red' }, 'event.colour'],
      ];
      for (const [event, field] of cases) {
        const error = await store.append(event as never).catch((e: unknown) => e);
        expect(error, field).toBeInstanceOf(InvalidArgumentError);
        expect((error as InvalidArgumentError).code).toBe(ErrorCodes.INVALID_ARGUMENT);
        expect((error as InvalidArgumentError).argument).toBe(field);
      }
      const bad = await store
        .appendBatch([
          { type: 'ok', data: 1 },
          { type: 'ok', data: 2 },
          { type: 'bad', data: undefined },
        ])
        .catch((e: unknown) => e);
      expect((bad as InvalidArgumentError).argument).toBe('events[2].data');
      await expect(store.appendBatch('x' as never)).rejects.toMatchObject({ argument: 'events' });
      expect(await store.query()).toEqual([]);
      expect(store.lastSeq).toBe(0);
    });
  });

  describe('query', () => {
    async function fixture() {
      const clock = manualClock(100);
      const store = await open(rt, tmp.dir, { clock });
      // seq 1..12: types cycle a, b, c; timestamps 100, 110, ...; correlation by seq parity
      for (let i = 1; i <= 12; i++) {
        await store.append({
          type: ['a', 'b', 'c'][(i - 1) % 3] as string,
          data: i,
          ...(i % 2 === 0 ? { correlationId: 'even' } : {}),
        });
        clock.advance(10);
      }
      return store;
    }

    it('filters by type, types, time range, correlation id and seq range', async () => {
      const store = await fixture();
      expect(seqs(await store.query({ type: 'a' }))).toEqual([1, 4, 7, 10]);
      expect(seqs(await store.query({ types: ['a', 'c'] }))).toEqual([1, 3, 4, 6, 7, 9, 10, 12]);
      expect(seqs(await store.query({ types: ['a', 'c'], type: 'c' }))).toEqual([3, 6, 9, 12]);
      expect(seqs(await store.query({ types: ['a'], type: 'c' }))).toEqual([]);
      expect(seqs(await store.query({ types: [] }))).toEqual([]);
      // timestamps: seq n has 100 + 10 (n - 1); [from, to) is half-open
      expect(seqs(await store.query({ from: 130, to: 170 }))).toEqual([4, 5, 6, 7]);
      expect(seqs(await store.query({ from: 135 }))).toEqual(range(5, 12));
      expect(seqs(await store.query({ to: 101 }))).toEqual([1]);
      expect(seqs(await store.query({ from: 10_000 }))).toEqual([]);
      expect(seqs(await store.query({ to: 0 }))).toEqual([]);
      expect(seqs(await store.query({ correlationId: 'even' }))).toEqual([2, 4, 6, 8, 10, 12]);
      expect(seqs(await store.query({ correlationId: 'none' }))).toEqual([]);
      expect(seqs(await store.query({ fromSeq: 10 }))).toEqual([10, 11, 12]);
      expect(seqs(await store.query({ toSeq: 3 }))).toEqual([1, 2]);
      expect(seqs(await store.query({ fromSeq: 3, toSeq: 6, type: 'c' }))).toEqual([3]);
      expect(seqs(await store.query({ type: 'b', correlationId: 'even', from: 150 }))).toEqual([8]);
    });

    it('orders asc or desc and limits in that order', async () => {
      const store = await fixture();
      expect(seqs(await store.query({ limit: 3 }))).toEqual([1, 2, 3]);
      expect(seqs(await store.query({ order: 'desc', limit: 3 }))).toEqual([12, 11, 10]);
      expect(seqs(await store.query({ order: 'desc', type: 'b', limit: 2 }))).toEqual([11, 8]);
      expect(seqs(await store.query({ order: 'desc', toSeq: 5, limit: 2 }))).toEqual([4, 3]);
      expect(seqs(await store.query({ limit: 0 }))).toEqual([]);
      expect((await store.query({ order: 'desc' })).map((e) => e.data)).toEqual(range(1, 12).reverse());
    });

    it('refuses bad queries naming the field', async () => {
      const store = await open(rt, tmp.dir);
      const cases: [unknown, string][] = [
        [7, 'query'],
        [{ type: '' }, 'query.type'],
        [{ types: 'a' }, 'query.types'],
        [{ types: ['a', 3] }, 'query.types[1]'],
        [{ from: Number.NaN }, 'query.from'],
        [{ to: '1' }, 'query.to'],
        [{ fromSeq: -1 }, 'query.fromSeq'],
        [{ toSeq: 1.5 }, 'query.toSeq'],
        [{ limit: -2 }, 'query.limit'],
        [{ order: 'up' }, 'query.order'],
        [{ correlationId: 3 }, 'query.correlationId'],
        [{ since: 3 }, 'query.since'],
      ];
      for (const [q, field] of cases) {
        await expect(store.query(q as never), field).rejects.toMatchObject({
          code: 'E_INVALID_ARGUMENT',
          argument: field,
        });
      }
    });
  });

  describe('prune', () => {
    it('removes a prefix by seq or by time, and seqs continue, never reused', async () => {
      const clock = manualClock(0);
      const store = await open(rt, tmp.dir, { clock });
      for (let i = 1; i <= 10; i++) {
        await store.append({ type: 't', data: i });
        clock.advance(10);
      }
      expect(await store.prune({ beforeSeq: 4 })).toBe(3);
      expect(seqs(await store.query())).toEqual(range(4, 10));
      // seq n has timestamp 10 (n - 1): before 60 means seqs 4, 5, 6
      expect(await store.prune({ beforeTime: 60 })).toBe(3);
      expect(seqs(await store.query())).toEqual(range(7, 10));
      expect(await store.prune({ beforeSeq: 2 })).toBe(0);
      expect(await store.prune({ beforeTime: 1e9 })).toBe(4);
      expect(await store.query()).toEqual([]);
      expect(store.lastSeq).toBe(10);
      clock.set(5);
      const next = await store.append({ type: 't', data: 11 });
      expect(next.seq).toBe(11);
      expect(next.timestamp).toBe(90); // not before the pruned events
    });

    it('runs in order with the appends issued before it', async () => {
      const store = await open(rt, tmp.dir);
      const appends = range(1, 5).map((i) => store.append({ type: 't', data: i }));
      const pruned = store.prune({ beforeSeq: 4 });
      const later = store.append({ type: 't', data: 6 });
      expect(await pruned).toBe(3);
      await Promise.all([...appends, later]);
      expect(seqs(await store.query())).toEqual([4, 5, 6]);
    });

    it('refuses bad bounds', async () => {
      const store = await open(rt, tmp.dir);
      for (const bound of [null, {}, { beforeSeq: 1, beforeTime: 2 }, { before: 1 }, { beforeSeq: -1 }]) {
        await expect(store.prune(bound as never)).rejects.toMatchObject({ code: 'E_INVALID_ARGUMENT' });
      }
      await expect(store.prune({ beforeTime: Number.POSITIVE_INFINITY })).rejects.toMatchObject({
        argument: 'prune bound.beforeTime',
      });
    });
  });

  describe('group commit', () => {
    it('commits concurrent appends in few transactions, each caller getting its own event', async () => {
      const store = await open(rt, tmp.dir);
      const seen = commits(rt);
      const results = await Promise.all(range(1, 1000).map((i) => store.append({ type: 't', data: i })));
      // Issued in one synchronous run: all wait for the same flush.
      expect(seen.length).toBe(1);
      expect(seen[0]?.measurements.events).toBe(1000);
      expect(seen[0]?.metadata).toMatchObject({
        store: store.name,
        backend: kind,
        requests: 1000,
        firstSeq: 1,
      });
      expect(typeof seen[0]?.measurements.duration).toBe('number');
      expect(results.map((e) => e.data)).toEqual(range(1, 1000));
      expect(seqs(results)).toEqual(range(1, 1000));
    });

    it('caps a transaction at maxBatch events without splitting a request', async () => {
      const store = await open(rt, tmp.dir, { maxBatch: 10 });
      const seen = commits(rt);
      const singles = range(1, 25).map((i) => store.append({ type: 't', data: i }));
      const big = store.appendBatch(range(1, 15).map((i) => ({ type: 'big', data: i })));
      await Promise.all([...singles, big]);
      expect(seen.map((c) => c.measurements.events)).toEqual([10, 10, 5, 15]);
      expect(seqs(await big)).toEqual(range(26, 40));
    });

    it('takes thousands of concurrent appends from many agents, in order per agent, gapless', async () => {
      const store = await open(rt, tmp.dir);
      const seen = commits(rt);
      const AGENTS = 40;
      const EACH = 100;
      // Half the agents fire all their appends at once, half await each one: both kinds interleave.
      const Appender = behaviour<number, number, 'go', number[]>({
        init: (n) => n,
        async handleCall(_msg, _from, n) {
          const mine: StoredEvent[] = [];
          if (n % 2 === 0) {
            mine.push(
              ...(await Promise.all(range(0, EACH - 1).map((i) => store.append({ type: `a${n}`, data: i })))),
            );
          } else {
            for (let i = 0; i < EACH; i++) mine.push(await store.append({ type: `a${n}`, data: i }));
          }
          return reply(seqs(mine), n);
        },
      });
      const agents = await Promise.all(range(0, AGENTS - 1).map((n) => rt.spawn(Appender, n)));
      const perAgent = await Promise.all(agents.map((a) => rt.call(a, 'go', 30_000)));
      const all = perAgent.flat().sort((x, y) => x - y);
      expect(all).toEqual(range(1, AGENTS * EACH));
      for (const mine of perAgent) expect(mine).toEqual([...mine].sort((x, y) => x - y));
      const log = await store.query();
      expect(seqs(log)).toEqual(range(1, AGENTS * EACH));
      for (let n = 0; n < AGENTS; n++) {
        expect(log.filter((e) => e.type === `a${n}`).map((e) => e.data)).toEqual(range(0, EACH - 1));
      }
      // Grouped: far fewer transactions than appends.
      expect(seen.length).toBeLessThan((AGENTS * EACH) / 10);
      expect(seen.reduce((n, c) => n + (c.measurements.events as number), 0)).toBe(AGENTS * EACH);
    });
  });

  describe('close', () => {
    it('commits what was queued, then refuses everything with E_STORE_CLOSED', async () => {
      const store = await open(rt, tmp.dir);
      const queued = range(1, 20).map((i) => store.append({ type: 't', data: i }));
      const closing = store.close();
      expect(store.closed).toBe(true);
      expect(seqs(await Promise.all(queued))).toEqual(range(1, 20));
      await closing;
      await store.close(); // idempotent
      expect(rt.isAlive(store.supervisor)).toBe(false);
      for (const op of [
        store.append({ type: 't', data: 1 }),
        store.appendBatch([{ type: 't', data: 1 }]),
        store.query(),
        store.prune({ beforeSeq: 1 }),
      ]) {
        const error = await op.catch((e: unknown) => e);
        expect(error).toBeInstanceOf(StoreClosedError);
        expect((error as StoreClosedError).code).toBe(EventStoreErrorCodes.STORE_CLOSED);
      }
      expect(() => store.subscribe(1, () => {})).toThrow(StoreClosedError);
    });

    it('is closed by a runtime shutdown, committing what was queued', async () => {
      const store = await open(rt, tmp.dir);
      const queued = range(1, 5).map((i) => store.append({ type: 't', data: i }));
      await rt.shutdown();
      expect(seqs(await Promise.all(queued))).toEqual(range(1, 5));
      await expect(store.append({ type: 't', data: 1 })).rejects.toBeInstanceOf(StoreClosedError);
      await store.close();
    });
  });
});

describe('options', () => {
  it('refuses bad options naming them', async () => {
    const backend = new MemoryEventLog();
    const cases: [unknown, string][] = [
      [{}, 'event store options'],
      [{ path: tmp.file(), backend }, 'event store options'],
      [{ backend, synchronous: 'full' }, 'event store option "synchronous"'],
      [{ backend: {} }, 'event store option "backend"'],
      [{ backend, colour: 1 }, 'event store option "colour"'],
      [{ backend, maxBatch: 0 }, 'event store option "maxBatch"'],
      [{ backend, clock: 5 }, 'event store option "clock"'],
      [{ backend, name: '' }, 'event store option "name"'],
      [{ path: tmp.file(), synchronous: 'off' }, 'sqlite option "synchronous"'],
    ];
    for (const [options, field] of cases) {
      await expect(EventStore.start(rt, options as never), field).rejects.toMatchObject({
        code: 'E_INVALID_ARGUMENT',
        argument: field,
      });
    }
  });

  it('refuses a clock that returns no finite timestamp, committing nothing', async () => {
    const store = await EventStore.start(rt, {
      backend: new MemoryEventLog(),
      clock: { now: () => Number.NaN },
    });
    await expect(store.append({ type: 't', data: 1 })).rejects.toMatchObject({
      code: EventStoreErrorCodes.STORE_WRITE_FAILED,
    });
    expect(store.lastSeq).toBe(0);
  });

  it('starts under an agent: the store lives as long as that agent', async () => {
    let store: EventStore | undefined;
    const Owner = behaviour<string, null>({
      async init(file, ctx) {
        store = await EventStore.start(ctx, { path: file });
        return null;
      },
    });
    const owner = await rt.spawn(Owner, tmp.file());
    await store?.append({ type: 't', data: 1 });
    expect(rt.info(store?.supervisor as never)?.parent).toEqual(owner.toJSON());
    await rt.stop(owner, 'shutdown');
    await rt.awaitExit(store?.supervisor as never);
    await expect(store?.append({ type: 't', data: 2 })).rejects.toBeInstanceOf(StoreClosedError);
  });
});

describe('sqlite backend', () => {
  it('keeps the log across reopening, and the highest seq even after pruning everything', async () => {
    const file = tmp.file();
    const first = await EventStore.start(rt, { path: file, clock: manualClock(50) });
    await first.appendBatch(range(1, 5).map((i) => ({ type: 't', data: i, correlationId: `c${i}` })));
    await first.close();
    const second = await EventStore.start(rt, { path: file, clock: manualClock(60) });
    expect(second.lastSeq).toBe(5);
    expect((await second.query({ correlationId: 'c3' }))[0]).toEqual({
      seq: 3,
      type: 't',
      data: 3,
      timestamp: 50,
      correlationId: 'c3',
    });
    expect(await second.prune({ beforeSeq: 100 })).toBe(5);
    await second.close();
    const third = await EventStore.start(rt, { path: file, clock: manualClock(0) });
    expect(third.lastSeq).toBe(5);
    const next = await third.append({ type: 't', data: 6 });
    // The clock went back to 0: the timestamp stays at the last one, remembered across the prune.
    expect(next).toMatchObject({ seq: 6, timestamp: 50 });
    await third.close();
  });

  it('uses WAL with the chosen synchronous level, and indexes type, timestamp and correlation id', async () => {
    const file = tmp.file();
    for (const synchronous of ['full', 'normal'] as const) {
      // The constructor reads the level back and refuses to run with another one.
      const log = new SqliteEventLog(file, { synchronous });
      expect(log.synchronous).toBe(synchronous);
      log.close();
    }
    const byDefault = new SqliteEventLog(file);
    expect(byDefault.synchronous).toBe('full');
    byDefault.close();
    const store = await EventStore.start(rt, { path: file });
    await store.append({ type: 't', data: 1 });
    await store.close();
    const db = new Database(file, { readonly: true });
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    const indexes = db
      .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'")
      .pluck()
      .all();
    expect(indexes).toEqual(
      expect.arrayContaining(['events_type', 'events_timestamp', 'events_correlation']),
    );
    const plan = (sql: string, ...args: unknown[]) =>
      (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...args) as { detail: string }[])
        .map((r) => r.detail)
        .join(';');
    expect(plan('SELECT * FROM events WHERE type = ? ORDER BY seq', 't')).toContain('events_type');
    expect(plan('SELECT * FROM events WHERE correlation_id = ? ORDER BY seq', 'c')).toContain(
      'events_correlation',
    );
    expect(plan('SELECT seq FROM events WHERE timestamp >= ? ORDER BY timestamp, seq LIMIT 1', 1)).toContain(
      'events_timestamp',
    );
    db.close();
  });

  it('refuses to open what it cannot read, with E_STORE_OPEN_FAILED', async () => {
    const notDb = tmp.file('not-a-db');
    fs.writeFileSync(notDb, 'this is not a database file, not at all'.repeat(50));
    await expect(EventStore.start(rt, { path: notDb })).rejects.toMatchObject({
      code: EventStoreErrorCodes.STORE_OPEN_FAILED,
    });
    const future = tmp.file('future.db');
    const db = new Database(future);
    db.pragma('user_version = 99');
    db.close();
    await expect(EventStore.start(rt, { path: future })).rejects.toThrow(/schema version 99/);
    await expect(EventStore.start(rt, { path: tmp.file('no/such/dir.db') })).rejects.toMatchObject({
      code: EventStoreErrorCodes.STORE_OPEN_FAILED,
    });
  });
});

describe('error codes', () => {
  it('are unique, E_ plus upper case, and distinct from the kernel codes', () => {
    const mine = Object.values(EventStoreErrorCodes);
    const kernel = Object.values(ErrorCodes) as string[];
    expect(new Set(mine).size).toBe(mine.length);
    for (const code of mine) {
      expect(code).toMatch(/^E_[A-Z_]+$/);
      expect(kernel).not.toContain(code);
    }
  });
});
