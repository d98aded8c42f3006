/**
 * SQLite as the embedded event store (SPEC §6), on better-sqlite3.
 *
 * Layout: one table `events` — `position INTEGER PRIMARY KEY` (the global
 * order), `stream`, `revision`, `id UNIQUE`, `type`, `schema_version`,
 * `account_id`, `occurred_at`, and `payload` (JSON of `{ actor, reason?, data }`),
 * with `UNIQUE (stream, revision)`. `PRAGMA user_version` records the layout
 * version (1).
 *
 * Durability and atomicity: WAL journal with `synchronous=FULL` (a committed
 * append survives a crash or power loss); an append is one `BEGIN IMMEDIATE`
 * transaction that takes the write lock first, then checks the expected
 * revision, then inserts, so the check and the write see the same state even
 * with other processes writing the same file (they wait up to `busyTimeoutMs`
 * for the lock).
 *
 * Subscriptions: catch-up reads pages of {@link PAGE_SIZE} rows, then wait for
 * an append made through this store object (woken at once) or for the poll
 * timer (`pollIntervalMs`, default 50 ms), which sees appends by other
 * connections and processes on the same file.
 *
 * Event-id idempotency: see adapter-kit.ts (an identical retry returns the
 * original result; any other reuse of a recorded id is an EventIdConflictError).
 */
import type { DomainEvent, EventEnvelope, RecordedEvent } from "@portcullis/events";
import Database from "better-sqlite3";
import {
  decodeRecorded,
  PAGE_SIZE,
  PagedSubscription,
  replayOf,
  untilMs,
  validateAppend,
} from "../adapter-kit.ts";
import { EventStoreError, ExpectedRevisionConflictError, StoreUnavailableError } from "../errors.ts";
import { ANY, type ExpectedRevision, revisionMatches } from "../expected-revision.ts";
import type {
  AppendOptions,
  AppendResult,
  EventStore,
  ReadAllOptions,
  SubscribeOptions,
  Subscription,
} from "../port.ts";

/** Options of {@link SqliteEventStore.open}. */
export interface SqliteEventStoreOptions {
  /** How often an idle subscription looks for appends made by other connections (default 50 ms). */
  pollIntervalMs?: number;
  /** How long an append waits for another connection's write lock before failing (default 5000 ms). */
  busyTimeoutMs?: number;
}

/** The on-disk layout version written to `PRAGMA user_version`. */
const LAYOUT_VERSION = 1;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS events (
  position       INTEGER PRIMARY KEY,
  stream         TEXT    NOT NULL,
  revision       INTEGER NOT NULL,
  id             TEXT    NOT NULL UNIQUE,
  type           TEXT    NOT NULL,
  schema_version INTEGER NOT NULL,
  account_id     TEXT    NOT NULL,
  occurred_at    TEXT    NOT NULL,
  payload        TEXT    NOT NULL,
  UNIQUE (stream, revision)
) STRICT;
`;

/**
 * One row of `events` as the read statements return it: `.raw()` arrays of the
 * {@link ROW_COLUMNS} in order (about half the cost of an object per row, which
 * shows in a replay of a million events).
 */
type EventRow = [
  position: number,
  stream: string,
  revision: number,
  id: string,
  type: string,
  schemaVersion: number,
  accountId: string,
  occurredAt: string,
  payload: string,
];
const ROW_COLUMNS = "position, stream, revision, id, type, schema_version, account_id, occurred_at, payload";
const [POSITION, STREAM, REVISION, ID, TYPE, SCHEMA_VERSION, ACCOUNT_ID, OCCURRED_AT, PAYLOAD] = [
  0, 1, 2, 3, 4, 5, 6, 7, 8,
] as const;

type Statement<P extends unknown[], R = unknown> = Database.Statement<P, R>;

/** The SQLite event store (adapter `sqlite`); open it with {@link SqliteEventStore.open}. */
export class SqliteEventStore implements EventStore {
  /** Adapter name used in contract test titles. */
  readonly adapter = "sqlite";
  /** The database file (or `:memory:`). */
  readonly path: string;

  readonly #db: Database.Database;
  readonly #pollIntervalMs: number;
  readonly #subscriptions = new Set<PagedSubscription>();
  #closed = false;

  readonly #head: Statement<[], number>;
  readonly #streamRevision: Statement<[string], number>;
  readonly #byId: Statement<[string], EventRow>;
  readonly #insert: Statement<[number, string, number, string, string, number, string, string, string]>;
  readonly #pageAll: Statement<[number, number, number], EventRow>;
  readonly #pageStream: Statement<[string, number, number, number], EventRow>;
  readonly #appendTx: (stream: string, expected: ExpectedRevision, events: DomainEvent[]) => AppendResult;

  private constructor(path: string, db: Database.Database, opts: SqliteEventStoreOptions) {
    this.path = path;
    this.#db = db;
    this.#pollIntervalMs = opts.pollIntervalMs ?? 50;
    this.#head = db.prepare<[], number>("SELECT coalesce(max(position), 0) FROM events").pluck();
    this.#streamRevision = db
      .prepare<[string], number>("SELECT coalesce(max(revision), -1) FROM events WHERE stream = ?")
      .pluck();
    this.#byId = db.prepare<[string], EventRow>(`SELECT ${ROW_COLUMNS} FROM events WHERE id = ?`).raw(true);
    this.#insert = db.prepare(
      `INSERT INTO events (position, stream, revision, id, type, schema_version, account_id, occurred_at, payload)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.#pageAll = db
      .prepare<[number, number, number], EventRow>(
        `SELECT ${ROW_COLUMNS} FROM events WHERE position >= ? AND position <= ? ORDER BY position LIMIT ?`,
      )
      .raw(true);
    this.#pageStream = db
      .prepare<[string, number, number, number], EventRow>(
        `SELECT ${ROW_COLUMNS} FROM events WHERE stream = ? AND revision >= ? AND revision <= ? ORDER BY revision LIMIT ?`,
      )
      .raw(true);
    const tx = db.transaction((stream: string, expected: ExpectedRevision, events: DomainEvent[]) =>
      this.#appendLocked(stream, expected, events),
    );
    // BEGIN IMMEDIATE: take the write lock before reading the revision we check.
    this.#appendTx = (stream, expected, events) => tx.immediate(stream, expected, events);
  }

  /**
   * Open (creating if needed) the store in the file `path` (`:memory:` for a
   * private in-memory database): WAL, `synchronous=FULL`, layout version checked.
   */
  static open(path: string, opts: SqliteEventStoreOptions = {}): SqliteEventStore {
    let db: Database.Database | undefined;
    try {
      db = new Database(path, { timeout: opts.busyTimeoutMs ?? 5_000 });
      const journal = db.pragma("journal_mode = WAL", { simple: true });
      db.pragma("synchronous = FULL");
      // Read the settings back: durability must not depend on a pragma silently ignored.
      if (!db.memory && journal !== "wal")
        throw new EventStoreError(`sqlite: \`${path}\` cannot use WAL (journal mode \`${String(journal)}\`)`);
      if (db.pragma("synchronous", { simple: true }) !== 2)
        throw new EventStoreError(`sqlite: \`${path}\` refused synchronous=FULL`);
      const conn = db;
      conn
        .transaction(() => {
          const version = conn.pragma("user_version", { simple: true }) as number;
          if (version > LAYOUT_VERSION)
            throw new EventStoreError(
              `sqlite: \`${path}\` has layout version ${version}, newer than this build knows (${LAYOUT_VERSION})`,
            );
          conn.exec(SCHEMA);
          if (version < LAYOUT_VERSION) conn.pragma(`user_version = ${LAYOUT_VERSION}`);
        })
        .immediate();
      return new SqliteEventStore(path, db, opts);
    } catch (err) {
      db?.close();
      if (err instanceof EventStoreError) throw err;
      throw new StoreUnavailableError(`sqlite: cannot open \`${path}\`: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  async append(
    stream: string,
    events: readonly EventEnvelope[],
    opts: AppendOptions = {},
  ): Promise<AppendResult> {
    this.#assertOpen();
    const expected = opts.expectedRevision ?? ANY;
    // Every event is validated before the transaction starts: nothing is written otherwise.
    const validated = validateAppend(stream, events);
    let result: AppendResult;
    try {
      result = this.#appendTx(stream, expected, validated);
    } catch (err) {
      throw storeError(err, `append to \`${stream}\``);
    }
    if (validated.length > 0) for (const s of this.#subscriptions) s.wake();
    return result;
  }

  async *readStream(stream: string, opts: { fromRevision?: number } = {}): AsyncIterable<RecordedEvent> {
    this.#assertOpen();
    const last = this.#guard("readStream", () => this.#streamRevision.get(stream)!);
    let next = Math.max(0, opts.fromRevision ?? 0);
    while (next <= last) {
      this.#assertOpen();
      const rows = this.#guard("readStream", () => this.#pageStream.all(stream, next, last, PAGE_SIZE));
      if (rows.length === 0) return;
      for (const row of rows) {
        // INVARIANT: revisions are gapless in a stream (UNIQUE + checked append).
        if (row[REVISION] !== next)
          throw new EventStoreError(
            `sqlite: stream \`${stream}\` has revision ${row[REVISION]} where ${next} was expected`,
          );
        yield this.#decode(row);
        next++;
      }
    }
  }

  async *readAll(opts: ReadAllOptions = {}): AsyncIterable<RecordedEvent> {
    this.#assertOpen();
    const until = untilMs(opts.untilTime);
    const head = this.#guard("readAll", () => this.#head.get()!);
    const to = Math.min(opts.to ?? head, head);
    let next = Math.max(1, opts.from ?? 1);
    while (next <= to) {
      this.#assertOpen();
      const rows = this.#guard("readAll", () => this.#pageAll.all(next, to, PAGE_SIZE));
      if (rows.length === 0) return;
      for (const row of rows) {
        // INVARIANT: positions are gapless (assigned head+1… inside the write transaction).
        if (row[POSITION] !== next)
          throw new EventStoreError(`sqlite: position ${row[POSITION]} where ${next} was expected`);
        if (until !== undefined && Date.parse(row[OCCURRED_AT]) > until) return;
        yield this.#decode(row);
        next++;
      }
    }
  }

  subscribe(opts: SubscribeOptions = {}): Subscription {
    this.#assertOpen();
    const sub: PagedSubscription = new PagedSubscription({
      adapter: this.adapter,
      from: opts.from ?? 1,
      readPage: (from, limit) => {
        this.#assertOpen();
        const rows = this.#guard("subscribe", () => this.#pageAll.all(from, Number.MAX_SAFE_INTEGER, limit));
        return rows.map((row) => this.#decode(row));
      },
      pollIntervalMs: this.#pollIntervalMs,
      onClose: () => this.#subscriptions.delete(sub),
    });
    this.#subscriptions.add(sub);
    return sub;
  }

  async head(): Promise<number> {
    this.#assertOpen();
    return this.#guard("head", () => this.#head.get()!);
  }

  async streamRevision(stream: string): Promise<number> {
    this.#assertOpen();
    return this.#guard("streamRevision", () => this.#streamRevision.get(stream)!);
  }

  /** Close the subscriptions, then the database (checkpointing the WAL). Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all([...this.#subscriptions].map((s) => s.close()));
    this.#db.close();
  }

  /** The body of the append transaction; runs with the write lock held. */
  #appendLocked(stream: string, expected: ExpectedRevision, events: DomainEvent[]): AppendResult {
    const actual = this.#streamRevision.get(stream)!;
    const recorded = events.map((e) => {
      const row = this.#byId.get(e.id);
      return row === undefined ? undefined : this.#decode(row);
    });
    const replay = replayOf(stream, expected, actual, events, recorded);
    if (replay) return replay;
    if (!revisionMatches(expected, actual)) throw new ExpectedRevisionConflictError(stream, expected, actual);
    const head = this.#head.get()!;
    // INVARIANT: with the write lock held, head+1… are the next positions and
    // actual+1… the next revisions: gapless, and all-or-nothing with the commit.
    events.forEach((e, i) => {
      const payload = JSON.stringify({
        actor: e.actor,
        ...(e.reason !== undefined ? { reason: e.reason } : {}),
        data: e.data,
      });
      this.#insert.run(
        head + 1 + i,
        stream,
        actual + 1 + i,
        e.id,
        e.type,
        e.schemaVersion,
        e.accountId,
        e.occurredAt,
        payload,
      );
    });
    return { firstPosition: head + 1, position: head + events.length, revision: actual + events.length };
  }

  #decode(row: EventRow): RecordedEvent {
    const position = row[POSITION];
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(row[PAYLOAD]) as Record<string, unknown>;
    } catch (err) {
      throw new EventStoreError(`sqlite: payload at position ${position} is not JSON`, { cause: err });
    }
    if (typeof body !== "object" || body === null || Array.isArray(body))
      throw new EventStoreError(`sqlite: payload at position ${position} is not a JSON object`);
    // The parsed payload is ours: complete it into the envelope in place.
    body.id = row[ID];
    body.type = row[TYPE];
    body.schemaVersion = row[SCHEMA_VERSION];
    body.accountId = row[ACCOUNT_ID];
    body.occurredAt = row[OCCURRED_AT];
    return decodeRecorded(this.adapter, body, { stream: row[STREAM], revision: row[REVISION], position });
  }

  /** Run a read, mapping SQLite failures to StoreUnavailableError. */
  #guard<T>(op: string, fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      throw storeError(err, op);
    }
  }

  #assertOpen(): void {
    if (this.#closed) throw new EventStoreError(`sqlite: the store \`${this.path}\` is closed`);
  }
}

/** Event-store errors pass through; SQLite failures (busy, I/O, full disk…) become StoreUnavailableError. */
function storeError(err: unknown, op: string): Error {
  if (err instanceof EventStoreError) return err;
  if (err instanceof Database.SqliteError)
    return new StoreUnavailableError(`sqlite: ${op} failed (${err.code}): ${err.message}`, { cause: err });
  return err as Error;
}
