import { spawn } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  COMMIT_EVENT,
  type EventRecord,
  EventStore,
  EventStoreErrorCodes,
  MemoryEventLog,
  type StoredEvent,
  StoreUnavailableError,
  StoreWriteError,
} from '../../src/foundation/event-store/index.js';
import { type AnyRef, Runtime } from '../../src/kernel/index.js';
import { awaitExit } from '../../src/kernel/testkit.js';
import { range, seqs, tempDir } from './event-store-helpers.js';

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

const ev = (i: number) => ({ type: 't', data: i });

interface BatchData {
  b: number;
  i: number;
  size: number;
}

/** Reopen the file with a fresh store and read the whole log. */
async function reopen(file: string): Promise<StoredEvent[]> {
  const runtime = new Runtime();
  try {
    const store = await EventStore.start(runtime, { path: file });
    const all = await store.query();
    await store.close();
    return all;
  } finally {
    await runtime.shutdown();
  }
}

/** Every batch in the log is whole: all its events, consecutive seqs, one timestamp. */
function expectWholeBatches(log: readonly StoredEvent[]): void {
  const byBatch = new Map<number, StoredEvent[]>();
  for (const e of log) {
    if (e.type !== 'batch') continue;
    const { b } = e.data as BatchData;
    byBatch.set(b, [...(byBatch.get(b) ?? []), e]);
  }
  for (const [b, events] of byBatch) {
    const size = (events[0] as StoredEvent<BatchData>).data.size;
    expect(events.length, `batch ${b}`).toBe(size);
    expect(events.map((e) => (e.data as BatchData).i)).toEqual(range(0, size - 1));
    expect(seqs(events)).toEqual(range(events[0]?.seq as number, (events[0]?.seq as number) + size - 1));
    expect(new Set(events.map((e) => e.timestamp)).size).toBe(1);
  }
}

/** A memory log that refuses any transaction holding an event of type `poison`. */
class PoisonedLog extends MemoryEventLog {
  override append(records: readonly EventRecord[]): void {
    if (records.some((r) => r.type === 'poison')) throw new Error('poison');
    super.append(records);
  }
}

const batch = (b: number, size: number) =>
  range(0, size - 1).map((i) => ({ type: 'batch', data: { b, i, size } }));

describe('writer killed in the middle of a batch', () => {
  it('is restarted by the store supervisor, which commits everything still queued', async () => {
    const file = tmp.file();
    const store = await EventStore.start(rt, { path: file });
    const acked = await Promise.all(range(1, 20).map((i) => store.append(ev(i))));
    const oldWriter = store.writer as AnyRef;
    // Queued, not yet committed: the flush is a microtask away when the writer dies.
    const singles = range(1, 50).map((i) => store.append(ev(100 + i)));
    const batches = range(1, 10).map((b) => store.appendBatch(batch(b, 10)));
    expect(store.queued).toBe(150);
    rt.kill(oldWriter);
    expect(store.writer).toBeUndefined();
    const late = [...(await Promise.all(singles)), ...(await Promise.all(batches)).flat()];
    expect(store.writer).toBeDefined();
    expect(store.writer?.equals(oldWriter)).toBe(false);
    expect(seqs(late).sort((a, b) => a - b)).toEqual(range(21, 170));
    await store.close();
    const log = await reopen(file);
    expect(seqs(log)).toEqual(range(1, 170));
    for (const e of [...acked, ...late]) expect(log[e.seq - 1]).toEqual(e);
    expectWholeBatches(log);
  });

  it('loses nothing acknowledged when killed from inside its own commit, again and again', async () => {
    const file = tmp.file();
    const store = await EventStore.start(rt, { path: file, restart: { intensity: 10, periodMs: 60_000 } });
    let commitsSeen = 0;
    let kills = 0;
    // The telemetry handler runs inside the writer's commit callback: the kill lands mid-flush.
    rt.telemetry.attach('killer', COMMIT_EVENT, () => {
      commitsSeen++;
      if (commitsSeen % 3 === 0 && kills < 5 && store.writer !== undefined) {
        kills++;
        rt.kill(store.writer);
      }
    });
    const acked: StoredEvent[] = [];
    await Promise.all(
      range(1, 8).map(async (k) => {
        for (let round = 0; round < 25; round++) {
          if (k % 2 === 0) acked.push(...(await store.appendBatch(batch(k * 1000 + round, 1 + (round % 5)))));
          else acked.push(await store.append(ev(k)));
        }
      }),
    );
    expect(kills).toBe(5);
    const total = acked.length;
    expect(seqs(acked).sort((a, b) => a - b)).toEqual(range(1, total));
    await store.close();
    const log = await reopen(file);
    expect(seqs(log)).toEqual(range(1, total));
    for (const e of acked) expect(log[e.seq - 1]).toEqual(e);
    expectWholeBatches(log);
  });

  it('rejects what is queued with E_STORE_UNAVAILABLE once the supervisor gives up; none of it is committed', async () => {
    const file = tmp.file();
    const store = await EventStore.start(rt, { path: file, restart: { intensity: 0 } });
    const acked = await store.appendBatch(batch(1, 5));
    const sub = store.subscribe(1, () => {});
    await sub.caughtUp();
    const queued = [store.append(ev(1)), store.appendBatch(batch(2, 4)), store.prune({ beforeSeq: 3 })];
    rt.kill(store.writer as AnyRef);
    const outcomes = await Promise.allSettled(queued);
    for (const o of outcomes) {
      expect(o.status).toBe('rejected');
      const error = (o as PromiseRejectedResult).reason;
      expect(error).toBeInstanceOf(StoreUnavailableError);
      expect(error.code).toBe(EventStoreErrorCodes.STORE_UNAVAILABLE);
    }
    await awaitExit(rt, store.supervisor);
    expect(store.closed).toBe(true);
    await expect(store.append(ev(2))).rejects.toBeInstanceOf(StoreUnavailableError);
    const end = await sub.ended();
    expect(end.reason).toBe('store_closed');
    expect(end.error).toBeInstanceOf(StoreUnavailableError);
    await store.close();
    const log = await reopen(file);
    expect(log).toEqual(acked);
  });
});

describe('failed transactions', () => {
  it('commit nothing of a batch the database refuses halfway, and seqs stay gapless', async () => {
    const file = tmp.file();
    const store = await EventStore.start(rt, { path: file });
    await store.appendBatch(batch(1, 3));
    // A foreign writer takes seq 6, so a 5-event batch (seqs 4..8) fails on its third insert.
    const foreign = new Database(file);
    foreign
      .prepare('INSERT INTO events (seq, type, data, timestamp) VALUES (?, ?, ?, ?)')
      .run(6, 'foreign', '0', 0);
    const single = store.append(ev(1)); // grouped with the batch, then retried alone: seq 4
    const doomed = store.appendBatch(batch(2, 5));
    expect((await single).seq).toBe(4);
    const error = await doomed.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreWriteError);
    expect((error as StoreWriteError).code).toBe(EventStoreErrorCodes.STORE_WRITE_FAILED);
    expect(seqs(await store.query())).toEqual([1, 2, 3, 4, 6]);
    foreign.prepare('DELETE FROM events WHERE seq = 6').run();
    foreign.close();
    expect(seqs(await store.appendBatch(batch(3, 2)))).toEqual([5, 6]);
    await store.close();
    const log = await reopen(file);
    expect(seqs(log)).toEqual(range(1, 6));
    expect(log.some((e) => (e.data as BatchData).b === 2)).toBe(false);
    expectWholeBatches(log);
  });

  it('isolate the request that fails, so its group neighbours still commit', async () => {
    const poisoned = new PoisonedLog();
    const store = await EventStore.start(rt, { backend: poisoned });
    const seen: number[] = [];
    rt.telemetry.attach('isolate', COMMIT_EVENT, (_e, m) => seen.push(m.events as number));
    const [a, p, b] = await Promise.allSettled([
      store.append(ev(1)),
      store.appendBatch([ev(2), { type: 'poison', data: 0 }]),
      store.append(ev(3)),
    ]);
    expect(a).toMatchObject({ status: 'fulfilled', value: { seq: 1, data: 1 } });
    expect(p).toMatchObject({ status: 'rejected', reason: { code: 'E_STORE_WRITE_FAILED' } });
    expect(b).toMatchObject({ status: 'fulfilled', value: { seq: 2, data: 3 } });
    expect(seen).toEqual([1, 1]);
    expect(seqs(await store.query())).toEqual([1, 2]);
  });
});

describe('process killed with SIGKILL while appending', () => {
  const fixture = fileURLToPath(new URL('../fixtures/event-writer.ts', import.meta.url));
  const root = path.resolve(path.dirname(fixture), '../..');

  interface Ack {
    batch: number;
    size: number;
    first: number;
    last: number;
  }

  /** Run the writer process, SIGKILL it after `acks` acknowledgements, return every ack it printed. */
  function runAndKill(file: string, synchronous: string, acks: number): Promise<Ack[]> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, ['--import', 'tsx', fixture, file, synchronous], {
        cwd: root,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const got: Ack[] = [];
      let stderr = '';
      let killed = false;
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
        stderr += chunk;
      });
      createInterface({ input: child.stdout }).on('line', (line) => {
        if (line === 'ready') return;
        const [batch, size, first, last] = line.split(' ').map(Number) as [number, number, number, number];
        got.push({ batch, size, first, last });
        if (got.length >= acks && !killed) {
          killed = true;
          child.kill('SIGKILL');
        }
      });
      child.on('error', reject);
      child.on('close', (code, signal) => {
        if (signal === 'SIGKILL' && killed) resolve(got);
        else reject(new Error(`writer process ended with code ${code}, signal ${signal}: ${stderr}`));
      });
    });
  }

  it.each(['full', 'normal'])(
    'keeps every acknowledged batch and no partial one (synchronous=%s)',
    async (synchronous) => {
      const file = tmp.file();
      const acks = await runAndKill(file, synchronous, 400);
      expect(acks.length).toBeGreaterThanOrEqual(400);
      const log = await reopen(file);
      expect(seqs(log)).toEqual(range(1, log.length));
      for (const ack of acks) {
        const events = log.slice(ack.first - 1, ack.last);
        expect(events.length, `batch ${ack.batch}`).toBe(ack.size);
        for (const [i, e] of events.entries())
          expect(e.data).toEqual({ batch: ack.batch, i, size: ack.size });
      }
      // Whole batches only, acknowledged or not (the kill may land after a commit, before its ack).
      const byBatch = new Map<number, number[]>();
      for (const e of log) {
        const d = e.data as { batch: number; i: number; size: number };
        byBatch.set(d.batch, [...(byBatch.get(d.batch) ?? []), d.i]);
      }
      for (const [b, is] of byBatch) {
        const size = 1 + (b % 7);
        expect(is, `batch ${b}`).toEqual(range(0, size - 1));
      }
    },
  );
});
