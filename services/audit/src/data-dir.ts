/**
 * The audit's files in a gateway data dir (the all-in-one's `--data-dir`):
 *
 * | file | what |
 * |---|---|
 * | `events.db` | the SQLite event store (written by the gateway) |
 * | `decisions.db` | the decision log ({@link SqliteDecisionStore}, written by the edges' DecisionLog) |
 * | `audit-snapshots.db` | audit snapshots ({@link SqliteSnapshotStore}; rebuilt when missing) |
 *
 * {@link openAuditDataDir} opens them for the `portcullis audit --data-dir`
 * commands: the event store must exist; snapshots are brought up to date
 * (every {@link DEFAULT_SNAPSHOT_EVERY} events) unless the directory is read-only.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { SqliteEventStore } from "@portcullis/event-store";
import type { ProjectionOptions } from "@portcullis/projection";
import { Auditor, AuditQueryError } from "./auditor.ts";
import { SqliteSnapshotStore } from "./snapshots.ts";
import { SqliteDecisionStore } from "./sqlite-decision-store.ts";

/** File names in a data dir. */
export const DATA_DIR_FILES = Object.freeze({
  events: "events.db",
  decisions: "decisions.db",
  snapshots: "audit-snapshots.db",
});

/** Snapshot interval of the data-dir snapshots (events). */
export const DEFAULT_SNAPSHOT_EVERY = 25_000;

/** What {@link openAuditDataDir} opened. */
export interface AuditDataDir {
  auditor: Auditor;
  store: SqliteEventStore;
  /** The decision log, when the file exists (read-only). */
  decisions: SqliteDecisionStore | undefined;
  /** Why snapshots are off, when they are (e.g. a read-only directory). */
  snapshotWarning?: string;
  close(): Promise<void>;
}

/** Options of {@link openAuditDataDir}. */
export interface OpenAuditDataDirOptions {
  projection?: ProjectionOptions;
  region?: string;
  /** Snapshot interval (default {@link DEFAULT_SNAPSHOT_EVERY}); 0 turns snapshots off. */
  snapshotEvery?: number;
}

/** Open a data dir for audit queries (see the module comment). */
export async function openAuditDataDir(
  dir: string,
  opts: OpenAuditDataDirOptions = {},
): Promise<AuditDataDir> {
  const eventsPath = join(dir, DATA_DIR_FILES.events);
  if (!existsSync(eventsPath))
    throw new AuditQueryError(`no event store in \`${dir}\` (expected \`${eventsPath}\`)`, "not-found");
  const store = SqliteEventStore.open(eventsPath);
  const decisionsPath = join(dir, DATA_DIR_FILES.decisions);
  const decisions = existsSync(decisionsPath)
    ? SqliteDecisionStore.open(decisionsPath, { readonly: true })
    : undefined;
  const every = opts.snapshotEvery ?? DEFAULT_SNAPSHOT_EVERY;
  let snapshots: SqliteSnapshotStore | undefined;
  let snapshotWarning: string | undefined;
  if (every > 0) {
    try {
      snapshots = SqliteSnapshotStore.open(join(dir, DATA_DIR_FILES.snapshots));
    } catch (err) {
      snapshotWarning = `snapshots off: ${(err as Error).message}`;
    }
  }
  const auditor = new Auditor(store, {
    ...(snapshots ? { snapshots } : {}),
    ...(opts.projection ? { projection: opts.projection } : {}),
    ...(opts.region ? { region: opts.region } : {}),
  });
  if (snapshots) {
    try {
      await auditor.snapshots!.update({ every, ...opts.projection });
    } catch (err) {
      snapshotWarning = `snapshots not updated: ${(err as Error).message}`;
    }
  }
  return {
    auditor,
    store,
    decisions,
    ...(snapshotWarning !== undefined ? { snapshotWarning } : {}),
    async close() {
      decisions?.close();
      snapshots?.close();
      await store.close();
    },
  };
}
