/**
 * The decision log (SPEC §8): edges hand every decision record to
 * {@link DecisionLog.sink} (a `DecisionSink` of @portcullis/feed) on the
 * message path. The log never blocks and never throws there: a record is
 * filtered (denials always, allows per {@link AllowLogging}), then pushed onto a
 * bounded in-memory buffer; batches are written to a {@link DecisionWriter}
 * (SQLite file, JetStream stream, memory) off the message path. When the buffer
 * is full the record is dropped and counted (`stats().dropped`, metric
 * `portcullis_decision_log_records_total{outcome="dropped"}`).
 *
 * @example
 *   const log = new DecisionLog({ writer: SqliteDecisionStore.open("decisions.db"), allows: { sampled: 0.01 } });
 *   startMqttEdge({ …, onDecision: log.sink });
 *   …
 *   await log.close(); // flushes what is buffered
 */
import type { DecisionRecord, DecisionSink } from "@portcullis/feed";
import { Counter, Gauge, type Registry } from "prom-client";

/** Which allows are logged: denials are always logged. */
export type AllowLogging = "none" | "all" | { sampled: number };

/** Where batches of records go (a durable store). */
export interface DecisionWriter {
  /** Store one batch, in order. A rejected promise (or a throw) leaves the batch to be retried. */
  write(batch: readonly DecisionRecord[]): Promise<void> | void;
  /** Release files and connections (called by {@link DecisionLog.close} when `closeWriter`). */
  close?(): Promise<void> | void;
}

/** A logged record as read back, with a store-assigned id (for mismatch reports). */
export interface LoggedDecision {
  /** Store-specific id, e.g. `sqlite:42`, `jetstream:17/3`, `memory:5`. */
  id: string;
  record: DecisionRecord;
}

/** Options of a read: an inclusive time range and an account filter. */
export interface DecisionReadOptions {
  /** Records at or after this time. */
  from?: Date | string;
  /** Records at or before this time. */
  to?: Date | string;
  /** Only records whose principal belongs to this account. */
  accountId?: string;
}

/** Streams logged records back (by time range) for `verify`. */
export interface DecisionReader {
  read(opts?: DecisionReadOptions): AsyncIterable<LoggedDecision>;
}

/** Options of a {@link DecisionLog}. */
export interface DecisionLogOptions {
  writer: DecisionWriter;
  /** Allows to log (default `none`); `{ sampled: r }` logs a fraction r ∈ (0, 1] of them at random. */
  allows?: AllowLogging;
  /** Maximum records buffered (waiting or being written) before new ones are dropped. Default 10 000. */
  capacity?: number;
  /** Records per write. Default 500. */
  batchSize?: number;
  /** Longest time a record waits before its batch is written, in ms. Default 100. */
  flushIntervalMs?: number;
  /** Random source for sampling (default Math.random). */
  random?: () => number;
  /** Write failures (the batch is retried with backoff). Default: ignored (counted in stats). */
  onError?: (err: unknown) => void;
  /** Also close the writer on {@link DecisionLog.close} (default true). */
  closeWriter?: boolean;
}

/** Counters of a decision log since it started. */
export interface DecisionLogStats {
  /** Records accepted into the buffer. */
  accepted: number;
  /** Allows not logged because of the allow setting (none / sampling). */
  skipped: number;
  /** Records dropped because the buffer was full (or the log closed). */
  dropped: number;
  /** Records written by the writer. */
  written: number;
  /** Failed writes (each retried). */
  writeErrors: number;
  /** Records in the buffer now (including a batch being written). */
  buffered: number;
}

function checkAllows(a: AllowLogging): AllowLogging {
  if (a === "none" || a === "all") return a;
  if (typeof a === "object" && a !== null && typeof a.sampled === "number") {
    if (!(a.sampled > 0 && a.sampled <= 1))
      throw new RangeError(`decision log: allow sample rate must be in (0, 1], got ${a.sampled}`);
    return a;
  }
  throw new RangeError(`decision log: allows must be \`none\`, \`all\` or { sampled: rate }`);
}

/**
 * Parse the allow setting as written in configuration: `none`, `all`, or a
 * rate such as `0.01` / `sampled:0.01` / `1%`.
 */
export function parseAllowLogging(text: string): AllowLogging {
  const t = text.trim().toLowerCase();
  if (t === "none" || t === "all") return t;
  const num = t.startsWith("sampled:") ? t.slice(8) : t;
  const rate = num.endsWith("%") ? Number(num.slice(0, -1)) / 100 : Number(num);
  if (num === "" || Number.isNaN(rate))
    throw new RangeError(`decision log: \`${text}\` is not \`none\`, \`all\` or a sample rate`);
  if (rate >= 1) return "all";
  return checkAllows({ sampled: rate });
}

const MAX_BACKOFF_MS = 5_000;

/** A bounded, batching, non-blocking decision log; see the module comment. */
export class DecisionLog {
  /** The function edges call for every decision (bound; never blocks, never throws). */
  readonly sink: DecisionSink;
  readonly #writer: DecisionWriter;
  readonly #capacity: number;
  readonly #batchSize: number;
  readonly #flushIntervalMs: number;
  readonly #random: () => number;
  readonly #onError: ((err: unknown) => void) | undefined;
  readonly #closeWriter: boolean;
  #allows: AllowLogging;
  /** Records waiting; `#head` is the index of the oldest (amortised O(1) dequeue). */
  #queue: DecisionRecord[] = [];
  #head = 0;
  /** The batch being written (counts against capacity). */
  #inFlight: readonly DecisionRecord[] = [];
  #writing: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #immediate: NodeJS.Immediate | undefined;
  #backoffMs = 0;
  #closed = false;
  readonly #stats = { accepted: 0, skipped: 0, dropped: 0, written: 0, writeErrors: 0 };

  constructor(opts: DecisionLogOptions) {
    this.#writer = opts.writer;
    this.#capacity = positive(opts.capacity ?? 10_000, "capacity");
    this.#batchSize = positive(opts.batchSize ?? 500, "batchSize");
    this.#flushIntervalMs = positive(opts.flushIntervalMs ?? 100, "flushIntervalMs");
    this.#random = opts.random ?? Math.random;
    this.#onError = opts.onError;
    this.#closeWriter = opts.closeWriter ?? true;
    this.#allows = checkAllows(opts.allows ?? "none");
    this.sink = (r) => this.record(r);
  }

  /** The allow setting in force. */
  get allows(): AllowLogging {
    return this.#allows;
  }

  /** Change the allow setting at run time. */
  setAllows(a: AllowLogging): void {
    this.#allows = checkAllows(a);
  }

  /**
   * Take one record (the edge must not change it afterwards). Never blocks or
   * throws: an allow may be skipped (setting), any record is dropped and counted
   * when the buffer is full.
   */
  record(r: DecisionRecord): void {
    try {
      if (r.decision === "Allow" && !this.drawAllow()) return;
      this.recordDrawn(r);
    } catch {
      // INVARIANT: the message path never sees an exception from the log.
      this.#stats.dropped++;
    }
  }

  /**
   * The allow setting's draw for one allow: true when it is to be logged (every
   * one with `all`, none with `none`, at random at the sampling rate); a lost
   * draw counts as skipped. A hot path (the edges) draws before it builds a
   * record, so the allows it does not log cost nothing, and hands the winners to
   * {@link recordDrawn} (which does not draw again). See {@link edgeOptions}.
   */
  drawAllow(): boolean {
    const a = this.#allows;
    if (a === "all" || (a !== "none" && this.#random() < a.sampled)) return true;
    this.#stats.skipped++;
    return false;
  }

  /**
   * What an edge is given (its `onDecision` and `logAllows` options): with
   * `none` no allow is handed over; otherwise the edge calls {@link drawAllow}
   * once per allow and hands over only the ones drawn, which `onDecision` takes
   * without drawing again (so {@link setAllows} between `all` and a rate applies).
   */
  edgeOptions(): { onDecision: DecisionSink; logAllows: false | (() => boolean) } {
    return {
      onDecision: (r) => this.recordDrawn(r),
      logAllows: this.#allows === "none" ? false : () => this.drawAllow(),
    };
  }

  /** Take one record whose allow (if it is one) was already drawn: only the buffer bound applies. */
  recordDrawn(r: DecisionRecord): void {
    try {
      if (this.#closed || this.buffered >= this.#capacity) {
        this.#stats.dropped++;
        return;
      }
      this.#queue.push(r);
      this.#stats.accepted++;
      this.#schedule();
    } catch {
      // INVARIANT: the message path never sees an exception from the log.
      this.#stats.dropped++;
    }
  }

  /** Number of records dropped so far (buffer full). */
  dropped(): number {
    return this.#stats.dropped;
  }

  /** Records in the buffer, including a batch being written. */
  get buffered(): number {
    return this.#queue.length - this.#head + this.#inFlight.length;
  }

  /** A copy of the counters. */
  stats(): DecisionLogStats {
    return { ...this.#stats, buffered: this.buffered };
  }

  /**
   * Write everything buffered now; resolves when it is written, or rejects with
   * the writer's error (the records stay buffered and are retried later).
   */
  async flush(): Promise<void> {
    this.#cancelTimers();
    while (true) {
      if (this.#writing) await this.#writing.catch(() => {});
      if (this.#queue.length - this.#head === 0) {
        // A failed in-flight batch went back to the queue; nothing left means all written.
        if (this.#inFlight.length === 0) return;
        continue;
      }
      const err = await this.#writeBatch();
      if (err !== undefined) {
        this.#schedule();
        throw err;
      }
    }
  }

  /** Stop taking records, write what is buffered (best effort), and close the writer. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      await this.flush();
    } catch (err) {
      this.#onError?.(err);
    } finally {
      this.#cancelTimers();
      if (this.#closeWriter) await this.#writer.close?.();
    }
  }

  /**
   * Register the log's metrics: `portcullis_decision_log_records_total{outcome}`
   * (accepted, skipped, dropped, written), `portcullis_decision_log_write_errors_total`
   * and the gauge `portcullis_decision_log_buffered`. Values are read at scrape
   * time, so the message path pays nothing for them.
   */
  registerMetrics(registry: Registry, labels: Record<string, string> = {}): void {
    const self = this;
    const names = Object.keys(labels);
    new Counter({
      name: "portcullis_decision_log_records_total",
      help: "Decision records by outcome: accepted, skipped (allow setting), dropped (buffer full), written",
      labelNames: ["outcome", ...names],
      registers: [registry],
      collect() {
        this.reset();
        for (const outcome of ["accepted", "skipped", "dropped", "written"] as const)
          this.inc({ ...labels, outcome }, self.#stats[outcome]);
      },
    });
    new Counter({
      name: "portcullis_decision_log_write_errors_total",
      help: "Failed decision log writes (each batch is retried)",
      labelNames: names,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(labels, self.#stats.writeErrors);
      },
    });
    new Gauge({
      name: "portcullis_decision_log_buffered",
      help: "Decision records buffered in memory, waiting to be written",
      labelNames: names,
      registers: [registry],
      collect() {
        this.set(labels, self.buffered);
      },
    });
  }

  #schedule(): void {
    if (this.#writing) return; // the writer loop picks the queue up when it finishes
    if (this.#backoffMs === 0 && this.#queue.length - this.#head >= this.#batchSize) {
      if (!this.#immediate) this.#immediate = setImmediate(() => this.#tick());
      return;
    }
    if (!this.#timer) {
      this.#timer = setTimeout(() => this.#tick(), this.#backoffMs || this.#flushIntervalMs);
      this.#timer.unref();
    }
  }

  #cancelTimers(): void {
    if (this.#timer) clearTimeout(this.#timer);
    if (this.#immediate) clearImmediate(this.#immediate);
    this.#timer = undefined;
    this.#immediate = undefined;
  }

  #tick(): void {
    this.#cancelTimers();
    if (this.#writing || this.#queue.length - this.#head === 0) return;
    void this.#writeBatch().then(() => {
      if (this.#queue.length - this.#head > 0) this.#schedule();
    });
  }

  /** Write the next batch; resolves with the error when it failed (never rejects). */
  #writeBatch(): Promise<unknown> {
    const end = Math.min(this.#queue.length, this.#head + this.#batchSize);
    const batch = this.#queue.slice(this.#head, end);
    this.#head = end;
    if (this.#head > 4096 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
    this.#inFlight = batch;
    let result: unknown;
    const p = (async () => {
      try {
        await this.#writer.write(batch);
        this.#stats.written += batch.length;
        this.#backoffMs = 0;
      } catch (err) {
        this.#stats.writeErrors++;
        // Put the batch back in front so the order is kept; retry with backoff.
        this.#queue = [...batch, ...this.#queue.slice(this.#head)];
        this.#head = 0;
        this.#backoffMs = Math.min(MAX_BACKOFF_MS, Math.max(this.#flushIntervalMs, this.#backoffMs * 2));
        result = err ?? new Error("decision log write failed");
        try {
          this.#onError?.(err);
        } catch {
          // a failing error handler changes nothing
        }
      } finally {
        this.#inFlight = [];
        this.#writing = undefined;
      }
    })();
    this.#writing = p;
    return p.then(() => result);
  }
}

function positive(n: number, what: string): number {
  if (!Number.isFinite(n) || n <= 0) throw new RangeError(`decision log: ${what} must be positive, got ${n}`);
  return n;
}

/** An in-memory writer and reader (tests, and the baseline of the benchmark). */
export class MemoryDecisionStore implements DecisionWriter, DecisionReader {
  readonly records: DecisionRecord[] = [];

  write(batch: readonly DecisionRecord[]): void {
    for (const r of batch) this.records.push(r);
  }

  async *read(opts: DecisionReadOptions = {}): AsyncIterable<LoggedDecision> {
    const range = timeRange(opts);
    for (const [i, record] of this.records.entries()) {
      if (matches(record, range, opts.accountId)) yield { id: `memory:${i + 1}`, record };
    }
  }
}

/** Inclusive bounds in epoch ms. */
export interface TimeRange {
  fromMs: number;
  toMs: number;
}

/** The epoch-ms range of read options (throws on an invalid time). */
export function timeRange(opts: DecisionReadOptions): TimeRange {
  return {
    fromMs: opts.from === undefined ? Number.NEGATIVE_INFINITY : timeMs(opts.from, "from"),
    toMs: opts.to === undefined ? Number.POSITIVE_INFINITY : timeMs(opts.to, "to"),
  };
}

function timeMs(t: Date | string, what: string): number {
  const ms = new Date(t).getTime();
  if (Number.isNaN(ms))
    throw new RangeError(`decision log: \`${what}\` is not a valid time: \`${String(t)}\``);
  return ms;
}

/** The account of a principal key (`<acct>` or `<acct>/<userId>`). */
export function principalAccount(principal: string): string {
  const i = principal.indexOf("/");
  return i < 0 ? principal : principal.slice(0, i);
}

/** Does a record fall in the range and account? */
export function matches(r: DecisionRecord, range: TimeRange, accountId: string | undefined): boolean {
  const t = Date.parse(r.time);
  if (!(t >= range.fromMs && t <= range.toMs)) return false;
  return accountId === undefined || principalAccount(r.principal) === accountId;
}

// One JSON text per shared object: edges reuse a session's context objects and the
// projection's frozen deciding-statement lists, so most of a record is encoded once.
const encodedParts = new WeakMap<object, string>();
function encodedOnce(o: object): string {
  let s = encodedParts.get(o);
  if (s === undefined) {
    s = JSON.stringify(o);
    encodedParts.set(o, s);
  }
  return s;
}

/**
 * The JSON text of a record, as `JSON.stringify` would give it (same fields,
 * same values). The `context` and `decidingStatements` objects are encoded once
 * per object and reused: INVARIANT: callers never mutate them after logging
 * (the DecisionSink contract), so the cached text stays right.
 */
export function encodeDecisionRecord(r: DecisionRecord): string {
  const q = JSON.stringify;
  let s = `{"time":${q(r.time)},"edgeId":${q(r.edgeId)},"protocol":${q(r.protocol)},"principal":${q(
    r.principal,
  )},"action":${q(r.action)},"resource":${q(r.resource)}`;
  if (r.context !== undefined) s += `,"context":${encodedOnce(r.context)}`;
  s += `,"decision":${q(r.decision)},"decidingStatements":${encodedOnce(r.decidingStatements)},"position":${q(
    r.position,
  )}`;
  if (r.clientId !== undefined) s += `,"clientId":${q(r.clientId)}`;
  return `${s}}`;
}
