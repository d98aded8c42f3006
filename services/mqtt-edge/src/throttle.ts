/**
 * Slows down repeated authentication failures from one source address or for
 * one AccessKeyId (brute force, leaked-id guessing). Once `freeFailures`
 * failures happened within `windowMs`, every further attempt from that address
 * or for that key waits `baseDelayMs · 2^(failures − freeFailures)` before it is evaluated, capped
 * at `maxDelayMs` (bounded backoff). The delay applies to the attempt, not to
 * its answer, so a client cannot tell success from failure by the response
 * time. A success clears the key's record (and the address's).
 *
 * Memory is bounded: at most `maxEntries` records; the least recently failing
 * one is dropped first (a Map kept in recency order).
 */

/** Options of {@link AuthThrottle}. */
export interface AuthThrottleOptions {
  /** Failures after which attempts are delayed (default 3: the 4th attempt waits; at least 1). */
  freeFailures?: number;
  /** Delay after the first counted failure, in ms (default 100). */
  baseDelayMs?: number;
  /** Upper bound of the delay, in ms (default 2 000). */
  maxDelayMs?: number;
  /** Failures older than this are forgotten, in ms (default 60 000). */
  windowMs?: number;
  /** Records kept at most (default 10 000). */
  maxEntries?: number;
}

interface Record {
  failures: number;
  lastAt: number;
}

/** Failure counters per address and per AccessKeyId with a bounded exponential delay. */
export class AuthThrottle {
  readonly #records = new Map<string, Record>();
  readonly #free: number;
  readonly #base: number;
  readonly #max: number;
  readonly #window: number;
  readonly #maxEntries: number;

  constructor(opts: AuthThrottleOptions = {}) {
    this.#free = Math.max(1, opts.freeFailures ?? 3);
    this.#base = opts.baseDelayMs ?? 100;
    this.#max = opts.maxDelayMs ?? 2_000;
    this.#window = opts.windowMs ?? 60_000;
    this.#maxEntries = Math.max(1, opts.maxEntries ?? 10_000);
  }

  /** How long an attempt from `address` for `accessKeyId` must wait, in ms. */
  delayFor(address: string, accessKeyId: string | undefined, now = Date.now()): number {
    let d = this.#delay(`ip:${address}`, now);
    if (accessKeyId !== undefined) d = Math.max(d, this.#delay(`key:${accessKeyId}`, now));
    return d;
  }

  /** Count a failed attempt. */
  failure(address: string, accessKeyId: string | undefined, now = Date.now()): void {
    this.#bump(`ip:${address}`, now);
    if (accessKeyId !== undefined) this.#bump(`key:${accessKeyId}`, now);
  }

  /** A successful attempt clears both records. */
  success(address: string, accessKeyId: string): void {
    this.#records.delete(`ip:${address}`);
    this.#records.delete(`key:${accessKeyId}`);
  }

  /** Number of records held (for tests and metrics). */
  get size(): number {
    return this.#records.size;
  }

  #delay(k: string, now: number): number {
    const r = this.#records.get(k);
    if (!r) return 0;
    if (now - r.lastAt > this.#window) {
      this.#records.delete(k);
      return 0;
    }
    const over = r.failures - this.#free;
    if (over < 0) return 0;
    // The exponent is capped so that huge counts cannot overflow; min() bounds the delay.
    return Math.min(this.#max, this.#base * 2 ** Math.min(over, 30));
  }

  #bump(k: string, now: number): void {
    const r = this.#records.get(k);
    const failures = r && now - r.lastAt <= this.#window ? r.failures + 1 : 1;
    // Re-insert to keep the Map in recency order.
    this.#records.delete(k);
    this.#records.set(k, { failures, lastAt: now });
    while (this.#records.size > this.#maxEntries) {
      const oldest = this.#records.keys().next().value as string;
      this.#records.delete(oldest);
    }
  }
}
