/**
 * measureGrowth and sizeOf: a leaking agent is found (growth per iteration ~ the bytes it keeps),
 * a clean one is not, private fields are seen, boundaries hold, and bad input gets typed errors.
 * The GC comes from a fresh V8 context after setting --expose-gc (vitest workers run without it).
 */
import v8 from 'node:v8';
import vm from 'node:vm';
import { afterEach, describe, expect, it } from 'vitest';
import { type AgentRef, behaviour, ErrorCodes, Runtime } from '../../src/kernel/index.js';
import { ExposeGcRequiredError } from '../../src/perf/harness.js';
import {
  agentMemory,
  kernelBoundary,
  MemoryErrorCodes,
  type MemoryMeasurable,
  MemoryTargetGoneError,
  MemoryWalkLimitError,
  measureGrowth,
  sizeOf,
} from '../../src/perf/memory.js';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

let runtime: Runtime;
afterEach(async () => {
  await runtime?.shutdown();
});

/** What the leaking agent keeps per message. */
const item = (i: number) => ({ i, payload: new Float64Array(32), label: `item-${i}` });

const Leaky = behaviour<void, { kept: unknown[] }, never, never, number>({
  init: () => ({ kept: [] }),
  handleCast: (i, s) => {
    s.kept.push(item(i));
    return s;
  },
});

const Clean = behaviour<void, { count: number; last: number }, never, never, number>({
  init: () => ({ count: 0, last: 0 }),
  handleCast: (i, s) => ({ count: s.count + 1, last: i }),
});

/**
 * A settle that waits until the agent took every message cast to it, then one more turn: the
 * scheduler's time slices can leave messages queued after a single turn on a loaded machine.
 */
function drained(ref: Parameters<Runtime['whenMailboxBelow']>[0]): () => Promise<void> {
  return async () => {
    await runtime?.whenMailboxBelow(ref, 1);
    await new Promise<void>((resolve) => setImmediate(resolve));
  };
}

describe('measureGrowth on agents', () => {
  it('finds a leaking agent: growth per iteration is about the bytes it keeps', async () => {
    runtime = new Runtime();
    const ref = runtime.spawnSync(Leaky, undefined);
    const perItem = sizeOf(item(7)).bytes + 8; // plus its slot in the array
    const r = await measureGrowth(ref, (i) => runtime.cast(ref, i), 200, { gc, settle: drained(ref) });
    expect(r.scope).toBe('agent');
    expect(r.method).toBe('walk');
    expect(r.samples).toHaveLength(11);
    expect(r.bytesPerIteration).toBeGreaterThan(perItem * 0.95);
    expect(r.bytesPerIteration).toBeLessThan(perItem * 1.05);
    expect(r.slopeBytesPerIteration).toBeGreaterThan(perItem * 0.95);
    expect(r.totalBytes).toBe(r.afterBytes - r.beforeBytes);
    for (const s of r.samples) expect(s.agent?.stateBytes).toBe(s.bytes);
  });

  it('passes a clean agent under the bound', async () => {
    runtime = new Runtime();
    const ref = runtime.spawnSync(Clean, undefined);
    const r = await measureGrowth(ref, (i) => runtime.cast(ref, i), 300, {
      gc,
      samples: 3,
      settle: drained(ref),
    });
    expect(Math.abs(r.bytesPerIteration)).toBeLessThan(1024);
    expect(r.totalBytes).toBe(0);
  });

  it('counts queued messages in the mailbox, once each', async () => {
    runtime = new Runtime();
    let open: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    const Blocked = behaviour<void, null, never, never, unknown>({
      init: () => null,
      handleCast: async (_m, s) => {
        await gate;
        return s;
      },
    });
    const ref = runtime.spawnSync(Blocked, undefined);
    runtime.cast(ref, 'first'); // taken at once: the agent now awaits the gate
    const shared = { big: 'x'.repeat(1000) };
    for (let i = 0; i < 10; i++) runtime.cast(ref, shared);
    const m = agentMemory(ref);
    expect(m.mailboxLength).toBe(10);
    // 10 messages: 20 ring slots, the shared object counted once.
    expect(m.mailboxBytes).toBe(32 + 20 * 8 + sizeOf(shared).bytes);
    expect(m.bytes).toBe(m.stateBytes + m.mailboxBytes + m.localsBytes);
    open();
  });

  it('rejects with E_MEMORY_TARGET_GONE when the agent exits during the measurement', async () => {
    runtime = new Runtime();
    const ref = runtime.spawnSync(Clean, undefined);
    const err = await measureGrowth(ref, () => runtime.stop(ref), 1, { gc }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MemoryTargetGoneError);
    expect((err as MemoryTargetGoneError).code).toBe('E_MEMORY_TARGET_GONE');
    expect(() => agentMemory(ref)).toThrow(MemoryTargetGoneError);
  });
});

class Cache {
  readonly #entries = new Map<number, string>();
  #hits = 0;
  leak(i: number): void {
    this.#entries.set(i, `value-${i}`);
    this.#hits++;
  }
  get hits(): number {
    return this.#hits;
  }
}

describe('measureGrowth on services and graphs', () => {
  it('sees growth kept in private fields (through the inspector), and not without it', async () => {
    const cache = new Cache();
    const seen = await measureGrowth(cache, (i) => cache.leak(i), 50, { gc, samples: 2 });
    expect(seen.scope).toBe('service');
    expect(seen.label).toBe('service Cache');
    expect(seen.privateFields).toBe(true);
    expect(seen.bytesPerIteration).toBeGreaterThan(28 + 16);
    const blind = await measureGrowth(cache, (i) => cache.leak(1000 + i), 50, {
      gc,
      samples: 2,
      privateFields: false,
    });
    expect(blind.privateFields).toBe(false);
    expect(blind.totalBytes).toBe(0);
  });

  it('measures what a function returns (an array: each element a root) and MemoryMeasurable roots', async () => {
    const a: number[] = [];
    const b: string[] = [];
    const r = await measureGrowth(
      () => [a, b],
      (i) => {
        a.push(i);
        b.push('abcdefgh');
      },
      40,
      { gc, samples: 4 },
    );
    expect(r.scope).toBe('graph');
    expect(r.bytesPerIteration).toBe(8 + 8 + 24); // two slots and a one-byte string of 8 chars
    const measurable: MemoryMeasurable = { memoryRoots: () => [a] };
    expect(sizeOf(measurable).bytes).toBe(sizeOf(a).bytes);
  });

  it('has a process-wide heap mode, labelled as such', async () => {
    const kept: number[][] = [];
    const r = await measureGrowth('process', () => kept.push(new Array(1000).fill(0.5)), 100, {
      gc,
      samples: 2,
    });
    expect(r.scope).toBe('process');
    expect(r.method).toBe('heap');
    expect(r.label).toMatch(/process-wide/);
    expect(r.bytesPerIteration).toBeGreaterThan(4000); // 8 KB of doubles each, however noisy the rest
  });
});

describe('sizeOf', () => {
  it('counts shared objects and cycles once', () => {
    const shared = { s: 'hello world' };
    const one = sizeOf({ x: shared }).bytes;
    const two = sizeOf({ x: shared, y: shared }).bytes;
    expect(two - one).toBe(8); // just the second slot
    const cyclic: { self?: unknown; n: number } = { n: 1 };
    cyclic.self = cyclic;
    expect(sizeOf(cyclic).objects).toBe(1);
  });

  it('stops at kernel boundaries unless they are the root', () => {
    runtime = new Runtime();
    const ref = runtime.spawnSync(Clean, undefined);
    const holder = { runtime, ref, clock: runtime.clock };
    const r = sizeOf(holder);
    expect(r.boundaries).toBe(3);
    expect(r.objects).toBe(1);
    expect(kernelBoundary(runtime)).toBe(true);
    expect(sizeOf(runtime).objects).toBeGreaterThan(1); // the root itself is walked
  });

  it('follows Map and Set contents, does not call getters, and honours exclude', () => {
    let called = false;
    const o = {
      get lazy() {
        called = true;
        return 1;
      },
    };
    Object.defineProperty(o, 'own', {
      get: () => {
        called = true;
        return 2;
      },
      enumerable: false,
    });
    sizeOf(o);
    expect(called).toBe(false);
    const big = { text: 'y'.repeat(500) };
    expect(sizeOf(new Map([[1, big]])).bytes).toBeGreaterThan(500);
    expect(sizeOf(new Set([big]), { exclude: [big] }).bytes).toBeLessThan(200);
  });

  it('fails with E_MEMORY_WALK_LIMIT instead of returning a truncated figure', () => {
    const many = Array.from({ length: 50 }, (_, i) => ({ i }));
    const err = (() => {
      try {
        sizeOf(many, { maxNodes: 10 });
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(MemoryWalkLimitError);
    expect((err as MemoryWalkLimitError).code).toBe('E_MEMORY_WALK_LIMIT');
    expect((err as Error).message).toMatch(/maxNodes/);
  });
});

describe('errors', () => {
  it('needs a forced GC and names --expose-gc', async () => {
    const g = globalThis as { gc?: unknown };
    const saved = g.gc;
    g.gc = undefined;
    try {
      const err = await measureGrowth({}, () => {}, 1).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ExposeGcRequiredError);
      expect((err as ExposeGcRequiredError).code).toBe('E_BENCH_GC_UNAVAILABLE');
      expect((err as Error).message).toMatch(/--expose-gc/);
    } finally {
      g.gc = saved;
    }
  });

  it('rejects bad arguments with E_INVALID_ARGUMENT naming them', async () => {
    runtime = new Runtime();
    const bad: [string, () => Promise<unknown>][] = [
      ['iterations', () => measureGrowth({}, () => {}, 0, { gc })],
      ['iterations', () => measureGrowth({}, () => {}, 1.5, { gc })],
      ['workload', () => measureGrowth({}, 'nope' as never, 1, { gc })],
      ['target', () => measureGrowth(42 as never, () => {}, 1, { gc })],
      ['options.samples', () => measureGrowth({}, () => {}, 3, { gc, samples: 4 })],
      ['options.warmup', () => measureGrowth({}, () => {}, 3, { gc, warmup: -1 })],
      ['options.gc', () => measureGrowth({}, () => {}, 3, { gc: 'gc' as never })],
      ['options.maxNodes', () => measureGrowth({}, () => {}, 3, { gc, maxNodes: 0 })],
      ['options.boundary', () => measureGrowth({}, () => {}, 3, { gc, boundary: 1 as never })],
      ['agent', async () => agentMemory({ id: 1 } as unknown as AgentRef)],
    ];
    for (const [argument, call] of bad) {
      const err = await call().catch((e: unknown) => e);
      expect(err, argument).toMatchObject({ code: ErrorCodes.INVALID_ARGUMENT, argument });
    }
  });

  it('has its own E_ codes, distinct from the kernel', () => {
    const kernel = new Set<string>(Object.values(ErrorCodes));
    for (const code of Object.values(MemoryErrorCodes)) {
      expect(code).toMatch(/^E_[A-Z][A-Z0-9_]*$/);
      expect(kernel.has(code)).toBe(false);
    }
  });
});
