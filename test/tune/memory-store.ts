/** A study store for the tune tests (not a test file: no tests run here). */
import type {
  Config,
  LineageEntry,
  StudyStore,
  TrialMetrics,
  TrialRecord,
  TrialState,
} from '../../src/tune/index.js';

/**
 * A StudyStore in memory that keeps what StudyStorage keeps, logs every write, and can fail one
 * report write (as SQLite's SQLITE_BUSY would): resume and crash paths without SQLite.
 */
export class MemoryStore implements StudyStore {
  readonly trials = new Map<number, TrialRecord>();
  readonly checkpoints = new Map<number, { step: number; state: unknown }>();
  /** Every write, in order: `started 0`, `report 0`, `ended 0 completed`... */
  readonly writes: string[] = [];
  failNextReport = false;
  trialStarted(_s: string, id: number, config: Config): void {
    this.writes.push(`started ${id}`);
    const t = this.trials.get(id);
    if (t !== undefined) t.state = 'running';
    else {
      this.trials.set(id, {
        id,
        state: 'running',
        initialConfig: config,
        config,
        reports: [],
        best: null,
        error: null,
        lineage: [],
        startedAt: 1,
        endedAt: null,
      });
    }
  }
  report(_s: string, id: number, metrics: TrialMetrics): void {
    if (this.failNextReport) {
      this.failNextReport = false;
      throw new Error('SQLITE_BUSY: database is locked');
    }
    this.writes.push(`report ${id}`);
    this.trials.get(id)?.reports.push(metrics);
  }
  checkpoint(_s: string, id: number, step: number, state: unknown): void {
    this.writes.push(`checkpoint ${id}`);
    this.checkpoints.set(id, { step, state: structuredClone(state) });
  }
  latestCheckpoint(_s: string, id: number) {
    return this.checkpoints.get(id);
  }
  exploit(_s: string, id: number, entry: LineageEntry): void {
    this.writes.push(`exploit ${id}`);
    const t = this.trials.get(id) as TrialRecord;
    t.lineage.push(entry);
    t.config = entry.config;
  }
  trialEnded(_s: string, id: number, state: TrialState, best: number | null, error: string | null): void {
    this.writes.push(`ended ${id} ${state}`);
    const t = this.trials.get(id) as TrialRecord;
    Object.assign(t, { state, best, error, endedAt: 2 });
  }
  finishStudy(): void {
    this.writes.push('finished');
  }
  /** What a crash leaves behind: deep copies of the records. */
  snapshot(): TrialRecord[] {
    return [...this.trials.values()].map((t) => structuredClone(t));
  }
}
