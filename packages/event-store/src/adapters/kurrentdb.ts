/**
 * KurrentDB (EventStoreDB) as the store of record (SPEC §6), through
 * `@kurrent/kurrentdb-client`, plus {@link KurrentNatsRelay}, which republishes
 * every committed event to NATS so edges learn of them.
 *
 * UNVERIFIED HERE: no KurrentDB server can run in this workplace. This adapter
 * typechecks and its contract tests run only when `KURRENTDB_URL` is set; its
 * connection-failure path and the relay (against a stand-in source) are tested.
 * Only the classic gRPC API (appendToStream with an expected state, readStream,
 * readAll and subscribeToAll with a stream-name filter), present since
 * EventStoreDB 20.x, is used.
 *
 * Layout
 * - Event-store stream `s` is KurrentDB stream `<streamPrefix><s>` (default
 *   prefix `portcullis-`, so no caller can name a `$` system stream). Each event
 *   is a JSON event whose type is the domain type, whose data is the whole
 *   validated envelope, and whose metadata `{ "portcullis-append": "i/n" }` says
 *   it is the i-th of an append of n events (the relay keeps appends whole).
 * - KurrentDB event ids must be UUIDs: an envelope id that is one is used as is,
 *   any other id is hashed into a UUID (the envelope keeps the original id).
 * - Optimistic concurrency is KurrentDB's own: `streamState` = no_stream / any /
 *   stream_exists / a revision; `WrongExpectedVersionError` becomes
 *   ExpectedRevisionConflictError.
 *
 * Gapless positions (the approach)
 * - KurrentDB's `$all` positions (commit/prepare byte offsets) are ordered but
 *   not gapless. The store position of an event is its ORDINAL among the events
 *   of `$all` whose stream has the prefix: the n-th such event has position n.
 *   `$all` is a total order that every reader sees alike, the filter is
 *   deterministic, and an append is one commit whose events are contiguous in
 *   `$all`, so every process computes the same gapless positions, and an append
 *   gets consecutive ones. Nothing extra is written, so there is no second write
 *   to keep atomic with the first.
 * - Each store keeps an index built by one `subscribeToAll` from the start: the
 *   `$all` position of every ordinal and, per stream, the ordinal of every
 *   revision. `append` returns once the index has seen its last event; `head()`
 *   first waits for the index to reach the last filtered event of `$all`.
 * - Costs: opening a store reads the prefixed part of `$all` once (O(events));
 *   the index holds ~2 numbers + 2 bigints per event in memory.
 * - INVARIANT (operational): events under the prefix are never deleted,
 *   truncated ($maxCount/$maxAge/$tb) or scavenged away, and nothing else writes
 *   to prefixed streams; either would renumber positions. The index checks that
 *   revisions arrive gapless per stream and fails loudly otherwise.
 *
 * Event-id idempotency (adapter-kit.ts) is partly KurrentDB's: an identical
 * retry with the same expected revision is idempotent on the server; a retry
 * that conflicts is compared with the stream's recorded events (replayOf), so it
 * returns the original result or EventIdConflictError. An id reused in ANOTHER
 * stream is not detected.
 */
import { createHash } from "node:crypto";
import type {
  AllStreamResolvedEvent,
  AllStreamSubscription,
  AppendStreamState,
  KurrentDBClient,
  Position,
  ResolvedEvent,
} from "@kurrent/kurrentdb-client";
import type { DomainEvent, EventEnvelope, RecordedEvent } from "@portcullis/events";
import { decodeRecorded, envelopeOf, PAGE_SIZE, replayOf, untilMs, validateAppend } from "../adapter-kit.ts";
import {
  EventStoreError,
  ExpectedRevisionConflictError,
  isExpectedRevisionConflict,
  StoreUnavailableError,
} from "../errors.ts";
import {
  ANY,
  type ExpectedRevision,
  NO_STREAM,
  revisionMatches,
  STREAM_EXISTS,
} from "../expected-revision.ts";
import type {
  AppendOptions,
  AppendResult,
  EventStore,
  ReadAllOptions,
  SubscribeOptions,
  Subscription,
} from "../port.ts";
import type { JetStreamEventStore } from "./jetstream.ts";

type KurrentModule = typeof import("@kurrent/kurrentdb-client");

/** Options of {@link KurrentDbEventStore.connect}. */
export interface KurrentDbEventStoreOptions {
  /** KurrentDB connection string, e.g. `kurrentdb://127.0.0.1:2113?tls=false`. */
  connectionString: string;
  /** Prefix of the KurrentDB streams of this store. Default `portcullis-`. */
  streamPrefix?: string;
  /** How long to wait for the position index to catch up (opening, appends, head), in ms. Default 30 000. */
  syncTimeoutMs?: number;
}

/** Metadata key: `i/n`, the event's index in its append and the append's size. */
const META_APPEND = "portcullis-append";

/** One event of `$all` as the index and the readers see it. */
interface IndexedEvent {
  event: RecordedEvent;
  /** Index of the event in its append, and the append's size. */
  part: { index: number; size: number };
}

/** Lets `close()` end a running subscription. */
interface ScanControl {
  closed: boolean;
}

/** The KurrentDB event store; see the file comment for the design (unverified here). */
export class KurrentDbEventStore implements EventStore {
  /** Adapter name used in contract test titles. */
  readonly adapter = "kurrentdb";
  /** Prefix of the KurrentDB streams of this store. */
  readonly streamPrefix: string;

  readonly #k: KurrentModule;
  readonly #client: KurrentDBClient;
  readonly #syncTimeoutMs: number;
  /** `$all` position of each ordinal: INVARIANT `#positions[p - 1]` is the event at position p. */
  readonly #positions: Position[] = [];
  /** Per stream, the position of each revision: INVARIANT `#streams.get(s)[r]` has revision r. */
  readonly #streams = new Map<string, number[]>();
  /** Resolved whenever the index grows, fails or the store closes. */
  #waiters = new Set<() => void>();
  #indexSub: AllStreamSubscription | undefined;
  /** The index cannot go on (its invariant broke): every read and append fails with it. */
  #indexFatal: EventStoreError | undefined;
  /** The `$all` subscription failed and is being resumed: waiters that time out report it. */
  #indexTransient: EventStoreError | undefined;
  #closed = false;
  readonly #scans = new Set<ScanControl>();

  private constructor(k: KurrentModule, client: KurrentDBClient, opts: KurrentDbEventStoreOptions) {
    this.#k = k;
    this.#client = client;
    this.streamPrefix = opts.streamPrefix ?? "portcullis-";
    this.#syncTimeoutMs = opts.syncTimeoutMs ?? 30_000;
  }

  /** Connect, build the position index from `$all`, and return the store once it has caught up. */
  static async connect(opts: KurrentDbEventStoreOptions): Promise<KurrentDbEventStore> {
    let k: KurrentModule;
    try {
      // Loaded on demand: the client brings gRPC and a native bridge that the
      // other adapters do not need.
      k = await import("@kurrent/kurrentdb-client");
    } catch (err) {
      throw new StoreUnavailableError(`kurrentdb: cannot load @kurrent/kurrentdb-client: ${messageOf(err)}`, {
        cause: err,
      });
    }
    let client: KurrentDBClient;
    try {
      client = k.KurrentDBClient.connectionString(opts.connectionString);
    } catch (err) {
      throw new StoreUnavailableError(`kurrentdb: bad connection string: ${messageOf(err)}`, { cause: err });
    }
    const store = new KurrentDbEventStore(k, client, opts);
    try {
      store.#startIndex(undefined);
      await store.#sync();
      return store;
    } catch (err) {
      await store.close();
      throw store.#unavailable(err, "connect");
    }
  }

  async append(
    stream: string,
    events: readonly EventEnvelope[],
    opts: AppendOptions = {},
  ): Promise<AppendResult> {
    this.#assertOpen();
    const expected = opts.expectedRevision ?? ANY;
    const validated = validateAppend(stream, events);
    if (validated.length === 0) {
      const head = await this.#sync();
      const actual = await this.streamRevision(stream);
      if (!revisionMatches(expected, actual))
        throw new ExpectedRevisionConflictError(stream, expected, actual);
      return { firstPosition: head + 1, position: head, revision: actual };
    }
    const n = validated.length;
    const data = validated.map((e, i) =>
      this.#k.jsonEvent({
        id: kurrentId(e.id),
        type: e.type,
        data: envelopeOf(e) as unknown as Record<string, unknown>,
        metadata: { [META_APPEND]: `${i}/${n}` },
      }),
    );
    let last: number;
    try {
      const r = await this.#client.appendToStream(this.streamPrefix + stream, data, {
        streamState: toStreamState(expected),
      });
      last = Number(r.nextExpectedRevision);
    } catch (err) {
      if (err instanceof this.#k.WrongExpectedVersionError) {
        const actual = await this.streamRevision(stream);
        const replay = await this.#replay(stream, expected, actual, validated);
        if (replay) return replay;
        throw new ExpectedRevisionConflictError(stream, expected, actual);
      }
      throw this.#unavailable(err, `append to \`${stream}\``);
    }
    // INVARIANT: one append is one commit, contiguous in `$all`, so its events
    // have consecutive positions ending at the position of revision `last`.
    const position = await this.#positionOf(stream, last);
    return { firstPosition: position - n + 1, position, revision: last };
  }

  async *readStream(stream: string, opts: { fromRevision?: number } = {}): AsyncIterable<RecordedEvent> {
    this.#assertOpen();
    const from = Math.max(0, opts.fromRevision ?? 0);
    let it: AsyncIterableIterator<ResolvedEvent>;
    try {
      it = this.#client.readStream(this.streamPrefix + stream, {
        fromRevision: BigInt(from),
        direction: "forwards",
      });
    } catch (err) {
      throw this.#unavailable(err, `read \`${stream}\``);
    }
    try {
      for await (const resolved of it) {
        const e = resolved.event;
        if (e === undefined) continue;
        const revision = Number(e.revision);
        const position = await this.#positionOf(stream, revision);
        yield decodeRecorded(this.adapter, e.data, { stream, revision, position });
      }
    } catch (err) {
      if (err instanceof this.#k.StreamNotFoundError) return;
      throw this.#unavailable(err, `read \`${stream}\``);
    }
  }

  async *readAll(opts: ReadAllOptions = {}): AsyncIterable<RecordedEvent> {
    this.#assertOpen();
    const until = untilMs(opts.untilTime);
    const head = await this.#sync();
    const to = Math.min(opts.to ?? head, head);
    for await (const { event } of this.#read(Math.max(1, opts.from ?? 1), to)) {
      if (until !== undefined && Date.parse(event.occurredAt) > until) return;
      yield event;
    }
  }

  subscribe(opts: SubscribeOptions = {}): Subscription {
    this.#assertOpen();
    const ctl: ScanControl = { closed: false };
    const live = this.#live(Math.max(1, opts.from ?? 1), ctl);
    const events = (async function* () {
      for await (const x of live) yield x.event;
    })();
    return {
      [Symbol.asyncIterator]: () => events,
      close: async () => {
        ctl.closed = true;
        this.#wake();
        await events.return(undefined);
      },
    };
  }

  /**
   * Like `subscribe`, but yields whole appends (all events of one append
   * together), as {@link KurrentNatsRelay} needs to republish them atomically.
   */
  subscribeAppends(opts: SubscribeOptions = {}): AsyncIterable<RecordedEvent[]> & { close(): Promise<void> } {
    this.#assertOpen();
    const ctl: ScanControl = { closed: false };
    const from = Math.max(1, opts.from ?? 1);
    const live = this.#live(from, ctl);
    const groups = async function* (): AsyncGenerator<RecordedEvent[], void, undefined> {
      let group: RecordedEvent[] = [];
      for await (const x of live) {
        // An append cut by `from` is delivered from `from` on.
        if (group.length === 0 && x.part.index > 0 && x.event.position !== from) {
          throw new EventStoreError(`kurrentdb: append at position ${x.event.position} starts mid-append`);
        }
        group.push(x.event);
        if (x.part.index === x.part.size - 1) {
          yield group;
          group = [];
        }
      }
    };
    const it = groups();
    return {
      [Symbol.asyncIterator]: () => it,
      close: async () => {
        ctl.closed = true;
        this.#wake();
        await it.return(undefined);
      },
    };
  }

  async head(): Promise<number> {
    this.#assertOpen();
    return this.#sync();
  }

  async streamRevision(stream: string): Promise<number> {
    this.#assertOpen();
    try {
      for await (const resolved of this.#client.readStream(this.streamPrefix + stream, {
        fromRevision: "end",
        direction: "backwards",
        maxCount: 1,
      })) {
        if (resolved.event) return Number(resolved.event.revision);
      }
      return -1;
    } catch (err) {
      if (err instanceof this.#k.StreamNotFoundError) return -1;
      throw this.#unavailable(err, `revision of \`${stream}\``);
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const ctl of this.#scans) ctl.closed = true;
    this.#wake();
    await this.#indexSub?.unsubscribe().catch(() => {});
    await this.#client.dispose().catch(() => {});
  }

  // ---- the position index -----------------------------------------------------

  /** Subscribe to `$all` (prefixed streams only) after `after`, feeding the index; resubscribe on errors. */
  #startIndex(after: Position | undefined): void {
    if (this.#closed) return;
    const sub = this.#client.subscribeToAll({
      fromPosition: after ?? "start",
      filter: this.#k.streamNameFilter({ prefixes: [this.streamPrefix] }),
    });
    this.#indexSub = sub;
    (async () => {
      try {
        for await (const resolved of sub) this.#index(resolved);
        if (!this.#closed) throw new Error("the $all subscription ended");
      } catch (err) {
        if (this.#closed || this.#indexFatal) return;
        // Transient (server restart, leader change): note it for waiters, then resume.
        this.#indexTransient = this.#unavailable(err, "$all subscription");
        this.#wake();
        setTimeout(() => {
          this.#indexTransient = undefined;
          this.#startIndex(this.#positions.at(-1));
        }, 500);
      }
    })();
  }

  /** Add one `$all` event to the index. */
  #index(resolved: AllStreamResolvedEvent): void {
    const e = resolved.event;
    if (e === undefined || !e.streamId.startsWith(this.streamPrefix)) return;
    const last = this.#positions.at(-1);
    // A resubscription may start at (not after) the last indexed event.
    if (last !== undefined && comparePositions(e.position, last) <= 0) return;
    const stream = e.streamId.slice(this.streamPrefix.length);
    const revisions = this.#streams.get(stream) ?? [];
    const revision = Number(e.revision);
    if (revision !== revisions.length) {
      // INVARIANT broken (deleted or truncated events): positions would be renumbered.
      this.#indexFatal = new EventStoreError(
        `kurrentdb: \`${e.streamId}\` revision ${revision} follows ${revisions.length - 1}: ` +
          "events under the store prefix were deleted or truncated",
      );
      this.#wake();
      void this.#indexSub?.unsubscribe().catch(() => {});
      return;
    }
    this.#positions.push(e.position);
    revisions.push(this.#positions.length);
    this.#streams.set(stream, revisions);
    this.#wake();
  }

  /** Wait until the index holds the last prefixed event of `$all` now; returns the head position. */
  async #sync(): Promise<number> {
    let lastPos: Position | undefined;
    try {
      for await (const resolved of this.#client.readAll({
        fromPosition: "end",
        direction: "backwards",
        maxCount: 1,
        filter: this.#k.streamNameFilter({ prefixes: [this.streamPrefix] }),
      })) {
        lastPos = resolved.event?.position;
      }
    } catch (err) {
      throw this.#unavailable(err, "read the end of $all");
    }
    if (lastPos === undefined) return this.#positions.length;
    const target = lastPos;
    await this.#until(() => {
      const tail = this.#positions.at(-1);
      return tail !== undefined && comparePositions(tail, target) >= 0;
    }, "reach the end of $all");
    return this.#positions.length;
  }

  /** The position of `stream`'s event at `revision`, once the index has it. */
  async #positionOf(stream: string, revision: number): Promise<number> {
    await this.#until(() => (this.#streams.get(stream)?.length ?? 0) > revision, `index \`${stream}\``);
    return this.#streams.get(stream)![revision]!;
  }

  /** Resolve when `ready()` holds; reject on timeout, index failure or close. */
  async #until(ready: () => boolean, what: string): Promise<void> {
    const deadline = Date.now() + this.#syncTimeoutMs;
    while (!ready()) {
      this.#assertOpen();
      if (this.#indexFatal) throw this.#indexFatal;
      const left = deadline - Date.now();
      if (left <= 0) {
        throw (
          this.#indexTransient ??
          new StoreUnavailableError(`kurrentdb: timed out after ${this.#syncTimeoutMs} ms waiting to ${what}`)
        );
      }
      await this.#wait(left);
    }
  }

  #wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#waiters.add(done);
    });
  }

  #wake(): void {
    const ws = this.#waiters;
    this.#waiters = new Set();
    for (const w of ws) w();
  }

  // ---- readers ----------------------------------------------------------------

  /** Events at positions from..to (inclusive, to ≤ indexed head) read from `$all`. */
  async *#read(from: number, to: number): AsyncGenerator<IndexedEvent, void, undefined> {
    if (from > to) return;
    if (this.#positions.length < to) throw new EventStoreError(`kurrentdb: position ${to} is not indexed`);
    // Read from the event BEFORE `from` and skip it: right whether the server's
    // read from a position includes that position or not.
    const before = from > 1 ? this.#positions[from - 2] : undefined;
    let next = from;
    try {
      for await (const resolved of this.#client.readAll({
        fromPosition: before ?? "start",
        direction: "forwards",
        maxCount: to - from + 2,
        filter: this.#k.streamNameFilter({ prefixes: [this.streamPrefix] }),
      })) {
        const e = resolved.event;
        if (e === undefined || !e.streamId.startsWith(this.streamPrefix)) continue;
        if (before !== undefined && comparePositions(e.position, before) <= 0) continue;
        const expectedPos = this.#positions[next - 1];
        // INVARIANT: the n-th prefixed event of `$all` is position n.
        if (expectedPos === undefined || comparePositions(e.position, expectedPos) !== 0) {
          throw new EventStoreError(`kurrentdb: $all read does not match the index at position ${next}`);
        }
        const stream = e.streamId.slice(this.streamPrefix.length);
        const event = decodeRecorded(this.adapter, e.data, {
          stream,
          revision: Number(e.revision),
          position: next,
        });
        yield { event, part: partOf(e.metadata) };
        if (next === to) return;
        next++;
      }
    } catch (err) {
      throw this.#unavailable(err, "read $all");
    }
  }

  /** Catch-up then live, paged by the index: each page is read once the index has it. */
  async *#live(from: number, ctl: ScanControl): AsyncGenerator<IndexedEvent, void, undefined> {
    this.#scans.add(ctl);
    try {
      let next = from;
      while (!ctl.closed) {
        if (this.#positions.length < next) {
          if (this.#indexFatal) throw this.#indexFatal;
          await this.#wait(1_000);
          continue;
        }
        const to = Math.min(this.#positions.length, next + PAGE_SIZE - 1);
        for await (const x of this.#read(next, to)) {
          yield x;
          next = x.event.position + 1;
          if (ctl.closed) return;
        }
      }
    } finally {
      this.#scans.delete(ctl);
    }
  }

  /** An append refused for its revision may be a retry of one that succeeded: find out. */
  async #replay(
    stream: string,
    expected: ExpectedRevision,
    actual: number,
    events: readonly DomainEvent[],
  ): Promise<AppendResult | undefined> {
    const wanted = new Set(events.map((e) => e.id));
    const recorded = new Map<string, RecordedEvent>();
    for await (const e of this.readStream(stream)) if (wanted.has(e.id)) recorded.set(e.id, e);
    return replayOf(
      stream,
      expected,
      actual,
      events,
      events.map((e) => recorded.get(e.id)),
    );
  }

  #unavailable(err: unknown, what: string): EventStoreError {
    if (err instanceof EventStoreError || isExpectedRevisionConflict(err)) return err as EventStoreError;
    return new StoreUnavailableError(`kurrentdb: ${what}: ${messageOf(err)}`, { cause: err });
  }

  #assertOpen(): void {
    if (this.#closed) throw new StoreUnavailableError("kurrentdb: the store is closed");
  }
}

/** Something that yields whole appends in position order; {@link KurrentDbEventStore} is one. */
export interface AppendFeed {
  /** Whole appends from position `from` (an append cut by `from` is delivered from `from` on). */
  subscribeAppends(opts: SubscribeOptions): AsyncIterable<RecordedEvent[]> & { close(): Promise<void> };
}

/** Options of {@link KurrentNatsRelay.start}. */
export interface KurrentNatsRelayOptions {
  /** Where committed events come from (a KurrentDbEventStore). */
  source: AppendFeed;
  /**
   * The NATS feed: a JetStream event store that mirrors the source with the SAME
   * positions, which edges read with its `subscribe({ from })` like the JetStream
   * store of record (subjects `<prefix>.events.<stream>`, one message per append).
   */
  target: JetStreamEventStore;
  /** Wait before retrying after NATS is unavailable, in ms. Default 500. */
  retryDelayMs?: number;
  /** Called on each retryable failure (for logs and metrics). */
  onError?: (err: unknown) => void;
}

/**
 * Republishes every committed KurrentDB event to NATS JetStream, append by
 * append, at the same positions, so edges learn of them. It resumes after the
 * mirror's head, so a restart neither skips nor repeats an append (and the
 * JetStream store's de-duplication absorbs a retried publish).
 */
export class KurrentNatsRelay {
  /** Settles when the relay stops: resolves after `stop()`, rejects on a fatal error. */
  readonly done: Promise<void>;
  #relayed = 0;
  #stopped = false;
  #feed: (AsyncIterable<RecordedEvent[]> & { close(): Promise<void> }) | undefined;
  readonly #opts: KurrentNatsRelayOptions;

  private constructor(opts: KurrentNatsRelayOptions) {
    this.#opts = opts;
    this.done = this.#run();
    this.done.catch(() => {}); // observed through `done`
  }

  /** Start relaying in the background. */
  static start(opts: KurrentNatsRelayOptions): KurrentNatsRelay {
    return new KurrentNatsRelay(opts);
  }

  /** The last position republished (0 before the first). */
  get relayedPosition(): number {
    return this.#relayed;
  }

  /** Stop relaying; resolves once the relay loop has ended. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#feed?.close();
    await this.done.catch(() => {});
  }

  async #run(): Promise<void> {
    const { source, target } = this.#opts;
    while (!this.#stopped) {
      let from: number;
      try {
        from = (await target.head()) + 1;
      } catch (err) {
        if (!(err instanceof StoreUnavailableError)) throw err;
        await this.#pause(err);
        continue;
      }
      this.#relayed = from - 1;
      const feed = source.subscribeAppends({ from });
      this.#feed = feed;
      if (this.#stopped) {
        await feed.close();
        return;
      }
      try {
        for await (const group of feed) {
          await this.#publish(group);
          if (this.#stopped) break;
        }
        if (!this.#stopped) throw new EventStoreError("relay: the source feed ended");
        return;
      } catch (err) {
        await feed.close().catch(() => {});
        if (this.#stopped) return;
        if (!(err instanceof StoreUnavailableError)) throw err;
        await this.#pause(err);
      }
    }
  }

  /** Append one whole append to the mirror, retrying while NATS is unavailable. */
  async #publish(group: RecordedEvent[]): Promise<void> {
    const first = group[0]!;
    for (;;) {
      try {
        const r = await this.#opts.target.append(first.stream, group.map(envelopeOf), {
          expectedRevision: first.revision === 0 ? NO_STREAM : first.revision - 1,
        });
        // INVARIANT: the mirror holds exactly the source's appends in order, so
        // it assigns the same positions; anything else means the mirror diverged.
        if (r.firstPosition !== first.position || r.position !== group.at(-1)!.position) {
          throw new EventStoreError(
            `relay: mirror put positions ${first.position}..${group.at(-1)!.position} of \`${first.stream}\` ` +
              `at ${r.firstPosition}..${r.position}`,
          );
        }
        this.#relayed = r.position;
        return;
      } catch (err) {
        if (isExpectedRevisionConflict(err)) {
          throw new EventStoreError(`relay: the mirror of \`${first.stream}\` diverged from the source`, {
            cause: err,
          });
        }
        if (!(err instanceof StoreUnavailableError) || this.#stopped) throw err;
        await this.#pause(err);
      }
    }
  }

  async #pause(err: unknown): Promise<void> {
    this.#opts.onError?.(err);
    await new Promise((r) => setTimeout(r, this.#opts.retryDelayMs ?? 500));
  }
}

function toStreamState(expected: ExpectedRevision): AppendStreamState {
  if (expected === ANY) return "any";
  if (expected === NO_STREAM) return "no_stream";
  if (expected === STREAM_EXISTS) return "stream_exists";
  return BigInt(expected);
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A UUID for KurrentDB: the envelope id when it is one, else a UUID (version 8) hashed from it. */
export function kurrentId(id: string): string {
  if (UUID.test(id)) return id.toLowerCase();
  const h = createHash("sha256").update(id).digest("hex");
  const variant = ((Number.parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-8${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** Order of two `$all` positions. */
function comparePositions(a: Position, b: Position): number {
  if (a.commit !== b.commit) return a.commit < b.commit ? -1 : 1;
  if (a.prepare !== b.prepare) return a.prepare < b.prepare ? -1 : 1;
  return 0;
}

/** The `i/n` metadata of an event (a lone event when absent). */
function partOf(metadata: unknown): { index: number; size: number } {
  const raw = (metadata as Record<string, unknown> | undefined)?.[META_APPEND];
  const m = typeof raw === "string" ? /^(\d+)\/(\d+)$/.exec(raw) : null;
  if (m === null) return { index: 0, size: 1 };
  return { index: Number(m[1]), size: Number(m[2]) };
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
