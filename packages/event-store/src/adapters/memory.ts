/**
 * An in-memory event store for tests and single-process tools: the reference
 * behaviour of the port, with nothing persisted. Event-id idempotency as in
 * adapter-kit.ts.
 */
import type { DomainEvent, EventEnvelope, RecordedEvent } from "@portcullis/events";
import {
  decodeRecorded,
  envelopeOf,
  PagedSubscription,
  replayOf,
  untilMs,
  validateAppend,
} from "../adapter-kit.ts";
import { EventStoreError, ExpectedRevisionConflictError } from "../errors.ts";
import { ANY, revisionMatches } from "../expected-revision.ts";
import type {
  AppendOptions,
  AppendResult,
  EventStore,
  ReadAllOptions,
  SubscribeOptions,
  Subscription,
} from "../port.ts";

/** A recorded event as kept in memory: a private deep copy of the validated envelope. */
interface Row {
  position: number;
  stream: string;
  revision: number;
  envelope: EventEnvelope;
}

/** The in-memory event store (adapter `memory`). */
export class MemoryEventStore implements EventStore {
  /** Adapter name used in contract test titles. */
  readonly adapter = "memory";
  /** INVARIANT: `#log[i].position === i + 1` (gapless positions from 1). */
  readonly #log: Row[] = [];
  /** Positions of each stream's events; INVARIANT: `#streams.get(s)[r]` has revision r. */
  readonly #streams = new Map<string, number[]>();
  /** Position of each recorded event id. */
  readonly #ids = new Map<string, number>();
  readonly #subscriptions = new Set<PagedSubscription>();
  #closed = false;

  async append(
    stream: string,
    events: readonly EventEnvelope[],
    opts: AppendOptions = {},
  ): Promise<AppendResult> {
    this.#assertOpen();
    const expected = opts.expectedRevision ?? ANY;
    const validated = validateAppend(stream, events);
    // INVARIANT: no `await` from here to the end — the check and the write are
    // one synchronous step, so appends are atomic and serialised.
    const positions = this.#streams.get(stream) ?? [];
    const actual = positions.length - 1;
    const replay = replayOf(
      stream,
      expected,
      actual,
      validated,
      validated.map((e) => this.#recordedById(e.id)),
    );
    if (replay) return replay;
    if (!revisionMatches(expected, actual)) throw new ExpectedRevisionConflictError(stream, expected, actual);
    if (validated.length === 0)
      return { firstPosition: this.#log.length + 1, position: this.#log.length, revision: actual };

    const firstPosition = this.#log.length + 1;
    validated.forEach((e: DomainEvent, i) => {
      const position = firstPosition + i;
      this.#log.push({
        position,
        stream,
        revision: actual + 1 + i,
        envelope: structuredClone(envelopeOf(e)),
      });
      this.#ids.set(e.id, position);
      positions.push(position);
    });
    this.#streams.set(stream, positions);
    for (const s of this.#subscriptions) s.wake();
    return { firstPosition, position: this.#log.length, revision: positions.length - 1 };
  }

  async *readStream(stream: string, opts: { fromRevision?: number } = {}): AsyncIterable<RecordedEvent> {
    this.#assertOpen();
    const positions = this.#streams.get(stream) ?? [];
    const last = positions.length - 1;
    for (let r = Math.max(0, opts.fromRevision ?? 0); r <= last; r++) {
      yield this.#decode(this.#log[positions[r]! - 1]!);
    }
  }

  async *readAll(opts: ReadAllOptions = {}): AsyncIterable<RecordedEvent> {
    this.#assertOpen();
    const until = untilMs(opts.untilTime);
    const to = Math.min(opts.to ?? this.#log.length, this.#log.length);
    for (let p = Math.max(1, opts.from ?? 1); p <= to; p++) {
      const e = this.#decode(this.#log[p - 1]!);
      if (until !== undefined && Date.parse(e.occurredAt) > until) return;
      yield e;
    }
  }

  subscribe(opts: SubscribeOptions = {}): Subscription {
    this.#assertOpen();
    const sub: PagedSubscription = new PagedSubscription({
      adapter: this.adapter,
      from: opts.from ?? 1,
      readPage: (from, limit) => this.#log.slice(from - 1, from - 1 + limit).map((row) => this.#decode(row)),
      onClose: () => this.#subscriptions.delete(sub),
    });
    this.#subscriptions.add(sub);
    return sub;
  }

  async head(): Promise<number> {
    this.#assertOpen();
    return this.#log.length;
  }

  async streamRevision(stream: string): Promise<number> {
    this.#assertOpen();
    return (this.#streams.get(stream)?.length ?? 0) - 1;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all([...this.#subscriptions].map((s) => s.close()));
  }

  #recordedById(id: string): RecordedEvent | undefined {
    const p = this.#ids.get(id);
    return p === undefined ? undefined : this.#decode(this.#log[p - 1]!);
  }

  #decode(row: Row): RecordedEvent {
    // A copy: a consumer mutating what it read must not change the log.
    return decodeRecorded(this.adapter, structuredClone(row.envelope), row);
  }

  #assertOpen(): void {
    if (this.#closed) throw new EventStoreError("memory: the store is closed");
  }
}
