/**
 * A projection that follows the event feed (SPEC §6): it starts from an
 * optional snapshot, catches up to the store's head, then applies every new
 * event as it is appended. Edges and the admin plane authorize against its
 * `projection`; they learn what each event changed through `onApplied`.
 *
 * Staleness: a probe asks the store for its head every `probeIntervalMs`. The
 * feed is **stale** when no probe has succeeded for `staleAfterMs`, or when the
 * store's head has been ahead of the applied position for that long (the feed
 * is cut while the store still answers). After `failClosedAfterMs` of
 * staleness the feed is **fail-closed**: edges must then refuse everything.
 */
import type { EventStore, Subscription } from "@portcullis/event-store";
import type { RecordedEvent } from "@portcullis/events";
import {
  type Affected,
  Projection,
  type ProjectionOptions,
  type Snapshot,
  type State,
} from "@portcullis/projection";

/** Called synchronously after each event is applied, in position order. */
export type AppliedListener = (event: RecordedEvent, affected: Affected) => void;

/** What a feed knows about itself. */
export interface FeedStatus {
  /** Position of the last applied event. */
  position: number;
  /** The store's head at the last successful probe (undefined before the first). */
  head: number | undefined;
  /** The last probe succeeded. */
  connected: boolean;
  /** The feed cannot be seen (or lags) for more than `staleAfterMs`. */
  stale: boolean;
  /** Stale for more than `failClosedAfterMs`: refuse everything. */
  failClosed: boolean;
  /** Epoch ms of the last successful probe or applied event (0 = never). */
  lastContactAt: number;
  /** How far the applied position is behind the last known head. */
  lag: number;
}

/** Options of {@link LiveProjection.start}. */
export interface LiveProjectionOptions extends ProjectionOptions {
  /** Start from this snapshot instead of the empty state. */
  snapshot?: Snapshot;
  /** Or from this restored state (it becomes the projection's own; e.g. from a snapshot store). */
  state?: State;
  /** Probe period in ms (default 500). */
  probeIntervalMs?: number;
  /** Stale after this long without contact or with a lag (default 2 000; SPEC §6 says "within 2 s"). */
  staleAfterMs?: number;
  /** Fail closed after this long stale (default 30 000; `Infinity` never). */
  failClosedAfterMs?: number;
  /** `start` fails when the initial catch-up applies no event for this long, in ms (default 30 000). */
  catchUpTimeoutMs?: number;
  /** Errors of listeners and of the feed loop (default: ignored). */
  onError?: (err: unknown, where: string) => void;
}

/** Thrown when the initial catch-up does not finish. */
export class FeedError extends Error {
  override name = "FeedError";
}

const withTimeout = <T>(p: Promise<T>, ms: number, what: string): Promise<T> =>
  new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new FeedError(`${what} timed out after ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });

/** A projection kept up to date from an event store. */
export class LiveProjection {
  /** The projection to authorize against (read only for callers). */
  readonly projection: Projection;
  readonly #store: EventStore;
  readonly #opts: LiveProjectionOptions;
  readonly #applied = new Set<AppliedListener>();
  readonly #statusListeners = new Set<(s: FeedStatus) => void>();
  readonly #waiters = new Set<{ position: number; resolve: (ok: boolean) => void; timer?: NodeJS.Timeout }>();
  #sub: Subscription | undefined;
  #probe: NodeJS.Timeout | undefined;
  #closed = false;
  #head: number | undefined;
  #connected = false;
  #lastContactAt = 0;
  /** Since when the head has been ahead of the position (0 = not lagging). */
  #lagSince = 0;
  #staleSince = 0;
  #lastStatus: { stale: boolean; failClosed: boolean } = { stale: false, failClosed: false };
  #loop: Promise<void> | undefined;
  #probing = false;

  private constructor(store: EventStore, opts: LiveProjectionOptions) {
    this.#store = store;
    this.#opts = opts;
    // INVARIANT: every EventStore adapter validates each event as it reads it
    // (adapter-kit `decodeRecorded`), so the projection does not validate twice.
    const popts: ProjectionOptions = { validate: false, ...opts };
    this.projection = opts.snapshot
      ? Projection.fromSnapshot(opts.snapshot, popts)
      : new Projection(popts, opts.state);
  }

  /**
   * Start following `store`: resolves once every event up to the head at call
   * time is applied (an edge accepts no connection before that).
   */
  static async start(store: EventStore, opts: LiveProjectionOptions = {}): Promise<LiveProjection> {
    const feed = new LiveProjection(store, opts);
    try {
      const head = await store.head();
      feed.#head = head;
      feed.#connected = true;
      feed.#lastContactAt = Date.now();
      feed.#loop = feed.#run();
      // A long log takes long to replay: give up only when the catch-up stalls.
      const stallMs = opts.catchUpTimeoutMs ?? 30_000;
      let seen = feed.position;
      while (feed.position < head) {
        if (await feed.waitForPosition(head, stallMs)) break;
        if (feed.position === seen)
          throw new FeedError(
            `catch-up to position ${head} stalled at ${feed.position} (no event applied for ${stallMs} ms)`,
          );
        seen = feed.position;
      }
      feed.#probe = setInterval(() => feed.#tick(), opts.probeIntervalMs ?? 500);
      feed.#probe.unref();
      return feed;
    } catch (e) {
      await feed.close();
      throw e;
    }
  }

  /** The event store followed. */
  get store(): EventStore {
    return this.#store;
  }

  /** Position of the last applied event. */
  get position(): number {
    return this.projection.position;
  }

  /** Subscribe to applied events; returns the unsubscribe function. */
  onApplied(listener: AppliedListener): () => void {
    this.#applied.add(listener);
    return () => this.#applied.delete(listener);
  }

  /** Subscribe to changes of `stale`/`failClosed`; returns the unsubscribe function. */
  onStatus(listener: (s: FeedStatus) => void): () => void {
    this.#statusListeners.add(listener);
    return () => this.#statusListeners.delete(listener);
  }

  /** Resolves true once `position` is applied, false after `timeoutMs`. */
  waitForPosition(position: number, timeoutMs: number): Promise<boolean> {
    if (this.position >= position) return Promise.resolve(true);
    if (this.#closed) return Promise.resolve(false);
    return new Promise((resolve) => {
      const w: { position: number; resolve: (ok: boolean) => void; timer?: NodeJS.Timeout } = {
        position,
        resolve,
      };
      w.timer = setTimeout(() => {
        this.#waiters.delete(w);
        resolve(false);
      }, timeoutMs);
      this.#waiters.add(w);
    });
  }

  /** The current status (computed now). */
  status(): FeedStatus {
    const now = Date.now();
    const staleAfter = this.#opts.staleAfterMs ?? 2_000;
    const failAfter = this.#opts.failClosedAfterMs ?? 30_000;
    const lostContact = now - this.#lastContactAt > staleAfter;
    const lagging = this.#lagSince > 0 && now - this.#lagSince > staleAfter;
    const stale = this.#closed || lostContact || lagging;
    if (stale && this.#staleSince === 0) this.#staleSince = now;
    if (!stale) this.#staleSince = 0;
    const failClosed = this.#closed || (stale && now - this.#staleSince >= failAfter);
    return {
      position: this.position,
      head: this.#head,
      connected: this.#connected,
      stale,
      failClosed,
      lastContactAt: this.#lastContactAt,
      lag: Math.max(0, (this.#head ?? 0) - this.position),
    };
  }

  /** Stop following the store (the store itself is not closed). Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#probe) clearInterval(this.#probe);
    for (const w of this.#waiters) {
      clearTimeout(w.timer);
      w.resolve(false);
    }
    this.#waiters.clear();
    await this.#sub?.close();
    await this.#loop?.catch(() => {});
  }

  /** Apply events as they come; re-subscribe after a failure. */
  async #run(): Promise<void> {
    let backoff = 50;
    while (!this.#closed) {
      try {
        this.#sub = this.#store.subscribe({ from: this.position + 1 });
        for await (const e of this.#sub) {
          this.#applyOne(e);
          backoff = 50;
          if (this.#closed) break;
        }
      } catch (err) {
        if (this.#closed) break;
        this.#opts.onError?.(err, "feed");
        this.#connected = false;
        await new Promise((r) => setTimeout(r, backoff).unref());
        backoff = Math.min(backoff * 2, 1_000);
      }
    }
  }

  #applyOne(e: RecordedEvent): void {
    if (e.position <= this.position) return;
    // Nobody listens yet (a catch-up before the edges start): the projection may skip
    // collecting the principals a policy change reaches (a fifth of a replay's work).
    const affected = this.projection.apply(e, { quiet: this.#applied.size === 0 });
    this.#lastContactAt = Date.now();
    if (this.#head === undefined || e.position > this.#head) this.#head = e.position;
    if (this.position >= (this.#head ?? 0)) this.#lagSince = 0;
    for (const l of this.#applied) {
      try {
        l(e, affected);
      } catch (err) {
        this.#opts.onError?.(err, "listener");
      }
    }
    for (const w of this.#waiters) {
      if (this.position >= w.position) {
        clearTimeout(w.timer);
        this.#waiters.delete(w);
        w.resolve(true);
      }
    }
  }

  /** Each period: report a status change now, and probe unless a probe is still out. */
  #tick(): void {
    this.#emitStatus();
    if (this.#probing || this.#closed) return;
    this.#probing = true;
    void this.#probeOnce().finally(() => {
      this.#probing = false;
    });
  }

  async #probeOnce(): Promise<void> {
    try {
      const head = await withTimeout(
        this.#store.head(),
        this.#opts.staleAfterMs ?? 2_000,
        `${this.#store.adapter} head`,
      );
      this.#connected = true;
      this.#lastContactAt = Date.now();
      this.#head = Math.max(head, this.#head ?? 0);
      if (head > this.position) {
        if (this.#lagSince === 0) this.#lagSince = Date.now();
      } else this.#lagSince = 0;
    } catch (err) {
      this.#connected = false;
      this.#opts.onError?.(err, "probe");
    }
    this.#emitStatus();
  }

  #emitStatus(): void {
    const s = this.status();
    if (s.stale === this.#lastStatus.stale && s.failClosed === this.#lastStatus.failClosed) return;
    this.#lastStatus = { stale: s.stale, failClosed: s.failClosed };
    for (const l of this.#statusListeners) {
      try {
        l(s);
      } catch (err) {
        this.#opts.onError?.(err, "status listener");
      }
    }
  }
}
