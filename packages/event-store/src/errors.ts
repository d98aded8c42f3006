/** Typed event-store failures. Type guards check `code` as well as the class. */
import type { ExpectedRevision } from "./expected-revision.ts";

/** Base class of every event-store error. */
export class EventStoreError extends Error {
  override name = "EventStoreError";
  readonly code: string = "EVENT_STORE_ERROR";
}

/** The stream's revision is not the expected one: someone else appended first. */
export class ExpectedRevisionConflictError extends EventStoreError {
  override name = "ExpectedRevisionConflictError";
  override readonly code = "EXPECTED_REVISION_CONFLICT";
  constructor(
    readonly stream: string,
    readonly expected: ExpectedRevision,
    /** The stream's last revision, -1 when it does not exist. */
    readonly actual: number,
  ) {
    super(`stream \`${stream}\`: expected revision ${String(expected)}, actual ${actual}`);
  }
}

/** The store cannot be reached or failed; the append may be retried (it is idempotent by event id where supported). */
export class StoreUnavailableError extends EventStoreError {
  override name = "StoreUnavailableError";
  override readonly code = "STORE_UNAVAILABLE";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** An event given to `append` is malformed (see its cause). Nothing was written. */
export class InvalidEventError extends EventStoreError {
  override name = "InvalidEventError";
  override readonly code = "INVALID_EVENT";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** True for an ExpectedRevisionConflictError from any copy of this package. */
export function isExpectedRevisionConflict(e: unknown): e is ExpectedRevisionConflictError {
  return (e as { code?: unknown } | null)?.code === "EXPECTED_REVISION_CONFLICT";
}
