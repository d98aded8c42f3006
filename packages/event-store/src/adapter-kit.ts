/**
 * Pieces shared by the in-process adapters (memory, sqlite): validation of an
 * append, event-id idempotency, decoding of stored events, and a paged
 * catch-up-then-live subscription. Internal to this package.
 *
 * Event-id idempotency (the choice documented for memory and sqlite):
 * - An append none of whose ids is recorded is a new append.
 * - An append all of whose events are already recorded identically (same
 *   stream, same order, consecutive revisions and positions, same validated
 *   content) is a retry of an append that succeeded: nothing is written and the
 *   original result is returned, whatever the expected revision (the original
 *   append satisfied it; a retry after a lost reply must not turn into a conflict).
 * - Anything else (some ids recorded, in another stream, in another order, or
 *   with other content) is refused with {@link EventIdConflictError}, a kind of
 *   {@link ExpectedRevisionConflictError}: a caller's usual conflict handling
 *   (re-read, decide again with fresh ids) is the right recovery.
 */
import { type DomainEvent, type EventEnvelope, type RecordedEvent, validateEvent } from "@portcullis/events";
import { EventStoreError, ExpectedRevisionConflictError, InvalidEventError } from "./errors.ts";
import type { ExpectedRevision } from "./expected-revision.ts";
import type { AppendResult, Subscription } from "./port.ts";

/** Events read per page by readers and subscriptions (bounds the memory of one read). */
export const PAGE_SIZE = 1000;

/** An append reuses an event id already recorded for another event (or another append). Nothing was written. */
export class EventIdConflictError extends ExpectedRevisionConflictError {
  override name = "EventIdConflictError";
  constructor(
    stream: string,
    expected: ExpectedRevision,
    actual: number,
    /** The reused event id. */
    readonly eventId: string,
    /** Where that id is recorded. */
    readonly recorded: { stream: string; revision: number; position: number },
  ) {
    super(stream, expected, actual);
    this.message =
      `stream \`${stream}\`: event id \`${eventId}\` is already recorded at position ${recorded.position} ` +
      `(stream \`${recorded.stream}\`, revision ${recorded.revision}) and this append is not an identical retry`;
  }
}

/**
 * Validate every event of an append (upcasting to the current schema version)
 * before anything is written. Throws InvalidEventError naming the first bad
 * event, with the EventValidationError as its cause.
 */
export function validateAppend(stream: string, events: readonly EventEnvelope[]): DomainEvent[] {
  if (typeof stream !== "string" || stream.length === 0)
    throw new InvalidEventError("stream name must be a non-empty string");
  if (!Array.isArray(events)) throw new InvalidEventError("events must be an array");
  const seen = new Set<string>();
  return events.map((e, i) => {
    let v: DomainEvent;
    try {
      v = validateEvent(e);
    } catch (err) {
      throw new InvalidEventError(`append to \`${stream}\`: events[${i}]: ${(err as Error).message}`, {
        cause: err,
      });
    }
    if (seen.has(v.id))
      throw new InvalidEventError(
        `append to \`${stream}\`: events[${i}]: event id \`${v.id}\` appears twice`,
      );
    seen.add(v.id);
    return v;
  });
}

/** JSON with object keys sorted, so equal values give equal strings whatever their key order. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v === null || typeof v !== "object" || Array.isArray(v)) return v;
    const sorted: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) sorted[k] = (v as Record<string, unknown>)[k];
    return sorted;
  });
}

/** The envelope part of a recorded event (drops stream, revision, position). */
export function envelopeOf(e: RecordedEvent | DomainEvent): EventEnvelope {
  const { id, type, schemaVersion, accountId, occurredAt, actor, reason, data } = e;
  return {
    id,
    type,
    schemaVersion,
    accountId,
    occurredAt,
    actor,
    ...(reason !== undefined ? { reason } : {}),
    data,
  };
}

/**
 * Decide whether an append is a retry of one already recorded (see the file
 * comment). `recorded[i]` is the recorded event with the id of `events[i]`, if
 * any. Returns the original result for an identical retry, undefined when no id
 * is recorded, and throws EventIdConflictError otherwise.
 */
export function replayOf(
  stream: string,
  expected: ExpectedRevision,
  actual: number,
  events: readonly DomainEvent[],
  recorded: readonly (RecordedEvent | undefined)[],
): AppendResult | undefined {
  if (recorded.every((r) => r === undefined)) return undefined;
  const first = recorded[0];
  for (let i = 0; i < events.length; i++) {
    const r = recorded[i];
    const e = events[i]!;
    const identical =
      r !== undefined &&
      first !== undefined &&
      r.stream === stream &&
      r.revision === first.revision + i &&
      r.position === first.position + i &&
      canonicalJson(envelopeOf(r)) === canonicalJson(envelopeOf(e));
    if (!identical) {
      const clash = recorded.find((x) => x !== undefined)!;
      throw new EventIdConflictError(stream, expected, actual, clash.id, {
        stream: clash.stream,
        revision: clash.revision,
        position: clash.position,
      });
    }
  }
  const last = recorded[recorded.length - 1]!;
  return { firstPosition: first!.position, position: last.position, revision: last.revision };
}

/** Validate (and upcast) a stored envelope read back from an adapter; a bad one is a store error. */
export function decodeRecorded(
  adapter: string,
  envelope: unknown,
  where: { stream: string; revision: number; position: number },
): RecordedEvent {
  let e: DomainEvent;
  try {
    e = validateEvent(envelope);
  } catch (err) {
    throw new EventStoreError(
      `${adapter}: event at position ${where.position} does not validate: ${(err as Error).message}`,
      { cause: err },
    );
  }
  // validateEvent returns a new object: give it the store's coordinates in place (a copy per
  // event is measurable in a replay of a million).
  const r = e as DomainEvent & { stream: string; revision: number; position: number };
  r.stream = where.stream;
  r.revision = where.revision;
  r.position = where.position;
  return r as RecordedEvent;
}

/** Milliseconds since the epoch of `untilTime`, or undefined when absent. */
export function untilMs(untilTime: Date | string | undefined): number | undefined {
  if (untilTime === undefined) return undefined;
  const ms = new Date(untilTime).getTime();
  if (Number.isNaN(ms)) throw new TypeError(`untilTime \`${String(untilTime)}\` is not a valid time`);
  return ms;
}

/** Options of {@link PagedSubscription}. */
export interface PagedSubscriptionOptions {
  /** Adapter name, for error messages. */
  adapter: string;
  /** First position to deliver. */
  from: number;
  /** Events at positions `from`… in order, at most `limit` of them (fewer only at the head). */
  readPage(from: number, limit: number): RecordedEvent[];
  /** When set, look for new events this often even without a wake-up (appends by other processes). */
  pollIntervalMs?: number | undefined;
  /** Called once when the subscription ends (closed or iteration abandoned). */
  onClose?: (() => void) | undefined;
}

/**
 * A pull-based subscription: reads pages from the next undelivered position,
 * and once caught up waits for `wake()` (an append by this store) or the poll
 * timer. Reading only what the consumer asks for keeps memory bounded.
 *
 * INVARIANT (relied on for "no gaps"): every page is a prefix-closed snapshot —
 * an adapter only ever makes whole appends visible, in position order — so
 * reading from `next` never skips a position that becomes visible later.
 */
export class PagedSubscription implements Subscription {
  #next: number;
  #closed = false;
  #iterating = false;
  #waiter: (() => void) | undefined;
  readonly #opts: PagedSubscriptionOptions;

  constructor(opts: PagedSubscriptionOptions) {
    this.#opts = opts;
    this.#next = Math.max(1, opts.from);
  }

  /** New events may be there: stop waiting. */
  wake(): void {
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.();
  }

  /** End the iteration (a pending `next()` resolves as done). Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.wake();
    this.#opts.onClose?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<RecordedEvent> {
    if (this.#iterating) throw new EventStoreError(`${this.#opts.adapter}: a subscription is iterated once`);
    this.#iterating = true;
    try {
      while (!this.#closed) {
        const page = this.#opts.readPage(this.#next, PAGE_SIZE);
        for (const e of page) {
          if (e.position !== this.#next)
            throw new EventStoreError(
              `${this.#opts.adapter}: subscription expected position ${this.#next}, read ${e.position}`,
            );
          yield e;
          this.#next = e.position + 1;
          if (this.#closed) return;
        }
        // Idle only after an empty read: an append made while we were suspended in
        // `yield` (its wake-up finding no waiter) is then seen by the next read.
        if (page.length === 0) await this.#idle();
      }
    } finally {
      // A consumer that breaks out of its loop ends the subscription too.
      await this.close();
    }
  }

  /** Resolve on wake(), close() or the poll timer. */
  #idle(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    return new Promise<void>((resolve) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      this.#waiter = () => {
        if (timer) clearTimeout(timer);
        resolve();
      };
      const poll = this.#opts.pollIntervalMs;
      if (poll !== undefined) timer = setTimeout(() => this.wake(), poll);
    });
  }
}
