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
import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";
import type { DecisionRecord } from "@portcullis/feed";
import Database from "better-sqlite3";
import {
  type DecisionReader,
  type DecisionReadOptions,
  type DecisionWriter,
  encodeDecisionRecord,
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
            encodeDecisionRecord(r),
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

/** The worker's program (CommonJS, evaluated): inserts each batch in one transaction. */
const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const Database = require(workerData.driver);
const db = new Database(workerData.path);
db.pragma("journal_mode = WAL");
db.pragma("synchronous = " + workerData.synchronous);
const insert = db.prepare(
  "INSERT INTO decisions (time_ms, account_id, position, decision, record) VALUES (?, ?, ?, ?, ?)",
);
const tx = db.transaction((rows) => {
  for (const r of rows) insert.run(r[0], r[1], r[2], r[3], r[4]);
});
parentPort.on("message", (m) => {
  if (m.close) {
    db.close();
    parentPort.postMessage({ closed: true });
    return;
  }
  try {
    tx(m.rows);
    parentPort.postMessage({ id: m.id });
  } catch (e) {
    parentPort.postMessage({ id: m.id, error: String((e && e.message) || e) });
  }
});
`;

/**
 * The SQLite decision log written from a worker thread: the message path's
 * thread only encodes each record (see `encodeDecisionRecord`) and posts the
 * batch; the inserts and the commit (and its fsync with `synchronous: "full"`)
 * happen in the worker. Same file layout as {@link SqliteDecisionStore}, which
 * reads it.
 */
export class WorkerSqliteDecisionWriter implements DecisionWriter {
  readonly path: string;
  readonly #worker: Worker;
  readonly #pending = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
  #next = 0;
  #closed = false;
  #exited: Promise<void>;

  private constructor(path: string, worker: Worker) {
    this.path = path;
    this.#worker = worker;
    worker.unref();
    worker.on("message", (m: { id?: number; error?: string }) => {
      if (m.id === undefined) return;
      const p = this.#pending.get(m.id);
      this.#pending.delete(m.id);
      if (m.error !== undefined) p?.reject(new DecisionStoreError(`decision log \`${path}\`: ${m.error}`));
      else p?.resolve();
    });
    this.#exited = new Promise((resolve) =>
      worker.once("exit", () => {
        for (const p of this.#pending.values())
          p.reject(new DecisionStoreError(`decision log \`${path}\`: the writer thread stopped`));
        this.#pending.clear();
        resolve();
      }),
    );
    worker.on("error", () => {}); // reported through the pending writes (exit)
  }

  /** Create the file's layout (as {@link SqliteDecisionStore.open}) and start the writer thread. */
  static open(
    path: string,
    opts: Pick<SqliteDecisionStoreOptions, "synchronous"> = {},
  ): WorkerSqliteDecisionWriter {
    if (path === ":memory:") throw new DecisionStoreError("a worker writer needs a file, not `:memory:`");
    SqliteDecisionStore.open(path, opts).close();
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: {
        path,
        driver: createRequire(import.meta.url).resolve("better-sqlite3"),
        synchronous: opts.synchronous === "full" ? "FULL" : "NORMAL",
      },
    });
    return new WorkerSqliteDecisionWriter(path, worker);
  }

  /** Encode the batch here, insert it there; resolves once committed. */
  write(batch: readonly DecisionRecord[]): Promise<void> {
    if (this.#closed)
      return Promise.reject(new DecisionStoreError(`decision log \`${this.path}\` is closed`));
    const rows = batch.map((r) => {
      const t = Date.parse(r.time);
      return [
        Number.isNaN(t) ? 0 : t,
        principalAccount(r.principal),
        r.position,
        r.decision,
        encodeDecisionRecord(r),
      ];
    });
    const id = ++this.#next;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage({ id, rows });
    });
  }

  /** Wait for the writes posted so far, close the file and stop the thread. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#worker.postMessage({ close: true });
    await this.#exitedOrClosed();
  }

  async #exitedOrClosed(): Promise<void> {
    const closed = new Promise<void>((resolve) =>
      this.#worker.on("message", (m: { closed?: boolean }) => {
        if (m.closed) resolve();
      }),
    );
    await Promise.race([closed, this.#exited]);
    await this.#worker.terminate();
  }
}
