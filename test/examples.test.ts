/** Every example is run here, so the README's main command cannot silently rot. */
import { describe, expect, it } from 'vitest';
import { main as counter } from '../examples/counter.js';
import { main as mlTeam } from '../examples/ml-team.js';
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

  it('ml-team: votes on the learning rate, elects and re-elects a coordinator, fences a stale checkpoint', async () => {
    const lines: string[] = [];
    const s = await mlTeam((l) => lines.push(l));
    // 0.08 is within three of the four trials' limits; 0.3 only within one.
    expect(s.accepted).toBe(1);
    expect(s.rejected).toContain('rejected');
    expect(s.lrSeenByTrials).toEqual([0.08, 0.08, 0.08, 0.08]);
    // Every trial trained one epoch at lr 0.08 before the barrier let them on.
    expect(s.losses).toEqual(Array(4).fill(Math.round(1000 * Math.exp(-0.8)) / 1000));
    expect(s.secondLeader.term).toBeGreaterThan(s.firstLeader.term);
    expect(s.secondLeader.member).not.toBe(s.firstLeader.member);
    expect(s.checkpoint).toBe(`epoch 1 by ${s.secondLeader.member}`);
    expect(s.staleWriteFenced).toBe(true);
    // The restarted trial subscribed again in init and got the current value.
    expect(s.restartedTrialLr).toBe(0.08);
    expect(lines[0]).toBe('trials on GPUs: trial-0, trial-1');
  });
});
