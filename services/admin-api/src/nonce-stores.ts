/**
 * Nonce stores shared by several admin processes (see {@link NonceStore}): a
 * signed request is accepted once by all of them together, not once by each.
 *
 * - {@link SqliteNonceStore}: a SQLite file beside the event store, for admin
 *   processes sharing one data dir (`portcullis serve` twice on `D`).
 * - {@link JetStreamNonceStore}: one JetStream stream, for admin processes on
 *   several machines behind a JetStream event store. A nonce is a message on
 *   its own subject published with "expected last subject sequence 0": the
 *   server stores it only if that subject has none yet, so two processes cannot
 *   both accept one. The stream's `max_age` forgets nonces after the window.
 *
 * Both check and record in one atomic step, after the signature was verified
 * (so nobody can burn another's nonces).
 */
import {
  JetStreamApiError,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
} from "@nats-io/jetstream";
import { type NatsConnection, nanos } from "@nats-io/transport-node";
import Database from "better-sqlite3";
import type { NonceStore, NonceVerdict } from "./signing.ts";

/** Nonces in a SQLite file (WAL), shared by the processes that open it. */
export class SqliteNonceStore implements NonceStore {
  readonly #db: Database.Database;
  readonly #claim: Database.Statement<[string, number, number]>;
  readonly #prune: Database.Statement<[number]>;
  readonly #count: Database.Statement<[]>;
  readonly #maxEntries: number;
  #lastPrune = 0;
  #full = false;

  private constructor(db: Database.Database, maxEntries: number) {
    this.#db = db;
    this.#maxEntries = maxEntries;
    // A row is (re)claimed only when it is new or its window has passed: one statement, atomic.
    this.#claim = db.prepare(
      `INSERT INTO nonces (k, expires) VALUES (?, ?)
       ON CONFLICT (k) DO UPDATE SET expires = excluded.expires WHERE nonces.expires < ?`,
    );
    this.#prune = db.prepare("DELETE FROM nonces WHERE expires < ?");
    this.#count = db.prepare("SELECT count(*) AS n FROM nonces");
  }

  /** Open (and create) the file. */
  static open(path: string, opts: { maxEntries?: number } = {}): SqliteNonceStore {
    const db = new Database(path);
    db.pragma("journal_mode = WAL");
    // No fsync per request: a nonce lost in an OS crash could only be replayed within the
    // minutes of its window, and every signed request would otherwise wait for the disk.
    db.pragma("synchronous = NORMAL");
    db.pragma("busy_timeout = 5000");
    db.exec("CREATE TABLE IF NOT EXISTS nonces (k TEXT PRIMARY KEY, expires INTEGER NOT NULL) WITHOUT ROWID");
    return new SqliteNonceStore(db, opts.maxEntries ?? 200_000);
  }

  check(accessKeyId: string, nonce: string, expiresAt: number, now = Date.now()): NonceVerdict {
    // Expired rows go (at most once a second); past `maxEntries` unexpired ones new requests
    // are refused until some expire, rather than a live nonce forgotten.
    if (now - this.#lastPrune > 1_000) {
      this.#lastPrune = now;
      this.#prune.run(now);
      this.#full = (this.#count.get() as { n: number }).n >= this.#maxEntries;
    }
    if (this.#full) return "full";
    return this.#claim.run(`${accessKeyId}\n${nonce}`, expiresAt, now).changes === 1 ? "ok" : "replayed";
  }

  close(): void {
    this.#db.close();
  }
}

/** JetStream's "wrong last sequence" (the subject already has a message). */
const ERR_WRONG_LAST_SEQUENCE = 10071;
const ERR_STREAM_NAME_IN_USE = 10058;

/** Options of {@link JetStreamNonceStore.open}. */
export interface JetStreamNonceStoreOptions {
  connection: NatsConnection;
  /** Default `PORTCULLIS_NONCES`, subjects `portcullis.nonces.>`. */
  streamName?: string;
  subjectPrefix?: string;
  /** How long a nonce is remembered: at least twice the admin API's clock skew (default 10 min). */
  windowMs?: number;
  replicas?: number;
}

/** Nonces as messages of one JetStream stream, shared by every admin process connected to it. */
export class JetStreamNonceStore implements NonceStore {
  readonly #js: ReturnType<typeof jetstream>;
  readonly #prefix: string;

  private constructor(nc: NatsConnection, prefix: string) {
    this.#js = jetstream(nc);
    this.#prefix = prefix;
  }

  /** Create the stream when it is missing. */
  static async open(opts: JetStreamNonceStoreOptions): Promise<JetStreamNonceStore> {
    const prefix = `${opts.subjectPrefix ?? "portcullis"}.nonces`;
    const jsm = await jetstreamManager(opts.connection);
    try {
      await jsm.streams.add({
        name: opts.streamName ?? "PORTCULLIS_NONCES",
        subjects: [`${prefix}.>`],
        retention: RetentionPolicy.Limits,
        storage: StorageType.File,
        max_age: nanos(opts.windowMs ?? 600_000),
        max_msgs_per_subject: 1,
        num_replicas: opts.replicas ?? 1,
      });
    } catch (err) {
      if (!(err instanceof JetStreamApiError) || err.code !== ERR_STREAM_NAME_IN_USE) throw err;
    }
    return new JetStreamNonceStore(opts.connection, prefix);
  }

  async check(accessKeyId: string, nonce: string): Promise<NonceVerdict> {
    // AccessKey ids and nonces are [A-Za-z0-9_-]: valid subject tokens as they are.
    try {
      await this.#js.publish(`${this.#prefix}.${accessKeyId}.${nonce}`, undefined, {
        expect: { lastSubjectSequence: 0 },
        timeout: 5_000,
      });
      return "ok";
    } catch (err) {
      if (err instanceof JetStreamApiError && err.code === ERR_WRONG_LAST_SEQUENCE) return "replayed";
      throw err;
    }
  }
}
