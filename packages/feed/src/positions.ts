/**
 * "Revocation confirmed" (SPEC §6): every edge reports the position it has
 * applied; the admin plane waits until every live edge has applied a write's
 * position, or a timeout, and names the edges that lagged.
 *
 * - In one process (the all-in-one `serve`), edges are attached to an
 *   {@link InProcessPositionBoard} with their feed.
 * - Distributed, each edge runs {@link publishPositions}: a JSON report on
 *   `<prefix>.edges.positions` after every applied event (coalesced) and every
 *   `heartbeatMs`; the admin plane runs a {@link NatsPositionBoard}, which counts
 *   an edge as live while it has reported within `liveWindowMs`.
 */
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import type { LiveProjection } from "./live-projection.ts";

/** One edge's last report. */
export interface EdgeReport {
  edgeId: string;
  /** `mqtt`, `amqp`, `admin`… */
  kind: string;
  position: number;
  stale: boolean;
  /** Epoch ms of the report. */
  reportedAt: number;
}

/** The answer of {@link PositionBoard.waitForAll}. */
export interface WaitResult {
  /** Every live edge applied the position in time. */
  ok: boolean;
  position: number;
  waitedMs: number;
  /** Live edges and their positions when the wait ended. */
  edges: EdgeReport[];
  /** Live edges still below the position. */
  lagging: EdgeReport[];
}

/** Where the admin plane learns edge positions. */
export interface PositionBoard {
  /** The live edges. */
  edges(): EdgeReport[];
  /** Wait until every live edge has applied `position` (or `timeoutMs`). */
  waitForAll(position: number, timeoutMs: number): Promise<WaitResult>;
  close(): Promise<void>;
}

/** Shared polling wait over `edges()`, woken by `kick`. */
abstract class BoardBase implements PositionBoard {
  readonly #wakers = new Set<() => void>();
  abstract edges(): EdgeReport[];

  protected kick(): void {
    for (const w of this.#wakers) w();
  }

  async waitForAll(position: number, timeoutMs: number): Promise<WaitResult> {
    const started = Date.now();
    const result = (ok: boolean, edges: EdgeReport[]): WaitResult => ({
      ok,
      position,
      waitedMs: Date.now() - started,
      edges,
      lagging: edges.filter((e) => e.position < position),
    });
    for (;;) {
      const edges = this.edges();
      if (edges.every((e) => e.position >= position)) return result(true, edges);
      const left = timeoutMs - (Date.now() - started);
      if (left <= 0) return result(false, edges);
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(t);
          this.#wakers.delete(done);
          resolve();
        };
        // Re-check at least every 250 ms: an edge may leave the live window.
        const t = setTimeout(done, Math.min(left, 250));
        this.#wakers.add(done);
      });
    }
  }

  async close(): Promise<void> {
    this.kick();
  }
}

/** Edges of this process, read straight from their feeds. */
export class InProcessPositionBoard extends BoardBase {
  readonly #edges = new Map<string, { kind: string; feed: LiveProjection; off: () => void }>();

  /** Attach an edge; returns the detach function. */
  attach(edgeId: string, kind: string, feed: LiveProjection): () => void {
    this.#edges.get(edgeId)?.off();
    const off = feed.onApplied(() => this.kick());
    this.#edges.set(edgeId, { kind, feed, off });
    this.kick();
    return () => {
      const e = this.#edges.get(edgeId);
      if (e?.feed === feed) {
        e.off();
        this.#edges.delete(edgeId);
        this.kick();
      }
    };
  }

  edges(): EdgeReport[] {
    const now = Date.now();
    return [...this.#edges].map(([edgeId, e]) => {
      const s = e.feed.status();
      return { edgeId, kind: e.kind, position: s.position, stale: s.stale, reportedAt: now };
    });
  }
}

const DEFAULT_PREFIX = "portcullis";
const subjectOf = (prefix: string) => `${prefix}.edges.positions`;

/** Options of {@link publishPositions} and {@link NatsPositionBoard}. */
export interface NatsPositionOptions {
  /** Subject prefix (default `portcullis`): reports go to `<prefix>.edges.positions`. */
  prefix?: string;
}

/** Publish an edge's applied position over NATS; returns the stop function. */
export function publishPositions(
  nc: NatsConnection,
  feed: LiveProjection,
  edge: { edgeId: string; kind: string },
  opts: NatsPositionOptions & { heartbeatMs?: number } = {},
): () => void {
  const subject = subjectOf(opts.prefix ?? DEFAULT_PREFIX);
  let queued = false;
  let stopped = false;
  const send = () => {
    queued = false;
    if (stopped || nc.isClosed()) return;
    const s = feed.status();
    const report: EdgeReport = { ...edge, position: s.position, stale: s.stale, reportedAt: Date.now() };
    try {
      nc.publish(subject, JSON.stringify(report));
    } catch {
      // connection draining or closed: the board will see this edge leave
    }
  };
  const off = feed.onApplied(() => {
    if (!queued) {
      queued = true;
      setImmediate(send);
    }
  });
  const hb = setInterval(send, opts.heartbeatMs ?? 1_000);
  hb.unref();
  send();
  return () => {
    stopped = true;
    off();
    clearInterval(hb);
  };
}

/** The admin plane's view of edges reporting over NATS. */
export class NatsPositionBoard extends BoardBase {
  readonly #reports = new Map<string, EdgeReport>();
  readonly #sub: Subscription;
  readonly #liveWindowMs: number;

  constructor(nc: NatsConnection, opts: NatsPositionOptions & { liveWindowMs?: number } = {}) {
    super();
    this.#liveWindowMs = opts.liveWindowMs ?? 3_000;
    this.#sub = nc.subscribe(subjectOf(opts.prefix ?? DEFAULT_PREFIX), {
      callback: (err, msg) => {
        if (err) return;
        try {
          const r = msg.json<EdgeReport>();
          if (typeof r.edgeId !== "string" || typeof r.position !== "number") return;
          // Our clock, not the edge's: liveness must not depend on clock skew.
          this.#reports.set(r.edgeId, { ...r, reportedAt: Date.now() });
          this.kick();
        } catch {
          // not a report: ignore
        }
      },
    });
  }

  edges(): EdgeReport[] {
    const now = Date.now();
    return [...this.#reports.values()].filter((r) => now - r.reportedAt <= this.#liveWindowMs);
  }

  override async close(): Promise<void> {
    this.#sub.unsubscribe();
    await super.close();
  }
}
