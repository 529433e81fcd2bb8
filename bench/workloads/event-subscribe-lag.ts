/**
 * event_subscribe_lag: time from an `append` call to a live subscriber receiving the event, on the
 * SQLite event store with its default `synchronous=FULL`, so each sample includes the commit and
 * its fsync (the event is delivered only once it is durable). One append at a time: the next
 * starts after the subscriber got the previous one. 500 warm-up samples, then 5,000 measured;
 * each part stops early at a time cap (1 s, 6 s) if a slow or busy disk makes fsyncs long.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EventStore } from '../../src/foundation/event-store/index.js';
import { Runtime } from '../../src/kernel/index.js';
import { type Fields, now, nsSince, percentiles, type Workload } from '../harness.js';

const WARMUP = 500;
const SAMPLES = 5_000;
/** Time caps (ns) of the warm-up and the measurement. */
const WARMUP_CAP_NS = 1e9;
const MEASURE_CAP_NS = 6e9;

async function run(): Promise<Fields> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mabeam-bench-lag-'));
  const rt = new Runtime();
  try {
    const store = await EventStore.start(rt, { path: path.join(dir, 'events.db') });
    const lags = new Float64Array(SAMPLES);
    let started = now();
    let lastLagNs = 0;
    let received: (() => void) | null = null;
    let delivered = 0;
    const sub = store.subscribe(store.lastSeq + 1, () => {
      // Taken in the handler: the moment the subscriber has the event.
      lastLagNs = Number(now() - started);
      delivered++;
      received?.();
    });
    await sub.caughtUp();
    const once = async (i: number): Promise<number> => {
      const got = new Promise<void>((resolve) => {
        received = resolve;
      });
      started = now();
      await store.append({ type: 'bench.lag', data: { i } });
      await got;
      return lastLagNs;
    };
    let warm = 0;
    const warmStart = now();
    while (warm < WARMUP && nsSince(warmStart) < WARMUP_CAP_NS) await once(warm++);
    let n = 0;
    const measureStart = now();
    while (n < SAMPLES && nsSince(measureStart) < MEASURE_CAP_NS) {
      lags[n] = (await once(n)) / 1e3;
      n++;
    }
    if (delivered !== warm + n) {
      throw new Error(`event_subscribe_lag: ${delivered} events delivered, ${warm + n} appended`);
    }
    sub.unsubscribe();
    await store.close();
    const p = percentiles(lags, n);
    return { p50_us: p.p50, p99_us: p.p99, mean_us: p.mean, n: p.n };
  } finally {
    await rt.shutdown();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export const eventSubscribeLag: Workload = {
  name: 'event_subscribe_lag',
  description: 'append call to live subscriber, SQLite synchronous=FULL (includes commit and fsync)',
  needsGc: false,
  run,
};
