import { afterEach, describe, expect, it } from 'vitest';
import { escrow, Ledger } from '../../src/economics/ledger.js';
import {
  Balances,
  InsufficientBalanceError,
  MARKETPLACE_FAILED,
  MARKETPLACE_SETTLED,
  Marketplace,
  MarketplaceErrorCodes,
  NoProviderError,
  PaymentError,
  type Payments,
  ProviderFailedError,
  ProviderTimeoutError,
  refuseService,
  ServiceRefusedError,
  type ServiceRequest,
  SettlementError,
} from '../../src/economics/marketplace.js';
import { EventStore, MemoryEventLog } from '../../src/foundation/event-store/index.js';
import {
  type AnyRef,
  behaviour,
  type From,
  InvalidArgumentError,
  noreply,
  pidKey,
  Runtime,
  reply,
  VirtualClock,
} from '../../src/kernel/index.js';
import { awaitTelemetry } from '../../src/kernel/testkit.js';
import { deferred, flush } from '../kernel/helpers.js';

/** How a test provider behaves on each request. */
type Mode = 'echo' | 'crash' | 'silent' | 'refuse' | 'hold';

interface ProviderArgs {
  mode: Mode;
  /** Called with every request as it arrives (so tests wait for arrival, not for time). */
  seen?: (req: ServiceRequest) => void;
}

interface ProviderState extends ProviderArgs {
  /** Requests held (mode `hold`), answered by a `release` cast. */
  held: From<unknown>[];
}

const Provider = behaviour<ProviderArgs, ProviderState, ServiceRequest, unknown, { type: 'release' }>({
  init: (args) => ({ ...args, held: [] }),
  handleCall(req, from, s) {
    s.seen?.(req);
    switch (s.mode) {
      case 'echo':
        return reply({ echo: req.input, price: req.price }, s);
      case 'crash':
        throw new Error('provider blew up');
      case 'refuse':
        return reply(refuseService('overloaded'), s);
      case 'hold':
        s.held.push(from);
        return noreply(s);
      default:
        return noreply(s);
    }
  },
  handleCast(_msg, s, ctx) {
    for (const from of s.held.splice(0)) ctx.reply(from, 'done');
    return s;
  },
});

let rt: Runtime;
let clock: VirtualClock;
afterEach(async () => {
  await rt?.shutdown();
});

function runtime(): Runtime {
  clock = new VirtualClock();
  rt = new Runtime({ clock });
  return rt;
}

function provider(mode: Mode, seen?: ProviderArgs['seen']): AnyRef {
  return rt.spawnSync(Provider, seen === undefined ? { mode } : { mode, seen });
}

/** The marketplace has handled everything sent to it (release casts included). */
async function settled(m: Marketplace): Promise<void> {
  await flush();
  await rt.whenMailboxBelow(m.ref, 1);
}

describe('Marketplace: list, request, execute, settle', () => {
  it('runs the request on the provider and moves the price from consumer to provider', async () => {
    runtime();
    const m = await Marketplace.start(rt, { balances: { alice: 100 } });
    const p = provider('echo');
    const listing = await m.list(p, 'resize', { price: 10, capacity: 2 });
    expect(listing).toMatchObject({
      service: 'resize',
      price: 10,
      capacity: 2,
      inFlight: 0,
      account: pidKey(p),
    });
    const ev = awaitTelemetry(rt, MARKETPLACE_SETTLED);
    const receipt = await m.request('alice', 'resize', { w: 64 });
    expect(receipt.result).toEqual({ echo: { w: 64 }, price: 10 });
    expect(receipt).toMatchObject({ service: 'resize', price: 10, request: 1 });
    expect(pidKey(receipt.provider)).toBe(pidKey(p));
    expect(m.balances?.balance('alice')).toBe(90);
    expect(m.balances?.balance(pidKey(p))).toBe(10);
    expect((await ev).metadata).toMatchObject({ service: 'resize', consumer: 'alice' });
    await settled(m);
    expect(m.inFlight).toBe(0);
    expect(m.services()).toEqual(['resize']);
  });

  it('an agent consumer pays from its pid account; a listing can name the account paid', async () => {
    runtime();
    const consumer = provider('echo');
    const m = await Marketplace.start(rt, { balances: { [pidKey(consumer)]: 5 } });
    await m.list(provider('echo'), 'ping', { price: 2, account: 'acme' });
    await m.request(consumer, 'ping', null);
    expect(m.balances?.balance(pidKey(consumer))).toBe(3);
    expect(m.balances?.balance('acme')).toBe(2);
  });

  it('picks the cheapest listing, the earliest among equal prices, within maxPrice', async () => {
    runtime();
    const m = await Marketplace.start(rt, { balances: { c: 1000 } });
    const pricey = provider('echo');
    const firstCheap = provider('echo');
    const secondCheap = provider('echo');
    await m.list(pricey, 'fft', { price: 9 });
    await m.list(firstCheap, 'fft', { price: 4 });
    await m.list(secondCheap, 'fft', { price: 4 });
    expect(m.listings('fft').map((l) => pidKey(l.provider))).toEqual(
      [firstCheap, secondCheap, pricey].map((r) => pidKey(r)),
    );
    expect(pidKey(m.quote('fft')?.provider as AnyRef)).toBe(pidKey(firstCheap));
    const r = await m.request('c', 'fft', 1, { maxPrice: 5 });
    expect(pidKey(r.provider)).toBe(pidKey(firstCheap));
    expect(r.price).toBe(4);
    const e = await m.request('c', 'fft', 1, { maxPrice: 3 }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(NoProviderError);
    expect(e).toMatchObject({ reason: 'over_price', code: 'E_MARKETPLACE_NO_PROVIDER' });
    expect(m.quote('fft', 3)).toBeUndefined();
  });

  it('a busy provider passes requests to the next listing until every slot is taken', async () => {
    runtime();
    const m = await Marketplace.start(rt, { balances: { c: 1000 } });
    const atCheap = [deferred(), deferred()];
    let cheapCalls = 0;
    const cheap = provider('hold', () => atCheap[cheapCalls++]?.resolve());
    const atDear = deferred();
    const dear = provider('hold', () => atDear.resolve());
    await m.list(cheap, 'gpu', { price: 1, capacity: 2 });
    await m.list(dear, 'gpu', { price: 3, capacity: 1 });
    const first = m.request('c', 'gpu', 'a');
    const second = m.request('c', 'gpu', 'b');
    await Promise.all(atCheap.map((d) => d.promise));
    expect(m.listings('gpu').map((l) => l.inFlight)).toEqual([2, 0]);
    // The cheap provider is full: the next request goes to the dear one.
    const third = m.request('c', 'gpu', 'c');
    await atDear.promise;
    expect(m.inFlight).toBe(3);
    expect(m.quote('gpu')).toBeUndefined();
    const full = await m.request('c', 'gpu', 'd').catch((x: unknown) => x);
    expect(full).toBeInstanceOf(NoProviderError);
    expect(full).toMatchObject({ reason: 'at_capacity' });
    // The cheap provider answers: both requests settle and its slots come back.
    rt.cast(cheap, { type: 'release' });
    expect((await first).result).toBe('done');
    expect((await second).result).toBe('done');
    await settled(m);
    expect(m.listings('gpu').map((l) => l.inFlight)).toEqual([0, 1]);
    expect(m.balances?.balance('c')).toBe(998);
    expect(m.balances?.balance(pidKey(cheap))).toBe(2);
    rt.kill(dear);
    await expect(third).rejects.toBeInstanceOf(ProviderFailedError);
    expect(m.balances?.balance('c')).toBe(998);
  });

  it('relisting changes the terms; unlisting and provider exit remove listings', async () => {
    runtime();
    const m = await Marketplace.start(rt);
    const a = provider('echo');
    const b = provider('echo');
    await m.list(a, 'x', { price: 5 });
    await m.list(b, 'x', { price: 6 });
    await m.list(a, 'y', { price: 1 });
    // a raises its price above b's: b comes first now.
    await m.list(a, 'x', { price: 7, capacity: 3 });
    expect(m.listings('x').map((l) => [l.price, l.capacity])).toEqual([
      [6, 1],
      [7, 3],
    ]);
    expect(await m.unlist(b, 'x')).toBe(true);
    expect(await m.unlist(b, 'x')).toBe(false);
    rt.kill(a);
    await settled(m);
    expect(m.listings('x')).toEqual([]);
    expect(m.listings('y')).toEqual([]);
    expect(m.services()).toEqual([]);
    const e = await m.request('anyone', 'x', null).catch((x: unknown) => x);
    expect(e).toMatchObject({ reason: 'none_listed' });
  });
});

describe('Marketplace: capacity per provider and service', () => {
  it('requests still running after an unlist count against the relisting: capacity 1 runs 1 at once', async () => {
    // Regression: slots were counted per listing object, so unlist + relist during a request
    // gave the provider a fresh slot and it ran two requests at once.
    runtime();
    const m = await Marketplace.start(rt, { balances: { c: 100 } });
    const arrived = deferred();
    let running = 0;
    const p = provider('hold', () => {
      running++;
      arrived.resolve();
    });
    await m.list(p, 'gpu', { price: 1, capacity: 1 });
    const first = m.request('c', 'gpu', 1, { timeoutMs: Number.POSITIVE_INFINITY });
    await arrived.promise;
    await m.unlist(p, 'gpu');
    const relisted = await m.list(p, 'gpu', { price: 1, capacity: 1 });
    expect(relisted.inFlight).toBe(1);
    expect(m.quote('gpu')).toBeUndefined();
    const e = await m.request('c', 'gpu', 2).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(NoProviderError);
    expect(e).toMatchObject({ reason: 'at_capacity' });
    expect(running).toBe(1);
    // The first request ends: its slot comes back to the relisted service.
    rt.cast(p, { type: 'release' });
    expect((await first).result).toBe('done');
    await settled(m);
    expect(m.listings('gpu')[0]?.inFlight).toBe(0);
    expect(m.quote('gpu')?.price).toBe(1);
    expect(m.inFlight).toBe(0);
  });

  it("NoProviderError says 'at_capacity' when the listings within maxPrice are only full", async () => {
    // Regression: a busy cheap listing followed by one over the limit gave 'over_price'.
    runtime();
    const m = await Marketplace.start(rt, { balances: { c: 100 } });
    const arrived = deferred();
    const cheap = provider('hold', () => arrived.resolve());
    await m.list(cheap, 'gpu', { price: 5, capacity: 1 });
    await m.list(provider('echo'), 'gpu', { price: 10, capacity: 1 });
    const busy = m.request('c', 'gpu', 1, { maxPrice: 8 });
    await arrived.promise;
    const e = await m.request('c', 'gpu', 2, { maxPrice: 8 }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(NoProviderError);
    expect(e).toMatchObject({ reason: 'at_capacity' });
    expect((e as Error).message).toContain('at capacity');
    // Nothing at or under 4 at all: that one is over_price.
    const under = await m.request('c', 'gpu', 3, { maxPrice: 4 }).catch((x: unknown) => x);
    expect(under).toMatchObject({ reason: 'over_price' });
    rt.cast(cheap, { type: 'release' });
    await busy;
  });
});

describe('Marketplace: payments by reservation', () => {
  async function withLedger(): Promise<{ ledger: Ledger; m: Marketplace }> {
    runtime();
    const store = await EventStore.start(rt, { backend: new MemoryEventLog() });
    const ledger = await Ledger.start(rt, { store });
    await ledger.open('c', 10);
    await ledger.open('shop');
    const m = await Marketplace.start(rt, { payments: escrow(ledger) });
    return { ledger, m };
  }

  it('escrow(ledger): the price is held before the work and captured after it', async () => {
    // Regression: the docs suggested reserving with a ledger hold in canPay, which made the
    // settlement fail (the consumer's own hold) and left the hold for ever.
    const { ledger, m } = await withLedger();
    expect(m.balances).toBeUndefined();
    let heldDuringWork: number | undefined;
    await m.list(
      provider('echo', () => {
        heldDuringWork = ledger.held('c');
      }),
      'svc',
      { price: 10, account: 'shop' },
    );
    const receipt = await m.request('c', 'svc', 1);
    expect(receipt.price).toBe(10);
    expect(heldDuringWork).toBe(10);
    expect([ledger.balance('c'), ledger.held('c'), ledger.balance('shop')]).toEqual([0, 0, 10]);
    expect(ledger.history('shop').at(-1)).toMatchObject({ kind: 'capture', amount: 10, memo: 'escrow' });
  });

  it('every failure releases the reservation: refusal, crash, timeout; a refused hold is InsufficientBalanceError', async () => {
    const { ledger, m } = await withLedger();
    const released = (): Promise<unknown> =>
      awaitTelemetry(rt, ['mabeam', 'ledger', 'commit'], (_m, meta) => meta.kind === 'release');
    await m.list(provider('refuse'), 'refuse', { price: 4, account: 'shop' });
    await m.list(provider('crash'), 'crash', { price: 4, account: 'shop' });
    const silentGotIt = deferred();
    await m.list(
      provider('silent', () => silentGotIt.resolve()),
      'silent',
      { price: 4, account: 'shop' },
    );
    for (const [service, error] of [
      ['refuse', ServiceRefusedError],
      ['crash', ProviderFailedError],
    ] as const) {
      const done = released();
      await expect(m.request('c', service, 1)).rejects.toBeInstanceOf(error);
      await done;
      expect([ledger.balance('c'), ledger.held('c')]).toEqual([10, 0]);
    }
    const done = released();
    const timedOut = m.request('c', 'silent', 1, { timeoutMs: 100 });
    // The provider is called only once the price is held.
    await silentGotIt.promise;
    expect(ledger.held('c')).toBe(4);
    clock.advance(100);
    await expect(timedOut).rejects.toBeInstanceOf(ProviderTimeoutError);
    await done;
    expect([ledger.balance('c'), ledger.held('c'), ledger.balance('shop')]).toEqual([10, 0, 0]);
    // More than the consumer has: the hold is refused, the provider is not called.
    await m.list(provider('echo'), 'dear', { price: 11, account: 'shop' });
    const poor = await m.request('c', 'dear', 1).catch((x: unknown) => x);
    expect(poor).toBeInstanceOf(InsufficientBalanceError);
    expect((poor as Error).cause).toMatchObject({ code: 'E_INSUFFICIENT_FUNDS' });
    const nobody = await m.request('ghost', 'dear', 1).catch((x: unknown) => x);
    expect(nobody).toBeInstanceOf(InsufficientBalanceError);
    await settled(m);
    expect(m.inFlight).toBe(0);
  });

  it('a failed capture releases the reservation and rejects with SettlementError', async () => {
    runtime();
    const log: string[] = [];
    const payments: Payments<string> = {
      reserve: (account, amount) => {
        log.push(`reserve ${account} ${amount}`);
        return 't1';
      },
      capture: (token) => {
        log.push(`capture ${token}`);
        throw new Error('store down');
      },
      release: async (token) => {
        log.push(`release ${token}`);
      },
    };
    const m = await Marketplace.start(rt, { payments: payments as Payments<unknown> });
    await m.list(provider('echo'), 'svc', { price: 3, account: 'shop' });
    const e = await m.request('c', 'svc', 1).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(SettlementError);
    expect(log).toEqual(['reserve c 3', 'capture t1', 'release t1']);
  });

  it('canPay or reserve throwing is a typed PaymentError (telemetry reason payment); payments excludes settle', async () => {
    runtime();
    const m = await Marketplace.start(rt, {
      canPay: () => {
        throw new Error('ledger unreachable');
      },
      settle: () => {},
    });
    await m.list(provider('echo'), 'svc', { price: 3 });
    const failed = awaitTelemetry(rt, MARKETPLACE_FAILED);
    const e = await m.request('c', 'svc', 1).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(PaymentError);
    expect(e).toMatchObject({ code: 'E_MARKETPLACE_PAYMENT_FAILED', account: 'c', amount: 3 });
    expect(((e as Error).cause as Error).message).toBe('ledger unreachable');
    expect((await failed).metadata).toMatchObject({ reason: 'payment' });
    const reserveFails = await Marketplace.start(rt, {
      payments: {
        reserve: () => Promise.reject(new Error('no')),
        capture: () => {},
        release: () => {},
      },
    });
    await reserveFails.list(provider('echo'), 'svc', { price: 3 });
    await expect(reserveFails.request('c', 'svc', 1)).rejects.toBeInstanceOf(PaymentError);
    const p = { reserve: () => 1, capture: () => {}, release: () => {} };
    await expect(Marketplace.start(rt, { payments: p, settle: () => {} })).rejects.toBeInstanceOf(
      InvalidArgumentError,
    );
    await expect(Marketplace.start(rt, { payments: p, balances: {} })).rejects.toBeInstanceOf(
      InvalidArgumentError,
    );
    await expect(Marketplace.start(rt, { payments: {} as never })).rejects.toBeInstanceOf(
      InvalidArgumentError,
    );
  });

  it("reports reason 'error' when the marketplace agent cannot be asked for a slot", async () => {
    runtime();
    const m = await Marketplace.start(rt, { balances: { c: 5 } });
    await m.list(provider('echo'), 'svc', { price: 1 });
    await m.stop();
    const failed = awaitTelemetry(rt, MARKETPLACE_FAILED);
    await expect(m.request('c', 'svc', 1)).rejects.toBeInstanceOf(Error);
    expect((await failed).metadata).toMatchObject({ reason: 'error', service: 'svc' });
  });
});

describe('Marketplace: failures cost the consumer nothing', () => {
  it('a provider that crashes while executing: ProviderFailedError, no charge, unlisted', async () => {
    runtime();
    const m = await Marketplace.start(rt, { balances: { alice: 50 } });
    const p = provider('crash');
    await m.list(p, 'render', { price: 20 });
    const failed = awaitTelemetry(rt, MARKETPLACE_FAILED);
    const e = await m.request('alice', 'render', 'scene').catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ProviderFailedError);
    expect((e as ProviderFailedError).code).toBe(MarketplaceErrorCodes.PROVIDER_FAILED);
    expect((e as Error).message).toContain('provider blew up');
    expect((await failed).metadata.reason).toBe('provider_failed');
    expect(m.balances?.balance('alice')).toBe(50);
    expect(m.balances?.balance(pidKey(p))).toBe(0);
    await settled(m);
    expect(m.listings('render')).toEqual([]);
    expect(m.inFlight).toBe(0);
  });

  it('a provider killed mid-request: ProviderFailedError, no charge', async () => {
    runtime();
    const m = await Marketplace.start(rt, { balances: { alice: 50 } });
    const arrived = deferred();
    const p = provider('silent', () => arrived.resolve());
    await m.list(p, 'render', { price: 20 });
    const pending = m.request('alice', 'render', 'scene');
    await arrived.promise;
    rt.kill(p);
    await expect(pending).rejects.toBeInstanceOf(ProviderFailedError);
    expect(m.balances?.balance('alice')).toBe(50);
  });

  it('a provider that does not reply in time (virtual clock): ProviderTimeoutError, no charge', async () => {
    runtime();
    const m = await Marketplace.start(rt, { balances: { bob: 30 }, timeoutMs: 60_000 });
    const arrived = deferred();
    const p = provider('silent', () => arrived.resolve());
    await m.list(p, 'train', { price: 25 });
    let outcome: unknown = 'pending';
    const pending = m.request('bob', 'train', {}, { timeoutMs: 1000 }).catch((x: unknown) => {
      outcome = x;
    });
    await arrived.promise;
    clock.advance(999);
    await flush();
    expect(outcome).toBe('pending');
    clock.advance(1);
    await pending;
    expect(outcome).toBeInstanceOf(ProviderTimeoutError);
    expect(outcome).toMatchObject({ code: 'E_MARKETPLACE_PROVIDER_TIMEOUT', timeoutMs: 1000 });
    expect(m.balances?.balance('bob')).toBe(30);
    await settled(m);
    // The slot came back: the listing is free again.
    expect(m.listings('train')[0]?.inFlight).toBe(0);
  });

  it('the default timeout is the marketplace option', async () => {
    runtime();
    const m = await Marketplace.start(rt, { balances: { bob: 30 }, timeoutMs: 200 });
    const arrived = deferred();
    await m.list(
      provider('silent', () => arrived.resolve()),
      'train',
      { price: 1 },
    );
    const pending = m.request('bob', 'train', {});
    await arrived.promise;
    clock.advance(200);
    await expect(pending).rejects.toMatchObject({ timeoutMs: 200 });
  });

  it('a refusal: ServiceRefusedError, no charge', async () => {
    runtime();
    const m = await Marketplace.start(rt, { balances: { c: 10 } });
    await m.list(provider('refuse'), 's', { price: 3 });
    const e = await m.request('c', 's', null).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ServiceRefusedError);
    expect((e as ServiceRefusedError).reason).toBe('overloaded');
    expect(m.balances?.balance('c')).toBe(10);
  });

  it('a consumer that cannot pay is refused before the provider works', async () => {
    runtime();
    const m = await Marketplace.start(rt, { balances: { poor: 2 } });
    let calls = 0;
    await m.list(
      provider('echo', () => calls++),
      's',
      { price: 3 },
    );
    const e = await m.request('poor', 's', null).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(InsufficientBalanceError);
    expect((e as InsufficientBalanceError).code).toBe('E_MARKETPLACE_INSUFFICIENT_FUNDS');
    expect(calls).toBe(0);
    expect(m.balances?.balance('poor')).toBe(2);
    await settled(m);
    expect(m.inFlight).toBe(0);
  });
});

describe('Marketplace: injected settlement', () => {
  it('settles through the injected function (and asks canPay first when given)', async () => {
    runtime();
    const transfers: [string, string, number][] = [];
    const asked: [string, number][] = [];
    const m = await Marketplace.start(rt, {
      settle: async (from, to, amount) => {
        transfers.push([from, to, amount]);
      },
      canPay: (account, amount) => {
        asked.push([account, amount]);
        return true;
      },
    });
    expect(m.balances).toBeUndefined();
    await m.list(provider('echo'), 'svc', { price: 7, account: 'prov' });
    await m.request('cons', 'svc', 1);
    expect(asked).toEqual([['cons', 7]]);
    expect(transfers).toEqual([['cons', 'prov', 7]]);
  });

  it('a settlement that fails rejects with SettlementError carrying the cause', async () => {
    runtime();
    const m = await Marketplace.start(rt, {
      settle: () => {
        throw new Error('ledger down');
      },
    });
    await m.list(provider('echo'), 'svc', { price: 7 });
    const e = await m.request('cons', 'svc', 1).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(SettlementError);
    expect(((e as SettlementError).cause as Error).message).toBe('ledger down');
    await settled(m);
    expect(m.inFlight).toBe(0);
  });

  it('free services settle nothing', async () => {
    runtime();
    const transfers: unknown[] = [];
    const m = await Marketplace.start(rt, { settle: (...a) => void transfers.push(a) });
    await m.list(provider('echo'), 'free', { price: 0 });
    expect((await m.request('c', 'free', 1)).price).toBe(0);
    expect(transfers).toEqual([]);
  });

  it('Balances: never negative, both legs or neither', () => {
    const b = new Balances({ a: 5 });
    b.settle('a', 'b', 5);
    expect([b.balance('a'), b.balance('b')]).toEqual([0, 5]);
    expect(() => b.settle('a', 'b', 1)).toThrow(InsufficientBalanceError);
    expect([b.balance('a'), b.balance('b')]).toEqual([0, 5]);
    expect(() => b.deposit('a', -1)).toThrow(InvalidArgumentError);
    expect(b.entries()).toEqual([
      ['a', 0],
      ['b', 5],
    ]);
  });
});

describe('Marketplace: validation', () => {
  it('names the bad argument', async () => {
    runtime();
    const m = await Marketplace.start(rt);
    const p = provider('echo');
    const field = async (p: Promise<unknown>) =>
      p.then(
        () => 'resolved',
        (e: unknown) => (e instanceof InvalidArgumentError ? e.argument : e),
      );
    expect(await field(m.list(p, 's', { price: -1 }))).toBe('price');
    expect(await field(m.list(p, 's', { price: Number.NaN }))).toBe('price');
    expect(await field(m.list(p, 's', { price: 1, capacity: 0 }))).toBe('capacity');
    expect(await field(m.list(p, 's', { price: 1, capacity: 1.5 }))).toBe('capacity');
    expect(await field(m.list(p, '', { price: 1 }))).toBe('service');
    expect(await field(m.list('nobody' as never, 's', { price: 1 }))).toBe('provider');
    expect(await field(m.list(p, 's', { price: 1, account: '' }))).toBe('account');
    expect(await field(m.request('', 's', null))).toBe('consumer');
    expect(await field(m.request('c', 's', null, { maxPrice: -1 }))).toBe('maxPrice');
    expect(await field(m.request('c', 's', null, { timeoutMs: 0 }))).toBe('timeoutMs');
    await expect(Marketplace.start(rt, { timeoutMs: -5 })).rejects.toMatchObject({ argument: 'timeoutMs' });
    await expect(Marketplace.start(rt, { settle: () => {}, balances: { a: 1 } })).rejects.toMatchObject({
      argument: 'balances',
    });
  });

  it('codes are unique E_ codes', () => {
    const codes = Object.values(MarketplaceErrorCodes);
    expect(new Set(codes).size).toBe(codes.length);
    for (const c of codes) expect(c).toMatch(/^E_[A-Z_]+$/);
  });
});
