/**
 * Crashes between debit and credit lose nothing and create nothing. A whole process is SIGKILLed
 * while transferring (twice: the second run replays the first's log and carries on), and in
 * process the ledger's owner agent is killed after taking a transfer and before its commit, with
 * requests still queued, under load from inside its own commits, and together with the store's
 * writer (then the transfer must not happen at all). No test waits for time: they wait on the
 * child's lines, on promises and on exits.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  LEDGER_COMMIT_EVENT,
  LEDGER_EVENT_TYPES,
  LEDGER_SUBMIT_EVENT,
  Ledger,
  LedgerErrorCodes,
  type LedgerTransaction,
} from '../../src/economics/ledger.js';
import {
  EventStore,
  EventStoreErrorCodes,
  type StoredEvent,
} from '../../src/foundation/event-store/index.js';
import { type AnyRef, Runtime } from '../../src/kernel/index.js';
import { awaitExit } from '../../src/kernel/testkit.js';
import { tempDir } from '../foundation/event-store-helpers.js';

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

/** Open the file with a fresh runtime and store; return the ledger's events and the rebuilt state. */
async function reopen(file: string) {
  const runtime = new Runtime();
  try {
    const store = await EventStore.start(runtime, { path: file });
    const events = await store.query({ types: Object.values(LEDGER_EVENT_TYPES) });
    const all = await store.query();
    const rebuilt = await Ledger.rebuild(store);
    await store.close();
    return { events, all, rebuilt };
  } finally {
    await runtime.shutdown();
  }
}

interface TransferData {
  ledger: string;
  from: string;
  to: string;
  amount: number;
}

/**
 * Replay the log independently of the ledger's code: every prefix must keep every balance >= 0,
 * and each transfer moves exactly its amount from one account to another.
 */
function fold(events: readonly StoredEvent[]): Map<string, number> {
  const bal = new Map<string, number>();
  for (const e of events) {
    const d = e.data as TransferData & { account: string; amount: number };
    if (e.type === 'ledger.open') {
      expect(bal.has(d.account), `open of ${d.account} at ${e.seq}`).toBe(false);
      bal.set(d.account, d.amount);
    } else {
      expect(e.type, `event ${e.seq}`).toBe('ledger.transfer');
      expect(bal.has(d.from) && bal.has(d.to), `accounts of ${e.seq}`).toBe(true);
      bal.set(d.from, (bal.get(d.from) as number) - d.amount);
      bal.set(d.to, (bal.get(d.to) as number) + d.amount);
      expect(bal.get(d.from), `balance of ${d.from} after ${e.seq}`).toBeGreaterThanOrEqual(0);
    }
  }
  return bal;
}

describe('process killed with SIGKILL while transferring', () => {
  const fixture = fileURLToPath(new URL('../fixtures/ledger-writer.ts', import.meta.url));
  const root = path.resolve(path.dirname(fixture), '../..');
  const ACCOUNTS = 8;
  const INITIAL = 1000;

  interface Ack {
    seq: number;
    from: string;
    to: string;
    amount: number;
  }

  /** Run the writer, SIGKILL it after `acks` acknowledged transfers, return what it printed. */
  function runAndKill(file: string, seed: number, acks: number): Promise<{ readySeq: number; acks: Ack[] }> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, ['--import', 'tsx', fixture, file, String(seed)], {
        cwd: root,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const got: Ack[] = [];
      let readySeq = -1;
      let stderr = '';
      let killed = false;
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
        stderr += chunk;
      });
      createInterface({ input: child.stdout }).on('line', (line) => {
        const [tag, ...rest] = line.split(' ');
        if (tag === 'ready') {
          readySeq = Number(rest[0]);
          return;
        }
        const [seq, from, to, amount] = rest as [string, string, string, string];
        got.push({ seq: Number(seq), from, to, amount: Number(amount) });
        if (got.length >= acks && !killed) {
          killed = true;
          child.kill('SIGKILL');
        }
      });
      child.on('error', reject);
      child.on('close', (code, signal) => {
        if (signal === 'SIGKILL' && killed) resolve({ readySeq, acks: got });
        else reject(new Error(`ledger writer ended with code ${code}, signal ${signal}: ${stderr}`));
      });
    });
  }

  it('keeps every acknowledged transfer, applies none by half, conserves the total, across two kills', async () => {
    const file = tmp.file();
    const first = await runAndKill(file, 1, 300);
    const afterFirst = await reopen(file);
    // The second run replays the first one's log and carries on from it.
    const second = await runAndKill(file, 2, 300);
    expect(second.readySeq).toBe(afterFirst.all[afterFirst.all.length - 1]?.seq);
    const { events, all, rebuilt } = await reopen(file);
    // Nothing but the ledger wrote to this log; its seqs are gapless.
    expect(all.map((e) => e.seq)).toEqual(Array.from({ length: all.length }, (_, i) => i + 1));
    expect(events).toHaveLength(all.length);
    // The first run's log is a prefix of the final one: nothing committed was lost or rewritten.
    expect(events.slice(0, afterFirst.events.length)).toEqual(afterFirst.events);

    const bySeq = new Map(events.map((e) => [e.seq, e]));
    for (const ack of [...first.acks, ...second.acks]) {
      const e = bySeq.get(ack.seq);
      expect(e?.type, `ack ${ack.seq}`).toBe('ledger.transfer');
      expect(e?.data).toEqual({ ledger: 'ledger', from: ack.from, to: ack.to, amount: ack.amount });
    }
    // Acknowledged transfers are all there; at most a few more were committed before their ack printed.
    const transfers = events.filter((e) => e.type === 'ledger.transfer');
    expect(transfers.length).toBeGreaterThanOrEqual(first.acks.length + second.acks.length);
    expect(events.filter((e) => e.type === 'ledger.open')).toHaveLength(ACCOUNTS);

    const bal = fold(events);
    let total = 0;
    for (const [account, balance] of bal) {
      expect(rebuilt.accounts.get(account)).toEqual({ balance, held: 0 });
      total += balance;
    }
    expect(total).toBe(ACCOUNTS * INITIAL);
    expect(rebuilt.total).toBe(ACCOUNTS * INITIAL);
    expect(rebuilt.lastSeq).toBe(all.length);

    // A ledger started on the file serves from the rebuilt state.
    const store = await EventStore.start(rt, { path: file });
    const ledger = await Ledger.start(rt, { store });
    expect(ledger.snapshot()).toEqual(rebuilt);
    const richest = [...bal].sort((a, b) => b[1] - a[1])[0] as [string, number];
    const other = richest[0] === 'acct0' ? 'acct1' : 'acct0';
    await ledger.transfer(richest[0], other, richest[1]);
    expect(ledger.balance(richest[0])).toBe(0);
    expect(ledger.total()).toBe(ACCOUNTS * INITIAL);
    await store.close();
  });
});

describe('owner agent killed', () => {
  async function start(file: string, restart?: { intensity: number; periodMs?: number }) {
    const store = await EventStore.start(rt, { path: file });
    const ledger = await Ledger.start(rt, restart === undefined ? { store } : { store, restart });
    await ledger.open('a', 100);
    await ledger.open('b');
    return { store, ledger };
  }

  it('after taking a transfer and before its commit: the restarted owner goes on and the transfer happens once', async () => {
    const file = tmp.file();
    const { store, ledger } = await start(file);
    const oldOwner = ledger.owner as AnyRef;
    const submits: { owner: AnyRef | undefined; queued: number; committed: number; balance: number }[] = [];
    rt.telemetry.attach('kill-after-submit', LEDGER_SUBMIT_EVENT, () => {
      submits.push({
        owner: ledger.owner,
        queued: store.queued,
        committed: store.lastSeq,
        balance: ledger.balance('a'),
      });
      // The event is in the store's queue, not committed; the owner dies right here.
      if (submits.length === 1) rt.kill(oldOwner);
    });
    const seqBefore = store.lastSeq;
    const t1 = ledger.transfer('a', 'b', 30);
    const t2 = ledger.transfer('a', 'b', 20);
    const [tx1, tx2] = await Promise.all([t1, t2]);
    expect(submits).toHaveLength(2);
    expect(submits[0]).toEqual({ owner: oldOwner, queued: 1, committed: seqBefore, balance: 100 });
    // The second request was still queued when the owner died: its successor took it.
    expect(submits[1]?.owner).toBeDefined();
    expect(submits[1]?.owner?.equals(oldOwner)).toBe(false);
    expect(ledger.owner?.equals(submits[1]?.owner)).toBe(true);
    expect([tx1.seq, tx2.seq]).toEqual([seqBefore + 1, seqBefore + 2]);
    expect({ a: ledger.balance('a'), b: ledger.balance('b') }).toEqual({ a: 50, b: 50 });
    expect(ledger.available('a')).toBe(50);
    const transfers = await store.query({ type: 'ledger.transfer' });
    expect(transfers.map((e) => e.seq)).toEqual([tx1.seq, tx2.seq]);
    expect(await Ledger.rebuild(store)).toEqual(ledger.snapshot());
    await store.close();
    const { rebuilt } = await reopen(file);
    expect(rebuilt.accounts.get('a')).toEqual({ balance: 50, held: 0 });
    expect(rebuilt.total).toBe(100);
  });

  it('with requests queued and not yet taken: its successor takes every one of them, each once', async () => {
    const { store, ledger } = await start(tmp.file());
    const oldOwner = ledger.owner as AnyRef;
    const pending = Array.from({ length: 10 }, (_, i) => ledger.transfer('a', 'b', i + 1));
    expect(ledger.queued).toBe(10);
    rt.kill(oldOwner);
    expect(ledger.owner).toBeUndefined();
    const txs = await Promise.all(pending);
    expect(ledger.owner?.equals(oldOwner)).toBe(false);
    expect(txs.map((t) => t.amount)).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
    expect(ledger.balance('b')).toBe(55);
    expect(await store.query({ type: 'ledger.transfer' })).toHaveLength(10);
    expect(await Ledger.rebuild(store)).toEqual(ledger.snapshot());
  });

  it('again and again from inside its own commits, under load: nothing acknowledged is lost or doubled', async () => {
    const { store, ledger } = await start(tmp.file(), { intensity: 20, periodMs: 60_000 });
    await ledger.deposit('a', 900);
    for (const acct of ['c', 'd', 'e']) await ledger.open(acct, 250);
    let commits = 0;
    let kills = 0;
    rt.telemetry.attach('killer', LEDGER_COMMIT_EVENT, () => {
      commits++;
      if (commits % 7 === 0 && kills < 10 && ledger.owner !== undefined) {
        kills++;
        rt.kill(ledger.owner);
      }
    });
    const accounts = ['a', 'b', 'c', 'd', 'e'];
    const acked: LedgerTransaction[] = [];
    let refused = 0;
    await Promise.all(
      accounts.map(async (from, k) => {
        for (let round = 0; round < 40; round++) {
          const to = accounts[(k + 1 + (round % 4)) % 5] as string;
          await ledger.transfer(from, to, 1 + ((round * 37 + k * 11) % 120)).then(
            (tx) => acked.push(tx),
            (e: { code: string }) => {
              expect(e.code).toBe(LedgerErrorCodes.INSUFFICIENT_FUNDS);
              refused++;
            },
          );
        }
      }),
    );
    expect(kills).toBe(10);
    expect(acked.length + refused).toBe(200);
    const transfers = await store.query({ type: 'ledger.transfer' });
    expect(transfers.map((e) => e.seq)).toEqual(acked.map((t) => t.seq).sort((x, y) => x - y));
    expect(ledger.total()).toBe(100 + 900 + 3 * 250);
    for (const acct of accounts) expect(ledger.balance(acct)).toBeGreaterThanOrEqual(0);
    expect(await Ledger.rebuild(store)).toEqual(ledger.snapshot());
  });

  it('together with the store writer, for good, before the commit: the transfer does not happen at all', async () => {
    const file = tmp.file();
    const store = await EventStore.start(rt, { path: file, restart: { intensity: 0 } });
    const ledger = await Ledger.start(rt, { store });
    await ledger.open('a', 100);
    await ledger.open('b');
    const before = ledger.snapshot();
    rt.telemetry.attach('kill-both', LEDGER_SUBMIT_EVENT, () => {
      rt.kill(ledger.owner as AnyRef);
      rt.kill(store.writer as AnyRef);
    });
    const error = await ledger.transfer('a', 'b', 30).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: EventStoreErrorCodes.STORE_UNAVAILABLE });
    expect(ledger.snapshot()).toEqual(before);
    expect(ledger.available('a')).toBe(100);
    expect(ledger.inflight).toBe(0);
    const { events, rebuilt } = await reopen(file);
    expect(events.map((e) => e.type)).toEqual(['ledger.open', 'ledger.open']);
    expect(rebuilt).toEqual(before);
  });

  it('past its supervisor restart intensity: queued requests reject with E_LEDGER_UNAVAILABLE, none committed', async () => {
    const { store, ledger } = await start(tmp.file(), { intensity: 0 });
    const before = ledger.snapshot();
    const queued = [ledger.transfer('a', 'b', 1), ledger.deposit('b', 5)];
    rt.kill(ledger.owner as AnyRef);
    const outcomes = await Promise.allSettled(queued);
    for (const o of outcomes) {
      expect(o).toMatchObject({ status: 'rejected', reason: { code: LedgerErrorCodes.LEDGER_UNAVAILABLE } });
    }
    await awaitExit(rt, ledger.supervisor);
    expect(ledger.closed).toBe(true);
    await expect(ledger.transfer('a', 'b', 1)).rejects.toMatchObject({ code: 'E_LEDGER_UNAVAILABLE' });
    expect(ledger.snapshot()).toEqual(before);
    expect(await Ledger.rebuild(store)).toEqual(before);
    await ledger.close();
  });
});
