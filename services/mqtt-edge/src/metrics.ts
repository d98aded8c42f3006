/**
 * Prometheus metrics of the MQTT edge (names prefixed `portcullis_mqtt_`).
 *
 * The hot path (one decision per delivery) only bumps plain numbers in arrays;
 * the prom-client metrics read them in their `collect` callbacks at scrape
 * time, so label hashing never happens per message.
 */
import type { FeedStatus } from "@portcullis/feed";
import { Counter, Gauge, type Registry } from "prom-client";

/** Where a decision was made. */
export const STAGES = ["connect", "publish", "will", "subscribe", "deliver", "recheck"] as const;
/** One of {@link STAGES}. */
export type Stage = (typeof STAGES)[number];
/** Decision results: the policy engine's three, and `Refused` for edge checks (fail-closed, `$SYS/`, missing topic). */
export const RESULTS = ["Allow", "ExplicitDeny", "ImplicitDeny", "Refused"] as const;
/** One of {@link RESULTS}. */
export type Result = (typeof RESULTS)[number];
/** CONNECT outcomes. */
export const CONNECT_RESULTS = [
  "accepted",
  "identifier_rejected",
  "server_unavailable",
  "bad_credentials",
  "not_authorized",
] as const;
/** One of {@link CONNECT_RESULTS}. */
export type ConnectResult = (typeof CONNECT_RESULTS)[number];

const STAGE_ACTION: Record<Stage, string> = {
  connect: "mq:MqttInstanceAccess",
  publish: "mq:PUB",
  will: "mq:PUB",
  subscribe: "mq:SUB",
  deliver: "mq:SUB",
  recheck: "mq:SUB",
};

/** Counters of one edge. */
export class EdgeMetrics {
  /** decisions[stage * RESULTS.length + result] */
  readonly decisions = new Float64Array(STAGES.length * RESULTS.length);
  readonly connects = new Float64Array(CONNECT_RESULTS.length);
  readonly revocations = { unsubscribe: 0, disconnect: 0 };
  revocationChecks = 0;
  throttled = 0;
  protocolErrors = 0;
  sinkErrors = 0;

  constructor(
    registry: Registry,
    sources: {
      status: () => FeedStatus;
      connections: () => Record<string, number>;
    },
  ) {
    const m = this;
    const delta = (
      counter: Counter<string>,
      seen: Float64Array,
      now: ArrayLike<number>,
      labels: (i: number) => Record<string, string>,
    ) => {
      for (let i = 0; i < now.length; i++) {
        const d = now[i]! - seen[i]!;
        if (d > 0) {
          counter.inc(labels(i), d);
          seen[i] = now[i]!;
        }
      }
    };
    const seenDecisions = new Float64Array(this.decisions.length);
    new Counter({
      name: "portcullis_mqtt_decisions_total",
      help: "Authorization decisions by action, stage and result",
      labelNames: ["action", "stage", "result"],
      registers: [registry],
      collect() {
        delta(this, seenDecisions, m.decisions, (i) => {
          const stage = STAGES[Math.floor(i / RESULTS.length)]!;
          return { action: STAGE_ACTION[stage], stage, result: RESULTS[i % RESULTS.length]! };
        });
      },
    });
    const seenConnects = new Float64Array(this.connects.length);
    new Counter({
      name: "portcullis_mqtt_connects_total",
      help: "CONNECT attempts by outcome",
      labelNames: ["result"],
      registers: [registry],
      collect() {
        delta(this, seenConnects, m.connects, (i) => ({ result: CONNECT_RESULTS[i]! }));
      },
    });
    const seenRev = new Float64Array(2);
    new Counter({
      name: "portcullis_mqtt_revocation_actions_total",
      help: "Subscriptions removed and sessions disconnected because of a revocation",
      labelNames: ["action"],
      registers: [registry],
      collect() {
        delta(this, seenRev, [m.revocations.unsubscribe, m.revocations.disconnect], (i) => ({
          action: i === 0 ? "unsubscribe" : "disconnect",
        }));
      },
    });
    const simple = (name: string, help: string, read: () => number) => {
      const seen = new Float64Array(1);
      new Counter({
        name,
        help,
        registers: [registry],
        collect() {
          const v = read();
          if (v > seen[0]!) {
            this.inc(v - seen[0]!);
            seen[0] = v;
          }
        },
      });
    };
    simple(
      "portcullis_mqtt_revocation_checks_total",
      "Live sessions re-checked after an event",
      () => m.revocationChecks,
    );
    simple(
      "portcullis_mqtt_auth_throttled_total",
      "CONNECT attempts delayed after repeated failures",
      () => m.throttled,
    );
    simple(
      "portcullis_mqtt_protocol_errors_total",
      "Connections closed for malformed or oversize packets",
      () => m.protocolErrors,
    );
    simple(
      "portcullis_mqtt_decision_sink_errors_total",
      "Decision records the sink refused (thrown)",
      () => m.sinkErrors,
    );
    new Gauge({
      name: "portcullis_mqtt_connections",
      help: "Authenticated MQTT sessions by transport",
      labelNames: ["transport"],
      registers: [registry],
      collect() {
        this.reset();
        for (const [transport, n] of Object.entries(sources.connections())) this.set({ transport }, n);
      },
    });
    const gauge = (name: string, help: string, read: (s: FeedStatus) => number) =>
      new Gauge({
        name,
        help,
        registers: [registry],
        collect() {
          this.set(read(sources.status()));
        },
      });
    gauge("portcullis_mqtt_applied_position", "Event position applied by this edge", (s) => s.position);
    gauge("portcullis_mqtt_feed_lag", "Events known in the store and not yet applied", (s) => s.lag);
    gauge("portcullis_mqtt_feed_stale", "1 when the edge cannot see the event feed", (s) =>
      s.stale ? 1 : 0,
    );
    gauge(
      "portcullis_mqtt_feed_fail_closed",
      "1 when the edge refuses everything (feed lost too long)",
      (s) => (s.failClosed ? 1 : 0),
    );
    gauge("portcullis_mqtt_feed_last_contact_age_seconds", "Seconds since the feed was last seen", (s) =>
      s.lastContactAt === 0 ? -1 : (Date.now() - s.lastContactAt) / 1000,
    );
  }

  /** Count one decision. */
  decision(stage: number, result: number): void {
    this.decisions[stage * RESULTS.length + result]!++;
  }

  /** Count one CONNECT outcome. */
  connect(result: ConnectResult): void {
    this.connects[CONNECT_RESULTS.indexOf(result)]!++;
  }
}

/** Stage indexes, for the hot path. */
export const STAGE = Object.fromEntries(STAGES.map((s, i) => [s, i])) as Record<Stage, number>;
/** Result indexes, for the hot path. */
export const RESULT = Object.fromEntries(RESULTS.map((r, i) => [r, i])) as Record<Result, number>;
