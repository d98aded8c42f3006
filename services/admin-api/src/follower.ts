/**
 * Keeps the decider's admin index (stream revisions, policy version
 * high-water marks) in step with the live projection: one scan of the log up
 * to the feed's position at start, then every event the feed applies.
 *
 * INVARIANT: after `start`, `index.position === feed.position` whenever no
 * feed callback is running — both are advanced in the same synchronous
 * `onApplied` call — so a decision read in one tick sees model and index at
 * the same position, and `index.revisions` is the expectedRevision for it.
 */
import type { EventStore } from "@portcullis/event-store";
import type { RecordedEvent } from "@portcullis/events";
import type { LiveProjection } from "@portcullis/feed";
import { type AdminIndex, evolveIndex, initialIndex } from "./decide/state.ts";

/** The admin index following a feed. */
export class IndexFollower {
  readonly index: AdminIndex = initialIndex();
  #off: (() => void) | undefined;

  private constructor() {}

  /** Scan the log to the feed's position, then follow the feed. */
  static async start(store: EventStore, feed: LiveProjection): Promise<IndexFollower> {
    const f = new IndexFollower();
    const buffered: RecordedEvent[] = [];
    let scanning = true;
    // Subscribe and capture the position in the same tick: every later event reaches the listener.
    f.#off = feed.onApplied((e) => {
      if (scanning) buffered.push(e);
      else evolveIndex(f.index, e);
    });
    const upTo = feed.position;
    if (upTo > 0) for await (const e of store.readAll({ to: upTo })) evolveIndex(f.index, e);
    for (const e of buffered) evolveIndex(f.index, e);
    scanning = false;
    return f;
  }

  /** Stop following. */
  close(): void {
    this.#off?.();
  }
}
