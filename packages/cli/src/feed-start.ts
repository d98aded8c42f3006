/**
 * Start a process's live projection from a snapshot plus the events after it
 * (SPEC §6: "Edges start from a snapshot plus the events after it"), and keep
 * the snapshots up to date in the background.
 *
 * Snapshots are the audit's (`@portcullis/audit` `Snapshots`): every `every`
 * events, each checked against the log before it is used (a snapshot of
 * another log, or of another projection format, is dropped). `serve` keeps them
 * in `D/audit-snapshots.db`, so the same file serves time travel and start-up;
 * a distributed edge keeps its own with `--snapshot-dir`.
 */
import { DEFAULT_SNAPSHOT_EVERY, type SnapshotStore, Snapshots } from "@portcullis/audit";
import type { EventStore } from "@portcullis/event-store";
import { LiveProjection, type LiveProjectionOptions } from "@portcullis/feed";
import type { Logger } from "pino";

/** A feed and the background snapshot refresh to stop with it. */
export interface SnapshottedFeed {
  feed: LiveProjection;
  /** Position of the snapshot it started from (0 = none). */
  fromSnapshot: number;
  /** Stop the refresh (the feed itself is closed by its owner). */
  stop(): Promise<void>;
}

/** Options of {@link startFeedFromSnapshots}. */
export interface FeedStartOptions extends LiveProjectionOptions {
  /** Snapshot interval in events (default 25 000, the audit's). */
  every?: number;
  /** How often to look for due snapshots, in ms (default 60 000). */
  refreshMs?: number;
}

/** Restore the nearest valid snapshot, catch up, follow; refresh snapshots while running. */
export async function startFeedFromSnapshots(
  store: EventStore,
  snapshotStore: SnapshotStore,
  logger: Logger,
  opts: FeedStartOptions = {},
): Promise<SnapshottedFeed> {
  const { every = DEFAULT_SNAPSHOT_EVERY, refreshMs = 60_000, ...feedOpts } = opts;
  const snapshots = new Snapshots(snapshotStore, store);
  const head = await store.head();
  const meta = head > 0 ? await snapshots.nearest({ position: head }) : undefined;
  const state = meta ? snapshotStore.load(meta.position) : undefined;
  const feed = await LiveProjection.start(store, { ...feedOpts, ...(state ? { state } : {}) });
  if (meta) logger.info({ snapshot: meta.position, position: feed.position }, "started from a snapshot");

  let running: Promise<void> | undefined;
  const refresh = () => {
    if (running) return;
    running = snapshots
      .update({ every, ...feedOpts })
      .then((written) => {
        if (written.length > 0) logger.info({ snapshots: written }, "snapshots written");
      })
      .catch((err: unknown) => logger.warn({ err }, "snapshot refresh failed"))
      .finally(() => {
        running = undefined;
      });
  };
  const timer = setInterval(refresh, refreshMs);
  timer.unref();
  // A snapshot falls due: write it soon after (off the applying call).
  const off = feed.onApplied((e) => {
    if (e.position % every === 0) setImmediate(refresh);
  });
  // The first refresh once the process is up (a long log gets its snapshots for the next start).
  const first = setTimeout(refresh, 1_000);
  first.unref();
  return {
    feed,
    fromSnapshot: meta?.position ?? 0,
    stop: async () => {
      off();
      clearInterval(timer);
      clearTimeout(first);
      await running;
    },
  };
}
