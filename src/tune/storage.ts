/**
 * Where a `mabeam tune` study persists: one SQLite file (better-sqlite3, synchronous, in process)
 * holding any number of studies, each with its spec, trials, reports, checkpoints and PBT lineage.
 * Every write method is one committed transaction by the time it returns, so whatever the study
 * acknowledged survives the process dying, and a study can be resumed from the file: trials that
 * were running then (`StoredStudy.interrupted`) continue from their latest checkpoint.
 *
 * Durability. The file is in WAL mode: a COMMIT appends the transaction's pages to the `-wal` file
 * with `write()` before it returns, and a transaction whose commit did not complete is ignored on
 * recovery, so each write is all or nothing.
 * - `synchronous: 'full'` (the default) also fsyncs the WAL at every commit: an acknowledged write
 *   survives `kill -9` of the process, an OS crash and power loss. One fsync per write; a study
 *   writes a few times per training step, which trains for far longer than that.
 * - `synchronous: 'normal'` fsyncs only at WAL checkpoints. A committed write is then in the OS page
 *   cache, which the kernel writes out even when the process is killed (SIGKILL included): still
 *   durable against process death, but power loss or an OS crash may roll back the last
 *   transactions (never corrupt the file).
 * The crash test (test/tune/storage.test.ts) SIGKILLs a writer process under both levels and
 * checks that every acknowledged write is in the file.
 *
 * Values. Specs, configurations, metrics and lineage are stored as JSON, so the file can be read
 * with any SQLite tool; non-finite numbers (NaN, ±Infinity) are kept as `{"$num": "NaN"}`, and a
 * value JSON cannot represent faithfully (undefined in an array, a bigint, a function, a Map, a
 * class instance) is refused with InvalidArgumentError naming where it was. Checkpoint states are
 * anything structured-clonable (typed arrays, Maps, nested objects), stored with `v8.serialize`;
 * only the latest `keepCheckpoints` per trial are kept (default 1), "latest" meaning the most
 * recently written, whatever its step (a PBT trial that took a donor's checkpoint may go back).
 *
 * Schema. `PRAGMA application_id` marks the file as a tune study file and `PRAGMA user_version` is
 * the schema version. A file of another application, a newer version, or tables this code does not
 * know is refused with E_TUNE_STORAGE_SCHEMA before anything is written to it; a file that is not
 * SQLite at all (or cannot be opened) gives E_TUNE_STORAGE_OPEN naming the path.
 *
 * Report order. Each report row carries its study's arrival number (`arrival`: one more than the
 * largest the study's reports hold), so `loadStudy` gives the order reports came in across trials
 * (`StoredStudy.reportOrder`), which a resume replays into the scheduler. Version 1 files had no
 * such column: opening one adds it (version 2), and the reports written before that have none, so
 * a study holding any of them has an unknown order (`reportOrder` null).
 */
import { existsSync } from 'node:fs';
import { deserialize, serialize } from 'node:v8';
import Database from 'better-sqlite3';
import { describe, InvalidArgumentError, MabeamError } from '../kernel/index.js';
import type { ReportPosition, StudySpec, StudyStore } from './study.js';
import type { Config, LineageEntry, TrialMetrics, TrialRecord, TrialState } from './types.js';

// ---- errors ------------------------------------------------------------------------------------

/** Error codes of study storage (unique across mabeam, never reused). */
export const TuneStorageErrorCodes = {
  /** `createStudy` with a name the file already holds. */
  STUDY_EXISTS: 'E_TUNE_STUDY_EXISTS',
  /** A study name the file does not hold; the message lists the names it does hold. */
  STUDY_UNKNOWN: 'E_TUNE_STUDY_UNKNOWN',
  /** The file is SQLite but not a tune study file of a version this code reads. */
  SCHEMA: 'E_TUNE_STORAGE_SCHEMA',
  /** The file could not be opened (missing, a directory, not SQLite, unreadable). */
  OPEN: 'E_TUNE_STORAGE_OPEN',
  /** The storage was closed. */
  CLOSED: 'E_TUNE_STORAGE_CLOSED',
  /** The database failed a read or a write (disk full, I/O error, locked); a failed write left nothing. */
  IO: 'E_TUNE_STORAGE_IO',
  /** A write about a trial the study does not hold. */
  TRIAL_UNKNOWN: 'E_TUNE_STORED_TRIAL_UNKNOWN',
  /** A write about a trial that has already ended (completed, pruned or failed). */
  TRIAL_ENDED: 'E_TUNE_STORED_TRIAL_ENDED',
} as const;

export type TuneStorageErrorCode = (typeof TuneStorageErrorCodes)[keyof typeof TuneStorageErrorCodes];

/** Everything study storage refuses (bad arguments aside: those are InvalidArgumentError). */
export class StudyStorageError extends MabeamError {
  declare readonly code: TuneStorageErrorCode;
  /** The file. */
  readonly path: string;
  /** The study concerned, if any. */
  readonly study: string | undefined;
  /** For E_TUNE_STUDY_UNKNOWN: the studies the file holds. */
  readonly known: readonly string[];
  constructor(
    code: TuneStorageErrorCode,
    path: string,
    message: string,
    details: { study?: string; known?: readonly string[]; cause?: unknown } = {},
  ) {
    super(code, message, details.cause === undefined ? undefined : { cause: details.cause });
    this.path = path;
    this.study = details.study;
    this.known = details.known ?? [];
  }
}

// ---- values ------------------------------------------------------------------------------------

const NUM = '$num';

/** `value` as plain JSON data (non-finite numbers tagged); throws naming `where` what cannot be kept. */
function toData(value: unknown, where: string): unknown {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      return Number.isFinite(value) ? value : { [NUM]: String(value) };
    case 'object': {
      if (value === null) return null;
      if (Array.isArray(value)) {
        return value.map((v, i) => {
          if (v === undefined)
            throw new InvalidArgumentError(`${where}[${i}]`, 'cannot be stored (undefined)');
          return toData(v, `${where}[${i}]`);
        });
      }
      const proto = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) {
        throw new InvalidArgumentError(
          where,
          'must be plain data (numbers, strings, booleans, arrays, objects)',
          value,
        );
      }
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) {
        if (k === NUM) throw new InvalidArgumentError(where, `uses the reserved key "${NUM}"`, value);
        if (v !== undefined) out[k] = toData(v, `${where}.${k}`);
      }
      return out;
    }
    default:
      throw new InvalidArgumentError(where, `cannot be stored (a ${typeof value})`, value);
  }
}

function encode(value: unknown, where: string): string {
  return JSON.stringify(toData(value, where));
}

function decode<T>(text: string): T {
  return JSON.parse(text, (_key, v: unknown) => {
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      const keys = Object.keys(v);
      if (keys.length === 1 && keys[0] === NUM) return Number((v as Record<string, unknown>)[NUM]);
    }
    return v;
  }) as T;
}

// ---- schema ------------------------------------------------------------------------------------

/** "MBTU": marks a SQLite file as a mabeam tune study file. */
const APPLICATION_ID = 0x4d425455;
/**
 * Bumped when the layout changes; a file of a newer version is refused, never guessed at.
 * 1: the first layout. 2: reports.arrival, the report's place in its study's arrival order.
 */
const SCHEMA_VERSION = 2;
/** Turns a version 1 file into a version 2 one (its reports keep a null arrival: order unknown). */
const MIGRATE_V1 = `
ALTER TABLE reports ADD COLUMN arrival INTEGER;
CREATE INDEX IF NOT EXISTS reports_arrival ON reports (study, arrival);
`;
const TABLES = ['checkpoints', 'lineage', 'reports', 'studies', 'trials'];

const SCHEMA = `
CREATE TABLE IF NOT EXISTS studies (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  spec TEXT NOT NULL,
  created_at REAL NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('running', 'finished')),
  finished_at REAL
);
CREATE TABLE IF NOT EXISTS trials (
  study INTEGER NOT NULL REFERENCES studies (id),
  id INTEGER NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'completed', 'pruned', 'failed')),
  initial_config TEXT NOT NULL,
  config TEXT NOT NULL,
  best REAL,
  error TEXT,
  started_at REAL,
  ended_at REAL,
  PRIMARY KEY (study, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS reports (
  study INTEGER NOT NULL,
  trial INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  step REAL NOT NULL,
  metrics TEXT NOT NULL,
  arrival INTEGER,
  PRIMARY KEY (study, trial, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS reports_arrival ON reports (study, arrival);
CREATE TABLE IF NOT EXISTS checkpoints (
  id INTEGER PRIMARY KEY,
  study INTEGER NOT NULL,
  trial INTEGER NOT NULL,
  step REAL NOT NULL,
  state BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS checkpoints_trial ON checkpoints (study, trial, id);
CREATE TABLE IF NOT EXISTS lineage (
  study INTEGER NOT NULL,
  trial INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  step REAL NOT NULL,
  donor INTEGER NOT NULL,
  config TEXT NOT NULL,
  PRIMARY KEY (study, trial, seq)
) WITHOUT ROWID;
`;

// ---- public types ------------------------------------------------------------------------------

/** How hard a commit waits for the disk; see the module comment. */
export type StorageSynchronous = 'full' | 'normal';

/** Options of `StudyStorage.open`. */
export interface StudyStorageOptions {
  /** Default `full` (durable against power loss); `normal` is durable against process death only. */
  readonly synchronous?: StorageSynchronous;
  /** Checkpoints kept per trial, the most recent ones (default 1). */
  readonly keepCheckpoints?: number;
  /** Default true; false refuses a path where no file exists (E_TUNE_STORAGE_OPEN). */
  readonly create?: boolean;
  /** Ms to wait for another connection's lock (default 5000). */
  readonly busyTimeoutMs?: number;
  /** The clock of created/started/ended timestamps (default Date.now). */
  readonly now?: () => number;
}

/** A study as the file holds it. */
export interface StoredStudy {
  readonly name: string;
  readonly spec: StudySpec;
  readonly status: 'running' | 'finished';
  readonly createdAt: number;
  readonly finishedAt: number | null;
  /** Every trial, by id, with its reports and lineage in order. */
  readonly trials: TrialRecord[];
  /** Ids of the trials that were running (or pending) when the study was last written: to continue. */
  readonly interrupted: readonly number[];
  /**
   * Every report of `trials` once, in the order they were written (across trials; a rewind's
   * dropped reports are gone), as positions in their trial's `reports`: what `Study.resume` replays.
   * Null when the order is unknown: the study holds reports written before the file's migration
   * from schema version 1, which did not record it.
   */
  readonly reportOrder: readonly ReportPosition[] | null;
}

/** One line of `listStudies`. */
export interface StudyListing {
  readonly name: string;
  readonly status: 'running' | 'finished';
  readonly createdAt: number;
  readonly finishedAt: number | null;
  readonly objective: { readonly metric: string; readonly mode: 'min' | 'max' };
  /** Trials started so far, and how many of them completed. */
  readonly trials: number;
  readonly completed: number;
  /** The best trial's objective value (the study's mode), or null. */
  readonly best: number | null;
}

/** A stored checkpoint. */
export interface StoredCheckpoint {
  readonly step: number;
  readonly state: unknown;
}

const ENDED: ReadonlySet<string> = new Set(['completed', 'pruned', 'failed']);

interface StudyRow {
  readonly id: number;
  readonly mode: 'min' | 'max';
  readonly metric: string;
}

interface TrialRow {
  id: number;
  state: TrialState;
  initial_config: string;
  config: string;
  best: number | null;
  error: string | null;
  started_at: number | null;
  ended_at: number | null;
}

// ---- the storage -------------------------------------------------------------------------------

/** Studies in one SQLite file. Synchronous; one connection; safe to read from other processes. */
export class StudyStorage implements StudyStore {
  /** The file. */
  readonly path: string;
  /** The synchronous level in force. */
  readonly synchronous: StorageSynchronous;
  /** Checkpoints kept per trial. */
  readonly keepCheckpoints: number;
  readonly #db: Database.Database;
  readonly #now: () => number;
  /** Study name -> row id and objective; studies are never deleted, so entries never go stale. */
  readonly #studies = new Map<string, StudyRow>();
  readonly #s: ReturnType<typeof prepare>;
  #closed = false;

  private constructor(
    path: string,
    db: Database.Database,
    sync: StorageSynchronous,
    keep: number,
    now: () => number,
  ) {
    this.path = path;
    this.#db = db;
    this.synchronous = sync;
    this.keepCheckpoints = keep;
    this.#now = now;
    this.#s = prepare(db);
  }

  /**
   * Open (creating if needed, unless `create: false`) the study file at `path`. Throws
   * StudyStorageError E_TUNE_STORAGE_OPEN if it cannot be opened as SQLite, E_TUNE_STORAGE_SCHEMA if
   * it is not a tune study file of a version this code reads.
   */
  static open(path: string, options: StudyStorageOptions = {}): StudyStorage {
    if (typeof path !== 'string' || path === '') {
      throw new InvalidArgumentError('study storage path', 'must be a non-empty string', path);
    }
    const sync = options.synchronous ?? 'full';
    if (sync !== 'full' && sync !== 'normal') {
      throw new InvalidArgumentError(
        'study storage option "synchronous"',
        "must be 'full' or 'normal'",
        sync,
      );
    }
    const keep = options.keepCheckpoints ?? 1;
    if (!Number.isSafeInteger(keep) || keep < 1) {
      throw new InvalidArgumentError(
        'study storage option "keepCheckpoints"',
        'must be a whole number >= 1',
        keep,
      );
    }
    const busy = options.busyTimeoutMs ?? 5000;
    if (!Number.isSafeInteger(busy) || busy < 0) {
      throw new InvalidArgumentError(
        'study storage option "busyTimeoutMs"',
        'must be a whole number >= 0',
        busy,
      );
    }
    const now = options.now ?? Date.now;
    if (typeof now !== 'function')
      throw new InvalidArgumentError('study storage option "now"', 'must be a function', now);
    const create = options.create ?? true;
    if (!create && path !== ':memory:' && !existsSync(path)) {
      throw new StudyStorageError(
        TuneStorageErrorCodes.OPEN,
        path,
        `cannot open study file ${path}: no such file`,
      );
    }
    let db: Database.Database;
    try {
      db = new Database(path, { fileMustExist: !create });
    } catch (error) {
      throw new StudyStorageError(
        TuneStorageErrorCodes.OPEN,
        path,
        `cannot open study file ${path}: ${describe(error)}`,
        {
          cause: error,
        },
      );
    }
    try {
      db.pragma(`busy_timeout = ${busy}`);
      // Read the header before changing anything: a file that is not ours is refused untouched.
      let header: { app: number; version: number; tables: string[] };
      try {
        header = readHeader(db);
      } catch (error) {
        throw new StudyStorageError(
          TuneStorageErrorCodes.OPEN,
          path,
          `cannot open study file ${path}: ${describe(error)} (is it a SQLite file?)`,
          { cause: error },
        );
      }
      checkHeader(path, header);
      const mode = db.pragma('journal_mode = WAL', { simple: true });
      if (mode !== 'wal' && path !== ':memory:') throw new Error(`journal_mode is ${String(mode)}, not wal`);
      db.pragma(`synchronous = ${sync.toUpperCase()}`);
      if (header.tables.length === 0) {
        // A new file: create the schema and mark it, in one transaction that re-checks under the
        // write lock (another process may be creating it at the same moment).
        db.transaction(() => {
          const again = readHeader(db);
          if (again.tables.length > 0) return checkHeader(path, again);
          db.exec(SCHEMA);
          db.pragma(`application_id = ${APPLICATION_ID}`);
          db.pragma(`user_version = ${SCHEMA_VERSION}`);
        }).immediate();
      } else if (header.version === 1) {
        // A version 1 file: add the arrival order, re-checking under the write lock (another
        // process may be migrating it at the same moment).
        db.transaction(() => {
          const again = readHeader(db);
          if (again.version !== 1) return checkHeader(path, again);
          db.exec(MIGRATE_V1);
          db.pragma(`user_version = ${SCHEMA_VERSION}`);
        }).immediate();
      }
      return new StudyStorage(path, db, sync, keep, now);
    } catch (error) {
      db.close();
      if (error instanceof MabeamError) throw error;
      throw new StudyStorageError(
        TuneStorageErrorCodes.OPEN,
        path,
        `cannot open study file ${path}: ${describe(error)}`,
        {
          cause: error,
        },
      );
    }
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Create a study. Throws E_TUNE_STUDY_EXISTS if the file already holds one of that name, and
   * InvalidArgumentError if the spec cannot be stored (see the module comment on values).
   */
  createStudy(name: string, spec: StudySpec): void {
    this.#open('createStudy');
    checkName(name);
    if (spec === null || typeof spec !== 'object')
      throw new InvalidArgumentError('study spec', 'must be an object', spec);
    objectiveOf(spec, (problem, value) => new InvalidArgumentError('study spec "objective"', problem, value));
    const json = encode(spec, 'study spec');
    this.#write('createStudy', name, () => {
      if (this.#s.studyByName.get(name) !== undefined) {
        throw new StudyStorageError(
          TuneStorageErrorCodes.STUDY_EXISTS,
          this.path,
          `study "${name}" already exists in ${this.path}; choose another name, or resume it`,
          { study: name },
        );
      }
      this.#s.insertStudy.run(name, json, this.#now());
    });
  }

  /** The study `name`: spec, status and every trial. Throws E_TUNE_STUDY_UNKNOWN listing the names there are. */
  loadStudy(name: string): StoredStudy {
    this.#open('loadStudy');
    checkName(name);
    return this.#read('loadStudy', name, () =>
      this.#db
        .transaction((): StoredStudy => {
          const row = this.#s.studyByName.get(name) as
            | {
                id: number;
                spec: string;
                status: 'running' | 'finished';
                created_at: number;
                finished_at: number | null;
              }
            | undefined;
          if (row === undefined) throw this.#unknown(name);
          const trials = new Map<number, TrialRecord>();
          for (const t of this.#s.trialsOf.all(row.id) as TrialRow[]) {
            trials.set(t.id, {
              id: t.id,
              state: t.state,
              initialConfig: decode<Config>(t.initial_config),
              config: decode<Config>(t.config),
              reports: [],
              best: t.best,
              error: t.error,
              lineage: [],
              startedAt: t.started_at,
              endedAt: t.ended_at,
            });
          }
          const arrivals: { trial: number; index: number; arrival: number | null }[] = [];
          for (const r of this.#s.reportsOf.all(row.id) as {
            trial: number;
            metrics: string;
            arrival: number | null;
          }[]) {
            const reports = trials.get(r.trial)?.reports;
            if (reports === undefined) continue;
            arrivals.push({ trial: r.trial, index: reports.length, arrival: r.arrival });
            reports.push(decode<TrialMetrics>(r.metrics));
          }
          const known = arrivals.every((a) => a.arrival !== null);
          for (const l of this.#s.lineageOf.all(row.id) as {
            trial: number;
            step: number;
            donor: number;
            config: string;
          }[]) {
            trials
              .get(l.trial)
              ?.lineage.push({ step: l.step, donor: l.donor, config: decode<Config>(l.config) });
          }
          const list = [...trials.values()];
          return {
            name,
            spec: decode<StudySpec>(row.spec),
            status: row.status,
            createdAt: row.created_at,
            finishedAt: row.finished_at,
            trials: list,
            interrupted: list.filter((t) => t.state === 'running' || t.state === 'pending').map((t) => t.id),
            reportOrder: known
              ? arrivals
                  .sort((a, b) => (a.arrival as number) - (b.arrival as number))
                  .map(({ trial, index }) => ({ trial, index }))
              : null,
          };
        })
        .deferred(),
    );
  }

  /** Every study in the file, by name. */
  listStudies(): StudyListing[] {
    this.#open('listStudies');
    return this.#read('listStudies', undefined, () =>
      (
        this.#s.listing.all() as {
          name: string;
          spec: string;
          status: 'running' | 'finished';
          created_at: number;
          finished_at: number | null;
          trials: number;
          completed: number | null;
          lo: number | null;
          hi: number | null;
        }[]
      ).map((r) => {
        const objective = objectiveOf(decode<StudySpec>(r.spec), (problem) => this.#corrupt(r.name, problem));
        return {
          name: r.name,
          status: r.status,
          createdAt: r.created_at,
          finishedAt: r.finished_at,
          objective,
          trials: r.trials,
          completed: r.completed ?? 0,
          best: objective.mode === 'min' ? r.lo : r.hi,
        };
      }),
    );
  }

  /**
   * A trial started with `config`. For a trial the study already holds that is still running (an
   * interrupted trial continued after a resume), it is marked running again and keeps its reports,
   * checkpoints and start time. Reopens a finished study (it is running again).
   */
  trialStarted(study: string, id: number, config: Config): void {
    this.#open('trialStarted');
    checkTrialId(id);
    const json = encode(config, `config of trial ${id}`);
    this.#write('trialStarted', study, () => {
      const s = this.#study(study);
      const existing = this.#s.trialState.get(s.id, id) as { state: TrialState } | undefined;
      if (existing === undefined) this.#s.insertTrial.run(s.id, id, json, json, this.#now());
      else if (ENDED.has(existing.state)) throw this.#ended(study, id, existing.state, 'start');
      else this.#s.restartTrial.run(json, s.id, id);
      this.#s.reopenStudy.run(s.id);
    });
  }

  /**
   * A report of a running trial, appended to its reports; the trial's best is updated from the
   * objective's metric when it is there and finite.
   */
  report(study: string, id: number, metrics: TrialMetrics): void {
    this.#open('report');
    checkTrialId(id);
    checkMetrics(id, metrics);
    const json = encode(metrics, `metrics of trial ${id}`);
    this.#write('report', study, () => {
      const s = this.#study(study);
      this.#running(study, s, id, 'report for');
      this.#s.insertReport.run(s.id, id, s.id, id, metrics.step, json, s.id);
      const v = metrics[s.metric];
      if (typeof v === 'number' && Number.isFinite(v))
        (s.mode === 'min' ? this.#s.bestMin : this.#s.bestMax).run(v, v, s.id, id);
    });
  }

  /** Store a running trial's checkpoint; older ones beyond `keepCheckpoints` are dropped in the same transaction. */
  checkpoint(study: string, id: number, step: number, state: unknown): void {
    this.#open('checkpoint');
    checkTrialId(id);
    if (typeof step !== 'number' || !Number.isFinite(step)) {
      throw new InvalidArgumentError(`checkpoint step of trial ${id}`, 'must be a finite number', step);
    }
    let blob: Buffer;
    try {
      blob = serialize(state);
    } catch (error) {
      throw new InvalidArgumentError(
        `checkpoint state of trial ${id}`,
        `must be structured-clonable (${describe(error)})`,
      );
    }
    this.#write('checkpoint', study, () => {
      const s = this.#study(study);
      this.#running(study, s, id, 'checkpoint');
      this.#s.insertCheckpoint.run(s.id, id, step, blob);
      this.#s.pruneCheckpoints.run(s.id, id, s.id, id, this.keepCheckpoints);
    });
  }

  /** A trial's most recently written checkpoint, or undefined (whatever the trial's state). */
  latestCheckpoint(study: string, id: number): StoredCheckpoint | undefined {
    this.#open('latestCheckpoint');
    checkTrialId(id);
    return this.#read('latestCheckpoint', study, () => {
      const s = this.#study(study);
      const row = this.#s.latestCheckpoint.get(s.id, id) as { step: number; state: Buffer } | undefined;
      return row === undefined ? undefined : { step: row.step, state: deserialize(row.state) };
    });
  }

  /** A running trial exploited (PBT): record the lineage entry and make `entry.config` its config. */
  exploit(study: string, id: number, entry: LineageEntry): void {
    this.#open('exploit');
    checkTrialId(id);
    if (entry === null || typeof entry !== 'object') {
      throw new InvalidArgumentError(`lineage entry of trial ${id}`, 'must be {step, donor, config}', entry);
    }
    if (typeof entry.step !== 'number' || !Number.isFinite(entry.step)) {
      throw new InvalidArgumentError(`lineage step of trial ${id}`, 'must be a finite number', entry.step);
    }
    checkTrialId(entry.donor, `donor of trial ${id}`);
    const json = encode(entry.config, `exploit config of trial ${id}`);
    this.#write('exploit', study, () => {
      const s = this.#study(study);
      this.#running(study, s, id, 'exploit for');
      this.#s.insertLineage.run(s.id, id, s.id, id, entry.step, entry.donor, json);
      this.#s.setConfig.run(json, s.id, id);
    });
  }

  /**
   * Drop a running trial's reports after `step` (they will be reported again when the trial
   * continues from a checkpoint at `step`), recomputing its best. Returns how many were dropped.
   */
  rewindTrial(study: string, id: number, step: number): number {
    this.#open('rewindTrial');
    checkTrialId(id);
    if (typeof step !== 'number' || Number.isNaN(step)) {
      throw new InvalidArgumentError(`rewind step of trial ${id}`, 'must be a number', step);
    }
    return this.#write('rewindTrial', study, () => {
      const s = this.#study(study);
      this.#running(study, s, id, 'rewind');
      const dropped = this.#s.dropReportsAfter.run(s.id, id, step).changes;
      let best: number | null = null;
      for (const r of this.#s.reportsOfTrial.all(s.id, id) as { metrics: string }[]) {
        const v = decode<TrialMetrics>(r.metrics)[s.metric];
        if (
          typeof v === 'number' &&
          Number.isFinite(v) &&
          (best === null || (s.mode === 'min' ? v < best : v > best))
        )
          best = v;
      }
      this.#s.setBest.run(best, s.id, id);
      return dropped;
    });
  }

  /**
   * A trial ended (completed, pruned or failed). `best` (undefined: keep the one the reports gave)
   * and `error` are stored as given.
   */
  trialEnded(
    study: string,
    id: number,
    state: TrialState,
    best?: number | null,
    error?: string | null,
  ): void {
    this.#open('trialEnded');
    checkTrialId(id);
    if (!ENDED.has(state)) {
      throw new InvalidArgumentError(
        `end state of trial ${id}`,
        "must be 'completed', 'pruned' or 'failed'",
        state,
      );
    }
    if (best !== undefined && best !== null && typeof best !== 'number') {
      throw new InvalidArgumentError(`best of trial ${id}`, 'must be a number or null', best);
    }
    if (error !== undefined && error !== null && typeof error !== 'string') {
      throw new InvalidArgumentError(`error of trial ${id}`, 'must be a string or null', error);
    }
    this.#write('trialEnded', study, () => {
      const s = this.#study(study);
      this.#running(study, s, id, 'end');
      this.#s.endTrial.run(
        state,
        best === undefined ? 0 : 1,
        best ?? null,
        error ?? null,
        this.#now(),
        s.id,
        id,
      );
    });
  }

  /** Mark the study finished (a later trialStarted reopens it). */
  finishStudy(study: string): void {
    this.#open('finishStudy');
    this.#write('finishStudy', study, () => {
      const s = this.#study(study);
      this.#s.finishStudy.run(this.#now(), s.id);
    });
  }

  /** Close the file (idempotent). Every method then throws E_TUNE_STORAGE_CLOSED. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#db.close();
  }

  // ---- internals -------------------------------------------------------------------------------

  #open(operation: string): void {
    if (this.#closed) {
      throw new StudyStorageError(
        TuneStorageErrorCodes.CLOSED,
        this.path,
        `study storage ${this.path} is closed; ${operation} refused`,
      );
    }
  }

  /** Run `fn` as one IMMEDIATE transaction; a database failure becomes E_TUNE_STORAGE_IO. */
  #write<T>(operation: string, study: string | undefined, fn: () => T): T {
    try {
      return this.#db.transaction(fn).immediate();
    } catch (error) {
      throw this.#wrap(operation, study, error);
    }
  }

  #read<T>(operation: string, study: string | undefined, fn: () => T): T {
    try {
      return fn();
    } catch (error) {
      throw this.#wrap(operation, study, error);
    }
  }

  #wrap(operation: string, study: string | undefined, error: unknown): Error {
    if (error instanceof MabeamError) return error;
    return new StudyStorageError(
      TuneStorageErrorCodes.IO,
      this.path,
      `study storage ${this.path}: ${operation}${study === undefined ? '' : ` of study "${study}"`} failed ` +
        `(nothing of it was written): ${describe(error)}`,
      { study, cause: error },
    );
  }

  #study(name: string): StudyRow {
    const cached = this.#studies.get(name);
    if (cached !== undefined) return cached;
    checkName(name);
    const row = this.#s.studyByName.get(name) as { id: number; spec: string } | undefined;
    if (row === undefined) throw this.#unknown(name);
    const objective = objectiveOf(decode<StudySpec>(row.spec), (problem) => this.#corrupt(name, problem));
    const s: StudyRow = { id: row.id, ...objective };
    this.#studies.set(name, s);
    return s;
  }

  #running(study: string, s: StudyRow, id: number, what: string): void {
    const row = this.#s.trialState.get(s.id, id) as { state: TrialState } | undefined;
    if (row === undefined) {
      throw new StudyStorageError(
        TuneStorageErrorCodes.TRIAL_UNKNOWN,
        this.path,
        `cannot ${what} trial ${id} of study "${study}": it has no such trial (call trialStarted first)`,
        { study },
      );
    }
    if (ENDED.has(row.state)) throw this.#ended(study, id, row.state, what);
  }

  #ended(study: string, id: number, state: string, what: string): StudyStorageError {
    return new StudyStorageError(
      TuneStorageErrorCodes.TRIAL_ENDED,
      this.path,
      `cannot ${what} trial ${id} of study "${study}": it has ended (${state})`,
      { study },
    );
  }

  #unknown(name: string): StudyStorageError {
    const known = this.#s.studyNames.all() as string[];
    return new StudyStorageError(
      TuneStorageErrorCodes.STUDY_UNKNOWN,
      this.path,
      `no study "${name}" in ${this.path}; ` +
        (known.length === 0
          ? 'it holds no study'
          : `it holds: ${known.map((n) => JSON.stringify(n)).join(', ')}`),
      { study: name, known },
    );
  }

  #corrupt(name: string, problem: string): StudyStorageError {
    return new StudyStorageError(
      TuneStorageErrorCodes.SCHEMA,
      this.path,
      `study "${name}" in ${this.path} has a spec this code cannot read: ${problem}`,
      { study: name },
    );
  }
}

// ---- helpers -----------------------------------------------------------------------------------

function prepare(db: Database.Database) {
  return {
    studyByName: db.prepare('SELECT id, spec, status, created_at, finished_at FROM studies WHERE name = ?'),
    studyNames: db.prepare('SELECT name FROM studies ORDER BY name').pluck(),
    insertStudy: db.prepare(
      "INSERT INTO studies (name, spec, created_at, status) VALUES (?, ?, ?, 'running')",
    ),
    reopenStudy: db.prepare(
      "UPDATE studies SET status = 'running', finished_at = NULL WHERE id = ? AND status <> 'running'",
    ),
    finishStudy: db.prepare("UPDATE studies SET status = 'finished', finished_at = ? WHERE id = ?"),
    listing: db.prepare(
      `SELECT s.name, s.spec, s.status, s.created_at, s.finished_at, COUNT(t.id) AS trials,
              SUM(t.state = 'completed') AS completed, MIN(t.best) AS lo, MAX(t.best) AS hi
       FROM studies s LEFT JOIN trials t ON t.study = s.id GROUP BY s.id ORDER BY s.name`,
    ),
    trialState: db.prepare('SELECT state FROM trials WHERE study = ? AND id = ?'),
    insertTrial: db.prepare(
      "INSERT INTO trials (study, id, state, initial_config, config, started_at) VALUES (?, ?, 'running', ?, ?, ?)",
    ),
    restartTrial: db.prepare("UPDATE trials SET state = 'running', config = ? WHERE study = ? AND id = ?"),
    setConfig: db.prepare('UPDATE trials SET config = ? WHERE study = ? AND id = ?'),
    setBest: db.prepare('UPDATE trials SET best = ? WHERE study = ? AND id = ?'),
    bestMin: db.prepare(
      'UPDATE trials SET best = CASE WHEN best IS NULL OR ? < best THEN ? ELSE best END WHERE study = ? AND id = ?',
    ),
    bestMax: db.prepare(
      'UPDATE trials SET best = CASE WHEN best IS NULL OR ? > best THEN ? ELSE best END WHERE study = ? AND id = ?',
    ),
    endTrial: db.prepare(
      `UPDATE trials SET state = ?, best = CASE WHEN ? THEN ? ELSE best END, error = ?, ended_at = ?
       WHERE study = ? AND id = ?`,
    ),
    trialsOf: db.prepare(
      'SELECT id, state, initial_config, config, best, error, started_at, ended_at FROM trials WHERE study = ? ORDER BY id',
    ),
    insertReport: db.prepare(
      `INSERT INTO reports (study, trial, seq, step, metrics, arrival)
       VALUES (?, ?, (SELECT COALESCE(MAX(seq) + 1, 0) FROM reports WHERE study = ? AND trial = ?), ?, ?,
               (SELECT COALESCE(MAX(arrival) + 1, 0) FROM reports WHERE study = ?))`,
    ),
    reportsOf: db.prepare('SELECT trial, metrics, arrival FROM reports WHERE study = ? ORDER BY trial, seq'),
    reportsOfTrial: db.prepare('SELECT metrics FROM reports WHERE study = ? AND trial = ? ORDER BY seq'),
    dropReportsAfter: db.prepare('DELETE FROM reports WHERE study = ? AND trial = ? AND step > ?'),
    insertCheckpoint: db.prepare('INSERT INTO checkpoints (study, trial, step, state) VALUES (?, ?, ?, ?)'),
    // Everything but the newest `keep` of this trial (ids only grow: the newest row is never deleted).
    pruneCheckpoints: db.prepare(
      `DELETE FROM checkpoints WHERE study = ? AND trial = ? AND id NOT IN
       (SELECT id FROM checkpoints WHERE study = ? AND trial = ? ORDER BY id DESC LIMIT ?)`,
    ),
    latestCheckpoint: db.prepare(
      'SELECT step, state FROM checkpoints WHERE study = ? AND trial = ? ORDER BY id DESC LIMIT 1',
    ),
    insertLineage: db.prepare(
      `INSERT INTO lineage (study, trial, seq, step, donor, config)
       VALUES (?, ?, (SELECT COALESCE(MAX(seq) + 1, 0) FROM lineage WHERE study = ? AND trial = ?), ?, ?, ?)`,
    ),
    lineageOf: db.prepare(
      'SELECT trial, step, donor, config FROM lineage WHERE study = ? ORDER BY trial, seq',
    ),
  };
}

function readHeader(db: Database.Database): { app: number; version: number; tables: string[] } {
  return {
    app: db.pragma('application_id', { simple: true }) as number,
    version: db.pragma('user_version', { simple: true }) as number,
    tables: db
      .prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
      )
      .pluck()
      .all() as string[],
  };
}

function checkHeader(path: string, h: { app: number; version: number; tables: string[] }): void {
  const refuse = (why: string) =>
    new StudyStorageError(
      TuneStorageErrorCodes.SCHEMA,
      path,
      `${path} is not a study file this code can use: ${why}`,
    );
  if (h.app === 0 && h.version === 0 && h.tables.length === 0) return; // new, empty
  if (h.app !== APPLICATION_ID) {
    throw refuse(
      `it is a SQLite file of another application (application_id ${h.app}, tables ${h.tables.join(', ') || 'none'})`,
    );
  }
  if (h.version > SCHEMA_VERSION) {
    throw refuse(
      `its schema version is ${h.version}, newer than this code's ${SCHEMA_VERSION}; upgrade mabeam`,
    );
  }
  if (h.version !== SCHEMA_VERSION && h.version !== 1)
    throw refuse(`unknown schema version ${h.version} (this code reads 1 to ${SCHEMA_VERSION})`);
  if (h.tables.join() !== TABLES.join()) {
    throw refuse(`its tables are ${h.tables.join(', ') || 'none'}, expected ${TABLES.join(', ')}`);
  }
}

function checkName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || name === '') {
    throw new InvalidArgumentError('study name', 'must be a non-empty string', name);
  }
}

function checkTrialId(id: unknown, what = 'trial id'): asserts id is number {
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0) {
    throw new InvalidArgumentError(what, 'must be a whole number >= 0', id);
  }
}

function checkMetrics(id: number, metrics: unknown): asserts metrics is TrialMetrics {
  if (metrics === null || typeof metrics !== 'object' || Array.isArray(metrics)) {
    throw new InvalidArgumentError(
      `metrics of trial ${id}`,
      'must be an object of numbers with a "step"',
      metrics,
    );
  }
  for (const [k, v] of Object.entries(metrics)) {
    if (typeof v !== 'number')
      throw new InvalidArgumentError(`metric "${k}" of trial ${id}`, 'must be a number', v);
  }
  const step = (metrics as { step?: unknown }).step;
  if (typeof step !== 'number' || !Number.isFinite(step)) {
    throw new InvalidArgumentError(`metrics "step" of trial ${id}`, 'must be a finite number', step);
  }
}

function objectiveOf(
  spec: StudySpec,
  fail: (problem: string, value: unknown) => Error,
): { metric: string; mode: 'min' | 'max' } {
  const o = (spec as { objective?: unknown }).objective as
    | { metric?: unknown; mode?: unknown }
    | null
    | undefined;
  if (o === null || typeof o !== 'object') throw fail('must be {metric, mode}', o);
  if (typeof o.metric !== 'string' || o.metric === '')
    throw fail('"metric" must be a non-empty string', o.metric);
  if (o.mode !== 'min' && o.mode !== 'max') throw fail('"mode" must be "min" or "max"', o.mode);
  return { metric: o.metric, mode: o.mode };
}
