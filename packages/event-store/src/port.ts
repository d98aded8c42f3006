/**
 * The event store port (SPEC §6). Every adapter implements it and passes the
 * one contract suite (contract.ts).
 *
 * Ordering guarantees relied on by projections and edges:
 * - INVARIANT: positions are 1-based, strictly increasing and gapless in a store;
 *   revisions are 0-based, strictly increasing and gapless in a stream.
 * - INVARIANT: an append is atomic — all of its events are recorded, with
 *   consecutive positions, or none is.
 * - INVARIANT: a subscription delivers every event from `from` on, once, in
 *   position order: first the stored ones (catch-up), then new ones (live).
 */
import type { EventEnvelope, RecordedEvent } from "@portcullis/events";
import type { ExpectedRevision } from "./expected-revision.ts";

/** Result of an append. */
export interface AppendResult {
  /** Position of the last event appended (the store's new head). */
  position: number;
  /** Position of the first event appended. */
  firstPosition: number;
  /** The stream's revision after the append (use as the next expectedRevision). */
  revision: number;
}

/** Options of `append`. */
export interface AppendOptions {
  /** Default `ANY`. */
  expectedRevision?: ExpectedRevision;
}

/** Options of `readAll`; bounds are inclusive positions. */
export interface ReadAllOptions {
  /** First position to read (default 1). */
  from?: number;
  /** Last position to read (default: head). */
  to?: number;
  /** Stop before the first event whose `occurredAt` is after this time. */
  untilTime?: Date | string;
}

/** Options of `subscribe`. */
export interface SubscribeOptions {
  /** First position to deliver (default 1). */
  from?: number;
}

/** A live subscription: iterate it; `close()` ends the iteration. */
export interface Subscription extends AsyncIterable<RecordedEvent> {
  close(): Promise<void>;
}

/** The event store port. */
export interface EventStore {
  /** Adapter name (`memory`, `sqlite`, `jetstream`, `kurrentdb`); contract test titles use it. */
  readonly adapter: string;
  /** Append events to a stream atomically, with optimistic concurrency. Events are validated first. */
  append(stream: string, events: readonly EventEnvelope[], opts?: AppendOptions): Promise<AppendResult>;
  /** Events of one stream in revision order, from `fromRevision` (default 0). */
  readStream(stream: string, opts?: { fromRevision?: number }): AsyncIterable<RecordedEvent>;
  /** Events of every stream in position order. */
  readAll(opts?: ReadAllOptions): AsyncIterable<RecordedEvent>;
  /** Catch-up then live delivery of every event from `from`. */
  subscribe(opts?: SubscribeOptions): Subscription;
  /** The last position (0 when empty). */
  head(): Promise<number>;
  /** The last revision of a stream (-1 when it does not exist). */
  streamRevision(stream: string): Promise<number>;
  /** Release connections and files. */
  close(): Promise<void>;
}
