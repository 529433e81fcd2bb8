/**
 * The SQLite backend, the embedded default: better-sqlite3 (synchronous, in process), WAL journal,
 * prepared statements, indexes on type, timestamp and correlation id.
 *
 * Durability. In WAL mode a COMMIT appends the transaction's pages to the `-wal` file with
 * `write()` before it returns; a crash before that point leaves no trace of the transaction (the
 * WAL frames of an uncommitted transaction are ignored on recovery), so a batch is all or nothing.
 * - `synchronous: 'full'` (the default) also fsyncs the WAL at every commit, so an acknowledged
 *   append survives power loss and OS crashes. Costs one fsync per transaction (about 0.25 ms on
 *   the development machine), which the store's group commit shares among all appends of a batch.
 * - `synchronous: 'normal'` fsyncs only at checkpoints. A returned commit is then in the OS page
 *   cache, which the kernel writes out even when our process is killed (SIGKILL included), so it
 *   is durable against process death, but power loss or an OS crash may roll back the last
 *   transactions (never corrupt the file). About 6x faster per commit.
 */
import Database from 'better-sqlite3';
import { InvalidArgumentError } from '../../kernel/index.js';
import { toStoredEvent } from './codec.js';
import { StoreOpenError } from './errors.js';
import type { EventBackend, EventRecord, PruneBound, ResolvedQuery, StoredEvent } from './types.js';

/** How hard a commit waits for the disk; see the module comment. */
export type SqliteSynchronous = 'full' | 'normal';

export interface SqliteEventLogOptions {
  /** Default `full`: durable against power loss. `normal`: durable against process death only. */
  readonly synchronous?: SqliteSynchronous;
  /**
   * Ms a statement waits for a lock held by another connection (a reader's checkpoint, a tool
   * inspecting the file) before failing. Default 5000. The store itself never contends: it has one
   * connection and one writer.
   */
  readonly busyTimeoutMs?: number;
}

/** Bumped when the table layout changes; a file with another version is refused, never migrated blindly. */
const SCHEMA_VERSION = 1;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS events (
  seq INTEGER PRIMARY KEY,
  type TEXT NOT NULL,
  data TEXT NOT NULL,
  timestamp REAL NOT NULL,
  correlation_id TEXT,
  causation_id TEXT,
  metadata TEXT
);
CREATE INDEX IF NOT EXISTS events_type ON events (type, seq);
CREATE INDEX IF NOT EXISTS events_timestamp ON events (timestamp);
CREATE INDEX IF NOT EXISTS events_correlation ON events (correlation_id, seq) WHERE correlation_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
`;

const COLUMNS = 'seq, type, data, timestamp, correlation_id, causation_id, metadata';
/** Most distinct query shapes whose prepared statements are kept. */
const STATEMENT_CACHE = 64;

type Row = [number, string, string, number, string | null, string | null, string | null];

function rowToEvent(row: Row): StoredEvent {
  return toStoredEvent({
    seq: row[0],
    type: row[1],
    data: row[2],
    timestamp: row[3],
    correlationId: row[4] ?? undefined,
    causationId: row[5] ?? undefined,
    metadata: row[6] ?? undefined,
  });
}

/** An event log in a SQLite file (or `:memory:`), written through one connection. */
export class SqliteEventLog implements EventBackend {
  readonly kind = 'sqlite';
  readonly location: string;
  /** The synchronous level in force. */
  readonly synchronous: SqliteSynchronous;
  readonly #db: Database.Database;
  readonly #insert: Database.Statement;
  readonly #readFrom: Database.Statement;
  readonly #firstAtOrAfter: Database.Statement;
  readonly #deleteBefore: Database.Statement;
  readonly #setMeta: Database.Statement;
  readonly #commit: Database.Transaction<(records: readonly EventRecord[]) => void>;
  readonly #queries = new Map<string, Database.Statement>();
  #lastSeq = 0;
  #lastTimestamp = 0;
  #closed = false;

  /** Open (creating if needed) the log at `path`. Throws StoreOpenError if it cannot. */
  constructor(path: string, options: SqliteEventLogOptions = {}) {
    if (typeof path !== 'string' || path === '') {
      throw new InvalidArgumentError('sqlite path', 'must be a non-empty string', path);
    }
    const synchronous = options.synchronous ?? 'full';
    if (synchronous !== 'full' && synchronous !== 'normal') {
      throw new InvalidArgumentError(
        'sqlite option "synchronous"',
        "must be 'full' or 'normal'",
        synchronous,
      );
    }
    const busy = options.busyTimeoutMs ?? 5000;
    if (!Number.isInteger(busy) || busy < 0) {
      throw new InvalidArgumentError('sqlite option "busyTimeoutMs"', 'must be an integer >= 0', busy);
    }
    this.location = path;
    this.synchronous = synchronous;
    let db: Database.Database | undefined;
    try {
      db = new Database(path);
      db.pragma(`busy_timeout = ${busy}`);
      const mode = db.pragma('journal_mode = WAL', { simple: true });
      if (mode !== 'wal' && path !== ':memory:') throw new Error(`journal_mode is ${String(mode)}, not wal`);
      db.pragma(`synchronous = ${synchronous.toUpperCase()}`);
      const level = db.pragma('synchronous', { simple: true });
      if (level !== (synchronous === 'full' ? 2 : 1)) throw new Error(`synchronous is ${String(level)}`);
      const version = db.pragma('user_version', { simple: true }) as number;
      if (version !== 0 && version !== SCHEMA_VERSION) {
        throw new Error(`schema version ${version}, this code reads version ${SCHEMA_VERSION}`);
      }
      db.exec(SCHEMA);
      if (version === 0) db.pragma(`user_version = ${SCHEMA_VERSION}`);
      this.#insert = db.prepare(`INSERT INTO events (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)`);
      this.#readFrom = db
        .prepare(`SELECT ${COLUMNS} FROM events WHERE seq >= ? ORDER BY seq LIMIT ?`)
        .raw(true);
      // Ordered by the index (timestamp, then rowid): one index seek, never a scan.
      this.#firstAtOrAfter = db
        .prepare('SELECT seq FROM events WHERE timestamp >= ? ORDER BY timestamp, seq LIMIT 1')
        .pluck(true);
      this.#deleteBefore = db.prepare('DELETE FROM events WHERE seq < ?');
      this.#setMeta = db.prepare(
        'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
      );
      const insert = this.#insert;
      this.#commit = db.transaction((records: readonly EventRecord[]) => {
        for (const r of records) {
          insert.run(
            r.seq,
            r.type,
            r.data,
            r.timestamp,
            r.correlationId ?? null,
            r.causationId ?? null,
            r.metadata ?? null,
          );
        }
      });
      // The highest seq is either the last event's, or (if pruning removed it) the one pruning recorded.
      const last = db
        .prepare('SELECT seq, timestamp FROM events ORDER BY seq DESC LIMIT 1')
        .raw(true)
        .get() as [number, number] | undefined;
      const meta = new Map(
        (db.prepare('SELECT key, value FROM meta').raw(true).all() as [string, number][]).map(([k, v]) => [
          k,
          v,
        ]),
      );
      const prunedSeq = meta.get('last_seq') ?? 0;
      if (last !== undefined && last[0] >= prunedSeq) {
        this.#lastSeq = last[0];
        this.#lastTimestamp = last[1];
      } else {
        this.#lastSeq = prunedSeq;
        this.#lastTimestamp = meta.get('last_timestamp') ?? 0;
      }
      this.#db = db;
    } catch (error) {
      db?.close();
      throw new StoreOpenError(path, error);
    }
  }

  get lastSeq(): number {
    return this.#lastSeq;
  }

  get lastTimestamp(): number {
    return this.#lastTimestamp;
  }

  get closed(): boolean {
    return this.#closed;
  }

  append(records: readonly EventRecord[]): void {
    const first = records[0];
    if (first === undefined) return;
    if (first.seq !== this.#lastSeq + 1) {
      throw new Error(`sqlite event log: expected seq ${this.#lastSeq + 1}, got ${first.seq}`);
    }
    // BEGIN IMMEDIATE takes the write lock up front, so a foreign connection shows up as a busy
    // wait at the start instead of a failure halfway through the batch.
    this.#commit.immediate(records);
    const last = records[records.length - 1] as EventRecord;
    this.#lastSeq = last.seq;
    this.#lastTimestamp = last.timestamp;
  }

  readFrom(fromSeq: number, limit: number): StoredEvent[] {
    return (this.#readFrom.all(fromSeq, limit) as Row[]).map(rowToEvent);
  }

  query(q: ResolvedQuery): StoredEvent[] {
    if (q.types?.length === 0 || q.limit === 0) return [];
    // Time bounds become seq bounds through the timestamp index (timestamps never decrease along
    // seq), so the main statement is a seq range scan, or a (type, seq) / (correlation, seq) one.
    let fromSeq = q.fromSeq;
    let toSeq = q.toSeq;
    if (q.from !== undefined) {
      const s = this.#firstAtOrAfter.get(q.from) as number | undefined;
      if (s === undefined) return [];
      fromSeq = fromSeq === undefined ? s : Math.max(fromSeq, s);
    }
    if (q.to !== undefined) {
      const s = this.#firstAtOrAfter.get(q.to) as number | undefined;
      if (s !== undefined) toSeq = toSeq === undefined ? s : Math.min(toSeq, s);
    }
    const where: string[] = [];
    const params: (string | number)[] = [];
    if (q.types !== undefined) {
      where.push(q.types.length === 1 ? 'type = ?' : `type IN (${'?, '.repeat(q.types.length - 1)}?)`);
      params.push(...q.types);
    }
    if (q.correlationId !== undefined) {
      where.push('correlation_id = ?');
      params.push(q.correlationId);
    }
    if (fromSeq !== undefined) {
      where.push('seq >= ?');
      params.push(fromSeq);
    }
    if (toSeq !== undefined) {
      where.push('seq < ?');
      params.push(toSeq);
    }
    let sql = `SELECT ${COLUMNS} FROM events`;
    if (where.length > 0) sql += ` WHERE ${where.join(' AND ')}`;
    sql += q.order === 'asc' ? ' ORDER BY seq' : ' ORDER BY seq DESC';
    if (q.limit !== undefined) {
      sql += ' LIMIT ?';
      params.push(q.limit);
    }
    return (this.#statement(sql).all(...params) as Row[]).map(rowToEvent);
  }

  prune(bound: PruneBound): number {
    return this.#db
      .transaction((): number => {
        let before: number;
        if ('beforeSeq' in bound) before = bound.beforeSeq;
        else before = (this.#firstAtOrAfter.get(bound.beforeTime) as number | undefined) ?? this.#lastSeq + 1;
        const removed = this.#deleteBefore.run(before).changes;
        // Remember the highest seq, in case this removed the last event: seqs are never reused.
        if (removed > 0) {
          this.#setMeta.run('last_seq', this.#lastSeq);
          this.#setMeta.run('last_timestamp', this.#lastTimestamp);
        }
        return removed;
      })
      .immediate();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#queries.clear();
    this.#db.close();
  }

  #statement(sql: string): Database.Statement {
    let stmt = this.#queries.get(sql);
    if (stmt === undefined) {
      if (this.#queries.size >= STATEMENT_CACHE) this.#queries.clear();
      stmt = this.#db.prepare(sql).raw(true);
      this.#queries.set(sql, stmt);
    }
    return stmt;
  }
}
