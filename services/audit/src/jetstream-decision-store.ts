/**
 * The decision log as a NATS JetStream stream (distributed edges), compatible
 * with nats-server 2.9.
 *
 * Layout: one JetStream stream (default `PORTCULLIS_DECISIONS`) on the subjects
 * `<prefix>.decisions.>`; each edge publishes to `<prefix>.decisions.<edge>`
 * (the edge id made subject-safe). ONE MESSAGE PER BATCH: the body is the JSON
 * array of the batch's records (a large batch is split so a message stays
 * under `maxMessageBytes`). `Nats-Msg-Id` is `<writer id>-<batch counter>`, so
 * a batch retried after a lost acknowledgement is stored once (within the
 * stream's duplicate window). Retention: limits (`maxAgeMs`, default keep
 * forever).
 *
 * Reading (for `verify`): an ordered consumer starting at the time `from`
 * minus `clockSlackMs` (records are published after they are made, so no
 * record at or after `from` sits in an earlier message, give or take the skew
 * between the edge's and the server's clocks), up to the stream's last message at the
 * time of the call. Records are filtered by time and account; the read does
 * not stop early at `to`, since a batch buffered while NATS was unreachable is
 * published late and may hold records older than later messages.
 */
import { randomUUID } from "node:crypto";
import {
  DeliverPolicy,
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
} from "@nats-io/jetstream";
import { connect, type NatsConnection, nanos } from "@nats-io/transport-node";
import type { DecisionRecord } from "@portcullis/feed";
import {
  type DecisionReader,
  type DecisionReadOptions,
  type DecisionWriter,
  encodeDecisionRecord,
  type LoggedDecision,
  matches,
  timeRange,
} from "./decision-log.ts";

/** Options of {@link JetStreamDecisionStore.connect}. */
export interface JetStreamDecisionStoreOptions {
  /** NATS server URL(s); ignored when `connection` is given. Default `nats://127.0.0.1:4222`. */
  servers?: string | string[];
  /** Use this connection (not closed by the store). */
  connection?: NatsConnection;
  /** JetStream stream name. Default `PORTCULLIS_DECISIONS`. */
  streamName?: string;
  /** Subject prefix. Default `portcullis`. */
  subjectPrefix?: string;
  /** The edge that writes (subject token); default `edge`. Readers may leave it. */
  edgeId?: string;
  /** Keep records this long when the store creates the stream (default 0 = forever). */
  maxAgeMs?: number;
  /** Replicas when the store creates the stream. Default 1. */
  replicas?: number;
  /** Tolerated clock skew between edges and the server: a read starts this much before `from`. Default 300 000 ms. */
  clockSlackMs?: number;
  /** Upper bound of one message body. Default 512 KiB. */
  maxMessageBytes?: number;
}

const ERR_STREAM_NOT_FOUND = 10059;
const ERR_STREAM_NAME_IN_USE = 10058;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Thrown on a read or a set-up failure of the JetStream log. */
export class JetStreamDecisionStoreError extends Error {
  override name = "JetStreamDecisionStoreError";
}

/** A subject-safe token for an edge id (letters, digits, `-`, `_` kept; others `_XX`). */
function token(id: string): string {
  let out = "";
  for (const byte of encoder.encode(id)) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9-]/.test(c) ? c : `_${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out || "_";
}

/** The JetStream decision log: a {@link DecisionWriter} and a {@link DecisionReader}. */
export class JetStreamDecisionStore implements DecisionWriter, DecisionReader {
  readonly streamName: string;
  readonly subject: string;
  readonly #nc: NatsConnection;
  readonly #ownsConnection: boolean;
  readonly #js: JetStreamClient;
  readonly #jsm: JetStreamManager;
  readonly #maxBytes: number;
  readonly #slackMs: number;
  readonly #writerId = randomUUID();
  #batch = 0;
  #closed = false;

  private constructor(
    nc: NatsConnection,
    owns: boolean,
    jsm: JetStreamManager,
    opts: JetStreamDecisionStoreOptions,
  ) {
    this.#nc = nc;
    this.#ownsConnection = owns;
    this.#jsm = jsm;
    this.#js = jetstream(nc);
    this.streamName = opts.streamName ?? "PORTCULLIS_DECISIONS";
    this.subject = `${opts.subjectPrefix ?? "portcullis"}.decisions.${token(opts.edgeId ?? "edge")}`;
    this.#maxBytes = opts.maxMessageBytes ?? 512 * 1024;
    this.#slackMs = opts.clockSlackMs ?? 300_000;
  }

  /** Connect (or use `connection`) and create the stream when it is missing. */
  static async connect(opts: JetStreamDecisionStoreOptions = {}): Promise<JetStreamDecisionStore> {
    const owns = opts.connection === undefined;
    const nc = opts.connection ?? (await connect({ servers: opts.servers ?? "nats://127.0.0.1:4222" }));
    try {
      const jsm = await jetstreamManager(nc);
      const store = new JetStreamDecisionStore(nc, owns, jsm, opts);
      await store.#ensureStream(opts);
      return store;
    } catch (err) {
      if (owns) await nc.close().catch(() => {});
      throw err instanceof JetStreamDecisionStoreError
        ? err
        : new JetStreamDecisionStoreError(
            `jetstream decision log: set-up failed: ${(err as Error).message}`,
            {
              cause: err,
            },
          );
    }
  }

  /** Publish one batch (split into messages ≤ maxMessageBytes), waiting for the server's acknowledgements. */
  async write(batch: readonly DecisionRecord[]): Promise<void> {
    if (this.#closed) throw new JetStreamDecisionStoreError("jetstream decision log: closed");
    if (batch.length === 0) return;
    const id = ++this.#batch;
    const bodies: Uint8Array[] = [];
    let part: string[] = [];
    let size = 2;
    for (const r of batch) {
      const json = encodeDecisionRecord(r);
      if (part.length > 0 && size + json.length + 1 > this.#maxBytes) {
        bodies.push(encoder.encode(`[${part.join(",")}]`));
        part = [];
        size = 2;
      }
      part.push(json);
      size += json.length + 1;
    }
    bodies.push(encoder.encode(`[${part.join(",")}]`));
    await Promise.all(
      bodies.map((body, i) =>
        this.#js.publish(this.subject, body, { msgID: `${this.#writerId}-${id}-${i}`, timeout: 5_000 }),
      ),
    );
  }

  /** Records from the time `from` on, in stream order (each edge's records in its order). */
  async *read(opts: DecisionReadOptions = {}): AsyncIterable<LoggedDecision> {
    const range = timeRange(opts);
    const info = await this.#jsm.streams.info(this.streamName);
    const lastSeq = info.state.last_seq;
    if (info.state.messages === 0) return;
    const lastTs = Date.parse(info.state.last_ts);
    const startMs = range.fromMs - this.#slackMs;
    if (Number.isFinite(startMs) && lastTs < startMs) return;
    const consumer = await this.#js.consumers.get(
      this.streamName,
      Number.isFinite(startMs)
        ? { deliver_policy: DeliverPolicy.StartTime, opt_start_time: new Date(startMs).toISOString() }
        : { deliver_policy: DeliverPolicy.All },
    );
    const iter = await consumer.consume({ max_messages: 256, expires: 2_000 });
    try {
      for await (const m of iter) {
        let records: DecisionRecord[];
        try {
          records = JSON.parse(decoder.decode(m.data)) as DecisionRecord[];
          if (!Array.isArray(records)) throw new Error("not an array");
        } catch (err) {
          throw new JetStreamDecisionStoreError(
            `jetstream decision log: message ${m.seq} is not a JSON array of records`,
            { cause: err },
          );
        }
        for (const [i, record] of records.entries())
          if (matches(record, range, opts.accountId)) yield { id: `jetstream:${m.seq}/${i}`, record };
        if (m.seq >= lastSeq || m.info.pending === 0) return;
      }
    } finally {
      iter.stop();
      consumer.delete().catch(() => {});
    }
  }

  /** Close the connection when the store opened it. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#ownsConnection) await this.#nc.close().catch(() => {});
  }

  async #ensureStream(opts: JetStreamDecisionStoreOptions): Promise<void> {
    const subjects = `${opts.subjectPrefix ?? "portcullis"}.decisions.>`;
    try {
      const info = await this.#jsm.streams.info(this.streamName);
      if (!info.config.subjects?.includes(subjects))
        throw new JetStreamDecisionStoreError(
          `jetstream decision log: stream \`${this.streamName}\` exists without the subject \`${subjects}\``,
        );
      return;
    } catch (err) {
      if (!(err instanceof JetStreamApiError) || err.code !== ERR_STREAM_NOT_FOUND) throw err;
    }
    try {
      await this.#jsm.streams.add({
        name: this.streamName,
        subjects: [subjects],
        retention: RetentionPolicy.Limits,
        storage: StorageType.File,
        max_age: nanos(opts.maxAgeMs ?? 0),
        num_replicas: opts.replicas ?? 1,
        duplicate_window: nanos(120_000),
      });
    } catch (err) {
      if (!(err instanceof JetStreamApiError) || err.code !== ERR_STREAM_NAME_IN_USE) throw err;
    }
  }
}
