/**
 * Snapshots for time travel: the projected state every N events, so a query
 * at any past position restores the nearest snapshot at or before it and
 * replays at most N events (the 2 s `explain` target of SPEC §8 / issue 7).
 *
 * A snapshot records its position, the id of the event at that position (so a
 * snapshot of another log — a store replaced under the same path — is never
 * used: {@link Snapshots.nearest} checks it against the store), the latest
 * `occurredAt` of the events up to it (a time query may start from it only if
 * every event before it occurred at or before the time asked), and the
 * projection's `SNAPSHOT_FORMAT` (snapshots of another format are ignored).
 * The state is stored in the projection's own snapshot format (JSON text of
 * `snapshotState`), deflated: about 6× smaller, and faster to restore than a
 * structured clone of the Maps and Sets (measured in bench/src/audit.ts).
 *
 * Stores: {@link MemorySnapshotStore} and {@link SqliteSnapshotStore} (a file
 * in the data dir, `audit-snapshots.db`). {@link updateSnapshots} brings a
 * store up to the event log's head.
 */
import { deflateRawSync, inflateRawSync } from "node:zlib";
import type { RecordedEvent } from "@portcullis/events";
import {
  Projection,
  type ProjectionOptions,
  restoreState,
  SNAPSHOT_FORMAT,
  type State,
  snapshotState,
} from "@portcullis/projection";
import Database from "better-sqlite3";
import { skeletonOf, userRows } from "./slices.ts";

/** What is known about one stored snapshot. */
export interface SnapshotMeta {
  position: number;
  /** Id of the event at `position`. */
  eventId: string;
  /** Largest `occurredAt` (epoch ms) of the events 1..position. */
  maxTimeMs: number;
  /** `SNAPSHOT_FORMAT` of the projection that wrote it. */
  format: number;
}

/** Where snapshots are kept. */
export interface SnapshotStore {
  /** Metadata of every snapshot, by ascending position. */
  list(): SnapshotMeta[];
  /** The state of the snapshot at `position` (a fresh copy), or undefined. */
  load(position: number): State | undefined;
  /** Store a snapshot (replacing one at the same position). */
  save(meta: SnapshotMeta, state: State): void;
  /** Remove a snapshot. */
  delete(position: number): void;
  close(): void;
  /**
   * Principal slices of the snapshot at `position` (see slices.ts): the skeleton
   * (the state without users) and the user rows that changed since the previous
   * slices (`null`: the user is gone).
   */
  saveSlices(position: number, skeleton: Buffer, users: readonly (readonly [string, string | null])[]): void;
  /** Is there a skeleton at `position`? */
  hasSkeleton(position: number): boolean;
  /** The skeleton at `position` (a fresh state), or undefined. */
  loadSkeleton(position: number): State | undefined;
  /** A user's row as of `position`: its latest row at or before it (`null`: gone; undefined: never written). */
  userRow(position: number, key: string): string | null | undefined;
  /** Forget every slice (the rows are cumulative: they are rebuilt from the next snapshot on). */
  clearSlices(): void;
}

/** Serialise a state: the projection's snapshot (JSON), deflated. */
export function encodeState(state: State): Buffer {
  return deflateRawSync(JSON.stringify(snapshotState(state)), { level: 1 });
}

/** Inverse of {@link encodeState}. */
export function decodeState(buf: Uint8Array): State {
  return restoreState(JSON.parse(inflateRawSync(buf).toString("utf8")));
}

/** Snapshots in memory (tests). */
export class MemorySnapshotStore implements SnapshotStore {
  readonly #snaps = new Map<number, { meta: SnapshotMeta; body: Buffer }>();

  list(): SnapshotMeta[] {
    return [...this.#snaps.values()].map((s) => ({ ...s.meta })).sort((a, b) => a.position - b.position);
  }
  load(position: number): State | undefined {
    const s = this.#snaps.get(position);
    return s ? decodeState(s.body) : undefined;
  }
  save(meta: SnapshotMeta, state: State): void {
    this.#snaps.set(meta.position, { meta: { ...meta }, body: encodeState(state) });
  }
  delete(position: number): void {
    this.#snaps.delete(position);
    this.#skeletons.delete(position);
  }
  close(): void {}
  readonly #skeletons = new Map<number, Buffer>();
  /** key → rows by ascending position. */
  readonly #rows = new Map<string, [number, string | null][]>();
  saveSlices(position: number, skeleton: Buffer, users: readonly (readonly [string, string | null])[]): void {
    this.#skeletons.set(position, skeleton);
    for (const [k, row] of users) {
      let l = this.#rows.get(k);
      if (!l) {
        l = [];
        this.#rows.set(k, l);
      }
      while (l.length > 0 && l[l.length - 1]![0] >= position) l.pop();
      l.push([position, row]);
    }
  }
  hasSkeleton(position: number): boolean {
    return this.#skeletons.has(position);
  }
  loadSkeleton(position: number): State | undefined {
    const b = this.#skeletons.get(position);
    return b ? decodeState(b) : undefined;
  }
  userRow(position: number, key: string): string | null | undefined {
    const l = this.#rows.get(key);
    if (!l) return undefined;
    for (let i = l.length - 1; i >= 0; i--) if (l[i]![0] <= position) return l[i]![1];
    return undefined;
  }
  clearSlices(): void {
    this.#skeletons.clear();
    this.#rows.clear();
  }
}

const SNAPSHOT_SCHEMA = `
CREATE TABLE IF NOT EXISTS snapshots (
  position    INTEGER PRIMARY KEY,
  event_id    TEXT    NOT NULL,
  max_time_ms INTEGER NOT NULL,
  format      INTEGER NOT NULL,
  body        BLOB    NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS slice_skeletons (
  position INTEGER PRIMARY KEY,
  body     BLOB    NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS slice_users (
  key      TEXT    NOT NULL,
  position INTEGER NOT NULL,
  row      TEXT,
  PRIMARY KEY (key, position)
) STRICT, WITHOUT ROWID;
`;

interface MetaRow {
  position: number;
  event_id: string;
  max_time_ms: number;
  format: number;
}

/** Snapshots in a SQLite file (WAL; a lost snapshot is rebuilt, so `synchronous=NORMAL`). */
export class SqliteSnapshotStore implements SnapshotStore {
  readonly path: string;
  readonly #db: Database.Database;

  private constructor(path: string, db: Database.Database) {
    this.path = path;
    this.#db = db;
  }

  /** Open (creating) the snapshot file. */
  static open(path: string): SqliteSnapshotStore {
    const db = new Database(path);
    try {
      db.pragma("journal_mode = WAL");
      db.pragma("synchronous = NORMAL");
      db.exec(SNAPSHOT_SCHEMA);
    } catch (err) {
      db.close();
      throw new Error(`cannot open the snapshot file \`${path}\`: ${(err as Error).message}`, { cause: err });
    }
    return new SqliteSnapshotStore(path, db);
  }

  list(): SnapshotMeta[] {
    return this.#db
      .prepare<[], MetaRow>("SELECT position, event_id, max_time_ms, format FROM snapshots ORDER BY position")
      .all()
      .map((r) => ({
        position: r.position,
        eventId: r.event_id,
        maxTimeMs: r.max_time_ms,
        format: r.format,
      }));
  }
  load(position: number): State | undefined {
    const body = this.#db
      .prepare<[number], Buffer>("SELECT body FROM snapshots WHERE position = ?")
      .pluck()
      .get(position);
    return body === undefined ? undefined : decodeState(body);
  }
  save(meta: SnapshotMeta, state: State): void {
    this.#db
      .prepare(
        "INSERT OR REPLACE INTO snapshots (position, event_id, max_time_ms, format, body) VALUES (?, ?, ?, ?, ?)",
      )
      .run(meta.position, meta.eventId, meta.maxTimeMs, meta.format, encodeState(state));
  }
  delete(position: number): void {
    this.#db.prepare("DELETE FROM snapshots WHERE position = ?").run(position);
    this.#db.prepare("DELETE FROM slice_skeletons WHERE position = ?").run(position);
  }
  close(): void {
    if (this.#db.open) this.#db.close();
  }
  saveSlices(position: number, skeleton: Buffer, users: readonly (readonly [string, string | null])[]): void {
    const insertUser = this.#db.prepare(
      "INSERT OR REPLACE INTO slice_users (key, position, row) VALUES (?, ?, ?)",
    );
    this.#db.transaction(() => {
      this.#db
        .prepare("INSERT OR REPLACE INTO slice_skeletons (position, body) VALUES (?, ?)")
        .run(position, skeleton);
      for (const [k, row] of users) insertUser.run(k, position, row);
    })();
  }
  hasSkeleton(position: number): boolean {
    return (
      this.#db
        .prepare<[number], number>("SELECT count(*) FROM slice_skeletons WHERE position = ?")
        .pluck()
        .get(position)! > 0
    );
  }
  loadSkeleton(position: number): State | undefined {
    const body = this.#db
      .prepare<[number], Buffer>("SELECT body FROM slice_skeletons WHERE position = ?")
      .pluck()
      .get(position);
    return body === undefined ? undefined : decodeState(body);
  }
  userRow(position: number, key: string): string | null | undefined {
    return this.#db
      .prepare<[string, number], string | null>(
        "SELECT row FROM slice_users WHERE key = ? AND position <= ? ORDER BY position DESC LIMIT 1",
      )
      .pluck()
      .get(key, position);
  }
  clearSlices(): void {
    this.#db.exec("DELETE FROM slice_skeletons; DELETE FROM slice_users;");
  }
}

/** Reads the log (every EventStore can). */
export interface LogSource {
  readAll(opts?: { from?: number; to?: number; untilTime?: Date | string }): AsyncIterable<RecordedEvent>;
  head(): Promise<number>;
}

/** Options of {@link updateSnapshots}. */
export interface UpdateSnapshotsOptions extends ProjectionOptions {
  /** A snapshot every `every` events (at positions that are multiples of it). Default 25 000. */
  every?: number;
  /** Stop at this position (default: the head). */
  to?: number;
}

/** The id of the event at `position`, or undefined when the store has none there. */
export async function eventIdAt(source: LogSource, position: number): Promise<string | undefined> {
  for await (const e of source.readAll({ from: position, to: position })) return e.id;
  return undefined;
}

/**
 * Snapshot management over one store: finds the usable snapshot nearest to a
 * target (checking it belongs to this log), and writes new ones.
 */
export class Snapshots {
  readonly store: SnapshotStore;
  readonly #source: LogSource;
  /** Positions whose event id was checked against the log. */
  readonly #checked = new Set<number>();

  constructor(store: SnapshotStore, source: LogSource) {
    this.store = store;
    this.#source = source;
  }

  /**
   * The latest snapshot usable for a target: at or before `position`, and
   * (for a time) with every event up to it at or before `timeMs`. A snapshot
   * that does not match the log (other event at its position, other format)
   * is deleted.
   */
  async nearest(target: { position?: number; timeMs?: number }): Promise<SnapshotMeta | undefined> {
    const metas = this.store.list();
    for (let i = metas.length - 1; i >= 0; i--) {
      const m = metas[i]!;
      if (target.position !== undefined && m.position > target.position) continue;
      if (target.timeMs !== undefined && m.maxTimeMs > target.timeMs) continue;
      if (await this.#valid(m)) return m;
      this.store.delete(m.position);
      // User rows are cumulative over snapshots: one bad snapshot voids them all.
      this.store.clearSlices();
    }
    return undefined;
  }

  async #valid(m: SnapshotMeta): Promise<boolean> {
    if (m.format !== SNAPSHOT_FORMAT) return false;
    if (this.#checked.has(m.position)) return true;
    const id = await eventIdAt(this.#source, m.position);
    if (id !== m.eventId) return false;
    this.#checked.add(m.position);
    return true;
  }

  /**
   * Write the missing snapshots up to the head (or `to`): restores the latest
   * valid one and replays forward, saving the state at every multiple of
   * `every`. Returns the positions written.
   */
  async update(opts: UpdateSnapshotsOptions = {}): Promise<number[]> {
    const { every = 25_000, to, ...popts } = opts;
    if (!Number.isSafeInteger(every) || every <= 0)
      throw new RangeError(`snapshots: \`every\` must be a positive integer, got ${every}`);
    const head = Math.min(await this.#source.head(), to ?? Number.POSITIVE_INFINITY);
    const start = await this.nearest({ position: head });
    const nextDue = (start ? start.position : 0) + every - ((start ? start.position : 0) % every);
    if (nextDue > head) return [];
    const state = start ? this.store.load(start.position) : undefined;
    const projection = new Projection({ ...popts, validate: false }, state);
    let maxTimeMs = start?.maxTimeMs ?? Number.NEGATIVE_INFINITY;
    // User rows are written as changes since the previous slices; without slices at the start
    // the next snapshot writes every user.
    let rows =
      start && this.store.hasSkeleton(start.position)
        ? userRows(projection.state)
        : new Map<string, string>();
    const written: number[] = [];
    for await (const e of this.#source.readAll({ from: projection.position + 1, to: head })) {
      projection.apply(e);
      const t = Date.parse(e.occurredAt);
      if (t > maxTimeMs) maxTimeMs = t;
      if (e.position % every === 0) {
        const meta = { position: e.position, eventId: e.id, maxTimeMs, format: SNAPSHOT_FORMAT };
        this.store.save(meta, projection.state);
        const now = userRows(projection.state);
        const changed: [string, string | null][] = [];
        for (const [k, row] of now) if (rows.get(k) !== row) changed.push([k, row]);
        for (const k of rows.keys()) if (!now.has(k)) changed.push([k, null]);
        this.store.saveSlices(e.position, encodeState(skeletonOf(projection.state)), changed);
        rows = now;
        this.#checked.add(e.position);
        written.push(e.position);
      }
    }
    return written;
  }
}
