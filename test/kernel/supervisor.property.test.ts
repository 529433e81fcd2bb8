import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type AnyRef,
  behaviour,
  type ChildSpec,
  MaxRestartsError,
  Runtime,
  type Strategy,
  Supervisor,
  type SupervisorRef,
  VirtualClock,
} from '../../src/kernel/index.js';

interface WorkerArgs {
  readonly id: number;
  readonly log: string[];
}

const Worker = behaviour<WorkerArgs, WorkerArgs, never, never, 'crash'>({
  init(args, ctx) {
    ctx.trapExit(true);
    args.log.push(`start:${args.id}`);
    return args;
  },
  handleCast(_msg, s) {
    throw new Error(`worker ${s.id} crashed`);
  },
  terminate(_reason, s) {
    s.log.push(`stop:${s.id}`);
  },
});

function children(n: number, log: string[]): ChildSpec[] {
  return Array.from({ length: n }, (_, id) => Supervisor.childSpec(id, Worker, { id, log }));
}

async function refs(rt: Runtime, sup: SupervisorRef): Promise<AnyRef[]> {
  return (await Supervisor.whichChildren(rt, sup)).map((c) => c.ref as AnyRef);
}

/** Crash one child and wait until it is gone; a later call to the supervisor sees the restart done. */
async function crash(rt: Runtime, ref: AnyRef): Promise<void> {
  rt.cast(ref, 'crash');
  await rt.awaitExit(ref);
}

const strategies = fc.constantFrom<Strategy>('one_for_one', 'one_for_all', 'rest_for_one');
const RUNS = { numRuns: 40 };

describe('supervisor properties', () => {
  it('survives k crashes within the period iff k <= intensity', async () => {
    const periodMs = 1000;
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 5 }),
        fc.integer({ min: 1, max: 3 }),
        strategies,
        // Each crash: which child, and a gap before it small enough that all k fit in one period.
        fc.array(fc.record({ child: fc.nat(), gap: fc.integer({ min: 0, max: 124 }) }), { maxLength: 8 }),
        async (intensity, n, strategy, crashes) => {
          const clock = new VirtualClock();
          const rt = new Runtime({ clock });
          const sup = await Supervisor.start(rt, {
            strategy,
            intensity,
            periodMs,
            children: children(n, []),
          });
          const exit = rt.awaitExit(sup);
          for (const { child, gap } of crashes) {
            clock.advance(gap);
            const current = await refs(rt, sup).catch(() => undefined);
            if (current === undefined) break;
            await crash(rt, current[child % n] as AnyRef);
          }
          const alive = await Supervisor.countChildren(rt, sup).then(
            () => true,
            () => false,
          );
          expect(alive).toBe(crashes.length <= intensity);
          if (!alive) {
            expect(await exit).toBeInstanceOf(MaxRestartsError);
            expect(rt.count).toBe(0);
          }
          await rt.shutdown();
        },
      ),
      RUNS,
    );
  });

  it('rest_for_one restarts exactly the crashed child and those started after it', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc
          .integer({ min: 1, max: 6 })
          .chain((n) => fc.tuple(fc.constant(n), fc.integer({ min: 0, max: n - 1 }))),
        async ([n, c]) => {
          const rt = new Runtime();
          const log: string[] = [];
          const sup = await Supervisor.start(rt, { strategy: 'rest_for_one', children: children(n, log) });
          const before = await refs(rt, sup);
          log.length = 0;
          await crash(rt, before[c] as AnyRef);
          const after = await refs(rt, sup);
          for (let i = 0; i < n; i++) {
            expect(after[i]?.equals(before[i])).toBe(i < c);
            expect(rt.isAlive(after[i] as AnyRef)).toBe(true);
            if (i >= c) expect(rt.isAlive(before[i] as AnyRef)).toBe(false);
          }
          // The crashed one stopped itself; the rest went down in reverse order, then all came back in order.
          const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);
          expect(log).toEqual([
            `stop:${c}`,
            ...range(c + 1, n)
              .reverse()
              .map((i) => `stop:${i}`),
            ...range(c, n).map((i) => `start:${i}`),
          ]);
          await rt.shutdown();
        },
      ),
      RUNS,
    );
  });

  it('each strategy restarts exactly its group', async () => {
    await fc.assert(
      fc.asyncProperty(
        strategies,
        fc
          .integer({ min: 1, max: 6 })
          .chain((n) => fc.tuple(fc.constant(n), fc.integer({ min: 0, max: n - 1 }))),
        async (strategy, [n, c]) => {
          const rt = new Runtime();
          const sup = await Supervisor.start(rt, { strategy, children: children(n, []) });
          const before = await refs(rt, sup);
          await crash(rt, before[c] as AnyRef);
          const after = await refs(rt, sup);
          const restarted = (i: number) =>
            strategy === 'one_for_all' || i === c || (strategy === 'rest_for_one' && i > c);
          for (let i = 0; i < n; i++) expect(after[i]?.equals(before[i])).toBe(!restarted(i));
          await rt.shutdown();
        },
      ),
      RUNS,
    );
  });

  it('shuts children down in reverse start order', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 8 }), strategies, async (n, strategy) => {
        const rt = new Runtime();
        const log: string[] = [];
        const sup = await Supervisor.start(rt, { strategy, children: children(n, log) });
        log.length = 0;
        await rt.stop(sup, 'shutdown');
        expect(log).toEqual(Array.from({ length: n }, (_, i) => `stop:${n - 1 - i}`));
        expect(rt.count).toBe(0);
        await rt.shutdown();
      }),
      RUNS,
    );
  });
});
