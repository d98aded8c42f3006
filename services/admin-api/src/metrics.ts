/** Prometheus metrics of the admin plane; every name starts with `portcullis_admin_`. */
import type { LiveProjection } from "@portcullis/feed";
import { Counter, Gauge, Histogram, type Registry } from "prom-client";

/** The admin API's metrics, registered once per registry. */
export interface AdminMetrics {
  requests: Counter<"method" | "route" | "status">;
  duration: Histogram<"method" | "route">;
  authFailures: Counter<"code">;
  authz: Counter<"action" | "decision">;
  appended: Counter<"type">;
  conflicts: Counter;
  enforcement: Counter<"result">;
}

function once<T>(registry: Registry, name: string, make: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? make();
}

/** Create (or reuse, when the registry already has them) the metrics, and feed gauges reading `feed`. */
export function adminMetrics(registry: Registry, feed: LiveProjection): AdminMetrics {
  const registers = [registry];
  once(
    registry,
    "portcullis_admin_feed_position",
    () =>
      new Gauge({
        name: "portcullis_admin_feed_position",
        help: "Log position the admin plane's projection has applied",
        registers,
        collect() {
          this.set(feed.position);
        },
      }),
  );
  once(
    registry,
    "portcullis_admin_feed_stale",
    () =>
      new Gauge({
        name: "portcullis_admin_feed_stale",
        help: "1 while the admin plane's event feed is stale",
        registers,
        collect() {
          this.set(feed.status().stale ? 1 : 0);
        },
      }),
  );
  return {
    requests: once(
      registry,
      "portcullis_admin_http_requests_total",
      () =>
        new Counter({
          name: "portcullis_admin_http_requests_total",
          help: "Admin API requests by method, route and status",
          labelNames: ["method", "route", "status"] as const,
          registers,
        }),
    ),
    duration: once(
      registry,
      "portcullis_admin_http_request_duration_seconds",
      () =>
        new Histogram({
          name: "portcullis_admin_http_request_duration_seconds",
          help: "Admin API request latency",
          labelNames: ["method", "route"] as const,
          buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
          registers,
        }),
    ),
    authFailures: once(
      registry,
      "portcullis_admin_auth_failures_total",
      () =>
        new Counter({
          name: "portcullis_admin_auth_failures_total",
          help: "Requests refused by signature authentication, by reason",
          labelNames: ["code"] as const,
          registers,
        }),
    ),
    authz: once(
      registry,
      "portcullis_admin_authz_decisions_total",
      () =>
        new Counter({
          name: "portcullis_admin_authz_decisions_total",
          help: "Authorization decisions on admin calls, by action and decision",
          labelNames: ["action", "decision"] as const,
          registers,
        }),
    ),
    appended: once(
      registry,
      "portcullis_admin_events_appended_total",
      () =>
        new Counter({
          name: "portcullis_admin_events_appended_total",
          help: "Events appended by the admin plane, by type",
          labelNames: ["type"] as const,
          registers,
        }),
    ),
    conflicts: once(
      registry,
      "portcullis_admin_append_conflicts_total",
      () =>
        new Counter({
          name: "portcullis_admin_append_conflicts_total",
          help: "Appends refused by optimistic concurrency and re-decided",
          registers,
        }),
    ),
    enforcement: once(
      registry,
      "portcullis_admin_enforcement_waits_total",
      () =>
        new Counter({
          name: "portcullis_admin_enforcement_waits_total",
          help: "Waits for every live edge to apply a write, by result (confirmed, lagging)",
          labelNames: ["result"] as const,
          registers,
        }),
    ),
  };
}
