/**
 * The decision log as a local SQLite file (the all-in-one's sink), on
 * better-sqlite3.
 *
 * Layout: one table `decisions` — `seq INTEGER PRIMARY KEY` (write order),
 * `time_ms` (the record's time, epoch ms, indexed), `account_id` (of the
 * principal), `position`, `decision`, and `record` (the DecisionRecord as
 * JSON, the source of truth). `PRAGMA user_version` is the layout version (1).
 *
 * Durability: WAL; one transaction per batch. `synchronous` is `NORMAL` by
 * default (a batch survives a crash of the process; an OS crash or power loss
 * may lose the last batches — the log is evidence, not the store of record);
 * pass `synchronous: "full"` to fsync every batch. Other processes (the
 * `portcullis audit` CLI) read the file while the gateway writes it.
 */
import type { DecisionRecord } from "@portcullis/feed";
import Database from "better-sqlite3";
import {
  type DecisionReader,
  type DecisionReadOptions,
  type DecisionWriter,
  type LoggedDecision,
  principalAccount,
  timeRange,
} from "./decision-log.ts";

/** Options of {@link SqliteDecisionStore.open}. */
export interface SqliteDecisionStoreOptions {
  /** `normal` (default) or `full` (fsync each batch). */
  synchronous?: "normal" | "full";
  /** Open read-only (the CLI); the file must exist. */
  readonly?: boolean;
}

const LAYOUT_VERSION = 1;
const PAGE = 1_000;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS decisions (
  seq        INTEGER PRIMARY KEY,
  time_ms    INTEGER NOT NULL,
  account_id TEXT    NOT NULL,
  position   INTEGER NOT NULL,
  decision   TEXT    NOT NULL,
  record     TEXT    NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS decisions_time ON decisions (time_ms, seq);
`;

interface Row {
  seq: number;
  time_ms: number;
  record: string;
}

/** Thrown when the file cannot be opened or has another layout. */
export class DecisionStoreError extends Error {
  override name = "DecisionStoreError";
}

/** The SQLite decision log: a {@link DecisionWriter} and a {@link DecisionReader}. */
export class SqliteDecisionStore implements DecisionWriter, DecisionReader {
  readonly path: string;
  readonly #db: Database.Database;
  readonly #writeTx: ((batch: readonly DecisionRecord[]) => void) | undefined;
  readonly #page: Database.Statement<[number, number, number, number, number], Row>;
  #closed = false;

  private constructor(path: string, db: Database.Database, readonly: boolean) {
    this.path = path;
    this.#db = db;
    if (!readonly) {
      const insert = db.prepare<[number, string, number, string, string]>(
        "INSERT INTO decisions (time_ms, account_id, position, decision, record) VALUES (?, ?, ?, ?, ?)",
      );
      this.#writeTx = db.transaction((batch: readonly DecisionRecord[]) => {
        for (const r of batch) {
          const t = Date.parse(r.time);
          insert.run(
            Number.isNaN(t) ? 0 : t,
            principalAccount(r.principal),
            r.position,
            r.decision,
            JSON.stringify(r),
          );
        }
      });
    }
    // Keyset paging over (time_ms, seq): constant memory whatever the range.
    this.#page = db.prepare<[number, number, number, number, number], Row>(
      `SELECT seq, time_ms, record FROM decisions
       WHERE time_ms <= ? AND (time_ms > ? OR (time_ms = ? AND seq > ?))
       ORDER BY time_ms, seq LIMIT ?`,
    );
  }

  /** Open (creating unless read-only) the log in the file `path` (`:memory:` for tests). */
  static open(path: string, opts: SqliteDecisionStoreOptions = {}): SqliteDecisionStore {
    let db: Database.Database | undefined;
    try {
      db = new Database(path, { readonly: opts.readonly ?? false, fileMustExist: opts.readonly ?? false });
      const version = db.pragma("user_version", { simple: true }) as number;
      if (version > LAYOUT_VERSION)
        throw new DecisionStoreError(
          `decision log \`${path}\` has layout version ${version}, newer than this build knows (${LAYOUT_VERSION})`,
        );
      if (!opts.readonly) {
        db.pragma("journal_mode = WAL");
        db.pragma(`synchronous = ${opts.synchronous === "full" ? "FULL" : "NORMAL"}`);
        db.exec(SCHEMA);
        if (version < LAYOUT_VERSION) db.pragma(`user_version = ${LAYOUT_VERSION}`);
      } else if (version !== LAYOUT_VERSION) {
        throw new DecisionStoreError(`\`${path}\` is not a decision log (layout version ${version})`);
      }
      return new SqliteDecisionStore(path, db, opts.readonly ?? false);
    } catch (err) {
      db?.close();
      if (err instanceof DecisionStoreError) throw err;
      throw new DecisionStoreError(`cannot open the decision log \`${path}\`: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  /** Append one batch in one transaction. */
  write(batch: readonly DecisionRecord[]): void {
    if (this.#closed) throw new DecisionStoreError(`decision log \`${this.path}\` is closed`);
    if (!this.#writeTx) throw new DecisionStoreError(`decision log \`${this.path}\` is open read-only`);
    this.#writeTx(batch);
  }

  /** Records in time order (ties in write order), in pages. */
  async *read(opts: DecisionReadOptions = {}): AsyncIterable<LoggedDecision> {
    const { fromMs, toMs } = timeRange(opts);
    const hi = Number.isFinite(toMs) ? toMs : Number.MAX_SAFE_INTEGER;
    let lastTime = Number.isFinite(fromMs) ? fromMs : Number.MIN_SAFE_INTEGER;
    // The first page includes time_ms = from (seq > -1); later pages continue after the last row.
    let lastSeq = -1;
    while (true) {
      if (this.#closed) throw new DecisionStoreError(`decision log \`${this.path}\` is closed`);
      const rows = this.#page.all(hi, lastTime, lastTime, lastSeq, PAGE);
      if (rows.length === 0) return;
      for (const row of rows) {
        let record: DecisionRecord;
        try {
          record = JSON.parse(row.record) as DecisionRecord;
        } catch (err) {
          throw new DecisionStoreError(`decision log \`${this.path}\`: row ${row.seq} is not JSON`, {
            cause: err,
          });
        }
        lastSeq = row.seq;
        lastTime = row.time_ms;
        if (opts.accountId !== undefined && principalAccount(record.principal) !== opts.accountId) continue;
        yield { id: `sqlite:${row.seq}`, record };
      }
      if (rows.length < PAGE) return;
    }
  }

  /** Number of records stored. */
  count(): number {
    return this.#db.prepare<[], number>("SELECT count(*) FROM decisions").pluck().get()!;
  }

  /** The underlying database (tests edit rows through it). */
  get database(): Database.Database {
    return this.#db;
  }

  /** Close the file. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#db.close();
  }
}
