/** Expected-revision constants for optimistic concurrency (one file, as in Emmett). */

/** Append only if the stream does not exist yet. */
export const NO_STREAM = "no_stream" as const;
/** Append whatever the stream's revision. */
export const ANY = "any" as const;
/** Append only if the stream exists (has at least one event). */
export const STREAM_EXISTS = "stream_exists" as const;

/** A revision number (the stream's last event must have it) or one of the constants above. */
export type ExpectedRevision = number | typeof NO_STREAM | typeof ANY | typeof STREAM_EXISTS;

/** Does a stream whose last revision is `actual` (-1 when absent) satisfy `expected`? */
export function revisionMatches(expected: ExpectedRevision, actual: number): boolean {
  if (expected === ANY) return true;
  if (expected === NO_STREAM) return actual === -1;
  if (expected === STREAM_EXISTS) return actual >= 0;
  return expected === actual;
}
