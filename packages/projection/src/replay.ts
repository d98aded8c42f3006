/**
 * Replay: build a projection as of a position or a time without touching the
 * live one. Events are streamed from the source, never loaded all at once.
 */
import type { RecordedEvent } from "@portcullis/events";
import { Projection, type ProjectionOptions } from "./projection.ts";
import type { Snapshot } from "./snapshot.ts";

/** Anything that can stream the log in position order (every EventStore can). */
export interface EventSource {
  readAll(opts?: { from?: number; to?: number; untilTime?: Date | string }): AsyncIterable<RecordedEvent>;
}

/** Where to stop a replay: a position (inclusive) and/or a time (events that occurred at or before it). */
export interface ReplayTarget {
  position?: number;
  time?: Date | string;
}

/**
 * Can a replay to `target` start from `snapshot`? Only when every event in it is within
 * the target: at or before the target position, and (the store stops reading at the first
 * event after the target time) every one occurred at or before the target time.
 */
function usable(snapshot: Snapshot, target: ReplayTarget): boolean {
  if (snapshot.position === 0) return true;
  if (target.position !== undefined && snapshot.position > target.position) return false;
  if (target.time === undefined) return true;
  const latest = snapshot.maxOccurredAt === undefined ? Number.NaN : Date.parse(snapshot.maxOccurredAt);
  // A snapshot that does not say when its events occurred is of no use for a time.
  return !Number.isNaN(latest) && latest <= new Date(target.time).getTime();
}

/**
 * A new projection of the log up to `target`, starting from `snapshot` when it lies
 * entirely within the target (else from the beginning). The snapshot is copied, never shared.
 */
export async function replay(
  source: EventSource,
  target: ReplayTarget = {},
  opts: ProjectionOptions & { snapshot?: Snapshot } = {},
): Promise<Projection> {
  const { snapshot, ...popts } = opts;
  const p =
    snapshot && usable(snapshot, target) ? Projection.fromSnapshot(snapshot, popts) : new Projection(popts);
  const range: { from: number; to?: number; untilTime?: Date | string } = { from: p.position + 1 };
  if (target.position !== undefined) range.to = target.position;
  if (target.time !== undefined) range.untilTime = target.time;
  for await (const e of source.readAll(range)) p.apply(e);
  return p;
}
