/**
 * Prometheus metrics of the AMQP edge, all prefixed `portcullis_amqp_`
 * (SPEC §7: every decision counted). Feed status (applied position, lag,
 * staleness) is read at scrape time.
 */
import type { LiveProjection } from "@portcullis/feed";
import { Counter, Gauge, Registry } from "prom-client";

/** The edge's metric set. */
export class EdgeMetrics {
  readonly registry: Registry;
  readonly connectionsTotal: Counter<"outcome">;
  readonly decisions: Counter<"action" | "result">;
  readonly revocations: Counter<"kind">;
  readonly requeued: Counter;
  readonly droppedNoAck: Counter;
  readonly protocolErrors: Counter<"code">;
  /** Decisions counted locally (this is on the per-message path) and handed to prom-client at scrape time. */
  readonly #decisionCounts = new Map<string, { action: string; result: string; n: number }>();

  constructor(registry: Registry | undefined, feed: LiveProjection, liveConnections: () => number) {
    this.registry = registry ?? new Registry();
    const registers = [this.registry];
    new Gauge({
      name: "portcullis_amqp_connections",
      help: "Client connections open now (authenticated or in handshake).",
      registers,
      collect() {
        this.set(liveConnections());
      },
    });
    this.connectionsTotal = new Counter({
      name: "portcullis_amqp_connections_total",
      help: "Client connections by outcome of the handshake (opened, auth_failed, vhost_denied, upstream_failed, protocol_error).",
      labelNames: ["outcome"],
      registers,
    });
    const counts = this.#decisionCounts;
    this.decisions = new Counter({
      name: "portcullis_amqp_decisions_total",
      help: "Authorization decisions by RAM action and result (Allow, ExplicitDeny, ImplicitDeny).",
      labelNames: ["action", "result"],
      registers,
      collect() {
        this.reset();
        for (const c of counts.values()) this.inc({ action: c.action, result: c.result }, c.n);
      },
    });
    this.revocations = new Counter({
      name: "portcullis_amqp_revocations_total",
      help: "Actions taken on live connections after a revocation (consumer_cancel, channel_close, connection_close).",
      labelNames: ["kind"],
      registers,
    });
    this.requeued = new Counter({
      name: "portcullis_amqp_requeued_deliveries_total",
      help: "Deliveries for revoked consumers returned to their queue upstream (basic.reject requeue=true).",
      registers,
    });
    this.droppedNoAck = new Counter({
      name: "portcullis_amqp_revoked_noack_deliveries_total",
      help: "No-ack deliveries for revoked consumers on transactional channels, withheld from the client (already settled upstream).",
      registers,
    });
    this.protocolErrors = new Counter({
      name: "portcullis_amqp_protocol_errors_total",
      help: "Client connections closed for a protocol error, by reply code.",
      labelNames: ["code"],
      registers,
    });
    new Gauge({
      name: "portcullis_amqp_applied_position",
      help: "Event-log position the edge's projection has applied.",
      registers,
      collect() {
        this.set(feed.position);
      },
    });
    new Gauge({
      name: "portcullis_amqp_feed_lag",
      help: "Events the edge is behind the store's last known head.",
      registers,
      collect() {
        this.set(feed.status().lag);
      },
    });
    new Gauge({
      name: "portcullis_amqp_feed_stale",
      help: "1 when the edge cannot see the event feed (SPEC §6).",
      registers,
      collect() {
        this.set(feed.status().stale ? 1 : 0);
      },
    });
    new Gauge({
      name: "portcullis_amqp_feed_fail_closed",
      help: "1 when the edge refuses everything because the feed has been stale too long.",
      registers,
      collect() {
        this.set(feed.status().failClosed ? 1 : 0);
      },
    });
  }

  /** Take every metric of this set out of the registry (after a failed start, or at close). */
  unregister(): void {
    for (const name of EdgeMetrics.NAMES) this.registry.removeSingleMetric(name);
  }

  /** The names of the metrics this set registers. */
  static readonly NAMES = [
    "portcullis_amqp_connections",
    "portcullis_amqp_connections_total",
    "portcullis_amqp_decisions_total",
    "portcullis_amqp_revocations_total",
    "portcullis_amqp_requeued_deliveries_total",
    "portcullis_amqp_revoked_noack_deliveries_total",
    "portcullis_amqp_protocol_errors_total",
    "portcullis_amqp_applied_position",
    "portcullis_amqp_feed_lag",
    "portcullis_amqp_feed_stale",
    "portcullis_amqp_feed_fail_closed",
  ] as const;

  /** Count one decision. */
  decision(action: string, result: string): void {
    const k = result === "Allow" ? action : `${action}\u0000${result}`;
    const c = this.#decisionCounts.get(k);
    if (c) c.n++;
    else this.#decisionCounts.set(k, { action, result, n: 1 });
  }
}
