import { describe, expect, it } from 'vitest';
import { type AnyRef, behaviour, reply } from '../../src/kernel/index.js';
import { awaitExit } from '../../src/kernel/testkit.js';
import { runtimeFactory } from './helpers.js';

const runtime = runtimeFactory();

type Seen = { phase: string; self: AnyRef | undefined };

/** Records `runtime.self()` in each callback, including after an await. */
const Recorder = behaviour<Seen[], Seen[], 'sync' | 'async', AnyRef | undefined, 'stop'>({
  init: (seen, ctx) => {
    seen.push({ phase: 'init', self: ctx.runtime.self() });
    return seen;
  },
  handleCall: async (msg, _from, seen, ctx) => {
    seen.push({ phase: 'call', self: ctx.runtime.self() });
    if (msg === 'async') {
      await Promise.resolve();
      return reply(ctx.runtime.self(), seen);
    }
    return reply(ctx.runtime.self(), seen);
  },
  handleCast: (_msg, seen) => {
    throw Object.assign(new Error('stop'), { seen });
  },
  terminate: (_reason, seen, ctx) => {
    seen.push({ phase: 'terminate', self: ctx.runtime.self() });
  },
});

describe('runtime.self()', () => {
  it('is undefined outside any agent', () => {
    const rt = runtime();
    expect(rt.self()).toBeUndefined();
  });

  it('names the agent whose callback runs: init, a handler, terminate', async () => {
    const rt = runtime();
    const seen: Seen[] = [];
    const ref = rt.spawnSync(Recorder, seen);
    rt.cast(ref, 'stop');
    await awaitExit(rt, ref);
    expect(seen.map((s) => s.phase)).toEqual(['init', 'terminate']);
    for (const s of seen) expect(s.self?.equals(ref)).toBe(true);
    expect(rt.self()).toBeUndefined();
  });

  it('is no longer the agent after an await inside its handler', async () => {
    const rt = runtime();
    const ref = rt.spawnSync(Recorder, []);
    expect((await rt.call(ref, 'sync'))?.equals(ref)).toBe(true);
    expect(await rt.call(ref, 'async')).toBeUndefined();
  });
});
