/** Every example is run here, so the README's main command cannot silently rot. */
import { describe, expect, it } from 'vitest';
import { main as counter } from '../examples/counter.js';
import { main as supervisedTree } from '../examples/supervised-tree.js';

describe('examples', () => {
  it('counter: adds, resets, and reads back', async () => {
    const lines: string[] = [];
    const result = await counter((l) => lines.push(l));
    expect(result).toEqual({ afterAdd: 15, afterReset: 0 });
    expect(lines).toEqual(['after add: 15', 'after reset: 0']);
  });

  it('supervised-tree: a crashed worker is restarted and the retried jobs succeed', async () => {
    const lines: string[] = [];
    const summary = await supervisedTree((l) => lines.push(l));
    // Jobs 3, 4, 5, 6 succeed, -1 crashes its worker; then each of the 3 live workers squares 7.
    expect(summary.results).toEqual([9, 16, 25, 36, 49, 49, 49]);
    expect(summary.crashes).toBe(1);
    expect(summary.restarts).toBe(1);
    expect(summary.stats).toEqual({ done: 7, failed: 1 });
    // root, stats, workers and three squarers.
    expect(summary.agents).toBe(6);
    expect(lines.at(-1)).toBe('after shutdown: 0 agents');
  });
});
