/**
 * NATS JetStream as the store of record (SPEC §6), compatible with nats-server 2.9.
 *
 * Layout
 * - One JetStream stream (default `PORTCULLIS_EVENTS`) holding the subjects
 *   `<prefix>.events.>`; one event-store stream maps to the subject
 *   `<prefix>.events.<token>` where `<token>` is the stream name made subject-safe
 *   (see {@link subjectToken}).
 * - ONE MESSAGE PER APPEND: the body is the JSON array of the append's (validated)
 *   events, so a multi-event append is atomic without 2.10+ batch publishing.
 * - Headers of each message: `Portcullis-Stream` (the stream name, URI-encoded),
 *   `Portcullis-First-Position` (global position of its first event),
 *   `Portcullis-Last-Revision` (stream revision of its last event) and
 *   `Portcullis-Count` (number of events). Revisions and positions of every event
 *   derive from these, so nothing outside the messages is needed to read them.
 *
 * Concurrency and gapless positions
 * - An append reads (or takes from its cache) the stream's last message (its
 *   sequence and last position) and the subject's last message (its sequence and
 *   last revision), checks the expected revision, then publishes with BOTH
 *   `expect.lastSequence` (whole JetStream stream) and `expect.lastSubjectSequence`
 *   (this event-store stream). The server stores the message only if nothing was
 *   appended anywhere since the read, so the positions written in the headers are
 *   exactly previous-last + 1 … + count: gapless over events, not messages.
 * - Trade-off: `lastSequence` serialises every append of the store (appends to
 *   different accounts race and the loser re-reads and retries internally);
 *   throughput is bounded by one round trip per append. That is the price of
 *   gapless event positions with 2.9 features only. Appends of one store
 *   instance are queued, so they do not race each other, and each publishes
 *   against the state its predecessor cached (one round trip when this instance
 *   is the only writer).
 * - The cache is only a hint: a publish against a stale cache fails its
 *   expectation and is re-read; an expected-revision mismatch is only reported
 *   after a fresh read.
 * - Both failed expectations come back as the same error (10071 "wrong last
 *   sequence"), so the adapter re-reads: if the stream's revision still satisfies
 *   the expected revision it was a race with another stream and it retries;
 *   otherwise it is a real conflict and `ExpectedRevisionConflictError` carries
 *   the re-read revision.
 * - `Nats-Msg-Id` is a hash of the stream name and the event ids, so a retried
 *   append (a timeout whose message was in fact stored, or a caller retrying after
 *   `StoreUnavailableError`) is de-duplicated by the server within the stream's
 *   `duplicate_window` and returns the original result. The server checks
 *   de-duplication before expectations (verified against 2.9.10).
 * - Event-id idempotency (adapter-kit.ts) is therefore narrower than in the
 *   in-process adapters: an identical retry is recognised only within the
 *   `duplicate_window` (default 2 min), and the same ids with other content give
 *   EventIdConflictError only then; an id reused in a DIFFERENT append (other
 *   ids, other order, other stream) is not detected — JetStream 2.9 has no
 *   per-event unique index inside one atomic message. Event ids are random
 *   UUIDs, so this only matters for callers that reuse ids on purpose.
 *
 * Reading
 * - `readAll`/`subscribe` find the message holding the start position by a
 *   binary search over sequences (`STREAM.MSG.GET`), then read through an
 *   ordered consumer, which re-creates itself after gaps and reconnects, so
 *   delivery is in order with no gap and no duplicate; a live subscription
 *   resumes by itself after a nats-server restart. `readStream` reads its
 *   subject through a filtered ordered consumer. Positions and revisions are
 *   checked to be gapless on the way (a failure means a damaged stream).
 * - A bounded read cut short (store closed) throws StoreUnavailableError; a read
 *   that starts while NATS is unreachable fails after `requestTimeoutMs`.
 *
 * nats-server 2.9 compatibility: only `Nats-Msg-Id`, `Nats-Expected-Last-Sequence`,
 * `Nats-Expected-Last-Subject-Sequence` and `Nats-Expected-Last-Msg-Id` headers,
 * `STREAM.MSG.GET` with `seq` / `last_by_subj` (a wildcard `last_by_subj` finds the
 * stream's last message), and ordered pull consumers with a single
 * `filter_subject`. No atomic batch publish, no per-message TTL, no
 * `Nats-Expected-Last-Subject-Sequence-Subject`, no multi-filter consumers, no
 * direct get.
 */
import { createHash, randomUUID } from "node:crypto";
import {
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
} from "@nats-io/jetstream";
import {
  connect,
  type MsgHdrs,
  type NatsConnection,
  type NodeConnectionOptions,
  nanos,
  headers as natsHeaders,
} from "@nats-io/transport-node";
import type { DomainEvent, EventEnvelope, RecordedEvent } from "@portcullis/events";
import {
  canonicalJson,
  decodeRecorded,
  EventIdConflictError,
  envelopeOf,
  untilMs,
  validateAppend,
} from "../adapter-kit.ts";
import {
  EventStoreError,
  ExpectedRevisionConflictError,
  InvalidEventError,
  StoreUnavailableError,
} from "../errors.ts";
import { ANY, type ExpectedRevision, revisionMatches } from "../expected-revision.ts";
import type {
  AppendOptions,
  AppendResult,
  EventStore,
  ReadAllOptions,
  SubscribeOptions,
  Subscription,
} from "../port.ts";

/** Options of {@link JetStreamEventStore.connect}. */
export interface JetStreamEventStoreOptions {
  /** NATS server URL(s); ignored when `connection` is given. Default `nats://127.0.0.1:4222`. */
  servers?: string | string[];
  /** Use this connection instead of opening one; the store does not close it. */
  connection?: NatsConnection;
  /** Extra connection options when the store opens its own connection. */
  connectionOptions?: Partial<NodeConnectionOptions>;
  /** JetStream stream name. Default `PORTCULLIS_EVENTS`. */
  streamName?: string;
  /** Subject prefix: subjects are `<prefix>.events.<stream>`. Default `portcullis`. */
  subjectPrefix?: string;
  /** Replicas of the JetStream stream when the store creates it. Default 1. */
  replicas?: number;
  /** De-duplication window of the JetStream stream when the store creates it, in ms. Default 120 000. */
  duplicateWindowMs?: number;
  /** Timeout of one JetStream request, in ms. Default 5 000. */
  requestTimeoutMs?: number;
  /** How long an append retries races with appends to other streams before giving up, in ms. Default 10 000. */
  contentionBudgetMs?: number;
}

const H_STREAM = "Portcullis-Stream";
const H_FIRST_POSITION = "Portcullis-First-Position";
const H_LAST_REVISION = "Portcullis-Last-Revision";
const H_COUNT = "Portcullis-Count";

/** JetStream API error codes this adapter distinguishes (nats-server 2.9). */
const ERR_WRONG_LAST_SEQUENCE = 10071;
const ERR_WRONG_LAST_MSG_ID = 10070;
const ERR_STREAM_NOT_FOUND = 10059;
const ERR_STREAM_NAME_IN_USE = 10058;

/** Room left in `max_payload` for headers. */
const HEADER_ALLOWANCE = 1_024;
/** Cached subject states kept for appends (oldest dropped first). */
const SUBJECT_CACHE_SIZE = 10_000;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** What the headers of one stored message say. */
interface MessageMeta {
  seq: number;
  stream: string;
  firstPosition: number;
  lastRevision: number;
  count: number;
}

/** The JetStream stream's last message: its sequence and the position of its last event (0, 0 when empty). */
interface TailState {
  seq: number;
  lastPosition: number;
}

/** A subject's last message: its sequence and the revision of its last event (0, -1 when absent). */
interface SubjectState {
  seq: number;
  revision: number;
}

/** Lets `close()` end a running read or subscription. */
interface ScanControl {
  closed: boolean;
  stop?: () => void;
}

/**
 * Encode a stream name as one NATS subject token: ASCII letters, digits and `-`
 * stay; every other UTF-8 byte becomes `_XX` (hex); the empty name becomes `_`.
 * Injective, so two streams never share a subject.
 */
export function subjectToken(stream: string): string {
  if (stream === "") return "_";
  let out = "";
  for (const byte of encoder.encode(stream)) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9-]/.test(c) ? c : `_${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/** The NATS event-store on JetStream; see the file comment for the design. */
export class JetStreamEventStore implements EventStore {
  /** Adapter name used in contract test titles. */
  readonly adapter = "jetstream";
  /** The JetStream stream holding the events. */
  readonly streamName: string;
  /** Subject prefix: `<prefix>.events.<stream>`. */
  readonly subjectPrefix: string;

  readonly #nc: NatsConnection;
  readonly #ownsConnection: boolean;
  readonly #js: JetStreamClient;
  readonly #jsm: JetStreamManager;
  readonly #timeout: number;
  readonly #contentionBudgetMs: number;
  readonly #allSubjects: string;
  /** Last tail seen by this instance; only a hint, checked by `expect.lastSequence`. */
  #tail: TailState | undefined;
  /** Last state seen per subject; only a hint, checked by `expect.lastSubjectSequence`. */
  readonly #subjects = new Map<string, SubjectState>();
  readonly #scans = new Set<ScanControl>();
  #closed = false;
  /** Tail of the queue of this instance's appends (see `append`). */
  #appendQueue: Promise<unknown> = Promise.resolve();

  private constructor(
    nc: NatsConnection,
    ownsConnection: boolean,
    js: JetStreamClient,
    jsm: JetStreamManager,
    opts: JetStreamEventStoreOptions,
  ) {
    this.#nc = nc;
    this.#ownsConnection = ownsConnection;
    this.#js = js;
    this.#jsm = jsm;
    this.streamName = opts.streamName ?? "PORTCULLIS_EVENTS";
    this.subjectPrefix = opts.subjectPrefix ?? "portcullis";
    this.#timeout = opts.requestTimeoutMs ?? 5_000;
    this.#contentionBudgetMs = opts.contentionBudgetMs ?? 10_000;
    this.#allSubjects = `${this.subjectPrefix}.events.>`;
  }

  /** Connect (or use `opts.connection`), create the JetStream stream if missing, and return the store. */
  static async connect(opts: JetStreamEventStoreOptions = {}): Promise<JetStreamEventStore> {
    let nc = opts.connection;
    const owns = nc === undefined;
    try {
      nc ??= await connect({
        servers: opts.servers ?? "nats://127.0.0.1:4222",
        maxReconnectAttempts: -1,
        reconnectTimeWait: 250,
        ...opts.connectionOptions,
      });
    } catch (err) {
      throw new StoreUnavailableError(`jetstream: cannot connect to NATS: ${messageOf(err)}`, { cause: err });
    }
    try {
      const timeout = opts.requestTimeoutMs ?? 5_000;
      const jsm = await jetstreamManager(nc, { timeout });
      const store = new JetStreamEventStore(nc, owns, jetstream(nc, { timeout }), jsm, opts);
      await store.#ensureStream(opts);
      return store;
    } catch (err) {
      if (owns) await nc.close().catch(() => {});
      if (err instanceof EventStoreError) throw err;
      throw new StoreUnavailableError(`jetstream: cannot open the event stream: ${messageOf(err)}`, {
        cause: err,
      });
    }
  }

  /** Subject of an event-store stream. */
  subjectOf(stream: string): string {
    return `${this.subjectPrefix}.events.${subjectToken(stream)}`;
  }

  async append(
    stream: string,
    events: readonly EventEnvelope[],
    opts: AppendOptions = {},
  ): Promise<AppendResult> {
    this.#assertOpen();
    const validated = validateAppend(stream, events);
    // Appends of one instance go one at a time: they would only race each other
    // for the stream's last sequence, and in turn each finds the cache current.
    const result = this.#appendQueue.then(() => this.#append(stream, validated, opts));
    this.#appendQueue = result.catch(() => {});
    return result;
  }

  async #append(stream: string, validated: DomainEvent[], opts: AppendOptions): Promise<AppendResult> {
    this.#assertOpen();
    const expected = opts.expectedRevision ?? ANY;
    const subject = this.subjectOf(stream);

    if (validated.length === 0) {
      // Nothing to write: still honour the expected revision.
      const [tail, sub] = await this.#guard("append", () =>
        Promise.all([this.#readTail(), this.#readSubject(subject)]),
      );
      if (!revisionMatches(expected, sub.revision))
        throw new ExpectedRevisionConflictError(stream, expected, sub.revision);
      return { position: tail.lastPosition, firstPosition: tail.lastPosition + 1, revision: sub.revision };
    }

    const body = encoder.encode(JSON.stringify(validated));
    const maxPayload = this.#nc.info?.max_payload ?? 1_048_576;
    if (body.length + HEADER_ALLOWANCE > maxPayload) {
      throw new InvalidEventError(
        `append to \`${stream}\` is ${body.length} bytes, over the server's max_payload (${maxPayload})`,
      );
    }
    const msgID = appendId(stream, validated);
    const count = validated.length;
    const deadline = Date.now() + this.#contentionBudgetMs;

    let trustCache = true;
    for (let attempt = 0; ; attempt++) {
      const { tail, sub, cached } = await this.#guard("append", () => this.#appendState(subject, trustCache));
      if (!revisionMatches(expected, sub.revision)) {
        if (cached) {
          // A cached state may be stale: decide on a fresh read only.
          trustCache = false;
          continue;
        }
        const replay = await this.#duplicateOf(subject, msgID, stream, expected, sub.revision, validated);
        if (replay) return replay;
        throw new ExpectedRevisionConflictError(stream, expected, sub.revision);
      }

      const result: AppendResult = {
        firstPosition: tail.lastPosition + 1,
        position: tail.lastPosition + count,
        revision: sub.revision + count,
      };
      const h = natsHeaders();
      h.set(H_STREAM, encodeURIComponent(stream));
      h.set(H_FIRST_POSITION, String(result.firstPosition));
      h.set(H_LAST_REVISION, String(result.revision));
      h.set(H_COUNT, String(count));
      try {
        // INVARIANT: the server stores this message only if the JetStream stream's
        // last sequence is still tail.seq and the subject's is still sub.seq, i.e.
        // nothing was appended since `tail` and `sub` were observed, so the
        // positions and revisions in the headers continue them without a gap.
        const ack = await this.#js.publish(subject, body, {
          msgID,
          headers: h,
          expect: { lastSequence: tail.seq, lastSubjectSequence: sub.seq },
          timeout: this.#timeout,
        });
        if (ack.duplicate) {
          return await this.#guard("append", () =>
            this.#resultAt(ack.seq, stream, expected, sub.revision, validated),
          );
        }
        this.#remember(subject, ack.seq, result);
        return result;
      } catch (err) {
        this.#forget(subject);
        if (apiCode(err) !== ERR_WRONG_LAST_SEQUENCE) throw this.#unavailable(err, `append to \`${stream}\``);
        // Someone appended since our read: to this stream (a real conflict, found
        // on the fresh re-read above) or to another one (retry).
        trustCache = false;
        if (Date.now() > deadline) {
          throw new StoreUnavailableError(
            `jetstream: append to \`${stream}\` lost ${attempt + 1} races with other appends in ${this.#contentionBudgetMs} ms`,
          );
        }
        if (attempt > 0) await sleep(Math.random() * Math.min(50, 2 ** attempt));
      }
    }
  }

  async *readStream(stream: string, opts: { fromRevision?: number } = {}): AsyncIterable<RecordedEvent> {
    this.#assertOpen();
    const fromRevision = opts.fromRevision ?? 0;
    const subject = this.subjectOf(stream);
    const last = await this.#guard("readStream", () => this.#readSubject(subject));
    if (last.seq === 0 || last.revision < fromRevision) return;
    let next = 0;
    for await (const msg of this.#messages(1, last.seq, subject, { closed: false })) {
      for (const e of unpack(msg.seq, msg.headers, msg.data)) {
        // INVARIANT: revisions are gapless in a stream.
        if (e.revision !== next) throw corrupt(msg.seq, `revision ${e.revision} where ${next} was expected`);
        next++;
        if (e.revision >= fromRevision) yield e;
      }
    }
  }

  async *readAll(opts: ReadAllOptions = {}): AsyncIterable<RecordedEvent> {
    this.#assertOpen();
    const from = Math.max(1, opts.from ?? 1);
    const until = untilMs(opts.untilTime);
    const tail = await this.#guard("readAll", () => this.#readTail());
    const to = Math.min(opts.to ?? tail.lastPosition, tail.lastPosition);
    if (from > to) return;
    const startSeq = await this.#guard("readAll", () => this.#seqOfPosition(from, tail.seq));
    let next = from;
    for await (const msg of this.#messages(startSeq, tail.seq, undefined, { closed: false })) {
      for (const e of unpack(msg.seq, msg.headers, msg.data)) {
        if (e.position < from) continue;
        if (e.position > to) return;
        // INVARIANT: positions are gapless in the store.
        if (e.position !== next) throw corrupt(msg.seq, `position ${e.position} where ${next} was expected`);
        next++;
        if (until !== undefined && Date.parse(e.occurredAt) > until) return;
        yield e;
      }
    }
  }

  subscribe(opts: SubscribeOptions = {}): Subscription {
    this.#assertOpen();
    const from = Math.max(1, opts.from ?? 1);
    const ctl: ScanControl = { closed: false };
    const events = this.#live(from, ctl);
    return {
      [Symbol.asyncIterator]: () => events,
      close: async () => {
        ctl.closed = true;
        ctl.stop?.();
        await events.return(undefined);
      },
    };
  }

  async head(): Promise<number> {
    this.#assertOpen();
    return (await this.#guard("head", () => this.#readTail())).lastPosition;
  }

  async streamRevision(stream: string): Promise<number> {
    this.#assertOpen();
    return (await this.#guard("streamRevision", () => this.#readSubject(this.subjectOf(stream)))).revision;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const ctl of this.#scans) {
      ctl.closed = true;
      ctl.stop?.();
    }
    if (this.#ownsConnection) await this.#nc.close().catch(() => {});
  }

  // ---- internals --------------------------------------------------------------

  async #ensureStream(opts: JetStreamEventStoreOptions): Promise<void> {
    try {
      const info = await this.#jsm.streams.info(this.streamName);
      if (!info.config.subjects?.includes(this.#allSubjects)) {
        throw new EventStoreError(
          `jetstream: stream \`${this.streamName}\` exists without the subject \`${this.#allSubjects}\``,
        );
      }
      return;
    } catch (err) {
      if (apiCode(err) !== ERR_STREAM_NOT_FOUND) throw err;
    }
    try {
      await this.#jsm.streams.add({
        name: this.streamName,
        subjects: [this.#allSubjects],
        retention: RetentionPolicy.Limits,
        storage: StorageType.File,
        // INVARIANT: messages are never removed (no limits, no delete, no purge), so
        // stream sequences 1..last are all present; #seqOfPosition relies on it.
        // Should limits ever be set, DiscardPolicy.New refuses appends rather than
        // dropping history.
        discard: DiscardPolicy.New,
        max_msgs: -1,
        max_bytes: -1,
        max_age: 0,
        deny_delete: true,
        deny_purge: true,
        num_replicas: opts.replicas ?? 1,
        duplicate_window: nanos(opts.duplicateWindowMs ?? 120_000),
      });
    } catch (err) {
      if (apiCode(err) !== ERR_STREAM_NAME_IN_USE) throw err;
      await this.#ensureStream(opts); // created concurrently: check it
    }
  }

  /** State to append against: from the cache when trusted and known, else read fresh. */
  async #appendState(
    subject: string,
    trustCache: boolean,
  ): Promise<{ tail: TailState; sub: SubjectState; cached: boolean }> {
    const cachedTail = trustCache ? this.#tail : undefined;
    const cachedSub = trustCache ? this.#subjects.get(subject) : undefined;
    const [tail, sub] = await Promise.all([
      cachedTail ?? this.#readTail(),
      cachedSub ?? this.#readSubject(subject),
    ]);
    return { tail, sub, cached: cachedTail !== undefined || cachedSub !== undefined };
  }

  /** The JetStream stream's last message (a wildcard `last_by_subj`, supported by 2.9). */
  async #readTail(): Promise<TailState> {
    const m = await this.#jsm.streams.getMessage(this.streamName, { last_by_subj: this.#allSubjects });
    if (m === null) return { seq: 0, lastPosition: 0 };
    const meta = metaOf(m.seq, m.header);
    const tail = { seq: m.seq, lastPosition: meta.firstPosition + meta.count - 1 };
    if (this.#tail === undefined || tail.seq > this.#tail.seq) this.#tail = tail;
    return tail;
  }

  /** A subject's last message. */
  async #readSubject(subject: string): Promise<SubjectState> {
    const m = await this.#jsm.streams.getMessage(this.streamName, { last_by_subj: subject });
    if (m === null) return { seq: 0, revision: -1 };
    return { seq: m.seq, revision: metaOf(m.seq, m.header).lastRevision };
  }

  /** Cache what a successful append wrote (ignoring acks that arrive out of order). */
  #remember(subject: string, seq: number, result: AppendResult): void {
    if (this.#tail === undefined || seq > this.#tail.seq) this.#tail = { seq, lastPosition: result.position };
    const known = this.#subjects.get(subject);
    if (known === undefined || seq > known.seq) {
      this.#subjects.delete(subject);
      this.#subjects.set(subject, { seq, revision: result.revision });
      if (this.#subjects.size > SUBJECT_CACHE_SIZE) {
        const oldest = this.#subjects.keys().next().value;
        if (oldest !== undefined) this.#subjects.delete(oldest);
      }
    }
  }

  #forget(subject: string): void {
    this.#tail = undefined;
    this.#subjects.delete(subject);
  }

  /**
   * Was this append (same `Nats-Msg-Id`) already stored? Publishes a probe that
   * the server can only answer as a duplicate (de-duplication is checked before
   * expectations) or reject with "wrong last msg id" (the expected last msg id
   * is a fresh random value): it is never stored.
   */
  async #duplicateOf(
    subject: string,
    msgID: string,
    stream: string,
    expected: ExpectedRevision,
    actual: number,
    events: readonly DomainEvent[],
  ): Promise<AppendResult | undefined> {
    try {
      const ack = await this.#js.publish(subject, undefined, {
        msgID,
        expect: { lastMsgID: `portcullis-probe-${randomUUID()}` },
        timeout: this.#timeout,
      });
      if (ack.duplicate) return await this.#resultAt(ack.seq, stream, expected, actual, events);
      throw new EventStoreError(`jetstream: duplicate probe on \`${subject}\` was stored at ${ack.seq}`);
    } catch (err) {
      if (apiCode(err) === ERR_WRONG_LAST_MSG_ID) return undefined;
      throw this.#unavailable(err, `append to \`${stream}\``);
    }
  }

  /**
   * The result of the append stored as message `seq`, which the server matched
   * by `Nats-Msg-Id` (a retry): the original result when the stored events are
   * identical to `events`, EventIdConflictError otherwise (same ids, other content).
   */
  async #resultAt(
    seq: number,
    stream: string,
    expected: ExpectedRevision,
    actual: number,
    events: readonly DomainEvent[],
  ): Promise<AppendResult> {
    const m = await this.#jsm.streams.getMessage(this.streamName, { seq });
    if (m === null) throw corrupt(seq, "the de-duplicated message is missing");
    const stored = unpack(seq, m.header, m.data);
    const identical =
      stored.length === events.length &&
      stored.every(
        (r, i) =>
          r.stream === stream && canonicalJson(envelopeOf(r)) === canonicalJson(envelopeOf(events[i]!)),
      );
    const first = stored[0]!;
    const last = stored[stored.length - 1]!;
    if (!identical) {
      throw new EventIdConflictError(stream, expected, actual, first.id, {
        stream: first.stream,
        revision: first.revision,
        position: first.position,
      });
    }
    return { firstPosition: first.position, position: last.position, revision: last.revision };
  }

  /**
   * The sequence of the message holding position `pos` (≤ the tail's last position).
   * INVARIANT: every message holds ≥ 1 event and sequences 1..tailSeq all exist,
   * so firstPosition(seq) ≥ seq and the message holding `pos` has seq ≤ pos.
   */
  async #seqOfPosition(pos: number, tailSeq: number): Promise<number> {
    let lo = 1;
    let hi = Math.min(tailSeq, pos);
    const firstPositionAt = async (seq: number) => {
      const m = await this.#jsm.streams.getMessage(this.streamName, { seq });
      if (m === null) throw corrupt(seq, "message missing (was the stream purged?)");
      return metaOf(seq, m.header).firstPosition;
    };
    // Single-event appends make seq == position: try the upper bound first.
    if ((await firstPositionAt(hi)) <= pos) return hi;
    hi--;
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      if ((await firstPositionAt(mid)) <= pos) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** Catch-up then live events from `from`, in order, each once. */
  async *#live(from: number, ctl: ScanControl): AsyncGenerator<RecordedEvent, void, undefined> {
    this.#scans.add(ctl);
    try {
      const tail = await this.#guard("subscribe", () => this.#readTail());
      if (ctl.closed) return;
      const startSeq =
        from > tail.lastPosition
          ? tail.seq + 1
          : await this.#guard("subscribe", () => this.#seqOfPosition(from, tail.seq));
      // INVARIANT: positions are gapless, so the first event at or after `from` is `from`.
      let next = from;
      for await (const msg of this.#messages(startSeq, Number.POSITIVE_INFINITY, undefined, ctl)) {
        for (const e of unpack(msg.seq, msg.headers, msg.data)) {
          if (e.position < from) continue;
          if (e.position !== next)
            throw corrupt(msg.seq, `position ${e.position} where ${next} was expected`);
          next++;
          yield e;
          if (ctl.closed) return;
        }
      }
    } finally {
      this.#scans.delete(ctl);
    }
  }

  /**
   * Messages from `startSeq` to `endSeq` (inclusive) through an ordered consumer,
   * which re-creates itself on gaps and reconnects so delivery stays in order
   * with neither gaps nor duplicates.
   */
  async *#messages(
    startSeq: number,
    endSeq: number,
    filter: string | undefined,
    ctl: ScanControl,
  ): AsyncGenerator<{ seq: number; headers: MsgHdrs | undefined; data: Uint8Array }, void, undefined> {
    this.#scans.add(ctl);
    try {
      const consumer = await this.#guard("open a consumer", () =>
        this.#js.consumers.get(this.streamName, {
          deliver_policy: DeliverPolicy.StartSequence,
          opt_start_seq: startSeq,
          ...(filter === undefined ? {} : { filter_subjects: filter }),
        }),
      );
      if (ctl.closed) {
        consumer.delete().catch(() => {});
        return;
      }
      // A short `expires` (so a 1 s idle heartbeat) bounds how long the consumer
      // waits before re-checking itself after a failed check during a reconnect.
      const iter = await this.#guard("consume", () =>
        consumer.consume({ max_messages: 256, expires: 2_000 }),
      );
      ctl.stop = () => iter.stop();
      try {
        for await (const m of iter) {
          if (ctl.closed) break;
          yield { seq: m.seq, headers: m.headers, data: m.data };
          if (m.seq >= endSeq) return;
          if (ctl.closed) break;
        }
      } catch (err) {
        if (!ctl.closed && !this.#closed) throw this.#unavailable(err, "read");
      } finally {
        ctl.stop = undefined;
        iter.stop();
        consumer.delete().catch(() => {});
      }
      // A subscription closed by its owner ends quietly; a bounded read that did
      // not reach its end (the store closed, the consumer stopped) must not look
      // complete.
      if (ctl.closed && endSeq === Number.POSITIVE_INFINITY) return;
      throw new StoreUnavailableError(
        `jetstream: reading \`${this.streamName}\` stopped before sequence ${endSeq}` +
          (this.#closed ? ": the store was closed" : ""),
      );
    } finally {
      this.#scans.delete(ctl);
    }
  }

  async #guard<T>(what: string, f: () => Promise<T>): Promise<T> {
    try {
      return await f();
    } catch (err) {
      throw this.#unavailable(err, what);
    }
  }

  #unavailable(err: unknown, what: string): EventStoreError {
    if (err instanceof EventStoreError) return err;
    return new StoreUnavailableError(`jetstream: ${what}: ${messageOf(err)}`, { cause: err });
  }

  #assertOpen(): void {
    if (this.#closed) throw new StoreUnavailableError("jetstream: the store is closed");
  }
}

/** Deterministic `Nats-Msg-Id` of an append: the same events to the same stream get the same id. */
function appendId(stream: string, events: readonly DomainEvent[]): string {
  const h = createHash("sha256").update(stream);
  for (const e of events) h.update("\0").update(e.id);
  return `pc1-${h.digest("base64url")}`;
}

function metaOf(seq: number, hdrs: MsgHdrs | undefined): MessageMeta {
  const int = (name: string, min: number): number => {
    const v = hdrs?.get(name) ?? "";
    const n = Number(v);
    if (v === "" || !Number.isSafeInteger(n) || n < min) throw corrupt(seq, `bad header ${name}: \`${v}\``);
    return n;
  };
  if (hdrs === undefined || !hdrs.has(H_STREAM)) throw corrupt(seq, `missing header ${H_STREAM}`);
  return {
    seq,
    stream: decodeURIComponent(hdrs.get(H_STREAM)),
    firstPosition: int(H_FIRST_POSITION, 1),
    lastRevision: int(H_LAST_REVISION, 0),
    count: int(H_COUNT, 1),
  };
}

/** The events of one stored message, with their stream, revision and position. */
function unpack(seq: number, hdrs: MsgHdrs | undefined, data: Uint8Array): RecordedEvent[] {
  const meta = metaOf(seq, hdrs);
  let body: unknown;
  try {
    body = JSON.parse(decoder.decode(data));
  } catch (err) {
    throw corrupt(seq, `body is not JSON: ${messageOf(err)}`);
  }
  if (!Array.isArray(body) || body.length !== meta.count) {
    throw corrupt(seq, `body does not hold ${meta.count} events`);
  }
  const firstRevision = meta.lastRevision - meta.count + 1;
  // Validated (and upcast to the current schema versions) on the way out, like every adapter.
  return body.map((e, i) =>
    decodeRecorded("jetstream", e, {
      stream: meta.stream,
      revision: firstRevision + i,
      position: meta.firstPosition + i,
    }),
  );
}

function corrupt(seq: number, why: string): EventStoreError {
  return new EventStoreError(`jetstream: message ${seq}: ${why}`);
}

function apiCode(err: unknown): number | undefined {
  return err instanceof JetStreamApiError ? err.code : undefined;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
