import { describe, expect, it } from 'vitest';
import { RealClock, VirtualClock } from '../../src/kernel/index.js';

describe('VirtualClock', () => {
  it('starts where told and moves only on advance', () => {
    const clock = new VirtualClock(1000);
    expect(clock.now()).toBe(1000);
    clock.advance(0);
    expect(clock.now()).toBe(1000);
    clock.advance(250);
    expect(clock.now()).toBe(1250);
  });

  it('fires due timers in due order, ties in creation order, with now() at each due time', () => {
    const clock = new VirtualClock();
    const fired: [string, number][] = [];
    const at = (name: string) => () => fired.push([name, clock.now()]);
    clock.setTimeout(at('c'), 30);
    clock.setTimeout(at('a'), 10);
    clock.setTimeout(at('b1'), 20);
    clock.setTimeout(at('b2'), 20);
    clock.setTimeout(at('late'), 31);
    clock.advance(30);
    expect(fired).toEqual([
      ['a', 10],
      ['b1', 20],
      ['b2', 20],
      ['c', 30],
    ]);
    expect(clock.pending).toBe(1);
    expect(clock.now()).toBe(30);
  });

  it('fires timers set by firing timers when they fall within the same advance', () => {
    const clock = new VirtualClock();
    const fired: number[] = [];
    const tick = () => {
      fired.push(clock.now());
      if (fired.length < 10) clock.setTimeout(tick, 10);
    };
    clock.setTimeout(tick, 10);
    clock.advance(35);
    expect(fired).toEqual([10, 20, 30]);
    clock.advance(5);
    expect(fired).toEqual([10, 20, 30, 40]);
  });

  it('a zero-delay timer fires on the next advance, even advance(0)', () => {
    const clock = new VirtualClock();
    let fired = false;
    clock.setTimeout(() => {
      fired = true;
    }, 0);
    expect(fired).toBe(false);
    clock.advance(0);
    expect(fired).toBe(true);
  });

  it('clearTimeout removes a timer, even from inside another timer due at the same time', () => {
    const clock = new VirtualClock();
    const fired: string[] = [];
    const second = clock.setTimeout(() => fired.push('second'), 10);
    clock.setTimeout(() => fired.push('third'), 10);
    const first = clock.setTimeout(() => {
      fired.push('first');
      clock.clearTimeout(second);
    }, 5);
    clock.clearTimeout(first);
    clock.setTimeout(() => {
      fired.push('killer');
      clock.clearTimeout(second);
    }, 10);
    clock.advance(10);
    // `second` fires before `killer` (creation order); `first` never fires.
    expect(fired).toEqual(['second', 'third', 'killer']);
    const victim = clock.setTimeout(() => fired.push('victim'), 5);
    clock.setTimeout(() => clock.clearTimeout(victim), 1);
    clock.advance(10);
    expect(fired).not.toContain('victim');
    expect(clock.pending).toBe(0);
  });

  it('negative delays fire as soon as possible', () => {
    const clock = new VirtualClock(100);
    let at = -1;
    clock.setTimeout(() => {
      at = clock.now();
    }, -50);
    clock.advance(0);
    expect(at).toBe(100);
  });

  it('refuses to go backwards', () => {
    const clock = new VirtualClock();
    expect(() => clock.advance(-1)).toThrow(RangeError);
    expect(() => clock.advance(Number.NaN)).toThrow(/-?NaN/);
  });

  it('runAll fires everything, and stops a timer that re-arms forever', () => {
    const clock = new VirtualClock();
    const fired: number[] = [];
    clock.setTimeout(() => fired.push(clock.now()), 500);
    clock.setTimeout(() => fired.push(clock.now()), 100);
    clock.runAll();
    expect(fired).toEqual([100, 500]);
    expect(clock.now()).toBe(500);
    const forever = () => {
      clock.setTimeout(forever, 1);
    };
    clock.setTimeout(forever, 1);
    expect(() => clock.runAll(50)).toThrow(/50/);
  });
});

describe('RealClock', () => {
  it('is monotonic and runs timers (event-based wait)', async () => {
    const clock = new RealClock();
    const t0 = clock.now();
    await new Promise<void>((resolve) => clock.setTimeout(resolve, 1));
    expect(clock.now()).toBeGreaterThanOrEqual(t0);
  });

  it('clearTimeout prevents the callback', async () => {
    const clock = new RealClock();
    let fired = false;
    const h = clock.setTimeout(() => {
      fired = true;
    }, 1);
    clock.clearTimeout(h);
    // A later timer runs after the cleared one would have.
    await new Promise<void>((resolve) => clock.setTimeout(resolve, 5));
    expect(fired).toBe(false);
  });
});
