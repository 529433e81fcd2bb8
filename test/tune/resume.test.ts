/**
 * `mabeam tune` killed with SIGKILL in the middle of a study, then `mabeam tune --resume`: no
 * finished trial is lost or re-run, the interrupted ones continue from their last checkpoint, and
 * the study ends with every trial. A real process, a real kill: the test waits for the progress
 * lines of finished trials (events), never for time.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tuneCommand } from '../../src/cli/tune.js';
import { StudyStorage, type TrialRecord } from '../../src/tune/index.js';

const cli = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const root = path.resolve(path.dirname(cli), '../..');
const trainable = fileURLToPath(new URL('../fixtures/study/quadratic.mjs', import.meta.url));
const TRIALS = 10;
const STEPS = 8;
/** In the first process, trials from this id on hang after step 2 (two at a time: 3 and 4). */
const HANG_FROM = 3;

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'mabeam-resume-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/**
 * Start `mabeam tune` as a child process in which trials from `HANG_FROM` on stop mid-run (the
 * fixture's MABEAM_TEST_HANG_FROM_TRIAL); SIGKILL it once `finished` trials have ended and
 * `hanging` trials have said they are stuck mid-run.
 */
function runAndKill(args: string[], finished: number, hanging: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', cli, 'tune', ...args], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, MABEAM_TEST_HANG_FROM_TRIAL: String(HANG_FROM) },
    });
    const lines: string[] = [];
    let killed = false;
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
    });
    createInterface({ input: child.stderr }).on('line', (line) => {
      lines.push(line);
      const ended = lines.filter((l) => /^trial \d+ (completed|pruned|failed)/.test(l)).length;
      const stuck = lines.filter((l) => /^hanging trial \d+$/.test(l)).length;
      if (ended >= finished && stuck >= hanging && !killed) {
        killed = true;
        child.kill('SIGKILL');
      }
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (signal === 'SIGKILL' && killed) resolve(lines);
      else
        reject(
          new Error(
            `tune ended with code ${code}, signal ${signal} before the kill:\n${lines.join('\n')}\n${out}`,
          ),
        );
    });
  });
}

function load(db: string, name: string): TrialRecord[] {
  const storage = StudyStorage.open(db);
  try {
    return storage.loadStudy(name).trials.map((t) => structuredClone(t));
  } finally {
    storage.close();
  }
}

describe('mabeam tune --resume after kill -9', () => {
  it('keeps every finished trial, continues interrupted ones from their checkpoint, and runs the rest', async () => {
    const db = path.join(dir, 'studies.db');
    // Trials 0-2 finish; trials 3 and 4 report and checkpoint steps 1-2, then hang mid-run.
    const args = [
      '--trainable',
      trainable,
      '--storage',
      db,
      '--study',
      'crash',
      '--trials',
      String(TRIALS),
      '--concurrency',
      '2',
      '--sampler',
      'random',
      '--scheduler',
      'fifo',
      '--max-steps',
      String(STEPS),
      '--seed',
      '3',
      '--param',
      'checkpoint=true',
    ];
    const lines = await runAndKill(args, HANG_FROM, 2);
    expect(lines.some((l) => l.startsWith('trial '))).toBe(true);
    const before = load(db, 'crash');
    const finished = before.filter((t) => t.state === 'completed');
    const interrupted = before.filter((t) => t.state === 'running');
    expect(finished.length).toBeGreaterThanOrEqual(3);
    expect(finished.length).toBeLessThan(TRIALS);
    expect(interrupted.length).toBeGreaterThan(0);

    let out = '';
    let err = '';
    const code = await tuneCommand(
      { resume: 'crash', storage: db },
      {
        stdout: (t) => {
          out += t;
        },
        stderr: (t) => {
          err += t;
        },
      },
    );
    expect(code, err).toBe(0);
    expect(out).toContain('study crash');
    const after = load(db, 'crash');
    expect(after.map((t) => t.id)).toEqual([...Array(TRIALS).keys()]);
    expect(after.every((t) => t.state === 'completed')).toBe(true);
    // Finished trials: untouched (same reports, same end), so not re-run.
    for (const t of finished) {
      const now = after[t.id] as TrialRecord;
      expect(now.reports).toEqual(t.reports);
      expect(now.endedAt).toBe(t.endedAt);
      expect(now.config).toEqual(t.config);
    }
    // Interrupted trials: same config; they went on from their last checkpoint, and what they had
    // reported after it was dropped and reported again: every step once, in order.
    for (const t of interrupted) {
      const now = after[t.id] as TrialRecord;
      expect(now.config).toEqual(t.config);
      expect(now.reports.map((r) => r.step)).toEqual([...Array(STEPS).keys()].map((i) => i + 1));
      expect(now.startedAt).toBe(t.startedAt);
    }
    expect(err).toMatch(/trial \d+ completed/);
  }, 60_000);
});
