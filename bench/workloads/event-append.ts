/**
 * event_append: durable appends to the SQLite event store (the embedded default backend, with its
 * default `synchronous=FULL`: every commit is fsynced) in a file under the OS temp dir.
 *
 * - appends_per_s: single appends, each awaited before the next, so every one is its own
 *   transaction and pays a full fsync: the latency-bound figure.
 * - batched_appends_per_s: rounds of 1,000 concurrent `append` calls, group-committed by the
 *   store's writer (as many appenders would be): the throughput-bound figure.
 *
 * Each phase (warm-up, then measurement) runs for a fixed number of appends or until a time cap,
 * whichever comes first, so a slow or busy disk cannot stretch the workload past about 7 s.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EventStore } from '../../src/foundation/event-store/index.js';
import { Runtime } from '../../src/kernel/index.js';
import { type Fields, now, nsSince, type Workload } from '../harness.js';

const SINGLE_WARMUP = 300;
const SINGLE_MAX = 5_000;
const ROUND = 1_000;
const BATCHED_WARMUP_ROUNDS = 5;
const BATCHED_MAX_ROUNDS = 100;
/** Time caps (ns) of the warm-up and measured part of each phase. */
const WARMUP_CAP_NS = 0.5e9;
const MEASURE_CAP_NS = 3e9;

/** Run `step` up to `max` times or until `capNs` has passed; returns how many ran and how long it took. */
async function repeat(max: number, capNs: number, step: (i: number) => Promise<unknown>) {
  let count = 0;
  const start = now();
  while (count < max && nsSince(start) < capNs) await step(count++);
  return { count, ns: nsSince(start) };
}

const payload = (i: number) => ({ type: 'bench.append', data: { i, note: 'a small event payload' } });

async function run(): Promise<Fields> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mabeam-bench-events-'));
  const rt = new Runtime();
  try {
    const store = await EventStore.start(rt, { path: path.join(dir, 'events.db') });

    const payloadAppend = (i: number) => store.append(payload(i));
    const round = () => Promise.all(Array.from({ length: ROUND }, (_, i) => store.append(payload(i))));
    const singleWarmup = await repeat(SINGLE_WARMUP, WARMUP_CAP_NS, payloadAppend);
    const singles = await repeat(SINGLE_MAX, MEASURE_CAP_NS, payloadAppend);
    const batchedWarmup = await repeat(BATCHED_WARMUP_ROUNDS, WARMUP_CAP_NS, round);
    const rounds = await repeat(BATCHED_MAX_ROUNDS, MEASURE_CAP_NS, round);

    const expected = singleWarmup.count + singles.count + (batchedWarmup.count + rounds.count) * ROUND;
    if (store.lastSeq !== expected) {
      throw new Error(`event_append: the log holds ${store.lastSeq} events, expected ${expected}`);
    }
    await store.close();
    return {
      appends_per_s: singles.count / (singles.ns / 1e9),
      batched_appends_per_s: (rounds.count * ROUND) / (rounds.ns / 1e9),
    };
  } finally {
    await rt.shutdown();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export const eventAppend: Workload = {
  name: 'event_append',
  description:
    'durable SQLite appends (synchronous=FULL): awaited one by one, and 1,000 concurrent (group commit)',
  needsGc: false,
  run,
};
